use super::*;

fn round_trip(obj: &Value) -> Value {
    let pb = encode(obj).unwrap_or_else(|e| panic!("encoding {obj}: {e}"));
    assert!(pb.starts_with(MAGIC));
    decode(&pb).unwrap_or_else(|e| panic!("decoding {obj}: {e}"))
}

fn assert_round_trip(obj: Value) {
    let back = round_trip(&obj);
    assert_eq!(
        back,
        obj,
        "\nwant {}\ngot  {}",
        serde_json::to_string_pretty(&obj).unwrap_or_default(),
        serde_json::to_string_pretty(&back).unwrap_or_default()
    );
}

/// A protobuf field, written by hand the way Go's gogo marshaller writes it.
fn tag(num: u32, wt: u8) -> Vec<u8> {
    varint(u64::from(num) << 3 | u64::from(wt))
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn ld(num: u32, body: &[u8]) -> Vec<u8> {
    let mut out = tag(num, 2);
    out.extend(varint(body.len() as u64));
    out.extend_from_slice(body);
    out
}

fn vi(num: u32, v: u64) -> Vec<u8> {
    let mut out = tag(num, 0);
    out.extend(varint(v));
    out
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = ld(1, api_version.as_bytes());
    tm.extend(ld(2, kind.as_bytes()));
    let mut u = ld(1, &tm);
    u.extend(ld(2, raw));
    u.extend(ld(3, b""));
    u.extend(ld(4, b""));
    let mut out = MAGIC.to_vec();
    out.extend(u);
    out
}

#[test]
fn every_served_kind_and_its_list_has_a_message() {
    for r in crate::resources::RESOURCES {
        assert!(
            has_message(&r.api_version(), r.kind),
            "{} {}",
            r.api_version(),
            r.kind
        );
        if !crate::resources::CREATE_ONLY.contains(&r.kind) {
            let list = format!("{}List", r.kind);
            assert!(has_message(&r.api_version(), &list), "{list}");
        }
    }
    // the kinds the API answers with besides the served ones
    assert!(has_message("v1", "Status"));
    assert!(has_message("autoscaling/v1", "Scale"));
    assert!(has_message("authentication.k8s.io/v1", "TokenRequest"));
    assert!(has_message("v1", "Binding"));
    assert!(has_message("policy/v1", "Eviction"));
    // never protobuf: Tables (`+protobuf=false`) and custom resources
    assert!(!has_message("meta.k8s.io/v1", "Table"));
    assert!(!has_message("stable.example.com/v1", "CronTab"));
    assert!(!has_message("apps.example.com/v1", "Deployment"));
    assert!(!has_message("v1", ""));
    // the meta kinds every group version registers
    assert!(has_message("apps/v1", "DeleteOptions"));
    assert!(has_message("rbac.authorization.k8s.io/v1", "WatchEvent"));
    assert!(!has_message("example.com/v1", "DeleteOptions"));
}

#[test]
fn every_served_kind_round_trips_its_metadata() {
    for r in crate::resources::RESOURCES {
        let mut md = json!({
            "name": "x", "generateName": "x-", "uid": "0b5c1d0e-7b6e-4f2e-9d8a-1c2d3e4f5a6b",
            "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {"app": "web", "tier": ""}, "annotations": {"a/b": "c"},
            "finalizers": ["kubernetes"],
        });
        if r.namespaced {
            md["namespace"] = json!("default");
        }
        assert_round_trip(json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": md}));
    }
}

#[test]
fn object_meta_quirks() {
    assert_round_trip(json!({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {
            "name": "cm", "namespace": "default",
            "deletionTimestamp": "2026-01-02T03:04:05Z", "deletionGracePeriodSeconds": 0,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true, "blockOwnerDeletion": false}],
            "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:k": {}}}}],
        },
        "data": {"k": "v", "empty": ""},
        "binaryData": {"b": "AAEC/w=="},
        "immutable": false,
    }));
}

