//! Whether a pod may go to a node, as the scheduler and the DaemonSet controller decide it
//! (k8s.io/component-helpers `scheduling/corev1/nodeaffinity`: `GetRequiredNodeAffinity`,
//! `RequiredNodeAffinity.Match`, `NodeSelector.Match`; `scheduling/corev1` `helpers.go`
//! `FindMatchingUntoleratedTaint`; k8s.io/api core/v1 `Toleration.ToleratesTaint`).
//!
//! A pod's requirement is compiled once ([`RequiredNodeAffinity::of`]) and matched against each
//! node, so a decision over N nodes costs N matches.
//!
//! Nodes here carry no condition taints of their own (nothing runs upstream's
//! `TaintNodesByCondition`), so [`effective_taints`] adds the `NoSchedule` taints that
//! controller would put on a node from its conditions and `spec.unschedulable`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};

/// `metav1.ObjectNameField`: the one field `matchFields` can name.
pub const OBJECT_NAME_FIELD: &str = "metadata.name";

/// `v1.TaintNodeNotReady`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `v1.TaintNodeUnreachable`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `v1.TaintNodeDiskPressure`.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// `v1.TaintNodeMemoryPressure`.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// `v1.TaintNodePIDPressure`.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// `v1.TaintNodeUnschedulable`.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// `v1.TaintNodeNetworkUnavailable`.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// `Toleration.ToleratesTaint`: the effect (when given) and key (when given) match, and the
/// value is equal (operator `Equal` or empty) or anything (`Exists`).
pub fn tolerates_taint(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// `FindMatchingUntoleratedTaint`: the first of `taints` that `filter` includes and no
/// toleration tolerates.
pub fn find_matching_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates_taint(tol, t)))
}

/// `NoSchedule` and `NoExecute` taints (the scheduler's `TaintToleration` filter and the
/// DaemonSet controller's `predicates`).
pub fn schedule_or_execute(t: &Taint) -> bool {
    t.effect == "NoSchedule" || t.effect == "NoExecute"
}

fn condition<'a>(n: &'a Node, type_: &str) -> Option<&'a str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The node's taints with the `NoSchedule` taints upstream's node lifecycle controller
/// derives from its conditions (`nodeConditionToTaintKeyStatusMap`: Ready not True →
/// not-ready, Unknown → unreachable; MemoryPressure, DiskPressure, PIDPressure,
/// NetworkUnavailable True → the pressure taints) and from `spec.unschedulable`
/// (`TaintNodeUnschedulable`), each added when the node does not already carry it. A node
/// with no Ready condition has not reported yet: not-ready, as a node registers.
pub fn effective_taints(n: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut derived = vec![];
    match condition(n, "Ready") {
        Some("True") => {}
        Some("Unknown") => derived.push(TAINT_UNREACHABLE),
        _ => derived.push(TAINT_NOT_READY),
    }
    for (c, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if condition(n, c) == Some("True") {
            derived.push(key);
        }
    }
    if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        derived.push(TAINT_UNSCHEDULABLE);
    }
    for key in derived {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.to_string(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    taints
}

/// The scheduler's NodeAffinity `PreFilter` (pkg/scheduler/framework/plugins/nodeaffinity
/// `PreFilter`): the only nodes a pod's required node affinity can match when every term names
/// them (`matchFields` `metadata.name In [...]`: within a term the requirements intersect,
/// across terms the names add up). `None` when some term names no node (any node may match)
/// or there are no terms; an empty set when the terms conflict (no node can match).
pub fn required_node_names(spec: &PodSpec) -> Option<BTreeSet<String>> {
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    if terms.is_empty() {
        return None;
    }
    let mut names = BTreeSet::new();
    for t in terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for r in t.match_fields.iter().flatten() {
            if r.key == OBJECT_NAME_FIELD && r.operator == "In" {
                let set: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    None => set,
                    Some(before) => before.intersection(&set).cloned().collect(),
                });
            }
        }
        // a term naming no node lets any node match: the terms are ORed
        names.extend(term_names?);
    }
    Some(names)
}

/// One compiled `nodeSelectorTerms` entry (`nodeSelectorTerm`): `None` parts are absent; an
/// `Err` is a term that does not parse, which matches no node.
#[derive(Debug, Clone)]
struct Term {
    labels: Option<Vec<LabelReq>>,
    fields: Option<Vec<(String, bool, String)>>,
}

#[derive(Debug, Clone)]
enum LabelReq {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    Gt(String, i64),
    Lt(String, i64),
}

