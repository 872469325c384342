//! RBAC: Roles, ClusterRoles and their bindings, the bootstrap policy, rule matching and the
//! Forbidden message, for every user that is neither the admin nor a node.
//!
//! - Bootstrap roles and bindings: k8s.io/kubernetes
//!   `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/cluster-roles.yaml` and
//!   `cluster-role-bindings.yaml` (the subset listed in [`bootstrap_objects`]). The aggregated
//!   roles `admin`, `edit` and `view` are stored with their `aggregationRule` and the rules the
//!   aggregation controller would give them.
//! - Matching: `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`, `APIGroupMatches`,
//!   `ResourceMatches`, `ResourceNameMatches`, `NonResourceURLMatches`) and
//!   `plugin/pkg/auth/authorizer/rbac/rbac.go` (`RuleAllows`, `appliesTo`).
//! - The message: k8s.io/apiserver `pkg/endpoints/handlers/responsewriters/errors.go`
//!   (`forbiddenMessage`).
//! - The `system:masters` group is allowed everything before RBAC is asked (as kube-apiserver's
//!   privileged-group authorizer does).

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::RoleRef;
use kubepull_datastore::Datastore;
use serde::Deserialize as _;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};
use crate::watchcache::{under, Cache, Noted};

/// What is asked (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Verb.
    pub verb: String,
    /// API group (`""` core).
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace (`""` cluster scope).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// A non-resource path (then the resource fields are unused).
    pub path: Option<String>,
}

impl Attributes {
    /// The attributes borrowed, as the decision reads them.
    pub(crate) fn ask(&self) -> Ask<'_> {
        Ask {
            verb: &self.verb,
            group: &self.group,
            resource: &self.resource,
            subresource: &self.subresource,
            namespace: &self.namespace,
            name: &self.name,
            path: self.path.as_deref(),
        }
    }
}

/// [`Attributes`] borrowed from the request: a decision copies nothing of it (a request's
/// authorizer attributes are read from its one `RequestInfo`, `WithAuthorization` in
/// k8s.io/apiserver `pkg/endpoints/filters/authorization.go`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ask<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub path: Option<&'a str>,
}

impl Ask<'_> {
    /// The owned attributes (for a Forbidden message).
    fn to_attributes(self) -> Attributes {
        Attributes {
            verb: self.verb.to_string(),
            group: self.group.to_string(),
            resource: self.resource.to_string(),
            subresource: self.subresource.to_string(),
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            path: self.path.map(str::to_string),
        }
    }
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    iter_strs(v).collect()
}

fn iter_strs(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// `RuleAllows` for one stored PolicyRule (the tests' view; requests ask through the caches).
#[cfg(test)]
fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    rule_allows_ask(rule, a.ask())
}

fn rule_allows_ask(rule: &Value, a: Ask<'_>) -> bool {
    matches(
        || iter_strs(rule.get("verbs")),
        || iter_strs(rule.get("apiGroups")),
        || iter_strs(rule.get("resources")),
        || iter_strs(rule.get("resourceNames")),
        || iter_strs(rule.get("nonResourceURLs")),
        a,
    )
}

/// `RuleAllows` (`VerbMatches`, `NonResourceURLMatches`, `APIGroupMatches`, `ResourceMatches`,
/// `ResourceNameMatches`) over a rule's lists, whether stored JSON or a decoded [`Rule`].
fn matches<'r, I: Iterator<Item = &'r str>>(
    verbs: impl FnOnce() -> I,
    groups: impl FnOnce() -> I,
    resources: impl FnOnce() -> I,
    names: impl FnOnce() -> I,
    urls: impl FnOnce() -> I,
    a: Ask<'_>,
) -> bool {
    if !verbs().any(|v| v == "*" || v == a.verb) {
        return false;
    }
    if let Some(path) = a.path {
        return urls().any(|u| {
            u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        });
    }
    if !groups().any(|g| g == "*" || g == a.group) {
        return false;
    }
    // `ResourceMatches`: "*", the resource (with "/subresource"), or "*/subresource"
    let res_ok = resources().any(|r| {
        if r == "*" {
            return true;
        }
        if a.subresource.is_empty() {
            return r == a.resource;
        }
        match r.split_once('/') {
            Some((res, sub)) => sub == a.subresource && (res == a.resource || res == "*"),
            None => false,
        }
    });
    if !res_ok {
        return false;
    }
    let mut names = names().peekable();
    names.peek().is_none() || names.any(|n| n == a.name)
}

/// A PolicyRule as the authorizer's caches keep it: decoded once when the cache applies the
/// role, not at every request (kube-apiserver's informers hold typed `rbacv1.PolicyRule`s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl Rule {
    /// The rule of a stored PolicyRule (entries that are not strings are skipped, as the
    /// check on stored JSON skips them).
    pub fn from_value(rule: &Value) -> Rule {
        let owned = |field: &str| iter_strs(rule.get(field)).map(str::to_string).collect();
        Rule {
            verbs: owned("verbs"),
            api_groups: owned("apiGroups"),
            resources: owned("resources"),
            resource_names: owned("resourceNames"),
            non_resource_urls: owned("nonResourceURLs"),
        }
    }

    /// `RuleAllows` (the tests' view; requests ask through [`Attributes`]' borrowed form).
    #[cfg(test)]
    fn allows(&self, a: &Attributes) -> bool {
        self.allows_ask(a.ask())
    }

    fn allows_ask(&self, a: Ask<'_>) -> bool {
        fn it(v: &[String]) -> impl Iterator<Item = &str> {
            v.iter().map(String::as_str)
        }
        matches(
            || it(&self.verbs),
            || it(&self.api_groups),
            || it(&self.resources),
            || it(&self.resource_names),
            || it(&self.non_resource_urls),
            a,
        )
    }
}

/// The rules of a stored Role or ClusterRole (the RBAC caches' decoder).
fn decode_role(value: &[u8]) -> Option<Vec<Rule>> {
    let role: Value = serde_json::from_slice(value)
        .ok()
        .filter(Value::is_object)?;
    Some(
        role.get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Rule::from_value)
            .collect(),
    )
}

/// One subject of a binding (`rbacv1.Subject`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

/// A RoleBinding or ClusterRoleBinding as the authorizer's caches keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    name: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    /// The binding of a stored RoleBinding or ClusterRoleBinding.
    pub fn from_value(b: &Value) -> Binding {
        let s = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Binding {
            name: s(b, "/metadata/name"),
            role_kind: s(b, "/roleRef/kind"),
            role_name: s(b, "/roleRef/name"),
            subjects: b
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| Subject {
                    kind: s(v, "/kind"),
                    name: s(v, "/name"),
                    namespace: s(v, "/namespace"),
                })
                .collect(),
        }
    }

    /// Whether the binding (in namespace `bns`, empty for a ClusterRoleBinding) names `u` among
    /// its subjects (`appliesTo`).
    pub fn applies_to(&self, u: &UserInfo, bns: &str) -> bool {
        self.subjects
            .iter()
            .any(|s| subject_matches(&s.kind, &s.name, &s.namespace, u, bns))
    }
}

/// The binding of a stored RoleBinding or ClusterRoleBinding (the RBAC caches' decoder).
fn decode_binding(value: &[u8]) -> Option<Binding> {
    let b: Value = serde_json::from_slice(value)
        .ok()
        .filter(Value::is_object)?;
    Some(Binding::from_value(&b))
}

