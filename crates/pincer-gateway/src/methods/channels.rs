//! `channels.pairing.*`: thin adapters over `pincer_chat::pairing::api`.

use pincer_chat::pairing::api::{self, ApiError};
use pincer_protocol::ErrorShape;
use pincer_protocol::schema::channels as wire;

use crate::router::{Ctx, Methods};

fn shape(e: ApiError) -> ErrorShape {
    match e {
        ApiError::Invalid(m) => ErrorShape::invalid_request(m),
        ApiError::NotFound(m) => ErrorShape::invalid_request(m),
        ApiError::Store(m) => ErrorShape::unavailable(format!("store: {m}")),
    }
}

pub fn register(methods: &mut Methods) {
    methods.add::<wire::PairingList, _, _>(|c: Ctx, p| async move { api::list(&c.state.chat, p).await.map_err(shape) });
    methods.add::<wire::PairingApprove, _, _>(|c: Ctx, p| async move {
        api::approve(&c.state.chat, p).await.map_err(shape)
    });
    methods.add::<wire::PairingDismiss, _, _>(|c: Ctx, p| async move {
        api::dismiss(&c.state.chat, p).await.map_err(shape)
    });
}
