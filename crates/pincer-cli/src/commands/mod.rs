//! One module per command group.

pub mod cron;
pub mod gateway;
pub mod system;
