//! Pod networking with the CNI plugins (containernetworking `SPEC.md`, spec version 1.1.0).
//!
//! - [`Cni`] runs a network configuration list against a network namespace the way libcni
//!   does (`libcni/api.go` `AddNetworkList`, `DelNetworkList`, `CheckNetworkList`): it execs
//!   each plugin binary named by `type` from the plugin directories with `CNI_COMMAND`,
//!   `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and `CNI_PATH` in the environment
//!   and the plugin's configuration on stdin (`cniVersion` and `name` injected, `capabilities`
//!   turned into `runtimeConfig`, `prevResult` chained), and parses the result or the error
//!   result (`{"code", "msg", "details"}`) into [`CniError`].
//! - [`NetworkConfigList::load_dir`] loads an administrator's configuration like containerd
//!   (`go-cni` `loadFromConfDir`: `.conf`, `.conflist`, `.json`, sorted, the first wins).
//! - [`NodeNetwork::conflist`] writes the node's own list when none is given: `loopback`,
//!   `bridge` (its own bridge per node, `isGateway`, `ipMasq`, `hairpinMode`) with `host-local`
//!   IPAM on the node's podCIDR, and `portmap` with the `portMappings` capability.
//! - [`PodNetwork`] is what the node uses per pod: ADD once per pod (the result cached like
//!   libcni's `/var/lib/cni/results`), DEL with the cached result (idempotent), the pod IPs, and
//!   the clean-up of pods that are gone.
//!
//! The network namespace is an input (a path): whatever creates it ([`netns`] here, for now)
//! owns its lifetime.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

/// The CNI spec version this runtime implements.
pub const SPEC_VERSION: &str = "1.1.0";
/// The versions this runtime can talk, oldest first (results of 1.0.0 and 1.1.0 have the same
/// shape; older ones are not accepted).
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0", "1.1.0"];
/// Debian's `containernetworking-plugins` directory.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/cni";
/// The interface name of the pod's network (containerd: `eth` + index).
pub const POD_IFNAME: &str = "eth0";
/// How long one plugin call may take.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Well-known CNI error codes (`SPEC.md` "Error").
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
}

/// What went wrong talking to the CNI plugins.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The plugin binary is in none of the plugin directories.
    #[error("failed to find plugin {plugin:?} in path {dirs:?} (install containernetworking-plugins or set --cni-bin-dir)")]
    PluginNotFound {
        /// The plugin `type`.
        plugin: String,
        /// Where it was looked for.
        dirs: Vec<PathBuf>,
    },
    /// The plugin could not be run.
    #[error("plugin type={plugin:?}: exec {path}: {source}")]
    Exec {
        /// The plugin `type`.
        plugin: String,
        /// The binary.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not answer in time.
    #[error("plugin type={plugin:?} ({command}) did not finish within {}s", PLUGIN_TIMEOUT.as_secs())]
    Timeout {
        /// The plugin `type`.
        plugin: String,
        /// ADD, DEL, CHECK, VERSION.
        command: String,
    },
    /// The plugin returned a CNI error result.
    #[error(
        "plugin type={plugin:?} failed ({command}): {msg}{}",
        details_suffix(details)
    )]
    Plugin {
        /// The plugin `type`.
        plugin: String,
        /// ADD, DEL, CHECK, VERSION.
        command: String,
        /// The CNI error code (see [`codes`]).
        code: u32,
        /// `msg`.
        msg: String,
        /// `details`.
        details: String,
    },
    /// The plugin's output is not a valid result.
    #[error("plugin type={plugin:?} ({command}) returned an invalid result: {reason}")]
    BadResult {
        /// The plugin `type`.
        plugin: String,
        /// ADD, DEL, CHECK, VERSION.
        command: String,
        /// What is wrong.
        reason: String,
    },
    /// The network configuration is not usable.
    #[error("network configuration {source_name}: {reason}")]
    Config {
        /// The file (or `generated`).
        source_name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// No version is common to this runtime, the configuration and every plugin.
    #[error("network {network:?}: no CNI version is supported by the runtime ({runtime:?}), the configuration ({config:?}) and every plugin; plugin {plugin:?} supports {plugin_versions:?}")]
    NoCommonVersion {
        /// The network name.
        network: String,
        /// The runtime's versions.
        runtime: Vec<String>,
        /// The configuration's versions.
        config: Vec<String>,
        /// The first plugin that ruled the choice out.
        plugin: String,
        /// Its versions.
        plugin_versions: Vec<String>,
    },
    /// The ADD result names no IP on the pod's interface.
    #[error("failed to find network info for sandbox {0:?}")]
    NoPodIp(String),
    /// Local state (the result cache, a namespace) could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn details_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!("; {d}")
    }
}

