//! Operator experience of the real `pincer` binary against a running gateway: listings that end
//! quietly when their reader goes, backup and restore, completions and man pages, schedules in
//! plain language.

use std::process::Output;

use pincer_testkit::fakes::openai::{FakeOpenAi, Reply};
use serde_json::Value;

use crate::support::{TOKEN, TestGateway, pincer_bin};

async fn gateway(fake: &FakeOpenAi) -> TestGateway {
    TestGateway::start_with(&format!(
        "{{ models: {{ providers: {{ openai: {{ api: 'openai-completions', baseUrl: '{}', apiKey: 'sk-test', models: [{{ id: 'gpt-4o' }}] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'openai/gpt-4o' }}, timezone: 'Europe/Berlin' }} }} }}",
        fake.base_url()
    ))
    .await
}

/// `pincer <args> --url … --token …`, its stdout piped to the test.
async fn pincer(gw: &TestGateway, args: &[&str]) -> Output {
    tokio::process::Command::new(pincer_bin())
        .args(args)
        .args(["--url", &gw.url(), "--token", TOKEN])
        .env_clear()
        .output()
        .await
        .unwrap()
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    stdout.into_owned()
}

/// `pincer <args>` writing into a pipe whose reader has already gone, as `pincer audit | head -1`
/// is once `head` has its line.
async fn into_closed_pipe(gw: &TestGateway, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    tokio::process::Command::new(pincer_bin())
        .args(args)
        .args(["--url", &gw.url(), "--token", TOKEN])
        .env_clear()
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        // Not `output()`: tokio's would replace the closed pipe by one of its own.
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_listing_ends_quietly_when_its_reader_goes() {
    use std::os::unix::process::ExitStatusExt;
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Hello."));
    let gw = gateway(&fake).await;
    // Something in every listing: a session, a job, a delivery, audit entries.
    ok(&pincer(&gw, &["agent", "--message", "hi", "--session", "session:cli"]).await);
    let job: Value = serde_json::from_str(&ok(&pincer(
        &gw,
        &["cron", "add", "--name", "brief", "--every", "1h", "--message", "x", "--json"],
    )
    .await))
    .unwrap();
    let job_id = job["id"].as_str().unwrap().to_owned();
    ok(&pincer(&gw, &["message", "send", "--channel", "inbox", "--to", "me", "--message", "hello"]).await);

    let listings: Vec<Vec<&str>> = vec![
        vec!["audit"],
        vec!["sessions", "list"],
        vec!["sessions", "show", "session:cli"],
        vec!["cron", "list"],
        vec!["cron", "status"],
        vec!["cron", "show", "brief"],
        vec!["cron", "get", &job_id],
        vec!["cron", "runs", &job_id],
        vec!["deliveries", "list"],
        vec!["devices", "list"],
        vec!["inbox"],
        vec!["status"],
        vec!["health"],
        vec!["doctor"],
    ];
    for args in listings {
        for json in [false, true] {
            let mut args = args.clone();
            if json {
                args.push("--json");
            }
            let out = into_closed_pipe(&gw, &args).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            let quiet = out.status.success() || out.status.signal() == Some(libc::SIGPIPE);
            assert!(quiet && stderr.is_empty(), "pincer {args:?} into a closed pipe: {:?}\n{stderr}", out.status);
        }
    }
    gw.stop().await;
}

fn names_of_jobs(gw: &pincer_testkit::process::GatewayProcess) -> Vec<String> {
    let list: Value = serde_json::from_str(&ok(&gw.cli(&["cron", "list", "--all", "--json"]))).unwrap();
    let mut names: Vec<String> =
        list["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[test]
fn backup_while_the_gateway_runs_and_restore_only_once_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut gw = pincer_testkit::process::GatewayProcess::start(&pincer_bin(), &state, serde_json::json!({})).unwrap();
    ok(&gw.cli(&["cron", "add", "--name", "kept", "--every", "1h", "--system-event", "tick", "--session", "main"]));
    let file = dir.path().join("pincer-backup.db");
    let file_arg = file.to_str().unwrap();

    let out: Value = serde_json::from_str(&ok(&gw.cli(&["backup", file_arg, "--json"]))).unwrap();
    assert_eq!(out["ok"], true, "{out}");
    assert!(out["schemaVersion"].as_i64().unwrap() > 0, "{out}");
    // A single complete file, owner-only, and never written over.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!dir.path().join("pincer-backup.db-wal").exists());
    let again = gw.cli(&["backup", file_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists: choose a new file name"));

    // Made after the backup: the restore takes it away again.
    ok(&gw.cli(&["cron", "add", "--name", "later", "--every", "1h", "--system-event", "tock", "--session", "main"]));
    let refused = gw.cli(&["restore", file_arg]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    let pid = gw.child.id();
    assert!(
        stderr.contains(&format!("restore refused: a gateway (pid {pid}) is using"))
            && stderr.contains("stop it first"),
        "{stderr}"
    );
    assert_eq!(names_of_jobs(&gw), ["kept", "later"], "a refused restore changes nothing");

    assert!(gw.terminate().unwrap().0.success());
    let restored = ok(&gw.cli(&["restore", file_arg]));
    assert!(restored.contains("The database it replaced is kept at"), "{restored}");
    gw.restart().unwrap();
    assert_eq!(names_of_jobs(&gw), ["kept"]);
}

#[test]
fn completions_and_man_pages_from_the_binary() {
    let run = |args: &[&str]| std::process::Command::new(pincer_bin()).args(args).env_clear().output().unwrap();
    let bash = ok(&run(&["completions", "bash"]));
    assert!(bash.contains("complete -F _pincer") && bash.contains("deliveries"), "{bash}");
    assert!(ok(&run(&["completions", "zsh"])).starts_with("#compdef pincer"));
    assert!(ok(&run(&["completions", "fish"])).contains("complete -c pincer"));
    let bad = run(&["completions", "tcsh"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("possible values: bash"));
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let said = ok(&run(&["man", man.to_str().unwrap()]));
    assert!(said.starts_with("Wrote "), "{said}");
    let page = std::fs::read_to_string(man.join("pincer-backup.1")).unwrap();
    assert!(page.contains(".TH pincer-backup 1") && page.contains("Example"), "{page}");
}

#[tokio::test]
async fn cron_add_edit_and_show_say_the_schedule_in_plain_language() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake).await;
    // Read seconds-first, as OpenClaw reads it: warned about, with the five-field spelling.
    let out = pincer(&gw, &["cron", "add", "--name", "shifted", "--cron", "0 7 * * * *", "--message", "x"]).await;
    let said = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "warning: `0 7 * * * *` has six fields, so its first field is seconds: it runs every hour at :07, not once a day. \
             For every day at 07:00 Europe/Berlin, write `0 7 * * *` (five fields)."
        ),
        "{stderr}"
    );
    assert!(said.contains("  schedule: every hour at :07 (cron 0 7 * * * *)"), "{said}");

    let out =
        pincer(&gw, &["cron", "add", "--name", "daily", "--cron", "0 7 * * *", "--exact", "--message", "x"]).await;
    let said = ok(&out);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("Added job "), "{said}");
    // The zone is the gateway's default (agents.defaults.timezone), not UTC.
    assert!(said.contains("  schedule: every day at 07:00 Europe/Berlin (cron 0 7 * * *)"), "{said}");
    assert!(said.contains("  next run: 2026-03-01 07:00:00 CET"), "{said}");
    let id = said.split_whitespace().nth(2).unwrap().to_owned();

    // `edit` answers in the same prose as `add`, not with the job's JSON.
    let said = ok(&pincer(&gw, &["cron", "edit", &id, "--cron", "30 7 * * 1-5"]).await);
    assert!(said.starts_with(&format!("Updated job {id} \"daily\"")), "{said}");
    assert!(
        said.contains("  schedule: every weekday (Monday to Friday) at 07:30 Europe/Berlin (cron 30 7 * * 1-5)"),
        "{said}"
    );
    let json: Value =
        serde_json::from_str(&ok(&pincer(&gw, &["cron", "edit", &id, "--name", "daily2", "--json"]).await)).unwrap();
    assert_eq!(json["name"], "daily2");

    let said = ok(&pincer(&gw, &["cron", "show", "daily2"]).await);
    assert!(said.contains("every weekday (Monday to Friday) at 07:30 Europe/Berlin"), "{said}");
    let delivery = said.lines().find(|l| l.trim_start().starts_with("delivery")).unwrap();
    let label = delivery.trim_start().trim_start_matches("delivery").trim();
    let head = label.split(" (").next().unwrap();
    assert_eq!(label.matches(head).count(), 1, "the delivery line repeats itself: {delivery}");

    // An interval has no zone to show.
    let said = ok(&pincer(&gw, &["cron", "add", "--name", "hourly", "--every", "1h", "--message", "x"]).await);
    assert!(said.contains("  schedule: every 1h\n"), "{said}");
    gw.stop().await;
}

#[tokio::test]
async fn every_job_command_takes_an_id_a_unique_prefix_or_a_name() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake).await;
    let add = |name: &'static str| {
        let gw = &gw;
        async move {
            let out = pincer(
                gw,
                &["cron", "add", "--name", name, "--every", "1h", "--system-event", "x", "--session", "main", "--json"],
            )
            .await;
            let job: Value = serde_json::from_str(&ok(&out)).unwrap();
            job["id"].as_str().unwrap().to_owned()
        }
    };
    let (brief, disk) = (add("brief").await, add("disk").await);
    let get = |out: &Output| serde_json::from_str::<Value>(&ok(out)).unwrap();
    // By name and by the short id `cron list` shows.
    let short = &brief[..8];
    assert!(ok(&pincer(&gw, &["cron", "list"]).await).contains(short));
    assert_eq!(get(&pincer(&gw, &["cron", "get", "disk", "--json"]).await)["id"], disk.as_str());
    assert_eq!(get(&pincer(&gw, &["cron", "get", short]).await)["id"], brief.as_str());
    ok(&pincer(&gw, &["cron", "disable", short]).await);
    ok(&pincer(&gw, &["cron", "enable", "brief"]).await);
    let said = ok(&pincer(&gw, &["cron", "edit", short, "--every", "2h"]).await);
    assert!(said.contains("schedule: every 2h"), "{said}");
    assert!(ok(&pincer(&gw, &["cron", "show", short]).await).contains(&brief));
    let run: Value = get(&pincer(&gw, &["cron", "run", "disk"]).await);
    assert_eq!(run["enqueued"], true, "{run}");
    ok(&pincer(&gw, &["cron", "runs", "disk"]).await);
    ok(&pincer(&gw, &["cron", "runs", "--id", short]).await);

    // Unknown: one message, non-zero, for every command (`runs` no longer says "No runs yet.").
    for args in [
        vec!["cron", "get", "nope"],
        vec!["cron", "show", "nope"],
        vec!["cron", "edit", "nope", "--every", "1h"],
        vec!["cron", "rm", "nope"],
        vec!["cron", "enable", "nope"],
        vec!["cron", "disable", "nope"],
        vec!["cron", "run", "nope"],
        vec!["cron", "runs", "nope"],
    ] {
        let out = pincer(&gw, &args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("no job matches `nope` (by id, unique id prefix or name): see `pincer cron list --all`"),
            "{args:?}: {stderr}"
        );
    }
    // Ambiguous: a job named like the start of another job's id.
    let twin = &disk[..4];
    add_named(&gw, twin).await;
    let out = pincer(&gw, &["cron", "rm", twin]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&format!("`{twin}` matches 2 jobs (")), "{stderr}");
    assert!(stderr.contains("give more of the id"), "{stderr}");
    // The removal by name worked on the right one, and only it.
    ok(&pincer(&gw, &["cron", "rm", "brief"]).await);
    let list: Value = get(&pincer(&gw, &["cron", "list", "--all", "--json"]).await);
    let names: Vec<&str> = list["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"brief") && names.contains(&"disk"), "{names:?}");
    gw.stop().await;
}

