//! PodDisruptionBudgets (`policy/v1`) on the API server's side: their validation
//! (kubernetes `pkg/apis/policy/validation/validation.go`, 1.32), the `DisruptionAllowed`
//! condition they carry (`k8s.io/component-helpers/apps/poddisruptionbudget`), and the
//! `pods/eviction` subresource that consults them before deleting a pod
//! (`pkg/registry/core/pod/storage/eviction.go`). The controller that keeps their status is
//! [`crate::controllers::disruption`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{DeleteOptions, ListOptions, Objects};
use crate::resources::{self, Resource};
use crate::validation::{not_more_than_100_percent, validate_int_or_percent};

/// `policy.DisruptionAllowedCondition`.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// `policy.SufficientPodsReason`.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// `policy.InsufficientPodsReason`.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// `policy.SyncFailedReason`.
pub const SYNC_FAILED: &str = "SyncFailed";
/// `policyv1.DisruptionBudgetCause`.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// `MaxDisruptedPodSize` (eviction.go): more evictions than this not yet confirmed by the
/// controller and the budget refuses further ones.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// `DeletionTimeout` (pkg/controller/disruption): how long a pod an eviction recorded in
/// `disruptedPods` is expected to take to be marked for deletion.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// `EvictionsRetry` (eviction.go): 20 tries, 500 ms apart.
const EVICTION_TRIES: usize = 20;
const EVICTION_RETRY_DELAY: Duration = Duration::from_millis(500);
/// `supportedUnhealthyPodEvictionPolicies`, sorted.
const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// The served `poddisruptionbudgets` resource.
pub fn resource() -> ApiResult<&'static Resource> {
    resources::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets.policy is not served".into()))
}

fn pods() -> &'static Resource {
    resources::find("", "v1", "pods").expect("pods are served")
}

// ---------------------------------------------------------------------------------------------
// validation

/// Go's `%#v` of a pointer field: its type and `nil`, or an address (shown as `…`).
fn go_pointer(v: Option<&Value>, ty: &str) -> String {
    match v.filter(|v| !v.is_null()) {
        Some(_) => format!("({ty})(…)"),
        None => format!("({ty})(nil)"),
    }
}

/// Go's `%#v` of a `policy.PodDisruptionBudgetSpec` (the value `field.Invalid` prints for the
/// whole spec).
fn go_spec(spec: &Value) -> String {
    format!(
        "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:{}, MaxUnavailable:{}, UnhealthyPodEvictionPolicy:{}}}",
        go_pointer(spec.get("minAvailable"), "*intstr.IntOrString"),
        go_pointer(spec.get("selector"), "*v1.LabelSelector"),
        go_pointer(spec.get("maxUnavailable"), "*intstr.IntOrString"),
        go_pointer(
            spec.get("unhealthyPodEvictionPolicy"),
            "*policy.UnhealthyPodEvictionPolicyType"
        ),
    )
}

