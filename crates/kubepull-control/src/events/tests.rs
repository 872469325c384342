use std::sync::Arc;

use kubepull_datastore::Datastore;
use serde_json::json;

use super::*;
use crate::objects::{Filter, ListOptions, Objects, User};
use crate::resources;

fn core_r() -> &'static Resource {
    resources::find("", "v1", "events").unwrap()
}

fn events_r() -> &'static Resource {
    resources::find(GROUP, "v1", "events").unwrap()
}

/// An Event as kube-rs's `Recorder` posts it through events.k8s.io/v1.
fn recorded(name: &str) -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2026-01-02T03:04:05.000001Z",
        "reportingController": "example.com/operator", "reportingInstance": "op-1",
        "action": "Reconciling", "reason": "Created",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1", "apiVersion": "v1"},
        "related": {"kind": "Node", "name": "n1"},
        "note": "made it", "type": "Normal",
        "series": {"count": 2, "lastObservedTime": "2026-01-02T03:04:06.500000Z"}})
}

/// A core Event as client-go's legacy recorder posts it.
fn legacy(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Pulled", "message": "pulled the image", "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:06Z",
        "count": 3})
}

async fn objects() -> (Objects, Arc<dyn Datastore>) {
    let store: Arc<dyn Datastore> = Arc::new(kubepull_datastore::memory::MemoryStore::new());
    let o = Objects::new(store.clone());
    o.bootstrap().await.unwrap();
    (o, store)
}

async fn stored(store: &Arc<dyn Datastore>, name: &str) -> Value {
    let kv = store
        .get(&core_r().key("default", name))
        .await
        .unwrap()
        .unwrap();
    serde_json::from_slice(&kv.value).unwrap()
}

fn texts(e: &crate::errors::ApiError) -> Vec<String> {
    let causes = e
        .details
        .as_ref()
        .and_then(|d| d["causes"].as_array().cloned());
    causes
        .unwrap_or_default()
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap(),
                c["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn conversion_moves_the_fields_upstream_moves() {
    let core = to_core(recorded("e"));
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["message"], "made it");
    assert_eq!(core["reportingComponent"], "example.com/operator");
    // the fields with one name in both stay
    for f in [
        "eventTime",
        "reportingInstance",
        "action",
        "reason",
        "related",
        "type",
        "series",
    ] {
        assert_eq!(core[f], recorded("e")[f], "{f}");
    }
    for gone in ["regarding", "note", "reportingController"] {
        assert!(core.get(gone).is_none(), "{gone}: {core}");
    }
    // and back, as it came
    assert_eq!(from_core(core), recorded("e"));
    let ev = from_core(legacy("l"));
    assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
    assert_eq!(
        ev["deprecatedSource"],
        json!({"component": "kubelet", "host": "n1"})
    );
    assert_eq!(ev["deprecatedFirstTimestamp"], "2026-01-02T03:04:05Z");
    assert_eq!(ev["deprecatedLastTimestamp"], "2026-01-02T03:04:06Z");
    assert_eq!(ev["deprecatedCount"], 3);
    assert_eq!(ev["note"], "pulled the image");
    assert_eq!(ev["regarding"]["kind"], "Pod");
    for gone in [
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "message",
    ] {
        assert!(ev.get(gone).is_none(), "{gone}: {ev}");
    }
    assert_eq!(to_core(ev), legacy("l"));
    // a field the source leaves out is not carried over from the target's name
    let mut odd = legacy("o");
    odd["note"] = json!("stray");
    odd["apiVersion"] = json!("events.k8s.io/v1");
    let core = to_core(odd);
    assert_eq!(core["message"], "stray");
    assert!(core.get("involvedObject").is_none(), "{core}");
}

