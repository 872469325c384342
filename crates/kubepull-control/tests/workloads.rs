//! Services, Endpoints, EndpointSlices, Jobs and CronJobs with the real kubectl against the API
//! server and its controllers; ClusterIP allocation under concurrent creates and across a
//! restart; Table `includeObject` as kubectl's `--sort-by` uses it.

use std::time::Duration;

use kubepull_control::start;
use serde_json::{json, Value};

mod common;
use common::{eventually, get_json, kubectl, ok, refused, server_config};

const APPS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: reg.example/app:v1
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: np, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080}]
"#;

/// The `kubernetes` Service, cluster-info, expose, NodePort and headless Services, Endpoints and
/// EndpointSlices following pod readiness, `get all`, validation texts, `--sort-by`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_endpoints_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let url = server.url();
    let port = url.rsplit(':').next().unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        // the kubernetes Service: the first address of 10.96.0.0/12, 443 → the server's port
        let out = ok(kc, home, &["get", "svc", "kubernetes"], None);
        let line = out.lines().nth(1).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cols[..5], ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"], "{out}");
        assert!(out.starts_with("NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE"), "{out}");
        let ep = ok(kc, home, &["get", "endpoints", "kubernetes"], None);
        assert!(ep.contains(&format!("127.0.0.1:{port}")), "{ep}");
        let sl = get_json(kc, home, &["get", "endpointslice", "kubernetes"]);
        assert_eq!(sl["endpoints"][0]["addresses"][0], "127.0.0.1");
        let out = ok(kc, home, &["cluster-info"], None);
        assert!(out.contains(&format!("Kubernetes control plane is running at {url}")), "{out}");

        // a Deployment, then expose it (kubectl expose posts JSON)
        ok(kc, home, &["apply", "-f", "-"], Some(APPS));
        let out = ok(kc, home, &["expose", "deployment", "web", "--port=80", "--target-port=8080"], None);
        assert!(out.contains("service/web exposed"), "{out}");
        let svc = get_json(kc, home, &["get", "svc", "web"]);
        let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.") && ip != "10.96.0.1", "{svc}");
        assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
        let np = get_json(kc, home, &["get", "svc", "np"]);
        assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
        let out = ok(kc, home, &["get", "svc", "np", "headless", "-o", "wide"], None);
        assert!(out.contains("80:30080/TCP") && out.contains("app=web"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("headless") && l.contains("None")), "{out}");
        // re-applying keeps the allocated address and port
        ok(kc, home, &["apply", "-f", "-"], Some(APPS));
        let np2 = get_json(kc, home, &["get", "svc", "np"]);
        assert_eq!(np2["spec"]["clusterIP"], np["spec"]["clusterIP"]);

        // the same NodePort again, a changed ClusterIP, a bad port: the upstream texts
        let dup = APPS.split("---").nth(1).unwrap().replace("name: np", "name: np2");
        let (good, out) = kubectl(kc, home, &["apply", "-f", "-"], Some(&dup));
        assert!(!good && out.contains("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"), "{out}");
        let (good, out) = kubectl(kc, home, &["patch", "svc", "web", "--type=merge", "-p", r#"{"spec":{"clusterIP":"10.96.0.99","clusterIPs":["10.96.0.99"]}}"#], None);
        assert!(!good && out.contains("may not change once set"), "{out}");
        let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  ports: [{port: 70000, protocol: FOO}]\n";
        refused(kc, home, &["apply", "-f", "-"], Some(bad), &[
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[0].protocol: Unsupported value: \"FOO\"",
        ]);

        // no pod has an IP yet: the Endpoints exist, empty
        let out = eventually("Endpoints of web", || {
            let (good, out) = kubectl(kc, home, &["get", "endpoints", "web"], None);
            good.then_some(out)
        });
        assert!(out.contains("<none>"), "{out}");
        // a pod on a node gets an IP and turns ready (as the node would report it)
        let direct = "apiVersion: v1\nkind: Pod\nmetadata: {name: direct, labels: {app: web}}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: reg.example/app:v1, ports: [{name: http, containerPort: 8080}]}]\n";
        ok(kc, home, &["apply", "-f", "-"], Some(direct));
        let pod = "direct".to_string();
        let status = r#"{"status":{"phase":"Running","podIP":"10.244.0.7","podIPs":[{"ip":"10.244.0.7"}],"conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"True"}]}}"#;
        ok(kc, home, &["patch", "pod", &pod, "--subresource=status", "--type=merge", "-p", status], None);
        let mut out = String::new();
        for k in 0..150 {
            out = ok(kc, home, &["get", "endpoints", "web", "np", "headless"], None);
            if out.contains("10.244.0.7:8080") && !out.contains("<none>") {
                break;
            }
            assert!(k < 149, "ready address never in Endpoints: {out}\n{}", ok(kc, home, &["get", "pods,endpoints,endpointslices", "-o", "yaml"], None));
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(out.matches("10.244.0.7:8080").count(), 3, "{out}");
        let ep = get_json(kc, home, &["get", "endpoints", "web"]);
        assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["name"], pod.as_str());
        let out = ok(kc, home, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"], None);
        assert!(out.contains("IPv4") && out.contains("8080") && out.contains("10.244.0.7"), "{out}");
        let out = ok(kc, home, &["describe", "svc", "web"], None);
        assert!(out.contains("10.244.0.7:8080") && out.contains(&ip), "{out}");
        let hl = get_json(kc, home, &["get", "endpoints", "headless"]);
        assert_eq!(hl["metadata"]["labels"]["service.kubernetes.io/headless"], "");
        // not ready any more: the address moves to notReadyAddresses, the slice says ready=false
        let unready = r#"{"status":{"conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"False"}]}}"#;
        ok(kc, home, &["patch", "pod", &pod, "--subresource=status", "--type=merge", "-p", unready], None);
        eventually("not-ready address", || {
            let ep = get_json(kc, home, &["get", "endpoints", "web"]);
            (ep["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.244.0.7").then_some(())
        });
        eventually("slice condition", || {
            let v = get_json(kc, home, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
            (v["items"][0]["endpoints"][0]["conditions"]["ready"] == false).then_some(())
        });

        // get all: pods, services, deployments, replicasets
        let out = ok(kc, home, &["get", "all"], None);
        for want in ["pod/web-", "service/kubernetes", "service/web", "deployment.apps/web", "replicaset.apps/web-"] {
            assert!(out.contains(want), "{want} missing from: {out}");
        }
        // Table rows carry what --sort-by, --show-labels and custom columns read
        let out = ok(kc, home, &["get", "svc", "--sort-by=.spec.clusterIP", "-o", "name"], None);
        assert!(out.contains("service/kubernetes"), "{out}");
        let out = ok(kc, home, &["get", "svc", "--sort-by=.metadata.name"], None);
        let names: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["headless", "kubernetes", "np", "web"], "{out}");
        let out = ok(kc, home, &["get", "events", "-A", "--sort-by=.lastTimestamp"], None);
        assert!(out.contains("ScalingReplicaSet") || out.contains("SuccessfulCreate"), "{out}");
        let out = ok(kc, home, &["get", "svc", "kubernetes", "--show-labels"], None);
        assert!(out.contains("component=apiserver,provider=kubernetes"), "{out}");
        let out = ok(kc, home, &["get", "svc", "-o", "custom-columns=N:.metadata.name,IP:.spec.clusterIP"], None);
        assert!(out.contains("kubernetes   10.96.0.1"), "{out}");

        // deleting the Service removes its Endpoints and slices, and frees its address
        ok(kc, home, &["delete", "svc", "web"], None);
        eventually("Endpoints gone", || {
            let (good, _) = kubectl(kc, home, &["get", "endpoints", "web"], None);
            (!good).then_some(())
        });
        eventually("slices gone", || {
            let v = get_json(kc, home, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
            v["items"].as_array().unwrap().is_empty().then_some(())
        });
        let again = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: again}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 80}}]\n");
        ok(kc, home, &["apply", "-f", "-"], Some(&again));
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Concurrent creates never share an address; a full range says so; the allocations are
/// rebuilt from the stored Services after a restart and freed on delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_are_unique_under_concurrency_and_survive_restart() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = server_config(d.path(), false);
    cfg.datastore = String::new(); // redb in the data dir: survives the restart
    cfg.service_cluster_ip_range = Some("10.100.0.0/27".into());
    let server = start(cfg.clone()).await.unwrap();
    let objects = server.objects();
    let svc_r = kubepull_control::resources::find("", "v1", "services").unwrap();
    let mut tasks = vec![];
    for n in 0..40 {
        let o = objects.clone();
        tasks.push(tokio::spawn(async move {
            o.create(
                svc_r,
                "default",
                json!({"metadata": {"name": format!("s{n}")}, "spec": {"ports": [{"port": 80}]}}),
                &kubepull_control::objects::User::Admin,
                false,
            )
            .await
        }));
    }
    let mut ips = std::collections::HashSet::new();
    let mut full = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => assert!(
                ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string()),
                "{s}"
            ),
            Err(e) => {
                assert!(e.message.contains("range is full"), "{}", e.message);
                full += 1;
            }
        }
    }
    // 30 usable addresses, one taken by the kubernetes Service
    assert_eq!(ips.len(), 29);
    assert_eq!(full, 11);
    assert!(!ips.contains("10.100.0.1"));
    drop(objects); // it holds the store (and redb's lock)
    server.shutdown().await;

    let server = start(cfg).await.unwrap();
    let objects = server.objects();
    let taken = ips.iter().next().unwrap().clone();
    let e = objects
        .create(
            svc_r,
            "default",
            json!({"metadata": {"name": "dup"}, "spec": {"clusterIP": taken, "ports": [{"port": 80}]}}),
            &kubepull_control::objects::User::Admin,
            false,
        )
        .await
        .unwrap_err();
    assert!(
        e.message.contains("provided IP is already allocated"),
        "{}",
        e.message
    );
    let owner = objects
        .list(svc_r, Some("default"), &Default::default())
        .await
        .unwrap()
        .0
        .into_iter()
        .find(|s| s["spec"]["clusterIP"] == taken.as_str())
        .unwrap();
    objects
        .delete(
            svc_r,
            "default",
            owner["metadata"]["name"].as_str().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    objects
        .create(
            svc_r,
            "default",
            json!({"metadata": {"name": "dup"}, "spec": {"clusterIP": taken, "ports": [{"port": 80}]}}),
            &kubepull_control::objects::User::Admin,
            false,
        )
        .await
        .unwrap();
    drop(objects);
    server.shutdown().await;
}

