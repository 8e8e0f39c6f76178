//! The real `pincer` binary: first start, client commands against a running gateway, errors that
//! say what to do, one gateway per state dir, and SIGTERM.

use std::os::unix::fs::PermissionsExt;

use pincer_testkit::process::{GatewayProcess, free_port};
use serde_json::{Value, json};

use crate::support::pincer_bin;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `pincer` with only the given environment.
fn pincer(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(pincer_bin());
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn first_start_writes_a_private_token_that_local_clients_use() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port().to_string();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = std::process::Command::new(pincer_bin())
        .args(["gateway", "--port", &port])
        .env_clear()
        .env("PINCER_STATE_DIR", &state)
        .stderr(log)
        .spawn()
        .unwrap();
    let config_path = state.join("pincer.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let env = [("PINCER_STATE_DIR", state.to_str().unwrap())];
    let health = loop {
        let out = pincer(&["health", "--json"], &env);
        if out.status.success() {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "never healthy: {}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let health: Value = serde_json::from_str(&stdout(&health)).unwrap();
    assert_eq!(health["ok"], true);
    let mode = std::fs::metadata(&config_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(text.contains("\"token\""), "{text}");
    // The human form answers too, and `status --json` reports this state dir.
    let out = pincer(&["health"], &env);
    assert!(stdout(&out).contains("healthy"), "{}", stdout(&out));
    let status: Value = serde_json::from_str(&stdout(&pincer(&["status", "--json"], &env))).unwrap();
    assert_eq!(status["stateDir"], state.to_str().unwrap());
    unsafe { libc_kill(child.id()) };
    assert!(child.wait().unwrap().success());
}

unsafe fn libc_kill(pid: u32) {
    // SIGTERM without pulling libc into the test's own dependencies.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

#[test]
fn client_commands_json_and_human() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let out = gw.cli(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["gateway"]["port"], gw.port);
    let out = gw.cli(&["status"]);
    assert!(stdout(&out).contains("schema v"), "{}", stdout(&out));
    // Explicit --url and --token work without any state dir.
    let out = pincer(&["health", "--json", "--url", &gw.url(), "--token", &gw.token], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn errors_are_one_line_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let out = gw.cli(&["status", "--token", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("rejected the token") && err.contains("PINCER_GATEWAY_TOKEN"), "{err}");

    let port = free_port();
    let out = pincer(&["health", "--url", &format!("ws://127.0.0.1:{port}"), "--token", "x"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the gateway") && err.contains("pincer gateway"), "{err}");
}

#[test]
fn one_gateway_per_state_dir_and_clients_find_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    // A second gateway on the same state dir refuses, naming the running one.
    let out =
        pincer(&["gateway", "--port", &free_port().to_string()], &[("PINCER_STATE_DIR", dir.path().to_str().unwrap())]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    // The running gateway publishes its port: a client with only the state dir finds it even
    // when the config names another port.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("pincer.json")).unwrap()).unwrap();
    config["gateway"]["port"] = json!(1);
    std::fs::write(dir.path().join("pincer.json"), config.to_string()).unwrap();
    let out = gw.cli(&["health", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn invalid_config_stops_the_gateway_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pincer.json"), r#"{ gateway: { auth: { tokne: "x" } } }"#).unwrap();
    let out = pincer(&["gateway"], &[("PINCER_STATE_DIR", dir.path().to_str().unwrap())]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("gateway.auth.tokne") && err.contains("unknown field"), "{err}");

    std::fs::write(dir.path().join("pincer.json"), r#"{ gateway: { bind: "lan", auth: { mode: "none" } } }"#).unwrap();
    let out =
        pincer(&["gateway", "--port", &free_port().to_string()], &[("PINCER_STATE_DIR", dir.path().to_str().unwrap())]);
    assert!(stderr(&out).contains("refusing to bind to the LAN without auth"), "{}", stderr(&out));
}

#[test]
fn env_expansion_in_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pincer.json"), r#"{ gateway: { port: 1, auth: { token: "${MY_TOKEN}" } } }"#)
        .unwrap();
    let port = free_port().to_string();
    let out = pincer(&["gateway", "--port", &port], &[("PINCER_STATE_DIR", dir.path().to_str().unwrap())]);
    assert!(stderr(&out).contains("gateway.auth.token: environment variable MY_TOKEN is not set"), "{}", stderr(&out));
}

#[test]
fn sigterm_closes_clients_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = rt
        .block_on(pincer_testkit::ws::RawClient::connect(
            &gw.url(),
            pincer_testkit::ws::cli_connect_params(Some(&gw.token), &[]),
        ))
        .unwrap()
        .0;
    let (status, took) = gw.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    // The issue's budget is one second; measured in `cargo xtask bench`. Here only a loose bound.
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    let shutdown = rt.block_on(client.next_event("shutdown")).unwrap();
    assert_eq!(shutdown["payload"]["reason"], "gateway stopping");
    assert_eq!(rt.block_on(client.expect_close()).unwrap().0, Some(1001));
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

/// `pincer cron list --json` walks keyed pages of 1000 and prints as it goes: over 2,345 jobs
/// (three pages) it prints each listed job once, in the listing's order, in the shape of one
/// `{"jobs": [...], "total": n}` value.
#[test]
fn cron_list_json_prints_every_job_of_many_pages_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let store = pincer_store::Store::open(&state.join("pincer.db")).unwrap();
    let start = 4_102_444_800_000i64; // 2100-01-01, so nothing fires
    let n = 2_345i64;
    store
        .write_blocking(move |tx| {
            for i in 0..n {
                // Fire times out of id order; every 10th disabled.
                let (id, next) = (format!("job-{i:05}"), start + (i * 7_919) % n * 60_000);
                let enabled = i % 10 != 0;
                let job = json!({
                    "id": id, "name": format!("job {i}"), "enabled": enabled, "createdAtMs": start,
                    "updatedAtMs": start, "schedule": {"kind": "at", "at": "2100-01-02T00:00:00Z"},
                    "sessionTarget": "isolated", "wakeMode": "now", "payload": {"kind": "command", "argv": ["true"]},
                    "delivery": {"mode": "none"},
                });
                tx.insert_job(&pincer_store::JobRow {
                    id,
                    name: format!("job {i}"),
                    enabled,
                    job_json: job.to_string(),
                    state_json: if enabled { json!({"nextRunAtMs": next}) } else { json!({}) }.to_string(),
                    next_run_at_ms: enabled.then_some(next),
                    created_at_ms: start,
                    updated_at_ms: start,
                })?;
            }
            Ok(())
        })
        .unwrap();
    store.close();
    let gw = GatewayProcess::start(&pincer_bin(), &state, json!({})).unwrap();
    for (args, listed) in [(&["cron", "list", "--json"][..], 2_110), (&["cron", "list", "--all", "--json"][..], 2_345)]
    {
        let out = gw.cli(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let list = json_of(&out);
        let jobs = list["jobs"].as_array().unwrap();
        assert_eq!((jobs.len(), list["total"].as_u64()), (listed, Some(listed as u64)), "{args:?}");
        let keys: Vec<(i64, &str)> = jobs
            .iter()
            .map(|j| (j["state"]["nextRunAtMs"].as_i64().unwrap_or(i64::MAX), j["id"].as_str().unwrap()))
            .collect();
        let bad = keys.windows(2).find(|w| w[0] >= w[1]);
        assert!(bad.is_none(), "{args:?}: out of order or repeated: {bad:?}");
        assert!(jobs.iter().all(|j| j["deliveryPreview"]["label"].is_string()), "each job has its preview");
        // Printed as the whole value would be.
        assert_eq!(stdout(&out), format!("{}\n", serde_json::to_string_pretty(&list).unwrap()));
    }
}

#[test]
fn cron_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(
        &pincer_bin(),
        dir.path(),
        json!({"agents": {"defaults": {"timezone": "Europe/Berlin"}}}),
    )
    .unwrap();
    let out =
        gw.cli(&["cron", "add", "--name", "brief", "--cron", "0 7 * * *", "--command", "echo good morning", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job = json_of(&out);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["schedule"]["tz"], "Europe/Berlin", "the default zone is stored");
    assert_eq!(job["deliveryPreview"]["label"], "inbox -> default");
    let list = stdout(&gw.cli(&["cron", "list"]));
    assert!(list.contains("brief") && list.contains("Europe/Berlin") && list.contains("07:00:00 CET"), "{list}");
    let show = stdout(&gw.cli(&["cron", "show", "brief"]));
    assert!(show.contains("next runs (Europe/Berlin):") && show.matches(" 07:00:00 CE").count() == 5, "{show}");
    let out = gw.cli(&["cron", "run", &id, "--wait"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("completion succeeded"), "{}", stdout(&out));
    let runs = json_of(&gw.cli(&["cron", "runs", "--id", &id, "--json"]));
    assert_eq!(runs["entries"][0]["summary"], "good morning");
    let inbox = stdout(&gw.cli(&["inbox"]));
    assert!(inbox.contains("good morning"), "{inbox}");
    let edited = json_of(&gw.cli(&["cron", "edit", &id, "--command", "exit 3", "--no-deliver", "--json"]));
    assert_eq!(edited["delivery"]["mode"], "none");
    let out = gw.cli(&["cron", "run", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1: {}", stdout(&out));
    assert_eq!(json_of(&gw.cli(&["cron", "disable", &id]))["enabled"], false);
    assert!(stdout(&gw.cli(&["cron", "list"])).contains("No jobs enabled"));
    assert_eq!(json_of(&gw.cli(&["cron", "enable", &id]))["enabled"], true);
    let status = json_of(&gw.cli(&["cron", "status", "--json"]));
    assert_eq!(status["jobs"], 1);
    assert_eq!(json_of(&gw.cli(&["cron", "rm", &id]))["removed"], true);
    let out = gw.cli(&["cron", "get", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no job matches"), "{}", stderr(&out));
    // Flag mistakes are caught before anything is sent.
    let out = gw.cli(&["cron", "add", "--every", "1h", "--cron", "* * * * *", "--command", "true"]);
    assert!(stderr(&out).contains("choose one schedule"), "{}", stderr(&out));
    let out = gw.cli(&["cron", "add", "--every", "1h"]);
    assert!(stderr(&out).contains("a payload is required"), "{}", stderr(&out));
    let out =
        gw.cli(&["cron", "add", "--every", "1h", "--command", "true", "--channel", "inbox", "--to", "telegram:1"]);
    assert!(!out.status.success() && stderr(&out).contains("contradicts"), "{}", stderr(&out));
}

#[test]
fn message_deliveries_doctor_devices_and_audit_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"channels": {"discord": {"token": "bad", "apiBaseUrl": format!("http://127.0.0.1:{}/api", free_port())}}});
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg).unwrap();
    let out = gw.cli(&["message", "send", "--channel", "inbox", "--to", "default", "--message", "hello"]);
    assert!(out.status.success() && stdout(&out).contains("delivered"), "{}{}", stdout(&out), stderr(&out));
    let list = json_of(&gw.cli(&["deliveries", "list", "--json"]));
    let id = list["deliveries"][0]["id"].as_str().unwrap().to_string();
    let show = stdout(&gw.cli(&["deliveries", "show", &id[..8]]));
    assert!(show.contains("delivered") && show.contains("sent"), "{show}");
    let out = gw.cli(&["deliveries", "retry", &id]);
    assert!(!out.status.success() && stderr(&out).contains("only dead or unknown"), "{}", stderr(&out));
    let purged = json_of(&gw.cli(&["deliveries", "purge", "--state", "delivered"]));
    assert_eq!(purged["purged"], 1);
    let out = gw.cli(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(report.contains("FAIL  channel.discord") && report.contains("fix: check channels.discord"), "{report}");
    let doctor = json_of(&gw.cli(&["doctor", "--json"]));
    assert!(doctor["findings"].as_array().unwrap().iter().any(|f| f["check"] == "store" && f["status"] == "ok"));
    let devices = json_of(&gw.cli(&["devices", "list", "--json"]));
    assert_eq!((devices["pending"].clone(), devices["paired"].clone()), (json!([]), json!([])));
    let audit = json_of(&gw.cli(&["audit", "--json"]));
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["action"] == "gateway.auth.succeeded"), "{audit}");
}

#[test]
fn deliveries_cancel_stops_a_pending_delivery() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on Discord's port: every send fails "not sent" and waits 5 s for a retry.
    let cfg =
        json!({"channels": {"discord": {"token": "t", "apiBaseUrl": format!("http://127.0.0.1:{}/api", free_port())}}});
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg).unwrap();
    let out = gw.cli(&[
        "message",
        "send",
        "--channel",
        "discord",
        "--to",
        "channel:1",
        "--message",
        "hi",
        "--no-wait",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = json_of(&out)["deliveryId"].as_str().unwrap().to_string();
    let out = gw.cli(&["deliveries", "cancel", &id[..8]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("{id} cancelled: cancelled with `pincer deliveries cancel`: 0 of 1 parts had been sent")
    );
    let show = stdout(&gw.cli(&["deliveries", "show", &id]));
    assert!(show.contains("dead") && show.contains("cancelled") && show.contains("parts (1):"), "{show}");
    let out = gw.cli(&["deliveries", "cancel", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("delivery {id} is dead; only pending or sending deliveries can be cancelled")),
        "{}",
        stderr(&out)
    );
}

/// Telegram group ids are negative and messages may start with a dash: the option's value is the
/// next word, whatever it starts with (as `openclaw` takes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_telegram_ids_and_leading_dashes_are_values() {
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let fake = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({
        "channels": { "telegram": { "botToken": FakeTelegram::TOKEN, "apiRoot": fake.base_url() } },
        "delivery": { "rateLimits": { "telegram": 0 } },
    });
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), cfg).unwrap();
    let gw = std::sync::Arc::new(gw);
    let cli = |args: &'static [&'static str]| {
        let gw = gw.clone();
        tokio::task::spawn_blocking(move || gw.cli(args))
    };
    let out = cli(&[
        "message",
        "send",
        "--channel",
        "telegram",
        "--to",
        "-1001234567890",
        "--thread-id",
        "42",
        "--message",
        "-5 degrees outside",
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let sent = fake.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].chat_id.as_str(), sent[0].text.as_str()), ("-1001234567890", "-5 degrees outside"));
    assert_eq!(sent[0].message_thread_id, Some(42));
    let out = cli(&[
        "cron",
        "add",
        "--every",
        "1h",
        "--message",
        "-v",
        "--channel",
        "telegram",
        "--to",
        "-1001234567890",
        "--json",
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let job = json_of(&out);
    assert_eq!(
        (job["delivery"]["to"].as_str(), job["payload"]["message"].as_str()),
        (Some("-1001234567890"), Some("-v"))
    );
}

/// A database damaged under a running gateway: `doctor` says it is corrupted and how to restore
/// it, instead of pointing at permissions and disk space.
#[test]
fn doctor_names_a_corrupted_database_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let out = gw.cli(&["message", "send", "--channel", "inbox", "--to", "default", "--message", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = dir.path().join("pincer.db");
    std::fs::write(dir.path().join("pincer.db.pre-v5.bak"), b"an older backup").unwrap();
    // Everything into the main file, then its header overwritten.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(())).unwrap();
    drop(conn);
    use std::io::{Seek, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.write_all(b"not a database!\0").unwrap();
    drop(file);
    let out = gw.cli(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json_of(&out);
    let store = report["findings"].as_array().unwrap().iter().find(|f| f["check"] == "store").cloned().unwrap();
    assert_eq!(store["status"], "fail", "{store}");
    let (message, fix) = (store["message"].as_str().unwrap(), store["fix"].as_str().unwrap());
    assert!(message.contains("the database is corrupted"), "{message}");
    assert!(fix.contains(&format!("copy {}", dir.path().join("pincer.db.pre-v5.bak").display())), "{fix}");
    assert!(fix.contains(".recover") && !fix.contains("permissions"), "{fix}");
}

/// `pincer sessions cleanup`: `--dry-run` lists what would go and changes nothing; without it
/// the idle named session is archived, the idle finished cron run deleted, the main one kept.
#[test]
fn sessions_cleanup_dry_runs_then_archives_idle_sessions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = pincer_store::Store::open(&dir.path().join("pincer.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.ensure_session("agent:main:main", "main", "main", None, None, 1)?;
                tx.ensure_session("agent:main:session:old", "main", "named", None, None, 1)?;
                tx.ensure_session("agent:main:cron:j:run:r", "main", "isolated", Some("j"), Some("r"), 1)?;
                tx.finish_session("agent:main:cron:j:run:r", 1)
            })
            .unwrap();
    }
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let out = gw.cli(&["sessions", "cleanup", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dry: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (dry["dryRun"].as_bool(), dry["beforeCount"].as_u64(), dry["afterCount"].as_u64()),
        (Some(true), Some(3), Some(1)),
        "{dry}"
    );
    let out = gw.cli(&["sessions", "cleanup", "--dry-run"]);
    let text = stdout(&out);
    assert!(text.contains("archive-age") && text.contains("agent:main:session:old"), "{text}");
    assert!(text.contains("prune-stale") && text.contains("without --dry-run"), "{text}");
    let out = gw.cli(&["sessions", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&stdout(&out)).unwrap()["total"], 3, "the dry run changed nothing");

    let out = gw.cli(&["sessions", "cleanup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Sessions: 3 -> 1"), "{}", stdout(&out));
    let out = gw.cli(&["sessions", "list", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list["sessions"][0]["key"], "agent:main:main", "{list}");
    assert_eq!(list["total"], 1);
}

/// `pincer sessions show`: the current transcript, with the earlier ones `/new` replaced listed
/// and how to see one; `--session-id` shows one of them; `--json` carries the list too.
#[test]
fn sessions_show_lists_earlier_transcripts_and_shows_one_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let key = "agent:main:session:notes";
    let old = {
        let store = pincer_store::Store::open(&dir.path().join("pincer.db")).unwrap();
        store
            .write_blocking(move |tx| {
                tx.ensure_session(key, "main", "named", None, None, 1)?;
                tx.append_transcript(key, "user", "old question", 2, None)?;
                tx.append_transcript(key, "assistant", "old answer", 3, None)?;
                let old = tx.reset_session(key, "new", 4)?.unwrap();
                tx.append_transcript(key, "user", "new question", 5, None)?;
                Ok(old)
            })
            .unwrap()
    };
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();

    let out = gw.cli(&["sessions", "show", key]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("new question") && !text.contains("old question"), "{text}");
    assert!(text.contains("Earlier transcripts") && text.contains(&old), "{text}");
    assert!(text.contains(&format!("pincer sessions show {key} --session-id {old}")), "{text}");

    let out = gw.cli(&["sessions", "show", key, "--session-id", &old]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("old question") && text.contains("old answer"), "{text}");
    assert!(!text.contains("new question") && text.contains("not the current transcript"), "{text}");
    assert!(text.contains(&format!("The current transcript: `pincer sessions show {key}`")), "{text}");

    let out = gw.cli(&["sessions", "show", key, "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["session"]["previousSessionId"], old.as_str(), "{shown}");
    let previous = &shown["previousTranscripts"][0];
    assert_eq!(
        (previous["sessionId"].as_str(), previous["reason"].as_str(), previous["messageCount"].as_i64()),
        (Some(old.as_str()), Some("new"), Some(2)),
        "{shown}"
    );
    assert_eq!((previous["startedAt"].as_i64(), previous["archivedAt"].as_i64()), (Some(2), Some(4)));

    let out = gw.cli(&["sessions", "show", key, "--session-id", "nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sessionId does not belong to sessionKey"), "{}", stderr(&out));
}
