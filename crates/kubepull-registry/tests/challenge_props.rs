//! Property tests of the `WWW-Authenticate` parser (the same properties the `challenge` fuzz
//! target checks, run on every `cargo test`).

use std::collections::HashSet;

use kubepull_registry::challenge::{parse_challenges, Challenge, Scheme};
use proptest::prelude::*;

fn render(c: &Challenge) -> String {
    let scheme = match &c.scheme {
        Scheme::Basic => "Basic".to_string(),
        Scheme::Bearer => "Bearer".to_string(),
        Scheme::Other(s) => s.clone(),
    };
    if let Some(t) = &c.token68 {
        return format!("{scheme} {t}");
    }
    let params: Vec<String> = c
        .params
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if params.is_empty() {
        scheme
    } else {
        format!("{scheme} {}", params.join(", "))
    }
}

/// A challenge as a registry might send it, with its expected parse.
fn challenge() -> impl Strategy<Value = (String, Challenge)> {
    (
        "[A-Za-z][A-Za-z0-9]{0,8}",
        prop::collection::vec(
            ("[A-Za-z][A-Za-z0-9_]{0,8}", "[ -~]{0,24}", any::<bool>()),
            0..5,
        ),
    )
        .prop_map(|(scheme, params)| {
            let mut seen = HashSet::new();
            let params: Vec<_> = params
                .into_iter()
                .filter(|(k, _, _)| seen.insert(k.to_ascii_lowercase()))
                .collect();
            let lower = scheme.to_ascii_lowercase();
            let parsed_scheme = match lower.as_str() {
                "basic" => Scheme::Basic,
                "bearer" => Scheme::Bearer,
                _ => Scheme::Other(lower),
            };
            let rendered: Vec<String> = params
                .iter()
                .map(|(k, v, bare)| {
                    let token = !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    if *bare && token {
                        format!("{k}={v}")
                    } else {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    }
                })
                .collect();
            let text = if rendered.is_empty() {
                scheme.clone()
            } else {
                format!("{scheme} {}", rendered.join(","))
            };
            let expected = Challenge {
                scheme: parsed_scheme,
                params: params
                    .into_iter()
                    .map(|(k, v, _)| (k.to_ascii_lowercase(), v))
                    .collect(),
                token68: None,
            };
            (text, expected)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_parses_are_well_formed(s in "\\PC{0,200}") {
        if let Ok(cs) = parse_challenges(&s) {
            for c in &cs {
                let mut names = HashSet::new();
                for (k, _) in &c.params {
                    prop_assert_eq!(k, &k.to_ascii_lowercase());
                    prop_assert!(names.insert(k.clone()));
                }
            }
            let again = parse_challenges(&cs.iter().map(render).collect::<Vec<_>>().join(", "));
            prop_assert_eq!(again, Ok(cs));
        }
    }

    #[test]
    fn header_shaped_input_never_panics(s in "[A-Za-z =,\"\\\\a-z0-9:/.]{0,120}") {
        let _ = parse_challenges(&s);
    }

    #[test]
    fn rendered_challenges_round_trip(cs in prop::collection::vec(challenge(), 1..4)) {
        let text = cs.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>().join(", ");
        let want: Vec<Challenge> = cs.into_iter().map(|(_, c)| c).collect();
        prop_assert_eq!(parse_challenges(&text), Ok(want), "{}", text);
    }
}
