//! The defaults kube-apiserver 1.32 gives a Pod and every pod template as it decodes a request
//! body (kubernetes `pkg/apis/core/v1/defaults.go` and the generated
//! `pkg/apis/core/v1/zz_generated.defaults.go`: `SetObjectDefaults_Pod` for a Pod,
//! `SetObjectDefaults_PodTemplate` and the same calls that `pkg/apis/apps/v1` and
//! `pkg/apis/batch/v1` generate for the templates of Deployments, ReplicaSets, Jobs and
//! CronJobs). One place for both: a Pod gets [`default_pod`], a template
//! [`default_pod_template`], which share everything but `SetDefaults_Pod`.
//!
//! Go's defaulting tests a string field for `""` and an int field for `0`: an empty or zero
//! value here is unset as well.
//!
//! Also what the pod registry strategy sets on a new Pod once mutating admission is done
//! ([`prepare_pod_create`]).

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

use crate::admission::SetDefaults;

impl SetDefaults for core::Pod {
    fn set_defaults(&mut self) {
        default_pod(self);
    }
}

/// `SetObjectDefaults_Pod`: `SetDefaults_Pod`, then the pod spec's defaults (as a template's),
/// then a negative `terminationGracePeriodSeconds` made 1 on the way in
/// (`Convert_v1_Pod_To_core_Pod` since kubernetes 1.27); a template's is kept, with a warning
/// ([`crate::admission::pod_spec_warnings`]).
pub(crate) fn default_pod(pod: &mut core::Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    set_defaults_pod(spec);
    default_spec(spec);
    if let Some(n) = spec.termination_grace_period_seconds.as_mut() {
        if *n < 0 {
            *n = 1;
        }
    }
}

