//! Bad input at every boundary, table-driven: malformed frames and method params over a real
//! WebSocket, bad arguments to the real `pincer` binary, and bad `pincer.json` contents. Each row
//! gets its error (code and a message fragment); nothing panics, nothing hangs, and the gateway
//! still answers `health` after every row. `protocol.rs` holds the rows of the handshake itself
//! (malformed JSON, first frame not `connect`, oversize frames, bad tokens, closed enums); none of
//! them are repeated here.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pincer_testkit::process::{GatewayProcess, free_port};
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::{Value, json};

use crate::support::{TOKEN, TestGateway, pincer_bin};

/// Longest any row may take before it counts as a hang.
const ROW_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Protocol: frames and params after `hello-ok`.

enum Input {
    /// A raw text frame.
    Text(String),
    Binary(Vec<u8>),
    /// A well-formed request with these params.
    Call(String, Value),
}

enum Want {
    /// An error response: its id (`None`: the request's own), code and a message fragment.
    Error { id: Option<String>, code: &'static str, fragment: String },
    /// A success, optionally with `payload[pointer] == value`.
    Ok(Option<(&'static str, Value)>),
    /// No answer at all: a client's `res` and `event` frames are dropped.
    Ignored,
}

struct Row {
    name: String,
    input: Input,
    want: Want,
}

fn row(name: impl Into<String>, input: Input, want: Want) -> Row {
    Row { name: name.into(), input, want }
}

/// `INVALID_REQUEST` with `fragment`, answered to the request's own id.
fn invalid(fragment: impl Into<String>) -> Want {
    Want::Error { id: None, code: "INVALID_REQUEST", fragment: fragment.into() }
}

/// `INVALID_REQUEST invalid request frame: …` answered to `id` (`invalid` when the frame had none).
fn bad_frame(id: &str, fragment: impl Into<String>) -> Want {
    Want::Error { id: Some(id.into()), code: "INVALID_REQUEST", fragment: fragment.into() }
}

fn text(s: impl Into<String>) -> Input {
    Input::Text(s.into())
}

fn call(method: impl Into<String>, params: Value) -> Input {
    Input::Call(method.into(), params)
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

const DEVICE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Methods that take no params (and ignore what they are given). Every other implemented method
/// has a closed object of params: any other JSON type is refused, naming the method.
const METHODS_WITHOUT_PARAMS: &[&str] = &["health", "status", "cron.status", "doctor.run"];

/// `methods`: every method the gateway implements.
fn protocol_rows(job: &str, methods: &[String]) -> Vec<Row> {
    let every = |ms: Value| json!({"schedule": {"kind": "every", "everyMs": ms}, "payload": {"kind": "command", "argv": ["true"]}});
    let cron = |expr: &str, tz: &str| json!({"schedule": {"kind": "cron", "expr": expr, "tz": tz}, "payload": {"kind": "command", "argv": ["true"]}});
    let with = |mut base: Value, key: &str, value: Value| {
        base[key] = value;
        base
    };
    let add = every(json!(3_600_000));
    let long = "x".repeat(100_000);
    let mut rows = vec![
        // Frames that are not requests.
        row("binary frame", Input::Binary(vec![0xff, 0, 1]), bad_frame("invalid", "binary frames are not supported")),
        row("empty text frame", text(""), bad_frame("invalid", "malformed JSON: EOF while parsing")),
        row("whitespace only", text("  \n\t "), bad_frame("invalid", "malformed JSON: EOF while parsing")),
        row("a JSON array", text("[1,2]"), bad_frame("invalid", "expected a JSON object")),
        row("a JSON string", text(r#""health""#), bad_frame("invalid", "expected a JSON object")),
        row("JSON null", text("null"), bad_frame("invalid", "expected a JSON object")),
        row("no type", text(r#"{"id":"t1","method":"health"}"#), bad_frame("invalid", "missing string field `type`")),
        row(
            "type of the wrong case",
            text(r#"{"type":"REQ","id":"t2","method":"health"}"#),
            bad_frame("invalid", "unknown type `REQ`"),
        ),
        row(
            "type not a string",
            text(r#"{"type":1,"id":"t3","method":"health"}"#),
            bad_frame("invalid", "missing string field `type`"),
        ),
        row(
            "trailing garbage",
            text(r#"{"type":"req","id":"t4","method":"health"} x"#),
            bad_frame("invalid", "trailing characters"),
        ),
        row("a client's res frame", text(r#"{"type":"res","id":"r","ok":true}"#), Want::Ignored),
        row("a client's event frame", text(r#"{"type":"event","event":"tick","payload":{}}"#), Want::Ignored),
        // Ids.
        row("missing id", text(r#"{"type":"req","method":"health"}"#), bad_frame("invalid", "missing field `id`")),
        row(
            "empty id",
            text(r#"{"type":"req","id":"","method":"health"}"#),
            bad_frame("invalid", "`id` must be non-empty"),
        ),
        row(
            "numeric id",
            text(r#"{"type":"req","id":7,"method":"health"}"#),
            bad_frame("invalid", "invalid type: integer `7`, expected a string"),
        ),
        row(
            "null id",
            text(r#"{"type":"req","id":null,"method":"health"}"#),
            bad_frame("invalid", "invalid type: null, expected a string"),
        ),
        row(
            "a 60 KB id is echoed",
            text(json!({"type": "req", "id": "i".repeat(60_000), "method": "health"}).to_string()),
            Want::Ok(None),
        ),
        row(
            "duplicate id keys: the last wins",
            text(r#"{"type":"req","id":"first","id":"last","method":"health"}"#),
            Want::Ok(None),
        ),
        // Methods.
        row("missing method", text(r#"{"type":"req","id":"m1"}"#), bad_frame("m1", "missing field `method`")),
        row(
            "empty method",
            text(r#"{"type":"req","id":"m2","method":""}"#),
            bad_frame("m2", "`method` must be non-empty"),
        ),
        row("method of 10,000 characters", call("m".repeat(10_000), json!({})), invalid("unknown method: mmm")),
        row("method with a NUL", call("health\u{0}", json!({})), invalid("unknown method: health\u{0}")),
        row("method in other case", call("HEALTH", json!({})), invalid("unknown method: HEALTH")),
        row(
            "connect after hello",
            call("connect", cli_connect_params(Some(TOKEN), &[])),
            invalid("connect is only valid as the first request"),
        ),
        row(
            "traceparent longer than 128",
            text(json!({"type": "req", "id": "tp", "method": "health", "traceparent": "0".repeat(129)}).to_string()),
            bad_frame("tp", "`traceparent` longer than 128"),
        ),
        row(
            "expectedProfileId of the wrong type",
            text(r#"{"type":"req","id":"ep","method":"health","expectedProfileId":5}"#),
            bad_frame("ep", "invalid type: integer `5`, expected a string"),
        ),
        // Nesting and numbers JSON cannot carry.
        row(
            "params nested 200 deep",
            text(format!(r#"{{"type":"req","id":"deep","method":"cron.list","params":{}}}"#, nested(200, "1"))),
            bad_frame("invalid", "recursion limit exceeded"),
        ),
        row(
            "a param nested 100 deep",
            text(format!(
                r#"{{"type":"req","id":"deep2","method":"cron.list","params":{{"query":{}}}}}"#,
                nested(100, "1")
            )),
            bad_frame("deep2", "invalid cron.list params: query: invalid type: sequence, expected a string"),
        ),
        row(
            "NaN",
            text(r#"{"type":"req","id":"nan","method":"cron.list","params":{"limit":NaN}}"#),
            bad_frame("invalid", "malformed JSON"),
        ),
        row(
            "Infinity",
            text(r#"{"type":"req","id":"inf","method":"cron.list","params":{"limit":Infinity}}"#),
            bad_frame("invalid", "malformed JSON"),
        ),
        row(
            "1e999",
            text(r#"{"type":"req","id":"big","method":"cron.list","params":{"limit":1e999}}"#),
            bad_frame("invalid", "number out of range"),
        ),
        row(
            "limit 1e2",
            call("cron.list", json!({"limit": 1e2})),
            invalid("invalid cron.list params: limit: invalid type: floating point `100.0`, expected u32"),
        ),
        row(
            "limit 2^64",
            text(r#"{"type":"req","id":"u","method":"cron.list","params":{"limit":18446744073709551616}}"#),
            bad_frame("u", "invalid type: floating point"),
        ),
        row(
            "limit 2^32",
            call("cron.list", json!({"limit": 4_294_967_296u64})),
            invalid("limit: invalid value: integer `4294967296`, expected u32"),
        ),
        row(
            "limit as a string",
            call("cron.list", json!({"limit": "10"})),
            invalid("limit: invalid type: string \"10\", expected u32"),
        ),
        // Limits and offsets.
        row(
            "cron.list limit -1",
            call("cron.list", json!({"limit": -1})),
            invalid("invalid cron.list params: limit: invalid value: integer `-1`, expected u32"),
        ),
        row(
            "cron.list limit 0",
            call("cron.list", json!({"limit": 0})),
            invalid("invalid cron.list params: limit must be 1..200"),
        ),
        row(
            "cron.list offset -1",
            call("cron.list", json!({"offset": -1})),
            invalid("offset: invalid value: integer `-1`"),
        ),
        row(
            "cron.list sortBy",
            call("cron.list", json!({"sortBy": "colour"})),
            invalid("sortBy \"colour\" is not nextRunAtMs, updatedAtMs or name"),
        ),
        row(
            "cron.list enabled",
            call("cron.list", json!({"enabled": "maybe"})),
            invalid("enabled \"maybe\" is not all, enabled or disabled"),
        ),
        row(
            "cron.list unknown field",
            call("cron.list", json!({"colour": 1})),
            invalid("invalid cron.list params: unknown field `colour`, expected one of `includeDisabled`"),
        ),
        row(
            "cron.runs limit -5",
            call("cron.runs", json!({"limit": -5})),
            invalid("invalid cron.runs params: limit: invalid value: integer `-5`"),
        ),
        row(
            "cron.runs limit 201",
            call("cron.runs", json!({"limit": 201})),
            invalid("invalid cron.runs params: limit must be 1..200"),
        ),
        row(
            "cron.runs status",
            call("cron.runs", json!({"status": "great"})),
            invalid("status \"great\" is not ok, error or skipped"),
        ),
        row(
            "cron.runs statuses not a list",
            call("cron.runs", json!({"statuses": "ok"})),
            invalid("statuses: invalid type: string \"ok\", expected a sequence"),
        ),
        row(
            "cron.runs scope job without id",
            call("cron.runs", json!({"scope": "job"})),
            invalid("scope \"job\" needs an id"),
        ),
        row(
            "deliveries.list limit -1",
            call("deliveries.list", json!({"limit": -1})),
            invalid("invalid deliveries.list params: limit: invalid value: integer `-1`"),
        ),
        row(
            "deliveries.list limit 0",
            call("deliveries.list", json!({"limit": 0})),
            invalid("invalid deliveries.list params: limit must be 1..500"),
        ),
        row(
            "deliveries.list state",
            call("deliveries.list", json!({"state": "lost"})),
            invalid("state \"lost\" is not one of pending, sending, delivered, unknown, dead"),
        ),
        row(
            "deliveries.list states not a list",
            call("deliveries.list", json!({"states": "dead"})),
            invalid("states: invalid type: string \"dead\", expected a sequence"),
        ),
        row(
            "sessions.list limit -1",
            call("sessions.list", json!({"limit": -1})),
            invalid("invalid sessions.list params: limit: invalid value: integer `-1`"),
        ),
        row(
            "sessions.list limit 0",
            call("sessions.list", json!({"limit": 0})),
            invalid("invalid sessions.list params: limit: must be between 1 and 1000"),
        ),
        row(
            "sessions.list kind",
            call("sessions.list", json!({"kind": "secret"})),
            invalid("kind: \"secret\" is not main, isolated or named"),
        ),
        row(
            "sessions.list OpenClaw-only field",
            call("sessions.list", json!({"activeOnly": true})),
            invalid("invalid sessions.list params: activeOnly: not supported by Pincer"),
        ),
        row(
            "sessions.list sortBy name",
            call("sessions.list", json!({"sortBy": "name"})),
            invalid("invalid sessions.list params: sortBy: \"name\" is not updatedAt or activity"),
        ),
        row(
            "sessions.list activeMinutes 0",
            call("sessions.list", json!({"activeMinutes": 0})),
            invalid("invalid sessions.list params: activeMinutes: must be at least 1"),
        ),
        row(
            "chat.history limit 5000",
            call("chat.history", json!({"sessionKey": "main", "limit": 5000})),
            invalid("limit: must be between 1 and 1000"),
        ),
        row(
            "chat.history limit -1",
            call("chat.history", json!({"sessionKey": "main", "limit": -1})),
            invalid("limit: invalid value: integer `-1`"),
        ),
        row(
            "audit.query limit 0",
            call("audit.query", json!({"limit": 0})),
            invalid("invalid audit.query params: limit must be 1..500"),
        ),
        row(
            "audit.query limit -1",
            call("audit.query", json!({"limit": -1})),
            invalid("invalid audit.query params: limit: invalid value: integer `-1`"),
        ),
        row(
            "logs.tail limit 0",
            call("logs.tail", json!({"limit": 0})),
            invalid("invalid logs.tail params: limit: must be 1..5000"),
        ),
        row(
            "logs.tail limit 5001",
            call("logs.tail", json!({"limit": 5001})),
            invalid("invalid logs.tail params: limit: must be 1..5000"),
        ),
        row(
            "logs.tail maxBytes 0",
            call("logs.tail", json!({"maxBytes": 0})),
            invalid("invalid logs.tail params: maxBytes: must be 1..1000000"),
        ),
        row(
            "logs.tail cursor -1",
            call("logs.tail", json!({"cursor": -1})),
            invalid("invalid logs.tail params: cursor: invalid value: integer `-1`"),
        ),
        row(
            "logs.tail unknown field",
            call("logs.tail", json!({"level": "warn"})),
            invalid("invalid logs.tail params: unknown field `level`"),
        ),
        row(
            "inbox.list limit -1",
            call("inbox.list", json!({"limit": -1})),
            invalid("invalid inbox.list params: limit: invalid value: integer `-1`"),
        ),
        row(
            "inbox.list limit 0",
            call("inbox.list", json!({"limit": 0})),
            invalid("invalid inbox.list params: limit must be 1..500"),
        ),
        row(
            "inbox.list limit 501",
            call("inbox.list", json!({"limit": 501})),
            invalid("invalid inbox.list params: limit must be 1..500"),
        ),
        // cron.add.
        row(
            "cron.add params a list",
            call("cron.add", json!([add.clone()])),
            invalid("invalid cron.add params: invalid type: sequence, expected an object"),
        ),
        row(
            "cron.add unknown field",
            call("cron.add", with(add.clone(), "colour", json!("red"))),
            invalid("invalid cron.add params: unknown field `colour`"),
        ),
        row(
            "cron.add name a number",
            call("cron.add", with(add.clone(), "name", json!(5))),
            invalid("invalid cron.add params: name: invalid type: integer `5`, expected a string"),
        ),
        row(
            "cron.add name of 100,000 characters",
            call("cron.add", with(add.clone(), "name", json!(long))),
            invalid("name: at most 200 characters"),
        ),
        row(
            "cron.add no payload",
            call("cron.add", json!({"schedule": {"kind": "every", "everyMs": 1000}})),
            invalid("payload.kind: required"),
        ),
        row(
            "cron.add no schedule",
            call("cron.add", json!({"payload": {"kind": "command", "argv": ["true"]}})),
            invalid("missing field `schedule`"),
        ),
        row(
            "cron.add schedule kind",
            call("cron.add", with(add.clone(), "schedule", json!({"kind": "sometimes"}))),
            invalid("schedule.kind: unknown variant `sometimes`, expected one of `at`, `every`, `cron`"),
        ),
        row(
            "cron.add everyMs 0",
            call("cron.add", every(json!(0))),
            invalid("schedule.everyMs: must be at least 1000 (1s), got 0"),
        ),
        row(
            "cron.add everyMs -5",
            call("cron.add", every(json!(-5))),
            invalid("schedule.everyMs: must be at least 1000 (1s), got -5"),
        ),
        row(
            "cron.add everyMs 1",
            call("cron.add", every(json!(1))),
            invalid("schedule.everyMs: must be at least 1000 (1s), got 1; a job runs at most once a second"),
        ),
        row(
            "cron.add everyMs 999",
            call("cron.add", every(json!(999))),
            invalid("schedule.everyMs: must be at least 1000 (1s), got 999"),
        ),
        row(
            "cron.add everyMs 1.5",
            call("cron.add", every(json!(1.5))),
            invalid("invalid type: floating point `1.5`, expected i64"),
        ),
        row(
            "cron.add everyMs i64::MAX",
            call("cron.add", every(json!(i64::MAX))),
            invalid("has no upcoming run time and would never fire"),
        ),
        row(
            "cron.add everyMs 2^64-1",
            call("cron.add", every(json!(u64::MAX))),
            invalid("invalid value: integer `18446744073709551615`, expected i64"),
        ),
        row(
            "cron.add anchorMs -1",
            call("cron.add", with(add.clone(), "schedule", json!({"kind": "every", "everyMs": 1000, "anchorMs": -1}))),
            invalid("schedule.anchorMs: must be at least 0, got -1"),
        ),
        row(
            "cron.add cron minute 61",
            call("cron.add", cron("61 * * * *", "UTC")),
            invalid(
                "schedule.expr: invalid cron expression \"61 * * * *\": minute field \"61\": number out of bounds (allowed 0-59)",
            ),
        ),
        row("cron.add cron of 3 fields", call("cron.add", cron("* * *", "UTC")), invalid("expected 5 fields")),
        row(
            "cron.add cron of 100,000 characters",
            call("cron.add", cron(&"*".repeat(100_000), "UTC")),
            invalid("schedule.expr: invalid cron expression"),
        ),
        row(
            "cron.add cron empty",
            call("cron.add", cron("", "UTC")),
            invalid("schedule.expr: invalid cron expression \"\": the expression is empty"),
        ),
        row(
            "cron.add cron never fires",
            call("cron.add", cron("0 0 30 2 *", "UTC")),
            invalid("day-of-month 30 never occurs in month 2, so the job would never run"),
        ),
        // The search for a slot of a field that matches nothing used to run for minutes.
        row(
            "cron.add cron field of commas",
            call("cron.add", cron(", * * * *", "UTC")),
            invalid("schedule.expr: invalid cron expression \", * * * *\": minute field \",\" matches no value"),
        ),
        row(
            "cron.update cron field of commas",
            call("cron.update", json!({"id": job, "patch": {"schedule": {"kind": "cron", "expr": "0 ,, * * *"}}})),
            invalid("hour field \",,\" matches no value"),
        ),
        row(
            "cron.add tz unknown",
            call("cron.add", cron("0 7 * * *", "Mars/Olympus")),
            invalid("schedule.tz: unknown time zone \"Mars/Olympus\""),
        ),
        row(
            "cron.add tz of 10,000 characters",
            call("cron.add", cron("0 7 * * *", &"Z".repeat(10_000))),
            invalid("schedule.tz: unknown time zone"),
        ),
        row(
            "cron.add staggerMs -1",
            call(
                "cron.add",
                with(
                    add.clone(),
                    "schedule",
                    json!({"kind": "cron", "expr": "0 * * * *", "tz": "UTC", "staggerMs": -1}),
                ),
            ),
            invalid("schedule.staggerMs: must be at least 0, got -1"),
        ),
        row(
            "cron.add at not a time",
            call("cron.add", with(add.clone(), "schedule", json!({"kind": "at", "at": "yesterday"}))),
            invalid("schedule.at: cannot parse \"yesterday\""),
        ),
        row(
            "cron.add at 30 February",
            call("cron.add", with(add.clone(), "schedule", json!({"kind": "at", "at": "2026-02-30T09:00:00Z"}))),
            invalid("schedule.at: cannot parse"),
        ),
        row(
            "cron.add at year 10000",
            call("cron.add", with(add.clone(), "schedule", json!({"kind": "at", "at": "10000-01-01"}))),
            invalid("schedule.at: cannot parse"),
        ),
        row(
            "cron.add atMs negative",
            call("cron.add", with(add.clone(), "schedule", json!({"kind": "at", "atMs": -1}))),
            invalid("`atMs` must be a positive epoch-millisecond time"),
        ),
        row(
            "cron.add timeoutSeconds 2^64-1",
            call(
                "cron.add",
                with(add.clone(), "payload", json!({"kind": "command", "argv": ["true"], "timeoutSeconds": u64::MAX})),
            ),
            invalid("payload.timeoutSeconds: 18446744073709551615 is more than 2592000 (30 days); use 0 for no limit"),
        ),
        row(
            "cron.add timeoutSeconds -1",
            call(
                "cron.add",
                with(add.clone(), "payload", json!({"kind": "command", "argv": ["true"], "timeoutSeconds": -1})),
            ),
            invalid("invalid cron.add params: payload: invalid value: integer `-1`, expected u64"),
        ),
        row(
            "cron.add argv empty",
            call("cron.add", with(add.clone(), "payload", json!({"kind": "command", "argv": []}))),
            invalid("payload.argv: must name a program"),
        ),
        row(
            "cron.add payload kind",
            call("cron.add", with(add.clone(), "payload", json!({"kind": "script", "script": "x"}))),
            invalid("payload.kind: \"script\" is not supported by Pincer"),
        ),
        row(
            "cron.add session path",
            call("cron.add", with(add.clone(), "sessionTarget", json!("session:../etc"))),
            invalid("sessionTarget: session id \"../etc\" is not allowed"),
        ),
        row(
            "cron.add channel",
            call("cron.add", with(add.clone(), "delivery", json!({"mode": "announce", "channel": "pigeon"}))),
            invalid("delivery.channel: unknown channel \"pigeon\""),
        ),
        row(
            "cron.add webhook URL",
            call("cron.add", with(add.clone(), "delivery", json!({"mode": "webhook", "to": "ftp://x"}))),
            invalid("delivery.to: \"ftp://x\" is not an http(s) URL"),
        ),
        row(
            "cron.add delivery as a list",
            call("cron.add", with(add.clone(), "delivery", json!(["none"]))),
            invalid("invalid cron.add params: delivery: invalid type: sequence, expected an object"),
        ),
        row(
            "cron.add schedule as a list",
            call("cron.add", with(add.clone(), "schedule", json!(["every", 60_000, null]))),
            invalid("invalid cron.add params: schedule: invalid type: sequence, expected an object"),
        ),
        row(
            "cron.update patch delivery as a list",
            call("cron.update", json!({"id": job, "patch": {"delivery": ["none"]}})),
            invalid("invalid cron.update params: delivery: invalid type: sequence, expected an object"),
        ),
        row(
            "cron.add failureAlert",
            call("cron.add", with(add.clone(), "failureAlert", json!("often"))),
            invalid("failureAlert: expected false or an object"),
        ),
        // cron.update and friends, on a real job.
        row(
            "cron.update no patch",
            call("cron.update", json!({"id": job})),
            invalid("invalid cron.update params: missing field `patch`"),
        ),
        row(
            "cron.update unknown job",
            call("cron.update", json!({"id": "nope", "patch": {}})),
            invalid("Automation not found: nope"),
        ),
        row(
            "cron.update patch a list",
            call("cron.update", json!({"id": job, "patch": []})),
            invalid("invalid cron.update params: patch: must be an object"),
        ),
        row(
            "cron.update patch id",
            call("cron.update", json!({"id": job, "patch": {"id": "other"}})),
            invalid("patch: unknown field `id`"),
        ),
        row(
            "cron.update patch state",
            call("cron.update", json!({"id": job, "patch": {"state": {}}})),
            invalid("patch.state: not supported by Pincer"),
        ),
        row(
            "cron.update enabled a string",
            call("cron.update", json!({"id": job, "patch": {"enabled": "yes"}})),
            invalid("enabled: invalid type: string \"yes\", expected a boolean"),
        ),
        row(
            "cron.update bad cron",
            call("cron.update", json!({"id": job, "patch": {"schedule": {"kind": "cron", "expr": "a b c d e"}}})),
            invalid("invalid cron.update params: schedule.expr: invalid cron expression"),
        ),
        row(
            "cron.update everyMs 0",
            call("cron.update", json!({"id": job, "patch": {"schedule": {"kind": "every", "everyMs": 0}}})),
            invalid("schedule.everyMs: must be at least 1000 (1s), got 0"),
        ),
        row(
            "cron.update everyMs 1",
            call("cron.update", json!({"id": job, "patch": {"schedule": {"kind": "every", "everyMs": 1}}})),
            invalid("invalid cron.update params: schedule.everyMs: must be at least 1000 (1s), got 1"),
        ),
        row(
            "cron.update stale revision",
            call("cron.update", json!({"id": job, "patch": {}, "expectedConfigRevision": "sha256:stale"})),
            invalid("the job changed since you read it"),
        ),
        row("cron.get no id", call("cron.get", json!({})), invalid("invalid cron.get params: id is required")),
        row(
            "cron.get id a number",
            call("cron.get", json!({"id": 5})),
            invalid("invalid cron.get params: id: invalid type: integer `5`, expected a string"),
        ),
        row(
            "cron.get id of 100,000 characters",
            call("cron.get", json!({"id": long})),
            invalid("cron job not found: xxx"),
        ),
        row(
            "cron.remove unknown job",
            call("cron.remove", json!({"id": "nope"})),
            invalid("Automation not found: nope"),
        ),
        row(
            "cron.run mode",
            call("cron.run", json!({"id": job, "mode": "sometimes"})),
            invalid("mode \"sometimes\" is not force, due or if-enabled"),
        ),
        row(
            "cron.preview count -1",
            call("cron.preview", json!({"id": job, "count": -1})),
            invalid("count: invalid value: integer `-1`"),
        ),
        row(
            "cron.preview count 10^12 is capped",
            call("cron.preview", json!({"id": job, "count": 1_000_000_000_000u64})),
            Want::Ok(None),
        ),
        // send and the outbox.
        row("send nothing", call("send", json!({})), invalid("invalid send params: missing field `to`")),
        row(
            "send no message",
            call("send", json!({"to": "me", "idempotencyKey": "k1"})),
            invalid("invalid send params: message: must not be empty"),
        ),
        row(
            "send blank key",
            call("send", json!({"to": "me", "message": "hi", "idempotencyKey": " "})),
            invalid("idempotencyKey: must not be empty"),
        ),
        row(
            "send to a number",
            call("send", json!({"to": 5, "message": "hi", "idempotencyKey": "k2"})),
            invalid("invalid send params: to: invalid type: integer `5`"),
        ),
        row(
            "send media",
            call("send", json!({"to": "me", "message": "hi", "idempotencyKey": "k3", "mediaUrl": "http://x/y.png"})),
            invalid("media is not supported by Pincer yet"),
        ),
        row(
            "send unknown channel",
            call("send", json!({"to": "me", "message": "hi", "idempotencyKey": "k4", "channel": "pigeon"})),
            invalid("invalid send params: unknown channel \"pigeon\""),
        ),
        row(
            "send waitTimeoutMs -1",
            call("send", json!({"to": "me", "message": "hi", "idempotencyKey": "k5", "waitTimeoutMs": -1})),
            invalid("waitTimeoutMs: invalid value: integer `-1`"),
        ),
        row(
            "deliveries.get no id",
            call("deliveries.get", json!({})),
            invalid("invalid deliveries.get params: missing field `id`"),
        ),
        row("deliveries.get unknown", call("deliveries.get", json!({"id": long})), invalid("delivery not found: xxx")),
        row(
            "deliveries.retry id a list",
            call("deliveries.retry", json!({"id": []})),
            invalid("invalid deliveries.retry params: id: invalid type: sequence"),
        ),
        row(
            "deliveries.purge pending",
            call("deliveries.purge", json!({"states": ["pending"]})),
            invalid("pending deliveries cannot be purged"),
        ),
        row(
            "deliveries.purge olderThanMs -1",
            call("deliveries.purge", json!({"olderThanMs": -1})),
            invalid("olderThanMs: invalid value: integer `-1`"),
        ),
        // A huge age reaches back before the epoch: nothing is that old (it used to overflow).
        row(
            "deliveries.purge olderThanMs 2^63",
            call("deliveries.purge", json!({"olderThanMs": 1u64 << 63})),
            Want::Ok(Some(("/purged", json!(0)))),
        ),
        row(
            "deliveries.purge olderThanMs 2^64-1",
            call("deliveries.purge", json!({"olderThanMs": u64::MAX})),
            Want::Ok(Some(("/purged", json!(0)))),
        ),
        // Agent methods.
        row("agent no message", call("agent", json!({})), invalid("invalid agent params: missing field `message`")),
        row(
            "agent blank message",
            call("agent", json!({"message": "  "})),
            invalid("invalid agent params: message: must not be empty"),
        ),
        row(
            "agent deliver",
            call("agent", json!({"message": "hi", "deliver": true})),
            invalid("invalid agent params: deliver: delivery channel is required"),
        ),
        row(
            "agent OpenClaw-only field",
            call("agent", json!({"message": "hi", "thinking": "high"})),
            invalid("invalid agent params: thinking: not supported by Pincer"),
        ),
        row(
            "agent provider without model",
            call("agent", json!({"message": "hi", "provider": "local"})),
            invalid("provider: needs model too"),
        ),
        row(
            "agent timeout -1",
            call("agent", json!({"message": "hi", "timeout": -1})),
            invalid("timeout: invalid value: integer `-1`"),
        ),
        row(
            "agent session path",
            call("agent", json!({"message": "hi", "sessionKey": "session:../../etc"})),
            invalid("sessionKey: session id \"../../etc\" is not allowed"),
        ),
        row(
            "agent agentId",
            call("agent", json!({"message": "hi", "agentId": "a:b"})),
            invalid("agentId: \"a:b\" is not an agent id"),
        ),
        row(
            "chat.history no key",
            call("chat.history", json!({})),
            invalid("invalid chat.history params: missing field `sessionKey`"),
        ),
        row(
            "chat.history blank key",
            call("chat.history", json!({"sessionKey": " "})),
            invalid("sessionKey: must not be empty"),
        ),
        row(
            "chat.history isolated",
            call("chat.history", json!({"sessionKey": "isolated"})),
            invalid("\"isolated\" names no session"),
        ),
        row(
            "chat.history unknown",
            call("chat.history", json!({"sessionKey": long})),
            invalid("session not found: xxx"),
        ),
        row(
            "chat.history beforeSeq a string",
            call("chat.history", json!({"sessionKey": "main", "beforeSeq": "x"})),
            invalid("beforeSeq: invalid type: string \"x\", expected i64"),
        ),
        row("wake nothing", call("wake", json!({})), invalid("invalid wake params: missing field `mode`")),
        row(
            "wake mode",
            call("wake", json!({"mode": "later", "text": "x"})),
            invalid("invalid wake params: mode: unknown variant `later`"),
        ),
        row(
            "wake blank text",
            call("wake", json!({"mode": "now", "text": " "})),
            invalid("invalid wake params: text: must not be empty"),
        ),
        row(
            "wake isolated",
            call("wake", json!({"mode": "now", "text": "x", "sessionKey": "isolated"})),
            invalid("an isolated run's session takes no events"),
        ),
        // Devices and audit.
        row(
            "device.pair.list unknown field",
            call("device.pair.list", json!({"all": true})),
            invalid("invalid device.pair.list params: unknown field `all`"),
        ),
        row(
            "device.pair.approve no id",
            call("device.pair.approve", json!({})),
            invalid("invalid device.pair.approve params: missing field `requestId`"),
        ),
        row(
            "device.pair.approve empty id",
            call("device.pair.approve", json!({"requestId": ""})),
            invalid("requestId must be 1..64 characters"),
        ),
        row(
            "device.pair.approve long id",
            call("device.pair.approve", json!({"requestId": long})),
            invalid("requestId must be 1..64 characters"),
        ),
        row(
            "device.pair.approve unknown",
            call("device.pair.approve", json!({"requestId": "nope"})),
            invalid("unknown requestId"),
        ),
        row(
            "device.pair.reject id a number",
            call("device.pair.reject", json!({"requestId": 5})),
            invalid("invalid device.pair.reject params: requestId: invalid type: integer `5`"),
        ),
        row(
            "device.pair.remove bad id",
            call("device.pair.remove", json!({"deviceId": "xyz"})),
            invalid("deviceId must be 64 lowercase hex characters"),
        ),
        row(
            "device.pair.rename no label",
            call("device.pair.rename", json!({"deviceId": DEVICE})),
            invalid("missing field `label`"),
        ),
        row(
            "device.token.rotate role",
            call("device.token.rotate", json!({"deviceId": DEVICE, "role": "god"})),
            invalid("role"),
        ),
        row(
            "device.token.revoke bad id",
            call("device.token.revoke", json!({"deviceId": "ZZ", "role": "operator"})),
            invalid("deviceId must be 64 lowercase hex characters"),
        ),
        row(
            "audit.query action too long",
            call("audit.query", json!({"action": long})),
            invalid("action must be 1..64 characters"),
        ),
        row(
            "audit.query sinceMs a string",
            call("audit.query", json!({"sinceMs": "x"})),
            invalid("invalid audit.query params: sinceMs: invalid type: string \"x\""),
        ),
    ];
    // Params of the wrong JSON type, for every method that takes params.
    for method in methods.iter().map(String::as_str).filter(|m| !METHODS_WITHOUT_PARAMS.contains(m)) {
        for (kind, params) in
            [("a string", json!("x")), ("a number", json!(42)), ("a list", json!([1, 2])), ("true", json!(true))]
        {
            rows.push(row(
                format!("{method} params {kind}"),
                call(method, params),
                invalid(format!("invalid {method} params")),
            ));
        }
    }
    rows
}

/// The next `res` frame, skipping events.
async fn next_res(c: &mut RawClient) -> anyhow::Result<Value> {
    loop {
        let frame = c.next_frame().await?;
        if frame["type"] == "res" {
            return Ok(frame);
        }
    }
}

/// Plays one row and checks its answer.
async fn play(c: &mut RawClient, row: &Row) -> Result<(), String> {
    let (res, sent_id) = match &row.input {
        Input::Call(method, params) => (c.request(method, params.clone()).await.map_err(|e| e.to_string())?, None),
        Input::Binary(bytes) => {
            c.send_binary(bytes.clone()).await.map_err(|e| e.to_string())?;
            (Value::Null, None)
        }
        Input::Text(t) => {
            c.send_text(t.clone()).await.map_err(|e| e.to_string())?;
            let id = serde_json::from_str::<Value>(t).ok().and_then(|v| v["id"].as_str().map(String::from));
            (Value::Null, id)
        }
    };
    let res = match (&row.want, res) {
        (Want::Ignored, _) => return Ok(()),
        (_, Value::Null) => next_res(c).await.map_err(|e| e.to_string())?,
        (_, res) => res,
    };
    match &row.want {
        Want::Error { id, code, fragment } => {
            if let Some(id) = id.as_ref().or(sent_id.as_ref())
                && res["id"] != id.as_str()
            {
                return Err(format!("answered to id {} instead of {id}", res["id"]));
            }
            let message = res["error"]["message"].as_str().unwrap_or_default();
            if res["ok"] != false || res["error"]["code"] != *code || !message.contains(fragment.as_str()) {
                let shown: String = res.to_string().chars().take(600).collect();
                return Err(format!("expected {code} containing {fragment:?}, got {shown}"));
            }
        }
        Want::Ok(check) => {
            if res["ok"] != true {
                return Err(format!("expected ok, got {}", res.to_string().chars().take(600).collect::<String>()));
            }
            if let Some(id) = &sent_id
                && res["id"] != id.as_str()
            {
                return Err(format!("answered to id {} instead of {id}", res["id"]));
            }
            if let Some((pointer, value)) = check
                && res["payload"].pointer(pointer) != Some(value)
            {
                return Err(format!("expected payload{pointer} = {value}, got {}", res["payload"]));
            }
        }
        Want::Ignored => unreachable!(),
    }
    Ok(())
}

/// `health` on this connection: the next answer must be health's own (nothing else queued).
async fn still_healthy(c: &mut RawClient, n: usize) -> Result<(), String> {
    let id = format!("after-{n}");
    c.send_text(json!({"type": "req", "id": id, "method": "health"}).to_string()).await.map_err(|e| e.to_string())?;
    let res = next_res(c).await.map_err(|e| format!("no answer to health: {e}"))?;
    if res["id"] != id.as_str() || res["ok"] != true {
        return Err(format!("health answered {}", res.to_string().chars().take(300).collect::<String>()));
    }
    Ok(())
}

#[tokio::test]
async fn protocol_rows_after_hello_answer_with_the_error_and_keep_the_connection() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = c
        .call(
            "cron.add",
            json!({"name": "target", "schedule": {"kind": "every", "everyMs": 3_600_000},
                   "payload": {"kind": "command", "argv": ["true"]}, "delivery": {"mode": "none"}}),
        )
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A delivered row, which an overflowing purge age would wrongly purge.
    let sent = c
        .call(
            "send",
            json!({"channel": "inbox", "to": "me", "message": "keep me", "idempotencyKey": "keep", "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(sent["state"], "delivered", "{sent}");

    let methods = gw.gateway.as_ref().unwrap().state.methods.names();
    let rows = protocol_rows(&job, &methods);
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for (n, row) in rows.iter().enumerate() {
        let started = Instant::now();
        let outcome = tokio::time::timeout(ROW_LIMIT, async {
            play(&mut c, row).await?;
            still_healthy(&mut c, n).await
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {ROW_LIMIT:?} (a hang)")));
        if started.elapsed() > slowest.0 {
            slowest = (started.elapsed(), row.name.clone());
        }
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", row.name));
            // Carry on with a fresh connection, so one broken row does not hide the others.
            c = gw.client(&["operator.admin"]).await;
        }
    }
    eprintln!("{} protocol rows; slowest: {} ({:?})", rows.len(), slowest.1, slowest.0);
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    // The delivered row survived both huge purge ages, and the job is untouched.
    let list = c.call("deliveries.list", json!({"state": "delivered"})).await.unwrap();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(c.call("cron.get", json!({"id": job})).await.unwrap()["name"], "target");
    gw.stop().await;
}

/// Frames before `hello-ok`: each is refused (with an answer when it was a request) and closed;
/// a new connection still completes the handshake and answers `health`.
#[tokio::test]
async fn protocol_rows_before_hello_close_and_the_gateway_carries_on() {
    let gw = TestGateway::start().await;
    let good = || cli_connect_params(Some(TOKEN), &[]);
    let connect_with = |f: &dyn Fn(&mut Value)| {
        let mut params = good();
        f(&mut params);
        json!({"type": "req", "id": "c1", "method": "connect", "params": params}).to_string()
    };
    // (name, frame or None for binary, answered?, close code, fragment of the answer or reason)
    let rows: Vec<(&str, Option<String>, bool, u16, &str)> = vec![
        ("binary frame", None, false, 1008, "invalid handshake: binary frames are not supported"),
        ("empty text frame", Some(String::new()), false, 1008, "invalid request frame: invalid frame: malformed JSON"),
        (
            "a JSON array",
            Some("[]".into()),
            false,
            1008,
            "invalid request frame: invalid frame: expected a JSON object",
        ),
        (
            "connect without params",
            Some(r#"{"type":"req","id":"c1","method":"connect"}"#.into()),
            true,
            1008,
            "invalid connect params: missing params",
        ),
        (
            "connect params a string",
            Some(r#"{"type":"req","id":"c1","method":"connect","params":"x"}"#.into()),
            true,
            1008,
            "invalid connect params: invalid type: string \"x\"",
        ),
        (
            "connect params a list of the fields",
            Some(
                json!({"type": "req", "id": "c1", "method": "connect",
                       "params": [4, 4, {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"}]})
                .to_string(),
            ),
            true,
            1008,
            "invalid connect params: invalid type: sequence, expected an object",
        ),
        (
            "client a list of the fields",
            Some(connect_with(&|p| p["client"] = json!(["cli", "1", "linux", "cli"]))),
            true,
            1008,
            "invalid connect params: client: invalid type: sequence, expected an object",
        ),
        (
            "connect params nested 200 deep",
            Some(format!(r#"{{"type":"req","id":"c1","method":"connect","params":{}}}"#, nested(200, ""))),
            false,
            1008,
            "recursion limit exceeded",
        ),
        (
            "minProtocol -1",
            Some(connect_with(&|p| p["minProtocol"] = json!(-1))),
            true,
            1008,
            "invalid connect params: invalid value: integer `-1`, expected u32",
        ),
        (
            "maxProtocol 2^32",
            Some(connect_with(&|p| p["maxProtocol"] = json!(4_294_967_296u64))),
            true,
            1008,
            "invalid connect params: invalid value: integer `4294967296`",
        ),
        (
            "minProtocol 0",
            Some(connect_with(&|p| p["minProtocol"] = json!(0))),
            true,
            1008,
            "protocol versions must be >= 1",
        ),
        ("min above max", Some(connect_with(&|p| p["minProtocol"] = json!(9))), true, 1002, "protocol mismatch"),
        (
            "client.version empty",
            Some(connect_with(&|p| p["client"]["version"] = json!(""))),
            true,
            1008,
            "client.version must be non-empty",
        ),
        (
            "client.platform blank",
            Some(connect_with(&|p| p["client"]["platform"] = json!("  "))),
            true,
            1008,
            "client.platform must be non-empty",
        ),
        (
            "client missing",
            Some(connect_with(&|p| drop(p.as_object_mut().unwrap().remove("client")))),
            true,
            1008,
            "missing field `client`",
        ),
        (
            "scopes not a list",
            Some(connect_with(&|p| p["scopes"] = json!("operator.admin"))),
            true,
            1008,
            "invalid type: string \"operator.admin\", expected a sequence",
        ),
        (
            "auth.token a number",
            Some(connect_with(&|p| p["auth"]["token"] = json!(5))),
            true,
            1008,
            "invalid type: integer `5`, expected a string",
        ),
        (
            "device with a garbage key",
            Some(connect_with(&|p| {
                p["device"] = json!({"id": DEVICE, "publicKey": "!!", "signature": "??", "signedAt": 0, "nonce": "n"})
            })),
            true,
            1008,
            "device public key invalid",
        ),
        (
            "device signedAt a float",
            Some(connect_with(&|p| {
                p["device"] = json!({"id": DEVICE, "publicKey": "k", "signature": "s", "signedAt": 1.5})
            })),
            true,
            1008,
            "invalid type: floating point `1.5`, expected i64",
        ),
    ];
    let mut failures = Vec::new();
    for (name, frame, answered, close_code, fragment) in rows {
        let outcome = tokio::time::timeout(ROW_LIMIT, async {
            let mut c = RawClient::open(&gw.url()).await.map_err(|e| e.to_string())?;
            c.next_frame().await.map_err(|e| e.to_string())?; // the challenge
            match &frame {
                Some(t) => c.send_text(t.clone()).await,
                None => c.send_binary(vec![1, 2, 3]).await,
            }
            .map_err(|e| e.to_string())?;
            if answered {
                let res = c.next_frame().await.map_err(|e| format!("no answer: {e}"))?;
                let message = res["error"]["message"].as_str().unwrap_or_default();
                if res["id"] != "c1" || res["error"]["code"] != "INVALID_REQUEST" || !message.contains(fragment) {
                    return Err(format!("expected INVALID_REQUEST containing {fragment:?}, got {res}"));
                }
            }
            let (code, reason) = c.expect_close().await.map_err(|e| e.to_string())?;
            if code != Some(close_code) || !(answered || reason.contains(fragment)) {
                return Err(format!("expected close {close_code} ({fragment:?}), got {code:?} {reason:?}"));
            }
            let mut fresh = RawClient::connect(&gw.url(), good()).await.map_err(|e| e.to_string())?.0;
            still_healthy(&mut fresh, 0).await
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {ROW_LIMIT:?} (a hang)")));
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The real binary: CLI arguments and config files.

struct Ran {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs `pincer` with only `env` (and PATH), killing it if it outlives [`ROW_LIMIT`].
fn run_pincer(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(pincer_bin());
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > ROW_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    Ran { code, stderr: reader.join().unwrap(), took }
}

/// How a bad invocation must end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Exit {
    /// clap refused the arguments: exit 2, `error: …` first, then usage.
    Usage,
    /// Pincer refused: exit 1 and exactly one line, `error: …`.
    Failure,
}

/// Checks that a run ended as `exit` with `fragment` in its error line, without a panic or a hang.
fn check_run(ran: &Ran, exit: Exit, fragment: &str) -> Result<(), String> {
    let stderr = ran.stderr.trim_end();
    if ran.code.is_none() {
        return Err(format!("still running after {ROW_LIMIT:?} (a hang); stderr: {stderr}"));
    }
    if stderr.contains("panicked at") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("panicked: {stderr}"));
    }
    let want_code = if exit == Exit::Usage { 2 } else { 1 };
    // The error is the first line for clap, and the last for Pincer (a gateway may log before it).
    let line = if exit == Exit::Usage { stderr.lines().next() } else { stderr.lines().last() }.unwrap_or_default();
    if ran.code != Some(want_code) || !line.starts_with("error: ") || !line.contains(fragment) {
        return Err(format!("expected exit {want_code} with `error: …{fragment}…`, got {:?}: {stderr}", ran.code));
    }
    if exit == Exit::Failure && stderr.lines().count() != 1 {
        return Err(format!("expected one line on stderr, got:\n{stderr}"));
    }
    Ok(())
}

#[test]
fn cli_rows_exit_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&pincer_bin(), &dir.path().join("gw"), json!({})).unwrap();
    let state = gw.state_dir.to_str().unwrap().to_string();
    let state = state.as_str();
    // A port nothing listens on, and one that accepts but never answers the upgrade.
    let closed = format!("ws://127.0.0.1:{}", free_port());
    let silent_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("ws://{}", silent_listener.local_addr().unwrap());
    let empty_state = dir.path().join("empty");
    let empty = empty_state.to_str().unwrap();
    let file_state = dir.path().join("a-file");
    std::fs::write(&file_state, "not a dir").unwrap();
    let file = format!("{}/sub", file_state.to_str().unwrap());
    let huge = u64::MAX.to_string();
    let (closed, silent, file, huge) = (closed.as_str(), silent.as_str(), file.as_str(), huge.as_str());

    use Exit::{Failure, Usage};
    // (state dir, args, exit, fragment of the error line)
    let rows: Vec<(&str, Vec<&str>, Exit, &str)> = vec![
        // Arguments clap refuses before anything runs.
        (state, vec!["frobnicate"], Usage, "unrecognized subcommand 'frobnicate'"),
        (state, vec!["cron", "frobnicate"], Usage, "unrecognized subcommand 'frobnicate'"),
        (state, vec!["cron", "get"], Usage, "the following required arguments were not provided"),
        (state, vec!["cron", "add", "--every"], Usage, "a value is required for '--every <DURATION>'"),
        (state, vec!["cron", "add", "--colour", "red"], Usage, "unexpected argument '--colour'"),
        (state, vec!["cron", "runs", "job", "--limit", "abc"], Usage, "invalid value 'abc' for '--limit <LIMIT>'"),
        (state, vec!["cron", "runs", "job", "--limit", "-1"], Usage, "invalid value '-1' for '--limit <LIMIT>'"),
        (
            state,
            vec!["cron", "runs", "job", "--limit", "4294967296"],
            Usage,
            "invalid value '4294967296' for '--limit <LIMIT>'",
        ),
        (
            state,
            vec!["cron", "runs", "job", "--status", "great"],
            Usage,
            "invalid value 'great' for '--status <STATUS>'",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--timeout-seconds", "-5", "--message", "x"],
            Usage,
            "invalid value '-5' for '--timeout-seconds <N>'",
        ),
        (state, vec!["inbox", "--limit", "many"], Usage, "invalid value 'many' for '--limit <LIMIT>'"),
        (state, vec!["health", "--timeout", "soon"], Usage, "invalid value 'soon' for '--timeout <TIMEOUT>'"),
        (state, vec!["gateway", "--port", "70000"], Usage, "invalid value '70000' for '--port <PORT>'"),
        (state, vec!["gateway", "--bind", "everywhere"], Usage, "invalid value 'everywhere' for '--bind <BIND>'"),
        (state, vec!["agent"], Usage, "the following required arguments were not provided"),
        (state, vec!["sessions", "show"], Usage, "the following required arguments were not provided"),
        (
            state,
            vec!["message", "send", "--channel", "inbox"],
            Usage,
            "the following required arguments were not provided",
        ),
        (state, vec!["devices", "approve"], Usage, "the following required arguments were not provided"),
        // Values Pincer refuses before it connects.
        (
            state,
            vec!["cron", "add", "--every", "5 parsecs", "--message", "x"],
            Failure,
            "--every: invalid duration `5 parsecs`: unknown unit `parsecs`",
        ),
        (
            state,
            vec!["cron", "add", "--every", "10", "--message", "x"],
            Failure,
            "--every: duration `10` needs a unit (ms, s, m, h, d), e.g. `10m`",
        ),
        (state, vec!["cron", "add", "--every", "", "--message", "x"], Failure, "--every: empty duration"),
        (
            state,
            vec!["cron", "add", "--every", "1ms", "--message", "x"],
            Failure,
            "--every: `1ms` is shorter than the minimum interval of 1s",
        ),
        (
            state,
            vec!["cron", "edit", "some-id", "--every", "999ms"],
            Failure,
            "--every: `999ms` is shorter than the minimum interval of 1s",
        ),
        (
            state,
            vec!["cron", "add", "--every", "99999999999999999999d", "--message", "x"],
            Failure,
            "--every: duration `99999999999999999999d` is too large",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--tz", "Europe/Berlin", "--message", "x"],
            Failure,
            "--tz applies to --cron and --at, not --every",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--cron", "* * * * *", "--message", "x"],
            Failure,
            "choose one schedule: --every, --cron or --at",
        ),
        (state, vec!["cron", "add", "--every", "1h"], Failure, "a payload is required"),
        (state, vec!["cron", "add", "--message", "x"], Failure, "a schedule is required"),
        (
            state,
            vec!["cron", "add", "--cron", "0 * * * *", "--exact", "--stagger", "1m", "--message", "x"],
            Failure,
            "--exact and --stagger contradict each other",
        ),
        (
            state,
            vec!["cron", "add", "--cron", "0 * * * *", "--stagger", "lots", "--message", "x"],
            Failure,
            "--stagger: invalid duration `lots`",
        ),
        (
            state,
            vec!["cron", "add", "--at", "yesterday", "--message", "x"],
            Failure,
            "--at: schedule.at: cannot parse \"yesterday\"",
        ),
        (
            state,
            vec!["cron", "add", "--at", "2026-02-30T09:00", "--message", "x"],
            Failure,
            "--at: schedule.at: cannot parse \"2026-02-30T09:00\"",
        ),
        (
            state,
            vec!["cron", "add", "--at", "+99999999999d", "--message", "x"],
            Failure,
            "--at: schedule.at: cannot parse",
        ),
        (
            state,
            vec!["cron", "add", "--at", "2026-03-01T09:00", "--tz", "Mars/Olympus", "--message", "x"],
            Failure,
            "--at: schedule.tz: unknown time zone \"Mars/Olympus\"",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--message", "x", "--webhook", "https://x/", "--announce"],
            Failure,
            "--webhook cannot be combined with --announce",
        ),
        (state, vec!["cron", "edit", "some-id"], Failure, "nothing to change"),
        (state, vec!["cron", "runs"], Failure, "a job id is required: pincer cron runs <id>"),
        (
            state,
            vec!["cron", "run", "some-id", "--wait", "--wait-timeout", "forever"],
            Failure,
            "--wait-timeout: invalid duration `forever`",
        ),
        (state, vec!["deliveries", "purge", "--older-than", "ages"], Failure, "--older-than: invalid duration `ages`"),
        // Values the gateway refuses.
        (
            state,
            vec!["cron", "add", "--cron", "61 * * * *", "--message", "x"],
            Failure,
            "schedule.expr: invalid cron expression \"61 * * * *\": minute field \"61\"",
        ),
        (
            state,
            vec!["cron", "add", "--cron", "0 9 ,,, * *", "--message", "x"],
            Failure,
            "day-of-month field \",,,\" matches no value",
        ),
        (
            state,
            vec!["cron", "add", "--cron", "0 7 * * *", "--tz", "Mars/Olympus", "--message", "x"],
            Failure,
            "schedule.tz: unknown time zone \"Mars/Olympus\"",
        ),
        (
            state,
            vec!["cron", "add", "--every", "0s", "--message", "x"],
            Failure,
            "--every: `0s` is shorter than the minimum interval of 1s",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--message", "x", "--session", "session:../x"],
            Failure,
            "sessionTarget: session id \"../x\" is not allowed",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--message", "x", "--channel", "pigeon"],
            Failure,
            "delivery.channel: unknown channel \"pigeon\"",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--message", "x", "--model", "llama"],
            Failure,
            "payload.model: \"llama\" must be provider/model",
        ),
        (
            state,
            vec!["cron", "add", "--every", "1h", "--command", "true", "--timeout-seconds", huge],
            Failure,
            "payload.timeoutSeconds: 18446744073709551615 is more than 2592000",
        ),
        (
            state,
            vec!["cron", "get", "no-such-job"],
            Failure,
            "no job matches `no-such-job` (by id, unique id prefix or name)",
        ),
        (
            state,
            vec!["cron", "runs", "no-such-job", "--limit", "0"],
            Failure,
            "invalid cron.runs params: limit must be 1..200",
        ),
        (
            state,
            vec!["cron", "rm", "no-such-job"],
            Failure,
            "no job matches `no-such-job` (by id, unique id prefix or name)",
        ),
        (
            state,
            vec!["message", "send", "--channel", "pigeon", "--to", "x", "--message", "hi"],
            Failure,
            "invalid send params: unknown channel \"pigeon\" (use discord, telegram, slack, inbox, webhook)",
        ),
        (state, vec!["deliveries", "show", "no-such-delivery"], Failure, "no-such-delivery"),
        (state, vec!["sessions", "show", "isolated"], Failure, "\"isolated\" names no session"),
        (
            state,
            vec!["sessions", "list", "--kind", "secret"],
            Failure,
            "kind: \"secret\" is not main, isolated or named",
        ),
        (
            state,
            vec!["devices", "approve", "no-such-request"],
            Failure,
            "no pending request starts with `no-such-request`: run `pincer devices list`",
        ),
        (state, vec!["agent", "-m", "hi", "--model", "nowhere/none"], Failure, "invalid agent params: model: "),
        // The client's own deadline (the turn's limit + 30 s) used to overflow.
        (state, vec!["agent", "-m", "hi", "--timeout-seconds", huge], Failure, "no model is configured"),
        (state, vec!["health", "--token", "wrong"], Failure, "the gateway rejected the token"),
        // Gateways that are not there.
        (state, vec!["health", "--url", closed], Failure, "cannot reach the gateway at ws://127.0.0.1:"),
        (
            state,
            vec!["health", "--url", "not a url"],
            Failure,
            "--url: `not a url` is not a gateway URL; use ws://host:port",
        ),
        (
            state,
            vec!["health", "--url", "ftp://127.0.0.1:1/"],
            Failure,
            "--url: `ftp://127.0.0.1:1/` is not a gateway URL",
        ),
        (state, vec!["health", "--url", "ws://"], Failure, "--url: `ws://` is not a gateway URL"),
        (
            state,
            vec!["health", "--url", "http://127.0.0.1:1/"],
            Failure,
            "cannot reach the gateway at http://127.0.0.1:1/",
        ),
        (state, vec!["status", "--url", silent, "--timeout", "300"], Failure, "did not answer within 300 ms"),
        (empty, vec!["cron", "list", "--url", closed], Failure, "cannot reach the gateway"),
        (file, vec!["health"], Failure, "cannot read config"),
    ];
    let mut failures = Vec::new();
    for (state_dir, args, exit, fragment) in &rows {
        let ran = run_pincer(args, &[("PINCER_STATE_DIR", state_dir)]);
        if let Err(e) = check_run(&ran, *exit, fragment) {
            failures.push(format!("pincer {}: {e}", args.join(" ")));
        }
    }
    // A bad URL from the environment is named as such.
    let ran = run_pincer(&["health"], &[("PINCER_STATE_DIR", empty), ("PINCER_GATEWAY_URL", "127.0.0.1:18789")]);
    if let Err(e) = check_run(&ran, Failure, "PINCER_GATEWAY_URL: `127.0.0.1:18789` is not a gateway URL") {
        failures.push(format!("PINCER_GATEWAY_URL=127.0.0.1:18789 pincer health: {e}"));
    }
    drop(silent_listener);
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len() + 1, failures.join("\n\n"));
    // The gateway took all of that and is fine.
    let ran = run_pincer(&["health"], &[("PINCER_STATE_DIR", state)]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

#[test]
fn config_rows_stop_the_gateway_promptly_naming_the_key() {
    // (name, pincer.json contents, extra env, fragment of the error line)
    let deep = "[".repeat(50_000);
    let provider = |inner: &str| {
        format!(
            r#"{{models:{{providers:{{local:{{api:"openai-completions",baseUrl:"http://127.0.0.1:1/v1"{inner}}}}}}}}}"#
        )
    };
    type ConfigRow<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, String);
    let rows: Vec<ConfigRow> = vec![
        ("invalid JSON5", b"{gateway: {port: 1".to_vec(), vec![], "not valid JSON5".into()),
        ("empty file", b"".to_vec(), vec![], "not valid JSON5".into()),
        ("a list", b"[]".to_vec(), vec![], "pincer.json: invalid type: sequence, expected an object".into()),
        (
            "a section written as a list",
            br#"{gateway: [18789, "lan"]}"#.to_vec(),
            vec![],
            "gateway: invalid type: sequence, expected an object".into(),
        ),
        ("not UTF-8", vec![0xff, 0xfe, b'{', b'}'], vec![], "stream did not contain valid UTF-8".into()),
        ("nested 50,000 deep", deep.into_bytes(), vec![], "not valid JSON5: nested more than 128 levels deep".into()),
        ("unknown key", b"{gatway: {}}".to_vec(), vec![], "gatway: unknown field `gatway`".into()),
        (
            "unknown key at depth 2",
            b"{gateway: {prot: 1}}".to_vec(),
            vec![],
            "gateway.prot: unknown field `prot`".into(),
        ),
        (
            "unknown key at depth 3",
            br#"{gateway: {auth: {tokn: "x"}}}"#.to_vec(),
            vec![],
            "gateway.auth.tokn: unknown field `tokn`".into(),
        ),
        (
            "unknown key at depth 4",
            b"{gateway: {auth: {rateLimit: {maxAtempts: 3}}}}".to_vec(),
            vec![],
            "gateway.auth.rateLimit.maxAtempts: unknown field".into(),
        ),
        (
            "unknown key in a map entry",
            provider(", modelz: []").into_bytes(),
            vec![],
            "models.providers.local.modelz: unknown field".into(),
        ),
        (
            "unknown key in a list item",
            provider(r#", models: [{id: "a", ctx: 1}]"#).into_bytes(),
            vec![],
            "models.providers.local.models[0].ctx: unknown field `ctx`".into(),
        ),
        (
            "port a string",
            br#"{gateway: {port: "x"}}"#.to_vec(),
            vec![],
            "gateway.port: invalid type: string \"x\", expected u16".into(),
        ),
        (
            "port 70000",
            b"{gateway: {port: 70000}}".to_vec(),
            vec![],
            "gateway.port: invalid value: integer `70000`, expected u16".into(),
        ),
        (
            "port -1",
            b"{gateway: {port: -1}}".to_vec(),
            vec![],
            "gateway.port: invalid value: integer `-1`, expected u16".into(),
        ),
        (
            "port 1.5",
            b"{gateway: {port: 1.5}}".to_vec(),
            vec![],
            "gateway.port: invalid type: floating point `1.5`, expected u16".into(),
        ),
        (
            "bind",
            br#"{gateway: {bind: "everywhere"}}"#.to_vec(),
            vec![],
            "gateway.bind: unknown variant `everywhere`".into(),
        ),
        (
            "enabled a string",
            br#"{cron: {enabled: "yes"}}"#.to_vec(),
            vec![],
            "cron.enabled: invalid type: string \"yes\", expected a boolean".into(),
        ),
        (
            "maxConcurrentRuns 0",
            b"{cron: {maxConcurrentRuns: 0}}".to_vec(),
            vec![],
            "cron.maxConcurrentRuns: must be at least 1".into(),
        ),
        (
            "connection cap 0",
            b"{gateway: {connections: {max: 0}}}".to_vec(),
            vec![],
            "gateway.connections.max: must be at least 1".into(),
        ),
        (
            "unauthenticated sockets per address 0",
            b"{gateway: {connections: {maxUnauthenticatedPerAddress: 0}}}".to_vec(),
            vec![],
            "gateway.connections.maxUnauthenticatedPerAddress: must be at least 1".into(),
        ),
        (
            "header timeout of 10 ms",
            b"{gateway: {connections: {headerTimeoutMs: 10}}}".to_vec(),
            vec![],
            "gateway.connections.headerTimeoutMs: must be 100..600000".into(),
        ),
        (
            "an allowed origin with a path",
            br#"{gateway: {controlUi: {allowedOrigins: ["https://pincer.example.net/console"]}}}"#.to_vec(),
            vec![],
            "gateway.controlUi.allowedOrigins: `https://pincer.example.net/console` is not an origin".into(),
        ),
        (
            "rate limit a string",
            br#"{delivery: {rateLimits: {discord: "fast"}}}"#.to_vec(),
            vec![],
            "delivery.rateLimits.discord: invalid type: string \"fast\"".into(),
        ),
        (
            "rate limit negative",
            b"{delivery: {rateLimits: {discord: -1}}}".to_vec(),
            vec![],
            "delivery.rateLimits.discord: must be a number of sends per second".into(),
        ),
        (
            "sessionRetention",
            br#"{cron: {sessionRetention: "forever"}}"#.to_vec(),
            vec![],
            "cron.sessionRetention: invalid duration `forever`".into(),
        ),
        (
            "sessionRetention true",
            b"{cron: {sessionRetention: true}}".to_vec(),
            vec![],
            "cron.sessionRetention: use a duration".into(),
        ),
        (
            "runRetention.maxAge without a unit",
            br#"{cron: {runRetention: {maxAge: "30"}}}"#.to_vec(),
            vec![],
            "cron.runRetention.maxAge: duration `30` needs a unit".into(),
        ),
        (
            "heartbeat.every",
            br#"{agents: {defaults: {heartbeat: {every: "often"}}}}"#.to_vec(),
            vec![],
            "agents.defaults.heartbeat.every: invalid duration `often`".into(),
        ),
        (
            "heartbeat.every too large",
            br#"{agents: {defaults: {heartbeat: {every: "99999999999999999999d"}}}}"#.to_vec(),
            vec![],
            "agents.defaults.heartbeat.every: duration `99999999999999999999d` is too large".into(),
        ),
        (
            "time zone",
            br#"{gateway: {auth: {token: "t"}}, agents: {defaults: {timezone: "Mars/Olympus"}}}"#.to_vec(),
            vec![],
            "agents.defaults.timezone: unknown time zone \"Mars/Olympus\"".into(),
        ),
        (
            "provider api",
            br#"{models: {providers: {local: {api: "gpt", baseUrl: "http://x"}}}}"#.to_vec(),
            vec![],
            "models.providers.local.api: unknown variant `gpt`".into(),
        ),
        (
            "provider baseUrl",
            br#"{models: {providers: {local: {api: "openai-completions", baseUrl: "ftp://x"}}}}"#.to_vec(),
            vec![],
            "models.providers.local.baseUrl: must be an http(s) URL".into(),
        ),
        (
            "discord apiBaseUrl",
            br#"{gateway: {auth: {token: "t"}}, channels: {discord: {token: "t", apiBaseUrl: "not a url"}}}"#.to_vec(),
            vec![],
            "channels.discord.apiBaseUrl".into(),
        ),
        (
            "missing env var",
            br#"{channels: {telegram: {botToken: "${PINCER_TEST_UNSET}"}}}"#.to_vec(),
            vec![],
            "channels.telegram.botToken: environment variable PINCER_TEST_UNSET is not set".into(),
        ),
        (
            "bad env reference",
            br#"{channels: {slack: {botToken: "${}"}}}"#.to_vec(),
            vec![],
            "channels.slack.botToken: `${}` is not a valid environment variable reference".into(),
        ),
        (
            "unterminated env reference",
            br#"{logging: {level: "${HOME"}}"#.to_vec(),
            vec![],
            "logging.level: unterminated `${`".into(),
        ),
        (
            "misspelt log level",
            br#"{gateway: {auth: {token: "t"}}, logging: {level: "inf"}}"#.to_vec(),
            vec![],
            "logging.level: `inf` is not a log level".into(),
        ),
        (
            "misspelt PINCER_LOG",
            br#"{gateway: {auth: {token: "t"}}}"#.to_vec(),
            vec![("PINCER_LOG", "pincer_cron=verbose")],
            "PINCER_LOG: `pincer_cron=verbose` is not a log level".into(),
        ),
        (
            "token mode without a token",
            br#"{gateway: {auth: {mode: "token"}}}"#.to_vec(),
            vec![],
            "gateway.auth.mode is \"token\" but no token is configured".into(),
        ),
        (
            "LAN without auth",
            br#"{gateway: {bind: "lan", auth: {mode: "none"}}}"#.to_vec(),
            vec![],
            "refusing to bind to the LAN without auth".into(),
        ),
        (
            "LAN with a one-character token",
            br#"{gateway: {bind: "lan", auth: {token: "x"}}}"#.to_vec(),
            vec![],
            "refusing to bind to the LAN with a weak gateway.auth.token (it is 1 character long)".into(),
        ),
        (
            "LAN with a whitespace token",
            br#"{gateway: {bind: "lan", auth: {token: "    "}}}"#.to_vec(),
            vec![],
            "weak gateway.auth.token (it is only whitespace): set it (or PINCER_GATEWAY_TOKEN) to at least 24 random characters, e.g. the output of `openssl rand -base64 32`".into(),
        ),
        (
            "LAN from the environment with a repetitive token",
            br#"{gateway: {auth: {token: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}"#.to_vec(),
            vec![("PINCER_GATEWAY_BIND", "lan")],
            "weak gateway.auth.token (it repeats only 1 different characters)".into(),
        ),
        (
            "PINCER_GATEWAY_PORT",
            br#"{gateway: {auth: {token: "t"}}}"#.to_vec(),
            vec![("PINCER_GATEWAY_PORT", "high")],
            "PINCER_GATEWAY_PORT: `high` is not a port number".into(),
        ),
        (
            "PINCER_GATEWAY_BIND",
            br#"{gateway: {auth: {token: "t"}}}"#.to_vec(),
            vec![("PINCER_GATEWAY_BIND", "wan")],
            "PINCER_GATEWAY_BIND: `wan` is not `loopback` or `lan`".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, contents, extra_env, fragment) in &rows {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pincer.json"), contents).unwrap();
        let state = dir.path().to_str().unwrap();
        let mut env = vec![("PINCER_STATE_DIR", state)];
        env.extend(extra_env.iter().copied());
        let ran = run_pincer(&["gateway", "run", "--port", "0"], &env);
        let outcome = check_run(&ran, Exit::Failure, fragment).and_then(|()| {
            if ran.took > Duration::from_secs(5) {
                return Err(format!("took {:?} to refuse the config", ran.took));
            }
            Ok(())
        });
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    // A config path that is a directory.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let ran =
        run_pincer(&["gateway", "run", "--port", "0"], &[("PINCER_STATE_DIR", state), ("PINCER_CONFIG_PATH", state)]);
    if let Err(e) = check_run(&ran, Exit::Failure, "cannot read config") {
        failures.push(format!("config path is a directory: {e}"));
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len() + 1, failures.join("\n\n"));
}
