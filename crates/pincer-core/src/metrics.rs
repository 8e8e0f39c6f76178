//! A small Prometheus registry: counters, gauges and fixed-bucket histograms, rendered as text.
//! Hand-written because the few series Pincer exports do not justify an exporter stack (see
//! ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<String, Family>>,
}

#[derive(Debug)]
struct Family {
    kind: &'static str,
    help: &'static str,
    values: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
enum Value {
    Number(f64),
    Histogram { counts: [u64; BUCKETS.len()], sum: f64, count: u64 },
}

fn label_key(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    format!("{{{}}}", parts.join(","))
}

impl Metrics {
    fn with(
        &self,
        name: &str,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        f: impl FnOnce(&mut Value),
    ) {
        let mut series = self.series.lock().expect("metrics lock");
        let family = series.entry(name.to_string()).or_insert_with(|| Family { kind, help, values: BTreeMap::new() });
        let init = if kind == "histogram" {
            Value::Histogram { counts: [0; BUCKETS.len()], sum: 0.0, count: 0 }
        } else {
            Value::Number(0.0)
        };
        f(family.values.entry(label_key(labels)).or_insert(init));
    }

    pub fn inc(&self, name: &str, help: &'static str, labels: &[(&str, &str)]) {
        self.add(name, help, labels, 1.0);
    }

    pub fn add(&self, name: &str, help: &'static str, labels: &[(&str, &str)], by: f64) {
        self.with(name, "counter", help, labels, |v| {
            if let Value::Number(n) = v {
                *n += by;
            }
        });
    }

    pub fn set(&self, name: &str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        self.with(name, "gauge", help, labels, |v| *v = Value::Number(value));
    }

    /// Records one observation in seconds.
    pub fn observe(&self, name: &str, help: &'static str, labels: &[(&str, &str)], seconds: f64) {
        self.with(name, "histogram", help, labels, |v| {
            if let Value::Histogram { counts, sum, count } = v {
                for (i, bound) in BUCKETS.iter().enumerate() {
                    if seconds <= *bound {
                        counts[i] += 1;
                    }
                }
                *sum += seconds;
                *count += 1;
            }
        });
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let series = self.series.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, family) in series.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, value) in &family.values {
                match value {
                    Value::Number(n) => {
                        let _ = writeln!(out, "{name}{labels} {n}");
                    }
                    Value::Histogram { counts, sum, count } => {
                        let inner = labels.trim_start_matches('{').trim_end_matches('}');
                        let sep = if inner.is_empty() { "" } else { "," };
                        for (i, bound) in BUCKETS.iter().enumerate() {
                            let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"{bound}\"}} {}", counts[i]);
                        }
                        let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"+Inf\"}} {count}");
                        let _ = writeln!(out, "{name}_sum{labels} {sum}");
                        let _ = writeln!(out, "{name}_count{labels} {count}");
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

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc("pincer_requests_total", "Requests.", &[("method", "health"), ("outcome", "ok")]);
        m.inc("pincer_requests_total", "Requests.", &[("method", "health"), ("outcome", "ok")]);
        m.set("pincer_connections", "Open connections.", &[], 3.0);
        m.observe("pincer_latency_seconds", "Latency.", &[("op", "x")], 0.003);
        let text = m.render();
        assert!(text.contains("pincer_requests_total{method=\"health\",outcome=\"ok\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE pincer_connections gauge\npincer_connections 3\n"), "{text}");
        assert!(text.contains("pincer_latency_seconds_bucket{op=\"x\",le=\"0.0025\"} 0\n"), "{text}");
        assert!(text.contains("pincer_latency_seconds_bucket{op=\"x\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("pincer_latency_seconds_count{op=\"x\"} 1\n"), "{text}");
    }
}
