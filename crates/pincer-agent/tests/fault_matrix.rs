//! The fault matrix of the model providers: OpenAI-compatible and Anthropic, streaming (SSE) and
//! not (JSON), × every transport fault, each cell run through the real [`ModelRouter`] — retries
//! on the same model with backoff on a `FakeClock`, then fallback — against fake model servers on
//! 127.0.0.1.
//!
//! The chain of every cell is `primary/m` (the provider under test) then `spare/s` (a healthy
//! OpenAI-compatible fake), so a cell shows whether a failure is retried, falls back or ends the
//! call. A cell reads `<attempt>, +<wait> <attempt>, … → spare: <attempt> ⇒ <result> [requests
//! that reached the primary, requests that reached the spare, text deltas the listener got]`; an
//! attempt is its error class (as OpenClaw names them) or `ok`, with its length on the fake clock
//! when that is 1 s or more. A call that fails reports only its last error.
//!
//! Timeouts are the defaults (connect 10 s, first token 60 s, stall 60 s) on the fake clock;
//! retries wait 1 s, 2 s, 4 s (no jitter) or the server's `retry-after`, whichever is longer. The
//! clock only moves in exact jumps (to the end of a retry wait, to a limit, or by 59.999 s in the
//! slow row), so every wait and duration in the table is exact.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use expect_test::expect;
use pincer_agent::models::{Attempt, Completed, ModelRouter, RetryPolicy, RouterOptions};
use pincer_agent::provider::{ChatRequest, ErrorClass, ProviderError, Timeouts};
use pincer_core::config::{AgentDefaults, ModelsConfig, ProviderApi, ProviderConfig};
use pincer_core::{Clock, FakeClock};
use pincer_testkit::fakes::anthropic::FakeAnthropic;
use pincer_testkit::fakes::openai::{FakeOpenAi, Gate, Reply};

const START_MS: i64 = 1_700_000_000_000;
/// Just inside the default first-token and stall limits (60 s).
const JUST_IN_TIME_MS: i64 = 59_999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    OpenAiSse,
    OpenAiJson,
    AnthropicSse,
    AnthropicJson,
}

const VARIANTS: [Variant; 4] = [Variant::OpenAiSse, Variant::OpenAiJson, Variant::AnthropicSse, Variant::AnthropicJson];

impl Variant {
    fn stream(self) -> bool {
        matches!(self, Variant::OpenAiSse | Variant::AnthropicSse)
    }

    fn api(self) -> ProviderApi {
        match self {
            Variant::OpenAiSse | Variant::OpenAiJson => ProviderApi::OpenAiCompletions,
            Variant::AnthropicSse | Variant::AnthropicJson => ProviderApi::AnthropicMessages,
        }
    }
}

/// How a cell is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drive {
    /// Each time the router waits to retry, move the clock exactly to the end of that wait.
    Retries,
    /// Once the request arrived (and, streaming, `after_deltas` text deltas did), move the clock
    /// once, exactly to the 60 s limit; then let the call end or fall back.
    Timer { after_deltas: usize },
    /// The test releases each piece of a [`Reply::Paced`] 59.999 s after the last.
    Paced,
}

/// One row of the matrix.
struct Scenario {
    name: &'static str,
    /// `None`: the primary points at a closed port on 127.0.0.1 (connection refused).
    replies: Option<Vec<Reply>>,
    drive: Drive,
}