/// Whether a binding's subject is this user (`appliesTo`, `appliesToUser`).
fn subject_matches(kind: &str, name: &str, namespace: &str, u: &UserInfo, bns: &str) -> bool {
    match kind {
        "User" => name == u.name,
        "Group" => u.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = if namespace.is_empty() { bns } else { namespace };
            u.name
                .strip_prefix("system:serviceaccount:")
                .and_then(|r| r.strip_prefix(ns))
                .and_then(|r| r.strip_prefix(':'))
                == Some(name)
        }
        _ => false,
    }
}

fn res(plural: &str) -> &'static Resource {
    resources::find("rbac.authorization.k8s.io", "v1", plural).expect("rbac resource")
}

/// The rules that apply to `u` in `namespace` (cluster-wide ones too), each with where it comes
/// from, read from storage.
pub async fn rules_for(
    objects: &Objects,
    u: &UserInfo,
    namespace: &str,
) -> ApiResult<Vec<(Value, String)>> {
    let mut out = vec![];
    for (b, cluster) in bindings_for(objects, u, namespace).await? {
        let role = match (b.role_kind.as_str(), cluster) {
            ("ClusterRole", _) => {
                objects
                    .get_opt(res("clusterroles"), "", &b.role_name)
                    .await?
            }
            ("Role", false) => {
                objects
                    .get_opt(res("roles"), namespace, &b.role_name)
                    .await?
            }
            _ => None,
        };
        let source = source(cluster, &b, namespace, u);
        if let Some(role) = role {
            for r in role
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push((r.clone(), source.clone()));
            }
        }
    }
    Ok(out)
}

/// The ClusterRoleBindings, then the RoleBindings of `namespace`, that name `u`, read from
/// storage; `true` marks a ClusterRoleBinding.
async fn bindings_for(
    objects: &Objects,
    u: &UserInfo,
    namespace: &str,
) -> ApiResult<Vec<(Binding, bool)>> {
    let (crbs, _, _) = objects
        .list(res("clusterrolebindings"), None, &ListOptions::default())
        .await?;
    let mut bindings: Vec<(Binding, bool)> = crbs
        .iter()
        .map(|b| (Binding::from_value(b), true))
        .collect();
    if !namespace.is_empty() {
        let (rbs, _, _) = objects
            .list(
                res("rolebindings"),
                Some(namespace),
                &ListOptions::default(),
            )
            .await?;
        bindings.extend(rbs.iter().map(|b| (Binding::from_value(b), false)));
    }
    bindings.retain(|(b, cluster)| b.applies_to(u, if *cluster { "" } else { namespace }));
    Ok(bindings)
}

/// The watch-fed copies of the roles and bindings the authorizer reads (kube-apiserver's RBAC
/// authorizer reads them from shared informers, `pkg/kubeapiserver/authorizer/config.go`), one
/// per API server; see [`crate::watchcache`]. They keep each object decoded ([`Binding`], the
/// [`Rule`]s of a role), so a request matches strings, not JSON.
#[derive(Debug)]
pub struct Caches {
    cluster_role_bindings: Arc<Cache<Binding>>,
    role_bindings: Arc<Cache<Binding>>,
    cluster_roles: Arc<Cache<Vec<Rule>>>,
    roles: Arc<Cache<Vec<Rule>>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self::new()
    }
}

/// The binding that allowed a request: the binding, and whether it is a ClusterRoleBinding.
type Allowed = Option<(Arc<Binding>, bool)>;

impl Caches {
    /// Empty caches (they list with the first authorization).
    pub fn new() -> Caches {
        let bindings = |plural: &str| {
            Arc::new(Cache::with_decoder(
                &res(plural).key_prefix(),
                decode_binding,
            ))
        };
        let roles =
            |plural: &str| Arc::new(Cache::with_decoder(&res(plural).key_prefix(), decode_role));
        Caches {
            cluster_role_bindings: bindings("clusterrolebindings"),
            role_bindings: bindings("rolebindings"),
            cluster_roles: roles("clusterroles"),
            roles: roles("roles"),
        }
    }

    /// Every cache, for [`crate::watchcache::Tracked`].
    pub fn all(&self) -> Vec<Arc<dyn Noted>> {
        vec![
            self.cluster_role_bindings.clone(),
            self.role_bindings.clone(),
            self.cluster_roles.clone(),
            self.roles.clone(),
        ]
    }

    /// The binding that allows `a` to `u`, from the caches (`RBACAuthorizer.Authorize` with
    /// `VisitRulesFor`: the ClusterRoleBindings, then the RoleBindings of the namespace, each
    /// binding's role's rules in order, the first rule that allows wins); `None` when a cache
    /// cannot answer (not listed yet, or behind a write made through this server): read storage.
    ///
    /// Each cache is read once: the bindings that name the user, then the ClusterRoles of all
    /// of them, then (only when one of them comes first) the Roles.
    async fn allowed_by(
        &self,
        store: &Arc<dyn Datastore>,
        u: &UserInfo,
        a: Ask<'_>,
    ) -> Option<Allowed> {
        // one key buffer for every cache key built below
        let mut key = String::new();
        let mut bindings: Vec<(Arc<Binding>, bool)> = self
            .cluster_role_bindings
            .read(store, |items| {
                items
                    .values()
                    .filter(|b| b.applies_to(u, ""))
                    .map(|b| (b.clone(), true))
                    .collect()
            })
            .await?;
        if !a.namespace.is_empty() {
            key.push_str(self.role_bindings.prefix());
            key.push_str(a.namespace);
            key.push('/');
            self.role_bindings
                .read(store, |items| {
                    bindings.extend(
                        under(items, &key)
                            .filter(|b| b.applies_to(u, a.namespace))
                            .map(|b| (b.clone(), false)),
                    )
                })
                .await?;
        }
        let cluster_roles = self.cluster_roles.prefix();
        // the first binding of a ClusterRole that allows
        let first_cluster = self
            .cluster_roles
            .read(store, |items| {
                bindings.iter().position(|(b, _)| {
                    b.role_kind == "ClusterRole" && {
                        key.clear();
                        key.push_str(cluster_roles);
                        key.push_str(&b.role_name);
                        allows_by(items.get(&key), a)
                    }
                })
            })
            .await?;
        let end = first_cluster.unwrap_or(bindings.len());
        let roles = self.roles.prefix();
        let role_of = |(b, cluster): &(Arc<Binding>, bool)| !cluster && b.role_kind == "Role";
        let first_role = if bindings[..end].iter().any(role_of) {
            self.roles
                .read(store, |items| {
                    bindings[..end].iter().position(|x| {
                        role_of(x) && {
                            key.clear();
                            key.push_str(roles);
                            key.push_str(a.namespace);
                            key.push('/');
                            key.push_str(&x.0.role_name);
                            allows_by(items.get(&key), a)
                        }
                    })
                })
                .await?
        } else {
            None
        };
        Some(
            first_role
                .or(first_cluster)
                .map(|i| bindings.swap_remove(i)),
        )
    }
}

/// Whether one of a role's rules allows `a`.
fn allows_by(rules: Option<&Arc<Vec<Rule>>>, a: Ask<'_>) -> bool {
    rules.is_some_and(|rules| rules.iter().any(|r| r.allows_ask(a)))
}

