//! `kubepull operator`: every selected namespace gets a validated copy of a pull secret, and
//! every new pod the secret's name (by a mutating webhook, race-free) or its ServiceAccount does.
//!
//! Level-triggered: each pass compares what is (reflector caches fed by watches: the
//! `ClusterPullSecret`s, namespace metadata, the metadata of the operator's own copies found by
//! label, ServiceAccounts, and the metadata of Secrets in the source namespaces only) with what
//! should be, so a crash or a restart loses nothing, and memory does not grow with the number of
//! Secrets in the cluster. One replica reconciles (a Lease elects it); every replica answers the
//! webhook.

pub mod certs;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod plan;
mod reconcile;
pub mod source;
pub mod spec;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{PartialObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::{mpsc, watch, Mutex};

use plan::NamespaceView;
use spec::{ClusterPullSecret, ClusterPullSecretSpec};

/// What can stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The API server refused or failed a request.
    #[error("API request failed: {0}")]
    Api(String),
    /// The webhook's certificate could not be made or read.
    #[error("webhook certificate: {0}")]
    Certificate(String),
    /// A flag is wrong.
    #[error("{0}")]
    Config(String),
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl OperatorError {
    fn api(e: kube::Error) -> Self {
        OperatorError::Api(e.to_string())
    }
}

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The operator's namespace (never receives copies; holds its Lease and CA).
    pub namespace: String,
    /// Where the webhook listens (HTTPS).
    pub webhook_bind: SocketAddr,
    /// The URL the API server calls when the operator runs outside the cluster; `None` means
    /// the in-cluster Service `service_name` in `namespace`, port 443.
    pub webhook_url: Option<String>,
    /// The Service in front of the replicas.
    pub service_name: String,
    /// Elect one reconciling replica with a Lease; without it this process always reconciles.
    pub leader_elect: bool,
    /// Where `/metrics` is served (plain HTTP); `None` serves none.
    pub metrics_bind: Option<SocketAddr>,
    /// This replica's identity in the Lease (pod name).
    pub identity: String,
    /// Full resync period (level-triggered safety net).
    pub resync: Duration,
    /// The API server's webhook timeout, in seconds (1 to 30).
    pub webhook_timeout_seconds: i32,
    /// A directory with the serving certificate (`tls.crt`, `tls.key`, `ca.crt`: a mounted
    /// cert-manager Certificate Secret) instead of the CA the operator manages itself.
    pub tls_dir: Option<std::path::PathBuf>,
}

impl OperatorConfig {
    /// Defaults for `namespace`.
    pub fn new(namespace: &str) -> Self {
        let host = std::env::var("POD_NAME")
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "kubepull-operator".into());
        OperatorConfig {
            namespace: namespace.to_string(),
            webhook_bind: SocketAddr::from(([0, 0, 0, 0], 8443)),
            webhook_url: None,
            service_name: "kubepull-operator".into(),
            leader_elect: false,
            metrics_bind: None,
            identity: format!("{host}_{}", std::process::id()),
            resync: Duration::from_secs(300),
            webhook_timeout_seconds: 5,
            tls_dir: None,
        }
    }
}

/// Name of the webhook configuration (and of the Lease, the Service and the RBAC objects).
pub const NAME: &str = "kubepull-operator";

/// Why a pass must run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Trigger {
    /// Everything (start, namespace change, resync).
    All,
    /// One `ClusterPullSecret`.
    Cr(String),
    /// A Secret in a source namespace changed.
    Source(String, String),
    /// ServiceAccounts changed.
    ServiceAccounts,
}

/// One lock per (namespace, name) being created.
type CreateLocks = Mutex<HashMap<(String, String), Arc<Mutex<()>>>>;

