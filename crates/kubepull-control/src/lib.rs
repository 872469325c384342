//! kubepull's control plane: a Kubernetes-compatible API server and its controllers.
//!
//! - [`server`]: HTTPS (HTTP/1.1 and HTTP/2), authentication (client certificates of the cluster
//!   CA, the admin token, node tokens, ServiceAccount tokens), authorization (admin, the node
//!   authorizer's rule, [`rbac`] for everyone else), discovery (legacy and aggregated), OpenAPI
//!   v2/v3 with `fieldValidation`, CRUD, patch (JSON, merge, strategic), watch, Table output, the
//!   `pods/log` proxy to the node (verified node TLS, client certificate), `binding`, `scale`
//!   and `token` subresources, `Warning` headers ([`warnings`]).
//! - [`objects`]: objects as JSON over a [`kubepull_datastore::Datastore`]: metadata, admission
//!   (namespaces must exist, ServiceAccount defaulting and `imagePullSecrets` copy, Pod Security
//!   ([`podsecurity`])), validation ([`admission`]), optimistic concurrency (409), finalizers and
//!   graceful pod deletion.
//! - [`webhooks`]: admission webhooks (Mutating/ValidatingWebhookConfiguration), called over
//!   HTTPS from the create, update and delete paths of [`objects`].
//! - [`crd`], [`crd_schema`]: CustomResourceDefinitions and the custom resources they define
//!   (structural schemas, pruning, defaulting, validation, `status`/`scale`, printer columns).
//! - [`auth`], [`authapi`]: ServiceAccount tokens, TokenRequest, TokenReview, the self and
//!   subject reviews.
//! - [`controllers`]: Deployment → ReplicaSet → Pods, scheduler, garbage collector, namespace
//!   deletion, node lifecycle, CSR cleaner; Jobs, CronJobs, Endpoints and EndpointSlices on an
//!   event-driven work queue with pure plans.
//! - [`services`]: Service defaults and validation, ClusterIP and NodePort allocation, the
//!   `kubernetes` Service. [`table_workloads`]: their Table columns and `includeObject`.
//! - [`redb_store`]: the embedded default datastore; [`etcd_store`]: etcd, for several servers.
//! - [`watchcache`], [`nslifecycle`], [`watchfanout`]: watch-fed copies the request paths read
//!   (RBAC roles and bindings, NamespaceLifecycle's namespaces) and API watches sharing one
//!   storage watch per resource. [`reflector`]: the one list-then-watch loop these caches and
//!   the controllers' informers are fed by.
//! - [`pki`]: certificates (node serving certificates from CSRs), node tokens with revocation,
//!   `admin.kubeconfig`.

#![forbid(unsafe_code)]
// Handlers mirror the API verbs' parameters; match arms read as the protobuf field tables.
#![allow(clippy::too_many_arguments, clippy::collapsible_match)]

