//! Docker config formats, decoded the way the kubelet decodes them.
//!
//! Ported from kubernetes `pkg/credentialprovider/config.go` (`DockerConfigJSON`,
//! `DockerConfig`, `DockerConfigEntry.UnmarshalJSON`, `decodeDockerConfigFieldAuth`) and
//! `pkg/credentialprovider/secrets/secrets.go` (which Secret type and key pairs are used).
//!
//! The rules (spec §1):
//! - `.dockerconfigjson` is `{"auths": {KEY: ENTRY}}`; every other top-level member is ignored
//!   (`credsStore`, `credHelpers`, ...). A document without `auths`, or `null`, has no entries.
//! - Legacy `.dockercfg` is the bare `{KEY: ENTRY}` map.
//! - An entry has `username`, `password`, `email` and `auth`; others (`identitytoken`,
//!   `registrytoken`, `serveraddress`) are ignored. Field names match case-insensitively, as in
//!   Go's `encoding/json`; several spellings of `auths` merge; the last duplicate key wins.
//! - A non-empty `auth` is decoded (base64 of `user:password`) and replaces username and
//!   password.
//! - A wrong JSON type anywhere fails the whole document.
//!
//! Credentials are Go strings of arbitrary bytes; here they are converted with
//! [`String::from_utf8_lossy`], which is also what Go's JSON encoder does when hashing them.
//! Errors carry Go's exact text (it becomes the container's waiting reason) and never a value.

use std::collections::BTreeMap;
use std::fmt;

use crate::gojson::decode::{self, SyntaxError, Value};

/// Secret type of a `.dockerconfigjson` pull secret.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Data key of a `.dockerconfigjson` pull secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Secret type of a legacy `.dockercfg` pull secret.
pub const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
/// Data key of a legacy `.dockercfg` pull secret.
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// One registry's credential after decoding (`DockerConfigEntry`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DockerConfigEntry {
    /// The username (from `auth` when that is set).
    pub username: String,
    /// The password (from `auth` when that is set).
    pub password: String,
    /// The email.
    pub email: String,
}

impl fmt::Debug for DockerConfigEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfigEntry")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("email", &self.email)
            .finish()
    }
}

pub(crate) fn redacted(s: &str) -> &'static str {
    if s.is_empty() {
        "<empty>"
    } else {
        "<redacted>"
    }
}

/// A decoded config: registry keys in first-appearance order, the last duplicate's value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerConfig {
    /// `(registry key as written, entry)`.
    pub entries: Vec<(String, DockerConfigEntry)>,
}

impl DockerConfig {
    fn set(&mut self, key: String, entry: DockerConfigEntry) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = entry,
            None => self.entries.push((key, entry)),
        }
    }
}

/// A decode error; Display is the text the kubelet reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Malformed JSON.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A JSON value of the wrong type (Go's `UnmarshalTypeError`).
    #[error("json: cannot unmarshal {found} into {target}")]
    Type {
        /// The JSON kind found (`string`, `number`, ...).
        found: &'static str,
        /// Go's target description, e.g. `Go struct field dockerConfigEntryWithAuth.auth of type string`.
        target: &'static str,
    },
    /// The `auth` field is not valid base64 (Go's `base64.CorruptInputError`).
    #[error("illegal base64 data at input byte {0}")]
    Base64(usize),
    /// The decoded `auth` field has no colon.
    #[error("unable to parse auth field, must be formatted as base64(username:password)")]
    AuthNoColon,
}

/// Go's case-insensitive JSON field match (`encoding/json` `foldName`: ASCII case folding, plus
/// the two special Unicode folds Go applies, which no real field name needs).
fn field_is(name: &str, field: &str) -> bool {
    name.eq_ignore_ascii_case(field)
}

