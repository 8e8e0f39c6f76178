//! `doctor.run`: checks the configuration, the store, each channel's credentials (one cheap
//! authenticated call), each model provider's reachability, the outbox and the jobs — and says
//! how to fix what it finds.

use pincer_protocol::state::DeliveryStatus;
use std::sync::Arc;
use std::time::Duration;

use pincer_core::config::{AuthMode, Bind};
use pincer_core::supervisor::TaskState;
use pincer_delivery::channel::registry;
use pincer_protocol::schema::system::{self as wire, DoctorReport, Finding, FindingStatus as S};

use crate::router::{Ctx, Methods};
use crate::state::AppState;

pub fn register(methods: &mut Methods) {
    methods.add::<wire::DoctorRun, _, _>(|c: Ctx, _| async move { Ok(run(&c.state).await) });
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, check: &str, status: S, message: impl Into<String>, fix: Option<String>) {
        self.0.push(Finding { check: check.into(), status, message: message.into(), fix });
    }
}

async fn run(state: &Arc<AppState>) -> DoctorReport {
    let mut f = Findings::default();
    config(state, &mut f);
    store(state, &mut f).await;
    store_writes(state, &mut f).await;
    tasks(state, &mut f);
    channels(state, &mut f).await;
    providers(state, &mut f).await;
    outbox(state, &mut f).await;
    jobs(state, &mut f).await;
    tools(state, &mut f);
    mcp(state, &mut f);
    let failing = f.0.iter().filter(|x| x.status == S::Fail).count() as u64;
    let warnings = f.0.iter().filter(|x| x.status == S::Warn).count() as u64;
    DoctorReport { ok: failing == 0, failing, warnings, findings: f.0, extra: Default::default() }
}

fn config(state: &AppState, f: &mut Findings) {
    let c = state.config();
    let path = state.paths.config_path.display().to_string();
    let reload = state.config.status();
    match &reload.last_error {
        Some(reason) => f.push(
            "config",
            S::Fail,
            format!("the last edit of {path} was refused, the gateway runs the configuration before it: {reason}"),
            Some(format!("fix {path}; it is applied when saved (or run `pincer config reload`)")),
        ),
        None => f.push("config", S::Ok, format!("loaded {path}"), None),
    }
    if !reload.restart_needed.is_empty() {
        f.push(
            "config.restart",
            S::Warn,
            format!("changed keys that need a restart: {}", reload.restart_needed.join(", ")),
            Some("restart the gateway (`pincer service restart`, or stop it and run `pincer gateway`)".into()),
        );
    }
    match (c.gateway.auth.mode, c.token()) {
        (AuthMode::Token, Some(t)) if t.len() < 24 => f.push(
            "config.token",
            S::Warn,
            format!("gateway.auth.token is only {} characters", t.len()),
            Some("set gateway.auth.token to a random value of at least 32 characters, e.g. the output of `openssl rand -base64 32`".into()),
        ),
        (AuthMode::None, _) => f.push(
            "config.auth",
            S::Warn,
            "gateway.auth.mode is \"none\": any local process can control the gateway",
            Some("set gateway.auth.mode to \"token\"".into()),
        ),
        _ => {}
    }
    if c.gateway.bind == Bind::Lan {
        f.push(
            "config.bind",
            S::Warn,
            "the gateway listens on every interface (bind: lan)",
            Some("keep bind: loopback unless other machines must connect; put TLS in front if they do".into()),
        );
    }
    if !c.cron.enabled {
        f.push(
            "config.cron",
            S::Warn,
            "cron.enabled is false: no job runs on its schedule",
            Some("set cron.enabled to true".into()),
        );
    }
}

async fn store(state: &AppState, f: &mut Findings) {
    let check = state.store.read(|rd| Ok((rd.quick_check()?, rd.schema_version()?))).await;
    match check {
        Ok((result, version)) if result == "ok" => f.push(
            "store",
            S::Ok,
            format!("{} (schema v{version}) passed its integrity check", state.paths.db_path.display()),
            None,
        ),
        Ok((result, _)) => f.push(
            "store",
            S::Fail,
            format!("the database is corrupted: its integrity check found {result}"),
            Some(pincer_store::integrity::repair_advice(&state.paths.db_path)),
        ),
        Err(e) if pincer_store::integrity::is_corruption(&e) => f.push(
            "store",
            S::Fail,
            format!("the database is corrupted: {e}"),
            Some(pincer_store::integrity::repair_advice(&state.paths.db_path)),
        ),
        Err(e) => f.push(
            "store",
            S::Fail,
            format!("cannot read the store: {e}"),
            Some("check the state dir's permissions and free disk space".into()),
        ),
    }
}

