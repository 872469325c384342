//! The etcd datastore, over etcd's v3 gRPC API (the `etcd-client` crate).
//!
//! - One client per store: one HTTP/2 connection per etcd member, balanced across the members
//!   given in `--etcd-servers`. A member that goes away is skipped by the balancer.
//! - Watches are multiplexed on **one** gRPC watch stream: every [`Datastore::watch`] is one watch
//!   ID on it (see [`mux`]). When the stream breaks (the member it ran on died), it is opened
//!   again on a live member and every watch resumes after the last revision it delivered; a watch
//!   whose next revision was compacted meanwhile ends with [`Error::Compacted`].
//! - Writes are compare-and-swap transactions on `mod_revision` (create: `create_revision == 0`),
//!   so a stale resourceVersion is a conflict without a lock. The object's resourceVersion is the
//!   etcd revision, so several API servers can share one etcd cluster.
//! - Client TLS and authentication with kube-apiserver's flag names (`--etcd-servers`,
//!   `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`, `--etcd-prefix`), plus etcd's
//!   user/password authentication. The password is never logged nor put in an error.
//! - Compaction as kube-apiserver does it ([`compact`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};

use crate::{Datastore, Error, KeyValue, ListResult, Result, Revision, Watch};

pub mod compact;
pub mod mux;

/// kube-apiserver's default `--etcd-prefix` (`DefaultEtcdPathPrefix`).
pub const DEFAULT_PREFIX: &str = "/registry";
/// The prefix of the keys the API server stores (its key layout is kube-apiserver's).
pub const API_PREFIX: &str = "/registry";
/// Per-request timeout (etcd answers in milliseconds; a stuck member should not hang the API).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to one member may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest gRPC message accepted from etcd (kube-apiserver's client sets no practical limit:
/// `MaxCallRecvMsgSize: math.MaxInt32`).
pub const MAX_MESSAGE: usize = i32::MAX as usize;
/// The environment variable the etcd password may come from (instead of `--etcd-password-file`).
pub const PASSWORD_ENV: &str = "KUBEPULL_ETCD_PASSWORD";

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to reach etcd: kube-apiserver's `--etcd-*` flags.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// `--etcd-servers`: `https://h:2379`, `http://h:2379` or `h:2379` (https when TLS files are
    /// given, else http).
    pub servers: Vec<String>,
    /// `--etcd-cafile`: the CA that signed the members' serving certificates.
    pub ca_file: Option<PathBuf>,
    /// `--etcd-certfile`: the client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// `--etcd-keyfile`: its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `--etcd-prefix`: where the API server's keys live (default `/registry`).
    pub prefix: String,
    /// `--etcd-username`: etcd user for password authentication.
    pub username: Option<String>,
    /// The password (from `--etcd-password-file` or [`PASSWORD_ENV`]).
    pub password: Option<Password>,
    /// `--etcd-compaction-interval` (kube-apiserver's default 5 minutes; zero disables).
    pub compaction_interval: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            servers: vec![],
            ca_file: None,
            cert_file: None,
            key_file: None,
            prefix: DEFAULT_PREFIX.to_string(),
            username: None,
            password: None,
            compaction_interval: compact::DEFAULT_INTERVAL,
        }
    }
}

impl EtcdOptions {
    /// Options for a comma-separated `--etcd-servers` list (or the older `etcd://h1,h2` form).
    pub fn with_servers(list: &str) -> Self {
        let list = list.strip_prefix("etcd://").unwrap_or(list);
        EtcdOptions {
            servers: list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_end_matches('/').to_string())
                .collect(),
            ..Default::default()
        }
    }

    fn tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some()
    }

    /// The endpoint URLs, each with a scheme.
    fn endpoints(&self) -> Result<Vec<String>> {
        if self.servers.is_empty() {
            return Err(Error::Backend {
                message: "--etcd-servers is empty: give at least one https://host:2379".into(),
            });
        }
        let tls = self.tls();
        self.servers
            .iter()
            .map(|s| {
                if let Some(rest) = s.strip_prefix("http://") {
                    if tls {
                        return Err(Error::Backend {
                            message: format!(
                                "--etcd-servers {s} is plain http but --etcd-cafile/--etcd-certfile are given: use https://{rest}"
                            ),
                        });
                    }
                    Ok(s.clone())
                } else if s.starts_with("https://") {
                    Ok(s.clone())
                } else if s.contains("://") {
                    Err(Error::Backend {
                        message: format!(
                            "--etcd-servers {s}: the scheme must be https:// or http://"
                        ),
                    })
                } else if tls {
                    Ok(format!("https://{s}"))
                } else {
                    Ok(format!("http://{s}"))
                }
            })
            .collect()
    }
}

