//! pincer-tools' integration tests: every tool against real servers on 127.0.0.1, real processes
//! and real directories, with time driven by a `FakeClock`.

mod exec;
mod fs;
mod mcp;
mod mcp_server;
mod registry;
mod support;
mod timing;
mod web_fetch;
mod web_search;
