//! `cron.*` and `wake`: thin adapters over `pincer_cron::api`.

use pincer_cron::CronError;
use pincer_cron::api;
use pincer_protocol::{ErrorShape, detail_code};
use serde_json::{Value, json};

use crate::router::{Call, MethodResult, Methods};

/// Maps scheduler errors to OpenClaw's error shapes.
pub fn error(e: CronError) -> ErrorShape {
    match e {
        CronError::NotFound(id) => ErrorShape::invalid_request(format!("Automation not found: {id}"))
            .with_details(json!({ "code": detail_code::CRON_JOB_NOT_FOUND, "jobId": id })),
        CronError::Invalid(m) => ErrorShape::invalid_request(m),
        CronError::Changed { current } => ErrorShape::invalid_request(format!(
            "the job changed since you read it; fetch it again (configRevision {current})"
        ))
        .with_details(json!({ "code": "CRON_JOB_CHANGED", "currentConfigRevision": current })),
        e @ (CronError::Store(_) | CronError::Stopped | CronError::Unavailable(_)) => {
            ErrorShape::unavailable(e.to_string())
        }
    }
}

fn params(call: &Call) -> Value {
    call.params.clone().unwrap_or(Value::Null)
}

pub fn register(methods: &mut Methods) {
    methods.add("cron.status", |c: Call| async move { api::status(&c.state.cron).await.map_err(error) });
    methods.add("cron.list", |c: Call| async move { api::list(&c.state.cron, &params(&c)).await.map_err(error) });
    methods.add("cron.get", |c: Call| async move { api::get(&c.state.cron, &params(&c)).await.map_err(error) });
    methods.add("cron.preview", |c: Call| async move { api::preview(&c.state.cron, &params(&c)).await.map_err(error) });
    methods.add("cron.add", |c: Call| async move { api::add(&c.state.cron, &params(&c)).await.map_err(error) });
    methods.add("cron.update", |c: Call| async move { api::update(&c.state.cron, &params(&c)).await.map_err(error) });
    methods.add("cron.remove", |c: Call| async move { api::remove(&c.state.cron, &params(&c)).await.map_err(error) });
    methods.add("cron.run", |c: Call| async move { run(c).await });
    methods.add("cron.runs", |c: Call| async move { api::runs(&c.state.cron, &params(&c)).await.map_err(error) });
}

async fn run(c: Call) -> MethodResult {
    api::run(&c.state.cron, &params(&c), &c.state.boot_id).await.map_err(error)
}