impl CniError {
    /// The CNI error code, when the plugin returned an error result.
    pub fn code(&self) -> Option<u32> {
        match self {
            CniError::Plugin { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this error means "already gone" (containerd ignores these on teardown).
    pub fn is_not_found(&self) -> bool {
        match self {
            CniError::Plugin { code, msg, .. } => {
                *code == codes::UNKNOWN_CONTAINER || msg.contains("not found")
            }
            _ => false,
        }
    }
}

/// A parsed network configuration list (`SPEC.md` "Configuration format").
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// `name`.
    pub name: String,
    /// `cniVersion`.
    pub cni_version: String,
    /// `cniVersions` (1.1.0): the runtime picks the highest it supports.
    pub cni_versions: Vec<String>,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `plugins`, each an object with a `type`.
    pub plugins: Vec<Map<String, Value>>,
    /// Where it came from (a file path or `generated`).
    pub source_name: String,
}

fn valid_name(s: &str) -> bool {
    // SPEC.md: network name and container ID `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl NetworkConfigList {
    /// Parses a `.conflist` (or a single-plugin `.conf`, as libcni's `ConfListFromConf` does).
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, CniError> {
        let bad = |reason: String| CniError::Config {
            source_name: source_name.to_string(),
            reason,
        };
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(mut top) = v else {
            return Err(bad("must be a JSON object".into()));
        };
        let plugins: Vec<Map<String, Value>> = match top.remove("plugins") {
            Some(Value::Array(ps)) => {
                let mut out = vec![];
                for (i, p) in ps.into_iter().enumerate() {
                    match p {
                        Value::Object(m) => out.push(m),
                        _ => return Err(bad(format!("plugins[{i}] must be an object"))),
                    }
                }
                out
            }
            Some(_) => return Err(bad("\"plugins\" must be a list".into())),
            None => {
                // a single plugin configuration (.conf)
                if top.get("type").and_then(Value::as_str).is_none() {
                    return Err(bad(
                        "neither \"plugins\" (a .conflist) nor \"type\" (a .conf) is set".into(),
                    ));
                }
                let mut p = top.clone();
                p.remove("name");
                p.remove("cniVersion");
                vec![p]
            }
        };
        if plugins.is_empty() {
            return Err(bad("\"plugins\" is empty: list at least one plugin".into()));
        }
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => {}
                _ => {
                    return Err(bad(format!(
                        "plugins[{i}].type must name a plugin binary (e.g. \"bridge\")"
                    )))
                }
            }
        }
        let name = top
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !valid_name(&name) {
            return Err(bad(format!(
                "\"name\" {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
            )));
        }
        let cni_version = top
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let cni_versions: Vec<String> = match top.get("cniVersions") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("\"cniVersions\" must be a list of strings".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("\"cniVersions\" must be a list of strings".into())),
        };
        if cni_version.is_empty() && cni_versions.is_empty() {
            return Err(bad("set \"cniVersion\" (e.g. \"1.0.0\")".into()));
        }
        Ok(NetworkConfigList {
            name,
            cni_version,
            cni_versions,
            disable_check: top
                .get("disableCheck")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            plugins,
            source_name: source_name.to_string(),
        })
    }

    /// Loads the first configuration in `dir` like containerd's go-cni: files ending `.conf`,
    /// `.conflist` or `.json`, sorted lexically. `Ok(None)` when there is none.
    pub fn load_dir(dir: &Path) -> Result<Option<Self>, CniError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CniError::Io {
                    what: format!("read {}", dir.display()),
                    source,
                })
            }
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("conf" | "conflist" | "json")
                    )
            })
            .collect();
        files.sort();
        let Some(first) = files.first() else {
            return Ok(None);
        };
        let bytes = std::fs::read(first).map_err(|source| CniError::Io {
            what: format!("read {}", first.display()),
            source,
        })?;
        Self::parse(&bytes, &first.display().to_string()).map(Some)
    }

    /// The versions the list offers, highest first.
    fn offered_versions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.cni_versions.clone();
        if !self.cni_version.is_empty() && !v.contains(&self.cni_version) {
            v.push(self.cni_version.clone());
        }
        v.sort_by_key(|s| std::cmp::Reverse(version_key(s)));
        v
    }
}

fn version_key(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// One attachment of a container to a network (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the network namespace path (optional on DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, `K=V` pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (e.g. `portMappings`), given to plugins that declare them.
    pub capability_args: Map<String, Value>,
}

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub mac: String,
    /// The netns path when the interface is inside the container.
    #[serde(default)]
    pub sandbox: String,
}

/// An IP in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `address`, CIDR notation.
    pub address: String,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A parsed ADD result (`SPEC.md` "Success"); [`CniResult::raw`] is what the next plugin and
/// DEL/CHECK get as `prevResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    /// `cniVersion`.
    pub cni_version: String,
    /// `interfaces`.
    pub interfaces: Vec<Interface>,
    /// `ips`.
    pub ips: Vec<IpConfig>,
    /// The result as returned.
    pub raw: Value,
}

