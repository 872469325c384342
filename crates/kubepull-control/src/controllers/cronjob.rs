//! The CronJob controller (kubernetes `pkg/controller/cronjob/cronjob_controllerv2.go`
//! `syncCronJob`, `cleanupFinishedJobs`, and `utils.go`): Jobs named `<cronjob>-<minutes since
//! the epoch of the scheduled time>`, `concurrencyPolicy` Allow/Forbid/Replace,
//! `startingDeadlineSeconds`, `suspend`, `timeZone`, the history limits, the active list and
//! `lastScheduleTime`/`lastSuccessfulTime`, requeued at the next schedule + 100 ms.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::cron::Schedule;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job, JobSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::expectations::OwnWrites;
use super::get_typed;
use super::informer::{index, Cached, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::queue::{self, Action, Plan};
use crate::errors::{ApiError, Cause};
use crate::objects::Objects;
use crate::resources::{self, Resource};

/// `nextScheduleDelta`.
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// The annotation with a Job's scheduled time (`CronJobScheduledTimestampAnnotation`).
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn cronjobs_r() -> &'static Resource {
    resources::find("batch", "v1", "cronjobs").expect("cronjobs served")
}

fn jobs_r() -> &'static Resource {
    resources::find("batch", "v1", "jobs").expect("jobs served")
}

/// `SetDefaults_CronJob` (kubernetes `pkg/apis/batch/v1/defaults.go`): concurrencyPolicy
/// Allow, suspend false, 3 successful and 1 failed Jobs kept. As upstream's
/// `SetObjectDefaults_CronJob` (`zz_generated.defaults.go`), the job template gets none of
/// `SetDefaults_Job`'s defaults (only its pod template is defaulted, by the admission's pod
/// defaults): a Job created from it is defaulted by [`super::job::default_job`] on its own
/// create, so a template's `podFailurePolicy` yields `podReplacementPolicy: Failed` there.
pub fn default_cronjob(cj: &mut CronJob) {
    let spec = cj.spec.get_or_insert_with(Default::default);
    spec.concurrency_policy
        .get_or_insert_with(|| "Allow".into());
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
}

/// The schedule with its time zone (`formatSchedule` + `cron.ParseStandard`).
pub fn schedule_of(cj: &CronJob) -> Result<Schedule, String> {
    let spec = schedule_text(cj);
    let sched = Schedule::parse(spec).map_err(|e| e.0)?;
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        Some(tz) if !spec.contains("TZ") => {
            let zone =
                jiff::tz::TimeZone::get(tz).map_err(|_| format!("unknown time zone {tz}"))?;
            Ok(sched.in_zone(zone))
        }
        _ => Ok(sched),
    }
}

/// `ValidateCronJobCreate`/`Update` (pkg/apis/batch/validation/validation.go), the parts that
/// apply here, the pod template decoded from `obj`.
pub fn validate_cronjob(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    validate_cronjob_decoded(obj, old, None)
}

