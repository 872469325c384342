#![no_main]
//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`): never panics; a body that
//! decodes re-encodes, and that encoding decodes to the same JSON (the transcoder's view of an
//! object is stable).
use kubepull_control::protobuf::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode(data) {
        let pb = encode(&v).expect("a decoded object encodes");
        assert_eq!(decode(&pb).expect("re-decodes"), v);
    }
});
