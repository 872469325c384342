//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into JSON
//! for the types kubectl's typed clients send that way: `kubectl create namespace`, `create
//! secret …`, `create configmap`, `create serviceaccount`, `create token` (TokenRequest),
//! `auth whoami` / `auth can-i [--list]` (the review kinds), `create role|clusterrole|
//! rolebinding|clusterrolebinding` (k8s.io/api `rbac/v1/generated.proto`). The envelope is `k8s\0` then a
//! `runtime.Unknown` (k8s.io/apimachinery `pkg/runtime/serializer/protobuf`); field numbers are
//! those of k8s.io/api `core/v1/generated.proto` and apimachinery `meta/v1/generated.proto`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Decoding limits: nesting depth of messages.
const MAX_DEPTH: usize = 16;

/// The protobuf envelope magic.
pub const MAGIC: &[u8] = b"k8s\x00";

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skip,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i).ok_or("truncated varint")?;
            self.i += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let (num, wt) = (tag >> 3, tag & 7);
        let f = match wt {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.i = self
                    .i
                    .checked_add(8)
                    .filter(|&i| i <= self.b.len())
                    .ok_or("truncated fixed64")?;
                Field::Skip
            }
            2 => {
                let n = self.varint()? as usize;
                let end = self
                    .i
                    .checked_add(n)
                    .filter(|&e| e <= self.b.len())
                    .ok_or("truncated bytes")?;
                let s = &self.b[self.i..end];
                self.i = end;
                Field::Bytes(s)
            }
            5 => {
                self.i = self
                    .i
                    .checked_add(4)
                    .filter(|&i| i <= self.b.len())
                    .ok_or("truncated fixed32")?;
                Field::Skip
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((num, f)))
    }
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "string field is not UTF-8".to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((n, f)) = r.next()? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = string(x)?,
                2 => {
                    v = if bytes_value {
                        json!(base64::engine::general_purpose::STANDARD.encode(x))
                    } else {
                        json!(string(x)?)
                    }
                }
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn local_ref(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    while let Some((n, f)) = r.next()? {
        if let (1, Field::Bytes(x)) = (n, f) {
            o.insert("name".into(), json!(string(x)?));
        }
    }
    Ok(Value::Object(o))
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = vec![];
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                if !x.is_empty() {
                    o.insert("name".into(), json!(string(x)?));
                }
            }
            (2, Field::Bytes(x)) => {
                if !x.is_empty() {
                    o.insert("generateName".into(), json!(string(x)?));
                }
            }
            (3, Field::Bytes(x)) => {
                if !x.is_empty() {
                    o.insert("namespace".into(), json!(string(x)?));
                }
            }
            (6, Field::Bytes(x)) => {
                if !x.is_empty() {
                    o.insert("resourceVersion".into(), json!(string(x)?));
                }
            }
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                labels.insert(k, v);
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                annotations.insert(k, v);
            }
            (14, Field::Bytes(x)) => finalizers.push(json!(string(x)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        o.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        o.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        o.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(o))
}

/// A message of string fields (`fields[i]` is field number i+1; empty names are skipped); empty
/// strings are dropped, as Go writes them unconditionally.
fn strings_message(b: &[u8], fields: &[&str]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    while let Some((n, f)) = r.next()? {
        if let Field::Bytes(x) = f {
            if let Some(name) = fields
                .get((n as usize).wrapping_sub(1))
                .filter(|s| !s.is_empty())
            {
                if !x.is_empty() {
                    o.insert((*name).to_string(), json!(string(x)?));
                }
            }
        }
    }
    Ok(Value::Object(o))
}

/// `authentication.k8s.io/v1 TokenRequestSpec`: audiences 1, boundObjectRef 3, expirationSeconds 4.
fn token_request_spec(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    let mut auds = vec![];
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => auds.push(json!(string(x)?)),
            (3, Field::Bytes(x)) => {
                o.insert(
                    "boundObjectRef".into(),
                    strings_message(x, &["kind", "apiVersion", "name", "uid"])?,
                );
            }
            (4, Field::Varint(v)) => {
                o.insert("expirationSeconds".into(), json!(v as i64));
            }
            _ => {}
        }
    }
    if !auds.is_empty() {
        o.insert("audiences".into(), Value::Array(auds));
    }
    Ok(Value::Object(o))
}

