//! Prometheus text-format metrics: counters by label set and one latency histogram, kept in
//! memory that grows with the number of distinct label sets (a few dozen), not with traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// The operator's metrics.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    webhook_hist: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    leader: AtomicI64,
}

const HELP: &[(&str, &str)] = &[
    (
        "kubepull_operator_reconciles_total",
        "ClusterPullSecret reconciles by result.",
    ),
    (
        "kubepull_operator_copies_total",
        "Secret copies written or deleted, by action.",
    ),
    ("kubepull_operator_failures_total", "Failures by reason."),
    (
        "kubepull_operator_serviceaccount_patches_total",
        "ServiceAccounts patched.",
    ),
    (
        "kubepull_operator_webhook_requests_total",
        "Admission requests answered, by result.",
    ),
    (
        "kubepull_operator_webhook_mutations_total",
        "Pods given at least one pull secret.",
    ),
    (
        "kubepull_operator_webhook_skipped_total",
        "Admission requests answered without the secret they should have had, by reason.",
    ),
];

impl Metrics {
    /// Adds one to `name{labels}`; `labels` is the inside of the braces (`result="ok"`).
    pub fn inc(&self, name: &'static str, labels: &str) {
        self.add(name, labels, 1);
    }

    /// Adds `n`.
    pub fn add(&self, name: &'static str, labels: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels.to_string())).or_insert(0) += n;
        }
    }

    /// The current value (tests).
    pub fn get(&self, name: &'static str, labels: &str) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(&(name, labels.to_string())).copied())
            .unwrap_or(0)
    }

    /// Records one webhook answer's latency.
    pub fn observe_webhook(&self, seconds: f64) {
        if let Ok(mut h) = self.webhook_hist.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.0[i] += 1;
                }
            }
            h.1 += 1;
            h.2 += seconds;
        }
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(i64::from(leader), Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, labels), v) in counters.iter().filter(|((n, _), _)| n == name) {
                if labels.is_empty() {
                    let _ = writeln!(out, "{n} {v}");
                } else {
                    let _ = writeln!(out, "{n}{{{labels}}} {v}");
                }
            }
        }
        let name = "kubepull_operator_webhook_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer an admission request.\n# TYPE {name} histogram"
        );
        if let Ok(h) = self.webhook_hist.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", h.0[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.1);
            let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.2, h.1);
        }
        let _ = writeln!(
            out,
            "# HELP kubepull_operator_leader 1 while this replica holds the lease.\n# TYPE kubepull_operator_leader gauge\nkubepull_operator_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.inc("kubepull_operator_copies_total", "action=\"create\"");
        m.add("kubepull_operator_copies_total", "action=\"create\"", 2);
        m.observe_webhook(0.002);
        m.observe_webhook(0.2);
        m.set_leader(true);
        let t = m.render();
        assert!(
            t.contains("kubepull_operator_copies_total{action=\"create\"} 3"),
            "{t}"
        );
        assert!(
            t.contains("kubepull_operator_webhook_duration_seconds_bucket{le=\"0.0025\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("kubepull_operator_webhook_duration_seconds_count 2"),
            "{t}"
        );
        assert!(t.contains("kubepull_operator_leader 1"), "{t}");
        assert_eq!(
            m.get("kubepull_operator_copies_total", "action=\"create\""),
            3
        );
    }
}
