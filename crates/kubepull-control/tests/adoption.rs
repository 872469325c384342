//! Adoption with the real kubectl against the API server and its controllers
//! (`controller_ref_manager.go`): a Deployment deleted with `--cascade=orphan` and created again
//! adopts its orphaned ReplicaSet, whose pods stay; a ReplicaSet deleted with
//! `--cascade=orphan` is created again by its Deployment and adopts the orphaned pods; no new
//! pods are created beside them. A Job adopts and releases pods the same way (with its
//! tracking finalizer).

use std::collections::BTreeSet;
use std::path::Path;

use kubepull_control::start;
use serde_json::Value;

mod common;
use common::{dump_on_failure, eventually, get_json, items, ok, s, server_config};

/// The UID of the controller reference of `o` (empty when it has none).
fn controller_uid(o: &Value) -> String {
    o["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == true)
        .map(|r| s(r, "/uid").to_string())
        .unwrap_or_default()
}

/// The namespace's pods not being deleted: (name, uid, controller uid).
fn live_pods(kc: &Path, home: &Path) -> Vec<(String, String, String)> {
    items(&get_json(kc, home, &["get", "pods", "-n", "r"]))
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .map(|p| {
            (
                s(p, "/metadata/name").to_string(),
                s(p, "/metadata/uid").to_string(),
                controller_uid(p),
            )
        })
        .collect()
}

/// Two replicas that stay Pending (no node matches), so the pods are what the controllers
/// made of them and nothing else.
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: r}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      nodeSelector: {no-such: node}\n      containers: [{name: c, image: reg.example/app:v1}]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_again_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        dump_on_failure(
            kc,
            home,
            &["get", "deploy,rs,jobs,pods", "-n", "r", "-o", "yaml"],
        );
        ok(kc, home, &["create", "namespace", "r"], None);
        ok(kc, home, &["apply", "-f", "-"], Some(DEPLOYMENT));
        let rs = eventually("a ReplicaSet with 2 pods", || {
            let rss = items(&get_json(kc, home, &["get", "rs", "-n", "r"]));
            let rs = rss.first()?.clone();
            (rss.len() == 1 && rs["status"]["replicas"] == 2).then_some(rs)
        });
        let rs_uid = s(&rs, "/metadata/uid").to_string();
        let pods: BTreeSet<(String, String)> = live_pods(kc, home)
            .into_iter()
            .map(|(n, u, c)| {
                assert_eq!(c, rs_uid);
                (n, u)
            })
            .collect();
        assert_eq!(pods.len(), 2);
        let pods_now = || -> BTreeSet<(String, String)> {
            live_pods(kc, home)
                .into_iter()
                .map(|(n, u, _)| (n, u))
                .collect()
        };

        // 1. the Deployment goes, its ReplicaSet stays without an owner
        ok(
            kc,
            home,
            &["delete", "deployment", "web", "-n", "r", "--cascade=orphan"],
            None,
        );
        eventually("the ReplicaSet orphaned", || {
            let rs = get_json(
                kc,
                home,
                &["get", "rs", s(&rs, "/metadata/name"), "-n", "r"],
            );
            controller_uid(&rs).is_empty().then_some(())
        });
        // created again: it adopts the ReplicaSet instead of making another
        ok(kc, home, &["apply", "-f", "-"], Some(DEPLOYMENT));
        let dep = get_json(kc, home, &["get", "deployment", "web", "-n", "r"]);
        let dep_uid = s(&dep, "/metadata/uid").to_string();
        eventually("the ReplicaSet adopted and the rollout seen", || {
            let d = get_json(kc, home, &["get", "deployment", "web", "-n", "r"]);
            let rss = items(&get_json(kc, home, &["get", "rs", "-n", "r"]));
            (rss.len() == 1
                && controller_uid(&rss[0]) == dep_uid
                && d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && d["status"]["replicas"] == 2
                && d["status"]["updatedReplicas"] == 2)
                .then_some(())
        });
        let rss = items(&get_json(kc, home, &["get", "rs", "-n", "r"]));
        assert_eq!(s(&rss[0], "/metadata/uid"), rs_uid, "the same ReplicaSet");
        assert_eq!(pods_now(), pods, "the same pods, none beside them");

        // 2. the ReplicaSet goes, its pods stay; the Deployment makes it again and the new
        // ReplicaSet adopts them. `--wait=false`: kubectl waits for a DELETED event of the
        // name, and when the Deployment has made the ReplicaSet again (same name) between
        // kubectl's first read and its watch, no such event ever comes (kubectl's race, not
        // the server's)
        ok(
            kc,
            home,
            &[
                "delete",
                "rs",
                s(&rs, "/metadata/name"),
                "-n",
                "r",
                "--cascade=orphan",
                "--wait=false",
            ],
            None,
        );
        let new_uid = eventually("a new ReplicaSet owning the old pods", || {
            let rss = items(&get_json(kc, home, &["get", "rs", "-n", "r"]));
            let rs = rss.first()?;
            let uid = s(rs, "/metadata/uid").to_string();
            let owned = live_pods(kc, home).iter().all(|(_, _, c)| *c == uid);
            (rss.len() == 1
                && uid != rs_uid
                && owned
                && rs["status"]["observedGeneration"] == rs["metadata"]["generation"]
                && rs["status"]["replicas"] == 2)
                .then_some(uid)
        });
        assert_eq!(pods_now(), pods, "the same pods, none beside them");
        assert!(live_pods(kc, home).iter().all(|(_, _, c)| *c == new_uid));

        // 3. a pod relabelled out of the selector is released and replaced
        let (first, _) = pods.iter().next().unwrap().clone();
        ok(
            kc,
            home,
            &["label", "pod", &first, "-n", "r", "app=gone", "--overwrite"],
            None,
        );
        eventually("the relabelled pod released and replaced", || {
            let live = live_pods(kc, home);
            let released = live.iter().any(|(n, _, c)| *n == first && c.is_empty());
            let owned = live.iter().filter(|(_, _, c)| *c == new_uid).count();
            (released && owned == 2).then_some(())
        });
    })
    .await
    .unwrap();
    server.shutdown().await;
}

