//! `pincer service`: the systemd user unit rendered for this binary and state directory (checked
//! by `systemd-analyze verify` where it exists), written, and — where a systemd user manager runs
//! — started, answering `/readyz`, and removed.

use std::path::Path;
use std::process::{Command, Output};

use pincer_testkit::process::free_port;

use crate::support::pincer_bin;

fn pincer(home: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(pincer_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("PINCER_STATE_DIR", state)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn install_dry_run_prints_a_unit_that_runs_this_binary_on_this_state_dir() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state with space");
    let o = pincer(home.path(), &state, &["service", "install", "--dry-run"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let exe = pincer_bin().canonicalize().unwrap();
    let unit_path = home.path().join(".config/systemd/user/pincer.service");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("# {}", unit_path.display()));
    assert!(lines.contains(&format!("ExecStart=\"{}\" gateway run", exe.display()).as_str()), "{out}");
    assert!(lines.contains(&format!("Environment=\"PINCER_STATE_DIR={}\"", state.display()).as_str()), "{out}");
    assert!(lines.contains(&"Restart=on-failure") && lines.contains(&"WantedBy=default.target"), "{out}");
    assert!(!unit_path.exists(), "a dry run wrote the unit");
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(v) if v.status.success() => {
            let file = home.path().join("pincer.service");
            std::fs::write(&file, out.split_once('\n').unwrap().1).unwrap();
            let verify = Command::new("systemd-analyze").arg("verify").arg(&file).output().unwrap();
            let (vout, verr) = text(&verify);
            assert!(verify.status.success() && verr.trim().is_empty(), "systemd-analyze verify: {vout}{verr}");
        }
        _ => eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed here"),
    }
}

fn systemd_user_runs() -> Result<(), String> {
    let o = Command::new("systemctl").args(["--user", "is-system-running"]).output().map_err(|e| e.to_string())?;
    let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
    match state.as_str() {
        "running" | "degraded" => Ok(()),
        _ => Err(format!("`systemctl --user is-system-running` says {state:?}")),
    }
}

#[test]
fn install_writes_the_unit_and_starts_the_gateway_where_systemd_runs() {
    if let Err(why) = systemd_user_runs() {
        eprintln!("SKIPPED starting the unit: no systemd user manager ({why}); checking the written unit only");
        let home = tempfile::tempdir().unwrap();
        let o = pincer(home.path(), &home.path().join("state"), &["service", "install"]);
        let (out, err) = text(&o);
        let unit = home.path().join(".config/systemd/user/pincer.service");
        assert!(!o.status.success(), "{out}{err}");
        assert!(out.contains(&format!("Wrote {}", unit.display())) && unit.exists(), "{out}{err}");
        assert!(
            err.contains("then run: systemctl --user daemon-reload && systemctl --user enable --now pincer.service"),
            "{err}"
        );
        let o = pincer(home.path(), &home.path().join("state"), &["service", "uninstall"]);
        assert!(o.status.success() && !unit.exists(), "{:?}", text(&o));
        let o = pincer(home.path(), &home.path().join("state"), &["service", "uninstall"]);
        assert!(!o.status.success() && text(&o).1.contains("is not installed"), "{:?}", text(&o));
        return;
    }
    // A real user manager reads units from the real home: a unique name, removed at the end.
    let home = std::path::PathBuf::from(std::env::var("HOME").unwrap());
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(state.path().join("pincer.json"), format!("{{ gateway: {{ port: {port} }} }}")).unwrap();
    let name = format!("pincer-e2e-{}", std::process::id());
    let o = pincer(&home, state.path(), &["service", "install", "--name", &name]);
    let ready = (0..400).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let status = pincer(&home, state.path(), &["service", "status", "--name", &name]);
    let removed = pincer(&home, state.path(), &["service", "uninstall", "--name", &name]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(ready, "the gateway never listened on {port}");
    assert!(status.status.success() && text(&status).0.contains("active running"), "{:?}", text(&status));
    assert!(removed.status.success(), "{:?}", text(&removed));
}
