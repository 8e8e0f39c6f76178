//! `pincer message send`, `pincer deliveries …` and `pincer inbox`.

use pincer_protocol::state::DeliveryState;
use std::process::ExitCode;

use clap::Subcommand;
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_core::duration::{format_duration_ms, parse_duration_ms};
use pincer_protocol::Scope;
use serde_json::{Value, json};

use crate::client::{ConnectArgs, Target, call_once};
use crate::output::{print_json, print_rows, table, text, time_in};

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Send a message through the outbox (durable; waits until it settles).
    Send {
        /// discord | telegram | slack | inbox (default: inferred from --to, or the only channel).
        #[arg(long)]
        channel: Option<String>,
        /// Target in the channel's grammar, e.g. channel:123, -1001234, @name, user:U0123.
        #[arg(long)]
        to: String,
        #[arg(long)]
        message: String,
        #[arg(long)]
        thread_id: Option<String>,
        /// Makes a retried command a no-op (default: a fresh key per invocation).
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Return once the message is accepted into the outbox, without waiting.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries (newest first), with their state and last error.
    List {
        /// pending | sending | delivered | unknown | dead | all
        #[arg(long, default_value = "all")]
        state: String,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// One delivery: its parts, platform message ids and attempts (a page of each).
    Show {
        id: String,
        /// The first part to show (parts count from 0).
        #[arg(long, default_value_t = 0)]
        parts_offset: u32,
        /// The first attempt to show (oldest is 0).
        #[arg(long, default_value_t = 0)]
        attempts_offset: u32,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Send a dead or unknown delivery again (parts already delivered are not resent).
    Retry {
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Stop a pending delivery, or one being sent before its next part (it becomes dead,
    /// class cancelled; `retry` sends it again).
    Cancel {
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Delete settled deliveries.
    Purge {
        /// States to purge (repeatable): delivered, dead, unknown.
        #[arg(long = "state", default_value = DeliveryState::Delivered.as_str())]
        states: Vec<String>,
        /// Only those settled longer ago than this, e.g. 7d.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

fn target(c: &ConnectArgs, paths: &StatePaths) -> anyhow::Result<Target> {
    Target::resolve(c, paths, &process_env)
}

pub async fn message(cmd: MessageCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let MessageCommand::Send { channel, to, message, thread_id, idempotency_key, no_wait, c } = cmd;
    let key = idempotency_key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut params = json!({ "to": to, "message": message, "idempotencyKey": key, "wait": !no_wait });
    if let Some(ch) = channel {
        params["channel"] = json!(ch);
    }
    if let Some(t) = thread_id {
        params["threadId"] = json!(t);
    }
    let mut target = target(&c, paths)?;
    target.timeout = target.timeout.max(std::time::Duration::from_secs(35));
    let res = call_once(&target, &[Scope::Write], "send", params).await?;
    let state = text(&res["state"]);
    if c.json {
        print_json(&res);
    } else {
        println!(
            "{} to {} {}: {state}{}",
            text(&res["deliveryId"]),
            text(&res["channel"]),
            text(&res["to"]),
            res["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    Ok(match state.parse::<DeliveryState>() {
        Ok(DeliveryState::Delivered | DeliveryState::Pending | DeliveryState::Sending) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

pub async fn inbox(c: ConnectArgs, limit: u32, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let res = call_once(&target(&c, paths)?, &[Scope::Read], "inbox.list", json!({ "limit": limit })).await?;
    if c.json {
        print_json(&res);
        return Ok(ExitCode::SUCCESS);
    }
    let messages = res["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        println!("The inbox is empty. Jobs announce here when no chat channel is configured.");
    }
    for m in messages.iter().rev() {
        println!(
            "── {} · {} · #{}",
            time_in(m["createdAtMs"].as_i64().unwrap_or(0), "UTC"),
            text(&m["to"]),
            text(&m["id"])
        );
        println!("{}\n", text(&m["text"]));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deliveries(cmd: DeliveriesCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    match cmd {
        DeliveriesCommand::List { state, channel, limit, c } => {
            let mut params = json!({ "state": state, "limit": limit });
            if let Some(ch) = channel {
                params["channel"] = json!(ch);
            }
            let res = call_once(&target(&c, paths)?, &[Scope::Read], "deliveries.list", params).await?;
            if c.json {
                print_json(&res);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = res["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    vec![
                        text(&d["id"]).chars().take(8).collect(),
                        text(&d["state"]),
                        format!("{} {}", text(&d["channel"]), text(&d["to"])),
                        format!("{}/{}", text(&d["attempts"]), text(&d["maxAttempts"])),
                        time_in(d["createdAtMs"].as_i64().unwrap_or(0), "UTC"),
                        reason(d),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No deliveries.");
            } else {
                table(&["ID", "STATE", "ROUTE", "TRIES", "CREATED (UTC)", "REASON"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Show { id, parts_offset, attempts_offset, c } => {
            let id = expand_id(&c, paths, &id).await?;
            let params = json!({ "id": id, "partsOffset": parts_offset, "attemptsOffset": attempts_offset });
            let res = call_once(&target(&c, paths)?, &[Scope::Read], "deliveries.get", params).await?;
            if c.json {
                print_json(&res);
                return Ok(ExitCode::SUCCESS);
            }
            let d = &res["delivery"];
            print_rows(&[
                ("id", text(&d["id"])),
                ("state", text(&d["state"])),
                (
                    "route",
                    format!(
                        "{} {}{}",
                        text(&d["channel"]),
                        text(&d["to"]),
                        d["threadId"].as_str().map(|t| format!(" thread {t}")).unwrap_or_default()
                    ),
                ),
                ("origin", format!("{} {}", text(&d["origin"]["kind"]), text(&d["origin"]["id"]))),
                ("attempts", format!("{}/{}", text(&d["attempts"]), text(&d["maxAttempts"]))),
                ("created", time_in(d["createdAtMs"].as_i64().unwrap_or(0), "UTC")),
                ("reason", reason(d)),
            ]);
            let parts = res["parts"].as_array().cloned().unwrap_or_default();
            println!("parts ({}):", text(&res["partsTotal"]));
            for p in &parts {
                println!(
                    "  #{} {} {}",
                    text(&p["index"]),
                    text(&p["state"]),
                    p["platformMessageId"].as_str().map(|m| format!("(message {m})")).unwrap_or_default()
                );
            }
            if let Some(next) = res["partsNextOffset"].as_u64() {
                println!("  … more parts: `pincer deliveries show {id} --parts-offset {next}`");
            }
            println!("attempts ({}):", text(&res["attemptsTotal"]));
            for a in res["attempts"].as_array().cloned().unwrap_or_default() {
                println!(
                    "  {} part {} {}: {}",
                    time_in(a["atMs"].as_i64().unwrap_or(0), "UTC"),
                    text(&a["part"]),
                    text(&a["outcome"]),
                    text(&a["detail"])
                );
            }
            if let Some(next) = res["attemptsNextOffset"].as_u64() {
                println!("  … more attempts: `pincer deliveries show {id} --attempts-offset {next}`");
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Retry { id, c } => {
            let id = expand_id(&c, paths, &id).await?;
            let res = call_once(&target(&c, paths)?, &[Scope::Write], "deliveries.retry", json!({ "id": id })).await?;
            print_json(&res);
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Cancel { id, c } => {
            let id = expand_id(&c, paths, &id).await?;
            let mut target = target(&c, paths)?;
            // A delivery being sent stops after the request in flight, which the gateway waits for.
            target.timeout = target.timeout.max(std::time::Duration::from_secs(15));
            let res = call_once(&target, &[Scope::Write], "deliveries.cancel", json!({ "id": id })).await?;
            if c.json {
                print_json(&res);
            } else if res["cancelled"] == true {
                println!("{id} cancelled: {}", text(&res["error"]));
            } else if res["stopping"] == true {
                println!("{id}: {}", text(&res["message"]));
            } else {
                println!("{id} was not cancelled: it settled as {} first", text(&res["state"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Purge { states, older_than, c } => {
            let mut params = json!({ "states": states });
            if let Some(o) = older_than {
                params["olderThanMs"] =
                    json!(parse_duration_ms(&o, None).map_err(|e| anyhow::anyhow!("--older-than: {e}"))?);
            }
            let res = call_once(&target(&c, paths)?, &[Scope::Admin], "deliveries.purge", params).await?;
            print_json(&res);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Accepts the 8-character prefix `list` shows.
async fn expand_id(c: &ConnectArgs, paths: &StatePaths, id: &str) -> anyhow::Result<String> {
    if id.len() >= 36 {
        return Ok(id.to_string());
    }
    let res = call_once(&target(c, paths)?, &[Scope::Read], "deliveries.list", json!({ "limit": 500 })).await?;
    let matches: Vec<String> = res["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d["id"].as_str().map(String::from))
        .filter(|d| d.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Ok(id.to_string()),
        many => Err(anyhow::anyhow!("\"{id}\" matches {} deliveries; give more of the id", many.len())),
    }
}

fn reason(d: &Value) -> String {
    match d["state"].as_str().and_then(|s| s.parse::<DeliveryState>().ok()) {
        Some(DeliveryState::Pending) => match d["nextAttemptAtMs"].as_i64() {
            Some(t) if d["attempts"].as_u64().unwrap_or(0) > 0 => {
                format!("retry at {}: {}", time_in(t, "UTC"), text(&d["lastError"]))
            }
            _ => "queued".into(),
        },
        Some(DeliveryState::Delivered) => format!(
            "in {}",
            format_duration_ms(
                d["settledAtMs"].as_i64().unwrap_or(0).saturating_sub(d["createdAtMs"].as_i64().unwrap_or(0)).max(0)
                    as u64
            )
        ),
        _ => format!("{}: {}", text(&d["lastErrorClass"]), text(&d["lastError"])),
    }
}