#[test]
fn pod_with_inlined_structs_intorstring_and_quantities() {
    assert_round_trip(json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "a.txt", "mode": 256}], "defaultMode": 420, "optional": true}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "tok", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"secret": {"name": "other", "optional": false}}
                ]}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            ],
            "containers": [{
                "name": "app", "image": "registry.example:5000/app:1",
                "command": ["/bin/sh", "-c"], "args": ["sleep 3600"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password", "optional": true}}},
                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                ],
                "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s", "optional": false}}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.1"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 3, "periodSeconds": 10},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 1},
                "startupProbe": {"exec": {"command": ["true"]}, "timeoutSeconds": 1},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}],
                "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "imagePullPolicy": "IfNotPresent",
            }],
            "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "app", "stdin": true}],
            "imagePullSecrets": [{"name": "regcred"}],
            "serviceAccountName": "default", "automountServiceAccountToken": false,
            "nodeName": "node-1", "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "securityContext": {},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 0}],
        },
        "status": {
            "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "startTime": "2026-01-02T03:04:05Z",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "app:1", "imageID": "", "started": true,
                "state": {"running": {"startedAt": "2026-01-02T03:04:06Z"}}, "lastState": {}}],
        },
    }));
}

#[test]
fn go_names_that_are_not_the_proto_names() {
    // DaemonEndpoint.Port (json "Port"), BoundObjectReference.uID, IngressClassParametersReference
    // .aPIGroup, {Validating,Mutating}WebhookConfiguration.Webhooks, RuleWithOperations.rule
    assert_round_trip(json!({
        "kind": "Node", "apiVersion": "v1", "metadata": {"name": "n"},
        "spec": {"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24"], "unschedulable": true},
        "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "capacity": {"cpu": "2", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6", "osImage": "x",
                "containerRuntimeVersion": "runc", "kubeletVersion": "v1.32.0", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}},
    }));
    assert_round_trip(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": "default", "namespace": "default"},
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"}},
        "status": {"token": "eyJ.x.y", "expirationTimestamp": "2026-01-02T04:04:05Z"},
    }));
    assert_round_trip(json!({
        "kind": "IngressClass", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {"apiGroup": "k8s.example.com", "kind": "P", "name": "p", "scope": "Cluster"}},
    }));
    assert_round_trip(json!({
        "kind": "ValidatingWebhookConfiguration", "apiVersion": "admissionregistration.k8s.io/v1",
        "metadata": {"name": "w"},
        "webhooks": [{"name": "a.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"namespace": "ns", "name": "svc", "port": 443}, "caBundle": "Y2E="},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}],
            "timeoutSeconds": 5, "failurePolicy": "Fail",
            "matchConditions": [{"name": "c", "expression": "true"}]}],
    }));
}

#[test]
fn workloads_jobs_services_and_rbac() {
    assert_round_trip(json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["a"]}]},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {"replicas": 1, "observedGeneration": 1,
            "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2026-01-02T03:04:05Z", "lastTransitionTime": "2026-01-02T03:04:05Z", "reason": "MinimumReplicasAvailable", "message": "ok"}]},
    }));
    assert_round_trip(json!({
        "kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "c", "namespace": "default"},
        "spec": {"schedule": "*/1 * * * *", "timeZone": "Etc/UTC", "suspend": false,
            "jobTemplate": {"metadata": {"name": "c"}, "spec": {"backoffLimit": 6, "completions": 1, "parallelism": 1, "ttlSecondsAfterFinished": 0,
                "template": {"metadata": {}, "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"lastScheduleTime": "2026-01-02T03:04:00Z", "active": [{"kind": "Job", "name": "c-1", "namespace": "default", "uid": "u"}]},
    }));
    assert_round_trip(json!({
        "kind": "Service", "apiVersion": "v1", "metadata": {"name": "s", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}, {"name": "dns", "port": 53, "targetPort": "dns", "nodePort": 30053}],
            "selector": {"app": "s"}, "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
        "status": {"loadBalancer": {}},
    }));
    assert_round_trip(json!({
        "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "r"},
        "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]},
    }));
    assert_round_trip(json!({
        "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "b", "namespace": "default"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}, {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
    }));
}

#[test]
fn bytes_micro_times_and_string_list_maps() {
    assert_round_trip(json!({
        "kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s", "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "eyJhdXRocyI6e319", "empty": "", "bin": "AP8A/w=="},
        "immutable": true,
    }));
    assert_round_trip(json!({
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2026-01-02T03:04:05.123456Z", "acquireTime": "2026-01-02T03:04:05.000000Z", "leaseTransitions": 0},
    }));
    assert_round_trip(json!({
        "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "2026-01-02T03:04:05.000001Z", "reportingController": "kubelet", "reportingInstance": "node-1",
        "action": "Pulling", "reason": "Pulling", "regarding": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{app}"},
        "note": "Pulling image", "type": "Normal",
        "series": {"count": 2, "lastObservedTime": "2026-01-02T03:04:06.500000Z"},
    }));
    assert_round_trip(json!({
        "kind": "Event", "apiVersion": "v1", "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u"},
        "reason": "Pulled", "message": "ok", "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:06Z", "count": 3, "type": "Normal",
        "eventTime": "2026-01-02T03:04:05.000000Z",
    }));
    assert_round_trip(json!({
        "kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1", "metadata": {"name": "csr"},
        "spec": {"request": "LS0tLS1CRUdJTg==", "signerName": "kubernetes.io/kubelet-serving", "expirationSeconds": 86400,
            "usages": ["digital signature", "server auth"], "username": "system:node:n",
            "groups": ["system:nodes", "system:authenticated"], "extra": {"scopes": ["a", "b"], "none": []}},
        "status": {"certificate": "Y2VydA==", "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved", "lastUpdateTime": "2026-01-02T03:04:05Z"}]},
    }));
}

