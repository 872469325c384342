//! kubepull's tools for real Kubernetes clusters. They talk to the API server through kube-rs
//! only, with nothing a conformant API server (AKS, EKS, GKE, k3s, `kubepull up`) does not
//! offer, and they are read-only unless their name says otherwise.
//!
//! - [`doctor`]: why a pod cannot pull its image — the credentials the kubelet tries, what the
//!   registry answers to each, the one cause and the command that fixes it. The rules
//!   (message classification, secret traps, the verdict) live in
//!   [`kubepull_core::diagnose`]; this crate gathers the facts and probes the registry.
//! - [`operator`]: copies a validated pull secret into selected namespaces and onto new pods
//!   (admission webhook) or ServiceAccounts, race-free, rotated, least-privilege.

pub mod doctor;
pub mod operator;

/// Connects with kubectl's rules: `--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`,
/// then in-cluster; `--context` picks the context. Returns the client and the context's
/// namespace.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<(kube::Client, String), String> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| e.to_string())?
        }
        None => match kube::Config::from_kubeconfig(&options).await {
            Ok(c) => c,
            Err(e) if context.is_none() => kube::Config::incluster()
                .map_err(|_| format!("{e} (set KUBECONFIG or --kubeconfig)"))?,
            Err(e) => return Err(e.to_string()),
        },
    };
    let ns = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    Ok((client, ns))
}
