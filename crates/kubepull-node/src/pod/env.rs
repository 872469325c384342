//! A container's environment from the pod spec (`pkg/kubelet/kubelet_pods.go`,
//! `makeEnvironmentVariables`) and the pod's pull Secrets.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::{Api, Client};

use kubepull_core::keyring::PullSecret;

/// Why env resolution failed: the `CreateContainerConfigError` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub String);

/// Resolves a container's environment as the kubelet's `makeEnvironmentVariables` does for the
/// sources kubepull serves: `envFrom` (Secret/ConfigMap with prefix), `env` values,
/// `valueFrom.secretKeyRef`/`configMapKeyRef` (honouring `optional`), `fieldRef` for pod metadata.
/// `$(VAR)` references are expanded against earlier variables.
pub async fn resolve_env(
    client: &Client,
    pod: &Pod,
    c: &Container,
    node_ip: &str,
    pod_ips: &[String],
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let enable_links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let service_env = service_env(
        &services_for(client, &ns, enable_links).await?,
        &ns,
        enable_links,
    );
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = out.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            out.push((k, v));
        }
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        if let Some(r) = &ef.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match secrets.get_opt(&r.name).await {
                Ok(Some(s)) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        set(
                            &mut out,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into(),
                        );
                    }
                }
                Ok(None) if optional => {}
                Ok(None) => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                Err(e) => return Err(EnvError(api_error_text(&e))),
            }
        }
        if let Some(r) = &ef.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match cms.get_opt(&r.name).await {
                Ok(Some(m)) => {
                    for (k, v) in m.data.unwrap_or_default() {
                        set(&mut out, format!("{prefix}{k}"), v);
                    }
                }
                Ok(None) if optional => {}
                Ok(None) => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
                Err(e) => return Err(EnvError(api_error_text(&e))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match secrets.get_opt(&r.name).await {
                    Ok(Some(s)) => match s.data.unwrap_or_default().get(&r.key) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {}/{}",
                                r.key, ns, r.name
                            )))
                        }
                    },
                    Ok(None) if optional => continue,
                    Ok(None) => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                    Err(err) => return Err(EnvError(api_error_text(&err))),
                }
            } else if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match cms.get_opt(&r.name).await {
                    Ok(Some(m)) => match m.data.unwrap_or_default().get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key, ns, r.name
                            )))
                        }
                    },
                    Ok(None) if optional => continue,
                    Ok(None) => {
                        return Err(EnvError(format!("configmap \"{}\" not found", r.name)))
                    }
                    Err(err) => return Err(EnvError(api_error_text(&err))),
                }
            } else if let Some(f) = &vf.field_ref {
                match f.field_path.as_str() {
                    "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                    "metadata.namespace" => ns.clone(),
                    "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
                    "spec.nodeName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                    "spec.serviceAccountName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_default(),
                    // kubelet_pods.go podFieldSelectorRuntimeValue: podIPs joined with ","
                    "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
                    "status.podIPs" => pod_ips.join(","),
                    "status.hostIP" | "status.hostIPs" => node_ip.to_string(),
                    // kubelet podFieldSelectorRuntimeValue → fieldpath.ExtractFieldPathAsString:
                    // one label or annotation (a Job's JOB_COMPLETION_INDEX)
                    other
                        if other.starts_with("metadata.labels['")
                            || other.starts_with("metadata.annotations['") =>
                    {
                        super::volumes::field_value(pod, other).map_err(EnvError)?
                    }
                    other => {
                        return Err(EnvError(format!("unsupported fieldRef {other:?}")));
                    }
                }
            } else {
                String::new()
            }
        } else {
            // references see the service variables under the container's own
            // (`expansion.MappingFuncFor(tmpEnv, serviceEnv)`)
            let scope: Vec<(String, String)> =
                service_env.iter().chain(out.iter()).cloned().collect();
            expand(e.value.as_deref().unwrap_or(""), &scope)
        };
        set(&mut out, e.name.clone(), value);
    }
    // the service variables the container does not define itself
    for (k, v) in service_env {
        if !out.iter().any(|(n, _)| *n == k) {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// The Services whose variables a pod of `ns` gets: `default/kubernetes` always, the
/// namespace's own when `enableServiceLinks` (the kubelet's `getServiceEnvVarMap` reads them
/// from its informer; the node agent asks the API server).
async fn services_for(
    client: &Client,
    ns: &str,
    enable_links: bool,
) -> Result<Vec<Service>, EnvError> {
    let mut out = Vec::new();
    let default: Api<Service> = Api::namespaced(client.clone(), "default");
    match default.get_opt("kubernetes").await {
        Ok(Some(s)) => out.push(s),
        Ok(None) => {}
        Err(e) => {
            return Err(EnvError(format!(
                "failed to list services: {}",
                api_error_text(&e)
            )))
        }
    }
    if enable_links {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        match api.list(&Default::default()).await {
            Ok(l) => out.extend(l.items),
            Err(e) => {
                return Err(EnvError(format!(
                    "failed to list services: {}",
                    api_error_text(&e)
                )))
            }
        }
    }
    Ok(out)
}

/// The environment of Docker-link style service variables a pod of `ns` gets
/// (`pkg/kubelet/kubelet_pods.go` `getServiceEnvVarMap` and `pkg/kubelet/envvars/envvars.go`
/// `FromServices`): for the master service `default/kubernetes` always, for the namespace's
/// own Services when `enable_links`; Services without a cluster IP (headless) give nothing.
pub fn service_env(services: &[Service], ns: &str, enable_links: bool) -> Vec<(String, String)> {
    let ip_set = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|sp| sp.cluster_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty() && ip != "None")
    };
    let mut chosen: std::collections::BTreeMap<String, &Service> = Default::default();
    for s in services.iter().filter(|s| ip_set(s)) {
        let name = s.metadata.name.clone().unwrap_or_default();
        let sns = s.metadata.namespace.as_deref().unwrap_or("");
        if sns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(s);
        } else if sns == ns && enable_links {
            chosen.insert(name, s);
        }
    }
    let var = |s: &str| s.replace('-', "_").to_uppercase();
    let mut out = Vec::new();
    for (name, s) in chosen {
        let Some(spec) = s.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = var(&name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        let port_name = format!("{prefix}_SERVICE_PORT");
        out.push((port_name.clone(), first.port.to_string()));
        for p in &ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{port_name}_{}", var(n)), p.port.to_string()));
            }
        }
        // makeLinkVariables: Docker-compatible variables
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".to_string());
            let host_port = match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]:{}", p.port),
                _ => format!("{ip}:{}", p.port),
            };
            let url = format!("{}://{host_port}", proto.to_lowercase());
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), proto.to_lowercase()));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.clone()));
        }
    }
    out
}

