//! The Job controller (kubernetes `pkg/controller/job/job_controller.go`, 1.32 behaviour):
//! pods from the template up to `parallelism` until `completions` succeed, `NonIndexed` and
//! `Indexed` completion modes, `backoffLimit` with the pod-failure back-off, pods with
//! `restartPolicy: OnFailure` counting container restarts, `activeDeadlineSeconds`, `suspend`,
//! and `ttlSecondsAfterFinished` (pkg/controller/ttlafterfinished).
//!
//! Tracking with the `batch.kubernetes.io/job-tracking` finalizer as upstream
//! (`trackJobStatusAndRemoveFinalizers`): a finished pod's UID first goes to
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves to
//! `succeeded`/`failed`, so a pod is counted exactly once whatever fails in between. Terminating
//! pods count as failed (`podReplacementPolicy: TerminatingOrFailed`).
//!
//! With `JobManagedBy`/`JobPodReplacementPolicy` on (1.32 default) the terminal condition is
//! delayed (`delayTerminalCondition`): first `SuccessCriteriaMet` or `FailureTarget`, then
//! `Complete` or `Failed` once no pod is left running or terminating.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::informer::{Cached, Notice};
use super::kinds;
use super::queue::{self, Action, Object, Plan};
use super::reference_of;
use crate::errors::{ApiError, Cause};
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// The finalizer on every pod a Job creates (K132 api batch/v1 `JobTrackingFinalizer`).
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label with an Indexed Job pod's index (`JobCompletionIndexAnnotation`).
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// `DefaultJobPodFailureBackOff` (job_controller.go).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// `MaxJobPodFailureBackOff` (job_controller.go).
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
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

fn set_default(obj: &mut Value, pointer: &str, v: Value) {
    if obj.pointer(pointer).is_none_or(Value::is_null) {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        let parent_v = if parent.is_empty() {
            Some(obj)
        } else {
            obj.pointer_mut(parent)
        };
        if let Some(Value::Object(m)) = parent_v {
            m.insert(key.to_string(), v);
        }
    }
}

