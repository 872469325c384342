//! Fuzzes the docker config decoders and the Go-compatible JSON parser under them: no input may
//! panic, and the kubelet decoders must agree with the parser on which inputs are valid JSON.

#![no_main]
use kubepull_core::dockerconfig::{
    decode_auth_field, decode_dockercfg, decode_dockerconfigjson, inspect_config, DecodeError,
};
use kubepull_core::gojson::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let valid = decode::validate(data);
    let json = decode_dockerconfigjson(data);
    let cfg = decode_dockercfg(data);
    let raw = inspect_config(data);
    let _ = decode::parse(data);
    let _ = decode::parse_shallow(data, 3);
    // a syntax error is reported by every decoder, and only then
    for r in [json.as_ref().err(), cfg.as_ref().err(), raw.as_ref().err()] {
        let syntax = matches!(r, Some(DecodeError::Syntax(_)));
        assert_eq!(syntax, valid.is_err());
    }
    assert!(raw.is_ok() == valid.is_ok());
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decode_auth_field(s);
    }
});
