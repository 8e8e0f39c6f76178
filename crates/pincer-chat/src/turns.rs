//! The turn dispatcher: one worker per session with queued messages, one turn at a time. A worker
//! takes every message queued for its session (a chat command alone), runs one agent turn over
//! them, and commits the reply's outbox row, the messages' `answered` mark and the session's last
//! route in one transaction. The last route is also written before the turn, so a chat's first
//! turn already reaches its chat through the `message` and `cron` tools. After a crash, messages
//! still `queued` are simply taken again.

use std::sync::Arc;

use pincer_core::TaskResult;
use pincer_protocol::schema::agent::AgentParams;
use pincer_protocol::state::InboundState;
use pincer_store::InboundRow;

use crate::{Chat, Reply};

/// How long the typing indicator lasts on Telegram; it is sent again before it fades.
const TYPING_EVERY_MS: i64 = 4_000;

/// Waits for stored messages and starts a worker for each session that has some.
pub(crate) async fn dispatch_loop(chat: Arc<Chat>) -> TaskResult {
    let mut stop = chat.stop.subscribe();
    loop {
        // Registered before the read, so a wake between the read and the wait is not lost.
        let woken = chat.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let queued = chat.store.read(|rd| rd.queued_inbound(10_000)).await?;
        tracing::debug!(queued = queued.len(), "inbound: dispatcher pass");
        for row in queued {
            let new = chat.busy.lock().expect("busy sessions").insert(row.session_key.clone());
            if new {
                tokio::spawn(session_worker(chat.clone(), row.session_key));
            }
        }
        tokio::select! {
            _ = woken => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// Frees the session when its worker ends, however it ends, and wakes the dispatcher (a message
/// may have arrived while the worker was finishing).
struct Busy(Arc<Chat>, String);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.lock().expect("busy sessions").remove(&self.1);
        self.0.wake_turns();
    }
}

async fn session_worker(chat: Arc<Chat>, session: String) {
    let _busy = Busy(chat.clone(), session.clone());
    loop {
        if *chat.stop.borrow() {
            return;
        }
        let key = session.clone();
        let rows = match chat.store.read(move |rd| rd.queued_inbound_of(&key, 100)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(session, error = %e, "inbound: cannot read queued messages");
                return;
            }
        };
        let batch = next_batch(rows);
        tracing::debug!(session, batch = batch.len(), "inbound: session worker pass");
        if batch.is_empty() {
            return;
        }
        if let Err(e) = answer(&chat, &session, batch).await {
            // Left queued: the dispatcher's next pass takes them again.
            tracing::warn!(session, error = %e, "inbound: the answer was not recorded");
            return;
        }
    }
}

/// The messages one turn answers: a chat command alone, else every message up to the next command.
fn next_batch(rows: Vec<InboundRow>) -> Vec<InboundRow> {
    let mut batch = Vec::new();
    for row in rows {
        let command = command_of(&row.text).is_some();
        if command && !batch.is_empty() {
            break;
        }
        batch.push(row);
        if command {
            break;
        }
    }
    batch
}

/// A chat command Pincer answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    New,
    Status,
    Help,
}

/// A chat command as `commands.list` shows it: its name, every word that invokes it, what it does
/// and OpenClaw's display category.
pub struct ChatCommand {
    pub name: &'static str,
    pub words: &'static [&'static str],
    pub description: &'static str,
    pub category: &'static str,
}

/// The commands [`command_of`] understands (a test keeps the two in step).
pub const COMMANDS: &[ChatCommand] = &[
    ChatCommand {
        name: "new",
        words: &["new", "reset"],
        description: "Start a new conversation (the bot forgets this one)",
        category: "session",
    },
    ChatCommand {
        name: "status",
        words: &["status"],
        description: "The session and model used in this chat",
        category: "status",
    },
    ChatCommand { name: "help", words: &["help", "start"], description: "List these commands", category: "status" },
];

fn command_of(text: &str) -> Option<Command> {
    let word = text.split_whitespace().next()?;
    // `/new@pincer_bot` is how Telegram sends commands in groups.
    let name = word.strip_prefix('/')?.split('@').next()?.to_ascii_lowercase();
    match name.as_str() {
        "new" | "reset" => Some(Command::New),
        "status" => Some(Command::Status),
        "help" | "start" => Some(Command::Help),
        _ => None,
    }
}

const HELP: &str = "Talk to me in plain words. Commands:\n/new or /reset — start a new conversation (I forget this one)\n/status — the session and model I use here\n/help — this list";

