//! `kubepull push` and `scripts/image.sh` against the real registry (Debian `docker-registry`,
//! TLS from a throw-away CA trusted through `--hosts-dir`, htpasswd Basic auth): the image of
//! kubepull itself is built, pushed, pulled back and unpacked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubepull_testkit::fixture::pull_secret_file;
use kubepull_testkit::Registry;

const USER: &str = "pusher";
const PASS: &str = "Push-Secret-Pass-51";

fn kubepull() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubepull"));
    c.env_remove("DOCKER_CONFIG").env("HOME", "/nonexistent");
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the kubepull image from this test build's binary with `scripts/image.sh`, keeping the
/// layout in `out`, pushing it as `image`.
pub fn image_sh(out: &Path, image: &str, push_flags: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/image.sh"))
        .arg(image)
        .args(push_flags)
        .env("KUBEPULL_BIN", env!("CARGO_BIN_EXE_kubepull"))
        .env("OUT", out)
        .env("HOME", "/nonexistent")
        .output()
        .expect("run scripts/image.sh")
}

#[test]
fn image_sh_pushes_a_runnable_kubepull_image_and_push_refuses_bad_input() {
    let reg = Registry::start(&[(USER, PASS)]);
    let dir = tempfile::tempdir().unwrap();
    // Docker's certs.d layout (DIR/HOST/ca.crt, no hosts.toml): the registry with every
    // capability, push included, trusted through its CA
    let hosts = dir.path().join("certs.d");
    std::fs::create_dir_all(hosts.join(reg.host())).unwrap();
    std::fs::write(hosts.join(reg.host()).join("ca.crt"), reg.ca_pem()).unwrap();
    let hosts = hosts.display().to_string();
    let good = pull_secret_file(dir.path(), "regcred", &reg.host(), USER, PASS);
    let bad = pull_secret_file(dir.path(), "stale", &reg.host(), USER, "Wrong-Pass-0000");
    let layout = dir.path().join("layout");
    let image = format!("{}/tools/kubepull:test", reg.host());

    // a wrong password: refused with the credentials exit code, the password never printed
    let o = image_sh(
        &layout,
        &image,
        &["-q", "--secret", &bad, "--hosts-dir", &hosts],
    );
    assert_eq!(o.status.code(), Some(10), "{}", text(&o));
    assert!(!text(&o).contains("Wrong-Pass-0000"), "{}", text(&o));

    let o = image_sh(
        &layout,
        &image,
        &["-q", "--secret", &good, "--hosts-dir", &hosts],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(out.starts_with(&format!("{image}@sha256:")), "{}", text(&o));
    let digest = out.rsplit_once('@').unwrap().1.to_string();
    // the layer went up in chunks (PATCH), not in one request
    assert!(
        reg.log()
            .contains("PATCH /v2/tools/kubepull/blobs/uploads/"),
        "{}",
        reg.log()
    );

    // pushed again: every blob is already there, the same digest
    let o = kubepull()
        .args(["push", "--secret", &good, "--hosts-dir", &hosts])
        .arg(&layout)
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&digest));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("already present")
            .count(),
        2,
        "{}",
        text(&o)
    );

    // pulled back and unpacked: the binary, its loader and libraries, nothing of the host else
    let root = dir.path().join("store");
    let o = kubepull()
        .args([
            "pull",
            "-q",
            "--no-unpack",
            "--pull-secret",
            &good,
            "--hosts-dir",
            &hosts,
            "--root",
        ])
        .arg(&root)
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let tree = dir.path().join("tree");
    let o = kubepull()
        .args(["unpack", "--root"])
        .arg(&root)
        .arg(&image)
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let bin = tree.join("usr/local/bin/kubepull");
    assert!(bin.is_file(), "{}", bin.display());
    let ld = std::fs::read_dir(tree.join("lib64"))
        .map(|d| d.count())
        .unwrap_or(0)
        + std::fs::read_dir(tree.join("lib"))
            .map(|d| d.count())
            .unwrap_or(0);
    assert!(ld > 0, "the dynamic loader is in the image");
    let passwd = std::fs::read_to_string(tree.join("etc/passwd")).unwrap();
    assert!(passwd.contains(":65532:"));
    // the image's own binary runs (through its own loader and libraries)
    let loader = ["lib64/ld-linux-x86-64.so.2", "lib/ld-linux-aarch64.so.1"]
        .iter()
        .map(|l| tree.join(l))
        .find(|p| p.exists());
    if let Some(loader) = loader {
        let libs = ["lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"]
            .iter()
            .map(|l| tree.join(l).display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let o = Command::new(loader)
            .args(["--library-path", &libs])
            .arg(&bin)
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }

    // not a layout: usage error naming what is missing
    let o = kubepull()
        .args(["push", "--secret", &good, "--hosts-dir", &hosts])
        .arg(dir.path())
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("oci-layout"),
        "{}",
        text(&o)
    );

    // a digest as the target is refused
    let o = kubepull()
        .args(["push", "--secret", &good, "--hosts-dir", &hosts])
        .arg(&layout)
        .arg(format!("{}/tools/kubepull@{digest}", reg.host()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // a layer truncated on disk: the layout is refused before anything is sent
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&biggest)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 1).unwrap();
    let o = kubepull()
        .args(["push", "--secret", &good, "--hosts-dir", &hosts])
        .arg(&layout)
        .arg(format!("{}/tools/other:1", reg.host()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("corrupt"),
        "{}",
        text(&o)
    );
    // the same length but other bytes: the upload is abandoned, never committed
    f.set_len(len).unwrap();
    let o = kubepull()
        .args(["push", "--secret", &good, "--hosts-dir", &hosts])
        .arg(&layout)
        .arg(format!("{}/tools/other:1", reg.host()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(18), "{}", text(&o));
}
