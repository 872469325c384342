//! The YAML that kubectl prints, byte for byte.
//!
//! `kubectl ... -o yaml` marshals the object to JSON with Go's `encoding/json` and converts that
//! JSON with `sigs.k8s.io/yaml` v1.4.0 `JSONToYAML`: the JSON is *parsed as YAML* by the vendored
//! go-yaml v2 (`sigs.k8s.io/yaml/goyaml.v2`) into `map[interface{}]interface{}` values and then
//! marshalled again by the same library. Both halves leave visible traces, reproduced here:
//!
//! Parsing ([`json_to_yaml`]):
//! - The YAML reader rejects characters that Go's JSON encoder leaves raw: DEL, the C1 controls
//!   other than NEL, U+FFFE and U+FFFF -> `yaml: control characters are not allowed`.
//! - A raw NEL (U+0085) inside a JSON string is a YAML line break: it is folded like a line break
//!   in a double-quoted scalar (one break -> a space, n breaks -> n-1 newlines, blanks around it
//!   dropped), and `---`/`...` plus a blank right after it is a document marker ->
//!   `yaml: line N: found unexpected document indicator`, N counting those breaks.
//!
//! Emitting ([`marshal`]): map keys sorted by go-yaml's "natural" key order; indentation 2; line
//! width 80, so long plain, single- and double-quoted scalars are folded at spaces; plain style
//! unless the string would resolve to another YAML 1.1 type (`"123"`, `"true"`, `"yes"`, `"~"`,
//! `""`, `"1e3"`, `"0x1F"`, `"2024-01-02"`, `"1:20"`, ...) or contains indicators; strings with
//! `\n` as literal blocks (`|`, `|-`, `|+`, `|2`); `'single'` when plain is not allowed but quoting
//! needs no escapes; `"double"` with libyaml escapes otherwise (including every character outside
//! the BMP, which go-yaml v2 does not consider printable). Keys longer than 128 bytes or spanning
//! lines use the `? key` form.
//!
//! Source: go-yaml v2 as vendored in sigs.k8s.io/yaml v1.4.0, `goyaml.v2/emitterc.go`,
//! `encode.go` (`stringv`), `resolve.go` (`resolve`), `sorter.go` (`keyList.Less`),
//! `readerc.go` (`yaml_parser_update_buffer`), `scannerc.go` (`yaml_parser_scan_flow_scalar`).
//!
//! Only the value kinds a Kubernetes object printed by kubectl create needs are supported: maps,
//! strings, null and booleans. JSON arrays and numbers are rejected with
//! [`YamlError::Unsupported`] rather than printed differently from Go.

/// Why a JSON document could not be converted; the `Display` texts are go-yaml's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// A character the YAML reader does not accept (`readerc.go`).
    #[error("yaml: control characters are not allowed")]
    ControlCharacters,
    /// A scanner error inside a quoted scalar (`scannerc.go`): `found unexpected document
    /// indicator` (`---` or `...` at the start of a line), `found unknown escape character`
    /// (such as JSON's `\/`), or a bad `\x`/`\u`/`\U` escape.
    #[error("yaml: {}{problem}", line_prefix(*.mark_line))]
    Scanner {
        /// The 0-based line of the problem; go-yaml prints `line N: ` with N = `mark_line + 1`
        /// unless `mark_line` is 0.
        mark_line: usize,
        /// libyaml's problem text.
        problem: &'static str,
    },
    /// The input is not JSON of the supported subset.
    #[error("unsupported JSON for YAML conversion: {0}")]
    Unsupported(String),
}

fn line_prefix(mark_line: usize) -> String {
    if mark_line == 0 {
        String::new()
    } else {
        format!("line {}: ", mark_line + 1)
    }
}

/// A YAML value as go-yaml v2 decodes JSON into `interface{}`.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// A mapping with string keys; [`marshal`] sorts the keys.
    Map(Vec<(String, Node)>),
}

impl std::fmt::Debug for Node {
    /// Nodes can hold secret data: Debug shows the shape, never string contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Null => f.write_str("Null"),
            Node::Bool(b) => write!(f, "Bool({b})"),
            Node::Str(s) => write!(f, "Str(<{} bytes>)", s.len()),
            Node::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
        }
    }
}

/// `sigs.k8s.io/yaml.JSONToYAML` for JSON made of objects, strings, `null`, `true` and `false`.
pub fn json_to_yaml(json: &[u8]) -> Result<String, YamlError> {
    let node = parse_json_as_yaml(json)?;
    Ok(marshal(&node))
}

/// Parses JSON the way go-yaml v2's `yaml.Unmarshal` reads it (see the module docs for the
/// observable differences from a JSON parser).
pub fn parse_json_as_yaml(json: &[u8]) -> Result<Node, YamlError> {
    check_reader_chars(json)?;
    let mut p = JsonAsYaml {
        b: json,
        pos: 0,
        line: 0,
        line_start: true,
    };
    p.skip_ws();
    let node = p.value()?;
    p.skip_ws();
    if p.pos != p.b.len() {
        return Err(YamlError::Unsupported("trailing data".into()));
    }
    Ok(node)
}

/// `yaml_parser_update_buffer`: every character must be `#x9 | #xA | #xD | [#x20-#x7E] | #x85 |
/// [#xA0-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`, and the input must be valid UTF-8.
///
/// go-yaml decodes its input in chunks of 512 bytes ahead of the scanner, so when a document holds
/// both a bad character and a scanner error the first one reported can depend on the distance
/// between them; this implementation always reports the bad character first.
fn check_reader_chars(b: &[u8]) -> Result<(), YamlError> {
    let s = std::str::from_utf8(b).map_err(|_| YamlError::Unsupported("invalid UTF-8".into()))?;
    let ok = |c: char| {
        matches!(c as u32,
            0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
    };
    if s.chars().all(ok) {
        Ok(())
    } else {
        Err(YamlError::ControlCharacters)
    }
}

struct JsonAsYaml<'a> {
    b: &'a [u8],
    pos: usize,
    /// YAML line number (raw line breaks consumed so far).
    line: usize,
    /// Whether the last consumed character was a line break (YAML column 0).
    line_start: bool,
}