/// [`validate_cronjob`] with the job template's pod spec decoded once for the request (see
/// [`super::job::validate_job_decoded`]).
pub fn validate_cronjob_decoded(
    obj: &Value,
    old: Option<&Value>,
    template: Option<Option<&k8s_openapi::api::core::v1::PodSpec>>,
) -> Vec<Cause> {
    let mut c = vec![];
    let name = s(obj, "/metadata/name");
    // a CronJob's name leaves room for the 11-character suffix of its Jobs
    if name.len() > 52 {
        c.push(Cause::invalid(
            "metadata.name",
            format!("{name:?}"),
            "must be no more than 52 characters",
        ));
    }
    let sched = s(obj, "/spec/schedule");
    if sched.is_empty() {
        c.push(Cause::required("spec.schedule", ""));
    } else if let Err(e) = Schedule::parse(sched) {
        c.push(Cause::invalid("spec.schedule", format!("{sched:?}"), e.0));
    } else if (sched.contains("TZ=") || sched.contains("CRON_TZ="))
        && old.is_none_or(|o| s(o, "/spec/schedule") != sched)
    {
        c.push(Cause::invalid(
            "spec.schedule",
            format!("{sched:?}"),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    if let Some(tz) = obj.pointer("/spec/timeZone").and_then(Value::as_str) {
        if tz.is_empty() || tz.eq_ignore_ascii_case("local") || jiff::tz::TimeZone::get(tz).is_err()
        {
            c.push(Cause::invalid(
                "spec.timeZone",
                format!("{tz:?}"),
                format!("unknown time zone {tz}"),
            ));
        }
    }
    let cp = s(obj, "/spec/concurrencyPolicy");
    if !matches!(cp, "Allow" | "Forbid" | "Replace") {
        c.push(Cause::not_supported(
            "spec.concurrencyPolicy",
            format!("{cp:?}"),
            &["Allow", "Forbid", "Replace"],
        ));
    }
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        if let Some(n) = obj.pointer(&format!("/spec/{f}")).and_then(Value::as_i64) {
            if n < 0 {
                c.push(Cause::invalid(
                    format!("spec.{f}"),
                    n.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    match obj.pointer("/spec/jobTemplate/spec") {
        Some(js) => c.extend(super::job::validate_job_spec_decoded(
            js,
            "spec.jobTemplate.spec",
            template,
            crate::quantities::old_spec_allows_indivisible_huge_pages(
                old,
                "/spec/jobTemplate/spec/template/spec",
            ),
        )),
        None => c.push(Cause::required(
            "spec.jobTemplate.spec.template.spec.containers",
            "",
        )),
    }
    c
}

fn schedule_text(cj: &CronJob) -> &str {
    cj.spec.as_ref().map_or("", |s| s.schedule.as_str())
}

/// `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!(
        "{}-{}",
        kinds::name(&cj.metadata),
        scheduled.as_second() / 60
    )
}

/// `mostRecentScheduleTime` (utils.go): the latest activation in `(earliest, now]`, the next
/// one after `now`, and the (approximate) number of missed activations. As upstream, the count
/// divides the time since the first missed activation by the interval between the first two,
/// and the latest one is searched from one interval before the estimate, so that a schedule
/// missed for years costs a few steps, not one per activation.
pub fn most_recent(
    sched: &Schedule,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, Option<Timestamp>, i64) {
    let next = sched.next(now);
    let Some(t1) = sched.next(earliest) else {
        return (None, next, 0);
    };
    if now < t1 {
        return (None, next, 0);
    }
    let Some(t2) = sched.next(t1) else {
        return (Some(t1), next, 1);
    };
    if now < t2 {
        return (Some(t1), next, 1);
    }
    let between = t2.as_second() - t1.as_second();
    if between < 1 {
        return (None, next, 0);
    }
    let elapsed = now.as_second() - t1.as_second();
    let missed = elapsed / between + 1;
    let potential = t1 + jiff::SignedDuration::from_secs((missed - 2) * between);
    let mut latest = None;
    let mut t = sched.next(potential);
    while let Some(x) = t.filter(|x| *x <= now) {
        latest = Some(x);
        t = sched.next(x);
    }
    (latest, next, missed)
}

fn job_finished(j: &Job) -> Option<&'static str> {
    let conds = j.status.as_ref()?.conditions.as_ref()?;
    for c in conds {
        if c.status == "True" {
            match c.type_.as_str() {
                "Complete" => return Some("Complete"),
                "Failed" => return Some("Failed"),
                _ => {}
            }
        }
    }
    None
}

fn ref_uid(r: &ObjectReference) -> &str {
    r.uid.as_deref().unwrap_or("")
}

fn ref_name(r: &ObjectReference) -> &str {
    r.name.as_deref().unwrap_or("")
}

/// `getJobFromTemplate2`.
pub fn job_for(cj: &CronJob, scheduled: Timestamp, tz: &jiff::tz::TimeZone) -> Job {
    let tmpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmpl_md = tmpl.metadata.unwrap_or_default();
    let mut annotations = tmpl_md.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_ANNOTATION.to_string(),
        scheduled
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
            .replace("+00:00", "Z"),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: Some(tmpl_md.labels.unwrap_or_default()),
            annotations: Some(annotations),
            owner_references: Some(vec![new_controller_ref(cj)]),
            ..Default::default()
        },
        spec: Some(job_spec_of(tmpl.spec.unwrap_or_default())),
        status: None,
    }
}

/// The template's Job spec as `getJobFromTemplate2` copies it, except a `podReplacementPolicy`
/// the Job's validation refuses next to a `podFailurePolicy` (only `Failed` is allowed there,
/// `validatePodReplacementPolicy`): CronJobs stored when every job template was defaulted to
/// `TerminatingOrFailed` carry that conflict, and copying it would refuse each of their Jobs.
/// Without it the Job's own defaulting (`SetDefaults_Job`) decides, as for a template that
/// never set it.
fn job_spec_of(mut spec: JobSpec) -> JobSpec {
    if spec.pod_failure_policy.is_some()
        && spec
            .pod_replacement_policy
            .as_deref()
            .is_some_and(|p| p != "Failed")
    {
        spec.pod_replacement_policy = None;
    }
    spec
}

/// What the controller decides for one CronJob given the Jobs it controls and the time.
pub fn plan(cj: &CronJob, jobs: &[Job], now: Timestamp) -> Plan {
    let mut p = Plan::default();
    let ns = kinds::namespace(&cj.metadata).to_string();
    let uid = kinds::uid(&cj.metadata);
    let spec = cj.spec.clone().unwrap_or_default();
    let jobs: Vec<&Job> = jobs
        .iter()
        .filter(|j| kinds::controller_of(&j.metadata, "CronJob").is_some_and(|(_, u)| u == uid))
        .collect();
    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    let event = |etype: &'static str, reason: &'static str, message: String| Action::Event {
        about: reference(cj),
        etype,
        reason,
        message,
    };
    let mut events = vec![];
    let mut writes = vec![];
    // reconcile the active list with the Jobs
    for j in &jobs {
        let juid = kinds::uid(&j.metadata);
        let jname = kinds::name(&j.metadata);
        let found = active.iter().any(|a| ref_uid(a) == juid);
        let fin = job_finished(j);
        if !found && fin.is_none() {
            events.push(event(
                "Warning",
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {jname}"),
            ));
        } else if found && fin.is_some() {
            active.retain(|a| ref_uid(a) != juid);
            events.push(event(
                "Normal",
                "SawCompletedJob",
                format!(
                    "Saw completed job: {jname}, condition: {}",
                    fin.unwrap_or("")
                ),
            ));
        }
        if fin == Some("Complete") {
            if let Some(ct) = j.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
                let last = status.last_successful_time.as_ref();
                if last.is_none_or(|l| ct.0 > l.0) {
                    status.last_successful_time = Some(kinds::meta_time(ct.0));
                }
            }
        }
    }
    let missing: Vec<ObjectReference> = active
        .iter()
        .filter(|a| !jobs.iter().any(|j| kinds::uid(&j.metadata) == ref_uid(a)))
        .cloned()
        .collect();
    for m in missing {
        active.retain(|a| ref_uid(a) != ref_uid(&m));
        events.push(event(
            "Normal",
            "MissingJob",
            format!("Active job went missing: {}", ref_name(&m)),
        ));
    }
    let deleting = cj.metadata.deletion_timestamp.is_some();
    let suspended = spec.suspend == Some(true);
    let sched = schedule_of(cj);
    if !deleting && !suspended {
        match &sched {
            Err(e) => {
                let reason = if e.starts_with("unknown time zone") {
                    "UnknownTimeZone"
                } else {
                    "UnparseableSchedule"
                };
                events.push(event(
                    "Warning",
                    reason,
                    format!("unparseable schedule: {:?} : {e}", schedule_text(cj)),
                ));
            }
            Ok(sched) => {
                if schedule_text(cj).contains("TZ") {
                    events.push(event(
                        "Warning",
                        "UnsupportedSchedule",
                        format!(
                            "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                            schedule_text(cj)
                        ),
                    ));
                }
                schedule_step(
                    cj,
                    sched,
                    now,
                    &mut status,
                    &mut active,
                    &mut events,
                    &mut writes,
                    &mut p,
                );
            }
        }
    }
    status.active = (!active.is_empty()).then_some(active);
    // cleanupFinishedJobs: the history limits, oldest start first
    let mut deletes = vec![];
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit.map(i64::from) else {
            continue;
        };
        let mut done: Vec<&&Job> = jobs
            .iter()
            .filter(|j| job_finished(j) == Some(kind))
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .collect();
        if done.len() as i64 <= limit {
            continue;
        }
        // byJobStartTime: no start time last, then by start time, then by name
        let key = |j: &Job| {
            let start = j.status.as_ref().and_then(|s| s.start_time.clone());
            (start.is_none(), start, kinds::name(&j.metadata).to_string())
        };
        done.sort_by_key(|j| key(j));
        for j in done.iter().take(done.len() - limit.max(0) as usize) {
            let jname = kinds::name(&j.metadata);
            deletes.push(Action::Delete {
                r: jobs_r(),
                ns: ns.clone(),
                name: jname.to_string(),
                propagation: Some("Background"),
                uid: Some(kinds::uid(&j.metadata).to_string()),
            });
            events.push(event(
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {jname}"),
            ));
        }
    }
    p.actions.extend(writes);
    if status != old_status {
        let mut c = cj.clone();
        c.status = Some(status);
        p.actions.push(Action::Update {
            r: cronjobs_r(),
            obj: c.into(),
            status: true,
        });
    }
    p.actions.extend(deletes);
    p.actions.extend(events);
    p
}

