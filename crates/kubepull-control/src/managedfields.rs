//! Field management and server-side apply: `metadata.managedFields` kept on every write, and
//! `application/apply-patch+yaml` patches merged by schema with ownership and conflicts.
//!
//! Ported from k8s.io/apimachinery `pkg/util/managedfields/internal` (`fieldmanager.go`,
//! `skipnonapplied.go`, `capmanagers.go`, `buildmanagerinfo.go`, `managedfieldsupdater.go`,
//! `stripmeta.go`, `structuredmerge.go`, `managedfields.go`, `conflict.go`,
//! `lastappliedmanager.go`, `lastappliedupdater.go`),
//! sigs.k8s.io/structured-merge-diff `merge/update.go` (`Updater.Update`, `Apply`, `prune`) and
//! k8s.io/apiserver `pkg/endpoints/handlers` (`create.go`, `update.go`, `patch.go`
//! `applyPatcher`, `rest.go` `managerOrUserAgent`/`prefixFromUserAgent`).
//!
//! Not ported: the conversion of field sets between versions (the served versions of a kind
//! share one schema here, custom resources convert with `None`), and reconciling sets after a
//! schema changes a field between atomic and granular (`ReconcileFieldSetWithSchema`). An
//! Event's entries recorded through its other group are dropped by a write, as upstream's
//! field manager drops them: it cannot convert between the two groups
//! ([`crate::events::drops_other_versions`]). The
//! empty object a create is compared with has `spec` and `status` but not the other non-pointer
//! structs and non-`omitempty` lists of upstream's typed zero values, so a creator also owns
//! some lists and structs it set as such (`.`).

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::{json, Map, Value};

use crate::crd::Served;
use crate::errors::{ApiError, ApiResult};
use crate::fieldpath::{path_string, PathElement, Set};
use crate::resources::Resource;
use crate::typed::{Comparison, Schema, Ty};

/// `DefaultMaxUpdateManagers` (`fieldmanager.go`).
const MAX_UPDATE_MANAGERS: usize = 10;

/// `validation.FieldManagerMaxLength`.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The manager of writes outside an API request (the in-process controllers; upstream's
/// controllers send `kube-controller-manager/…` as their User-Agent).
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

// ---------------------------------------------------------------------------------------------
// The request: its field manager, User-Agent and force flag
// ---------------------------------------------------------------------------------------------

/// What an API request says about field management.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `?fieldManager=`.
    pub field_manager: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// `?force=true` (apply only).
    pub force: bool,
}

tokio::task_local! {
    static REQUEST: Request;
    static APPLYING: Option<Applied>;
}

/// Runs `f` (an API request) with its field management options known to the writes it makes
/// (a plain function: the request's future is not held twice).
pub fn scope<F: Future>(req: Request, f: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(req, f)
}

/// The managed fields of an object [`apply`] made, for the write of that object only (the
/// writes a request makes of other objects, a namespace's default ServiceAccount, are not it).
#[derive(Debug, Clone)]
pub struct Applied {
    managed: Value,
    /// The object's group, resource, namespace and name.
    key: (&'static str, &'static str, String, String),
}

/// What [`applying`] needs of the object `obj` an apply made of `r`'s object `ns`/`name`.
pub fn applied(r: &Resource, ns: &str, name: &str, obj: &Value) -> Applied {
    Applied {
        managed: obj
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(Value::Null),
        key: applied_key(r, ns, name),
    }
}

fn applied_key(r: &Resource, ns: &str, name: &str) -> (&'static str, &'static str, String, String) {
    let ns = if r.namespaced { ns } else { "" };
    (r.group, r.plural, ns.to_string(), name.to_string())
}

/// Runs `f`, a write the server's own controllers make while serving a request (a namespace's
/// default ServiceAccount, the serviceaccounts controller's upstream): an `Update` by
/// `kube-controller-manager`, not by the request's manager nor as its apply.
pub fn controller<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let req = Request {
        field_manager: Some(CONTROLLER_MANAGER.into()),
        user_agent: None,
        force: false,
    };
    REQUEST.scope(req, APPLYING.scope(None, f))
}

/// Runs `f`, with `applied` the write of an object an apply made ([`apply`]): its managed
/// fields are already computed and are stored as they are.
pub fn applying<F: Future>(applied: Option<Applied>, f: F) -> impl Future<Output = F::Output> {
    APPLYING.scope(applied, f)
}

/// Whether `content_type` is a server-side apply patch.
pub fn is_apply(content_type: &str) -> bool {
    content_type.starts_with("application/apply-patch")
}

