#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kubepull_core::lint::lint(
        &[("fuzz.yaml".to_string(), data.to_vec())],
        &kubepull_core::lint::LintOptions::default(),
    );
});
