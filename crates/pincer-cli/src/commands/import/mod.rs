//! `pincer import openclaw [DIR]`: OpenClaw's scheduled jobs into Pincer, through the running
//! gateway's `cron.add` — each under a `declarationKey` (OpenClaw's own, else `openclaw:<id>`), so a
//! second import finds them and changes nothing. `--dry-run` prints what maps, what changes meaning
//! and what cannot be moved, with the reason, and touches nothing.
//!
//! Read: `openclaw.json` (see [`config`]); OpenClaw 2026.6+'s `state/openclaw.sqlite` (`cron_jobs`,
//! `device_pairing_paired`, `cron_run_receipts`), else the file stores of earlier versions
//! (`cron/jobs.json`, JSON5, a `{jobs:[…]}` object or a bare list; `devices/paired.json`). Devices
//! and runs go through Pincer's `import.openclaw` (see [`state`]), which adds only what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pincer_core::StatePaths;
use pincer_core::config::{Config, process_env};
use pincer_protocol::Scope;
use pincer_protocol::schema::Method as _;
use pincer_protocol::schema::config::{ConfigReload, ConfigReloadParams};
use pincer_protocol::schema::cron::{self, AddParams, UNSUPPORTED_JOB_FIELDS};
use pincer_protocol::schema::import::{ImportOpenclaw, ImportOpenclawParams, ImportedDevice, ImportedRun};
use pincer_protocol::schema::parse_params;
use serde_json::{Map, Value};

use crate::client::{Client, ConnectArgs, Target};

pub mod config;
pub mod state;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// OpenClaw's scheduled jobs (from ~/.openclaw by default) into the running gateway.
    Openclaw(OpenclawArgs),
}

#[derive(Debug, Args)]
pub struct OpenclawArgs {
    /// OpenClaw's state directory, e.g. ~/.openclaw (the default) or $OPENCLAW_STATE_DIR.
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print what would be imported, what changes meaning and what cannot move; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace keys pincer.json already sets differently (by default they are kept and listed).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    c: ConnectArgs,
}

/// What OpenClaw has that this import does not move, and why.
const NOT_MOVED: &[&str] = &[
    "sessions and transcripts: OpenClaw's agent runtime keeps them in its own format; Pincer's sessions start empty",
    "pending pairing requests: short-lived (5 minutes); the client asks again",
    "delivery queue: OpenClaw's undelivered messages are not re-sent by Pincer",
];

/// Jobs OpenClaw declares for itself, by declaration-key prefix, and why they stay behind.
const OPENCLAW_OWN: &[(&str, &str)] = &[
    ("heartbeat:", "OpenClaw's heartbeat job: Pincer's heartbeat is agents.defaults.heartbeat, not a job"),
    ("memory-core:", "managed by OpenClaw's memory-core plugin: Pincer has no plugins"),
    ("skill-collection-review:", "OpenClaw's Skill Workshop review: Pincer has no skill workshop"),
];

/// Job fields that belong to the store, not the definition: never copied, never reported.
const STORE_FIELDS: &[&str] = &["id", "jobId", "createdAtMs", "updatedAtMs", "state", "declarationKey"];

/// One job that maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub openclaw_id: String,
    pub name: String,
    pub key: String,
    pub params: Value,
    /// Where Pincer will behave differently.
    pub notes: Vec<String>,
}

/// The whole import: jobs that move, and jobs that cannot (name, reason).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub moves: Vec<Move>,
    pub refused: Vec<(String, String)>,
}

