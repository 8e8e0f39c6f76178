//! The agent service end to end without the gateway: real fake model servers on 127.0.0.1, a
//! real SQLite store, the scheduler's `AgentRunner` calls, the methods, and a `FakeClock` that
//! only the tests move.

use std::sync::Arc;

use pincer_core::config::{ModelsConfig, ProviderApi, Retention};
use pincer_core::{Clock, Config, EventBus, FakeClock, Metrics};
use pincer_cron::job::{CreateContext, Job};
use pincer_cron::{AgentRunner, ExecOutcome, ExecStatus, PreflightError, RunContext};
use pincer_store::{PendingEvent, SessionRow, Store, TranscriptRow};
use pincer_testkit::fakes::anthropic::FakeAnthropic;
use pincer_testkit::fakes::openai::{FakeOpenAi, FakeUsage, Reply};
use serde_json::{Value, json};

use pincer_protocol::schema::cron::{AddParams, RunParams, RunsParams};
use pincer_protocol::schema::{Params, parse_params};
use serde::Serialize;

use crate::api::{self, ApiError};
use crate::provider::testing::{START_MS, drive_until, finish, provider_config, wait_until};
use crate::{AgentDeps, AgentOptions, Agents, NO_MODEL};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// `openai/<models[0]>` as the primary, the rest as fallbacks, all served by `fake`.
fn openai_config(fake: &FakeOpenAi, models: &[&str]) -> Config {
    let provider = provider_config(ProviderApi::OpenAiCompletions, &fake.base_url(), models);
    let mut config =
        Config { models: ModelsConfig { providers: [("openai".to_string(), provider)].into() }, ..Config::default() };
    config.agents.defaults.model.primary = Some(format!("openai/{}", models[0]));
    config.agents.defaults.model.fallbacks = models[1..].iter().map(|m| format!("openai/{m}")).collect();
    config
}

/// A method as the gateway runs it: params parsed by the schema, the answer serialised.
fn params<P: Params>(method: &str, v: Value) -> Result<P, ApiError> {
    parse_params(method, Some(&v)).map_err(|e| ApiError::Invalid(e.0))
}

fn answer<T: Serialize>(r: Result<T, ApiError>) -> Result<Value, ApiError> {
    r.map(|t| serde_json::to_value(t).unwrap())
}

async fn call_agent(agents: &Agents, v: Value) -> Result<Value, ApiError> {
    answer(api::agent(agents, params("agent", v)?, |_| {}).await)
}

async fn call_sessions_list(agents: &Agents, v: Value) -> Result<Value, ApiError> {
    answer(api::sessions_list(agents, params("sessions.list", v)?).await)
}

async fn call_chat_history(agents: &Agents, v: Value) -> Result<Value, ApiError> {
    answer(api::chat_history(agents, params("chat.history", v)?).await)
}

async fn call_wake(agents: &Agents, v: Value) -> Result<Value, ApiError> {
    answer(api::wake(agents, params("wake", v)?).await)
}

struct Harness {
    agents: Agents,
    store: Store,
    clock: FakeClock,
    events: EventBus,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(config: Config) -> Harness {
        Harness::start_with(config, AgentOptions::default()).await
    }

    async fn start_with(config: Config, options: AgentOptions) -> Harness {
        Harness::start_full(config, options, None).await
    }

    async fn start_full(mut config: Config, options: AgentOptions, tools: Option<crate::AgentTools>) -> Harness {
        config.agents.defaults.timezone.get_or_insert_with(|| "UTC".into());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        let clock = FakeClock::new(START_MS);
        let (events, metrics) = (EventBus::default(), Arc::new(Metrics::default()));
        let deps = AgentDeps {
            store: store.clone(),
            clock: clock.shared(),
            events: events.clone(),
            metrics: metrics.clone(),
            config: Arc::new(config),
            supervisor: pincer_core::Supervisor::new(clock.shared(), metrics.clone()),
            tools,
        };
        let agents = Agents::start_with(deps, options).unwrap();
        Harness { agents, store, clock, events, metrics, _dir: dir }
    }

    /// A job as `cron.add` would create it from `params` (delivery off unless given).
    fn job(&self, mut params: Value) -> Job {
        params.as_object_mut().unwrap().entry("delivery").or_insert(json!({"mode": "none"}));
        params.as_object_mut().unwrap().entry("schedule").or_insert(json!({"kind": "every", "everyMs": HOUR}));
        let ctx = CreateContext { now_ms: self.clock.now_ms(), default_tz: "UTC", channels: &Default::default() };
        let input = parse_params::<AddParams>("cron.add", Some(&params)).unwrap().0;
        pincer_cron::job::create(input, uuid::Uuid::new_v4().to_string(), &ctx).unwrap()
    }

    fn agent_job(&self, target: &str, message: &str) -> Job {
        self.job(json!({"name": "Morning brief", "sessionTarget": target,
            "payload": {"kind": "agentTurn", "message": message}}))
    }

    /// What the scheduler hands the runner: a run id, the time limit, the job's zone.
    fn ctx(&self, job: &Job, tz: &str) -> RunContext {
        let now = self.clock.now_ms();
        RunContext {
            run_id: format!("cron:{}:{now}", job.id),
            job: job.clone(),
            slot_ms: Some(now),
            started_at_ms: now,
            deadline_ms: job.payload.timeout_ms().map(|ms| now + ms as i64),
            tz: tz.into(),
        }
    }