/// What every task shares: the client, the caches, the metrics.
pub struct Shared {
    client: kube::Client,
    cfg: OperatorConfig,
    crs: Store<ClusterPullSecret>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    copies: Store<PartialObjectMeta<Secret>>,
    service_accounts: Store<ServiceAccount>,
    /// The metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Namespaces whose copy the webhook is creating right now (one create per namespace and
    /// name however many pods arrive at once).
    creating: CreateLocks,
    recorder: kube::runtime::events::Recorder,
}

impl Shared {
    /// Every `ClusterPullSecret` as `(name, spec)`, in name order.
    fn cr_specs(&self) -> Vec<(String, ClusterPullSecretSpec)> {
        let mut v: Vec<(String, ClusterPullSecretSpec)> = self
            .crs
            .state()
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), c.spec.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn ns_view(m: &PartialObjectMeta<Namespace>) -> NamespaceView {
        NamespaceView {
            name: m.metadata.name.clone().unwrap_or_default(),
            labels: m.metadata.labels.clone().unwrap_or_default(),
            terminating: m.metadata.deletion_timestamp.is_some(),
        }
    }

    /// The namespace from the cache, or read when the cache has not seen it yet (a namespace
    /// created a moment before its first pod).
    async fn namespace_view(&self, name: &str) -> Option<NamespaceView> {
        if let Some(m) = self.namespaces.get(&ObjectRef::new(name)) {
            return Some(Self::ns_view(&m));
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = api.get_opt(name).await.ok().flatten()?;
        let mut labels: BTreeMap<String, String> = ns.metadata.labels.unwrap_or_default();
        // the API server sets this label on every namespace; a cache miss must not hide it
        labels
            .entry("kubernetes.io/metadata.name".into())
            .or_insert_with(|| name.to_string());
        Some(NamespaceView {
            name: name.to_string(),
            labels,
            terminating: ns.metadata.deletion_timestamp.is_some(),
        })
    }

    /// Makes sure the copy of `cr`'s source is in `ns`; `Ok(false)` when the source is not usable
    /// or a Secret of that name that the operator does not own is there. With `dry_run` nothing
    /// is written.
    async fn ensure_copy(
        &self,
        cr: &str,
        spec: &ClusterPullSecretSpec,
        ns: &str,
        dry_run: bool,
    ) -> Result<bool, String> {
        let name = &spec.secret_ref.name;
        let owned_here = |s: &Shared| {
            s.copies.get(&ObjectRef::new(name).within(ns)).map(|m| {
                m.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(spec::OWNER_LABEL))
                    .map(String::as_str)
                    == Some(cr)
            })
        };
        if let Some(ours) = owned_here(self) {
            return Ok(ours);
        }
        let key = (ns.to_string(), name.clone());
        let lock = self
            .creating
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.lock().await;
        let result = self.create_copy(cr, spec, ns, dry_run).await;
        drop(guard);
        let mut m = self.creating.lock().await;
        // the map holds one reference and this call another: nobody else is waiting
        if Arc::strong_count(&lock) <= 2 {
            m.remove(&key);
        }
        result
    }

    async fn create_copy(
        &self,
        cr: &str,
        spec: &ClusterPullSecretSpec,
        ns: &str,
        dry_run: bool,
    ) -> Result<bool, String> {
        let name = &spec.secret_ref.name;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        if let Ok(Some(existing)) = secrets.get_metadata_opt(name).await {
            let owner = existing
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(spec::OWNER_LABEL).cloned());
            return Ok(owner.as_deref() == Some(cr));
        }
        let src_api: Api<Secret> = Api::namespaced(self.client.clone(), &spec.secret_ref.namespace);
        let src = src_api
            .get_opt(name)
            .await
            .map_err(|e| format!("reading the source: {e}"))?;
        let plan::SourceState::Valid { hash } = source::judge(src.as_ref()) else {
            return Ok(false);
        };
        let Some(src) = src else { return Ok(false) };
        if dry_run {
            return Ok(false);
        }
        let copy = reconcile::copy_of(cr, &src, ns, &hash);
        match secrets.create(&PostParams::default(), &copy).await {
            Ok(_) => {
                self.metrics
                    .inc("kubepull_operator_copies_total", "action=\"create\"");
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(secrets
                .get_metadata_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|m| m.metadata.labels)
                .and_then(|l| l.get(spec::OWNER_LABEL).cloned())
                .as_deref()
                == Some(cr)),
            Err(e) => Err(format!("creating the copy: {e}")),
        }
    }
}