/// Where a rule comes from, as the allow reason names it.
fn source(cluster: bool, b: &Binding, namespace: &str, u: &UserInfo) -> String {
    let (bname, kind, name) = (&b.name, &b.role_kind, &b.role_name);
    if cluster {
        format!(
            "ClusterRoleBinding \"{bname}\" of {kind} \"{name}\" to {}",
            u.name
        )
    } else {
        format!(
            "RoleBinding \"{bname}/{namespace}\" of {kind} \"{name}\" to {}",
            u.name
        )
    }
}

/// Whether `u` may do `a`, and the reason (`RBAC: allowed by …`).
pub async fn allows(objects: &Objects, u: &UserInfo, a: &Attributes) -> ApiResult<(bool, String)> {
    Ok(match allowed_by(objects, u, a.ask()).await? {
        Some(None) => (true, String::new()),
        Some(Some((b, cluster))) => (
            true,
            format!("RBAC: allowed by {}", source(cluster, &b, &a.namespace, u)),
        ),
        None => (false, String::new()),
    })
}

/// Whether `u` may do `a` ([`allows`] without the reason, for the request path).
pub async fn permits(objects: &Objects, u: &UserInfo, a: &Attributes) -> ApiResult<bool> {
    permits_ask(objects, u, a.ask()).await
}

/// [`permits`] of borrowed attributes.
pub(crate) async fn permits_ask(objects: &Objects, u: &UserInfo, a: Ask<'_>) -> ApiResult<bool> {
    Ok(allowed_by(objects, u, a).await?.is_some())
}

/// The decision: `None` denied, `Some(None)` allowed as `system:masters`, `Some(Some(…))`
/// allowed by that binding.
async fn allowed_by(objects: &Objects, u: &UserInfo, a: Ask<'_>) -> ApiResult<Option<Allowed>> {
    if u.groups.iter().any(|g| g == "system:masters") {
        return Ok(Some(None));
    }
    if let Some(answer) = objects.rbac.allowed_by(objects.store(), u, a).await {
        return Ok(answer.map(Some));
    }
    // the caches cannot answer: the same walk over storage
    for (b, cluster) in bindings_for(objects, u, a.namespace).await? {
        let role = match (b.role_kind.as_str(), cluster) {
            ("ClusterRole", _) => {
                objects
                    .get_opt(res("clusterroles"), "", &b.role_name)
                    .await?
            }
            ("Role", false) => {
                objects
                    .get_opt(res("roles"), a.namespace, &b.role_name)
                    .await?
            }
            _ => None,
        };
        let allowed = role
            .as_ref()
            .and_then(|r| r.get("rules"))
            .and_then(Value::as_array)
            .is_some_and(|rules| rules.iter().any(|r| rule_allows_ask(r, a)));
        if allowed {
            return Ok(Some(Some((Arc::new(b), cluster))));
        }
    }
    Ok(None)
}

/// `forbiddenMessage` wrapped as the Status message.
pub fn forbidden(user: &str, a: &Attributes, r: Option<&Resource>) -> ApiError {
    if let Some(path) = &a.path {
        return ApiError::forbidden_msg(format!(
            "forbidden: User \"{user}\" cannot {} path \"{path}\"",
            a.verb
        ));
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        " at the cluster scope".to_string()
    } else {
        format!(" in the namespace \"{}\"", a.namespace)
    };
    let gr = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let head = if a.name.is_empty() {
        format!("{gr} is forbidden")
    } else {
        format!("{gr} \"{}\" is forbidden", a.name)
    };
    let msg = format!(
        "{head}: User \"{user}\" cannot {} resource \"{combined}\" in API group \"{}\"{scope}",
        a.verb, a.group
    );
    match r {
        Some(r) => ApiError::forbidden(r, &a.name, msg),
        None => ApiError::forbidden_msg(msg),
    }
}

/// The RBAC decision for a resource request of a user.
pub async fn authorize(
    objects: &Objects,
    u: &UserInfo,
    verb: &str,
    r: &'static Resource,
    sub: Option<&str>,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ApiResult<()> {
    let name = name.unwrap_or("");
    let a = Ask {
        verb,
        group: r.group,
        resource: r.plural,
        subresource: sub.unwrap_or(""),
        // namespaces are cluster-scoped; the request's namespace is the namespace itself
        namespace: if crate::resources::is_core(r, "Namespace") {
            name
        } else if r.namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        },
        name,
        path: None,
    };
    if permits_ask(objects, u, a).await? {
        return Ok(());
    }
    let mut shown = a.to_attributes();
    if crate::resources::is_core(r, "Namespace") {
        shown.namespace.clear();
    }
    Err(forbidden(&u.name, &shown, Some(r)))
}

// ---- escalation prevention (pkg/registry/rbac/validation/policy_comparator.go `Covers`,
// pkg/apis/rbac/v1/helpers `BreakdownRule`, `CompactRules`; pkg/registry/rbac/escalation_check.go;
// pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased/storage.go) ----

/// One broken-down rule: a single verb on a single group/resource (and name), or on one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubRule {
    verb: String,
    group: Option<String>,
    resource: Option<String>,
    name: Option<String>,
    url: Option<String>,
}