    async fn run(&self, job: &Job) -> ExecOutcome {
        let ctx = self.ctx(job, "UTC");
        finish(self.agents.run(&ctx)).await
    }

    fn spawn_run(&self, job: &Job) -> tokio::task::JoinHandle<ExecOutcome> {
        let (agents, ctx) = (self.agents.clone(), self.ctx(job, "UTC"));
        tokio::spawn(async move { agents.run(&ctx).await })
    }

    async fn session(&self, key: &str) -> Option<SessionRow> {
        let key = key.to_string();
        self.store.read(move |rd| rd.get_session(&key)).await.unwrap()
    }

    async fn transcript(&self, key: &str) -> Vec<TranscriptRow> {
        let key = key.to_string();
        self.store.read(move |rd| rd.transcript(&key, 1000, None)).await.unwrap()
    }

    async fn pending(&self, key: &str) -> Vec<PendingEvent> {
        let key = key.to_string();
        self.store.read(move |rd| rd.pending_events(&key)).await.unwrap()
    }

    fn status(&self, pointer: &str) -> u64 {
        self.agents.status().pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Waits (real time) until the status counter at `pointer` reaches `n`.
    async fn wait_status(&self, pointer: &str, n: u64) {
        wait_until(|| self.status(pointer) >= n).await;
    }
}

fn roles(rows: &[TranscriptRow]) -> Vec<(&str, &str)> {
    rows.iter().map(|r| (r.role.as_str(), r.content.as_str())).collect()
}

/// The `{role, content}` messages of a request body.
fn sent(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap().to_string()))
        .collect()
}

mod tools;

#[tokio::test]
async fn an_isolated_run_replies_with_usage_on_the_outcome_and_the_session() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("All systems nominal.").with_usage(FakeUsage {
        input: 21,
        output: 9,
        cache_read: 5,
        cache_write: 0,
    }));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.agent_job("isolated", "Check the systems");

    let out = h.run(&job).await;

    let key = format!("agent:main:cron:{}:run:cron:{}:{START_MS}", job.id, job.id);
    assert_eq!(
        out,
        ExecOutcome {
            status: Some(ExecStatus::Ok),
            text: Some("All systems nominal.".into()),
            model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            usage: Some(json!({"input_tokens": 21, "output_tokens": 9, "total_tokens": 35, "cache_read_tokens": 5})),
            session_key: Some(key.clone()),
            ..Default::default()
        }
    );
    assert!(fake.requests()[0].stream(), "turns stream by default");
    let s = h.session(&key).await.unwrap();
    assert_eq!(
        (s.kind.as_str(), s.job_id.as_deref(), s.model.as_deref()),
        ("isolated", Some(job.id.as_str()), Some("openai/gpt-4o"))
    );
    assert_eq!((s.input_tokens, s.output_tokens, s.messages, s.finished_at_ms), (21, 9, 2, Some(START_MS)));
    let t = h.transcript(&key).await;
    assert_eq!(
        roles(&t),
        [
            ("user", format!("[cron:{} Morning brief] Check the systems", job.id).as_str()),
            ("assistant", "All systems nominal.")
        ]
    );
    let meta: Value = serde_json::from_str(t[1].meta_json.as_deref().unwrap()).unwrap();
    assert_eq!((meta["model"].as_str(), meta["usage"]["output_tokens"].as_u64()), (Some("openai/gpt-4o"), Some(9)));
    let metrics = h.metrics.render();
    for line in [
        r#"pincer_agent_turns_total{kind="cron",outcome="ok",model="openai/gpt-4o"} 1"#,
        r#"pincer_agent_tokens_total{direction="input",model="openai/gpt-4o"} 21"#,
        r#"pincer_agent_tokens_total{direction="output",model="openai/gpt-4o"} 9"#,
        r#"pincer_agent_model_seconds_count{model="openai/gpt-4o"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn replies_arrive_whole_when_streaming_is_off() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Whole, not streamed.").with_usage(FakeUsage::new(12, 4)));
    let mut config = Config::default();
    config.models.providers =
        [("anthropic".to_string(), provider_config(ProviderApi::AnthropicMessages, &fake.base_url(), &[]))].into();
    config.agents.defaults.model.primary = Some("anthropic/claude-test".into());
    let h = Harness::start_with(config, AgentOptions { stream: false, ..AgentOptions::default() }).await;

    let out = h.run(&h.agent_job("isolated", "Hi")).await;

    assert_eq!(
        (out.exec_status(), out.text.as_deref(), out.provider.as_deref(), out.model.as_deref()),
        (ExecStatus::Ok, Some("Whole, not streamed."), Some("anthropic"), Some("claude-test"))
    );
    assert_eq!(out.usage.unwrap()["input_tokens"], 12);
    let req = &fake.requests()[0];
    assert!(!req.stream());
    assert!(req.body["system"].as_str().unwrap().contains("unattended"), "Anthropic gets the system prompt apart");
}

#[tokio::test]
async fn a_rate_limit_is_retried_on_the_fake_clock_then_succeeds() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::rate_limited(Some(2)));
    fake.push(Reply::text("after the wait"));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.agent_job("isolated", "Hi");
    let run = h.spawn_run(&job);
    fake.wait_for_requests(1).await;
    assert!(!run.is_finished(), "waits for the clock, not for real time");

    drive_until(&h.clock, 100, || fake.request_count() == 2).await;

    let out = finish(run).await.unwrap();
    assert_eq!((out.exec_status(), out.text.as_deref()), (ExecStatus::Ok, Some("after the wait")));
    let t = h.transcript(out.session_key.as_deref().unwrap()).await;
    assert_eq!(
        t.iter().map(|r| r.role.as_str()).collect::<Vec<_>>(),
        ["user", "assistant"],
        "one question, one answer"
    );
}

