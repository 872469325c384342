//! Sending one logical request: credentials on the registry's origin only, the challenge
//! answered once, redirects followed by policy, `429`/`5xx` retried with back-off, bodies
//! read within limits.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::error::{Error, PolicyViolation, Result};
use crate::policy::{self, host_label};
use crate::transport::{Request, Response, TransportError, TransportErrorKind};

use super::{
    content_length, error_code, origin, retry_after, Auth, AuthState, Repository, MAX_BACKOFF,
    MAX_ERROR_BODY, MAX_REDIRECTS,
};

impl Repository {
    /// Sends with a timeout on the response headers.
    pub(super) async fn raw_send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let host = host_label(&url);
        let req = Request {
            method,
            url,
            headers,
            body,
        };
        let cfg = &self.client.inner.config;
        match tokio::time::timeout(cfg.request_timeout, self.transport.send(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(Error::Transport { host, source }),
            Err(_) => Err(Error::Transport {
                host,
                source: TransportError::new(TransportErrorKind::Timeout, "no response headers"),
            }),
        }
    }

    /// One logical request: credentials on the registry's origin only, the challenge
    /// answered once, redirects followed by policy, `429`/`5xx` retried with back-off.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        auth: Auth,
    ) -> Result<Response> {
        self.send_body(method, url, headers, auth, None).await
    }

    /// [`send`](Self::send) with a request body (uploads), sent again on each retry.
    pub(super) async fn send_body(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        auth: Auth,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let mut body = body;
        let cfg = &self.client.inner.config;
        let base_origin = origin(&self.base);
        let mut url = url;
        let mut method = method;
        // Once a redirect leaves the registry's origin, credentials are gone for the rest of
        // the chain, even if a later hop comes back (google/go-containerregistry#2337 →
        // #2349/#2360; GHSA-vh4v-2xq2-g5cg; GHSA-qvqc-4c52-x6qp).
        let mut credentials_allowed = auth == Auth::Registry;
        let mut redirects = 0;
        let mut retries = 0;
        // One challenge round for the unauthenticated probe, and one more when a (possibly
        // stale or revoked) cached bearer token was rejected: the token is evicted and fetched
        // anew once. A rejected Basic credential is not re-sent.
        let mut challenged_probe = false;
        let mut challenged_token = false;
        loop {
            let mut h = headers.clone();
            let on_origin = origin(&url) == base_origin;
            if on_origin {
                for (k, v) in &self.extra_headers {
                    h.append(k, v.clone());
                }
            }
            let attach = credentials_allowed && on_origin;
            let mut sent_auth = false;
            if attach {
                if let Some(v) = self.authorization().await? {
                    if url.scheme() != "https" {
                        return Err(
                            self.policy_err(&self.host, PolicyViolation::CredentialsOverPlainHttp)
                        );
                    }
                    h.insert(AUTHORIZATION, v);
                    sent_auth = true;
                }
            }
            let resp = match self
                .raw_send(method.clone(), url.clone(), h, body.clone())
                .await
            {
                Ok(r) => r,
                Err(Error::Transport { source, .. })
                    if retries < cfg.max_retries
                        && matches!(
                            source.kind(),
                            TransportErrorKind::Connect | TransportErrorKind::Timeout
                        ) =>
                {
                    self.backoff(retries, None).await;
                    retries += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status;
            if status == StatusCode::UNAUTHORIZED {
                let bearer = matches!(*self.auth.lock().await, AuthState::Bearer { .. });
                let again = if !sent_auth {
                    !std::mem::replace(&mut challenged_probe, true)
                } else {
                    bearer && !std::mem::replace(&mut challenged_token, true)
                };
                if attach && again {
                    self.handle_challenge(&resp.headers, sent_auth).await?;
                    continue;
                }
                return Err(self.unauthorized(&resp.headers, sent_auth, &url));
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let ra = retry_after(&resp.headers);
                let too_long = ra.is_some_and(|d| d > cfg.max_retry_after);
                if retries < cfg.max_retries && !too_long && status != StatusCode::NOT_IMPLEMENTED {
                    self.backoff(retries, ra).await;
                    retries += 1;
                    continue;
                }
                if status == StatusCode::TOO_MANY_REQUESTS {
                    return Err(Error::RateLimited {
                        host: host_label(&url),
                        retry_after: ra,
                    });
                }
                return Ok(resp);
            }
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Error::Protocol {
                        host: host_label(&url),
                        message: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                let loc = resp
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| Error::Protocol {
                        host: host_label(&url),
                        message: "redirect without a valid location".into(),
                    })?;
                let zone = self.zone().await;
                policy::check_destination(&loc, zone, &*self.client.inner.resolver)
                    .await
                    .map_err(|v| self.policy_err(&host_label(&loc), v))?;
                if origin(&loc) != base_origin {
                    credentials_allowed = false;
                }
                if status.as_u16() == 303 {
                    method = Method::GET;
                    body = None;
                }
                url = loc;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn backoff(&self, attempt: u32, retry_after: Option<Duration>) {
        let cfg = &self.client.inner.config;
        let d = retry_after.unwrap_or_else(|| {
            cfg.retry_base_delay
                .saturating_mul(1u32 << attempt.min(16))
                .min(MAX_BACKOFF)
        });
        tokio::time::sleep(d).await;
    }

    fn unauthorized(&self, headers: &HeaderMap, sent_auth: bool, url: &Url) -> Error {
        let insufficient = self.challenges(headers).ok().is_some_and(|cs| {
            cs.iter()
                .any(|c| c.param("error") == Some("insufficient_scope"))
        });
        if origin(url) != origin(&self.base) {
            // a 401 from a redirect target is never answered with credentials
            // (CVE-2020-15157)
            return Error::Unauthorized {
                host: host_label(url),
                source_label: "none (redirect target)".into(),
            };
        }
        if insufficient || (!sent_auth && self.credential.is_none()) {
            Error::NotFound {
                host: self.host.clone(),
                repository: self.name.clone(),
                source_label: self.source_label(),
            }
        } else {
            Error::Unauthorized {
                host: self.host.clone(),
                source_label: self.source_label(),
            }
        }
    }

    pub(super) async fn status_error(&self, status: StatusCode, resp: Response) -> Error {
        let host = self.host.clone();
        let body = self
            .read_limited(resp, MAX_ERROR_BODY, "error body", &host)
            .await
            .unwrap_or_default();
        Error::Status {
            host,
            status: status.as_u16(),
            code: error_code(&body),
        }
    }

    /// Reads a whole body, refusing more than `limit` bytes (by `Content-Length` before
    /// reading, and by counting while reading).
    pub(super) async fn read_limited(
        &self,
        resp: Response,
        limit: u64,
        what: &'static str,
        host: &str,
    ) -> Result<Bytes> {
        if let Some(cl) = content_length(&resp.headers) {
            if cl > limit {
                return Err(Error::TooLarge { what, limit });
            }
        }
        let stall = self.client.inner.config.stall_timeout;
        let mut body = resp.body;
        let mut buf = BytesMut::new();
        loop {
            let next = tokio::time::timeout(stall, body.next())
                .await
                .map_err(|_| Error::Stalled {
                    host: host.to_string(),
                    timeout: stall,
                })?;
            match next {
                None => break,
                Some(Err(source)) => {
                    return Err(Error::Transport {
                        host: host.to_string(),
                        source,
                    })
                }
                Some(Ok(chunk)) => {
                    if buf.len() as u64 + chunk.len() as u64 > limit {
                        return Err(Error::TooLarge { what, limit });
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(buf.freeze())
    }
}
