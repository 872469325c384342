//! Prometheus text exposition (format 0.0.4) for kubepull's processes: counters, gauges and
//! histograms by label set. Memory grows with the number of distinct label sets (bounded by
//! the callers: reasons, results, verbs, resources), never with traffic. Pure: the processes
//! serve [`Registry::render`] themselves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Latency buckets in seconds for requests answered in memory (webhooks, API requests).
pub const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Buckets in seconds for long work (image pulls).
pub const SLOW_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to a value.
    Gauge,
    /// Observations in buckets (the bucket bounds are given).
    Histogram(&'static [f64]),
}

/// One declared metric.
#[derive(Debug, Clone, Copy)]
pub struct Desc {
    /// Its name (`kubepull_…`).
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// Its kind.
    pub kind: Kind,
}

#[derive(Debug, Clone, Default)]
struct Hist {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Values {
    scalars: BTreeMap<(&'static str, String), f64>,
    hists: BTreeMap<(&'static str, String), Hist>,
}

/// A set of declared metrics and their values.
pub struct Registry {
    descs: &'static [Desc],
    values: Mutex<Values>,
}

/// Formats a label set (`k="v",…`), escaping values as the exposition format requires.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

fn fmt_f64(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

impl Registry {
    /// A registry of `descs` (the metrics it renders, in this order).
    pub const fn new(descs: &'static [Desc]) -> Self {
        Registry {
            descs,
            values: Mutex::new(Values {
                scalars: BTreeMap::new(),
                hists: BTreeMap::new(),
            }),
        }
    }

    fn desc(&self, name: &str) -> Option<&'static Desc> {
        self.descs.iter().find(|d| d.name == name)
    }

    /// Adds `n` to the counter `name{labels}` (`labels` as [`labels`] formats them).
    pub fn add(&self, name: &'static str, labels: &str, n: f64) {
        if let Ok(mut v) = self.values.lock() {
            *v.scalars.entry((name, labels.to_string())).or_insert(0.0) += n;
        }
    }

    /// Adds one.
    pub fn inc(&self, name: &'static str, labels: &str) {
        self.add(name, labels, 1.0);
    }

    /// Sets the gauge `name{labels}`.
    pub fn set(&self, name: &'static str, labels: &str, value: f64) {
        if let Ok(mut v) = self.values.lock() {
            v.scalars.insert((name, labels.to_string()), value);
        }
    }

    /// Records one observation of the histogram `name{labels}`.
    pub fn observe(&self, name: &'static str, labels: &str, value: f64) {
        let Some(Kind::Histogram(bounds)) = self.desc(name).map(|d| d.kind) else {
            return;
        };
        if let Ok(mut v) = self.values.lock() {
            let h = v.hists.entry((name, labels.to_string())).or_default();
            if h.buckets.len() != bounds.len() {
                h.buckets = vec![0; bounds.len()];
            }
            for (i, b) in bounds.iter().enumerate() {
                if value <= *b {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += value;
        }
    }

    /// The value of a counter or gauge (0 when never set).
    pub fn get(&self, name: &'static str, labels: &str) -> f64 {
        self.values
            .lock()
            .ok()
            .and_then(|v| v.scalars.get(&(name, labels.to_string())).copied())
            .unwrap_or(0.0)
    }

    /// The number of observations of a histogram.
    pub fn count(&self, name: &'static str, labels: &str) -> u64 {
        self.values
            .lock()
            .ok()
            .and_then(|v| v.hists.get(&(name, labels.to_string())).map(|h| h.count))
            .unwrap_or(0)
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let (scalars, hists) = match self.values.lock() {
            Ok(v) => (v.scalars.clone(), v.hists.clone()),
            Err(_) => return String::new(),
        };
        let mut out = String::new();
        for d in self.descs {
            let ty = match d.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {ty}", d.name, d.help, d.name);
            let series = |l: &str, suffix: &str, extra: &str| {
                let inner = match (l.is_empty(), extra.is_empty()) {
                    (true, true) => String::new(),
                    (true, false) => format!("{{{extra}}}"),
                    (false, true) => format!("{{{l}}}"),
                    (false, false) => format!("{{{l},{extra}}}"),
                };
                format!("{}{suffix}{inner}", d.name)
            };
            match d.kind {
                Kind::Counter | Kind::Gauge => {
                    for ((n, l), v) in scalars.iter().filter(|((n, _), _)| *n == d.name) {
                        let _ = n;
                        let _ = writeln!(out, "{} {}", series(l, "", ""), fmt_f64(*v));
                    }
                }
                Kind::Histogram(bounds) => {
                    for ((_, l), h) in hists.iter().filter(|((n, _), _)| *n == d.name) {
                        for (i, b) in bounds.iter().enumerate() {
                            let le = format!("le=\"{}\"", fmt_f64(*b));
                            let c = h.buckets.get(i).copied().unwrap_or(0);
                            let _ = writeln!(out, "{} {c}", series(l, "_bucket", &le));
                        }
                        let _ =
                            writeln!(out, "{} {}", series(l, "_bucket", "le=\"+Inf\""), h.count);
                        let _ = writeln!(out, "{} {}", series(l, "_sum", ""), fmt_f64(h.sum));
                        let _ = writeln!(out, "{} {}", series(l, "_count", ""), h.count);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DESCS: &[Desc] = &[
        Desc {
            name: "t_total",
            help: "Things.",
            kind: Kind::Counter,
        },
        Desc {
            name: "t_up",
            help: "Up.",
            kind: Kind::Gauge,
        },
        Desc {
            name: "t_seconds",
            help: "Time.",
            kind: Kind::Histogram(&[0.1, 1.0]),
        },
    ];

    #[test]
    fn renders_every_kind_with_escaped_labels() {
        let r = Registry::new(DESCS);
        r.inc("t_total", &labels(&[("reason", "a \"quoted\"\nline\\")]));
        r.add("t_total", "", 2.0);
        r.set("t_up", "", 1.0);
        r.observe("t_seconds", &labels(&[("result", "ok")]), 0.05);
        r.observe("t_seconds", &labels(&[("result", "ok")]), 3.0);
        let t = r.render();
        assert!(t.contains("# TYPE t_total counter"), "{t}");
        assert!(
            t.contains(r#"t_total{reason="a \"quoted\"\nline\\"} 1"#),
            "{t}"
        );
        assert!(t.contains("t_total 2\n"), "{t}");
        assert!(t.contains("t_up 1\n"), "{t}");
        assert!(
            t.contains(r#"t_seconds_bucket{result="ok",le="0.1"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"t_seconds_bucket{result="ok",le="1"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"t_seconds_bucket{result="ok",le="+Inf"} 2"#),
            "{t}"
        );
        assert!(t.contains(r#"t_seconds_sum{result="ok"} 3.05"#), "{t}");
        assert!(t.contains(r#"t_seconds_count{result="ok"} 2"#), "{t}");
        assert_eq!(r.count("t_seconds", &labels(&[("result", "ok")])), 2);
        // an undeclared histogram records nothing
        r.observe("t_total", "", 1.0);
        assert_eq!(r.count("t_total", ""), 0);
    }
}
