//! The root CA publisher (kube-controller-manager's `root-ca-cert-publisher`,
//! pkg/controller/certificates/rootcacertpublisher/publisher.go): every namespace holds the
//! ConfigMap `kube-root-ca.crt` with the cluster CA under `ca.crt`, which the
//! `kube-api-access-*` projected volume the ServiceAccount admission adds to pods mounts at
//! `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`, so in-cluster clients trust the API
//! server. Recreated when deleted, rewritten when changed.

use std::time::Duration;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::controllers::get_typed;
use crate::controllers::informer::Notice;
use crate::controllers::queue::{self, Action, Controller, Object};
use crate::errors::ApiError;
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// The ConfigMap's name (`RootCACertConfigMapName`).
pub const CONFIGMAP: &str = "kube-root-ca.crt";
/// `DescriptionAnnotation`.
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// `Description`.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver \
    when using internal endpoints such as the internal service IP or kubernetes.default.svc. No \
    other usage is guaranteed across distributions of Kubernetes clusters.";

fn r(plural: &str) -> &'static Resource {
    resources::find("", "v1", plural).expect("core resource")
}

/// The publisher; its keys are namespace names.
pub struct RootCaPublisher {
    ca_pem: String,
}

impl RootCaPublisher {
    /// Publishes `ca_pem`.
    pub fn new(ca_pem: String) -> Self {
        RootCaPublisher { ca_pem }
    }
}

/// What to do for one namespace (`syncNamespace`): `ns` the namespace (none: gone), `cm` the
/// ConfigMap as stored.
pub fn plan(
    ca_pem: &str,
    ns: Option<&Namespace>,
    cm: Option<&ConfigMap>,
    name: &str,
) -> Vec<Action> {
    let Some(ns) = ns else { return vec![] };
    if ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
    {
        return vec![];
    }
    let data = BTreeMap::from([("ca.crt".to_string(), ca_pem.to_string())]);
    match cm {
        None => vec![Action::Create {
            r: r("configmaps"),
            ns: name.to_string(),
            obj: Object::ConfigMap(ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIGMAP.into()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            }),
            report: None,
        }],
        Some(cm) => {
            let described = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
                .is_some_and(|s| !s.is_empty());
            if cm.data.as_ref() == Some(&data) && described {
                return vec![];
            }
            let mut cm = cm.clone();
            cm.data = Some(data);
            // binaryData is not part of the published content
            cm.binary_data = None;
            cm.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
            vec![Action::Update {
                r: r("configmaps"),
                obj: Object::ConfigMap(cm),
                status: false,
            }]
        }
    }
}

#[async_trait::async_trait]
impl Controller for RootCaPublisher {
    fn name(&self) -> &'static str {
        "root-ca-cert-publisher"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![r("namespaces").key_prefix(), r("configmaps").key_prefix()]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let m = change.obj.meta();
        let name = m.name.as_deref().unwrap_or("");
        if change.key.starts_with(&r("namespaces").key_prefix()) {
            return vec![name.to_string()];
        }
        if name == CONFIGMAP {
            return vec![m.namespace.clone().unwrap_or_default()];
        }
        vec![]
    }

    async fn all_keys(&mut self, objects: &Objects) -> Result<Vec<String>, ApiError> {
        let (items, _, _) = objects
            .list(r("namespaces"), None, &ListOptions::default())
            .await?;
        Ok(items
            .iter()
            .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
            .map(str::to_string)
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let ns = get_typed::<Namespace>(objects, "", key).await?;
        let cm = match ns {
            Some(_) => get_typed::<ConfigMap>(objects, key, CONFIGMAP).await?,
            None => None,
        };
        let actions = plan(&self.ca_pem, ns.as_ref(), cm.as_ref(), key);
        match queue::apply(objects, self.name(), actions).await {
            // the namespace went away or began terminating meanwhile: nothing to retry
            Err(e) if e.code == 404 || e.message.contains("being terminated") => Ok(None),
            r => r.map(|_| None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn ns() -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "team"}, "status": {"phase": "Active"}}))
            .unwrap()
    }

    fn cm(v: Value) -> ConfigMap {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn creates_in_a_live_namespace_and_never_in_a_terminating_one() {
        let a = plan("CA", Some(&ns()), None, "team");
        match a.as_slice() {
            [Action::Create {
                ns,
                obj: Object::ConfigMap(obj),
                ..
            }] => {
                let obj = serde_json::to_value(obj).unwrap();
                assert_eq!(obj["kind"], "ConfigMap");
                assert_eq!(ns, "team");
                assert_eq!(obj["metadata"]["name"], CONFIGMAP);
                assert_eq!(obj["data"]["ca.crt"], "CA");
                assert_eq!(
                    obj["metadata"]["annotations"][DESCRIPTION_ANNOTATION],
                    DESCRIPTION
                );
            }
            other => panic!("{other:?}"),
        }
        let mut t = ns();
        t.metadata.deletion_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        assert!(plan("CA", Some(&t), None, "team").is_empty());
        let mut t = ns();
        t.status.as_mut().unwrap().phase = Some("Terminating".into());
        assert!(plan("CA", Some(&t), None, "team").is_empty());
        assert!(plan("CA", None, None, "team").is_empty());
    }

    #[test]
    fn rewrites_changed_data_or_a_missing_description_and_leaves_a_good_one() {
        let good = cm(
            json!({"metadata": {"name": CONFIGMAP, "namespace": "team", "resourceVersion": "7",
            "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}, "data": {"ca.crt": "CA"}}),
        );
        assert!(plan("CA", Some(&ns()), Some(&good), "team").is_empty());
        let mut edited = serde_json::to_value(&good).unwrap();
        edited["data"]["ca.crt"] = json!("forged");
        edited["data"]["extra"] = json!("x");
        edited["binaryData"] = json!({"b": "eA=="});
        let edited = cm(edited);
        match plan("CA", Some(&ns()), Some(&edited), "team").as_slice() {
            [Action::Update {
                obj: Object::ConfigMap(obj),
                ..
            }] => {
                let obj = serde_json::to_value(obj).unwrap();
                assert_eq!(obj["data"], json!({"ca.crt": "CA"}));
                assert_eq!(obj["binaryData"], Value::Null);
                assert_eq!(obj["metadata"]["resourceVersion"], "7");
            }
            other => panic!("{other:?}"),
        }
        let mut bare = good.clone();
        bare.metadata.annotations = None;
        assert!(matches!(
            plan("CA", Some(&ns()), Some(&bare), "team").as_slice(),
            [Action::Update { .. }]
        ));
    }
}
