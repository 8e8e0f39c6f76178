//! Who may open a socket on the gateway port: a global cap on open sockets, derived from the
//! open-file limit so the store, channels and commands always keep descriptors, and a per-address
//! cap on sockets that have not authenticated yet (OpenClaw's pre-auth budget). A refused socket
//! gets OpenClaw's answer for bursts: HTTP 503 and a one-line reason.

use pincer_core::metrics;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pincer_core::Metrics;
use pincer_core::config::ConnectionsConfig;
use pincer_protocol::schema::system::{ConnectionPressure, Refused};

/// Descriptors kept back from sockets: the store (a writer and eight readers, each with its WAL
/// and shared memory), the log, the state-dir lock, command pipes (`cron.maxConcurrentRuns` × 3),
/// channel and model HTTP connections (`delivery.maxParallel` and the pools), MCP servers, the
/// runtime's own, and [`REFUSAL_SLOTS`].
pub const FD_RESERVE: u64 = 256;
/// Sockets open at once when neither the config nor the open-file limit says fewer.
pub const DEFAULT_MAX: u64 = 4096;
/// The fewest sockets the cap allows, however low the open-file limit.
const MIN_MAX: u64 = 16;
/// Refused sockets that may wait at once for their 503 to be read (the rest are closed at once).
pub const REFUSAL_SLOTS: usize = 32;

/// The socket cap for `config` under an open-file limit of `nofile`, and why it is that.
pub fn socket_cap(config: &ConnectionsConfig, nofile: u64) -> (usize, String) {
    let by_files = nofile.saturating_sub(FD_RESERVE).max(MIN_MAX);
    let (wanted, source) = match config.max {
        Some(max) => (max as u64, "gateway.connections.max"),
        None => (DEFAULT_MAX, "the default"),
    };
    if wanted <= by_files {
        (wanted as usize, source.to_string())
    } else {
        let why = format!(
            "the open-file limit ({nofile}, less {FD_RESERVE} kept for the store, channels and commands; raise it with `ulimit -n` or LimitNOFILE=)"
        );
        (by_files as usize, why)
    }
}

/// The process's soft open-file limit.
pub fn open_file_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit on this process with a valid, initialised struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    lim.rlim_cur
}

/// Why a socket was refused; its text is the body of the 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway holds its maximum of open sockets.
    AtCapacity { max: usize },
    /// This address holds its maximum of unauthenticated sockets.
    PerAddress { ip: IpAddr, max: usize },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::AtCapacity { max } => format!(
                "Too many open connections: the gateway holds its limit of {max} sockets (gateway.connections.max); retry in a few seconds"
            ),
            // OpenClaw's text first, so what greps for it still finds it.
            Refusal::PerAddress { ip, max } => format!(
                "Too many unauthenticated sockets from {ip} (limit {max}, gateway.connections.maxUnauthenticatedPerAddress); finish or close the open ones, or retry in a few seconds"
            ),
        }
    }

    /// The whole HTTP response.
    pub fn response(&self) -> String {
        let body = self.message();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 5\r\n\r\n{body}",
            body.len()
        )
    }
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    unauthenticated: HashMap<IpAddr, usize>,
}

