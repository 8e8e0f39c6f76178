//! The three frame kinds (`req`, `res`, `event`) and their strict parser, and the two halves of
//! the answer path that skip `serde_json::Value`: [`ok_response_text`] (the gateway writes a typed
//! result straight into the frame text) and [`parse_response`] (the client leaves the payload as
//! raw text and decodes its typed result from it). Building a `Value` of a large answer — every
//! key hashed into an ordered map — cost more than the rest of the answer path.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ErrorShape;

/// One WebSocket text frame, discriminated by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Frame {
    Req(RequestFrame),
    Res(ResponseFrame),
    Event(EventFrame),
}

/// A client request. The schema is closed: unknown properties are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestFrame {
    pub id: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_profile_id: Option<String>,
}

/// The answer to one request, matched by `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseFrame {
    pub id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorShape>,
}

impl ResponseFrame {
    pub fn ok(id: impl Into<String>, payload: Value) -> Self {
        ResponseFrame { id: id.into(), ok: true, payload: Some(payload), error: None }
    }
    pub fn err(id: impl Into<String>, error: ErrorShape) -> Self {
        ResponseFrame { id: id.into(), ok: false, payload: None, error: Some(error) }
    }
}

/// The text of an `ok` `res` frame around `payload`, already serialised: byte for byte what
/// serialising `Frame::Res(ResponseFrame::ok(id, payload))` writes (the same keys in the same
/// order), without parsing the payload into a `Value` first.
pub fn ok_response_text(id: &str, payload: &RawValue) -> String {
    let payload = payload.get();
    let mut text = String::with_capacity(payload.len() + id.len() + 48);
    text.push_str(r#"{"type":"res","id":"#);
    text.push_str(&serde_json::to_string(id).expect("a string serialises"));
    text.push_str(r#","ok":true,"payload":"#);
    text.push_str(payload);
    text.push('}');
    text
}

/// A `res` frame as the client reads it: the envelope parsed, the payload kept as JSON text for
/// the caller to decode into its typed result.
#[derive(Debug)]
pub struct RawResponseFrame {
    pub id: String,
    pub ok: bool,
    /// `None` when absent or `null`, as in [`ResponseFrame`].
    pub payload: Option<Box<RawValue>>,
    pub error: Option<ErrorShape>,
}

impl From<ResponseFrame> for RawResponseFrame {
    /// A response parsed whole (by [`parse_frame`]), its payload written back to text.
    fn from(res: ResponseFrame) -> RawResponseFrame {
        let payload = res
            .payload
            .filter(|p| !p.is_null())
            .map(|p| serde_json::value::to_raw_value(&p).expect("a JSON value serialises"));
        RawResponseFrame { id: res.id, ok: res.ok, payload, error: res.error }
    }
}

/// Every field any frame kind carries that a response reader needs; the rest are skipped.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    ok: Option<bool>,
    payload: Option<Box<RawValue>>,
    error: Option<ErrorShape>,
}

/// Reads one text frame as a `res` frame with its payload left raw: `Ok(None)` when it is not a
/// well-formed `res` envelope, so the caller parses it with [`parse_frame`] instead (an event, a
/// request, or a broken frame, which `parse_frame` explains).
pub fn parse_response(text: &str) -> Result<Option<RawResponseFrame>, FrameError> {
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else { return Ok(None) };
    if envelope.kind.as_deref() != Some("res") {
        return Ok(None);
    }
    let missing = |message: &str| FrameError { request_id: None, message: message.to_string() };
    let id = envelope.id.ok_or_else(|| missing("invalid res frame: missing field `id`"))?;
    let ok = envelope.ok.ok_or_else(|| missing("invalid res frame: missing field `ok`"))?;
    Ok(Some(RawResponseFrame { id, ok, payload: envelope.payload, error: envelope.error }))
}

/// A server-pushed event. `seq` counts events per connection, starting at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFrame {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<StateVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_profile_id: Option<String>,
}

/// Versions of the presence and health snapshots, carried by some events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// Why a text frame could not be read as a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The request id, when the frame was recognisably a request, so the error can be answered.
    pub request_id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FrameError {}

