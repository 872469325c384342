//! The live probe: from where the doctor runs, ask the registry what the kubelet's runtime
//! would ask — `/v2/` ping and challenge, then the manifest with each credential in the
//! kubelet's order (the token flow included), and for an index whether the node's platform is
//! in it. Same safety as `kubepull pull` (it is the same client): realm and redirect policy,
//! no credentials over plain HTTP, secrets never printed.

use std::time::Duration;

use kubepull_core::diagnose::{
    AttemptResult, CredentialAttempt, ManifestView, ProbeFailure, ProbeView,
};
use kubepull_core::reference::Reference;
use kubepull_registry::manifest::Manifest;
use kubepull_registry::{
    Client, ErrorKind, HostsDir, ManifestRef, Platform, RegistryCredential, RegistryHost,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one probe request may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole text of an error and its causes, for classification (never shown as is).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A TLS failure, told apart by what rustls said.
fn tls_failure(text: &str) -> ProbeFailure {
    let t = text.to_ascii_lowercase();
    if t.contains("corrupt message")
        || t.contains("invalidcontenttype")
        || t.contains("invalid content type")
        || t.contains("http response to https")
    {
        ProbeFailure::HttpHttpsMismatch
    } else if t.contains("expired")
        || t.contains("notvalidyet")
        || t.contains("not valid yet")
        || t.contains("notvalidforname")
        || t.contains("not valid for name")
        || t.contains("certificate is valid for")
    {
        ProbeFailure::TlsExpiredOrMismatch
    } else {
        ProbeFailure::TlsUntrusted
    }
}

/// A registry client error as a probe failure (the host could not be talked to at all), or
/// `None` when the registry answered.
fn failure_of(e: &kubepull_registry::Error) -> Option<ProbeFailure> {
    let text = chain(e);
    Some(match e.kind() {
        ErrorKind::Dns => ProbeFailure::Dns,
        ErrorKind::Connect => ProbeFailure::Refused,
        ErrorKind::Stalled => ProbeFailure::Timeout,
        ErrorKind::Tls => tls_failure(&text),
        ErrorKind::Protocol if text.to_ascii_lowercase().contains("corrupt message") => {
            ProbeFailure::HttpHttpsMismatch
        }
        _ => return None,
    })
}

fn attempt_result(e: &kubepull_registry::Error) -> AttemptResult {
    match e.kind() {
        ErrorKind::Unauthorized => AttemptResult::Rejected,
        ErrorKind::NotFound => AttemptResult::Forbidden,
        ErrorKind::ManifestUnknown => AttemptResult::NotFound,
        ErrorKind::RateLimited => AttemptResult::RateLimited,
        ErrorKind::PlatformNotFound => AttemptResult::Accepted,
        _ => AttemptResult::Error(short_error(e)),
    }
}

/// An error as one short line with no secret (registry errors never hold one).
fn short_error(e: &kubepull_registry::Error) -> String {
    let mut s = chain(e);
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Whether `host` answers plain HTTP on its port (a registry served over HTTP while the
/// runtime speaks HTTPS to it). Sends one `GET /v2/` and reads the status line only.
async fn answers_plain_http(host: &str) -> bool {
    let addr = if host.contains(':') && !host.starts_with('[') {
        host.to_string()
    } else {
        format!("{host}:443")
    };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
        let req = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"HTTP/"))
    };
    tokio::time::timeout(PROBE_TIMEOUT, fut)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The host the runtime pulls from: the server entry of `hosts.toml` (it carries the CA and
/// client certificate), or the registry's default.
fn server_host(reference: &Reference, hosts: Option<&HostsDir>) -> Option<RegistryHost> {
    let list = hosts?.hosts_for(reference.domain()).ok()?;
    list.into_iter().last()
}

/// Probes one image with the credentials in the kubelet's order (`(label, credential)`),
/// anonymously when there are none.
pub async fn probe(
    client: &Client,
    hosts: Option<&HostsDir>,
    reference: &Reference,
    credentials: &[(String, RegistryCredential)],
    platform: &Platform,
) -> ProbeView {
    let host = server_host(reference, hosts);
    let repo_for = |c: Option<RegistryCredential>| match &host {
        Some(h) => client.repository_on(reference, c, h),
        None => client.repository(reference, c),
    };
    let mut view = ProbeView {
        registry: registry_authority(reference, host.as_ref()),
        reachable: Ok(()),
        attempts: vec![],
        manifest: None,
        node_platform: Some(platform.to_string()),
    };
    // ping: can the registry be talked to at all?
    let ping = match repo_for(None) {
        Ok(r) => tokio::time::timeout(PROBE_TIMEOUT, r.ping()).await,
        Err(e) => {
            view.reachable = Err(ProbeFailure::Other(short_error(&e)));
            return view;
        }
    };
    match ping {
        Err(_) => {
            view.reachable = Err(ProbeFailure::Timeout);
            return view;
        }
        Ok(Err(e)) => {
            if let Some(f) = failure_of(&e) {
                let f = match f {
                    ProbeFailure::Other(_) | ProbeFailure::Refused
                        if answers_plain_http(&view.registry).await =>
                    {
                        ProbeFailure::HttpHttpsMismatch
                    }
                    f => f,
                };
                view.reachable = Err(f);
                return view;
            }
            // it answered, if oddly: go on to the manifest
        }
        Ok(Ok(_)) => {}
    }
    let anonymous = [(String::from("anonymous"), None)];
    let tries: Vec<(String, Option<RegistryCredential>)> = if credentials.is_empty() {
        anonymous.to_vec()
    } else {
        credentials
            .iter()
            .map(|(l, c)| (l.clone(), Some(c.clone())))
            .collect()
    };
    let mref = ManifestRef::of(reference);
    for (label, cred) in tries {
        let repo = match repo_for(cred) {
            Ok(r) => r,
            Err(e) => {
                view.attempts.push(CredentialAttempt {
                    label,
                    result: AttemptResult::Error(short_error(&e)),
                });
                continue;
            }
        };
        let r = tokio::time::timeout(PROBE_TIMEOUT, repo.fetch_manifest(&mref)).await;
        let result = match r {
            Err(_) => AttemptResult::Error("timed out".into()),
            Ok(Err(e)) => {
                if let Some(f) = failure_of(&e) {
                    view.reachable = Err(f);
                }
                match e.kind() {
                    ErrorKind::Protocol if is_media_type_error(&e) => {
                        view.manifest = Some(ManifestView::UnsupportedMediaType(short_error(&e)));
                        AttemptResult::Accepted
                    }
                    _ => attempt_result(&e),
                }
            }
            Ok(Ok(m)) => {
                view.manifest = Some(match &m.manifest {
                    Manifest::Image(_) => ManifestView::Found {
                        is_index: false,
                        platforms: vec![],
                    },
                    Manifest::Index(ix) => ManifestView::Found {
                        is_index: true,
                        platforms: ix
                            .manifests
                            .iter()
                            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                            .collect(),
                    },
                });
                AttemptResult::Accepted
            }
        };
        let done = matches!(result, AttemptResult::Accepted);
        if matches!(result, AttemptResult::NotFound) && view.manifest.is_none() {
            view.manifest = Some(ManifestView::NotFound);
        }
        view.attempts.push(CredentialAttempt { label, result });
        if done {
            break;
        }
    }
    view
}

fn is_media_type_error(e: &kubepull_registry::Error) -> bool {
    let t = chain(e).to_ascii_lowercase();
    t.contains("media type") || t.contains("mediatype")
}

/// `host[:port]` the runtime talks to: the hosts.toml server, or the registry's default host
/// (`docker.io` is served by `registry-1.docker.io`).
fn registry_authority(reference: &Reference, host: Option<&RegistryHost>) -> String {
    match host {
        Some(h) => h.host_label(),
        None => RegistryHost::default_for(reference.domain())
            .map(|h| h.host_label())
            .unwrap_or_else(|_| reference.domain().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_are_told_apart_by_what_rustls_said() {
        assert_eq!(
            tls_failure("invalid peer certificate: UnknownIssuer"),
            ProbeFailure::TlsUntrusted
        );
        assert_eq!(
            tls_failure("invalid peer certificate: Expired"),
            ProbeFailure::TlsExpiredOrMismatch
        );
        assert_eq!(
            tls_failure("invalid peer certificate: NotValidForName"),
            ProbeFailure::TlsExpiredOrMismatch
        );
        assert_eq!(
            tls_failure("received corrupt message of type InvalidContentType"),
            ProbeFailure::HttpHttpsMismatch
        );
    }

    #[tokio::test]
    async fn plain_http_is_recognised_and_a_closed_port_is_not() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        assert!(answers_plain_http(&addr).await);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        assert!(!answers_plain_http(&closed).await);
    }
}
