//! A real browser for the console's tests: Debian's headless Chromium driven by `chromedriver` over
//! the W3C WebDriver protocol (plain JSON over HTTP on 127.0.0.1), with a fresh profile per
//! browser. Only the dozen commands the tests use are here; a failing [`Browser::step`] saves a
//! screenshot and the page's text and names them in the error.
//!
//! `PINCER_CHROMEDRIVER` and `PINCER_CHROMIUM` override where the two programs are found
//! (default: `chromedriver` and `chromium` on `PATH`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One element of the page, as WebDriver names it.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A Chromium session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    killed: bool,
    _profile: tempfile::TempDir,
    /// Where failing steps leave their screenshots.
    pub shots: PathBuf,
    /// Prefix of this browser's screenshot names (the test's name).
    pub name: String,
}

/// The programs the browser tests need, or an error that says how to install them.
pub fn programs() -> anyhow::Result<(PathBuf, PathBuf)> {
    let find = |var: &str, name: &str| -> anyhow::Result<Option<PathBuf>> {
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            anyhow::ensure!(p.is_file(), "{var} names {}, which is not a file", p.display());
            return Ok(Some(p));
        }
        Ok(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(name))
            .find(|p| p.is_file()))
    };
    let driver = find("PINCER_CHROMEDRIVER", "chromedriver")?;
    let chromium = find("PINCER_CHROMIUM", "chromium")?;
    match (driver, chromium) {
        (Some(d), Some(c)) => Ok((d, c)),
        (d, c) => bail!(
            "the console's browser tests need {} on PATH: `apt-get install -y chromium chromium-driver` (Debian; \
             `.ci/run` does this), or set PINCER_CHROMIUM and PINCER_CHROMEDRIVER",
            match (d, c) {
                (None, None) => "Chromium and chromedriver",
                (None, _) => "chromedriver (Debian's chromium-driver)",
                _ => "Chromium",
            }
        ),
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, `width`×`height` pixels.
    /// Screenshots of failing steps go to `shots/<name>-<step>.png`.
    pub async fn start(name: &str, shots: &Path, width: u32, height: u32) -> anyhow::Result<Browser> {
        rustls::crypto::ring::default_provider().install_default().ok();
        let (chromedriver, chromium) = programs()?;
        let port = crate::process::free_port();
        use std::os::unix::process::CommandExt;
        // Its own process group: dropping the browser kills chromedriver and every Chromium
        // process it started, even when the test panicked before `quit`.
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", chromedriver.display()))?;
        let profile = tempfile::tempdir()?;
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
        let mut browser = Browser {
            http,
            base: format!("http://127.0.0.1:{port}"),
            driver,
            killed: false,
            _profile: profile,
            shots: shots.to_path_buf(),
            name: name.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = browser.http.get(format!("{}/status", browser.base)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not come up on port {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "timeouts": {"script": 30_000, "pageLoad": 30_000, "implicit": 0},
        }}});
        let session = browser.raw("POST", "/session", Some(caps)).await.context("creating a Chromium session")?;
        let id = session["sessionId"].as_str().ok_or_else(|| anyhow!("no session id: {session}"))?;
        browser.base = format!("{}/session/{id}", browser.base);
        Ok(browser)
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let res = req.send().await.with_context(|| format!("WebDriver {method} {path}"))?;
        let status = res.status();
        let v: Value = res.json().await.with_context(|| format!("WebDriver {method} {path}: not JSON"))?;
        if !status.is_success() {
            bail!(
                "WebDriver {method} {path}: {} — {}",
                v["value"]["error"].as_str().unwrap_or("error"),
                v["value"]["message"].as_str().unwrap_or("").lines().next().unwrap_or("")
            );
        }
        Ok(v["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.raw("POST", "/url", Some(json!({"url": url}))).await.map(|_| ())
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self.raw("GET", "/url", None).await?.as_str().unwrap_or_default().to_string())
    }

    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.raw("POST", "/refresh", None).await.map(|_| ())
    }

    /// The first element matching `css`, if any, now.
    pub async fn find(&self, css: &str) -> anyhow::Result<Option<Element>> {
        let found = self.raw("POST", "/elements", Some(json!({"using": "css selector", "value": css}))).await?;
        Ok(found.as_array().and_then(|a| a.first()).and_then(|e| e[ELEMENT].as_str()).map(|s| Element(s.into())))
    }

    /// Waits up to `timeout` for an element matching `css` whose text contains `text` (any text
    /// when empty), and returns it.
    pub async fn wait_for(&self, css: &str, text: &str, timeout: Duration) -> anyhow::Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.raw("POST", "/elements", Some(json!({"using": "css selector", "value": css}))).await?;
            for e in found.as_array().into_iter().flatten() {
                let el = Element(e[ELEMENT].as_str().unwrap_or_default().to_string());
                if text.is_empty() {
                    return Ok(el);
                }
                if let Ok(t) = self.text(&el).await
                    && t.contains(text)
                {
                    return Ok(el);
                }
            }
            if Instant::now() > deadline {
                let page = self.page_text().await.unwrap_or_default();
                bail!("no `{css}` containing {text:?} after {timeout:?}; the page says:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Waits until `script` (a function body returning a value) returns something truthy; returns it.
    pub async fn wait_until(&self, what: &str, script: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.execute(script, json!([])).await?;
            let truthy = !matches!(&v, Value::Null | Value::Bool(false))
                && v != json!(0)
                && v != json!("")
                && v.as_array().is_none_or(|a| !a.is_empty());
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let page = self.page_text().await.unwrap_or_default();
                bail!("{what}: not so after {timeout:?}; the page says:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    pub async fn click(&self, el: &Element) -> anyhow::Result<()> {
        self.raw("POST", &format!("/element/{}/click", el.0), None).await.map(|_| ())
    }

    /// Clicks the first `css` element containing `text` (waiting up to 10 s for it).
    /// An element the page redraws between finding and clicking (a live update) is found again.
    pub async fn click_on(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let el = self.wait_for(css, text, Duration::from_secs(10)).await?;
            match self.click(&el).await {
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    pub async fn clear(&self, el: &Element) -> anyhow::Result<()> {
        self.raw("POST", &format!("/element/{}/clear", el.0), None).await.map(|_| ())
    }

    pub async fn type_into(&self, el: &Element, text: &str) -> anyhow::Result<()> {
        self.raw("POST", &format!("/element/{}/value", el.0), Some(json!({"text": text}))).await.map(|_| ())
    }

    /// Replaces the value of the `css` field with `text`.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.wait_for(css, "", Duration::from_secs(10)).await?;
        self.clear(&el).await?;
        self.type_into(&el, text).await
    }

    /// Chooses the `<option>` with `value` in the select `css` (and fires `change`).
    pub async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.wait_for(css, "", Duration::from_secs(10)).await?;
        let done = self
            .execute(
                "const s = document.querySelector(arguments[0]); if (!s) return false; s.value = arguments[1]; \
                 s.dispatchEvent(new Event('change', {bubbles: true})); return s.value === arguments[1];",
                json!([css, value]),
            )
            .await?;
        anyhow::ensure!(done == true, "{css} has no option {value:?}");
        Ok(())
    }

    pub async fn text(&self, el: &Element) -> anyhow::Result<String> {
        Ok(self.raw("GET", &format!("/element/{}/text", el.0), None).await?.as_str().unwrap_or_default().to_string())
    }

    /// The visible text of the whole page.
    pub async fn page_text(&self) -> anyhow::Result<String> {
        Ok(self
            .execute("return document.body ? document.body.innerText : ''", json!([]))
            .await?
            .as_str()
            .unwrap_or_default()
            .into())
    }

    /// Presses keys (WebDriver key codes allowed, e.g. `\u{E007}` for Enter) on the focused element.
    pub async fn keys(&self, keys: &str) -> anyhow::Result<()> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]
            })
            .collect();
        self.raw("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})))
            .await?;
        self.raw("DELETE", "/actions", None).await.map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.raw("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Runs `script`, whose last argument is the callback to call with the result.
    pub async fn execute_async(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.raw("POST", "/execute/async", Some(json!({"script": script, "args": args}))).await
    }

    /// A Chrome DevTools command through chromedriver (e.g. `Emulation.setEmulatedMedia`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        self.raw("POST", "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params}))).await
    }

    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let b64 = self.raw("GET", "/screenshot", None).await?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default())?)
    }

    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.raw("POST", "/window/rect", Some(json!({"width": width, "height": height}))).await.map(|_| ())
    }

    /// Runs one named step of a flow. When it fails, a screenshot and the page's text are saved
    /// as `<shots>/<name>-<step>.png` / `.txt` and the error names them.
    pub async fn step<T>(&self, step: &str, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        match fut.await {
            Ok(v) => Ok(v),
            Err(e) => {
                let _ = std::fs::create_dir_all(&self.shots);
                let slug: String = format!("{}-{step}", self.name)
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                let png = self.shots.join(format!("{slug}.png"));
                let saved = match self.screenshot().await {
                    Ok(bytes) => std::fs::write(&png, bytes)
                        .map(|_| png.display().to_string())
                        .unwrap_or_else(|e| format!("(not saved: {e})")),
                    Err(e) => format!("(no screenshot: {e})"),
                };
                let txt = self.shots.join(format!("{slug}.txt"));
                let _ = std::fs::write(&txt, self.page_text().await.unwrap_or_default());
                Err(e.context(format!("step `{step}` failed; screenshot {saved}, page text {}", txt.display())))
            }
        }
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = self.raw("DELETE", "", None).await;
        self.kill_group();
    }

    fn kill_group(&mut self) {
        if self.killed {
            return; // Its pid may belong to someone else by now.
        }
        self.killed = true;
        // SAFETY: signals the process group this browser started (its leader is the driver).
        unsafe {
            libc::killpg(self.driver.id() as i32, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// What the console costs a returning visitor (device key and token already in the browser).
#[derive(Debug, Clone)]
pub struct ConsoleNumbers {
    /// Median `first-contentful-paint` of fresh loads of the Overview, in ms.
    pub first_contentful_paint_ms: f64,
    /// Median time until the Overview shows the gateway's health (its `pincer:overview-ready`
    /// mark): the first meaningful paint, in ms.
    pub first_meaningful_paint_ms: f64,
    /// Per page: its name, the bytes of the document and every file it loaded, and the requests.
    pub pages: Vec<(&'static str, u64, u64)>,
    /// Every request any page made to another origin than the gateway's (none, by design).
    pub foreign: Vec<String>,
}

/// The console's pages, with an element that shows each is on screen.
pub const CONSOLE_PAGES: [(&str, &str, &str); 9] = [
    ("overview", "#/overview", "#health-stats"),
    ("jobs", "#/jobs", "main h1"),
    ("deliveries", "#/deliveries", "main h1"),
    ("inbox", "#/inbox", "main h1"),
    ("sessions", "#/sessions", "main h1"),
    ("chat", "#/chat", "#chat-input"),
    ("approvals", "#/approvals", "#approvals-title"),
    ("devices", "#/devices", "tr[data-device]"),
    ("audit", "#/audit", "main table"),
];

/// Loads the console at `page` (`http://host:port/`, browser already signed in) `loads` times for
/// the paint times, then each page once for its weight, all through the Performance API.
pub async fn measure_console(b: &Browser, page: &str, loads: usize) -> anyhow::Result<ConsoleNumbers> {
    let wait = Duration::from_secs(15);
    let (mut fcp, mut fmp) = (Vec::new(), Vec::new());
    for _ in 0..loads.max(1) {
        b.goto("about:blank").await?;
        b.goto(page).await?;
        b.wait_for("#health-stats", "", wait).await?;
        let v = b
            .execute(
                "return [performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
                         performance.getEntriesByName('pincer:overview-ready')[0]?.startTime ?? null]",
                json!([]),
            )
            .await?;
        fcp.push(v[0].as_f64().ok_or_else(|| anyhow!("no first-contentful-paint entry"))?);
        fmp.push(v[1].as_f64().ok_or_else(|| anyhow!("no pincer:overview-ready mark"))?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let mut pages = Vec::new();
    let mut foreign = Vec::new();
    for (name, hash, ready) in CONSOLE_PAGES {
        b.goto("about:blank").await?;
        b.goto(&format!("{page}{hash}")).await?;
        b.wait_for(ready, "", wait).await?;
        // Served uncompressed: the decoded bodies are the bytes on the wire, less headers.
        let v = b
            .execute(
                "const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
                 return [entries.reduce((n, e) => n + (e.decodedBodySize || 0), 0), entries.length,
                         entries.map((e) => e.name).filter((u) => new URL(u).origin !== location.origin)];",
                json!([]),
            )
            .await?;
        pages.push((name, v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0)));
        foreign
            .extend(v[2].as_array().into_iter().flatten().filter_map(|u| u.as_str()).map(|u| format!("{name}: {u}")));
    }
    Ok(ConsoleNumbers {
        first_contentful_paint_ms: median(fcp),
        first_meaningful_paint_ms: median(fmp),
        pages,
        foreign,
    })
}
