//! OpenAPI v2 (`/openapi/v2`, JSON or gnostic protobuf) and v3 (`/openapi/v3` discovery and one
//! document per group version) for every served kind, as kube-apiserver serves them through
//! kube-openapi (`pkg/handler/handler.go`, `pkg/handler3/handler.go`).
//!
//! The schemas are upstream's: `openapi/kubernetes.json.gz` is built from kubernetes
//! `api/openapi-spec/swagger.json` by `openapi/vendor.py` (see `openapi/NOTICE`), with
//! descriptions and the `x-kubernetes-*` extensions (group-version-kind on schemas and
//! operations, list types and map keys, patch strategies and merge keys) that `kubectl explain`,
//! kubectl's `fieldValidation` detection, its client-side validation and `kubectl apply`'s patch
//! computation read. Each document holds the paths of the served [`Resource`]s and the
//! definitions they reach.
//!
//! Kinds registered at runtime (custom resources) are added with
//! [`Registry::set_group_version`] and dropped with [`Registry::remove_group_version`]; the
//! documents, and with them the `?hash=` of their URLs, are rebuilt then.

mod gnostic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use prost::Message;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::resources::{self, Resource};

/// The vendored upstream data.
static DATA: &[u8] = include_bytes!("../openapi/kubernetes.json.gz");

/// The version string in the documents' `info` (the server's `gitVersion`).
pub const INFO_VERSION: &str = "v1.32.0-kubepull";

/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, which client-go asks for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The media type of protobuf answers (kube-openapi `handler.go` `subTypeProtobuf`).
pub const V2_PROTOBUF_RESPONSE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Why the vendored data cannot be read (only a corrupt build could cause this).
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// Not gzip, or not JSON inside.
    #[error("the built-in OpenAPI data is unreadable: {0}")]
    Data(String),
    /// A custom kind's schema is not a JSON object.
    #[error("the OpenAPI schema of {kind} must be a JSON object (openAPIV3Schema)")]
    Schema {
        /// The kind.
        kind: String,
    },
}

struct Vendored {
    v2_paths: Map<String, Value>,
    v2_definitions: &'static Map<String, Value>,
    v2_parameters: Map<String, Value>,
    v3_paths: Map<String, Value>,
    v3_schemas: Map<String, Value>,
}

/// The built-in OpenAPI v2 definitions, read once per process and shared with the served
/// documents: the type information of writes needs them alone, so a write keeps only these
/// (the rest of the data is read, and kept, by the first request for the documents).
static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();

/// The vendored data, decompressed and parsed.
fn vendored_json() -> Result<Value, OpenApiError> {
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(DATA)
        .read_to_end(&mut raw)
        .map_err(|e| OpenApiError::Data(e.to_string()))?;
    serde_json::from_slice(&raw).map_err(|e| OpenApiError::Data(e.to_string()))
}

/// Only `/v2/definitions` of the vendored data: the rest (the v2 paths, the v3 documents) is
/// skipped while parsing, not built and dropped, so a server that never serves the documents
/// does not keep the heap the whole data took (its idle RSS: the API benchmark).
fn vendored_definitions() -> Result<Map<String, Value>, OpenApiError> {
    use std::io::Read;
    #[derive(serde::Deserialize)]
    struct Doc {
        v2: V2,
    }
    #[derive(serde::Deserialize)]
    struct V2 {
        definitions: Map<String, Value>,
    }
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(DATA)
        .read_to_end(&mut raw)
        .map_err(|e| OpenApiError::Data(e.to_string()))?;
    serde_json::from_slice::<Doc>(&raw)
        .map(|d| d.v2.definitions)
        .map_err(|e| OpenApiError::Data(e.to_string()))
}

fn take(v: &mut Value, p: &str) -> Result<Map<String, Value>, OpenApiError> {
    match v.pointer_mut(p).map(Value::take) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(OpenApiError::Data(format!("{p} is missing"))),
    }
}

/// The built-in OpenAPI v2 definitions (`io.k8s.api.core.v1.Pod`, …), with their
/// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type` and patch
/// extensions.
pub fn builtin_definitions() -> &'static Map<String, Value> {
    DEFINITIONS.get_or_init(|| {
        vendored_definitions().unwrap_or_else(|e| {
            tracing::error!("{e}");
            Map::new()
        })
    })
}

impl Default for Vendored {
    fn default() -> Vendored {
        Vendored {
            v2_paths: Map::new(),
            v2_definitions: builtin_definitions(),
            v2_parameters: Map::new(),
            v3_paths: Map::new(),
            v3_schemas: Map::new(),
        }
    }
}

impl Vendored {
    fn load() -> Result<Vendored, OpenApiError> {
        let mut v = vendored_json()?;
        let definitions = take(&mut v, "/v2/definitions")?;
        Ok(Vendored {
            v2_paths: take(&mut v, "/v2/paths")?,
            v2_definitions: DEFINITIONS.get_or_init(|| definitions),
            v2_parameters: take(&mut v, "/v2/parameters")?,
            v3_paths: take(&mut v, "/v3/paths")?,
            v3_schemas: take(&mut v, "/v3/schemas")?,
        })
    }
}

