//! Conformance: every `auth_field_decode` case of `keyring.json` against
//! [`decode_auth_field`] and [`decode_auth_field_bytes`] (kubernetes
//! `pkg/credentialprovider/config.go` `decodeDockerConfigFieldAuth`).
//!
//! A case has `auth` and either `error` (the exact Go text) or `username` and `password`
//! (the strings, where invalid UTF-8 shows as U+FFFD) plus, optionally, `username_hex` and
//! `password_hex` (the exact bytes). All mismatches are collected and reported together.

#[path = "../../../testdata/vectors_loader.rs"]
mod vectors;

use kubepull_core::dockerconfig::{decode_auth_field, decode_auth_field_bytes};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn auth_field_vectors() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (path, doc) in vectors::load("keyring.json") {
        let Some(cases) = doc["auth_field_decode"].as_array() else {
            failures.push(format!("{}: no auth_field_decode list", path.display()));
            continue;
        };
        for (i, case) in cases.iter().enumerate() {
            checked += 1;
            let ctx = format!("{} auth_field_decode[{i}]", path.display());
            let Some(auth) = case["auth"].as_str() else {
                failures.push(format!("{ctx}: case has no string `auth`"));
                continue;
            };
            let ctx = format!("{ctx} (auth {auth:?})");
            let got = decode_auth_field(auth);
            let got_bytes = decode_auth_field_bytes(auth);
            match (&got, case["error"].as_str()) {
                (Err(e), Some(want)) => {
                    if e.to_string() != want {
                        failures.push(format!("{ctx}: error {:?}, want {want:?}", e.to_string()));
                    }
                    if got_bytes.as_ref().err() != Some(e) {
                        failures.push(format!("{ctx}: byte and string decoders disagree"));
                    }
                }
                (Err(e), None) => {
                    failures.push(format!("{ctx}: error {:?}, want success", e.to_string()))
                }
                (Ok(_), Some(want)) => {
                    failures.push(format!("{ctx}: decoded, want error {want:?}"))
                }
                (Ok((u, p)), None) => {
                    if Some(u.as_str()) != case["username"].as_str() {
                        failures.push(format!("{ctx}: username {u:?}, want {}", case["username"]));
                    }
                    // never print a password, even a test one
                    if Some(p.as_str()) != case["password"].as_str() {
                        failures.push(format!("{ctx}: password differs from the vector"));
                    }
                    match &got_bytes {
                        Ok((ub, pb)) => {
                            if let Some(want) = case["username_hex"].as_str() {
                                if hex(ub) != want {
                                    failures.push(format!(
                                        "{ctx}: username bytes {}, want {want}",
                                        hex(ub)
                                    ));
                                }
                            }
                            if let Some(want) = case["password_hex"].as_str() {
                                if hex(pb) != want {
                                    failures.push(format!(
                                        "{ctx}: password bytes differ from the vector"
                                    ));
                                }
                            }
                        }
                        Err(e) => failures.push(format!("{ctx}: byte decoder failed with {e}")),
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no auth_field_decode vectors were checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} auth_field_decode cases mismatch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
