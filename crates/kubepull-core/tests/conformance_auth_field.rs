//! Conformance: every `auth_field_decode` case of `keyring.json` (kubelet
//! `decodeDockerConfigFieldAuth`).

#[path = "../../../testdata/vectors_loader.rs"]
mod vectors;

use kubepull_core::dockerconfig::decode_auth_field;

#[test]
fn auth_field_vectors() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (path, doc) in vectors::load("keyring.json") {
        for case in doc["auth_field_decode"].as_array().into_iter().flatten() {
            checked += 1;
            let auth = case["auth"].as_str().unwrap_or_default();
            let got = decode_auth_field(auth);
            let ctx = format!("{} auth {auth:?}", path.display());
            match (got, case["error"].as_str()) {
                (Err(e), Some(want)) if e.to_string() == want => {}
                (Err(e), want) => failures.push(format!("{ctx}: error {e}, want {want:?}")),
                (Ok(_), Some(want)) => failures.push(format!("{ctx}: decoded, want error {want}")),
                (Ok((u, p)), None) => {
                    if Some(u.as_str()) != case["username"].as_str() {
                        failures.push(format!("{ctx}: username {u:?}, want {}", case["username"]));
                    }
                    if Some(p.as_str()) != case["password"].as_str() {
                        failures.push(format!("{ctx}: password differs from the vector"));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no auth_field_decode vectors were checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
