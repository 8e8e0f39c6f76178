//! DM pairing, as OpenClaw does it: an unknown sender under `dmPolicy: pairing` gets a short code
//! (8 characters without look-alikes, live for an hour, at most 3 waiting per channel) and nothing
//! reaches the model; the owner approves or rejects it (`pincer pairing approve|reject <channel>
//! <code>`, or `channels.pairing.*`). Every decision is written to the audit log in the commit
//! that makes it; an approval tells the sender through the outbox in that commit too.

use pincer_store::{NewAuditRow, PairingCodeRow};
use serde_json::json;

use crate::{Chat, Reply};

/// How long a code stays valid (OpenClaw's `CHANNEL_PAIRING_PENDING_TTL_MS`).
pub const TTL_MS: i64 = 3_600_000;
/// Codes waiting per channel at most (OpenClaw's `CHANNEL_PAIRING_PENDING_MAX`).
pub const MAX_PENDING: u32 = 3;
/// Letters and digits without look-alikes (no 0/O, 1/I), OpenClaw's alphabet.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;

/// A fresh random code.
pub fn new_code() -> String {
    let mut bytes = [0u8; CODE_LEN];
    rand::fill(&mut bytes);
    // 256 is a multiple of 32: every character is equally likely.
    bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

/// What an unknown sender is told.
pub fn code_message(channel: &str, code: &str, sender_id: &str) -> String {
    format!(
        "Pincer: access not configured.\n\nYour {channel} user id: {sender_id}\n\nPairing code: {code}\n\n\
         Ask the bot owner to approve with:\npincer pairing approve {channel} {code}"
    )
}

/// What an approved sender is told.
pub const APPROVED_MESSAGE: &str = "Access approved. Send a message to start chatting.";

/// Why a pairing call failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("no pending pairing code {code} on {channel} (codes expire after an hour): run `pincer pairing list`")]
    NotFound { channel: String, code: String },
    #[error("{0}")]
    Store(#[from] pincer_store::StoreError),
}

/// The live codes (of `channel`, or all), oldest first.
pub async fn list(chat: &Chat, channel: Option<&str>) -> Result<Vec<PairingCodeRow>, PairingError> {
    let (channel, now) = (channel.map(str::to_string), chat.clock.now_ms());
    Ok(chat.store.read(move |rd| rd.pairing_codes(channel.as_deref(), now)).await?)
}

/// Approves (`approve`) or rejects code `code` of `channel`: one commit holds the decision, its
/// audit row and, for an approval, the message telling the sender.
pub async fn decide(chat: &Chat, channel: &str, code: &str, approve: bool) -> Result<PairingCodeRow, PairingError> {
    let now = chat.clock.now_ms();
    let (ch, cd) = (channel.to_string(), code.trim().to_string());
    let prepared = chat.clone_for_write();
    let row = chat
        .store
        .write(move |tx| {
            let Some(row) = tx.take_pairing_code(&ch, &cd, approve, now)? else { return Ok(None) };
            let action = if approve { "channel.pairing.approved" } else { "channel.pairing.rejected" };
            tx.insert_audit(&NewAuditRow {
                at_ms: now,
                action: action.into(),
                device_id: None,
                remote_ip: None,
                conn_id: None,
                client_id: None,
                detail_json: json!({"channel": ch, "senderId": row.sender_id}).to_string(),
            })?;
            if approve {
                let reply = Reply {
                    key: format!("paired:{ch}:{}:{now}", row.sender_id),
                    chat_id: row.chat_id.clone(),
                    thread_id: None,
                    reply_to: None,
                    text: APPROVED_MESSAGE.into(),
                };
                prepared.enqueue_in(tx, &ch, &reply)?;
            }
            Ok(Some(row))
        })
        .await?;
    chat.kick_outbox();
    row.ok_or_else(|| PairingError::NotFound { channel: channel.to_string(), code: code.to_string() })
}

/// An unknown sender under `dmPolicy: pairing`, as a platform's accept step saw them.
pub(crate) struct Offer<'a> {
    pub channel: &'a str,
    pub sender_id: &'a str,
    pub sender_name: Option<&'a str>,
    /// Where the code is sent (the DM).
    pub chat_id: &'a str,
    /// The outbox key of the code's reply: unique per platform message, so a redelivery enqueues
    /// nothing new.
    pub reply_key: String,
    pub reply_to: Option<String>,
}

