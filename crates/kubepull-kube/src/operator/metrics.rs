//! The operator's Prometheus metrics (the shared exposition of `kubepull_core::metrics`):
//! counters by label set, the webhook latency histogram and the leader gauge.

use kubepull_core::metrics::{Desc, Kind, Registry, FAST_BUCKETS};

const DESCS: &[Desc] = &[
    Desc {
        name: "kubepull_operator_reconciles_total",
        help: "ClusterPullSecret reconciles by result.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_copies_total",
        help: "Secret copies written or deleted, by action.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_failures_total",
        help: "Failures by reason.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_serviceaccount_patches_total",
        help: "ServiceAccounts patched.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_webhook_requests_total",
        help: "Admission requests answered, by result.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_webhook_mutations_total",
        help: "Pods given at least one pull secret.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_webhook_skipped_total",
        help: "Admission requests answered without the secret they should have had, by reason.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_operator_webhook_duration_seconds",
        help: "Time to answer an admission request.",
        kind: Kind::Histogram(FAST_BUCKETS),
    },
    Desc {
        name: "kubepull_operator_leader",
        help: "1 while this replica holds the lease.",
        kind: Kind::Gauge,
    },
];

/// The operator's metrics.
pub struct Metrics(Registry);

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new(DESCS);
        r.set("kubepull_operator_leader", "", 0.0);
        Metrics(r)
    }
}

impl Metrics {
    /// Adds one to `name{labels}`; `labels` is the inside of the braces (`result="ok"`).
    pub fn inc(&self, name: &'static str, labels: &str) {
        self.0.inc(name, labels);
    }

    /// Adds `n`.
    pub fn add(&self, name: &'static str, labels: &str, n: u64) {
        self.0.add(name, labels, n as f64);
    }

    /// The current value (tests).
    pub fn get(&self, name: &'static str, labels: &str) -> u64 {
        self.0.get(name, labels) as u64
    }

    /// Records one webhook answer's latency.
    pub fn observe_webhook(&self, seconds: f64) {
        self.0
            .observe("kubepull_operator_webhook_duration_seconds", "", seconds);
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.0
            .set("kubepull_operator_leader", "", f64::from(u8::from(leader)));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.0.render()
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
