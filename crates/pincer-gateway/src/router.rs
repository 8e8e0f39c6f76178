//! Method dispatch: the registry of implemented methods, the role and scope checks, and the call.
//! The router is thin; every method body lives in `methods/` or in a domain crate. A method is
//! registered by its [`Method`] type from `pincer_protocol::schema`, so its params are parsed here,
//! once, by the schema's `parse_params` (closed, `invalid <method> params: <field>: …`), and its
//! typed answer is serialised here, straight to JSON text (no `serde_json::Value` in between: for
//! a large answer building one cost more than writing it): JSON stays at this edge.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pincer_protocol::schema::{Method, parse_params};
use pincer_protocol::{ErrorShape, Requirement, Role, Scope, method_info};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::state::{AppState, Caller};

/// A method's answer, already JSON text (the `payload` of its `res` frame), or its error.
pub type MethodResult = Result<Box<RawValue>, ErrorShape>;
pub type MethodFuture = Pin<Box<dyn Future<Output = MethodResult> + Send>>;
type Handler = Arc<dyn Fn(Call) -> MethodFuture + Send + Sync>;

/// One method invocation, before its params are parsed.
pub struct Call {
    pub state: Arc<AppState>,
    pub caller: Arc<Caller>,
    pub params: Option<Value>,
    pub reply: Reply,
}

/// Who calls and on what: what a typed handler gets besides its params.
#[derive(Clone)]
pub struct Ctx {
    pub state: Arc<AppState>,
    pub caller: Arc<Caller>,
    pub reply: Reply,
}

/// The connection's side of one request, for the methods that answer in two steps (OpenClaw's
/// `agent`: `status: "accepted"` first) or must not stream before their answer is out
/// (`chat.send`). Empty where nobody waits on a socket.
#[derive(Clone, Default)]
pub struct Reply {
    /// Queues an interim `res` frame with the request's id.
    pub interim: Option<Arc<dyn Fn(Value) + Send + Sync>>,
    /// Turns true once the final answer is queued on the connection.
    pub answered: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Reply {
    /// Sends an interim answer, where there is a connection to send it on.
    pub fn interim(&self, payload: Value) {
        if let Some(send) = &self.interim {
            send(payload);
        }
    }

    /// Resolves once the final answer is queued (at once where there is no connection).
    pub fn answered(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let answered = self.answered.clone();
        Box::pin(async move {
            if let Some(mut rx) = answered {
                // Err: the connection's request task ended without answering; go on anyway.
                let _ = rx.wait_for(|done| *done).await;
            }
        })
    }
}

#[derive(Clone)]
struct Entry {
    handler: Handler,
    /// The params type's name, for the tidy test against the schema.
    params_type: &'static str,
}

/// The implemented methods; `features.methods` lists exactly these.
#[derive(Default, Clone)]
pub struct Methods {
    handlers: BTreeMap<&'static str, Entry>,
}

impl Methods {
    /// Registers method `M`: `f` gets its parsed params and answers with its typed result.
    pub fn add<M, F, Fut>(&mut self, f: F)
    where
        M: Method + 'static,
        F: Fn(Ctx, M::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Result, ErrorShape>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |call: Call| -> MethodFuture {
            let params = match parse_params::<M::Params>(M::NAME, call.params.as_ref()) {
                Ok(p) => p,
                Err(e) => return Box::pin(std::future::ready(Err(ErrorShape::invalid_request(e.0)))),
            };
            let answer = f(Ctx { state: call.state, caller: call.caller, reply: call.reply }, params);
            Box::pin(async move {
                let result = answer.await?;
                serde_json::value::to_raw_value(&result)
                    .map_err(|e| ErrorShape::unavailable(format!("{}: cannot write the answer: {e}", M::NAME)))
            })
        });
        self.handlers.insert(M::NAME, Entry { handler, params_type: std::any::type_name::<M::Params>() });
    }

    pub fn names(&self) -> Vec<String> {
        self.handlers.keys().map(|k| k.to_string()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// Each method's params type, by method name.
    pub fn params_types(&self) -> BTreeMap<&'static str, &'static str> {
        self.handlers.iter().map(|(name, e)| (*name, e.params_type)).collect()
    }

    /// Checks role and scope, then runs the method.
    pub async fn dispatch(
        &self,
        state: Arc<AppState>,
        caller: Arc<Caller>,
        method: &str,
        params: Option<Value>,
    ) -> MethodResult {
        self.dispatch_with(state, caller, method, params, Reply::default()).await
    }

    /// [`Methods::dispatch`] on a connection that can take interim answers.
    pub async fn dispatch_with(
        &self,
        state: Arc<AppState>,
        caller: Arc<Caller>,
        method: &str,
        params: Option<Value>,
        reply: Reply,
    ) -> MethodResult {
        let Some(entry) = self.handlers.get(method).cloned() else {
            return Err(ErrorShape::unknown_method(method));
        };
        authorize(&caller, method, params.as_ref())?;
        (entry.handler)(Call { state, caller, params, reply }).await
    }
}

/// Role and scope check for one call, per OpenClaw's rules: `operator.admin` passes every
/// operator check; node-only methods need role `node`.
pub fn authorize(caller: &Caller, method: &str, params: Option<&Value>) -> Result<(), ErrorShape> {
    let info = method_info(method);
    match (info.requirement, caller.role) {
        (Requirement::NodeRole, Role::Node) => return Ok(()),
        (Requirement::NodeRole, role) | (_, role @ Role::Node) => {
            return Err(ErrorShape::invalid_request(format!("unauthorized role: {}", role.as_str())));
        }
        _ => {}
    }
    if caller.scopes.contains(Scope::Admin) {
        return Ok(());
    }
    match info.required_scope(params) {
        Some(scope) if !caller.scopes.satisfies(scope) => Err(ErrorShape::missing_scope(scope.as_str())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use pincer_protocol::schema::METHODS;

    /// Tidy: every method the router serves is in the schema with the same params type, and every
    /// schema method is served; the methods that read no params are exactly the declared ones.
    #[test]
    fn every_routed_method_has_its_params_type_in_the_schema() {
        let routed = crate::methods::all().params_types();
        let schema: std::collections::BTreeMap<&str, &str> =
            METHODS.iter().map(|m| (m.name, (m.params_type)())).collect();
        for (name, params) in &routed {
            match schema.get(name) {
                None => panic!("{name} is routed but not in pincer_protocol::schema::METHODS"),
                Some(declared) => assert_eq!(params, declared, "{name}: the router and the schema disagree"),
            }
        }
        for name in schema.keys() {
            assert!(routed.contains_key(name), "{name} is in the schema but not routed");
        }
        let paramless: BTreeSet<&str> = METHODS.iter().filter(|m| m.paramless).map(|m| m.name).collect();
        assert_eq!(
            paramless,
            BTreeSet::from(["health", "status", "cron.status", "doctor.run"]),
            "a method that ignores its params must be declared here on purpose"
        );
    }
}