#[test]
fn review_kinds() {
    assert_round_trip(json!({
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "group": "apps", "resource": "deployments", "subresource": "scale", "name": "web",
            "fieldSelector": {"rawSelector": "a=b"}, "labelSelector": {"requirements": [{"key": "k", "operator": "In", "values": ["v"]}]}}},
        "status": {"allowed": true, "reason": "RBAC: allowed"},
    }));
    assert_round_trip(json!({
        "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
        "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}, "user": "alice", "groups": ["g"], "uid": "1", "extra": {"k": ["v"]}},
        "status": {"allowed": false, "denied": true, "evaluationError": "e"},
    }));
    assert_round_trip(json!({
        "kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
        "spec": {"namespace": "default"},
        "status": {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}], "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api"]}], "incomplete": false},
    }));
    assert_round_trip(json!({
        "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": "2026-01-02T03:04:05Z"},
        "status": {"userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"], "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=ab"]}}},
    }));
    assert_round_trip(json!({
        "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
        "spec": {"token": "t", "audiences": ["a"]},
        "status": {"authenticated": true, "user": {"username": "system:serviceaccount:default:default", "uid": "u"}, "audiences": ["a"]},
    }));
}

#[test]
fn status_scale_controller_revision_and_watch_event() {
    assert_round_trip(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Deployment.apps \"x\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "reason": "Invalid", "code": 422,
        "details": {"name": "x", "group": "apps", "kind": "Deployment",
            "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: -1", "field": "spec.replicas"}]},
    }));
    assert_round_trip(json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3}, "status": {"replicas": 1, "selector": "app=web"},
    }));
    assert_round_trip(json!({
        "kind": "ControllerRevision", "apiVersion": "apps/v1", "metadata": {"name": "r", "namespace": "default"},
        "data": {"spec": {"template": {"$patch": "replace"}}, "n": 1.5, "l": [1, "a", null, true]}, "revision": 2,
    }));
    let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "resourceVersion": "7"}, "data": {"k": "v"}});
    let mut stream = watch_frame("ADDED", &obj).unwrap();
    let n = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]) as usize;
    assert_eq!(n + 4, stream.len());
    stream.extend(watch_frame("DELETED", &obj).unwrap());
    stream.extend(&[0, 0, 1]);
    let (events, rest) = decode_watch_frames(&stream).unwrap();
    assert_eq!(rest, 3);
    assert_eq!(
        events,
        vec![
            ("ADDED".to_string(), obj.clone()),
            ("DELETED".to_string(), obj)
        ]
    );
}