fn read_file(flag: &str, p: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::Backend {
        message: format!("{flag} {}: {e}", p.display()),
    })
}

/// What the error classifier needs to know about the configuration (never the password).
#[derive(Clone, Debug)]
pub(crate) struct Context {
    servers: String,
    ca_file: Option<PathBuf>,
    username: Option<String>,
    /// TLS is used (a closed connection may be a refused client certificate under TLS 1.3).
    tls: bool,
}

impl Context {
    /// Turns an etcd client error into a store error whose message names the flag to fix.
    fn error(&self, e: etcd_client::Error) -> Error {
        let text = error_chain(&e);
        let lower = text.to_ascii_lowercase();
        let code = match &e {
            etcd_client::Error::GRpcStatus(s) => Some(s.code()),
            _ => None,
        };
        if lower.contains("required revision has been compacted") {
            return Error::Compacted {
                requested: 0,
                oldest: 0,
            };
        }
        if lower.contains("invalid user id or password") || lower.contains("authentication failed")
        {
            return Error::Unavailable {
                message: format!(
                    "etcd at {} rejected user {:?}: check --etcd-username and the password (--etcd-password-file or {PASSWORD_ENV})",
                    self.servers,
                    self.username.as_deref().unwrap_or("")
                ),
            };
        }
        if lower.contains("user name is empty")
            || lower.contains("user name not found")
            || (lower.contains("invalid auth token") && self.username.is_none())
        {
            return Error::Unavailable {
                message: format!(
                    "etcd at {} requires authentication: set --etcd-username and a password (--etcd-password-file or {PASSWORD_ENV})",
                    self.servers
                ),
            };
        }
        if lower.contains("permission denied") {
            return Error::Backend {
                message: format!(
                    "etcd at {}: user {:?} may not access the keys: grant its role read/write on --etcd-prefix and compact_rev_key ({text})",
                    self.servers,
                    self.username.as_deref().unwrap_or("")
                ),
            };
        }
        if lower.contains("unknownissuer")
            || lower.contains("unknown issuer")
            || lower.contains("invalid peer certificate")
        {
            let ca = match &self.ca_file {
                Some(p) => format!("--etcd-cafile {}", p.display()),
                None => "--etcd-cafile (none given)".into(),
            };
            return Error::Unavailable {
                message: format!(
                    "etcd at {}: its TLS certificate is not trusted by {ca}: give the CA that signed the etcd members' certificates ({text})",
                    self.servers
                ),
            };
        }
        if [
            "certificate required",
            "certificaterequired",
            "bad certificate",
            "badcertificate",
            "unknown ca",
            "unknownca",
            "fatal alert",
            "handshake",
        ]
        .iter()
        .any(|m| lower.contains(m))
            // TLS 1.3: the server checks the client certificate after the client finished its
            // side of the handshake, so a refusal may read as the connection closing
            || (self.tls
                && [
                    "connection closed",
                    "operation was canceled",
                    "connection reset",
                    "broken pipe",
                ]
                    .iter()
                    .any(|m| lower.contains(m)))
        {
            return Error::Unavailable {
                message: format!(
                    "etcd at {}: TLS handshake failed; check --etcd-certfile/--etcd-keyfile (a client certificate signed by etcd's --trusted-ca-file) and --etcd-cafile ({text})",
                    self.servers
                ),
            };
        }
        if matches!(
            code,
            Some(tonic::Code::Unavailable) | Some(tonic::Code::DeadlineExceeded)
        ) || matches!(e, etcd_client::Error::TransportError(_))
            || lower.contains("connection refused")
            || lower.contains("transport error")
        {
            return Error::Unavailable {
                message: format!(
                    "no etcd member answered at {}: check --etcd-servers and that etcd is running ({text})",
                    self.servers
                ),
            };
        }
        Error::Backend {
            message: format!("etcd at {}: {text}", self.servers),
        }
    }
}