pub mod admission;
pub mod auth;
pub mod authapi;
pub mod claims;
pub mod controllers;
pub mod crd;
pub mod crd_finalizer;
pub mod crd_schema;
pub(crate) mod defaults;
pub mod disruption;
pub mod errors;
pub mod events;
pub mod fieldpath;
pub mod fieldselect;
pub mod impersonation;
pub mod ingresses;
pub use kubepull_datastore::etcd_store;
pub mod limitranges;
pub mod managedfields;
pub mod metrics;
pub mod networkpolicies;
pub mod nslifecycle;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod podcidr;
pub mod podsecurity;
pub(crate) mod podupdate;
pub mod priority;
pub mod protobuf;
pub(crate) mod quantities;
pub mod quota;
pub mod rbac;
pub mod reflector;
pub use kubepull_datastore::redb_store;
pub mod resources;
pub mod rootca;
pub mod server;
pub mod services;
pub mod table;
pub mod table_workloads;
#[cfg(test)]
pub(crate) mod teststore;
pub mod typed;
pub mod validation;
pub mod warnings;
pub mod watchcache;
pub mod watchfanout;
pub mod webhooks;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kubepull_datastore::Datastore;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// State directory.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// Port (0: any free port).
    pub secure_port: u16,
    /// `""`/`redb` (embedded, default), `memory` (tests), or `etcd://h:2379,…`.
    pub datastore: String,
    /// Run the controllers in this process.
    pub controllers: bool,
    /// The Pod Security level (enforce, audit, warn) of namespaces without
    /// `pod-security.kubernetes.io/*` labels.
    pub pod_security: podsecurity::Level,
    /// Whether pods and pod templates may have privileged containers (kube-apiserver's
    /// `--allow-privileged`).
    pub allow_privileged: bool,
    /// The range node podCIDRs come from (`--cluster-cidr`); `None`: the one remembered in the
    /// data directory, else a free /16 for this machine's routes ([`podcidr::cluster_cidr`]).
    pub cluster_cidr: Option<String>,
    /// `--service-cluster-ip-range`: where Service ClusterIPs come from (`None`:
    /// [`services::DEFAULT_SERVICE_CIDR`]).
    pub service_cluster_ip_range: Option<String>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates or tokens.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The ServiceAccount token key.
    #[error(transparent)]
    Tokens(#[from] auth::TokenError),
    /// The datastore.
    #[error("datastore: {0}")]
    Datastore(String),
    /// Listening.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS set-up.
    #[error("tls: {0}")]
    Tls(String),
    /// The cluster CIDR.
    #[error(transparent)]
    Cidr(#[from] podcidr::CidrError),
    /// The Service IP range.
    #[error(transparent)]
    ServiceRange(#[from] services::RangeError),
}

/// A running server.
pub struct ServerHandle {
    url: String,
    data_dir: PathBuf,
    state: Arc<server::State>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The datastore, to see when the server's tasks have let go of it.
    store: std::sync::Weak<dyn Datastore>,
    /// References to the datastore held outside the server (by whoever opened it).
    outside_holders: usize,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }
    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.state.pki.ca_pem.clone()
    }
    /// The admin token.
    pub fn admin_token(&self) -> String {
        self.state.pki.admin_token.clone()
    }
    /// `DATA_DIR/admin.kubeconfig`.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }
    /// The token of node `name`.
    pub fn node_token(&self, name: &str) -> String {
        self.state.pki.node_token(name)
    }
    /// The object layer (for in-process use).
    pub fn objects(&self) -> objects::Objects {
        self.state.objects.clone()
    }
    /// The OpenAPI documents (custom kinds are registered here).
    pub fn openapi(&self) -> openapi::Registry {
        self.state.openapi.clone()
    }
    /// Stops serving: closes open connections and the controllers, and releases the datastore.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            // the accept loop closes its connections itself; give it a moment
            let h = t.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), t)
                .await
                .is_err()
            {
                h.abort();
            }
        }
        // Tasks the connections and controllers spawned (HTTP/2 streams, informers, blocking
        // reads) end shortly after the stop; the datastore (and redb's file lock) is released
        // only when the last of them lets go. Wait for that, so the data dir can be opened
        // again as soon as this returns.
        drop(self.state);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.store.strong_count() > self.outside_holders {
            if std::time::Instant::now() > deadline {
                tracing::warn!("the datastore is still in use 10 s after shutdown");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// The join token of node `name` of the server whose state is in `data_dir`.
pub fn node_token(data_dir: &Path, name: &str) -> Result<String, pki::PkiError> {
    pki::node_token(data_dir, name)
}

/// Opens the datastore named by `spec` (the older `--datastore` spelling; see
/// [`kubepull_datastore::StoreConfig::parse`]).
pub async fn open_datastore(spec: &str, data_dir: &Path) -> Result<Arc<dyn Datastore>, StartError> {
    let cfg = kubepull_datastore::StoreConfig::parse(spec)
        .map_err(|e| StartError::Datastore(e.to_string()))?;
    open_store(&cfg, data_dir).await
}

/// Opens the datastore `cfg` names (the storage flags of `kubepull server`).
pub async fn open_store(
    cfg: &kubepull_datastore::StoreConfig,
    data_dir: &Path,
) -> Result<Arc<dyn Datastore>, StartError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StartError::Datastore(format!("{}: {e}", data_dir.display())))?;
    kubepull_datastore::open(cfg, data_dir)
        .await
        .map_err(|e| StartError::Datastore(e.to_string()))
}

/// Starts the API server (and the controllers when configured).
pub async fn start(cfg: ServerConfig) -> Result<ServerHandle, StartError> {
    let store = open_datastore(&cfg.datastore, &cfg.data_dir).await?;
    start_with_store(cfg, store).await
}

