//! Over HTTP, checks kube-apiserver 1.32 makes, with its Status errors and nothing stored on a
//! refusal: a new pod's containers' resources (`ValidateResourceRequirements`: resource names,
//! whole extended resources, requests against limits, huge pages; quantities spelled as
//! `Quantity.String()`), its AppArmor annotations against the `appArmorProfile` fields
//! (`validateAppArmorAnnotationsAndFieldsMatchOnCreate`), and a `/scale` write's Scale: its
//! name and namespace the URL's (`checkName`) and a UID it names the parent's
//! (`scaleUpdatedObjectInfo`). A PUT of a missing object: created (201) where the kind's
//! strategy allows it (`AllowCreateOnUpdate`), 404 elsewhere; an update's object names itself
//! (`checkName`).

use serde_json::{json, Value};

mod common;
use common::https_client_builder;

struct Api {
    server: kubepull_control::ServerHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        let d = tempfile::tempdir().unwrap();
        let server = kubepull_control::start(common::server_config(d.path(), false))
            .await
            .unwrap();
        let http = https_client_builder(&server).build().unwrap();
        Api {
            server,
            http,
            _dir: d,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url());
        if let Some(b) = body {
            let json = "application/json";
            return common::admin_send(&self.http, &self.server, method, url, json, b).await;
        }
        let rq = self.http.request(method, url);
        let r = rq
            .bearer_auth(self.server.admin_token())
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (
            code,
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url());
        let patch = reqwest::Method::PATCH;
        common::admin_send(&self.http, &self.server, patch, url, content_type, body).await
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}]}})
}

