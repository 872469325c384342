//! API errors as `Status` objects, worded as kube-apiserver words them
//! (k8s.io/apimachinery `pkg/api/errors`), so kubectl prints what users know.

use serde_json::{json, Value};

use crate::resources::Resource;

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Forbidden`, …
    pub reason: &'static str,
    /// The message.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Result with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }

    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Self {
        ApiError {
            code,
            reason,
            message,
            details,
        }
    }

    /// 404 `secrets "x" not found`.
    pub fn not_found(r: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified()),
            Some(json!({"name": name, "group": r.group, "kind": r.plural})),
        )
    }

    /// 404 for an unknown path.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            None,
        )
    }

    /// 409 `secrets "x" already exists`.
    pub fn already_exists(r: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified()),
            Some(json!({"name": name, "group": r.group, "kind": r.plural})),
        )
    }

    /// 409 optimistic-concurrency conflict.
    pub fn conflict(r: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                r.qualified()
            ),
            Some(json!({"name": name, "group": r.group, "kind": r.plural})),
        )
    }

    /// 409 on `pods/binding` (`BindingREST.assignPod`: an error of its update function becomes
    /// `NewConflict(pods/binding, name, err)`): `Operation cannot be fulfilled on pods/binding
    /// "name": <why>`.
    pub fn binding_conflict(name: &str, why: &str) -> Self {
        Self::conflict_on("", "pods/binding", name, why)
    }

    /// 409 `errors.NewConflict(GroupResource{group, resource}, name, why)`: `Operation cannot be
    /// fulfilled on <resource>[.<group>] "name": <why>`, the details naming the resource as the
    /// kind.
    pub fn conflict_on(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified} \"{name}\": {why}"),
            Some(json!({"name": name, "group": group, "kind": resource})),
        )
    }

    /// 422 `Kind "name" is invalid: field: detail, …`, naming the kind the storage's strategy
    /// names ([`crate::events::invalid_group`]: an `events.k8s.io` Event is a core `Event`).
    pub fn invalid(r: &Resource, name: &str, causes: Vec<Cause>) -> Self {
        Self::invalid_as(crate::events::invalid_group(r), r.kind, name, causes)
    }

    /// [`ApiError::invalid`] naming `kind` of `group` (`errors.NewInvalid` with that
    /// `GroupKind`; the storage's update names the resource as the kind).
    pub fn invalid_as(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        // `field.ErrorList.ToAggregate`: the message names each distinct error once (the
        // details keep every cause, as `errors.NewInvalid` does)
        let mut seen = std::collections::HashSet::with_capacity(causes.len());
        let text: Vec<String> = causes
            .iter()
            .map(Cause::text)
            .filter(|t| seen.insert(t.clone()))
            .collect();
        // `errors.NewInvalid` names the qualified kind (`Kind.group`)
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let msg = if text.is_empty() {
            format!("{qualified} \"{name}\" is invalid")
        } else if text.len() == 1 {
            format!("{qualified} \"{name}\" is invalid: {}", text[0])
        } else {
            format!("{qualified} \"{name}\" is invalid: [{}]", text.join(", "))
        };
        Self::new(
            422,
            "Invalid",
            msg,
            Some(json!({
                "name": name,
                "group": group,
                "kind": kind,
                "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message_part(), "field": c.field})).collect::<Vec<_>>(),
            })),
        )
    }

    /// 400 of an object whose name is not the one on the URL (apiserver `handlers/rest.go`
    /// `checkName`).
    pub fn name_mismatch(given: &str, name: &str) -> Self {
        Self::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ))
    }

    /// 409 of a server-side apply's conflicts (`errors.NewApplyConflict`): `causes` of type
    /// `FieldManagerConflict`.
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        Self::new(409, "Conflict", message, Some(json!({ "causes": causes })))
    }

    /// 403 with the authorizer's wording.
    pub fn forbidden(r: &Resource, name: &str, message: String) -> Self {
        Self::new(
            403,
            "Forbidden",
            message,
            Some(json!({"name": name, "group": r.group, "kind": r.plural})),
        )
    }

    /// 403 `message` about `resource` of `group` named `name` (`errors.NewForbidden` of an
    /// authorizer's attributes: the details name the resource as its kind).
    pub fn forbidden_on(group: &str, resource: &str, name: &str, message: String) -> Self {
        // `StatusDetails`' name and group are `omitempty`
        let mut details = json!({"kind": resource});
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(403, "Forbidden", message, Some(details))
    }

    /// 403 with a free message.
    pub fn forbidden_msg(message: String) -> Self {
        Self::new(403, "Forbidden", message, None)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    /// 400.
    pub fn bad_request(message: String) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            None,
        )
    }

    /// 410 for a compacted watch or list.
    pub fn gone(message: String) -> Self {
        Self::new(410, "Expired", message, None)
    }

    /// 415.
    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"),
            None,
        )
    }

    /// 415 for a request body whose Content-Type has no decoder
    /// (k8s.io/apiserver `negotiation.NewUnsupportedMediaTypeError`).
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 406 (k8s.io/apiserver `negotiation.NewNotAcceptableError`, and apimachinery's
    /// `errNotMarshalable` for objects that have no protobuf form).
    pub fn not_acceptable(message: String) -> Self {
        Self::new(406, "NotAcceptable", message, None)
    }

    /// 500.
    pub fn internal(message: String) -> Self {
        Self::new(500, "InternalError", message, None)
    }

    /// 500 without a reason (`StatusReasonUnknown`): kubectl prints `Error from server: …`.
    pub fn unknown_internal(message: String) -> Self {
        Self::new(500, "", message, None)
    }

    /// 503.
    pub fn unavailable(message: String) -> Self {
        Self::new(503, "ServiceUnavailable", message, None)
    }
}