/// Maps OpenClaw job objects to `cron.add` params. Pure: tested on jobs the real OpenClaw wrote.
pub fn plan(jobs: &[Value]) -> Plan {
    let mut plan = Plan::default();
    for job in jobs {
        let Some(obj) = job.as_object() else {
            plan.refused.push(("(a row)".into(), "not a JSON object".into()));
            continue;
        };
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let id = s("id").or_else(|| s("jobId")).unwrap_or_default();
        let name = s("name").unwrap_or_else(|| id.clone());
        if id.is_empty() {
            plan.refused.push((name, "no id".into()));
            continue;
        }
        let key = s("declarationKey").unwrap_or_else(|| format!("openclaw:{id}"));
        if let Some((_, why)) = OPENCLAW_OWN.iter().find(|(prefix, _)| key.starts_with(prefix)) {
            plan.refused.push((name, why.to_string()));
            continue;
        }
        if let Some(managed) = s("description").as_deref().and_then(|d| d.strip_prefix("[managed-by=")) {
            let owner = managed.split(']').next().unwrap_or(managed);
            plan.refused.push((name, format!("managed by OpenClaw ({owner}): Pincer has no plugins")));
            continue;
        }
        let mut notes = Vec::new();
        let mut params = Map::new();
        let mut dropped = BTreeSet::new();
        for (k, v) in obj {
            if STORE_FIELDS.contains(&k.as_str()) {
                continue;
            }
            if UNSUPPORTED_JOB_FIELDS.contains(&k.as_str()) || !cron::job_fields().contains(&k.as_str()) {
                dropped.insert(k.clone());
                continue;
            }
            params.insert(k.clone(), v.clone());
        }
        params.insert("declarationKey".into(), key.clone().into());
        if dropped.remove("scheduledToolPolicy") {
            notes.push("scheduledToolPolicy dropped: Pincer's tool policy is the config's tools.*".into());
        }
        if !dropped.is_empty() {
            let list: Vec<String> = dropped.into_iter().collect();
            notes.push(format!("not carried over (Pincer has no such field): {}", list.join(", ")));
        }
        let schedule = &obj.get("schedule").cloned().unwrap_or(Value::Null);
        if schedule["kind"] == "cron" {
            notes.push(
                "daylight saving: Pincer follows Vixie cron's rule — a time skipped in spring runs once right after \
                 the gap, a repeated autumn hour runs once (not twice)"
                    .into(),
            );
        }
        let delivery = &obj.get("delivery").cloned().unwrap_or(Value::Null);
        if delivery["mode"] == "announce" && delivery["channel"].as_str().is_none_or(|c| c == "last") {
            notes.push(
                "channel `last`: resolved from Pincer's own session history, which starts empty — until a chat \
                 reaches Pincer the result goes to the local inbox (OpenClaw did not deliver it)"
                    .into(),
            );
        }
        let params = Value::Object(params);
        match parse_params::<AddParams>(cron::Add::NAME, Some(&params)) {
            Ok(_) => plan.moves.push(Move { openclaw_id: id, name, key, params, notes }),
            Err(e) => plan.refused.push((name, e.0.replace("invalid cron.add params: ", "Pincer refuses it: "))),
        }
    }
    plan
}

