//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`), transcoded to and from
//! Kubernetes JSON (`serde_json::Value`) by walking protobuf descriptors, never by hand per kind.
//!
//! - The descriptors are the upstream `generated.proto` files vendored in `proto/` (kubernetes
//!   1.32), compiled at build time (`build.rs`, `protox`) into a `FileDescriptorSet`.
//! - Which JSON key a protobuf field has, whether its Go struct is inlined into the parent's JSON
//!   (`json:",inline"`: `Volume.volumeSource`, `Probe.handler`, …), whether the Go field is a
//!   pointer and whether it is `omitempty` come from the struct tags of the vendored `types.go`
//!   files (`build.rs` writes them out as a table). That covers the renamed fields
//!   (`BoundObjectReference.uID` → `uid`, `Webhooks`, `$ref`, `x-kubernetes-*`, …).
//! - Types with their own JSON form are handled by message name: `Time` and `MicroTime`
//!   (`time_proto.go`, `micro_time_proto.go`), `Duration`, `IntOrString`, `Quantity`,
//!   `RawExtension`, `FieldsV1`, apiextensions `JSON` and `JSONSchemaPropsOr*`, and the
//!   `[]string` wrappers (`ExtraValue`, `Verbs`).
//! - Go's gogo marshalling writes non-pointer scalars unconditionally, so `""`, `0` and `false`
//!   arrive for fields nobody set. A decoded zero is dropped where Go's JSON would drop it
//!   (`omitempty` on a non-pointer field), and kept where the Go field is a pointer (an explicit
//!   `replicas: 0`) or not `omitempty`: the decoded JSON is what `encoding/json` makes of the Go
//!   struct the client marshalled.
//!
//! Encoding follows gogo's layout (fields by number, map entries sorted by key), so an object
//! always gives the same bytes.
//!
//! The envelope is `k8s\0` then a `runtime.Unknown` (k8s.io/apimachinery
//! `pkg/runtime/serializer/protobuf/protobuf.go`); a watch stream is 4-byte big-endian
//! length-framed `WatchEvent`s (`pkg/util/framer/framer.go`) whose objects are full envelopes
//! (k8s.io/apiserver `pkg/endpoints/handlers/watch.go`).

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage as _, Value as PValue,
};
use serde_json::{json, Map, Value};

/// The protobuf envelope magic (`protoEncodingPrefix`).
pub const MAGIC: &[u8] = b"k8s\x00";

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The media types a request body may have for create and update
/// (k8s.io/apiserver `negotiation.NegotiateInputSerializer`, CBOR off), in upstream order.
pub const BODY_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml", MEDIA_TYPE];

/// The media types of a PATCH body (k8s.io/apiserver `pkg/endpoints/installer.go`).
pub const PATCH_MEDIA_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// How many protobuf envelopes may nest inside each other's `RawExtension`s (each is decoded
/// with prost's own recursion limit of 100 messages).
const MAX_DEPTH: usize = 4;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
const APIEXT: &str = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1";

/// A protobuf body that cannot be read, or an object that cannot be written as protobuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The body is empty (`protobuf.go` `Decode`).
    #[error("empty data")]
    EmptyData,
    /// The body does not start with `k8s\0`.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NoPrefix,
    /// Only the prefix.
    #[error("empty body")]
    EmptyBody,
    /// No message for this apiVersion and kind (`runtime.Scheme` wording).
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/runtime/scheme.go:100\"")]
    NotRegistered {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The bytes are not a valid message.
    #[error("decoding {what} from protobuf: {why}")]
    Decode {
        /// The message (`apps/v1 Deployment`, `runtime.Unknown`).
        what: String,
        /// What is wrong.
        why: String,
    },
    /// A field's value cannot be converted.
    #[error("{path}: {why}")]
    Field {
        /// The JSON path of the field (`spec.replicas`).
        path: String,
        /// What is wrong and what is expected.
        why: String,
    },
    /// No protobuf message exists for the object (`errNotMarshalable`).
    #[error("object {0} does not implement the protobuf marshalling interface and cannot be encoded to a protobuf message")]
    NotMarshalable(String),
}

/// What the struct tags say about one protobuf field.
#[derive(Debug, Clone)]
struct FieldInfo {
    json: String,
    inline: bool,
    pointer: bool,
    omitempty: bool,
}

struct Schema {
    pool: DescriptorPool,
    /// message full name → field number → info
    fields: HashMap<String, HashMap<u32, FieldInfo>>,
}

static FDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.fds"));
static FIELDS: &str = include_str!(concat!(env!("OUT_DIR"), "/k8s-fields.tsv"));

fn schema() -> Result<&'static Schema, ProtoError> {
    static S: OnceLock<Result<Schema, String>> = OnceLock::new();
    S.get_or_init(|| {
        let pool = DescriptorPool::decode(FDS).map_err(|e| e.to_string())?;
        let mut fields: HashMap<String, HashMap<u32, FieldInfo>> = HashMap::new();
        for line in FIELDS.lines() {
            let mut it = line.split('\t');
            let (Some(msg), Some(num), Some(json), Some(flags)) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                continue;
            };
            let Ok(num) = num.parse::<u32>() else {
                continue;
            };
            fields.entry(msg.to_string()).or_default().insert(
                num,
                FieldInfo {
                    json: json.to_string(),
                    inline: flags.contains('i'),
                    pointer: flags.contains('p'),
                    omitempty: flags.contains('o'),
                },
            );
        }
        Ok(Schema { pool, fields })
    })
    .as_ref()
    .map_err(|e| ProtoError::Decode {
        what: "the built-in descriptors".into(),
        why: e.clone(),
    })
}