/// A 422 Status `Kind "name" is invalid: …` with these field errors, in order, as causes.
fn assert_invalid(status: &Value, kind: &str, name: &str, errors: &[&str]) {
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    let joined = if errors.len() == 1 {
        errors[0].to_string()
    } else {
        format!("[{}]", errors.join(", "))
    };
    assert_eq!(
        status["message"].as_str().unwrap(),
        format!("{kind} \"{name}\" is invalid: {joined}"),
        "{status}"
    );
    let causes: Vec<String> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap(),
                c["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(causes, errors, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_resources_are_validated_as_kube_apiserver_does() {
    let api = Api::start().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        // an extended resource is whole, and its request is its limit
        (
            json!({"limits": {"example.com/foo": "1500m"}, "requests": {"example.com/foo": "1"}}),
            vec![
                "spec.containers[0].resources.limits[example.com/foo]: Invalid value: 1500m: must be an integer",
                r#"spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/foo limit of 1500m"#,
            ],
        ),
        (
            json!({"limits": {"example.com/foo": "2"}, "requests": {"example.com/foo": "1"}}),
            vec![r#"spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/foo limit of 2"#],
        ),
        (
            json!({"requests": {"example.com/foo": "1"}}),
            vec!["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"],
        ),
        // a request at most its limit, both spelled canonically
        (
            json!({"limits": {"cpu": "0.5", "memory": "1024Mi"}, "requests": {"cpu": "1000m", "memory": "2Gi"}}),
            vec![
                r#"spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m"#,
                r#"spec.containers[0].resources.requests: Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi"#,
            ],
        ),
        (
            // (the requests are defaulted from the limits)
            json!({"limits": {"memory": "-1024Mi"}}),
            vec![
                r#"spec.containers[0].resources.limits[memory]: Invalid value: "-1Gi": must be greater than or equal to 0"#,
                r#"spec.containers[0].resources.requests[memory]: Invalid value: "-1Gi": must be greater than or equal to 0"#,
            ],
        ),
        // names
        (
            json!({"requests": {"gpu": "1", "cpu": "1"}}),
            vec![
                "spec.containers[0].resources.requests[gpu]: Invalid value: gpu: must be a standard resource type or fully qualified",
                "spec.containers[0].resources.requests[gpu]: Invalid value: gpu: must be a standard resource for containers",
            ],
        ),
        // huge pages
        (
            json!({"limits": {"hugepages-2Mi": "1Mi"}}),
            vec![
                r#"spec.containers[0].resources.limits[hugepages-2Mi]: Invalid value: "1Mi": 1Mi is not positive integer multiple of hugepages-2Mi"#,
                r#"spec.containers[0].resources.requests[hugepages-2Mi]: Invalid value: "1Mi": 1Mi is not positive integer multiple of hugepages-2Mi"#,
                "spec.containers[0].resources: Forbidden: HugePages require cpu or memory",
            ],
        ),
    ];
    for (i, (resources, errors)) in cases.into_iter().enumerate() {
        let name = format!("p{i}");
        let (code, status) = api.post(PODS, &pod(&name, resources)).await;
        assert_eq!(code, 422, "{status}");
        assert_invalid(&status, "Pod", &name, &errors);
        let (code, _) = api.get(&format!("{PODS}/{name}")).await;
        assert_eq!(code, 404, "{name} was stored");
    }
    // what is valid is stored
    let ok = json!({"limits": {"example.com/foo": "2", "hugepages-2Mi": "4Mi", "memory": "1Gi"},
        "requests": {"example.com/foo": "2000m"}});
    let (code, made) = api.post(PODS, &pod("fine", ok)).await;
    assert_eq!(code, 201, "{made}");
    // resource lists are rounded up to milli-units before they are checked and stored
    // (`SetDefaults_ResourceList`), and stored as `String()` spells them: a request above its
    // limit only below a milli-unit is not above it
    let fine = json!({"limits": {"cpu": "1.00005", "memory": "0.5Gi"},
        "requests": {"cpu": "1.0002", "ephemeral-storage": "100u", "memory": "536870912"}});
    let (code, made) = api.post(PODS, &pod("rounded", fine)).await;
    assert_eq!(code, 201, "{made}");
    let (_, got) = api.get(&format!("{PODS}/rounded")).await;
    assert_eq!(
        got["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1001m", "memory": "512Mi"},
            "requests": {"cpu": "1001m", "ephemeral-storage": "1m", "memory": "536870912"}}),
        "{got}"
    );
    // a template is checked too
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"example.com/foo": "0.5"}}}]}}}});
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let (code, status) = api.post(deps, &dep).await;
    assert_eq!(code, 422, "{status}");
    assert_invalid(
        &status,
        "Deployment.apps",
        "d",
        &["spec.template.spec.containers[0].resources.limits[example.com/foo]: Invalid value: 500m: must be an integer"],
    );
    assert_eq!(api.get(&format!("{deps}/d")).await.0, 404);
    api.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_armor_annotations_and_fields_must_agree_on_create() {
    let api = Api::start().await;
    const KEY: &str = "container.apparmor.security.beta.kubernetes.io";
    let with = |name: &str, annotations: Value, pod_profile: Value, profiles: [Value; 2]| {
        let c = |n: &str, p: &Value| json!({"name": n, "image": "i", "securityContext": if p.is_null() { json!({}) } else { json!({"appArmorProfile": p}) }});
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"securityContext": if pod_profile.is_null() { json!({}) } else { json!({"appArmorProfile": pod_profile}) },
                "initContainers": [c("i", &profiles[0])], "containers": [c("a", &profiles[1])]}})
    };
    let refused = [
        (
            with(
                "types",
                json!({format!("{KEY}/i"): "unconfined", format!("{KEY}/a"): "localhost/x"}),
                Value::Null,
                [json!({"type": "RuntimeDefault"}), json!({"type": "Unconfined"})],
            ),
            vec![
                "spec.initContainers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match",
                "spec.containers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match",
            ],
        ),
        (
            with(
                "local",
                json!({format!("{KEY}/i"): "runtime/default"}),
                Value::Null,
                [json!({"type": "Localhost", "localhostProfile": "p"}), Value::Null],
            ),
            vec!["spec.initContainers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match"],
        ),
    ];
    for (body, errors) in refused {
        let name = body["metadata"]["name"].as_str().unwrap().to_string();
        let (code, status) = api.post(PODS, &body).await;
        assert_eq!(code, 422, "{status}");
        assert_invalid(&status, "Pod", &name, &errors);
        assert_eq!(api.get(&format!("{PODS}/{name}")).await.0, 404);
    }
    // agreeing, or one side only (the strategy makes the other side first)
    let ok = with(
        "agree",
        json!({format!("{KEY}/i"): "localhost/p", format!("{KEY}/a"): "runtime/default"}),
        json!({"type": "RuntimeDefault"}),
        [
            json!({"type": "Localhost", "localhostProfile": "p"}),
            Value::Null,
        ],
    );
    let (code, made) = api.post(PODS, &ok).await;
    assert_eq!(code, 201, "{made}");
    let one_side = with(
        "one-side",
        json!({format!("{KEY}/i"): "localhost/q"}),
        Value::Null,
        [Value::Null, json!({"type": "RuntimeDefault"})],
    );
    let (code, made) = api.post(PODS, &one_side).await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(
        made["metadata"]["annotations"][format!("{KEY}/a")],
        "runtime/default"
    );
    assert_eq!(
        made["spec"]["initContainers"][0]["securityContext"]["appArmorProfile"],
        json!({"type": "Localhost", "localhostProfile": "q"})
    );
    // a template is checked as well, with nothing synced first: the pod's profile stands for a
    // container without one
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}, "annotations": {
                format!("{KEY}/c"): "unconfined", format!("{KEY}/e"): "localhost/other"}},
            "spec": {"securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "mine"}},
                "containers": [{"name": "c", "image": "i",
                "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}},
                {"name": "e", "image": "i"}]}}}});
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let (code, status) = api.post(deps, &dep).await;
    assert_eq!(code, 422, "{status}");
    assert_invalid(
        &status,
        "Deployment.apps",
        "d",
        &[
            "spec.template.spec.containers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match",
            "spec.template.spec.containers[1].securityContext.appArmorProfile.localhostProfile: Forbidden: apparmor profile in annotation and field must match",
        ],
    );
    assert_eq!(api.get(&format!("{deps}/d")).await.0, 404);
    api.server.shutdown().await;
}

