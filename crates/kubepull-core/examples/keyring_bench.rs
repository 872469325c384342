//! Keyring lookups per second on a 100-entry keyring (the `bench` script runs this in release).
//!
//! The keyring holds 100 registry keys of the shapes found in real pull secrets (plain hosts,
//! hosts with ports, path prefixes, `*.` globs) across 10 secrets; each lookup resolves one of
//! 8 images, half of which match and half of which fall through to the Docker Hub fallback.

use std::collections::BTreeMap;
use std::time::Instant;

use kubepull_core::keyring::{resolve, PullSecret};

fn main() {
    let mut secrets = Vec::new();
    for s in 0..10 {
        let mut auths = serde_json::Map::new();
        for k in 0..10 {
            let n = s * 10 + k;
            let key = match n % 4 {
                0 => format!("registry{n}.example.com"),
                1 => format!("https://registry{n}.example.com:5000/v2/"),
                2 => format!("quay.io/team{n}"),
                _ => format!("*.region{n}.example.com"),
            };
            auths.insert(
                key,
                serde_json::json!({"username": format!("user{n}"), "password": format!("pw{n}")}),
            );
        }
        let cfg = serde_json::json!({ "auths": auths }).to_string();
        let mut data = BTreeMap::new();
        data.insert(".dockerconfigjson".to_string(), cfg.into_bytes());
        secrets.push(PullSecret {
            name: format!("secret{s}"),
            secret_type: "kubernetes.io/dockerconfigjson".to_string(),
            data,
        });
    }
    let images = [
        "registry40.example.com/app:v1",
        "registry41.example.com:5000/app/x:v1",
        "quay.io/team42/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "a.region43.example.com/x/y:1",
        "busybox",
        "nginx:1.27",
        "ghcr.io/org/tool:latest",
        "registry.k8s.io/pause:3.10",
    ];
    // Build-and-lookup (what the kubelet does per pull: it rebuilds the keyring from the
    // pod's secrets every time) and lookup-only on a prebuilt keyring.
    let iters = 20_000usize;
    let t = Instant::now();
    let mut found = 0usize;
    for i in 0..iters {
        let r = resolve(images[i % images.len()], &secrets, None).expect("resolve");
        found += r.credentials.len();
    }
    let full = iters as f64 / t.elapsed().as_secs_f64();

    let mut keyring = kubepull_core::keyring::Keyring::new();
    for s in &secrets {
        let cfg =
            kubepull_core::dockerconfig::decode_dockerconfigjson(&s.data[".dockerconfigjson"])
                .unwrap();
        keyring.add(
            &cfg,
            kubepull_core::keyring::CredentialSource::Secret {
                name: s.name.clone(),
            },
        );
    }
    let keys: Vec<String> = images
        .iter()
        .map(|i| kubepull_core::reference::parse_image_name(i).unwrap().repo)
        .collect();
    let iters2 = 500_000usize;
    let t = Instant::now();
    for i in 0..iters2 {
        found += keyring.lookup(&keys[i % keys.len()]).len();
    }
    let lookup = iters2 as f64 / t.elapsed().as_secs_f64();
    println!("| keyring (100 entries, 10 secrets) | operations/s |");
    println!("| --- | --- |");
    println!("| lookup on a built keyring | {lookup:.0} |");
    println!("| parse 10 secrets + build + lookup (per pull, as the kubelet does) | {full:.0} |");
    eprintln!("(checksum {found})");
}
