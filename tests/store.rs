//! The store under the real binary: one gateway per database (even with `gateway.lock` deleted),
//! a complete `pincer.db` after a clean stop with owner-only files, and a full disk — on a real
//! tmpfs — that callers, `health`, `/readyz` and `doctor` all report, and that clears by itself
//! once space is freed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::pincer_bin;

async fn client(gw: &GatewayProcess) -> RawClient {
    RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.admin"])).await.unwrap().0
}

/// A disabled command job; `padding` makes its row (and so its commit) as large as wanted.
fn job(name: &str, padding: usize) -> Value {
    json!({
        "name": name, "description": "x".repeat(padding), "enabled": false,
        "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
        "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}
    })
}

fn stored_job_names(db: &Path) -> Vec<String> {
    let store = pincer_store::Store::open(db).unwrap();
    let mut names: Vec<String> =
        store.read_blocking(|rd| rd.list_jobs()).unwrap().into_iter().map(|j| j.name).collect();
    store.close();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_second_gateway_is_refused_by_the_database_lock_even_without_gateway_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let first_pid = first.child.id();
    let mut c = client(&first).await;
    let generation = c.call("status", json!({})).await.unwrap()["generation"].as_i64().unwrap();
    let config = std::fs::read(dir.path().join("pincer.json")).unwrap();

    // The usual "stale lock" cleanup.
    std::fs::remove_file(dir.path().join("gateway.lock")).unwrap();
    let err = GatewayProcess::start(&pincer_bin(), dir.path(), json!({}))
        .err()
        .expect("a second gateway started on the same database")
        .to_string();
    let expected =
        format!("another Pincer gateway (pid {first_pid}) is using {}", dir.path().join("pincer.db").display());
    assert!(err.contains(&expected), "{err}");

    // The first one never noticed: same generation, still serving.
    let status = c.call("status", json!({})).await.unwrap();
    assert_eq!(status["generation"].as_i64(), Some(generation));
    assert_eq!(status["pid"].as_u64(), Some(first_pid as u64));
    // And the refused one never touched the database: the next start is the very next boot.
    std::fs::write(dir.path().join("pincer.json"), config).unwrap();
    let (exit, _) = first.terminate().unwrap();
    assert!(exit.success(), "{exit}");
    first.restart().unwrap();
    let mut c = client(&first).await;
    assert_eq!(c.call("status", json!({})).await.unwrap()["generation"].as_i64(), Some(generation + 1));
}

#[tokio::test]
async fn after_sigterm_pincer_db_alone_holds_the_data_and_every_database_file_is_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The state dir exists already, with a world-readable database left in it.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("pincer.db"), b"").unwrap();
    std::fs::set_permissions(state.join("pincer.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut gw = GatewayProcess::start(&pincer_bin(), &state, json!({})).unwrap();
    let mut c = client(&gw).await;
    for i in 0..20 {
        c.call("cron.add", job(&format!("kept-{i:02}"), 100)).await.unwrap();
    }
    for name in ["pincer.db", "pincer.db-wal", "pincer.db-shm"] {
        assert_eq!(mode(&state.join(name)), 0o600, "{name} while running");
    }
    let (exit, _) = gw.terminate().unwrap();
    assert!(exit.success(), "{exit}");
    let wal = std::fs::metadata(state.join("pincer.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal, 0, "the WAL still holds data after a clean stop");

    // Copy only "the one SQLite file".
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(state.join("pincer.db"), copy.path().join("pincer.db")).unwrap();
    let names = stored_job_names(&copy.path().join("pincer.db"));
    assert_eq!(names, (0..20).map(|i| format!("kept-{i:02}")).collect::<Vec<_>>());
}

/// A tmpfs of `size` on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Tmpfs { dir },
            Ok(out) => panic!(
                "this test fills a small tmpfs and must mount one; run it as root (or with CAP_SYS_ADMIN). `mount -t tmpfs` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("this test fills a small tmpfs and must mount one, but `mount` cannot run: {e}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes to `path` until the filesystem has no byte left.
fn fill(path: &Path) -> PathBuf {
    let mut file = std::fs::File::create(path).unwrap();
    let buf = vec![0u8; 1 << 20];
    for size in [1 << 20, 4096, 1] {
        loop {
            match file.write(&buf[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    path.to_path_buf()
}

#[tokio::test]
async fn a_full_disk_is_visible_everywhere_and_clears_by_itself_on_a_small_tmpfs() {
    let tmpfs = Tmpfs::mount("16m");
    let state = tmpfs.path().join("state");
    let mut gw = GatewayProcess::start(&pincer_bin(), &state, json!({})).unwrap();
    let mut c = client(&gw).await;
    c.call("cron.add", job("before", 100)).await.unwrap();

    let filler = fill(&tmpfs.path().join("filler"));
    // Writes until one is refused; each needs fresh space in the WAL.
    let mut accepted = vec!["before".to_string()];
    let mut refused = None;
    for i in 0..40 {
        let name = format!("big-{i:02}");
        let res = c.request("cron.add", job(&name, 64 * 1024)).await.unwrap();
        if res["ok"] == true {
            accepted.push(name);
        } else {
            refused = Some((name, res["error"]["message"].as_str().unwrap_or_default().to_string()));
            break;
        }
    }
    let (refused_name, message) = refused.expect("a write on a full disk was accepted 40 times");
    assert!(message.contains("store is out of disk space"), "{message}");
    assert!(message.contains(&format!("free space on the filesystem holding {}", state.display())), "{message}");

    // `health`: not ok, with the cause and the fix (a probe write fails while the disk is full).
    let health = c.call("health", json!({})).await.unwrap();
    assert_eq!(health["ok"], false, "{health}");
    let store = &health["pincer"]["store"];
    assert_eq!((store["writable"].clone(), store["kind"].clone()), (json!(false), json!("disk-full")), "{health}");
    assert!(store["fix"].as_str().unwrap().contains(&format!("df -h {}", state.display())), "{store}");
    let out = gw.cli(&["health"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("UNHEALTHY"), "{stdout}");
    assert!(stdout.contains("store: cannot write (the store is out of disk space"), "{stdout}");

    // `/readyz`: not ready because of the store.
    let (status, body) = pincer_testkit::http::get(gw.addr(), "/readyz").await.unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, body["failing"].clone()), (503, json!(["store"])), "{body}");

    // `doctor`: names the cause and the fix.
    let out = gw.cli(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("store.writes") && stdout.contains("out of disk space"), "{stdout}");
    assert!(stdout.contains(&format!("fix: free space on the filesystem holding {}", state.display())), "{stdout}");

    // Space returns: everything recovers without a restart or another client write.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = pincer_testkit::http::get(gw.addr(), "/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let health = c.call("health", json!({})).await.unwrap();
    assert_eq!((health["ok"].clone(), health["pincer"]["store"].clone()), (json!(true), json!({"writable": true})));
    c.call("cron.add", job("after", 100)).await.unwrap();
    accepted.push("after".into());

    // Every caller's answer matches what the database holds.
    let (exit, _) = gw.terminate().unwrap();
    assert!(exit.success(), "{exit}");
    accepted.sort();
    let stored = stored_job_names(&state.join("pincer.db"));
    assert_eq!(stored, accepted, "{refused_name} was refused");
}
