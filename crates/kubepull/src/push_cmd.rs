//! `kubepull push LAYOUT IMAGE`: uploads an OCI image layout (as `umoci`, `skopeo copy
//! oci:DIR` or `scripts/image.sh` write it) to a registry with the same credential sources and
//! host configuration as `pull`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use kubepull_core::keyring;
use kubepull_core::reference::{self, Digest, Reference};
use kubepull_registry::{ErrorKind, ManifestRef, RegistryCredential, Repository};

use crate::exit;
use crate::pull_cmd::{exit_code_of, registry_args, registry_client};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests nested deeper than this are refused (an index naming itself, directly or not).
const MAX_DEPTH: usize = 4;

pub fn command() -> Command {
    registry_args(
        Command::new("push")
            .about("Push an OCI image layout directory to a registry")
            .long_about(
                "Push an OCI image layout directory (DIR/oci-layout, DIR/index.json, DIR/blobs/) to a \
                 registry as IMAGE, with the credentials `pull` would use for it (the docker config \
                 and Secret manifests given) and the same registry host configuration.\n\n\
                 Blobs the registry already has are not sent again; the others are uploaded in 16 MiB \
                 chunks and hashed on the way, and an upload whose bytes do not match its digest is \
                 abandoned, never committed. Manifests go last, so the tag never names an image whose \
                 blobs are missing. Prints IMAGE@DIGEST on success.",
            )
            .arg(
                Arg::new("layout")
                    .required(true)
                    .value_name("DIR")
                    .help("The OCI image layout to push"),
            )
            .arg(
                Arg::new("image")
                    .required(true)
                    .value_name("IMAGE")
                    .help("Where to push: registry/repository[:tag] (a tag; `latest` when none)"),
            )
            .arg(
                Arg::new("ref-name")
                    .long("ref-name")
                    .value_name("NAME")
                    .help("Which of the layout's manifests to push, by its org.opencontainers.image.ref.name annotation [default: the only one]"),
            )
            .arg(
                Arg::new("docker-config")
                    .long("docker-config")
                    .value_name("FILE")
                    .help("A docker config.json holding the registry's credentials"),
            )
            .arg(
                Arg::new("secret")
                    .long("secret")
                    .action(ArgAction::Append)
                    .value_name("FILE")
                    .help("kubernetes.io/dockerconfigjson Secret manifests holding the registry's credentials, tried first, in order"),
            )
            .arg(Arg::new("quiet").short('q').long("quiet").action(ArgAction::SetTrue).help("No progress output"))
            .after_help(
                "Exit codes: as `kubepull pull` (10 credentials rejected, 11 no push access or no such \
                 repository, 15 TLS, 16 connection, 18 a blob does not match its digest, 19 invalid \
                 image reference, 21 refused as unsafe); 2 for an unreadable or invalid layout.",
            ),
    )
}

/// A manifest of the layout to push, children first.
struct Item {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
    /// Blobs it names (config and layers), in order.
    blobs: Vec<(Digest, u64)>,
}