/// One custom kind of a group version registered at runtime (a CustomResourceDefinition's
/// served version).
#[derive(Debug, Clone)]
pub struct CustomKind {
    /// Kind (`CronTab`).
    pub kind: String,
    /// List kind (`CronTabList`).
    pub list_kind: String,
    /// Plural (`crontabs`).
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// The version's `openAPIV3Schema` (structural).
    pub schema: Value,
    /// Whether the `status` subresource is served.
    pub status: bool,
    /// Whether the `scale` subresource is served.
    pub scale: bool,
    /// The version's selectable fields (each `jsonPath` without its leading dot).
    pub selectable_fields: Vec<String>,
}

impl CustomKind {
    /// A kind whose list kind is `<kind>List` (the CustomResourceDefinition default,
    /// apiextensions-apiserver `SetDefaults_CustomResourceDefinitionSpec`).
    pub fn new(kind: &str, plural: &str, namespaced: bool, schema: Value) -> CustomKind {
        CustomKind {
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            namespaced,
            schema,
            status: false,
            scale: false,
            selectable_fields: vec![],
        }
    }
}

/// Paths and definitions of one runtime group version, in both flavours.
#[derive(Default, Clone)]
struct Custom {
    v2_paths: Map<String, Value>,
    v2_definitions: Map<String, Value>,
    v3_paths: Map<String, Value>,
    v3_schemas: Map<String, Value>,
}

/// A built document with its hash.
struct Doc {
    json: Arc<Vec<u8>>,
    /// Uppercase hex SHA-512 of `json` (kube-openapi `handler3.computeETag`).
    hash: String,
}

struct V2 {
    json: Arc<Vec<u8>>,
    proto: Arc<Vec<u8>>,
    etag: String,
}

#[derive(Default)]
struct Built {
    /// Whether `v3` holds the current documents.
    ready: bool,
    /// `api/v1`, `apis/apps/v1`, … → document.
    v3: BTreeMap<String, Arc<Doc>>,
    v2: Option<Arc<V2>>,
}

/// The built-in data and the built-in group versions' v3 documents, built once.
struct Builtin {
    vendored: Vendored,
    v3: BTreeMap<String, Arc<Doc>>,
}

impl Builtin {
    fn load() -> Builtin {
        let vendored = Vendored::load().unwrap_or_else(|e| {
            tracing::error!("{e}");
            Vendored::default()
        });
        let mut v3 = BTreeMap::new();
        // built-in group versions, narrowed to the served resources
        for (g, v) in resources::GROUPS {
            let mut paths = Map::new();
            for r in resources::RESOURCES
                .iter()
                .filter(|r| r.group == *g && r.version == *v)
            {
                for p in resource_paths(r) {
                    if let Some(item) = vendored.v3_paths.get(&p) {
                        paths.insert(p, item.clone());
                    }
                }
            }
            let doc = v3_document(&vendored, paths, &Map::new());
            v3.insert(gv_key(g, v), Arc::new(doc));
        }
        Builtin { vendored, v3 }
    }
}

#[derive(Default)]
struct Shared {
    custom: RwLock<BTreeMap<(String, String), Custom>>,
    built: RwLock<Built>,
    /// Held while documents are built from `custom`, so the last build sees the last change.
    building: Mutex<()>,
    /// `custom` changed while no documents were built: the next request builds them.
    stale: std::sync::atomic::AtomicBool,
}

/// The OpenAPI documents the server serves. Cheap to clone (the clones share the documents).
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(b: &[u8]) -> String {
    Sha512::digest(b)
        .iter()
        .map(|x| format!("{x:02X}"))
        .collect()
}

/// The paths upstream serves for a resource: the collection (per namespace, and across
/// namespaces for namespaced kinds), the item, and the served subresources; the deprecated
/// `/watch/` paths are not served.
fn resource_paths(r: &Resource) -> Vec<String> {
    let base = format!("/{}", gv_key(r.group, r.version));
    let mut out = vec![format!("{base}/{}", r.plural)];
    let item = if r.namespaced {
        let coll = format!("{base}/namespaces/{{namespace}}/{}", r.plural);
        out.push(coll.clone());
        format!("{coll}/{{name}}")
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    };
    out.push(item.clone());
    for s in r.subresources {
        out.push(format!("{item}/{s}"));
    }
    out
}

/// Adds every definition `doc` references (transitively) from `defs` to `out`.
fn closure(doc: &Value, prefix: &str, defs: &[&Map<String, Value>], out: &mut Map<String, Value>) {
    let mut todo = vec![];
    collect_refs(doc, prefix, &mut todo);
    let mut seen: BTreeSet<String> = out.keys().cloned().collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = defs.iter().find_map(|d| d.get(&name)) {
            collect_refs(s, prefix, &mut todo);
            out.insert(name, s.clone());
        }
    }
    out.sort_keys();
}

fn collect_refs(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                if let Some(name) = r.strip_prefix(prefix) {
                    out.push(name.to_string());
                }
            }
            m.values().for_each(|x| collect_refs(x, prefix, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, prefix, out)),
        _ => {}
    }
}

impl Registry {
    /// The documents of the built-in kinds. They are built by the first request that needs
    /// them (off the async workers), so a server nobody asks for OpenAPI holds none of it in
    /// memory and starting it does not wait for them. If the built-in data cannot be read (a
    /// corrupt build), the documents are empty and the reason is logged.
    pub fn new() -> Registry {
        Registry {
            shared: Arc::new(Shared::default()),
        }
    }

