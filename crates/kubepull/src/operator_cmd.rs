//! `kubepull operator`: the pull-secret operator, and `kubepull operator manifests` to install it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};
use kubepull_kube::operator::{self, manifests, OperatorConfig};

use crate::exit;

const LONG_ABOUT: &str = "\
Copies a pull secret into every selected namespace and gets its name onto every new pod there,
on any cluster (AKS, EKS, GKE, k3s, `kubepull up`).

What to propagate is a ClusterPullSecret (kubepull.io/v1alpha1, cluster-scoped):

  spec:
    secretRef: {namespace: kubepull-system, name: regcred}  # the source
    namespaceSelector: {matchLabels: {pull: corp}}          # empty: every namespace
    excludeNamespaces: [\"kube-*\"]                           # anchored globs (* and ?)
    serviceAccounts: []                                     # names; empty: all
    injection: Admission                                    # Admission | ServiceAccount | Both

Admission (the default) appends the secret's name to each new pod's imagePullSecrets from a
mutating webhook, after making sure the copy is in the pod's namespace, so no pod can race the
copy (patching ServiceAccounts after the fact cannot promise that: their secrets are copied
into pods at admission). ServiceAccount appends the name to the ServiceAccounts instead.

The source is checked with `kubepull lint`'s rules before anything is copied; a broken source is
not propagated (good copies stay) and the ClusterPullSecret's status and an Event say why.
Copies are labelled as owned, rewritten when the source changes, deleted when no longer
selected, recreated when deleted, and a Secret of the same name that the operator does not own
is never overwritten. The source's namespace and the operator's own never receive copies.

One replica reconciles (--leader-elect, a Lease); every replica answers the webhook. The
operator keeps its MutatingWebhookConfiguration current itself, with the CA it manages (a
Secret kubepull-operator-ca in its namespace) in caBundle; failurePolicy is Ignore (a pod is
never blocked by the operator), the timeout short, kube-system and the operator's namespace
excluded.";

const AFTER_HELP: &str = "\
Examples:
  kubepull operator manifests --image registry.example/kubepull:0.1 | kubectl apply -f -
  kubepull operator --kubeconfig ~/.kube/config --namespace kubepull-system \\
      --webhook-bind 127.0.0.1:9443 --webhook-url https://127.0.0.1:9443/mutate-pods
  kubectl get clusterpullsecrets

Exit codes:
  0  stopped by a signal
  1  the operator failed (API server unreachable, listener busy)
  2  bad usage";

pub fn command() -> Command {
    Command::new("operator")
        .about("Run the pull-secret operator: a validated pull secret copied to selected namespaces and added to new pods race-free (any cluster)")
        .long_about(LONG_ABOUT)
        .after_help(AFTER_HELP)
        .args_conflicts_with_subcommands(true)
        .arg(Arg::new("kubeconfig").long("kubeconfig").value_name("FILE").help("kubeconfig (default: KUBECONFIG, then ~/.kube/config, then in-cluster)"))
        .arg(Arg::new("context").long("context").value_name("NAME").help("kubeconfig context"))
        .arg(Arg::new("namespace").long("namespace").value_name("NS").default_value("kubepull-system").help("The operator's namespace: its Lease and CA live there, and it never receives copies"))
        .arg(Arg::new("webhook-bind").long("webhook-bind").value_name("ADDR").default_value("0.0.0.0:8443").help("Where the admission webhook listens (HTTPS)"))
        .arg(Arg::new("webhook-url").long("webhook-url").value_name("URL").help("https URL the API server calls when the operator runs outside the cluster (default: the in-cluster Service kubepull-operator, port 443)"))
        .arg(Arg::new("webhook-timeout").long("webhook-timeout").value_name("SECONDS").default_value("5").value_parser(clap::value_parser!(i32)).help("timeoutSeconds of the webhook configuration (1 to 30)"))
        .arg(Arg::new("leader-elect").long("leader-elect").action(ArgAction::SetTrue).help("Reconcile only while holding the Lease kubepull-operator (run several replicas)"))
        .arg(Arg::new("metrics-bind").long("metrics-bind").value_name("ADDR").help("Serve Prometheus /metrics (plain HTTP) here"))
        .arg(Arg::new("tls-dir").long("tls-dir").value_name("DIR").help("Serve the webhook with DIR/tls.crt and DIR/tls.key and put DIR/ca.crt in the webhook configuration's caBundle (a mounted cert-manager Certificate Secret; renewals are picked up) instead of the CA the operator manages in its namespace"))
        .subcommand(
            Command::new("manifests")
                .about("Print the YAML that installs the operator: CRD, least-privilege RBAC, Deployment (2 replicas), Service")
                .arg(Arg::new("namespace").long("namespace").value_name("NS").default_value("kubepull-system").help("The operator's namespace"))
                .arg(Arg::new("image").long("image").value_name("IMG").required(true).help("The operator's image (a kubepull binary as its entrypoint; scripts/image.sh builds and pushes one)"))
                .arg(Arg::new("cert-manager").long("cert-manager").action(ArgAction::SetTrue).help("Let cert-manager issue the webhook's certificate: adds an Issuer chain and a Certificate (Secret kubepull-operator-tls) and mounts it with --tls-dir"))
                .arg(Arg::new("image-pull-secret").long("image-pull-secret").value_name("NAME").action(ArgAction::Append).help("A pull secret in the operator's namespace for pulling IMG from a private registry (repeatable)")),
        )
}

fn addr(m: &ArgMatches, flag: &str) -> Result<Option<SocketAddr>, String> {
    m.get_one::<String>(flag)
        .map(|s| {
            s.parse::<SocketAddr>()
                .map_err(|e| format!("--{flag} {s:?}: {e} (use HOST:PORT, e.g. 0.0.0.0:8443)"))
        })
        .transpose()
}

pub fn run(m: &ArgMatches) -> u8 {
    if let Some(("manifests", mm)) = m.subcommand() {
        let ns = mm
            .get_one::<String>("namespace")
            .map_or("kubepull-system", String::as_str);
        let image = mm.get_one::<String>("image").map_or("", String::as_str);
        if image.trim().is_empty() {
            eprintln!(
                "error: --image must name the operator's image, e.g. registry.example/kubepull:0.1"
            );
            return exit::USAGE;
        }
        let pull: Vec<String> = mm
            .get_many::<String>("image-pull-secret")
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let mut objects = manifests::objects_pulling_with(ns, image, &pull);
        if mm.get_flag("cert-manager") {
            manifests::use_cert_manager(&mut objects, ns);
        }
        print!("{}", manifests::yaml_stream(&objects));
        return exit::OK;
    }
    let ns = m
        .get_one::<String>("namespace")
        .cloned()
        .unwrap_or_default();
    let mut cfg = OperatorConfig::new(&ns);
    match (addr(m, "webhook-bind"), addr(m, "metrics-bind")) {
        (Ok(w), Ok(metrics)) => {
            if let Some(w) = w {
                cfg.webhook_bind = w;
            }
            cfg.metrics_bind = metrics;
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    }
    cfg.webhook_url = m.get_one::<String>("webhook-url").cloned();
    cfg.leader_elect = m.get_flag("leader-elect");
    cfg.tls_dir = m.get_one::<String>("tls-dir").map(PathBuf::from);
    cfg.webhook_timeout_seconds = m.get_one::<i32>("webhook-timeout").copied().unwrap_or(5);
    let kubeconfig = m.get_one::<String>("kubeconfig").map(PathBuf::from);
    let context = m.get_one::<String>("context").cloned();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    rt.block_on(async move {
        let (client, _) = match kubepull_kube::connect(kubeconfig.as_deref(), context.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            let _ = stop_tx.send(true);
        });
        eprintln!(
            "kubepull operator: namespace {}, webhook on {}{}",
            cfg.namespace,
            cfg.webhook_bind,
            if cfg.leader_elect { ", leader election on" } else { "" }
        );
        match operator::run(client, cfg, stop_rx).await {
            Ok(()) => exit::OK,
            Err(operator::OperatorError::Config(e)) => {
                eprintln!("error: {e}");
                exit::USAGE
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit::FAILURE
            }
        }
    })
}
