//! The browser console, measured in headless Chromium over WebDriver against the release gateway:
//! the Overview's first contentful and first meaningful paint (the gateway's health on screen) on
//! loopback, and each page's weight. Skipped with a note when Chromium is not installed.
//! OpenClaw's Control UI is not measured here (it needs its own pairing flow; its build is 56 MB).

use super::{Bench, Row, start_pincer};
use pincer_testkit::browser::{Browser, measure_console, programs};

pub const SECTION: &str = "Console";

/// `chromium --version`, for the record.
pub fn chromium_version() -> String {
    programs()
        .ok()
        .and_then(|(_, chromium)| std::process::Command::new(chromium).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).split(" built").next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Chromium (version unknown)".into())
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    if let Err(e) = programs() {
        eprintln!("bench: console section skipped: {e}");
        return Ok(());
    }
    eprintln!("bench: console in headless Chromium (paint times, page weight)");
    let gw = start_pincer(&b.pincer, &b.dir("p-console"), serde_json::json!({}))?;
    let loads = if b.quick { 5 } else { 15 };
    let page = format!("http://127.0.0.1:{}/", gw.port);
    let link = format!("{page}#token={}", super::gateway::TOKEN);
    let shots = b.dir("console-shots");
    let numbers = Bench::runtime().block_on(async {
        let browser = Browser::start("bench", &shots, 1280, 900).await?;
        browser.goto(&link).await?;
        browser.wait_for("#conn", "Connected", std::time::Duration::from_secs(15)).await?;
        let n = measure_console(&browser, &page, loads).await;
        browser.quit().await;
        n
    })?;
    b.rows.push(
        Row::new(SECTION, "Overview: first contentful paint (loopback)", "ms")
            .pincer(numbers.first_contentful_paint_ms)
            .note("not measured"),
    );
    b.rows.push(
        Row::new(SECTION, "Overview: first meaningful paint (health on screen)", "ms")
            .pincer(numbers.first_meaningful_paint_ms)
            .target("< 200 ms")
            .note("not measured"),
    );
    for (name, bytes, _) in numbers.pages {
        let metric = match name {
            "overview" => "Page weight: overview",
            "jobs" => "Page weight: jobs",
            "deliveries" => "Page weight: deliveries",
            "inbox" => "Page weight: inbox",
            "sessions" => "Page weight: sessions",
            "chat" => "Page weight: chat",
            "approvals" => "Page weight: approvals",
            "devices" => "Page weight: devices",
            _ => "Page weight: audit log",
        };
        b.rows.push(
            Row::new(SECTION, metric, "KB").pincer(bytes as f64 / 1024.0).target("< 300 KB").note("not measured"),
        );
    }
    Ok(())
}
