#![no_main]
//! Token endpoint JSON: never panics; an accepted token is a valid header value and its
//! lifetime is within the clamp.
use kubepull_registry::auth::{parse_token_response, MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = parse_token_response(data) {
        let tok = t.token.expose();
        assert!(!tok.is_empty());
        assert!(http::HeaderValue::from_str(&format!("Bearer {tok}")).is_ok());
        assert!(t.lifetime >= MIN_TOKEN_LIFETIME && t.lifetime <= MAX_TOKEN_LIFETIME);
        assert_eq!(
            format!("{:?}", t.token),
            "<redacted>",
            "token never in Debug"
        );
    }
});
