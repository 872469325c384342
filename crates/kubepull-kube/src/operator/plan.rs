//! What the operator should do, decided from what it observed: pure functions, no I/O, so every
//! rule (selection, copies, admission patches, ServiceAccount patches, status) is tested without
//! a cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use serde_json::{json, Value};

use super::spec::ClusterPullSecretSpec;

/// A namespace as the operator sees it (metadata only).
#[derive(Debug, Clone, Default)]
pub struct NamespaceView {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Being deleted (no new copies go there).
    pub terminating: bool,
}

/// One copy the operator owns (metadata only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The `ClusterPullSecret` it belongs to (its owner label).
    pub owner: String,
    /// The source hash it was written from.
    pub hash: String,
}

/// The source as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// No such Secret.
    Missing,
    /// Present but the kubelet could not use it; `reason` is a CamelCase word, `message` never
    /// quotes the secret.
    Invalid {
        /// Condition reason.
        reason: &'static str,
        /// What is wrong and the fix.
        message: String,
    },
    /// Usable; `hash` is the SHA-256 of its type and data.
    Valid {
        /// Hash of type and data.
        hash: String,
    },
}

/// A selector the API server accepted but that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.namespaceSelector: {0}")]
pub struct SelectorError(pub String);

/// Upstream `metav1.LabelSelectorAsSelector` semantics: every `matchLabels` pair and every
/// expression must hold; `NotIn` and `DoesNotExist` hold when the key is absent; an empty
/// selector selects everything.
pub fn selector_matches(
    sel: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let Some(sel) = sel else { return Ok(true) };
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or(&[]);
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(SelectorError(format!(
                    "operator {} on key {:?} needs at least one value",
                    e.operator, e.key
                )))
            }
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => !have.is_some_and(|h| values.contains(h)),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError(format!(
                    "operator {} on key {:?} takes no values",
                    e.operator, e.key
                )))
            }
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(SelectorError(format!(
                    "unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)"
                )))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Anchored glob: `*` is any run of characters (also none), `?` one character, everything else
/// itself. `kube-*` matches `kube-system`, never `my-kube-system`.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point (the last `*`): linear in practice, no
    // exponential blow-up on patterns such as `*a*a*a*b`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Namespaces that never receive copies whatever the spec says: the source's own and the
/// operator's.
pub fn never_selected(spec: &ClusterPullSecretSpec, ns: &str, operator_ns: &str) -> bool {
    ns == spec.secret_ref.namespace || ns == operator_ns
}

/// Whether `ns` is covered by `spec`.
pub fn selects(
    spec: &ClusterPullSecretSpec,
    ns: &NamespaceView,
    operator_ns: &str,
) -> Result<bool, SelectorError> {
    if never_selected(spec, &ns.name, operator_ns)
        || spec
            .exclude_namespaces
            .iter()
            .any(|g| glob_matches(g, &ns.name))
    {
        return Ok(false);
    }
    selector_matches(spec.namespace_selector.as_ref(), &ns.labels)
}

/// Whether pods running as `service_account` get the secret.
pub fn covers_service_account(spec: &ClusterPullSecretSpec, service_account: &str) -> bool {
    spec.service_accounts.is_empty() || spec.service_accounts.iter().any(|s| s == service_account)
}

/// The copy changes for one `ClusterPullSecret`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// Namespaces that need a new copy.
    pub create: Vec<String>,
    /// Namespaces whose copy is stale (source rotated).
    pub update: Vec<String>,
    /// Copies to delete: `(namespace, name)` (no longer selected, or the source was renamed).
    pub delete: Vec<(String, String)>,
    /// Namespaces whose copy is current.
    pub current: Vec<String>,
    /// Namespaces where another `ClusterPullSecret` owns a Secret of that name.
    pub conflicts: Vec<String>,
}

