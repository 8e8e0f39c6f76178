//! Test and benchmark support shared by the end-to-end suite and `xtask`.
//!
//! - [`browser`]: headless Chromium over WebDriver, for the console's tests.
//! - [`ws`]: a raw protocol client that can send anything, including bad frames.
//! - [`process`]: runs the real `pincer` binary against a temporary state dir, kills it with
//!   `SIGKILL` or stops it with `SIGTERM`.
//! - [`fakes`]: fake Discord, Telegram, Slack, webhook, OpenAI-compatible and Anthropic servers.
//! - [`http`]: a minimal HTTP/1.1 GET for `/readyz` and `/metrics`.
//!
//! Fakes are real servers on 127.0.0.1, never mocks of Pincer's own traits.

pub mod browser;
pub mod fakes;
pub mod http;
pub mod process;
pub mod ws;