/// `BreakdownRule`.
fn breakdown(rule: &Value) -> Vec<SubRule> {
    let mut out = vec![];
    let verbs = strs(rule.get("verbs"));
    let names = strs(rule.get("resourceNames"));
    for g in strs(rule.get("apiGroups")) {
        for r in strs(rule.get("resources")) {
            for v in &verbs {
                let base = SubRule {
                    verb: v.to_string(),
                    group: Some(g.to_string()),
                    resource: Some(r.to_string()),
                    name: None,
                    url: None,
                };
                if names.is_empty() {
                    out.push(base);
                } else {
                    for n in &names {
                        out.push(SubRule {
                            name: Some(n.to_string()),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for u in strs(rule.get("nonResourceURLs")) {
        for v in &verbs {
            out.push(SubRule {
                verb: v.to_string(),
                group: None,
                resource: None,
                name: None,
                url: Some(u.to_string()),
            });
        }
    }
    out
}

/// `ruleCovers` for a broken-down rule.
fn rule_covers(owner: &Value, sub: &SubRule) -> bool {
    let verbs = strs(owner.get("verbs"));
    let groups = strs(owner.get("apiGroups"));
    let resources = strs(owner.get("resources"));
    let names = strs(owner.get("resourceNames"));
    let urls = strs(owner.get("nonResourceURLs"));
    let verb_ok = verbs.contains(&"*") || verbs.contains(&sub.verb.as_str());
    let group_ok = match &sub.group {
        None => true,
        Some(g) => groups.contains(&"*") || groups.contains(&g.as_str()),
    };
    let resource_ok = match &sub.resource {
        None => true,
        Some(r) => {
            resources.contains(&"*")
                || resources.contains(&r.as_str())
                || r.split_once('/')
                    .is_some_and(|(_, s)| resources.contains(&format!("*/{s}").as_str()))
        }
    };
    let url_ok = match &sub.url {
        None => true,
        Some(u) => urls
            .iter()
            .any(|o| *o == u || o.ends_with('*') && u.starts_with(o.trim_end_matches('*'))),
    };
    let name_ok = match &sub.name {
        None => names.is_empty(),
        Some(n) => names.is_empty() || names.contains(&n.as_str()),
    };
    verb_ok && group_ok && resource_ok && url_ok && name_ok
}

fn go_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// (group, resource, name) of a simple resource rule (`simpleResource`).
type SimpleKey = (String, String, Option<String>);

/// The uncovered rights, compacted (`CompactRules`) and sorted as upstream (`String()`), each
/// as `CompactString`.
fn missing_rights(subs: Vec<SubRule>) -> Vec<String> {
    // (group, resource, name) → verbs, for simple resource rules; URL rules stay one each
    let mut simple: Vec<(SimpleKey, Vec<String>)> = vec![];
    let mut urls: Vec<SubRule> = vec![];
    for s in subs {
        match (&s.group, &s.resource) {
            (Some(g), Some(r)) => {
                let key = (g.clone(), r.clone(), s.name.clone());
                match simple.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push(s.verb),
                    None => simple.push((key, vec![s.verb])),
                }
            }
            _ => urls.push(s),
        }
    }
    let mut rules: Vec<(String, String)> = vec![];
    for ((g, r, n), verbs) in simple {
        let names: Vec<String> = n.into_iter().collect();
        let mut compact = format!(
            "{{APIGroups:{}, Resources:{}",
            go_list(std::slice::from_ref(&g)),
            go_list(std::slice::from_ref(&r))
        );
        if !names.is_empty() {
            compact.push_str(&format!(", ResourceNames:{}", go_list(&names)));
        }
        compact.push_str(&format!(", Verbs:{}}}", go_list(&verbs)));
        let key = format!(
            "&PolicyRule{{Verbs:[{}],APIGroups:[{g}],Resources:[{r}],ResourceNames:[{}],NonResourceURLs:[],}}",
            verbs.join(" "),
            names.join(" ")
        );
        rules.push((key, compact));
    }
    for u in urls {
        let url = u.url.unwrap_or_default();
        rules.push((
            format!("&PolicyRule{{Verbs:[{}],APIGroups:[],Resources:[],ResourceNames:[],NonResourceURLs:[{url}],}}", u.verb),
            format!("{{NonResourceURLs:{}, Verbs:{}}}", go_list(std::slice::from_ref(&url)), go_list(std::slice::from_ref(&u.verb))),
        ));
    }
    rules.sort();
    rules.into_iter().map(|(_, c)| c).collect()
}

/// The roleRef of a RoleBinding or ClusterRoleBinding body, typed (`rbacv1.RoleRef`: a missing
/// roleRef or field is empty, as the typed decode of the binding leaves it), its API group
/// defaulted when empty (`SetDefaults_RoleBinding`, `SetDefaults_ClusterRoleBinding`,
/// pkg/apis/rbac/v1/defaults.go). A roleRef of the wrong shape is the decoder's 400.
pub(crate) fn role_ref(r: &Resource, obj: &Value) -> ApiResult<RoleRef> {
    let mut role_ref = match obj.get("roleRef") {
        None | Some(Value::Null) => RoleRef::default(),
        Some(v) => RoleRef::deserialize(v).map_err(|e| {
            ApiError::bad_request(format!(
                "{kind} in version \"v1\" cannot be handled as a {kind}: roleRef: {e}",
                kind = r.kind
            ))
        })?,
    };
    default_role_ref_group(&mut role_ref);
    Ok(role_ref)
}

/// `SetDefaults_RoleBinding`'s roleRef rule (kubernetes `pkg/apis/rbac/v1/defaults.go`): an
/// empty `apiGroup` is the RBAC group.
pub(crate) fn default_role_ref_group(role_ref: &mut RoleRef) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = RBAC_GROUP.to_string();
    }
}

/// The API group of RBAC (`rbac.GroupName`).
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `ValidateRoleBinding` and `ValidateClusterRoleBinding` (pkg/apis/rbac/validation/
/// validation.go) past the metadata, on the defaulted binding: the roleRef's API group is
/// RBAC's, its kind `Role` or `ClusterRole` (only `ClusterRole` for a ClusterRoleBinding), its
/// name given and a valid path segment (`minimalNameRequirements`,
/// `path.IsValidPathSegmentName`); every subject checked by `ValidateRoleBindingSubject`.
/// Nothing for other kinds, and nothing for a roleRef or subjects of the wrong shape, which the
/// decoder has refused with 400 before validation runs.
pub(crate) fn binding_causes(r: &Resource, obj: &Value) -> Vec<Cause> {
    let kinds: &[&str] = match r.kind {
        "RoleBinding" => &["Role", "ClusterRole"],
        "ClusterRoleBinding" => &["ClusterRole"],
        _ => return vec![],
    };
    let mut causes = vec![];
    if let Ok(role_ref) = role_ref(r, obj) {
        if role_ref.api_group != RBAC_GROUP {
            causes.push(Cause::not_supported(
                "roleRef.apiGroup",
                format!("\"{}\"", role_ref.api_group),
                &[RBAC_GROUP],
            ));
        }
        if !kinds.contains(&role_ref.kind.as_str()) {
            causes.push(Cause::not_supported(
                "roleRef.kind",
                format!("\"{}\"", role_ref.kind),
                kinds,
            ));
        }
        if role_ref.name.is_empty() {
            causes.push(Cause::required("roleRef.name", ""));
        } else {
            for msg in path_segment_problems(&role_ref.name) {
                causes.push(Cause::invalid(
                    "roleRef.name",
                    format!("\"{}\"", role_ref.name),
                    msg,
                ));
            }
        }
    }
    let subjects = obj
        .get("subjects")
        .and_then(|s| Vec::<k8s_openapi::api::rbac::v1::Subject>::deserialize(s).ok())
        .unwrap_or_default();
    let namespaced = r.kind == "RoleBinding";
    for (i, s) in subjects.iter().enumerate() {
        subject_causes(s, namespaced, &format!("subjects[{i}]"), &mut causes);
    }
    causes
}

/// `ValidateRoleBindingSubject` (pkg/apis/rbac/validation/validation.go), on a subject whose
/// API group has been defaulted (`SetDefaults_Subject`).
fn subject_causes(
    s: &k8s_openapi::api::rbac::v1::Subject,
    namespaced: bool,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if s.name.is_empty() {
        causes.push(Cause::required(format!("{path}.name"), ""));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            // `ValidateServiceAccountName` is `NameIsDNSSubdomain`
            if !s.name.is_empty() {
                for msg in crate::admission::dns1123_subdomain_problems(&s.name) {
                    causes.push(Cause::invalid(
                        format!("{path}.name"),
                        format!("\"{}\"", s.name),
                        msg,
                    ));
                }
            }
            if !group.is_empty() {
                causes.push(Cause::not_supported(
                    format!("{path}.apiGroup"),
                    format!("\"{group}\""),
                    &[""],
                ));
            }
            if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                causes.push(Cause::required(format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                causes.push(Cause::not_supported(
                    format!("{path}.apiGroup"),
                    format!("\"{group}\""),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => causes.push(Cause::not_supported(
            format!("{path}.kind"),
            format!("\"{other}\""),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// `path.IsValidPathSegmentName` (k8s.io/apimachinery `pkg/api/validation/path/name.go`).
pub(crate) fn path_segment_problems(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// The escalation check of the RBAC storage (`pkg/registry/rbac/{role,clusterrole,rolebinding,
/// clusterrolebinding}/policybased/storage.go`), where kube-apiserver runs it: in the storage's
/// `Create` and `Update`, so after mutating admission (the object a mutating webhook made is
/// the one checked) and before validation and validating admission. The server's own writes
/// and nodes' are not checked (`EscalationAllowed`: no user to check); an update that changes
/// only the fields the garbage collector manages is not checked (`IsOnlyMutatingGCFields`).
pub async fn confirm_no_escalation(
    objects: &Objects,
    user: &crate::objects::User,
    r: &'static Resource,
    namespace: &str,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let crate::objects::User::Other(u) = user else {
        return Ok(());
    };
    if r.group != RBAC_GROUP || old.is_some_and(|old| only_gc_fields_change(obj, old)) {
        return Ok(());
    }
    check_escalation(objects, u, r, namespace, name, obj).await
}

/// `IsOnlyMutatingGCFields` (pkg/registry/rbac/helpers.go): `obj` with the old object's owner
/// references, finalizers, selfLink and managed fields is the old object, compared as
/// `Semantic.DeepEqual` does (an empty list or map is an absent one).
pub(crate) fn only_gc_fields_change(obj: &Value, old: &Value) -> bool {
    let mut copied = obj.clone();
    let Some(meta) = copied.get_mut("metadata").and_then(Value::as_object_mut) else {
        return false;
    };
    for f in ["ownerReferences", "finalizers", "selfLink", "managedFields"] {
        match old.pointer(&format!("/metadata/{f}")) {
            Some(v) => {
                meta.insert(f.into(), v.clone());
            }
            None => {
                meta.remove(f);
            }
        }
    }
    semantic(&copied) == semantic(old)
}

/// A value with null, empty lists and empty maps left out (recursively), for comparisons that
/// treat them as absent, as `Semantic.DeepEqual` treats nil and empty slices and maps.
fn semantic(v: &Value) -> Value {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), semantic(v)))
                .filter(|(_, v)| !empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

/// Role, ClusterRole and binding writes by users: allowed for `system:masters`, for holders of
/// `escalate` (roles) or `bind` (bindings, on the referenced role), or when the user already
/// holds every permission granted (`ConfirmNoEscalation`).
pub async fn check_escalation(
    objects: &Objects,
    u: &UserInfo,
    r: &'static Resource,
    namespace: &str,
    name: &str,
    obj: &Value,
) -> ApiResult<()> {
    if u.groups.iter().any(|g| g == "system:masters") {
        return Ok(());
    }
    let ns = if r.namespaced { namespace } else { "" };
    let gate = |verb: &str, plural: &str, n: &str| Attributes {
        verb: verb.into(),
        group: "rbac.authorization.k8s.io".into(),
        resource: plural.into(),
        namespace: ns.into(),
        name: n.into(),
        ..Default::default()
    };
    let granted: Vec<Value> = match r.kind {
        "Role" | "ClusterRole" => {
            if permits(objects, u, &gate("escalate", r.plural, name)).await? {
                return Ok(());
            }
            obj.get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role_ref = role_ref(r, obj)?;
            let (kind, role_name) = (role_ref.kind.as_str(), role_ref.name.as_str());
            // `BindingAuthorized`: `bind` on the role the roleRef names, in the roleRef's API
            // group; any other kind is never authorized
            let plural = match kind {
                "Role" => "roles",
                "ClusterRole" => "clusterroles",
                _ => "",
            };
            let bind = Attributes {
                group: role_ref.api_group.clone(),
                ..gate("bind", plural, role_name)
            };
            if !plural.is_empty() && permits(objects, u, &bind).await? {
                return Ok(());
            }
            // `GetRoleReferenceRules`
            if plural.is_empty() {
                return Err(ApiError::forbidden(
                    r,
                    name,
                    format!(
                        "{} \"{name}\" is forbidden: unsupported role reference kind: \"{kind}\"",
                        r.qualified()
                    ),
                ));
            }
            let role = match kind {
                "Role" => objects.get_opt(res("roles"), ns, role_name).await?,
                _ => objects.get_opt(res("clusterroles"), "", role_name).await?,
            };
            let Some(role) = role else {
                let rr = res(plural);
                return Err(ApiError::forbidden(
                    r,
                    name,
                    format!(
                        "{} \"{name}\" is forbidden: {} \"{role_name}\" not found",
                        r.qualified(),
                        rr.qualified()
                    ),
                ));
            };
            role.get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        _ => return Ok(()),
    };
    let owner: Vec<Value> = rules_for(objects, u, ns)
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let uncovered: Vec<SubRule> = granted
        .iter()
        .flat_map(breakdown)
        .filter(|s| !owner.iter().any(|o| rule_covers(o, s)))
        .collect();
    if uncovered.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden(
        r,
        name,
        format!(
            "{} \"{name}\" is forbidden: user \"{}\" (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            r.qualified(),
            u.name,
            go_list(&u.groups),
            missing_rights(uncovered).join("\n")
        ),
    ))
}

fn role(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": rules,
    })
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": groups.iter().map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g})).collect::<Vec<_>>(),
    })
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// `system:aggregate-to-view` (the resources this server serves, and the standard ones).
fn view_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"], "verbs": READ},
        {"apiGroups": [""], "resources": ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], "verbs": READ},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
        {"apiGroups": ["apps"], "resources": ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"], "verbs": READ},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], "verbs": READ},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], "verbs": READ},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"], "verbs": READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"], "verbs": READ},
    ])
}

/// `system:aggregate-to-edit`.
fn edit_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], "verbs": READ},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
        {"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], "verbs": WRITE},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], "verbs": WRITE},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], "verbs": WRITE},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": WRITE},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": WRITE},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": WRITE},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
    ])
}

