//! The controllers, in process, over the object layer: Deployment → ReplicaSet → Pods
//! (kubernetes `pkg/controller/deployment`, `pkg/controller/replicaset`), DaemonSet → a pod per
//! node (`pkg/controller/daemon`), StatefulSets → Pods and PersistentVolumeClaims
//! (`pkg/controller/statefulset`), ReplicationControllers (`pkg/controller/replication`), the
//! PodDisruptionBudgets' status (`pkg/controller/disruption`), a
//! scheduler that binds pods to the nodes their affinity, selector and tolerations allow,
//! ownerReference garbage collection (`pkg/controller/garbagecollector`:
//! background, foreground, orphan), namespace deletion, and node lifecycle (a node whose lease
//! is not renewed turns NotReady).
//!
//! Each controller is its own module with a pure `plan` over typed objects ([`kinds`]: the
//! k8s-openapi types, decoded once when an informer receives them) and runs on the work queue
//! ([`queue`]) fed by shared informers ([`informer`]): a change enqueues the keys it affects
//! (a pod its ReplicaSet, a ReplicaSet its Deployment, a new unscheduled pod itself) and a sync
//! reads the caches through their indexes, so the work follows what changed, not what is
//! stored. A failed write is handled by its kind ([`queue::retry_for`]).

pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod expectations;
pub mod garbagecollector;
pub mod history;
pub mod informer;
pub mod job;
pub mod kinds;
pub mod namespace;
pub mod nodeaffinity;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod queue;
pub mod refmanager;
pub mod replicaset;
pub mod replication;
pub mod scheduler;
pub mod statefulset;

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::{json, Value};

use crate::objects::{ListOptions, Objects, User};
use crate::resources::{self, Resource};

/// How long a node may go without renewing its lease before it is NotReady (kube-controller-
/// manager `--node-monitor-grace-period`, 40 s).
pub const NODE_GRACE: Duration = Duration::from_secs(40);

pub use crate::objects::now;

fn res(plural: &str) -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| {
            r.plural == plural && matches!(r.group, "" | "apps" | "batch" | "discovery.k8s.io")
        })
        .expect("served resource")
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// apimachinery `rand.SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| ALPHANUMS[(c as usize) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a Deployment's template: FNV-32a over the canonical JSON of the
/// template (upstream hashes a spew dump of the Go struct; the value differs from a real
/// cluster's but is stable and has the same form), then `SafeEncodeString` of the decimal.
pub fn pod_template_hash(template: &Value, collisions: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= *x as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(canonical_without_nulls(template).as_bytes());
    if collisions > 0 {
        feed(collisions.to_string().as_bytes());
    }
    safe_encode(&h.to_string())
}