/// `hasInvalidLabelValueInLabelSelector` (pkg/registry/policy/poddisruptionbudget/strategy.go):
/// whether a `matchExpressions` value of the selector is not a label value.
fn has_invalid_label_value_in_selector(spec: Option<&Value>) -> bool {
    spec.and_then(|s| s.pointer("/selector/matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .any(|v| !crate::validation::is_valid_label_value(v.as_str().unwrap_or("")).is_empty())
}

/// `ValidatePodDisruptionBudgetSpec`: `minAvailable` and `maxUnavailable` not both set, each a
/// non-negative integer or a percentage of at most 100%, the selector a label selector
/// (`matchExpressions` values not checked when `allow_invalid_label_values`,
/// `AllowInvalidLabelValueInSelector`), and a supported `unhealthyPodEvictionPolicy`.
pub fn validate_spec(spec: &Value, allow_invalid_label_values: bool, causes: &mut Vec<Cause>) {
    let set = |k: &str| spec.get(k).filter(|v| !v.is_null());
    if set("minAvailable").is_some() && set("maxUnavailable").is_some() {
        causes.push(Cause::invalid(
            "spec",
            go_spec(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for k in ["minAvailable", "maxUnavailable"] {
        if let Some(v) = set(k) {
            let Ok(v) = serde_json::from_value::<IntOrString>(v.clone()) else {
                continue;
            };
            let path = format!("spec.{k}");
            validate_int_or_percent(&v, &path, causes);
            not_more_than_100_percent(&v, &path, causes);
        }
    }
    if let Some(sel) = set("selector") {
        let mut sc = vec![];
        crate::validation::validate_label_selector(sel, "spec.selector", &mut sc);
        if allow_invalid_label_values {
            sc.retain(|c| {
                !(c.field.contains(".matchExpressions[") && c.field.contains(".values["))
            });
        }
        causes.extend(sc);
    }
    if let Some(p) = set("unhealthyPodEvictionPolicy") {
        let p = p.as_str().unwrap_or("");
        if !UNHEALTHY_POD_EVICTION_POLICIES.contains(&p) {
            causes.push(Cause::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                format!("{p:?}"),
                UNHEALTHY_POD_EVICTION_POLICIES,
            ));
        }
    }
}

/// `conditionReasonFmt`.
fn is_condition_reason(s: &str) -> bool {
    let b = s.as_bytes();
    let Some((first, rest)) = b.split_first() else {
        return false;
    };
    if !first.is_ascii_alphabetic() {
        return false;
    }
    let Some(last) = rest.last() else {
        return true;
    };
    rest.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':'))
        && (last.is_ascii_alphanumeric() || *last == b'_')
}

/// `metav1validation.ValidateConditions` (k8s.io/apimachinery
/// pkg/apis/meta/v1/validation/validation.go): each type once and a label name, a status of
/// `True`, `False` or `Unknown`, a non-negative observedGeneration, a lastTransitionTime, a
/// reason of the condition-reason shape (at most 1024 bytes), a message of at most 32768.
pub fn validate_conditions(conds: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(conds) = conds.and_then(Value::as_array) else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for (i, c) in conds.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let ty = s("type");
        if !seen.insert(ty.to_string()) {
            causes.push(Cause::duplicate(format!("{at}.type"), format!("{ty:?}")));
        }
        crate::validation::validate_label_name(ty, &format!("{at}.type"), causes);
        let status = s("status");
        if !matches!(status, "True" | "False" | "Unknown") {
            causes.push(Cause::not_supported(
                format!("{at}.status"),
                format!("{status:?}"),
                &["False", "True", "Unknown"],
            ));
        }
        if let Some(g) = c.get("observedGeneration").and_then(Value::as_i64) {
            if g < 0 {
                causes.push(Cause::invalid(
                    format!("{at}.observedGeneration"),
                    g.to_string(),
                    "must be greater than or equal to zero",
                ));
            }
        }
        if s("lastTransitionTime").is_empty() {
            causes.push(Cause::required(
                format!("{at}.lastTransitionTime"),
                "must be set",
            ));
        }
        let reason = s("reason");
        if reason.is_empty() {
            causes.push(Cause::required(format!("{at}.reason"), "must be set"));
        } else {
            if !is_condition_reason(reason) {
                causes.push(Cause::invalid(
                    format!("{at}.reason"),
                    format!("{reason:?}"),
                    crate::validation::regex_error(
                        "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'",
                        "[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?",
                        &["my_name", "MY_NAME", "MyName", "ReasonA,ReasonB", "ReasonA:ReasonB"],
                    ),
                ));
            }
            if reason.len() > 1024 {
                causes.push(Cause::too_long(format!("{at}.reason"), 1024));
            }
        }
        if s("message").len() > 32 * 1024 {
            causes.push(Cause::too_long(format!("{at}.message"), 32 * 1024));
        }
    }
}

/// `ValidatePodDisruptionBudgetStatusUpdate` for `policy/v1`: the conditions, and the counts
/// non-negative.
pub fn validate_status_update(status: &Value, causes: &mut Vec<Cause>) {
    validate_conditions(status.get("conditions"), "status.conditions", causes);
    for k in [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ] {
        if let Some(n) = status.get(k).and_then(Value::as_i64) {
            if n < 0 {
                causes.push(Cause::invalid(
                    format!("status.{k}"),
                    n.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

/// The PodDisruptionBudget strategies' checks (pkg/registry/policy/poddisruptionbudget
/// strategy.go): `ValidatePodDisruptionBudget` on a create and an update (its selector's
/// invalid label values tolerated when the stored one has them already), and
/// `ValidatePodDisruptionBudgetStatusUpdate` when an update changes the status (the status
/// subresource; the main resource keeps the stored status).
pub fn validate_pdb(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let allow = has_invalid_label_value_in_selector(old.and_then(|o| o.get("spec")));
    validate_spec(obj.get("spec").unwrap_or(&json!({})), allow, &mut causes);
    if let Some(old) = old {
        let status = obj.get("status").unwrap_or(&Value::Null);
        if Some(status) != old.get("status") {
            validate_status_update(status, &mut causes);
        }
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// the DisruptionAllowed condition

/// `apimeta.SetStatusCondition`: a new condition is added with `lastTransitionTime` `now`
/// (unless it has one); an existing one takes the new status (and `now` when the status
/// changes), reason, message and observedGeneration.
pub fn set_status_condition(conds: &mut Vec<Condition>, new: Condition, now: jiff::Timestamp) {
    let zero = |t: &Time| t.0.as_second() == 0;
    match conds.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            let mut c = new;
            if zero(&c.last_transition_time) {
                c.last_transition_time = crate::controllers::kinds::meta_time(now);
            }
            conds.push(c);
        }
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = if zero(&new.last_transition_time) {
                    crate::controllers::kinds::meta_time(now)
                } else {
                    new.last_transition_time
                };
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
    }
}

/// A condition without a transition time (set by [`set_status_condition`]).
pub fn condition(type_: &str, status: &str, reason: &str, message: &str, gen: i64) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(gen),
        last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
    }
}

/// `pdbhelper.UpdateDisruptionAllowedCondition`: `SufficientPods` while disruptions are
/// allowed, `InsufficientPods` otherwise.
pub fn update_disruption_allowed_condition(pdb: &mut PodDisruptionBudget, now: jiff::Timestamp) {
    let st = pdb.status.get_or_insert_with(Default::default);
    let gen = st.observed_generation.unwrap_or(0);
    let c = if st.disruptions_allowed > 0 {
        condition(DISRUPTION_ALLOWED, "True", SUFFICIENT_PODS, "", gen)
    } else {
        condition(DISRUPTION_ALLOWED, "False", INSUFFICIENT_PODS, "", gen)
    };
    set_status_condition(st.conditions.get_or_insert_with(Vec::new), c, now);
}

/// `pdbhelper.ConditionsAreUpToDate`.
pub fn conditions_are_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(st) = pdb.status.as_ref() else {
        return false;
    };
    let Some(c) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if st.observed_generation.unwrap_or(0) != pdb.metadata.generation.unwrap_or(0) {
        return false;
    }
    if st.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

/// Whether the budget covers a pod with `labels` of its namespace
/// (`GetPodPodDisruptionBudgets`): its selector converted by `LabelSelectorAsSelector`, so no
/// selector covers nothing, an empty one (policy/v1) every pod, and one that does not convert
/// nothing.
pub fn selects(pdb: &PodDisruptionBudget, labels: Option<&BTreeMap<String, String>>) -> bool {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|sel| crate::controllers::refmanager::selects(sel, labels) == Ok(true))
}

// ---------------------------------------------------------------------------------------------
// eviction

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `canIgnorePDB`: a pod that has finished, has not started or is being deleted is deleted
/// without consulting a budget.
pub fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || terminating(pod)
}

/// `shouldEnforceResourceVersion`: every pod but a finished or terminating one is deleted at
/// the version read, so it cannot have turned ready meanwhile.
fn should_enforce_resource_version(pod: &Value) -> bool {
    !(matches!(phase(pod), "Succeeded" | "Failed") || terminating(pod))
}

/// `podutil.IsPodReady`.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// `errors.NewTooManyRequests(message, retryAfterSeconds)` with a `DisruptionBudget` cause.
fn too_many_requests(cause: String, retry_after: i64) -> ApiError {
    let mut details = json!({"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        details: Some(details),
    }
}

/// `createTooManyRequestsError`: the budget has not caught up with its spec yet.
fn still_processed(name: &str) -> ApiError {
    too_many_requests(
        format!("The disruption budget {name} is still being processed by the server."),
        10,
    )
}

fn forbidden(name: &str, why: &str) -> ApiError {
    ApiError::forbidden_on(
        "policy",
        "poddisruptionbudget",
        name,
        format!("poddisruptionbudget.policy \"{name}\" is forbidden: {why}"),
    )
}

/// `checkAndDecrement`: whether the budget allows evicting `pod` now, and if so the budget
/// with one disruption fewer allowed and the pod recorded in `disruptedPods` at `now` (the
/// status the eviction writes; a dry run records nothing).
pub fn check_and_decrement(
    mut pdb: PodDisruptionBudget,
    pod: &str,
    dry_run: bool,
    now: jiff::Timestamp,
) -> Result<PodDisruptionBudget, ApiError> {
    let name = crate::controllers::kinds::name(&pdb.metadata).to_string();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let st = pdb.status.get_or_insert_with(Default::default);
    if st.observed_generation.unwrap_or(0) < generation {
        return Err(still_processed(&name));
    }
    if st.disruptions_allowed < 0 {
        return Err(forbidden(&name, "pdb disruptions allowed is negative"));
    }
    if st.disrupted_pods.as_ref().map_or(0, BTreeMap::len) > MAX_DISRUPTED_POD_SIZE {
        return Err(forbidden(
            &name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if st.disruptions_allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                st.desired_healthy, st.current_healthy
            ),
            0,
        ));
    }
    st.disruptions_allowed -= 1;
    if st.disruptions_allowed == 0 {
        update_disruption_allowed_condition(&mut pdb, now);
    }
    if dry_run {
        return Ok(pdb);
    }
    pdb.status
        .get_or_insert_with(Default::default)
        .disrupted_pods
        .get_or_insert_with(BTreeMap::new)
        .insert(pod.to_string(), crate::controllers::kinds::meta_time(now));
    Ok(pdb)
}

/// What an eviction of a pod that a budget guards does (the budget part of
/// `EvictionREST.Create`).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No budget covers the pod: delete it.
    Delete,
    /// An unready pod whose deletion does not disrupt the application (its budget's
    /// `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or the budget is satisfied): delete it
    /// at the version read, without taking a disruption.
    DeleteUnhealthy(String),
    /// Take a disruption of the named budget ([`check_and_decrement`]), then delete.
    Decrement(Box<PodDisruptionBudget>),
    /// More than one budget covers the pod: 500, not evicted.
    MoreThanOne,
}

/// Which budgets cover `pod` and what the eviction does about them.
pub fn decide(pod: &Value, pdbs: &[PodDisruptionBudget]) -> Decision {
    let labels: Option<BTreeMap<String, String>> = pod
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok());
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut covering = pdbs
        .iter()
        .filter(|p| crate::controllers::kinds::namespace(&p.metadata) == ns)
        .filter(|p| selects(p, labels.as_ref()));
    let Some(pdb) = covering.next() else {
        return Decision::Delete;
    };
    if covering.next().is_some() {
        return Decision::MoreThanOne;
    }
    let name = crate::controllers::kinds::name(&pdb.metadata).to_string();
    if !pod_ready(pod) {
        let policy = pdb
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
        if policy == Some("AlwaysAllow") {
            return Decision::DeleteUnhealthy(name);
        }
        let st = pdb.status.clone().unwrap_or_default();
        if st.current_healthy >= st.desired_healthy && st.desired_healthy > 0 {
            return Decision::DeleteUnhealthy(name);
        }
    }
    Decision::Decrement(Box::new(pdb.clone()))
}

/// The `deleteOptions` of an Eviction.
fn eviction_delete_options(body: &Value) -> DeleteOptions {
    let d = body.get("deleteOptions").filter(|d| d.is_object());
    DeleteOptions {
        grace_period_seconds: d
            .and_then(|d| d.get("gracePeriodSeconds"))
            .and_then(Value::as_i64),
        propagation_policy: d
            .and_then(|d| d.get("propagationPolicy"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                (d.and_then(|d| d.get("orphanDependents")) == Some(&json!(true)))
                    .then(|| "Orphan".to_string())
            }),
        uid: d
            .and_then(|d| d.pointer("/preconditions/uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: d
            .and_then(|d| d.pointer("/preconditions/resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn is_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.reason == "Conflict"
}

/// `addConditionAndDeletePod`: the pod's `DisruptionTarget` condition set (reason
/// `EvictionByEvictionAPI`) by a status write on the pod as stored (its preconditions checked
/// against it), then the delete with `opts` (a resourceVersion precondition moved to the
/// version that write made).
async fn add_condition_and_delete(
    objects: &Objects,
    ns: &str,
    name: &str,
    mut opts: DeleteOptions,
    dry_run: bool,
) -> ApiResult<()> {
    if !dry_run {
        let mut tries = 0;
        let written = loop {
            tries += 1;
            let mut pod = objects.get(pods(), ns, name).await?;
            let s = |p: &str| {
                pod.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (uid, rv) = (s("/metadata/uid"), s("/metadata/resourceVersion"));
            if let Some(want) = opts.uid.as_deref().filter(|u| !u.is_empty() && *u != uid) {
                return Err(ApiError::conflict_on("", "Pod", name, &format!("the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated")));
            }
            if let Some(want) = opts
                .resource_version
                .as_deref()
                .filter(|v| !v.is_empty() && *v != rv)
            {
                return Err(ApiError::conflict_on("", "Pod", name, &format!("the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({rv}). The object might have been modified")));
            }
            let mut conds: Vec<PodCondition> = pod
                .pointer("/status/conditions")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default();
            crate::controllers::scheduler::upsert_condition(
                &mut conds,
                PodCondition {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                    reason: Some("EvictionByEvictionAPI".into()),
                    message: Some("Eviction API: evicting".into()),
                    last_transition_time: Some(crate::controllers::kinds::meta_time(
                        jiff::Timestamp::now(),
                    )),
                    ..Default::default()
                },
            );
            if !pod["status"].is_object() {
                pod["status"] = json!({});
            }
            pod["status"]["conditions"] = serde_json::to_value(conds)
                .map_err(|e| ApiError::internal(format!("encoding the conditions: {e}")))?;
            match objects
                .update(pods(), ns, name, pod, Some("status"), false)
                .await
            {
                Ok(p) => break p,
                // the storage's update starts again from the pod as it is now
                Err(e) if is_conflict(&e) && tries < EVICTION_TRIES => continue,
                Err(e) => return Err(e),
            }
        };
        if opts.resource_version.is_some() {
            opts.resource_version = written
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    objects.delete(pods(), ns, name, &opts).await.map(|_| ())
}

fn decode_pdb(v: Value) -> ApiResult<PodDisruptionBudget> {
    serde_json::from_value(v)
        .map_err(|e| ApiError::internal(format!("a PodDisruptionBudget does not decode: {e}")))
}

/// The `Status` a successful eviction answers with.
pub fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// `EvictionREST.Create`: evicts pod `ns/name` as the Eviction `body` asks. Returns the
/// `Status` to answer with (201 Success, or the 500 of a pod more than one budget covers).
///
/// A pod that has finished, is pending or is being deleted is deleted directly; otherwise the
/// budgets of its namespace that select it decide: none, the pod is deleted; more than one,
/// 500; one, the eviction takes one of its allowed disruptions (429 when none is left or the
/// budget has not caught up with its spec) by a status write guarded by its resourceVersion
/// (a conflict reads it again), then deletes the pod. The Eviction's `deleteOptions`
/// (grace period, preconditions, dry run) are those of the delete.
pub async fn evict(objects: &Objects, ns: &str, name: &str, body: &Value) -> ApiResult<Value> {
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    let opts = eviction_delete_options(body);
    // the request's dryRun, or the Eviction's (the subresource's route makes it the
    // request's)
    let dry_run = crate::webhooks::dry_run();
    let rv_unset = opts.resource_version.is_none();
    // the pods whose budget can be ignored
    let mut tries = 0;
    let pod = loop {
        tries += 1;
        let pod = objects.get(pods(), ns, name).await?;
        if !can_ignore_pdb(&pod) {
            break pod;
        }
        let mut o = opts.clone();
        if should_enforce_resource_version(&pod) && rv_unset {
            o.resource_version = pod
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        match add_condition_and_delete(objects, ns, name, o, dry_run).await {
            Ok(()) => return Ok(success()),
            Err(e) if is_conflict(&e) && rv_unset && tries < EVICTION_TRIES => {
                tokio::time::sleep(EVICTION_RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    };
    let pdb_r = resource()?;
    let (items, _, _) = objects
        .list(pdb_r, Some(ns), &ListOptions::default())
        .await?;
    let pdbs = crate::controllers::kinds::decode_listed::<PodDisruptionBudget>(items);
    let mut delete_opts = opts.clone();
    let mut unhealthy_of = None;
    match decide(&pod, &pdbs) {
        Decision::Delete => {}
        Decision::MoreThanOne => {
            return Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "code": 500,
                "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}));
        }
        Decision::DeleteUnhealthy(pdb_name) => {
            delete_opts.resource_version = pod
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            unhealthy_of = Some(pdb_name);
        }
        Decision::Decrement(pdb) => {
            let pdb_name = crate::controllers::kinds::name(&pdb.metadata).to_string();
            let mut current = *pdb;
            let mut tries = 0;
            loop {
                tries += 1;
                let next = check_and_decrement(current, name, dry_run, jiff::Timestamp::now())?;
                if dry_run {
                    break;
                }
                let v = serde_json::to_value(&next)
                    .map_err(|e| ApiError::internal(format!("encoding the budget: {e}")))?;
                match objects
                    .update(pdb_r, ns, &pdb_name, v, Some("status"), false)
                    .await
                {
                    Ok(_) => break,
                    Err(e) if is_conflict(&e) && tries < EVICTION_TRIES => {
                        tokio::time::sleep(EVICTION_RETRY_DELAY).await;
                        current = decode_pdb(objects.get(pdb_r, ns, &pdb_name).await?)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    match add_condition_and_delete(objects, ns, name, delete_opts, dry_run).await {
        Ok(()) => Ok(success()),
        // the unready pod changed since it was read (it may have turned ready): the client
        // tries again
        Err(e) if is_conflict(&e) && rv_unset && unhealthy_of.is_some() => {
            Err(still_processed(unhealthy_of.as_deref().unwrap_or("")))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(c: &[Cause]) -> Vec<String> {
        c.iter().map(Cause::text).collect()
    }

    fn spec_causes(spec: Value) -> Vec<String> {
        texts(&validate_pdb(&json!({"spec": spec}), None))
    }

    #[test]
    fn min_available_and_max_unavailable_are_exclusive() {
        assert_eq!(
            spec_causes(json!({"minAvailable": 1, "maxUnavailable": 1, "selector": {}})),
            ["spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(…), Selector:(*v1.LabelSelector)(…), MaxUnavailable:(*intstr.IntOrString)(…), UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable and maxUnavailable cannot be both set"]
        );
        assert!(spec_causes(json!({"minAvailable": 1, "selector": {}})).is_empty());
        assert!(spec_causes(json!({"maxUnavailable": "50%"})).is_empty());
    }

    #[test]
    fn int_or_percent_non_negative_and_at_most_100_percent() {
        assert_eq!(
            spec_causes(json!({"minAvailable": -1})),
            ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            spec_causes(json!({"maxUnavailable": "101%"})),
            ["spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"101%\"}: must not be greater than 100%"]
        );
        assert_eq!(
            spec_causes(json!({"minAvailable": "half"})),
            ["spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"half\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]
        );
        assert!(spec_causes(json!({"minAvailable": "100%"})).is_empty());
        assert!(spec_causes(json!({"minAvailable": 0})).is_empty());
    }

    #[test]
    fn selector_and_eviction_policy() {
        assert_eq!(
            spec_causes(json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Bad"}]}})),
            ["spec.selector.matchExpressions[0].operator: Invalid value: \"Bad\": not a valid selector operator"]
        );
        assert_eq!(
            spec_causes(json!({"unhealthyPodEvictionPolicy": "Never"})),
            ["spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""]
        );
        assert!(spec_causes(json!({"unhealthyPodEvictionPolicy": "AlwaysAllow"})).is_empty());
        // an invalid label value already stored is tolerated on update, not on create
        let bad = json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["-x-"]}]}}});
        assert_eq!(validate_pdb(&bad, None).len(), 1);
        assert!(validate_pdb(&bad, Some(&bad)).is_empty());
    }

    #[test]
    fn status_updates_are_checked() {
        let old = json!({"spec": {}, "status": {"disruptionsAllowed": 0}});
        let new = json!({"spec": {}, "status": {"disruptionsAllowed": -1, "currentHealthy": -2,
            "conditions": [{"type": "DisruptionAllowed", "status": "Maybe", "reason": "1bad"},
                           {"type": "DisruptionAllowed", "status": "True", "reason": "Ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        assert_eq!(
            texts(&validate_pdb(&new, Some(&old))),
            [
                "status.conditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
                "status.conditions[0].lastTransitionTime: Required value: must be set",
                "status.conditions[0].reason: Invalid value: \"1bad\": a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
                "status.conditions[1].type: Duplicate value: \"DisruptionAllowed\"",
                "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0",
                "status.currentHealthy: Invalid value: -2: must be greater than or equal to 0",
            ]
        );
        // a spec update keeps the stored status, which is not checked again
        assert!(validate_pdb(&old, Some(&old)).is_empty());
    }

    fn pdb(v: Value) -> PodDisruptionBudget {
        serde_json::from_value(v).unwrap()
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn budget(allowed: i32) -> PodDisruptionBudget {
        pdb(
            json!({"metadata": {"name": "web", "namespace": "a", "generation": 1},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 1 + allowed,
                "desiredHealthy": 1, "expectedPods": 1 + allowed,
                "conditions": [{"type": "DisruptionAllowed", "status": if allowed > 0 {"True"} else {"False"},
                    "reason": if allowed > 0 {"SufficientPods"} else {"InsufficientPods"}, "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]}}),
        )
    }

    #[test]
    fn a_budget_without_disruptions_left_refuses_with_429() {
        let e = check_and_decrement(budget(0), "p", false, now()).unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(
            e.message,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        let st = e.status();
        assert_eq!(st["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            st["details"]["causes"][0]["message"],
            "The disruption budget web needs 1 healthy pods and has 1 currently"
        );
        assert!(st["details"].get("retryAfterSeconds").is_none());
        // not caught up with its spec yet
        let mut b = budget(1);
        b.metadata.generation = Some(2);
        let e = check_and_decrement(b, "p", false, now()).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(
            e.status()["details"]["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
        assert_eq!(e.status()["details"]["retryAfterSeconds"], 10);
        let mut b = budget(0);
        b.status.as_mut().unwrap().disruptions_allowed = -1;
        let e = check_and_decrement(b, "p", false, now()).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn an_allowed_eviction_takes_a_disruption_and_records_the_pod() {
        let b = check_and_decrement(budget(1), "p", false, now()).unwrap();
        let st = b.status.as_ref().unwrap();
        assert_eq!(st.disruptions_allowed, 0);
        assert_eq!(
            st.disrupted_pods.as_ref().unwrap()["p"],
            crate::controllers::kinds::meta_time(now())
        );
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", INSUFFICIENT_PODS)
        );
        assert_eq!(c.last_transition_time.0, now());
        // a dry run records nothing; with more left, the condition stays
        let b = check_and_decrement(budget(2), "p", true, now()).unwrap();
        let st = b.status.as_ref().unwrap();
        assert_eq!(st.disruptions_allowed, 1);
        assert!(st.disrupted_pods.is_none());
        assert_eq!(st.conditions.as_ref().unwrap()[0].reason, SUFFICIENT_PODS);
    }

    fn pod(labels: Value, phase: &str, ready: bool) -> Value {
        json!({"metadata": {"name": "p", "namespace": "a", "labels": labels, "resourceVersion": "5"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn terminal_pending_and_terminating_pods_bypass_budgets() {
        assert!(can_ignore_pdb(&pod(json!({}), "Succeeded", false)));
        assert!(can_ignore_pdb(&pod(json!({}), "Failed", false)));
        assert!(can_ignore_pdb(&pod(json!({}), "Pending", false)));
        let mut p = pod(json!({}), "Running", true);
        assert!(!can_ignore_pdb(&p));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(can_ignore_pdb(&p));
        assert!(!should_enforce_resource_version(&p));
        assert!(should_enforce_resource_version(&pod(
            json!({}),
            "Pending",
            false
        )));
    }

    #[test]
    fn the_covering_budgets_decide() {
        let web = pod(json!({"app": "web"}), "Running", true);
        assert_eq!(decide(&web, &[]), Decision::Delete);
        assert!(matches!(decide(&web, &[budget(1)]), Decision::Decrement(_)));
        // another namespace's, or one whose selector does not match, does not cover it
        let mut other = budget(1);
        other.metadata.namespace = Some("b".into());
        assert_eq!(decide(&web, &[other]), Decision::Delete);
        let db = pod(json!({"app": "db"}), "Running", true);
        assert_eq!(decide(&db, &[budget(1)]), Decision::Delete);
        // an empty selector covers every pod, none covers none
        let mut all = budget(1);
        all.spec.as_mut().unwrap().selector = Some(Default::default());
        assert_eq!(
            decide(&web, &[budget(1), all.clone()]),
            Decision::MoreThanOne
        );
        assert!(matches!(decide(&db, &[all]), Decision::Decrement(_)));
        let mut none = budget(1);
        none.spec.as_mut().unwrap().selector = None;
        assert_eq!(decide(&web, &[none]), Decision::Delete);
        // an unready pod of a satisfied budget is deleted without taking a disruption
        let unready = pod(json!({"app": "web"}), "Running", false);
        assert_eq!(
            decide(&unready, &[budget(0)]),
            Decision::DeleteUnhealthy("web".into())
        );
        let mut short = budget(0);
        short.status.as_mut().unwrap().current_healthy = 0;
        assert!(matches!(
            decide(&unready, &[short.clone()]),
            Decision::Decrement(_)
        ));
        short.spec.as_mut().unwrap().unhealthy_pod_eviction_policy = Some("AlwaysAllow".into());
        assert_eq!(
            decide(&unready, &[short]),
            Decision::DeleteUnhealthy("web".into())
        );
    }

    #[test]
    fn the_condition_follows_the_allowed_disruptions() {
        let mut b = budget(0);
        assert!(conditions_are_up_to_date(&b));
        b.status.as_mut().unwrap().disruptions_allowed = 2;
        assert!(!conditions_are_up_to_date(&b));
        update_disruption_allowed_condition(&mut b, now());
        assert!(conditions_are_up_to_date(&b));
        let c = &b.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.0),
            ("True", now())
        );
        // the same status keeps its transition time
        let later: jiff::Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        update_disruption_allowed_condition(&mut b, later);
        let c = &b.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time.0, now());
        b.metadata.generation = Some(3);
        assert!(!conditions_are_up_to_date(&b));
    }
}
