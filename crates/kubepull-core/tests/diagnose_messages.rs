//! The message classifier on texts composed from the upstream error producers (containerd
//! `core/remotes/docker`, containerd CRI `image_pull.go`, distribution `registry/api/errcode`,
//! containers/image as used by CRI-O, the docker daemon, Go `crypto/x509`, `net`, `net/http`,
//! and the kubelet), wrapped the way each runtime wraps them. None of these texts is taken from
//! the conformance corpus; they show that the rules generalise.

use kubepull_core::diagnose::{classify_message, redact, Cause};
use proptest::prelude::*;

/// Asserts the cause, and returns the class for further checks.
fn expect(text: &str, want: Cause) -> kubepull_core::diagnose::MessageClass {
    let c = classify_message(text);
    assert_eq!(
        c.cause, want,
        "text: {text}\ncandidates: {:?}\nevidence: {:?}",
        c.candidates, c.evidence
    );
    assert!(
        !c.candidates.contains(&c.cause),
        "cause repeated in candidates"
    );
    if want != Cause::Unknown {
        assert!(!c.evidence.is_empty(), "no evidence for {text}");
    }
    c
}

const CTRD: &str = "rpc error: code = Unknown desc = failed to pull and unpack image";

#[test]
fn credentials_rejected() {
    // containerd authorizer: a secret is set, the POST to the realm gets 401
    let c = expect(
        &format!("Failed to pull image \"harbor.corp.example/team/api:2.3\": {CTRD} \"harbor.corp.example/team/api:2.3\": failed to resolve reference \"harbor.corp.example/team/api:2.3\": failed to authorize: failed to fetch oauth token: unexpected status from POST request to https://harbor.corp.example/service/token: 401 Unauthorized"),
        Cause::CredentialsRejected,
    );
    assert_eq!(c.runtime, Some("containerd"));
    assert_eq!(c.registry.as_deref(), Some("harbor.corp.example"));
    assert_eq!(c.image.as_deref(), Some("harbor.corp.example/team/api:2.3"));
    assert_eq!(c.http_status, Some(401));
    assert!(c.evidence.iter().any(|e| e.contains("oauth token")));
    // containerd fallback GET with the same credentials: the error is returned unwrapped
    expect(
        "failed to resolve reference \"art.example.com/docker/app:1\": failed to authorize: unexpected status from GET request to https://art.example.com/artifactory/api/docker/docker/v2/token?scope=repository%3Aapp%3Apull&service=art.example.com: 401 Unauthorized",
        Cause::CredentialsRejected,
    );
    // containers/image (CRI-O): ErrUnauthorizedForCredentials
    let c = expect(
        "rpc error: code = Unknown desc = Error reading manifest v1 in quay.io/acme/worker: unable to retrieve auth token: invalid username/password: unauthorized: access to the requested resource is not authorized",
        Cause::CredentialsRejected,
    );
    assert_eq!(c.runtime, Some("cri-o"));
    assert_eq!(c.image.as_deref(), Some("quay.io/acme/worker:v1"));
    // docker daemon against Docker Hub
    expect(
        "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": unauthorized: incorrect username or password",
        Cause::CredentialsRejected,
    );
    // ECR token expiry
    let c = expect(
        "Failed to pull image \"123456789012.dkr.ecr.us-east-2.amazonaws.com/app:7\": rpc error: code = Unknown desc = Error response from daemon: denied: Your authorization token has expired. Reauthenticate and try again.",
        Cause::CredentialsRejected,
    );
    assert!(c.candidates.contains(&Cause::CloudCredentialProvider));
}

#[test]
fn no_credentials_sent() {
    // containerd: basic-auth challenge and no username/secret from the CRI
    let c = expect(
        "Failed to pull image \"10.20.30.40:5000/tools/jq:1.7\": failed to pull and unpack image \"10.20.30.40:5000/tools/jq:1.7\": failed to resolve reference \"10.20.30.40:5000/tools/jq:1.7\": pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials",
        Cause::NoCredentialsSent,
    );
    assert_eq!(c.registry.as_deref(), Some("10.20.30.40:5000"));
    // containerd: anonymous token request refused
    let c = expect(
        "failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://gitlab.example.org/jwt/auth?scope=repository%3Agrp%2Fsvc%3Apull&service=container_registry: 401 Unauthorized",
        Cause::NoCredentialsSent,
    );
    assert!(c.candidates.contains(&Cause::NoPullAccess));
    // docker daemon, distribution client ErrNoBasicAuthCredentials
    expect(
        "rpc error: code = Unknown desc = Error response from daemon: Get https://nexus.example.net:8443/v2/app/manifests/3.1: no basic auth credentials",
        Cause::NoCredentialsSent,
    );
    // distribution UNAUTHORIZED without more context stays open
    let c = expect(
        "rpc error: code = Unknown desc = Error response from daemon: Get https://registry.gitlab.com/v2/grp/app/manifests/main: unauthorized: HTTP Basic: Access denied",
        Cause::NoCredentialsSent,
    );
    assert!(c.candidates.contains(&Cause::CredentialsRejected));
}