async fn answer(chat: &Arc<Chat>, session: &str, batch: Vec<InboundRow>) -> pincer_store::Result<()> {
    let last = batch.last().expect("a batch is never empty").clone();
    let channel = last.channel.clone();
    let full_key = Chat::full_key(session);
    let seqs: Vec<i64> = batch.iter().map(|r| r.seq).collect();
    let route = serde_json::json!({
        "channel": channel, "to": last.chat_id, "threadId": last.thread_id, "source": "last",
    })
    .to_string();
    // Before the turn: its `message`/`cron` tools default to the chat this message came from.
    {
        let (key, route, now) = (full_key.clone(), route.clone(), chat.clock.now_ms());
        chat.store
            .write(move |tx| tx.set_session_last_route(&key, pincer_cron::job::DEFAULT_AGENT, &route, now))
            .await?;
    }
    let command = command_of(&batch[0].text);
    // `/new` and `/reset` point the key at a new session id (the old transcript is kept under the
    // old one) in the same commit as the reply, so a crash never starts two new sessions.
    let reset = (command == Some(Command::New))
        .then(|| if batch[0].text.trim_start().to_ascii_lowercase().starts_with("/reset") { "reset" } else { "new" });
    let (text, state) = match command {
        Some(Command::New) => {
            ("New conversation started: I forgot what we said before.".to_string(), InboundState::Answered)
        }
        Some(Command::Status) => {
            let model = chat.config().agents.defaults.model.primary.clone().unwrap_or_else(|| "none configured".into());
            (format!("Session {full_key}\nModel {model}"), InboundState::Answered)
        }
        Some(Command::Help) => (HELP.to_string(), InboundState::Answered),
        None => run_turn(chat, session, &batch, &last).await,
    };
    pincer_core::crashpoint::hit("inbound.answering");
    let reply = Reply {
        key: format!("reply:{channel}:{}", last.seq),
        chat_id: last.chat_id.clone(),
        thread_id: last.thread_id.clone(),
        reply_to: Some(last.message_id.clone()),
        text,
    };
    let silent = pincer_cron::scheduler::is_silent(&reply.text);
    let writer = chat.clone_for_write();
    let now = chat.clock.now_ms();
    chat.store
        .write(move |tx| {
            let delivery = if silent { None } else { writer.enqueue_in(tx, &channel, &reply)? };
            tx.settle_inbound(&seqs, state, delivery.as_deref(), now)?;
            // `--channel last` reaches the chat the owner last talked from.
            tx.set_session_last_route(&full_key, pincer_cron::job::DEFAULT_AGENT, &route, now)?;
            if let Some(reason) = reset {
                tx.reset_session(&full_key, reason, now)?;
            }
            Ok(())
        })
        .await?;
    pincer_core::crashpoint::hit("inbound.answered");
    chat.kick_outbox();
    Ok(())
}

/// One agent turn over the batch, with the typing indicator on while it runs.
async fn run_turn(chat: &Arc<Chat>, session: &str, batch: &[InboundRow], last: &InboundRow) -> (String, InboundState) {
    let typing = chat.typing(last.channel.as_str()).map(|api| {
        let (clock, chat_id, thread) = (chat.clock.clone(), last.chat_id.clone(), last.thread_id.clone());
        tokio::spawn(async move {
            loop {
                api.typing(&chat_id, thread.as_deref()).await;
                clock.sleep_until(clock.now_ms() + TYPING_EVERY_MS).await;
            }
        })
    });
    let message = batch.iter().map(|r| r.text.as_str()).collect::<Vec<_>>().join("\n\n");
    let params = AgentParams {
        message,
        session_key: Some(session.to_string()),
        // One run id per batch: a repeated turn (after a restart) is recognisable in transcripts.
        idempotency_key: Some(format!("inbound-{}-{}-{}", last.channel, batch[0].seq, last.seq)),
        ..AgentParams::default()
    };
    tracing::debug!(session, "inbound: turn starts");
    let result = pincer_agent::api::agent(&chat.agents, params, |_| {}).await;
    tracing::debug!(session, ok = result.is_ok(), "inbound: turn ended");
    if let Some(t) = typing {
        t.abort();
    }
    match result {
        Ok(r) => (r.text, InboundState::Answered),
        Err(e) => {
            tracing::warn!(session, error = %e, "inbound: the turn failed");
            (format!("Sorry, I could not answer that: {e}"), InboundState::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_table_lists_exactly_the_words_that_are_commands() {
        let listed: Vec<&str> = COMMANDS.iter().flat_map(|c| c.words.iter().copied()).collect();
        for word in &listed {
            assert!(command_of(&format!("/{word}")).is_some(), "/{word} is listed but not a command");
        }
        for word in ["new", "reset", "status", "help", "start"] {
            assert!(listed.contains(&word), "/{word} is a command but not listed");
        }
    }

    #[test]
    fn commands_are_read_as_telegram_sends_them() {
        let rows = [
            ("/new", Some(Command::New)),
            ("/reset now", Some(Command::New)),
            ("/Status@pincer_bot", Some(Command::Status)),
            ("/help", Some(Command::Help)),
            ("/start", Some(Command::Help)),
            ("/newer", None),
            ("hello /new", None),
            ("/", None),
        ];
        for (text, want) in rows {
            assert_eq!(command_of(text), want, "{text}");
        }
    }
}