/// Whether writes reach the disk: a full disk is invisible to the integrity check above.
async fn store_writes(state: &AppState, f: &mut Findings) {
    let Some(failure) = state.store_write_failure().await else { return };
    let since_s = (state.clock.now_ms() - failure.since_ms).max(0) / 1000;
    f.push(
        "store.writes",
        S::Fail,
        format!("writes have been failing for {since_s} s, and nothing of a failed write was saved: {}", failure.error),
        Some(failure.fix),
    );
}

/// The supervised background tasks: one finding per task that is not running.
fn tasks(state: &AppState, f: &mut Findings) {
    let tasks = state.supervisor.tasks();
    let mut running = 0;
    for t in &tasks {
        let check = format!("task.{}", t.name);
        let what = if t.critical { "nothing of its work happens meanwhile" } else { "its work waits meanwhile" };
        match t.state {
            TaskState::Running => running += 1,
            TaskState::Restarting => f.push(
                &check,
                if t.critical { S::Fail } else { S::Warn },
                format!("{} is restarting after an internal error ({}); {what}", t.name, t.describe()),
                Some(
                    "it comes back by itself; if it keeps restarting, report the error lines of the gateway log".into(),
                ),
            ),
            TaskState::Failed => f.push(
                &check,
                S::Fail,
                format!("{} failed and is not started again ({})", t.name, t.describe()),
                Some("restart the gateway, and report the error lines of the gateway log".into()),
            ),
            TaskState::Stopped => {
                f.push(&check, S::Warn, format!("{} has stopped (the gateway is stopping)", t.name), None)
            }
        }
    }
    if running == tasks.len() {
        f.push("tasks", S::Ok, format!("all {running} background tasks are running"), None);
    }
}

/// Each built channel's own checks, as its adapter declares them in the registry.
async fn channels(state: &AppState, f: &mut Findings) {
    let config = state.config();
    for spec in registry::REGISTRY {
        let Some(channel) = state.outbox.channel(spec.name) else { continue };
        let cx = registry::DoctorContext {
            spec,
            channel: channel.as_ref(),
            config: &config,
            config_path: &state.paths.config_path,
        };
        f.0.extend((spec.doctor)(cx).await);
    }
    // Each inbound side's connection: a refused token fails, a connection still trying warns.
    for inbound in state.chat.status() {
        use pincer_protocol::state::ConnectionState as C;
        let check = format!("channel.{}.inbound", inbound.channel);
        let error = inbound.last_error.clone().unwrap_or_default();
        match inbound.state {
            C::Connected | C::Polling => f.push(
                &check,
                S::Ok,
                format!("{} ({})", inbound.state.as_str(), inbound.mode.as_deref().unwrap_or("inbound")),
                None,
            ),
            C::CredentialsRejected => f.push(
                &check,
                S::Fail,
                format!("stopped: {error}"),
                Some(format!("fix the token under channels.{}, then run `pincer config reload` (saving the config file applies it too)", inbound.channel)),
            ),
            C::Backoff | C::Reconnecting | C::Connecting => f.push(
                &check,
                S::Warn,
                format!("{} after {} failure(s): {error}", inbound.state.as_str(), inbound.failures),
                Some("check the network and the platform's status; it retries on its own".into()),
            ),
            C::Stopped => f.push(&check, S::Warn, "stopped", None),
        }
    }
    owners(&config, &state.chat.status(), f);
    let pauses = state.outbox.pauses();
    for (name, p) in pauses {
        f.push(
            &format!("channel.{name}"),
            if p.until_ms.is_none() { S::Fail } else { S::Warn },
            p.reason.clone(),
            None,
        );
    }
}