/// The gateway's socket accounting. One per gateway, shared by the accept loop and the handlers.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    max_source: String,
    per_address: usize,
    counts: Mutex<Counts>,
    refused_at_capacity: AtomicU64,
    refused_per_address: AtomicU64,
    header_timeouts: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(max: usize, max_source: String, per_address: usize, metrics: Arc<Metrics>) -> Arc<Admission> {
        Arc::new(Admission {
            metrics,
            max,
            max_source,
            per_address,
            counts: Mutex::default(),
            refused_at_capacity: AtomicU64::new(0),
            refused_per_address: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn max_source(&self) -> &str {
        &self.max_source
    }

    /// Takes a slot for a socket just accepted from `ip`, or says why not.
    pub fn admit(self: &Arc<Admission>, ip: IpAddr) -> Result<Arc<Slot>, Refusal> {
        let mut counts = self.counts.lock().expect("admission lock");
        let refusal = if counts.open >= self.max {
            Some(Refusal::AtCapacity { max: self.max })
        } else if counts.unauthenticated.get(&ip).copied().unwrap_or(0) >= self.per_address {
            Some(Refusal::PerAddress { ip, max: self.per_address })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let counter = match refusal {
                Refusal::AtCapacity { .. } => &self.refused_at_capacity,
                Refusal::PerAddress { .. } => &self.refused_per_address,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let reason = if matches!(refusal, Refusal::AtCapacity { .. }) { "capacity" } else { "per_address" };
            self.metrics.inc(&metrics::CONNECTIONS_REFUSED_TOTAL, &[("reason", reason)]);
            return Err(refusal);
        }
        counts.open += 1;
        *counts.unauthenticated.entry(ip).or_default() += 1;
        Ok(Arc::new(Slot { admission: self.clone(), ip, unauthenticated: AtomicBool::new(true) }))
    }

    pub fn header_timed_out(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
        self.metrics.inc(&metrics::HTTP_HEADER_TIMEOUTS_TOTAL, &[]);
    }

    /// `health`'s `connections` object: the pressure on the gateway port.
    pub fn pressure(&self) -> ConnectionPressure {
        let counts = self.counts.lock().expect("admission lock");
        let unauthenticated: usize = counts.unauthenticated.values().sum();
        let busiest = counts.unauthenticated.values().copied().max().unwrap_or(0);
        ConnectionPressure {
            open: counts.open as u64,
            max: self.max as u64,
            max_source: self.max_source.clone(),
            unauthenticated: unauthenticated as u64,
            busiest_address_unauthenticated: busiest as u64,
            max_unauthenticated_per_address: self.per_address as u64,
            refused: Refused {
                at_capacity: self.refused_at_capacity.load(Ordering::Relaxed),
                per_address: self.refused_per_address.load(Ordering::Relaxed),
            },
            header_timeouts: self.header_timeouts.load(Ordering::Relaxed),
        }
    }

    /// Publishes the pressure as gauges (the refusal counters are kept as they happen).
    pub fn export(&self) {
        let m = &self.metrics;
        let p = self.pressure();
        m.set(&metrics::CONNECTIONS_OPEN, &[], p.open as f64);
        m.set(&metrics::CONNECTIONS_MAX, &[], p.max as f64);
        m.set(&metrics::CONNECTIONS_UNAUTHENTICATED, &[], p.unauthenticated as f64);
    }

    fn release(&self, ip: IpAddr, unauthenticated: bool) {
        let mut counts = self.counts.lock().expect("admission lock");
        counts.open -= 1;
        if unauthenticated {
            drop_unauthenticated(&mut counts, ip);
        }
    }
}

fn drop_unauthenticated(counts: &mut Counts, ip: IpAddr) {
    if let Some(n) = counts.unauthenticated.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            counts.unauthenticated.remove(&ip);
        }
    }
}

/// One admitted socket; released when the last holder (the HTTP connection, the WebSocket task)
/// drops it.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
    unauthenticated: AtomicBool,
}

impl Slot {
    /// The socket's WebSocket completed the handshake: it no longer counts against its address.
    pub fn authenticated(&self) {
        if self.unauthenticated.swap(false, Ordering::AcqRel) {
            drop_unauthenticated(&mut self.admission.counts.lock().expect("admission lock"), self.ip);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.ip, self.unauthenticated.load(Ordering::Acquire));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_open_sockets_and_unauthenticated_ones_per_address() {
        let a = Admission::new(3, "test".into(), 2, Arc::default());
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let x1 = a.admit(x).unwrap();
        let x2 = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refusal::PerAddress { ip: x, max: 2 });
        // Authenticated sockets no longer count against their address, only against the total.
        x1.authenticated();
        let x3 = a.admit(x).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Refusal::AtCapacity { max: 3 });
        drop(x2);
        let _y1 = a.admit(y).unwrap();
        drop((x1, x3));
        let p = a.pressure();
        assert_eq!((p.open, p.unauthenticated), (1, 1));
        assert_eq!(p.refused, Refused { at_capacity: 1, per_address: 1 });
    }

    #[test]
    fn the_cap_leaves_descriptors_for_everything_else() {
        let default = ConnectionsConfig::default();
        assert_eq!(socket_cap(&default, 1 << 20).0, DEFAULT_MAX as usize);
        let (cap, why) = socket_cap(&default, 1024);
        assert_eq!(cap, 1024 - FD_RESERVE as usize);
        assert!(why.contains("open-file limit (1024"), "{why}");
        let configured = ConnectionsConfig { max: Some(100), ..default.clone() };
        assert_eq!(socket_cap(&configured, 1024), (100, "gateway.connections.max".into()));
        assert_eq!(socket_cap(&default, 100).0, MIN_MAX as usize);
    }

    #[test]
    fn the_refusal_is_an_http_503_with_a_reason() {
        let r = Refusal::PerAddress { ip: "127.0.0.1".parse().unwrap(), max: 64 };
        let response = r.response();
        assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.starts_with("Too many unauthenticated sockets"), "{body}");
        assert!(response.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
