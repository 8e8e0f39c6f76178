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

#[test]
fn pincer_dashboard_prints_the_console_link_with_the_token_in_the_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), dir.path(), json!({"gateway": {"auth": {"token": "tok/with+odd=chars-0123456789"}}})).unwrap();
    let out = gw.cli(&["dashboard", "--no-open"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let first = stdout.lines().next().unwrap();
    assert_eq!(first, format!("Console: http://127.0.0.1:{}/#token=tok%2Fwith%2Bodd%3Dchars-0123456789", gw.port));
    // No display here: without --no-open it says so instead of failing.
    let out = gw.cli(&["dashboard"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("No browser to open here"), "{}", String::from_utf8_lossy(&out.stdout));
    drop(gw);
    // No gateway: the usual one-line error, no link.
    let out = std::process::Command::new(pincer_bin())
        .args(["dashboard", "--no-open"])
        .env_clear()
        .env("PINCER_STATE_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: cannot reach the gateway"), "{stderr}");
    assert!(out.stdout.is_empty(), "no link for a gateway that is not there");
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn sign_in_with_the_dashboard_link_then_reconnect_with_the_device_token() {
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

/// Text of every `selector` element.
async fn texts(b: &Browser, selector: &str) -> anyhow::Result<Vec<String>> {
    let v = b.execute("return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", json!([selector])).await?;
    Ok(v.as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect())
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn create_a_job_with_a_server_validation_error_then_run_it_and_see_it_in_the_inbox() {
    let c = Console::start("create-run", json!({})).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("open the form", async {
        c.go("#/jobs/new").await?;
        b.fill("#f-name", "Console disk check").await?;
        b.select("#f-kind", "cron").await?;
        b.fill("#f-expr", "every tuesday").await?;
        b.select("#f-payload", "command").await?;
        b.fill("#f-body", "echo hello from the console").await?;
        b.select("#f-mode", "announce").await?;
        b.fill("#f-channel", "inbox").await?;
        b.click_on("button[type=submit]", "Create job").await
    })
    .await
    .unwrap();
    // The gateway's own message, at the field it names.
    let error = b
        .step("validation message at the field", b.wait_for("#f-expr-error", "schedule.expr", WAIT))
        .await
        .unwrap();
    let message = b.text(&error).await.unwrap();
    assert!(message.contains("invalid cron expression"), "{message}");
    let invalid = b.execute("return document.querySelector('#f-expr').getAttribute('aria-invalid')", json!([])).await.unwrap();
    assert_eq!(invalid, "true");
    b.step("fix and create", async {
        b.select("#f-kind", "every").await?;
        b.fill("#f-every", "1h").await?;
        b.click_on("button[type=submit]", "Create job").await?;
        b.wait_for("h1", "Console disk check", WAIT).await?;
        b.wait_for("#upcoming li", "", WAIT).await
    })
    .await
    .unwrap();
    let upcoming = texts(b, "#upcoming li").await.unwrap();
    assert_eq!(upcoming.len(), 5, "the next five fire times: {upcoming:?}");
    b.step("run now with live progress", async {
        b.click_on("#run-now", "Run now").await?;
        b.wait_for("#run-progress", "Finished: status ok, delivery delivered, completion succeeded", WAIT).await?;
        b.wait_for("table.runs tbody tr", "succeeded", WAIT).await
    })
    .await
    .unwrap();
    b.step("delivered to the inbox", async {
        c.go("#/inbox").await?;
        b.wait_for(".inbox-item pre", "hello from the console", WAIT).await
    })
    .await
    .unwrap();
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_dead_delivery_shows_its_reason_and_is_retried_from_the_page() {
    let hook = FakeWebhook::start().await;
    hook.push_fault(Fault::Status(400));
    let c = Console::start("retry", json!({"channels": {"webhook": {"allowPrivateNetwork": true}}})).await;
    let b = &c.b;
    let mut cl = c.client().await;
    cl.call("send", json!({"channel": "webhook", "to": hook.url(), "message": "report", "idempotencyKey": "console-retry-1", "wait": true}))
        .await
        .unwrap();
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("dead with its reason", async {
        c.go("#/deliveries?state=dead").await?;
        b.wait_for("table.deliveries tr[data-state=dead] td.reason", "payload", WAIT).await
    })
    .await
    .unwrap();
    b.step("retry and watch it settle", async {
        b.select("#d-state", "all").await?;
        b.click_on("table.deliveries tr[data-state=dead] button", "Retry").await?;
        b.wait_for("table.deliveries tr[data-state=delivered]", "delivered", WAIT).await
    })
    .await
    .unwrap();
    let got = hook.wait_for_deliveries(1, WAIT).await;
    assert_eq!(got.len(), 1);
    c.quit().await;
}

/// Sends a signed `connect` through a proxy header, so the gateway treats it as remote and files a
/// pairing request; returns the request id.
async fn remote_pairing_request(url: &str, token: &str) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    use sha2::Digest;
    let key = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let public = key.verifying_key().to_bytes();
    let id: String = sha2::Sha256::digest(public).iter().map(|b| format!("{b:02x}")).collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut c = RawClient::open_with(url, None, &[("x-forwarded-for", "203.0.113.9")]).await.unwrap();
    let challenge = c.next_frame().await.unwrap();
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let ts = challenge["payload"]["ts"].as_i64().unwrap();
    let mut p = cli_connect_params(Some(token), &["operator.read"]);
    p["client"]["displayName"] = json!("laptop");
    let payload = format!("v3|{id}|cli|cli|operator|operator.read|{ts}|{token}|{nonce}|linux|linux");
    p["device"] = json!({"id": id, "publicKey": b64(&public), "signature": b64(&key.sign(payload.as_bytes()).to_bytes()),
                         "signedAt": ts, "nonce": nonce});
    let res = c.request("connect", p).await.unwrap();
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    res["error"]["details"]["requestId"].as_str().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_pending_device_appears_live_and_is_approved_from_the_page() {
    let c = Console::start("approve", json!({})).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("devices page lists this browser", async {
        c.go("#/devices").await?;
        b.wait_for("#pending-title", "Pending", WAIT).await?;
        b.wait_for("tr[data-device]", "(this browser)", WAIT).await
    })
    .await
    .unwrap();
    // The request arrives while the page is open: a `device.pair.requested` event shows it.
    let request = remote_pairing_request(&c.gw.url(), &c.gw.token).await;
    let row = format!("tr[data-request='{request}']");
    b.step("the request appears", b.wait_for(&row, "laptop", WAIT)).await.unwrap();
    b.step("approve it", async {
        b.click_on(&format!("{row} button"), "Approve").await?;
        b.wait_for("tr[data-device]", "laptop", WAIT).await
    })
    .await
    .unwrap();
    let mut cl = c.client().await;
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"], json!([]), "{list}");
    assert!(list["paired"].as_array().unwrap().iter().any(|d| d["displayName"] == "laptop"), "{list}");
    c.quit().await;
}

fn model_config(fake: &FakeOpenAi) -> Value {
    json!({
        "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": fake.base_url(), "apiKey": "sk-test", "models": [{"id": "gpt-4o"}]}}},
        "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
    })
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn chat_streams_the_reply_piece_by_piece() {
    let fake = FakeOpenAi::start().await;
    let gate = Gate::new();
    fake.push(Reply::paced("Hello from the model, streamed.", 3, &gate));
    let c = Console::start("chat", model_config(&fake)).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("send with Enter", async {
        c.go("#/chat").await?;
        let input = b.wait_for("#chat-input", "", WAIT).await?;
        b.type_into(&input, "Say hello").await?;
        b.keys("\u{E007}").await?;
        b.wait_for("#chat-log .msg.user", "Say hello", WAIT).await
    })
    .await
    .unwrap();
    // One piece released: the reply shows it while the turn is still running.
    gate.release(1);
    let partial = b
        .step("first piece streams in", b.wait_until("a partial reply", "const m = document.querySelector('#chat-log .msg.streaming .body'); return m && m.textContent !== '…' ? m.textContent : null;", WAIT))
        .await
        .unwrap();
    let partial = partial.as_str().unwrap().to_string();
    assert!(!partial.is_empty() && partial.len() < "Hello from the model, streamed.".len(), "{partial:?}");
    gate.release(2);
    b.step("the whole reply", b.wait_for("#chat-log .msg.assistant:not(.streaming)", "Hello from the model, streamed.", WAIT))
        .await
        .unwrap();
    let req = &fake.requests()[0];
    assert_eq!(req.body["messages"].as_array().unwrap().last().unwrap()["content"], "Say hello");
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_forged_link_is_refused_and_a_revoked_browser_is_signed_out() {
    let c = Console::start("forged-revoked", json!({})).await;
    let b = &c.b;
    b.step("forged token", async {
        b.goto(&format!("{}#token=not-the-token-{}", c.page(), "x".repeat(20))).await?;
        b.wait_for("#conn", "Signed out", WAIT).await?;
        b.wait_for(".signin .alert", "refused the token in that link", WAIT).await?;
        let url = b.current_url().await?;
        anyhow::ensure!(!url.contains("not-the-token"), "the forged token is still in the URL: {url}");
        Ok(())
    })
    .await
    .unwrap();
    b.step("the real link signs in", c.sign_in()).await.unwrap();
    let device = b.execute("return pincerConsole.identity.deviceId", json!([])).await.unwrap();
    let mut cl = c.client().await;
    cl.call("device.token.revoke", json!({"deviceId": device, "role": "operator"})).await.unwrap();
    b.step("revocation signs the page out", async {
        b.wait_for("#conn", "Signed out", WAIT).await?;
        b.wait_for(".signin .alert", "no longer valid", WAIT).await
    })
    .await
    .unwrap();
    // And a reload does not get back in.
    b.step("stays out after a reload", async {
        b.goto(&c.page()).await?;
        b.wait_for(".signin", "not signed in", WAIT).await
    })
    .await
    .unwrap();
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_gateway_restart_under_an_open_page_reconnects_and_catches_up() {
    let mut c = Console::start("restart", json!({})).await;
    b_step_sign_in_and_inbox(&c).await;
    c.b.execute("window.__samePage = 'yes'", json!([])).await.unwrap();
    c.gw.terminate().unwrap();
    c.b.step("shows it is reconnecting", c.b.wait_for("#conn", "Reconnecting", WAIT)).await.unwrap();
    // While the gateway is down, a delivery to the inbox is waiting in its outbox; the restarted
    // gateway sends it, whether or not the page is back in time to see the event.
    {
        let store = pincer_store::Store::open(&c.gw.state_dir.join("pincer.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.enqueue_delivery(&pincer_store::NewDelivery {
                    id: "while-away".into(),
                    idempotency_key: "while-away".into(),
                    origin_kind: "send".into(),
                    origin_id: None,
                    channel: "inbox".into(),
                    account_id: None,
                    target: "console".into(),
                    thread_id: None,
                    max_attempts: 5,
                    best_effort: false,
                    body: "sent while the page was away".into(),
                    parts: vec![("sent while the page was away".into(), "n0".into())],
                    created_at_ms: 1_000,
                })?;
                Ok(())
            })
            .unwrap();
        store.close();
    }
    c.gw.restart().unwrap();
    let b = &c.b;
    b.step("reconnects", b.wait_for("#conn", "Connected", Duration::from_secs(40))).await.unwrap();
    b.step("catches up", b.wait_for(".inbox-item pre", "sent while the page was away", WAIT)).await.unwrap();
    let same = b.execute("return window.__samePage", json!([])).await.unwrap();
    assert_eq!(same, "yes", "the page caught up without a reload");
    c.quit().await;
}

async fn b_step_sign_in_and_inbox(c: &Console) {
    c.b.step("sign in", c.sign_in()).await.unwrap();
    c.b.step("open the inbox", async {
        c.go("#/inbox").await?;
        c.b.wait_for("main", "inbox is empty", WAIT).await
    })
    .await
    .unwrap();
}