    /// The built-in data and documents: immutable, so parsed once per process and shared by
    /// every server in it.
    fn builtin(&self) -> &'static Builtin {
        static BUILTIN: OnceLock<Builtin> = OnceLock::new();
        BUILTIN.get_or_init(Builtin::load)
    }

    fn ensure_built(&self) {
        use std::sync::atomic::Ordering;
        if !self.shared.built.read().is_ok_and(|b| b.ready)
            || self.shared.stale.load(Ordering::Acquire)
        {
            self.rebuild();
        }
    }

    /// After a change of `custom`: rebuild documents already built (their hashes change now), or
    /// leave the build to the first request.
    fn changed(&self) {
        if self.shared.built.read().is_ok_and(|b| b.ready) {
            self.rebuild();
        } else {
            self.shared
                .stale
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Adds or replaces the kinds of a group version registered at runtime. The documents are
    /// rebuilt, so the group version's `?hash=` changes when its document does.
    pub fn set_group_version(
        &self,
        group: &str,
        version: &str,
        kinds: &[CustomKind],
    ) -> Result<(), OpenApiError> {
        let mut c = Custom::default();
        for k in kinds {
            custom_kind(group, version, k, &mut c)?;
        }
        if let Ok(mut m) = self.shared.custom.write() {
            m.insert((group.to_string(), version.to_string()), c);
        }
        self.changed();
        Ok(())
    }

    /// Replaces every runtime group version at once with `kinds` (group, version, kind), for a
    /// caller that recomputes the whole set after any change (a CustomResourceDefinition
    /// established, changed or deleted). Group versions whose document is unchanged keep their
    /// hash.
    pub fn set_custom_kinds(
        &self,
        kinds: &[(String, String, CustomKind)],
    ) -> Result<(), OpenApiError> {
        let mut all: BTreeMap<(String, String), Custom> = BTreeMap::new();
        for (g, v, k) in kinds {
            custom_kind(g, v, k, all.entry((g.clone(), v.clone())).or_default())?;
        }
        if let Ok(mut m) = self.shared.custom.write() {
            *m = all;
        }
        self.changed();
        Ok(())
    }

    /// Drops a group version registered at runtime.
    pub fn remove_group_version(&self, group: &str, version: &str) {
        if let Ok(mut m) = self.shared.custom.write() {
            m.remove(&(group.to_string(), version.to_string()));
        }
        self.changed();
    }

    fn rebuild(&self) {
        let _building = self.shared.building.lock();
        // cleared before `custom` is read: a change after this point marks it again
        self.shared
            .stale
            .store(false, std::sync::atomic::Ordering::Release);
        let custom = self
            .shared
            .custom
            .read()
            .map(|m| m.clone())
            .unwrap_or_default();
        let builtin = self.builtin();
        let mut v3 = builtin.v3.clone();
        for ((g, v), c) in &custom {
            let doc = v3_document(&builtin.vendored, c.v3_paths.clone(), &c.v3_schemas);
            v3.insert(gv_key(g, v), Arc::new(doc));
        }
        if let Ok(mut b) = self.shared.built.write() {
            b.ready = true;
            b.v3 = v3;
            // v2 is one document for everything; built on first use
            b.v2 = None;
        }
    }

    fn v2(&self) -> Arc<V2> {
        if let Some(v2) = self.shared.built.read().ok().and_then(|b| b.v2.clone()) {
            return v2;
        }
        let vendored = &self.builtin().vendored;
        let _building = self.shared.building.lock();
        if let Some(v2) = self.shared.built.read().ok().and_then(|b| b.v2.clone()) {
            return v2;
        }
        let custom = self
            .shared
            .custom
            .read()
            .map(|m| m.clone())
            .unwrap_or_default();
        let mut paths = Map::new();
        for r in resources::RESOURCES {
            for p in resource_paths(r) {
                if let Some(item) = vendored.v2_paths.get(&p) {
                    paths.insert(p, item.clone());
                }
            }
        }
        let mut extra = Map::new();
        for c in custom.values() {
            paths.extend(c.v2_paths.clone());
            extra.extend(c.v2_definitions.clone());
        }
        paths.sort_keys();
        let paths = Value::Object(paths);
        let mut definitions = Map::new();
        let mut parameters = Map::new();
        closure(
            &paths,
            "#/parameters/",
            &[&vendored.v2_parameters],
            &mut parameters,
        );
        let roots = json!([paths, parameters]);
        closure(
            &roots,
            "#/definitions/",
            &[&extra, vendored.v2_definitions],
            &mut definitions,
        );
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": INFO_VERSION},
            "paths": paths,
            "definitions": definitions,
            "parameters": parameters,
        });
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let proto = gnostic::document(&doc).encode_to_vec();
        let v2 = Arc::new(V2 {
            etag: hash(&json),
            json: Arc::new(json),
            proto: Arc::new(proto),
        });
        if let Ok(mut b) = self.shared.built.write() {
            b.v2 = Some(v2.clone());
        }
        v2
    }

    /// The `/openapi/v3` discovery document (kube-openapi `handler3.OpenAPIV3Discovery`).
    pub fn discovery(&self) -> Value {
        self.ensure_built();
        let mut paths = Map::new();
        if let Ok(b) = self.shared.built.read() {
            for (k, d) in &b.v3 {
                paths.insert(
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", d.hash)}),
                );
            }
        }
        json!({ "paths": paths })
    }

    /// The v3 document of a group version (`api/v1`, `apis/apps/v1`) and its hash.
    pub fn v3_document_json(&self, key: &str) -> Option<(Arc<Vec<u8>>, String)> {
        self.ensure_built();
        let b = self.shared.built.read().ok()?;
        b.v3.get(key).map(|d| (d.json.clone(), d.hash.clone()))
    }

    /// Serves `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<gv>`; `None` for other paths.
    pub fn serve(
        &self,
        path: &str,
        query: Option<&str>,
        accept: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Option<Reply> {
        let accept = accept.filter(|a| !a.trim().is_empty()).unwrap_or("*/*");
        if path == "/openapi/v2" {
            // kube-openapi pkg/handler/handler.go `OpenAPIService.ServeHTTP`
            let accepted: [(&str, &str); 3] = [
                ("application", "json"),
                (
                    "application",
                    "com.github.proto-openapi.spec.v2@v1.0+protobuf",
                ),
                (
                    "application",
                    "com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            ];
            let Some(i) = negotiate(accept, &accepted) else {
                return Some(Reply::not_acceptable());
            };
            let v2 = self.v2();
            // the deprecated `@` form is answered with the current media type, which (unlike
            // the `@` one) parses as a MIME type
            let (ct, body) = if i == 0 {
                ("application/json".to_string(), v2.json.clone())
            } else {
                (V2_PROTOBUF_RESPONSE.to_string(), v2.proto.clone())
            };
            return Some(Reply::content(ct, body, &v2.etag, if_none_match));
        }
        if path == "/openapi/v3" {
            // handler3 `HandleDiscovery`
            let body = serde_json::to_vec(&self.discovery()).unwrap_or_default();
            let etag = hash(&body);
            return Some(Reply::content(
                "application/json".into(),
                Arc::new(body),
                &etag,
                if_none_match,
            ));
        }
        let key = path.strip_prefix("/openapi/v3/")?;
        // handler3 `HandleGroupVersion`: JSON only here (the gnostic v3 protobuf is not
        // produced), so a protobuf-only Accept gets 406
        let Some(_) = negotiate(accept, &[("application", "json")]) else {
            return Some(Reply::not_acceptable());
        };
        let Some((body, etag)) = self.v3_document_json(key) else {
            return Some(Reply::not_found());
        };
        let wanted = query
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("hash="))
            .filter(|h| !h.is_empty());
        let mut reply = match wanted {
            Some(h) if h != etag => {
                let mut r = Reply::empty(301);
                r.headers
                    .push(("Location", format!("/openapi/v3/{key}?hash={etag}")));
                r.headers.push(("Vary", "Accept".into()));
                return Some(r);
            }
            _ => Reply::content("application/json".into(), body, &etag, if_none_match),
        };
        if wanted.is_some() {
            reply
                .headers
                .push(("Cache-Control", "public, immutable".into()));
            let expires = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(365 * 24))
                .unwrap_or_else(|_| jiff::Timestamp::now());
            reply.headers.push((
                "Expires",
                expires.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            ));
        }
        Some(reply)
    }
}

