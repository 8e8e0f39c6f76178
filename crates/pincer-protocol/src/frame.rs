//! The three frame kinds (`req`, `res`, `event`) and their strict parser.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

    #[test]
    fn round_trips_a_request() {
        let text = r#"{"type":"req","id":"1:abc","method":"cron.list","params":{"limit":200}}"#;
        let frame = parse_frame(text).unwrap();
        assert_eq!(serde_json::to_string(&frame).unwrap(), text);
    }
}
