//! The HTTPS front: routing, authentication (client certificates, the admin, node and
//! ServiceAccount tokens), authorization (admin, the node authorizer's rule, RBAC), handlers,
//! watch streaming, Table negotiation, and the `pods/log` proxy to the node.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{DeleteOptions, Filter, ListOptions, Objects, User};
use crate::pki::Pki;
use crate::resources::{self, Resource};

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 << 20;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Shared server state.
pub struct State {
    /// The object layer.
    pub objects: Objects,
    /// Certificates and tokens.
    pub pki: Pki,
    /// HTTP client for the log proxy: trusts only the cluster CA and presents the API server's
    /// client certificate (`kube-apiserver-kubelet-client`).
    pub http: reqwest::Client,
    /// ServiceAccount token signer and verifier.
    pub tokens: crate::auth::TokenIssuer,
    /// The OpenAPI v2 and v3 documents (custom kinds are added at runtime).
    pub openapi: crate::openapi::Registry,
}

fn full(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Marks a response whose body is one API object in JSON: `handle` re-encodes it as protobuf
/// when the client prefers that.
#[derive(Debug, Clone, Copy)]
struct ObjectBody;

pub(crate) fn json_resp(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = full(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    );
    r.extensions_mut().insert(ObjectBody);
    r
}

/// The response as protobuf when it is one API object (`json_resp`) of a kind that has a
/// protobuf message; JSON when it has none and the client accepts JSON too; else 406
/// (`errNotMarshalable`, as for custom resources and Tables upstream).
async fn to_protobuf(resp: Response<Body>, json_ok: bool) -> Response<Body> {
    if resp.extensions().get::<ObjectBody>().is_none() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return err_resp(&ApiError::internal(format!("encoding the response: {e}"))),
    };
    let keep = |bytes: Bytes| {
        Response::from_parts(
            parts.clone(),
            Full::new(bytes)
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
    };
    let obj: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return keep(bytes),
    };
    // not an API object (`/version`): JSON, as upstream serves it
    if obj
        .get("kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return keep(bytes);
    }
    match crate::protobuf::encode(&obj) {
        Ok(pb) => {
            let mut r = keep(Bytes::from(pb));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(crate::protobuf::MEDIA_TYPE),
            );
            r.headers_mut().remove(hyper::header::CONTENT_LENGTH);
            r
        }
        Err(_) if json_ok => keep(bytes),
        Err(e @ crate::protobuf::ProtoError::NotMarshalable(_)) => {
            // the Status itself has a protobuf form
            let err = ApiError::not_acceptable(e.to_string());
            match crate::protobuf::encode(&err.status()) {
                Ok(pb) => full(StatusCode::NOT_ACCEPTABLE, crate::protobuf::MEDIA_TYPE, pb),
                Err(_) => err_resp(&err),
            }
        }
        Err(e) => err_resp(&ApiError::internal(format!(
            "encoding the response as protobuf: {e}"
        ))),
    }
}

