//! The channel registry end to end: a gateway configured with every registered channel's minimal
//! config knows each of them everywhere — built, labelled in `health`, checked by `doctor` with
//! the adapter's own checks, accepted as a job's delivery channel — so adding a channel is its
//! file and its registration line, and nothing else can forget it.

use pincer_core::Config;
use pincer_delivery::channel::registry::{self, DoctorContext, REGISTRY};
use serde_json::{Value, json};

use crate::support::TestGateway;

/// `over` merged into `base`, objects key by key.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Every registered channel's minimal config in one.
fn all_channels_config() -> Config {
    let mut merged = json!({});
    for spec in REGISTRY {
        let config = Config::parse(spec.minimal_config, &|_: &str| None).unwrap();
        merge(&mut merged, serde_json::to_value(&config).unwrap());
    }
    Config::parse(&merged.to_string(), &|_: &str| None).unwrap()
}

#[tokio::test]
async fn every_registered_channel_is_known_to_health_doctor_and_job_validation() {
    let config = all_channels_config();
    let gw = TestGateway::start_with(&serde_json::to_string(&config).unwrap()).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let health = c.call("health", json!({})).await.unwrap();
    let doctor = c.call("doctor.run", json!({})).await.unwrap();
    let checks: Vec<&str> = doctor["findings"].as_array().unwrap().iter().filter_map(|f| f["check"].as_str()).collect();
    let state = &gw.gateway.as_ref().unwrap().state;
    for spec in REGISTRY {
        let name = spec.name;
        let order = health["channelOrder"].as_array().unwrap();
        assert!(order.iter().any(|c| c == name), "{name} is not in health: {health}");
        assert_eq!(health["channelLabels"][name], spec.label);
        assert_eq!(health["channels"][name]["configured"], true, "{name}");
        // doctor ran the checks the adapter declares (against its closed local port they fail,
        // which is beside the point here: they ran).
        let channel = state.outbox.channel(name).unwrap_or_else(|| panic!("{name} was not built"));
        let cx = DoctorContext { spec, channel: channel.as_ref(), config: &config, config_path: &gw.paths.config_path };
        for finding in (spec.doctor)(cx).await {
            assert!(checks.contains(&finding.check.as_str()), "doctor did not run {}: {doctor}", finding.check);
        }
        // A target in the channel's own syntax: `cron.add` refuses one every run would fail on.
        let to = match name {
            "discord" => "channel:123",
            "telegram" => "123456789",
            "slack" => "C0123",
            "webhook" => "https://example.com/hook",
            "inbox" => "default",
            other => panic!("give a valid target for the new channel {other} here"),
        };
        let job = c
            .call(
                "cron.add",
                json!({
                    "name": format!("to {name}"), "schedule": {"kind": "every", "everyMs": 3_600_000},
                    "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "hi"},
                    "delivery": {"mode": "announce", "channel": name, "to": to},
                }),
            )
            .await;
        assert!(job.is_ok(), "cron.add refused channel {name}: {job:?}");
    }
    // An unknown channel is refused naming every registered one.
    let refused = c
        .request(
            "cron.add",
            json!({
                "name": "to a pigeon", "schedule": {"kind": "every", "everyMs": 3_600_000},
                "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "hi"},
                "delivery": {"mode": "announce", "channel": "pigeon", "to": "x"},
            }),
        )
        .await
        .unwrap();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.ends_with(&format!("unknown channel \"pigeon\" (use {})", registry::names())), "{message}");
    assert!(REGISTRY.iter().all(|s| message.contains(s.name)), "{message}");
    gw.stop().await;
}