impl CniResult {
    fn parse(v: Value, plugin: &str, command: &str) -> Result<Self, CniError> {
        let bad = |reason: String| CniError::BadResult {
            plugin: plugin.to_string(),
            command: command.to_string(),
            reason,
        };
        let obj = v
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("\"cniVersion\" is missing".into()))?
            .to_string();
        if version_key(&cni_version) < (1, 0, 0) {
            return Err(bad(format!(
                "result version {cni_version} is older than 1.0.0; configure cniVersion 1.0.0 or later"
            )));
        }
        let interfaces: Vec<Interface> = match obj.get("interfaces") {
            None | Some(Value::Null) => vec![],
            Some(x) => serde_json::from_value(x.clone())
                .map_err(|e| bad(format!("\"interfaces\": {e}")))?,
        };
        let ips: Vec<IpConfig> = match obj.get("ips") {
            None | Some(Value::Null) => vec![],
            Some(x) => {
                serde_json::from_value(x.clone()).map_err(|e| bad(format!("\"ips\": {e}")))?
            }
        };
        for (i, ip) in ips.iter().enumerate() {
            if parse_cidr_ip(&ip.address).is_none() {
                return Err(bad(format!(
                    "ips[{i}].address {:?} is not an address in CIDR notation",
                    ip.address
                )));
            }
            if let Some(ix) = ip.interface {
                if ix >= interfaces.len() {
                    return Err(bad(format!(
                        "ips[{i}].interface {ix} is out of range ({} interfaces)",
                        interfaces.len()
                    )));
                }
            }
        }
        Ok(CniResult {
            cni_version,
            interfaces,
            ips,
            raw: v,
        })
    }

    /// The IPs on the container interface `ifname` (IPv4 first), as containerd picks the pod IP
    /// (`sandbox_run.go` `selectPodIPs`: the interface named `eth0` with a sandbox).
    pub fn pod_ips(&self, ifname: &str) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|ip| {
                ip.interface
                    .and_then(|i| self.interfaces.get(i))
                    .is_some_and(|itf| itf.name == ifname && !itf.sandbox.is_empty())
            })
            .filter_map(|ip| parse_cidr_ip(&ip.address))
            .collect();
        out.sort_by_key(|ip| !ip.is_ipv4());
        out
    }
}

fn parse_cidr_ip(s: &str) -> Option<IpAddr> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(ip)
}

/// The CNI runtime: plugin directories and one network configuration list.
#[derive(Debug, Clone)]
pub struct Cni {
    bin_dirs: Vec<PathBuf>,
    list: NetworkConfigList,
}

impl Cni {
    /// A runtime for `list`, finding plugins in `bin_dirs`.
    pub fn new(bin_dirs: Vec<PathBuf>, list: NetworkConfigList) -> Self {
        Cni { bin_dirs, list }
    }

    /// The configuration list.
    pub fn list(&self) -> &NetworkConfigList {
        &self.list
    }