#[tokio::test]
async fn an_event_written_through_one_group_is_read_through_the_other() {
    let (o, store) = objects().await;
    let made = o
        .create(events_r(), "default", recorded("e1"), &User::Admin, true)
        .await
        .unwrap();
    // the response is in the request's group's shape
    assert_eq!(made["apiVersion"], "events.k8s.io/v1");
    assert_eq!(made["note"], "made it");
    assert!(made.get("message").is_none(), "{made}");
    // stored once, in the core form
    let raw = stored(&store, "e1").await;
    assert_eq!(raw["apiVersion"], "v1");
    assert_eq!(raw["involvedObject"]["name"], "web");
    assert_eq!(raw["reportingComponent"], "example.com/operator");
    assert!(raw.get("regarding").is_none(), "{raw}");
    let core = o.get(core_r(), "default", "e1").await.unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "made it");
    assert_eq!(core["involvedObject"]["kind"], "Pod");
    assert_eq!(core["metadata"]["uid"], made["metadata"]["uid"]);
    assert_eq!(
        core["metadata"]["resourceVersion"],
        made["metadata"]["resourceVersion"]
    );
    let again = o.get(events_r(), "default", "e1").await.unwrap();
    assert_eq!(again["regarding"], made["regarding"]);
    assert_eq!(again["note"], "made it");

    // core-written, read through events.k8s.io (get and list)
    o.create(core_r(), "default", legacy("l1"), &User::Admin, true)
        .await
        .unwrap();
    let ev = o.get(events_r(), "default", "l1").await.unwrap();
    assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
    assert_eq!(ev["note"], "pulled the image");
    assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
    assert_eq!(ev["deprecatedCount"], 3);
    assert!(ev.get("involvedObject").is_none(), "{ev}");
    let (items, _, _) = o
        .list(events_r(), Some("default"), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.get("regarding").is_some()
        && i.get("involvedObject").is_none()
        && i["apiVersion"] == "events.k8s.io/v1"));
    let (items, _, _) = o
        .list(core_r(), Some("default"), &ListOptions::default())
        .await
        .unwrap();
    assert!(items.iter().all(|i| i.get("involvedObject").is_some()
        && i.get("regarding").is_none()
        && i["apiVersion"] == "v1"));
}

#[tokio::test]
async fn an_event_stored_in_the_events_shape_is_read_by_both_groups() {
    let (o, store) = objects().await;
    // as an earlier build stored what came through events.k8s.io/v1
    let mut old = recorded("old");
    old["metadata"]["uid"] = json!("u-old");
    old["metadata"]["creationTimestamp"] = json!("2026-01-02T03:04:05Z");
    store
        .create(
            &core_r().key("default", "old"),
            serde_json::to_vec(&old).unwrap(),
        )
        .await
        .unwrap();
    let core = o.get(core_r(), "default", "old").await.unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["message"], "made it");
    assert!(core.get("regarding").is_none(), "{core}");
    let ev = o.get(events_r(), "default", "old").await.unwrap();
    assert_eq!(ev["regarding"]["name"], "web");
    assert_eq!(ev["note"], "made it");
    // a core list reads it (and selects it by the core labels)
    let opts = ListOptions {
        field_selector: Some(
            "involvedObject.name=web,reportingComponent=example.com/operator".into(),
        ),
        ..Default::default()
    };
    let (items, _, _) = o.list(core_r(), Some("default"), &opts).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["message"], "made it");
    // a write through core stores it in the core form
    let patched = o
        .patch(
            core_r(),
            "default",
            "old",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"a": "b"}}}),
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(patched["involvedObject"]["name"], "web");
    let raw = stored(&store, "old").await;
    assert_eq!(raw["apiVersion"], "v1");
    assert_eq!(raw["message"], "made it");
    assert!(raw.get("note").is_none(), "{raw}");
}

type Rx = tokio::sync::mpsc::Receiver<crate::errors::ApiResult<crate::objects::WatchEvent>>;

async fn next(rx: &mut Rx) -> (&'static str, Value) {
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (e.kind, (*e.object).clone())
}