impl LabelReq {
    fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        match self {
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::DoesNotExist(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

/// `nodeSelectorRequirementsAsSelector` for one requirement (`labels.NewRequirement`'s
/// checks: a qualified key, valid values, their number by operator, Gt/Lt an integer).
fn label_req(r: &NodeSelectorRequirement) -> Result<LabelReq, String> {
    if let Some(e) = crate::validation::is_qualified_name(&r.key)
        .into_iter()
        .next()
    {
        return Err(format!("key: Invalid value: {:?}: {e}", r.key));
    }
    let values = r.values.clone().unwrap_or_default();
    for v in &values {
        if let Some(e) = crate::validation::is_valid_label_value(v)
            .into_iter()
            .next()
        {
            return Err(format!("values: Invalid value: {v:?}: {e}"));
        }
    }
    let key = r.key.clone();
    let one_int = |values: &[String]| -> Result<i64, String> {
        match values {
            [v] => v.parse::<i64>().map_err(|_| {
                format!("values[0]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer")
            }),
            _ => Err("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required".into()),
        }
    };
    Ok(match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            return Err(
                "values: Invalid value: for 'in', 'notin' operators, values set can't be empty"
                    .into(),
            )
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            return Err(
                "values: Invalid value: values set must be empty for exists and does not exist"
                    .into(),
            )
        }
        "In" => LabelReq::In(key, values),
        "NotIn" => LabelReq::NotIn(key, values),
        "Exists" => LabelReq::Exists(key),
        "DoesNotExist" => LabelReq::DoesNotExist(key),
        "Gt" => LabelReq::Gt(key, one_int(&values)?),
        "Lt" => LabelReq::Lt(key, one_int(&values)?),
        other => {
            return Err(format!(
                "operator: Invalid value: {other:?}: not a valid selector operator"
            ))
        }
    })
}

/// `nodeSelectorRequirementsAsFieldSelector` for one requirement: `In` or `NotIn` with one
/// value, as `(key, equal, value)`.
fn field_req(r: &NodeSelectorRequirement) -> Result<(String, bool, String), String> {
    let values = r.values.as_deref().unwrap_or_default();
    let equal = match r.operator.as_str() {
        "In" => true,
        "NotIn" => false,
        other => {
            return Err(format!(
                "operator: Unsupported value: {other:?}: supported values: \"In\", \"NotIn\""
            ))
        }
    };
    match values {
        [v] => Ok((r.key.clone(), equal, v.clone())),
        _ => Err("values: Invalid value: must have one element".into()),
    }
}

fn compile_term(t: &NodeSelectorTerm) -> Result<Term, String> {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    Ok(Term {
        labels: if exprs.is_empty() {
            None
        } else {
            Some(exprs.iter().map(label_req).collect::<Result<_, _>>()?)
        },
        fields: if fields.is_empty() {
            None
        } else {
            Some(fields.iter().map(field_req).collect::<Result<_, _>>()?)
        },
    })
}

impl Term {
    /// `nodeSelectorTerm.match`: an empty term matches nothing; the fields are matched only
    /// for a node with a name.
    fn matches(&self, node: &Node) -> bool {
        if self.labels.is_none() && self.fields.is_none() {
            return false;
        }
        if let Some(reqs) = &self.labels {
            if !reqs
                .iter()
                .all(|r| r.matches(node.metadata.labels.as_ref()))
            {
                return false;
            }
        }
        let name = node.metadata.name.as_deref().unwrap_or("");
        if let Some(reqs) = &self.fields {
            if !name.is_empty() {
                let ok = reqs.iter().all(|(k, equal, v)| {
                    let have = if k == OBJECT_NAME_FIELD { name } else { "" };
                    (have == v) == *equal
                });
                if !ok {
                    return false;
                }
            }
        }
        true
    }
}

/// A pod's required node affinity (`nodeaffinity.RequiredNodeAffinity`): its `nodeSelector`
/// and its `requiredDuringSchedulingIgnoredDuringExecution` terms, compiled.
#[derive(Debug, Clone, Default)]
pub struct RequiredNodeAffinity {
    selector: Option<BTreeMap<String, String>>,
    /// The terms (any one must match); a term that does not parse is an `Err`.
    terms: Option<Vec<Result<Term, String>>>,
}

impl RequiredNodeAffinity {
    /// `GetRequiredNodeAffinity(pod)`.
    pub fn of(pod: &Pod) -> RequiredNodeAffinity {
        pod.spec.as_ref().map(Self::of_spec).unwrap_or_default()
    }