async fn add_named(gw: &TestGateway, name: &str) {
    ok(&pincer(gw, &["cron", "add", "--name", name, "--every", "1h", "--system-event", "x", "--session", "main"])
        .await);
}

/// `pincer <args>` with exactly these flags (no `--token` added).
async fn pincer_raw(args: &[&str]) -> Output {
    tokio::process::Command::new(pincer_bin()).args(args).env_clear().output().await.unwrap()
}

#[tokio::test]
async fn errors_under_json_are_json_on_stdout_with_a_non_zero_exit() {
    let fake = FakeOpenAi::start().await;
    let gw = gateway(&fake).await;
    let url = gw.url();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["cron", "get", "nope", "--json"], "FAILED", "no job matches `nope`"),
        (
            vec!["cron", "list", "--json", "--url", &url, "--token", "wrong-token-0123456789"],
            "INVALID_REQUEST",
            "token",
        ),
        (
            vec!["health", "--json", "--url", "ws://127.0.0.1:9", "--token", TOKEN],
            "UNAVAILABLE",
            "cannot reach the gateway",
        ),
        (vec!["deliveries", "show", "zzzz", "--json"], "FAILED", "no delivery matches `zzzz`"),
    ];
    for (args, code, message) in cases {
        let out = if args.contains(&"--url") { pincer_raw(&args).await } else { pincer(&gw, &args).await };
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stderr.is_empty(), "{args:?}: stderr {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let answer: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"));
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{args:?}: {answer}");
        let said = answer["error"]["message"].as_str().unwrap();
        assert!(said.contains(message), "{args:?}: {said}");
    }
    // Without --json: one line on stderr, nothing on stdout.
    let out = pincer_raw(&["cron", "list", "--url", &url, "--token", "wrong-token-0123456789"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    // Said once, not the gateway's advice and then the same advice again.
    assert_eq!(stderr.matches("gateway.auth.token").count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: the gateway rejected the token: use its gateway.auth.token"), "{stderr}");
    // Hints name commands, not protocol methods.
    let out = pincer(&gw, &["sessions", "show", "session:nope"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: no session matches `session:nope` (by id, unique id prefix or name): see `pincer sessions list`"
    );
    gw.stop().await;
}

#[test]
fn the_gateway_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let gw = pincer_testkit::process::GatewayProcess::start(&pincer_bin(), dir.path(), serde_json::json!({})).unwrap();
    ok(&gw.cli(&["health"]));
    let log = gw.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file: {log:?}");
}

#[tokio::test]
async fn rejected_credentials_make_health_degraded_and_show_in_deliveries_list() {
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let telegram = FakeTelegram::start().await;
    let gw = TestGateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '123:wrong', apiRoot: '{}' }} }} }}",
        telegram.base_url()
    ))
    .await;
    // Healthy before anything was sent.
    let out = pincer(&gw, &["health"]).await;
    assert!(ok(&out).contains(": healthy"), "{}", String::from_utf8_lossy(&out.stdout));
    ok(&pincer(
        &gw,
        &["message", "send", "--channel", "telegram", "--to", "123456789", "--message", "hi", "--no-wait"],
    )
    .await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let out = loop {
        let out = pincer(&gw, &["health"]).await;
        if !out.status.success() {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "health stayed 0: {}", String::from_utf8_lossy(&out.stdout));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(": degraded (") && said.contains("telegram: credentials-rejected"), "{said}");
    assert!(!pincer(&gw, &["health", "--json"]).await.status.success(), "--json exits non-zero too");
    let list = ok(&pincer(&gw, &["deliveries", "list"]).await);
    assert!(
        list.contains("held, credentials rejected:")
            && list.contains("(fix channels.telegram, then run `pincer config reload`"),
        "{list}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn cron_run_wait_fails_at_once_when_the_delivery_is_held() {
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let telegram = FakeTelegram::start().await;
    let gw = TestGateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '123:wrong', apiRoot: '{}' }} }} }}",
        telegram.base_url()
    ))
    .await;
    let add = ["cron", "add", "--name", "disk", "--every", "1h", "--command", "echo 42% used", "--announce"];
    ok(&pincer(&gw, &[&add[..], &["--channel", "telegram", "--to", "123456789"]].concat()).await);
    let started = std::time::Instant::now();
    let out =
        pincer(&gw, &["cron", "run", "disk", "--wait", "--poll-interval", "100ms", "--wait-timeout", "30s"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("its delivery is held: credentials rejected"), "{stderr}");
    assert!(stderr.contains("see `pincer deliveries list`"), "{stderr}");
    // At once, not at the --wait-timeout (ten minutes by default).
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    gw.stop().await;
}

