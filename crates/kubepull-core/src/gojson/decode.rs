//! A JSON parser whose behaviour and syntax errors are those of Go's `encoding/json`.
//!
//! The kubelet reports a malformed pull secret with the raw Go error text as the container's
//! waiting reason, so the text is part of the observable behaviour. Decoding happens in the two
//! passes Go's `json.Unmarshal` makes:
//!
//! 1. [`validate`] is a port of Go's `encoding/json/scanner.go` (`checkValid`, the `state*`
//!    functions, `scanner.eof`, `pushParseState`, `quoteChar`; golang/go, the default build
//!    without `GOEXPERIMENT=jsonv2`). It runs iteratively, so any input is safe, and it accepts
//!    nesting up to Go's `maxNestingDepth` of 10000. Every syntax error carries Go's exact text,
//!    including its quirks: at end of input Go feeds the state machine one space, so a truncated
//!    literal or number reads `invalid character ' ' in literal true (expecting 'e')` or
//!    `invalid character ' ' in numeric literal`, while a truncated string, object or array
//!    reads `unexpected end of JSON input`.
//! 2. A tree builder turns the validated input into a [`Value`]. Strings are unquoted the way
//!    Go's `decode.go` `unquoteBytes` does it: each byte that does not start a valid UTF-8
//!    sequence becomes U+FFFD (one per byte, as `utf8.DecodeRune` reports width 1), and a
//!    `\u` escape of a lone or mismatched surrogate becomes U+FFFD.
//!
//! Objects keep every member in document order, duplicates included: the caller decides which
//! one wins (Go: the last). [`parse`] builds the whole tree but refuses nesting deeper than
//! [`MAX_TREE_DEPTH`] with [`SyntaxError::TooDeep`], which keeps every recursive use of the tree
//! (drop, clone, compare, debug) far from the stack limit. [`parse_shallow`] builds only the
//! outer levels a caller needs and skips deeper content without recursion, which is what Go's
//! decoder does with values it does not store; it therefore accepts everything Go accepts.
//!
//! Builds with `GOEXPERIMENT=jsonv2` (where `encoding/json` runs on the v2 engine) report some
//! truncations differently (`unexpected end of JSON input` inside a literal); this module follows
//! the default Go build that Kubernetes releases use.

use std::fmt;

/// Go's `maxNestingDepth` (`scanner.go`): deeper input fails [`validate`] with
/// `invalid character '[' exceeded max depth` (or `'{'`).
pub const MAX_NESTING_DEPTH: usize = 10_000;

/// The deepest tree [`parse`] builds. Valid input nested deeper fails with
/// [`SyntaxError::TooDeep`]; use [`parse_shallow`] to read such input.
pub const MAX_TREE_DEPTH: usize = 128;

/// A parsed JSON value.
///
/// `Debug` shows the shape only (scalars are elided), because values may be credentials.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unquoted the way Go does it.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, members in document order, duplicates kept.
    Object(Vec<(String, Value)>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(_) => f.write_str("<bool>"),
            Value::Number(_) => f.write_str("<number>"),
            Value::String(_) => f.write_str("<string>"),
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Object(o) => f
                .debug_map()
                .entries(o.iter().map(|(k, v)| (k.as_str(), v)))
                .finish(),
        }
    }
}

impl Value {
    /// Go's name for the JSON kind in `UnmarshalTypeError` messages (`decode.go`:
    /// `"string"`, `"number"`, `"bool"`, `"array"`, `"object"`; `null` never produces one).
    pub fn go_kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The string, if this is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members, if this is a JSON object.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
}

