//! Containers with the real `runc`.
//!
//! Each container gets a bundle under `<root>/<id>/` (the root and every bundle 0700):
//! `config.json` (OCI runtime spec 1.0.2, written from the pod's container and the image
//! config), `rootfs/`, the log file and, once the container has exited, `exit.json`.
//!
//! The root filesystem is an overlay mount of the image's layer snapshots from the node store
//! ([`Store::layer_snapshot`]: each layer unpacked once per node, read-only below every
//! container of the image) with the container's own `upper/` and `work/` in its bundle. The
//! snapshots are held against garbage collection while the container exists
//! ([`kubepull_store::SnapshotLease`], by the shim for the container's whole life and by the
//! agent, which takes it again when it restarts and finds the container), and snapshots no image
//! uses any more are removed when a container is removed.
//! Where overlay cannot be used (not root, too many layers, or a filesystem that cannot hold
//! overlay upper directories) the image is unpacked into `rootfs/` instead, with a warning in
//! the log.
//!
//! Supervision survives the node agent: a small shim (the `kubepull` binary re-executed as
//! `kubepull runtime-shim`, in its own session) runs `runc run` in the foreground with the
//! container's stdout and stderr appended to the log file, and writes `exit.json` when runc
//! returns. A restarted node agent finds its containers again with [`RuncRuntime::list`].
//!
//! Each pod runs in a sandbox ([`crate::sandbox`]): its own network namespace
//! (`/run/netns/kp-…`), IPC and UTS namespaces held by a pause process, a PID namespace per
//! container (shared with `shareProcessNamespace`), per-pod `/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname` and `/dev/shm`, and a cgroup under `/kubepods/<qos>/pod<uid>`. The OCI spec
//! is containerd's ([`crate::sandbox::spec`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kubepull_core::reference::Digest;
use kubepull_store::Store;
use serde::{Deserialize, Serialize};

use crate::runtime::{
    ContainerRequest, ContainerRuntime, LogOptions, LogStream, RuntimeContainer, RuntimeState,
};
use kubepull_images::store_name;

/// The largest image config read.
const MAX_CONFIG: u64 = 8 << 20;

/// Container metadata kept beside the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    pod_uid: String,
    name: String,
    attempt: u32,
    started_at: Option<String>,
}

/// What the shim writes when the container exits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    /// Exit code; 128+N for signal N.
    pub exit_code: i32,
    /// RFC 3339.
    pub finished_at: String,
    /// `OOMKilled` when the container's memory cgroup recorded an OOM kill; `StartError` when
    /// runc could not start it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The image config fields a container uses (OCI image-spec `config`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `Env`, `K=V`.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `User`.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Deserialize)]
struct ImageConfigFile {
    #[serde(default)]
    config: ImageConfig,
}

/// The process arguments Kubernetes runs (kubernetes `pkg/kubelet/kuberuntime`,
/// `kuberuntime_container.go` via the CRI, and the "Define a Command and Arguments" rules):
/// `command` replaces the entrypoint and then the image `Cmd` is ignored; `args` replace `Cmd`.
pub fn process_args(image: &ImageConfig, command: &[String], args: &[String]) -> Vec<String> {
    let entry = image.entrypoint.clone().unwrap_or_default();
    let cmd = image.cmd.clone().unwrap_or_default();
    match (command.is_empty(), args.is_empty()) {
        (true, true) => [entry, cmd].concat(),
        (true, false) => [entry, args.to_vec()].concat(),
        (false, true) => command.to_vec(),
        (false, false) => [command.to_vec(), args.to_vec()].concat(),
    }
}