#[tokio::test]
async fn a_watch_sees_events_written_through_the_other_group_in_its_own_shape() {
    let (o, _) = objects().await;
    let at = o
        .list(core_r(), Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .1;
    let opts = ListOptions::default();
    let mut ev_watch = o
        .watch(
            events_r(),
            Some("default"),
            at,
            Filter::new(&opts, events_r(), None).unwrap(),
        )
        .await
        .unwrap();
    let sel = ListOptions {
        field_selector: Some("regarding.name=web".into()),
        ..Default::default()
    };
    let mut selected = o
        .watch(
            events_r(),
            Some("default"),
            at,
            Filter::new(&sel, events_r(), None).unwrap(),
        )
        .await
        .unwrap();
    let mut core_watch = o
        .watch(
            core_r(),
            Some("default"),
            at,
            Filter::new(&opts, core_r(), None).unwrap(),
        )
        .await
        .unwrap();
    o.create(core_r(), "default", legacy("l1"), &User::Admin, true)
        .await
        .unwrap();
    o.create(events_r(), "default", recorded("e1"), &User::Admin, true)
        .await
        .unwrap();
    for rx in [&mut ev_watch, &mut selected] {
        let (kind, first) = next(rx).await;
        assert_eq!(kind, "ADDED");
        assert_eq!(first["apiVersion"], "events.k8s.io/v1");
        assert_eq!(first["note"], "pulled the image");
        assert_eq!(first["deprecatedSource"]["component"], "kubelet");
        let (_, second) = next(rx).await;
        assert_eq!(second["metadata"]["name"], "e1");
        assert_eq!(second["regarding"]["name"], "web");
    }
    let (_, first) = next(&mut core_watch).await;
    assert_eq!(first["message"], "pulled the image");
    let (_, second) = next(&mut core_watch).await;
    assert_eq!(second["apiVersion"], "v1");
    assert_eq!(second["message"], "made it");
    assert_eq!(second["reportingComponent"], "example.com/operator");
    assert!(second.get("note").is_none(), "{second}");
}

#[tokio::test]
async fn events_k8s_io_writes_are_validated_strictly_core_ones_as_legacy() {
    let (o, store) = objects().await;
    let refuse = |r: &'static Resource, body: Value| {
        let o = o.clone();
        async move {
            let e = o
                .create(r, "default", body, &User::Admin, false)
                .await
                .unwrap_err();
            assert_eq!(e.code, 422, "{}", e.message);
            texts(&e)
        }
    };
    let mut bare = recorded("bare");
    for f in [
        "eventTime",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "type",
    ] {
        bare.as_object_mut().unwrap().remove(f);
    }
    assert_eq!(
        refuse(events_r(), bare).await,
        vec![
            "eventTime: Required value",
            "type: Invalid value: \"\": has invalid value: ",
        ]
    );
    let mut e = recorded("e");
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        e[f] = json!("");
    }
    e["note"] = json!("n".repeat(1025));
    assert_eq!(
        refuse(events_r(), e).await,
        vec![
            "reportingController: Required value",
            "reportingController: Invalid value: \"\": name part must be non-empty",
            "reportingController: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "reportingInstance: Required value",
            "action: Required value",
            "reason: Required value",
            "message: Invalid value: \"\": can have at most 1024 characters",
        ]
    );
    let mut e = recorded("e");
    e["series"] = json!({"count": 1, "lastObservedTime": "2026-01-02T03:04:06.500000Z"});
    e["deprecatedCount"] = json!(2);
    e["deprecatedSource"] = json!({"component": "kubelet"});
    e["deprecatedFirstTimestamp"] = json!("2026-01-02T03:04:05Z");
    e["regarding"]["namespace"] = json!("other");
    e["type"] = json!("Info");
    assert_eq!(
        refuse(events_r(), e).await,
        vec![
            "series.count: Invalid value: \"\": should be at least 2",
            "type: Invalid value: \"\": has invalid value: Info",
            "firstTimestamp: Invalid value: \"\": needs to be unset",
            "count: Invalid value: \"\": needs to be unset",
            "source: Invalid value: \"\": needs to be unset",
        ]
    );
    // through core: the legacy rules only, the reporting controller named as core/v1 names it
    let mut c = legacy("c");
    c["eventTime"] = json!("2026-01-02T03:04:05.000000Z");
    c["involvedObject"]["namespace"] = json!("");
    assert_eq!(
        refuse(core_r(), c.clone()).await,
        vec![
            "reportingComponent: Required value",
            "reportingComponent: Invalid value: \"\": name part must be non-empty",
            "reportingComponent: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "reportingInstance: Required value",
            "action: Required value",
        ]
    );
    let mut c = legacy("c");
    c["involvedObject"]["namespace"] = json!("kube-system");
    assert_eq!(
        refuse(core_r(), c).await,
        vec!["involvedObject.namespace: Invalid value: \"kube-system\": does not match event.namespace"]
    );
    // a legacy Event through core keeps its deprecated fields
    o.create(core_r(), "default", legacy("ok"), &User::Admin, false)
        .await
        .unwrap();
    assert_eq!(stored(&store, "ok").await["count"], 3);
}