impl Schema {
    fn info(&self, m: &MessageDescriptor, f: &FieldDescriptor) -> FieldInfo {
        self.fields
            .get(m.full_name())
            .and_then(|x| x.get(&f.number()))
            .cloned()
            .unwrap_or_else(|| FieldInfo {
                json: f.json_name().to_string(),
                inline: false,
                pointer: false,
                omitempty: true,
            })
    }

    /// A `type X []string` wrapper (`ExtraValue`, `Verbs`): one repeated `items` field and no
    /// Go struct behind it. Its JSON is the bare array.
    fn is_list_wrapper(&self, m: &MessageDescriptor) -> bool {
        let mut f = m.fields();
        match (f.next(), f.next()) {
            (Some(x), None) => {
                x.name() == "items"
                    && x.number() == 1
                    && x.is_list()
                    && !self.fields.contains_key(m.full_name())
            }
            _ => false,
        }
    }
}

/// The protobuf packages of an API group's version: `k8s.io.api.<first label>.<version>` for
/// the built-in groups (no dot, or `*.k8s.io`), with the exceptions upstream's layout has
/// (`meta.k8s.io`, `apiextensions.k8s.io`); then meta/v1, whose kinds every group version
/// registers (`metav1.AddToGroupVersion`: `DeleteOptions`, `WatchEvent`, …; `Status` in `v1`).
fn packages(group: &str, version: &str) -> Vec<String> {
    let meta = format!("k8s.io.apimachinery.pkg.apis.meta.{version}");
    let own = match group {
        "" => format!("k8s.io.api.core.{version}"),
        "meta.k8s.io" => return vec![meta],
        "apiextensions.k8s.io" => {
            format!("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        g if !g.contains('.') || g.ends_with(".k8s.io") => {
            let first = g.split('.').next().unwrap_or(g);
            format!("k8s.io.api.{first}.{version}")
        }
        _ => return vec![],
    };
    vec![own, meta]
}

/// The message of an `(apiVersion, kind)`, if the built-in descriptors have one. Kinds without
/// one (custom resources, `Table`) are never protobuf.
fn message_for(s: &Schema, api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if kind.is_empty() || version.is_empty() || kind.contains('.') {
        return None;
    }
    packages(group, version)
        .into_iter()
        .find_map(|p| s.pool.get_message_by_name(&format!("{p}.{kind}")))
}

/// Whether objects of this `(apiVersion, kind)` can be protobuf-encoded.
pub fn has_message(api_version: &str, kind: &str) -> bool {
    schema().is_ok_and(|s| message_for(s, api_version, kind).is_some())
}

// ---------------------------------------------------------------------------------------------
// protobuf → JSON

/// Decodes a `k8s\0` + `runtime.Unknown` body into the object's Kubernetes JSON, with
/// `kind` and `apiVersion` from the envelope (`protobuf.go` `Serializer.Decode`).
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    decode_depth(body, 0)
}

