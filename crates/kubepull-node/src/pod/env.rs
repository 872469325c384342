//! A container's environment from the pod spec (`pkg/kubelet/kubelet_pods.go`,
//! `makeEnvironmentVariables`) and the pod's pull Secrets.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
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
            expand(e.value.as_deref().unwrap_or(""), &out)
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
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
}
