//! End to end: Jobs on `kubepull up` (API server, controllers, node agent with real runc, a real
//! registry with a pull secret): an Indexed Job's pods run to completion with their
//! `JOB_COMPLETION_INDEX`, the Job completes; a failing Job with `backoffLimit: 0` fails with
//! `BackoffLimitExceeded`; a running pod of a Job with a `podFailurePolicy`, deleted, is reported
//! Failed by the node and replaced; deleting a Job deletes its pods.

mod common;

use std::time::{Duration, Instant};

use common::*;

use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "jobs-e2e";
const PASS: &str = "Jobs-E2e-Registry-Pass-42";

fn job_json(up: &Up, name: &str) -> serde_json::Value {
    serde_json::from_str(&up.ok(&["get", "job", name, "-o", "json"])).unwrap()
}

/// Waits until the Job has a true condition of `ty`.
fn wait_condition(up: &Up, name: &str, ty: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let j = job_json(up, name);
        let done = j["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"));
        if done {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} never got {ty}: {}\n{}\n--- kubepull up log ---\n{}",
            serde_json::to_string_pretty(&j).unwrap_or_default(),
            up.ok(&["get", "pods", "-o", "wide"]),
            up.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn jobs_run_to_completion_on_the_node() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["/bin/sh", "-c", "echo index=$JOB_COMPLETION_INDEX"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("batch/work", "v1", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let up = start_up(hosts.path());
    let image = format!("{}/batch/work:v1", reg.host());
    up.create_pull_secret("regcred", &reg.host(), USER, PASS, &[]);

    up.apply(&format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: idx}}\nspec:\n  completions: 2\n  parallelism: 2\n  completionMode: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n      imagePullSecrets: [{{name: regcred}}]\n      containers: [{{name: work, image: \"{image}\"}}]\n"
    ));
    let j = wait_condition(&up, "idx", "Complete");
    assert_eq!(j["status"]["succeeded"], 2, "{j}");
    // two indexes are written as upstream writes an interval of two: `0,1`
    assert_eq!(j["status"]["completedIndexes"], "0,1", "{j}");
    assert!(j["status"]["completionTime"].is_string(), "{j}");
    let table = up.ok(&["get", "job", "idx"]);
    assert!(table.contains("Complete   2/2"), "{table}");
    // each pod ran with its own index, and is no longer held by the tracking finalizer
    let pods: serde_json::Value = serde_json::from_str(&up.ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=idx",
        "-o",
        "json",
    ]))
    .unwrap();
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{pods}");
    let mut seen = vec![];
    for p in items {
        assert_eq!(p["status"]["phase"], "Succeeded", "{p}");
        assert!(
            p["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{p}"
        );
        let name = p["metadata"]["name"].as_str().unwrap();
        let logs = up.ok(&["logs", name]);
        seen.push(logs.trim().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["index=0", "index=1"]);

    // a pod that fails with backoffLimit 0: FailureTarget, then Failed
    up.apply(&format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: boom}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      imagePullSecrets: [{{name: regcred}}]\n      containers: [{{name: work, image: \"{image}\", command: [/bin/sh, -c, \"exit 3\"]}}]\n"
    ));
    let j = wait_condition(&up, "boom", "Failed");
    let failed = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{j}");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(j["status"]["failed"], 1, "{j}");
    let table = up.ok(&["get", "job", "boom"]);
    assert!(table.contains("Failed   0/1"), "{table}");

    // a pod of a Job with a podFailurePolicy deleted while it runs: the node stops it and
    // reports it Failed (exit 137 once the 1 s grace period is over) before the pod object
    // goes, the policy ignores that failure (backoffLimit 0 is not reached) and the Job
    // replaces the pod; a pod left Running while it terminates would never be replaced
    up.apply(&format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: pfp}}\nspec:\n  backoffLimit: 0\n  podFailurePolicy:\n    rules: [{{action: Ignore, onExitCodes: {{operator: In, values: [137, 143]}}}}]\n  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      imagePullSecrets: [{{name: regcred}}]\n      containers: [{{name: work, image: \"{image}\", command: [/bin/sh, -c, \"sleep 3600\"]}}]\n"
    ));
    let running = |except: &str| -> Option<String> {
        let pods: serde_json::Value = serde_json::from_str(&up.ok(&[
            "get",
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=pfp",
            "-o",
            "json",
        ]))
        .unwrap();
        pods["items"].as_array()?.iter().find_map(|p| {
            let name = p["metadata"]["name"].as_str()?;
            (name != except && p["status"]["phase"] == "Running").then(|| name.to_string())
        })
    };
    let wait_running = |except: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(name) = running(except) {
                return name;
            }
            assert!(
                Instant::now() < deadline,
                "no running pod of job pfp besides {except:?}: {}\n{}\n{}",
                up.ok(&["get", "pods", "-o", "wide"]),
                up.ok(&["get", "job", "pfp", "-o", "yaml"]),
                up.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let first = wait_running("");
    up.ok(&["delete", "pod", &first, "--wait=false"]);
    let second = wait_running(&first);
    assert_ne!(first, second);
    let j = job_json(&up, "pfp");
    assert!(
        j["status"]["conditions"]
            .as_array()
            .is_none_or(|cs| cs.iter().all(|c| c["type"] != "Failed")),
        "the ignored failure failed the Job: {j}"
    );
    assert!(j["status"]["failed"].as_i64().unwrap_or(0) == 0, "{j}");
    up.ok(&["delete", "job", "pfp", "--wait=false"]);

    // deleting a Job deletes its pods
    up.ok(&["delete", "job", "idx"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = up.ok(&[
            "get",
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=idx",
            "-o",
            "name",
        ]);
        if out.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "pods left: {out}\n{}", up.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}