    /// [`RequiredNodeAffinity::of`] for a pod spec.
    pub fn of_spec(spec: &PodSpec) -> RequiredNodeAffinity {
        let selector = spec.node_selector.clone().filter(|s| !s.is_empty());
        let terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|ns: &NodeSelector| ns.node_selector_terms.iter().map(compile_term).collect());
        RequiredNodeAffinity { selector, terms }
    }

    /// `RequiredNodeAffinity.Match`: the node has every `nodeSelector` label and matches one
    /// of the terms (terms that do not parse are skipped, as the callers ignore the parse
    /// error).
    pub fn matches(&self, node: &Node) -> bool {
        if let Some(sel) = &self.selector {
            let labels = node.metadata.labels.as_ref();
            if !sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                return false;
            }
        }
        match &self.terms {
            None => true,
            Some(terms) => terms
                .iter()
                .any(|t| t.as_ref().is_ok_and(|t| t.matches(node))),
        }
    }

    /// The parse errors of the terms, if any (what `Match` would return beside `false`).
    pub fn errors(&self) -> Vec<&str> {
        self.terms
            .iter()
            .flatten()
            .filter_map(|t| t.as_ref().err().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(name: &str, labels: Value, spec: Value, conditions: Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": labels}, "spec": spec,
            "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    fn ready_node(name: &str, labels: Value) -> Node {
        node(
            name,
            labels,
            json!({}),
            json!([{"type": "Ready", "status": "True"}]),
        )
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn affinity(terms: Value) -> RequiredNodeAffinity {
        RequiredNodeAffinity::of(&pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
        ))
    }

    #[test]
    fn node_names_as_the_prefilter_finds_them() {
        let names = |terms: Value| {
            let p = pod(json!({"containers": [], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}));
            required_node_names(p.spec.as_ref().unwrap()).map(|s| s.into_iter().collect::<Vec<_>>())
        };
        let name_in = |vs: Value| json!({"key": "metadata.name", "operator": "In", "values": vs});
        // within a term the names intersect, across terms they add up
        assert_eq!(
            names(
                json!([{"matchFields": [name_in(json!(["a", "b"])), name_in(json!(["b", "c"]))]},
                {"matchFields": [name_in(json!(["d"]))]}])
            ),
            Some(vec!["b".to_string(), "d".to_string()])
        );
        // a term without a name: any node
        assert_eq!(
            names(json!([{"matchFields": [name_in(json!(["a"]))]},
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])),
            None
        );
        assert_eq!(names(json!([])), None);
        // terms that conflict: no node
        assert_eq!(
            names(json!([{"matchFields": [name_in(json!(["a"])), name_in(json!(["b"]))]}])),
            Some(vec![])
        );
    }

    #[test]
    fn match_expressions_operators() {
        let n = ready_node("n1", json!({"zone": "a", "cores": "8"}));
        let case = |expr: Value| affinity(json!([{"matchExpressions": [expr]}])).matches(&n);
        assert!(case(
            json!({"key": "zone", "operator": "In", "values": ["a", "b"]})
        ));
        assert!(!case(
            json!({"key": "zone", "operator": "In", "values": ["b"]})
        ));
        assert!(case(
            json!({"key": "zone", "operator": "NotIn", "values": ["b"]})
        ));
        assert!(case(
            json!({"key": "gpu", "operator": "NotIn", "values": ["x"]})
        ));
        assert!(!case(
            json!({"key": "zone", "operator": "NotIn", "values": ["a"]})
        ));
        assert!(case(json!({"key": "zone", "operator": "Exists"})));
        assert!(!case(json!({"key": "gpu", "operator": "Exists"})));
        assert!(case(json!({"key": "gpu", "operator": "DoesNotExist"})));
        assert!(case(
            json!({"key": "cores", "operator": "Gt", "values": ["4"]})
        ));
        assert!(!case(
            json!({"key": "cores", "operator": "Gt", "values": ["8"]})
        ));
        assert!(case(
            json!({"key": "cores", "operator": "Lt", "values": ["9"]})
        ));
        assert!(!case(
            json!({"key": "zone", "operator": "Lt", "values": ["9"]})
        ));
        // terms that do not parse match nothing, and say why
        let bad = affinity(
            json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]}]),
        );
        assert!(!bad.matches(&n));
        assert_eq!(bad.errors().len(), 1);
        assert!(!case(
            json!({"key": "cores", "operator": "Gt", "values": ["x"]})
        ));
        assert!(!case(
            json!({"key": "zone", "operator": "Exists", "values": ["a"]})
        ));
    }

    #[test]
    fn terms_are_ored_and_fields_name_the_node() {
        let n = ready_node("n1", json!({"zone": "a"}));
        let t = affinity(json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
        ]));
        assert!(t.matches(&n));
        assert!(!t.matches(&ready_node("n2", json!({"zone": "a"}))));
        let not_in = affinity(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]),
        );
        assert!(!not_in.matches(&n));
        assert!(not_in.matches(&ready_node("n2", json!({}))));
        // an empty term matches nothing; no terms at all match nothing either
        assert!(!affinity(json!([{}])).matches(&n));
        assert!(!affinity(json!([])).matches(&n));
        // both a field and an expression in one term must hold
        let both = affinity(json!([{
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]));
        assert!(!both.matches(&n));
        // fields take In/NotIn with one value
        let bad =
            affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}]));
        assert!(!bad.matches(&n));
    }

    #[test]
    fn node_selector_and_affinity_both_hold() {
        let n = ready_node("n1", json!({"disk": "ssd"}));
        let p = |sel: Value| {
            RequiredNodeAffinity::of(&pod(json!({"containers": [], "nodeSelector": sel})))
        };
        assert!(p(json!({"disk": "ssd"})).matches(&n));
        assert!(!p(json!({"disk": "hdd"})).matches(&n));
        assert!(RequiredNodeAffinity::of(&pod(json!({"containers": []}))).matches(&n));
        let both = RequiredNodeAffinity::of(&pod(
            json!({"containers": [], "nodeSelector": {"disk": "hdd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}),
        ));
        assert!(!both.matches(&n));
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn tol(v: Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tolerations() {
        let t = taint("k", "v", "NoSchedule");
        assert!(tolerates_taint(&tol(json!({"key": "k", "value": "v"})), &t));
        assert!(tolerates_taint(
            &tol(json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"})),
            &t
        ));
        assert!(!tolerates_taint(
            &tol(json!({"key": "k", "value": "w"})),
            &t
        ));
        assert!(!tolerates_taint(
            &tol(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
        assert!(tolerates_taint(
            &tol(json!({"key": "k", "operator": "Exists"})),
            &t
        ));
        assert!(tolerates_taint(&tol(json!({"operator": "Exists"})), &t));
        assert!(!tolerates_taint(
            &tol(json!({"key": "j", "operator": "Exists"})),
            &t
        ));
        assert!(!tolerates_taint(
            &tol(json!({"key": "k", "operator": "Lt", "value": "v"})),
            &t
        ));
        let taints = vec![
            taint("soft", "", "PreferNoSchedule"),
            taint("a", "1", "NoSchedule"),
            taint("b", "", "NoExecute"),
        ];
        let found = find_matching_untolerated_taint(&taints, &[], schedule_or_execute);
        assert_eq!(found.map(|t| t.key.as_str()), Some("a"));
        let found = find_matching_untolerated_taint(
            &taints,
            &[tol(json!({"key": "a", "operator": "Exists"}))],
            schedule_or_execute,
        );
        assert_eq!(found.map(|t| t.key.as_str()), Some("b"));
        let found = find_matching_untolerated_taint(
            &taints,
            &[tol(json!({"key": "a", "operator": "Exists"}))],
            |t| t.effect == "NoExecute",
        );
        assert_eq!(found.map(|t| t.key.as_str()), Some("b"));
    }

    #[test]
    fn conditions_and_cordons_are_taints() {
        let keys =
            |n: &Node| -> Vec<String> { effective_taints(n).into_iter().map(|t| t.key).collect() };
        assert!(keys(&ready_node("n", json!({}))).is_empty());
        let n = node(
            "n",
            json!({}),
            json!({"unschedulable": true, "taints": [{"key": "own", "effect": "NoExecute"}]}),
            json!([{"type": "Ready", "status": "Unknown"}, {"type": "DiskPressure", "status": "True"}]),
        );
        assert_eq!(
            keys(&n),
            [
                "own",
                TAINT_UNREACHABLE,
                TAINT_DISK_PRESSURE,
                TAINT_UNSCHEDULABLE
            ]
        );
        let fresh = node("n", json!({}), json!({}), json!([]));
        assert_eq!(keys(&fresh), [TAINT_NOT_READY]);
        // a taint the node carries already is not added twice
        let tainted = node(
            "n",
            json!({}),
            json!({"taints": [{"key": TAINT_NOT_READY, "effect": "NoSchedule"}]}),
            json!([{"type": "Ready", "status": "False"}]),
        );
        assert_eq!(keys(&tainted), [TAINT_NOT_READY]);
    }
}