fn v3_document(
    vendored: &Vendored,
    mut paths: Map<String, Value>,
    extra: &Map<String, Value>,
) -> Doc {
    paths.sort_keys();
    let mut schemas = Map::new();
    let paths = Value::Object(paths);
    closure(
        &paths,
        "#/components/schemas/",
        &[extra, &vendored.v3_schemas],
        &mut schemas,
    );
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    });
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    Doc {
        hash: hash(&json),
        json: Arc::new(json),
    }
}

/// `GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions` while the server does not serve
/// CustomResourceDefinitions: an empty list, which is the truth. kubectl asks for it when a kind
/// has no PATCH operation (the reviews): its `fieldValidation` check then looks for a CRD of the
/// kind (cli-runtime `pkg/resource/query_param_verifier.go`, `HasSupport` → `CRDFinder.HasCRD`),
/// and a 404 there fails validation instead of falling back to the client-side schema check.
/// `None` once the resource is served.
pub fn crd_list_when_unserved(path: &str) -> Option<Reply> {
    const PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    if path.trim_end_matches('/') != PATH
        || resources::find("apiextensions.k8s.io", "v1", "customresourcedefinitions").is_some()
    {
        return None;
    }
    let list = json!({
        "kind": "CustomResourceDefinitionList",
        "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": {"resourceVersion": "0"},
        "items": [],
    });
    let mut r = Reply::empty(200);
    r.headers.push(("Content-Type", "application/json".into()));
    r.body = Arc::new(serde_json::to_vec(&list).unwrap_or_default());
    Some(r)
}

/// The first entry of `accepted` the `Accept` header allows, trying its clauses by descending
/// `q` (goautoneg `ParseAccept` order, as kube-openapi's handlers use it).
fn negotiate(accept: &str, accepted: &[(&str, &str)]) -> Option<usize> {
    let mut clauses: Vec<(f32, usize, String, String)> = vec![];
    for (n, c) in accept.split(',').enumerate() {
        let mut parts = c.split(';');
        let mt = parts.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        let (t, st) = match mt.split_once('/') {
            Some((t, st)) => (t.trim().to_string(), st.trim().to_string()),
            None if mt == "*" => ("*".to_string(), "*".to_string()),
            None => continue,
        };
        if q > 0.0 {
            clauses.push((q, n, t, st));
        }
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, t, st) in &clauses {
        for (i, (at, ast)) in accepted.iter().enumerate() {
            if (t == at || t == "*") && (st == ast || st == "*") {
                return Some(i);
            }
        }
    }
    None
}

