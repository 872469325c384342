//! A JSON parser whose syntax errors read exactly like Go's `encoding/json`.
//!
//! The kubelet reports a malformed pull secret with the raw Go error text as the container's
//! waiting reason, so the text is part of the observable behaviour. Ported from Go's
//! `encoding/json/scanner.go` (the `state*` functions, `quoteChar`, `checkValid`) and
//! `decode.go` (invalid UTF-8 in strings becomes U+FFFD).
//!
//! Objects keep every member in document order, duplicates included: the caller decides which
//! one wins (Go: the last).

use std::fmt;

/// Deepest nesting accepted; deeper documents fail with Go's `exceeded max depth` text. Go's own
/// limit (`maxNestingDepth` in `scanner.go`) is 10000; this parser recurses, so it stops at 512 to
/// stay far inside a thread's stack. No docker config comes near either.
pub const MAX_NESTING_DEPTH: usize = 512;

/// A parsed JSON value.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, members in document order, duplicates kept.
    Object(Vec<(String, Value)>),
}

impl fmt::Debug for Value {
    /// Shapes only: values may be credentials.
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
    /// Go's name for the JSON type in `UnmarshalTypeError` messages.
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
}

/// A syntax error; Display is Go's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// The input ended early (also: empty input).
    #[error("unexpected end of JSON input")]
    UnexpectedEnd,
    /// An unexpected byte; `context` is Go's phrase such as `looking for beginning of value`.
    #[error("invalid character {} {context}", quote_char(*.byte))]
    InvalidCharacter {
        /// The offending byte.
        byte: u8,
        /// Go's context phrase.
        context: &'static str,
        /// Offset of the byte in the input.
        offset: usize,
    },
    /// Nesting deeper than [`MAX_NESTING_DEPTH`].
    #[error("exceeded max depth")]
    TooDeep,
}

/// Go `scanner.go` `quoteChar`.
pub fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        c => {
            let q = crate::gostr::quote(&char::from(c).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// Parses one JSON document the way Go's `json.Unmarshal` validates it.
pub fn parse(input: &[u8]) -> Result<Value, SyntaxError> {
    let mut p = Parser { b: input, i: 0 };
    p.ws();
    let v = p.value(0, "looking for beginning of value")?;
    p.ws();
    if p.i < p.b.len() {
        return Err(p.invalid("after top-level value"));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, SyntaxError> {
        self.b
            .get(self.i)
            .copied()
            .ok_or(SyntaxError::UnexpectedEnd)
    }

    fn invalid(&self, context: &'static str) -> SyntaxError {
        SyntaxError::InvalidCharacter {
            byte: self.b[self.i],
            context,
            offset: self.i,
        }
    }

    fn value(&mut self, depth: usize, ctx: &'static str) -> Result<Value, SyntaxError> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Value::String),
            b't' => self.literal(b"true", "in literal true (expecting ", Value::Bool(true)),
            b'f' => self.literal(b"false", "in literal false (expecting ", Value::Bool(false)),
            b'n' => self.literal(b"null", "in literal null (expecting ", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.invalid(ctx)),
        }
    }

    fn literal(&mut self, word: &[u8], ctx: &'static str, v: Value) -> Result<Value, SyntaxError> {
        for &want in word {
            let c = self.peek()?;
            if c != want {
                // Go: "in literal true (expecting 'r')"
                let context: &'static str = match (ctx, want) {
                    (_, b'r') => leak_ctx(ctx, 'r'),
                    (_, b'u') => leak_ctx(ctx, 'u'),
                    (_, b'e') => leak_ctx(ctx, 'e'),
                    (_, b'a') => leak_ctx(ctx, 'a'),
                    (_, b'l') => leak_ctx(ctx, 'l'),
                    (_, b's') => leak_ctx(ctx, 's'),
                    _ => ctx,
                };
                return Err(self.invalid(context));
            }
            self.i += 1;
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.i;
        if self.peek()? == b'-' {
            self.i += 1;
            match self.peek()? {
                b'0'..=b'9' => {}
                _ => return Err(self.invalid("in numeric literal")),
            }
        }
        if self.peek()? == b'0' {
            self.i += 1;
        } else {
            while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                self.i += 1;
            }
        }
        if self.i < self.b.len() && self.b[self.i] == b'.' {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return Err(self.invalid("after decimal point in numeric literal"));
            }
            while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                self.i += 1;
            }
        }
        if self.i < self.b.len() && matches!(self.b[self.i], b'e' | b'E') {
            self.i += 1;
            if matches!(self.peek()?, b'+' | b'-') {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return Err(self.invalid("in exponent of numeric literal"));
            }
            while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                self.i += 1;
            }
        }
        Ok(Value::Number(
            String::from_utf8_lossy(&self.b[start..self.i]).into_owned(),
        ))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let c = self.peek()?;
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.invalid("in \\u hexadecimal character escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    self.i += 1;
                    // Go replaces invalid UTF-8 with U+FFFD (decode.go, unquoteBytes)
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    self.i = save;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.invalid("in string escape code"));
                        }
                    }
                }
                c if c < 0x20 => return Err(self.invalid("in string literal")),
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_NESTING_DEPTH {
            return Err(SyntaxError::TooDeep);
        }
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth, "looking for beginning of value")?);
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.invalid("after array element")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_NESTING_DEPTH {
            return Err(SyntaxError::TooDeep);
        }
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return Err(self.invalid("looking for beginning of object key string"));
            }
            let k = self.string()?;
            self.ws();
            if self.peek()? != b':' {
                return Err(self.invalid("after object key"));
            }
            self.i += 1;
            self.ws();
            let v = self.value(depth, "looking for beginning of value")?;
            members.push((k, v));
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.invalid("after object key:value pair")),
            }
        }
    }
}