fn has_tracking_finalizer(o: &Value) -> bool {
    o["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| f == "batch.kubernetes.io/job-tracking")
}

/// A Job with `manualSelector` over pods labelled `app: batch` that stay Pending.
fn manual_job(name: &str, n: u32) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}, namespace: r}}\nspec:\n  manualSelector: true\n  selector: {{matchLabels: {{app: batch}}}}\n  parallelism: {n}\n  completions: {n}\n  template:\n    metadata: {{labels: {{app: batch}}}}\n    spec:\n      restartPolicy: Never\n      nodeSelector: {{no-such: node}}\n      containers: [{{name: c, image: reg.example/app:v1}}]\n"
    )
}

/// The Job controller claims pods as `getPodsForJob` does: a Job deleted with
/// `--cascade=orphan` leaves its pods, which lose the tracking finalizer (`syncOrphanPod`);
/// a new Job with the same selector adopts them and a matching orphan made by hand (adding the
/// finalizer), creating none beside them; a pod relabelled out of the selector is released
/// (reference and finalizer removed) and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_adopts_orphans_and_releases_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        dump_on_failure(kc, home, &["get", "jobs,pods", "-n", "r", "-o", "yaml"]);
        let pods_json = || items(&get_json(kc, home, &["get", "pods", "-n", "r"]));
        ok(kc, home, &["create", "namespace", "r"], None);
        ok(kc, home, &["apply", "-f", "-"], Some(&manual_job("first", 2)));
        let first = get_json(kc, home, &["get", "job", "first", "-n", "r"]);
        let first_uid = s(&first, "/metadata/uid").to_string();
        eventually("the first Job's 2 pods", || {
            let pods = pods_json();
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| controller_uid(p) == first_uid && has_tracking_finalizer(p)))
            .then_some(())
        });

        // 1. orphaned: the pods stay, without the reference nor the tracking finalizer
        ok(
            kc,
            home,
            &["delete", "job", "first", "-n", "r", "--cascade=orphan"],
            None,
        );
        eventually("the pods orphaned and their finalizer removed", || {
            let pods = pods_json();
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| controller_uid(p).is_empty() && !has_tracking_finalizer(p)))
            .then_some(())
        });
        // an orphan made by hand; its finalizer going shows the controller has seen it
        ok(
            kc,
            home,
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n  namespace: r\n  labels: {app: batch}\n  finalizers: [batch.kubernetes.io/job-tracking]\nspec:\n  nodeSelector: {no-such: node}\n  containers: [{name: c, image: reg.example/app:v1}]\n"),
        );
        eventually("the stray pod's finalizer removed", || {
            let p = get_json(kc, home, &["get", "pod", "stray", "-n", "r"]);
            (!has_tracking_finalizer(&p)).then_some(())
        });
        let orphans: BTreeSet<String> = pods_json()
            .iter()
            .map(|p| s(p, "/metadata/uid").to_string())
            .collect();
        assert_eq!(orphans.len(), 3);

        // 2. a new Job with the same selector adopts all three and creates none
        ok(kc, home, &["apply", "-f", "-"], Some(&manual_job("second", 3)));
        let second = get_json(kc, home, &["get", "job", "second", "-n", "r"]);
        let second_uid = s(&second, "/metadata/uid").to_string();
        eventually("the orphans adopted by the second Job", || {
            let pods = pods_json();
            let job = get_json(kc, home, &["get", "job", "second", "-n", "r"]);
            (pods.len() == 3
                && pods
                    .iter()
                    .all(|p| controller_uid(p) == second_uid && has_tracking_finalizer(p))
                && job["status"]["active"] == 3)
                .then_some(())
        });
        let uids: BTreeSet<String> = pods_json()
            .iter()
            .map(|p| s(p, "/metadata/uid").to_string())
            .collect();
        assert_eq!(uids, orphans, "the same pods, none beside them");

        // 3. relabelled out of the selector: released and replaced
        ok(
            kc,
            home,
            &["label", "pod", "stray", "-n", "r", "app=gone", "--overwrite"],
            None,
        );
        eventually("the relabelled pod released and replaced", || {
            let pods = pods_json();
            let stray = pods.iter().find(|p| s(p, "/metadata/name") == "stray")?;
            let owned = pods
                .iter()
                .filter(|p| controller_uid(p) == second_uid)
                .count();
            (controller_uid(stray).is_empty() && !has_tracking_finalizer(stray) && owned == 3)
                .then_some(())
        });
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// `kubectl replace --force` of a Job: the Job is deleted and created again under its name. The
/// old Job's pods, deleted by the garbage collector, lose the tracking finalizer and go (the
/// new Job does not release them, the orphan-pod queue does), and the new Job runs its own;
/// so does a pod of the old Job deleted after the new one is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_jobs_pods_go_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        dump_on_failure(kc, home, &["get", "jobs,pods", "-n", "r", "-o", "yaml"]);
        let pods_json = || items(&get_json(kc, home, &["get", "pods", "-n", "r"]));
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi, namespace: r}\nspec:\n  parallelism: 2\n  completions: 2\n  template:\n    spec:\n      restartPolicy: Never\n      nodeSelector: {no-such: node}\n      containers: [{name: c, image: reg.example/app:v1}]\n";
        ok(kc, home, &["create", "namespace", "r"], None);
        ok(kc, home, &["apply", "-f", "-"], Some(job));
        let old_uid = s(&get_json(kc, home, &["get", "job", "pi", "-n", "r"]), "/metadata/uid").to_string();
        let old: BTreeSet<String> = eventually("the Job's 2 pods", || {
            let pods = pods_json();
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| controller_uid(p) == old_uid && has_tracking_finalizer(p)))
            .then(|| pods.iter().map(|p| s(p, "/metadata/uid").to_string()).collect())
        });
        let out = ok(kc, home, &["replace", "--force", "-f", "-"], Some(job));
        assert!(out.contains("job.batch/pi replaced"), "{out}");
        let new_uid = s(&get_json(kc, home, &["get", "job", "pi", "-n", "r"]), "/metadata/uid").to_string();
        assert_ne!(new_uid, old_uid);
        eventually("the old pods gone, the new Job's 2 running", || {
            let pods = pods_json();
            (pods.len() == 2
                && pods.iter().all(|p| {
                    controller_uid(p) == new_uid && !old.contains(s(p, "/metadata/uid"))
                }))
            .then_some(())
        });
        // the same without a sync of the deleted Job in between (delete and create collapsed
        // into one sync of the name): a pod of the old Job, still holding the finalizer, is
        // deleted (by the garbage collector, its owner being gone, or by kubectl, whichever
        // comes first) once the new Job is there; nothing but the orphan-pod queue releases it
        let leftover = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: leftover\n  namespace: r\n  finalizers: [batch.kubernetes.io/job-tracking]\n  ownerReferences: [{{apiVersion: batch/v1, kind: Job, name: pi, uid: {old_uid}, controller: true}}]\nspec:\n  nodeSelector: {{no-such: node}}\n  containers: [{{name: c, image: reg.example/app:v1}}]\n");
        ok(kc, home, &["create", "-f", "-"], Some(&leftover));
        ok(kc, home, &["delete", "pod", "leftover", "-n", "r", "--wait=false", "--ignore-not-found"], None);
        eventually("the old Job's deleted pod gone", || {
            pods_json()
                .iter()
                .all(|p| s(p, "/metadata/name") != "leftover")
                .then_some(())
        });
    })
    .await
    .unwrap();
    server.shutdown().await;
}