#[test]
fn custom_resource_definition_schema_quirks() {
    assert_round_trip(json!({
        "kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}],
                "schema": {"openAPIV3Schema": {
                    "$schema": "http://json-schema.org/draft-04/schema#", "$ref": "#/definitions/x",
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "x-kubernetes-validations": [{"rule": "self.a > 0", "message": "m"}],
                    "definitions": {"x": {"type": "string"}},
                    "properties": {
                        "spec": {"type": "object", "required": ["cronSpec"], "default": {"replicas": 1},
                            "properties": {"cronSpec": {"type": "string", "pattern": "^\\d+$", "maxLength": 64},
                                "replicas": {"type": "integer", "minimum": 0.0, "maximum": 10.0, "x-kubernetes-int-or-string": true},
                                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "open": {"type": "object", "additionalProperties": false},
                                "enum": {"enum": ["a", 1, null]}}},
                        "status": {"type": "object", "x-kubernetes-embedded-resource": true},
                    },
                    "dependencies": {"a": ["b"], "c": {"required": ["d"]}},
                }}}],
            "conversion": {"strategy": "None"}},
    }));
}

#[test]
fn durations_are_go_durations() {
    for (n, s) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_000_000_000, "1s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-5_000_000_000, "-5s"),
    ] {
        assert_eq!(go_duration_string(n), s);
        assert_eq!(parse_go_duration(s), Some(n), "{s}");
    }
    assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
    assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
    for bad in ["", "1", "h", "1x", "-", "1.h2"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
}

#[test]
fn what_kubectl_sends_for_create_namespace() {
    // Go writes every non-pointer field: ObjectMeta's empty strings and zero integers, the
    // zero creationTimestamp as an empty message, the empty spec and status
    let mut md = ld(1, b"team-a");
    for (n, v) in [(2u32, ""), (3, ""), (4, ""), (5, ""), (6, "")] {
        md.extend(ld(n, v.as_bytes()));
    }
    md.extend(vi(7, 0));
    md.extend(ld(8, b""));
    let mut raw = ld(1, &md);
    raw.extend(ld(2, b""));
    raw.extend(ld(3, b""));
    let v = decode(&envelope("v1", "Namespace", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "team-a"}, "spec": {}, "status": {}})
    );
}

#[test]
fn zero_scalars_follow_go_json() {
    // DeploymentSpec.replicas is *int32: an explicit 0 stays; Container.stdin is a bool with
    // omitempty: false goes; ContainerPort.containerPort has no omitempty: 0 stays;
    // Secret.immutable is *bool: false stays
    let container = [
        ld(1, b"c"),
        ld(2, b"img"),
        ld(6, &[ld(1, b""), vi(3, 0)].concat()),
        vi(16, 0),
        vi(18, 0),
    ]
    .concat();
    let template = [ld(1, b""), ld(2, &ld(2, &container))].concat();
    let spec = [vi(1, 0), ld(3, &template), vi(5, 0)].concat();
    let raw = [ld(1, &ld(1, b"d")), ld(2, &spec), ld(3, b"")].concat();
    let v = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d"},
            "spec": {"replicas": 0, "template": {"metadata": {}, "spec": {"containers": [
                {"name": "c", "image": "img", "ports": [{"containerPort": 0}]}]}}},
            "status": {}})
    );
    let raw = [ld(1, &ld(1, b"s")), vi(5, 0), ld(3, b"Opaque")].concat();
    let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
    assert_eq!(v["immutable"], json!(false));
    assert_eq!(v["type"], json!("Opaque"));
}

#[test]
fn times_follow_time_proto_go() {
    let meta = |t: &[u8]| {
        let raw = ld(1, &[ld(1, b"c"), ld(8, t)].concat());
        decode(&envelope("v1", "ConfigMap", &raw)).unwrap()["metadata"].clone()
    };
    // empty message: the zero time, unset
    assert_eq!(meta(b""), json!({"name": "c"}));
    // seconds 0 is the epoch, not unset
    assert_eq!(
        meta(&vi(1, 0))["creationTimestamp"],
        json!("1970-01-01T00:00:00Z")
    );
    // nanos are ignored on read
    assert_eq!(
        meta(&[vi(1, 1_767_323_045), vi(2, 999)].concat())["creationTimestamp"],
        json!("2026-01-02T03:04:05Z")
    );
    // and never written
    let pb = encode(&json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "creationTimestamp": "2026-01-02T03:04:05.5Z"}})).unwrap();
    assert_eq!(
        decode(&pb).unwrap()["metadata"]["creationTimestamp"],
        json!("2026-01-02T03:04:05Z")
    );
}

