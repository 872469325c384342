//! Glue between the command line and the libraries: building the registry client from flags,
//! and formatting store records.

use std::path::Path;

use kubepull_store::{GcReport, ImageRecord, UnpackStats};

/// The registry client and the `--hosts-dir` configuration (containerd's hosts.toml layout).
pub fn client(
    hosts_dir: Option<&Path>,
    cfg: kubepull_registry::ClientConfig,
) -> anyhow::Result<(
    kubepull_registry::Client,
    Option<kubepull_registry::HostsDir>,
)> {
    let hosts = match hosts_dir {
        None => None,
        Some(d) => Some(
            kubepull_registry::HostsDir::load(d)
                .map_err(|e| anyhow::anyhow!("--hosts-dir {}: {e}", d.display()))?,
        ),
    };
    let client = kubepull_registry::Client::https(&kubepull_registry::TlsConfig::system(), cfg)?;
    Ok((client, hosts))
}

fn short(d: &str) -> String {
    d.split_once(':')
        .map(|(_, h)| h)
        .unwrap_or(d)
        .chars()
        .take(12)
        .collect()
}

/// `kubepull images -o json` for one record.
pub fn image_json(r: &ImageRecord) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "digest": r.digest,
        "manifest": r.manifest_digest,
        "imageID": r.config_digest,
        "platform": r.platform,
        "size": r.size,
        "layers": r.layers.len(),
        "layersDiscarded": r.discarded_layers(),
        "pulledAt": r.pulled_at,
    })
}

/// One row of `kubepull images`: name, short digest, short image ID, platform, size.
pub fn image_row(r: &ImageRecord) -> (String, String, String, String, u64) {
    (
        r.name.clone(),
        short(&r.digest),
        short(&r.config_digest),
        r.platform.clone(),
        r.size,
    )
}

/// The summary line of `kubepull gc`.
pub fn gc_line(r: &GcReport) -> String {
    format!(
        "removed {} blobs, {} partial downloads and {} layer snapshots, freed {} ({} in use were kept)",
        r.blobs_removed,
        r.partials_removed,
        r.snapshots_removed,
        indicatif::HumanBytes(r.bytes_freed),
        r.skipped_locked
    )
}

/// The summary of `kubepull unpack`.
pub fn unpack_line(s: &UnpackStats) -> String {
    if s.from_snapshots {
        return format!(
            "{} layers copied from their snapshots (layer blobs discarded), {} entries, {}",
            s.layers,
            s.total.entries,
            indicatif::HumanBytes(s.total.bytes)
        );
    }
    format!(
        "{} layers, {} entries, {}, {} whiteouts",
        s.layers,
        s.total.entries,
        indicatif::HumanBytes(s.total.bytes),
        s.total.whiteouts
    )
}