/// The `in literal X (expecting 'c')` phrases, as static strings.
fn leak_ctx(ctx: &'static str, c: char) -> &'static str {
    macro_rules! table {
        ($($lit:literal => [$($ch:literal => $s:literal),*]),*) => {
            match ctx {
                $($lit => match c { $($ch => $s,)* _ => ctx },)*
                _ => ctx,
            }
        };
    }
    table!(
        "in literal true (expecting " => ['r' => "in literal true (expecting 'r')", 'u' => "in literal true (expecting 'u')", 'e' => "in literal true (expecting 'e')"],
        "in literal false (expecting " => ['a' => "in literal false (expecting 'a')", 'l' => "in literal false (expecting 'l')", 's' => "in literal false (expecting 's')", 'e' => "in literal false (expecting 'e')"],
        "in literal null (expecting " => ['u' => "in literal null (expecting 'u')", 'l' => "in literal null (expecting 'l')"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(err(""), "unexpected end of JSON input");
        assert_eq!(err("{\"auths\": {"), "unexpected end of JSON input");
        assert_eq!(
            err("not json at all"),
            "invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(
            err("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(err("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            err("{\"a\":1 2}"),
            "invalid character '2' after object key:value pair"
        );
        assert_eq!(
            err("{1}"),
            "invalid character '1' looking for beginning of object key string"
        );
        assert_eq!(err("[1 2]"), "invalid character '2' after array element");
        assert_eq!(err("{} x"), "invalid character 'x' after top-level value");
        assert_eq!(
            err("{'a':1}"),
            "invalid character '\\'' looking for beginning of object key string"
        );
        assert_eq!(err("\"a\nb\""), "invalid character '\\n' in string literal");
        assert_eq!(err("tru"), "unexpected end of JSON input");
        assert_eq!(
            err("trux"),
            "invalid character 'x' in literal true (expecting 'e')"
        );
        assert_eq!(err("-x"), "invalid character 'x' in numeric literal");
        assert_eq!(
            err("1.x"),
            "invalid character 'x' after decimal point in numeric literal"
        );
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
        assert_eq!(
            parse(b"\"\xff\"").unwrap(),
            Value::String("\u{fffd}".into())
        );
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_NESTING_DEPTH + 5);
        assert_eq!(parse(deep.as_bytes()).unwrap_err(), SyntaxError::TooDeep);
        let deep_obj = "{\"a\":".repeat(200_000);
        assert!(parse(deep_obj.as_bytes()).is_err());
    }
}