#[test]
fn bad_bodies_are_named_errors() {
    assert_eq!(decode(b""), Err(ProtoError::EmptyData));
    assert_eq!(decode(b"{\"kind\":1}"), Err(ProtoError::NoPrefix));
    assert_eq!(decode(b"k8s"), Err(ProtoError::NoPrefix));
    assert_eq!(decode(MAGIC), Err(ProtoError::EmptyBody));
    let e = decode(&[MAGIC, &[0x0a, 0xff]].concat()).unwrap_err();
    assert!(
        e.to_string().contains("runtime.Unknown"),
        "{e}: names the envelope"
    );
    assert_eq!(
        decode(&envelope("apps/v1", "Gadget", b"")),
        Err(ProtoError::NotRegistered {
            api_version: "apps/v1".into(),
            kind: "Gadget".into()
        })
    );
    assert_eq!(
        decode(&envelope("stable.example.com/v1", "CronTab", b"")),
        Err(ProtoError::NotMarshalable(
            "*unstructured.Unstructured".into()
        ))
    );
    // a field of the wrong wire type: ObjectMeta.name as a varint
    let e = decode(&envelope("v1", "ConfigMap", &ld(1, &vi(1, 5)))).unwrap_err();
    assert!(e.to_string().contains("v1 ConfigMap"), "{e}");
    // a string that is not UTF-8
    let e = decode(&envelope("v1", "ConfigMap", &ld(1, &ld(1, &[0xff, 0xfe])))).unwrap_err();
    assert!(matches!(e, ProtoError::Decode { .. }), "{e}");
    // truncated in the middle of the object
    let mut good = encode(&json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"a": "b"}})).unwrap();
    good.truncate(good.len() - 3);
    assert!(decode(&good).is_err());
    // a content encoding nobody writes
    let mut tm = ld(1, b"v1");
    tm.extend(ld(2, b"ConfigMap"));
    let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, b""), ld(3, b"gzip")].concat();
    let e = decode(&body).unwrap_err();
    assert!(e.to_string().contains("contentEncoding"), "{e}");
    // RawExtension bytes that are neither JSON nor an object
    let raw = [ld(1, &ld(1, b"r")), ld(2, &ld(1, b"\x01\x02"))].concat();
    let e = decode(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap_err();
    assert!(e.to_string().contains("RawExtension"), "{e}");
}

#[test]
fn mangled_bodies_never_panic() {
    // every truncation and single-byte corruption of a real body decodes or errors
    let good = encode(&json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "n", "image": "i",
                "resources": {"limits": {"cpu": "1"}}, "livenessProbe": {"httpGet": {"port": 80}}}]}}}}))
    .unwrap();
    for n in 0..good.len() {
        let _ = decode(&good[..n]);
    }
    // what decodes re-encodes, and decodes to the same JSON again (the fuzz target's property)
    let (mut seed, mut decoded) = (0x2545_f491_4f6c_dd1du64, 0);
    for i in 0..good.len() {
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut b = good.clone();
            b[i] = seed as u8;
            if let Ok(v) = decode(&b) {
                decoded += 1;
                let again = encode(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
                assert_eq!(decode(&again).unwrap(), v);
            }
        }
    }
    assert!(decoded > 0, "some corruptions are still valid messages");
}

