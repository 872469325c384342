//! Defaulting, validation and strict decoding for the served types, as kube-apiserver does for
//! the fields kubepull uses (kubernetes `pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/core/validation/validation.go`, `pkg/apis/apps/validation`). Messages never echo
//! Secret data.

use k8s_openapi::api::{
    admissionregistration::v1 as admreg, apps::v1 as apps, batch::v1 as batch, core::v1 as core,
    rbac::v1 as rbac,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use crate::errors::Cause;
use crate::resources::Resource;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, of any length.
fn is_label_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    // `IsDNS1123Subdomain`: at most 253 characters and the subdomain regex, which limits the
    // whole name, not each of its labels
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

/// `IsDNS1123Subdomain`'s messages (k8s.io/apimachinery pkg/util/validation/validation.go).
pub(crate) fn dns1123_subdomain_problems(s: &str) -> Vec<&'static str> {
    let mut problems = vec![];
    if s.len() > 253 {
        problems.push("must be no more than 253 characters");
    }
    if !s.split('.').all(is_label_shaped) {
        problems.push(DNS1123_SUBDOMAIN_MSG);
    }
    problems
}

pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// The name problems of a resource's name function (`ValidateNameFunc`): `prefix` for a
/// `generateName`, whose trailing dash is masked (`maskTrailingDash`, k8s.io/apimachinery
/// pkg/api/validation/generic.go, which also drops the character before it).
fn name_problems(r: &Resource, name: &str, prefix: bool) -> Vec<String> {
    let core_event = r.group.is_empty() && r.kind == "Event";
    if r.group == "rbac.authorization.k8s.io" || core_event {
        // ValidateRBACName: path.IsValidPathSegmentName (k8s.io/apimachinery
        // pkg/api/validation/path), whatever the prefix. A core Event's name gets no name rule
        // of its own (`ValidateEventCreate` checks ObjectMeta only through events.k8s.io), only
        // `rest.BeforeCreate`'s `ValidatePathSegmentName`, whose prefix form
        // (`IsValidPathSegmentPrefix`) checks only what a name may not contain
        let mut msgs = vec![];
        if (name == "." || name == "..") && !(core_event && prefix) {
            msgs.push(format!("may not be '{name}'"));
        }
        for bad in ["/", "%"] {
            if name.contains(bad) {
                msgs.push(format!("may not contain '{bad}'"));
            }
        }
        return msgs;
    }
    let masked;
    let name = if prefix && name.len() > 1 && name.ends_with('-') {
        // `name[:len(name)-2] + "a"`, bytes as Go cuts them (a character cut in two is no
        // valid name either way)
        let bytes = &name.as_bytes()[..name.len() - 2];
        masked = format!("{}a", String::from_utf8_lossy(bytes));
        masked.as_str()
    } else {
        name
    };
    // `ValidateNamespaceName` and `ValidateStatefulSetName` are `NameIsDNSLabel`
    // (`IsDNS1123Label`); `ValidateServiceAccountName`, like most names, `NameIsDNSSubdomain`
    // (`IsDNS1123Subdomain`)
    let problems = if crate::resources::is_core(r, "Namespace")
        || (r.group, r.kind) == ("apps", "StatefulSet")
    {
        dns1123_label_problems(name)
    } else {
        dns1123_subdomain_problems(name)
    };
    problems.into_iter().map(str::to_string).collect()
}

/// Validates `metadata.generateName` and `metadata.name` for a resource, as
/// `ValidateObjectMetaAccessor`: each message of the name function a cause, the generateName's
/// first.
pub fn validate_name(r: &Resource, name: &str, generate_name: Option<&str>) -> Vec<Cause> {
    let mut causes = vec![];
    if let Some(g) = generate_name.filter(|g| !g.is_empty()) {
        for m in name_problems(r, g, true) {
            causes.push(Cause::invalid(
                "metadata.generateName",
                format!("\"{g}\""),
                m,
            ));
        }
    }
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
        return causes;
    }
    for m in name_problems(r, name, false) {
        causes.push(Cause::invalid("metadata.name", format!("\"{name}\""), m));
    }
    causes
}

/// Kubernetes' defaulting functions for a typed object, run as it is decoded (kube-apiserver's
/// codec applies `SetDefaults_*` while decoding a request body). Kinds without defaults keep the
/// empty default. A Pod's and the pod templates' are in [`crate::defaults`].
pub(crate) trait SetDefaults {
    fn set_defaults(&mut self) {}
}

impl SetDefaults for core::Secret {
    /// `SetDefaults_Secret` (type Opaque) and `Convert_v1_Secret_To_core_Secret`
    /// (pkg/apis/core/v1/conversion.go): `stringData` is write-only, merged into `data` (a key
    /// in both takes the `stringData` value).
    fn set_defaults(&mut self) {
        self.type_.get_or_insert_with(|| "Opaque".into());
        if let Some(sd) = self.string_data.take() {
            let data = self.data.get_or_insert_with(Default::default);
            for (k, v) in sd {
                data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
            }
        }
    }
}

impl SetDefaults for apps::Deployment {
    /// `SetDefaults_Deployment` (pkg/apis/apps/v1/defaults.go): one replica, RollingUpdate with
    /// 25% unavailable and 25% surge, 10 old ReplicaSets kept, 600s progress deadline.
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        let strategy = spec.strategy.get_or_insert_with(Default::default);
        let ty = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if ty == "RollingUpdate" {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            ru.max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        crate::defaults::default_pod_template(Some(&mut spec.template));
    }
}

impl SetDefaults for apps::ReplicaSet {
    /// `SetDefaults_ReplicaSet` (pkg/apis/apps/v1/defaults.go): one replica.
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        crate::defaults::default_pod_template(spec.template.as_mut());
    }
}

impl SetDefaults for apps::DaemonSet {
    /// `SetDefaults_DaemonSet` (pkg/apis/apps/v1/defaults.go): RollingUpdate with one
    /// unavailable and no surge, 10 old revisions kept.
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let strategy = spec.update_strategy.get_or_insert_with(Default::default);
        let ty = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if ty == "RollingUpdate" {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        crate::defaults::default_pod_template(Some(&mut spec.template));
    }
}

impl SetDefaults for apps::StatefulSet {
    /// `SetObjectDefaults_StatefulSet` (pkg/apis/apps/v1/defaults.go `SetDefaults_StatefulSet`
    /// with the 1.32 gates: StatefulSetAutoDeletePVC on, MaxUnavailableStatefulSet off):
    /// OrderedReady, RollingUpdate from partition 0, claims retained, one replica, 10 old
    /// revisions kept; the claim templates get a claim's defaults.
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.pod_management_policy
            .get_or_insert_with(|| "OrderedReady".into());
        let strategy = spec.update_strategy.get_or_insert_with(Default::default);
        if strategy.type_.is_none() {
            strategy.type_ = Some("RollingUpdate".into());
            strategy.rolling_update.get_or_insert_with(Default::default);
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            if let Some(ru) = strategy.rolling_update.as_mut() {
                ru.partition.get_or_insert(0);
            }
        }
        let policy = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(Default::default);
        for p in [&mut policy.when_deleted, &mut policy.when_scaled] {
            if p.as_deref().unwrap_or("").is_empty() {
                *p = Some("Retain".into());
            }
        }
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        crate::defaults::default_pod_template(Some(&mut spec.template));
        for claim in spec.volume_claim_templates.iter_mut().flatten() {
            claim.set_defaults();
        }
    }
}

impl SetDefaults for core::PersistentVolumeClaim {
    /// `SetObjectDefaults_PersistentVolumeClaim` (pkg/apis/core/v1/defaults.go): phase
    /// Pending, volume mode Filesystem, resource quantities as stored.
    fn set_defaults(&mut self) {
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().unwrap_or("").is_empty() {
            status.phase = Some("Pending".into());
        }
        crate::defaults::resource_list(status.capacity.as_mut());
        crate::defaults::resource_list(status.allocated_resources.as_mut());
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        if let Some(r) = spec.resources.as_mut() {
            crate::defaults::resource_list(r.limits.as_mut());
            crate::defaults::resource_list(r.requests.as_mut());
        }
    }
}

impl SetDefaults for apps::ControllerRevision {}
impl SetDefaults for k8s_openapi::api::networking::v1::Ingress {}
impl SetDefaults for k8s_openapi::api::networking::v1::IngressClass {
    /// `SetDefaults_IngressClass` (pkg/apis/networking/v1/defaults.go): parameters without a
    /// scope are the cluster's.
    fn set_defaults(&mut self) {
        if let Some(p) = self.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
            p.scope.get_or_insert_with(|| "Cluster".into());
        }
    }
}
impl SetDefaults for k8s_openapi::api::policy::v1::PodDisruptionBudget {}

impl SetDefaults for k8s_openapi::api::networking::v1::NetworkPolicy {
    /// `SetObjectDefaults_NetworkPolicy` (pkg/apis/networking/v1): `SetDefaults_NetworkPolicy`
    /// (policy types `Ingress`, and `Egress` when egress rules are given, when none are named),
    /// then `SetDefaults_NetworkPolicyPort` on every ingress and egress port (protocol TCP).
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec!["Ingress".to_string()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push("Egress".into());
            }
            spec.policy_types = Some(types);
        }
        let ingress = spec.ingress.iter_mut().flatten().map(|r| &mut r.ports);
        let egress = spec.egress.iter_mut().flatten().map(|r| &mut r.ports);
        for p in ingress.chain(egress).flatten().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
        }
    }
}

impl SetDefaults for k8s_openapi::api::scheduling::v1::PriorityClass {
    /// `SetDefaults_PriorityClass` (pkg/apis/scheduling/v1/defaults.go): preemption policy
    /// `PreemptLowerPriority`.
    fn set_defaults(&mut self) {
        self.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
    }
}

impl SetDefaults for core::ResourceQuota {
    /// `SetObjectDefaults_ResourceQuota` (pkg/apis/core/v1): the spec's and the status'
    /// resource lists in the spelling kube-apiserver stores.
    fn set_defaults(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            crate::defaults::resource_list(spec.hard.as_mut());
        }
        if let Some(st) = self.status.as_mut() {
            crate::defaults::resource_list(st.hard.as_mut());
            crate::defaults::resource_list(st.used.as_mut());
        }
    }
}

impl SetDefaults for core::LimitRange {
    /// `SetObjectDefaults_LimitRange` (pkg/apis/core/v1): `SetDefaults_LimitRangeItem` on each
    /// limit (for type `Container`: the default limit from `max`, the default request from the
    /// default limit, then from `min`), then each of its resource lists in the spelling
    /// kube-apiserver stores.
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        for item in &mut spec.limits {
            if item.type_ == "Container" {
                let default = item.default.get_or_insert_with(Default::default);
                for (k, v) in item.max.iter().flatten() {
                    default.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let request = item.default_request.get_or_insert_with(Default::default);
                for (k, v) in default.iter().chain(item.min.iter().flatten()) {
                    request.entry(k.clone()).or_insert_with(|| v.clone());
                }
                // maps left empty are omitted when encoded (`omitempty`)
                if item.default.as_ref().is_some_and(|m| m.is_empty()) {
                    item.default = None;
                }
                if item.default_request.as_ref().is_some_and(|m| m.is_empty()) {
                    item.default_request = None;
                }
            }
            crate::defaults::resource_list(item.max.as_mut());
            crate::defaults::resource_list(item.min.as_mut());
            crate::defaults::resource_list(item.default.as_mut());
            crate::defaults::resource_list(item.default_request.as_mut());
            crate::defaults::resource_list(item.max_limit_request_ratio.as_mut());
        }
    }
}

impl SetDefaults for core::PersistentVolume {
    /// `SetObjectDefaults_PersistentVolume` (pkg/apis/core/v1/defaults.go): phase Pending,
    /// reclaim policy Retain, volume mode Filesystem, a host path's type `""`, the capacity as
    /// stored.
    fn set_defaults(&mut self) {
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().unwrap_or("").is_empty() {
            status.phase = Some("Pending".into());
        }
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec
            .persistent_volume_reclaim_policy
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            spec.persistent_volume_reclaim_policy = Some("Retain".into());
        }
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        if let Some(h) = spec.host_path.as_mut() {
            h.type_.get_or_insert_with(String::new);
        }
        crate::defaults::resource_list(spec.capacity.as_mut());
    }
}

impl SetDefaults for core::ReplicationController {
    /// `SetDefaults_ReplicationController` (pkg/apis/core/v1/defaults.go): an empty selector
    /// and empty labels are the template's labels; one replica.
    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        if let Some(labels) = labels {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(labels.clone());
            }
            if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                self.metadata.labels = Some(labels);
            }
        }
        spec.replicas.get_or_insert(1);
        crate::defaults::default_pod_template(spec.template.as_mut());
    }
}

impl SetDefaults for core::Service {
    fn set_defaults(&mut self) {
        crate::services::default_service(self)
    }
}

impl SetDefaults for batch::Job {
    fn set_defaults(&mut self) {
        crate::controllers::job::default_job(self);
        crate::defaults::default_pod_template(self.spec.as_mut().map(|s| &mut s.template));
    }
}

impl SetDefaults for batch::CronJob {
    fn set_defaults(&mut self) {
        crate::controllers::cronjob::default_cronjob(self);
        let js = self
            .spec
            .as_mut()
            .and_then(|s| s.job_template.spec.as_mut());
        crate::defaults::default_pod_template(js.map(|s| &mut s.template));
    }
}

impl SetDefaults for core::Namespace {
    /// `SetDefaults_Namespace` (the name as the `kubernetes.io/metadata.name` label, which
    /// webhook namespaceSelectors use), `SetDefaults_NamespaceStatus` (phase Active)
    /// (pkg/apis/core/v1/defaults.go) and the `kubernetes` finalizer the namespace strategy's
    /// `PrepareForCreate` sets (pkg/registry/core/namespace/strategy.go).
    fn set_defaults(&mut self) {
        label_namespace(self);
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.finalizers
            .get_or_insert_with(|| vec!["kubernetes".into()]);
        let status = self.status.get_or_insert_with(Default::default);
        status.phase.get_or_insert_with(|| "Active".into());
    }
}

fn label_namespace(ns: &mut core::Namespace) {
    if let Some(n) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("kubernetes.io/metadata.name".into(), n);
    }
}

impl SetDefaults for admreg::MutatingWebhookConfiguration {
    fn set_defaults(&mut self) {
        crate::webhooks::default_mutating(self)
    }
}

impl SetDefaults for admreg::ValidatingWebhookConfiguration {
    fn set_defaults(&mut self) {
        crate::webhooks::default_validating(self)
    }
}

impl SetDefaults for core::ConfigMap {}
impl SetDefaults for core::ServiceAccount {}
impl SetDefaults for core::Node {
    /// `SetObjectDefaults_Node`: `SetDefaults_NodeStatus` (a status without `allocatable`
    /// allocates its whole `capacity`), then `SetDefaults_ResourceList` of both.
    fn set_defaults(&mut self) {
        if let Some(st) = self.status.as_mut() {
            if st.allocatable.is_none() {
                st.allocatable.clone_from(&st.capacity);
            }
            crate::defaults::resource_list(st.capacity.as_mut());
            crate::defaults::resource_list(st.allocatable.as_mut());
        }
    }
}
impl SetDefaults for core::Event {}
impl SetDefaults for k8s_openapi::api::events::v1::Event {}
impl SetDefaults for core::Endpoints {}
impl SetDefaults for k8s_openapi::api::coordination::v1::Lease {}
impl SetDefaults for k8s_openapi::api::discovery::v1::EndpointSlice {}
impl SetDefaults for rbac::Role {}
impl SetDefaults for rbac::ClusterRole {}
/// `SetDefaults_RoleBinding`, `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`
/// (kubernetes `pkg/apis/rbac/v1/defaults.go`): an empty roleRef `apiGroup` is the RBAC group,
/// and an empty subject `apiGroup` is the RBAC group for a User or Group ("" for a
/// ServiceAccount).
fn default_role_ref(role_ref: &mut rbac::RoleRef, subjects: Option<&mut Vec<rbac::Subject>>) {
    crate::rbac::default_role_ref_group(role_ref);
    for s in subjects.into_iter().flatten() {
        if s.api_group.as_deref().unwrap_or("").is_empty()
            && matches!(s.kind.as_str(), "User" | "Group")
        {
            s.api_group = Some(crate::rbac::RBAC_GROUP.into());
        }
    }
}

impl SetDefaults for rbac::RoleBinding {
    fn set_defaults(&mut self) {
        default_role_ref(&mut self.role_ref, self.subjects.as_mut());
    }
}

impl SetDefaults for rbac::ClusterRoleBinding {
    fn set_defaults(&mut self) {
        default_role_ref(&mut self.role_ref, self.subjects.as_mut());
    }
}
impl SetDefaults for k8s_openapi::api::certificates::v1::CertificateSigningRequest {}
impl SetDefaults
    for k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition
{
}

