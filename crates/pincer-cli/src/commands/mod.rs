//! One module per command group.

pub mod gateway;
pub mod system;
