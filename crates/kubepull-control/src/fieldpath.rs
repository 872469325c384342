//! Field paths and sets of them, as server-side apply tracks field ownership
//! (sigs.k8s.io/structured-merge-diff `fieldpath`: `element.go`, `set.go`, `serialize.go`,
//! `serialize-pe.go`), with the `FieldsV1` form `metadata.managedFields` stores them in.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// One step of a path (`fieldpath.PathElement`).
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of a struct or a key of a map: `f:name`.
    Field(String),
    /// An item of an associative list by its key fields, sorted by name: `k:{"name":"c"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set by its value: `v:"a"`.
    Value(Value),
    /// An item of a list by position: `i:0`.
    Index(usize),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The element as a `FieldsV1` key (`serialize-pe.go`, `SerializePathElement`).
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => {
                let mut out = String::from("k:{");
                for (i, (name, v)) in k.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go_string(name, &mut out);
                    out.push(':');
                    write_go_json(v, &mut out);
                }
                out.push('}');
                out
            }
            PathElement::Value(v) => {
                format!("v:{}", go_json(v))
            }
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// A `FieldsV1` key read back (`DeserializePathElement`).
    pub fn parse(s: &str) -> Result<PathElement, String> {
        let (prefix, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("unknown path element type: {s:?}"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) => {
                    let mut k: Vec<(String, Value)> = m.into_iter().collect();
                    k.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(PathElement::Key(k))
                }
                _ => Err(format!("invalid key path element: {s:?}")),
            },
            "v" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|e| format!("invalid value path element {s:?}: {e}")),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("invalid index path element {s:?}: {e}")),
            _ => Err(format!("unknown path element type: {s:?}")),
        }
    }
}

impl std::fmt::Display for PathElement {
    /// As `PathElement.String`: `.name`, `[name="c",port=80]`, `[="a"]`, `[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(k) => {
                let parts: Vec<String> = k
                    .iter()
                    .map(|(n, v)| format!("{n}={}", value_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A value as `serializePathElementToWriter` writes it (jsoniter's standard-library
/// configuration), and as Go's `encoding/json` does: `<`, `>`, `&`, U+2028 and U+2029 escaped as
/// `\u003c`…, floats as Go formats them (`1`, not `1.0`; `1e+21`), map keys sorted.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.is_f64(), n.as_f64()) {
            (true, Some(f)) => go_float(f, out),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => go_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                write_go_json(&m[k], out);
            }
            out.push('}');
        }
    }
}

/// jsoniter's `WriteStringWithHTMLEscaped`.
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `WriteFloat64` (as `encoding/json`): `strconv.AppendFloat(f, 'f', -1)`, or `'e'` below
/// 1e-6 and from 1e21 (`1e+21`, `1e-7`).
fn go_float(f: f64, out: &mut String) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => out.push_str(&format!("{m}e+{exp}")),
            _ => out.push_str(&e),
        }
    } else {
        out.push_str(&format!("{f}"));
    }
}

/// `value.ToString`: strings quoted, everything else as printed.
fn value_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_string(v)))
            .collect::<String>(),
        other => other.to_string(),
    }
}

/// A path as `Path.String` prints it (`.spec.containers[name="c"].image`).
pub fn path_string(p: &[PathElement]) -> String {
    p.iter().map(ToString::to_string).collect()
}

