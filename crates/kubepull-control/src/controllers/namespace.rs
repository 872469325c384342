//! The namespace controller (kubernetes `pkg/controller/namespace`, `deletion/
//! namespaced_resources_deleter.go`): a namespace with a `deletionTimestamp` has every object
//! in it deleted (`deleteAllContent`, each with `propagationPolicy: Background`); terminating
//! pods nobody will finish (not bound to a node) are removed; once nothing is left, the
//! namespace goes. While content remains, the namespace is looked at again after
//! `estimate/2 + 1` seconds (`NamespaceController.workFunc`), here 1 s.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::Value;

use super::informer::{Informers, Notice, Typed};
use super::kinds;
use super::queue::{self, Action};
use super::{res, s};
use crate::errors::ApiError;
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// The re-check delay while content remains.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What to do with one object of a terminating namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delete it (`Background`).
    Delete,
    /// Remove it at once (a terminating pod no node finishes).
    Remove,
    /// Wait for it (terminating).
    Wait,
}

/// The step for `o`, of kind `kind`, in a terminating namespace (the content is read as JSON, as
/// upstream reads it through the metadata client: every served resource, custom ones too).
pub fn step(kind: &str, o: &Value) -> Step {
    if o.pointer("/metadata/deletionTimestamp").is_none() {
        return Step::Delete;
    }
    if kind == "Pod" && s(o, "/spec/nodeName").is_empty() {
        return Step::Remove;
    }
    Step::Wait
}

/// The deletes for the content of a terminating namespace, and how many objects are left.
pub fn plan(
    content: &[(&'static Resource, Vec<Value>)],
) -> (Vec<Action>, Vec<(&'static Resource, String)>, usize) {
    let mut actions = vec![];
    let mut removes = vec![];
    let mut left = 0;
    for (r, items) in content {
        for o in items {
            left += 1;
            let name = s(o, "/metadata/name").to_string();
            match step(r.kind, o) {
                Step::Delete => actions.push(Action::Delete {
                    r,
                    ns: s(o, "/metadata/namespace").to_string(),
                    name,
                    propagation: Some("Background"),
                    uid: None,
                }),
                Step::Remove => removes.push((*r, name)),
                Step::Wait => {}
            }
        }
    }
    (actions, removes, left)
}

/// The namespace controller.
pub struct NamespaceController {
    namespaces: Typed<Namespace>,
}

impl NamespaceController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> NamespaceController {
        NamespaceController {
            namespaces: informers.of::<Namespace>(),
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for NamespaceController {
    fn name(&self) -> &'static str {
        "namespace-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![res("namespaces").key_prefix()]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let m = change.obj.meta();
        if change.deleted || m.deletion_timestamp.is_none() {
            return vec![];
        }
        vec![kinds::name(m).to_string()]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .namespaces
            .list()
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_some())
            .map(|n| kinds::name(&n.metadata).to_string())
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(ns) = self.namespaces.get_named("", key) else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let custom = objects.crds().storage_resources();
        let mut content = vec![];
        for r in resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced && r.group != "events.k8s.io")
            .chain(custom.into_iter().filter(|r| r.namespaced))
        {
            let (items, _, _) = objects.list(r, Some(key), &ListOptions::default()).await?;
            if !items.is_empty() {
                content.push((r, items));
            }
        }
        let (actions, removes, left) = plan(&content);
        for (r, name) in removes {
            match objects.remove(r, key, &name).await {
                // gone meanwhile: what the removal wanted
                Err(e) if e.code == 404 => {}
                r => {
                    r?;
                }
            }
        }
        queue::apply(objects, self.name(), actions).await?;
        if left == 0 {
            objects.remove(res("namespaces"), "", key).await?;
            return Ok(None);
        }
        Ok(Some(RECHECK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deletes_content_removes_orphaned_terminating_pods_and_waits_for_the_rest() {
        let pods = res("pods");
        let cms = crate::resources::find("", "v1", "configmaps").unwrap();
        let live =
            json!({"metadata": {"name": "live", "namespace": "t"}, "spec": {"nodeName": "n"}});
        let on_node = json!({"metadata": {"name": "ending", "namespace": "t", "deletionTimestamp": "x"}, "spec": {"nodeName": "n"}});
        let nowhere = json!({"metadata": {"name": "stuck", "namespace": "t", "deletionTimestamp": "x"}, "spec": {}});
        let cm = json!({"metadata": {"name": "cm", "namespace": "t"}});
        let (actions, removes, left) =
            plan(&[(pods, vec![live, on_node, nowhere]), (cms, vec![cm])]);
        let deleted: Vec<(&str, &str)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete {
                    r,
                    name,
                    propagation,
                    ..
                } => {
                    assert_eq!(*propagation, Some("Background"));
                    Some((r.kind, name.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(deleted, [("Pod", "live"), ("ConfigMap", "cm")]);
        let removed: Vec<(&str, &str)> =
            removes.iter().map(|(r, n)| (r.kind, n.as_str())).collect();
        assert_eq!(removed, [("Pod", "stuck")]);
        assert_eq!(left, 4);
        assert_eq!(plan(&[]).2, 0);
    }
}
