//! The browser console, driven in a real headless Chromium over WebDriver against the real
//! `pincer` binary and fake servers on 127.0.0.1: sign in with the `pincer dashboard` link, create a
//! job, run it and see it delivered, retry a dead delivery, approve a pending device, chat with a
//! streamed reply, refuse a forged link and a revoked device, survive a gateway restart, page
//! 10,000 jobs and 100,000 deliveries, and pass axe-core on every page.
//!
//! Ignored in the plain suite (they need Chromium, chromedriver and axe-core); `cargo xtask
//! console` runs them (and `cargo xtask test` after the suite). A failing step leaves a screenshot
//! in `target/console-shots/`, named in the failure.

use pincer_protocol::state::{DeliveryErrorClass, DeliveryState};
use std::path::PathBuf;
use std::time::Duration;

use pincer_testkit::browser::Browser;
use pincer_testkit::fakes::openai::{FakeOpenAi, Gate, Reply};
use pincer_testkit::fakes::webhook::{FakeWebhook, Fault};
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
        RawClient::connect(&self.gw.url(), cli_connect_params(Some(&self.gw.token), &["operator.admin"]))
            .await
            .unwrap()
            .0
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
    let gw = GatewayProcess::start(
        &pincer_bin(),
        dir.path(),
        json!({"gateway": {"auth": {"token": "tok/with+odd=chars-0123456789"}}}),
    )
    .unwrap();
    let out = gw.cli(&["dashboard", "--no-open"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let first = stdout.lines().next().unwrap();
    assert_eq!(first, format!("Console: http://127.0.0.1:{}/#token=tok%2Fwith%2Bodd%3Dchars-0123456789", gw.port));
    // No display here: without --no-open it says so instead of failing.
    let out = gw.cli(&["dashboard"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No browser to open here"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
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
    // The Audit log page shows both sign-ins, and its action filter narrows the list.
    b.step("audit log page", async {
        c.go("#/audit").await?;
        b.wait_for("main tbody tr", "method: device-token", WAIT).await?;
        b.wait_for("main tbody tr", "method: token", WAIT).await?;
        b.fill("#a-action", "no.such.action").await?;
        b.wait_for("main", "No entries.", WAIT).await
    })
    .await
    .unwrap();
    c.quit().await;
}

/// Text of every `selector` element.
async fn texts(b: &Browser, selector: &str) -> anyhow::Result<Vec<String>> {
    let v = b
        .execute("return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", json!([selector]))
        .await?;
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
    let error =
        b.step("validation message at the field", b.wait_for("#f-expr-error", "schedule.expr", WAIT)).await.unwrap();
    let message = b.text(&error).await.unwrap();
    assert!(message.contains("invalid cron expression"), "{message}");
    let invalid =
        b.execute("return document.querySelector('#f-expr').getAttribute('aria-invalid')", json!([])).await.unwrap();
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
    let job = cl
        .call("cron.add", json!({"name": "Broken backup", "schedule": {"kind": "every", "everyMs": 3_600_000},
            "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["sh", "-c", "echo disk gone >&2; exit 3"]},
            "delivery": {"mode": "none"}}))
        .await
        .unwrap();
    let job_id = job["id"].as_str().unwrap().to_string();
    cl.call("cron.run", json!({"id": job_id})).await.unwrap();
    crate::support::wait_runs(&mut cl, &job_id, 1).await;
    b.step("sign in", c.sign_in()).await.unwrap();
    // The Overview lists both failures, each with the command that fixes it.
    let failures = b
        .step("recent failures on the overview", async {
            b.wait_for("section[aria-labelledby=failures-title]", "pincer deliveries retry", WAIT).await?;
            b.wait_for("section[aria-labelledby=failures-title]", &format!("pincer cron runs --id {job_id}"), WAIT)
                .await
        })
        .await
        .unwrap();
    let text = b.text(&failures).await.unwrap();
    assert!(text.contains("Broken backup") && text.contains("Run again") && text.contains("Retry"), "{text}");
    // Doctor's finding about the dead delivery, with its fix; the channel's row counts it.
    b.step("doctor and channel states on the overview", async {
        b.wait_for(
            "section[aria-labelledby=doctor-title] tr",
            "pincer deliveries list --state dead --channel webhook",
            WAIT,
        )
        .await?;
        let row = b.wait_for("section[aria-labelledby=channels-title] tbody tr", "Webhook", WAIT).await?;
        let cells = b.text(&row).await?;
        anyhow::ensure!(
            cells.split_whitespace().collect::<Vec<_>>() == ["Webhook", "healthy", "0", "—", "1", "0", "0"],
            "{cells}"
        );
        b.wait_for("#health-stats", "Dead deliveries\n1", WAIT).await
    })
    .await
    .unwrap();
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
    // Purge the settled one: asked first, then gone from the page and the outbox.
    b.step("purge delivered", async {
        b.click_on(".toolbar button", "Purge delivered").await?;
        b.click_on("dialog.confirm button.danger", "Purge").await?;
        b.wait_for("main", "No delivery matches.", WAIT).await
    })
    .await
    .unwrap();
    let left = cl.call("deliveries.list", json!({})).await.unwrap();
    assert_eq!(left["total"], 0, "{left}");
    c.quit().await;
}

/// Sends a signed `connect` through a proxy header, so the gateway treats it as remote and files a
/// pairing request; returns the request id.
async fn remote_pairing_request(url: &str, token: &str) -> String {
    remote_pairing_request_as(url, token, 77, "laptop").await.0
}

/// [`remote_pairing_request`] for the device whose key is `[seed; 32]`, named `name`; returns the
/// request id and the device id.
async fn remote_pairing_request_as(url: &str, token: &str, seed: u8, name: &str) -> (String, String) {
    let (res, id) = remote_connect(url, token, seed, name).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    (res["error"]["details"]["requestId"].as_str().unwrap().to_string(), id)
}

/// A signed `connect` from 203.0.113.9 (through a proxy header) by the device whose key is
/// `[seed; 32]`; returns the response frame and the device id.
async fn remote_connect(url: &str, token: &str, seed: u8, name: &str) -> (Value, String) {
    use base64::Engine;
    use ed25519_dalek::Signer;
    use sha2::Digest;
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let public = key.verifying_key().to_bytes();
    let id: String = sha2::Sha256::digest(public).iter().map(|b| format!("{b:02x}")).collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut c = RawClient::open_with(url, None, &[("x-forwarded-for", "203.0.113.9")]).await.unwrap();
    let challenge = c.next_frame().await.unwrap();
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let ts = challenge["payload"]["ts"].as_i64().unwrap();
    let mut p = cli_connect_params(Some(token), &["operator.read"]);
    p["client"]["displayName"] = json!(name);
    let payload = format!("v3|{id}|cli|cli|operator|operator.read|{ts}|{token}|{nonce}|linux|linux");
    p["device"] = json!({"id": id, "publicKey": b64(&public), "signature": b64(&key.sign(payload.as_bytes()).to_bytes()),
                         "signedAt": ts, "nonce": nonce});
    (c.request("connect", p).await.unwrap(), id)
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

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_pending_device_is_rejected_and_a_paired_one_rotated_revoked_and_removed_from_the_page() {
    let c = Console::start("devices", json!({})).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("devices page", async {
        c.go("#/devices").await?;
        b.wait_for("tr[data-device]", "(this browser)", WAIT).await
    })
    .await
    .unwrap();
    let (reject, _) = remote_pairing_request_as(&c.gw.url(), &c.gw.token, 78, "old phone").await;
    let (approve, tablet) = remote_pairing_request_as(&c.gw.url(), &c.gw.token, 79, "tablet").await;
    b.step("reject one", async {
        b.click_on(&format!("tr[data-request='{reject}'] button"), "Reject").await?;
        b.wait_until(
            "the rejected request leaves the page",
            &format!("return !document.querySelector(\"tr[data-request='{reject}']\")"),
            WAIT,
        )
        .await
    })
    .await
    .unwrap();
    let row = format!("tr[data-device='{tablet}']");
    b.step("approve the other", async {
        b.click_on(&format!("tr[data-request='{approve}'] button"), "Approve").await?;
        b.wait_for(&row, "tablet", WAIT).await
    })
    .await
    .unwrap();
    // Approved, it signs in and is given its device token.
    let (res, _) = remote_connect(&c.gw.url(), &c.gw.token, 79, "tablet").await;
    assert_eq!(res["ok"], true, "{res}");
    let mut cl = c.client().await;
    let device =
        |list: &Value| list["paired"].as_array().unwrap().iter().find(|d| d["deviceId"] == tablet.as_str()).cloned();
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"], json!([]), "{list}");
    assert!(!list["paired"].as_array().unwrap().iter().any(|d| d["displayName"] == "old phone"), "rejected: {list}");
    let token = |d: &Value| d["tokens"].as_array().unwrap().iter().find(|t| t["role"] == "operator").cloned().unwrap();
    assert!(token(&device(&list).unwrap())["rotatedAtMs"].is_null(), "{list}");
    b.step("rotate its token", async {
        b.click_on(&format!("{row} button"), "Rotate").await?;
        b.click_on("dialog.confirm button.danger", "Rotate").await?;
        b.wait_for(&row, "rotated", WAIT).await
    })
    .await
    .unwrap();
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    assert!(token(&device(&list).unwrap())["rotatedAtMs"].is_i64(), "{list}");
    b.step("revoke its token", async {
        b.click_on(&format!("{row} button"), "Revoke").await?;
        b.click_on("dialog.confirm button.danger", "Revoke").await?;
        b.wait_for(&row, "revoked", WAIT).await
    })
    .await
    .unwrap();
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    assert!(token(&device(&list).unwrap())["revokedAtMs"].is_i64(), "{list}");
    b.step("remove it", async {
        b.click_on(&format!("{row} button"), "Remove").await?;
        b.click_on("dialog.confirm button.danger", "Remove device").await?;
        b.wait_until("the removed device leaves the page", &format!("return !document.querySelector(\"{row}\")"), WAIT)
            .await
    })
    .await
    .unwrap();
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    assert!(device(&list).is_none(), "removed: {list}");
    // The browser itself is untouched by all this.
    b.wait_for("#conn", "Connected", WAIT).await.unwrap();
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_job_is_edited_disabled_enabled_and_deleted_from_its_page() {
    let c = Console::start("edit-job", json!({})).await;
    let b = &c.b;
    let mut cl = c.client().await;
    let job = cl
        .call(
            "cron.add",
            json!({"name": "Weekly digest", "schedule": {"kind": "every", "everyMs": 3_600_000},
            "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["sh", "-c", "echo digest"]},
            "delivery": {"mode": "announce", "channel": "inbox"}}),
        )
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("the job's page, with its route", async {
        c.go(&format!("#/jobs/{id}")).await?;
        b.wait_for("h1", "Weekly digest", WAIT).await?;
        b.wait_for("section[aria-labelledby=upcoming-title]", "Route:", WAIT).await
    })
    .await
    .unwrap();
    b.step("edit name and schedule", async {
        b.click_on(".actions button", "Edit").await?;
        b.wait_until(
            "the form holds the job",
            "return document.querySelector('#f-name')?.value === 'Weekly digest'",
            WAIT,
        )
        .await?;
        b.fill("#f-name", "Monday digest").await?;
        b.select("#f-kind", "cron").await?;
        b.fill("#f-expr", "0 7 * * 1").await?;
        b.fill("#f-tz", "Europe/Berlin").await?;
        b.click_on("button[type=submit]", "Save changes").await?;
        b.wait_for("h1", "Monday digest", WAIT).await?;
        b.wait_for("section[aria-labelledby=upcoming-title]", "Europe/Berlin", WAIT).await
    })
    .await
    .unwrap();
    let got = cl.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(got["name"], "Monday digest");
    assert_eq!((&got["schedule"]["kind"], &got["schedule"]["expr"]), (&json!("cron"), &json!("0 7 * * 1")), "{got}");
    assert_eq!(got["schedule"]["tz"], "Europe/Berlin", "{got}");
    assert_eq!(got["payload"]["argv"], json!(["sh", "-c", "echo digest"]), "the rest is kept: {got}");
    b.step("the list shows its zone and next fire time", async {
        c.go("#/jobs").await?;
        let row = b.wait_for("table.jobs tbody tr", "Monday digest", WAIT).await?;
        let text = b.text(&row).await?;
        anyhow::ensure!(text.contains("Europe/Berlin") && text.contains("in "), "{text}");
        c.go(&format!("#/jobs/{id}")).await?;
        b.wait_for("h1", "Monday digest", WAIT).await
    })
    .await
    .unwrap();
    b.step("disable", async {
        b.click_on(".actions button", "Disable").await?;
        b.wait_for(".actions button", "Enable", WAIT).await?;
        b.wait_for("section[aria-labelledby=upcoming-title]", "No upcoming fire time", WAIT).await
    })
    .await
    .unwrap();
    assert_eq!(cl.call("cron.get", json!({"id": id})).await.unwrap()["enabled"], false);
    b.step("enable", async {
        b.click_on(".actions button", "Enable").await?;
        b.wait_for(".actions button", "Disable", WAIT).await?;
        b.wait_for("#upcoming li", "", WAIT).await
    })
    .await
    .unwrap();
    assert_eq!(cl.call("cron.get", json!({"id": id})).await.unwrap()["enabled"], true);
    b.step("delete, after asking", async {
        b.click_on(".actions button", "Delete").await?;
        b.click_on("dialog.confirm button.danger", "Delete job").await?;
        b.wait_until(
            "back on the list",
            "return location.hash === '#/jobs' && document.querySelector('main').innerText.includes('No jobs yet')",
            WAIT,
        )
        .await
    })
    .await
    .unwrap();
    let gone = cl.call("cron.get", json!({"id": id})).await;
    assert!(gone.is_err(), "deleted: {gone:?}");
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_failing_step_saves_a_screenshot_and_the_page_text() {
    let c = Console::start("failing-step", json!({})).await;
    let b = &c.b;
    b.goto(&c.page()).await.unwrap();
    b.wait_for(".signin", "Sign in", WAIT).await.unwrap();
    let png = shots().join("failing-step-meant-to-fail.png");
    let txt = shots().join("failing-step-meant-to-fail.txt");
    let _ = std::fs::remove_file(&png);
    let _ = std::fs::remove_file(&txt);
    let err = b
        .step("meant to fail", b.wait_for("#no-such-thing", "", Duration::from_millis(200)))
        .await
        .expect_err("the step cannot pass");
    let message = format!("{err:#}");
    assert!(message.contains(&png.display().to_string()) && message.contains(&txt.display().to_string()), "{message}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000, "a real PNG: {} bytes", bytes.len());
    assert!(std::fs::read_to_string(&txt).unwrap().contains("Sign in"));
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
    b.step(
        "the whole reply",
        b.wait_for("#chat-log .msg.assistant:not(.streaming)", "Hello from the model, streamed.", WAIT),
    )
    .await
    .unwrap();
    let req = &fake.requests()[0];
    assert_eq!(req.body["messages"].as_array().unwrap().last().unwrap()["content"], "Say hello");
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn chat_abort_mid_stream_keeps_the_partial_reply_and_marks_it_aborted() {
    let fake = FakeOpenAi::start().await;
    let gate = Gate::new();
    fake.push(Reply::paced("One two three four five six seven eight.", 4, &gate));
    fake.push(Reply::text("Still here."));
    let c = Console::start("chat-abort", model_config(&fake)).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("send", async {
        c.go("#/chat").await?;
        let input = b.wait_for("#chat-input", "", WAIT).await?;
        b.type_into(&input, "Count slowly").await?;
        b.keys("\u{E007}").await?;
        b.wait_for("#chat-log .msg.user", "Count slowly", WAIT).await
    })
    .await
    .unwrap();
    gate.release(1);
    let partial = b
        .step("first piece streams in", b.wait_until("a partial reply", "const m = document.querySelector('#chat-log .msg.streaming .body'); return m && m.textContent !== '…' ? m.textContent : null;", WAIT))
        .await
        .unwrap();
    let partial = partial.as_str().unwrap().to_string();
    assert!(partial.starts_with("One") && partial.len() < 20, "{partial:?}");
    b.step("abort", async {
        let button = b.wait_for("#chat-abort", "Abort", WAIT).await?;
        b.click(&button).await?;
        b.wait_for("#chat-log .msg.assistant.aborted", "Aborted: the reply stops here", WAIT).await
    })
    .await
    .unwrap();
    let shown = b
        .execute("return document.querySelector('#chat-log .msg.aborted .body').textContent", json!([]))
        .await
        .unwrap();
    assert_eq!(shown, json!(partial), "the partial reply stays on the page, no more pieces after the abort");
    let hidden = b.execute("return document.getElementById('chat-abort').hidden", json!([])).await.unwrap();
    assert_eq!(hidden, json!(true), "Abort goes away once the turn ended");
    // The transcript keeps the partial reply, marked aborted.
    let mut client = c.client().await;
    let history = client.call("chat.history", json!({"sessionKey": "main"})).await.unwrap();
    let last = history["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["role"].as_str(), last["text"].as_str(), last["aborted"].as_bool()),
        (Some("assistant"), Some(partial.as_str()), Some(true)),
        "{last}"
    );
    // The rest of the held reply can no longer arrive; the chat goes on.
    gate.release(3);
    b.step("the next message", async {
        let input = b.wait_for("#chat-input", "", WAIT).await?;
        b.type_into(&input, "Still there?").await?;
        b.keys("\u{E007}").await?;
        b.wait_for("#chat-log .msg.assistant:not(.streaming):not(.aborted)", "Still here.", WAIT).await
    })
    .await
    .unwrap();
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_turn_that_calls_tools_shows_each_call_and_result_collapsed_in_the_transcript() {
    use pincer_testkit::fakes::openai::FakeToolCall;
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_calls(vec![
        FakeToolCall::new("call_w", "write", json!({"path": "note.txt", "content": "kept by the agent"})),
        FakeToolCall::new("call_r", "read", json!({"path": "missing.txt"})),
    ]));
    fake.push(Reply::text("Wrote the note; the other file is missing."));
    let c = Console::start("tool-calls", model_config(&fake)).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("chat a turn that calls two tools", async {
        c.go("#/chat").await?;
        let input = b.wait_for("#chat-input", "", WAIT).await?;
        b.type_into(&input, "Write a note").await?;
        b.keys("\u{E007}").await?;
        // The Chat page shows the calls too once the turn ends (from the transcript).
        b.wait_for("#chat-log details.tool.call", "write", WAIT).await?;
        b.wait_for("#chat-log .msg.assistant", "Wrote the note; the other file is missing.", WAIT).await
    })
    .await
    .unwrap();
    b.step("the session's transcript", async {
        c.go("#/sessions/main").await?;
        b.wait_for(".transcript .msg.tool", "read", WAIT).await
    })
    .await
    .unwrap();
    let folded = b
        .execute(
            "return [...document.querySelectorAll('.transcript details.tool')].map(d => [d.className, d.querySelector('summary').textContent, d.open, d.querySelector('pre').checkVisibility()])",
            json!([]),
        )
        .await
        .unwrap();
    let folded = folded.as_array().unwrap();
    assert_eq!(folded.len(), 4, "two calls and two results: {folded:?}");
    for d in folded {
        assert_eq!((d[2].as_bool(), d[3].as_bool()), (Some(false), Some(false)), "collapsed by default: {d}");
    }
    let summaries: Vec<&str> = folded.iter().map(|d| d[1].as_str().unwrap()).collect();
    assert_eq!(&summaries[..2], ["Tool call write", "Tool call read"], "{summaries:?}");
    // The two calls run side by side: their results are in the order they finished.
    let mut results = summaries[2..].to_vec();
    results.sort();
    assert!(results[0].starts_with("Tool error read ("), "the failed read names its error class: {summaries:?}");
    assert!(results[1].starts_with("Tool result write"), "{summaries:?}");
    // Opened from the keyboard: the arguments, then the error the model read.
    let args = b
        .step("open the write call with the keyboard", async {
            b.execute("document.querySelector('.transcript details.tool.call summary').focus()", json!([])).await?;
            b.keys("\u{E007}").await?;
            b.wait_until("the arguments", "const d = document.querySelector('.transcript details.tool.call'); return d.open ? d.querySelector('pre').textContent : null;", WAIT).await
        })
        .await
        .unwrap();
    let args: Value = serde_json::from_str(args.as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"path": "note.txt", "content": "kept by the agent"}));
    b.step("open the failed result", async {
        b.click_on(".transcript .msg.tool.failed summary", "read").await?;
        b.wait_for(".transcript .msg.tool.failed details[open] pre", "missing.txt", WAIT).await
    })
    .await
    .unwrap();
    c.quit().await;
}

/// The row of the pending approval for `command` once it is on the Approvals page, and its id.
async fn approval_row(b: &Browser, command: &str) -> anyhow::Result<String> {
    b.wait_for("tr[data-approval] code.command", command, WAIT).await?;
    let id = b
        .execute(
            "return [...document.querySelectorAll('tr[data-approval]')].find(r => r.querySelector('code.command').textContent === arguments[0])?.dataset.approval ?? null",
            json!([command]),
        )
        .await?;
    id.as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("no row for {command}"))
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn exec_approvals_appear_live_and_are_allowed_once_always_or_denied_from_the_page() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool_call("exec", json!({"command": "touch once.txt"})));
    fake.push(Reply::tool_call("exec", json!({"command": "touch denied.txt"})));
    fake.push(Reply::tool_call("exec", json!({"command": "touch always.txt"})));
    fake.push(Reply::text("Done with the files."));
    let mut config = model_config(&fake);
    config["tools"] = json!({"exec": {"mode": "ask", "approvalTimeoutSec": 600}});
    let c = Console::start("approvals", config).await;
    let b = &c.b;
    let workspace = c.gw.state_dir.join("workspace");
    b.step("sign in and open Approvals", async {
        c.sign_in().await?;
        c.go("#/approvals").await?;
        b.wait_for("#approvals-title + p", "No command is waiting for approval.", WAIT).await
    })
    .await
    .unwrap();
    // The turn runs beside the page (the protocol, as any client); the page is not reloaded.
    let mut client = c.client().await;
    client
        .call("chat.send", json!({"sessionKey": "main", "message": "Make three files", "idempotencyKey": "files-1"}))
        .await
        .unwrap();

    let once = b.step("the first ask appears live", approval_row(b, "touch once.txt")).await.unwrap();
    let problems = axe_violations(b).await.unwrap();
    assert!(problems.is_empty(), "axe on the Approvals page with a pending row: {problems:?}");
    assert!(!workspace.join("once.txt").exists(), "it ran before anyone approved it");
    b.step("allow once", async {
        b.click_on(&format!("tr[data-approval='{once}'] button"), "Allow once").await?;
        approval_row(b, "touch denied.txt").await
    })
    .await
    .unwrap();
    assert!(workspace.join("once.txt").exists(), "allowed once: it ran");
    let gone = b
        .execute("return document.querySelector(`tr[data-approval='${arguments[0]}']`) === null", json!([once]))
        .await
        .unwrap();
    assert_eq!(gone, json!(true), "a decided approval leaves the list");

    b.step("deny from the keyboard", async {
        let id = approval_row(b, "touch denied.txt").await?;
        b.execute(&format!("document.querySelector(\"tr[data-approval='{id}'] button.danger\").focus()"), json!([]))
            .await?;
        b.keys("\u{E007}").await?;
        approval_row(b, "touch always.txt").await
    })
    .await
    .unwrap();
    assert!(!workspace.join("denied.txt").exists(), "denied: it did not run");

    b.step("always allow, confirmed", async {
        let id = approval_row(b, "touch always.txt").await?;
        b.click_on(&format!("tr[data-approval='{id}'] button"), "Always allow").await?;
        b.click_on("dialog.confirm button", "Always allow").await?;
        b.wait_for("#approvals-title + p", "No command is waiting for approval.", WAIT).await
    })
    .await
    .unwrap();
    let reply = client.call("agent.wait", json!({"runId": "files-1", "timeoutMs": 15_000})).await.unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(workspace.join("always.txt").exists(), "allowed always: it ran");
    let grants: Value =
        serde_json::from_str(&std::fs::read_to_string(c.gw.state_dir.join("exec-approvals.json")).unwrap()).unwrap();
    let patterns: Vec<&str> =
        grants["allowlist"].as_array().unwrap().iter().map(|g| g["pattern"].as_str().unwrap()).collect();
    assert!(
        matches!(patterns[..], [p] if p.ends_with("/touch")),
        "only the always decision is kept, for good: {grants}"
    );
    // The audit log has the three decisions, each by the console.
    let audit = client.call("audit.query", json!({"limit": 50})).await.unwrap();
    let decisions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "exec.approval.resolved")
        .map(|e| e["detail"]["decision"].as_str().unwrap())
        .collect();
    let mut sorted = decisions.clone();
    sorted.sort();
    assert_eq!(sorted, ["allow-always", "allow-once", "deny"], "{audit}");
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_pending_delivery_is_cancelled_and_the_dead_ones_purged_from_the_page() {
    let hook = FakeWebhook::start().await;
    hook.push_fault(Fault::Status(400));
    hook.push_fault(Fault::RateLimited { retry_after: Duration::from_secs(3600) });
    let c = Console::start("cancel-purge", json!({"channels": {"webhook": {"allowPrivateNetwork": true}}})).await;
    let b = &c.b;
    let mut cl = c.client().await;
    let dead = cl
        .call("send", json!({"channel": "webhook", "to": hook.url(), "message": "refused", "idempotencyKey": "cp-dead", "wait": true}))
        .await
        .unwrap();
    let sent = cl
        .call(
            "send",
            json!({"channel": "webhook", "to": hook.url(), "message": "held back", "idempotencyKey": "cp-pending"}),
        )
        .await
        .unwrap();
    let pending_id = sent["deliveryId"].as_str().unwrap().to_string();
    // Wait until the second is pending again, its next try an hour away.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = cl.call("deliveries.list", json!({"state": "pending"})).await.unwrap();
        if list["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["lastErrorClass"] == "rate_limited" && d["nextAttemptAtMs"].is_i64())
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never rate-limited: {list}; first send: {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.step("sign in", c.sign_in()).await.unwrap();
    b.step("the pending one, with its next try", async {
        c.go("#/deliveries?state=pending").await?;
        b.wait_for("table.deliveries tr[data-state=pending] td.reason", "next try", WAIT).await
    })
    .await
    .unwrap();
    b.step("cancel it", async {
        b.click_on("table.deliveries tr[data-state=pending] button", "Cancel").await?;
        b.wait_for("main", "No delivery matches.", WAIT).await
    })
    .await
    .unwrap();
    let list = cl.call("deliveries.list", json!({})).await.unwrap();
    let mut states: Vec<(String, String)> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["text"].as_str().unwrap_or_default().to_string(),
                format!("{}/{}", d["state"].as_str().unwrap(), d["lastErrorClass"].as_str().unwrap_or("-")),
            )
        })
        .collect();
    states.sort();
    assert_eq!(states.len(), 2, "{list}");
    assert_eq!(states[0].1, "dead/cancelled", "{states:?} ({pending_id})");
    assert!(
        states[1].1.starts_with("dead/") && states[1].0 == "refused",
        "the refused one is dead beside it: {states:?}"
    );
    b.step("purge dead, asked first", async {
        b.select("#d-state", "dead").await?;
        b.wait_for("table.deliveries tr[data-state=dead]", "", WAIT).await?;
        b.click_on(".toolbar button", "Purge dead").await?;
        b.wait_for("dialog.confirm", "Delete every dead delivery", WAIT).await?;
        b.click_on("dialog.confirm button.danger", "Purge").await?;
        b.wait_for("main", "No delivery matches.", WAIT).await
    })
    .await
    .unwrap();
    let left = cl.call("deliveries.list", json!({})).await.unwrap();
    assert_eq!(left["total"], 0, "{left}");
    c.quit().await;
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn a_browser_outside_loopback_is_paired_by_approving_its_request_on_a_loopback_console() {
    let c = Console::start("pair-remote", json!({})).await;
    let b = &c.b;
    // Every request of this browser carries a proxy's `X-Forwarded-For` (as behind an HTTPS reverse
    // proxy): the gateway no longer takes it for a client on its own machine.
    b.cdp("Network.enable", json!({})).await.unwrap();
    b.cdp("Network.setExtraHTTPHeaders", json!({"headers": {"x-forwarded-for": "203.0.113.9"}})).await.unwrap();
    let request_id = b
        .step("the link asks for approval", async {
            b.goto(&c.dashboard_link()).await?;
            b.wait_for("#pairing-title", "Waiting for approval", WAIT).await?;
            b.wait_until("the request id", "const m = document.querySelector('#pairing-title ~ p.muted'); return m && (m.textContent.match(/Request (\\S+) /) || [])[1] || null;", WAIT).await
        })
        .await
        .unwrap();
    let request_id = request_id.as_str().unwrap().to_string();
    let page = b.page_text().await.unwrap();
    assert!(page.contains(&format!("pincer devices approve {request_id}")), "the command that approves it: {page}");
    let mut cl = c.client().await;
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    let req =
        list["pending"].as_array().unwrap().iter().find(|r| r["requestId"] == request_id.as_str()).cloned().unwrap();
    assert_eq!(
        (req["clientId"].as_str(), req["deviceFamily"].as_str(), req["reason"].as_str()),
        (Some("openclaw-control-ui"), Some("browser"), Some("not-paired")),
        "{req}"
    );
    assert_eq!(list["paired"].as_array().unwrap().len(), 0, "nothing is paired before the approval: {list}");

    // The owner approves it on the Devices page of a console on loopback.
    let owner = Browser::start("pair-owner", &shots(), 1280, 900).await.unwrap();
    owner
        .step("approve on a loopback console", async {
            owner.goto(&c.dashboard_link()).await?;
            owner.wait_for("#conn", "Connected", WAIT).await?;
            owner.execute("location.hash = '#/devices'", json!([])).await?;
            owner.click_on(&format!("tr[data-request='{request_id}'] button"), "Approve").await?;
            owner
                .wait_until(
                    "the request leaves the pending list",
                    &format!("return document.querySelector(\"tr[data-request='{request_id}']\") === null"),
                    WAIT,
                )
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    owner.quit().await;
    // The waiting page connects by itself, then comes back with its own device token.
    b.step("connected once approved", b.wait_for("#conn", "Connected", WAIT)).await.unwrap();
    let list = cl.call("device.pair.list", json!({})).await.unwrap();
    let paired: Vec<&Value> =
        list["paired"].as_array().unwrap().iter().filter(|d| d["deviceId"] == req["deviceId"]).collect();
    assert_eq!(paired.len(), 1, "the remote browser is paired: {list}");
    b.step("reload: its device token signs it in", async {
        b.refresh().await?;
        b.wait_for("#conn", "Connected", WAIT).await?;
        b.wait_for("#health-stats", "", WAIT).await
    })
    .await
    .unwrap();
    let shared = b.execute("return sessionStorage.getItem('pincer.console.pendingToken')", json!([])).await.unwrap();
    assert_eq!(shared, Value::Null, "the link's token is forgotten once the device is paired");
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
                    origin_kind: pincer_protocol::state::OriginKind::Send,
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

/// axe-core's serious and critical violations on the page as it is now (`PINCER_AXE_JS`, which
/// `cargo xtask console` installs from npm).
async fn axe_violations(b: &Browser) -> anyhow::Result<Vec<String>> {
    let path = std::env::var("PINCER_AXE_JS").map_err(|_| {
        anyhow::anyhow!("PINCER_AXE_JS is not set: run these tests with `cargo xtask console`, which installs axe-core")
    })?;
    let source = std::fs::read_to_string(&path)?;
    let loaded = b.execute(&format!("{source}\n;return typeof window.axe;"), json!([])).await?;
    anyhow::ensure!(loaded == "object", "axe-core did not load: {loaded}");
    let found = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})
               .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)))
               .catch(e => done([`axe failed: ${e}`]));",
            json!([]),
        )
        .await?;
    Ok(found.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect())
}

/// How far the page is wider than the window (0 when nothing sticks out sideways).
async fn overflow(b: &Browser) -> anyhow::Result<i64> {
    Ok(b.execute("return document.documentElement.scrollWidth - window.innerWidth", json!([]))
        .await?
        .as_i64()
        .unwrap_or(0))
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn every_page_passes_axe_in_light_and_dark_fits_390_px_and_works_from_the_keyboard() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("A short answer."));
    let hook = FakeWebhook::start().await;
    hook.push_fault(Fault::Status(404));
    let mut config = model_config(&fake);
    config["channels"] = json!({"webhook": {"allowPrivateNetwork": true}});
    let c = Console::start("a11y", config).await;
    let b = &c.b;
    // Something on every page: a job with a run and an inbox message, a dead delivery, a chat
    // session, a pending device.
    let mut cl = c.client().await;
    let job = cl
        .call(
            "cron.add",
            json!({"name": "Nightly report", "schedule": {"kind": "every", "everyMs": 3_600_000},
            "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["sh", "-c", "echo nightly"]},
            "delivery": {"mode": "announce", "channel": "inbox"}}),
        )
        .await
        .unwrap();
    let job_id = job["id"].as_str().unwrap().to_string();
    cl.call("cron.run", json!({"id": job_id})).await.unwrap();
    crate::support::wait_runs(&mut cl, &job_id, 1).await;
    cl.call(
        "send",
        json!({"channel": "webhook", "to": hook.url(), "message": "x", "idempotencyKey": "a11y-1", "wait": true}),
    )
    .await
    .unwrap();
    cl.call("agent", json!({"message": "Hello", "sessionKey": "main"})).await.unwrap();
    remote_pairing_request(&c.gw.url(), &c.gw.token).await;

    // The sign-in panel, before any sign-in.
    b.step("sign-in panel", async {
        b.goto(&c.page()).await?;
        b.wait_for(".signin", "Sign in", WAIT).await
    })
    .await
    .unwrap();
    let mut problems = Vec::new();
    problems.extend(axe_violations(b).await.unwrap().into_iter().map(|v| format!("sign-in (light): {v}")));
    b.step("sign in", c.sign_in()).await.unwrap();

    // Keyboard: the skip link first, then the brand and the pages; Enter follows a link.
    b.step("keyboard", async {
        // A fresh load, so sequential focus starts at the top of the document.
        b.goto(&c.page()).await?;
        b.wait_for("#health-stats", "", WAIT).await?;
        b.keys("\u{E004}").await?;
        let first = b.execute("return document.activeElement.className", json!([])).await?;
        anyhow::ensure!(first == "skip", "Tab first reaches the skip link, not {first}");
        b.keys("\u{E004}\u{E004}\u{E004}").await?;
        let third = b.execute("return document.activeElement.textContent", json!([])).await?;
        anyhow::ensure!(third == "Jobs", "then the brand, Overview, Jobs; got {third}");
        b.keys("\u{E007}").await?;
        b.wait_until(
            "the Jobs page",
            "return location.hash === '#/jobs' && document.querySelector('table.jobs')",
            WAIT,
        )
        .await?;
        Ok(())
    })
    .await
    .unwrap();

    let session = "agent:main:main";
    let pages: Vec<(&str, String, &str)> = vec![
        ("overview", "#/overview".into(), "#doctor-title + p"),
        ("jobs", "#/jobs".into(), "table.jobs"),
        ("job", format!("#/jobs/{job_id}"), "table.runs"),
        ("new job", "#/jobs/new".into(), "#f-name"),
        ("deliveries", "#/deliveries".into(), "table.deliveries"),
        ("inbox", "#/inbox".into(), ".inbox-item"),
        ("sessions", "#/sessions".into(), "main table"),
        ("transcript", format!("#/sessions/{session}"), ".msg.assistant"),
        ("chat", "#/chat".into(), "#chat-log .msg.assistant"),
        ("approvals", "#/approvals".into(), "#approvals-title + p"),
        ("devices", "#/devices".into(), "tr[data-request]"),
        ("audit", "#/audit".into(), "main table"),
    ];
    for scheme in ["light", "dark"] {
        b.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}))
            .await
            .unwrap();
        for (name, hash, ready) in &pages {
            b.step(&format!("{name} {scheme}"), async {
                c.go(hash).await?;
                b.wait_for(ready, "", WAIT).await?;
                Ok(())
            })
            .await
            .unwrap();
            problems.extend(axe_violations(b).await.unwrap().into_iter().map(|v| format!("{name} ({scheme}): {v}")));
        }
    }
    // A phone: 390 px wide, nothing sticks out sideways.
    b.set_window_size(390, 844).await.unwrap();
    let width = b.execute("return window.innerWidth", json!([])).await.unwrap();
    assert!(width.as_i64().unwrap() <= 400, "the window is phone-sized: {width}");
    for (name, hash, ready) in &pages {
        b.step(&format!("{name} at 390 px"), async {
            c.go(hash).await?;
            b.wait_for(ready, "", WAIT).await?;
            let over = overflow(b).await?;
            anyhow::ensure!(over <= 0, "{name} is {over} px wider than a 390 px screen");
            Ok(())
        })
        .await
        .unwrap();
    }
    problems.extend(axe_violations(b).await.unwrap().into_iter().map(|v| format!("audit (390 px): {v}")));
    assert!(problems.is_empty(), "axe-core found serious or critical violations:\n{}", problems.join("\n"));
    c.quit().await;
}