const JOBS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  completions: 2
  parallelism: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: reg.example/pi:v1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: reg.example/tick:v1}]
"#;

/// A Job runs its pods one after the other to completion (pods finish as a node would report),
/// counts them through the tracking finalizer, completes, and takes its pods with it when
/// deleted; CronJobs print and validate as upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_cronjobs_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        ok(kc, home, &["apply", "-f", "-"], Some(JOBS));
        let job = get_json(kc, home, &["get", "job", "pi"]);
        let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
        assert_eq!(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid.as_str());
        assert_eq!(job["spec"]["backoffLimit"], 6);
        for round in 0..2 {
            // one pod at a time (parallelism 1), with the tracking finalizer
            let pod = eventually("a running pod of the Job", || {
                let v = get_json(kc, home, &["get", "pods", "-l", &format!("batch.kubernetes.io/controller-uid={uid}")]);
                v["items"].as_array().unwrap().iter().find(|p| p["status"]["phase"] != "Succeeded").cloned()
            });
            assert_eq!(pod["metadata"]["finalizers"], json!(["batch.kubernetes.io/job-tracking"]), "{pod}");
            assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Job");
            let name = pod["metadata"]["name"].as_str().unwrap().to_string();
            assert!(name.starts_with("pi-"), "{name}");
            let done = r#"{"status":{"phase":"Succeeded","containerStatuses":[{"name":"c","ready":false,"restartCount":0,"image":"reg.example/pi:v1","imageID":"","state":{"terminated":{"exitCode":0,"reason":"Completed","finishedAt":"2026-01-01T00:00:00Z"}}}]}}"#;
            ok(kc, home, &["patch", "pod", &name, "--subresource=status", "--type=merge", "-p", done], None);
            eventually("the finalizer removed after counting", || {
                let p = get_json(kc, home, &["get", "pod", &name]);
                p["metadata"]["finalizers"].as_array().is_none_or(|a| a.is_empty()).then_some(())
            });
            let j = get_json(kc, home, &["get", "job", "pi"]);
            assert!(j["status"]["succeeded"].as_i64().unwrap_or(0) + j["status"]["uncountedTerminatedPods"]["succeeded"].as_array().map(|a| a.len() as i64).unwrap_or(0) > round, "{j}");
        }
        let out = ok(kc, home, &["wait", "--for=condition=complete", "job/pi", "--timeout=60s"], None);
        assert!(out.contains("condition met"), "{out}");
        let j = get_json(kc, home, &["get", "job", "pi"]);
        assert_eq!(j["status"]["succeeded"], 2, "{j}");
        let types: Vec<&str> = j["status"]["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{j}");
        assert!(j["status"]["completionTime"].is_string());
        let out = ok(kc, home, &["get", "job", "pi"], None);
        assert!(out.starts_with("NAME   STATUS     COMPLETIONS   DURATION   AGE"), "{out}");
        assert!(out.contains("Complete   2/2"), "{out}");

        // CronJobs: printed with their schedule; a bad schedule or time zone is refused
        let out = ok(kc, home, &["get", "cronjobs"], None);
        assert!(out.starts_with("NAME   SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE"), "{out}");
        // (ACTIVE is left out: the schedule fires every minute and may have just done so)
        assert!(out.contains("*/1 * * * *   <none>     False     "), "{out}");
        let bad = JOBS.split("---").nth(1).unwrap().replace("*/1 * * * *", "61 * * * *").replace("name: tick", "name: bad");
        let (good, out) = kubectl(kc, home, &["apply", "-f", "-"], Some(&bad));
        assert!(!good && out.contains("spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"), "{out}");
        let cj = get_json(kc, home, &["get", "cronjob", "tick"]);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        let out = ok(kc, home, &["get", "all"], None);
        assert!(out.contains("job.batch/pi") && out.contains("cronjob.batch/tick"), "{out}");
        let out = ok(kc, home, &["describe", "job", "pi"], None);
        assert!(out.contains("Created pod: pi-") && out.contains("Completed"), "{out}");

        // the CronJob catches up from its last schedule time: the latest missed minute runs now,
        // as a Job named after that minute, owned by the CronJob and in its active list
        let before = jiff::Timestamp::now();
        let past = (before - jiff::SignedDuration::from_secs(600)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let patch = format!(r#"{{"status":{{"lastScheduleTime":"{past}"}}}}"#);
        ok(kc, home, &["patch", "cronjob", "tick", "--subresource=status", "--type=merge", "-p", &patch], None);
        let job = eventually("the CronJob's Job", || {
            let v = get_json(kc, home, &["get", "jobs"]);
            v["items"].as_array().unwrap().iter().find(|j| j["metadata"]["ownerReferences"][0]["name"] == "tick").cloned()
        });
        let name = job["metadata"]["name"].as_str().unwrap();
        let minutes: i64 = name.strip_prefix("tick-").unwrap().parse().unwrap();
        let scheduled: jiff::Timestamp = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(minutes * 60, scheduled.as_second(), "{job}");
        assert!(scheduled <= jiff::Timestamp::now() && scheduled.as_second() > before.as_second() - 120, "{job}");
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        let juid = job["metadata"]["uid"].as_str().unwrap().to_string();
        eventually("the Job in the CronJob's active list", || {
            let cj = get_json(kc, home, &["get", "cronjob", "tick"]);
            (cj["status"]["active"][0]["uid"] == juid.as_str()).then_some(())
        });
        let out = ok(kc, home, &["get", "cronjob", "tick"], None);
        assert!(out.contains("False     1"), "{out}");
        assert_eq!(get_json(kc, home, &["get", "job", name])["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");

        // a template Pod Security forbids: kubectl is warned, the Job's pods are refused with
        // FailedCreate events on the Job
        let privileged = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: priv}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1, securityContext: {privileged: true}}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(privileged));
        assert!(out.contains("Warning: would violate PodSecurity \"baseline:latest\""), "{out}");
        let out = eventually("FailedCreate on the Job", || {
            let out = ok(kc, home, &["get", "events", "--field-selector", "involvedObject.name=priv"], None);
            out.contains("FailedCreate").then_some(out)
        });
        assert!(out.contains("Error creating: pods") && out.contains("violates PodSecurity"), "{out}");

        let spp = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: spp}\nspec:\n  completionMode: Indexed\n  completions: 1\n  successPolicy:\n    rules: [{succeededCount: 1}]\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(spp));
        assert!(out.contains("job.batch/spp created") && !out.contains("Warning"), "{out}");

        let out = ok(kc, home, &["api-resources", "--api-group=batch"], None);
        assert!(out.contains("cronjobs") && out.contains("cj") && out.contains("jobs"), "{out}");
        let out = ok(kc, home, &["api-resources", "--api-group=discovery.k8s.io"], None);
        assert!(out.contains("endpointslices"), "{out}");

        // suspend: the pods go and the Job says Suspended; resume: pods again
        let sus = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: sus}\nspec:\n  completions: 4\n  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        ok(kc, home, &["apply", "-f", "-"], Some(sus));
        let pods_of = |job: &str| -> usize {
            let v = get_json(kc, home, &["get", "pods", "-l", &format!("batch.kubernetes.io/job-name={job}")]);
            v["items"].as_array().unwrap().len()
        };
        eventually("two pods of sus", || (pods_of("sus") == 2).then_some(()));
        ok(kc, home, &["patch", "job", "sus", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#], None);
        eventually("sus suspended without pods", || {
            let j = get_json(kc, home, &["get", "job", "sus"]);
            let suspended = j["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True"));
            (suspended && pods_of("sus") == 0 && j["status"].get("active").is_none()).then_some(())
        });
        let out = ok(kc, home, &["get", "job", "sus"], None);
        assert!(out.contains("Suspended"), "{out}");
        ok(kc, home, &["patch", "job", "sus", "--type=merge", "-p", r#"{"spec":{"suspend":false}}"#], None);
        eventually("sus resumed with pods", || {
            let j = get_json(kc, home, &["get", "job", "sus"]);
            let resumed = j["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Suspended" && c["status"] == "False" && c["reason"] == "JobResumed"));
            (resumed && pods_of("sus") == 2).then_some(())
        });

        // ttlSecondsAfterFinished: 0: the finished Job goes at once, with its pod
        let ttl = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: ttl}\nspec:\n  ttlSecondsAfterFinished: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        ok(kc, home, &["apply", "-f", "-"], Some(ttl));
        let pod = eventually("the ttl Job's pod", || {
            let v = get_json(kc, home, &["get", "pods", "-l", "batch.kubernetes.io/job-name=ttl"]);
            v["items"][0]["metadata"]["name"].as_str().map(str::to_string)
        });
        let done = r#"{"status":{"phase":"Succeeded"}}"#;
        ok(kc, home, &["patch", "pod", &pod, "--subresource=status", "--type=merge", "-p", done], None);
        eventually("the ttl Job and its pod gone", || {
            let (job_there, _) = kubectl(kc, home, &["get", "job", "ttl"], None);
            let (pod_there, _) = kubectl(kc, home, &["get", "pod", &pod], None);
            (!job_there && !pod_there).then_some(())
        });

        // deleting the Job takes its pods (the garbage collector), none held by a finalizer
        ok(kc, home, &["delete", "job", "pi"], None);
        eventually("the Job's pods gone", || {
            let v = get_json(kc, home, &["get", "pods", "-l", &format!("batch.kubernetes.io/controller-uid={uid}")]);
            v["items"].as_array().unwrap().is_empty().then_some(())
        });
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The objects `kubectl create service|cronjob|job --from` build (rendered client-side, then
/// applied as JSON) are accepted and behave as on a real cluster; `create job --from` reads the
/// CronJob through kubectl's typed client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generated_workloads_apply() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        let render_apply = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--dry-run=client", "-o", "yaml"]);
            let yaml = ok(kc, home, &a, None);
            ok(kc, home, &["apply", "-f", "-"], Some(&yaml))
        };
        render_apply(&["create", "service", "clusterip", "c1", "--tcp=80:8080"]);
        render_apply(&[
            "create",
            "service",
            "nodeport",
            "n1",
            "--tcp=80:8080",
            "--node-port=30123",
        ]);
        render_apply(&["create", "service", "clusterip", "h1", "--clusterip=None"]);
        render_apply(&[
            "create",
            "service",
            "externalname",
            "e1",
            "--external-name=example.com",
        ]);
        let out = ok(kc, home, &["get", "svc", "c1", "n1", "h1", "e1"], None);
        assert!(
            out.contains("80/TCP") && out.contains("80:30123/TCP"),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("h1") && l.contains("None")),
            "{out}"
        );
        assert!(
            out.lines().any(|l| l.starts_with("e1")
                && l.contains("ExternalName")
                && l.contains("example.com")),
            "{out}"
        );
        render_apply(&[
            "create",
            "cronjob",
            "nightly",
            "--image=reg.example/x:v1",
            "--schedule=0 3 * * *",
        ]);
        let out = render_apply(&["create", "job", "manual", "--from=cronjob/nightly"]);
        assert!(out.contains("job.batch/manual created"), "{out}");
        let j = get_json(kc, home, &["get", "job", "manual"]);
        assert_eq!(
            j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual",
            "{j}"
        );
        assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        // the Job runs its pod (and the CronJob does not count it as its own schedule)
        eventually("the manual Job's pod", || {
            let v = get_json(
                kc,
                home,
                &["get", "pods", "-l", "batch.kubernetes.io/job-name=manual"],
            );
            (!v["items"].as_array().unwrap().is_empty()).then_some(())
        });
        let cj = get_json(kc, home, &["get", "cronjob", "nightly"]);
        assert!(cj["status"].get("lastScheduleTime").is_none(), "{cj}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The same commands as kubectl sends them: protobuf bodies from its typed clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_workloads_protobuf() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        ok(
            kc,
            home,
            &["create", "service", "clusterip", "c1", "--tcp=80:8080"],
            None,
        );
        ok(
            kc,
            home,
            &["create", "service", "nodeport", "n1", "--tcp=80:8080"],
            None,
        );
        ok(
            kc,
            home,
            &[
                "create",
                "service",
                "clusterip",
                "h1",
                "--clusterip=None",
                "--tcp=80:8080",
            ],
            None,
        );
        let h1 = get_json(kc, home, &["get", "svc", "h1"]);
        assert_eq!(h1["spec"]["clusterIP"], "None", "{h1}");
        let svc = get_json(kc, home, &["get", "svc", "n1"]);
        assert!(
            svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap() >= 30000,
            "{svc}"
        );
        ok(
            kc,
            home,
            &[
                "create",
                "cronjob",
                "nightly",
                "--image=reg.example/x:v1",
                "--schedule=0 3 * * *",
            ],
            None,
        );
        let out = ok(
            kc,
            home,
            &["create", "job", "manual", "--from=cronjob/nightly"],
            None,
        );
        assert!(out.contains("job.batch/manual created"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Two API servers over one datastore (each with its own allocation state, as two
/// `kubepull server` processes on one etcd): concurrent creates on both never share an address,
/// and an address one server frees the other can give out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_share_a_cluster_ip() {
    use kubepull_control::objects::{Objects, User};
    use kubepull_control::services::ServiceRange;
    let store: std::sync::Arc<dyn kubepull_datastore::Datastore> =
        std::sync::Arc::new(kubepull_datastore::memory::MemoryStore::new());
    let range = ServiceRange::parse("10.100.0.0/27").unwrap();
    let a = Objects::new(store.clone()).with_service_range(range);
    let b = Objects::new(store.clone()).with_service_range(range);
    a.bootstrap().await.unwrap();
    let svc_r = kubepull_control::resources::find("", "v1", "services").unwrap();
    let mut tasks = vec![];
    for n in 0..40 {
        let o = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            o.create(
                svc_r,
                "default",
                json!({"metadata": {"name": format!("s{n}")}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
                &User::Admin,
                false,
            )
            .await
        }));
    }
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for t in tasks {
        if let Ok(s) = t.await.unwrap() {
            assert!(
                ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string()),
                "{s}"
            );
            assert!(
                ports.insert(s["spec"]["ports"][0]["nodePort"].as_i64().unwrap()),
                "{s}"
            );
        }
    }
    assert_eq!(ips.len(), 30, "every usable address of the /27, once");
    // b frees one of a's; a can give it out again (a static request checks the store)
    let (list, _, _) = b
        .list(svc_r, Some("default"), &Default::default())
        .await
        .unwrap();
    let victim = list[0].clone();
    let ip = victim["spec"]["clusterIP"].as_str().unwrap().to_string();
    b.delete(
        svc_r,
        "default",
        victim["metadata"]["name"].as_str().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    a.create(
        svc_r,
        "default",
        json!({"metadata": {"name": "reuse"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}),
        &User::Admin,
        false,
    )
    .await
    .unwrap();
    let e = b
        .create(
            svc_r,
            "default",
            json!({"metadata": {"name": "again"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap_err();
    assert!(
        e.message.contains("provided IP is already allocated"),
        "{}",
        e.message
    );
}

/// A pod status as the node agent writes it: the pod failed, its container `c` exited `code`.
fn failed_status(code: i32) -> String {
    json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "c", "ready": false,
        "restartCount": 0, "image": "reg.example/x:v1", "imageID": "",
        "state": {"terminated": {"exitCode": code, "reason": "Error",
            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}]}})
    .to_string()
}

/// `podFailurePolicy` with kubectl: an invalid policy is refused with upstream's field paths;
/// a failure an `Ignore` rule matches is not counted (with `backoffLimit: 0` the Job goes on,
/// the pod is replaced), one a `FailJob` rule matches fails the Job with reason
/// `PodFailurePolicy` and upstream's message; a CronJob with a policy in its job template is
/// accepted and creates its Jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failure_policy_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        let bad = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  podFailurePolicy:\n    rules:\n    - {action: FailJob, onExitCodes: {operator: In, values: [0, 42]}}\n    - {action: Ignore}\n  template:\n    spec:\n      restartPolicy: OnFailure\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        refused(kc, home, &["apply", "-f", "-"], Some(bad), &[
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
            "spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ]);

        let pfp = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pfp, namespace: default}\nspec:\n  backoffLimit: 0\n  podFailurePolicy:\n    rules:\n    - {action: Ignore, onExitCodes: {operator: In, values: [3]}}\n    - {action: FailJob, onExitCodes: {containerName: c, operator: In, values: [42]}}\n  template:\n    spec:\n      restartPolicy: Never\n      nodeSelector: {no-such: node}\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(pfp));
        assert!(!out.contains("Warning"), "{out}");
        let pods = || -> Vec<Value> {
            get_json(kc, home, &["get", "pods", "-l", "batch.kubernetes.io/job-name=pfp"])["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let name = |p: &Value| p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let first = eventually("the Job's pod", || pods().first().map(name));
        // exit code 3: ignored, not counted, replaced after the back-off
        ok(kc, home, &["patch", "pod", &first, "--subresource=status", "--type=merge", "-p", &failed_status(3)], None);
        let second = eventually("a replacement for the ignored failure", || {
            pods().iter().map(name).find(|n| *n != first)
        });
        let job = get_json(kc, home, &["get", "job", "pfp"]);
        assert!(job["status"].get("failed").is_none(), "{job}");
        assert!(job["status"]["conditions"].as_array().is_none_or(|c| c.iter().all(|c| c["type"] != "FailureTarget")), "{job}");
        let p = get_json(kc, home, &["get", "pod", &first]);
        assert!(p["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty), "{p}");
        // exit code 42: the Job fails by its policy
        ok(kc, home, &["patch", "pod", &second, "--subresource=status", "--type=merge", "-p", &failed_status(42)], None);
        let failed = eventually("the Job Failed by its pod failure policy", || {
            let job = get_json(kc, home, &["get", "job", "pfp"]);
            job["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Failed" && c["status"] == "True")
                .cloned()
                .map(|c| (c, job))
        });
        assert_eq!(failed.0["reason"], "PodFailurePolicy");
        assert_eq!(
            failed.0["message"],
            format!("Container c for pod default/{second} failed with exit code 42 matching FailJob rule at index 1")
        );
        assert_eq!(failed.1["status"]["failed"], 1, "only the FailJob failure counted");
        let out = ok(kc, home, &["get", "events", "--field-selector", "involvedObject.name=pfp"], None);
        assert!(out.contains("PodFailurePolicy"), "{out}");

        // a CronJob whose job template has a podFailurePolicy is accepted (its template gets no
        // Job defaults, as upstream) and its Jobs default to podReplacementPolicy Failed
        let cj = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: pfpcron}\nspec:\n  schedule: \"*/1 * * * *\"\n  jobTemplate:\n    spec:\n      podFailurePolicy:\n        rules:\n        - {action: FailJob, onExitCodes: {operator: In, values: [42]}}\n      template:\n        spec:\n          restartPolicy: Never\n          nodeSelector: {no-such: node}\n          containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(cj));
        assert!(out.contains("cronjob.batch/pfpcron created"), "{out}");
        let stored = get_json(kc, home, &["get", "cronjob", "pfpcron"]);
        assert!(stored["spec"]["jobTemplate"]["spec"].get("podReplacementPolicy").is_none(), "{stored}");
        let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let patch = format!(r#"{{"status":{{"lastScheduleTime":"{past}"}}}}"#);
        ok(kc, home, &["patch", "cronjob", "pfpcron", "--subresource=status", "--type=merge", "-p", &patch], None);
        let job = eventually("the CronJob's Job", || {
            let v = get_json(kc, home, &["get", "jobs"]);
            v["items"].as_array().unwrap().iter().find(|j| j["metadata"]["ownerReferences"][0]["name"] == "pfpcron").cloned()
        });
        assert_eq!(job["spec"]["podReplacementPolicy"], "Failed", "{job}");
        assert_eq!(job["spec"]["podFailurePolicy"]["rules"][0]["action"], "FailJob", "{job}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// `backoffLimitPerIndex`, `successPolicy` and `managedBy` with kubectl: an index's failure is
/// retried once by a pod carrying `job-index-failure-count: 1`, its second failure fails the
/// index (`status.failedIndexes`), and once the other index succeeds the Job fails with
/// `FailedIndexes`; a success policy met by index 0 completes a Job with reason
/// `SuccessPolicy` and deletes its other pods; a Job managed by another controller gets no
/// pods and no status; invalid specs are refused with upstream's texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_limit_per_index_success_policy_and_managed_by_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        let bad = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  backoffLimitPerIndex: 1\n  managedBy: nope\n  successPolicy:\n    rules: [{succeededCount: 1}]\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        refused(kc, home, &["apply", "-f", "-"], Some(bad), &[
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
            "spec.managedBy: Invalid value: \"nope\": must be a domain-prefixed path (such as \"acme.io/foo\")",
            "spec.successPolicy: Invalid value:",
        ]);

        // the managed-elsewhere Job first, so the controller has had time to ignore it
        let ext = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: ext}\nspec:\n  managedBy: example.com/other\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(ext));
        assert!(!out.contains("Warning"), "{out}");

        let pods_of = |job: &str, ix: &str| -> Vec<Value> {
            let sel = format!("batch.kubernetes.io/job-name={job},batch.kubernetes.io/job-completion-index={ix}");
            get_json(kc, home, &["get", "pods", "-l", &sel])["items"].as_array().cloned().unwrap_or_default()
        };
        let name = |p: &Value| p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let set_phase = |pod: &str, body: &str| {
            ok(kc, home, &["patch", "pod", pod, "--subresource=status", "--type=merge", "-p", body], None);
        };
        let failed = json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "c", "ready": false,
            "restartCount": 0, "image": "reg.example/x:v1", "imageID": "",
            "state": {"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}]}})
        .to_string();
        let succeeded = r#"{"status":{"phase":"Succeeded"}}"#;

        let bli = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bli}\nspec:\n  completionMode: Indexed\n  completions: 2\n  parallelism: 2\n  backoffLimitPerIndex: 1\n  template:\n    spec:\n      restartPolicy: Never\n      nodeSelector: {no-such: node}\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(bli));
        assert!(!out.contains("Warning"), "{out}");
        let job = get_json(kc, home, &["get", "job", "bli"]);
        assert_eq!(job["spec"]["backoffLimit"], i32::MAX, "{job}");
        let first = eventually("index 0's pod", || pods_of("bli", "0").first().map(name));
        let p = get_json(kc, home, &["get", "pod", &first]);
        assert_eq!(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"], "0", "{p}");
        set_phase(&first, &failed);
        // the failure is retried once, by a pod carrying the index's failure count
        let second = eventually("index 0's replacement", || {
            pods_of("bli", "0").iter().find(|p| name(p) != first).cloned()
        });
        assert_eq!(second["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"], "1", "{second}");
        eventually("the first failure counted", || {
            let j = get_json(kc, home, &["get", "job", "bli"]);
            (j["status"]["failed"] == 1).then_some(())
        });
        set_phase(&name(&second), &failed);
        let j = eventually("index 0 failed", || {
            let j = get_json(kc, home, &["get", "job", "bli"]);
            (j["status"]["failedIndexes"] == "0" && j["status"]["failed"] == 2).then_some(j)
        });
        assert!(j["status"]["conditions"].as_array().is_none_or(|c| c.is_empty()), "{j}");
        // (a few seconds: no third pod comes)
        for _ in 0..10 {
            assert_eq!(pods_of("bli", "0").len(), 2, "index 0 is not run again");
            std::thread::sleep(Duration::from_millis(300));
        }
        let one = eventually("index 1's pod", || pods_of("bli", "1").first().map(name));
        set_phase(&one, succeeded);
        let (cond, j) = eventually("the Job Failed with FailedIndexes", || {
            let j = get_json(kc, home, &["get", "job", "bli"]);
            let c = j["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Failed" && c["status"] == "True").cloned()?;
            Some((c, j))
        });
        assert_eq!(cond["reason"], "FailedIndexes", "{j}");
        assert_eq!(cond["message"], "Job has failed indexes", "{j}");
        assert_eq!(j["status"]["completedIndexes"], "1", "{j}");
        assert_eq!(j["status"]["failedIndexes"], "0", "{j}");
        let out = ok(kc, home, &["get", "events", "--field-selector", "involvedObject.name=bli"], None);
        assert!(out.contains("FailedIndexes"), "{out}");

        // successPolicy: index 0 succeeding is enough; the other pods go
        let spp = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: spp}\nspec:\n  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n  successPolicy:\n    rules: [{succeededIndexes: \"0\"}]\n  template:\n    spec:\n      restartPolicy: Never\n      nodeSelector: {no-such: node}\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["apply", "-f", "-"], Some(spp));
        assert!(!out.contains("Warning"), "{out}");
        eventually("three pods of spp", || {
            let v = get_json(kc, home, &["get", "pods", "-l", "batch.kubernetes.io/job-name=spp"]);
            (v["items"].as_array().unwrap().len() == 3).then_some(())
        });
        let zero = name(&pods_of("spp", "0")[0]);
        set_phase(&zero, succeeded);
        let j = eventually("spp Complete by its success policy", || {
            let j = get_json(kc, home, &["get", "job", "spp"]);
            j["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Complete" && c["status"] == "True").then_some(j)
        });
        let conds = j["status"]["conditions"].as_array().unwrap();
        let types: Vec<&str> = conds.iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{j}");
        for c in conds {
            assert_eq!(c["reason"], "SuccessPolicy", "{j}");
            assert_eq!(c["message"], "Matched rules at index 0", "{j}");
        }
        assert_eq!(j["status"]["completedIndexes"], "0", "{j}");
        assert!(j["status"].get("failed").is_none(), "{j}");
        eventually("spp's other pods deleted", || {
            let v = get_json(kc, home, &["get", "pods", "-l", "batch.kubernetes.io/job-name=spp"]);
            let left: Vec<String> = v["items"].as_array().unwrap().iter().map(name).collect();
            (left == [zero.clone()]).then_some(())
        });
        // managedBy is immutable
        let (good, out) = kubectl(kc, home, &["patch", "job", "ext", "--type=merge", "-p", r#"{"spec":{"managedBy":"example.com/x"}}"#], None);
        assert!(!good && out.contains("spec.managedBy: Invalid value: \"example.com/x\": field is immutable"), "{out}");

        // the Job managed elsewhere: never a pod, never a status
        let v = get_json(kc, home, &["get", "pods", "-l", "batch.kubernetes.io/job-name=ext"]);
        assert!(v["items"].as_array().unwrap().is_empty(), "{v}");
        let j = get_json(kc, home, &["get", "job", "ext"]);
        assert!(j.get("status").is_none_or(|s| s.as_object().is_none_or(|o| o.is_empty())), "{j}");
        // its controller writes the status, which the status strategy validates
        let (good, out) = kubectl(kc, home, &["patch", "job", "ext", "--subresource=status", "--type=merge", "-p",
            r#"{"status":{"startTime":"2026-01-01T00:00:00Z","conditions":[{"type":"Failed","status":"True","reason":"X","message":"x"}]}}"#], None);
        assert!(!good && out.contains("status.conditions: Invalid value: cannot set Failed=True condition without the FailureTarget=true condition"), "{out}");
        ok(kc, home, &["patch", "job", "ext", "--subresource=status", "--type=merge", "-p",
            r#"{"status":{"startTime":"2026-01-01T00:00:00Z","conditions":[{"type":"FailureTarget","status":"True","reason":"X","message":"x"},{"type":"Failed","status":"True","reason":"X","message":"x"}]}}"#], None);
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// A Job's strategy as kubectl sees it: `WarningsForJobSpec` as a `Warning:` on create and on
/// an update that changes the spec (not on one that does not), a full update keeping the stored
/// status (`PrepareForUpdate`), and a new Job's status the strategy's, not the body's
/// (`PrepareForCreate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_warnings_and_status_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        let warning = "Warning: spec: In Indexed Jobs with a number of completions higher than 10^5 and a parallelism higher than 10^4, Kubernetes might not be able to track completedIndexes when a big number of indexes fail";
        let wide = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: wide}\nspec:\n  suspend: true\n  completionMode: Indexed\n  completions: 100001\n  parallelism: 10001\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["create", "-f", "-"], Some(wide));
        assert!(out.contains(warning), "{out}");
        let out = ok(kc, home, &["patch", "job", "wide", "--type=merge", "-p", r#"{"spec":{"parallelism":10002}}"#], None);
        assert!(out.contains(warning), "{out}");
        let out = ok(kc, home, &["label", "job", "wide", "team=a"], None);
        assert!(!out.contains("Warning"), "{out}");
        // a CronJob's job template is warned about under its path
        let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: wide}\nspec:\n  schedule: '0 0 * * *'\n  jobTemplate:\n    spec:\n      completionMode: Indexed\n      completions: 100001\n      parallelism: 10001\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: reg.example/x:v1}]\n";
        let out = ok(kc, home, &["create", "-f", "-"], Some(cron));
        assert!(out.contains("Warning: spec.jobTemplate.spec: In Indexed Jobs with a number of completions higher than 10^5"), "{out}");

        // a full update keeps the stored status; the status subresource changes it
        ok(kc, home, &["patch", "job", "wide", "--subresource=status", "--type=merge", "-p", r#"{"status":{"failed":2}}"#], None);
        let mut j = get_json(kc, home, &["get", "job", "wide"]);
        assert_eq!(j["status"]["failed"], 2, "{j:#}");
        j["status"] = json!({"failed": 0, "succeeded": 7});
        j["metadata"]["labels"]["team"] = json!("b");
        ok(kc, home, &["replace", "-f", "-"], Some(&j.to_string()));
        let j = get_json(kc, home, &["get", "job", "wide"]);
        assert_eq!(j["metadata"]["labels"]["team"], "b");
        assert_eq!(j["status"], json!({"failed": 2}), "{j:#}");

        // a new Job starts with an empty status whatever the body says
        let done = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: done}\nspec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: reg.example/x:v1}]\nstatus:\n  succeeded: 1\n  conditions: [{type: Complete, status: 'True'}]\n";
        ok(kc, home, &["create", "-f", "-"], Some(done));
        let j = get_json(kc, home, &["get", "job", "done"]);
        assert_eq!(j["status"], json!({}), "{j:#}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
