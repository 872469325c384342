//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`), after k8s.io/apiextensions-apiserver:
//!
//! - the [`Registry`] of served custom resources: rebuilt by [`sync`] from the stored CRDs at
//!   start, after every CRD write of this server, and on every CRD change another server makes
//!   ([`watch_crds`]); each served version is an interned, leaked [`Resource`] (at most one per
//!   distinct set of names, so the leak is bounded by the CRD versions ever defined);
//! - CRD defaulting and validation (`pkg/apis/apiextensions/v1/defaults.go`,
//!   `pkg/apis/apiextensions/validation/validation.go`) with the structural schema check of
//!   [`crate::crd_schema`];
//! - the CRD status (`pkg/controller/status/naming_controller.go`,
//!   `pkg/controller/establish/establishing_controller.go`): `acceptedNames`, `NamesAccepted`,
//!   `Established`, `storedVersions`;
//! - custom resources (`pkg/registry/customresource/strategy.go`, `status_strategy.go`,
//!   `etcd.go`, `customresource_handler.go`): prune, drop nulls, default, validate; `status`
//!   split; `generation`; `scale`; storage in the storage version (conversion `None`: only
//!   `apiVersion` changes); Table output (`tableconvertor/tableconvertor.go`);
//! - CRD deletion (`pkg/registry/customresourcedefinition/etcd.go` `REST.Delete`,
//!   `pkg/controller/finalizer/crd_finalizer.go`): [`begin_deletion`] and
//!   [`crate::crd_finalizer`]; creates are refused while a CRD is terminating;
//! - discovery of the established CRDs' served versions
//!   (`customresource_discovery_controller.go`);
//! - [`openapi_schemas`]: the schemas of the served versions, for OpenAPI publishing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::{json, Value};

use crate::crd_schema;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// The group of CRDs.
pub const GROUP: &str = "apiextensions.k8s.io";

/// The CRD resource.
pub fn crd_resource() -> &'static Resource {
    resources::find(GROUP, "v1", "customresourcedefinitions").expect("crd resource")
}

/// Whether `r` is the CRD resource itself.
pub fn is_crd(r: &Resource) -> bool {
    r.group == GROUP && r.plural == "customresourcedefinitions"
}

/// One served version of a custom resource.
#[derive(Debug)]
pub struct Served {
    /// The served resource.
    pub r: &'static Resource,
    /// `<plural>.<group>`.
    pub crd_name: String,
    /// The version's `openAPIV3Schema`.
    pub schema: Value,
    /// The storage version's `apiVersion` (`group/version`).
    pub storage_api_version: String,
    /// The storage version's schema (reads prune and default with it).
    pub storage_schema: Value,
    /// `status` subresource enabled.
    pub status: bool,
    /// `scale` subresource paths: spec replicas, status replicas, label selector.
    pub scale: Option<(String, String, Option<String>)>,
    /// `additionalPrinterColumns` (defaulted to the Age column).
    pub columns: Vec<Value>,
    /// What field selectors select by: `metadata.*` and the version's `selectableFields`.
    pub fields: crate::fieldselect::FieldSet,
    /// The `Warning` of a deprecated version.
    pub deprecation: Option<String>,
    /// The CRD's `Terminating` condition is true: its instances are being deleted and creates
    /// are refused ([`refuse_create_while_terminating`]).
    pub terminating: bool,
}

/// One schema of a served CRD version, for OpenAPI.
#[derive(Debug, Clone, PartialEq)]
pub struct CrdSchema {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `openAPIV3Schema`.
    pub schema: Value,
}

#[derive(Default)]
struct Inner {
    /// (group, version, plural) → served version.
    served: HashMap<(String, String, String), Arc<Served>>,
    /// group → versions in discovery order (kube-aware order, the preferred first).
    groups: BTreeMap<String, Vec<String>>,
    /// (group, plural) → the served versions in the CRD's `spec.versions` order.
    spec_order: HashMap<(String, String), Vec<String>>,
}

/// The custom resources this server serves.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
    sync: tokio::sync::Mutex<()>,
    listener: RwLock<Option<Listener>>,
    /// CRD name → what its served storage was made from (UID, spec, accepted names) and the
    /// signal that ends the watches started on it ([`Registry::retirement`]).
    retire: std::sync::Mutex<HashMap<String, (Value, tokio::sync::watch::Sender<bool>)>>,
}