/// The job objects in OpenClaw's state directory, and where they came from; `None` when it has no
/// job store.
fn read_jobs(dir: &Path) -> anyhow::Result<Option<(Vec<Value>, PathBuf)>> {
    let db = dir.join("state/openclaw.sqlite");
    if db.exists() {
        let rows = pincer_store::openclaw::cron_jobs(&db).map_err(anyhow::Error::msg)?;
        let jobs = rows
            .iter()
            .map(|r| {
                serde_json::from_str(r).map_err(|e| anyhow::anyhow!("{}: a job that is not JSON: {e}", db.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        return Ok(Some((jobs, db)));
    }
    let file = dir.join("cron/jobs.json");
    if file.exists() {
        let text = std::fs::read_to_string(&file)?;
        let value: Value = json5::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON5: {e}", file.display()))?;
        let jobs = match value {
            Value::Array(jobs) => jobs,
            Value::Object(mut o) => match o.remove("jobs") {
                Some(Value::Array(jobs)) => jobs,
                _ => anyhow::bail!("{}: no `jobs` list", file.display()),
            },
            _ => anyhow::bail!("{}: neither a list nor an object with `jobs`", file.display()),
        };
        return Ok(Some((jobs, file)));
    }
    Ok(None)
}

/// OpenClaw's config file (JSON5, nothing expanded), when there is one.
fn read_config(dir: &Path) -> anyhow::Result<Option<(Value, PathBuf)>> {
    let file = dir.join("openclaw.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", file.display())),
    };
    let value = Config::read_value(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(Some((value, file)))
}

/// OpenClaw's paired devices (`device_pairing_paired`, else the older `devices/paired.json`).
fn read_devices(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let db = dir.join("state/openclaw.sqlite");
    if db.exists() {
        return pincer_store::openclaw::paired_devices(&db).map_err(anyhow::Error::msg);
    }
    let file = dir.join("devices/paired.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", file.display())),
    };
    let map: Map<String, Value> =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a device map: {e}", file.display()))?;
    Ok(map.into_values().collect())
}

/// OpenClaw's finished runs (`cron_run_receipts`); none before the SQLite store.
fn read_runs(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let db = dir.join("state/openclaw.sqlite");
    if !db.exists() {
        return Ok(Vec::new());
    }
    pincer_store::openclaw::run_receipts(&db).map_err(anyhow::Error::msg)
}

/// `pincer.json` as a value (an empty object when there is none) and its text.
fn read_pincer_config(paths: &StatePaths) -> anyhow::Result<(Value, String)> {
    let path = &paths.config_path;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok((Value::Object(Map::new()), text));
    }
    let value = Config::read_value(&text).map_err(|e| {
        anyhow::anyhow!("{} is {e}; fix it first (`pincer config validate` says where)", path.display())
    })?;
    Ok((value, text))
}