/// `podStrategy.PrepareForCreate` (kubernetes 1.32 `pkg/registry/core/pod/strategy.go`), which
/// the storage runs after mutating admission: whatever status the body (or a webhook) gave is
/// replaced by phase Pending and the QoS class (`qos.GetPodQOS`, read before the status is
/// replaced: a class the body gives, else the one the resources make), then
/// `applySchedulingGatedCondition` adds PodScheduled=False (SchedulingGated) to a pod with
/// scheduling gates, [`mutate_pod_affinity`] and [`apply_app_armor_version_skew`]. Returns
/// whether the spec or the annotations changed (the status always does).
pub(crate) fn prepare_pod_create(pod: &mut core::Pod) -> bool {
    let spec = pod.spec.as_ref();
    let qos = match pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .filter(|q| !q.is_empty())
    {
        Some(q) => q.to_string(),
        None => crate::objects::pod_qos_class(spec.unwrap_or(&Default::default())).into(),
    };
    let gated = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    pod.status = Some(core::PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some(qos),
        conditions: gated.then(|| {
            vec![core::PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("SchedulingGated".into()),
                message: Some("Scheduling is blocked due to non-empty scheduling gates".into()),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    let affinity = mutate_pod_affinity(pod);
    apply_app_armor_version_skew(pod) || affinity
}

/// `mutatePodAffinity` (1.32 `pkg/registry/core/pod/strategy.go`; `MatchLabelKeysInPodAffinity`
/// is beta and on in 1.32): each pod affinity and anti-affinity term, required or preferred,
/// that has a label selector gets a requirement per `matchLabelKeys` key the pod has a label
/// for (`key In (value)`) and per `mismatchLabelKeys` key (`key NotIn (value)`), appended to
/// its `matchExpressions` (`applyMatchLabelKeysAndMismatchLabelKeys`); a term without a
/// selector matches nothing and is left so. Returns whether a term changed.
fn mutate_pod_affinity(pod: &mut core::Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let Some(affinity) = pod.spec.as_mut().and_then(|s| s.affinity.as_mut()) else {
        return false;
    };
    // affinity and anti-affinity hold the same two lists in two types
    fn both<'a>(
        preferred: &'a mut Option<Vec<core::WeightedPodAffinityTerm>>,
        required: &'a mut Option<Vec<core::PodAffinityTerm>>,
    ) -> impl Iterator<Item = &'a mut core::PodAffinityTerm> {
        let preferred = preferred.iter_mut().flatten();
        preferred
            .map(|w| &mut w.pod_affinity_term)
            .chain(required.iter_mut().flatten())
    }
    let mut terms: Vec<&mut core::PodAffinityTerm> = vec![];
    if let Some(a) = affinity.pod_affinity.as_mut() {
        terms.extend(both(
            &mut a.preferred_during_scheduling_ignored_during_execution,
            &mut a.required_during_scheduling_ignored_during_execution,
        ));
    }
    if let Some(a) = affinity.pod_anti_affinity.as_mut() {
        terms.extend(both(
            &mut a.preferred_during_scheduling_ignored_during_execution,
            &mut a.required_during_scheduling_ignored_during_execution,
        ));
    }
    let mut changed = false;
    for term in terms {
        let Some(selector) = term.label_selector.as_mut() else {
            continue;
        };
        let keys = [
            (term.match_label_keys.iter().flatten(), "In"),
            (term.mismatch_label_keys.iter().flatten(), "NotIn"),
        ];
        for (keys, operator) in keys {
            // `applyLabelKeysToLabelSelector`
            for key in keys {
                if let Some(value) = labels.and_then(|l| l.get(key)) {
                    selector
                        .match_expressions
                        .get_or_insert_with(Vec::new)
                        .push(LabelSelectorRequirement {
                            key: key.clone(),
                            operator: operator.into(),
                            values: Some(vec![value.clone()]),
                        });
                    changed = true;
                }
            }
        }
    }
    changed
}

/// `v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix`.
pub(crate) const APPARMOR_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
/// `api.DeprecatedAppArmorAnnotationValueLocalhostPrefix`.
pub(crate) const APPARMOR_LOCALHOST_PREFIX: &str = "localhost/";

/// `applyAppArmorVersionSkew` (1.32 `pkg/registry/core/pod/strategy.go`, the KEP's version skew
/// strategy), for a pod not on Windows: each init, regular and ephemeral container
/// (`VisitContainers`) without an AppArmor annotation gets one from its `appArmorProfile`, else
/// the pod's (`appArmorAnnotationForField`: `unconfined`, `runtime/default`,
/// `localhost/<profile>`; none for a Localhost type without a profile or an unknown type); one
/// with the annotation but no field of its own gets the field the annotation makes
/// (`apparmorFieldForAnnotation`) unless that is invalid or the pod's profile already, with
/// upstream's deprecation warning when it is copied or invalid (`metadata.annotations[…]:
/// deprecated since v1.30; use the "appArmorProfile" field instead`; none when the pod's
/// profile already says it). Returns whether anything changed.
fn apply_app_armor_version_skew(pod: &mut core::Pod) -> bool {
    let Some(spec) = pod.spec.as_mut() else {
        return false;
    };
    if spec.os.as_ref().is_some_and(|os| os.name == "windows") {
        return false;
    }
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.clone());
    let init = spec.init_containers.iter_mut().flatten();
    let regular = spec.containers.iter_mut();
    let ephemeral = spec.ephemeral_containers.iter_mut().flatten();
    let containers = init
        .chain(regular)
        .map(|c| (&c.name, &mut c.security_context))
        .chain(ephemeral.map(|c| (&c.name, &mut c.security_context)));
    let mut changed = false;
    for (name, security_context) in containers {
        let key = format!("{APPARMOR_PREFIX}{name}");
        let annotation = pod.metadata.annotations.as_ref().and_then(|a| a.get(&key));
        let container_profile = security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref());
        match (annotation, container_profile) {
            (None, profile) => {
                let Some(value) = profile
                    .or(pod_profile.as_ref())
                    .and_then(app_armor_annotation_for_field)
                else {
                    continue;
                };
                pod.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(key, value);
                changed = true;
            }
            (Some(annotation), None) => {
                // an invalid field is not copied (`ValidateAppArmorProfileField`)
                let field = app_armor_field_for_annotation(annotation)
                    .filter(app_armor_profile_field_is_valid);
                // warned about when no valid field comes of it, or when it is copied
                let mut warn = field.is_none();
                if let Some(f) = field.filter(|f| Some(f) != pod_profile.as_ref()) {
                    security_context
                        .get_or_insert_with(Default::default)
                        .app_armor_profile = Some(f);
                    changed = true;
                    warn = true;
                }
                if warn {
                    crate::warnings::add(format!(
                        "metadata.annotations[{key}]: deprecated since v1.30; use the \"appArmorProfile\" field instead"
                    ));
                }
            }
            (Some(_), Some(_)) => {}
        }
    }
    changed
}