/// `authorization.k8s.io/v1 SelfSubjectAccessReviewSpec`: resourceAttributes 1, nonResourceAttributes 2.
fn access_review_spec(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                o.insert(
                    "resourceAttributes".into(),
                    strings_message(
                        x,
                        &[
                            "namespace",
                            "verb",
                            "group",
                            "version",
                            "resource",
                            "subresource",
                            "name",
                        ],
                    )?,
                );
            }
            (2, Field::Bytes(x)) => {
                o.insert(
                    "nonResourceAttributes".into(),
                    strings_message(x, &["path", "verb"])?,
                );
            }
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

/// `rbac/v1 PolicyRule`: verbs 1, apiGroups 2, resources 3, resourceNames 4, nonResourceURLs 5.
fn policy_rule(b: &[u8]) -> Result<Value, String> {
    let names = [
        "verbs",
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
    ];
    let mut lists: Vec<Vec<Value>> = vec![vec![]; names.len()];
    let mut r = Reader::new(b);
    while let Some((n, f)) = r.next()? {
        if let (Some(list), Field::Bytes(x)) = (lists.get_mut((n as usize).wrapping_sub(1)), f) {
            list.push(json!(string(x)?));
        }
    }
    let mut o = Map::new();
    for (name, list) in names.iter().zip(lists) {
        // verbs is required; the others are omitted when empty
        if !list.is_empty() || *name == "verbs" {
            o.insert((*name).to_string(), Value::Array(list));
        }
    }
    Ok(Value::Object(o))
}

/// `meta/v1 LabelSelector` (matchLabels 1) inside `AggregationRule.clusterRoleSelectors` 1.
fn aggregation_rule(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut selectors = vec![];
    while let Some((n, f)) = r.next()? {
        if let (1, Field::Bytes(x)) = (n, f) {
            let mut s = Reader::new(x);
            let mut labels = Map::new();
            while let Some((m, g)) = s.next()? {
                if let (1, Field::Bytes(e)) = (m, g) {
                    let (k, v) = map_entry(e, false)?;
                    labels.insert(k, v);
                }
            }
            selectors.push(json!({"matchLabels": labels}));
        }
    }
    Ok(json!({"clusterRoleSelectors": selectors}))
}

fn object(kind: &str, raw: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("protobuf nesting too deep".into());
    }
    let mut r = Reader::new(raw);
    let mut o = Map::new();
    let mut data = Map::new();
    let mut string_data = Map::new();
    let mut binary = Map::new();
    let mut ips = vec![];
    let mut secrets = vec![];
    let mut rules = vec![];
    let mut subjects = vec![];
    while let Some((n, f)) = r.next()? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(x)) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            ("Secret", 2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, true)?;
                data.insert(k, v);
            }
            ("Secret", 3, Field::Bytes(x)) if !x.is_empty() => {
                o.insert("type".into(), json!(string(x)?));
            }
            ("Secret", 4, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                string_data.insert(k, v);
            }
            ("Secret", 5, Field::Varint(v)) | ("ConfigMap", 4, Field::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            ("ConfigMap", 2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, true)?;
                binary.insert(k, v);
            }
            ("ServiceAccount", 2, Field::Bytes(x)) => secrets.push(local_ref(x)?),
            ("ServiceAccount", 3, Field::Bytes(x)) => ips.push(local_ref(x)?),
            ("ServiceAccount", 4, Field::Varint(v)) => {
                o.insert("automountServiceAccountToken".into(), json!(v != 0));
            }
            ("TokenRequest", 2, Field::Bytes(x)) => {
                o.insert("spec".into(), token_request_spec(x)?);
            }
            ("SelfSubjectAccessReview", 2, Field::Bytes(x)) => {
                o.insert("spec".into(), access_review_spec(x)?);
            }
            ("Role" | "ClusterRole", 2, Field::Bytes(x)) => rules.push(policy_rule(x)?),
            ("ClusterRole", 3, Field::Bytes(x)) => {
                o.insert("aggregationRule".into(), aggregation_rule(x)?);
            }
            ("RoleBinding" | "ClusterRoleBinding", 2, Field::Bytes(x)) => subjects.push(
                strings_message(x, &["kind", "apiGroup", "name", "namespace"])?,
            ),
            ("RoleBinding" | "ClusterRoleBinding", 3, Field::Bytes(x)) => {
                o.insert(
                    "roleRef".into(),
                    strings_message(x, &["apiGroup", "kind", "name"])?,
                );
            }
            ("SelfSubjectRulesReview", 2, Field::Bytes(x)) => {
                o.insert("spec".into(), strings_message(x, &["namespace"])?);
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        o.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        // stringData is merged into data on write (as kube-apiserver does)
        let d = o.entry("data").or_insert(json!({}));
        for (k, v) in string_data {
            d[k] =
                json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or("")));
        }
    }
    if !binary.is_empty() {
        o.insert("binaryData".into(), Value::Object(binary));
    }
    if !secrets.is_empty() {
        o.insert("secrets".into(), Value::Array(secrets));
    }
    if matches!(kind, "Role" | "ClusterRole") {
        o.insert("rules".into(), Value::Array(rules));
    }
    if !subjects.is_empty() {
        o.insert("subjects".into(), Value::Array(subjects));
    }
    if !ips.is_empty() {
        o.insert("imagePullSecrets".into(), Value::Array(ips));
    }
    Ok(Value::Object(o))
}