fn header(req: &Request<hyper::body::Incoming>, name: hyper::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn openapi_reply(reply: crate::openapi::Reply) -> Response<Body> {
    let mut r = full(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "",
        reply.body.to_vec(),
    );
    r.headers_mut().remove(hyper::header::CONTENT_TYPE);
    for (k, v) in reply.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn err_resp(e: &ApiError) -> Response<Body> {
    json_resp(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    )
}

fn query(req: &Request<hyper::body::Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn q<'a>(qs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    qs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

/// The authenticators, in kube-apiserver's order: a client certificate signed by the cluster CA
/// (CN user, O groups), then bearer tokens: the admin token, node tokens (current generation),
/// ServiceAccount tokens (signature, issuer, audience, times, and the objects they name).
///
/// A client certificate's user is made once per connection: the TLS handshake verified the
/// chain against the cluster CA and [`cert_user`] mapped it (k8s.io/apiserver
/// `pkg/authentication/request/x509/x509.go`: `AuthenticateRequest` verifies the connection's
/// peer certificates, `CommonNameUserConversion` maps CN and O); each request shares that user.
async fn authenticate(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    cert_user: Option<Arc<crate::auth::UserInfo>>,
) -> Option<User> {
    if let Some(u) = cert_user {
        return Some(User::Other(u));
    }
    let h = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = h.strip_prefix("Bearer ")?.trim();
    authenticate_token(state, token, &[crate::auth::ISSUER])
        .await
        .map(|(u, _)| u)
}

/// The token authenticators; with the audiences the token is good for (ServiceAccount tokens
/// carry theirs; the admin and node tokens are for this API server only).
pub(crate) async fn authenticate_token(
    state: &State,
    token: &str,
    audiences: &[&str],
) -> Option<(User, Vec<String>)> {
    let api_only = || {
        audiences
            .contains(&crate::auth::ISSUER)
            .then(|| vec![crate::auth::ISSUER.to_string()])
    };
    let admin = state.pki.admin_token.as_bytes();
    if token.len() == admin.len()
        && token
            .bytes()
            .zip(admin.iter())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
    {
        return Some((User::Admin, api_only()?));
    }
    if token.starts_with(crate::pki::NODE_TOKEN_PREFIX) {
        let n = state.pki.node_of(token)?;
        return Some((User::Node(n), api_only()?));
    }
    if crate::auth::looks_like_jwt(token) {
        let now = jiff::Timestamp::now().as_second();
        let c = state.tokens.verify(token, audiences, now)?;
        if !service_account_still_valid(state, &c, now).await {
            return None;
        }
        let auds = c
            .audiences
            .iter()
            .filter(|a| audiences.contains(&a.as_str()))
            .cloned()
            .collect();
        return Some((User::Other(Arc::new(c.user())), auds));
    }
    None
}

/// The objects a ServiceAccount token names still exist with the same UIDs, and were not deleted
/// more than the leeway ago (`pkg/serviceaccount/claims.go` `Validate`).
async fn service_account_still_valid(state: &State, c: &crate::auth::Claims, now: i64) -> bool {
    let alive = |o: &Value, uid: &str| {
        o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid)
            && o.pointer("/metadata/deletionTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t.as_second() + crate::auth::LEEWAY_SECS > now)
    };
    let get = |plural: &'static str, ns: String, name: String| async move {
        let r = resources::find("", "v1", plural)?;
        state.objects.get_opt(r, &ns, &name).await.ok().flatten()
    };
    match get("serviceaccounts", c.namespace.clone(), c.name.clone()).await {
        Some(sa) if alive(&sa, &c.uid) => {}
        _ => return false,
    }
    for b in c.bound.iter().chain(c.node.iter()) {
        let (plural, ns) = match b.kind.as_str() {
            "Pod" => ("pods", c.namespace.clone()),
            "Secret" => ("secrets", c.namespace.clone()),
            "Node" => ("nodes", String::new()),
            _ => return false,
        };
        match get(plural, ns, b.name.clone()).await {
            Some(o) if alive(&o, &b.uid) => {}
            _ => return false,
        }
    }
    true
}

/// The user of a client certificate (CN, O) the TLS layer verified against the cluster CA.
pub fn cert_user(der: &[u8]) -> Option<crate::auth::UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    groups.push("system:authenticated".into());
    Some(crate::auth::UserInfo {
        name,
        uid: String::new(),
        groups,
        extra: Default::default(),
    })
}

/// A parsed resource path.
#[derive(Debug, Clone)]
struct Target {
    r: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

#[cfg(test)]
fn parse_target(path: &str) -> Option<Target> {
    parse_target_in(path, None)
}

/// The target of a resource path: a served resource, built in or from a CRD. Only the parts
/// kept are copied out of `path`.
fn parse_target_in(path: &str, crds: Option<&crate::crd::Registry>) -> Option<Target> {
    let find = |g: &str, v: &str, p: &str| {
        resources::find(g, v, p).or_else(|| crds.and_then(|c| c.find(g, v, p)))
    };
    // at most `apis/G/V/namespaces/NS/PLURAL/NAME/SUB`: 8 segments; a ninth is not a target
    let mut parts = [""; 9];
    let mut len = 0;
    for p in path.trim_matches('/').split('/') {
        *parts.get_mut(len)? = p;
        len += 1;
    }
    let (group, version, rest) = match &parts[..len] {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    // `/api/v1/namespaces/NAME/status` (no resource at index 2) is the namespace object itself
    let (namespace, rest) = match rest {
        ["namespaces", ns, p, ..] if find(group, version, p).is_some() => (Some(*ns), &rest[2..]),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return None,
    };
    let r = find(group, version, plural)?;
    Some(Target {
        r,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
    })
}

/// The authorizers for a resource request given by its parts (access reviews use it).
pub(crate) async fn authorize_resource(
    objects: &Objects,
    user: &User,
    verb: &str,
    r: &'static Resource,
    namespace: &str,
    name: &str,
    sub: &str,
) -> ApiResult<()> {
    let t = Target {
        r,
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        name: (!name.is_empty()).then(|| name.to_string()),
        sub: (!sub.is_empty()).then(|| sub.to_string()),
    };
    authorize(objects, user, verb, &t).await
}

/// The node authorizer (plugin/pkg/auth/authorizer/node): what a node may do.
async fn authorize(objects: &Objects, user: &User, verb: &str, t: &Target) -> ApiResult<()> {
    let node = match user {
        User::Admin => return Ok(()),
        User::Node(n) => n,
        User::Other(u) => {
            return crate::rbac::authorize(
                objects,
                u,
                verb,
                t.r,
                t.sub.as_deref(),
                t.namespace.as_deref(),
                t.name.as_deref(),
            )
            .await
        }
    };
    let ns = t.namespace.as_deref().unwrap_or("");
    let name = t.name.as_deref().unwrap_or("");
    let deny = |why: &str| {
        let scope = if t.r.namespaced {
            format!(" in the namespace \"{ns}\"")
        } else {
            " at the cluster scope".to_string()
        };
        let res = match &t.sub {
            Some(s) => format!("{}/{s}", t.r.plural),
            None => t.r.plural.to_string(),
        };
        Err(ApiError::forbidden(
            t.r,
            name,
            format!(
                "{} \"{name}\" is forbidden: User \"system:node:{node}\" cannot {verb} resource \"{res}\" in API group \"{}\"{scope}{why}",
                t.r.qualified(),
                t.r.group
            ),
        ))
    };
    let read = matches!(verb, "get" | "list" | "watch");
    match (t.r.kind, t.sub.as_deref()) {
        ("Pod", None) if read => Ok(()),
        ("Pod", Some("status")) | ("Pod", None)
            if matches!(verb, "update" | "patch" | "delete") =>
        {
            let pods = resources::find("", "v1", "pods").expect("pods");
            let pod = objects.get(pods, ns, name).await?;
            if pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node) {
                Ok(())
            } else {
                deny(&format!(": can only {verb} pods bound to the node"))
            }
        }
        ("Node", _) if read => Ok(()),
        ("Node", _) if matches!(verb, "create" | "update" | "patch") => {
            if name == node || (verb == "create" && t.name.is_none()) {
                Ok(())
            } else {
                deny(&format!(": can only {verb} node \"{node}\""))
            }
        }
        ("Event", _) if matches!(verb, "create" | "update" | "patch") => Ok(()),
        // system:node (bootstrap policy): get, list, watch services (the kubelet's service
        // environment variables; the node's portal to the `kubernetes` Service)
        ("Service", None) if read => Ok(()),
        // system:node (bootstrap policy): create, get, list, watch certificatesigningrequests
        ("CertificateSigningRequest", None) if verb == "create" || read => Ok(()),
        ("Lease", _)
            if ns == "kube-node-lease"
                && (name == node
                    || (verb == "create" && t.name.is_none())
                    || read && !name.is_empty()) =>
        {
            Ok(())
        }
        ("ServiceAccount", Some("token")) if verb == "create" => {
            let pods = resources::find("", "v1", "pods").expect("pods");
            let (items, _, _) = objects
                .list(
                    pods,
                    Some(ns),
                    &ListOptions {
                        field_selector: Some(format!("spec.nodeName={node}")),
                        ..Default::default()
                    },
                )
                .await?;
            if items
                .iter()
                .any(|p| crate::objects::stored_pod_references(p, "ServiceAccount", name))
            {
                Ok(())
            } else {
                deny(&format!(
                    ": no relationship found between node '{node}' and this object"
                ))
            }
        }
        // the kubelet requests tokens for the ServiceAccounts of its pods (projected
        // serviceAccountToken volumes): node authorizer, `serviceaccounts/token` create
        ("Secret", None) | ("ConfigMap", None) | ("ServiceAccount", None) if verb == "get" => {
            let pods = resources::find("", "v1", "pods").expect("pods");
            let (items, _, _) = objects
                .list(
                    pods,
                    Some(ns),
                    &ListOptions {
                        field_selector: Some(format!("spec.nodeName={node}")),
                        ..Default::default()
                    },
                )
                .await?;
            if items
                .iter()
                .any(|p| crate::objects::stored_pod_references(p, t.r.kind, name))
            {
                Ok(())
            } else {
                deny(&format!(
                    ": no relationship found between node '{node}' and this object"
                ))
            }
        }
        _ => deny(""),
    }
}

fn output(req: &Request<hyper::body::Incoming>) -> crate::protobuf::Output {
    crate::protobuf::negotiate(
        req.headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )
}

fn wants_table(req: &Request<hyper::body::Incoming>) -> bool {
    matches!(
        output(req),
        crate::protobuf::Output::Json { table: true, .. }
    )
}

/// Whether the client asked for metadata only (`application/json;as=PartialObjectMetadata[List];
/// g=meta.k8s.io;v=v1`, what client-go's metadata client and kube-rs's metadata watches send):
/// the server then answers with `meta.k8s.io/v1` PartialObjectMetadata objects (k8s.io/apiserver
/// `handlers/response.go` `asPartialObjectMetadata`).
fn wants_metadata(req: &Request<hyper::body::Incoming>) -> bool {
    req.headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| {
            let ps: Vec<String> = first
                .split(';')
                .skip(1)
                .map(|p| p.trim().replace(' ', ""))
                .collect();
            first.trim_start().starts_with("application/json")
                && (ps.iter().any(|p| p == "as=PartialObjectMetadata")
                    || ps.iter().any(|p| p == "as=PartialObjectMetadataList"))
                && ps.iter().any(|p| p == "g=meta.k8s.io")
        })
}

/// An object reduced to its metadata.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))
    })
}

fn wants_aggregated(req: &Request<hyper::body::Incoming>) -> bool {
    req.headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .unwrap_or("")
                .contains("as=APIGroupDiscoveryList")
        })
}

/// Handles one request.
pub async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
    cert_user: Option<Arc<crate::auth::UserInfo>>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // the output is negotiated before anything is done (createHandler and the others call
    // `negotiation.NegotiateOutputMediaType` first)
    let out = output(&req);
    if out == crate::protobuf::Output::NotAcceptable
        && (path.starts_with("/api/") || path.starts_with("/apis/"))
    {
        return Ok(err_resp(&ApiError::not_acceptable(format!(
            "only the following media types are accepted: {}",
            crate::protobuf::OUTPUT_MEDIA_TYPES.join(", ")
        ))));
    }
    // boxed: the routing future is large, and hyper moves the future it is handed (into the
    // task when it spawns a stream, and on every poll of a stream it holds inline), which
    // showed as a fifth of the server's CPU per Secret create in memmove
    let (r, warnings) = crate::warnings::collect(Box::pin(route(state, req, cert_user))).await;
    let mut resp = r.unwrap_or_else(|e| err_resp(&e));
    if let crate::protobuf::Output::Protobuf { json_ok } = out {
        resp = to_protobuf(resp, json_ok).await;
    }
    for w in warnings {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&crate::warnings::header_value(&w)) {
            resp.headers_mut().append(hyper::header::WARNING, v);
        }
    }
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    crate::metrics::record(
        method.as_str(),
        &path,
        &query,
        &content_type,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(resp)
}