/// Decodes a `.dockerconfigjson` payload as the kubelet does (`DockerConfigJSON`).
pub fn decode_dockerconfigjson(data: &[u8]) -> Result<DockerConfig, DecodeError> {
    let v = decode::parse(data)?;
    let mut cfg = DockerConfig::default();
    let mut first_err = None;
    match v {
        Value::Null => {}
        Value::Object(members) => {
            for (k, val) in members {
                if !field_is(&k, "auths") {
                    continue;
                }
                match val {
                    Value::Null => {}
                    Value::Object(m) => decode_map(m, &mut cfg, &mut first_err)?,
                    other => {
                        first_err.get_or_insert(DecodeError::Type {
                            found: other.go_kind(),
                            target: "Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig",
                        });
                    }
                }
            }
        }
        other => {
            return Err(DecodeError::Type {
                found: other.go_kind(),
                target: "Go value of type credentialprovider.DockerConfigJSON",
            })
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(cfg),
    }
}

/// Decodes a legacy `.dockercfg` payload (the bare registry map, `DockerConfig`).
pub fn decode_dockercfg(data: &[u8]) -> Result<DockerConfig, DecodeError> {
    let v = decode::parse(data)?;
    let mut cfg = DockerConfig::default();
    let mut first_err = None;
    match v {
        Value::Null => {}
        Value::Object(m) => decode_map(m, &mut cfg, &mut first_err)?,
        other => {
            return Err(DecodeError::Type {
                found: other.go_kind(),
                target: "Go value of type credentialprovider.DockerConfig",
            })
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(cfg),
    }
}

/// Decodes a registry map into `cfg`. Go's decoder keeps going after a type error and reports
/// the first one at the end (`saveError`), but an error from a custom `UnmarshalJSON` (the
/// entry decoder, including the `auth` field) stops it at once.
fn decode_map(
    members: Vec<(String, Value)>,
    cfg: &mut DockerConfig,
    first_err: &mut Option<DecodeError>,
) -> Result<(), DecodeError> {
    for (key, val) in members {
        let entry = decode_entry(val)?;
        if first_err.is_none() {
            cfg.set(key, entry);
        }
    }
    Ok(())
}

/// `DockerConfigEntry.UnmarshalJSON`: decodes into `dockerConfigEntryWithAuth`, then applies a
/// non-empty `auth`.
fn decode_entry(v: Value) -> Result<DockerConfigEntry, DecodeError> {
    let members = match v {
        Value::Null => return Ok(DockerConfigEntry::default()),
        Value::Object(m) => m,
        other => {
            return Err(DecodeError::Type {
                found: other.go_kind(),
                target: "Go value of type credentialprovider.dockerConfigEntryWithAuth",
            })
        }
    };
    let mut e = DockerConfigEntry::default();
    let mut auth = String::new();
    let mut type_err = None;
    for (k, val) in members {
        let (slot, target): (&mut String, &'static str) = if field_is(&k, "username") {
            (
                &mut e.username,
                "Go struct field dockerConfigEntryWithAuth.username of type string",
            )
        } else if field_is(&k, "password") {
            (
                &mut e.password,
                "Go struct field dockerConfigEntryWithAuth.password of type string",
            )
        } else if field_is(&k, "email") {
            (
                &mut e.email,
                "Go struct field dockerConfigEntryWithAuth.email of type string",
            )
        } else if field_is(&k, "auth") {
            (
                &mut auth,
                "Go struct field dockerConfigEntryWithAuth.auth of type string",
            )
        } else {
            continue;
        };
        match val {
            Value::String(s) => *slot = s,
            Value::Null => {}
            other => {
                type_err.get_or_insert(DecodeError::Type {
                    found: other.go_kind(),
                    target,
                });
            }
        }
    }
    if let Some(err) = type_err {
        return Err(err);
    }
    if !auth.is_empty() {
        let (u, p) = decode_auth_field(&auth)?;
        e.username = u;
        e.password = p;
    }
    Ok(e)
}

/// `decodeDockerConfigFieldAuth`: base64 of `username:password`, padded or not as a trailing
/// `=` (after trimming whitespace) says; `\r` and `\n` are skipped; split at the first colon.
pub fn decode_auth_field(auth: &str) -> Result<(String, String), DecodeError> {
    let padded = auth.trim().ends_with('=');
    let decoded = go_base64_decode(auth.as_bytes(), padded)?;
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Err(DecodeError::AuthNoColon);
    };
    Ok((
        String::from_utf8_lossy(&decoded[..colon]).into_owned(),
        String::from_utf8_lossy(&decoded[colon + 1..]).into_owned(),
    ))
}

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Go's `base64.StdEncoding` (padded) or `RawStdEncoding` (unpadded) `DecodeString`, with the
/// same error offsets (`encoding/base64` `decodeQuantum`, non-strict).
fn go_base64_decode(src: &[u8], padded: bool) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut si = 0usize;
    let is_nl = |c: u8| c == b'\n' || c == b'\r';
    while si < src.len() {
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut j = 0usize;
        let mut trailing_err = None;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                if j == 1 || padded {
                    return Err(DecodeError::Base64(si - j));
                }
                dlen = j;
                break;
            }
            let c = src[si];
            si += 1;
            if let Some(v) = b64_value(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if is_nl(c) {
                continue;
            }
            if !padded || c != b'=' {
                return Err(DecodeError::Base64(si - 1));
            }
            // padding
            match j {
                0 | 1 => return Err(DecodeError::Base64(si - 1)),
                2 => {
                    while si < src.len() && is_nl(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(DecodeError::Base64(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(DecodeError::Base64(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && is_nl(src[si]) {
                si += 1;
            }
            if si < src.len() {
                trailing_err = Some(DecodeError::Base64(si));
            }
            dlen = j;
            break;
        }
        let val = (u32::from(dbuf[0]) << 18)
            | (u32::from(dbuf[1]) << 12)
            | (u32::from(dbuf[2]) << 6)
            | u32::from(dbuf[3]);
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        if dlen >= 2 {
            out.extend_from_slice(&bytes[..dlen - 1]);
        }
        if let Some(e) = trailing_err {
            return Err(e);
        }
    }
    Ok(out)
}

/// Which of the two pull-secret formats a Secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// `kubernetes.io/dockerconfigjson` with `.dockerconfigjson`.
    DockerConfigJson,
    /// `kubernetes.io/dockercfg` with `.dockercfg`.
    DockerCfg,
}

/// The payload the kubelet uses from a Secret, if any (`secretsToTrackedDockerConfigs`): the
/// type and key must match exactly and the value be non-empty; anything else is skipped
/// silently (an `Opaque` Secret holding `.dockerconfigjson` included).
pub fn usable_pull_secret_payload<'a>(
    secret_type: &str,
    data: &'a BTreeMap<String, Vec<u8>>,
) -> Option<(SecretKind, &'a [u8])> {
    if secret_type == DOCKER_CONFIG_JSON_TYPE {
        if let Some(v) = data.get(DOCKER_CONFIG_JSON_KEY).filter(|v| !v.is_empty()) {
            return Some((SecretKind::DockerConfigJson, v));
        }
    }
    if secret_type == DOCKERCFG_TYPE {
        if let Some(v) = data.get(DOCKERCFG_KEY).filter(|v| !v.is_empty()) {
            return Some((SecretKind::DockerCfg, v));
        }
    }
    None
}

/// Decodes a usable payload with the decoder its kind needs.
pub fn decode_payload(kind: SecretKind, data: &[u8]) -> Result<DockerConfig, DecodeError> {
    match kind {
        SecretKind::DockerConfigJson => decode_dockerconfigjson(data),
        SecretKind::DockerCfg => decode_dockercfg(data),
    }
}

/// One registry entry as written, before any kubelet rule is applied (for lint and explain).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    /// `username`, when a string.
    pub username: Option<String>,
    /// `password`, when a string.
    pub password: Option<String>,
    /// `email`, when a string.
    pub email: Option<String>,
    /// `auth` as written, undecoded.
    pub auth: Option<String>,
    /// `identitytoken`, which the kubelet ignores.
    pub identitytoken: Option<String>,
    /// `registrytoken`, which the kubelet ignores.
    pub registrytoken: Option<String>,
}

impl fmt::Debug for RawEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = |o: &Option<String>| o.as_deref().map(redacted);
        f.debug_struct("RawEntry")
            .field("username", &self.username)
            .field("password", &r(&self.password))
            .field("email", &self.email)
            .field("auth", &r(&self.auth))
            .field("identitytoken", &r(&self.identitytoken))
            .field("registrytoken", &r(&self.registrytoken))
            .finish()
    }
}

/// A tolerant view of a docker config document, for lint and explanations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawDockerConfig {
    /// Whether an `auths` member exists (any spelling).
    pub has_auths: bool,
    /// The `auths` entries as written (entries that are not objects are left out).
    pub auths: Vec<(String, RawEntry)>,
    /// `credsStore`, when present.
    pub creds_store: Option<String>,
    /// The registry keys of `credHelpers`.
    pub cred_helpers: Vec<String>,
    /// Every top-level member name.
    pub top_level_keys: Vec<String>,
    /// No `auths`, and the top-level members are objects with entry fields: a legacy
    /// `~/.dockercfg` map.
    pub looks_like_dockercfg: bool,
}