/// What a template of a controller whose pods run forever must say
/// (`ValidatePodTemplateSpecForRC`, `ValidatePodTemplateSpecForReplicaSet`,
/// `ValidateDaemonSetSpec`, `ValidateStatefulSetSpec`): restart `Always`, and no
/// `activeDeadlineSeconds` (`activeDeadlineSeconds in <kind> is not Supported`).
pub(crate) fn validate_long_running_template(
    spec: &core::PodSpec,
    kind: &str,
    causes: &mut Vec<Cause>,
) {
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            format!("\"{restart}\""),
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        causes.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// `ValidateReplicationControllerSpec` (pkg/apis/core/validation/validation.go): a non-empty
/// selector of valid labels that the template's labels match, a template (`Required value`
/// without one) whose spec is a pod's that restarts `Always` and has no
/// `activeDeadlineSeconds`, no negative replicas or `minReadySeconds`.
fn validate_replication_controller(
    obj: &Value,
    pod: Option<PodParts<'_>>,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    let negative = |f: &str, causes: &mut Vec<Cause>| {
        if let Some(n) = obj
            .pointer(&format!("/spec/{f}"))
            .and_then(Value::as_i64)
            .filter(|n| *n < 0)
        {
            causes.push(Cause::invalid(
                format!("spec.{f}"),
                n.to_string(),
                crate::quantities::IS_NEGATIVE,
            ));
        }
    };
    negative("minReadySeconds", causes);
    // ValidateNonEmptySelector: only that it selects something (its keys and values meet the
    // template's labels' rules through the match below)
    let sel = obj
        .pointer("/spec/selector")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
    if sel.is_none() {
        causes.push(Cause::required("spec.selector", ""));
    }
    negative("replicas", causes);
    let Some(template) = obj.pointer("/spec/template").filter(|t| !t.is_null()) else {
        causes.push(Cause::required("spec.template", ""));
        return;
    };
    let labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    if let Some(sel) = sel {
        if !labels_match(&json!({"matchLabels": sel}), &labels) {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                format!("map[string]string{}", go_map(&labels)),
                "`selector` does not match template `labels`",
            ));
        }
    }
    match pod.map(|p| p.spec) {
        Some(Some(spec)) => {
            let allow = crate::quantities::old_spec_allows_indivisible_huge_pages(
                old,
                "/spec/template/spec",
            );
            let annotations = template.pointer("/metadata/annotations");
            validate_template_spec(spec, annotations, "spec.template.spec", allow, causes);
            validate_long_running_template(spec, "ReplicationController", causes);
        }
        Some(None) => causes.push(Cause::required("spec.template.spec.containers", "")),
        None => {}
    }
}

/// `ValidateControllerRevision` and `ValidateControllerRevisionUpdate`
/// (pkg/apis/apps/validation/validation.go): data is mandatory and may not change, the
/// revision is not negative.
fn validate_controller_revision(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    if obj.get("data").is_none_or(Value::is_null) {
        causes.push(Cause::required("data", "data is mandatory"));
    }
    let revision = obj.get("revision").and_then(Value::as_i64).unwrap_or(0);
    if revision < 0 {
        causes.push(Cause::invalid(
            "revision",
            revision.to_string(),
            crate::quantities::IS_NEGATIVE,
        ));
    }
    if let Some(old) = old {
        if old.get("data") != obj.get("data") {
            // the value as its JSON (Go prints the RawExtension struct)
            let data = obj.get("data").map(Value::to_string).unwrap_or_default();
            causes.push(Cause::invalid("data", data, "field is immutable"));
        }
    }
    causes
}

/// A new object's `status` as Go encodes an unset one for the mutating webhooks (a struct, not a
/// pointer, so its zero value: `{}`, a ReplicaSet's `{"replicas":0}`, a Service's
/// `{"loadBalancer":{}}`), for the kinds whose strategies reset it; `None` for the others.
pub(crate) fn zero_status(r: &Resource) -> Option<Value> {
    match (r.group, r.kind) {
        ("", "Pod" | "Namespace") => Some(json!({})),
        _ => new_status(r),
    }
}

/// What the registry strategies set once the server has filled in the metadata (name, UID):
/// on `create` the status the strategy's `PrepareForCreate` starts a new object with
/// (`new_status`), a Job's generated selector on `create` only (`PrepareForCreate`,
/// pkg/registry/batch/job/strategy.go; see [`crate::controllers::job::generate_selector`]) and
/// a Namespace's name label for a generated name (`Canonicalize`,
/// pkg/registry/core/namespace/strategy.go). Runs after mutating admission, as `rest.BeforeCreate`
/// and `rest.BeforeUpdate` run in the storage after it (k8s.io/apiserver `handlers/create.go`
/// admits before `Store.Create`), and after [`decode`]. (A Pod's is
/// `defaults::prepare_pod_create`.)
pub fn prepare(r: &Resource, obj: &mut Value, create: bool) {
    if let Some(status) = new_status(r).filter(|_| create) {
        obj["status"] = status;
    }
    match (r.group, r.kind) {
        ("batch", "Job") => crate::controllers::job::generate_selector(obj, create),
        ("apps", "DaemonSet") if create => daemonset_template_generation(obj, None),
        ("", "PersistentVolumeClaim") if create => crate::claims::drop_disabled_fields(obj, None),
        ("", "PersistentVolume") if create => {
            crate::claims::drop_disabled_fields(obj, None);
            obj["status"]["lastPhaseTransitionTime"] = json!(crate::objects::now());
        }
        ("", "Namespace") => {
            if let Some(n) = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
            {
                if !obj
                    .pointer("/metadata/labels")
                    .is_some_and(Value::is_object)
                {
                    obj["metadata"]["labels"] = json!({});
                }
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(n);
            }
        }
        _ => {}
    }
}

/// `deprecated.daemonset.template.generation`: the apps/v1 face of the internal
/// `spec.templateGeneration` (pkg/apis/apps/v1/conversion.go), which the DaemonSet strategy
/// keeps: a new DaemonSet's is the one it asks for, at least 1 (`PrepareForCreate`); an update
/// keeps the stored one and counts it up when the template changed (`PrepareForUpdate`). The
/// controller labels its pods with it (`pod-template-generation`).
pub(crate) fn daemonset_template_generation(obj: &mut Value, old: Option<&Value>) {
    const KEY: &str = "deprecated.daemonset.template.generation";
    let read = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(KEY))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
    };
    let g = match old {
        None => read(obj).unwrap_or(0).max(1),
        Some(old) => {
            let was = read(old).unwrap_or(1);
            let changed = !crate::podupdate::semantic_eq(
                &old.pointer("/spec/template"),
                &obj.pointer("/spec/template"),
            );
            if changed {
                was + 1
            } else {
                was
            }
        }
    };
    if !obj
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object)
    {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][KEY] = json!(g.to_string());
}

/// `IsDNS1123Label`'s messages (k8s.io/apimachinery `pkg/util/validation/validation.go`): the
/// length, then the label regex, or "must not contain dots" for a name that would be a valid
/// subdomain.
pub(crate) fn dns1123_label_problems(s: &str) -> Vec<&'static str> {
    let mut problems = vec![];
    if s.len() > 63 {
        problems.push("must be no more than 63 characters");
    }
    if !is_label_shaped(s) {
        if s.split('.').all(is_label_shaped) {
            problems.push("must not contain dots");
        } else {
            problems.push(DNS1123_LABEL_MSG);
        }
    }
    problems
}

/// `IsValidUserID` / `IsValidGroupID` (k8s.io/apimachinery `pkg/util/validation`): 0 ..=
/// math.MaxInt32, as `ValidateSecurityContext` and `validatePodSpecSecurityContext`
/// (pkg/apis/core/validation) apply them to `field`.
fn validate_id(id: Option<i64>, field: impl FnOnce() -> String, causes: &mut Vec<Cause>) {
    if let Some(n) = id.filter(|n| !(0..=i64::from(i32::MAX)).contains(n)) {
        causes.push(Cause::invalid(
            field(),
            n.to_string(),
            "must be between 0 and 2147483647, inclusive",
        ));
    }
}

tokio::task_local! {
    /// Whether privileged containers are allowed (kube-apiserver's `--allow-privileged`).
    static ALLOW_PRIVILEGED: bool;
}

/// Runs `f` (a validation) under the cluster's policy for privileged containers
/// (kube-apiserver's `--allow-privileged`, which upstream's validation reads as the process-wide
/// `capabilities.Get().AllowPrivileged`). Outside it privileged containers are allowed.
pub fn with_privileged_policy<T>(allow_privileged: bool, f: impl FnOnce() -> T) -> T {
    ALLOW_PRIVILEGED.sync_scope(allow_privileged, f)
}

fn privileged_allowed() -> bool {
    ALLOW_PRIVILEGED.try_with(|a| *a).unwrap_or(true)
}

/// A container of any kind, as `validateContainerCommon` reads it (an ephemeral container's
/// `EphemeralContainerCommon` is converted to a `Container` upstream).
struct ContainerView<'a> {
    name: &'a str,
    image: &'a str,
    termination_message_policy: Option<&'a str>,
    image_pull_policy: Option<&'a str>,
    security_context: Option<&'a core::SecurityContext>,
}

impl<'a> From<&'a core::Container> for ContainerView<'a> {
    fn from(c: &'a core::Container) -> Self {
        ContainerView {
            name: &c.name,
            image: c.image.as_deref().unwrap_or(""),
            termination_message_policy: c.termination_message_policy.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            security_context: c.security_context.as_ref(),
        }
    }
}

impl<'a> From<&'a core::EphemeralContainer> for ContainerView<'a> {
    fn from(c: &'a core::EphemeralContainer) -> Self {
        ContainerView {
            name: &c.name,
            image: c.image.as_deref().unwrap_or(""),
            termination_message_policy: c.termination_message_policy.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            security_context: c.security_context.as_ref(),
        }
    }
}

