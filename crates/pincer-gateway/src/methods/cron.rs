//! `cron.*`: thin adapters over `pincer_cron::api`.

use pincer_cron::CronError;
use pincer_cron::api;
use pincer_protocol::schema::cron as wire;
use pincer_protocol::{ErrorShape, detail_code};
use serde_json::json;

use crate::router::{Ctx, Methods};

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

/// `cron.get` words not-found as OpenClaw's `cron.get` does: the stock CLI's `cron show <name>`
/// falls back to a lookup by name only on `cron job not found: <id>` (OpenClaw's other cron
/// methods say `Automation not found`).
fn get_error(e: CronError) -> ErrorShape {
    match e {
        CronError::NotFound(id) => ErrorShape::invalid_request(format!(
            "cron job not found: {id}. List automations and retry with a current job id."
        ))
        .with_details(json!({ "code": detail_code::CRON_JOB_NOT_FOUND, "jobId": id })),
        e => error(e),
    }
}

pub fn register(methods: &mut Methods) {
    methods.add::<wire::Status, _, _>(|c: Ctx, _| async move { api::status(&c.state.cron).await.map_err(error) });
    methods.add::<wire::List, _, _>(|c: Ctx, p| async move { api::list(&c.state.cron, p).await.map_err(error) });
    methods.add::<wire::Get, _, _>(|c: Ctx, p| async move { api::get(&c.state.cron, p).await.map_err(get_error) });
    methods
        .add::<wire::Preview, _, _>(|c: Ctx, p| async move { api::preview_job(&c.state.cron, p).await.map_err(error) });
    methods.add::<wire::Add, _, _>(|c: Ctx, p| async move { api::add(&c.state.cron, p).await.map_err(error) });
    methods.add::<wire::Update, _, _>(|c: Ctx, p| async move { api::update(&c.state.cron, p).await.map_err(error) });
    methods.add::<wire::Remove, _, _>(|c: Ctx, p| async move { api::remove(&c.state.cron, p).await.map_err(error) });
    methods.add::<wire::Run, _, _>(|c: Ctx, p| async move {
        api::run(&c.state.cron, p, &c.state.boot_id).await.map_err(error)
    });
    methods.add::<wire::Runs, _, _>(|c: Ctx, p| async move { api::runs(&c.state.cron, p).await.map_err(error) });
    methods.add::<wire::ScratchGet, _, _>(|c: Ctx, p| async move {
        api::scratch_get(&c.state.cron, p).await.map_err(error)
    });
    methods.add::<wire::ScratchSet, _, _>(|c: Ctx, p| async move {
        api::scratch_set(&c.state.cron, p).await.map_err(error)
    });
}
