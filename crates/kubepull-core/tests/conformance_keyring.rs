//! Conformance: `registry_key_normalization`, `url_match` and every `lookups` case of
//! `keyring.json` (kubelet `pkg/credentialprovider`).

#[path = "../../../testdata/vectors_loader.rs"]
mod vectors;

use std::collections::BTreeMap;

use kubepull_core::dockerconfig::{decode_dockercfg, decode_dockerconfigjson};
use kubepull_core::keyring::{
    normalize_registry_key, resolve, resolve_lookup_key, urls_match, Credential, CredentialSource,
    Keyring, PullSecret,
};
use serde_json::Value;

fn secrets_of(case: &Value) -> Vec<PullSecret> {
    case["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| PullSecret {
            name: s["name"].as_str().unwrap_or_default().to_string(),
            secret_type: s["type"].as_str().unwrap_or_default().to_string(),
            data: s["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().unwrap_or_default().as_bytes().to_vec(),
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        })
        .collect()
}

/// Runs one lookup case: `Ok((lookup_key, matched keys, credentials))` or the error text.
fn run_lookup(case: &Value) -> Result<(String, Vec<String>, Vec<Credential>), String> {
    let image = case["image"].as_str().unwrap_or_default();
    let secrets = secrets_of(case);
    let node = match &case["node_config_json"] {
        Value::Null => None,
        v => Some(decode_dockerconfigjson(v.to_string().as_bytes()).map_err(|e| e.to_string())?),
    };
    let raw_map = match &case["dockercfg"] {
        Value::Null => None,
        v => Some(decode_dockercfg(v.to_string().as_bytes()).map_err(|e| e.to_string())?),
    };
    if case["raw_lookup"].as_bool() != Some(true) && raw_map.is_none() {
        let r = resolve(image, &secrets, node.as_ref()).map_err(|e| e.to_string())?;
        return Ok((r.lookup_key, r.matched_keys, r.credentials));
    }
    // Upstream unit-test style: the string goes to Lookup unchanged.
    if let Some(cfg) = raw_map {
        let mut k = Keyring::new();
        k.add(&cfg, CredentialSource::Dockercfg);
        let l = k.lookup_detailed(image);
        return Ok((image.to_string(), l.matched_keys, l.credentials));
    }
    let r = resolve_lookup_key(image, &secrets, node.as_ref()).map_err(|e| e.to_string())?;
    Ok((r.lookup_key, r.matched_keys, r.credentials))
}

#[test]
fn keyring_vectors() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (path, doc) in vectors::load("keyring.json") {
        let file = path.display().to_string();
        for c in doc["registry_key_normalization"]
            .as_array()
            .into_iter()
            .flatten()
        {
            checked += 1;
            let key = c["config_key"].as_str().unwrap_or_default();
            let got = normalize_registry_key(key);
            let want = if c["skipped"].as_bool() == Some(true) {
                None
            } else {
                c["keyring_key"].as_str().map(str::to_string)
            };
            if got != want {
                failures.push(format!(
                    "{file}: normalize {key:?}: got {got:?}, want {want:?}"
                ));
            }
        }
        for c in doc["url_match"].as_array().into_iter().flatten() {
            checked += 1;
            let (g, t) = (
                c["glob"].as_str().unwrap_or_default(),
                c["target"].as_str().unwrap_or_default(),
            );
            let want = c["match"].as_bool().unwrap_or(false);
            if urls_match(g, t) != want {
                failures.push(format!("{file}: url_match {g:?} {t:?}: want {want}"));
            }
        }
        for c in doc["lookups"].as_array().into_iter().flatten() {
            checked += 1;
            let id = format!("{file} {}", c["id"].as_str().unwrap_or("?"));
            // Error texts marked go_toolchain_sensitive differ between Go versions; for those
            // only the outcome (error or not, and the credentials) is compared.
            let sensitive = !c["go_toolchain_sensitive"].is_null();
            match (run_lookup(c), c["error"].as_str()) {
                (Err(e), Some(want)) => {
                    if e != want && !sensitive {
                        failures.push(format!("{id}: error {e:?}, want {want:?}"));
                    }
                }
                (Err(e), None) => failures.push(format!("{id}: unexpected error {e:?}")),
                (Ok(_), Some(want)) => failures.push(format!("{id}: no error, want {want:?}")),
                (Ok((key, matched, creds)), None) => {
                    if Some(key.as_str()) != c["lookup_key"].as_str() {
                        failures.push(format!(
                            "{id}: lookup_key {key:?}, want {}",
                            c["lookup_key"]
                        ));
                    }
                    if Some(!creds.is_empty()) != c["found"].as_bool() {
                        failures.push(format!(
                            "{id}: found {}, want {}",
                            !creds.is_empty(),
                            c["found"]
                        ));
                    }
                    let want_keys: Vec<&str> = c["matched_keyring_keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if matched != want_keys {
                        failures.push(format!(
                            "{id}: matched keys {matched:?}, want {want_keys:?}"
                        ));
                    }
                    let want_creds = c["credentials"].as_array().cloned().unwrap_or_default();
                    if creds.len() != want_creds.len() {
                        failures.push(format!(
                            "{id}: {} credentials, want {}",
                            creds.len(),
                            want_creds.len()
                        ));
                    }
                    for (i, (got, want)) in creds.iter().zip(&want_creds).enumerate() {
                        let fields = [
                            ("username", got.username.clone()),
                            ("password", got.password.clone()),
                            ("email", got.email.clone()),
                            ("from", got.source.to_string()),
                            ("credential_hash_sha256", got.credential_hash()),
                        ];
                        for (name, value) in fields {
                            if Some(value.as_str()) != want[name].as_str() {
                                let shown = if name == "password" {
                                    "<differs>".to_string()
                                } else {
                                    value
                                };
                                failures.push(format!(
                                    "{id}: credential {i} {name}: got {shown}, want {}",
                                    if name == "password" {
                                        Value::from("<vector>")
                                    } else {
                                        want[name].clone()
                                    }
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no keyring vectors were checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
