#![no_main]
//! Manifest and index parsing under every media type we accept: never panics, and platform
//! selection on a parsed index never panics either.
use kubepull_registry::manifest::{
    parse_manifest, Manifest, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1, OCI_INDEX,
    OCI_MANIFEST,
};
use kubepull_registry::Platform;
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 7] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    "application/json",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let ct = TYPES[sel as usize % TYPES.len()];
    if let Ok(Manifest::Index(i)) = parse_manifest(ct, body) {
        for p in ["linux/amd64", "linux/arm64/v8", "windows/amd64"] {
            let _ = i.select(&Platform::parse(p).unwrap());
        }
        let _ = i.platforms();
    }
});