/// Told the served versions whenever they change (the OpenAPI documents follow them).
type Listener = Arc<dyn Fn(&[Arc<Served>]) + Send + Sync>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The served resource of `group/version` `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        self.read()
            .served
            .get(&(group.into(), version.into(), plural.into()))
            .map(|s| s.r)
    }

    /// The served version behind `r`, if `r` is a custom resource.
    pub fn served(&self, r: &Resource) -> Option<Arc<Served>> {
        if r.group.is_empty() || !r.group.contains('.') || resources::is_builtin(r) {
            return None;
        }
        self.read()
            .served
            .get(&(r.group.into(), r.version.into(), r.plural.into()))
            .filter(|s| std::ptr::eq(s.r, r) || s.r.kind == r.kind)
            .cloned()
    }

    /// Every served version.
    pub fn all(&self) -> Vec<Arc<Served>> {
        let mut v: Vec<Arc<Served>> = self.read().served.values().cloned().collect();
        v.sort_by(|a, b| {
            (a.r.group, a.r.plural, a.r.version).cmp(&(b.r.group, b.r.plural, b.r.version))
        });
        v
    }

    /// One served resource of each CRD (the storage version when served), for walking all
    /// stored objects: the storage keys do not depend on the version.
    pub fn storage_resources(&self) -> Vec<&'static Resource> {
        let mut all = self.all();
        all.sort_by_key(|s| s.r.api_version() != s.storage_api_version);
        let mut seen = HashSet::new();
        all.into_iter()
            .filter(|s| seen.insert(s.crd_name.clone()))
            .map(|s| s.r)
            .collect()
    }

    /// The served versions of `group`'s `plural` in the CRD's `spec.versions` order (the
    /// order kube-apiserver's crdHandler registers them as equivalent resources).
    pub fn versions_in_spec_order(&self, group: &str, plural: &str) -> Vec<String> {
        self.read()
            .spec_order
            .get(&(group.to_string(), plural.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The groups, each with its versions (the preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.read()
            .groups
            .iter()
            .map(|(g, v)| (g.clone(), v.clone()))
            .collect()
    }

    /// A signal that turns `true` once the CRD named `crd_name` changes what its resources are
    /// served from (its UID, spec or accepted names) or goes. kube-apiserver's crdHandler then
    /// replaces the CRD's storage (`updateCustomResourceDefinition` → `removeStorage_locked`),
    /// which ends the watches open on it; clients watch again and meet the new definition
    /// (its schema, its selectable fields). Take it before reading the served version it
    /// guards.
    pub fn retirement(&self, crd_name: &str) -> tokio::sync::watch::Receiver<bool> {
        let mut m = self.retire.lock().unwrap_or_else(|e| e.into_inner());
        // a CRD served before its first retirement check has no entry yet: one of no known
        // identity, which that check retires (at worst a watch ends at once)
        m.entry(crd_name.to_string())
            .or_insert_with(|| (Value::Null, tokio::sync::watch::channel(false).0))
            .1
            .subscribe()
    }

    /// Retires the CRDs of `crds` whose identity changed since the last call, and those gone.
    fn retire_changed(&self, crds: &[Value]) {
        let mut m = self.retire.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = HashSet::new();
        for crd in crds {
            let name = s(crd, "/metadata/name");
            present.insert(name);
            let id = json!([
                crd.pointer("/metadata/uid"),
                crd.get("spec"),
                crd.pointer("/status/acceptedNames")
            ]);
            match m.get(name) {
                Some((old, _)) if *old == id => {}
                _ => {
                    if let Some((_, tx)) =
                        m.insert(name.to_string(), (id, tokio::sync::watch::channel(false).0))
                    {
                        tx.send_replace(true);
                    }
                }
            }
        }
        m.retain(|name, (_, tx)| {
            let keep = present.contains(name.as_str());
            if !keep {
                tx.send_replace(true);
            }
            keep
        });
    }

    fn replace(&self, inner: Inner) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = inner;
        self.notify();
    }

    /// Calls `f` with the served versions now and after every change.
    pub fn on_change(&self, f: impl Fn(&[Arc<Served>]) + Send + Sync + 'static) {
        *self.listener.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f));
        self.notify();
    }

    fn notify(&self) {
        let l = self
            .listener
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(l) = l {
            l(&self.all());
        }
    }
}

/// Interned resources: one leaked [`Resource`] per distinct definition.
fn intern(r: Resource) -> &'static Resource {
    type Key = (
        String,
        String,
        String,
        String,
        String,
        bool,
        Vec<String>,
        Vec<String>,
        Vec<String>,
    );
    static TABLE: OnceLock<Mutex<HashMap<Key, &'static Resource>>> = OnceLock::new();
    let key: Key = (
        r.group.into(),
        r.version.into(),
        r.kind.into(),
        r.plural.into(),
        r.singular.into(),
        r.namespaced,
        r.short_names.iter().map(|s| s.to_string()).collect(),
        r.subresources.iter().map(|s| s.to_string()).collect(),
        r.categories.iter().map(|s| s.to_string()).collect(),
    );
    let mut t = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    t.entry(key).or_insert_with(|| Box::leak(Box::new(r)))
}

fn leak_str(s: &str) -> &'static str {
    static STRS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut t = STRS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(x) = t.get(s) {
        return x;
    }
    let x: &'static str = Box::leak(s.to_string().into_boxed_str());
    t.insert(x);
    x
}

fn leak_list(v: &[String]) -> &'static [&'static str] {
    let items: Vec<&'static str> = v.iter().map(|s| leak_str(s)).collect();
    static LISTS: OnceLock<Mutex<HashSet<&'static [&'static str]>>> = OnceLock::new();
    let mut t = LISTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(x) = t.get(items.as_slice()) {
        return x;
    }
    let x: &'static [&'static str] = Box::leak(items.into_boxed_slice());
    t.insert(x);
    x
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `version.CompareKubeAwareVersionStrings` order: GA before beta before alpha, higher major
/// first, then higher minor; other strings last, alphabetically.
pub fn kube_version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (kind, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        let minor: u32 = n.parse().ok()?;
        Some((kind, major, minor))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// v1 defaulting (`SetDefaults_CustomResourceDefinition*`): singular, listKind, conversion, the
/// Age printer column is added at serving time.
pub fn default_crd(obj: &mut Value) {
    let kind = s(obj, "/spec/names/kind").to_string();
    if let Some(names) = obj
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        if names
            .get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && !kind.is_empty()
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && !kind.is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        if !spec.get("conversion").is_some_and(Value::is_object) {
            spec.insert("conversion".into(), json!({"strategy": "None"}));
        }
    }
}

/// Warns about what a CRD asks for that this server does not do: CEL rules
/// (`x-kubernetes-validations`) are stored but not evaluated.
pub fn warn_unsupported(obj: &Value) {
    fn has_cel(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                m.contains_key("x-kubernetes-validations") || m.values().any(has_cel)
            }
            Value::Array(a) => a.iter().any(has_cel),
            _ => false,
        }
    }
    for (i, v) in obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if v.pointer("/schema/openAPIV3Schema").is_some_and(has_cel) {
            crate::warnings::add(format!(
                "spec.versions[{i}].schema.openAPIV3Schema: x-kubernetes-validations rules are not evaluated by this API server"
            ));
        }
    }
}

fn is_dns1035_label(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// `IsDNS1035Label`'s shape message.
pub(crate) const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1123_subdomain(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// `MaxSelectableFields`.
const MAX_SELECTABLE_FIELDS: usize = 8;

/// Selectable fields (`ValidateCustomResourceSelectableFields` in apiextensions-apiserver
/// 1.32's `pkg/apis/apiextensions/validation/validation.go`) at `fp` (a version's
/// `selectableFields`, or `spec.selectableFields` when every version declares the same),
/// resolved in `schema`; `no_schema` is the message when there is none to resolve them in.
fn validate_selectable_fields(
    fields: &[Value],
    schema: Option<&Value>,
    fp: &str,
    no_schema: &str,
    c: &mut Vec<Cause>,
) {
    if fields.is_empty() {
        return;
    }
    let Some(schema) = schema else {
        c.push(Cause::invalid(fp, q(""), no_schema));
        return;
    };
    let mut unique: Vec<String> = vec![];
    for (i, f) in fields.iter().enumerate() {
        let jp = format!("{fp}[{i}].jsonPath");
        let json_path = s(f, "/jsonPath");
        if json_path.is_empty() {
            c.push(Cause::required(jp, ""));
            continue;
        }
        let (path, found) = match valid_field_path(json_path, schema) {
            Ok(x) => x,
            Err(e) => {
                c.push(Cause::invalid(
                    jp,
                    q(json_path),
                    format!("is an invalid path: {e}"),
                ));
                continue;
            }
        };
        if path.first().map(String::as_str) == Some("metadata") {
            c.push(Cause::invalid(
                jp.clone(),
                q(json_path),
                "must not point to fields in metadata",
            ));
        }
        if !found.is_some_and(|f| matches!(s(f, "/type"), "string" | "boolean" | "integer")) {
            c.push(Cause::invalid(
                jp.clone(),
                q(json_path),
                "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
            ));
        }
        let key = path.concat();
        if unique.contains(&key) {
            c.push(Cause::duplicate(jp, q(json_path)));
        } else {
            unique.push(key);
        }
    }
    if unique.len() > MAX_SELECTABLE_FIELDS {
        c.push(Cause::too_many(
            fp,
            unique.len(),
            MAX_SELECTABLE_FIELDS as u64,
        ));
    }
}

/// `cel.ValidFieldPath` without array notation: the path's elements as `field.Path` prints them
/// (`spec`, `.color`, `[key]` of a map) and the schema it points to (`None` under a map whose
/// `additionalProperties` is not a schema), or why it is not a path of `schema`.
fn valid_field_path<'a>(
    json_path: &str,
    schema: &'a Value,
) -> Result<(Vec<String>, Option<&'a Value>), String> {
    // the scanner: '.', '[' and ']' are tokens of their own, a token that starts with a single
    // quote runs to the closing quote whatever it holds, other text (a quote in it too) runs up
    // to the next delimiter
    let b = json_path.as_bytes();
    let mut toks: Vec<&str> = vec![];
    let mut i = 0;
    while i < b.len() {
        let end = if b[i] == b'\'' {
            (i + 1..b.len())
                .find(|&j| b[j] == b'\'' && b[j - 1] != b'\\')
                .map_or(b.len(), |j| j + 1)
        } else if matches!(b[i], b'.' | b'[' | b']') {
            i + 1
        } else {
            (i..b.len())
                .find(|&j| matches!(b[j], b'.' | b'[' | b']'))
                .unwrap_or(b.len())
        };
        toks.push(&json_path[i..end]);
        i = end;
    }
    let mut path: Vec<String> = vec![];
    let mut cur = Some(schema);
    let mut toks = toks.into_iter();
    while let Some(tok) = toks.next() {
        match tok {
            "[" => return Err("array notation is not allowed".into()),
            "." => {
                let name = toks
                    .next()
                    .ok_or_else(|| "unexpected end of JSON path".to_string())?;
                let invalid = || "does not refer to a valid field".to_string();
                let sc = cur.ok_or_else(invalid)?;
                if let Some(props) = sc.get("properties").and_then(Value::as_object) {
                    cur = Some(props.get(name).ok_or_else(invalid)?);
                    path.push(if path.is_empty() {
                        name.to_string()
                    } else {
                        format!(".{name}")
                    });
                } else if let Some(ap) = sc.get("additionalProperties") {
                    cur = ap.is_object().then_some(ap);
                    path.push(format!("[{name}]"));
                } else {
                    return Err(invalid());
                }
            }
            other => return Err(format!("expected [ or . but got: {other}")),
        }
    }
    Ok((path, cur))
}

/// What field selectors of a served version select by (`prepareSelectableFields`: each
/// `jsonPath` without its leading dot).
fn selectable_fields(v: &Value) -> crate::fieldselect::FieldSet {
    crate::fieldselect::FieldSet::Custom(
        v.get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| {
                let jp = s(f, "/jsonPath");
                jp.strip_prefix('.').unwrap_or(jp).to_string()
            })
            .collect(),
    )
}

fn q(v: &str) -> String {
    crd_schema::go_value(&Value::String(v.into()))
}

/// `ValidateCustomResourceDefinition` (and `…Update` when `old` is given).
pub fn validate_crd(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = vec![];
    let name = s(obj, "/metadata/name");
    let group = s(obj, "/spec/group");
    let plural = s(obj, "/spec/names/plural");
    if name != format!("{plural}.{group}") {
        c.push(Cause::invalid(
            "metadata.name",
            q(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        c.push(Cause::required("spec.group", ""));
    } else if !is_dns1123_subdomain(group) {
        c.push(Cause::invalid("spec.group", q(group), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
    } else if !group.contains('.') {
        c.push(Cause::invalid(
            "spec.group",
            q(group),
            "should be a domain with at least one dot",
        ));
    } else if resources::GROUPS.iter().any(|(g, _)| *g == group) {
        c.push(Cause::invalid(
            "spec.group",
            q(group),
            "is served by the API server itself",
        ));
    } else if (group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io"))
        && obj
            .pointer("/metadata/annotations/api-approved.kubernetes.io")
            .is_none()
    {
        c.push(Cause::required(
            "metadata.annotations[api-approved.kubernetes.io]",
            "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        ));
    }
    let scope = s(obj, "/spec/scope");
    if scope.is_empty() {
        c.push(Cause::required("spec.scope", ""));
    } else if scope != "Cluster" && scope != "Namespaced" {
        c.push(Cause::not_supported(
            "spec.scope",
            q(scope),
            &["Cluster", "Namespaced"],
        ));
    }
    // versions (validateCustomResourceDefinitionSpec). A v1 CRD is validated in the internal
    // form its conversion gives (`Convert_v1_CustomResourceDefinitionSpec_To_apiextensions_…`):
    // a schema, subresources, printer columns or selectable fields that every version has
    // alike move to `spec` and are validated there once (`spec.validation.openAPIV3Schema`,
    // `spec.subresources`, `spec.additionalPrinterColumns`, `spec.selectableFields`)
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
    let vs: &[Value] = versions.map_or(&[], Vec::as_slice);
    // `Semantic.DeepEqual` of the decoded Go structs: an absent field is nil, and a nil list
    // equals an empty one
    let field = |v: &'_ Value, k: &str| v.get(k).filter(|x| !x.is_null()).cloned();
    let list = |v: &'_ Value, k: &str| match v.get(k) {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![],
    };
    let alike = |f: &dyn Fn(&Value) -> Option<Value>| {
        let norm = |v: &Value| f(v).map(go_zero_values_dropped);
        vs.first()
            .is_some_and(|v0| vs.iter().all(|v| norm(v) == norm(v0)))
    };
    let top_schema = alike(&|v| field(v, "schema"));
    let top_subresources = alike(&|v| field(v, "subresources"));
    let top_columns = alike(&|v| Some(Value::Array(list(v, "additionalPrinterColumns"))));
    let top_fields = alike(&|v| Some(Value::Array(list(v, "selectableFields"))));
    let v0 = vs.first();
    let spec_schema = v0
        .filter(|_| top_schema)
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"));
    let spec_subresources = v0
        .filter(|_| top_subresources)
        .and_then(|v| v.get("subresources"));
    match versions {
        None => c.push(Cause::required("spec.versions", "")),
        Some(vs) if vs.is_empty() => c.push(Cause::invalid(
            "spec.versions",
            "[]",
            "must have exactly one version marked as storage version",
        )),
        Some(vs) => {
            // a schema is required of every version when none is common to all
            if spec_schema.is_none() {
                for (i, v) in vs.iter().enumerate() {
                    if v.pointer("/schema/openAPIV3Schema").is_none() {
                        c.push(Cause::required(
                            format!("spec.versions[{i}].schema.openAPIV3Schema"),
                            "schemas are required",
                        ));
                    }
                }
            }
            let mut seen = HashSet::new();
            let mut storage = 0;
            for (i, v) in vs.iter().enumerate() {
                let p = format!("spec.versions[{i}]");
                let vname = s(v, "/name");
                if vname.is_empty() {
                    c.push(Cause::required(format!("{p}.name"), ""));
                } else if !is_dns1035_label(vname) {
                    c.push(Cause::invalid(format!("{p}.name"), q(vname), DNS1035_MSG));
                }
                if !seen.insert(vname.to_string()) {
                    c.push(Cause::invalid(
                        "spec.versions",
                        format!("[{}]", vs.len()),
                        "must contain unique version names",
                    ));
                }
                if v.get("storage") == Some(&json!(true)) {
                    storage += 1;
                }
                // validateCustomResourceDefinitionVersion
                let subresources = if top_subresources {
                    spec_subresources
                } else {
                    v.get("subresources")
                };
                if !top_schema {
                    if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
                        let status = subresources.and_then(|x| x.get("status")).is_some();
                        validate_schema(
                            schema,
                            status,
                            &format!("{p}.schema.openAPIV3Schema"),
                            &mut c,
                        );
                    }
                }
                if !top_subresources {
                    validate_subresources(
                        v.get("subresources"),
                        &format!("{p}.subresources"),
                        &mut c,
                    );
                }
                if !top_columns {
                    validate_columns(
                        &list(v, "additionalPrinterColumns"),
                        &format!("{p}.additionalPrinterColumns"),
                        &mut c,
                    );
                }
                if !top_fields {
                    // a schema common to all versions is not the version's own
                    let schema = (!top_schema)
                        .then(|| v.pointer("/schema/openAPIV3Schema"))
                        .flatten();
                    validate_selectable_fields(
                        &list(v, "selectableFields"),
                        schema,
                        &format!("{p}.selectableFields"),
                        "selectableFields may only be set when version.schema.openAPIV3Schema is not included",
                        &mut c,
                    );
                }
            }
            if storage != 1 {
                c.push(Cause::invalid(
                    "spec.versions",
                    format!("[{}]", vs.len()),
                    "must have exactly one version marked as storage version",
                ));
            }
        }
    }
    // names (ValidateCustomResourceDefinitionNames)
    let names = [
        ("plural", plural.to_string()),
        ("singular", s(obj, "/spec/names/singular").to_string()),
        ("kind", s(obj, "/spec/names/kind").to_string()),
        ("listKind", s(obj, "/spec/names/listKind").to_string()),
    ];
    for (k, v) in &names {
        let path = format!("spec.names.{k}");
        if v.is_empty() {
            c.push(Cause::required(path, ""));
            continue;
        }
        match *k {
            "plural" | "singular" => {
                if !is_dns1035_label(v) {
                    c.push(Cause::invalid(path, q(v), DNS1035_MSG));
                }
            }
            _ => {
                if !is_dns1035_label(&v.to_lowercase()) {
                    c.push(Cause::invalid(
                        path,
                        q(v),
                        format!("may have mixed case, but should otherwise match: {DNS1035_MSG}"),
                    ));
                }
            }
        }
    }
    if !names[2].1.is_empty() && names[2].1 == names[3].1 {
        c.push(Cause::invalid(
            "spec.names.listKind",
            q(&names[3].1),
            "kind and listKind may not be the same",
        ));
    }
    for (i, sn) in strs(obj.pointer("/spec/names/shortNames"))
        .iter()
        .enumerate()
    {
        if !is_dns1035_label(sn) {
            c.push(Cause::invalid(
                format!("spec.names.shortNames[{i}]"),
                q(sn),
                DNS1035_MSG,
            ));
        }
    }
    for (i, cat) in strs(obj.pointer("/spec/names/categories"))
        .iter()
        .enumerate()
    {
        if !is_dns1035_label(cat) {
            c.push(Cause::invalid(
                format!("spec.names.categories[{i}]"),
                q(cat),
                DNS1035_MSG,
            ));
        }
    }
    // what every version has alike, validated once at `spec`
    if let Some(schema) = spec_schema {
        // hasAnyStatusEnabled
        let status = if top_subresources {
            spec_subresources.and_then(|x| x.get("status")).is_some()
        } else {
            vs.iter()
                .any(|v| v.pointer("/subresources/status").is_some())
        };
        validate_schema(schema, status, "spec.validation.openAPIV3Schema", &mut c);
    }
    if top_subresources {
        validate_subresources(spec_subresources, "spec.subresources", &mut c);
    }
    if let (true, Some(v0)) = (top_columns, v0) {
        validate_columns(
            &list(v0, "additionalPrinterColumns"),
            "spec.additionalPrinterColumns",
            &mut c,
        );
    }
    if let (true, Some(v0)) = (top_fields, v0) {
        validate_selectable_fields(
            &list(v0, "selectableFields"),
            spec_schema,
            "spec.selectableFields",
            "selectableFields may only be set when validations.schema is included",
            &mut c,
        );
    }
    // conversion: only None is served here
    let strategy = s(obj, "/spec/conversion/strategy");
    if !strategy.is_empty() && strategy != "None" {
        c.push(Cause::not_supported(
            "spec.conversion.strategy",
            q(strategy),
            &["None"],
        ));
    }
    if obj.pointer("/spec/preserveUnknownFields") == Some(&json!(true)) {
        c.push(Cause::invalid(
            "spec.preserveUnknownFields",
            "true",
            "must be false",
        ));
    }
    if let Some(old) = old {
        // ValidateCustomResourceDefinitionStoredVersions: a version objects may be stored in
        // stays until a storage migration removes it from status.storedVersions
        let names: Vec<&str> = versions
            .into_iter()
            .flatten()
            .map(|v| s(v, "/name"))
            .collect();
        for (i, sv) in strs(old.pointer("/status/storedVersions"))
            .iter()
            .enumerate()
        {
            if !names.contains(&sv.as_str()) {
                c.push(Cause::invalid(
                    format!("status.storedVersions[{i}]"),
                    q(sv),
                    format!("missing from spec.versions; {sv} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {sv} and removes {sv} from status.storedVersions"),
                ));
            }
        }
        for (p, ptr) in [("spec.scope", "/spec/scope"), ("spec.group", "/spec/group")] {
            if old.pointer(ptr) != obj.pointer(ptr) {
                c.push(Cause::invalid(p, q(s(obj, ptr)), "field is immutable"));
            }
        }
    }
    c
}

/// A schema at `sp` (a version's, or `spec.validation.openAPIV3Schema`): the root rules when
/// the status subresource is on, structural rules, then defaults when it is structural.
fn validate_schema(schema: &Value, status: bool, sp: &str, c: &mut Vec<Cause>) {
    if status {
        c.extend(status_root_rules(schema, sp));
    }
    let errs = crd_schema::validate_structural(schema, sp);
    if errs.is_empty() {
        crd_schema::validate_defaults(schema, sp, c);
    }
    c.extend(errs);
}

/// `ValidateCustomResourceDefinitionSubresources` at `p`.
fn validate_subresources(sub: Option<&Value>, p: &str, c: &mut Vec<Cause>) {
    let Some(sc) = sub.and_then(|x| x.get("scale")) else {
        return;
    };
    let sp = format!("{p}.scale");
    for (k, prefix) in [
        ("specReplicasPath", ".spec."),
        ("statusReplicasPath", ".status."),
    ] {
        let x = s(sc, &format!("/{k}"));
        if x.is_empty() {
            c.push(Cause::required(format!("{sp}.{k}"), ""));
        } else if !x.starts_with(prefix) || !simple_path(x) {
            let under = prefix.trim_end_matches('.');
            c.push(Cause::invalid(
                format!("{sp}.{k}"),
                q(x),
                format!("should be a json path under {under}"),
            ));
        }
    }
    let ls = s(sc, "/labelSelectorPath");
    if !ls.is_empty()
        && (!simple_path(ls) || !(ls.starts_with(".spec.") || ls.starts_with(".status.")))
    {
        c.push(Cause::invalid(
            format!("{sp}.labelSelectorPath"),
            q(ls),
            "should be a json path under either .spec or .status",
        ));
    }
}

/// `ValidateCustomResourceColumnDefinition` for each column of `cols` at `p[j]`.
fn validate_columns(cols: &[Value], p: &str, c: &mut Vec<Cause>) {
    for (j, col) in cols.iter().enumerate() {
        let cp = format!("{p}[{j}]");
        if s(col, "/name").is_empty() {
            c.push(Cause::required(format!("{cp}.name"), ""));
        }
        let t = s(col, "/type");
        const TYPES: &str = "boolean,date,integer,number,string";
        if t.is_empty() {
            c.push(Cause::required(
                format!("{cp}.type"),
                format!("must be one of {TYPES}"),
            ));
        } else if !TYPES.split(',').any(|x| x == t) {
            c.push(Cause::invalid(
                format!("{cp}.type"),
                q(t),
                format!("must be one of {TYPES}"),
            ));
        }
        if s(col, "/jsonPath").is_empty() {
            c.push(Cause::required(format!("{cp}.JSONPath"), ""));
        } else if parse_jsonpath(s(col, "/jsonPath")).is_none() {
            c.push(Cause::invalid(
                format!("{cp}.JSONPath"),
                q(s(col, "/jsonPath")),
                "must be a simple json path",
            ));
        }
    }
}

/// The root fields a schema may have when the status subresource is enabled
/// (`allowedFieldsAtRootSchema`), by their JSON names.
const ROOT_FIELDS_WITH_STATUS: &[(&str, &str)] = &[
    ("description", "Description"),
    ("type", "Type"),
    ("format", "Format"),
    ("title", "Title"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "ExclusiveMaximum"),
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"),
    ("maxLength", "MaxLength"),
    ("minLength", "MinLength"),
    ("pattern", "Pattern"),
    ("maxItems", "MaxItems"),
    ("minItems", "MinItems"),
    ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"),
    ("required", "Required"),
    ("items", "Items"),
    ("properties", "Properties"),
    ("externalDocs", "ExternalDocs"),
    ("example", "Example"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "XPreserveUnknownFields",
    ),
    ("x-kubernetes-validations", "XValidations"),
];

/// With the status subresource, only some fields may be set at the root of the schema, so that
/// `properties[status]` carries all of the status validation
/// (`ValidateCustomResourceDefinitionValidation`).
fn status_root_rules(schema: &Value, path: &str) -> Vec<Cause> {
    let Some(m) = schema.as_object() else {
        return vec![];
    };
    let zero = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    };
    for (k, v) in m {
        if zero(v) {
            continue;
        }
        if k == "type" {
            if v != "object" {
                return vec![Cause::invalid(
                    format!("{path}.type"),
                    crd_schema::go_value(v),
                    "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                )];
            }
            continue;
        }
        if !ROOT_FIELDS_WITH_STATUS.iter().any(|(j, _)| j == k) {
            let names: Vec<&str> = ROOT_FIELDS_WITH_STATUS.iter().map(|(_, g)| *g).collect();
            return vec![Cause::invalid(
                path,
                q(&format!("{k}: {v}")),
                format!(
                    "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                    names.join(" ")
                ),
            )];
        }
    }
    vec![]
}

/// `validateSimpleJSONPath`: `.a.b` without brackets.
fn simple_path(p: &str) -> bool {
    p.starts_with('.') && !p.contains('[') && p[1..].split('.').all(|x| !x.is_empty())
}

fn condition(t: &str, status: bool, reason: &str, message: &str, old: &Value, now: &str) -> Value {
    let st = if status { "True" } else { "False" };
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
        });
    let ltt = match prev {
        Some(p) if p.get("status").and_then(Value::as_str) == Some(st) => {
            p.get("lastTransitionTime").cloned().unwrap_or(json!(now))
        }
        _ => json!(now),
    };
    json!({"type": t, "status": st, "lastTransitionTime": ltt, "reason": reason, "message": message})
}

/// Puts `cond` into `status.conditions` in place of the condition of its type (appended when
/// there is none). `cond` carries its `lastTransitionTime` (see [`condition`]).
pub(crate) fn set_condition(status: &mut Value, cond: Value) {
    if !status.is_object() {
        *status = json!({});
    }
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(cs) = status["conditions"].as_array_mut() else {
        return;
    };
    match cs.iter_mut().find(|c| c.get("type") == cond.get("type")) {
        Some(c) => *c = cond,
        None => cs.push(cond),
    }
}

/// `SetCRDCondition` (apiextensions `helpers.go`) on a whole CRD: the condition of type `t`
/// becomes `status`/`reason`/`message`; its `lastTransitionTime` changes only with its status.
pub(crate) fn set_crd_condition(
    crd: &mut Value,
    t: &str,
    status: bool,
    reason: &str,
    message: &str,
) {
    let cond = condition(t, status, reason, message, crd, &crate::objects::now());
    set_condition(&mut crd["status"], cond);
}

/// The CRD's condition `t` is `True` (`IsCRDConditionTrue`).
pub(crate) fn condition_true(crd: &Value, t: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(t)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The statuses of all CRDs (NamingConditionController, EstablishingController): CRDs are
/// considered in creation order, and a name another CRD of the group accepted first conflicts.
fn statuses(crds: &[Value]) -> Vec<Value> {
    let mut order: Vec<usize> = (0..crds.len()).collect();
    order.sort_by(|a, b| {
        let k = |i: &usize| {
            (
                s(&crds[*i], "/metadata/creationTimestamp").to_string(),
                s(&crds[*i], "/metadata/name").to_string(),
            )
        };
        k(a).cmp(&k(b))
    });
    let mut used_res: HashMap<String, HashSet<String>> = HashMap::new();
    let mut used_kinds: HashMap<String, HashSet<String>> = HashMap::new();
    let now = crate::objects::now();
    let mut out = vec![Value::Null; crds.len()];
    for i in order {
        let crd = &crds[i];
        let group = s(crd, "/spec/group").to_string();
        let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let res = used_res.entry(group.clone()).or_default();
        let kinds = used_kinds.entry(group.clone()).or_default();
        let plural = s(&names, "/plural").to_string();
        let singular = s(&names, "/singular").to_string();
        let kind = s(&names, "/kind").to_string();
        let list_kind = s(&names, "/listKind").to_string();
        let shorts = strs(names.get("shortNames"));
        let conflict = if res.contains(&plural) {
            Some(("PluralConflict", format!("{plural:?} is already in use")))
        } else if res.contains(&singular) {
            Some((
                "SingularConflict",
                format!("{singular:?} is already in use"),
            ))
        } else if let Some(sn) = shorts.iter().find(|x| res.contains(*x)) {
            Some(("ShortNamesConflict", format!("{sn:?} is already in use")))
        } else if kinds.contains(&kind) {
            Some(("KindConflict", format!("{kind:?} is already in use")))
        } else if kinds.contains(&list_kind) {
            Some((
                "ListKindConflict",
                format!("{list_kind:?} is already in use"),
            ))
        } else {
            None
        };
        let mut status = crd
            .get("status")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or(json!({}));
        let (names_cond, est_cond) = match &conflict {
            None => {
                res.insert(plural.clone());
                res.insert(singular.clone());
                res.extend(shorts.iter().cloned());
                kinds.insert(kind.clone());
                kinds.insert(list_kind.clone());
                status["acceptedNames"] = names.clone();
                (
                    condition(
                        "NamesAccepted",
                        true,
                        "NoConflicts",
                        "no conflicts found",
                        crd,
                        &now,
                    ),
                    condition(
                        "Established",
                        true,
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                        crd,
                        &now,
                    ),
                )
            }
            Some((reason, msg)) => {
                if status.get("acceptedNames").is_none() {
                    status["acceptedNames"] = json!({"plural": "", "kind": ""});
                }
                (
                    condition("NamesAccepted", false, reason, msg, crd, &now),
                    condition(
                        "Established",
                        false,
                        "NotAccepted",
                        "not all names are accepted",
                        crd,
                        &now,
                    ),
                )
            }
        };
        // the naming and establishing controllers set only their own conditions (the
        // finalizer's `Terminating` stays)
        set_condition(&mut status, names_cond);
        set_condition(&mut status, est_cond);
        let mut stored = strs(status.get("storedVersions"));
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("storage") == Some(&json!(true)) {
                let n = s(v, "/name").to_string();
                if !stored.contains(&n) {
                    stored.push(n);
                }
            }
        }
        status["storedVersions"] = json!(stored);
        out[i] = status;
    }
    out
}

pub(crate) fn established(crd: &Value) -> bool {
    condition_true(crd, "Established")
}

fn build(crds: &[Value]) -> Inner {
    let mut inner = Inner::default();
    for crd in crds.iter().filter(|c| established(c)) {
        let group = s(crd, "/spec/group");
        let names = crd
            .pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or(json!({}));
        let namespaced = s(crd, "/spec/scope") == "Namespaced";
        let terminating = condition_true(crd, "Terminating");
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(storage) = versions
            .iter()
            .find(|v| v.get("storage") == Some(&json!(true)))
        else {
            continue;
        };
        let storage_api_version = format!("{group}/{}", s(storage, "/name"));
        // numbers as Go holds them once decoded (a `default: 1.0` is the integer 1), so what a
        // default fills in is stored and returned as kube-apiserver returns it
        let schema_of = |v: &Value| {
            let mut s = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or(json!({}));
            whole_numbers_as_integers(&mut s);
            s
        };
        let storage_schema = schema_of(storage);
        let mut served_versions = vec![];
        for v in versions
            .iter()
            .filter(|v| v.get("served") == Some(&json!(true)))
        {
            let version = s(v, "/name");
            let mut subs = vec![];
            let status = v.pointer("/subresources/status").is_some();
            if status {
                subs.push("status".to_string());
            }
            let scale = v.pointer("/subresources/scale").map(|sc| {
                (
                    s(sc, "/specReplicasPath").to_string(),
                    s(sc, "/statusReplicasPath").to_string(),
                    sc.get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                )
            });
            if scale.is_some() {
                subs.push("scale".to_string());
            }
            let r = intern(Resource {
                group: leak_str(group),
                version: leak_str(version),
                kind: leak_str(s(&names, "/kind")),
                plural: leak_str(s(&names, "/plural")),
                singular: leak_str(s(&names, "/singular")),
                namespaced,
                short_names: leak_list(&strs(names.get("shortNames"))),
                subresources: leak_list(&subs),
                categories: leak_list(&strs(names.get("categories"))),
            });
            let mut columns: Vec<Value> = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if columns.is_empty() {
                columns.push(json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}));
            }
            let deprecation = (v.get("deprecated") == Some(&json!(true))).then(|| {
                match v.get("deprecationWarning").and_then(Value::as_str) {
                    Some(w) => w.to_string(),
                    None => default_deprecation_warning(version, group, r.kind, &versions),
                }
            });
            inner.served.insert(
                (group.into(), version.into(), r.plural.into()),
                Arc::new(Served {
                    r,
                    crd_name: s(crd, "/metadata/name").to_string(),
                    schema: schema_of(v),
                    storage_api_version: storage_api_version.clone(),
                    storage_schema: storage_schema.clone(),
                    status,
                    scale,
                    columns,
                    fields: selectable_fields(v),
                    deprecation,
                    terminating,
                }),
            );
            served_versions.push(version.to_string());
        }
        let gv = inner.groups.entry(group.to_string()).or_default();
        for v in &served_versions {
            if !gv.contains(v) {
                gv.push(v.clone());
            }
        }
        inner.spec_order.insert(
            (group.to_string(), s(&names, "/plural").to_string()),
            served_versions,
        );
    }
    for v in inner.groups.values_mut() {
        v.sort_by(|a, b| kube_version_order(a, b));
    }
    inner
}

/// `defaultDeprecationWarning`: `G/V Kind is deprecated`, and the most preferred served version
/// newer than it that is not deprecated.
fn default_deprecation_warning(
    version: &str,
    group: &str,
    kind: &str,
    versions: &[Value],
) -> String {
    let mut msg = format!("{group}/{version} {kind} is deprecated");
    let mut newer: Vec<&str> = versions
        .iter()
        .filter(|v| {
            v.get("served") == Some(&json!(true)) && v.get("deprecated") != Some(&json!(true))
        })
        .map(|v| s(v, "/name"))
        .filter(|n| kube_version_order(n, version) == std::cmp::Ordering::Less)
        .collect();
    newer.sort_by(|a, b| kube_version_order(a, b));
    if let Some(n) = newer.first() {
        msg.push_str(&format!("; use {group}/{n} {kind}"));
    }
    msg
}

/// Reloads the served custom resources from the stored CRDs, writing the CRDs' status where
/// it changed (names accepted, established, stored versions).
pub async fn sync(objects: &Objects) -> ApiResult<()> {
    sync_without(objects, None).await
}

/// As [`sync`], serving nothing of the CRD named `skip` (about to be removed from storage).
pub(crate) async fn sync_without(objects: &Objects, skip: Option<&str>) -> ApiResult<()> {
    let reg = objects.crds();
    let _guard = reg.sync.lock().await;
    let r = crd_resource();
    let (mut crds, _, _) = objects.list(r, None, &ListOptions::default()).await?;
    if let Some(name) = skip {
        crds.retain(|c| s(c, "/metadata/name") != name);
    }
    let wanted = statuses(&crds);
    for (crd, st) in crds.iter_mut().zip(wanted) {
        if crd.get("status") == Some(&st) {
            continue;
        }
        let rv: u64 = s(crd, "/metadata/resourceVersion").parse().unwrap_or(0);
        let mut next = crd.clone();
        next["status"] = st;
        if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let key = r.key("", s(crd, "/metadata/name"));
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        // a concurrent writer wins; the next sync (its write, the CRD watch) catches up
        match objects.store().update(&key, bytes, rv).await {
            Ok(rev) => {
                next["metadata"]["resourceVersion"] = json!(rev.to_string());
                *crd = next;
            }
            Err(
                kubepull_datastore::Error::Conflict { .. }
                | kubepull_datastore::Error::NotFound { .. },
            ) => {}
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "writing the status of {key}: {e}"
                )))
            }
        }
    }
    // served first, retired after: a watch that takes the old signal and then reads the new
    // definition ends at once, which is harmless; the other order could miss the change
    reg.replace(build(&crds));
    reg.retire_changed(&crds);
    Ok(())
}

/// Keeps the registry in step with CRD changes made through other API servers sharing the
/// datastore (etcd): every change of a CRD key triggers [`sync`].
pub async fn watch_crds(objects: Objects, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let prefix = crd_resource().key_prefix();
    loop {
        let rev = match objects.store().list(&prefix, None, 1, None).await {
            Ok(p) => p.revision,
            Err(_) => 0,
        };
        let mut w = match objects.store().watch(&prefix, rev).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("watching CustomResourceDefinitions: {e}");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                }
            }
        };
        if !sync_until_done(&objects, &mut stop).await {
            return;
        }
        // CRDs being deleted: their instances are deleted, and the CRD goes once none is
        // left. While some are held by finalizers (or a round failed), the finalizer runs
        // again after FINALIZE_POLL, doubling up to FINALIZE_POLL_MAX, and not on CRD events
        // (its own condition writes among them) before then: a rate-limited requeue, as
        // upstream's queue
        let mut backoff = crate::crd_finalizer::Backoff::default();
        let mut pending = crate::crd_finalizer::run(&objects).await;
        let mut next_at = backoff.after(pending);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                ev = w.events.recv() => match ev {
                    Some(Ok(_)) => {
                        if !sync_until_done(&objects, &mut stop).await {
                            return;
                        }
                        if !pending || tokio::time::Instant::now() >= next_at {
                            pending = crate::crd_finalizer::run(&objects).await;
                            next_at = backoff.after(pending);
                        }
                    }
                    _ => break,
                },
                _ = tokio::time::sleep_until(next_at), if pending => {
                    pending = crate::crd_finalizer::run(&objects).await;
                    next_at = backoff.after(pending);
                }
            }
        }
        // the watch ended (compaction, a lost connection): watch again after a pause
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

/// Runs [`sync`] until it succeeds, retrying a failure (the datastore unreachable, say) with
/// back-off up to 30 s, so a CRD stored meanwhile is served once the store answers again.
/// False when `stop` came first.
async fn sync_until_done(
    objects: &Objects,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match sync(objects).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(retry_in = ?pause, "loading CustomResourceDefinitions: {e}");
            }
        }
        tokio::select! {
            _ = stop.as_mut() => return false,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}

/// Removes whatever custom resources of `crd` are still stored when the CRD itself is removed
/// from storage. Deleting a CRD goes through its `customresourcecleanup` finalizer
/// ([`crate::crd_finalizer`]), which deletes every instance through the normal delete path
/// (honouring their finalizers) and lets the CRD go only once none is left, so normally nothing
/// is left here. Something is only when the finalizer was removed by hand while instances were
/// still held: those are removed with the CRD rather than left in storage to reappear when a
/// CRD of the same name is created again.
pub async fn delete_instances(objects: &Objects, crd: &Value) -> ApiResult<()> {
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/status/acceptedNames/plural");
    let plural = if plural.is_empty() {
        s(crd, "/spec/names/plural")
    } else {
        plural
    };
    if group.is_empty() || plural.is_empty() {
        return Ok(());
    }
    let prefix = format!("/registry/{group}/{plural}/");
    loop {
        let page = objects
            .store()
            .list(&prefix, None, 500, None)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        for kv in &page.items {
            // one already gone is what was wanted; any other failure keeps the CRD (and its
            // finalizer's work) for the client to retry, instead of leaving instances behind
            match objects.store().delete(&kv.key, None).await {
                Ok(_) | Err(kubepull_datastore::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(ApiError::internal(format!(
                        "deleting the custom resources under {prefix}: {e}"
                    )))
                }
            }
        }
        if !page.more || page.items.is_empty() {
            return Ok(());
        }
    }
}

/// The first DELETE of a CRD (apiextensions `pkg/registry/customresourcedefinition/etcd.go`
/// `REST.Delete`): the CRD gets the [`crate::crd_finalizer::CLEANUP_FINALIZER`] finalizer and
/// the `Terminating` condition (`InstanceDeletionPending`); the delete path then sets its
/// `deletionTimestamp` and stores it, and the finalizer deletes its instances. A CRD already
/// being deleted is left as it is.
pub fn begin_deletion(crd: &mut Value, finalizers: &mut Vec<Value>) {
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let f = json!(crate::crd_finalizer::CLEANUP_FINALIZER);
    if !finalizers.contains(&f) {
        finalizers.push(f);
    }
    set_crd_condition(
        crd,
        "Terminating",
        true,
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}

/// A create of a custom resource whose CRD is terminating is refused, as
/// `customresource_handler.go` `ServeHTTP` refuses the `create` verb
/// (`NewMethodNotSupported`, 405, with its own message).
pub fn refuse_create_while_terminating(sv: &Served) -> ApiResult<()> {
    if !sv.terminating {
        return Ok(());
    }
    Err(ApiError {
        code: 405,
        reason: "MethodNotAllowed",
        message: "create not allowed while custom resource definition is terminating".into(),
        details: Some(json!({"group": sv.r.group, "kind": sv.r.plural})),
    })
}

/// What the request body of a custom resource becomes before validation
/// (`customresource_handler.go` decoding, `unstructuredSchemaCoercer`, defaulting): the
/// `apiVersion`/`kind` must be the served ones; unknown fields are pruned (an error under
/// strict field validation, a warning otherwise); nulls without default go; defaults apply.
pub fn admit_body(sv: &Served, obj: &mut Value, strict: bool) -> ApiResult<()> {
    let want = sv.r.api_version();
    let av = s(obj, "/apiVersion");
    if !av.is_empty() && av != want {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want})"
        )));
    }
    let kind = s(obj, "/kind");
    if !kind.is_empty() && kind != sv.r.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            sv.r.kind
        )));
    }
    whole_numbers_as_integers(obj);
    let mut pruned = coerce_metadata(sv, obj)?;
    pruned.extend(crd_schema::prune(obj, &sv.schema));
    if !pruned.is_empty() {
        if strict {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                pruned
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for p in pruned {
            crate::warnings::add(format!("unknown field \"{p}\""));
        }
    }
    crd_schema::drop_null_without_default(obj, &sv.schema);
    crd_schema::default(obj, &sv.schema);
    Ok(())
}

/// What Go's JSON round trip of an unstructured object does to its numbers (decoded with
/// `UseNumber`, an `int64` where the text parses as one and a `float64` otherwise, then encoded
/// by `encoding/json`, which writes a float64 without a fraction as an integer, and read back
/// as an `int64`): `1.0` and `1e3` become `1` and `1000`. Beyond the `int64` range they stay.
fn whole_numbers_as_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // i64::MAX as f64 is 2^63, itself out of range
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                *v = json!(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(o) => o.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// A CRD part as its decoded Go struct compares under `Semantic.DeepEqual`: a field holding its
/// type's zero value (`false`, `0`, `""`, an empty list or map, null; not an empty object,
/// which is a pointer to a zero struct) is as absent, and numbers
/// compare as Go holds them (`1.0` is `1`); a JSON-valued field (`default`, `example`, `enum`)
/// is kept as written, as a pointer to a value is not its zero.
fn go_zero_values_dropped(mut v: Value) -> Value {
    // `map`: the object is a Go map (`properties`), whose entries stay even when empty
    fn walk(v: &mut Value, map: bool) {
        match v {
            Value::Object(m) => {
                m.retain(|k, x| {
                    if matches!(k.as_str(), "default" | "example" | "enum") {
                        return true;
                    }
                    let is_map = matches!(
                        k.as_str(),
                        "properties" | "patternProperties" | "definitions" | "dependencies"
                    );
                    walk(x, is_map);
                    // an empty object is a pointer to a zero struct (`status: {}`), not nil,
                    // unless it is a map
                    map || !(matches!(x, Value::Null | Value::Bool(false))
                        || x.as_str() == Some("")
                        || x.as_f64() == Some(0.0)
                        || x.as_array().is_some_and(Vec::is_empty)
                        || (is_map && x.as_object().is_some_and(serde_json::Map::is_empty)))
                });
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, false)),
            _ => {}
        }
    }
    whole_numbers_as_integers(&mut v);
    walk(&mut v, false);
    v
}

/// `objectmeta.Coerce`: `metadata` must decode as ObjectMeta (a type error is a 400); fields
/// ObjectMeta does not have are dropped (returned as pruned paths).
fn coerce_metadata(sv: &Served, obj: &mut Value) -> ApiResult<Vec<String>> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let Some(md) = obj.get_mut("metadata") else {
        return Ok(vec![]);
    };
    let typed: ObjectMeta = serde_json::from_value(md.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: metadata: {e}",
            sv.r.kind, sv.r.version, sv.r.kind
        ))
    })?;
    let round = serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut pruned = vec![];
    if let (Some(m), Some(r)) = (md.as_object_mut(), round.as_object()) {
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if !r.contains_key(&k) && !m.get(&k).is_some_and(Value::is_null) {
                pruned.push(format!("metadata.{k}"));
                m.remove(&k);
            }
        }
    }
    Ok(pruned)
}

/// Schema validation of a custom resource (`customResourceStrategy.Validate`).
pub fn validate_cr(sv: &Served, obj: &Value, subresource: Option<&str>) -> Vec<Cause> {
    let mut c = crd_schema::validate(obj, &sv.schema);
    if let Some((spec, status, selector)) = &sv.scale {
        // `customResourceValidator`: `ValidateScaleSpec` on create and update, not on a status
        // update; `ValidateScaleStatus` on all three
        if subresource != Some("status") {
            scale_replicas(obj, spec, &mut c);
        }
        scale_replicas(obj, status, &mut c);
        if let Some(selector) = selector {
            if let Err(why) = nested(obj, selector).and_then(|v| match v {
                None | Some(Value::String(_)) => Ok(()),
                Some(v) => Err(accessor_error(selector, v, "string")),
            }) {
                c.push(Cause::invalid(selector.as_str(), "\"\"", why));
            }
        }
    }
    c
}

/// `ValidateScaleSpec`'s and `ValidateScaleStatus`' replicas check of the field at `path` (a
/// scale subresource's `.spec.replicas`-style path): absent is 0, else an `int64`
/// (`unstructured.NestedInt64`) between 0 and `math.MaxInt32`.
fn scale_replicas(obj: &Value, path: &str, c: &mut Vec<Cause>) {
    let n = match nested(obj, path).and_then(|v| match v {
        None => Ok(0),
        Some(v) => v.as_i64().ok_or_else(|| accessor_error(path, v, "int64")),
    }) {
        Ok(n) => n,
        Err(why) => return c.push(Cause::invalid(path, "0", why)),
    };
    if n < 0 {
        c.push(Cause::invalid(
            path,
            n.to_string(),
            "should be a non-negative integer",
        ));
    } else if n > i64::from(i32::MAX) {
        c.push(Cause::invalid(
            path,
            n.to_string(),
            format!("should be less than or equal to {}", i32::MAX),
        ));
    }
}

/// `unstructured.NestedFieldNoCopy` at a scale path (`.a.b`): the value, none when a field on
/// the way is absent or null, or the accessor error of a field on the way that is not a map.
fn nested<'v>(obj: &'v Value, path: &str) -> Result<Option<&'v Value>, String> {
    let fields: Vec<&str> = path.strip_prefix('.').unwrap_or(path).split('.').collect();
    let mut v = obj;
    for (i, f) in fields.iter().enumerate() {
        match v {
            Value::Null => return Ok(None),
            Value::Object(m) => match m.get(*f) {
                Some(next) => v = next,
                None => return Ok(None),
            },
            other => {
                let at = format!(".{}", fields[..=i].join("."));
                return Err(accessor_error(&at, other, "map[string]interface{}"));
            }
        }
    }
    Ok(Some(v))
}

/// The unstructured accessors' error: `.spec.replicas accessor error: 1.5 is of the type
/// float64, expected int64` (a path given with its leading period, as `jsonPath` prints it).
fn accessor_error(path: &str, v: &Value, expected: &str) -> String {
    let path = format!(".{}", path.strip_prefix('.').unwrap_or(path));
    // the unstructured decoder holds whole numbers as `int64`, others as `float64`
    let (shown, ty) = match v {
        Value::Number(n) if n.is_i64() => (n.to_string(), "int64"),
        _ => (crate::typed::go_v(v), crate::typed::go_type(v)),
    };
    format!("{path} accessor error: {shown} is of the type {ty}, expected {expected}")
}

