//! Docker config formats, decoded the way the kubelet decodes them.
//!
//! Ported from kubernetes/kubernetes `pkg/credentialprovider/config.go` (`DockerConfigJSON`,
//! `DockerConfig`, `DockerConfigEntry.UnmarshalJSON`, `dockerConfigEntryWithAuth`,
//! `decodeDockerConfigFieldAuth`) and `pkg/credentialprovider/secrets/secrets.go`
//! (`MakeDockerKeyring`: which Secret type and key pairs are used), on top of Go's
//! `encoding/json` semantics ([`crate::gojson::decode`]) and `encoding/base64`.
//!
//! The rules (spec §1):
//! - `.dockerconfigjson` is `DockerConfigJSON{Auths DockerConfig "auths"; HTTPHeaders
//!   map[string]string "HttpHeaders"}`. Every other top-level member is ignored (`credsStore`,
//!   `credHelpers`, ...). `HttpHeaders` is not used but is type-checked like any Go field. A
//!   document without `auths`, or `null`, has no entries.
//! - Legacy `.dockercfg` is the bare `{KEY: ENTRY}` map.
//! - An entry is decoded into `dockerConfigEntryWithAuth{username, password, email, auth}`;
//!   other members (`identitytoken`, `registrytoken`, `serveraddress`) are ignored.
//! - Field names match the way Go's `encoding/json` matches them: exactly, else
//!   case-insensitively with Go's folding (`foldName`: ASCII case, plus `ſ` ~ `s` and the
//!   Kelvin sign ~ `k`). Several spellings of `auths` merge into one map; a duplicate registry
//!   key keeps its first position and takes the last value; `"auths": null` empties the map
//!   collected so far (Go sets the map to nil).
//! - A non-empty `auth` is decoded (base64 of `user:password`) and replaces username and
//!   password; the email is kept.
//! - A wrong JSON type fails the whole document. Like Go, type errors in the wrapper are
//!   collected and the first is reported at the end (`decodeState.saveError`), while any error of
//!   an entry (type error or bad `auth`, raised inside `DockerConfigEntry.UnmarshalJSON`) stops
//!   decoding at once.
//!
//! Credentials are Go strings of arbitrary bytes. They are converted to Rust strings with Go's
//! own replacement rule ([`go_lossy_utf8`]: one U+FFFD per byte that does not start a valid UTF-8
//! sequence), which is what Go's JSON encoder emits for such strings (the credential hash of
//! KEP-2535 is computed over that encoding). It equals [`String::from_utf8_lossy`] except for
//! truncated multi-byte sequences, where Rust would emit a single U+FFFD.
//! [`decode_auth_field_bytes`] returns the raw bytes.
//!
//! Errors carry Go's exact text (the kubelet uses it as the container's waiting reason) and never
//! a credential value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::gojson::decode::{self, go_lossy_utf8, SyntaxError, Value};

/// Secret type of a `.dockerconfigjson` pull secret.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Data key of a `.dockerconfigjson` pull secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Secret type of a legacy `.dockercfg` pull secret.
pub const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
/// Data key of a legacy `.dockercfg` pull secret.
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// One registry's credential after decoding (`credentialprovider.DockerConfigEntry`).
///
/// `Debug` redacts the password.
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

/// What `Debug` shows instead of a secret: whether it is empty, never its value.
pub(crate) fn redacted(s: &str) -> &'static str {
    if s.is_empty() {
        "<empty>"
    } else {
        "<redacted>"
    }
}

/// A decoded config (`credentialprovider.DockerConfig`): registry keys as written, in order of
/// first appearance, each with the value of its last appearance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerConfig {
    /// `(registry key as written, entry)`.
    pub entries: Vec<(String, DockerConfigEntry)>,
}

impl DockerConfig {
    /// The entry of a registry key as written, if present.
    pub fn get(&self, key: &str) -> Option<&DockerConfigEntry> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }
}

/// Builds a [`DockerConfig`] with Go map semantics in linear time.
#[derive(Default)]
struct MapBuilder {
    entries: Vec<(String, DockerConfigEntry)>,
    index: HashMap<String, usize>,
}

impl MapBuilder {
    fn set(&mut self, key: String, entry: DockerConfigEntry) {
        if let Some(slot) = self.index.get(&key).and_then(|&i| self.entries.get_mut(i)) {
            slot.1 = entry;
            return;
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, entry));
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
    }

    fn finish(self) -> DockerConfig {
        DockerConfig {
            entries: self.entries,
        }
    }
}

/// A decode error. `Display` is the text the kubelet reports, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Malformed JSON (Go's `json.SyntaxError`).
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A JSON value of the wrong type (Go's `json.UnmarshalTypeError`).
    ///
    /// The context part differs between Go toolchains; the texts follow the conformance vectors
    /// (errors raised inside an entry name `dockerConfigEntryWithAuth` and are not re-prefixed
    /// with the outer field; Go 1.19 printed `Go struct field DockerConfigJSON.auths of type
    /// credentialprovider.dockerConfigEntryWithAuth` for a string entry).
    #[error("json: cannot unmarshal {found} into {target}")]
    Type {
        /// The JSON kind found: `string`, `number`, `bool`, `array` or `object`.
        found: &'static str,
        /// Go's target description, such as `Go struct field dockerConfigEntryWithAuth.auth of
        /// type string`.
        target: &'static str,
    },
    /// The `auth` field is not valid base64 (Go's `base64.CorruptInputError`); the number is the
    /// 0-based byte offset in the `auth` string.
    #[error("illegal base64 data at input byte {0}")]
    Base64(usize),
    /// The decoded `auth` field has no colon.
    #[error("unable to parse auth field, must be formatted as base64(username:password)")]
    AuthNoColon,
}

