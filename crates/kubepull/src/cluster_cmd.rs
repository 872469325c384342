//! `kubepull server`, `kubepull node`, `kubepull up`, `kubepull down`, `kubepull token`,
//! `kubepull retry`: the control plane and the node agent, separately or in one process.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::exit;
use crate::pull_cmd;

pub fn server_command() -> Command {
    Command::new("server")
        .about("Run the Kubernetes-compatible API server and controllers (kubectl works against it)")
        .after_help("CustomResourceDefinitions (apiextensions.k8s.io/v1) are served: structural schemas with pruning, defaults and validation, the status and scale subresources, printer columns, several versions (conversion None only). See the README, \"Custom resources\".")
        .arg(data_dir_arg())
        .arg(cluster_cidr_arg())
        .arg(service_cidr_arg())
        .arg(
            Arg::new("bind-address")
                .long("bind-address")
                .default_value("127.0.0.1")
                .value_parser(clap::value_parser!(IpAddr))
                .help("Address to serve HTTPS on"),
        )
        .arg(
            Arg::new("secure-port")
                .long("secure-port")
                .default_value("6443")
                .value_parser(clap::value_parser!(u16))
                .help("HTTPS port (0: any free port)"),
        )
        .arg(pod_security_arg())
        .arg(allow_privileged_arg())
        .args(crate::storage_flags::storage_args())
}

fn pod_security_arg() -> Arg {
    Arg::new("pod-security")
        .long("pod-security")
        .value_name("LEVEL")
        .default_value("baseline")
        .value_parser(["privileged", "baseline", "restricted"])
        .help("Pod Security level (enforce, audit, warn) for namespaces without pod-security.kubernetes.io/* labels")
}

/// kube-apiserver's `--allow-privileged`. Upstream's default is false; kubepull's is true, as
/// kubeadm and k3s clusters set it (and as kubepull always allowed them).
fn allow_privileged_arg() -> Arg {
    Arg::new("allow-privileged")
        .long("allow-privileged")
        .value_name("BOOL")
        .num_args(0..=1)
        .require_equals(true)
        .default_value("true")
        .default_missing_value("true")
        .value_parser(clap::builder::BoolishValueParser::new())
        .help("Allow privileged containers in pods and pod templates (kube-apiserver's --allow-privileged, which defaults to false; kubepull's default is true, as on kubeadm and k3s clusters). With --allow-privileged=false they are refused: spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy")
}

fn allow_privileged(m: &ArgMatches) -> bool {
    m.get_one::<bool>("allow-privileged")
        .copied()
        .unwrap_or(true)
}

fn pod_security(m: &ArgMatches) -> kubepull_control::podsecurity::Level {
    m.get_one::<String>("pod-security")
        .and_then(|s| kubepull_control::podsecurity::Level::parse(s))
        .unwrap_or(kubepull_control::podsecurity::Level::Baseline)
}

fn cluster_cidr_arg() -> Arg {
    Arg::new("cluster-cidr")
        .long("cluster-cidr")
        .value_name("CIDR")
        .help("IPv4 range for pod IPs; each node gets a /24 of it (spec.podCIDR) [default: the first of 10.244.0.0/16, 10.88.0.0/16, 172.30.0.0/16, 10.200.0.0/16, 10.123.0.0/16, 172.29.0.0/16 that no route of this machine overlaps, remembered in DATA_DIR/cluster-cidr]")
}

fn service_cidr_arg() -> Arg {
    Arg::new("service-cluster-ip-range")
        .long("service-cluster-ip-range")
        .value_name("CIDR")
        .help("IPv4 range Service ClusterIPs are allocated from; its first address is the kubernetes Service's (a /12 to /29) [default: 10.96.0.0/12]")
}

/// The pod network flags of `node` and `up`.
fn network_args(c: Command) -> Command {
    c.arg(
        Arg::new("pod-network")
            .long("pod-network")
            .value_parser(["cni", "host"])
            .default_value("cni")
            .help("cni: each pod gets its own network namespace and IP from the CNI plugins (needs root and containernetworking-plugins); host: pods share the node's network"),
    )
    .arg(
        Arg::new("cni-bin-dir")
            .long("cni-bin-dir")
            .value_name("DIR")
            .action(ArgAction::Append)
            .default_value(kubepull_node::podnet::DEFAULT_BIN_DIR)
            .help("Where the CNI plugin binaries are (repeatable)"),
    )
    .arg(
        Arg::new("cni-conf-dir")
            .long("cni-conf-dir")
            .value_name("DIR")
            .help("A CNI configuration to use (the first .conf/.conflist/.json by name) instead of the node's own: bridge kp<hash of the node name> on the node's podCIDR with host-local IPAM, portmap (hostPort) and loopback"),
    )
}

