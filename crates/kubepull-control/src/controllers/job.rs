//! The Job controller (kubernetes `pkg/controller/job/job_controller.go`, 1.32 behaviour):
//! pods from the template up to `parallelism` until `completions` succeed, `NonIndexed` and
//! `Indexed` completion modes, `backoffLimit` with the pod-failure back-off, pods with
//! `restartPolicy: OnFailure` counting container restarts, `activeDeadlineSeconds`, `suspend`,
//! and `ttlSecondsAfterFinished` (pkg/controller/ttlafterfinished).
//!
//! Tracking with the `batch.kubernetes.io/job-tracking` finalizer as upstream
//! (`trackJobStatusAndRemoveFinalizers`): a finished pod's UID first goes to
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves to
//! `succeeded`/`failed`, so a pod is counted exactly once whatever fails in between. With
//! `podReplacementPolicy: TerminatingOrFailed` (the default without a `podFailurePolicy`) a
//! terminating pod counts as failed and is replaced at once; with `Failed` (the only value a
//! `podFailurePolicy` allows) it is replaced once it has failed.
//!
//! `podFailurePolicy` (`matchPodFailurePolicy`): the first matching rule decides whether a
//! failed pod fails the Job (`FailJob`), fails its index (`FailIndex`), is not counted
//! (`Ignore`) or is counted (`Count`).
//!
//! `backoffLimitPerIndex` (Indexed Jobs, `pkg/controller/job/indexed_job_utils.go`): each
//! index's failures are counted on its replacement pods (the
//! `batch.kubernetes.io/job-index-failure-count` and `job-index-ignored-failure-count`
//! annotations); an index whose pod fails with the count at the limit, or by a `FailIndex`
//! rule, is failed (`status.failedIndexes`) and not run again; the Job fails with
//! `MaxFailedIndexesExceeded` past `maxFailedIndexes`, or with `FailedIndexes` once every index
//! has succeeded or failed. A failed pod keeps its finalizer until its replacement exists, and
//! each index has its own back-off.
//!
//! `successPolicy` (`matchSuccessPolicy`, success_policy.go): once a rule's `succeededIndexes`
//! or `succeededCount` is met the Job gets `SuccessCriteriaMet` (reason `SuccessPolicy`), its
//! remaining pods are deleted, then `Complete`.
//!
//! A Job whose `spec.managedBy` names another controller than `kubernetes.io/job-controller`
//! is left to that controller (`managedByExternalController`): only its TTL applies.
//!
//! Pods are claimed as `getPodsForJob` claims them through the controller ref manager
//! ([`refmanager`]): the Job's namespace's orphans its selector matches are adopted (with the
//! tracking finalizer), its pods it no longer selects released (without it); pods holding the
//! finalizer that no Job will release (orphans, pods of a Job gone or finished) lose it through
//! their own queue keys (`enqueueOrphanPod` / `syncOrphanPod`).
//!
//! With `JobManagedBy`/`JobPodReplacementPolicy` on (1.32 default) the terminal condition is
//! delayed (`delayTerminalCondition`): first `SuccessCriteriaMet` or `FailureTarget`, then
//! `Complete` or `Failed` once no pod is left running or terminating.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use k8s_openapi::api::batch::v1::{
    Job, JobCondition, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, SuccessPolicy,
    UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::expectations::{Expectations, OwnWrites};
use super::informer::{index, Cached, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::queue::{self, Action, Plan};
use super::refmanager::{self, Claim, InvalidSelector};
use crate::errors::{ApiError, Cause};
use crate::objects::Objects;
use crate::resources::{self, Resource};

/// The finalizer on every pod a Job creates (K132 api batch/v1 `JobTrackingFinalizer`).
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label with an Indexed Job pod's index (`JobCompletionIndexAnnotation`).
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// `DefaultJobPodFailureBackOff` (job_controller.go).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// `MaxJobPodFailureBackOff` (job_controller.go).
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// The most pods one sync creates or deletes (`MaxPodCreateDeletePerSync` in kubernetes
/// `pkg/controller/job/job_controller.go`); the pods' own events bring the next sync.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// The largest `parallelism` of an Indexed Job (`maxParallelismForIndexedJob` in kubernetes
/// `pkg/apis/batch/validation/validation.go`).
pub const MAX_PARALLELISM_FOR_INDEXED_JOB: i64 = 100_000;
/// The annotation with the failures of an index counted against `backoffLimitPerIndex`
/// (`JobIndexFailureCountAnnotation`).
pub const INDEX_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation with the failures of an index an `Ignore` rule matched
/// (`JobIndexIgnoredFailureCountAnnotation`).
pub const INDEX_IGNORED_FAILURE_COUNT_KEY: &str =
    "batch.kubernetes.io/job-index-ignored-failure-count";
/// The `spec.managedBy` of the Jobs this controller syncs (`JobControllerName`).
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";
/// `maxFailedIndexesForIndexedJob`, `completionsSoftLimit`,
/// `parallelismLimitForHighCompletions`, `maxFailedIndexesLimitForHighCompletions`,
/// `maxManagedByLength`, `maxJobSuccessPolicySucceededIndexesLimit` and `maxSuccessPolicyRule`
/// (pkg/apis/batch/validation/validation.go).
const MAX_FAILED_INDEXES_FOR_INDEXED_JOB: i64 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i64 = 100_000;
/// `parallelismSoftLimitForUnlimitedCompletions` (pkg/api/job/warnings.go).
const PARALLELISM_SOFT_LIMIT_FOR_UNLIMITED_COMPLETIONS: i64 = 10_000;
const PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS: i64 = 10_000;
const MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS: i64 = 10_000;
const MAX_MANAGED_BY_LENGTH: u64 = 63;
const MAX_SUCCEEDED_INDEXES_LENGTH: u64 = 64 * 1024;
const MAX_SUCCESS_POLICY_RULES: u64 = 20;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn opt_i(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(Value::as_i64)
}

fn jobs_r() -> &'static Resource {
    resources::find("batch", "v1", "jobs").expect("jobs served")
}

fn pods_r() -> &'static Resource {
    resources::find("", "v1", "pods").expect("pods served")
}

/// `SetDefaults_Job` (kubernetes `pkg/apis/batch/v1/defaults.go`): completions and
/// parallelism 1 when neither is set, parallelism 1, backoffLimit 6 (MaxInt32 with
/// backoffLimitPerIndex), completionMode NonIndexed, suspend false, podReplacementPolicy
/// (Failed with a podFailurePolicy, else TerminatingOrFailed); a Job without labels takes its
/// template's, at decode, so mutating admission sees them and a label a webhook adds does not
/// keep them off; the template's metadata is present for [`generate_selector`].
pub fn default_job(job: &mut Job) {
    // `labels := obj.Spec.Template.Labels; if labels != nil && len(obj.Labels) == 0`
    let template_labels = job
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if let Some(l) = template_labels {
        if job.metadata.labels.as_ref().is_none_or(|m| m.is_empty()) {
            job.metadata.labels = Some(l);
        }
    }
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit_per_index.is_some() {
        spec.backoff_limit.get_or_insert(i32::MAX);
    }
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    let policy = if spec.pod_failure_policy.is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    spec.pod_replacement_policy
        .get_or_insert_with(|| policy.into());
    spec.template.metadata.get_or_insert_with(Default::default);
}

/// On `create`, the selector and pod labels the registry generates for a Job with a UID
/// (`PrepareForCreate` → `generateSelectorIfNeeded`, kubernetes
/// `pkg/registry/batch/job/strategy.go`; an update generates nothing, its selector and labels
/// are validated as sent). A Job still without labels then takes its template's, the
/// generated ones included, as the storage codec's decode of the written Job applies
/// `SetDefaults_Job` again (the decode-time copy is [`default_job`]'s).
pub fn generate_selector(obj: &mut Value, create: bool) {
    if create {
        generate_selector_on_create(obj);
    }
    // the storage decode's `SetDefaults_Job`
    let no_labels = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty());
    if no_labels {
        if let Some(l) = obj.pointer("/spec/template/metadata/labels").cloned() {
            obj["metadata"]["labels"] = l;
        }
    }
}

fn generate_selector_on_create(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    if !obj.pointer("/spec/template").is_some_and(Value::is_object) {
        obj["spec"]["template"] = json!({});
    }
    if !obj
        .pointer("/spec/template/metadata")
        .is_some_and(Value::is_object)
    {
        obj["spec"]["template"]["metadata"] = json!({});
    }
    let manual = obj.pointer("/spec/manualSelector") == Some(&json!(true));
    let uid = s(obj, "/metadata/uid").to_string();
    let name = s(obj, "/metadata/name").to_string();
    if !manual && !uid.is_empty() {
        // labels the user set are kept (a conflict is refused by validation)
        let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in [
            ("job-name", &name),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            if labels.get(k).is_none() {
                labels[k] = json!(v);
            }
        }
        let sel = &mut obj["spec"]["selector"];
        if !sel.is_object() {
            *sel = json!({});
        }
        if !sel.get("matchLabels").is_some_and(Value::is_object) {
            sel["matchLabels"] = json!({});
        }
        if sel["matchLabels"]
            .get("batch.kubernetes.io/controller-uid")
            .is_none()
        {
            sel["matchLabels"]["batch.kubernetes.io/controller-uid"] = json!(uid);
        }
    }
}

/// `WarningsForJobSpec` (kubernetes `pkg/api/job/warnings.go`), its Job part, for the Job spec
/// at JSON pointer `pointer` of `obj` (a Job's `/spec`, a CronJob's `/spec/jobTemplate/spec`),
/// named `path` in the message: an Indexed Job with more than 10^5 completions and a
/// parallelism above 10^4. The pod template's part (`GetWarningsForPodTemplate`) follows, as for
/// every workload (`admission::pod_spec_warnings`).
pub fn job_spec_warnings(obj: &Value, pointer: &str, path: &str) -> Vec<String> {
    let Some(spec) = obj.pointer(pointer) else {
        return vec![];
    };
    let mut w = vec![];
    if s(spec, "/completionMode") == "Indexed"
        && opt_i(spec, "/completions").unwrap_or(0) > COMPLETIONS_SOFT_LIMIT
        && opt_i(spec, "/parallelism").unwrap_or(0)
            > PARALLELISM_SOFT_LIMIT_FOR_UNLIMITED_COMPLETIONS
    {
        w.push(format!("{path}: In Indexed Jobs with a number of completions higher than 10^5 and a parallelism higher than 10^4, Kubernetes might not be able to track completedIndexes when a big number of indexes fail"));
    }
    w
}

/// `ValidateJob`/`ValidateJobSpecUpdate` (pkg/apis/batch/validation/validation.go), the parts
/// that apply here, the pod template decoded from `obj`.
pub fn validate_job(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    validate_job_decoded(obj, old, None)
}

/// [`validate_job`] with the pod template's spec as the server decoded it once for the
/// request (`Some(None)`: the body has none); `None` decodes it from `obj`.
pub fn validate_job_decoded(
    obj: &Value,
    old: Option<&Value>,
    template: Option<Option<&k8s_openapi::api::core::v1::PodSpec>>,
) -> Vec<Cause> {
    let mut c = validate_job_spec_decoded(
        obj.get("spec").unwrap_or(&Value::Null),
        "spec",
        template,
        crate::quantities::old_spec_allows_indivisible_huge_pages(old, "/spec/template/spec"),
    );
    c.extend(validate_selector(obj));
    if let Some(old) = old {
        // ValidateJobSpecUpdate's immutable fields
        for f in [
            "selector",
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
            "managedBy",
            "successPolicy",
        ] {
            let p = format!("/spec/{f}");
            if old.pointer(&p) != obj.pointer(&p) {
                c.push(Cause::invalid(
                    format!("spec.{f}"),
                    // a removed field shows as `"null"`, as `field.Invalid` prints a nil value
                    obj.pointer(&p)
                        .map_or_else(|| "\"null\"".to_string(), |v| v.to_string()),
                    "field is immutable",
                ));
            }
        }
        // the template may change only while the Job is suspended and has not started
        let suspended = obj.pointer("/spec/suspend") == Some(&json!(true));
        let started = old.pointer("/status/startTime").is_some();
        // (`ValidateImmutableField`: `apiequality.Semantic.DeepEqual`, quantities by value)
        let template = |v: &Value| v.pointer("/spec/template").cloned();
        if (started || !suspended) && !crate::podupdate::semantic_eq(&template(old), &template(obj))
        {
            c.push(Cause::invalid(
                "spec.template",
                "core.PodTemplateSpec{…}",
                "field is immutable",
            ));
        }
        // completions may change only together with parallelism (elastic Indexed Jobs)
        if old.pointer("/spec/completions") != obj.pointer("/spec/completions") {
            let elastic = s(obj, "/spec/completionMode") == "Indexed"
                && obj.pointer("/spec/completions") == obj.pointer("/spec/parallelism");
            if !elastic {
                c.push(Cause::invalid(
                    "spec.completions",
                    opt_i(obj, "/spec/completions")
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "null".into()),
                    "field is immutable",
                ));
            }
        }
    }
    c
}

/// The spec checks shared by Jobs and CronJob job templates (`validateJobSpec`), the pod
/// template decoded from `spec`.
pub fn validate_job_spec(spec: &Value, path: &str) -> Vec<Cause> {
    validate_job_spec_decoded(spec, path, None, false)
}

