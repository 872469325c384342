//! Property tests for the reference parser: no input panics, and what it accepts round-trips.

use kubepull_core::reference::{parse, parse_image_name, parse_normalized_named, Digest};
use proptest::prelude::*;

/// Strings built from the characters that matter to the grammar, so that many are valid.
fn refish() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9._/:@\\-\\[\\]]{0,80}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics(s in any::<String>()) {
        let _ = parse(&s);
        let _ = parse_normalized_named(&s);
        let _ = parse_image_name(&s);
        let _ = Digest::parse(&s);
    }

    #[test]
    fn raw_parse_round_trips(s in refish()) {
        if let Ok(r) = parse(&s) {
            prop_assert_eq!(r.to_string(), s.clone());
            prop_assert_eq!(parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn normalized_is_a_fixed_point(s in refish()) {
        if let Ok(r) = parse_normalized_named(&s) {
            let again = parse_normalized_named(&r.to_string()).unwrap();
            prop_assert_eq!(&again, &r);
            let familiar = parse_normalized_named(&r.familiar_string()).unwrap();
            prop_assert_eq!(&familiar, &r);
        }
    }
}