    /// The plugin binary for `plugin` (libcni `FindInPath`).
    pub fn find_plugin(&self, plugin: &str) -> Result<PathBuf, CniError> {
        for d in &self.bin_dirs {
            let p = d.join(plugin);
            if p.is_file() {
                return Ok(p);
            }
        }
        Err(CniError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: self.bin_dirs.clone(),
        })
    }

    fn cni_path(&self) -> String {
        self.bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs one plugin; returns its stdout parsed as JSON (`Null` when empty).
    async fn exec(
        &self,
        plugin: &str,
        command: &str,
        att: Option<&Attachment>,
        stdin: &Value,
    ) -> Result<Value, CniError> {
        let path = self.find_plugin(plugin)?;
        let mut cmd = tokio::process::Command::new(&path);
        cmd.env("CNI_COMMAND", command)
            .env("CNI_PATH", self.cni_path())
            .env_remove("CNI_CONTAINERID")
            .env_remove("CNI_NETNS")
            .env_remove("CNI_IFNAME")
            .env_remove("CNI_ARGS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(a) = att {
            cmd.env("CNI_CONTAINERID", &a.container_id)
                .env("CNI_IFNAME", &a.ifname);
            if let Some(ns) = &a.netns {
                cmd.env("CNI_NETNS", ns);
            }
            if !a.args.is_empty() {
                let args: Vec<String> = a.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
                cmd.env("CNI_ARGS", args.join(";"));
            }
        }
        let exec_err = |source| CniError::Exec {
            plugin: plugin.to_string(),
            path: path.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(exec_err)?;
        let input = serde_json::to_vec(stdin).unwrap_or_default();
        let run = async {
            if let Some(mut s) = child.stdin.take() {
                // a plugin may exit without reading stdin (e.g. on a bad environment)
                let _ = s.write_all(&input).await;
                drop(s);
            }
            child.wait_with_output().await
        };
        let out = match tokio::time::timeout(PLUGIN_TIMEOUT, run).await {
            Ok(r) => r.map_err(exec_err)?,
            Err(_) => {
                return Err(CniError::Timeout {
                    plugin: plugin.to_string(),
                    command: command.to_string(),
                })
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // SPEC.md: the error result goes to stdout; fall back to stderr
            if let Ok(Value::Object(e)) = serde_json::from_str::<Value>(stdout.trim()) {
                if let Some(code) = e.get("code").and_then(Value::as_u64) {
                    return Err(CniError::Plugin {
                        plugin: plugin.to_string(),
                        command: command.to_string(),
                        code: code as u32,
                        msg: e
                            .get("msg")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        details: e
                            .get("details")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    });
                }
            }
            let text = if stdout.trim().is_empty() {
                stderr.trim()
            } else {
                stdout.trim()
            };
            return Err(CniError::BadResult {
                plugin: plugin.to_string(),
                command: command.to_string(),
                reason: format!(
                    "exited with {} without an error result: {}",
                    out.status,
                    truncate(text, 512)
                ),
            });
        }
        // DEL and CHECK report success by the exit status alone (libcni
        // `ExecPluginWithoutResult`)
        if stdout.trim().is_empty() || command == "DEL" || command == "CHECK" {
            return Ok(Value::Null);
        }
        serde_json::from_str(stdout.trim()).map_err(|e| CniError::BadResult {
            plugin: plugin.to_string(),
            command: command.to_string(),
            reason: format!("not JSON ({e}): {}", truncate(stdout.trim(), 512)),
        })
    }

    /// `VERSION` of one plugin: its `supportedVersions`.
    pub async fn plugin_versions(&self, plugin: &str) -> Result<Vec<String>, CniError> {
        let v = self
            .exec(
                plugin,
                "VERSION",
                None,
                &json!({ "cniVersion": SPEC_VERSION }),
            )
            .await?;
        v.get("supportedVersions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .ok_or_else(|| CniError::BadResult {
                plugin: plugin.to_string(),
                command: "VERSION".into(),
                reason: "no \"supportedVersions\"".into(),
            })
    }

    /// The version used to talk to the plugins: the highest that the configuration offers
    /// (`cniVersions`, else `cniVersion`), this runtime supports, and every plugin reports in
    /// `VERSION`.
    pub async fn negotiate_version(&self) -> Result<String, CniError> {
        let offered = self.list.offered_versions();
        let mut candidates: Vec<String> = offered
            .iter()
            .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
            .cloned()
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.list.plugins {
            let t = p.get("type").and_then(Value::as_str).unwrap_or("");
            if !seen.insert(t.to_string()) {
                continue;
            }
            let pv = self.plugin_versions(t).await?;
            candidates.retain(|v| pv.contains(v));
            if candidates.is_empty() {
                return Err(CniError::NoCommonVersion {
                    network: self.list.name.clone(),
                    runtime: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
                    config: offered,
                    plugin: t.to_string(),
                    plugin_versions: pv,
                });
            }
        }
        candidates
            .into_iter()
            .next()
            .ok_or(CniError::NoCommonVersion {
                network: self.list.name.clone(),
                runtime: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
                config: offered,
                plugin: String::new(),
                plugin_versions: vec![],
            })
    }

    /// The configuration one plugin gets on stdin (libcni `buildOneConfig` and
    /// `injectRuntimeConfig`).
    pub fn plugin_config(
        &self,
        plugin: &Map<String, Value>,
        version: &str,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Value {
        let mut conf = plugin.clone();
        conf.insert("cniVersion".into(), json!(version));
        conf.insert("name".into(), json!(self.list.name));
        let caps = conf.remove("capabilities");
        let mut rc = Map::new();
        if let Some(Value::Object(caps)) = caps {
            for (k, enabled) in caps {
                if enabled == Value::Bool(true) {
                    if let Some(v) = att.capability_args.get(&k) {
                        rc.insert(k, v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        if let Some(p) = prev {
            conf.insert("prevResult".into(), p.clone());
        }
        Value::Object(conf)
    }

    fn plugin_type(p: &Map<String, Value>) -> &str {
        p.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// ADD: the plugins in order, each result the next one's `prevResult`. On failure the
    /// caller must still call [`Cni::del`] (`SPEC.md`: a DEL follows every ADD).
    pub async fn add(&self, version: &str, att: &Attachment) -> Result<CniResult, CniError> {
        let mut prev: Option<Value> = None;
        let mut last: Option<CniResult> = None;
        for p in &self.list.plugins {
            let t = Self::plugin_type(p);
            let conf = self.plugin_config(p, version, att, prev.as_ref());
            let out = self.exec(t, "ADD", Some(att), &conf).await?;
            let r = CniResult::parse(out, t, "ADD")?;
            prev = Some(r.raw.clone());
            last = Some(r);
        }
        last.ok_or_else(|| CniError::Config {
            source_name: self.list.source_name.clone(),
            reason: "no plugins".into(),
        })
    }

    /// DEL: the plugins in reverse order, each with the final ADD result (when known). Every
    /// plugin is called even after a failure, so that as much as possible is released; the
    /// first error other than "not found" is returned.
    pub async fn del(
        &self,
        version: &str,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut first: Option<CniError> = None;
        for p in self.list.plugins.iter().rev() {
            let t = Self::plugin_type(p);
            let conf = self.plugin_config(p, version, att, prev);
            if let Err(e) = self.exec(t, "DEL", Some(att), &conf).await {
                if !e.is_not_found() && first.is_none() {
                    first = Some(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// CHECK: the plugins in order with the cached ADD result, unless `disableCheck`.
    pub async fn check(
        &self,
        version: &str,
        att: &Attachment,
        prev: &Value,
    ) -> Result<(), CniError> {
        if self.list.disable_check {
            return Ok(());
        }
        for p in &self.list.plugins {
            let t = Self::plugin_type(p);
            let conf = self.plugin_config(p, version, att, Some(prev));
            self.exec(t, "CHECK", Some(att), &conf).await?;
        }
        Ok(())
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The node's own network (used when the administrator gives no configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    /// The network name (also the host-local state directory's name).
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The node's podCIDR, e.g. `10.244.1.0/24`.
    pub subnet: String,
    /// host-local IPAM state directory.
    pub ipam_dir: PathBuf,
    /// Masquerade traffic from pods leaving the node.
    pub ip_masq: bool,
}

/// The bridge name of node `node_name`: `kp` + 8 hex digits of its FNV-1a hash (11 characters,
/// within the kernel's 15), so that two nodes on one host use different bridges.
pub fn bridge_name(node_name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in node_name.as_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("kp{h:08x}")
}

impl NodeNetwork {
    /// The node's network for `node_name` on `subnet`, state under `root`.
    pub fn new(node_name: &str, subnet: &str, root: &Path) -> Self {
        NodeNetwork {
            name: "kubepull".into(),
            bridge: bridge_name(node_name),
            subnet: subnet.to_string(),
            ipam_dir: root.join("cni").join("networks"),
            ip_masq: true,
        }
    }

    /// The configuration list: `bridge` (+ `host-local`), `portmap`, `loopback`.
    ///
    /// `ipMasq` is on, as in containerd's example configuration: pods reach beyond the node
    /// with the node's address (registries, DNS); without it their replies would have no route
    /// back. The rules are per pod and removed by DEL.
    pub fn conflist(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "cniVersions": ["1.0.0", "1.1.0"],
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": self.ip_masq,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.ipam_dir,
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "loopback"}
            ]
        })
    }

    /// The list, parsed.
    pub fn config_list(&self) -> Result<NetworkConfigList, CniError> {
        let bytes = serde_json::to_vec(&self.conflist()).unwrap_or_default();
        NetworkConfigList::parse(&bytes, "generated")
    }
}

/// Network namespaces by name under `/run/netns` (what `ip netns add` creates).
pub mod netns {
    use super::CniError;
    use std::path::PathBuf;

    /// The directory `ip netns` uses.
    pub const NETNS_DIR: &str = "/run/netns";

    /// The pod's namespace name: `kp-` + the first 16 hex digits of the UID without dashes.
    pub fn pod_netns_name(pod_uid: &str) -> String {
        let hex: String = pod_uid
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .take(16)
            .collect::<String>()
            .to_ascii_lowercase();
        format!("kp-{hex}")
    }

    /// `/run/netns/NAME`.
    pub fn path(name: &str) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(name)
    }

    async fn ip(args: &[&str]) -> Result<std::process::Output, CniError> {
        tokio::process::Command::new("ip")
            .args(args)
            .output()
            .await
            .map_err(|source| CniError::Io {
                what: format!("ip {}", args.join(" ")),
                source,
            })
    }

    /// Creates the namespace (with `lo` up) unless it exists; returns its path.
    pub async fn ensure(name: &str) -> Result<PathBuf, CniError> {
        let p = path(name);
        if p.exists() {
            return Ok(p);
        }
        let out = ip(&["netns", "add", name]).await?;
        if !out.status.success() && !p.exists() {
            return Err(CniError::Io {
                what: format!("ip netns add {name}"),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ),
            });
        }
        let _ = ip(&["-n", name, "link", "set", "lo", "up"]).await;
        Ok(p)
    }

    /// Deletes the namespace; nothing to do when it is gone.
    pub async fn delete(name: &str) -> Result<(), CniError> {
        if !path(name).exists() {
            return Ok(());
        }
        let out = ip(&["netns", "delete", name]).await?;
        if !out.status.success() && path(name).exists() {
            return Err(CniError::Io {
                what: format!("ip netns delete {name}"),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ),
            });
        }
        Ok(())
    }
}

/// What the node remembers about one pod's attachment (libcni's result cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRecord {
    /// The pod UID.
    pub pod_uid: String,
    /// `namespace/name`, for messages.
    pub pod: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The netns name (under `/run/netns`).
    pub netns_name: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The negotiated CNI version.
    pub cni_version: String,
    /// The network name.
    pub network: String,
    /// The final ADD result.
    pub result: Value,
    /// The capability arguments given to ADD (DEL gets the same).
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// `CNI_ARGS`.
    #[serde(default)]
    pub args: Vec<(String, String)>,
}

/// The pod's side of a network attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIps {
    /// The pod's IPs, primary first.
    pub ips: Vec<IpAddr>,
    /// The netns path containers join.
    pub netns: PathBuf,
}

/// A `hostPort` mapping (the `portMappings` capability).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// `hostPort`.
    pub host_port: u16,
    /// `containerPort`.
    pub container_port: u16,
    /// `tcp`/`udp`/`sctp`, lowercase.
    pub protocol: String,
    /// `hostIP`, empty for all.
    #[serde(rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The pod identity CNI gets in `CNI_ARGS` and the result cache.
#[derive(Debug, Clone, Default)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// Per-pod networking on a node: one CNI network, the result cache under `state_dir`.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    cni: Cni,
    state_dir: PathBuf,
    version: std::sync::Arc<tokio::sync::OnceCell<String>>,
    /// Pod-facing host interfaces accept loopback destinations (the API server portal of
    /// [`crate::service_proxy`] leads to 127.0.0.1).
    route_localnet: bool,
}

impl PodNetwork {
    /// Pod networking with `cni`, remembering attachments in `state_dir` (`<root>/cni/results`).
    pub fn new(cni: Cni, state_dir: PathBuf) -> Self {
        PodNetwork {
            cni,
            state_dir,
            version: Default::default(),
            route_localnet: false,
        }
    }

    /// Lets the pod-facing host interfaces of every attachment accept loopback destinations
    /// (set when the API server portal leads to a loopback address).
    pub fn with_route_localnet(mut self, on: bool) -> Self {
        self.route_localnet = on;
        self
    }

    /// The CNI runtime.
    pub fn cni(&self) -> &Cni {
        &self.cni
    }

    fn uses_ip_masq(&self) -> bool {
        self.cni
            .list
            .plugins
            .iter()
            .any(|p| p.get("ipMasq") == Some(&Value::Bool(true)))
    }

    async fn version(&self) -> Result<String, CniError> {
        self.version
            .get_or_try_init(|| self.cni.negotiate_version())
            .await
            .cloned()
    }

    fn record_path(&self, pod_uid: &str) -> PathBuf {
        let safe: String = pod_uid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state_dir.join(format!("{safe}.json"))
    }

    /// The attachment remembered for a pod.
    pub fn record(&self, pod_uid: &str) -> Option<AttachmentRecord> {
        let bytes = std::fs::read(self.record_path(pod_uid)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every remembered attachment.
    pub fn records(&self) -> Vec<AttachmentRecord> {
        let Ok(rd) = std::fs::read_dir(&self.state_dir) else {
            return vec![];
        };
        let mut out: Vec<AttachmentRecord> = rd
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a: &AttachmentRecord, b| a.pod_uid.cmp(&b.pod_uid));
        out
    }

    fn write_record(&self, r: &AttachmentRecord) -> Result<(), CniError> {
        let io = |what: String| move |source| CniError::Io { what, source };
        std::fs::create_dir_all(&self.state_dir)
            .map_err(io(format!("create {}", self.state_dir.display())))?;
        let p = self.record_path(&r.pod_uid);
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(r).unwrap_or_default())
            .map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &p).map_err(io(format!("write {}", p.display())))
    }

    fn attachment(r: &AttachmentRecord) -> Attachment {
        Attachment {
            container_id: r.container_id.clone(),
            netns: Some(netns::path(&r.netns_name)),
            ifname: r.ifname.clone(),
            args: r.args.clone(),
            capability_args: r.capability_args.clone(),
        }
    }

    /// Attaches a pod: creates its netns when absent, runs ADD once (a remembered attachment
    /// whose netns still exists is reused), and returns the pod IPs. A failed ADD is undone
    /// with DEL before the error is returned.
    pub async fn setup(&self, pod: &PodRef, ports: &[PortMapping]) -> Result<PodIps, CniError> {
        let name = netns::pod_netns_name(&pod.uid);
        if let Some(r) = self.record(&pod.uid) {
            if netns::path(&r.netns_name).exists() {
                if let Ok(res) = CniResult::parse(r.result.clone(), "cache", "ADD") {
                    let ips = res.pod_ips(&r.ifname);
                    if !ips.is_empty() {
                        return Ok(PodIps {
                            ips,
                            netns: netns::path(&r.netns_name),
                        });
                    }
                }
            }
            // the namespace went away (reboot) or the record is unusable: release and redo
            self.teardown(&pod.uid).await?;
        }
        let version = self.version().await?;
        let path = netns::ensure(&name).await?;
        let mut caps = Map::new();
        if !ports.is_empty() {
            caps.insert(
                "portMappings".into(),
                serde_json::to_value(ports).unwrap_or_default(),
            );
        }
        let container_id = name.clone();
        let att = Attachment {
            container_id: container_id.clone(),
            netns: Some(path.clone()),
            ifname: POD_IFNAME.into(),
            // containerd's CNI_ARGS (`cniNamespaceOpts`)
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), pod.namespace.clone()),
                ("K8S_POD_NAME".into(), pod.name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), container_id.clone()),
                ("K8S_POD_UID".into(), pod.uid.clone()),
            ],
            capability_args: caps,
        };
        let mut record = AttachmentRecord {
            pod_uid: pod.uid.clone(),
            pod: format!("{}/{}", pod.namespace, pod.name),
            container_id,
            netns_name: name.clone(),
            ifname: POD_IFNAME.into(),
            cni_version: version.clone(),
            network: self.cni.list.name.clone(),
            result: Value::Null,
            capability_args: att.capability_args.clone(),
            args: att.args.clone(),
        };
        // remember the attachment before ADD, so that a crash mid-ADD is still cleaned up
        self.write_record(&record)?;
        let res = match self.cni.add(&version, &att).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.teardown(&pod.uid).await;
                return Err(e);
            }
        };
        let ips = res.pod_ips(POD_IFNAME);
        if ips.is_empty() {
            let _ = self.teardown(&pod.uid).await;
            return Err(CniError::NoPodIp(record.container_id));
        }
        if self.route_localnet {
            for i in res.interfaces.iter().filter(|i| i.sandbox.is_empty()) {
                if let Err(e) = crate::service_proxy::allow_localnet(&i.name) {
                    tracing::warn!(interface = %i.name, error = %e, "could not set route_localnet: pods may not reach the API server's Service");
                }
            }
        }
        record.result = res.raw;
        self.write_record(&record)?;
        Ok(PodIps { ips, netns: path })
    }

    /// CHECK of a pod's remembered attachment.
    pub async fn check(&self, pod_uid: &str) -> Result<(), CniError> {
        let Some(r) = self.record(pod_uid) else {
            return Err(CniError::Plugin {
                plugin: String::new(),
                command: "CHECK".into(),
                code: codes::UNKNOWN_CONTAINER,
                msg: format!("no network attachment is known for pod {pod_uid}"),
                details: String::new(),
            });
        };
        self.cni
            .check(&r.cni_version, &Self::attachment(&r), &r.result)
            .await
    }

    /// Detaches a pod: DEL with the remembered result, then deletes its netns and forgets it.
    /// Idempotent: nothing remembered and no netns means nothing to do.
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), CniError> {
        let name = netns::pod_netns_name(pod_uid);
        match self.record(pod_uid) {
            Some(r) => {
                let mut att = Self::attachment(&r);
                if !netns::path(&r.netns_name).exists() {
                    att.netns = None;
                }
                let prev = (!r.result.is_null()).then_some(&r.result);
                let vanished = att.netns.is_none();
                self.cni.del(&r.cni_version, &att, prev).await?;
                if vanished && self.uses_ip_masq() {
                    release_masquerade(&r.network, &r.container_id).await?;
                }
                netns::delete(&r.netns_name).await?;
                let p = self.record_path(pod_uid);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(CniError::Io {
                            what: format!("remove {}", p.display()),
                            source,
                        })
                    }
                }
            }
            None => netns::delete(&name).await?,
        }
        Ok(())
    }

    /// Detaches every remembered pod whose UID `keep` rejects (after a crash or restart: pods
    /// no longer bound to this node). Returns the UIDs detached; errors are logged and the
    /// record kept for the next try.
    pub async fn cleanup(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut done = vec![];
        for r in self.records() {
            if keep(&r.pod_uid) {
                continue;
            }
            match self.teardown(&r.pod_uid).await {
                Ok(()) => done.push(r.pod_uid),
                Err(e) => tracing::warn!(pod = %r.pod, error = %e, "network teardown failed"),
            }
        }
        done
    }
}

