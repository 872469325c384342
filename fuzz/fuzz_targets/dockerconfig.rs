#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kubepull_core::dockerconfig::decode_dockerconfigjson(data);
    let _ = kubepull_core::dockerconfig::decode_dockercfg(data);
    let _ = kubepull_core::dockerconfig::inspect_config(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = kubepull_core::dockerconfig::decode_auth_field(s);
    }
});
