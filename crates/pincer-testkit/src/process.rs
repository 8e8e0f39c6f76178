//! Runs the real `pincer` binary: a gateway on a free port with its own state dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway process. Killed (SIGKILL) on drop if still running.
pub struct GatewayProcess {
    pub child: Child,
    pub port: u16,
    pub state_dir: PathBuf,
    pub token: String,
    binary: PathBuf,
    log: PathBuf,
    /// Extra environment for the next (re)start, e.g. `PINCER_CRASHPOINTS`.
    env: Vec<(String, String)>,
    /// The open-file limit (soft and hard) the process starts with, when not inherited.
    open_files: Option<u64>,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl GatewayProcess {
    /// Writes `config` (JSON; `gateway.port` and `gateway.auth.token` are filled in when absent) to
    /// `<state_dir>/pincer.json`, starts `pincer gateway` and waits for `/readyz`.
    pub fn start(binary: &Path, state_dir: &Path, config: serde_json::Value) -> anyhow::Result<GatewayProcess> {
        Self::start_limited(binary, state_dir, config, None)
    }

    /// [`GatewayProcess::start`] with the open-file limit (soft and hard) set to `open_files`, as
    /// `ulimit -n` would.
    pub fn start_limited(
        binary: &Path,
        state_dir: &Path,
        mut config: serde_json::Value,
        open_files: Option<u64>,
    ) -> anyhow::Result<GatewayProcess> {
        std::fs::create_dir_all(state_dir)?;
        let port = config["gateway"]["port"].as_u64().map(|p| p as u16).unwrap_or_else(free_port);
        config["gateway"]["port"] = port.into();
        if config["gateway"]["auth"]["token"].is_null() && config["gateway"]["auth"]["mode"] != "none" {
            config["gateway"]["auth"]["token"] = "e2e-token-0123456789".into();
        }
        let token = config["gateway"]["auth"]["token"].as_str().unwrap_or_default().to_string();
        std::fs::write(state_dir.join("pincer.json"), serde_json::to_string_pretty(&config)?)?;
        let mut gw = GatewayProcess {
            child: spawn(binary, state_dir, &state_dir.join("gateway.log"), &[], open_files)?,
            port,
            state_dir: state_dir.to_path_buf(),
            token,
            binary: binary.to_path_buf(),
            log: state_dir.join("gateway.log"),
            env: Vec::new(),
            open_files,
        };
        gw.wait_ready()?;
        Ok(gw)
    }

    /// Restarts (after a kill or stop) with `env` added, e.g. `[("PINCER_CRASHPOINTS", "outbox.sent:3")]`;
    /// later [`GatewayProcess::restart`]s keep it until [`GatewayProcess::clear_env`].
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.restart()
    }

    /// Drops the extra environment for later restarts.
    pub fn clear_env(&mut self) {
        self.env.clear();
    }

    /// Waits up to `limit` for the process to exit on its own; its status, or `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("gateway exited with {status} before ready:\n{}", self.log());
            }
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr()) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        anyhow::bail!("gateway not ready after 20 s:\n{}", self.log())
    }

    /// `kill -9`: no cleanup, no flush beyond what was committed.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait; returns how long the exit took.
    pub fn terminate(&mut self) -> anyhow::Result<(std::process::ExitStatus, Duration)> {
        let started = Instant::now();
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait()?;
        Ok((status, started.elapsed()))
    }

    /// Starts the gateway again on the same state dir and port (after a kill or stop).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.try_wait();
        self.child = spawn(&self.binary, &self.state_dir, &self.log, &self.env, self.open_files)?;
        self.wait_ready()
    }

    /// Runs `pincer <args>` as a client of this gateway (only PINCER_STATE_DIR is set).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PINCER_STATE_DIR", &self.state_dir)
            .output()
            .expect("run pincer")
    }
}

fn spawn(
    binary: &Path,
    state_dir: &Path,
    log: &Path,
    env: &[(String, String)],
    open_files: Option<u64>,
) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = Command::new(binary);
    if let Some(n) = open_files {
        // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
        unsafe {
            command.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    Ok(command
        .args(["gateway", "run"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PINCER_STATE_DIR", state_dir)
        .env("PINCER_LOG", std::env::var("PINCER_LOG").unwrap_or_else(|_| "info".into()))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()?)
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}
