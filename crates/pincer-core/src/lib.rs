//! Shared vocabulary of Pincer's services.
//!
//! - [`clock`]: the injected [`Clock`], so schedule, retry and backoff logic runs under a fake clock
//!   in tests.
//! - [`config`]: the JSON5 configuration with `${ENV}` expansion, closed schemas and `PINCER_*`
//!   overrides, plus the first-start writer of a random gateway token.
//! - [`events`]: the in-process [`EventBus`] that services publish to and the gateway fans out.
//! - [`metrics`]: the Prometheus registry behind `/metrics`.
//! - [`origin`]: browser origins and the WebSocket upgrade's origin check.
//! - [`tls`]: the one rustls crypto provider (`ring`) for outbound HTTPS.
//! - [`duration`]: `30s` / `5m` / `24h` style durations as OpenClaw writes them.
//! - [`supervisor`]: owns the long-lived tasks, restarts them with backoff and reports their state.
//!
//! **Architecture Invariant:** this crate does no network I/O and knows no domain logic.

pub mod clock;
pub mod config;
pub mod config_live;
pub mod crashpoint;
pub mod duration;
pub mod events;
pub mod logfile;
pub mod metrics;
pub mod origin;
pub mod redact;
pub mod supervisor;
pub mod tls;
pub mod tools_config;

pub use clock::{Clock, FakeClock, SharedClock, SystemClock};
pub use config::{Config, ConfigError, StatePaths};
pub use events::{BusEvent, EventBus};
pub use metrics::Metrics;
pub use supervisor::{Supervisor, TaskError, TaskResult};

/// Random URL-safe token of 32 bytes (43 characters), as OpenClaw mints gateway and device tokens.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
