//! The states Pincer's state machines move through, and the classes and reasons that travel with
//! them — one enum each, spelled here once.
//!
//! A run has three outcomes kept apart: its execution ([`ExecStatus`], stored as [`RunStatus`] while
//! it runs), its delivery ([`DeliveryStatus`], with a [`SuppressionReason`] when nothing was sent on
//! purpose) and its completion ([`CompletionStatus`]). Its [`Trigger`] says why it ran, its
//! [`RunErrorReason`] why it failed (a model call's [`ErrorClass`], or the run's own reason), and a
//! `command` payload's progress is its [`CommandState`]. An outbox row moves through
//! [`DeliveryState`], each of its parts through [`PartState`]; every send attempt is recorded as an
//! [`AttemptOutcome`] and a row's last failure as a [`DeliveryErrorClass`]; [`OriginKind`] says who
//! asked for it.
//!
//! Each enum has `as_str` (the wire and database spelling), `FromStr` (an unknown spelling is an
//! [`UnknownState`] naming the accepted ones), `Display`, serde as that spelling, and — with the
//! `sql` feature, which the store enables — rusqlite's `ToSql`/`FromSql`, so a state is a column
//! value without a conversion at the call site. A tidy test in this module fails when one of these
//! spellings appears as a string literal elsewhere in the sources.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A spelling that names no value of the state it was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState {
    /// The state's wire name (`deliveryStatus`, `outbox state`, …).
    pub what: &'static str,
    /// The spelling as read.
    pub value: String,
    /// Every accepted spelling, in declaration order.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\" is not ", self.what, self.value)?;
        match self.expected.split_last() {
            Some((last, [])) => write!(f, "{last}"),
            Some((last, rest)) => write!(f, "{} or {last}", rest.join(", ")),
            None => Ok(()),
        }
    }
}

impl std::error::Error for UnknownState {}

/// Every state enum: its values and their spellings.
pub trait State: Copy + Sized + 'static {
    /// The state's wire name, for messages.
    const WHAT: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// Every spelling, in declaration order.
    const SPELLINGS: &'static [&'static str];
    /// The wire and database spelling.
    fn as_str(self) -> &'static str;
}

