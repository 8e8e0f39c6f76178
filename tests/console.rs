//! The browser console, driven in a real headless Chromium over WebDriver against the real
//! `pincer` binary and fake servers on 127.0.0.1: sign in with the `pincer dashboard` link, create a
//! job, run it and see it delivered, retry a dead delivery, approve a pending device, chat with a
//! streamed reply, refuse a forged link and a revoked device, survive a gateway restart, page
//! 10,000 jobs and 100,000 deliveries, and pass axe-core on every page.
//!
//! Ignored in the plain suite (they need Chromium, chromedriver and axe-core); `cargo xtask
//! console` runs them (and `cargo xtask test` after the suite). A failing step leaves a screenshot
//! in `target/console-shots/`, named in the failure.

use std::path::PathBuf;
use std::time::Duration;

use pincer_testkit::browser::Browser;
use pincer_testkit::fakes::openai::{FakeOpenAi, Gate, Reply};
use pincer_testkit::fakes::webhook::{Fault, FakeWebhook};
use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::pincer_bin;

const WAIT: Duration = Duration::from_secs(15);
const IGNORED: &str = "needs Chromium + chromedriver; run by `cargo xtask console`";

fn shots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("console-shots")
}

/// A gateway process and a browser pointed at it.
struct Console {
    gw: GatewayProcess,
    b: Browser,
    _dir: tempfile::TempDir,
}

impl Console {
    async fn start(name: &str, config: Value) -> Console {
        Self::start_sized(name, config, 1280, 900).await
    }

    async fn start_sized(name: &str, config: Value, width: u32, height: u32) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let gw = GatewayProcess::start(&pincer_bin(), dir.path(), config).unwrap();
        let b = Browser::start(name, &shots(), width, height).await.unwrap();
        Console { gw, b, _dir: dir }
    }

    fn page(&self) -> String {
        format!("http://127.0.0.1:{}/", self.gw.port)
    }

    /// The link `pincer dashboard --no-open --json` prints.
    fn dashboard_link(&self) -> String {
        let out = self.gw.cli(&["dashboard", "--no-open", "--json"]);
        assert!(out.status.success(), "pincer dashboard: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["url"].as_str().unwrap().to_string()
    }

    /// Opens the dashboard link and waits until the console says it is connected.
    async fn sign_in(&self) -> anyhow::Result<()> {
        self.b.goto(&self.dashboard_link()).await?;
        self.b.wait_for("#conn", "Connected", WAIT).await?;
        Ok(())
    }

    /// A protocol client holding the shared token, for setting things up beside the browser.
    async fn client(&self) -> RawClient {
        RawClient::connect(&self.gw.url(), cli_connect_params(Some(&self.gw.token), &["operator.admin"])).await.unwrap().0
    }

    async fn go(&self, hash: &str) -> anyhow::Result<()> {
        self.b.execute("location.hash = arguments[0]", json!([hash])).await?;
        Ok(())
    }

    async fn quit(self) {
        self.b.quit().await;
    }
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn sign_in_with_the_dashboard_link_then_reconnect_with_the_device_token() {
    let _ = IGNORED;
    let c = Console::start("sign-in", json!({})).await;
    let b = &c.b;
    b.step("open the link", c.sign_in()).await.unwrap();
    b.step("token gone from the address bar", async {
        let url = b.current_url().await?;
        anyhow::ensure!(!url.contains("token"), "the token is still in the URL: {url}");
        anyhow::ensure!(url.ends_with("#/overview"), "{url}");
        Ok(())
    })
    .await
    .unwrap();
    b.step("overview shows health", b.wait_for("#health-stats", "healthy", WAIT)).await.unwrap();
    // A reload has no token: the device token from the first sign-in carries the browser in.
    b.step("reload signs in by device token", async {
        b.goto(&c.page()).await?;
        b.wait_for("#conn", "Connected", WAIT).await?;
        let stored = b.execute("return sessionStorage.getItem('pincer.console.pendingToken')", json!([])).await?;
        anyhow::ensure!(stored.is_null(), "the gateway token stayed in the tab: {stored}");
        Ok(())
    })
    .await
    .unwrap();
    let mut cl = c.client().await;
    let audit = cl.call("audit.query", json!({"action": "gateway.auth.succeeded", "limit": 10})).await.unwrap();
    let methods: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().filter_map(|e| e["detail"]["method"].as_str()).collect();
    assert!(methods.contains(&"device-token") && methods.contains(&"token"), "{audit}");
    c.quit().await;
}