#[allow(clippy::too_many_arguments)]
fn schedule_step(
    cj: &CronJob,
    sched: &Schedule,
    now: Timestamp,
    status: &mut CronJobStatus,
    active: &mut Vec<ObjectReference>,
    events: &mut Vec<Action>,
    writes: &mut Vec<Action>,
    p: &mut Plan,
) {
    let ns = kinds::namespace(&cj.metadata).to_string();
    let spec = cj.spec.clone().unwrap_or_default();
    let event = |etype: &'static str, reason: &'static str, message: String| Action::Event {
        about: reference(cj),
        etype,
        reason,
        message,
    };
    // getNextScheduleTime: from lastScheduleTime (or creation), not before now - deadline
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let last_schedule = status.last_schedule_time.as_ref().map(|t| t.0);
    let mut earliest = last_schedule.unwrap_or(created);
    let deadline = spec.starting_deadline_seconds;
    // a deadline reaching before the start of time bounds nothing (the difference would overflow)
    if let Some(sd) =
        deadline.and_then(|d| now.checked_sub(jiff::SignedDuration::from_secs(d)).ok())
    {
        if sd > earliest {
            earliest = sd;
        }
    }
    let requeue = |next: Option<Timestamp>| {
        next.map(|n| {
            Duration::try_from(n.duration_since(now)).unwrap_or_default() + NEXT_SCHEDULE_DELTA
        })
    };
    if earliest > now {
        p.requeue_after = requeue(sched.next(now));
        return;
    }
    let (scheduled, next, missed) = most_recent(sched, earliest, now);
    p.requeue_after = requeue(next);
    if missed > 100 {
        events.push(event(
            "Warning",
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    let Some(scheduled) = scheduled else {
        return;
    };
    if let Some(d) = deadline {
        if scheduled
            .checked_add(jiff::SignedDuration::from_secs(d))
            .is_ok_and(|end| end < now)
        {
            events.push(event(
                "Warning",
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
                ),
            ));
            return;
        }
    }
    let name = job_name(cj, scheduled);
    if active.iter().any(|a| ref_name(a) == name) || last_schedule == Some(scheduled) {
        return;
    }
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "Forbid" if !active.is_empty() => {
            events.push(event(
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return;
        }
        "Replace" => {
            for a in active.drain(..) {
                writes.push(Action::Delete {
                    r: jobs_r(),
                    ns: ns.clone(),
                    name: ref_name(&a).to_string(),
                    propagation: Some("Background"),
                    uid: Some(ref_uid(&a).to_string()),
                });
                events.push(event(
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted job {}", ref_name(&a)),
                ));
            }
        }
        _ => {}
    }
    let tz = match spec.time_zone.as_deref() {
        Some(z) => jiff::tz::TimeZone::get(z).unwrap_or(jiff::tz::TimeZone::UTC),
        None => jiff::tz::TimeZone::UTC,
    };
    let job = job_for(cj, scheduled, &tz);
    writes.push(Action::Create {
        r: jobs_r(),
        ns: ns.clone(),
        obj: job.into(),
        report: None,
    });
    events.push(event(
        "Normal",
        "SuccessfulCreate",
        format!("Created job {name}"),
    ));
    // the Job's UID is only known after the create: the active entry is completed by the
    // next sync (UnexpectedJob is not raised for a Job named after lastScheduleTime)
    active.push(ObjectReference {
        kind: Some("Job".into()),
        namespace: Some(ns),
        name: Some(name),
        api_version: Some("batch/v1".into()),
        ..Default::default()
    });
    status.last_schedule_time = Some(kinds::meta_time(scheduled));
}

/// Fills in UIDs of active entries written before their Job existed.
fn complete_active(cj: &mut CronJob, jobs: &[Job]) -> bool {
    let mut changed = false;
    if let Some(active) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        for a in active.iter_mut() {
            if ref_uid(a).is_empty() {
                if let Some(j) = jobs
                    .iter()
                    .find(|j| kinds::name(&j.metadata) == ref_name(a))
                {
                    *a = reference(j);
                    changed = true;
                }
            }
        }
    }
    changed
}

/// The CronJob controller over the work queue: CronJobs and their Jobs from the shared
/// informers (cronjob_controllerv2.go `sync` reads the CronJob from the cronJobLister and
/// `getJobsToBeReconciled` the Jobs it controls from the jobLister; here through the index by
/// controller UID).
pub struct CronJobController {
    cronjobs: Typed<CronJob>,
    jobs: Typed<Job>,
    written: OwnWrites,
}

impl std::fmt::Debug for CronJobController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronJobController").finish_non_exhaustive()
    }
}