/// One field error (`field.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueForbidden`,
    /// `FieldValueNotFound`, …
    pub reason: &'static str,
    /// The field path.
    pub field: String,
    /// The bad value as printed (already redacted for secrets), if any.
    pub value: Option<String>,
    /// The detail.
    pub detail: String,
}

impl Cause {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `Invalid value: <v>: detail`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// `Unsupported value: <v>: supported values: …`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<String>,
        supported: &[&str],
    ) -> Self {
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            value: Some(value.into()),
            detail: format!(
                "supported values: {}",
                supported
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `Duplicate value: <v>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// `Not found: <v>` (`field.NotFound`).
    pub fn not_found(field: impl Into<String>, value: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueNotFound",
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `Invalid value: <v>: detail` with reason `FieldValueTypeInvalid` (`field.TypeInvalid`).
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Cause {
            reason: "FieldValueTypeInvalid",
            ..Cause::invalid(field, value, detail)
        }
    }

    /// `Too long: may not be more than <n> bytes` (`field.TooLong`).
    pub fn too_long(field: impl Into<String>, max: u64) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }

    /// `Too many: <n>: must have at most <max> items` (`field.TooMany`).
    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> Self {
        Cause {
            reason: "FieldValueTooMany",
            field: field.into(),
            value: Some(actual.to_string()),
            detail: format!("must have at most {max} items"),
        }
    }

    fn message_part(&self) -> String {
        let kind = match self.reason {
            "FieldValueRequired" => "Required value",
            "FieldValueInvalid" | "FieldValueTypeInvalid" => "Invalid value",
            "FieldValueNotSupported" => "Unsupported value",
            "FieldValueTooLong" => "Too long",
            "FieldValueTooMany" => "Too many",
            "FieldValueDuplicate" => "Duplicate value",
            "FieldValueNotFound" => "Not found",
            _ => "Forbidden",
        };
        let mut s = kind.to_string();
        if let Some(v) = &self.value {
            s.push_str(&format!(": {v}"));
        }
        if !self.detail.is_empty() {
            s.push_str(&format!(": {}", self.detail));
        }
        s
    }

    /// `field: Required value: detail`.
    pub fn text(&self) -> String {
        format!("{}: {}", self.field, self.message_part())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `errors.NewInvalid` with the storage's `GroupKind{group, resource}`: the message names
    /// `resource.group`, the details the resource as the kind.
    #[test]
    fn invalid_as_names_the_given_kind() {
        let e = ApiError::invalid_as(
            "kubepull.io",
            "clusterpullsecrets",
            "corp",
            vec![Cause::invalid(
                "metadata.resourceVersion",
                "0x0",
                "must be specified for an update",
            )],
        );
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(e.message, "clusterpullsecrets.kubepull.io \"corp\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update");
        let st = e.status();
        assert_eq!(st["details"]["kind"], "clusterpullsecrets");
        assert_eq!(st["details"]["group"], "kubepull.io");
        assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }

    /// `ToAggregate` names a repeated error once in the message; the causes keep it twice.
    #[test]
    fn invalid_names_repeated_errors_once() {
        let dup = || Cause::invalid("spec.tolerations[0].key", "\"k\"", "bad");
        let e = ApiError::invalid_as("", "Pod", "p", vec![dup(), dup()]);
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: spec.tolerations[0].key: Invalid value: \"k\": bad"
        );
        assert_eq!(
            e.status()["details"]["causes"].as_array().map(Vec::len),
            Some(2)
        );
        let other = Cause::required("spec.containers", "");
        let e = ApiError::invalid_as("", "Pod", "p", vec![dup(), other, dup()]);
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: [spec.tolerations[0].key: Invalid value: \"k\": bad, spec.containers: Required value]"
        );
        assert_eq!(
            e.status()["details"]["causes"].as_array().map(Vec::len),
            Some(3)
        );
        let e = ApiError::invalid_as("", "Pod", "p", vec![]);
        assert_eq!(e.message, "Pod \"p\" is invalid");
    }
}
