//! The fault matrix of the channel adapters: every adapter (Discord, Telegram, Slack, webhook) ×
//! every transport fault, each cell sent through the real outbox (SQLite store, leases, the
//! not-sent / rate-limited / ambiguous rules, backoff on a `FakeClock`) to a fake platform server
//! on 127.0.0.1.
//!
//! A cell reads `<attempt outcome>, +<fake-clock wait> <next outcome>, … ⇒ <final row state>
//! [attempts charged, requests that reached the fake, messages the fake accepted]`. The whole
//! matrix is one expected table, so a change to any cell shows up as a one-line diff.
//!
//! Every request gets a 2 s timeout except in the two "no answer" rows, where it is 300 ms (the
//! one place real time stands in for the clock: reqwest's request timeout). Time between attempts
//! is the outbox's, on the fake clock, which the driver moves exactly to the row's next attempt.

use pincer_protocol::state::{AttemptOutcome, DeliveryState, OriginKind};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use expect_test::expect;
use pincer_core::config::{DeliveryConfig, DiscordConfig, SlackConfig, TelegramConfig, WebhookConfig};
use pincer_core::{Clock, EventBus, FakeClock, Metrics};
use pincer_cron::{Origin, Route};
use pincer_delivery::channel::{Channel, Discord, Slack, Telegram, Webhook};
use pincer_delivery::{Outbox, OutboxDeps, TooLong};
use pincer_store::{DeliveryDetail, NewDelivery, Store};
use pincer_testkit::fakes::discord::{self, FakeDiscord};
use pincer_testkit::fakes::slack::{self, FakeSlack};
use pincer_testkit::fakes::telegram::{self, FakeTelegram};
use pincer_testkit::fakes::webhook::{self, FakeWebhook};

/// Where the fake clock starts.
const START_MS: i64 = 1_700_000_000_000;
/// Attempts a row may be charged before it goes dead (429s are not charged).
const MAX_ATTEMPTS: u32 = 3;
/// The request timeout of every cell but the "no answer" ones.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The request timeout of the "no answer" cells: short, since it is real time.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
/// What a 429 asks to wait.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The message of every cell. It quotes phrases Telegram uses in its refusals, so a classifier
/// that reads a garbled answer (which echoes the message) instead of Telegram's `description`
/// would take a delivered message for a refused one.
const TEXT: &str = "Nightly report: chat not found errors are down 40%; bot was blocked by the user twice.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    Discord,
    Telegram,
    Slack,
    Webhook,
}

const PLATFORMS: [Platform; 4] = [Platform::Discord, Platform::Telegram, Platform::Slack, Platform::Webhook];

impl Platform {
    fn name(self) -> &'static str {
        match self {
            Platform::Discord => "discord",
            Platform::Telegram => "telegram",
            Platform::Slack => "slack",
            Platform::Webhook => "webhook",
        }
    }
}

/// One scripted misbehaviour, in terms every fake understands.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A 429 with [`RETRY_AFTER`], nothing recorded.
    RateLimited,
    /// This 5xx, nothing recorded.
    Status(u16),
    /// Answer normally after this long.
    Delay(Duration),
    /// Read the request, never answer, nothing recorded.
    Hang,
    /// Record the message, never answer.
    AcceptThenHang,
    /// Record the message, answer 200 with a body cut short.
    AcceptThenMalformed,
    /// Reset the connection before answering, nothing recorded.
    Reset,
    /// Record the message, send the head and half the body, reset the connection.
    AcceptThenBreakOff,
}

/// One row of the matrix: a fault scenario, applied to every adapter.
struct Scenario {
    name: &'static str,
    /// `None`: the adapter points at a closed port on 127.0.0.1 (connection refused).
    faults: Option<Vec<Fault>>,
    timeout: Duration,
    /// What the first attempt's detail says, so each fault provably happened where its name says.
    first_detail: &'static str,
}

fn scenarios() -> Vec<Scenario> {
    let row = |name, faults: Vec<Fault>, timeout, first_detail| Scenario {
        name,
        faults: Some(faults),
        timeout,
        first_detail,
    };
    vec![
        Scenario { name: "connection refused", faults: None, timeout: TIMEOUT, first_detail: "cannot connect" },
        row("429 ×4 (retry after 2 s), then ok", vec![Fault::RateLimited; 4], TIMEOUT, "(retry after 2000 ms)"),
        row("HTTP 500, then ok", vec![Fault::Status(500)], TIMEOUT, "answered HTTP 500"),
        row("HTTP 502, then ok", vec![Fault::Status(502)], TIMEOUT, "answered HTTP 502"),
        row("HTTP 503, then ok", vec![Fault::Status(503)], TIMEOUT, "answered HTTP 503"),
        row("slow: answers after 400 ms (timeout 2 s)", vec![Fault::Delay(Duration::from_millis(400))], TIMEOUT, ""),
        row(
            "no answer, not recorded (timeout 300 ms)",
            vec![Fault::Hang],
            SHORT_TIMEOUT,
            "no answer within the timeout after the request was sent",
        ),
        row(
            "recorded, then no answer (timeout 300 ms)",
            vec![Fault::AcceptThenHang],
            SHORT_TIMEOUT,
            "no answer within the timeout after the request was sent",
        ),
        // The webhook's first attempt is the receipt: the idempotency key stands in for an id.
        row("recorded, then 200 with a malformed body", vec![Fault::AcceptThenMalformed], TIMEOUT, ""),
        row(
            "reset before answering, not recorded",
            vec![Fault::Reset],
            TIMEOUT,
            "the connection failed after the request was sent",
        ),
        row(
            "recorded, then reset mid-response",
            vec![Fault::AcceptThenBreakOff],
            TIMEOUT,
            "answered HTTP 200 OK but the body broke off",
        ),
    ]
}

/// A running fake platform.
enum Fake {
    Discord(FakeDiscord),
    Telegram(FakeTelegram),
    Slack(FakeSlack),
    Webhook(FakeWebhook),
}