impl CronJobController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> CronJobController {
        CronJobController {
            cronjobs: informers.of::<CronJob>(),
            jobs: informers.of::<Job>(),
            written: OwnWrites::default(),
        }
    }

    /// The Jobs the CronJob controls (from the cache), and those its active list names that
    /// the cache does not show: by name from the cache (an entry written before its Job had a
    /// UID), else read from the API (`syncCronJob`: "Explicitly try to get the job from
    /// api-server to avoid a slow watch not able to update the job lister on time").
    async fn jobs_of(&self, objects: &Objects, cj: &CronJob) -> Result<Vec<Job>, ApiError> {
        let ns = kinds::namespace(&cj.metadata);
        let mut jobs: Vec<Job> = self
            .jobs
            .by_index(index::CONTROLLER, kinds::uid(&cj.metadata))
            .iter()
            .map(|j| (**j).clone())
            .collect();
        let active = cj.status.iter().flat_map(|s| s.active.iter().flatten());
        for a in active {
            let shown = |jobs: &[Job]| {
                jobs.iter().any(|j| {
                    if ref_uid(a).is_empty() {
                        kinds::name(&j.metadata) == ref_name(a)
                    } else {
                        kinds::uid(&j.metadata) == ref_uid(a)
                    }
                })
            };
            if shown(&jobs) {
                continue;
            }
            let found = match self.jobs.get_named(ns, ref_name(a)) {
                Some(j) if ref_uid(a).is_empty() || kinds::uid(&j.metadata) == ref_uid(a) => {
                    Some((*j).clone())
                }
                _ => get_typed::<Job>(objects, ns, ref_name(a)).await?,
            };
            if let Some(j) = found {
                if !jobs.iter().any(|x| x.metadata.uid == j.metadata.uid) {
                    jobs.push(j);
                }
            }
        }
        Ok(jobs)
    }
}

