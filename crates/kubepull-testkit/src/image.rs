//! OCI images built in Rust: a gzip layer holding the static busybox binary and its applet
//! links, plus optional extra files, with a config that runs a given command.

use kubepull_core::reference::Digest;

/// An image: config and layer blobs and the manifest that names them.
#[derive(Clone)]
pub struct Image {
    /// The config blob.
    pub config: Vec<u8>,
    /// Layer blobs (gzip tar).
    pub layers: Vec<Vec<u8>>,
    /// The OCI image manifest.
    pub manifest: Vec<u8>,
}

impl Image {
    /// The manifest digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }
    /// The config digest (image ID).
    pub fn config_digest(&self) -> Digest {
        Digest::sha256_of(&self.config)
    }
}

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "env", "id", "ls", "pwd", "true", "false", "printenv", "hostname",
];

fn gzip(tar: Vec<u8>) -> Vec<u8> {
    gzip_at(tar, 1)
}

fn gzip_at(tar: Vec<u8>, level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(&tar).expect("gzip");
    e.finish().expect("gzip")
}

fn sha256_hex(b: &[u8]) -> String {
    Digest::sha256_of(b).to_string()
}

/// A busybox image whose default command is `cmd`, with `files` (path, content) added in a
/// second layer when not empty.
pub fn busybox_image(cmd: &[&str], files: &[(&str, &[u8])]) -> Image {
    let files: Vec<(&str, &[u8], u32)> = files.iter().map(|(p, c)| (*p, *c, 0o644)).collect();
    busybox_image_modes(cmd, &files)
}

/// [`busybox_image`] with a mode for each added file (`0o4755` for a setuid file).
pub fn busybox_image_modes(cmd: &[&str], files: &[(&str, &[u8], u32)]) -> Image {
    crate::need("busybox", "busybox-static");
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, p, std::io::empty()).expect("dir");
    };
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        dir(&mut b, d);
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .expect("busybox");
    for a in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox")
            .expect("link");
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, "etc/passwd", &passwd[..])
        .expect("passwd");
    let base_tar = b.into_inner().expect("tar");
    let mut diff_ids = vec![sha256_hex(&base_tar)];
    let mut layers = vec![gzip(base_tar)];
    if !files.is_empty() {
        let mut b = tar::Builder::new(Vec::new());
        for (p, content, mode) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            h.set_size(content.len() as u64);
            h.set_mtime(0);
            b.append_data(&mut h, p.trim_start_matches('/'), *content)
                .expect("file");
        }
        let t = b.into_inner().expect("tar");
        diff_ids.push(sha256_hex(&t));
        layers.push(gzip(t));
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": cmd,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": sha256_hex(b), "size": b.len()});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
    });
    Image {
        config,
        layers,
        manifest: serde_json::to_vec(&manifest).expect("manifest json"),
    }
}

/// An image of the busybox layer plus one gzip layer per entry of `datas` (each a single file
/// `/data/layerN.bin`), compressed fast (level 1).
pub fn layered_image(datas: &[Vec<u8>]) -> Image {
    layered_image_at(datas, 1)
}

/// [`layered_image`] with the data layers gzipped at `level` (0–9), compressed in parallel.
///
/// The level decides what a decoder has to do with incompressible data: level 6, the default of
/// gzip, Go's `compress/gzip` (docker, buildkit) and pgzip (umoci), stores it in stored blocks
/// (a copy to inflate); level 1 here (zlib-ng's `deflate_quick`) Huffman-codes it with the
/// static tables, 5.5 % larger and several times slower to inflate.
pub fn layered_image_at(datas: &[Vec<u8>], level: u32) -> Image {
    let base = busybox_image(&["/bin/sh"], &[]);
    let mut layers = base.layers.clone();
    let mut diff_ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(&base.config)
        .ok()
        .and_then(|c| c["rootfs"]["diff_ids"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let built: Vec<(String, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| {
                s.spawn(move || {
                    let mut b = tar::Builder::new(Vec::new());
                    let mut h = tar::Header::new_gnu();
                    h.set_mode(0o644);
                    h.set_size(d.len() as u64);
                    h.set_mtime(0);
                    b.append_data(&mut h, format!("data/layer{i}.bin"), d.as_slice())
                        .expect("tar");
                    let t = b.into_inner().expect("tar");
                    (sha256_hex(&t), gzip_at(t, level))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("layer"))
            .collect()
    });
    for (diff_id, layer) in built {
        diff_ids.push(diff_id);
        layers.push(layer);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).expect("config");
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": sha256_hex(b), "size": b.len()});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
    });
    Image {
        config,
        layers,
        manifest: serde_json::to_vec(&manifest).expect("manifest"),
    }
}
