//! `WWW-Authenticate` parsing (RFC 7235 §2.1, §4.1).
//!
//! Ported in spirit from containerd `core/remotes/docker/auth/parse.go` (`ParseAuthHeader`,
//! `parseValueAndParams`, `expectTokenOrQuoted`) and distribution
//! `registry/client/auth/challenge/authchallenge.go` (`parseValueAndParams`), with two
//! differences: one header value may hold several challenges (`Basic realm="a", Bearer
//! realm="b"`), as RFC 7235 allows and both upstreams ignore, and malformed input is an error
//! instead of a silently truncated parameter map (an unterminated quote upstream yields an empty
//! value, which would send us to an empty realm). Scheme and parameter names compare
//! case-insensitively and are stored lowercase; values keep their case. A repeated parameter is
//! an error: two `realm`s would be ambiguous, and ambiguity about where credentials go is how
//! realm confusion starts.
//!
//! ```
//! use kubepull_registry::challenge::{parse_challenges, Scheme};
//! let c = parse_challenges(r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a,b:pull""#).unwrap();
//! assert_eq!(c[0].scheme, Scheme::Bearer);
//! assert_eq!(c[0].param("scope"), Some("repository:a,b:pull"));
//! ```

/// Longest `WWW-Authenticate` value we parse; real ones are a few hundred bytes.
pub const MAX_CHALLENGE_LEN: usize = 16 * 1024;

/// An authentication scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Basic` (RFC 7617).
    Basic,
    /// `Bearer` (RFC 6750, the Docker token flow).
    Bearer,
    /// Anything else, lowercased.
    Other(String),
}

/// One challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// Parameters in order, names lowercased.
    pub params: Vec<(String, String)>,
    /// A token68 instead of parameters (`Negotiate abc==`), if any.
    pub token68: Option<String>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A malformed challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Longer than [`MAX_CHALLENGE_LEN`].
    #[error("challenge longer than {MAX_CHALLENGE_LEN} bytes")]
    TooLong,
    /// No scheme where one was expected.
    #[error("expected an auth scheme at byte {0}")]
    ExpectedScheme(usize),
    /// A parameter without `=value`.
    #[error("expected '=' after parameter name at byte {0}")]
    ExpectedEquals(usize),
    /// A parameter without a value.
    #[error("expected a parameter value at byte {0}")]
    ExpectedValue(usize),
    /// A quoted string without its closing quote.
    #[error("unterminated quoted string at byte {0}")]
    UnterminatedQuote(usize),
    /// Junk after a parameter.
    #[error("unexpected character at byte {0}")]
    Unexpected(usize),
    /// A parameter given twice in one challenge.
    #[error("parameter {0:?} given twice")]
    DuplicateParam(String),
    /// Not valid UTF-8 / visible ASCII.
    #[error("challenge is not visible ascii")]
    NotAscii,
}

// RFC 7230 §3.2.6 tchar
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> &str {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchar is ASCII
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }
    /// At a comma list boundary: skips any number of `,` and whitespace.
    fn skip_list_separators(&mut self) {
        while self.peek().is_some_and(|b| b == b',' || is_ws(b)) {
            self.i += 1;
        }
    }
    /// Whether the cursor is at `token BWS "="` but not at a token68 ending in `=`.
    fn at_param(&self) -> bool {
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == self.i {
            return false;
        }
        while self.s.get(j).copied().is_some_and(is_ws) {
            j += 1;
        }
        if self.s.get(j) != Some(&b'=') {
            return false;
        }
        // `abc==` or `abc=` followed by end/comma is token68, unless a value follows.
        j += 1;
        while self.s.get(j).copied().is_some_and(is_ws) {
            j += 1;
        }
        !matches!(self.s.get(j), None | Some(b',') | Some(b'='))
    }
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let start = self.i;
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeError::UnterminatedQuote(start)),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    self.i += 1;
                    match self.peek() {
                        None => return Err(ChallengeError::UnterminatedQuote(start)),
                        Some(b) => {
                            out.push(b);
                            self.i += 1;
                        }
                    }
                }
                Some(b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| ChallengeError::NotAscii)
    }
}