/// `$(VAR)` expansion (`third_party/forked/golang/expansion`): `$$` escapes, unknown references
/// stay as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let b = input.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push_str(&input[last..i]);
                out.push('$');
                i += 2;
                last = i;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = input[i + 2..].find(')') {
                    let name = &input[i + 2..i + 2 + end];
                    out.push_str(&input[last..i]);
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&input[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    last = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&input[last..]);
    out
}

pub(crate) fn api_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Fetches the pod's pull Secrets; returns the usable ones and the names that could not be read.
pub async fn fetch_pull_secrets(client: &Client, pod: &Pod) -> (Vec<PullSecret>, Vec<String>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut found = vec![];
    let mut missing = vec![];
    for r in pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default()
    {
        let name = r.name.clone();
        if name.is_empty() {
            continue;
        }
        match api.get(&name).await {
            Ok(s) => found.push(PullSecret {
                name: name.clone(),
                secret_type: s.type_.clone().unwrap_or_default(),
                data: s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            }),
            Err(_) => missing.push(name),
        }
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
        assert_eq!(expand("plain", &env), "plain");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// The variables kubelet's `envvars.FromServices` writes (its envvars_test.go cases).
    #[test]
    fn service_variables_as_the_kubelet_writes_them() {
        let services = vec![
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            svc(
                "team",
                "my-db",
                "10.96.3.4",
                serde_json::json!([{"port": 5432}, {"name": "metrics", "port": 9187, "protocol": "UDP"}]),
            ),
            svc(
                "team",
                "headless",
                "None",
                serde_json::json!([{"port": 80}]),
            ),
            svc(
                "other",
                "elsewhere",
                "10.96.9.9",
                serde_json::json!([{"port": 80}]),
            ),
        ];
        let env = service_env(&services, "team", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(
            get(&env, "KUBERNETES_PORT_443_TCP"),
            Some("tcp://10.96.0.1:443")
        );
        assert_eq!(get(&env, "KUBERNETES_PORT_443_TCP_PROTO"), Some("tcp"));
        assert_eq!(get(&env, "KUBERNETES_PORT_443_TCP_PORT"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(get(&env, "MY_DB_SERVICE_HOST"), Some("10.96.3.4"));
        assert_eq!(get(&env, "MY_DB_SERVICE_PORT"), Some("5432"));
        assert_eq!(get(&env, "MY_DB_SERVICE_PORT_METRICS"), Some("9187"));
        assert_eq!(
            get(&env, "MY_DB_PORT_9187_UDP"),
            Some("udp://10.96.3.4:9187")
        );
        assert!(get(&env, "HEADLESS_SERVICE_HOST").is_none());
        assert!(get(&env, "ELSEWHERE_SERVICE_HOST").is_none());
        // enableServiceLinks: false keeps the master service only
        let env = service_env(&services, "team", false);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert!(get(&env, "MY_DB_SERVICE_HOST").is_none());
    }
}