fn blob_path(layout: &Path, d: &Digest) -> PathBuf {
    // a parsed digest is `alg:hex` with a known algorithm and hex only: no path can escape
    layout
        .join("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

fn descriptor(v: &serde_json::Value, what: &str) -> anyhow::Result<(Digest, u64, String)> {
    let d = v["digest"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{what}: no digest"))?;
    let d = Digest::parse(d).map_err(|e| anyhow::anyhow!("{what}: digest {d:?}: {e}"))?;
    let size = v["size"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("{what}: no size"))?;
    Ok((d, size, v["mediaType"].as_str().unwrap_or("").to_string()))
}

/// Reads a blob of the layout that is a manifest, checking its size and digest.
fn read_manifest(layout: &Path, d: &Digest, size: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    if size > kubepull_registry::MAX_MANIFEST_SIZE {
        anyhow::bail!("{what}: {size} bytes is larger than a registry accepts");
    }
    if d.algorithm() != kubepull_core::reference::DigestAlgorithm::Sha256 {
        anyhow::bail!("{what}: only sha256 manifest digests are supported");
    }
    let p = blob_path(layout, d);
    let b = std::fs::read(&p).map_err(|e| anyhow::anyhow!("{what}: {}: {e}", p.display()))?;
    if b.len() as u64 != size || &Digest::sha256_of(&b) != d {
        anyhow::bail!(
            "{what}: {} does not match its descriptor ({d}, {size} bytes); the layout is corrupt",
            p.display()
        );
    }
    Ok(b)
}

/// Walks the manifest `d` (and an index's children), children first.
fn collect(
    layout: &Path,
    d: &Digest,
    size: u64,
    media_type: &str,
    depth: usize,
    out: &mut Vec<Item>,
) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        anyhow::bail!("manifest {d}: indexes nested more than {MAX_DEPTH} deep");
    }
    let bytes = read_manifest(layout, d, size, &format!("manifest {d}"))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("manifest {d}: not JSON: {e}"))?;
    let mt = v["mediaType"].as_str().unwrap_or(media_type).to_string();
    if mt.is_empty() {
        anyhow::bail!("manifest {d}: no mediaType in the manifest or its descriptor");
    }
    let mut blobs = Vec::new();
    if mt == INDEX || mt == DOCKER_LIST || v.get("manifests").is_some() {
        for (i, m) in v["manifests"].as_array().into_iter().flatten().enumerate() {
            let (cd, cs, cmt) = descriptor(m, &format!("manifest {d}: manifests[{i}]"))?;
            collect(layout, &cd, cs, &cmt, depth + 1, out)?;
        }
    } else {
        let (cd, cs, _) = descriptor(&v["config"], &format!("manifest {d}: config"))?;
        blobs.push((cd, cs));
        for (i, l) in v["layers"].as_array().into_iter().flatten().enumerate() {
            let (ld, ls, _) = descriptor(l, &format!("manifest {d}: layers[{i}]"))?;
            blobs.push((ld, ls));
        }
        for (bd, bs) in &blobs {
            let p = blob_path(layout, bd);
            let m = std::fs::metadata(&p)
                .map_err(|e| anyhow::anyhow!("manifest {d}: blob {bd}: {}: {e}", p.display()))?;
            if m.len() != *bs {
                anyhow::bail!(
                    "manifest {d}: blob {bd} is {} bytes, its descriptor says {bs}; the layout is corrupt",
                    m.len()
                );
            }
        }
    }
    out.push(Item {
        digest: d.clone(),
        media_type: mt,
        bytes,
        blobs,
    });
    Ok(())
}

/// The manifests of `layout` to push for `ref_name`, children first; the last is the top.
fn plan(layout: &Path, ref_name: Option<&str>) -> anyhow::Result<Vec<Item>> {
    let marker = layout.join("oci-layout");
    let m = std::fs::read(&marker).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}: not an OCI image layout (expected DIR/oci-layout, DIR/index.json, DIR/blobs/)",
            marker.display()
        )
    })?;
    let m: serde_json::Value = serde_json::from_slice(&m)
        .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", marker.display()))?;
    if m["imageLayoutVersion"].as_str() != Some("1.0.0") {
        anyhow::bail!("{}: imageLayoutVersion must be \"1.0.0\"", marker.display());
    }
    let ip = layout.join("index.json");
    let index = std::fs::read(&ip).map_err(|e| anyhow::anyhow!("{}: {e}", ip.display()))?;
    let index: serde_json::Value = serde_json::from_slice(&index)
        .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", ip.display()))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let name_of = |m: &serde_json::Value| {
        m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .map(str::to_string)
    };
    let chosen = match ref_name {
        Some(n) => manifests
            .iter()
            .find(|m| name_of(m).as_deref() == Some(n))
            .ok_or_else(|| {
                let names: Vec<String> = manifests.iter().filter_map(name_of).collect();
                anyhow::anyhow!(
                    "--ref-name {n:?}: no manifest of {} has that name (names: {})",
                    ip.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            })?,
        None => match manifests.as_slice() {
            [one] => one,
            [] => anyhow::bail!("{}: the layout holds no manifest", ip.display()),
            _ => anyhow::bail!(
                "{}: the layout holds {} manifests; choose one with --ref-name",
                ip.display(),
                manifests.len()
            ),
        },
    };
    let (d, size, mt) = descriptor(chosen, &format!("{}: manifests", ip.display()))?;
    let mut out = Vec::new();
    collect(layout, &d, size, &mt, 0, &mut out)?;
    Ok(out)
}