#[test]
fn aggregate_of_credential_attempts_rules_out_anonymous() {
    // kubelet aggregate: one runtime error per keyring credential
    let c = expect(
        "Failed to pull image \"registry.example.io/a/b:1\": [rpc error: code = Unknown desc = failed to pull and unpack image \"registry.example.io/a/b:1\": failed to resolve reference \"registry.example.io/a/b:1\": unexpected status from HEAD request to https://registry.example.io/v2/a/b/manifests/1: 401 Unauthorized, rpc error: code = Unknown desc = failed to pull and unpack image \"registry.example.io/a/b:1\": failed to resolve reference \"registry.example.io/a/b:1\": unexpected status from HEAD request to https://registry.example.io/v2/a/b/manifests/1: 401 Unauthorized]",
        Cause::CredentialsRejected,
    );
    assert!(!c.candidates.contains(&Cause::NoCredentialsSent));
}

#[test]
fn insufficient_scope_depends_on_the_registry() {
    // Docker Hub: most likely a repository that does not exist
    let hub = classify_message("failed to resolve reference \"docker.io/acme/tool:1\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed");
    assert_eq!(hub.cause, Cause::ImageNotFound);
    assert_eq!(hub.candidates[0], Cause::NoCredentialsSent);
    // a private registry: most likely a pull without credentials
    let private = classify_message("failed to resolve reference \"harbor.corp.example/proj/app:1\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed");
    assert_eq!(private.cause, Cause::NoCredentialsSent);
    assert_eq!(private.candidates[0], Cause::ImageNotFound);
    assert!(private.candidates.contains(&Cause::NoPullAccess));
}

#[test]
fn no_pull_access() {
    let c = expect(
        "failed to resolve reference \"ghcr.io/someorg/private:0.1\": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Asomeorg%2Fprivate%3Apull&service=ghcr.io: 403 Forbidden",
        Cause::NoPullAccess,
    );
    assert_eq!(c.http_status, Some(403));
    expect(
        "failed to resolve reference \"reg.example.com/a/b:1\": unexpected status from HEAD request to https://reg.example.com/v2/a/b/manifests/1: 403 Forbidden",
        Cause::NoPullAccess,
    );
    // distribution DENIED from a cloud registry's IAM
    let c = expect(
        "Error response from daemon: Get https://europe-west1-docker.pkg.dev/v2/p/r/img/manifests/1: denied: Permission \"artifactregistry.repositories.downloadArtifacts\" denied on resource \"projects/p/locations/europe-west1/repositories/r\" (or it may not exist)",
        Cause::NoPullAccess,
    );
    assert!(c.candidates.contains(&Cause::CloudCredentialProvider));
}

#[test]
fn image_not_found() {
    // containerd resolver: every host answered 404
    let c = expect(
        "Failed to pull image \"nginx:1.99.99\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:1.99.99\": failed to resolve reference \"docker.io/library/nginx:1.99.99\": docker.io/library/nginx:1.99.99: not found",
        Cause::ImageNotFound,
    );
    assert_eq!(c.registry.as_deref(), Some("docker.io"));
    // CRI-O / containers/image
    let c = expect(
        "rpc error: code = Unknown desc = reading manifest 9.9.9 in quay.io/prometheus/node-exporter: manifest unknown",
        Cause::ImageNotFound,
    );
    assert_eq!(
        c.image.as_deref(),
        Some("quay.io/prometheus/node-exporter:9.9.9")
    );
    assert_eq!(c.registry.as_deref(), Some("quay.io"));
    // distribution NAME_UNKNOWN
    expect(
        "Error response from daemon: Get https://reg.local:5000/v2/nope/manifests/latest: name unknown: repository name not known to registry",
        Cause::ImageNotFound,
    );
    // Docker Hub answers a missing repository like a private one
    let c = expect(
        "failed to resolve reference \"docker.io/library/ngnix:latest\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed",
        Cause::ImageNotFound,
    );
    assert_eq!(
        &c.candidates[..2],
        &[Cause::NoCredentialsSent, Cause::NoPullAccess]
    );
    let c = expect(
        "Error response from daemon: pull access denied for acme/nothing, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
        Cause::ImageNotFound,
    );
    assert_eq!(c.runtime, Some("dockershim"));
    assert_eq!(c.image.as_deref(), Some("acme/nothing"));
}