impl Fake {
    async fn start(platform: Platform) -> Fake {
        match platform {
            Platform::Discord => Fake::Discord(FakeDiscord::start().await),
            Platform::Telegram => Fake::Telegram(FakeTelegram::start().await),
            Platform::Slack => Fake::Slack(FakeSlack::start().await),
            Platform::Webhook => Fake::Webhook(FakeWebhook::start().await),
        }
    }

    /// What the adapter's base URL (or, for the webhook, the target URL) is set to.
    fn url(&self) -> String {
        match self {
            Fake::Discord(f) => f.base_url(),
            Fake::Telegram(f) => f.base_url(),
            Fake::Slack(f) => f.base_url(),
            Fake::Webhook(f) => f.url(),
        }
    }

    fn push(&self, fault: Fault) {
        match self {
            Fake::Discord(f) => f.push_fault(match fault {
                Fault::RateLimited => discord::Fault::RateLimited { retry_after: RETRY_AFTER, global: false },
                Fault::Status(code) => discord::Fault::ServerError(code),
                Fault::Delay(d) => discord::Fault::Delay(d),
                Fault::Hang => discord::Fault::Hang,
                Fault::AcceptThenHang => discord::Fault::AcceptThenHang,
                Fault::AcceptThenMalformed => discord::Fault::AcceptThenMalformed,
                Fault::Reset => discord::Fault::Reset,
                Fault::AcceptThenBreakOff => discord::Fault::AcceptThenBreakOff,
            }),
            Fake::Telegram(f) => f.push_fault(match fault {
                Fault::RateLimited => telegram::Fault::RateLimited { retry_after_secs: RETRY_AFTER.as_secs() },
                Fault::Status(code) => telegram::Fault::ServerError(code),
                Fault::Delay(d) => telegram::Fault::Delay(d),
                Fault::Hang => telegram::Fault::Hang,
                Fault::AcceptThenHang => telegram::Fault::AcceptThenHang,
                Fault::AcceptThenMalformed => telegram::Fault::AcceptThenMalformed,
                Fault::Reset => telegram::Fault::Reset,
                Fault::AcceptThenBreakOff => telegram::Fault::AcceptThenBreakOff,
            }),
            Fake::Slack(f) => f.push_fault(match fault {
                Fault::RateLimited => slack::Fault::RateLimited { retry_after: RETRY_AFTER },
                Fault::Status(code) => slack::Fault::ServerError(code),
                Fault::Delay(d) => slack::Fault::Delay(d),
                Fault::Hang => slack::Fault::Hang,
                Fault::AcceptThenHang => slack::Fault::AcceptThenHang,
                Fault::AcceptThenMalformed => slack::Fault::AcceptThenMalformed,
                Fault::Reset => slack::Fault::Reset,
                Fault::AcceptThenBreakOff => slack::Fault::AcceptThenBreakOff,
            }),
            Fake::Webhook(f) => f.push_fault(match fault {
                Fault::RateLimited => webhook::Fault::RateLimited { retry_after: RETRY_AFTER },
                Fault::Status(code) => webhook::Fault::Status(code),
                Fault::Delay(d) => webhook::Fault::Delay(d),
                Fault::Hang => webhook::Fault::Hang,
                Fault::AcceptThenHang => webhook::Fault::AcceptThenHang,
                Fault::AcceptThenMalformed => webhook::Fault::AcceptThenMalformed,
                Fault::Reset => webhook::Fault::Reset,
                Fault::AcceptThenBreakOff => webhook::Fault::AcceptThenBreakOff,
            }),
        }
    }

    /// Send requests that reached the fake, including faulted and deduplicated ones.
    fn requests(&self) -> usize {
        match self {
            Fake::Discord(f) => f.requests(),
            Fake::Telegram(f) => f.requests(),
            Fake::Slack(f) => f.requests(),
            Fake::Webhook(f) => f.requests(),
        }
    }

    /// Messages the fake accepted (a deduplicated resend is not a second message).
    fn accepted(&self) -> usize {
        match self {
            Fake::Discord(f) => f.messages().len(),
            Fake::Telegram(f) => f.messages().len(),
            Fake::Slack(f) => f.messages().len(),
            Fake::Webhook(f) => f.deliveries().len(),
        }
    }
}

/// The adapter for `platform`, pointed at `url` (a fake's, or a closed port's).
fn adapter(platform: Platform, url: &str, timeout: Duration) -> (Arc<dyn Channel>, String) {
    match platform {
        Platform::Discord => {
            let config = DiscordConfig {
                token: FakeDiscord::TOKEN.into(),
                api_base_url: url.into(),
                ..DiscordConfig::default()
            };
            (Arc::new(Discord::new(&config, timeout).unwrap()), "channel:111".into())
        }
        Platform::Telegram => {
            let config = TelegramConfig {
                bot_token: FakeTelegram::TOKEN.into(),
                api_root: url.into(),
                ..TelegramConfig::default()
            };
            (Arc::new(Telegram::new(&config, timeout).unwrap()), "-1001234567890".into())
        }
        Platform::Slack => {
            let config =
                SlackConfig { bot_token: FakeSlack::TOKEN.into(), api_base_url: url.into(), ..SlackConfig::default() };
            (Arc::new(Slack::new(&config, timeout).unwrap()), "channel:C0123ABCD".into())
        }
        Platform::Webhook => {
            let config = WebhookConfig { allow_private_network: true };
            (Arc::new(Webhook::new(&config, None, timeout).unwrap()), url.into())
        }
    }
}

/// An address on 127.0.0.1 where nothing listens.
fn closed_port_url(platform: Platform) -> String {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    match platform {
        Platform::Discord => format!("http://127.0.0.1:{port}/api/v10"),
        Platform::Telegram => format!("http://127.0.0.1:{port}"),
        Platform::Slack => format!("http://127.0.0.1:{port}/api"),
        Platform::Webhook => format!("http://127.0.0.1:{port}/hook"),
    }
}

