//! Structural OpenAPI v3 schemas of CustomResourceDefinitions, ported from
//! k8s.io/apiextensions-apiserver:
//!
//! - [`validate_structural`], from `pkg/apiserver/schema/validation.go` (`ValidateStructural`,
//!   `validateStructuralInvariants`, `validateNestedValueValidation`), `complete.go`
//!   (`validateStructuralCompleteness`) and the per-node checks of
//!   `pkg/apis/apiextensions/validation/validation.go` (`ValidateCustomResourceDefinitionOpenAPISchema`);
//! - [`prune`], from `pkg/apiserver/schema/pruning/algorithm.go`;
//! - [`drop_null_without_default`], from `pkg/apiserver/schema/objectmeta/coerce.go` and
//!   `defaulting/prunenulls.go` (`PruneNonNullableNullsWithoutDefaults`);
//! - [`default`], from `pkg/apiserver/schema/defaulting/algorithm.go`;
//! - [`validate`], from the kube-openapi schema validator (`pkg/validation/validate`) as
//!   `pkg/apiserver/validation/validation.go` (`kubeOpenAPIResultToFieldErrors`) turns its
//!   results into field errors, with kube-openapi's messages (`pkg/validation/errors/schema.go`).
//!
//! Schemas are the JSON of `openAPIV3Schema`; objects are JSON values.

use serde_json::{Map, Value};

use crate::errors::Cause;