/// An HTTP answer of the OpenAPI endpoints.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (`Content-Type` included).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Arc<Vec<u8>>,
}

impl Reply {
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: Arc::new(vec![]),
        }
    }

    /// 406 with no body, as kube-openapi's handlers answer (`w.WriteHeader(406)`).
    fn not_acceptable() -> Reply {
        let mut r = Reply::empty(406);
        r.headers.push(("Vary", "Accept".into()));
        r
    }

    fn not_found() -> Reply {
        let status = crate::errors::ApiError::path_not_found().status();
        let mut r = Reply::empty(404);
        r.headers.push(("Content-Type", "application/json".into()));
        r.body = Arc::new(serde_json::to_vec(&status).unwrap_or_default());
        r
    }

    /// The body with its quoted ETag, or 304 when `If-None-Match` names it (Go's
    /// `http.ServeContent`, which the handlers use).
    fn content(ct: String, body: Arc<Vec<u8>>, etag: &str, if_none_match: Option<&str>) -> Reply {
        let quoted = format!("\"{etag}\"");
        let hit = if_none_match.is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == quoted || t == "*")
        });
        let mut r = Reply::empty(if hit { 304 } else { 200 });
        r.headers.push(("Vary", "Accept".into()));
        r.headers.push(("ETag", quoted));
        if !hit {
            r.headers.push(("Content-Type", ct));
            r.body = body;
        }
        r
    }
}

/// The definition name of a custom kind: the group reversed, the version, the kind
/// (apiextensions-apiserver `pkg/controller/openapi/builder/builder.go`, which names
/// definitions with kube-openapi `util.ToRESTFriendlyName`).
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut g: Vec<&str> = group.split('.').collect();
    g.reverse();
    format!("{}.{version}.{kind}", g.join("."))
}