impl Ord for PathElement {
    /// `PathElement.Compare`: fields, then keys, then values, then indexes.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let c = x.0.cmp(&y.0).then_with(|| compare_values(&x.1, &y.1));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// `value.Compare`: a total order over values (numbers, strings, booleans, lists, maps, null;
/// integers and floats compared as numbers).
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xk: Vec<&String> = x.keys().collect();
            let mut yk: Vec<&String> = y.keys().collect();
            xk.sort();
            yk.sort();
            for (p, q) in xk.iter().zip(yk.iter()) {
                let c = p.cmp(q).then_with(|| compare_values(&x[*p], &y[*q]));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xk.len().cmp(&yk.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => value_rank(a).cmp(&value_rank(b)),
    }
}

/// A JSON number as an exact integer (every `i64` and `u64`) or a float.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &serde_json::Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i.into())
    } else if let Some(u) = n.as_u64() {
        Num::Int(u.into())
    } else {
        // JSON numbers are finite
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// Numbers by value (structured-merge-diff `value.Compare`: `IntCompare`, `FloatCompare`,
/// and an integer against a float numerically). Integers are compared exactly and an integer
/// against a float by their exact values, not through `float64(int)`, which rounds integers
/// past 2^53 and so would not be a total order (`2^53 + 1` equal to the float `2^53` that
/// `2^53` also equals); `-0.0` and `0.0` are equal, as they are to `0`.
fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    match (num(x), num(y)) {
        (Num::Int(i), Num::Int(j)) => i.cmp(&j),
        (Num::Float(f), Num::Float(g)) => f.partial_cmp(&g).unwrap_or(Ordering::Equal),
        (Num::Int(i), Num::Float(f)) => int_float(i, f),
        (Num::Float(f), Num::Int(i)) => int_float(i, f).reverse(),
    }
}

/// An integer against a finite float, exactly.
fn int_float(i: i128, f: f64) -> Ordering {
    // 2^127: past every i128 (and so every i64 and u64)
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // exact: `whole` is an integer within i128's range
    i.cmp(&(whole as i128)).then_with(|| {
        // the same whole part: the float's fraction decides
        0.0_f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal)
    })
}

/// A set of paths (`fieldpath.Set`): the paths ending here (members) and the sets below
/// each element (children), both sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: Vec<PathElement>,
    children: Vec<(PathElement, Set)>,
}

impl Set {
    /// The empty set.
    pub fn new() -> Set {
        Set::default()
    }

    /// A set from its members and children, in any order (duplicates merged).
    pub fn from_parts(mut members: Vec<PathElement>, mut children: Vec<(PathElement, Set)>) -> Set {
        members.sort();
        members.dedup();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(PathElement, Set)> = Vec::with_capacity(children.len());
        for (pe, s) in children {
            match merged.last_mut() {
                Some((last, ls)) if *last == pe => *ls = ls.union(&s),
                _ => merged.push((pe, s)),
            }
        }
        Set {
            members,
            children: merged,
        }
    }

