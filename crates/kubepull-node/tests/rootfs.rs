//! Container root filesystems from the store's overlay snapshots, with the real runc: two
//! containers of one image stack the same read-only layer snapshots (one unpack per layer per
//! node) under their own upper directories; the store, snapshot and bundle directories are 0700
//! so a setuid file from a layer is out of reach of unprivileged host users; snapshots are held
//! while containers use them and collected with their image; a filesystem that cannot hold
//! overlay upper directories falls back to unpacking.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kubepull_core::reference::Digest;
use kubepull_node::runc::RuncRuntime;
use kubepull_node::runtime::{ContainerRequest, ContainerRuntime, RuntimeState};
use kubepull_store::{ImageRecord, Store};
use kubepull_testkit::{busybox_image_modes, Image};

const NAME: &str = "registry.example:5000/team/suid:v1";

fn store_image(store: &Store, img: &Image) -> ImageRecord {
    let config = Digest::sha256_of(&img.config);
    store.put_blob_bytes(&config, &img.config).unwrap();
    let mut layers = vec![];
    for l in &img.layers {
        let d = Digest::sha256_of(l);
        store.put_blob_bytes(&d, l).unwrap();
        layers.push((
            d,
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
            l.len() as u64,
        ));
    }
    let manifest = img.digest();
    store.put_blob_bytes(&manifest, &img.manifest).unwrap();
    let rec = ImageRecord::new(
        NAME.into(),
        manifest.clone(),
        manifest,
        config,
        layers,
        "linux/amd64".into(),
        0,
    );
    store.put_image(&rec).unwrap();
    rec
}

/// A container request in a pod of its own, whose sandbox (pause, namespaces) is made first.
/// Each pod has a fresh UID, so container ids (and cgroup paths) never meet between tests.
async fn req(rt: &RuncRuntime, name: &str, cmd: &str) -> ContainerRequest {
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
    use kubepull_node::sandbox::security;
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let c = Container {
        name: name.into(),
        image: Some(NAME.into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), cmd.into()]),
        ..Default::default()
    };
    let mut pod = Pod::default();
    pod.metadata.name = Some("p".into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(format!(
        "{:016x}-{:04x}-rootfs",
        n as u64,
        std::process::id() as u16
    ));
    pod.spec = Some(PodSpec {
        containers: vec![c.clone()],
        ..Default::default()
    });
    let sb = security::pod_sandbox(&pod, String::new(), "/kubepods");
    rt.ensure_sandbox(&sb).await.expect("sandbox");
    ContainerRequest {
        namespace: "default".into(),
        pod_name: "p".into(),
        pod_uid: sb.pod_uid.clone(),
        name: name.into(),
        image: NAME.into(),
        image_ref: String::new(),
        command: c.command.clone().unwrap_or_default(),
        args: vec![],
        env: vec![],
        working_dir: None,
        security: security::effective(&pod, &c).expect("security"),
        sandbox: sb.clone(),
        attempt: 0,
        hostname: sb.hostname.clone(),
        mounts: vec![],
        fs_group: None,
    }
}

struct Bed {
    dir: tempfile::TempDir,
    store: Store,
    rt: RuncRuntime,
    runtime_root: PathBuf,
    ids: Vec<String>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.runtime_root.join(".runc"))
                .args(["delete", "-f", id])
                .status();
        }
        for uid in kubepull_node::sandbox::pause::list(&self.runtime_root) {
            let _ = kubepull_node::sandbox::pause::remove(&self.runtime_root, &uid);
        }
        for (m, _) in mounts_under(self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut v: Vec<(PathBuf, String)> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let fstype = l.split(" - ").nth(1)?.split(' ').next()?.to_string();
            Some((PathBuf::from(f.get(4)?), fstype))
        })
        .filter(|(p, _)| p.starts_with(&dir))
        .collect();
    // deepest first, for unmounting
    v.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    v
}

