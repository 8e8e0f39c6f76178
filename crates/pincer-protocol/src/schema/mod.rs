//! The typed wire schema: every implemented method's params and result, with OpenClaw's field
//! names. The gateway registers its handlers by these types and the `pincer` CLI calls by them, so
//! server and client cannot drift apart.
//!
//! - **Params** are what the server reads. They are closed (`deny_unknown_fields`) and parsed by
//!   the one [`parse_params`]: anything but an object is refused (serde alone would read a struct
//!   from a list of its fields, at any depth), and every error names the method and the field path
//!   (`invalid cron.list params: limit: invalid value: integer -1, expected u32`). An OpenClaw field
//!   Pincer does not implement is refused by name ([`Params::UNSUPPORTED`]); the display hints
//!   OpenClaw clients send are declared as fields and ignored. A method that reads no params takes
//!   [`Ignored`] and accepts whatever it is given.
//! - **Results** are what the server writes. They are open: `extra` keeps the fields this build
//!   does not model, so a client of another version round-trips them. A field left out of the JSON
//!   is an `Option` skipped when `None`; a field sent as `null` is an `Option` without the skip.
//! - A [`Method`] ties a name to both; [`METHODS`] lists every method Pincer implements.
//!
//! State fields (`status`, `deliveryStatus`, `state`, …) are strings here for now.

pub mod agent;
pub mod audit;
pub mod channels;
pub mod chat;
pub mod config;
pub mod control_ui;
pub mod cron;
pub mod delivery;
pub mod devices;
pub mod gateway;
pub mod import;
pub mod sessions;
pub mod system;
pub mod tools;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::shape::{list_for_object, list_for_object_error};

/// One method: its wire name, the params it reads and the result it answers with.
pub trait Method {
    /// The wire name, e.g. `cron.list`.
    const NAME: &'static str;
    type Params: Params;
    type Result: Serialize + DeserializeOwned;
}

/// A method's params.
pub trait Params: Serialize + DeserializeOwned {
    /// OpenClaw fields Pincer does not implement: refused by name (`<field>: not supported by
    /// Pincer`) rather than as unknown.
    const UNSUPPORTED: &'static [&'static str] = &[];
    /// True for [`Ignored`]: the method reads no params and accepts whatever it is given.
    const IGNORED: bool = false;
}

/// Declares one unit struct per method, implementing [`Method`].
macro_rules! methods {
    ($($(#[$doc:meta])* $ty:ident = $name:literal ($params:ty) -> $result:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;
            impl $crate::schema::Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
        )*
    };
}
pub(crate) use methods;

/// Bad params: `invalid <method> params: <field path>: <what is wrong>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsError(pub String);

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamsError {}

impl ParamsError {
    /// `invalid <method> params: <message>`, for checks made after the parse.
    pub fn new(method: &str, message: impl fmt::Display) -> ParamsError {
        ParamsError(format!("invalid {method} params: {message}"))
    }
}

/// Parses `method`'s params as `T` under the closed-params rule. Absent or `null` params are an
/// empty object.
pub fn parse_params<T: Params>(method: &str, params: Option<&Value>) -> Result<T, ParamsError> {
    let empty = Value::Object(Default::default());
    let value = params.filter(|v| !v.is_null()).unwrap_or(&empty);
    if T::IGNORED {
        return T::deserialize(value).map_err(|e| ParamsError::new(method, e));
    }
    if let Some(field) = value.as_object().and_then(|o| o.keys().find(|k| T::UNSUPPORTED.contains(&k.as_str()))) {
        return Err(ParamsError::new(method, format!("{field}: not supported by Pincer")));
    }
    deserialize_closed(value).map_err(|e| ParamsError::new(method, e))
}

/// A strict parse of `value` as `T`: serde's message prefixed with the field path, an unknown
/// field named once (`patch: unknown field `x``, not `patch.x: unknown field `x``), and an object
/// written as a list refused at any depth.
pub fn deserialize_closed<T: Serialize + DeserializeOwned>(value: &Value) -> Result<T, String> {
    if value.is_array() {
        return Err(list_for_object_error(""));
    }
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(field) = inner.strip_prefix("unknown field `").and_then(|r| r.split('`').next())
            && (path == field || path.ends_with(&format!(".{field}")))
        {
            path.truncate(path.len() - field.len());
            path = path.trim_end_matches('.').to_string();
        }
        if path.is_empty() || path == "." { inner } else { format!("{path}: {inner}") }
    })?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match list_for_object(value, &back) {
        Some(path) => Err(list_for_object_error(&path)),
        None => Ok(typed),
    }
}

