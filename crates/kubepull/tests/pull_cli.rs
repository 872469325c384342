//! `kubepull pull`, `images`, `rmi`, `gc`, `unpack` against the real registry (Debian
//! `docker-registry`, TLS from a throw-away CA trusted through `--hosts-dir`, htpasswd Basic auth).

use std::path::Path;
use std::process::{Command, Output};

use kubepull_testkit::{busybox_image, Registry};

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

fn secret_file(dir: &Path, name: &str, host: &str, user: &str, pass: &str) -> String {
    let cfg = format!(r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{pass}"}}}}}}"#);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cfg);
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &p,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64}\n"),
    )
    .unwrap();
    p.display().to_string()
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

fn bed() -> Bed {
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(
        &["/bin/sh", "-c", "echo hello"],
        &[("/etc/motd", b"kubepull\n")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/app", "v1", &img));
    let dir = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(&dir.path().join("hosts"));
    let good = secret_file(dir.path(), "regcred", &reg.host(), USER, PASS);
    let bad = secret_file(dir.path(), "stale", &reg.host(), USER, "wrong-password-123");
    let image = format!("{}/team/app:v1", reg.host());
    Bed {
        reg,
        dir,
        image,
        good,
        bad,
    }
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

    // images
    let o = run(kubepull().args(["images", "--root", &b.root(), "-o", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], b.image);

    // unpack
    let dest = b.dir.path().join("rootfs");
    let o = run(kubepull().args([
        "unpack",
        &b.image,
        dest.to_str().unwrap(),
        "--root",
        &b.root(),
    ]));
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
            b.reg.blob_gets(&d),
            1,
            "layer {d} fetched more than once:\n{}",
            b.reg.log()
        );
    }
}
