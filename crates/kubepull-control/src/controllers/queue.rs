//! An event-driven work queue for controllers (client-go `workqueue` with delayed adds, fed by
//! watches the way informers feed it): a change under a watched prefix maps to the keys of the
//! objects it affects, and only those are synced. A sync returns when to look again (schedules,
//! back-off, deadlines); a failed write requeues the key with back-off, it is never dropped.
//!
//! Plans are pure: each controller computes a list of [`Action`]s from what it observed and the
//! time; [`apply`] carries them out in order and stops at the first failure.

use std::collections::HashMap;
use std::time::Duration;

use kubepull_datastore::Event;
use serde_json::Value;
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::objects::{DeleteOptions, Objects, User};
use crate::resources::Resource;

/// One write a plan asks for.
#[derive(Debug, Clone)]
pub enum Action {
    /// Create `obj` in `ns`.
    Create {
        /// Resource.
        r: &'static Resource,
        /// Namespace.
        ns: String,
        /// Object.
        obj: Value,
    },
    /// Replace an object (or its status), guarded by the `resourceVersion` it carries.
    Update {
        /// Resource.
        r: &'static Resource,
        /// The object, with the resourceVersion it was read at.
        obj: Value,
        /// Write the status subresource.
        status: bool,
    },
    /// A JSON merge patch.
    Patch {
        /// Resource.
        r: &'static Resource,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// The patch.
        patch: Value,
    },
    /// Delete an object (with a UID precondition when given).
    Delete {
        /// Resource.
        r: &'static Resource,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// `Background`, `Foreground` or `Orphan`.
        propagation: Option<&'static str>,
        /// UID precondition.
        uid: Option<String>,
    },
    /// Record an event about `about`.
    Event {
        /// The involved object.
        about: Value,
        /// `Normal` or `Warning`.
        etype: &'static str,
        /// Reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
}

/// What a sync decided.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Writes, in order.
    pub actions: Vec<Action>,
    /// Look again after this long (none: only on the next change).
    pub requeue_after: Option<Duration>,
}

