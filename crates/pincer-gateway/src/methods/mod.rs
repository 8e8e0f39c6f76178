//! Method bodies that belong to the gateway itself. Domain methods (cron, delivery, devices,
//! agents) are thin adapters here over their crates.

pub mod agent;
pub mod audit;
pub mod channels;
pub mod config;
pub mod control_ui;
pub mod cron;
pub mod delivery;
pub mod devices;
pub mod doctor;
pub mod gateway;
pub mod import;
pub mod logs;
pub mod system;
pub mod tools;

use crate::router::Methods;

/// Every method this build implements.
pub fn all() -> Methods {
    let mut methods = Methods::default();
    system::register(&mut methods);
    agent::register(&mut methods);
    cron::register(&mut methods);
    delivery::register(&mut methods);
    devices::register(&mut methods);
    channels::register(&mut methods);
    doctor::register(&mut methods);
    config::register(&mut methods);
    gateway::register(&mut methods);
    control_ui::register(&mut methods);
    logs::register(&mut methods);
    tools::register(&mut methods);
    import::register(&mut methods);
    audit::register(&mut methods);
    methods
}