/// Runs the operator until `shutdown` turns true.
pub async fn run(
    client: kube::Client,
    cfg: OperatorConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    if !(1..=30).contains(&cfg.webhook_timeout_seconds) {
        return Err(OperatorError::Config(
            "--webhook-timeout must be between 1 and 30 seconds (the API server's limit)".into(),
        ));
    }
    if let Some(u) = &cfg.webhook_url {
        if !u.starts_with("https://") {
            return Err(OperatorError::Config(format!(
                "--webhook-url {u:?}: the API server calls webhooks over https only (https://HOST:PORT/)"
            )));
        }
    }
    let webhook_listener = tokio::net::TcpListener::bind(cfg.webhook_bind)
        .await
        .map_err(|source| OperatorError::Listen {
            addr: cfg.webhook_bind,
            source,
        })?;
    let metrics_listener = match cfg.metrics_bind {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| OperatorError::Listen { addr, source })?,
        ),
        None => None,
    };

    let (crs, crs_w) = reflector::store();
    let (namespaces, ns_w) = reflector::store();
    let (copies, copies_w) = reflector::store();
    let (service_accounts, sa_w) = reflector::store();
    let reporter = kube::runtime::events::Reporter {
        controller: NAME.into(),
        instance: Some(cfg.identity.clone()),
    };
    let shared = Arc::new(Shared {
        client: client.clone(),
        cfg: cfg.clone(),
        crs,
        namespaces,
        copies,
        service_accounts,
        metrics: Arc::default(),
        creating: Mutex::default(),
        recorder: kube::runtime::events::Recorder::new(client.clone(), reporter),
    });

    let (tx, rx) = mpsc::unbounded_channel::<Trigger>();
    let mut tasks = tokio::task::JoinSet::new();

    // watches feeding the caches, each turned into triggers
    {
        let tx = tx.clone();
        let api: Api<ClusterPullSecret> = Api::all(client.clone());
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(crs_w);
        tasks.spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::Delete(o)) => {
                        let _ = tx.send(Trigger::Cr(o.metadata.name.unwrap_or_default()));
                    }
                    Ok(watcher::Event::InitDone) => {
                        let _ = tx.send(Trigger::All);
                    }
                    _ => {}
                }
            }
        });
    }
    {
        let tx = tx.clone();
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(ns_w);
        tasks.spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if matches!(
                    ev,
                    Ok(watcher::Event::Apply(_)
                        | watcher::Event::Delete(_)
                        | watcher::Event::InitDone)
                ) {
                    let _ = tx.send(Trigger::All);
                }
            }
        });
    }
    {
        let tx = tx.clone();
        let api: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
        let stream = watcher(
            api,
            watcher::Config::default().labels(&spec::copies_selector()),
        )
        .default_backoff()
        .reflect(copies_w);
        tasks.spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::Delete(o)) => {
                        if let Some(owner) = o
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(spec::OWNER_LABEL))
                        {
                            let _ = tx.send(Trigger::Cr(owner.clone()));
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        let _ = tx.send(Trigger::All);
                    }
                    _ => {}
                }
            }
        });
    }
    {
        let tx = tx.clone();
        let api: Api<ServiceAccount> = Api::all(client.clone());
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(sa_w);
        tasks.spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if matches!(ev, Ok(watcher::Event::Apply(_) | watcher::Event::InitDone)) {
                    let _ = tx.send(Trigger::ServiceAccounts);
                }
            }
        });
    }
    // Secrets in the source namespaces only (metadata): one watch per namespace that holds a
    // source, started and stopped as ClusterPullSecrets come and go.
    {
        let shared = shared.clone();
        let tx = tx.clone();
        let client = client.clone();
        tasks.spawn(async move {
            let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let wanted: BTreeSet<String> = shared
                    .cr_specs()
                    .into_iter()
                    .map(|(_, s)| s.secret_ref.namespace)
                    .collect();
                running.retain(|ns, h| {
                    let keep = wanted.contains(ns);
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for ns in wanted {
                    if running.contains_key(&ns) {
                        continue;
                    }
                    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), &ns);
                    let tx = tx.clone();
                    let ns2 = ns.clone();
                    let h = tokio::spawn(async move {
                        let stream = watcher(api, watcher::Config::default()).default_backoff();
                        futures_util::pin_mut!(stream);
                        while let Some(ev) = stream.next().await {
                            if let Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) = ev {
                                let _ = tx.send(Trigger::Source(
                                    ns2.clone(),
                                    o.metadata.name.unwrap_or_default(),
                                ));
                            }
                        }
                    });
                    running.insert(ns, h);
                }
            }
        });
    }

    // the webhook (every replica) and the metrics endpoint
    let (tls, ca_source) = match &cfg.tls_dir {
        Some(dir) => {
            certs::read_ca(dir)?;
            (
                certs::file_server_config(dir)?,
                reconcile::CaSource::File(dir.clone()),
            )
        }
        None => {
            let (tls, ca) = self_managed_tls(&client, &cfg).await?;
            (tls, reconcile::CaSource::Pem(ca))
        }
    };
    tasks.spawn(webhook::serve(
        shared.clone(),
        webhook_listener,
        tls,
        shutdown.clone(),
    ));
    if let Some(l) = metrics_listener {
        tasks.spawn(webhook::serve_metrics(shared.clone(), l, shutdown.clone()));
    }

    // leadership, then the reconciler while leading
    let (leading_tx, leading_rx) = watch::channel(!cfg.leader_elect);
    shared.metrics.set_leader(!cfg.leader_elect);
    if cfg.leader_elect {
        let elector = leader::Elector::new(client.clone(), &cfg.namespace, NAME, &cfg.identity);
        let metrics = shared.metrics.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { elector.run(leading_tx, metrics, shutdown).await });
    }
    tasks.spawn(reconcile::run(
        shared.clone(),
        rx,
        tx.clone(),
        leading_rx,
        ca_source,
    ));

    let _ = shutdown.wait_for(|s| *s).await;
    tasks.abort_all();
    Ok(())
}

