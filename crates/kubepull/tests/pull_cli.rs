//! `kubepull pull`, `images`, `rmi`, `gc`, `unpack` against the real registry (Debian
//! `docker-registry`, TLS from a throw-away CA trusted through `--hosts-dir`, htpasswd Basic auth).

use std::path::Path;
use std::process::{Command, Output};

use kubepull_testkit::fixture::{pull_secret_file, serve};
use kubepull_testkit::{busybox_image, Image, Registry};

const USER: &str = "puller";
const PASS: &str = "Pull-Secret-Pass-77";

fn kubepull() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubepull"));
    // never the user's config
    c.env_remove("DOCKER_CONFIG").env("HOME", "/nonexistent");
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run kubepull")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Bed {
    reg: Registry,
    dir: tempfile::TempDir,
    image: String,
    good: String,
    bad: String,
}

impl Bed {
    fn root(&self) -> String {
        self.dir.path().join("root").display().to_string()
    }
    fn hosts(&self) -> String {
        self.dir.path().join("hosts").display().to_string()
    }
    /// `kubepull unpack` of the image into `dest`.
    fn unpack(&self, dest: &Path) -> Output {
        run(kubepull()
            .args(["unpack", &self.image])
            .arg(dest)
            .args(["--root", &self.root()]))
    }
    fn pull(&self, extra: &[&str]) -> Output {
        run(kubepull()
            .args([
                "pull",
                &self.image,
                "--root",
                &self.root(),
                "--hosts-dir",
                &self.hosts(),
            ])
            .args(extra))
    }
}

/// The user's registry serving `img` as `REPO:v1`, trusted through `DIR/hosts`, with the
/// user's pull secret (`good`) and one with a wrong password (`bad`) in `DIR`.
fn bed_serving(repo: &str, img: &Image) -> Bed {
    let (reg, image) = serve(USER, PASS, repo, img);
    let dir = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(&dir.path().join("hosts"));
    let good = pull_secret_file(dir.path(), "regcred", &reg.host(), USER, PASS);
    let bad = pull_secret_file(dir.path(), "stale", &reg.host(), USER, "wrong-password-123");
    Bed {
        reg,
        dir,
        image,
        good,
        bad,
    }
}

fn bed() -> Bed {
    bed_serving(
        "team/app",
        &busybox_image(
            &["/bin/sh", "-c", "echo hello"],
            &[("/etc/motd", b"kubepull\n")],
        ),
    )
}

