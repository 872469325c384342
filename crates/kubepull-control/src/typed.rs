//! Objects walked by their schema, as server-side apply merges and compares them
//! (sigs.k8s.io/structured-merge-diff `typed`: `tofieldset.go`, `compare.go`, `merge.go`,
//! `remove.go`, `helpers.go`), over the OpenAPI schemas the server already has: the built-in
//! definitions ([`crate::openapi::builtin_definitions`]) and CustomResourceDefinitions'
//! structural schemas. The schema is read where the object needs it, nothing is built per
//! request, so the work follows the object's size.
//!
//! A schema node is read as kube-openapi `schemaconv` converts it: lists are atomic unless
//! `x-kubernetes-list-type` says `set` or `map` (with `x-kubernetes-list-map-keys`), or, without
//! it, `x-kubernetes-patch-strategy: merge` with a merge key; structs and maps are granular
//! unless `x-kubernetes-map-type: atomic`; int-or-string and schemaless values are atomic;
//! `x-kubernetes-preserve-unknown-fields` values are deduced from their shape.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::crd_schema;
use crate::fieldpath::{PathElement, Set};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Where a schema's `$ref`s point.
#[derive(Clone, Copy)]
pub struct Schema {
    defs: &'static Map<String, Value>,
}

/// A type: a schema node, the root of a custom resource's schema (its `metadata` is
/// ObjectMeta), or a value without a schema.
#[derive(Clone, Copy)]
pub enum Ty<'s> {
    /// An OpenAPI schema node.
    Node(&'s Value),
    /// A custom resource's `openAPIV3Schema`.
    CrdRoot(&'s Value),
    /// Atomic whatever its shape (`__untyped_atomic_`).
    Untyped,
    /// Its shape decides (`__untyped_deduced_`): maps granular, lists atomic.
    Deduced,
}

#[derive(Clone, Copy)]
enum Rel<'s> {
    Atomic,
    Set,
    Map(&'s [Value]),
}

#[derive(Clone, Copy)]
enum Atom<'s> {
    Leaf,
    List {
        elem: Ty<'s>,
        rel: Rel<'s>,
    },
    Map {
        fields: Option<&'s Map<String, Value>>,
        elem: Ty<'s>,
        atomic: bool,
        /// A resource's root (a custom resource's, an embedded resource's): `apiVersion`,
        /// `kind` and `metadata` (ObjectMeta) declared.
        crd_root: bool,
        /// A struct without an element type: fields it does not declare are not in the schema.
        closed: bool,
    },
}

impl Schema {
    /// The built-in definitions.
    pub fn builtin() -> Schema {
        Schema {
            defs: crate::openapi::builtin_definitions(),
        }
    }