async fn route(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
    cert_user: Option<Arc<crate::auth::UserInfo>>,
) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => {
            return Ok(full(StatusCode::OK, "text/plain", b"ok".to_vec()))
        }
        "/version" => {
            return Ok(json_resp(
                StatusCode::OK,
                &json!({
                    "major": "1", "minor": "32", "gitVersion": "v1.32.0-kubepull",
                    "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "rust", "compiler": "rustc", "platform": "linux/amd64",
                }),
            ))
        }
        _ => {}
    }
    let user = authenticate(&state, &req, cert_user)
        .await
        .ok_or_else(ApiError::unauthorized)?;
    // `WithImpersonation` runs after authentication, before everything else
    // boxed, and only when asked for: the routing future stays as small as it was for the
    // requests that impersonate no one (every poll of it moves it)
    let acting = if crate::impersonation::asked(req.headers()) {
        Box::pin(crate::impersonation::apply(
            &state.objects,
            req.headers(),
            user,
        ))
        .await
    } else {
        Ok(user)
    };
    let user = match acting {
        Ok(u) => u,
        Err(crate::impersonation::Refused::Api(e)) => return Err(e),
        // `responsewriters.InternalError`: Go's `http.Error`, plain text
        Err(crate::impersonation::Refused::NoUser(why)) => {
            let uri = req
                .uri()
                .path_and_query()
                .map_or(path.clone(), |p| p.as_str().to_string());
            let mut resp = full(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                // `sanitizer.Replace`: `&`, `<` and `>` as HTML entities
                format!(
                    "Internal Server Error: {}: {why}",
                    crate::managedfields::go_quote(&uri)
                )
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .into_bytes()
                .into_iter()
                .chain(*b"\n")
                .collect(),
            );
            resp.headers_mut().insert(
                hyper::header::X_CONTENT_TYPE_OPTIONS,
                hyper::header::HeaderValue::from_static("nosniff"),
            );
            return Ok(resp);
        }
    };
    const REVIEWS: &[&str] = &[
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        "/apis/authentication.k8s.io/v1/tokenreviews",
    ];
    if REVIEWS.contains(&path.as_str()) && req.method() != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    match path.as_str() {
        "/apis/authentication.k8s.io/v1/selfsubjectreviews" => {
            return crate::authapi::self_subject_review(&state, req, &user).await
        }
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => {
            return crate::authapi::self_subject_access_review(&state, req, &user).await
        }
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => {
            return crate::authapi::self_subject_rules_review(&state, req, &user).await
        }
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
            return crate::authapi::subject_access_review(&state, req, &user, None).await
        }
        "/apis/authentication.k8s.io/v1/tokenreviews" => {
            return crate::authapi::token_review(&state, req, &user).await
        }
        _ => {}
    }
    if let ["apis", "authorization.k8s.io", "v1", "namespaces", ns, "localsubjectaccessreviews"] =
        path.trim_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice()
    {
        if req.method() != Method::POST {
            return Err(ApiError::method_not_allowed());
        }
        let ns = ns.to_string();
        return crate::authapi::subject_access_review(&state, req, &user, Some(&ns)).await;
    }
    // the request's target, parsed once (kube-apiserver's `RequestInfoFactory.NewRequestInfo`
    // runs once per request and the authorizers and handlers read the one `RequestInfo`):
    // `None` for a non-resource path
    let target = parse_target_in(&path, Some(state.objects.crds()));
    // non-resource paths (discovery, OpenAPI) are authorized by RBAC for users too
    // (`system:discovery`); resource paths below by the resource authorizers
    if let User::Other(u) = &user {
        if target.is_none() {
            let a = crate::rbac::Attributes {
                verb: if req.method() == Method::GET || req.method() == Method::HEAD {
                    "get".into()
                } else {
                    req.method().as_str().to_lowercase()
                },
                path: Some(path.clone()),
                ..Default::default()
            };
            if !crate::rbac::permits(&state.objects, u, &a).await? {
                return Err(crate::rbac::forbidden(&u.name, &a, None));
            }
        }
    }
    if path == "/metrics" {
        if let User::Node(n) = &user {
            return Err(ApiError::forbidden_msg(format!(
                "forbidden: User \"system:node:{n}\" cannot get path \"/metrics\""
            )));
        }
        return Ok(full(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::registry().render().into_bytes(),
        ));
    }
    if path.starts_with("/openapi/") {
        // building a document takes a while the first time: off the async workers
        let (reg, p, q) = (
            state.openapi.clone(),
            path.clone(),
            req.uri().query().map(str::to_string),
        );
        let accept = header(&req, hyper::header::ACCEPT).map(str::to_string);
        let inm = header(&req, hyper::header::IF_NONE_MATCH).map(str::to_string);
        let reply = tokio::task::spawn_blocking(move || {
            reg.serve(&p, q.as_deref(), accept.as_deref(), inm.as_deref())
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        return match reply {
            Some(reply) => Ok(openapi_reply(reply)),
            None => Err(ApiError::path_not_found()),
        };
    }
    if req.method() == Method::GET {
        if let Some(reply) = crate::openapi::crd_list_when_unserved(&path) {
            return Ok(openapi_reply(reply));
        }
    }
    let agg = wants_aggregated(&req);
    match path.trim_end_matches('/') {
        "/api" => {
            return Ok(if agg {
                full(
                    StatusCode::OK,
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                    serde_json::to_vec(&resources::aggregated(true)).unwrap_or_default(),
                )
            } else {
                json_resp(StatusCode::OK, &resources::api_versions())
            })
        }
        "/apis" => {
            return Ok(if agg {
                let mut list = resources::aggregated(false);
                crate::crd::extend_aggregated(state.objects.crds(), &mut list);
                full(
                    StatusCode::OK,
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                    serde_json::to_vec(&list).unwrap_or_default(),
                )
            } else {
                let mut list = resources::api_group_list();
                crate::crd::extend_group_list(state.objects.crds(), &mut list);
                json_resp(StatusCode::OK, &list)
            })
        }
        "/api/v1" => {
            return Ok(json_resp(
                StatusCode::OK,
                &resources::resource_list("", "v1"),
            ))
        }
        _ => {}
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", g] => {
            if let Some((g, v)) = resources::GROUPS.iter().find(|(x, _)| x == g) {
                return Ok(json_resp(StatusCode::OK, &resources::api_group(g, v)));
            }
            if let Some(group) = crate::crd::api_group(state.objects.crds(), g) {
                return Ok(json_resp(StatusCode::OK, &group));
            }
            return Err(ApiError::path_not_found());
        }
        ["apis", g, v] => {
            if resources::GROUPS.contains(&(*g, *v)) {
                return Ok(json_resp(StatusCode::OK, &resources::resource_list(g, v)));
            }
            if let Some(list) = crate::crd::resource_list(state.objects.crds(), g, v) {
                return Ok(json_resp(StatusCode::OK, &list));
            }
            return Err(ApiError::path_not_found());
        }
        _ => {}
    }
    let t = target.ok_or_else(ApiError::path_not_found)?;
    let qs = query(&req);
    let (dry_run, field_manager) = (
        q(&qs, "dryRun").is_some(),
        q(&qs, "fieldManager").map(str::to_string),
    );
    let fields = crate::managedfields::Request {
        field_manager: field_manager.clone(),
        user_agent: req
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        force: q(&qs, "force") == Some("true"),
    };
    crate::webhooks::scope(
        user.clone(),
        dry_run,
        field_manager,
        Box::pin(crate::managedfields::scope(
            fields,
            resource_request(state, req, user, t),
        )),
    )
    .await
}

pub(crate) async fn read_body(req: Request<hyper::body::Incoming>) -> ApiResult<(String, Value)> {
    let ct_header = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = crate::protobuf::body_format(ct_header);
    let ct = ct_header.unwrap_or("application/json").to_string();
    if format == crate::protobuf::BodyFormat::Unsupported {
        return Err(ApiError::unsupported_media_type(
            crate::protobuf::BODY_MEDIA_TYPES,
        ));
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "reading the request body: {e} (the limit is {MAX_BODY} bytes)"
            ))
        })?
        .to_bytes();
    if format == crate::protobuf::BodyFormat::Protobuf {
        // a malformed body is a 400 naming the problem (`transformDecodeError`)
        let v = crate::protobuf::decode(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return Ok((crate::protobuf::MEDIA_TYPE.into(), v));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    Ok((ct, v))
}

fn delete_options(qs: &[(String, String)], body: Option<&Value>) -> DeleteOptions {
    let mut o = DeleteOptions {
        grace_period_seconds: q(qs, "gracePeriodSeconds").and_then(|v| v.parse().ok()),
        propagation_policy: q(qs, "propagationPolicy").map(str::to_string),
        ..Default::default()
    };
    if let Some(b) = body {
        if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
            o.grace_period_seconds = Some(g);
        }
        if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation_policy = Some(p.to_string());
        }
        if b.get("orphanDependents") == Some(&json!(true)) {
            o.propagation_policy = Some("Orphan".into());
        }
        o.uid = b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.resource_version = b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    o
}

