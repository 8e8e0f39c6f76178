//! `config.get` and `config.schema` (OpenClaw's, with no secret in any answer) and
//! `config.reload` (Pincer's: the same reload as `SIGHUP` and the file watch).

use pincer_protocol::ErrorShape;
use pincer_protocol::schema::config::{self as wire, ConfigReloadResult, ConfigSchemaResult};
use sha2::{Digest, Sha256};

use crate::reload::{Reloaded, reload};
use crate::router::{Ctx, Methods};

pub fn register(methods: &mut Methods) {
    methods.add::<wire::ConfigGet, _, _>(|c: Ctx, _| async move {
        let running = c.state.config();
        let path = c.state.paths.config_path.clone();
        Ok(pincer_core::config_live::snapshot(&path, &pincer_core::config::process_env, Some(&running), |text| {
            Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        }))
    });
    methods.add::<wire::ConfigSchema, _, _>(|c: Ctx, _| async move {
        let (schema, ui_hints) = pincer_core::config_live::schema();
        Ok(ConfigSchemaResult {
            schema,
            ui_hints,
            version: crate::VERSION.into(),
            generated_at: pincer_protocol::schema::cron::format_iso_utc(c.state.clock.now_ms()).unwrap_or_default(),
            extra: Default::default(),
        })
    });
    methods.add::<wire::ConfigReload, _, _>(|c: Ctx, _| async move {
        let (changed, applied, restart_needed) = match reload(&c.state, "config.reload").await {
            Reloaded::Unchanged => (false, Vec::new(), c.state.config.status().restart_needed),
            Reloaded::Applied { applied, restart_needed } => (true, applied, restart_needed),
            Reloaded::Refused(reason) => {
                return Err(ErrorShape::invalid_request(format!(
                    "config reload refused, the gateway keeps running the configuration it had: {reason}"
                )));
            }
        };
        Ok(ConfigReloadResult { ok: true, changed, applied, restart_needed, extra: Default::default() })
    });
}
