#![no_main]
//! `WWW-Authenticate` parsing: never panics; what parses has lowercase, unique parameter
//! names and survives a re-parse of its own rendering.
use kubepull_registry::challenge::{parse_challenges, Scheme};
use libfuzzer_sys::fuzz_target;

fn render(c: &kubepull_registry::challenge::Challenge) -> String {
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

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cs) = parse_challenges(s) {
        for c in &cs {
            let mut names = std::collections::HashSet::new();
            for (k, _) in &c.params {
                assert_eq!(k, &k.to_ascii_lowercase());
                assert!(names.insert(k.clone()), "duplicate {k}");
            }
        }
        let rendered: Vec<String> = cs.iter().map(render).collect();
        let again = parse_challenges(&rendered.join(", ")).expect("rendering re-parses");
        assert_eq!(again, cs);
    }
});