#[test]
fn pull_store_unpack_and_failures() {
    let b = bed();

    // no credential: the registry refuses the anonymous pull
    let o = b.pull(&["-q"]);
    assert_eq!(o.status.code(), Some(10), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("anonymous"),
        "{}",
        text(&o)
    );

    // a wrong password is named by its secret, and never printed
    let o = b.pull(&["-q", "--pull-secret", &b.bad]);
    assert_eq!(o.status.code(), Some(10), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("secret/stale"), "{}", text(&o));
    assert!(!err.contains("wrong-password-123"));

    // policy Never, absent
    let o = b.pull(&["-q", "--policy", "Never", "--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(20), "{}", text(&o));

    // the stale secret first, the good one second: the kubelet tries both in order
    let o = b.pull(&[
        "-o",
        "json",
        "--pull-secret",
        &b.bad,
        "--pull-secret",
        &b.good,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["credential"], "secret/regcred");
    assert_eq!(v["fetchedBlobs"], 3);
    assert!(!String::from_utf8_lossy(&o.stdout).contains(PASS));
    // as root the layers were unpacked into their snapshots while they downloaded
    let overlay = v["unpackSkipped"]
        .as_str()
        .is_none_or(|why| !why.contains("overlay"));
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
        && overlay
    {
        assert_eq!(v["rootfsReady"], true, "{}", text(&o));
        assert_eq!(v["snapshotsBuilt"], 2, "{}", text(&o));
        let snapshots = std::fs::read_dir(Path::new(&b.root()).join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(snapshots, 2, "one snapshot per layer, no leftovers");
    } else {
        eprintln!("SKIPPED: unpack while pulling needs root and overlayfs");
    }

    // present now: IfNotPresent does not pull again
    let o = b.pull(&["--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already present"),
        "{}",
        text(&o)
    );

    // Always pulls again but downloads nothing
    let o = b.pull(&["-o", "json", "--policy", "Always", "--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fetchedBlobs"], 0);
    assert_eq!(v["reusedBlobs"], 3);
    assert_eq!(v["snapshotsBuilt"], 0, "{}", text(&o));

    // images
    let o = run(kubepull().args(["images", "--root", &b.root(), "-o", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], b.image);

    // unpack
    let dest = b.dir.path().join("rootfs");
    let o = b.unpack(&dest);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dest.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/motd")).unwrap(),
        "kubepull\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    // rmi then gc frees the blobs
    let o = run(kubepull().args(["rmi", &b.image, "--root", &b.root()]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(kubepull().args(["gc", "--root", &b.root()]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("removed 4 blobs"),
        "{}",
        text(&o)
    );

    // invalid reference
    let o = run(kubepull().args(["pull", "Reg/App:${TAG}", "--root", &b.root(), "-q"]));
    assert_eq!(o.status.code(), Some(19), "{}", text(&o));
}

/// Four processes pull the same image into one store at once: each blob is downloaded once.
#[test]
fn concurrent_processes_download_each_blob_once() {
    let b = bed();
    let children: Vec<_> = (0..4)
        .map(|_| {
            kubepull()
                .args([
                    "pull",
                    &b.image,
                    "--root",
                    &b.root(),
                    "--hosts-dir",
                    &b.hosts(),
                ])
                .args(["-q", "--policy", "Always", "--pull-secret", &b.good])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let img = busybox_image(
        &["/bin/sh", "-c", "echo hello"],
        &[("/etc/motd", b"kubepull\n")],
    );
    for layer in &img.layers {
        let d = kubepull_core::reference::Digest::sha256_of(layer);
        assert_eq!(
            b.reg.wait_blob_gets(&d, 1),
            1,
            "layer {d} fetched more than once:\n{}",
            b.reg.log()
        );
    }
}

fn big_bed(mib: usize) -> Bed {
    big_bed_with_layer(mib).0
}

/// A bed whose image has one big random layer; also returns that layer's digest and size.
fn big_bed_with_layer(mib: usize) -> (Bed, kubepull_core::reference::Digest, u64) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let img = kubepull_testkit::image::layered_image(&[data]);
    let layer = img.layers.last().unwrap();
    let (layer_digest, layer_size) = (
        kubepull_core::reference::Digest::sha256_of(layer),
        layer.len() as u64,
    );
    (bed_serving("team/big", &img), layer_digest, layer_size)
}

/// The registry's access log lines for `GET …/blobs/<digest>`: `(status, bytes sent)`.
fn blob_responses(log: &str, digest: &kubepull_core::reference::Digest) -> Vec<(u16, u64)> {
    let needle = format!("/blobs/{digest} ");
    log.lines()
        .filter(|l| l.contains("\"GET ") && l.contains(&needle))
        .filter_map(|l| {
            // combined log format: ... "GET /v2/... HTTP/1.1" STATUS BYTES "referer" "agent"
            let rest = l.split("\" ").nth(1)?;
            let mut f = rest.split_whitespace();
            let status = f.next()?.parse().ok()?;
            let bytes = f.next()?.parse().ok()?;
            Some((status, bytes))
        })
        .collect()
}

/// `kill -9` at about half of a big layer, then the next pull resumes it: the registry's
/// access log shows one `206` for the rest (nothing sent twice), and the stored blob verifies.
#[test]
fn kill_9_at_half_then_the_next_pull_resumes_with_range() {
    let (b, layer, size) = big_bed_with_layer(24);
    let partial = Path::new(&b.root())
        .join("ingest")
        .join(format!("{}.partial", layer.hex()));
    let mut child = kubepull()
        .args([
            "pull",
            &b.image,
            "--root",
            &b.root(),
            "--hosts-dir",
            &b.hosts(),
        ])
        .args(["-q", "--concurrency", "1", "--pull-secret", &b.good])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if len >= size / 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the layer download never reached half ({len} of {size} bytes)"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before half of the layer"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(
        kept >= size * 45 / 100 && kept < size,
        "killed mid-blob: {kept} of {size}"
    );
    // the registry logs the cut transfer when it notices the closed connection: wait for that
    // line, so it is not taken for a request of the next pull
    let log_before = b
        .reg
        .wait_log(|l| !blob_responses(l, &layer).is_empty())
        .len();

    let o = b.pull(&["-o", "json", "--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["resumed"], kept, "{v}");

    // what the registry sent for the layer after the restart
    let log = b
        .reg
        .wait_log(|l| !blob_responses(&l[log_before..], &layer).is_empty());
    let after = blob_responses(&log[log_before..], &layer);
    assert_eq!(
        after,
        vec![(206, size - kept)],
        "one ranged GET for the rest:\n{}",
        &log[log_before..]
    );
    let sent = after[0].1;
    assert!(
        sent * 100 <= size * 55,
        "the second pull downloaded {sent} of {size} bytes"
    );
    // the stored blob verifies and nothing is left in ingest/
    let stored =
        std::fs::read(Path::new(&b.root()).join("blobs/sha256").join(layer.hex())).unwrap();
    assert_eq!(kubepull_core::reference::Digest::sha256_of(&stored), layer);
    assert!(!partial.exists());
    let o = run(kubepull().args(["images", "--root", &b.root(), "-o", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], b.image);
}

/// A corrupt partial (bytes flipped, as after a crash of the machine): the resume does not
/// verify, the blob is downloaded again in full, and only the verified blob is stored.
#[test]
fn corrupt_partial_is_downloaded_again_in_full() {
    let (b, layer, size) = big_bed_with_layer(8);
    let root = Path::new(&b.root()).to_path_buf();
    std::fs::create_dir_all(root.join("ingest")).unwrap();
    let partial = root.join("ingest").join(format!("{}.partial", layer.hex()));
    std::fs::write(&partial, vec![0x5a; (size / 2) as usize]).unwrap();
    let o = b.pull(&["-o", "json", "--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["resumed"], 0, "{v}");
    let log = b.reg.wait_log(|l| blob_responses(l, &layer).len() >= 2);
    assert_eq!(
        blob_responses(&log, &layer),
        vec![(206, size - size / 2), (200, size)],
        "the rest, then everything:\n{log}"
    );
    let stored = std::fs::read(root.join("blobs/sha256").join(layer.hex())).unwrap();
    assert_eq!(kubepull_core::reference::Digest::sha256_of(&stored), layer);
}

/// `kill -9` of a pull mid-transfer leaves the store consistent (nothing partial under blobs/,
/// no image record) and the next pull completes.
#[test]
fn kill_9_mid_pull_then_pull_again() {
    let b = big_bed(48);
    let mut child = kubepull()
        .args([
            "pull",
            &b.image,
            "--root",
            &b.root(),
            "--hosts-dir",
            &b.hosts(),
        ])
        .args(["-q", "--pull-secret", &b.good])
        .spawn()
        .unwrap();
    // wait until a download is in progress, then SIGKILL
    let ingest = Path::new(&b.root()).join("ingest");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let partial = std::fs::read_dir(&ingest)
            .map(|d| {
                d.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            })
            .unwrap_or(false);
        if partial || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let _ = child.wait();
    // no image record, and every blob present is complete (hashes to its name)
    let o = run(kubepull().args(["images", "--root", &b.root(), "-o", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(0), "{v}");
    for e in std::fs::read_dir(Path::new(&b.root()).join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(e.path()).unwrap();
        let d = kubepull_core::reference::Digest::sha256_of(&bytes);
        assert_eq!(
            d.hex(),
            e.file_name().to_string_lossy(),
            "a partial blob under blobs/"
        );
    }
    // the next pull completes, and detaches whatever overlay a layer build killed midway left
    let o = b.pull(&["-q", "--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&format!("{}/", b.root())),
        "a mount under the store is left:\n{mounts}"
    );
    let o = run(kubepull().args(["gc", "--root", &b.root()]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(kubepull().args(["images", "--root", &b.root(), "-o", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], b.image);
    let _ = &b.bad;
}

/// Disk full: a clear error, exit 1, and the store stays consistent. Needs root to mount a small
/// tmpfs; skipped with a message otherwise.
#[test]
fn disk_full_is_a_clear_error() {
    let b = big_bed(24);
    let root = b.dir.path().join("small");
    std::fs::create_dir_all(&root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&root)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(root.clone());
    let o = run(kubepull()
        .args([
            "pull",
            &b.image,
            "--hosts-dir",
            &b.hosts(),
            "-q",
            "--pull-secret",
            &b.good,
        ])
        .arg("--root")
        .arg(&root));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.to_lowercase().contains("no space left on device"),
        "{err}"
    );
    let o = run(kubepull()
        .args(["images", "-o", "json", "--root"])
        .arg(&root));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(0));
    for e in std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(
            kubepull_core::reference::Digest::sha256_of(&bytes).hex(),
            e.file_name().to_string_lossy()
        );
    }
}

/// `pull --discard-unpacked-layers`: the layers are unpacked and their blobs not kept (manifest
/// and config are); `images` and the pull report it; `gc` is clean; `unpack` names the image
/// and the fix; `pull --no-unpack` downloads the layers again; the option does not combine
/// with `--no-unpack`.
#[test]
fn pull_discarding_unpacked_layers() {
    let b = bed();
    let o = b.pull(&["--help"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("--discard-unpacked-layers"),
        "{}",
        text(&o)
    );
    let o = b.pull(&["--discard-unpacked-layers", "--no-unpack"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let o = b.pull(&[
        "-o",
        "json",
        "--discard-unpacked-layers",
        "--pull-secret",
        &b.good,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    if v["rootfsReady"] != true {
        eprintln!("SKIPPED: unpack while pulling needs root and overlayfs: {v}");
        return;
    }
    assert_eq!(v["layersDiscarded"], 2, "{v}");
    let img = busybox_image(
        &["/bin/sh", "-c", "echo hello"],
        &[("/etc/motd", b"kubepull\n")],
    );
    let root = Path::new(&b.root()).to_path_buf();
    let blob = |b: &[u8]| {
        root.join("blobs/sha256")
            .join(kubepull_core::reference::Digest::sha256_of(b).hex())
    };
    for l in &img.layers {
        assert!(!blob(l).exists(), "layer blob kept");
    }
    assert!(blob(&img.config).exists(), "the config is kept");
    assert!(blob(&img.manifest).exists(), "the manifest is kept");
    let o = run(kubepull().args(["images", "--root", &b.root(), "-o", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["layersDiscarded"], 2, "{v}");

    // pulled again, its snapshots in place (committed by the first pull, as they may be by a
    // concurrent one): the snapshots directory is synced before the record relies on them
    let o = run(kubepull()
        .env("KUBEPULL_PULL_TIMINGS", "1")
        .args([
            "pull",
            &b.image,
            "--root",
            &b.root(),
            "--hosts-dir",
            &b.hosts(),
        ])
        .args(["--discard-unpacked-layers", "--policy", "Always"])
        .args(["--pull-secret", &b.good]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let at = |what: &str| err.find(what);
    assert!(
        at("snapshots directory synced").is_some()
            && at("snapshots directory synced") < at("image recorded"),
        "{err}"
    );

    let o = run(kubepull().args(["gc", "--root", &b.root()]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("removed 0 blobs, 0 partial downloads and 0 layer snapshots"),
        "{}",
        text(&o)
    );

    // unpacked from its snapshots (`unpack` has no registry; no layer blob is in the store)
    let discarded_tree = b.dir.path().join("discarded-rootfs");
    let o = b.unpack(&discarded_tree);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("2 layers copied from their snapshots (layer blobs discarded)"),
        "{}",
        text(&o)
    );
    // the image's tree: its top layer's file over its base
    assert_eq!(
        std::fs::read(discarded_tree.join("etc/motd")).unwrap(),
        b"kubepull\n"
    );
    assert!(discarded_tree.join("bin/busybox").is_file());

    // a layer with neither blob nor snapshot (removed by hand): `unpack` names the fix
    let snapshots = root.join("snapshots");
    let top = std::fs::read_dir(&snapshots)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let aside = b.dir.path().join("aside");
    std::fs::rename(&top, &aside).unwrap();
    let dest = b.dir.path().join("rootfs");
    let o = b.unpack(&dest);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&b.image)
            && err.contains("`kubepull pull --no-unpack` of the image fetches its layer blobs"),
        "{}",
        text(&o)
    );
    std::fs::rename(&aside, &top).unwrap();

    // the fix the message names, as written (the tag's default policy is IfNotPresent): the
    // image is not present for a pull that needs its layer blobs
    let o = b.pull(&["-o", "json", "--no-unpack", "--pull-secret", &b.good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(v["pulled"], false, "{v}");
    for l in &img.layers {
        let d = kubepull_core::reference::Digest::sha256_of(l);
        assert_eq!(b.reg.wait_blob_gets(&d, 2), 2, "{}", b.reg.log());
        assert!(blob(l).exists());
    }
    let o = b.unpack(&dest);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("snapshots"),
        "{}",
        text(&o)
    );
    // from the blobs of the image pulled without the option: the same tree as from the
    // snapshots of the discarded image
    let from_blobs = kubepull_testkit::tree::describe(&dest);
    assert!(from_blobs.contains_key("bin/busybox") && from_blobs.contains_key("etc/motd"));
    assert_eq!(
        kubepull_testkit::tree::describe(&discarded_tree),
        from_blobs
    );
}
