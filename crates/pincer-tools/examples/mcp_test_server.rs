//! A stdio MCP server for pincer-tools' tests (built with `cargo test`): `echo`, `pid`, `fail`,
//! `slow`, and `crash` / `garbage`, which end the process mid-call or corrupt its output.

#[path = "../tests/it/mcp_server.rs"]
mod mcp_server;

use rmcp::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = mcp_server::TestServer { own_process: true };
    let running = match server.serve(rmcp::transport::stdio()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp_test_server: handshake failed: {e}");
            std::process::exit(2);
        }
    };
    let _ = running.waiting().await;
}