fn scenarios() -> Vec<Scenario> {
    let row = |name, replies, drive| Scenario { name, replies: Some(replies), drive };
    let ok = || Reply::text("Fine now.");
    let bad_gateway = Reply::Raw {
        status: 502,
        headers: vec![("content-type".into(), "text/html".into())],
        chunks: vec![b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n".to_vec()],
    };
    vec![
        Scenario { name: "connection refused", replies: None, drive: Drive::Retries },
        row(
            "429 ×3 (retry-after 5 s), then ok",
            vec![Reply::rate_limited(Some(5)), Reply::rate_limited(Some(5)), Reply::rate_limited(Some(5)), ok()],
            Drive::Retries,
        ),
        row("HTTP 500, then ok", vec![Reply::server_error(), ok()], Drive::Retries),
        row("HTTP 502 (a proxy's HTML page), then ok", vec![bad_gateway, ok()], Drive::Retries),
        row("overloaded (OpenAI 503, Anthropic 529), then ok", vec![Reply::overloaded(), ok()], Drive::Retries),
        row("slow: each piece 59.999 s after the last (limits 60 s)", vec![], Drive::Paced),
        row("no answer at all (no status line)", vec![Reply::hang()], Drive::Timer { after_deltas: 0 }),
        row("head, then silence before the first token", vec![Reply::stall_after(0)], Drive::Timer { after_deltas: 0 }),
        row(
            "2 tokens, then silence (JSON: head, then silence)",
            vec![Reply::stall_after(2)],
            Drive::Timer { after_deltas: 2 },
        ),
        row("malformed body / malformed SSE event", vec![Reply::malformed()], Drive::Retries),
        row("reset after the head, before the first token", vec![Reply::reset_after(0), ok()], Drive::Retries),
        row("reset after 2 tokens (JSON: mid-body), then ok", vec![Reply::reset_after(2), ok()], Drive::Retries),
    ]
}

/// The provider under test.
enum Primary {
    OpenAi(FakeOpenAi),
    Anthropic(FakeAnthropic),
}

impl Primary {
    async fn start(variant: Variant) -> Primary {
        match variant.api() {
            ProviderApi::OpenAiCompletions => Primary::OpenAi(FakeOpenAi::start().await),
            ProviderApi::AnthropicMessages => Primary::Anthropic(FakeAnthropic::start().await),
        }
    }

    fn base_url(&self) -> String {
        match self {
            Primary::OpenAi(f) => f.base_url(),
            Primary::Anthropic(f) => f.base_url(),
        }
    }

    fn push(&self, reply: Reply) {
        match self {
            Primary::OpenAi(f) => f.push(reply),
            Primary::Anthropic(f) => f.push(reply),
        }
    }

    fn request_count(&self) -> usize {
        match self {
            Primary::OpenAi(f) => f.request_count(),
            Primary::Anthropic(f) => f.request_count(),
        }
    }

    async fn wait_for_requests(&self, n: usize) {
        match self {
            Primary::OpenAi(f) => f.wait_for_requests(n).await,
            Primary::Anthropic(f) => f.wait_for_requests(n).await,
        }
    }
}

fn provider(api: ProviderApi, base_url: String) -> ProviderConfig {
    ProviderConfig {
        api,
        base_url,
        api_key: Some("k".into()),
        models: vec![],
        headers: Default::default(),
        timeout_seconds: None,
    }
}

/// Records the text deltas the listener got.
#[derive(Clone, Default)]
struct Deltas(Arc<Mutex<Vec<String>>>);

impl Deltas {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A [`FakeClock`] that knows who is waiting on it: the deadlines of the `sleep_until` futures
/// alive right now (the router's retry wait, a provider's timers).
#[derive(Clone)]
struct TrackedClock {
    fake: FakeClock,
    sleepers: Arc<Mutex<Vec<(u64, i64)>>>,
    next_id: Arc<AtomicU64>,
}

/// Forgets a sleeper when its future completes or is dropped.
struct Sleeper {
    sleepers: Arc<Mutex<Vec<(u64, i64)>>>,
    id: u64,
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.sleepers.lock().unwrap().retain(|(id, _)| *id != self.id);
    }
}

impl TrackedClock {
    fn new() -> TrackedClock {
        TrackedClock { fake: FakeClock::new(START_MS), sleepers: Arc::default(), next_id: Arc::default() }
    }

    /// The earliest deadline anyone waits for, if it is at most `within_ms` away.
    fn next_deadline(&self, within_ms: i64) -> Option<i64> {
        let now = self.now_ms();
        self.sleepers.lock().unwrap().iter().map(|(_, at)| *at).filter(|at| *at <= now + within_ms).min()
    }
}

impl Clock for TrackedClock {
    fn now_ms(&self) -> i64 {
        self.fake.now_ms()
    }

    fn sleep_until(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.sleepers.lock().unwrap().push((id, deadline_ms));
        let sleeper = Sleeper { sleepers: self.sleepers.clone(), id };
        let wait = self.fake.sleep_until(deadline_ms);
        Box::pin(async move {
            let _sleeper = sleeper;
            wait.await;
        })
    }
}

/// Waits (real time, at most 10 s) until `done()` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: not done after 10 s of real time");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs one cell and renders what happened.
async fn run_cell(variant: Variant, scenario: &Scenario) -> String {
    let what = format!("{variant:?} × {}", scenario.name);
    let spare = FakeOpenAi::start().await;
    spare.set_default(Reply::text("The spare answers."));
    let primary = match &scenario.replies {
        Some(replies) => {
            let primary = Primary::start(variant).await;
            replies.iter().cloned().for_each(|r| primary.push(r));
            Some(primary)
        }
        None => None,
    };
    let primary_url = primary.as_ref().map(Primary::base_url).unwrap_or_else(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    });
    let gate = Gate::new();
    let pieces = if variant.stream() { 4 } else { 1 };
    if scenario.drive == Drive::Paced {
        let paced = Reply::paced("Slow, but every piece in time.", pieces, &gate);
        primary.as_ref().expect("a paced cell has a server").push(paced);
    }

    let clock = TrackedClock::new();
    let models = ModelsConfig {
        providers: [
            ("primary".to_string(), provider(variant.api(), primary_url)),
            ("spare".to_string(), provider(ProviderApi::OpenAiCompletions, spare.base_url())),
        ]
        .into_iter()
        .collect(),
    };
    let options =
        RouterOptions { timeouts: Timeouts::default(), retry: RetryPolicy { jitter: 0.0, ..RetryPolicy::default() } };
    let router = Arc::new(
        ModelRouter::with_options(&models, &AgentDefaults::default(), Arc::new(clock.clone()), options).unwrap(),
    );
    let chain = router.resolve(Some("primary/m"), Some(&["spare/s".to_string()])).unwrap();
    let deltas = Deltas::default();
    let task = tokio::spawn({
        let (router, deltas) = (router.clone(), deltas.clone());
        let req = ChatRequest { stream: variant.stream(), ..ChatRequest::new("m", "Hi") };
        async move {
            let sink = move |text: &str| deltas.0.lock().unwrap().push(text.to_string());
            router.complete(&chain, &req, &sink).await
        }
    });

    let ended = || task.is_finished() || spare.request_count() > 0;
    match scenario.drive {
        Drive::Retries => {
            // Retry waits are seconds; a provider's timers (60 s) are never what is moved to.
            let started = std::time::Instant::now();
            while !ended() {
                assert!(started.elapsed() < Duration::from_secs(10), "{what}: not done after 10 s of real time");
                if let Some(at) = clock.next_deadline(10_000).filter(|at| *at > clock.now_ms()) {
                    clock.fake.set(at);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Drive::Timer { after_deltas } => {
            // A reply that is not streamed passes no text before it is whole.
            let after_deltas = if variant.stream() { after_deltas } else { 0 };
            primary.as_ref().expect("a timer cell has a server").wait_for_requests(1).await;
            wait_until(&what, || deltas.len() >= after_deltas || task.is_finished()).await;
            clock.fake.set(START_MS + Timeouts::default().first_token_ms as i64);
        }
        Drive::Paced => {
            primary.as_ref().unwrap().wait_for_requests(1).await;
            for n in 1..=pieces {
                clock.fake.advance(JUST_IN_TIME_MS);
                gate.release(1);
                wait_until(&what, || deltas.len() >= n || task.is_finished()).await;
            }
        }
    }
    let result = tokio::time::timeout(Duration::from_secs(10), task).await.expect("the call ends").unwrap();
    let counts = (primary.as_ref().map_or(0, Primary::request_count), spare.request_count());
    render(&what, result, counts, &deltas.all())
}

/// `<attempt>, +<wait> <attempt> → spare: <attempt> ⇒ <result> [primary requests, spare requests,
/// deltas]`. A failed call carries no attempt list, only its last error: its cell shows that error.
fn render(what: &str, result: Result<Completed, ProviderError>, counts: (usize, usize), deltas: &[String]) -> String {
    let mut out = String::new();
    let outcome = match &result {
        Ok(done) => {
            assert_eq!(deltas.concat(), done.outcome.text, "{what}: the listener saw the answer once, whole");
            let mut previous: Option<&Attempt> = None;
            for attempt in &done.attempts {
                match previous {
                    Some(p) if p.model != attempt.model => out.push_str(&format!(" → {}: ", attempt.model.provider)),
                    Some(p) => out.push_str(&format!(", +{}s ", (attempt.started_ms - p.ended_ms) / 1000)),
                    None => {}
                }
                out.push_str(&attempt.error.as_ref().map_or("ok".to_string(), label));
                let took = (attempt.ended_ms - attempt.started_ms) / 1000;
                if took > 0 {
                    out.push_str(&format!(" in {took}s"));
                }
                previous = Some(attempt);
            }
            format!("ok from {}", done.model.provider)
        }
        Err(e) => {
            assert!(e.message.starts_with("primary/m: "), "{what}: {e}");
            let after = if e.first_token_received { " after the first token" } else { "" };
            out.push_str(&label(e));
            format!("error {}{after}", label(e))
        }
    };
    format!("{out} ⇒ {outcome} [{}, {}, {}]", counts.0, counts.1, deltas.len())
}

/// The error class; for a timeout, which timer fired (from the message, which says so).
fn label(e: &ProviderError) -> String {
    if e.class != ErrorClass::Timeout {
        return e.class.to_string();
    }
    let timer = if e.message.contains("no reply from the model within") {
        "first token"
    } else if e.message.contains("the reply stalled") {
        "stall"
    } else {
        panic!("which timer? {e}")
    };
    format!("timeout ({timer})")
}

/// One column: every scenario against one provider variant, in order.
async fn column(variant: Variant) -> Vec<String> {
    let mut cells = Vec::new();
    for scenario in &scenarios() {
        cells.push(run_cell(variant, scenario).await);
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_under_every_fault() {
    let columns = futures_util::future::join_all(VARIANTS.map(|v| tokio::spawn(column(v)))).await;
    let columns: Vec<Vec<String>> = columns.into_iter().map(Result::unwrap).collect();
    let mut table =
        String::from("| fault | openai SSE | openai JSON | anthropic SSE | anthropic JSON |\n|---|---|---|---|---|\n");
    for (i, scenario) in scenarios().iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c[i].as_str()).collect();
        table.push_str(&format!("| {} | {} |\n", scenario.name, cells.join(" | ")));
    }
    expect![[r#"
        | fault | openai SSE | openai JSON | anthropic SSE | anthropic JSON |
        |---|---|---|---|---|
        | connection refused | network, +1s network, +2s network, +4s network → spare: ok ⇒ ok from spare [0, 1, 3] | network, +1s network, +2s network, +4s network → spare: ok ⇒ ok from spare [0, 1, 1] | network, +1s network, +2s network, +4s network → spare: ok ⇒ ok from spare [0, 1, 3] | network, +1s network, +2s network, +4s network → spare: ok ⇒ ok from spare [0, 1, 1] |
        | 429 ×3 (retry-after 5 s), then ok | rate_limit, +5s rate_limit, +5s rate_limit, +5s ok ⇒ ok from primary [4, 0, 3] | rate_limit, +5s rate_limit, +5s rate_limit, +5s ok ⇒ ok from primary [4, 0, 1] | rate_limit, +5s rate_limit, +5s rate_limit, +5s ok ⇒ ok from primary [4, 0, 3] | rate_limit, +5s rate_limit, +5s rate_limit, +5s ok ⇒ ok from primary [4, 0, 1] |
        | HTTP 500, then ok | server_error, +1s ok ⇒ ok from primary [2, 0, 3] | server_error, +1s ok ⇒ ok from primary [2, 0, 1] | server_error, +1s ok ⇒ ok from primary [2, 0, 3] | server_error, +1s ok ⇒ ok from primary [2, 0, 1] |
        | HTTP 502 (a proxy's HTML page), then ok | server_error, +1s ok ⇒ ok from primary [2, 0, 3] | server_error, +1s ok ⇒ ok from primary [2, 0, 1] | server_error, +1s ok ⇒ ok from primary [2, 0, 3] | server_error, +1s ok ⇒ ok from primary [2, 0, 1] |
        | overloaded (OpenAI 503, Anthropic 529), then ok | overloaded, +1s ok ⇒ ok from primary [2, 0, 3] | overloaded, +1s ok ⇒ ok from primary [2, 0, 1] | overloaded, +1s ok ⇒ ok from primary [2, 0, 3] | overloaded, +1s ok ⇒ ok from primary [2, 0, 1] |
        | slow: each piece 59.999 s after the last (limits 60 s) | ok in 239s ⇒ ok from primary [1, 0, 4] | ok in 59s ⇒ ok from primary [1, 0, 1] | ok in 239s ⇒ ok from primary [1, 0, 4] | ok in 59s ⇒ ok from primary [1, 0, 1] |
        | no answer at all (no status line) | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 3] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 1] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 3] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 1] |
        | head, then silence before the first token | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 3] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 1] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 3] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 1] |
        | 2 tokens, then silence (JSON: head, then silence) | timeout (stall) ⇒ error timeout (stall) after the first token [1, 0, 2] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 1] | timeout (stall) ⇒ error timeout (stall) after the first token [1, 0, 2] | timeout (first token) in 60s → spare: ok ⇒ ok from spare [1, 1, 1] |
        | malformed body / malformed SSE event | format ⇒ error format [1, 0, 0] | format ⇒ error format [1, 0, 0] | format ⇒ error format [1, 0, 0] | format ⇒ error format [1, 0, 0] |
        | reset after the head, before the first token | network, +1s ok ⇒ ok from primary [2, 0, 3] | network, +1s ok ⇒ ok from primary [2, 0, 1] | network, +1s ok ⇒ ok from primary [2, 0, 3] | network, +1s ok ⇒ ok from primary [2, 0, 1] |
        | reset after 2 tokens (JSON: mid-body), then ok | network ⇒ error network after the first token [1, 0, 2] | network, +1s ok ⇒ ok from primary [2, 0, 1] | network ⇒ error network after the first token [1, 0, 2] | network, +1s ok ⇒ ok from primary [2, 0, 1] |
    "#]].assert_eq(&table);
}