fn raw_entry(members: &[(String, Value)]) -> RawEntry {
    let mut e = RawEntry::default();
    for (k, v) in members {
        let Value::String(s) = v else { continue };
        let slot = match k.to_ascii_lowercase().as_str() {
            "username" => &mut e.username,
            "password" => &mut e.password,
            "email" => &mut e.email,
            "auth" => &mut e.auth,
            "identitytoken" => &mut e.identitytoken,
            "registrytoken" => &mut e.registrytoken,
            _ => continue,
        };
        *slot = Some(s.clone());
    }
    e
}

/// Reads a docker config document without applying the kubelet's rules: which members exist
/// and what each entry holds as written. Only malformed JSON is an error.
pub fn inspect_config(data: &[u8]) -> Result<RawDockerConfig, DecodeError> {
    let v = decode::parse(data)?;
    let mut raw = RawDockerConfig::default();
    let Value::Object(members) = v else {
        return Ok(raw);
    };
    let mut entry_like = 0usize;
    for (k, val) in &members {
        raw.top_level_keys.push(k.clone());
        if field_is(k, "auths") {
            raw.has_auths = true;
            if let Value::Object(m) = val {
                for (rk, rv) in m {
                    if let Value::Object(em) = rv {
                        let e = raw_entry(em);
                        match raw.auths.iter_mut().find(|(x, _)| x == rk) {
                            Some(slot) => slot.1 = e,
                            None => raw.auths.push((rk.clone(), e)),
                        }
                    }
                }
            }
        } else if k == "credsStore" {
            if let Value::String(s) = val {
                raw.creds_store = Some(s.clone());
            }
        } else if k == "credHelpers" {
            if let Value::Object(m) = val {
                raw.cred_helpers = m.iter().map(|(k, _)| k.clone()).collect();
            }
        } else if let Value::Object(m) = val {
            if m.iter().any(|(f, _)| {
                ["username", "password", "auth", "email"]
                    .iter()
                    .any(|x| field_is(f, x))
            }) {
                entry_like += 1;
            }
        }
    }
    raw.looks_like_dockercfg = !raw.has_auths && entry_like > 0;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_rules() {
        let c = decode_dockerconfigjson(
            br#"{"AUTHS":{"a.io":{"USERNAME":"u","Password":"p","email":"e"}},"auths":{"b.io":{"auth":"dTpwOnE=","username":"x"}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[0].1.username, "u");
        assert_eq!(c.entries[0].1.password, "p");
        assert_eq!(c.entries[1].1.username, "u");
        assert_eq!(c.entries[1].1.password, "p:q");
        let dup = decode_dockerconfigjson(
            br#"{"auths":{"a.io":{"username":"1"},"a.io":{"username":"2"}}}"#,
        )
        .unwrap();
        assert_eq!(dup.entries.len(), 1);
        assert_eq!(dup.entries[0].1.username, "2");
        assert!(decode_dockerconfigjson(b"null").unwrap().entries.is_empty());
        assert!(decode_dockerconfigjson(br#"{"a.io":{"username":"u"}}"#)
            .unwrap()
            .entries
            .is_empty());
        assert_eq!(
            decode_dockerconfigjson(br#"{"auths":{"q":{"auth":1}}}"#)
                .unwrap_err()
                .to_string(),
            "json: cannot unmarshal number into Go struct field dockerConfigEntryWithAuth.auth of type string"
        );
        assert_eq!(
            decode_dockerconfigjson(br#"{"auths":{"q":"u:p"}}"#).unwrap_err().to_string(),
            "json: cannot unmarshal string into Go value of type credentialprovider.dockerConfigEntryWithAuth"
        );
        assert!(decode_dockerconfigjson(br#"{"auths":1}"#).is_err());
        let legacy = decode_dockercfg(br#"{"a.io":{"auth":"dTpw"}}"#).unwrap();
        assert_eq!(legacy.entries[0].1.password, "p");
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(
            decode_auth_field("pants").unwrap_err().to_string(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            decode_auth_field("Zm9vOmJhcg=").unwrap_err(),
            DecodeError::Base64(11)
        );
        assert_eq!(
            decode_auth_field("Zm9vOmJhcg==Zm9v").unwrap_err(),
            DecodeError::Base64(10)
        );
        assert_eq!(
            decode_auth_field("dXNlcjpwYXNz\r\n").unwrap(),
            ("user".into(), "pass".into())
        );
    }

    #[test]
    fn secrets_never_in_debug_or_errors() {
        let pw = "hunter2-very-secret";
        let doc =
            format!(r#"{{"auths":{{"a.io":{{"username":"u","password":"{pw}","auth":"{pw}"}}}}}}"#);
        let err = decode_dockerconfigjson(doc.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains(pw) && !format!("{err:?}").contains(pw));
        let ok = format!(r#"{{"auths":{{"a.io":{{"username":"u","password":"{pw}"}}}}}}"#);
        let c = decode_dockerconfigjson(ok.as_bytes()).unwrap();
        assert!(!format!("{c:?}").contains(pw));
        let raw = inspect_config(doc.as_bytes()).unwrap();
        assert!(!format!("{raw:?}").contains(pw));
        let bad = format!(r#"{{"auths":{{"a.io":{{"password":"{pw}" x"#);
        let err = decode_dockerconfigjson(bad.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains(pw));
    }

    #[test]
    fn pairing() {
        let mut d = BTreeMap::new();
        d.insert(DOCKER_CONFIG_JSON_KEY.to_string(), b"{}".to_vec());
        assert!(usable_pull_secret_payload(DOCKER_CONFIG_JSON_TYPE, &d).is_some());
        assert!(usable_pull_secret_payload("Opaque", &d).is_none());
        assert!(usable_pull_secret_payload(DOCKERCFG_TYPE, &d).is_none());
        d.insert(DOCKER_CONFIG_JSON_KEY.to_string(), vec![]);
        assert!(usable_pull_secret_payload(DOCKER_CONFIG_JSON_TYPE, &d).is_none());
    }

    #[test]
    fn inspect() {
        let r = inspect_config(br#"{"reg.io":{"auth":"eA=="}}"#).unwrap();
        assert!(r.looks_like_dockercfg && !r.has_auths);
        let r = inspect_config(
            br#"{"auths":{},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#,
        )
        .unwrap();
        assert_eq!(r.creds_store.as_deref(), Some("desktop"));
        assert_eq!(r.cred_helpers, vec!["gcr.io".to_string()]);
    }
}
