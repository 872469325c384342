//! PriorityClasses (`scheduling.k8s.io/v1` `priorityclasses`, cluster-scoped) and pod priority,
//! as kube-apiserver 1.32 has them:
//!
//! - [`validate_priority_class`]: `ValidatePriorityClass` and `ValidatePriorityClassUpdate`
//!   (pkg/apis/scheduling/validation/validation.go): the `system-` prefix is the system classes'
//!   alone (`IsKnownSystemPriorityClass`), a user class's value is at most
//!   [`HIGHEST_USER_DEFINABLE_PRIORITY`], `preemptionPolicy` one of the two policies; value and
//!   policy are immutable.
//! - The Priority admission (plugin/pkg/admission/priority/admission.go): [`admit_pod`]
//!   (`admitPod`) resolves a new pod's `priorityClassName` — or the global default class, or
//!   none — into `spec.priority` and `spec.preemptionPolicy`; [`admit_class`]
//!   (`validatePriorityClass`) keeps a single `globalDefault` class.
//! - [`system_priority_classes`] (pkg/apis/scheduling/v1 `SystemPriorityClasses`), created at
//!   start (pkg/registry/scheduling/rest/storage_scheduling.go's post-start hook) and never
//!   deleted ([`refuse_system_delete`], the registry's `REST.Delete`).

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// `scheduling.HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
/// `scheduling.SystemCriticalPriority`.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2 * HIGHEST_USER_DEFINABLE_PRIORITY;
/// `scheduling.SystemPriorityClassPrefix`.
pub const SYSTEM_PREFIX: &str = "system-";
/// `scheduling.DefaultPriorityWhenNoDefaultClassExists`.
pub const DEFAULT_PRIORITY: i32 = 0;
/// `core.PreemptLowerPriority`.
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";
/// `core.PreemptNever`.
pub const PREEMPT_NEVER: &str = "Never";

