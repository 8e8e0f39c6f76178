//! `send`, `deliveries.*` and `inbox.list`: thin adapters over `pincer_delivery::api`.

use pincer_delivery::api::{self, ApiError};
use pincer_protocol::ErrorShape;
use serde_json::{Value, json};

use crate::router::{Call, Methods};

fn error(e: ApiError) -> ErrorShape {
    match e {
        ApiError::Invalid(m) => ErrorShape::invalid_request(m),
        ApiError::NotFound(m) => ErrorShape::invalid_request(m).with_details(json!({ "code": "DELIVERY_NOT_FOUND" })),
        e @ ApiError::Store(_) => ErrorShape::unavailable(e.to_string()),
    }
}

fn params(call: &Call) -> Value {
    call.params.clone().unwrap_or(Value::Null)
}

pub fn register(methods: &mut Methods) {
    methods.add("send", |c: Call| async move {
        let s = &c.state;
        api::send(&s.outbox, &s.announce, &s.events, &params(&c)).await.map_err(error)
    });
    methods
        .add("deliveries.list", |c: Call| async move { api::list(&c.state.store, &params(&c)).await.map_err(error) });
    methods.add("deliveries.get", |c: Call| async move { api::get(&c.state.store, &params(&c)).await.map_err(error) });
    methods.add(
        "deliveries.retry",
        |c: Call| async move { api::retry(&c.state.outbox, &params(&c)).await.map_err(error) },
    );
    methods.add("deliveries.cancel", |c: Call| async move {
        api::cancel(&c.state.outbox, &c.state.events, &params(&c)).await.map_err(error)
    });
    methods.add("deliveries.purge", |c: Call| async move {
        api::purge(&c.state.store, &c.state.clock, &params(&c)).await.map_err(error)
    });
    methods
        .add("inbox.list", |c: Call| async move { api::inbox_list(&c.state.store, &params(&c)).await.map_err(error) });
}