fn bed(runtime_root: impl FnOnce(&Path) -> PathBuf) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let shim = std::ffi::OsString::from(env!("CARGO_BIN_EXE_kubepull-node-shim"));
    let store = Store::open(&dir.path().join("store")).unwrap();
    let runtime_root = runtime_root(dir.path());
    let rt = RuncRuntime::new(&runtime_root, store.clone(), vec![shim]).unwrap();
    Bed {
        dir,
        store,
        rt,
        runtime_root,
        ids: vec![],
    }
}

async fn running(rt: &RuncRuntime, root: &Path, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rt.state(id).await {
            RuntimeState::Running { .. } => return,
            RuntimeState::Exited { exit_code, .. } => panic!(
                "{id} exited with {exit_code}: {}",
                std::fs::read_to_string(root.join(id).join("container.log")).unwrap_or_default()
            ),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{id} never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `cmd` as the unprivileged user nobody (uid/gid 65534, no supplementary groups).
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

fn image() -> Image {
    busybox_image_modes(
        &["sleep", "3600"],
        &[("/bin/suid-tool", b"#!/bin/sh\necho escalated\n", 0o4755)],
    )
}

#[tokio::test]
async fn containers_share_snapshots_private_dirs_and_gc() {
    let mut b = bed(|d| d.join("containers"));
    let img = image();
    let rec = store_image(&b.store, &img);

    // both at once: one builds the snapshots, the other waits for them
    let r1 = req(&b.rt, "one", "echo one > /tmp/mine; sleep 3600").await;
    let r2 = req(&b.rt, "two", "sleep 3600").await;
    let (c1, c2) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(b.rt.start(&r1), b.rt.start(&r2))
    })
    .await
    .expect("concurrent starts of one image must not block each other");
    let (c1, c2) = (c1.unwrap(), c2.unwrap());
    b.ids.push(c1.clone());
    b.ids.push(c2.clone());
    // a third container while the first two hold their snapshots
    let c3 = tokio::time::timeout(
        Duration::from_secs(60),
        b.rt.start(&req(&b.rt, "three", "sleep 3600").await),
    )
    .await
    .expect("a start while others hold the snapshots must not block")
    .unwrap();
    b.ids.push(c3.clone());
    running(&b.rt, &b.runtime_root, &c3).await;
    b.rt.stop(&c3, Duration::from_secs(1)).await.unwrap();
    b.rt.remove(&c3).await.unwrap();
    running(&b.rt, &b.runtime_root, &c1).await;
    running(&b.rt, &b.runtime_root, &c2).await;

    // one snapshot per layer, shared: no second unpack
    let snaps = b.store.root().join("snapshots");
    let keys: Vec<String> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(keys.len(), rec.layers.len(), "{keys:?}");
    let chain = kubepull_store::chain_keys(&rec.layers);
    for k in &chain {
        assert!(keys.contains(k), "{k} not in {keys:?}");
    }
    // each rootfs is an overlay whose lower directories are those snapshots
    let mounts = mounts_under(b.dir.path());
    for id in [&c1, &c2] {
        let rootfs = b.runtime_root.join(id).join("rootfs");
        assert!(
            mounts.iter().any(|(p, t)| p == &rootfs && t == "overlay"),
            "{id}: {mounts:?}"
        );
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()))
            .unwrap();
        for k in &chain {
            assert!(line.contains(&format!("snapshots/{k}/fs")), "{line}");
        }
        assert!(
            line.contains(&format!(
                "upperdir={}",
                b.runtime_root.join(id).join("upper").display()
            )),
            "{line}"
        );
    }
    // writes go to the container's own upper directory
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.runtime_root.join(&c1).join("upper/tmp/mine").exists() {
        assert!(
            Instant::now() < deadline,
            "c1's write never reached its upper dir"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!b.runtime_root.join(&c2).join("rootfs/tmp/mine").exists());
    for k in &chain {
        assert!(!snaps.join(k).join("fs/tmp/mine").exists());
    }

    // 0700: the store, its snapshots, the runtime root and every bundle
    for d in [
        b.store.root().to_path_buf(),
        snaps.clone(),
        b.runtime_root.clone(),
        b.runtime_root.join(&c1),
        b.runtime_root.join(&c2),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }

    // the setuid file is there (root sees the bit) but nobody cannot reach it on the host
    let in_snapshot = snaps.join(chain.last().unwrap()).join("fs/bin/suid-tool");
    let in_rootfs = b.runtime_root.join(&c1).join("rootfs/bin/suid-tool");
    for p in [&in_snapshot, &in_rootfs] {
        assert_eq!(mode(p) & 0o4000, 0o4000, "{}", p.display());
        let p = p.to_str().unwrap();
        let o = as_nobody(&["stat", p]);
        assert!(!o.status.success(), "nobody could stat {p}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = as_nobody(&[p]);
        assert!(!o.status.success(), "nobody could exec {p}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("escalated"));
    }
    // control: nobody can run setpriv-launched commands at all
    assert!(as_nobody(&["true"]).status.success());

    // the agent restarts: a new runtime finds the containers and holds their snapshots again
    let shim = std::ffi::OsString::from(env!("CARGO_BIN_EXE_kubepull-node-shim"));
    let rt2 = RuncRuntime::new(&b.runtime_root, b.store.clone(), vec![shim]).unwrap();
    drop(std::mem::replace(&mut b.rt, rt2));
    let found = b.rt.list().await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");

    // the image goes while its containers run: gc keeps the snapshots they stack
    assert!(b.store.remove_image(NAME).unwrap());
    let report = b.store.gc().unwrap();
    assert_eq!(report.snapshots_removed, 0, "{report:?}");
    for k in &chain {
        assert!(snaps.join(k).join("fs").is_dir());
    }
    // removing the first container keeps them for the second
    b.rt.stop(&c1, Duration::from_secs(1)).await.unwrap();
    b.rt.remove(&c1).await.unwrap();
    assert!(!b.runtime_root.join(&c1).exists());
    for k in &chain {
        assert!(snaps.join(k).join("fs").is_dir());
    }
    // removing the last one collects them, and unmounts every rootfs
    b.rt.stop(&c2, Duration::from_secs(1)).await.unwrap();
    b.rt.remove(&c2).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(&snaps).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    // (the pod sandboxes' /dev/shm mounts go with the sandboxes, not with the containers)
    let overlays: Vec<_> = mounts_under(b.dir.path())
        .into_iter()
        .filter(|(_, fstype)| fstype == "overlay")
        .collect();
    assert!(overlays.is_empty(), "{overlays:?}");
}

/// The bundles live on a filesystem that cannot hold overlay upper directories (an overlay
/// mount): the container still runs, from an unpacked copy of the image.
#[tokio::test]
async fn falls_back_to_unpack_when_upper_dirs_cannot_be_overlaid() {
    let mut b = bed(|d| {
        for s in ["l", "u", "w", "m"] {
            std::fs::create_dir_all(d.join("ovl").join(s)).unwrap();
        }
        let o = d.join("ovl");
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                o.join("l").display(),
                o.join("u").display(),
                o.join("w").display()
            ))
            .arg(o.join("m"))
            .status()
            .unwrap();
        assert!(st.success());
        o.join("m/containers")
    });
    let img = image();
    store_image(&b.store, &img);
    let r = req(&b.rt, "one", "sleep 3600").await;
    let c = b.rt.start(&r).await.unwrap();
    b.ids.push(c.clone());
    running(&b.rt, &b.runtime_root, &c).await;
    let bundle = b.runtime_root.join(&c);
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert!(!bundle.join("rootfs.overlay.json").exists());
    let rootfs = bundle.join("rootfs");
    assert!(
        !mounts_under(b.dir.path()).iter().any(|(p, _)| p == &rootfs),
        "the fallback must not mount"
    );
    assert_eq!(mode(&bundle), 0o700);
    b.rt.stop(&c, Duration::from_secs(1)).await.unwrap();
    b.rt.remove(&c).await.unwrap();
    assert!(!bundle.exists());
}
