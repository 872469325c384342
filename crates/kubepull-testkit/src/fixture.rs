//! The set-up pull tests share: a registry with one user serving an image, that user's
//! credential as the kubelet's keyring hands it over for a pod's pull secret, and that secret
//! as a manifest file for `kubepull pull --pull-secret`.

use std::path::Path;

use kubepull_core::keyring::{Credential, CredentialSource};

use crate::{Image, Registry};

/// A registry with the user `user`/`pass` (htpasswd), serving `img` as `REPO:v1`; and that
/// image's name (`HOST/REPO:v1`). Pushes with a runtime of its own: call it outside any async
/// runtime (a plain `#[test]`).
pub fn serve(user: &str, pass: &str, repo: &str, img: &Image) -> (Registry, String) {
    let reg = Registry::start(&[(user, pass)]);
    let name = push(&reg, repo, "v1", img);
    (reg, name)
}

/// Pushes `img` to `reg` as `repo:tag` (outside any async runtime, as [`serve`]); returns the
/// image's name, `HOST/REPO:TAG`.
pub fn push(reg: &Registry, repo: &str, tag: &str, img: &Image) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the push")
        .block_on(reg.push(repo, tag, img));
    format!("{}/{repo}:{tag}", reg.host())
}

/// `user`/`pass` for `host` as the keyring gives them for a pod's pull secret `regcred`.
pub fn secret_credential(host: &str, user: &str, pass: &str) -> Credential {
    Credential {
        username: user.into(),
        password: pass.into(),
        email: String::new(),
        source: CredentialSource::Secret {
            name: "regcred".into(),
        },
        config_key: host.into(),
        keyring_key: host.into(),
    }
}

/// Writes `DIR/NAME.yaml`, a `kubernetes.io/dockerconfigjson` Secret named `name` holding
/// `user`/`pass` for `host`; returns its path.
pub fn pull_secret_file(dir: &Path, name: &str, host: &str, user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let cfg = serde_json::json!({"auths": {host: {"username": user, "password": pass}}});
    let b64 = base64::engine::general_purpose::STANDARD.encode(cfg.to_string());
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &p,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64}\n"),
    )
    .expect("write the pull secret");
    p.display().to_string()
}