macro_rules! state_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $spelling:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and database spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling,)+
                }
            }
        }

        impl State for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [$name] = $name::ALL;
            const SPELLINGS: &'static [&'static str] = &[$($spelling),+];
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<$name, UnknownState> {
                match s {
                    $($spelling => Ok($name::$variant),)+
                    other => Err(UnknownState {
                        what: $what,
                        value: other.to_string(),
                        expected: <$name as State>::SPELLINGS,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<$name> {
                v.as_str()?.parse().map_err(|e: UnknownState| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

state_enum! {
    /// How a run's payload executed — the first of a run's three outcomes.
    pub enum ExecStatus: "status" {
        Ok = "ok",
        Error = "error",
        Skipped = "skipped",
    }
}

state_enum! {
    /// What one heartbeat tick did (`last-heartbeat`'s `status`, OpenClaw's spellings).
    pub enum HeartbeatStatus: "heartbeat status" {
        /// At least one session with queued events got its turn.
        Ran = "ran",
        /// Nothing to do (no events), or the heartbeat is paused (`set-heartbeats`).
        Skipped = "skipped",
        /// A turn failed or no model could run it.
        Failed = "failed",
    }
}

state_enum! {
    /// A stored run's status: `running` until it finishes, then its [`ExecStatus`].
    pub enum RunStatus: "run status" {
        Running = "running",
        Ok = "ok",
        Error = "error",
        Skipped = "skipped",
    }
}

impl RunStatus {
    /// The execution outcome, once the run finished.
    pub fn exec(self) -> Option<ExecStatus> {
        match self {
            RunStatus::Running => None,
            RunStatus::Ok => Some(ExecStatus::Ok),
            RunStatus::Error => Some(ExecStatus::Error),
            RunStatus::Skipped => Some(ExecStatus::Skipped),
        }
    }
}

impl From<ExecStatus> for RunStatus {
    fn from(s: ExecStatus) -> RunStatus {
        match s {
            ExecStatus::Ok => RunStatus::Ok,
            ExecStatus::Error => RunStatus::Error,
            ExecStatus::Skipped => RunStatus::Skipped,
        }
    }
}

state_enum! {
    /// Why a run happened.
    pub enum Trigger: "trigger" {
        /// Its schedule's slot came.
        Scheduled = "scheduled",
        /// A slot missed while the gateway was down, run once after the restart.
        CatchUp = "catch-up",
        /// An early retry after a transient error.
        Retry = "retry",
        /// `cron.run`.
        Manual = "manual",
    }
}

state_enum! {
    /// What became of a run's result — the second outcome, kept apart from execution.
    pub enum DeliveryStatus: "deliveryStatus" {
        Delivered = "delivered",
        /// Not sent: suppressed on purpose (see [`SuppressionReason`]), refused, or failed.
        NotDelivered = "not-delivered",
        /// Maybe sent: an ambiguous send the platform cannot confirm.
        Unknown = "unknown",
        /// The job asks for no delivery.
        NotRequested = "not-requested",
        /// Pincer's own: handed to the outbox, not settled yet (never shown as a run's final status).
        Pending = "pending",
    }
}

state_enum! {
    /// Why a run's result was not sent on purpose (OpenClaw's `deliverySuppressionReason`).
    pub enum SuppressionReason: "deliverySuppressionReason" {
        /// There was nothing to send.
        Empty = "empty",
        /// The reply was `NO_REPLY`.
        Silent = "silent",
        /// OpenClaw's: a heartbeat acknowledgement (kept so stored state from it reads).
        Heartbeat = "heartbeat",
        /// OpenClaw's: a channel transform dropped it.
        ChannelTransform = "channel_transform",
    }
}

state_enum! {
    /// Whether a run did its whole job — the third outcome, from the other two.
    pub enum CompletionStatus: "completionStatus" {
        Succeeded = "succeeded",
        Failed = "failed",
        /// Execution succeeded and the delivery's outcome is unknown.
        Unknown = "unknown",
    }
}

state_enum! {
    /// How far a `command` payload got, noted in its run record so that recovery after a crash can
    /// say whether the command ran.
    pub enum CommandState: "command state" {
        /// Reserved; the command has not been started.
        Pending = "pending",
        /// Starting it failed.
        NotStarted = "not-started",
        /// It was started (committed before the process was spawned).
        Started = "started",
        /// It ended by itself.
        Exited = "exited",
        /// Pincer killed its process group (a time limit, or the gateway stopped).
        Killed = "killed",
    }
}

state_enum! {
    /// The class of a failed model call, in OpenClaw's failover vocabulary; stored on runs as their
    /// `errorReason`.
    pub enum ErrorClass: "model error class" {
        /// The API key was refused (401).
        Auth = "auth",
        /// The key is valid but not allowed to do this (403).
        AuthPermanent = "auth_permanent",
        /// Out of credit or quota (402, `insufficient_quota`, credit-balance messages).
        Billing = "billing",
        /// Too many requests (429).
        RateLimit = "rate_limit",
        /// The provider is overloaded (503, Anthropic 529 / `overloaded_error`).
        Overloaded = "overloaded",
        /// No first token, a stalled stream, or the run's deadline.
        Timeout = "timeout",
        /// Any other 5xx.
        ServerError = "server_error",
        /// The prompt does not fit the model's context window.
        ContextOverflow = "context_overflow",
        /// The model id is unknown to the provider (404).
        ModelNotFound = "model_not_found",
        /// A successful reply with no text in it.
        EmptyResponse = "empty_response",
        /// A request the provider rejected as malformed, or a reply Pincer could not parse.
        Format = "format",
        /// The connection failed or broke.
        Network = "network",
        /// Anything else.
        Unknown = "unknown",
    }
}

impl ErrorClass {
    /// True when the same request may well succeed if sent again a little later.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimit
                | ErrorClass::Overloaded
                | ErrorClass::Timeout
                | ErrorClass::ServerError
                | ErrorClass::Network
        )
    }

    /// True when another model may succeed where this one failed. A prompt that is too long or
    /// malformed fails everywhere, so those do not fall back.
    pub fn allows_fallback(self) -> bool {
        self.is_transient()
            || matches!(
                self,
                ErrorClass::Auth
                    | ErrorClass::AuthPermanent
                    | ErrorClass::Billing
                    | ErrorClass::ModelNotFound
                    | ErrorClass::EmptyResponse
            )
    }
}

state_enum! {
    /// An inbound chat message, stored with the poll offset that confirmed it.
    pub enum InboundState: "inbound message state" {
        /// Waiting for its session's next turn.
        Queued = "queued",
        /// A turn answered it: its reply is in the outbox (same commit).
        Answered = "answered",
        /// Its turn failed; the sender was told so through the outbox.
        Failed = "failed",
    }
}

state_enum! {
    /// A chat channel's inbound connection, as `health`, `channels.status` and `doctor` show it.
    pub enum ConnectionState: "channel connection state" {
        /// Starting, or between polls.
        Connecting = "connecting",
        /// A long poll is open (Telegram `getUpdates`).
        Polling = "polling",
        /// A socket to the platform is open and receiving events (Slack Socket Mode, the Discord
        /// gateway after READY/RESUMED).
        Connected = "connected",
        /// The socket dropped or the platform asked to move (Slack `disconnect`); a new connection
        /// or a resume is under way.
        Reconnecting = "reconnecting",
        /// The last request failed; the next one waits (`nextAttemptAtMs`).
        Backoff = "backoff",
        /// The platform refused the token: the channel stopped and says so; it never spins.
        CredentialsRejected = "credentials-rejected",
        /// The gateway is stopping.
        Stopped = "stopped",
    }
}

state_enum! {
    /// A run's own failure reasons, beside the model classes.
    pub enum RunFailure: "run error reason" {
        /// The gateway stopped during the run.
        Interrupted = "interrupted",
        /// A command exited with a code other than 0, or was killed by a signal.
        ExitCode = "exit_code",
        /// A command (or its supervisor) could not be started or waited for.
        Spawn = "spawn",
        /// The store refused a write the run needed.
        Store = "store",
        /// The delivery route did not resolve, so nothing ran.
        DeliveryRoute = "delivery_route",
        /// The gateway has no agent runner.
        NoAgent = "no_agent",
        /// The payload is not one this runner runs.
        Unsupported = "unsupported",
        /// The model kept calling tools past `agents.defaults.maxToolSteps`.
        ToolSteps = "tool_steps",
    }
}

/// Why a run failed (its `errorReason`): a model call's class, or a reason of the run's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunErrorReason {
    Model(ErrorClass),
    Run(RunFailure),
}

impl RunErrorReason {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunErrorReason::Model(c) => c.as_str(),
            RunErrorReason::Run(r) => r.as_str(),
        }
    }

    /// True when the run may well succeed if tried again a little later.
    pub fn is_transient(self) -> bool {
        matches!(self, RunErrorReason::Model(c) if c.is_transient())
    }
}

impl From<ErrorClass> for RunErrorReason {
    fn from(c: ErrorClass) -> RunErrorReason {
        RunErrorReason::Model(c)
    }
}

impl From<RunFailure> for RunErrorReason {
    fn from(r: RunFailure) -> RunErrorReason {
        RunErrorReason::Run(r)
    }
}

impl FromStr for RunErrorReason {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<RunErrorReason, UnknownState> {
        if let Ok(r) = s.parse::<RunFailure>() {
            return Ok(RunErrorReason::Run(r));
        }
        s.parse::<ErrorClass>().map(RunErrorReason::Model).map_err(|mut e| {
            e.what = "errorReason";
            e
        })
    }
}

impl fmt::Display for RunErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RunErrorReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RunErrorReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RunErrorReason, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

state_enum! {
    /// An outbox row's state: `pending → sending → delivered | unknown | dead`.
    pub enum DeliveryState: "delivery state" {
        /// Waiting for its turn (or its next attempt).
        Pending = "pending",
        /// Leased by a worker that is sending it.
        Sending = "sending",
        /// Every part was accepted by the platform.
        Delivered = "delivered",
        /// A part may or may not have arrived, and the platform cannot say.
        Unknown = "unknown",
        /// It will not be sent: a permanent error, attempts used up, or cancelled.
        Dead = "dead",
    }
}

impl DeliveryState {
    /// True for the states a row ends in.
    pub fn is_terminal(self) -> bool {
        matches!(self, DeliveryState::Delivered | DeliveryState::Unknown | DeliveryState::Dead)
    }
}

state_enum! {
    /// One rendered part of an outbox row: `pending → dispatching → sent`, or `unknown` when its send
    /// was interrupted or its answer lost.
    pub enum PartState: "part state" {
        Pending = "pending",
        /// About to be sent (committed before the request leaves).
        Dispatching = "dispatching",
        Sent = "sent",
        Unknown = "unknown",
    }
}

state_enum! {
    /// Who asked for a delivery.
    pub enum OriginKind: "origin kind" {
        /// A cron run's result (its id is the run id).
        Cron = "cron",
        /// A cron job's failure alert.
        Alert = "alert",
        /// The `send` method.
        Send = "send",
        /// The answer to a message a user sent the bot (inbound chat).
        Reply = "reply",
        /// An `agent` call's reply sent on with `deliver` (its id is the run id).
        AgentReply = "agent-reply",
    }
}

state_enum! {
    /// What one send attempt (or a step of the row's history) came to, for `deliveries show`.
    pub enum AttemptOutcome: "attempt outcome" {
        /// The platform accepted the part.
        Sent = "sent",
        /// After an ambiguous send, the part was found on the platform.
        Reconciled = "reconciled",
        /// Provably not sent (connection refused, …).
        NotSent = "not-sent",
        /// Refused with a rate limit (not charged as an attempt).
        RateLimited = "rate-limited",
        /// May or may not have arrived.
        Ambiguous = "ambiguous",
        /// Will never succeed as is.
        Permanent = "permanent",
        /// After an ambiguous send, the part was not found on the platform: it is sent again.
        Missing = "missing",
        /// Looking for a part on the platform failed.
        LookupFailed = "lookup-failed",
        /// The worker's lease ran out and the dispatcher took the row back.
        LeaseExpired = "lease-expired",
        /// `deliveries cancel` asked a row being sent to stop.
        CancelRequested = "cancel-requested",
        /// The row was cancelled.
        Cancelled = "cancelled",
    }
}

state_enum! {
    /// Why an outbox row's last attempt failed (`lastErrorClass`).
    pub enum DeliveryErrorClass: "delivery error class" {
        /// Provably not sent; retried with backoff.
        NotSent = "not_sent",
        /// Refused with a rate limit; retried when it ends.
        RateLimited = "rate_limited",
        /// May or may not have arrived.
        Ambiguous = "ambiguous",
        /// The channel's credentials were refused.
        Auth = "auth",
        /// The destination does not exist or is unreachable.
        Target = "target",
        /// The platform refused the content.
        Payload = "payload",
        /// Pincer's configuration forbids the send, or the channel is not configured.
        Config = "config",
        /// The store refused to record the send before it was made.
        Store = "store",
        /// `deliveries cancel`.
        Cancelled = "cancelled",
    }
}

state_enum! {
    /// `chat.send`'s answer.
    pub enum ChatSendStatus: "chat.send status" {
        /// A new run was started; its reply streams as `chat` events.
        Started = "started",
        /// A run with this `idempotencyKey` is still going.
        InFlight = "in_flight",
    }
}

state_enum! {
    /// A `chat` event's `state`: deltas, then one terminal state.
    pub enum ChatState: "chat state" {
        Delta = "delta",
        Final = "final",
        /// Stopped by `chat.abort`.
        Aborted = "aborted",
        Error = "error",
    }
}

state_enum! {
    /// A `chat` error event's `errorKind` (OpenClaw's coarse classes of [`ErrorClass`]).
    pub enum ChatErrorKind: "chat error kind" {
        Refusal = "refusal",
        Timeout = "timeout",
        RateLimit = "rate_limit",
        ContextLength = "context_length",
        Unknown = "unknown",
    }
}

impl From<ErrorClass> for ChatErrorKind {
    fn from(class: ErrorClass) -> ChatErrorKind {
        match class {
            ErrorClass::Timeout => ChatErrorKind::Timeout,
            ErrorClass::RateLimit => ChatErrorKind::RateLimit,
            ErrorClass::ContextOverflow => ChatErrorKind::ContextLength,
            _ => ChatErrorKind::Unknown,
        }
    }
}

state_enum! {
    /// What a `chat.history` answer asked with a `cursor` is.
    pub enum HistoryDeltaKind: "chat.history kind" {
        /// The entries added after the cursor.
        Delta = "delta",
        /// The client must fetch a fresh page.
        Reset = "reset",
    }
}

state_enum! {
    /// Why `cron.scratch.set` wrote nothing (OpenClaw's spelling).
    pub enum ScratchConflictReason: "cron.scratch.set reason" {
        /// `expectedRevision` was not the scratch's current revision.
        RevisionConflict = "revision-conflict",
    }
}

/// Every state enum's name and spellings (for the tidy test and for documentation).
pub fn all_spellings() -> Vec<(&'static str, &'static [&'static str])> {
    fn of<T: State>() -> (&'static str, &'static [&'static str]) {
        (T::WHAT, T::SPELLINGS)
    }
    vec![
        of::<ExecStatus>(),
        of::<RunStatus>(),
        of::<Trigger>(),
        of::<DeliveryStatus>(),
        of::<SuppressionReason>(),
        of::<CompletionStatus>(),
        of::<CommandState>(),
        of::<ErrorClass>(),
        of::<RunFailure>(),
        of::<DeliveryState>(),
        of::<PartState>(),
        of::<OriginKind>(),
        of::<AttemptOutcome>(),
        of::<DeliveryErrorClass>(),
        of::<InboundState>(),
        of::<ConnectionState>(),
        of::<ChatSendStatus>(),
        of::<ChatState>(),
        of::<ChatErrorKind>(),
        of::<HistoryDeltaKind>(),
        of::<ScratchConflictReason>(),
    ]
}

#[cfg(test)]
mod tidy;

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<
        T: State + FromStr<Err = UnknownState> + Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    >() {
        for v in T::ALL {
            assert_eq!(v.as_str().parse::<T>().as_ref(), Ok(v));
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
        }
        assert_eq!(T::ALL.len(), T::SPELLINGS.len());
    }

    #[test]
    fn every_state_round_trips_through_its_spelling_and_serde() {
        round_trips::<ExecStatus>();
        round_trips::<RunStatus>();
        round_trips::<Trigger>();
        round_trips::<DeliveryStatus>();
        round_trips::<SuppressionReason>();
        round_trips::<CompletionStatus>();
        round_trips::<CommandState>();
        round_trips::<ErrorClass>();
        round_trips::<RunFailure>();
        round_trips::<DeliveryState>();
        round_trips::<PartState>();
        round_trips::<OriginKind>();
        round_trips::<AttemptOutcome>();
        round_trips::<DeliveryErrorClass>();
        for r in
            RunFailure::ALL.iter().map(|r| RunErrorReason::from(*r)).chain(ErrorClass::ALL.iter().map(|c| (*c).into()))
        {
            assert_eq!(r.as_str().parse::<RunErrorReason>(), Ok(r));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::Value::from(r.as_str()));
        }
    }

    #[test]
    fn an_unknown_spelling_names_the_state_and_what_it_accepts() {
        let e = "sent".parse::<CompletionStatus>().unwrap_err();
        assert_eq!(e.to_string(), "completionStatus \"sent\" is not succeeded, failed or unknown");
        let e = serde_json::from_str::<DeliveryStatus>("\"Delivered\"").unwrap_err();
        assert!(e.to_string().starts_with("deliveryStatus \"Delivered\" is not delivered, not-delivered"), "{e}");
        let e = "boom".parse::<RunErrorReason>().unwrap_err();
        assert!(e.to_string().starts_with("errorReason \"boom\" is not auth, "), "{e}");
    }

    #[test]
    fn the_model_classes_and_the_run_reasons_never_share_a_spelling() {
        for r in RunFailure::ALL {
            assert!(r.as_str().parse::<ErrorClass>().is_err(), "{r} is also a model class");
        }
    }
}