/// `SetDefaults_Job` (pkg/apis/batch/v1/defaults.go) and the selector the registry generates
/// (`generateSelector`, pkg/registry/batch/job/strategy.go).
pub fn default_job(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let has_c = obj
        .pointer("/spec/completions")
        .is_some_and(|v| !v.is_null());
    let has_p = obj
        .pointer("/spec/parallelism")
        .is_some_and(|v| !v.is_null());
    if !has_c && !has_p {
        obj["spec"]["completions"] = json!(1);
        obj["spec"]["parallelism"] = json!(1);
    }
    set_default(obj, "/spec/parallelism", json!(1));
    if obj
        .pointer("/spec/backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        set_default(obj, "/spec/backoffLimit", json!(i32::MAX));
    }
    set_default(obj, "/spec/backoffLimit", json!(6));
    set_default(obj, "/spec/completionMode", json!("NonIndexed"));
    set_default(obj, "/spec/suspend", json!(false));
    let policy = if obj.pointer("/spec/podFailurePolicy").is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(obj, "/spec/podReplacementPolicy", json!(policy));
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
    // the Job's labels default to the template's
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

/// Job fields the controller here does not act on: a request that sets them gets a warning
/// naming them (they are stored, and ignored).
pub const UNSUPPORTED_FIELDS: &[&str] = &[
    "podFailurePolicy",
    "successPolicy",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "managedBy",
];

/// Warnings for the Job spec at `path` (`spec` or `spec.jobTemplate.spec`) using fields of
/// [`UNSUPPORTED_FIELDS`].
pub fn unsupported_warnings(spec: &Value, path: &str) -> Vec<String> {
    UNSUPPORTED_FIELDS
        .iter()
        .filter(|f| spec.get(**f).is_some_and(|v| !v.is_null()))
        .map(|f| {
            format!("{path}.{f} is not supported by this server's Job controller and is ignored")
        })
        .collect()
}

/// `ValidateJob`/`ValidateJobSpecUpdate` (pkg/apis/batch/validation/validation.go), the parts
/// that apply here.
pub fn validate_job(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    for w in unsupported_warnings(obj.get("spec").unwrap_or(&Value::Null), "spec") {
        crate::warnings::add(w);
    }
    let mut c = validate_job_spec(obj.get("spec").unwrap_or(&Value::Null), "spec");
    c.extend(validate_selector(obj));
    if let Some(old) = old {
        for f in ["selector", "completionMode", "podFailurePolicy"] {
            let p = format!("/spec/{f}");
            if old.pointer(&p) != obj.pointer(&p) {
                c.push(Cause::invalid(
                    format!("spec.{f}"),
                    obj.pointer(&p).map(|v| v.to_string()).unwrap_or_default(),
                    "field is immutable",
                ));
            }
        }
        // the template may change only while the Job is suspended and has not started
        let suspended = obj.pointer("/spec/suspend") == Some(&json!(true));
        let started = old.pointer("/status/startTime").is_some();
        if (started || !suspended) && old.pointer("/spec/template") != obj.pointer("/spec/template")
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

/// The spec checks shared by Jobs and CronJob job templates (`validateJobSpec`).
pub fn validate_job_spec(spec: &Value, path: &str) -> Vec<Cause> {
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
    if let Some(n) = opt_i(spec, "/ttlSecondsAfterFinished") {
        if n < 0 {
            c.push(Cause::invalid(
                format!("{path}.ttlSecondsAfterFinished"),
                n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
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
    let rp = s(spec, "/template/spec/restartPolicy");
    if !matches!(rp, "OnFailure" | "Never") {
        c.push(Cause::not_supported(
            format!("{path}.template.spec.restartPolicy"),
            format!("{rp:?}"),
            &["OnFailure", "Never"],
        ));
    }
    match spec.pointer("/template/spec") {
        Some(ps) => {
            crate::admission::validate_pod_spec(ps, &format!("{path}.template.spec"), &mut c)
        }
        None => c.push(Cause::required(
            format!("{path}.template.spec.containers"),
            "",
        )),
    }
    c
}

fn go_map(v: Option<&Value>) -> String {
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

fn parse_time(v: &Value, p: &str) -> Option<Timestamp> {
    v.pointer(p)
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
}

fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn cond_true<'a>(job: &'a Value, ty: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

/// Whether the Job has a true `Complete` or `Failed` condition (`IsJobFinished`).
pub fn is_finished(job: &Value) -> bool {
    cond_true(job, "Complete").is_some() || cond_true(job, "Failed").is_some()
}

fn has_finalizer(p: &Value) -> bool {
    p.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|f| f == TRACKING_FINALIZER))
}

fn without_finalizer(p: &Value) -> Value {
    let fins: Vec<Value> = p
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|f| *f != TRACKING_FINALIZER)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    json!({"metadata": {"finalizers": fins, "resourceVersion": s(p, "/metadata/resourceVersion")}})
}

fn phase(p: &Value) -> &str {
    s(p, "/status/phase")
}

fn is_terminating(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_some()
        && !matches!(phase(p), "Succeeded" | "Failed")
}

/// `isPodFailed` with `podReplacementPolicy: TerminatingOrFailed`: failed, or being deleted
/// without having succeeded.
fn counts_as_failed(p: &Value) -> bool {
    phase(p) == "Failed" || is_terminating(p)
}

fn pod_index(p: &Value) -> Option<i64> {
    p.pointer("/metadata/annotations")
        .and_then(|a| a.get(INDEX_KEY))
        .and_then(Value::as_str)
        .and_then(|x| x.parse().ok())
}

fn finish_time(p: &Value) -> Option<Timestamp> {
    let cs = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let last = cs.and_then(|cs| {
        cs.iter()
            .filter_map(|c| parse_time(c, "/state/terminated/finishedAt"))
            .max()
    });
    last.or_else(|| parse_time(p, "/metadata/deletionTimestamp"))
        .or_else(|| parse_time(p, "/metadata/creationTimestamp"))
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

/// Parses `completedIndexes` (`"1,3-5"`).
pub fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Formats indexes as intervals (`orderedIntervals.String`).
pub fn format_indexes(ix: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = vec![];
    let mut it = ix.iter().peekable();
    while let Some(&a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&&(b + 1)) {
            b += 1;
            it.next();
        }
        out.push(if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    out.join(",")
}

fn condition(ty: &str, reason: &str, message: &str, now: Timestamp) -> Value {
    json!({
        "type": ty, "status": "True",
        "lastProbeTime": fmt_time(now), "lastTransitionTime": fmt_time(now),
        "reason": reason, "message": message,
    })
}

fn set_condition(conds: &mut Vec<Value>, c: Value) {
    let ty = s(&c, "/type").to_string();
    if let Some(old) = conds.iter_mut().find(|x| s(x, "/type") == ty) {
        if s(old, "/status") == s(&c, "/status") && s(old, "/reason") == s(&c, "/reason") {
            return;
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

fn new_pod(job: &Value, index: Option<i64>) -> Value {
    let name = s(job, "/metadata/name");
    let mut pod = json!({
        "metadata": job.pointer("/spec/template/metadata").cloned().unwrap_or(json!({})),
        "spec": job.pointer("/spec/template/spec").cloned().unwrap_or(json!({})),
    });
    let md = &mut pod["metadata"];
    if let Some(m) = md.as_object_mut() {
        m.remove("name");
        m.remove("namespace");
        m.remove("creationTimestamp");
    }
    md["generateName"] = json!(match index {
        Some(ix) => format!("{name}-{ix}-"),
        None => format!("{name}-"),
    });
    md["ownerReferences"] = json!([{
        "apiVersion": "batch/v1", "kind": "Job", "name": name,
        "uid": s(job, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true,
    }]);
    md["finalizers"] = json!([TRACKING_FINALIZER]);
    if let Some(ix) = index {
        if !md.get("annotations").is_some_and(Value::is_object) {
            md["annotations"] = json!({});
        }
        md["annotations"][INDEX_KEY] = json!(ix.to_string());
        if !md.get("labels").is_some_and(Value::is_object) {
            md["labels"] = json!({});
        }
        md["labels"][INDEX_KEY] = json!(ix.to_string());
        // addCompletionIndexEnvVariables, and the hostname of Indexed pods
        if pod.pointer("/spec/hostname").is_none() {
            pod["spec"]["hostname"] = json!(format!("{name}-{ix}"));
        }
        for list in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = pod["spec"].get_mut(list) {
                for c in cs {
                    if !c.get("env").is_some_and(Value::is_array) {
                        c["env"] = json!([]);
                    }
                    let env = c["env"].as_array_mut().expect("array");
                    if !env.iter().any(|e| s(e, "/name") == "JOB_COMPLETION_INDEX") {
                        env.push(
                            json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                                "apiVersion": "v1",
                                "fieldPath": format!("metadata.annotations['{INDEX_KEY}']"),
                            }}}),
                        );
                    }
                }
            }
        }
    }
    pod
}

/// What the controller decides for one Job given its pods (those it controls) and the time.
pub fn plan(job: &Value, pods_in: &[Value], now: Timestamp) -> Plan {
    let mut p = Plan::default();
    let ns = s(job, "/metadata/namespace").to_string();
    let name = s(job, "/metadata/name").to_string();
    let uid = s(job, "/metadata/uid");
    let pods: Vec<&Value> = pods_in
        .iter()
        .filter(|x| queue::controller_of(x, "Job").is_some_and(|(_, u)| u == uid))
        .collect();
    let remove_fin = |pod: &Value| Action::Patch {
        r: pods_r(),
        ns: ns.clone(),
        name: s(pod, "/metadata/name").to_string(),
        patch: without_finalizer(pod),
    };
    if job.pointer("/metadata/deletionTimestamp").is_some() {
        // the Job is going away: its pods are no longer tracked
        for pod in pods.iter().filter(|x| has_finalizer(x)) {
            p.actions.push(remove_fin(pod));
        }
        return p;
    }
    let spec = job.get("spec").cloned().unwrap_or(json!({}));
    let indexed = s(&spec, "/completionMode") == "Indexed";
    let completions = opt_i(&spec, "/completions");
    let parallelism = i(&spec, "/parallelism").max(0);
    let backoff_limit = opt_i(&spec, "/backoffLimit").unwrap_or(6);
    let suspend = spec.get("suspend") == Some(&json!(true));
    let old_status = job.get("status").cloned().unwrap_or(json!({}));
    let mut status = old_status.clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conds: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    // --- tracking: uncounted → finalizer removed → counted
    let set_of = |p: &str| -> Vec<String> {
        status
            .pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut unc_s = set_of("/uncountedTerminatedPods/succeeded");
    let mut unc_f = set_of("/uncountedTerminatedPods/failed");
    let mut succeeded = i(&status, "/succeeded");
    let mut failed = i(&status, "/failed");
    let mut completed_ix = parse_indexes(s(&status, "/completedIndexes"));
    let by_uid: HashMap<&str, &Value> = pods.iter().map(|x| (s(x, "/metadata/uid"), *x)).collect();
    // uncounted pods whose finalizer is gone (or that are gone) are counted now
    unc_s.retain(|u| match by_uid.get(u.as_str()) {
        Some(pod) if has_finalizer(pod) => true,
        other => {
            succeeded += 1;
            if let Some(ix) = other.and_then(|x| pod_index(x)) {
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
    let mut fin_removals = vec![];
    for pod in &pods {
        if !has_finalizer(pod) {
            continue;
        }
        let pu = s(pod, "/metadata/uid").to_string();
        let known = unc_s.contains(&pu) || unc_f.contains(&pu);
        if phase(pod) == "Succeeded" {
            if !known {
                unc_s.push(pu);
            }
            fin_removals.push(remove_fin(pod));
        } else if counts_as_failed(pod) {
            if !known {
                unc_f.push(pu);
            }
            fin_removals.push(remove_fin(pod));
        }
    }
    let tot_succeeded_ix: BTreeSet<i64> = completed_ix
        .iter()
        .copied()
        .chain(
            unc_s
                .iter()
                .filter_map(|u| by_uid.get(u.as_str()).and_then(|x| pod_index(x))),
        )
        .filter(|ix| completions.is_none_or(|c| *ix < c))
        .collect();
    let tot_succeeded = if indexed {
        tot_succeeded_ix.len() as i64
    } else {
        succeeded + unc_s.len() as i64
    };
    let tot_failed = failed + unc_f.len() as i64;

    let active: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|x| x.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|x| !matches!(phase(x), "Succeeded" | "Failed"))
        .collect();
    let terminating_n = pods.iter().filter(|x| is_terminating(x)).count() as i64;
    let mut deletes: Vec<&Value> = vec![];
    let mut creates: Vec<Value> = vec![];
    let mut events: Vec<(&'static str, &'static str, String)> = vec![];

    let finished = is_finished(job);
    let mut interim = cond_true(job, "FailureTarget")
        .map(|c| {
            (
                "Failed",
                s(c, "/reason").to_string(),
                s(c, "/message").to_string(),
            )
        })
        .or_else(|| {
            cond_true(job, "SuccessCriteriaMet").map(|c| {
                (
                    "Complete",
                    s(c, "/reason").to_string(),
                    s(c, "/message").to_string(),
                )
            })
        });
    let start = parse_time(&status, "/startTime");
    if !finished {
        if suspend {
            // suspended: no pods, the Suspended condition
            deletes.extend(active.iter().copied());
            if cond_true(job, "Suspended").is_none() {
                set_condition(
                    &mut conds,
                    condition("Suspended", "JobSuspended", "Job suspended", now),
                );
                events.push(("Normal", "Suspended", "Job suspended".into()));
            }
            if let Some(m) = status.as_object_mut() {
                m.remove("startTime");
            }
        } else {
            if conds
                .iter()
                .any(|c| s(c, "/type") == "Suspended" && s(c, "/status") == "True")
            {
                let mut c = condition("Suspended", "JobResumed", "Job resumed", now);
                c["status"] = json!("False");
                set_condition(&mut conds, c);
                events.push(("Normal", "Resumed", "Job resumed".into()));
            }
            let start = start.unwrap_or(now);
            if status.get("startTime").is_none() {
                status["startTime"] = json!(fmt_time(now));
            }
            if interim.is_none() {
                // pastBackoffLimitOnFailure: restarts of OnFailure pods count as failures
                let on_failure = s(&spec, "/template/spec/restartPolicy") == "OnFailure";
                let restarts: i64 = if on_failure {
                    active
                        .iter()
                        .map(|x| {
                            x.pointer("/status/containerStatuses")
                                .and_then(Value::as_array)
                                .map(|cs| cs.iter().map(|c| i(c, "/restartCount")).sum::<i64>())
                                .unwrap_or(0)
                        })
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
                let deadline = opt_i(&spec, "/activeDeadlineSeconds")
                    .map(|d| start + jiff::SignedDuration::from_secs(d));
                if tot_failed > backoff_limit || past_on_failure {
                    interim = Some((
                        "Failed",
                        "BackoffLimitExceeded".into(),
                        "Job has reached the specified backoff limit".into(),
                    ));
                } else if deadline.is_some_and(|d| now >= d) {
                    interim = Some((
                        "Failed",
                        "DeadlineExceeded".into(),
                        "Job was active longer than specified deadline".into(),
                    ));
                } else if let Some(d) = deadline {
                    let left = Duration::try_from(d.duration_since(now)).unwrap_or_default();
                    p.requeue_after = Some(left);
                }
                if let Some((_, reason, message)) = &interim {
                    set_condition(&mut conds, condition("FailureTarget", reason, message, now));
                }
            }
            if interim.is_none() {
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
                    .filter(|x| phase(x) == "Succeeded")
                    .filter_map(|x| finish_time(x))
                    .max();
                let failures: Vec<Timestamp> = pods
                    .iter()
                    .filter(|x| counts_as_failed(x))
                    .filter_map(|x| finish_time(x))
                    .filter(|t| last_success.is_none_or(|l| *t > l))
                    .collect();
                let remaining =
                    backoff_remaining(failures.len() as u32, failures.iter().max().copied(), now);
                if active.len() as i64 > want_active {
                    // too many: the newest go first (ActivePods ordering, simplified)
                    let mut extra: Vec<&Value> = active.clone();
                    extra.sort_by_key(|x| {
                        std::cmp::Reverse(s(x, "/metadata/creationTimestamp").to_string())
                    });
                    deletes.extend(extra.into_iter().take(active.len() - want_active as usize));
                } else if (active.len() as i64) < want_active && !done {
                    if !remaining.is_zero() {
                        p.requeue_after = Some(
                            p.requeue_after
                                .map_or(remaining, |r: Duration| r.min(remaining)),
                        );
                    } else if indexed {
                        let running: HashSet<i64> =
                            active.iter().filter_map(|x| pod_index(x)).collect();
                        let need = (want_active - active.len() as i64) as usize;
                        let c = completions.unwrap_or(0);
                        for ix in (0..c)
                            .filter(|ix| !tot_succeeded_ix.contains(ix) && !running.contains(ix))
                            .take(need)
                        {
                            creates.push(new_pod(job, Some(ix)));
                        }
                    } else {
                        for _ in active.len() as i64..want_active {
                            creates.push(new_pod(job, None));
                        }
                    }
                }
                if done {
                    deletes.extend(active.iter().copied());
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
            } else {
                // failing or succeeded: nothing may keep running
                deletes.extend(active.iter().copied());
            }
        }
    }
    let mut deleted_uids: HashSet<&str> = HashSet::new();
    deletes.retain(|x| deleted_uids.insert(s(x, "/metadata/uid")));
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
                    status["completionTime"] = json!(fmt_time(now));
                    events.push(("Normal", "Completed", "Job completed".into()));
                } else {
                    let r: &'static str = if reason == "DeadlineExceeded" {
                        "DeadlineExceeded"
                    } else {
                        "BackoffLimitExceeded"
                    };
                    events.push(("Warning", r, message.clone()));
                }
                became_finished = true;
            }
        }
    }
    // status
    let ready = active.iter().filter(|x| super::is_pod_ready(x)).count() as i64;
    let set_count = |st: &mut Value, k: &str, n: i64| {
        if n > 0 {
            st[k] = json!(n);
        } else if let Some(m) = st.as_object_mut() {
            m.remove(k);
        }
    };
    set_count(&mut status, "active", still_active.max(0));
    set_count(
        &mut status,
        "succeeded",
        if indexed {
            completed_ix
                .iter()
                .filter(|ix| completions.is_none_or(|c| **ix < c))
                .count() as i64
        } else {
            succeeded
        },
    );
    set_count(&mut status, "failed", failed);
    status["ready"] = json!(ready);
    status["terminating"] = json!(terminating);
    status["uncountedTerminatedPods"] = {
        let mut u = json!({});
        if !unc_s.is_empty() {
            u["succeeded"] = json!(unc_s);
        }
        if !unc_f.is_empty() {
            u["failed"] = json!(unc_f);
        }
        u
    };
    if indexed {
        let f = format_indexes(
            &completed_ix
                .iter()
                .copied()
                .filter(|ix| completions.is_none_or(|c| *ix < c))
                .collect(),
        );
        if f.is_empty() {
            if let Some(m) = status.as_object_mut() {
                m.remove("completedIndexes");
            }
        } else {
            status["completedIndexes"] = json!(f);
        }
    }
    if conds.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("conditions");
        }
    } else {
        status["conditions"] = json!(conds);
    }
    if status != old_status {
        let mut j = job.clone();
        j["status"] = status.clone();
        p.actions.push(Action::Update {
            r: jobs_r(),
            obj: Object::Json(j),
            status: true,
        });
    }
    // finalizers only after the UIDs are recorded
    p.actions.extend(fin_removals);
    for d in &deletes {
        p.actions.push(Action::Delete {
            r: pods_r(),
            ns: ns.clone(),
            name: s(d, "/metadata/name").to_string(),
            propagation: None,
            uid: Some(s(d, "/metadata/uid").to_string()),
        });
        events.push((
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {}", s(d, "/metadata/name")),
        ));
    }
    for c in creates {
        p.actions.push(Action::Create {
            r: pods_r(),
            ns: ns.clone(),
            obj: Object::Json(c),
            report: Some(reference_of(job, "Job")),
        });
    }
    for (etype, reason, message) in events {
        p.actions.push(Action::Event {
            about: reference_of(job, "Job"),
            etype,
            reason,
            message,
        });
    }
    // TTL after finished (pkg/controller/ttlafterfinished: timeLeft, then a foreground delete)
    if let Some(ttl) = opt_i(&spec, "/ttlSecondsAfterFinished") {
        let finished_at = if became_finished {
            Some(now)
        } else {
            ["Complete", "Failed"]
                .iter()
                .find_map(|t| cond_true(job, t))
                .and_then(|c| parse_time(c, "/lastTransitionTime"))
        };
        if let Some(at) = finished_at {
            let expire = at + jiff::SignedDuration::from_secs(ttl);
            if now >= expire && !became_finished {
                p.actions.push(Action::Delete {
                    r: jobs_r(),
                    ns: ns.clone(),
                    name: name.clone(),
                    propagation: Some("Foreground"),
                    uid: Some(uid.to_string()),
                });
            } else {
                let left = Duration::try_from(expire.duration_since(now)).unwrap_or_default();
                p.requeue_after = Some(left.max(Duration::from_millis(100)));
            }
        }
    }
    p
}

/// The Job controller over the work queue.
#[derive(Debug, Default)]
pub struct JobController;

#[async_trait::async_trait]
impl queue::Controller for JobController {
    fn name(&self) -> &'static str {
        "job-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![jobs_r().key_prefix(), pods_r().key_prefix()]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let m = change.obj.meta();
        if change.key.starts_with(&jobs_r().key_prefix()) {
            return vec![kinds::key_of(m)];
        }
        let ns = kinds::namespace(m);
        [Some(m), change.old.as_ref().map(Cached::meta)]
            .into_iter()
            .flatten()
            .filter_map(|o| kinds::controller_of(o, "Job").map(|(n, _)| format!("{ns}/{n}")))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    async fn all_keys(&mut self, objects: &Objects) -> Result<Vec<String>, ApiError> {
        let (items, _, _) = objects
            .list(jobs_r(), None, &ListOptions::default())
            .await?;
        Ok(items.iter().map(queue::key_of).collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let job = objects.get_opt(jobs_r(), ns, name).await?;
        let Some(job) = job else {
            // the Job is gone: its pods keep no tracking finalizer
            let (items, _, _) = objects
                .list(
                    pods_r(),
                    Some(ns),
                    &ListOptions {
                        label_selector: Some(format!("batch.kubernetes.io/job-name={name}")),
                        ..Default::default()
                    },
                )
                .await?;
            let mut actions = vec![];
            for pod in items.iter().filter(|x| has_finalizer(x)) {
                if queue::controller_of(pod, "Job").is_some_and(|(n, _)| n == name) {
                    actions.push(Action::Patch {
                        r: pods_r(),
                        ns: ns.to_string(),
                        name: s(pod, "/metadata/name").to_string(),
                        patch: without_finalizer(pod),
                    });
                }
            }
            queue::apply(objects, self.name(), actions).await?;
            return Ok(None);
        };
        let selector = job
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .filter(|_| job.pointer("/spec/selector/matchExpressions").is_none())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let (items, _, _) = objects
            .list(
                pods_r(),
                Some(ns),
                &ListOptions {
                    label_selector: selector,
                    ..Default::default()
                },
            )
            .await?;
        let plan = plan(&job, &items, Timestamp::now());
        // created pods get their names from generateName: name the event after the create
        queue::apply(objects, self.name(), plan.actions).await?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        default_job(&mut j);
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

    fn creates(p: &Plan) -> Vec<&Value> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    obj: Object::Json(obj),
                    ..
                } => Some(obj),
                _ => None,
            })
            .collect()
    }

    fn status(p: &Plan) -> Option<&Value> {
        p.actions.iter().find_map(|a| match a {
            Action::Update {
                obj: Object::Json(obj),
                status: true,
                ..
            } => obj.get("status"),
            _ => None,
        })
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
        default_job(&mut j);
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
        default_job(&mut manual);
        let texts: Vec<String> = validate_job(&manual, None)
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(texts, ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"]);
    }

    #[test]
    fn unsupported_fields_are_named() {
        let j = job(json!({"podFailurePolicy": {"rules": []}}));
        assert_eq!(
            unsupported_warnings(&j["spec"], "spec"),
            ["spec.podFailurePolicy is not supported by this server's Job controller and is ignored"]
        );
        assert!(unsupported_warnings(&job(json!({}))["spec"], "spec").is_empty());
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
        assert_eq!(format_indexes(&parse_indexes("0,1,2,5,7-9")), "0-2,5,7-9");
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
