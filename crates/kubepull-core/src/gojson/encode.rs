//! Go `encoding/json` output, byte for byte.
//!
//! kubectl builds every JSON document it prints or hashes with Go's `encoding/json`
//! (`json.Marshal`, `json.MarshalIndent`, `json.NewEncoder(w).Encode`). The observable details
//! reproduced here:
//!
//! - Strings are byte strings and may hold invalid UTF-8. Every byte that does not start a valid
//!   UTF-8 sequence becomes the six characters `\ufffd` (one per byte, as Go's
//!   `utf8.DecodeRuneInString` reports width 1 for each bad byte).
//! - `"` and `\` are escaped with a backslash; `\b`, `\f`, `\n`, `\r`, `\t` use their short forms
//!   (Go 1.22 added `\b` and `\f`; kubectl 1.32 is built with Go 1.23); every other byte below
//!   0x20 becomes `\u00XX` with lower-case hex.
//! - With HTML escaping (the default of `Marshal` and `Encoder`), `<`, `>` and `&` become `\u003c`,
//!   `\u003e` and `\u0026`.
//! - U+2028 and U+2029 are always escaped (`\u2028`, `\u2029`). DEL (0x7f), the C1 controls and
//!   every other non-ASCII character stay raw UTF-8.
//! - Struct fields keep declaration order, map keys are sorted bytewise ([`Value::sorted_object`]).
//! - `MarshalIndent` puts each member on its own line, `"key": value` with one space, and leaves
//!   empty objects and arrays as `{}` and `[]`.

/// Decodes the first rune of `s` the way Go's `utf8.DecodeRune` does: `(Some(c), width)` for a
/// valid UTF-8 sequence, `(None, 1)` for an invalid byte, `(None, 0)` for empty input.
///
/// Valid sequences are exactly the ones Rust accepts (no overlongs, no surrogates, nothing above
/// U+10FFFF), which is also Go's definition.
pub fn decode_rune(s: &[u8]) -> (Option<char>, usize) {
    if s.is_empty() {
        return (None, 0);
    }
    let end = s.len().min(4);
    let prefix = match std::str::from_utf8(&s[..end]) {
        Ok(v) => v,
        Err(e) => {
            // `valid_up_to` is at a character boundary, so this slice is valid UTF-8.
            std::str::from_utf8(&s[..e.valid_up_to()]).unwrap_or("")
        }
    };
    match prefix.chars().next() {
        Some(c) => (Some(c), c.len_utf8()),
        None => (None, 1),
    }
}

/// Converts bytes to a `String` the way a Go JSON round trip does: each byte that does not start
/// a valid UTF-8 sequence becomes one U+FFFD (unlike [`String::from_utf8_lossy`], which replaces
/// a maximal invalid subsequence with a single U+FFFD).
pub fn go_lossy_string(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match decode_rune(&s[i..]) {
            (Some(c), w) => {
                out.push(c);
                i += w;
            }
            (None, _) => {
                out.push('\u{FFFD}');
                i += 1;
            }
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the Go JSON encoding of the byte string `src`, quotes included, to `dst`.
///
/// Port of `appendString` in Go's `encoding/json/encode.go` (Go 1.23).
pub fn append_string(dst: &mut Vec<u8>, src: &[u8], escape_html: bool) {
    dst.push(b'"');
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b < 0x80 {
            let safe = b >= 0x20
                && b != b'"'
                && b != b'\\'
                && (!escape_html || (b != b'<' && b != b'>' && b != b'&'));
            if safe {
                dst.push(b);
                i += 1;
                continue;
            }
            match b {
                b'\\' | b'"' => dst.extend_from_slice(&[b'\\', b]),
                0x08 => dst.extend_from_slice(b"\\b"),
                0x0c => dst.extend_from_slice(b"\\f"),
                b'\n' => dst.extend_from_slice(b"\\n"),
                b'\r' => dst.extend_from_slice(b"\\r"),
                b'\t' => dst.extend_from_slice(b"\\t"),
                _ => dst.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]),
            }
            i += 1;
            continue;
        }
        match decode_rune(&src[i..]) {
            (None, _) => {
                dst.extend_from_slice(b"\\ufffd");
                i += 1;
            }
            (Some(c), w) if c == '\u{2028}' || c == '\u{2029}' => {
                dst.extend_from_slice(b"\\u202");
                dst.push(HEX[(c as u32 & 0xf) as usize]);
                i += w;
            }
            (Some(_), w) => {
                dst.extend_from_slice(&src[i..i + w]);
                i += w;
            }
        }
    }
    dst.push(b'"');
}

/// The Go JSON encoding of `src` (HTML-escaped, as `json.Marshal` does).
pub fn quote(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + 2);
    append_string(&mut out, src, true);
    out
}

/// A JSON value with Go's member order: objects keep the order given (struct field order); use
/// [`Value::sorted_object`] for a Go map, whose keys `encoding/json` sorts.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A string, as bytes (invalid UTF-8 is encoded as Go does).
    String(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// An object; members are written in this order.
    Object(Vec<(Vec<u8>, Value)>),
}

