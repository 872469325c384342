//! go-yaml key order on keys where `keyList.Less` is not a consistent order: found by the
//! `goyaml` fuzz target (fuzz/fuzz_targets/goyaml.rs), where sorting with it panicked
//! ("user-provided comparison function does not correctly implement a total order").

use kubepull_core::goyaml::{json_to_yaml, key_less};

/// Digit runs longer than an int64 wrap around (as in Go), so these keys compare in circles.
const KEYS: [&str; 21] = [
    "a",
    "0000:00000000a",
    "00:0000000000000=000020,0000020,00000a",
    "0000000000000000000*00000000:00000000000000000/0,00000a",
    "0000000000000000000*0000002000000000000000020000000a",
    "9551615a",
    "4000:000000000000000000000000000a",
    "00",
    "0000:0000000000000000040,00000a",
    "0000000000000000000*000000200000000000000000200000000000a",
    "0000000000000000000*00000000000000000020000000a",
    "0000000000000000000*00000000:0000000000000000020,00000a",
    "0000000000000000000*00000020000000000000000020000000a",
    "9551615az",
    "2000:00000000000000",
    "0000~0000000000000000040,00000a",
    "2000:000000000000000000000000000a",
    "00000000000000a",
    "00:0000000000000000020,00000a",
    "2000:000000000000000000000000000za",
    "0000:000000000000000",
];

fn object(keys: &[&str]) -> String {
    let members: Vec<String> = keys.iter().map(|k| format!("{k:?}:\"v\"")).collect();
    format!("{{{}}}", members.join(","))
}

#[test]
fn inconsistent_key_order_does_not_panic_and_keeps_every_key() {
    for n in [KEYS.len(), 12, 5] {
        let keys = &KEYS[..n];
        let y = json_to_yaml(object(keys).as_bytes()).unwrap();
        assert_eq!(y.lines().count(), n, "{y}");
        for k in keys {
            assert!(y.lines().any(|l| l.contains(k)), "{k} missing from\n{y}");
        }
    }
}

#[test]
fn up_to_twelve_keys_are_ordered_as_go_insertion_sort_orders_them() {
    // the same steps as Go's insertionSort over the input order
    let keys = &KEYS[..12];
    let mut want: Vec<&str> = keys.to_vec();
    for i in 1..want.len() {
        let mut j = i;
        while j > 0 && key_less(want[j], want[j - 1]) {
            want.swap(j, j - 1);
            j -= 1;
        }
    }
    let y = json_to_yaml(object(keys).as_bytes()).unwrap();
    let got: Vec<String> = y
        .lines()
        .map(|l| l.rsplit_once(": ").unwrap().0.trim_matches('"').to_string())
        .collect();
    assert_eq!(got, want, "{y}");
}