const NEL: [u8; 2] = [0xC2, 0x85];

impl JsonAsYaml<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' => {
                    self.pos += 1;
                    self.line_start = false;
                }
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = true;
                }
                _ => break,
            }
        }
    }

    fn expect(&mut self, lit: &[u8]) -> Result<(), YamlError> {
        if self.b[self.pos.min(self.b.len())..].starts_with(lit) {
            self.pos += lit.len();
            self.line_start = false;
            Ok(())
        } else {
            Err(YamlError::Unsupported(format!(
                "bad JSON at byte {}",
                self.pos
            )))
        }
    }

    fn value(&mut self) -> Result<Node, YamlError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'"') => Ok(Node::Str(self.string()?)),
            Some(b'n') => self.expect(b"null").map(|_| Node::Null),
            Some(b't') => self.expect(b"true").map(|_| Node::Bool(true)),
            Some(b'f') => self.expect(b"false").map(|_| Node::Bool(false)),
            Some(b'[') => Err(YamlError::Unsupported("arrays".into())),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                Err(YamlError::Unsupported("numbers".into()))
            }
            _ => Err(YamlError::Unsupported(format!(
                "bad JSON at byte {}",
                self.pos
            ))),
        }
    }

    fn object(&mut self) -> Result<Node, YamlError> {
        self.expect(b"{")?;
        let mut members: Vec<(String, Node)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node::Map(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(YamlError::Unsupported("non-string key".into()));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b":")?;
            self.skip_ws();
            let value = self.value()?;
            // go-yaml v2 decoding into a map: a repeated key overwrites the earlier value.
            if let Some(slot) = members.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            } else {
                members.push((key, value));
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.line_start = false;
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.line_start = false;
                    return Ok(Node::Map(members));
                }
                _ => return Err(YamlError::Unsupported("bad object".into())),
            }
        }
    }

    fn is_raw_break(&self, i: usize) -> bool {
        self.at(i) == NEL[0] && self.at(i + 1) == NEL[1]
    }

    fn is_raw_blank(&self, i: usize) -> bool {
        self.at(i) == b' ' || self.at(i) == b'\t'
    }

    /// A double-quoted scalar: port of the `!single` paths of `yaml_parser_scan_flow_scalar`.
    /// Inside Go JSON strings the only raw YAML whitespace is the space and NEL (everything else
    /// is escaped); `\r` and `\n` are accepted raw as well for hand-written JSON.
    fn string(&mut self) -> Result<String, YamlError> {
        self.expect(b"\"")?;
        let mut s: Vec<u8> = Vec::new();
        let mut leading_break: Vec<u8> = Vec::new();
        let mut trailing_breaks: Vec<u8> = Vec::new();
        let mut whitespaces: Vec<u8> = Vec::new();
        loop {
            // A document marker at column 0 (only possible right after a raw line break).
            if self.line_start {
                let p = self.pos;
                let marker =
                    (self.at(p) == b'-' && self.at(p + 1) == b'-' && self.at(p + 2) == b'-')
                        || (self.at(p) == b'.' && self.at(p + 1) == b'.' && self.at(p + 2) == b'.');
                if marker && self.is_blankz(p + 3) {
                    return Err(self.scanner_error("found unexpected document indicator"));
                }
            }
            if self.pos >= self.b.len() {
                return Err(YamlError::Unsupported("unterminated string".into()));
            }
            let mut leading_blanks = false;
            while !self.is_blankz(self.pos) {
                let c = self.at(self.pos);
                if c == b'"' {
                    break;
                }
                self.line_start = false;
                if c == b'\\' && self.is_break_at(self.pos + 1) {
                    // An escaped line break: skip it and join lines without a space.
                    self.pos += 1;
                    self.consume_break();
                    leading_blanks = true;
                    break;
                } else if c == b'\\' {
                    self.escape(&mut s)?;
                } else {
                    let w = utf8_width(c).max(1);
                    s.extend_from_slice(&self.b[self.pos..(self.pos + w).min(self.b.len())]);
                    self.pos += w;
                }
            }
            if self.pos >= self.b.len() {
                return Err(YamlError::Unsupported("unterminated string".into()));
            }
            if self.at(self.pos) == b'"' {
                break;
            }
            // Consume blanks and line breaks.
            while self.is_raw_blank(self.pos) || self.is_break_at(self.pos) {
                if self.is_raw_blank(self.pos) {
                    if !leading_blanks {
                        whitespaces.push(self.at(self.pos));
                    }
                    self.pos += 1;
                    self.line_start = false;
                } else if !leading_blanks {
                    whitespaces.clear();
                    self.consume_break();
                    leading_break.push(b'\n');
                    leading_blanks = true;
                } else {
                    self.consume_break();
                    trailing_breaks.push(b'\n');
                }
            }
            // Join the whitespace or fold the line breaks.
            if leading_blanks {
                if leading_break.first() == Some(&b'\n') {
                    if trailing_breaks.is_empty() {
                        s.push(b' ');
                    } else {
                        s.extend_from_slice(&trailing_breaks);
                    }
                } else {
                    s.extend_from_slice(&leading_break);
                    s.extend_from_slice(&trailing_breaks);
                }
                trailing_breaks.clear();
                leading_break.clear();
            } else {
                s.append(&mut whitespaces);
            }
        }
        self.pos += 1; // closing quote
        self.line_start = false;
        String::from_utf8(s).map_err(|_| YamlError::Unsupported("invalid UTF-8".into()))
    }

    fn is_break_at(&self, i: usize) -> bool {
        matches!(self.at(i), b'\r' | b'\n') || self.is_raw_break(i)
    }

    fn is_blankz(&self, i: usize) -> bool {
        i >= self.b.len() || self.at(i) == 0 || self.is_raw_blank(i) || self.is_break_at(i)
    }

    /// `read_line`: consumes one line break (CR LF counts as one).
    fn consume_break(&mut self) {
        let crlf = self.at(self.pos) == b'\r' && self.at(self.pos + 1) == b'\n';
        if crlf || self.is_raw_break(self.pos) {
            self.pos += 2;
        } else {
            self.pos += 1;
        }
        self.line += 1;
        self.line_start = true;
    }

    fn scanner_error(&self, problem: &'static str) -> YamlError {
        YamlError::Scanner {
            mark_line: self.line,
            problem,
        }
    }

    fn escape(&mut self, s: &mut Vec<u8>) -> Result<(), YamlError> {
        let code_length = match self.at(self.pos + 1) {
            b'0' => push(s, &[0]),
            b'a' => push(s, &[0x07]),
            b'b' => push(s, &[0x08]),
            b't' | b'\t' => push(s, &[0x09]),
            b'n' => push(s, &[0x0A]),
            b'v' => push(s, &[0x0B]),
            b'f' => push(s, &[0x0C]),
            b'r' => push(s, &[0x0D]),
            b'e' => push(s, &[0x1B]),
            b' ' => push(s, b" "),
            b'"' => push(s, b"\""),
            b'\'' => push(s, b"'"),
            b'\\' => push(s, b"\\"),
            b'N' => push(s, &NEL),
            b'_' => push(s, &[0xC2, 0xA0]),
            b'L' => push(s, "\u{2028}".as_bytes()),
            b'P' => push(s, "\u{2029}".as_bytes()),
            b'x' => 2,
            b'u' => 4,
            b'U' => 8,
            _ => return Err(self.scanner_error("found unknown escape character")),
        };
        self.pos += 2;
        if code_length > 0 {
            let mut value: u32 = 0;
            for k in 0..code_length {
                let d = (self.at(self.pos + k) as char)
                    .to_digit(16)
                    .ok_or_else(|| self.scanner_error("did not find expected hexdecimal number"))?;
                value = (value << 4) + d;
            }
            let c = char::from_u32(value)
                .ok_or_else(|| self.scanner_error("found invalid Unicode character escape code"))?;
            let mut buf = [0u8; 4];
            s.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            self.pos += code_length;
        }
        Ok(())
    }
}