impl std::fmt::Debug for Value {
    /// Values can hold secret data, so Debug shows the shape only, never string contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::String(s) => write!(f, "String(<{} bytes>)", s.len()),
            Value::Array(v) => f.debug_list().entries(v).finish(),
            Value::Object(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
                .finish(),
        }
    }
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::String(s.into())
    }

    /// An object whose members are sorted by key bytes, as `encoding/json` writes a Go map
    /// (`slices.SortFunc` with `strings.Compare` in `mapEncoder.encode`).
    pub fn sorted_object(mut members: Vec<(Vec<u8>, Value)>) -> Value {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Object(members)
    }

    /// `json.Marshal`: compact, HTML-escaped.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_compact(&mut out);
        out
    }

    /// `json.NewEncoder(w).Encode(v)`: compact, HTML-escaped, followed by a newline. This is what
    /// the Kubernetes JSON serializer (`runtime.Encode`) writes.
    pub fn encode_line(&self) -> Vec<u8> {
        let mut out = self.marshal();
        out.push(b'\n');
        out
    }

    /// `json.MarshalIndent(v, prefix, indent)`.
    pub fn marshal_indent(&self, prefix: &[u8], indent: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_indented(&mut out, prefix, indent, 0);
        out
    }

    fn write_compact(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::String(s) => append_string(out, s, true),
            Value::Array(items) => {
                out.push(b'[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    item.write_compact(out);
                }
                out.push(b']');
            }
            Value::Object(members) => {
                out.push(b'{');
                for (n, (k, v)) in members.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    append_string(out, k, true);
                    out.push(b':');
                    v.write_compact(out);
                }
                out.push(b'}');
            }
        }
    }

    // Same layout as Go's `json.Indent` applied to the compact encoding.
    fn write_indented(&self, out: &mut Vec<u8>, prefix: &[u8], indent: &[u8], depth: usize) {
        let newline = |out: &mut Vec<u8>, depth: usize| {
            out.push(b'\n');
            out.extend_from_slice(prefix);
            for _ in 0..depth {
                out.extend_from_slice(indent);
            }
        };
        match self {
            Value::Array(items) if !items.is_empty() => {
                out.push(b'[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    newline(out, depth + 1);
                    item.write_indented(out, prefix, indent, depth + 1);
                }
                newline(out, depth);
                out.push(b']');
            }
            Value::Object(members) if !members.is_empty() => {
                out.push(b'{');
                for (n, (k, v)) in members.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    newline(out, depth + 1);
                    append_string(out, k, true);
                    out.extend_from_slice(b": ");
                    v.write_indented(out, prefix, indent, depth + 1);
                }
                newline(out, depth);
                out.push(b'}');
            }
            other => other.write_compact(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[u8]) -> String {
        String::from_utf8(quote(s)).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(q(b"plain"), r#""plain""#);
        assert_eq!(q(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(q(b"<>&"), r#""\u003c\u003e\u0026""#);
        assert_eq!(q(b"\x08\x0c\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(q(b"\x00\x01\x1f"), r#""\u0000\u0001\u001f""#);
        assert_eq!(q(b"\x7f"), "\"\x7f\"");
        assert_eq!(q("\u{2028}\u{2029}".as_bytes()), r#""\u2028\u2029""#);
        assert_eq!(q("é密🔑\u{85}".as_bytes()), "\"é密🔑\u{85}\"");
        assert_eq!(q("'$%/".as_bytes()), r#""'$%/""#);
    }

    #[test]
    fn invalid_utf8_one_replacement_per_byte() {
        assert_eq!(q(b"a\xffb"), r#""a\ufffdb""#);
        // A truncated 3-byte sequence: Go replaces each byte, not the maximal subpart.
        assert_eq!(q(b"\xe2\x82A"), r#""\ufffd\ufffdA""#);
        // An encoded surrogate is invalid in Go too.
        assert_eq!(q(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
        assert_eq!(go_lossy_string(b"\xe2\x82A"), "\u{FFFD}\u{FFFD}A");
        assert_eq!(go_lossy_string("ok é".as_bytes()), "ok é");
    }

    #[test]
    fn decode_rune_matches_go() {
        assert_eq!(decode_rune(b""), (None, 0));
        assert_eq!(decode_rune(b"a"), (Some('a'), 1));
        assert_eq!(decode_rune("é!".as_bytes()), (Some('é'), 2));
        assert_eq!(decode_rune(b"\xc0\x80"), (None, 1));
        assert_eq!(decode_rune(b"\xf4\x90\x80\x80"), (None, 1));
    }

    #[test]
    fn marshal_and_indent() {
        let v = Value::Object(vec![
            (b"kind".to_vec(), Value::str("Secret")),
            (
                b"metadata".to_vec(),
                Value::Object(vec![
                    (b"name".to_vec(), Value::str("x")),
                    (b"creationTimestamp".to_vec(), Value::Null),
                ]),
            ),
            (b"empty".to_vec(), Value::Object(vec![])),
            (b"list".to_vec(), Value::Array(vec![Value::Bool(true)])),
        ]);
        assert_eq!(
            String::from_utf8(v.marshal()).unwrap(),
            r#"{"kind":"Secret","metadata":{"name":"x","creationTimestamp":null},"empty":{},"list":[true]}"#
        );
        assert_eq!(
            String::from_utf8(v.marshal_indent(b"", b"    ")).unwrap(),
            "{\n    \"kind\": \"Secret\",\n    \"metadata\": {\n        \"name\": \"x\",\n        \"creationTimestamp\": null\n    },\n    \"empty\": {},\n    \"list\": [\n        true\n    ]\n}"
        );
        assert_eq!(v.encode_line().last(), Some(&b'\n'));
    }

    #[test]
    fn sorted_object_sorts_bytewise() {
        let v = Value::sorted_object(vec![
            (b"type".to_vec(), Value::Null),
            (b"Z".to_vec(), Value::Null),
            (b"data".to_vec(), Value::Null),
        ]);
        assert_eq!(
            String::from_utf8(v.marshal()).unwrap(),
            r#"{"Z":null,"data":null,"type":null}"#
        );
    }

    #[test]
    fn debug_hides_strings() {
        let v = Value::Object(vec![(b"password".to_vec(), Value::str("hunter2"))]);
        let d = format!("{v:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("7 bytes"), "{d}");
    }
}
