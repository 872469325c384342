//! `hosts.toml` file reading limits: a certificate or hosts file is read up to its bound even
//! when its reported size says nothing (a fifo, a device, a file that grows). Found while
//! writing the `hosts` fuzz target (fuzz/fuzz_targets/hosts.rs), which has to keep inputs off
//! such paths.

use std::io::Write;
use std::path::Path;

use kubepull_registry::hosts::{parse_hosts_toml, HostsError, MAX_CERT_FILE};

#[test]
fn a_ca_file_that_reports_no_size_is_still_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.crt");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    // a writer offering twice the bound; it stops when the reader closes the fifo
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let chunk = vec![b'A'; 64 << 10];
        let mut written = 0u64;
        while written < 2 * MAX_CERT_FILE {
            if f.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len() as u64;
        }
    });
    let text = format!(
        "server = \"https://reg.example.com\"\nca = {:?}\n",
        fifo.to_str().unwrap()
    );
    let err = parse_hosts_toml(
        &text,
        &dir.path().join("hosts.toml"),
        dir.path(),
        Some("reg.example.com"),
    )
    .unwrap_err();
    writer.join().unwrap();
    match err {
        HostsError::CertFile { source, field, .. } => {
            assert_eq!(field, "ca");
            assert!(
                matches!(*source, HostsError::TooLarge { limit, .. } if limit == MAX_CERT_FILE),
                "{source}"
            );
        }
        other => panic!("expected a too-large certificate file, got {other}"),
    }
}

#[test]
fn a_ca_file_within_the_bound_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ca.crt"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let h = parse_hosts_toml(
        "server = \"https://reg.example.com\"\nca = \"ca.crt\"\n",
        Path::new("/etc/certs.d/reg.example.com/hosts.toml"),
        dir.path(),
        Some("reg.example.com"),
    )
    .unwrap();
    assert_eq!(h.hosts.len(), 1);
    assert_eq!(h.hosts[0].tls.extra_roots_pem.len(), 1);
}

#[test]
fn a_host_url_with_a_fragment_is_refused() {
    // found by the hosts fuzz target: the fragment stayed on the origin
    for text in [
        "[host.\"https://mirror.example.com#prefix\"]\n",
        "server = \"https://reg.example.com/#x\"\n",
    ] {
        let err = parse_hosts_toml(
            text,
            Path::new("/etc/certs.d/reg.example.com/hosts.toml"),
            Path::new("/nonexistent"),
            Some("reg.example.com"),
        )
        .unwrap_err();
        match err {
            HostsError::Field { field, message, .. } => {
                assert!(field.ends_with("host") || field == "server", "{field}");
                assert!(message.contains("fragment"), "{message}");
            }
            other => panic!("{text}: expected a field error, got {other}"),
        }
    }
}