fn pod_network_settings(m: &ArgMatches) -> Option<kubepull_node::agent::PodNetworkSettings> {
    if m.get_one::<String>("pod-network").map(String::as_str) == Some("host") {
        return None;
    }
    Some(kubepull_node::agent::PodNetworkSettings {
        bin_dirs: m
            .get_many::<String>("cni-bin-dir")
            .map(|v| v.map(PathBuf::from).collect())
            .unwrap_or_else(|| vec![PathBuf::from(kubepull_node::podnet::DEFAULT_BIN_DIR)]),
        conf_dir: m.get_one::<String>("cni-conf-dir").map(PathBuf::from),
    })
}

fn data_dir_arg() -> Arg {
    Arg::new("data-dir")
        .long("data-dir")
        .value_name("DIR")
        .required(true)
        .help("State directory: certificates, tokens, admin.kubeconfig, the datastore")
}

pub fn node_command() -> Command {
    node_agent_args(network_args(pull_cmd::registry_args(
        Command::new("node")
            .about("Run the node agent: register a Node, pull with pods' secrets, run containers with runc")
            .arg(Arg::new("server").long("server").required(true).value_name("URL").help("API server URL"))
            .arg(Arg::new("token").long("token").value_name("TOKEN").help("This node's token (`kubepull token node NAME`); or KUBEPULL_NODE_TOKEN"))
            .arg(Arg::new("ca-file").long("ca-file").required(true).value_name("FILE").help("The API server's CA certificate (DATA_DIR/pki/ca.crt)"))
            .arg(Arg::new("name").long("name").required(true).value_name("NAME").help("Node name"))
            .arg(Arg::new("root").long("root").required(true).value_name("DIR").help("Node state: image store, containers"))
            .arg(Arg::new("node-ip").long("node-ip").default_value("127.0.0.1").value_parser(clap::value_parser!(IpAddr)))
            .arg(Arg::new("docker-config").long("docker-config").value_name("FILE").help("The node's docker config.json (credentials after the pods' secrets)")),
    )))
}

/// The node agent's policy flags, shared by `node` and `up`.
fn node_agent_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("image-pull-credentials-verification-policy")
            .long("image-pull-credentials-verification-policy")
            .value_name("POLICY")
            .value_parser(kubepull_node::images::VerifyPolicy::NAMES)
            .default_value("NeverVerifyPreloadedImages")
            .help("When a pod may use an image already on the node without its credentials being checked (KEP-2535): NeverVerify (any pod), NeverVerifyPreloadedImages (images the node pulled are checked; images listed in --preloaded-images without a pull record are not), NeverVerifyAllowlistedImages (images listed in --preloaded-images are not checked), AlwaysVerify"),
    )
    .arg(
        Arg::new("allow-host-path")
            .long("allow-host-path")
            .value_name("DIR")
            .action(ArgAction::Append)
            .help("Allow hostPath volumes under DIR (repeatable; checked after resolving symlinks). Without it every hostPath volume is refused with a FailedMount event"),
    )
    .arg(
        Arg::new("serialize-image-pulls")
            .long("serialize-image-pulls")
            .value_name("BOOL")
            .value_parser(clap::value_parser!(bool))
            .num_args(0..=1)
            .require_equals(true)
            .default_value("true")
            .default_missing_value("true")
            .help("Pull one image at a time (the kubelet's serializeImagePulls); --serialize-image-pulls=false lets pulls run in parallel, up to --max-parallel-image-pulls. A pull waiting for its turn is logged, and its Pulled event reports the wait (\"… including waiting\")"),
    )
    .arg(
        Arg::new("max-parallel-image-pulls")
            .long("max-parallel-image-pulls")
            .value_name("N")
            .value_parser(clap::value_parser!(i64))
            .help("With --serialize-image-pulls=false, at most N image pulls at once (the kubelet's maxParallelImagePulls, KEP-3673) [default: no limit]"),
    )
    .arg(
        Arg::new("metrics-bind")
            .long("metrics-bind")
            .value_name("ADDR")
            .value_parser(clap::value_parser!(std::net::SocketAddr))
            .help("Serve the node's Prometheus metrics (plain HTTP GET /metrics) on ADDR, e.g. 127.0.0.1:10255: image pulls by result and cause, their durations and bytes, back-offs, decisions for images already present"),
    )
    .arg(
        Arg::new("preloaded-images")
            .long("preloaded-images")
            .value_name("FILE")
            .help("Repositories the admin loaded on this node, one per line: a full name without tag (docker.io/library/busybox) or a prefix ending in /* (registry.example:5000/base/*). An image without a pull record is used without checking credentials only if listed here"),
    )
    .arg(pull_cmd::discard_unpacked_layers_arg())
}