/// Starts the API server on an opened datastore (`cfg.datastore` is not looked at).
pub async fn start_with_store(
    cfg: ServerConfig,
    store: Arc<dyn Datastore>,
) -> Result<ServerHandle, StartError> {
    // field management reads the built-in OpenAPI definitions on the first create or update:
    // parsed here on a blocking thread, while the server starts, rather than inside the
    // first write on a runtime worker. A write before the parse ends waits for it (the
    // `OnceLock` initialises once, whichever caller is first).
    tokio::task::spawn_blocking(|| {
        openapi::builtin_definitions();
    });
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| StartError::Datastore(format!("{}: {e}", cfg.data_dir.display())))?;
    let outside_holders = Arc::strong_count(&store) - 1;
    let store_ref = Arc::downgrade(&store);

    let cluster_cidr = if cfg.controllers {
        Some(podcidr::cluster_cidr(
            &cfg.data_dir,
            cfg.cluster_cidr.as_deref(),
            &podcidr::machine_routes(),
        )?)
    } else {
        None
    };
    let service_range = match cfg.service_cluster_ip_range.as_deref() {
        Some(r) => services::ServiceRange::parse(r)?,
        None => services::ServiceRange::default(),
    };
    let pki = pki::Pki::load_or_create_for(
        &cfg.data_dir,
        cfg.bind_address,
        Some(IpAddr::V4(service_range.api_server_ip())),
    )?;
    let tokens = auth::TokenIssuer::load_or_create(&cfg.data_dir.join("pki"))?;
    let objects = objects::Objects::new(store)
        .with_pod_security(cfg.pod_security)
        .with_allow_privileged(cfg.allow_privileged)
        .with_service_range(service_range);
    objects
        .bootstrap()
        .await
        .map_err(|e| StartError::Datastore(e.to_string()))?;
    // the stored CustomResourceDefinitions are served from the start
    crd::sync(&objects)
        .await
        .map_err(|e| StartError::Datastore(e.to_string()))?;
    let addr = SocketAddr::new(cfg.bind_address, cfg.secure_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let host = if cfg.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match cfg.bind_address {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        }
    };
    let url = format!("https://{host}:{}", local.port());
    objects
        .ensure_kubernetes_service(&host, local.port())
        .await
        .map_err(|e| StartError::Datastore(format!("the kubernetes Service: {e}")))?;
    pki.write_kubeconfig(&cfg.data_dir.join("admin.kubeconfig"), &url)?;

    use rustls_pki_types::pem::PemObject;
    let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| StartError::Tls(e.to_string()))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes())
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    // client certificates are optional; those given must chain to the cluster CA
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| StartError::Tls(e.to_string()))?)
            .map_err(|e| StartError::Tls(e.to_string()))?;
    }
    let client_verifier =
        tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let identity = reqwest::Identity::from_pem(
        format!(
            "{}{}",
            pki.kubelet_client_cert_pem, pki.kubelet_client_key_pem
        )
        .as_bytes(),
    )
    .map_err(|e| StartError::Tls(format!("the kubelet client certificate: {e}")))?;
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes())
        .map_err(|e| StartError::Tls(format!("the CA certificate: {e}")))?;
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .identity(identity)
        .tls_info(true)
        .build()
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let openapi = crate::openapi::Registry::new();
    {
        // the OpenAPI documents follow the established CustomResourceDefinitions
        let openapi = openapi.clone();
        objects.crds().on_change(move |served| {
            let kinds: Vec<(String, String, crate::openapi::CustomKind)> = served
                .iter()
                .map(|sv| {
                    let mut k = crate::openapi::CustomKind::new(
                        sv.r.kind,
                        sv.r.plural,
                        sv.r.namespaced,
                        sv.schema.clone(),
                    );
                    k.status = sv.status;
                    k.scale = sv.scale.is_some();
                    if let crate::fieldselect::FieldSet::Custom(paths) = &sv.fields {
                        k.selectable_fields = paths.to_vec();
                    }
                    (sv.r.group.to_string(), sv.r.version.to_string(), k)
                })
                .collect();
            if let Err(e) = openapi.set_custom_kinds(&kinds) {
                tracing::warn!("OpenAPI for custom resources: {e}");
            }
        });
    }
    let state = Arc::new(server::State {
        objects: objects.clone(),
        pki,
        http,
        tokens,
        openapi,
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let st = state.clone();
    let mut rx = stop_rx.clone();
    let accept = tokio::spawn(async move {
        // open connections end with the server: they hold the datastore (and redb's file lock)
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let conn = tokio::select! {
                _ = rx.changed() => {
                    conns.abort_all();
                    while conns.join_next().await.is_some() {}
                    return;
                }
                c = listener.accept() => c,
            };
            while conns.try_join_next().is_some() {}
            let Ok((tcp, _)) = conn else { continue };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let st = st.clone();
            conns.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let cert_user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| server::cert_user(c))
                    .map(Arc::new);
                let svc = hyper::service::service_fn(move |req| {
                    server::handle(st.clone(), req, cert_user.clone())
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    let mut tasks = vec![accept];
    {
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(crd::watch_crds(objects.clone(), async move {
            let _ = rx.changed().await;
        })));
    }
    if cfg.controllers {
        let settings = controllers::Settings {
            cluster_cidr,
            root_ca: Some(state.pki.ca_pem.clone()),
        };
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(controllers::run_with(
            objects,
            settings,
            async move {
                let _ = rx.changed().await;
            },
        )));
    }
    Ok(ServerHandle {
        url,
        data_dir: cfg.data_dir,
        state,
        stop,
        tasks,
        store: store_ref,
        outside_holders,
    })
}
