//! `pincer message send`, `pincer deliveries …` and `pincer inbox`.

use pincer_protocol::state::{DeliveryErrorClass, DeliveryState};
use std::process::ExitCode;

use clap::Subcommand;
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_core::duration::{format_duration_ms, parse_duration_ms};
use pincer_protocol::Scope;
use pincer_protocol::schema::delivery::{
    CancelParams, DeliveriesCancel, DeliveriesGet, DeliveriesGetParams, DeliveriesList, DeliveriesListParams,
    DeliveriesPurge, DeliveriesRetry, DeliveryRef, DeliveryView, InboxList, InboxListParams, PurgeParams, Send,
    SendParams,
};

use crate::client::{ConnectArgs, Target, call_once};
use crate::output::{opt, print_json, print_rows, table, time_in};
use crate::resolve::Candidate;

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
        #[arg(long = "state", default_value = "delivered")]
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
    let params = SendParams {
        to,
        message: Some(message),
        idempotency_key: key,
        wait: Some(!no_wait),
        channel,
        thread_id,
        ..SendParams::default()
    };
    let mut target = target(&c, paths)?;
    target.timeout = target.timeout.max(std::time::Duration::from_secs(35));
    let res = call_once::<Send>(&target, &[Scope::Write], &params).await?;
    if c.json {
        print_json(&res);
    } else {
        println!(
            "{} to {} {}: {}{}",
            res.delivery_id,
            res.channel,
            res.to,
            res.state,
            res.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    Ok(match res.state {
        DeliveryState::Delivered | DeliveryState::Pending | DeliveryState::Sending => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

pub async fn inbox(c: ConnectArgs, limit: u32, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let params = InboxListParams { limit: Some(limit), offset: None };
    let res = call_once::<InboxList>(&target(&c, paths)?, &[Scope::Read], &params).await?;
    if c.json {
        print_json(&res);
        return Ok(ExitCode::SUCCESS);
    }
    if res.messages.is_empty() {
        println!("The inbox is empty. Jobs announce here when no chat channel is configured.");
    }
    for m in res.messages.iter().rev() {
        println!("── {} · {} · #{}", time_in(m.created_at_ms, "UTC"), m.to, m.id);
        println!("{}\n", m.text);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deliveries(cmd: DeliveriesCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    match cmd {
        DeliveriesCommand::List { state, channel, limit, c } => {
            let params = DeliveriesListParams { state: Some(state), limit: Some(limit), channel, ..Default::default() };
            let res = call_once::<DeliveriesList>(&target(&c, paths)?, &[Scope::Read], &params).await?;
            if c.json {
                print_json(&res);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = res
                .deliveries
                .iter()
                .map(|d| {
                    vec![
                        d.id.chars().take(8).collect(),
                        d.state.to_string(),
                        format!("{} {}", d.channel, d.to),
                        format!("{}/{}", d.attempts, d.max_attempts),
                        time_in(d.created_at_ms, "UTC"),
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
            let params = DeliveriesGetParams {
                id: id.clone(),
                parts_offset: Some(parts_offset),
                attempts_offset: Some(attempts_offset),
                ..Default::default()
            };
            let res = call_once::<DeliveriesGet>(&target(&c, paths)?, &[Scope::Read], &params).await?;
            if c.json {
                print_json(&res);
                return Ok(ExitCode::SUCCESS);
            }
            let d = &res.delivery;
            print_rows(&[
                ("id", d.id.clone()),
                ("state", d.state.to_string()),
                (
                    "route",
                    format!(
                        "{} {}{}",
                        d.channel,
                        d.to,
                        d.thread_id.as_deref().map(|t| format!(" thread {t}")).unwrap_or_default()
                    ),
                ),
                ("origin", format!("{} {}", d.origin.kind, opt(d.origin.id.as_deref()))),
                ("attempts", format!("{}/{}", d.attempts, d.max_attempts)),
                ("created", time_in(d.created_at_ms, "UTC")),
                ("reason", reason(d)),
            ]);
            println!("parts ({}):", res.parts_total);
            for p in &res.parts {
                println!(
                    "  #{} {} {}",
                    p.index,
                    p.state,
                    p.platform_message_id.as_deref().map(|m| format!("(message {m})")).unwrap_or_default()
                );
            }
            if let Some(next) = res.parts_next_offset {
                println!("  … more parts: `pincer deliveries show {id} --parts-offset {next}`");
            }
            println!("attempts ({}):", res.attempts_total);
            for a in &res.attempts {
                println!("  {} part {} {}: {}", time_in(a.at_ms, "UTC"), a.part, a.outcome, opt(a.detail.as_deref()));
            }
            if let Some(next) = res.attempts_next_offset {
                println!("  … more attempts: `pincer deliveries show {id} --attempts-offset {next}`");
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Retry { id, c } => {
            let id = expand_id(&c, paths, &id).await?;
            let res = call_once::<DeliveriesRetry>(&target(&c, paths)?, &[Scope::Write], &DeliveryRef { id }).await?;
            print_json(&res);
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Cancel { id, c } => {
            let id = expand_id(&c, paths, &id).await?;
            let mut target = target(&c, paths)?;
            // A delivery being sent stops after the request in flight, which the gateway waits for.
            target.timeout = target.timeout.max(std::time::Duration::from_secs(15));
            let params = CancelParams { id: id.clone(), wait_timeout_ms: None };
            let res = call_once::<DeliveriesCancel>(&target, &[Scope::Write], &params).await?;
            if c.json {
                print_json(&res);
            } else if res.cancelled {
                println!("{id} cancelled: {}", opt(res.error.as_deref()));
            } else if res.stopping == Some(true) {
                println!("{id}: {}", opt(res.message.as_deref()));
            } else {
                println!("{id} was not cancelled: it settled as {} first", res.state);
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Purge { states, older_than, c } => {
            let older_than_ms = older_than
                .map(|o| parse_duration_ms(&o, None).map_err(|e| anyhow::anyhow!("--older-than: {e}")))
                .transpose()?;
            let params = PurgeParams { states: Some(states), older_than_ms };
            let res = call_once::<DeliveriesPurge>(&target(&c, paths)?, &[Scope::Admin], &params).await?;
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
    let params = DeliveriesListParams { limit: Some(500), ..Default::default() };
    let res = call_once::<DeliveriesList>(&target(c, paths)?, &[Scope::Read], &params).await?;
    let candidates: Vec<Candidate> = res.deliveries.into_iter().map(|d| Candidate { id: d.id, name: None }).collect();
    crate::resolve::resolve(id, &candidates, "delivery", "pincer deliveries list", false)
}

fn reason(d: &DeliveryView) -> String {
    match d.state {
        // Held without using up a try: the channel's credentials were rejected.
        DeliveryState::Pending if d.last_error_class == Some(DeliveryErrorClass::Auth) => format!(
            "held, credentials rejected: {} (fix channels.{}, then run `pincer config reload` (saving the config file applies it too))",
            opt(d.last_error.as_deref()),
            d.channel
        ),
        DeliveryState::Pending => match (d.next_attempt_at_ms, d.last_error.as_deref()) {
            (Some(t), error) if d.attempts > 0 => format!("retry at {}: {}", time_in(t, "UTC"), opt(error)),
            (_, Some(error)) => format!("waiting: {error}"),
            _ => "queued".into(),
        },
        DeliveryState::Delivered => format!(
            "in {}",
            format_duration_ms(d.settled_at_ms.unwrap_or(0).saturating_sub(d.created_at_ms).max(0) as u64)
        ),
        _ => format!("{}: {}", opt(d.last_error_class.map(|c| c.as_str())), opt(d.last_error.as_deref())),
    }
}
