//! User impersonation (`kubectl --as`, `--as-group`, `--as-uid`), as kube-apiserver's
//! `WithImpersonation` filter does it (k8s.io/apiserver
//! `pkg/endpoints/filters/impersonation.go`): the `Impersonate-User`, `Impersonate-Group`,
//! `Impersonate-Uid` and `Impersonate-Extra-<key>` headers of an authenticated request name
//! who the request acts as. The requester must be allowed the verb `impersonate` on each part
//! (`users`, `serviceaccounts` in the account's namespace, `groups`, `uids` and
//! `userextras/<key>` of `authentication.k8s.io`); the request then goes on as that user,
//! authorized by what that user may do (so `kubectl auth can-i --as=…` answers for them).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::UserInfo;
use crate::errors::ApiError;
use crate::objects::{Objects, User};
use hyper::header::HeaderMap;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SA_PREFIX: &str = "system:serviceaccount:";
const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";

/// One part of what a request asks to act as (`buildImpersonationRequests`' object
/// references).
#[derive(Debug, PartialEq)]
enum Part {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Part {
    /// Go's `%v` of the `v1.ObjectReference` upstream makes of it (its seven fields, space
    /// separated), for the error of a request without a user.
    fn go_v(&self) -> String {
        let authn = "authentication.k8s.io/v1";
        let (kind, ns, name, api, path) = match self {
            Part::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Part::User(n) => ("User", "", n.as_str(), "", ""),
            Part::Group(n) => ("Group", "", n.as_str(), "", ""),
            Part::Extra { key, value } => ("UserExtra", "", value.as_str(), authn, key.as_str()),
            Part::Uid(u) => ("UID", "", u.as_str(), authn, ""),
        };
        format!("{{{kind} {ns} {name}  {api}  {path}}}")
    }

    /// The authorization attributes of acting as this part: (API group, resource, subresource,
    /// namespace, name).
    fn attributes(&self) -> (&'static str, &'static str, String, String, String) {
        match self {
            Part::ServiceAccount { namespace, name } => (
                "",
                "serviceaccounts",
                String::new(),
                namespace.clone(),
                name.clone(),
            ),
            Part::User(n) => ("", "users", String::new(), String::new(), n.clone()),
            Part::Group(n) => ("", "groups", String::new(), String::new(), n.clone()),
            Part::Extra { key, value } => (
                "authentication.k8s.io",
                "userextras",
                key.clone(),
                String::new(),
                value.clone(),
            ),
            Part::Uid(u) => (
                "authentication.k8s.io",
                "uids",
                String::new(),
                String::new(),
                u.clone(),
            ),
        }
    }
}

/// `serviceaccount.SplitUsername`: the namespace and name of a ServiceAccount's user name.
fn split_service_account(user: &str) -> Option<(String, String)> {
    let rest = user.strip_prefix(SA_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    if name.contains(':')
        || !crate::admission::dns1123_label_problems(ns).is_empty()
        || !crate::admission::dns1123_subdomain_problems(name).is_empty()
    {
        return None;
    }
    Some((ns.to_string(), name.to_string()))
}

/// Why a request may not act as whom it asks to.
#[derive(Debug)]
pub enum Refused {
    /// An API error (the requester may not impersonate a part: 403).
    Api(ApiError),
    /// Groups, extras or a UID asked for without a user: upstream answers with
    /// `responsewriters.InternalError`, a plain-text 500 (`Internal Server Error: "URI": …`)
    /// whose text (after the URI) this is.
    NoUser(String),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused::Api(e)
    }
}

/// Whether the request asks to act as someone else (any `Impersonate-*` header): what such a
/// request is allowed stays what the impersonated user is allowed, but nothing is issued to
/// the caller in that user's name (a node's serving certificate is signed only for the node's
/// own credentials).
pub fn asked(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k == USER || k == UID || k == GROUP || k.starts_with(EXTRA_PREFIX)
    })
}

/// `buildImpersonationRequests`: the parts the headers ask for, in upstream's order (user,
/// groups, extras, UID); `Ok(None)` without impersonation headers.
fn requested(headers: &HeaderMap) -> Result<Option<Vec<Part>>, Refused> {
    // Go keeps a header's bytes as they came; a value that is not ASCII is read as UTF-8
    let text = |v: &hyper::header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let one = |h: &str| headers.get(h).map(text).filter(|v| !v.is_empty());
    let mut parts = vec![];
    let user = one(USER);
    if let Some(u) = user.as_deref() {
        parts.push(match split_service_account(u) {
            Some((namespace, name)) => Part::ServiceAccount { namespace, name },
            None => Part::User(u.to_string()),
        });
    }
    let mut others = false;
    for g in headers.get_all(GROUP) {
        others = true;
        parts.push(Part::Group(text(g)));
    }
    // header names arrive lower-cased; a key is percent-decoded (`unescapeExtraKey`)
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            let key = percent_decode(key);
            parts.push(Part::Extra {
                key,
                value: text(value),
            });
            others = true;
        }
    }
    if let Some(u) = one(UID) {
        parts.push(Part::Uid(u));
        others = true;
    }
    if others && user.is_none() {
        let list: Vec<String> = parts.iter().map(Part::go_v).collect();
        return Err(Refused::NoUser(format!(
            "requested [{}] without impersonating a user",
            list.join(" ")
        )));
    }
    Ok((!parts.is_empty()).then_some(parts))
}