/// A stopped gateway's store with 10,000 jobs and 100,000 settled deliveries.
async fn seed_large(c: &mut Console) {
    let mut cl = c.client().await;
    let template = cl
        .call("cron.add", json!({"name": "template", "schedule": {"kind": "every", "everyMs": 86_400_000},
            "sessionTarget": "isolated", "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}}))
        .await
        .unwrap();
    cl.call("cron.remove", json!({"id": template["id"]})).await.unwrap();
    drop(cl);
    c.gw.terminate().unwrap();
    let mut def = template.clone();
    for k in ["configRevision", "nextRunAtMs", "deliveryPreview", "state"] {
        def.as_object_mut().unwrap().remove(k);
    }
    let now = template["createdAtMs"].as_i64().unwrap();
    let seeded = std::time::Instant::now();
    let store = pincer_store::Store::open(&c.gw.state_dir.join("pincer.db")).unwrap();
    store
        .write_blocking(move |tx| {
            for i in 0..10_000 {
                let mut d = def.clone();
                d["id"] = json!(format!("job-{i:05}"));
                d["name"] = json!(format!("job {i:05}"));
                tx.insert_job(&pincer_store::JobRow {
                    id: format!("job-{i:05}"),
                    name: format!("job {i:05}"),
                    enabled: true,
                    job_json: d.to_string(),
                    state_json: json!({"nextRunAtMs": now + 86_400_000}).to_string(),
                    next_run_at_ms: Some(now + 86_400_000),
                    created_at_ms: now,
                    updated_at_ms: now,
                })?;
            }
            for i in 0..100_000 {
                let id = format!("d-{i:06}");
                tx.enqueue_delivery(&pincer_store::NewDelivery {
                    id: id.clone(),
                    idempotency_key: id.clone(),
                    origin_kind: pincer_protocol::state::OriginKind::Send,
                    origin_id: None,
                    channel: "telegram".into(),
                    account_id: None,
                    target: format!("{}", 1000 + i % 50),
                    thread_id: None,
                    max_attempts: 5,
                    best_effort: false,
                    body: format!("message {i}"),
                    parts: vec![(format!("message {i}"), format!("n{i}"))],
                    created_at_ms: now - 100_000 + i,
                })?;
                let (state, error, class) = if i % 10 == 0 {
                    (DeliveryState::Dead, Some("chat not found"), Some(DeliveryErrorClass::Target))
                } else {
                    (DeliveryState::Delivered, None, None)
                };
                tx.settle_delivery(&id, state, true, error, class, now)?;
            }
            Ok(())
        })
        .unwrap();
    store.close();
    eprintln!("seeded in {:?}", seeded.elapsed());
    c.gw.restart().unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn ten_thousand_jobs_and_a_hundred_thousand_deliveries_page_and_stay_responsive() {
    let mut c = Console::start(
        "large",
        json!({"channels": {"telegram": {"botToken": "1:x", "apiRoot": "http://127.0.0.1:9"}}}),
    )
    .await;
    let seeding = std::time::Instant::now();
    seed_large(&mut c).await;
    eprintln!("seeded and restarted in {:?}", seeding.elapsed());
    // What the gateway itself takes for each first page, beside what the page takes to show it.
    let mut cl = c.client().await;
    for method in ["cron.list", "deliveries.list"] {
        let started = std::time::Instant::now();
        cl.call(method, json!({"limit": 50})).await.unwrap();
        eprintln!(
            "console with 10,000 jobs and 100,000 deliveries: gateway answers {method}: {} ms",
            started.elapsed().as_millis()
        );
    }
    let c = &c;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    let timed = |what: &'static str, hash: &'static str, css: &'static str, text: &'static str| async move {
        let started = std::time::Instant::now();
        c.go(hash).await?;
        b.wait_for(css, text, WAIT).await?;
        anyhow::Ok((what, started.elapsed()))
    };
    let mut times = Vec::new();
    times.push(b.step("jobs", timed("jobs, first page", "#/jobs", ".pager .range", "1–50 of 10,000")).await.unwrap());
    let started = std::time::Instant::now();
    b.step("next page of jobs", async {
        b.click_on(".pager button", "Next").await?;
        b.wait_for(".pager .range", "51–100 of 10,000", WAIT).await
    })
    .await
    .unwrap();
    times.push(("jobs, next page", started.elapsed()));
    let started = std::time::Instant::now();
    b.step("search jobs", async {
        b.fill("#job-search", "job 09999").await?;
        b.wait_for(".pager .range", "1–1 of 1", WAIT).await
    })
    .await
    .unwrap();
    times.push(("jobs, search", started.elapsed()));
    times.push(
        b.step("deliveries", timed("deliveries, first page", "#/deliveries", ".pager .range", "1–50 of 100,000"))
            .await
            .unwrap(),
    );
    let started = std::time::Instant::now();
    b.step("dead deliveries", async {
        b.select("#d-state", "dead").await?;
        b.wait_for(".pager .range", "1–50 of 10,000", WAIT).await
    })
    .await
    .unwrap();
    times.push(("deliveries, filter dead", started.elapsed()));
    times.push(b.step("overview", timed("overview", "#/overview", "#health-stats", "10000")).await.unwrap());
    // The page's own main thread stayed free: no long task in the whole session.
    let rows = b.execute("return document.querySelectorAll('tbody tr').length", json!([])).await.unwrap();
    assert!(rows.as_i64().unwrap() <= 60, "the page never holds more than a page of rows: {rows}");
    // Bounds for the debug build the suite runs: `cron.list` reads and parses every job on each
    // call (about 3 s for 10,000 in a debug build), which dominates the jobs rows.
    for (what, took) in &times {
        eprintln!("console with 10,000 jobs and 100,000 deliveries: {what}: {} ms", took.as_millis());
        assert!(took.as_millis() < 12_000, "{what} took {took:?}");
    }
}

#[tokio::test]
#[ignore = "needs Chromium + chromedriver; run by `cargo xtask console`"]
async fn the_overview_paints_quickly_and_each_page_weighs_under_300_kb() {
    let c = Console::start("numbers", json!({})).await;
    let b = &c.b;
    b.step("sign in", c.sign_in()).await.unwrap();
    let n = b.step("measure", pincer_testkit::browser::measure_console(b, &c.page(), 5)).await.unwrap();
    let mut report = vec![
        format!("first contentful paint (median of 5 loads): {:.0} ms", n.first_contentful_paint_ms),
        format!(
            "first meaningful paint — the Overview shows the gateway's health (median of 5): {:.0} ms",
            n.first_meaningful_paint_ms
        ),
    ];
    for (name, bytes, requests) in &n.pages {
        report.push(format!("page weight, {name}: {:.1} KB in {requests} requests", *bytes as f64 / 1024.0));
        assert!(*bytes < 300 * 1024, "{name} weighs {bytes} bytes");
    }
    assert!(n.foreign.is_empty(), "requests to another origin: {:?}", n.foreign);
    let total: usize = pincer_gateway::console::ASSETS.iter().map(|a| a.body.len()).sum();
    report.push(format!("every console file together: {:.1} KB", total as f64 / 1024.0));
    let text = report.join("\n");
    eprintln!("{text}");
    let _ = std::fs::create_dir_all(shots());
    let _ = std::fs::write(shots().join("numbers.txt"), format!("{text}\n"));
    assert!(total < 300 * 1024, "all console files: {total} bytes");
    // This is the debug build on a shared test machine; `cargo xtask bench --only console`
    // measures the release build against the 200 ms target.
    assert!(n.first_meaningful_paint_ms < 1000.0, "{text}");
    c.quit().await;
}