/// `appArmorAnnotationForField`: the annotation value for a profile, `None` for a Localhost type
/// without a profile or a type upstream does not know.
fn app_armor_annotation_for_field(f: &core::AppArmorProfile) -> Option<String> {
    match f.type_.as_str() {
        "Unconfined" => Some("unconfined".into()),
        "RuntimeDefault" => Some("runtime/default".into()),
        "Localhost" => f
            .localhost_profile
            .as_ref()
            .map(|p| format!("{APPARMOR_LOCALHOST_PREFIX}{p}")),
        _ => None,
    }
}

/// `apparmorFieldForAnnotation`: the profile an annotation value names, `None` for an
/// unknown value or `localhost/` without a name.
fn app_armor_field_for_annotation(annotation: &str) -> Option<core::AppArmorProfile> {
    let profile = |type_: &str, localhost_profile: Option<&str>| core::AppArmorProfile {
        type_: type_.into(),
        localhost_profile: localhost_profile.map(Into::into),
    };
    match annotation {
        "unconfined" => Some(profile("Unconfined", None)),
        "runtime/default" => Some(profile("RuntimeDefault", None)),
        a => a
            .strip_prefix(APPARMOR_LOCALHOST_PREFIX)
            .filter(|p| !p.is_empty())
            .map(|p| profile("Localhost", Some(p))),
    }
}

/// Whether `ValidateAppArmorProfileField` (1.32 `pkg/apis/core/validation/validation.go`) finds
/// nothing wrong with a profile made from an annotation: a Localhost profile name not padded
/// with whitespace and at most 4095 bytes (`PATH_MAX - 1`).
fn app_armor_profile_field_is_valid(f: &core::AppArmorProfile) -> bool {
    match (f.type_.as_str(), f.localhost_profile.as_deref()) {
        ("Localhost", Some(p)) => p.trim() == p && !p.is_empty() && p.len() <= 4095,
        ("Localhost", None) => false,
        ("RuntimeDefault" | "Unconfined", p) => p.is_none(),
        _ => false,
    }
}

/// The defaults of a pod template's spec (`SetObjectDefaults_PodTemplate` and the template
/// parts of `SetObjectDefaults_Deployment`, `_ReplicaSet`, `_Job`, `_CronJob`): everything a
/// Pod gets but `SetDefaults_Pod`, so a template's containers keep their requests unset and
/// its `enableServiceLinks` is left to the Pods made from it.
pub(crate) fn default_pod_template(t: Option<&mut core::PodTemplateSpec>) {
    if let Some(spec) = t.and_then(|t| t.spec.as_mut()) {
        default_spec(spec);
    }
}

/// `SetDefaults_Pod`, the defaults only a Pod gets (not a template): each container's and init
/// container's requests default to its limits (a resource it requests keeps its request),
/// `enableServiceLinks` is true, and with `hostNetwork` every container port's `hostPort` is
/// its `containerPort` (`defaultHostNetworkPorts`). The pod-level resources' defaults are
/// behind the `PodLevelResources` feature gate, off in 1.32.
fn set_defaults_pod(spec: &mut core::PodSpec) {
    let init = spec.init_containers.iter_mut().flatten();
    for c in spec.containers.iter_mut().chain(init) {
        let Some(r) = c.resources.as_mut() else {
            continue;
        };
        // Go's `omitempty` drops an empty map: no limits is no requests to add
        let Some(limits) = r.limits.as_ref().filter(|l| !l.is_empty()) else {
            continue;
        };
        let requests = r.requests.get_or_insert_with(Default::default);
        for (name, q) in limits {
            requests.entry(name.clone()).or_insert_with(|| q.clone());
        }
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        let init = spec.init_containers.iter_mut().flatten();
        for p in spec
            .containers
            .iter_mut()
            .chain(init)
            .flat_map(|c| c.ports.iter_mut().flatten())
        {
            if p.host_port.unwrap_or(0) == 0 {
                p.host_port = Some(p.container_port);
            }
        }
    }
}

/// An empty or unset string field takes `v`.
fn or(f: &mut Option<String>, v: &str) {
    if f.as_deref().is_none_or(str::is_empty) {
        *f = Some(v.into());
    }
}

/// A zero or unset int field takes `v`.
fn or_int(f: &mut Option<i32>, v: i32) {
    if f.unwrap_or(0) == 0 {
        *f = Some(v);
    }
}