/// Plans the copies of `cr`: `namespaces` is every namespace, `copies` every copy the operator
/// owns (any owner). A source that is not valid creates and updates nothing (copies already in
/// place stay), but copies outside the selection still go.
pub fn plan_copies(
    cr: &str,
    spec: &ClusterPullSecretSpec,
    source: &SourceState,
    namespaces: &[NamespaceView],
    copies: &[CopyView],
    operator_ns: &str,
) -> Result<CopyPlan, SelectorError> {
    let name = &spec.secret_ref.name;
    let mut plan = CopyPlan::default();
    let mut by_ns: BTreeMap<&str, Vec<&CopyView>> = BTreeMap::new();
    for c in copies {
        by_ns.entry(c.namespace.as_str()).or_default().push(c);
    }
    let mut selected = BTreeSet::new();
    for ns in namespaces {
        if !selects(spec, ns, operator_ns)? {
            continue;
        }
        selected.insert(ns.name.as_str());
        let here = by_ns
            .get(ns.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let same_name = here.iter().find(|c| &c.name == name);
        match (same_name, source) {
            (Some(c), _) if c.owner != cr => plan.conflicts.push(ns.name.clone()),
            (Some(c), SourceState::Valid { hash }) if &c.hash != hash => {
                plan.update.push(ns.name.clone())
            }
            (Some(_), _) => plan.current.push(ns.name.clone()),
            (None, SourceState::Valid { .. }) if !ns.terminating => {
                plan.create.push(ns.name.clone())
            }
            (None, _) => {}
        }
    }
    for c in copies.iter().filter(|c| c.owner == cr) {
        if !selected.contains(c.namespace.as_str()) || &c.name != name {
            plan.delete.push((c.namespace.clone(), c.name.clone()));
        }
    }
    Ok(plan)
}

/// Copies whose `ClusterPullSecret` no longer exists.
pub fn orphans<'a>(copies: &'a [CopyView], crs: &BTreeSet<String>) -> Vec<&'a CopyView> {
    copies.iter().filter(|c| !crs.contains(&c.owner)).collect()
}

/// The pull-secret names a new pod in namespace `ns` running as its ServiceAccount should carry,
/// in `ClusterPullSecret` name order, without those it already lists.
pub fn admission_names(
    pod: &Value,
    ns: &NamespaceView,
    crs: &[(String, ClusterPullSecretSpec)],
    operator_ns: &str,
) -> Vec<String> {
    let sa = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let present: BTreeSet<&str> = pod
        .pointer("/spec/imagePullSecrets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for (_, spec) in crs {
        if !spec.injection.admission()
            || !covers_service_account(spec, sa)
            || !selects(spec, ns, operator_ns).unwrap_or(false)
        {
            continue;
        }
        let name = &spec.secret_ref.name;
        if !present.contains(name.as_str()) && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// The JSONPatch that appends `names` to a pod's `imagePullSecrets` (never replaces).
pub fn admission_patch(pod: &Value, names: &[String]) -> Value {
    let has_list = pod
        .pointer("/spec/imagePullSecrets")
        .is_some_and(Value::is_array);
    if has_list {
        Value::Array(
            names
                .iter()
                .map(|n| json!({"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": n}}))
                .collect(),
        )
    } else {
        let list: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
        json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": list}])
    }
}

/// A ServiceAccount as the operator sees it.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its `imagePullSecrets` names in order.
    pub pull_secrets: Vec<String>,
    /// Names the operator appended earlier (its annotation).
    pub added: Vec<String>,
    /// `metadata.resourceVersion`, for a guarded patch.
    pub resource_version: String,
}

/// The new `imagePullSecrets` names and annotation list of a ServiceAccount, or `None` when it is
/// right already. `desired` are the names the operator's `ServiceAccount`-injecting
/// `ClusterPullSecret`s give it; names the user listed are never removed.
pub fn service_account_change(
    sa: &ServiceAccountView,
    desired: &BTreeSet<String>,
) -> Option<(Vec<String>, Vec<String>)> {
    let mut names: Vec<String> = sa
        .pull_secrets
        .iter()
        .filter(|n| desired.contains(*n) || !sa.added.contains(n))
        .cloned()
        .collect();
    for d in desired {
        if !names.contains(d) {
            names.push(d.clone());
        }
    }
    let added: Vec<String> = desired
        .iter()
        .filter(|d| sa.added.contains(d) || !sa.pull_secrets.contains(d))
        .cloned()
        .collect();
    let mut old_added = sa.added.clone();
    old_added.sort();
    if names == sa.pull_secrets && added == old_added {
        None
    } else {
        Some((names, added))
    }
}