    /// No path at all.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.iter().all(|(_, s)| s.is_empty())
    }

    /// Adds a path.
    pub fn insert(&mut self, p: &[PathElement]) {
        let Some((first, rest)) = p.split_first() else {
            return;
        };
        if rest.is_empty() {
            if let Err(i) = self.members.binary_search(first) {
                self.members.insert(i, first.clone());
            }
            return;
        }
        let i = match self.children.binary_search_by(|c| c.0.cmp(first)) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (first.clone(), Set::new()));
                i
            }
        };
        self.children[i].1.insert(rest);
    }

    /// Whether the path is in the set.
    pub fn has(&self, p: &[PathElement]) -> bool {
        match p.split_first() {
            None => false,
            Some((first, [])) => self.members.binary_search(first).is_ok(),
            Some((first, rest)) => self.child(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `pe` is a member (a path ending here).
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.binary_search(pe).is_ok()
    }

    /// The set below `pe` (`WithPrefix`).
    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children
            .binary_search_by(|c| c.0.cmp(pe))
            .ok()
            .map(|i| &self.children[i].1)
    }

    /// The members.
    pub fn members(&self) -> &[PathElement] {
        &self.members
    }

    /// The children.
    pub fn children(&self) -> &[(PathElement, Set)] {
        &self.children
    }

    /// `Union`.
    pub fn union(&self, o: &Set) -> Set {
        let members = merge_sorted(&self.members, &o.members);
        let mut children = Vec::with_capacity(self.children.len().max(o.children.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.children.len() && j < o.children.len() {
            match self.children[i].0.cmp(&o.children[j].0) {
                Ordering::Less => {
                    children.push(self.children[i].clone());
                    i += 1;
                }
                Ordering::Greater => {
                    children.push(o.children[j].clone());
                    j += 1;
                }
                Ordering::Equal => {
                    children.push((
                        self.children[i].0.clone(),
                        self.children[i].1.union(&o.children[j].1),
                    ));
                    i += 1;
                    j += 1;
                }
            }
        }
        children.extend_from_slice(&self.children[i..]);
        children.extend_from_slice(&o.children[j..]);
        Set { members, children }
    }

    /// `Intersection`.
    pub fn intersection(&self, o: &Set) -> Set {
        let members = self
            .members
            .iter()
            .filter(|m| o.has_member(m))
            .cloned()
            .collect();
        let mut children = Vec::new();
        for (pe, s) in &self.children {
            if let Some(os) = o.child(pe) {
                let r = s.intersection(os);
                if !r.is_empty() {
                    children.push((pe.clone(), r));
                }
            }
        }
        Set { members, children }
    }

    /// `Difference`: the members not in `o`, each child less `o`'s child at that element.
    pub fn difference(&self, o: &Set) -> Set {
        let members = self
            .members
            .iter()
            .filter(|m| !o.has_member(m))
            .cloned()
            .collect();
        let mut children = Vec::with_capacity(self.children.len());
        for (pe, s) in &self.children {
            match o.child(pe) {
                None => children.push((pe.clone(), s.clone())),
                Some(os) => {
                    let d = s.difference(os);
                    if !d.is_empty() {
                        children.push((pe.clone(), d));
                    }
                }
            }
        }
        Set { members, children }
    }

    /// `RecursiveDifference`: as [`Set::difference`], and a member of `o` also removes
    /// everything below it.
    pub fn recursive_difference(&self, o: &Set) -> Set {
        let members = self
            .members
            .iter()
            .filter(|m| !o.has_member(m))
            .cloned()
            .collect();
        let mut children = Vec::with_capacity(self.children.len());
        for (pe, s) in &self.children {
            if o.has_member(pe) {
                continue;
            }
            match o.child(pe) {
                None => children.push((pe.clone(), s.clone())),
                Some(os) => {
                    let d = s.recursive_difference(os);
                    if !d.is_empty() {
                        children.push((pe.clone(), d));
                    }
                }
            }
        }
        Set { members, children }
    }

    /// Every path, members of a level before its children (`Set.Iterate`).
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, s) in &self.children {
            prefix.push(pe.clone());
            s.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The set as `FieldsV1` (`Set.ToJSON`, `emitContentsV1`): a member that also has
    /// children carries `".": {}`.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let (mut mi, mut ci) = (0, 0);
        while mi < self.members.len() || ci < self.children.len() {
            let order = match (self.members.get(mi), self.children.get(ci)) {
                (Some(m), Some((c, _))) => m.cmp(c),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    out.insert(self.members[mi].serialize(), Value::Object(Map::new()));
                    mi += 1;
                }
                Ordering::Greater => {
                    let (pe, s) = &self.children[ci];
                    out.insert(pe.serialize(), Value::Object(s.emit(false)));
                    ci += 1;
                }
                Ordering::Equal => {
                    let (pe, s) = &self.children[ci];
                    out.insert(pe.serialize(), Value::Object(s.emit(true)));
                    mi += 1;
                    ci += 1;
                }
            }
        }
        out
    }

    /// A set read from `FieldsV1` (`Set.FromJSON`, `readIterV1`): keys of an unknown element
    /// type are ignored (`ErrUnknownPathElementType`), a malformed element or a value that is
    /// not an object (or null) is an error.
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(m) = v else {
            return Err("FieldsV1 must be a JSON object".into());
        };
        Ok(Self::read(m)?.0.unwrap_or_default())
    }

    /// The set below an object, and whether the object marks its own path as a member.
    fn read(m: &Map<String, Value>) -> Result<(Option<Set>, bool), String> {
        let mut is_member = false;
        let mut members = Vec::new();
        let mut children = Vec::new();
        let mut any = false;
        for (k, v) in m {
            if k == "." {
                is_member = true;
                continue;
            }
            // `DeserializePathElement`: what is not `f:`, `v:`, `i:` or `k:` is unknown
            if !matches!(k.get(..2), Some("f:" | "v:" | "i:" | "k:")) {
                continue;
            }
            let pe =
                PathElement::parse(k).map_err(|e| format!("parsing key as path element: {e}"))?;
            let (grand, child_member) = match v {
                Value::Object(o) => Self::read(o)?,
                Value::Null => (None, true),
                other => {
                    return Err(format!(
                        "ReadMapCB: expect {{ or n, but found {}",
                        other.to_string().chars().next().unwrap_or(' ')
                    ))
                }
            };
            any = true;
            if child_member {
                members.push(pe.clone());
            }
            if let Some(g) = grand {
                children.push((pe, g));
            }
        }
        if !any {
            return Ok((None, true));
        }
        Ok((Some(Set::from_parts(members, children)), is_member))
    }
}

