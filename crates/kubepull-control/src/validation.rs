//! Name, label and selector checks every validator shares, with upstream's messages:
//! k8s.io/apimachinery `pkg/util/validation/validation.go` (`IsQualifiedName`,
//! `IsValidLabelValue`, `RegexError`) and `pkg/apis/meta/v1/validation/validation.go`
//! (`ValidateLabels`, `ValidateLabelName`, `ValidateLabelSelector`,
//! `ValidateLabelSelectorRequirement`), and `ValidateAnnotations`' key check
//! (`pkg/api/validation/objectmeta.go`).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::errors::Cause;

/// `qualifiedNameFmt`.
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
/// `qualifiedNameErrMsg`.
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// `labelValueErrMsg`.
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// `qualifiedNameMaxLength`, `LabelValueMaxLength`.
const MAX_LEN: usize = 63;

/// `RegexError`: the message, the examples (Go's loop writes two spaces before each `or`)
/// and the regex.
pub(crate) fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the shape of a qualified name's name part and
/// of a non-empty label value.
fn is_qualified_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |x: &u8| x.is_ascii_alphanumeric();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter()
            .all(|x| alnum(x) || matches!(x, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric. The messages, in
/// upstream's order; none when valid.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let name_regex = || {
        regex_error(
            QUALIFIED_NAME_ERR,
            QUALIFIED_NAME_FMT,
            &["MyName", "my.name", "123-abc"],
        )
    };
    let mut errs = vec![];
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    crate::admission::dns1123_subdomain_problems(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                name_regex()
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > MAX_LEN {
        errs.push(format!(
            "name part must be no more than {MAX_LEN} characters"
        ));
    }
    if !is_qualified_shaped(name) {
        errs.push(format!("name part {}", name_regex()));
    }
    errs
}

/// `IsValidLabelValue`: empty, or at most 63 characters of the qualified-name shape.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = vec![];
    if value.len() > MAX_LEN {
        errs.push(format!("must be no more than {MAX_LEN} characters"));
    }
    if !value.is_empty() && !is_qualified_shaped(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `ValidateLabelName`: each message of [`is_qualified_name`] an invalid `path`.
pub fn validate_label_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    for msg in is_qualified_name(name) {
        causes.push(Cause::invalid(path, format!("{name:?}"), msg));
    }
}

/// `ValidateLabels` of a JSON object of labels (keys in order; Go's map order is random). A
/// value that is not a string is the decoder's error, not checked here.
pub fn validate_labels(labels: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    validate_label_map(
        map.iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
        path,
        causes,
    );
}

/// `ValidateLabels` of typed labels (a pod spec's `nodeSelector`), keys in order.
pub fn validate_label_map<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for (k, v) in labels {
        validate_label_name(k, path, causes);
        for msg in is_valid_label_value(v) {
            causes.push(Cause::invalid(path, format!("{v:?}"), msg));
        }
    }
}

/// The most bytes of annotation keys and values an object may carry
/// (`TotalAnnotationSizeLimitB`).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: u64 = 256 * 1024;