fn push(s: &mut Vec<u8>, bytes: &[u8]) -> usize {
    s.extend_from_slice(bytes);
    0
}

// ---------------------------------------------------------------------------------------------
// Character classes (goyaml.v2/yamlprivateh.go). Indexing past the end reads 0, where Go would
// either never get (valid UTF-8) or panic.

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn utf8_width(b: u8) -> usize {
    if b & 0x80 == 0x00 {
        1
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        3
    } else if b & 0xF8 == 0xF0 {
        4
    } else {
        0
    }
}

fn is_printable(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (c == 0xC2 && at(b, i + 1) >= 0xA0)
        || (c > 0xC2 && c < 0xED)
        || (c == 0xED && at(b, i + 1) < 0xA0)
        || c == 0xEE
        || (c == 0xEF
            && !(at(b, i + 1) == 0xBB && at(b, i + 2) == 0xBF)
            && !(at(b, i + 1) == 0xBF && (at(b, i + 2) == 0xBE || at(b, i + 2) == 0xBF)))
}

/// go-yaml's `is_bom` ignores its index: it tests the start of the value.
fn is_bom(b: &[u8]) -> bool {
    at(b, 0) == 0xEF && at(b, 1) == 0xBB && at(b, 2) == 0xBF
}

fn is_space(b: &[u8], i: usize) -> bool {
    at(b, i) == b' '
}

fn is_blank(b: &[u8], i: usize) -> bool {
    at(b, i) == b' ' || at(b, i) == b'\t'
}

fn is_break(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c == b'\r'
        || c == b'\n'
        || (c == 0xC2 && at(b, i + 1) == 0x85)
        || (c == 0xE2 && at(b, i + 1) == 0x80 && (at(b, i + 2) == 0xA8 || at(b, i + 2) == 0xA9))
}

fn is_blankz(b: &[u8], i: usize) -> bool {
    is_blank(b, i) || is_break(b, i) || at(b, i) == 0
}

// ---------------------------------------------------------------------------------------------
// The encoder: `stringv` in goyaml.v2/encode.go and `resolve` in resolve.go.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// The style `encoder.stringv` asks for: literal when the string has a `\n`, plain when it would
/// resolve back to a string, double-quoted otherwise.
fn requested_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if resolves_to_str(s) && !is_base60_float(s) {
        Style::Plain
    } else {
        Style::DoubleQuoted
    }
}

