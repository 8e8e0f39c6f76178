//! The gateway's log file and `pincer logs`, with the real binary: JSON lines rotated by size,
//! never an escape sequence, read through `logs.tail` while the gateway runs and straight from the
//! file once it is gone, filtered by level, followed with `-f`.

use std::time::{Duration, Instant};

use pincer_testkit::process::GatewayProcess;
use serde_json::{Value, json};

use crate::support::pincer_bin;

fn stdout(o: &std::process::Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "exit {:?}\nstdout: {out}\nstderr: {err}", o.status);
    out.into_owned()
}

/// A gateway logging at debug (one line per connection), which the test kit's `PINCER_LOG=info`
/// would otherwise override.
fn debug_gateway(dir: &std::path::Path, config: Value) -> GatewayProcess {
    let mut gw = GatewayProcess::start(&pincer_bin(), dir, config).unwrap();
    gw.terminate().unwrap();
    gw.restart_with_env(&[("PINCER_LOG", "debug")]).unwrap();
    gw
}

#[test]
fn the_gateway_logs_json_lines_rotated_by_size_and_pincer_logs_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({ "logging": { "maxFileBytes": 4096, "maxFiles": 2 } });
    let mut gw = debug_gateway(dir.path(), config);
    let logs = dir.path().join("logs");
    // Each client call logs a few debug lines; enough of them fill three files.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logs.join("pincer.2.log").exists() {
        assert!(Instant::now() < deadline, "no second rotation after a minute of calls");
        stdout(&gw.cli(&["health", "--json"]));
    }
    stdout(&gw.cli(&["health", "--json"]));
    let mut names: Vec<String> =
        std::fs::read_dir(&logs).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["pincer.1.log", "pincer.2.log", "pincer.log"], "two archives kept, no more");
    for name in &names {
        let bytes = std::fs::read(logs.join(name)).unwrap();
        assert!(bytes.len() <= 4096, "{name} is {} bytes", bytes.len());
        assert!(!bytes.contains(&0x1b), "{name} has an escape sequence");
        for line in String::from_utf8(bytes).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
            for key in ["time", "level", "subsystem", "message"] {
                assert!(v[key].is_string(), "{name}: no {key}: {line}");
            }
        }
    }

    // Through the gateway: the newest lines, as JSON.
    let o = gw.cli(&["logs", "--json", "--lines", "5"]);
    let text = stdout(&o);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("No gateway answers"), "{o:?}");
    // Its own connection is logged before the read, so the file as it is now is what it read.
    let active = std::fs::read_to_string(logs.join("pincer.log")).unwrap();
    let newest: Vec<&str> = active.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(newest.len() >= 2, "{active}");
    assert_eq!(text.lines().collect::<Vec<_>>(), newest);
    // A level filter drops the debug lines, which the unfiltered text shows.
    let all = stdout(&gw.cli(&["logs", "--lines", "200"]));
    assert!(all.lines().any(|l| l.contains(" DEBUG ")), "{all}");
    let info = stdout(&gw.cli(&["logs", "--lines", "200", "--level", "info"]));
    assert!(!info.lines().any(|l| l.contains(" DEBUG ") || l.contains(" TRACE ")), "{info}");
    assert!(info.lines().count() < all.lines().count(), "{info}");

    // Gateway gone: the file itself, ending with the shutdown.
    gw.terminate().unwrap();
    let o = gw.cli(&["logs", "--lines", "3"]);
    let text = stdout(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("No gateway answers"), "{o:?}");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("shutting down"), "{text}");
}

#[test]
fn pincer_logs_follow_prints_lines_written_after_it_started() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let gw = debug_gateway(dir.path(), json!({}));
    let mut follow = std::process::Command::new(pincer_bin())
        .args(["logs", "-f", "--json", "--lines", "1"])
        .env_clear()
        .env("PINCER_STATE_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("the newest line first");
    let first: Value = serde_json::from_str(&first).unwrap();
    // A call after the first read logs lines that only following can show.
    stdout(&gw.cli(&["health"]));
    let next = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    let next: Value = serde_json::from_str(&next.expect("a line written after the first read")).unwrap();
    assert!(next["time"].as_str() >= first["time"].as_str(), "{first} then {next}");
}

#[test]
fn an_unwritable_log_file_stops_the_gateway_with_the_key_to_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "a file, not a folder").unwrap();
    let config = json!({ "logging": { "file": "blocker/pincer.log" } });
    let err = GatewayProcess::start(&pincer_bin(), dir.path(), config).err().expect("refused to start").to_string();
    assert!(err.contains("cannot open the log file") && err.contains("set logging.file"), "{err}");
}

/// A secret written into the log (the configured model key, a token in a pattern OpenClaw knows)
/// never comes out of `logs.tail`, `pincer logs` or `pincer logs --local`.
#[test]
fn secrets_in_log_lines_are_masked_by_logs_tail_and_pincer_logs() {
    let dir = tempfile::tempdir().unwrap();
    let key = "plainkey-configured-0123456789";
    let config = json!({ "models": { "providers": { "openai": { "api": "openai-completions",
        "baseUrl": "http://127.0.0.1:9/v1", "apiKey": key, "models": [{ "id": "gpt-4o" }] } } } });
    let mut gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
    let line = json!({ "time": "2026-12-05T10:00:00Z", "level": "WARN", "subsystem": "test",
        "message": format!("provider said no to {key}; retry with OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz and {}", gw.token) });
    let log = dir.path().join("logs/pincer.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
    drop(f);
    assert!(std::fs::read_to_string(&log).unwrap().contains(key), "the secret is in the file");
    let token = gw.token.clone();
    let check = |text: &str| {
        assert!(text.contains("provider said no to plaink…6789"), "{text}");
        assert!(text.contains("OPENAI_API_KEY=sk-abc…wxyz"), "{text}");
        for secret in [key, "sk-abcdefghijklmnopqrstuvwxyz", token.as_str()] {
            assert!(!text.contains(secret), "{secret} came out: {text}");
        }
    };
    check(&stdout(&gw.cli(&["logs", "--json", "--lines", "50"])));
    check(&stdout(&gw.cli(&["logs", "--local", "--lines", "50"])));
    gw.terminate().unwrap();
    check(&stdout(&gw.cli(&["logs", "--lines", "50"])));
}
