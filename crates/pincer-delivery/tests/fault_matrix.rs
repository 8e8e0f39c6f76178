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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use expect_test::expect;
use pincer_core::config::{DeliveryConfig, DiscordConfig, SlackConfig, TelegramConfig, WebhookConfig};
use pincer_core::{Clock, EventBus, FakeClock, Metrics};
use pincer_cron::{Origin, Route};
use pincer_delivery::channel::{Channel, Discord, Slack, Telegram, Webhook};
use pincer_delivery::{Outbox, OutboxDeps};
use pincer_store::{DeliveryDetail, Store};
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
            let config = DiscordConfig { token: FakeDiscord::TOKEN.into(), api_base_url: url.into() };
            (Arc::new(Discord::new(&config, timeout).unwrap()), "channel:111".into())
        }
        Platform::Telegram => {
            let config = TelegramConfig { bot_token: FakeTelegram::TOKEN.into(), api_root: url.into() };
            (Arc::new(Telegram::new(&config, timeout).unwrap()), "-1001234567890".into())
        }
        Platform::Slack => {
            let config = SlackConfig { bot_token: FakeSlack::TOKEN.into(), api_base_url: url.into() };
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
    })
    .await
    .unwrap();
    let route = Route { channel: name.into(), to, thread_id: None, account_id: None, source: "explicit".into() };
    let origin = Origin { kind: "send", id: None, best_effort: false };
    let row = outbox.prepare(&route, TEXT, "fault-matrix", &origin, None).unwrap();
    assert_eq!(row.parts.len(), 1, "{what}: one part");
    let id = outbox.enqueue(row).await.unwrap().id;

    // Each time the row waits for a retry, move the clock exactly to it.
    let detail = loop {
        let now = clock.now_ms();
        let detail = wait_for_row(&store, &id, what, |d| {
            matches!(d.row.state.as_str(), "delivered" | "dead" | "unknown")
                || (d.row.state == "pending" && d.row.next_attempt_at_ms > now)
        })
        .await;
        if detail.row.state != "pending" {
            break detail;
        }
        let last = detail.attempts.last().expect("a row waits only after an attempt");
        if last.outcome == "rate-limited" {
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
        cell.push_str(&attempt.outcome);
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
            (a.outcome.clone(), step)
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
    assert_eq!(detail.row.state, "delivered", "{detail:#?}");
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
    assert_eq!(detail.row.state, "unknown", "{detail:#?}");
    assert_eq!(timeline(&detail), [("ambiguous".to_string(), 0), ("lookup-failed".to_string(), 5)]);
    let error = detail.row.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("missing_scope") && error.contains("pincer deliveries retry"),
        "the reason and the way out: {error}"
    );
    assert_eq!((fake.messages().len(), fake.requests()), (1, 1), "not resent");
}
