//! Authentication of a repository handle: challenges, Basic, the Docker token flow (Bearer)
//! and the token cache.

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::auth::{parse_token_response, MAX_TOKEN_RESPONSE, OAUTH_CLIENT_ID};
use crate::challenge::{parse_challenges, Challenge, Scheme};
use crate::error::{Error, PolicyViolation, Result};
use crate::policy::{self, host_label};

use super::{retry_after, sensitive, AuthState, Repository};

impl Repository {
    pub(super) fn challenges(&self, headers: &HeaderMap) -> Result<Vec<Challenge>> {
        let mut out = Vec::new();
        for v in headers.get_all(http::header::WWW_AUTHENTICATE) {
            let s = v.to_str().map_err(|_| Error::Challenge {
                host: self.host.clone(),
                source: crate::challenge::ChallengeError::NotAscii,
            })?;
            out.extend(parse_challenges(s).map_err(|source| Error::Challenge {
                host: self.host.clone(),
                source,
            })?);
        }
        Ok(out)
    }

    /// The `Authorization` value for the registry, fetching a token if needed.
    pub(super) async fn authorization(&self) -> Result<Option<HeaderValue>> {
        let state = self.auth.lock().await.clone();
        let v = match state {
            AuthState::Unknown => return Ok(None),
            AuthState::Basic => match self.credential.as_ref().and_then(|c| c.basic_header()) {
                Some(v) => v,
                None => return Ok(None),
            },
            AuthState::Bearer { realm, service } => {
                let key = self.token_key();
                let tok = match self.client.inner.tokens.get(&key) {
                    Some(t) => t,
                    None => {
                        // single-flight: one fetch per key, the others wait and re-check
                        let tokens = &self.client.inner.tokens;
                        let flight = tokens.flight(&key);
                        let _guard = flight.lock().await;
                        match tokens.get(&key) {
                            Some(t) => t,
                            None => {
                                let t = self.fetch_token(&realm, service.as_deref()).await?;
                                tokens.insert(key, t.token.clone(), t.lifetime);
                                t.token
                            }
                        }
                    }
                };
                format!("Bearer {}", tok.expose())
            }
        };
        sensitive(&v).map(Some).map_err(|_| Error::Protocol {
            host: self.host.clone(),
            message: "credential cannot form an authorization header".into(),
        })
    }

    /// Reacts to a `401` from the registry: picks the challenge and checks its realm.
    ///
    /// A cached token is dropped only when the failed request carried it (`sent_auth`): a
    /// fresh handle's first, unauthenticated request must not evict a good token.
    pub(super) async fn handle_challenge(
        &self,
        headers: &HeaderMap,
        sent_auth: bool,
    ) -> Result<()> {
        let cs = self.challenges(headers)?;
        // containerd auth/parse.go, byScheme: bearer before basic
        if let Some(c) = cs.iter().find(|c| c.scheme == Scheme::Bearer) {
            let realm = c.param("realm").ok_or_else(|| Error::Protocol {
                host: self.host.clone(),
                message: "bearer challenge without realm".into(),
            })?;
            let realm = Url::parse(realm).map_err(|_| Error::Protocol {
                host: self.host.clone(),
                message: "bearer challenge realm is not a url".into(),
            })?;
            let zone = self.zone().await;
            policy::check_realm(&self.base, &realm, zone, &*self.client.inner.resolver)
                .await
                .map_err(|v| self.policy_err(&host_label(&realm), v))?;
            if sent_auth {
                self.client.inner.tokens.remove(&self.token_key());
            }
            *self.auth.lock().await = AuthState::Bearer {
                service: c.param("service").map(str::to_string),
                realm,
            };
            return Ok(());
        }
        if cs.iter().any(|c| c.scheme == Scheme::Basic) {
            match &self.credential {
                Some(c) if c.basic_header().is_some() => {
                    if self.base.scheme() != "https" {
                        return Err(
                            self.policy_err(&self.host, PolicyViolation::CredentialsOverPlainHttp)
                        );
                    }
                    *self.auth.lock().await = AuthState::Basic;
                    return Ok(());
                }
                _ => {
                    return Err(Error::Unauthorized {
                        host: self.host.clone(),
                        source_label: self.source_label(),
                    })
                }
            }
        }
        Err(Error::Protocol {
            host: self.host.clone(),
            message: "401 without a supported basic or bearer challenge".into(),
        })
    }

    /// The Docker token flow against a checked realm.
    async fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
    ) -> Result<crate::auth::TokenResponse> {
        let realm_host = host_label(realm);
        let scope = format!("repository:{}:{}", self.name, self.actions());
        let cred = self.credential.as_ref();
        let sends_secret =
            cred.is_some_and(|c| c.basic_header().is_some() || c.refresh_token().is_some());
        if sends_secret && (realm.scheme() != "https" || self.base.scheme() != "https") {
            return Err(self.policy_err(&realm_host, PolicyViolation::CredentialsOverPlainHttp));
        }
        let mut headers = HeaderMap::new();
        let (method, url, body) = if let Some(rt) = cred.and_then(|c| c.refresh_token()) {
            // distribution session.go, fetchTokenWithOAuth: refresh_token grant
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", rt);
            form.append_pair("client_id", OAUTH_CLIENT_ID);
            if let Some(s) = service {
                form.append_pair("service", s);
            }
            form.append_pair("scope", &scope);
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
            );
            (
                Method::POST,
                realm.clone(),
                Some(Bytes::from(form.finish())),
            )
        } else {
            // distribution session.go, fetchTokenWithBasicAuth; containerd auth/fetch.go,
            // FetchToken: GET with service and scope, Basic when there is a secret
            let mut u = realm.clone();
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                q.append_pair("scope", &scope);
            }
            if let Some(b) = cred.and_then(|c| c.basic_header()) {
                let v = sensitive(&b).map_err(|_| Error::Protocol {
                    host: self.host.clone(),
                    message: "credential cannot form an authorization header".into(),
                })?;
                headers.insert(AUTHORIZATION, v);
            }
            (Method::GET, u, None)
        };
        let resp = self.raw_send(method, url, headers, body).await?;
        let status = resp.status;
        if status.is_redirection() {
            return Err(self.policy_err(&realm_host, PolicyViolation::TokenRedirect));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                host: realm_host,
                source_label: self.source_label(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::RateLimited {
                host: realm_host,
                retry_after: retry_after(&resp.headers),
            });
        }
        if !status.is_success() {
            return Err(self.status_error(status, resp).await);
        }
        let body = self
            .read_limited(resp, MAX_TOKEN_RESPONSE, "token response", &realm_host)
            .await?;
        parse_token_response(&body).map_err(|e| Error::TokenResponse {
            host: realm_host,
            reason: match e {
                crate::auth::TokenResponseError::Json => "not valid json",
                crate::auth::TokenResponseError::NoToken => "no token in response",
                crate::auth::TokenResponseError::BadToken => "token is not a valid header value",
            },
        })
    }
}