/// A syntax error. `Display` is Go's text, byte for byte, except for [`SyntaxError::TooDeep`],
/// which Go has no counterpart for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// The input ended inside a string, object or array, or was empty or all whitespace.
    #[error("unexpected end of JSON input")]
    UnexpectedEnd,
    /// An unexpected byte (Go's `scanner.error`). `context` is Go's phrase, such as
    /// `looking for beginning of value` or `exceeded max depth`.
    #[error("invalid character {} {context}", quote_char(*.byte))]
    InvalidCharacter {
        /// The offending byte; a space when the input ended inside a literal or number.
        byte: u8,
        /// Go's context phrase.
        context: &'static str,
        /// 0-based offset of the byte (the input length for the end-of-input space).
        /// Go's `SyntaxError.Offset` is this plus one.
        offset: usize,
    },
    /// Valid JSON nested deeper than [`parse`] builds trees (not a Go error).
    #[error("json value nested more than {limit} levels deep: kubepull builds trees only this deep (Go accepts up to 10000); flatten the document")]
    TooDeep {
        /// The limit that was exceeded ([`MAX_TREE_DEPTH`]).
        limit: usize,
    },
}

/// Go's `quoteChar` (`scanner.go`): `'\''` for a single quote, `'"'` for a double quote,
/// otherwise `strconv.Quote(string(rune(c)))` with single quotes. A byte above 0x7f is quoted
/// as the Latin-1 character of that value, as Go's `string(c)` conversion does.
pub fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\\' => "'\\\\'".to_string(),
        0x07 => "'\\a'".to_string(),
        0x08 => "'\\b'".to_string(),
        0x0c => "'\\f'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        b'\t' => "'\\t'".to_string(),
        0x0b => "'\\v'".to_string(),
        0x00..=0x1f | 0x7f => format!("'\\x{c:02x}'"),
        // strconv.IsPrint is false for the C1 controls, NO-BREAK SPACE and SOFT HYPHEN
        0x80..=0xa0 | 0xad => format!("'\\u{c:04x}'"),
        _ => format!("'{}'", char::from(c)),
    }
}

/// Converts bytes to a string the way Go's JSON decoder and encoder treat invalid UTF-8: every
/// byte that does not start a valid sequence becomes one U+FFFD (`utf8.DecodeRune` width 1).
///
/// This differs from [`String::from_utf8_lossy`] for truncated multi-byte sequences:
/// `b"\xe2\x82A"` gives two U+FFFD here (Go) and one there.
pub fn go_lossy_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // `valid` is valid UTF-8 by construction
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{fffd}');
                rest = after.get(1..).unwrap_or_default();
            }
        }
    }
}

/// Checks that `input` is one JSON value, exactly as Go's `checkValid` does (the first pass of
/// `json.Unmarshal`), with Go's error text. Iterative: no input can overflow the stack.
pub fn validate(input: &[u8]) -> Result<(), SyntaxError> {
    let mut s = Scanner::new();
    for (i, &c) in input.iter().enumerate() {
        s.step(c, i);
        // Go keeps scanning after `stateEndTop` records an error and returns it at the next
        // byte or at EOF; the error is the same either way.
        if let Some(e) = s.err.take() {
            return Err(e);
        }
    }
    s.eof(input.len())
}

/// Parses one JSON document: [`validate`], then the whole tree. Nesting deeper than
/// [`MAX_TREE_DEPTH`] fails with [`SyntaxError::TooDeep`] (after Go's own checks).
pub fn parse(input: &[u8]) -> Result<Value, SyntaxError> {
    validate(input)?;
    Builder::new(input, MAX_TREE_DEPTH, false).document()
}

/// Parses one JSON document, building only `depth` levels of containers (the top-level container
/// is level 1). A container nested deeper is skipped and returned **empty**, keeping its kind:
/// enough to report Go's type errors, which name only the kind. Accepts everything Go accepts.
/// `depth` is capped at [`MAX_TREE_DEPTH`].
pub fn parse_shallow(input: &[u8], depth: usize) -> Result<Value, SyntaxError> {
    validate(input)?;
    Builder::new(input, depth.min(MAX_TREE_DEPTH), true).document()
}

// ---------------------------------------------------------------------------------------------
// The scanner: a port of golang/go src/encoding/json/scanner.go.

/// Go's `parseObjectKey`, `parseObjectValue`, `parseArrayValue`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// Go's step functions, one variant per `state*` function.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU,
    InStringEscU1,
    InStringEscU12,
    InStringEscU123,
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    T,
    Tr,
    Tru,
    F,
    Fa,
    Fal,
    Fals,
    N,
    Nu,
    Nul,
    Error,
}