fn scale_of(obj: &Value) -> Value {
    // a ReplicationController's selector is a map itself (`labels.SelectorFromSet(...).String()`,
    // sorted); the apps kinds' a LabelSelector's matchLabels
    let rc = obj.get("kind").and_then(Value::as_str) == Some("ReplicationController");
    let map = if rc {
        obj.pointer("/spec/selector")
    } else {
        obj.pointer("/spec/selector/matchLabels")
    };
    let sel = map
        .and_then(Value::as_object)
        .map(|m| {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            if rc {
                kv.sort();
            }
            kv.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj.pointer("/metadata/name"), "namespace": obj.pointer("/metadata/namespace"),
            "uid": obj.pointer("/metadata/uid"), "resourceVersion": obj.pointer("/metadata/resourceVersion"),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": sel},
    })
}

async fn resource_request(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
    user: User,
    t: Target,
) -> ApiResult<Response<Body>> {
    let qs = query(&req);
    let method = req.method().clone();
    let impersonated = crate::impersonation::asked(req.headers());
    let table = wants_table(&req);
    let metadata_only = !table && wants_metadata(&req);
    let include = if table {
        crate::table_workloads::include_object(q(&qs, "includeObject"))
            .map_err(ApiError::bad_request)?
    } else {
        "Metadata"
    };
    let watch = matches!(q(&qs, "watch"), Some("1") | Some("true"));
    crate::warnings::set_warn_unknown_fields(matches!(
        q(&qs, "fieldValidation"),
        None | Some("") | Some("Warn")
    ));
    let strict = q(&qs, "fieldValidation") == Some("Strict");
    let r = t.r;
    let ns = t.namespace.clone().unwrap_or_default();
    if r.namespaced && t.namespace.is_none() && t.name.is_some() {
        return Err(ApiError::path_not_found());
    }
    let cr = state.objects.crds().served(r);
    if let Some(w) = cr.as_ref().and_then(|sv| sv.deprecation.clone()) {
        crate::warnings::add(w);
    }
    if let (Some(sv), Some(sub)) = (&cr, t.sub.as_deref()) {
        if !sv.r.subresources.contains(&sub) {
            return Err(ApiError::path_not_found());
        }
    }
    let verb = match (&method, t.name.is_some(), watch) {
        (&Method::GET, false, true) => "watch",
        (&Method::GET, false, false) => "list",
        (&Method::GET, true, _) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, false, _) => "deletecollection",
        (&Method::DELETE, true, _) => "delete",
        _ => return Err(ApiError::method_not_allowed()),
    };
    if resources::CREATE_ONLY.contains(&r.kind) {
        // reviews are answered on POST before routing here
        return Err(ApiError::method_not_allowed());
    }
    // binding is a create on pods/binding: a node may not bind
    authorize(&state.objects, &user, verb, &t).await?;
    let name = t.name.clone().unwrap_or_default();
    let list_opts = ListOptions {
        label_selector: q(&qs, "labelSelector")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        field_selector: q(&qs, "fieldSelector")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        limit: q(&qs, "limit").and_then(|v| v.parse().ok()).unwrap_or(0),
        continue_token: q(&qs, "continue")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let ns_opt = if r.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    match (verb, t.sub.as_deref()) {
        ("list", None) => {
            let (items, rev, cont) = state.objects.list(r, ns_opt, &list_opts).await?;
            if table {
                let mut tbl = table_of(cr.as_deref(), r, &items, rev);
                crate::table_workloads::set_row_objects(&mut tbl, &items, include);
                if let Some(c) = cont {
                    tbl["metadata"]["continue"] = json!(c);
                }
                return Ok(json_resp(StatusCode::OK, &tbl));
            }
            let items: Vec<Value> = items
                .into_iter()
                .map(|mut o| {
                    // custom resources keep apiVersion and kind in lists (unstructured)
                    if let Some(m) = o.as_object_mut().filter(|_| cr.is_none()) {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    o
                })
                .collect();
            let mut md = json!({"resourceVersion": rev.to_string()});
            if let Some(c) = cont {
                md["continue"] = json!(c);
            }
            if metadata_only {
                let items: Vec<Value> = items.iter().map(partial_metadata).collect();
                return Ok(json_resp(
                    StatusCode::OK,
                    &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": md, "items": items}),
                ));
            }
            Ok(json_resp(
                StatusCode::OK,
                &json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": md, "items": items}),
            ))
        }
        ("watch", None) => {
            // the CRD's retirement signal, then its definition as it is now
            let retired = cr
                .as_ref()
                .map(|sv| state.objects.crds().retirement(&sv.crd_name));
            let cr = match cr {
                Some(_) => Some(
                    state
                        .objects
                        .crds()
                        .served(r)
                        .ok_or_else(ApiError::path_not_found)?,
                ),
                None => None,
            };
            let fields = cr.as_ref().map_or_else(
                || crate::fieldselect::FieldSet::of(r),
                |sv| sv.fields.clone(),
            );
            let filter = Filter::with_fields(&list_opts, r, fields, None)?;
            let rv = q(&qs, "resourceVersion").unwrap_or("");
            let timeout = q(&qs, "timeoutSeconds")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1800);
            let bookmarks = q(&qs, "allowWatchBookmarks") == Some("true");
            let (initial, after) = if rv.is_empty() || rv == "0" {
                let (items, rev, _) = state.objects.list(r, ns_opt, &list_opts).await?;
                (items, rev)
            } else {
                let after: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?;
                (vec![], after)
            };
            let rx = state.objects.watch(r, ns_opt, after, filter).await?;
            let proto = matches!(output(&req), crate::protobuf::Output::Protobuf { .. });
            Ok(watch_response(
                r,
                initial,
                rx,
                WatchForm {
                    table,
                    metadata_only,
                    proto,
                    include,
                },
                timeout,
                bookmarks,
                after,
                cr,
                retired,
            ))
        }
        ("get", None) => {
            let obj = state.objects.get(r, &ns, &name).await?;
            if table {
                let rev = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let mut tbl = table_of(cr.as_deref(), r, std::slice::from_ref(&obj), rev);
                crate::table_workloads::set_row_objects(&mut tbl, &[obj], include);
                return Ok(json_resp(StatusCode::OK, &tbl));
            }
            if metadata_only {
                return Ok(json_resp(StatusCode::OK, &partial_metadata(&obj)));
            }
            Ok(json_resp(StatusCode::OK, &obj))
        }
        ("get", Some("status")) => Ok(json_resp(
            StatusCode::OK,
            &state.objects.get(r, &ns, &name).await?,
        )),
        ("get", Some("scale")) if cr.is_some() => {
            let sv = cr.as_deref().expect("custom resource");
            let obj = state.objects.get(r, &ns, &name).await?;
            let scale = crate::crd::scale_of(sv, &obj)?;
            if table {
                return Ok(json_resp(
                    StatusCode::OK,
                    &crate::crd::scale_table(sv, &scale),
                ));
            }
            Ok(json_resp(StatusCode::OK, &scale))
        }
        ("get", Some("scale")) => Ok(json_resp(
            StatusCode::OK,
            &scale_of(&state.objects.get(r, &ns, &name).await?),
        )),
        ("get", Some("log")) if r.kind == "Pod" => pod_log(&state, &ns, &name, &qs).await,
        ("create", Some("token")) if r.kind == "ServiceAccount" => {
            crate::authapi::token_request(&state, req, &ns, &name).await
        }
        ("create", None) => {
            let (_, body) = read_body(req).await?;
            crate::managedfields::validate_options(
                "CreateOptions",
                q(&qs, "fieldManager"),
                false,
                false,
            )?;
            // the node authorizer's rule for objects named in the body: a node creates only its
            // own Node and its own Lease
            if let User::Node(n) = &user {
                let named = body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if crate::resources::is_builtin(r)
                    && matches!(r.kind, "Node" | "Lease")
                    && named != n
                {
                    return Err(ApiError::forbidden(
                        r,
                        named,
                        format!(
                            "{} \"{named}\" is forbidden: User \"system:node:{n}\" cannot create resource \"{}\" in API group \"{}\": can only create its own {}",
                            r.qualified(), r.plural, r.group, r.kind
                        ),
                    ));
                }
            }
            // the RBAC escalation check runs in create, after mutating admission (as the
            // policybased storage's); a dry run (`dryRun=All`) goes through admission and is not stored
            let obj = if crate::resources::is_builtin(r) && r.kind == "CertificateSigningRequest" {
                let body = csr_admission(&state, &user, body, strict, !impersonated)?;
                state.objects.create_decoded(r, &ns, body, &user).await?
            } else {
                state.objects.create(r, &ns, body, &user, strict).await?
            };
            Ok(json_resp(StatusCode::CREATED, &obj))
        }
        ("create", Some("binding")) if r.kind == "Pod" => {
            let (_, body) = read_body(req).await?;
            let node = body
                .pointer("/target/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("binding without target.name".into()))?
                .to_string();
            let pod = state.objects.get(r, &ns, &name).await?;
            // admitted as CREATE pods/binding of a Binding; the updates below carry it out
            crate::webhooks::admit_binding(&state.objects, &ns, &name, &node).await?;
            // BindingREST.Create: the Binding names the pod of the URL; its UID and
            // resourceVersion, when set, are preconditions on the pod; its annotations are
            // added to the pod's
            if body
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty() && n != name)
            {
                return Err(ApiError::bad_request(
                    "name in URL does not match name in Binding object".into(),
                ));
            }
            let mut p = pod.clone();
            p["spec"]["nodeName"] = json!(node);
            for f in ["uid", "resourceVersion", "annotations"] {
                match body.pointer(&format!("/metadata/{f}")) {
                    Some(v) if !v.is_null() && v != "" => p["metadata"][f] = v.clone(),
                    _ => {
                        if let Some(m) = p["metadata"].as_object_mut() {
                            m.remove(f);
                        }
                    }
                }
            }
            // the binding's write of spec.nodeName, which a plain update may not change: it
            // checks the pod as stored can be bound (assigned, gated, deleted: 409 on
            // pods/binding)
            let bound = state
                .objects
                .update(r, &ns, &name, p, Some("binding"), false)
                .await?;
            crate::controllers::scheduler::mark_scheduled(&state.objects, &ns, &name, bound)
                .await?;
            Ok(json_resp(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        // EvictionREST.Create (crate::disruption::evict)
        ("create", Some("eviction")) if r.kind == "Pod" => {
            let (_, body) = read_body(req).await?;
            // `propagateDryRun`: the Eviction's own dryRun makes the request a dry run
            let dry_run = body
                .pointer("/deleteOptions/dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            let evict = crate::disruption::evict(&state.objects, &ns, &name, &body);
            let evicted = if dry_run && !crate::webhooks::dry_run() {
                crate::webhooks::scope(user.clone(), true, None, evict).await
            } else {
                evict.await
            };
            match evicted {
                Ok(st) => {
                    let code = st["code"].as_u64().and_then(|c| u16::try_from(c).ok());
                    let code = code.and_then(|c| StatusCode::from_u16(c).ok());
                    Ok(json_resp(code.unwrap_or(StatusCode::CREATED), &st))
                }
                Err(e) => {
                    // `Retry-After` from the Status' retryAfterSeconds (responsewriters)
                    let mut resp = err_resp(&e);
                    let after = e
                        .details
                        .as_ref()
                        .and_then(|d| d["retryAfterSeconds"].as_i64());
                    if let Some(v) = after.filter(|s| *s > 0) {
                        if let Ok(v) = hyper::header::HeaderValue::from_str(&v.to_string()) {
                            resp.headers_mut().insert(hyper::header::RETRY_AFTER, v);
                        }
                    }
                    Ok(resp)
                }
            }
        }
        ("update", sub @ (None | Some("status"))) => {
            let (_, body) = read_body(req).await?;
            crate::managedfields::validate_options(
                "UpdateOptions",
                q(&qs, "fieldManager"),
                false,
                false,
            )?;
            // `UpdateResource`: 201 when the update created the object
            let (obj, created) = state
                .objects
                .update_by(&user, r, &ns, &name, body, sub, strict)
                .await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_resp(code, &obj))
        }
        ("patch", sub @ (None | Some("status"))) => {
            let (ct, body) = read_body(req).await?;
            // `ValidatePatchOptions`: an apply names its field manager, only an apply forces
            crate::managedfields::validate_options(
                "PatchOptions",
                q(&qs, "fieldManager"),
                crate::managedfields::is_apply(&ct),
                q(&qs, "force").is_some(),
            )?;
            if crate::managedfields::is_apply(&ct) && sub.is_none() {
                let (code, obj) =
                    server_side_apply(&state.objects, &user, r, &ns, &name, &ct, &body, strict)
                        .await?;
                return Ok(json_resp(code, &obj));
            }
            let obj = state
                .objects
                .patch_by(&user, r, &ns, &name, &ct, &body, sub, strict)
                .await?;
            Ok(json_resp(StatusCode::OK, &obj))
        }
        ("update", Some("scale")) | ("patch", Some("scale")) => {
            let (ct, body) = read_body(req).await?;
            let scale =
                write_scale(&state, r, cr.as_deref(), &ns, &name, verb, &ct, &body, &qs).await?;
            Ok(json_resp(StatusCode::OK, &scale))
        }
        ("delete", None) => {
            let body = if req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v != "0")
            {
                read_body(req).await.ok().map(|(_, b)| b)
            } else {
                None
            };
            let opts = delete_options(&qs, body.as_ref());
            let obj = state.objects.delete(r, &ns, &name, &opts).await?;
            Ok(json_resp(StatusCode::OK, &obj))
        }
        ("deletecollection", None) => {
            let (items, _, _) = state.objects.list(r, ns_opt, &list_opts).await?;
            let opts = delete_options(&qs, None);
            for o in &items {
                let n = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ons = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let _ = state.objects.delete(r, ons, n, &opts).await;
            }
            Ok(json_resp(
                StatusCode::OK,
                &json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// How a watch writes its objects.
#[derive(Clone, Copy)]
struct WatchForm {
    /// Table rows.
    table: bool,
    /// PartialObjectMetadata.
    metadata_only: bool,
    /// Length-framed protobuf.
    proto: bool,
    /// What each Table row carries (`includeObject`).
    include: &'static str,
}

/// A replace or patch of the scale subresource (of a Deployment, a ReplicaSet or a custom
/// resource with one), as kube-apiserver's scale storage carries it out
/// (`scaleUpdatedObjectInfo`, kubernetes `pkg/registry/apps/deployment/storage/storage.go`):
/// the patch applied to the current Scale (an apply patch applied by the Scale's schema), the
/// managed fields recorded on the Scale and made the parent's again
/// ([`crate::managedfields::scale_write`]), the result admitted as an UPDATE of the
/// `autoscaling/v1` Scale (checked by [`validate_scale`] after the mutating webhooks, before the
/// validating ones), and the parent written with its replicas. A `resourceVersion` the written
/// Scale carries (the request's, or one a patch put there) is a precondition; otherwise a
/// conflict with another writer is tried again. Returns the Scale written.
#[allow(clippy::too_many_arguments)]
async fn write_scale(
    state: &State,
    r: &'static Resource,
    cr: Option<&crate::crd::Served>,
    ns: &str,
    name: &str,
    verb: &str,
    ct: &str,
    body: &Value,
    qs: &[(String, String)],
) -> ApiResult<Value> {
    use crate::managedfields::{is_apply, ScaleWrite};
    if cr.is_some() {
        crate::crd::refuse_strategic(ct)?;
    }
    let apply = verb == "patch" && is_apply(ct);
    // `ValidatePatchOptions` / `ValidateUpdateOptions`, as for the object itself
    crate::managedfields::validate_options(
        if verb == "patch" {
            "PatchOptions"
        } else {
            "UpdateOptions"
        },
        q(qs, "fieldManager"),
        apply,
        verb == "patch" && q(qs, "force").is_some(),
    )?;
    let mut update_body;
    let body = if verb == "update" {
        // the body is decoded as a Scale before anything else
        if let Some(why) = scale_decode_error(body) {
            return Err(ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: {why}"
            )));
        }
        // then its namespace and name are the URL's, as an update's object's are
        update_body = body.clone();
        scale_meta_of_update(&mut update_body, r.namespaced.then_some(ns), name)?;
        &update_body
    } else {
        body
    };
    let scale_of = |obj: &Value| match cr {
        Some(sv) => crate::crd::scale_of(sv, obj),
        None => Ok(scale_of(obj)),
    };
    let replicas_path = match cr {
        Some(sv) => sv.scale.as_ref().map_or("", |s| s.0.as_str()),
        None => ".spec.replicas",
    };
    for _ in 0..8 {
        let cur = state.objects.get(r, ns, name).await?;
        let cur_rv = cur
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let old = scale_of(&cur)?;
        let patched;
        let write = if apply {
            ScaleWrite::Apply(body)
        } else if verb == "update" {
            ScaleWrite::Update(body)
        } else {
            // a JSON patch's failing `test` is the patch's error (422), as on any object
            let mut scale = old.clone();
            crate::objects::apply_patch(&mut scale, ct, body)?;
            // the patched Scale decoded (`jsonPatcher.applyPatchToCurrentObject`)
            if let Some(why) = scale_decode_error(&scale) {
                let text = serde_json::to_string(&scale).unwrap_or_default();
                return Err(ApiError::invalid_as(
                    "",
                    "",
                    "",
                    vec![Cause::invalid("patch", json!(text).to_string(), why)],
                ));
            }
            patched = scale;
            ScaleWrite::Update(&patched)
        };
        let (scale, managed) =
            crate::managedfields::scale_write(r, &cur, &old, write, replicas_path)?;
        if verb == "patch" {
            // `patcher.applyPatch`: the patched (or applied) Scale is checked by `checkName`
            crate::objects::check_name(&scale, r.namespaced.then_some(ns), name)?;
        }
        // admitted as UPDATE <resource>/scale of an autoscaling/v1 Scale
        let a = crate::webhooks::Attributes {
            r,
            kind: Some(("autoscaling", "v1", "Scale")),
            sub: Some("scale"),
            op: crate::webhooks::Operation::Update,
            namespace: if r.namespaced { ns } else { "" },
            name,
            options: None,
        };
        // after the mutating webhooks: `ValidateScale`, a built-in parent's UID precondition
        // (`scaleUpdatedObjectInfo`: a UID the Scale names is the parent's), then the store's
        // precondition (a resourceVersion the Scale names, `if len(scale.ResourceVersion) != 0`)
        let parent_uid = cur
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let check = |scale: &Value| -> ApiResult<i64> {
            let replicas = validate_scale(r, cr.is_some(), name, scale)?;
            let uid = scale
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if cr.is_none() && !uid.is_empty() && uid != parent_uid {
                return Err(ApiError::conflict_on(
                    r.group,
                    &format!("{}/scale", r.plural),
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {parent_uid}"
                    ),
                ));
            }
            let rv = scale
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !rv.is_empty() && rv != cur_rv {
                return Err(ApiError::conflict(r, name));
            }
            Ok(replicas)
        };
        let objects = &state.objects;
        let written = crate::webhooks::subresource_checked(
            objects,
            &a,
            scale,
            Some(&old),
            check,
            |_, replicas| async move {
                let mut next = cur;
                match cr {
                    Some(sv) => crate::crd::apply_scale(sv, &mut next, replicas)?,
                    None => next["spec"]["replicas"] = json!(replicas),
                }
                // the managed fields made above, on the object they were made from
                let applied = crate::managedfields::applied(
                    r,
                    ns,
                    name,
                    &json!({"metadata": {"managedFields": managed}}),
                );
                // only the datastore's conflict (another writer came first) is tried again
                match crate::managedfields::applying(
                    Some(applied),
                    objects.update(r, ns, name, next, None, false),
                )
                .await
                {
                    Err(e) if e.code == 409 && e.reason == "Conflict" => Ok(Err(e)),
                    other => other.map(Ok),
                }
            },
        )
        .await?;
        match written {
            Err(_) => continue,
            Ok(obj) => return scale_of(&obj),
        }
    }
    Err(ApiError::conflict(r, name))
}

/// An updated Scale's namespace and name against the URL's (`ns` `None` for a cluster-scoped
/// parent), as an update's object is checked (apiserver `handlers/update.go`): no namespace is
/// the URL's (`EnsureObjectNamespaceMatchesRequestNamespace`), another is a 400; a cluster-scoped
/// parent's Scale has none; then `checkName`: a name, the URL's.
fn scale_meta_of_update(scale: &mut Value, ns: Option<&str>, name: &str) -> ApiResult<()> {
    if !scale.get("metadata").is_some_and(Value::is_object) {
        scale["metadata"] = json!({});
    }
    let given_ns = scale
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match ns {
        None => {
            if let Some(m) = scale["metadata"].as_object_mut() {
                m.remove("namespace");
            }
        }
        Some(ns) if given_ns.is_empty() => scale["metadata"]["namespace"] = json!(ns),
        Some(ns) if given_ns != ns => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        )),
        Some(_) => {}
    }
    crate::objects::check_name(scale, None, name)
}

/// Why a Scale does not decode as an `autoscaling/v1` Scale (`spec.replicas` is an `int32`;
/// absent or null it is 0), in the JSON decoder's words.
fn scale_decode_error(scale: &Value) -> Option<String> {
    let what = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
            return None
        }
        Some(Value::Number(n)) => format!("number {n}"),
        Some(Value::String(_)) => "string".into(),
        Some(Value::Bool(_)) => "bool".into(),
        Some(Value::Array(_)) => "array".into(),
        Some(Value::Object(_)) => "object".into(),
    };
    Some(format!(
        "json: cannot unmarshal {what} into Go struct field ScaleSpec.spec.replicas of type int32"
    ))
}