/// The fields of a container (a `Container`, or an ephemeral container's
/// `EphemeralContainerCommon`) that its defaults set.
struct ContainerParts<'a> {
    image: Option<&'a str>,
    image_pull_policy: &'a mut Option<String>,
    termination_message_path: &'a mut Option<String>,
    termination_message_policy: &'a mut Option<String>,
    ports: Option<&'a mut Vec<core::ContainerPort>>,
    env: Option<&'a mut Vec<core::EnvVar>>,
    resources: &'a mut Option<core::ResourceRequirements>,
    probes: [Option<&'a mut core::Probe>; 3],
    lifecycle: Option<&'a mut core::Lifecycle>,
}

/// The [`ContainerParts`] of a `Container` or an `EphemeralContainer` (same field names).
macro_rules! container_parts {
    ($c:expr) => {
        ContainerParts {
            image: $c.image.as_deref(),
            image_pull_policy: &mut $c.image_pull_policy,
            termination_message_path: &mut $c.termination_message_path,
            termination_message_policy: &mut $c.termination_message_policy,
            ports: $c.ports.as_mut(),
            env: $c.env.as_mut(),
            resources: &mut $c.resources,
            probes: [
                $c.liveness_probe.as_mut(),
                $c.readiness_probe.as_mut(),
                $c.startup_probe.as_mut(),
            ],
            lifecycle: $c.lifecycle.as_mut(),
        }
    };
}

/// The pod spec's part of `SetObjectDefaults_PodTemplate`, in its order:
/// `SetDefaults_PodSpec`, the volumes, the init containers, the containers and the ephemeral
/// containers.
fn default_spec(spec: &mut core::PodSpec) {
    set_defaults_pod_spec(spec);
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(container_parts!(c));
    }
    for c in &mut spec.containers {
        default_container(container_parts!(c));
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        // `SetDefaults_EphemeralContainer`: as a container
        default_container(container_parts!(c));
    }
    resource_list(spec.overhead.as_mut());
}

/// `SetDefaults_PodSpec`: DNS policy ClusterFirst, restart policy Always, an empty pod
/// security context, a 30 s grace period and the default scheduler.
fn set_defaults_pod_spec(spec: &mut core::PodSpec) {
    or(&mut spec.dns_policy, "ClusterFirst");
    or(&mut spec.restart_policy, "Always");
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    or(&mut spec.scheduler_name, "default-scheduler");
}