#[tokio::test]
async fn server_errors_end_in_server_error_naming_the_model() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::server_error());
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let run = h.spawn_run(&h.agent_job("isolated", "Hi"));
    fake.wait_for_requests(1).await;

    drive_until(&h.clock, 100, || run.is_finished()).await;

    let out = finish(run).await.unwrap();
    assert_eq!(fake.request_count(), 4, "the first call and three retries");
    assert_eq!(
        (out.exec_status(), out.error_reason.map(|r| r.as_str()), out.model.as_deref(), out.provider.as_deref()),
        (ExecStatus::Error, Some("server_error"), Some("gpt-4o"), Some("openai"))
    );
    let error = out.error.unwrap();
    assert!(error.starts_with("openai/gpt-4o: HTTP 500"), "{error}");
    let key = out.session_key.unwrap();
    let t = h.transcript(&key).await;
    assert_eq!(t.iter().map(|r| r.role.as_str()).collect::<Vec<_>>(), ["user", "system"]);
    assert!(h.session(&key).await.unwrap().finished_at_ms.is_some(), "a failed run's session is finished too");
    assert!(
        h.metrics
            .render()
            .contains(r#"pincer_agent_turns_total{kind="cron",outcome="server_error",model="openai/gpt-4o"} 1"#)
    );
}

#[tokio::test]
async fn a_stalled_stream_hits_the_run_time_limit() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::stall_after(2));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.job(json!({"name": "slow", "sessionTarget": "isolated",
        "payload": {"kind": "agentTurn", "message": "Hi", "timeoutSeconds": 30}}));
    let run = h.spawn_run(&job);
    fake.wait_for_requests(1).await;

    drive_until(&h.clock, 1_000, || run.is_finished()).await;

    let out = finish(run).await.unwrap();
    assert_eq!((out.exec_status(), out.error_reason.map(|r| r.as_str())), (ExecStatus::Error, Some("timeout")));
    assert!(out.error.as_deref().unwrap().contains("time limit"), "{:?}", out.error);
    // The clock moves 1 s per real millisecond here, so allow a few steps past the limit.
    let ended = h.session(out.session_key.as_deref().unwrap()).await.unwrap().finished_at_ms.unwrap();
    assert!((START_MS + 30_000..START_MS + 35_000).contains(&ended), "ended at +{} ms", ended - START_MS);
}

#[tokio::test]
async fn a_run_dropped_by_the_scheduler_still_finishes_its_session() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::stall_after(1));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.agent_job("isolated", "Hi");
    let run = h.spawn_run(&job);
    fake.wait_for_requests(1).await;
    let key = format!("agent:main:cron:{}:run:cron:{}:{START_MS}", job.id, job.id);
    wait_until(|| h.store.read_blocking(|rd| rd.get_session(&key)).unwrap().is_some()).await;

    run.abort();

    wait_until(|| h.store.read_blocking(|rd| rd.get_session(&key)).unwrap().unwrap().finished_at_ms.is_some()).await;
}

#[tokio::test]
async fn an_unknown_model_is_model_not_found() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::unknown_model());
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let out = h.run(&h.agent_job("isolated", "Hi")).await;
    assert_eq!((out.exec_status(), out.error_reason.map(|r| r.as_str())), (ExecStatus::Error, Some("model_not_found")));
    assert!(out.error.as_deref().unwrap().starts_with("openai/gpt-4o: HTTP 404"), "{:?}", out.error);
    assert_eq!(fake.request_count(), 1, "not retried");
}

#[tokio::test]
async fn no_reply_comes_back_as_text_for_the_scheduler_to_silence() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::no_reply());
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let out = h.run(&h.agent_job("isolated", "Anything new?")).await;
    assert_eq!((out.exec_status(), out.text.as_deref()), (ExecStatus::Ok, Some("NO_REPLY")));
}

#[tokio::test]
async fn an_overloaded_model_falls_back_to_the_second() {
    let fake = FakeOpenAi::start().await;
    fake.reply_for("gpt-4o", Reply::overloaded());
    fake.reply_for("gpt-4o-mini", Reply::text("from the fallback"));
    let h = Harness::start(openai_config(&fake, &["gpt-4o", "gpt-4o-mini"])).await;
    let run = h.spawn_run(&h.agent_job("isolated", "Hi"));
    fake.wait_for_requests(1).await;

    drive_until(&h.clock, 100, || fake.request_count() == 5).await;

    let out = finish(run).await.unwrap();
    assert_eq!((out.text.as_deref(), out.model.as_deref()), (Some("from the fallback"), Some("gpt-4o-mini")));
    let s = h.session(out.session_key.as_deref().unwrap()).await.unwrap();
    assert_eq!(s.model.as_deref(), Some("openai/gpt-4o-mini"));
}

