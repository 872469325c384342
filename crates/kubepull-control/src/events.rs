//! Events through their two groups: `v1` (core) and `events.k8s.io/v1`.
//!
//! As kube-apiserver, an Event is stored once, in one shape: the core form (the internal
//! `core.Event` both external versions convert to, whose JSON names are core/v1's). A write
//! through `events.k8s.io/v1` is converted to it before it is stored, and every read through
//! `events.k8s.io/v1` converts the stored form back; core/v1 reads it as it is. An Event stored
//! in the `events.k8s.io/v1` shape by an earlier build is read as its core form
//! ([`normalise`]) by both groups and by field selectors.
//!
//! Sources (1.33): `pkg/apis/events/v1/conversion.go` (`Convert_v1_Event_To_core_Event`,
//! `Convert_core_Event_To_v1_Event`: the fields that move, the rest keep their names) and
//! `pkg/apis/core/validation/events.go` (`ValidateEventCreate`, `ValidateEventUpdate`,
//! `legacyValidateEvent`, `validateV1EventSeries`), called by the events strategy
//! (`pkg/registry/core/event/strategy.go`) with the request's group version.

use std::borrow::Cow;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::errors::Cause;
use crate::resources::Resource;

/// The group of the second Event version.
pub const GROUP: &str = "events.k8s.io";
/// `events.k8s.io/v1`.
const EVENTS_V1: &str = "events.k8s.io/v1";

/// The fields the conversion moves: `(events.k8s.io/v1 name, core/v1 name)`. The others
/// (`metadata`, `eventTime`, `series`, `reportingInstance`, `action`, `reason`, `related`,
/// `type`) have one name in both.
const MOVED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    // `ReportingController`'s JSON name in core/v1
    ("reportingController", "reportingComponent"),
];

/// `ReportingInstanceLengthLimit`, `ActionLengthLimit`, `ReasonLengthLimit`, `NoteLengthLimit`.
const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// Whether `r` is `events.k8s.io/v1` Events.
pub fn is_events_group(r: &Resource) -> bool {
    r.group == GROUP && r.kind == "Event"
}

/// Whether `r` is an Event of either group.
fn is_event(r: &Resource) -> bool {
    r.kind == "Event" && (r.group.is_empty() || r.group == GROUP)
}

/// The group a 422 about an Event written through `r` names: `""` for both groups. The
/// storage validates the internal `core.Event`, registered in the core group and in
/// `events.k8s.io` (pkg/apis/events/register.go), and `rest.BeforeCreate`/`BeforeUpdate`
/// name the first kind the scheme has for it (`objectMetaAndKind`: `kinds[0]`), which is the
/// core group's (pkg/apis/core/install is installed before pkg/apis/events/install): `Event
/// "e" is invalid: …` with no group in the details, whichever group the request came through.
/// Other kinds: `r`'s group.
pub fn invalid_group(r: &Resource) -> &'static str {
    if is_events_group(r) {
        ""
    } else {
        r.group
    }
}

/// A JSON pointer into an Event's core form (`/involvedObject/name`) as it points into `obj`:
/// the same, or the events.k8s.io name of its first field when `obj` is in that shape (read
/// without converting the object).
pub fn core_pointer<'a>(obj: &Value, core: &'a str) -> Cow<'a, str> {
    if !in_events_shape(obj) {
        return Cow::Borrowed(core);
    }
    let rest = core.strip_prefix('/').unwrap_or(core);
    let (first, tail) = rest.split_once('/').map_or((rest, ""), |(f, t)| (f, t));
    match MOVED.iter().find(|(_, c)| *c == first) {
        Some((events, _)) if tail.is_empty() => Cow::Owned(format!("/{events}")),
        Some((events, _)) => Cow::Owned(format!("/{events}/{tail}")),
        None => Cow::Borrowed(core),
    }
}