/// Go's `UnmarshalTypeError` targets that occur here.
mod target {
    pub const WRAPPER: &str = "Go value of type credentialprovider.DockerConfigJSON";
    pub const MAP: &str = "Go value of type credentialprovider.DockerConfig";
    pub const AUTHS: &str =
        "Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig";
    pub const HEADERS: &str =
        "Go struct field DockerConfigJSON.HttpHeaders of type map[string]string";
    pub const HEADER_VALUE: &str = "Go struct field DockerConfigJSON.HttpHeaders of type string";
    pub const ENTRY: &str = "Go value of type credentialprovider.dockerConfigEntryWithAuth";
    pub const USERNAME: &str = "Go struct field dockerConfigEntryWithAuth.username of type string";
    pub const PASSWORD: &str = "Go struct field dockerConfigEntryWithAuth.password of type string";
    pub const EMAIL: &str = "Go struct field dockerConfigEntryWithAuth.email of type string";
    pub const AUTH: &str = "Go struct field dockerConfigEntryWithAuth.auth of type string";
}

fn type_error(found: &Value, target: &'static str) -> DecodeError {
    DecodeError::Type {
        found: found.go_kind(),
        target,
    }
}

/// Whether JSON member name `key` selects the struct field tagged `field` (ASCII), as Go's
/// `encoding/json` decides it (`decode.go` `object`: exact match, else `foldName(key) ==
/// foldName(field)`; `fold.go` `foldRune` maps a rune to the smallest rune of its case-folding
/// orbit, so the only non-ASCII runes that fold onto ASCII letters are U+017F `ſ` (onto `S`)
/// and U+212A KELVIN SIGN (onto `K`)).
pub fn go_field_matches(key: &str, field: &str) -> bool {
    let mut chars = key.chars();
    for f in field.bytes() {
        let Some(c) = chars.next() else {
            return false;
        };
        let folded = match c {
            '\u{17f}' => 'S',
            '\u{212a}' => 'K',
            c => c.to_ascii_uppercase(),
        };
        if folded != char::from(f.to_ascii_uppercase()) {
            return false;
        }
    }
    chars.next().is_none()
}

/// Nesting the decoders look at: wrapper, `auths`, entry, field value. Deeper content only needs
/// its kind (see [`decode::parse_shallow`]).
const DECODE_DEPTH: usize = 4;

/// Decodes a `.dockerconfigjson` payload exactly as the kubelet does
/// (`json.Unmarshal(data, &credentialprovider.DockerConfigJSON{})` in `secrets.go`).
pub fn decode_dockerconfigjson(data: &[u8]) -> Result<DockerConfig, DecodeError> {
    let doc = decode::parse_shallow(data, DECODE_DEPTH)?;
    let mut map = MapBuilder::default();
    let mut saved: Option<DecodeError> = None;
    match &doc {
        Value::Null => {}
        Value::Object(members) => {
            for (key, val) in members {
                if go_field_matches(key, "auths") {
                    match val {
                        // null sets the map to nil; later spellings start a new map
                        Value::Null => map.clear(),
                        Value::Object(m) => decode_registry_map(m, &mut map)?,
                        other => {
                            saved.get_or_insert(type_error(other, target::AUTHS));
                        }
                    }
                } else if go_field_matches(key, "HttpHeaders") {
                    match val {
                        Value::Null => {}
                        Value::Object(headers) => {
                            for (_, h) in headers {
                                if !matches!(h, Value::String(_) | Value::Null) {
                                    saved.get_or_insert(type_error(h, target::HEADER_VALUE));
                                }
                            }
                        }
                        other => {
                            saved.get_or_insert(type_error(other, target::HEADERS));
                        }
                    }
                }
            }
        }
        other => return Err(type_error(other, target::WRAPPER)),
    }
    match saved {
        Some(e) => Err(e),
        None => Ok(map.finish()),
    }
}

/// Decodes a legacy `.dockercfg` payload (the bare registry map,
/// `json.Unmarshal(data, &credentialprovider.DockerConfig{})` in `secrets.go`).
pub fn decode_dockercfg(data: &[u8]) -> Result<DockerConfig, DecodeError> {
    let doc = decode::parse_shallow(data, DECODE_DEPTH - 1)?;
    let mut map = MapBuilder::default();
    match &doc {
        Value::Null => {}
        Value::Object(m) => decode_registry_map(m, &mut map)?,
        other => return Err(type_error(other, target::MAP)),
    }
    Ok(map.finish())
}

/// Decodes a registry map into `map`. An entry error stops decoding at once (it is returned by
/// `DockerConfigEntry.UnmarshalJSON`, which Go's decoder does not defer).
fn decode_registry_map(
    members: &[(String, Value)],
    map: &mut MapBuilder,
) -> Result<(), DecodeError> {
    for (key, val) in members {
        let entry = decode_entry(val)?;
        map.set(key.clone(), entry);
    }
    Ok(())
}

/// `DockerConfigEntry.UnmarshalJSON` (config.go): decode into `dockerConfigEntryWithAuth`, copy
/// username, password and email, then let a non-empty `auth` replace username and password.
fn decode_entry(v: &Value) -> Result<DockerConfigEntry, DecodeError> {
    let members = match v {
        // Unmarshal("null", &tmp) leaves tmp zero
        Value::Null => return Ok(DockerConfigEntry::default()),
        Value::Object(m) => m,
        other => return Err(type_error(other, target::ENTRY)),
    };
    let mut e = DockerConfigEntry::default();
    let mut auth = String::new();
    let mut saved: Option<DecodeError> = None;
    for (k, val) in members {
        let (slot, tgt) = if go_field_matches(k, "username") {
            (&mut e.username, target::USERNAME)
        } else if go_field_matches(k, "password") {
            (&mut e.password, target::PASSWORD)
        } else if go_field_matches(k, "email") {
            (&mut e.email, target::EMAIL)
        } else if go_field_matches(k, "auth") {
            (&mut auth, target::AUTH)
        } else {
            continue;
        };
        match val {
            Value::String(s) => slot.clone_from(s),
            // null into a string field has no effect
            Value::Null => {}
            other => {
                saved.get_or_insert(type_error(other, tgt));
            }
        }
    }
    if let Some(err) = saved {
        return Err(err);
    }
    if !auth.is_empty() {
        let (u, p) = decode_auth_field(&auth)?;
        e.username = u;
        e.password = p;
    }
    Ok(e)
}