/// The params of a method that reads none: anything is accepted and ignored; sent as `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

impl Serialize for Ignored {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

impl Params for Ignored {
    const IGNORED: bool = true;
}

/// The params of a method that takes none: `{}` (or nothing) only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl Params for NoParams {}

/// One row of [`METHODS`].
#[derive(Clone, Copy)]
pub struct MethodSchema {
    pub name: &'static str,
    /// The method reads no params ([`Ignored`]).
    pub paramless: bool,
    /// The Rust type names of params and result, for messages.
    pub params_type: fn() -> &'static str,
    pub result_type: fn() -> &'static str,
    /// Parses params as the method's params type (the server's check, for tests and tools).
    pub check_params: fn(Option<&Value>) -> Result<(), ParamsError>,
    /// Parses a result as the method's result type and serialises it back.
    pub round_trip_result: fn(&Value) -> Result<Value, String>,
    /// Parses a result as the method's result type and writes it straight to JSON text, as the
    /// gateway writes an answer (no `Value` in between).
    pub write_result: fn(&Value) -> Result<String, String>,
}

impl MethodSchema {
    pub const fn of<M: Method>() -> MethodSchema {
        MethodSchema {
            name: M::NAME,
            paramless: <M::Params as Params>::IGNORED,
            params_type: std::any::type_name::<M::Params>,
            result_type: std::any::type_name::<M::Result>,
            check_params: |p| parse_params::<M::Params>(M::NAME, p).map(|_| ()),
            round_trip_result: |v| {
                let typed: M::Result = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                serde_json::to_value(typed).map_err(|e| e.to_string())
            },
            write_result: |v| {
                let typed: M::Result = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                serde_json::to_string(&typed).map_err(|e| e.to_string())
            },
        }
    }
}

impl fmt::Debug for MethodSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodSchema")
            .field("name", &self.name)
            .field("params", &(self.params_type)())
            .field("result", &(self.result_type)())
            .finish()
    }
}