/// A system class: name, value, description (`SystemPriorityClasses`; neither is the global
/// default).
const SYSTEM_CLASSES: &[(&str, i32, &str)] = &[
    (
        "system-node-critical",
        SYSTEM_CRITICAL_PRIORITY + 1000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        SYSTEM_CRITICAL_PRIORITY,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The system classes as the bootstrap creates them.
pub fn system_priority_classes() -> Vec<Value> {
    SYSTEM_CLASSES
        .iter()
        .map(|(name, value, description)| {
            json!({
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": description,
            })
        })
        .collect()
}

/// `IsKnownSystemPriorityClass`: `Err` says why not.
fn known_system_class(name: &str, value: i64, global_default: bool) -> Result<(), String> {
    match SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name) {
        Some((n, v, _)) if i64::from(*v) != value => {
            Err(format!("value of {n} PriorityClass must be {v}"))
        }
        Some((n, _, _)) if global_default => {
            Err(format!("globalDefault of {n} PriorityClass must be false"))
        }
        Some(_) => Ok(()),
        None => Err(format!("{name} is not a known system priority class")),
    }
}

fn class_value(obj: &Value) -> i64 {
    obj.get("value").and_then(Value::as_i64).unwrap_or(0)
}

fn global_default(obj: &Value) -> bool {
    obj.get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn preemption_policy(obj: &Value) -> Option<&str> {
    obj.get("preemptionPolicy").and_then(Value::as_str)
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `ValidatePriorityClass` after the object meta (the generic checks), and on update
/// `ValidatePriorityClassUpdate`'s immutable fields after it (the strategy's `ValidateUpdate`).
pub fn validate_priority_class(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let name = name_of(obj);
    if name.starts_with(SYSTEM_PREFIX) {
        if let Err(why) = known_system_class(name, class_value(obj), global_default(obj)) {
            causes.push(Cause::forbidden(
                "metadata.name",
                format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {why}"),
            ));
        }
    } else if class_value(obj) > i64::from(HIGHEST_USER_DEFINABLE_PRIORITY) {
        causes.push(Cause::forbidden(
            "value",
            format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    // `ValidatePreemptionPolicy`
    match preemption_policy(obj) {
        None | Some(PREEMPT_LOWER_PRIORITY | PREEMPT_NEVER) => {}
        Some("") => causes.push(Cause::required("preemptionPolicy", "")),
        Some(p) => causes.push(Cause::not_supported(
            "preemptionPolicy",
            format!("{p:?}"),
            &[PREEMPT_LOWER_PRIORITY, PREEMPT_NEVER],
        )),
    }
    // the strategy's `ValidateUpdate` adds `ValidatePriorityClassUpdate`
    if let Some(old) = old {
        // value is immutable
        if class_value(obj) != class_value(old) {
            causes.push(Cause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        // `ValidateImmutableField` of the policy pointers
        if preemption_policy(obj) != preemption_policy(old) {
            let shown = match preemption_policy(obj) {
                Some(p) => format!("{p:?}"),
                None => "null".into(),
            };
            causes.push(Cause::invalid(
                "preemptionPolicy",
                shown,
                "field is immutable",
            ));
        }
    }
    causes
}

fn priority_classes() -> Option<&'static Resource> {
    resources::find("scheduling.k8s.io", "v1", "priorityclasses")
}

/// Whether `r` is the PriorityClass resource.
pub fn is_priority_class(r: &Resource) -> bool {
    (r.group, r.kind) == ("scheduling.k8s.io", "PriorityClass")
}

/// `REST.Delete` (pkg/registry/scheduling/priorityclass/storage/storage.go): a system class
/// cannot be deleted, whether or not it exists.
pub fn refuse_system_delete(r: &Resource, name: &str) -> ApiResult<()> {
    if is_priority_class(r) && SYSTEM_CLASSES.iter().any(|(n, _, _)| *n == name) {
        return Err(ApiError::forbidden(
            r,
            name,
            format!(
                "{} \"{name}\" is forbidden: this is a system priority class and cannot be deleted",
                r.qualified()
            ),
        ));
    }
    Ok(())
}

/// `getDefaultPriorityClass`: of the classes marked `globalDefault` (a race may leave more than
/// one), the one with the lowest value.
pub fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| global_default(c))
        .min_by_key(|c| class_value(c))
}

/// What `admitPod` computes for a new pod: the priority and the preemption policy, or why the
/// pod is refused (the Forbidden's reason).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// `spec.priorityClassName` (the default class's name when the pod named none).
    pub class_name: Option<String>,
    /// `spec.priority`.
    pub priority: i32,
    /// `spec.preemptionPolicy`.
    pub preemption_policy: Option<String>,
}

/// `admitPod` on create, given the pod's class (looked up by its name: `Ok(None)` when there is
/// none of that name) or the default class: the values to set, or the Forbidden's reason.
pub fn resolve(
    spec: &core::PodSpec,
    named: Option<Option<&Value>>,
    default: Option<&Value>,
) -> Result<Resolved, String> {
    let class_name = spec.priority_class_name.clone().filter(|n| !n.is_empty());
    let (class_name, priority, policy) = match (&class_name, named) {
        (Some(n), Some(Some(pc))) => (
            Some(n.clone()),
            class_value(pc) as i32,
            preemption_policy(pc).map(str::to_string),
        ),
        (Some(n), _) => return Err(format!("no PriorityClass with name {n} was found")),
        (None, _) => match default {
            Some(pc) => (
                Some(name_of(pc).to_string()),
                class_value(pc) as i32,
                preemption_policy(pc).map(str::to_string),
            ),
            None => (
                None,
                DEFAULT_PRIORITY,
                Some(PREEMPT_LOWER_PRIORITY.to_string()),
            ),
        },
    };
    if let Some(p) = spec.priority.filter(|p| *p != priority) {
        return Err(format!("the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"));
    }
    if let (Some(computed), Some(given)) = (&policy, &spec.preemption_policy) {
        if computed != given {
            return Err(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"));
        }
    }
    Ok(Resolved {
        class_name,
        priority,
        preemption_policy: policy,
    })
}

/// The PriorityClasses (the admission's lister: the cache, else a list).
async fn all_classes(objects: &Objects, r: &'static Resource) -> ApiResult<Vec<Value>> {
    if let Some(cached) = objects.policy.priority_classes(objects.store()).await {
        return Ok(cached);
    }
    Ok(objects.list(r, None, &ListOptions::default()).await?.0)
}

/// One PriorityClass by name (the lister's `Get`).
async fn class_named(
    objects: &Objects,
    r: &'static Resource,
    name: &str,
) -> ApiResult<Option<Value>> {
    if let Some(cached) = objects.policy.priority_classes(objects.store()).await {
        return Ok(cached.into_iter().find(|c| name_of(c) == name));
    }
    objects.get_opt(r, "", name).await
}

/// The Priority admission of a pod create (`admitPod`): `name` is the name the request gave
/// (a `generateName` pod is named by its prefix, as `admission.NewForbidden` names it).
pub async fn admit_pod(objects: &Objects, name: &str, pod: &mut core::Pod) -> ApiResult<()> {
    let (Some(pcr), Some(pods)) = (priority_classes(), resources::find("", "v1", "pods")) else {
        return Ok(());
    };
    let Some(spec) = pod.spec.as_mut() else {
        return Ok(());
    };
    let named = spec.priority_class_name.clone().filter(|n| !n.is_empty());
    let (found, classes) = match &named {
        // a lookup that fails is a plain error of the plugin's (500, no reason)
        Some(n) => {
            let found = class_named(objects, pcr, n).await.map_err(|e| {
                ApiError::unknown_internal(format!(
                    "failed to get PriorityClass with name {n}: {}",
                    e.message
                ))
            })?;
            (Some(found), vec![])
        }
        None => {
            let all = all_classes(objects, pcr).await.map_err(|e| {
                ApiError::unknown_internal(format!(
                    "failed to get default priority class: {}",
                    e.message
                ))
            })?;
            (None, all)
        }
    };
    let resolved = resolve(
        spec,
        found.as_ref().map(Option::as_ref),
        default_class(&classes),
    )
    .map_err(|why| {
        let name = if name.is_empty() {
            pod.metadata.generate_name.clone().unwrap_or_default()
        } else {
            name.to_string()
        };
        ApiError::forbidden(pods, &name, format!("pods \"{name}\" is forbidden: {why}"))
    })?;
    let spec = pod.spec.as_mut().expect("spec");
    if resolved.class_name.is_some() {
        spec.priority_class_name = resolved.class_name;
    }
    spec.priority = Some(resolved.priority);
    if resolved.preemption_policy.is_some() {
        spec.preemption_policy = resolved.preemption_policy;
    }
    Ok(())
}

/// `admitPod` on a pod update: the priority and preemption policy set at create are kept when
/// the new version leaves them out (validation refuses any other change of them).
pub fn keep_on_update(new: &mut Value, old: &Value) {
    for field in ["priority", "preemptionPolicy"] {
        let kept = old
            .pointer(&format!("/spec/{field}"))
            .filter(|v| !v.is_null());
        let absent = new
            .pointer(&format!("/spec/{field}"))
            .is_none_or(Value::is_null);
        if let (Some(v), true, Some(spec)) = (
            kept,
            absent,
            new.get_mut("spec").and_then(Value::as_object_mut),
        ) {
            spec.insert(field.to_string(), v.clone());
        }
    }
}

/// `validatePriorityClass` on a create or update of a class marked `globalDefault`: no other
/// class may be the default already.
pub async fn admit_class(
    objects: &Objects,
    r: &'static Resource,
    obj: &Value,
    updating: bool,
) -> ApiResult<()> {
    if !is_priority_class(r) || !global_default(obj) {
        return Ok(());
    }
    let classes = all_classes(objects, r).await.map_err(|e| {
        ApiError::unknown_internal(format!(
            "failed to get default priority class: {}",
            e.message
        ))
    })?;
    if let Some(current) = conflicting_default(&classes, name_of(obj), updating) {
        let name = name_of(obj);
        return Err(ApiError::forbidden(
            r,
            name,
            format!(
                "{} \"{name}\" is forbidden: PriorityClass {current} is already marked as default. Only one default can exist",
                r.qualified()
            ),
        ));
    }
    Ok(())
}

/// The default class that refuses `name` as another default: any on create, another one on
/// update.
pub fn conflicting_default<'a>(
    classes: &'a [Value],
    name: &str,
    updating: bool,
) -> Option<&'a str> {
    let d = name_of(default_class(classes)?);
    (!updating || d != name).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(name: &str, value: i64) -> Value {
        json!({"metadata": {"name": name}, "value": value})
    }

    fn texts(c: &[Cause]) -> Vec<String> {
        c.iter().map(Cause::text).collect()
    }

    #[test]
    fn user_classes_are_capped_and_system_names_reserved() {
        assert!(validate_priority_class(&pc("high", 1_000_000_000), None).is_empty());
        assert_eq!(
            texts(&validate_priority_class(&pc("high", 1_000_000_001), None)),
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
        );
        assert_eq!(
            texts(&validate_priority_class(&pc("system-mine", 5), None)),
            ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"]
        );
        assert_eq!(
            texts(&validate_priority_class(&pc("system-node-critical", 5), None)),
            ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-node-critical PriorityClass must be 2000001000"]
        );
        let mut d = pc("system-cluster-critical", 2_000_000_000);
        d["globalDefault"] = json!(true);
        assert_eq!(
            texts(&validate_priority_class(&d, None)),
            ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: globalDefault of system-cluster-critical PriorityClass must be false"]
        );
        for c in system_priority_classes() {
            assert!(validate_priority_class(&c, None).is_empty(), "{c}");
        }
    }

    #[test]
    fn preemption_policies() {
        let mut c = pc("a", 1);
        c["preemptionPolicy"] = json!("Sometimes");
        assert_eq!(
            texts(&validate_priority_class(&c, None)),
            ["preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"PreemptLowerPriority\", \"Never\""]
        );
        c["preemptionPolicy"] = json!("");
        assert_eq!(
            texts(&validate_priority_class(&c, None)),
            ["preemptionPolicy: Required value"]
        );
    }

    #[test]
    fn value_and_policy_are_immutable() {
        let mut old = pc("a", 1);
        old["preemptionPolicy"] = json!("PreemptLowerPriority");
        let mut new = pc("a", 2);
        new["preemptionPolicy"] = json!("Never");
        assert_eq!(
            texts(&validate_priority_class(&new, Some(&old))),
            [
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"Never\": field is immutable",
            ]
        );
        let mut same = old.clone();
        same["description"] = json!("changed");
        assert!(validate_priority_class(&same, Some(&old)).is_empty());
    }

    #[test]
    fn the_lowest_default_wins_and_a_second_is_refused() {
        let mut a = pc("a", 10);
        a["globalDefault"] = json!(true);
        let mut b = pc("b", 5);
        b["globalDefault"] = json!(true);
        let classes = vec![a, b, pc("c", 1)];
        assert_eq!(name_of(default_class(&classes).unwrap()), "b");
        assert_eq!(conflicting_default(&classes, "x", false), Some("b"));
        assert_eq!(conflicting_default(&classes, "b", true), None);
        assert_eq!(conflicting_default(&classes, "a", true), Some("b"));
        assert_eq!(conflicting_default(&[pc("c", 1)], "x", false), None);
    }

    fn spec(v: Value) -> core::PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pods_get_their_class_value_or_the_default() {
        let mut high = pc("high", 1000);
        high["preemptionPolicy"] = json!("Never");
        let s = spec(json!({"containers": [], "priorityClassName": "high"}));
        assert_eq!(
            resolve(&s, Some(Some(&high)), None),
            Ok(Resolved {
                class_name: Some("high".into()),
                priority: 1000,
                preemption_policy: Some("Never".into()),
            })
        );
        assert_eq!(
            resolve(&s, Some(None), None),
            Err("no PriorityClass with name high was found".into())
        );
        let none = spec(json!({"containers": []}));
        assert_eq!(
            resolve(&none, None, None),
            Ok(Resolved {
                class_name: None,
                priority: 0,
                preemption_policy: Some("PreemptLowerPriority".into()),
            })
        );
        let mut d = pc("d", 7);
        d["preemptionPolicy"] = json!("PreemptLowerPriority");
        assert_eq!(resolve(&none, None, Some(&d)).unwrap().priority, 7);
        assert_eq!(
            resolve(&none, None, Some(&d))
                .unwrap()
                .class_name
                .as_deref(),
            Some("d")
        );
    }

    #[test]
    fn an_update_keeps_the_priority_set_at_create() {
        let old = json!({"spec": {"priority": 7, "preemptionPolicy": "Never"}});
        let mut new = json!({"spec": {}});
        keep_on_update(&mut new, &old);
        assert_eq!(new, old);
        let mut changed = json!({"spec": {"priority": 8}});
        keep_on_update(&mut changed, &old);
        assert_eq!(
            changed,
            json!({"spec": {"priority": 8, "preemptionPolicy": "Never"}})
        );
    }

    #[test]
    fn a_pod_may_not_disagree_with_its_class() {
        let high = pc("high", 1000);
        let s = spec(json!({"containers": [], "priorityClassName": "high", "priority": 5}));
        assert_eq!(
            resolve(&s, Some(Some(&high)), None),
            Err("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name".into())
        );
        let s = spec(json!({"containers": [], "priority": 0, "preemptionPolicy": "Never"}));
        assert_eq!(
            resolve(&s, None, None),
            Err("the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller computed PreemptLowerPriority from the given PriorityClass name".into())
        );
    }
}