/// Image env first, container env over it (same name: container wins, keeping image order).
pub fn merge_env(image: &ImageConfig, container: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = image
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    for (k, v) in container {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Resolves the image `User` (`uid[:gid]` or names from the rootfs `/etc/passwd`/`/etc/group`,
/// read without following links out of the rootfs).
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let read = |f: &str| -> String {
        let p = rootfs.join(f);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() && m.len() < (1 << 20) => {
                std::fs::read_to_string(&p).unwrap_or_default()
            }
            _ => String::new(),
        }
    };
    let (uid, primary_gid) = match u.parse::<u64>() {
        Ok(n) if n > i32::MAX as u64 => {
            // containerd WithUser
            return Err(format!("invalid USER value {u:?}: uid out of range"));
        }
        Ok(n) => {
            let n = n as u32;
            let gid = read("etc/passwd")
                .lines()
                .find(|l| l.split(':').nth(2) == Some(u))
                .and_then(|l| l.split(':').nth(3).and_then(|g| g.parse().ok()))
                .unwrap_or(0);
            (n, gid)
        }
        Err(_) => {
            let passwd = read("etc/passwd");
            let line = passwd
                .lines()
                .find(|l| l.split(':').next() == Some(u))
                .ok_or_else(|| {
                    format!("unable to find user {u}: no matching entries in passwd file")
                })?;
            let f: Vec<&str> = line.split(':').collect();
            (
                f.get(2).and_then(|x| x.parse().ok()).unwrap_or(0),
                f.get(3).and_then(|x| x.parse().ok()).unwrap_or(0),
            )
        }
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read("etc/group")
                .lines()
                .find(|l| l.split(':').next() == Some(g))
                .and_then(|l| l.split(':').nth(2).and_then(|x| x.parse().ok()))
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    Ok((uid, gid))
}

/// A runc id from pod UID, container name and attempt (runc accepts `^[\w+-\.]+$`).
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}_{}_{attempt}", clean(pod_uid), clean(name))
}

/// The runc runtime.
#[derive(Clone)]
pub struct RuncRuntime {
    root: PathBuf,
    runc_root: PathBuf,
    store: Store,
    runc: PathBuf,
    shim: Vec<OsString>,
    node_caps: Vec<String>,
    mem_capacity: i128,
    snapshots: bool,
    leases: Arc<Mutex<HashMap<String, kubepull_store::SnapshotLease>>>,
}

/// The marker of an overlay root filesystem in a bundle: the store and the layers it stacks,
/// for the shim (which holds the snapshots for the container's whole life, also while the agent
/// is stopped) and for the agent after a restart.
const OVERLAY_MARKER: &str = "rootfs.overlay.json";

#[derive(Serialize, Deserialize)]
struct OverlayMarker {
    store: PathBuf,
    layers: Vec<kubepull_store::LayerRecord>,
}

/// The snapshot lease of a bundle's overlay root filesystem, if it has one.
fn bundle_lease(bundle: &Path) -> Option<Result<kubepull_store::SnapshotLease, String>> {
    let bytes = std::fs::read(bundle.join(OVERLAY_MARKER)).ok()?;
    let r = (|| {
        let m: OverlayMarker =
            serde_json::from_slice(&bytes).map_err(|e| format!("{OVERLAY_MARKER}: {e}"))?;
        let store = Store::open(&m.store).map_err(|e| e.to_string())?;
        store.snapshot_lease(&m.layers).map_err(|e| e.to_string())
    })();
    Some(r)
}

