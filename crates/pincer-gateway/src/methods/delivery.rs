//! `send`, `deliveries.*` and `inbox.list`: thin adapters over `pincer_delivery::api`.

use pincer_delivery::api::{self, ApiError};
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::delivery as wire;
use serde_json::json;

use crate::router::{Ctx, Methods};

fn error(e: ApiError) -> ErrorShape {
    match e {
        ApiError::Invalid(m) => ErrorShape::invalid_request(m),
        ApiError::NotFound(m) => ErrorShape::invalid_request(m).with_details(json!({ "code": "DELIVERY_NOT_FOUND" })),
        e @ ApiError::Store(_) => ErrorShape::unavailable(e.to_string()),
    }
}

pub fn register(methods: &mut Methods) {
    methods.add::<wire::Send, _, _>(|c: Ctx, p| async move {
        let s = &c.state;
        api::send(&s.outbox, &s.announce, &s.events, p).await.map_err(error)
    });
    methods.add::<wire::DeliveriesList, _, _>(
        |c: Ctx, p| async move { api::list(&c.state.store, p).await.map_err(error) },
    );
    methods
        .add::<wire::DeliveriesGet, _, _>(|c: Ctx, p| async move { api::get(&c.state.store, p).await.map_err(error) });
    methods.add::<wire::DeliveriesRetry, _, _>(|c: Ctx, p| async move {
        api::retry(&c.state.outbox, p).await.map_err(error)
    });
    methods.add::<wire::DeliveriesCancel, _, _>(|c: Ctx, p| async move {
        api::cancel(&c.state.outbox, &c.state.events, p).await.map_err(error)
    });
    methods.add::<wire::DeliveriesPurge, _, _>(|c: Ctx, p| async move {
        api::purge(&c.state.store, &c.state.clock, p).await.map_err(error)
    });
    methods.add::<wire::InboxList, _, _>(
        |c: Ctx, p| async move { api::inbox_list(&c.state.store, p).await.map_err(error) },
    );
}