/// The serving configuration signed by the CA the operator keeps in its namespace, and that CA.
async fn self_managed_tls(
    client: &kube::Client,
    cfg: &OperatorConfig,
) -> Result<(std::sync::Arc<tokio_rustls::rustls::ServerConfig>, String), OperatorError> {
    let ca = certs::ensure_ca(client, &cfg.namespace).await?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        format!("{}.{}.svc", cfg.service_name, cfg.namespace),
        format!("{}.{}.svc.cluster.local", cfg.service_name, cfg.namespace),
    ];
    if let Some(host) = cfg
        .webhook_url
        .as_deref()
        .and_then(url_host)
        .filter(|h| !names.contains(h))
    {
        names.push(host);
    }
    let tls = certs::server_config(&ca, &names)?;
    Ok((tls, ca.cert_pem.clone()))
}

fn url_host(u: &str) -> Option<String> {
    let rest = u.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string()
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_host_forms() {
        assert_eq!(
            super::url_host("https://127.0.0.1:9443/mutate-pods").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            super::url_host("https://[::1]:9443/x").as_deref(),
            Some("::1")
        );
        assert_eq!(
            super::url_host("https://hook.example/x").as_deref(),
            Some("hook.example")
        );
        assert_eq!(super::url_host("http://x"), None);
    }
}