#[test]
fn encoding_names_the_bad_field() {
    let e = encode(
        &json!({"kind": "Deployment", "apiVersion": "apps/v1", "spec": {"replicas": "three"}}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ProtoError::Field {
            path: "spec.replicas".into(),
            why: "expected an integer, got a string".into()
        }
    );
    let e = encode(&json!({"kind": "Secret", "apiVersion": "v1", "data": {"k": "not base64!"}}))
        .unwrap_err();
    assert!(e.to_string().starts_with("data.k: expected base64"), "{e}");
    let e = encode(&json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1"})).unwrap_err();
    assert!(matches!(e, ProtoError::NotMarshalable(_)), "{e}");
    assert!(e
        .to_string()
        .ends_with("does not implement the protobuf marshalling interface and cannot be encoded to a protobuf message"));
}

#[test]
fn negotiation_follows_the_accept_header() {
    let kubectl = Some("application/vnd.kubernetes.protobuf,application/json");
    assert_eq!(negotiate(kubectl), Output::Protobuf { json_ok: true });
    assert_eq!(
        negotiate(Some(MEDIA_TYPE)),
        Output::Protobuf { json_ok: false }
    );
    assert_eq!(
        negotiate(None),
        Output::Json {
            table: false,
            protobuf_ok: true
        }
    );
    assert_eq!(
        negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")),
        Output::Json { table: true, protobuf_ok: false }
    );
    // a Table is never protobuf: that clause is skipped
    assert_eq!(
        negotiate(Some(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
        )),
        Output::Json {
            table: false,
            protobuf_ok: false
        }
    );
    assert_eq!(
        negotiate(Some(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
        )),
        Output::NotAcceptable
    );
    assert_eq!(
        negotiate(Some(
            "application/json;q=0.5, application/vnd.kubernetes.protobuf"
        )),
        Output::Protobuf { json_ok: true }
    );
    assert_eq!(negotiate(Some("text/html")), Output::NotAcceptable);
    assert_eq!(
        negotiate(Some("*/*")),
        Output::Json {
            table: false,
            protobuf_ok: false
        }
    );
    assert_eq!(body_format(Some(MEDIA_TYPE)), BodyFormat::Protobuf);
    assert_eq!(
        body_format(Some("application/json; charset=utf-8")),
        BodyFormat::Json
    );
    assert_eq!(
        body_format(Some("application/merge-patch+json")),
        BodyFormat::Json
    );
    assert_eq!(body_format(Some("text/plain")), BodyFormat::Unsupported);
    assert_eq!(body_format(None), BodyFormat::Json);
}

#[test]
fn errors_never_echo_secret_data() {
    let secret = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"},
        "data": {"password": "c2VjcmV0LXZhbHVl"}, "stringData": {"token": "plain-secret-token"}});
    let good = encode(&secret).unwrap();
    for n in 0..good.len() {
        for b in [0x00u8, 0x80, 0xff, 0x0f] {
            let mut bad = good.clone();
            bad[n] = b;
            for body in [&bad[..], &good[..n]] {
                if let Err(e) = decode(body) {
                    let text = format!("{e} {e:?}");
                    for needle in ["secret-value", "c2VjcmV0", "plain-secret-token"] {
                        assert!(!text.contains(needle), "{text}");
                    }
                }
            }
        }
    }
    let e = encode(&json!({"kind": "Secret", "apiVersion": "v1", "data": {"k": 5}, "stringData": {"t": "plain-secret-token"}}))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "data.k: expected a base64 string, got a number");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // JSONSchemaProps.not (28) inside itself, 5000 deep, in a CustomResourceDefinition
    let mut props: Vec<u8> = vec![];
    for _ in 0..5000 {
        props = ld(28, &props);
    }
    let version = [ld(1, b"v1"), ld(4, &ld(1, &props))].concat();
    let raw = [ld(1, &ld(1, b"x")), ld(2, &ld(7, &version))].concat();
    let e = decode(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &raw,
    ))
    .unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
    // envelopes inside RawExtensions, 10 deep
    let mut obj =
        encode(&json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}}))
            .unwrap();
    for _ in 0..10 {
        let raw = [ld(1, &ld(1, b"r")), ld(2, &ld(1, &obj))].concat();
        obj = envelope("apps/v1", "ControllerRevision", &raw);
    }
    let e = decode(&obj).unwrap_err();
    assert!(e.to_string().contains("nested more than 4 deep"), "{e}");
    // two deep is fine
    let inner =
        encode(&json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}}))
            .unwrap();
    let raw = [ld(1, &ld(1, b"r")), ld(2, &ld(1, &inner))].concat();
    let v = decode(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap();
    assert_eq!(v["data"]["metadata"]["name"], "c");
}

