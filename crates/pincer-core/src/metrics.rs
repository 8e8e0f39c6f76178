//! A small Prometheus registry: counters, gauges and fixed-bucket histograms, rendered as text.
//! Hand-written because the few series Pincer exports do not justify an exporter stack (see
//! ARCHITECTURE.md).
//!
//! Every series family is declared once, below ([`CATALOG`]): its name, help and kind, as a typed
//! constant ([`Counter`], [`Gauge`], [`Histogram`]) that call sites pass to [`Metrics`] — so a name
//! is never spelled twice and a counter cannot be set like a gauge.

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
    // Built in one buffer: this runs on every metric update (several per delivered message).
    let mut key = String::with_capacity(2 + labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
    key.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => key.push_str("\\\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
    key
}

/// A counter family: only ever goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
}

/// A gauge family: set to the value it has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
}

/// A histogram family of durations in seconds (fixed buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    pub name: &'static str,
    pub help: &'static str,
}

impl Counter {
    const KIND: &'static str = "counter";
}

impl Gauge {
    const KIND: &'static str = "gauge";
}

impl Histogram {
    const KIND: &'static str = "histogram";
}

macro_rules! catalog {
    ($($kind:ident $id:ident = $name:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $id: $kind = $kind { name: $name, help: $help };
        )*
        /// Every series family Pincer exports: `(name, kind, help)`.
        pub const CATALOG: &[(&str, &str, &str)] = &[$(($name, $kind::KIND, $help)),*];
    };
}