/// Compact JSON with every object's keys sorted (what `json.Marshal` writes for a Go map).
pub(crate) fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap_or_default(),
                        canonical(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn canonical_without_nulls(v: &Value) -> String {
    let mut v = v.clone();
    deployment::strip_nulls(&mut v);
    canonical(&v)
}

/// Reads `namespace/name` of `K` from the API (what a sync writes back whole, where the cache
/// keeps only a part). An object that does not decode as `K` is an error naming it.
pub async fn get_typed<K: kinds::Kind>(
    objects: &Objects,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, crate::errors::ApiError> {
    let Some(v) = objects
        .get_opt(kinds::resource_of::<K>(), namespace, name)
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_value(v).map(Some).map_err(|e| {
        crate::errors::ApiError::internal(format!(
            "{} {namespace}/{name} does not decode: {e}",
            K::KIND
        ))
    })
}

/// Records an event from a controller about `about`. Events are best effort (client-go's
/// recorder drops what it cannot write): a failed write is logged, not retried.
pub async fn record(
    objects: &Objects,
    component: &str,
    about: &ObjectReference,
    etype: &str,
    reason: &str,
    message: &str,
) {
    let evr = res("events");
    let ns = about.namespace.as_deref().unwrap_or("");
    let ns = if ns.is_empty() { "default" } else { ns };
    let name = about.name.as_deref().unwrap_or("");
    let ts = now();
    let ev = json!({
        "metadata": {"name": format!("{name}.{:x}", jiff::Timestamp::now().as_nanosecond())},
        "involvedObject": {
            "kind": about.kind.as_deref().unwrap_or(""),
            "namespace": about.namespace.as_deref().unwrap_or(""), "name": name,
            "uid": about.uid.as_deref().unwrap_or(""),
            "apiVersion": about.api_version.as_deref().unwrap_or(""),
            "resourceVersion": about.resource_version.as_deref().unwrap_or(""),
        },
        "reason": reason, "message": message, "type": etype, "count": 1,
        "firstTimestamp": ts, "lastTimestamp": ts,
        "source": {"component": component},
        "reportingComponent": component, "reportingInstance": "",
    });
    if let Err(e) = objects.create(evr, ns, ev, &User::Admin, false).await {
        tracing::debug!(component, reason, error = %e, "event not recorded");
    }
}

/// What the controllers are configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The range node podCIDRs are allocated from (none: nodes get no podCIDR).
    pub cluster_cidr: Option<crate::podcidr::Ipv4Net>,
    /// The cluster CA the root CA publisher puts in every namespace's `kube-root-ca.crt`
    /// (none: no publisher).
    pub root_ca: Option<String>,
}

/// Runs the controllers until `shutdown` resolves.
pub async fn run(objects: Objects, shutdown: impl std::future::Future<Output = ()>) {
    run_with(objects, Settings::default(), shutdown).await
}

/// How often the CSR cleaner looks (`cleaner.go` `pollingInterval`).
pub const CSR_CLEANER_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs the controllers with `settings` until `shutdown` resolves: each on the work queue over
/// one set of shared informers (one list and one watch per resource, whatever the number of
/// controllers reading it).
pub async fn run_with(
    objects: Objects,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let informers = informer::Informers::new(objects.store().clone());
    let never = std::future::pending::<()>;
    let o = &objects;
    let inf = &informers;
    let ipam = async {
        match settings.cluster_cidr {
            Some(c) => {
                queue::run(
                    o.clone(),
                    inf.clone(),
                    nodeipam::NodeIpam::new(inf, c),
                    never(),
                )
                .await
            }
            None => never().await,
        }
    };
    let root_ca = async {
        match settings.root_ca.clone() {
            Some(ca) => {
                queue::run(
                    o.clone(),
                    inf.clone(),
                    crate::rootca::RootCaPublisher::new(ca),
                    never(),
                )
                .await
            }
            None => never().await,
        }
    };
    let csr = async {
        loop {
            csr_cleaner(o).await;
            tokio::time::sleep(CSR_CLEANER_INTERVAL).await;
        }
    };
    let all = async {
        tokio::join!(
            queue::run(
                o.clone(),
                inf.clone(),
                deployment::DeploymentController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                replicaset::ReplicaSetController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                replication::ReplicationManager::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                daemonset::DaemonSetController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                scheduler::Scheduler::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                garbagecollector::GarbageCollector::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                namespace::NamespaceController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                nodelifecycle::NodeLifecycle::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                job::JobController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                cronjob::CronJobController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                endpoints::EndpointsController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                statefulset::StatefulSetController::new(inf),
                never()
            ),
            queue::run(
                o.clone(),
                inf.clone(),
                disruption::DisruptionController::new(inf),
                never()
            ),
            ipam,
            root_ca,
            csr,
        )
    };
    tokio::select! {
        _ = shutdown => {}
        _ = all => {}
    }
    informers.stop().await;
}

/// The CSR cleaner (pkg/controller/certificates/cleaner/cleaner.go `worker`, `handle`): every
/// request that [`csr_expired`] says is done with is deleted.
async fn csr_cleaner(objects: &Objects) {
    let Some(r) = resources::find("certificates.k8s.io", "v1", "certificatesigningrequests") else {
        return;
    };
    let (items, _, _) = objects
        .list(r, None, &ListOptions::default())
        .await
        .unwrap_or_default();
    let now = jiff::Timestamp::now();
    for csr in items {
        // an object that does not decode as a CSR is left alone
        let Ok(csr) = serde_json::from_value::<CertificateSigningRequest>(csr) else {
            continue;
        };
        if csr_expired(&csr, now) {
            let name = csr.metadata.name.as_deref().unwrap_or("");
            let _ = objects
                .delete(r, "", name, &crate::objects::DeleteOptions::default())
                .await;
        }
    }
}

/// `approvedExpiration`, `deniedExpiration` (cleaner.go; failed requests share it).
const CSR_DECIDED_EXPIRATION: i64 = 3600;
/// `pendingExpiration` (cleaner.go).
const CSR_PENDING_EXPIRATION: i64 = 24 * 3600;

/// Whether the cleaner deletes `csr` at `now` (cleaner.go `handle`): approved and issued more
/// than an hour ago (`isIssuedPastDeadline`, by the Approved condition's `lastUpdateTime`),
/// denied or failed more than an hour ago (`isDeniedPastDeadline`, `isFailedPastDeadline`),
/// without any condition a day after its creation (`isPendingPastDeadline`), or approved and
/// issued a certificate that has expired (`isIssuedExpired`). An approved request without a
/// certificate stays.
fn csr_expired(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> bool {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let status = csr.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    // `isOlderThan`: a time that is set, more than `limit` seconds before now
    let older_than =
        |t: Option<&Time>, limit: i64| t.is_some_and(|t| now.as_second() - t.0.as_second() > limit);
    // `isIssued`: a certificate that is not empty (`len(csr.Status.Certificate) > 0`)
    let issued = status
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    let approved = conditions.iter().any(|c| c.type_ == "Approved");
    let past = |kind: &str, limit: i64| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && older_than(c.last_update_time.as_ref(), limit))
    };
    (issued && past("Approved", CSR_DECIDED_EXPIRATION))
        || past("Denied", CSR_DECIDED_EXPIRATION)
        || past("Failed", CSR_DECIDED_EXPIRATION)
        || (conditions.is_empty()
            && older_than(
                csr.metadata.creation_timestamp.as_ref(),
                CSR_PENDING_EXPIRATION,
            ))
        || (approved && issued && certificate_expired(csr, now))
}

