//! The pod-template hash that names a Deployment's ReplicaSets.
//!
//! Ported from upstream `pkg/controller/controller_utils.go` (`ComputeHash`) and
//! `k8s.io/apimachinery/pkg/util/rand` (`SafeEncodeString`). Upstream feeds the spew dump of the Go
//! struct to FNV-32a; that byte stream cannot be reproduced outside Go, so this port feeds the
//! canonical JSON of the template (keys in the order k8s-openapi serializes them) instead. The
//! collision count is appended as 4 little-endian bytes exactly as upstream, and the 32-bit sum is
//! rendered in decimal and mapped through the same alphabet, so hashes have upstream's shape
//! (for example `7d9c8b5f6d`) and change whenever the template changes.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Upstream's alphabet for generated names: no vowels (no words) and no confusable characters
/// (`k8s.io/apimachinery/pkg/util/rand/rand.go`, `alphanums`).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-32a offset basis and prime (`hash/fnv` in Go).
const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

fn fnv32a(state: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(state, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV32_PRIME))
}

/// Maps each character of `s` into [`SAFE_ALPHABET`] (upstream `rand.SafeEncodeString`).
pub fn safe_encode_string(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// Computes the `pod-template-hash` of a template (upstream `controller.ComputeHash`).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing a k8s-openapi struct cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(FNV32_OFFSET, &json);
    if let Some(c) = collision_count {
        // Upstream: binary.LittleEndian.PutUint32(collisionCountBytes, uint32(*collisionCount)).
        h = fnv32a(h, &(c as u32).to_le_bytes());
    }
    safe_encode_string(&h.to_string())
}

/// Five random characters from [`SAFE_ALPHABET`], the suffix upstream's `generateName` appends
/// (`k8s.io/apiserver/pkg/storage/names/generate.go`, `randomLength = 5`).
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| char::from(SAFE_ALPHABET[rng.gen_range(0..SAFE_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_go_vectors() {
        // Go: fnv.New32a() of "" and "a".
        assert_eq!(fnv32a(FNV32_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv32a(FNV32_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(FNV32_OFFSET, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_matches_upstream() {
        // '0' is 48, 48 % 27 = 21 -> '4'; '1' -> 49 % 27 = 22 -> '5'.
        assert_eq!(safe_encode_string("01"), "45");
    }

    #[test]
    fn hash_changes_with_template_and_collisions() {
        let mut t = PodTemplateSpec::default();
        let a = compute_hash(&t, None);
        assert_eq!(a, compute_hash(&t, None));
        assert_ne!(a, compute_hash(&t, Some(1)));
        t.metadata = Some(Default::default());
        t.metadata.as_mut().unwrap().labels = Some([("app".into(), "x".into())].into());
        assert_ne!(a, compute_hash(&t, None));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    }

    #[test]
    fn suffix_uses_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    }
}