/// The iptables chain the bridge plugin's `ipMasq` creates for a container (plugins
/// `pkg/utils/utils.go` `FormatChainName`: `CNI-` + the first 24 hex digits of
/// SHA-512(network name + container ID)).
pub fn masquerade_chain(network: &str, container_id: &str) -> String {
    use sha2::Digest;
    let sum = sha2::Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("CNI-{}", &hex[..24])
}

pub(crate) async fn iptables(args: &[&str]) -> Result<std::process::Output, CniError> {
    tokio::process::Command::new("iptables")
        .args(args)
        .output()
        .await
        .map_err(|source| CniError::Io {
            what: format!("iptables {}", args.join(" ")),
            source,
        })
}

/// Removes the `ipMasq` rules of a container whose namespace is gone: the bridge plugin's DEL
/// cannot find the addresses then (it reads them from the namespace) and leaves its
/// POSTROUTING rule and chain behind (plugins `pkg/ip/ipmasq_linux.go` `TeardownIPMasq`).
/// Nothing to do when they are gone.
pub async fn release_masquerade(network: &str, container_id: &str) -> Result<(), CniError> {
    let chain = masquerade_chain(network, container_id);
    let out = iptables(&["-t", "nat", "-S", "POSTROUTING"]).await?;
    let rules = String::from_utf8_lossy(&out.stdout).to_string();
    for rule in rules.lines() {
        if !rule.starts_with("-A POSTROUTING ") || !rule.ends_with(&format!("-j {chain}")) {
            continue;
        }
        // the rule's own words, with -A turned into -D (the comment is one quoted word)
        let mut args: Vec<String> = vec!["-t".into(), "nat".into()];
        args.extend(rule_words(rule));
        args[2] = "-D".into();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = iptables(&a).await?;
    }
    let listed = iptables(&["-t", "nat", "-S", &chain]).await?;
    if listed.status.success() {
        let _ = iptables(&["-t", "nat", "-F", &chain]).await?;
        let out = iptables(&["-t", "nat", "-X", &chain]).await?;
        if !out.status.success() {
            return Err(CniError::Io {
                what: format!("iptables -t nat -X {chain}"),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ),
            });
        }
    }
    Ok(())
}

