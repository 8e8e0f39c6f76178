//! Method dispatch: the registry of implemented methods, the role and scope checks, and the call.
//! The router is thin; every method body lives in `methods/` or in a domain crate.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pincer_protocol::{ErrorShape, Requirement, Role, Scope, method_info};
use serde_json::Value;

use crate::state::{AppState, Caller};

pub type MethodResult = Result<Value, ErrorShape>;
pub type MethodFuture = Pin<Box<dyn Future<Output = MethodResult> + Send>>;
type Handler = Arc<dyn Fn(Call) -> MethodFuture + Send + Sync>;

/// One method invocation.
pub struct Call {
    pub state: Arc<AppState>,
    pub caller: Arc<Caller>,
    pub params: Option<Value>,
}

impl Call {
    /// The params as `T`, or `INVALID_REQUEST invalid <method> params: …`.
    pub fn params<T: serde::de::DeserializeOwned>(&self, method: &str) -> Result<T, ErrorShape> {
        let value = self.params.clone().unwrap_or(Value::Object(Default::default()));
        if value.is_array() {
            // serde would read a struct from a list of its fields.
            return Err(ErrorShape::invalid_request(format!(
                "invalid {method} params: invalid type: sequence, expected an object"
            )));
        }
        serde_json::from_value(value).map_err(|e| ErrorShape::invalid_request(format!("invalid {method} params: {e}")))
    }
}

/// The implemented methods; `features.methods` lists exactly these.
#[derive(Default, Clone)]
pub struct Methods {
    handlers: BTreeMap<&'static str, Handler>,
}

impl Methods {
    pub fn add<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MethodResult> + Send + 'static,
    {
        self.handlers.insert(name, Arc::new(move |call| Box::pin(f(call))));
    }

    pub fn names(&self) -> Vec<String> {
        self.handlers.keys().map(|k| k.to_string()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// Checks role and scope, then runs the method.
    pub async fn dispatch(
        &self,
        state: Arc<AppState>,
        caller: Arc<Caller>,
        method: &str,
        params: Option<Value>,
    ) -> MethodResult {
        let Some(handler) = self.handlers.get(method).cloned() else {
            return Err(ErrorShape::unknown_method(method));
        };
        authorize(&caller, method, params.as_ref())?;
        handler(Call { state, caller, params }).await
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