/// `decodeDockerConfigFieldAuth` (config.go), with the halves converted by [`go_lossy_utf8`].
///
/// If `auth` with surrounding whitespace trimmed ends in `=`, the untrimmed `auth` is decoded with
/// padded standard base64, otherwise with unpadded standard base64; `\r` and `\n` are skipped
/// anywhere; any other stray byte or wrong padding is `illegal base64 data at input byte N`. The
/// decoded bytes are split at the first `:` (none: [`DecodeError::AuthNoColon`]).
pub fn decode_auth_field(auth: &str) -> Result<(String, String), DecodeError> {
    let (u, p) = decode_auth_field_bytes(auth)?;
    Ok((go_lossy_utf8(&u), go_lossy_utf8(&p)))
}

/// [`decode_auth_field`] returning the raw username and password bytes, which need not be UTF-8.
pub fn decode_auth_field_bytes(auth: &str) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    // strings.HasSuffix(strings.TrimSpace(field), "="); Rust's trim uses the same White_Space set
    let padded = auth.trim().ends_with('=');
    let mut decoded = go_base64_decode(auth.as_bytes(), padded)?;
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Err(DecodeError::AuthNoColon);
    };
    let password = decoded.split_off(colon + 1);
    decoded.truncate(colon);
    Ok((decoded, password))
}

/// The standard base64 alphabet (RFC 4648 §4).
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

/// Go's `base64.StdEncoding` (padded) or `base64.RawStdEncoding` (unpadded) `DecodeString`, with
/// its error offsets (golang/go `src/encoding/base64/base64.go`, `decodeQuantum`, non-strict: the
/// unused low bits of the last quantum are ignored). `Decode`'s 8- and 4-byte fast paths only
/// handle clean quanta and agree with `decodeQuantum`, so only the latter is ported.
fn go_base64_decode(src: &[u8], padded: bool) -> Result<Vec<u8>, DecodeError> {
    let is_newline = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 3);
    let mut si = 0usize;
    while si < src.len() {
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut j = 0usize;
        let mut trailing = None;
        while j < 4 {
            let Some(&c) = src.get(si) else {
                // end of input inside a quantum
                if j == 0 {
                    return Ok(out);
                }
                if j == 1 || padded {
                    return Err(DecodeError::Base64(si - j));
                }
                dlen = j;
                break;
            };
            si += 1;
            if let Some(v) = b64_value(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if is_newline(c) {
                continue;
            }
            if !padded || c != b'=' {
                return Err(DecodeError::Base64(si - 1));
            }
            // padding
            match j {
                0 | 1 => return Err(DecodeError::Base64(si - 1)),
                2 => {
                    // "==" expected; the first "=" is consumed
                    while src.get(si).copied().is_some_and(is_newline) {
                        si += 1;
                    }
                    match src.get(si) {
                        None => return Err(DecodeError::Base64(src.len())),
                        Some(&b'=') => si += 1,
                        Some(_) => return Err(DecodeError::Base64(si - 1)),
                    }
                }
                _ => {}
            }
            while src.get(si).copied().is_some_and(is_newline) {
                si += 1;
            }
            if si < src.len() {
                trailing = Some(DecodeError::Base64(si));
            }
            dlen = j;
            break;
        }
        let val = (u32::from(dbuf[0]) << 18)
            | (u32::from(dbuf[1]) << 12)
            | (u32::from(dbuf[2]) << 6)
            | u32::from(dbuf[3]);
        let bytes = val.to_be_bytes();
        // dlen is 2, 3 or 4 here: 1, 2 or 3 output bytes
        out.extend_from_slice(bytes.get(1..dlen).unwrap_or_default());
        if let Some(e) = trailing {
            return Err(e);
        }
    }
    Ok(out)
}

/// Which of the two pull-secret formats a Secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `kubernetes.io/dockerconfigjson` with `.dockerconfigjson`.
    DockerConfigJson,
    /// `kubernetes.io/dockercfg` with `.dockercfg`.
    DockerCfg,
}

impl SecretKind {
    /// The Secret `type` of this kind.
    pub fn secret_type(self) -> &'static str {
        match self {
            SecretKind::DockerConfigJson => DOCKER_CONFIG_JSON_TYPE,
            SecretKind::DockerCfg => DOCKERCFG_TYPE,
        }
    }

    /// The data key this kind requires.
    pub fn data_key(self) -> &'static str {
        match self {
            SecretKind::DockerConfigJson => DOCKER_CONFIG_JSON_KEY,
            SecretKind::DockerCfg => DOCKERCFG_KEY,
        }
    }

    /// The kind whose `type` is exactly `secret_type`.
    pub fn from_secret_type(secret_type: &str) -> Option<SecretKind> {
        match secret_type {
            DOCKER_CONFIG_JSON_TYPE => Some(SecretKind::DockerConfigJson),
            DOCKERCFG_TYPE => Some(SecretKind::DockerCfg),
            _ => None,
        }
    }
}

/// The payload the kubelet uses from a Secret, if any (`secrets.go` `MakeDockerKeyring`): the
/// type and key must match exactly and the value be non-empty. Anything else (an `Opaque`
/// Secret holding `.dockerconfigjson`, a dockercfg-typed Secret holding `.dockerconfigjson`, an
/// empty value) is skipped silently: `None`, not an error.
pub fn usable_pull_secret_payload<'a>(
    secret_type: &str,
    data: &'a BTreeMap<String, Vec<u8>>,
) -> Option<(SecretKind, &'a [u8])> {
    let kind = SecretKind::from_secret_type(secret_type)?;
    data.get(kind.data_key())
        .filter(|v| !v.is_empty())
        .map(|v| (kind, v.as_slice()))
}

/// Decodes a usable payload with the decoder its kind needs.
pub fn decode_payload(kind: SecretKind, data: &[u8]) -> Result<DockerConfig, DecodeError> {
    match kind {
        SecretKind::DockerConfigJson => decode_dockerconfigjson(data),
        SecretKind::DockerCfg => decode_dockercfg(data),
    }
}