/// Every method Pincer implements, with its params and result types.
pub const METHODS: &[MethodSchema] = &[
    MethodSchema::of::<system::Health>(),
    MethodSchema::of::<system::Status>(),
    MethodSchema::of::<system::DoctorRun>(),
    MethodSchema::of::<config::ConfigGet>(),
    MethodSchema::of::<config::ConfigSchema>(),
    MethodSchema::of::<config::ConfigReload>(),
    MethodSchema::of::<system::LogsTail>(),
    MethodSchema::of::<agent::Agent>(),
    MethodSchema::of::<agent::AgentsList>(),
    MethodSchema::of::<agent::Wake>(),
    MethodSchema::of::<agent::AgentIdentityGet>(),
    MethodSchema::of::<agent::AgentWait>(),
    MethodSchema::of::<sessions::SessionsList>(),
    MethodSchema::of::<sessions::ChatHistory>(),
    MethodSchema::of::<sessions::SessionsDelete>(),
    MethodSchema::of::<sessions::SessionsReset>(),
    MethodSchema::of::<sessions::SessionsDescribe>(),
    MethodSchema::of::<sessions::SessionsResolve>(),
    MethodSchema::of::<sessions::SessionsCompact>(),
    MethodSchema::of::<sessions::SessionsSubscribe>(),
    MethodSchema::of::<sessions::SessionsPatch>(),
    MethodSchema::of::<sessions::SessionsCleanup>(),
    MethodSchema::of::<gateway::LastHeartbeat>(),
    MethodSchema::of::<gateway::SetHeartbeats>(),
    MethodSchema::of::<gateway::SystemPresence>(),
    MethodSchema::of::<gateway::NodeList>(),
    MethodSchema::of::<gateway::ModelsList>(),
    MethodSchema::of::<gateway::ChannelsStatus>(),
    MethodSchema::of::<gateway::TasksList>(),
    MethodSchema::of::<gateway::PluginsList>(),
    MethodSchema::of::<gateway::UpdateStatus>(),
    MethodSchema::of::<gateway::WorktreesList>(),
    MethodSchema::of::<gateway::ProjectsList>(),
    MethodSchema::of::<gateway::UsageStatus>(),
    MethodSchema::of::<gateway::UsageCost>(),
    MethodSchema::of::<gateway::CommandsList>(),
    MethodSchema::of::<gateway::QuestionList>(),
    MethodSchema::of::<gateway::PluginApprovalList>(),
    MethodSchema::of::<control_ui::ModelsAuthStatus>(),
    MethodSchema::of::<control_ui::TalkCatalog>(),
    MethodSchema::of::<control_ui::SessionsCompanionState>(),
    MethodSchema::of::<control_ui::SessionsBranchesList>(),
    MethodSchema::of::<control_ui::ProgressCardGet>(),
    MethodSchema::of::<control_ui::SessionsObserverVisibility>(),
    MethodSchema::of::<control_ui::OpenclawApprovalList>(),
    MethodSchema::of::<control_ui::ArtifactsList>(),
    MethodSchema::of::<chat::ChatSend>(),
    MethodSchema::of::<chat::ChatAbort>(),
    MethodSchema::of::<chat::ChatStartup>(),
    MethodSchema::of::<chat::ChatMetadata>(),
    MethodSchema::of::<chat::SessionsMessagesSubscribe>(),
    MethodSchema::of::<chat::SessionsMessagesUnsubscribe>(),
    MethodSchema::of::<cron::Status>(),
    MethodSchema::of::<cron::List>(),
    MethodSchema::of::<cron::Get>(),
    MethodSchema::of::<cron::Preview>(),
    MethodSchema::of::<cron::Add>(),
    MethodSchema::of::<cron::Update>(),
    MethodSchema::of::<cron::Remove>(),
    MethodSchema::of::<cron::Run>(),
    MethodSchema::of::<cron::Runs>(),
    MethodSchema::of::<cron::ScratchGet>(),
    MethodSchema::of::<cron::ScratchSet>(),
    MethodSchema::of::<delivery::Send>(),
    MethodSchema::of::<delivery::DeliveriesList>(),
    MethodSchema::of::<delivery::DeliveriesGet>(),
    MethodSchema::of::<delivery::DeliveriesRetry>(),
    MethodSchema::of::<delivery::DeliveriesCancel>(),
    MethodSchema::of::<delivery::DeliveriesPurge>(),
    MethodSchema::of::<delivery::InboxList>(),
    MethodSchema::of::<devices::PairList>(),
    MethodSchema::of::<devices::PairApprove>(),
    MethodSchema::of::<devices::PairReject>(),
    MethodSchema::of::<devices::PairRemove>(),
    MethodSchema::of::<devices::PairRename>(),
    MethodSchema::of::<devices::TokenRotate>(),
    MethodSchema::of::<devices::TokenRevoke>(),
    MethodSchema::of::<devices::AuditQuery>(),
    MethodSchema::of::<audit::AuditList>(),
    MethodSchema::of::<audit::AuditActivityList>(),
    MethodSchema::of::<audit::AuditRunInspect>(),
    MethodSchema::of::<channels::PairingList>(),
    MethodSchema::of::<channels::PairingApprove>(),
    MethodSchema::of::<channels::PairingDismiss>(),
    MethodSchema::of::<tools::ExecApprovalList>(),
    MethodSchema::of::<tools::ExecApprovalGet>(),
    MethodSchema::of::<tools::ExecApprovalResolve>(),
    MethodSchema::of::<tools::ExecApprovalsGet>(),
    MethodSchema::of::<tools::ExecApprovalsSet>(),
    MethodSchema::of::<tools::ExecApprovalGrantsList>(),
    MethodSchema::of::<tools::ExecApprovalGrantsRevoke>(),
    MethodSchema::of::<tools::McpServersList>(),
    MethodSchema::of::<tools::McpServersProbe>(),
    MethodSchema::of::<import::ImportOpenclaw>(),
];

/// The schema row of `name`.
pub fn method(name: &str) -> Option<&'static MethodSchema> {
    METHODS.iter().find(|m| m.name == name)
}

