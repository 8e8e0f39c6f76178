//! One module per command group.

pub mod agent;
pub mod backup;
pub mod config;
pub mod cron;
pub mod dashboard;
pub mod delivery;
pub mod devices;
pub mod gateway;
pub mod import;
pub mod logs;
pub mod pairing;
pub mod service;
pub mod setup;
pub mod system;
pub mod tools;