pub async fn run(cmd: ImportCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let ImportCommand::Openclaw(args) = cmd;
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".openclaw"),
    };
    let oc_config = read_config(&dir)?;
    let jobs = read_jobs(&dir)?;
    if oc_config.is_none() && jobs.is_none() {
        anyhow::bail!(
            "no OpenClaw state in {}: expected openclaw.json, state/openclaw.sqlite (OpenClaw 2026.6+) or cron/jobs.json; pass OpenClaw's state directory",
            dir.display()
        );
    }

    // The config first: jobs may name the channels it brings.
    let mut config_written = false;
    match &oc_config {
        None => println!("No openclaw.json in {}: no config to import.", dir.display()),
        Some((value, source)) => {
            let cplan = config::plan(value);
            let (existing, text) = read_pincer_config(paths)?;
            let merged = config::merge(&existing, &cplan.config, args.force);
            print_config_plan(source, &paths.config_path, &cplan, &merged, args.force);
            if !args.dry_run && merged.value != existing {
                let next = crate::commands::config::render(&text, &merged.value);
                Config::parse(&next, &|_| Some("x".into())).map_err(|e| {
                    anyhow::anyhow!("the merged config is refused, {} is unchanged: {e}", paths.config_path.display())
                })?;
                crate::commands::config::write_private(&paths.config_path, &next)?;
                config_written = true;
                println!("Wrote {}.", paths.config_path.display());
            }
        }
    }

    let (jobs, source) = jobs.unwrap_or_else(|| (Vec::new(), dir.join("state/openclaw.sqlite")));
    let plan = plan(&jobs);
    let (devices, device_notes) = state::devices(&read_devices(&dir)?);
    let (receipts, run_notes) = state::runs(&read_runs(&dir)?);
    let moved: BTreeMap<&str, &str> = plan.moves.iter().map(|m| (m.openclaw_id.as_str(), m.key.as_str())).collect();
    let (receipts, orphans): (Vec<_>, Vec<_>) =
        receipts.into_iter().partition(|r| moved.contains_key(r.openclaw_job_id.as_str()));
    println!("OpenClaw jobs from {}: {} found", source.display(), jobs.len());
    if args.dry_run {
        print_plan(&plan, &BTreeSet::new());
        print_state_plan(&devices, &device_notes, &receipts, orphans.len(), &run_notes);
        println!("Dry run: nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let target = Target::resolve(&args.c, paths, &process_env)?;
    let mut client = Client::connect(&target, &[Scope::Admin]).await?;
    if config_written {
        match client.call::<ConfigReload>(&ConfigReloadParams {}).await {
            Ok(r) if r.restart_needed.is_empty() => println!("The gateway applied the new config."),
            Ok(r) => println!(
                "The gateway applied the new config; waiting for a restart: {} (`pincer service restart`).",
                r.restart_needed.join(", ")
            ),
            Err(e) => println!(
                "The gateway refused the new config and keeps running the old one: {e} (fix it, then `pincer config reload`)."
            ),
        }
    }
    let existing = declaration_keys(&mut client).await?;
    print_plan(&plan, &existing);
    let mut added = 0;
    for m in plan.moves.iter().filter(|m| !existing.contains(&m.key)) {
        let params = parse_params::<AddParams>(cron::Add::NAME, Some(&m.params)).map_err(|e| anyhow::anyhow!(e.0))?;
        client.call::<cron::Add>(&params).await.map_err(|e| anyhow::anyhow!("{}: {e}", m.name))?;
        added += 1;
    }
    println!("Imported {added} job(s); {} were already here.", plan.moves.len() - added);

    // Run history is linked to the jobs by their declaration keys, now that every job is here.
    print_state_plan(&devices, &device_notes, &receipts, orphans.len(), &run_notes);
    let ids: BTreeMap<String, String> = super::cron::every_job(&mut client)
        .await?
        .into_iter()
        .filter_map(|j| j.job.declaration_key.map(|k| (k, j.job.id)))
        .collect();
    let runs: Vec<ImportedRun> = receipts
        .into_iter()
        .filter_map(|r| {
            let id = moved.get(r.openclaw_job_id.as_str()).and_then(|key| ids.get(*key))?;
            Some(ImportedRun { job_id: id.clone(), ..r.run })
        })
        .collect();
    let params = ImportOpenclawParams { devices, runs };
    let r = client.call::<ImportOpenclaw>(&params).await.map_err(|e| anyhow::anyhow!("import.openclaw: {e}"))?;
    client.close().await;
    println!("Imported {} paired device(s); {} were already here.", r.devices_added, r.devices_present);
    println!("Imported {} past run(s); {} were already here.", r.runs_added, r.runs_present);
    Ok(ExitCode::SUCCESS)
}

fn print_state_plan(
    devices: &[ImportedDevice],
    device_notes: &[(String, String)],
    receipts: &[state::Receipt],
    orphans: usize,
    run_notes: &[(String, String)],
) {
    println!("Paired devices that move ({}), each with its public key, scopes and live tokens:", devices.len());
    for d in devices {
        let roles: Vec<&str> = d.tokens.iter().map(|t| t.role.as_str()).collect();
        let name = d.display_name.as_deref().unwrap_or("(unnamed)");
        println!(
            "  {name} {} — tokens: {}",
            d.device_id,
            if roles.is_empty() { "none".into() } else { roles.join(", ") }
        );
    }
    for (device, why) in device_notes {
        println!("    {device}: {why}");
    }
    println!("Past runs that move ({}), as read-only history of their jobs:", receipts.len());
    if orphans > 0 {
        println!("  {orphans} run(s) of jobs that are not imported stay behind");
    }
    for (run, why) in run_notes {
        println!("    run {run}: {why}");
    }
    println!();
}

fn print_config_plan(source: &Path, target: &Path, plan: &config::ConfigPlan, merge: &config::Merge, force: bool) {
    println!("OpenClaw config from {} into {}:", source.display(), target.display());
    if merge.added.is_empty() {
        println!("  nothing to add: {} already has every key that maps", target.display());
    }
    for key in &merge.added {
        println!("  adds {key}");
    }
    for key in &merge.conflicts {
        if force {
            println!("  replaces {key} (--force)");
        } else {
            println!("  keeps {key}: pincer.json sets it differently (--force to take OpenClaw's)");
        }
    }
    if !plan.env_refs.is_empty() {
        println!("  the gateway needs these set in its environment: {}", plan.env_refs.join(", "));
    }
    println!("\nConfig keys not carried over ({}):", plan.left.len());
    for (key, why) in &plan.left {
        println!("  {key}: {why}");
    }
    println!();
}

/// The declaration keys of every job the gateway has.
async fn declaration_keys(client: &mut Client) -> anyhow::Result<BTreeSet<String>> {
    let jobs = super::cron::every_job(client).await?;
    Ok(jobs.into_iter().filter_map(|j| j.job.declaration_key).collect())
}

fn print_plan(plan: &Plan, existing: &BTreeSet<String>) {
    println!("\nJobs that map ({}):", plan.moves.len());
    for m in &plan.moves {
        let here = if existing.contains(&m.key) { " — already imported, left as it is" } else { "" };
        println!("  {} (OpenClaw {}, declarationKey {}){here}", m.name, m.openclaw_id, m.key);
        for note in &m.notes {
            println!("    changes meaning: {note}");
        }
    }
    println!("\nJobs that cannot be moved ({}):", plan.refused.len());
    for (name, why) in &plan.refused {
        println!("  {name}: {why}");
    }
    println!("\nNot moved by this import:");
    for what in NOT_MOVED {
        println!("  {what}");
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs as OpenClaw 2026.9.6 stored them (`cron_jobs.job_json`): its own three housekeeping
    /// jobs and two made with `openclaw cron add`.
    fn real_jobs() -> Vec<Value> {
        let text = include_str!("../../../../../tests/fixtures/openclaw-2026.9.6-cron-jobs.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn jobs_written_by_openclaw_map_and_its_own_housekeeping_stays_behind() {
        let plan = plan(&real_jobs());
        let moved: Vec<(&str, &str)> = plan.moves.iter().map(|m| (m.name.as_str(), m.key.as_str())).collect();
        assert_eq!(
            moved,
            [
                ("morning brief", "openclaw:46b902e5-8a80-4db9-9b58-5f7fcbf1ba90"),
                ("disk check", "openclaw:02746c99-9087-4f50-8acb-782fc95d7323")
            ]
        );
        let refused: Vec<&str> = plan.refused.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(refused, ["Memory Dreaming Promotion", "heartbeat-main", "skill-collection-review-main"]);
        let brief = &plan.moves[0];
        assert_eq!(
            brief.params["schedule"],
            serde_json::json!({"kind": "cron", "expr": "0 7 * * *", "tz": "Europe/Berlin"})
        );
        assert!(brief.params.get("id").is_none() && brief.params.get("state").is_none(), "{}", brief.params);
        let notes = brief.notes.join("\n");
        assert!(notes.contains("daylight saving") && notes.contains("channel `last`"), "{notes}");
        assert!(notes.contains("scheduledToolPolicy dropped"), "{notes}");
        let disk = &plan.moves[1];
        assert!(disk.notes.is_empty(), "{:?}", disk.notes);
        assert_eq!(disk.params["payload"], serde_json::json!({"kind": "systemEvent", "text": "check the disk"}));
    }

    #[test]
    fn a_job_pincer_refuses_is_reported_with_the_reason() {
        let jobs = vec![
            serde_json::json!({"id": "a", "name": "bad", "schedule": {"kind": "every", "everyMs": 3600000},
                               "payload": {"kind": "script", "source": "x"}}),
            serde_json::json!("not a job"),
        ];
        let plan = plan(&jobs);
        assert!(plan.moves.is_empty());
        assert_eq!(plan.refused[0].0, "bad");
        assert!(plan.refused[0].1.starts_with("Pincer refuses it: "), "{:?}", plan.refused);
        assert_eq!(plan.refused[1], ("(a row)".to_string(), "not a JSON object".to_string()));
    }
}