fn private_dir(d: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", d.display()))
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

impl RuncRuntime {
    /// A runtime keeping bundles under `root` (and runc's own state under `root/.runc`).
    /// `shim` is the command that runs the shim (`[kubepull, runtime-shim]`).
    pub fn new(root: &Path, store: Store, shim: Vec<OsString>) -> Result<Self, String> {
        let runc = which("runc").ok_or("runc not found in PATH (apt-get install -y runc)")?;
        private_dir(root)?;
        private_dir(&root.join(".runc"))?;
        Ok(RuncRuntime {
            root: root.to_path_buf(),
            runc_root: root.join(".runc"),
            store,
            runc,
            shim,
            node_caps: crate::sandbox::spec::current_caps(),
            mem_capacity: crate::sandbox::security::node_memory(),
            snapshots: true,
            leases: Arc::default(),
        })
    }

    /// Unpacks every container's image into its bundle instead of mounting the store's
    /// snapshots (slower, more disk; for hosts without overlayfs).
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    /// Makes `bundle/rootfs`: the overlay of the image's snapshots, or an unpacked copy.
    fn make_rootfs(
        &self,
        name: &str,
        rec: &kubepull_store::ImageRecord,
        bundle: &Path,
        id: &str,
    ) -> Result<(), String> {
        let rootfs = bundle.join("rootfs");
        if self.snapshots {
            let opts = Default::default();
            let r = self
                .store
                .layer_snapshot(name, &rec.layers, &opts)
                .map_err(|e| e.to_string())
                .and_then(|lowers| {
                    // after the build: a build takes the snapshot's lock exclusively
                    let lease = self
                        .store
                        .snapshot_lease(&rec.layers)
                        .map_err(|e| e.to_string())?;
                    let upper = bundle.join("upper");
                    std::fs::create_dir_all(&upper)
                        .map_err(|e| format!("create {}: {e}", upper.display()))?;
                    {
                        use std::os::unix::fs::PermissionsExt;
                        // the root directory of the container's filesystem
                        std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o755))
                            .map_err(|e| format!("chmod {}: {e}", upper.display()))?;
                    }
                    kubepull_store::mount_rootfs(&lowers, &upper, &bundle.join("work"), &rootfs)
                        .map_err(|e| e.to_string())?;
                    Ok(lease)
                });
            match r {
                Ok(lease) => {
                    let marker = serde_json::to_vec(&OverlayMarker {
                        store: self.store.root().to_path_buf(),
                        layers: rec.layers.clone(),
                    })
                    .unwrap_or_default();
                    if let Err(e) = std::fs::write(bundle.join(OVERLAY_MARKER), marker) {
                        let _ = kubepull_store::unmount_rootfs(&rootfs);
                        return Err(format!("write {OVERLAY_MARKER}: {e}"));
                    }
                    self.leases_map().insert(id.to_string(), lease);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(
                        container = id,
                        image = name,
                        error = %e,
                        "overlay root filesystem from the store's snapshots not possible here; \
                         unpacking the image into the bundle instead"
                    );
                    let _ = kubepull_store::unmount_rootfs(&rootfs);
                    for d in ["upper", "work", "rootfs"] {
                        let _ = std::fs::remove_dir_all(bundle.join(d));
                    }
                }
            }
        }
        // an image pulled without keeping its layer blobs (--discard-unpacked-layers) is
        // copied from its snapshots, which hold the same tree (unpack_image does either)
        kubepull_store::unpack_image(&self.store, rec, &rootfs, &Default::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn leases_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, kubepull_store::SnapshotLease>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unmounts a bundle's overlay root filesystem, if any. Errors if it stays mounted (the
    /// bundle must then not be removed: removal would reach through the mount).
    fn release_rootfs(&self, id: &str, bundle: &Path) -> Result<(), String> {
        let rootfs = bundle.join("rootfs");
        if bundle.join(OVERLAY_MARKER).exists() || is_mount_point(&rootfs) {
            kubepull_store::unmount_rootfs(&rootfs).map_err(|e| e.to_string())?;
            if is_mount_point(&rootfs) {
                return Err(format!("{} is still mounted", rootfs.display()));
            }
        }
        self.leases_map().remove(id);
        Ok(())
    }

    /// Holds the snapshots of a container found on disk (after a restart of the agent).
    fn adopt_lease(&self, id: &str) {
        if self.leases_map().contains_key(id) {
            return;
        }
        match bundle_lease(&self.dir(id)) {
            None => {}
            Some(Ok(l)) => {
                self.leases_map().insert(id.to_string(), l);
            }
            Some(Err(e)) => {
                tracing::warn!(container = id, error = %e, "could not hold the container's snapshots")
            }
        }
    }

    /// The node's memory in bytes (for `oom_score_adj` of Burstable containers).
    pub fn mem_capacity(&self) -> i128 {
        self.mem_capacity
    }

    fn read_image_config(
        &self,
        image: &str,
    ) -> Result<(ImageConfig, kubepull_store::ImageRecord), String> {
        let name = store_name(image).map_err(|e| e.to_string())?;
        let rec = self
            .store
            .image(&name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("image {name} is not in the node store"))?;
        let config_digest = Digest::parse(&rec.config_digest).map_err(|e| e.to_string())?;
        let config: ImageConfigFile = serde_json::from_slice(
            &self
                .store
                .read_blob(&config_digest, MAX_CONFIG)
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("image config: {e}"))?;
        Ok((config.config, rec))
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn runc_cmd(&self) -> Command {
        let mut c = Command::new(&self.runc);
        c.arg("--root").arg(&self.runc_root);
        c
    }

    /// The container's bundle: rootfs (an overlay of the image's snapshots), config.json and
    /// meta.json. A failure after the rootfs is mounted (a user the image does not have, a
    /// security context the spec refuses) unmounts it and removes the bundle, so a container
    /// that cannot be created leaves nothing mounted.
    fn prepare(&self, req: &ContainerRequest, id: &str) -> Result<PathBuf, String> {
        self.prepare_bundle(req, id).inspect_err(|_| {
            let bundle = self.dir(id);
            if bundle.exists() && self.release_rootfs(id, &bundle).is_ok() {
                let _ = std::fs::remove_dir_all(&bundle);
            }
        })
    }

    fn prepare_bundle(&self, req: &ContainerRequest, id: &str) -> Result<PathBuf, String> {
        let bundle = self.dir(id);
        if bundle.exists() {
            let _ = self.runc_cmd().args(["delete", "-f", id]).output();
            self.release_rootfs(id, &bundle)?;
            std::fs::remove_dir_all(&bundle)
                .map_err(|e| format!("clean {}: {e}", bundle.display()))?;
        }
        private_dir(&bundle)?;
        let sandbox = crate::sandbox::pause::running(&self.root, &req.pod_uid)?;
        let (image, rec) = self.read_image_config(&req.image)?;
        let rootfs = bundle.join("rootfs");
        let name = store_name(&req.image).map_err(|e| e.to_string())?;
        self.make_rootfs(&name, &rec, &bundle, id)?;
        let args = process_args(&image, &req.command, &req.args);
        let env = merge_env(&image, &req.env);
        let mut sec = req.security.clone();
        if !self.node_caps.iter().any(|c| c == "CAP_SYS_RESOURCE") {
            // containerd `restrict_oom_score_adj` (pkg/sys/oom_linux.go): without
            // CAP_SYS_RESOURCE a score below our own cannot be set, so it is raised to ours
            let own = std::fs::read_to_string("/proc/self/oom_score_adj")
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .unwrap_or(0);
            sec.resources.oom_score_adj = sec.resources.oom_score_adj.max(own);
        }
        let sec = &sec;
        // the kubelet sends runAsUser, else the image user's uid or name (the image's group is
        // dropped: containerd getUserFromImage); containerd resolves it in the rootfs (WithUser)
        let user = match sec.run_as_user {
            Some(u) => u.to_string(),
            None => image
                .user
                .as_deref()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string(),
        };
        let (uid, mut gid) = resolve_user(&rootfs, &user)?;
        if let Some(g) = sec.run_as_group {
            gid = u32::try_from(g)
                .ok()
                .filter(|g| *g <= i32::MAX as u32)
                .ok_or_else(|| format!("runAsGroup {g} is out of range"))?;
        }
        // supplementalGroupsPolicy Merge: primary gid, the user's groups in the image's
        // /etc/group, then fsGroup and supplementalGroups
        let mut additional_gids = vec![gid];
        for g in image_groups(&rootfs, uid)
            .into_iter()
            .chain(sec.supplemental_groups.iter().map(|g| *g as u32))
            .chain(req.fs_group.and_then(|g| u32::try_from(g).ok()))
        {
            if !additional_gids.contains(&g) {
                additional_gids.push(g);
            }
        }
        let cwd = req
            .working_dir
            .clone()
            .or(image.working_dir.clone())
            .unwrap_or_else(|| "/".into());
        let sb = &req.sandbox;
        let hostname = std::fs::read_to_string(sandbox.dir.join("hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let input = crate::sandbox::spec::SpecInput {
            args,
            env,
            cwd,
            uid,
            gid,
            additional_gids,
            hostname,
            namespaces: sandbox.container_namespaces(sb),
            binds: {
                let mut b = sandbox.binds(sb, sec.read_only_root);
                // the pod's volumes, in volumeMounts order
                b.extend(
                    req.mounts
                        .iter()
                        .map(|m| (m.container_path.clone(), m.host_path.clone(), m.read_only)),
                );
                b
            },
            cgroups_path: format!("{}/{id}", sb.cgroup_parent),
            cgroup_v2: cgroup_v2(),
            swap_accounting: swap_accounting(),
            node_caps: self.node_caps.clone(),
            sysctls: vec![],
            annotations: vec![
                (
                    "io.kubernetes.cri.container-type".into(),
                    "container".into(),
                ),
                ("io.kubernetes.cri.container-name".into(), req.name.clone()),
                (
                    "io.kubernetes.cri.sandbox-name".into(),
                    req.pod_name.clone(),
                ),
                (
                    "io.kubernetes.cri.sandbox-namespace".into(),
                    req.namespace.clone(),
                ),
                ("io.kubernetes.cri.sandbox-uid".into(), req.pod_uid.clone()),
                ("io.kubernetes.cri.image-name".into(), req.image.clone()),
            ],
        };
        let spec = crate::sandbox::spec::build(&input, sec).map_err(|e| e.to_string())?;
        let w = |f: &str, s: String| {
            std::fs::write(bundle.join(f), s).map_err(|e| format!("write {f}: {e}"))
        };
        w(
            "config.json",
            serde_json::to_string_pretty(&spec).map_err(|e| format!("spec: {e}"))?,
        )?;
        let meta = Meta {
            pod_uid: req.pod_uid.clone(),
            name: req.name.clone(),
            attempt: req.attempt,
            started_at: None,
        };
        w(
            "meta.json",
            serde_json::to_string(&meta).unwrap_or_default(),
        )?;
        Ok(bundle)
    }

    fn meta(&self, id: &str) -> Option<Meta> {
        serde_json::from_slice(&std::fs::read(self.dir(id).join("meta.json")).ok()?).ok()
    }

    fn exit(&self, id: &str) -> Option<ExitRecord> {
        serde_json::from_slice(&std::fs::read(self.dir(id).join("exit.json")).ok()?).ok()
    }

    fn runc_status(&self, id: &str) -> Option<String> {
        let out = self.runc_cmd().args(["state", id]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }
}

/// The gids of the groups in the rootfs `/etc/group` that list the user named by `uid` in the
/// rootfs `/etc/passwd` as a member (containerd `WithAdditionalGIDs`).
pub fn image_groups(rootfs: &Path, uid: u32) -> Vec<u32> {
    let read = |f: &str| -> String {
        let p = rootfs.join(f);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() && m.len() < (1 << 20) => {
                std::fs::read_to_string(&p).unwrap_or_default()
            }
            _ => String::new(),
        }
    };
    let passwd = read("etc/passwd");
    let Some(name) = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(&uid.to_string()))
        .and_then(|l| l.split(':').next())
    else {
        return vec![];
    };
    read("etc/group")
        .lines()
        .filter(|l| {
            l.split(':')
                .nth(3)
                .is_some_and(|m| m.split(',').any(|x| x == name))
        })
        .filter_map(|l| l.split(':').nth(2).and_then(|g| g.parse().ok()))
        .collect()
}

/// cgroup v2 only (the unified hierarchy at `/sys/fs/cgroup`), as runc decides it.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn swap_accounting() -> bool {
    if cgroup_v2() {
        Path::new("/sys/fs/cgroup/memory.swap.max").exists()
            || std::fs::read_dir("/sys/fs/cgroup")
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.path().join("memory.swap.max").exists())
                })
                .unwrap_or(false)
    } else {
        Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    }
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return false;
    };
    let real = real.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(real.as_str()))
        })
        .unwrap_or(false)
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