/// `isExpired` (cleaner.go): the first certificate of the PEM block is past its `NotAfter`; a
/// certificate that does not parse is not expired.
fn certificate_expired(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> bool {
    let Some(pem) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) else {
        return false;
    };
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(&pem.0) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&block.contents) else {
        return false;
    };
    now.as_second() > cert.validity().not_after.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PEM certificate valid until `not_after` (year).
    fn pem_until(year: i32) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["n".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        params.self_signed(&key).unwrap().pem()
    }

    /// A CSR created `age` seconds ago with `status`.
    fn csr_aged(age: i64, status: Value) -> CertificateSigningRequest {
        let at = |secs: i64| {
            (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
        };
        serde_json::from_value(
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c", "creationTimestamp": at(age)},
            "spec": {"signerName": "kubernetes.io/kubelet-serving", "request": ""},
            "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn csr_expiry_follows_the_cleaner() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let now = jiff::Timestamp::now();
        let at = |secs: i64| (now - jiff::SignedDuration::from_secs(secs)).to_string();
        let cond = |kind: &str, ago: i64| json!({"type": kind, "status": "True", "lastUpdateTime": at(ago)});
        let valid = b64(&pem_until(4000));
        let expired = b64(&pem_until(2001));
        let h = 3600;
        for (what, csr, gone) in [
            // approved and issued: an hour after the approval
            (
                "issued 2h ago",
                csr_aged(
                    3 * h,
                    json!({"conditions": [cond("Approved", 2 * h)], "certificate": valid}),
                ),
                true,
            ),
            (
                "issued 10m ago",
                csr_aged(
                    3 * h,
                    json!({"conditions": [cond("Approved", 600)], "certificate": valid}),
                ),
                false,
            ),
            // an empty certificate is not issued (`len(csr.Status.Certificate) > 0`)
            (
                "approved 2h ago, empty certificate",
                csr_aged(
                    3 * h,
                    json!({"conditions": [cond("Approved", 2 * h)], "certificate": ""}),
                ),
                false,
            ),
            (
                "approved 2h ago, no certificate",
                csr_aged(3 * h, json!({"conditions": [cond("Approved", 2 * h)]})),
                false,
            ),
            // a certificate without an Approved condition is pending: a day
            (
                "certificate, no condition, 2h",
                csr_aged(2 * h, json!({"certificate": valid})),
                false,
            ),
            (
                "certificate, no condition, 25h",
                csr_aged(25 * h, json!({"certificate": valid})),
                true,
            ),
            (
                "denied 2h ago",
                csr_aged(3 * h, json!({"conditions": [cond("Denied", 2 * h)]})),
                true,
            ),
            (
                "denied 10m ago",
                csr_aged(3 * h, json!({"conditions": [cond("Denied", 600)]})),
                false,
            ),
            (
                "failed 2h ago",
                csr_aged(3 * h, json!({"conditions": [cond("Failed", 2 * h)]})),
                true,
            ),
            // a condition without lastUpdateTime is never past a deadline (`isOlderThan`)
            (
                "denied, no time",
                csr_aged(
                    30 * h,
                    json!({"conditions": [{"type": "Denied", "status": "True"}]}),
                ),
                false,
            ),
            ("pending 2h", csr_aged(2 * h, json!({})), false),
            ("pending 25h", csr_aged(25 * h, json!({})), true),
            // approved 10 minutes ago, but the certificate has expired
            (
                "issued, expired",
                csr_aged(
                    3 * h,
                    json!({"conditions": [cond("Approved", 600)], "certificate": expired}),
                ),
                true,
            ),
            (
                "issued, not PEM",
                csr_aged(
                    3 * h,
                    json!({"conditions": [cond("Approved", 600)], "certificate": b64("x")}),
                ),
                false,
            ),
        ] {
            assert_eq!(csr_expired(&csr, now), gone, "{what}");
        }
    }

    #[tokio::test]
    async fn csr_cleaner_removes_old_requests() {
        let objects = Objects::new(std::sync::Arc::new(
            kubepull_datastore::memory::MemoryStore::new(),
        ));
        let r = resources::find("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let at = |secs: i64| {
            (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
        };
        let approved = |ago: i64, cert: &str| json!({"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": at(ago)}], "certificate": cert});
        for (name, created, status) in [
            ("old-issued", 3 * 3600, approved(2 * 3600, "eA==")),
            ("old-empty-certificate", 3 * 3600, approved(2 * 3600, "")),
            ("old-pending", 2 * 3600, json!({})),
            ("new-issued", 600, approved(300, "eA==")),
        ] {
            let o = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": name, "uid": name, "creationTimestamp": at(created)},
                "spec": {"signerName": "kubernetes.io/kubelet-serving", "request": ""},
                "status": status});
            objects
                .store()
                .create(&r.key("", name), serde_json::to_vec(&o).unwrap())
                .await
                .unwrap();
        }
        csr_cleaner(&objects).await;
        let (left, _, _) = objects
            .list(r, None, &ListOptions::default())
            .await
            .unwrap();
        let names: Vec<&str> = left.iter().map(|o| s(o, "/metadata/name")).collect();
        assert_eq!(
            names,
            ["new-issued", "old-empty-certificate", "old-pending"]
        );
    }

    #[test]
    fn hashes_and_scaling() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let h = pod_template_hash(&t, 0);
        assert_eq!(h, pod_template_hash(&t, 0));
        assert_ne!(h, pod_template_hash(&t, 1));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let pct = IntOrString::String("25%".into());
        assert_eq!(deployment::scaled(Some(&pct), 3, true), 1);
        assert_eq!(deployment::scaled(Some(&pct), 3, false), 0);
        assert_eq!(deployment::scaled(Some(&IntOrString::Int(2)), 3, false), 2);
        // '0' is 48, 48 % 27 = 21 -> '4'; '1' -> '5'; '9' is 57, 57 % 27 = 3 -> 'f'
        assert_eq!(safe_encode("019"), "45f");
    }
}
