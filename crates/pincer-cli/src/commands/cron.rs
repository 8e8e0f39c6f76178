//! `pincer cron …`: jobs with the `openclaw cron` flag names.

use pincer_protocol::state::{CompletionStatus, DeliveryStatus};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_core::duration::{format_duration_ms, parse_duration_ms};
use pincer_cron::job::{JobPatch, JobState, Payload};
use pincer_cron::schedule::ScheduleSpec;
use pincer_cron::schedule::describe;
use pincer_protocol::Scope;
use pincer_protocol::schema::cron::{
    self, Add, AddParams, CronJob, JobRef, ListParams, PreviewParams, RunParams, RunsParams, UpdateParams,
};
use pincer_protocol::schema::{Ignored, Method, parse_params};
use serde_json::{Map, Value, json};

use crate::client::{Client, ConnectArgs, Target, call_once};
use crate::output::{JsonListWriter, opt, print_json, table, time_in};
use crate::resolve::{Candidate, resolve};

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Scheduler status: enabled, job count, next wake.
    Status(ConnectArgs),
    /// List jobs with their zone and next fire time (enabled only unless --all).
    List {
        /// Include disabled jobs.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Print a job's stored JSON.
    Get {
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Show a job: schedule, zone, the next five fire times and where results go.
    Show {
        /// Job id, a unique id prefix, or the job's name.
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Create a job.
    Add {
        #[command(flatten)]
        job: JobArgs,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Change a job (only the given flags change).
    Edit {
        id: String,
        #[command(flatten)]
        job: JobArgs,
        #[command(flatten)]
        edit: EditArgs,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Delete a job and its run history.
    #[command(alias = "remove", alias = "delete")]
    Rm {
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Enable a job (clears an automatic disable).
    Enable {
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Disable a job.
    Disable {
        id: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Run a job now; with --wait, exit 0 only when the run's completion is `succeeded`.
    Run {
        id: String,
        /// Run only if the job is due.
        #[arg(long)]
        due: bool,
        /// Wait for the run to finish (execution and delivery).
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        wait_timeout: String,
        #[arg(long, default_value = "1s", value_name = "DURATION")]
        poll_interval: String,
        #[command(flatten)]
        c: ConnectArgs,
    },
    /// Run history of a job.
    Runs {
        /// Job id, a unique id prefix, or the job's name (or use --id).
        job: Option<String>,
        #[arg(long = "id")]
        id: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        offset: Option<u32>,
        #[arg(long, value_parser = ["all", "ok", "error", "skipped"])]
        status: Option<String>,
        #[arg(long, value_parser = ["delivered", "not-delivered", "unknown", "not-requested"])]
        delivery_status: Option<String>,
        #[arg(long, value_parser = ["asc", "desc"])]
        sort: Option<String>,
        #[command(flatten)]
        c: ConnectArgs,
    },
}

/// The job flags shared by `add` and `edit`, named as `openclaw cron add` names them.
#[derive(Debug, Clone, Default, Args)]
pub struct JobArgs {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Agent id (default: main).
    #[arg(long)]
    agent: Option<String>,
    /// Fixed interval, e.g. 30m, 1h, 1d.
    #[arg(long, value_name = "DURATION")]
    every: Option<String>,
    /// Cron expression (5 fields, or 6 with seconds).
    #[arg(long, value_name = "EXPR")]
    cron: Option<String>,
    /// IANA time zone for --cron and offset-less --at (default: agents.defaults.timezone, else the host's).
    #[arg(long, value_name = "IANA")]
    tz: Option<String>,
    /// One-shot time: ISO date-time, or a duration from now (20m).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// No stagger for top-of-hour expressions.
    #[arg(long)]
    exact: bool,
    /// Spread top-of-hour runs over this window (default 5m).
    #[arg(long, value_name = "DURATION")]
    stagger: Option<String>,
    /// main | isolated | session:<id>
    #[arg(long, value_name = "TARGET")]
    session: Option<String>,
    /// now | next-heartbeat
    #[arg(long, value_name = "MODE")]
    wake: Option<String>,
    /// Prompt for an agent turn.
    #[arg(long)]
    message: Option<String>,
    /// Text queued into the main session.
    #[arg(long, value_name = "TEXT")]
    system_event: Option<String>,
    /// Shell command run on the gateway host (`sh -c`).
    #[arg(long, value_name = "SHELL")]
    command: Option<String>,
    #[arg(long, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    #[arg(long, value_name = "N")]
    timeout_seconds: Option<u64>,
    /// Announce results (the default for isolated jobs).
    #[arg(long)]
    announce: bool,
    /// Do not deliver results.
    #[arg(long)]
    no_deliver: bool,
    /// discord | telegram | slack | inbox | last
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<String>,
    #[arg(long, value_name = "TARGET")]
    to: Option<String>,
    #[arg(long, value_name = "ID")]
    thread_id: Option<String>,
    #[arg(long, value_name = "ID")]
    account: Option<String>,
    /// A failed delivery does not fail the run.
    #[arg(long)]
    best_effort_deliver: bool,
    /// POST the finished run to this URL instead of announcing.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    #[arg(long)]
    delete_after_run: bool,
    #[arg(long)]
    keep_after_run: bool,
    /// Create the job disabled.
    #[arg(long)]
    disabled: bool,
}

/// Flags only `edit` has.
#[derive(Debug, Clone, Default, Args)]
pub struct EditArgs {
    #[arg(long)]
    enable: bool,
    #[arg(long)]
    disable: bool,
    /// A failed delivery fails the run again.
    #[arg(long)]
    no_best_effort_deliver: bool,
    #[arg(long)]
    clear_model: bool,
    #[arg(long)]
    clear_agent: bool,
    #[arg(long)]
    clear_channel: bool,
    #[arg(long)]
    clear_to: bool,
    #[arg(long)]
    clear_thread_id: bool,
    #[arg(long)]
    clear_account: bool,
    #[arg(long)]
    clear_description: bool,
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::anyhow!(msg.into())
}

fn dur(flag: &str, v: &str) -> anyhow::Result<u64> {
    parse_duration_ms(v, None).map_err(|e| bad(format!("{flag}: {e}")))
}

impl JobArgs {
    /// The schedule object, if a schedule flag was given.
    fn schedule(&self, now_ms: i64) -> anyhow::Result<Option<Value>> {
        let given = [self.every.is_some(), self.cron.is_some(), self.at.is_some()].iter().filter(|b| **b).count();
        if given > 1 {
            return Err(bad("choose one schedule: --every, --cron or --at"));
        }
        if let Some(every) = &self.every {
            if self.tz.is_some() {
                return Err(bad("--tz applies to --cron and --at, not --every"));
            }
            let every_ms = dur("--every", every)?;
            let min = pincer_cron::schedule::MIN_EVERY_MS;
            if every_ms < min as u64 {
                return Err(bad(format!("--every: `{every}` is shorter than the minimum interval of 1s")));
            }
            return Ok(Some(json!({ "kind": "every", "everyMs": every_ms })));
        }
        if let Some(expr) = &self.cron {
            let mut s = json!({ "kind": "cron", "expr": expr });
            if let Some(tz) = &self.tz {
                s["tz"] = json!(tz);
            }
            if self.exact && self.stagger.is_some() {
                return Err(bad("--exact and --stagger contradict each other"));
            }
            if self.exact {
                s["staggerMs"] = json!(0);
            } else if let Some(st) = &self.stagger {
                s["staggerMs"] = json!(dur("--stagger", st)?);
            }
            return Ok(Some(s));
        }
        if let Some(at) = &self.at {
            let ms = pincer_cron::schedule::parse_at(at, self.tz.as_deref(), now_ms)
                .map_err(|e| bad(format!("--at: {e}")))?;
            let iso = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                .ok_or_else(|| bad("--at: time out of range"))?
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            return Ok(Some(json!({ "kind": "at", "at": iso })));
        }
        Ok(None)
    }

    /// The payload object, if a payload flag was given.
    fn payload(&self) -> anyhow::Result<Option<Value>> {
        let given = [self.message.is_some(), self.system_event.is_some(), self.command.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            return Err(bad("choose one payload: --message, --system-event or --command"));
        }
        let mut p = if let Some(m) = &self.message {
            json!({ "kind": "agentTurn", "message": m })
        } else if let Some(t) = &self.system_event {
            json!({ "kind": "systemEvent", "text": t })
        } else if let Some(c) = &self.command {
            json!({ "kind": "command", "argv": ["sh", "-c", c] })
        } else {
            if self.model.is_some() || self.timeout_seconds.is_some() {
                return Ok(Some(self.payload_tweaks(json!({}))));
            }
            return Ok(None);
        };
        p = self.payload_tweaks(p);
        Ok(Some(p))
    }

    fn payload_tweaks(&self, mut p: Value) -> Value {
        if let Some(m) = &self.model {
            p["model"] = json!(m);
        }
        if let Some(t) = self.timeout_seconds {
            p["timeoutSeconds"] = json!(t);
        }
        p
    }

    /// The delivery object, if any delivery flag was given.
    fn delivery(&self) -> anyhow::Result<Option<Value>> {
        let chat = self.channel.is_some() || self.to.is_some() || self.thread_id.is_some() || self.account.is_some();
        if self.webhook.is_some() && (chat || self.announce) {
            return Err(bad("--webhook cannot be combined with --announce, --channel, --to, --thread-id or --account"));
        }
        if self.no_deliver && (chat || self.announce || self.webhook.is_some()) {
            return Err(bad("--no-deliver contradicts the other delivery flags"));
        }
        if let Some(url) = &self.webhook {
            let mut d = json!({ "mode": "webhook", "to": url });
            if self.best_effort_deliver {
                d["bestEffort"] = json!(true);
            }
            return Ok(Some(d));
        }
        if self.no_deliver {
            return Ok(Some(json!({ "mode": "none" })));
        }
        if !(chat || self.announce || self.best_effort_deliver) {
            return Ok(None);
        }
        let mut d = json!({ "mode": "announce" });
        let set = |d: &mut Value, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                d[k] = json!(v);
            }
        };
        set(&mut d, "channel", &self.channel);
        set(&mut d, "to", &self.to);
        set(&mut d, "threadId", &self.thread_id);
        set(&mut d, "accountId", &self.account);
        if self.best_effort_deliver {
            d["bestEffort"] = json!(true);
        }
        Ok(Some(d))
    }

    /// Fields common to add and edit.
    fn common(&self, out: &mut Map<String, Value>, now_ms: i64) -> anyhow::Result<()> {
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                out.insert(k.into(), v);
            }
        };
        put("name", self.name.clone().map(Value::from));
        put("description", self.description.clone().map(Value::from));
        put("agentId", self.agent.clone().map(Value::from));
        put("sessionTarget", self.session.clone().map(Value::from));
        put("wakeMode", self.wake.clone().map(Value::from));
        put("schedule", self.schedule(now_ms)?);
        put("payload", self.payload()?);
        put("delivery", self.delivery()?);
        if self.delete_after_run && self.keep_after_run {
            return Err(bad("--delete-after-run and --keep-after-run contradict each other"));
        }
        if self.delete_after_run {
            out.insert("deleteAfterRun".into(), json!(true));
        }
        if self.keep_after_run {
            out.insert("deleteAfterRun".into(), json!(false));
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `cron.add` params from the flags.
pub fn add_params(job: &JobArgs, now: i64) -> anyhow::Result<Value> {
    let mut out = Map::new();
    job.common(&mut out, now)?;
    if !out.contains_key("schedule") {
        return Err(bad("a schedule is required: --every <dur>, --cron <expr> or --at <time>"));
    }
    if !out.contains_key("payload") || out["payload"].get("kind").is_none() {
        return Err(bad("a payload is required: --message <text>, --system-event <text> or --command <shell>"));
    }
    if job.disabled {
        out.insert("enabled".into(), json!(false));
    }
    Ok(Value::Object(out))
}

/// `cron.update` patch from the flags.
pub fn edit_patch(job: &JobArgs, edit: &EditArgs, now: i64) -> anyhow::Result<Value> {
    let mut out = Map::new();
    job.common(&mut out, now)?;
    if edit.enable && edit.disable {
        return Err(bad("--enable and --disable contradict each other"));
    }
    if edit.enable {
        out.insert("enabled".into(), json!(true));
    }
    if edit.disable || job.disabled {
        out.insert("enabled".into(), json!(false));
    }
    let clear = |out: &mut Map<String, Value>, on: bool, set: bool, flag: &str, path: &[&str]| -> anyhow::Result<()> {
        if !on {
            return Ok(());
        }
        if set {
            return Err(bad(format!("--clear-{flag} contradicts --{flag}")));
        }
        match path {
            [key] => {
                out.insert((*key).into(), Value::Null);
            }
            [obj, key] => {
                let entry = out.entry(obj.to_string()).or_insert_with(|| json!({}));
                entry[*key] = Value::Null;
            }
            _ => unreachable!(),
        }
        Ok(())
    };
    clear(&mut out, edit.clear_model, job.model.is_some(), "model", &["payload", "model"])?;
    clear(&mut out, edit.clear_agent, job.agent.is_some(), "agent", &["agentId"])?;
    clear(&mut out, edit.clear_channel, job.channel.is_some(), "channel", &["delivery", "channel"])?;
    clear(&mut out, edit.clear_to, job.to.is_some(), "to", &["delivery", "to"])?;
    clear(&mut out, edit.clear_thread_id, job.thread_id.is_some(), "thread-id", &["delivery", "threadId"])?;
    clear(&mut out, edit.clear_account, job.account.is_some(), "account", &["delivery", "accountId"])?;
    clear(&mut out, edit.clear_description, job.description.is_some(), "description", &["description"])?;
    if edit.no_best_effort_deliver {
        let entry = out.entry("delivery").or_insert_with(|| json!({}));
        entry["bestEffort"] = json!(false);
    }
    if out.is_empty() {
        return Err(bad("nothing to change: pass at least one flag (see `pincer cron edit --help`)"));
    }
    Ok(Value::Object(out))
}

/// The flags as `cron.add` params, checked as the gateway will check them.
fn add_input(job: &JobArgs, now: i64) -> anyhow::Result<AddParams> {
    Ok(parse_params::<AddParams>(Add::NAME, Some(&add_params(job, now)?))?)
}

/// A `cron.update` of job `id` with `patch`.
fn update(id: String, patch: Value) -> anyhow::Result<UpdateParams> {
    let Value::Object(patch) = patch else { return Err(bad("the patch must be an object")) };
    Ok(UpdateParams { id: Some(id), patch: JobPatch(patch), ..UpdateParams::default() })
}

pub async fn run(cmd: CronCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = |c: &ConnectArgs| Target::resolve(c, paths, &process_env);
    match cmd {
        CronCommand::Status(c) => {
            let s = call_once::<cron::Status>(&target(&c)?, &[Scope::Read], &Ignored).await?;
            if c.json {
                print_json(&s);
            } else {
                crate::output::print_rows(&[
                    ("scheduler", if s.enabled { "enabled".into() } else { "disabled (cron.enabled: false)".into() }),
                    ("jobs", format!("{} ({} enabled, {} running)", s.jobs, s.enabled_jobs, s.running)),
                    ("next wake", s.next_wake_at_ms.map(|t| time_in(t, &s.timezone)).unwrap_or("-".into())),
                    ("time zone", s.timezone.clone()),
                    ("concurrency", s.max_concurrent_runs.to_string()),
                ]);
                if !s.invalid_jobs.is_empty() {
                    println!("invalid jobs (not running until fixed):");
                    for b in &s.invalid_jobs {
                        println!("  {}: {}", b.id, b.error);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::List { all, c } => {
            let mut client = Client::connect(&target(&c)?, &[Scope::Read]).await?;
            // Keyed pages of 1000: each costs its own rows, and with `--json` each is printed as
            // it arrives, on a thread of its own while the gateway reads the next page.
            let printer = c.json.then(|| {
                let (pages, rx) = std::sync::mpsc::sync_channel::<Vec<CronJob>>(2);
                let thread = std::thread::spawn(move || -> std::io::Result<()> {
                    let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
                    let mut w = JsonListWriter::start(out, "jobs")?;
                    for page in rx {
                        for j in &page {
                            w.item(j)?;
                        }
                    }
                    w.finish().map(drop)
                });
                (pages, thread)
            });
            let mut jobs: Vec<CronJob> = Vec::new();
            let mut cursor = String::new();
            let mut seen: u32 = 0;
            let default_tz;
            loop {
                let params = ListParams {
                    include_disabled: Some(all),
                    limit: Some(1000),
                    offset: Some(seen),
                    cursor: Some(std::mem::take(&mut cursor)),
                    include_delivery_previews: Some(true),
                    ..ListParams::default()
                };
                let page = client.call::<cron::List>(&params).await?;
                let mut previews = page.delivery_previews.unwrap_or_default();
                let mut listed = Vec::with_capacity(page.jobs.len());
                for mut j in page.jobs {
                    j.delivery_preview = previews.swap_remove(&j.job.id);
                    seen = seen.saturating_add(1);
                    listed.push(j);
                }
                match &printer {
                    // A printer that stopped (stdout closed) says why when joined below.
                    Some((pages, _)) => {
                        if pages.send(listed).is_err() {
                            default_tz = page.timezone;
                            break;
                        }
                    }
                    None => jobs.append(&mut listed),
                }
                match page.next_cursor {
                    Some(next) => cursor = next,
                    None => {
                        default_tz = page.timezone;
                        break;
                    }
                }
            }
            client.close().await;
            if let Some((pages, thread)) = printer {
                drop(pages);
                thread.join().map_err(|_| anyhow::anyhow!("printing the jobs failed"))??;
                return Ok(ExitCode::SUCCESS);
            }
            if jobs.is_empty() {
                println!(
                    "No jobs{}. Add one with `pincer cron add --name … --every 1h --message …`.",
                    if all { "" } else { " enabled (try --all)" }
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|view| {
                    let j = &view.job;
                    let tz = j.display_tz(&default_tz).to_string();
                    vec![
                        j.id.chars().take(8).collect(),
                        truncate(&j.name, 28),
                        schedule_label(&j.schedule, None),
                        tz.clone(),
                        j.state
                            .next_run_at_ms
                            .map(|t| time_in(t, &tz))
                            .unwrap_or_else(|| if j.enabled { "-".into() } else { "disabled".into() }),
                        last_label(&j.state),
                        truncate(&opt(view.delivery_preview.as_ref().map(|p| &p.label)), 32),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "SCHEDULE", "TZ", "NEXT", "LAST", "DELIVERY"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Get { id, c } => {
            let mut client = Client::connect(&target(&c)?, &[Scope::Read]).await?;
            let id = job_id(&mut client, &id).await?;
            let job = client.call::<cron::Get>(&JobRef::new(id)).await?;
            client.close().await;
            print_json(&job);
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Show { id, c } => show(&target(&c)?, &id, c.json).await,
        CronCommand::Add { job, c } => {
            let params = add_input(&job, now_ms())?;
            let mut client = Client::connect(&target(&c)?, &[Scope::Admin]).await?;
            let created = client.call::<Add>(&params).await?.into_job();
            summarise(client, "Added", &created, c.json).await
        }
        CronCommand::Edit { id, job, edit, c } => {
            let patch = edit_patch(&job, &edit, now_ms())?;
            let mut client = Client::connect(&target(&c)?, &[Scope::Admin]).await?;
            let params = update(job_id(&mut client, &id).await?, patch)?;
            let updated = client.call::<cron::Update>(&params).await?;
            summarise(client, "Updated", &updated, c.json).await
        }
        CronCommand::Rm { id, c } => {
            let mut client = Client::connect(&target(&c)?, &[Scope::Admin]).await?;
            let id = job_id(&mut client, &id).await?;
            let out = client.call::<cron::Remove>(&JobRef::new(id)).await?;
            client.close().await;
            print_json(&out);
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Enable { id, c } => toggle(&target(&c)?, id, true).await,
        CronCommand::Disable { id, c } => toggle(&target(&c)?, id, false).await,
        CronCommand::Run { id, due, wait, wait_timeout, poll_interval, c } => {
            let timeout = dur("--wait-timeout", &wait_timeout)?;
            let poll = dur("--poll-interval", &poll_interval)?.max(50);
            let mut client = Client::connect(&target(&c)?, &[Scope::Admin]).await?;
            let id = job_id(&mut client, &id).await?;
            let params = RunParams {
                id: Some(id.clone()),
                mode: Some(if due { "due" } else { "force" }.into()),
                ..RunParams::default()
            };
            let res = client.call::<cron::Run>(&params).await?;
            let enqueued = res.enqueued == Some(true);
            if !wait || !enqueued {
                print_json(&res);
                client.close().await;
                let ok = res.ok && (enqueued || res.ran == Some(true));
                return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            let run_id = res.run_id.clone().unwrap_or_default();
            let started = std::time::Instant::now();
            // Where the result goes (`telegram -> 123`), to tell a blocked channel from a slow one.
            let preview = client
                .call::<cron::Preview>(&PreviewParams { id: Some(id.clone()), ..PreviewParams::default() })
                .await?;
            let channel = preview.delivery_preview.label.split(" -> ").next().unwrap_or_default().to_string();
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut last_phase = None;
            let entry = loop {
                let params = RunsParams {
                    id: Some(id.clone()),
                    run_id: Some(run_id.clone()),
                    limit: Some(1),
                    ..RunsParams::default()
                };
                let page = client.call::<cron::Runs>(&params).await?;
                let entry = page.entries.into_iter().next();
                if let Some(entry) = entry.as_ref().filter(|e| e.status.is_some()) {
                    break entry.clone();
                }
                let phase = entry.as_ref().and_then(|e| e.phase.clone());
                if progress && phase.is_some() && phase != last_phase {
                    eprintln!("run {run_id}: {} ({} s)", opt(phase.as_deref()), started.elapsed().as_secs());
                }
                if phase.as_deref() == Some("delivering") {
                    // A delivery the outbox holds (credentials rejected) would wait until the
                    // timeout: fail now, with the cause.
                    let health = client.call::<pincer_protocol::schema::system::Health>(&Ignored).await?;
                    if let Some(ch) =
                        health.channels.get(&channel).filter(|ch| ch.health_state == "credentials-rejected")
                    {
                        client.close().await;
                        return Err(bad(format!(
                            "run {run_id} ran, but its delivery is held: {} ({}). It is delivered once the channel \
                             works again; see `pincer deliveries list`",
                            opt(ch.last_error.as_deref()),
                            ch.health_state
                        )));
                    }
                }
                last_phase = phase;
                if started.elapsed() >= Duration::from_millis(timeout) {
                    client.close().await;
                    return Err(bad(format!(
                        "timed out after {} waiting for run {run_id}; it is still {} (see `pincer cron runs --id {id}`)",
                        format_duration_ms(timeout),
                        opt(entry.and_then(|e| e.phase))
                    )));
                }
                tokio::time::sleep(Duration::from_millis(poll)).await;
            };
            client.close().await;
            let completion = opt(entry.completion_status.as_deref());
            if c.json {
                print_json(&serde_json::json!({ "ok": true, "runId": run_id, "completed": true,
                    "status": entry.status, "completionStatus": completion, "run": entry }));
            } else {
                println!(
                    "run {run_id}: {} · delivery {} · completion {completion}{}",
                    opt(entry.status.as_deref()),
                    opt(entry.delivery_status.as_deref()),
                    entry.error.as_deref().map(|e| format!("\n  error: {e}")).unwrap_or_default()
                );
                if let Some(s) = &entry.summary {
                    println!("  summary: {}", truncate(s, 200));
                }
            }
            Ok(if completion == CompletionStatus::Succeeded.as_str() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        CronCommand::Runs { job, id, run_id, limit, offset, status, delivery_status, sort, c } => {
            let id = match (job, id) {
                (Some(a), Some(b)) if a != b => {
                    return Err(bad(format!("conflicting job ids: \"{a}\" and --id \"{b}\"")));
                }
                (a, b) => a.or(b).ok_or_else(|| bad("a job id is required: pincer cron runs <id>"))?,
            };
            let mut params = RunsParams {
                id: Some(id.clone()),
                limit: Some(limit),
                run_id,
                offset,
                status,
                delivery_status,
                sort_dir: sort,
                ..RunsParams::default()
            };
            // The gateway checks the flags first; an answer with no runs may mean the text is a
            // prefix or a name, or names no job: that is an error, not "No runs yet."
            let mut page = call_once::<cron::Runs>(&target(&c)?, &[Scope::Read], &params).await?;
            if page.entries.is_empty() {
                let resolved = job_id_at(&target(&c)?, &id).await?;
                if resolved != id {
                    params.id = Some(resolved);
                    page = call_once::<cron::Runs>(&target(&c)?, &[Scope::Read], &params).await?;
                }
            }
            if c.json {
                print_json(&page);
                return Ok(ExitCode::SUCCESS);
            }
            if page.entries.is_empty() {
                println!("No runs yet.");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = page
                .entries
                .iter()
                .map(|e| {
                    vec![
                        e.run_id.clone(),
                        e.started_at_ms.or(e.run_at_ms).map(|t| time_in(t, "UTC")).unwrap_or_default(),
                        e.duration_ms.map(|d| format_duration_ms(d.max(0) as u64)).unwrap_or_else(|| "-".into()),
                        e.status.clone().unwrap_or_else(|| opt(e.phase.as_deref())),
                        e.delivery_status.clone().unwrap_or_else(|| DeliveryStatus::Pending.as_str().into())
                            + &e.delivery_suppression_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                        opt(e.completion_status.as_deref()),
                        truncate(e.error.as_deref().or(e.summary.as_deref()).unwrap_or(""), 50),
                    ]
                })
                .collect();
            table(&["RUN", "STARTED (UTC)", "TOOK", "STATUS", "DELIVERY", "COMPLETION", "ERROR / SUMMARY"], &rows);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The id of the job `given` names: its id, a unique id prefix, or its name (every job, disabled
/// ones too).
async fn job_id(client: &mut Client, given: &str) -> anyhow::Result<String> {
    let candidates: Vec<Candidate> =
        every_job(client).await?.into_iter().map(|j| Candidate { id: j.job.id, name: Some(j.job.name) }).collect();
    resolve(given, &candidates, "job", "pincer cron list --all", true)
}

/// Every job the gateway has, disabled ones too, page by page.
pub(crate) async fn every_job(client: &mut Client) -> anyhow::Result<Vec<cron::CronJob>> {
    let mut jobs = Vec::new();
    // Keyed pages: each costs its own rows wherever it starts (offset pages cost the whole set).
    let mut cursor = String::new();
    loop {
        let params = ListParams {
            include_disabled: Some(true),
            limit: Some(1000),
            cursor: Some(cursor),
            compact: Some(true),
            ..ListParams::default()
        };
        let page = client.call::<cron::List>(&params).await?;
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) if page.has_more => cursor = next,
            _ => return Ok(jobs),
        }
    }
}

/// [`job_id`] on its own connection, for commands that make one call.
async fn job_id_at(target: &Target, given: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(target, &[Scope::Read]).await?;
    let id = job_id(&mut client, given).await;
    client.close().await;
    id
}

async fn toggle(target: &Target, id: String, enabled: bool) -> anyhow::Result<ExitCode> {
    let params = update(job_id_at(target, &id).await?, serde_json::json!({ "enabled": enabled }))?;
    let out = call_once::<cron::Update>(target, &[Scope::Admin], &params).await?;
    print_json(&out);
    Ok(ExitCode::SUCCESS)
}

/// After `add` and `edit`: the job as JSON, or in prose with its schedule in the zone it runs
/// in (the gateway's default zone when the job names none), its next run and where results go;
/// and, on stderr, a warning when a six-field expression looks shifted (see
/// `pincer_cron::schedule::describe`).
async fn summarise(mut client: Client, verb: &str, view: &CronJob, json_out: bool) -> anyhow::Result<ExitCode> {
    let params = PreviewParams { id: Some(view.job.id.clone()), ..PreviewParams::default() };
    let preview = client.call::<cron::Preview>(&params).await?;
    client.close().await;
    let job = &view.job;
    let tz = preview.tz.clone();
    if let ScheduleSpec::Cron { expr, .. } = &job.schedule
        && let Some(warning) = describe::six_field_warning(expr, Some(&tz))
    {
        eprintln!("warning: {warning}");
    }
    if json_out {
        print_json(view);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{verb} job {} \"{}\"", job.id, job.name);
    println!("  schedule: {}", schedule_label(&job.schedule, Some(&tz)));
    match job.state.next_run_at_ms {
        Some(next) => println!("  next run: {}", time_in(next, &tz)),
        None if !job.enabled => println!("  next run: none (disabled)"),
        None => println!("  next run: none"),
    }
    println!("  delivery: {}", preview.delivery_preview.detail);
    Ok(ExitCode::SUCCESS)
}

async fn show(target: &Target, id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(target, &[Scope::Read]).await?;
    let id = job_id(&mut client, id).await?;
    let view = client.call::<cron::Get>(&JobRef::new(id)).await?;
    let params = PreviewParams { id: Some(view.job.id.clone()), ..PreviewParams::default() };
    let preview = client.call::<cron::Preview>(&params).await?;
    client.close().await;
    if json_out {
        print_json(&serde_json::json!({ "job": view, "preview": preview }));
        return Ok(ExitCode::SUCCESS);
    }
    let job = &view.job;
    let tz = preview.tz.clone();
    let st = &job.state;
    crate::output::print_rows(&[
        ("id", job.id.clone()),
        ("name", job.name.clone()),
        ("enabled", if job.enabled { "yes".into() } else { "no".into() }),
        ("schedule", schedule_label(&job.schedule, Some(&tz))),
        ("time zone", tz.clone()),
        ("session", job.session_target.as_string()),
        ("payload", payload_label(&job.payload)),
        // The detail already starts with the label (`inbox -> default (explicit)`).
        ("delivery", preview.delivery_preview.detail.clone()),
        ("last run", st.last_run_at_ms.map(|t| time_in(t, &tz)).unwrap_or("-".into())),
        ("last status", last_label(st)),
        ("last error", opt(st.last_error.as_deref())),
        (
            "last delivery",
            format!(
                "{}{}",
                opt(st.last_delivery_status.map(|d| d.as_str())),
                st.last_delivery_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ),
    ]);
    if let Some(a) = &st.auto_disabled {
        println!("  disabled automatically: {} (enable it with `pincer cron enable {}`)", a.reason, job.id);
    }
    if preview.upcoming.is_empty() {
        println!("next runs: none");
    } else {
        println!("next runs ({tz}):");
        for t in &preview.upcoming {
            println!("  {}", time_in(*t, &tz));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        one_line.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// `every day at 07:00 Europe/Berlin (cron 0 7 * * *)`; the zone only when `tz` is given (`cron
/// list` has a column for it).
fn schedule_label(s: &ScheduleSpec, tz: Option<&str>) -> String {
    match s {
        ScheduleSpec::Cron { expr, stagger_ms, .. } => {
            let stagger = stagger_ms
                .filter(|m| *m > 0)
                .map(|m| format!(" ~{}", format_duration_ms(m as u64)))
                .unwrap_or_default();
            match describe::describe(expr, tz) {
                Some(plain) => format!("{plain} (cron {expr}{stagger})"),
                None => format!("cron {expr}{stagger}"),
            }
        }
        ScheduleSpec::Every { every_ms, .. } => format!("every {}", format_duration_ms((*every_ms).max(0) as u64)),
        ScheduleSpec::At { at } => format!("at {at}"),
    }
}

fn payload_label(p: &Payload) -> String {
    match p {
        Payload::AgentTurn { message, .. } => format!("agent turn: {}", truncate(message, 60)),
        Payload::SystemEvent { text } => format!("system event: {}", truncate(text, 60)),
        Payload::Command { argv, .. } => format!("command: {}", truncate(&argv.join(" "), 60)),
    }
}

fn last_label(st: &JobState) -> String {
    match &st.last_run_status {
        None => "never ran".into(),
        Some(s) => {
            let delivery = st.last_delivery_status.map(|d| format!(", {d}")).unwrap_or_default();
            let errors = Some(st.consecutive_errors)
                .filter(|n| *n > 0)
                .map(|n| format!(" ({n} errors in a row)"))
                .unwrap_or_default();
            format!("{s}{delivery}{errors}")
        }
    }
}
