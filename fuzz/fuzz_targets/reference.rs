#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = kubepull_core::reference::parse(s);
        if let Ok(r) = kubepull_core::reference::parse_normalized_named(s) {
            assert_eq!(
                kubepull_core::reference::parse_normalized_named(&r.to_string()).unwrap(),
                r
            );
        }
        let _ = kubepull_core::reference::parse_image_name(s);
        let _ = kubepull_core::reference::apply_default_image_tag(s);
    }
});