/// Whether go-yaml v2 `resolve("", s)` yields `!!str`, i.e. the plain scalar `s` reads back as
/// the same string.
pub fn resolves_to_str(s: &str) -> bool {
    let b = s.as_bytes();
    let hint = match b.first() {
        None => b'N',
        Some(b'+') | Some(b'-') => b'S',
        Some(c) if c.is_ascii_digit() => b'D',
        Some(c) if b"yYnNtTfFoO~".contains(c) => b'M',
        Some(b'.') => b'.',
        Some(_) => 0,
    };
    if hint == 0 {
        return true;
    }
    const MAP: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if MAP.contains(&s) {
        return false;
    }
    match hint {
        b'.' => !go_parse_float_ok(s),
        b'D' | b'S' => {
            if parse_timestamp(s) {
                return false;
            }
            let plain = s.replace('_', "");
            if go_parse_int(&plain, 0) || go_parse_uint(&plain, 0) {
                return false;
            }
            if yaml_style_float(&plain) && go_parse_float_ok(&plain) {
                return false;
            }
            if let Some(rest) = plain.strip_prefix("0b") {
                if go_parse_int(rest, 2) || go_parse_uint(rest, 2) {
                    return false;
                }
            } else if let Some(rest) = plain.strip_prefix("-0b") {
                if go_parse_int(&format!("-{rest}"), 2) {
                    return false;
                }
            }
            true
        }
        _ => true, // 'M' (not in the map) and 'N' (only "" has it, and "" is in the map)
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (encode.go `isBase60Float`).
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+') | Some(b'-')) {
        i += 1;
    }
    if !at(b, i).is_ascii_digit() {
        return false;
    }
    i += 1;
    while at(b, i).is_ascii_digit() || at(b, i) == b'_' {
        i += 1;
    }
    let mut groups = 0;
    while at(b, i) == b':' {
        // [0-5]?[0-9]
        let d1 = at(b, i + 1);
        let d2 = at(b, i + 2);
        if (b'0'..=b'5').contains(&d1) && d2.is_ascii_digit() {
            i += 3;
        } else if d1.is_ascii_digit() {
            i += 2;
        } else {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if at(b, i) == b'.' {
        i += 1;
        while at(b, i).is_ascii_digit() || at(b, i) == b'_' {
            i += 1;
        }
    }
    i == b.len()
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (resolve.go `yamlStyleFloat`).
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while at(b, *i).is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if matches!(at(b, 0), b'+' | b'-') {
        i += 1;
    }
    if at(b, i) == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if at(b, i) == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(at(b, i), b'e' | b'E') {
        i += 1;
        if matches!(at(b, i), b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go `strconv.ParseUint(s, base, 64)` succeeds (base 0 or 2 as go-yaml uses it).
fn go_parse_uint(s: &str, base: u32) -> bool {
    parse_uint_value(s, base).is_some()
}

fn parse_uint_value(s: &str, base: u32) -> Option<u64> {
    let mut b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let base0 = base == 0;
    let mut base = base;
    if base0 {
        base = 10;
        if b[0] == b'0' {
            let p = at(b, 1).to_ascii_lowercase();
            if b.len() >= 3 && p == b'b' {
                base = 2;
                b = &b[2..];
            } else if b.len() >= 3 && p == b'o' {
                base = 8;
                b = &b[2..];
            } else if b.len() >= 3 && p == b'x' {
                base = 16;
                b = &b[2..];
            } else {
                base = 8;
                b = &b[1..];
            }
        }
    }
    let mut n: u64 = 0;
    for &c in b {
        // Underscores were removed by the caller (go-yaml strips them before parsing), so an
        // underscore here is a syntax error in every case.
        let d = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 10,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            _ => return None,
        };
        if d >= base {
            return None;
        }
        n = n.checked_mul(base as u64)?.checked_add(d as u64)?;
    }
    Some(n)
}

/// Go `strconv.ParseInt(s, base, 64)` succeeds.
fn go_parse_int(s: &str, base: u32) -> bool {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    match parse_uint_value(rest, base) {
        Some(u) => {
            if neg {
                u <= 1u64 << 63
            } else {
                u < 1u64 << 63
            }
        }
        None => false,
    }
}

/// Go `strconv.ParseFloat(s, 64)` succeeds, for decimal syntax (the only syntax go-yaml passes
/// it: strings starting with `.`, or matching `yamlStyleFloat`). Out-of-range values fail, as
/// Go returns `ErrRange` for them.
fn go_parse_float_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(at(b, 0), b'+' | b'-') {
        i += 1;
    }
    let lower = |c: u8| c.to_ascii_lowercase();
    // Special values ("inf", "infinity", "nan", any case).
    let rest = &s[i..];
    let rl = rest.to_ascii_lowercase();
    if rl == "inf" || rl == "infinity" {
        return true;
    }
    if rl == "nan" && i == 0 {
        return true;
    }
    if b.len() > i + 2 && at(b, i) == b'0' && lower(at(b, i + 1)) == b'x' {
        // Hexadecimal floats never reach here from go-yaml; treat them as not floats.
        return false;
    }
    let mut saw_dot = false;
    let mut saw_digits = false;
    let mut underscores = false;
    while i < b.len() {
        match b[i] {
            b'_' => underscores = true,
            b'.' if !saw_dot => saw_dot = true,
            b'0'..=b'9' => saw_digits = true,
            _ => break,
        }
        i += 1;
    }
    if !saw_digits {
        return false;
    }
    if i < b.len() && lower(b[i]) == b'e' {
        i += 1;
        if i >= b.len() {
            return false;
        }
        if b[i] == b'+' || b[i] == b'-' {
            i += 1;
        }
        if i >= b.len() || !b[i].is_ascii_digit() {
            return false;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            if b[i] == b'_' {
                underscores = true;
            }
            i += 1;
        }
    }
    if i != b.len() {
        return false;
    }
    if underscores && !underscore_ok(s) {
        return false;
    }
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    match cleaned.parse::<f64>() {
        Ok(v) => v.is_finite(),
        Err(_) => false,
    }
}

/// Go `strconv.underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let mut b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    if matches!(b.first(), Some(b'+') | Some(b'-')) {
        b = &b[1..];
    }
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.to_ascii_lowercase().is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// go-yaml v2 `parseTimestamp`: Go `time.Parse` with the layouts
/// `2006-1-2T15:4:5.999999999Z07:00`, the same with `t`, `2006-1-2 15:4:5.999999999` and
/// `2006-1-2`.
fn parse_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits != 4 || digits == b.len() || b[digits] != b'-' {
        return false;
    }
    #[derive(Clone, Copy)]
    enum Layout {
        TUpper,
        TLower,
        Space,
        DateOnly,
    }
    fn getnum(v: &[u8], fixed: bool) -> Option<(u32, &[u8])> {
        if !at(v, 0).is_ascii_digit() {
            return None;
        }
        if !at(v, 1).is_ascii_digit() {
            if fixed {
                return None;
            }
            return Some(((v[0] - b'0') as u32, &v[1..]));
        }
        Some((((v[0] - b'0') * 10 + (v[1] - b'0')) as u32, &v[2..]))
    }
    fn days_in(month: u32, year: u32) -> u32 {
        match month {
            2 => {
                let leap = year.is_multiple_of(4)
                    && (!year.is_multiple_of(100) || year.is_multiple_of(400));
                if leap {
                    29
                } else {
                    28
                }
            }
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
    fn try_layout(b: &[u8], layout: Layout) -> Option<()> {
        let year: u32 = std::str::from_utf8(&b[..4]).ok()?.parse().ok()?;
        let v = b.get(5..)?; // after "YYYY-"
        let (month, v) = getnum(v, false)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        let v = v.strip_prefix(b"-")?;
        let (day, mut v) = getnum(v, false)?;
        if !matches!(layout, Layout::DateOnly) {
            v = match layout {
                Layout::TUpper => v.strip_prefix(b"T")?,
                Layout::TLower => v.strip_prefix(b"t")?,
                _ => {
                    // time.skip: a layout space matches any run of spaces.
                    if !v.is_empty() && v[0] != b' ' {
                        return None;
                    }
                    let n = v.iter().take_while(|&&c| c == b' ').count();
                    &v[n..]
                }
            };
            let (hour, r) = getnum(v, false)?;
            if hour >= 24 {
                return None;
            }
            let r = r.strip_prefix(b":")?;
            let (min, r) = getnum(r, false)?;
            if min >= 60 {
                return None;
            }
            let r = r.strip_prefix(b":")?;
            let (sec, mut r) = getnum(r, false)?;
            if sec >= 60 {
                return None;
            }
            // Optional fraction: '.' or ',' then digits.
            if r.len() >= 2 && (r[0] == b'.' || r[0] == b',') && r[1].is_ascii_digit() {
                let n = 1 + r[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                r = &r[n..];
            }
            if matches!(layout, Layout::TUpper | Layout::TLower) {
                if let Some(rest) = r.strip_prefix(b"Z") {
                    r = rest;
                } else {
                    if r.len() < 6 || r[3] != b':' || !matches!(r[0], b'+' | b'-') {
                        return None;
                    }
                    let (hr, _) = getnum(&r[1..3], true)?;
                    let (mm, _) = getnum(&r[4..6], true)?;
                    if hr > 24 || mm > 60 {
                        return None;
                    }
                    r = &r[6..];
                }
            }
            v = r;
        }
        if !v.is_empty() {
            return None;
        }
        if day < 1 || day > days_in(month, year) {
            return None;
        }
        Some(())
    }
    [
        Layout::TUpper,
        Layout::TLower,
        Layout::Space,
        Layout::DateOnly,
    ]
    .iter()
    .any(|&l| try_layout(b, l).is_some())
}

// ---------------------------------------------------------------------------------------------
// Key order: `keyList.Less` in goyaml.v2/sorter.go, for string keys.

/// go-yaml v2's order of string map keys: letters before non-letters, runs of digits compared
/// as numbers. Non-ASCII letters use `char::is_alphabetic` (Go: `unicode.IsLetter`) and only
/// ASCII digits count as digits (Go: `unicode.IsDigit`); the two agree on ASCII.
pub fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let is_digit = |c: char| c.is_ascii_digit();
    let digit = |c: char| (c as i64) - ('0' as i64);
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && is_digit(ar[j - 1]) {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && is_digit(ar[ai]) {
            an = an.wrapping_mul(10).wrapping_add(digit(ar[ai]));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(br[bi]) {
            bn = bn.wrapping_mul(10).wrapping_add(digit(br[bi]));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[cfg(test)]
fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// Sorts map members by [`key_less`] as go-yaml's `sort.Sort(keyList)` does. `keyList.Less` is
/// not a strict weak order for every pair of keys (digit runs past 19 digits overflow, as in Go),
/// so the standard library's sort, which may panic on such an order, is not used: up to 12 keys
/// this is Go's `insertionSort` (what `sort.Sort` runs for so few), step for step; above, a merge
/// sort, which agrees with Go wherever the order is consistent.
fn sort_keys(v: &mut [&(String, Node)]) {
    if v.len() <= 12 {
        // Go sort/zsortinterface.go, insertionSort
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && key_less(&v[j].0, &v[j - 1].0) {
                v.swap(j, j - 1);
                j -= 1;
            }
        }
        return;
    }
    let mid = v.len() / 2;
    sort_keys(&mut v[..mid]);
    sort_keys(&mut v[mid..]);
    let (left, right) = v.split_at(mid);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if key_less(&right[j].0, &left[i].0) {
            merged.push(right[j]);
            j += 1;
        } else {
            merged.push(left[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&left[i..]);
    merged.extend_from_slice(&right[j..]);
    v.copy_from_slice(&merged);
}

// ---------------------------------------------------------------------------------------------
// The emitter (goyaml.v2/emitterc.go), block style only, best_indent 2, best_width 80.

/// go-yaml v2 `yaml.Marshal` of a decoded value: block mappings with sorted keys.
pub fn marshal(node: &Node) -> String {
    let mut e = Emitter {
        out: Vec::new(),
        column: 0,
        indent: -1,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
        open_ended: false,
        root_context: false,
    };
    // STREAM-START and an implicit DOCUMENT-START write nothing.
    e.emit_node(node, true, false);
    // DOCUMENT-END (implicit): a final line break if the line has content.
    e.write_indent();
    // encoder.finish clears open_ended, so STREAM-END never writes "...".
    String::from_utf8(e.out).unwrap_or_default()
}

const BEST_INDENT: i64 = 2;
const BEST_WIDTH: usize = 80;

struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

struct Emitter {
    out: Vec<u8>,
    column: usize,
    indent: i64,
    indents: Vec<i64>,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
    root_context: bool,
}

impl Emitter {
    fn put(&mut self, c: u8) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push(b'\n');
        self.column = 0;
    }

    fn write(&mut self, v: &[u8], i: &mut usize) {
        let w = utf8_width(v[*i]).max(1);
        let end = (*i + w).min(v.len());
        self.out.extend_from_slice(&v[*i..end]);
        self.column += 1;
        *i = end;
    }

    fn write_all(&mut self, s: &[u8]) {
        let mut i = 0;
        while i < s.len() {
            self.write(s, &mut i);
        }
    }

    fn write_break(&mut self, v: &[u8], i: &mut usize) {
        if v[*i] == b'\n' {
            self.put_break();
            *i += 1;
        } else {
            self.write(v, i);
            self.column = 0;
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(b' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(&mut self, ind: &[u8], need_ws: bool, is_ws: bool, is_indention: bool) {
        if need_ws && !self.whitespace {
            self.put(b' ');
        }
        self.write_all(ind);
        self.whitespace = is_ws;
        self.indention = self.indention && is_indention;
        self.open_ended = false;
    }

    fn emit_node(&mut self, node: &Node, root: bool, simple_key: bool) {
        self.root_context = root;
        match node {
            Node::Null => self.emit_scalar("null", Style::Plain, simple_key),
            Node::Bool(true) => self.emit_scalar("true", Style::Plain, simple_key),
            Node::Bool(false) => self.emit_scalar("false", Style::Plain, simple_key),
            Node::Str(s) => self.emit_scalar(s, requested_style(s), simple_key),
            Node::Map(members) if members.is_empty() => {
                // An empty mapping is written in flow style.
                self.write_indicator(b"{", true, true, false);
                self.write_indicator(b"}", false, false, false);
            }
            Node::Map(members) => {
                let mut sorted: Vec<&(String, Node)> = members.iter().collect();
                sort_keys(&mut sorted);
                self.increase_indent(false, false);
                for (k, v) in sorted {
                    self.write_indent();
                    let key = k.as_bytes();
                    let simple = !analyze(key).multiline && key.len() <= 128;
                    if simple {
                        self.root_context = false;
                        self.emit_scalar(k, requested_style(k), true);
                        self.write_indicator(b":", false, false, false);
                    } else {
                        self.write_indicator(b"?", true, false, true);
                        self.root_context = false;
                        self.emit_scalar(k, requested_style(k), false);
                        self.write_indent();
                        self.write_indicator(b":", true, false, true);
                    }
                    self.emit_node(v, false, false);
                }
                self.pop_indent();
            }
        }
    }

    fn emit_scalar(&mut self, value: &str, requested: Style, simple_key: bool) {
        let v = value.as_bytes();
        let a = analyze(v);
        // yaml_emitter_select_scalar_style (flow level 0, implicit tag).
        let mut style = requested;
        if simple_key && a.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (v.is_empty() && simple_key)) {
            style = Style::SingleQuoted;
        }
        if style == Style::SingleQuoted && !a.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!a.block_allowed || simple_key) {
            style = Style::DoubleQuoted;
        }
        let _ = a.flow_plain_allowed; // only used in flow context, which is never emitted here
        self.increase_indent(true, false);
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.write_plain(v, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(v, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(v, allow_breaks),
            Style::Literal => self.write_literal(v),
        }
        self.pop_indent();
    }

    fn write_plain(&mut self, v: &[u8], allow_breaks: bool) {
        if !self.whitespace {
            self.put(b' ');
        }
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < v.len() {
            if is_space(v, i) {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !is_space(v, i + 1) {
                    self.write_indent();
                    i += 1;
                } else {
                    self.write(v, &mut i);
                }
                spaces = true;
            } else if is_break(v, i) {
                if !breaks && v[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(v, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(v, &mut i);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
        if self.root_context {
            self.open_ended = true;
        }
    }

    fn write_single_quoted(&mut self, v: &[u8], allow_breaks: bool) {
        self.write_indicator(b"'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < v.len() {
            if is_space(v, i) {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < v.len() - 1
                    && !is_space(v, i + 1)
                {
                    self.write_indent();
                    i += 1;
                } else {
                    self.write(v, &mut i);
                }
                spaces = true;
            } else if is_break(v, i) {
                if !breaks && v[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(v, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if v[i] == b'\'' {
                    self.put(b'\'');
                }
                self.write(v, &mut i);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator(b"'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, v: &[u8], allow_breaks: bool) {
        let mut spaces = false;
        self.write_indicator(b"\"", true, false, false);
        let mut i = 0;
        while i < v.len() {
            if !is_printable(v, i) || is_bom(v) || is_break(v, i) || v[i] == b'"' || v[i] == b'\\' {
                let lead = v[i];
                let (w, mut c) = match lead {
                    x if x & 0x80 == 0 => (1, (x & 0x7F) as u32),
                    x if x & 0xE0 == 0xC0 => (2, (x & 0x1F) as u32),
                    x if x & 0xF0 == 0xE0 => (3, (x & 0x0F) as u32),
                    x if x & 0xF8 == 0xF0 => (4, (x & 0x07) as u32),
                    x => (1, x as u32),
                };
                for k in 1..w {
                    c = (c << 6) + (at(v, i + k) as u32 & 0x3F);
                }
                i = (i + w).min(v.len());
                self.put(b'\\');
                match c {
                    0x00 => self.put(b'0'),
                    0x07 => self.put(b'a'),
                    0x08 => self.put(b'b'),
                    0x09 => self.put(b't'),
                    0x0A => self.put(b'n'),
                    0x0B => self.put(b'v'),
                    0x0C => self.put(b'f'),
                    0x0D => self.put(b'r'),
                    0x1B => self.put(b'e'),
                    0x22 => self.put(b'"'),
                    0x5C => self.put(b'\\'),
                    0x85 => self.put(b'N'),
                    0xA0 => self.put(b'_'),
                    0x2028 => self.put(b'L'),
                    0x2029 => self.put(b'P'),
                    _ => {
                        let (letter, digits) = if c <= 0xFF {
                            (b'x', 2)
                        } else if c <= 0xFFFF {
                            (b'u', 4)
                        } else {
                            (b'U', 8)
                        };
                        self.put(letter);
                        for k in (0..digits).rev() {
                            let d = ((c >> (k * 4)) & 0x0F) as u8;
                            self.put(if d < 10 { b'0' + d } else { b'A' + d - 10 });
                        }
                    }
                }
                spaces = false;
            } else if is_space(v, i) {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i < v.len() - 1 {
                    self.write_indent();
                    if is_space(v, i + 1) {
                        self.put(b'\\');
                    }
                    i += 1;
                } else {
                    self.write(v, &mut i);
                }
                spaces = true;
            } else {
                self.write(v, &mut i);
                spaces = false;
            }
        }
        self.write_indicator(b"\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_block_scalar_hints(&mut self, v: &[u8]) {
        if is_space(v, 0) || is_break(v, 0) {
            let hint = [b'0' + BEST_INDENT as u8];
            self.write_indicator(&hint, false, false, false);
        }
        self.open_ended = false;
        let mut chomp: Option<u8> = None;
        if v.is_empty() {
            chomp = Some(b'-');
        } else {
            let mut i = v.len() - 1;
            while i > 0 && v[i] & 0xC0 == 0x80 {
                i -= 1;
            }
            if !is_break(v, i) {
                chomp = Some(b'-');
            } else if i == 0 {
                chomp = Some(b'+');
                self.open_ended = true;
            } else {
                i -= 1;
                while i > 0 && v[i] & 0xC0 == 0x80 {
                    i -= 1;
                }
                if is_break(v, i) {
                    chomp = Some(b'+');
                    self.open_ended = true;
                }
            }
        }
        if let Some(c) = chomp {
            self.write_indicator(&[c], false, false, false);
        }
    }

    fn write_literal(&mut self, v: &[u8]) {
        self.write_indicator(b"|", true, false, false);
        self.write_block_scalar_hints(v);
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        let mut i = 0;
        while i < v.len() {
            if is_break(v, i) {
                self.write_break(v, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(v, &mut i);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// `yaml_emitter_analyze_scalar` (unicode output enabled, as `yaml.Marshal` sets it).
fn analyze(v: &[u8]) -> Analysis {
    if v.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;

    if v.len() >= 3 && (v.starts_with(b"---") || v.starts_with(b"...")) {
        block_indicators = true;
        flow_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let mut i = 0;
    while i < v.len() {
        let w = utf8_width(v[i]).max(1);
        let followed_by_whitespace = i + w >= v.len() || is_blank(v, i + w);
        if i == 0 {
            match v[i] {
                b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>'
                | b'\'' | b'"' | b'%' | b'@' | b'`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                b'?' | b':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                b'-' if followed_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match v[i] {
                b',' | b'?' | b'[' | b']' | b'{' | b'}' => flow_indicators = true,
                b':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                b'#' if preceded_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(v, i) {
            special_characters = true;
        }
        if is_space(v, i) {
            if i == 0 {
                leading_space = true;
            }
            if i + w == v.len() {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(v, i) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + w == v.len() {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(v, i);
        i += w;
    }
    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if flow_indicators {
        a.flow_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_yaml(name: &str) -> String {
        let doc = Node::Map(vec![(
            "metadata".into(),
            Node::Map(vec![("name".into(), Node::Str(name.into()))]),
        )]);
        let out = marshal(&doc);
        out.strip_prefix("metadata:\n  name:").unwrap().to_string()
    }

    #[test]
    fn plain_and_quoted_scalars() {
        assert_eq!(name_yaml("regcred"), " regcred\n");
        for s in [
            "123",
            "true",
            "yes",
            "Y",
            "~",
            "null",
            "1e3",
            "0x1F",
            "-1",
            ".5",
            "1_000",
            "2024-01-02",
            "1:20",
            "+.inf",
            "0b101",
            "0o17",
        ] {
            assert_eq!(name_yaml(s), format!(" \"{s}\"\n"), "{s}");
        }
        assert_eq!(name_yaml(""), " \"\"\n");
        for s in [
            "abc123",
            "1e400",
            "1.2.3",
            "2024-13-01",
            "2024-02-30",
            "<<",
            "0x",
            "y1",
            "08x",
            "._1",
            "1:2:a",
        ] {
            assert_eq!(name_yaml(s), format!(" {s}\n"), "{s}");
        }
        assert_eq!(name_yaml(" lead"), " ' lead'\n");
        assert_eq!(name_yaml("trail "), " 'trail '\n");
        assert_eq!(name_yaml("a: b"), " 'a: b'\n");
        assert_eq!(name_yaml("a #b"), " 'a #b'\n");
        assert_eq!(name_yaml("a#b"), " a#b\n");
        assert_eq!(name_yaml("#x"), " '#x'\n");
        assert_eq!(name_yaml("it's"), " it's\n");
        assert_eq!(name_yaml("'q"), " '''q'\n");
        assert_eq!(name_yaml("---"), " '---'\n");
        assert_eq!(name_yaml("- x"), " '- x'\n");
        assert_eq!(name_yaml("-x"), " -x\n");
        assert_eq!(name_yaml("é密"), " é密\n");
        assert_eq!(name_yaml("🔑"), " \"\\U0001F511\"\n");
        assert_eq!(name_yaml("a\tb"), " \"a\\tb\"\n");
        assert_eq!(name_yaml("\u{feff}ab"), " \"\\uFEFF\\x61\\x62\"\n");
    }

    #[test]
    fn literal_blocks() {
        assert_eq!(name_yaml("a\nb"), " |-\n    a\n    b\n");
        assert_eq!(name_yaml("a\nb\n"), " |\n    a\n    b\n");
        assert_eq!(name_yaml("a\n\n"), " |+\n    a\n\n");
        assert_eq!(name_yaml(" a\nb"), " |2-\n     a\n    b\n");
        assert_eq!(name_yaml("a \nb"), " \"a \\nb\"\n");
        assert_eq!(name_yaml("a\n b"), " |-\n    a\n     b\n");
    }

    #[test]
    fn folding_at_width_80() {
        let words = vec!["word"; 30].join(" ") + " end";
        assert_eq!(
            name_yaml(&words),
            " word word word word word word word word word word word word word word word\n    word word word word word word word word word word word word word word word end\n"
        );
        let long = "x".repeat(200);
        assert_eq!(name_yaml(&long), format!(" {long}\n"));
    }

    #[test]
    fn key_order_is_natural() {
        let mut keys = vec![
            "b", "a10", "a9", "A", "_x", "a", "1", "10", "2", "a01", "a1",
        ];
        keys.sort_by(|a, b| key_cmp(a, b));
        // Non-letters sort before letters (`if al || bl { return bl }`).
        assert_eq!(
            keys,
            vec!["_x", "1", "2", "10", "A", "a", "a1", "a01", "a9", "a10", "b"]
        );
    }

    #[test]
    fn long_keys_use_complex_form() {
        let k = "k".repeat(129);
        let doc = Node::Map(vec![(k.clone(), Node::Str("v".into()))]);
        assert_eq!(marshal(&doc), format!("? {k}\n: v\n"));
        let k = "k".repeat(128);
        let doc = Node::Map(vec![(k.clone(), Node::Str("v".into()))]);
        assert_eq!(marshal(&doc), format!("{k}: v\n"));
    }

    #[test]
    fn json_round_trip_quirks() {
        assert_eq!(
            json_to_yaml(br#"{"b":"x","a":{"z":null,"y":""},"e":{}}"#).unwrap(),
            "a:\n  \"y\": \"\"\n  z: null\nb: x\ne: {}\n"
        );
        assert_eq!(
            json_to_yaml(b"{\"n\":\"a\x7fb\"}").unwrap_err(),
            YamlError::ControlCharacters
        );
        assert_eq!(
            json_to_yaml("{\"k\":\"a\u{85}b\"}".as_bytes()).unwrap(),
            "k: a b\n"
        );
        assert_eq!(
            json_to_yaml("{\"k\":\"a\u{85}\u{85}b\"}".as_bytes()).unwrap(),
            "k: |-\n  a\n  b\n"
        );
        assert_eq!(
            json_to_yaml("{\"n\":\"a\u{85}--- x\"}".as_bytes()).unwrap_err(),
            YamlError::Scanner {
                mark_line: 1,
                problem: "found unexpected document indicator"
            }
        );
        assert_eq!(
            json_to_yaml("{\"n\":\"a\u{85}--- x\"}".as_bytes())
                .unwrap_err()
                .to_string(),
            "yaml: line 2: found unexpected document indicator"
        );
        assert_eq!(
            json_to_yaml(br#"{"n":"\/"}"#).unwrap_err().to_string(),
            "yaml: found unknown escape character"
        );
        assert_eq!(
            json_to_yaml(br#"{"k":"\u003c\u2028\ufffd\b"}"#).unwrap(),
            "k: \"<\\L\u{FFFD}\\b\"\n"
        );
        assert!(json_to_yaml(br#"{"n":[1]}"#).is_err());
        assert!(json_to_yaml(br#"{"n":"\/"}"#).is_err());
        assert!(json_to_yaml(b"{\"n\":\"abc").is_err());
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            "{",
            "\"",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":\"\\",
            "{\"a\":\"\\u12\"}",
            "nul",
        ] {
            let _ = json_to_yaml(s.as_bytes());
        }
        for s in [
            "\u{85}", " ", "\n", "\r", "'", "\u{2028}", ":", "?", "-", "...",
        ] {
            let _ = marshal(&Node::Map(vec![(s.into(), Node::Str(s.into()))]));
        }
    }
}
