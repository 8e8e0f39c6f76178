//! `pincer gateway [run]`: the foreground daemon.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use pincer_core::config::{Bind, ensure_config, process_env};
use pincer_core::{Config, StatePaths, SystemClock};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayCommand {
    #[command(subcommand)]
    action: Option<GatewayAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum GatewayAction {
    /// Run the gateway in the foreground.
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Port for HTTP and WebSocket (default: gateway.port, 18789).
    #[arg(long)]
    port: Option<u16>,
    /// Interface to listen on: loopback (127.0.0.1) or lan (0.0.0.0, needs a token of 24+ random characters).
    #[arg(long, value_parser = ["loopback", "lan"])]
    bind: Option<String>,
}

pub fn run(cmd: GatewayCommand, paths: StatePaths) -> anyhow::Result<ExitCode> {
    let args = match cmd.action {
        Some(GatewayAction::Run(args)) => args,
        None => cmd.run,
    };
    let wrote = ensure_config(&paths)?;
    let mut config = Config::load(&paths.config_path, &process_env)?;
    if let Some(port) = args.port {
        config.gateway.port = port;
    }
    if let Some(bind) = args.bind.as_deref().and_then(Bind::parse) {
        config.gateway.bind = bind;
    }
    crate::logging::init(&config.logging, &paths)?;
    if wrote {
        tracing::info!(config = %paths.config_path.display(), "first start: wrote a config with a new random gateway token");
    }
    raise_open_file_limit();
    limit_malloc_arenas();
    let armed = pincer_core::crashpoint::init().map_err(anyhow::Error::msg)?;
    if !armed.is_empty() {
        tracing::warn!(points = ?armed, "crash points are armed ({}): this gateway will kill itself", pincer_core::crashpoint::ENV);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("pincer").build()?;
    runtime.block_on(async move {
        let options = pincer_gateway::GatewayOptions {
            paths,
            config,
            clock: SystemClock::shared(),
            command_supervisor: supervisor_exe(),
            failpoints: pincer_core::crashpoint::Failpoints::from_env().map_err(anyhow::Error::msg)?,
        };
        let gateway = pincer_gateway::start(options).await?;
        tokio::spawn(release_startup_pages());
        serve_until_stopped(&gateway).await;
        gateway.shutdown().await;
        anyhow::Ok(())
    })?;
    // Detached blocking work (e.g. a store read) must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

/// How long after `/readyz` turns green the start-up pages are handed back: long enough for the
/// work that follows readiness (the first scheduler pass, channel connects) to have run.
const SETTLE_BEFORE_RELEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// Unmaps the code pages only start-up ran and trims the heap, once the gateway has settled; then,
/// whenever it has sat idle after work that faulted code back in, does so again (see
/// [`crate::startup_pages`]). Best effort: a failure is logged once and ends the task.
async fn release_startup_pages() {
    use crate::startup_pages::{IDLE_CHECK, release, sample, should_release_again};
    tokio::time::sleep(SETTLE_BEFORE_RELEASE).await;
    let once = || async {
        match tokio::task::spawn_blocking(|| release().and_then(|r| Ok((r, sample()?)))).await {
            Ok(Ok((r, (cpu, file_kb)))) => {
                tracing::debug!(code_kb = r.code / 1024, mappings = r.mappings, "released unused code pages");
                Some((cpu, file_kb))
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot release unused code pages");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "releasing unused code pages failed");
                None
            }
        }
    };
    let Some((mut cpu, mut file_kb_after)) = once().await else { return };
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        let Ok((now_cpu, file_kb)) = sample() else { return };
        if should_release_again(now_cpu.saturating_sub(cpu), file_kb, file_kb_after) {
            let Some((c, f)) = once().await else { return };
            (cpu, file_kb_after) = (c, f);
        } else {
            cpu = now_cpu;
        }
    }
}

/// This binary, which supervises command jobs (`pincer __supervise`). On Linux `/proc/self/exe`,
/// which a child execs as the very file this gateway runs from — even after an upgrade replaced
/// or removed it, so the supervisor always speaks this gateway's protocol.
fn supervisor_exe() -> Option<std::path::PathBuf> {
    #[cfg(target_os = "linux")]
    if std::path::Path::new("/proc/self/exe").exists() {
        return Some("/proc/self/exe".into());
    }
    match std::env::current_exe() {
        Ok(exe) => Some(exe),
        Err(e) => {
            tracing::error!(error = %e, "cannot find this executable's path; command jobs will fail until a restart");
            None
        }
    }
}

/// Serves until SIGTERM or Ctrl-C; each SIGHUP rereads the config file meanwhile.
async fn serve_until_stopped(gateway: &pincer_gateway::RunningGateway) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        let stop = stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: rereading the config file");
                    gateway.reload_config("sighup").await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    stop_signal().await
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// glibc gives threads up to 8 malloc arenas per core and returns little of their freed memory,
/// so a gateway whose blocking threads come and go creeps up in RSS: `cargo xtask soak` measured
/// 0.26–0.41 MB a minute with the default and 0.13 with two arenas, about half of that SQLite's
/// page cache filling up to its bound. The price is a higher peak under a burst (1,000 clients:
/// +30 MB instead of +18 MB). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts an allocator tunable; M_ARENA_MAX takes effect for arenas
        // created after the call, and is safe at any time.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Each WebSocket client holds a file descriptor; the common soft limit of 1,024 would refuse the
/// thousandth client while the hard limit allows far more. Raise the soft limit to the hard one.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(soft = lim.rlim_cur, "cannot raise the open-file limit");
            }
        }
    }
}
