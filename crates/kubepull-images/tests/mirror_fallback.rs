//! Per-blob fallback across the hosts of `hosts.toml`, with real registries over TLS: a mirror
//! that resolves the image but then fails a blob (serves wrong bytes, or has lost it) passes
//! that blob to the next host, the registry itself; every byte is verified against the
//! digest, so the pull succeeds with the right content and, as root, the layers' snapshots
//! built from what verified.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use kubepull_core::keyring::{Credential, CredentialSource};
use kubepull_core::reference::Digest;
use kubepull_images::{parse_image, NoProgress, Puller};
use kubepull_registry::{Client, ClientConfig, HostsDir, Platform, TlsConfig};
use kubepull_store::Store;
use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "origin";
const PASS: &str = "Origin-Pass-5";

fn cred(host: &str) -> Credential {
    Credential {
        username: USER.into(),
        password: PASS.into(),
        email: String::new(),
        source: CredentialSource::Secret {
            name: "regcred".into(),
        },
        config_key: host.into(),
        keyring_key: host.into(),
    }
}

fn blob_file(reg: &Registry, d: &Digest) -> std::path::PathBuf {
    reg.storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex())
        .join("data")
}

fn hosts_dir(dir: &Path, server: &Registry, mirror: &Registry) {
    let d = dir.join(server.host());
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("server-ca.crt"), server.ca_pem()).unwrap();
    fs::write(d.join("mirror-ca.crt"), mirror.ca_pem()).unwrap();
    fs::write(
        d.join("hosts.toml"),
        format!(
            "server = \"https://{s}\"\nca = \"server-ca.crt\"\n\n[host.\"https://{m}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"mirror-ca.crt\"\n",
            s = server.host(),
            m = mirror.host()
        ),
    )
    .unwrap();
}

async fn case(damage: &str) {
    let server = Registry::start(&[(USER, PASS)]);
    let mirror = Registry::start(&[]);
    let img = busybox_image(&["true"], &[("etc/motd", b"from the registry\n")]);
    server.push("team/app", "v1", &img).await;
    mirror.push("team/app", "v1", &img).await;
    let layer = Digest::sha256_of(&img.layers[1]);
    let f = blob_file(&mirror, &layer);
    match damage {
        // same length, other bytes: the digest check fails
        "corrupt" => fs::write(&f, vec![0x42; img.layers[1].len()]).unwrap(),
        _ => fs::remove_file(&f).unwrap(),
    }

    let t = tempfile::tempdir().unwrap();
    hosts_dir(&t.path().join("hosts"), &server, &mirror);
    let store = Store::open(&t.path().join("store")).unwrap();
    let client = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let puller = Puller::new(client, store.clone(), Platform::host())
        .with_hosts(HostsDir::load(&t.path().join("hosts")).unwrap());
    let name = format!("{}/team/app:v1", server.host());
    let r = puller
        .pull(
            &parse_image(&name).unwrap(),
            &[cred(&server.host())],
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    // the mirror served the manifest and the good blobs; the registry only the failed one
    let base = Digest::sha256_of(&img.layers[0]);
    assert_eq!(mirror.wait_blob_gets(&base, 1), 1, "{damage}");
    assert_eq!(server.wait_blob_gets(&layer, 1), 1, "{damage}");
    assert_eq!(server.settled_blob_gets(&base), 0, "{damage}");
    assert_eq!(
        server.log().matches("GET /v2/team/app/manifests").count(),
        0,
        "{damage}: resolved on the mirror"
    );
    // what is stored verifies
    let stored = fs::read(store.blob_path(&layer)).unwrap();
    assert_eq!(Digest::sha256_of(&stored), layer);
    if r.rootfs_ready {
        let rec = store.image(&name).unwrap().unwrap();
        let dirs = store
            .layer_snapshot(&name, &rec.layers, &Default::default())
            .unwrap();
        assert_eq!(
            fs::read(dirs[1].join("etc/motd")).unwrap(),
            b"from the registry\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serving_wrong_bytes_falls_back_per_blob() {
    case("corrupt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_missing_a_blob_falls_back_per_blob() {
    case("missing").await;
}