// ---------------------------------------------------------------------------------------------
// Inspection: the document as written, for lint, explanations and a node's config.json.

/// One registry entry as written, before any kubelet rule is applied.
///
/// Members are matched with Go's case-insensitive rule ([`go_field_matches`]), as both the
/// kubelet and the docker CLI (`types.AuthConfig`) read them; a later string replaces an earlier
/// one and `null` changes nothing. `Debug` redacts password, auth and tokens.
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
    /// `serveraddress`, which the kubelet ignores.
    pub serveraddress: Option<String>,
    /// Member names, as written, of those seven fields whose value is neither a string nor
    /// `null`. For `username`, `password`, `email` and `auth` the kubelet rejects the document.
    pub non_string_fields: Vec<String>,
}

impl RawEntry {
    /// Whether any of the fields the kubelet or docker read is present.
    pub fn has_any_field(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.email.is_some()
            || self.auth.is_some()
            || self.identitytoken.is_some()
            || self.registrytoken.is_some()
            || self.serveraddress.is_some()
            || !self.non_string_fields.is_empty()
    }
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
            .field("serveraddress", &self.serveraddress)
            .field("non_string_fields", &self.non_string_fields)
            .finish()
    }
}

/// A tolerant view of a docker config document (`.dockerconfigjson`, `.dockercfg` or a node's
/// `config.json`), for lint and explanations. Only malformed JSON is an error; wrong types are
/// recorded, not fatal. Member names match with Go's case-insensitive rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawDockerConfig {
    /// Go's kind of the whole document: `object`, `null`, `array`, `string`, `number`, `bool`.
    pub top_level_kind: &'static str,
    /// Every top-level member name, as written, in order (duplicates kept).
    pub top_level_keys: Vec<String>,
    /// Whether an `auths` member exists (any spelling).
    pub has_auths: bool,
    /// Whether some `auths` member is neither an object nor `null` (the kubelet rejects it).
    pub auths_not_object: bool,
    /// The `auths` entries as written, all spellings merged with Go map semantics (first
    /// position, last value; `"auths": null` empties what came before). A `null` entry is an
    /// empty [`RawEntry`]; entries of other non-object kinds are in `non_object_entries`.
    pub auths: Vec<(String, RawEntry)>,
    /// Registry keys under `auths` whose value is neither an object nor `null` (the kubelet
    /// rejects the document).
    pub non_object_entries: Vec<String>,
    /// `credsStore`, when a string (the kubelet ignores it).
    pub creds_store: Option<String>,
    /// The registry keys of `credHelpers` (the kubelet ignores them).
    pub cred_helpers: Vec<String>,
    /// Top-level members read as a legacy `.dockercfg` map would read them: every member whose
    /// value is an object, except `auths`, `credHelpers`, `HttpHeaders`, `proxies`, `plugins`,
    /// `aliases` and `features` (docker CLI settings).
    pub legacy_entries: Vec<(String, RawEntry)>,
    /// No `auths`, and at least one of `legacy_entries` holds an entry field: a legacy
    /// `~/.dockercfg` map, which the kubelet finds no credentials in when stored as
    /// `.dockerconfigjson`.
    pub looks_like_dockercfg: bool,
}

impl RawDockerConfig {
    /// The raw entry of a registry key under `auths`, as written.
    pub fn auth_entry(&self, key: &str) -> Option<&RawEntry> {
        self.auths.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }
}

/// The docker CLI config members (besides `auths`) whose values are objects but not registries.
const CLI_OBJECT_SETTINGS: [&str; 6] = [
    "credHelpers",
    "HttpHeaders",
    "proxies",
    "plugins",
    "aliases",
    "features",
];

fn raw_entry(members: &[(String, Value)]) -> RawEntry {
    let mut e = RawEntry::default();
    for (k, v) in members {
        let slot = if go_field_matches(k, "username") {
            &mut e.username
        } else if go_field_matches(k, "password") {
            &mut e.password
        } else if go_field_matches(k, "email") {
            &mut e.email
        } else if go_field_matches(k, "auth") {
            &mut e.auth
        } else if go_field_matches(k, "identitytoken") {
            &mut e.identitytoken
        } else if go_field_matches(k, "registrytoken") {
            &mut e.registrytoken
        } else if go_field_matches(k, "serveraddress") {
            &mut e.serveraddress
        } else {
            continue;
        };
        match v {
            Value::String(s) => *slot = Some(s.clone()),
            Value::Null => {}
            _ => e.non_string_fields.push(k.clone()),
        }
    }
    e
}

