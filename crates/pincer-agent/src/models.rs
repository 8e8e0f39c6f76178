//! Which model answers: `provider/model` references, the chain a job resolves to (its own model
//! and fallbacks, or the agent defaults), and the call loop over that chain — retries of
//! transient failures with jittered exponential backoff on the injected clock, then fallback to
//! the next model.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use pincer_core::SharedClock;
use pincer_core::config::{AgentDefaults, ModelSelection, ModelsConfig};
use serde::{Deserialize, Serialize};

use crate::provider::{
    self, ChatOutcome, ChatRequest, ErrorClass, OnDelta, Provider, ProviderError, ProviderSetupError, Timeouts,
};

/// A configured model: `provider/model`, split at the first `/` (model ids may contain `/`, `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl ModelRef {
    /// Splits `provider/model`; `None` unless both sides are non-empty.
    pub fn parse(reference: &str) -> Option<ModelRef> {
        let (provider, model) = reference.trim().split_once('/')?;
        (!provider.is_empty() && !model.is_empty())
            .then(|| ModelRef { provider: provider.to_string(), model: model.to_string() })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// Where a model reference came from, so an error can say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefSource {
    JobModel,
    JobFallbacks,
    DefaultPrimary,
    DefaultFallbacks,
}

impl fmt::Display for RefSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefSource::JobModel => "the job's model",
            RefSource::JobFallbacks => "the job's fallbacks",
            RefSource::DefaultPrimary => "agents.defaults.model.primary",
            RefSource::DefaultFallbacks => "agents.defaults.model.fallbacks",
        })
    }
}

/// A model that cannot be used as configured. Raised before any request is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model \"{reference}\" in {place} is not a provider/model reference: write it as <provider>/<model>, e.g. \"openai/gpt-4o\""
    )]
    Malformed { reference: String, place: RefSource },
    #[error(
        "model \"{reference}\" is not configured: there is no provider \"{provider}\" in models.providers (configured: {configured}); add it, or fix {place}"
    )]
    UnknownProvider { reference: String, provider: String, configured: String, place: RefSource },
    #[error("model \"{reference}\" is not configured: add it to models.providers.{provider}.models, or fix {place}")]
    UnknownModel { reference: String, provider: String, place: RefSource },
    #[error("no model to run: set agents.defaults.model.primary (e.g. \"openai/gpt-4o\"), or give the job a model")]
    NoPrimary,
    #[error(transparent)]
    Setup(#[from] ProviderSetupError),
}

/// How transient failures are retried on the same model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first wait; each retry doubles it.
    pub base_ms: u64,
    pub cap_ms: u64,
    /// ±this fraction of random spread, so many runs do not retry in lockstep.
    pub jitter: f64,
    /// A server asking to wait longer than this is not waited for; the next model is tried.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 3, base_ms: 1_000, cap_ms: 30_000, jitter: 0.2, max_retry_after_ms: 60_000 }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry + 1`: `base × 2^retry`, capped, jittered, and never
    /// shorter than what the server asked for.
    pub fn delay_ms(&self, retry: u32, retry_after_ms: Option<u64>) -> u64 {
        let exponential = self.base_ms.saturating_mul(1u64 << retry.min(32)).min(self.cap_ms);
        let spread = if self.jitter > 0.0 { rand::random_range(1.0 - self.jitter..=1.0 + self.jitter) } else { 1.0 };
        ((exponential as f64 * spread).round() as u64).max(retry_after_ms.unwrap_or(0))
    }
}

/// Settings of a [`ModelRouter`] beyond the configuration file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouterOptions {
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

/// One call to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub model: ModelRef,
    /// When it started and ended, on the injected clock.
    pub started_ms: i64,
    pub ended_ms: i64,
    /// `None` for the attempt that produced the answer.
    pub error: Option<ProviderError>,
}

/// A completion and how it was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub outcome: ChatOutcome,
    /// The model that answered.
    pub model: ModelRef,
    /// Every call made, in order; the last one succeeded.
    pub attempts: Vec<Attempt>,
}

/// The configured providers, the default model selection, and the retry/fallback loop.
pub struct ModelRouter {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    /// Model ids each provider lists; an empty list accepts any id.
    listed: BTreeMap<String, Vec<String>>,
    defaults: ModelSelection,
    clock: SharedClock,
    retry: RetryPolicy,
}