/// The object as stored: converted to the storage version (conversion `None`: `apiVersion`
/// changes) and coerced with its schema (`schemaCoercingConverter`: pruned, nulls without
/// default dropped; no defaulting).
pub fn to_storage(sv: &Served, obj: &Value) -> Value {
    let mut o = obj.clone();
    if sv.r.api_version() != sv.storage_api_version {
        crd_schema::prune(&mut o, &sv.storage_schema);
        crd_schema::drop_null_without_default(&mut o, &sv.storage_schema);
    }
    o["apiVersion"] = json!(sv.storage_api_version);
    o
}

/// A stored object as served in `sv`'s version: pruned and defaulted with the storage schema,
/// then converted (`apiVersion` rewritten, pruned with the served version's schema).
pub fn present(sv: &Served, mut obj: Value) -> Value {
    crd_schema::prune(&mut obj, &sv.storage_schema);
    crd_schema::default(&mut obj, &sv.storage_schema);
    if sv.r.api_version() != sv.storage_api_version {
        // the converter coerces with the target version's schema
        crd_schema::prune(&mut obj, &sv.schema);
        crd_schema::drop_null_without_default(&mut obj, &sv.schema);
    }
    obj["apiVersion"] = json!(sv.r.api_version());
    obj
}

/// `generation` moves when anything outside `metadata` changes (with the status subresource,
/// `status` was restored before this is asked).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
        }
        v
    };
    strip(old) != strip(new)
}