/// Reads a docker config document without applying the kubelet's rules: which members exist and
/// what each entry holds as written. Only malformed JSON is an error (with Go's text).
pub fn inspect_config(data: &[u8]) -> Result<RawDockerConfig, DecodeError> {
    let doc = decode::parse_shallow(data, DECODE_DEPTH)?;
    let mut raw = RawDockerConfig {
        top_level_kind: doc.go_kind(),
        ..RawDockerConfig::default()
    };
    let Value::Object(members) = &doc else {
        return Ok(raw);
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    for (k, val) in members {
        raw.top_level_keys.push(k.clone());
        if go_field_matches(k, "auths") {
            raw.has_auths = true;
            match val {
                Value::Null => {
                    raw.auths.clear();
                    index.clear();
                }
                Value::Object(m) => {
                    for (rk, rv) in m {
                        let entry = match rv {
                            Value::Object(em) => raw_entry(em),
                            Value::Null => RawEntry::default(),
                            _ => {
                                raw.non_object_entries.push(rk.clone());
                                continue;
                            }
                        };
                        match index.get(rk).and_then(|&i| raw.auths.get_mut(i)) {
                            Some(slot) => slot.1 = entry,
                            None => {
                                index.insert(rk.clone(), raw.auths.len());
                                raw.auths.push((rk.clone(), entry));
                            }
                        }
                    }
                }
                _ => raw.auths_not_object = true,
            }
        } else if go_field_matches(k, "credsStore") {
            if let Value::String(s) = val {
                raw.creds_store = Some(s.clone());
            }
        } else if go_field_matches(k, "credHelpers") {
            match val {
                Value::Object(m) => {
                    for (h, _) in m {
                        if !raw.cred_helpers.contains(h) {
                            raw.cred_helpers.push(h.clone());
                        }
                    }
                }
                Value::Null => raw.cred_helpers.clear(),
                _ => {}
            }
        } else if let Value::Object(m) = val {
            if !CLI_OBJECT_SETTINGS.iter().any(|s| go_field_matches(k, s)) {
                raw.legacy_entries.push((k.clone(), raw_entry(m)));
            }
        }
    }
    raw.looks_like_dockercfg =
        !raw.has_auths && raw.legacy_entries.iter().any(|(_, e)| e.has_any_field());
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> DockerConfig {
        decode_dockerconfigjson(json.as_bytes()).unwrap()
    }

    fn err(json: &str) -> String {
        decode_dockerconfigjson(json.as_bytes())
            .unwrap_err()
            .to_string()
    }

    fn entry(u: &str, p: &str, e: &str) -> DockerConfigEntry {
        DockerConfigEntry {
            username: u.into(),
            password: p.into(),
            email: e.into(),
        }
    }

    // §1.1: type and key must match exactly, value non-empty
    #[test]
    fn pairing() {
        let mut d = BTreeMap::new();
        d.insert(DOCKER_CONFIG_JSON_KEY.to_string(), b"{}".to_vec());
        assert_eq!(
            usable_pull_secret_payload(DOCKER_CONFIG_JSON_TYPE, &d),
            Some((SecretKind::DockerConfigJson, &b"{}"[..]))
        );
        assert!(usable_pull_secret_payload("Opaque", &d).is_none());
        assert!(usable_pull_secret_payload(DOCKERCFG_TYPE, &d).is_none());
        assert!(usable_pull_secret_payload("kubernetes.io/DockerConfigJson", &d).is_none());
        d.insert(DOCKER_CONFIG_JSON_KEY.to_string(), vec![]);
        assert!(usable_pull_secret_payload(DOCKER_CONFIG_JSON_TYPE, &d).is_none());
        let mut c = BTreeMap::new();
        c.insert(DOCKERCFG_KEY.to_string(), b"{}".to_vec());
        assert_eq!(
            usable_pull_secret_payload(DOCKERCFG_TYPE, &c).map(|p| p.0),
            Some(SecretKind::DockerCfg)
        );
        assert!(usable_pull_secret_payload(DOCKER_CONFIG_JSON_TYPE, &c).is_none());
        assert_eq!(SecretKind::DockerCfg.data_key(), ".dockercfg");
        assert_eq!(
            SecretKind::DockerConfigJson.secret_type(),
            "kubernetes.io/dockerconfigjson"
        );
    }

    // §1.2: wrapper, ignored members, token fields dropped
    #[test]
    fn wrapper_and_ignored_members() {
        let c = ok(
            r#"{"auths":{"quay.io":{"username":"u","password":"p","email":"e","identitytoken":"t","registrytoken":"r","serveraddress":"s"}},"credsStore":"desktop","credHelpers":{"x":"y"},"experimental":"enabled","HttpHeaders":{"User-Agent":"x"}}"#,
        );
        assert_eq!(c.entries, vec![("quay.io".into(), entry("u", "p", "e"))]);
        let t = ok(r#"{"auths":{"quay.io":{"identitytoken":"tok","registrytoken":"rtok"}}}"#);
        assert_eq!(t.entries, vec![("quay.io".into(), entry("", "", ""))]);
        assert_eq!(
            ok(r#"{"auths":{"quay.io":{"email":"only@x"}}}"#).entries[0].1,
            entry("", "", "only@x")
        );
        assert_eq!(ok(r#"{"auths":{"":{"username":"u"}}}"#).entries[0].0, "");
    }

    // §1.2: case-insensitive field names with Go's folding
    #[test]
    fn case_insensitive_fields() {
        let c = ok(r#"{"Auths":{"quay.io":{"USERNAME":"u","Password":"p","EMAIL":"e@x"}}}"#);
        assert_eq!(c.entries, vec![("quay.io".into(), entry("u", "p", "e@x"))]);
        // U+017F folds onto 's', U+212A (Kelvin) onto 'k'; dotless i does not fold onto 'i'
        let c = ok("{\"auth\u{17f}\":{\"a.io\":{\"u\u{17f}ername\":\"u\",\"EMA\u{131}L\":\"e\"}}}");
        assert_eq!(c.entries, vec![("a.io".into(), entry("u", "", ""))]);
        assert!(go_field_matches("\u{212a}ey", "key"));
        assert!(!go_field_matches("user", "username"));
        assert!(!go_field_matches("usernames", "username"));
        assert!(!go_field_matches("user_name", "username"));
        assert!(go_field_matches("HTTPHEADERS", "HttpHeaders"));
    }

    // §1.2: several spellings of auths merge; null resets; last duplicate wins in place
    #[test]
    fn merging_and_duplicates() {
        let c = ok(
            r#"{"auths":{"a.io":{"username":"a","password":"1"}},"Auths":{"b.io":{"username":"b","password":"2"}}}"#,
        );
        assert_eq!(
            c.entries,
            vec![
                ("a.io".into(), entry("a", "1", "")),
                ("b.io".into(), entry("b", "2", ""))
            ]
        );
        let c = ok(r#"{"auths":{"a.io":{"username":"1"},"b.io":{},"a.io":{"username":"2"}}}"#);
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[0], ("a.io".into(), entry("2", "", "")));
        let c = ok(r#"{"auths":{"a.io":{}},"AUTHS":null,"auths":{"b.io":{}}}"#);
        assert_eq!(c.entries, vec![("b.io".into(), entry("", "", ""))]);
        // an entry `null` is an empty credential; a field `null` changes nothing
        let c = ok(r#"{"auths":{"a.io":{"username":"x"},"a.io":null}}"#);
        assert_eq!(c.entries[0].1, entry("", "", ""));
        let c = ok(r#"{"auths":{"a.io":{"username":"x","username":null,"auth":null}}}"#);
        assert_eq!(c.entries[0].1, entry("x", "", ""));
        // later fields of the same entry: the last string wins
        let c = ok(r#"{"auths":{"a.io":{"username":"x","USERNAME":"y"}}}"#);
        assert_eq!(c.entries[0].1.username, "y");
    }

    // §1.2: null document and missing auths give no entries
    #[test]
    fn empty_documents() {
        assert!(ok("null").entries.is_empty());
        assert!(ok(" null ").entries.is_empty());
        assert!(ok("{}").entries.is_empty());
        assert!(ok(r#"{"a.io":{"username":"u"}}"#).entries.is_empty());
        assert!(ok(r#"{"auths":null}"#).entries.is_empty());
        assert!(ok(r#"{"auths":{}}"#).entries.is_empty());
        assert!(decode_dockercfg(b"null").unwrap().entries.is_empty());
        assert!(decode_dockercfg(b"{}").unwrap().entries.is_empty());
    }

    // §1.2 entry semantics: a non-empty auth replaces username and password, keeps email
    #[test]
    fn auth_overrides() {
        let c = ok(
            r#"{"auths":{"quay.io":{"username":"foo","password":"bar","auth":"cGluZzpwb25n","email":"e@x"}}}"#,
        );
        assert_eq!(c.entries[0].1, entry("ping", "pong", "e@x"));
        let c = ok(r#"{"auths":{"quay.io":{"username":"foo","password":"bar","auth":""}}}"#);
        assert_eq!(c.entries[0].1, entry("foo", "bar", ""));
        let c = ok(r#"{"auths":{"quay.io":{"auth":"dXNlcjpwYXNzd29yZA"}}}"#);
        assert_eq!(c.entries[0].1, entry("user", "password", ""));
        let c = ok(r#"{"auths":{"quay.io":{"auth":"dXNlcjpwYTpzczp3b3Jk"}}}"#);
        assert_eq!(c.entries[0].1, entry("user", "pa:ss:word", ""));
        let c = ok(r#"{"auths":{"quay.io":{"auth":"Zm9vOmJhcgo="}}}"#);
        assert_eq!(c.entries[0].1, entry("foo", "bar\n", ""));
        let c = ok(r#"{"auths":{"quay.io":{"auth":"dXNlcjpwYXNz\n"}}}"#);
        assert_eq!(c.entries[0].1, entry("user", "pass", ""));
    }

    // §1.2: the legacy map, and the new shape stored as legacy
    #[test]
    fn legacy_dockercfg() {
        let c = decode_dockercfg(br#"{"a.io":{"auth":"dTpw","email":"e"},"b.io":null}"#).unwrap();
        assert_eq!(
            c.entries,
            vec![
                ("a.io".into(), entry("u", "p", "e")),
                ("b.io".into(), entry("", "", ""))
            ]
        );
        let c = decode_dockercfg(br#"{"auths":{"quay.io":{"username":"u","password":"u-pw"}}}"#)
            .unwrap();
        assert_eq!(c.entries, vec![("auths".into(), entry("", "", ""))]);
        assert_eq!(
            decode_dockercfg(b"[]").unwrap_err().to_string(),
            "json: cannot unmarshal array into Go value of type credentialprovider.DockerConfig"
        );
        assert_eq!(
            decode_dockercfg(br#"{"a.io":1}"#).unwrap_err().to_string(),
            "json: cannot unmarshal number into Go value of type credentialprovider.dockerConfigEntryWithAuth"
        );
        assert_eq!(
            decode_dockercfg(br#"{"a.io":{"auth":"x y"}}"#)
                .unwrap_err()
                .to_string(),
            "illegal base64 data at input byte 1"
        );
    }

    // §1.4 and the parse-* vectors: the exact error strings
    #[test]
    fn parse_vector_errors() {
        assert_eq!(err(r#"{"auths": {"#), "unexpected end of JSON input");
        assert_eq!(
            err(r#"{"auths": {"quay.io": {"auth": "bm9jb2xvbg=="}}}"#),
            "unable to parse auth field, must be formatted as base64(username:password)"
        );
        assert_eq!(
            err(r#"{"auths": {"quay.io": {"auth": " dXNlcjpwYXNz"}}}"#),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            err(r#"{"auths":{"quay.io":"user:pass"}}"#),
            "json: cannot unmarshal string into Go value of type credentialprovider.dockerConfigEntryWithAuth"
        );
        assert_eq!(
            err(r#"{"auths":{"q":{"auth":1}}}"#),
            "json: cannot unmarshal number into Go struct field dockerConfigEntryWithAuth.auth of type string"
        );
        assert_eq!(err(""), "unexpected end of JSON input");
        assert_eq!(
            err("not json at all"),
            "invalid character 'o' in literal null (expecting 'u')"
        );
    }

    // §1.2 / §1.4: wrong types anywhere fail, with Go's ordering of errors
    #[test]
    fn type_errors() {
        assert_eq!(
            err(r#"{"auths":1}"#),
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig"
        );
        assert_eq!(
            err(r#"{"auths":[]}"#),
            "json: cannot unmarshal array into Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig"
        );
        assert_eq!(
            err("[]"),
            "json: cannot unmarshal array into Go value of type credentialprovider.DockerConfigJSON"
        );
        assert_eq!(
            err(r#""x""#),
            "json: cannot unmarshal string into Go value of type credentialprovider.DockerConfigJSON"
        );
        assert_eq!(
            err(r#"{"auths":{"q":{"username":true}}}"#),
            "json: cannot unmarshal bool into Go struct field dockerConfigEntryWithAuth.username of type string"
        );
        assert_eq!(
            err(r#"{"auths":{"q":{"password":{"deep":[[[1]]]}}}}"#),
            "json: cannot unmarshal object into Go struct field dockerConfigEntryWithAuth.password of type string"
        );
        assert_eq!(
            err(r#"{"auths":{"q":{"email":[],"auth":5}}}"#),
            "json: cannot unmarshal array into Go struct field dockerConfigEntryWithAuth.email of type string"
        );
        // a type error in an entry wins over a bad auth in the same entry (Unmarshal fails first)
        assert_eq!(
            err(r#"{"auths":{"q":{"auth":"!!","email":1}}}"#),
            "json: cannot unmarshal number into Go struct field dockerConfigEntryWithAuth.email of type string"
        );
        assert_eq!(
            err(r#"{"auths":{},"HttpHeaders":"x"}"#),
            "json: cannot unmarshal string into Go struct field DockerConfigJSON.HttpHeaders of type map[string]string"
        );
        assert_eq!(
            err(r#"{"auths":{},"httpheaders":{"a":1}}"#),
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.HttpHeaders of type string"
        );
        // a wrapper type error is saved; a later entry error is returned at once and wins
        assert_eq!(
            err(r#"{"auths":1,"Auths":{"q":{"auth":"x"}}}"#),
            "illegal base64 data at input byte 0"
        );
        // otherwise the first saved error is reported after the whole document
        assert_eq!(
            err(r#"{"HttpHeaders":1,"auths":true,"Auths":{"q":{}}}"#),
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.HttpHeaders of type map[string]string"
        );
        // a syntax error anywhere wins over every type error
        assert_eq!(
            err(r#"{"auths":1,"x":tru}"#),
            "invalid character '}' in literal true (expecting 'e')"
        );
        // unknown members are never type-checked
        assert!(
            ok(r#"{"auths":{"q":{"identitytoken":1,"x":[{}]}},"credsStore":7}"#)
                .entries
                .len()
                .eq(&1)
        );
    }

    // deep nesting: what Go accepts is accepted, beyond Go's limit its error
    #[test]
    fn deep_documents() {
        let deep = format!(
            r#"{{"auths":{{"q":{{"x":{}{}}}}},"y":{}{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000),
            "[".repeat(9000),
            "]".repeat(9000)
        );
        assert_eq!(ok(&deep).entries.len(), 1);
        let too_deep = format!(r#"{{"auths":{}}}"#, "[".repeat(20_000));
        assert_eq!(err(&too_deep), "invalid character '[' exceeded max depth");
        assert_eq!(
            err(&format!(r#"{{"auths":{{"q":{{"auth":{}{}}}}}}}"#, "[".repeat(50), "]".repeat(50))),
            "json: cannot unmarshal array into Go struct field dockerConfigEntryWithAuth.auth of type string"
        );
    }

    // §1.3: decode_auth_field rules one by one
    #[test]
    fn auth_field_rules() {
        let d = |s: &str| decode_auth_field(s);
        // padded vs unpadded chosen by the trimmed trailing '='
        assert_eq!(
            d("dXNlcjpwYXNzd29yZA==").unwrap(),
            ("user".into(), "password".into())
        );
        assert_eq!(
            d("dXNlcjpwYXNzd29yZA").unwrap(),
            ("user".into(), "password".into())
        );
        assert_eq!(
            d("dXNlcjpwYXNzd29yZA=").unwrap_err(),
            DecodeError::Base64(19)
        );
        assert_eq!(
            d("dXNlcjpwYXNzd29yZA== ").unwrap_err(),
            DecodeError::Base64(20)
        );
        assert_eq!(
            d("dXNlcjpwYXNzd29yZA==\n").unwrap(),
            ("user".into(), "password".into())
        );
        // \r and \n skipped anywhere; any other stray byte is an error at its offset
        assert_eq!(
            d("dXNl\r\ncjpw\nYXNz").unwrap(),
            ("user".into(), "pass".into())
        );
        assert_eq!(d("dXNl cjpw").unwrap_err(), DecodeError::Base64(4));
        assert_eq!(d("dXNl\tcjpw").unwrap_err(), DecodeError::Base64(4));
        assert_eq!(d(" ").unwrap_err(), DecodeError::Base64(0));
        assert_eq!(
            d("pants").unwrap_err().to_string(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            d("dXNlcl9wYXNzd29yZA-_").unwrap_err(),
            DecodeError::Base64(18)
        );
        assert_eq!(d("ñ").unwrap_err(), DecodeError::Base64(0));
        assert_eq!(d("QUJD\u{e9}").unwrap_err(), DecodeError::Base64(4));
        // wrong padding
        assert_eq!(d("Zm9vOmJhcg=").unwrap_err(), DecodeError::Base64(11));
        assert_eq!(d("Zm9vOmJhcg==Zm9v").unwrap_err(), DecodeError::Base64(10));
        assert_eq!(
            d("Zm9vOmJhcg==\nZm9v=").unwrap_err(),
            DecodeError::Base64(13)
        );
        assert_eq!(d("Zm9vOmJh=").unwrap_err(), DecodeError::Base64(8));
        assert_eq!(d("Zm9vOmJhc===").unwrap_err(), DecodeError::Base64(9));
        assert_eq!(d("Zm9vOmJhcg=x").unwrap_err(), DecodeError::Base64(10));
        assert_eq!(d("Zm9vOmJhcg=\n").unwrap_err(), DecodeError::Base64(12));
        assert_eq!(d("Zm9vOmJhYg").unwrap(), ("foo".into(), "bab".into()));
        assert_eq!(d("Zm9vOmJhYmE").unwrap(), ("foo".into(), "baba".into()));
        assert_eq!(d("Zm9vOmJhY").unwrap_err(), DecodeError::Base64(8));
        assert_eq!(d("Zm9vOmJhYmE=").unwrap(), ("foo".into(), "baba".into()));
        // non-zero trailing bits are accepted (non-strict)
        assert_eq!(d("Zm9vOmJhcn=").unwrap_err(), DecodeError::Base64(11));
        assert_eq!(d("Zm9vOmJhcn").unwrap(), ("foo".into(), "bar".into()));
        // split at the first colon, either side may be empty, no trimming
        assert_eq!(d("Og==").unwrap(), (String::new(), String::new()));
        assert_eq!(
            d("Om9ubHlwYXNzd29yZA==").unwrap(),
            (String::new(), "onlypassword".into())
        );
        assert_eq!(
            d("dXNlcjpuYW1lOnB3").unwrap(),
            ("user".into(), "name:pw".into())
        );
        assert_eq!(d("IHUgOiBwIA==").unwrap(), (" u ".into(), " p ".into()));
        assert_eq!(d("cGFudHM=").unwrap_err(), DecodeError::AuthNoColon);
        assert_eq!(d("").unwrap_err(), DecodeError::AuthNoColon);
        // bytes pass through; Go's per-byte U+FFFD when shown as a string
        assert_eq!(
            decode_auth_field_bytes("dXNlcjpw/+8=").unwrap(),
            (b"user".to_vec(), vec![b'p', 0xff, 0xef])
        );
        assert_eq!(d("dXNlcjpw/+8=").unwrap().1, "p\u{fffd}\u{fffd}");
        // "u:" + e2 82 41: Go gives two U+FFFD, from_utf8_lossy would give one
        assert_eq!(d("dTrigkE=").unwrap().1, "\u{fffd}\u{fffd}A");
    }

    #[test]
    fn secrets_never_in_debug_or_errors() {
        let pw = "hunter2-very-secret";
        let docs = [
            format!(r#"{{"auths":{{"a.io":{{"username":"u","password":"{pw}","auth":"{pw}"}}}}}}"#),
            format!(r#"{{"auths":{{"a.io":{{"password":"{pw}" x"#),
            format!(r#"{{"auths":{{"a.io":{{"password":"{pw}","auth":1}}}}}}"#),
            format!(r#"{{"auths":{{"a.io":"{pw}"}}}}"#),
            format!(r#"{{"auths":{{"a.io":{{"auth":"{pw}=="}}}}}}"#),
            format!(r#"{{"auths":{{"a.io":{{"identitytoken":"{pw}","auth":"{pw}\u0000"}}}}}}"#),
            format!(r#"{{"x":"{pw}","auths":{{"a.io":{{"registrytoken":"{pw}"}}}}}}"#),
            format!(r#"["{pw}",]"#),
            format!(
                r#"{{"auths":{{"a.io":{{"password":"{pw}
"}}}}}}"#
            ),
        ];
        for doc in &docs {
            for r in [
                decode_dockerconfigjson(doc.as_bytes()),
                decode_dockercfg(doc.as_bytes()),
            ] {
                let shown = match &r {
                    Ok(c) => format!("{c:?}"),
                    Err(e) => format!("{e} {e:?}"),
                };
                assert!(!shown.contains(pw), "{shown}");
                assert!(!shown.contains("hunter2"), "{shown}");
            }
            let shown = match inspect_config(doc.as_bytes()) {
                Ok(raw) => format!("{raw:?}"),
                Err(e) => format!("{e} {e:?}"),
            };
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        // a base64 auth that decodes to the password: neither the auth nor the password shows
        let auth = "dXNlcjpodW50ZXIyLXZlcnktc2VjcmV0"; // user:hunter2-very-secret
        let c = ok(&format!(r#"{{"auths":{{"a.io":{{"auth":"{auth}"}}}}}}"#));
        assert_eq!(c.entries[0].1.password, pw);
        let shown = format!("{c:?}");
        assert!(!shown.contains(pw) && !shown.contains(auth), "{shown}");
        let raw =
            inspect_config(format!(r#"{{"auths":{{"a.io":{{"auth":"{auth}"}}}}}}"#).as_bytes())
                .unwrap();
        assert!(!format!("{raw:?}").contains(auth));
        for bad in [format!("{pw}="), format!("{auth}!"), format!(" {auth}")] {
            let e = decode_auth_field(&bad).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("hunter2"));
        }
    }

    #[test]
    fn inspect() {
        let r = inspect_config(br#"{"reg.io":{"auth":"eA=="},"HttpHeaders":{"a":"b"}}"#).unwrap();
        assert!(r.looks_like_dockercfg && !r.has_auths);
        assert_eq!(r.legacy_entries.len(), 1);
        assert_eq!(r.legacy_entries[0].1.auth.as_deref(), Some("eA=="));
        let r = inspect_config(
            br#"{"auths":{"a.io":{"Auth":"x","serveraddress":"https://a.io","IdentityToken":"t","username":1},"b.io":"s","c.io":null},"CredsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#,
        )
        .unwrap();
        assert_eq!(r.top_level_kind, "object");
        assert!(r.has_auths && !r.looks_like_dockercfg && !r.auths_not_object);
        assert_eq!(r.creds_store.as_deref(), Some("desktop"));
        assert_eq!(r.cred_helpers, vec!["gcr.io".to_string()]);
        assert_eq!(r.non_object_entries, vec!["b.io".to_string()]);
        assert_eq!(r.auths.len(), 2);
        let a = r.auth_entry("a.io").unwrap();
        assert_eq!(a.auth.as_deref(), Some("x"));
        assert_eq!(a.serveraddress.as_deref(), Some("https://a.io"));
        assert_eq!(a.identitytoken.as_deref(), Some("t"));
        assert_eq!(a.non_string_fields, vec!["username".to_string()]);
        assert_eq!(r.auth_entry("c.io"), Some(&RawEntry::default()));
        let r = inspect_config(br#"{"auths":1}"#).unwrap();
        assert!(r.has_auths && r.auths_not_object);
        let r = inspect_config(b"[1]").unwrap();
        assert_eq!(r.top_level_kind, "array");
        assert!(inspect_config(b"{").is_err());
        let r = inspect_config(br#"{"credsStore":"osxkeychain","auths":{}}"#).unwrap();
        assert!(r.has_auths && r.auths.is_empty());
        let r = inspect_config(br#"{"proxies":{"default":{}},"quay.io":{}}"#).unwrap();
        assert!(!r.looks_like_dockercfg);
        assert_eq!(r.legacy_entries.len(), 1);
    }
}