impl ModelRouter {
    pub fn new(models: &ModelsConfig, defaults: &AgentDefaults, clock: SharedClock) -> Result<ModelRouter, ModelError> {
        ModelRouter::with_options(models, defaults, clock, RouterOptions::default())
    }

    pub fn with_options(
        models: &ModelsConfig,
        defaults: &AgentDefaults,
        clock: SharedClock,
        options: RouterOptions,
    ) -> Result<ModelRouter, ModelError> {
        let mut providers = BTreeMap::new();
        let mut listed = BTreeMap::new();
        for (name, config) in &models.providers {
            providers.insert(name.clone(), provider::from_config(name, config, clock.clone(), options.timeouts)?);
            listed.insert(name.clone(), config.models.iter().map(|m| m.id.clone()).collect());
        }
        Ok(ModelRouter { providers, listed, defaults: defaults.model.clone(), clock, retry: options.retry })
    }

    /// The provider configured under `name`.
    pub fn provider(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// Checks a job's model reference against the configuration (for validating `cron.add`).
    pub fn check(&self, reference: &str) -> Result<ModelRef, ModelError> {
        self.check_at(reference, RefSource::JobModel)
    }

    fn check_at(&self, reference: &str, place: RefSource) -> Result<ModelRef, ModelError> {
        let model = ModelRef::parse(reference)
            .ok_or_else(|| ModelError::Malformed { reference: reference.to_string(), place })?;
        let Some(listed) = self.listed.get(&model.provider) else {
            let configured = if self.listed.is_empty() {
                "none".to_string()
            } else {
                self.listed.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(ModelError::UnknownProvider {
                reference: reference.to_string(),
                provider: model.provider,
                configured,
                place,
            });
        };
        if !listed.is_empty() && !listed.contains(&model.model) {
            return Err(ModelError::UnknownModel { reference: reference.to_string(), provider: model.provider, place });
        }
        Ok(model)
    }

    /// The configured models as `provider/model` (`provider/*` for a provider that lists none and
    /// so takes any id), for messages that must say what may be chosen.
    pub fn configured(&self) -> Vec<String> {
        self.listed
            .iter()
            .flat_map(|(p, models)| {
                if models.is_empty() {
                    vec![format!("{p}/*")]
                } else {
                    models.iter().map(|m| format!("{p}/{m}")).collect()
                }
            })
            .collect()
    }

    /// The models to try, in order. A job's own model runs with only the job's own fallbacks
    /// (none given = none: no silent fallback to the defaults); without a job model it is
    /// `agents.defaults.model.primary`, then the job's fallbacks if it has any, else
    /// `agents.defaults.model.fallbacks`. Every reference is checked; duplicates are dropped.
    pub fn resolve(
        &self,
        job_model: Option<&str>,
        job_fallbacks: Option<&[String]>,
    ) -> Result<Vec<ModelRef>, ModelError> {
        let mut refs: Vec<(&str, RefSource)> = Vec::new();
        match job_model.map(str::trim).filter(|m| !m.is_empty()) {
            Some(model) => {
                refs.push((model, RefSource::JobModel));
                refs.extend(job_fallbacks.unwrap_or_default().iter().map(|f| (f.as_str(), RefSource::JobFallbacks)));
            }
            None => {
                let primary =
                    self.defaults.primary.as_deref().filter(|p| !p.trim().is_empty()).ok_or(ModelError::NoPrimary)?;
                refs.push((primary, RefSource::DefaultPrimary));
                match job_fallbacks {
                    Some(fallbacks) => refs.extend(fallbacks.iter().map(|f| (f.as_str(), RefSource::JobFallbacks))),
                    None => {
                        refs.extend(self.defaults.fallbacks.iter().map(|f| (f.as_str(), RefSource::DefaultFallbacks)))
                    }
                }
            }
        }
        let mut chain: Vec<ModelRef> = Vec::with_capacity(refs.len());
        for (reference, place) in refs {
            let model = self.check_at(reference, place)?;
            if !chain.contains(&model) {
                chain.push(model);
            }
        }
        Ok(chain)
    }

    /// Runs `req` along `chain` (`req.model` is replaced by each model's id). Per model,
    /// rate-limit, overloaded, server and network errors before the first token are retried up
    /// to [`RetryPolicy::max_retries`] times; then transient, auth, billing, model-not-found and
    /// empty-response errors move on to the next model. Nothing is retried once text was
    /// streamed, and nothing waits past `req.deadline_ms`. The error is the last one.
    pub async fn complete(
        &self,
        chain: &[ModelRef],
        req: &ChatRequest,
        on_delta: OnDelta<'_>,
    ) -> Result<Completed, ProviderError> {
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut last_error = ProviderError::new(ErrorClass::Unknown, "no model to try: the model chain is empty");
        for (index, model) in chain.iter().enumerate() {
            let has_next = index + 1 < chain.len();
            let Some(provider) = self.providers.get(&model.provider) else {
                last_error = ProviderError::new(
                    ErrorClass::ModelNotFound,
                    format!("{model}: there is no provider \"{}\" in models.providers", model.provider),
                );
                continue;
            };
            let mut request = req.clone();
            request.model = model.model.clone();
            let mut retries = 0;
            loop {
                let started_ms = self.clock.now_ms();
                if req.deadline_ms.is_some_and(|deadline| started_ms >= deadline) {
                    let error = ProviderError::new(
                        ErrorClass::Timeout,
                        format!("{model}: the run's time limit was reached before the model was called"),
                    );
                    return Err(with_history(error, &attempts));
                }
                let result = provider.complete(&request, on_delta).await;
                let ended_ms = self.clock.now_ms();
                let error = match result {
                    Ok(outcome) => {
                        attempts.push(Attempt { model: model.clone(), started_ms, ended_ms, error: None });
                        return Ok(Completed { outcome, model: model.clone(), attempts });
                    }
                    Err(error) => ProviderError { message: format!("{model}: {}", error.message), ..error },
                };
                attempts.push(Attempt { model: model.clone(), started_ms, ended_ms, error: Some(error.clone()) });
                let out_of_time = req.deadline_ms.is_some_and(|deadline| ended_ms >= deadline);
                if error.first_token_received || out_of_time {
                    return Err(with_history(error, &attempts));
                }
                if retries < self.retry.max_retries
                    && retried_on_same_model(error.class)
                    && let Some(delay) = self.retry_delay(ended_ms, retries, error.retry_after_ms, req.deadline_ms)
                {
                    let retry = retries + 1;
                    tracing::info!(%model, class = %error.class, retry, delay_ms = delay, "retrying the model call");
                    self.clock.sleep_until(ended_ms.saturating_add(delay as i64)).await;
                    retries += 1;
                    continue;
                }
                if error.class.allows_fallback() && has_next {
                    let next = &chain[index + 1];
                    tracing::warn!(%model, class = %error.class, %next, "falling back to the next model");
                    last_error = error;
                    break;
                }
                return Err(with_history(error, &attempts));
            }
        }
        Err(with_history(last_error, &attempts))
    }

    /// The wait before the next retry, or `None` when waiting is pointless: the server asks
    /// for too long, or the wait would reach the run's deadline.
    fn retry_delay(
        &self,
        now_ms: i64,
        retry: u32,
        retry_after_ms: Option<u64>,
        deadline_ms: Option<i64>,
    ) -> Option<u64> {
        if retry_after_ms.is_some_and(|ms| ms > self.retry.max_retry_after_ms) {
            return None;
        }
        let delay = self.retry.delay_ms(retry, retry_after_ms);
        match deadline_ms {
            Some(deadline) if now_ms.saturating_add(delay as i64) >= deadline => None,
            _ => Some(delay),
        }
    }
}

/// Failures worth repeating on the same model. A timeout is not: a model that did not answer
/// in time is tried no more, but the next model is.
fn retried_on_same_model(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::RateLimit | ErrorClass::Overloaded | ErrorClass::ServerError | ErrorClass::Network)
}

/// Appends which other models failed before, so the final error tells the whole story.
fn with_history(mut error: ProviderError, attempts: &[Attempt]) -> ProviderError {
    let mut earlier: Vec<String> = Vec::new();
    let current = attempts.last().map(|a| &a.model);
    for attempt in attempts {
        if Some(&attempt.model) == current {
            continue;
        }
        if let Some(e) = &attempt.error {
            let line = format!("{} [{}]", attempt.model, e.class);
            if earlier.last() != Some(&line) {
                earlier.push(line);
            }
        }
    }
    if !earlier.is_empty() {
        error.message = format!("{} (tried before: {})", error.message, earlier.join(", "));
    }
    error
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use expect_test::expect;
    use pincer_core::config::{ModelsConfig, ProviderApi, ProviderConfig};
    use pincer_core::{Clock, FakeClock};
    use pincer_testkit::fakes::anthropic::FakeAnthropic;
    use pincer_testkit::fakes::openai::{FakeError, FakeOpenAi, Reply};

    use super::*;
    use crate::provider::testing::{Deltas, START_MS, drive_until, finish, provider_config, wait_until};

    fn config(
        providers: Vec<(&str, ProviderConfig)>,
        primary: Option<&str>,
        fallbacks: &[&str],
    ) -> (ModelsConfig, AgentDefaults) {
        let models = ModelsConfig { providers: providers.into_iter().map(|(n, c)| (n.to_string(), c)).collect() };
        let mut defaults = AgentDefaults::default();
        defaults.model.primary = primary.map(str::to_string);
        defaults.model.fallbacks = fallbacks.iter().map(|f| f.to_string()).collect();
        (models, defaults)
    }

    fn router(
        providers: Vec<(&str, ProviderConfig)>,
        primary: Option<&str>,
        fallbacks: &[&str],
        clock: &FakeClock,
    ) -> Arc<ModelRouter> {
        let (models, defaults) = config(providers, primary, fallbacks);
        Arc::new(ModelRouter::new(&models, &defaults, clock.shared()).unwrap())
    }

    /// Starts `router.complete(chain, req)` as a task that records deltas.
    fn spawn_complete(
        router: &Arc<ModelRouter>,
        chain: Vec<ModelRef>,
        req: ChatRequest,
        deltas: &Deltas,
    ) -> tokio::task::JoinHandle<Result<Completed, ProviderError>> {
        let (router, sink) = (router.clone(), deltas.sink());
        tokio::spawn(async move { router.complete(&chain, &req, &sink).await })
    }

    fn refs(chain: &[ModelRef]) -> Vec<String> {
        chain.iter().map(ModelRef::to_string).collect()
    }

    /// How long the router waited between attempts, on the fake clock.
    fn gaps(attempts: &[Attempt]) -> Vec<i64> {
        attempts.windows(2).map(|w| w[1].started_ms - w[0].ended_ms).collect()
    }

    #[test]
    fn model_references_split_at_the_first_slash() {
        let parse = |s: &str| ModelRef::parse(s).map(|r| (r.provider, r.model));
        assert_eq!(parse("openrouter/moonshotai/kimi-k2"), Some(("openrouter".into(), "moonshotai/kimi-k2".into())));
        assert_eq!(parse("ollama/llama3.2:3b"), Some(("ollama".into(), "llama3.2:3b".into())));
        assert_eq!(parse(" openai/gpt-4o "), Some(("openai".into(), "gpt-4o".into())));
        for bad in ["gpt-4o", "/gpt-4o", "openai/", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(ModelRef::parse("a/b/c").unwrap().to_string(), "a/b/c");
    }

    fn resolution_router() -> ModelRouter {
        let (models, defaults) = config(
            vec![
                (
                    "openai",
                    provider_config(
                        ProviderApi::OpenAiCompletions,
                        "http://127.0.0.1:9/v1",
                        &["gpt-4o", "gpt-4o-mini"],
                    ),
                ),
                ("anthropic", provider_config(ProviderApi::AnthropicMessages, "http://127.0.0.1:9", &[])),
            ],
            Some("openai/gpt-4o"),
            &["anthropic/claude-x", "openai/gpt-4o"],
        );
        ModelRouter::new(&models, &defaults, FakeClock::new(START_MS).shared()).unwrap()
    }

    #[test]
    fn resolve_job_model_and_defaults() {
        let router = resolution_router();
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (Option<&'a str>, Option<Vec<String>>, &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (None, None, &["openai/gpt-4o", "anthropic/claude-x"]),
            (None, Some(vec![]), &["openai/gpt-4o"]),
            (None, Some(strs(&["openai/gpt-4o-mini"])), &["openai/gpt-4o", "openai/gpt-4o-mini"]),
            (Some("anthropic/claude-y"), None, &["anthropic/claude-y"]),
            (Some("anthropic/claude-y"), Some(vec![]), &["anthropic/claude-y"]),
            (
                Some("anthropic/claude-y"),
                Some(strs(&["openai/gpt-4o-mini"])),
                &["anthropic/claude-y", "openai/gpt-4o-mini"],
            ),
            (Some("openai/gpt-4o"), Some(strs(&["openai/gpt-4o"])), &["openai/gpt-4o"]),
            (Some("  "), None, &["openai/gpt-4o", "anthropic/claude-x"]),
        ];
        for (job_model, job_fallbacks, want) in cases {
            let chain = router.resolve(job_model, job_fallbacks.as_deref()).unwrap();
            assert_eq!(refs(&chain), *want, "{job_model:?} {job_fallbacks:?}");
        }
    }

    #[test]
    fn resolve_errors_say_what_to_fix() {
        let router = resolution_router();
        let err = |job_model: Option<&str>, fallbacks: Option<&[String]>| {
            router.resolve(job_model, fallbacks).unwrap_err().to_string()
        };
        expect![[r#"model "openai/gpt-9" is not configured: add it to models.providers.openai.models, or fix the job's model"#]]
            .assert_eq(&err(Some("openai/gpt-9"), None));
        expect![[r#"model "google/gemini" is not configured: there is no provider "google" in models.providers (configured: anthropic, openai); add it, or fix the job's fallbacks"#]]
            .assert_eq(&err(Some("openai/gpt-4o"), Some(&["google/gemini".to_string()])));
        expect![[r#"model "gpt-4o" in the job's model is not a provider/model reference: write it as <provider>/<model>, e.g. "openai/gpt-4o""#]]
            .assert_eq(&err(Some("gpt-4o"), None));

        let (models, defaults) = config(vec![], None, &[]);
        let empty = ModelRouter::new(&models, &defaults, FakeClock::new(0).shared()).unwrap();
        expect![[
            r#"no model to run: set agents.defaults.model.primary (e.g. "openai/gpt-4o"), or give the job a model"#
        ]]
        .assert_eq(&empty.resolve(None, None).unwrap_err().to_string());
        let (models, defaults) = config(vec![], Some("openai/gpt-4o"), &[]);
        let unconfigured = ModelRouter::new(&models, &defaults, FakeClock::new(0).shared()).unwrap();
        expect![[r#"model "openai/gpt-4o" is not configured: there is no provider "openai" in models.providers (configured: none); add it, or fix agents.defaults.model.primary"#]]
            .assert_eq(&unconfigured.resolve(None, None).unwrap_err().to_string());
        assert_eq!(router.check("anthropic/any-model-id").unwrap().model, "any-model-id");
    }

    #[test]
    fn bad_provider_headers_are_setup_errors() {
        let mut bad = provider_config(ProviderApi::OpenAiCompletions, "http://127.0.0.1:9/v1", &[]);
        bad.headers.insert("X-Key".into(), "line\nbreak".into());
        let (models, defaults) = config(vec![("local", bad)], None, &[]);
        let e = ModelRouter::new(&models, &defaults, FakeClock::new(0).shared()).err().unwrap();
        assert_eq!(e.to_string(), "models.providers.local.headers.X-Key: the value is not a valid HTTP header value");
    }

    #[test]
    fn backoff_doubles_caps_jitters_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        for _ in 0..50 {
            for (retry, base) in [(0, 1_000u64), (1, 2_000), (2, 4_000), (4, 16_000), (5, 30_000), (9, 30_000)] {
                let delay = policy.delay_ms(retry, None);
                assert!((base * 8 / 10..=base * 12 / 10).contains(&delay), "retry {retry}: {delay}");
            }
            assert!(policy.delay_ms(0, Some(5_000)) == 5_000);
            assert!(policy.delay_ms(2, Some(100)) >= 3_200);
        }
        let exact = RetryPolicy { jitter: 0.0, ..RetryPolicy::default() };
        assert_eq!(
            (0..7).map(|r| exact.delay_ms(r, None)).collect::<Vec<_>>(),
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
    }

    #[tokio::test]
    async fn rate_limit_then_success_waits_on_the_fake_clock() {
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::rate_limited(Some(2)));
        fake.push(Reply::text("after the wait"));
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &["m"]))],
            Some("local/m"),
            &[],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let deltas = Deltas::default();
        let task = spawn_complete(&router, chain, ChatRequest::new("ignored", "Hi"), &deltas);
        fake.wait_for_requests(1).await;
        drive_until(&clock, 100, || fake.request_count() == 2).await;

        let done = finish(task).await.unwrap().unwrap();
        assert_eq!((done.outcome.text.as_str(), done.model.to_string()), ("after the wait", "local/m".into()));
        assert_eq!(deltas.all().concat(), "after the wait");
        assert_eq!(done.attempts.len(), 2);
        let first = done.attempts[0].error.as_ref().unwrap();
        assert_eq!((first.class, first.retry_after_ms), (ErrorClass::RateLimit, Some(2_000)));
        assert!(first.message.starts_with("local/m: HTTP 429: Rate limit reached"), "{first}");
        let gap = gaps(&done.attempts)[0];
        assert!((2_000..=2_100).contains(&gap), "waited {gap} ms, the server asked for 2000");
        assert!(fake.requests().iter().all(|r| r.model() == Some("m")));
    }

    #[tokio::test]
    async fn server_errors_are_retried_three_times_with_backoff() {
        let fake = FakeOpenAi::start().await;
        fake.set_default(Reply::server_error());
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/m"),
            &[],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let task = spawn_complete(&router, chain, ChatRequest::new("m", "Hi"), &Deltas::default());
        fake.wait_for_requests(1).await;
        for n in 2..=4 {
            drive_until(&clock, 50, || fake.request_count() == n).await;
        }

        let e = finish(task).await.unwrap().unwrap_err();
        assert_eq!((e.class, e.status, e.first_token_received), (ErrorClass::ServerError, Some(500), false));
        assert_eq!(fake.request_count(), 4);
        assert!(e.message.starts_with("local/m: HTTP 500: The server had an error"), "{e}");
    }

    #[tokio::test]
    async fn retry_gaps_follow_the_backoff_schedule() {
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::server_error());
        fake.push(Reply::overloaded());
        fake.push(Reply::server_error());
        fake.push(Reply::text("fourth time lucky"));
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/m"),
            &[],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let task = spawn_complete(&router, chain, ChatRequest::new("m", "Hi"), &Deltas::default());
        fake.wait_for_requests(1).await;
        for n in 2..=4 {
            drive_until(&clock, 50, || fake.request_count() == n).await;
        }

        let done = finish(task).await.unwrap().unwrap();
        assert_eq!(done.outcome.text, "fourth time lucky");
        let classes: Vec<_> = done.attempts.iter().map(|a| a.error.as_ref().map(|e| e.class)).collect();
        assert_eq!(
            classes,
            [Some(ErrorClass::ServerError), Some(ErrorClass::Overloaded), Some(ErrorClass::ServerError), None]
        );
        for (gap, base) in gaps(&done.attempts).into_iter().zip([1_000, 2_000, 4_000]) {
            assert!((base * 8 / 10..=base * 12 / 10 + 50).contains(&gap), "gap {gap} for base {base}");
        }
    }

    #[tokio::test]
    async fn falls_back_to_the_second_model_when_the_first_is_overloaded() {
        let fake = FakeOpenAi::start().await;
        fake.reply_for("busy", Reply::overloaded());
        fake.reply_for("spare", Reply::text("from the spare"));
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &["busy", "spare"]))],
            Some("local/busy"),
            &["local/spare"],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let task = spawn_complete(&router, chain, ChatRequest::new("m", "Hi"), &Deltas::default());
        fake.wait_for_requests(1).await;
        drive_until(&clock, 100, || fake.request_count() == 5).await;

        let done = finish(task).await.unwrap().unwrap();
        assert_eq!((done.model.to_string(), done.outcome.text.as_str()), ("local/spare".into(), "from the spare"));
        let models: Vec<_> = fake.requests().iter().map(|r| r.model().unwrap().to_string()).collect();
        assert_eq!(models, ["busy", "busy", "busy", "busy", "spare"]);
        assert_eq!(done.attempts.len(), 5);
    }

    #[tokio::test]
    async fn falls_back_across_providers_at_once_on_auth_and_says_what_failed() {
        let anthropic = FakeAnthropic::start().await;
        anthropic.set_default(Reply::unauthorized());
        let openai = FakeOpenAi::start().await;
        openai.set_default(Reply::unknown_model());
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![
                ("anthropic", provider_config(ProviderApi::AnthropicMessages, &anthropic.base_url(), &[])),
                ("openai", provider_config(ProviderApi::OpenAiCompletions, &openai.base_url(), &[])),
            ],
            None,
            &[],
            &clock,
        );
        let chain = router.resolve(Some("anthropic/claude-a"), Some(&["openai/gpt-b".to_string()])).unwrap();

        let e = finish(router.complete(&chain, &ChatRequest::new("m", "Hi"), &|_: &str| {})).await.unwrap_err();

        assert_eq!((anthropic.request_count(), openai.request_count()), (1, 1));
        assert_eq!(e.class, ErrorClass::ModelNotFound);
        assert!(e.message.starts_with("openai/gpt-b: HTTP 404: The model `gpt-b` does not exist"), "{e}");
        assert!(e.message.ends_with("(tried before: anthropic/claude-a [auth])"), "{e}");
        assert_eq!(anthropic.requests()[0].model(), Some("claude-a"));
    }

    #[tokio::test]
    async fn empty_response_falls_back() {
        let fake = FakeOpenAi::start().await;
        fake.reply_for("mute", Reply::text(""));
        fake.reply_for("chatty", Reply::text("something"));
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/mute"),
            &["local/chatty"],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let done = finish(router.complete(&chain, &ChatRequest::new("m", "Hi"), &|_: &str| {})).await.unwrap();
        assert_eq!(done.model.to_string(), "local/chatty");
        assert_eq!(done.attempts[0].error.as_ref().unwrap().class, ErrorClass::EmptyResponse);
    }

    #[tokio::test]
    async fn a_strict_job_model_does_not_fall_back() {
        let fake = FakeOpenAi::start().await;
        fake.reply_for("job-model", Reply::overloaded());
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/default"),
            &["local/default-fallback"],
            &clock,
        );
        let chain = router.resolve(Some("local/job-model"), None).unwrap();
        assert_eq!(refs(&chain), ["local/job-model"]);
        let task = spawn_complete(&router, chain, ChatRequest::new("m", "Hi"), &Deltas::default());
        fake.wait_for_requests(1).await;
        drive_until(&clock, 100, || fake.request_count() == 4).await;

        let e = finish(task).await.unwrap().unwrap_err();
        assert_eq!(e.class, ErrorClass::Overloaded);
        assert!(fake.requests().iter().all(|r| r.model() == Some("job-model")));
    }

