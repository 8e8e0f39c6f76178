//! Configuration reload: the running configuration, the watch on the config file, and the one
//! reload path that `SIGHUP`, `config.reload` and the watch all take.
//!
//! A reload reads the file with the same checks as start-up (schema, `${ENV}`, what must not
//! start, the time zone, every channel and model provider built). Refused, nothing changes: the
//! reason is logged and shown by `health` and `doctor` until a later edit is accepted. Accepted,
//! the live sections ([`pincer_core::config_live::LIVE_KEYS`]: channels, delivery limits,
//! models, tools, MCP servers) are swapped in — the outbox's lineup, the scheduler's channel
//! catalog, the agents' model router and toolbox, the MCP lineup (removed servers stopped, new
//! ones started, changed ones restarted) — and every other changed key is reported as waiting
//! for a restart. A turn takes its tool set when it starts, so turns in flight finish with the
//! tools they began with.
//!
//! The watch polls the file's size and modification time every [`WATCH_EVERY_MS`] on the
//! injected clock and rereads it only when they move, rather than using inotify (`notify`): no
//! new dependency or thread, it sees editors that replace the file by renaming and files on
//! bind mounts and network file systems, and tests drive it with the clock.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use pincer_core::config_live;
use pincer_core::{Config, TaskResult};
use pincer_delivery::channel::registry;
use pincer_protocol::schema::system::ConfigReloadStatus;
use tokio::sync::watch;

use crate::state::AppState;

/// A file's length and modification time.
type Stamp = (u64, SystemTime);

/// How often the watch looks at the config file.
pub const WATCH_EVERY_MS: i64 = 1_000;

/// The configuration a gateway runs with, and how its last reload went.
pub struct LiveConfig {
    running: RwLock<Arc<Config>>,
    /// The file as it read when the gateway started (without command-line overrides such as
    /// `--port`): a key that differs from it waits for a restart.
    boot: Arc<Config>,
    status: Mutex<ConfigReloadStatus>,
    /// The file's (length, mtime) and text when last read, so an unchanged file is not reread.
    seen: Mutex<(Option<Stamp>, Option<String>)>,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    /// The file says what the gateway already runs.
    Unchanged,
    /// Applied: the live keys that changed, and every key that still waits for a restart.
    Applied { applied: Vec<String>, restart_needed: Vec<String> },
    /// Refused (the running configuration stays), with the reason.
    Refused(String),
}