#[tokio::test]
async fn events_k8s_io_updates_keep_the_event_immutable() {
    let (o, _) = objects().await;
    o.create(events_r(), "default", recorded("e"), &User::Admin, false)
        .await
        .unwrap();
    let patch = |r: &'static Resource, body: Value| {
        let o = o.clone();
        async move {
            o.patch(
                r,
                "default",
                "e",
                "application/merge-patch+json",
                &body,
                None,
                false,
            )
            .await
        }
    };
    let e = patch(
        events_r(),
        json!({"note": "changed", "regarding": {"name": "other"}, "deprecatedCount": 4,
            "eventTime": "2026-01-02T03:04:07.000000Z", "related": null}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        texts(&e),
        vec![
            "involvedObject: Invalid value: core.ObjectReference{Kind:\"Pod\", Namespace:\"default\", Name:\"other\", UID:\"u1\", APIVersion:\"v1\", ResourceVersion:\"\", FieldPath:\"\"}: field is immutable",
            "message: Invalid value: \"changed\": field is immutable",
            "count: Invalid value: 4: field is immutable",
            "eventTime: Invalid value: 2026-01-02 03:04:07 +0000 UTC: field is immutable",
            "related: Invalid value: null: field is immutable",
        ]
    );
    // a series that changes is checked again
    let e = patch(events_r(), json!({"series": {"count": 1}}))
        .await
        .unwrap_err();
    assert_eq!(
        texts(&e),
        vec!["series.count: Invalid value: \"\": should be at least 2"]
    );
    let ok = patch(
        events_r(),
        json!({"series": {"count": 3, "lastObservedTime": "2026-01-02T03:04:08.250000Z"}}),
    )
    .await
    .unwrap();
    assert_eq!(ok["series"]["count"], 3);
    assert_eq!(ok["note"], "made it");
    // through core only the legacy rules apply: the message may change
    let ok = patch(core_r(), json!({"message": "changed"}))
        .await
        .unwrap();
    assert_eq!(ok["message"], "changed");
    let ev = o.get(events_r(), "default", "e").await.unwrap();
    assert_eq!(ev["note"], "changed");
    assert_eq!(ev["series"]["count"], 3);
}

