//! Test support: provider configs pointing at the testkit's fake servers, a recorder for
//! streamed deltas, and a driver that moves a `FakeClock` while the code under test waits on it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pincer_core::FakeClock;
use pincer_core::config::{ModelEntry, ProviderApi, ProviderConfig};

/// Where every fake clock starts.
pub(crate) const START_MS: i64 = 1_700_000_000_000;

pub(crate) fn provider_config(api: ProviderApi, base_url: &str, models: &[&str]) -> ProviderConfig {
    ProviderConfig {
        api,
        base_url: base_url.to_string(),
        api_key: None,
        models: models
            .iter()
            .map(|id| ModelEntry { id: id.to_string(), name: None, context_window: None, max_tokens: None })
            .collect(),
        headers: Default::default(),
        timeout_seconds: None,
    }
}

/// Records every delta passed to `on_delta`.
#[derive(Clone, Default)]
pub(crate) struct Deltas(Arc<Mutex<Vec<String>>>);

impl Deltas {
    pub fn sink(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let deltas = self.0.clone();
        move |text: &str| deltas.lock().unwrap().push(text.to_string())
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Moves `clock` forward by `step_ms` after each millisecond of real time (the real wait only
/// lets sockets and tasks make progress) until `done()` holds. Panics after 10 s of real time.
pub(crate) async fn drive_until(clock: &FakeClock, step_ms: i64, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "condition not reached after 10 s of real time");
        tokio::time::sleep(Duration::from_millis(1)).await;
        if !done() {
            clock.advance(step_ms);
        }
    }
}

/// Waits in real time (at most 10 s) until `done()` holds, without moving any clock.
pub(crate) async fn wait_until(mut done: impl FnMut() -> bool) {
    drive_until(&FakeClock::new(0), 0, &mut done).await;
}

/// Awaits `fut`, failing the test instead of hanging when it takes more than 10 s of real time.
pub(crate) async fn finish<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut).await.expect("the call did not finish within 10 s")
}
