//! The CRD finalizer, after apiextensions-apiserver
//! `pkg/controller/finalizer/crd_finalizer.go` (`CRDFinalizer.sync`, `deleteInstances`).
//!
//! The first DELETE of a CRD gives it the [`CLEANUP_FINALIZER`] finalizer, a
//! `deletionTimestamp` and the `Terminating` condition (`InstanceDeletionPending`;
//! [`crate::crd::begin_deletion`]). For every CRD in that state, [`run`]:
//! 1. sets `Terminating` to `InstanceDeletionInProgress` ("CustomResource deletion is in
//!    progress");
//! 2. if the CRD was established, deletes every instance through the API server's normal delete
//!    path ([`Objects::delete`]): an instance with finalizers gets its `deletionTimestamp` and
//!    stays until they are removed. A failed list or delete sets `InstanceDeletionFailed`
//!    ("could not list instances: …", "could not issue all deletes: …") and is tried again;
//! 3. once no instance is left, sets `Terminating` to `False` (`InstanceDeletionCompleted`,
//!    "removed all instances"; `NeverEstablished`, "resource was never established", when the
//!    CRD never served anything), removes the finalizer and, with no other finalizer left,
//!    removes the CRD: it is no longer served, in discovery or in OpenAPI.
//!
//! While the CRD is terminating it is still served (instances can be read, updated and their
//! finalizers removed), but creates are refused
//! ([`crate::crd::refuse_create_while_terminating`]). Upstream waits for the instances by
//! polling every 5 s for a minute per attempt, then requeues with the queue's back-off; here
//! the CRD watch runs [`run`] on a CRD change and, while a CRD is still waiting for its
//! instances or a round failed, again after [`FINALIZE_POLL`], doubling to
//! [`FINALIZE_POLL_MAX`] ([`Backoff`]); CRD events before then (its own condition writes
//! among them) do not run it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::crd::{crd_resource, established, set_crd_condition, sync, sync_without};
use crate::objects::{decode, DeleteOptions, Objects};

/// The finalizer a CRD being deleted carries until its instances are gone
/// (`apiextensions.CustomResourceCleanupFinalizer`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// How soon a CRD whose instances are still held by finalizers (or whose round failed) is
/// looked at again, first; each further round that leaves one waiting doubles it, up to
/// [`FINALIZE_POLL_MAX`].
pub const FINALIZE_POLL: Duration = Duration::from_secs(1);

/// The longest wait between two rounds (upstream's poll interval while it waits for the
/// instances, `crd_finalizer.go` `deleteInstances`).
pub const FINALIZE_POLL_MAX: Duration = Duration::from_secs(5);

/// The wait before the next round of [`run`]: [`FINALIZE_POLL`] after a round that finished
/// everything, doubling (to [`FINALIZE_POLL_MAX`]) after each round that left a CRD waiting.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FINALIZE_POLL,
        }
    }
}

impl Backoff {
    /// When to run again after a round (`pending`: it left a CRD waiting).
    pub fn after(&mut self, pending: bool) -> tokio::time::Instant {
        let wait = if pending {
            let w = self.next;
            self.next = (self.next * 2).min(FINALIZE_POLL_MAX);
            w
        } else {
            self.next = FINALIZE_POLL;
            FINALIZE_POLL
        };
        tokio::time::Instant::now() + wait
    }
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn has_cleanup_finalizer(crd: &Value) -> bool {
    crd.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == CLEANUP_FINALIZER))
}

/// Finalizes every CRD being deleted that carries [`CLEANUP_FINALIZER`]. True while one of them
/// is still waiting (instances held by finalizers, or an attempt failed).
pub async fn run(objects: &Objects) -> bool {
    let r = crd_resource();
    let crds = match objects
        .list(r, None, &crate::objects::ListOptions::default())
        .await
    {
        Ok((crds, _, _)) => crds,
        Err(e) => {
            tracing::warn!("CRD finalizer: listing CustomResourceDefinitions: {e}");
            return true;
        }
    };
    let mut pending = false;
    for crd in crds
        .into_iter()
        .filter(|c| c.pointer("/metadata/deletionTimestamp").is_some() && has_cleanup_finalizer(c))
    {
        let name = text(&crd, "/metadata/name").to_string();
        match finalize(objects, crd).await {
            Ok(done) => pending |= !done,
            Err(e) => {
                tracing::warn!("CRD finalizer: {name}: {e}");
                pending = true;
            }
        }
    }
    pending
}