/// Whether a write of `r` drops the managed-fields entries recorded through another API
/// version: for an Event of either group, those of the other group (every other version).
///
/// kube-apiserver's field manager compares the live and new objects in each manager's API
/// version (sigs.k8s.io/structured-merge-diff `merge/update.go`, `Updater.update`), converting
/// them with `versionConverter.Convert` (k8s.io/apimachinery
/// `pkg/util/managedfields/internal/versionconverter.go`): to the hub of the object's own
/// group (`events.k8s.io/__internal` or `/__internal`, the one `core.Event`), then to the
/// manager's version, then back to a typed value with the request's `TypeConverter`. The
/// scheme converts between the groups (`core.Event` is registered in both), but the type
/// converter of a group knows only the types of the groups installed with it:
/// `GenericAPIServer.getOpenAPIModels` builds one for the legacy group
/// (`InstallLegacyAPIGroup`) and one for the other groups together (`InstallAPIGroups`), from
/// their own resources' definitions, so `events.k8s.io/v1`'s has no `v1, Kind=Event` and
/// core's no `events.k8s.io/v1, Kind=Event`. `ObjectToTyped` fails with `no corresponding type
/// for …`, a missing version error (`IsMissingVersionError`), and `Updater.update` then
/// deletes that manager's entry: any update, patch or apply through one group (a create's
/// given entries too) drops the entries of the managers that wrote through the other, whose
/// fields then have no owner (an apply through one group never conflicts with them).
/// An applier's own entry of the other group is replaced by its new apply (an `Apply`
/// entry's identity has no version), without pruning what it applied before (`Updater.prune`
/// returns the merged object when it cannot convert it to the last applied version), and in
/// pruning, `addBackOwnedItems` passes over the managers it cannot convert to.
pub fn drops_other_versions(r: &Resource) -> bool {
    is_event(r) && crate::resources::is_builtin(r)
}

/// Whether `obj` is in the `events.k8s.io` shape (by its `apiVersion`, which every stored and
/// served Event has).
fn in_events_shape(obj: &Value) -> bool {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("events.k8s.io/"))
}

/// Moves each field `from` → `to` (`MOVED`'s pairs in one direction): the target field is what
/// the source field was, absent when it was.
fn rename(o: &mut Map<String, Value>, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    for (from, to) in pairs {
        match o.remove(from) {
            Some(v) => {
                o.insert(to.into(), v);
            }
            None => {
                o.remove(to);
            }
        }
    }
}

/// `Convert_v1_Event_To_core_Event`: an `events.k8s.io/v1` Event in its core form.
pub fn to_core(mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        rename(o, MOVED.iter().copied());
        o.insert("apiVersion".into(), Value::from("v1"));
        o.insert("kind".into(), Value::from("Event"));
    }
    obj
}

/// `Convert_core_Event_To_v1_Event`: a core Event in the `events.k8s.io/v1` shape.
pub fn from_core(mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        rename(o, MOVED.iter().map(|(e, c)| (*c, *e)));
        o.insert("apiVersion".into(), Value::from(EVENTS_V1));
        o.insert("kind".into(), Value::from("Event"));
    }
    obj
}

/// A stored Event in its core form, whichever shape it was stored in.
pub fn normalise(obj: Value) -> Value {
    if in_events_shape(&obj) {
        to_core(obj)
    } else {
        obj
    }
}

/// [`normalise`] of a borrowed Event: itself when it is in the core form already.
pub fn normalised(obj: &Value) -> Cow<'_, Value> {
    if in_events_shape(obj) {
        Cow::Owned(to_core(obj.clone()))
    } else {
        Cow::Borrowed(obj)
    }
}

/// A stored object as read through `r`: an Event in `r`'s group's shape (from either stored
/// shape); other kinds as they are.
pub fn served(r: &Resource, obj: Value) -> Value {
    if !is_event(r) || !obj.is_object() {
        return obj;
    }
    let core = normalise(obj);
    if is_events_group(r) {
        from_core(core)
    } else {
        core
    }
}

/// What is stored of an object written through `r`: an Event in its core form; other kinds as
/// they are.
pub fn stored<'a>(r: &Resource, obj: &'a Value) -> Cow<'a, Value> {
    if is_event(r) {
        normalised(obj)
    } else {
        Cow::Borrowed(obj)
    }
}

