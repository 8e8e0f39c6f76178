//! `logs.tail`: bounded reads of the gateway's own log file, with OpenClaw's params, bounds and
//! answer (`openclaw logs` and `pincer logs` poll it with the cursor it returns); secrets are
//! masked in every line (`pincer_core::redact`).

use pincer_core::logfile;
use pincer_core::redact::Redactor;
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::system::{self as wire, LogsTailParams, LogsTailResult};
use pincer_protocol::schema::{Method, ParamsError};

use crate::router::{Ctx, Methods};

pub fn register(methods: &mut Methods) {
    methods.add::<wire::LogsTail, _, _>(|c: Ctx, p| async move { tail(&c, p).await });
}

async fn tail(c: &Ctx, p: LogsTailParams) -> Result<LogsTailResult, ErrorShape> {
    let invalid = |m: &str| ErrorShape::invalid_request(ParamsError::new(wire::LogsTail::NAME, m).0);
    let limit = p.limit.unwrap_or(logfile::DEFAULT_LIMIT as u64);
    if !(1..=logfile::MAX_LIMIT as u64).contains(&limit) {
        return Err(invalid("limit: must be 1..5000"));
    }
    let max_bytes = p.max_bytes.unwrap_or(logfile::DEFAULT_MAX_BYTES);
    if !(1..=logfile::MAX_BYTES).contains(&max_bytes) {
        return Err(invalid("maxBytes: must be 1..1000000"));
    }
    let config = c.state.config();
    let Some(path) = config.logging.file_path(&c.state.paths) else {
        return Err(ErrorShape::unavailable(
            "log read failed: logging.file is \"\" (no log file); set it to a path and restart the gateway",
        ));
    };
    // The secrets of the config in force: a reload that adds a token redacts it from then on.
    let redactor = Redactor::from_config(&config);
    tokio::task::spawn_blocking(move || logfile::tail_result(&path, p.cursor, limit as usize, max_bytes, &redactor))
        .await
        .map_err(|e| ErrorShape::unavailable(format!("log read failed: {e}")))?
        .map_err(|e| ErrorShape::unavailable(format!("log read failed: {e}")))
}