#[test]
fn platform_not_found() {
    expect(
        "failed to pull and unpack image \"docker.io/acme/tool:2\": no match for platform in manifest: not found",
        Cause::PlatformNotFound,
    );
    expect(
        "Error response from daemon: no matching manifest for linux/arm64/v8 in the manifest list entries",
        Cause::PlatformNotFound,
    );
    let c = expect(
        "rpc error: code = Unknown desc = choosing image instance: no image found in manifest list for architecture \"s390x\", variant \"\", OS \"linux\"",
        Cause::PlatformNotFound,
    );
    assert_eq!(c.runtime, Some("cri-o"));
}

#[test]
fn rate_limited() {
    let c = expect(
        "failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/redis/manifests/sha256:0123: 429 Too Many Requests - Server message: toomanyrequests: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit",
        Cause::RateLimited,
    );
    assert_eq!(c.http_status, Some(429));
    expect(
        "failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://public.ecr.aws/token/?scope=repository%3Ax%3Apull: 429 Too Many Requests",
        Cause::RateLimited,
    );
    expect(
        "Error reading manifest 3 in public.ecr.aws/x/y: toomanyrequests: Rate exceeded",
        Cause::RateLimited,
    );
}

#[test]
fn tls_untrusted() {
    // TLS inside a token fetch is still TLS
    let c = expect(
        "failed to authorize: failed to fetch oauth token: Post \"https://harbor.lan/service/token\": tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: verification error\" while trying to verify candidate authority certificate \"harbor-ca\")",
        Cause::TlsUntrusted,
    );
    assert_eq!(c.registry.as_deref(), Some("harbor.lan"));
    let c = expect(
        "RegistryUnavailable: pinging container registry reg.lan:8443: Get \"https://reg.lan:8443/v2/\": x509: certificate signed by unknown authority",
        Cause::TlsUntrusted,
    );
    assert_eq!(c.runtime, Some("cri-o"));
}

#[test]
fn tls_expired_or_mismatch() {
    expect(
        "failed to do request: Head \"https://reg.example.com/v2/a/manifests/1\": tls: failed to verify certificate: x509: certificate is valid for ingress.local, traefik.default, not reg.example.com",
        Cause::TlsExpiredOrMismatch,
    );
    expect(
        "Get \"https://10.0.0.9:5000/v2/\": x509: cannot validate certificate for 10.0.0.9 because it doesn't contain any IP SANs",
        Cause::TlsExpiredOrMismatch,
    );
    expect(
        "Get \"https://reg.example.com/v2/\": x509: certificate has expired or is not yet valid: current time 2031-01-01T00:00:00Z is after 2030-12-31T00:00:00Z",
        Cause::TlsExpiredOrMismatch,
    );
}

#[test]
fn dns_failure() {
    let c = expect(
        "failed to do request: Head \"https://registry.internal.corp/v2/x/manifests/1\": dial tcp: lookup registry.internal.corp on 10.96.0.10:53: no such host",
        Cause::DnsFailure,
    );
    assert_eq!(c.registry.as_deref(), Some("registry.internal.corp"));
    // a resolver timing out is still DNS, not a registry timeout
    expect(
        "dial tcp: lookup quay.io on 192.168.1.1:53: read udp 192.168.1.20:50312->192.168.1.1:53: i/o timeout",
        Cause::DnsFailure,
    );
    expect(
        "dial tcp: lookup reg.example.com: Temporary failure in name resolution",
        Cause::DnsFailure,
    );
}

#[test]
fn registry_unreachable() {
    expect(
        "failed to do request: Head \"https://reg.example.com:5000/v2/a/manifests/1\": dial tcp 10.1.2.3:5000: connect: no route to host",
        Cause::RegistryUnreachable,
    );
    let c = expect(
        "failed to do request: Head \"https://reg.example.com/v2/a/manifests/1\": dial tcp 10.1.2.3:443: i/o timeout",
        Cause::RegistryUnreachable,
    );
    assert!(c.candidates.contains(&Cause::Timeout));
    expect(
        "Get \"https://reg.example.com/v2/\": proxyconnect tcp: dial tcp 10.0.0.1:3128: connect: connection refused",
        Cause::RegistryUnreachable,
    );
}

