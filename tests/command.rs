//! `command` payloads through `cron.*`: input, environment, working directory and exit codes;
//! output streamed with a cap (`outputMaxBytes`) so the gateway's memory stays flat; the time
//! limit and `noOutputTimeoutSeconds` (on the fake clock) killing the whole process group.
//! `kill -9` of the gateway mid-command is in `crash.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::{T0, TestGateway, alive, group_members, pincer_bin, proc_stat, wait_file, wait_gone, wait_runs};

/// Adds an hourly job with `payload` that delivers nothing, runs it now, and returns its id.
async fn run_now(c: &mut RawClient, payload: Value) -> String {
    let job = c
        .call(
            "cron.add",
            json!({
                "name": "cmd", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                "payload": payload, "delivery": {"mode": "none"},
            }),
        )
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let res = c.call("cron.run", json!({"id": id, "mode": "force"})).await.unwrap();
    assert_eq!(res["enqueued"], true, "{res}");
    id
}

fn sh(script: &str) -> Value {
    json!({"kind": "command", "argv": ["sh", "-c", script]})
}

/// True if the job's run is still in flight after giving a wrong kill 200 ms to happen.
async fn still_running(c: &mut RawClient, id: &str) -> bool {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = c.call("cron.runs", json!({"id": id, "limit": 10})).await.unwrap();
    page["entries"].as_array().unwrap().iter().all(|e| e.get("status").is_none())
}

#[tokio::test]
async fn a_command_gets_its_input_env_and_cwd_and_its_exit_code_decides() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let dir = tempfile::tempdir().unwrap();
    // It prints 300 KB before it reads its 1 MB of input: input is written while output is read.
    let mut payload =
        sh("head -c 300000 /dev/zero | tr '\\0' x; echo; wc -c; echo \"$PINCER_JOB_ID $PINCER_RUN_ID $(pwd)\"");
    payload["input"] = json!("i".repeat(1_000_000));
    payload["cwd"] = json!(dir.path());
    let id = run_now(&mut c, payload).await;
    let run = &wait_runs(&mut c, &id, 1).await[0];
    assert_eq!(run["status"], "ok", "{run}");
    let summary = run["summary"].as_str().unwrap();
    let tail: Vec<&str> = summary.lines().skip(1).collect();
    assert_eq!(
        tail,
        ["1000000".to_string(), format!("{id} {} {}", run["runId"].as_str().unwrap(), dir.path().display())]
    );
    assert_eq!(summary.len(), 300_000 + 1 + tail.iter().map(|l| l.len() + 1).sum::<usize>() - 1);
    assert_eq!(run["command"]["state"], "exited");
    assert_eq!(run["command"]["exitCode"], 0);

    // Empty stdout: the text is stderr, and the exit code fails the run.
    let id = run_now(&mut c, sh("echo first >&2; echo it broke >&2; exit 3")).await;
    let run = &wait_runs(&mut c, &id, 1).await[0];
    assert_eq!(
        (&run["status"], &run["errorReason"], &run["error"], &run["summary"]),
        (
            &json!("error"),
            &json!("exit_code"),
            &json!("command failed with exit code 3: it broke"),
            &json!("first\nit broke")
        )
    );
    assert_eq!((&run["command"]["state"], &run["command"]["exitCode"]), (&json!("exited"), &json!(3)));

    let id = run_now(&mut c, json!({"kind": "command", "argv": ["/nonexistent/program"]})).await;
    let run = &wait_runs(&mut c, &id, 1).await[0];
    assert_eq!(
        (&run["errorReason"], &run["error"], &run["command"]["state"]),
        (
            &json!("spawn"),
            &json!("cannot start `/nonexistent/program`: No such file or directory (os error 2)"),
            &json!("not-started")
        )
    );
    gw.stop().await;
}