/// `prefixFromUserAgent`: what precedes the first `/`, printable characters only, at most
/// 128 bytes.
pub fn prefix_from_user_agent(ua: &str) -> String {
    let m = ua.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in m.chars().filter(|c| is_print(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space;
/// not controls, other spaces and separators, format characters, private use characters nor
/// noncharacters (code points Unicode leaves unassigned otherwise are taken as printable).
fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    // controls (Cc) and the space and line and paragraph separators (Zs, Zl, Zp)
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    const FORMAT: [(u32, u32); 21] = [
        (0xAD, 0xAD),
        (0x600, 0x605),
        (0x61C, 0x61C),
        (0x6DD, 0x6DD),
        (0x70F, 0x70F),
        (0x890, 0x891),
        (0x8E2, 0x8E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let format = FORMAT.iter().any(|(a, b)| (*a..=*b).contains(&u));
    let private = (0xE000..=0xF8FF).contains(&u) || u >= 0xF0000;
    let nonchar = (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE;
    !(format || private || nonchar)
}

/// Go's `strconv.Quote` (`%q`, as `field.Invalid` prints a string).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// `managerOrUserAgent`: the request's field manager, else its User-Agent's prefix.
fn manager() -> String {
    REQUEST
        .try_with(
            |r| match r.field_manager.as_deref().filter(|m| !m.is_empty()) {
                Some(m) => m.to_string(),
                None => prefix_from_user_agent(r.user_agent.as_deref().unwrap_or("")),
            },
        )
        .unwrap_or_else(|_| CONTROLLER_MANAGER.to_string())
}

fn force() -> bool {
    REQUEST.try_with(|r| r.force).unwrap_or(false)
}

/// The managed fields of the apply this write of `r`'s object `ns`/`name` carries out, if it
/// is one.
fn in_apply(r: &Resource, ns: &str, name: &str) -> Option<Value> {
    let key = applied_key(r, ns, name);
    APPLYING
        .try_with(|a| {
            a.as_ref()
                .filter(|a| a.key == key)
                .map(|a| a.managed.clone())
        })
        .ok()
        .flatten()
}

/// `ValidateFieldManager` (and, for apply patches, `ValidatePatchOptions`' required manager)
/// for the options kind `kind` (`PatchOptions`, `CreateOptions`, `UpdateOptions`).
pub fn validate_options(
    kind: &str,
    manager: Option<&str>,
    apply: bool,
    force: bool,
) -> ApiResult<()> {
    use crate::errors::Cause;
    let mut causes = Vec::new();
    let m = manager.unwrap_or("");
    if kind == "PatchOptions" {
        if !apply && force {
            causes.push(Cause::forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
        if apply && m.is_empty() {
            causes.push(Cause::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
    }
    if m.len() > FIELD_MANAGER_MAX_LENGTH {
        causes.push(Cause::too_long(
            "fieldManager",
            FIELD_MANAGER_MAX_LENGTH as u64,
        ));
    }
    // the byte offset of each rune, as Go's `range` over a string gives it
    for (i, c) in m.char_indices() {
        if !is_print(c) {
            causes.push(Cause::invalid(
                "fieldManager",
                go_quote(m),
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_as("meta.k8s.io", kind, "", causes))
    }
}

// ---------------------------------------------------------------------------------------------
// Managers and their field sets
// ---------------------------------------------------------------------------------------------

/// `Apply` or `Update` (and the updater's temporary manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Apply,
    Update,
    /// `managedFieldsUpdater`'s `current-operation`.
    Current,
}

/// A manager identifier (`BuildManagerIdentifier`): the manager, the operation, the API
/// version for updates, the subresource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ManagerId {
    manager: String,
    op: Op,
    api_version: String,
    subresource: String,
}

impl ManagerId {
    fn new(manager: &str, op: Op, api_version: &str, subresource: &str) -> ManagerId {
        ManagerId {
            manager: if manager.is_empty() {
                "unknown".into()
            } else {
                manager.into()
            },
            op,
            api_version: if op == Op::Apply {
                String::new()
            } else {
                api_version.into()
            },
            subresource: subresource.into(),
        }
    }

    fn current() -> ManagerId {
        ManagerId {
            manager: "current-operation".into(),
            op: Op::Current,
            api_version: String::new(),
            subresource: String::new(),
        }
    }

    /// The identifier as upstream marshals it (its sort key among managers).
    fn json(&self) -> String {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert(
            "operation".into(),
            json!(match self.op {
                Op::Apply => "Apply",
                _ => "Update",
            }),
        );
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), json!(self.api_version));
        }
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m).to_string()
    }

    /// `printManager` (`conflict.go`).
    fn print(&self) -> String {
        let mut s = json!(self.manager).to_string();
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {}", json!(self.subresource));
        }
        if self.op == Op::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// One manager's fields (`fieldpath.VersionedSet`) and the time of its last change.
#[derive(Debug, Clone)]
struct Entry {
    set: Set,
    api_version: String,
    applied: bool,
    time: Option<String>,
}

type Managed = BTreeMap<ManagerId, Entry>;

/// `DecodeManagedFields`.
fn decode(v: Option<&Value>) -> Result<Managed, String> {
    let mut out = Managed::new();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let list = v
        .as_array()
        .ok_or_else(|| "managedFields must be a list".to_string())?;
    for (i, e) in list.iter().enumerate() {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        let op = match s("operation") {
            "Apply" => Op::Apply,
            "Update" => Op::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        if s("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match s("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            t => {
                return Err(format!(
                    "invalid fieldsType {t:?} in managed fields entry {i}"
                ))
            }
        }
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(f) => Set::from_fields_v1(f).map_err(|e| format!("error decoding set: {e}"))?,
        };
        let id = ManagerId::new(s("manager"), op, s("apiVersion"), s("subresource"));
        // an empty manager name stays empty in the identifier it came with
        let id = ManagerId {
            manager: s("manager").to_string(),
            ..id
        };
        out.insert(
            id,
            Entry {
                set,
                api_version: s("apiVersion").to_string(),
                applied: op == Op::Apply,
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
            },
        );
    }
    Ok(out)
}

/// `encodeManagedFields`, sorted as `sortEncodedManagedFields` sorts them; `None` without
/// managers.
fn encode(m: &Managed) -> Option<Value> {
    if m.is_empty() {
        return None;
    }
    let mut entries: Vec<(&ManagerId, &Entry)> = m.iter().collect();
    entries.sort_by(|(a, ea), (b, eb)| {
        let op = |e: &Entry| if e.applied { "Apply" } else { "Update" };
        op(ea)
            .cmp(op(eb))
            .then_with(|| seconds(ea.time.as_deref()).cmp(&seconds(eb.time.as_deref())))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| ea.api_version.cmp(&eb.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    Some(Value::Array(
        entries
            .into_iter()
            .map(|(id, e)| {
                let mut o = Map::new();
                o.insert("manager".into(), json!(id.manager));
                o.insert(
                    "operation".into(),
                    json!(if e.applied { "Apply" } else { "Update" }),
                );
                o.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = &e.time {
                    o.insert("time".into(), json!(t));
                }
                o.insert("fieldsType".into(), json!("FieldsV1"));
                o.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !id.subresource.is_empty() {
                    o.insert("subresource".into(), json!(id.subresource));
                }
                Value::Object(o)
            })
            .collect(),
    ))
}

fn seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// `isResetManagedFields`: an empty list, or one empty entry.
fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(a)) => {
            a.is_empty() || (a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

/// `stripMetaManager`'s paths: never part of a manager's set.
fn strip_meta(set: &Set) -> Set {
    static STRIP: std::sync::OnceLock<Set> = std::sync::OnceLock::new();
    set.difference(STRIP.get_or_init(strip_set))
}

fn strip_set() -> Set {
    let f = |s: &str| PathElement::Field(s.into());
    let mut strip = Set::new();
    for p in ["apiVersion", "kind", "metadata"] {
        strip.insert(&[f(p)]);
    }
    for p in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[f("metadata"), f(p)]);
    }
    strip
}

// ---------------------------------------------------------------------------------------------
// The kind's type and the fields a write may touch
// ---------------------------------------------------------------------------------------------

/// The fields outside a write's reach (`ResetFieldsStrategy`).
#[derive(Clone)]
enum Reset {
    /// None.
    Nothing,
    /// The main resource of a kind with a status subresource: `status`.
    Status,
    /// A subresource: everything but the field at this path.
    Only(Vec<String>),
    /// A built-in kind's status subresource: the fields at these paths (its status
    /// strategy's `GetResetFields`); the request's other metadata is written too.
    Except(&'static [&'static [&'static str]]),
}

/// `GetResetFields` of a built-in kind's status strategy: the spec, and what the strategy also
/// resets (a Deployment's labels, a Pod's deletion timestamp and owner references, a CRD's
/// metadata, a CSR's conditions).
fn status_reset_fields(r: &Resource) -> &'static [&'static [&'static str]] {
    match (r.group, r.kind) {
        ("apps", "Deployment") => &[&["spec"], &["metadata", "labels"]],
        ("", "Pod") => &[
            &["spec"],
            &["metadata", "deletionTimestamp"],
            &["metadata", "ownerReferences"],
        ],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &[&["metadata"], &["spec"]],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            &[&["spec"], &["status", "conditions"]]
        }
        _ => &[&["spec"]],
    }
}

/// `v` without the fields at `paths`.
fn without(v: &Value, paths: &[&[&str]]) -> Value {
    let mut v = v.clone();
    for path in paths {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut at = Some(&mut v);
        for p in parents {
            at = at.and_then(|x| x.get_mut(*p));
        }
        if let Some(m) = at.and_then(Value::as_object_mut) {
            m.remove(*last);
        }
    }
    v
}

struct Kind<'s> {
    schema: Schema,
    ty: Ty<'s>,
    api_version: String,
    reset: Reset,
    subresource: String,
    /// Entries of another API version cannot be converted to: a write drops them
    /// ([`crate::events::drops_other_versions`]).
    sole_version: bool,
}

impl<'s> Kind<'s> {
    fn new(r: &Resource, cr: Option<&'s Served>, subresource: Option<&str>) -> Option<Kind<'s>> {
        let schema = Schema::builtin();
        let ty = match cr {
            Some(sv) => Ty::CrdRoot(&sv.schema),
            None => schema.kind(r.group, r.version, r.kind)?,
        };
        let has_status = match cr {
            Some(sv) => sv.status,
            None => r.subresources.contains(&"status"),
        };
        let (reset, sub) = match subresource {
            // a custom resource's status strategy copies the stored object over all but the
            // status
            Some("status") if cr.is_some() => (Reset::Only(vec!["status".into()]), "status".into()),
            Some("status") => (Reset::Except(status_reset_fields(r)), "status".into()),
            Some(other) => (Reset::Nothing, other.to_string()),
            None if has_status => (Reset::Status, String::new()),
            None => (Reset::Nothing, String::new()),
        };
        Some(Kind {
            schema,
            ty,
            api_version: r.api_version(),
            reset,
            subresource: sub,
            sole_version: cr.is_none() && crate::events::drops_other_versions(r),
        })
    }

    fn compare(&self, old: &Value, new: &Value) -> Comparison {
        match &self.reset {
            Reset::Nothing => self.schema.compare(self.ty, Some(old), Some(new)),
            Reset::Status => self.schema.compare_without(self.ty, old, new, "status"),
            Reset::Only(path) => {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                self.schema.compare_at(self.ty, old, new, &p)
            }
            Reset::Except(paths) => self.schema.compare(
                self.ty,
                Some(&without(old, paths)),
                Some(&without(new, paths)),
            ),
        }
    }

    /// The ignore filter of a set (`NewExcludeSetFilter` of the reset fields).
    fn filter(&self, set: Set) -> Set {
        match &self.reset {
            Reset::Nothing => set,
            Reset::Status => {
                let mut s = Set::new();
                s.insert(&[PathElement::Field("status".into())]);
                set.recursive_difference(&s)
            }
            Reset::Only(path) => only(&set, path),
            Reset::Except(paths) => {
                let mut s = Set::new();
                for path in *paths {
                    let pes: Vec<PathElement> = path
                        .iter()
                        .map(|p| PathElement::Field((*p).into()))
                        .collect();
                    s.insert(&pes);
                }
                set.recursive_difference(&s)
            }
        }
    }
}

/// The part of `set` at `path` and below.
fn only(set: &Set, path: &[String]) -> Set {
    let Some((first, rest)) = path.split_first() else {
        return set.clone();
    };
    let pe = PathElement::Field(first.clone());
    let member = rest.is_empty() && set.has_member(&pe);
    let below = set.child(&pe).map(|c| only(c, rest)).unwrap_or_default();
    if !member && below.is_empty() {
        return Set::new();
    }
    Set::from_parts(
        if member { vec![pe.clone()] } else { vec![] },
        if below.is_empty() {
            vec![]
        } else {
            vec![(pe, below)]
        },
    )
}

// ---------------------------------------------------------------------------------------------
// structured-merge-diff's Updater
// ---------------------------------------------------------------------------------------------

/// Apply conflicts: each manager's paths.
type Conflicts = Vec<(ManagerId, Vec<PathElement>)>;

impl Kind<'_> {
    /// `Updater.update`: the comparison of `old` and `new`, other managers losing what was
    /// removed and (forced) what `workflow` changed of theirs.
    fn update_managers(
        &self,
        old: &Value,
        new: &Value,
        managers: &mut Managed,
        workflow: &ManagerId,
        force: bool,
    ) -> Result<Comparison, Conflicts> {
        let cmp = self.compare(old, new);
        let changed = cmp.modified.union(&cmp.added);
        if self.sole_version {
            // `Updater.update`: a manager whose version the objects cannot be converted to
            // (`IsMissingVersionError`) is deleted, before any conflict is looked for
            managers.retain(|id, e| id == workflow || !self.unconvertible(e));
        }
        let mut conflicts: Vec<(ManagerId, Set)> = Vec::new();
        for (id, e) in managers.iter() {
            if id == workflow {
                continue;
            }
            let c = e.set.intersection(&changed);
            if !c.is_empty() {
                conflicts.push((id.clone(), c));
            }
        }
        if !force && !conflicts.is_empty() {
            let mut out = Vec::new();
            for (id, c) in conflicts {
                for p in c.paths() {
                    out.push((id.clone(), p));
                }
            }
            return Err(out);
        }
        for (id, c) in conflicts {
            if let Some(e) = managers.get_mut(&id) {
                e.set = e.set.difference(&c);
            }
        }
        if !cmp.removed.is_empty() {
            for (id, e) in managers.iter_mut() {
                if id != workflow {
                    e.set = e.set.difference(&cmp.removed);
                }
            }
        }
        managers.retain(|_, e| !e.set.is_empty());
        Ok(cmp)
    }

    /// Whether the objects of a write cannot be converted to `e`'s API version
    /// (`versionConverter.Convert` fails with a missing version error).
    fn unconvertible(&self, e: &Entry) -> bool {
        self.sole_version && e.api_version != self.api_version
    }

    /// `Updater.Update` of `manager`'s write of `new` over `live`.
    fn update(&self, live: &Value, new: &Value, managers: &mut Managed, manager: &ManagerId) {
        let Ok(cmp) = self.update_managers(live, new, managers, manager, true) else {
            return;
        };
        let prev = managers.remove(manager).map(|e| e.set).unwrap_or_default();
        let set = prev
            .difference(&cmp.removed)
            .union(&cmp.modified)
            .union(&cmp.added);
        let set = self.filter(set);
        if !set.is_empty() {
            managers.insert(
                manager.clone(),
                Entry {
                    set,
                    api_version: self.api_version.clone(),
                    applied: false,
                    time: None,
                },
            );
        }
    }

    /// The field manager chain's update (`managedFieldsUpdater` over `stripMetaManager` over
    /// `structuredMergeManager`, under `buildManagerInfoManager` and `capManagersManager`).
    fn record_update(&self, live: &Value, new: &Value, managed: &mut Managed, manager: &str) {
        let id = ManagerId::new(manager, Op::Update, &self.api_version, &self.subresource);
        let current = ManagerId::current();
        self.update(live, new, managed, &current);
        if let Some(mut e) = managed.remove(&current) {
            e.set = strip_meta(&e.set);
            if !e.set.is_empty() {
                if let Some(prev) = managed.get(&id) {
                    e.set = e.set.union(&prev.set);
                }
                e.time = Some(crate::objects::now());
                managed.insert(id, e);
            }
        }
        cap_update_managers(managed);
    }

    /// `Updater.Apply`: `config` merged into `live`, what `manager` applied before and
    /// no longer applies removed unless someone else owns it, then the ownership update (a
    /// conflict unless `force`). `None`: nothing changed.
    fn apply(
        &self,
        live: &Value,
        config: &Value,
        managers: &mut Managed,
        manager: &ManagerId,
        force: bool,
    ) -> ApiResult<Result<Option<Value>, Conflicts>> {
        let merged = self
            .schema
            .merge(self.ty, Some(live), Some(config))
            .map_err(|e| {
                // `Updater.Apply`'s error, not an API status
                ApiError::unknown_internal(format!(
                    "failed to merge config: {}",
                    e.trim_start_matches(": ")
                ))
            })?
            .unwrap_or_else(|| json!({}));
        let (last, time) = match managers.get(manager) {
            // `Updater.prune`: a last applied set of a version the merged object cannot be
            // converted to prunes nothing
            Some(e) if self.unconvertible(e) => (None, e.time.clone()),
            Some(e) => (Some(e.set.clone()), e.time.clone()),
            None => (None, None),
        };
        let set = self.filter(self.schema.to_field_set(self.ty, config));
        managers.insert(
            manager.clone(),
            Entry {
                set,
                api_version: self.api_version.clone(),
                applied: true,
                time,
            },
        );
        let new = match last {
            Some(last) if !last.is_empty() => self.prune(merged, managers, &last),
            _ => merged,
        };
        if let Err(c) = self.update_managers(live, &new, managers, manager, force) {
            return Ok(Err(c));
        }
        Ok(Ok((new != *live).then_some(new)))
    }

    /// `Updater.prune` with `addBackOwnedItems` and `addBackDanglingItems`.
    fn prune(&self, merged: Value, managers: &Managed, last: &Set) -> Value {
        let s = &self.schema;
        let ensure = |set: &Set| s.ensure_named_fields_are_members(Some(self.ty), set);
        let mut pruned = merged.clone();
        s.remove_items(self.ty, &mut pruned, &ensure(last));
        // addBackOwnedItems (a manager of a version the object cannot be converted to is
        // passed over)
        let managed = managers
            .values()
            .filter(|e| !self.unconvertible(e))
            .fold(Set::new(), |acc, e| acc.union(&e.set));
        let merged_set = ensure(&s.to_field_set(self.ty, &merged));
        let pruned_set = ensure(&s.to_field_set(self.ty, &pruned));
        let mut owned = merged.clone();
        s.remove_items(
            self.ty,
            &mut owned,
            &merged_set.difference(&pruned_set.union(&ensure(&managed))),
        );
        // addBackDanglingItems
        let pruned_set = ensure(&s.to_field_set(self.ty, &owned));
        let mut out = merged;
        s.remove_items(
            self.ty,
            &mut out,
            &merged_set
                .difference(&pruned_set)
                .intersection(&ensure(last)),
        );
        out
    }
}

/// `capManagersManager.capUpdateManagers`: at most ten update entries, the oldest merged into
/// `ancient-changes` buckets per API version.
fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<ManagerId> = managed
        .iter()
        .filter(|(_, e)| !e.applied)
        .map(|(id, _)| id.clone())
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| {
        let (ta, tb) = (
            seconds(managed[a].time.as_deref()),
            seconds(managed[b].time.as_deref()),
        );
        ta.cmp(&tb).then_with(|| a.json().cmp(&b.json()))
    });
    let mut first: BTreeMap<String, ManagerId> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(e) = managed.get(&id).cloned() else {
            continue;
        };
        let version = e.api_version.clone();
        let bucket = ManagerId::new("ancient-changes", Op::Update, &version, "");
        match first.get(&version) {
            Some(f) => {
                if !managed.contains_key(&bucket) {
                    if let Some(s) = managed.remove(f) {
                        managed.insert(bucket.clone(), s);
                    }
                }
                let b = managed
                    .get(&bucket)
                    .map(|b| b.set.clone())
                    .unwrap_or_default();
                managed.insert(
                    bucket,
                    Entry {
                        set: e.set.union(&b),
                        api_version: version,
                        applied: e.applied,
                        time: e.time.clone(),
                    },
                );
                managed.remove(&id);
                length -= 1;
            }
            None => {
                first.insert(version, id);
            }
        }
    }
}

/// `NewConflictError`: 409 with a `FieldManagerConflict` cause per path.
fn conflict_error(conflicts: Conflicts) -> ApiError {
    let mut list: Vec<(ManagerId, Vec<PathElement>)> = conflicts;
    list.sort_by_key(|a| a.0.json());
    let causes: Vec<Value> = list
        .iter()
        .map(|(id, p)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", id.print()),
                "field": path_string(p),
            })
        })
        .collect();
    let message = if list.is_empty() {
        "Apply failed with 0 conflicts".to_string()
    } else if list.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            list[0].0.print(),
            path_string(&list[0].1)
        )
    } else {
        let mut lines = Vec::new();
        let mut prev: Option<&ManagerId> = None;
        for (id, p) in &list {
            if prev != Some(id) {
                lines.push(format!("conflicts with {}:", id.print()));
                prev = Some(id);
            }
            lines.push(format!("- {}", path_string(p)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            list.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}

// ---------------------------------------------------------------------------------------------
// The hooks of the write paths
// ---------------------------------------------------------------------------------------------

fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.get_mut("metadata").and_then(Value::as_object_mut)
}

fn set_managed(obj: &mut Value, v: Option<Value>) {
    if let Some(m) = metadata_mut(obj) {
        match v {
            Some(v) => {
                m.insert("managedFields".into(), v);
            }
            None => {
                m.remove("managedFields");
            }
        }
    }
}

/// A create (`create.go`: `FieldManager.UpdateNoErrors` of the new object over an empty one,
/// before admission): the creator's `Update` entry, or the managed fields the body sets
/// (`[]` resets them). A Pod is given typed (its JSON is `pod`'s).
pub fn on_create(
    r: &Resource,
    cr: Option<&Served>,
    obj: &mut Value,
    pod: Option<&mut k8s_openapi::api::core::v1::Pod>,
) {
    let (ns, name) = match &pod {
        Some(p) => (
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        ),
        None => {
            let s = |k: &str| {
                obj.pointer(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (s("/metadata/namespace"), s("/metadata/name"))
        }
    };
    if let Some(mf) = in_apply(r, &ns, &name) {
        // the apply's own (the create's metadata handling cleared what the body had)
        match pod {
            Some(p) => p.metadata.managed_fields = serde_json::from_value(mf).ok(),
            None => set_managed(obj, (!mf.is_null()).then_some(mf)),
        }
        return;
    }
    let Some(kind) = Kind::new(r, cr, None) else {
        return;
    };
    let manager = manager();
    match pod {
        Some(p) => {
            let given = p
                .metadata
                .managed_fields
                .take()
                .and_then(|m| serde_json::to_value(m).ok());
            let Ok(v) = serde_json::to_value(&*p) else {
                return;
            };
            let managed = created(&kind, &v, given.as_ref(), &manager);
            p.metadata.managed_fields = managed.and_then(|m| serde_json::from_value(m).ok());
        }
        None => {
            let given = metadata_mut(obj).and_then(|m| m.remove("managedFields"));
            let managed = created(&kind, obj, given.as_ref(), &manager);
            set_managed(obj, managed);
        }
    }
}

fn created(kind: &Kind<'_>, obj: &Value, given: Option<&Value>, manager: &str) -> Option<Value> {
    // `decodeLiveOrNew` against an empty live object
    let mut managed = if is_reset(given) {
        Managed::new()
    } else {
        decode(given).unwrap_or_default()
    };
    kind.record_update(&empty_object(obj), obj, &mut managed, manager);
    encode(&managed)
}

/// The live object of a create (`runtime.ObjectCreater.New`): upstream's typed zero value
/// has its `spec` and `status` structs, so they are not the creator's additions themselves.
fn empty_object(obj: &Value) -> Value {
    let mut e = Map::new();
    for k in ["spec", "status"] {
        if obj.get(k).is_some_and(Value::is_object) {
            e.insert(k.into(), json!({}));
        }
    }
    Value::Object(e)
}

/// What an update does to the stored managed fields, to restore after the strategy's
/// preparation (a status write keeps the stored metadata but the managed fields it made).
#[derive(Debug)]
pub struct Kept(Option<Option<Value>>);

/// An update (`update.go`, or a patch's `applyPatchToCurrentObject`:
/// `FieldManager.UpdateNoErrors` of the new object over the stored one, before admission):
/// the writer's `Update` entry takes the fields it changed. An object stored without managed
/// fields keeps none (`skipNonAppliedManager`).
pub fn on_update(
    r: &Resource,
    cr: Option<&Served>,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
) -> Kept {
    let s = |k: &str| old.pointer(k).and_then(Value::as_str).unwrap_or("");
    if let Some(mf) = in_apply(r, s("/metadata/namespace"), s("/metadata/name")) {
        return Kept(Some((!mf.is_null()).then_some(mf)));
    }
    // a binding writes the node name and annotations only (`BindingREST`, no field manager)
    if subresource == Some("binding") {
        return Kept(None);
    }
    let Some(kind) = Kind::new(r, cr, subresource) else {
        return Kept(None);
    };
    let given = metadata_mut(new).and_then(|m| m.remove("managedFields"));
    let live_mf = old.pointer("/metadata/managedFields");
    // `decodeLiveOrNew`: a subresource's request cannot set managed fields
    let mut managed = if !kind.subresource.is_empty() {
        decode(live_mf).unwrap_or_default()
    } else if is_reset(given.as_ref()) {
        Managed::new()
    } else {
        match decode(given.as_ref()) {
            Ok(m) if !m.is_empty() => m,
            _ => decode(live_mf).unwrap_or_default(),
        }
    };
    if managed.is_empty() {
        // `skipNonAppliedManager.Update`: an existing object not tracked yet stays untracked
        return Kept(Some(None));
    }
    kind.record_update(old, new, &mut managed, &manager());
    let v = encode(&managed);
    set_managed(new, v.clone());
    Kept(Some(v))
}

/// Puts back what [`on_update`] computed, after the strategy's preparation.
pub fn keep(new: &mut Value, kept: Kept) {
    if let Kept(Some(v)) = kept {
        set_managed(new, v);
    }
}

/// `lastAppliedManager.allowedConflictsFromLastApplied`: the fields of the client-side
/// applied configuration the live object still has as applied.
fn allowed_from_last_applied(kind: &Kind<'_>, live: &Value) -> Option<Set> {
    let text = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(kind.api_version.as_str()) {
        return None;
    }
    let set = kind.schema.to_field_set(kind.ty, &last);
    let cmp = kind.schema.compare(kind.ty, Some(&last), Some(live));
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// kubectl's client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `apimachineryvalidation.TotalAnnotationSizeLimitB`.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `lastAppliedUpdater.Apply`: an object that has kubectl's client-side apply annotation (not
/// empty, `hasLastApplied`) gets kubectl's server-side applied configuration in it (without
/// the annotation itself, encoded as `UnstructuredJSONScheme` encodes it), so a later
/// client-side apply starts from it; an annotation that would take the annotations past their
/// size limit is dropped instead (`SetLastApplied`).
fn sync_last_applied(obj: &mut Value, config: &Value) {
    let has = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !has {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let mut text = crate::fieldpath::go_json(&applied);
    text.push('\n');
    let Some(annotations) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    annotations.insert(LAST_APPLIED.into(), Value::String(text));
    // `ValidateAnnotationsSize`
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        annotations.remove(LAST_APPLIED);
    }
}

/// `schema.FromAPIVersionAndKind`'s group and version of `api_version` (`apps/v1`, `v1`);
/// both empty when it does not parse (more than one `/`).
fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        None => ("", api_version),
        Some((g, v)) if !v.contains('/') => (g, v),
        Some(_) => ("", ""),
    }
}

/// A server-side apply (`applyPatcher`, `FieldManager.Apply`): `config` merged into `live`
/// (`None`: the object does not exist yet) by the kind's schema, with the request's field
/// manager's `Apply` entry. The object to write, with its managed fields; written inside
/// [`applying`].
pub fn apply(
    r: &Resource,
    cr: Option<&Served>,
    live: Option<&Value>,
    config: &Value,
    subresource: Option<&str>,
) -> ApiResult<Value> {
    let expected = r.api_version();
    let Some(kind) = Kind::new(r, cr, subresource) else {
        return Err(ApiError::internal(format!(
            "no schema for {}, Kind={}",
            expected, r.kind
        )));
    };
    check_config(&kind, config, (r.group, r.version, r.kind))?;
    let empty = json!({"apiVersion": expected, "kind": r.kind});
    let live = live.unwrap_or(&empty);
    let mut managed = decode(live.pointer("/metadata/managedFields"))
        // `FieldManager.Apply`: not an API status, a 500 with the error's text
        .map_err(|e| ApiError::unknown_internal(format!("failed to decode managed fields: {e}")))?;
    if managed.is_empty() {
        // `skipNonAppliedManager.Apply`: what the object has is owned by `before-first-apply`
        kind.record_update(
            &empty_object(live),
            live,
            &mut managed,
            "before-first-apply",
        );
    }
    let id = ManagerId::new(&manager(), Op::Apply, &expected, &kind.subresource);
    // `lastAppliedManager`: kubectl taking over what it applied client-side
    let before = (id.manager == "kubectl").then(|| managed.clone());
    let out = match kind.apply(live, config, &mut managed, &id, force())? {
        Ok(out) => out,
        Err(conflicts) => {
            let allowed = before
                .as_ref()
                .and_then(|_| allowed_from_last_applied(&kind, live));
            let (Some(before), Some(allowed)) = (before, allowed) else {
                return Err(conflict_error(conflicts));
            };
            let rest: Conflicts = conflicts
                .into_iter()
                .filter(|(_, p)| !allowed.has(p))
                .collect();
            if !rest.is_empty() {
                return Err(conflict_error(rest));
            }
            managed = before;
            kind.apply(live, config, &mut managed, &id, true)?
                .map_err(conflict_error)?
        }
    };
    if let Some(e) = managed.get_mut(&id) {
        e.set = strip_meta(&e.set);
        if e.set.is_empty() {
            managed.remove(&id);
        } else if out.is_some() {
            e.time = Some(crate::objects::now());
        }
    }
    let mut obj = out.unwrap_or_else(|| live.clone());
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if id.manager == "kubectl" {
        sync_last_applied(&mut obj, config);
    }
    set_managed(&mut obj, encode(&managed));
    Ok(obj)
}

/// The checks of an applied configuration before it is merged, for the kind `gvk` the request
/// is for (`kind`'s type): an object, of that group, version and kind (`versionCheckManager`,
/// before structured-merge-diff's own version check, which this one makes unreachable),
/// without managed fields, and valid for the type (`structuredMergeManager.Apply`'s
/// `ObjectToTyped`: declared fields, no duplicate keys).
fn check_config(kind: &Kind<'_>, config: &Value, gvk: (&str, &str, &str)) -> ApiResult<()> {
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply patch must be an object".into(),
        ));
    }
    let str_of = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
    let (group, version) = group_version(str_of("apiVersion"));
    if (group, version, str_of("kind")) != gvk {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {group}/{version}, Kind={}",
            str_of("kind")
        )));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request(
            "metadata.managedFields must be nil".into(),
        ));
    }
    // not an API status, so a 500 with the error's text (`ErrorToAPIStatus`)
    let errs = kind.schema.validate(kind.ty, config);
    if !errs.is_empty() {
        let meta = |k: &str| {
            config
                .pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        // `ValidationErrors.Error`
        let msg = match errs.as_slice() {
            [one] => one.clone(),
            _ => format!("errors:\n  {}", errs.join("\n  ")),
        };
        return Err(ApiError::unknown_internal(format!(
            "failed to create typed patch object ({}/{}; {group}/{version}, Kind={}): {msg}",
            meta("namespace"),
            meta("name"),
            gvk.2
        )));
    }
    Ok(())
}