/// `ValidateScale` (kubernetes `pkg/apis/autoscaling/validation/validation.go`) of an admitted
/// Scale of a built-in `r`: returns its replicas. Its metadata is checked as any object's
/// (`ValidateObjectMeta` with `NameIsDNSSubdomain`: generateName and name, labels, annotation
/// keys), then `spec.replicas`. A custom resource's Scale is not checked: only its replicas
/// are taken into the custom resource (apiextensions `scaleUpdatedObjectInfo`), whose own
/// validation checks them ([`crate::crd::validate_cr`]). A Scale a mutating webhook made
/// undecodable is an internal error, as the webhook dispatcher makes it.
fn validate_scale(r: &Resource, custom: bool, name: &str, scale: &Value) -> ApiResult<i64> {
    if let Some(why) = scale_decode_error(scale) {
        return Err(ApiError::internal(format!(
            "Internal error occurred: {why}"
        )));
    }
    if custom {
        return Ok(scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0));
    }
    let meta = |p: &str| scale.pointer(p).and_then(Value::as_str);
    let mut causes = crate::admission::validate_name(
        r,
        meta("/metadata/name").unwrap_or(""),
        meta("/metadata/generateName"),
    );
    crate::validation::validate_labels(
        scale.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    crate::validation::validate_annotations(
        scale.pointer("/metadata/annotations"),
        "metadata.annotations",
        &mut causes,
    );
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        causes.push(Cause::invalid(
            "spec.replicas",
            replicas.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid_as("autoscaling", "Scale", name, causes));
    }
    Ok(replicas)
}