/// `SetDefaults_Volume` (a volume without a source is an emptyDir; the image volume's pull
/// policy is behind the `ImageVolume` feature gate, off in 1.32) and its source's defaults:
/// `SetDefaults_HostPathVolumeSource` (type `""`), `SetDefaults_SecretVolumeSource`,
/// `SetDefaults_ConfigMapVolumeSource`, `SetDefaults_DownwardAPIVolumeSource` and
/// `SetDefaults_ProjectedVolumeSource` (mode 0644) with their field references
/// (`SetDefaults_ObjectFieldSelector`) and service account tokens
/// (`SetDefaults_ServiceAccountTokenProjection`, an hour), the declarative defaults of the
/// iSCSI, RBD, Azure Disk and ScaleIO sources, and an ephemeral volume's claim template
/// (`SetDefaults_PersistentVolumeClaimSpec`: Filesystem).
fn default_volume(v: &mut core::Volume) {
    /// `v1.SecretVolumeSourceDefaultMode` and the other sources' `0644`.
    const MODE: i32 = 0o644;
    if *v
        == (core::Volume {
            name: v.name.clone(),
            ..Default::default()
        })
    {
        v.empty_dir = Some(Default::default());
    }
    if let Some(h) = &mut v.host_path {
        // `HostPathUnset`
        h.type_.get_or_insert_with(String::new);
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(MODE);
    }
    if let Some(s) = &mut v.iscsi {
        or(&mut s.iscsi_interface, "default");
    }
    if let Some(s) = &mut v.rbd {
        or(&mut s.pool, "rbd");
        or(&mut s.user, "admin");
        or(&mut s.keyring, "/etc/ceph/keyring");
    }
    if let Some(d) = &mut v.downward_api {
        d.default_mode.get_or_insert(MODE);
        downward_field_refs(d.items.as_mut());
    }
    if let Some(c) = &mut v.config_map {
        c.default_mode.get_or_insert(MODE);
    }
    if let Some(a) = &mut v.azure_disk {
        a.caching_mode.get_or_insert_with(|| "ReadWrite".into());
        a.fs_type.get_or_insert_with(|| "ext4".into());
        a.read_only.get_or_insert(false);
        a.kind.get_or_insert_with(|| "Shared".into());
    }
    if let Some(p) = &mut v.projected {
        p.default_mode.get_or_insert(MODE);
        for s in p.sources.iter_mut().flatten() {
            if let Some(d) = &mut s.downward_api {
                downward_field_refs(d.items.as_mut());
            }
            if let Some(t) = &mut s.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(s) = &mut v.scale_io {
        or(&mut s.storage_mode, "ThinProvisioned");
        or(&mut s.fs_type, "xfs");
    }
    if let Some(t) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
    {
        t.spec
            .volume_mode
            .get_or_insert_with(|| "Filesystem".into());
    }
}

/// `SetDefaults_ObjectFieldSelector` of downward API items: the field path's API version v1.
fn downward_field_refs(items: Option<&mut Vec<core::DownwardAPIVolumeFile>>) {
    for f in items
        .into_iter()
        .flatten()
        .filter_map(|i| i.field_ref.as_mut())
    {
        or(&mut f.api_version, "v1");
    }
}

/// A container's part of the generated defaults: `SetDefaults_Container` (pull policy Always
/// for a `:latest` or untagged image, else IfNotPresent, including for an image that does not
/// parse; termination message path and policy), each port's protocol (TCP, a declarative
/// default), each env var's field reference (`SetDefaults_ObjectFieldSelector`), the resources
/// (a struct in Go, so never absent), each probe (`SetDefaults_Probe`, its HTTP GET's
/// `SetDefaults_HTTPGetAction` and its gRPC service `""`) and the lifecycle hooks' HTTP GETs.
fn default_container(c: ContainerParts<'_>) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let p = kubepull_core::pullpolicy::default_pull_policy(c.image.unwrap_or(""));
        *c.image_pull_policy = Some(p.as_str().into());
    }
    or(c.termination_message_path, "/dev/termination-log");
    or(c.termination_message_policy, "File");
    for p in c.ports.into_iter().flatten() {
        or(&mut p.protocol, "TCP");
    }
    for e in c.env.into_iter().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            or(&mut f.api_version, "v1");
        }
    }
    let r = c.resources.get_or_insert_with(Default::default);
    for list in [&mut r.limits, &mut r.requests] {
        resource_list(list.as_mut());
    }
    for p in c.probes.into_iter().flatten() {
        or_int(&mut p.timeout_seconds, 1);
        or_int(&mut p.period_seconds, 10);
        or_int(&mut p.success_threshold, 1);
        or_int(&mut p.failure_threshold, 3);
        if let Some(h) = &mut p.http_get {
            default_http_get(h);
        }
        if let Some(g) = &mut p.grpc {
            g.service.get_or_insert_with(String::new);
        }
    }
    if let Some(l) = c.lifecycle {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(g) = &mut h.http_get {
                default_http_get(g);
            }
        }
    }
}

/// `SetDefaults_ResourceList`: each quantity rounded up to milli-units, in the spelling
/// kube-apiserver then writes ([`crate::quantities::go_resource_list_string`]).
pub(crate) fn resource_list(list: Option<&mut std::collections::BTreeMap<String, Quantity>>) {
    for q in list.into_iter().flat_map(|l| l.values_mut()) {
        q.0 = crate::quantities::go_resource_list_string(&q.0);
    }
}