/// Parses one `WWW-Authenticate` header value into its challenges, in order.
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge>, ChallengeError> {
    if value.len() > MAX_CHALLENGE_LEN {
        return Err(ChallengeError::TooLong);
    }
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(ChallengeError::NotAscii);
    }
    let mut c = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        c.skip_list_separators();
        if c.peek().is_none() {
            break;
        }
        let at = c.i;
        let scheme = c.token().to_ascii_lowercase();
        if scheme.is_empty() {
            return Err(ChallengeError::ExpectedScheme(at));
        }
        let scheme = match scheme.as_str() {
            "basic" => Scheme::Basic,
            "bearer" => Scheme::Bearer,
            _ => Scheme::Other(scheme),
        };
        let mut ch = Challenge {
            scheme,
            params: vec![],
            token68: None,
        };
        let had_space = c.peek().is_some_and(is_ws);
        c.skip_ws();
        if had_space && !c.at_param() && c.peek().is_some_and(is_token68_char) {
            // token68
            let start = c.i;
            while c.peek().is_some_and(is_token68_char) {
                c.i += 1;
            }
            while c.peek() == Some(b'=') {
                c.i += 1;
            }
            ch.token68 = Some(value[start..c.i].to_string());
            c.skip_ws();
            match c.peek() {
                None | Some(b',') => {}
                Some(_) => return Err(ChallengeError::Unexpected(c.i)),
            }
            out.push(ch);
            continue;
        }
        // auth-params
        while had_space && c.at_param() {
            let name = c.token().to_ascii_lowercase();
            c.skip_ws();
            if c.peek() != Some(b'=') {
                return Err(ChallengeError::ExpectedEquals(c.i));
            }
            c.i += 1;
            c.skip_ws();
            let v = match c.peek() {
                Some(b'"') => c.quoted()?,
                Some(b) if is_tchar(b) => c.token().to_string(),
                _ => return Err(ChallengeError::ExpectedValue(c.i)),
            };
            if ch.params.iter().any(|(k, _)| *k == name) {
                return Err(ChallengeError::DuplicateParam(name));
            }
            ch.params.push((name, v));
            c.skip_ws();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.skip_list_separators();
                    // the next item is either another param or the next challenge's scheme
                }
                Some(_) => return Err(ChallengeError::Unexpected(c.i)),
            }
        }
        if !had_space {
            match c.peek() {
                None | Some(b',') => {}
                Some(_) => return Err(ChallengeError::Unexpected(c.i)),
            }
        }
        out.push(ch);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("SERVICE"), Some("registry.docker.io"));
    }

    #[test]
    fn several_challenges_in_one_value() {
        let c = parse_challenges(
            r#"Basic realm="basic, with comma", Bearer realm="https://a/t",scope="repository:x:pull,push", Negotiate abc==, NTLM"#,
        )
        .unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].scheme, Scheme::Basic);
        assert_eq!(c[0].param("realm"), Some("basic, with comma"));
        assert_eq!(c[1].scheme, Scheme::Bearer);
        assert_eq!(c[1].param("scope"), Some("repository:x:pull,push"));
        assert_eq!(c[2].token68.as_deref(), Some("abc=="));
        assert_eq!(c[3].scheme, Scheme::Other("ntlm".into()));
    }

    #[test]
    fn case_and_escapes_and_tokens() {
        let c = parse_challenges(r#"bEaReR ReAlM = "https://a/t\"q\\" , error=insufficient_scope"#)
            .unwrap();
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(c[0].param("realm"), Some(r#"https://a/t"q\"#));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse_challenges(r#"Bearer realm="https://a/t"#),
            Err(ChallengeError::UnterminatedQuote(13))
        );
        assert!(matches!(
            parse_challenges(r#"Bearer realm="a" service="b""#),
            Err(ChallengeError::Unexpected(_))
        ));
        assert!(matches!(
            parse_challenges(r#"Bearer realm="a",realm="b""#),
            Err(ChallengeError::DuplicateParam(_))
        ));
        assert!(matches!(
            parse_challenges(r#"="x""#),
            Err(ChallengeError::ExpectedScheme(0))
        ));
        assert!(parse_challenges("Bearer realm=\"a\r\nX: y\"").is_err());
        assert!(parse_challenges(&"a".repeat(MAX_CHALLENGE_LEN + 1)).is_err());
    }

    #[test]
    fn empty_and_bare() {
        assert_eq!(parse_challenges("").unwrap(), vec![]);
        let c = parse_challenges("Basic").unwrap();
        assert_eq!(c[0].scheme, Scheme::Basic);
        assert!(c[0].params.is_empty());
    }

    #[test]
    fn never_panics_on_prefixes() {
        let s = r#"Basic realm="x\"y", Bearer realm="https://a/t",service=s,scope="a b", X y=="#;
        for i in 0..=s.len() {
            let _ = parse_challenges(&s[..i]);
        }
    }
}
