//! A controller's history as ControllerRevisions (kubernetes
//! `pkg/controller/history/controller_history.go`, 1.32), shared by the DaemonSet and
//! StatefulSet controllers: a revision's name and hash, equality, order, and the create that
//! resolves name collisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::Value;

use super::kinds::{self, Kind};
use crate::errors::ApiError;
use crate::objects::{Objects, User};

/// `history.ControllerRevisionHashLabel`: the hash of a revision's data, on the revision.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// `apps.ControllerRevisionHashLabelKey`: the revision a DaemonSet's or StatefulSet's pod was
/// made from, on the pod.
pub const POD_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The bytes a revision's data is hashed and compared as: its JSON with every object's keys
/// sorted, as `json.Marshal` writes the maps the controllers build their patches from.
pub fn data_bytes(data: &Value) -> Vec<u8> {
    super::canonical(data).into_bytes()
}

/// `HashControllerRevision`: FNV-32 (not 32a) of the data, then of the decimal `probe` when
/// given, `SafeEncodeString` of the decimal sum.
pub fn hash_controller_revision(data: &Value, probe: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: &[u8]| {
        for x in b {
            h = h.wrapping_mul(0x0100_0193);
            h ^= *x as u32;
        }
    };
    feed(&data_bytes(data));
    if let Some(p) = probe {
        feed(p.to_string().as_bytes());
    }
    super::safe_encode(&h.to_string())
}

/// `ControllerRevisionName`: `prefix-hash`, the prefix cut to 223 bytes so the name stays
/// within 253.
pub fn controller_revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(223);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// `NewControllerRevision`: a revision owned by `parent` (a controller reference), labelled
/// with the template's labels and its hash, named from the parent and the hash.
pub fn new_controller_revision<K: Kind>(
    parent: &K,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let mut labels = template_labels.cloned().unwrap_or_default();
    let hash = hash_controller_revision(&data, collision_count);
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.clone());
    let pm = parent.metadata();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(controller_revision_name(kinds::name(pm), &hash)),
            namespace: pm.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![kinds::new_controller_ref(parent)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

fn data_of(r: &ControllerRevision) -> Vec<u8> {
    r.data
        .as_ref()
        .map(|d| data_bytes(&d.0))
        .unwrap_or_default()
}

fn label_hash(r: &ControllerRevision) -> Option<u32> {
    let h = r
        .metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)?;
    // strconv.ParseInt(hs, 10, 32): a safe-encoded hash is not a number, so this only
    // compares labels that happen to be decimal
    h.parse::<i32>().ok().map(|v| v as u32)
}

/// `EqualRevision`: the same data (a differing decimal hash label settles it first).
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    if let (Some(x), Some(y)) = (label_hash(a), label_hash(b)) {
        if x != y {
            return false;
        }
    }
    data_of(a) == data_of(b)
}

/// `FindEqualRevisions`: the revisions equal to `needle`, in their order.
pub fn find_equal_revisions<'a>(
    revisions: &'a [Arc<ControllerRevision>],
    needle: &ControllerRevision,
) -> Vec<&'a Arc<ControllerRevision>> {
    revisions
        .iter()
        .filter(|r| equal_revision(r, needle))
        .collect()
}

/// `SortControllerRevisions`: by revision, ties by creation time, then by name (stable).
pub fn sort_controller_revisions(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let t = |r: &ControllerRevision| r.metadata.creation_timestamp.clone().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| kinds::name(&a.metadata).cmp(kinds::name(&b.metadata)))
    });
}

/// `nextRevision`: one more than the last of `revisions` (sorted), 1 for none.
pub fn next_revision(revisions: &[Arc<ControllerRevision>]) -> i64 {
    revisions.last().map_or(1, |r| r.revision + 1)
}