/// Sets condition `c` in `conds`, keeping `lastTransitionTime` when the status did not change
/// (upstream `meta.SetStatusCondition`).
pub fn set_condition(conds: &mut Vec<Condition>, mut c: Condition) {
    if let Some(old) = conds.iter_mut().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

/// A condition stamped `now`.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn spec() -> ClusterPullSecretSpec {
        serde_json::from_value(json!({
            "secretRef": {"namespace": "kubepull-system", "name": "regcred"}
        }))
        .unwrap()
    }

    fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceView {
        NamespaceView {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            terminating: false,
        }
    }

    fn copy(ns: &str, owner: &str, hash: &str) -> CopyView {
        CopyView {
            namespace: ns.into(),
            name: "regcred".into(),
            owner: owner.into(),
            hash: hash.into(),
        }
    }

    fn valid(h: &str) -> SourceState {
        SourceState::Valid { hash: h.into() }
    }

    #[test]
    fn globs_are_anchored() {
        assert!(glob_matches("kube-*", "kube-system"));
        assert!(!glob_matches("kube-*", "my-kube-system"));
        assert!(glob_matches("*-dev", "team-dev"));
        assert!(!glob_matches("*-dev", "team-dev-2"));
        assert!(glob_matches("skip-?", "skip-a"));
        assert!(!glob_matches("skip-?", "skip-ab"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        // a regex-looking pattern is literal: `.*` matches names starting with a dot only
        assert!(!glob_matches(".*", "default"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exact2"));
        // pathological pattern stays fast
        assert!(!glob_matches(&"*a".repeat(30), &"a".repeat(29)));
    }

    #[test]
    fn selector_semantics() {
        let labels: BTreeMap<String, String> = [("pull".into(), "corp".into())].into();
        let mut sel = LabelSelector {
            match_labels: Some([("pull".into(), "corp".into())].into()),
            ..Default::default()
        };
        assert!(selector_matches(Some(&sel), &labels).unwrap());
        assert!(!selector_matches(Some(&sel), &BTreeMap::new()).unwrap());
        assert!(selector_matches(Some(&LabelSelector::default()), &BTreeMap::new()).unwrap());
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["prod".into()]),
        }]);
        assert!(
            selector_matches(Some(&sel), &labels).unwrap(),
            "NotIn holds on absent key"
        );
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Exists".into(),
            values: None,
        }]);
        assert!(!selector_matches(Some(&sel), &labels).unwrap());
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Matches".into(),
            values: None,
        }]);
        let e = selector_matches(Some(&sel), &labels).unwrap_err();
        assert!(e.to_string().contains("Matches"), "{e}");
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec![]),
        }]);
        assert!(selector_matches(Some(&sel), &labels).is_err());
    }

    #[test]
    fn source_and_operator_namespaces_never_selected_even_by_match_all() {
        let mut s = spec();
        s.exclude_namespaces = vec![];
        let all = [
            ns("kubepull-system", &[]),
            ns("ops", &[]),
            ns("team-a", &[]),
        ];
        let plan = plan_copies("cps", &s, &valid("h1"), &all, &[], "ops").unwrap();
        assert_eq!(plan.create, vec!["team-a"]);
    }

    #[test]
    fn creates_updates_keeps_and_deletes() {
        let mut s = spec();
        s.exclude_namespaces = vec!["kube-*".into()];
        let all = [
            ns("a", &[]),
            ns("b", &[]),
            ns("c", &[]),
            ns("kube-system", &[]),
            NamespaceView {
                terminating: true,
                ..ns("dying", &[])
            },
        ];
        let copies = [
            copy("a", "cps", "h1"),
            copy("b", "cps", "old"),
            copy("kube-system", "cps", "h1"),
            copy("gone", "cps", "h1"),
        ];
        let plan = plan_copies("cps", &s, &valid("h1"), &all, &copies, "ops").unwrap();
        assert_eq!(plan.current, vec!["a"]);
        assert_eq!(plan.update, vec!["b"]);
        assert_eq!(plan.create, vec!["c"]);
        assert_eq!(
            plan.delete,
            vec![
                ("kube-system".to_string(), "regcred".to_string()),
                ("gone".to_string(), "regcred".to_string())
            ]
        );
    }

    #[test]
    fn invalid_source_creates_nothing_and_keeps_good_copies() {
        let s = spec();
        let all = [ns("a", &[]), ns("b", &[])];
        let copies = [copy("a", "cps", "h1")];
        let bad = SourceState::Invalid {
            reason: "SourceInvalid",
            message: "x".into(),
        };
        let plan = plan_copies("cps", &s, &bad, &all, &copies, "ops").unwrap();
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.current, vec!["a"]);
        let plan = plan_copies("cps", &s, &SourceState::Missing, &all, &copies, "ops").unwrap();
        assert!(plan.create.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn another_owner_is_a_conflict_not_an_overwrite() {
        let s = spec();
        let all = [ns("a", &[])];
        let copies = [copy("a", "other", "h0")];
        let plan = plan_copies("cps", &s, &valid("h1"), &all, &copies, "ops").unwrap();
        assert_eq!(plan.conflicts, vec!["a"]);
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn renamed_source_moves_the_copies() {
        let mut s = spec();
        s.secret_ref.name = "regcred2".into();
        let all = [ns("a", &[])];
        let copies = [copy("a", "cps", "h1")];
        let plan = plan_copies("cps", &s, &valid("h1"), &all, &copies, "ops").unwrap();
        assert_eq!(plan.create, vec!["a"]);
        assert_eq!(plan.delete, vec![("a".into(), "regcred".into())]);
    }

    #[test]
    fn orphans_are_copies_without_their_cr() {
        let copies = [copy("a", "cps", "h"), copy("b", "gone", "h")];
        let crs: BTreeSet<String> = ["cps".to_string()].into();
        let o = orphans(&copies, &crs);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].owner, "gone");
    }

    #[test]
    fn admission_appends_never_replaces_never_duplicates() {
        let mut s = spec();
        s.service_accounts = vec!["default".into(), "builder".into()];
        let mut other = spec();
        other.secret_ref.name = "mirror".into();
        other.injection = super::super::spec::Injection::ServiceAccount;
        let crs = vec![
            ("a".into(), s.clone()),
            ("b".into(), other),
            ("c".into(), s),
        ];
        let n = ns("team", &[]);

        let pod = json!({"spec": {"containers": []}});
        let names = admission_names(&pod, &n, &crs, "ops");
        assert_eq!(
            names,
            vec!["regcred"],
            "deduplicated; ServiceAccount-only CR skipped"
        );
        assert_eq!(
            admission_patch(&pod, &names),
            json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}])
        );

        let pod = json!({"spec": {"imagePullSecrets": [{"name": "mine"}]}});
        let names = admission_names(&pod, &n, &crs, "ops");
        assert_eq!(
            admission_patch(&pod, &names),
            json!([{"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "regcred"}}])
        );

        let pod = json!({"spec": {"imagePullSecrets": [{"name": "regcred"}]}});
        assert!(admission_names(&pod, &n, &crs, "ops").is_empty());

        let pod = json!({"spec": {"serviceAccountName": "runner"}});
        assert!(
            admission_names(&pod, &n, &crs, "ops").is_empty(),
            "SA not listed"
        );

        let pod = json!({"spec": {}});
        assert!(admission_names(&pod, &ns("kubepull-system", &[]), &crs, "ops").is_empty());
        assert!(admission_names(&pod, &ns("ops", &[]), &crs, "ops").is_empty());
    }

    fn sa(pull: &[&str], added: &[&str]) -> ServiceAccountView {
        ServiceAccountView {
            namespace: "a".into(),
            name: "default".into(),
            pull_secrets: pull.iter().map(|s| s.to_string()).collect(),
            added: added.iter().map(|s| s.to_string()).collect(),
            resource_version: "1".into(),
        }
    }

    #[test]
    fn service_accounts_append_and_remove_only_what_was_added() {
        let want: BTreeSet<String> = ["regcred".to_string()].into();
        let (names, added) = service_account_change(&sa(&["mine"], &[]), &want).unwrap();
        assert_eq!(names, vec!["mine", "regcred"]);
        assert_eq!(added, vec!["regcred"]);
        assert!(service_account_change(&sa(&["mine", "regcred"], &["regcred"]), &want).is_none());
        // the user listed it themselves: nothing to record, nothing to add
        assert!(service_account_change(&sa(&["regcred"], &[]), &want).is_none());
        // no longer wanted: removed only because the operator added it
        let none = BTreeSet::new();
        let (names, added) =
            service_account_change(&sa(&["mine", "regcred"], &["regcred"]), &none).unwrap();
        assert_eq!(names, vec!["mine"]);
        assert!(added.is_empty());
        assert!(service_account_change(&sa(&["mine", "regcred"], &[]), &none).is_none());
    }

    #[test]
    fn condition_keeps_transition_time_when_status_unchanged() {
        use k8s_openapi::jiff::Timestamp;
        let t0 = Time(Timestamp::from_second(1_000).unwrap());
        let t1 = Time(Timestamp::from_second(2_000).unwrap());
        let mut c = vec![];
        set_condition(
            &mut c,
            condition("Ready", true, "Copied", "m".into(), Some(1), t0.clone()),
        );
        set_condition(
            &mut c,
            condition("Ready", true, "Copied", "m2".into(), Some(2), t1.clone()),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, t0);
        assert_eq!(c[0].message, "m2");
        set_condition(
            &mut c,
            condition("Ready", false, "X", "m3".into(), Some(2), t1.clone()),
        );
        assert_eq!(c[0].last_transition_time, t1);
    }
}
