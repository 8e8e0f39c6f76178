//! `pincer agent` (one turn, the reply printed as it streams in) and `pincer sessions
//! list|show|cleanup`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use pincer_protocol::schema::agent::{Agent, AgentParams};
use pincer_protocol::schema::sessions::{
    ChatHistory, ChatHistoryAnswer, ChatHistoryParams, ChatMessage, SessionsCleanup, SessionsCleanupParams,
    SessionsDescribe, SessionsDescribeParams, SessionsList, SessionsListParams, TranscriptSummary,
};

use crate::client::{Client, ClientError, ConnectArgs, Target, call_once};
use crate::output::{opt, print_json, print_rows, table, time_in};

/// Run one agent turn and print the reply as it arrives.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// What to say to the agent.
    #[arg(long, short)]
    message: String,
    /// main (default), isolated, session:<id>, or a key from `pincer sessions list`.
    #[arg(long, value_name = "KEY")]
    session: Option<String>,
    /// The agent that answers (default: main).
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// Use this model instead of agents.defaults.model.primary.
    #[arg(long, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    /// The turn's time limit (0 = none).
    #[arg(long, value_name = "N", default_value_t = 600)]
    timeout_seconds: u64,
    #[command(flatten)]
    c: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions, most recently active first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// main | isolated | named
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// One session's transcript, oldest first.
    Show {
        /// A key from `pincer sessions list`, or main, or session:<id>.
        key: String,
        /// The newest N entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// An earlier transcript of the session (one `/new` or `/reset` replaced), by the id
        /// `pincer sessions show <key>` lists.
        #[arg(long, value_name = "ID")]
        session_id: Option<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Apply `session.maintenance` now: archive idle sessions, delete finished idle cron runs and
    /// old replaced transcripts, cap the count. The main session is never touched.
    Cleanup {
        /// Say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this agent's sessions (default: every agent's).
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// A session to leave alone.
        #[arg(long, value_name = "KEY")]
        active_key: Option<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

pub async fn agent(args: AgentArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let mut target = Target::resolve(&args.c, paths, &process_env)?;
    // Wait a little longer than the turn may take, so its own time limit is what ends it.
    let turn = match args.timeout_seconds {
        0 => Duration::from_secs(24 * 3_600),
        secs => Duration::from_secs(secs.saturating_add(30)),
    };
    target.timeout = target.timeout.max(turn);
    let run_id = uuid::Uuid::new_v4().to_string();
    let params = AgentParams {
        message: args.message,
        idempotency_key: Some(run_id.clone()),
        timeout: Some(args.timeout_seconds),
        session_key: args.session,
        agent_id: args.agent,
        model: args.model,
        ..AgentParams::default()
    };
    let quiet = args.c.json;
    let mut printed = String::new();
    let mut client = Client::connect(&target, &[Scope::Write]).await?;
    let result = client
        .call_streaming::<Agent>(&params, |ev| {
            let Some(p) = ev.payload.as_ref().filter(|_| !quiet && ev.event == "agent") else { return };
            if p["runId"] != run_id.as_str() || p["stream"] != "assistant" {
                return;
            }
            if let Some(delta) = p["data"]["delta"].as_str() {
                print!("{delta}");
                let _ = std::io::stdout().flush();
                printed.push_str(delta);
            }
        })
        .await;
    client.close().await;
    let res = result?;
    if quiet {
        print_json(&res);
        return Ok(ExitCode::SUCCESS);
    }
    // Events may be dropped under load; the response always has the whole reply.
    let reply = res.text.as_str();
    match reply.strip_prefix(printed.as_str()) {
        Some(rest) => print!("{rest}"),
        None => print!("\n{reply}"),
    }
    if !reply.ends_with('\n') {
        println!();
    }
    eprintln!(
        "{} · {} in / {} out tokens · session {}",
        res.model, res.usage.input_tokens, res.usage.output_tokens, res.session_key
    );
    Ok(ExitCode::SUCCESS)
}

/// `sessions show`: the key as given (`main`, `session:<id>` and full keys are the gateway's),
/// else the session whose key starts with it or whose own name (`…:session:<name>`) it is, with
/// the same messages as jobs and deliveries for none and for several.
async fn show_session(
    client: &mut crate::client::Client,
    given: &str,
    limit: u32,
    session_id: Option<&str>,
) -> anyhow::Result<(ChatHistoryAnswer, Vec<TranscriptSummary>)> {
    let history = |key: String| ChatHistoryParams {
        session_key: key,
        limit: Some(limit),
        session_id: session_id.map(str::to_string),
        ..Default::default()
    };
    let answer = match client.call::<ChatHistory>(&history(given.to_string())).await {
        Err(ClientError::Rpc(shape)) if shape.message.starts_with("session not found") => {
            let list = SessionsListParams { limit: Some(1000), ..Default::default() };
            let sessions = client.call::<SessionsList>(&list).await?.sessions;
            let candidates: Vec<crate::resolve::Candidate> = sessions
                .into_iter()
                .map(|s| {
                    let name = s.key.split_once(":session:").map(|(_, n)| n.to_string());
                    crate::resolve::Candidate { id: s.key, name }
                })
                .collect();
            let key = crate::resolve::resolve(given, &candidates, "session", "pincer sessions list", true)?;
            client.call::<ChatHistory>(&history(key)).await?
        }
        other => other?,
    };
    let ChatHistoryAnswer::Page(page) = &answer else { return Ok((answer, vec![])) };
    let describe = SessionsDescribeParams { key: page.session_key.clone(), ..Default::default() };
    let earlier = client.call::<SessionsDescribe>(&describe).await?.previous_transcripts.unwrap_or_default();
    Ok((answer, earlier))
}

pub async fn sessions(cmd: SessionsCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    match cmd {
        SessionsCommand::List { limit, kind, c } => {
            let params = SessionsListParams { limit: Some(limit), kind, ..Default::default() };
            let target = Target::resolve(&c, paths, &process_env)?;
            let res = call_once::<SessionsList>(&target, &[Scope::Read], &params).await?;
            if c.json {
                print_json(&res);
                return Ok(ExitCode::SUCCESS);
            }
            let sessions = &res.sessions;
            if sessions.is_empty() {
                println!("No sessions yet. Start one with `pincer agent --message <text>`.");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = sessions
                .iter()
                .map(|s| {
                    vec![
                        s.key.clone(),
                        s.kind.clone(),
                        opt(s.model.as_deref()),
                        s.message_count.to_string(),
                        format!("{}/{}", s.input_tokens, s.output_tokens),
                        time_in(s.updated_at, "UTC"),
                    ]
                })
                .collect();
            table(&["KEY", "KIND", "MODEL", "MESSAGES", "TOKENS IN/OUT", "UPDATED"], &rows);
            if res.has_more {
                println!("({} of {}; raise --limit to see more)", sessions.len(), res.total);
            }
            Ok(ExitCode::SUCCESS)
        }
        SessionsCommand::Cleanup { dry_run, agent, active_key, c } => {
            let params =
                SessionsCleanupParams { agent, active_key, dry_run: dry_run.then_some(true), ..Default::default() };
            let target = Target::resolve(&c, paths, &process_env)?;
            let res = call_once::<SessionsCleanup>(&target, &[Scope::Admin], &params).await?;
            if c.json {
                print_json(&res);
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if res.dry_run { "would be" } else { "were" };
            println!("Sessions: {} -> {} (not archived)", res.before_count, res.after_count);
            print_rows(&[
                (&format!("archived as idle ({verb})"), res.archived.to_string()),
                (&format!("archived beyond the cap ({verb})"), res.cap_archived.to_string()),
                (&format!("cron runs deleted ({verb})"), (res.pruned + res.capped).to_string()),
                (&format!("replaced transcripts deleted ({verb})"), res.reset_transcripts_pruned.to_string()),
            ]);
            if !res.actions.is_empty() {
                let rows: Vec<Vec<String>> = res
                    .actions
                    .iter()
                    .map(|a| {
                        let action = serde_json::to_value(a.action).ok().and_then(|v| v.as_str().map(str::to_string));
                        vec![action.unwrap_or_default(), a.key.clone()]
                    })
                    .collect();
                table(&["ACTION", "KEY"], &rows);
            }
            if res.dry_run && res.would_mutate {
                println!("Run `pincer sessions cleanup` without --dry-run to apply it.");
            }
            Ok(ExitCode::SUCCESS)
        }
        SessionsCommand::Show { key, limit, session_id, c } => {
            let target = Target::resolve(&c, paths, &process_env)?;
            let mut client = crate::client::Client::connect(&target, &[Scope::Read]).await?;
            let res = show_session(&mut client, &key, limit, session_id.as_deref()).await;
            client.close().await;
            let (res, earlier) = res?;
            if c.json {
                let mut out = serde_json::to_value(&res)?;
                if let Some(obj) = out.as_object_mut() {
                    obj.insert("previousTranscripts".into(), serde_json::to_value(&earlier)?);
                }
                print_json(&out);
                return Ok(ExitCode::SUCCESS);
            }
            let ChatHistoryAnswer::Page(res) = res else {
                anyhow::bail!("the gateway answered chat.history without a page; upgrade pincer or the gateway");
            };
            let s = &res.session;
            let shown = earlier.iter().find(|t| t.session_id == s.session_id);
            let mut rows = vec![
                ("session", s.key.clone()),
                ("session id", s.session_id.clone()),
                ("kind", s.kind.clone()),
                ("model", opt(s.model.as_deref())),
                ("tokens", format!("{} in / {} out", s.input_tokens, s.output_tokens)),
                ("updated", time_in(s.updated_at, "UTC")),
            ];
            if let Some(t) = shown {
                let how = format!("at {} ({}); not the current transcript", time_in(t.archived_at, "UTC"), t.reason);
                rows.push(("replaced", how));
            }
            print_rows(&rows);
            if res.has_more {
                println!("… older entries not shown (raise --limit)");
            }
            if res.messages.is_empty() {
                println!("\n(no entries in this transcript)");
            }
            for m in &res.messages {
                println!("\n── #{} {} · {}{}", m.seq, m.role, time_in(m.timestamp, "UTC"), detail(m));
                if !m.text.is_empty() {
                    println!("{}", m.text);
                }
                for call in m.meta.get("toolCalls").and_then(|c| c.as_array()).into_iter().flatten() {
                    let field = |k: &str| call.get(k).and_then(|v| v.as_str()).unwrap_or("?");
                    println!("→ tool call {} ({}): {}", field("name"), field("id"), field("arguments"));
                }
            }
            if !earlier.is_empty() {
                println!(
                    "\nEarlier transcripts of {} (replaced by /new, /reset or sessions.reset), newest first:",
                    s.key
                );
                let rows: Vec<Vec<String>> = earlier
                    .iter()
                    .map(|t| {
                        let mark = if t.session_id == s.session_id { " (shown)" } else { "" };
                        vec![
                            format!("{}{mark}", t.session_id),
                            t.reason.clone(),
                            t.message_count.to_string(),
                            t.started_at.map_or_else(|| "-".into(), |at| time_in(at, "UTC")),
                            time_in(t.archived_at, "UTC"),
                        ]
                    })
                    .collect();
                table(&["SESSION ID", "REASON", "MESSAGES", "STARTED", "REPLACED"], &rows);
                if let Some(other) = earlier.iter().find(|t| t.session_id != s.session_id) {
                    println!("See one with `pincer sessions show {} --session-id {}`.", s.key, other.session_id);
                }
                if shown.is_some() {
                    println!("The current transcript: `pincer sessions show {}`.", s.key);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What a transcript entry says about itself: the model that wrote it, or where an event came from.
fn detail(m: &ChatMessage) -> String {
    let meta = |key: &str| m.meta.get(key).and_then(|v| v.as_str());
    if let (Some(tool), Some(id)) = (meta("toolName"), meta("toolCallId")) {
        return match meta("errorClass") {
            Some(class) => format!(" · {tool} ({id}) · error ({class})"),
            None => format!(" · {tool} ({id})"),
        };
    }
    match (meta("model"), meta("source"), meta("errorReason")) {
        (_, _, Some(reason)) => format!(" · failed ({reason})"),
        (Some(model), _, _) => format!(" · {model}"),
        (_, Some(source), _) => format!(" · from {source}"),
        _ => String::new(),
    }
}