/// The node agent's puller, as its flags configure it.
fn node_puller(
    m: &ArgMatches,
    registry: kubepull_registry::Client,
    hosts: Option<kubepull_registry::HostsDir>,
    store: kubepull_store::Store,
) -> kubepull_images::Puller {
    let mut puller =
        kubepull_images::Puller::new(registry, store, kubepull_registry::Platform::host())
            .with_discard_unpacked_layers(m.get_flag("discard-unpacked-layers"));
    if let Some(h) = hosts {
        puller = puller.with_hosts(h);
    }
    puller
}

pub fn up_command() -> Command {
    node_agent_args(network_args(pull_cmd::registry_args(
        Command::new("up")
            .about(
                "Run the API server, controllers and a node agent in one process (single machine)",
            )
            .after_help(
                "Stop it, its containers and their networks with: kubepull down --data-dir DIR",
            )
            .arg(data_dir_arg())
            .arg(cluster_cidr_arg())
            .arg(service_cidr_arg())
            .arg(
                Arg::new("secure-port")
                    .long("secure-port")
                    .default_value("6443")
                    .value_parser(clap::value_parser!(u16)),
            )
            .arg(
                Arg::new("name")
                    .long("name")
                    .value_name("NAME")
                    .help("Node name [default: the host name]"),
            )
            .arg(
                Arg::new("docker-config")
                    .long("docker-config")
                    .value_name("FILE"),
            )
            .arg(pod_security_arg())
            .arg(allow_privileged_arg())
            .args(crate::storage_flags::storage_args()),
    )))
}

pub fn down_command() -> Command {
    Command::new("down")
        .about("Stop what `kubepull up --data-dir DIR` (or `kubepull node --root DIR`) started: the process, its containers (runc and their shims), their root filesystems and volumes, their networks (veths, the bridge, IP reservations and masquerade rules) and their pod sandboxes (pause processes, /dev/shm, network namespaces, pod cgroups); the state stays in DIR")
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .value_name("DIR")
                .conflicts_with("root")
                .required_unless_present("root")
                .help("The data directory of kubepull up"),
        )
        .arg(
            Arg::new("root")
                .long("root")
                .value_name("DIR")
                .help("The root of kubepull node"),
        )
        .arg(
            Arg::new("cni-bin-dir")
                .long("cni-bin-dir")
                .value_name("DIR")
                .action(ArgAction::Append)
                .help("Where the CNI plugin binaries are [default: the directories the node used, else /usr/lib/cni]"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .default_value("30")
                .value_parser(clap::value_parser!(u64))
                .help("How long to wait for the up process to exit after SIGTERM before SIGKILL"),
        )
}

pub fn token_command() -> Command {
    Command::new("token")
        .about("Print a node's join token, or revoke it")
        .subcommand_required(true)
        .subcommand(
            Command::new("node")
                .about("Print node NAME's join token (its current generation)")
                .arg(Arg::new("name").required(true))
                .arg(data_dir_arg()),
        )
        .subcommand(
            Command::new("revoke")
                .about("Revoke node NAME's token: the server refuses it from the next request on (401); `kubepull token node NAME` then prints the new one")
                .arg(Arg::new("kind").required(true).value_parser(["node"]))
                .arg(Arg::new("name").required(true))
                .arg(data_dir_arg()),
        )
}

pub fn shim_command() -> Command {
    Command::new("runtime-shim")
        .hide(true)
        .about("Supervise one container, or hold a pod's namespaces (`pause`); started by the node agent")
        .arg(
            Arg::new("args")
                .num_args(1..)
                .allow_hyphen_values(true)
                .value_parser(clap::value_parser!(std::ffi::OsString)),
        )
}

pub fn run_shim(m: &ArgMatches) -> u8 {
    let args: Vec<std::ffi::OsString> = m
        .get_many::<std::ffi::OsString>("args")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    kubepull_node::runc::shim_main(&args) as u8
}

