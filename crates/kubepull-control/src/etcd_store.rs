//! The etcd datastore (`--datastore etcd://h1:2379,h2:2379`), over etcd's v3 JSON gateway
//! (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`; keys and values base64), so no protobuf code
//! generation is needed. The object's resourceVersion is the etcd revision, writes are
//! compare-and-swap transactions on `mod_revision`, and watches are etcd watches, so several
//! `kubepull server` processes can share one etcd cluster. Endpoints are tried in order; a
//! connection failure moves to the next one, and when none answers the store is `Unavailable`.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::StreamExt;
use kubepull_datastore::{Datastore, Error, Event, KeyValue, ListResult, Result, Revision, Watch};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Per-request timeout (etcd answers in milliseconds; a stuck member should not hang the API).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Events buffered per watcher.
pub const WATCH_BUFFER: usize = 4_096;
/// The largest gateway response read for one watch message.
pub const MAX_WATCH_MESSAGE: usize = 64 << 20;

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of the key range holding every key with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn kv_of(v: &Value) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(&unb64(&v["key"])).into_owned(),
        value: unb64(&v["value"]),
        create_revision: num(&v["create_revision"]),
        mod_revision: num(&v["mod_revision"]),
    }
}

/// The etcd-backed store.
pub struct EtcdStore {
    endpoints: Vec<String>,
    http: reqwest::Client,
}

impl EtcdStore {
    /// Connects to `etcd://h1:2379,h2:2379` (or a list of `http://` endpoints); checks that one
    /// answers.
    pub async fn connect(spec: &str) -> Result<EtcdStore> {
        let list = spec.strip_prefix("etcd://").unwrap_or(spec);
        let endpoints: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.starts_with("http://") || s.starts_with("https://") {
                    s.trim_end_matches('/').to_string()
                } else {
                    format!("http://{s}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(Error::Backend {
                message: "--datastore etcd:// needs at least one host:port".into(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Backend {
                message: e.to_string(),
            })?;
        let s = EtcdStore { endpoints, http };
        s.current_revision().await?;
        Ok(s)
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let mut last = String::new();
        for ep in &self.endpoints {
            match self
                .http
                .post(format!("{ep}{path}"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default())
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status();
                    let bytes = match r.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            last = format!("{ep}: {e}");
                            continue;
                        }
                    };
                    let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Backend {
                        message: format!("{ep}{path}: {e}"),
                    })?;
                    if !status.is_success() {
                        let msg = v["error"]
                            .as_str()
                            .or(v["message"].as_str())
                            .unwrap_or("")
                            .to_string();
                        if msg.contains("compacted") {
                            return Err(Error::Compacted {
                                requested: 0,
                                oldest: 0,
                            });
                        }
                        // no leader / not ready: try the next member
                        last = format!("{ep}: {status} {msg}");
                        continue;
                    }
                    return Ok(v);
                }
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        Err(Error::Unavailable { message: last })
    }

    async fn get_kv(&self, key: &str) -> Result<Option<KeyValue>> {
        let v = self
            .call("/v3/kv/range", json!({"key": b64(key.as_bytes())}))
            .await?;
        Ok(v["kvs"].as_array().and_then(|a| a.first()).map(kv_of))
    }
}