#[tokio::test]
async fn output_beyond_output_max_bytes_is_counted_and_dropped() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut payload = sh("yes abcdefghi | head -c 5000; yes E | head -c 3000 >&2");
    payload["outputMaxBytes"] = json!(1000);
    let id = run_now(&mut c, payload).await;
    let run = &wait_runs(&mut c, &id, 1).await[0];
    assert_eq!(run["status"], "ok", "{run}");
    let kept = "abcdefghi\n".repeat(100);
    assert_eq!(
        run["summary"].as_str().unwrap(),
        format!(
            "[4000 earlier bytes of stdout were dropped: payload.outputMaxBytes keeps the last 1000]\n{}",
            kept.trim_end()
        )
    );
    assert_eq!(
        run["command"],
        json!({"state": "exited", "exitCode": 0, "outputMaxBytes": 1000,
               "stdoutBytes": 5000, "stdoutDroppedBytes": 4000, "stderrBytes": 3000, "stderrDroppedBytes": 2000})
    );
    // The cap is checked when the job is written.
    let mut bad = sh("true");
    bad["outputMaxBytes"] = json!(0);
    let res =
        c.request("cron.add", json!({"schedule": {"kind": "every", "everyMs": 60_000}, "payload": bad})).await.unwrap();
    assert!(
        res["error"]["message"].as_str().unwrap().contains("payload.outputMaxBytes: 0 is not between 1 and"),
        "{res}"
    );
    gw.stop().await;
}