pub fn retry_command() -> Command {
    Command::new("retry")
        .about("Make the node retry a pod's image pulls and crashed containers now, skipping the back-off")
        .arg(Arg::new("pod").required(true).action(ArgAction::Append))
        .arg(Arg::new("namespace").short('n').long("namespace").default_value("default"))
        .arg(Arg::new("kubeconfig").long("kubeconfig").value_name("FILE"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEPULL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn report(r: anyhow::Result<()>) -> u8 {
    match r {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
    }
}

/// A kube client for `url` trusting `ca_pem`, authenticating with `token`.
pub fn kube_client(url: &str, ca_pem: &[u8], token: &str) -> anyhow::Result<kube::Client> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .context("reading the CA certificate (PEM)")?;
    if certs.is_empty() {
        bail!("the CA file holds no PEM certificate");
    }
    let mut cfg = kube::Config::new(
        url.parse()
            .with_context(|| format!("--server {url:?} is not a URL"))?,
    );
    cfg.root_cert = Some(certs);
    cfg.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
    kube::Client::try_from(cfg).context("building the API client")
}

/// The datastore the storage flags name, opened.
async fn open_store(
    m: &ArgMatches,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn kubepull_datastore::Datastore>> {
    let sc = crate::storage_flags::store_config(m)?;
    kubepull_control::open_store(&sc, data_dir)
        .await
        .context("opening the datastore")
}

pub fn run_server(m: &ArgMatches) -> u8 {
    init_logging();
    let data_dir = PathBuf::from(m.get_one::<String>("data-dir").cloned().unwrap_or_default());
    let cfg = kubepull_control::ServerConfig {
        data_dir,
        bind_address: *m
            .get_one::<IpAddr>("bind-address")
            .unwrap_or(&IpAddr::from([127, 0, 0, 1])),
        secure_port: *m.get_one::<u16>("secure-port").unwrap_or(&6443),
        datastore: m
            .get_one::<String>("datastore")
            .cloned()
            .unwrap_or_default(),
        controllers: true,
        pod_security: pod_security(m),
        allow_privileged: allow_privileged(m),
        cluster_cidr: m.get_one::<String>("cluster-cidr").cloned(),
        service_cluster_ip_range: m.get_one::<String>("service-cluster-ip-range").cloned(),
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(e) => return report(Err(e)),
    };
    report(rt.block_on(async move {
        let store = open_store(m, &cfg.data_dir).await?;
        let server = kubepull_control::start_with_store(cfg, store)
            .await
            .context("starting the API server")?;
        eprintln!(
            "kubepull server listening on {}; admin kubeconfig: {}",
            server.url(),
            server.kubeconfig_path().display()
        );
        shutdown_signal().await;
        server.shutdown().await;
        Ok(())
    }))
}

fn load_docker_config(
    m: &ArgMatches,
) -> anyhow::Result<Option<kubepull_core::dockerconfig::DockerConfig>> {
    match m.get_one::<String>("docker-config") {
        None => Ok(None),
        Some(f) => crate::creds_cmd::load_node_config(Path::new(f)).map(Some),
    }
}

/// The API server's socket address from its URL (`https://HOST:PORT`, an IP host), where the
/// node leads pods that dial the `kubernetes` Service.
fn api_socket(url: &str) -> Option<std::net::SocketAddr> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    if let Ok(a) = authority.parse::<std::net::SocketAddr>() {
        return Some(a);
    }
    let with_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .ok()?
        .find(|a| a.is_ipv4())
}

async fn run_node_agent(
    client: kube::Client,
    m: &ArgMatches,
    name: String,
    root: PathBuf,
    node_ip: IpAddr,
    (token, ca_pem, api_url): (String, String, &str),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let verify: kubepull_node::images::VerifyPolicy = m
        .get_one::<String>("image-pull-credentials-verification-policy")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_default();
    let preloaded = match m.get_one::<String>("preloaded-images") {
        None => kubepull_node::images::PreloadedImages::default(),
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("--preloaded-images {f}"))?;
            kubepull_node::images::PreloadedImages::parse(&text)
                .with_context(|| format!("--preloaded-images {f}"))?
        }
    };
    // validated as the kubelet validates its configuration
    let pull_limits = kubepull_node::pull_limits::PullLimits::new(
        m.get_one::<bool>("serialize-image-pulls")
            .copied()
            .unwrap_or(true),
        m.get_one::<i64>("max-parallel-image-pulls").copied(),
    )?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let store = kubepull_store::Store::open(&root.join("images"))
        .with_context(|| format!("opening the image store in {}", root.display()))?;
    let (registry, hosts) = pull_cmd::registry_client(m)?;
    let puller = node_puller(m, registry, hosts, store.clone());
    let images = Arc::new(kubepull_node::service::StoreImageService::new(puller));
    let exe =
        std::env::current_exe().context("locating the kubepull binary for the runtime shim")?;
    let runtime = Arc::new(
        kubepull_node::runc::RuncRuntime::new(
            &root.join("containers"),
            store,
            vec![exe.into_os_string(), "runtime-shim".into()],
        )
        .map_err(|e| anyhow::anyhow!("container runtime: {e}"))?,
    );
    let cfg = kubepull_node::agent::AgentConfig {
        node_name: name,
        node_ip,
        token,
        ca_pem,
        root,
        node_config: load_docker_config(m)?,
        log_port: 0,
        verify,
        preloaded,
        allow_host_path: m
            .get_many::<String>("allow-host-path")
            .into_iter()
            .flatten()
            .map(PathBuf::from)
            .collect(),
        pod_network: pod_network_settings(m),
        pull_limits,
        api_server: api_socket(api_url),
    };
    let metrics = match m.get_one::<std::net::SocketAddr>("metrics-bind") {
        Some(a) => Some(
            kubepull_node::metrics::bind(*a)
                .await
                .map_err(|e| anyhow::anyhow!(e))?,
        ),
        None => None,
    };
    let (stop_metrics, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = metrics.map(|l| {
        tokio::spawn(kubepull_node::metrics::serve(l, async move {
            let _ = stopped.await;
        }))
    });
    let r = kubepull_node::agent::run(client, cfg, images, runtime, shutdown)
        .await
        .context("node agent");
    let _ = stop_metrics.send(());
    if let Some(t) = served {
        let _ = t.await;
    }
    r
}

pub fn run_node(m: &ArgMatches) -> u8 {
    init_logging();
    let r = (|| -> anyhow::Result<()> {
        let url = m.get_one::<String>("server").cloned().unwrap_or_default();
        let token = match m.get_one::<String>("token") {
            Some(t) => t.clone(),
            None => std::env::var("KUBEPULL_NODE_TOKEN")
                .context("--token or KUBEPULL_NODE_TOKEN is required")?,
        };
        let ca_file = m.get_one::<String>("ca-file").cloned().unwrap_or_default();
        let ca = std::fs::read(&ca_file).with_context(|| format!("--ca-file {ca_file}"))?;
        let name = m.get_one::<String>("name").cloned().unwrap_or_default();
        let root = PathBuf::from(m.get_one::<String>("root").cloned().unwrap_or_default());
        let node_ip = *m
            .get_one::<IpAddr>("node-ip")
            .unwrap_or(&IpAddr::from([127, 0, 0, 1]));
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let pid_file = node_pid_file(&root);
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        eprintln!(
            "stop this node, its containers and their networks with: kubepull down --root {}",
            root.display()
        );
        let rt = runtime()?;
        rt.block_on(async {
            let client = kube_client(&url, &ca, &token)?;
            let ca_pem = String::from_utf8(ca.clone()).context("--ca-file is not PEM text")?;
            run_node_agent(
                client,
                m,
                name,
                root,
                node_ip,
                (token, ca_pem, &url),
                shutdown_signal(),
            )
            .await
        })
    })();
    report(r)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node-1".into())
}

pub fn run_up(m: &ArgMatches) -> u8 {
    init_logging();
    let r = (|| -> anyhow::Result<()> {
        let data_dir = PathBuf::from(m.get_one::<String>("data-dir").cloned().unwrap_or_default());
        let name = m
            .get_one::<String>("name")
            .cloned()
            .unwrap_or_else(hostname);
        let cfg = kubepull_control::ServerConfig {
            data_dir: data_dir.clone(),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            secure_port: *m.get_one::<u16>("secure-port").unwrap_or(&6443),
            datastore: m
                .get_one::<String>("datastore")
                .cloned()
                .unwrap_or_default(),
            controllers: true,
            pod_security: pod_security(m),
            allow_privileged: allow_privileged(m),
            cluster_cidr: m.get_one::<String>("cluster-cidr").cloned(),
            service_cluster_ip_range: m.get_one::<String>("service-cluster-ip-range").cloned(),
        };
        let rt = runtime()?;
        rt.block_on(async move {
            let store = open_store(m, &cfg.data_dir).await?;
            let server = kubepull_control::start_with_store(cfg, store)
                .await
                .context("starting the API server")?;
            let token = server.node_token(&name);
            let node_client = kube_client(&server.url(), server.ca_pem().as_bytes(), &token)?;
            let pid_file = up_pid_file(&data_dir);
            std::fs::write(&pid_file, format!("{}\n", std::process::id()))
                .with_context(|| format!("writing {}", pid_file.display()))?;
            eprintln!(
                "kubepull is up: API server {}, node {name}\n  export KUBECONFIG={}\n  stop it with: kubepull down --data-dir {}",
                server.url(),
                server.kubeconfig_path().display(),
                data_dir.display()
            );
            let r = run_node_agent(
                node_client,
                m,
                name,
                data_dir.join("node"),
                IpAddr::from([127, 0, 0, 1]),
                (token, server.ca_pem(), &server.url()),
                shutdown_signal(),
            )
            .await;
            server.shutdown().await;
            r
        })
    })();
    report(r)
}

fn up_pid_file(data_dir: &Path) -> PathBuf {
    data_dir.join("up.pid")
}

fn node_pid_file(root: &Path) -> PathBuf {
    root.join("node.pid")
}

/// Whether `pid` is alive and is `kubepull SUBCOMMAND … FLAG DIR` on the same directory (not a
/// recycled pid); a relative DIR is resolved against the process's working directory.
fn is_ours(pid: u32, subcommand: &str, flag: &str, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Ok(want) = std::fs::canonicalize(dir) else {
        return false;
    };
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
    let same = |v: &str| {
        let p = Path::new(v);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        };
        std::fs::canonicalize(p).is_ok_and(|c| c == want)
    };
    let prefix = format!("{flag}=");
    let names_dir = args.iter().enumerate().any(|(i, a)| {
        if let Some(v) = a.strip_prefix(&prefix) {
            return same(v);
        }
        a == flag && args.get(i + 1).is_some_and(|v| same(v))
    });
    args.iter().any(|a| a == subcommand) && names_dir && !is_zombie(pid)
}