/// `realHistory.CreateControllerRevision`: creates `revision` under its parent's name with the
/// hash of its data and `collision_count`; a name taken by a revision with the same data is
/// that revision, one taken by other data raises the count and tries the next name.
pub async fn create_controller_revision(
    objects: &Objects,
    parent_name: &str,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, ApiError> {
    let r = kinds::resource_of::<ControllerRevision>();
    let ns = kinds::namespace(&revision.metadata).to_string();
    let data = revision
        .data
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or(Value::Null);
    // the names tried are bounded: a count that keeps colliding is a store that answers
    // AlreadyExists for everything, and is an error, not a loop
    for _ in 0..64 {
        let hash = hash_controller_revision(&data, Some(*collision_count));
        let mut clone = revision.clone();
        clone.metadata.name = Some(controller_revision_name(parent_name, &hash));
        let name = kinds::name(&clone.metadata).to_string();
        let body = serde_json::to_value(&clone)
            .map_err(|e| ApiError::internal(format!("encoding a ControllerRevision: {e}")))?;
        match objects.create(r, &ns, body, &User::Admin, false).await {
            Ok(v) => {
                return serde_json::from_value(v).map_err(|e| {
                    ApiError::internal(format!(
                        "ControllerRevision {ns}/{name} does not decode: {e}"
                    ))
                })
            }
            Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                let stored = objects.get(r, &ns, &name).await?;
                let stored: ControllerRevision = serde_json::from_value(stored).map_err(|e| {
                    ApiError::internal(format!(
                        "ControllerRevision {ns}/{name} does not decode: {e}"
                    ))
                })?;
                if data_of(&stored) == data_bytes(&data) {
                    return Ok(stored);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::internal(format!(
        "no free name for a ControllerRevision of {ns}/{parent_name} after 64 collisions"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use serde_json::json;

    fn ds() -> DaemonSet {
        serde_json::from_value(json!({"metadata": {"name": "agent", "namespace": "kube-system", "uid": "u-ds"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
        .unwrap()
    }

    #[test]
    fn fnv32_not_32a() {
        // FNV-32 of `{"a":1}` is 2552275893 (FNV-32a gives another sum); with the probe 0
        // appended, 811709919; each then safe-encoded
        assert_eq!(
            hash_controller_revision(&json!({"a": 1}), None),
            "69966c9df7"
        );
        assert_eq!(
            hash_controller_revision(&json!({"a": 1}), Some(0)),
            "d55c4ff5f"
        );
    }

    #[test]
    fn data_hash_ignores_key_order_and_probe_changes_it() {
        let a = json!({"spec": {"template": {"b": 1, "a": 2}}});
        let b = json!({"spec": {"template": {"a": 2, "b": 1}}});
        assert_eq!(
            hash_controller_revision(&a, None),
            hash_controller_revision(&b, None)
        );
        assert_ne!(
            hash_controller_revision(&a, Some(0)),
            hash_controller_revision(&a, Some(1))
        );
        assert_ne!(
            hash_controller_revision(&a, None),
            hash_controller_revision(&a, Some(0))
        );
    }

    #[test]
    fn new_revision_is_owned_named_and_labelled() {
        let d = ds();
        let labels: BTreeMap<String, String> = [("app".into(), "agent".into())].into();
        let data = json!({"spec": {"template": {"$patch": "replace"}}});
        let r = new_controller_revision(&d, Some(&labels), data.clone(), 3, Some(0));
        let hash = hash_controller_revision(&data, Some(0));
        assert_eq!(
            r.metadata.name.as_deref(),
            Some(format!("agent-{hash}").as_str())
        );
        assert_eq!(r.metadata.namespace.as_deref(), Some("kube-system"));
        let l = r.metadata.labels.as_ref().unwrap();
        assert_eq!(l["app"], "agent");
        assert_eq!(l[CONTROLLER_REVISION_HASH_LABEL], hash);
        let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("DaemonSet", "u-ds", Some(true))
        );
        assert_eq!(r.revision, 3);
        assert!(equal_revision(&r, &r.clone()));
        let other = new_controller_revision(&d, None, json!({"x": 1}), 3, Some(0));
        assert!(!equal_revision(&r, &other));
    }

    #[test]
    fn names_are_cut_to_fit() {
        let long = "a".repeat(300);
        let n = controller_revision_name(&long, "hash");
        assert_eq!(n.len(), 223 + 5);
        assert_eq!(controller_revision_name("web", "x7"), "web-x7");
    }

    #[test]
    fn order_and_next_revision() {
        let d = ds();
        let mk = |rev: i64, name: &str| {
            let mut r = new_controller_revision(&d, None, json!(rev), rev, None);
            r.metadata.name = Some(name.into());
            Arc::new(r)
        };
        let mut v = vec![mk(3, "c"), mk(1, "b"), mk(1, "a"), mk(2, "d")];
        sort_controller_revisions(&mut v);
        let names: Vec<&str> = v.iter().map(|r| kinds::name(&r.metadata)).collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
        assert_eq!(next_revision(&v), 4);
        assert_eq!(next_revision(&[]), 1);
        let needle = mk(9, "z");
        assert!(find_equal_revisions(&v, &needle).is_empty());
        let again = mk(2, "y");
        let eq = find_equal_revisions(&v, &again);
        assert_eq!(eq.len(), 1);
        assert_eq!(kinds::name(&eq[0].metadata), "d");
    }
}