/// A 400 or 409 Status with this message.
fn assert_status(got: &(u16, Value), code: u16, reason: &str, message: &str) {
    assert_eq!(got.0, code, "{}", got.1);
    assert_eq!(got.1["kind"], "Status", "{}", got.1);
    assert_eq!(got.1["reason"], reason, "{}", got.1);
    assert_eq!(got.1["message"], message, "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_names_its_parent_and_a_uid_it_names_is_a_precondition() {
    let api = Api::start().await;
    let template = json!({"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}});
    for (plural, kind) in [("deployments", "Deployment"), ("replicasets", "ReplicaSet")] {
        let base = format!("/apis/apps/v1/namespaces/default/{plural}");
        let body = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": template}});
        let (code, made) = api.post(&base, &body).await;
        assert_eq!(code, 201, "{made}");
        let uid = made["metadata"]["uid"].as_str().unwrap().to_string();
        let scale_url = format!("{base}/web/scale");
        let (code, scale) = api.get(&scale_url).await;
        assert_eq!(code, 200, "{scale}");
        assert_eq!(scale["metadata"]["uid"], uid.as_str());
        let with = |meta: Value| {
            let mut s = scale.clone();
            for (k, v) in meta.as_object().unwrap() {
                s["metadata"][k] = v.clone();
            }
            s["spec"]["replicas"] = json!(4);
            s
        };
        // a replace: the name and namespace are the URL's
        assert_status(
            &api.put(&scale_url, &with(json!({"name": "other"}))).await,
            400,
            "BadRequest",
            "the name of the object (other) does not match the name on the URL (web)",
        );
        assert_status(
            &api.put(&scale_url, &with(json!({"namespace": "kube-system"})))
                .await,
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
        // a replace's Scale without a name is refused (`checkName`), not given the URL's
        let mut unnamed = with(json!({}));
        unnamed["metadata"].as_object_mut().unwrap().remove("name");
        assert_status(
            &api.put(&scale_url, &unnamed).await,
            400,
            "BadRequest",
            "the name of the object (web based on URL) was undeterminable: name must be provided",
        );
        // a UID that is not the parent's is a failed precondition
        let wrong = "0b7c5bd4-0000-4000-8000-000000000000";
        let refused = api
            .put(
                &scale_url,
                &with(json!({"uid": wrong, "resourceVersion": null})),
            )
            .await;
        assert_status(
            &refused,
            409,
            "Conflict",
            &format!("Operation cannot be fulfilled on {plural}/scale.apps \"web\": Precondition failed: UID in precondition: {wrong}, UID in object meta: {uid}"),
        );
        assert_eq!(
            refused.1["details"],
            json!({"name": "web", "group": "apps", "kind": format!("{plural}/scale")})
        );
        // patches: the patched Scale is checked the same way
        let merge = "application/merge-patch+json";
        assert_status(
            &api.patch(
                &scale_url,
                merge,
                &json!({"metadata": {"name": "x"}, "spec": {"replicas": 4}}),
            )
            .await,
            400,
            "BadRequest",
            "the name of the object (x) does not match the name on the URL (web)",
        );
        assert_status(
            &api.patch(
                &scale_url,
                merge,
                &json!({"metadata": {"namespace": "x"}, "spec": {"replicas": 4}}),
            )
            .await,
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
        assert_status(
            &api.patch(
                &scale_url,
                "application/json-patch+json",
                &json!([{"op": "remove", "path": "/metadata/name"}]),
            )
            .await,
            400,
            "BadRequest",
            "the name of the object (web based on URL) was undeterminable: name must be provided",
        );
        assert_eq!(
            api.patch(
                &scale_url,
                merge,
                &json!({"metadata": {"uid": wrong}, "spec": {"replicas": 4}})
            )
            .await
            .0,
            409
        );
        // its metadata is checked as any object's (`ValidateScale`'s `ValidateObjectMeta`),
        // before its replicas
        let bad_meta = with(json!({"labels": {"a b": "c"}, "annotations": {"-x": "y"},
            "generateName": "Web-", "resourceVersion": null}));
        let mut bad_meta_and_replicas = bad_meta.clone();
        bad_meta_and_replicas["spec"]["replicas"] = json!(-1);
        let (code, refused) = api.put(&scale_url, &bad_meta_and_replicas).await;
        assert_eq!(code, 422, "{refused}");
        let fields: Vec<_> = refused["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.generateName",
                "metadata.labels",
                "metadata.annotations",
                "spec.replicas"
            ],
            "{refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .starts_with("Scale.autoscaling \"web\" is invalid: [metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain"),
            "{refused}"
        );
        let parent = format!("{base}/web");
        assert_eq!(
            api.get(&parent).await.1["spec"]["replicas"],
            1,
            "nothing was written"
        );
        // the parent's own UID, or none, is fine
        let (code, done) = api
            .put(
                &scale_url,
                &with(json!({"uid": uid, "resourceVersion": null})),
            )
            .await;
        assert_eq!(code, 200, "{done}");
        let (code, done) = api
            .patch(
                &scale_url,
                merge,
                &json!({"metadata": {"uid": null}, "spec": {"replicas": 2}}),
            )
            .await;
        assert_eq!(code, 200, "{done}");
        assert_eq!(api.get(&parent).await.1["spec"]["replicas"], 2);
    }
    api.server.shutdown().await;
}

/// A PUT of a missing object is a create (201, then readable) for the kinds whose strategy
/// allows it: a Lease (its managed fields the create's `Update` entry), a Service (its cluster
/// IP allocated), an Event through events.k8s.io (answered in that group's shape, read through
/// both), a Role; a ConfigMap, a Pod and a custom resource answer 404 and nothing is stored.
/// An update whose object has no name is a 400, not the URL's name filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_creates_what_its_kind_allows_and_names_itself() {
    let api = Api::start().await;
    let lease = "/apis/coordination.k8s.io/v1/namespaces/default/leases/l";
    let body = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}});
    let (code, made) = api.put(lease, &body).await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["spec"]["holderIdentity"], "a");
    let mf = &made["metadata"]["managedFields"];
    assert_eq!(mf.as_array().map(Vec::len), Some(1), "{made}");
    assert_eq!(mf[0]["operation"], "Update");
    assert_eq!(
        mf[0]["fieldsV1"],
        json!({"f:spec": {"f:holderIdentity": {}}})
    );
    let (code, read) = api.get(lease).await;
    assert_eq!((code, &read), (200, &made));
    let (code, again) = api.put(lease, &made).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["metadata"]["uid"], made["metadata"]["uid"]);

    let svc = "/api/v1/namespaces/default/services/s";
    let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "s"}}});
    let (code, made) = api.put(svc, &body).await;
    assert_eq!(code, 201, "{made}");
    assert!(
        made["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty()),
        "{made}"
    );
    assert_eq!(made["spec"]["type"], "ClusterIP");
    assert_eq!(api.get(svc).await.0, 200);

    let event = "/apis/events.k8s.io/v1/namespaces/default/events/e1";
    let body = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e1"}, "eventTime": "2026-01-02T03:04:05.000001Z",
        "reportingController": "example.com/op", "reportingInstance": "op-1",
        "action": "Reconciling", "reason": "Created", "note": "made it", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"}});
    let (code, made) = api.put(event, &body).await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["apiVersion"], "events.k8s.io/v1");
    assert_eq!(made["note"], "made it");
    let (code, core) = api.get("/api/v1/namespaces/default/events/e1").await;
    assert_eq!(code, 200);
    assert_eq!(core["message"], "made it");
    assert_eq!(core["metadata"]["uid"], made["metadata"]["uid"]);

    let role = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/r";
    let body = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    let (code, made) = api.put(role, &body).await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(api.get(role).await.0, 200);

    // kinds that do not create on update
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, out) = api
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd,
        )
        .await;
    assert_eq!(code, 201, "{out}");
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let (code, out) = api
        .post(
            widgets,
            &json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w0"}}),
        )
        .await;
    assert_eq!(code, 201, "{out}");
    for (path, body, msg) in [
        (
            "/api/v1/namespaces/default/configmaps/c".to_string(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            "configmaps \"c\" not found",
        ),
        (
            format!("{PODS}/p"),
            pod("p", json!({})),
            "pods \"p\" not found",
        ),
        (
            format!("{widgets}/w"),
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w", "resourceVersion": "1"}}),
            "widgets.example.com \"w\" not found",
        ),
    ] {
        let (code, out) = api.put(&path, &body).await;
        assert_eq!((code, out["message"].as_str()), (404, Some(msg)), "{out}");
        assert_eq!(api.get(&path).await.0, 404);
    }

    // checkName: no name is no longer the URL's
    let (code, out) = api
        .put(
            lease,
            &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"namespace": "default"}, "spec": {"holderIdentity": "b"}}),
        )
        .await;
    assert_eq!(code, 400, "{out}");
    assert_eq!(
        out["message"],
        "the name of the object (l based on URL) was undeterminable: name must be provided"
    );
    assert_eq!(api.get(lease).await.1["spec"]["holderIdentity"], "a");
    api.server.shutdown().await;
}