/// Stops the process whose pid is in `pid_file` if it is `kubepull SUBCOMMAND` on `dir`:
/// SIGTERM, then SIGKILL after `timeout` seconds.
fn stop_process(pid_file: &Path, subcommand: &str, flag: &str, dir: &Path, timeout: u64) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    if !is_ours(pid, subcommand, flag, dir) {
        return;
    }
    signal(pid, "TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    while is_ours(pid, subcommand, flag, dir) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if is_ours(pid, subcommand, flag, dir) {
        signal(pid, "KILL");
        while is_ours(pid, subcommand, flag, dir) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    println!("stopped kubepull {subcommand} (pid {pid})");
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(true)
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .output();
}

/// The shims (`kubepull runtime-shim RUNC RUNC_ROOT …`) supervising containers under
/// `runc_root`.
fn shim_pids(runc_root: &Path) -> Vec<u32> {
    let root = runc_root.to_string_lossy().into_owned();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "runtime-shim") && args.contains(&root) {
            out.push(pid);
        }
    }
    out
}

pub fn run_down(m: &ArgMatches) -> u8 {
    init_logging();
    let r = (|| -> anyhow::Result<()> {
        let timeout = *m.get_one::<u64>("timeout").unwrap_or(&30);
        // 1. the process: `up` on DATA_DIR, or `node` on ROOT
        let (root, pid_file, state) =
            match (m.get_one::<String>("data-dir"), m.get_one::<String>("root")) {
                (Some(d), _) => {
                    let data_dir = PathBuf::from(d);
                    if !data_dir.is_dir() {
                        bail!("--data-dir {}: no such directory", data_dir.display());
                    }
                    let pid_file = up_pid_file(&data_dir);
                    stop_process(&pid_file, "up", "--data-dir", &data_dir, timeout);
                    (data_dir.join("node"), pid_file, data_dir)
                }
                (None, Some(r)) => {
                    let root = PathBuf::from(r);
                    if !root.is_dir() {
                        bail!("--root {}: no such directory", root.display());
                    }
                    let pid_file = node_pid_file(&root);
                    stop_process(&pid_file, "node", "--root", &root, timeout);
                    (root.clone(), pid_file, root)
                }
                (None, None) => {
                    bail!("give --data-dir DIR (of kubepull up) or --root DIR (of kubepull node)")
                }
            };
        // 2. its containers and their shims
        let runc_root = root.join("containers").join(".runc");
        let mut containers = 0;
        if runc_root.is_dir() {
            let list = std::process::Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["list", "-q"])
                .output();
            if let Ok(o) = list {
                for id in String::from_utf8_lossy(&o.stdout).lines().map(str::trim) {
                    if id.is_empty() {
                        continue;
                    }
                    let _ = std::process::Command::new("runc")
                        .arg("--root")
                        .arg(&runc_root)
                        .args(["kill", "--all", id, "KILL"])
                        .output();
                    let mut deleted = false;
                    for _ in 0..50 {
                        let o = std::process::Command::new("runc")
                            .arg("--root")
                            .arg(&runc_root)
                            .args(["delete", "-f", id])
                            .output();
                        if o.map(|o| o.status.success()).unwrap_or(false) {
                            deleted = true;
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    if !deleted {
                        bail!(
                            "runc delete -f {id} (runc root {}) keeps failing",
                            runc_root.display()
                        );
                    }
                    containers += 1;
                }
            }
            for pid in shim_pids(&runc_root) {
                signal(pid, "KILL");
            }
        }
        println!("removed {containers} container(s)");
        // their root filesystems (overlays of the store's snapshots) and volumes (tmpfs, binds)
        let containers_dir = root.join("containers");
        let mut rootfs = 0;
        if let Ok(rd) = std::fs::read_dir(&containers_dir) {
            for e in rd.flatten() {
                let r = e.path().join("rootfs");
                if r.is_dir() {
                    kubepull_store::unmount_rootfs(&r)
                        .with_context(|| format!("unmounting {}", r.display()))?;
                    rootfs += 1;
                }
            }
        }
        let volumes = kubepull_node::pod::volumes::VolumeSettings {
            pods_dir: root.join("pods"),
            host_path_allowed: vec![],
        };
        let mut pods_with_volumes = 0;
        if let Ok(rd) = std::fs::read_dir(&volumes.pods_dir) {
            for e in rd.flatten() {
                let uid = e.file_name().to_string_lossy().into_owned();
                kubepull_node::pod::volumes::teardown(&volumes, &uid)
                    .map_err(|e| anyhow::anyhow!("removing the volumes of pod {uid}: {e}"))?;
                pods_with_volumes += 1;
            }
        }
        println!(
            "unmounted {rootfs} root filesystem(s) and the volumes of {pods_with_volumes} pod(s)"
        );
        // 3. their networks
        let conflist = kubepull_node::agent::effective_conflist_path(&root);
        if conflist.is_file() {
            let bytes = std::fs::read(&conflist)
                .with_context(|| format!("reading {}", conflist.display()))?;
            let list = kubepull_node::podnet::NetworkConfigList::parse(
                &bytes,
                &conflist.display().to_string(),
            )?;
            let bridges: Vec<String> = list
                .plugins
                .iter()
                .filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("bridge"))
                .filter_map(|p| p.get("bridge").and_then(|b| b.as_str()).map(str::to_string))
                .collect();
            // the node's own plugin directories unless given here
            let remembered: Vec<PathBuf> =
                std::fs::read_to_string(kubepull_node::agent::cni_bin_dirs_path(&root))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(PathBuf::from)
                    .collect();
            let given: Vec<PathBuf> = m
                .get_many::<String>("cni-bin-dir")
                .map(|v| v.map(PathBuf::from).collect())
                .unwrap_or_default();
            let bin_dirs = if !given.is_empty() {
                given
            } else if !remembered.is_empty() {
                remembered
            } else {
                vec![PathBuf::from(kubepull_node::podnet::DEFAULT_BIN_DIR)]
            };
            let net = kubepull_node::podnet::PodNetwork::new(
                kubepull_node::podnet::Cni::new(bin_dirs, list),
                kubepull_node::agent::cni_results_dir(&root),
            );
            let rt = runtime()?;
            rt.block_on(async {
                let pods = net.records().len();
                net.cleanup(|_| false).await;
                let left = net.records();
                if !left.is_empty() {
                    let names: Vec<&str> = left.iter().map(|r| r.pod.as_str()).collect();
                    bail!("could not release the network of pod(s) {}; see the warnings above and run kubepull down again", names.join(", "));
                }
                println!("released the network of {pods} pod(s)");
                let portal = kubepull_node::agent::portal_record_path(&root);
                if let Ok(node) = std::fs::read_to_string(&portal) {
                    kubepull_node::service_proxy::remove(node.trim()).await?;
                    println!("removed the kubernetes Service portal of node {}", node.trim());
                }
                for b in &bridges {
                    kubepull_node::podnet::delete_bridge(b).await?;
                    println!("removed bridge {b}");
                }
                Ok(())
            })?;
            let cni_dir = root.join("cni");
            std::fs::remove_dir_all(&cni_dir)
                .with_context(|| format!("removing {}", cni_dir.display()))?;
        }
        // 4. the pod sandboxes (pause processes, /dev/shm, network namespaces, pod cgroups)
        let sandboxes = kubepull_node::sandbox::pause::list(&containers_dir);
        for uid in &sandboxes {
            kubepull_node::sandbox::pause::remove(&containers_dir, uid)
                .map_err(|e| anyhow::anyhow!("removing the sandbox of pod {uid}: {e}"))?;
        }
        println!("removed {} pod sandbox(es)", sandboxes.len());
        let _ = std::fs::remove_file(&pid_file);
        println!("kubepull is down; the state stays in {}", state.display());
        Ok(())
    })();
    report(r)
}