/// `ValidateAnnotations`: each key a qualified name, case aside, and keys and values together
/// at most [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes (`Too long: may not be more than 262144
/// bytes`, what a `kubectl apply` of a large object meets through its last-applied
/// annotation).
pub fn validate_annotations(annotations: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0u64;
    for (k, v) in map {
        for msg in is_qualified_name(&k.to_ascii_lowercase()) {
            causes.push(Cause::invalid(path, format!("{k:?}"), msg));
        }
        total += (k.len() + v.as_str().map_or(0, str::len)) as u64;
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(Cause::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

/// The finalizers every built-in kind may carry without a domain (`standardFinalizers`).
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// The first of `ValidateObjectMetaAccessor`'s checks after the names (create, `old` none): a
/// `generation` not negative; or the first of `ValidateObjectMetaAccessorUpdate`'s: no new
/// finalizer on an object being deleted (`ValidateNoNewFinalizers`). Labels and annotations
/// come after them.
pub fn validate_meta_head(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    match old {
        None => {
            if let Some(g) = obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .filter(|g| *g < 0)
            {
                causes.push(Cause::invalid(
                    "metadata.generation",
                    g.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
        Some(old) if old.pointer("/metadata/deletionTimestamp").is_some() => {
            let before: std::collections::BTreeSet<&str> = finalizers(old).into_iter().collect();
            let extra: std::collections::BTreeSet<&str> = finalizers(obj)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !extra.is_empty() {
                causes.push(Cause::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                        go_string_slice(extra)
                    ),
                ));
            }
        }
        Some(_) => {}
    }
}

/// The finalizer names of `obj`.
fn finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The checks of `ValidateObjectMetaAccessor` (create, `old` none) or
/// `ValidateObjectMetaAccessorUpdate` (update) after the labels and annotations, in upstream's
/// order: the owner references; on create the finalizers (`ValidateFinalizers`: qualified
/// names, not both `orphan` and `foregroundDeletion`). With `core_finalizer_rule` (the core
/// group's `ValidateObjectMeta`/`ValidateObjectMetaUpdate` wrappers, which most built-in kinds
/// use) a finalizer without a domain must be a standard one (`validateKubeFinalizerName`).
pub fn validate_meta_tail(
    obj: &Value,
    old: Option<&Value>,
    core_finalizer_rule: bool,
    causes: &mut Vec<Cause>,
) {
    let finalizers = finalizers(obj);
    validate_owner_references(obj.pointer("/metadata/ownerReferences"), causes);
    if old.is_none() {
        for f in &finalizers {
            for msg in is_qualified_name(f) {
                causes.push(Cause::invalid("metadata.finalizers", q(f), msg));
            }
        }
        if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
            causes.push(Cause::invalid(
                "metadata.finalizers",
                go_string_slice(finalizers.iter().copied()),
                "finalizer orphan and foregroundDeletion cannot be both set",
            ));
        }
    }
    if core_finalizer_rule {
        for (i, f) in finalizers.iter().enumerate() {
            if !f.contains('/') && !STANDARD_FINALIZERS.contains(f) {
                causes.push(Cause::invalid(
                    format!("metadata.finalizers[{i}]"),
                    q(f),
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
    }
}

/// The warnings a custom resource's finalizers get (apiextensions `generateWarningsFromObj`
/// and `validateKubeFinalizerName`): for each finalizer the write adds (all of a new
/// object's), in name order, each reason it is not a qualified name, and a name without a
/// domain path that is not a standard one (`prefer a domain-qualified finalizer name including
/// a path (/) …` when it has a dot, as `resources-finalizer.argocd.argoproj.io`).
pub fn finalizer_warnings(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let before: std::collections::BTreeSet<&str> = old
        .map(finalizers)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let added: std::collections::BTreeSet<&str> = finalizers(obj)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let mut w = vec![];
    for f in added {
        for msg in is_qualified_name(f) {
            w.push(format!("metadata.finalizers: {}: {msg}", q(f)));
        }
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f) {
            let including = if f.contains('.') {
                " including a path (/)"
            } else {
                ""
            };
            w.push(format!(
                "metadata.finalizers: {}: prefer a domain-qualified finalizer name{including} to avoid accidental conflicts with other finalizer writers",
                q(f)
            ));
        }
    }
    w
}

/// `ValidateOwnerReferences`: each reference with a version, kind, name and UID, not an
/// Event (`BannedOwners`), and at most one controller. The values a reference or the list is
/// shown as are Go's `%#v` of the typed references, except that a set `*bool` is shown as
/// `(*bool)(true)` where Go shows its address.
fn validate_owner_references(refs: Option<&Value>, causes: &mut Vec<Cause>) {
    const PATH: &str = "metadata.ownerReferences";
    let Some(refs) = refs.and_then(Value::as_array) else {
        return;
    };
    let s = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut controller = String::new();
    for r in refs {
        let (api_version, kind) = (s(r, "apiVersion"), s(r, "kind"));
        // `schema.FromAPIVersionAndKind`: `group/version`, or a version alone; anything else
        // does not parse (`ParseGroupVersion`) and has no version
        let (group, version) = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => ("", *v),
            [g, v] => (*g, *v),
            _ => ("", ""),
        };
        if version.is_empty() {
            causes.push(Cause::invalid(
                format!("{PATH}.apiVersion"),
                q(&api_version),
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            causes.push(Cause::invalid(
                format!("{PATH}.kind"),
                q(&kind),
                "kind must not be empty",
            ));
        }
        let name = s(r, "name");
        if name.is_empty() {
            causes.push(Cause::invalid(
                format!("{PATH}.name"),
                "\"\"",
                "name must not be empty",
            ));
        }
        if s(r, "uid").is_empty() {
            causes.push(Cause::invalid(
                format!("{PATH}.uid"),
                "\"\"",
                "uid must not be empty",
            ));
        }
        if (group, version, kind.as_str()) == ("", "v1", "Event") {
            causes.push(Cause::invalid(
                PATH,
                go_owner_reference(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{kind}/{name}");
            if controller.is_empty() {
                controller = this;
            } else {
                causes.push(Cause::invalid(
                    PATH,
                    format!(
                        "[]v1.OwnerReference{{{}}}",
                        refs.iter().map(go_owner_reference).collect::<Vec<_>>().join(", ")
                    ),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {controller} and {this}"
                    ),
                ));
            }
        }
    }
}

/// Go's `%q` of a string.
fn q(s: &str) -> String {
    crate::managedfields::go_quote(s)
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    format!(
        "[]string{{{}}}",
        items.into_iter().map(q).collect::<Vec<_>>().join(", ")
    )
}

/// Go's `%#v` of a `metav1.OwnerReference` (see [`validate_owner_references`] for its
/// pointers).
fn go_owner_reference(r: &Value) -> String {
    let s = |k: &str| q(r.get(k).and_then(Value::as_str).unwrap_or(""));
    let b = |k: &str| match r.get(k).and_then(Value::as_bool) {
        Some(v) => format!("(*bool)({v})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        s("apiVersion"),
        s("kind"),
        s("name"),
        s("uid"),
        b("controller"),
        b("blockOwnerDeletion")
    )
}

/// `ValidateLabelSelector` (with `AllowInvalidLabelValueInSelector` false): `matchLabels` as
/// labels, then each `matchExpressions` requirement: its operator and values, its key a label
/// name, its values label values.
pub fn validate_label_selector(sel: &Value, path: &str, causes: &mut Vec<Cause>) {
    validate_labels(
        sel.get("matchLabels"),
        &format!("{path}.matchLabels"),
        causes,
    );
    let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) else {
        return;
    };
    for (i, e) in exprs.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or("")).collect())
            .unwrap_or_default();
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    causes.push(Cause::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    causes.push(Cause::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => causes.push(Cause::invalid(
                format!("{p}.operator"),
                format!("{op:?}"),
                "not a valid selector operator",
            )),
        }
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        validate_label_name(key, &format!("{p}.key"), causes);
        for (j, v) in values.iter().enumerate() {
            for msg in is_valid_label_value(v) {
                causes.push(Cause::invalid(
                    format!("{p}.values[{j}]"),
                    format!("{v:?}"),
                    msg,
                ));
            }
        }
    }
}

/// Go's `%#v` of an `intstr.IntOrString` (how `field.Invalid` prints one).
pub(crate) fn go_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        IntOrString::String(s) => {
            format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}")
        }
    }
}

/// `validation.IsValidPercent`.
pub(crate) fn is_valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `getPercentValue`.
pub(crate) fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if is_valid_percent(s) => s.trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

/// `getIntOrPercentValue`: a percent's number, else `IntOrString.IntValue` (an integer, or a
/// string's `strconv.Atoi`, 0 when it is no number; out of range it is still non-zero).
pub(crate) fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => percent_value(v).unwrap_or_else(|| {
            let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
            match s.parse::<i64>() {
                Ok(n) => n,
                Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    if s.starts_with('-') {
                        i64::MIN
                    } else {
                        i64::MAX
                    }
                }
                Err(_) => 0,
            }
        }),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent` (pkg/apis/apps/validation).
pub(crate) fn validate_int_or_percent(v: &IntOrString, path: &str, causes: &mut Vec<Cause>) {
    match v {
        IntOrString::String(s) if !is_valid_percent(s) => causes.push(Cause::invalid(
            path,
            go_int_or_string(v),
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        )),
        IntOrString::Int(n) if *n < 0 => causes.push(Cause::invalid(
            path,
            n.to_string(),
            "must be greater than or equal to 0",
        )),
        _ => {}
    }
}

pub(crate) fn not_more_than_100_percent(v: &IntOrString, path: &str, causes: &mut Vec<Cause>) {
    if percent_value(v).is_some_and(|p| p > 100) {
        causes.push(Cause::invalid(
            path,
            go_int_or_string(v),
            "must not be greater than 100%",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(c: &[Cause]) -> Vec<String> {
        c.iter().map(Cause::text).collect()
    }

    #[test]
    fn qualified_names_and_label_values_with_upstreams_messages() {
        assert!(is_qualified_name("app").is_empty());
        assert!(is_qualified_name("example.com/My_name.1").is_empty());
        assert_eq!(
            is_qualified_name("-bad-"),
            ["name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]
        );
        let empty = is_qualified_name("");
        assert_eq!(empty[0], "name part must be non-empty");
        assert_eq!(empty.len(), 2, "{empty:?}");
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
        assert_eq!(is_qualified_name("/x"), ["prefix part must be non-empty"]);
        assert!(is_qualified_name("Example.com/x")[0]
            .starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(is_qualified_name("a/b/c")[0].ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));

        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("v1.2_x").is_empty());
        assert_eq!(
            is_valid_label_value("x-"),
            ["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
        );
        assert_eq!(
            is_valid_label_value(&"v".repeat(64)),
            ["must be no more than 63 characters"]
        );
    }

    #[test]
    fn labels_annotations_and_selectors() {
        let mut c = vec![];
        validate_labels(
            Some(&json!({"-bad-": "ok", "good": "bad value"})),
            "metadata.labels",
            &mut c,
        );
        let t = texts(&c);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            t[0].starts_with("metadata.labels: Invalid value: \"-bad-\": name part must consist"),
            "{t:?}"
        );
        assert!(
            t[1].starts_with(
                "metadata.labels: Invalid value: \"bad value\": a valid label must be"
            ),
            "{t:?}"
        );

        let mut c = vec![];
        validate_annotations(
            Some(&json!({"Example.com/Note": "any value at all", "bad key": ""})),
            "metadata.annotations",
            &mut c,
        );
        let t = texts(&c);
        assert_eq!(t.len(), 1, "case does not matter in annotation keys: {t:?}");
        assert!(
            t[0].starts_with("metadata.annotations: Invalid value: \"bad key\": name part"),
            "{t:?}"
        );

        let mut c = vec![];
        validate_label_selector(
            &json!({"matchLabels": {"app": "-x"}, "matchExpressions": [
                {"key": "", "operator": "In", "values": []},
                {"key": "k", "operator": "Exists", "values": ["a"]},
                {"key": "k", "operator": "Near"},
                {"key": "k", "operator": "In", "values": ["ok", "not ok"]}]}),
            "spec.selector",
            &mut c,
        );
        let t = texts(&c);
        assert!(
            t[0].starts_with("spec.selector.matchLabels: Invalid value: \"-x\""),
            "{t:?}"
        );
        assert_eq!(t[1], "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'");
        assert_eq!(t[2], "spec.selector.matchExpressions[0].key: Invalid value: \"\": name part must be non-empty");
        assert_eq!(t[4], "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        assert_eq!(t[5], "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator");
        assert!(t[6].starts_with("spec.selector.matchExpressions[3].values[1]: Invalid value: \"not ok\": a valid label"), "{t:?}");
        assert_eq!(t.len(), 7, "{t:?}");
    }

    /// `ValidateAnnotations`' size limit: keys and values together, at most 256 KiB.
    #[test]
    fn annotations_are_at_most_256_kib_together() {
        let just = "v".repeat(262144 - 1);
        let mut c = vec![];
        validate_annotations(Some(&json!({"k": just})), "metadata.annotations", &mut c);
        assert!(c.is_empty(), "{:?}", texts(&c));
        let over = "v".repeat(262144);
        validate_annotations(Some(&json!({"k": over})), "metadata.annotations", &mut c);
        assert_eq!(
            texts(&c),
            ["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    /// `ValidateObjectMetaAccessor`'s and `ValidateObjectMetaAccessorUpdate`'s other checks,
    /// with the core group's finalizer names.
    #[test]
    fn generation_owner_references_and_finalizers_with_upstreams_messages() {
        let run = |obj: Value, old: Option<Value>, core: bool| {
            let mut c = vec![];
            validate_meta_head(&obj, old.as_ref(), &mut c);
            validate_meta_tail(&obj, old.as_ref(), core, &mut c);
            texts(&c)
        };
        let ok = json!({"metadata": {"name": "a", "generation": 3,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                "uid": "u1", "controller": true}],
            "finalizers": ["kubernetes", "example.com/keep", "foregroundDeletion"]}});
        assert!(run(ok.clone(), None, true).is_empty());
        let bad = json!({"metadata": {"name": "a", "generation": -1,
            "ownerReferences": [{"apiVersion": "apps/", "kind": "", "name": "", "uid": "",
                    "controller": true},
                {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u2", "controller": true},
                {"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u3"}],
            "finalizers": ["keep", "orphan", "foregroundDeletion", "a b/c"]}});
        let t = run(bad.clone(), None, true);
        assert_eq!(
            t[0],
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            t[1],
            r#"metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty"#
        );
        assert_eq!(
            t[2],
            r#"metadata.ownerReferences.kind: Invalid value: "": kind must not be empty"#
        );
        assert_eq!(
            t[3],
            r#"metadata.ownerReferences.name: Invalid value: "": name must not be empty"#
        );
        assert_eq!(
            t[4],
            r#"metadata.ownerReferences.uid: Invalid value: "": uid must not be empty"#
        );
        assert_eq!(
            t[5],
            r#"metadata.ownerReferences: Invalid value: v1.OwnerReference{APIVersion:"v1", Kind:"Event", Name:"e", UID:"u2", Controller:(*bool)(true), BlockOwnerDeletion:(*bool)(nil)}: /v1, Kind=Event is disallowed from being an owner"#
        );
        assert!(t[6].starts_with(r#"metadata.ownerReferences: Invalid value: []v1.OwnerReference{v1.OwnerReference{APIVersion:"apps/", "#), "{t:?}");
        assert!(t[6].ends_with(r#"Only one reference can have Controller set to true. Found "true" in references for / and Event/e"#), "{t:?}");
        assert_eq!(
            t[7],
            r#"metadata.ownerReferences.apiVersion: Invalid value: "a/b/c": version must not be empty"#
        );
        assert!(t[8].starts_with(r#"metadata.finalizers: Invalid value: "a b/c": prefix part a lowercase RFC 1123 subdomain"#), "{t:?}");
        assert_eq!(
            t[9],
            r#"metadata.finalizers: Invalid value: []string{"keep", "orphan", "foregroundDeletion", "a b/c"}: finalizer orphan and foregroundDeletion cannot be both set"#
        );
        assert_eq!(
            t[10],
            r#"metadata.finalizers[0]: Invalid value: "keep": name is neither a standard finalizer name nor is it fully qualified"#
        );
        assert_eq!(t.len(), 11, "{t:?}");
        // without the core group's wrapper (CRDs, webhook configurations, custom resources):
        // no finalizer-name rule
        assert!(!run(bad.clone(), None, false)
            .iter()
            .any(|m| m.contains("neither")));
        // an update: no generation or finalizer-name rules of the create, the owner
        // references again, and no new finalizer on an object being deleted
        let mut old = ok.clone();
        old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut new = ok.clone();
        new["metadata"]["generation"] = json!(-1);
        new["metadata"]["finalizers"] = json!(["kubernetes", "b.example/two", "a.example/one"]);
        assert_eq!(
            run(new.clone(), Some(old.clone()), true),
            [
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"a.example/one", "b.example/two"}"#
            ]
        );
        old["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("deletionTimestamp");
        assert!(run(new, Some(old), true).is_empty());
    }

    /// A custom resource's finalizer warnings: only for the finalizers a write adds, in name
    /// order, at `metadata.finalizers`, with upstream's two wordings.
    #[test]
    fn custom_resource_finalizer_warnings() {
        let obj = |f: Value| json!({"metadata": {"finalizers": f}});
        let both = obj(json!([
            "resources-finalizer.argocd.argoproj.io",
            "keep",
            "example.com/x",
            "orphan"
        ]));
        assert_eq!(
            finalizer_warnings(&both, None),
            [
                r#"metadata.finalizers: "keep": prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers"#,
                r#"metadata.finalizers: "resources-finalizer.argocd.argoproj.io": prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers"#,
            ]
        );
        assert!(finalizer_warnings(&both, Some(&both)).is_empty());
        let added = obj(json!(["keep", "more", "example.com/x"]));
        assert_eq!(
            finalizer_warnings(&added, Some(&both)),
            [
                r#"metadata.finalizers: "more": prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers"#
            ]
        );
    }
}