/// `url.PathUnescape` of an extra key; a key that does not decode is kept as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => return s.to_string(),
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// The user a request acts as: `requester` itself without impersonation headers; otherwise,
/// each part authorized as the verb `impersonate` for `requester` (a 403 naming the part
/// otherwise), the impersonated user with `system:authenticated` added (`system:unauthenticated`
/// for `system:anonymous`) unless either is asked for, and a ServiceAccount's groups when no
/// group is asked for.
pub async fn apply(
    objects: &Objects,
    headers: &HeaderMap,
    requester: User,
) -> Result<User, Refused> {
    let Some(parts) = requested(headers)? else {
        return Ok(requester);
    };
    let (requester_name, _) = requester.identity();
    let groups_given = parts.iter().any(|p| matches!(p, Part::Group(_)));
    let mut name = String::new();
    let mut groups: Vec<String> = vec![];
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uid = String::new();
    for part in &parts {
        let (group, resource, subresource, namespace, object) = part.attributes();
        let a = crate::rbac::Attributes {
            verb: "impersonate".into(),
            group: group.into(),
            resource: resource.into(),
            subresource,
            namespace,
            name: object,
            path: None,
        };
        let allowed = match &requester {
            User::Admin => true,
            // the node authorizer has no opinion on `impersonate`: RBAC decides, for the
            // node's user and groups
            User::Node(_) => {
                let (name, groups) = requester.identity();
                let node = UserInfo {
                    name,
                    uid: String::new(),
                    groups,
                    extra: BTreeMap::new(),
                };
                crate::rbac::permits(objects, &node, &a).await?
            }
            User::Other(u) => crate::rbac::permits(objects, u, &a).await?,
        };
        if !allowed {
            let msg = crate::rbac::forbidden(&requester_name, &a, None).message;
            return Err(ApiError::forbidden_on(group, resource, &a.name, msg).into());
        }
        match part {
            Part::ServiceAccount { namespace, name: n } => {
                name = format!("{SA_PREFIX}{namespace}:{n}");
                if !groups_given {
                    groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Part::User(n) => name = n.clone(),
            Part::Group(g) => groups.push(g.clone()),
            Part::Extra { key, value } => extra.entry(key.clone()).or_default().push(value.clone()),
            Part::Uid(u) => uid = u.clone(),
        }
    }
    if name != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
        {
            groups.push(AUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == UNAUTHENTICATED) {
        groups.push(UNAUTHENTICATED.into());
    }
    // a node's identity (its name, and exactly a node's groups) is judged by the node
    // authorizer, as for a node's own credentials; with other groups, a UID or extras it is
    // a user RBAC judges (so `system:masters` keeps its rights)
    if let Some(node) = name.strip_prefix("system:node:") {
        let node_groups = groups.iter().any(|g| g == "system:nodes")
            && groups
                .iter()
                .all(|g| g == "system:nodes" || g == AUTHENTICATED);
        if node_groups && !node.is_empty() && uid.is_empty() && extra.is_empty() {
            return Ok(User::Node(node.to_string()));
        }
    }
    Ok(User::Other(Arc::new(UserInfo {
        name,
        uid,
        groups,
        extra,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_headers_name_the_parts_in_upstreams_order() {
        assert_eq!(requested(&headers(&[])).unwrap(), None);
        let parts = requested(&headers(&[
            ("Impersonate-Uid", "u-1"),
            ("Impersonate-Extra-Scopes%2Fread", "a"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-User", "system:serviceaccount:dev:bot"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            parts,
            [
                Part::ServiceAccount {
                    namespace: "dev".into(),
                    name: "bot".into()
                },
                Part::Group("devs".into()),
                Part::Group("ops".into()),
                Part::Extra {
                    key: "scopes/read".into(),
                    value: "a".into()
                },
                Part::Uid("u-1".into()),
            ]
        );
        // not a ServiceAccount's name: a user
        for u in [
            "system:serviceaccount:Dev:bot",
            "system:serviceaccount:dev",
            "alice",
        ] {
            assert_eq!(
                requested(&headers(&[("Impersonate-User", u)]))
                    .unwrap()
                    .unwrap(),
                [Part::User(u.into())]
            );
        }
        // a name that is not ASCII is a name, not "no user" (the request is not left to run
        // as the caller)
        let mut h = HeaderMap::new();
        h.insert(
            "impersonate-user",
            hyper::header::HeaderValue::from_bytes("jörg".as_bytes()).unwrap(),
        );
        assert_eq!(requested(&h).unwrap().unwrap(), [Part::User("jörg".into())]);
        // `url.PathUnescape`: a malformed escape keeps the key as it came
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("a%+fb"), "a%+fb");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert!(asked(&h) && !asked(&headers(&[("Authorization", "x")])));
        let Err(Refused::NoUser(e)) = requested(&headers(&[("Impersonate-Group", "devs")])) else {
            panic!("a group without a user is refused");
        };
        assert_eq!(
            e,
            "requested [{Group  devs    }] without impersonating a user"
        );
    }
}
