//! Warnings for the current request (`Warning: 299 - "…"` response headers), as kube-apiserver's
//! `warning.AddWarning` records them in the request context (k8s.io/apiserver
//! `pkg/warning/context.go`). Code outside a request (the controllers) records nothing.

use std::cell::{Cell, RefCell};

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
    static WARN_UNKNOWN_FIELDS: Cell<bool>;
}

/// Whether the request's `fieldValidation` is `Warn`, upstream's default when it is absent
/// (k8s.io/apiserver `pkg/endpoints/handlers/rest.go`, `fieldValidation`): unknown fields are
/// then reported as warnings (`addStrictDecodingWarnings`). Outside a request: false.
pub fn set_warn_unknown_fields(on: bool) {
    let _ = WARN_UNKNOWN_FIELDS.try_with(|w| w.set(on));
}

/// See [`set_warn_unknown_fields`].
pub fn warn_unknown_fields() -> bool {
    WARN_UNKNOWN_FIELDS.try_with(Cell::get).unwrap_or(false)
}

/// Records a warning for the current request, once.
pub fn add(text: impl Into<String>) {
    let text = text.into();
    let _ = WARNINGS.try_with(|w| {
        let mut w = w.borrow_mut();
        if !w.contains(&text) {
            w.push(text);
        }
    });
}

/// Runs `f` collecting the warnings it records.
pub async fn collect<F: std::future::Future>(f: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(
            RefCell::new(Vec::new()),
            WARN_UNKNOWN_FIELDS.scope(Cell::new(false), async move {
                let out = f.await;
                let w = WARNINGS.with(|w| w.take());
                (out, w)
            }),
        )
        .await
}

/// The header value: `299 - "<text>"` with `"` and `\` escaped (k8s.io/apimachinery
/// `pkg/util/net/http.go` `NewWarningHeader`).
pub fn header_value(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 8);
    s.push_str("299 - \"");
    for ch in text.chars() {
        match ch {
            '"' | '\\' => {
                s.push('\\');
                s.push(ch);
            }
            c if c.is_control() => s.push(' '),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}
