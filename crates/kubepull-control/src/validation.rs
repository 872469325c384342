//! Name, label and selector checks every validator shares, with upstream's messages:
//! k8s.io/apimachinery `pkg/util/validation/validation.go` (`IsQualifiedName`,
//! `IsValidLabelValue`, `RegexError`) and `pkg/apis/meta/v1/validation/validation.go`
//! (`ValidateLabels`, `ValidateLabelName`, `ValidateLabelSelector`,
//! `ValidateLabelSelectorRequirement`), and `ValidateAnnotations`' key check
//! (`pkg/api/validation/objectmeta.go`).

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
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
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

/// `ValidateAnnotations`' key check: each key a qualified name, case aside.
pub fn validate_annotation_keys(annotations: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    for k in map.keys() {
        for msg in is_qualified_name(&k.to_ascii_lowercase()) {
            causes.push(Cause::invalid(path, format!("{k:?}"), msg));
        }
    }
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
        validate_annotation_keys(
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
}
