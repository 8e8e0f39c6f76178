//! Config loading: JSON5 text through `Config::parse` (`${ENV}` expansion with a fake environment,
//! the closed schema, validation), then what the gateway derives from an accepted config at start:
//! the default time zone and the durations. An accepted config serialises and parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pincer_core::Config;
use pincer_core::config::Retention;
use pincer_core::duration::parse_duration_ms;

/// Variables named `SET…` (and `HOME`) exist; every other name is unset.
fn env(name: &str) -> Option<String> {
    (name.starts_with("SET") || name == "HOME").then(|| format!("value-of-{name}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = match Config::parse(text, &env) {
        Ok(config) => config,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };
    if let Some(tz) = &config.agents.defaults.timezone {
        let _ = pincer_cron::schedule::validate_tz(tz);
    }
    parse_duration_ms(&config.agents.defaults.heartbeat.every, None).expect("validated");
    parse_duration_ms(&config.cron.run_retention.max_age, None).expect("validated");
    if let Retention::Duration(d) = &config.cron.session_retention {
        parse_duration_ms(d, Some(3_600_000)).expect("validated");
    }
    for channel in ["discord", "telegram", "slack", "webhook", "inbox"] {
        assert!(config.delivery.rate_limit(channel, 0.0) >= 0.0);
    }
    let _ = config.token();
    // Round trip, unless a string holds `${`, which the writer does not escape.
    let json = serde_json::to_string(&config).expect("a config serialises");
    if !json.contains("${") {
        let back = Config::parse(&json, &env).unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
        assert_eq!(back, config, "round trip changed the config");
    }
});