#[async_trait::async_trait]
impl queue::Controller for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.cronjobs.prefix().to_string(),
            self.jobs.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let m = change.obj.meta();
        if change.obj::<CronJob>().is_some() {
            let k = kinds::key_of(m);
            if change.deleted {
                self.written.forget(&k);
            }
            return vec![k];
        }
        let ns = kinds::namespace(m);
        let mut out: Vec<String> = [Some(m), change.old.as_ref().map(Cached::meta)]
            .into_iter()
            .flatten()
            .filter_map(|o| kinds::controller_of(o, "CronJob").map(|(n, _)| format!("{ns}/{n}")))
            .collect();
        out.dedup();
        out
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .cronjobs
            .list()
            .iter()
            .map(|c| kinds::key_of(&c.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(cached) = self.cronjobs.get_named(ns, name) else {
            self.written.forget(key);
            return Ok(None);
        };
        let read_at = kinds::resource_version(&cached.metadata).to_string();
        if self.written.stale(key, &read_at) {
            // the cache does not show the status this controller wrote; its notice syncs again
            return Ok(None);
        }
        let mut cj = (*cached).clone();
        let jobs = self.jobs_of(objects, &cj).await?;
        if complete_active(&mut cj, &jobs) {
            let v = queue::Object::from(cj)
                .to_value()
                .map_err(|e| ApiError::internal(format!("encoding the CronJob: {e}")))?;
            let written = objects
                .update(cronjobs_r(), ns, name, v, Some("status"), false)
                .await?;
            self.written.wrote(key, &read_at);
            cj = serde_json::from_value(written).map_err(|e| {
                ApiError::internal(format!("CronJob {ns}/{name} does not decode: {e}"))
            })?;
        }
        // the version a status write in the plan replaces: the one read, or the one the write
        // above returned
        let over = kinds::resource_version(&cj.metadata).to_string();
        // a Job just created and named after lastScheduleTime is not "unexpected"
        let plan = plan(&cj, &jobs, Timestamp::now());
        // one write at a time, as `queue::apply` does, to know whether the CronJob was written
        for a in plan.actions {
            let own = matches!(&a, Action::Update { r, .. } if r.plural == "cronjobs");
            queue::apply(objects, self.name(), vec![a]).await?;
            if own {
                self.written.wrote(key, &over);
            }
        }
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(x: &str) -> Timestamp {
        x.parse().unwrap()
    }

    fn cj(extra: Value) -> Value {
        let mut c = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid", "resourceVersion": "3",
                "creationTimestamp": "2026-01-01T00:00:30Z"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        for (k, v) in extra.as_object().unwrap() {
            c["spec"][k] = v.clone();
        }
        c = crate::admission::defaulted(cronjobs_r(), c);
        c
    }

    fn job(name: &str, cond: Option<&str>, start: &str) -> Value {
        let mut j = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
            "ownerReferences": [{"kind": "CronJob", "name": "tick", "uid": "cj-uid", "controller": true}]},
            "status": {"startTime": start}});
        if let Some(c) = cond {
            j["status"]["conditions"] = json!([{"type": c, "status": "True"}]);
            j["status"]["completionTime"] = json!(start);
        }
        j
    }

    // Fixtures are JSON as stored, decoded as the controller decodes them; what a plan writes
    // is read back as the JSON the API server receives.
    fn typed<K: serde::de::DeserializeOwned>(v: &Value) -> K {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn plan(c: &Value, jobs: &[Value], now: Timestamp) -> Plan {
        let jobs: Vec<Job> = jobs.iter().map(typed).collect();
        super::plan(&typed(c), &jobs, now)
    }

    fn created(p: &Plan) -> Vec<Value> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { obj, .. } => Some(obj.to_value().unwrap()),
                _ => None,
            })
            .collect()
    }

    fn new_status(p: &Plan) -> Option<Value> {
        p.actions.iter().find_map(|a| match a {
            Action::Update { obj, .. } => obj.to_value().unwrap().get("status").cloned(),
            _ => None,
        })
    }

    /// A sync reads the CronJob and its Jobs from the caches (nothing listed from storage);
    /// once it wrote the status, the cached copy it replaced is not synced from.
    #[tokio::test]
    async fn syncs_from_the_cache_and_not_from_a_copy_older_than_its_write() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        use kubepull_datastore::Datastore as _;
        let env = Env::new().await;
        let mut c = CronJobController::new(&env.informers);
        let key = cronjobs_r().key("default", "tick");
        // a CronJob that scheduled "tick-old", which has completed since, and "tick-run",
        // still running
        let mut stored = cj(json!({}));
        stored["metadata"]["creationTimestamp"] = json!(Timestamp::now().to_string());
        let active = |n: &str| {
            json!({"kind": "Job", "name": n, "namespace": "default",
            "uid": format!("u-{n}"), "apiVersion": "batch/v1"})
        };
        stored["status"] = json!({"active": [active("tick-old"), active("tick-run")]});
        env.put::<CronJob>(stored).await;
        for (n, cond) in [("tick-old", Some("Complete")), ("tick-run", None)] {
            let mut j = job(n, cond, "2026-01-01T00:05:00Z");
            j["apiVersion"] = json!("batch/v1");
            j["kind"] = json!("Job");
            env.put::<Job>(j).await;
        }
        // an unrelated Job in the namespace is not read as the CronJob's
        let mut other = job("other", None, "2026-01-01T00:05:00Z");
        other["metadata"]["ownerReferences"][0]["uid"] = json!("another-uid");
        env.put::<Job>(other).await;
        env.refresh::<CronJob>().await;
        let keys: Vec<String> = env
            .refresh::<Job>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        assert_eq!(keys, ["default/tick", "default/tick", "default/tick"]);
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        // the Jobs were read: the completed one leaves the active list, the running one stays
        let cjs = env.stored::<CronJob>().await;
        assert_eq!(
            cjs[0]["status"]["active"],
            json!([active("tick-run")]),
            "{:?}",
            cjs[0]
        );
        let rv = env.store.get(&key).await.unwrap().unwrap().mod_revision;
        // the cache still has the copy the status replaced: no sync from it (its write would
        // conflict, its events repeat)
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        let now_rv = env.store.get(&key).await.unwrap().unwrap().mod_revision;
        assert_eq!(now_rv, rv);
        // the cache catches up: synced again, nothing left to write
        let keys: Vec<String> = env
            .refresh::<CronJob>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        assert_eq!(keys, ["default/tick"]);
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        let keys = env.no_lists(c.all_keys(&env.objects)).await.unwrap();
        assert_eq!(keys, ["default/tick"]);
    }

    /// A sync that writes twice (the active list's UIDs, then the status) is not followed by
    /// one from the copy its first write returned: that copy's status write would only
    /// conflict (409) and be retried.
    #[tokio::test]
    async fn a_second_status_write_is_recorded_with_the_version_the_first_returned() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        use kubepull_datastore::{Datastore as _, Event};
        let env = Env::new().await;
        let mut c = CronJobController::new(&env.informers);
        let key = cronjobs_r().key("default", "tick");
        // "tick-run" still running, written before its Job had a UID (the first write fills
        // it in); "tick-old" completed since (the plan's status write drops it)
        let mut stored = cj(json!({}));
        stored["metadata"]["creationTimestamp"] = json!(Timestamp::now().to_string());
        stored["status"] = json!({"active": [
            {"kind": "Job", "name": "tick-old", "namespace": "default", "uid": "u-tick-old", "apiVersion": "batch/v1"},
            {"kind": "Job", "name": "tick-run", "namespace": "default", "apiVersion": "batch/v1"}]});
        env.put::<CronJob>(stored).await;
        for (n, cond) in [("tick-old", Some("Complete")), ("tick-run", None)] {
            let mut j = job(n, cond, "2026-01-01T00:05:00Z");
            j["apiVersion"] = json!("batch/v1");
            j["kind"] = json!("Job");
            env.put::<Job>(j).await;
        }
        env.refresh::<CronJob>().await;
        env.refresh::<Job>().await;
        let read = env.store.get(&key).await.unwrap().unwrap().mod_revision;
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        let last = env.store.get(&key).await.unwrap().unwrap();
        let active =
            serde_json::from_slice::<Value>(&last.value).unwrap()["status"]["active"].clone();
        assert_eq!(active.as_array().map(Vec::len), Some(1), "{active}");
        assert_eq!(
            (active[0]["name"].as_str(), active[0]["uid"].as_str()),
            (Some("tick-run"), Some("u-tick-run"))
        );
        // the copy between the two writes, as a slow watch delivers it
        let mut w = env.store.watch(&key, read).await.unwrap();
        let Some(Ok(Event::Put { kv: first, .. })) = w.events.recv().await else {
            panic!("the first write")
        };
        assert!(read < first.mod_revision && first.mod_revision < last.mod_revision);
        env.informers
            .of::<CronJob>()
            .informer()
            .replace(std::slice::from_ref(&first), first.mod_revision);
        // not synced from: nothing written, no conflict
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        let now = env.store.get(&key).await.unwrap().unwrap();
        assert_eq!(now.mod_revision, last.mod_revision);
        // the last write reaches the cache: synced again, nothing left to write
        env.refresh::<CronJob>().await;
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        let now = env.store.get(&key).await.unwrap().unwrap();
        assert_eq!(now.mod_revision, last.mod_revision);
    }

    /// An active Job the Job cache does not show yet is read from the API, not reported
    /// missing and dropped from the active list (which would lose it: its schedule time is
    /// already the last one).
    #[tokio::test]
    async fn an_active_job_the_cache_lags_behind_is_read_from_the_api() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        let env = Env::new().await;
        let mut c = CronJobController::new(&env.informers);
        let mut stored = cj(json!({}));
        stored["metadata"]["creationTimestamp"] = json!(Timestamp::now().to_string());
        stored["status"] = json!({"active": [{"kind": "Job", "name": "tick-new",
            "namespace": "default", "uid": "u-tick-new", "apiVersion": "batch/v1"}]});
        env.put::<CronJob>(stored).await;
        env.refresh::<CronJob>().await;
        env.refresh::<Job>().await;
        let mut j = job("tick-new", None, "2026-01-01T00:05:00Z");
        j["apiVersion"] = json!("batch/v1");
        j["kind"] = json!("Job");
        env.put::<Job>(j).await;
        env.no_lists(c.sync(&env.objects, "default/tick"))
            .await
            .unwrap();
        let cjs = env.stored::<CronJob>().await;
        assert_eq!(
            cjs[0]["status"]["active"][0]["uid"], "u-tick-new",
            "{:?}",
            cjs[0]
        );
    }

    #[test]
    fn a_starting_deadline_past_the_end_of_time_does_not_panic() {
        let c = cj(json!({"startingDeadlineSeconds": i64::MAX}));
        let p = plan(&c, &[], t("2026-01-01T00:07:00Z"));
        assert_eq!(
            created(&p).len(),
            1,
            "the 00:05 run is within an unbounded deadline"
        );
    }

    #[test]
    fn creates_the_job_of_the_latest_schedule_with_the_upstream_name() {
        let c = cj(json!({}));
        let now = t("2026-01-01T00:11:00Z");
        let p = plan(&c, &[], now);
        let jobs = created(&p);
        assert_eq!(jobs.len(), 1, "only the most recent missed time runs");
        // 00:10 → 29451670 minutes since the epoch
        let sched = t("2026-01-01T00:10:00Z");
        assert_eq!(
            jobs[0]["metadata"]["name"],
            format!("tick-{}", sched.as_second() / 60)
        );
        assert_eq!(jobs[0]["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(
            jobs[0]["metadata"]["annotations"][SCHEDULED_ANNOTATION],
            "2026-01-01T00:10:00Z"
        );
        let st = new_status(&p).unwrap();
        assert_eq!(st["lastScheduleTime"], "2026-01-01T00:10:00Z");
        // requeued at the next schedule + 100 ms
        assert_eq!(
            p.requeue_after,
            Some(Duration::from_secs(240) + NEXT_SCHEDULE_DELTA)
        );
        // the same time again creates nothing
        let mut c2 = c.clone();
        c2["status"] = st.clone();
        let p = plan(&c2, &[], t("2026-01-01T00:12:00Z"));
        assert!(created(&p).is_empty());
    }

    #[test]
    fn nothing_before_the_first_schedule_and_nothing_while_suspended() {
        let c = cj(json!({}));
        let p = plan(&c, &[], t("2026-01-01T00:04:00Z"));
        assert!(created(&p).is_empty());
        assert_eq!(
            p.requeue_after,
            Some(Duration::from_secs(60) + NEXT_SCHEDULE_DELTA)
        );
        let c = cj(json!({"suspend": true}));
        let p = plan(&c, &[], t("2026-01-01T00:11:00Z"));
        assert!(created(&p).is_empty());
        assert_eq!(p.requeue_after, None);
    }

    #[test]
    fn starting_deadline_misses_late_starts() {
        let c = cj(json!({"startingDeadlineSeconds": 30}));
        let p = plan(&c, &[], t("2026-01-01T00:11:00Z"));
        assert!(created(&p).is_empty());
        let p = plan(&c, &[], t("2026-01-01T00:10:20Z"));
        assert_eq!(created(&p).len(), 1);
    }

    #[test]
    fn concurrency_policies() {
        let mut c = cj(json!({"concurrencyPolicy": "Forbid"}));
        c["status"] = json!({"lastScheduleTime": "2026-01-01T00:05:00Z",
            "active": [{"kind": "Job", "name": "tick-a", "uid": "u-tick-a", "namespace": "default"}]});
        let running = job("tick-a", None, "2026-01-01T00:05:01Z");
        let p = plan(
            &c,
            std::slice::from_ref(&running),
            t("2026-01-01T00:10:01Z"),
        );
        assert!(created(&p).is_empty());
        assert!(p.actions.iter().any(|a| matches!(
            a,
            Action::Event {
                reason: "JobAlreadyActive",
                ..
            }
        )));
        c["spec"]["concurrencyPolicy"] = json!("Replace");
        let p = plan(
            &c,
            std::slice::from_ref(&running),
            t("2026-01-01T00:10:01Z"),
        );
        assert_eq!(created(&p).len(), 1);
        assert!(p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Delete { name, .. } if name == "tick-a")));
        c["spec"]["concurrencyPolicy"] = json!("Allow");
        let p = plan(&c, &[running], t("2026-01-01T00:10:01Z"));
        assert_eq!(created(&p).len(), 1);
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Delete { .. })));
    }

    #[test]
    fn finished_jobs_leave_the_active_list_and_history_is_limited() {
        let mut c = cj(json!({"successfulJobsHistoryLimit": 1}));
        c["status"] = json!({"lastScheduleTime": "2026-01-01T00:10:00Z",
            "active": [{"kind": "Job", "name": "tick-c", "uid": "u-tick-c", "namespace": "default"}]});
        let jobs = vec![
            job("tick-a", Some("Complete"), "2026-01-01T00:00:00Z"),
            job("tick-b", Some("Complete"), "2026-01-01T00:05:00Z"),
            job("tick-c", Some("Complete"), "2026-01-01T00:10:00Z"),
        ];
        let p = plan(&c, &jobs, t("2026-01-01T00:10:30Z"));
        let st = new_status(&p).unwrap();
        assert!(st.get("active").is_none(), "{st}");
        assert_eq!(st["lastSuccessfulTime"], "2026-01-01T00:10:00Z");
        let deleted: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["tick-a", "tick-b"]);
    }

    /// As upstream (`SetObjectDefaults_CronJob` applies no `SetDefaults_Job` to the job
    /// template), a template with a `podFailurePolicy` is stored without a
    /// `podReplacementPolicy` and is valid; its Jobs default to `Failed`. A template stored
    /// with the conflicting `TerminatingOrFailed` still yields valid Jobs.
    #[test]
    fn a_pod_failure_policy_template_and_its_jobs_are_valid() {
        let pfp = json!({"rules": [{"action": "FailJob",
            "onExitCodes": {"operator": "In", "values": [42]}}]});
        let mut raw = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid",
                "creationTimestamp": "2026-01-01T00:00:30Z"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {
                "podFailurePolicy": pfp, "template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        let c = crate::admission::defaulted(cronjobs_r(), raw.clone());
        let js = &c["spec"]["jobTemplate"]["spec"];
        for f in [
            "podReplacementPolicy",
            "backoffLimit",
            "completions",
            "parallelism",
            "suspend",
        ] {
            assert!(js.get(f).is_none(), "{f} defaulted in the template: {js}");
        }
        let causes: Vec<String> = validate_cronjob(&c, None).iter().map(Cause::text).collect();
        assert!(causes.is_empty(), "{causes:?}");
        let job_of = |c: &Value| {
            let jobs = created(&plan(c, &[], t("2026-01-01T00:05:30Z")));
            assert_eq!(jobs.len(), 1, "{jobs:?}");
            crate::admission::defaulted(jobs_r(), jobs[0].clone())
        };
        let job = job_of(&c);
        assert_eq!(job["spec"]["podReplacementPolicy"], "Failed", "{job}");
        assert_eq!(job["spec"]["backoffLimit"], 6, "{job}");
        assert!(super::super::job::validate_job_spec(&job["spec"], "spec").is_empty());

        // stored with the conflicting value: the Job's defaulting decides
        raw["spec"]["jobTemplate"]["spec"]["podReplacementPolicy"] = json!("TerminatingOrFailed");
        let stored = crate::admission::defaulted(cronjobs_r(), raw.clone());
        assert!(!validate_cronjob(&stored, None).is_empty());
        let job = job_of(&stored);
        assert_eq!(job["spec"]["podReplacementPolicy"], "Failed", "{job}");
        assert!(super::super::job::validate_job_spec(&job["spec"], "spec").is_empty());
        // a value the Job accepts is copied as it is
        raw["spec"]["jobTemplate"]["spec"]["podFailurePolicy"] = Value::Null;
        let no_pfp = crate::admission::defaulted(cronjobs_r(), raw);
        assert_eq!(
            job_of(&no_pfp)["spec"]["podReplacementPolicy"],
            "TerminatingOrFailed"
        );
    }

    #[test]
    fn time_zone_and_validation() {
        let c = cj(json!({"schedule": "0 9 * * *", "timeZone": "Europe/Berlin"}));
        // 09:00 in Berlin in winter is 08:00 UTC
        let p = plan(&c, &[], t("2026-01-01T08:00:30Z"));
        let jobs = created(&p);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0]["metadata"]["annotations"][SCHEDULED_ANNOTATION],
            "2026-01-01T09:00:00+01:00"
        );
        assert!(
            validate_cronjob(&c, None).is_empty(),
            "{:?}",
            validate_cronjob(&c, None)
        );
        let bad = cj(json!({"schedule": "61 * * * *", "timeZone": "Nowhere/Special"}));
        let texts: Vec<String> = validate_cronjob(&bad, None)
            .iter()
            .map(Cause::text)
            .collect();
        assert!(texts.contains(&"spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61".to_string()), "{texts:?}");
        assert!(texts.contains(&"spec.timeZone: Invalid value: \"Nowhere/Special\": unknown time zone Nowhere/Special".to_string()), "{texts:?}");
        let tz = cj(json!({"schedule": "TZ=UTC 0 9 * * *"}));
        assert!(validate_cronjob(&tz, None)[0]
            .detail
            .contains("use timeZone field instead"));
    }

    #[test]
    fn most_recent_as_upstream() {
        // TestMostRecentScheduleTime-like cases
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        let (last, next, missed) = most_recent(
            &every5,
            t("2026-01-01T00:00:30Z"),
            t("2026-01-01T00:04:00Z"),
        );
        assert_eq!((last, missed), (None, 0));
        assert_eq!(next, Some(t("2026-01-01T00:05:00Z")));
        let (last, _, missed) = most_recent(
            &every5,
            t("2026-01-01T00:00:30Z"),
            t("2026-01-01T00:07:00Z"),
        );
        assert_eq!((last, missed), (Some(t("2026-01-01T00:05:00Z")), 1));
        let (last, _, missed) = most_recent(
            &every5,
            t("2026-01-01T00:00:30Z"),
            t("2026-01-01T00:31:00Z"),
        );
        assert_eq!((last, missed), (Some(t("2026-01-01T00:30:00Z")), 6));
        // an irregular schedule: 30 6-16/4 * * 1-5 (06:30, 10:30, 14:30 on weekdays)
        let irregular = Schedule::parse("30 6-16/4 * * 1-5").unwrap();
        let (last, _, _) = most_recent(
            &irregular,
            t("2026-01-05T00:00:00Z"),
            t("2026-01-07T12:00:00Z"),
        );
        assert_eq!(last, Some(t("2026-01-07T10:30:00Z")));
        // missed for years: the latest minute, found in a few steps
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let (last, _, missed) = most_recent(
            &every_minute,
            t("2023-01-01T00:00:00Z"),
            t("2026-01-01T12:34:56Z"),
        );
        assert_eq!(last, Some(t("2026-01-01T12:34:00Z")));
        assert!(missed > 100);
    }

    #[test]
    fn too_many_missed() {
        let mut c = cj(json!({"schedule": "* * * * *"}));
        c["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let p = plan(&c, &[], t("2026-01-02T00:00:30Z"));
        assert!(p.actions.iter().any(|a| matches!(
            a,
            Action::Event {
                reason: "TooManyMissedTimes",
                ..
            }
        )));
        let jobs = created(&p);
        assert_eq!(
            jobs[0]["metadata"]["name"],
            format!("tick-{}", t("2026-01-02T00:00:00Z").as_second() / 60)
        );
    }
}
