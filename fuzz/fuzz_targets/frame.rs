//! Inbound frame parsing: `parse_frame` on any text, as the gateway runs it on every WebSocket text
//! frame (and the CLI on every frame from the gateway), with the size check the gateway applies
//! before hello. A parsed frame serialises and parses back to itself; a request has a non-empty
//! id and method and its scope requirement resolves; an error answers with a serialisable frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pincer_protocol::{ErrorShape, Frame, MAX_PREAUTH_PAYLOAD, ResponseFrame, method_info, parse_frame};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The gateway only parses text frames, and refuses larger ones before hello (1009).
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _preauth_ok = text.len() <= MAX_PREAUTH_PAYLOAD;
    match parse_frame(text) {
        Ok(frame) => {
            let out = serde_json::to_string(&frame).expect("a parsed frame serialises");
            let again = parse_frame(&out).unwrap_or_else(|e| panic!("{out} does not parse back: {e}"));
            let (a, b) = (serde_json::to_value(&frame).unwrap(), serde_json::to_value(&again).unwrap());
            assert!(same(&a, &b), "round trip changed the frame:\n{a}\n{b}");
            if let Frame::Req(req) = &frame {
                assert!(!req.id.is_empty() && !req.method.is_empty());
                assert!(req.traceparent.as_ref().is_none_or(|t| t.len() <= 128));
                let _ = method_info(&req.method).required_scope(req.params.as_ref());
            }
        }
        Err(e) => {
            assert!(e.message.starts_with("invalid "), "{}", e.message);
            assert!(e.request_id.as_ref().is_none_or(|id| !id.is_empty()));
            let id = e.request_id.clone().unwrap_or_else(|| "invalid".into());
            let res = ResponseFrame::err(id, ErrorShape::invalid_request(format!("invalid request frame: {e}")));
            let out = serde_json::to_string(&Frame::Res(res)).expect("an error response serialises");
            assert!(matches!(parse_frame(&out), Ok(Frame::Res(_))), "{out}");
        }
    }
});

/// Equal, except that floats may differ in the last bit: serde_json's default float parser is not
/// correctly rounded (its `float_roundtrip` feature is), so `9601.407909000001` may come back as
/// `9601.407909`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}