/// Writes `crd` over the stored one (compare-and-swap on its resourceVersion). `None` when it
/// changed or went meanwhile: the watch brings the new state and [`run`] looks again.
async fn write(objects: &Objects, crd: &Value) -> Result<Option<Value>, String> {
    let key = crd_resource().key("", text(crd, "/metadata/name"));
    let rv: u64 = text(crd, "/metadata/resourceVersion").parse().unwrap_or(0);
    let mut stored = crd.clone();
    if let Some(m) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let bytes = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
    match objects.store().update(&key, bytes, rv).await {
        Ok(rev) => {
            stored["metadata"]["resourceVersion"] = json!(rev.to_string());
            Ok(Some(stored))
        }
        Err(
            kubepull_datastore::Error::Conflict { .. } | kubepull_datastore::Error::NotFound { .. },
        ) => Ok(None),
        Err(e) => Err(format!("writing {key}: {e}")),
    }
}

/// Sets the `Terminating` condition and writes the CRD when that changes it.
async fn set_terminating(
    objects: &Objects,
    crd: Value,
    status: bool,
    reason: &str,
    message: &str,
) -> Result<Option<Value>, String> {
    let mut next = crd.clone();
    set_crd_condition(&mut next, "Terminating", status, reason, message);
    if next == crd {
        return Ok(Some(crd));
    }
    write(objects, &next).await
}

/// What is left of the CRD's instances after a round of deletes.
enum Instances {
    /// None is left.
    Gone,
    /// Some are still there (being deleted, held by finalizers).
    Left(usize),
}

/// One round of `deleteInstances`: every instance not yet being deleted is deleted through the
/// normal delete path; then the instances still stored are counted.
async fn delete_instances(objects: &Objects, crd: &Value) -> Result<Instances, (String, String)> {
    let list_failed = |e: String| ("could not list instances".to_string(), e);
    let name = text(crd, "/metadata/name");
    let group = text(crd, "/spec/group");
    let mut plural = text(crd, "/status/acceptedNames/plural");
    if plural.is_empty() {
        plural = text(crd, "/spec/names/plural");
    }
    // the served resource deletes go through (the storage version when served)
    let mut served = objects.crds().all();
    served.retain(|sv| sv.crd_name == name);
    served.sort_by_key(|sv| sv.r.api_version() != sv.storage_api_version);
    let Some(sv) = served.first() else {
        return Err(list_failed(format!(
            "unable to find a custom resource client for {plural}.{group}: not served yet"
        )));
    };
    let prefix = format!("/registry/{group}/{plural}/");
    let all = |objects: &Objects| {
        let prefix = prefix.clone();
        let store = objects.store().clone();
        async move {
            let mut out = vec![];
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list(&prefix, after.as_deref(), 500, None)
                    .await
                    .map_err(|e| e.to_string())?;
                out.extend(page.items.iter().map(decode));
                if !page.more || page.items.is_empty() {
                    return Ok::<_, String>(out);
                }
                after = page.items.last().map(|kv| kv.key.clone());
            }
        }
    };
    let items = all(objects).await.map_err(list_failed)?;
    let mut errors = vec![];
    for item in items
        .iter()
        .filter(|i| i.pointer("/metadata/deletionTimestamp").is_none())
    {
        let ns = if sv.r.namespaced {
            text(item, "/metadata/namespace")
        } else {
            ""
        };
        match objects
            .delete(
                sv.r,
                ns,
                text(item, "/metadata/name"),
                &DeleteOptions::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => errors.push(e.message),
        }
    }
    if !errors.is_empty() {
        // utilerrors.NewAggregate's wording
        let agg = if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("[{}]", errors.join(", "))
        };
        return Err(("could not issue all deletes".to_string(), agg));
    }
    let left = all(objects).await.map_err(list_failed)?.len();
    Ok(if left == 0 {
        Instances::Gone
    } else {
        Instances::Left(left)
    })
}