#[test]
fn the_other_served_kinds() {
    assert_round_trip(json!({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "t", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating", "conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": "2026-01-02T03:04:05Z", "reason": "ContentDeleted", "message": "All content successfully deleted"}]},
    }));
    assert_round_trip(json!({
        "kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "bot", "namespace": "t"},
        "secrets": [{"name": "bot-token"}], "imagePullSecrets": [{"name": "regcred"}],
        "automountServiceAccountToken": false,
    }));
    assert_round_trip(json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": "web-5d9", "namespace": "t", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true, "blockOwnerDeletion": true}],
            "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 2, "minReadySeconds": 5, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9"}},
            "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d9"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}]}]}}},
        "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "fullyLabeledReplicas": 2, "observedGeneration": 1},
    }));
    assert_round_trip(json!({
        "kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "r", "namespace": "t"},
        "rules": [{"verbs": ["get", "watch"], "apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"]}],
    }));
    assert_round_trip(json!({
        "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "b"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    }));
    assert_round_trip(json!({
        "kind": "LocalSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"namespace": "t"},
        "spec": {"resourceAttributes": {"namespace": "t", "verb": "list", "resource": "secrets"}, "user": "system:serviceaccount:t:bot",
            "groups": ["system:serviceaccounts"]},
        "status": {"allowed": false, "reason": "no RBAC policy matched"},
    }));
}

#[test]
fn special_messages_by_themselves() {
    // Duration is used by no vendored kind yet: its JSON form both ways, directly
    let s = schema().unwrap();
    let d = s
        .pool
        .get_message_by_name(&format!("{META}.Duration"))
        .unwrap();
    let m = json_to_msg(s, &d, &json!("1h30m"), "timeout").unwrap();
    assert_eq!(msg_to_json(s, &m, 0).unwrap(), json!("1h30m0s"));
    let e = json_to_msg(s, &d, &json!("soon"), "timeout").unwrap_err();
    assert_eq!(
        e.to_string(),
        "timeout: \"soon\" is not a duration (for example \"90s\" or \"1h30m\")"
    );
    // IntOrString and Quantity refuse what they cannot be
    let ios = s
        .pool
        .get_message_by_name("k8s.io.apimachinery.pkg.util.intstr.IntOrString")
        .unwrap();
    assert!(json_to_msg(s, &ios, &json!(true), "port").is_err());
    assert!(json_to_msg(s, &ios, &json!(1i64 << 40), "port").is_err());
    let t = s.pool.get_message_by_name(&format!("{META}.Time")).unwrap();
    let e = json_to_msg(s, &t, &json!("yesterday"), "metadata.creationTimestamp").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("metadata.creationTimestamp: \"yesterday\" is not an RFC 3339 time"),
        "{e}"
    );
}

#[test]
fn encoding_is_gos_layout_with_sorted_map_keys() {
    let cm = json!({"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "c", "labels": {"z": "1", "a": "2", "m": "3"}},
        "data": {"b": "x", "a": "y"}, "immutable": true});
    let pb = encode(&cm).unwrap();
    // the same bytes every time, whatever the hash map's order
    for _ in 0..20 {
        assert_eq!(encode(&cm).unwrap(), pb);
    }
    // written by hand as Go lays it out: metadata{name, labels a, m, z}, data a, b, immutable (4)
    let entry = |k: &str, v: &str| [ld(1, k.as_bytes()), ld(2, v.as_bytes())].concat();
    let md = [
        ld(1, b"c"),
        ld(11, &entry("a", "2")),
        ld(11, &entry("m", "3")),
        ld(11, &entry("z", "1")),
    ]
    .concat();
    let raw = [
        ld(1, &md),
        ld(2, &entry("a", "y")),
        ld(2, &entry("b", "x")),
        vi(4, 1),
    ]
    .concat();
    assert_eq!(pb, envelope("v1", "ConfigMap", &raw));
    // and it agrees with prost-reflect's own encoding of the same message
    let s = schema().unwrap();
    let d = s
        .pool
        .get_message_by_name("k8s.io.api.core.v1.ConfigMap")
        .unwrap();
    let m = DynamicMessage::decode(d.clone(), &raw[..]).unwrap();
    assert_eq!(
        DynamicMessage::decode(d, m.encode_to_vec().as_slice()).unwrap(),
        m
    );
    // negative numbers: int32 sign-extended (10 bytes), as Go writes them
    let neg =
        encode(&json!({"kind": "Pod", "apiVersion": "v1", "spec": {"priority": -1}})).unwrap();
    assert_eq!(decode(&neg).unwrap()["spec"]["priority"], -1);
    // PodSpec.priority is field 25: key 0xc8 0x01, then -1 in ten bytes
    let mut want = vec![0xc8, 0x01];
    want.extend([0xff; 9]);
    want.push(0x01);
    assert!(
        neg.windows(want.len()).any(|w| w == want.as_slice()),
        "priority -1 as a 10-byte varint"
    );
}
