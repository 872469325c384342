//! Docker-style certificate directories: `DIR/<host[:port]>/*.crt` (CA certificates) and
//! `*.cert` with its `*.key` (a client certificate), read for a registry directory that has no
//! `hosts.toml`, as containerd's `config_path` does (`core/remotes/docker/config/hosts.go`,
//! `loadHostDir` falling back to `loadCertFiles`; the layout of Docker's `/etc/docker/certs.d`).
//! A `.cert` without its `.key` is taken to hold the key too (containerd's note on
//! `loadCertFiles`).

use std::path::{Path, PathBuf};

use crate::hosts::{read_bounded, HostsError, RegistryHost, RegistryHosts, MAX_CERT_FILE};

/// The registry's hosts from the certificate files in `dir` (the registry's directory), or
/// `None` when it holds none.
pub(crate) fn load_cert_files(
    dir: &Path,
    registry: &str,
) -> Result<Option<RegistryHosts>, HostsError> {
    let io = |source| HostsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = vec![];
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        if e.file_type().map_err(io)?.is_dir() {
            continue;
        }
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    // os.ReadDir returns names sorted
    names.sort();
    let bad = |path: &Path, message: String| HostsError::Field {
        file: path.to_path_buf(),
        field: "(file)".into(),
        message,
    };
    let mut cas: Vec<Vec<u8>> = vec![];
    let mut clients: Vec<(PathBuf, Vec<u8>)> = vec![];
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".crt") {
            let pem = read_bounded(&path, MAX_CERT_FILE)?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(bad(
                    &path,
                    "a .crt file in a certificate directory must hold pem CA certificates".into(),
                ));
            }
            cas.push(pem);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let mut pem = read_bounded(&path, MAX_CERT_FILE)?;
            let key = dir.join(format!("{stem}.key"));
            match std::fs::metadata(&key) {
                Ok(_) => {
                    pem.push(b'\n');
                    pem.extend(read_bounded(&key, MAX_CERT_FILE)?);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(HostsError::Io { path: key, source }),
            }
            clients.push((path, pem));
        }
    }
    if clients.len() > 1 {
        return Err(bad(
            dir,
            format!(
                "{} client certificates (*.cert): keep the one this registry accepts",
                clients.len()
            ),
        ));
    }
    if cas.is_empty() && clients.is_empty() {
        return Ok(None);
    }
    let mut server = RegistryHost::default_for(registry)?;
    server.tls.system_roots = true;
    server.tls.extra_roots_pem = cas;
    server.tls.client_identity_pem = clients.pop().map(|(_, pem)| pem);
    server.custom_tls = true;
    Ok(Some(RegistryHosts {
        hosts: vec![server],
        file: dir.to_path_buf(),
    }))
}

#[cfg(test)]
mod tests {
    use crate::hosts::HostsDir;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn certificate_files_configure_the_registry_without_hosts_toml() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("reg.example:5000");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ca.crt"), PEM).unwrap();
        std::fs::write(d.join("client.cert"), "CERT\n").unwrap();
        std::fs::write(d.join("client.key"), "KEY\n").unwrap();
        std::fs::write(d.join("README"), "ignored").unwrap();
        // a directory with hosts.toml is configured by it alone (containerd reads the
        // certificate files only without one)
        let h = t.path().join("other.example");
        std::fs::create_dir_all(&h).unwrap();
        std::fs::write(h.join("hosts.toml"), "server = \"https://other.example\"\n").unwrap();
        std::fs::write(h.join("ca.crt"), PEM).unwrap();

        let dir = HostsDir::load(t.path()).unwrap();
        let hosts = dir.hosts_for("reg.example:5000").unwrap();
        assert_eq!(hosts.len(), 1);
        let s = &hosts[0];
        assert!(s.is_server && s.custom_tls);
        assert_eq!(s.origin.as_str(), "https://reg.example:5000/");
        assert_eq!(s.tls.extra_roots_pem, [PEM.as_bytes().to_vec()]);
        assert_eq!(
            s.tls.client_identity_pem.as_deref(),
            Some(&b"CERT\n\nKEY\n"[..])
        );
        assert!(
            !format!("{s:?}").contains("KEY"),
            "the client key is never shown"
        );
        let o = dir.hosts_for("other.example").unwrap();
        assert!(o[0].tls.extra_roots_pem.is_empty() && !o[0].custom_tls);
    }

    #[test]
    fn bad_certificate_directories_are_named() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("reg.example");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ca.crt"), "not a certificate").unwrap();
        let e = HostsDir::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("ca.crt") && e.contains("pem CA"), "{e}");
        std::fs::write(d.join("ca.crt"), PEM).unwrap();
        std::fs::write(d.join("a.cert"), "A").unwrap();
        std::fs::write(d.join("b.cert"), "B").unwrap();
        let e = HostsDir::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("2 client certificates"), "{e}");
        // an empty directory configures nothing
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("empty.example")).unwrap();
        let dir = HostsDir::load(t.path()).unwrap();
        assert!(!dir.hosts_for("empty.example").unwrap()[0].custom_tls);
    }
}
