//! Judging the source Secret with the same rules `kubepull lint` applies, and fingerprinting it
//! without ever keeping or printing its contents.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kubepull_core::lint::check_pull_secret_payload;
use sha2::{Digest, Sha256};

use super::plan::SourceState;

const PULL_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// SHA-256 (hex) of the Secret's type and data, in key order: what copies record to tell a
/// rotated source from the one they were written from.
pub fn fingerprint(secret: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(secret.type_.as_deref().unwrap_or("Opaque").as_bytes());
    h.update([0]);
    for (k, v) in secret.data.iter().flatten() {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.0.len() as u64).to_be_bytes());
        h.update(&v.0);
    }
    let d = h.finalize();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the source may be propagated: a pull-secret type, and no payload problem the kubelet
/// would trip on (`kubepull lint`'s rules). Messages name the rule and the fix, never the data.
pub fn judge(secret: Option<&Secret>) -> SourceState {
    let Some(secret) = secret else {
        return SourceState::Missing;
    };
    let ty = secret.type_.as_deref().unwrap_or("Opaque");
    if !PULL_TYPES.contains(&ty) {
        return SourceState::Invalid {
            reason: "SourceWrongType",
            message: format!(
                "the source has type {ty}; the kubelet reads only kubernetes.io/dockerconfigjson \
                 and kubernetes.io/dockercfg (recreate it with kubectl create secret docker-registry)"
            ),
        };
    }
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let problems = check_pull_secret_payload(ty, &data);
    if let Some(p) = problems.first() {
        let more = if problems.len() > 1 {
            format!(" (and {} more problem(s))", problems.len() - 1)
        } else {
            String::new()
        };
        return SourceState::Invalid {
            reason: "SourceInvalid",
            message: format!("{}: {}; fix: {}{more}", p.rule, p.message, p.fix),
        };
    }
    SourceState::Valid {
        hash: fingerprint(secret),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(ty: &str, key: &str, value: &str) -> Secret {
        Secret {
            type_: Some(ty.into()),
            data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    const GOOD: &str = r#"{"auths":{"registry.example:5000":{"username":"u","password":"hunter2-secret","auth":"dTpodW50ZXIyLXNlY3JldA=="}}}"#;

    #[test]
    fn good_source_is_valid_and_hash_tracks_data() {
        let s = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", GOOD);
        let SourceState::Valid { hash } = judge(Some(&s)) else {
            panic!("valid source judged invalid")
        };
        let rotated = GOOD
            .replace("hunter2", "hunter3")
            .replace("dTpodW50ZXIyLXNlY3JldA==", "dTpodW50ZXIzLXNlY3JldA==");
        let s2 = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &rotated,
        );
        let SourceState::Valid { hash: h2 } = judge(Some(&s2)) else {
            panic!("rotated source judged invalid")
        };
        assert_ne!(hash, h2);
        assert_eq!(hash, fingerprint(&s));
        assert!(!hash.contains("hunter"));
    }

    #[test]
    fn broken_sources_are_refused_without_quoting_them() {
        assert_eq!(judge(None), SourceState::Missing);
        let opaque = secret("Opaque", ".dockerconfigjson", GOOD);
        assert!(matches!(
            judge(Some(&opaque)),
            SourceState::Invalid {
                reason: "SourceWrongType",
                ..
            }
        ));
        let legacy = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"registry.example":{"auth":"dTpodW50ZXIyLXNlY3JldA=="}}"#,
        );
        let store_only = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"credsStore":"desktop"}"#,
        );
        let mismatch = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"auths":{"r.example":{"username":"u","password":"hunter2-secret","auth":"dTpvdGhlcg=="}}}"#,
        );
        let wrong_key = secret("kubernetes.io/dockerconfigjson", ".dockercfg", GOOD);
        for s in [legacy, store_only, mismatch, wrong_key] {
            match judge(Some(&s)) {
                SourceState::Invalid { reason, message } => {
                    assert_eq!(reason, "SourceInvalid");
                    assert!(message.contains("fix:"), "{message}");
                    assert!(!message.contains("hunter2"), "{message}");
                    assert!(!message.contains("dTpodW50ZXIy"), "{message}");
                }
                other => panic!("broken source accepted: {other:?}"),
            }
        }
    }
}