#[async_trait]
impl Datastore for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({"key": b64(b"/"), "count_only": true}),
            )
            .await?;
        Ok(num(&v["header"]["revision"]))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.get_kv(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult> {
        let start = match start_after {
            Some(s) => {
                let mut k = s.as_bytes().to_vec();
                k.push(0);
                k
            }
            None => prefix.as_bytes().to_vec(),
        };
        let mut req = json!({
            "key": b64(&start),
            "range_end": b64(&prefix_end(prefix.as_bytes())),
            "limit": limit,
        });
        if let Some(r) = at_revision {
            req["revision"] = json!(r.to_string());
        }
        let v = match self.call("/v3/kv/range", req).await {
            Err(Error::Compacted { .. }) => {
                return Err(Error::Compacted {
                    requested: at_revision.unwrap_or(0),
                    oldest: 0,
                })
            }
            other => other?,
        };
        Ok(ListResult {
            items: v["kvs"]
                .as_array()
                .map(|a| a.iter().map(kv_of).collect())
                .unwrap_or_default(),
            revision: at_revision.unwrap_or_else(|| num(&v["header"]["revision"])),
            more: v["more"].as_bool().unwrap_or(false),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let k = b64(key.as_bytes());
        let v = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                    "success": [{"request_put": {"key": k, "value": b64(&value)}}],
                }),
            )
            .await?;
        if v["succeeded"].as_bool() != Some(true) {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        Ok(num(&v["header"]["revision"]))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let k = b64(key.as_bytes());
        let v = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expected.to_string()}],
                    "success": [{"request_put": {"key": k, "value": b64(&value)}}],
                    "failure": [{"request_range": {"key": k}}],
                }),
            )
            .await?;
        if v["succeeded"].as_bool() == Some(true) {
            return Ok(num(&v["header"]["revision"]));
        }
        let cur = v["responses"][0]["response_range"]["kvs"]
            .as_array()
            .and_then(|a| a.first())
            .map(kv_of);
        match cur {
            None => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Some(c) => Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: c.mod_revision,
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let k = b64(key.as_bytes());
        let compare = match expected {
            Some(e) => {
                json!([{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": e.to_string()}])
            }
            // the key must exist
            None => {
                json!([{"key": k, "target": "CREATE", "result": "GREATER", "create_revision": "0"}])
            }
        };
        let v = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": compare,
                    "success": [{"request_delete_range": {"key": k, "prev_kv": true}}],
                    "failure": [{"request_range": {"key": k}}],
                }),
            )
            .await?;
        if v["succeeded"].as_bool() == Some(true) {
            let prev = v["responses"][0]["response_delete_range"]["prev_kvs"]
                .as_array()
                .and_then(|a| a.first())
                .map(kv_of)
                .ok_or_else(|| Error::NotFound {
                    key: key.to_string(),
                })?;
            return Ok((num(&v["header"]["revision"]), prev));
        }
        let cur = v["responses"][0]["response_range"]["kvs"]
            .as_array()
            .and_then(|a| a.first())
            .map(kv_of);
        match (cur, expected) {
            (None, _) => Err(Error::NotFound {
                key: key.to_string(),
            }),
            (Some(c), Some(e)) => Err(Error::Conflict {
                key: key.to_string(),
                expected: e,
                actual: c.mod_revision,
            }),
            (Some(_), None) => Err(Error::Backend {
                message: format!("delete of {key:?} failed"),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let body = json!({"create_request": {
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&prefix_end(prefix.as_bytes())),
            "start_revision": (after + 1).to_string(),
            "prev_kv": true,
        }});
        let mut last = String::new();
        let mut resp = None;
        for ep in &self.endpoints {
            // no overall timeout on the stream: it lives as long as the watch
            let client = reqwest::Client::new();
            match client
                .post(format!("{ep}/v3/watch"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default())
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    resp = Some(r);
                    break;
                }
                Ok(r) => last = format!("{ep}: {}", r.status()),
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        let resp = resp.ok_or(Error::Unavailable { message: last })?;
        let mut stream = resp.bytes_stream();
        // the first message confirms creation, or reports compaction
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let mut buf: Vec<u8> = Vec::new();
        let first = loop {
            if let Some(msg) = next_message(&mut buf) {
                break msg;
            }
            match stream.next().await {
                Some(Ok(b)) => buf.extend_from_slice(&b),
                _ => {
                    return Err(Error::Unavailable {
                        message: "watch stream closed".into(),
                    })
                }
            }
        };
        let compact = num(&first["result"]["compact_revision"]);
        if compact > 0 {
            return Err(Error::Compacted {
                requested: after,
                oldest: compact,
            });
        }
        let mut pending = vec![first];
        tokio::spawn(async move {
            loop {
                for msg in pending.drain(..) {
                    let r = &msg["result"];
                    if num(&r["compact_revision"]) > 0 {
                        let _ = tx
                            .send(Err(Error::Compacted {
                                requested: after,
                                oldest: num(&r["compact_revision"]),
                            }))
                            .await;
                        return;
                    }
                    for e in r["events"].as_array().into_iter().flatten() {
                        let kv = kv_of(&e["kv"]);
                        let prev = e.get("prev_kv").filter(|p| p.is_object()).map(kv_of);
                        let ev = if e["type"].as_str() == Some("DELETE") {
                            match prev {
                                Some(p) => Event::Delete {
                                    revision: kv.mod_revision,
                                    prev: p,
                                },
                                None => Event::Delete {
                                    revision: kv.mod_revision,
                                    prev: kv,
                                },
                            }
                        } else {
                            Event::Put { kv, prev }
                        };
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                }
                match next_message(&mut buf) {
                    Some(m) => pending.push(m),
                    None => match stream.next().await {
                        Some(Ok(b)) => {
                            if buf.len() > MAX_WATCH_MESSAGE {
                                return;
                            }
                            buf.extend_from_slice(&b)
                        }
                        _ => return, // the stream ended: the consumer re-lists
                    },
                }
            }
        });
        Ok(Watch { events: rx })
    }
}

/// Takes one complete JSON object off the front of `buf` (the gateway writes one per message).
fn next_message(buf: &mut Vec<u8>) -> Option<Value> {
    let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut de = serde_json::Deserializer::from_slice(&buf[start..]).into_iter::<Value>();
    match de.next() {
        Some(Ok(v)) => {
            let used = start + de.byte_offset();
            buf.drain(..used);
            Some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(&[0x61, 0xff]), vec![0x62]);
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn messages_split() {
        let mut b = br#"{"result":{"a":1}}
{"result":{"b":2}}{"res"#
            .to_vec();
        assert_eq!(next_message(&mut b).unwrap()["result"]["a"], 1);
        assert_eq!(next_message(&mut b).unwrap()["result"]["b"], 2);
        assert!(next_message(&mut b).is_none());
        assert_eq!(b, br#"{"res"#.to_vec());
    }
}
