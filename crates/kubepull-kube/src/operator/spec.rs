//! The `ClusterPullSecret` custom resource (`kubepull.io/v1alpha1`, cluster-scoped): its Rust
//! shape, its CustomResourceDefinition, and the labels and annotations that mark the copies the
//! operator owns.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// API group of the custom resource.
pub const GROUP: &str = "kubepull.io";
/// Version of the custom resource.
pub const VERSION: &str = "v1alpha1";
/// Kind.
pub const KIND: &str = "ClusterPullSecret";
/// Plural (URL segment).
pub const PLURAL: &str = "clusterpullsecrets";

/// Label on every copy: selects the operator's copies (the only Secrets it watches).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kubepull-operator";
/// Label naming the `ClusterPullSecret` a copy belongs to.
pub const OWNER_LABEL: &str = "kubepull.io/cluster-pull-secret";
/// Annotation with `namespace/name` of the source.
pub const SOURCE_ANNOTATION: &str = "kubepull.io/source";
/// Annotation with the SHA-256 of the source's type and data (never the data itself).
pub const HASH_ANNOTATION: &str = "kubepull.io/source-hash";
/// Annotation on a ServiceAccount listing the pull secrets the operator appended to it.
pub const SA_ADDED_ANNOTATION: &str = "kubepull.io/added-pull-secrets";

/// Where the secret's name reaches pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Injection {
    /// A mutating webhook appends the name to each new pod's `imagePullSecrets`.
    #[default]
    Admission,
    /// ServiceAccounts get the name appended to their `imagePullSecrets`.
    ServiceAccount,
    /// Both.
    Both,
}

impl Injection {
    /// Pods are mutated at admission.
    pub fn admission(self) -> bool {
        matches!(self, Injection::Admission | Injection::Both)
    }
    /// ServiceAccounts are patched.
    pub fn service_accounts(self) -> bool {
        matches!(self, Injection::ServiceAccount | Injection::Both)
    }
}

/// The source Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name; the copies carry the same name.
    pub name: String,
}

/// `spec` of a `ClusterPullSecret`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPullSecretSpec {
    /// The source Secret.
    pub secret_ref: SecretRef,
    /// Namespaces whose labels match; absent or empty selects all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Anchored globs (`*`, `?`) of namespace names never selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<String>,
    /// ServiceAccount names; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Where the name reaches pods.
    #[serde(default)]
    pub injection: Injection,
}

/// `status` of a `ClusterPullSecret`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPullSecretStatus {
    /// `Ready` and `SourceValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Copies in place and current.
    #[serde(default)]
    pub namespaces: i64,
    /// `namespace/name` of the source (for the printer column).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Namespaces where a Secret of the same name that the operator does not own blocks the copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A `ClusterPullSecret`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ClusterPullSecret {
    /// Standard metadata.
    pub metadata: ObjectMeta,
    /// What to propagate where.
    pub spec: ClusterPullSecretSpec,
    /// What the operator did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterPullSecretStatus>,
}

impl kube::Resource for ClusterPullSecret {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Labels every copy of `cr`'s source carries.
pub fn copy_labels(cr: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (OWNER_LABEL.to_string(), cr.to_string()),
    ])
}

/// The label selector of the operator's copies.
pub fn copies_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

fn label_selector_schema() -> Value {
    json!({
        "type": "object",
        "description": "A label query over namespaces; absent or empty selects every namespace.",
        "properties": {
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
            "matchExpressions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string"},
                        "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                        "values": {"type": "array", "items": {"type": "string"}}
                    }
                }
            }
        }
    })
}

/// The CustomResourceDefinition of `ClusterPullSecret`, as the API server takes it.
pub fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "plural": PLURAL,
                "singular": "clusterpullsecret",
                "kind": KIND,
                "listKind": "ClusterPullSecretList",
                "shortNames": ["cps"]
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Source", "type": "string", "description": "namespace/name of the source Secret",
                     "jsonPath": ".status.source"},
                    {"name": "Namespaces", "type": "integer", "description": "copies in place", "jsonPath": ".status.namespaces"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "Copies one pull secret into selected namespaces and gets its name onto their pods.",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": status_schema()
                    }
                }}
            }]
        }
    })
}

fn spec_schema() -> Value {
    json!({
        "type": "object",
        "required": ["secretRef"],
        "properties": {
            "secretRef": {
                "type": "object",
                "description": "The source Secret (type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg).",
                "required": ["namespace", "name"],
                "properties": {
                    "namespace": {"type": "string", "minLength": 1},
                    "name": {"type": "string", "minLength": 1}
                }
            },
            "namespaceSelector": label_selector_schema(),
            "excludeNamespaces": {
                "type": "array",
                "description": "Anchored globs (* and ?) of namespaces never selected.",
                "items": {"type": "string"}
            },
            "serviceAccounts": {
                "type": "array",
                "description": "ServiceAccount names whose pods get the secret; empty means all.",
                "items": {"type": "string"}
            },
            "injection": {
                "type": "string",
                "enum": ["Admission", "ServiceAccount", "Both"],
                "default": "Admission"
            }
        }
    })
}

fn status_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "namespaces": {"type": "integer"},
            "source": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "conflicts": {"type": "array", "items": {"type": "string"}},
            "conditions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "status"],
                    "properties": {
                        "type": {"type": "string"},
                        "status": {"type": "string"},
                        "reason": {"type": "string"},
                        "message": {"type": "string"},
                        "observedGeneration": {"type": "integer"},
                        "lastTransitionTime": {"type": "string", "format": "date-time"}
                    }
                }
            }
        }
    })
}
