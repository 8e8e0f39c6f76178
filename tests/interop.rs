//! The stock OpenClaw CLI (npm `openclaw@2026.9.6`) against a running Pincer gateway.
//!
//! Ignored by default: `cargo xtask interop` installs Node 24 and OpenClaw into `.cache/openclaw`
//! and runs these with `PINCER_OPENCLAW_NODE` and `PINCER_OPENCLAW_MJS` set.

use std::path::PathBuf;
use std::process::{Command, Output};

use pincer_testkit::process::GatewayProcess;
use serde_json::{Value, json};

use crate::support::pincer_bin;

/// Runs the real `openclaw` CLI with an isolated home and state dir.
pub struct OpenClaw {
    node: PathBuf,
    mjs: PathBuf,
    home: tempfile::TempDir,
}

impl OpenClaw {
    pub fn from_env() -> OpenClaw {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set: run the interop suite with `cargo xtask interop`"))
        };
        OpenClaw {
            node: var("PINCER_OPENCLAW_NODE").into(),
            mjs: var("PINCER_OPENCLAW_MJS").into(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let home = self.home.path();
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.mjs)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("TMPDIR", home)
            .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
            .env("OPENCLAW_CONFIG_PATH", home.join(".openclaw/openclaw.json"))
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("OPENCLAW_OFFLINE", "1")
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `openclaw <args> --url … --token …` against `gw`.
    pub fn call(&self, gw: &GatewayProcess, args: &[&str]) -> Output {
        let url = gw.url();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--url", &url, "--token", &gw.token]);
        self.run(&full, &[])
    }
}

pub fn out(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The JSON document in a command's stdout (OpenClaw prints a title line before `gateway call` JSON).
pub fn json_out(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    let start = text.find(['{', '[']).unwrap_or_else(|| panic!("no JSON in output:\n{}", out(o)));
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", out(o)))
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_health() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    // `openclaw health` has no --url: it finds the gateway through its environment, as a user would.
    let o = oc.run(&["health"], &[("OPENCLAW_GATEWAY_URL", &gw.url()), ("OPENCLAW_GATEWAY_TOKEN", &gw.token)]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Agents: main (default)") && text.contains("Gateway probe duration"), "{}", out(&o));
    let o =
        oc.run(&["health", "--json"], &[("OPENCLAW_GATEWAY_URL", &gw.url()), ("OPENCLAW_GATEWAY_TOKEN", &gw.token)]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(json_out(&o)["ok"], true);
    let o = oc.call(&gw, &["gateway", "health"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"), "{}", out(&o));
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_gateway_call_status() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(&gw, &["gateway", "call", "status"]);
    assert!(o.status.success(), "{}", out(&o));
    let status = json_out(&o);
    assert_eq!(status["ok"], true);
    assert_eq!(status["gateway"]["port"], gw.port);
    assert_eq!(status["stateDir"], dir.path().to_str().unwrap());
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_wrong_token_fails_with_our_message() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.run(&["gateway", "call", "status", "--url", &gw.url(), "--token", "wrong"], &[]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("gateway token mismatch"), "{}", out(&o));
}

#[test]
#[ignore = "needs OpenClaw: run `cargo xtask interop`"]
fn openclaw_unknown_method_is_reported() {
    let oc = OpenClaw::from_env();
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({})).unwrap();
    let o = oc.call(&gw, &["gateway", "call", "no.such.method"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("unknown method: no.such.method"), "{}", out(&o));
}
