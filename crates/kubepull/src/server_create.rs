//! `kubepull create secret docker-registry` without `--dry-run=client`: the Secret goes to the
//! API server named by the kubeconfig (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`), in the
//! namespace of `-n` or the context, as `kubectl create` does (`POST …/secrets?fieldManager=
//! kubectl-create`). Errors print as kubectl prints them: `error: failed to create secret <server
//! error>`; the server's messages never contain the secret's data.

use std::path::PathBuf;

/// Where and how to create.
pub struct Target {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `-n` (else the context's namespace, else `default`).
    pub namespace: Option<String>,
    /// `--dry-run=server`.
    pub server_dry_run: bool,
    /// `--save-config` (the annotation is already in the object).
    pub save_config: bool,
}

/// What to print.
pub enum Output {
    /// `-o json`.
    Json,
    /// `-o yaml`.
    Yaml,
    /// `-o name`.
    Name,
    /// `secret/NAME created`.
    Created,
}

/// Creates the Secret; returns what to print, or the error line (without `error: `).
pub fn create(secret_json: &[u8], t: &Target, out: Output) -> Result<Vec<u8>, String> {
    let mut obj: serde_json::Value =
        serde_json::from_slice(secret_json).map_err(|e| format!("internal: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let options = kube::config::KubeConfigOptions {
            context: t.context.clone(),
            ..Default::default()
        };
        let config = match &t.kubeconfig {
            Some(p) => {
                let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| e.to_string())?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| e.to_string())?
            }
            None => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("no kubeconfig: {e} (set KUBECONFIG or --kubeconfig)"))?,
        };
        let ns = t
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("creationTimestamp");
        }
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(obj).map_err(|e| format!("internal: {e}"))?;
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, &ns);
        let pp = kube::api::PostParams {
            dry_run: t.server_dry_run,
            field_manager: Some("kubectl-create".into()),
        };
        let _ = t.save_config;
        let created = api.create(&pp, &secret).await.map_err(|e| match e {
            kube::Error::Api(s) => format!("failed to create secret {}", s.message),
            other => format!("failed to create secret {other}"),
        })?;
        let name = created.metadata.name.clone().unwrap_or_default();
        let suffix = if t.server_dry_run {
            " (server dry run)"
        } else {
            ""
        };
        Ok(match out {
            Output::Created => format!("secret/{name} created{suffix}\n").into_bytes(),
            Output::Name => format!("secret/{name}\n").into_bytes(),
            Output::Json => {
                let mut v = serde_json::to_value(&created).map_err(|e| e.to_string())?;
                v["apiVersion"] = serde_json::json!("v1");
                v["kind"] = serde_json::json!("Secret");
                let mut b = Vec::new();
                let f = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                let mut ser = serde_json::Serializer::with_formatter(&mut b, f);
                serde::Serialize::serialize(&v, &mut ser).map_err(|e| e.to_string())?;
                b.push(b'\n');
                b
            }
            Output::Yaml => {
                let mut v = serde_json::to_value(&created).map_err(|e| e.to_string())?;
                v["apiVersion"] = serde_json::json!("v1");
                v["kind"] = serde_json::json!("Secret");
                let j = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
                kubepull_core::goyaml::json_to_yaml(&j)
                    .map_err(|e| e.to_string())?
                    .into_bytes()
            }
        })
    })
}