/// Impersonation headers (`WithImpersonation`): groups, extras or a UID without a user are
/// refused with upstream's plain-text 500; a user is acted as, with `system:authenticated`
/// added, and extras decoded from their header names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_headers_are_read_as_kube_apiserver_reads_them() {
    let api = Api::start().await;
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut rq = api
            .http
            .post(format!(
                "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                api.server.url()
            ))
            .bearer_auth(api.server.admin_token())
            .header("content-type", "application/json")
            .body(r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}"#);
        for (k, v) in headers {
            rq = rq.header(k, v);
        }
        async move {
            let r = rq.send().await.unwrap();
            let code = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (code, ct, r.text().await.unwrap())
        }
    };
    let (code, ct, body) = send(vec![("Impersonate-Group", "devs")]).await;
    assert_eq!(code, 500);
    assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(
        body,
        "Internal Server Error: \"/apis/authentication.k8s.io/v1/selfsubjectreviews\": requested [{Group  devs    }] without impersonating a user\n"
    );
    let (code, _, body) = send(vec![
        ("Impersonate-User", "alice"),
        ("Impersonate-Group", "devs"),
        ("Impersonate-Extra-Scopes%2Fread", "a"),
        ("Impersonate-Extra-Scopes%2Fread", "b"),
        ("Impersonate-Uid", "u-1"),
    ])
    .await;
    assert_eq!(code, 201, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["status"]["userInfo"],
        json!({"username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"],
            "extra": {"scopes/read": ["a", "b"]}})
    );
    api.server.shutdown().await;
}