/// The wire names of a struct's fields, as its derived `Deserialize` knows them (so a list of
/// them is never written twice). Empty for a type that is not a struct.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    /// A deserializer that only records the field list serde's derive hands to it.
    struct Probe(&'static [&'static str]);

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field probe")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Stop {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for &mut Probe {
        type Error = Stop;

        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = fields;
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut probe = Probe(&[]);
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// `skip_serializing_if` for counters OpenClaw leaves out at zero.
pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct P {
        limit: Option<u32>,
        inner: Option<Inner>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: Option<u32>,
    }

    impl Params for P {
        const UNSUPPORTED: &'static [&'static str] = &["thinking"];
    }

    fn err(v: Value) -> String {
        parse_params::<P>("m.x", Some(&v)).unwrap_err().0
    }

    #[test]
    fn closed_params_name_the_method_and_the_field_path() {
        assert!(parse_params::<P>("m.x", None).is_ok());
        assert!(parse_params::<P>("m.x", Some(&Value::Null)).is_ok());
        assert_eq!(err(json!([1])), "invalid m.x params: invalid type: sequence, expected an object");
        assert_eq!(err(json!("x")), "invalid m.x params: invalid type: string \"x\", expected struct P");
        assert_eq!(err(json!({"limit": -1})), "invalid m.x params: limit: invalid value: integer `-1`, expected u32");
        assert_eq!(
            err(json!({"colour": 1})),
            "invalid m.x params: unknown field `colour`, expected one of `limit`, `inner`, `tags`"
        );
        assert_eq!(err(json!({"inner": {"b": 1}})), "invalid m.x params: inner: unknown field `b`, expected `a`");
        assert_eq!(err(json!({"inner": [1]})), "invalid m.x params: inner: invalid type: sequence, expected an object");
        assert_eq!(err(json!({"thinking": "high"})), "invalid m.x params: thinking: not supported by Pincer");
        assert_eq!(
            err(json!({"tags": "a"})),
            "invalid m.x params: tags: invalid type: string \"a\", expected a sequence"
        );
    }

    #[test]
    fn ignored_params_accept_anything() {
        for v in [json!([1, 2]), json!("x"), json!({"probe": true}), Value::Null] {
            assert_eq!(parse_params::<Ignored>("health", Some(&v)), Ok(Ignored));
        }
        assert_eq!(serde_json::to_value(Ignored).unwrap(), json!({}));
        assert_eq!(
            parse_params::<NoParams>("device.pair.list", Some(&json!({"all": true}))).unwrap_err().0,
            "invalid device.pair.list params: unknown field `all`, there are no fields"
        );
    }

    /// Every answer captured from the gateway (`answers/<method>.json`, written by the end-to-end
    /// `schema` test) parses as its method's result type and serialises back unchanged: the types
    /// name every field, leave out exactly the absent ones and keep the number kinds.
    #[test]
    fn every_captured_answer_round_trips_through_its_result_type() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("answers");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let schema = method(&name).unwrap_or_else(|| panic!("{}: no method {name} in the schema", path.display()));
            let samples: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert!(!samples.is_empty(), "{name}: no samples");
            for sample in &samples {
                let back = (schema.round_trip_result)(sample).unwrap_or_else(|e| panic!("{name}: {e}\n{sample}"));
                assert_eq!(&back, sample, "{name}: the round trip lost or changed a field");
            }
            seen.push(name);
        }
        for m in METHODS {
            assert!(seen.iter().any(|s| s == m.name), "no captured answer of {}", m.name);
        }
    }

    /// The gateway writes a typed answer straight into its frame; the frame it wrote before went
    /// through `serde_json::to_value` first. For every captured answer of every method the two
    /// are the same bytes: no result type writes a key twice (a `Value` keeps one), an `f32` (a
    /// `Value` widens it) or keys the `Value` would reorder.
    #[test]
    fn every_answer_written_straight_is_the_text_its_value_gave() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("answers");
        let mut compared = 0;
        for m in METHODS {
            let path = dir.join(format!("{}.json", m.name));
            let samples: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for sample in &samples {
                let via_value = (m.round_trip_result)(sample).unwrap_or_else(|e| panic!("{}: {e}", m.name));
                let straight = (m.write_result)(sample).unwrap_or_else(|e| panic!("{}: {e}", m.name));
                assert_eq!(straight, via_value.to_string(), "{}: the answer written straight differs", m.name);
                let old = serde_json::to_string(&crate::Frame::Res(crate::ResponseFrame::ok("7:é\"\n", via_value)));
                let raw = serde_json::value::RawValue::from_string(straight).unwrap();
                assert_eq!(crate::ok_response_text("7:é\"\n", &raw), old.unwrap(), "{}: the frame differs", m.name);
                compared += 1;
            }
        }
        assert!(compared >= METHODS.len(), "only {compared} answers compared");
    }

    #[test]
    fn every_method_is_listed_once_with_a_scope() {
        let mut names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a method is listed twice");
        for m in METHODS {
            assert_eq!(crate::method_info(m.name).name, m.name, "{} is not in the method → scope table", m.name);
        }
    }
}