/// `validateContainerCommon` (pkg/apis/core/validation/validation.go), the parts served: the
/// name (`ValidateDNS1123Label`), the image, the termination message policy, the pull policy
/// (`validatePullPolicy`) and, of the security context (`ValidateSecurityContext`), a
/// privileged container where the cluster's policy disallows it ([`with_privileged_policy`])
/// and the user and group IDs. A policy left unset is one the defaults did not set (they set
/// it for every container a body brings; a caller's spec built without them may lack it), so
/// only a set one is checked.
fn validate_container_common(c: &ContainerView<'_>, cp: &str, causes: &mut Vec<Cause>) {
    if c.name.is_empty() {
        causes.push(Cause::required(format!("{cp}.name"), ""));
    } else {
        for msg in dns1123_label_problems(c.name) {
            causes.push(Cause::invalid(
                format!("{cp}.name"),
                format!("\"{}\"", c.name),
                msg,
            ));
        }
    }
    // upstream checks only for an empty image here (a pod template may use " " as a token);
    // a Pod's images may not have surrounding whitespace (`validateContainerOnlyForPod`)
    if c.image.is_empty() {
        causes.push(Cause::required(format!("{cp}.image"), ""));
    }
    match c.termination_message_policy {
        None | Some("File" | "FallbackToLogsOnError") => {}
        Some("") => causes.push(Cause::required(
            format!("{cp}.terminationMessagePolicy"),
            "",
        )),
        Some(p) => causes.push(Cause::not_supported(
            format!("{cp}.terminationMessagePolicy"),
            format!("\"{p}\""),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    match c.image_pull_policy {
        None | Some("Always" | "IfNotPresent" | "Never") => {}
        Some("") => causes.push(Cause::required(format!("{cp}.imagePullPolicy"), "")),
        Some(p) => causes.push(Cause::not_supported(
            format!("{cp}.imagePullPolicy"),
            format!("\"{p}\""),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(sc) = c.security_context {
        let sp = format!("{cp}.securityContext");
        if sc.privileged == Some(true) && !privileged_allowed() {
            causes.push(Cause::forbidden(
                format!("{sp}.privileged"),
                "disallowed by cluster policy",
            ));
        }
        validate_id(sc.run_as_user, || format!("{sp}.runAsUser"), causes);
        validate_id(sc.run_as_group, || format!("{sp}.runAsGroup"), causes);
    }
}

/// `validateContainerOnlyForPod`: a Pod's (not a template's) container images may not have
/// leading or trailing whitespace.
fn validate_container_only_for_pod(image: &str, cp: &str, causes: &mut Vec<Cause>) {
    if image.len() != image.trim().len() {
        causes.push(Cause::invalid(
            format!("{cp}.image"),
            format!("{image:?}"),
            "must not have leading or trailing whitespace",
        ));
    }
}

/// `ValidatePodSpec` (pkg/apis/core/validation/validation.go), the parts served here, in its
/// order: `terminationGracePeriodSeconds` required (negative values are not errors: a Pod's is
/// made 1 as it is decoded, a template's is a warning), the containers (`validateContainers`:
/// at least one; each as `validateContainerCommon`; names unique), the init containers
/// (`validateInitContainers`: names unique among regular and init containers), the ephemeral
/// containers (`validateEphemeralContainers`: names unique among all, no surrounding
/// whitespace in the image, `targetContainerName` naming a regular or init container), the
/// restart and DNS policies, the node selector's labels, the
/// pod security context's user and group IDs (`validatePodSpecSecurityContext`), the
/// scheduling gates (`validateSchedulingGates`), the node name, `activeDeadlineSeconds` (1 to
/// MaxInt32), the tolerations ([`validate_tolerations`]) and the resource quantities
/// ([`crate::quantities::validate_pod_spec`]).
/// `imagePullSecrets` entries have only a name, which may be empty (the kubelet skips it):
/// that is a warning ([`pod_spec_warnings`]), not an error.
pub(crate) fn validate_pod_spec(
    spec: &core::PodSpec,
    path: &str,
    allow_indivisible_huge_pages: bool,
    causes: &mut Vec<Cause>,
) {
    use std::collections::HashSet;
    // set by the defaults (`SetDefaults_PodSpec`) on every request body, Pods' and templates'
    if spec.termination_grace_period_seconds.is_none() {
        causes.push(Cause::required(
            format!("{path}.terminationGracePeriodSeconds"),
            "",
        ));
    }
    if spec.containers.is_empty() {
        causes.push(Cause::required(format!("{path}.containers"), ""));
    } else {
        let mut names = HashSet::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let cp = format!("{path}.containers[{i}]");
            validate_container_common(&c.into(), &cp, causes);
            if !names.insert(c.name.as_str()) {
                causes.push(Cause::duplicate(
                    format!("{cp}.name"),
                    format!("\"{}\"", c.name),
                ));
            }
        }
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let mut names: HashSet<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in init.iter().enumerate() {
        let cp = format!("{path}.initContainers[{i}]");
        validate_container_common(&c.into(), &cp, causes);
        if names.contains(c.name.as_str()) {
            causes.push(Cause::duplicate(
                format!("{cp}.name"),
                format!("\"{}\"", c.name),
            ));
        } else if !c.name.is_empty() {
            names.insert(&c.name);
        }
    }
    let ephemeral = spec.ephemeral_containers.as_deref().unwrap_or_default();
    if !ephemeral.is_empty() {
        let others: HashSet<&str> = spec
            .containers
            .iter()
            .chain(init)
            .map(|c| c.name.as_str())
            .collect();
        let mut all = others.clone();
        for (i, c) in ephemeral.iter().enumerate() {
            let cp = format!("{path}.ephemeralContainers[{i}]");
            let view = ContainerView::from(c);
            validate_container_common(&view, &cp, causes);
            validate_container_only_for_pod(view.image, &cp, causes);
            if !all.insert(c.name.as_str()) {
                causes.push(Cause::duplicate(
                    format!("{cp}.name"),
                    format!("\"{}\"", c.name),
                ));
            }
            // the target container must exist and be non-ephemeral
            if let Some(t) = c
                .target_container_name
                .as_deref()
                .filter(|t| !t.is_empty() && !others.contains(t))
            {
                causes.push(Cause::not_found(
                    format!("{cp}.targetContainerName"),
                    format!("{t:?}"),
                ));
            }
        }
    }
    match spec.restart_policy.as_deref() {
        None | Some("Always" | "OnFailure" | "Never") => {}
        Some("") => causes.push(Cause::required(format!("{path}.restartPolicy"), "")),
        Some(p) => causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            format!("\"{p}\""),
            &["Always", "OnFailure", "Never"],
        )),
    }
    match spec.dns_policy.as_deref() {
        None | Some("ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None") => {}
        Some("") => causes.push(Cause::required(format!("{path}.dnsPolicy"), "")),
        Some(p) => causes.push(Cause::not_supported(
            format!("{path}.dnsPolicy"),
            format!("\"{p}\""),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if let Some(sel) = &spec.node_selector {
        crate::validation::validate_label_map(
            sel.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &format!("{path}.nodeSelector"),
            causes,
        );
    }
    if let Some(sc) = &spec.security_context {
        let sp = format!("{path}.securityContext");
        validate_id(sc.fs_group, || format!("{sp}.fsGroup"), causes);
        validate_id(sc.run_as_user, || format!("{sp}.runAsUser"), causes);
        validate_id(sc.run_as_group, || format!("{sp}.runAsGroup"), causes);
        for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
            validate_id(Some(*g), || format!("{sp}.supplementalGroups[{i}]"), causes);
        }
    }
    // validateSchedulingGates: qualified names, no duplicates
    let mut gates = HashSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let gp = format!("{path}.schedulingGates[{i}]");
        for msg in crate::validation::is_qualified_name(&g.name) {
            causes.push(Cause::invalid(&gp, format!("{:?}", g.name), msg));
        }
        if !gates.insert(g.name.as_str()) {
            causes.push(Cause::duplicate(&gp, format!("{:?}", g.name)));
        }
    }
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        for msg in dns1123_subdomain_problems(node) {
            causes.push(Cause::invalid(
                format!("{path}.nodeName"),
                format!("{node:?}"),
                msg,
            ));
        }
    }
    if let Some(n) = spec
        .active_deadline_seconds
        .filter(|n| !(1..=i64::from(i32::MAX)).contains(n))
    {
        causes.push(Cause::invalid(
            format!("{path}.activeDeadlineSeconds"),
            n.to_string(),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    if let Some(t) = spec.tolerations.as_deref().filter(|t| !t.is_empty()) {
        validate_tolerations(t, &format!("{path}.tolerations"), causes);
    }
    crate::quantities::validate_pod_spec(spec, path, allow_indivisible_huge_pages, causes);
}

/// `ValidateTolerations` (pkg/apis/core/validation/validation.go): the key a label name; an
/// empty key only with `Exists`; `tolerationSeconds` only with `NoExecute`; the operator and
/// its value; the effect (`validateTaintEffect`, empty allowed).
pub(crate) fn validate_tolerations(
    tolerations: &[core::Toleration],
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for (i, t) in tolerations.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            crate::validation::validate_label_name(key, &format!("{ip}.key"), causes);
        }
        if key.is_empty() && op != "Exists" {
            causes.push(Cause::invalid(
                format!("{ip}.operator"),
                format!("{op:?}"),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            causes.push(Cause::invalid(
                format!("{ip}.effect"),
                format!("{effect:?}"),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let errs = crate::validation::is_valid_label_value(value);
                if !errs.is_empty() {
                    causes.push(Cause::invalid(
                        format!("{ip}.operator"),
                        format!("{value:?}"),
                        errs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    causes.push(Cause::invalid(
                        format!("{ip}.operator"),
                        format!("{value:?}"),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            _ => causes.push(Cause::not_supported(
                format!("{ip}.operator"),
                format!("{op:?}"),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            causes.push(Cause::not_supported(
                format!("{ip}.effect"),
                format!("{effect:?}"),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// What `validatePodMetadataAndSpec` adds for a Pod (not a template) after `ValidatePodSpec`:
/// its regular and init containers' images may not have surrounding whitespace
/// (`validateContainersOnlyForPod`; ephemeral containers are checked in
/// [`validate_pod_spec`]).
fn validate_pod_only(spec: &core::PodSpec, causes: &mut Vec<Cause>) {
    let init = spec.init_containers.iter().flatten();
    for (list, cs) in [
        ("containers", spec.containers.iter().collect::<Vec<_>>()),
        ("initContainers", init.collect()),
    ] {
        for (i, c) in cs.into_iter().enumerate() {
            let image = c.image.as_deref().unwrap_or("");
            validate_container_only_for_pod(image, &format!("spec.{list}[{i}]"), causes);
        }
    }
}

/// `validateAppArmorAnnotationsAndFieldsMatchOnCreate` (1.32 pkg/apis/core/validation/validation.go,
/// from `ValidatePodCreate` and `ValidatePodTemplateSpec`): for a pod spec not on Windows, each
/// init, regular and ephemeral container (`VisitContainersWithPath`) whose profile (its own
/// `appArmorProfile`, else the pod's) and AppArmor annotation are both set must have them say
/// the same: the type (`unconfined`, `runtime/default`, `localhost/…`), then a Localhost
/// profile's name. `annotations` are the pod's or the template's; the strategy has already
/// made each one from the other where only one was set (`applyAppArmorVersionSkew`).
pub(crate) fn validate_app_armor_annotations_match(
    annotations: Option<&Value>,
    spec: &core::PodSpec,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    use crate::defaults::{APPARMOR_LOCALHOST_PREFIX, APPARMOR_PREFIX};
    if spec.os.as_ref().is_some_and(|os| os.name == "windows") {
        return;
    }
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref());
    let init = spec.init_containers.iter().flatten();
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    let containers = init
        .enumerate()
        .map(|(i, c)| ("initContainers", i, &c.name, c.security_context.as_ref()))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| ("containers", i, &c.name, c.security_context.as_ref())),
        )
        .chain(ephemeral.enumerate().map(|(i, c)| {
            (
                "ephemeralContainers",
                i,
                &c.name,
                c.security_context.as_ref(),
            )
        }));
    for (list, i, name, sc) in containers {
        let Some(profile) = sc
            .and_then(|s| s.app_armor_profile.as_ref())
            .or(pod_profile)
        else {
            continue;
        };
        let key = format!("{APPARMOR_PREFIX}{name}");
        let Some(annotation) = annotations
            .and_then(|a| a.get(&key))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let at = format!("{path}.{list}[{i}].securityContext.appArmorProfile");
        let type_mismatch = || {
            Cause::forbidden(
                format!("{at}.type"),
                "apparmor type in annotation and field must match",
            )
        };
        match profile.type_.as_str() {
            "Unconfined" if annotation != "unconfined" => causes.push(type_mismatch()),
            "RuntimeDefault" if annotation != "runtime/default" => causes.push(type_mismatch()),
            "Localhost" => match annotation.strip_prefix(APPARMOR_LOCALHOST_PREFIX) {
                None => causes.push(type_mismatch()),
                Some(p) if profile.localhost_profile.as_deref() != Some(p) => {
                    causes.push(Cause::forbidden(
                        format!("{at}.localhostProfile"),
                        "apparmor profile in annotation and field must match",
                    ))
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
}

/// What `ValidatePodTemplateSpec` checks of a template's spec: [`validate_pod_spec`], then no
/// ephemeral containers (pkg/apis/core/validation/validation.go).
pub(crate) fn validate_template_spec(
    spec: &core::PodSpec,
    annotations: Option<&Value>,
    path: &str,
    allow_indivisible_huge_pages: bool,
    causes: &mut Vec<Cause>,
) {
    validate_pod_spec(spec, path, allow_indivisible_huge_pages, causes);
    validate_app_armor_annotations_match(annotations, spec, path, causes);
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        causes.push(Cause::forbidden(
            format!("{path}.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// [`validate_template_spec`] for a pod template's spec still in JSON (a Job's or a CronJob's template, which
/// the Job validation reads as JSON): decoded into the typed spec first. The server's bodies
/// were decoded into their types before, so a spec that does not decode is one a caller made
/// up; the decoder's reason is the cause.
pub(crate) fn validate_pod_spec_json(
    spec: &Value,
    annotations: Option<&Value>,
    path: &str,
    allow_indivisible_huge_pages: bool,
    causes: &mut Vec<Cause>,
) {
    use serde::Deserialize as _;
    match core::PodSpec::deserialize(spec) {
        Ok(s) => {
            validate_template_spec(&s, annotations, path, allow_indivisible_huge_pages, causes)
        }
        Err(e) => causes.push(Cause::invalid(path, "core.PodSpec{…}", e.to_string())),
    }
}

/// The warnings kube-apiserver gives for a pod spec (`warningsForPodSpecAndMeta`,
/// pkg/api/pod/warnings.go), the ones about pull secrets: a repeated `imagePullSecrets` name
/// and an empty one (which the kubelet skips). `template` is where the pod template is
/// (`spec.template`), empty for a Pod.
pub(crate) fn pod_spec_warnings(spec: &core::PodSpec, template: &str) -> Vec<String> {
    let prefix = if template.is_empty() {
        "spec".to_string()
    } else {
        format!("{template}.spec")
    };
    let secrets = spec.image_pull_secrets.as_deref().unwrap_or_default();
    let mut warnings = vec![];
    if secrets.len() > 1 {
        let mut seen = std::collections::HashSet::new();
        for (i, s) in secrets.iter().enumerate() {
            if !seen.insert(s.name.as_str()) {
                warnings.push(format!(
                    "{prefix}.imagePullSecrets[{i}].name: duplicate name {:?}",
                    s.name
                ));
            }
        }
    }
    for (i, s) in secrets.iter().enumerate() {
        if s.name.is_empty() {
            warnings.push(format!(
                "{prefix}.imagePullSecrets[{i}].name: invalid empty name \"\""
            ));
        }
    }
    // a template's (a Pod's was made 1 as it was decoded)
    if spec.termination_grace_period_seconds.is_some_and(|n| n < 0) {
        warnings.push(format!(
            "{prefix}.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"
        ));
    }
    warnings
}

/// The warnings a workload's strategy gives for its own spec before its pod template's
/// (`WarningsOnCreate`, and `WarningsOnUpdate` when the spec changed): a Job's and a CronJob's
/// job spec (`WarningsForJobSpec`, pkg/registry/batch/job/strategy.go and
/// pkg/registry/batch/cronjob/strategy.go).
pub(crate) fn workload_warnings(r: &Resource, obj: &Value) -> Vec<String> {
    use crate::controllers::job::job_spec_warnings;
    match (r.group, r.kind) {
        ("batch", "Job") => job_spec_warnings(obj, "/spec", "spec"),
        ("batch", "CronJob") => {
            job_spec_warnings(obj, "/spec/jobTemplate/spec", "spec.jobTemplate.spec")
        }
        _ => vec![],
    }
}

/// The name warning of a strategy's `WarningsOnCreate`: a name that is not a DNS label
/// (`IsDNS1123Label`) for a kind whose name becomes a hostname — a Pod's
/// (pkg/registry/core/pod/strategy.go), a Deployment's, ReplicaSet's, Job's and CronJob's
/// (pkg/registry/apps/deployment, apps/replicaset, batch/job, batch/cronjob `strategy.go`),
/// which become Pod names. Given before the kind's other warnings, as upstream.
pub(crate) fn name_warnings(r: &Resource, obj: &Value) -> Vec<String> {
    let used_in = match (r.group, r.kind) {
        ("", "Pod") => "the Pod's hostname",
        ("apps", "Deployment" | "ReplicaSet")
        | ("batch", "Job" | "CronJob")
        | ("", "ReplicationController") => "Pod names and hostnames",
        _ => return vec![],
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let msgs = dns1123_label_problems(name);
    if msgs.is_empty() {
        return vec![];
    }
    // Go's `%v` of a []string
    vec![format!(
        "metadata.name: this is used in {used_in}, which can result in surprising behavior; a DNS label is recommended: [{}]",
        msgs.join(" ")
    )]
}

/// Where a kind keeps its pod template, as pod-security-admission's `PodSpecExtractor` and the
/// strategies' warnings name it: `""` for a Pod (its own metadata and spec), `spec.template`,
/// a CronJob's `spec.jobTemplate.spec.template`; `None` for kinds without pods.
pub(crate) fn pod_template_path(r: &Resource) -> Option<&'static str> {
    match (r.group, r.kind) {
        ("", "Pod") => Some(""),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => Some("spec.template"),
        ("batch", "CronJob") => Some("spec.jobTemplate.spec.template"),
        _ => None,
    }
}

/// [`pod_template_path`] as a JSON pointer (`""` for a Pod itself, `/spec/template`, …).
pub(crate) fn pod_template_pointer(r: &Resource) -> Option<String> {
    pod_template_path(r).map(|t| {
        if t.is_empty() {
            String::new()
        } else {
            format!("/{}", t.replace('.', "/"))
        }
    })
}

/// The pod metadata and spec of a Pod or of a workload's pod template, decoded once by the
/// caller for validation, the warnings and Pod Security admission.
#[derive(Clone, Copy, Default)]
pub struct PodParts<'a> {
    /// The pod's (the template's) metadata.
    pub meta: Option<&'a ObjectMeta>,
    /// The pod's (the template's) spec.
    pub spec: Option<&'a core::PodSpec>,
}

/// Validates a Secret's type and data (`ValidateSecret`). The value of a bad key is never echoed.
fn validate_secret(obj: &Value, causes: &mut Vec<Cause>) {
    use base64::Engine as _;
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    let data = obj.get("data").and_then(Value::as_object);
    let mut decoded = std::collections::BTreeMap::new();
    let mut total = 0usize;
    if let Some(d) = data {
        for (k, v) in d {
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                causes.push(Cause::invalid(
                    format!("data[{k}]"),
                    format!("\"{k}\""),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
                continue;
            }
            let bytes = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
            match bytes {
                Some(b) => {
                    total += b.len();
                    decoded.insert(k.clone(), b);
                }
                None if v.is_null() => {
                    decoded.insert(k.clone(), vec![]);
                }
                None => causes.push(Cause::invalid(
                    format!("data[{k}]"),
                    "\"<secret contents redacted>\"",
                    "illegal base64 data",
                )),
            }
        }
    }
    if total > 1 << 20 {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: "data".into(),
            value: None,
            detail: "Too long: may not be more than 1048576 bytes".into(),
        });
    }
    let json_key = |key: &str, causes: &mut Vec<Cause>| match decoded.get(key) {
        None => causes.push(Cause::required(format!("data[{key}]"), "")),
        Some(b) => {
            // json.Unmarshal into map[string]interface{}: Go's own syntax errors
            if let Err(e) = kubepull_core::gojson::decode::validate(b) {
                causes.push(Cause::invalid(
                    format!("data[{key}]"),
                    "\"<secret contents redacted>\"",
                    e.to_string(),
                ));
            } else if b.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
                let kind = match b.iter().find(|c| !c.is_ascii_whitespace()) {
                    Some(b'[') => "array",
                    Some(b'"') => "string",
                    Some(b't') | Some(b'f') => "bool",
                    Some(b'n') => "",
                    _ => "number",
                };
                if !kind.is_empty() {
                    causes.push(Cause::invalid(
                        format!("data[{key}]"),
                        "\"<secret contents redacted>\"",
                        format!("json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"),
                    ));
                }
            }
        }
    };
    match ty {
        "kubernetes.io/dockerconfigjson" => json_key(".dockerconfigjson", causes),
        "kubernetes.io/dockercfg" => json_key(".dockercfg", causes),
        "kubernetes.io/basic-auth" => {
            if !decoded.contains_key("username") && !decoded.contains_key("password") {
                causes.push(Cause::required("data[username]", ""));
                causes.push(Cause::required("data[password]", ""));
            }
        }
        "kubernetes.io/ssh-auth" => {
            if !decoded.contains_key("ssh-privatekey") {
                causes.push(Cause::required("data[ssh-privatekey]", ""));
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !decoded.contains_key(k) {
                    causes.push(Cause::required(format!("data[{k}]"), ""));
                }
            }
        }
        _ => {}
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) else {
        return selector.get("matchExpressions").is_some();
    };
    ml.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `ValidateNodeUpdate` (pkg/apis/core/validation/validation.go): once a node has pod CIDRs
/// they cannot change (the allocator may only set them from none), nor can a provider ID once
/// set. The pod CIDRs are `spec.podCIDRs`, or `[spec.podCIDR]` for a body that only has the
/// older field (`Convert_v1_NodeSpec_To_core_NodeSpec`).
fn validate_node_update(obj: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let cidrs = |n: &Value| -> Vec<String> {
        let list: Vec<String> = n
            .pointer("/spec/podCIDRs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or("").to_string())
            .collect();
        if !list.is_empty() {
            return list;
        }
        n.pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(|c| vec![c.to_string()])
            .unwrap_or_default()
    };
    let (was, now) = (cidrs(old), cidrs(obj));
    let cidr_msg = "node updates may not change podCIDR except from \"\" to valid";
    if !was.is_empty() {
        if was.len() != now.len() {
            causes.push(Cause::forbidden("spec.podCIDRs", cidr_msg));
        } else {
            for (a, b) in was.iter().zip(&now) {
                if a != b {
                    causes.push(Cause::forbidden("spec.podCIDRs", cidr_msg));
                }
            }
        }
    }
    let provider = |n: &Value| {
        n.pointer("/spec/providerID")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let was = provider(old);
    if !was.is_empty() && was != provider(obj) {
        causes.push(Cause::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
}

/// Validates a new object (or the new version on update). `pod` is the pod metadata and spec
/// of a Pod, Deployment or ReplicaSet (see [`PodParts`]), decoded once by the caller; without
/// it (a status update, which upstream's status strategies validate without the spec) the pod
/// spec is not validated. A Job's and a CronJob's templates are validated with the Job. A Pod
/// update is checked as `ValidatePodUpdate`, a Pod status update as `ValidatePodStatusUpdate`
/// (`podupdate.rs`).
pub fn validate(
    r: &Resource,
    obj: &Value,
    old: Option<&Value>,
    pod: Option<PodParts<'_>>,
) -> Vec<Cause> {
    let mut causes = vec![];
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if old.is_none() {
        let generate_name = obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str);
        causes.extend(validate_name(r, name, generate_name));
    }
    // ValidateObjectMeta / ValidateObjectMetaUpdate, in their order: a new object's
    // generation, or no finalizer added to one being deleted; labels and annotations; owner
    // references and finalizers
    crate::validation::validate_meta_head(obj, old, &mut causes);
    crate::validation::validate_labels(
        obj.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    crate::validation::validate_annotations(
        obj.pointer("/metadata/annotations"),
        "metadata.annotations",
        &mut causes,
    );
    // the core group's `ValidateObjectMeta`/`ValidateObjectMetaUpdate` wrappers add the
    // finalizer-name rule; webhook configurations and CRDs are validated with apimachinery's
    // (`genericvalidation.ValidateObjectMeta`), custom resources get warnings instead
    let core_finalizer_rule = crate::resources::is_builtin(r)
        && !matches!(
            r.group,
            "admissionregistration.k8s.io" | "apiextensions.k8s.io"
        );
    crate::validation::validate_meta_tail(obj, old, core_finalizer_rule, &mut causes);
    // ValidatePodTemplateSpec: a workload's template labels and annotation keys (the pods
    // its controller makes carry them), unless this is a status update (`pod` absent)
    if let (Some(t), Some(_)) = (pod_template_path(r).filter(|t| !t.is_empty()), pod) {
        let at = format!("{}/metadata", pod_template_pointer(r).unwrap_or_default());
        crate::validation::validate_labels(
            obj.pointer(&format!("{at}/labels")),
            &format!("{t}.labels"),
            &mut causes,
        );
        crate::validation::validate_annotations(
            obj.pointer(&format!("{at}/annotations")),
            &format!("{t}.annotations"),
            &mut causes,
        );
    }
    match r.kind {
        // a custom resource of a built-in kind's name (an `Event`, a `Secret` of another
        // group) gets its schema's checks, not the built-in kind's
        _ if !crate::resources::is_builtin(r) => {}
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            causes.extend(crate::webhooks::validate_configuration(r, obj))
        }
        "Secret" => {
            validate_secret(obj, &mut causes);
            if let Some(old) = old {
                if old.get("type") != obj.get("type") {
                    causes.push(Cause::invalid(
                        "type",
                        format!(
                            "\"{}\"",
                            obj.get("type").and_then(Value::as_str).unwrap_or("")
                        ),
                        "field is immutable",
                    ));
                }
                if old.get("immutable") == Some(&json!(true))
                    && (old.get("data") != obj.get("data")
                        || obj.get("immutable") != Some(&json!(true)))
                {
                    causes.push(Cause::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        // both groups: `ValidateEventCreate`/`ValidateEventUpdate` with the request's version
        "Event" => causes.extend(crate::events::validate(r, obj, old)),
        "Node" => {
            if let Some(old) = old {
                validate_node_update(obj, old, &mut causes);
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            // ValidateRoleBinding, then ValidateRoleBindingUpdate: roleRef is immutable
            causes.extend(crate::rbac::binding_causes(r, obj));
            if let Some(old) = old {
                // compared as defaulted (`rbac::role_ref`): a binding stored without the roleRef
                // apiGroup (before it was defaulted) equals the same binding with it written out
                let changed = match (crate::rbac::role_ref(r, old), crate::rbac::role_ref(r, obj)) {
                    (Ok(a), Ok(b)) => a != b,
                    _ => old.get("roleRef") != obj.get("roleRef"),
                };
                if changed {
                    let s = |p: &str| {
                        obj.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    causes.push(Cause::invalid(
                        "roleRef",
                        format!(
                            "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                            s("/roleRef/apiGroup"),
                            s("/roleRef/kind"),
                            s("/roleRef/name")
                        ),
                        "cannot change roleRef",
                    ));
                }
            }
        }
        "ConfigMap" => {
            if let Some(old) = old {
                if old.get("immutable") == Some(&json!(true))
                    && (old.get("data") != obj.get("data")
                        || obj.get("immutable") != Some(&json!(true)))
                {
                    causes.push(Cause::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        "Pod" => match pod.map(|p| p.spec) {
            Some(Some(spec)) => {
                let allow = crate::quantities::old_spec_allows_indivisible_huge_pages(old, "/spec");
                validate_pod_spec(spec, "spec", allow, &mut causes);
                validate_pod_only(spec, &mut causes);
                match old {
                    // `ValidatePodCreate`: ephemeral containers are added by the
                    // `ephemeralcontainers` subresource only, and a pod is not assigned a node
                    // while it has scheduling gates
                    None => {
                        if spec
                            .ephemeral_containers
                            .as_ref()
                            .is_some_and(|e| !e.is_empty())
                        {
                            causes.push(Cause::forbidden(
                                "spec.ephemeralContainers",
                                "cannot be set on create",
                            ));
                        }
                        if spec.node_name.as_ref().is_some_and(|n| !n.is_empty())
                            && spec
                                .scheduling_gates
                                .as_ref()
                                .is_some_and(|g| !g.is_empty())
                        {
                            causes.push(Cause::forbidden(
                                "spec.nodeName",
                                "cannot be set until all schedulingGates have been cleared",
                            ));
                        }
                        validate_app_armor_annotations_match(
                            obj.pointer("/metadata/annotations"),
                            spec,
                            "spec",
                            &mut causes,
                        );
                    }
                    Some(old) => {
                        causes.extend(crate::podupdate::validate_pod_update(spec, obj, old))
                    }
                }
            }
            Some(None) => causes.push(Cause::required("spec.containers", "")),
            // a status update (or the binding's write, which keeps the status)
            None => {
                if let Some(old) = old {
                    causes.extend(crate::podupdate::validate_pod_status_update(obj, old));
                }
            }
        },
        "Service" => causes.extend(crate::services::validate_service(obj, old)),
        "PersistentVolumeClaim" => causes.extend(crate::claims::validate_claim(obj, old)),
        "PersistentVolume" => causes.extend(crate::claims::validate_volume(obj, old)),
        "Ingress" => causes.extend(crate::ingresses::validate_ingress(obj, old)),
        "PodDisruptionBudget" => causes.extend(crate::disruption::validate_pdb(obj, old)),
        "IngressClass" => causes.extend(crate::ingresses::validate_ingress_class(obj, old)),
        "NetworkPolicy" => causes.extend(crate::networkpolicies::validate_network_policy(obj)),
        "ResourceQuota" => causes.extend(crate::quota::validate_resource_quota(obj, old)),
        "LimitRange" => causes.extend(crate::limitranges::validate_limit_range(obj)),
        "PriorityClass" => causes.extend(crate::priority::validate_priority_class(obj, old)),
        "ReplicationController" => validate_replication_controller(obj, pod, old, &mut causes),
        "ControllerRevision" => causes.extend(validate_controller_revision(obj, old)),
        "Job" => causes.extend(crate::controllers::job::validate_job_decoded(
            obj,
            old,
            pod.map(|p| p.spec),
        )),
        "DaemonSet" => causes.extend(crate::controllers::daemonset::validate_daemonset_decoded(
            obj,
            old,
            pod.map(|p| p.spec),
        )),
        "CronJob" => causes.extend(crate::controllers::cronjob::validate_cronjob_decoded(
            obj,
            old,
            pod.map(|p| p.spec),
        )),
        "StatefulSet" => causes.extend(
            crate::controllers::statefulset::validate_statefulset_decoded(
                obj,
                old,
                pod.map(|p| p.spec),
            ),
        ),
        "Deployment" | "ReplicaSet" => {
            // the typed spec (k8s-openapi) always has a selector, so an absent one arrives as
            // `{}`: both are "not specified"
            let sel = obj
                .pointer("/spec/selector")
                .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
            match sel {
                None => causes.push(Cause::required("spec.selector", "")),
                Some(sel) => {
                    let before = causes.len();
                    crate::validation::validate_label_selector(sel, "spec.selector", &mut causes);
                    let labels = obj
                        .pointer("/spec/template/metadata/labels")
                        .cloned()
                        .unwrap_or(json!({}));
                    // a selector that is not valid is not matched against the template
                    // (LabelSelectorAsSelector fails first)
                    if causes.len() == before && !labels_match(sel, &labels) {
                        causes.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            format!("map[string]string{}", go_map(&labels)),
                            "`selector` does not match template `labels`",
                        ));
                    }
                    if let Some(old) = old {
                        if old.pointer("/spec/selector") != Some(sel) {
                            causes.push(Cause::invalid(
                                "spec.selector",
                                format!("v1.LabelSelector{{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}", go_map(sel.get("matchLabels").unwrap_or(&json!({})))),
                                "field is immutable",
                            ));
                        }
                    }
                }
            }
            match pod.map(|p| p.spec) {
                Some(Some(spec)) => {
                    let allow = crate::quantities::old_spec_allows_indivisible_huge_pages(
                        old,
                        "/spec/template/spec",
                    );
                    let annotations = obj.pointer("/spec/template/metadata/annotations");
                    validate_template_spec(
                        spec,
                        annotations,
                        "spec.template.spec",
                        allow,
                        &mut causes,
                    );
                    // ValidatePodTemplateSpecForReplicaSet, for both kinds
                    validate_long_running_template(spec, "ReplicaSet", &mut causes);
                }
                Some(None) => causes.push(Cause::required("spec.template.spec.containers", "")),
                None => {}
            }
            if let Some(n) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
                if n < 0 {
                    causes.push(Cause::invalid(
                        "spec.replicas",
                        n.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            let deployment = r.kind == "Deployment";
            if deployment {
                validate_deployment_strategy(obj, &mut causes);
            }
            validate_deployment_counts(obj, deployment, &mut causes);
        }
        _ => {}
    }
    // `customResourceStrategy`'s `WarningsOnCreate`/`WarningsOnUpdate`, given once the object
    // is valid (`rest.BeforeCreate`/`BeforeUpdate` ask for them after validation)
    if !crate::resources::is_builtin(r) && causes.is_empty() {
        crate::validation::finalizer_warnings(obj, old)
            .into_iter()
            .for_each(crate::warnings::add);
    }
    causes
}

/// `ValidateDeploymentStrategy` and `ValidateRollingUpdateDeployment`
/// (pkg/apis/apps/validation/validation.go): `Recreate` without rolling-update parameters;
/// `RollingUpdate` with a `maxUnavailable` and a `maxSurge` that are counts or percentages, not
/// both zero, the first at most 100%.
fn validate_deployment_strategy(obj: &Value, causes: &mut Vec<Cause>) {
    use crate::validation::{
        go_int_or_string, int_or_percent_value, not_more_than_100_percent, validate_int_or_percent,
    };
    let st = obj.pointer("/spec/strategy");
    let ty = st
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let ru = st
        .and_then(|s| s.get("rollingUpdate"))
        .filter(|v| !v.is_null());
    match ty {
        "Recreate" => {
            if ru.is_some() {
                causes.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let Some(ru) = ru else {
                causes.push(Cause::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ));
                return;
            };
            let get = |k: &str| -> IntOrString {
                ru.get(k)
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or(IntOrString::Int(0))
            };
            let (mu, ms) = (get("maxUnavailable"), get("maxSurge"));
            let base = "spec.strategy.rollingUpdate";
            validate_int_or_percent(&mu, &format!("{base}.maxUnavailable"), causes);
            validate_int_or_percent(&ms, &format!("{base}.maxSurge"), causes);
            if int_or_percent_value(&mu) == 0 && int_or_percent_value(&ms) == 0 {
                causes.push(Cause::invalid(
                    format!("{base}.maxUnavailable"),
                    go_int_or_string(&mu),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            not_more_than_100_percent(&mu, &format!("{base}.maxUnavailable"), causes);
        }
        other => {
            let ru = if ru.is_some() {
                "(*apps.RollingUpdateDeployment)(…)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            causes.push(Cause::not_supported(
                "spec.strategy",
                format!("apps.DeploymentStrategy{{Type:{other:?}, RollingUpdate:{ru}}}"),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

/// The counts `ValidateDeploymentSpec` and `ValidateReplicaSetSpec` check besides the
/// replicas: `minReadySeconds` (both), and a Deployment's `revisionHistoryLimit` and
/// `progressDeadlineSeconds` (not negative, the deadline above `minReadySeconds`).
fn validate_deployment_counts(obj: &Value, deployment: bool, causes: &mut Vec<Cause>) {
    let n = |f: &str| obj.pointer(&format!("/spec/{f}")).and_then(Value::as_i64);
    let mut nonnegative = |f: &str| {
        if let Some(v) = n(f).filter(|v| *v < 0) {
            causes.push(Cause::invalid(
                format!("spec.{f}"),
                v.to_string(),
                crate::quantities::IS_NEGATIVE,
            ));
        }
    };
    nonnegative("minReadySeconds");
    if !deployment {
        return;
    }
    nonnegative("revisionHistoryLimit");
    nonnegative("progressDeadlineSeconds");
    if let Some(d) = n("progressDeadlineSeconds") {
        if d <= n("minReadySeconds").unwrap_or(0) {
            causes.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                d.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn go_map(v: &Value) -> String {
    let items: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("\"{k}\":\"{}\"", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("{{{}}}", items.join(", "))
}

/// The status a new object of `r` starts with whatever the body says, as its strategy's
/// `PrepareForCreate` sets it: empty for a Deployment, ReplicaSet
/// (pkg/registry/apps/deployment, replicaset `strategy.go`), Job and CronJob
/// (pkg/registry/batch/job, cronjob) and Service (pkg/registry/core/service; its empty
/// load-balancer status as Go encodes it); phase Active for a Namespace
/// (pkg/registry/core/namespace). `None` for kinds whose create keeps the body's status (a
/// Node's) or have none.
fn new_status(r: &Resource) -> Option<Value> {
    match (r.group, r.kind) {
        // `ReplicaSetStatus.Replicas` and `ReplicationControllerStatus.Replicas` have no
        // omitempty
        ("apps", "ReplicaSet") | ("", "ReplicationController") => Some(json!({"replicas": 0})),
        ("apps", "Deployment") | ("batch", "Job" | "CronJob") => Some(json!({})),
        // `DaemonSetStatus`' counts without omitempty
        ("apps", "DaemonSet") => Some(json!({"currentNumberScheduled": 0,
            "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0})),
        // `StatefulSetStatus.Replicas` and `.AvailableReplicas` have no omitempty
        ("apps", "StatefulSet") => Some(json!({"replicas": 0, "availableReplicas": 0})),
        // the strategy clears the status; the defaults of the stored object make it Pending
        ("", "PersistentVolumeClaim") => Some(json!({"phase": "Pending"})),
        // `PrepareForCreate` with PersistentVolumeLastPhaseTransitionTime (GA in 1.31): Pending
        // since now (the time is set by `prepare`)
        ("", "PersistentVolume") => Some(json!({"phase": "Pending"})),
        // `ServiceStatus.LoadBalancer`, `IngressStatus.LoadBalancer`: structs, never omitted
        ("", "Service") | ("networking.k8s.io", "Ingress") => Some(json!({"loadBalancer": {}})),
        ("", "Namespace") => Some(json!({"phase": "Active"})),
        // `PrepareForCreate` clears the status: `ResourceQuotaStatus`' maps are omitempty,
        // `PodDisruptionBudgetStatus`' counts are not
        ("", "ResourceQuota") => Some(json!({})),
        ("policy", "PodDisruptionBudget") => Some(json!({"disruptionsAllowed": 0,
            "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})),
        _ => None,
    }
}

#[derive(Clone, Copy)]
struct Opts {
    /// list the input's unknown fields (keeps the input until then)
    find_unknown: bool,
    /// apply the kind's defaults
    defaults: bool,
}

/// How a body decoded into its typed struct.
enum Decoded {
    /// Decoded, defaulted and encoded again; `unknown` lists the input's fields the type does
    /// not have (only when asked for).
    Typed { unknown: Vec<String> },
    /// The decoder's reason (a string where a list belongs, a number for a label); `obj` is
    /// left as it was.
    Failed(String),
}

/// Decodes `obj` into `T` once, applies `T`'s defaults and encodes it back into `obj` (which
/// drops the fields `T` does not have, as kube-apiserver's decoder prunes them). With
/// `find_unknown`, the input's unknown fields are listed first.
fn decode_as<T>(obj: &mut Value, o: Opts, secret: bool) -> Decoded
where
    T: serde::de::DeserializeOwned + serde::Serialize + SetDefaults,
{
    let Typed {
        typed,
        encoded,
        unknown,
    } = match decode_into::<T>(obj, o, secret) {
        Ok(t) => t,
        Err(e) => return Decoded::Failed(e),
    };
    *obj = match encoded {
        Some(v) => v,
        None => match serde_json::to_value(&typed) {
            Ok(v) => v,
            Err(e) => return Decoded::Failed(e.to_string()),
        },
    };
    Decoded::Typed { unknown }
}

/// [`decode_as`] of an Event of either group, its series' time as Go's decoder reads it and
/// writes it again (see [`crate::events::fill_series_time`]); `before` is the series as it came
/// when it was filled in.
fn decode_event<T>(obj: &mut Value, o: Opts, before: Option<Value>) -> Decoded
where
    T: serde::de::DeserializeOwned + serde::Serialize + SetDefaults,
{
    let decoded = decode_as::<T>(obj, o, false);
    match decoded {
        Decoded::Failed(_) => crate::events::restore_series(obj, before),
        Decoded::Typed { .. } => crate::events::unset_zero_series_time(obj),
    }
    decoded
}

/// A body decoded into its type.
struct Typed<T> {
    /// The typed object, defaulted when asked.
    typed: T,
    /// Its encoding, when one was made to find the unknown fields.
    encoded: Option<Value>,
    /// The input's fields the type does not have (when asked for).
    unknown: Vec<String>,
}

/// Decodes `obj` into `T` once and applies `T`'s defaults. With `find_unknown`, `obj` is left
/// as it came until the typed object has been encoded to list the input's unknown fields;
/// otherwise `obj` is taken. The error is the decoder's reason.
fn decode_into<T>(obj: &mut Value, o: Opts, secret: bool) -> Result<Typed<T>, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize + SetDefaults,
{
    let decoded = if o.find_unknown {
        T::deserialize(&*obj)
    } else {
        T::deserialize(std::mem::take(&mut *obj))
    };
    let mut typed = match decoded {
        Ok(t) => t,
        Err(e) if secret => return Err(without_values(&e.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    if o.defaults {
        typed.set_defaults();
    }
    if !o.find_unknown {
        return Ok(Typed {
            typed,
            encoded: None,
            unknown: vec![],
        });
    }
    let encoded = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = vec![];
    let mut input = std::mem::take(obj);
    if secret {
        // stringData is a field of v1.Secret, merged into data by the defaults
        if let Some(o) = input.as_object_mut() {
            o.remove("stringData");
        }
    }
    diff(&input, &encoded, "", &mut unknown);
    Ok(Typed {
        typed,
        encoded: Some(encoded),
        unknown,
    })
}

/// A decoder's message about a Secret with the values it quotes taken out: serde quotes the
/// offending value (``invalid type: integer `12345`, expected a string``) and a base64 error
/// names the offending byte, either of which may be secret data. kube-apiserver's decoder names
/// only the types (`json: cannot unmarshal number into Go struct field Secret.stringData of type
/// string`, `illegal base64 data at input byte 3`).
fn without_values(msg: &str) -> String {
    // base64::DecodeError: "Invalid symbol 33, offset 3.", "Invalid last symbol …", "Invalid
    // padding", "Invalid input length: 5"
    if msg.contains("Invalid symbol")
        || msg.contains("Invalid last symbol")
        || msg.contains("Invalid padding")
        || msg.contains("Invalid input length")
    {
        return "illegal base64 data".into();
    }
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        if c == '`' || c == '"' {
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
            }
            out.push_str("<secret contents redacted>");
        } else {
            out.push(c);
        }
    }
    out
}

/// [`decode_as`] with the type of `r`; `None` for kinds without one (custom resources).
fn decode_typed(r: &Resource, obj: &mut Value, u: Opts) -> Option<Decoded> {
    use k8s_openapi::api::discovery::v1 as discovery;
    use k8s_openapi::api::{certificates::v1 as certs, coordination::v1 as coord};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Some(match (r.group, r.kind) {
        ("", "Pod") => decode_as::<core::Pod>(obj, u, false),
        ("", "Secret") => decode_as::<core::Secret>(obj, u, true),
        ("", "ConfigMap") => decode_as::<core::ConfigMap>(obj, u, false),
        ("", "ServiceAccount") => decode_as::<core::ServiceAccount>(obj, u, false),
        ("", "Namespace") => decode_as::<core::Namespace>(obj, u, false),
        ("", "Node") => decode_as::<core::Node>(obj, u, false),
        ("", "Event") => decode_event::<core::Event>(obj, u, None),
        ("events.k8s.io", "Event") => {
            let before = crate::events::fill_series_time(obj);
            decode_event::<k8s_openapi::api::events::v1::Event>(obj, u, before)
        }
        ("", "Service") => decode_as::<core::Service>(obj, u, false),
        ("", "Endpoints") => decode_as::<core::Endpoints>(obj, u, false),
        ("apps", "Deployment") => decode_as::<apps::Deployment>(obj, u, false),
        ("apps", "ReplicaSet") => decode_as::<apps::ReplicaSet>(obj, u, false),
        ("apps", "DaemonSet") => decode_as::<apps::DaemonSet>(obj, u, false),
        ("apps", "StatefulSet") => decode_as::<apps::StatefulSet>(obj, u, false),
        ("apps", "ControllerRevision") => decode_as::<apps::ControllerRevision>(obj, u, false),
        ("", "ReplicationController") => decode_as::<core::ReplicationController>(obj, u, false),
        ("", "PersistentVolume") => decode_as::<core::PersistentVolume>(obj, u, false),
        ("networking.k8s.io", "Ingress") => {
            decode_as::<k8s_openapi::api::networking::v1::Ingress>(obj, u, false)
        }
        ("networking.k8s.io", "IngressClass") => {
            decode_as::<k8s_openapi::api::networking::v1::IngressClass>(obj, u, false)
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            decode_as::<k8s_openapi::api::networking::v1::NetworkPolicy>(obj, u, false)
        }
        ("", "ResourceQuota") => decode_as::<core::ResourceQuota>(obj, u, false),
        ("", "LimitRange") => decode_as::<core::LimitRange>(obj, u, false),
        ("policy", "PodDisruptionBudget") => {
            decode_as::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(obj, u, false)
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            decode_as::<k8s_openapi::api::scheduling::v1::PriorityClass>(obj, u, false)
        }
        ("", "PersistentVolumeClaim") => decode_as::<core::PersistentVolumeClaim>(obj, u, false),
        ("coordination.k8s.io", "Lease") => decode_as::<coord::Lease>(obj, u, false),
        ("discovery.k8s.io", "EndpointSlice") => {
            decode_as::<discovery::EndpointSlice>(obj, u, false)
        }
        ("batch", "Job") => decode_as::<batch::Job>(obj, u, false),
        ("batch", "CronJob") => decode_as::<batch::CronJob>(obj, u, false),
        ("rbac.authorization.k8s.io", "Role") => decode_as::<rbac::Role>(obj, u, false),
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            decode_as::<rbac::ClusterRole>(obj, u, false)
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            decode_as::<rbac::RoleBinding>(obj, u, false)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            decode_as::<rbac::ClusterRoleBinding>(obj, u, false)
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            decode_as::<admreg::MutatingWebhookConfiguration>(obj, u, false)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            decode_as::<admreg::ValidatingWebhookConfiguration>(obj, u, false)
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            decode_as::<certs::CertificateSigningRequest>(obj, u, false)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            decode_as::<apiext::CustomResourceDefinition>(obj, u, false)
        }
        _ => return None,
    })
}

/// The object as the server stores it after decoding: typed defaults and [`prepare`].
#[cfg(test)]
pub(crate) fn defaulted(r: &Resource, mut obj: Value) -> Value {
    let why = decode_with(r, &mut obj, true, false, true);
    assert_eq!(why, None, "decodes as {}", r.kind);
    prepare(r, &mut obj, true);
    obj
}

/// The kind's defaults applied to an object read from storage, as kube-apiserver's storage codec
/// decodes what it reads with them: an object stored before a default was added reads as one
/// written since, so an update's comparisons (a Pod's immutable spec, a running Job's
/// template, whether the spec changed) see only what the client changed. An object that does
/// not decode as its kind (or a custom resource) is left as stored. Only the kinds with a pod
/// template (`pod_template_path`: Pods, Deployments, ReplicaSets, Jobs, CronJobs) are decoded,
/// for the pod and pod-template defaults that earlier builds did not store; every other kind is
/// returned as it is, without a copy or a decode.
pub fn default_stored(r: &Resource, obj: &mut Value) {
    if !has_stored_defaults(r) || !obj.is_object() {
        return;
    }
    let o = Opts {
        find_unknown: false,
        defaults: true,
    };
    let mut typed = obj.clone();
    if let Some(Decoded::Typed { .. }) = decode_typed(r, &mut typed, o) {
        *obj = typed;
    }
}

/// Whether [`default_stored`] can change an object of `r` (a kind with a pod template); for
/// every other kind the stored value is what is served.
pub fn has_stored_defaults(r: &Resource) -> bool {
    pod_template_path(r).is_some()
}

/// Strict decoding: fields the typed object does not have (`strict decoding error: unknown
/// field "spec.foo"`).
pub fn unknown_fields(r: &Resource, obj: &Value) -> Vec<String> {
    let o = Opts {
        find_unknown: true,
        defaults: false,
    };
    match decode_typed(r, &mut obj.clone(), o) {
        Some(Decoded::Typed { unknown }) => unknown,
        _ => vec![],
    }
}

/// Decodes a body of a built-in kind once into its k8s-openapi type, applies the kind's
/// defaults (the `SetDefaults_*` ports, on the typed object) and encodes it back into `obj`,
/// which drops the fields the type does not have (with a warning each when the request's
/// `fieldValidation` is `Warn`). Returns
/// why the body cannot be handled as its kind: a type error when `check_types`, unknown fields
/// when `strict`; then `obj` is not to be used. The text follows kube-apiserver: `Pod in version
/// "v1" cannot be handled as a Pod: …`. With neither check nor warning asked for (a status
/// update) nothing is done. Custom resources (no type) are left to the CRD schema.
pub fn decode(r: &Resource, obj: &mut Value, check_types: bool, strict: bool) -> Option<String> {
    decode_with(r, obj, check_types, strict, true)
}

/// [`decode`] without the defaults, for a body a mutating webhook patched: whether the webhook
/// changed the object is decided before it is defaulted again (k8s.io/apiserver
/// `pkg/admission/plugin/webhook/mutating/dispatcher.go`), then [`decode`] defaults it.
pub fn decode_without_defaults(r: &Resource, obj: &mut Value) -> Option<String> {
    decode_with(r, obj, true, false, false)
}

fn decode_with(
    r: &Resource,
    obj: &mut Value,
    check_types: bool,
    strict: bool,
    defaults: bool,
) -> Option<String> {
    let warn = !strict && crate::warnings::warn_unknown_fields();
    if !check_types && !strict && !warn {
        return None;
    }
    if check_types {
        if let Some(e) = crate::quantities::refuse_unparsable(r, obj) {
            return Some(cannot_handle(r, e));
        }
    }
    // a failed decode must leave the body as it came (for the error path and for status
    // updates, which go on with it)
    let o = Opts {
        find_unknown: strict || warn || !check_types,
        defaults,
    };
    match decode_typed(r, obj, o)? {
        Decoded::Failed(_) if !check_types => None,
        Decoded::Failed(e) => Some(cannot_handle(r, &e)),
        Decoded::Typed { unknown } => refuse_unknown(unknown, strict).map(|w| cannot_handle(r, &w)),
    }
}

/// kube-apiserver's words for a body that does not decode: `Pod in version "v1" cannot be
/// handled as a Pod: …`.
fn cannot_handle(r: &Resource, why: &str) -> String {
    format!(
        "{} in version \"{}\" cannot be handled as a {}: {why}",
        r.kind, r.version, r.kind
    )
}

/// The input's unknown fields: with fieldValidation=Strict, why the body is refused; with Warn
/// or Ignore they are dropped, as decoding into the typed object drops them, and with Warn one
/// warning each (k8s.io/apiserver `pkg/endpoints/handlers/rest.go`,
/// `addStrictDecodingWarnings`).
fn refuse_unknown(unknown: Vec<String>, strict: bool) -> Option<String> {
    if strict && !unknown.is_empty() {
        return Some(format!(
            "strict decoding error: {}",
            unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for f in unknown {
        crate::warnings::add(format!("unknown field \"{f}\""));
    }
    None
}

/// [`decode`] for a Pod, which the server admits as its typed object: the body decoded once into
/// `core::Pod` with the Pod defaults, or why it cannot be handled as a Pod (a type error, or
/// unknown fields when `strict`; unknown fields warned about with fieldValidation=Warn).
pub fn decode_pod(r: &Resource, body: Value, strict: bool) -> Result<core::Pod, String> {
    decode_body(r, body, strict)
}

/// [`decode`] into the typed object itself, for a kind admitted as it (a Pod, a
/// CertificateSigningRequest): the body decoded once with `T`'s defaults, or why it cannot be
/// handled as its kind (a type error, or unknown fields when `strict`; unknown fields warned
/// about with fieldValidation=Warn).
pub(crate) fn decode_body<T>(r: &Resource, mut body: Value, strict: bool) -> Result<T, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize + SetDefaults,
{
    let warn = !strict && crate::warnings::warn_unknown_fields();
    let o = Opts {
        find_unknown: strict || warn,
        defaults: true,
    };
    let t = decode_into::<T>(&mut body, o, false).map_err(|e| cannot_handle(r, &e))?;
    match refuse_unknown(t.unknown, strict) {
        Some(why) => Err(cannot_handle(r, &why)),
        None => Ok(t.typed),
    }
}

fn diff(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(tv) => diff(v, tv, &p, out),
                    None if v.is_null() => {}
                    None if matches!(k.as_str(), "apiVersion" | "kind") => {}
                    None => {
                        // empty values the typed struct omits are not unknown
                        let empty = matches!(v, Value::Object(m) if m.is_empty())
                            || matches!(v, Value::Array(a) if a.is_empty());
                        if !empty {
                            out.push(p);
                        }
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `validateAppArmorAnnotationsAndFieldsMatchOnCreate`: each container's own profile, else
    /// the pod's, against its annotation; ephemeral containers too; not for a Windows pod; a
    /// container with no profile or no annotation is not compared.
    #[test]
    fn app_armor_annotations_and_fields_match() {
        let texts = |annotations: Value, spec: Value| {
            let spec: core::PodSpec = serde_json::from_value(spec).unwrap();
            let mut causes = vec![];
            validate_app_armor_annotations_match(Some(&annotations), &spec, "spec", &mut causes);
            causes.iter().map(Cause::text).collect::<Vec<_>>()
        };
        let k = |c: &str| format!("container.apparmor.security.beta.kubernetes.io/{c}");
        let spec = json!({
            "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [{"name": "a", "image": "i"},
                {"name": "b", "image": "i", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
                {"name": "n", "image": "i"}],
            "ephemeralContainers": [{"name": "e", "image": "i",
                "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}]});
        let annotations =
            json!({k("a"): "localhost/q", k("b"): "runtime/default", k("e"): "unconfined"});
        assert_eq!(
            texts(annotations.clone(), spec.clone()),
            [
                "spec.containers[0].securityContext.appArmorProfile.localhostProfile: Forbidden: apparmor profile in annotation and field must match",
                "spec.containers[1].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match",
                "spec.ephemeralContainers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match",
            ]
        );
        assert!(texts(
            json!({k("a"): "localhost/p", k("b"): "unconfined", k("e"): "runtime/default"}),
            spec.clone()
        )
        .is_empty());
        let mut windows = spec;
        windows["os"] = json!({"name": "windows"});
        assert!(texts(annotations, windows).is_empty());
    }

    fn secret() -> &'static Resource {
        crate::resources::find("", "v1", "secrets").unwrap()
    }

    /// `WarningsOnCreate`'s name warning, for the kinds whose names become hostnames.
    #[test]
    fn name_warnings_for_hostname_kinds() {
        let find = |g, v, p| crate::resources::find(g, v, p).unwrap();
        let named = |n: &str| json!({"metadata": {"name": n}});
        assert_eq!(
            name_warnings(find("", "v1", "pods"), &named("a.b")),
            ["metadata.name: this is used in the Pod's hostname, which can result in surprising behavior; a DNS label is recommended: [must not contain dots]"]
        );
        let long = format!("{}.x", "a".repeat(64));
        for (g, p) in [
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
        ] {
            assert_eq!(
                name_warnings(find(g, "v1", p), &named("web.v1")),
                ["metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [must not contain dots]"],
                "{p}"
            );
            assert_eq!(
                name_warnings(find(g, "v1", p), &named(&long)),
                ["metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [must be no more than 63 characters must not contain dots]"],
                "{p}"
            );
            assert!(name_warnings(find(g, "v1", p), &named("web-1")).is_empty());
        }
        assert!(name_warnings(find("", "v1", "services"), &named("a.b")).is_empty());
        assert!(name_warnings(find("", "v1", "configmaps"), &named("a.b")).is_empty());
    }

    /// Only kinds with a pod template are decoded for their defaults when read from storage;
    /// the others (Services, ConfigMaps, Leases, …) are returned untouched, unknown fields and
    /// all, without a typed round trip.
    #[test]
    fn default_stored_decodes_only_pod_template_kinds() {
        for (group, plural, obj) in [
            (
                "",
                "services",
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "bogus": 1}}),
            ),
            (
                "",
                "configmaps",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c"}, "bogus": 1}),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease", "metadata": {"name": "l"}, "bogus": 1}),
            ),
        ] {
            let r = crate::resources::find(group, "v1", plural).unwrap();
            let mut stored = obj.clone();
            default_stored(r, &mut stored);
            assert_eq!(stored, obj, "{plural}");
        }
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}});
        default_stored(pods, &mut pod);
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        // a stored value that does not decode is left as it is
        let mut bad = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": 1}});
        let before = bad.clone();
        default_stored(pods, &mut bad);
        assert_eq!(bad, before);
    }

    #[test]
    fn a_secret_that_does_not_decode_is_refused_without_its_values() {
        let r = secret();
        for (body, leak) in [
            (json!({"stringData": {"password": 987654321}}), "987654321"),
            (
                json!({"data": {"password": ["hunter2-secret"]}}),
                "hunter2-secret",
            ),
            (json!({"data": {"password": "aHVudGVy!!!"}}), "33"),
        ] {
            let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
            obj.as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            let why = decode(r, &mut obj, true, false).expect("refused");
            assert!(
                why.starts_with("Secret in version \"v1\" cannot be handled as a Secret: "),
                "{why}"
            );
            assert!(!why.contains(leak), "{why}");
        }
        // the non-secret part of the message stays
        let mut obj = json!({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": 5}});
        let why = decode(r, &mut obj, true, false).unwrap();
        assert!(why.contains("invalid type: integer"), "{why}");
    }

    #[test]
    fn dockerconfigjson_secret_validation_never_echoes_data() {
        use base64::Engine as _;
        let bad = base64::engine::general_purpose::STANDARD
            .encode("{\"auths\":{\"r\":{\"password\":\"hunter2\"");
        let obj = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": bad}});
        let c = check(secret(), &obj, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].text(),
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": unexpected end of JSON input"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        let obj = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "data": {}});
        assert_eq!(
            check(secret(), &obj, None)[0].text(),
            "data[.dockerconfigjson]: Required value"
        );
    }

    #[test]
    fn unknown_fields_are_found() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicyy": "Always"}], "foo": 1}});
        assert_eq!(
            unknown_fields(pods, &obj),
            vec!["spec.containers[0].imagePullPolicyy", "spec.foo"]
        );
    }

    /// [`validate`] as the server calls it: with the pod template decoded once.
    fn check(r: &Resource, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        use serde::Deserialize as _;
        let template = pod_template_pointer(r).map(|at| {
            obj.pointer(&at)
                .map(|t| core::PodTemplateSpec::deserialize(t).unwrap())
                .unwrap_or_default()
        });
        let parts = template.as_ref().map(|t| PodParts {
            meta: t.metadata.as_ref(),
            spec: t.spec.as_ref(),
        });
        validate(r, obj, old, parts)
    }

    fn res(group: &str, version: &str, plural: &str) -> &'static Resource {
        crate::resources::find(group, version, plural).unwrap()
    }

    #[test]
    fn labels_annotation_keys_and_selectors_are_validated_as_upstream() {
        let cm = res("", "v1", "configmaps");
        let texts = |c: Vec<Cause>| c.iter().map(Cause::text).collect::<Vec<_>>();
        // ValidateObjectMeta: a label key and value, an annotation key
        let obj = json!({"metadata": {"name": "c", "labels": {"-bad-": "v", "ok": "not ok"},
            "annotations": {"Example.com/Fine": "any", "no spaces": "x"}}});
        let t = texts(check(cm, &obj, None));
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(t[0].starts_with("metadata.labels: Invalid value: \"-bad-\": name part must consist of alphanumeric characters"), "{t:?}");
        assert!(
            t[1].starts_with(
                "metadata.labels: Invalid value: \"not ok\": a valid label must be an empty string"
            ),
            "{t:?}"
        );
        assert!(
            t[2].starts_with("metadata.annotations: Invalid value: \"no spaces\": name part"),
            "{t:?}"
        );
        // and on update (ValidateObjectMetaUpdate)
        let good = json!({"metadata": {"name": "c", "labels": {"app": "a"}}});
        let t = texts(check(cm, &obj, Some(&good)));
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(check(cm, &good, Some(&good)).is_empty());

        // a Deployment's selector (ValidateLabelSelector), not matched against the template
        // while it is not valid
        let d = res("apps", "v1", "deployments");
        let mut obj = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "a"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["bad value"]}]},
            "template": minimal_template()}});
        obj["spec"]["template"]["metadata"] = json!({"labels": {"app": "a"}});
        obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(30);
        obj["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        // what the defaults give every Deployment before it is validated
        obj["spec"]["strategy"] = json!({"type": "Recreate"});
        let t = texts(check(d, &obj, None));
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(t[0].starts_with("spec.selector.matchExpressions[0].values[0]: Invalid value: \"bad value\": a valid label"), "{t:?}");

        // a template's labels and annotation keys (ValidatePodTemplateSpec), for a Job too
        let mut bad = obj.clone();
        bad["spec"]["template"]["metadata"] =
            json!({"labels": {"app": "a", "tier": "front end"}, "annotations": {"bad key": "x"}});
        bad["spec"]["selector"] = json!({"matchLabels": {"app": "a"}});
        let t = texts(check(d, &bad, None));
        assert!(
            t[0].starts_with("spec.template.labels: Invalid value: \"front end\": a valid label"),
            "{t:?}"
        );
        assert!(
            t[1].starts_with("spec.template.annotations: Invalid value: \"bad key\": name part"),
            "{t:?}"
        );
        assert_eq!(t.len(), 2, "{t:?}");
        let job = json!({"metadata": {"name": "j"}, "spec": {"template": {
            "metadata": {"labels": {"-x": "y"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "c", "image": "x", "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePolicy": "File"}]}}}});
        let t = texts(check(res("batch", "v1", "jobs"), &job, None));
        assert!(
            t.iter()
                .any(|t| t.starts_with("spec.template.labels: Invalid value: \"-x\": name part")),
            "{t:?}"
        );

        // a Service's selector (ValidateLabels)
        let svc = res("", "v1", "services");
        let obj = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app/x/y": "a"},
            "ports": [{"port": 80}]}});
        let t = texts(check(svc, &obj, None));
        assert!(
            t.iter().any(|t| t.starts_with(
                "spec.selector: Invalid value: \"app/x/y\": a qualified name must consist"
            )),
            "{t:?}"
        );
    }

    /// The pod template spec kube-apiserver stores for `{"containers": [{"name": "c", "image":
    /// IMAGE}]}` (SetDefaults_PodSpec, SetDefaults_Container); a Pod's has `enableServiceLinks`
    /// too (SetDefaults_Pod).
    fn defaulted_pod_spec(image: &str, policy: &str) -> Value {
        json!({
            "containers": [{"name": "c", "image": image, "imagePullPolicy": policy,
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "resources": {}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "securityContext": {},
        })
    }

    fn minimal_template() -> Value {
        json!({"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
    }

    #[test]
    fn typed_pod_defaults() {
        let pod = defaulted(
            res("", "v1", "pods"),
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
                "initContainers": [{"name": "i", "image": "busybox:1.36", "imagePullPolicy": "Never"}]}}),
        );
        let mut want = defaulted_pod_spec("busybox", "Always");
        want["enableServiceLinks"] = json!(true);
        want["initContainers"] = json!([{"name": "i", "image": "busybox:1.36",
            "imagePullPolicy": "Never", "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "resources": {}}]);
        assert_eq!(pod["spec"], want);
        assert_eq!(pod["apiVersion"], "v1");
        assert_eq!(pod["kind"], "Pod");
        // what the request set is kept
        let pod = defaulted(
            res("", "v1", "pods"),
            json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "Default",
                "containers": [{"name": "c", "image": "busybox:1.36"}]}}),
        );
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["dnsPolicy"], "Default");
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn typed_deployment_and_replicaset_defaults() {
        let d = defaulted(
            res("apps", "v1", "deployments"),
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
                "template": minimal_template()}}),
        );
        let mut want = json!({"replicas": 1, "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600, "selector": {"matchLabels": {"app": "a"}},
            "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": minimal_template()});
        want["template"]["spec"] = defaulted_pod_spec("busybox:1.36", "IfNotPresent");
        assert_eq!(d["spec"], want);
        // Recreate has no rolling update parameters
        let d = defaulted(
            res("apps", "v1", "deployments"),
            json!({"spec": {"strategy": {"type": "Recreate"}, "template": minimal_template()}}),
        );
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));

        let rs = defaulted(
            res("apps", "v1", "replicasets"),
            json!({"metadata": {"name": "r"}, "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "a"}}, "template": minimal_template()}}),
        );
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(
            rs["spec"]["template"]["spec"],
            defaulted_pod_spec("busybox:1.36", "IfNotPresent")
        );
        let rs = defaulted(res("apps", "v1", "replicasets"), json!({"spec": {}}));
        assert_eq!(rs["spec"]["replicas"], 1);
    }

    #[test]
    fn typed_service_defaults() {
        let svc = defaulted(
            res("", "v1", "services"),
            json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "a"},
                "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        );
        assert_eq!(
            svc["spec"],
            json!({"type": "ClusterIP", "sessionAffinity": "None", "selector": {"app": "a"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                    {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
                "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack"})
        );
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));
        let lb = defaulted(
            res("", "v1", "services"),
            json!({"spec": {"type": "LoadBalancer", "clusterIPs": ["10.0.0.9"],
                "ports": [{"port": 443, "targetPort": 0}]}}),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["clusterIP"], "10.0.0.9");
        assert_eq!(lb["spec"]["ports"][0]["targetPort"], 443);
        let ext = defaulted(
            res("", "v1", "services"),
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(ext["spec"].get("ipFamilies").is_none());
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn typed_job_and_cronjob_defaults() {
        let j = defaulted(
            res("batch", "v1", "jobs"),
            json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}),
        );
        let labels = json!({"job-name": "pi", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u1", "batch.kubernetes.io/controller-uid": "u1"});
        let mut pod = defaulted_pod_spec("busybox:1.36", "IfNotPresent");
        pod["restartPolicy"] = json!("Never");
        assert_eq!(
            j["spec"],
            json!({"completions": 1, "parallelism": 1, "backoffLimit": 6,
                "completionMode": "NonIndexed", "suspend": false,
                "podReplacementPolicy": "TerminatingOrFailed",
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "template": {"metadata": {"labels": labels}, "spec": pod}})
        );
        assert_eq!(j["metadata"]["labels"], labels);
        // parallelism alone leaves completions unset; a failure policy changes the
        // replacement policy; backoffLimitPerIndex lifts backoffLimit
        let j = defaulted(
            res("batch", "v1", "jobs"),
            json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "completionMode": "Indexed",
                "completions": 3, "podFailurePolicy": {"rules": []},
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(j["spec"]["parallelism"], 3);
        assert_eq!(j["spec"]["backoffLimit"], i32::MAX);
        assert_eq!(j["spec"]["podReplacementPolicy"], "Failed");
        let j = defaulted(
            res("batch", "v1", "jobs"),
            json!({"spec": {"parallelism": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert!(j["spec"].get("completions").is_none());

        let cj = defaulted(
            res("batch", "v1", "cronjobs"),
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {
                "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}}),
        );
        let mut pod = defaulted_pod_spec("busybox:1.36", "IfNotPresent");
        pod["restartPolicy"] = json!("OnFailure");
        assert_eq!(
            cj["spec"],
            json!({"schedule": "* * * * *", "concurrencyPolicy": "Allow", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"template": {"spec": pod}}}})
        );
    }

    /// `PrepareForCreate`: a new workload's, Service's and Namespace's status is the
    /// strategy's, not the body's; a Node keeps the body's.
    #[test]
    fn a_new_objects_status_is_the_strategys() {
        let template = json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i"}]}});
        for (group, resource, spec, want) in [
            ("batch", "jobs", json!({"template": template}), json!({})),
            (
                "apps",
                "deployments",
                json!({"template": template}),
                json!({}),
            ),
            (
                "apps",
                "replicasets",
                json!({"template": template}),
                json!({"replicas": 0}),
            ),
            (
                "batch",
                "cronjobs",
                json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}),
                json!({}),
            ),
            (
                "",
                "services",
                json!({"ports": [{"port": 80}]}),
                json!({"loadBalancer": {}}),
            ),
            ("", "namespaces", json!({}), json!({"phase": "Active"})),
        ] {
            let obj = json!({"metadata": {"name": "x", "uid": "u"}, "spec": spec,
                "status": {"succeeded": 3, "replicas": 2, "phase": "Terminating",
                    "loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]},
                    "lastScheduleTime": "2026-01-01T00:00:00Z"}});
            let created = defaulted(res(group, "v1", resource), obj.clone());
            assert_eq!(created["status"], want, "{resource}");
            // an update keeps what the body says (the storage keeps the stored status)
            let mut updated = obj;
            decode(res(group, "v1", resource), &mut updated, true, false);
            prepare(res(group, "v1", resource), &mut updated, false);
            assert_ne!(updated["status"], want, "{resource}");
        }
        let node = defaulted(
            res("", "v1", "nodes"),
            json!({"metadata": {"name": "n"}, "status": {"phase": "Running"}}),
        );
        assert_eq!(node["status"], json!({"phase": "Running"}));
    }

    #[test]
    fn typed_secret_namespace_and_webhook_defaults() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let sec = defaulted(
            secret(),
            json!({"metadata": {"name": "s"}, "data": {"a": b64("old"), "b": b64("kept")},
                "stringData": {"a": "new", "c": "added"}}),
        );
        assert_eq!(sec["type"], "Opaque");
        assert_eq!(
            sec["data"],
            json!({"a": b64("new"), "b": b64("kept"), "c": b64("added")})
        );
        assert!(sec.get("stringData").is_none());

        let ns = defaulted(
            res("", "v1", "namespaces"),
            json!({"metadata": {"name": "team", "labels": {"x": "y"}}}),
        );
        assert_eq!(
            ns["metadata"]["labels"],
            json!({"x": "y", "kubernetes.io/metadata.name": "team"})
        );
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));

        let hook = json!({"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "n", "name": "s"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]});
        let want = json!({"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "n", "name": "s", "port": 443}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"], "scope": "*"}],
            "failurePolicy": "Fail", "matchPolicy": "Equivalent", "namespaceSelector": {},
            "objectSelector": {}, "timeoutSeconds": 10});
        let g = "admissionregistration.k8s.io";
        let v = defaulted(
            res(g, "v1", "validatingwebhookconfigurations"),
            json!({"metadata": {"name": "v"}, "webhooks": [hook.clone()]}),
        );
        assert_eq!(v["webhooks"][0], want);
        let m = defaulted(
            res(g, "v1", "mutatingwebhookconfigurations"),
            json!({"metadata": {"name": "m"}, "webhooks": [hook]}),
        );
        let mut want = want;
        want["reinvocationPolicy"] = json!("Never");
        assert_eq!(m["webhooks"][0], want);
    }

    #[test]
    fn namespace_label_follows_a_generated_name() {
        let r = res("", "v1", "namespaces");
        let mut ns = json!({"metadata": {"generateName": "team-"}});
        assert_eq!(decode(r, &mut ns, true, false), None);
        assert!(ns["metadata"].get("labels").is_none());
        ns["metadata"]["name"] = json!("team-x1");
        prepare(r, &mut ns, true);
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-x1"
        );
    }

    /// The same for a Node's `status.capacity` and `status.allocatable` (`ResourceList`),
    /// the only quantities of the other served kinds; a label value is not a quantity.
    #[test]
    fn a_nodes_unparsable_quantities_are_refused_at_decode() {
        let nodes = res("", "v1", "nodes");
        let node = |capacity: Value, allocatable: Value| {
            json!({"metadata": {"name": "n", "labels": {"size": "huge"}},
                "status": {"capacity": capacity, "allocatable": allocatable}})
        };
        let want = "Node in version \"v1\" cannot be handled as a Node: quantities must match \
                    the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
        let mut ok = node(
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
            json!({"cpu": "3500m", "ephemeral-storage": "1e9"}),
        );
        assert_eq!(decode(nodes, &mut ok, true, false), None);
        // `SetObjectDefaults_Node`: rounded up to milli-units and spelled as stored, and a
        // status without `allocatable` allocates its capacity (an empty one stays empty)
        assert_eq!(ok["status"]["allocatable"]["ephemeral-storage"], "1e9");
        for (allocatable, want) in [
            (
                None,
                json!({"cpu": "500m", "memory": "512Mi", "pods": "110"}),
            ),
            (Some(json!({})), json!({})),
        ] {
            let mut obj = node(
                json!({"cpu": "0.5", "memory": "0.5Gi", "pods": "110"}),
                json!(null),
            );
            let st = obj["status"].as_object_mut().unwrap();
            st.remove("allocatable");
            if let Some(a) = allocatable {
                st.insert("allocatable".into(), a);
            }
            assert_eq!(decode(nodes, &mut obj, true, false), None);
            assert_eq!(
                obj["status"]["capacity"],
                json!({"cpu": "500m", "memory": "512Mi", "pods": "110"})
            );
            assert_eq!(obj["status"]["allocatable"], want);
        }
        for (capacity, allocatable) in [
            (json!({"cpu": "4 cores"}), json!({})),
            (json!({"cpu": "4"}), json!({"memory": "8GB"})),
        ] {
            let mut obj = node(capacity, allocatable);
            let sent = obj.clone();
            assert_eq!(decode(nodes, &mut obj, true, false).as_deref(), Some(want));
            assert_eq!(obj, sent);
        }
    }

    /// `Quantity.UnmarshalJSON`: quantity text that does not parse is the decoder's 400
    /// (`ErrFormatWrong`), in a pod and in a workload's pod template; the body is left as sent.
    #[test]
    fn unparsable_quantities_are_refused_at_decode() {
        let want = |kind: &str| {
            format!(
                "{kind} in version \"v1\" cannot be handled as a {kind}: quantities must match \
                 the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )
        };
        let pod = |res: Value, volumes: Value| {
            json!({"metadata": {"name": "p"}, "spec": {"volumes": volumes,
                "containers": [{"name": "c", "image": "busybox", "resources": res}]}})
        };
        let pods = res("", "v1", "pods");
        let mut obj = pod(json!({"limits": {"memory": "1GB"}}), json!([]));
        let sent = obj.clone();
        assert_eq!(decode(pods, &mut obj, true, false), Some(want("Pod")));
        assert_eq!(obj, sent);
        let mut obj = pod(
            json!({}),
            json!([{"name": "v", "emptyDir": {"sizeLimit": "lots"}}]),
        );
        assert_eq!(decode(pods, &mut obj, true, false), Some(want("Pod")));
        let mut obj = pod(
            json!({"requests": {"cpu": "100m", "memory": "1Gi"}}),
            json!([]),
        );
        assert_eq!(decode(pods, &mut obj, true, false), None);
        let deployments = res("apps", "v1", "deployments");
        let mut obj = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                {"name": "c", "image": "busybox", "env": [{"name": "M", "valueFrom":
                    {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1 MB"}}}]}]}}}});
        assert_eq!(
            decode(deployments, &mut obj, true, false),
            Some(want("Deployment"))
        );
    }

    #[test]
    fn decoding_prunes_unknown_fields_and_keeps_the_error_texts() {
        let pods = res("", "v1", "pods");
        let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "bogus": 1}], "foo": {"a": 1}}});
        // fieldValidation=Ignore: dropped, defaulted, stored without them
        let mut obj = body.clone();
        assert_eq!(decode(pods, &mut obj, true, false), None);
        assert!(obj["spec"].get("foo").is_none());
        assert!(obj["spec"]["containers"][0].get("bogus").is_none());
        assert_eq!(obj["spec"]["restartPolicy"], "Always");
        // fieldValidation=Strict: 400 naming each
        let mut obj = body.clone();
        assert_eq!(
            decode(pods, &mut obj, true, true).as_deref(),
            Some("Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].bogus\", unknown field \"spec.foo\"")
        );
        // stringData is a Secret field, not an unknown one
        let mut sec = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        assert_eq!(decode(secret(), &mut sec, true, true), None);
        // a wrong type: 400 with the decoder's reason
        let mut obj = json!({"metadata": {"name": "p"}, "spec": {"containers": "busybox"}});
        assert_eq!(
            decode(pods, &mut obj, true, false).as_deref(),
            Some("Pod in version \"v1\" cannot be handled as a Pod: invalid type: string \"busybox\", expected a sequence")
        );
        let mut obj =
            json!({"metadata": {"name": "p", "labels": {"a": 5}}, "spec": {"containers": []}});
        assert_eq!(
            decode(pods, &mut obj, true, false).as_deref(),
            Some("Pod in version \"v1\" cannot be handled as a Pod: invalid type: integer `5`, expected a string")
        );
        // a well-typed but invalid object: 422 causes in kubectl's words, after defaulting
        let mut obj = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "", "image": "x"}], "restartPolicy": "Sometimes"}});
        assert_eq!(decode(pods, &mut obj, true, false), None);
        let texts: Vec<String> = check(pods, &obj, None).iter().map(Cause::text).collect();
        assert_eq!(
            texts,
            [
                "spec.containers[0].name: Required value",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ]
        );
        // a Deployment without a selector: the typed spec's empty selector is "required"
        let deployments = res("apps", "v1", "deployments");
        let mut d = json!({"metadata": {"name": "d"}, "spec": {"template": minimal_template()}});
        assert_eq!(decode(deployments, &mut d, true, false), None);
        let texts: Vec<String> = check(deployments, &d, None)
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(texts, ["spec.selector: Required value"]);
        // a status update (no type check) that does not decode goes on unchanged
        let mut obj = json!({"status": {"phase": 5}});
        assert_eq!(decode(pods, &mut obj, false, true), None);
        assert_eq!(obj, json!({"status": {"phase": 5}}));
        // custom resources have no type here
        let crd_less = Resource {
            group: "example.com",
            kind: "Widget",
            ..pods.clone()
        };
        let mut obj = json!({"spec": {"anything": 1}});
        assert_eq!(decode(&crd_less, &mut obj, true, true), None);
        assert_eq!(obj, json!({"spec": {"anything": 1}}));
    }

    /// `ValidateNodeUpdate`: pod CIDRs only from none, provider ID only from empty.
    #[test]
    fn node_pod_cidrs_and_provider_id_are_set_once() {
        let nodes = crate::resources::find("", "v1", "nodes").unwrap();
        let node = |spec: Value| json!({"metadata": {"name": "n"}, "spec": spec});
        let texts = |new: Value, old: Value| {
            check(nodes, &new, Some(&old))
                .iter()
                .map(Cause::text)
                .collect::<Vec<_>>()
        };
        let none = node(json!({}));
        let one = node(json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}));
        // from none to some, kept, the older field alone
        assert!(texts(one.clone(), none.clone()).is_empty());
        assert!(texts(one.clone(), one.clone()).is_empty());
        assert!(texts(node(json!({"podCIDR": "10.244.1.0/24"})), one.clone()).is_empty());
        let msg = "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid";
        assert_eq!(texts(none.clone(), one.clone()), vec![msg]);
        assert_eq!(
            texts(node(json!({"podCIDRs": ["10.244.2.0/24"]})), one.clone()),
            vec![msg]
        );
        assert_eq!(
            texts(
                node(json!({"podCIDRs": ["10.244.1.0/24", "fd00::/64"]})),
                one.clone()
            ),
            vec![msg]
        );
        let p = node(json!({"providerID": "kind://a"}));
        assert!(texts(p.clone(), none.clone()).is_empty());
        assert_eq!(
            texts(node(json!({"providerID": "kind://b"})), p),
            vec!["spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid"]
        );
    }

    fn dns1123_label_ok(s: &str) -> bool {
        dns1123_label_problems(s).is_empty()
    }

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!dns1123_label_ok("a.b"));
        // the subdomain regex limits the whole name (253), not each label (63)
        let long_label = "a".repeat(64);
        assert!(is_dns1123_subdomain(&long_label));
        assert!(!dns1123_label_ok(&long_label));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(""));
        assert_eq!(
            dns1123_subdomain_problems(&format!("{}-", "a".repeat(253))),
            vec!["must be no more than 253 characters", DNS1123_SUBDOMAIN_MSG]
        );
        // ServiceAccount names are subdomains (`ValidateServiceAccountName`), Namespaces labels
        let core = |plural| crate::resources::find("", "v1", plural).unwrap();
        assert!(validate_name(core("serviceaccounts"), "builder.v2", None).is_empty());
        assert!(validate_name(core("secrets"), &long_label, None).is_empty());
        assert_eq!(validate_name(core("namespaces"), "team.a", None).len(), 1);
        // a core Event's name is only a path segment (what kubectl's older clients and
        // controllers name them: `system:…`, capitals); events.k8s.io's is a subdomain
        let events = crate::resources::find("events.k8s.io", "v1", "events").unwrap();
        assert!(validate_name(core("events"), "system:node:Web.17a", None).is_empty());
        assert_eq!(validate_name(events, "system:node:Web.17a", None).len(), 1);
        assert_eq!(
            validate_name(core("events"), "a/b", None)
                .iter()
                .map(Cause::text)
                .collect::<Vec<_>>(),
            ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        assert!(validate_name(core("events"), "x", Some("..")).is_empty());
        assert_eq!(validate_name(core("events"), "..", None).len(), 1);
    }

    /// A Namespace's name is `IsDNS1123Label`'s, with each of its messages: the length (63),
    /// then "must not contain dots" for a name that would be a subdomain, else the label regex;
    /// other names are `IsDNS1123Subdomain`'s: the length (253), then the subdomain regex.
    #[test]
    fn namespace_names_have_the_dns_label_messages() {
        let ns = crate::resources::find("", "v1", "namespaces").unwrap();
        let secrets = crate::resources::find("", "v1", "secrets").unwrap();
        let texts = |r, name: &str| {
            validate_name(r, name, None)
                .iter()
                .map(Cause::text)
                .collect::<Vec<_>>()
        };
        assert!(texts(ns, "team-a").is_empty());
        assert!(texts(ns, &"a".repeat(63)).is_empty());
        let long = "a".repeat(64);
        assert_eq!(
            texts(ns, &long),
            [format!(
                "metadata.name: Invalid value: \"{long}\": must be no more than 63 characters"
            )]
        );
        assert_eq!(
            texts(ns, "team.a"),
            ["metadata.name: Invalid value: \"team.a\": must not contain dots"]
        );
        assert_eq!(
            texts(ns, "Team_A"),
            [format!(
                "metadata.name: Invalid value: \"Team_A\": {DNS1123_LABEL_MSG}"
            )]
        );
        let dotted = format!("team.{}", "a".repeat(60));
        assert_eq!(
            texts(ns, &dotted),
            [
                format!("metadata.name: Invalid value: \"{dotted}\": must be no more than 63 characters"),
                format!("metadata.name: Invalid value: \"{dotted}\": must not contain dots"),
            ]
        );
        let bad = format!("-{}", "a".repeat(63));
        assert_eq!(
            texts(ns, &bad),
            [
                format!(
                    "metadata.name: Invalid value: \"{bad}\": must be no more than 63 characters"
                ),
                format!("metadata.name: Invalid value: \"{bad}\": {DNS1123_LABEL_MSG}"),
            ]
        );
        // a leading dot or an empty label is no subdomain either: the regex message
        assert_eq!(
            texts(ns, "a..b"),
            [format!(
                "metadata.name: Invalid value: \"a..b\": {DNS1123_LABEL_MSG}"
            )]
        );
        // subdomains
        assert!(texts(secrets, "team.a").is_empty());
        let very_long = "a".repeat(254);
        assert_eq!(
            texts(secrets, &very_long),
            [format!("metadata.name: Invalid value: \"{very_long}\": must be no more than 253 characters")]
        );
        assert_eq!(
            texts(secrets, "Team"),
            [format!(
                "metadata.name: Invalid value: \"Team\": {DNS1123_SUBDOMAIN_MSG}"
            )]
        );
    }

    /// `generateName` is validated with the name function as a prefix (`ValidateObjectMeta`):
    /// its trailing dash masked as upstream does (`maskTrailingDash` drops the character before
    /// it too), its causes before the name's; RBAC names ignore the prefix.
    #[test]
    fn generate_names_are_validated_as_prefixes() {
        let find = |g, plural| crate::resources::find(g, "v1", plural).unwrap();
        let (ns, secrets, roles) = (
            find("", "namespaces"),
            find("", "secrets"),
            find("rbac.authorization.k8s.io", "roles"),
        );
        let texts = |r, name: &str, g: &str| {
            validate_name(r, name, Some(g))
                .iter()
                .map(Cause::text)
                .collect::<Vec<_>>()
        };
        assert!(texts(ns, "team-x2b4z", "team-").is_empty());
        assert!(texts(ns, "a-x2b4z", "a-").is_empty());
        // "-a-" masks to "-a": still not a label
        assert_eq!(
            texts(ns, "a", "-a-"),
            [format!(
                "metadata.generateName: Invalid value: \"-a-\": {DNS1123_LABEL_MSG}"
            )]
        );
        assert_eq!(
            texts(ns, "team.a-x2b4z", "team.a-"),
            [
                "metadata.generateName: Invalid value: \"team.a-\": must not contain dots",
                "metadata.name: Invalid value: \"team.a-x2b4z\": must not contain dots",
            ]
        );
        // 64 characters masked to 63: a valid prefix; 65 are one too many
        let g64 = format!("{}-", "a".repeat(63));
        assert!(texts(ns, "a", &g64).is_empty());
        let g65 = format!("{}-", "a".repeat(64));
        assert_eq!(
            texts(ns, "a", &g65),
            [format!("metadata.generateName: Invalid value: \"{g65}\": must be no more than 63 characters")]
        );
        assert_eq!(
            texts(secrets, "Web-x2b4z", "Web-"),
            [
                format!("metadata.generateName: Invalid value: \"Web-\": {DNS1123_SUBDOMAIN_MSG}"),
                format!("metadata.name: Invalid value: \"Web-x2b4z\": {DNS1123_SUBDOMAIN_MSG}"),
            ]
        );
        assert_eq!(
            texts(roles, "a/b-x2b4z", "a/b-"),
            [
                "metadata.generateName: Invalid value: \"a/b-\": may not contain '/'",
                "metadata.name: Invalid value: \"a/b-x2b4z\": may not contain '/'",
            ]
        );
        // a multi-byte character cut by the mask is no panic, and no valid name
        assert_eq!(
            texts(ns, "a", "é-"),
            [format!(
                "metadata.generateName: Invalid value: \"é-\": {DNS1123_LABEL_MSG}"
            )]
        );
        assert_eq!(
            validate_name(ns, "", None)[0].text(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    fn texts(r: &Resource, body: Value) -> Vec<String> {
        let obj = defaulted(r, body);
        check(r, &obj, None).iter().map(Cause::text).collect()
    }

    /// `SetDefaults_LimitRangeItem`: a Container item's default limits from `max`, default
    /// requests from them and from `min`; maps left empty are not stored.
    #[test]
    fn limit_range_items_are_defaulted_as_upstream() {
        let lr = res("", "v1", "limitranges");
        let obj = defaulted(
            lr,
            json!({"metadata": {"name": "l"}, "spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
                {"type": "Pod", "max": {"cpu": "4"}}]}}),
        );
        let items = &obj["spec"]["limits"];
        assert_eq!(items[0]["default"], json!({"cpu": "2"}));
        assert_eq!(
            items[0]["defaultRequest"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
        for i in [1, 2] {
            assert!(items[i].get("default").is_none(), "{items}");
            assert!(items[i].get("defaultRequest").is_none(), "{items}");
        }
    }

    /// `ValidateDeploymentStrategy`, `ValidateRollingUpdateDeployment` and the counts of
    /// `ValidateDeploymentSpec`, as kube-apiserver words them.
    #[test]
    fn deployment_strategies_and_counts_are_validated() {
        let deployments = res("apps", "v1", "deployments");
        let d = |spec: Value| {
            let mut spec = spec;
            spec["selector"] = json!({"matchLabels": {"app": "a"}});
            spec["template"] = json!({"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}});
            texts(
                deployments,
                json!({"metadata": {"name": "d"}, "spec": spec}),
            )
        };
        assert!(d(json!({})).is_empty());
        assert!(d(json!({"strategy": {"type": "Recreate"}})).is_empty());
        let ru = "spec.strategy.rollingUpdate";
        assert_eq!(
            d(json!({"strategy": {"rollingUpdate": {"maxUnavailable": "150%", "maxSurge": -1}}})),
            [
                format!("{ru}.maxSurge: Invalid value: -1: must be greater than or equal to 0"),
                format!("{ru}.maxUnavailable: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:\"150%\"}}: must not be greater than 100%"),
            ]
        );
        assert_eq!(
            d(json!({"strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}})),
            [format!("{ru}.maxUnavailable: Invalid value: intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}: may not be 0 when `maxSurge` is 0")]
        );
        assert_eq!(
            d(json!({"strategy": {"rollingUpdate": {"maxSurge": "x"}}})),
            [format!("{ru}.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:\"x\"}}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
        );
        assert_eq!(
            d(json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}})),
            [format!(
                "{ru}: Forbidden: may not be specified when strategy `type` is 'Recreate'"
            )]
        );
        assert_eq!(
            d(json!({"strategy": {"type": "BlueGreen"}})),
            ["spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\""]
        );
        assert_eq!(
            d(json!({"minReadySeconds": 30, "progressDeadlineSeconds": 30, "revisionHistoryLimit": -1})),
            [
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds",
            ]
        );
        let replicasets = res("apps", "v1", "replicasets");
        let rs = json!({"metadata": {"name": "r"}, "spec": {"minReadySeconds": -5,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        assert_eq!(
            texts(replicasets, rs),
            ["spec.minReadySeconds: Invalid value: -5: must be greater than or equal to 0"]
        );
    }

    /// `ValidatePodSpec` on the typed spec, in upstream's order: each container's name, image,
    /// policies and security context, then its duplicate name; init containers' names are
    /// unique among regular and init containers, an empty name repeats too; the restart and
    /// DNS policies; the pod's IDs last.
    #[test]
    fn pod_specs_are_validated_typed_in_upstream_order() {
        let pods = res("", "v1", "pods");
        let long = "a".repeat(64);
        let got = texts(
            pods,
            json!({"metadata": {"name": "p"}, "spec": {
                "containers": [
                    {"name": "c", "image": "x", "securityContext": {"runAsUser": -1, "runAsGroup": 2147483648_i64}},
                    {"name": "c", "image": "", "imagePullPolicy": "Sometimes", "terminationMessagePolicy": "Never"},
                    {"name": "", "image": "x"}, {"name": "", "image": "x"},
                    {"name": long, "image": "x"}, {"name": "a.b", "image": "x"}, {"name": "A_b", "image": "x"}],
                "initContainers": [{"name": "c", "image": "x"}, {"name": "i", "image": ""}, {"name": "i", "image": "x"}],
                "dnsPolicy": "Cluster", "restartPolicy": "Sometimes",
                "securityContext": {"runAsUser": 2147483648_i64, "supplementalGroups": [-1]}}}),
        );
        assert_eq!(
            got,
            [
                "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                "spec.containers[0].securityContext.runAsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
                "spec.containers[1].image: Required value",
                "spec.containers[1].terminationMessagePolicy: Unsupported value: \"Never\": supported values: \"File\", \"FallbackToLogsOnError\"",
                "spec.containers[1].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.containers[1].name: Duplicate value: \"c\"",
                "spec.containers[2].name: Required value",
                "spec.containers[3].name: Required value",
                "spec.containers[3].name: Duplicate value: \"\"",
                &format!("spec.containers[4].name: Invalid value: \"{long}\": must be no more than 63 characters"),
                "spec.containers[5].name: Invalid value: \"a.b\": must not contain dots",
                &format!("spec.containers[6].name: Invalid value: \"A_b\": {DNS1123_LABEL_MSG}"),
                "spec.initContainers[0].name: Duplicate value: \"c\"",
                "spec.initContainers[1].image: Required value",
                "spec.initContainers[2].name: Duplicate value: \"i\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
                "spec.securityContext.runAsUser: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.supplementalGroups[0]: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            ]
        );
        // a template is validated by the same function, under its path
        let deployments = res("apps", "v1", "deployments");
        let got = texts(
            deployments,
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": ""}]}}}}),
        );
        assert_eq!(
            got,
            [
                "spec.template.spec.containers[1].image: Required value",
                "spec.template.spec.containers[1].name: Duplicate value: \"c\"",
            ]
        );
    }

    /// An image with surrounding whitespace: a Pod's is invalid (`validateContainersOnlyForPod`,
    /// after the spec), a template's is accepted (`" "` is a token some templates use); only an
    /// empty image is "required".
    #[test]
    fn image_whitespace_is_refused_for_pods_only() {
        let pods = res("", "v1", "pods");
        let got = texts(
            pods,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": " "}],
                "initContainers": [{"name": "i", "image": "busybox "}], "restartPolicy": "Sometimes"}}),
        );
        assert_eq!(
            got,
            [
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.containers[0].image: Invalid value: \" \": must not have leading or trailing whitespace",
                "spec.initContainers[0].image: Invalid value: \"busybox \": must not have leading or trailing whitespace",
            ]
        );
        let replicasets = res("apps", "v1", "replicasets");
        let rs = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": " "}]}}}});
        assert!(texts(replicasets, rs).is_empty());
    }

    /// Empty and repeated pull secret names are accepted (the kubelet skips an empty one), with
    /// upstream's warnings (pkg/api/pod/warnings.go), under the template's path for workloads.
    #[test]
    fn empty_pull_secret_names_are_warnings_not_errors() {
        let pods = res("", "v1", "pods");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}],
            "imagePullSecrets": [{"name": "a"}, {}, {"name": "a"}, {"name": ""}]}});
        assert!(texts(pods, pod.clone()).is_empty());
        let spec: core::PodSpec = serde_json::from_value(pod["spec"].clone()).unwrap();
        assert_eq!(
            pod_spec_warnings(&spec, ""),
            [
                "spec.imagePullSecrets[2].name: duplicate name \"a\"",
                "spec.imagePullSecrets[3].name: duplicate name \"\"",
                "spec.imagePullSecrets[1].name: invalid empty name \"\"",
                "spec.imagePullSecrets[3].name: invalid empty name \"\"",
            ]
        );
        let cronjobs = res("batch", "v1", "cronjobs");
        assert_eq!(
            pod_spec_warnings(&spec, pod_template_path(cronjobs).unwrap())[0],
            "spec.jobTemplate.spec.template.spec.imagePullSecrets[2].name: duplicate name \"a\""
        );
        let one: core::PodSpec =
            serde_json::from_value(json!({"containers": [], "imagePullSecrets": [{"name": "a"}]}))
                .unwrap();
        assert!(pod_spec_warnings(&one, "spec.template").is_empty());
    }

    /// Ephemeral containers (`ValidatePodCreate`, `validateEphemeralContainers`,
    /// `ValidatePodTemplateSpec`): a Pod's are forbidden on create, after the spec's errors,
    /// which include a `targetContainerName` naming no regular or init container (an ephemeral
    /// one does not count); a template may have none; an update is not a create.
    #[test]
    fn ephemeral_containers_cannot_be_created_and_must_target_a_container() {
        let pods = res("", "v1", "pods");
        let spec = json!({"containers": [{"name": "c", "image": "x"}],
            "initContainers": [{"name": "i", "image": "x"}],
            "ephemeralContainers": [
                {"name": "d1", "image": "x", "targetContainerName": "c"},
                {"name": "d2", "image": "x", "targetContainerName": "i"},
                {"name": "d3", "image": "x", "targetContainerName": "d1"},
                {"name": "d4", "image": "x", "targetContainerName": "nope"},
                {"name": "d5", "image": "x", "targetContainerName": ""}]});
        assert_eq!(
            texts(
                pods,
                json!({"metadata": {"name": "p"}, "spec": spec.clone()})
            ),
            [
                "spec.ephemeralContainers[2].targetContainerName: Not found: \"d1\"",
                "spec.ephemeralContainers[3].targetContainerName: Not found: \"nope\"",
                "spec.ephemeralContainers: Forbidden: cannot be set on create",
            ]
        );
        let c = Cause::not_found("f", "\"x\"");
        assert_eq!(
            (c.reason, c.text().as_str()),
            ("FieldValueNotFound", "f: Not found: \"x\"")
        );
        // an update checks the targets but is no create
        let pod = defaulted(
            pods,
            json!({"metadata": {"name": "p"}, "spec": spec.clone()}),
        );
        let got: Vec<String> = check(pods, &pod, Some(&pod))
            .iter()
            .map(Cause::text)
            .collect();
        assert_eq!(
            got,
            [
                "spec.ephemeralContainers[2].targetContainerName: Not found: \"d1\"",
                "spec.ephemeralContainers[3].targetContainerName: Not found: \"nope\"",
            ]
        );
        // templates: a Deployment's (typed) and a Job's (read as JSON by the Job validation)
        let mut good = spec.clone();
        good["ephemeralContainers"] =
            json!([{"name": "d1", "image": "x", "targetContainerName": "c"}]);
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": good.clone()}}});
        assert_eq!(
            texts(res("apps", "v1", "deployments"), deploy),
            ["spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template"]
        );
        good["restartPolicy"] = json!("Never");
        let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": good}}});
        let got = texts(res("batch", "v1", "jobs"), job);
        assert!(
            got.contains(&"spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template".to_string()),
            "{got:?}"
        );
    }

    /// `terminationGracePeriodSeconds` as a request meets it: the defaults set 30 where it is
    /// missing, so `ValidatePodSpec`'s Required is only met by a spec that skipped them; a
    /// negative value is no error: a Pod's is made 1 as it is decoded, a template's is kept with
    /// `warningsForPodSpecAndMeta`'s warning; 0 is kept.
    #[test]
    fn termination_grace_period_as_upstream() {
        let pods = res("", "v1", "pods");
        let pod = |g: Value| {
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}],
                "terminationGracePeriodSeconds": g}})
        };
        let d = defaulted(pods, pod(json!(null)));
        assert_eq!(d["spec"]["terminationGracePeriodSeconds"], 30);
        assert!(texts(pods, pod(json!(null))).is_empty());
        for (g, stored) in [(-5, 1), (-1, 1), (0, 0), (7, 7)] {
            let d = defaulted(pods, pod(json!(g)));
            assert_eq!(d["spec"]["terminationGracePeriodSeconds"], stored, "{g}");
            assert!(texts(pods, pod(json!(g))).is_empty(), "{g}");
        }
        // not defaulted: Required, first
        let mut causes = vec![];
        validate_pod_spec_json(
            &json!({"containers": []}),
            None,
            "spec.template.spec",
            false,
            &mut causes,
        );
        assert_eq!(
            causes.iter().map(Cause::text).collect::<Vec<_>>(),
            [
                "spec.template.spec.terminationGracePeriodSeconds: Required value",
                "spec.template.spec.containers: Required value",
            ]
        );
        // a template keeps a negative value, with a warning
        let deployments = res("apps", "v1", "deployments");
        let deploy = defaulted(
            deployments,
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                    "containers": [{"name": "c", "image": "x"}], "terminationGracePeriodSeconds": -3}}}}),
        );
        assert_eq!(
            deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            -3
        );
        assert!(check(deployments, &deploy, None).is_empty());
        let spec: core::PodSpec =
            serde_json::from_value(deploy["spec"]["template"]["spec"].clone()).unwrap();
        assert_eq!(
            pod_spec_warnings(&spec, "spec.template"),
            ["spec.template.spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"]
        );
        let ok: core::PodSpec =
            serde_json::from_value(json!({"containers": [], "terminationGracePeriodSeconds": 0}))
                .unwrap();
        assert!(pod_spec_warnings(&ok, "").is_empty());
        // an update may not change it (ValidatePodUpdate), but for a negative one set to 1;
        // images, init containers' too, may change
        let stored = defaulted(
            pods,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}],
                "initContainers": [{"name": "i", "image": "x"}], "terminationGracePeriodSeconds": 30}}),
        );
        let update = |g: i64, image: &str| {
            let mut p = stored.clone();
            p["spec"]["terminationGracePeriodSeconds"] = json!(g);
            p["spec"]["initContainers"][0]["image"] = json!(image);
            p["spec"]["containers"][0]["image"] = json!(image);
            p
        };
        let forbidden = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
        let upd = |new: &Value, old: &Value| {
            check(pods, new, Some(old))
                .iter()
                .map(Cause::text)
                .collect::<Vec<_>>()
        };
        assert!(upd(&update(30, "y"), &stored).is_empty());
        assert_eq!(upd(&update(60, "x"), &stored), [forbidden]);
        let negative = update(-1, "x");
        assert!(upd(&update(1, "x"), &negative).is_empty());
        assert_eq!(upd(&update(2, "x"), &negative), [forbidden]);
    }

    /// Go's defaults take an empty string for an unset field: `""` policies are defaulted, not
    /// refused.
    #[test]
    fn empty_policies_are_defaulted() {
        let pods = res("", "v1", "pods");
        let pod = defaulted(
            pods,
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "", "dnsPolicy": "",
                "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "",
                    "terminationMessagePolicy": ""}]}}),
        );
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][0]["terminationMessagePolicy"],
            "File"
        );
        assert!(check(pods, &pod, None).is_empty());
    }

    /// What `ValidatePodSpec` checks beyond the containers, for Pods and templates alike: the
    /// node selector's labels, the scheduling gates, the node name, `activeDeadlineSeconds`
    /// and the tolerations (`ValidateTolerations`); `ValidatePodCreate` refuses a node name
    /// while gated.
    #[test]
    fn scheduling_fields_of_pod_specs_as_upstream() {
        let pods = res("", "v1", "pods");
        let pod = |spec: Value| {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c", "image": "x"}]);
            json!({"metadata": {"name": "p"}, "spec": spec})
        };
        let got = texts(
            pods,
            pod(json!({
                "nodeSelector": {"ok": "", "bad key": "v", "k": "bad value"},
                "schedulingGates": [{"name": "a"}, {"name": "a"}, {"name": "-b"}],
                "nodeName": "Node_1",
                "activeDeadlineSeconds": 0,
                "tolerations": [
                    {"key": "k", "operator": "Exists", "value": "v"},
                    {"key": "k", "operator": "Equal", "value": "-v-"},
                    {"key": "k", "operator": "In", "effect": "NoExec"},
                    {"key": "bad key", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3},
                    {"operator": "Exists"}]})),
        );
        let label_value = crate::validation::is_valid_label_value("bad value").join(";");
        let qualified = |s: &str| crate::validation::is_qualified_name(s)[0].clone();
        let expected = [
            format!("spec.nodeSelector: Invalid value: \"bad key\": {}", qualified("bad key")),
            format!("spec.nodeSelector: Invalid value: \"bad value\": {label_value}"),
            "spec.schedulingGates[1]: Duplicate value: \"a\"".to_string(),
            format!("spec.schedulingGates[2]: Invalid value: \"-b\": {}", qualified("-b")),
            format!("spec.nodeName: Invalid value: \"Node_1\": {DNS1123_SUBDOMAIN_MSG}"),
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive".to_string(),
            "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'".to_string(),
            format!("spec.tolerations[1].operator: Invalid value: \"-v-\": {}", crate::validation::is_valid_label_value("-v-").join(";")),
            "spec.tolerations[2].operator: Unsupported value: \"In\": supported values: \"Equal\", \"Exists\"".to_string(),
            "spec.tolerations[2].effect: Unsupported value: \"NoExec\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"".to_string(),
            format!("spec.tolerations[3].key: Invalid value: \"bad key\": {}", qualified("bad key")),
            // ValidatePodCreate
            "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"
                .to_string(),
        ];
        assert_eq!(got, expected);
        // a template's too
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}],
                "tolerations": [{"operator": "Equal"}]}}}});
        assert_eq!(
            texts(res("apps", "v1", "deployments"), deploy),
            ["spec.template.spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""]
        );
        // ValidatePodCreate: no node while gated
        assert_eq!(
            texts(pods, pod(json!({"nodeName": "n1", "schedulingGates": [{"name": "g"}]}))),
            ["spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"]
        );
        assert!(texts(pods, pod(json!({"nodeName": "n1", "schedulingGates": []}))).is_empty());
    }

    /// kube-apiserver's `--allow-privileged=false` (`ValidateSecurityContext`): a privileged
    /// container of any kind, in a Pod or a workload's template, is refused first among its
    /// security context's errors; allowed by default.
    #[test]
    fn privileged_containers_follow_the_cluster_policy() {
        let pods = res("", "v1", "pods");
        let privileged = json!({"privileged": true, "runAsUser": -1});
        let spec = json!({"containers": [{"name": "c", "image": "x", "securityContext": privileged},
                {"name": "d", "image": "x", "securityContext": {"privileged": false}}],
            "initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": true}}]});
        let pod = defaulted(
            pods,
            json!({"metadata": {"name": "p"}, "spec": spec.clone()}),
        );
        let run_as = "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive";
        let texts_under = |allow: bool, r: &Resource, obj: &Value, old: Option<&Value>| {
            with_privileged_policy(allow, || check(r, obj, old))
                .iter()
                .map(Cause::text)
                .collect::<Vec<_>>()
        };
        assert_eq!(texts_under(true, pods, &pod, None), [run_as]);
        assert_eq!(check(pods, &pod, None).len(), 1, "allowed outside a policy");
        assert_eq!(
            texts_under(false, pods, &pod, None),
            [
                "spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy",
                run_as,
                "spec.initContainers[0].securityContext.privileged: Forbidden: disallowed by cluster policy",
            ]
        );
        // an update (ephemeral containers are checked too), a Deployment's and a Job's template
        let mut eph = pod.clone();
        eph["spec"]["ephemeralContainers"] =
            json!([{"name": "e", "image": "x", "securityContext": {"privileged": true}}]);
        assert!(texts_under(false, pods, &eph, Some(&pod)).contains(
            &"spec.ephemeralContainers[0].securityContext.privileged: Forbidden: disallowed by cluster policy".to_string()
        ));
        let mut template = json!({"metadata": {"labels": {"a": "b"}}, "spec": {
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}});
        let deployments = res("apps", "v1", "deployments");
        let deploy = defaulted(
            deployments,
            json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template.clone()}}),
        );
        let msg = "spec.template.spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy";
        assert_eq!(texts_under(false, deployments, &deploy, None), [msg]);
        assert!(texts_under(true, deployments, &deploy, None).is_empty());
        let jobs = res("batch", "v1", "jobs");
        template["spec"]["restartPolicy"] = json!("Never");
        let job = defaulted(
            jobs,
            json!({"metadata": {"name": "j"}, "spec": {"template": template}}),
        );
        assert!(texts_under(false, jobs, &job, None).contains(&msg.to_string()));
        assert!(!texts_under(true, jobs, &job, None).contains(&msg.to_string()));
    }
}
