//! `pincer dashboard`: prints — and opens, where a browser exists — the console's link with the
//! gateway token in the URL fragment (`#token=…`), as `openclaw dashboard` does. A fragment never
//! leaves the browser in a request, and the console removes it from the address bar once read.

use std::process::{ExitCode, Stdio};

use pincer_core::StatePaths;
use pincer_core::config::process_env;
use pincer_protocol::Scope;
use pincer_protocol::schema::Ignored;
use pincer_protocol::schema::system::Health;
use serde_json::json;

use crate::client::{ConnectArgs, Target, call_once};
use crate::output::print_json;

#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Print the link without opening a browser.
    #[arg(long)]
    pub no_open: bool,
    #[command(flatten)]
    pub c: ConnectArgs,
}

pub async fn run(args: DashboardArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(&args.c, paths, &process_env)?;
    // A link to a gateway that is not running helps nobody: say so now, in the usual words.
    call_once::<Health>(&target, &[Scope::Read], &Ignored).await?;
    let page = page_url(&target.url)?;
    let link = match &target.token {
        Some(token) => format!("{page}#token={}", percent_encode(token)),
        None => page.clone(),
    };
    if args.c.json {
        print_json(&json!({ "url": link, "consoleUrl": page, "tokenIncluded": target.token.is_some() }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("Console: {link}");
    if target.token.is_some() {
        println!(
            "The link holds the gateway token: open it in your own browser only. The console forgets it once signed in."
        );
    }
    if args.no_open {
        return Ok(ExitCode::SUCCESS);
    }
    match open_browser(&link) {
        Ok(true) => println!("Opened in your browser."),
        Ok(false) => {
            println!("No browser to open here (no display); open the link above in a browser on this machine.")
        }
        Err(e) => println!("Could not open a browser ({e}); open the link above yourself."),
    }
    Ok(ExitCode::SUCCESS)
}

/// The console's page for a gateway WebSocket URL: `ws://h:p` → `http://h:p/`, `wss` → `https`.
fn page_url(ws_url: &str) -> anyhow::Result<String> {
    let (scheme, rest) = ws_url
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("`{ws_url}` is not a gateway URL; use ws://host:port"))?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => anyhow::bail!("`{other}://` is not a gateway URL scheme; use ws:// or wss://"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Ok(format!("{scheme}://{authority}/"))
}

/// Everything but RFC 3986's unreserved characters, as `encodeURIComponent` would.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Hands the link to the desktop's browser. `Ok(false)` when there is no desktop to ask.
fn open_browser(link: &str) -> std::io::Result<bool> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        if !env("DISPLAY") && !env("WAYLAND_DISPLAY") {
            return Ok(false);
        }
        "xdg-open"
    };
    let status = std::process::Command::new(opener)
        .arg(link)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_the_gateways_page_with_the_token_in_the_fragment() {
        assert_eq!(page_url("ws://127.0.0.1:18789").unwrap(), "http://127.0.0.1:18789/");
        assert_eq!(page_url("wss://gw.example.net/some/path").unwrap(), "https://gw.example.net/");
        assert!(page_url("ftp://x").is_err());
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("a+b/c=&#"), "a%2Bb%2Fc%3D%26%23");
    }
}