/// Go's zero time as JSON: what a `metav1.MicroTime` left out (or `null`) decodes as.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Before an `events.k8s.io/v1` Event body is decoded into its type: a `series` whose
/// `lastObservedTime` is missing or `null` gets the zero time. Upstream's
/// `EventSeries.LastObservedTime` (k8s.io/api `events/v1/types.go`) is a non-pointer
/// `metav1.MicroTime`, which decodes a missing or `null` value as the zero time
/// (`MicroTime.UnmarshalJSON`), so such a body reaches validation and is refused there
/// (`series.lastObservedTime: Required value`, `validateV1EventSeries`) with a 422, not as a
/// body that cannot be decoded. The series as it came is returned when it was changed, for
/// [`restore_series`] should the decode fail.
pub fn fill_series_time(obj: &mut Value) -> Option<Value> {
    let series = obj.get_mut("series")?.as_object_mut()?;
    if !series.get("lastObservedTime").is_none_or(Value::is_null) {
        return None;
    }
    let before = Value::Object(series.clone());
    series.insert("lastObservedTime".into(), Value::from(ZERO_TIME));
    Some(before)
}

/// Undoes [`fill_series_time`] on a body that did not decode.
pub fn restore_series(obj: &mut Value, before: Option<Value>) {
    if let (Some(before), Some(o)) = (before, obj.as_object_mut()) {
        o.insert("series".into(), before);
    }
}