/// In the accept step's transaction: a pairing code for `offer` (at most [`MAX_PENDING`] per
/// channel, valid [`TTL_MS`]) with its reply through the outbox, or the reason no code was sent
/// in `detail`.
pub(crate) fn offer_code(
    tx: &pincer_store::Tx<'_>,
    writer: &crate::ReplyWriter,
    offer: Offer<'_>,
    detail: &mut serde_json::Value,
    now: i64,
) -> pincer_store::Result<()> {
    let candidate = PairingCodeRow {
        channel: offer.channel.into(),
        code: new_code(),
        sender_id: offer.sender_id.into(),
        sender_name: offer.sender_name.map(str::to_string),
        chat_id: offer.chat_id.into(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(TTL_MS),
    };
    match tx.pairing_code_for(&candidate, MAX_PENDING)? {
        Some((row, true)) => {
            let reply = Reply {
                key: offer.reply_key,
                chat_id: offer.chat_id.into(),
                thread_id: None,
                reply_to: offer.reply_to,
                text: code_message(offer.channel, &row.code, offer.sender_id),
            };
            writer.enqueue_in(tx, offer.channel, &reply)?;
        }
        Some((_, false)) => detail["reason"] = json!("a pairing code is already pending"),
        None => detail["reason"] = json!("too many pending pairing codes"),
    }
    Ok(())
}

/// The audit row of an access decision, once per message id (none for a group message not
/// addressed to the bot).
pub(crate) fn audit_decision(
    tx: &pincer_store::Tx<'_>,
    decision: crate::access::Decision,
    (channel, external_id): (&str, &str),
    detail: &serde_json::Value,
    now: i64,
) -> pincer_store::Result<()> {
    let Some(action) = decision.audit_action() else { return Ok(()) };
    // Once per message: a redelivered one was decided (and audited) the first time.
    if !tx.first_decision(channel, external_id, now)? {
        return Ok(());
    }
    tx.insert_audit(&NewAuditRow {
        at_ms: now,
        action: action.into(),
        device_id: None,
        remote_ip: None,
        conn_id: None,
        client_id: None,
        detail_json: detail.to_string(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_8_unambiguous_characters() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
        }
    }
}

/// `channels.pairing.*` over the wire schema (OpenClaw's shapes).
pub mod api {
    use pincer_core::config::DmPolicy;
    use pincer_protocol::schema::channels::{
        PairingAccount, PairingApproveResult, PairingDecision, PairingDismissResult, PairingLimits, PairingListParams,
        PairingListResult, PairingRequest,
    };
    use serde_json::{Map, json};

    use super::{MAX_PENDING, PairingError, TTL_MS};
    use crate::Chat;

    /// A bad call: the message says what to send instead.
    #[derive(Debug, thiserror::Error)]
    pub enum ApiError {
        #[error("{0}")]
        Invalid(String),
        #[error("{0}")]
        NotFound(String),
        #[error("{0}")]
        Store(String),
    }

    impl From<PairingError> for ApiError {
        fn from(e: PairingError) -> ApiError {
            match e {
                PairingError::NotFound { .. } => ApiError::NotFound(e.to_string()),
                PairingError::Store(e) => ApiError::Store(e.to_string()),
            }
        }
    }

    fn iso(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default()
    }

    /// The chat channels with DM pairing on: `(name, label)`.
    fn pairing_channels(chat: &Chat) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        let config = chat.config();
        if config.channels.telegram.as_ref().is_some_and(|t| t.dm_policy == DmPolicy::Pairing) {
            out.push((crate::telegram::CHANNEL, "Telegram"));
        }
        let slack = config.channels.slack.as_ref();
        if slack.is_some_and(|s| s.app_token.is_some() && s.dm_policy == DmPolicy::Pairing) {
            out.push((crate::slack::CHANNEL, "Slack"));
        }
        out
    }

    fn label(channel: &str) -> String {
        pincer_delivery::channel::registry::label(channel).to_string()
    }

    pub async fn list(chat: &Chat, p: PairingListParams) -> Result<PairingListResult, ApiError> {
        let rows = super::list(chat, p.channel.as_deref()).await?;
        let accounts = pairing_channels(chat)
            .into_iter()
            .filter(|(name, _)| p.channel.as_deref().is_none_or(|c| c == *name))
            .map(|(name, label)| PairingAccount {
                channel: name.into(),
                channel_label: label.into(),
                account_id: "default".into(),
                account_label: "default".into(),
                notify_supported: true,
                extra: Map::new(),
            })
            .collect();
        let requests = rows
            .into_iter()
            .map(|r| {
                let mut metadata = Map::new();
                if let Some(name) = &r.sender_name {
                    metadata.insert("username".into(), json!(name));
                }
                metadata.insert("chatId".into(), json!(r.chat_id));
                PairingRequest {
                    request_id: format!("{}:{}", r.channel, r.sender_id),
                    channel_label: label(&r.channel),
                    channel: r.channel,
                    account_id: "default".into(),
                    account_label: "default".into(),
                    sender_id: r.sender_id,
                    sender_label: "User id".into(),
                    metadata,
                    created_at: iso(r.created_at_ms),
                    last_seen_at: iso(r.created_at_ms),
                    expires_at: iso(r.expires_at_ms),
                    notify_supported: true,
                    extra: Map::new(),
                }
            })
            .collect();
        Ok(PairingListResult {
            accounts,
            requests,
            command_owner_configured: false,
            limits: PairingLimits { pending_per_account: MAX_PENDING, ttl_ms: TTL_MS },
            extra: Map::new(),
        })
    }

    /// The code a decision names: its `code`, or the live request `requestId` (`<channel>:<sender>`).
    async fn code_of(chat: &Chat, p: &PairingDecision, method: &str) -> Result<String, ApiError> {
        match (&p.code, &p.request_id) {
            (Some(code), _) => Ok(code.trim().to_string()),
            (None, Some(id)) => {
                let rows = super::list(chat, Some(&p.channel)).await?;
                rows.into_iter()
                    .find(|r| format!("{}:{}", r.channel, r.sender_id) == *id)
                    .map(|r| r.code)
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "no pending pairing request {id} on {} (requests expire after an hour): run `pincer pairing list`",
                            p.channel
                        ))
                    })
            }
            (None, None) => Err(ApiError::Invalid(format!("invalid {method} params: requestId or code is required"))),
        }
    }

    pub async fn approve(chat: &Chat, p: PairingDecision) -> Result<PairingApproveResult, ApiError> {
        let code = code_of(chat, &p, "channels.pairing.approve").await?;
        let row = super::decide(chat, &p.channel, &code, true).await?;
        Ok(PairingApproveResult {
            request_id: format!("{}:{}", row.channel, row.sender_id),
            sender_id: row.sender_id,
            notification: "sent".into(),
            extra: Map::new(),
        })
    }

    pub async fn dismiss(chat: &Chat, p: PairingDecision) -> Result<PairingDismissResult, ApiError> {
        let code = code_of(chat, &p, "channels.pairing.dismiss").await?;
        let row = super::decide(chat, &p.channel, &code, false).await?;
        Ok(PairingDismissResult {
            request_id: format!("{}:{}", row.channel, row.sender_id),
            sender_id: row.sender_id,
            extra: Map::new(),
        })
    }
}