#[test]
fn http_https_mismatch() {
    expect(
        "failed to do request: Head \"https://192.168.49.2:5000/v2/app/manifests/1\": http: server gave HTTP response to HTTPS client",
        Cause::HttpHttpsMismatch,
    );
    expect(
        "Get \"http://reg.example.com:443/v2/\": net/http: HTTP/1.x transport connection broken: malformed HTTP response \"\\x15\\x03\\x01\\x00\\x02\\x02\"",
        Cause::HttpHttpsMismatch,
    );
    expect(
        "Get \"https://reg:80/v2/\": tls: first record does not look like a TLS handshake",
        Cause::HttpHttpsMismatch,
    );
}

#[test]
fn invalid_image_name() {
    let c = expect(
        "Failed to apply default image tag \"Registry.Example.com/Team/App:1\": couldn't parse image reference \"Registry.Example.com/Team/App:1\": invalid reference format: repository name (Team/App) must be lowercase",
        Cause::InvalidImageName,
    );
    assert_eq!(c.runtime, Some("kubelet"));
    expect("InvalidImageName", Cause::InvalidImageName);
}

#[test]
fn never_pull_missing() {
    expect(
        "Container image \"localhost/dev-build:wip\" is not present with pull policy of Never",
        Cause::NeverPullMissing,
    );
    expect("ErrImageNeverPull", Cause::NeverPullMissing);
}

#[test]
fn secret_format() {
    expect("illegal base64 data at input byte 12", Cause::SecretFormat);
    expect(
        "unable to parse auth field, must be formatted as base64(username:password)",
        Cause::SecretFormat,
    );
    expect(
        "invalid character 'a' looking for beginning of value",
        Cause::SecretFormat,
    );
}

#[test]
fn cloud_credential_provider() {
    expect(
        "Failed getting credential from external registry credential provider: error execing credential provider plugin ecr-credential-provider for image 111122223333.dkr.ecr.eu-west-1.amazonaws.com/app: exit status 1: NoCredentialProviders: no valid providers in chain",
        Cause::CloudCredentialProvider,
    );
    // no credentials towards a cloud registry: on those nodes the provider supplies them
    let c = expect(
        "failed to resolve reference \"myacr.azurecr.io/svc:5\": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://myacr.azurecr.io/oauth2/token?scope=repository%3Asvc%3Apull&service=myacr.azurecr.io: 401 Unauthorized",
        Cause::CloudCredentialProvider,
    );
    assert_eq!(c.candidates[0], Cause::NoCredentialsSent);
    expect(
        "Error response from daemon: Get https://gcr.io/v2/proj/img/manifests/1: no basic auth credentials",
        Cause::CloudCredentialProvider,
    );
}

#[test]
fn disk_or_extract() {
    expect(
        "failed to pull and unpack image \"docker.io/library/postgres:16\": failed to extract layer sha256:aaaa: mount callback failed on /var/lib/containerd/tmpmounts/containerd-mount1: write /var/lib/containerd/tmpmounts/containerd-mount1/usr/lib/x.so: no space left on device: unknown",
        Cause::DiskOrExtract,
    );
    expect(
        "failed to register layer: lchown /usr/bin/sudo: invalid argument",
        Cause::DiskOrExtract,
    );
    expect(
        "failed to extract layer sha256:bbbb: failed to apply layer: wrong diff id calculated on extraction \"sha256:cccc\"",
        Cause::DiskOrExtract,
    );
}

#[test]
fn corrupt_download() {
    expect(
        "failed commit on ref \"layer-sha256:dddd\": commit failed: unexpected commit digest sha256:eeee, expected sha256:dddd: failed precondition",
        Cause::CorruptDownload,
    );
    expect(
        "failed commit on ref \"layer-sha256:ffff\": unexpected commit size 1024, expected 4096: failed precondition",
        Cause::CorruptDownload,
    );
    expect(
        "failed to copy: httpReadSeeker: failed open: failed to read expected number of bytes: unexpected EOF",
        Cause::CorruptDownload,
    );
    expect(
        "Error response from daemon: filesystem layer verification failed for digest sha256:1111",
        Cause::CorruptDownload,
    );
}

#[test]
fn unsupported_manifest() {
    expect(
        "failed to pull and unpack image \"docker.io/old/app:1\": failed to get converter for \"docker.io/old/app:1\": Pulling Schema 1 images have been deprecated and disabled by default since containerd v2.0.",
        Cause::UnsupportedManifest,
    );
    expect(
        "Error response from daemon: mediaType in manifest should be 'application/vnd.docker.distribution.manifest.v2+json' not 'application/vnd.oci.image.manifest.v1+json'",
        Cause::UnsupportedManifest,
    );
    expect(
        "failed to resolve reference \"r.example/a:1\": unsupported media type application/vnd.acme.custom+json",
        Cause::UnsupportedManifest,
    );
}

