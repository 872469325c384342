//! ServiceAccount tokens: bound, expiring JWTs (ES256) signed with `DATA_DIR/pki/sa.key`, as
//! kube-apiserver issues them for `TokenRequest` and checks them on every request.
//!
//! - Claims: k8s.io/kubernetes `pkg/serviceaccount/claims.go` (`Claims`, `privateClaims`): `iss`,
//!   `sub` `system:serviceaccount:<ns>:<name>`, `aud`, `iat`, `nbf`, `exp`, `jti`, and
//!   `kubernetes.io` `{namespace, serviceaccount{name,uid}, pod|secret|node{name,uid}}`.
//! - Header: `pkg/serviceaccount/jwt.go` (`kid` = base64url SHA-256 of the PKIX public key).
//! - The user: k8s.io/apiserver `pkg/authentication/serviceaccount/util.go` (name, groups
//!   `system:serviceaccounts`, `system:serviceaccounts:<ns>`; `system:authenticated` added by
//!   the authenticated-group adder), extra `authentication.kubernetes.io/*`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{json, Value};
use sha2::Digest;

/// The issuer (`--service-account-issuer`, kubeadm's default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Leeway on `nbf`/`exp` (go-jose `DefaultLeeway`).
pub const LEEWAY_SECS: i64 = 60;

/// An authenticated user (`user.Info`).
#[derive(Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the credential id is derived from the token's jti: keep it out of logs
        f.debug_struct("UserInfo")
            .field("name", &self.name)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// Why a token or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the key.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The key is not usable.
    #[error("service account signing key: {0}")]
    Key(String),
}

/// The object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// `Pod`, `Secret` or `Node`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// The claims of a token, as issued or as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// ServiceAccount name.
    pub name: String,
    /// ServiceAccount UID.
    pub uid: String,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// Bound object.
    pub bound: Option<Bound>,
    /// The node a pod-bound token's pod runs on.
    pub node: Option<Bound>,
}

impl Claims {
    /// The user the token stands for.
    pub fn user(&self) -> UserInfo {
        let mut extra = BTreeMap::new();
        for b in self.bound.iter().chain(self.node.iter()) {
            let k = b.kind.to_lowercase();
            extra.insert(
                format!("authentication.kubernetes.io/{k}-name"),
                vec![b.name.clone()],
            );
            extra.insert(
                format!("authentication.kubernetes.io/{k}-uid"),
                vec![b.uid.clone()],
            );
        }
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", self.jti)],
        );
        UserInfo {
            name: format!("system:serviceaccount:{}:{}", self.namespace, self.name),
            uid: self.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", self.namespace),
                "system:authenticated".into(),
            ],
            extra,
        }
    }
}