/// A v3 schema as the v2 document carries it: the keywords v2 lacks are dropped
/// (apiextensions-apiserver `pkg/controller/openapi/v2/conversion.go`, `ToStructuralOpenAPIV2`:
/// `nullable`, `anyOf`, `oneOf`, `not`).
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "nullable" | "anyOf" | "oneOf" | "not"))
                .map(|(k, x)| {
                    let x = if k == "properties" {
                        match x {
                            Value::Object(p) => Value::Object(
                                p.iter().map(|(n, s)| (n.clone(), to_v2(s))).collect(),
                            ),
                            other => other.clone(),
                        }
                    } else if matches!(k.as_str(), "items" | "additionalProperties" | "allOf") {
                        to_v2(x)
                    } else if k == "$ref" {
                        Value::String(
                            x.as_str()
                                .unwrap_or("")
                                .replace("#/components/schemas/", "#/definitions/"),
                        )
                    } else {
                        x.clone()
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// The schemas and paths of one custom kind (apiextensions-apiserver
/// `pkg/controller/openapi/builder/builder.go` `BuildOpenAPIV3`/`BuildOpenAPIV2`): the kind's
/// schema with `apiVersion`, `kind` and `metadata` (a reference to `ObjectMeta`) and its
/// group-version-kind, the list schema, and the operations with the `fieldValidation`
/// parameter on create, update and patch.
fn custom_kind(
    group: &str,
    version: &str,
    k: &CustomKind,
    c: &mut Custom,
) -> Result<(), OpenApiError> {
    let Some(obj) = k.schema.as_object() else {
        return Err(OpenApiError::Schema {
            kind: k.kind.clone(),
        });
    };
    let name = definition_name(group, version, &k.kind);
    let list_name = definition_name(group, version, &k.list_kind);
    let gvk = json!({"group": group, "version": version, "kind": k.kind});
    let meta = "io.k8s.apimachinery.pkg.apis.meta.v1";
    let api_version = json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"});
    let kind_prop = json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"});
    let mut schema = obj.clone();
    let mut props = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    props.insert("apiVersion".into(), api_version.clone());
    props.insert("kind".into(), kind_prop.clone());
    props.insert(
        "metadata".into(),
        json!({"allOf": [{"$ref": format!("#/components/schemas/{meta}.ObjectMeta")}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
    );
    props.sort_keys();
    schema.insert("properties".into(), Value::Object(props));
    schema.insert("type".into(), json!("object"));
    schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
    // `buildSelectableFields`: 1.32 adds the list to both schemas of every version, empty
    // when the version declares none
    let selectable: Vec<Value> = k
        .selectable_fields
        .iter()
        .map(|p| json!({"fieldPath": p}))
        .collect();
    schema.insert(
        "x-kubernetes-selectable-fields".into(),
        Value::Array(selectable.clone()),
    );
    let list = json!({
        "description": format!("{} is a list of {}", k.list_kind, k.kind),
        "properties": {
            "apiVersion": api_version,
            "items": {"description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", k.plural), "items": {"$ref": format!("#/components/schemas/{name}")}, "type": "array"},
            "kind": kind_prop,
            "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{meta}.ListMeta")}], "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": k.list_kind}],
        "x-kubernetes-selectable-fields": selectable,
    });
    let schema = Value::Object(schema);
    c.v3_schemas.insert(name.clone(), schema.clone());
    c.v3_schemas.insert(list_name.clone(), list.clone());
    c.v2_definitions.insert(name.clone(), to_v2(&schema));
    c.v2_definitions.insert(list_name.clone(), to_v2(&list));

    let base = format!("/{}", gv_key(group, version));
    let coll = if k.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", k.plural)
    } else {
        format!("{base}/{}", k.plural)
    };
    let item = format!("{coll}/{{name}}");
    let fv = json!({"name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict", "type": "string", "uniqueItems": true});
    let op = |action: &str, v3: bool, body: bool, resp: &str| {
        let r = if v3 {
            format!("#/components/schemas/{resp}")
        } else {
            format!("#/definitions/{resp}")
        };
        let mut o = json!({
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "operationId": format!("{action}{}", k.kind),
        });
        if body {
            let params = if v3 {
                json!([{"name": "fieldValidation", "in": "query", "description": fv["description"], "schema": {"type": "string", "uniqueItems": true}}])
            } else {
                json!([fv, {"name": "body", "in": "body", "required": true, "schema": {"$ref": r}}])
            };
            o["parameters"] = params;
            if v3 {
                o["requestBody"] = json!({"content": {"application/json": {"schema": {"$ref": r}}}, "required": true});
            }
        }
        o["responses"] = if v3 {
            json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": r}}}}})
        } else {
            json!({"200": {"description": "OK", "schema": {"$ref": r}}})
        };
        o
    };
    // the scale subresource reads and writes autoscaling/v1 Scale
    let scale_op = |action: &str, v3: bool, body: bool| {
        let mut o = op(action, v3, body, "io.k8s.api.autoscaling.v1.Scale");
        o["x-kubernetes-group-version-kind"] =
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        o
    };
    for v3 in [true, false] {
        let (paths, status) = if v3 {
            (
                &mut c.v3_paths,
                format!("#/components/schemas/{meta}.Status"),
            )
        } else {
            (&mut c.v2_paths, format!("#/definitions/{meta}.Status"))
        };
        let mut del = op("delete", v3, false, &name);
        del["responses"] = if v3 {
            json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": status}}}}})
        } else {
            json!({"200": {"description": "OK", "schema": {"$ref": status}}})
        };
        paths.insert(
            coll.clone(),
            json!({"get": op("list", v3, false, &list_name), "post": op("post", v3, true, &name)}),
        );
        paths.insert(
            item.clone(),
            json!({
                "get": op("get", v3, false, &name),
                "put": op("put", v3, true, &name),
                "patch": op("patch", v3, true, &name),
                "delete": del,
            }),
        );
        if k.namespaced {
            paths.insert(
                format!("{base}/{}", k.plural),
                json!({"get": op("list", v3, false, &list_name)}),
            );
        }
        if k.status {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": op("get", v3, false, &name),
                    "put": op("put", v3, true, &name),
                    "patch": op("patch", v3, true, &name),
                }),
            );
        }
        if k.scale {
            paths.insert(
                format!("{item}/scale"),
                json!({
                    "get": scale_op("get", v3, false),
                    "put": scale_op("put", v3, true),
                    "patch": scale_op("patch", v3, true),
                }),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The type information of writes reads the v2 definitions alone, and the served
    /// documents' data shares that one copy.
    #[test]
    fn the_definitions_are_one_copy_shared_with_the_documents() {
        let defs = builtin_definitions();
        assert!(defs.contains_key("io.k8s.api.core.v1.Pod"));
        let vendored = Vendored::load().unwrap();
        assert!(std::ptr::eq(defs, vendored.v2_definitions));
        assert!(!vendored.v3_paths.is_empty());
    }

    fn doc(reg: &Registry, key: &str) -> Value {
        let (b, _) = reg.v3_document_json(key).expect("document");
        serde_json::from_slice(&b).expect("json")
    }

    #[test]
    fn every_served_kind_has_a_schema_with_its_gvk_and_a_patch_with_field_validation() {
        let reg = Registry::new();
        for r in resources::RESOURCES {
            let d = doc(&reg, &gv_key(r.group, r.version));
            let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
            let schemas = d["components"]["schemas"].as_object().expect("schemas");
            assert!(
                schemas
                    .values()
                    .any(|s| s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|a| a.contains(&gvk))),
                "no schema for {gvk}"
            );
            let paths = d["paths"].as_object().expect("paths");
            // the reviews are create-only, and upstream's create of a review has no
            // fieldValidation parameter
            let methods: &[&str] = if resources::CREATE_ONLY.contains(&r.kind) {
                &["post"]
            } else {
                &["patch"]
            };
            let ops: Vec<&Value> = paths
                .values()
                .flat_map(|p| methods.iter().map(|m| &p[*m]))
                .filter(|o| o["x-kubernetes-group-version-kind"] == gvk)
                .collect();
            assert!(!ops.is_empty(), "no write operation for {gvk}");
            if resources::CREATE_ONLY.contains(&r.kind) {
                continue;
            }
            assert!(ops.iter().all(|o| o["parameters"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p["name"] == "fieldValidation"))));
        }
    }

    #[test]
    fn upstream_descriptions_and_patch_extensions_are_kept() {
        let reg = Registry::new();
        let d = doc(&reg, "apis/apps/v1");
        let pod_spec = &d["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-list-type"],
            "map"
        );
        assert!(
            d["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["description"]
                .as_str()
                .is_some_and(|s| s.contains("declarative updates for Pods"))
        );
        // kinds of other group versions stay out
        assert!(d["components"]["schemas"]
            .get("io.k8s.api.rbac.v1.Role")
            .is_none());
        // every reference resolves inside the document
        let mut refs = vec![];
        collect_refs(&d, "#/components/schemas/", &mut refs);
        for r in refs {
            assert!(d["components"]["schemas"].get(&r).is_some(), "{r} dangling");
        }
    }

    #[test]
    fn custom_group_version_is_added_rehashed_and_removed() {
        let reg = Registry::new();
        let before = reg.discovery();
        assert!(before["paths"].get("apis/stable.example.com/v1").is_none());
        let kind = CustomKind {
            status: true,
            scale: true,
            ..CustomKind::new(
                "CronTab",
                "crontabs",
                true,
                json!({"type": "object", "properties": {"spec": {"type": "object", "description": "The wanted state.", "properties": {"cronSpec": {"type": "string", "description": "When to run."}}}}}),
            )
        };
        reg.set_group_version("stable.example.com", "v1", std::slice::from_ref(&kind))
            .expect("set");
        let url1 = reg.discovery()["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
            .as_str()
            .expect("url")
            .to_string();
        let d = doc(&reg, "apis/stable.example.com/v1");
        let s = &d["components"]["schemas"]["com.example.stable.v1.CronTab"];
        assert_eq!(
            s["properties"]["spec"]["properties"]["cronSpec"]["description"],
            "When to run."
        );
        assert_eq!(s["x-kubernetes-group-version-kind"][0]["kind"], "CronTab");
        // no selectable fields: an empty list, as 1.32 gives it
        assert_eq!(s["x-kubernetes-selectable-fields"], json!([]));
        assert!(d["components"]["schemas"]
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some());
        let item = "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}";
        let patch = &d["paths"][item]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "CronTab");
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        assert_eq!(
            d["paths"][format!("{item}/status")]["patch"]["x-kubernetes-group-version-kind"]
                ["kind"],
            "CronTab"
        );
        assert_eq!(
            d["paths"][format!("{item}/scale")]["get"]["x-kubernetes-group-version-kind"]["kind"],
            "Scale"
        );
        assert!(d["components"]["schemas"]
            .get("io.k8s.api.autoscaling.v1.Scale")
            .is_some());
        assert!(d["paths"]["/apis/stable.example.com/v1/crontabs"]["get"].is_object());
        assert_eq!(
            d["components"]["schemas"]["com.example.stable.v1.CronTabList"]["properties"]["items"]
                ["items"]["$ref"],
            "#/components/schemas/com.example.stable.v1.CronTab"
        );
        // a changed schema changes the hash; selectable fields are on the kind and its list,
        // in v3 and v2
        let mut k2 = kind.clone();
        k2.schema["properties"]["spec"]["properties"]["image"] = json!({"type": "string"});
        k2.selectable_fields = vec!["spec.image".into(), "spec.cronSpec".into()];
        reg.set_group_version("stable.example.com", "v1", &[k2])
            .expect("set");
        let url2 = reg.discovery()["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
            .as_str()
            .expect("url")
            .to_string();
        assert_ne!(url1, url2);
        // the old hash now redirects to the new one
        let q = url1.split_once('?').map(|x| x.1);
        let r = reg
            .serve(
                "/openapi/v3/apis/stable.example.com/v1",
                q,
                Some("application/json"),
                None,
            )
            .expect("reply");
        assert_eq!(r.status, 301);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Location" && *v == url2));
        // v2 carries it too, with v2 references
        let v2 = reg
            .serve("/openapi/v2", None, Some("application/json"), None)
            .expect("v2");
        let v2: Value = serde_json::from_slice(&v2.body).expect("json");
        assert_eq!(
            v2["definitions"]["com.example.stable.v1.CronTab"]["properties"]["metadata"]["allOf"]
                [0]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let fields = json!([{"fieldPath": "spec.image"}, {"fieldPath": "spec.cronSpec"}]);
        for k in ["CronTab", "CronTabList"] {
            let name = format!("com.example.stable.v1.{k}");
            assert_eq!(
                v2["definitions"][&name]["x-kubernetes-selectable-fields"],
                fields
            );
            let d = doc(&reg, "apis/stable.example.com/v1");
            assert_eq!(
                d["components"]["schemas"][&name]["x-kubernetes-selectable-fields"],
                fields
            );
        }
        reg.remove_group_version("stable.example.com", "v1");
        assert!(reg.discovery()["paths"]
            .get("apis/stable.example.com/v1")
            .is_none());
        let v2 = reg.serve("/openapi/v2", None, None, None).expect("v2");
        let v2: Value = serde_json::from_slice(&v2.body).expect("json");
        assert!(v2["definitions"]
            .get("com.example.stable.v1.CronTab")
            .is_none());
        assert!(reg
            .set_group_version(
                "x.io",
                "v1",
                &[CustomKind {
                    schema: json!("no"),
                    ..kind
                }]
            )
            .is_err());
    }

    #[test]
    fn custom_kinds_are_replaced_as_a_set() {
        let reg = Registry::new();
        let k = |kind: &str| {
            CustomKind::new(
                kind,
                &format!("{}s", kind.to_lowercase()),
                false,
                json!({"type": "object"}),
            )
        };
        let set = |ks: Vec<(&str, &str, CustomKind)>| {
            let ks: Vec<(String, String, CustomKind)> = ks
                .into_iter()
                .map(|(g, v, k)| (g.into(), v.into(), k))
                .collect();
            reg.set_custom_kinds(&ks).expect("set");
            reg.discovery()
        };
        let d1 = set(vec![
            ("a.io", "v1", k("Foo")),
            ("a.io", "v1", k("Bar")),
            ("b.io", "v1", k("Baz")),
        ]);
        let d = doc(&reg, "apis/a.io/v1");
        assert!(d["paths"].get("/apis/a.io/v1/foos/{name}").is_some());
        assert!(d["paths"].get("/apis/a.io/v1/bars").is_some());
        let d2 = set(vec![("b.io", "v1", k("Baz"))]);
        assert!(d2["paths"].get("apis/a.io/v1").is_none());
        // an unchanged group version keeps its URL
        assert_eq!(d1["paths"]["apis/b.io/v1"], d2["paths"]["apis/b.io/v1"]);
    }

    #[test]
    fn crd_list_is_empty_while_crds_are_not_served() {
        let served =
            resources::find("apiextensions.k8s.io", "v1", "customresourcedefinitions").is_some();
        let r = crd_list_when_unserved("/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
        assert_eq!(r.is_some(), !served);
        if let Some(r) = r {
            let v: Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(v["items"], json!([]));
        }
        assert!(crd_list_when_unserved("/apis/apiextensions.k8s.io/v1").is_none());
    }

    #[test]
    fn v2_protobuf_decodes_as_gnostic_document() {
        let reg = Registry::new();
        let r = reg
            .serve("/openapi/v2", None, Some(V2_PROTOBUF), None)
            .expect("reply");
        assert_eq!(r.status, 200);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Content-Type" && v == V2_PROTOBUF_RESPONSE));
        let d = gnostic::Document::decode(r.body.as_slice()).expect("decode");
        assert_eq!(d.swagger, "2.0");
        let defs = d.definitions.expect("definitions").additional_properties;
        let dep = defs
            .iter()
            .find(|n| n.name == "io.k8s.api.apps.v1.Deployment")
            .and_then(|n| n.value.as_ref())
            .expect("Deployment");
        let gvk = dep
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .and_then(|e| e.value.as_ref())
            .expect("gvk");
        let gvk: Value = serde_json::from_str(&gvk.yaml).expect("yaml is json");
        assert_eq!(gvk[0]["kind"], "Deployment");
        let paths = d.paths.expect("paths").path;
        let p = paths
            .iter()
            .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .and_then(|p| p.value.as_ref())
            .expect("path");
        assert!(p.patch.as_ref().is_some_and(|o| !o.parameters.is_empty()));
    }

    #[test]
    fn negotiation_and_caching_follow_kube_openapi() {
        let reg = Registry::new();
        for bad in ["text/html", "application/yaml", "application/json;q=0"] {
            let r = reg
                .serve("/openapi/v2", None, Some(bad), None)
                .expect("reply");
            assert_eq!(r.status, 406, "{bad}");
            let r = reg
                .serve("/openapi/v3/apis/apps/v1", None, Some(bad), None)
                .expect("reply");
            assert_eq!(r.status, 406, "{bad}");
        }
        let r = reg
            .serve("/openapi/v2", None, Some("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"), None)
            .expect("reply");
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Content-Type" && v.ends_with("v2.v1.0+protobuf")));
        let d = reg.discovery();
        let url = d["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("url");
        let (_, q) = url.split_once('?').expect("query");
        let h = q.strip_prefix("hash=").expect("hash");
        assert_eq!(h.len(), 128);
        assert!(h
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        let r = reg
            .serve("/openapi/v3/apis/apps/v1", Some(q), None, None)
            .expect("reply");
        assert_eq!(r.status, 200);
        assert_eq!(hash(&r.body), h);
        let hv = |k: &str| r.headers.iter().find(|(n, _)| *n == k).map(|x| x.1.clone());
        assert_eq!(hv("Cache-Control").as_deref(), Some("public, immutable"));
        assert!(hv("Expires").is_some());
        let etag = hv("ETag").expect("etag");
        assert_eq!(etag, format!("\"{h}\""));
        let r = reg
            .serve("/openapi/v3/apis/apps/v1", None, None, Some(&etag))
            .expect("reply");
        assert_eq!(r.status, 304);
        // without a hash there are no caching headers
        let r = reg
            .serve("/openapi/v3/apis/apps/v1", None, None, None)
            .expect("reply");
        assert!(!r.headers.iter().any(|(k, _)| *k == "Cache-Control"));
        for odd in [
            "/openapi/v3/apis",
            "/openapi/v3/",
            "/openapi/v3/apis/nope/v1",
            "/openapi/v3/api/v1/../v1",
            "/openapi/v3/apis/apps/v1/extra",
        ] {
            let r = reg
                .serve(odd, Some("hash=&hash"), Some("*/*"), None)
                .expect("reply");
            assert_eq!(r.status, 404, "{odd}");
        }
        assert!(reg.serve("/openapi/v4", None, None, None).is_none());
    }
}
