//! `pincer health` and `pincer status`.

use std::process::ExitCode;
use std::time::Instant;

use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use pincer_protocol::schema::Ignored;
use pincer_protocol::schema::system::{
    ConnectionPressure, DoctorRun, FindingStatus, Health, HealthSummary, Status, TaskReport, TaskState,
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

pub async fn doctor(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let report = call_once::<DoctorRun>(&target, &[Scope::Read], &Ignored).await?;
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