/// After an Event of either group is decoded and encoded again: a series'
/// `lastObservedTime` that is the zero time is unset (`MicroTime.MarshalJSON` writes the zero
/// time as `null`; unset times are left out here, as everywhere else).
pub fn unset_zero_series_time(obj: &mut Value) {
    if let Some(series) = obj.get_mut("series").and_then(Value::as_object_mut) {
        if series.get("lastObservedTime").is_some_and(|t| {
            t.as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .is_some_and(|t| t == zero_time())
        }) {
            series.remove("lastObservedTime");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// The events strategy's `Validate`/`ValidateUpdate` of an Event written through `r` (`obj` and
/// `old` in `r`'s shape, read in their core form): `ValidateEventCreate` /
/// `ValidateEventUpdate` with the request's group version. The metadata checks of the strict
/// (`events.k8s.io/v1`) path (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`) are the ones
/// every kind's write gets already ([`crate::admission::validate`]), not repeated here.
pub fn validate(r: &Resource, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let new = Event::of(&stored(r, obj));
    let legacy = !is_events_group(r);
    // Make sure events always pass legacy validation.
    let mut c = legacy_validate(&new, legacy);
    if legacy {
        // No further validation for backwards compatibility.
        return c;
    }
    match old {
        None => {
            validate_series(&new, &mut c);
            if new.event_time.is_none() {
                c.push(Cause::required("eventTime", ""));
            }
            if new.kind != "Normal" && new.kind != "Warning" {
                c.push(Cause::invalid(
                    "type",
                    "\"\"",
                    format!("has invalid value: {}", new.kind),
                ));
            }
            let unset = |f: &str| Cause::invalid(f, "\"\"", "needs to be unset");
            if new.first_timestamp.is_some() {
                c.push(unset("firstTimestamp"));
            }
            if new.last_timestamp.is_some() {
                c.push(unset("lastTimestamp"));
            }
            if new.count != 0 {
                c.push(unset("count"));
            }
            if !new.source.0.is_empty() || !new.source.1.is_empty() {
                c.push(unset("source"));
            }
        }
        Some(old) => {
            let old = Event::of(&stored(r, old));
            // if the series was modified, validate the new data
            if new.series != old.series {
                validate_series(&new, &mut c);
            }
            let mut immutable = |field: &str, changed: bool, value: String| {
                if changed {
                    c.push(Cause::invalid(field, value, "field is immutable"));
                }
            };
            immutable(
                "involvedObject",
                new.involved != old.involved,
                go_ref(&new.involved),
            );
            immutable("reason", new.reason != old.reason, quote(&new.reason));
            immutable("message", new.message != old.message, quote(&new.message));
            immutable("source", new.source != old.source, go_source(&new.source));
            immutable(
                "firstTimestamp",
                new.first_timestamp != old.first_timestamp,
                go_time(new.first_timestamp),
            );
            immutable(
                "lastTimestamp",
                new.last_timestamp != old.last_timestamp,
                go_time(new.last_timestamp),
            );
            immutable("count", new.count != old.count, new.count.to_string());
            // (upstream checks the reason twice)
            immutable("reason", new.reason != old.reason, quote(&new.reason));
            immutable("type", new.kind != old.kind, quote(&new.kind));
            // (read to the microsecond: see `Event::of`)
            immutable(
                "eventTime",
                new.event_time != old.event_time,
                go_time(new.event_time),
            );
            immutable("action", new.action != old.action, quote(&new.action));
            immutable(
                "related",
                new.related != old.related,
                new.related.as_ref().map_or_else(|| "null".into(), go_ref),
            );
            immutable(
                "reportingController",
                new.reporting_controller != old.reporting_controller,
                quote(&new.reporting_controller),
            );
            immutable(
                "reportingInstance",
                new.reporting_instance != old.reporting_instance,
                quote(&new.reporting_instance),
            );
        }
    }
    c
}

/// The field whose change makes a cause of an update of `r` stand although the stored object
/// has it too (`objects::ratchet`): an Event's series as a whole for the causes about it, which
/// `ValidateEventUpdate` reports whenever the series changed; the cause's own field otherwise.
pub fn ratchet_field<'a>(r: &Resource, field: &'a str) -> &'a str {
    if is_event(r) && field.starts_with("series.") {
        &field[.."series".len()]
    } else {
        field
    }
}

/// `legacyValidateEvent`; `core` when the request came through core/v1 (which names the
/// reporting controller `reportingComponent`).
fn legacy_validate(e: &Event, core: bool) -> Vec<Cause> {
    let mut c = vec![];
    let reporting_controller = if core {
        "reportingComponent"
    } else {
        "reportingController"
    };
    let mismatch = |c: &mut Vec<Cause>| {
        c.push(Cause::invalid(
            "involvedObject.namespace",
            quote(&e.involved.namespace),
            "does not match event.namespace",
        ))
    };
    // "New" Events need to have EventTime set, so it's validating old object.
    if e.event_time.is_none() {
        // Make sure event.Namespace and the involvedObject.Namespace agree
        if e.involved.namespace.is_empty() {
            // event.Namespace must also be empty (or "default", for compatibility with old
            // clients)
            if !e.namespace.is_empty() && e.namespace != "default" {
                mismatch(&mut c);
            }
        } else if e.namespace != e.involved.namespace {
            mismatch(&mut c);
        }
    } else {
        if e.involved.namespace.is_empty()
            && e.namespace != "default"
            && e.namespace != "kube-system"
        {
            mismatch(&mut c);
        }
        if e.reporting_controller.is_empty() {
            c.push(Cause::required(reporting_controller, ""));
        }
        for msg in crate::validation::is_qualified_name(&e.reporting_controller) {
            c.push(Cause::invalid(
                reporting_controller,
                quote(&e.reporting_controller),
                msg,
            ));
        }
        let too_long = |f: &str, limit: usize| {
            Cause::invalid(f, "\"\"", format!("can have at most {limit} characters"))
        };
        if e.reporting_instance.is_empty() {
            c.push(Cause::required("reportingInstance", ""));
        }
        if e.reporting_instance.len() > REPORTING_INSTANCE_LENGTH_LIMIT {
            c.push(too_long(
                "reportingInstance",
                REPORTING_INSTANCE_LENGTH_LIMIT,
            ));
        }
        if e.action.is_empty() {
            c.push(Cause::required("action", ""));
        }
        if e.action.len() > ACTION_LENGTH_LIMIT {
            c.push(too_long("action", ACTION_LENGTH_LIMIT));
        }
        if e.reason.is_empty() {
            c.push(Cause::required("reason", ""));
        }
        if e.reason.len() > REASON_LENGTH_LIMIT {
            c.push(too_long("reason", REASON_LENGTH_LIMIT));
        }
        if e.message.len() > NOTE_LENGTH_LIMIT {
            c.push(too_long("message", NOTE_LENGTH_LIMIT));
        }
    }
    for msg in crate::admission::dns1123_subdomain_problems(&e.namespace) {
        c.push(Cause::invalid("namespace", quote(&e.namespace), msg));
    }
    c
}

/// `validateV1EventSeries`.
fn validate_series(e: &Event, c: &mut Vec<Cause>) {
    if let Some((count, last_observed)) = &e.series {
        if *count < 2 {
            c.push(Cause::invalid(
                "series.count",
                "\"\"",
                "should be at least 2",
            ));
        }
        if last_observed.is_none() {
            c.push(Cause::required("series.lastObservedTime", ""));
        }
    }
}

/// The fields of a core Event that validation reads, as the internal type holds them (an
/// absent string is empty, an absent or unparsable time is the zero time).
#[derive(Debug, Default, PartialEq)]
struct Event {
    namespace: String,
    involved: ObjectRef,
    reason: String,
    message: String,
    /// `source.component`, `source.host`.
    source: (String, String),
    first_timestamp: Option<Timestamp>,
    last_timestamp: Option<Timestamp>,
    count: i64,
    kind: String,
    event_time: Option<Timestamp>,
    /// `series.count`, `series.lastObservedTime`.
    series: Option<(i64, Option<Timestamp>)>,
    action: String,
    related: Option<ObjectRef>,
    reporting_controller: String,
    reporting_instance: String,
}

/// A `core.ObjectReference`.
#[derive(Debug, Default, PartialEq)]
struct ObjectRef {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    api_version: String,
    resource_version: String,
    field_path: String,
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// A `metav1.Time`/`MicroTime`: compared as instants (`apiequality.Semantic`), the zero time
/// (`0001-01-01T00:00:00Z`) being unset.
fn time(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .filter(|t| *t != zero_time())
}

fn zero_time() -> Timestamp {
    ZERO_TIME.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

impl ObjectRef {
    fn of(v: Option<&Value>) -> ObjectRef {
        let f = |k: &str| text(v.and_then(|v| v.get(k)));
        ObjectRef {
            kind: f("kind"),
            namespace: f("namespace"),
            name: f("name"),
            uid: f("uid"),
            api_version: f("apiVersion"),
            resource_version: f("resourceVersion"),
            field_path: f("fieldPath"),
        }
    }
}

impl Event {
    /// The core form's fields.
    fn of(o: &Value) -> Event {
        let s = |k: &str| text(o.get(k));
        Event {
            namespace: text(o.pointer("/metadata/namespace")),
            involved: ObjectRef::of(o.get("involvedObject")),
            reason: s("reason"),
            message: s("message"),
            source: (
                text(o.pointer("/source/component")),
                text(o.pointer("/source/host")),
            ),
            first_timestamp: time(o.get("firstTimestamp")),
            last_timestamp: time(o.get("lastTimestamp")),
            count: o.get("count").and_then(Value::as_i64).unwrap_or(0),
            kind: s("type"),
            // compared to microseconds: changes below that precision are tolerated
            // (`ValidateEventUpdate`, kubernetes#111928)
            event_time: time(o.get("eventTime"))
                .and_then(|t| Timestamp::from_microsecond(t.as_microsecond()).ok()),
            series: o.get("series").filter(|v| v.is_object()).map(|v| {
                (
                    v.get("count").and_then(Value::as_i64).unwrap_or(0),
                    time(v.get("lastObservedTime")),
                )
            }),
            action: s("action"),
            related: o
                .get("related")
                .filter(|v| v.is_object())
                .map(|v| ObjectRef::of(Some(v))),
            reporting_controller: s("reportingComponent"),
            reporting_instance: s("reportingInstance"),
        }
    }
}

/// A string as `field.Invalid` prints it (`%q`).
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A `core.ObjectReference` as `field.Invalid` prints a struct (`%#v`).
fn go_ref(r: &ObjectRef) -> String {
    format!(
        "core.ObjectReference{{Kind:{:?}, Namespace:{:?}, Name:{:?}, UID:{:?}, APIVersion:{:?}, ResourceVersion:{:?}, FieldPath:{:?}}}",
        r.kind, r.namespace, r.name, r.uid, r.api_version, r.resource_version, r.field_path
    )
}

/// A `core.EventSource` as `field.Invalid` prints it (`%#v`).
fn go_source(s: &(String, String)) -> String {
    format!("core.EventSource{{Component:{:?}, Host:{:?}}}", s.0, s.1)
}

/// A time as `field.Invalid` prints a `metav1.Time`/`MicroTime` (time.Time's `String`, in UTC:
/// fractional seconds without trailing zeros).
fn go_time(t: Option<Timestamp>) -> String {
    let t = t.unwrap_or_else(zero_time);
    let mut s = t.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

#[cfg(test)]
mod tests;