fn md<'a>(o: &'a Value, f: &str) -> &'a str {
    o.pointer(&format!("/metadata/{f}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Carries out `actions` in order as `component`; the first failed write ends it (the caller
/// requeues). A create that finds the object already there and a delete that finds it gone
/// count as done.
pub async fn apply(
    objects: &Objects,
    component: &str,
    actions: Vec<Action>,
) -> Result<(), ApiError> {
    for a in actions {
        match a {
            Action::Create { r, ns, obj } => {
                match objects.create(r, &ns, obj, &User::Admin, false).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {}
                    Err(e) => return Err(e),
                }
            }
            Action::Update { r, obj, status } => {
                let ns = md(&obj, "namespace").to_string();
                let name = md(&obj, "name").to_string();
                objects
                    .update(r, &ns, &name, obj, status.then_some("status"), false)
                    .await?;
            }
            Action::Patch { r, ns, name, patch } => match objects
                .patch(
                    r,
                    &ns,
                    &name,
                    "application/merge-patch+json",
                    &patch,
                    None,
                    false,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            },
            Action::Delete {
                r,
                ns,
                name,
                propagation,
                uid,
            } => {
                let opts = DeleteOptions {
                    propagation_policy: propagation.map(str::to_string),
                    uid,
                    ..Default::default()
                };
                match objects.delete(r, &ns, &name, &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Action::Event {
                about,
                etype,
                reason,
                message,
            } => {
                let kind = about
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                super::event(objects, component, &about, &kind, etype, reason, &message).await;
            }
        }
    }
    Ok(())
}

/// A controller driven by [`run`].
#[async_trait::async_trait]
pub trait Controller: Send {
    /// Its name (logs, events).
    fn name(&self) -> &'static str;
    /// The storage prefixes it watches.
    fn prefixes(&self) -> Vec<String>;
    /// The keys (`namespace/name` of its primary objects) a change at `key` affects: `obj` is the
    /// new state (the last one when `deleted`), `old` the state before an update.
    fn keys_for(
        &mut self,
        key: &str,
        obj: &Value,
        old: Option<&Value>,
        deleted: bool,
    ) -> Vec<String>;
    /// Every key (start and resync).
    async fn all_keys(&mut self, objects: &Objects) -> Result<Vec<String>, ApiError>;
    /// Syncs one key; returns when to look again.
    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError>;
}

/// How often every key is synced even without a change (informer resync).
pub const RESYNC: Duration = Duration::from_secs(300);
/// The first retry after a failed sync, doubling up to [`MAX_RETRY`] (workqueue's
/// `DefaultControllerRateLimiter` per-item exponential part, 5 ms … 1000 s, with a shorter cap).
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// Runs `c` until `shutdown` resolves.
pub async fn run<C: Controller>(
    objects: Objects,
    mut c: C,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Event>>(1024);
    let mut watchers: Vec<tokio::task::JoinHandle<()>> = vec![];
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut failures: HashMap<String, u32> = HashMap::new();
    let mut next_resync = Instant::now();
    loop {
        if watchers.iter().all(|w| w.is_finished()) {
            // (re)start the watches, then look at everything
            for w in watchers.drain(..) {
                w.abort();
            }
            let rev = objects.store().current_revision().await.unwrap_or(0);
            for p in c.prefixes() {
                let Ok(mut w) = objects.store().watch(&p, rev).await else {
                    continue;
                };
                let tx = tx.clone();
                watchers.push(tokio::spawn(async move {
                    while let Some(ev) = w.events.recv().await {
                        let Ok(ev) = ev else { break };
                        if tx.send(Some(ev)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(None).await;
                }));
            }
            next_resync = Instant::now();
        }
        if Instant::now() >= next_resync {
            match c.all_keys(&objects).await {
                Ok(keys) => {
                    let now = Instant::now();
                    for k in keys {
                        due.insert(k, now);
                    }
                    next_resync = now + RESYNC;
                }
                Err(e) => {
                    tracing::warn!(controller = c.name(), error = %e, "listing failed");
                    next_resync = Instant::now() + FIRST_RETRY * 10;
                }
            }
        }
        // sync what is due
        let now = Instant::now();
        let ready: Vec<String> = due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in ready {
            due.remove(&k);
            match c.sync(&objects, &k).await {
                Ok(after) => {
                    failures.remove(&k);
                    if let Some(d) = after {
                        let t = Instant::now() + d;
                        let e = due.entry(k).or_insert(t);
                        *e = (*e).min(t);
                    }
                }
                Err(e) => {
                    let n = failures.entry(k.clone()).or_insert(0);
                    let delay = (FIRST_RETRY * 2u32.saturating_pow(*n)).min(MAX_RETRY);
                    *n += 1;
                    tracing::warn!(controller = c.name(), key = %k, error = %e, retry_in = ?delay, "sync failed; requeued");
                    due.insert(k, Instant::now() + delay);
                }
            }
        }
        let wake = due
            .values()
            .copied()
            .min()
            .unwrap_or(next_resync)
            .min(next_resync);
        tokio::select! {
            _ = &mut shutdown => {
                for w in watchers { w.abort(); }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {}
            ev = rx.recv() => {
                let mut evs = vec![ev.flatten()];
                // take what else is queued
                while let Ok(e) = rx.try_recv() {
                    evs.push(e);
                }
                let now = Instant::now();
                for ev in evs {
                    match ev {
                        None => {
                            // a watch ended: restart them all and resync
                            for w in &watchers { w.abort(); }
                        }
                        Some(ev) => {
                            let (kv, deleted) = match &ev {
                                Event::Put { kv, .. } => (kv, false),
                                Event::Delete { prev, .. } => (prev, true),
                            };
                            let obj = crate::objects::decode(kv);
                            let old = match &ev {
                                Event::Put { prev: Some(p), .. } => Some(crate::objects::decode(p)),
                                _ => None,
                            };
                            for k in c.keys_for(ev.key(), &obj, old.as_ref(), deleted) {
                                due.insert(k, now);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `namespace/name` of an object.
pub fn key_of(obj: &Value) -> String {
    format!("{}/{}", md(obj, "namespace"), md(obj, "name"))
}

/// Splits `namespace/name`.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The controller ownerReference of `obj` when it is of `kind`: `(name, uid)`.
pub fn controller_of<'a>(obj: &'a Value, kind: &str) -> Option<(&'a str, &'a str)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| {
            r.get("controller") == Some(&Value::Bool(true))
                && r.get("kind").and_then(Value::as_str) == Some(kind)
        })
        .map(|r| {
            (
                r.get("name").and_then(Value::as_str).unwrap_or(""),
                r.get("uid").and_then(Value::as_str).unwrap_or(""),
            )
        })
}