/// Polls `store` (real time, at most 10 s) until `done` holds for the row, and returns it.
async fn wait_for_row(store: &Store, id: &str, what: &str, done: impl Fn(&DeliveryDetail) -> bool) -> DeliveryDetail {
    let started = std::time::Instant::now();
    loop {
        let key = id.to_string();
        let detail = store.read(move |rd| rd.get_delivery(&key)).await.unwrap().expect("the row exists");
        if done(&detail) {
            return detail;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: the row never got there: {detail:#?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends [`TEXT`] through a fresh outbox (store in `dir`, a [`FakeClock`] at [`START_MS`]) over
/// `channel`, moving the clock to each retry until the row is terminal; returns it and the outbox.
async fn send_one(
    dir: &std::path::Path,
    name: &str,
    channel: Arc<dyn Channel>,
    to: String,
    timeout: Duration,
    what: &str,
) -> (DeliveryDetail, Outbox) {
    let store = Store::open(&dir.join("pincer.db")).unwrap();
    let clock = FakeClock::new(START_MS);
    let config = DeliveryConfig {
        max_attempts: MAX_ATTEMPTS,
        // No client-side pacing: every wait in the matrix is the platform's or the backoff's.
        rate_limits: PLATFORMS.iter().map(|p| (p.name().to_string(), 0.0)).collect::<BTreeMap<_, _>>(),
        request_timeout_ms: timeout.as_millis() as u64,
        max_parallel: 4,
        ..DeliveryConfig::default()
    };
    let (settled, _settlements) = tokio::sync::mpsc::unbounded_channel();
    let outbox = Outbox::start(OutboxDeps {
        store: store.clone(),
        clock: clock.shared(),
        events: EventBus::default(),
        metrics: Arc::new(Metrics::default()),
        generation: 1,
        config,
        channels: vec![channel],
        settled,
        failpoints: Default::default(),
        supervisor: pincer_core::Supervisor::new(clock.shared(), Arc::new(Metrics::default())),
    })
    .await
    .unwrap();
    let route = Route { channel: name.into(), to, thread_id: None, account_id: None, source: "explicit".into() };
    let origin = Origin { kind: OriginKind::Send, id: None, best_effort: false };
    let row = outbox.prepare(&route, TEXT, "fault-matrix", &origin, None, TooLong::Refuse).unwrap();
    assert_eq!(row.parts.len(), 1, "{what}: one part");
    let id = outbox.enqueue(row).await.unwrap().id;

    // Each time the row waits for a retry, move the clock exactly to it.
    let detail = loop {
        let now = clock.now_ms();
        let detail = wait_for_row(&store, &id, what, |d| {
            matches!(d.row.state.as_str(), "delivered" | "dead" | "unknown")
                || (d.row.state == DeliveryState::Pending && d.row.next_attempt_at_ms > now)
        })
        .await;
        if detail.row.state != DeliveryState::Pending {
            break detail;
        }
        let last = detail.attempts.last().expect("a row waits only after an attempt");
        if last.outcome == AttemptOutcome::RateLimited {
            // The 429's delay is a pause of the whole channel, not an attempt.
            let pause = outbox.pauses().remove(name).expect("a rate limit pauses the channel");
            assert_eq!(pause.until_ms, Some(detail.row.next_attempt_at_ms), "{what}: {pause:?}");
            assert_eq!(detail.row.next_attempt_at_ms - last.at_ms, RETRY_AFTER.as_millis() as i64, "{what}");
        }
        clock.set(detail.row.next_attempt_at_ms);
    };
    (detail, outbox)
}

/// Runs one cell: a fresh store, fake and outbox; one message; the clock moved to each retry.
async fn run_cell(platform: Platform, scenario: &Scenario) -> String {
    let what = format!("{} × {}", platform.name(), scenario.name);
    let fake = match &scenario.faults {
        Some(faults) => {
            let fake = Fake::start(platform).await;
            faults.iter().for_each(|f| fake.push(*f));
            Some(fake)
        }
        None => None,
    };
    let url = fake.as_ref().map(Fake::url).unwrap_or_else(|| closed_port_url(platform));
    let (channel, to) = adapter(platform, &url, scenario.timeout);

    let dir = tempfile::tempdir().unwrap();
    let (detail, outbox) = send_one(dir.path(), platform.name(), channel, to, scenario.timeout, &what).await;
    outbox.shutdown();
    let first = detail.attempts.first().and_then(|a| a.detail.clone()).unwrap_or_default();
    assert!(first.contains(scenario.first_detail), "{what}: the first attempt says {first:?}");

    let mut cell = String::new();
    let mut previous: Option<i64> = None;
    for attempt in &detail.attempts {
        if let Some(at) = previous {
            cell.push_str(&format!(", +{}s ", (attempt.at_ms - at) / 1000));
        }
        cell.push_str(attempt.outcome.as_str());
        previous = Some(attempt.at_ms);
    }
    let (requests, accepted) = fake.as_ref().map_or((0, 0), |f| (f.requests(), f.accepted()));
    format!("{cell} ⇒ {} [{}, {requests}, {accepted}]", detail.row.state, detail.row.attempts)
}

/// One column of the matrix: every scenario against one adapter, in order.
async fn column(platform: Platform) -> Vec<String> {
    let mut cells = Vec::new();
    for scenario in &scenarios() {
        cells.push(run_cell(platform, scenario).await);
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_under_every_fault() {
    let columns = futures_util::future::join_all(PLATFORMS.map(|p| tokio::spawn(column(p)))).await;
    let columns: Vec<Vec<String>> = columns.into_iter().map(Result::unwrap).collect();
    let mut table = String::from("| fault | discord | telegram | slack | webhook |\n|---|---|---|---|---|\n");
    for (i, scenario) in scenarios().iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c[i].as_str()).collect();
        table.push_str(&format!("| {} | {} |\n", scenario.name, cells.join(" | ")));
    }
    expect![[r#"
        | fault | discord | telegram | slack | webhook |
        |---|---|---|---|---|
        | connection refused | not-sent, +5s not-sent, +25s not-sent ⇒ dead [3, 0, 0] | not-sent, +5s not-sent, +25s not-sent ⇒ dead [3, 0, 0] | not-sent, +5s not-sent, +25s not-sent ⇒ dead [3, 0, 0] | not-sent, +5s not-sent, +25s not-sent ⇒ dead [3, 0, 0] |
        | 429 ×4 (retry after 2 s), then ok | rate-limited, +2s rate-limited, +2s rate-limited, +2s rate-limited, +2s sent ⇒ delivered [1, 5, 1] | rate-limited, +2s rate-limited, +2s rate-limited, +2s rate-limited, +2s sent ⇒ delivered [1, 5, 1] | rate-limited, +2s rate-limited, +2s rate-limited, +2s rate-limited, +2s sent ⇒ delivered [1, 5, 1] | rate-limited, +2s rate-limited, +2s rate-limited, +2s rate-limited, +2s sent ⇒ delivered [1, 5, 1] |
        | HTTP 500, then ok | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 0] | ambiguous, +5s missing, +0s sent ⇒ delivered [2, 2, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
        | HTTP 502, then ok | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 0] | ambiguous, +5s missing, +0s sent ⇒ delivered [2, 2, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
        | HTTP 503, then ok | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 0] | ambiguous, +5s missing, +0s sent ⇒ delivered [2, 2, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
        | slow: answers after 400 ms (timeout 2 s) | sent ⇒ delivered [1, 1, 1] | sent ⇒ delivered [1, 1, 1] | sent ⇒ delivered [1, 1, 1] | sent ⇒ delivered [1, 1, 1] |
        | no answer, not recorded (timeout 300 ms) | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 0] | ambiguous, +5s missing, +0s sent ⇒ delivered [2, 2, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
        | recorded, then no answer (timeout 300 ms) | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 1] | ambiguous, +5s reconciled ⇒ delivered [2, 1, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
        | recorded, then 200 with a malformed body | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 1] | ambiguous, +5s reconciled ⇒ delivered [2, 1, 1] | sent ⇒ delivered [1, 1, 1] |
        | reset before answering, not recorded | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 0] | ambiguous, +5s missing, +0s sent ⇒ delivered [2, 2, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
        | recorded, then reset mid-response | ambiguous, +5s sent ⇒ delivered [2, 2, 1] | ambiguous ⇒ unknown [1, 1, 1] | ambiguous, +5s reconciled ⇒ delivered [2, 1, 1] | ambiguous, +5s sent ⇒ delivered [2, 2, 1] |
    "#]]
    .assert_eq(&table);
}

/// `(outcome, +seconds since the previous attempt)` of each attempt.
fn timeline(detail: &DeliveryDetail) -> Vec<(String, i64)> {
    let mut previous = detail.attempts.first().map_or(0, |a| a.at_ms);
    detail
        .attempts
        .iter()
        .map(|a| {
            let step = (a.at_ms - previous) / 1000;
            previous = a.at_ms;
            (a.outcome.as_str().to_string(), step)
        })
        .collect()
}

/// Slack posted the message, then failed the answer: Pincer does not look until a request sent
/// when this one was could no longer land (the request time limit, 30 s here, past the 5 s
/// backoff), then finds the message by its metadata and records its `ts` — one post, no resend.
#[tokio::test]
async fn slack_looks_for_an_ambiguous_part_only_after_the_request_time_limit() {
    let fake = FakeSlack::start().await;
    fake.push_fault(slack::Fault::AcceptThenServerError(500));
    let timeout = Duration::from_secs(30);
    let (channel, to) = adapter(Platform::Slack, &fake.base_url(), timeout);
    let dir = tempfile::tempdir().unwrap();
    let (detail, outbox) = send_one(dir.path(), "slack", channel, to, timeout, "slack reconcile").await;
    outbox.shutdown();
    assert_eq!(detail.row.state, DeliveryState::Delivered, "{detail:#?}");
    assert_eq!(timeline(&detail), [("ambiguous".to_string(), 0), ("reconciled".to_string(), 30)], "{detail:#?}");
    let messages = fake.messages();
    assert_eq!((messages.len(), fake.requests()), (1, 1), "found, not resent");
    assert_eq!(detail.attempts[1].detail.as_deref(), Some(messages[0].ts.as_str()));
    assert_eq!(detail.parts[0].platform_message_id.as_deref(), Some(messages[0].ts.as_str()));
    let reads = fake.reads();
    assert_eq!(reads.len(), 1, "one look, at +30 s: {reads:?}");
    assert_eq!(reads[0].param("oldest"), Some(format!("{}.000000", START_MS / 1000 - 60).as_str()));
}

/// Without the history scope Slack cannot be searched: the part is reported `unknown` with the
/// reason and the command to resend it, never resent blindly.
#[tokio::test]
async fn slack_without_the_history_scope_reports_an_ambiguous_part_unknown() {
    let fake = FakeSlack::start().await;
    fake.push_fault(slack::Fault::AcceptThenServerError(502));
    fake.refuse_reads(Some("missing_scope"));
    let (channel, to) = adapter(Platform::Slack, &fake.base_url(), TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let (detail, outbox) = send_one(dir.path(), "slack", channel, to, TIMEOUT, "slack no scope").await;
    outbox.shutdown();
    assert_eq!(detail.row.state, DeliveryState::Unknown, "{detail:#?}");
    assert_eq!(timeline(&detail), [("ambiguous".to_string(), 0), ("lookup-failed".to_string(), 5)]);
    let error = detail.row.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("missing_scope") && error.contains("pincer deliveries retry"),
        "the reason and the way out: {error}"
    );
    assert_eq!((fake.messages().len(), fake.requests()), (1, 1), "not resent");
}

// ── The outbox's own faults: a store that refuses writes, a worker that dies, a hung channel ──

/// An outbox on a fresh store and a [`FakeClock`], with fail points armed by `failpoints`.
struct Rig {
    outbox: Outbox,
    store: Store,
    clock: FakeClock,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

/// Every cell's outbox settings: no client-side pacing, [`MAX_ATTEMPTS`], 4 conversations per channel.
fn rig_config(timeout: Duration) -> DeliveryConfig {
    DeliveryConfig {
        max_attempts: MAX_ATTEMPTS,
        rate_limits: PLATFORMS.iter().map(|p| (p.name().to_string(), 0.0)).collect::<BTreeMap<_, _>>(),
        request_timeout_ms: timeout.as_millis() as u64,
        max_parallel: 4,
        ..DeliveryConfig::default()
    }
}

async fn rig(channels: Vec<Arc<dyn Channel>>, config: DeliveryConfig, failpoints: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pincer.db")).unwrap();
    let clock = FakeClock::new(START_MS);
    let metrics = Arc::new(Metrics::default());
    let (settled, _) = tokio::sync::mpsc::unbounded_channel();
    let outbox = Outbox::start(OutboxDeps {
        store: store.clone(),
        clock: clock.shared(),
        events: EventBus::default(),
        metrics: metrics.clone(),
        generation: 1,
        config,
        channels,
        settled,
        failpoints: pincer_core::crashpoint::Failpoints::parse(failpoints).unwrap(),
        supervisor: pincer_core::Supervisor::new(clock.shared(), metrics.clone()),
    })
    .await
    .unwrap();
    Rig { outbox, store, clock, metrics, _dir: dir }
}

impl Rig {
    /// Enqueues `text` to `to` on `channel` (a `send`, refused if too long) and returns its id.
    async fn send(&self, channel: &str, to: &str, text: &str) -> String {
        let route = Route {
            channel: channel.into(),
            to: to.into(),
            thread_id: None,
            account_id: None,
            source: "explicit".into(),
        };
        let origin = Origin { kind: OriginKind::Send, id: None, best_effort: false };
        let key = format!("{channel}:{to}:{text}");
        let row = self.outbox.prepare(&route, text, &key, &origin, None, TooLong::Refuse).unwrap();
        self.outbox.enqueue(row).await.unwrap().id
    }

    async fn row(&self, id: &str) -> DeliveryDetail {
        let key = id.to_string();
        self.store.read(move |rd| rd.get_delivery(&key)).await.unwrap().expect("the row exists")
    }

    /// Store writes the outbox had to try again, of every step but `outbox.dispatching` (which
    /// puts the row back instead of waiting).
    fn store_retries(&self) -> u64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("pincer_outbox_store_errors_total{") && !l.contains("outbox.dispatching"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    }
}

fn terminal(d: &DeliveryDetail) -> bool {
    matches!(d.row.state.as_str(), "delivered" | "dead" | "unknown")
}

/// Moves the clock only where the outbox waits, until every row in `ids` is terminal: after the
/// n-th failed store write in a row by [`pincer_delivery::outbox::STORE_RETRY_MS`]`[n-1]`; to a
/// row's next attempt when it waits for one. Returns the store retries seen.
async fn drive(rig: &Rig, ids: &[String], what: &str) -> u64 {
    let started = std::time::Instant::now();
    let mut seen = 0u64;
    loop {
        let mut rows = Vec::new();
        for id in ids {
            rows.push(rig.row(id).await);
        }
        if rows.iter().all(terminal) {
            return seen;
        }
        let retries = rig.store_retries();
        let now = rig.clock.now_ms();
        if retries > seen {
            for n in seen..retries {
                let wait = pincer_delivery::outbox::STORE_RETRY_MS[(n as usize).min(4)];
                rig.clock.advance(wait);
            }
            seen = retries;
        } else if let Some(next) = rows
            .iter()
            .filter(|d| d.row.state == DeliveryState::Pending && d.row.next_attempt_at_ms > now)
            .map(|d| d.row.next_attempt_at_ms)
            .min()
        {
            rig.clock.set(next);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: stuck: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A full disk refuses the receipt of a message Telegram accepted: the worker keeps the receipt
/// and writes it again after 1 s, 2 s and 5 s on the clock — the row is never abandoned in
/// `sending`, never resent (Telegram cannot deduplicate), and the next message of the same chat
/// goes right after.
#[tokio::test]
async fn a_receipt_the_store_refuses_is_written_again_and_the_conversation_goes_on() {
    let fake = FakeTelegram::start().await;
    let (channel, to) = adapter(Platform::Telegram, &fake.base_url(), TIMEOUT);
    let rig = rig(vec![channel], rig_config(TIMEOUT), "outbox.receipt:3").await;
    let first = rig.send("telegram", &to, "first").await;
    let second = rig.send("telegram", &to, "second").await;
    for (n, wait) in [1_000, 2_000, 5_000].into_iter().enumerate() {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rig.store_retries() < n as u64 + 1 {
            assert!(std::time::Instant::now() < deadline, "failure {} never came", n + 1);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let row = rig.row(&first).await;
        assert_eq!((row.row.state.as_str(), row.parts[0].state.as_str()), ("sending", "dispatching"));
        assert_eq!(fake.messages().len(), 1, "accepted once, not resent while the store refuses");
        rig.clock.advance(wait);
    }
    let done = wait_for_row(&rig.store, &second, "second", terminal).await;
    let first = rig.row(&first).await;
    assert_eq!((first.row.state.as_str(), done.row.state.as_str()), ("delivered", "delivered"));
    let messages = fake.messages();
    assert_eq!(messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert_eq!(first.parts[0].platform_message_id, Some(messages[0].message_id.to_string()));
    assert_eq!(done.row.settled_at_ms, Some(START_MS + 8_000), "the second goes once the first is recorded");
    assert_eq!(rig.store_retries(), 3);
}

/// A backlog in one chat costs one commit per message: each message's `dispatching` carries the
/// previous message's receipt and settlement, instead of one commit before the request and one
/// after. Nothing is reordered, lost or sent twice.
#[tokio::test]
async fn one_commit_records_a_message_sent_and_puts_the_next_in_flight() {
    let fake = FakeTelegram::start().await;
    let (channel, to) = adapter(Platform::Telegram, &fake.base_url(), TIMEOUT);
    let target = channel.parse_target(&to, None).unwrap().to;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pincer.db")).unwrap();
    let n = 30;
    let rows: Vec<NewDelivery> = (0..n)
        .map(|i| NewDelivery {
            id: format!("row-{i:02}"),
            idempotency_key: format!("key-{i}"),
            origin_kind: OriginKind::Send,
            origin_id: None,
            channel: "telegram".into(),
            account_id: None,
            target: target.clone(),
            thread_id: None,
            max_attempts: MAX_ATTEMPTS,
            best_effort: false,
            body: format!("message {i}"),
            parts: vec![(format!("message {i}"), format!("nonce-{i}"))],
            created_at_ms: START_MS,
        })
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    store.write(move |tx| rows.iter().try_for_each(|r| tx.enqueue_delivery(r).map(|_| ()))).await.unwrap();
    let before = store.write_requests();
    let (settled, _) = tokio::sync::mpsc::unbounded_channel();
    let clock = FakeClock::new(START_MS);
    let outbox = Outbox::start(OutboxDeps {
        store: store.clone(),
        clock: clock.shared(),
        events: EventBus::default(),
        metrics: Arc::new(Metrics::default()),
        generation: 1,
        config: rig_config(TIMEOUT),
        channels: vec![channel],
        settled,
        failpoints: Default::default(),
        supervisor: pincer_core::Supervisor::new(clock.shared(), Arc::new(Metrics::default())),
    })
    .await
    .unwrap();
    for id in &ids {
        let row = wait_for_row(&store, id, id, terminal).await;
        assert_eq!((row.row.state.as_str(), row.parts[0].state.as_str()), ("delivered", "sent"), "{id}");
    }
    let writes = store.write_requests() - before;
    let texts: Vec<String> = fake.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, (0..n).map(|i| format!("message {i}")).collect::<Vec<_>>());
    // Start-up recovery, a few leases, then one commit per message (and the last receipt alone);
    // a commit before and one after each request would be 2n.
    assert!(writes < 3 * n as u64 / 2, "{writes} store writes for {n} messages");
    outbox.shutdown();
}

/// A rig whose store holds `n` one-part messages to `target` on `channel` (`message <i>`, key
/// `key-<i>`) before its outbox starts, so the first lease takes them as one conversation's batch.
async fn rig_with_backlog(channel: Arc<dyn Channel>, target: &str, n: usize) -> (Rig, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pincer.db")).unwrap();
    let name = channel.name();
    let rows: Vec<NewDelivery> = (0..n)
        .map(|i| NewDelivery {
            id: format!("row-{i:02}"),
            idempotency_key: format!("key-{i}"),
            origin_kind: OriginKind::Send,
            origin_id: None,
            channel: name.into(),
            account_id: None,
            target: target.to_string(),
            thread_id: None,
            max_attempts: MAX_ATTEMPTS,
            best_effort: false,
            body: format!("message {i}"),
            parts: vec![(format!("message {i}"), format!("nonce-{i}"))],
            created_at_ms: START_MS,
        })
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    store.write(move |tx| rows.iter().try_for_each(|r| tx.enqueue_delivery(r).map(|_| ()))).await.unwrap();
    let clock = FakeClock::new(START_MS);
    let metrics = Arc::new(Metrics::default());
    let (settled, _) = tokio::sync::mpsc::unbounded_channel();
    let outbox = Outbox::start(OutboxDeps {
        store: store.clone(),
        clock: clock.shared(),
        events: EventBus::default(),
        metrics: metrics.clone(),
        generation: 1,
        config: rig_config(TIMEOUT),
        channels: vec![channel],
        settled,
        failpoints: Default::default(),
        supervisor: pincer_core::Supervisor::new(clock.shared(), metrics.clone()),
    })
    .await
    .unwrap();
    (Rig { outbox, store, clock, metrics, _dir: dir }, ids)
}

/// A webhook deduplicates every resend by its `Idempotency-Key`, so a backlog to one URL is sent
/// with two commits per leased batch — every part `dispatching` before the first request, every
/// receipt after the last — instead of one or two per message. Nothing is reordered, lost or
/// sent twice.
#[tokio::test]
async fn a_webhook_backlog_commits_its_batch_dispatching_once_and_its_receipts_once() {
    let fake = FakeWebhook::start().await;
    let (channel, to) = adapter(Platform::Webhook, &fake.url(), TIMEOUT);
    let target = channel.parse_target(&to, None).unwrap().to;
    let n = 30;
    let before = {
        // The backlog's own enqueue is not the outbox's work: count from the outbox's start.
        let (rig, ids) = rig_with_backlog(channel, &target, n).await;
        let started = rig.store.write_requests();
        for id in &ids {
            let row = wait_for_row(&rig.store, id, id, terminal).await;
            assert_eq!((row.row.state.as_str(), row.parts[0].state.as_str()), ("delivered", "sent"), "{id}");
            assert_eq!(row.attempts.len(), 1, "{id}: one attempt, the send: {:#?}", row.attempts);
        }
        let writes = rig.store.write_requests() - started;
        rig.outbox.shutdown();
        writes
    };
    let deliveries = fake.deliveries();
    let bodies: Vec<&str> = deliveries.iter().map(|d| d.body.as_str()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!(r#"{{"text":"message {i}"}}"#)).collect();
    assert_eq!(bodies, expected);
    let keys: Vec<Option<&str>> = deliveries.iter().map(|d| d.idempotency_key.as_deref()).collect();
    assert_eq!(
        keys,
        (0..n)
            .map(|i| format!("key-{i}"))
            .map(Some)
            .collect::<Vec<_>>()
            .iter()
            .map(|k| k.as_deref())
            .collect::<Vec<_>>()
    );
    assert_eq!((fake.requests(), fake.duplicates()), (n, 0), "each message sent once");
    // The outbox's writes: a lease, the batch's marks, its receipts (and a spare for a second
    // lease racing the first worker); one per message would be 30 or more.
    assert!(before <= 6, "{before} store writes for {n} messages to one webhook");
}

/// A send that fails half-way through a webhook batch: the parts before it are recorded sent,
/// the failed one follows the ambiguous rule (retried with its key after the backoff), and the
/// parts behind it, marked but never sent, are `pending` again while their rows wait behind it.
#[tokio::test]
async fn a_failure_inside_a_webhook_batch_records_what_went_and_puts_the_rest_back() {
    let fake = FakeWebhook::start().await;
    let (channel, to) = adapter(Platform::Webhook, &fake.url(), TIMEOUT);
    let target = channel.parse_target(&to, None).unwrap().to;
    for _ in 0..3 {
        fake.push_fault(webhook::Fault::Delay(Duration::ZERO));
    }
    fake.push_fault(webhook::Fault::Status(503));
    let n = 8;
    let (rig, ids) = rig_with_backlog(channel, &target, n).await;
    let held = wait_for_row(&rig.store, &ids[3], "the failed row", |d| {
        d.row.state == DeliveryState::Pending && d.row.attempts == 1
    })
    .await;
    assert_eq!(held.parts[0].state.as_str(), "unknown", "a 503 may have been delivered: resent with its key");
    assert_eq!(held.row.next_attempt_at_ms, START_MS + pincer_delivery::outbox::BACKOFF_MS[0]);
    for id in &ids[..3] {
        let row = rig.row(id).await;
        assert_eq!((row.row.state.as_str(), row.parts[0].state.as_str()), ("delivered", "sent"), "{id}");
    }
    for id in &ids[4..] {
        let row = wait_for_row(&rig.store, id, id, |d| d.row.state == DeliveryState::Pending).await;
        assert_eq!(row.parts[0].state.as_str(), "pending", "{id}: marked with the batch, never sent: {row:#?}");
    }
    assert_eq!(fake.delivered(), 3, "nothing behind the failed row went");
    drive(&rig, &ids, "webhook batch").await;
    for id in &ids {
        assert_eq!(rig.row(id).await.row.state.as_str(), "delivered", "{id}");
    }
    let bodies: Vec<String> = fake.deliveries().into_iter().map(|d| d.body).collect();
    let expected: Vec<String> = (0..n).map(|i| format!(r#"{{"text":"message {i}"}}"#)).collect();
    assert_eq!(bodies, expected, "in order, each once");
    assert_eq!((fake.requests(), fake.duplicates()), (n + 1, 0), "the 503 and then each message once");
    rig.outbox.shutdown();
}

/// Every step of a row the store refuses twice, on Telegram (a resend would show as a second
/// message): retried with backoff until it commits; the row ends as it would have, and the next
/// row of the chat follows. `+Ns` is fake-clock time.
#[tokio::test]
async fn every_step_the_store_refuses_is_retried_until_it_commits() {
    struct Cell {
        failpoints: &'static str,
        label: &'static str,
        fault: Option<telegram::Fault>,
    }
    let cell = |failpoints, label, fault| Cell { failpoints, label, fault };
    let cells = [
        cell("outbox.lease:2", "none", None),
        cell("outbox.dispatching:2", "none", None),
        cell("outbox.receipt:2", "none", None),
        cell("outbox.settle:2", "chat not found", Some(telegram::Fault::chat_not_found())),
        cell(
            "outbox.reschedule:2",
            "429",
            Some(telegram::Fault::RateLimited { retry_after_secs: RETRY_AFTER.as_secs() }),
        ),
        cell("outbox.settle:2", "accepted, then 500", Some(telegram::Fault::AcceptThenServerError(500))),
    ];
    let mut table = String::new();
    for cell in cells {
        let fake = FakeTelegram::start().await;
        if let Some(f) = cell.fault {
            fake.push_fault(f);
        }
        let (channel, to) = adapter(Platform::Telegram, &fake.base_url(), TIMEOUT);
        let rig = rig(vec![channel], rig_config(TIMEOUT), cell.failpoints).await;
        let ids = vec![rig.send("telegram", &to, "first").await, rig.send("telegram", &to, "second").await];
        let retries = drive(&rig, &ids, cell.failpoints).await;
        let (first, second) = (rig.row(&ids[0]).await, rig.row(&ids[1]).await);
        let outcomes: Vec<String> =
            first.attempts.iter().map(|a| format!("{} +{}s", a.outcome, (a.at_ms - START_MS) / 1000)).collect();
        table.push_str(&format!(
            "{} (fault: {}): {} ⇒ {}; next row {} at +{}s [store retries {retries}, accepted {}]\n",
            cell.failpoints,
            cell.label,
            outcomes.join(", "),
            first.row.state,
            second.row.state,
            (second.row.settled_at_ms.unwrap() - START_MS) / 1000,
            fake.messages().len(),
        ));
        rig.outbox.shutdown();
    }
    expect![[r#"
        outbox.lease:2 (fault: none): sent +3s ⇒ delivered; next row delivered at +3s [store retries 2, accepted 2]
        outbox.dispatching:2 (fault: none): sent +10s ⇒ delivered; next row delivered at +10s [store retries 0, accepted 2]
        outbox.receipt:2 (fault: none): sent +0s ⇒ delivered; next row delivered at +3s [store retries 2, accepted 2]
        outbox.settle:2 (fault: chat not found): permanent +0s ⇒ dead; next row delivered at +3s [store retries 2, accepted 1]
        outbox.reschedule:2 (fault: 429): rate-limited +0s, sent +3s ⇒ delivered; next row delivered at +3s [store retries 2, accepted 2]
        outbox.settle:2 (fault: accepted, then 500): ambiguous +0s ⇒ unknown; next row delivered at +3s [store retries 2, accepted 2]
    "#]].assert_eq(&table);
}

/// A worker dies (a bug) right after the platform accepted a part, before the receipt: its rows
/// stay leased until the lease (10 min) runs out, then the dispatcher takes them back itself —
/// the part is `unknown`, so it is resent only where the platform deduplicates (webhook), found by
/// looking (Slack), or reported `unknown` (Discord's nonce window is over, Telegram cannot tell) —
/// and the next row of the conversation is delivered.
#[tokio::test]
async fn a_dead_workers_rows_are_taken_back_when_their_lease_expires() {
    let mut table =
        String::from("| platform | before expiry | after | next row | requests, accepted |\n|---|---|---|---|---|\n");
    for platform in PLATFORMS {
        let fake = Fake::start(platform).await;
        let (channel, to) = adapter(platform, &fake.url(), TIMEOUT);
        let rig = rig(vec![channel], rig_config(TIMEOUT), "outbox.receipt=panic").await;
        let first = rig.send(platform.name(), &to, "first").await;
        let second = rig.send(platform.name(), &to, "second").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while fake.accepted() < 1 {
            assert!(std::time::Instant::now() < deadline, "{}: never sent", platform.name());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The lease has not run out: nothing takes the row (the sweep runs every minute).
        rig.clock.advance(pincer_delivery::outbox::LEASE_MS - 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rig.row(&first).await;
        let before = format!("{} / part {}", before.row.state, before.parts[0].state);
        rig.clock.advance(1);
        let after = wait_for_row(&rig.store, &first, platform.name(), terminal).await;
        let next = wait_for_row(&rig.store, &second, platform.name(), terminal).await;
        let outcomes: Vec<&str> = after.attempts.iter().map(|a| a.outcome.as_str()).collect();
        table.push_str(&format!(
            "| {} | {before} | {} ⇒ {} | {} | {}, {} |\n",
            platform.name(),
            outcomes.join(", "),
            after.row.state,
            next.row.state,
            fake.requests(),
            fake.accepted()
        ));
        rig.outbox.shutdown();
    }
    expect![[r#"
        | platform | before expiry | after | next row | requests, accepted |
        |---|---|---|---|---|
        | discord | sending / part dispatching | lease-expired ⇒ unknown | delivered | 2, 2 |
        | telegram | sending / part dispatching | lease-expired ⇒ unknown | delivered | 2, 2 |
        | slack | sending / part dispatching | lease-expired, reconciled ⇒ delivered | delivered | 2, 2 |
        | webhook | sending / part dispatching | lease-expired, sent ⇒ delivered | delivered | 3, 2 |
    "#]]
    .assert_eq(&table);
}

/// Discord hangs on every request (its time limit is 60 s): it holds its own two slots, never
/// more, and Telegram's messages go out at once — no fake time passes — while Discord's requests
/// are still unanswered.
#[tokio::test]
async fn a_hung_channel_delays_only_itself() {
    let discord = FakeDiscord::start().await;
    for _ in 0..10 {
        discord.push_fault(discord::Fault::Hang);
    }
    let tg = FakeTelegram::start().await;
    let hang = Duration::from_secs(60);
    let (d, _) = adapter(Platform::Discord, &discord.base_url(), hang);
    let (t, chat) = adapter(Platform::Telegram, &tg.base_url(), TIMEOUT);
    let mut config = rig_config(TIMEOUT);
    config.max_parallel = 2;
    let rig = rig(vec![d, t], config, "").await;
    for n in 0..5 {
        rig.send("discord", &format!("channel:{}", 100 + n), "stuck").await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while discord.requests() < 2 {
        assert!(std::time::Instant::now() < deadline, "discord never called");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(rig.send("telegram", &format!("{chat}{n}"), &format!("prompt {n}")).await);
    }
    for id in &ids {
        let row = wait_for_row(&rig.store, id, "telegram", terminal).await;
        assert_eq!(row.row.state, DeliveryState::Delivered);
        assert_eq!(row.row.settled_at_ms, Some(START_MS), "no fake time passed");
    }
    assert_eq!(tg.messages().len(), 3);
    assert_eq!(discord.requests(), 2, "discord holds only its own two slots");
    assert!(discord.messages().is_empty(), "and all of them are still hung");
}

/// A config reload (`Outbox::set_lineup`) keeps each channel's rate bucket: a send waiting for
/// its turn still goes on time, a send after the reload does not get a fresh burst, and a changed
/// `delivery.rateLimits.<channel>` paces from the reload on.
#[tokio::test]
async fn a_reload_keeps_the_rate_bucket_and_a_new_rate_applies_from_then_on() {
    let fake = FakeTelegram::start().await;
    let (channel, to) = adapter(Platform::Telegram, &fake.base_url(), TIMEOUT);
    let mut config = rig_config(TIMEOUT);
    config.rate_limits.insert("telegram".into(), 1.0);
    let rig = rig(vec![channel.clone()], config.clone(), "").await;
    let delivered = |d: &DeliveryDetail| d.row.state == DeliveryState::Delivered;
    let sent = || fake.messages().len();
    let settle = || tokio::time::sleep(Duration::from_millis(300));

    // 1/s: the first goes at once, the second waits its second.
    let one = rig.send("telegram", &to, "one").await;
    wait_for_row(&rig.store, &one, "one", delivered).await;
    let two = rig.send("telegram", &to, "two").await;
    settle().await;
    assert_eq!(sent(), 1);
    // The reload (same rate) while `two` waits; `three`, to another chat, queues behind it.
    rig.outbox.set_lineup(&config, vec![channel.clone()]);
    let three = rig.send("telegram", "-1009999999999", "three").await;
    settle().await;
    assert_eq!(sent(), 1, "the reload let a burst through");
    rig.clock.advance(1_000);
    assert_eq!(wait_for_row(&rig.store, &two, "two", delivered).await.row.settled_at_ms, Some(START_MS + 1_000));
    settle().await;
    assert_eq!(sent(), 2);
    rig.clock.advance(1_000);
    assert_eq!(wait_for_row(&rig.store, &three, "three", delivered).await.row.settled_at_ms, Some(START_MS + 2_000));

    // 4/s from the reload on: one every 250 ms, not a burst of four.
    config.rate_limits.insert("telegram".into(), 4.0);
    rig.outbox.set_lineup(&config, vec![channel]);
    let four = rig.send("telegram", &to, "four").await;
    let five = rig.send("telegram", &to, "five").await;
    settle().await;
    assert_eq!(sent(), 3, "the new rate started with a full bucket");
    rig.clock.advance(250);
    assert_eq!(wait_for_row(&rig.store, &four, "four", delivered).await.row.settled_at_ms, Some(START_MS + 2_250));
    settle().await;
    assert_eq!(sent(), 4);
    rig.clock.advance(250);
    assert_eq!(wait_for_row(&rig.store, &five, "five", delivered).await.row.settled_at_ms, Some(START_MS + 2_500));
}