/// [`validate_job_spec`] with the pod template's spec decoded once for the request (see
/// [`validate_job_decoded`]).
pub fn validate_job_spec_decoded(
    spec: &Value,
    path: &str,
    template: Option<Option<&k8s_openapi::api::core::v1::PodSpec>>,
    allow_indivisible_huge_pages: bool,
) -> Vec<Cause> {
    let mut c = vec![];
    for f in ["parallelism", "completions", "backoffLimit"] {
        if let Some(n) = opt_i(spec, &format!("/{f}")) {
            if n < 0 {
                c.push(Cause::invalid(
                    format!("{path}.{f}"),
                    n.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for f in ["activeDeadlineSeconds"] {
        if let Some(n) = opt_i(spec, &format!("/{f}")) {
            if n <= 0 {
                c.push(Cause::invalid(
                    format!("{path}.{f}"),
                    n.to_string(),
                    "must be greater than 0",
                ));
            }
        }
    }
    for f in [
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        if let Some(n) = opt_i(spec, &format!("/{f}")).filter(|n| *n < 0) {
            c.push(Cause::invalid(
                format!("{path}.{f}"),
                n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    let per_index = opt_i(spec, "/backoffLimitPerIndex");
    let max_failed = opt_i(spec, "/maxFailedIndexes");
    if max_failed.is_some() && per_index.is_none() {
        c.push(Cause::required(
            format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    if let Some(m) = spec.get("managedBy").filter(|v| !v.is_null()) {
        validate_managed_by(
            m.as_str().unwrap_or(""),
            &format!("{path}.managedBy"),
            &mut c,
        );
    }
    let mode = s(spec, "/completionMode");
    if !mode.is_empty() && !matches!(mode, "NonIndexed" | "Indexed") {
        c.push(Cause::not_supported(
            format!("{path}.completionMode"),
            format!("{mode:?}"),
            &["NonIndexed", "Indexed"],
        ));
    }
    if mode == "Indexed" && opt_i(spec, "/completions").is_none() {
        c.push(Cause::required(
            format!("{path}.completions"),
            "when completion mode is Indexed",
        ));
    }
    if mode == "Indexed" {
        if let Some(n) =
            opt_i(spec, "/parallelism").filter(|n| *n > MAX_PARALLELISM_FOR_INDEXED_JOB)
        {
            c.push(Cause::invalid(
                format!("{path}.parallelism"),
                n.to_string(),
                format!(
                    "must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"
                ),
            ));
        }
    }
    if mode == "Indexed" {
        validate_indexed_limits(spec, path, &mut c);
    } else if matches!(mode, "" | "NonIndexed") {
        // NonIndexed, or not set (a CronJob's job template is not defaulted)
        for (f, n) in [
            ("backoffLimitPerIndex", per_index),
            ("maxFailedIndexes", max_failed),
        ] {
            if let Some(n) = n {
                c.push(Cause::invalid(
                    format!("{path}.{f}"),
                    n.to_string(),
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        validate_pod_failure_policy(spec, &format!("{path}.podFailurePolicy"), &mut c);
    }
    if let Some(sp) = spec.get("successPolicy").filter(|v| !v.is_null()) {
        let sp_path = format!("{path}.successPolicy");
        if mode != "Indexed" {
            c.push(Cause::invalid(
                sp_path,
                sp.to_string(),
                "requires indexed completion mode",
            ));
        } else {
            validate_success_policy(sp, opt_i(spec, "/completions"), &sp_path, &mut c);
        }
    }
    validate_pod_replacement_policy(spec, &format!("{path}.podReplacementPolicy"), &mut c);
    let rp = s(spec, "/template/spec/restartPolicy");
    if !matches!(rp, "OnFailure" | "Never") {
        c.push(Cause::not_supported(
            format!("{path}.template.spec.restartPolicy"),
            format!("{rp:?}"),
            &["OnFailure", "Never"],
        ));
    } else if rp != "Never" && spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        c.push(Cause::invalid(
            format!("{path}.template.spec.restartPolicy"),
            format!("{rp:?}"),
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    let at = format!("{path}.template.spec");
    let annotations = spec.pointer("/template/metadata/annotations");
    match (template, spec.pointer("/template/spec")) {
        (Some(Some(ps)), _) => crate::admission::validate_template_spec(
            ps,
            annotations,
            &at,
            allow_indivisible_huge_pages,
            &mut c,
        ),
        (None, Some(ps)) => crate::admission::validate_pod_spec_json(
            ps,
            annotations,
            &at,
            allow_indivisible_huge_pages,
            &mut c,
        ),
        (Some(None), _) | (None, None) => c.push(Cause::required(
            format!("{path}.template.spec.containers"),
            "",
        )),
    }
    c
}

/// The `maxFailedIndexes` and high-`completions` limits of an Indexed Job (`validateJobSpec`).
fn validate_indexed_limits(spec: &Value, path: &str, c: &mut Vec<Cause>) {
    let completions = opt_i(spec, "/completions");
    let parallelism = opt_i(spec, "/parallelism");
    let max_failed = opt_i(spec, "/maxFailedIndexes");
    let mf_path = format!("{path}.maxFailedIndexes");
    if let (Some(cs), Some(m)) = (completions, max_failed) {
        if m > cs {
            c.push(Cause::invalid(
                mf_path.clone(),
                m.to_string(),
                "must be less than or equal to completions",
            ));
        }
    }
    if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES_FOR_INDEXED_JOB) {
        c.push(Cause::invalid(
            mf_path.clone(),
            m.to_string(),
            format!("must be less than or equal to {MAX_FAILED_INDEXES_FOR_INDEXED_JOB}"),
        ));
    }
    let high = completions.is_some_and(|cs| cs > COMPLETIONS_SOFT_LIMIT);
    if high
        && spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null())
    {
        if max_failed.is_none() {
            c.push(Cause::required(
                mf_path.clone(),
                format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
            ));
        }
        let suffix = format!(
            "when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        );
        if let Some(p) = parallelism.filter(|p| *p > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS) {
            c.push(Cause::invalid(
                format!("{path}.parallelism"),
                p.to_string(),
                format!("must be less than or equal to {PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS} {suffix}"),
            ));
        }
        if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS) {
            c.push(Cause::invalid(
                mf_path,
                m.to_string(),
                format!("must be less than or equal to {MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS} {suffix}"),
            ));
        }
    }
}

/// `spec.managedBy`: `IsDomainPrefixedPath` (k8s.io/apimachinery
/// pkg/util/validation/validation.go) and at most `maxManagedByLength` bytes.
fn validate_managed_by(v: &str, path: &str, c: &mut Vec<Cause>) {
    const HTTP_PATH_FMT: &str = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+";
    match v.split_once('/') {
        _ if v.is_empty() => c.push(Cause::required(path, "")),
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            for e in crate::admission::dns1123_subdomain_problems(host) {
                c.push(Cause::invalid(path, format!("{host:?}"), e));
            }
            let path_ok = rest
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(ch));
            if !path_ok {
                c.push(Cause::invalid(
                    path,
                    format!("{rest:?}"),
                    // `RegexError("Invalid path", httpPathFmt)`
                    format!("Invalid path (regex used for validation is '{HTTP_PATH_FMT}')"),
                ));
            }
        }
        _ => c.push(Cause::invalid(
            path,
            format!("{v:?}"),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    if v.len() as u64 > MAX_MANAGED_BY_LENGTH {
        c.push(Cause::too_long(path, MAX_MANAGED_BY_LENGTH));
    }
}

/// `validateSuccessPolicy` and `validateSuccessPolicyRule` (an Indexed Job's; `completions`
/// is required there, and its absence already refused).
fn validate_success_policy(sp: &Value, completions: Option<i64>, path: &str, c: &mut Vec<Cause>) {
    let rules_path = format!("{path}.rules");
    let empty = vec![];
    let rules = sp.get("rules").and_then(Value::as_array).unwrap_or(&empty);
    if rules.is_empty() {
        c.push(Cause::required(
            rules_path.clone(),
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() as u64 > MAX_SUCCESS_POLICY_RULES {
        c.push(Cause::too_many(
            rules_path.clone(),
            rules.len(),
            MAX_SUCCESS_POLICY_RULES,
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let indexes = rule.get("succeededIndexes").and_then(Value::as_str);
        let count = opt_i(rule, "/succeededCount");
        if indexes.is_none() && count.is_none() {
            c.push(Cause::required(
                rule_path.clone(),
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(ix) = indexes {
            let ix_path = format!("{rule_path}.succeededIndexes");
            if ix.len() as u64 > MAX_SUCCEEDED_INDEXES_LENGTH {
                c.push(Cause::too_long(
                    ix_path.clone(),
                    MAX_SUCCEEDED_INDEXES_LENGTH,
                ));
            }
            match validate_indexes_format(ix, completions.unwrap_or(0)) {
                Ok(n) => total = n,
                Err(e) => c.push(Cause::invalid(
                    ix_path,
                    format!("{ix:?}"),
                    format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(n) = count {
            let count_path = format!("{rule_path}.succeededCount");
            if n < 0 {
                c.push(Cause::invalid(
                    count_path.clone(),
                    n.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
            if let Some(cs) = completions.filter(|cs| n > *cs) {
                c.push(Cause::invalid(
                    count_path.clone(),
                    n.to_string(),
                    format!(
                        "must be less than or equal to {cs} (the number of specified completions)"
                    ),
                ));
            }
            if indexes.is_some() && n > total {
                c.push(Cause::invalid(
                    count_path,
                    n.to_string(),
                    format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
}

/// `validateIndexesFormat`: ordered, non-overlapping intervals below `completions`; how many
/// indexes they hold.
fn validate_indexes_format(s: &str, completions: i64) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0i64;
    for part in s.split(',') {
        let (x, y) = parse_index_interval(part, completions)?;
        if let Some(l) = last.filter(|l| *l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// `parseIndexInterval`: `x` or `x-y` with `x < y`, both below `completions`.
fn parse_index_interval(s: &str, completions: i64) -> Result<(i64, i64), String> {
    let limits: Vec<&str> = s.split('-').collect();
    if limits.len() > 2 {
        return Err(format!(
            "the fragment {s:?} violates the requirement that an index interval can have at most two parts separated by '-'"
        ));
    }
    let num = |v: &str| -> Result<i64, String> {
        let n: i64 = v
            .parse()
            .map_err(|_| format!("cannot convert string to integer for index: {v:?}"))?;
        if n >= completions {
            return Err(format!("too large index: {v:?}"));
        }
        Ok(n)
    };
    let x = num(limits[0])?;
    match limits.get(1) {
        None => Ok((x, x)),
        Some(b) => {
            let y = num(b)?;
            if x >= y {
                return Err(format!("non-increasing order, previous: {x}, current: {y}"));
            }
            Ok((x, y))
        }
    }
}

/// `maxPodFailurePolicyRules`, `maxPodFailurePolicyOnExitCodesValues`,
/// `maxPodFailurePolicyOnPodConditionsPatterns` (pkg/apis/batch/validation/validation.go).
const MAX_POD_FAILURE_POLICY_RULES: u64 = 20;
const MAX_ON_EXIT_CODES_VALUES: u64 = 255;
const MAX_ON_POD_CONDITIONS_PATTERNS: u64 = 20;

/// `supportedPodFailurePolicyActions`, sorted as `sets.List` gives them.
const POD_FAILURE_POLICY_ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];

/// Go's `%q` of a sorted string set: `["A" "B"]`.
fn go_quoted_list(v: &[&str]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%#v` of a `[]int32`: `[]int32{1, 2}`, `[]int32(nil)` when absent.
fn go_int32s(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]int32(nil)".into(),
        Some(a) => {
            let items: Vec<String> = a.iter().map(|x| x.to_string()).collect();
            format!("[]int32{{{}}}", items.join(", "))
        }
    }
}

/// A field error with no value shown (`field.Invalid(path, field.OmitValueType{}, detail)`).
fn invalid_omit_value(field: String, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        value: None,
        detail: detail.into(),
    }
}

/// `ValidateQualifiedName`: each message of [`crate::validation::is_qualified_name`] an
/// invalid `field`.
fn validate_qualified_name(value: &str, field: &str, c: &mut Vec<Cause>) {
    for e in crate::validation::is_qualified_name(value) {
        c.push(Cause::invalid(field, format!("{value:?}"), e));
    }
}

/// `validatePodFailurePolicy` and its rule checks (`validatePodFailurePolicyRule`,
/// `validatePodFailurePolicyRuleOnExitCodes`, `validatePodFailurePolicyRuleOnPodConditions`
/// in kubernetes `pkg/apis/batch/validation/validation.go`), with upstream's field paths.
fn validate_pod_failure_policy(spec: &Value, path: &str, c: &mut Vec<Cause>) {
    let rules_path = format!("{path}.rules");
    let empty = vec![];
    let rules = spec
        .pointer("/podFailurePolicy/rules")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if rules.len() as u64 > MAX_POD_FAILURE_POLICY_RULES {
        c.push(Cause::too_many(
            rules_path.clone(),
            rules.len(),
            MAX_POD_FAILURE_POLICY_RULES,
        ));
    }
    let containers: HashSet<&str> = ["/template/spec/containers", "/template/spec/initContainers"]
        .iter()
        .filter_map(|p| spec.pointer(p).and_then(Value::as_array))
        .flatten()
        .map(|ct| s(ct, "/name"))
        .collect();
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let action_path = format!("{rule_path}.action");
        let action = s(rule, "/action");
        if action.is_empty() {
            c.push(Cause::required(
                action_path,
                format!(
                    "valid values: {}",
                    go_quoted_list(POD_FAILURE_POLICY_ACTIONS)
                ),
            ));
        } else if action == "FailIndex" {
            if !per_index {
                c.push(Cause::invalid(
                    action_path,
                    format!("{action:?}"),
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
        } else if !POD_FAILURE_POLICY_ACTIONS.contains(&action) {
            c.push(Cause::not_supported(
                action_path,
                format!("{action:?}"),
                POD_FAILURE_POLICY_ACTIONS,
            ));
        }
        let on_exit = rule.get("onExitCodes").filter(|v| !v.is_null());
        if let Some(req) = on_exit {
            validate_on_exit_codes(req, &format!("{rule_path}.onExitCodes"), &containers, c);
        }
        let patterns = rule
            .get("onPodConditions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty());
        if let Some(patterns) = patterns {
            validate_on_pod_conditions(patterns, &format!("{rule_path}.onPodConditions"), c);
        }
        match (on_exit.is_some(), patterns.is_some()) {
            (true, true) => c.push(invalid_omit_value(
                rule_path,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => c.push(invalid_omit_value(
                rule_path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
}

fn validate_on_exit_codes(req: &Value, path: &str, containers: &HashSet<&str>, c: &mut Vec<Cause>) {
    let op = s(req, "/operator");
    let op_path = format!("{path}.operator");
    if op.is_empty() {
        c.push(Cause::required(
            op_path,
            format!("valid values: {}", go_quoted_list(&["In", "NotIn"])),
        ));
    } else if !matches!(op, "In" | "NotIn") {
        c.push(Cause::not_supported(
            op_path,
            format!("{op:?}"),
            &["In", "NotIn"],
        ));
    }
    if let Some(name) = req.get("containerName").and_then(Value::as_str) {
        if !containers.contains(name) {
            c.push(Cause::invalid(
                format!("{path}.containerName"),
                format!("{name:?}"),
                "must be one of the container or initContainer names in the pod template",
            ));
        }
    }
    let values_path = format!("{path}.values");
    let values: Vec<i64> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if values.is_empty() {
        c.push(Cause::invalid(
            values_path.clone(),
            go_int32s(req.get("values")),
            "at least one value is required",
        ));
    } else if values.len() as u64 > MAX_ON_EXIT_CODES_VALUES {
        c.push(Cause::too_many(
            values_path.clone(),
            values.len(),
            MAX_ON_EXIT_CODES_VALUES,
        ));
    }
    let mut seen = HashSet::new();
    for (j, v) in values.iter().enumerate() {
        let value_path = format!("{values_path}[{j}]");
        if op == "In" && *v == 0 {
            c.push(Cause::invalid(
                value_path.clone(),
                "0",
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(*v) {
            c.push(Cause::duplicate(value_path, v.to_string()));
        }
    }
    if values.windows(2).any(|w| w[0] > w[1]) {
        c.push(Cause::invalid(
            values_path,
            go_int32s(req.get("values")),
            "must be ordered",
        ));
    }
}

fn validate_on_pod_conditions(patterns: &[Value], path: &str, c: &mut Vec<Cause>) {
    if patterns.len() as u64 > MAX_ON_POD_CONDITIONS_PATTERNS {
        c.push(Cause::too_many(
            path,
            patterns.len(),
            MAX_ON_POD_CONDITIONS_PATTERNS,
        ));
    }
    const STATUSES: &[&str] = &["False", "True", "Unknown"];
    for (j, pattern) in patterns.iter().enumerate() {
        let pattern_path = format!("{path}[{j}]");
        validate_qualified_name(s(pattern, "/type"), &format!("{pattern_path}.type"), c);
        let status = s(pattern, "/status");
        let status_path = format!("{pattern_path}.status");
        if status.is_empty() {
            c.push(Cause::required(
                status_path,
                format!("valid values: {}", go_quoted_list(STATUSES)),
            ));
        } else if !STATUSES.contains(&status) {
            c.push(Cause::not_supported(
                status_path,
                format!("{status:?}"),
                STATUSES,
            ));
        }
    }
}

/// `validatePodReplacementPolicy`: `Failed` or `TerminatingOrFailed`, only `Failed` with a
/// `podFailurePolicy`.
fn validate_pod_replacement_policy(spec: &Value, path: &str, c: &mut Vec<Cause>) {
    let Some(v) = spec.get("podReplacementPolicy").and_then(Value::as_str) else {
        return;
    };
    if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null()) {
        if v != "Failed" {
            c.push(Cause::not_supported(path, format!("{v:?}"), &["Failed"]));
        }
    } else if !matches!(v, "Failed" | "TerminatingOrFailed") {
        c.push(Cause::not_supported(
            path,
            format!("{v:?}"),
            &["Failed", "TerminatingOrFailed"],
        ));
    }
}

pub(crate) fn go_map(v: Option<&Value>) -> String {
    let items: Vec<String> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("\"{k}\":\"{}\"", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("map[string]string{{{}}}", items.join(", "))
}

/// The selector checks of `ValidateJob`: the selector must select the template's labels, and a
/// generated one (`validateGeneratedSelector`) must be the Job's UID with the labels set.
fn validate_selector(obj: &Value) -> Vec<Cause> {
    let mut c = vec![];
    let Some(sel) = obj.pointer("/spec/selector").filter(|v| v.is_object()) else {
        c.push(Cause::required("spec.selector", ""));
        return c;
    };
    let template_labels = obj.pointer("/spec/template/metadata/labels");
    let get = |k: &str| {
        template_labels
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    let matches = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    if !matches {
        c.push(Cause::invalid(
            "spec.template.metadata.labels",
            go_map(template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return c;
    }
    let uid = s(obj, "/metadata/uid");
    let name = s(obj, "/metadata/name");
    for (k, want) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
    ] {
        let field = format!("spec.template.metadata.labels[{k}]");
        match get(k) {
            None => c.push(Cause::required(field, format!("must be '{want}'"))),
            Some(v) if v != want => c.push(Cause::invalid(
                field,
                format!("{v:?}"),
                format!("must be '{want}'"),
            )),
            _ => {}
        }
    }
    let generated = sel
        .pointer("/matchLabels/batch.kubernetes.io~1controller-uid")
        .and_then(Value::as_str)
        == Some(uid);
    if !generated {
        c.push(Cause::invalid(
            "spec.selector",
            sel.to_string(),
            "`selector` not auto-generated",
        ));
    }
    c
}

/// `ValidateJobStatusUpdate` with `validateJobStatus` (pkg/apis/batch/validation/validation.go),
/// as the status strategy applies them with `JobManagedBy` on (`getStatusValidationOptions`,
/// pkg/registry/batch/job/strategy.go): as the status may be written by another controller,
/// its transitions are checked, most rules only when a field they read changed, so an update
/// unrelated to a bad field still goes through.
pub fn validate_job_status_update(obj: &Value, old: &Value) -> Vec<Cause> {
    let mut c = vec![];
    let st = obj.get("status").unwrap_or(&Value::Null);
    let old_st = old.get("status").unwrap_or(&Value::Null);
    let is_true = |st: &Value, ty: &str| {
        st.get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == ty && c["status"] == "True")
    };
    let int = |st: &Value, f: &str| st.get(f).and_then(Value::as_i64).unwrap_or(0);
    let field = |st: &'_ Value, f: &str| st.get(f).filter(|v| !v.is_null()).cloned();
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
    let completions = spec.get("completions").and_then(Value::as_i64);
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());

    let (complete, failed) = (is_true(st, "Complete"), is_true(st, "Failed"));
    let (failure_target, met) = (
        is_true(st, "FailureTarget"),
        is_true(st, "SuccessCriteriaMet"),
    );
    let finished = complete || failed;
    let (old_complete, old_failed) = (is_true(old_st, "Complete"), is_true(old_st, "Failed"));
    let old_met = is_true(old_st, "SuccessCriteriaMet");
    // what changed
    let finished_changed = finished != (old_complete || old_failed);
    let complete_changed = complete != old_complete;
    let failed_changed = failed != old_failed;
    let failure_target_changed = failure_target != is_true(old_st, "FailureTarget");
    let met_changed = met != old_met;
    let completed_ix = st
        .get("completedIndexes")
        .and_then(Value::as_str)
        .unwrap_or("");
    let completed_ix_changed = completed_ix
        != old_st
            .get("completedIndexes")
            .and_then(Value::as_str)
            .unwrap_or("");
    let failed_ix = st.get("failedIndexes").and_then(Value::as_str);
    let failed_ix_changed = failed_ix != old_st.get("failedIndexes").and_then(Value::as_str);
    let active = int(st, "active");
    let active_changed = active != int(old_st, "active");
    // times compare as the instants they name, to the second (`metav1.Time` keeps seconds):
    // a status written with fractions or another offset is the same time re-encoded
    let same_time = |a: &Option<Value>, b: &Option<Value>| match (a, b) {
        (Some(x), Some(y)) => {
            let secs = |v: &Value| {
                v.as_str()
                    .and_then(|s| s.parse::<Timestamp>().ok())
                    .map(|t| t.as_second())
            };
            match (secs(x), secs(y)) {
                (Some(p), Some(q)) => p == q,
                _ => x == y,
            }
        }
        (None, None) => true,
        _ => false,
    };
    let start = field(st, "startTime");
    let start_changed = !same_time(&start, &field(old_st, "startTime"));
    let completion = field(st, "completionTime");
    let completion_changed = !same_time(&completion, &field(old_st, "completionTime"));
    // (Semantic.DeepEqual: an empty list equals an absent one, an absent struct does not)
    let uncounted = |st: &Value| {
        field(st, "uncountedTerminatedPods").map(|u| {
            let list = |k: &str| {
                u.get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            (list("succeeded"), list("failed"))
        })
    };
    let unc = uncounted(st);
    let uncounted_changed = unc != uncounted(old_st);
    let ready = st.get("ready").and_then(Value::as_i64);
    let ready_changed = ready != old_st.get("ready").and_then(Value::as_i64);
    let terminating = st.get("terminating").and_then(Value::as_i64);
    let terminating_changed = terminating != old_st.get("terminating").and_then(Value::as_i64);
    let suspended_with_zero_completions =
        spec.get("suspend") == Some(&json!(true)) && completions == Some(0);
    // a time as `field.Invalid` prints a `*metav1.Time` (time.Time's String)
    let time = |v: &Value| {
        let s = v.as_str().unwrap_or_default();
        s.parse::<Timestamp>()
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
            .unwrap_or_else(|_| s.to_string())
    };
    let at = |v: &Value| v.as_str().and_then(|s| s.parse::<Timestamp>().ok());

    // validateJobStatus
    for f in ["active", "succeeded", "failed", "ready", "terminating"] {
        if let Some(n) = st.get(f).and_then(Value::as_i64).filter(|n| *n < 0) {
            c.push(Cause::invalid(
                format!("status.{f}"),
                n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some((s, f)) = &unc {
        let mut seen: HashSet<&str> = HashSet::new();
        for (kind, list) in [("succeeded", s), ("failed", f)] {
            for (i, uid) in list.iter().enumerate() {
                let k = uid.as_str().unwrap_or_default();
                let p = format!("status.uncountedTerminatedPods.{kind}[{i}]");
                if k.is_empty() {
                    c.push(Cause::invalid(p, "\"\"", "must not be empty"));
                } else if !seen.insert(k) {
                    c.push(Cause::duplicate(p, format!("{k:?}")));
                }
            }
        }
    }
    let conditions = || "status.conditions".to_string();
    if (complete_changed || failed_changed) && complete && failed {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    if (complete_changed || failure_target_changed) && complete && failure_target {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set Complete=True and FailureTarget=true conditions",
        ));
    }
    if complete_changed || completion_changed {
        match &completion {
            Some(t) if !complete => c.push(Cause::invalid(
                "status.completionTime",
                time(t),
                "cannot set completionTime when there is no Complete=True condition",
            )),
            None if complete => c.push(Cause::required(
                "status.completionTime",
                "completionTime is required for Complete jobs",
            )),
            _ => {}
        }
    }
    if start_changed || completion_changed {
        if let (Some(s), Some(t)) = (start.as_ref().and_then(at), &completion) {
            if at(t).is_some_and(|t| t < s) {
                c.push(Cause::invalid(
                    "status.completionTime",
                    time(t),
                    "completionTime cannot be set before startTime",
                ));
            }
        }
    }
    if (failed_changed || failed_ix_changed) && failed && !failure_target {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set Failed=True condition without the FailureTarget=true condition",
        ));
    }
    if (complete_changed || met_changed) && complete && !met {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        ));
    }
    if (finished_changed || active_changed) && active > 0 && finished {
        c.push(Cause::invalid(
            "status.active",
            active.to_string(),
            "active>0 is invalid for finished job",
        ));
    }
    if (finished_changed || start_changed)
        && !suspended_with_zero_completions
        && start.is_none()
        && finished
    {
        c.push(Cause::required(
            "status.startTime",
            "startTime is required for finished job",
        ));
    }
    if (finished_changed || uncounted_changed)
        && finished
        && unc.as_ref().is_some_and(|(s, f)| s.len() + f.len() > 0)
    {
        let uids = |l: &[Value]| match l {
            [] => "[]types.UID(nil)".to_string(),
            l => format!(
                "[]types.UID{{{}}}",
                l.iter()
                    .map(|u| format!("{:?}", u.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let (s, f) = unc
            .as_ref()
            .map(|(s, f)| (uids(s), uids(f)))
            .unwrap_or_default();
        c.push(Cause::invalid(
            "status.uncountedTerminatedPods",
            format!("batch.UncountedTerminatedPods{{Succeeded:{s}, Failed:{f}}}"),
            "uncountedTerminatedPods needs to be empty for finished job",
        ));
    }
    if let Some(n) = completions {
        if completed_ix_changed {
            if let Err(e) = validate_indexes_format(completed_ix, n) {
                c.push(Cause::invalid(
                    "status.completedIndexes",
                    format!("{completed_ix:?}"),
                    format!("error parsing completedIndexes: {e}"),
                ));
            }
        }
        if let Some(f) = failed_ix.filter(|_| failed_ix_changed && per_index) {
            if let Err(e) = validate_indexes_format(f, n) {
                c.push(Cause::invalid(
                    "status.failedIndexes",
                    format!("{f:?}"),
                    format!("error parsing failedIndexes: {e}"),
                ));
            }
        }
    }
    if completed_ix_changed && !completed_ix.is_empty() && !indexed {
        c.push(Cause::invalid(
            "status.completedIndexes",
            format!("{completed_ix:?}"),
            "cannot set non-empty completedIndexes when non-indexed completion mode",
        ));
    }
    if let Some(f) = failed_ix.filter(|_| failed_ix_changed && !per_index) {
        c.push(Cause::invalid(
            "status.failedIndexes",
            format!("{f:?}"),
            "cannot set non-null failedIndexes when backoffLimitPerIndex is null",
        ));
    }
    if let (Some(n), Some(f)) = (completions, failed_ix) {
        if failed_ix_changed || completed_ix_changed {
            if let Some(ix) = failed_overlapping_completed(completed_ix, f, n) {
                c.push(Cause::invalid(
                    "status.failedIndexes",
                    format!("{f:?}"),
                    format!("failedIndexes and completedIndexes overlap at index: {ix}"),
                ));
            }
        }
    }
    if let Some(n) = terminating.filter(|n| *n > 0 && finished) {
        if finished_changed || terminating_changed {
            c.push(Cause::invalid(
                "status.terminating",
                n.to_string(),
                "terminating>0 is invalid for finished job",
            ));
        }
    }
    if let Some(r) = ready.filter(|r| *r > active) {
        if ready_changed || active_changed {
            c.push(Cause::invalid(
                "status.ready",
                r.to_string(),
                "cannot set more ready pods than active",
            ));
        }
    }
    // (AllowForSuccessCriteriaMetInExtendedScope: SuccessCriteriaMet for any Job)
    if met && failed {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set SuccessCriteriaMet=True and Failed=true conditions",
        ));
    }
    if met && failure_target {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions",
        ));
    }
    if spec.get("successPolicy").is_some_and(|v| !v.is_null()) && !met && complete {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True",
        ));
    }

    // ValidateJobStatusUpdate
    for ty in ["Failed", "Complete", "FailureTarget"] {
        if is_true(old_st, ty) && !is_true(st, ty) {
            c.push(invalid_omit_value(
                conditions(),
                &format!("cannot disable the terminal {ty}=True condition"),
            ));
        }
    }
    for f in ["failed", "succeeded"] {
        // the succeeded counter may go down for an Indexed Job scaled down (completions
        // and parallelism changed in tandem)
        if f == "succeeded"
            && indexed
            && spec.get("completions").filter(|v| !v.is_null())
                == spec.get("parallelism").filter(|v| !v.is_null())
        {
            continue;
        }
        if int(st, f) < int(old_st, f) {
            c.push(Cause::invalid(
                format!("status.{f}"),
                int(st, f).to_string(),
                format!("cannot decrease the {f} counter"),
            ));
        }
    }
    if let (Some(t), Some(o)) = (&completion, field(old_st, "completionTime")) {
        if !same_time(&Some(t.clone()), &Some(o)) {
            c.push(Cause::invalid(
                "status.completionTime",
                time(t),
                "completionTime cannot be mutated",
            ));
        }
    }
    if start_changed
        && field(old_st, "startTime").is_some()
        && spec.get("suspend") != Some(&json!(true))
    {
        c.push(Cause::required(
            "status.startTime",
            "startTime cannot be removed for unsuspended job",
        ));
    }
    if old_met && !met {
        c.push(invalid_omit_value(
            conditions(),
            "cannot disable the SuccessCriteriaMet=True condition",
        ));
    }
    if old_complete && !old_met && met {
        c.push(invalid_omit_value(
            conditions(),
            "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions",
        ));
    }
    c
}

/// `validateFailedIndexesNotOverlapCompleted`: the first index both hold, intervals that do
/// not parse skipped (their format is reported apart).
fn failed_overlapping_completed(completed: &str, failed: &str, completions: i64) -> Option<i64> {
    if completed.is_empty() || failed.is_empty() {
        return None;
    }
    let parse = |s: &str| -> Vec<(i64, i64)> {
        s.split(',')
            .filter_map(|p| parse_index_interval(p, completions).ok())
            .collect()
    };
    let (c, f) = (parse(completed), parse(failed));
    let (mut i, mut j) = (0, 0);
    while i < c.len() && j < f.len() {
        let ((cx, cy), (fx, fy)) = (c[i], f[j]);
        if cx <= fy && fx <= cy {
            return Some(cx.max(fx));
        }
        if cx <= fx {
            i += 1;
        } else {
            j += 1;
        }
    }
    None
}

fn cond_true<'a>(job: &'a Job, ty: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty && c.status == "True")
}

/// Whether the Job has a true `Complete` or `Failed` condition (`IsJobFinished`).
pub fn is_finished(job: &Job) -> bool {
    cond_true(job, "Complete").is_some() || cond_true(job, "Failed").is_some()
}

fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

fn without_finalizer(p: &Pod) -> Value {
    let fins: Vec<&String> = p
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    json!({"metadata": {"finalizers": fins,
        "resourceVersion": p.metadata.resource_version.as_deref().unwrap_or("")}})
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        && !matches!(kinds::pod_phase(p), "Succeeded" | "Failed")
}

/// `isPodFailed`: failed, or (unless only failed pods are replaced, [`only_replace_failed`])
/// being deleted without having succeeded.
fn is_pod_failed(p: &Pod, only_failed: bool) -> bool {
    kinds::pod_phase(p) == "Failed" || (!only_failed && is_terminating(p))
}

fn pod_index(p: &Pod) -> Option<i64> {
    p.metadata
        .annotations
        .as_ref()?
        .get(INDEX_KEY)?
        .parse()
        .ok()
}

/// What a failed pod's match against a `podFailurePolicy` decides (`matchPodFailurePolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMatch {
    /// The Job failure message, when a `FailJob` rule matched.
    pub fail_job: Option<String>,
    /// Whether the failure counts against `backoffLimit` (not for an `Ignore` rule).
    pub count: bool,
    /// The action of the rule that matched.
    pub action: Option<&'static str>,
}

/// `matchPodFailurePolicy` (kubernetes `pkg/controller/job/pod_failure_policy.go`): the rules
/// in order, the first that matches decides; `onExitCodes` over the terminated containers,
/// then the terminated init containers, exit code 0 never matching; `onPodConditions` over the
/// pod's conditions by type and status. A `FailIndex` rule (valid only with
/// `backoffLimitPerIndex`) counts the failure and fails the pod's index ([`is_index_failed`]).
pub fn match_pod_failure_policy(policy: Option<&PodFailurePolicy>, pod: &Pod) -> PolicyMatch {
    let mut out = PolicyMatch {
        fail_job: None,
        count: true,
        action: None,
    };
    let Some(policy) = policy else {
        return out;
    };
    let ns = kinds::namespace(&pod.metadata);
    let name = kinds::name(&pod.metadata);
    let status = pod.status.as_ref();
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched: Option<String> = if let Some(req) = &rule.on_exit_codes {
            let statuses = status.and_then(|s| s.container_statuses.as_deref());
            let init = status.and_then(|s| s.init_container_statuses.as_deref());
            matching_container(statuses.unwrap_or_default(), req)
                .or_else(|| matching_container(init.unwrap_or_default(), req))
                .map(|(c, code)| {
                    format!(
                        "Container {c} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {index}",
                        rule.action
                    )
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| {
                    patterns
                        .iter()
                        .any(|p| p.type_ == c.type_ && p.status == c.status)
                })
                .map(|c| {
                    format!(
                        "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                        c.type_, rule.action
                    )
                })
        } else {
            None
        };
        let Some(message) = matched else {
            continue;
        };
        match rule.action.as_str() {
            "Ignore" => {
                out.count = false;
                out.action = Some("Ignore");
                return out;
            }
            "Count" => {
                out.action = Some("Count");
                return out;
            }
            "FailJob" => {
                out.fail_job = Some(message);
                out.action = Some("FailJob");
                return out;
            }
            "FailIndex" => {
                out.action = Some("FailIndex");
                return out;
            }
            // an unknown action: the switch matches no case and the next rule is tried
            _ => {}
        }
    }
    out
}

/// `getMatchingContainerFromList`: the first terminated container with a non-zero exit code
/// the requirement matches: its name and exit code.
fn matching_container<'a>(
    statuses: &'a [k8s_openapi::api::core::v1::ContainerStatus],
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(&'a str, i32)> {
    statuses.iter().find_map(|c| {
        let t = c.state.as_ref()?.terminated.as_ref()?;
        let named = req.container_name.as_ref().is_none_or(|n| *n == c.name);
        let hit = match req.operator.as_str() {
            "In" => req.values.contains(&t.exit_code),
            "NotIn" => !req.values.contains(&t.exit_code),
            _ => false,
        };
        (named && t.exit_code != 0 && hit).then_some((c.name.as_str(), t.exit_code))
    })
}

/// `managedByExternalController`: the `spec.managedBy` of a Job another controller manages.
pub fn managed_by_external(job: &Job) -> Option<&str> {
    job.spec
        .as_ref()?
        .managed_by
        .as_deref()
        .filter(|m| *m != JOB_CONTROLLER_NAME)
}

/// `parseIndexFailureCountAnnotation` / `parseIndexFailureIgnoreCountAnnotation`: the pod's
/// annotation `key` as a count, 0 when absent or not an integer in `[0, MaxInt32]`.
fn index_failure_annotation(p: &Pod, key: &str) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

/// `getIndexAbsoluteFailureCount`: the index's failures, counted or ignored, before this pod.
fn index_absolute_failure_count(p: &Pod) -> i32 {
    index_failure_annotation(p, INDEX_FAILURE_COUNT_KEY)
        .saturating_add(index_failure_annotation(p, INDEX_IGNORED_FAILURE_COUNT_KEY))
}

/// `isIndexFailed`: the pod failed and either a `FailIndex` rule matches it or its failure
/// counts with the index's failures already at `backoffLimitPerIndex`.
pub fn is_index_failed(
    pod: &Pod,
    only_failed: bool,
    policy: Option<&PodFailurePolicy>,
    limit: i32,
) -> bool {
    if !is_pod_failed(pod, only_failed) {
        return false;
    }
    let m = match_pod_failure_policy(policy, pod);
    m.action == Some("FailIndex")
        || (m.count && index_failure_annotation(pod, INDEX_FAILURE_COUNT_KEY) >= limit)
}

/// `getNewIndexFailureCounts`: the failure and ignored-failure counts of the pod replacing
/// `replaced` in its index (0 and 0 for an index's first pod).
pub fn new_index_failure_counts(
    policy: Option<&PodFailurePolicy>,
    replaced: Option<&Pod>,
) -> (i32, i32) {
    let Some(p) = replaced else {
        return (0, 0);
    };
    let failures = index_failure_annotation(p, INDEX_FAILURE_COUNT_KEY);
    let ignored = index_failure_annotation(p, INDEX_IGNORED_FAILURE_COUNT_KEY);
    if match_pod_failure_policy(policy, p).count {
        (failures.saturating_add(1), ignored)
    } else {
        (failures, ignored.saturating_add(1))
    }
}

/// `getPodsWithDelayedDeletionPerIndex`: for each index neither succeeded, failed nor running,
/// its last failed pod still holding the finalizer (the most failures, then the latest
/// finish), whose counts its replacement carries on; it keeps the finalizer until then.
fn delayed_deletions<'a>(
    pods: &[&'a Pod],
    only_failed: bool,
    completions: i64,
    succeeded: &Indexes,
    failed: &Indexes,
    active: &HashSet<i64>,
) -> HashMap<i64, &'a Pod> {
    let mut out: HashMap<i64, &'a Pod> = HashMap::new();
    for pod in pods.iter().copied() {
        if !has_finalizer(pod) || !is_pod_failed(pod, only_failed) {
            continue;
        }
        let Some(ix) = pod_index(pod).filter(|ix| (0..completions).contains(ix)) else {
            continue;
        };
        if succeeded.contains(ix) || failed.contains(ix) || active.contains(&ix) {
            continue;
        }
        let later = |last: &Pod| {
            index_absolute_failure_count(last) <= index_absolute_failure_count(pod)
                && finish_time(pod) >= finish_time(last)
        };
        if out.get(&ix).is_none_or(|last| later(last)) {
            out.insert(ix, pod);
        }
    }
    out
}

/// `matchSuccessPolicy` (kubernetes `pkg/controller/job/success_policy.go`): the message of
/// the first rule the succeeded indexes meet, `Matched rules at index N`. A rule with
/// `succeededIndexes` is met when all of them succeeded, or `succeededCount` of them; one with
/// only `succeededCount` when that many indexes succeeded. A rule whose indexes do not parse
/// is skipped.
pub fn match_success_policy(
    policy: Option<&SuccessPolicy>,
    completions: i64,
    succeeded: &Indexes,
) -> Option<String> {
    let policy = policy?;
    if succeeded.0.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let met = if let Some(ix) = &rule.succeeded_indexes {
            let required = Indexes::parse(ix, completions);
            if required.0.is_empty() {
                continue;
            }
            // matchSucceededIndexesRule
            let contains = required.overlap(succeeded);
            contains == required.count()
                || rule
                    .succeeded_count
                    .is_some_and(|n| contains >= i64::from(n))
        } else {
            rule.succeeded_count
                .is_some_and(|n| succeeded.count() >= i64::from(n))
        };
        if met {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// `onlyReplaceFailedPods`: `podReplacementPolicy: Failed`, or any `podFailurePolicy`.
fn only_replace_failed(job: &Job) -> bool {
    job.spec.as_ref().is_some_and(|s| {
        s.pod_replacement_policy.as_deref() == Some("Failed") || s.pod_failure_policy.is_some()
    })
}

fn finish_time(p: &Pod) -> Option<Timestamp> {
    let last = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .filter_map(|c| {
                    c.state
                        .as_ref()?
                        .terminated
                        .as_ref()?
                        .finished_at
                        .as_ref()
                        .map(|t| t.0)
                })
                .max()
        });
    last.or_else(|| p.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The pod-failure back-off (`getRemainingTimeForFailuresCount`): 10 s doubled per failure
/// after the last success, capped at 10 min, counted from the last failure.
pub fn backoff_remaining(
    failures: u32,
    last_failure: Option<Timestamp>,
    now: Timestamp,
) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut d = DEFAULT_BACKOFF;
    for _ in 1..failures {
        d *= 2;
        if d >= MAX_BACKOFF {
            d = MAX_BACKOFF;
            break;
        }
    }
    let elapsed = now.duration_since(last);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    d.saturating_sub(elapsed)
}

/// A Job's completed indexes as ordered, disjoint, non-adjacent intervals (`orderedIntervals`
/// in kubernetes `pkg/controller/job/indexed_job_utils.go`): memory grows with the number of
/// gaps, never with the indexes themselves, however large `completedIndexes` claims to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexes(Vec<(i64, i64)>);

impl Indexes {
    /// `parseIndexesFromString`: intervals at or past `completions` end the parse, a last index
    /// past it is clamped, a corrupted interval is skipped, and negative indexes are ignored.
    pub fn parse(s: &str, completions: i64) -> Indexes {
        let mut out = Indexes::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => match (a.parse::<i64>(), b.parse::<i64>()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => continue,
                },
                None => match part.parse::<i64>() {
                    Ok(a) => (a, a),
                    Err(_) => continue,
                },
            };
            if first >= completions {
                break;
            }
            let (first, last) = (first.max(0), last.min(completions - 1));
            if first <= last {
                out.insert_range(first, last);
            }
        }
        out
    }

    /// Adds `[a, b]`, merging with the intervals it overlaps or touches.
    fn insert_range(&mut self, a: i64, b: i64) {
        let v = &mut self.0;
        // the first interval that ends at or after a - 1 (could merge)
        let start = v.partition_point(|&(_, hi)| hi < a.saturating_sub(1));
        let mut end = start;
        let (mut lo, mut hi) = (a, b);
        while end < v.len() && v[end].0 <= b.saturating_add(1) {
            lo = lo.min(v[end].0);
            hi = hi.max(v[end].1);
            end += 1;
        }
        v.splice(start..end, [(lo, hi)]);
    }

    /// Adds one index.
    pub fn insert(&mut self, ix: i64) {
        self.insert_range(ix, ix);
    }

    /// Adds every index of `other` (`orderedIntervals.merge`): one pass over both ordered
    /// lists, joining intervals that overlap or touch.
    pub fn merge(&mut self, other: &Indexes) {
        let (a, b) = (&self.0, &other.0);
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = if j >= b.len() || (i < a.len() && a[i].0 <= b[j].0) {
                i += 1;
                a[i - 1]
            } else {
                j += 1;
                b[j - 1]
            };
            match out.last_mut() {
                Some(last) if next.0 <= last.1.saturating_add(1) => last.1 = last.1.max(next.1),
                _ => out.push(next),
            }
        }
        self.0 = out;
    }

    /// How many indexes the two hold in common (the count of `matchSucceededIndexesRule`).
    pub fn overlap(&self, other: &Indexes) -> i64 {
        let (mut i, mut j, mut n) = (0, 0, 0i64);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            n += (a.1.min(b.1) - a.0.max(b.0) + 1).max(0);
            if a.1 <= b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        n
    }

    /// Whether `ix` is in one of the intervals.
    pub fn contains(&self, ix: i64) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < ix);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= ix)
    }

    /// How many indexes the intervals hold.
    pub fn count(&self) -> i64 {
        self.0.iter().map(|&(lo, hi)| hi - lo + 1).sum()
    }

    /// Up to `n` indexes in `[0, completions)` that are neither in the intervals nor in
    /// `running`, lowest first (`firstPendingIndexes`): walks the gaps, not every index.
    pub fn first_pending(&self, completions: i64, n: usize, running: &HashSet<i64>) -> Vec<i64> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut next = 0i64;
        let gaps = self
            .0
            .iter()
            .map(|&(lo, hi)| (lo, hi))
            .chain(std::iter::once((completions, completions)));
        for (lo, hi) in gaps {
            let mut ix = next;
            while ix < lo.min(completions) && out.len() < n {
                if !running.contains(&ix) {
                    out.push(ix);
                }
                ix += 1;
            }
            if out.len() >= n || lo >= completions {
                break;
            }
            next = hi.saturating_add(1);
        }
        out
    }
}

impl std::fmt::Display for Indexes {
    /// `orderedIntervals.String`: `"1,3-5,7,8"` (an interval of two is written as two
    /// indexes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else if hi == lo + 1 {
                write!(f, "{lo},{hi}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

fn condition(ty: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: ty.to_string(),
        status: "True".into(),
        last_probe_time: Some(kinds::meta_time(now)),
        last_transition_time: Some(kinds::meta_time(now)),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    }
}

fn set_condition(conds: &mut Vec<JobCondition>, c: JobCondition) {
    if let Some(old) = conds.iter_mut().find(|x| x.type_ == c.type_) {
        if old.status == c.status && old.reason == c.reason {
            return;
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

/// The pod a Job creates (controller_utils.go `GetPodFromTemplate`, with the tracking
/// finalizer; Indexed: the index annotation and label, hostname and `JOB_COMPLETION_INDEX`).
fn new_pod(job: &Job, index: Option<i64>) -> Pod {
    let name = kinds::name(&job.metadata);
    let tpl = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut md = tpl.metadata.unwrap_or_default();
    let mut spec = tpl.spec.unwrap_or_default();
    md.name = None;
    md.namespace = None;
    md.creation_timestamp = None;
    md.generate_name = Some(match index {
        Some(ix) => format!("{name}-{ix}-"),
        None => format!("{name}-"),
    });
    md.owner_references = Some(vec![new_controller_ref(job)]);
    md.finalizers = Some(vec![TRACKING_FINALIZER.to_string()]);
    if let Some(ix) = index {
        md.annotations
            .get_or_insert_with(Default::default)
            .insert(INDEX_KEY.into(), ix.to_string());
        md.labels
            .get_or_insert_with(Default::default)
            .insert(INDEX_KEY.into(), ix.to_string());
        // addCompletionIndexEnvVariables, and the hostname of Indexed pods
        if spec.hostname.is_none() {
            spec.hostname = Some(format!("{name}-{ix}"));
        }
        let init = spec.init_containers.iter_mut().flatten();
        for c in spec.containers.iter_mut().chain(init) {
            let env = c.env.get_or_insert_with(Vec::new);
            if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                env.push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: Some("v1".into()),
                            field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                        }),
                        ..Default::default()
                    }),
                });
            }
        }
    }
    Pod {
        metadata: md,
        spec: Some(spec),
        status: None,
    }
}

/// What the controller decides for one Job given its pods (those it controls) and the time.
pub fn plan<P: Borrow<Pod>>(job: &Job, pods_in: &[P], now: Timestamp) -> Plan {
    plan_managed(job, pods_in, now, true)
}

/// [`plan`]; without `manage` (the controller's last creations or deletions are not in its
/// cache yet: `SatisfiedExpectations` is false) no pod is created, and none deleted to meet
/// `parallelism` or `suspend` (`manageJob` is not called); the status is tracked, and a Job
/// that failed or succeeded still deletes its active pods but gets neither its interim
/// (`FailureTarget`) nor its terminal condition yet (`syncJob`: `if deleted != active ||
/// !satisfiedExpectations { finishedCondition = nil }`), nor `SuccessCriteriaMet` while a pod
/// is active. A Job another controller manages ([`managed_by_external`]) gets nothing but its
/// TTL.
pub fn plan_managed<P: Borrow<Pod>>(
    job: &Job,
    pods_in: &[P],
    now: Timestamp,
    manage: bool,
) -> Plan {
    let mut p = Plan::default();
    if managed_by_external(job).is_some() {
        // syncJob skips it; the TTL-after-finished controller does not look at managedBy
        ttl_after_finished(job, false, now, &mut p);
        return p;
    }
    let ns = kinds::namespace(&job.metadata).to_string();
    let uid = kinds::uid(&job.metadata);
    let pods: Vec<&Pod> = pods_in
        .iter()
        .map(|x| x.borrow())
        .filter(|x| kinds::controller_of(&x.metadata, "Job").is_some_and(|(_, u)| u == uid))
        .collect();
    let remove_fin = |pod: &Pod| Action::Patch {
        r: pods_r(),
        ns: ns.clone(),
        name: kinds::name(&pod.metadata).to_string(),
        patch: without_finalizer(pod),
    };
    if job.metadata.deletion_timestamp.is_some() {
        // the Job is going away: its pods are no longer tracked
        for pod in pods.iter().filter(|x| has_finalizer(x)) {
            p.actions.push(remove_fin(pod));
        }
        return p;
    }
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.map(i64::from);
    let parallelism = spec.parallelism.map_or(0, i64::from).max(0);
    let backoff_limit = spec.backoff_limit.map_or(6, i64::from);
    let suspend = spec.suspend == Some(true);
    let only_failed = only_replace_failed(job);
    let policy = spec.pod_failure_policy.as_ref();
    let old_status = job.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut conds: Vec<JobCondition> = status.conditions.clone().unwrap_or_default();

    // --- tracking: uncounted → finalizer removed → counted
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_s = uncounted.succeeded.unwrap_or_default();
    let mut unc_f = uncounted.failed.unwrap_or_default();
    let mut succeeded = status.succeeded.map_or(0, i64::from);
    let mut failed = status.failed.map_or(0, i64::from);
    // completed indexes are only kept for Indexed Jobs, within [0, completions)
    let mut completed_ix = match (indexed, completions) {
        (true, Some(c)) => Indexes::parse(status.completed_indexes.as_deref().unwrap_or(""), c),
        _ => Indexes::default(),
    };
    let by_uid: HashMap<&str, &Pod> = pods.iter().map(|x| (kinds::uid(&x.metadata), *x)).collect();
    let c = completions.unwrap_or(0);
    // an Indexed Job's pod's index within [0, completions)
    let valid_ix = |x: &Pod| pod_index(x).filter(|ix| indexed && (0..c).contains(ix));
    // uncounted pods whose finalizer is gone (or that are gone) are counted now
    unc_s.retain(|u| match by_uid.get(u.as_str()) {
        Some(pod) if has_finalizer(pod) => true,
        other => {
            succeeded += 1;
            if let Some(ix) = other.and_then(|x| valid_ix(x)) {
                completed_ix.insert(ix);
            }
            false
        }
    });
    unc_f.retain(|u| match by_uid.get(u.as_str()) {
        Some(pod) if has_finalizer(pod) => true,
        _ => {
            failed += 1;
            false
        }
    });
    // calculateSucceededIndexes: the counted indexes and those of succeeded pods not counted
    let mut tot_succeeded_ix = completed_ix.clone();
    for pod in pods.iter().filter(|x| kinds::pod_phase(x) == "Succeeded") {
        if let Some(ix) = valid_ix(pod).filter(|_| has_finalizer(pod)) {
            tot_succeeded_ix.insert(ix);
        }
    }
    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|x| x.metadata.deletion_timestamp.is_none())
        .filter(|x| !matches!(kinds::pod_phase(x), "Succeeded" | "Failed"))
        .collect();
    // the indexes of the active pods (getIndexes(activePods)): not waiting for a replacement
    // (getPodsWithDelayedDeletionPerIndex) nor pending (firstPendingIndexes)
    let running: HashSet<i64> = active.iter().filter_map(|x| pod_index(x)).collect();
    // backoffLimitPerIndex (an Indexed Job's): calculateFailedIndexes, and the failed pods
    // whose finalizer waits for their index's replacement (getPodsWithDelayedDeletionPerIndex)
    let per_index_limit = spec.backoff_limit_per_index.filter(|_| indexed);
    let mut failed_ix = Indexes::default();
    let mut delayed: HashMap<i64, &Pod> = HashMap::new();
    if let Some(limit) = per_index_limit {
        failed_ix = Indexes::parse(status.failed_indexes.as_deref().unwrap_or(""), c);
        for pod in pods.iter().filter(|x| has_finalizer(x)) {
            if let Some(ix) = valid_ix(pod) {
                if is_index_failed(pod, only_failed, policy, limit) {
                    failed_ix.insert(ix);
                }
            }
        }
        delayed = delayed_deletions(
            &pods,
            only_failed,
            c,
            &tot_succeeded_ix,
            &failed_ix,
            &running,
        );
    }
    let is_delayed = |pod: &Pod| {
        pod_index(pod)
            .and_then(|ix| delayed.get(&ix))
            .is_some_and(|d| kinds::uid(&d.metadata) == kinds::uid(&pod.metadata))
    };
    let mut fin_removals = vec![];
    // pods with the finalizer neither succeeded nor failed: counted as failed, and their
    // finalizer removed, once the Job is failing (trackJobStatusAndRemoveFinalizers)
    let mut unfinished: Vec<&Pod> = vec![];
    // failed pods keeping the finalizer until their index's replacement exists
    // (canRemoveFinalizer), unless the Job finishes first
    let mut held: Vec<&Pod> = vec![];
    // of those, the ones counted as failed already (syncJob's `nonIgnoredFailedPodsCount` of
    // the new failed pods, held or not): only their finalizer's removal waits
    let mut held_failed = 0i64;
    for pod in &pods {
        if !has_finalizer(pod) {
            continue;
        }
        let pu = kinds::uid(&pod.metadata).to_string();
        let known = unc_s.contains(&pu) || unc_f.contains(&pu);
        if kinds::pod_phase(pod) == "Succeeded" {
            if !known {
                unc_s.push(pu);
            }
            fin_removals.push(remove_fin(pod));
        } else if is_pod_failed(pod, only_failed) {
            if is_delayed(pod) {
                if !known && match_pod_failure_policy(policy, pod).count {
                    held_failed += 1;
                }
                held.push(pod);
                continue;
            }
            // a failure an Ignore rule matches is not counted, its finalizer still goes
            if !known && match_pod_failure_policy(policy, pod).count {
                unc_f.push(pu);
            }
            fin_removals.push(remove_fin(pod));
        } else {
            unfinished.push(pod);
        }
    }
    let tot_succeeded = if indexed {
        tot_succeeded_ix.count()
    } else {
        succeeded + unc_s.len() as i64
    };
    let tot_failed = failed + unc_f.len() as i64 + held_failed;

    let terminating_n = pods.iter().filter(|x| is_terminating(x)).count() as i64;
    let mut deletes: Vec<&Pod> = vec![];
    let mut creates: Vec<Pod> = vec![];
    let mut events: Vec<(&'static str, &'static str, String)> = vec![];

    let finished = is_finished(job);
    let text = |c: &JobCondition| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    };
    // (syncJob looks at SuccessCriteriaMet before FailureTarget)
    let mut interim = cond_true(job, "SuccessCriteriaMet")
        .map(|c| {
            let (r, m) = text(c);
            ("Complete", r, m)
        })
        .or_else(|| {
            cond_true(job, "FailureTarget").map(|c| {
                let (r, m) = text(c);
                ("Failed", r, m)
            })
        });
    let start = status.start_time.as_ref().map(|t| t.0);
    // the active pods are deleted by a finishing Job (`deleteActivePods`, which keeps their
    // finalizer) rather than by `manageJob` (`deleteJobPods`, which removes it first)
    let mut active_deleted = false;
    if !finished {
        // "Job first start": the start time, unless suspended
        if status.start_time.is_none() && !suspend {
            status.start_time = Some(kinds::meta_time(now));
        }
        // the finished condition (syncJob), suspended or not: a FailureTarget or
        // SuccessCriteriaMet already there, a failed pod a FailJob rule matches
        // (getFailJobMessage), the backoff limit, the deadline (pastActiveDeadline: not while
        // suspended), then for an Indexed Job its failed indexes and its success policy
        let mut new_target: Option<(String, String)> = None;
        if interim.is_none() {
            if let Some(message) = pods
                .iter()
                .filter(|x| is_pod_failed(x, only_failed))
                .find_map(|x| match_pod_failure_policy(policy, x).fail_job)
            {
                new_target = Some(("PodFailurePolicy".into(), message));
            }
        }
        if interim.is_none() && new_target.is_none() {
            // pastBackoffLimitOnFailure: restarts of OnFailure pods count as failures
            let on_failure = spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                == Some("OnFailure");
            // (the containers' and init containers' restarts of running and pending pods)
            let restarts: i64 = if on_failure {
                pods.iter()
                    .filter(|x| matches!(kinds::pod_phase(x), "Running" | "Pending"))
                    .filter_map(|x| x.status.as_ref())
                    .flat_map(|s| {
                        let init = s.init_container_statuses.iter().flatten();
                        init.chain(s.container_statuses.iter().flatten())
                    })
                    .map(|c| i64::from(c.restart_count))
                    .sum()
            } else {
                0
            };
            let past_on_failure = on_failure
                && if backoff_limit == 0 {
                    restarts > 0
                } else {
                    restarts >= backoff_limit
                };
            // a deadline past the end of time is no deadline (the sum would overflow)
            // (a Job without a start time starts now)
            let deadline = spec
                .active_deadline_seconds
                .filter(|_| !suspend)
                .and_then(|d| {
                    start
                        .unwrap_or(now)
                        .checked_add(jiff::SignedDuration::from_secs(d))
                        .ok()
                });
            if tot_failed > backoff_limit || past_on_failure {
                new_target = Some((
                    "BackoffLimitExceeded".into(),
                    "Job has reached the specified backoff limit".into(),
                ));
            } else if deadline.is_some_and(|d| now >= d) {
                new_target = Some((
                    "DeadlineExceeded".into(),
                    "Job was active longer than specified deadline".into(),
                ));
            } else if let Some(d) = deadline {
                let left = Duration::try_from(d.duration_since(now)).unwrap_or_default();
                p.requeue_after = Some(left);
            }
        }
        if interim.is_none() && new_target.is_none() && per_index_limit.is_some() {
            let n = failed_ix.count();
            if spec.max_failed_indexes.is_some_and(|m| n > i64::from(m)) {
                new_target = Some((
                    "MaxFailedIndexesExceeded".into(),
                    "Job has exceeded the specified maximal number of failed indexes".into(),
                ));
            } else if n > 0 && n + tot_succeeded_ix.count() >= c {
                new_target = Some(("FailedIndexes".into(), "Job has failed indexes".into()));
            }
        }
        if let Some((reason, message)) = &new_target {
            interim = Some(("Failed", reason.clone(), message.clone()));
        }
        // an Indexed Job meeting its success policy (matchSuccessPolicy)
        let mut success_met: Option<String> = None;
        if interim.is_none() && indexed {
            success_met = match_success_policy(spec.success_policy.as_ref(), c, &tot_succeeded_ix);
        }
        if let Some(message) = &success_met {
            interim = Some(("Complete", "SuccessPolicy".into(), message.clone()));
        }
        if interim.is_some() {
            // failing or succeeded: nothing may keep running (deleteActivePods)
            deletes.extend(active.iter().copied());
            active_deleted = true;
            if !manage {
                // `if deleted != active || !satisfiedExpectations { finishedCondition = nil }`:
                // pods not in the cache yet may remain, so neither the interim condition nor
                // the terminal one, and no finalizer removed for it, until they are seen
                interim = None;
            } else if let Some((reason, message)) = &new_target {
                set_condition(&mut conds, condition("FailureTarget", reason, message, now));
            } else if let Some(message) = &success_met {
                set_condition(
                    &mut conds,
                    condition("SuccessCriteriaMet", "SuccessPolicy", message, now),
                );
            }
        } else if suspend {
            // suspended: no pods, the Suspended condition
            if manage {
                deletes.extend(active.iter().copied());
            }
            if cond_true(job, "Suspended").is_none() {
                set_condition(
                    &mut conds,
                    condition("Suspended", "JobSuspended", "Job suspended", now),
                );
                events.push(("Normal", "Suspended", "Job suspended".into()));
            }
            status.start_time = None;
        } else {
            if conds
                .iter()
                .any(|c| c.type_ == "Suspended" && c.status == "True")
            {
                let mut c = condition("Suspended", "JobResumed", "Job resumed", now);
                c.status = "False".into();
                set_condition(&mut conds, c);
                events.push(("Normal", "Resumed", "Job resumed".into()));
            }
            // how many pods should run (NonIndexed) or which indexes (Indexed)
            let want_active = match completions {
                Some(c) => (c - tot_succeeded).clamp(0, parallelism),
                None if tot_succeeded > 0 => 0,
                None => parallelism,
            };
            let done = match completions {
                Some(c) => tot_succeeded >= c,
                None => tot_succeeded > 0,
            };
            // back-off: failures after the last success
            let last_success = pods
                .iter()
                .filter(|x| kinds::pod_phase(x) == "Succeeded")
                .filter_map(|x| finish_time(x))
                .max();
            let failures: Vec<Timestamp> = pods
                .iter()
                .filter(|x| is_pod_failed(x, only_failed))
                .filter_map(|x| finish_time(x))
                .filter(|t| last_success.is_none_or(|l| *t > l))
                .collect();
            // (each index has its own back-off with backoffLimitPerIndex)
            let remaining = if per_index_limit.is_some() {
                Duration::ZERO
            } else {
                backoff_remaining(failures.len() as u32, failures.iter().max().copied(), now)
            };
            // with only failed pods replaced, terminating ones are not replaced yet
            let replacing = if only_failed { terminating_n } else { 0 };
            if !manage {
                // manageJob waits for the cache to show the last creations and deletions
            } else if active.len() as i64 > want_active {
                // too many: the newest go first (ActivePods ordering, simplified)
                let mut extra: Vec<&Pod> = active.clone();
                extra.sort_by_key(|x| std::cmp::Reverse(x.metadata.creation_timestamp.clone()));
                let n = (active.len() - want_active as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC);
                deletes.extend(extra.into_iter().take(n));
            } else if (active.len() as i64) + replacing < want_active && !done {
                if !remaining.is_zero() {
                    p.requeue_after = Some(
                        p.requeue_after
                            .map_or(remaining, |r: Duration| r.min(remaining)),
                    );
                } else if indexed {
                    // firstPendingIndexes: not succeeded, failed, running, nor (with only
                    // failed pods replaced) terminating
                    let mut running = running;
                    if only_failed {
                        running.extend(
                            pods.iter()
                                .filter(|x| is_terminating(x))
                                .filter_map(|x| pod_index(x)),
                        );
                    }
                    let mut not_pending = tot_succeeded_ix.clone();
                    not_pending.merge(&failed_ix);
                    let need = want_active - replacing - active.len() as i64;
                    let need = usize::try_from(need)
                        .unwrap_or(0)
                        .min(MAX_POD_CREATE_DELETE_PER_SYNC);
                    let mut indexes = not_pending.first_pending(c, need, &running);
                    if per_index_limit.is_some() {
                        // getPodCreationInfoForIndependentIndexes: the indexes past their
                        // back-off (getRemainingTimePerIndex), else the shortest wait
                        let wait = |ix: &i64| {
                            delayed.get(ix).map_or(Duration::ZERO, |last| {
                                let n = index_absolute_failure_count(last).saturating_add(1);
                                backoff_remaining(n.unsigned_abs(), finish_time(last), now)
                            })
                        };
                        let min_wait = indexes.iter().map(wait).min().unwrap_or_default();
                        indexes.retain(|ix| wait(ix).is_zero());
                        if indexes.is_empty() && !min_wait.is_zero() {
                            p.requeue_after =
                                Some(p.requeue_after.map_or(min_wait, |r| r.min(min_wait)));
                        }
                    }
                    for ix in indexes {
                        let mut pod = new_pod(job, Some(ix));
                        if per_index_limit.is_some() {
                            // addIndexFailureCountAnnotation
                            let (failures, ignored) =
                                new_index_failure_counts(policy, delayed.get(&ix).copied());
                            let a = pod
                                .metadata
                                .annotations
                                .get_or_insert_with(Default::default);
                            a.insert(INDEX_FAILURE_COUNT_KEY.into(), failures.to_string());
                            if ignored > 0 {
                                a.insert(
                                    INDEX_IGNORED_FAILURE_COUNT_KEY.into(),
                                    ignored.to_string(),
                                );
                            }
                        }
                        creates.push(pod);
                    }
                } else {
                    let need = want_active - replacing - active.len() as i64;
                    let need = usize::try_from(need)
                        .unwrap_or(0)
                        .min(MAX_POD_CREATE_DELETE_PER_SYNC);
                    creates.extend((0..need).map(|_| new_pod(job, None)));
                }
            }
            // complete once no pod is active after manageJob (which, without `manage`, did
            // not run and deleted none)
            if done && (manage || active.is_empty()) {
                deletes.extend(active.iter().copied());
                active_deleted = true;
                interim = Some((
                    "Complete",
                    "CompletionsReached".into(),
                    "Reached expected number of succeeded pods".into(),
                ));
                set_condition(
                    &mut conds,
                    condition(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    ),
                );
            }
        }
    }
    // finishing (canRemoveFinalizer with a finishedCondition): every pod not yet finished
    // loses the finalizer, and counts as failed when the Job is failing
    let finishing = !finished && interim.is_some();
    if let Some((ty, _, _)) = interim.as_ref().filter(|_| finishing) {
        for pod in unfinished {
            let pu = kinds::uid(&pod.metadata).to_string();
            if *ty == "Failed"
                && !unc_f.contains(&pu)
                && match_pod_failure_policy(policy, pod).count
            {
                unc_f.push(pu);
            }
            fin_removals.push(remove_fin(pod));
        }
        // the failed pods held for their index's replacement: counted (unless an Ignore rule
        // matches) and released, whatever the Job's end
        for pod in held {
            let pu = kinds::uid(&pod.metadata).to_string();
            if !unc_f.contains(&pu) && match_pod_failure_policy(policy, pod).count {
                unc_f.push(pu);
            }
            fin_removals.push(remove_fin(pod));
        }
    }
    let mut deleted_uids: HashSet<&str> = HashSet::new();
    deletes.retain(|x| deleted_uids.insert(kinds::uid(&x.metadata)));
    let still_active = active.len() as i64 - deletes.len() as i64 + creates.len() as i64;
    let terminating = terminating_n + deletes.len() as i64;
    // enactJobFinished: the terminal condition once nothing is uncounted or terminating
    let mut became_finished = false;
    if !finished {
        if let Some((ty, reason, message)) = &interim {
            if unc_s.is_empty()
                && unc_f.is_empty()
                && fin_removals.is_empty()
                && terminating == 0
                && still_active == 0
            {
                set_condition(&mut conds, condition(ty, reason, message, now));
                if *ty == "Complete" {
                    status.completion_time = Some(kinds::meta_time(now));
                    events.push(("Normal", "Completed", "Job completed".into()));
                } else {
                    // recordJobFinished: the condition's reason
                    let r: &'static str = match reason.as_str() {
                        "DeadlineExceeded" => "DeadlineExceeded",
                        "PodFailurePolicy" => "PodFailurePolicy",
                        "FailedIndexes" => "FailedIndexes",
                        "MaxFailedIndexesExceeded" => "MaxFailedIndexesExceeded",
                        _ => "BackoffLimitExceeded",
                    };
                    events.push(("Warning", r, message.clone()));
                }
                became_finished = true;
            }
        }
    }
    // status: counts of zero are left out (omitempty), ready and terminating always written
    // (less the ready pods deleted now: `*jobCtx.ready -= deletedReady`, as `active`)
    let ready = active
        .iter()
        .filter(|x| kinds::pod_ready(x) && !deleted_uids.contains(kinds::uid(&x.metadata)))
        .count() as i64;
    let count = |n: i64| (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX));
    status.active = count(still_active.max(0));
    status.succeeded = count(if indexed {
        completed_ix.count()
    } else {
        succeeded
    });
    status.failed = count(failed);
    status.ready = Some(i32::try_from(ready).unwrap_or(i32::MAX));
    status.terminating = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!unc_s.is_empty()).then_some(unc_s),
        failed: (!unc_f.is_empty()).then_some(unc_f),
    });
    if indexed {
        let f = completed_ix.to_string();
        status.completed_indexes = (!f.is_empty()).then_some(f);
        // with backoffLimitPerIndex always written, "" while no index failed
        status.failed_indexes = per_index_limit.map(|_| failed_ix.to_string());
    }
    status.conditions = (!conds.is_empty()).then_some(conds);
    if status != old_status {
        let mut j = job.clone();
        j.status = Some(status);
        p.actions.push(Action::Update {
            r: jobs_r(),
            obj: j.into(),
            status: true,
        });
    }
    // finalizers only after the UIDs are recorded
    p.actions.extend(fin_removals);
    for d in &deletes {
        let dn = kinds::name(&d.metadata);
        if !active_deleted && has_finalizer(d) {
            // deleteJobPods (manageJob: suspended, too many): the finalizer goes first, the
            // pod is not counted; a finishing Job's deletes (deleteActivePods) keep it
            p.actions.push(remove_fin(d));
        }
        p.actions.push(Action::Delete {
            r: pods_r(),
            ns: ns.clone(),
            name: dn.to_string(),
            propagation: None,
            uid: Some(kinds::uid(&d.metadata).to_string()),
        });
        events.push(("Normal", "SuccessfulDelete", format!("Deleted pod: {dn}")));
    }
    for c in creates {
        p.actions.push(Action::Create {
            r: pods_r(),
            ns: ns.clone(),
            obj: c.into(),
            report: Some(reference(job)),
        });
    }
    for (etype, reason, message) in events {
        p.actions.push(Action::Event {
            about: reference(job),
            etype,
            reason,
            message,
        });
    }
    ttl_after_finished(job, became_finished, now, &mut p);
    p
}

/// TTL after finished (pkg/controller/ttlafterfinished: `timeLeft`, then a foreground delete
/// of the Job); `became_finished`: this plan gives the Job its terminal condition now.
fn ttl_after_finished(job: &Job, became_finished: bool, now: Timestamp, p: &mut Plan) {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return;
    };
    let finished_at = if became_finished {
        Some(now)
    } else {
        ["Complete", "Failed"]
            .iter()
            .find_map(|t| cond_true(job, t))
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
    };
    // a finish time so late that the sum overflows never expires
    if let Some(expire) = finished_at.and_then(|at| {
        at.checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
            .ok()
    }) {
        if now >= expire && !became_finished {
            p.actions.push(Action::Delete {
                r: jobs_r(),
                ns: kinds::namespace(&job.metadata).to_string(),
                name: kinds::name(&job.metadata).to_string(),
                propagation: Some("Foreground"),
                uid: Some(kinds::uid(&job.metadata).to_string()),
            });
        } else {
            let left = Duration::try_from(expire.duration_since(now)).unwrap_or_default();
            p.requeue_after = Some(left.max(Duration::from_millis(100)));
        }
    }
}

/// The queue key of an orphan pod whose tracking finalizer is to go (`enqueueOrphanPod` /
/// `syncOrphanPod`): `orphan-pod:namespace/name` (no Job key has a `:`, a namespace being a
/// DNS label).
const ORPHAN_POD_KEY: &str = "orphan-pod:";

/// The Job controller over the work queue: Jobs and their pods from the shared informers
/// (job_controller.go `syncJob` reads the Job from the jobLister, and `getPodsForJob` claims
/// every pod of the Job's namespace from the pod cache with the Job's selector), with
/// `ControllerExpectations` for the pods it creates and deletes.
pub struct JobController {
    jobs: Typed<Job>,
    pods: Typed<Pod>,
    expect: Expectations,
    written: OwnWrites,
}

impl std::fmt::Debug for JobController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobController").finish_non_exhaustive()
    }
}

impl JobController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> JobController {
        JobController {
            jobs: informers.of::<Job>(),
            pods: informers.of::<Pod>(),
            expect: Expectations::default(),
            written: OwnWrites::default(),
        }
    }

    /// The Job is gone: its pods keep no tracking finalizer (`syncOrphanPod`).
    async fn release_pods(&self, objects: &Objects, key: &str) -> Result<(), ApiError> {
        let (ns, name) = queue::split_key(key);
        let mut actions = vec![];
        for pod in self
            .pods
            .by_index(index::JOB, key)
            .iter()
            .filter(|x| has_finalizer(x))
        {
            if kinds::controller_of(&pod.metadata, "Job").is_some_and(|(n, _)| n == name) {
                actions.push(Action::Patch {
                    r: pods_r(),
                    ns: ns.to_string(),
                    name: kinds::name(&pod.metadata).to_string(),
                    patch: without_finalizer(pod),
                });
            }
        }
        queue::apply(objects, self.name_(), actions).await
    }

    fn name_(&self) -> &'static str {
        "job-controller"
    }

    /// Whether a pod with the tracking finalizer and the controller ref `r` is left for
    /// [`Self::sync_orphan_pod`]: `r` names a `batch/v1` Job that the cache does not hold (by
    /// name and UID, `resolveControllerRef`) or that is finished, so `syncJob` will not remove
    /// the finalizer (`deletePod`: `job == nil || IsJobFinished(job)`).
    fn job_gone_or_finished(&self, ns: &str, r: &OwnerReference) -> bool {
        r.kind == "Job"
            && r.api_version == "batch/v1"
            && self
                .jobs
                .get_named(ns, &r.name)
                .filter(|j| kinds::uid(&j.metadata) == r.uid)
                .is_none_or(|j| is_finished(&j))
    }

    /// `cleanupPodFinalizers`: the orphan keys of the pods of `job`'s namespace its selector
    /// matches that it controls and that hold the tracking finalizer.
    fn cleanup_pod_finalizers(&self, job: &Job) -> Vec<String> {
        let Some(sel) = job.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return vec![];
        };
        self.pods
            .by_index(index::CONTROLLER, kinds::uid(&job.metadata))
            .iter()
            .filter(|p| {
                has_finalizer(p)
                    && kinds::namespace(&p.metadata) == kinds::namespace(&job.metadata)
                    && refmanager::selects(sel, p.metadata.labels.as_ref()) == Ok(true)
            })
            .map(|p| format!("{ORPHAN_POD_KEY}{}", kinds::key_of(&p.metadata)))
            .collect()
    }

    /// `getPodsForJob`: every pod of the Job's namespace claimed with its selector through
    /// the controller ref manager ([`refmanager::claim_with_finalizers`] with the tracking
    /// finalizer): what it controls and matches, the orphans it adopts (with the finalizer),
    /// and the pods it controls that no longer match, to release. A finished Job claims
    /// nothing (`syncJob` returns before `getPodsForJob`): it keeps what it controls.
    fn claim_pods(&self, job: &Job) -> Result<Claim<Pod>, InvalidSelector> {
        let uid = kinds::uid(&job.metadata);
        if is_finished(job) {
            let mut owned = self.pods.by_index(index::CONTROLLER, uid);
            owned.retain(|p| {
                job.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| {
                        refmanager::selects(sel, p.metadata.labels.as_ref()) == Ok(true)
                    })
            });
            return Ok(Claim {
                claimed: owned,
                ..Claim::default()
            });
        }
        let candidates = self
            .pods
            .by_index(index::NAMESPACE, kinds::namespace(&job.metadata));
        // LabelSelectorAsSelector: no selector selects nothing, an empty one everything
        let selector = job.spec.as_ref().and_then(|s| s.selector.as_ref());
        refmanager::claim_with_finalizers(job, selector, &candidates, &[TRACKING_FINALIZER])
    }

    /// `syncOrphanPod`: the pod `ns/name`, if it is still an orphan (or its Job is gone or
    /// finished), loses the tracking finalizer.
    async fn sync_orphan_pod(&self, objects: &Objects, key: &str) -> Result<(), ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(pod) = self.pods.get_named(ns, name) else {
            return Ok(());
        };
        if let Some(r) = kinds::controller_ref(&pod.metadata) {
            if r.kind != "Job" || r.api_version != "batch/v1" {
                return Ok(());
            }
            let live = self
                .jobs
                .get_named(ns, &r.name)
                .filter(|j| kinds::uid(&j.metadata) == r.uid);
            if live
                .as_ref()
                .is_some_and(|j| managed_by_external(j).is_some())
            {
                // its finalizers are its own controller's to remove
                return Ok(());
            }
            if live.is_some_and(|j| !is_finished(&j)) {
                // adopted meanwhile
                return Ok(());
            }
        }
        if !has_finalizer(&pod) {
            return Ok(());
        }
        let patch = Action::Patch {
            r: pods_r(),
            ns: ns.to_string(),
            name: name.to_string(),
            patch: without_finalizer(&pod),
        };
        match queue::apply(objects, self.name_(), vec![patch]).await {
            Err(e) if e.code == 404 => Ok(()),
            r => r,
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for JobController {
    fn name(&self) -> &'static str {
        self.name_()
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.jobs.prefix().to_string(),
            self.pods.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let m = change.obj.meta();
        if let Some(job) = change.obj::<Job>() {
            let k = kinds::key_of(&job.metadata);
            if change.deleted {
                self.expect.forget(&k);
                self.written.forget(&k);
            }
            let mut keys = vec![k];
            // deleteJob, and updateJob of a finished Job: `cleanupPodFinalizers` (a Job
            // replaced under the same name is synced as the new one, which does not release
            // the old one's pods)
            if change.deleted || is_finished(job) {
                keys.extend(self.cleanup_pod_finalizers(job));
            }
            return keys;
        }
        let ns = kinds::namespace(m);
        let mut keys: Vec<String> = [Some(m), change.old.as_ref().map(Cached::meta)]
            .into_iter()
            .flatten()
            .filter_map(|o| kinds::controller_of(o, "Job").map(|(n, _)| format!("{ns}/{n}")))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // an orphan: offered to the Jobs selecting it (addPod / updatePod), and its tracking
        // finalizer, if any, removed unless one adopts it first (enqueueOrphanPod)
        for k in refmanager::orphan_keys_of_jobs(change, &self.jobs, |j| {
            j.spec.as_ref().and_then(|s| s.selector.as_ref())
        }) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        // a pod being deleted (`updatePod` hands it to `deletePod`) whose Job is gone or
        // finished: syncJob will not remove its finalizer
        let orphan = !change.deleted
            && match kinds::controller_ref(m) {
                None => true,
                Some(r) => m.deletion_timestamp.is_some() && self.job_gone_or_finished(ns, r),
            };
        if orphan && change.obj::<Pod>().is_some_and(|p| has_finalizer(p)) {
            keys.push(format!("{ORPHAN_POD_KEY}{}", kinds::key_of(m)));
        }
        // CreationObserved / DeletionObserved
        let uid = kinds::uid(m);
        for k in keys.iter().filter(|k| !k.starts_with(ORPHAN_POD_KEY)) {
            self.expect.creation_observed(k, uid);
            if change.deleted || m.deletion_timestamp.is_some() {
                self.expect.deletion_observed(k, uid);
            }
        }
        keys
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        let mut keys: Vec<String> = self
            .jobs
            .list()
            .iter()
            .map(|j| kinds::key_of(&j.metadata))
            .collect();
        // pods still holding the tracking finalizer that no syncJob will release: orphans,
        // and pods of a Job gone or finished
        keys.extend(
            self.pods
                .list()
                .iter()
                .filter(|p| {
                    has_finalizer(p)
                        && kinds::controller_ref(&p.metadata).is_none_or(|r| {
                            self.job_gone_or_finished(kinds::namespace(&p.metadata), r)
                        })
                })
                .map(|p| format!("{ORPHAN_POD_KEY}{}", kinds::key_of(&p.metadata))),
        );
        Ok(keys)
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        if let Some(pod_key) = key.strip_prefix(ORPHAN_POD_KEY) {
            self.sync_orphan_pod(objects, pod_key).await?;
            return Ok(None);
        }
        let (ns, name) = queue::split_key(key);
        let Some(job) = self.jobs.get_named(ns, name) else {
            self.expect.forget(key);
            self.written.forget(key);
            self.release_pods(objects, key).await?;
            return Ok(None);
        };
        if let Some(by) = managed_by_external(&job) {
            // syncJob: "Skip syncing the job as it is managed by an external controller"; its
            // pods are not claimed; only its TTL applies
            tracing::debug!(job = %key, managed_by = by, "managed by an external controller");
            let plan = plan_managed(&job, &[] as &[Pod], Timestamp::now(), false);
            queue::apply(objects, self.name(), plan.actions).await?;
            return Ok(plan.requeue_after);
        }
        if self
            .written
            .stale(key, kinds::resource_version(&job.metadata))
        {
            // the cache does not show the status this controller wrote; its notice syncs again
            return Ok(None);
        }
        let manage = self.expect.satisfied(key);
        let claim = match self.claim_pods(&job) {
            Ok(c) => c,
            Err(e) => {
                // the API refuses such selectors: only a Job stored from elsewhere has one
                tracing::warn!(job = %key, error = %e, "not synced: its selector does not convert");
                return Ok(None);
            }
        };
        refmanager::apply_claim(objects, self.name(), &*job, &claim).await?;
        let plan = plan_managed(&job, &claim.claimed, Timestamp::now(), manage);
        let mut actions = plan.actions;
        // the status first, alone: once it is written, this copy of the Job is out of date
        if matches!(actions.first(), Some(Action::Update { status: true, .. })) {
            let status = actions.remove(0);
            queue::apply(objects, self.name(), vec![status]).await?;
            self.written
                .wrote(key, kinds::resource_version(&job.metadata));
        }
        let mut observed = queue::Observed::default();
        let res = queue::apply_observed(objects, self.name(), actions, &mut observed).await;
        // ExpectCreations / ExpectDeletions: what the cache does not show yet
        if manage {
            self.expect.expect_unseen(key, &observed, &self.pods);
        }
        res?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(spec: Value) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid", "resourceVersion": "5"},
            "spec": spec});
        if j.pointer("/spec/template").is_none() {
            j["spec"]["template"] = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}});
        }
        j = crate::admission::defaulted(jobs_r(), j);
        j
    }

    fn pod(name: &str, phase: &str, fin: bool, finished: &str) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "resourceVersion": "9", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"kind": "Job", "name": "pi", "uid": "job-uid", "controller": true}]},
            "status": {"phase": phase}});
        if fin {
            p["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
        }
        if !finished.is_empty() {
            p["status"]["containerStatuses"] =
                json!([{"name": "c", "state": {"terminated": {"finishedAt": finished}}}]);
        }
        p
    }

    // Fixtures are JSON as stored, decoded as the controller decodes them; what a plan writes
    // is read back as the JSON the API server receives.
    fn typed<K: serde::de::DeserializeOwned>(v: &Value) -> K {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn plan(job: &Value, pods: &[Value], now: Timestamp) -> Plan {
        let pods: Vec<Pod> = pods.iter().map(typed).collect();
        super::plan(&typed(job), &pods, now)
    }

    fn creates(p: &Plan) -> Vec<Value> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { obj, .. } => Some(obj.to_value().unwrap()),
                _ => None,
            })
            .collect()
    }

    fn status(p: &Plan) -> Option<Value> {
        p.actions.iter().find_map(|a| match a {
            Action::Update {
                obj, status: true, ..
            } => obj.to_value().unwrap().get("status").cloned(),
            _ => None,
        })
    }

    fn arc_pod(v: Value) -> Arc<Pod> {
        Arc::new(typed(&v))
    }

    /// `getPodsForJob`'s claim, as the ReplicaSet's: matching orphans adopted (with the
    /// tracking finalizer), owned pods that no longer match released (the finalizer removed
    /// with the reference), another Job's pods left alone; the Job's selector is matched with
    /// its `matchExpressions`.
    #[test]
    fn a_job_claims_orphans_and_releases_what_no_longer_matches() {
        let mut j = job(
            json!({"manualSelector": true, "parallelism": 2, "completions": 2,
            "selector": {"matchLabels": {"app": "pi"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}]}}),
        );
        j["spec"]["template"]["metadata"] = json!({"labels": {"app": "pi", "tier": "batch"}});
        assert!(
            validate_job(&j, None).is_empty(),
            "{:?}",
            validate_job(&j, None)
        );
        let j: Job = typed(&j);
        let with_labels = |name: &str, labels: Value, owner: Option<&str>| {
            let mut p = pod(name, "Running", false, "");
            p["metadata"]["labels"] = labels;
            match owner {
                Some(u) => p["metadata"]["ownerReferences"][0]["uid"] = json!(u),
                None => {
                    p["metadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("ownerReferences");
                }
            }
            arc_pod(p)
        };
        let batch = json!({"app": "pi", "tier": "batch"});
        let pods = vec![
            with_labels("orphan", batch.clone(), None),
            with_labels("orphan-web", json!({"app": "pi", "tier": "web"}), None),
            with_labels("orphan-no-tier", json!({"app": "pi"}), None),
            with_labels("owned", batch.clone(), Some("job-uid")),
            with_labels("relabelled", json!({"app": "other"}), Some("job-uid")),
            with_labels("another-jobs", batch.clone(), Some("other-uid")),
        ];
        let mut relabelled = (*pods[4]).clone();
        relabelled.metadata.finalizers = Some(vec!["x/keep".into(), TRACKING_FINALIZER.into()]);
        let mut pods = pods;
        pods[4] = Arc::new(relabelled);
        let c = refmanager::claim_with_finalizers(
            &j,
            j.spec.as_ref().unwrap().selector.as_ref(),
            &pods,
            &[TRACKING_FINALIZER],
        )
        .unwrap();
        let names = |v: &[Arc<Pod>]| -> Vec<String> {
            v.iter()
                .map(|p| kinds::name(&p.metadata).to_string())
                .collect()
        };
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["relabelled"]);
        assert_eq!(names(&c.claimed), ["orphan", "owned"]);
        // the adopted copy is counted as the Job's, with the finalizer the adoption adds
        assert!(has_finalizer(&c.claimed[0]));
        assert_eq!(
            kinds::controller_of(&c.claimed[0].metadata, "Job"),
            Some(("pi", "job-uid"))
        );
        let Action::Patch { patch, .. } =
            refmanager::adopt_patch_with_finalizers(&j, &*c.adopt[0], &c.finalizers)
        else {
            panic!()
        };
        assert_eq!(patch["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "job-uid");
        assert_eq!(patch["metadata"]["ownerReferences"][0]["controller"], true);
        let Action::Patch { patch, .. } =
            refmanager::release_patch_with_finalizers("job-uid", &*c.release[0], &c.finalizers)
        else {
            panic!()
        };
        assert_eq!(patch["metadata"]["finalizers"], json!(["x/keep"]));
        assert_eq!(patch["metadata"]["ownerReferences"], json!([]));
        // a plan over the claimed pods counts the adopted one as active
        let p = super::plan(&j, &c.claimed, t("2026-01-01T00:00:05Z"));
        assert_eq!(status(&p).unwrap()["active"], 2);
        assert!(creates(&p).is_empty());
    }

    /// `getPodsForJob` converts the selector with `LabelSelectorAsSelector`: no selector
    /// selects nothing (what the Job controls is released), an empty one (a `manualSelector`
    /// the API accepts) selects everything (every orphan is adopted).
    #[test]
    fn no_selector_selects_nothing_and_an_empty_one_everything() {
        let mut owned = pod("owned", "Running", true, "");
        owned["metadata"]["labels"] = json!({"app": "x"});
        let mut orphan = pod("orphan", "Running", false, "");
        orphan["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        let pods = [arc_pod(owned), arc_pod(orphan)];
        let names = |v: &[Arc<Pod>]| -> Vec<String> {
            v.iter()
                .map(|p| kinds::name(&p.metadata).to_string())
                .collect()
        };
        let mut j: Job = typed(&job(json!({"manualSelector": true, "selector": {}})));
        let c = refmanager::claim_with_finalizers(
            &j,
            j.spec.as_ref().unwrap().selector.as_ref(),
            &pods,
            &[TRACKING_FINALIZER],
        )
        .unwrap();
        assert_eq!(names(&c.claimed), ["owned", "orphan"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert!(c.release.is_empty());
        j.spec.as_mut().unwrap().selector = None;
        let c = refmanager::claim_with_finalizers(&j, None, &pods, &[TRACKING_FINALIZER]).unwrap();
        assert!(c.claimed.is_empty() && c.adopt.is_empty());
        assert_eq!(names(&c.release), ["owned"]);
    }

    /// A Job with a generated selector never claims another Job's pods, even an orphaned
    /// one: the selector names its own UID.
    #[test]
    fn a_generated_selector_claims_only_the_jobs_own_pods() {
        let j: Job = typed(&job(json!({})));
        // the pods of an earlier Job of the same name, orphaned
        let mut orphan = pod("theirs", "Running", true, "");
        orphan["metadata"]["labels"] = json!({"job-name": "pi", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "other-uid", "batch.kubernetes.io/controller-uid": "other-uid"});
        orphan["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        assert_eq!(
            orphan["metadata"]["labels"]["batch.kubernetes.io/controller-uid"],
            "other-uid"
        );
        let c = refmanager::claim_with_finalizers(
            &j,
            j.spec.as_ref().unwrap().selector.as_ref(),
            &[arc_pod(orphan)],
            &[TRACKING_FINALIZER],
        )
        .unwrap();
        assert!(c.adopt.is_empty() && c.claimed.is_empty());
    }

    mod cached {
        use super::*;
        use crate::controllers::informer::test_support::{refresh, TestStore};
        use crate::controllers::queue::Controller as _;
        use crate::objects::{DeleteOptions, User};
        use kubepull_datastore::Datastore;

        struct Fixture {
            store: Arc<TestStore>,
            objects: Objects,
            informers: Informers,
        }

        impl Fixture {
            async fn new() -> Fixture {
                let store = Arc::new(TestStore::default());
                let dyn_store: Arc<dyn Datastore> = store.clone();
                let objects = Objects::new(dyn_store.clone());
                objects.bootstrap().await.unwrap();
                Fixture {
                    objects,
                    informers: Informers::unstarted(dyn_store),
                    store,
                }
            }

            /// Syncs `default/pi`; the sync lists nothing from storage.
            async fn sync(&self, c: &mut JobController) -> Option<Duration> {
                let lists = self.store.lists();
                let r = c.sync(&self.objects, "default/pi").await.unwrap();
                assert_eq!(
                    self.store.lists(),
                    lists,
                    "a sync lists nothing from storage"
                );
                r
            }

            /// Stores the Job `default/pi` of [`job_body`] with `spec`.
            async fn create_job(&self, spec: Value) -> Value {
                self.objects
                    .create(jobs_r(), "default", job_body(spec), &User::Admin, false)
                    .await
                    .unwrap()
            }

            async fn refresh_jobs(&self) {
                refresh::<Job>(&self.informers, self.store.as_ref()).await;
            }

            /// Brings the `K` cache up to date; what it delivers is mapped by `c`.
            async fn refresh_keys<K: crate::controllers::kinds::Kind>(
                &self,
                c: &mut JobController,
            ) -> Vec<String> {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                self.informers.of::<K>().informer().subscribe(tx);
                refresh::<K>(&self.informers, self.store.as_ref()).await;
                let mut keys = BTreeSet::new();
                while let Ok(n) = rx.try_recv() {
                    keys.extend(c.keys_for(&n));
                }
                keys.into_iter().collect()
            }

            /// Brings the Job cache up to date; what it delivers is mapped by `c`.
            async fn refresh_jobs_keys(&self, c: &mut JobController) -> Vec<String> {
                self.refresh_keys::<Job>(c).await
            }

            /// Brings the pod cache up to date; what it delivers is mapped by `c`.
            async fn refresh_pods(&self, c: &mut JobController) -> Vec<String> {
                self.refresh_keys::<Pod>(c).await
            }

            /// The pods in storage.
            async fn stored_pods(&self) -> Vec<Value> {
                let l = self
                    .store
                    .list("/registry/pods/", None, 0, None)
                    .await
                    .unwrap();
                l.items
                    .iter()
                    .map(|kv| serde_json::from_slice(&kv.value).unwrap())
                    .collect()
            }
        }

        fn job_body(spec: Value) -> Value {
            let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "pi", "namespace": "default"}, "spec": spec});
            j["spec"]["template"] = json!({"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}});
            j
        }

        /// The status subresource validates the Job's status transitions (the Job status
        /// strategy): a bad one is refused with 422 naming the field, a good one is stored.
        #[tokio::test]
        async fn the_status_subresource_validates_the_status() {
            let f = Fixture::new().await;
            let created = f.create_job(json!({"completions": 2})).await;
            let mut bad = created.clone();
            bad["status"] = json!({"failedIndexes": "0"});
            let e = f
                .objects
                .update(jobs_r(), "default", "pi", bad, Some("status"), false)
                .await
                .unwrap_err();
            assert_eq!(e.code, 422);
            assert!(
                e.message.ends_with("status.failedIndexes: Invalid value: \"0\": cannot set non-null failedIndexes when backoffLimitPerIndex is null"),
                "{}",
                e.message
            );
            let mut good = created;
            good["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "active": 1});
            let stored = f
                .objects
                .update(jobs_r(), "default", "pi", good, Some("status"), false)
                .await
                .unwrap();
            assert_eq!(stored["status"]["active"], 1);
        }

        /// A sync reads the Job and its pods from the caches (no list from storage), and the
        /// pods it created, until the pod cache shows them, keep a second sync from creating
        /// again; their arrival in the cache syncs the Job.
        #[tokio::test]
        async fn syncs_from_the_cache_and_expects_its_creations() {
            let f = Fixture::new().await;
            let mut c = JobController::new(&f.informers);
            f.create_job(json!({"completions": 4, "parallelism": 2}))
                .await;
            f.refresh_jobs().await;
            assert_eq!(f.refresh_pods(&mut c).await, Vec::<String>::new());
            f.sync(&mut c).await;
            assert_eq!(f.stored_pods().await.len(), 2);
            // the Job cache does not show the status just written: the stale copy is not used
            assert!(f.sync(&mut c).await.is_none());
            assert_eq!(f.stored_pods().await.len(), 2);
            // the Job cache catches up, the pod cache does not: the creations are expected
            f.refresh_jobs().await;
            let job = c.jobs.get_named("default", "pi").unwrap();
            assert!(
                c.claim_pods(&job).unwrap().claimed.is_empty(),
                "the pod cache is behind"
            );
            assert!(!c.expect.satisfied("default/pi"));
            f.sync(&mut c).await;
            assert_eq!(f.stored_pods().await.len(), 2, "no second burst");
            // the pods reach the cache: the Job is synced again, nothing more to create
            assert_eq!(f.refresh_pods(&mut c).await, ["default/pi"]);
            assert!(c.expect.satisfied("default/pi"));
            f.refresh_jobs().await;
            f.sync(&mut c).await;
            assert_eq!(f.stored_pods().await.len(), 2);
            // every key, from the cache
            let lists = f.store.lists();
            assert_eq!(c.all_keys(&f.objects).await.unwrap(), ["default/pi"]);
            assert_eq!(f.store.lists(), lists);
        }

        /// A delete that fails is not expected (upstream lowers the expectation in the
        /// error path): the next sync deletes again instead of waiting for the expectations'
        /// timeout.
        #[tokio::test]
        async fn a_failed_delete_is_not_expected() {
            let f = Fixture::new().await;
            let mut c = JobController::new(&f.informers);
            f.create_job(json!({"completions": 4, "parallelism": 2}))
                .await;
            f.refresh_jobs().await;
            f.refresh_pods(&mut c).await;
            f.sync(&mut c).await;
            f.refresh_pods(&mut c).await;
            f.refresh_jobs().await;
            assert!(c.expect.satisfied("default/pi"));
            // suspended: its active pods are to be deleted, and the deletes fail
            let mut job = f.objects.get(jobs_r(), "default", "pi").await.unwrap();
            job["spec"]["suspend"] = json!(true);
            f.objects
                .update(jobs_r(), "default", "pi", job, None, false)
                .await
                .unwrap();
            f.refresh_jobs().await;
            // a pod with the tracking finalizer is deleted by an update (its deletion
            // timestamp): those fail
            f.store.fail_updates_under(Some("/registry/pods/"));
            f.store.fail_deletes_under(Some("/registry/pods/"));
            assert!(c.sync(&f.objects, "default/pi").await.is_err());
            assert!(
                c.expect.satisfied("default/pi"),
                "nothing deleted, nothing expected"
            );
            // the store is back: the next sync deletes
            f.store.fail_updates_under(None);
            f.store.fail_deletes_under(None);
            f.refresh_jobs().await;
            f.refresh_pods(&mut c).await;
            let _ = c.sync(&f.objects, "default/pi").await;
            let active = f
                .stored_pods()
                .await
                .into_iter()
                .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                .count();
            assert_eq!(active, 0, "the suspended Job's pods are deleted");
        }

        /// An orphan a Job's selector matches syncs that Job, which adopts it (with the
        /// tracking finalizer) from the cache; an orphan that keeps the finalizer and that no
        /// Job adopts loses it (`syncOrphanPod`).
        #[tokio::test]
        async fn orphans_sync_the_jobs_selecting_them_and_are_adopted() {
            let f = Fixture::new().await;
            let mut c = JobController::new(&f.informers);
            let mut body = job_body(json!({"manualSelector": true, "parallelism": 2,
                "completions": 2, "selector": {"matchLabels": {"app": "pi"}}}));
            body["spec"]["template"]["metadata"] = json!({"labels": {"app": "pi"}});
            f.objects
                .create(jobs_r(), "default", body, &User::Admin, false)
                .await
                .unwrap();
            f.refresh_jobs().await;
            let pod = |name: &str, app: &str| {
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name,
                    "labels": {"app": app}, "finalizers": [TRACKING_FINALIZER]},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
            };
            for (n, app) in [("mine", "pi"), ("other", "web")] {
                f.objects
                    .create(pods_r(), "default", pod(n, app), &User::Admin, false)
                    .await
                    .unwrap();
            }
            // the matching orphan syncs the Job; both orphans holding the finalizer are queued
            assert_eq!(
                f.refresh_pods(&mut c).await,
                [
                    "default/pi",
                    "orphan-pod:default/mine",
                    "orphan-pod:default/other"
                ]
            );
            f.sync(&mut c).await;
            let stored = f.stored_pods().await;
            let by_name = |n: &str| {
                stored
                    .iter()
                    .find(|p| p["metadata"]["name"] == n)
                    .cloned()
                    .unwrap()
            };
            let mine = by_name("mine");
            assert_eq!(mine["metadata"]["ownerReferences"][0]["name"], "pi");
            assert_eq!(mine["metadata"]["ownerReferences"][0]["controller"], true);
            assert_eq!(mine["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
            assert_eq!(stored.len(), 3, "one pod created beside the adopted one");
            // the adopted pod keeps its finalizer; the other orphan loses it
            f.refresh_pods(&mut c).await;
            for k in ["orphan-pod:default/mine", "orphan-pod:default/other"] {
                c.sync(&f.objects, k).await.unwrap();
            }
            let stored = f.stored_pods().await;
            let fins = |n: &str| {
                stored
                    .iter()
                    .find(|p| p["metadata"]["name"] == n)
                    .map(|p| p["metadata"]["finalizers"].clone())
                    .unwrap()
            };
            assert_eq!(fins("mine"), json!([TRACKING_FINALIZER]));
            assert!(
                fins("other").as_array().is_none_or(|a| a.is_empty()),
                "{stored:?}"
            );
            // the keys of a resync name the orphans still holding it: none once the cache
            // shows the removal
            f.refresh_pods(&mut c).await;
            let keys = c.all_keys(&f.objects).await.unwrap();
            assert_eq!(keys, ["default/pi"]);
        }

        /// A deleted Job's pods lose their tracking finalizer; they are found through the
        /// cache by the Job's name.
        #[tokio::test]
        async fn a_deleted_jobs_pods_are_released_from_the_cache() {
            let f = Fixture::new().await;
            let mut c = JobController::new(&f.informers);
            f.create_job(json!({"parallelism": 2})).await;
            f.refresh_jobs().await;
            f.sync(&mut c).await;
            let pods = f.stored_pods().await;
            assert_eq!(pods.len(), 2);
            assert!(pods
                .iter()
                .all(|p| p["metadata"]["finalizers"] == json!([TRACKING_FINALIZER])));
            f.objects
                .delete(jobs_r(), "default", "pi", &DeleteOptions::default())
                .await
                .unwrap();
            f.refresh_jobs().await;
            assert_eq!(f.refresh_pods(&mut c).await, ["default/pi"]);
            f.sync(&mut c).await;
            let pods = f.stored_pods().await;
            assert_eq!(pods.len(), 2, "{pods:?}");
            assert!(
                pods.iter().all(|p| p["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty())),
                "{pods:?}"
            );
        }

        /// `kubectl replace --force`: the Job is deleted and created again under its name, and
        /// the one sync of that name finds the new Job, which does not release the old one's
        /// pods. Their finalizer goes through the orphan keys: of the deleted Job's notice
        /// (`cleanupPodFinalizers`), of each pod being deleted whose Job is gone
        /// (`deletePod`), and of a resync.
        #[tokio::test]
        async fn a_replaced_jobs_pods_lose_the_finalizer_through_orphan_keys() {
            let f = Fixture::new().await;
            let mut c = JobController::new(&f.informers);
            let create = || async {
                f.objects
                    .create(
                        jobs_r(),
                        "default",
                        job_body(json!({"parallelism": 2})),
                        &User::Admin,
                        false,
                    )
                    .await
                    .unwrap()
            };
            create().await;
            f.refresh_jobs_keys(&mut c).await;
            f.sync(&mut c).await;
            f.refresh_pods(&mut c).await;
            let mut old: Vec<String> = f
                .stored_pods()
                .await
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            old.sort();
            assert_eq!(old.len(), 2);
            let orphan_keys: Vec<String> = old
                .iter()
                .map(|n| format!("{ORPHAN_POD_KEY}default/{n}"))
                .collect();
            // deleted: its notice names its pods
            f.objects
                .delete(jobs_r(), "default", "pi", &DeleteOptions::default())
                .await
                .unwrap();
            let mut want = vec!["default/pi".to_string()];
            want.extend(orphan_keys.iter().cloned());
            assert_eq!(f.refresh_jobs_keys(&mut c).await, want);
            // created again; the garbage collector deletes the old pods, which the finalizer
            // keeps terminating
            create().await;
            f.refresh_jobs_keys(&mut c).await;
            for n in &old {
                f.objects
                    .delete(pods_r(), "default", n, &DeleteOptions::default())
                    .await
                    .unwrap();
            }
            assert_eq!(f.refresh_pods(&mut c).await, want);
            f.sync(&mut c).await;
            f.refresh_pods(&mut c).await;
            let held = |pods: &[Value]| {
                pods.iter()
                    .filter(|p| old.iter().any(|n| p["metadata"]["name"] == n.as_str()))
                    .count()
            };
            assert_eq!(held(&f.stored_pods().await), 2, "the new Job leaves them");
            let mut keys = c.all_keys(&f.objects).await.unwrap();
            keys.sort();
            assert_eq!(keys, want);
            for k in &orphan_keys {
                c.sync(&f.objects, k).await.unwrap();
            }
            assert_eq!(
                held(&f.stored_pods().await),
                0,
                "finalizer removed, pods gone"
            );
        }

        /// The pod cache keeps what the Job controller reads: the completion index, the
        /// container statuses' restarts and termination.
        #[test]
        fn the_trimmed_pod_keeps_what_a_plan_reads() {
            let mut p = pod("a", "Failed", true, "2026-01-01T00:00:10Z");
            p["metadata"]["annotations"] = json!({INDEX_KEY: "3", "other": "x",
                INDEX_FAILURE_COUNT_KEY: "2", INDEX_IGNORED_FAILURE_COUNT_KEY: "1"});
            p["status"]["containerStatuses"][0]["restartCount"] = json!(2);
            p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = json!(42);
            p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = json!("m");
            p["status"]["containerStatuses"][0]["image"] = json!("busybox");
            p["status"]["initContainerStatuses"] = json!([{"name": "setup", "restartCount": 0,
                "ready": false, "image": "busybox", "imageID": "",
                "state": {"terminated": {"exitCode": 7, "reason": "Error"}}}]);
            let full: Pod = typed(&p);
            let trimmed = kinds::trim_pod(full.clone());
            assert_eq!(pod_index(&trimmed), Some(3));
            assert_eq!(finish_time(&trimmed), finish_time(&full));
            let cs = &trimmed
                .status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0];
            assert_eq!(cs.restart_count, 2);
            let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!(term.exit_code, 42);
            assert!(term.message.is_none() && cs.image.is_empty());
            assert_eq!(trimmed.metadata.annotations.as_ref().unwrap().len(), 3);
            assert_eq!(
                index_failure_annotation(&trimmed, INDEX_FAILURE_COUNT_KEY),
                2
            );
            assert_eq!(index_absolute_failure_count(&trimmed), 3);
            assert!(has_finalizer(&trimmed));
            let init = &trimmed.status.as_ref().unwrap().init_container_statuses;
            let init = &init.as_ref().unwrap()[0];
            assert_eq!(init.name, "setup");
            let term = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!(term.exit_code, 7);
            assert!(term.reason.is_none());
            // the plans over the full and the trimmed pod are the same, with a pod failure
            // policy reading the init container's exit code too
            let now = t("2026-01-01T00:00:12Z");
            for spec in [
                json!({"completions": 1, "backoffLimit": 3}),
                json!({"completionMode": "Indexed", "completions": 4, "backoffLimitPerIndex": 2}),
                json!({"completions": 1, "podFailurePolicy": {"rules": [
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [7]}}]}}),
            ] {
                let j: Job = typed(&job(spec));
                let a = format!(
                    "{:?}",
                    super::super::plan(&j, std::slice::from_ref(&full), now)
                );
                let b = format!(
                    "{:?}",
                    super::super::plan(&j, std::slice::from_ref(&trimmed), now)
                );
                assert_eq!(a, b);
            }
            let j: Job = typed(&job(
                json!({"completions": 1, "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [7]}}]}}),
            ));
            let b = format!("{:?}", super::super::plan(&j, &[trimmed], now));
            assert!(
                b.contains("Container setup for pod default/a failed with exit code 7"),
                "{b}"
            );
        }
    }

    #[test]
    fn completed_indexes_are_intervals_clamped_to_completions() {
        let ix = Indexes::parse("0,1,2,5,7-9", 10);
        assert_eq!(ix.to_string(), "0-2,5,7-9");
        assert_eq!(ix.count(), 7);
        assert!(ix.contains(8) && !ix.contains(6) && !ix.contains(10));
        // parseIndexesFromString: a first index at or past completions ends the parse, a last
        // one is clamped, corrupted intervals are skipped
        assert_eq!(Indexes::parse("1,x,3-99,200", 5).to_string(), "1,3,4");
        assert_eq!(Indexes::parse("1,x,2-99,200", 5).to_string(), "1-4");
        assert_eq!(Indexes::parse("5,1", 5).to_string(), "");
        // a huge interval costs one entry, not one per index
        let huge = Indexes::parse("0-9223372036854775806", i64::from(i32::MAX));
        assert_eq!(huge.count(), i64::from(i32::MAX));
        assert_eq!(huge.0.len(), 1);
        // inserting merges neighbours
        let mut m = Indexes::parse("0,4", 10);
        m.insert(2);
        m.insert(1);
        m.insert(3);
        assert_eq!(m.to_string(), "0-4");
        // pending: the gaps, lowest first, without the running ones
        let p = Indexes::parse("0-2,5,7-9", 12);
        let running: HashSet<i64> = [3].into_iter().collect();
        assert_eq!(p.first_pending(12, 10, &running), vec![4, 6, 10, 11]);
        assert_eq!(p.first_pending(12, 2, &running), vec![4, 6]);
        assert_eq!(
            huge.first_pending(i64::from(i32::MAX), 5, &HashSet::new()),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn one_sync_creates_at_most_500_pods_however_large_parallelism_is() {
        for spec in [
            json!({"parallelism": i32::MAX, "completions": i32::MAX}),
            json!({"parallelism": 100000, "completions": i32::MAX, "completionMode": "Indexed"}),
        ] {
            let j = job(spec.clone());
            let p = plan(&j, &[], t("2026-01-01T00:00:05Z"));
            assert_eq!(creates(&p).len(), MAX_POD_CREATE_DELETE_PER_SYNC, "{spec}");
        }
        // an Indexed Job's parallelism is bounded by validation as upstream's
        let j = job(json!({"parallelism": 100001, "completions": 5, "completionMode": "Indexed"}));
        let texts: Vec<String> = validate_job(&j, None).iter().map(Cause::text).collect();
        assert!(
            texts.contains(&"spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed".to_string()),
            "{texts:?}"
        );
    }

    #[test]
    fn deadlines_and_indexes_past_the_end_of_time_do_not_panic() {
        let mut j = job(
            json!({"activeDeadlineSeconds": i64::MAX, "ttlSecondsAfterFinished": i32::MAX,
            "completionMode": "Indexed", "completions": 3, "parallelism": 3}),
        );
        j["status"] = json!({"startTime": "9999-12-30T21:00:00Z",
            "completedIndexes": "0-9223372036854775806"});
        let p = plan(&j, &[], t("2026-01-01T00:00:05Z"));
        let st = status(&p).expect("status written");
        assert_eq!(st["completedIndexes"], "0-2");
        assert_eq!(st["succeeded"], 3);
        assert!(creates(&p).is_empty());
        let mut j = job(json!({"activeDeadlineSeconds": i64::MAX}));
        j["status"] = json!({"startTime": "9999-12-30T21:00:00Z"});
        let p = plan(&j, &[], t("2026-01-01T00:00:05Z"));
        assert_eq!(
            creates(&p).len(),
            1,
            "an unreachable deadline is no deadline"
        );
    }

    #[test]
    fn defaults_and_selector() {
        let j = job(json!({}));
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "job-uid"
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(
            j["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "pi"
        );
        let j = job(json!({"parallelism": 3}));
        assert!(j["spec"].get("completions").is_none());
        assert!(validate_job(&j, None).is_empty());
        let mut bad = job(json!({"completionMode": "Indexed"}));
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        bad["spec"].as_object_mut().unwrap().remove("completions");
        let texts: Vec<String> = validate_job(&bad, None).iter().map(Cause::text).collect();
        assert!(texts.contains(&"spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"".to_string()), "{texts:?}");
        assert!(
            texts.contains(
                &"spec.completions: Required value: when completion mode is Indexed".to_string()
            ),
            "{texts:?}"
        );
    }

    #[test]
    fn selectors_as_upstream() {
        // a user label kept, the generated selector added
        let mut j = json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        j = crate::admission::defaulted(jobs_r(), j);
        assert_eq!(j["spec"]["template"]["metadata"]["labels"]["app"], "x");
        assert!(
            validate_job(&j, None).is_empty(),
            "{:?}",
            validate_job(&j, None)
        );
        // a selector naming another UID is refused
        let mut bad = j.clone();
        bad["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] =
            json!("other");
        let texts: Vec<String> = validate_job(&bad, None).iter().map(Cause::text).collect();
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.selector: Invalid value")
                    && t.ends_with("`selector` not auto-generated")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.ends_with("`selector` does not match template `labels`")),
            "{texts:?}"
        );
        // manualSelector: the user's selector must match the template
        let mut manual = json!({"metadata": {"name": "m", "uid": "u2"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"app": "y"}},
            "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        manual = crate::admission::defaulted(jobs_r(), manual);
        let texts: Vec<String> = validate_job(&manual, None)
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(texts, ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"]);
    }

    /// A failed pod with the tracking finalizer, its containers and init containers
    /// terminated with the exit codes given, and its conditions.
    fn failed_pod(name: &str, exits: &[(&str, i32)], init: &[(&str, i32)], conds: Value) -> Value {
        let statuses = |x: &[(&str, i32)]| -> Value {
            x.iter()
                .map(|(n, code)| json!({"name": n, "restartCount": 0, "ready": false, "image": "i", "imageID": "",
                    "state": {"terminated": {"exitCode": code, "finishedAt": "2026-01-01T00:00:10Z"}}}))
                .collect()
        };
        let mut p = pod(name, "Failed", true, "");
        p["status"]["containerStatuses"] = statuses(exits);
        p["status"]["initContainerStatuses"] = statuses(init);
        p["status"]["conditions"] = conds;
        p
    }

    fn policy_job(rules: Value, backoff_limit: i64) -> Value {
        let mut j = job(json!({"completions": 1, "backoffLimit": backoff_limit,
            "podFailurePolicy": {"rules": rules}}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {}});
        j
    }

    fn matched(rules: Value, p: &Value) -> PolicyMatch {
        let j: Job = typed(&policy_job(rules, 6));
        let p: Pod = typed(p);
        match_pod_failure_policy(j.spec.as_ref().unwrap().pod_failure_policy.as_ref(), &p)
    }

    fn condition_of(st: &Value, ty: &str) -> Option<Value> {
        st["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == ty)
            .cloned()
    }

    /// `matchPodFailurePolicy` as pod_failure_policy_test.go: rules in order, the first match
    /// decides; `In`/`NotIn`, `containerName`, init containers, exit code 0 never matching,
    /// `onPodConditions`; `FailIndex` counts the failure.
    #[test]
    fn pod_failure_policy_rules_match_as_upstream() {
        let none = PolicyMatch {
            fail_job: None,
            count: true,
            action: None,
        };
        let exit = |code: i32| failed_pod("a", &[("c", code)], &[], json!([]));
        let fail_42 =
            json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]);
        assert_eq!(
            matched(fail_42.clone(), &exit(42)),
            PolicyMatch {
                fail_job: Some("Container c for pod default/a failed with exit code 42 matching FailJob rule at index 0".into()),
                count: true,
                action: Some("FailJob"),
            }
        );
        assert_eq!(matched(fail_42.clone(), &exit(41)), none);
        // NotIn, and exit code 0 never matches
        let not_in =
            json!([{"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]);
        assert_eq!(matched(not_in.clone(), &exit(3)).action, Some("Ignore"));
        assert!(!matched(not_in.clone(), &exit(3)).count);
        assert_eq!(matched(not_in.clone(), &exit(2)), none);
        assert_eq!(matched(not_in.clone(), &exit(0)), none);
        // the first terminated container with a non-zero code the requirement matches
        let two = failed_pod("a", &[("ok", 0), ("c", 7)], &[], json!([]));
        assert_eq!(matched(not_in, &two).action, Some("Ignore"));
        // containerName
        let named = json!([{"action": "FailJob", "onExitCodes": {"containerName": "other", "operator": "In", "values": [42]}}]);
        assert_eq!(matched(named.clone(), &exit(42)), none);
        let other = failed_pod("a", &[("c", 1), ("other", 42)], &[], json!([]));
        assert_eq!(
            matched(named, &other).fail_job.as_deref(),
            Some("Container other for pod default/a failed with exit code 42 matching FailJob rule at index 0")
        );
        // init containers, after the containers
        let init = failed_pod("a", &[], &[("setup", 42)], json!([]));
        assert_eq!(
            matched(fail_42, &init).fail_job.as_deref(),
            Some("Container setup for pod default/a failed with exit code 42 matching FailJob rule at index 0")
        );
        // onPodConditions by type and status
        let disrupted = failed_pod(
            "a",
            &[("c", 137)],
            &[],
            json!([{"type": "DisruptionTarget", "status": "True"}]),
        );
        let on_cond = json!([{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]);
        assert_eq!(matched(on_cond.clone(), &disrupted).action, Some("Ignore"));
        assert_eq!(matched(on_cond, &exit(137)), none);
        let fail_cond = json!([{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]);
        assert_eq!(
            matched(fail_cond, &disrupted).fail_job.as_deref(),
            Some("Pod default/a has condition DisruptionTarget matching FailJob rule at index 0")
        );
        // rules in order: the first matching one decides
        let ordered = json!([
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]);
        assert_eq!(
            matched(ordered.clone(), &exit(42)),
            PolicyMatch {
                fail_job: None,
                count: true,
                action: Some("FailIndex"),
            }
        );
        let fail_index_cond = json!([{"action": "FailIndex", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]);
        assert_eq!(
            matched(fail_index_cond, &disrupted).action,
            Some("FailIndex")
        );
        assert_eq!(
            matched(
                Value::from(ordered.as_array().unwrap()[1..].to_vec()),
                &exit(42)
            )
            .action,
            Some("Count")
        );
        // no policy: counted
        let p: Pod = typed(&exit(42));
        assert_eq!(match_pod_failure_policy(None, &p), none);
    }

    /// A pod a `FailJob` rule matches fails the Job with reason `PodFailurePolicy` and
    /// upstream's message: `FailureTarget` first, `Failed` once the pod is counted.
    #[test]
    fn fail_job_fails_the_job_with_the_rules_message() {
        let j = policy_job(
            json!([{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]),
            6,
        );
        let f = failed_pod("a", &[("c", 42)], &[], json!([]));
        let now = t("2026-01-01T00:00:11Z");
        let p = plan(&j, std::slice::from_ref(&f), now);
        let st = status(&p).unwrap();
        let msg = "Container c for pod default/a failed with exit code 42 matching FailJob rule at index 0";
        let ft = condition_of(&st, "FailureTarget").unwrap();
        assert_eq!(
            (ft["reason"].as_str(), ft["message"].as_str()),
            (Some("PodFailurePolicy"), Some(msg))
        );
        assert!(condition_of(&st, "Failed").is_none());
        assert_eq!(st["uncountedTerminatedPods"]["failed"], json!(["uid-a"]));
        assert!(creates(&p).is_empty(), "no replacement for a failing Job");
        let mut j2 = j.clone();
        j2["status"] = st;
        let mut f2 = f.clone();
        f2["metadata"]["finalizers"] = json!([]);
        let p = plan(&j2, &[f2], now);
        let st = status(&p).unwrap();
        let failed = condition_of(&st, "Failed").unwrap();
        assert_eq!(
            (failed["reason"].as_str(), failed["message"].as_str()),
            (Some("PodFailurePolicy"), Some(msg))
        );
        assert_eq!(st["failed"], 1);
        assert!(p.actions.iter().any(|a| matches!(
            a,
            Action::Event {
                reason: "PodFailurePolicy",
                etype: "Warning",
                ..
            }
        )));
    }

    /// `Ignore`d failures are not counted against `backoffLimit` (its finalizer still goes);
    /// `Count` and unmatched failures are.
    #[test]
    fn ignored_failures_do_not_count_against_the_backoff_limit() {
        let rules = json!([
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [5]}}]);
        let j = policy_job(rules, 0);
        let now = t("2026-01-01T00:00:30Z");
        for ignored in [
            failed_pod("a", &[("c", 3)], &[], json!([])),
            failed_pod(
                "a",
                &[("c", 137)],
                &[],
                json!([{"type": "DisruptionTarget", "status": "True"}]),
            ),
        ] {
            let p = plan(&j, std::slice::from_ref(&ignored), now);
            let st = status(&p).unwrap();
            assert_eq!(st["uncountedTerminatedPods"], json!({}), "{ignored}");
            assert!(condition_of(&st, "FailureTarget").is_none(), "{st}");
            assert!(p
                .actions
                .iter()
                .any(|a| matches!(a, Action::Patch { name, .. } if name == "a")));
            // replaced once the back-off has passed
            assert_eq!(creates(&p).len(), 1);
            // and never counted once its finalizer is gone
            let mut j2 = j.clone();
            j2["status"] = st;
            let mut gone = ignored.clone();
            gone["metadata"]["finalizers"] = json!([]);
            let st2 = status(&plan(&j2, &[gone], now)).unwrap_or_default();
            assert!(st2.get("failed").is_none_or(Value::is_null), "{st2}");
        }
        for counted in [
            failed_pod("a", &[("c", 5)], &[], json!([])),
            failed_pod("a", &[("c", 6)], &[], json!([])),
        ] {
            let st = status(&plan(&j, std::slice::from_ref(&counted), now)).unwrap();
            assert_eq!(st["uncountedTerminatedPods"]["failed"], json!(["uid-a"]));
            assert_eq!(
                condition_of(&st, "FailureTarget").unwrap()["reason"],
                "BackoffLimitExceeded"
            );
        }
    }

    /// With a `podFailurePolicy` (`podReplacementPolicy: Failed`) a terminating pod is not a
    /// failure and is not replaced until it has failed (`isPodFailed`, `onlyReplaceFailedPods`).
    #[test]
    fn only_failed_pods_are_replaced_with_a_pod_failure_policy() {
        let j = policy_job(
            json!([{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]),
            0,
        );
        assert_eq!(j["spec"]["podReplacementPolicy"], "Failed");
        let mut going = pod("a", "Running", true, "");
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:05Z");
        let now = t("2026-01-01T00:00:30Z");
        let p = plan(&j, std::slice::from_ref(&going), now);
        assert!(creates(&p).is_empty(), "not replaced while terminating");
        let st = status(&p).unwrap();
        assert_eq!(st["terminating"], 1);
        assert_eq!(st["uncountedTerminatedPods"], json!({}));
        assert!(condition_of(&st, "FailureTarget").is_none());
        // without a policy (TerminatingOrFailed) it is a failure, over backoffLimit 0
        let mut plain = job(json!({"completions": 1, "backoffLimit": 0}));
        plain["status"] = j["status"].clone();
        let st = status(&plan(&plain, &[going], now)).unwrap();
        assert_eq!(
            condition_of(&st, "FailureTarget").unwrap()["reason"],
            "BackoffLimitExceeded"
        );
    }

    fn texts(spec: Value) -> Vec<String> {
        validate_job(&job(spec), None)
            .iter()
            .map(Cause::text)
            .collect()
    }

    /// `validatePodFailurePolicy` and `validatePodReplacementPolicy` with upstream's field
    /// paths and texts.
    #[test]
    fn pod_failure_policies_are_validated_as_upstream() {
        let ok = json!({"podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [1, 42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}}]}});
        assert!(texts(ok).is_empty());
        let bad = texts(json!({"podFailurePolicy": {"rules": [
            {"action": "", "onExitCodes": {"operator": "In", "values": [0, 5, 5, 3]}},
            {"action": "Retry", "onExitCodes": {"containerName": "nope", "operator": "Has", "values": []}},
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]},
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Ignore"},
            {"action": "Ignore", "onPodConditions": [{"type": "bad type", "status": "Maybe"}, {"type": "example.com/Ok", "status": ""}]}]}}));
        let want = [
            "spec.podFailurePolicy.rules[0].action: Required value: valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 5",
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{0, 5, 5, 3}: must be ordered",
            "spec.podFailurePolicy.rules[1].action: Unsupported value: \"Retry\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
            "spec.podFailurePolicy.rules[1].onExitCodes.operator: Unsupported value: \"Has\": supported values: \"In\", \"NotIn\"",
            "spec.podFailurePolicy.rules[1].onExitCodes.containerName: Invalid value: \"nope\": must be one of the container or initContainer names in the pod template",
            "spec.podFailurePolicy.rules[1].onExitCodes.values: Invalid value: []int32{}: at least one value is required",
            "spec.podFailurePolicy.rules[2].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
            "spec.podFailurePolicy.rules[2]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
            "spec.podFailurePolicy.rules[3]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
            "spec.podFailurePolicy.rules[4].onPodConditions[0].type: Invalid value: \"bad type\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "spec.podFailurePolicy.rules[4].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
            "spec.podFailurePolicy.rules[4].onPodConditions[1].status: Required value: valid values: [\"False\" \"True\" \"Unknown\"]",
        ];
        assert_eq!(bad, want);
        // too many rules
        let rule = json!({"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}});
        let many = texts(json!({"podFailurePolicy": {"rules": vec![rule.clone(); 21]}}));
        assert_eq!(
            many,
            ["spec.podFailurePolicy.rules: Too many: 21: must have at most 20 items"]
        );
        // restartPolicy Never only, podReplacementPolicy Failed only
        let mut j = job(json!({"podReplacementPolicy": "TerminatingOrFailed",
            "podFailurePolicy": {"rules": [rule]}}));
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        let t: Vec<String> = validate_job(&j, None).iter().map(Cause::text).collect();
        assert_eq!(t, [
            "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ]);
        assert_eq!(
            texts(json!({"podReplacementPolicy": "Sometimes"})),
            ["spec.podReplacementPolicy: Unsupported value: \"Sometimes\": supported values: \"Failed\", \"TerminatingOrFailed\""]
        );
        // a CronJob's template is checked under its own path
        let mut c = vec![];
        validate_pod_failure_policy(
            &json!({"podFailurePolicy": {"rules": [{"action": "Ignore"}]}}),
            "spec.jobTemplate.spec.podFailurePolicy",
            &mut c,
        );
        assert_eq!(c.iter().map(Cause::text).collect::<Vec<_>>(), ["spec.jobTemplate.spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required"]);
    }

    #[test]
    fn creates_pods_up_to_parallelism_with_tracking_finalizer() {
        let j = job(json!({"completions": 5, "parallelism": 2}));
        let p = plan(&j, &[], t("2026-01-01T00:00:00Z"));
        let c = creates(&p);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["metadata"]["generateName"], "pi-");
        assert_eq!(c[0]["metadata"]["finalizers"][0], TRACKING_FINALIZER);
        assert_eq!(c[0]["metadata"]["ownerReferences"][0]["uid"], "job-uid");
        assert_eq!(
            c[0]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"],
            "job-uid"
        );
        let st = status(&p).unwrap();
        assert_eq!(st["active"], 2);
        assert_eq!(st["startTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn finished_pods_are_counted_once_through_uncounted() {
        let mut j = job(json!({"completions": 1}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "active": 1});
        let done = pod("a", "Succeeded", true, "2026-01-01T00:00:10Z");
        let now = t("2026-01-01T00:00:11Z");
        // 1: the UID goes to uncounted, then the finalizer is removed; SuccessCriteriaMet
        let p1 = plan(&j, std::slice::from_ref(&done), now);
        let st = status(&p1).unwrap();
        assert_eq!(st["uncountedTerminatedPods"]["succeeded"], json!(["uid-a"]));
        assert!(st.get("succeeded").is_none());
        let conds = st["conditions"].as_array().unwrap();
        assert!(conds.iter().any(|c| c["type"] == "SuccessCriteriaMet"));
        assert!(!conds.iter().any(|c| c["type"] == "Complete"));
        let idx_status = p1
            .actions
            .iter()
            .position(|a| matches!(a, Action::Update { .. }))
            .unwrap();
        let idx_patch = p1
            .actions
            .iter()
            .position(|a| matches!(a, Action::Patch { .. }))
            .unwrap();
        assert!(idx_status < idx_patch, "status before finalizer removal");
        // 2: the finalizer is gone: counted, Complete with completionTime
        let mut j2 = j.clone();
        j2["status"] = st.clone();
        let mut done2 = done.clone();
        done2["metadata"]["finalizers"] = json!([]);
        let p2 = plan(&j2, std::slice::from_ref(&done2), now);
        let st2 = status(&p2).unwrap();
        assert_eq!(st2["succeeded"], 1);
        assert_eq!(st2["uncountedTerminatedPods"], json!({}));
        let conds = st2["conditions"].as_array().unwrap();
        let complete = conds.iter().find(|c| c["type"] == "Complete").unwrap();
        assert_eq!(complete["reason"], "CompletionsReached");
        assert_eq!(st2["completionTime"], "2026-01-01T00:00:11Z");
        assert!(creates(&p2).is_empty());
        // 3: nothing more to do, and nothing counted twice
        let mut j3 = j2.clone();
        j3["status"] = st2.clone();
        let p3 = plan(&j3, &[done2], now);
        assert!(status(&p3).is_none(), "{p3:?}");
        assert!(creates(&p3).is_empty());
    }

    #[test]
    fn backoff_as_upstream() {
        let now = t("2026-01-01T00:01:00Z");
        // TestJobBackoff-like: 10 s, 20 s, 40 s … capped at 10 min, from the last failure
        assert_eq!(backoff_remaining(0, Some(now), now), Duration::ZERO);
        assert_eq!(
            backoff_remaining(1, Some(now), now),
            Duration::from_secs(10)
        );
        assert_eq!(
            backoff_remaining(2, Some(now), now),
            Duration::from_secs(20)
        );
        assert_eq!(
            backoff_remaining(3, Some(now), now),
            Duration::from_secs(40)
        );
        assert_eq!(backoff_remaining(10, Some(now), now), MAX_BACKOFF);
        let five_ago = t("2026-01-01T00:00:55Z");
        assert_eq!(
            backoff_remaining(2, Some(five_ago), now),
            Duration::from_secs(15)
        );
        assert_eq!(
            backoff_remaining(1, Some(t("2026-01-01T00:00:00Z")), now),
            Duration::ZERO
        );
    }

    #[test]
    fn failed_pod_waits_for_backoff_then_backoff_limit_fails_the_job() {
        let mut j = job(json!({"completions": 1, "backoffLimit": 1}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "failed": 1, "uncountedTerminatedPods": {}});
        let f1 = pod("a", "Failed", false, "2026-01-01T00:00:10Z");
        // one failure, counted: the replacement waits 10 s
        let p = plan(&j, std::slice::from_ref(&f1), t("2026-01-01T00:00:15Z"));
        assert!(creates(&p).is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(5)));
        let p = plan(&j, std::slice::from_ref(&f1), t("2026-01-01T00:00:21Z"));
        assert_eq!(creates(&p).len(), 1);
        // a second failure: over backoffLimit 1 → FailureTarget, then Failed
        let f2 = pod("b", "Failed", true, "2026-01-01T00:00:40Z");
        let p = plan(&j, &[f1.clone(), f2.clone()], t("2026-01-01T00:00:41Z"));
        let st = status(&p).unwrap();
        let conds = st["conditions"].as_array().unwrap();
        let ft = conds.iter().find(|c| c["type"] == "FailureTarget").unwrap();
        assert_eq!(ft["reason"], "BackoffLimitExceeded");
        assert_eq!(ft["message"], "Job has reached the specified backoff limit");
        assert!(!conds.iter().any(|c| c["type"] == "Failed"));
        let mut j2 = j.clone();
        j2["status"] = st.clone();
        let mut f2b = f2.clone();
        f2b["metadata"]["finalizers"] = json!([]);
        let p = plan(&j2, &[f1, f2b], t("2026-01-01T00:00:42Z"));
        let st = status(&p).unwrap();
        assert_eq!(st["failed"], 2);
        assert!(st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Failed" && c["reason"] == "BackoffLimitExceeded"));
        assert!(st.get("completionTime").is_none());
    }

    /// `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure` the restarts of the
    /// containers and init containers of running and pending pods count against
    /// `backoffLimit`.
    #[test]
    fn on_failure_restarts_count_with_init_containers() {
        let mut j = job(json!({"completions": 1, "backoffLimit": 3}));
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "active": 1});
        let restarting = |init: i32, main: i32, phase: &str| {
            let mut p = pod("a", phase, true, "");
            p["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": main,
                "ready": false, "image": "i", "imageID": ""}]);
            p["status"]["initContainerStatuses"] = json!([{"name": "setup", "restartCount": init,
                "ready": false, "image": "i", "imageID": ""}]);
            p
        };
        let now = t("2026-01-01T00:00:05Z");
        let reason = |p: &Value| {
            status(&plan(&j, std::slice::from_ref(p), now))
                .and_then(|st| condition_of(&st, "FailureTarget"))
                .map(|c| c["reason"].clone())
        };
        assert_eq!(reason(&restarting(1, 1, "Running")), None);
        assert_eq!(
            reason(&restarting(2, 1, "Pending")),
            Some(json!("BackoffLimitExceeded"))
        );
        assert_eq!(
            reason(&restarting(0, 3, "Running")),
            Some(json!("BackoffLimitExceeded"))
        );
    }

    #[test]
    fn deadline_deletes_active_pods_and_fails() {
        let mut j = job(json!({"completions": 1, "activeDeadlineSeconds": 30}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "active": 1});
        let running = pod("a", "Running", true, "");
        let p = plan(
            &j,
            std::slice::from_ref(&running),
            t("2026-01-01T00:00:10Z"),
        );
        assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
        let p = plan(&j, &[running], t("2026-01-01T00:00:31Z"));
        assert!(p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Delete { name, .. } if name == "a")));
        let st = status(&p).unwrap();
        assert!(st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "FailureTarget" && c["reason"] == "DeadlineExceeded"));
        assert_eq!(st["terminating"], 1);
    }

    /// The conditions the plan writes, or the Job's when it writes no status.
    fn conditions_of(p: &Plan, j: &Value) -> Vec<String> {
        status(p)
            .unwrap_or_else(|| j["status"].clone())
            .get("conditions")
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["type"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    fn plan_unmanaged(job: &Value, pods: &[Value], now: Timestamp, manage: bool) -> Plan {
        let pods: Vec<Pod> = pods.iter().map(typed).collect();
        super::plan_managed(&typed(job), &pods, now, manage)
    }

    /// `syncJob`: `if deleted != active || !satisfiedExpectations { finishedCondition = nil }`.
    /// While the controller's last creations or deletions are not in its cache, a failing or
    /// succeeded Job still deletes its active pods but sets neither the interim condition nor
    /// the terminal one: pods the cache does not show yet may remain.
    #[test]
    fn no_finished_condition_while_expectations_are_unmet() {
        let now = t("2026-01-01T00:00:20Z");
        // FailureTarget already there, no pod in the cache: Failed only once satisfied
        let mut j = job(json!({"completions": 1}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {},
            "conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]});
        assert_eq!(
            conditions_of(&plan_unmanaged(&j, &[], now, false), &j),
            ["FailureTarget=True"]
        );
        assert_eq!(
            conditions_of(&plan_unmanaged(&j, &[], now, true), &j),
            ["FailureTarget=True", "Failed=True"]
        );
        // SuccessCriteriaMet already there: Complete only once satisfied
        j["status"]["conditions"] = json!([{"type": "SuccessCriteriaMet", "status": "True",
            "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}]);
        j["status"]["succeeded"] = json!(1);
        assert_eq!(
            conditions_of(&plan_unmanaged(&j, &[], now, false), &j),
            ["SuccessCriteriaMet=True"]
        );
        assert_eq!(
            conditions_of(&plan_unmanaged(&j, &[], now, true), &j),
            ["SuccessCriteriaMet=True", "Complete=True"]
        );
        // a FailJob match: the running pod is deleted (keeping its finalizer), no FailureTarget
        let rules =
            json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]);
        let mut j = policy_job(rules, 6);
        j["spec"]["parallelism"] = json!(2);
        let failed = failed_pod("a", &[("c", 42)], &[], json!([]));
        let running = pod("b", "Running", true, "");
        let pods = [failed, running];
        let p = plan_unmanaged(&j, &pods, now, false);
        assert_eq!(conditions_of(&p, &j), Vec::<String>::new());
        assert!(p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Delete { name, .. } if name == "b")));
        assert!(!p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Patch { name, .. } if name == "b")));
        let p = plan_unmanaged(&j, &pods, now, true);
        assert_eq!(conditions_of(&p, &j), ["FailureTarget=True"]);
        // enough successes, a pod still active: manageJob did not run, nothing is deleted and
        // the Job is not complete
        let mut j = job(json!({"completions": 1, "parallelism": 2}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {}, "succeeded": 1});
        let p = plan_unmanaged(&j, &[pod("b", "Running", true, "")], now, false);
        assert_eq!(conditions_of(&p, &j), Vec::<String>::new());
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Delete { .. })));
        let p = plan_unmanaged(&j, &[pod("b", "Running", true, "")], now, true);
        assert_eq!(conditions_of(&p, &j), ["SuccessCriteriaMet=True"]);
    }

    #[test]
    fn indexed_jobs_run_each_missing_index() {
        let mut j = job(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
        j["status"] =
            json!({"startTime": "2026-01-01T00:00:00Z", "completedIndexes": "0", "succeeded": 1});
        let mut running = pod("pi-1-x", "Running", true, "");
        running["metadata"]["annotations"] = json!({INDEX_KEY: "1"});
        let p = plan(&j, &[running], t("2026-01-01T00:00:05Z"));
        let c = creates(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["metadata"]["annotations"][INDEX_KEY], "2");
        assert_eq!(c[0]["metadata"]["generateName"], "pi-2-");
        assert_eq!(c[0]["spec"]["hostname"], "pi-2");
        assert_eq!(
            c[0]["spec"]["containers"][0]["env"][0]["name"],
            "JOB_COMPLETION_INDEX"
        );
        assert_eq!(Indexes::parse("0,1,2,5,7-9", 10).to_string(), "0-2,5,7-9");
    }

    /// An Indexed Job's pod of index `ix` with the tracking finalizer, finished at `finished`
    /// when not empty, with the index failure-count annotation `failures` when given.
    fn ix_pod(name: &str, ix: i64, phase: &str, finished: &str, failures: Option<i32>) -> Value {
        let mut p = pod(name, phase, true, finished);
        p["metadata"]["annotations"] = json!({INDEX_KEY: ix.to_string()});
        if let Some(n) = failures {
            p["metadata"]["annotations"][INDEX_FAILURE_COUNT_KEY] = json!(n.to_string());
        }
        p
    }

    fn per_index_job(spec: Value) -> Value {
        let mut j = job(spec);
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {}});
        j
    }

    fn finalizer_removed(p: &Plan, pod: &str) -> bool {
        p.actions.iter().any(|a| {
            matches!(a, Action::Patch { name, patch, .. }
                if name == pod && patch["metadata"]["finalizers"] == json!([]))
        })
    }

    fn deleted(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// `orderedIntervals.String` writes an interval of two as two indexes; `merge` and the
    /// overlap count of `matchSucceededIndexesRule`.
    #[test]
    fn indexes_print_merge_and_overlap_as_upstream() {
        assert_eq!(Indexes::parse("0,1,3-5,7,8", 10).to_string(), "0,1,3-5,7,8");
        assert_eq!(Indexes::parse("0-1", 10).to_string(), "0,1");
        let mut a = Indexes::parse("0,4-6", 10);
        a.merge(&Indexes::parse("1,7,9", 10));
        assert_eq!(a.to_string(), "0,1,4-7,9");
        let merged = |x: &str, y: &str| {
            let mut a = Indexes::parse(x, 20);
            a.merge(&Indexes::parse(y, 20));
            a.to_string()
        };
        assert_eq!(merged("", "3-5"), "3-5");
        assert_eq!(merged("3-5", ""), "3-5");
        assert_eq!(merged("0-2,10-12", "2-10"), "0-12");
        assert_eq!(merged("5-9", "0,2,4,11,19"), "0,2,4-9,11,19");
        assert_eq!(merged("0,19", "1-18"), "0-19");
        assert_eq!(
            Indexes::parse("0-9", 10).overlap(&Indexes::parse("1,3-4,8", 10)),
            4
        );
        assert_eq!(
            Indexes::parse("2-3", 10).overlap(&Indexes::parse("0,5", 10)),
            0
        );
    }

    /// `matchSuccessPolicy` as success_policy_test.go.
    #[test]
    fn success_policy_matches_as_upstream() {
        let policy = |rules: Value| -> SuccessPolicy { typed(&json!({"rules": rules})) };
        let m = |rules: Value, succeeded: &str| {
            match_success_policy(Some(&policy(rules)), 10, &Indexes::parse(succeeded, 10))
        };
        let at0 = Some("Matched rules at index 0".to_string());
        // succeededIndexes all succeeded
        assert_eq!(m(json!([{"succeededIndexes": "0-2"}]), "0-3"), at0);
        assert_eq!(m(json!([{"succeededIndexes": "0-2"}]), "0,1"), None);
        // succeededCount of them
        assert_eq!(
            m(
                json!([{"succeededIndexes": "0-3", "succeededCount": 2}]),
                "1,3"
            ),
            at0
        );
        assert_eq!(
            m(
                json!([{"succeededIndexes": "0-3", "succeededCount": 2}]),
                "3-5"
            ),
            None
        );
        // succeededCount alone
        assert_eq!(m(json!([{"succeededCount": 2}]), "5,9"), at0);
        assert_eq!(m(json!([{"succeededCount": 3}]), "5,9"), None);
        // the first rule met decides; a rule whose indexes do not parse is skipped
        assert_eq!(
            m(
                json!([{"succeededIndexes": "x"}, {"succeededIndexes": "7"}, {"succeededCount": 1}]),
                "7"
            ),
            Some("Matched rules at index 1".to_string())
        );
        // nothing succeeded, or no policy
        assert_eq!(m(json!([{"succeededCount": 0}]), ""), None);
        assert_eq!(
            match_success_policy(None, 10, &Indexes::parse("0-9", 10)),
            None
        );
    }

    /// `backoffLimitPerIndex` 1: the index's first failure keeps its pod's finalizer until the
    /// replacement (`job-index-failure-count: 1`) exists, then it is counted; the
    /// replacement's failure fails the index (`failedIndexes`), which is not run again; once
    /// the other index succeeds the Job fails with `FailedIndexes`.
    #[test]
    fn backoff_limit_per_index_fails_indexes_then_the_job() {
        let mut j = per_index_job(json!({"completionMode": "Indexed", "completions": 2,
            "parallelism": 2, "backoffLimitPerIndex": 1}));
        assert_eq!(j["spec"]["backoffLimit"], i32::MAX);
        let failed0 = ix_pod("a", 0, "Failed", "2026-01-01T00:00:10Z", Some(0));
        let running1 = ix_pod("b", 1, "Running", "", Some(0));
        let now = t("2026-01-01T00:01:00Z");
        let p = plan(&j, &[failed0.clone(), running1.clone()], now);
        let c = creates(&p);
        assert_eq!(c.len(), 1, "{:?}", p.actions);
        assert_eq!(c[0]["metadata"]["annotations"][INDEX_KEY], "0");
        assert_eq!(
            c[0]["metadata"]["annotations"][INDEX_FAILURE_COUNT_KEY],
            "1"
        );
        assert!(c[0]["metadata"]["annotations"]
            .get(INDEX_IGNORED_FAILURE_COUNT_KEY)
            .is_none());
        assert!(!finalizer_removed(&p, "a"), "held for the replacement");
        let st = status(&p).unwrap();
        assert_eq!(st["failedIndexes"], "");
        assert!(
            st["uncountedTerminatedPods"].get("failed").is_none(),
            "{st}"
        );
        j["status"] = st;

        // the replacement exists: the failed pod is counted and released
        let replacement = ix_pod("c", 0, "Running", "", Some(1));
        let p = plan(
            &j,
            &[failed0.clone(), running1.clone(), replacement.clone()],
            now,
        );
        assert!(finalizer_removed(&p, "a"));
        assert!(creates(&p).is_empty());
        let st = status(&p).unwrap();
        assert_eq!(st["uncountedTerminatedPods"]["failed"], json!(["uid-a"]));
        j["status"] = st;
        j["status"]["uncountedTerminatedPods"] = json!({});
        j["status"]["failed"] = json!(1);

        // the replacement fails at the limit: index 0 failed, not replaced
        let mut gone_a = failed0.clone();
        gone_a["metadata"]["finalizers"] = json!([]);
        let failed_again = ix_pod("c", 0, "Failed", "2026-01-01T00:00:50Z", Some(1));
        let p = plan(
            &j,
            &[gone_a.clone(), running1.clone(), failed_again.clone()],
            now,
        );
        assert!(creates(&p).is_empty(), "{:?}", p.actions);
        assert!(finalizer_removed(&p, "c"));
        let st = status(&p).unwrap();
        assert_eq!(st["failedIndexes"], "0");
        assert!(condition_of(&st, "FailureTarget").is_none(), "{st}");
        j["status"] = st;
        j["status"]["uncountedTerminatedPods"] = json!({});
        j["status"]["failed"] = json!(2);

        // index 1 succeeds: every index succeeded or failed → FailedIndexes
        let mut gone_c = failed_again.clone();
        gone_c["metadata"]["finalizers"] = json!([]);
        let done1 = ix_pod("b", 1, "Succeeded", "2026-01-01T00:00:55Z", Some(0));
        let p = plan(&j, &[gone_a, gone_c.clone(), done1.clone()], now);
        let st = status(&p).unwrap();
        let ft = condition_of(&st, "FailureTarget").unwrap();
        assert_eq!(ft["reason"], "FailedIndexes");
        assert_eq!(ft["message"], "Job has failed indexes");
        assert_eq!(st["failedIndexes"], "0");
    }

    /// `maxFailedIndexes`: past it the Job fails with `MaxFailedIndexesExceeded` and its
    /// running pods are deleted; a `FailIndex` rule fails an index at its first failure; an
    /// `Ignore`d failure goes to the replacement's ignored-failure count.
    #[test]
    fn max_failed_indexes_and_fail_index_rules() {
        let rules = json!([
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]);
        let j = per_index_job(json!({"completionMode": "Indexed", "completions": 4,
            "parallelism": 2, "backoffLimitPerIndex": 5, "maxFailedIndexes": 0,
            "podFailurePolicy": {"rules": rules}}));
        assert!(
            validate_job(&j, None).is_empty(),
            "{:?}",
            validate_job(&j, None)
        );
        let now = t("2026-01-01T00:01:00Z");
        // exit 3, ignored: the replacement carries failure 0, ignored 1
        let ignored = failed_pod("a", &[("c", 3)], &[], json!([]));
        let mut ignored = ignored;
        ignored["metadata"]["annotations"] = json!({INDEX_KEY: "0", INDEX_FAILURE_COUNT_KEY: "0"});
        let running1 = ix_pod("b", 1, "Running", "", Some(0));
        let p = plan(&j, &[ignored.clone(), running1.clone()], now);
        let c = creates(&p);
        assert_eq!(c.len(), 1, "{:?}", p.actions);
        assert_eq!(
            c[0]["metadata"]["annotations"][INDEX_FAILURE_COUNT_KEY],
            "0"
        );
        assert_eq!(
            c[0]["metadata"]["annotations"][INDEX_IGNORED_FAILURE_COUNT_KEY],
            "1"
        );
        assert_eq!(status(&p).unwrap()["failedIndexes"], "");
        // exit 42 on index 1: failed at once, over maxFailedIndexes 0: the Job fails and
        // the running pod of index 0 is deleted
        let mut failed1 = failed_pod("b", &[("c", 42)], &[], json!([]));
        failed1["metadata"]["annotations"] = json!({INDEX_KEY: "1", INDEX_FAILURE_COUNT_KEY: "0"});
        let running0 = ix_pod("d", 0, "Running", "", Some(0));
        let p = plan(&j, &[failed1, running0], now);
        assert!(creates(&p).is_empty());
        assert_eq!(deleted(&p), ["d"]);
        let st = status(&p).unwrap();
        assert_eq!(st["failedIndexes"], "1");
        let ft = condition_of(&st, "FailureTarget").unwrap();
        assert_eq!(ft["reason"], "MaxFailedIndexesExceeded");
        assert_eq!(
            ft["message"],
            "Job has exceeded the specified maximal number of failed indexes"
        );
        assert_eq!(
            st["uncountedTerminatedPods"]["failed"],
            json!(["uid-b", "uid-d"])
        );
    }

    /// Each index has its own back-off (`getRemainingTimePerIndex`): the failures so far, plus
    /// one, from the last failed pod's finish; the Job's global back-off does not apply.
    #[test]
    fn indexes_back_off_on_their_own() {
        let j = per_index_job(json!({"completionMode": "Indexed", "completions": 2,
            "parallelism": 2, "backoffLimitPerIndex": 3}));
        // index 0 failed twice before (10 s × 2² = 40 s), index 1 never
        let failed0 = ix_pod("a", 0, "Failed", "2026-01-01T00:00:10Z", Some(2));
        let p = plan(
            &j,
            std::slice::from_ref(&failed0),
            t("2026-01-01T00:00:20Z"),
        );
        let c = creates(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["metadata"]["annotations"][INDEX_KEY], "1");
        assert_eq!(
            c[0]["metadata"]["annotations"][INDEX_FAILURE_COUNT_KEY],
            "0"
        );
        // only index 0 left: it waits the rest of its 40 s
        let running1 = ix_pod("b", 1, "Running", "", Some(0));
        let p = plan(
            &j,
            &[failed0.clone(), running1.clone()],
            t("2026-01-01T00:00:20Z"),
        );
        assert!(creates(&p).is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
        let p = plan(&j, &[failed0, running1], t("2026-01-01T00:00:50Z"));
        let c = creates(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0]["metadata"]["annotations"][INDEX_FAILURE_COUNT_KEY],
            "3"
        );
    }

    /// Indexes back off on their own: one whose back-off is over is created while another
    /// still waits (`getPodCreationInfoForIndependentIndexes` returns the ready ones and no
    /// wait); once none is ready, the shortest wait is the requeue.
    #[test]
    fn ready_indexes_are_created_while_others_wait() {
        let j = per_index_job(json!({"completionMode": "Indexed", "completions": 3,
            "parallelism": 3, "backoffLimitPerIndex": 3}));
        // index 0 failed once (10 s), index 1 three times (10 s × 2² = 40 s), index 2 runs
        let failed0 = ix_pod("a", 0, "Failed", "2026-01-01T00:00:10Z", Some(0));
        let failed1 = ix_pod("b", 1, "Failed", "2026-01-01T00:00:10Z", Some(2));
        let running2 = ix_pod("c", 2, "Running", "", Some(0));
        let pods = [failed0, failed1, running2];
        let p = plan(&j, &pods, t("2026-01-01T00:00:25Z"));
        let c = creates(&p);
        assert_eq!(c.len(), 1, "{:?}", p.actions);
        assert_eq!(c[0]["metadata"]["annotations"][INDEX_KEY], "0");
        assert_eq!(
            c[0]["metadata"]["annotations"][INDEX_FAILURE_COUNT_KEY],
            "1"
        );
        assert_eq!(p.requeue_after, None);
        // earlier, neither is ready: the shortest wait (index 0's 5 s)
        let p = plan(&j, &pods, t("2026-01-01T00:00:15Z"));
        assert!(creates(&p).is_empty(), "{:?}", p.actions);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(5)));
        // later, both are
        let p = plan(&j, &pods, t("2026-01-01T00:00:50Z"));
        let ixs: Vec<Value> = creates(&p)
            .iter()
            .map(|c| c["metadata"]["annotations"][INDEX_KEY].clone())
            .collect();
        assert_eq!(ixs, [json!("0"), json!("1")]);
    }

    /// A failed pod whose finalizer waits for its index's replacement is a failure already
    /// (syncJob's `nonIgnoredFailedPodsCount(newFailedPods)`): with `backoffLimit` 0 it fails
    /// the Job, and is released, rather than being replaced.
    #[test]
    fn a_held_failure_counts_toward_the_backoff_limit() {
        let j = per_index_job(json!({"completionMode": "Indexed", "completions": 2,
            "parallelism": 2, "backoffLimit": 0, "backoffLimitPerIndex": 1}));
        assert!(validate_job(&j, None).is_empty());
        let failed0 = ix_pod("a", 0, "Failed", "2026-01-01T00:00:10Z", Some(0));
        let mut running1 = ix_pod("b", 1, "Running", "", Some(0));
        running1["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        let p = plan(&j, &[failed0, running1], t("2026-01-01T00:01:00Z"));
        assert!(creates(&p).is_empty(), "{:?}", p.actions);
        assert_eq!(deleted(&p), ["b"]);
        assert!(finalizer_removed(&p, "a"));
        let st = status(&p).unwrap();
        let ft = condition_of(&st, "FailureTarget").expect("FailureTarget");
        assert_eq!(ft["reason"], "BackoffLimitExceeded");
        assert_eq!(
            st["uncountedTerminatedPods"]["failed"],
            json!(["uid-b", "uid-a"])
        );
        // the deleted ready pod is neither active nor ready (`ready -= deletedReady`): the
        // status passes the status strategy
        assert_eq!((st.get("active"), &st["ready"]), (None, &json!(0)));
        let mut written = j.clone();
        written["status"] = st;
        assert_eq!(validate_job_status_update(&written, &j), vec![]);
    }

    /// syncJob looks at an existing `SuccessCriteriaMet` before an existing `FailureTarget`:
    /// with both, the Job completes.
    #[test]
    fn success_criteria_met_wins_over_failure_target() {
        let mut j = job(json!({"completions": 1}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {},
            "succeeded": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"},
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods"}]});
        assert_eq!(
            conditions_of(&plan(&j, &[], t("2026-01-01T00:00:20Z")), &j),
            [
                "FailureTarget=True",
                "SuccessCriteriaMet=True",
                "Complete=True"
            ]
        );
    }

    /// A `successPolicy` met: `SuccessCriteriaMet` (reason `SuccessPolicy`), the remaining
    /// pods deleted and released without counting as failures, then `Complete` with the same
    /// reason and message.
    #[test]
    fn success_policy_completes_the_job_early() {
        let mut j = per_index_job(json!({"completionMode": "Indexed", "completions": 3,
            "parallelism": 3, "successPolicy": {"rules": [{"succeededIndexes": "0"}]}}));
        assert!(
            validate_job(&j, None).is_empty(),
            "{:?}",
            validate_job(&j, None)
        );
        let now = t("2026-01-01T00:01:00Z");
        let done0 = ix_pod("a", 0, "Succeeded", "2026-01-01T00:00:30Z", None);
        let r1 = ix_pod("b", 1, "Running", "", None);
        let r2 = ix_pod("c", 2, "Running", "", None);
        let p = plan(&j, &[done0.clone(), r1.clone(), r2.clone()], now);
        assert_eq!(deleted(&p), ["b", "c"]);
        assert!(creates(&p).is_empty());
        let st = status(&p).unwrap();
        let met = condition_of(&st, "SuccessCriteriaMet").unwrap();
        assert_eq!(met["reason"], "SuccessPolicy");
        assert_eq!(met["message"], "Matched rules at index 0");
        assert!(condition_of(&st, "Complete").is_none());
        assert!(
            st["uncountedTerminatedPods"].get("failed").is_none(),
            "{st}"
        );
        assert!(finalizer_removed(&p, "b") && finalizer_removed(&p, "c"));
        // once the pods are gone and counted: Complete
        j["status"] = st;
        j["status"]["uncountedTerminatedPods"] = json!({});
        j["status"]["completedIndexes"] = json!("0");
        j["status"]["succeeded"] = json!(1);
        let mut gone0 = done0;
        gone0["metadata"]["finalizers"] = json!([]);
        let p = plan(&j, &[gone0], now);
        let st = status(&p).unwrap();
        let complete = condition_of(&st, "Complete").unwrap();
        assert_eq!(complete["reason"], "SuccessPolicy");
        assert_eq!(complete["message"], "Matched rules at index 0");
        assert!(st["completionTime"].is_string());
        assert!(st.get("failed").is_none());
    }

    /// `spec.managedBy` naming another controller: the Job and its pods are left alone
    /// (`managedByExternalController`), only its TTL applies; the built-in name is synced.
    #[test]
    fn a_job_managed_elsewhere_is_left_alone() {
        let mut j =
            job(json!({"managedBy": "example.com/other", "parallelism": 2, "completions": 2}));
        let failed = pod("a", "Failed", true, "2026-01-01T00:00:10Z");
        let p = plan(&j, std::slice::from_ref(&failed), t("2026-01-01T00:01:00Z"));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        j["spec"]["ttlSecondsAfterFinished"] = json!(0);
        j["status"] = json!({"conditions": [{"type": "Complete", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:30Z"}]});
        let p = plan(&j, std::slice::from_ref(&failed), t("2026-01-01T00:01:00Z"));
        assert_eq!(deleted(&p), ["pi"]);
        let j = job(json!({"managedBy": JOB_CONTROLLER_NAME, "parallelism": 2, "completions": 2}));
        assert_eq!(creates(&plan(&j, &[], t("2026-01-01T00:01:00Z"))).len(), 2);
    }

    /// `validateJobSpec`'s `backoffLimitPerIndex`, `maxFailedIndexes`, `managedBy` and
    /// `successPolicy` checks and `ValidateJobSpecUpdate`'s immutable fields, with upstream's
    /// paths and texts.
    #[test]
    fn per_index_success_policy_and_managed_by_are_validated_as_upstream() {
        let ix = |extra: Value| {
            let mut spec = json!({"completionMode": "Indexed", "completions": 5, "parallelism": 2});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            texts(spec)
        };
        assert!(ix(json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 5,
            "successPolicy": {"rules": [{"succeededIndexes": "0,2-4", "succeededCount": 4}]},
            "managedBy": "example.com/custom-controller"}))
        .is_empty());
        assert_eq!(
            texts(json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 1})),
            [
                "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
                "spec.maxFailedIndexes: Invalid value: 1: requires indexed completion mode",
            ]
        );
        assert_eq!(
            ix(json!({"backoffLimitPerIndex": -1, "maxFailedIndexes": 6})),
            [
                "spec.backoffLimitPerIndex: Invalid value: -1: must be greater than or equal to 0",
                "spec.maxFailedIndexes: Invalid value: 6: must be less than or equal to completions",
            ]
        );
        assert_eq!(
            ix(json!({"maxFailedIndexes": 1})),
            ["spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"]
        );
        let mut high = json!({"completionMode": "Indexed", "completions": 200_000,
            "parallelism": 20_000, "backoffLimitPerIndex": 1});
        assert_eq!(
            texts(high.clone()),
            [
                "spec.maxFailedIndexes: Required value: must be specified when completions is above 100000",
                "spec.parallelism: Invalid value: 20000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
            ]
        );
        high["parallelism"] = json!(1);
        high["maxFailedIndexes"] = json!(100_001);
        assert_eq!(
            texts(high),
            [
                "spec.maxFailedIndexes: Invalid value: 100001: must be less than or equal to 100000",
                "spec.maxFailedIndexes: Invalid value: 100001: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
            ]
        );
        // managedBy
        assert_eq!(
            texts(json!({"managedBy": "no-slash"})),
            ["spec.managedBy: Invalid value: \"no-slash\": must be a domain-prefixed path (such as \"acme.io/foo\")"]
        );
        assert_eq!(
            texts(json!({"managedBy": "Example.com/a b"})),
            [
                format!("spec.managedBy: Invalid value: \"Example.com\": {}", crate::admission::DNS1123_SUBDOMAIN_MSG),
                "spec.managedBy: Invalid value: \"a b\": Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')".to_string(),
            ]
        );
        let long = format!("example.com/{}", "a".repeat(60));
        assert_eq!(
            texts(json!({"managedBy": long})),
            ["spec.managedBy: Too long: may not be more than 63 bytes"]
        );
        // successPolicy
        let sp = |rules: Value| ix(json!({"successPolicy": {"rules": rules}}));
        assert_eq!(
            texts(json!({"successPolicy": {"rules": [{"succeededCount": 1}]}})),
            ["spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: requires indexed completion mode"]
        );
        assert_eq!(
            sp(json!([])),
            ["spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified"]
        );
        assert_eq!(
            sp(json!([{}, {"succeededIndexes": "0-1-2"}, {"succeededIndexes": "3,1"},
                {"succeededIndexes": "2-9"}, {"succeededIndexes": "x"}, {"succeededIndexes": "2-2"},
                {"succeededCount": 6}, {"succeededIndexes": "1,3", "succeededCount": 3},
                {"succeededCount": -1}])),
            [
                "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
                "spec.successPolicy.rules[1].succeededIndexes: Invalid value: \"0-1-2\": error parsing succeededIndexes: the fragment \"0-1-2\" violates the requirement that an index interval can have at most two parts separated by '-'",
                "spec.successPolicy.rules[2].succeededIndexes: Invalid value: \"3,1\": error parsing succeededIndexes: non-increasing order, previous: 3, current: 1",
                "spec.successPolicy.rules[3].succeededIndexes: Invalid value: \"2-9\": error parsing succeededIndexes: too large index: \"9\"",
                "spec.successPolicy.rules[4].succeededIndexes: Invalid value: \"x\": error parsing succeededIndexes: cannot convert string to integer for index: \"x\"",
                "spec.successPolicy.rules[5].succeededIndexes: Invalid value: \"2-2\": error parsing succeededIndexes: non-increasing order, previous: 2, current: 2",
                "spec.successPolicy.rules[6].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)",
                "spec.successPolicy.rules[7].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)",
                "spec.successPolicy.rules[8].succeededCount: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let rule = json!({"succeededCount": 1});
        assert_eq!(
            sp(json!(vec![rule; 21])),
            ["spec.successPolicy.rules: Too many: 21: must have at most 20 items"]
        );
        // immutable on update
        let old = job(
            json!({"completionMode": "Indexed", "completions": 5, "parallelism": 2,
            "backoffLimitPerIndex": 1}),
        );
        let mut new = old.clone();
        new["spec"]["backoffLimitPerIndex"] = json!(2);
        new["spec"]["managedBy"] = json!("example.com/x");
        new["spec"]["successPolicy"] = json!({"rules": [{"succeededCount": 1}]});
        let t: Vec<String> = validate_job(&new, Some(&old))
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(
            t,
            [
                "spec.backoffLimitPerIndex: Invalid value: 2: field is immutable",
                "spec.managedBy: Invalid value: \"example.com/x\": field is immutable",
                "spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: field is immutable",
            ]
        );
        // a removed field is shown as `field.Invalid` prints a nil value
        let mut managed = old.clone();
        managed["spec"]["managedBy"] = json!("example.com/x");
        let t: Vec<String> = validate_job(&old, Some(&managed))
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(
            t,
            ["spec.managedBy: Invalid value: \"null\": field is immutable"]
        );
        // the template of a running Job: quantities compare by value (`1` is `1000m`)
        let mut old = job(json!({}));
        old["spec"]["template"]["spec"]["containers"][0]["resources"] =
            json!({"limits": {"cpu": "1"}});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
            json!("1000m");
        assert!(validate_job(&new, Some(&old)).is_empty());
        new["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("2");
        let t: Vec<String> = validate_job(&new, Some(&old))
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(
            t,
            ["spec.template: Invalid value: core.PodTemplateSpec{…}: field is immutable"]
        );
    }

    /// `WarningsForJobSpec`: an Indexed Job past 10^5 completions with a parallelism past 10^4.
    #[test]
    fn indexed_jobs_past_the_soft_limits_are_warned_about() {
        let msg = "In Indexed Jobs with a number of completions higher than 10^5 and a parallelism higher than 10^4, Kubernetes might not be able to track completedIndexes when a big number of indexes fail";
        let spec = |mode: &str, completions: i64, parallelism: i64| {
            json!({"spec": {"completionMode": mode, "completions": completions,
                "parallelism": parallelism}})
        };
        assert_eq!(
            job_spec_warnings(&spec("Indexed", 100_001, 10_001), "/spec", "spec"),
            [format!("spec: {msg}")]
        );
        for (mode, c, p) in [
            ("Indexed", 100_000, 10_001),
            ("Indexed", 100_001, 10_000),
            ("NonIndexed", 100_001, 10_001),
        ] {
            assert!(job_spec_warnings(&spec(mode, c, p), "/spec", "spec").is_empty());
        }
        let cj = json!({"spec": {"jobTemplate": spec("Indexed", 200_000, 20_000)}});
        assert_eq!(
            job_spec_warnings(&cj, "/spec/jobTemplate/spec", "spec.jobTemplate.spec"),
            [format!("spec.jobTemplate.spec: {msg}")]
        );
    }

    /// `ValidateJobStatusUpdate` with the options of the status strategy (`JobManagedBy` on):
    /// each rule, and a rule on fields left unchanged not applied.
    #[test]
    fn the_status_is_validated_as_upstream() {
        let check = |spec: Value, old: Value, new: Value| -> Vec<String> {
            let mut o = job(spec);
            o["status"] = old;
            let mut n = o.clone();
            n["status"] = new;
            validate_job_status_update(&n, &o)
                .iter()
                .map(Cause::text)
                .collect()
        };
        let cond = |ty: &str| json!({"type": ty, "status": "True"});
        let start = "2026-01-01T00:00:10Z";
        let per_index = json!({"completionMode": "Indexed", "completions": 4, "parallelism": 2,
            "backoffLimitPerIndex": 1});
        // the Job controller's own writes pass
        assert!(check(
            json!({}),
            json!({}),
            json!({"startTime": start, "active": 1, "ready": 1,
            "terminating": 0, "uncountedTerminatedPods": {}})
        )
        .is_empty());
        assert!(check(
            json!({}),
            json!({"startTime": start, "succeeded": 1}),
            json!({"startTime": start, "succeeded": 1, "conditions": [cond("SuccessCriteriaMet"),
                cond("Complete")], "completionTime": "2026-01-01T00:00:20Z"})
        )
        .is_empty());
        // times stored with fractions or an offset are the same times re-encoded by the
        // controller (whole seconds, `Z`)
        assert!(check(
            json!({}),
            json!({"startTime": "2026-01-01T00:00:10.5+00:00", "succeeded": 1,
                "completionTime": "2026-01-01T01:00:20.25+01:00"}),
            json!({"startTime": start, "succeeded": 1,
                "completionTime": "2026-01-01T00:00:20Z"})
        )
        .is_empty());
        // failedIndexes
        assert_eq!(
            check(json!({"completions": 4}), json!({}), json!({"failedIndexes": "1"})),
            ["status.failedIndexes: Invalid value: \"1\": cannot set non-null failedIndexes when backoffLimitPerIndex is null"]
        );
        assert_eq!(
            check(per_index.clone(), json!({}), json!({"failedIndexes": "3,1"})),
            ["status.failedIndexes: Invalid value: \"3,1\": error parsing failedIndexes: non-increasing order, previous: 3, current: 1"]
        );
        assert_eq!(
            check(per_index.clone(), json!({}),
                json!({"completedIndexes": "0-2", "failedIndexes": "2,3"})),
            ["status.failedIndexes: Invalid value: \"2,3\": failedIndexes and completedIndexes overlap at index: 2"]
        );
        assert_eq!(
            check(json!({"completions": 4}), json!({}), json!({"completedIndexes": "1"})),
            ["status.completedIndexes: Invalid value: \"1\": cannot set non-empty completedIndexes when non-indexed completion mode"]
        );
        // Failed needs FailureTarget, Complete SuccessCriteriaMet and a completion time
        assert_eq!(
            check(json!({}), json!({"startTime": start}),
                json!({"startTime": start, "conditions": [cond("Failed")]})),
            ["status.conditions: Invalid value: cannot set Failed=True condition without the FailureTarget=true condition"]
        );
        assert_eq!(
            check(json!({}), json!({"startTime": start}),
                json!({"startTime": start, "conditions": [cond("Complete")]})),
            [
                "status.completionTime: Required value: completionTime is required for Complete jobs",
                "status.conditions: Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
            ]
        );
        // finished: no active, ready over active, start time, uncounted pods, terminating
        assert_eq!(
            check(json!({}), json!({"active": 2, "ready": 1}),
                json!({"active": 1, "ready": 2, "terminating": 1,
                    "uncountedTerminatedPods": {"failed": ["a"]},
                    "conditions": [cond("FailureTarget"), cond("Failed")]})),
            [
                "status.active: Invalid value: 1: active>0 is invalid for finished job",
                "status.startTime: Required value: startTime is required for finished job",
                "status.uncountedTerminatedPods: Invalid value: batch.UncountedTerminatedPods{Succeeded:[]types.UID(nil), Failed:[]types.UID{\"a\"}}: uncountedTerminatedPods needs to be empty for finished job",
                "status.terminating: Invalid value: 1: terminating>0 is invalid for finished job",
                "status.ready: Invalid value: 2: cannot set more ready pods than active",
            ]
        );
        // ... except for a suspended Job of no completions, which finishes without starting
        assert!(check(
            json!({"completions": 0, "suspend": true}),
            json!({}),
            json!({"conditions": [cond("SuccessCriteriaMet"), cond("Complete")],
                "completionTime": start})
        )
        .is_empty());
        // SuccessCriteriaMet with FailureTarget; Complete with FailureTarget
        assert_eq!(
            check(json!({}), json!({}),
                json!({"conditions": [cond("FailureTarget"), cond("SuccessCriteriaMet")]})),
            ["status.conditions: Invalid value: cannot set SuccessCriteriaMet=True and FailureTarget=true conditions"]
        );
        // counters, terminal conditions, completion and start times
        assert_eq!(
            check(json!({}),
                json!({"startTime": start, "failed": 2, "succeeded": 1, "completionTime": start,
                    "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}),
                json!({"startTime": "2026-01-01T00:00:11Z", "failed": 1, "succeeded": 0,
                    "completionTime": "2026-01-01T00:00:05Z",
                    "conditions": [cond("SuccessCriteriaMet")]})),
            [
                "status.completionTime: Invalid value: 2026-01-01 00:00:05 +0000 UTC: cannot set completionTime when there is no Complete=True condition",
                "status.completionTime: Invalid value: 2026-01-01 00:00:05 +0000 UTC: completionTime cannot be set before startTime",
                "status.conditions: Invalid value: cannot disable the terminal Complete=True condition",
                "status.failed: Invalid value: 1: cannot decrease the failed counter",
                "status.succeeded: Invalid value: 0: cannot decrease the succeeded counter",
                "status.completionTime: Invalid value: 2026-01-01 00:00:05 +0000 UTC: completionTime cannot be mutated",
                "status.startTime: Required value: startTime cannot be removed for unsuspended job",
            ]
        );
        // an Indexed Job scaled down (completions = parallelism) may count fewer successes
        let elastic = json!({"completionMode": "Indexed", "completions": 2, "parallelism": 2});
        assert!(check(elastic, json!({"succeeded": 3}), json!({"succeeded": 2})).is_empty());
        // a rule on fields this update leaves alone is not applied: a Failed Job without
        // FailureTarget (written before the rule) may still be updated otherwise
        let legacy = json!({"startTime": start, "failed": 1, "conditions": [cond("Failed")]});
        let mut more = legacy.clone();
        more["failed"] = json!(2);
        assert!(check(json!({}), legacy, more).is_empty());
    }

    /// The registry generates a Job's selector on create only (`PrepareForCreate`): an update
    /// that drops it is refused, not regenerated.
    #[test]
    fn the_selector_is_generated_on_create_only() {
        let old = job(json!({}));
        let mut new = old.clone();
        new["spec"].as_object_mut().unwrap().remove("selector");
        generate_selector(&mut new, false);
        assert!(new["spec"].get("selector").is_none());
        let t: Vec<String> = validate_job(&new, Some(&old))
            .iter()
            .map(Cause::text)
            .collect();
        assert!(
            t.contains(&"spec.selector: Required value".to_string()),
            "{t:?}"
        );
        generate_selector(&mut new, true);
        assert_eq!(new["spec"]["selector"], old["spec"]["selector"]);
    }

    /// `SetDefaults_Job` copies the template's labels onto a Job without labels at decode,
    /// before mutating admission: a label a webhook adds then joins them instead of keeping
    /// them off, and the labels the registry generates on create are not copied over them.
    #[test]
    fn a_jobs_labels_default_to_its_templates_at_decode() {
        let r = jobs_r();
        let body = || {
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j", "namespace": "default", "uid": "u-1"},
                "spec": {"template": {"metadata": {"labels": {"app": "x"}},
                    "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}]}}}})
        };
        let mut obj = body();
        assert_eq!(crate::admission::decode(r, &mut obj, true, false), None);
        assert_eq!(obj["metadata"]["labels"], json!({"app": "x"}));
        // a mutating webhook adds a label, then the strategy prepares the create
        obj["metadata"]["labels"]["team"] = json!("t");
        crate::admission::prepare(r, &mut obj, true);
        assert_eq!(obj["metadata"]["labels"], json!({"app": "x", "team": "t"}));
        assert_eq!(
            obj["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "j"
        );
        // without a webhook the Job keeps the template's labels as the client sent them
        let mut obj = body();
        assert_eq!(crate::admission::decode(r, &mut obj, true, false), None);
        crate::admission::prepare(r, &mut obj, true);
        assert_eq!(obj["metadata"]["labels"], json!({"app": "x"}));
    }

    #[test]
    fn suspend_removes_pods_and_sets_the_condition() {
        let mut j = job(json!({"completions": 1, "suspend": true}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "active": 1});
        let p = plan(
            &j,
            &[pod("a", "Running", true, "")],
            t("2026-01-01T00:00:05Z"),
        );
        assert!(creates(&p).is_empty());
        assert!(p.actions.iter().any(|a| matches!(a, Action::Delete { .. })));
        let st = status(&p).unwrap();
        assert!(st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Suspended" && c["reason"] == "JobSuspended"));
        assert!(st.get("startTime").is_none());
        // deleteJobPods: the finalizer goes before the delete, so the pod is never counted
        let patch = p
            .actions
            .iter()
            .position(|a| matches!(a, Action::Patch { name, patch, .. } if name == "a" && patch["metadata"]["finalizers"] == json!([])));
        let delete = p
            .actions
            .iter()
            .position(|a| matches!(a, Action::Delete { name, .. } if name == "a"));
        assert!(patch.unwrap() < delete.unwrap(), "{p:?}");
        assert_eq!(st["uncountedTerminatedPods"], json!({}));
        let mut j2 = j.clone();
        j2["status"] = st;
        let mut going = pod("a", "Running", false, "");
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:05Z");
        let st2 = status(&plan(&j2, &[going], t("2026-01-01T00:00:06Z"))).unwrap_or_default();
        assert!(st2.get("failed").is_none_or(Value::is_null), "{st2}");
    }

    /// `syncJob` evaluates `getFailJobMessage` and the backoff limit whether the Job is
    /// suspended or not (only `pastActiveDeadline` waits while suspended): a suspended Job
    /// whose failed pod a `FailJob` rule matches, or past its backoff limit, fails.
    #[test]
    fn a_suspended_job_fails_by_its_policy_and_backoff_limit() {
        let now = t("2026-01-01T00:00:20Z");
        let rules =
            json!([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]);
        let mut j = policy_job(rules, 6);
        j["spec"]["suspend"] = json!(true);
        let p = plan(&j, &[failed_pod("a", &[("c", 42)], &[], json!([]))], now);
        let st = status(&p).unwrap();
        let ft = condition_of(&st, "FailureTarget").expect("FailureTarget");
        assert_eq!(ft["reason"], "PodFailurePolicy", "{st}");
        assert!(condition_of(&st, "Suspended").is_none(), "{st}");
        // backoffLimit 0 and one failure counted
        let mut j = job(json!({"completions": 1, "backoffLimit": 0, "suspend": true,
            "activeDeadlineSeconds": 5}));
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {}, "failed": 1});
        let st = status(&plan(&j, &[], now)).unwrap();
        let ft = condition_of(&st, "FailureTarget").expect("FailureTarget");
        assert_eq!(ft["reason"], "BackoffLimitExceeded", "{st}");
        // the deadline, past but suspended, is not
        j["spec"]["backoffLimit"] = json!(6);
        let st = status(&plan(&j, &[], now)).unwrap();
        assert!(condition_of(&st, "FailureTarget").is_none(), "{st}");
        assert_eq!(
            condition_of(&st, "Suspended").unwrap()["status"],
            "True",
            "{st}"
        );
    }

    #[test]
    fn ttl_deletes_the_finished_job() {
        let mut j = job(json!({"completions": 1, "ttlSecondsAfterFinished": 60}));
        j["status"] = json!({"succeeded": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:10Z",
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}]});
        let p = plan(&j, &[], t("2026-01-01T00:00:30Z"));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(40)));
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Delete { .. })));
        let p = plan(&j, &[], t("2026-01-01T00:01:10Z"));
        assert!(p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Delete { name, .. } if name == "pi")));
    }
}
