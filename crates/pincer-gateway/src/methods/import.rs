//! `import.openclaw` (Pincer's): OpenClaw's paired devices through `pincer_auth`, then its run
//! history through `pincer_cron::api` — each adds only what is missing.

use pincer_protocol::schema::import::{self as wire, ImportOpenclawResult};

use crate::router::{Ctx, Methods};

pub fn register(methods: &mut Methods) {
    methods.add::<wire::ImportOpenclaw, _, _>(|c: Ctx, p| async move {
        let (devices_added, devices_present) =
            c.state.devices.import_openclaw(&super::devices::caller(&c), p.devices).await?;
        let (runs_added, runs_present) =
            pincer_cron::api::import_runs(&c.state.cron, p.runs).await.map_err(super::cron::error)?;
        Ok(ImportOpenclawResult { devices_added, devices_present, runs_added, runs_present })
    });
}
