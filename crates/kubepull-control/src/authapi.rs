//! The authentication APIs: `TokenRequest` (`serviceaccounts/token`, ported from
//! k8s.io/kubernetes `pkg/registry/core/serviceaccount/storage/token.go`, defaults from
//! `pkg/apis/authentication/v1/defaults.go`, validation from
//! `pkg/apis/authentication/validation`) and `SelfSubjectReview` (`kubectl auth whoami`,
//! `pkg/registry/authentication/selfsubjectreview/rest.go`).

use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::{Bound, Claims, ISSUER};
use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::User;
use crate::resources;
use crate::server::{json_resp, read_body, State};

type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>;

/// `expirationSeconds` when unset.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Checks that a body is of `kind` (when it names one).
fn expect_kind(body: &Value, group_version: &str, kind: &str) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a {group_version} {kind} object"
        )));
    }
    match body.get("kind").and_then(Value::as_str) {
        None | Some("") => Ok(()),
        Some(k) if k == kind => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "the body must be a {group_version} {kind}, not a {other}"
        ))),
    }
}

fn user_info(user: &User) -> Value {
    let (name, groups) = user.identity();
    let (uid, extra) = match user {
        User::Other(u) => (
            u.uid.clone(),
            serde_json::to_value(&u.extra).unwrap_or(json!({})),
        ),
        _ => (String::new(), json!({})),
    };
    let mut v = json!({"username": name, "groups": groups});
    if !uid.is_empty() {
        v["uid"] = json!(uid);
    }
    if extra.as_object().is_some_and(|m| !m.is_empty()) {
        v["extra"] = extra;
    }
    v
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: who the caller is.
pub async fn self_subject_review(
    _state: &State,
    req: Request<hyper::body::Incoming>,
    user: &User,
) -> ApiResult<Response<Body>> {
    if req.method() != hyper::Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let (_, body) = read_body(req).await?;
    expect_kind(&body, "authentication.k8s.io/v1", "SelfSubjectReview")?;
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": crate::controllers::now()},
            "status": {"userInfo": user_info(user)},
        }),
    ))
}

fn token_invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    let text: Vec<String> = causes.iter().map(Cause::text).collect();
    let msg = if text.len() == 1 {
        text[0].clone()
    } else {
        format!("[{}]", text.join(", "))
    };
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: {msg}"),
        details: Some(
            json!({"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest"}),
        ),
    }
}

/// `POST /api/v1/namespaces/NS/serviceaccounts/SA/token`: a bound, expiring token for the
/// ServiceAccount. Nothing is stored.
pub async fn token_request(
    state: &State,
    req: Request<hyper::body::Incoming>,
    ns: &str,
    sa_name: &str,
) -> ApiResult<Response<Body>> {
    let (_, body) = read_body(req).await?;
    expect_kind(&body, "authentication.k8s.io/v1", "TokenRequest")?;
    let sar = resources::find("", "v1", "serviceaccounts").expect("sa");
    let sa = state.objects.get(sar, ns, sa_name).await?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    if !spec.is_object() {
        return Err(ApiError::bad_request(
            "spec: the TokenRequest spec must be an object".into(),
        ));
    }
    // defaults
    let audiences: Vec<String> = match spec.get("audiences") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_request("spec.audiences must be a list of strings".into())
                })
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "spec.audiences must be a list of strings".into(),
            ))
        }
    };
    let audiences = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences
    };
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request("spec.expirationSeconds must be an integer".into())
        })?,
    };
    // ValidateTokenRequest
    let mut causes = vec![];
    if expiration < 600 {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !causes.is_empty() {
        return Err(token_invalid(sa_name, causes));
    }
    // the bound object
    let mut bound = None;
    let mut node = None;
    if let Some(r) = spec.get("boundObjectRef").filter(|v| !v.is_null()) {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (kind, api_version, name, uid) = (s("kind"), s("apiVersion"), s("name"), s("uid"));
        let (plural, obj_ns) = match (kind.as_str(), api_version.as_str()) {
            ("Pod", "v1") => ("pods", ns),
            ("Secret", "v1") => ("secrets", ns),
            ("Node", "v1") => ("nodes", ""),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {}",
                    if api_version.is_empty() {
                        format!("/, Kind={kind}")
                    } else {
                        format!("{api_version}, Kind={kind}")
                    }
                )))
            }
        };
        let res = resources::find("", "v1", plural).expect("core resource");
        let obj = state.objects.get(res, obj_ns, &name).await?;
        let actual = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !uid.is_empty() && uid != actual {
            return Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!("Operation cannot be fulfilled on {} \"{name}\": the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated", res.qualified()),
                details: None,
            });
        }
        if kind == "Pod" {
            let runs_as = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if runs_as != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            // ServiceAccountTokenPodNodeInfo: the node the pod runs on
            if let Some(n) = obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                let nodes = resources::find("", "v1", "nodes").expect("nodes");
                if let Some(no) = state.objects.get_opt(nodes, "", n).await? {
                    node = Some(Bound {
                        kind: "Node".into(),
                        name: n.to_string(),
                        uid: no
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    });
                }
            }
        }
        bound = Some(Bound {
            kind,
            name,
            uid: actual,
        });
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        namespace: ns.to_string(),
        name: sa_name.to_string(),
        uid: sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        audiences: audiences.clone(),
        iat: now,
        exp: now + expiration,
        jti: crate::objects::uuid(),
        bound: bound.clone(),
        node,
    };
    let token = state
        .tokens
        .issue(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(b) = &bound {
        out_spec["boundObjectRef"] =
            json!({"kind": b.kind, "apiVersion": "v1", "name": b.name, "uid": b.uid});
    }
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": null},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": expires},
        }),
    ))
}

