//! Against the real CNCF distribution registry (Debian `docker-registry`), over TLS from a CA
//! this test generates, with htpasswd Basic auth; the image is pushed through the registry
//! API and pulled with the credentials of a Kubernetes pull secret, resolved by the kubelet
//! keyring.
//!
//! Needs (Debian): `apt-get install -y docker-registry apache2-utils openssl`
//! (`docker-registry` for the registry, `htpasswd` from apache2-utils, the `openssl` CLI for
//! the CA). Everything runs on 127.0.0.1 with free ports and temp dirs; ~/.docker and ~/.kube
//! are never read.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubepull_core::keyring::{resolve, PullSecret};
use kubepull_core::reference::{parse_normalized_named, Digest};
use kubepull_registry::{Client, ClientConfig, ErrorKind, Platform, RegistryCredential, TlsConfig};

const USER: &str = "testuser";
const PASS: &str = "Real-Registry-Pass-42";

fn need(bin: &str, pkg: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` not found: this test needs the real binary (apt-get install -y {pkg})"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running registry; killed (by its own PID) and its temp dir removed on drop.
struct Registry {
    child: Child,
    port: u16,
    ca_pem: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

fn gen_tls(d: &Path) {
    let p = |f: &str| d.join(f);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=kubepull test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-sha256",
            "-days",
            "2",
            "-CAcreateserial",
            "-in",
        ])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("server.crt"))
        .arg("-extfile")
        .arg(p("server.ext")));
}

fn start_registry() -> Registry {
    need("docker-registry", "docker-registry");
    need("htpasswd", "apache2-utils");
    need("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gen_tls(d);
    run(Command::new("htpasswd")
        .args(["-Bbc"])
        .arg(d.join("htpasswd"))
        .args([USER, PASS]));
    let port = free_port();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: kubepull-test-secret\n  tls:\n    certificate: {crt}\n    key: {key}\nauth:\n  htpasswd:\n    realm: kubepull-test\n    path: {htpasswd}\nhealth:\n  storagedriver:\n    enabled: false\n",
        data = d.join("data").display(),
        crt = d.join("server.crt").display(),
        key = d.join("server.key").display(),
        htpasswd = d.join("htpasswd").display(),
    );
    std::fs::write(d.join("config.yml"), cfg).unwrap();
    let log = std::fs::File::create(d.join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(d.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting docker-registry");
    let ca_pem = std::fs::read(d.join("ca.crt")).unwrap();
    let mut reg = Registry {
        child,
        port,
        ca_pem,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if let Ok(Some(st)) = reg.child.try_wait() {
            panic!(
                "docker-registry exited ({st}) during start-up:\n{}",
                reg.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "registry did not listen:\n{}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

/// Pushes blobs and a manifest through the distribution API (monolithic upload).
async fn push(
    reg: &Registry,
    repo: &str,
    tag: &str,
    media_type: &str,
    manifest: &[u8],
    blobs: &[Vec<u8>],
) {
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&reg.ca_pem).unwrap())
        .use_rustls_tls()
        .build()
        .unwrap();
    let base = format!("https://{}", reg.host());
    for b in blobs {
        let d = Digest::sha256_of(b);
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .basic_auth(USER, Some(PASS))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "start upload");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with('/') {
            format!("{base}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = http
            .put(format!("{loc}{sep}digest={d}"))
            .basic_auth(USER, Some(PASS))
            .header("content-type", "application/octet-stream")
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "finish upload of {d}");
    }
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .basic_auth(USER, Some(PASS))
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "put manifest: {}",
        r.text().await.unwrap_or_default()
    );
}

fn desc(mt: &str, data: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{mt}","digest":"{}","size":{}}}"#,
        Digest::sha256_of(data),
        data.len()
    )
}

struct Img {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

fn make_image(arch: &str, seed: u8) -> Img {
    let config = format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{}}}}"#).into_bytes();
    // incompressible-ish, a few hundred KiB, so blob streaming is exercised
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    let big: Vec<u8> = (0..600_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let layers = vec![big, vec![seed; 1000]];
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{},{}]}}"#,
        desc("application/vnd.oci.image.config.v1+json", &config),
        desc("application/vnd.oci.image.layer.v1.tar", &layers[0]),
        desc("application/vnd.oci.image.layer.v1.tar", &layers[1]),
    )
    .into_bytes();
    Img {
        config,
        layers,
        manifest,
    }
}

fn pull_secret(name: &str, host: &str, user: &str, pass: &str) -> PullSecret {
    let cfg = format!(r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{pass}"}}}}}}"#);
    let mut data = BTreeMap::new();
    data.insert(".dockerconfigjson".to_string(), cfg.into_bytes());
    PullSecret {
        name: name.into(),
        secret_type: "kubernetes.io/dockerconfigjson".into(),
        data,
    }
}

fn client(reg: &Registry) -> Client {
    Client::https(
        &TlsConfig::private_ca(reg.ca_pem.clone()),
        ClientConfig::default(),
    )
    .unwrap()
}

fn keyring_creds(image: &str, secrets: &[PullSecret]) -> Vec<RegistryCredential> {
    resolve(image, secrets, None)
        .unwrap()
        .credentials
        .iter()
        .map(RegistryCredential::from_keyring)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_registry_basic_auth_pull_with_pull_secret() {
    let reg = start_registry();
    let amd = make_image("amd64", 1);
    let arm = make_image("arm64", 2);
    let mut blobs = vec![amd.config.clone(), arm.config.clone()];
    blobs.extend(amd.layers.iter().cloned());
    blobs.extend(arm.layers.iter().cloned());
    push(
        &reg,
        "team/app",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &amd.manifest,
        &blobs,
    )
    .await;
    push(
        &reg,
        "team/app",
        "arm",
        "application/vnd.oci.image.manifest.v1+json",
        &arm.manifest,
        &[],
    )
    .await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        desc("application/vnd.oci.image.manifest.v1+json", &amd.manifest)
            .replace('}', r#","platform":{"os":"linux","architecture":"amd64"}}"#),
        desc("application/vnd.oci.image.manifest.v1+json", &arm.manifest).replace(
            '}',
            r#","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}"#
        ),
    );
    push(
        &reg,
        "team/app",
        "multi",
        "application/vnd.oci.image.index.v1+json",
        index.as_bytes(),
        &[],
    )
    .await;

    let host = reg.host();
    let image = format!("{host}/team/app:v1");
    let secrets = [
        pull_secret("stale", &host, USER, "not-the-password"),
        pull_secret("regcred", &format!("{host}/team"), USER, PASS),
    ];
    let creds = keyring_creds(&image, &secrets);
    assert_eq!(creds.len(), 2);
    let c = client(&reg);
    let r = parse_normalized_named(&image).unwrap();
    let (repo, resolved) = c
        .resolve_image(&r, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    // keyring order: the more specific key (host/team) first
    assert_eq!(
        resolved.credential_source.as_deref(),
        Some("secret/regcred")
    );
    assert_eq!(resolved.digest, Digest::sha256_of(&amd.manifest));
    let dir = tempfile::tempdir().unwrap();
    for (l, want) in resolved.manifest.layers.iter().zip(&amd.layers) {
        let dest = dir.path().join(l.digest.hex());
        repo.fetch_blob_resumable(l, &dest, None).await.unwrap();
        assert_eq!(&std::fs::read(&dest).unwrap(), want);
    }
    assert_eq!(
        common::blob_bytes(&repo, &resolved.manifest.config)
            .await
            .unwrap(),
        amd.config
    );
    // HEAD resolve gives the same descriptor
    let d = repo
        .resolve(&kubepull_registry::ManifestRef::parse("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(d.digest, resolved.digest);

    // multi-platform: index narrowed to arm64
    let multi = parse_normalized_named(&format!("{host}/team/app:multi")).unwrap();
    let (_, m) = c
        .resolve_image(&multi, &creds, &Platform::parse("linux/arm64").unwrap())
        .await
        .unwrap();
    assert_eq!(m.digest, Digest::sha256_of(index.as_bytes()));
    assert_eq!(
        m.manifest_descriptor.digest,
        Digest::sha256_of(&arm.manifest)
    );
    // pinned by digest
    let pinned = parse_normalized_named(&format!(
        "{host}/team/app@{}",
        Digest::sha256_of(&amd.manifest)
    ))
    .unwrap();
    c.resolve_image(&pinned, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();

    // wrong password only: Unauthorized, naming the secret, never the password
    let bad = keyring_creds(&image, &secrets[..1]);
    let e = c
        .resolve_image(&r, &bad, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("secret/stale"), "{e}");
    assert!(!format!("{e} {e:?}").contains("not-the-password"));
    // unknown tag
    let nope = parse_normalized_named(&format!("{host}/team/app:nope")).unwrap();
    let e = c
        .resolve_image(&nope, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ManifestUnknown, "{e}");
    // no secrets at all: anonymous, rejected
    let e = c
        .resolve_image(&r, &[], &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    // a client that does not trust the CA: classified as TLS
    let untrusting = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let e = untrusting
        .resolve_image(&r, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    // nothing listening: connect error
    let closed = parse_normalized_named(&format!("127.0.0.1:{}/team/app:v1", free_port())).unwrap();
    let cfg = ClientConfig {
        max_retries: 0,
        ..ClientConfig::default()
    };
    let e = Client::https(&TlsConfig::private_ca(reg.ca_pem.clone()), cfg)
        .unwrap()
        .resolve_image(&closed, &[], &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let _: PathBuf = reg.dir.path().to_path_buf();
}
