//! Conformance: pull-policy defaulting and validation, the kubelet decision table and its
//! message strings, and the back-off timeline, from `pullpolicy.json`; plus the
//! `kubelet.default_pull_policy` field of every `reference.json` case.

#[path = "../../../testdata/vectors_loader.rs"]
mod vectors;

use std::time::Duration;

use kubepull_core::backoff::{backoff_key, Backoff};
use kubepull_core::pullpolicy::{self, messages, PullDecision, PullPolicy};
use serde_json::Value;

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

#[test]
fn pullpolicy_vectors() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (path, doc) in vectors::load("pullpolicy.json") {
        let file = path.display().to_string();
        for case in doc["defaulting"].as_array().into_iter().flatten() {
            checked += 1;
            let image = s(&case["image"]).unwrap_or_default();
            let specified = s(&case["specified"]).map(|p| p.parse::<PullPolicy>().unwrap());
            let got = pullpolicy::effective_pull_policy(image, specified);
            let want = s(&case["effective"]).unwrap_or_default();
            if got.as_str() != want {
                failures.push(format!(
                    "{file}: defaulting {image:?}: got {got}, want {want}"
                ));
            }
        }
        for case in doc["validation"].as_array().into_iter().flatten() {
            let Some(value) = s(&case["specified"]) else {
                continue;
            };
            let Some(want) = s(&case["error"]) else {
                continue;
            };
            checked += 1;
            match PullPolicy::validate(value, "spec.containers[0].imagePullPolicy") {
                Ok(p) => failures.push(format!("{file}: validation {value:?}: accepted as {p}")),
                Err(e) if e.to_string() != want => failures.push(format!(
                    "{file}: validation {value:?}: got {e}, want {want}"
                )),
                Err(_) => {}
            }
        }
        let img = "registry.example.com/team/app:v1";
        for case in doc["kubelet_decisions"].as_array().into_iter().flatten() {
            checked += 1;
            check_decision(&file, case, img, &mut failures);
        }
        let b = &doc["backoff"];
        if !b.is_null() {
            checked += 1;
            check_backoff(&file, b, &mut failures);
        }
    }
    assert!(checked > 0, "no pull-policy vectors were checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Checks one row of the decision table: the decision for the row's policy and presence, and the
/// exact message strings the row lists (placeholders such as `<pull duration>` are skipped).
fn check_decision(file: &str, case: &Value, img: &str, failures: &mut Vec<String>) {
    let policy = s(&case["policy"]).unwrap_or_default();
    let fill = |t: &str| t.replace("%s", img);
    let exact = |t: &str| !t.contains('<');
    if let (Ok(p), Some(present)) = (
        policy.parse::<PullPolicy>(),
        case["image_present"].as_bool(),
    ) {
        if case["feature_gate"].is_null() {
            let got = pullpolicy::decide(p, present);
            let want_pull = case["pull"].as_bool().unwrap_or(false);
            let pulls = got == PullDecision::Pull;
            if pulls != want_pull {
                failures.push(format!("{file}: decision {policy}/{present}: got {got:?}"));
            }
            if got == PullDecision::NeverPullAbsent {
                let want = fill(s(&case["waiting_message"]).unwrap_or_default());
                if messages::never_pull(img) != want {
                    failures.push(format!(
                        "{file}: never-pull message {:?}",
                        messages::never_pull(img)
                    ));
                }
            }
        }
    }
    for ev in case["events"].as_array().into_iter().flatten() {
        let (reason, text) = (s(&ev[1]).unwrap_or_default(), s(&ev[2]).unwrap_or_default());
        let want = fill(text);
        let got = match reason {
            "Pulling" => messages::pulling(img),
            "Pulled" if text.starts_with("Container image") && text.contains("accessed") => {
                messages::already_present_accessible(img)
            }
            "Pulled" if text.starts_with("Container image") => messages::already_present(img),
            "ErrImageNeverPull" => messages::never_pull(img),
            "BackOff" => messages::back_off_event(img),
            "Failed" if text.starts_with("Error: ") && exact(text) => {
                messages::error_event(&text["Error: ".len()..])
            }
            _ => continue,
        };
        if exact(&want) && got != want {
            failures.push(format!(
                "{file}: event {reason}: got {got:?}, want {want:?}"
            ));
        }
    }
    if case["in_backoff"].as_bool() == Some(true) {
        let got =
            messages::back_off_waiting(img, Some(("ErrImagePull", "<previous error message>")));
        let want = fill(s(&case["waiting_message"]).unwrap_or_default());
        if got != want {
            failures.push(format!(
                "{file}: back-off waiting message: got {got:?}, want {want:?}"
            ));
        }
    }
}

fn check_backoff(file: &str, b: &Value, failures: &mut Vec<String>) {
    let initial = b["initial_seconds"].as_u64().unwrap_or(0);
    let max = b["max_seconds"].as_u64().unwrap_or(0);
    if initial != 10 || max != 300 {
        failures.push(format!("{file}: back-off constants {initial}/{max}"));
    }
    let mut backoff = Backoff::new(Duration::from_secs(initial), Duration::from_secs(max));
    let key = backoff_key("uid", "img");
    // the window sequence when each retry happens right when the window ends
    let mut seq_backoff = Backoff::new(Duration::from_secs(initial), Duration::from_secs(max));
    let mut t = 0;
    for (i, want) in b["window_sequence_seconds"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        seq_backoff.next(&key, Duration::from_secs(t));
        let w = seq_backoff.window(&key).unwrap_or_default().as_secs();
        if Some(w) != want.as_u64() {
            failures.push(format!(
                "{file}: window sequence [{i}]: got {w}, want {want}"
            ));
        }
        t += w;
    }
    for step in b["timeline"].as_array().into_iter().flatten() {
        let now = Duration::from_secs(step["t"].as_u64().unwrap_or(0));
        if let Some(want) = step["in_backoff"].as_bool() {
            let got = backoff.is_in_backoff_since_update(&key, now);
            if got != want {
                failures.push(format!(
                    "{file}: timeline t={}: in_backoff {got}, want {want}",
                    now.as_secs()
                ));
            }
        }
        let outcome = s(&step["outcome"]).unwrap_or_default();
        let failed = outcome.contains("failed") || outcome.contains("fails");
        if failed {
            backoff.next(&key, now);
            let got = backoff.window(&key).map(|w| w.as_secs());
            if got != step["window_after"].as_u64() {
                failures.push(format!(
                    "{file}: timeline t={}: window after {got:?}, want {}",
                    now.as_secs(),
                    step["window_after"]
                ));
            }
        }
    }
}

#[test]
fn reference_vectors_default_pull_policy() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (path, doc) in vectors::load("reference.json") {
        for case in doc["cases"].as_array().into_iter().flatten() {
            let Some(want) = s(&case["kubelet"]["default_pull_policy"]) else {
                continue;
            };
            checked += 1;
            let input = s(&case["input"]).unwrap_or_default();
            let got = pullpolicy::default_pull_policy(input);
            if got.as_str() != want {
                failures.push(format!(
                    "{}: {input:?}: got {got}, want {want}",
                    path.display()
                ));
            }
        }
    }
    assert!(
        checked > 0,
        "no reference cases carry kubelet.default_pull_policy"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