/// Parses one text frame strictly: valid JSON, an object, a known `type`, and a closed schema.
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError { request_id: None, message: format!("invalid frame: malformed JSON: {e}") })?;
    let Value::Object(map) = &value else {
        return Err(FrameError { request_id: None, message: "invalid frame: expected a JSON object".into() });
    };
    let request_id = match (map.get("type"), map.get("id")) {
        (Some(Value::String(t)), Some(Value::String(id))) if t == "req" && !id.is_empty() => Some(id.clone()),
        _ => None,
    };
    let kind = match map.get("type") {
        Some(Value::String(t)) if matches!(t.as_str(), "req" | "res" | "event") => t.clone(),
        Some(Value::String(t)) => {
            return Err(FrameError { request_id, message: format!("invalid frame: unknown type `{t}`") });
        }
        _ => return Err(FrameError { request_id, message: "invalid frame: missing string field `type`".into() }),
    };
    let frame: Frame = serde_json::from_value(value)
        .map_err(|e| FrameError { request_id: request_id.clone(), message: format!("invalid {kind} frame: {e}") })?;
    if let Frame::Req(req) = &frame {
        if req.id.is_empty() {
            return Err(FrameError { request_id: None, message: "invalid req frame: `id` must be non-empty".into() });
        }
        if req.method.is_empty() {
            return Err(FrameError { request_id, message: "invalid req frame: `method` must be non-empty".into() });
        }
        if req.traceparent.as_ref().is_some_and(|t| t.len() > 128) {
            return Err(FrameError { request_id, message: "invalid req frame: `traceparent` longer than 128".into() });
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn err(text: &str) -> String {
        let e = parse_frame(text).unwrap_err();
        format!("{:?} {}", e.request_id, e.message)
    }

    #[test]
    fn rejects_bad_frames_with_reasons() {
        expect!["None invalid frame: malformed JSON: expected ident at line 1 column 2"].assert_eq(&err("nope"));
        expect![[r#"None invalid frame: expected a JSON object"#]].assert_eq(&err("[1]"));
        expect![[r#"None invalid frame: unknown type `bogus`"#]].assert_eq(&err(r#"{"type":"bogus"}"#));
        expect![[r#"Some("7") invalid req frame: unknown field `extra`, expected one of `id`, `method`, `params`, `traceparent`, `expectedProfileId`"#]]
            .assert_eq(&err(r#"{"type":"req","id":"7","method":"health","extra":1}"#));
        expect![[r#"Some("7") invalid req frame: invalid type: integer `5`, expected a string"#]]
            .assert_eq(&err(r#"{"type":"req","id":"7","method":5}"#));
        expect![[r#"None invalid req frame: `id` must be non-empty"#]]
            .assert_eq(&err(r#"{"type":"req","id":"","method":"x"}"#));
    }

    /// The frame written around a payload serialised straight from its type is byte for byte the
    /// frame the gateway wrote when the payload went through a `Value` first.
    #[test]
    fn a_response_written_straight_is_the_frame_its_value_gave() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            jobs: Vec<Value>,
            next_cursor: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            absent: Option<u8>,
            by_id: indexmap::IndexMap<String, (i64, u64, f64)>,
            #[serde(flatten)]
            extra: serde_json::Map<String, Value>,
        }
        let page = Page {
            jobs: vec![
                serde_json::json!({"name": "Zürich ☕ — 東京 🦀", "z": 1, "a": [true, null]}),
                serde_json::json!({"text": "quote \" backslash \\ tab \t nl \n cr \r nul \u{0} bell \u{7} del \u{7f}"}),
                serde_json::json!({"html": "</script><!-- & ' \u{2028} \u{2029}"}),
            ],
            next_cursor: None,
            absent: None,
            by_id: [("b".to_string(), (i64::MIN, u64::MAX, 0.1)), ("a".to_string(), (-1, 0, 1e300))].into(),
            extra: serde_json::json!({"zExtra": {"y": 2, "x": 1}, "aExtra": "é"}).as_object().unwrap().clone(),
        };
        for id in ["1", "7:0f7c-é", "quote\"and\\slash\n"] {
            let old = serde_json::to_string(&Frame::Res(ResponseFrame::ok(id, serde_json::to_value(&page).unwrap())));
            let raw = serde_json::value::to_raw_value(&page).unwrap();
            assert_eq!(ok_response_text(id, &raw), old.unwrap());
        }
        let empty = serde_json::value::to_raw_value(&serde_json::json!({})).unwrap();
        assert_eq!(ok_response_text("2", &empty), r#"{"type":"res","id":"2","ok":true,"payload":{}}"#);
    }

    /// A response's payload comes back as the exact text the gateway wrote; anything that is not a
    /// `res` envelope is left to `parse_frame`.
    #[test]
    fn a_response_is_read_with_its_payload_left_as_text() {
        let payload = r#"{"jobs":[{"name":"Zürich \"q\"","n":1.50}],"total":1}"#;
        let text = format!(r#"{{"type":"res","id":"3:x","ok":true,"payload":{payload}}}"#);
        let res = parse_response(&text).unwrap().unwrap();
        assert_eq!((res.id.as_str(), res.ok, res.payload.as_deref().map(RawValue::get)), ("3:x", true, Some(payload)));
        let null = parse_response(r#"{"type":"res","id":"4","ok":true,"payload":null}"#).unwrap().unwrap();
        assert!(null.payload.is_none());
        let failed =
            parse_response(r#"{"type":"res","id":"5","ok":false,"error":{"code":"INVALID_REQUEST","message":"no"}}"#)
                .unwrap()
                .unwrap();
        assert_eq!((failed.ok, failed.error.map(|e| e.message)), (false, Some("no".to_string())));
        for other in [
            r#"{"type":"event","event":"tick","payload":{"ts":1},"seq":1}"#,
            r#"{"type":"req","id":"1","method":"health"}"#,
            r#"{"type":"res","id":5,"ok":true}"#,
            "nope",
        ] {
            assert!(parse_response(other).unwrap().is_none(), "{other}");
        }
        expect!["invalid res frame: missing field `ok`"]
            .assert_eq(&parse_response(r#"{"type":"res","id":"6"}"#).unwrap_err().message);
        // The frames parse_frame reads whole convert to the same raw response.
        let whole = match parse_frame(&text).unwrap() {
            Frame::Res(res) => RawResponseFrame::from(res),
            other => panic!("{other:?}"),
        };
        let reparsed: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(whole.payload.as_deref().map(RawValue::get), Some(reparsed.to_string().as_str()));
    }

    #[test]
    fn round_trips_a_request() {
        let text = r#"{"type":"req","id":"1:abc","method":"cron.list","params":{"limit":200}}"#;
        let frame = parse_frame(text).unwrap();
        assert_eq!(serde_json::to_string(&frame).unwrap(), text);
    }
}