fn human(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn fail(e: &kubepull_registry::Error) -> u8 {
    eprintln!("error: {e}");
    let kind = e.kind();
    if kind == ErrorKind::NotFound {
        eprintln!("hint: the repository does not exist or the credential may not push to it; check the account's push rights");
    } else {
        eprintln!("hint: {}", kind.hint());
    }
    exit_code_of(kind)
}

pub fn run(m: &ArgMatches) -> u8 {
    let layout = PathBuf::from(m.get_one::<String>("layout").cloned().unwrap_or_default());
    let image = m.get_one::<String>("image").cloned().unwrap_or_default();
    let quiet = m.get_flag("quiet");
    let reference: Reference = match reference::parse_normalized_named(&image) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: image {image:?}: {e}");
            eprintln!("hint: {}", ErrorKind::InvalidReference.hint());
            return exit_code_of(ErrorKind::InvalidReference);
        }
    };
    let target = match (reference.tag(), reference.digest()) {
        (_, Some(_)) => {
            eprintln!("error: image {image:?}: push to a tag, not a digest (the digest is computed from the layout)");
            return exit::USAGE;
        }
        (Some(t), None) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let items = match plan(&layout, m.get_one::<String>("ref-name").map(String::as_str)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    let (secrets, node) = match crate::creds_cmd::credential_inputs(m, "secret") {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    let resolution = match keyring::resolve(&image, &secrets, node.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: credentials: {e}");
            eprintln!("hint: fix the secret's .dockerconfigjson (`kubepull lint` explains it)");
            return exit::USAGE;
        }
    };
    let (client, hosts) = match registry_client(m) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    let host = match &hosts {
        None => None,
        Some(h) => match h.hosts_for(reference.domain()) {
            Ok(list) => match list.into_iter().find(|h| h.capabilities.push) {
                Some(h) => Some(h),
                None => {
                    eprintln!(
                        "error: --hosts-dir: no host configured for {} has the push capability; add \"push\" to the capabilities of its server in hosts.toml",
                        reference.domain()
                    );
                    return exit::USAGE;
                }
            },
            Err(e) => {
                eprintln!("error: --hosts-dir: {e}");
                return exit::USAGE;
            }
        },
    };
    let mut creds: Vec<Option<RegistryCredential>> = resolution
        .credentials
        .iter()
        .map(RegistryCredential::from_keyring)
        .map(Some)
        .collect();
    if creds.is_empty() {
        creds.push(None);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let tty = std::io::stderr().is_terminal();
    rt.block_on(async {
        // the first credential the registry accepts, as the kubelet tries them in order
        let Some(probe) = items
            .iter()
            .flat_map(|i| i.blobs.first())
            .next()
            .cloned()
            .or_else(|| items.first().map(|i| (i.digest.clone(), 0)))
        else {
            eprintln!("error: the layout names nothing to push");
            return exit::USAGE;
        };
        let mut repo: Option<Repository> = None;
        let mut last = None;
        for c in creds {
            let r = match &host {
                Some(h) => client.repository_on(&reference, c, h),
                None => client.repository(&reference, c),
            };
            let r = match r {
                Ok(r) => r.for_push(),
                Err(e) => return fail(&e),
            };
            match r.blob_exists(&probe.0).await {
                Ok(_) => {
                    repo = Some(r);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Unauthorized => last = Some(e),
                Err(e) => return fail(&e),
            }
        }
        let Some(repo) = repo else {
            return last.map_or(exit::FAILURE, |e| fail(&e));
        };
        let top = items.len() - 1;
        let mut done = std::collections::HashSet::new();
        for (n, item) in items.iter().enumerate() {
            for (d, size) in &item.blobs {
                if !done.insert(d.clone()) {
                    continue;
                }
                let short: String = d.hex().chars().take(12).collect();
                let progress = |sent: u64| {
                    if tty && !quiet && sent < *size {
                        eprint!("\r{short}: {} / {}", human(sent), human(*size));
                    }
                };
                match repo
                    .push_blob_file(d, &blob_path(&layout, d), &progress)
                    .await
                {
                    Ok((_, true)) => say(format!("\r{short}: pushed {}", human(*size))),
                    Ok((_, false)) => say(format!("\r{short}: already present")),
                    Err(e) => return fail(&e),
                }
            }
            // the parsed reference and digest, not their strings parsed again
            let r = if n == top {
                ManifestRef::of(&reference)
            } else {
                ManifestRef::Digest(item.digest.clone())
            };
            match repo
                .push_manifest(&r, &item.media_type, item.bytes.clone().into())
                .await
            {
                Ok(_) => say(format!("manifest {}: pushed", item.digest)),
                Err(e) => return fail(&e),
            }
        }
        let top = &items[top];
        println!(
            "{}/{}:{}@{}",
            reference.domain(),
            reference.path(),
            target,
            top.digest
        );
        exit::OK
    })
}