/// 415 for strategic merge patches (custom resources have no patch strategies).
pub fn refuse_strategic(content_type: &str) -> ApiResult<()> {
    if content_type.starts_with("application/strategic-merge-patch+json") {
        return Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            details: None,
        });
    }
    Ok(())
}

fn dotted(obj: &Value, path: &str) -> Option<Value> {
    let mut cur = obj;
    for p in path.trim_start_matches('.').split('.') {
        cur = cur.get(p)?;
    }
    Some(cur.clone())
}

/// `scaleFromCustomResource`: `autoscaling/v1` Scale from the configured paths.
pub fn scale_of(sv: &Served, obj: &Value) -> ApiResult<Value> {
    let Some((spec, status, selector)) = &sv.scale else {
        return Err(ApiError::path_not_found());
    };
    let int = |p: &str| dotted(obj, p).and_then(|v| v.as_i64()).unwrap_or(0);
    let mut st = json!({"replicas": int(status)});
    if let Some(sel) = selector {
        if let Some(x) = dotted(obj, sel).and_then(|v| v.as_str().map(str::to_string)) {
            st["selector"] = json!(x);
        }
    }
    let mut md = json!({
        "name": obj.pointer("/metadata/name"),
        "uid": obj.pointer("/metadata/uid"),
        "resourceVersion": obj.pointer("/metadata/resourceVersion"),
        "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
    });
    if let Some(ns) = obj.pointer("/metadata/namespace") {
        md["namespace"] = ns.clone();
    }
    Ok(json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": md,
        "spec": {"replicas": int(spec)},
        "status": st,
    }))
}

