//! Output: text that reads like `kubectl describe`, or JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ContainerReport, Report};

/// `-o json`: an array of `{namespace, pod, container, image, cause, candidates, summary,
/// evidence, fix, credentials: [{secret, key, username, result}]}`.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(&report.containers).unwrap_or_else(|_| "[]".into())
}

fn one(out: &mut String, c: &ContainerReport) {
    let _ = writeln!(out, "Pod:         {}/{}", c.namespace, c.pod);
    let kind = match c.container_kind {
        "init" => " (init)",
        "ephemeral" => " (ephemeral)",
        _ => "",
    };
    let _ = writeln!(out, "Container:   {}{kind}", c.container);
    let _ = writeln!(out, "Image:       {}", c.image);
    let _ = writeln!(out, "Cause:       {}", c.cause.as_str());
    if !c.candidates.is_empty() {
        let v: Vec<&str> = c.candidates.iter().map(|c| c.as_str()).collect();
        let _ = writeln!(out, "Or else:     {}", v.join(", "));
    }
    let _ = writeln!(out, "Summary:     {}", c.summary);
    if c.credentials.is_empty() {
        let _ = writeln!(
            out,
            "Credentials: none match this registry (anonymous pull)"
        );
    } else {
        let _ = writeln!(out, "Credentials (in the kubelet's order):");
        let w0 = c
            .credentials
            .iter()
            .map(|r| r.secret.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let w1 = c
            .credentials
            .iter()
            .map(|r| r.key.len())
            .max()
            .unwrap_or(0)
            .max(3);
        let w2 = c
            .credentials
            .iter()
            .map(|r| r.username.len())
            .max()
            .unwrap_or(0)
            .max(8);
        let _ = writeln!(
            out,
            "  {:w0$}  {:w1$}  {:w2$}  RESULT",
            "SOURCE", "KEY", "USERNAME"
        );
        for r in &c.credentials {
            let _ = writeln!(
                out,
                "  {:w0$}  {:w1$}  {:w2$}  {}",
                r.secret, r.key, r.username, r.result
            );
        }
    }
    if !c.evidence.is_empty() {
        let _ = writeln!(out, "Evidence:");
        for e in &c.evidence {
            let _ = writeln!(out, "  - {e}");
        }
    }
    if !c.fix.is_empty() {
        let _ = writeln!(out, "Fix:");
        for l in c.fix.lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
}

/// Text for a few pods: one block per container.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for n in &report.notes {
        let _ = writeln!(out, "Note: {n}\n");
    }
    if report.containers.is_empty() {
        out.push_str("No pods found.\n");
        return out;
    }
    for (i, c) in report.containers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        one(&mut out, c);
    }
    out
}

/// Text for many pods (`-A`): problems grouped by cause, worst first, then a count of the
/// containers that can pull.
pub fn grouped(report: &Report) -> String {
    let mut out = String::new();
    for n in &report.notes {
        let _ = writeln!(out, "Note: {n}\n");
    }
    let mut by: BTreeMap<&str, Vec<&ContainerReport>> = BTreeMap::new();
    let mut ok = 0;
    for c in &report.containers {
        if c.ok() {
            ok += 1;
        } else {
            by.entry(c.cause.as_str()).or_default().push(c);
        }
    }
    let mut groups: Vec<_> = by.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    for (cause, list) in &groups {
        let _ = writeln!(out, "{cause} ({} containers)", list.len());
        let first = list[0];
        let _ = writeln!(out, "  e.g. {}", first.summary);
        for c in list {
            let _ = writeln!(
                out,
                "  {}/{} {}  {}",
                c.namespace, c.pod, c.container, c.image
            );
        }
        if !first.fix.is_empty() {
            let _ = writeln!(out, "  fix (for {}/{}):", first.namespace, first.pod);
            for l in first.fix.lines() {
                let _ = writeln!(out, "    {l}");
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} containers checked: {} can pull, {} cannot ({} API reads, {} registry probes)",
        report.containers.len(),
        ok,
        report.containers.len() - ok,
        report.api_reads,
        report.probes
    );
    out
}