catalog! {
    Counter ACCEPT_ERRORS_TOTAL = "pincer_accept_errors_total", "Sockets the kernel would not accept (out of descriptors).";
    Counter AGENT_HEARTBEATS_TOTAL = "pincer_agent_heartbeats_total", "Heartbeat ticks by outcome: idle (no events), ran, no_model, error or paused (set-heartbeats false).";
    Histogram AGENT_MODEL_SECONDS = "pincer_agent_model_seconds", "Time from the first model request of a turn to its answer or failure, retries included.";
    Counter AGENT_SESSIONS_PRUNED_TOTAL = "pincer_agent_sessions_pruned_total", "Finished isolated sessions removed by cron.sessionRetention.";
    Counter AGENT_TOOL_CALLS_TOTAL = "pincer_agent_tool_calls_total", "Tool calls made by agent turns, by tool (not_offered for a name the turn did not offer) and outcome (ok or the error class).";
    Counter AGENT_TOKENS_TOTAL = "pincer_agent_tokens_total", "Tokens used by agent turns, by direction and model.";
    Counter AGENT_TURNS_TOTAL = "pincer_agent_turns_total", "Agent turns by kind (cron, event, chat), outcome (ok or the error class) and model.";
    Counter AUTH_FAILURES_TOTAL = "pincer_auth_failures_total", "Failed connect authentications.";
    Gauge CHANNEL_HEALTHY = "pincer_channel_healthy", "1 when the channel is being sent to.";
    Gauge CHANNEL_INBOUND_STATE = "pincer_channel_inbound_state", "1 for each inbound chat channel's connection state now (connected, polling, backoff, …), 0 for the others.";
    Gauge CONNECTIONS_MAX = "pincer_connections_max", "Most sockets the gateway keeps open (gateway.connections.max, capped by the open-file limit).";
    Gauge CONNECTIONS_OPEN = "pincer_connections_open", "Sockets open on the gateway port (HTTP and WebSocket).";
    Counter CONNECTIONS_REFUSED_TOTAL = "pincer_connections_refused_total", "Sockets refused with HTTP 503, by reason.";
    Gauge CONNECTIONS_UNAUTHENTICATED = "pincer_connections_unauthenticated", "Open sockets not yet authenticated (HTTP requests and WebSockets before hello-ok).";
    Counter CRON_RUNS_TOTAL = "pincer_cron_runs_total", "Finished runs by execution status.";
    Histogram CRON_SLOT_LAG_SECONDS = "pincer_cron_slot_lag_seconds", "Time from a slot to its run's start.";
    Counter CRON_STORE_ERRORS_TOTAL = "pincer_cron_store_errors_total", "Scheduler writes the store refused (each is written again until it commits).";
    Histogram CRON_WAKE_SECONDS = "pincer_cron_wake_seconds", "Time the scheduler spends per wake-up (messages, due runs).";
    Counter CRON_WAKES_TOTAL = "pincer_cron_wakes_total", "Scheduler wake-ups.";
    Counter HTTP_HEADER_TIMEOUTS_TOTAL = "pincer_http_header_timeouts_total", "Connections closed for not sending a request head in time (gateway.connections.headerTimeoutMs).";
    Counter OUTBOX_ATTEMPTS_TOTAL = "pincer_outbox_attempts_total", "Send attempts by channel and outcome.";
    Gauge OUTBOX_DEAD = "pincer_outbox_dead", "Deliveries given up on (dead letters).";
    Histogram OUTBOX_DELIVERY_SECONDS = "pincer_outbox_delivery_seconds", "From enqueue to delivered.";
    Counter OUTBOX_ENQUEUED_TOTAL = "pincer_outbox_enqueued_total", "Deliveries accepted into the outbox.";
    Counter OUTBOX_LEASES_RECLAIMED_TOTAL = "pincer_outbox_leases_reclaimed_total", "Deliveries taken back after their worker stopped and the lease expired.";
    Gauge OUTBOX_OLDEST_PENDING_SECONDS = "pincer_outbox_oldest_pending_seconds", "Age of the oldest undelivered delivery.";
    Gauge OUTBOX_PENDING = "pincer_outbox_pending", "Deliveries waiting or being sent.";
    Histogram OUTBOX_SEND_SECONDS = "pincer_outbox_send_seconds", "One request to a channel API.";
    Counter OUTBOX_SETTLED_TOTAL = "pincer_outbox_settled_total", "Deliveries that reached a final state.";
    Counter OUTBOX_STORE_ERRORS_TOTAL = "pincer_outbox_store_errors_total", "Outbox store writes that failed (each is tried again).";
    Gauge OUTBOX_UNKNOWN = "pincer_outbox_unknown", "Deliveries whose outcome is unknown.";
    Gauge STORE_SQLITE_MEMORY_BYTES = "pincer_store_sqlite_memory_bytes", "Memory SQLite holds now (page caches of every connection, bounded by their cache_size).";
    Gauge STORE_WRITABLE = "pincer_store_writable", "1 while the store's writes succeed, 0 while they fail (a full disk; see `pincer health`).";
    Counter TASK_RESTARTS_TOTAL = "pincer_task_restarts_total", "Supervised background tasks started again after a panic or an error.";
    Gauge TASK_UP = "pincer_task_up", "1 while a supervised background task runs.";
    Gauge UP = "pincer_up", "1 while the gateway runs.";
    Gauge UPTIME_SECONDS = "pincer_uptime_seconds", "Seconds since the gateway started.";
    Gauge WS_CONNECTIONS = "pincer_ws_connections", "Authenticated WebSocket connections now open.";
    Counter WS_CONNECTIONS_TOTAL = "pincer_ws_connections_total", "Connections that completed the handshake.";
    Counter WS_ORIGIN_REFUSED_TOTAL = "pincer_ws_origin_refused_total", "WebSocket upgrades refused for a browser origin that is neither the gateway's own nor allowed.";
    Histogram WS_REQUEST_SECONDS = "pincer_ws_request_seconds", "Time to answer a request.";
    Counter WS_REQUESTS_TOTAL = "pincer_ws_requests_total", "Requests by method and outcome.";
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
        if !series.contains_key(name) {
            series.insert(name.to_string(), Family { kind, help, values: BTreeMap::new() });
        }
        let Some(family) = series.get_mut(name) else { return };
        let init = if kind == Histogram::KIND {
            Value::Histogram { counts: [0; BUCKETS.len()], sum: 0.0, count: 0 }
        } else {
            Value::Number(0.0)
        };
        f(family.values.entry(label_key(labels)).or_insert(init));
    }

    pub fn inc(&self, c: &Counter, labels: &[(&str, &str)]) {
        self.add(c, labels, 1.0);
    }

    pub fn add(&self, c: &Counter, labels: &[(&str, &str)], by: f64) {
        self.with(c.name, Counter::KIND, c.help, labels, |v| {
            if let Value::Number(n) = v {
                *n += by;
            }
        });
    }

    pub fn set(&self, g: &Gauge, labels: &[(&str, &str)], value: f64) {
        self.with(g.name, Gauge::KIND, g.help, labels, |v| *v = Value::Number(value));
    }

    /// Records one observation in seconds.
    pub fn observe(&self, h: &Histogram, labels: &[(&str, &str)], seconds: f64) {
        self.with(h.name, Histogram::KIND, h.help, labels, |v| {
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

    const REQUESTS: Counter = Counter { name: "pincer_requests_total", help: "Requests." };
    const CONNECTIONS: Gauge = Gauge { name: "pincer_connections", help: "Open connections." };
    const LATENCY: Histogram = Histogram { name: "pincer_latency_seconds", help: "Latency." };

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc(&REQUESTS, &[("method", "health"), ("outcome", "ok")]);
        m.inc(&REQUESTS, &[("method", "health"), ("outcome", "ok")]);
        m.set(&CONNECTIONS, &[], 3.0);
        m.observe(&LATENCY, &[("op", "x")], 0.003);
        let text = m.render();
        assert!(text.contains("pincer_requests_total{method=\"health\",outcome=\"ok\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE pincer_connections gauge\npincer_connections 3\n"), "{text}");
        assert!(text.contains("pincer_latency_seconds_bucket{op=\"x\",le=\"0.0025\"} 0\n"), "{text}");
        assert!(text.contains("pincer_latency_seconds_bucket{op=\"x\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("pincer_latency_seconds_count{op=\"x\"} 1\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_as_prometheus_reads_them() {
        let m = Metrics::default();
        m.inc(&REQUESTS, &[("method", "a\\b\"c\nd"), ("outcome", "ok")]);
        let text = m.render();
        assert!(text.contains("pincer_requests_total{method=\"a\\\\b\\\"c\\nd\",outcome=\"ok\"} 1\n"), "{text}");
    }

    /// One declaration per family, in Prometheus' conventions: counters end in `_total`, histograms
    /// (of seconds) in `_seconds`.
    #[test]
    fn the_catalog_declares_each_family_once_by_the_conventions() {
        let mut names: Vec<&str> = CATALOG.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a family is declared twice");
        for (name, kind, help) in CATALOG {
            assert!(name.starts_with("pincer_") && !help.is_empty(), "{name}");
            match *kind {
                "counter" => assert!(name.ends_with("_total"), "{name}"),
                "histogram" => assert!(name.ends_with("_seconds"), "{name}"),
                _ => assert!(!name.ends_with("_total"), "{name}"),
            }
        }
    }

    /// Tidy: no metric name is spelled outside the catalog (outside tests).
    #[test]
    fn metric_names_are_spelled_only_in_the_catalog() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut found = Vec::new();
        let mut dirs = vec![root.join("crates")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().to_string();
                if path.is_dir() {
                    if !matches!(name.as_str(), "tests" | "testdata" | "pincer-testkit" | "target") {
                        dirs.push(path);
                    }
                    continue;
                }
                if !name.ends_with(".rs") || name == "tests.rs" || path.ends_with("pincer-core/src/metrics.rs") {
                    continue;
                }
                let Ok(src) = std::fs::read_to_string(&path) else { continue };
                let src = src.split("\n#[cfg(test)]").next().unwrap_or_default();
                for (i, line) in src.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    if CATALOG.iter().any(|(n, _, _)| code.contains(&format!("\"{n}\""))) {
                        found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(found.is_empty(), "metric names spelled outside pincer_core::metrics:\n{}", found.join("\n"));
    }
}