    /// The type of a built-in kind (`group`, `version`, `kind`), from its definition's
    /// `x-kubernetes-group-version-kind`.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<Ty<'static>> {
        type Kinds = HashMap<String, Vec<(String, String, &'static Value)>>;
        static KINDS: OnceLock<Kinds> = OnceLock::new();
        let defs = self.defs;
        let kinds = KINDS.get_or_init(|| {
            let mut m = Kinds::new();
            for d in defs.values() {
                for gvk in d
                    .get("x-kubernetes-group-version-kind")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    m.entry(s("kind"))
                        .or_default()
                        .push((s("group"), s("version"), d));
                }
            }
            m
        });
        kinds
            .get(kind)?
            .iter()
            .find(|(g, v, _)| g == group && v == version)
            .map(|(_, _, d)| Ty::Node(d))
    }

    fn deref<'s>(&self, mut s: &'s Value) -> &'s Value
    where
        'static: 's,
    {
        for _ in 0..8 {
            let r = s.get("$ref").and_then(Value::as_str).or_else(|| {
                // `allOf: [{$ref}]` (a reference with its own description)
                match s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                    Some([one]) => one.get("$ref").and_then(Value::as_str),
                    _ => None,
                }
            });
            let Some(name) = r.and_then(|r| r.rsplit('/').next()) else {
                return s;
            };
            match self.defs.get(name) {
                Some(d) => s = d,
                None => return s,
            }
        }
        s
    }

    fn atom<'s>(&self, ty: Ty<'s>, v: Option<&Value>) -> Atom<'s>
    where
        'static: 's,
    {
        let (node, crd_root) = match ty {
            Ty::Untyped => return Atom::Leaf,
            Ty::Deduced => {
                return match v {
                    Some(Value::Object(_)) => Atom::Map {
                        fields: None,
                        elem: Ty::Deduced,
                        atomic: false,
                        crd_root: false,
                        closed: false,
                    },
                    Some(Value::Array(_)) => Atom::List {
                        elem: Ty::Deduced,
                        rel: Rel::Atomic,
                    },
                    _ => Atom::Leaf,
                }
            }
            Ty::Node(n) => (self.deref(n), false),
            Ty::CrdRoot(n) => (n, true),
        };
        let preserve = crd_schema::preserve(node);
        if crd_schema::int_or_string(node)
            || node.get("format").and_then(Value::as_str) == Some("int-or-string")
        {
            return Atom::Leaf;
        }
        let typ = node.get("type").and_then(Value::as_str);
        if typ == Some("array") {
            let elem = node.get("items").map_or(Ty::Untyped, Ty::Node);
            let keys = || {
                node.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
            };
            let rel = match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => Rel::Set,
                Some("map") => Rel::Map(keys().unwrap_or(&[])),
                Some(_) => Rel::Atomic,
                None => match (
                    node.get("x-kubernetes-patch-strategy")
                        .and_then(Value::as_str),
                    node.get("x-kubernetes-patch-merge-key"),
                ) {
                    (Some("merge"), Some(Value::String(_))) => {
                        Rel::Map(std::slice::from_ref(&node["x-kubernetes-patch-merge-key"]))
                    }
                    _ => Rel::Atomic,
                },
            };
            return Atom::List { elem, rel };
        }
        let atomic = node.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
        let props = crd_schema::props(node);
        let additional = match crd_schema::additional(node) {
            Some(a) => Some(Ty::Node(a)),
            None if node.get("additionalProperties") == Some(&Value::Bool(true)) => {
                Some(Ty::Deduced)
            }
            None => None,
        };
        let crd_root = crd_root || crd_schema::embedded(node);
        if props.is_some() || crd_root {
            return Atom::Map {
                fields: props,
                elem: additional.unwrap_or(Ty::Deduced),
                atomic,
                crd_root,
                closed: additional.is_none() && !preserve,
            };
        }
        if let Some(elem) = additional {
            return Atom::Map {
                fields: None,
                elem,
                atomic,
                crd_root: false,
                closed: false,
            };
        }
        if preserve {
            return self.atom(Ty::Deduced, v);
        }
        Atom::Leaf
    }

    /// The type of field `key` in a struct or map, and whether the struct declares it.
    fn field<'s>(
        &self,
        fields: Option<&'s Map<String, Value>>,
        elem: Ty<'s>,
        crd_root: bool,
        key: &str,
    ) -> (Ty<'s>, bool)
    where
        'static: 's,
    {
        if crd_root {
            match key {
                "metadata" => {
                    if let Some(m) = self.defs.get(OBJECT_META) {
                        return (Ty::Node(m), true);
                    }
                }
                "apiVersion" | "kind" => return (Ty::Untyped, true),
                _ => {}
            }
        }
        match fields.and_then(|f| f.get(key)) {
            Some(f) => (Ty::Node(f), true),
            None => (elem, false),
        }
    }

    /// The path element of a list item (`listItemToPathElement`).
    fn item_pe<'s>(&self, elem: Ty<'s>, rel: Rel<'s>, item: &Value) -> Result<PathElement, String>
    where
        'static: 's,
    {
        match rel {
            Rel::Atomic => Err("invalid indexing of non-associative list".into()),
            Rel::Set => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".into())
                }
                Value::Array(_) => {
                    Err("not supported: associative list with lists as elements".into())
                }
                Value::Null => Err(
                    "associative list without keys has an element that's an explicit null".into(),
                ),
                v => Ok(PathElement::Value(v.clone())),
            },
            Rel::Map(keys) => {
                let Value::Object(m) = item else {
                    return Err(match item {
                        Value::Null => {
                            "associative list with keys may not have a null element".into()
                        }
                        _ => "associative list with keys may not have non-map elements".into(),
                    });
                };
                let mut k = Vec::with_capacity(keys.len());
                for name in keys.iter().filter_map(Value::as_str) {
                    match m.get(name) {
                        Some(v) => k.push((name.to_string(), v.clone())),
                        None => {
                            // `getAssociativeKeyDefault`: the key field's schema default
                            let d = match self.atom(elem, Some(item)) {
                                Atom::Map { fields, .. } => fields
                                    .and_then(|f| f.get(name))
                                    .map(|f| self.deref(f))
                                    .and_then(|f| f.get("default"))
                                    .cloned(),
                                _ => None,
                            };
                            if let Some(d) = d.or_else(|| self.generated_default(elem, name)) {
                                k.push((name.to_string(), d));
                            }
                        }
                    }
                }
                if !keys.is_empty() && k.is_empty() {
                    let names: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
                    return Err(format!(
                        "associative list with keys has an element that omits all key fields {names:?} (and doesn't have default values for any key fields)"
                    ));
                }
                k.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(k))
            }
        }
    }

    /// The `+default` of a list-map key field that upstream's generated definitions carry
    /// and its published OpenAPI v2 (the vendored data) leaves out: the port protocols
    /// (k8s.io/api `core/v1/types.go`, `ContainerPort.Protocol` and `ServicePort.Protocol`,
    /// `+default="TCP"`), keys of `ports` lists the server defaults.
    fn generated_default(&self, elem: Ty<'_>, field: &str) -> Option<Value> {
        const DEFAULTS: [(&str, &str, &str); 2] = [
            ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
            ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
        ];
        let Ty::Node(n) = elem else { return None };
        let n = self.deref(n);
        DEFAULTS
            .iter()
            .find(|(def, f, _)| {
                *f == field && self.defs.get(*def).is_some_and(|d| std::ptr::eq(d, n))
            })
            .map(|(_, _, v)| Value::String(v.to_string()))
    }

    /// `TypedValue.Validate` of a value made typed (`AsTyped`, duplicates not allowed): each
    /// error as `ValidationError.Error` prints it (`.spec.foo: field not declared in schema`,
    /// `.spec.ports: duplicate entries for key [port=80]`, `.spec.replicas: expected numeric
    /// (int or float), got string`).
    pub fn validate(&self, ty: Ty<'_>, v: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        let mut path = String::new();
        self.validate_node(ty, v, &mut path, &mut errs);
        errs
    }

    fn validate_node(&self, ty: Ty<'_>, v: &Value, path: &mut String, errs: &mut Vec<String>) {
        let at = |path: &str, msg: String| {
            if path.is_empty() {
                msg
            } else {
                format!("{path}: {msg}")
            }
        };
        match (self.atom(ty, Some(v)), v) {
            (Atom::List { elem, rel }, Value::Array(items)) => {
                // `visitListItems`
                let mut seen: BTreeSet<PathElement> = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let pe = if matches!(rel, Rel::Atomic) {
                        PathElement::Index(i)
                    } else {
                        match self.item_pe(elem, rel, item) {
                            Ok(pe) => pe,
                            Err(e) => {
                                errs.push(at(path, format!("element {i}: {e}")));
                                return;
                            }
                        }
                    };
                    if !matches!(rel, Rel::Atomic) && !seen.insert(pe.clone()) {
                        errs.push(at(path, format!("duplicate entries for key {pe}")));
                    }
                    let len = path.len();
                    path.push_str(&pe.to_string());
                    self.validate_node(elem, item, path, errs);
                    path.truncate(len);
                }
            }
            (
                Atom::Map {
                    fields,
                    elem,
                    crd_root,
                    closed,
                    ..
                },
                Value::Object(m),
            ) => {
                // `visitMapItems`: an undeclared field ends the map's walk
                for (k, val) in m {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    let (fty, declared) = self.field(fields, elem, crd_root, k);
                    if !declared && closed {
                        errs.push(at(path, "field not declared in schema".into()));
                        path.truncate(len);
                        return;
                    }
                    self.validate_node(fty, val, path, errs);
                    path.truncate(len);
                }
            }
            // `listValue` and `mapValue` (structured-merge-diff v4.4 `typed/helpers.go`): null
            // is a valid list or map, anything else is not
            (_, Value::Null) => {}
            (Atom::List { .. }, v) => {
                errs.push(at(path, format!("expected list, got {}", go_value_v(v))));
            }
            (Atom::Map { .. }, v) => {
                errs.push(at(path, format!("expected map, got {}", go_value_v(v))));
            }
            (Atom::Leaf, v) => {
                if let Some(msg) = self.scalar_error(ty, v) {
                    errs.push(at(path, msg));
                }
            }
        }
    }

    /// `validateScalar` (structured-merge-diff v4.4 `typed/validate.go`) of a value that is not
    /// null, for a node whose OpenAPI type is a scalar one (`integer` and `number` are numeric):
    /// the message for a value of another type, as Go formats it (`%T` of the value, `%#v` and
    /// `%v` of the `*valueUnstructured` holding it). Quantities (a string in the v2
    /// definitions, string or number in upstream's v3 ones), int-or-string and untyped values
    /// take any scalar.
    fn scalar_error(&self, ty: Ty<'_>, v: &Value) -> Option<String> {
        const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
        let Ty::Node(n) = ty else { return None };
        let node = self.deref(n);
        let int_or_string = crd_schema::int_or_string(node)
            || node.get("format").and_then(Value::as_str) == Some("int-or-string");
        if int_or_string
            || self
                .defs
                .get(QUANTITY)
                .is_some_and(|q| std::ptr::eq(q, node))
        {
            return None;
        }
        match node.get("type").and_then(Value::as_str)? {
            "integer" | "number" if !v.is_number() => Some(format!(
                "expected numeric (int or float), got {}",
                go_type(v)
            )),
            "string" if !v.is_string() => {
                Some(format!("expected string, got {}", go_value_sharp_v(v)))
            }
            "boolean" if !v.is_boolean() => {
                Some(format!("expected boolean, got {}", go_value_v(v)))
            }
            _ => None,
        }
    }

    /// The fields `v` sets (`TypedValue.ToFieldSet`).
    pub fn to_field_set(&self, ty: Ty<'_>, v: &Value) -> Set {
        self.set_node(ty, v).0
    }

    /// The set below a value, and whether the value is a leaf (its own path a member).
    fn set_node(&self, ty: Ty<'_>, v: &Value) -> (Set, bool) {
        match self.atom(ty, Some(v)) {
            Atom::Leaf => (Set::new(), true),
            Atom::List { elem, rel } => {
                let Value::Array(items) = v else {
                    return (Set::new(), !v.is_null());
                };
                if matches!(rel, Rel::Atomic) {
                    return (Set::new(), true);
                }
                let pes: Vec<Option<PathElement>> = items
                    .iter()
                    .map(|i| self.item_pe(elem, rel, i).ok())
                    .collect();
                let mut seen: BTreeMap<&PathElement, usize> = Default::default();
                for pe in pes.iter().flatten() {
                    *seen.entry(pe).or_default() += 1;
                }
                let mut members = Vec::with_capacity(items.len());
                let mut children = Vec::new();
                for (item, pe) in items.iter().zip(&pes) {
                    let Some(pe) = pe else { continue };
                    // a duplicated item is owned as a whole (`visitListItems`)
                    let dup = seen.get(pe).is_some_and(|n| *n > 1);
                    members.push(pe.clone());
                    if dup {
                        continue;
                    }
                    let (sub, _) = self.set_node(elem, item);
                    if !sub.is_empty() {
                        children.push((pe.clone(), sub));
                    }
                }
                (Set::from_parts(members, children), false)
            }
            Atom::Map {
                fields,
                elem,
                atomic,
                crd_root,
                ..
            } => {
                let Value::Object(m) = v else {
                    return (Set::new(), !v.is_null());
                };
                if atomic {
                    return (Set::new(), true);
                }
                let mut members = Vec::new();
                let mut children = Vec::new();
                for (k, val) in m {
                    let (fty, declared) = self.field(fields, elem, crd_root, k);
                    let (sub, leaf) = self.set_node(fty, val);
                    let pe = PathElement::Field(k.clone());
                    let empty_map = val.as_object().is_some_and(Map::is_empty);
                    if leaf || val.is_null() || empty_map || !declared {
                        members.push(pe.clone());
                    }
                    if !sub.is_empty() {
                        children.push((pe, sub));
                    }
                }
                (Set::from_parts(members, children), false)
            }
        }
    }

    /// What changed from `l` to `r` (`TypedValue.Compare`).
    pub fn compare(&self, ty: Ty<'_>, l: Option<&Value>, r: Option<&Value>) -> Comparison {
        self.cmp(ty, l, r).at(&[])
    }

    /// `compareWalker`: what changed at one value and below it. Each level's paths are
    /// sorted among their siblings only, so the comparison follows the objects' size.
    fn cmp(&self, ty: Ty<'_>, l: Option<&Value>, r: Option<&Value>) -> Changes {
        let mut c = Changes::default();
        let leaf = |mut c: Changes| {
            match (l, r) {
                (None, _) => c.here[ADDED] = true,
                (_, None) => c.here[REMOVED] = true,
                (Some(a), Some(b)) => c.here[MODIFIED] = a != b,
            }
            c
        };
        // equal values: nothing to find below (one comparison, no paths built)
        if l == r {
            return c;
        }
        let atom = self.atom(ty, r.or(l));
        // values of different shapes are compared as wholes
        let shape = |v: &Value| match v {
            Value::Object(_) => 1,
            Value::Array(_) => 2,
            Value::Null => 3,
            _ => 0,
        };
        if let (Some(a), Some(b)) = (l, r) {
            if shape(a) != shape(b) && !a.is_null() && !b.is_null() {
                return leaf(c);
            }
        }
        match atom {
            Atom::Leaf => return leaf(c),
            Atom::List { elem, rel } => {
                let (la, ra) = (as_list(l), as_list(r));
                if la.is_empty() && ra.is_empty() || matches!(rel, Rel::Atomic) {
                    return leaf(c);
                }
                self.cmp_list(elem, rel, la, ra, &mut c);
            }
            Atom::Map {
                fields,
                elem,
                atomic,
                crd_root,
                ..
            } => {
                let (lm, rm) = (as_map(l), as_map(r));
                if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) || atomic {
                    return leaf(c);
                }
                for (k, lv) in lm.into_iter().flatten() {
                    let rv = rm.and_then(|m| m.get(k));
                    let (fty, _) = self.field(fields, elem, crd_root, k);
                    let sub = self.cmp(fty, Some(lv), rv);
                    c.child(PathElement::Field(k.clone()), sub);
                }
                for (k, rv) in rm.into_iter().flatten() {
                    if lm.is_some_and(|m| m.contains_key(k)) {
                        continue;
                    }
                    let (fty, _) = self.field(fields, elem, crd_root, k);
                    let sub = self.cmp(fty, None, Some(rv));
                    c.child(PathElement::Field(k.clone()), sub);
                }
            }
        }
        // a container only one side has
        if l.is_none() {
            c.here[ADDED] = true;
        } else if r.is_none() {
            c.here[REMOVED] = true;
        }
        c
    }

    /// `compareWalker.visitListItems`.
    fn cmp_list(&self, elem: Ty<'_>, rel: Rel<'_>, la: &[Value], ra: &[Value], c: &mut Changes) {
        // items by element, in the order first seen (left, then the right's new ones)
        let mut order: Vec<PathElement> = Vec::new();
        let mut lv: Vec<Vec<&Value>> = Vec::new();
        let mut rv: Vec<Vec<&Value>> = Vec::new();
        let mut index: BTreeMap<PathElement, usize> = Default::default();
        for (side, items) in [(0, la), (1, ra)] {
            for item in items {
                let Ok(pe) = self.item_pe(elem, rel, item) else {
                    continue;
                };
                let i = *index.entry(pe.clone()).or_insert_with(|| {
                    order.push(pe);
                    lv.push(Vec::new());
                    rv.push(Vec::new());
                    order.len() - 1
                });
                if side == 0 {
                    lv[i].push(item);
                } else {
                    rv[i].push(item);
                }
            }
        }
        for (i, pe) in order.into_iter().enumerate() {
            let (l, r) = (&lv[i], &rv[i]);
            let sub = match (l.len(), r.len()) {
                (0..=1, 0..=1) => self.cmp(elem, l.first().copied(), r.first().copied()),
                (a, b) if a >= 2 && b >= 2 => {
                    let mut sub = Changes::default();
                    sub.here[MODIFIED] = l != r;
                    sub
                }
                (a, _) if a >= 2 => {
                    let mut sub = match r.first() {
                        Some(first) => self.cmp(elem, None, Some(first)),
                        None => Changes::default(),
                    };
                    sub.here[REMOVED] = true;
                    sub
                }
                _ => {
                    let mut sub = match l.first() {
                        Some(first) => self.cmp(elem, Some(first), None),
                        None => Changes::default(),
                    };
                    sub.here[ADDED] = true;
                    sub
                }
            };
            c.child(pe, sub);
        }
    }

    /// `l` with `r` merged in (`TypedValue.Merge`): what `r` sets wins, lists are merged by
    /// their keys or values in `r`'s order, atomic values replaced whole.
    pub fn merge(
        &self,
        ty: Ty<'_>,
        l: Option<&Value>,
        r: Option<&Value>,
    ) -> Result<Option<Value>, String> {
        let keep_rhs = || Ok(r.or(l).cloned());
        let atom = self.atom(ty, r.or(l));
        match atom {
            Atom::Leaf => keep_rhs(),
            Atom::List { elem, rel } => {
                let (la, ra) = (as_list(l), as_list(r));
                if matches!(rel, Rel::Atomic)
                    || la.is_empty() && ra.is_empty()
                    || l.is_some_and(|v| !v.is_array() && !v.is_null())
                    || r.is_some_and(|v| !v.is_array() && !v.is_null())
                {
                    return keep_rhs();
                }
                let out = self.merge_list(elem, rel, la, ra)?;
                Ok((!out.is_empty()).then_some(Value::Array(out)))
            }
            Atom::Map {
                fields,
                elem,
                atomic,
                crd_root,
                ..
            } => {
                let (lm, rm) = (as_map(l), as_map(r));
                if atomic
                    || lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty)
                    || l.is_some_and(|v| !v.is_object() && !v.is_null())
                    || r.is_some_and(|v| !v.is_object() && !v.is_null())
                {
                    return keep_rhs();
                }
                let mut out = Map::new();
                for (k, lv) in lm.into_iter().flatten() {
                    let rv = rm.and_then(|m| m.get(k));
                    let (fty, _) = self.field(fields, elem, crd_root, k);
                    let m = self
                        .merge(fty, Some(lv), rv)
                        .map_err(|e| format!(".{k}{e}"))?;
                    if let Some(m) = m {
                        out.insert(k.clone(), m);
                    }
                }
                for (k, rv) in rm.into_iter().flatten() {
                    if lm.is_some_and(|m| m.contains_key(k)) {
                        continue;
                    }
                    let (fty, _) = self.field(fields, elem, crd_root, k);
                    let m = self
                        .merge(fty, None, Some(rv))
                        .map_err(|e| format!(".{k}{e}"))?;
                    if let Some(m) = m {
                        out.insert(k.clone(), m);
                    }
                }
                Ok((!out.is_empty()).then_some(Value::Object(out)))
            }
        }
    }

    /// `mergingWalker.visitListItems`: the right's items in its order, the left's items the
    /// right lacks kept where they were relative to the items both have. Both sides are
    /// indexed by element (`indexListPathElements`), so the merge is `n log n`.
    fn merge_list(
        &self,
        elem: Ty<'_>,
        rel: Rel<'_>,
        la: &[Value],
        ra: &[Value],
    ) -> Result<Vec<Value>, String> {
        // each item's element, and each element's item (`None`: duplicated, no value of its own)
        type Index<'p> = BTreeMap<&'p PathElement, Option<usize>>;
        let elements = |items: &[Value]| -> Result<Vec<PathElement>, String> {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    self.item_pe(elem, rel, item)
                        .map_err(|e| format!(": element {i}: {e}"))
                })
                .collect()
        };
        let rpes = elements(ra)?;
        let robs = index(&rpes, false)?;
        let lpes = elements(la)?;
        let lobs = index(&lpes, true)?;
        fn index(pes: &[PathElement], dups: bool) -> Result<Index<'_>, String> {
            let mut seen = Index::new();
            for (i, pe) in pes.iter().enumerate() {
                match seen.entry(pe) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        if !dups {
                            return Err(format!(": duplicate entries for key {pe}"));
                        }
                        e.insert(None);
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(Some(i));
                    }
                }
            }
            Ok(seen)
        }
        fn item<'v>(obs: &Index<'_>, items: &'v [Value], pe: &PathElement) -> Option<&'v Value> {
            obs.get(pe).copied().flatten().map(|i| &items[i])
        }
        let mut shared = rpes.iter().filter(|pe| lobs.contains_key(pe));
        let mut next_shared = shared.next();
        let mut merged_r: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(la.len().max(ra.len()));
        let (mut li, mut ri) = (0, 0);

        let push = |out: &mut Vec<Value>,
                    pe: &PathElement,
                    l: Option<&Value>,
                    r: Option<&Value>|
         -> Result<(), String> {
            if l.is_none() && r.is_none() {
                return Ok(());
            }
            if let Some(v) = self.merge(elem, l, r).map_err(|e| format!("{pe}{e}"))? {
                out.push(v);
            }
            Ok(())
        };
        while li < lpes.len() || ri < rpes.len() {
            if li < lpes.len() && ri < rpes.len() {
                let pe = &lpes[li];
                if *pe == rpes[ri] {
                    merged_r.insert(pe);
                    push(&mut out, pe, item(&lobs, la, pe), item(&robs, ra, pe))?;
                    li += 1;
                    ri += 1;
                    next_shared = shared.next();
                    continue;
                }
                if robs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < lpes.len() {
                let pe = &lpes[li];
                if !robs.contains_key(pe) {
                    push(&mut out, pe, Some(&la[li]), None)?;
                    li += 1;
                    continue;
                } else if merged_r.contains(pe) {
                    li += 1;
                }
            }
            if ri < rpes.len() {
                let pe = &rpes[ri];
                merged_r.insert(pe);
                push(&mut out, pe, item(&lobs, la, pe), item(&robs, ra, pe))?;
                ri += 1;
                if next_shared.is_some_and(|n| n == pe) {
                    next_shared = shared.next();
                }
            }
        }
        Ok(out)
    }

    /// `v` without the paths of `remove` (`TypedValue.RemoveItems`); a map or list left empty
    /// is dropped from its parent.
    pub fn remove_items(&self, ty: Ty<'_>, v: &mut Value, remove: &Set) {
        match self.atom(ty, Some(v)) {
            Atom::Leaf => {}
            Atom::List { elem, rel } => {
                if matches!(rel, Rel::Atomic) {
                    return;
                }
                let Value::Array(items) = v else { return };
                items.retain_mut(|item| {
                    let Ok(pe) = self.item_pe(elem, rel, item) else {
                        return true;
                    };
                    if remove.has_member(&pe) {
                        return false;
                    }
                    if let Some(sub) = remove.child(&pe) {
                        self.remove_items(elem, item, sub);
                    }
                    true
                });
            }
            Atom::Map {
                fields,
                elem,
                atomic,
                crd_root,
                ..
            } => {
                if atomic {
                    return;
                }
                let Value::Object(m) = v else { return };
                m.retain(|k, val| {
                    let pe = PathElement::Field(k.clone());
                    if remove.has_member(&pe) {
                        return false;
                    }
                    if let Some(sub) = remove.child(&pe) {
                        let (fty, _) = self.field(fields, elem, crd_root, k);
                        let was_empty = is_empty_container(val);
                        self.remove_items(fty, val, sub);
                        // emptied by the removal: null upstream, which the typed object omits
                        if !was_empty && is_empty_container(val) {
                            return false;
                        }
                    }
                    true
                });
            }
        }
    }

    /// `Set.EnsureNamedFieldsAreMembers`: every struct field with paths below it is a member
    /// too, so removing a set also removes the fields it named.
    pub fn ensure_named_fields_are_members(&self, ty: Option<Ty<'_>>, s: &Set) -> Set {
        let atom = ty.map(|t| self.atom(t, None));
        let mut members = s.members().to_vec();
        let mut children = Vec::with_capacity(s.children().len());
        for (pe, sub) in s.children() {
            let child_ty = match (atom, pe) {
                (
                    Some(Atom::Map {
                        fields,
                        elem,
                        crd_root,
                        ..
                    }),
                    PathElement::Field(name),
                ) => {
                    let (t, declared) = self.field(fields, elem, crd_root, name);
                    if declared {
                        members.push(pe.clone());
                    }
                    Some(t)
                }
                (Some(Atom::List { elem, .. }), PathElement::Key(_)) => Some(elem),
                _ => None,
            };
            children.push((
                pe.clone(),
                self.ensure_named_fields_are_members(child_ty, sub),
            ));
        }
        Set::from_parts(members, children)
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn as_list(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    match v {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// What changed between two objects (`typed.Comparison`).
#[derive(Debug, Default, Clone)]
pub struct Comparison {
    /// Paths only the left has.
    pub removed: Set,
    /// Paths whose values differ.
    pub modified: Set,
    /// Paths only the right has.
    pub added: Set,
}

const REMOVED: usize = 0;
const MODIFIED: usize = 1;
const ADDED: usize = 2;

/// What changed at one value (its own path removed, modified or added) and the sets below it,
/// each level built from its siblings once (inserting path by path into sorted sets is
/// quadratic in a list's length).
#[derive(Default)]
struct Changes {
    here: [bool; 3],
    members: [Vec<PathElement>; 3],
    children: [Vec<(PathElement, Set)>; 3],
}

impl Changes {
    /// Records what changed at the child `pe`.
    fn child(&mut self, pe: PathElement, sub: Changes) {
        let here = sub.here;
        for (k, set) in sub.below().into_iter().enumerate() {
            if here[k] {
                self.members[k].push(pe.clone());
            }
            if !set.is_empty() {
                self.children[k].push((pe.clone(), set));
            }
        }
    }

    fn below(self) -> [Set; 3] {
        let (mut members, mut children) = (self.members, self.children);
        std::array::from_fn(|k| {
            Set::from_parts(
                std::mem::take(&mut members[k]),
                std::mem::take(&mut children[k]),
            )
        })
    }

    /// The comparison, these changes being those of the value at `path`.
    fn at(self, path: &[PathElement]) -> Comparison {
        let mut here = self.here;
        let mut sets = self.below();
        for pe in path.iter().rev() {
            for k in 0..3 {
                let below = std::mem::take(&mut sets[k]);
                sets[k] = Set::from_parts(
                    if here[k] { vec![pe.clone()] } else { vec![] },
                    if below.is_empty() {
                        vec![]
                    } else {
                        vec![(pe.clone(), below)]
                    },
                );
            }
            here = [false; 3];
        }
        let [removed, modified, added] = sets;
        Comparison {
            removed,
            modified,
            added,
        }
    }
}

impl Schema {
    /// The type of field `key` of a value of type `ty`.
    pub fn field_type<'s>(&self, ty: Ty<'s>, key: &str) -> Ty<'s>
    where
        'static: 's,
    {
        match self.atom(ty, None) {
            Atom::Map {
                fields,
                elem,
                crd_root,
                ..
            } => self.field(fields, elem, crd_root, key).0,
            _ => Ty::Deduced,
        }
    }

    /// [`Schema::compare`] of the field at `path` only (the paths outside it are a
    /// subresource's reset fields).
    pub fn compare_at(&self, ty: Ty<'_>, l: &Value, r: &Value, path: &[&str]) -> Comparison {
        let (mut ty, mut l, mut r) = (ty, Some(l), Some(r));
        let mut pes = Vec::with_capacity(path.len());
        for k in path {
            ty = self.field_type(ty, k);
            l = l.and_then(|v| v.get(k));
            r = r.and_then(|v| v.get(k));
            pes.push(PathElement::Field(k.to_string()));
            if l.is_none() && r.is_none() {
                return Comparison::default();
            }
        }
        self.cmp(ty, l, r).at(&pes)
    }

    /// [`Schema::compare`] of two objects without their top-level field `skip` (`status`,
    /// the main resource's reset field when a status subresource exists).
    pub fn compare_without(&self, ty: Ty<'_>, l: &Value, r: &Value, skip: &str) -> Comparison {
        let mut c = Changes::default();
        let Atom::Map {
            fields,
            elem,
            crd_root,
            ..
        } = self.atom(ty, Some(r))
        else {
            return self.compare(ty, Some(l), Some(r));
        };
        let (lm, rm) = (l.as_object(), r.as_object());
        for (k, lv) in lm.into_iter().flatten() {
            if k == skip {
                continue;
            }
            let (fty, _) = self.field(fields, elem, crd_root, k);
            let sub = self.cmp(fty, Some(lv), rm.and_then(|m| m.get(k)));
            c.child(PathElement::Field(k.clone()), sub);
        }
        for (k, rv) in rm.into_iter().flatten() {
            if k == skip || lm.is_some_and(|m| m.contains_key(k)) {
                continue;
            }
            let (fty, _) = self.field(fields, elem, crd_root, k);
            let sub = self.cmp(fty, None, Some(rv));
            c.child(PathElement::Field(k.clone()), sub);
        }
        c.at(&[])
    }
}

// Go's formatting of a value decoded from JSON into an `interface{}` (numbers are `float64`),
// as structured-merge-diff's validation messages print it.

/// `%T`.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `%v` of a `float64`: `strconv.FormatFloat(f, 'g', -1, 64)`, the shortest digits, in `%e`
/// form for an exponent below -4 or from 6 on (`1e+06`, `1.5e-05`, `123456`).
fn go_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// `%v` of an `interface{}`.
pub(crate) fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_g(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_v).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut items: Vec<(&String, &Value)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_v(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// `%#v` of an `interface{}`.
fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::String(s) => crate::managedfields::go_quote(s),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            a.iter().map(go_sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            let mut items: Vec<(&String, &Value)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items
                .iter()
                .map(|(k, v)| format!("{}:{}", crate::managedfields::go_quote(k), go_sharp_v(v)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", items.join(", "))
        }
        other => go_v(other),
    }
}

/// `%v` of the `*valueUnstructured` holding `v` (`&{3}`).
fn go_value_v(v: &Value) -> String {
    format!("&{{{}}}", go_v(v))
}

/// `%#v` of the `*valueUnstructured` holding `v` (`&value.valueUnstructured{Value:3}`).
fn go_value_sharp_v(v: &Value) -> String {
    format!("&value.valueUnstructured{{Value:{}}}", go_sharp_v(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "numeric": {"type": "number"},
            "string": {"type": "string"},
            "bool": {"type": "boolean"},
            "setStr": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["key", "id"],
                "items": {"type": "object", "properties": {
                    "key": {"type": "string"}, "id": {"type": "number"},
                    "value": {"type": "object", "additionalProperties": {"type": "string"}},
                    "bv": {"type": "boolean"}, "nv": {"type": "number"}}}},
            "atomicList": {"type": "array", "items": {"type": "string"}},
            "atomicMap": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }})
    }

    /// structured-merge-diff `typed/merge_test.go` (`mergeCases`: "scalar pair" sets, and
    /// "associative list"): lhs, rhs, the merge.
    #[test]
    fn merges_as_upstream() {
        let s = Schema::builtin();
        let sc = schema();
        let cases = [
            (
                r#"{"numeric":1}"#,
                r#"{"numeric":3.14159}"#,
                r#"{"numeric":3.14159}"#,
            ),
            (
                r#"{"string":"aoeu"}"#,
                r#"{"bool":true}"#,
                r#"{"string":"aoeu","bool":true}"#,
            ),
            (
                r#"{"setStr":["a","b","c"]}"#,
                r#"{"setStr":["a","b"]}"#,
                r#"{"setStr":["a","b","c"]}"#,
            ),
            (
                r#"{"setStr":["a","b","c"]}"#,
                r#"{"setStr":[]}"#,
                r#"{"setStr":["a","b","c"]}"#,
            ),
            (
                r#"{"setStr":["a","b"]}"#,
                r#"{"setStr":["b","a"]}"#,
                r#"{"setStr":["b","a"]}"#,
            ),
            (
                r#"{"setStr":["a","b","c","g","f"]}"#,
                r#"{"setStr":["c","d","e","f"]}"#,
                r#"{"setStr":["a","b","c","g","d","e","f"]}"#,
            ),
            (
                r#"{"setStr":["c","d","e","f"]}"#,
                r#"{"setStr":["a","c","e"]}"#,
                r#"{"setStr":["a","c","d","e","f"]}"#,
            ),
            (
                r#"{"setStr":["a","b","c","x","y","z"]}"#,
                r#"{"setStr":["d","e","f","x","y","z"]}"#,
                r#"{"setStr":["a","b","c","d","e","f","x","y","z"]}"#,
            ),
            (
                r#"{"setStr":["a","b","c","d"]}"#,
                r#"{"setStr":["d","e","f","a"]}"#,
                r#"{"setStr":["b","c","d","e","f","a"]}"#,
            ),
            (
                r#"{"setStr":["c","d","e","f","g","h","i","j"]}"#,
                r#"{"setStr":["2","h","3","e","4","k","l"]}"#,
                r#"{"setStr":["c","d","f","g","2","h","i","j","3","e","4","k","l"]}"#,
            ),
            (
                r#"{"setStr":["a","b","c","d","e","f","g","h","i","j"]}"#,
                r#"{"setStr":["1","b","2","h","3","e","4","k","l"]}"#,
                r#"{"setStr":["a","1","b","c","d","f","g","2","h","i","j","3","e","4","k","l"]}"#,
            ),
            (
                r#"{"list":[{"key":"a","id":1,"value":{"a":"a"}}]}"#,
                r#"{"list":[{"key":"a","id":2,"value":{"a":"a"}}]}"#,
                r#"{"list":[{"key":"a","id":1,"value":{"a":"a"}},{"key":"a","id":2,"value":{"a":"a"}}]}"#,
            ),
            (
                r#"{"list":[{"key":"a","id":1},{"key":"b","id":1}]}"#,
                r#"{"list":[{"key":"a","id":1},{"key":"a","id":2}]}"#,
                r#"{"list":[{"key":"a","id":1},{"key":"b","id":1},{"key":"a","id":2}]}"#,
            ),
            (
                r#"{"list":[{"key":"a","id":1},{"key":"b","id":2},{"key":"c","id":3}]}"#,
                r#"{"list":[{"key":"c","id":3},{"key":"b","id":2}]}"#,
                r#"{"list":[{"key":"a","id":1},{"key":"c","id":3},{"key":"b","id":2}]}"#,
            ),
            (
                r#"{"list":[{"key":"a","id":1},{"key":"b","id":2},{"key":"c","id":3}]}"#,
                r#"{"list":[{"key":"c","id":3},{"key":"a","id":1}]}"#,
                r#"{"list":[{"key":"b","id":2},{"key":"c","id":3},{"key":"a","id":1}]}"#,
            ),
            (
                r#"{"atomicList":["a","b","c"]}"#,
                r#"{"atomicList":[]}"#,
                r#"{"atomicList":[]}"#,
            ),
            (
                r#"{"atomicList":["a","a","a"]}"#,
                r#"{"atomicList":["a","a"]}"#,
                r#"{"atomicList":["a","a"]}"#,
            ),
            // granular maps merge, atomic ones are replaced
            (
                r#"{"labels":{"a":"1"},"atomicMap":{"a":"1"}}"#,
                r#"{"labels":{"b":"2"},"atomicMap":{"b":"2"}}"#,
                r#"{"labels":{"a":"1","b":"2"},"atomicMap":{"b":"2"}}"#,
            ),
            (
                r#"{"free":{"x":{"y":1}}}"#,
                r#"{"free":{"x":{"z":2}}}"#,
                r#"{"free":{"x":{"y":1,"z":2}}}"#,
            ),
        ];
        for (l, r, want) in cases {
            let (l, r): (Value, Value) = (
                serde_json::from_str(l).unwrap(),
                serde_json::from_str(r).unwrap(),
            );
            let got = s.merge(Ty::Node(&sc), Some(&l), Some(&r)).unwrap().unwrap();
            assert_eq!(got.to_string(), want, "{l} + {r}");
        }
        // a duplicated key in what is applied is an error naming the list
        let r = json!({"list": [{"key": "a", "id": 1}, {"key": "a", "id": 1}]});
        assert_eq!(
            s.merge(Ty::Node(&sc), Some(&json!({})), Some(&r))
                .unwrap_err(),
            r#".list: duplicate entries for key [id=1,key="a"]"#
        );
    }

    /// `typed/toset_test.go` and `typed/compare_test.go`: the fields a value sets, and what
    /// changed.
    #[test]
    fn field_sets_and_comparisons() {
        let s = Schema::builtin();
        let sc = schema();
        let v = json!({"numeric": 1, "setStr": ["a"], "labels": {}, "atomicList": ["x"],
            "list": [{"key": "a", "id": 1, "value": {"k": "v"}}], "free": {"x": {"y": 1}}});
        assert_eq!(
            s.to_field_set(Ty::Node(&sc), &v).to_fields_v1().to_string(),
            r#"{"f:atomicList":{},"f:free":{"f:x":{".":{},"f:y":{}}},"f:labels":{},"f:list":{"k:{\"id\":1,\"key\":\"a\"}":{".":{},"f:id":{},"f:key":{},"f:value":{"f:k":{}}}},"f:numeric":{},"f:setStr":{"v:\"a\"":{}}}"#
        );
        let l = json!({"numeric": 1, "string": "a", "setStr": ["a", "b"]});
        let r = json!({"numeric": 2, "bool": true, "setStr": ["b", "c"]});
        let c = s.compare(Ty::Node(&sc), Some(&l), Some(&r));
        assert_eq!(c.modified.to_fields_v1().to_string(), r#"{"f:numeric":{}}"#);
        assert_eq!(
            c.added.to_fields_v1().to_string(),
            r#"{"f:bool":{},"f:setStr":{"v:\"c\"":{}}}"#
        );
        assert_eq!(
            c.removed.to_fields_v1().to_string(),
            r#"{"f:setStr":{"v:\"a\"":{}},"f:string":{}}"#
        );
    }

    /// Large lists are merged and compared in `n log n`: 50,000 set items and 10,000 list-map
    /// items each side, in descending order so that sorted insertion would shift every item,
    /// which quadratic scans would take minutes over.
    #[test]
    fn large_lists_merge_and_compare_in_bounded_time() {
        let s = Schema::builtin();
        let sc = schema();
        let n = 50_000;
        let names = |from: usize| -> Vec<Value> {
            (0..n)
                .rev()
                .map(|i| Value::String(format!("f{:06}", i + from)))
                .collect()
        };
        let items = |from: usize| -> Vec<Value> {
            (0..n / 5)
                .rev()
                .map(|i| json!({"key": format!("k{:06}", i + from), "id": 1, "nv": i}))
                .collect()
        };
        let l = json!({"setStr": names(0), "list": items(0)});
        let r = json!({"setStr": names(n / 2), "list": items(n / 10)});
        let start = std::time::Instant::now();
        let m = s.merge(Ty::Node(&sc), Some(&l), Some(&r)).unwrap().unwrap();
        let c = s.compare(Ty::Node(&sc), None, Some(&m));
        let set = s.to_field_set(Ty::Node(&sc), &m);
        let c2 = s.compare(Ty::Node(&sc), Some(&l), Some(&r));
        let took = start.elapsed();
        assert_eq!(m["setStr"].as_array().unwrap().len(), n + n / 2);
        assert_eq!(m["list"].as_array().unwrap().len(), n / 5 + n / 10);
        let leaves = |v: Value| {
            let set = Set::from_fields_v1(&v).unwrap();
            set.paths().len()
        };
        assert_eq!(
            leaves(c.added.to_fields_v1()),
            leaves(set.to_fields_v1()) + 2
        );
        assert_eq!(
            c2.removed
                .child(&PathElement::Field("setStr".into()))
                .unwrap()
                .members()
                .len(),
            n / 2
        );
        // linear work takes about 3 s here in a debug build on a loaded machine, the quadratic
        // walk this guards against took 224 s: the bound leaves room for a slow CI machine
        assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    }

    /// `validateScalar`, `listValue` and `mapValue` (structured-merge-diff v4.4): a value of
    /// another type than its field's is an error with Go's rendering of it; null is any type;
    /// quantities and int-or-string values take numbers and strings.
    #[test]
    fn wrong_types_are_validation_errors() {
        let s = Schema::builtin();
        let ty = s.kind("apps", "v1", "Deployment").unwrap();
        let container = |extra: Value| {
            let mut c = json!({"name": "c", "image": "i"});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            json!({"spec": {"template": {"spec": {"containers": [c]}}}})
        };
        let good = container(json!({"resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
            "ports": [{"containerPort": 80, "hostPort": null}], "livenessProbe": {"httpGet": {"port": 8080}}}));
        assert!(
            s.validate(ty, &good).is_empty(),
            "{:?}",
            s.validate(ty, &good)
        );
        let c = r#".spec.template.spec.containers[name="c"]"#;
        let cases = [
            (
                json!({"spec": {"replicas": "3"}}),
                ".spec.replicas: expected numeric (int or float), got string".to_string(),
            ),
            (
                json!({"spec": {"replicas": true}}),
                ".spec.replicas: expected numeric (int or float), got bool".into(),
            ),
            (
                json!({"spec": {"replicas": {"a": 1}}}),
                ".spec.replicas: expected numeric (int or float), got map[string]interface {}"
                    .into(),
            ),
            (
                container(json!({"image": 3})),
                format!("{c}.image: expected string, got &value.valueUnstructured{{Value:3}}"),
            ),
            (
                container(json!({"image": 1234567})),
                format!("{c}.image: expected string, got &value.valueUnstructured{{Value:1.234567e+06}}"),
            ),
            (
                container(json!({"image": ["a", 1.5]})),
                format!(
                    "{c}.image: expected string, got &value.valueUnstructured{{Value:[]interface {{}}{{\"a\", 1.5}}}}"
                ),
            ),
            (
                container(json!({"stdin": "yes"})),
                format!("{c}.stdin: expected boolean, got &{{yes}}"),
            ),
            (
                container(json!({"args": "x"})),
                format!("{c}.args: expected list, got &{{x}}"),
            ),
            (
                container(json!({"resources": "big"})),
                format!("{c}.resources: expected map, got &{{big}}"),
            ),
            (
                container(json!({"env": [{"name": "A", "value": {"b": 2, "a": "x"}}]})),
                format!(
                    "{c}.env[name=\"A\"].value: expected string, got &value.valueUnstructured{{Value:map[string]interface {{}}{{\"a\":\"x\", \"b\":2}}}}"
                ),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(s.validate(ty, &v), vec![want], "{v}");
        }
    }

    /// `typed/validate.go` over a custom resource's schema: undeclared fields are errors,
    /// except below `x-kubernetes-preserve-unknown-fields`, in maps, int-or-string values and
    /// embedded resources' `apiVersion`, `kind` and `metadata`; duplicated keys are errors,
    /// items of atomic lists are walked by index.
    #[test]
    fn values_are_validated_against_the_schema() {
        let s = Schema::builtin();
        let crd = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer"},
            "port": {"x-kubernetes-int-or-string": true},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}},
            "hosts": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host"],
                "items": {"type": "object", "properties": {"host": {"type": "string"}}}}
        }}}});
        let ty = Ty::CrdRoot(&crd);
        let good = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"size": 1, "port": "http", "free": {"any": {"thing": 1}}, "labels": {"x": "y"},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "b"}},
                "items": [{"n": "1"}], "hosts": [{"host": "a"}, {"host": "b"}]}});
        assert!(
            s.validate(ty, &good).is_empty(),
            "{:?}",
            s.validate(ty, &good)
        );
        let cases = [
            (
                json!({"spec": {"foo": 1}}),
                ".spec.foo: field not declared in schema",
            ),
            (
                json!({"metadata": {"bogus": 1}}),
                ".metadata.bogus: field not declared in schema",
            ),
            (
                json!({"spec": {"template": {"metadata": {"bogus": 1}}}}),
                ".spec.template.metadata.bogus: field not declared in schema",
            ),
            (
                json!({"spec": {"template": {"spec": {"b": 1}}}}),
                ".spec.template.spec.b: field not declared in schema",
            ),
            (
                json!({"spec": {"items": [{"n": "1"}, {"m": "2"}]}}),
                ".spec.items[1].m: field not declared in schema",
            ),
            (
                json!({"spec": {"hosts": [{"host": "a"}, {"host": "a"}]}}),
                r#".spec.hosts: duplicate entries for key [host="a"]"#,
            ),
            (
                json!({"spec": {"hosts": [{"host": "a", "x": 1}]}}),
                r#".spec.hosts[host="a"].x: field not declared in schema"#,
            ),
            (
                json!({"spec": {"hosts": [5]}}),
                ".spec.hosts: element 0: associative list with keys may not have non-map elements",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(s.validate(ty, &v), vec![want.to_string()], "{v}");
        }
        // the walk of a map ends at its first undeclared field
        let v = json!({"spec": {"a": 1, "b": 2}, "x": 1});
        assert_eq!(
            s.validate(ty, &v),
            vec![
                ".spec.a: field not declared in schema".to_string(),
                ".x: field not declared in schema".to_string()
            ]
        );
    }

    /// `typed/remove_test.go`: removing a set leaves the rest; what is emptied goes.
    #[test]
    fn removes_items() {
        let s = Schema::builtin();
        let sc = schema();
        let mut v = json!({"labels": {"a": "1"}, "setStr": ["a", "b"], "list": [{"key": "a", "id": 1, "nv": 2}]});
        let remove: Value = serde_json::from_str(r#"{"f:labels":{"f:a":{}},"f:setStr":{"v:\"a\"":{}},"f:list":{"k:{\"id\":1,\"key\":\"a\"}":{"f:nv":{}}}}"#).unwrap();
        s.remove_items(
            Ty::Node(&sc),
            &mut v,
            &Set::from_fields_v1(&remove).unwrap(),
        );
        assert_eq!(v, json!({"setStr": ["b"], "list": [{"key": "a", "id": 1}]}));
    }
}