#[tokio::test]
async fn server_side_apply_through_events_k8s_io() {
    let (o, store) = objects().await;
    o.create(events_r(), "default", recorded("a"), &User::Admin, false)
        .await
        .unwrap();
    let mut body = recorded("a");
    body["metadata"]["labels"] = json!({"app": "web"});
    let applied = crate::managedfields::scope(
        crate::managedfields::Request {
            field_manager: Some("operator".into()),
            ..Default::default()
        },
        o.patch(
            events_r(),
            "default",
            "a",
            "application/apply-patch+yaml",
            &body,
            None,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(applied["note"], "made it");
    assert_eq!(applied["metadata"]["labels"]["app"], "web");
    let mf = applied["metadata"]["managedFields"].as_array().unwrap();
    let op = mf.iter().find(|m| m["manager"] == "operator").unwrap();
    assert_eq!(op["operation"], "Apply");
    assert_eq!(op["apiVersion"], "events.k8s.io/v1");
    assert!(op["fieldsV1"].get("f:note").is_some(), "{op}");
    let raw = stored(&store, "a").await;
    assert_eq!(raw["message"], "made it");
    assert_eq!(raw["metadata"]["labels"]["app"], "web");
}

#[test]
fn times_print_as_go_prints_them() {
    let t = |s: &str| s.parse::<Timestamp>().ok();
    assert_eq!(
        go_time(t("2026-01-02T03:04:05Z")),
        "2026-01-02 03:04:05 +0000 UTC"
    );
    assert_eq!(
        go_time(t("2026-01-02T03:04:05.120000Z")),
        "2026-01-02 03:04:05.12 +0000 UTC"
    );
    assert_eq!(go_time(None), "0001-01-01 00:00:00 +0000 UTC");
}

/// kube-rs's `Recorder` sends a repeated Event again as a merge patch of the whole Event with a
/// series; an eventTime stored with more than microsecond precision is not a change of it
/// (`ValidateEventUpdate` compares it to the microsecond).
#[tokio::test]
async fn a_repeated_event_patches_its_series() {
    let (o, store) = objects().await;
    let mut old = to_core(recorded("r"));
    old["eventTime"] = json!("2026-01-02T03:04:05.000001999Z");
    old["metadata"]["uid"] = json!("u-r");
    store
        .create(
            &core_r().key("default", "r"),
            serde_json::to_vec(&old).unwrap(),
        )
        .await
        .unwrap();
    let mut again = recorded("r");
    again["series"] = json!({"count": 2, "lastObservedTime": "2026-01-02T03:04:09.000000Z"});
    let patched = o
        .patch(
            events_r(),
            "default",
            "r",
            "application/merge-patch+json",
            &again,
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(patched["series"]["count"], 2);
    assert_eq!(stored(&store, "r").await["series"]["count"], 2);
}

/// Events create on update (`eventStrategy.AllowCreateOnUpdate`), through either group: the
/// PUT of a missing Event stores it once in the core form and answers in the asked group's
/// shape; a second PUT updates it.
#[tokio::test]
async fn a_put_of_a_missing_event_creates_it_through_either_group() {
    let (o, store) = objects().await;
    let (made, created) = o
        .update_by(
            &User::Admin,
            events_r(),
            "default",
            "e1",
            recorded("e1"),
            None,
            true,
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(made["apiVersion"], "events.k8s.io/v1");
    assert_eq!(made["note"], "made it");
    assert!(made.get("message").is_none(), "{made}");
    assert!(made.pointer("/metadata/uid").is_some(), "{made}");
    assert!(
        made.pointer("/metadata/creationTimestamp").is_some(),
        "{made}"
    );
    let raw = stored(&store, "e1").await;
    assert_eq!(raw["apiVersion"], "v1");
    assert_eq!(raw["involvedObject"]["name"], "web");
    assert!(raw.get("regarding").is_none(), "{raw}");
    assert_eq!(o.get(events_r(), "default", "e1").await.unwrap(), made);

    let (core, created) = o
        .update_by(
            &User::Admin,
            core_r(),
            "default",
            "l1",
            legacy("l1"),
            None,
            true,
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "pulled the image");
    let ev = o.get(events_r(), "default", "l1").await.unwrap();
    assert_eq!(ev["note"], "pulled the image");
    assert_eq!(ev["metadata"]["uid"], core["metadata"]["uid"]);

    // now there: an update, the uid kept
    let mut again = legacy("l1");
    again["message"] = json!("pulled it again");
    let (updated, created) = o
        .update_by(&User::Admin, core_r(), "default", "l1", again, None, true)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(updated["message"], "pulled it again");
    assert_eq!(updated["metadata"]["uid"], core["metadata"]["uid"]);
}

/// `EventSeries.LastObservedTime` is a non-pointer `MicroTime` in both versions: a series
/// without it (or with `null`) decodes as the zero time and is refused by validation through
/// events.k8s.io/v1 (422, not a body that cannot be decoded), and kept through core, whose
/// legacy validation does not look at the series.
#[tokio::test]
async fn a_series_without_its_last_observed_time_is_invalid_through_events_k8s_io() {
    let (o, store) = objects().await;
    let create = |r: &'static Resource, series: Value| {
        let o = o.clone();
        async move {
            let mut e = if r.group.is_empty() {
                legacy("s")
            } else {
                recorded("s")
            };
            e["series"] = series;
            o.create(r, "default", e, &User::Admin, false).await
        }
    };
    let e = create(events_r(), json!({"count": 2})).await.unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
    assert_eq!(e.reason, "Invalid");
    // the strategy names the internal kind's first group, the core one
    assert_eq!(
        e.message,
        "Event \"s\" is invalid: series.lastObservedTime: Required value"
    );
    assert_eq!(
        e.details,
        Some(
            json!({"name": "s", "group": "", "kind": "Event", "causes": [
            {"reason": "FieldValueRequired", "message": "Required value",
             "field": "series.lastObservedTime"}]})
        )
    );
    let e = create(events_r(), json!({"count": 2, "lastObservedTime": null}))
        .await
        .unwrap_err();
    assert_eq!(texts(&e), vec!["series.lastObservedTime: Required value"]);
    let e = create(
        events_r(),
        json!({"count": 2, "lastObservedTime": "0001-01-01T00:00:00Z"}),
    )
    .await
    .unwrap_err();
    assert_eq!(texts(&e), vec!["series.lastObservedTime: Required value"]);
    // an empty series: neither count nor time
    let e = create(events_r(), json!({})).await.unwrap_err();
    assert_eq!(
        e.message,
        "Event \"s\" is invalid: [series.count: Invalid value: \"\": should be at least 2, series.lastObservedTime: Required value]"
    );
    let e = create(
        events_r(),
        json!({"lastObservedTime": "2026-01-02T03:04:06.500000Z"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        texts(&e),
        vec!["series.count: Invalid value: \"\": should be at least 2"]
    );
    // a null series is no series
    let ok = create(events_r(), json!(null)).await.unwrap();
    assert!(ok.get("series").is_none(), "{ok}");
    // an apply that adds such a series is refused as an update
    let mut config = recorded("s");
    config["series"] = json!({"count": 2});
    let e = as_manager(
        "a",
        o.patch(events_r(), "default", "s", APPLY, &config, None, false),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
    assert_eq!(texts(&e), vec!["series.lastObservedTime: Required value"]);
    o.delete(events_r(), "default", "s", &Default::default())
        .await
        .unwrap();
    // through core the series is not validated; the zero time is not kept
    let ok = create(
        core_r(),
        json!({"count": 2, "lastObservedTime": "0001-01-01T00:00:00Z"}),
    )
    .await
    .unwrap();
    assert_eq!(ok["series"], json!({"count": 2}));
    assert_eq!(stored(&store, "s").await["series"], json!({"count": 2}));
    // read through events.k8s.io/v1 it is what it is; replacing it there with the series
    // unchanged is not validated again, with another count it is
    let mut ev = o.get(events_r(), "default", "s").await.unwrap();
    assert_eq!(ev["series"], json!({"count": 2}));
    ev["metadata"]["labels"] = json!({"a": "b"});
    ev["reportingController"] = json!("x");
    let e = o
        .update(events_r(), "default", "s", ev.clone(), None, false)
        .await
        .unwrap_err();
    assert_eq!(
        texts(&e),
        vec!["reportingController: Invalid value: \"x\": field is immutable"]
    );
    ev["series"]["count"] = json!(3);
    let e = o
        .update(events_r(), "default", "s", ev, None, false)
        .await
        .unwrap_err();
    assert_eq!(
        texts(&e),
        vec![
            "series.lastObservedTime: Required value",
            "reportingController: Invalid value: \"x\": field is immutable",
        ]
    );
    assert_eq!(e.message.split(':').next(), Some("Event \"s\" is invalid"));
}

/// A write of an Event as `manager` (`?fieldManager=`).
async fn as_manager<F: std::future::Future>(manager: &str, f: F) -> F::Output {
    crate::managedfields::scope(
        crate::managedfields::Request {
            field_manager: Some(manager.into()),
            ..Default::default()
        },
        f,
    )
    .await
}

/// The managed fields' `manager operation apiVersion` of an Event.
fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} {} {}",
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
                e["apiVersion"].as_str().unwrap()
            )
        })
        .collect()
}

const APPLY: &str = "application/apply-patch+yaml";

/// kube-apiserver's field manager cannot convert an Event between its two groups (each
/// group's type converter lacks the other's type), so a write through one group drops the
/// entries of the managers that wrote through the other (`drops_other_versions`).
#[tokio::test]
async fn an_update_through_one_group_drops_the_managers_of_the_other() {
    let (o, _) = objects().await;
    let created = as_manager(
        "recorder",
        o.create(core_r(), "default", legacy("m"), &User::Admin, false),
    )
    .await
    .unwrap();
    assert_eq!(managers(&created), vec!["recorder Update v1"]);
    let labels = json!({"metadata": {"labels": {"a": "b"}}});
    let patched = as_manager(
        "labeller",
        o.patch(
            events_r(),
            "default",
            "m",
            "application/merge-patch+json",
            &labels,
            None,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(managers(&patched), vec!["labeller Update events.k8s.io/v1"]);
    assert_eq!(
        patched["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
    );
    // and back: the core write drops the events.k8s.io/v1 entry, its writer taking only what
    // it changed
    let patched = as_manager(
        "recorder",
        o.patch(
            core_r(),
            "default",
            "m",
            "application/merge-patch+json",
            &json!({"message": "again"}),
            None,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(managers(&patched), vec!["recorder Update v1"]);
    assert_eq!(
        patched["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:message": {}})
    );
    // a write through the same group keeps the other managers of that group
    let patched = as_manager(
        "labeller",
        o.patch(
            core_r(),
            "default",
            "m",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"a": "c"}}}),
            None,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        managers(&patched),
        vec!["labeller Update v1", "recorder Update v1"]
    );
}

/// An apply through one group does not conflict with a manager that applied the same field
/// through the other (its entry is dropped, the field taken); an applier's own entry of the
/// other group is replaced without pruning what it applied there.
#[tokio::test]
async fn an_apply_through_one_group_takes_fields_applied_through_the_other() {
    let (o, store) = objects().await;
    o.create(core_r(), "default", legacy("a"), &User::Admin, false)
        .await
        .unwrap();
    let config = |api_version: &str, labels: Value| {
        json!({"apiVersion": api_version, "kind": "Event",
            "metadata": {"name": "a", "namespace": "default", "labels": labels}})
    };
    let apply = |r: &'static Resource, manager: &'static str, body: Value| {
        let o = o.clone();
        async move {
            as_manager(
                manager,
                o.patch(r, "default", "a", APPLY, &body, None, false),
            )
            .await
        }
    };
    let core_config = config("v1", json!({"x": "1", "y": "1"}));
    apply(core_r(), "a", core_config.clone()).await.unwrap();
    // through core, another applier conflicts
    let e = apply(core_r(), "b", config("v1", json!({"x": "2"})))
        .await
        .unwrap_err();
    assert_eq!(e.code, 409, "{}", e.message);
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"a\": .metadata.labels.x"
    );
    // through events.k8s.io/v1 it does not: "a"'s entry (and the creator's) go
    let applied = apply(
        events_r(),
        "b",
        config("events.k8s.io/v1", json!({"x": "2"})),
    )
    .await
    .unwrap();
    assert_eq!(applied["metadata"]["labels"], json!({"x": "2", "y": "1"}));
    assert_eq!(managers(&applied), vec!["b Apply events.k8s.io/v1"]);
    // "a" applies through core again, then through events.k8s.io/v1 without `y`: its core
    // entry is replaced, and `y` (applied through core) stays
    apply(core_r(), "a", core_config).await.unwrap();
    let applied = apply(
        events_r(),
        "a",
        config("events.k8s.io/v1", json!({"x": "2"})),
    )
    .await
    .unwrap();
    assert_eq!(applied["metadata"]["labels"], json!({"x": "2", "y": "1"}));
    assert_eq!(managers(&applied), vec!["a Apply events.k8s.io/v1"]);
    assert_eq!(
        applied["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:x": {}}}})
    );
    // applying without labels through the same group prunes what "a" applied there: the
    // labels map, a named field of its last applied set (`EnsureNamedFieldsAreMembers`), goes
    // with `y`, which no manager owns since the apply through the other group
    let mut without = config("events.k8s.io/v1", json!({}));
    without["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    let applied = apply(events_r(), "a", without).await.unwrap();
    assert!(applied["metadata"].get("labels").is_none(), "{applied}");
    assert!(stored(&store, "a").await["metadata"]
        .get("labels")
        .is_none());
}

