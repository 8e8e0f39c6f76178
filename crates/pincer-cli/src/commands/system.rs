//! `pincer health` and `pincer status`.

use std::process::ExitCode;
use std::time::Instant;

use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use pincer_protocol::schema::Ignored;
use pincer_protocol::schema::system::{
    ConnectionPressure, DoctorReport, DoctorRun, Finding, FindingStatus, Health, HealthSummary, Status, TaskReport,
    TaskState,
};

use crate::client::{ConnectArgs, Target, call_once};
use crate::output::{ms, opt, print_json, print_rows};

pub async fn health(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let started = Instant::now();
    let health = call_once::<Health>(&target, &[Scope::Read], &Ignored).await?;
    // Up and answering, but a channel cannot send (credentials rejected, rate limited) or a
    // background task is not running: not "healthy", and not exit 0 for a monitor either.
    let degraded = health.channels.values().any(|ch| ch.health_state != "healthy")
        || health.pincer.tasks.iter().any(|t| !matches!(t.state, TaskState::Running));
    let code = if health.ok && !degraded { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if args.json {
        print_json(&health);
        return Ok(code);
    }
    let pincer = &health.pincer;
    println!(
        "Gateway {}: {} (pincer {}, up {}, answered in {} ms)",
        target.url,
        match (health.ok, degraded) {
            (false, _) => "UNHEALTHY",
            (true, true) => "degraded",
            (true, false) => "healthy",
        },
        pincer.version,
        ms(pincer.uptime_ms),
        started.elapsed().as_millis()
    );
    let store = &pincer.store;
    if !store.writable {
        println!("  store: cannot write ({})", opt(store.error.as_deref()));
        println!("    fix: {}", opt(store.fix.as_deref()));
    }
    print_tasks(&pincer.tasks);
    print_connections(&pincer.connections);
    print_channels(&health);
    // One line per MCP server: `mcp time: connected, 2 tools` or its state and last error.
    for s in &pincer.mcp {
        let error = s.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        println!("  mcp {}: {}, {} tools, {} restarts{error}", s.name, s.state, s.tool_count, s.restarts);
    }
    Ok(code)
}

/// `tasks: 6 of 6 running`, then one line per task that is not: `scheduler: restarting (…)`.
fn print_tasks(tasks: &[TaskReport]) {
    let running = tasks.iter().filter(|t| t.state == TaskState::Running).count();
    println!("  tasks: {running} of {} running", tasks.len());
    for t in tasks.iter().filter(|t| t.state != TaskState::Running) {
        let mut line = format!("  {}: {}", t.name, t.state.as_str());
        if t.restarts > 0 {
            line.push_str(&format!(" after {} restart{}", t.restarts, if t.restarts == 1 { "" } else { "s" }));
        }
        if let Some(e) = &t.last_error {
            line.push_str(&format!(" (last error: {e})"));
        }
        println!("{line}");
    }
}

/// `scheduler running, outbox restarting (2 restarts), …`.
fn tasks_row(tasks: &[TaskReport]) -> String {
    if tasks.is_empty() {
        return "-".into();
    }
    let each = tasks.iter().map(|t| match t.restarts {
        0 => format!("{} {}", t.name, t.state.as_str()),
        n => format!("{} {} ({n} restarts)", t.name, t.state.as_str()),
    });
    each.collect::<Vec<_>>().join(", ")
}

/// `connections: 12 open of 4096 (3 unauthenticated); refused 0 at the cap, 5 per address; 2 header timeouts`
fn print_connections(c: &ConnectionPressure) {
    let busy = c.open * 10 >= c.max * 9;
    println!(
        "  connections: {} open of {}{} ({} unauthenticated); refused {} at the cap, {} per address; {} header timeouts",
        c.open,
        c.max,
        if busy { " — NEAR THE CAP" } else { "" },
        c.unauthenticated,
        c.refused.at_capacity,
        c.refused.per_address,
        c.header_timeouts,
    );
}

fn print_channels(health: &HealthSummary) {
    for (name, ch) in &health.channels {
        let error = ch.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        println!("  {name}: {}{error}", ch.health_state);
    }
}

pub async fn status(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let status = call_once::<Status>(&target, &[Scope::Read], &Ignored).await?;
    if args.json {
        print_json(&status);
        return Ok(ExitCode::SUCCESS);
    }
    let gw = &status.gateway;
    print_rows(&[
        ("gateway", target.url.clone()),
        ("version", status.version.clone()),
        ("uptime", ms(status.uptime_ms)),
        ("pid", status.pid.to_string()),
        ("ready", status.ready.to_string()),
        ("bind", format!("{} port {} (auth {})", gw.bind, gw.port, gw.auth_mode)),
        ("connections", gw.connections.to_string()),
        ("tasks", tasks_row(&status.tasks)),
        ("state dir", status.state_dir.clone()),
        ("config", status.config_path.clone()),
        ("database", format!("{} (schema v{})", status.store.path, status.store.schema_version)),
    ]);
    Ok(ExitCode::SUCCESS)
}

/// `doctor` with no gateway running: the checks that need none — the config (with the gateway's
/// own checks), the state dir, the database's integrity, the port, the channels' credentials —
/// and a warning that says how to start the gateway.
fn offline_doctor(paths: &StatePaths) -> DoctorReport {
    let mut findings = Vec::new();
    let mut push = |check: &str, status: FindingStatus, message: String, fix: Option<String>| {
        findings.push(Finding { check: check.into(), status, message, fix })
    };
    push(
        "gateway",
        FindingStatus::Warn,
        format!("no gateway is running for state dir {}; these checks need none", paths.state_dir.display()),
        Some("start it with `pincer gateway` (or `pincer service start` if it is installed as a service)".into()),
    );
    let config_path = paths.config_path.display().to_string();
    let config = if !paths.config_path.exists() {
        push(
            "config",
            FindingStatus::Warn,
            format!("{config_path} does not exist yet"),
            Some("run `pincer setup`, or `pincer gateway` to write a default one".into()),
        );
        None
    } else {
        match crate::commands::config::load_checked(&paths.config_path) {
            Ok(config) => {
                push("config", FindingStatus::Ok, format!("{config_path} is valid"), None);
                Some(config)
            }
            Err(e) => {
                push(
                    "config",
                    FindingStatus::Fail,
                    format!("{e:#}"),
                    Some(format!("fix {config_path}; `pincer config validate` checks it")),
                );
                None
            }
        }
    };
    let probe = paths.state_dir.join(".pincer-doctor-probe");
    match std::fs::create_dir_all(&paths.state_dir).and_then(|_| std::fs::write(&probe, b"ok")) {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            push("state-dir", FindingStatus::Ok, format!("{} is writable", paths.state_dir.display()), None);
        }
        Err(e) => push(
            "state-dir",
            FindingStatus::Fail,
            format!("cannot write in {}: {e}", paths.state_dir.display()),
            Some("give the user that runs the gateway write access, or use another --state-dir".into()),
        ),
    }
    if paths.db_path.exists() {
        match pincer_store::integrity::check(&paths.db_path) {
            Ok(()) => push(
                "database",
                FindingStatus::Ok,
                format!("{} passed its integrity check", paths.db_path.display()),
                None,
            ),
            Err(e) => push(
                "database",
                FindingStatus::Fail,
                e.to_string(),
                Some(pincer_store::integrity::repair_advice(&paths.db_path)),
            ),
        }
    } else {
        push("database", FindingStatus::Ok, "no database yet; the gateway creates it at its first start".into(), None);
    }
    if let Some(config) = &config {
        let port = config.gateway.port;
        let ip = match config.gateway.bind {
            pincer_core::config::Bind::Loopback => std::net::Ipv4Addr::LOCALHOST,
            pincer_core::config::Bind::Lan => std::net::Ipv4Addr::UNSPECIFIED,
        };
        match std::net::TcpListener::bind((ip, port)) {
            Ok(_) => push("port", FindingStatus::Ok, format!("{ip}:{port} is free"), None),
            Err(e) => push(
                "port",
                FindingStatus::Fail,
                format!("{ip}:{port} is taken ({e}): the gateway could not listen there"),
                Some("stop what uses it (`ss -ltnp` shows it), or set gateway.port".into()),
            ),
        }
        let c = &config.channels;
        let channels = [
            ("discord", c.discord.as_ref().map(|d| d.token.as_str()), "token"),
            ("telegram", c.telegram.as_ref().map(|t| t.bot_token.as_str()), "botToken"),
            ("slack", c.slack.as_ref().map(|s| s.bot_token.as_str()), "botToken"),
        ];
        for (name, secret, key) in channels {
            match secret {
                None => {}
                Some(s) if s.trim().is_empty() => push(
                    &format!("channel.{name}"),
                    FindingStatus::Fail,
                    format!("channels.{name}.{key} is empty"),
                    Some(format!("set channels.{name}.{key} (e.g. to \"${{{}_TOKEN}}\")", name.to_uppercase())),
                ),
                Some(_) => push(
                    &format!("channel.{name}"),
                    FindingStatus::Ok,
                    format!("channels.{name}.{key} is set (checked against {name} once the gateway runs)"),
                    None,
                ),
            }
        }
    }
    // `tools.*` as configured, and the `allow-always` grants the gateway will read.
    if let Some(config) = &config {
        for check in pincer_tools::config_checks(&config.tools) {
            let status = if check.problem { FindingStatus::Warn } else { FindingStatus::Ok };
            push(check.check, status, check.message, check.fix);
        }
    }
    let grants = paths.state_dir.join(pincer_gateway::EXEC_APPROVALS_FILE);
    if let Err(e) = pincer_tools::ApprovalQueue::with_grants_file(grants) {
        push(
            "tools.exec.grants",
            FindingStatus::Warn,
            format!("{e}; allow-always decisions will apply once"),
            Some("fix or remove the file before starting the gateway".into()),
        );
    }
    let failing = findings.iter().filter(|f| f.status == FindingStatus::Fail).count() as u64;
    let warnings = findings.iter().filter(|f| f.status == FindingStatus::Warn).count() as u64;
    let mut extra = serde_json::Map::new();
    extra.insert("gatewayRunning".into(), false.into());
    DoctorReport { ok: failing == 0, failing, warnings, findings, extra }
}