#[test]
fn timeout() {
    let c = expect(
        "rpc error: code = Canceled desc = failed to pull and unpack image \"docker.io/ml/model:big\": failed to copy: httpReadSeeker: failed open: cancel pulling image docker.io/ml/model:big because of no progress in 5m0s",
        Cause::Timeout,
    );
    assert_eq!(c.runtime, Some("containerd"));
    expect(
        "Error response from daemon: Get \"https://reg.example.com/v2/\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)",
        Cause::Timeout,
    );
    expect(
        "Error response from daemon: Get https://reg.example.com/v2/: net/http: TLS handshake timeout",
        Cause::Timeout,
    );
    expect(
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        Cause::Timeout,
    );
}

#[test]
fn ok_and_unknown() {
    let c = expect(
        "Successfully pulled image \"nginx:1.27\" in 2.1s (2.1s including waiting). Image size: 72404038 bytes.",
        Cause::Ok,
    );
    assert!(c.candidates.is_empty());
    expect(
        "Container image \"nginx:1.27\" already present on machine",
        Cause::Ok,
    );
    let c = expect("", Cause::Unknown);
    assert!(c.candidates.is_empty() && c.evidence.is_empty());
    expect("something odd happened", Cause::Unknown);
}

#[test]
fn image_and_registry_from_cri_o_wordings() {
    let c = classify_message(
        "rpc error: code = Unknown desc = initializing source docker://quay.io/acme/api:2.1: reading manifest 2.1 in quay.io/acme/api: manifest unknown",
    );
    assert_eq!(c.image.as_deref(), Some("quay.io/acme/api:2.1"));
    assert_eq!(c.registry.as_deref(), Some("quay.io"));
    let c = classify_message(
        "reading manifest sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef in ghcr.io/o/r: manifest unknown",
    );
    assert_eq!(
        c.image.as_deref(),
        Some("ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
}

#[test]
fn crictl_output_with_escaped_quotes() {
    let c = expect(
        "E1206 10:00:00.000000   1234 remote_image.go:180] \"PullImage from image service failed\" err=\"rpc error: code = NotFound desc = failed to pull and unpack image \\\"docker.io/library/nosuch:1\\\": failed to resolve reference \\\"docker.io/library/nosuch:1\\\": docker.io/library/nosuch:1: not found\" image=\"nosuch:1\"",
        Cause::ImageNotFound,
    );
    assert_eq!(c.image.as_deref(), Some("docker.io/library/nosuch:1"));
    assert_eq!(c.runtime, Some("containerd"));
}

#[test]
fn wrapped_lines_are_rejoined() {
    let c = expect(
        "Failed to pull image \"reg.example.com/a/b:1\": dial tcp: lookup reg.exam\nple.com on 10.0.0.10:53: no such ho\nst",
        Cause::DnsFailure,
    );
    assert_eq!(c.registry.as_deref(), Some("reg.example.com"));
}

/// More wordings composed from the producers read for these rules (containerd resolver,
/// fetcher, unpacker and CRI plugin, containers/image `docker/errors.go` and
/// `docker_client.go`, docker daemon 17.x-24.x, Harbor, kubelet events).
#[test]
fn upstream_wordings_table() {
    let table: &[(&str, &str)] = &[
        (
            "image-not-found",
            r#"Failed to pull image "harbor.example.com/library/app:2.0": rpc error: code = Unknown desc = Error response from daemon: unknown: artifact library/app:2.0 not found"#,
        ),
        (
            "image-not-found",
            r#"Failed to pull image "busybox:nope": rpc error: code = Unknown desc = Error response from daemon: Tag nope not found in repository docker.io/library/busybox"#,
        ),
        (
            "image-not-found",
            r#"rpc error: code = Unknown desc = Error: image library/doesnotexist:latest not found"#,
        ),
        (
            "image-not-found",
            r#"Error response from daemon: repository foo/bar not found: does not exist or no pull access"#,
        ),
        (
            "image-not-found",
            r#"failed to pull and unpack image "quay.io/a/b:1": failed to copy: httpReadSeeker: failed open: content at https://quay.io/v2/a/b/blobs/sha256:abcd not found: not found"#,
        ),
        (
            "unknown",
            r#"rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing dial unix /run/containerd/containerd.sock: connect: connection refused""#,
        ),
        (
            "rate-limited",
            r#"Failed to pull image "nginx": pull QPS exceeded"#,
        ),
        (
            "platform-not-found",
            r#"failed to pull and unpack image "docker.io/x/y:1": failed to unpack image: image might be filtered out"#,
        ),
        (
            "unsupported-manifest",
            r#"failed to resolve reference "docker.io/old/img:1": not implemented: media type "application/vnd.docker.distribution.manifest.v1+prettyjws" is no longer supported since containerd v2.0, please rebuild the image as "application/vnd.docker.distribution.manifest.v2+json" or "application/vnd.oci.image.manifest.v1+json""#,
        ),
        (
            "corrupt-download",
            r#"failed to pull and unpack image "x": failed to unpack image on snapshotter overlayfs: mismatched image rootfs and manifest layers"#,
        ),
        (
            "corrupt-download",
            r#"rpc error: code = Unknown desc = writing blob: storing blob to file "/var/tmp/storage123/1": happened during read: Digest did not match, expected sha256:aaaa, got sha256:bbbb"#,
        ),
        (
            "no-credentials-sent",
            r#"rpc error: code = Unknown desc = reading manifest 1.0 in registry.corp.example/team/app: authentication required"#,
        ),
        (
            "no-pull-access",
            r#"rpc error: code = Unknown desc = reading manifest 1.0 in registry.corp.example/team/app: requested access to the resource is denied"#,
        ),
        (
            "credentials-rejected",
            r#"rpc error: code = Unknown desc = initializing source docker://registry.corp.example/team/app:1.0: unable to retrieve auth token: invalid username/password: unauthorized: authentication required"#,
        ),
        (
            "secret-format",
            r#"failed to pull and unpack image "r.example/a:1": failed to resolve reference "r.example/a:1": invalid decoded auth: "alice-no-colon-SECRETVALUE""#,
        ),
        (
            "registry-unreachable",
            r#"Error response from daemon: Get "https://reg.example.com/v2/": proxyconnect tcp: Proxy Authentication Required"#,
        ),
        (
            "registry-unreachable",
            r#"rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": failed to resolve reference "r.example/a:1": unexpected status from HEAD request to https://r.example/v2/a/manifests/1: 503 Service Unavailable"#,
        ),
        (
            "tls-untrusted",
            r#"failed to do request: Head "https://r.example/v2/a/manifests/1": remote error: tls: unknown certificate authority"#,
        ),
        (
            "tls-untrusted",
            r#"Get "https://reg.local/v2/": x509: certificate signed by unknown authority (possibly because of "crypto/rsa: verification error" while trying to verify candidate authority certificate "kubernetes")"#,
        ),
        (
            "image-not-found",
            r#"failed to resolve reference "docker.io/library/nginxx:latest": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"#,
        ),
        (
            "no-credentials-sent",
            r#"Warning FailedToRetrieveImagePullSecret Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed."#,
        ),
        (
            "dns-failure",
            r#"pinging container registry quay.io: Get "https://quay.io/v2/": dial tcp: lookup quay.io on [::1]:53: read udp [::1]:40000->[::1]:53: read: connection refused"#,
        ),
        (
            "timeout",
            r#"Failed to pull image "r/x": rpc error: code = DeadlineExceeded desc = context deadline exceeded"#,
        ),
        (
            "timeout",
            r#"failed to copy: httpReadSeeker: failed open: failed to do request: Get "https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/aa/aabb/data": net/http: TLS handshake timeout"#,
        ),
        (
            "http-https-mismatch",
            r#"Error response from daemon: Get "https://10.0.0.5:5000/v2/": http: server gave HTTP response to HTTPS client"#,
        ),
        (
            "disk-or-extract",
            r#"failed to pull and unpack image "x": failed to extract layer sha256:1: failed to get stream processor for application/vnd.docker.image.rootfs.diff.tar.gzip: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/x: disk quota exceeded"#,
        ),
        (
            // ECR is a Basic-auth registry: credentials were sent (a secret or the provider's)
            "credentials-rejected",
            r#"Failed to pull image "123.dkr.ecr.us-east-1.amazonaws.com/app:1": failed to resolve reference "123.dkr.ecr.us-east-1.amazonaws.com/app:1": unexpected status from HEAD request to https://123.dkr.ecr.us-east-1.amazonaws.com/v2/app/manifests/1: 401 Unauthorized"#,
        ),
        (
            "no-pull-access",
            r#"Failed to pull image "gcr.io/p/i:1": rpc error: code = Unknown desc = failed to pull and unpack image "gcr.io/p/i:1": failed to resolve reference "gcr.io/p/i:1": unexpected status from HEAD request to https://gcr.io/v2/p/i/manifests/1: 403 Forbidden"#,
        ),
        (
            "credentials-rejected",
            r#"Failed to pull image "ghcr.io/org/app:1": failed to resolve reference "ghcr.io/org/app:1": failed to authorize: failed to fetch oauth token: unexpected status from POST request to https://ghcr.io/token: 401 Unauthorized"#,
        ),
        (
            "no-pull-access",
            r#"Failed to pull image "registry.gitlab.com/grp/app:1": failed to resolve reference "registry.gitlab.com/grp/app:1": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://gitlab.com/jwt/auth?scope=repository%3Agrp%2Fapp%3Apull&service=container_registry: 403 Forbidden"#,
        ),
        (
            "image-not-found",
            r#"Error response from daemon: manifest for quay.io/a/b:9 not found: manifest unknown: manifest unknown"#,
        ),
        ("unknown", r#"Back-off pulling image "nginx:1.27""#),
        ("unknown", r#"Error: ImagePullBackOff"#),
        (
            "image-not-found",
            r#"Failed to pull image "ghcr.io/org/app:missing": rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/org/app:missing": failed to resolve reference "ghcr.io/org/app:missing": ghcr.io/org/app:missing: not found"#,
        ),
        (
            "rate-limited",
            r#"Failed to pull image "quay.io/x/y:1": rpc error: code = Unknown desc = reading manifest 1 in quay.io/x/y: too many requests to registry"#,
        ),
        (
            "registry-unreachable",
            r#"Failed to pull image "r.example/a:1": rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": failed to resolve reference "r.example/a:1": failed to do request: Head "https://r.example/v2/a/manifests/1": EOF"#,
        ),
        (
            "never-pull-missing",
            r#"Warning  ErrImageNeverPull  3s  kubelet  Container image "app:local" is not present with pull policy of Never"#,
        ),
        (
            "invalid-image-name",
            r#"Warning  InspectFailed  kubelet  Failed to apply default image tag "app:": couldn't parse image reference "app:": invalid reference format"#,
        ),
        (
            "image-not-found",
            r#"Failed to pull image "nexus.local:8082/app:1": rpc error: code = Unknown desc = Error response from daemon: error parsing HTTP 404 response body: invalid character '<' looking for beginning of value: "<!DOCTYPE html><html><head><title>404 - Nexus Repository Manager</title>""#,
        ),
        (
            "invalid-image-name",
            r#"rpc error: code = Unknown desc = short-name "nginx" did not resolve to an alias and no unqualified-search registries are defined in "/etc/containers/registries.conf""#,
        ),
        (
            "credentials-rejected",
            r#"Error response from daemon: Get https://artifactory.example.com/v2/docker/app/manifests/1: unauthorized: BAD_CREDENTIAL"#,
        ),
        (
            "credentials-rejected",
            r#"failed to authorize: failed to fetch oauth token: unexpected status from POST request to https://myacr.azurecr.io/oauth2/token: 401 Unauthorized: unauthorized: Invalid clientid or client secret."#,
        ),
        (
            "timeout",
            r#"Error response from daemon: Get https://registry-1.docker.io/v2/: net/http: request canceled while waiting for connection"#,
        ),
        (
            "disk-or-extract",
            r#"failed to register layer: max depth exceeded"#,
        ),
        (
            "cloud-credential-provider",
            r#"E1206 kubelet plugin.go:  Failed getting credential from external registry credential provider: error execing credential provider plugin ecr-credential-provider for image 1.dkr.ecr.us-west-2.amazonaws.com/x: exit status 1: WebIdentityErr: failed to retrieve credentials"#,
        ),
        ("secret-format", r#"Error: unexpected end of JSON input"#),
        (
            "secret-format",
            r#"invalid character 'y' looking for beginning of object key string"#,
        ),
        (
            "unknown",
            r#"rpc error: code = Unknown desc = Error response from daemon: unknown: failed to process request"#,
        ),
        (
            "platform-not-found",
            r#"rpc error: code = Unknown desc = Error response from daemon: image operating system "windows" cannot be used on this platform"#,
        ),
        // the credential helper, not the registry, met the TLS error
        (
            "cloud-credential-provider",
            r#"error getting credentials - err: exit status 1, out: `request failed: SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: self signed certificate in certificate chain`"#,
        ),
        (
            "credentials-rejected",
            r#"Error response from daemon: login attempt to https://reg.example.com/v2/ failed with status: 401 Unauthorized"#,
        ),
        (
            "http-https-mismatch",
            r#"Error response from daemon: Get https://10.1.1.1:5000/v2/: tls: oversized record received with length 20527"#,
        ),
        (
            "image-not-found",
            r#"failed to copy: httpReadSeeker: failed open: could not fetch content descriptor sha256:0a1b (application/vnd.docker.image.rootfs.diff.tar.gzip) from remote: not found"#,
        ),
        (
            "unsupported-manifest",
            r#"failed to pull and unpack image "docker.io/x/y:1": failed to extract layer sha256:2c3d: failed to get stream processor for application/vnd.oci.image.layer.v1.tar+zstd: no processor for media type application/vnd.oci.image.layer.v1.tar+zstd"#,
        ),
        // a file system's permission error is not the registry's DENIED
        (
            "disk-or-extract",
            r#"failed to pull and unpack image "docker.io/x/y:1": failed to extract layer sha256:9f: mkdir /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs/etc: permission denied: unknown"#,
        ),
        (
            "unknown",
            r#"open /etc/containerd/certs.d/reg.example.com/hosts.toml: permission denied: unknown"#,
        ),
    ];
    for (want, text) in table {
        let want: Cause = want.parse().unwrap();
        let c = classify_message(text);
        assert_eq!(
            c.cause, want,
            "text: {text}\ncandidates: {:?}\nevidence: {:?}",
            c.candidates, c.evidence
        );
        for e in &c.evidence {
            assert!(!e.contains("SECRETVALUE"), "secret echoed: {e}");
        }
    }
}

/// Secret-looking substrings never survive into the echoed fields.
#[test]
fn evidence_never_echoes_secrets() {
    let texts = [
        "failed to authorize: failed to fetch oauth token: unexpected status from POST request to https://alice:Sup3rS3cret@harbor.example/service/token?access_token=tok_9f8e7d6c&password=hunter2: 401 Unauthorized",
        "Get \"https://bob:pa55word@reg.example.com/v2/\": x509: certificate signed by unknown authority",
        "Error response from daemon: Get https://reg.example.com/v2/a/manifests/1?token=abcdef123456: unauthorized: authentication required Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig",
        "unexpected status from GET request to https://reg.example.com/token?scope=x&refresh_token=rt_0011223344: 403 Forbidden; Authorization: Basic YWxpY2U6c2VjcmV0",
        "illegal base64 data at input byte 4 in {\"auths\":{\"r\":{\"auth\":\"YWxpY2U6c2VjcmV0\",\"password\":\"hunter2\"}}}",
    ];
    let secrets = [
        "Sup3rS3cret",
        "tok_9f8e7d6c",
        "hunter2",
        "pa55word",
        "abcdef123456",
        "eyJhbGciOiJSUzI1NiJ9",
        "rt_0011223344",
        "YWxpY2U6c2VjcmV0",
    ];
    for t in texts {
        let c = classify_message(t);
        let mut echoed = c.evidence.join("\n");
        echoed.push_str(c.registry.as_deref().unwrap_or(""));
        echoed.push_str(c.image.as_deref().unwrap_or(""));
        echoed.push_str(&serde_json::to_string(&c).unwrap());
        for s in secrets {
            assert!(!echoed.contains(s), "{s} leaked from {t}: {echoed}");
        }
        assert!(!c.evidence.is_empty(), "no evidence for {t}");
    }
    assert_eq!(
        redact("https://u:p@h.example/v2/?token=x&scope=y"),
        "https://REDACTED@h.example/v2/?token=REDACTED&scope=y"
    );
    assert_eq!(
        redact("Authorization: Bearer abc.def"),
        "Authorization: REDACTED"
    );
}

/// Pathological pastes (long runs of line breaks, a phrase repeated many times) are handled in
/// linear passes and cut at `MAX_MESSAGE_BYTES`.
#[test]
fn pathological_input_is_handled() {
    let breaks = "\n".repeat(300_000);
    assert_eq!(classify_message(&breaks).cause, Cause::Unknown);
    let repeated = "image x not found: ".repeat(40_000);
    assert_eq!(classify_message(&repeated).cause, Cause::ImageNotFound);
    let mut multibyte = "é".repeat(200_000);
    multibyte.push_str(" no such host");
    // cut inside the limit: the phrase after it is not read, and the cut is char-aligned
    assert_eq!(classify_message(&multibyte).cause, Cause::Unknown);
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,300}") {
        let c = classify_message(&s);
        prop_assert!(!c.candidates.contains(&c.cause));
        let _ = redact(&s);
    }

    #[test]
    fn arbitrary_bytes_with_known_phrases_never_panic(
        prefix in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,40}",
        phrase in prop::sample::select(vec![
            "failed to fetch anonymous token: ", "image \"", ": not found", "https://", "lookup ",
            "status ", "401 Unauthorized", "[rpc error:", "content digest", "\\\"", "\n", "é\n",
            "manifest for ", "reading manifest ", "token=", "Bearer ", "://@",
        ]),
        suffix in "\\PC{0,40}",
    ) {
        let s = format!("{prefix}{phrase}{suffix}");
        let _ = classify_message(&s);
        let _ = redact(&s);
    }
}
