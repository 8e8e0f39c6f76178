//! Harness: an in-process gateway under a fake clock, and paths to the real binary.

use std::path::PathBuf;

use pincer_core::{Config, FakeClock, StatePaths};
use pincer_gateway::{GatewayOptions, RunningGateway};
use pincer_testkit::ws::{RawClient, cli_connect_params};
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789";
/// 2026-03-01T00:00:00Z, so tests never depend on today's date.
pub const T0: i64 = 1_772_323_200_000;

/// The `pincer` binary built for this test run.
pub fn pincer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pincer"))
}

/// A gateway running inside the test process on a free port, driven by a [`FakeClock`].
pub struct TestGateway {
    pub gateway: Option<RunningGateway>,
    pub clock: FakeClock,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with("{}").await
    }

    /// Starts with `extra` (JSON5) merged over a config holding a token and port 0.
    pub async fn start_with(extra: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let mut config = Config::parse(extra, &no_env).unwrap();
        config.gateway.port = 0;
        if config.gateway.auth.token.is_none() {
            config.gateway.auth.token = Some(TOKEN.into());
        }
        let paths = StatePaths::resolve(Some(dir.path()), &no_env);
        let clock = FakeClock::new(T0);
        let gateway = pincer_gateway::start(GatewayOptions { paths, config, clock: clock.shared() }).await.unwrap();
        TestGateway { gateway: Some(gateway), clock, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.gateway.as_ref().unwrap().addr
    }

    /// A connected CLI-style client holding `scopes`.
    pub async fn client(&self, scopes: &[&str]) -> RawClient {
        RawClient::connect(&self.url(), cli_connect_params(Some(TOKEN), scopes)).await.unwrap().0
    }

    pub async fn stop(mut self) {
        if let Some(gw) = self.gateway.take() {
            gw.shutdown().await;
        }
    }
}

/// `error.code` and `error.message` of a `res` frame.
pub fn error_of(res: &Value) -> (String, String) {
    assert_eq!(res["ok"], false, "expected an error response: {res}");
    (res["error"]["code"].as_str().unwrap().into(), res["error"]["message"].as_str().unwrap().into())
}
