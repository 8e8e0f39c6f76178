//! OpenClaw's own Control UI (the browser app in the reference install, `dist/control-ui/`) in
//! headless Chromium against a Pincer gateway: its files are served by a static site on
//! 127.0.0.1 (listed in `gateway.controlUi.allowedOrigins`, so Pincer itself stays unbranded), the
//! link carries `gatewayUrl` and the token in its fragment, and the app is switched to Pincer as a
//! user switches it to any other gateway. Every WebSocket frame the page sends and receives is
//! recorded; a failing step prints the refused calls with the screenshot.

use std::path::PathBuf;
use std::time::Duration;

use pincer_testkit::browser::Browser;
use pincer_testkit::fakes::openai::{FakeOpenAi, Gate, Reply};
use pincer_testkit::fakes::static_site::StaticSite;
use pincer_testkit::process::GatewayProcess;
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::pincer_bin;

const WAIT: Duration = Duration::from_secs(20);

/// Records every frame of every WebSocket the page opens in `window.__frames` (`>` sent, `<`
/// received), installed before the app's own scripts run.
const FRAME_RECORDER: &str = r#"(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  function Recorded(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    const send = ws.send.bind(ws);
    ws.send = (data) => { window.__frames.push(">" + data); send(data); };
    ws.addEventListener("message", (e) => window.__frames.push("<" + e.data));
    return ws;
  }
  Recorded.prototype = Native.prototype;
  Object.assign(Recorded, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Recorded;
})();"#;

/// Records the page's uncaught errors and rejected promises in `window.__errors` (a throw while
/// the app draws leaves the chat blank: it is how a missing field of an answer shows).
const ERROR_RECORDER: &str = r#"(() => {
  window.__errors = [];
  const note = (what) => window.__errors.push(String(what && what.stack || what));
  addEventListener("error", (e) => note(e.error || e.message));
  addEventListener("unhandledrejection", (e) => note(e.reason));
})();"#;

/// The page's uncaught errors so far.
async fn page_errors(b: &Browser) -> anyhow::Result<Vec<String>> {
    let v = b.execute("return window.__errors || []", json!([])).await?;
    Ok(v.as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect())
}

/// The Control UI's files in the reference install (`PINCER_OPENCLAW_MJS` names its `openclaw.mjs`).
fn control_ui_dir() -> PathBuf {
    let mjs = std::env::var("PINCER_OPENCLAW_MJS")
        .expect("PINCER_OPENCLAW_MJS is not set: run the interop suite with `cargo xtask interop`");
    let dir = PathBuf::from(mjs).parent().unwrap().join("dist/control-ui");
    assert!(dir.join("index.html").is_file(), "no Control UI in the reference install at {}", dir.display());
    dir
}

fn shots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("console-shots")
}

/// The methods the page called that the gateway refused, as `method (params) → message`, each once.
async fn refusals(b: &Browser) -> anyhow::Result<Vec<String>> {
    let frames = b.execute("return window.__frames || []", json!([])).await?;
    let frames: Vec<Value> = frames
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().and_then(|s| serde_json::from_str(&s[1..]).ok()))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for res in frames.iter().filter(|f| f["type"] == "res" && f["ok"] == false) {
        let Some(req) = frames.iter().find(|f| f["type"] == "req" && f["id"] == res["id"]) else { continue };
        let line = format!(
            "{} {} → {}",
            req["method"].as_str().unwrap_or("?"),
            req["params"],
            res["error"]["message"].as_str().unwrap_or("?")
        );
        if !out.contains(&line) {
            out.push(line);
        }
    }
    Ok(out)
}

/// The calls the page made that the gateway answered `unknown method`: a page of OpenClaw's
/// must find every method it reads on Pincer.
async fn unknown_methods(b: &Browser) -> anyhow::Result<Vec<String>> {
    Ok(refusals(b).await?.into_iter().filter(|r| r.contains("unknown method")).collect())
}

/// The error banners on the page now (`.callout.danger` and `role=alert`), by their text.
async fn banners(b: &Browser) -> anyhow::Result<Vec<String>> {
    let v = b
        .execute(
            "return [...document.querySelectorAll('.callout.danger, [role=alert]')]
               .filter(e => e.offsetParent !== null && e.innerText.trim())
               .map(e => e.innerText.trim())",
            json!([]),
        )
        .await?;
    Ok(v.as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect())
}