struct Scanner {
    state: State,
    end_top: bool,
    parse_state: Vec<Parse>,
    err: Option<SyntaxError>,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            state: State::BeginValue,
            end_top: false,
            parse_state: Vec::new(),
            err: None,
        }
    }

    /// `scanner.error`.
    fn error(&mut self, c: u8, at: usize, context: &'static str) {
        self.state = State::Error;
        self.err = Some(SyntaxError::InvalidCharacter {
            byte: c,
            context,
            offset: at,
        });
    }

    /// `scanner.eof`.
    fn eof(&mut self, len: usize) -> Result<(), SyntaxError> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        if self.end_top {
            return Ok(());
        }
        self.step(b' ', len);
        if self.end_top {
            return Ok(());
        }
        Err(self.err.take().unwrap_or(SyntaxError::UnexpectedEnd))
    }

    /// `pushParseState`.
    fn push(&mut self, c: u8, at: usize, p: Parse) {
        self.parse_state.push(p);
        if self.parse_state.len() > MAX_NESTING_DEPTH {
            self.error(c, at, "exceeded max depth");
        }
    }

    /// `popParseState`.
    fn pop(&mut self) {
        self.parse_state.pop();
        if self.parse_state.is_empty() {
            self.state = State::EndTop;
            self.end_top = true;
        } else {
            self.state = State::EndValue;
        }
    }

    fn step(&mut self, c: u8, at: usize) {
        use State::*;
        let hex = c.is_ascii_hexdigit();
        match self.state {
            BeginValueOrEmpty => {
                if is_space(c) {
                } else if c == b']' {
                    self.end_value(c, at);
                } else {
                    self.begin_value(c, at);
                }
            }
            BeginValue => self.begin_value(c, at),
            BeginStringOrEmpty => {
                if is_space(c) {
                } else if c == b'}' {
                    if let Some(last) = self.parse_state.last_mut() {
                        *last = Parse::ObjectValue;
                    }
                    self.end_value(c, at);
                } else {
                    self.begin_string(c, at);
                }
            }
            BeginString => self.begin_string(c, at),
            EndValue => self.end_value(c, at),
            EndTop => self.end_top_state(c, at),
            InString => match c {
                b'"' => self.state = EndValue,
                b'\\' => self.state = InStringEsc,
                c if c < 0x20 => self.error(c, at, "in string literal"),
                _ => {}
            },
            InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.state = InString,
                b'u' => self.state = InStringEscU,
                _ => self.error(c, at, "in string escape code"),
            },
            InStringEscU | InStringEscU1 | InStringEscU12 | InStringEscU123 => {
                if hex {
                    self.state = match self.state {
                        InStringEscU => InStringEscU1,
                        InStringEscU1 => InStringEscU12,
                        InStringEscU12 => InStringEscU123,
                        _ => InString,
                    };
                } else {
                    self.error(c, at, "in \\u hexadecimal character escape");
                }
            }
            Neg => match c {
                b'0' => self.state = Zero,
                b'1'..=b'9' => self.state = One,
                _ => self.error(c, at, "in numeric literal"),
            },
            One => {
                if c.is_ascii_digit() {
                    self.state = One;
                } else {
                    self.state0(c, at);
                }
            }
            Zero => self.state0(c, at),
            Dot => {
                if c.is_ascii_digit() {
                    self.state = Dot0;
                } else {
                    self.error(c, at, "after decimal point in numeric literal");
                }
            }
            Dot0 => {
                if c.is_ascii_digit() {
                } else if c == b'e' || c == b'E' {
                    self.state = E;
                } else {
                    self.end_value(c, at);
                }
            }
            E => {
                if c == b'+' || c == b'-' {
                    self.state = ESign;
                } else {
                    self.state_esign(c, at);
                }
            }
            ESign => self.state_esign(c, at),
            E0 => {
                if !c.is_ascii_digit() {
                    self.end_value(c, at);
                }
            }
            T => self.literal(c, at, b'r', Tr, "in literal true (expecting 'r')"),
            Tr => self.literal(c, at, b'u', Tru, "in literal true (expecting 'u')"),
            Tru => self.literal(c, at, b'e', EndValue, "in literal true (expecting 'e')"),
            F => self.literal(c, at, b'a', Fa, "in literal false (expecting 'a')"),
            Fa => self.literal(c, at, b'l', Fal, "in literal false (expecting 'l')"),
            Fal => self.literal(c, at, b's', Fals, "in literal false (expecting 's')"),
            Fals => self.literal(c, at, b'e', EndValue, "in literal false (expecting 'e')"),
            N => self.literal(c, at, b'u', Nu, "in literal null (expecting 'u')"),
            Nu => self.literal(c, at, b'l', Nul, "in literal null (expecting 'l')"),
            Nul => self.literal(c, at, b'l', EndValue, "in literal null (expecting 'l')"),
            Error => {}
        }
    }

    fn literal(&mut self, c: u8, at: usize, want: u8, next: State, context: &'static str) {
        if c == want {
            self.state = next;
        } else {
            self.error(c, at, context);
        }
    }

    /// `stateBeginValue`.
    fn begin_value(&mut self, c: u8, at: usize) {
        use State::*;
        if is_space(c) {
            return;
        }
        match c {
            b'{' => {
                self.state = BeginStringOrEmpty;
                self.push(c, at, Parse::ObjectKey);
            }
            b'[' => {
                self.state = BeginValueOrEmpty;
                self.push(c, at, Parse::ArrayValue);
            }
            b'"' => self.state = InString,
            b'-' => self.state = Neg,
            b'0' => self.state = Zero,
            b't' => self.state = T,
            b'f' => self.state = F,
            b'n' => self.state = N,
            b'1'..=b'9' => self.state = One,
            _ => self.error(c, at, "looking for beginning of value"),
        }
    }

    /// `stateBeginString`.
    fn begin_string(&mut self, c: u8, at: usize) {
        if is_space(c) {
            return;
        }
        if c == b'"' {
            self.state = State::InString;
        } else {
            self.error(c, at, "looking for beginning of object key string");
        }
    }

    /// `state0`.
    fn state0(&mut self, c: u8, at: usize) {
        if c == b'.' {
            self.state = State::Dot;
        } else if c == b'e' || c == b'E' {
            self.state = State::E;
        } else {
            self.end_value(c, at);
        }
    }

    /// `stateESign`.
    fn state_esign(&mut self, c: u8, at: usize) {
        if c.is_ascii_digit() {
            self.state = State::E0;
        } else {
            self.error(c, at, "in exponent of numeric literal");
        }
    }

    /// `stateEndTop`.
    fn end_top_state(&mut self, c: u8, at: usize) {
        if !is_space(c) {
            self.error(c, at, "after top-level value");
        }
    }

    /// `stateEndValue`.
    fn end_value(&mut self, c: u8, at: usize) {
        let Some(&ps) = self.parse_state.last() else {
            self.state = State::EndTop;
            self.end_top = true;
            self.end_top_state(c, at);
            return;
        };
        if is_space(c) {
            self.state = State::EndValue;
            return;
        }
        match ps {
            Parse::ObjectKey => {
                if c == b':' {
                    if let Some(last) = self.parse_state.last_mut() {
                        *last = Parse::ObjectValue;
                    }
                    self.state = State::BeginValue;
                } else {
                    self.error(c, at, "after object key");
                }
            }
            Parse::ObjectValue => {
                if c == b',' {
                    if let Some(last) = self.parse_state.last_mut() {
                        *last = Parse::ObjectKey;
                    }
                    self.state = State::BeginString;
                } else if c == b'}' {
                    self.pop();
                } else {
                    self.error(c, at, "after object key:value pair");
                }
            }
            Parse::ArrayValue => {
                if c == b',' {
                    self.state = State::BeginValue;
                } else if c == b']' {
                    self.pop();
                } else {
                    self.error(c, at, "after array element");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tree builder. It runs only on input `validate` accepted; it still never indexes out of
// bounds (a defensive `UnexpectedEnd` instead), so no input can make it panic.

struct Builder<'a> {
    b: &'a [u8],
    i: usize,
    max_depth: usize,
    elide: bool,
}

impl<'a> Builder<'a> {
    fn new(b: &'a [u8], max_depth: usize, elide: bool) -> Self {
        Builder {
            b,
            i: 0,
            max_depth,
            elide,
        }
    }

    fn document(mut self) -> Result<Value, SyntaxError> {
        self.ws();
        self.value(0)
    }

    fn ws(&mut self) {
        while self.b.get(self.i).copied().is_some_and(is_space) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, SyntaxError> {
        self.b
            .get(self.i)
            .copied()
            .ok_or(SyntaxError::UnexpectedEnd)
    }

    /// `depth` is the number of containers around this value.
    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        match self.peek()? {
            c @ (b'{' | b'[') => {
                if depth + 1 > self.max_depth {
                    if !self.elide {
                        return Err(SyntaxError::TooDeep {
                            limit: self.max_depth,
                        });
                    }
                    self.skip_container();
                    return Ok(if c == b'{' {
                        Value::Object(Vec::new())
                    } else {
                        Value::Array(Vec::new())
                    });
                }
                if c == b'{' {
                    self.object(depth + 1)
                } else {
                    self.array(depth + 1)
                }
            }
            b'"' => self.string().map(Value::String),
            b't' => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            b'f' => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            b'n' => {
                self.i += 4;
                Ok(Value::Null)
            }
            _ => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    self.i += 1;
                }
                let text = self.b.get(start..self.i).unwrap_or_default();
                Ok(Value::Number(go_lossy_utf8(text)))
            }
        }
    }

    /// Skips a validated container without recursion (Go's `decodeState.skip`).
    fn skip_container(&mut self) {
        let mut depth = 0usize;
        let mut in_string = false;
        while let Some(&c) = self.b.get(self.i) {
            self.i += 1;
            if in_string {
                match c {
                    b'\\' => self.i += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.i += 1; // [
        let mut items = Vec::new();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            let c = self.peek()?;
            self.i += 1;
            if c != b',' {
                return Ok(Value::Array(items));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.i += 1; // {
        let mut members = Vec::new();
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            let k = self.string()?;
            self.ws();
            self.i += 1; // :
            self.ws();
            let v = self.value(depth)?;
            members.push((k, v));
            self.ws();
            let c = self.peek()?;
            self.i += 1;
            if c != b',' {
                return Ok(Value::Object(members));
            }
        }
    }

    /// Four hex digits at `at`, or `None` (Go's `getu4` without the `\u` prefix).
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        Some(v)
    }

    /// A validated string literal, unquoted as Go's `unquoteBytes` does it.
    fn string(&mut self) -> Result<String, SyntaxError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        let mut run_start = self.i;
        loop {
            let c = self.peek()?;
            if c != b'"' && c != b'\\' {
                self.i += 1;
                continue;
            }
            out.push_str(&go_lossy_utf8(
                self.b.get(run_start..self.i).unwrap_or_default(),
            ));
            self.i += 1;
            if c == b'"' {
                return Ok(out);
            }
            let e = self.peek()?;
            self.i += 1;
            match e {
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let cp = self.hex4(self.i).ok_or(SyntaxError::UnexpectedEnd)?;
                    self.i += 4;
                    let mut ch = char::from_u32(cp);
                    if (0xD800..0xE000).contains(&cp) {
                        // utf16.DecodeRune(cp, next): a valid pair is consumed as one rune;
                        // anything else gives U+FFFD and leaves the next escape alone
                        ch = Some('\u{fffd}');
                        if self.b.get(self.i..self.i + 2) == Some(b"\\u") {
                            if let Some(lo) = self.hex4(self.i + 2) {
                                if (0xD800..0xDC00).contains(&cp) && (0xDC00..0xE000).contains(&lo)
                                {
                                    ch = char::from_u32(
                                        0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00),
                                    );
                                    self.i += 6;
                                }
                            }
                        }
                    }
                    out.push(ch.unwrap_or('\u{fffd}'));
                }
                other => out.push(char::from(other)), // " \ /
            }
            run_start = self.i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn go_error_texts() {
        // Each expectation follows golang/go src/encoding/json/scanner.go state by state.
        let cases: &[(&str, &str)] = &[
            ("", "unexpected end of JSON input"),
            ("   \n\t", "unexpected end of JSON input"),
            ("{\"auths\": {", "unexpected end of JSON input"),
            ("{\"a\":\"abc", "unexpected end of JSON input"),
            ("[1,", "unexpected end of JSON input"),
            ("{\"a\"", "unexpected end of JSON input"),
            (
                "not json at all",
                "invalid character 'o' in literal null (expecting 'u')",
            ),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            ("{\"a\"}", "invalid character '}' after object key"),
            (
                "{\"a\":1 2}",
                "invalid character '2' after object key:value pair",
            ),
            (
                "{1}",
                "invalid character '1' looking for beginning of object key string",
            ),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            ("{} x", "invalid character 'x' after top-level value"),
            ("{}}", "invalid character '}' after top-level value"),
            ("01", "invalid character '1' after top-level value"),
            (
                "{'a':1}",
                "invalid character '\\'' looking for beginning of object key string",
            ),
            ("[\"]", "unexpected end of JSON input"),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            ("\"\\x\"", "invalid character 'x' in string escape code"),
            (
                "\"\\u12g4\"",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            (
                "trux",
                "invalid character 'x' in literal true (expecting 'e')",
            ),
            (
                "fals",
                "invalid character ' ' in literal false (expecting 'e')",
            ),
            (
                "nul",
                "invalid character ' ' in literal null (expecting 'l')",
            ),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            ("t", "invalid character ' ' in literal true (expecting 'r')"),
            ("-", "invalid character ' ' in numeric literal"),
            ("-x", "invalid character 'x' in numeric literal"),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            ("1e", "invalid character ' ' in exponent of numeric literal"),
            (
                "1e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            ("\"\\", "invalid character ' ' in string escape code"),
            (
                "\"\\u12",
                "invalid character ' ' in \\u hexadecimal character escape",
            ),
            (
                "\u{feff}{}",
                "invalid character 'ï' looking for beginning of value",
            ),
            (
                "{\"a\":\u{a0}1}",
                "invalid character 'Â' looking for beginning of value",
            ),
            (
                "\x01",
                "invalid character '\\x01' looking for beginning of value",
            ),
            (
                "\x7f",
                "invalid character '\\x7f' looking for beginning of value",
            ),
            ("\"", "unexpected end of JSON input"),
            ("]", "invalid character ']' looking for beginning of value"),
            (
                "\\",
                "invalid character '\\\\' looking for beginning of value",
            ),
            (
                "{\"a\":\"b\"\"c\"}",
                "invalid character '\"' after object key:value pair",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&err(input), want, "input {input:?}");
        }
    }

    #[test]
    fn quote_char_like_go() {
        assert_eq!(quote_char(b'\''), "'\\''");
        assert_eq!(quote_char(b'"'), "'\"'");
        assert_eq!(quote_char(b'x'), "'x'");
        assert_eq!(quote_char(b' '), "' '");
        assert_eq!(quote_char(0), "'\\x00'");
        assert_eq!(quote_char(0x1b), "'\\x1b'");
        assert_eq!(quote_char(0x80), "'\\u0080'");
        assert_eq!(quote_char(0x9f), "'\\u009f'");
        assert_eq!(quote_char(0xa0), "'\\u00a0'");
        assert_eq!(quote_char(0xad), "'\\u00ad'");
        assert_eq!(quote_char(0xe9), "'é'");
        assert_eq!(quote_char(0xff), "'ÿ'");
    }

    #[test]
    fn offsets() {
        let e = parse(b"{\"a\" 1}").unwrap_err();
        assert_eq!(
            e,
            SyntaxError::InvalidCharacter {
                byte: b'1',
                context: "after object key",
                offset: 5
            }
        );
        let e = parse(b"tru").unwrap_err();
        assert!(matches!(e, SyntaxError::InvalidCharacter { offset: 3, .. }));
    }

    #[test]
    fn values() {
        let v = parse(br#"{"a":[1,true,null,"x\u00e9\ud83d\ude00"],"a":{}}"#).unwrap();
        let Value::Object(m) = v else { panic!() };
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].1,
            Value::Array(vec![
                Value::Number("1".into()),
                Value::Bool(true),
                Value::Null,
                Value::String("xé😀".into())
            ])
        );
        assert_eq!(m[1].1, Value::Object(vec![]));
        assert_eq!(
            parse(b" -1.5e+3 ").unwrap(),
            Value::Number("-1.5e+3".into())
        );
        assert_eq!(parse(b"false").unwrap(), Value::Bool(false));
    }

    #[test]
    fn strings_like_go_unquote() {
        let s = |j: &[u8]| match parse(j).unwrap() {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        };
        // invalid UTF-8: one U+FFFD per bad byte (utf8.DecodeRune width 1)
        assert_eq!(s(b"\"\xff\""), "\u{fffd}");
        assert_eq!(s(b"\"\xe2\x82A\""), "\u{fffd}\u{fffd}A");
        assert_eq!(s(b"\"\xed\xa0\x80\""), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(s(b"\"\xc3\xa9\""), "é");
        // surrogates
        assert_eq!(s(br#""\ud800""#), "\u{fffd}");
        assert_eq!(s(br#""\udc00""#), "\u{fffd}");
        assert_eq!(s(br#""\ud800x""#), "\u{fffd}x");
        assert_eq!(s(br#""\ud800\u0041""#), "\u{fffd}A");
        assert_eq!(s(br#""\ud800\ud800\udc00""#), "\u{fffd}\u{10000}");
        assert_eq!(s(br#""\udc00\udc00""#), "\u{fffd}\u{fffd}");
        assert_eq!(s(br#""\u0000\/\\\"\b\f\n\r\t""#), "\0/\\\"\u{8}\u{c}\n\r\t");
    }

    #[test]
    fn lossy_like_go() {
        assert_eq!(go_lossy_utf8(b"ab"), "ab");
        assert_eq!(go_lossy_utf8(b"p\xff\xef"), "p\u{fffd}\u{fffd}");
        assert_eq!(go_lossy_utf8(b"\xf0\x9f\x98"), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(go_lossy_utf8(b"\xf0\x9f\x98\x80"), "😀");
    }

    #[test]
    fn depth_is_bounded() {
        // Go's limit: 10000 levels are fine, the 10001st bracket is an error at that bracket
        let ok = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(validate(ok.as_bytes()), Ok(()));
        assert_eq!(
            parse(ok.as_bytes()).unwrap_err(),
            SyntaxError::TooDeep {
                limit: MAX_TREE_DEPTH
            }
        );
        assert_eq!(
            parse_shallow(ok.as_bytes(), 2).unwrap(),
            Value::Array(vec![Value::Array(vec![Value::Array(vec![])])])
        );
        let deep = "[".repeat(10_001);
        assert_eq!(err(&deep), "invalid character '[' exceeded max depth");
        let deep_obj = "{\"a\":".repeat(200_000);
        assert_eq!(err(&deep_obj), "invalid character '{' exceeded max depth");
        let fine = format!(
            "{}{}",
            "[".repeat(MAX_TREE_DEPTH),
            "]".repeat(MAX_TREE_DEPTH)
        );
        assert!(parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn shallow_keeps_kinds() {
        let v = parse_shallow(br#"{"a":{"b":[1,"]}",{"c":"\"}"}]},"d":1}"#, 2).unwrap();
        assert_eq!(
            v,
            Value::Object(vec![
                (
                    "a".into(),
                    Value::Object(vec![("b".into(), Value::Array(vec![]))])
                ),
                ("d".into(), Value::Number("1".into()))
            ])
        );
    }

    #[test]
    fn debug_hides_scalars() {
        let v = parse(br#"{"password":"hunter2","n":[1,true]}"#).unwrap();
        let d = format!("{v:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("password"));
    }
}