impl LiveConfig {
    /// `config` as the gateway starts with it; `path` is its file, read again now as the
    /// baseline of later edits (`config` itself when there is no file).
    pub fn new(config: Config, path: &std::path::Path) -> LiveConfig {
        let config = Arc::new(config);
        let boot = Config::load(path, &pincer_core::config::process_env)
            .ok()
            .filter(|_| path.exists())
            .map_or_else(|| config.clone(), Arc::new);
        // What the watch compares with, taken now: an edit made before its first look counts.
        let seen = (stamp(path), std::fs::read_to_string(path).ok());
        LiveConfig {
            running: RwLock::new(config),
            boot,
            status: Mutex::new(ConfigReloadStatus::default()),
            seen: Mutex::new(seen),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    pub fn get(&self) -> Arc<Config> {
        self.running.read().expect("config lock").clone()
    }

    /// The last reload's outcome and the keys waiting for a restart.
    pub fn status(&self) -> ConfigReloadStatus {
        self.status.lock().expect("status lock").clone()
    }

    fn set_running(&self, config: Config) {
        *self.running.write().expect("config lock") = Arc::new(config);
    }
}

/// Rereads the config file and applies what can be applied; `trigger` (`sighup`, `watch`,
/// `config.reload`) is logged.
pub async fn reload(state: &Arc<AppState>, trigger: &str) -> Reloaded {
    let live = &state.config;
    let _one = live.busy.lock().await;
    let path = state.paths.config_path.clone();
    let text = std::fs::read_to_string(&path).ok();
    live.seen.lock().expect("seen lock").1 = text.clone();
    let now = state.clock.now_ms();
    let outcome = match check(state, &path) {
        Err(reason) => Reloaded::Refused(reason),
        Ok(next) => apply(state, next).await,
    };
    let mut status = live.status.lock().expect("status lock");
    status.last_checked_at_ms = Some(now);
    match &outcome {
        Reloaded::Refused(reason) => {
            tracing::error!(%trigger, %reason, "config reload refused; the running configuration stays");
            status.last_error = Some(reason.clone());
            status.last_error_at_ms = Some(now);
        }
        Reloaded::Applied { applied, restart_needed } => {
            tracing::info!(%trigger, ?applied, ?restart_needed, "config reloaded");
            status.last_error = None;
            status.last_error_at_ms = None;
            status.last_applied_at_ms = Some(now);
            status.reloads += 1;
        }
        Reloaded::Unchanged => {
            tracing::debug!(%trigger, "config reload: nothing changed");
            status.last_error = None;
            status.last_error_at_ms = None;
        }
    }
    outcome
}

/// The file read and checked as start-up would, or why it would not start.
fn check(state: &AppState, path: &std::path::Path) -> Result<Config, String> {
    if !path.exists() {
        return Err(format!("{} does not exist; the gateway keeps the configuration it runs with", path.display()));
    }
    let next = Config::load(path, &pincer_core::config::process_env).map_err(|e| e.to_string())?;
    validate(&next, state.clock.clone())?;
    Ok(next)
}

/// The checks start-up makes beyond the schema, without starting anything: combinations that
/// must not start (a token-less `token` mode, the LAN without a strong token), the default time
/// zone, and every model provider and default model. `pincer config validate` and `set` run
/// these too, so the CLI refuses exactly what the gateway would.
pub fn validate(config: &Config, clock: pincer_core::SharedClock) -> Result<(), String> {
    crate::check_startable(config).map_err(|e| e.to_string())?;
    if let Some(tz) = &config.agents.defaults.timezone {
        pincer_cron::schedule::validate_tz(tz).map_err(|_| {
            format!("agents.defaults.timezone: unknown time zone {tz:?} (use an IANA name such as \"Europe/Berlin\")")
        })?;
    }
    pincer_agent::Agents::check_models(config, clock).map_err(|e| format!("config {e}"))?;
    Ok(())
}

async fn apply(state: &Arc<AppState>, next: Config) -> Reloaded {
    let live = &state.config;
    let running = live.get();
    let changed = config_live::changed_paths(&running, &next);
    let restart_needed = config_live::needs_restart(&config_live::changed_paths(&live.boot, &next));
    let applied: Vec<String> = changed.iter().filter(|p| config_live::is_live(p)).cloned().collect();
    live.status.lock().expect("status lock").restart_needed = restart_needed.clone();
    if changed.is_empty() {
        return Reloaded::Unchanged;
    }
    if applied.is_empty() {
        return Reloaded::Applied { applied, restart_needed };
    }
    let merged = config_live::apply_live(&running, &next);
    let touches = |section: &str| applied.iter().any(|p| p == section || p.starts_with(&format!("{section}.")));
    if touches("channels") || touches("delivery") {
        let adapters = match pincer_delivery::api::build_channels(&merged, &state.store, &state.events, &state.clock) {
            Ok(adapters) => adapters,
            Err(e) => return Reloaded::Refused(format!("config channels: {e}")),
        };
        state.channels.replace(&registry::catalog(&adapters));
        state.outbox.set_lineup(&merged.delivery, adapters);
    }
    if (touches("models") || touches("agents"))
        && let Err(e) = state.agents.set_models(Arc::new(merged.clone()))
    {
        return Reloaded::Refused(format!("config {e}"));
    }
    if touches("mcp") {
        let c = state.tools.mcp.reconfigure(&merged.mcp);
        tracing::info!(started = ?c.started, stopped = ?c.stopped, restarted = ?c.restarted, "mcp servers reconfigured");
    }
    if touches("tools") || touches("mcp") {
        // The gateway's own tools reach this state directly: it exists now.
        let binding = crate::tools::Binding::default();
        binding.bind(state);
        state.agents.set_toolbox(crate::toolbox(&merged.tools, &state.tools.mcp, &state.tools.approvals, &binding));
    }
    // Inbound chat after the outbox (its listeners reply through the new lineup): a channel
    // whose settings changed listens again with them; access rules apply from the next message.
    let relisten = state.chat.reconfigure(Arc::new(merged.clone())).await;
    if relisten != pincer_chat::Relisten::default() {
        tracing::info!(started = ?relisten.started, restarted = ?relisten.restarted, stopped = ?relisten.stopped, "inbound chat listeners reconfigured");
    }
    live.set_running(merged);
    Reloaded::Applied { applied, restart_needed }
}

/// The file's length and modification time, if it exists.
fn stamp(path: &std::path::Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// Watches the config file: a reload whenever its size or modification time moves and its
/// text differs from what was last read.
pub async fn watch_file(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) -> TaskResult {
    let path = state.paths.config_path.clone();
    loop {
        let next = state.clock.now_ms() + WATCH_EVERY_MS;
        tokio::select! {
            _ = state.clock.sleep_until(next) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
        let now = stamp(&path);
        let moved = {
            let mut seen = state.config.seen.lock().expect("seen lock");
            let moved = seen.0 != now;
            seen.0 = now;
            moved && std::fs::read_to_string(&path).ok() != seen.1
        };
        if moved {
            reload(&state, "watch").await;
        }
    }
}