/// An Event an earlier build stored with entries of both groups: an apply through one group
/// prunes what its applier applied before though a manager of the other group owns it too
/// (`addBackOwnedItems` passes over the managers it cannot convert to), and drops that entry.
#[tokio::test]
async fn owners_through_the_other_group_do_not_keep_pruned_fields() {
    let (o, store) = objects().await;
    let mut old = to_core(recorded("p"));
    old["metadata"]["uid"] = json!("u-p");
    old["metadata"]["labels"] = json!({"x": "1"});
    let labels = json!({"f:metadata": {"f:labels": {"f:x": {}}}});
    old["metadata"]["managedFields"] = json!([
        {"manager": "a", "operation": "Apply", "apiVersion": "events.k8s.io/v1",
         "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1", "fieldsV1": labels},
        {"manager": "labeller", "operation": "Update", "apiVersion": "v1",
         "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1", "fieldsV1": labels},
    ]);
    store
        .create(
            &core_r().key("default", "p"),
            serde_json::to_vec(&old).unwrap(),
        )
        .await
        .unwrap();
    let config = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "p", "namespace": "default"}, "note": "made it"});
    let applied = as_manager(
        "a",
        o.patch(events_r(), "default", "p", APPLY, &config, None, false),
    )
    .await
    .unwrap();
    assert!(applied["metadata"].get("labels").is_none(), "{applied}");
    assert_eq!(managers(&applied), vec!["a Apply events.k8s.io/v1"]);
    assert_eq!(
        applied["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:note": {}})
    );
}

/// A body that does not decode is left as it came, its series' time not filled in.
#[test]
fn a_body_that_does_not_decode_keeps_its_series() {
    let mut body = recorded("b");
    body["series"] = json!({"count": 2});
    body["type"] = json!(5);
    let before = body.clone();
    // without the type check (a strict one of unknown fields only) the caller goes on with
    // the body
    assert_eq!(
        crate::admission::decode(events_r(), &mut body, false, true),
        None
    );
    assert_eq!(body, before);
    let why = crate::admission::decode(events_r(), &mut body, true, true).unwrap();
    assert!(
        why.starts_with("Event in version \"v1\" cannot be handled as a Event: invalid type"),
        "{why}"
    );
    let mut body = recorded("b");
    body["series"] = json!({"count": 2});
    assert_eq!(
        crate::admission::decode(events_r(), &mut body, true, false),
        None
    );
    assert_eq!(body["series"], json!({"count": 2}));
}
