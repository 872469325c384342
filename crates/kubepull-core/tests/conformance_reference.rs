//! Conformance: every field of every `reference.json` case (distribution/reference v0.6.0 and
//! the kubelet's parsers.go helpers), except `kubelet.default_pull_policy`, which
//! `conformance_pullpolicy.rs` checks through the pull-policy module.

#[path = "../../../testdata/vectors_loader.rs"]
mod vectors;

use kubepull_core::reference::{
    apply_default_image_tag, parse, parse_docker_ref, parse_image_name, parse_normalized_named,
};
use serde_json::Value;

/// Compares an optional string field; a missing or null vector field means "absent".
fn cmp(failures: &mut Vec<String>, ctx: &str, field: &str, got: Option<String>, want: &Value) {
    let want = want.as_str().map(str::to_string);
    if got != want {
        failures.push(format!("{ctx}: {field}: got {got:?}, want {want:?}"));
    }
}

#[test]
fn reference_vectors() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (path, doc) in vectors::load("reference.json") {
        let cases = doc["cases"].as_array().cloned().unwrap_or_default();
        for case in &cases {
            checked += 1;
            let input = case["input"].as_str().unwrap_or_default();
            let ctx = format!("{} {input:?}", path.display());
            let f = &mut failures;
            match (
                parse_normalized_named(input),
                case["valid"].as_bool().unwrap_or(false),
            ) {
                (Ok(r), true) => {
                    cmp(
                        f,
                        &ctx,
                        "normalized",
                        Some(r.to_string()),
                        &case["normalized"],
                    );
                    cmp(f, &ctx, "name", Some(r.name()), &case["name"]);
                    cmp(f, &ctx, "domain", Some(r.domain().into()), &case["domain"]);
                    cmp(f, &ctx, "path", Some(r.path().into()), &case["path"]);
                    cmp(f, &ctx, "tag", r.tag().map(Into::into), &case["tag"]);
                    cmp(
                        f,
                        &ctx,
                        "digest",
                        r.digest().map(|d| d.to_string()),
                        &case["digest"],
                    );
                    cmp(
                        f,
                        &ctx,
                        "familiar_name",
                        Some(r.familiar_name()),
                        &case["familiar_name"],
                    );
                    cmp(
                        f,
                        &ctx,
                        "familiar_string",
                        Some(r.familiar_string()),
                        &case["familiar_string"],
                    );
                    let dr = parse_docker_ref(input).map(|r| r.to_string()).ok();
                    cmp(f, &ctx, "docker_ref", dr, &case["docker_ref"]);
                }
                (Err(e), false) => cmp(f, &ctx, "error", Some(e.to_string()), &case["error"]),
                (Ok(r), false) => f.push(format!(
                    "{ctx}: accepted as {r}, want error {}",
                    case["error"]
                )),
                (Err(e), true) => f.push(format!("{ctx}: rejected with {e:?}, want valid")),
            }
            let raw = &case["raw_parse"];
            if raw.is_object() {
                match (parse(input), raw["valid"].as_bool().unwrap_or(false)) {
                    (Ok(r), true) => {
                        cmp(f, &ctx, "raw_parse.name", Some(r.name()), &raw["name"]);
                        cmp(
                            f,
                            &ctx,
                            "raw_parse.domain",
                            Some(r.domain().into()),
                            &raw["domain"],
                        );
                        cmp(
                            f,
                            &ctx,
                            "raw_parse.path",
                            Some(r.path().into()),
                            &raw["path"],
                        );
                    }
                    (Err(e), false) => cmp(
                        f,
                        &ctx,
                        "raw_parse.error",
                        Some(e.to_string()),
                        &raw["error"],
                    ),
                    (Ok(r), false) => f.push(format!("{ctx}: raw parse accepted as {r}")),
                    (Err(e), true) => f.push(format!("{ctx}: raw parse rejected with {e}")),
                }
            }
            let k = &case["kubelet"];
            if k.is_object() {
                match parse_image_name(input) {
                    Ok(p) => {
                        cmp(
                            f,
                            &ctx,
                            "kubelet.repo_to_pull",
                            Some(p.repo),
                            &k["repo_to_pull"],
                        );
                        cmp(f, &ctx, "kubelet.tag", Some(p.tag), &k["tag"]);
                        cmp(f, &ctx, "kubelet.digest", Some(p.digest), &k["digest"]);
                        cmp(f, &ctx, "kubelet.parse_error", None, &k["parse_error"]);
                    }
                    Err(e) => cmp(
                        f,
                        &ctx,
                        "kubelet.parse_error",
                        Some(e.to_string()),
                        &k["parse_error"],
                    ),
                }
                let t = apply_default_image_tag(input).ok();
                cmp(
                    f,
                    &ctx,
                    "kubelet.image_with_default_tag",
                    t,
                    &k["image_with_default_tag"],
                );
            }
        }
    }
    assert!(checked > 0, "no reference vectors were checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