#[tokio::test]
async fn cron_add_refuses_a_delivery_that_would_fail_on_every_run() {
    use pincer_testkit::fakes::telegram::FakeTelegram;
    let telegram = FakeTelegram::start().await;
    let gw = TestGateway::start_with(&format!(
        "{{ channels: {{ telegram: {{ botToken: '{}', apiRoot: '{}' }} }} }}",
        FakeTelegram::TOKEN,
        telegram.base_url()
    ))
    .await;
    let add = ["cron", "add", "--name", "brief", "--every", "1h", "--command", "echo hi", "--announce"];
    let refused = |extra: &'static [&'static str], says: &'static str| {
        let gw = &gw;
        async move {
            let out = pincer(gw, &[&add[..], extra].concat()).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{extra:?} was accepted");
            assert!(stderr.contains(says), "{extra:?}: {stderr}");
        }
    };
    // No target: the message gives Telegram's own target syntax, not Discord's.
    refused(
        &["--channel", "telegram"],
        "this job's delivery would fail on every run: a target is required for telegram: set delivery.to (--to): chat id (negative for groups)",
    )
    .await;
    refused(&["--channel", "discord", "--to", "channel:1"], "\"discord\" is not configured; add channels.discord")
        .await;
    // Accepted: a target in the channel's syntax, and `last`, whose route may appear later.
    ok(&pincer(&gw, &[&add[..], &["--channel", "telegram", "--to", "123456789"]].concat()).await);
    // `edit` checks a changed delivery the same way.
    let out = pincer(&gw, &["cron", "edit", "brief", "--clear-to"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("a target is required for telegram"), "{stderr}");
    ok(&pincer(&gw, &["cron", "edit", "brief", "--to", "@news_channel"]).await);
    ok(&pincer(
        &gw,
        &["cron", "add", "--name", "b2", "--every", "1h", "--command", "echo", "--announce", "--channel", "last"],
    )
    .await);
    gw.stop().await;
}