fn decode_depth(body: &[u8], depth: usize) -> Result<Value, ProtoError> {
    if body.is_empty() {
        return Err(ProtoError::EmptyData);
    }
    if body.len() < MAGIC.len() || &body[..MAGIC.len()] != MAGIC {
        return Err(ProtoError::NoPrefix);
    }
    if body.len() == MAGIC.len() {
        return Err(ProtoError::EmptyBody);
    }
    let s = schema()?;
    let unknown_desc = s
        .pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ProtoError::NotMarshalable("runtime.Unknown".into()))?;
    let unk = DynamicMessage::decode(unknown_desc, &body[MAGIC.len()..]).map_err(|e| {
        ProtoError::Decode {
            what: "the envelope (runtime.Unknown)".into(),
            why: e.to_string(),
        }
    })?;
    let str_of = |m: &DynamicMessage, name: &str| {
        m.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (api_version, kind) = match unk.get_field_by_name("typeMeta").as_deref() {
        Some(PValue::Message(tm)) => (str_of(tm, "apiVersion"), str_of(tm, "kind")),
        _ => (String::new(), String::new()),
    };
    let encoding = str_of(&unk, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtoError::Decode {
            what: "the envelope (runtime.Unknown)".into(),
            why: format!("contentEncoding {encoding:?} is not supported; send the object unencoded (an empty contentEncoding)"),
        });
    }
    let raw = match unk.get_field_by_name("raw").as_deref() {
        Some(PValue::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let desc = message_for(s, &api_version, &kind).ok_or_else(|| {
        if packages(group, "v1").is_empty() {
            // custom resources decode into Unstructured, which has no protobuf form
            // (apiextensions-apiserver's CR handler; `errNotMarshalable`)
            ProtoError::NotMarshalable("*unstructured.Unstructured".into())
        } else {
            ProtoError::NotRegistered {
                api_version: api_version.clone(),
                kind: kind.clone(),
            }
        }
    })?;
    let msg = DynamicMessage::decode(desc, raw).map_err(|e| ProtoError::Decode {
        what: format!("{api_version} {kind}"),
        why: e.to_string(),
    })?;
    let body = msg_to_json(s, &msg, depth)?;
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("apiVersion".into(), json!(api_version));
    if let Value::Object(o) = body {
        out.extend(o);
    }
    Ok(Value::Object(out))
}

fn is_zero(v: &PValue) -> bool {
    match v {
        PValue::Bool(b) => !b,
        PValue::I32(x) | PValue::EnumNumber(x) => *x == 0,
        PValue::I64(x) => *x == 0,
        PValue::U32(x) => *x == 0,
        PValue::U64(x) => *x == 0,
        PValue::F32(x) => *x == 0.0,
        PValue::F64(x) => *x == 0.0,
        PValue::String(x) => x.is_empty(),
        PValue::Bytes(x) => x.is_empty(),
        PValue::Message(_) | PValue::List(_) | PValue::Map(_) => false,
    }
}

fn msg_to_json(s: &Schema, m: &DynamicMessage, depth: usize) -> Result<Value, ProtoError> {
    let d = m.descriptor();
    if let Some(v) = special_to_json(s, &d, m, depth)? {
        return Ok(v);
    }
    let mut out = Map::new();
    for (f, v) in m.fields() {
        let info = s.info(&d, &f);
        if info.inline {
            if let Value::Object(o) = value_to_json(s, v, depth)? {
                out.extend(o);
            }
            continue;
        }
        // gogo writes non-pointer scalars unconditionally: a zero is "unset" where Go's JSON
        // would leave it out
        if !info.pointer && info.omitempty && !f.is_list() && !f.is_map() && is_zero(v) {
            continue;
        }
        let j = value_to_json(s, v, depth)?;
        if j.is_null() {
            continue;
        }
        out.insert(info.json, j);
    }
    Ok(Value::Object(out))
}

fn value_to_json(s: &Schema, v: &PValue, depth: usize) -> Result<Value, ProtoError> {
    Ok(match v {
        PValue::Bool(b) => json!(b),
        PValue::I32(x) | PValue::EnumNumber(x) => json!(x),
        PValue::I64(x) => json!(x),
        PValue::U32(x) => json!(x),
        PValue::U64(x) => json!(x),
        PValue::F32(x) => json!(x),
        PValue::F64(x) => json!(x),
        PValue::String(x) => json!(x),
        PValue::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::Message(m) => msg_to_json(s, m, depth)?,
        PValue::List(items) => Value::Array(
            items
                .iter()
                .map(|i| value_to_json(s, i, depth))
                .collect::<Result<_, _>>()?,
        ),
        PValue::Map(m) => {
            // Go's encoding/json writes map keys sorted
            let mut entries: Vec<(String, &PValue)> =
                m.iter().map(|(k, v)| (map_key_string(k), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut o = Map::new();
            for (k, v) in entries {
                o.insert(k, value_to_json(s, v, depth)?);
            }
            Value::Object(o)
        }
    })
}

fn map_key_string(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(x) => x.to_string(),
        MapKey::I64(x) => x.to_string(),
        MapKey::U32(x) => x.to_string(),
        MapKey::U64(x) => x.to_string(),
        MapKey::String(x) => x.clone(),
    }
}

fn get_i64(m: &DynamicMessage, name: &str) -> i64 {
    m.get_field_by_name(name)
        .map(|v| match v.as_ref() {
            PValue::I64(x) => *x,
            PValue::I32(x) => i64::from(*x),
            _ => 0,
        })
        .unwrap_or(0)
}

fn get_msg(m: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    if !m.has_field_by_name(name) {
        return None;
    }
    match m.get_field_by_name(name)?.as_ref() {
        PValue::Message(x) => Some(x.clone()),
        _ => None,
    }
}

/// Raw JSON (or a nested protobuf envelope) as a value.
fn raw_to_json(raw: &[u8], what: &str, depth: usize) -> Result<Value, ProtoError> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(MAGIC) {
        if depth >= MAX_DEPTH {
            return Err(ProtoError::Decode {
                what: what.into(),
                why: format!("objects nested more than {MAX_DEPTH} deep"),
            });
        }
        return decode_depth(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|e| ProtoError::Decode {
        what: what.into(),
        why: format!("raw bytes are neither JSON nor a protobuf object: {e}"),
    })
}

fn special_to_json(
    s: &Schema,
    d: &MessageDescriptor,
    m: &DynamicMessage,
    depth: usize,
) -> Result<Option<Value>, ProtoError> {
    let name = d.full_name();
    let Some((pkg, short)) = name.rsplit_once('.') else {
        return Ok(None);
    };
    let v = match (pkg, short) {
        // time_proto.go: an empty message is the zero time (JSON null); seconds only
        (META, "Time") => {
            if !m.has_field_by_name("seconds") && !m.has_field_by_name("nanos") {
                Value::Null
            } else {
                json!(format_time(get_i64(m, "seconds"), None)?)
            }
        }
        // micro_time_proto.go: seconds and nanos; JSON RFC3339 with microseconds
        (META, "MicroTime") => {
            if !m.has_field_by_name("seconds") && !m.has_field_by_name("nanos") {
                Value::Null
            } else {
                json!(format_time(
                    get_i64(m, "seconds"),
                    Some(get_i64(m, "nanos"))
                )?)
            }
        }
        (META, "Duration") => json!(go_duration_string(get_i64(m, "duration"))),
        (META, "FieldsV1") => raw_to_json(&bytes_field(m, "Raw"), "FieldsV1", depth)?,
        ("k8s.io.apimachinery.pkg.runtime", "RawExtension") => {
            raw_to_json(&bytes_field(m, "raw"), "RawExtension", depth)?
        }
        (APIEXT, "JSON") => raw_to_json(&bytes_field(m, "raw"), "JSON", depth)?,
        ("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") => {
            if get_i64(m, "type") == 1 {
                json!(m
                    .get_field_by_name("strVal")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default())
            } else {
                json!(get_i64(m, "intVal"))
            }
        }
        ("k8s.io.apimachinery.pkg.api.resource", "Quantity") => {
            let q = m
                .get_field_by_name("string")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            json!(if q.is_empty() { "0".to_string() } else { q })
        }
        // types_jsonschema.go MarshalJSON of the JSONSchemaPropsOr* types
        (APIEXT, "JSONSchemaPropsOrArray") => match m.get_field_by_name("jSONSchemas").as_deref() {
            Some(PValue::List(l)) if !l.is_empty() => {
                value_to_json(s, &PValue::List(l.clone()), depth)?
            }
            _ => match get_msg(m, "schema") {
                Some(x) => msg_to_json(s, &x, depth)?,
                None => Value::Null,
            },
        },
        (APIEXT, "JSONSchemaPropsOrBool") => match get_msg(m, "schema") {
            Some(x) => msg_to_json(s, &x, depth)?,
            None => json!(m
                .get_field_by_name("allows")
                .and_then(|v| v.as_bool())
                .unwrap_or(false)),
        },
        (APIEXT, "JSONSchemaPropsOrStringArray") => {
            match m.get_field_by_name("property").as_deref() {
                Some(PValue::List(l)) if !l.is_empty() => {
                    value_to_json(s, &PValue::List(l.clone()), depth)?
                }
                _ => match get_msg(m, "schema") {
                    Some(x) => msg_to_json(s, &x, depth)?,
                    None => Value::Null,
                },
            }
        }
        _ if s.is_list_wrapper(d) => match m.get_field_by_name("items").as_deref() {
            Some(l @ PValue::List(_)) => value_to_json(s, l, depth)?,
            _ => json!([]),
        },
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn bytes_field(m: &DynamicMessage, name: &str) -> Vec<u8> {
    match m.get_field_by_name(name).as_deref() {
        Some(PValue::Bytes(b)) => b.to_vec(),
        _ => vec![],
    }
}

/// RFC 3339 in UTC: seconds (`Time`) or microseconds (`MicroTime`, when `nanos` is given).
fn format_time(seconds: i64, nanos: Option<i64>) -> Result<String, ProtoError> {
    let t = jiff::Timestamp::from_second(seconds).map_err(|e| ProtoError::Field {
        path: "seconds".into(),
        why: format!("{seconds} is not a representable time: {e}"),
    })?;
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    // `Time` is RFC3339 (seconds); `MicroTime` is RFC3339Micro, always six digits
    Ok(match nanos {
        None => format!("{base}Z"),
        Some(n) => format!("{base}.{:06}Z", (n / 1000).clamp(0, 999_999)),
    })
}

/// Go's `time.Duration.String()` (`src/time/time.go` `Duration.format`).
pub fn go_duration_string(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let frac = |u: u64, prec: u32| -> (String, u64) {
        let p = 10u64.pow(prec);
        let f = format!("{:0width$}", u % p, width = prec as usize);
        let f = f.trim_end_matches('0');
        (
            if f.is_empty() {
                String::new()
            } else {
                format!(".{f}")
            },
            u / p,
        )
    };
    let mut out = if u < 1_000_000_000 {
        let (unit, prec) = match u {
            0 => return "0s".into(),
            x if x < 1_000 => ("ns", 0),
            x if x < 1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let (f, i) = frac(u, prec);
        format!("{i}{f}{unit}")
    } else {
        let (f, secs) = frac(u, 9);
        u = secs;
        let mut s = format!("{}{f}s", u % 60);
        u /= 60;
        if u > 0 {
            s = format!("{}m{s}", u % 60);
            u /= 60;
            if u > 0 {
                s = format!("{u}h{s}");
            }
        }
        s
    };
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Go's `time.ParseDuration` (`src/time/format.go`): `[-+]` then number-unit pairs.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let num = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let (int, fr) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && fr.is_empty() {
            return None;
        }
        let i: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut v = i.checked_mul(unit)?;
        if !fr.is_empty() {
            let fr = &fr[..fr.len().min(18)];
            let f: i128 = fr.parse().ok()?;
            v += f * unit / 10i128.pow(fr.len() as u32);
        }
        total = total.checked_add(v)?;
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).ok()
}

// ---------------------------------------------------------------------------------------------
// JSON → protobuf

/// Encodes an object (with `apiVersion` and `kind`) as `k8s\0` + `runtime.Unknown`.
pub fn encode(obj: &Value) -> Result<Vec<u8>, ProtoError> {
    let s = schema()?;
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let desc = message_for(s, api_version, kind).ok_or_else(|| {
        ProtoError::NotMarshalable(if kind.is_empty() {
            "*unstructured.Unstructured".into()
        } else {
            format!("*unstructured.Unstructured ({api_version} {kind})")
        })
    })?;
    let mut raw = vec![];
    encode_sorted(&json_to_msg(s, &desc, obj, "")?, &mut raw);
    let unknown = s
        .pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ProtoError::NotMarshalable("runtime.Unknown".into()))?;
    let tm_desc = s
        .pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.TypeMeta")
        .ok_or_else(|| ProtoError::NotMarshalable("runtime.TypeMeta".into()))?;
    let mut tm = DynamicMessage::new(tm_desc);
    tm.set_field_by_name("apiVersion", PValue::String(api_version.into()));
    tm.set_field_by_name("kind", PValue::String(kind.into()));
    let mut u = DynamicMessage::new(unknown);
    u.set_field_by_name("typeMeta", PValue::Message(tm));
    u.set_field_by_name("raw", PValue::Bytes(raw.into()));
    // Go writes the two empty strings too
    u.set_field_by_name("contentEncoding", PValue::String(String::new()));
    u.set_field_by_name("contentType", PValue::String(String::new()));
    let mut out = MAGIC.to_vec();
    encode_sorted(&u, &mut out);
    Ok(out)
}

/// Encodes a message the way Go's gogo marshaller lays it out: fields in number order, repeated
/// fields unpacked (proto2), and map entries sorted by key (`github_com_gogo_protobuf_sortkeys`),
/// so the same object always gives the same bytes.
fn encode_sorted(m: &DynamicMessage, out: &mut Vec<u8>) {
    for (f, v) in m.fields() {
        match v {
            PValue::List(items) => {
                for item in items {
                    encode_single(f.number(), &f.kind(), item, out);
                }
            }
            PValue::Map(entries) => {
                let Kind::Message(entry) = f.kind() else {
                    continue;
                };
                let (kf, vf) = (entry.map_entry_key_field(), entry.map_entry_value_field());
                let mut sorted: Vec<(&MapKey, &PValue)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                for (k, val) in sorted {
                    let mut e = vec![];
                    encode_single(1, &kf.kind(), &map_key_value(k), &mut e);
                    encode_single(2, &vf.kind(), val, &mut e);
                    prost::encoding::encode_key(
                        f.number(),
                        prost::encoding::WireType::LengthDelimited,
                        out,
                    );
                    prost::encoding::encode_varint(e.len() as u64, out);
                    out.extend(e);
                }
            }
            single => encode_single(f.number(), &f.kind(), single, out),
        }
    }
}

fn map_key_value(k: &MapKey) -> PValue {
    match k {
        MapKey::Bool(b) => PValue::Bool(*b),
        MapKey::I32(x) => PValue::I32(*x),
        MapKey::I64(x) => PValue::I64(*x),
        MapKey::U32(x) => PValue::U32(*x),
        MapKey::U64(x) => PValue::U64(*x),
        MapKey::String(x) => PValue::String(x.clone()),
    }
}

fn encode_single(number: u32, kind: &Kind, v: &PValue, out: &mut Vec<u8>) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let varint = |x: u64, out: &mut Vec<u8>| {
        encode_key(number, WireType::Varint, out);
        encode_varint(x, out);
    };
    let ld = |b: &[u8], out: &mut Vec<u8>| {
        encode_key(number, WireType::LengthDelimited, out);
        encode_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    };
    match (kind, v) {
        (Kind::Sint32, PValue::I32(x)) => varint(u64::from(((x << 1) ^ (x >> 31)) as u32), out),
        (Kind::Sint64, PValue::I64(x)) => varint(((x << 1) ^ (x >> 63)) as u64, out),
        (Kind::Sfixed32, PValue::I32(x)) => {
            encode_key(number, WireType::ThirtyTwoBit, out);
            out.extend(x.to_le_bytes());
        }
        (Kind::Fixed32, PValue::U32(x)) => {
            encode_key(number, WireType::ThirtyTwoBit, out);
            out.extend(x.to_le_bytes());
        }
        (Kind::Float, PValue::F32(x)) => {
            encode_key(number, WireType::ThirtyTwoBit, out);
            out.extend(x.to_le_bytes());
        }
        (Kind::Sfixed64, PValue::I64(x)) => {
            encode_key(number, WireType::SixtyFourBit, out);
            out.extend(x.to_le_bytes());
        }
        (Kind::Fixed64, PValue::U64(x)) => {
            encode_key(number, WireType::SixtyFourBit, out);
            out.extend(x.to_le_bytes());
        }
        (Kind::Double, PValue::F64(x)) => {
            encode_key(number, WireType::SixtyFourBit, out);
            out.extend(x.to_le_bytes());
        }
        // int32 and enums are sign-extended to 64 bits on the wire
        (_, PValue::I32(x)) | (_, PValue::EnumNumber(x)) => varint(i64::from(*x) as u64, out),
        (_, PValue::I64(x)) => varint(*x as u64, out),
        (_, PValue::U32(x)) => varint(u64::from(*x), out),
        (_, PValue::U64(x)) => varint(*x, out),
        (_, PValue::Bool(b)) => varint(u64::from(*b), out),
        (_, PValue::String(x)) => ld(x.as_bytes(), out),
        (_, PValue::Bytes(b)) => ld(b, out),
        (_, PValue::Message(m)) => {
            let mut inner = vec![];
            encode_sorted(m, &mut inner);
            ld(&inner, out);
        }
        (_, PValue::F32(_) | PValue::F64(_) | PValue::List(_) | PValue::Map(_)) => {}
    }
}

/// One frame of a protobuf watch stream: a 4-byte big-endian length, then a
/// `metav1.WatchEvent{type, object: RawExtension{raw: <envelope of the object>}}` without
/// prefix or envelope of its own (`protobuf.NewRawSerializer`).
pub fn watch_frame(event_type: &str, obj: &Value) -> Result<Vec<u8>, ProtoError> {
    let s = schema()?;
    let object = encode(obj)?;
    let we = s
        .pool
        .get_message_by_name(&format!("{META}.WatchEvent"))
        .ok_or_else(|| ProtoError::NotMarshalable("WatchEvent".into()))?;
    let re = s
        .pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.RawExtension")
        .ok_or_else(|| ProtoError::NotMarshalable("RawExtension".into()))?;
    let mut raw = DynamicMessage::new(re);
    raw.set_field_by_name("raw", PValue::Bytes(object.into()));
    let mut ev = DynamicMessage::new(we);
    ev.set_field_by_name("type", PValue::String(event_type.into()));
    ev.set_field_by_name("object", PValue::Message(raw));
    let payload = ev.encode_to_vec();
    let len = u32::try_from(payload.len()).map_err(|_| ProtoError::Field {
        path: "object".into(),
        why: "a watch event larger than 4 GiB".into(),
    })?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend(payload);
    Ok(out)
}

/// Reads the frames of a protobuf watch stream back: `(type, object)` each, and what is left
/// of an incomplete last frame.
pub fn decode_watch_frames(mut b: &[u8]) -> Result<(Vec<(String, Value)>, usize), ProtoError> {
    let s = schema()?;
    let we = s
        .pool
        .get_message_by_name(&format!("{META}.WatchEvent"))
        .ok_or_else(|| ProtoError::NotMarshalable("WatchEvent".into()))?;
    let mut out = vec![];
    while b.len() >= 4 {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 4 + n {
            break;
        }
        let ev =
            DynamicMessage::decode(we.clone(), &b[4..4 + n]).map_err(|e| ProtoError::Decode {
                what: "WatchEvent".into(),
                why: e.to_string(),
            })?;
        let ty = ev
            .get_field_by_name("type")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let raw = get_msg(&ev, "object")
            .map(|o| bytes_field(&o, "raw"))
            .unwrap_or_default();
        out.push((ty, decode(&raw)?));
        b = &b[4 + n..];
    }
    Ok((out, b.len()))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_err(path: &str, want: &str, got: &Value) -> ProtoError {
    ProtoError::Field {
        path: path.to_string(),
        why: format!("expected {want}, got {}", type_name(got)),
    }
}

fn json_to_msg(
    s: &Schema,
    d: &MessageDescriptor,
    v: &Value,
    path: &str,
) -> Result<DynamicMessage, ProtoError> {
    let mut m = DynamicMessage::new(d.clone());
    if special_from_json(s, d, v, path, &mut m)? {
        return Ok(m);
    }
    let Value::Object(o) = v else {
        return Err(field_err(path, "an object", v));
    };
    for f in d.fields() {
        let info = s.info(d, &f);
        if info.inline {
            if let Kind::Message(sub) = f.kind() {
                let x = json_to_msg(s, &sub, v, path)?;
                if x.fields().next().is_some() {
                    m.set_field(&f, PValue::Message(x));
                }
            }
            continue;
        }
        let Some(x) = o.get(&info.json) else { continue };
        if x.is_null() {
            continue;
        }
        let p = join(path, &info.json);
        let pv = if f.is_map() {
            let Value::Object(entries) = x else {
                return Err(field_err(&p, "an object", x));
            };
            let Kind::Message(entry) = f.kind() else {
                continue;
            };
            let vf = entry.map_entry_value_field();
            let mut out = HashMap::new();
            for (k, ev) in entries {
                if ev.is_null() {
                    continue;
                }
                out.insert(
                    MapKey::String(k.clone()),
                    elem_from_json(s, &vf.kind(), ev, &join(&p, k))?,
                );
            }
            PValue::Map(out)
        } else if f.is_list() {
            let Value::Array(items) = x else {
                return Err(field_err(&p, "an array", x));
            };
            PValue::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| elem_from_json(s, &f.kind(), it, &format!("{p}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            elem_from_json(s, &f.kind(), x, &p)?
        };
        m.set_field(&f, pv);
    }
    Ok(m)
}

fn int_from_json(v: &Value, path: &str) -> Result<i64, ProtoError> {
    v.as_i64().ok_or_else(|| field_err(path, "an integer", v))
}

fn elem_from_json(s: &Schema, k: &Kind, v: &Value, path: &str) -> Result<PValue, ProtoError> {
    let range = |path: &str, x: i64| ProtoError::Field {
        path: path.to_string(),
        why: format!("{x} is out of range for a 32-bit integer"),
    };
    Ok(match k {
        Kind::Bool => PValue::Bool(v.as_bool().ok_or_else(|| field_err(path, "a boolean", v))?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            let x = int_from_json(v, path)?;
            PValue::I32(i32::try_from(x).map_err(|_| range(path, x))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(int_from_json(v, path)?),
        Kind::Uint32 | Kind::Fixed32 => {
            let x = int_from_json(v, path)?;
            PValue::U32(u32::try_from(x).map_err(|_| range(path, x))?)
        }
        Kind::Uint64 | Kind::Fixed64 => PValue::U64(
            v.as_u64()
                .ok_or_else(|| field_err(path, "a non-negative integer", v))?,
        ),
        Kind::Float => {
            PValue::F32(v.as_f64().ok_or_else(|| field_err(path, "a number", v))? as f32)
        }
        Kind::Double => PValue::F64(v.as_f64().ok_or_else(|| field_err(path, "a number", v))?),
        Kind::String => PValue::String(
            v.as_str()
                .ok_or_else(|| field_err(path, "a string", v))?
                .to_string(),
        ),
        Kind::Bytes => {
            let t = v
                .as_str()
                .ok_or_else(|| field_err(path, "a base64 string", v))?;
            PValue::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(|e| ProtoError::Field {
                        path: path.to_string(),
                        why: format!("expected base64 (standard alphabet, padded): {e}"),
                    })?
                    .into(),
            )
        }
        Kind::Enum(_) => {
            let x = int_from_json(v, path)?;
            PValue::EnumNumber(i32::try_from(x).map_err(|_| range(path, x))?)
        }
        Kind::Message(md) => PValue::Message(json_to_msg(s, md, v, path)?),
    })
}

fn set(m: &mut DynamicMessage, name: &str, v: PValue) {
    m.set_field_by_name(name, v);
}

/// Fills `m` from a JSON value of a type with its own JSON form; false for ordinary messages.
fn special_from_json(
    s: &Schema,
    d: &MessageDescriptor,
    v: &Value,
    path: &str,
    m: &mut DynamicMessage,
) -> Result<bool, ProtoError> {
    let name = d.full_name();
    let Some((pkg, short)) = name.rsplit_once('.') else {
        return Ok(false);
    };
    let schema_of = |m: &mut DynamicMessage, field: &str, v: &Value| -> Result<(), ProtoError> {
        let props = s
            .pool
            .get_message_by_name(&format!("{APIEXT}.JSONSchemaProps"))
            .ok_or_else(|| ProtoError::NotMarshalable("JSONSchemaProps".into()))?;
        set(m, field, PValue::Message(json_to_msg(s, &props, v, path)?));
        Ok(())
    };
    let strings = |v: &[Value]| -> Result<PValue, ProtoError> {
        Ok(PValue::List(
            v.iter()
                .map(|x| elem_from_json(s, &Kind::String, x, path))
                .collect::<Result<_, _>>()?,
        ))
    };
    match (pkg, short) {
        (META, "Time") | (META, "MicroTime") => {
            let t = v
                .as_str()
                .ok_or_else(|| field_err(path, "an RFC 3339 time string", v))?;
            let ts: jiff::Timestamp = t.parse().map_err(|e| ProtoError::Field {
                path: path.to_string(),
                why: format!("{t:?} is not an RFC 3339 time: {e}"),
            })?;
            set(m, "seconds", PValue::I64(ts.as_second()));
            if short == "MicroTime" {
                let micros = ts.subsec_nanosecond() / 1000 * 1000;
                set(m, "nanos", PValue::I32(micros));
            }
        }
        (META, "Duration") => {
            let t = v
                .as_str()
                .ok_or_else(|| field_err(path, "a duration string such as \"1h30m\"", v))?;
            let n = parse_go_duration(t).ok_or_else(|| ProtoError::Field {
                path: path.to_string(),
                why: format!("{t:?} is not a duration (for example \"90s\" or \"1h30m\")"),
            })?;
            set(m, "duration", PValue::I64(n));
        }
        (META, "FieldsV1") => set(m, "Raw", PValue::Bytes(raw_json(v).into())),
        ("k8s.io.apimachinery.pkg.runtime", "RawExtension") | (APIEXT, "JSON") => {
            set(m, "raw", PValue::Bytes(raw_json(v).into()))
        }
        ("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") => match v {
            Value::String(x) => {
                set(m, "type", PValue::I64(1));
                set(m, "strVal", PValue::String(x.clone()));
            }
            Value::Number(_) => {
                let x = int_from_json(v, path)?;
                set(m, "type", PValue::I64(0));
                set(
                    m,
                    "intVal",
                    PValue::I32(i32::try_from(x).map_err(|_| ProtoError::Field {
                        path: path.to_string(),
                        why: format!("{x} is out of range for a 32-bit integer"),
                    })?),
                );
            }
            _ => return Err(field_err(path, "an integer or a string", v)),
        },
        ("k8s.io.apimachinery.pkg.api.resource", "Quantity") => {
            let q = match v {
                Value::String(x) => x.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(field_err(path, "a quantity string such as \"100Mi\"", v)),
            };
            set(m, "string", PValue::String(q));
        }
        (APIEXT, "JSONSchemaPropsOrArray") => match v {
            Value::Array(items) => {
                let props = s
                    .pool
                    .get_message_by_name(&format!("{APIEXT}.JSONSchemaProps"))
                    .ok_or_else(|| ProtoError::NotMarshalable("JSONSchemaProps".into()))?;
                let l = items
                    .iter()
                    .map(|x| Ok(PValue::Message(json_to_msg(s, &props, x, path)?)))
                    .collect::<Result<Vec<_>, ProtoError>>()?;
                set(m, "jSONSchemas", PValue::List(l));
            }
            _ => schema_of(m, "schema", v)?,
        },
        (APIEXT, "JSONSchemaPropsOrBool") => match v {
            Value::Bool(b) => set(m, "allows", PValue::Bool(*b)),
            _ => {
                set(m, "allows", PValue::Bool(true));
                schema_of(m, "schema", v)?;
            }
        },
        (APIEXT, "JSONSchemaPropsOrStringArray") => match v {
            Value::Array(items) => set(m, "property", strings(items)?),
            _ => schema_of(m, "schema", v)?,
        },
        _ if s.is_list_wrapper(d) => {
            let Value::Array(items) = v else {
                return Err(field_err(path, "an array", v));
            };
            let Some(f) = d.get_field_by_name("items") else {
                return Ok(false);
            };
            let l = items
                .iter()
                .enumerate()
                .map(|(i, x)| elem_from_json(s, &f.kind(), x, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            m.set_field(&f, PValue::List(l));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn raw_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Negotiation

/// What the client's `Accept` header asks for, among what the server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// JSON; `table` when the chosen clause asks `as=Table`.
    Json {
        /// A `meta.k8s.io` Table.
        table: bool,
        /// Protobuf is acceptable too, in a later clause.
        protobuf_ok: bool,
    },
    /// Protobuf; `json_ok` when a later clause accepts JSON.
    Protobuf {
        /// JSON is acceptable too, in a later clause.
        json_ok: bool,
    },
    /// Nothing the server writes is acceptable (406).
    NotAcceptable,
}

/// The media types the server can answer with, for the 406 message (k8s.io/apiserver
/// `negotiation.NegotiateOutputMediaType`, `MediaTypesForSerializer`).
pub const OUTPUT_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml", MEDIA_TYPE];

/// Picks the output from an `Accept` header the way k8s.io/apiserver
/// `negotiation.NegotiateMediaTypeOptions` does: clauses by descending `q`, the first the
/// server can serve wins. A Table may only be JSON or YAML
/// (`RequestScope.AllowsMediaTypeTransform`: "Table does not yet support protobuf encoding"),
/// so `application/vnd.kubernetes.protobuf;as=Table` is skipped.
pub fn negotiate(accept: Option<&str>) -> Output {
    let accept = accept.unwrap_or("").trim();
    if accept.is_empty() {
        return Output::Json {
            table: false,
            protobuf_ok: true,
        };
    }
    /// `(q, position, media type, parameters)`
    type Clause = (f32, usize, String, Vec<(String, String)>);
    let mut clauses: Vec<Clause> = vec![];
    for (i, c) in accept.split(',').enumerate() {
        let mut parts = c.split(';');
        let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut params = vec![];
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "q" {
                q = v.parse().unwrap_or(1.0);
            } else {
                params.push((k, v));
            }
        }
        if q > 0.0 && !mt.is_empty() {
            clauses.push((q, i, mt, params));
        }
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let param = |ps: &[(String, String)], k: &str| {
        ps.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let kind_of = |mt: &str| match mt {
        "application/json" | "application/yaml" | "application/*" | "*/*" => Some(false),
        MEDIA_TYPE => Some(true),
        _ => None,
    };
    for (n, (_, _, mt, ps)) in clauses.iter().enumerate() {
        let Some(proto) = kind_of(mt) else { continue };
        let table = param(ps, "as") == "Table";
        let later = &clauses[n + 1..];
        if proto {
            if table {
                continue;
            }
            return Output::Protobuf {
                json_ok: later
                    .iter()
                    .any(|(_, _, m, p)| kind_of(m) == Some(false) && param(p, "as").is_empty()),
            };
        }
        return Output::Json {
            table,
            protobuf_ok: later
                .iter()
                .any(|(_, _, m, p)| kind_of(m) == Some(true) && param(p, "as").is_empty()),
        };
    }
    Output::NotAcceptable
}

/// How a request body is to be read, from its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also the JSON patch types, and YAML media types whose bodies are JSON).
    Json,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
    /// Anything else: 415.
    Unsupported,
}

/// The body format of a `Content-Type` (parameters such as `charset` ignored).
pub fn body_format(content_type: Option<&str>) -> BodyFormat {
    let Some(ct) = content_type else {
        return BodyFormat::Json;
    };
    let mt = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mt.as_str() {
        "" | "application/json" | "application/yaml" | "text/json" => BodyFormat::Json,
        MEDIA_TYPE => BodyFormat::Protobuf,
        m if PATCH_MEDIA_TYPES.contains(&m) => BodyFormat::Json,
        _ => BodyFormat::Unsupported,
    }
}

#[cfg(test)]
mod tests;