/// The error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The end of the key range holding every key with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Maps the API server's keys (`/registry/...`) to etcd keys under `--etcd-prefix` and back.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        let p = prefix.trim_end_matches('/');
        Keys {
            prefix: if p.is_empty() {
                String::new()
            } else {
                p.to_string()
            },
        }
    }

    fn identity(&self) -> bool {
        self.prefix == API_PREFIX
    }

    /// The etcd key of `key`: `/registry/x` is stored as `<prefix>/x`; other keys as they are.
    pub(crate) fn to_etcd(&self, key: &str) -> Vec<u8> {
        match key.strip_prefix(API_PREFIX) {
            Some(rest) if !self.identity() => format!("{}{rest}", self.prefix).into_bytes(),
            _ => key.as_bytes().to_vec(),
        }
    }

    /// The API server's key for an etcd key.
    pub(crate) fn api_key(&self, key: &[u8]) -> String {
        let k = String::from_utf8_lossy(key);
        if !self.identity() {
            if let Some(rest) = k.strip_prefix(self.prefix.as_str()) {
                return format!("{API_PREFIX}{rest}");
            }
        }
        k.into_owned()
    }

    pub(crate) fn kv(&self, kv: &etcd_client::KeyValue) -> KeyValue {
        KeyValue {
            key: self.api_key(kv.key()),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision().max(0) as u64,
            mod_revision: kv.mod_revision().max(0) as u64,
        }
    }
}

/// How often the members' client ports are probed.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// Takes members whose client port refuses connections out of the client's balancer, and puts
/// them back when they answer again (the balancer alone would keep sending requests to a dead
/// member). At least one member always stays in.
fn health(client: Client, endpoints: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut out = vec![false; endpoints.len()];
        loop {
            tokio::time::sleep(HEALTH_EVERY).await;
            for (i, ep) in endpoints.iter().enumerate() {
                let addr = ep.split("://").nth(1).unwrap_or(ep).to_string();
                let up = matches!(
                    tokio::time::timeout(
                        Duration::from_secs(1),
                        tokio::net::TcpStream::connect(addr.as_str())
                    )
                    .await,
                    Ok(Ok(_))
                );
                let others_in = out.iter().enumerate().any(|(j, o)| j != i && !o);
                if !up && !out[i] && others_in {
                    if client.remove_endpoint(ep).await.is_ok() {
                        tracing::warn!("etcd member {ep} does not answer; not using it");
                        out[i] = true;
                    }
                } else if up && out[i] && client.add_endpoint(ep).await.is_ok() {
                    tracing::info!("etcd member {ep} answers again");
                    out[i] = false;
                }
            }
        }
    })
}