/// Splits an `iptables -S` line into words: double quotes group, `\"` is a quote.
pub(crate) fn rule_words(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
                any = true;
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Removes a bridge device (what the bridge plugin leaves after the last DEL); nothing to do
/// when it is gone.
pub async fn delete_bridge(name: &str) -> Result<(), CniError> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Ok(());
    }
    let out = tokio::process::Command::new("ip")
        .args(["link", "delete", name])
        .output()
        .await
        .map_err(|source| CniError::Io {
            what: format!("ip link delete {name}"),
            source,
        })?;
    if !out.status.success() && Path::new("/sys/class/net").join(name).exists() {
        return Err(CniError::Io {
            what: format!("ip link delete {name}"),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        });
    }
    Ok(())
}

/// Port mappings from a pod's containers (`hostPort` > 0 only, protocol lowercased, as
/// containerd's `toCNIPortMappings`).
pub fn port_mappings(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<PortMapping> {
    let mut out = vec![];
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(hp) = p.host_port.filter(|h| *h > 0 && *h <= 65535) else {
                continue;
            };
            if p.container_port <= 0 || p.container_port > 65535 {
                continue;
            }
            out.push(PortMapping {
                host_port: hp as u16,
                container_port: p.container_port as u16,
                protocol: p
                    .protocol
                    .clone()
                    .unwrap_or_else(|| "TCP".into())
                    .to_ascii_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

/// The host-local reservations of `network` under `ipam_dir`: IP → container ID.
pub fn ipam_reservations(ipam_dir: &Path, network: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(ipam_dir.join(network)) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<IpAddr>().is_err() {
            continue;
        }
        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
        let id = owner.lines().next().unwrap_or("").trim().to_string();
        out.insert(name, id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_parse_errors_name_the_field() {
        let e = NetworkConfigList::parse(b"{", "x.conflist").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = NetworkConfigList::parse(br#"{"cniVersion":"1.0.0","name":"n"}"#, "x.conf")
            .unwrap_err();
        assert!(e.to_string().contains("\"type\""), "{e}");
        let e = NetworkConfigList::parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bin/sh"}]}"#,
            "x.conflist",
        )
        .unwrap_err();
        assert!(e.to_string().contains("plugins[0].type"), "{e}");
        let e = NetworkConfigList::parse(
            br#"{"cniVersion":"1.0.0","name":"bad name","plugins":[{"type":"bridge"}]}"#,
            "x.conflist",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"name\""), "{e}");
        // a .conf becomes a one-plugin list
        let l = NetworkConfigList::parse(
            br#"{"cniVersion":"0.4.0","name":"n","type":"bridge","bridge":"b0"}"#,
            "x.conf",
        )
        .unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0]["bridge"], "b0");
        assert!(!l.plugins[0].contains_key("name"));
    }

    #[test]
    fn plugin_config_injects_name_version_runtime_config_prev_result() {
        let nn = NodeNetwork::new("n1", "10.244.7.0/24", Path::new("/tmp/x"));
        let cni = Cni::new(vec![], nn.config_list().unwrap());
        let mut caps = Map::new();
        caps.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        caps.insert("bandwidth".into(), json!({}));
        let att = Attachment {
            capability_args: caps,
            ..Default::default()
        };
        let prev = json!({"cniVersion": "1.0.0"});
        let c = cni.plugin_config(&cni.list().plugins[1], "1.0.0", &att, Some(&prev));
        assert_eq!(c["type"], "portmap");
        assert_eq!(c["name"], "kubepull");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert!(c.get("capabilities").is_none());
        // only declared capabilities reach the plugin
        assert_eq!(
            c["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080}]})
        );
        assert_eq!(c["prevResult"], prev);
        let b = cni.plugin_config(&cni.list().plugins[0], "1.0.0", &att, None);
        assert!(b.get("runtimeConfig").is_none());
        assert!(b.get("prevResult").is_none());
        assert_eq!(b["ipam"]["ranges"][0][0]["subnet"], "10.244.7.0/24");
    }

    #[test]
    fn results_and_pod_ips() {
        let r = CniResult::parse(
            json!({"cniVersion":"1.0.0",
                "interfaces":[{"name":"kp0","mac":"aa"},{"name":"veth1","mac":"bb"},{"name":"eth0","mac":"cc","sandbox":"/run/netns/x"}],
                "ips":[{"interface":2,"address":"fd00::5/64"},{"interface":2,"address":"10.244.0.5/24","gateway":"10.244.0.1"},{"interface":0,"address":"10.244.0.1/24"}]}),
            "bridge",
            "ADD",
        )
        .unwrap();
        assert_eq!(
            r.pod_ips("eth0"),
            vec![
                "10.244.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        let e = CniResult::parse(
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]}),
            "x",
            "ADD",
        )
        .unwrap_err();
        assert!(e.to_string().contains("ips[0].address"), "{e}");
        let e = CniResult::parse(
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/24","interface":3}]}),
            "x",
            "ADD",
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = CniResult::parse(json!({"cniVersion":"0.3.1"}), "x", "ADD").unwrap_err();
        assert!(e.to_string().contains("older than 1.0.0"), "{e}");
    }

    #[test]
    fn conf_dir_first_file_by_name_wins() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(NetworkConfigList::load_dir(d.path()).unwrap(), None);
        assert_eq!(
            NetworkConfigList::load_dir(&d.path().join("missing")).unwrap(),
            None
        );
        let list = |name: &str| {
            format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge"}}]}}"#)
        };
        std::fs::write(d.path().join("20-b.conflist"), list("b")).unwrap();
        std::fs::write(d.path().join("10-a.conflist"), list("a")).unwrap();
        std::fs::write(d.path().join("00-ignored.txt"), "not a config").unwrap();
        let l = NetworkConfigList::load_dir(d.path()).unwrap().unwrap();
        assert_eq!(l.name, "a");
        assert!(l.source_name.ends_with("10-a.conflist"));
        std::fs::write(d.path().join("05-broken.conf"), "{").unwrap();
        let e = NetworkConfigList::load_dir(d.path()).unwrap_err();
        assert!(e.to_string().contains("05-broken.conf"), "{e}");
    }

    #[test]
    fn iptables_rule_words() {
        assert_eq!(
            rule_words(
                r#"-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \"kubepull\" id: \"kp-1\"" -j CNI-ab"#
            ),
            vec![
                "-A",
                "POSTROUTING",
                "-s",
                "10.1.0.2/32",
                "-m",
                "comment",
                "--comment",
                "name: \"kubepull\" id: \"kp-1\"",
                "-j",
                "CNI-ab"
            ]
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            netns::pod_netns_name("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
            "kp-0f1e2d3c4b5a6978"
        );
        let b = bridge_name("node-a");
        assert!(b.len() <= 15 && b.starts_with("kp"), "{b}");
        assert_ne!(b, bridge_name("node-b"));
        assert_eq!(b, bridge_name("node-a"));
    }

    #[test]
    fn port_mappings_like_containerd() {
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "a", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                {"containerPort": 443}
            ]}]
        }))
        .unwrap();
        let m = port_mappings(&spec);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].protocol, "tcp");
        assert_eq!(m[1].protocol, "udp");
        assert_eq!(
            serde_json::to_value(&m[1]).unwrap(),
            json!({"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"})
        );
    }
}
