#![no_main]
//! `hosts.toml` parsing: never panics, and what parses is a host list the client can use as is:
//! one server, bounded length, http(s) origins with no path, userinfo or query, an API root
//! without a trailing slash, headers that are valid HTTP, header values kept out of `Debug`.
//! A host's own origin and API root, written back as a `server`, parse to the same host.
use std::path::Path;

use kubepull_registry::hosts::{parse_hosts_toml, RegistryHosts, MAX_HOSTS_PER_FILE};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "/nonexistent/reg.example.com/hosts.toml";
const BASE: &str = "/nonexistent/reg.example.com";

/// Certificate paths are read from the file system: relative ones resolve under a directory
/// that does not exist; an absolute one would read this machine's files, so such inputs are
/// skipped.
fn names_absolute_path(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => s.starts_with('/'),
        toml::Value::Array(a) => a.iter().any(names_absolute_path),
        toml::Value::Table(t) => t.values().any(names_absolute_path),
        _ => false,
    }
}

fn check(h: &RegistryHosts) {
    assert!(!h.hosts.is_empty() && h.hosts.len() <= MAX_HOSTS_PER_FILE + 1);
    assert_eq!(h.hosts.iter().filter(|x| x.is_server).count(), 1);
    for x in &h.hosts {
        assert!(matches!(x.origin.scheme(), "http" | "https"), "{x:?}");
        assert!(x.origin.host_str().is_some());
        assert_eq!(x.origin.path(), "/");
        assert!(x.origin.username().is_empty() && x.origin.password().is_none());
        assert!(x.origin.query().is_none() && x.origin.fragment().is_none());
        assert!(!x.api_root.ends_with('/'), "{:?}", x.api_root);
        assert!(x.api_root.is_empty() || x.api_root.starts_with('/'));
        for (k, v) in &x.headers {
            assert_eq!(k, &k.to_ascii_lowercase());
            assert!(http::HeaderName::from_bytes(k.as_bytes()).is_ok());
            assert!(http::HeaderValue::from_str(v).is_ok());
        }
        let label = x.host_label();
        assert!(!label.is_empty());
        // Debug lists header names only: clearing the values changes nothing
        let mut y = x.clone();
        for h in &mut y.headers {
            h.1.clear();
        }
        assert_eq!(format!("{x:?}"), format!("{y:?}"), "header values in Debug");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<toml::Table>() {
        Ok(t) if t.values().any(names_absolute_path) => return,
        _ => {}
    }
    for registry in [Some("reg.example.com:5000"), None] {
        let Ok(h) = parse_hosts_toml(text, Path::new(FILE), Path::new(BASE), registry) else {
            continue;
        };
        check(&h);
        for x in &h.hosts {
            if x.api_root.is_empty() {
                continue; // `override_path` with no path: no `server` string says that
            }
            let mut url = x.origin.clone();
            url.set_path(&x.api_root);
            let again = format!("server = {:?}\noverride_path = true\n", url.as_str());
            let h2 = parse_hosts_toml(&again, Path::new(FILE), Path::new(BASE), registry)
                .unwrap_or_else(|e| panic!("{again}: {e}"));
            assert_eq!(h2.hosts.len(), 1);
            assert_eq!(h2.hosts[0].origin, x.origin, "{again}");
            assert_eq!(h2.hosts[0].api_root, x.api_root, "{again}");
        }
    }
});