fn merge_sorted(a: &[PathElement], b: &[PathElement]) -> Vec<PathElement> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.into())
    }

    fn key(k: &str, v: &str) -> PathElement {
        PathElement::Key(vec![(k.into(), json!(v))])
    }

    /// Values compare as a total order: integers exactly (past 2^53 and past `i64::MAX`),
    /// an integer against a float by their exact values, so sorting is consistent.
    #[test]
    fn numbers_are_a_total_order() {
        let two53 = 1_i64 << 53;
        let vals = [
            json!(two53),
            json!(two53 + 1),
            json!(9_007_199_254_740_992.0_f64),
            json!(9_007_199_254_740_994.0_f64),
            json!(i64::MAX),
            json!(i64::MAX as u64 + 1),
            json!(u64::MAX - 1),
            json!(u64::MAX),
            json!(1.8446744073709552e19_f64),
            json!(1e300_f64),
            json!(-1e300_f64),
            json!(i64::MIN),
            json!(-0.0_f64),
            json!(0),
            json!(1),
            json!(1.5_f64),
            json!(2),
            json!(-1.5_f64),
            json!(-1),
            json!("a"),
        ];
        let c = |a: &Value, b: &Value| compare_values(a, b);
        for a in &vals {
            for b in &vals {
                assert_eq!(c(a, b), c(b, a).reverse(), "{a} {b}");
                for d in &vals {
                    if c(a, b) != Ordering::Greater && c(b, d) != Ordering::Greater {
                        assert_ne!(c(a, d), Ordering::Greater, "{a} <= {b} <= {d}");
                    }
                }
            }
        }
        let less = |a: Value, b: Value| assert_eq!(c(&a, &b), Ordering::Less, "{a} < {b}");
        less(json!(u64::MAX - 1), json!(u64::MAX));
        less(json!(i64::MAX), json!(i64::MAX as u64 + 1));
        less(json!(9_007_199_254_740_992.0_f64), json!(two53 + 1));
        less(json!(two53 + 1), json!(9_007_199_254_740_994.0_f64));
        less(json!(1), json!(1.5_f64));
        less(json!(-1.5_f64), json!(-1));
        less(json!(u64::MAX), json!(1.8446744073709552e19_f64));
        assert_eq!(
            c(&json!(two53), &json!(9_007_199_254_740_992.0_f64)),
            Ordering::Equal
        );
        assert_eq!(c(&json!(0), &json!(-0.0_f64)), Ordering::Equal);
        let mut elems: Vec<PathElement> = vals.iter().cloned().map(PathElement::Value).collect();
        elems.sort();
        elems.dedup();
        assert_eq!(elems.len(), vals.len() - 2);
    }

    /// structured-merge-diff `fieldpath/serialize_test.go` (`TestSerializeV1`): a set read
    /// from FieldsV1 writes back the same text.
    #[test]
    fn elements_serialize_as_go_writes_them() {
        let key = PathElement::Key(vec![
            ("name".into(), json!("a<b>&c\u{2028}\"\\\n\u{1}")),
            ("port".into(), json!(80)),
            ("w".into(), serde_json::from_str("1.0").unwrap()),
        ]);
        assert_eq!(
            key.serialize(),
            r#"k:{"name":"a\u003cb\u003e\u0026c\u2028\"\\\n\u0001","port":80,"w":1}"#
        );
        for (v, want) in [
            ("1.0", "v:1"),
            ("1.5", "v:1.5"),
            ("1e21", "v:1e+21"),
            ("1.5e-7", "v:1.5e-7"),
            ("1e-6", "v:0.000001"),
            ("-2.0", "v:-2"),
            ("123456789012", "v:123456789012"),
            (r#""x&y""#, r#"v:"x\u0026y""#),
            ("true", "v:true"),
        ] {
            let pe = PathElement::Value(serde_json::from_str(v).unwrap());
            assert_eq!(pe.serialize(), want, "{v}");
            // read back as the same element
            assert_eq!(PathElement::parse(&pe.serialize()).unwrap(), pe, "{v}");
        }
    }

    #[test]
    fn fields_v1_round_trips() {
        for text in [
            r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}"#,
            r#"{"f:data":{".":{},"f:a":{},"f:b":{}},"f:type":{}}"#,
            r#"{"f:finalizers":{"v:\"a\"":{},"v:\"b\"":{}},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}},"f:x":{"i:0":{}}}"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let s = Set::from_fields_v1(&v).unwrap();
            assert_eq!(s.to_fields_v1().to_string(), text);
        }
    }

    /// `fieldpath/set_test.go` (`TestSetUnion`, `TestSetIntersectionDifference`,
    /// `TestSetDifference`, `TestRecursiveDifference` cases).
    #[test]
    fn set_operations() {
        let mut a = Set::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        a.insert(&[f("d")]);
        let mut b = Set::new();
        b.insert(&[f("a"), f("c")]);
        b.insert(&[f("e")]);
        let u = a.union(&b);
        assert!(u.has(&[f("a"), f("b")]) && u.has(&[f("e")]) && u.has(&[f("d")]));
        let i = a.intersection(&b);
        assert_eq!(i.paths(), vec![vec![f("a"), f("c")]]);
        let d = a.difference(&b);
        assert_eq!(d.paths(), vec![vec![f("d")], vec![f("a"), f("b")]]);
        // a member of the other set removes what is below it only recursively
        let mut top = Set::new();
        top.insert(&[f("a")]);
        assert_eq!(a.difference(&top), a);
        assert_eq!(a.recursive_difference(&top).paths(), vec![vec![f("d")]]);
        assert!(Set::new().is_empty() && !a.is_empty());
    }

    #[test]
    fn paths_print_as_upstream() {
        let p = vec![
            f("spec"),
            f("containers"),
            key("name", "c"),
            f("ports"),
            PathElement::Key(vec![
                ("containerPort".into(), json!(80)),
                ("protocol".into(), json!("TCP")),
            ]),
            f("args"),
            PathElement::Value(json!("x")),
            PathElement::Index(3),
        ];
        assert_eq!(
            path_string(&p),
            r#".spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].args[="x"][3]"#
        );
    }

    #[test]
    fn elements_order_fields_keys_values_indexes() {
        let mut v = [
            PathElement::Index(0),
            PathElement::Value(json!(1)),
            key("name", "b"),
            f("z"),
            key("name", "a"),
            f("a"),
        ];
        v.sort();
        assert_eq!(
            v.iter().map(PathElement::serialize).collect::<Vec<_>>(),
            vec![
                "f:a",
                "f:z",
                r#"k:{"name":"a"}"#,
                r#"k:{"name":"b"}"#,
                "v:1",
                "i:0"
            ]
        );
        assert!(PathElement::parse("x:1").is_err());
    }
}
