//! Golden tests: frames captured from OpenClaw 2026.9.6 parse into Pincer's types and serialise
//! back without losing a field.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::*;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Parses `value` as `T`, serialises it again and demands the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> T {
    let parsed: T = serde_json::from_value(value.clone()).expect("parses");
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(&back, value, "round trip lost or changed a field");
    parsed
}

fn frame(name: &str) -> (Value, Frame) {
    let value = load(name);
    let parsed = parse_frame(&value.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), value, "{name}: frame round trip");
    (value, parsed)
}

#[test]
fn every_captured_frame_round_trips() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut frames = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let value = load(&name);
        if value.get("type").is_some() && !name.contains("shape") {
            frame(&name);
            frames += 1;
        }
    }
    assert!(frames >= 13, "only {frames} frames found");
}

#[test]
fn challenge() {
    let (_, Frame::Event(ev)) = frame("01_connect.challenge.s2c.json") else { panic!() };
    assert_eq!(ev.event, "connect.challenge");
    let ch: ConnectChallenge = round_trip(ev.payload.as_ref().unwrap());
    assert_eq!(ch.ts, 1795681268593);
}

#[test]
fn connect_requests() {
    for name in [
        "02_connect.req.c2s.operator.read.json",
        "02b_connect.req.c2s.operator.admin.json",
        "13_connect.req.c2s.with-device-signature.json",
    ] {
        let (_, Frame::Req(req)) = frame(name) else { panic!() };
        assert_eq!(req.method, "connect");
        let params: ConnectParams = round_trip(req.params.as_ref().unwrap());
        assert_eq!(params.client.id, ClientId::Cli);
        assert_eq!(parse_connect_params(req.params.as_ref()).unwrap(), params);
    }
    let (_, Frame::Req(req)) = frame("13_connect.req.c2s.with-device-signature.json") else { panic!() };
    let params = parse_connect_params(req.params.as_ref()).unwrap();
    assert_eq!(params.device.unwrap().signed_at, 1795681358927);
}

#[test]
fn hello_ok_full() {
    let (_, Frame::Res(res)) = frame("03_hello-ok.res.s2c.full.json") else { panic!() };
    let hello: HelloOk = round_trip(res.payload.as_ref().unwrap());
    assert_eq!(hello.protocol, 4);
    assert_eq!(hello.policy.tick_interval_ms, 30_000);
    assert_eq!(hello.auth.scopes, ["operator.read"]);
    assert!(hello.features.methods.len() > 400);
    let auth: HelloAuth = round_trip(&load("14_hello-ok.auth.with-device.json"));
    assert_eq!(auth.device_token.as_deref(), Some("KqZM-6ROXnf3kj90YSm-4RwVYTrBhJ7CfHsNbfJUYIo"));
}

#[test]
fn error_responses() {
    for (name, code, detail) in [
        ("11_connect.res.NOT_PAIRED.not-paired.json", "NOT_PAIRED", "PAIRING_REQUIRED"),
        ("12_connect.res.NOT_PAIRED.scope-upgrade.json", "NOT_PAIRED", "PAIRING_REQUIRED"),
        ("15_connect.res.bad-token.json", "INVALID_REQUEST", "AUTH_TOKEN_MISMATCH"),
    ] {
        let (_, Frame::Res(res)) = frame(name) else { panic!() };
        let err: ErrorShape = round_trip(&serde_json::to_value(res.error.as_ref().unwrap()).unwrap());
        assert_eq!((err.code.as_str(), err.detail_code()), (code, Some(detail)));
    }
}

#[test]
fn requests_and_events() {
    let (_, Frame::Req(req)) = frame("04_req.health.c2s.json") else { panic!() };
    assert_eq!((req.method.as_str(), req.params.is_none()), ("health", true));
    let (_, Frame::Event(ev)) = frame("08_event.cron.s2c.json") else { panic!() };
    assert_eq!((ev.event.as_str(), ev.seq), ("cron", Some(1)));
    let (_, Frame::Req(req)) = frame("09_req.cron.list.c2s.json") else { panic!() };
    assert_eq!(req.params.unwrap()["limit"], 200);
}