/// The Table of `items`: a custom resource's printer columns, or the built-in printers.
fn table_of(cr: Option<&crate::crd::Served>, r: &Resource, items: &[Value], rev: u64) -> Value {
    match cr {
        Some(sv) => crate::crd::table(sv, items, rev),
        None => crate::table::table(r, items, rev),
    }
}

/// Resolves once `retired` turns true (or its CRD's entry is gone); never without a signal.
async fn ended(retired: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match retired {
        Some(r) => {
            let _ = r.wait_for(|v| *v).await;
        }
        None => std::future::pending().await,
    }
}

fn watch_response(
    r: &'static Resource,
    initial: Vec<Value>,
    rx: tokio::sync::mpsc::Receiver<ApiResult<crate::objects::WatchEvent>>,
    form: WatchForm,
    timeout_secs: u64,
    bookmarks: bool,
    start_rev: u64,
    cr: Option<Arc<crate::crd::Served>>,
    retired: Option<tokio::sync::watch::Receiver<bool>>,
) -> Response<Body> {
    let WatchForm {
        table,
        metadata_only,
        proto,
        include,
    } = form;
    // one event: a JSON line, or a length-prefixed protobuf WatchEvent (§ watch.go)
    let line = move |kind: &str, object: &Value| -> Bytes {
        if proto {
            let frame = crate::protobuf::watch_frame(kind, object).or_else(|e| {
                let st = ApiError::internal(format!("encoding a watch event: {e}")).status();
                crate::protobuf::watch_frame("ERROR", &st)
            });
            return Bytes::from(frame.unwrap_or_default());
        }
        crate::watchfanout::json_line(kind, object)
    };
    let encode = Arc::new(move |kind: &str, obj: Value| -> Bytes {
        let object = if table {
            let rev = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let mut tbl = table_of(cr.as_deref(), r, std::slice::from_ref(&obj), rev);
            crate::table_workloads::set_row_objects(&mut tbl, &[obj], include);
            tbl
        } else if metadata_only {
            partial_metadata(&obj)
        } else {
            obj
        };
        line(kind, &object)
    });
    let first: Vec<Result<Frame<Bytes>, std::io::Error>> = initial
        .into_iter()
        .map(|mut o| {
            o["kind"] = json!(r.kind);
            o["apiVersion"] = json!(r.api_version());
            Ok(Frame::data(encode("ADDED", o)))
        })
        .collect();
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(timeout_secs.min(3600));
    let api_version = r.api_version();
    let kind = r.kind;
    // a custom resource's watch ends when its CRD's definition changes
    let retired = Arc::new(tokio::sync::Mutex::new(retired));
    let live = futures_util::stream::unfold((rx, start_rev), move |(mut rx, mut last)| {
        let api_version = api_version.clone();
        let encode = encode.clone();
        let retired = retired.clone();
        async move {
            let mut retired = retired.lock().await;
            loop {
                let tick = tokio::time::sleep(std::time::Duration::from_secs(if bookmarks { 30 } else { 3600 }));
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return None,
                    _ = ended(&mut retired) => return None,
                    ev = rx.recv() => {
                        return match ev {
                            None => None,
                            Some(Ok(e)) => {
                                last = e.object.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(last);
                                // the plain JSON form of a fanned-out event is encoded once for
                                // every watcher
                                let frame = if table || metadata_only || proto {
                                    encode(e.kind, Arc::unwrap_or_clone(e.object))
                                } else {
                                    e.json_line()
                                };
                                Some((Ok(Frame::data(frame)), (rx, last)))
                            }
                            Some(Err(e)) => {
                                Some((Ok(Frame::data(line("ERROR", &e.status()))), (rx, u64::MAX)))
                            }
                        };
                    }
                    _ = tick => {
                        if bookmarks {
                            let bm = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last.to_string()}});
                            return Some((Ok(Frame::data(line("BOOKMARK", &bm))), (rx, last)));
                        }
                    }
                }
            }
        }
    })
    .take_while(|_| futures_util::future::ready(true));
    let stream = futures_util::stream::iter(first).chain(live);
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(if proto {
            "application/vnd.kubernetes.protobuf;stream=watch"
        } else {
            "application/json"
        }),
    );
    resp
}

