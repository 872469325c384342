//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does it:
//! the holder renews every `RETRY`; another replica takes the Lease over only after
//! `LEASE_DURATION` without a renewal, by a write guarded with the resourceVersion it read, so two
//! replicas can never both win.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::sync::watch;

use super::metrics::Metrics;

/// Seconds a Lease stays valid without a renewal (client-go's default 15 s).
pub const LEASE_DURATION: i32 = 15;
/// How often the holder renews and the others retry (client-go's default 2 s).
pub const RETRY: Duration = Duration::from_secs(2);

/// One replica's elector.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease.
    Leading,
    /// Another replica holds a Lease that has not expired.
    Following,
}

impl Elector {
    /// An elector for Lease `namespace/name`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }

    fn spec(&self, now: Timestamp, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION),
            acquire_time: Some(acquire.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One acquire-or-renew attempt.
    pub async fn try_acquire(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(r), Some(d)) => r.0.as_second() + i64::from(d) < now.as_second(),
            _ => true,
        };
        if !mine
            && !expired
            && spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty())
        {
            return Ok(Attempt::Following);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquire = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(now, acquire, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            // someone else wrote first: they lead
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(e),
        }
    }

    /// Campaigns until `shutdown`, publishing leadership on `leading`. A leader that cannot renew
    /// for a whole lease duration steps down before anyone else may take over.
    pub async fn run(
        self,
        leading: watch::Sender<bool>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut last_renew = tokio::time::Instant::now();
        loop {
            let state = match self.try_acquire().await {
                Ok(Attempt::Leading) => {
                    last_renew = tokio::time::Instant::now();
                    true
                }
                Ok(Attempt::Following) => false,
                Err(e) => {
                    eprintln!("kubepull operator: lease {}: {e}", self.name);
                    // keep leading only while the lease we hold is surely still ours
                    *leading.borrow()
                        && last_renew.elapsed()
                            < Duration::from_secs(LEASE_DURATION as u64) - RETRY * 2
                }
            };
            if *leading.borrow() != state {
                eprintln!(
                    "kubepull operator: {} {}",
                    self.identity,
                    if state {
                        "became leader"
                    } else {
                        "is no longer leader"
                    }
                );
            }
            leading.send_replace(state);
            metrics.set_leader(state);
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