#[tokio::test]
async fn a_job_model_that_is_not_configured_fails_preflight_before_any_request() {
    let fake = FakeOpenAi::start().await;
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.job(json!({"name": "n", "sessionTarget": "isolated",
        "payload": {"kind": "agentTurn", "message": "Hi", "model": "openai/gpt-9"}}));
    let e = h.agents.preflight(&job).unwrap_err();
    assert!(
        e.to_string().starts_with("model \"openai/gpt-9\" is not configured: add it to models.providers.openai.models"),
        "{e}"
    );
    let job = h.job(json!({"name": "n", "sessionTarget": "isolated",
        "payload": {"kind": "agentTurn", "message": "Hi", "fallbacks": ["google/gemini"]}}));
    assert!(h.agents.preflight(&job).unwrap_err().to_string().contains("no provider \"google\""));
    assert!(h.agents.preflight(&h.agent_job("isolated", "Hi")).is_ok());
    assert_eq!(fake.request_count(), 0);
}

/// The job's first finished run record (polled in real time, at most 10 s).
async fn first_run(cron: &pincer_cron::CronService, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let page =
            pincer_cron::api::runs(cron, RunsParams { id: Some(id.into()), ..Default::default() }).await.unwrap();
        if let Some(run) = page.entries.into_iter().find(|e| e.status.is_some()) {
            return serde_json::to_value(run).unwrap();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "job {id} never finished a run");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_scheduler_runs_agent_jobs_through_the_runner_and_preflight() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Scheduled reply").with_usage(FakeUsage::new(30, 7)));
    let h = Harness::start(openai_config(&fake, &["gpt-4o", "gpt-4o-mini"])).await;
    let generation = h.store.write(|tx| tx.record_boot()).await.unwrap();
    let cron = pincer_cron::CronService::start(pincer_cron::CronDeps {
        store: h.store.clone(),
        clock: h.clock.shared(),
        events: h.events.clone(),
        metrics: h.metrics.clone(),
        config: Default::default(),
        default_tz: "UTC".into(),
        channels: Default::default(),
        generation,
        agent: Some(Arc::new(h.agents.clone())),
        announcer: None,
        command_supervisor: None,
        supervisor: pincer_core::Supervisor::new(h.clock.shared(), h.metrics.clone()),
        failpoints: Default::default(),
    })
    .await
    .unwrap();
    let add = |model: Option<&str>| {
        let mut payload = json!({"kind": "agentTurn", "message": "Report"});
        if let Some(m) = model {
            payload["model"] = json!(m);
        }
        let params = json!({"name": "report", "schedule": {"kind": "every", "everyMs": HOUR}, "sessionTarget": "isolated",
            "payload": payload, "delivery": {"mode": "none"}});
        parse_params::<AddParams>("cron.add", Some(&params)).unwrap().0
    };
    let ok = cron.add(add(None)).await.unwrap();
    pincer_cron::api::run(&cron, RunParams { id: Some(ok.id.clone()), ..Default::default() }, "boot").await.unwrap();
    let run = first_run(&cron, &ok.id).await;
    assert_eq!((run["status"].as_str(), run["summary"].as_str()), (Some("ok"), Some("Scheduled reply")));
    assert_eq!((run["model"].as_str(), run["provider"].as_str()), (Some("gpt-4o"), Some("openai")));
    assert_eq!(run["usage"], json!({"input_tokens": 30, "output_tokens": 7, "total_tokens": 37}));
    assert!(run["sessionKey"].as_str().unwrap().starts_with(&format!("agent:main:cron:{}:run:", ok.id)));

    // A model that is not configured is refused when the job is added, naming those that are.
    let refused = cron.add(add(Some("openai/gpt-9"))).await.unwrap_err().to_string();
    assert!(refused.contains("the configured models are openai/gpt-4o, openai/gpt-4o-mini"), "{refused}");
    // One that stops being configured later (a config reload) fails its runs before any request.
    let bad = cron.add(add(Some("openai/gpt-4o-mini"))).await.unwrap();
    h.agents.set_models(Arc::new(openai_config(&fake, &["gpt-4o"]))).unwrap();
    pincer_cron::api::run(&cron, RunParams { id: Some(bad.id.clone()), ..Default::default() }, "boot").await.unwrap();
    let run = first_run(&cron, &bad.id).await;
    assert_eq!((run["status"].as_str(), run["errorReason"].as_str()), (Some("error"), Some("model_not_found")));
    assert_eq!(fake.request_count(), 1, "the unconfigured model never reached the server");
    cron.shutdown().await;
}

#[tokio::test]
async fn without_a_model_agent_turns_fail_preflight_and_system_events_still_queue() {
    let h = Harness::start(Config::default()).await;
    assert_eq!(
        h.agents.preflight(&h.agent_job("isolated", "Hi")).unwrap_err(),
        PreflightError::NoModel(NO_MODEL.into())
    );
    assert!(NO_MODEL.starts_with("no model is configured: set agents.defaults.model.primary"));

    let later = h.job(json!({"name": "n", "sessionTarget": "main", "wakeMode": "next-heartbeat",
        "payload": {"kind": "systemEvent", "text": "later"}}));
    assert!(h.agents.preflight(&later).is_ok());
    assert_eq!(h.run(&later).await.exec_status(), ExecStatus::Ok);
    let now = h.job(json!({"name": "n", "sessionTarget": "main", "wakeMode": "now",
        "payload": {"kind": "systemEvent", "text": "now"}}));
    let out = h.run(&now).await;
    assert_eq!(out.exec_status(), ExecStatus::Skipped);
    assert!(out.error.unwrap().ends_with("the event waits in the main session's queue"));
    let queued: Vec<String> = h.pending("agent:main:main").await.into_iter().map(|e| e.text).collect();
    assert_eq!(queued, ["later", "now"]);
}

