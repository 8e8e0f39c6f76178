//! A static web site on 127.0.0.1: serves a directory's files (OpenClaw's built Control UI in the
//! interop suite), answering `index.html` for any path that is not a file, as a single-page app's
//! host does, so the app's own routes (`/automations`, `/chat/main`) load directly.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::webhook::harness::Server;

/// A running static site; dropping it stops the server.
pub struct StaticSite {
    server: Server,
}

impl StaticSite {
    /// Serves `root` (which must hold an `index.html`).
    pub async fn start(root: &Path) -> StaticSite {
        let root = Arc::new(root.to_path_buf());
        let router = Router::new().fallback(serve).with_state(root);
        StaticSite { server: Server::start(router).await }
    }

    /// `http://127.0.0.1:<port>`: the site's origin, as a browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

async fn serve(State(root): State<Arc<PathBuf>>, uri: Uri) -> Response {
    let rel = Path::new(uri.path().trim_start_matches('/'));
    // Only plain names below the root: no `..`, no absolute paths.
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_)));
    let file = Some(root.join(rel)).filter(|p| safe && p.is_file()).unwrap_or_else(|| root.join("index.html"));
    match tokio::fs::read(&file).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&file))], Body::from(bytes)).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{}: {e}", file.display())).into_response(),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