async fn pod_log(
    state: &State,
    ns: &str,
    name: &str,
    qs: &[(String, String)],
) -> ApiResult<Response<Body>> {
    let pods = resources::find("", "v1", "pods").expect("pods");
    let pod = state.objects.get(pods, ns, name).await?;
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match q(qs, "container") {
        Some(c) if !c.is_empty() => {
            if !containers.iter().any(|x| x == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        _ if containers.len() == 1 => containers[0].clone(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let nodes = resources::find("", "v1", "nodes").expect("nodes");
    let n = state.objects.get(nodes, "", &node).await?;
    let ip = n
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|x| x.get("address").and_then(Value::as_str))
        .unwrap_or("127.0.0.1")
        .to_string();
    let port = n
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .unwrap_or(10250);
    let mut url = format!("https://{ip}:{port}/containerLogs/{ns}/{name}/{container}?");
    for k in ["follow", "tailLines", "timestamps", "previous"] {
        if let Some(v) = q(qs, k) {
            url.push_str(&format!("{k}={v}&"));
        }
    }
    let url = url.trim_end_matches(['?', '&']).to_string();
    let resp = state.http.get(&url).send().await.map_err(|e| {
        ApiError::unknown_internal(format!("Get \"{url}\": {}", tls_error_text(&e)))
    })?;
    // the certificate is the node's own: issued to system:node:<node> (the CA was checked, and
    // the address, by the TLS handshake)
    let peer_cn = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .and_then(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string);
            cn
        })
        .unwrap_or_default();
    if peer_cn != format!("system:node:{node}") {
        return Err(ApiError::unknown_internal(format!(
            "Get \"{url}\": tls: the serving certificate of node \"{node}\" is issued to {peer_cn:?}, not \"system:node:{node}\""
        )));
    }
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(ApiError::bad_request(text.trim().to_string()));
    }
    let stream = resp
        .bytes_stream()
        .map(|r| r.map(Frame::data).map_err(std::io::Error::other));
    let mut out = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

/// The TLS failure as kube-apiserver (Go's crypto/tls) words it, or the error chain.
fn tls_error_text(e: &reqwest::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let all = chain.join(": ");
    if all.contains("UnknownIssuer") || all.contains("unknown issuer") {
        "tls: failed to verify certificate: x509: certificate signed by unknown authority".into()
    } else if all.contains("NotValidForName") || all.contains("not valid for name") {
        "tls: failed to verify certificate: x509: certificate is not valid for the node's address"
            .into()
    } else if all.contains("Expired") {
        "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
            .into()
    } else {
        all
    }
}

/// CertificateSigningRequest admission: the requestor is recorded (`spec.username`, `groups`),
/// `status` is the server's, the request must be a PEM certificate request, and a node's request
/// for its own serving certificate (signer `kubernetes.io/kubelet-serving`, subject
/// `system:node:<name>`) is approved and signed by the cluster CA at once.
fn csr_admission(
    state: &State,
    user: &User,
    body: Value,
    strict: bool,
    own_credentials: bool,
) -> ApiResult<Value> {
    use k8s_openapi::api::certificates::v1 as certs;
    let r =
        resources::find("certificates.k8s.io", "v1", "certificatesigningrequests").expect("csr");
    // decoded once into the typed object (a type error, or an unknown field with
    // fieldValidation=Strict, is a 400 as for every body), then admitted and encoded once
    let mut csr: certs::CertificateSigningRequest =
        crate::admission::decode_body(r, body, strict).map_err(ApiError::bad_request)?;
    let name = csr.metadata.name.clone().unwrap_or_default();
    // `PrepareForCreate` (pkg/registry/certificates/certificates/strategy.go): the status is
    // the server's
    csr.status = None;
    let mut causes = vec![];
    let signer = csr.spec.signer_name.clone();
    if signer.is_empty() {
        causes.push(crate::errors::Cause::required("spec.signerName", ""));
    }
    // `validateCSR`: the request must be a PEM `CERTIFICATE REQUEST` block
    let pem = match std::str::from_utf8(&csr.spec.request.0) {
        _ if csr.spec.request.0.is_empty() => {
            causes.push(crate::errors::Cause::required("spec.request", ""));
            None
        }
        Ok(p) if p.contains("-----BEGIN CERTIFICATE REQUEST-----") => Some(p.to_string()),
        _ => {
            causes.push(crate::errors::Cause::invalid(
                "spec.request",
                "[]byte{...}",
                "PEM block type must be CERTIFICATE REQUEST",
            ));
            None
        }
    };
    if !causes.is_empty() {
        return Err(ApiError::invalid(r, &name, causes));
    }
    let (username, groups) = user.identity();
    csr.spec.username = Some(username);
    csr.spec.groups = Some(groups);
    // a node's serving certificate is signed for the node's own credentials only, never for
    // a caller impersonating a node
    if let (User::Node(node), Some(pem), true) = (user, pem, own_credentials) {
        if signer == crate::pki::KUBELET_SERVING_SIGNER {
            let cert = state.pki.sign_kubelet_serving(&pem, node).map_err(|why| {
                ApiError::forbidden(
                    r,
                    &name,
                    format!("{} \"{name}\" is forbidden: {why}", r.qualified()),
                )
            })?;
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                    .unwrap_or_else(|_| jiff::Timestamp::now()),
            );
            csr.status = Some(certs::CertificateSigningRequestStatus {
                conditions: Some(vec![certs::CertificateSigningRequestCondition {
                    type_: "Approved".into(),
                    status: "True".into(),
                    reason: Some("AutoApproved".into()),
                    message: Some(format!(
                        "Auto approving the serving certificate of system:node:{node}"
                    )),
                    last_update_time: Some(now.clone()),
                    last_transition_time: Some(now),
                }]),
                certificate: Some(k8s_openapi::ByteString(cert.into_bytes())),
            });
        }
    }
    serde_json::to_value(&csr).map_err(|e| ApiError::internal(e.to_string()))
}