#[tokio::test]
async fn a_named_session_keeps_its_history_across_runs() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Noted: the build is green."));
    fake.push(Reply::text("Still green."));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.agent_job("session:research", "How is the build?");

    assert_eq!(h.run(&job).await.text.as_deref(), Some("Noted: the build is green."));
    h.clock.advance(HOUR);
    let second = h.run(&job).await;

    assert_eq!(second.session_key.as_deref(), Some("agent:main:session:research"));
    let prompt = format!("[cron:{} Morning brief] How is the build?", job.id);
    let messages = sent(&fake.requests()[1].body);
    assert_eq!(messages[0].0, "system");
    assert_eq!(
        messages[1..],
        [
            ("user".to_string(), prompt.clone()),
            ("assistant".to_string(), "Noted: the build is green.".to_string()),
            ("user".to_string(), prompt)
        ]
    );
    let s = h.session("agent:main:session:research").await.unwrap();
    assert_eq!((s.kind.as_str(), s.messages, s.finished_at_ms), ("named", 4, None));
}

#[tokio::test]
async fn a_system_event_with_wake_now_runs_a_main_session_turn() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Good to know the backup finished."));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.job(json!({"name": "backup", "sessionTarget": "main", "wakeMode": "now",
        "payload": {"kind": "systemEvent", "text": "Backup finished"}}));

    let out = h.run(&job).await;

    assert_eq!(
        (out.exec_status(), out.text.as_deref(), out.session_key.as_deref()),
        (ExecStatus::Ok, Some("Backup finished"), Some("agent:main:main"))
    );
    let messages = sent(&fake.requests()[0].body);
    assert_eq!(messages.last().unwrap().1, format!("System event (cron:{}): Backup finished", job.id));
    assert!(messages[0].1.contains("System event"), "the main-session system prompt explains events");
    assert_eq!(
        roles(&h.transcript("agent:main:main").await),
        [("event", "Backup finished"), ("assistant", "Good to know the backup finished.")]
    );
}

#[tokio::test]
async fn next_heartbeat_events_wait_for_the_heartbeat() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Noted."));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h.job(json!({"name": "n", "sessionTarget": "main", "wakeMode": "next-heartbeat",
        "payload": {"kind": "systemEvent", "text": "Disk 91% full"}}));

    let out = h.run(&job).await;

    assert_eq!((out.exec_status(), out.text.as_deref()), (ExecStatus::Ok, Some("Disk 91% full")));
    assert_eq!((fake.request_count(), h.pending("agent:main:main").await.len()), (0, 1));
    assert_eq!(h.status("/heartbeat/nextAtMs"), (START_MS + 30 * MINUTE) as u64);

    h.clock.advance(30 * MINUTE);
    h.wait_status("/heartbeat/ticks", 1).await;

    assert_eq!(fake.request_count(), 1);
    assert_eq!(
        sent(&fake.requests()[0].body).last().unwrap().1,
        format!("System event (cron:{}): Disk 91% full", job.id)
    );
    assert!(h.pending("agent:main:main").await.is_empty());
    assert_eq!(roles(&h.transcript("agent:main:main").await), [("event", "Disk 91% full"), ("assistant", "Noted.")]);
    assert_eq!(h.status("/heartbeat/turns"), 1);
}