/// `CRDFinalizer.sync` for one CRD. True when the CRD is finalized (the finalizer removed).
async fn finalize(objects: &Objects, crd: Value) -> Result<bool, String> {
    let name = text(&crd, "/metadata/name").to_string();
    // this cleanup could take a while
    let Some(mut crd) = set_terminating(
        objects,
        crd,
        true,
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
    )
    .await?
    else {
        return Ok(false);
    };
    if established(&crd) {
        match delete_instances(objects, &crd).await {
            Ok(Instances::Gone) => set_crd_condition(
                &mut crd,
                "Terminating",
                false,
                "InstanceDeletionCompleted",
                "removed all instances",
            ),
            Ok(Instances::Left(n)) => {
                tracing::debug!("{name}: waiting for {n} custom resources to be removed");
                return Ok(false);
            }
            Err((what, why)) => {
                let message = format!("{what}: {why}");
                set_terminating(objects, crd, true, "InstanceDeletionFailed", &message).await?;
                return Err(message);
            }
        }
    } else {
        set_crd_condition(
            &mut crd,
            "Terminating",
            false,
            "NeverEstablished",
            "resource was never established",
        );
    }
    // CRDRemoveFinalizer, then the update that removes a deleted object without finalizers
    let mut finalizers: Vec<Value> = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    finalizers.retain(|f| f != CLEANUP_FINALIZER);
    if !finalizers.is_empty() {
        crd["metadata"]["finalizers"] = Value::Array(finalizers);
        return Ok(write(objects, &crd).await?.is_some());
    }
    // stop serving it first, so that once the CRD is gone from storage (what `kubectl delete`
    // waits for) no request finds its kind served any more
    sync_without(objects, Some(&name))
        .await
        .map_err(|e| e.message)?;
    let key = crd_resource().key("", &name);
    let rv: u64 = text(&crd, "/metadata/resourceVersion").parse().unwrap_or(0);
    let removed = match objects.store().delete(&key, Some(rv)).await {
        Ok(_) => true,
        Err(
            kubepull_datastore::Error::Conflict { .. } | kubepull_datastore::Error::NotFound { .. },
        ) => false,
        Err(e) => return Err(format!("removing {key}: {e}")),
    };
    // serve what is stored again (the CRD itself if it was not removed)
    sync(objects).await.map_err(|e| e.message)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds that leave a CRD waiting back off, doubling to the cap; a round that finishes
    /// everything resets it.
    #[test]
    fn rounds_that_leave_a_crd_waiting_back_off() {
        let mut b = Backoff::default();
        // whole seconds from now (the instants are taken a moment apart)
        let wait = |at: tokio::time::Instant| {
            (at - tokio::time::Instant::now()).as_secs_f64().round() as u64
        };
        let waits: Vec<u64> = (0..7).map(|_| wait(b.after(true))).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5, 5, 5]);
        assert_eq!(wait(b.after(false)), FINALIZE_POLL.as_secs());
        assert_eq!(wait(b.after(true)), FINALIZE_POLL.as_secs());
    }
    use crate::crd::begin_deletion;
    use crate::objects::User;
    use kubepull_datastore::Datastore;
    use std::sync::Arc;

    fn crd(plural: &str, kind: &str) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Cluster",
                "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]}})
    }

    fn terminating(crd: &Value) -> Value {
        crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Terminating")
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn stored_crd(objects: &Objects, name: &str) -> Option<Value> {
        objects.get_opt(crd_resource(), "", name).await.unwrap()
    }

    #[tokio::test]
    async fn a_failed_delete_keeps_the_crd_with_the_failure_then_it_goes() {
        let store = Arc::new(crate::teststore::TestStore::default());
        store.fail_deletes_under(Some("/registry/example.com/"));
        let objects = Objects::new(store.clone());
        let r = crd_resource();
        let name = "widgets.example.com";
        objects
            .create(r, "", crd("widgets", "Widget"), &User::Admin, false)
            .await
            .unwrap();
        let w = objects.crds().find("example.com", "v1", "widgets").unwrap();
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1"}});
        objects
            .create(w, "", obj.clone(), &User::Admin, false)
            .await
            .unwrap();
        objects
            .delete(r, "", name, &DeleteOptions::default())
            .await
            .unwrap();
        let c = stored_crd(&objects, name).await.unwrap();
        assert_eq!(terminating(&c)["reason"], "InstanceDeletionPending", "{c}");

        // the instance's delete fails: the CRD stays and says why
        assert!(run(&objects).await, "still pending");
        let c = stored_crd(&objects, name).await.unwrap();
        let t = terminating(&c);
        assert_eq!(t["status"], "True", "{t}");
        assert_eq!(t["reason"], "InstanceDeletionFailed", "{t}");
        let msg = t["message"].as_str().unwrap();
        assert!(
            msg.starts_with("could not issue all deletes: ") && msg.contains("no quorum"),
            "{msg}"
        );
        assert!(objects.get_opt(w, "", "w1").await.unwrap().is_some());

        // the registry follows the stored CRD: creates are refused while it is terminating
        crate::crd::sync(&objects).await.unwrap();
        let mut o2 = obj.clone();
        o2["metadata"]["name"] = json!("w2");
        let e = objects
            .create(w, "", o2, &User::Admin, false)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (405, "MethodNotAllowed"));
        assert_eq!(
            e.message,
            "create not allowed while custom resource definition is terminating"
        );
        // and its status write keeps the Terminating condition
        let c = stored_crd(&objects, name).await.unwrap();
        assert_eq!(terminating(&c)["reason"], "InstanceDeletionFailed", "{c}");

        // the store answers again: the instance goes, then the CRD
        store.fail_deletes_under(None);
        assert!(!run(&objects).await, "finalized");
        assert!(stored_crd(&objects, name).await.is_none());
        assert!(store
            .uncounted()
            .list("/registry/example.com/", None, 0, None)
            .await
            .unwrap()
            .items
            .is_empty());
        assert!(objects.crds().all().is_empty());
        assert!(!run(&objects).await, "nothing left to do");
    }

    #[tokio::test]
    async fn a_crd_never_established_goes_at_once() {
        let objects = Objects::new(Arc::new(kubepull_datastore::memory::MemoryStore::new()));
        let r = crd_resource();
        objects
            .create(r, "", crd("gadgets", "Gadget"), &User::Admin, false)
            .await
            .unwrap();
        // the same kind in the same group: its names are not accepted, it is never established
        let mut dup = crd("gizmos", "Gadget");
        dup["metadata"]["creationTimestamp"] = json!("2999-01-01T00:00:00Z");
        objects
            .create(r, "", dup, &User::Admin, false)
            .await
            .unwrap();
        let c = stored_crd(&objects, "gizmos.example.com").await.unwrap();
        assert!(!established(&c), "{c}");
        objects
            .delete(r, "", "gizmos.example.com", &DeleteOptions::default())
            .await
            .unwrap();
        assert!(!run(&objects).await);
        assert!(stored_crd(&objects, "gizmos.example.com").await.is_none());
        assert!(stored_crd(&objects, "gadgets.example.com").await.is_some());
    }

    #[test]
    fn the_first_delete_adds_the_finalizer_and_the_pending_condition_once() {
        let mut crd = json!({"metadata": {"name": "widgets.example.com"}, "status": {
            "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted", "lastTransitionTime": "t0"}]}});
        let mut finalizers = vec![json!("example.com/other")];
        begin_deletion(&mut crd, &mut finalizers);
        assert_eq!(
            finalizers,
            [json!("example.com/other"), json!(CLEANUP_FINALIZER)]
        );
        let cs = crd["status"]["conditions"].as_array().unwrap();
        assert_eq!(cs.len(), 2, "{cs:?}");
        assert_eq!(cs[0]["type"], "Established");
        assert_eq!(cs[1]["type"], "Terminating");
        assert_eq!(cs[1]["status"], "True");
        assert_eq!(cs[1]["reason"], "InstanceDeletionPending");
        assert_eq!(
            cs[1]["message"],
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"
        );
        // a CRD already being deleted is left alone
        let mut deleting = json!({"metadata": {"name": "x", "deletionTimestamp": "t1"}});
        let mut f = vec![];
        begin_deletion(&mut deleting, &mut f);
        assert!(f.is_empty());
        assert!(deleting.get("status").is_none());
        assert!(has_cleanup_finalizer(
            &json!({"metadata": {"finalizers": [CLEANUP_FINALIZER]}})
        ));
        assert!(!has_cleanup_finalizer(&json!({"metadata": {}})));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut crd = json!({"status": {"conditions": [{"type": "Terminating", "status": "True",
            "reason": "InstanceDeletionPending", "message": "m", "lastTransitionTime": "t0"}]}});
        set_crd_condition(
            &mut crd,
            "Terminating",
            true,
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        );
        let c = &crd["status"]["conditions"][0];
        assert_eq!(
            (c["reason"].as_str(), c["lastTransitionTime"].as_str()),
            (Some("InstanceDeletionInProgress"), Some("t0"))
        );
        set_crd_condition(
            &mut crd,
            "Terminating",
            false,
            "InstanceDeletionCompleted",
            "removed all instances",
        );
        let c = &crd["status"]["conditions"][0];
        assert_eq!(c["status"], "False");
        assert_ne!(c["lastTransitionTime"], "t0");
        assert_eq!(crd["status"]["conditions"].as_array().unwrap().len(), 1);
    }
}