pub async fn doctor(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    // No --url and no gateway holding this state dir's lock: it is not running, whatever
    // listens on its port.
    let local = args.url.is_none() && process_env("PINCER_GATEWAY_URL").is_none();
    if local && crate::client::running_gateway_url(paths).is_none() {
        return print_doctor(args, offline_doctor(paths));
    }
    let target = Target::resolve(args, paths, &process_env);
    let report = match &target {
        Ok(target) => match call_once::<DoctorRun>(target, &[Scope::Read], &Ignored).await {
            Ok(report) => report,
            // No gateway answers: what can be checked without it, and how to start it.
            Err(crate::client::ClientError::Unreachable { .. }) if args.url.is_none() => offline_doctor(paths),
            Err(e) => return Err(e.into()),
        },
        // The config does not even read: the offline checks say why, and the rest.
        Err(_) if args.url.is_none() => offline_doctor(paths),
        Err(e) => anyhow::bail!("{e:#}"),
    };
    print_doctor(args, report)
}

fn print_doctor(args: &ConnectArgs, report: DoctorReport) -> anyhow::Result<ExitCode> {
    if args.json {
        print_json(&report);
    } else {
        for f in &report.findings {
            let mark = match f.status {
                FindingStatus::Ok => "ok  ",
                FindingStatus::Warn => "WARN",
                FindingStatus::Fail => "FAIL",
            };
            println!("{mark}  {:<16} {}", f.check, f.message);
            if let Some(fix) = &f.fix {
                println!("      {:<16} fix: {fix}", "");
            }
        }
        println!("{} failing, {} warnings", report.failing, report.warnings);
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