/// Each listening channel whose `allowFrom` names nobody: no chat sender there is the owner, so
/// none gets the owner-only tools — "remind me in 20 minutes" cannot make a `cron` job.
fn owners(config: &pincer_core::config::Config, inbound: &[pincer_chat::ChannelStatus], f: &mut Findings) {
    let mut listening: Vec<&str> = inbound.iter().map(|i| i.channel.as_str()).collect();
    listening.sort_unstable();
    for channel in listening {
        if !pincer_chat::access::owners(&config.channels, channel).is_empty() {
            continue;
        }
        let (example, whose) = pincer_chat::access::owner_id_example(channel);
        f.push(
            &format!("channel.{channel}.owner"),
            S::Warn,
            format!(
                "nobody who writes on {channel} is the owner: channels.{channel}.allowFrom names no one (\"*\" names no one), \
                 so the owner-only tools (cron: reminders and scheduled jobs) are refused to every {channel} sender"
            ),
            Some(format!(
                "add {whose} to channels.{channel}.allowFrom, e.g. `channels.{channel}.allowFrom: [\"{example}\"]` \
                 (`pincer pairing list {channel}` shows the ids of senders who asked to pair), then run \
                 `pincer config reload` (saving the config file applies it too)"
            )),
        );
    }
}

async fn providers(state: &AppState, f: &mut Findings) {
    for (name, p) in &state.config().models.providers {
        let check = format!("model.{name}");
        let Some((host, port)) = host_port(&p.base_url) else {
            f.push(
                &check,
                S::Fail,
                format!("baseUrl {} is not a URL", p.base_url),
                Some(format!("fix models.providers.{name}.baseUrl")),
            );
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect((host.as_str(), port))).await
        {
            Ok(Ok(_)) => f.push(&check, S::Ok, format!("{} is reachable", p.base_url), None),
            Ok(Err(e)) => f.push(
                &check,
                S::Fail,
                format!("{} is unreachable: {e}", p.base_url),
                Some(format!("start the model server or fix models.providers.{name}.baseUrl")),
            ),
            Err(_) => f.push(&check, S::Fail, format!("{} did not answer within 5 s", p.base_url), None),
        }
    }
    if state.config().agents.defaults.model.primary.is_none() && !state.config().models.providers.is_empty() {
        f.push(
            "model.default",
            S::Warn,
            "no default model",
            Some("set agents.defaults.model.primary to provider/model".into()),
        );
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let (default_port, rest) =
        if let Some(r) = url.strip_prefix("https://") { (443, r) } else { (80, url.strip_prefix("http://")?) };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map(|(_, a)| a).unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']')?;
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default_port);
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

async fn outbox(state: &AppState, f: &mut Findings) {
    let health = state.outbox.health().await;
    for (name, c) in &health.channels {
        let (dead, unknown) = (c.dead, c.unknown);
        if dead > 0 {
            f.push(
                &format!("outbox.{name}"),
                S::Warn,
                format!("{dead} dead deliveries"),
                Some(format!("see why with `pincer deliveries list --state dead --channel {name}`, fix, then `pincer deliveries retry <id>`")),
            );
        }
        if unknown > 0 {
            f.push(
                &format!("outbox.{name}"),
                S::Warn,
                format!("{unknown} deliveries whose outcome is unknown"),
                Some(format!("check the chat, then `pincer deliveries retry <id>` for any that are missing (`pincer deliveries list --state unknown --channel {name}`)")),
            );
        }
        if let Some(age) = c.oldest_pending_age_ms.filter(|a| *a > 600_000) {
            f.push(
                &format!("outbox.{name}"),
                S::Warn,
                format!("the oldest pending delivery is {} min old", age / 60_000),
                None,
            );
        }
    }
}