#[tokio::test]
async fn an_idle_heartbeat_makes_no_request() {
    let fake = FakeOpenAi::start().await;
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    for tick in 1..=2 {
        h.clock.advance(30 * MINUTE);
        h.wait_status("/heartbeat/ticks", tick).await;
    }
    assert_eq!(fake.request_count(), 0);
    assert!(h.metrics.render().contains(r#"pincer_agent_heartbeats_total{outcome="idle"} 2"#));
}

#[tokio::test]
async fn a_zero_heartbeat_or_cron_disabled_turns_the_heartbeat_off() {
    let fake = FakeOpenAi::start().await;
    let mut config = openai_config(&fake, &["gpt-4o"]);
    config.agents.defaults.heartbeat.every = "0m".into();
    let h = Harness::start(config).await;
    assert_eq!(h.agents.status()["heartbeat"]["everyMs"], Value::Null);
    let mut cron_off = openai_config(&fake, &["gpt-4o"]);
    cron_off.cron.enabled = false;
    assert_eq!(Harness::start(cron_off).await.agents.status()["heartbeat"]["everyMs"], Value::Null);
    let mut bad = Config::default();
    bad.agents.defaults.heartbeat.every = "30".into();
    let deps = AgentDeps {
        store: h.store.clone(),
        clock: h.clock.shared(),
        events: h.events.clone(),
        metrics: h.metrics.clone(),
        config: Arc::new(bad),
        supervisor: pincer_core::Supervisor::new(h.clock.shared(), h.metrics.clone()),
        tools: None,
    };
    let e = Agents::start(deps).err().unwrap().to_string();
    assert!(e.starts_with("agents.defaults.heartbeat.every: duration `30` needs a unit"), "{e}");
}

#[tokio::test]
async fn retention_prunes_finished_isolated_sessions_after_24_hours() {
    let fake = FakeOpenAi::start().await;
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let isolated = h.run(&h.agent_job("isolated", "Hi")).await.session_key.unwrap();
    let named = h.run(&h.agent_job("session:notes", "Hi")).await.session_key.unwrap();

    h.clock.advance(23 * HOUR);
    h.wait_status("/sessionRetention/sweeps", 1).await;
    assert!(h.session(&isolated).await.is_some(), "kept for 24 h");

    h.clock.advance(HOUR + 5 * MINUTE);
    h.wait_status("/sessionRetention/sweeps", 2).await;
    assert!(h.session(&isolated).await.is_none(), "pruned after 24 h");
    assert!(h.transcript(&isolated).await.is_empty());
    assert!(h.session(&named).await.is_some(), "named sessions stay");
    assert_eq!(h.status("/sessionRetention/pruned"), 1);
}

#[tokio::test]
async fn retention_false_keeps_isolated_sessions() {
    let fake = FakeOpenAi::start().await;
    let mut config = openai_config(&fake, &["gpt-4o"]);
    config.cron.session_retention = Retention::Off(false);
    let h = Harness::start(config).await;
    assert_eq!(h.agents.status()["sessionRetention"]["keepMs"], Value::Null);
    let mut hours = Config::default();
    hours.cron.session_retention = Retention::Duration("48".into());
    let deps = AgentDeps {
        store: h.store.clone(),
        clock: h.clock.shared(),
        events: h.events.clone(),
        metrics: h.metrics.clone(),
        config: Arc::new(hours),
        supervisor: pincer_core::Supervisor::new(h.clock.shared(), h.metrics.clone()),
        tools: None,
    };
    assert_eq!(
        Agents::start(deps).unwrap().status()["sessionRetention"]["keepMs"],
        48 * HOUR,
        "a bare number is hours"
    );
}

#[tokio::test]
async fn prompts_carry_the_time_in_the_job_zone_and_the_cron_prefix() {
    let fake = FakeOpenAi::start().await;
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let job = h
        .job(json!({"name": "Tokyo brief", "schedule": {"kind": "cron", "expr": "0 7 * * *", "tz": "Asia/Tokyo"},
        "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "Summarize the night"}}));

    finish(h.agents.run(&h.ctx(&job, "Asia/Tokyo"))).await;

    let messages = sent(&fake.requests()[0].body);
    assert_eq!(messages.len(), 2);
    let (system, user) = (&messages[0], &messages[1]);
    assert_eq!(system.0, "system");
    // START_MS is 2023-11-14T22:13:20Z.
    assert!(
        system.1.contains("Current time: Wednesday, 2023-11-15 07:13 JST (Asia/Tokyo, UTC+09:00)."),
        "{}",
        system.1
    );
    assert!(system.1.contains("exactly NO_REPLY"));
    assert_eq!(user, &("user".to_string(), format!("[cron:{} Tokyo brief] Summarize the night", job.id)));
}

/// Every `agent` event until (and with) the run's end.
async fn agent_events(rx: &mut tokio::sync::broadcast::Receiver<Arc<pincer_core::BusEvent>>) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let ev = finish(rx.recv()).await.unwrap();
        if ev.name != "agent" {
            continue;
        }
        assert_eq!(ev.scope, Some("operator.write"));
        let done = ev.payload["stream"] == "lifecycle" && ev.payload["data"]["phase"] != "start";
        events.push(ev.payload.clone());
        if done {
            return events;
        }
    }
}

#[tokio::test]
async fn the_agent_method_streams_events_and_answers() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Hello there, friend.").in_chunks(3).with_usage(FakeUsage::new(8, 4)));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let mut rx = h.events.subscribe();

    let res = finish(call_agent(&h.agents, json!({"message": "Hi", "idempotencyKey": "run-1"}))).await.unwrap();

    assert_eq!(
        res,
        json!({"runId": "run-1", "status": "ok", "summary": "completed", "sessionKey": "agent:main:main",
            "text": "Hello there, friend.", "model": "openai/gpt-4o", "provider": "openai",
            "usage": {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12},
            "result": {"payloads": [{"text": "Hello there, friend."}], "meta": {"durationMs": 0, "agentMeta": {
                "sessionKey": "agent:main:main", "provider": "openai", "model": "gpt-4o",
                "usage": {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}}}}})
    );
    let events = agent_events(&mut rx).await;
    assert!(events.iter().all(|e| e["runId"] == "run-1" && e["sessionKey"] == "agent:main:main"));
    assert_eq!(
        events.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(),
        (0..events.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(events[0]["data"]["phase"], "start");
    let deltas: Vec<&str> =
        events.iter().filter(|e| e["stream"] == "assistant").map(|e| e["data"]["delta"].as_str().unwrap()).collect();
    assert_eq!(deltas.len(), 3);
    assert_eq!(deltas.concat(), "Hello there, friend.");
    let end = events.last().unwrap();
    assert_eq!(
        (end["data"]["phase"].as_str(), end["data"]["text"].as_str()),
        (Some("end"), Some("Hello there, friend."))
    );

    let again = finish(call_agent(&h.agents, json!({"message": "Hi", "idempotencyKey": "run-1"}))).await.unwrap();
    assert_eq!(again, res, "the same idempotencyKey answers from the first run");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(roles(&h.transcript("agent:main:main").await), [("user", "Hi"), ("assistant", "Hello there, friend.")]);
}

#[tokio::test]
async fn the_agent_method_reports_failures_with_their_class() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::unknown_model());
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let mut rx = h.events.subscribe();
    let e = finish(call_agent(&h.agents, json!({"message": "Hi", "sessionKey": "isolated", "idempotencyKey": "r2"})))
        .await
        .unwrap_err();
    let ApiError::Failed { message, reason, run_id } = e else { panic!("{e:?}") };
    assert!(message.starts_with("openai/gpt-4o: HTTP 404"), "{message}");
    assert_eq!((reason.as_str(), run_id.as_str()), ("model_not_found", "r2"));
    let end = agent_events(&mut rx).await.pop().unwrap();
    assert_eq!(
        (end["data"]["phase"].as_str(), end["data"]["errorReason"].as_str()),
        (Some("error"), Some("model_not_found"))
    );
    let s = h.session("agent:main:run:r2").await.unwrap();
    assert_eq!((s.kind.as_str(), s.finished_at_ms.is_some()), ("isolated", true));
}

#[tokio::test]
async fn method_params_are_closed_and_errors_name_the_field() {
    let fake = FakeOpenAi::start().await;
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let agent = |params: Value| {
        let agents = h.agents.clone();
        async move { call_agent(&agents, params).await.unwrap_err().to_string() }
    };
    let cases = [
        (json!({}), "invalid agent params: missing field `message`"),
        (json!({"message": "  "}), "invalid agent params: message: must not be empty"),
        (json!({"message": "Hi", "thinking": "high"}), "invalid agent params: thinking: not supported by Pincer"),
        (json!({"message": "Hi", "bogus": 1}), "invalid agent params: unknown field `bogus`, expected one of"),
        (json!({"message": "Hi", "timeout": "soon"}), "invalid agent params: timeout: invalid type"),
        (
            json!({"message": "Hi", "model": "openai/gpt-9"}),
            "invalid agent params: model: model \"openai/gpt-9\" is not configured",
        ),
        (json!({"message": "Hi", "provider": "openai"}), "invalid agent params: provider: needs model too"),
        (json!({"message": "Hi", "sessionKey": "session:a/b"}), "invalid agent params: sessionKey: session id \"a/b\""),
    ];
    for (params, want) in cases {
        let got = agent(params.clone()).await;
        assert!(got.starts_with(want), "{params}: {got}");
    }
    let err = |r: Result<Value, ApiError>| r.unwrap_err().to_string();
    assert!(
        err(call_sessions_list(&h.agents, json!({"search": "x"})).await).ends_with("search: not supported by Pincer")
    );
    assert!(err(call_sessions_list(&h.agents, json!({"kind": "group"})).await).contains("kind: \"group\" is not main"));
    assert!(err(call_chat_history(&h.agents, json!({})).await).contains("missing field `sessionKey`"));
    assert!(
        err(call_chat_history(&h.agents, json!({"sessionKey": "main", "maxChars": 9})).await)
            .ends_with("maxChars: not supported by Pincer")
    );
    assert!(
        err(call_wake(&h.agents, json!({"mode": "later", "text": "x"})).await)
            .contains("mode: unknown variant `later`")
    );
    assert!(err(call_wake(&h.agents, json!({"mode": "now", "text": " "})).await).ends_with("text: must not be empty"));
    assert!(
        err(call_wake(&h.agents, json!({"mode": "now", "text": "x", "sessionKey": "isolated"})).await)
            .contains("isolated run's session")
    );
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn sessions_list_and_chat_history_page_through_what_was_recorded() {
    let fake = FakeOpenAi::start().await;
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    for (i, key) in ["main", "main", "session:notes", "isolated"].into_iter().enumerate() {
        h.clock.advance(1_000);
        let params = json!({"message": format!("question {i}"), "sessionKey": key});
        finish(call_agent(&h.agents, params)).await.unwrap();
    }

    let all = call_sessions_list(&h.agents, json!({})).await.unwrap();
    assert_eq!((all["total"].as_u64(), all["hasMore"].as_bool()), (Some(3), Some(false)));
    let keys: Vec<&str> = all["sessions"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(keys, ["isolated", "named", "main"], "most recently updated first");
    let main = &all["sessions"][2];
    assert_eq!(
        (main["key"].as_str(), main["messageCount"].as_u64(), main["model"].as_str()),
        (Some("agent:main:main"), Some(4), Some("openai/gpt-4o"))
    );
    assert_eq!((main["inputTokens"].as_u64(), main["totalTokens"].as_u64()), (Some(20), Some(30)));
    let page = call_sessions_list(&h.agents, json!({"limit": 1, "excludeCron": true})).await.unwrap();
    assert_eq!((page["total"].as_u64(), page["nextOffset"].as_u64()), (Some(2), Some(1)));
    assert_eq!(page["sessions"][0]["kind"], "named");
    let named = call_sessions_list(&h.agents, json!({"kind": "named", "agentId": "main"})).await.unwrap();
    assert_eq!(named["sessions"][0]["key"], "agent:main:session:notes");

    let last = call_chat_history(&h.agents, json!({"sessionKey": "main", "limit": 3})).await.unwrap();
    let texts = |v: &Value| {
        v["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&last), ["Hello from the fake model.", "question 1", "Hello from the fake model."]);
    assert_eq!((last["hasMore"].as_bool(), last["nextBeforeSeq"].as_i64()), (Some(true), Some(2)));
    assert_eq!(last["messages"][2]["model"], "openai/gpt-4o");
    assert_eq!(last["messages"][2]["content"], json!([{"type": "text", "text": "Hello from the fake model."}]));
    let first = call_chat_history(&h.agents, json!({"sessionKey": "agent:main:main", "beforeSeq": 2})).await.unwrap();
    assert_eq!((texts(&first), first["hasMore"].as_bool()), (vec!["question 0".to_string()], Some(false)));
    // A byte budget keeps the newest entries that fit; the rest is the next page.
    let one = serde_json::to_vec(&last["messages"][2]).unwrap().len() as u64;
    let budget = call_chat_history(&h.agents, json!({"sessionKey": "main", "maxBytes": one + 10})).await.unwrap();
    assert_eq!(texts(&budget), ["Hello from the fake model."]);
    assert_eq!((budget["hasMore"].as_bool(), budget["nextBeforeSeq"].as_i64()), (Some(true), Some(4)));
    let tiny = call_chat_history(&h.agents, json!({"sessionKey": "main", "maxBytes": 1})).await.unwrap();
    assert_eq!(texts(&tiny), ["Hello from the fake model."], "the newest entry shows even when larger");
    let roomy = call_chat_history(&h.agents, json!({"sessionKey": "main", "maxBytes": 262144})).await.unwrap();
    assert_eq!((texts(&roomy).len(), roomy["hasMore"].as_bool()), (4, Some(false)));
    let cursor = first["deltaCursor"].as_str().unwrap().replace(":4", ":1");
    let delta = call_chat_history(&h.agents, json!({"sessionKey": "main", "cursor": cursor, "maxBytes": one + 10}))
        .await
        .unwrap();
    assert_eq!(delta["kind"], "reset", "a catch-up over the budget: {delta}");
    // No Pincer session spawns another.
    let spawned = call_sessions_list(&h.agents, json!({"spawnedBy": "global", "limit": 10_000})).await.unwrap();
    assert_eq!(spawned["total"], 0, "{spawned}");
    let missing = call_chat_history(&h.agents, json!({"sessionKey": "agent:main:session:nope"})).await.unwrap_err();
    assert_eq!(
        missing,
        ApiError::NotFound("session not found: agent:main:session:nope; list sessions with sessions.list".into())
    );
}

#[tokio::test]
async fn wake_queues_for_the_heartbeat_and_now_runs_the_turn_at_once() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("On it."));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;

    let res = call_wake(&h.agents, json!({"mode": "next-heartbeat", "text": "first"})).await.unwrap();
    assert_eq!(res, json!({"ok": true, "queued": true, "mode": "next-heartbeat", "sessionKey": "agent:main:main"}));
    assert_eq!((fake.request_count(), h.pending("agent:main:main").await.len()), (0, 1));

    call_wake(&h.agents, json!({"mode": "now", "text": "second"})).await.unwrap();
    fake.wait_for_requests(1).await;
    let messages = sent(&fake.requests()[0].body);
    assert_eq!(messages.last().unwrap().1, "System event (wake): first\n\nSystem event (wake): second");
    wait_until(|| h.store.read_blocking(|rd| rd.transcript("agent:main:main", 10, None)).unwrap().len() == 3).await;
    assert!(h.pending("agent:main:main").await.is_empty());
}

/// The race `chat.abort` can lose: the model has answered and the turn's final write is queued at
/// the one writer when the abort drops the turn. The transcript keeps the reply alone (no aborted
/// entry beside it), the run ends `final`, and the abort says nothing was aborted.
#[tokio::test]
async fn an_abort_landing_while_the_final_reply_is_written_records_only_the_reply() {
    use pincer_testkit::fakes::openai::Gate;
    let fake = FakeOpenAi::start().await;
    let gate = Gate::new();
    fake.push(Reply::paced("All done.", 2, &gate));
    let h = Harness::start(openai_config(&fake, &["gpt-4o"])).await;
    let mut events = h.events.subscribe();
    let send = params("chat.send", json!({"sessionKey": "session:race", "message": "Go", "idempotencyKey": "race-1"}))
        .unwrap();
    let started = crate::chat::chat_send(&h.agents, send, Box::pin(async {})).await.unwrap();
    assert_eq!(started.run_id, "race-1");
    fake.wait_for_requests(1).await;

    // Hold the writer, let the model finish, and wait for the turn's final write to be queued.
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    #[allow(clippy::let_underscore_future)]
    let _ = h.store.write(move |_| {
        let _ = held_tx.send(());
        let _ = hold_rx.recv();
        Ok(())
    });
    held_rx.await.unwrap();
    let queued = h.store.write_requests();
    gate.release(10);
    wait_until(|| h.store.write_requests() == queued + 1).await;

    // The abort drops the turn while its reply waits (the dropped turn queues its clean-up write);
    // the abort's own record queues behind both.
    let abort = params("chat.abort", json!({"sessionKey": "session:race", "runId": "race-1"})).unwrap();
    let agents = h.agents.clone();
    let aborting = tokio::spawn(async move { crate::chat::chat_abort(&agents, abort).await });
    wait_until(|| h.store.write_requests() >= queued + 3).await;
    hold_tx.send(()).unwrap();

    let answer = serde_json::to_value(finish(aborting).await.unwrap().unwrap()).unwrap();
    assert_eq!(answer, json!({"ok": true, "aborted": false, "runIds": []}));
    let rows = h.transcript("agent:main:session:race").await;
    let entries: Vec<(&str, &str)> = rows.iter().map(|r| (r.role.as_str(), r.content.as_str())).collect();
    assert_eq!(entries, [("user", "Go"), ("assistant", "All done.")]);
    let terminal = loop {
        let ev = finish(events.recv()).await.unwrap();
        if ev.name == "chat" && ev.payload["state"] != "delta" {
            break ev.payload.clone();
        }
    };
    assert_eq!(
        (&terminal["state"], &terminal["message"]["content"][0]["text"]),
        (&json!("final"), &json!("All done."))
    );
}