pub fn run_token(m: &ArgMatches) -> u8 {
    let (sub, m) = match m.subcommand() {
        Some(x) => x,
        None => return exit::FAILURE,
    };
    let data_dir = PathBuf::from(m.get_one::<String>("data-dir").cloned().unwrap_or_default());
    let name = m.get_one::<String>("name").cloned().unwrap_or_default();
    let r = if sub == "revoke" {
        kubepull_control::pki::revoke_node_token(&data_dir, &name).map(|g| {
            format!("the token of node {name} is revoked (now generation {g}); the new one: kubepull token node {name} --data-dir {}", data_dir.display())
        })
    } else {
        kubepull_control::node_token(&data_dir, &name)
    };
    match r {
        Ok(t) => {
            println!("{t}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}

pub fn run_retry(m: &ArgMatches) -> u8 {
    let r = (|| -> anyhow::Result<()> {
        let ns = m
            .get_one::<String>("namespace")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let rt = runtime()?;
        rt.block_on(async {
            let client = match m.get_one::<String>("kubeconfig") {
                Some(f) => {
                    let kc = kube::config::Kubeconfig::read_from(f).with_context(|| format!("--kubeconfig {f}"))?;
                    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
                    kube::Client::try_from(cfg)?
                }
                None => kube::Client::try_default().await.context("no kubeconfig (set KUBECONFIG or --kubeconfig)")?,
            };
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, &ns);
            let stamp = jiff::Timestamp::now().to_string();
            for p in m.get_many::<String>("pod").into_iter().flatten() {
                let patch = serde_json::json!({"metadata": {"annotations": {kubepull_node::pod::RETRY_NOW_ANNOTATION: stamp}}});
                pods.patch(p, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("pod {ns}/{p}"))?;
                println!("pod/{p} will retry now");
            }
            Ok(())
        })
    })();
    report(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--allow-privileged` of `server` and `up`: true unless `--allow-privileged=false`.
    #[test]
    fn allow_privileged_defaults_to_true() {
        for cmd in [server_command(), up_command()] {
            let name = cmd.get_name().to_string();
            let parse = |args: &[&str]| {
                let m = cmd
                    .clone()
                    .try_get_matches_from([&name[..], "--data-dir", "d"].iter().chain(args))
                    .unwrap();
                allow_privileged(&m)
            };
            assert!(parse(&[]), "{name}");
            assert!(parse(&["--allow-privileged"]), "{name}");
            assert!(parse(&["--allow-privileged=true"]), "{name}");
            assert!(!parse(&["--allow-privileged=false"]), "{name}");
            assert!(cmd
                .clone()
                .try_get_matches_from([&name[..], "--data-dir", "d", "--allow-privileged=maybe"])
                .is_err());
        }
    }
    /// `--discard-unpacked-layers` of `node` and `up` reaches the node agent's puller; off by
    /// default, as containerd's `discard_unpacked_layers`.
    #[test]
    fn discard_unpacked_layers_reaches_the_node_puller() {
        let t = tempfile::tempdir().unwrap();
        let store = kubepull_store::Store::open(t.path()).unwrap();
        let node = [
            "node",
            "--server",
            "https://127.0.0.1:1",
            "--ca-file",
            "ca.crt",
            "--name",
            "n1",
            "--root",
            "r",
        ];
        let up = ["up", "--data-dir", "d"];
        for (cmd, base) in [(node_command(), &node[..]), (up_command(), &up[..])] {
            for discard in [false, true] {
                let mut args = base.to_vec();
                if discard {
                    args.push("--discard-unpacked-layers");
                }
                let m = cmd.clone().try_get_matches_from(&args).unwrap();
                let client = kubepull_registry::Client::https(
                    &kubepull_registry::TlsConfig::system(),
                    kubepull_registry::ClientConfig::default(),
                )
                .unwrap();
                let p = node_puller(&m, client, None, store.clone());
                assert_eq!(p.discards_unpacked_layers(), discard, "{args:?}");
            }
        }
    }
}