/// Decodes a protobuf request body into a JSON object.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body without the k8s envelope")?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((m, g)) = t.next()? {
                    if let Field::Bytes(x) = g {
                        match m {
                            1 => api_version = string(x)?,
                            2 => kind = string(x)?,
                            _ => {}
                        }
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    match kind.as_str() {
        "Namespace"
        | "Secret"
        | "ConfigMap"
        | "ServiceAccount"
        | "TokenRequest"
        | "SelfSubjectReview"
        | "SelfSubjectAccessReview"
        | "SelfSubjectRulesReview"
        | "Role"
        | "ClusterRole"
        | "RoleBinding"
        | "ClusterRoleBinding" => {
            let mut o = object(&kind, raw, 0)?;
            o["apiVersion"] = json!(api_version);
            o["kind"] = json!(kind);
            Ok(o)
        }
        other => Err(format!(
            "protobuf bodies of kind {other:?} are not supported; send application/json"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u64, b: &[u8]) -> Vec<u8> {
        let mut v = vec![((field << 3) | 2) as u8, b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn secret() {
        let meta = [ld(1, b"regcred"), ld(3, b"team-a")].concat();
        let entry = [ld(1, b".dockerconfigjson"), ld(2, b"{}")].concat();
        let raw = [
            ld(1, &meta),
            ld(2, &entry),
            ld(3, b"kubernetes.io/dockerconfigjson"),
        ]
        .concat();
        let tm = [ld(1, b"v1"), ld(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["metadata"]["name"], "regcred");
        assert_eq!(v["data"][".dockerconfigjson"], "e30=");
        assert_eq!(v["type"], "kubernetes.io/dockerconfigjson");
        assert!(decode(&body[..body.len() - 3]).is_err());
    }

    #[test]
    fn token_request() {
        let bound = [ld(1, b"Pod"), ld(2, b"v1"), ld(3, b"web"), ld(4, b"")].concat();
        let spec = [ld(1, b"api"), ld(3, &bound), vec![4 << 3, 0xb0, 0x09]].concat();
        let raw = [ld(1, &ld(1, b"default")), ld(2, &spec)].concat();
        let tm = [ld(1, b"authentication.k8s.io/v1"), ld(2, b"TokenRequest")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "TokenRequest");
        assert_eq!(v["spec"]["audiences"], json!(["api"]));
        assert_eq!(v["spec"]["expirationSeconds"], 1200);
        assert_eq!(
            v["spec"]["boundObjectRef"],
            json!({"kind": "Pod", "apiVersion": "v1", "name": "web"})
        );
        let ra = [ld(1, b"ns"), ld(2, b"get"), ld(3, b""), ld(5, b"pods")].concat();
        let raw = ld(2, &ld(1, &ra));
        let tm = [
            ld(1, b"authorization.k8s.io/v1"),
            ld(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let v = decode(&[MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat()).unwrap();
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "ns", "verb": "get", "resource": "pods"})
        );
    }
}