/// Signs and verifies ServiceAccount tokens.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenIssuer {
    /// Loads `pki_dir/sa.key` (PKCS#8 PEM, ECDSA P-256), generating it on first use.
    pub fn load_or_create(pki_dir: &Path) -> Result<TokenIssuer, TokenError> {
        let p = pki_dir.join("sa.key");
        let pem = match std::fs::read_to_string(&p) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = rcgen::KeyPair::generate().map_err(|e| TokenError::Key(e.to_string()))?;
                let pem = k.serialize_pem();
                crate::pki::write_private(&p, &pem).map_err(|source| TokenError::Io {
                    path: p.clone(),
                    source,
                })?;
                pem
            }
            Err(source) => return Err(TokenError::Io { path: p, source }),
        };
        let kp = rcgen::KeyPair::from_pem(&pem).map_err(|e| TokenError::Key(e.to_string()))?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &kp.serialize_der(),
            &rng,
        )
        .map_err(|e| TokenError::Key(format!("not an ECDSA P-256 key: {e}")))?;
        Ok(TokenIssuer {
            key,
            kid: b64(&sha2::Sha256::digest(&spki)),
        })
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Issues a token for `c`.
    pub fn issue(&self, c: &Claims) -> Result<String, TokenError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let mut k8s = json!({
            "namespace": c.namespace,
            "serviceaccount": {"name": c.name, "uid": c.uid},
        });
        for b in c.bound.iter().chain(c.node.iter()) {
            k8s[b.kind.to_lowercase()] = json!({"name": b.name, "uid": b.uid});
        }
        let claims = json!({
            "aud": c.audiences,
            "exp": c.exp,
            "iat": c.iat,
            "iss": ISSUER,
            "jti": c.jti,
            "kubernetes.io": k8s,
            "nbf": c.iat,
            "sub": format!("system:serviceaccount:{}:{}", c.namespace, c.name),
        });
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap_or_default()),
            b64(&serde_json::to_vec(&claims).unwrap_or_default())
        );
        let rng = ring::rand::SystemRandom::new();
        let sig = self
            .key
            .sign(&rng, input.as_bytes())
            .map_err(|_| TokenError::Key("signing failed".into()))?;
        Ok(format!("{input}.{}", b64(sig.as_ref())))
    }

    /// Verifies a token's signature, issuer, audience and times; the objects it names are
    /// checked by the caller. `None` for anything that is not a valid token of this issuer.
    pub fn verify(&self, token: &str, audiences: &[&str], now: i64) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let dec = |x: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(x)
                .ok()
        };
        let header: Value = serde_json::from_slice(&dec(h)?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" || header.get("kid")?.as_str()? != self.kid {
            return None;
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(format!("{h}.{p}").as_bytes(), &dec(s)?)
            .ok()?;
        let c: Value = serde_json::from_slice(&dec(p)?).ok()?;
        if c.get("iss")?.as_str()? != ISSUER {
            return None;
        }
        let aud: Vec<String> = match c.get("aud")? {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => return None,
        };
        if !aud.iter().any(|a| audiences.contains(&a.as_str())) {
            return None;
        }
        let exp = c.get("exp")?.as_i64()?;
        let nbf = c.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if now > exp + LEEWAY_SECS || now + LEEWAY_SECS < nbf {
            return None;
        }
        let k = c.get("kubernetes.io")?;
        let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        let bound_of = |kind: &str| {
            let key = kind.to_lowercase();
            k.get(&key).map(|b| Bound {
                kind: kind.to_string(),
                name: s(b, "/name").unwrap_or_default(),
                uid: s(b, "/uid").unwrap_or_default(),
            })
        };
        let pod = bound_of("Pod");
        let secret = bound_of("Secret");
        let node = bound_of("Node");
        let (bound, node) = match (pod, secret, node) {
            (Some(p), None, n) => (Some(p), n),
            (None, Some(s), None) => (Some(s), None),
            (None, None, n) => (n, None),
            _ => return None,
        };
        Some(Claims {
            namespace: s(k, "/namespace")?,
            name: s(k, "/serviceaccount/name")?,
            uid: s(k, "/serviceaccount/uid")?,
            audiences: aud,
            iat: c.get("iat").and_then(Value::as_i64).unwrap_or(0),
            exp,
            jti: s(&c, "/jti").unwrap_or_default(),
            bound,
            node,
        })
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            namespace: "ns".into(),
            name: "sa".into(),
            uid: "u1".into(),
            audiences: vec![ISSUER.into()],
            iat: 1000,
            exp,
            jti: "j".into(),
            bound: Some(Bound {
                kind: "Pod".into(),
                name: "p".into(),
                uid: "pu".into(),
            }),
            node: None,
        }
    }

    #[test]
    fn issue_and_verify() {
        let d = tempfile::tempdir().unwrap();
        let iss = TokenIssuer::load_or_create(d.path()).unwrap();
        let t = iss.issue(&claims(5000)).unwrap();
        assert!(looks_like_jwt(&t));
        let c = iss.verify(&t, &[ISSUER], 2000).unwrap();
        assert_eq!(c, claims(5000));
        assert_eq!(c.user().name, "system:serviceaccount:ns:sa");
        assert_eq!(
            c.user().groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        // expired (past the leeway), wrong audience, tampered, another key
        assert!(iss.verify(&t, &[ISSUER], 5000 + LEEWAY_SECS + 1).is_none());
        assert!(iss.verify(&t, &["other"], 2000).is_none());
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let forged = serde_json::to_vec(&json!({"iss": ISSUER, "aud": [ISSUER], "exp": 99999, "kubernetes.io": {"namespace": "kube-system", "serviceaccount": {"name": "x", "uid": "y"}}})).unwrap();
        parts[1] = b64(&forged);
        assert!(iss.verify(&parts.join("."), &[ISSUER], 2000).is_none());
        let d2 = tempfile::tempdir().unwrap();
        let other = TokenIssuer::load_or_create(d2.path()).unwrap();
        assert!(other.verify(&t, &[ISSUER], 2000).is_none());
        // the same key is reused
        let again = TokenIssuer::load_or_create(d.path()).unwrap();
        assert_eq!(again.kid(), iss.kid());
        assert!(format!("{iss:?}").contains(iss.kid()));
    }
}