/// A server-side apply of the object `name`: the applied configuration merged into an empty
/// object creates what does not exist yet (201), and is patched into what does (200). RBAC
/// objects are checked for escalation on the object the patch and mutating admission make
/// (in create and update).
#[allow(clippy::too_many_arguments)]
async fn server_side_apply(
    objects: &Objects,
    user: &User,
    r: &'static Resource,
    ns: &str,
    name: &str,
    ct: &str,
    body: &Value,
    strict: bool,
) -> ApiResult<(StatusCode, Value)> {
    if objects.get_opt(r, ns, name).await?.is_none() {
        if let Some(created) = apply_create(objects, user, r, ns, name, body, strict).await? {
            return Ok((StatusCode::CREATED, created));
        }
    }
    let obj = objects
        .patch_by(user, r, ns, name, ct, body, None, strict)
        .await?;
    Ok((StatusCode::OK, obj))
}

/// The create of a server-side apply of an object that was not found; `None` when another
/// writer created it in between, which the apply then updates as a patch: apiserver
/// `registry/generic/registry/store.go` `Update` with `forceAllowCreate` creates inside
/// `GuaranteedUpdate` (ignoreNotFound), whose precondition failure on the object now
/// existing retries the write as an update of it.
async fn apply_create(
    objects: &Objects,
    user: &User,
    r: &'static Resource,
    ns: &str,
    name: &str,
    body: &Value,
    strict: bool,
) -> ApiResult<Option<Value>> {
    let cr = objects.crds().served(r);
    let obj = crate::managedfields::apply(r, cr.as_deref(), None, body, None)?;
    // `patcher.applyPatch`'s `checkName`: the applied object names the URL's (none being a
    // mismatch too)
    let given = obj.pointer("/metadata/name").and_then(Value::as_str);
    if given != Some(name) {
        return Err(ApiError::name_mismatch(given.unwrap_or(""), name));
    }
    let applied = Some(crate::managedfields::applied(r, ns, name, &obj));
    match crate::managedfields::applying(applied, objects.create(r, ns, obj, user, strict)).await {
        Ok(created) => Ok(Some(created)),
        Err(e) if e.reason == "AlreadyExists" => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The objects of a fresh in-memory store, with the default namespace.
    async fn store() -> Objects {
        let o = Objects::new(Arc::new(crate::teststore::TestStore::default()));
        o.bootstrap().await.unwrap();
        o
    }

    fn as_manager(m: &str) -> crate::managedfields::Request {
        crate::managedfields::Request {
            field_manager: Some(m.into()),
            user_agent: None,
            force: false,
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    /// An apply that found no object whose create then meets the object another writer made
    /// in between is an update of it (apiserver `store.go` `Update` with `forceAllowCreate`),
    /// not a 409 AlreadyExists.
    #[tokio::test]
    async fn an_apply_create_that_loses_the_race_is_an_update() {
        use crate::managedfields::scope;
        let o = store().await;
        let r = resources::find("", "v1", "configmaps").unwrap();
        let ct = "application/apply-patch+yaml";
        let first = scope(
            as_manager("a"),
            apply_create(
                &o,
                &User::Admin,
                r,
                "default",
                "c",
                &cm(json!({"a": "1"})),
                false,
            ),
        )
        .await
        .unwrap();
        assert!(first.is_some());
        // the second writer's create, after its lookup found nothing
        let second = scope(
            as_manager("b"),
            apply_create(
                &o,
                &User::Admin,
                r,
                "default",
                "c",
                &cm(json!({"b": "2"})),
                false,
            ),
        )
        .await
        .unwrap();
        assert!(second.is_none());
        let (code, obj) = scope(
            as_manager("b"),
            server_side_apply(
                &o,
                &User::Admin,
                r,
                "default",
                "c",
                ct,
                &cm(json!({"b": "2"})),
                false,
            ),
        )
        .await
        .unwrap();
        assert_eq!(code, StatusCode::OK);
        assert_eq!(obj["data"], json!({"a": "1", "b": "2"}));
        let managers: Vec<_> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["manager"].as_str().unwrap(),
                    m["operation"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(managers, [("a", "Apply"), ("b", "Apply")]);
    }

    /// Concurrent applies of one new object all succeed, one of them creating it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_apply_creates_all_succeed() {
        let o = Arc::new(store().await);
        let r = resources::find("", "v1", "configmaps").unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let o = o.clone();
                tokio::spawn(crate::managedfields::scope(
                    as_manager(&format!("m{i}")),
                    async move {
                        let body = cm(json!({format!("k{i}"): "v"}));
                        let ct = "application/apply-patch+yaml";
                        server_side_apply(&o, &User::Admin, r, "default", "c", ct, &body, false)
                            .await
                    },
                ))
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            let (code, _) = t.await.unwrap().unwrap();
            created += usize::from(code == StatusCode::CREATED);
        }
        assert_eq!(created, 1);
        let obj = o.get(r, "default", "c").await.unwrap();
        assert_eq!(obj["data"].as_object().unwrap().len(), 8);
    }

    #[test]
    fn targets() {
        let t = parse_target("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(
            (
                t.r.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("status"))
        );
        let t = parse_target("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (t.r.plural, t.namespace.as_deref(), t.name.as_deref()),
            ("namespaces", None, Some("default"))
        );
        let t = parse_target("/apis/apps/v1/deployments").unwrap();
        assert_eq!((t.r.plural, t.namespace.as_deref()), ("deployments", None));
        let t = parse_target("/api/v1/namespaces/x/finalize");
        assert!(t.is_some());
        assert_eq!(pct_decode("a%3Db%2Cc"), "a=b,c");
    }

    #[test]
    fn target_shapes() {
        let parts = |p: &str| {
            parse_target(p).map(|t| {
                (
                    t.r.plural,
                    t.namespace.unwrap_or_default(),
                    t.name.unwrap_or_default(),
                    t.sub.unwrap_or_default(),
                )
            })
        };
        let own = |p: &'static str, ns: &str, n: &str, s: &str| {
            Some((p, ns.to_string(), n.to_string(), s.to_string()))
        };
        // the longest target: a namespaced subresource of a named group
        assert_eq!(
            parts("/apis/apps/v1/namespaces/ns/deployments/web/scale"),
            own("deployments", "ns", "web", "scale")
        );
        assert_eq!(
            parts("/api/v1/namespaces/ns/secrets/"),
            own("secrets", "ns", "", "")
        );
        // a cluster-scoped resource under namespaces/… is the namespace's subresource
        assert_eq!(
            parts("/api/v1/namespaces/ns/status"),
            own("namespaces", "", "ns", "status")
        );
        // not resource paths: discovery, a segment too many, unknown resources
        for p in [
            "/",
            "/api",
            "/api/v1",
            "/apis/apps/v1",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale/x",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale/x/y/z",
            "/api/v1/namespaces/ns/pods/a/b/c",
            "/api/v1/nonsense",
            "/healthz",
        ] {
            assert_eq!(parts(p), None, "{p}");
        }
    }
}