/// `autoscaling/v1`, the Scale's group version (`scaleGroupVersion`).
const SCALE_API_VERSION: &str = "autoscaling/v1";

/// A write of the scale subresource: an apply of a Scale configuration, or an update to the
/// Scale given (a replace, or the Scale a patch made).
#[derive(Debug, Clone, Copy)]
pub enum ScaleWrite<'a> {
    /// `application/apply-patch+yaml`: the applied configuration.
    Apply(&'a Value),
    /// Any other write: the new Scale.
    Update(&'a Value),
}

/// A write of the scale subresource of `r`'s object `parent`, whose replicas are at
/// `replicas_path` (`.spec.replicas`) and whose Scale is `live_scale`, as the scale storage
/// does it (`scaleUpdatedObjectInfo.UpdatedObject` in kubernetes
/// `pkg/registry/apps/deployment/storage/storage.go`, and the custom resources' equivalent):
/// the parent's managed fields made the Scale's (`ScaleHandler.ToSubresource`,
/// k8s.io/apimachinery `pkg/util/managedfields/scalehandler.go`: each manager of the replicas
/// owns the Scale's `.spec.replicas`), the write recorded on the Scale by the Scale's schema
/// with the request's manager (an apply's conflicts as any apply's; an `Apply` or `Update` entry
/// of subresource `scale`), and the result made the parent's again (`ScaleHandler.ToParent`: a
/// manager that lost the replicas loses the parent's replicas path, a new one gets an entry
/// with the replicas path and the parent's API version, and no time: upstream takes the time
/// from the parent's entries). Every version of the parent has its replicas at the same path
/// here (upstream's mappings list each known version; one it does not know is dropped).
/// Returns the Scale made (an update's is `write`'s) and the parent's managed fields (`Null`
/// for none), to be written with [`applying`].
pub fn scale_write(
    r: &Resource,
    parent: &Value,
    live_scale: &Value,
    write: ScaleWrite<'_>,
    replicas_path: &str,
) -> ApiResult<(Value, Value)> {
    let schema = Schema::builtin();
    let Some(ty) = schema.kind("autoscaling", "v1", "Scale") else {
        return Err(ApiError::internal(format!(
            "no schema for {SCALE_API_VERSION}, Kind=Scale"
        )));
    };
    let kind = Kind {
        schema,
        ty,
        api_version: SCALE_API_VERSION.into(),
        reset: Reset::Nothing,
        subresource: "scale".into(),
        sole_version: false,
    };
    if let ScaleWrite::Apply(config) = write {
        check_config(&kind, config, ("autoscaling", "v1", "Scale"))?;
    }
    let f = |s: &str| PathElement::Field(s.into());
    let parent_path: Vec<PathElement> = replicas_path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(f)
        .collect();
    let scale_path = [f("spec"), f("replicas")];
    let path_set = |p: &[PathElement]| {
        let mut s = Set::new();
        s.insert(p);
        s
    };
    let parent_version = r.api_version();
    let parent_live = parent.pointer("/metadata/managedFields");
    // `ScaleHandler.ToSubresource` (k8s.io/apimachinery `pkg/util/managedfields/scalehandler.go`)
    // returns `DecodeManagedFields`'s error as it is, before the Scale is patched or applied:
    // the parent's managed fields that do not decode fail any write of its scale (a 500), and
    // the parent keeps them
    let parent_managed = decode(parent_live).map_err(ApiError::unknown_internal)?;
    // `ToSubresource`
    let mut managed: Managed = parent_managed
        .iter()
        .filter(|(_, e)| e.set.has(&parent_path))
        .map(|(id, e)| {
            let entry = Entry {
                set: path_set(&scale_path),
                api_version: SCALE_API_VERSION.into(),
                applied: e.applied,
                time: e.time.clone(),
            };
            (id.clone(), entry)
        })
        .collect();
    let scale = match write {
        ScaleWrite::Apply(config) => {
            if managed.is_empty() {
                // `skipNonAppliedManager.Apply`
                kind.record_update(
                    &empty_object(live_scale),
                    live_scale,
                    &mut managed,
                    "before-first-apply",
                );
            }
            let id = ManagerId::new(&manager(), Op::Apply, SCALE_API_VERSION, "scale");
            let out = kind
                .apply(live_scale, config, &mut managed, &id, force())?
                .map_err(conflict_error)?;
            if let Some(e) = managed.get_mut(&id) {
                e.set = strip_meta(&e.set);
                if e.set.is_empty() {
                    managed.remove(&id);
                } else if out.is_some() {
                    e.time = Some(crate::objects::now());
                }
            }
            out.unwrap_or_else(|| live_scale.clone())
        }
        ScaleWrite::Update(new) => {
            // `skipNonAppliedManager.Update`: a Scale without managers (no manager of the
            // parent owns its replicas) is not tracked
            if !managed.is_empty() {
                kind.record_update(live_scale, new, &mut managed, &manager());
            }
            new.clone()
        }
    };
    // `ToParent`
    let mut to_parent = Managed::new();
    for (pid, e) in &parent_managed {
        if !e.set.has(&parent_path) {
            to_parent.insert(pid.clone(), e.clone());
        } else if managed.remove(pid).is_none() {
            // the replicas taken from it
            let set = e.set.difference(&path_set(&parent_path));
            if !set.is_empty() {
                to_parent.insert(pid.clone(), Entry { set, ..e.clone() });
            }
        } else {
            to_parent.insert(pid.clone(), e.clone());
        }
    }
    for (sid, e) in managed {
        if !e.set.has(&scale_path) {
            continue;
        }
        let time = parent_managed.get(&sid).and_then(|p| p.time.clone());
        // an update's identifier names the Scale's version until it is the parent's entry
        let id = ManagerId::new(&sid.manager, sid.op, &parent_version, &sid.subresource);
        let entry = Entry {
            set: path_set(&parent_path),
            api_version: parent_version.clone(),
            applied: e.applied,
            time,
        };
        to_parent.insert(id, entry);
    }
    // `managedFieldsEntries`: none left is an empty list (encoding itself cannot fail here)
    Ok((scale, encode(&to_parent).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static Resource {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    /// A scale write over parent managed fields that do not decode is refused with
    /// `DecodeManagedFields`'s error (`ScaleHandler.ToSubresource`), an update as an apply;
    /// nothing is wiped.
    #[test]
    fn a_scale_write_over_undecodable_managed_fields_fails() {
        let deployments = crate::resources::find("apps", "v1", "deployments").unwrap();
        let parent = json!({"metadata": {"name": "d", "managedFields": [{"manager": "m",
            "operation": "Replace", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}, "spec": {"replicas": 1}});
        let live = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "d"}, "spec": {"replicas": 1}});
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(2);
        for write in [ScaleWrite::Update(&new), ScaleWrite::Apply(&new)] {
            let e = scale_write(deployments, &parent, &live, write, ".spec.replicas").unwrap_err();
            assert_eq!(
                (e.code, e.reason, e.message.as_str()),
                (500, "", "operation must be `Apply` or `Update`")
            );
        }
    }

    #[test]
    fn a_create_records_the_creator() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
        on_create(pods(), None, &mut pod, None);
        let mf = &pod["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kube-controller-manager");
        assert_eq!(mf["operation"], "Update");
        assert_eq!(
            mf["fieldsV1"].to_string(),
            r#"{"f:metadata":{"f:labels":{".":{},"f:a":{}}},"f:spec":{"f:containers":{".":{},"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}}}}}}"#
        );
    }

    /// The apply of an unchanged pod changes nothing; the mount admission added stays.
    #[test]
    fn applying_an_unchanged_pod_again_keeps_what_admission_added() {
        let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let mut live = apply(pods(), None, None, &config, None).unwrap();
        live["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "tok", "mountPath": "/t"}]);
        live["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        let again = apply(pods(), None, Some(&live), &config, None).unwrap();
        assert_eq!(again, live);
    }

    fn configmaps() -> &'static Resource {
        crate::resources::find("", "v1", "configmaps").unwrap()
    }

    fn as_manager<T>(m: &str, force: bool, f: impl FnOnce() -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let req = Request {
            field_manager: Some(m.into()),
            user_agent: None,
            force,
        };
        rt.block_on(scope(req, async { f() }))
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    fn apply_as(m: &str, force: bool, live: Option<&Value>, data: Value) -> ApiResult<Value> {
        as_manager(m, force, || {
            apply(configmaps(), None, live, &cm(data), None)
        })
    }

    fn managers(obj: &Value) -> Vec<String> {
        obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}/{} {}",
                    e["manager"].as_str().unwrap(),
                    e["operation"].as_str().unwrap(),
                    e["fieldsV1"]
                )
            })
            .collect()
    }

    /// structured-merge-diff `merge/multiple_appliers_test.go` (`TestMultipleAppliersSet`,
    /// fields unset): what an applier drops goes, unless another applier applies it too.
    #[test]
    fn a_field_no_longer_applied_is_removed_unless_another_manager_owns_it() {
        let o = apply_as("a", false, None, json!({"x": "1", "y": "1"})).unwrap();
        let o = apply_as("b", false, Some(&o), json!({"y": "1"})).unwrap();
        let o = apply_as("a", false, Some(&o), json!({"z": "1"})).unwrap();
        assert_eq!(o["data"], json!({"y": "1", "z": "1"}));
        // (entries sort by time, then manager)
        let mut ms = managers(&o);
        ms.sort();
        assert_eq!(
            ms,
            vec![
                r#"a/Apply {"f:data":{"f:z":{}}}"#,
                r#"b/Apply {"f:data":{"f:y":{}}}"#
            ]
        );
        // applying the same again is no change at all
        let again = apply_as("a", false, Some(&o), json!({"z": "1"})).unwrap();
        assert_eq!(again, o);
    }

    /// `merge/conflict_test.go`, apiserver `conflict.go`: a value another manager owns is a
    /// 409 naming it; forced, the field changes hands.
    #[test]
    fn conflicts_and_force() {
        let o = apply_as("a", false, None, json!({"x": "1", "y": "1"})).unwrap();
        let e = apply_as("b", false, Some(&o), json!({"x": "2"})).unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        assert_eq!(
            e.message,
            r#"Apply failed with 1 conflict: conflict with "a": .data.x"#
        );
        assert_eq!(
            e.details.unwrap()["causes"],
            json!([{"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".data.x"}])
        );
        let e = apply_as("b", false, Some(&o), json!({"x": "2", "y": "2"})).unwrap_err();
        assert_eq!(
            e.message,
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.x\n- .data.y"
        );
        // the same value is shared ownership, not a conflict
        let shared = apply_as("b", false, Some(&o), json!({"x": "1"})).unwrap();
        assert_eq!(managers(&shared).len(), 2);
        let forced = apply_as("b", true, Some(&o), json!({"x": "2"})).unwrap();
        assert_eq!(forced["data"], json!({"x": "2", "y": "1"}));
        assert_eq!(
            managers(&forced),
            vec![
                r#"a/Apply {"f:data":{"f:y":{}}}"#,
                r#"b/Apply {"f:data":{"f:x":{}}}"#
            ]
        );
    }

    /// `skipnonapplied.go`: an object stored without managed fields stays so on updates; the
    /// first apply gives what it has to `before-first-apply`.
    #[test]
    fn objects_without_managed_fields() {
        let old = cm(json!({"x": "1"}));
        let mut new = cm(json!({"x": "2"}));
        let kept = as_manager("u", false, || {
            on_update(configmaps(), None, &old, &mut new, None)
        });
        keep(&mut new, kept);
        assert!(new["metadata"].get("managedFields").is_none());
        let e = apply_as("a", false, Some(&old), json!({"x": "3"})).unwrap_err();
        assert_eq!(
            e.message,
            r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.x"#
        );
    }

    /// `fieldmanager.go` `isResetManagedFields`, `update.go`: an update's writer takes what it
    /// changed; `managedFields: []` resets them.
    #[test]
    fn updates_take_fields_and_an_empty_list_resets() {
        let o = apply_as("a", false, None, json!({"x": "1", "y": "1"})).unwrap();
        let mut new = o.clone();
        new["data"]["x"] = json!("2");
        let kept = as_manager("editor", false, || {
            on_update(configmaps(), None, &o, &mut new, None)
        });
        keep(&mut new, kept);
        assert_eq!(
            managers(&new),
            vec![
                r#"a/Apply {"f:data":{"f:y":{}}}"#,
                r#"editor/Update {"f:data":{"f:x":{}}}"#
            ]
        );
        assert_eq!(new["metadata"]["managedFields"][1]["apiVersion"], "v1");
        let mut reset = new.clone();
        reset["metadata"]["managedFields"] = json!([]);
        let kept = as_manager("editor", false, || {
            on_update(configmaps(), None, &new, &mut reset, None)
        });
        keep(&mut reset, kept);
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    /// `capmanagers_test.go` (`TestCapManagersManagerMergesEntries`): past ten update entries
    /// the oldest are merged into `ancient-changes`.
    #[test]
    fn update_entries_are_capped() {
        let mut o = apply_as("a", false, None, json!({"k": "v"})).unwrap();
        for i in 0..11 {
            let mut new = o.clone();
            new["data"][format!("f{i}")] = json!("v");
            let kept = as_manager(&format!("m{i:02}"), false, || {
                on_update(configmaps(), None, &o, &mut new, None)
            });
            keep(&mut new, kept);
            o = new;
        }
        let ms = managers(&o);
        assert_eq!(
            ms.iter().filter(|m| m.contains("/Update")).count(),
            10,
            "{ms:?}"
        );
        assert!(
            ms.contains(&r#"ancient-changes/Update {"f:data":{"f:f0":{},"f:f1":{}}}"#.to_string()),
            "{ms:?}"
        );
    }

    /// `structuredmerge.go`, `patch.go` `ValidatePatchOptions`: what an apply must carry.
    #[test]
    fn bad_applies_are_refused() {
        // `versionCheckManager`: any group, version or kind other than the resource's
        for (api_version, kind, gvk) in [
            ("v2", "ConfigMap", "/v2, Kind=ConfigMap"),
            ("v1", "Foo", "/v1, Kind=Foo"),
            ("apps/v1", "ConfigMap", "apps/v1, Kind=ConfigMap"),
            ("a/b/c", "ConfigMap", "/, Kind=ConfigMap"),
        ] {
            let mut c = cm(json!({}));
            c["apiVersion"] = json!(api_version);
            c["kind"] = json!(kind);
            let e =
                as_manager("a", false, || apply(configmaps(), None, None, &c, None)).unwrap_err();
            assert_eq!(
                (e.code, e.message),
                (400, format!("invalid object type: {gvk}"))
            );
        }
        let mut c = cm(json!({}));
        c.as_object_mut().unwrap().remove("kind");
        let e = as_manager("a", false, || apply(configmaps(), None, None, &c, None)).unwrap_err();
        assert_eq!(e.message, "invalid object type: /v1, Kind=");
        let mut c = cm(json!({}));
        c["metadata"]["managedFields"] = json!([]);
        let e = as_manager("a", false, || apply(configmaps(), None, None, &c, None)).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "metadata.managedFields must be nil")
        );
        let e = validate_options("PatchOptions", None, true, false).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                422,
                r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
            )
        );
        let e = validate_options("PatchOptions", Some("m"), false, true).unwrap_err();
        assert!(
            e.message
                .ends_with("force: Forbidden: may not be specified for non-apply patch"),
            "{}",
            e.message
        );
        assert!(validate_options("PatchOptions", Some("kubectl"), true, true).is_ok());
        let e =
            validate_options("CreateOptions", Some(&"m".repeat(129)), false, false).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                422,
                r#"CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes"#
            )
        );
        assert!(validate_options("UpdateOptions", Some(&"m".repeat(128)), false, false).is_ok());
        // `unicode.IsPrint`, at the rune's byte offset
        for (m, bad) in [
            ("é\u{7}", Some("U+0007 (at position 2)")),
            ("a\u{a0}b", Some("U+00A0 (at position 1)")),
            ("ab\u{200b}", Some("U+200B (at position 2)")),
            ("x\u{e000}", Some("U+E000 (at position 1)")),
            ("a b-é_日本", None),
        ] {
            let got = validate_options("UpdateOptions", Some(m), false, false);
            match bad {
                Some(want) => {
                    let e = got.unwrap_err();
                    assert!(
                        e.message.ends_with(&format!(
                            "fieldManager: Invalid value: {}: invalid character {want}",
                            go_quote(m)
                        )),
                        "{}",
                        e.message
                    );
                }
                None => assert!(got.is_ok(), "{m}"),
            }
        }
        assert_eq!(prefix_from_user_agent("ab\u{200b}c\u{a0}d/1"), "abcd");
        assert_eq!(
            go_quote("é\u{7}\u{1}\u{a0}\u{e0001}\"\\"),
            r#""é\a\x01\u00a0\U000e0001\"\\""#
        );
        assert_eq!(
            prefix_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
    }

    /// `structuredMergeManager.Apply`: an applied configuration that does not fit the
    /// schema is refused with upstream's `failed to create typed patch object` error (a 500
    /// without a reason, as upstream's non-status error), and nothing is merged.
    #[test]
    fn applied_configurations_are_validated() {
        let mut c = cm(json!({"a": "1"}));
        c["spec"] = json!({"foo": 1});
        let e = as_manager("a", false, || apply(configmaps(), None, None, &c, None)).unwrap_err();
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (
                500,
                "",
                "failed to create typed patch object (/c; /v1, Kind=ConfigMap): .spec: field not declared in schema"
            )
        );
        let services = crate::resources::find("", "v1", "services").unwrap();
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns", "bogus": 1},
            "spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}});
        let e = as_manager("a", false, || apply(services, None, None, &svc, None)).unwrap_err();
        assert_eq!(
            e.message,
            "failed to create typed patch object (ns/s; /v1, Kind=Service): errors:\n  .metadata.bogus: field not declared in schema\n  .spec.ports: duplicate entries for key [port=80,protocol=\"TCP\"]"
        );
    }

    /// `Set.FromJSON`: malformed managed fields are an error, not read in part; an update
    /// that sends them keeps the stored ones (`decodeLiveOrNew`), an apply over stored ones
    /// fails (`FieldManager.Apply`); element types it does not know are ignored.
    #[test]
    fn malformed_managed_fields() {
        let bad = json!([{"manager": "x", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"k:{bad": {}}}}]);
        let live = apply_as("a", false, None, json!({"x": "1"})).unwrap();
        let mut new = live.clone();
        new["data"]["y"] = json!("2");
        new["metadata"]["managedFields"] = bad.clone();
        as_manager("b", false, || {
            let kept = on_update(configmaps(), None, &live, &mut new, None);
            keep(&mut new, kept);
        });
        assert_eq!(
            managers(&new),
            vec![
                r#"a/Apply {"f:data":{"f:x":{}}}"#,
                r#"b/Update {"f:data":{"f:y":{}}}"#
            ]
        );
        let mut broken = live.clone();
        broken["metadata"]["managedFields"] = bad;
        let e = apply_as("a", false, Some(&broken), json!({"x": "2"})).unwrap_err();
        assert_eq!((e.code, e.reason), (500, ""));
        assert!(
            e.message.starts_with("failed to decode managed fields: ")
                && e.message.contains("parsing key as path element"),
            "{}",
            e.message
        );
        broken["metadata"]["managedFields"][0]["fieldsV1"] = json!({"f:data": {"f:x": 1}});
        let e = apply_as("a", false, Some(&broken), json!({"x": "2"})).unwrap_err();
        assert!(e.message.contains("expect { or n"), "{}", e.message);
        let s = Set::from_fields_v1(&json!({"f:a": {}, "z:future": {}, "f:b": null})).unwrap();
        assert_eq!(s.to_fields_v1(), json!({"f:a": {}, "f:b": {}}));
    }

    /// `lastappliedupdater_test.go`: kubectl's server-side apply keeps the client-side
    /// annotation, where there is one, in step with what it applied.
    #[test]
    fn kubectl_keeps_the_last_applied_annotation_in_step() {
        let mut live = cm(json!({"x": "1"}));
        live["metadata"]["annotations"] = json!({LAST_APPLIED: "{}", "keep": "me"});
        let o = apply_as("kubectl", true, Some(&live), json!({"x": "2"})).unwrap();
        let text = o["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        let applied: Value = serde_json::from_str(text).unwrap();
        assert_eq!(applied, cm(json!({"x": "2"})));
        assert_eq!(o["metadata"]["annotations"]["keep"], "me");
        let other = apply_as("helm", true, Some(&live), json!({"x": "2"})).unwrap();
        assert_eq!(other["metadata"]["annotations"][LAST_APPLIED], "{}");
        // as Go encodes it: keys sorted, `<>&` escaped, a newline after
        assert_eq!(
            text,
            "{\"apiVersion\":\"v1\",\"data\":{\"x\":\"2\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}\n"
        );
        // an empty annotation is none (`hasLastApplied`)
        live["metadata"]["annotations"][LAST_APPLIED] = json!("");
        let o = apply_as("kubectl", true, Some(&live), json!({"x": "2"})).unwrap();
        assert_eq!(o["metadata"]["annotations"][LAST_APPLIED], "");
        // one that would take the annotations past 256 KiB is dropped (`SetLastApplied`)
        live["metadata"]["annotations"][LAST_APPLIED] = json!("{}");
        let big = "v".repeat(300 * 1024);
        let o = apply_as("kubectl", true, Some(&live), json!({"x": big})).unwrap();
        let a = o["metadata"]["annotations"].as_object().unwrap();
        assert!(!a.contains_key(LAST_APPLIED), "{:?}", a.keys());
        assert_eq!(a["keep"], "me");
        assert_eq!(o["data"]["x"].as_str().map(str::len), Some(300 * 1024));
    }

    /// `lastappliedmanager_test.go`: kubectl's first server-side apply of what it applied
    /// client-side takes over those fields without conflicts; other managers' changes still
    /// conflict.
    #[test]
    fn kubectl_takes_over_what_it_applied_client_side() {
        let mut created = cm(json!({"x": "1", "y": "1"}));
        let last = format!("{}\n", cm(json!({"x": "1", "y": "1"})));
        created["metadata"]["annotations"] = json!({LAST_APPLIED: last});
        let live = as_manager("kubectl-client-side-apply", false, || {
            let mut o = created.clone();
            on_create(configmaps(), None, &mut o, None);
            o
        });
        let o = apply_as("kubectl", false, Some(&live), json!({"x": "2", "y": "1"})).unwrap();
        assert_eq!(o["data"], json!({"x": "2", "y": "1"}));
        // another manager has no such pass
        let e = apply_as("tool", false, Some(&live), json!({"x": "2"})).unwrap_err();
        assert!(
            e.message
                .contains(r#"conflict with "kubectl-client-side-apply" using v1: .data.x"#),
            "{}",
            e.message
        );
        // nor has kubectl for a field the annotation does not have as it is
        let mut edited = live.clone();
        edited["data"]["y"] = json!("edited");
        let e = apply_as("kubectl", false, Some(&edited), json!({"y": "2"})).unwrap_err();
        assert!(e.message.ends_with(".data.y"), "{}", e.message);
    }

    /// k8s.io/api `ServicePort.Protocol` `+default="TCP"`: a port applied without its protocol
    /// is the stored port with the defaulted one, not a second port.
    #[test]
    fn list_map_keys_take_their_defaults() {
        let services = crate::resources::find("", "v1", "services").unwrap();
        let config = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let mut live = as_manager("kubectl", false, || {
            apply(services, None, None, &config, None)
        })
        .unwrap();
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        let again = as_manager("kubectl", false, || {
            apply(services, None, Some(&live), &config, None)
        })
        .unwrap();
        assert_eq!(
            again["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"}])
        );
        assert!(again["metadata"]["managedFields"][0]["fieldsV1"]
            .to_string()
            .contains(r#"k:{\"port\":80,\"protocol\":\"TCP\"}"#));
    }

    /// The objects of a fresh in-memory store, with the default namespace.
    async fn store() -> crate::objects::Objects {
        let o = crate::objects::Objects::new(std::sync::Arc::new(
            crate::teststore::TestStore::default(),
        ));
        o.bootstrap().await.unwrap();
        o
    }

    fn rv(o: &Value) -> &str {
        o["metadata"]["resourceVersion"].as_str().unwrap()
    }

    /// apiserver `storage/etcd3/store.go` `GuaranteedUpdate`: a write that leaves the object
    /// as stored (an unchanged re-apply, update or patch) is not written: same
    /// resourceVersion, no watch event, the managed fields' times kept.
    #[tokio::test]
    async fn an_unchanged_write_is_not_stored() {
        use crate::objects::User;
        use crate::objects::{Filter, ListOptions};
        let o = store().await;
        let r = configmaps();
        let req = |m: &str| Request {
            field_manager: Some(m.into()),
            user_agent: None,
            force: false,
        };
        let ct = "application/apply-patch+yaml";
        let body = cm(json!({"a": "1"}));
        let first = scope(
            req("ctl"),
            o.patch_by(&User::Admin, r, "default", "c", ct, &body, None, false),
        )
        .await;
        // the apply of an object that does not exist is a create (the handler's); here the
        // object is created first, then applied
        assert!(first.is_err());
        let created = scope(
            req("ctl"),
            o.create(r, "default", body.clone(), &User::Admin, false),
        )
        .await
        .unwrap();
        let applied = scope(
            req("ctl"),
            o.patch_by(&User::Admin, r, "default", "c", ct, &body, None, false),
        )
        .await
        .unwrap();
        assert_ne!(rv(&applied), rv(&created), "the first apply adds its entry");
        let mut events = o
            .watch(
                r,
                Some("default"),
                rv(&applied).parse().unwrap(),
                Filter::new(&ListOptions::default(), r, None).unwrap(),
            )
            .await
            .unwrap();
        let again = scope(
            req("ctl"),
            o.patch_by(&User::Admin, r, "default", "c", ct, &body, None, false),
        )
        .await
        .unwrap();
        assert_eq!(rv(&again), rv(&applied));
        assert_eq!(again, applied);
        let merged = scope(
            req("ctl"),
            o.patch_by(
                &User::Admin,
                r,
                "default",
                "c",
                "application/merge-patch+json",
                &json!({"data": {"a": "1"}}),
                None,
                false,
            ),
        )
        .await
        .unwrap();
        assert_eq!(rv(&merged), rv(&applied));
        let updated = scope(
            req("ctl"),
            o.update(r, "default", "c", applied.clone(), None, false),
        )
        .await
        .unwrap();
        assert_eq!(rv(&updated), rv(&applied));
        // a change is written, and is the one event
        let changed = scope(
            req("ctl"),
            o.patch_by(
                &User::Admin,
                r,
                "default",
                "c",
                "application/merge-patch+json",
                &json!({"data": {"a": "2"}}),
                None,
                false,
            ),
        )
        .await
        .unwrap();
        assert_ne!(rv(&changed), rv(&applied));
        // bounded, so a write that sends no event fails the test instead of hanging it
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
            .await
            .expect("the change's watch event within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(
            (ev.kind, ev.object["metadata"]["resourceVersion"].as_str()),
            ("MODIFIED", Some(rv(&changed)))
        );
    }
}