/// `system:aggregate-to-admin`.
fn admin_rules() -> Value {
    json!([
        {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
    ])
}

fn concat(parts: &[Value]) -> Value {
    Value::Array(
        parts
            .iter()
            .flat_map(|p| p.as_array().cloned().unwrap_or_default())
            .collect(),
    )
}

/// The bootstrap ClusterRoles and ClusterRoleBindings.
pub fn bootstrap_objects() -> (Vec<Value>, Vec<Value>) {
    let agg = |name: &str, label: &str, rules: Value, labelled: Option<&str>| {
        let mut r = role(name, rules);
        r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {format!("rbac.authorization.k8s.io/{label}"): "true"}}]});
        if let Some(l) = labelled {
            r["metadata"]["labels"][format!("rbac.authorization.k8s.io/{l}")] = json!("true");
        }
        r
    };
    let to = |name: &str, label: &str, rules: Value| {
        let mut r = role(name, rules);
        r["metadata"]["labels"][format!("rbac.authorization.k8s.io/{label}")] = json!("true");
        r
    };
    let roles = vec![
        role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        agg(
            "admin",
            "aggregate-to-admin",
            concat(&[admin_rules(), edit_rules(), view_rules()]),
            None,
        ),
        agg(
            "edit",
            "aggregate-to-edit",
            concat(&[edit_rules(), view_rules()]),
            Some("aggregate-to-admin"),
        ),
        agg(
            "view",
            "aggregate-to-view",
            view_rules(),
            Some("aggregate-to-edit"),
        ),
        to(
            "system:aggregate-to-admin",
            "aggregate-to-admin",
            admin_rules(),
        ),
        to(
            "system:aggregate-to-edit",
            "aggregate-to-edit",
            edit_rules(),
        ),
        to(
            "system:aggregate-to-view",
            "aggregate-to-view",
            view_rules(),
        ),
        role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ]),
        ),
        role(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        // bootstrap policy `system:monitoring`: the metrics and health endpoints
        role(
            "system:monitoring",
            json!([{"nonResourceURLs": ["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"], "verbs": ["get"]}]),
        ),
        role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
    ];
    let bindings = vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &["system:monitoring"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ];
    (roles, bindings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: name.into(),
            path: None,
        }
    }

    #[test]
    fn matching_follows_upstream() {
        let r = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]});
        assert!(rule_allows(&r, &a("get", "", "pods", "", "x")));
        assert!(
            !rule_allows(&r, &a("get", "", "pods", "log", "x")),
            "pods does not cover pods/log"
        );
        assert!(!rule_allows(&r, &a("delete", "", "pods", "", "x")));
        assert!(!rule_allows(&r, &a("get", "apps", "pods", "", "x")));
        let sub = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(
            &sub,
            &a("update", "apps", "deployments", "status", "d")
        ));
        assert!(!rule_allows(
            &sub,
            &a("update", "apps", "deployments", "", "d")
        ));
        let named = json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"], "verbs": ["get"]});
        assert!(rule_allows(&named, &a("get", "", "secrets", "", "a")));
        assert!(!rule_allows(&named, &a("get", "", "secrets", "", "")));
        let nr = json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]});
        let p = |path: &str| Attributes {
            verb: "get".into(),
            path: Some(path.into()),
            ..Default::default()
        };
        assert!(rule_allows(&nr, &p("/apis/apps")));
        assert!(!rule_allows(&nr, &p("/api")));
    }

    #[test]
    fn coverage_and_missing_rights() {
        let owner =
            json!({"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]});
        let want = json!({"apiGroups": ["", "apps"], "resources": ["pods", "secrets"], "verbs": ["get", "delete"]});
        let missing: Vec<SubRule> = breakdown(&want)
            .into_iter()
            .filter(|s| !rule_covers(&owner, s))
            .collect();
        assert_eq!(
            missing_rights(missing),
            [
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}",
                "{APIGroups:[\"apps\"], Resources:[\"pods\"], Verbs:[\"get\" \"delete\"]}",
                "{APIGroups:[\"apps\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}",
            ]
        );
        let sub = breakdown(
            &json!({"apiGroups": [""], "resources": ["deployments/status"], "verbs": ["get"]}),
        );
        assert!(rule_covers(&owner, &sub[0]));
        let named = breakdown(
            &json!({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]}),
        );
        assert!(rule_covers(&owner, &named[0]));
        let owner_named = json!({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]});
        let all = breakdown(&json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}));
        assert!(
            !rule_covers(&owner_named, &all[0]),
            "a named rule does not cover all names"
        );
        let urls = json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]});
        let want =
            breakdown(&json!({"nonResourceURLs": ["/apis/apps", "/healthz"], "verbs": ["get"]}));
        assert!(rule_covers(&urls, &want[0]) && !rule_covers(&urls, &want[1]));
    }

    #[test]
    fn messages() {
        let e = forbidden(
            "system:serviceaccount:t:bot",
            &a("list", "", "secrets", "", ""),
            None,
        );
        assert_eq!(e.message, "secrets is forbidden: User \"system:serviceaccount:t:bot\" cannot list resource \"secrets\" in API group \"\" in the namespace \"ns\"");
        let mut c = a("get", "apps", "deployments", "scale", "web");
        c.namespace.clear();
        assert_eq!(forbidden("u", &c, None).message, "deployments.apps \"web\" is forbidden: User \"u\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope");
    }

    #[test]
    fn decoded_rules_match_as_the_stored_json_does() {
        let rules = [
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}),
            json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}),
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"], "verbs": ["get"]}),
            json!({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["create", 7]}),
            json!({"nonResourceURLs": ["/apis/*", "/healthz"], "verbs": ["get"]}),
            json!({"verbs": ["get"]}),
        ];
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: Some(p.into()),
            ..Default::default()
        };
        let asks = [
            a("get", "", "pods", "", "x"),
            a("get", "", "pods", "log", "x"),
            a("delete", "", "pods", "", "x"),
            a("update", "apps", "deployments", "status", "d"),
            a("update", "apps", "deployments", "", "d"),
            a("create", "apps", "deployments", "", "d"),
            a("get", "", "secrets", "", "a"),
            a("get", "", "secrets", "", "b"),
            a("get", "", "secrets", "", ""),
            path("/apis/apps"),
            path("/healthz"),
            path("/api"),
        ];
        let (mut yes, mut no) = (0, 0);
        for r in &rules {
            let typed = Rule::from_value(r);
            for ask in &asks {
                let want = rule_allows(r, ask);
                assert_eq!(typed.allows(ask), want, "{r} {ask:?}");
                if want {
                    yes += 1;
                } else {
                    no += 1;
                }
            }
        }
        assert!(yes >= 6 && no >= 30, "{yes} allowed, {no} denied");
        // a stored role's rules, in order; not JSON, or not an object: left out of the cache
        let role = json!({"metadata": {"name": "r"}, "rules": rules});
        let decoded = decode_role(&serde_json::to_vec(&role).unwrap()).unwrap();
        assert_eq!(decoded.len(), rules.len());
        assert_eq!(decoded[2], Rule::from_value(&rules[2]));
        assert_eq!(decode_role(b"[1]"), None);
        assert_eq!(decode_role(b"{"), None);
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    /// `ValidateRoleBinding` / `ValidateClusterRoleBinding` on the typed roleRef: a missing
    /// roleRef fails on its kind and name (the API group is defaulted), as kube-apiserver says.
    #[test]
    fn binding_role_refs_are_validated() {
        let (rb, crb) = (res("rolebindings"), res("clusterrolebindings"));
        let check = |r: &Resource, role_ref: Value| {
            let mut obj = json!({"metadata": {"name": "b"}, "subjects": []});
            if !role_ref.is_null() {
                obj["roleRef"] = role_ref;
            }
            let causes = binding_causes(r, &obj);
            if causes.is_empty() {
                Ok(())
            } else {
                let e = ApiError::invalid(r, "b", causes);
                Err((e.code, e.message))
            }
        };
        assert_eq!(
            check(rb, Value::Null),
            Err((422, "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: [roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\", roleRef.name: Required value]".into()))
        );
        assert_eq!(
            check(crb, json!({})),
            Err((422, "ClusterRoleBinding.rbac.authorization.k8s.io \"b\" is invalid: [roleRef.kind: Unsupported value: \"\": supported values: \"ClusterRole\", roleRef.name: Required value]".into()))
        );
        assert_eq!(
            check(crb, json!({"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"})),
            Err((422, "ClusterRoleBinding.rbac.authorization.k8s.io \"b\" is invalid: roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"".into()))
        );
        assert_eq!(
            check(rb, json!({"apiGroup": "apps", "kind": "Role", "name": "a/%b"})),
            Err((422, "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: [roleRef.apiGroup: Unsupported value: \"apps\": supported values: \"rbac.authorization.k8s.io\", roleRef.name: Invalid value: \"a/%b\": may not contain '/', roleRef.name: Invalid value: \"a/%b\": may not contain '%']".into()))
        );
        assert_eq!(
            check(rb, json!({"kind": "Role", "name": ".."})),
            Err((422, "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: roleRef.name: Invalid value: \"..\": may not be '..'".into()))
        );
        // a roleRef of the wrong shape is the decoder's (400 before validation)
        assert_eq!(check(rb, json!("view")), Ok(()));
        // valid, with and without the API group
        assert_eq!(
            check(rb, json!({"kind": "ClusterRole", "name": "view"})),
            Ok(())
        );
        assert_eq!(
            check(
                rb,
                json!({"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"})
            ),
            Ok(())
        );
        assert_eq!(
            check(crb, json!({"kind": "ClusterRole", "name": "view"})),
            Ok(())
        );
        // other kinds are not bindings
        assert!(binding_causes(res("roles"), &json!({})).is_empty());
    }

    /// `ValidateRoleBindingSubject`: names required, ServiceAccount names are DNS subdomains in
    /// the core group and, in a ClusterRoleBinding, name their namespace; Users and Groups are
    /// in the RBAC group (defaulted when left out); other kinds are refused.
    #[test]
    fn binding_subjects_are_validated() {
        let (rb, crb) = (res("rolebindings"), res("clusterrolebindings"));
        let check = |r: &Resource, subjects: Value| {
            let obj = json!({"metadata": {"name": "b"}, "subjects": subjects,
                "roleRef": {"kind": "ClusterRole", "name": "view"}});
            let causes = binding_causes(r, &obj);
            causes.iter().map(Cause::text).collect::<Vec<_>>()
        };
        let ok = json!([
            {"kind": "ServiceAccount", "name": "builder.v2", "namespace": "ci"},
            {"kind": "User", "apiGroup": RBAC_GROUP, "name": "alice"},
            {"kind": "Group", "apiGroup": RBAC_GROUP, "name": "devs"}
        ]);
        assert_eq!(check(rb, ok.clone()), Vec::<String>::new());
        assert_eq!(check(crb, ok), Vec::<String>::new());
        assert_eq!(
            check(
                rb,
                json!([{"kind": "ServiceAccount", "name": "Builder", "apiGroup": "v1"}])
            ),
            vec![
                format!(
                    "subjects[0].name: Invalid value: \"Builder\": {}",
                    crate::admission::DNS1123_SUBDOMAIN_MSG
                ),
                "subjects[0].apiGroup: Unsupported value: \"v1\": supported values: \"\""
                    .to_string(),
            ]
        );
        assert_eq!(
            check(crb, json!([{"kind": "ServiceAccount", "name": "builder"}])),
            vec!["subjects[0].namespace: Required value".to_string()]
        );
        assert_eq!(
            check(rb, json!([{"kind": "ServiceAccount", "name": "builder"}])),
            Vec::<String>::new()
        );
        assert_eq!(
            check(rb, json!([{"kind": "User", "apiGroup": "apps", "name": ""}, {"kind": "Robot", "name": "r"}])),
            vec![
                "subjects[0].name: Required value".to_string(),
                "subjects[0].apiGroup: Unsupported value: \"apps\": supported values: \"rbac.authorization.k8s.io\"".to_string(),
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"".to_string(),
            ]
        );
    }

    /// A binding's roleRef and subject problems are reported with its other validation problems
    /// in one 422, as kube-apiserver's `ValidateRoleBinding`, on create and on update.
    #[tokio::test]
    async fn binding_problems_merge_into_one_invalid() {
        use kubepull_datastore::memory::MemoryStore;
        let objects = crate::objects::Objects::new(Arc::new(MemoryStore::new()));
        let rb = res("rolebindings");
        objects
            .create(
                resources::find("", "v1", "namespaces").unwrap(),
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
                &crate::objects::User::Admin,
                false,
            )
            .await
            .unwrap();
        let body = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "a/b", "namespace": "default"},
            "roleRef": {"kind": "Deployment", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": ""}]});
        let e = objects
            .create(rb, "default", body, &crate::objects::User::Admin, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "RoleBinding.rbac.authorization.k8s.io \"a/b\" is invalid: [metadata.name: Invalid value: \"a/b\": may not contain '/', roleRef.kind: Unsupported value: \"Deployment\": supported values: \"Role\", \"ClusterRole\", subjects[0].name: Required value]"
        );
        assert!(objects
            .get_opt(rb, "default", "a/b")
            .await
            .unwrap()
            .is_none());
        // an update is validated the same way, beside the roleRef immutability
        let good = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "default"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}]});
        let stored = objects
            .create(rb, "default", good, &crate::objects::User::Admin, false)
            .await
            .unwrap();
        let mut bad = stored.clone();
        bad["subjects"] = json!([{"kind": "Robot", "name": "r"}]);
        let e = objects
            .update(rb, "default", "b", bad, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("subjects[0].kind: Unsupported value: \"Robot\""),
            "{}",
            e.message
        );
        assert_eq!(objects.get(rb, "default", "b").await.unwrap(), stored);
    }

    /// `BindingAuthorized` asks `bind` in the roleRef's (defaulted) API group and only for a
    /// Role or ClusterRole: `bind` on every ClusterRole does not let a binding without a roleRef
    /// through (`GetRoleReferenceRules`: unsupported kind).
    #[tokio::test]
    async fn escalation_reads_the_typed_role_ref() {
        use kubepull_datastore::memory::MemoryStore;
        let objects = crate::objects::Objects::new(Arc::new(MemoryStore::new()));
        let put = |plural: &str, ns: &str, obj: Value| {
            let (objects, key) = (
                &objects,
                res(plural).key(ns, obj["metadata"]["name"].as_str().unwrap()),
            );
            async move {
                objects
                    .store()
                    .create(&key, serde_json::to_vec(&obj).unwrap())
                    .await
                    .unwrap();
            }
        };
        put("clusterroles", "", json!({"metadata": {"name": "binder"},
            "rules": [{"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"]}]})).await;
        put(
            "clusterroles",
            "",
            json!({"metadata": {"name": "view"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        )
        .await;
        put(
            "clusterrolebindings",
            "",
            json!({"metadata": {"name": "bob-binds"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "binder"},
            "subjects": [{"kind": "User", "name": "bob"}]}),
        )
        .await;
        let bob = user("bob", &["system:authenticated"]);
        let rb = res("rolebindings");
        let escalate = |role_ref: Value| {
            let mut obj =
                json!({"metadata": {"name": "b"}, "subjects": [{"kind": "User", "name": "eve"}]});
            if !role_ref.is_null() {
                obj["roleRef"] = role_ref;
            }
            let (objects, bob) = (&objects, &bob);
            async move {
                check_escalation(objects, bob, rb, "team", "b", &obj)
                    .await
                    .map_err(|e| (e.code, e.message))
            }
        };
        // `bind` on the ClusterRole, its API group defaulted
        assert_eq!(
            escalate(json!({"kind": "ClusterRole", "name": "view"})).await,
            Ok(())
        );
        assert_eq!(
            escalate(json!({"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"})).await,
            Ok(())
        );
        // a roleRef in another group is not the ClusterRole bob may bind; bob does not hold
        // the role's rules either
        assert_eq!(
            escalate(json!({"apiGroup": "apps", "kind": "ClusterRole", "name": "view"})).await,
            Err((403, "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}".into()))
        );
        for role_ref in [
            Value::Null,
            json!({}),
            json!({"kind": "Secret", "name": "view"}),
        ] {
            let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
            assert_eq!(
                escalate(role_ref.clone()).await,
                Err((403, format!("rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: unsupported role reference kind: \"{kind}\""))),
                "{role_ref}"
            );
        }
        // no Role of that name in the namespace
        assert_eq!(
            escalate(json!({"kind": "Role", "name": "missing"})).await,
            Err((403, "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: roles.rbac.authorization.k8s.io \"missing\" not found".into()))
        );
    }

    #[test]
    fn bindings_apply_to_their_subjects() {
        let b = Binding::from_value(&json!({
            "metadata": {"name": "b", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "bot"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                {"kind": "Robot", "name": "bob"},
            ],
        }));
        assert_eq!(
            (b.name.as_str(), b.role_kind.as_str(), b.role_name.as_str()),
            ("b", "Role", "r")
        );
        assert!(b.applies_to(&user("alice", &[]), "team"));
        assert!(!b.applies_to(&user("bob", &[]), "team"));
        assert!(b.applies_to(&user("carol", &["devs"]), "team"));
        // a ServiceAccount without a namespace is the binding's namespace's
        assert!(b.applies_to(&user("system:serviceaccount:team:bot", &[]), "team"));
        assert!(!b.applies_to(&user("system:serviceaccount:other:bot", &[]), "team"));
        assert!(b.applies_to(&user("system:serviceaccount:build:ci", &[]), "team"));
        assert!(!b.applies_to(&user("system:serviceaccount:team:ci", &[]), "team"));
        assert!(!b.applies_to(&user("system:serviceaccount:team:botx", &[]), "team"));
        // no subjects: nobody
        let none = Binding::from_value(&json!({"metadata": {"name": "n"}}));
        assert!(!none.applies_to(&user("alice", &["devs"]), ""));
        assert_eq!(decode_binding(b"\"x\""), None);
    }

    /// The caches answer as `VisitRulesFor` walks: ClusterRoleBindings first, then the
    /// RoleBindings of the namespace, the first binding whose role allows wins; a
    /// ClusterRoleBinding of a Role grants nothing; the caches follow writes at once.
    #[tokio::test]
    async fn the_caches_find_the_first_binding_that_allows() {
        use crate::watchcache::Tracked;
        use kubepull_datastore::memory::MemoryStore;
        let caches = Caches::new();
        let store: Arc<dyn Datastore> =
            Arc::new(Tracked::new(Arc::new(MemoryStore::new()), caches.all()));
        let put = |plural: &str, ns: &str, obj: Value| {
            let (store, key) = (
                store.clone(),
                res(plural).key(ns, obj["metadata"]["name"].as_str().unwrap()),
            );
            async move {
                store
                    .create(&key, serde_json::to_vec(&obj).unwrap())
                    .await
                    .unwrap();
            }
        };
        let binding = |name: &str, kind: &str, role: &str, subject: Value| json!({"metadata": {"name": name}, "roleRef": {"kind": kind, "name": role}, "subjects": [subject]});
        let get_secrets = json!({"metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
        let all = json!({"metadata": {"name": "everything"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]});
        put("clusterroles", "", get_secrets.clone()).await;
        put("roles", "team", all.clone()).await;
        put("roles", "team", get_secrets).await;
        let alice = user("alice", &["system:authenticated"]);
        let decide = |verb: &str, ns: &str| {
            let ask = Attributes {
                verb: verb.into(),
                resource: "secrets".into(),
                namespace: ns.into(),
                ..Default::default()
            };
            let (caches, store, alice) = (&caches, &store, &alice);
            async move {
                caches
                    .allowed_by(store, alice, ask.ask())
                    .await
                    .expect("the caches answer")
                    .map(|(b, cluster)| (b.name.clone(), cluster))
            }
        };
        assert_eq!(decide("get", "team").await, None);
        // a RoleBinding of the namespace's Role
        put(
            "rolebindings",
            "team",
            binding(
                "rb-all",
                "Role",
                "everything",
                json!({"kind": "User", "name": "alice"}),
            ),
        )
        .await;
        assert_eq!(
            decide("delete", "team").await,
            Some(("rb-all".into(), false))
        );
        assert_eq!(decide("delete", "other").await, None);
        // a ClusterRoleBinding comes first; one of a Role grants nothing
        put(
            "clusterrolebindings",
            "",
            binding(
                "crb-role",
                "Role",
                "everything",
                json!({"kind": "Group", "name": "system:authenticated"}),
            ),
        )
        .await;
        put(
            "clusterrolebindings",
            "",
            binding(
                "crb-read",
                "ClusterRole",
                "secret-reader",
                json!({"kind": "Group", "name": "system:authenticated"}),
            ),
        )
        .await;
        assert_eq!(decide("get", "team").await, Some(("crb-read".into(), true)));
        assert_eq!(
            decide("get", "other").await,
            Some(("crb-read".into(), true))
        );
        assert_eq!(
            decide("delete", "team").await,
            Some(("rb-all".into(), false))
        );
        assert_eq!(decide("delete", "").await, None);
        // a RoleBinding of a ClusterRole, in key order before the Role's binding
        put(
            "rolebindings",
            "team",
            binding(
                "a-read",
                "ClusterRole",
                "secret-reader",
                json!({"kind": "User", "name": "alice"}),
            ),
        )
        .await;
        put(
            "rolebindings",
            "team",
            binding(
                "a-all",
                "Role",
                "everything",
                json!({"kind": "User", "name": "bob"}),
            ),
        )
        .await;
        assert_eq!(
            decide("delete", "team").await,
            Some(("rb-all".into(), false))
        );
        let (_, _) = store
            .delete(&res("rolebindings").key("team", "rb-all"), None)
            .await
            .unwrap();
        assert_eq!(decide("delete", "team").await, None);
        // the same walk over storage agrees
        let objects = crate::objects::Objects::new(Arc::new(MemoryStore::new()));
        assert!(!permits(
            &objects,
            &alice,
            &Attributes {
                verb: "get".into(),
                resource: "secrets".into(),
                namespace: "team".into(),
                ..Default::default()
            }
        )
        .await
        .unwrap());
    }

    /// `IsOnlyMutatingGCFields`: owner references, finalizers and managed fields may change
    /// without an escalation check; anything else (a label, a rule) may not; an empty list is
    /// an absent one.
    #[test]
    fn only_the_garbage_collectors_fields_skip_the_escalation_check() {
        let old = json!({"metadata": {"name": "r", "namespace": "t", "resourceVersion": "5",
            "finalizers": ["a"]}, "rules": [{"verbs": ["get"], "resources": ["nodes"]}]});
        let with = |p: &str, v: Value| {
            let mut o = old.clone();
            o.pointer_mut(p).map(|x| *x = v.clone()).unwrap_or_else(|| {
                let (parent, key) = p.rsplit_once('/').unwrap();
                o.pointer_mut(parent).unwrap()[key] = v;
            });
            o
        };
        assert!(only_gc_fields_change(&old, &old));
        assert!(only_gc_fields_change(
            &with("/metadata/finalizers", json!([])),
            &old
        ));
        assert!(only_gc_fields_change(
            &with("/metadata/ownerReferences", json!([{"uid": "u"}])),
            &old
        ));
        assert!(only_gc_fields_change(
            &with("/metadata/managedFields", json!([{"manager": "m"}])),
            &old
        ));
        assert!(only_gc_fields_change(
            &with("/metadata/labels", json!({})),
            &old
        ));
        assert!(!only_gc_fields_change(
            &with("/metadata/labels", json!({"x": "y"})),
            &old
        ));
        assert!(!only_gc_fields_change(&with("/rules", json!([])), &old));
        assert!(!only_gc_fields_change(&json!({"rules": []}), &old));
    }
}