    #[tokio::test]
    async fn an_unconfigured_job_model_fails_before_any_request() {
        let fake = FakeOpenAi::start().await;
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("openai", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &["gpt-4o"]))],
            Some("openai/gpt-4o"),
            &[],
            &clock,
        );
        let e = router.resolve(Some("openai/gpt-9"), None).unwrap_err();
        assert_eq!(
            e,
            ModelError::UnknownModel {
                reference: "openai/gpt-9".into(),
                provider: "openai".into(),
                place: RefSource::JobModel
            }
        );
        assert_eq!(fake.request_count(), 0);
    }

    #[tokio::test]
    async fn unknown_model_context_overflow_and_format_are_not_retried() {
        let fake = FakeOpenAi::start().await;
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/first"),
            &["local/second"],
            &clock,
        );
        // Strict: the job's model alone.
        let strict = router.resolve(Some("local/first"), None).unwrap();
        fake.push(Reply::unknown_model());
        let e = finish(router.complete(&strict, &ChatRequest::new("m", "Hi"), &|_: &str| {})).await.unwrap_err();
        assert_eq!((e.class, fake.request_count()), (ErrorClass::ModelNotFound, 1));

        // With a fallback: context overflow and format errors end the call on the first model.
        let chain = router.resolve(None, None).unwrap();
        for (reply, class) in
            [(Reply::context_overflow(), ErrorClass::ContextOverflow), (Reply::malformed(), ErrorClass::Format)]
        {
            let before = fake.request_count();
            fake.push(reply);
            let e = finish(router.complete(&chain, &ChatRequest::new("m", "Hi"), &|_: &str| {})).await.unwrap_err();
            assert_eq!((e.class, fake.request_count() - before), (class, 1));
        }
    }

    #[tokio::test]
    async fn nothing_is_retried_once_a_token_was_streamed() {
        let anthropic = FakeAnthropic::start().await;
        anthropic.push(Reply::error_after(2, FakeError::Overloaded));
        let openai = FakeOpenAi::start().await;
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![
                ("anthropic", provider_config(ProviderApi::AnthropicMessages, &anthropic.base_url(), &[])),
                ("openai", provider_config(ProviderApi::OpenAiCompletions, &openai.base_url(), &[])),
            ],
            Some("anthropic/claude"),
            &["openai/gpt"],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let deltas = Deltas::default();
        let e = finish(router.complete(&chain, &ChatRequest::new("m", "Hi"), &deltas.sink())).await.unwrap_err();
        assert_eq!((e.class, e.first_token_received), (ErrorClass::Overloaded, true));
        assert_eq!(deltas.len(), 2);
        assert_eq!((anthropic.request_count(), openai.request_count()), (1, 0));
    }

    #[tokio::test]
    async fn retries_never_wait_past_the_deadline() {
        let fake = FakeOpenAi::start().await;
        fake.set_default(Reply::server_error());
        let clock = FakeClock::new(START_MS);
        let (models, defaults) = config(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/m"),
            &[],
        );
        let exact =
            RouterOptions { retry: RetryPolicy { jitter: 0.0, ..RetryPolicy::default() }, ..Default::default() };
        let router = Arc::new(ModelRouter::with_options(&models, &defaults, clock.shared(), exact).unwrap());
        let chain = router.resolve(None, None).unwrap();
        // The 1st retry waits 1 s; the 2nd would wait 2 s more, past the deadline.
        let req = ChatRequest { deadline_ms: Some(START_MS + 2_500), ..ChatRequest::new("m", "Hi") };
        let task = spawn_complete(&router, chain.clone(), req, &Deltas::default());
        fake.wait_for_requests(1).await;
        drive_until(&clock, 10, || fake.request_count() == 2).await;
        let e = finish(task).await.unwrap().unwrap_err();
        assert_eq!((e.class, fake.request_count()), (ErrorClass::ServerError, 2));
        assert!(clock.now_ms() < START_MS + 2_500);

        // A server asking to wait past the deadline is not waited for either.
        fake.push(Reply::rate_limited(Some(30)));
        let req = ChatRequest { deadline_ms: Some(clock.now_ms() + 10_000), ..ChatRequest::new("m", "Hi") };
        let e = finish(router.complete(&chain, &req, &|_: &str| {})).await.unwrap_err();
        assert_eq!((e.class, fake.request_count()), (ErrorClass::RateLimit, 3));

        // A deadline already past: no request at all.
        let req = ChatRequest { deadline_ms: Some(clock.now_ms()), ..ChatRequest::new("m", "Hi") };
        let e = finish(router.complete(&chain, &req, &|_: &str| {})).await.unwrap_err();
        assert_eq!((e.class, fake.request_count()), (ErrorClass::Timeout, 3));
        assert!(e.message.contains("time limit"), "{e}");
    }

    #[tokio::test]
    async fn a_deadline_hit_mid_stream_ends_the_call_without_fallback() {
        let fake = FakeOpenAi::start().await;
        fake.reply_for("slow", Reply::stall_after(0));
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/slow"),
            &["local/other"],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let req = ChatRequest { deadline_ms: Some(START_MS + 5_000), ..ChatRequest::new("m", "Hi") };
        let task = spawn_complete(&router, chain, req, &Deltas::default());
        fake.wait_for_requests(1).await;
        drive_until(&clock, 100, || task.is_finished()).await;
        let e = finish(task).await.unwrap().unwrap_err();
        assert_eq!((e.class, fake.request_count()), (ErrorClass::Timeout, 1));
        assert!(e.message.starts_with("local/slow: the run's time limit was reached"), "{e}");
    }

    #[tokio::test]
    async fn a_first_token_timeout_falls_back_without_retrying() {
        let fake = FakeOpenAi::start().await;
        fake.reply_for("slow", Reply::stall_after(0));
        fake.reply_for("fast", Reply::no_reply());
        let clock = FakeClock::new(START_MS);
        let router = router(
            vec![("local", provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), &[]))],
            Some("local/slow"),
            &["local/fast"],
            &clock,
        );
        let chain = router.resolve(None, None).unwrap();
        let deltas = Deltas::default();
        let task = spawn_complete(&router, chain, ChatRequest::new("m", "Hi"), &deltas);
        fake.wait_for_requests(1).await;
        drive_until(&clock, 500, || fake.request_count() == 2).await;
        let done = finish(task).await.unwrap().unwrap();
        assert_eq!((done.model.to_string(), done.outcome.text.as_str()), ("local/fast".into(), "NO_REPLY"));
        assert_eq!(done.attempts[0].error.as_ref().unwrap().class, ErrorClass::Timeout);
        wait_until(|| deltas.len() == 1).await;
    }
}