/// The attributes of an access review spec; `None` with the validation error when not exactly
/// one of `resourceAttributes` and `nonResourceAttributes` is given
/// (`pkg/apis/authorization/validation`).
fn review_attributes(kind: &str, spec: &Value) -> ApiResult<crate::rbac::Attributes> {
    let ra = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let nra = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let invalid = |field: &str, detail: &str| {
        ApiError {
        code: 422,
        reason: "Invalid",
        message: format!(
            "{kind}.authorization.k8s.io \"\" is invalid: spec.{field}: Invalid value: \"null\": {detail}"
        ),
        details: Some(json!({"group": "authorization.k8s.io", "kind": kind})),
    }
    };
    match (ra, nra) {
        (Some(r), None) => Ok(crate::rbac::Attributes {
            verb: s(r, "verb"),
            group: s(r, "group"),
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            namespace: s(r, "namespace"),
            name: s(r, "name"),
            path: None,
        }),
        (None, Some(n)) => Ok(crate::rbac::Attributes {
            verb: s(n, "verb"),
            path: Some(s(n, "path")),
            ..Default::default()
        }),
        (Some(_), Some(_)) => Err(invalid(
            "nonResourceAttributes",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            "resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// The decision for `user` on `a`: (allowed, reason, evaluationError).
async fn decide(
    state: &State,
    user: &User,
    a: &crate::rbac::Attributes,
) -> ApiResult<(bool, String, String)> {
    match user {
        User::Admin => Ok((true, String::new(), String::new())),
        User::Other(u) => {
            let (ok, why) = crate::rbac::allows(&state.objects, u, a).await?;
            Ok((ok, why, String::new()))
        }
        User::Node(_) => {
            let r = resources::RESOURCES
                .iter()
                .find(|r| r.group == a.group && r.plural == a.resource);
            match (r, &a.path) {
                (Some(r), None) => {
                    let ok = crate::server::authorize_resource(
                        &state.objects,
                        user,
                        &a.verb,
                        r,
                        a.namespace.as_str(),
                        a.name.as_str(),
                        a.subresource.as_str(),
                    )
                    .await
                    .is_ok();
                    Ok((ok, String::new(), String::new()))
                }
                _ => Ok((false, String::new(), String::new())),
            }
        }
    }
}

fn review_response(kind: &str, spec: Value, allowed: bool, reason: String, err: String) -> Value {
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    if !err.is_empty() {
        status["evaluationError"] = json!(err);
    }
    json!({
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    })
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`).
pub async fn self_subject_access_review(
    state: &State,
    req: Request<hyper::body::Incoming>,
    user: &User,
) -> ApiResult<Response<Body>> {
    let (_, body) = read_body(req).await?;
    expect_kind(&body, "authorization.k8s.io/v1", "SelfSubjectAccessReview")?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let a = review_attributes("SelfSubjectAccessReview", &spec)?;
    let (ok, why, err) = decide(state, user, &a).await?;
    Ok(json_resp(
        StatusCode::CREATED,
        &review_response("SelfSubjectAccessReview", spec, ok, why, err),
    ))
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` and
/// `…/namespaces/NS/localsubjectaccessreviews`: the decision for another user (needs `create`
/// on the review).
pub async fn subject_access_review(
    state: &State,
    req: Request<hyper::body::Incoming>,
    caller: &User,
    local_ns: Option<&str>,
) -> ApiResult<Response<Body>> {
    let kind = if local_ns.is_some() {
        "LocalSubjectAccessReview"
    } else {
        "SubjectAccessReview"
    };
    let check = crate::rbac::Attributes {
        verb: "create".into(),
        group: "authorization.k8s.io".into(),
        resource: if local_ns.is_some() {
            "localsubjectaccessreviews".into()
        } else {
            "subjectaccessreviews".into()
        },
        namespace: local_ns.unwrap_or("").to_string(),
        ..Default::default()
    };
    if !decide(state, caller, &check).await?.0 {
        return Err(crate::rbac::forbidden(&caller.name(), &check, None));
    }
    let (_, body) = read_body(req).await?;
    expect_kind(&body, "authorization.k8s.io/v1", kind)?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let a = review_attributes(kind, &spec)?;
    if let Some(ns) = local_ns {
        // pkg/registry/authorization/localsubjectaccessreview/rest.go
        if a.path.is_some() || !(a.namespace.is_empty() || a.namespace == ns) {
            return Err(ApiError::bad_request(format!(
                "spec.resourceAttributes.namespace must match metadata.namespace: {ns:?}"
            )));
        }
    }
    let a = match local_ns {
        Some(ns) => crate::rbac::Attributes {
            namespace: ns.to_string(),
            ..a
        },
        None => a,
    };
    let name = spec
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{kind}.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified"),
            details: None,
        });
    }
    let subject = User::Other(std::sync::Arc::new(crate::auth::UserInfo {
        name,
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups,
        extra: Default::default(),
    }));
    let (ok, why, err) = decide(state, &subject, &a).await?;
    Ok(json_resp(
        StatusCode::CREATED,
        &review_response(kind, spec, ok, why, err),
    ))
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: whether a token authenticates, and as
/// whom (needs `create tokenreviews`; `pkg/registry/authentication/tokenreview/storage.go`).
/// The token is never echoed back.
pub async fn token_review(
    state: &State,
    req: Request<hyper::body::Incoming>,
    caller: &User,
) -> ApiResult<Response<Body>> {
    let check = crate::rbac::Attributes {
        verb: "create".into(),
        group: "authentication.k8s.io".into(),
        resource: "tokenreviews".into(),
        ..Default::default()
    };
    if !decide(state, caller, &check).await?.0 {
        return Err(crate::rbac::forbidden(&caller.name(), &check, None));
    }
    let (_, body) = read_body(req).await?;
    expect_kind(&body, "authentication.k8s.io/v1", "TokenReview")?;
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication".into(),
        ));
    }
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let auds: Vec<&str> = if audiences.is_empty() {
        vec![ISSUER]
    } else {
        audiences.iter().map(String::as_str).collect()
    };
    let status = match crate::server::authenticate_token(state, token, &auds).await {
        Some((user, matched)) => json!({
            "authenticated": true,
            "user": user_info(&user),
            "audiences": matched,
        }),
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    let mut spec = json!({});
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    ))
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews` (`kubectl auth can-i --list`).
pub async fn self_subject_rules_review(
    state: &State,
    req: Request<hyper::body::Incoming>,
    user: &User,
) -> ApiResult<Response<Body>> {
    let (_, body) = read_body(req).await?;
    expect_kind(&body, "authorization.k8s.io/v1", "SelfSubjectRulesReview")?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
    let all = || {
        (
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
            String::new(),
        )
    };
    let (resource_rules, non_resource_rules, err) = match user {
        User::Admin => all(),
        User::Other(u) if u.groups.iter().any(|g| g == "system:masters") => all(),
        User::Other(u) => {
            let mut rr = vec![];
            let mut nr = vec![];
            for (rule, _) in crate::rbac::rules_for(&state.objects, u, ns).await? {
                if rule
                    .get("nonResourceURLs")
                    .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                {
                    nr.push(json!({"verbs": rule.get("verbs"), "nonResourceURLs": rule.get("nonResourceURLs")}));
                } else {
                    let mut r = json!({"verbs": rule.get("verbs"), "apiGroups": rule.get("apiGroups"), "resources": rule.get("resources")});
                    if let Some(n) = rule.get("resourceNames").filter(|v| !v.is_null()) {
                        r["resourceNames"] = n.clone();
                    }
                    rr.push(r);
                }
            }
            (rr, nr, String::new())
        }
        User::Node(_) => (
            vec![],
            vec![],
            "node authorizer does not support user rule resolution".to_string(),
        ),
    };
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !err.is_empty(),
    });
    if !err.is_empty() {
        status["evaluationError"] = json!(err);
    }
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    ))
}