/// Sets the replicas of a custom resource from a Scale's, checked by the scale subresource's
/// `ValidateScale` (`scaleUpdatedObjectInfo`).
pub fn apply_scale(sv: &Served, obj: &mut Value, replicas: i64) -> ApiResult<()> {
    let Some((spec, _, _)) = &sv.scale else {
        return Err(ApiError::path_not_found());
    };
    let parts: Vec<&str> = spec.trim_start_matches('.').split('.').collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur[*p] = json!(replicas);
        } else {
            if !cur.get(*p).is_some_and(Value::is_object) {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
    }
    Ok(())
}

/// One step of a printer-column JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

/// The JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*]`, `.a[?(@.k=="v")].b`.
fn parse_jsonpath(p: &str) -> Option<Vec<Step>> {
    let p = p.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let mut steps = vec![];
    let mut rest = p.strip_prefix('.').unwrap_or(p);
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else {
                let f = inner.strip_prefix("?(@.")?.strip_suffix(')')?;
                let (k, v) = f.split_once("==")?;
                steps.push(Step::Filter(
                    k.trim().into(),
                    v.trim().trim_matches(|c| c == '"' || c == '\'').into(),
                ));
            }
            rest = &r[end + 1..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        }
    }
    Some(steps)
}

fn eval(steps: &[Step], v: &Value) -> Vec<Value> {
    let Some((first, rest)) = steps.split_first() else {
        return vec![v.clone()];
    };
    let next: Vec<&Value> = match first {
        Step::Field(f) => v.get(f).into_iter().collect(),
        Step::Index(i) => v.get(*i).into_iter().collect(),
        Step::All => v.as_array().map(|a| a.iter().collect()).unwrap_or_default(),
        Step::Filter(k, want) => v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| match x.get(k) {
                        Some(Value::String(s)) => s == want,
                        Some(other) => {
                            serde_json::from_str::<Value>(want).is_ok_and(|w| &w == other)
                        }
                        None => false,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    next.into_iter().flat_map(|x| eval(rest, x)).collect()
}

/// `cellForJSONValue`.
fn cell(ty: &str, v: &Value) -> Value {
    match (ty, v) {
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("string", Value::String(s)) => json!(s),
        ("string", Value::Number(n)) => json!(n.to_string()),
        ("string", Value::Bool(b)) => json!(b.to_string()),
        ("date", Value::String(s)) => match s.parse::<jiff::Timestamp>() {
            Ok(t) => json!(crate::table::human_duration(
                jiff::Timestamp::now().duration_since(t).as_secs()
            )),
            Err(_) => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// The Table of custom resources (`tableconvertor.New`): `Name`, then the printer columns.
pub fn table(sv: &Served, items: &[Value], resource_version: u64) -> Value {
    table_with(&sv.columns, items, resource_version)
}

/// The Table of a custom resource's `scale` subresource (`getScaleColumnsForVersion`: Desired,
/// Available, Age, at fixed paths of the Scale).
pub fn scale_table(sv: &Served, scale: &Value) -> Value {
    let mut cols = vec![];
    if let Some((spec, status, _)) = &sv.scale {
        if !spec.is_empty() {
            cols.push(json!({"name": "Desired", "type": "integer", "description": "Number of desired replicas", "jsonPath": ".spec.replicas"}));
        }
        if !status.is_empty() {
            cols.push(json!({"name": "Available", "type": "integer", "description": "Number of actual replicas", "jsonPath": ".status.replicas"}));
        }
    }
    cols.push(json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}));
    let rv = s(scale, "/metadata/resourceVersion").parse().unwrap_or(0);
    table_with(&cols, std::slice::from_ref(scale), rv)
}

fn table_with(columns: &[Value], items: &[Value], resource_version: u64) -> Value {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })];
    let mut paths = vec![];
    for c in columns {
        defs.push(json!({
            "name": s(c, "/name"),
            "type": s(c, "/type"),
            "format": s(c, "/format"),
            "description": s(c, "/description"),
            "priority": c.get("priority").and_then(Value::as_i64).unwrap_or(0),
        }));
        paths.push((
            s(c, "/type").to_string(),
            parse_jsonpath(s(c, "/jsonPath")).unwrap_or_default(),
        ));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![json!(s(o, "/metadata/name"))];
            for (ty, steps) in &paths {
                let found = if steps.is_empty() {
                    vec![]
                } else {
                    eval(steps, o)
                };
                cells.push(match found.as_slice() {
                    [] => Value::Null,
                    [one] => cell(ty, one),
                    many => json!(many
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")),
                });
            }
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn resource_json(sv: &Served) -> Value {
    let r = sv.r;
    let mut o = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
    });
    if !r.short_names.is_empty() {
        o["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        o["categories"] = json!(r.categories);
    }
    o
}

/// Legacy `APIResourceList` of a CRD group version.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let all: Vec<Arc<Served>> = reg
        .all()
        .into_iter()
        .filter(|s| s.r.group == group && s.r.version == version)
        .collect();
    if all.is_empty() {
        return None;
    }
    let mut resources = vec![];
    for sv in &all {
        resources.push(resource_json(sv));
        if sv.status {
            resources.push(json!({"name": format!("{}/status", sv.r.plural), "singularName": "", "namespaced": sv.r.namespaced, "kind": sv.r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if sv.scale.is_some() {
            resources.push(json!({"name": format!("{}/scale", sv.r.plural), "singularName": "", "namespaced": sv.r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources}),
    )
}

/// One `APIGroup` of a CRD group.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (_, versions) = reg.groups().into_iter().find(|(g, _)| g == group)?;
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned()?;
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": preferred}),
    )
}

/// Adds the CRD groups to a legacy `APIGroupList`.
pub fn extend_group_list(reg: &Registry, list: &mut Value) {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .filter_map(|(g, _)| api_group(reg, g))
        .map(|mut g| {
            if let Some(m) = g.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            g
        })
        .collect();
    if let Some(a) = list.get_mut("groups").and_then(Value::as_array_mut) {
        a.extend(groups);
    }
}

/// Adds the CRD groups to an aggregated `APIGroupDiscoveryList` (`/apis`).
pub fn extend_aggregated(reg: &Registry, list: &mut Value) {
    let all = reg.all();
    let mut items = vec![];
    for (g, versions) in reg.groups() {
        let mut vs = vec![];
        for v in &versions {
            let mut resources = vec![];
            for sv in all.iter().filter(|s| s.r.group == g && s.r.version == *v) {
                let r = sv.r;
                let mut subs = vec![];
                if sv.status {
                    subs.push(json!({"subresource": "status", "responseKind": {"group": g, "version": v, "kind": r.kind}, "verbs": ["get", "patch", "update"]}));
                }
                if sv.scale.is_some() {
                    subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
                }
                let mut o = json!({
                    "resource": r.plural,
                    "responseKind": {"group": g, "version": v, "kind": r.kind},
                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": r.singular,
                    "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                });
                if !r.short_names.is_empty() {
                    o["shortNames"] = json!(r.short_names);
                }
                if !r.categories.is_empty() {
                    o["categories"] = json!(r.categories);
                }
                if !subs.is_empty() {
                    o["subresources"] = json!(subs);
                }
                resources.push(o);
            }
            vs.push(json!({"version": v, "resources": resources, "freshness": "Current"}));
        }
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs}));
    }
    if let Some(a) = list.get_mut("items").and_then(Value::as_array_mut) {
        a.extend(items);
    }
}

/// The schemas of the established CRDs' served versions, for `/openapi/v2` and `/openapi/v3`.
pub fn openapi_schemas(objects: &Objects) -> Vec<CrdSchema> {
    objects
        .crds()
        .all()
        .into_iter()
        .map(|sv| CrdSchema {
            group: sv.r.group.into(),
            version: sv.r.version.into(),
            kind: sv.r.kind.into(),
            plural: sv.r.plural.into(),
            namespaced: sv.r.namespaced,
            schema: sv.schema.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "clusterpullsecrets.kubepull.io"},
            "spec": {"group": "kubepull.io", "scope": "Cluster",
                "names": {"plural": "clusterpullsecrets", "kind": "ClusterPullSecret", "shortNames": ["cps"]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]}]}
        })
    }

    #[test]
    fn crd_validation() {
        let mut c = crd();
        default_crd(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "clusterpullsecret");
        assert_eq!(c["spec"]["names"]["listKind"], "ClusterPullSecretList");
        assert!(
            validate_crd(&c, None).is_empty(),
            "{:?}",
            validate_crd(&c, None)
        );
        let mut bad = c.clone();
        bad["metadata"]["name"] = json!("x.kubepull.io");
        bad["spec"]["scope"] = json!("Global");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"properties": {}});
        let t: Vec<String> = validate_crd(&bad, None).iter().map(Cause::text).collect();
        assert_eq!(
            t,
            vec![
                "metadata.name: Invalid value: \"x.kubepull.io\": must be spec.names.plural+\".\"+spec.group",
                "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
                "spec.versions: Invalid value: [1]: must have exactly one version marked as storage version",
                // one version: its schema is every version's, validated at spec.validation
                "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ]
        );
        // two versions with different schemas: each at its own path
        let mut two = bad.clone();
        let mut v2 = two["spec"]["versions"][0].clone();
        v2["name"] = json!("v1beta1");
        v2["schema"]["openAPIV3Schema"]["properties"]["spec"] = json!({"type": "object"});
        two["spec"]["versions"].as_array_mut().unwrap().push(v2);
        let t: Vec<String> = validate_crd(&two, None).iter().map(Cause::text).collect();
        assert!(
            t.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields".to_string()),
            "{t:?}"
        );
        assert!(!t.iter().any(|x| x.starts_with("spec.validation")), "{t:?}");
        // with the status subresource, the root carries no value validations
        let mut st = c.clone();
        st["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["anyOf"] =
            json!([{"required": ["spec"]}, {"required": ["status"]}]);
        let t: Vec<String> = validate_crd(&st, None).iter().map(Cause::text).collect();
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(
            t[0].starts_with("spec.validation.openAPIV3Schema: Invalid value: \"anyOf: "),
            "{t:?}"
        );
        assert!(
            t[0].ends_with(
                "fields are allowed at the root of the schema if the status subresource is enabled"
            ),
            "{t:?}"
        );
        st["spec"]["versions"][0]["subresources"] = json!({});
        assert!(validate_crd(&st, None).is_empty());
        // a stored version cannot go
        let mut old = c.clone();
        old["status"] = json!({"storedVersions": ["v1alpha1"]});
        let mut renamed = c.clone();
        renamed["spec"]["versions"][0]["name"] = json!("v1");
        let t: Vec<String> = validate_crd(&renamed, Some(&old))
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(t, vec!["status.storedVersions[0]: Invalid value: \"v1alpha1\": missing from spec.versions; v1alpha1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1alpha1 and removes v1alpha1 from status.storedVersions"]);
        let mut g = c.clone();
        g["spec"]["group"] = json!("nodot");
        g["metadata"]["name"] = json!("clusterpullsecrets.nodot");
        let t: Vec<String> = validate_crd(&g, Some(&c)).iter().map(Cause::text).collect();
        assert!(
            t.contains(
                &"spec.group: Invalid value: \"nodot\": should be a domain with at least one dot"
                    .to_string()
            ),
            "{t:?}"
        );
        assert!(
            t.contains(&"spec.group: Invalid value: \"nodot\": field is immutable".to_string()),
            "{t:?}"
        );
    }

    #[test]
    fn whole_floats_become_integers_as_in_a_go_round_trip() {
        let mut v =
            json!({"a": 1.0, "b": [1e3, 1.5, -0.0, 7], "c": {"d": 1e19, "e": -9.2e18}, "f": "1.0"});
        whole_numbers_as_integers(&mut v);
        assert_eq!(
            v.to_string(),
            r#"{"a":1,"b":[1000,1.5,0,7],"c":{"d":1e+19,"e":-9200000000000000000},"f":"1.0"}"#
        );
    }

    #[test]
    fn selectable_fields_validation() {
        let mut c = crd();
        default_crd(&mut c);
        let props = json!({
            "spec": {"type": "object", "properties": {
                "color": {"type": "string", "enum": ["blue", "red"]},
                "on": {"type": "boolean"},
                "size": {"type": "integer"},
                "ratio": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "nested": {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}}}},
            "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
        });
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"] = props;
        let with = |fields: Value| {
            let mut x = c.clone();
            x["spec"]["versions"][0]["selectableFields"] = fields;
            x
        };
        let texts = |x: &Value, old: Option<&Value>| -> Vec<String> {
            validate_crd(x, old).iter().map(Cause::text).collect()
        };
        let ok = with(
            json!([{"jsonPath": ".spec.color"}, {"jsonPath": ".spec.on"},
            {"jsonPath": ".spec.size"}, {"jsonPath": ".spec.nested.when"},
            {"jsonPath": ".spec.labels.team"}, {"jsonPath": ".status.replicas"}]),
        );
        assert_eq!(texts(&ok, None), Vec::<String>::new());
        // a quote inside a name is part of it (only a token that starts with one is quoted)
        let quote = with(json!([{"jsonPath": ".spec.labels.it's"}]));
        assert_eq!(texts(&quote, None), Vec::<String>::new());
        let bad = with(json!([{"jsonPath": ""}, {"jsonPath": ".spec.missing"},
            {"jsonPath": ".spec.tags[0]"}, {"jsonPath": "spec.color"}, {"jsonPath": ".spec."},
            {"jsonPath": ".spec.ratio"}, {"jsonPath": ".spec"}, {"jsonPath": ".spec.color"},
            {"jsonPath": ".spec.color"}, {"jsonPath": ".spec.color.x"}]));
        // one version: its fields are every version's, validated at spec.selectableFields
        let p = "spec.selectableFields";
        assert_eq!(
            texts(&bad, None),
            vec![
                format!("{p}[0].jsonPath: Required value"),
                format!("{p}[1].jsonPath: Invalid value: \".spec.missing\": is an invalid path: does not refer to a valid field"),
                format!("{p}[2].jsonPath: Invalid value: \".spec.tags[0]\": is an invalid path: array notation is not allowed"),
                format!("{p}[3].jsonPath: Invalid value: \"spec.color\": is an invalid path: expected [ or . but got: spec"),
                format!("{p}[4].jsonPath: Invalid value: \".spec.\": is an invalid path: unexpected end of JSON path"),
                format!("{p}[5].jsonPath: Invalid value: \".spec.ratio\": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."),
                format!("{p}[6].jsonPath: Invalid value: \".spec\": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."),
                format!("{p}[8].jsonPath: Duplicate value: \".spec.color\""),
                format!("{p}[9].jsonPath: Invalid value: \".spec.color.x\": is an invalid path: does not refer to a valid field"),
            ]
        );
        // metadata is refused, even where the schema declares it
        let mut md = with(json!([{"jsonPath": ".metadata.name"}]));
        md["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"] =
            json!({"type": "object", "properties": {"name": {"type": "string"}}});
        assert_eq!(
            texts(&md, None),
            vec![format!(
                "{p}[0].jsonPath: Invalid value: \".metadata.name\": must not point to fields in metadata"
            )]
        );
        // at most eight distinct paths, on an update that leaves them as they were too (1.32)
        let nine: Vec<Value> = (0..9)
            .map(|i| json!({"jsonPath": format!(".spec.labels.k{i}")}))
            .collect();
        let many = with(Value::Array(nine.clone()));
        assert_eq!(
            texts(&many, None),
            vec![format!("{p}: Too many: 9: must have at most 8 items")]
        );
        assert_eq!(
            texts(&many, Some(&many)),
            vec![format!("{p}: Too many: 9: must have at most 8 items")]
        );
        let mut dup = nine[..8].to_vec();
        dup.push(json!({"jsonPath": ".spec.labels.k0"}));
        assert_eq!(
            texts(&with(Value::Array(dup)), None),
            vec![format!(
                "{p}[8].jsonPath: Duplicate value: \".spec.labels.k0\""
            )]
        );
        // two versions: the same fields over different schemas are refused at spec (there is
        // no common schema to resolve them in); different fields over one common schema are
        // refused at each version that declares some (its own schema moved to spec); both
        // different, each version on its own
        let two = |f0: Value, f1: Value, same_schema: bool| {
            let mut x = with(f0);
            let mut v1 = x["spec"]["versions"][0].clone();
            v1["name"] = json!("v1beta1");
            v1["storage"] = json!(false);
            v1["selectableFields"] = f1;
            if !same_schema {
                v1["schema"]["openAPIV3Schema"]["properties"]["extra"] = json!({"type": "string"});
            }
            x["spec"]["versions"].as_array_mut().unwrap().push(v1);
            x
        };
        let color = json!([{"jsonPath": ".spec.color"}]);
        assert_eq!(
            texts(&two(color.clone(), color.clone(), false), None),
            vec!["spec.selectableFields: Invalid value: \"\": selectableFields may only be set when validations.schema is included"]
        );
        assert_eq!(
            texts(&two(color.clone(), color.clone(), true), None),
            Vec::<String>::new()
        );
        // schemas equal as Go structs (an empty `required`, `nullable: false`, `1.0` for `1`)
        // are one schema
        let mut same = two(color.clone(), color.clone(), true);
        let s1 = &mut same["spec"]["versions"][1]["schema"]["openAPIV3Schema"];
        s1["required"] = json!([]);
        s1["nullable"] = json!(false);
        s1["properties"]["spec"]["properties"]["size"]["minimum"] = json!(1.0);
        let s0 = &mut same["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        s0["properties"]["spec"]["properties"]["size"]["minimum"] = json!(1);
        assert_eq!(texts(&same, None), Vec::<String>::new());
        // but the status subresource (`status: {}`) is not its absence
        assert_ne!(
            go_zero_values_dropped(json!({"status": {}})),
            go_zero_values_dropped(json!({}))
        );
        assert_eq!(
            texts(&two(color.clone(), json!([]), true), None),
            vec!["spec.versions[0].selectableFields: Invalid value: \"\": selectableFields may only be set when version.schema.openAPIV3Schema is not included"]
        );
        assert_eq!(
            texts(&two(color.clone(), json!([{"jsonPath": ".spec.nope"}]), false), None),
            vec!["spec.versions[1].selectableFields[0].jsonPath: Invalid value: \".spec.nope\": is an invalid path: does not refer to a valid field"]
        );
        // a version without a schema
        let mut none = two(color.clone(), json!([]), false);
        none["spec"]["versions"][0]
            .as_object_mut()
            .unwrap()
            .remove("schema");
        let t = texts(&none, None);
        assert_eq!(
            t,
            vec![
                "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
                "spec.versions[0].selectableFields: Invalid value: \"\": selectableFields may only be set when version.schema.openAPIV3Schema is not included",
            ]
        );
        // the served version's field set: each jsonPath without its leading dot
        assert_eq!(
            selectable_fields(&ok["spec"]["versions"][0]),
            crate::fieldselect::FieldSet::Custom(
                [
                    "spec.color",
                    "spec.on",
                    "spec.size",
                    "spec.nested.when",
                    "spec.labels.team",
                    "status.replicas"
                ]
                .map(String::from)
                .into()
            )
        );
    }

    #[test]
    fn naming_conditions_and_registry() {
        let mut a = crd();
        default_crd(&mut a);
        a["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut b = a.clone();
        b["metadata"]["name"] = json!("others.kubepull.io");
        b["metadata"]["creationTimestamp"] = json!("2026-01-02T00:00:00Z");
        b["spec"]["names"] = json!({"plural": "others", "singular": "other", "kind": "Other", "listKind": "OtherList", "shortNames": ["cps"]});
        let st = statuses(&[b.clone(), a.clone()]);
        assert_eq!(st[1]["conditions"][0]["reason"], "NoConflicts");
        assert_eq!(st[1]["conditions"][1]["status"], "True");
        assert_eq!(st[1]["storedVersions"], json!(["v1alpha1"]));
        assert_eq!(st[0]["conditions"][0]["reason"], "ShortNamesConflict");
        assert_eq!(
            st[0]["conditions"][0]["message"],
            "\"cps\" is already in use"
        );
        assert_eq!(st[0]["conditions"][1]["reason"], "NotAccepted");
        a["status"] = st[1].clone();
        b["status"] = st[0].clone();
        let inner = build(&[a, b]);
        assert_eq!(inner.served.len(), 1);
        let sv = inner.served.values().next().unwrap();
        assert_eq!(
            (sv.r.kind, sv.r.namespaced, sv.r.short_names),
            ("ClusterPullSecret", false, &["cps"][..])
        );
        assert_eq!(sv.r.subresources, &["status", "scale"][..]);
        // interning: the same definition is the same resource
        let again = build(&[{
            let mut a = crd();
            default_crd(&mut a);
            a["status"] = st[1].clone();
            a
        }]);
        assert!(std::ptr::eq(again.served.values().next().unwrap().r, sv.r));
    }

    // customresource_handler_test.go `TestDefaultDeprecationWarning`
    #[test]
    fn deprecation_warnings() {
        let v = |name: &str, served: bool, deprecated: bool| json!({"name": name, "served": served, "deprecated": deprecated});
        let w = |dep: &str, vs: Vec<Value>| {
            default_deprecation_warning(dep, "example.com", "Widget", &vs)
        };
        assert_eq!(
            w("v1", vec![v("v1", true, true)]),
            "example.com/v1 Widget is deprecated"
        );
        assert_eq!(
            w("v1", vec![v("v1", true, true), v("v2", true, false)]),
            "example.com/v1 Widget is deprecated; use example.com/v2 Widget"
        );
        assert_eq!(
            w("v2", vec![v("v1", true, false), v("v2", true, true)]),
            "example.com/v2 Widget is deprecated"
        );
        assert_eq!(
            w(
                "v1beta1",
                vec![
                    v("v1beta1", true, true),
                    v("v1", true, false),
                    v("v2", false, false),
                    v("v1beta2", true, false)
                ]
            ),
            "example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget"
        );
    }

    #[test]
    fn versions_order_kube_aware() {
        let mut v = vec![
            "v1alpha1", "v2beta1", "foo", "v1", "v1beta2", "v2", "v1beta1",
        ];
        v.sort_by(|a, b| kube_version_order(a, b));
        assert_eq!(
            v,
            vec!["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn table_scale_and_jsonpath() {
        let mut a = crd();
        default_crd(&mut a);
        a["status"] = statuses(std::slice::from_ref(&a))[0].clone();
        let inner = build(&[a]);
        let sv = inner.served.values().next().unwrap();
        let o = json!({"metadata": {"name": "x", "uid": "u"}, "spec": {"replicas": 3}, "status": {"replicas": 1,
            "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let t = table(sv, std::slice::from_ref(&o), 7);
        assert_eq!(t["columnDefinitions"][1]["name"], "Replicas");
        assert_eq!(t["rows"][0]["cells"], json!(["x", 3]));
        let steps = parse_jsonpath(".status.conditions[?(@.type==\"Ready\")].status").unwrap();
        assert_eq!(eval(&steps, &o), vec![json!("True")]);
        assert!(eval(&parse_jsonpath(".spec.missing").unwrap(), &o).is_empty());
        let sc = scale_of(sv, &o).unwrap();
        assert_eq!(
            (
                sc["spec"]["replicas"].clone(),
                sc["status"]["replicas"].clone()
            ),
            (json!(3), json!(1))
        );
        let mut o2 = json!({"metadata": {"name": "x"}});
        apply_scale(sv, &mut o2, 5).unwrap();
        assert_eq!(o2["spec"]["replicas"], 5);
    }

    /// A schema default written `1.0` fills in the integer 1, on a write and on a read, as the
    /// default Go decoded does.
    #[test]
    fn whole_float_defaults_fill_in_integers() {
        let mut a = crd();
        default_crd(&mut a);
        a["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["replicas"]["default"] = json!(1.0);
        a["status"] = statuses(std::slice::from_ref(&a))[0].clone();
        let inner = build(&[a]);
        let sv = inner.served.values().next().unwrap();
        let mut o = json!({"metadata": {"name": "x"}, "spec": {}});
        admit_body(sv, &mut o, false).unwrap();
        assert_eq!(o["spec"]["replicas"].to_string(), "1");
        let read = present(sv, json!({"metadata": {"name": "x"}, "spec": {}}));
        assert_eq!(read["spec"]["replicas"].to_string(), "1");
    }
}