async fn jobs(state: &AppState, f: &mut Findings) {
    let Ok((jobs, _)) = state.cron.all_jobs().await else { return };
    for job in &jobs {
        let st = &job.state;
        if let Some(a) = &st.auto_disabled {
            f.push(
                &format!("job.{}", job.id),
                S::Fail,
                format!(
                    "\"{}\" was disabled after {} errors in a row ({}): {}",
                    job.name,
                    a.consecutive_errors,
                    a.reason,
                    st.last_error.as_deref().unwrap_or("")
                ),
                Some(format!("fix it, then `pincer cron enable {}`", job.id)),
            );
        } else if matches!(st.last_delivery_status, Some(DeliveryStatus::NotDelivered | DeliveryStatus::Unknown))
            && st.delivery_suppression_reason.is_none()
        {
            f.push(
                &format!("job.{}", job.id),
                S::Warn,
                format!(
                    "the last result of \"{}\" was not delivered: {}",
                    job.name,
                    st.last_delivery_error.as_deref().unwrap_or("no details")
                ),
                Some(format!("`pincer cron runs --id {}` and `pincer cron show {}`", job.id, job.id)),
            );
        }
    }
    if let Ok(status) = state.cron.status().await {
        for b in &status.invalid_jobs {
            f.push(
                "job.invalid",
                S::Fail,
                // The id and error quoted as JSON strings.
                format!(
                    "job {} cannot run: {}",
                    serde_json::Value::from(b.id.as_str()),
                    serde_json::Value::from(b.error.as_str())
                ),
                Some("fix or remove it with `pincer cron edit` / `pincer cron rm`".into()),
            );
        }
    }
}

/// `tools.*` as configured: whether `exec` can run anything (and how to let it), `web_search`'s
/// provider settings, approvals waiting, the `allow-always` grants file.
fn tools(state: &AppState, f: &mut Findings) {
    let c = state.config();
    for check in pincer_tools::config_checks(&c.tools) {
        let mut message = check.message;
        if check.check == "tools.exec" && !check.problem {
            let granted = pincer_tools::ExecApprover::granted(&state.tools.approvals).len();
            message.push_str(&format!(", {granted} allowed always"));
        }
        f.push(check.check, if check.problem { S::Warn } else { S::Ok }, message, check.fix);
    }
    let pending = state.tools.approvals.pending();
    if let Some(oldest) = pending.first() {
        f.push(
            "tools.exec.approvals",
            S::Warn,
            format!("{} command(s) wait for an operator's approval, the oldest `{}`", pending.len(), oldest.command),
            Some(format!(
                "run `pincer approvals list`, then `pincer approvals approve {}` or `pincer approvals deny {}`",
                oldest.id, oldest.id
            )),
        );
    }
    if let Some(e) = &state.tools.grants_error {
        f.push(
            "tools.exec.grants",
            S::Warn,
            format!("{e}; allow-always decisions apply once until it is fixed"),
            Some(format!("fix or remove the file, then restart the gateway ({})", crate::EXEC_APPROVALS_FILE)),
        );
    }
}

/// Each configured MCP server: connected with its tools, or why not and what to check.
fn mcp(state: &AppState, f: &mut Findings) {
    use pincer_tools::McpStatus;
    let servers = &state.tools.mcp;
    for s in servers.states() {
        let check = format!("mcp.{}", s.name);
        let why = s.last_error.clone().unwrap_or_else(|| "no error recorded".into());
        let fix = format!(
            "check mcp.servers.{} ({}); `pincer mcp probe {}` connects and shows the error; an edit applies on `pincer config reload`",
            s.name,
            if s.transport == "stdio" { "command, args, env, cwd" } else { "url, transport, headers" },
            s.name
        );
        match s.status {
            McpStatus::Ready => {
                f.push(&check, S::Ok, format!("connected over {}, {} tools", s.transport, s.tools.len()), None)
            }
            McpStatus::Disabled => f.push(&check, S::Ok, "disabled (enabled: false)", None),
            McpStatus::Starting => f.push(&check, S::Warn, format!("still connecting (last error: {why})"), Some(fix)),
            McpStatus::Backoff => f.push(
                &check,
                S::Warn,
                format!(
                    "down, restarted {} time(s), next attempt in {} s: {why}",
                    s.restarts,
                    (s.next_attempt_ms.unwrap_or(0) - state.clock.now_ms()).max(0).saturating_add(999) / 1_000
                ),
                Some(fix),
            ),
            McpStatus::Failed => f.push(&check, S::Fail, format!("cannot start as configured: {why}"), Some(fix)),
        }
    }
}