/// The etcd-backed store.
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    ctx: Arc<Context>,
    mux: mux::WatchMux,
    /// The compactor and the member health check; stopped with the store.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("servers", &self.ctx.servers)
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn timed<T>(
    ctx: &Context,
    f: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| ctx.error(e)),
        Err(_) => Err(Error::Unavailable {
            message: format!(
                "no etcd member answered at {} within {}s: check --etcd-servers and that etcd has quorum",
                ctx.servers,
                REQUEST_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// True when the request never reached a member (its connection could not be made), so sending
/// it again, to another member, cannot apply it twice.
fn not_sent(e: &etcd_client::Error) -> bool {
    let t = error_chain(e).to_ascii_lowercase();
    t.contains("connect error")
        || t.contains("error trying to connect")
        || t.contains("connection refused")
}

/// How many times a request that reached no member is sent again (the balancer may pick a member
/// that just died before the health check takes it out).
const SEND_TRIES: usize = 6;

/// Runs `f` against the KV client with the request timeout, sending it again while it reaches no
/// member.
async fn call<T, F, Fut>(client: &Client, ctx: &Context, mut f: F) -> Result<T>
where
    F: FnMut(etcd_client::KvClient) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        match tokio::time::timeout(REQUEST_TIMEOUT, f(kv)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if tries < SEND_TRIES && not_sent(&e) => {
                tokio::time::sleep(Duration::from_millis(50 * tries as u64)).await;
            }
            Ok(Err(e)) => return Err(ctx.error(e)),
            Err(_) => {
                return Err(Error::Unavailable {
                    message: format!(
                        "no etcd member answered at {} within {}s: check --etcd-servers and that etcd has quorum",
                        ctx.servers,
                        REQUEST_TIMEOUT.as_secs()
                    ),
                })
            }
        }
    }
}

fn rev(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map(|h| h.revision().max(0) as u64).unwrap_or(0)
}

impl EtcdStore {
    /// Connects with the older `etcd://h1:2379,h2:2379` form (plain http, no authentication,
    /// default prefix and compaction).
    pub async fn connect(spec: &str) -> Result<EtcdStore> {
        Self::connect_with(&EtcdOptions::with_servers(spec)).await
    }

    /// Connects and checks that a member answers (and accepts the credentials).
    pub async fn connect_with(opts: &EtcdOptions) -> Result<EtcdStore> {
        let endpoints = opts.endpoints()?;
        let ctx = Arc::new(Context {
            servers: endpoints.join(","),
            ca_file: opts.ca_file.clone(),
            username: opts.username.clone(),
            tls: endpoints.iter().any(|e| e.starts_with("https://")),
        });
        let mut co = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            // a member cut off from the others must not serve watches that never see a write
            .with_require_leader(true);
        if opts.tls() || endpoints.iter().any(|e| e.starts_with("https://")) {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &opts.ca_file {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read_file(
                    "--etcd-cafile",
                    ca,
                )?));
            }
            match (&opts.cert_file, &opts.key_file) {
                (Some(c), Some(k)) => {
                    tls = tls.identity(etcd_client::Identity::from_pem(
                        read_file("--etcd-certfile", c)?,
                        read_file("--etcd-keyfile", k)?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(Error::Backend {
                        message:
                            "--etcd-certfile and --etcd-keyfile go together: give both or neither"
                                .into(),
                    })
                }
            }
            co = co.with_tls(tls);
        }
        match (&opts.username, &opts.password) {
            (Some(u), Some(p)) => {
                co = co.with_user(u.clone(), p.0.clone()).with_auto_token_refresh(true);
            }
            (Some(_), None) => {
                return Err(Error::Backend {
                    message: format!("--etcd-username needs a password: --etcd-password-file FILE or the {PASSWORD_ENV} environment variable"),
                })
            }
            (None, Some(_)) => {
                return Err(Error::Backend {
                    message: "an etcd password was given without --etcd-username".into(),
                })
            }
            (None, None) => {}
        }
        let client = timed(&ctx, Client::connect(endpoints.clone(), Some(co))).await?;
        let keys = Keys::new(&opts.prefix);
        let mux = mux::WatchMux::start(client.clone(), keys.clone(), ctx.clone());
        let mut store = EtcdStore {
            client,
            keys,
            ctx,
            mux,
            tasks: vec![],
        };
        if endpoints.len() > 1 {
            store
                .tasks
                .push(health(store.client.clone(), endpoints.clone()));
        }
        // one round trip: the endpoints, TLS and credentials work
        store.current_revision().await?;
        if !opts.compaction_interval.is_zero() {
            store.tasks.push(compact::start(
                store.client.clone(),
                store.ctx.clone(),
                opts.compaction_interval,
            ));
        }
        Ok(store)
    }

    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnMut(etcd_client::KvClient) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        call(&self.client, &self.ctx, f).await
    }

    /// Compacts the history up to `revision` (what the compactor does every interval); a watch or
    /// a list at an older revision then fails with [`Error::Compacted`].
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        self.call(|mut kv| async move { kv.compact(revision as i64, None).await })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Datastore for EtcdStore {
    fn retain_list_snapshot(&self, _revision: Revision) {
        // etcd keeps every revision until it is compacted
    }

    async fn current_revision(&self) -> Result<Revision> {
        let r = self
            .call(|mut kv| async move {
                kv.get(
                    compact::COMPACT_REV_KEY,
                    Some(GetOptions::new().with_count_only()),
                )
                .await
            })
            .await?;
        Ok(rev(r.header()))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let k = self.keys.to_etcd(key);
        let r = self
            .call(|mut kv| {
                let k = k.clone();
                async move { kv.get(k, None).await }
            })
            .await?;
        Ok(r.kvs().first().map(|k| self.keys.kv(k)))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult> {
        let eprefix = self.keys.to_etcd(prefix);
        let start = match start_after {
            Some(s) => {
                let mut k = self.keys.to_etcd(s);
                k.push(0);
                k
            }
            None => eprefix.clone(),
        };
        let mut o = GetOptions::new()
            .with_range(prefix_end(&eprefix))
            .with_limit(limit as i64);
        if let Some(r) = at_revision {
            o = o.with_revision(r as i64);
        }
        let r = self
            .call(|mut kv| {
                let (start, o) = (start.clone(), o.clone());
                async move { kv.get(start, Some(o)).await }
            })
            .await;
        let r = match r {
            Err(Error::Compacted { .. }) => {
                return Err(Error::Compacted {
                    requested: at_revision.unwrap_or(0),
                    oldest: 0,
                })
            }
            other => other?,
        };
        Ok(ListResult {
            items: r.kvs().iter().map(|k| self.keys.kv(k)).collect(),
            revision: at_revision.unwrap_or_else(|| rev(r.header())),
            more: r.more(),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let k = self.keys.to_etcd(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value, None)]);
        let r = self.txn(txn).await?;
        if !r.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        Ok(rev(r.header()))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let k = self.keys.to_etcd(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                k.clone(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::put(k.clone(), value, None)])
            .or_else([TxnOp::get(k, None)]);
        let r = self.txn(txn).await?;
        if r.succeeded() {
            return Ok(rev(r.header()));
        }
        match self.current_of(&r) {
            None => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Some(c) => Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: c.mod_revision,
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let k = self.keys.to_etcd(key);
        let cmp = match expected {
            Some(e) => Compare::mod_revision(k.clone(), CompareOp::Equal, e as i64),
            // the key must exist
            None => Compare::create_revision(k.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::delete(
                k.clone(),
                Some(etcd_client::DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k, None)]);
        let r = self.txn(txn).await?;
        if r.succeeded() {
            let prev = r.op_responses().into_iter().find_map(|o| match o {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|k| self.keys.kv(k)),
                _ => None,
            });
            return match prev {
                Some(p) => Ok((rev(r.header()), p)),
                None => Err(Error::NotFound {
                    key: key.to_string(),
                }),
            };
        }
        match (self.current_of(&r), expected) {
            (None, _) => Err(Error::NotFound {
                key: key.to_string(),
            }),
            (Some(c), Some(e)) => Err(Error::Conflict {
                key: key.to_string(),
                expected: e,
                actual: c.mod_revision,
            }),
            (Some(_), None) => Err(Error::Backend {
                message: format!("delete of {key:?} failed"),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        // A watch from a compacted revision is refused here (410 before the stream starts): a
        // read at `after + 1` fails with "compacted" exactly when the watch would.
        if after > 0 {
            let probe = self
                .call(|mut kv| async move {
                    kv.get(
                        compact::COMPACT_REV_KEY,
                        Some(
                            GetOptions::new()
                                .with_count_only()
                                .with_revision(after as i64 + 1),
                        ),
                    )
                    .await
                })
                .await;
            match probe {
                Err(Error::Compacted { .. }) => {
                    return Err(Error::Compacted {
                        requested: after,
                        oldest: 0,
                    })
                }
                // etcd's "mvcc: required revision is a future revision": `after` is the current
                // revision, nothing to replay; any other failure (permission denied, …) is the
                // caller's, here rather than later from the stream
                Err(Error::Backend { message }) if message.contains("future revision") => {}
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        self.mux.watch(self.keys.to_etcd(prefix), after).await
    }
}

impl EtcdStore {
    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.call(|mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    fn current_of(&self, r: &etcd_client::TxnResponse) -> Option<KeyValue> {
        r.op_responses().into_iter().find_map(|o| match o {
            TxnOpResponse::Get(g) => g.kvs().first().map(|k| self.keys.kv(k)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(&[0x61, 0xff]), vec![0x62]);
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn keys_under_another_prefix() {
        let k = Keys::new("/kp-a/");
        assert_eq!(k.to_etcd("/registry/pods/x"), b"/kp-a/pods/x".to_vec());
        assert_eq!(k.api_key(b"/kp-a/pods/x"), "/registry/pods/x");
        let d = Keys::new(DEFAULT_PREFIX);
        assert_eq!(d.to_etcd("/registry/pods/x"), b"/registry/pods/x".to_vec());
        assert_eq!(d.api_key(b"/registry/pods/x"), "/registry/pods/x");
    }

    #[test]
    fn endpoints_and_schemes() {
        let o = EtcdOptions::with_servers("etcd://a:1, b:2");
        assert_eq!(o.endpoints().unwrap(), ["http://a:1", "http://b:2"]);
        let o = EtcdOptions {
            ca_file: Some("/ca.pem".into()),
            ..EtcdOptions::with_servers("a:1,https://b:2")
        };
        assert_eq!(o.endpoints().unwrap(), ["https://a:1", "https://b:2"]);
        let o = EtcdOptions {
            ca_file: Some("/ca.pem".into()),
            ..EtcdOptions::with_servers("http://a:1")
        };
        let e = o.endpoints().unwrap_err().to_string();
        assert!(
            e.contains("https://a:1") && e.contains("--etcd-cafile"),
            "{e}"
        );
        let e = EtcdOptions::with_servers("").endpoints().unwrap_err();
        assert!(e.to_string().contains("--etcd-servers"), "{e}");
    }

    #[test]
    fn password_never_prints() {
        let o = EtcdOptions {
            username: Some("kp".into()),
            password: Some(Password::new("hunter2-secret")),
            ..EtcdOptions::with_servers("a:1")
        };
        let d = format!("{o:?}");
        assert!(
            !d.contains("hunter2-secret") && d.contains("redacted"),
            "{d}"
        );
    }
}
