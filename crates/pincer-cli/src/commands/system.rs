//! `pincer health` and `pincer status`.

use std::process::ExitCode;
use std::time::Instant;

use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use serde_json::{Value, json};

use crate::client::{ConnectArgs, Target, call_once};
use crate::output::{ms, print_json, print_rows, text};

pub async fn health(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let started = Instant::now();
    let health = call_once(&target, &[Scope::Read], "health", json!({})).await?;
    if args.json {
        print_json(&health);
        return Ok(ExitCode::SUCCESS);
    }
    let ok = health["ok"].as_bool() == Some(true);
    let pincer = &health["pincer"];
    println!(
        "Gateway {}: {} (pincer {}, up {}, answered in {} ms)",
        target.url,
        if ok { "healthy" } else { "UNHEALTHY" },
        text(&pincer["version"]),
        ms(&pincer["uptimeMs"]),
        started.elapsed().as_millis()
    );
    let store = &pincer["store"];
    if store["writable"] == false {
        println!("  store: cannot write ({})", text(&store["error"]));
        println!("    fix: {}", text(&store["fix"]));
    }
    print_tasks(&pincer["tasks"]);
    print_connections(&pincer["connections"]);
    print_channels(&health);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `tasks: 6 running`, then one line per task that is not: `scheduler: restarting (…)`.
fn print_tasks(tasks: &Value) {
    let Some(tasks) = tasks.as_array() else { return };
    let running = tasks.iter().filter(|t| t["state"] == "running").count();
    println!("  tasks: {running} of {} running", tasks.len());
    for t in tasks.iter().filter(|t| t["state"] != "running") {
        let mut line = format!("  {}: {}", text(&t["name"]), text(&t["state"]));
        if let Some(n) = t["restarts"].as_u64().filter(|n| *n > 0) {
            line.push_str(&format!(" after {n} restart{}", if n == 1 { "" } else { "s" }));
        }
        if let Some(e) = t["lastError"].as_str() {
            line.push_str(&format!(" (last error: {e})"));
        }
        println!("{line}");
    }
}

/// `scheduler running, outbox restarting (2 restarts), …`.
fn tasks_row(tasks: &Value) -> String {
    let Some(tasks) = tasks.as_array() else { return "-".into() };
    let each = tasks.iter().map(|t| match t["restarts"].as_u64().filter(|n| *n > 0) {
        Some(n) => format!("{} {} ({n} restarts)", text(&t["name"]), text(&t["state"])),
        None => format!("{} {}", text(&t["name"]), text(&t["state"])),
    });
    each.collect::<Vec<_>>().join(", ")
}

/// `connections: 12 open of 4096 (3 unauthenticated); refused 0 at the cap, 5 per address; 2 header timeouts`
fn print_connections(c: &Value) {
    if c.is_null() {
        return;
    }
    let busy = c["open"].as_u64().unwrap_or(0) * 10 >= c["max"].as_u64().unwrap_or(u64::MAX) * 9;
    println!(
        "  connections: {} open of {}{} ({} unauthenticated); refused {} at the cap, {} per address; {} header timeouts",
        text(&c["open"]),
        text(&c["max"]),
        if busy { " — NEAR THE CAP" } else { "" },
        text(&c["unauthenticated"]),
        text(&c["refused"]["atCapacity"]),
        text(&c["refused"]["perAddress"]),
        text(&c["headerTimeouts"]),
    );
}

fn print_channels(health: &Value) {
    let Some(channels) = health["channels"].as_object() else { return };
    for (name, ch) in channels {
        let state = ch["healthState"].as_str().unwrap_or("unknown");
        let error = ch["lastError"].as_str().map(|e| format!(" ({e})")).unwrap_or_default();
        println!("  {name}: {state}{error}");
    }
}

pub async fn status(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let status = call_once(&target, &[Scope::Read], "status", json!({})).await?;
    if args.json {
        print_json(&status);
        return Ok(ExitCode::SUCCESS);
    }
    let gw = &status["gateway"];
    print_rows(&[
        ("gateway", target.url.clone()),
        ("version", text(&status["version"])),
        ("uptime", ms(&status["uptimeMs"])),
        ("pid", text(&status["pid"])),
        ("ready", text(&status["ready"])),
        ("bind", format!("{} port {} (auth {})", text(&gw["bind"]), text(&gw["port"]), text(&gw["authMode"]))),
        ("connections", text(&gw["connections"])),
        ("tasks", tasks_row(&status["tasks"])),
        ("state dir", text(&status["stateDir"])),
        ("config", text(&status["configPath"])),
        (
            "database",
            format!("{} (schema v{})", text(&status["store"]["path"]), text(&status["store"]["schemaVersion"])),
        ),
    ]);
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(args: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(args, paths, &process_env)?;
    let report = call_once(&target, &[Scope::Read], "doctor.run", json!({})).await?;
    if args.json {
        print_json(&report);
    } else {
        for f in report["findings"].as_array().cloned().unwrap_or_default() {
            let mark = match f["status"].as_str() {
                Some("ok") => "ok  ",
                Some("warn") => "WARN",
                _ => "FAIL",
            };
            println!("{mark}  {:<16} {}", text(&f["check"]), text(&f["message"]));
            if let Some(fix) = f["fix"].as_str() {
                println!("      {:<16} fix: {fix}", "");
            }
        }
        println!("{} failing, {} warnings", text(&report["failing"]), text(&report["warnings"]));
    }
    Ok(if report["ok"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