/// Opens one of the app's pages the way its own links do (history navigation, no reload).
async fn open(b: &Browser, path: &str) -> anyhow::Result<()> {
    b.execute("history.pushState({}, '', arguments[0]); dispatchEvent(new PopStateEvent('popstate'));", json!([path]))
        .await?;
    Ok(())
}

/// Waits until the page shows `text` in its main area with no error banner but `allowed` ones.
async fn page_loads(b: &Browser, what: &str, text: &str, allowed: &[&str]) -> anyhow::Result<()> {
    if let Err(e) = b.wait_for("main", text, WAIT).await {
        let main = b.execute("return document.querySelector('main')?.innerText", json!([])).await?;
        return Err(e.context(format!(
            "the page shows {main}; calls the gateway refused so far:\n{}",
            refusals(b).await?.join("\n")
        )));
    }
    // The page's own requests settle within a moment of its content showing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shown: Vec<String> = banners(b).await?.into_iter().filter(|t| !allowed.iter().any(|a| t.contains(a))).collect();
    anyhow::ensure!(
        shown.is_empty(),
        "{what} shows error banners {shown:?}; calls the gateway refused so far:\n{}",
        refusals(b).await?.join("\n")
    );
    let unknown = unknown_methods(b).await?;
    anyhow::ensure!(
        unknown.is_empty(),
        "{what}: the page called methods Pincer does not know:\n{}",
        unknown.join("\n")
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the OpenClaw reference install and Chromium; run by `cargo xtask interop`"]
async fn openclaws_control_ui_drives_automations_sessions_devices_and_chat_on_pincer() {
    let site = StaticSite::start(&control_ui_dir()).await;
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(
        &pincer_bin(),
        dir.path(),
        json!({
            "gateway": {"controlUi": {"allowedOrigins": [site.origin()]}},
            "models": {"providers": {"openai": {"api": "openai-completions", "baseUrl": fake.base_url(), "apiKey": "sk-test", "models": [{"id": "gpt-4o"}]}}},
            "agents": {"defaults": {"model": {"primary": "openai/gpt-4o"}}},
        }),
    )
    .unwrap();
    let mut cl =
        RawClient::connect(&gw.url(), cli_connect_params(Some(&gw.token), &["operator.admin"])).await.unwrap().0;
    // The main session exists, as after any first conversation.
    fake.push(Reply::text("Hello, I am the agent."));
    cl.call("agent", json!({"message": "Hello", "sessionKey": "main", "idempotencyKey": "ui-seed"})).await.unwrap();

    let b = Browser::start("control-ui", &shots(), 1280, 900).await.unwrap();
    b.cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": FRAME_RECORDER})).await.unwrap();
    b.cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": ERROR_RECORDER})).await.unwrap();
    let link = format!(
        "{}/#gatewayUrl={}&token={}",
        site.origin(),
        urlencode(&format!("ws://127.0.0.1:{}", gw.port)),
        urlencode(&gw.token)
    );
    b.step("switch the app to Pincer", async {
        b.goto(&link).await?;
        b.click_on("button", &format!("Switch to 127.0.0.1:{}", gw.port)).await?;
        b.wait_for("body", "Connected", WAIT).await?;
        Ok(())
    })
    .await
    .unwrap();

    b.step("automations page", async {
        open(&b, "/automations").await?;
        page_loads(&b, "Automations", "New automation", &[]).await
    })
    .await
    .unwrap();
    fake.push(Reply::text("Made in the Control UI."));
    b.step("create and run a job from the page", async {
        b.click_on("button", "New automation").await?;
        b.fill("#cron-payload-text", "Say something for the Control UI test").await?;
        b.fill("#cron-name", "Control UI job").await?;
        b.click_on("button", "Create & run now").await?;
        b.wait_for("main", "Control UI job", WAIT).await?;
        Ok(())
    })
    .await
    .unwrap();
    let jobs = cl.call("cron.list", json!({})).await.unwrap();
    let job = jobs["jobs"].as_array().unwrap().iter().find(|j| j["name"] == "Control UI job").cloned();
    let job = job.unwrap_or_else(|| panic!("the page created no job: {jobs}"));
    assert_eq!(job["payload"]["message"], "Say something for the Control UI test", "{job}");
    let runs = crate::support::wait_runs(&mut cl, job["id"].as_str().unwrap(), 1).await;
    assert_eq!(runs[0]["status"], "ok", "the run the page started: {}", runs[0]);

    b.step("sessions page", async {
        open(&b, "/sessions").await?;
        page_loads(&b, "Sessions", "agent:main:main", &[]).await
    })
    .await
    .unwrap();
    b.step("agents page", async {
        open(&b, "/agents").await?;
        page_loads(&b, "Agents", "Who is on your team", &[]).await
    })
    .await
    .unwrap();
    b.step("activity page", async {
        open(&b, "/activity").await?;
        page_loads(&b, "Activity", "No recap yet", &[]).await
    })
    .await
    .unwrap();

    // The Devices page: its paired devices and the exec-approvals editor (`exec.approvals.get`).
    b.step("devices page", async {
        open(&b, "/settings/devices").await?;
        page_loads(&b, "Devices", "openclaw-control-ui", &[]).await
    })
    .await
    .unwrap();

    let gate = Gate::new();
    fake.push(Reply::paced("Streamed to OpenClaw's own chat view.", 3, &gate));
    // The app's start page is the main session's chat (its files are linked relative to `/`, so
    // a load starts there); it keeps the gateway and its device token across the load.
    b.step("chat page", async {
        b.goto(&format!("{}/", site.origin())).await?;
        page_loads(&b, "Chat", "Hello, I am the agent.", &[]).await
    })
    .await
    .unwrap();
    b.step("send a chat message and see the reply drawn as it streams", async {
        let input = b.wait_for("textarea[placeholder='Message main']", "", WAIT).await?;
        b.type_into(&input, "Stream me a reply").await?;
        b.keys("\u{E007}").await?;
        // Sent as `chat.send` and answered `started` (the reply waits on the gate).
        if let Err(e) = b
            .wait_until(
                "chat.send answered",
                "return window.__frames.some(f => f.startsWith('<') && f.includes('\"status\":\"started\"')) || null",
                WAIT,
            )
            .await
        {
            let frames = b.execute("return window.__frames.slice(-20)", json!([])).await?;
            return Err(e.context(format!("the last frames: {frames:#}")));
        }
        // The first piece is drawn while the rest is held back by the gate: drawn live, not
        // after the turn.
        gate.release(1);
        let first = b.wait_for("main", "Streamed to O", WAIT).await;
        let shown = b.page_text().await?;
        if let Err(e) = first {
            let frames = b.execute("return window.__frames.slice(-30)", json!([])).await?;
            return Err(e.context(format!("the last frames: {frames:#}")));
        }
        anyhow::ensure!(!shown.contains("chat view."), "the reply was drawn whole, not streamed: {shown}");
        // The user's own message stays on the page while the reply streams: the page reloads
        // the history on the message's `session.message`, which comes once the entry is stored.
        let main = b.execute("return document.querySelector('main').innerText", json!([])).await?;
        anyhow::ensure!(
            main.as_str().is_some_and(|t| t.contains("Stream me a reply")),
            "the sent message is not shown while the reply streams: {main}"
        );
        gate.release(2);
        b.wait_for("main", "Streamed to OpenClaw's own chat view.", WAIT).await?;
        let main = b.execute("return document.querySelector('main').innerText", json!([])).await?;
        anyhow::ensure!(
            main.as_str().is_some_and(|t| t.contains("Stream me a reply")),
            "the sent message is not shown after the reply: {main}"
        );
        Ok(())
    })
    .await
    .unwrap();
    let sent = fake.requests().last().unwrap().body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(sent["content"], "Stream me a reply");
    let errors = page_errors(&b).await.unwrap();
    assert!(errors.is_empty(), "the page threw: {errors:#?}");
    eprintln!("calls the Control UI made that Pincer refused:\n{}", refusals(&b).await.unwrap().join("\n"));
    let unknown = unknown_methods(&b).await.unwrap();
    assert!(unknown.is_empty(), "the Control UI called methods Pincer does not know:\n{}", unknown.join("\n"));
    b.quit().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}