fn ty(s: &Value) -> &str {
    s.get("type").and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn flag(s: &Value, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn props(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

/// The schema of `additionalProperties` when it is a schema (not a boolean).
pub(crate) fn additional(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|a| a.is_object())
}

pub(crate) fn preserve(s: &Value) -> bool {
    flag(s, "x-kubernetes-preserve-unknown-fields")
}

pub(crate) fn embedded(s: &Value) -> bool {
    flag(s, "x-kubernetes-embedded-resource")
}

pub(crate) fn int_or_string(s: &Value) -> bool {
    flag(s, "x-kubernetes-int-or-string")
}

/// A `field.Path` child: `a.b`.
fn child(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// A `field.Path` key: `a[k]`.
fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// A value as Go's `%v`/`%q` prints it in `field.Error` (strings quoted, numbers plain, other
/// values as JSON).
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Null => "null".into(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Whether `openAPIV3Schema` is structural; the errors name fields under `path` (for a CRD:
/// `spec.versions[i].schema.openAPIV3Schema`).
pub fn validate_structural(schema: &Value, path: &str) -> Vec<Cause> {
    let mut out = vec![];
    if !schema.is_object() {
        out.push(Cause::invalid(path, "\"\"", "must be an object"));
        return out;
    }
    structural(schema, Level::Root, path, &mut out);
    completeness(schema, path, &mut out);
    // ValidateStructuralWithOptions sorts the errors by their text
    out.sort_by_key(Cause::text);
    out
}

/// `ValidateCustomResourceDefinitionOpenAPISchema` (the node checks) and
/// `validateStructuralInvariants`.
fn structural(s: &Value, lvl: Level, path: &str, out: &mut Vec<Cause>) {
    let Some(m) = s.as_object() else {
        out.push(Cause::invalid(path, go_value(s), "must be a schema object"));
        return;
    };
    let t = ty(s);
    if !t.is_empty() && !TYPES.contains(&t) {
        if t == "null" {
            out.push(Cause::forbidden(
                child(path, "type"),
                "type cannot be set to null, use nullable as an alternative",
            ));
        } else {
            out.push(Cause::not_supported(
                child(path, "type"),
                go_value(&Value::String(t.into())),
                TYPES,
            ));
        }
    }
    for (k, what) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if m.contains_key(k) {
            out.push(Cause::forbidden(child(path, k), what));
        }
    }
    if let Some(p) = m.get("x-kubernetes-preserve-unknown-fields") {
        if p != &Value::Bool(true) {
            out.push(Cause::invalid(
                child(path, "x-kubernetes-preserve-unknown-fields"),
                go_value(p),
                "must be true or undefined",
            ));
        }
    }
    // x-kubernetes-list-type and x-kubernetes-map-type (ValidateCustomResourceDefinitionOpenAPISchema)
    if let Some(mt) = m.get("x-kubernetes-map-type") {
        if t != "object" {
            out.push(if t.is_empty() {
                Cause::required(
                    child(path, "type"),
                    "must be object if x-kubernetes-map-type is specified",
                )
            } else {
                Cause::invalid(
                    child(path, "type"),
                    go_value(&Value::String(t.into())),
                    "must be object if x-kubernetes-map-type is specified",
                )
            });
        }
        if !matches!(mt.as_str(), Some("atomic" | "granular")) {
            out.push(Cause::not_supported(
                child(path, "x-kubernetes-map-type"),
                go_value(mt),
                &["atomic", "granular"],
            ));
        }
    }
    let list_keys = m
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .is_some_and(|k| !k.is_empty());
    if let Some(lt) = m.get("x-kubernetes-list-type") {
        if t != "array" {
            out.push(if t.is_empty() {
                Cause::required(
                    child(path, "type"),
                    "must be array if x-kubernetes-list-type is specified",
                )
            } else {
                Cause::invalid(
                    child(path, "type"),
                    go_value(&Value::String(t.into())),
                    "must be array if x-kubernetes-list-type is specified",
                )
            });
        }
        if !matches!(lt.as_str(), Some("atomic" | "set" | "map")) {
            out.push(Cause::not_supported(
                child(path, "x-kubernetes-list-type"),
                go_value(lt),
                &["atomic", "set", "map"],
            ));
        } else if lt == "map" && !list_keys {
            out.push(Cause::required(
                child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        if list_keys && lt != "map" {
            out.push(Cause::invalid(
                child(path, "x-kubernetes-list-type"),
                go_value(lt),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            ));
        }
    } else if list_keys {
        out.push(Cause::required(
            child(path, "x-kubernetes-list-type"),
            "must be map if x-kubernetes-list-map-keys is non-empty",
        ));
    }
    if m.get("items").is_some_and(Value::is_array) {
        out.push(Cause::forbidden(
            child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    // only `additionalProperties: true` may go with properties
    if props(s).is_some_and(|p| !p.is_empty())
        && m.get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(true))
    {
        out.push(Cause::forbidden(
            child(path, "additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if t == "array" && m.get("items").is_none() {
        out.push(Cause::required(child(path, "items"), "must be specified"));
    }
    if m.contains_key("additionalProperties") && lvl == Level::Root {
        out.push(Cause::forbidden(
            child(path, "additionalProperties"),
            "must not be used at the root",
        ));
    }
    if embedded(s) && t != "object" {
        if t.is_empty() {
            out.push(Cause::required(
                child(path, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            out.push(Cause::invalid(
                child(path, "type"),
                go_value(&Value::String(t.into())),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if t.is_empty() && !int_or_string(s) && !preserve(s) {
        out.push(Cause::required(
            child(path, "type"),
            match lvl {
                Level::Root => "must not be empty at the root",
                Level::Item => "must not be empty for specified array items",
                Level::Field => "must not be empty for specified object fields",
            },
        ));
    }
    if embedded(s) && m.contains_key("additionalProperties") {
        out.push(Cause::forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !t.is_empty() && t != "object" {
        out.push(Cause::invalid(
            child(path, "type"),
            go_value(&Value::String(t.into())),
            "must be object at the root",
        ));
    }
    if lvl == Level::Root && flag(s, "nullable") {
        out.push(Cause::forbidden(
            child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let check_meta = lvl == Level::Root || embedded(s);
    if let Some(p) = props(s) {
        if check_meta {
            for f in ["kind", "apiVersion"] {
                if let Some(x) = p.get(f) {
                    if ty(x) != "string" {
                        out.push(Cause::invalid(
                            child(&key(&child(path, "properties"), f), "type"),
                            go_value(&Value::String(ty(x).into())),
                            "must be string",
                        ));
                    }
                }
            }
        }
        if let Some(md) = p.get("metadata") {
            let mpath = key(&child(path, "properties"), "metadata");
            if check_meta && ty(md) != "object" {
                out.push(Cause::invalid(
                    child(&mpath, "type"),
                    go_value(&Value::String(ty(md).into())),
                    "must be object",
                ));
            }
            if lvl == Level::Root {
                // only name and generateName may be restricted (validateStructuralMetadataInvariants)
                let allowed = md.as_object().is_some_and(|mm| {
                    // what remains after name/generateName, type and default are cleared must
                    // be value validations only
                    mm.iter().all(|(k, v)| match k.as_str() {
                        "type" | "default" => true,
                        "properties" => v.as_object().is_some_and(|pp| {
                            pp.keys().all(|n| n == "name" || n == "generateName")
                        }),
                        "format" | "maximum" | "exclusiveMaximum" | "minimum"
                        | "exclusiveMinimum" | "maxLength" | "minLength" | "pattern"
                        | "maxItems" | "minItems" | "uniqueItems" | "multipleOf" | "enum"
                        | "maxProperties" | "minProperties" | "required" | "allOf" | "oneOf"
                        | "anyOf" | "not" => true,
                        _ => false,
                    })
                });
                if !allowed {
                    out.push(Cause::forbidden(
                        mpath.clone(),
                        "must not specify anything other than name and generateName, but metadata is implicitly specified",
                    ));
                }
            }
        }
        for (k, v) in p {
            if k == "metadata" && lvl == Level::Root {
                continue;
            }
            structural(v, Level::Field, &key(&child(path, "properties"), k), out);
        }
    }
    if let Some(a) = additional(s) {
        structural(a, Level::Field, &child(path, "additionalProperties"), out);
    }
    if let Some(i) = m.get("items").filter(|i| i.is_object()) {
        structural(i, Level::Item, &child(path, "items"), out);
    }
    if embedded(s) && !preserve(s) && props(s).is_none_or(|p| p.is_empty()) {
        out.push(Cause::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
    if int_or_string(s) {
        if preserve(s) {
            out.push(Cause::invalid(
                child(path, "x-kubernetes-preserve-unknown-fields"),
                "true",
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if embedded(s) {
            out.push(Cause::invalid(
                child(path, "x-kubernetes-embedded-resource"),
                "true",
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if !t.is_empty() {
            out.push(Cause::invalid(
                child(path, "type"),
                go_value(&Value::String(t.into())),
                "must be empty if x-kubernetes-int-or-string is true",
            ));
        }
    }
    if let Some(p) = m.get("pattern").and_then(Value::as_str) {
        if let Err(e) = regex::Regex::new(p) {
            out.push(Cause::invalid(
                child(path, "pattern"),
                go_value(&Value::String(p.into())),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
    // value validations: allOf, anyOf, oneOf, not
    let skip_any_of = int_or_string(s) && is_int_or_string_any_of(s);
    for (k, list) in [
        ("allOf", true),
        ("anyOf", true),
        ("oneOf", true),
        ("not", false),
    ] {
        let Some(x) = m.get(k) else { continue };
        if list {
            for (i, sub) in x.as_array().into_iter().flatten().enumerate() {
                if k == "anyOf" && skip_any_of {
                    continue;
                }
                if k == "allOf" && i == 0 && int_or_string(s) && is_int_or_string_any_of(sub) {
                    continue;
                }
                nested(sub, &format!("{}[{i}]", child(path, k)), out);
            }
        } else {
            nested(x, &child(path, k), out);
        }
    }
}

/// `anyOf: [{type: integer}, {type: string}]`.
fn is_int_or_string_any_of(s: &Value) -> bool {
    let Some(a) = s.get("anyOf").and_then(Value::as_array) else {
        return false;
    };
    a.len() == 2 && ty(&a[0]) == "integer" && ty(&a[1]) == "string"
}

/// `validateNestedValueValidation`: what may not appear inside a value validation.
fn nested(s: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(m) = s.as_object() else { return };
    let forbidden: &[(&str, &str)] = &[
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    for (k, why) in forbidden {
        if m.contains_key(*k) {
            out.push(Cause::forbidden(child(path, k), *why));
        }
    }
    for k in [
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if flag(s, k) {
            out.push(Cause::forbidden(
                child(path, k),
                "must be false to be structural",
            ));
        }
    }
    if let Some(p) = props(s) {
        if p.contains_key("metadata") {
            out.push(Cause::forbidden(
                key(&child(path, "properties"), "metadata"),
                "must not be specified in a nested context",
            ));
        }
        for (k, v) in p {
            nested(v, &key(&child(path, "properties"), k), out);
        }
    }
    if let Some(i) = m.get("items") {
        nested(i, &child(path, "items"), out);
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in m
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            nested(sub, &format!("{}[{i}]", child(path, k)), out);
        }
    }
    if let Some(n) = m.get("not") {
        nested(n, &child(path, "not"), out);
    }
}

/// `validateStructuralCompleteness`: every field a value validation names is specified in the
/// structural part.
fn completeness(s: &Value, path: &str, out: &mut Vec<Cause>) {
    fn check(v: &Value, s: &Value, spath: &str, vpath: &str, out: &mut Vec<Cause>) {
        if let Some(p) = props(v) {
            for (k, sub) in p {
                match props(s).and_then(|sp| sp.get(k)) {
                    Some(sk) => check(
                        sub,
                        sk,
                        &key(&child(spath, "properties"), k),
                        &key(&child(vpath, "properties"), k),
                        out,
                    ),
                    // AllowValidationPropertiesWithAdditionalProperties is false for CRDs
                    None => out.push(Cause::required(
                        key(&child(spath, "properties"), k),
                        format!(
                            "because it is defined in {}",
                            key(&child(vpath, "properties"), k)
                        ),
                    )),
                }
            }
        }
        if let Some(i) = v.get("items") {
            match s.get("items") {
                Some(si) => check(i, si, &child(spath, "items"), &child(vpath, "items"), out),
                None => out.push(Cause::required(
                    child(spath, "items"),
                    format!("because it is defined in {}", child(vpath, "items")),
                )),
            }
        }
        for k in ["allOf", "anyOf", "oneOf"] {
            for (i, sub) in v
                .get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                check(sub, s, spath, &format!("{}[{i}]", child(vpath, k)), out);
            }
        }
        if let Some(n) = v.get("not") {
            check(n, s, spath, &child(vpath, "not"), out);
        }
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in s
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check(sub, s, path, &format!("{}[{i}]", child(path, k)), out);
        }
    }
    if let Some(n) = s.get("not") {
        check(n, s, path, &child(path, "not"), out);
    }
    // upstream checks the value validations of the root only (`validateStructuralCompleteness`
    // is called once, from `ValidateStructuralWithOptions`)
}

/// Deletes the fields the schema does not specify (`pruning.PruneWithOptions`); returns the
/// paths pruned (`spec.foo`, `spec.list[0].bar`), which strict field validation reports as
/// `unknown field`. At the resource root, `apiVersion`, `kind` and `metadata` are kept.
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = vec![];
    prune_impl(obj, Some(schema), true, "", &mut pruned);
    pruned
}

fn prune_impl(x: &mut Value, s: Option<&Value>, root: bool, path: &str, out: &mut Vec<String>) {
    if let Some(s) = s {
        if preserve(s) {
            skip_prune(x, s, root, path, out);
            return;
        }
    }
    match x {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    out.push(child(path, k));
                }
                m.clear();
                return;
            };
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || embedded(s)) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                let p = child(path, &k);
                if let Some(prop) = props(s).and_then(|p| p.get(&k)) {
                    if let Some(v) = m.get_mut(&k) {
                        prune_impl(v, Some(prop), false, &p, out);
                    }
                } else if s.get("additionalProperties").is_some() {
                    // a boolean keeps the key and prunes the value as unspecified
                    let a = additional(s);
                    if let Some(v) = m.get_mut(&k) {
                        prune_impl(v, a, false, &p, out);
                    }
                } else {
                    out.push(p);
                    m.remove(&k);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.get("items"));
            for (i, v) in a.iter_mut().enumerate() {
                prune_impl(v, items, false, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `skipPrune`: unknown keys are kept, specified ones are pruned inside.
fn skip_prune(x: &mut Value, s: &Value, root: bool, path: &str, out: &mut Vec<String>) {
    match x {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if (root || embedded(s)) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                let p = child(path, k);
                if let Some(prop) = props(s).and_then(|p| p.get(k)) {
                    prune_impl(v, Some(prop), false, &p, out);
                } else if s.get("additionalProperties").is_some() {
                    prune_impl(v, additional(s), false, &p, out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for (i, v) in a.iter_mut().enumerate() {
                    prune_impl(v, Some(items), false, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn sub_schema<'a>(s: &'a Value, k: &str) -> Option<&'a Value> {
    props(s).and_then(|p| p.get(k)).or_else(|| additional(s))
}

/// Drops `null` values of fields that are neither nullable nor defaulted
/// (`PruneNonNullableNullsWithoutDefaults`).
pub fn drop_null_without_default(x: &mut Value, s: &Value) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let Some(prop) = sub_schema(s, &k) else {
                    continue;
                };
                if m.get(&k).is_some_and(Value::is_null) {
                    if !flag(prop, "nullable") && prop.get("default").is_none() {
                        m.remove(&k);
                    }
                } else if let Some(v) = m.get_mut(&k) {
                    drop_null_without_default(v, prop);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for v in a {
                    drop_null_without_default(v, items);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s top-down (`defaulting.Default`): a missing field, or a `null` one that is
/// not nullable, gets its default; the recursion then continues into it. Parents are never
/// created.
pub fn default(x: &mut Value, s: &Value) {
    match x {
        Value::Object(m) => {
            if let Some(p) = props(s) {
                for (k, prop) in p {
                    let Some(d) = prop.get("default") else {
                        continue;
                    };
                    let missing = match m.get(k) {
                        None => true,
                        Some(Value::Null) => !flag(prop, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(prop) = props(s).and_then(|p| p.get(k)) {
                    default(v, prop);
                } else if let Some(a) = additional(s) {
                    if v.is_null() && !flag(a, "nullable") {
                        if let Some(d) = a.get("default") {
                            *v = d.clone();
                        }
                    }
                    default(v, a);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for v in a.iter_mut() {
                    if v.is_null() && !flag(items, "nullable") {
                        if let Some(d) = items.get("default") {
                            *v = d.clone();
                        }
                    }
                    default(v, items);
                }
            }
        }
        _ => {}
    }
}

/// A schema `pattern`, compiled once (schemas are few; the cache is emptied past 1024).
fn compiled(p: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut c = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(r) = c.get(p) {
        return r.clone();
    }
    if c.len() >= 1024 {
        c.clear();
    }
    let r = regex::Regex::new(p).ok();
    c.insert(p.to_string(), r.clone());
    r
}

/// Whether a string fails one of the formats checked here (kube-openapi `strfmt.Default`, of
/// those `StripUnsupportedFormatsPostProcessor` keeps: `date-time`, `date`, `byte`, `uuid`,
/// `ipv4`, `ipv6`, `cidr`); other formats are not checked.
fn format_fails(format: &str, s: &str) -> bool {
    use base64::Engine as _;
    match format {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_err(),
        "date" => s.parse::<jiff::civil::Date>().is_err() || s.len() != 10,
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_err(),
        "uuid" => {
            let b = s.as_bytes();
            !(b.len() == 36
                && b.iter().enumerate().all(|(i, c)| {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        *c == b'-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                }))
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_err(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_err(),
        "cidr" => match s.split_once('/') {
            Some((ip, bits)) => match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
                (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b > 32,
                (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b > 128,
                _ => true,
            },
            None => true,
        },
        _ => false,
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.007e15)
        }
        _ => false,
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Validates `obj` against the schema (kube-openapi `SchemaValidator` with `in: body`); the
/// errors as `kubeOpenAPIResultToFieldErrors` words them.
pub fn validate(obj: &Value, schema: &Value) -> Vec<Cause> {
    let mut out = vec![];
    validate_at(obj, schema, "", &mut out);
    list_types(obj, schema, "", &mut out);
    // errors are deduplicated (field.ErrorList.ToAggregate)
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.text()));
    out
}

fn validate_at(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let name = if path.is_empty() { "." } else { path };
    let field = path.to_string();
    if v.is_null() {
        if flag(s, "nullable") || (ty(s).is_empty() && !int_or_string(s)) {
            return;
        }
        let t = if int_or_string(s) {
            "integer,string"
        } else {
            ty(s)
        };
        out.push(Cause::type_invalid(
            field,
            "\"null\"",
            format!("{name} in body must be of type {t}: \"null\""),
        ));
        return;
    }
    // type
    let t = ty(s);
    let type_ok = if int_or_string(s) {
        is_integer(v) || v.is_string()
    } else {
        match t {
            "" => true,
            "integer" => is_integer(v),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        }
    };
    if !type_ok {
        let t = if int_or_string(s) {
            "integer,string"
        } else {
            t
        };
        let actual = type_name(v);
        out.push(Cause::type_invalid(
            field,
            format!("\"{actual}\""),
            format!("{name} in body must be of type {t}: \"{actual}\""),
        ));
        return;
    }
    // enum
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.iter().any(|x| json_eq(x, v)) {
            let supported: Vec<String> = e
                .iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
            out.push(Cause::not_supported(field.clone(), go_value(v), &refs));
        }
    }
    match v {
        Value::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    out.push(Cause::too_long(field.clone(), max));
                }
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    out.push(Cause::invalid(
                        field.clone(),
                        go_value(v),
                        format!("{name} in body should be at least {min} chars long"),
                    ));
                }
            }
            if let Some(f) = s.get("format").and_then(Value::as_str) {
                if format_fails(f, st) {
                    out.push(Cause::type_invalid(
                        field.clone(),
                        go_value(v),
                        format!("{name} in body must be of type {f}: {}", go_value(v)),
                    ));
                }
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                if let Some(re) = compiled(p) {
                    if !re.is_match(st) {
                        out.push(Cause::invalid(
                            field.clone(),
                            go_value(v),
                            format!("{name} in body should match '{p}'"),
                        ));
                    }
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                let exc = flag(s, "exclusiveMaximum");
                if (exc && x >= max) || (!exc && x > max) {
                    let op = if exc {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    out.push(Cause::invalid(
                        field.clone(),
                        go_value(v),
                        format!("{name} in body should be {op} {}", fmt_num(max)),
                    ));
                }
            }
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                let exc = flag(s, "exclusiveMinimum");
                if (exc && x <= min) || (!exc && x < min) {
                    let op = if exc {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    out.push(Cause::invalid(
                        field.clone(),
                        go_value(v),
                        format!("{name} in body should be {op} {}", fmt_num(min)),
                    ));
                }
            }
            if let Some(m) = s.get("multipleOf").and_then(Value::as_f64) {
                if m > 0.0 && ((x / m).round() * m - x).abs() > 1e-9 {
                    out.push(Cause::invalid(
                        field.clone(),
                        go_value(v),
                        format!("{name} in body should be a multiple of {}", fmt_num(m)),
                    ));
                }
            }
        }
        Value::Array(a) => {
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if a.len() as u64 > max {
                    out.push(Cause::too_many(field.clone(), a.len(), max));
                }
            }
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if (a.len() as u64) < min {
                    out.push(Cause::invalid(
                        field.clone(),
                        a.len().to_string(),
                        format!("{name} in body should have at least {min} items"),
                    ));
                }
            }
            if flag(s, "uniqueItems") {
                let dup = a
                    .iter()
                    .enumerate()
                    .any(|(i, x)| a[..i].iter().any(|y| json_eq(x, y)));
                if dup {
                    out.push(Cause::invalid(
                        field.clone(),
                        "\"\"",
                        format!("{name} in body shouldn't contain duplicates"),
                    ));
                }
            }
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                for (i, x) in a.iter().enumerate() {
                    validate_at(x, items, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(m) => {
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        out.push(Cause::required(child(path, r), ""));
                    }
                }
            }
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
                if m.len() as u64 > max {
                    out.push(Cause::too_many(field.clone(), m.len(), max));
                }
            }
            if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
                if (m.len() as u64) < min {
                    out.push(Cause::invalid(
                        field.clone(),
                        m.len().to_string(),
                        format!("{name} in body should have at least {min} properties"),
                    ));
                }
            }
            for (k, x) in m {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    // ObjectMeta is validated as ObjectMeta, apiVersion and kind by the decoder;
                    // the schema may restrict metadata.name and metadata.generateName
                    let md = props(s).and_then(|p| p.get("metadata"));
                    if let (Some(md), Value::Object(xm)) = (md.filter(|_| k == "metadata"), x) {
                        for f in ["name", "generateName"] {
                            if let (Some(fs), Some(fv)) =
                                (props(md).and_then(|p| p.get(f)), xm.get(f))
                            {
                                validate_at(fv, fs, &format!("metadata.{f}"), out);
                            }
                        }
                    }
                    continue;
                }
                if let Some(prop) = props(s).and_then(|p| p.get(k)) {
                    validate_at(x, prop, &child(path, k), out);
                } else if let Some(a) = additional(s) {
                    validate_at(x, a, &child(path, k), out);
                } else if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                    out.push(Cause::invalid(
                        field.clone(),
                        go_value(&Value::String(k.clone())),
                        format!("{name}.{k} in body is a forbidden property"),
                    ));
                }
            }
        }
        _ => {}
    }
    // value validations
    let quoted = format!("\"{name}\"");
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            validate_at(v, sub, path, out);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|sub| {
            let mut o = vec![];
            validate_at(v, sub, path, &mut o);
            o.is_empty()
        });
        if !ok && !int_or_string(s) {
            out.push(Cause::invalid(
                field.clone(),
                "\"\"",
                format!("{quoted} must validate at least one schema (anyOf)"),
            ));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let n = one
            .iter()
            .filter(|sub| {
                let mut o = vec![];
                validate_at(v, sub, path, &mut o);
                o.is_empty()
            })
            .count();
        if n != 1 {
            out.push(Cause::invalid(
                field.clone(),
                "\"\"",
                format!("{quoted} must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = s.get("not") {
        let mut o = vec![];
        validate_at(v, not, path, &mut o);
        if o.is_empty() {
            out.push(Cause::invalid(
                field,
                "\"\"",
                format!("{quoted} must not validate the schema (not)"),
            ));
        }
    }
}

/// `listtype.ValidateListSetsAndMaps`: items of an `x-kubernetes-list-type: set` list are
/// unique, and so are the key tuples of a `map` list.
fn list_types(x: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    match x {
        Value::Array(a) => {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, v) in a.iter().enumerate() {
                        if a[..i].iter().any(|w| json_eq(v, w)) {
                            out.push(Cause::duplicate(format!("{path}[{i}]"), go_value(v)));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = s
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let tuple = |v: &Value| -> Vec<Value> {
                        keys.iter()
                            .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                            .collect()
                    };
                    for (i, v) in a.iter().enumerate() {
                        let t = tuple(v);
                        if a[..i]
                            .iter()
                            .any(|w| tuple(w).iter().zip(&t).all(|(p, q)| json_eq(p, q)))
                        {
                            let shown: Vec<String> = keys
                                .iter()
                                .zip(&t)
                                .filter(|(_, v)| !v.is_null())
                                .map(|(k, v)| format!("\"{k}\":{}", go_interface(v)))
                                .collect();
                            out.push(Cause::duplicate(
                                format!("{path}[{i}]"),
                                format!("map[string]interface {{}}{{{}}}", shown.join(", ")),
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                for (i, v) in a.iter().enumerate() {
                    list_types(v, items, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                if let Some(sub) = sub_schema(s, k) {
                    list_types(v, sub, &child(path, k), out);
                }
            }
        }
        _ => {}
    }
}

/// A value inside a Go `%#v` of `map[string]interface{}`.
fn go_interface(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("{}", n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => format!("{n}"),
        other => go_value(other),
    }
}

/// Equality of JSON values with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Every `default` must itself validate against its schema, after pruning
/// (`structuraldefaulting.ValidateDefaults`).
pub fn validate_defaults(s: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(d) = s.get("default") {
        let mut pruned = d.clone();
        let mut sch = s.clone();
        if let Some(m) = sch.as_object_mut() {
            m.remove("default");
        }
        let unknown = {
            let mut o = vec![];
            prune_impl(&mut pruned, Some(&sch), false, "", &mut o);
            o
        };
        let dpath = child(path, "default");
        if let Some(u) = unknown.first() {
            out.push(Cause::invalid(
                child(&dpath, u),
                "\"\"",
                "must not have unknown fields",
            ));
        }
        for c in validate(&pruned, &sch) {
            let f = if c.field.is_empty() {
                dpath.clone()
            } else {
                child(&dpath, &c.field)
            };
            out.push(Cause { field: f, ..c });
        }
    }
    if let Some(p) = props(s) {
        for (k, sub) in p {
            validate_defaults(sub, &key(&child(path, "properties"), k), out);
        }
    }
    if let Some(a) = additional(s) {
        validate_defaults(a, &child(path, "additionalProperties"), out);
    }
    if let Some(i) = s.get("items").filter(|i| i.is_object()) {
        validate_defaults(i, &child(path, "items"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(c: &[Cause]) -> Vec<String> {
        c.iter().map(Cause::text).collect()
    }

    // cases after pkg/apiserver/schema/validation_test.go and the CRD validation tests
    #[test]
    fn structural_schema_rules() {
        let p = "spec.versions[0].schema.openAPIV3Schema";
        assert!(validate_structural(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}),
            p
        )
        .is_empty());
        assert_eq!(
            texts(&validate_structural(&json!({"properties": {"spec": {}}}), p)),
            vec![
                format!("{p}.properties[spec].type: Required value: must not be empty for specified object fields"),
                format!("{p}.type: Required value: must not be empty at the root"),
            ]
        );
        assert_eq!(
            texts(&validate_structural(
                &json!({"type": "array", "items": {}}),
                p
            )),
            vec![
                format!(
                    "{p}.items.type: Required value: must not be empty for specified array items"
                ),
                format!("{p}.type: Invalid value: \"array\": must be object at the root"),
            ]
        );
        assert_eq!(
            texts(&validate_structural(
                &json!({"type": "object", "additionalProperties": {"type": "string"}}),
                p
            )),
            vec![format!(
                "{p}.additionalProperties: Forbidden: must not be used at the root"
            )]
        );
        let both = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}});
        let with_true = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}}});
        assert!(validate_structural(&with_true, p).is_empty());
        let with_false = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}}});
        assert_eq!(texts(&validate_structural(&with_false, p)).len(), 1);
        assert!(texts(&validate_structural(&both, p)).contains(&format!(
            "{p}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )));
        // value validations may not carry types, and what they name must be specified
        let vv = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}},
            "anyOf": [{"type": "object", "properties": {"b": {"minLength": 1}}}]}}});
        let t = texts(&validate_structural(&vv, p));
        assert!(
            t.contains(&format!(
                "{p}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"
            )),
            "{t:?}"
        );
        assert_eq!(t.len(), 1, "{t:?}");
        // TestValidateStructuralCompleteness: what the root's value validations name must be
        // specified (also with additionalProperties, which CRDs do not accept instead)
        let root = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "allOf": [{"properties": {"a": {"minLength": 2}, "b": {"minLength": 1}}}],
            "anyOf": [{"properties": {"a": {"items": {"minLength": 1}}}}]});
        assert_eq!(
            texts(&validate_structural(&root, p)),
            vec![
                format!("{p}.properties[a].items: Required value: because it is defined in {p}.anyOf[0].properties[a].items"),
                format!("{p}.properties[b]: Required value: because it is defined in {p}.allOf[0].properties[b]"),
            ]
        );
        // int-or-string and preserve-unknown-fields need no type
        assert!(validate_structural(
            &json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true}, "x": {"x-kubernetes-preserve-unknown-fields": true}}}),
            p
        )
        .is_empty());
        let t = texts(&validate_structural(
            &json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            p,
        ));
        assert_eq!(t, vec![format!("{p}.properties[port].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true")]);
        // metadata: only name and generateName at the root, nothing nested
        let t = texts(&validate_structural(
            &json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
            p,
        ));
        assert_eq!(t, vec![format!("{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")]);
        assert!(validate_structural(
            &json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}}}),
            p
        )
        .is_empty());
        // TestValidateStructuralMetadataInvariants: value validations pass, generics do not
        assert!(validate_structural(
            &json!({"type": "object", "properties": {"metadata": {"type": "object", "minProperties": 1, "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}}}),
            p
        )
        .is_empty());
        assert_eq!(
            validate_structural(
                &json!({"type": "object", "properties": {"metadata": {"type": "object", "description": "d"}}}),
                p
            )
            .len(),
            1
        );
        let t = texts(&validate_structural(
            &json!({"type": "object", "properties": {
                "l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map"},
                "m": {"type": "string", "x-kubernetes-map-type": "granular"},
                "n": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}}}),
            p,
        ));
        assert_eq!(
            t,
            vec![
                format!("{p}.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"),
                format!("{p}.properties[m].type: Invalid value: \"string\": must be object if x-kubernetes-map-type is specified"),
                format!("{p}.properties[n].x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""),
            ]
        );
        let t = texts(&validate_structural(
            &json!({"type": "object", "properties": {"a": {"type": "array"}}}),
            p,
        ));
        assert_eq!(
            t,
            vec![format!(
                "{p}.properties[a].items: Required value: must be specified"
            )]
        );
        let t = texts(&validate_structural(
            &json!({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}}),
            p,
        ));
        assert_eq!(
            t,
            vec![format!(
                "{p}.properties[a].$ref: Forbidden: $ref is not supported"
            )]
        );
        let t = texts(&validate_structural(
            &json!({"type": "object", "properties": {"a": {"type": "strin"}}}),
            p,
        ));
        assert!(
            t[0].starts_with(&format!(
                "{p}.properties[a].type: Unsupported value: \"strin\""
            )),
            "{t:?}"
        );
    }

    // cases after pkg/apiserver/schema/pruning/algorithm_test.go
    #[test]
    fn pruning() {
        let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "a": {"type": "string"},
            "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"inner": {"type": "object", "properties": {"k": {"type": "string"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "emb": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
        }}}});
        let mut o = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "whatever": 1},
            "spec": {"a": "x", "b": 1, "list": [{"x": 1, "y": 2}],
                     "free": {"anything": true, "inner": {"k": "v", "drop": 1}},
                     "labels": {"l": "v"},
                     "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "junk": 1}},
            "extra": {"z": 1}});
        let pruned = prune(&mut o, &s);
        assert_eq!(
            pruned,
            vec![
                "spec.b",
                "spec.list[0].y",
                "spec.free.inner.drop",
                "spec.emb.junk",
                "extra"
            ]
        );
        assert_eq!(
            o,
            json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "whatever": 1},
                "spec": {"a": "x", "list": [{"x": 1}], "free": {"anything": true, "inner": {"k": "v"}},
                         "labels": {"l": "v"},
                         "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}})
        );
        // a preserving root keeps everything unknown
        let mut o = json!({"spec": {"anything": 1}, "status": {"x": 1}});
        assert!(prune(
            &mut o,
            &json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        )
        .is_empty());
        assert_eq!(o["status"]["x"], 1);
    }

    // pkg/apiserver/schema/pruning/algorithm_test.go `TestPrune`, the cases without a resource
    // root (schemas as JSON: `{}` is an empty Structural)
    #[test]
    fn upstream_prune_cases() {
        let case = |json: &str, schema: Value, want: &str, mut want_pruned: Vec<&str>| {
            let mut x: Value = serde_json::from_str(json).unwrap();
            let mut pruned = vec![];
            prune_impl(&mut x, Some(&schema), false, "", &mut pruned);
            assert_eq!(x, serde_json::from_str::<Value>(want).unwrap(), "{json}");
            pruned.sort();
            want_pruned.sort();
            assert_eq!(pruned, want_pruned, "{json}");
        };
        case("4", json!({}), "4", vec![]);
        case("[1,2]", json!({"items": {}}), "[1,2]", vec![]);
        case(
            r#"[{"a":1},{"b":1},{"a":1,"b":2,"c":3}]"#,
            json!({"items": {"properties": {"a": {}, "c": {}}}}),
            r#"[{"a":1},{},{"a":1,"c":3}]"#,
            vec!["[1].b", "[2].b"],
        );
        let mut x: Value =
            serde_json::from_str(r#"[{"a":1},{"b":1},{"a":1,"b":2,"c":3}]"#).unwrap();
        let mut pruned = vec![];
        prune_impl(&mut x, None, false, "", &mut pruned);
        assert_eq!(x, json!([{}, {}, {}]));
        assert_eq!(pruned, vec!["[0].a", "[1].b", "[2].a", "[2].b", "[2].c"]);
        case(
            r#"{"array":[{"a":1},{"b":1},{"a":1,"b":2,"c":3}],"unspecified":{"a":1},"specified":{"a":1,"b":2,"c":3}}"#,
            json!({"properties": {"array": {"items": {"properties": {"a": {}, "c": {}}}}, "specified": {"properties": {"a": {}, "c": {}}}}}),
            r#"{"array":[{"a":1},{},{"a":1,"c":3}],"specified":{"a":1,"c":3}}"#,
            vec!["array[1].b", "array[2].b", "specified.b", "unspecified"],
        );
        case(
            r#"{"a":1,"b":1,"c":{"a":1,"b":2,"c":{"a":1}}}"#,
            json!({"properties": {"a": {}, "c": {"additionalProperties": {"type": "integer"}}}}),
            r#"{"a":1,"c":{"a":1,"b":2,"c":{}}}"#,
            vec!["b", "c.c.a"],
        );
        case(
            r#"{"a":1,"b":1,"c":{"a":1,"b":2,"c":{"a":1, "apiVersion": "unknown"}}}"#,
            json!({"properties": {"a": {}, "c": {"additionalProperties": false}}}),
            r#"{"a":1,"c":{"a":1,"b":2,"c":{}}}"#,
            vec!["b", "c.c.a", "c.c.apiVersion"],
        );
    }

    // pkg/apiserver/schema/defaulting/algorithm_test.go `TestDefault`
    #[test]
    fn upstream_default_cases() {
        let case = |json: &str, schema: Value, want: &str| {
            let mut x: Value = serde_json::from_str(json).unwrap();
            default(&mut x, &schema);
            assert_eq!(x, serde_json::from_str::<Value>(want).unwrap(), "{json}");
        };
        case("4", json!({"default": "foo"}), "4");
        case("[1,2]", json!({"items": {"default": "foo"}}), "[1,2]");
        case(
            r#"[{"a":1},{"b":1},{"c":1}]"#,
            json!({"items": {"properties": {"a": {"default": "A"}, "b": {"default": "B"}, "c": {"default": "C"}}}}),
            r#"[{"a":1,"b":"B","c":"C"},{"a":"A","b":1,"c":"C"},{"a":"A","b":"B","c":1}]"#,
        );
        case(
            r#"{"array":[{"a":1},{"b":2}],"object":{"a":1},"additionalProperties":{"x":{"a":1},"y":{"b":2}}}"#,
            json!({"properties": {
                "array": {"items": {"properties": {"a": {"default": "A"}, "b": {"default": "B"}}}},
                "object": {"properties": {"a": {"default": "N"}, "b": {"default": "O"}}},
                "additionalProperties": {"additionalProperties": {"properties": {"a": {"default": "alpha"}, "b": {"default": "beta"}}}},
                "foo": {"default": "bar"}}}),
            r#"{"array":[{"a":1,"b":"B"},{"a":"A","b":2}],"object":{"a":1,"b":"O"},"additionalProperties":{"x":{"a":1,"b":"beta"},"y":{"a":"alpha","b":2}},"foo":"bar"}"#,
        );
        case(
            r#"[{},{"a":1},{"a":0},{"a":0.0},{"a":""},{"a":null},{"a":[]},{"a":{}}]"#,
            json!({"items": {"properties": {"a": {"default": "A"}}}}),
            r#"[{"a":"A"},{"a":1},{"a":0},{"a":0.0},{"a":""},{"a":"A"},{"a":[]},{"a":{}}]"#,
        );
        case(
            "[null]",
            json!({"nullable": true, "items": {"nullable": true, "properties": {"a": {"default": "A"}}}}),
            "[null]",
        );
        case("[null]", json!({"items": {"default": "A"}}), r#"["A"]"#);
        case(
            r#"{"a": null}"#,
            json!({"properties": {"a": {"nullable": true, "default": "A"}}}),
            r#"{"a": null}"#,
        );
        case(
            r#"{"a": null}"#,
            json!({"properties": {"a": {"default": "A"}}}),
            r#"{"a": "A"}"#,
        );
        case(
            r#"{"a": null}"#,
            json!({"additionalProperties": {"nullable": true, "default": "A"}}),
            r#"{"a": null}"#,
        );
        case(
            r#"{"a": null}"#,
            json!({"additionalProperties": {"default": "A"}}),
            r#"{"a": "A"}"#,
        );
    }

    // cases after pkg/apiserver/schema/defaulting/algorithm_test.go
    #[test]
    fn defaulting() {
        let s = json!({"type": "object", "properties": {
        "spec": {"type": "object", "default": {}, "properties": {
            "mode": {"type": "string", "default": "auto"},
            "n": {"type": "integer", "default": 3},
            "maybe": {"type": "string", "nullable": true, "default": "d"},
            "nested": {"type": "object", "properties": {"deep": {"type": "string", "default": "x"}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"p": {"type": "integer", "default": 80}}}}
        }}}});
        let mut o = json!({});
        default(&mut o, &s);
        // a defaulted parent gets its children's defaults; a missing nested parent is not created
        assert_eq!(o, json!({"spec": {"mode": "auto", "n": 3, "maybe": "d"}}));
        let mut o =
            json!({"spec": {"n": null, "maybe": null, "nested": {}, "items": [{}, {"p": 1}]}});
        default(&mut o, &s);
        assert_eq!(
            o,
            json!({"spec": {"n": 3, "maybe": null, "nested": {"deep": "x"}, "items": [{"p": 80}, {"p": 1}], "mode": "auto"}})
        );
        // nulls without a default go before defaulting
        let mut o = json!({"spec": {"nested": null, "mode": null}});
        drop_null_without_default(&mut o, &s);
        assert_eq!(o, json!({"spec": {"mode": null}}));
    }

    // messages after k8s.io/kube-openapi pkg/validation/errors and apiextensions
    // pkg/apiserver/validation/validation_test.go
    #[test]
    fn validation_messages() {
        let s = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
        "required": ["upstream"],
        "properties": {
            "upstream": {"type": "string", "pattern": "^[a-z.]+$", "maxLength": 10, "minLength": 2},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
            "mode": {"type": "string", "enum": ["Always", "Never"]},
            "tags": {"type": "array", "maxItems": 2, "uniqueItems": true, "items": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": true},
            "ratio": {"type": "number", "multipleOf": 0.5}
        }}}});
        assert!(validate(
            &json!({"spec": {"upstream": "reg.io", "replicas": 2, "port": "http", "ratio": 1.5}}),
            &s
        )
        .is_empty());
        assert_eq!(
            texts(&validate(&json!({}), &s)),
            vec!["spec: Required value"]
        );
        assert_eq!(
            texts(&validate(
                &json!({"spec": {"replicas": "two", "mode": "Sometimes", "tags": ["a", "b", "c"], "port": 1.5}}),
                &s
            )),
            vec![
                "spec.upstream: Required value",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "spec.mode: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\"",
            ]
        );
        assert_eq!(
            texts(&validate(&json!({"spec": {"upstream": "UPPER-and-long", "replicas": 9, "tags": ["a", "a"], "ratio": 0.7}}), &s)),
            vec![
                "spec.upstream: Too long: may not be more than 10 bytes",
                "spec.upstream: Invalid value: \"UPPER-and-long\": spec.upstream in body should match '^[a-z.]+$'",
                "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5",
                "spec.tags: Invalid value: \"\": spec.tags in body shouldn't contain duplicates",
                "spec.ratio: Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5",
            ]
        );
        assert_eq!(
            texts(&validate(&json!({"spec": {"upstream": "a", "replicas": 0}}), &s)),
            vec![
                "spec.upstream: Invalid value: \"a\": spec.upstream in body should be at least 2 chars long",
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            ]
        );
    }

    // listtype/validation_test.go: duplicates in sets and maps
    #[test]
    fn list_sets_and_maps() {
        let s = json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}}});
        assert!(validate(&json!({"tags": ["a", "b"], "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 1}]}), &s).is_empty());
        assert_eq!(
            texts(&validate(
                &json!({"tags": ["a", "b", "a"], "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}),
                &s
            )),
            vec![
                "tags[2]: Duplicate value: \"a\"",
                "ports[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}",
            ]
        );
    }

    #[test]
    fn formats() {
        let s = json!({"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"}, "ip": {"type": "string", "format": "ipv4"},
            "net": {"type": "string", "format": "cidr"}, "b": {"type": "string", "format": "byte"},
            "free": {"type": "string", "format": "something-else"}}});
        assert!(validate(&json!({"at": "2026-01-02T03:04:05Z", "day": "2026-01-02", "id": "123e4567-e89b-12d3-a456-426614174000",
            "ip": "10.0.0.1", "net": "10.0.0.0/8", "b": "aGk=", "free": "x"}), &s).is_empty());
        assert_eq!(
            texts(&validate(&json!({"at": "yesterday", "ip": "10.0.0.300", "net": "10.0.0.0/40", "b": "!!"}), &s)),
            vec![
                "at: Invalid value: \"yesterday\": at in body must be of type date-time: \"yesterday\"",
                "ip: Invalid value: \"10.0.0.300\": ip in body must be of type ipv4: \"10.0.0.300\"",
                "net: Invalid value: \"10.0.0.0/40\": net in body must be of type cidr: \"10.0.0.0/40\"",
                "b: Invalid value: \"!!\": b in body must be of type byte: \"!!\"",
            ]
        );
    }

    #[test]
    fn metadata_name_restrictions_apply() {
        let s = json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 5}}}}});
        assert!(validate(
            &json!({"metadata": {"name": "short", "labels": {"a": "b"}}}),
            &s
        )
        .is_empty());
        assert_eq!(
            texts(&validate(
                &json!({"metadata": {"name": "much-too-long"}}),
                &s
            )),
            vec!["metadata.name: Too long: may not be more than 5 bytes"]
        );
    }

    #[test]
    fn defaults_must_validate() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "n": {"type": "integer", "default": "x"},
            "o": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "ok", "b": 1}}}}}});
        let mut out = vec![];
        validate_defaults(&s, "p", &mut out);
        let t = texts(&out);
        assert!(t.contains(&"p.properties[spec].properties[n].default: Invalid value: \"string\": . in body must be of type integer: \"string\"".to_string()), "{t:?}");
        assert!(t.contains(&"p.properties[spec].properties[o].default.b: Invalid value: \"\": must not have unknown fields".to_string()), "{t:?}");
    }
}