#[async_trait]
impl ContainerRuntime for RuncRuntime {
    async fn start(&self, req: &ContainerRequest) -> Result<String, String> {
        let id = container_id(&req.pod_uid, &req.name, req.attempt);
        let req2 = req.clone();
        let rt = self.clone();
        let id2 = id.clone();
        tokio::task::spawn_blocking(move || {
            let bundle = rt.prepare(&req2, &id2)?;
            let mut meta = rt.meta(&id2).ok_or("container metadata missing")?;
            meta.started_at = Some(now_rfc3339());
            std::fs::write(
                bundle.join("meta.json"),
                serde_json::to_string(&meta).unwrap_or_default(),
            )
            .map_err(|e| format!("write meta: {e}"))?;
            let (prog, rest) = rt.shim.split_first().ok_or("no shim command")?;
            let mut c = Command::new(prog);
            c.args(rest)
                .arg(&rt.runc)
                .arg(&rt.runc_root)
                .arg(&bundle)
                .arg(&id2)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            let mut child = c.spawn().map_err(|e| format!("start shim: {e}"))?;
            // reap the shim in the background; it outlives us only if we die first
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            // wait until runc reports the container (or it already exited)
            for _ in 0..200 {
                if rt.exit(&id2).is_some() {
                    break;
                }
                if matches!(
                    rt.runc_status(&id2).as_deref(),
                    Some("running") | Some("stopped")
                ) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Ok::<_, String>(())
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(id)
    }

    async fn state(&self, id: &str) -> RuntimeState {
        let started = self
            .meta(id)
            .and_then(|m| m.started_at)
            .and_then(|s| parse_time(&s));
        if let Some(e) = self.exit(id) {
            let finished = parse_time(&e.finished_at).unwrap_or_else(jiff::Timestamp::now);
            return RuntimeState::Exited {
                exit_code: e.exit_code,
                // containerd: a TaskOOM makes the reason OOMKilled whatever the exit code
                reason: match e.reason {
                    Some(r) => r,
                    None if e.exit_code == 0 => "Completed".into(),
                    None => "Error".into(),
                },
                started_at: started,
                finished_at: finished,
            };
        }
        match self.runc_status(id).as_deref() {
            Some("running") | Some("created") | Some("paused") => RuntimeState::Running {
                started_at: started.unwrap_or_else(jiff::Timestamp::now),
            },
            _ if self.dir(id).join("config.json").exists() => {
                // the shim is writing the exit record, or died with the machine
                RuntimeState::Created
            }
            _ => RuntimeState::Unknown,
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), String> {
        if self.exit(id).is_some() {
            return Ok(());
        }
        let _ = self.runc_cmd().args(["kill", id, "TERM"]).output();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.exit(id).is_some() || self.runc_status(id).is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.runc_cmd().args(["kill", "--all", id, "KILL"]).output();
        for _ in 0..50 {
            if self.exit(id).is_some() || self.runc_status(id).is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), String> {
        let _ = self.runc_cmd().args(["delete", "-f", id]).output();
        let d = self.dir(id);
        if d.exists() {
            self.release_rootfs(id, &d)?;
            std::fs::remove_dir_all(&d).map_err(|e| format!("remove {}: {e}", d.display()))?;
        }
        // snapshots of images that are gone and that no other container stacks
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || store.gc_unused_snapshots()).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "removing unused snapshots failed");
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<RuntimeContainer>, String> {
        let mut out = vec![];
        let rd = std::fs::read_dir(&self.root).map_err(|e| e.to_string())?;
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            if let Some(m) = self.meta(&id) {
                self.adopt_lease(&id);
                out.push(RuntimeContainer {
                    id,
                    pod_uid: m.pod_uid,
                    name: m.name,
                    attempt: m.attempt,
                });
            }
        }
        Ok(out)
    }

    async fn ensure_sandbox(&self, sandbox: &crate::sandbox::PodSandbox) -> Result<bool, String> {
        let (root, sb, shim) = (self.root.clone(), sandbox.clone(), self.shim.clone());
        tokio::task::spawn_blocking(move || {
            crate::sandbox::pause::ensure(&root, &sb, &shim).map(|(_, created)| created)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> Result<(), String> {
        let (root, uid) = (self.root.clone(), pod_uid.to_string());
        tokio::task::spawn_blocking(move || crate::sandbox::pause::remove(&root, &uid))
            .await
            .map_err(|e| e.to_string())?
    }

    async fn sandboxes(&self) -> Vec<String> {
        crate::sandbox::pause::list(&self.root)
    }

    async fn image_user(&self, image: &str) -> Result<Option<String>, String> {
        let rt = self.clone();
        let image = image.to_string();
        tokio::task::spawn_blocking(move || {
            rt.read_image_config(&image)
                .map(|(c, _)| Some(c.user.unwrap_or_default()))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, String> {
        let path = self.dir(id).join("container.log");
        let exit_path = self.dir(id).join("exit.json");
        let data = tokio::fs::read(&path).await.unwrap_or_default();
        let mut start = 0usize;
        if let Some(n) = opts.tail_lines {
            let mut count = 0u64;
            let end = if data.ends_with(b"\n") {
                data.len() - 1
            } else {
                data.len()
            };
            start = 0;
            for i in (0..end).rev() {
                if data[i] == b'\n' {
                    count += 1;
                    if count == n {
                        start = i + 1;
                        break;
                    }
                }
            }
            if n == 0 {
                start = data.len();
            }
        }
        let first = Bytes::copy_from_slice(&data[start..]);
        let offset = data.len() as u64;
        let follow = opts.follow;
        let stream = futures_util::stream::unfold(
            (Some(first), offset, follow, path, exit_path, false),
            |(first, mut offset, follow, path, exit_path, done)| async move {
                if let Some(f) = first {
                    return Some((Ok(f), (None, offset, follow, path, exit_path, done)));
                }
                if !follow || done {
                    return None;
                }
                loop {
                    let exited = exit_path.exists();
                    let len = tokio::fs::metadata(&path)
                        .await
                        .map(|m| m.len())
                        .unwrap_or(0);
                    if len > offset {
                        use tokio::io::{AsyncReadExt, AsyncSeekExt};
                        let mut f = match tokio::fs::File::open(&path).await {
                            Ok(f) => f,
                            Err(e) => {
                                return Some((
                                    Err(e),
                                    (None, offset, follow, path, exit_path, true),
                                ))
                            }
                        };
                        let _ = f.seek(std::io::SeekFrom::Start(offset)).await;
                        let mut buf = vec![0u8; (len - offset).min(1 << 20) as usize];
                        let n = f.read(&mut buf).await.unwrap_or(0);
                        buf.truncate(n);
                        offset += n as u64;
                        return Some((
                            Ok(Bytes::from(buf)),
                            (None, offset, follow, path, exit_path, false),
                        ));
                    }
                    if exited {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        );
        Ok(Box::pin(stream))
    }
}

/// Whether the container's memory cgroup recorded an OOM kill: cgroup v2 `memory.events`
/// `oom_kill`, cgroup v1 `memory.oom_control` `oom_kill` (containerd learns it from the
/// TaskOOM event its shim derives from the same counters).
fn oom_killed(cgroups_path: &str) -> bool {
    let rel = cgroups_path.trim_start_matches('/');
    let (file, base) = if cgroup_v2() {
        ("memory.events", PathBuf::from("/sys/fs/cgroup"))
    } else {
        ("memory.oom_control", PathBuf::from("/sys/fs/cgroup/memory"))
    };
    std::fs::read_to_string(base.join(rel).join(file))
        .map(|s| {
            s.lines().any(|l| {
                let mut f = l.split_whitespace();
                f.next() == Some("oom_kill")
                    && f.next().and_then(|n| n.parse::<u64>().ok()) > Some(0)
            })
        })
        .unwrap_or(false)
}

/// The shim: `<shim command> RUNC RUNC_ROOT BUNDLE ID`, or `<shim command> pause …` for a pod's
/// namespace holder ([`crate::sandbox::pause::pause_main`]).
///
/// As a container's shim it becomes a child subreaper, runs `runc create` (the container's
/// stdout/stderr appended to `BUNDLE/container.log`) and `runc start`, waits for the
/// container's init, reads the OOM counter of its memory cgroup before `runc delete` removes
/// it, and writes `BUNDLE/exit.json`. Returns the process exit code.
pub fn shim_main(args: &[OsString]) -> i32 {
    if args.first().is_some_and(|a| a == "pause") {
        let argv: Vec<OsString> = std::env::args_os().collect();
        let prefix_len = argv.len().saturating_sub(args.len());
        return crate::sandbox::pause::pause_main(&argv[..prefix_len], &args[1..]);
    }
    if args.first().is_some_and(|a| a == "pause-hold") {
        return crate::sandbox::pause::hold_main();
    }
    let [runc, runc_root, bundle, id] = args else {
        eprintln!("usage: runtime-shim RUNC RUNC_ROOT BUNDLE ID");
        return 2;
    };
    let bundle = PathBuf::from(bundle);
    let write_exit = |code: i32, reason: Option<String>| {
        let rec = ExitRecord {
            exit_code: code,
            finished_at: now_rfc3339(),
            reason,
        };
        let tmp = bundle.join("exit.json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&rec).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, bundle.join("exit.json"));
        }
    };
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(bundle.join("container.log"))
    {
        Ok(f) => f,
        Err(_) => return 1,
    };
    let (Ok(log2), Ok(log3)) = (log.try_clone(), log.try_clone()) else {
        return 1;
    };
    // the container's snapshots stay held while it runs, whatever happens to the agent
    let _lease = match bundle_lease(&bundle) {
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            use std::io::Write;
            let _ = writeln!(&log, "kubepull shim: cannot hold the image snapshots: {e}");
            None
        }
        None => None,
    };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let runc_cmd = || {
        let mut c = Command::new(runc);
        c.arg("--root").arg(runc_root);
        c
    };
    let pid_file = bundle.join("init.pid");
    let created = runc_cmd()
        .arg("create")
        .arg("--bundle")
        .arg(&bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .status();
    let pid: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let (Ok(st), Some(pid)) = (&created, pid) else {
        let _ = runc_cmd().args(["delete", "-f"]).arg(id).status();
        write_exit(128, Some("StartError".into()));
        return 0;
    };
    if !st.success() {
        let _ = runc_cmd().args(["delete", "-f"]).arg(id).status();
        write_exit(128, Some("StartError".into()));
        return 0;
    }
    let started = runc_cmd()
        .arg("start")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log3)
        .status();
    if !started.is_ok_and(|s| s.success()) {
        let _ = runc_cmd().args(["delete", "-f"]).arg(id).status();
        write_exit(128, Some("StartError".into()));
        return 0;
    }
    // reap until the container's init exits (it was reparented to us)
    let code = loop {
        use nix::sys::wait::WaitStatus;
        match nix::sys::wait::waitpid(None, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            // no children left: the init is gone without us seeing it
            Err(_) => break 255,
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => break c,
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => break 128 + sig as i32,
            Ok(_) => continue,
        }
    };
    let cgroups_path = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_string))
        .unwrap_or_default();
    let oom = !cgroups_path.is_empty() && oom_killed(&cgroups_path);
    let _ = runc_cmd()
        .args(["delete", "-f"])
        .arg(id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    write_exit(code, oom.then(|| "OOMKilled".to_string()));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(entry: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: (!entry.is_empty()).then(|| entry.iter().map(|s| s.to_string()).collect()),
            cmd: (!cmd.is_empty()).then(|| cmd.iter().map(|s| s.to_string()).collect()),
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            ..Default::default()
        }
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    /// Without overlay root filesystems, an image whose layer blobs were not kept is copied
    /// out of its snapshots (it would otherwise fail: the blobs are gone).
    #[test]
    fn an_image_without_its_layer_blobs_is_copied_from_its_snapshots() {
        if which("runc").is_none() {
            eprintln!("SKIPPED: runc not found in PATH");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let layer = kubepull_core::reference::Digest::sha256_of(b"layer");
        let config = kubepull_core::reference::Digest::sha256_of(b"config");
        let mut rec = kubepull_store::ImageRecord::new(
            "reg.example/app:v1".into(),
            config.clone(),
            config.clone(),
            config,
            vec![(layer, "application/vnd.oci.image.layer.v1.tar".into(), 5)],
            "linux/amd64".into(),
            5,
        );
        rec.layers[0].discarded = true;
        // the layer's snapshot, as a pull that unpacked it left it
        let snap = store.snapshot_path(&kubepull_store::chain_keys(&rec.layers)[0]);
        std::fs::create_dir_all(snap.join("etc")).unwrap();
        std::fs::write(snap.join("etc/motd"), b"hello\n").unwrap();
        let rt = RuncRuntime::new(&d.path().join("bundles"), store, vec![])
            .unwrap()
            .without_snapshots();
        let bundle = d.path().join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        rt.make_rootfs(&rec.name, &rec, &bundle, "c1").unwrap();
        assert_eq!(
            std::fs::read(bundle.join("rootfs/etc/motd")).unwrap(),
            b"hello\n"
        );
    }

    /// The table from "Define a Command and Arguments for a Container".
    #[test]
    fn command_and_args_rules() {
        let img = cfg(&["/ep-1"], &["foo", "bar"]);
        assert_eq!(process_args(&img, &[], &[]), v(&["/ep-1", "foo", "bar"]));
        assert_eq!(process_args(&img, &v(&["/ep-2"]), &[]), v(&["/ep-2"]));
        assert_eq!(
            process_args(&img, &[], &v(&["zoo", "boo"])),
            v(&["/ep-1", "zoo", "boo"])
        );
        assert_eq!(
            process_args(&img, &v(&["/ep-2"]), &v(&["zoo", "boo"])),
            v(&["/ep-2", "zoo", "boo"])
        );
    }

    #[test]
    fn env_merge_container_wins() {
        let img = cfg(&[], &["sh"]);
        let env = merge_env(
            &img,
            &[("A".into(), "pod".into()), ("B".into(), "x".into())],
        );
        assert_eq!(env, v(&["PATH=/bin", "A=pod", "B=x"]));
    }

    #[test]
    fn users() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user(d.path(), "").unwrap(), (0, 0));
        assert_eq!(resolve_user(d.path(), "app").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(d.path(), "1000").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(d.path(), "app:staff").unwrap(), (1000, 50));
        assert_eq!(resolve_user(d.path(), "5:6").unwrap(), (5, 6));
        assert!(resolve_user(d.path(), "nobody").is_err());
        // ids above MaxInt32 are refused, not wrapped (containerd WithUser)
        assert_eq!(
            resolve_user(d.path(), "4294967296").unwrap_err(),
            "invalid USER value \"4294967296\": uid out of range"
        );
        assert!(resolve_user(d.path(), "2147483648").is_err());
        assert_eq!(
            resolve_user(d.path(), "2147483647").unwrap().0,
            2_147_483_647
        );
        // the user's groups in /etc/group (supplemental groups, Merge policy)
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:app,other\nwheel:x:10:other\n",
        )
        .unwrap();
        assert_eq!(image_groups(d.path(), 1000), vec![50]);
        // a passwd that is a symlink out of the rootfs is not read
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(d.path(), "root").is_err());
    }

    #[test]
    fn ids_are_runc_safe() {
        assert_eq!(container_id("a-b", "web/x y", 2), "a-b_web_x_y_2");
    }
}
