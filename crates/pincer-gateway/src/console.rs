//! The browser console: hand-written HTML, CSS and ES modules from `console/`, embedded in the
//! binary at compile time (`cargo build` is the whole build), served at `/` and `/console/*`.
//!
//! The console is a client like the CLI: it opens the WebSocket on `/`, signs the challenge with
//! its own device key and calls the same methods under the same scopes. Nothing here reads state.
//! Every page goes out under a strict Content-Security-Policy: scripts and styles from this origin
//! only, no inline script, connections to this origin only, never framed.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Path under `/console/` (`index.html` is also served at `/`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console.
pub static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "app.js" => JS,
    "gateway.js" => JS,
    "identity.js" => JS,
    "ui.js" => JS,
    "pages/overview.js" => JS,
    "pages/jobs.js" => JS,
    "pages/deliveries.js" => JS,
    "pages/inbox.js" => JS,
    "pages/sessions.js" => JS,
    "pages/chat.js" => JS,
    "pages/approvals.js" => JS,
    "pages/devices.js" => JS,
    "pages/audit.js" => JS,
    "vendor/noble-ed25519.js" => JS,
];

/// Strong validators, computed once: the files never change while the process runs.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The policy of the console's page. `connect-src 'self'` covers same-origin WebSockets in
/// current browsers; the explicit `ws(s)://host` is for those that predate CSP 3.
pub fn content_security_policy(host: Option<&str>) -> String {
    let own_sockets = host
        .filter(|h| {
            !h.is_empty() && h.len() <= 260 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'{own_sockets}; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// `GET /` without an upgrade: the console's page.
pub fn index(headers: &HeaderMap) -> Response {
    serve(0, headers)
}

/// `GET /console/{path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == path) {
        Some(i) => serve(i, &headers),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no console file named {path}\n"),
        )
            .into_response(),
    }
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        Response::builder().status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, asset.content_type)
            .body(Body::from(asset.body))
    }
    .expect("a valid response");
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex etag"));
    // Revalidate every time (a 304 on loopback costs nothing) so an upgraded gateway's files are
    // never mixed with the old ones.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if asset.content_type.starts_with("text/html") {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let csp = HeaderValue::from_str(&content_security_policy(host)).expect("a header-safe policy");
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
        h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_and_modules_name_is_embedded() {
        // Each `/console/...` reference and each relative module import must be a served file,
        // or the page breaks only in a browser.
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js") || a.path.ends_with(".html")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            let dir = asset.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for (i, _) in text.match_indices("/console/") {
                let rest = &text[i + "/console/".len()..];
                let name: String = rest.chars().take_while(|c| !matches!(c, '"' | '\'' | '`' | ' ' | ')')).collect();
                assert!(served.contains(&name.as_str()), "{} names /console/{name}, which is not embedded", asset.path);
            }
            for (i, _) in text.match_indices("from \"./").chain(text.match_indices("import(\"./")) {
                let rest = &text[i..];
                let start = rest.find("./").unwrap() + 2;
                let name: String = rest[start..].chars().take_while(|c| *c != '"').collect();
                let full = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                assert!(served.contains(&full.as_str()), "{} imports ./{name}, which is not embedded", asset.path);
            }
        }
    }

    #[test]
    fn no_page_polls_on_a_timer() {
        // Live updates come from the gateway's events; the only timers are the reconnect backoff,
        // request timeouts, toasts and typing debounces (all `setTimeout`, one shot).
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js") && !a.path.starts_with("vendor/")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            assert!(!text.contains("setInterval"), "{} polls with setInterval", asset.path);
        }
    }

    #[test]
    fn the_policy_allows_only_this_origin_and_never_a_hostile_host_header() {
        let csp = content_security_policy(Some("127.0.0.1:18789"));
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:18789 wss://127.0.0.1:18789;"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let hostile = content_security_policy(Some("x; script-src *"));
        assert!(hostile.contains("connect-src 'self';"), "a Host with policy syntax is dropped: {hostile}");
    }
}