/// `SetDefaults_HTTPGetAction`: path `/`, scheme HTTP.
fn default_http_get(h: &mut core::HTTPGetAction) {
    or(&mut h.path, "/");
    or(&mut h.scheme, "HTTP");
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn pod(spec: Value) -> Value {
        let mut p: core::Pod = serde_json::from_value(json!({"spec": spec})).unwrap();
        default_pod(&mut p);
        serde_json::to_value(p).unwrap()["spec"].take()
    }

    fn template(spec: Value) -> Value {
        let mut t: core::PodTemplateSpec = serde_json::from_value(json!({"spec": spec})).unwrap();
        default_pod_template(Some(&mut t));
        serde_json::to_value(t).unwrap()["spec"].take()
    }

    #[test]
    fn a_pods_requests_default_to_its_limits() {
        let spec = json!({
            "containers": [
                {"name": "a", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "image": "i", "resources": {"limits": {"cpu": "2", "memory": "1Gi"},
                    "requests": {"cpu": "500m"}}},
                {"name": "c", "image": "i", "resources": {"limits": {}}},
                {"name": "d", "image": "i"}],
            "initContainers": [
                {"name": "i", "image": "i", "resources": {"limits": {"memory": "64Mi"}}}]});
        let p = pod(spec.clone());
        let c = &p["containers"];
        assert_eq!(
            c[0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
        );
        // a resource the container requests keeps its request
        assert_eq!(
            c[1]["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(c[2]["resources"], json!({"limits": {}}));
        assert_eq!(c[3]["resources"], json!({}));
        assert_eq!(
            p["initContainers"][0]["resources"]["requests"],
            json!({"memory": "64Mi"})
        );
        assert_eq!(p["enableServiceLinks"], true);
        // a template's containers keep their requests unset, its service links too
        let t = template(spec);
        assert!(t["containers"][0]["resources"].get("requests").is_none());
        assert!(t["initContainers"][0]["resources"]
            .get("requests")
            .is_none());
        assert!(t.get("enableServiceLinks").is_none());
    }

    #[test]
    fn host_network_ports_only_for_pods() {
        let spec = json!({"hostNetwork": true, "containers": [{"name": "a", "image": "i",
            "ports": [{"containerPort": 80}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}]}]});
        let p = pod(spec.clone());
        assert_eq!(
            p["containers"][0]["ports"],
            json!([{"containerPort": 80, "hostPort": 80, "protocol": "TCP"},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}])
        );
        let t = template(spec);
        assert_eq!(
            t["containers"][0]["ports"][0],
            json!({"containerPort": 80, "protocol": "TCP"})
        );
    }

    #[test]
    fn containers_probes_env_and_ephemeral_containers() {
        let probe = json!({"httpGet": {"port": 8080}, "periodSeconds": 0});
        let spec = json!({
            "containers": [{"name": "a", "image": "nginx",
                "livenessProbe": probe, "readinessProbe": {"grpc": {"port": 9000}, "timeoutSeconds": 5},
                "startupProbe": {"tcpSocket": {"port": 1}},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}},
                    "postStart": {"exec": {"command": ["true"]}}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "V", "value": "x"}]}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36"}]});
        for s in [pod(spec.clone()), template(spec)] {
            let c = &s["containers"][0];
            assert_eq!(c["imagePullPolicy"], "Always");
            assert_eq!(
                c["livenessProbe"],
                json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                    "failureThreshold": 3})
            );
            assert_eq!(
                c["readinessProbe"],
                json!({"grpc": {"port": 9000, "service": ""}, "timeoutSeconds": 5,
                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
            );
            assert_eq!(c["startupProbe"]["periodSeconds"], 10);
            assert_eq!(
                c["lifecycle"]["preStop"]["httpGet"],
                json!({"port": 80, "path": "/stop", "scheme": "HTTP"})
            );
            assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
            assert_eq!(c["env"][1], json!({"name": "V", "value": "x"}));
            assert_eq!(
                s["ephemeralContainers"][0],
                json!({"name": "dbg", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "resources": {}})
            );
        }
        // no image: IfNotPresent, as the ignored parse error leaves the tag empty
        let s = template(json!({"containers": [{"name": "a"}]}));
        assert_eq!(s["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn volume_sources() {
        let spec = json!({"containers": [{"name": "a", "image": "i"}], "volumes": [
            {"name": "none"},
            {"name": "hp", "hostPath": {"path": "/x"}},
            {"name": "hp2", "hostPath": {"path": "/x", "type": "Directory"}},
            {"name": "s", "secret": {"secretName": "s"}},
            {"name": "s2", "secret": {"secretName": "s", "defaultMode": 256}},
            {"name": "cm", "configMap": {"name": "c"}},
            {"name": "d", "downwardAPI": {"items": [{"path": "n",
                "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "p", "projected": {"sources": [
                {"serviceAccountToken": {"path": "t"}},
                {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
            {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}},
            {"name": "r", "rbd": {"monitors": ["m"], "image": "i"}},
            {"name": "is", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0}},
            {"name": "az", "azureDisk": {"diskName": "d", "diskURI": "u"}},
            {"name": "sio", "scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": "x"}}},
            {"name": "ed", "emptyDir": {"sizeLimit": "1Gi"}}]});
        let v = template(spec)["volumes"].clone();
        let want = json!([
            {"name": "none", "emptyDir": {}},
            {"name": "hp", "hostPath": {"path": "/x", "type": ""}},
            {"name": "hp2", "hostPath": {"path": "/x", "type": "Directory"}},
            {"name": "s", "secret": {"secretName": "s", "defaultMode": 420}},
            {"name": "s2", "secret": {"secretName": "s", "defaultMode": 256}},
            {"name": "cm", "configMap": {"name": "c", "defaultMode": 420}},
            {"name": "d", "downwardAPI": {"defaultMode": 420, "items": [{"path": "n",
                "fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}]}},
            {"name": "p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}},
                {"downwardAPI": {"items": [{"path": "n",
                    "fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}]}}]}},
            {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}}}},
            {"name": "r", "rbd": {"monitors": ["m"], "image": "i", "pool": "rbd",
                "user": "admin", "keyring": "/etc/ceph/keyring"}},
            {"name": "is", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0,
                "iscsiInterface": "default"}},
            {"name": "az", "azureDisk": {"diskName": "d", "diskURI": "u",
                "cachingMode": "ReadWrite", "fsType": "ext4", "readOnly": false, "kind": "Shared"}},
            {"name": "sio", "scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": "x"},
                "storageMode": "ThinProvisioned", "fsType": "xfs"}},
            {"name": "ed", "emptyDir": {"sizeLimit": "1Gi"}}]);
        assert_eq!(v, want);
    }

    #[test]
    fn a_new_pods_status_is_reset() {
        let mut p: core::Pod = serde_json::from_value(json!({
            "spec": {"containers": [{"name": "a", "image": "i",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "10.0.0.2",
                "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
        default_pod(&mut p);
        prepare_pod_create(&mut p);
        assert_eq!(
            serde_json::to_value(&p.status).unwrap(),
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        // a class the body gives is kept (GetPodQOS); a gated pod is SchedulingGated
        let mut p: core::Pod = serde_json::from_value(json!({
            "spec": {"containers": [{"name": "a", "image": "i"}],
                "schedulingGates": [{"name": "g"}]},
            "status": {"phase": "Succeeded", "qosClass": "Burstable",
                "conditions": [{"type": "PodScheduled", "status": "True"}]}}))
        .unwrap();
        prepare_pod_create(&mut p);
        assert_eq!(
            serde_json::to_value(&p.status).unwrap(),
            json!({"phase": "Pending", "qosClass": "Burstable", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates"}]})
        );
    }

    #[test]
    fn a_pods_negative_grace_period_is_one() {
        let spec = json!({"terminationGracePeriodSeconds": -5, "containers": [{"name": "a", "image": "i"}]});
        assert_eq!(pod(spec.clone())["terminationGracePeriodSeconds"], 1);
        assert_eq!(template(spec)["terminationGracePeriodSeconds"], -5);
    }

    fn prepared(pod: Value) -> (Value, bool, Vec<String>) {
        let mut p: core::Pod = serde_json::from_value(pod).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (changed, warnings) = rt.block_on(crate::warnings::collect(async {
            prepare_pod_create(&mut p)
        }));
        let mut v = serde_json::to_value(&p).unwrap();
        v.as_object_mut().unwrap().remove("status");
        (v, changed, warnings)
    }

    /// `mutatePodAffinity`: `matchLabelKeys` and `mismatchLabelKeys` become `In` and `NotIn`
    /// requirements from the pod's labels, in every kind of term; a key the pod has no label
    /// for adds nothing, nor does a term without a selector.
    #[test]
    fn pod_affinity_label_keys_become_requirements() {
        let term = |extra: Value| {
            let mut t = json!({"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "web"}},
                "matchLabelKeys": ["rev", "missing"], "mismatchLabelKeys": ["team"]});
            for (k, v) in extra.as_object().unwrap() {
                t[k] = v.clone();
            }
            t
        };
        let no_selector = json!({"topologyKey": "zone", "matchLabelKeys": ["rev"]});
        let pod = json!({"metadata": {"labels": {"app": "web", "rev": "7", "team": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "affinity": {
                "podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [term(json!({})), no_selector],
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "podAffinityTerm": term(json!({}))}]},
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [term(json!({
                        "labelSelector": {"matchExpressions": [
                            {"key": "x", "operator": "Exists"}]}}))],
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "podAffinityTerm": term(json!({}))}]}}}});
        let (v, changed, _) = prepared(pod);
        assert!(changed);
        let added = json!([{"key": "rev", "operator": "In", "values": ["7"]},
            {"key": "team", "operator": "NotIn", "values": ["a"]}]);
        let a = &v["spec"]["affinity"];
        assert_eq!(
            a["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"],
            json!({"matchLabels": {"app": "web"}, "matchExpressions": added})
        );
        assert_eq!(
            a["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][1],
            json!({"topologyKey": "zone", "matchLabelKeys": ["rev"]})
        );
        for path in [
            "/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm",
            "/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm",
        ] {
            assert_eq!(
                a.pointer(path).unwrap()["labelSelector"]["matchExpressions"],
                added
            );
        }
        assert_eq!(
            a["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
                ["labelSelector"]["matchExpressions"],
            json!([{"key": "x", "operator": "Exists"},
                {"key": "rev", "operator": "In", "values": ["7"]},
                {"key": "team", "operator": "NotIn", "values": ["a"]}])
        );
        // nothing to add: unchanged
        let (_, changed, _) =
            prepared(json!({"spec": {"containers": [{"name": "c", "image": "i"}],
            "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                term(json!({}))]}}}}));
        assert!(!changed);
    }

    /// `applyAppArmorVersionSkew`: fields make annotations (a container's own profile before
    /// the pod's), annotations make fields (unless the pod's profile is the same, or the
    /// annotation makes no valid profile), with the deprecation warning unless it was the pod's
    /// profile, a container with both
    /// is left alone, and a Windows pod is not touched.
    #[test]
    fn app_armor_annotations_and_fields_are_kept_in_step() {
        const P: &str = "container.apparmor.security.beta.kubernetes.io/";
        let warning = |c: &str| {
            format!("metadata.annotations[{P}{c}]: deprecated since v1.30; use the \"appArmorProfile\" field instead")
        };
        let c = |name: &str, profile: Value| {
            let mut c = json!({"name": name, "image": "i"});
            if !profile.is_null() {
                c["securityContext"] = json!({"appArmorProfile": profile});
            }
            c
        };
        let pod = json!({
            "metadata": {"annotations": {
                format!("{P}from-annotation"): "localhost/custom",
                format!("{P}same-as-pod"): "runtime/default",
                format!("{P}padded"): "localhost/ custom",
                format!("{P}both"): "unconfined"}},
            "spec": {
                "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                "initContainers": [c("init", json!({"type": "Localhost", "localhostProfile": "p1"}))],
                "containers": [
                    c("inherits", Value::Null),
                    c("no-profile-name", json!({"type": "Localhost"})),
                    c("from-annotation", Value::Null),
                    c("same-as-pod", Value::Null),
                    c("padded", Value::Null),
                    c("both", json!({"type": "Unconfined"}))]}});
        let (v, changed, warnings) = prepared(pod.clone());
        assert!(changed);
        let annotations = &v["metadata"]["annotations"];
        assert_eq!(annotations[format!("{P}init")], "localhost/p1");
        assert_eq!(annotations[format!("{P}inherits")], "runtime/default");
        assert_eq!(annotations.get(format!("{P}no-profile-name")), None);
        assert_eq!(annotations.as_object().unwrap().len(), 6, "{annotations:#}");
        let profile =
            |i: usize| v["spec"]["containers"][i]["securityContext"]["appArmorProfile"].clone();
        assert_eq!(
            profile(2),
            json!({"type": "Localhost", "localhostProfile": "custom"})
        );
        assert_eq!(profile(3), Value::Null);
        assert_eq!(profile(4), Value::Null);
        assert_eq!(profile(5), json!({"type": "Unconfined"}));
        assert_eq!(
            warnings,
            vec![warning("from-annotation"), warning("padded")]
        );
        // Windows pods are left as they are
        let mut windows = pod;
        windows["spec"]["os"] = json!({"name": "windows"});
        let (v, changed, warnings) = prepared(windows.clone());
        assert!(!changed && warnings.is_empty());
        assert_eq!(v["metadata"], windows["metadata"]);
    }
}