/// `VmHWM` (peak resident set) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The real binary: a command printing 250 MB leaves the gateway's peak memory where it was
/// (the old code read it all, then cut it: +250 MB); the record says what was kept and dropped.
#[tokio::test]
async fn a_command_printing_250_mb_keeps_the_gateways_memory_flat() {
    // Whole lines of `yes 0123456789abcdef` (17 bytes each).
    const OUT: u64 = 17 * 14_705_882;
    const ERR: u64 = 3_000_000;
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let mut c =
        RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.admin"])).await.unwrap().0;
    c.call("cron.list", json!({})).await.unwrap();
    let before = peak_rss(gw.child.id());
    let started = Instant::now();
    let id = run_now(&mut c, sh(&format!("yes 0123456789abcdef | head -c {OUT}; yes e | head -c {ERR} >&2"))).await;
    let run = loop {
        let page = c.call("cron.runs", json!({"id": id, "limit": 1})).await.unwrap();
        if let Some(run) = page["entries"].as_array().unwrap().first().filter(|e| e.get("status").is_some()) {
            break run.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the run did not finish in 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after = peak_rss(gw.child.id());
    let max = 1_048_576u64;
    assert_eq!(
        run["command"],
        json!({"state": "exited", "exitCode": 0, "outputMaxBytes": max, "stdoutBytes": OUT,
               "stdoutDroppedBytes": OUT - max, "stderrBytes": ERR, "stderrDroppedBytes": ERR - max})
    );
    let summary = run["summary"].as_str().unwrap();
    let (marker, kept) = summary.split_once('\n').unwrap();
    assert_eq!(
        marker,
        format!("[{} earlier bytes of stdout were dropped: payload.outputMaxBytes keeps the last {max}]", OUT - max)
    );
    assert_eq!(kept.len() as u64, max - 1, "the last MiB, less its final newline");
    assert!(kept.ends_with("0123456789abcdef"));
    eprintln!(
        "250 MB of output in {:?}: gateway peak RSS {} MB before, {} MB after",
        started.elapsed(),
        before / 1_000_000,
        after / 1_000_000
    );
    assert!(after < before + 40_000_000, "peak RSS grew from {before} to {after} bytes");
}

/// Both limits kill the whole process group — the shell and the `sleep` it put in the background —
/// exactly when the fake clock passes them, and the error names the limit.
#[tokio::test]
async fn the_time_limit_and_no_output_timeout_kill_the_process_group() {
    let cases = [
        ("timeoutSeconds", 5, "cron: job execution timed out after 5s; the process group was killed"),
        (
            "noOutputTimeoutSeconds",
            10,
            "cron: the command printed nothing for 10s (payload.noOutputTimeoutSeconds is 10); the process group was killed",
        ),
    ];
    for (field, secs, error) in cases {
        let gw = TestGateway::start().await;
        let mut c = gw.client(&["operator.admin"]).await;
        let dir = tempfile::tempdir().unwrap();
        let (p, g) = (dir.path().join("pid"), dir.path().join("grandchild"));
        let mut payload = sh(&format!("sleep 1000 & echo $! > {}; echo $$ > {}; sleep 1000", g.display(), p.display()));
        payload["timeoutSeconds"] = json!(600);
        payload[field] = json!(secs);
        let id = run_now(&mut c, payload).await;
        let shell: i32 = wait_file(&p).await.parse().unwrap();
        let grandchild: i32 = wait_file(&g).await.parse().unwrap();
        let pgid = proc_stat(shell).unwrap().2;
        let members = group_members(pgid);
        assert!(members.len() >= 3, "supervisor, shell and two sleeps (a shell may exec the last): {members:?}");
        gw.clock.advance(secs * 1_000 - 1);
        assert!(still_running(&mut c, &id).await, "{field}: killed before the limit");
        assert!(alive(shell) && alive(grandchild));
        gw.clock.advance(1);
        let run = &wait_runs(&mut c, &id, 1).await[0];
        assert_eq!((&run["errorReason"], &run["error"]), (&json!("timeout"), &json!(error)), "{field}");
        assert_eq!(run["command"]["state"], "killed");
        wait_gone(&[shell, grandchild]).await;
        assert_eq!(group_members(pgid), [0; 0], "{field}: the group is gone");
        gw.stop().await;
    }
}

/// Output resets the `noOutputTimeoutSeconds` timer. The command prints 200 KB each time the test
/// lets it, then marks a file: the mark can only appear once the gateway has read most of the
/// burst (a pipe holds 64 KiB), so the test knows the read happened at the fake time it set.
#[tokio::test]
async fn output_resets_the_no_output_timer() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str| dir.path().join(name);
    let burst = |go: &Path, mark: &Path| {
        format!("while [ ! -e {} ]; do sleep 0.01; done; yes | head -c 200000; touch {}", go.display(), mark.display())
    };
    let script = format!("{}; {}; sleep 1000", burst(&f("go1"), &f("m1")), burst(&f("go2"), &f("m2")));
    let mut payload = sh(&script);
    payload["noOutputTimeoutSeconds"] = json!(10);
    let id = run_now(&mut c, payload).await;
    let wait_for = |path: std::path::PathBuf| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{} never appeared: the command was killed", path.display());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    gw.clock.advance(8_000);
    std::fs::write(f("go1"), "").unwrap();
    wait_for(f("m1")).await;
    // Past the first 10 s of silence, but not 10 s after the output at +8 s.
    gw.clock.advance(7_000);
    std::fs::write(f("go2"), "").unwrap();
    wait_for(f("m2")).await;
    assert!(still_running(&mut c, &id).await);
    // Silent from +15 s on: ended within the next 10 s of fake time (the rest of a burst may be
    // read a step later, so step until it ends).
    let mut steps = 0;
    let run = loop {
        gw.clock.advance(10_000);
        steps += 1;
        let page = c.call("cron.runs", json!({"id": id, "limit": 1})).await.unwrap();
        if let Some(run) = page["entries"].as_array().unwrap().first().filter(|e| e.get("status").is_some()) {
            break run.clone();
        }
        assert!(steps < 20, "never timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["errorReason"], "timeout");
    assert!(run["error"].as_str().unwrap().contains("payload.noOutputTimeoutSeconds is 10"), "{run}");
    assert_eq!(run["command"]["stdoutBytes"], 400_000);
    assert!(run["finishedAtMs"].as_i64().unwrap() >= T0 + 25_000, "{run}");
    gw.stop().await;
}
