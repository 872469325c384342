//! Property tests for the docker config decoders and the Go-compatible JSON parser: no input
//! panics, deep nesting is an error (never a stack overflow), what `serde_json` writes decodes to
//! the same entries, and the parser agrees with `serde_json` on which documents are valid.

use kubepull_core::dockerconfig::{
    decode_auth_field, decode_dockercfg, decode_dockerconfigjson, inspect_config, DockerConfigEntry,
};
use kubepull_core::gojson::decode::{parse, validate, Value};
use proptest::prelude::*;

/// JSON-ish text from the bytes that drive the grammar. No `d`/`D`, so no `\u` escape can
/// spell a surrogate (which `serde_json` rejects and Go accepts).
fn jsonish() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[{}\[\]":, 0-9abcefnlrstu\\/.+E-]{0,40}"#).unwrap()
}

fn entry() -> impl Strategy<Value = DockerConfigEntry> {
    (any::<String>(), any::<String>(), any::<String>()).prop_map(|(username, password, email)| {
        DockerConfigEntry {
            username,
            password,
            email,
        }
    })
}

/// Unique registry keys with entries, in a chosen order.
fn entries() -> impl Strategy<Value = Vec<(String, DockerConfigEntry)>> {
    proptest::collection::vec((any::<String>(), entry()), 0..6).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect()
    })
}

fn to_json(entries: &[(String, DockerConfigEntry)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, e) in entries {
        map.insert(
            k.clone(),
            serde_json::json!({"username": e.username, "password": e.password, "email": e.email}),
        );
    }
    serde_json::Value::Object(map).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_dockerconfigjson(&data);
        let _ = decode_dockercfg(&data);
        let _ = inspect_config(&data);
        let _ = parse(&data);
        if let Ok(s) = std::str::from_utf8(&data) {
            let _ = decode_auth_field(s);
        }
    }

    #[test]
    fn never_panics_on_jsonish(s in jsonish()) {
        let _ = decode_dockerconfigjson(s.as_bytes());
        let _ = decode_dockercfg(s.as_bytes());
        let _ = inspect_config(s.as_bytes());
        let _ = decode_auth_field(&s);
    }

    #[test]
    fn validity_agrees_with_serde_json(s in jsonish()) {
        let ours = validate(s.as_bytes()).is_ok();
        let theirs = serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok();
        prop_assert_eq!(ours, theirs, "input {:?}", s);
    }

    #[test]
    fn valid_json_parses_like_serde_json(v in arb_json()) {
        let text = v.to_string();
        let ours = parse(text.as_bytes()).unwrap();
        prop_assert!(same(&ours, &v), "input {}", text);
    }

    #[test]
    fn serde_written_configs_round_trip(es in entries()) {
        let inner = to_json(&es);
        let wrapped = format!(r#"{{"auths":{inner},"HttpHeaders":{{"User-Agent":"x"}}}}"#);
        prop_assert_eq!(&decode_dockerconfigjson(wrapped.as_bytes()).unwrap().entries, &es);
        prop_assert_eq!(&decode_dockercfg(inner.as_bytes()).unwrap().entries, &es);
        let raw = inspect_config(wrapped.as_bytes()).unwrap();
        prop_assert_eq!(raw.auths.len(), es.len());
        for ((k, e), (rk, re)) in es.iter().zip(&raw.auths) {
            prop_assert_eq!(k, rk);
            prop_assert_eq!(Some(&e.password), re.password.as_ref());
        }
    }

    #[test]
    fn auth_round_trips(user in "[^:]{0,20}", pass in any::<String>()) {
        use base64::Engine as _;
        let plain = format!("{user}:{pass}");
        let padded = base64::engine::general_purpose::STANDARD.encode(&plain);
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&plain);
        prop_assert_eq!(decode_auth_field(&padded).unwrap(), (user.clone(), pass.clone()));
        prop_assert_eq!(decode_auth_field(&raw).unwrap(), (user, pass));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn deep_nesting_is_an_error_not_an_overflow(n in 10_001usize..40_000, obj in any::<bool>()) {
        let open = if obj { "{\"a\":" } else { "[" };
        let doc = format!("{{\"auths\":{}", open.repeat(n));
        let e = decode_dockerconfigjson(doc.as_bytes()).unwrap_err().to_string();
        prop_assert!(e.ends_with("exceeded max depth"), "{}", e);
        prop_assert!(inspect_config(doc.as_bytes()).is_err());
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn same(ours: &Value, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::Number(a), serde_json::Value::Number(b)) => *a == b.to_string(),
        (Value::String(a), serde_json::Value::String(b)) => a == b,
        (Value::Array(a), serde_json::Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), serde_json::Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => false,
    }
}
