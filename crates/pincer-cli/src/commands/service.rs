//! `pincer service install|uninstall|status|restart`: the gateway as a per-user service — a
//! systemd user unit on Linux, a launchd agent on macOS. The unit runs this very binary with the
//! state directory (and config path) of the command that installed it, restarts it on failure,
//! and stops it with SIGTERM, on which the gateway shuts down cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::{Args, Subcommand};
use pincer_core::StatePaths;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write the unit (systemd user unit / launchd agent), enable it and start the gateway.
    Install(InstallArgs),
    /// Stop and disable the service and remove its unit.
    Uninstall(NameArg),
    /// Whether the unit is installed and the gateway running under it.
    Status(NameArg),
    /// Restart the gateway under the service manager (after an upgrade or a config change).
    Restart(NameArg),
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The service's name, e.g. --name pincer-work for a second gateway with its own --state-dir.
    #[arg(long, default_value = "pincer")]
    name: String,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the unit and where it would go; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write and enable the unit, but do not start the gateway now.
    #[arg(long)]
    no_start: bool,
    #[command(flatten)]
    name: NameArg,
}

/// What a unit runs: the binary, its state and config, under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    pub name: String,
    pub exe: PathBuf,
    pub state_dir: PathBuf,
    /// Set only when it is not `<state>/pincer.json`.
    pub config_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Systemd,
    Launchd,
}

fn manager() -> anyhow::Result<Manager> {
    if cfg!(target_os = "linux") {
        Ok(Manager::Systemd)
    } else if cfg!(target_os = "macos") {
        Ok(Manager::Launchd)
    } else {
        anyhow::bail!(
            "pincer service is not supported on this system (only Linux with systemd and macOS with launchd): run `pincer gateway` under your own service manager"
        )
    }
}

pub fn run(cmd: ServiceCommand, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let manager = manager()?;
    let home = std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set: the unit goes under it")?;
    match cmd {
        ServiceCommand::Install(args) => {
            check_name(&args.name.name)?;
            let spec = spec(&args.name.name, paths)?;
            let (path, text) = match manager {
                Manager::Systemd => (systemd_unit_path(&home, &spec.name), render_systemd(&spec)),
                Manager::Launchd => (launchd_plist_path(&home, &spec.name), render_launchd(&spec)),
            };
            if args.dry_run {
                println!("# {}", path.display());
                print!("{text}");
                return Ok(ExitCode::SUCCESS);
            }
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
                .with_context(|| format!("cannot create the folder of {}", path.display()))?;
            std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
            println!("Wrote {}", path.display());
            let unit = unit_name(&spec.name);
            let steps: Vec<Vec<String>> = match (manager, args.no_start) {
                (Manager::Systemd, false) => vec![sc(&["daemon-reload"]), sc(&["enable", "--now", &unit])],
                (Manager::Systemd, true) => vec![sc(&["daemon-reload"]), sc(&["enable", &unit])],
                (Manager::Launchd, true) => vec![],
                (Manager::Launchd, false) => {
                    vec![launchctl(&["bootstrap", &gui_domain(), &path.display().to_string()])]
                }
            };
            run_steps(&steps, "the unit is written")?;
            match args.no_start {
                true => println!("Enabled; it starts at your next login (or now with `pincer service restart`)."),
                false => println!(
                    "Started. Check it with `pincer service status` and `pincer logs -f`.{}",
                    if manager == Manager::Systemd {
                        "\nTo keep it running while you are logged out: `loginctl enable-linger $USER`."
                    } else {
                        ""
                    }
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Uninstall(NameArg { name }) => {
            check_name(&name)?;
            let unit = unit_name(&name);
            let path = match manager {
                Manager::Systemd => systemd_unit_path(&home, &name),
                Manager::Launchd => launchd_plist_path(&home, &name),
            };
            if !path.exists() {
                anyhow::bail!("no {} to remove: the service `{name}` is not installed", path.display());
            }
            // Stopping may fail when it is not running; removing the unit is what matters.
            let _ = match manager {
                Manager::Systemd => run_steps(&[sc(&["disable", "--now", &unit])], "nothing was removed"),
                Manager::Launchd => {
                    run_steps(&[launchctl(&["bootout", &format!("{}/{}", gui_domain(), label(&name))])], "")
                }
            };
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            if manager == Manager::Systemd {
                let _ = run_steps(&[sc(&["daemon-reload"])], "the unit is removed");
            }
            println!("Removed {} (the state directory is kept).", path.display());
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Status(NameArg { name }) => {
            check_name(&name)?;
            let path = match manager {
                Manager::Systemd => systemd_unit_path(&home, &name),
                Manager::Launchd => launchd_plist_path(&home, &name),
            };
            let installed = path.exists();
            println!("unit:    {} ({})", path.display(), if installed { "installed" } else { "not installed" });
            let state = match manager {
                // `show` prints properties in its own order: pick them by key.
                Manager::Systemd => {
                    capture(&sc(&["show", &unit_name(&name), "--property=ActiveState,SubState,MainPID"])).map(|out| {
                        let get = |k: &str| {
                            out.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=')).unwrap_or("").to_string()
                        };
                        format!("{} {} (pid {})", get("ActiveState"), get("SubState"), get("MainPID"))
                    })
                }
                Manager::Launchd => {
                    capture(&launchctl(&["print", &format!("{}/{}", gui_domain(), label(&name))])).map(|out| {
                        out.lines().find(|l| l.trim_start().starts_with("state =")).unwrap_or("").trim().to_string()
                    })
                }
            };
            match state {
                Ok(state) => {
                    println!("state:   {state}");
                    Ok(if installed && (state.starts_with("active") || state.contains("running")) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                Err(e) => {
                    println!("state:   unknown ({e:#})");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        ServiceCommand::Restart(NameArg { name }) => {
            check_name(&name)?;
            let step = match manager {
                Manager::Systemd => sc(&["restart", &unit_name(&name)]),
                Manager::Launchd => launchctl(&["kickstart", "-k", &format!("{}/{}", gui_domain(), label(&name))]),
            };
            run_steps(&[step], "")?;
            println!("Restarted `{name}`.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A name that is safe in a unit file name and a launchd label.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    anyhow::ensure!(ok, "--name `{name}`: use letters, digits, `-`, `_` and `.` only (e.g. pincer-work)");
    Ok(())
}

fn spec(name: &str, paths: &StatePaths) -> anyhow::Result<UnitSpec> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let state_dir = absolute(&paths.state_dir);
    let config_path = absolute(&paths.config_path);
    let config_path = (config_path != state_dir.join("pincer.json")).then_some(config_path);
    Ok(UnitSpec { name: name.to_string(), exe, state_dir, config_path })
}

fn unit_name(name: &str) -> String {
    format!("{name}.service")
}

fn label(name: &str) -> String {
    format!("dev.pincer.{name}")
}

/// `$XDG_CONFIG_HOME/systemd/user/<name>.service`, `~/.config/…` by default.
pub fn systemd_unit_path(home: &Path, name: &str) -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    config.join("systemd/user").join(unit_name(name))
}

pub fn launchd_plist_path(home: &Path, name: &str) -> PathBuf {
    home.join("Library/LaunchAgents").join(format!("{}.plist", label(name)))
}

/// A systemd user unit. Values are quoted for systemd (`"…"` with `\\` and `\"` escaped), so
/// paths with spaces survive.
pub fn render_systemd(spec: &UnitSpec) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"));
    let mut env = vec![format!("Environment={}", q(&format!("PINCER_STATE_DIR={}", spec.state_dir.display())))];
    if let Some(config) = &spec.config_path {
        env.push(format!("Environment={}", q(&format!("PINCER_CONFIG_PATH={}", config.display()))));
    }
    format!(
        "# Written by `pincer service install`; remove with `pincer service uninstall`.\n\
         [Unit]\n\
         Description=Pincer gateway ({state})\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exe} gateway run\n\
         {env}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=30\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        state = spec.state_dir.display().to_string().replace('%', "%%"),
        exe = q(&spec.exe.display().to_string()),
        env = env.join("\n"),
    )
}

/// A launchd agent: runs at load, kept alive after a crash (not after a clean exit).
pub fn render_launchd(spec: &UnitSpec) -> String {
    let x = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut env =
        format!("    <key>PINCER_STATE_DIR</key><string>{}</string>\n", x(&spec.state_dir.display().to_string()));
    if let Some(config) = &spec.config_path {
        env.push_str(&format!(
            "    <key>PINCER_CONFIG_PATH</key><string>{}</string>\n",
            x(&config.display().to_string())
        ));
    }
    let log = x(&spec.state_dir.join("logs/launchd.log").display().to_string());
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by `pincer service install`; remove with `pincer service uninstall`. -->
<plist version="1.0">
<dict>
  <key>Label</key><string>{label}</string>
  <key>ProgramArguments</key>
  <array>
    <string>{exe}</string>
    <string>gateway</string>
    <string>run</string>
  </array>
  <key>EnvironmentVariables</key>
  <dict>
{env}  </dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>ThrottleInterval</key><integer>5</integer>
  <key>StandardErrorPath</key><string>{log}</string>
</dict>
</plist>
"#,
        label = x(&label(&spec.name)),
        exe = x(&spec.exe.display().to_string()),
    )
}

fn sc(args: &[&str]) -> Vec<String> {
    ["systemctl", "--user"].iter().chain(args).map(|s| s.to_string()).collect()
}

fn launchctl(args: &[&str]) -> Vec<String> {
    std::iter::once("launchctl").chain(args.iter().copied()).map(str::to_string).collect()
}

fn gui_domain() -> String {
    // SAFETY: getuid has no preconditions.
    format!("gui/{}", unsafe { libc::getuid() })
}

/// Runs each command; the first failure is an error that says what was done and what to run.
fn run_steps(steps: &[Vec<String>], done: &str) -> anyhow::Result<()> {
    for step in steps {
        if let Err(e) = capture(step) {
            let rest: Vec<String> = steps.iter().skip_while(|s| *s != step).map(|s| s.join(" ")).collect();
            let done = if done.is_empty() { String::new() } else { format!("{done}, but ") };
            anyhow::bail!("{done}`{}` failed ({e:#}); fix that, then run: {}", step.join(" "), rest.join(" && "));
        }
    }
    Ok(())
}

/// A command's stdout, or an error with its stderr.
fn capture(argv: &[String]) -> anyhow::Result<String> {
    let out = Command::new(&argv[0]).args(&argv[1..]).output().with_context(|| format!("cannot run {}", argv[0]))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("{}", err.trim().lines().next().unwrap_or("it failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(config: Option<&str>) -> UnitSpec {
        UnitSpec {
            name: "pincer".into(),
            exe: "/opt/pincer dir/bin/pincer".into(),
            state_dir: "/home/ada/.pincer".into(),
            config_path: config.map(PathBuf::from),
        }
    }

    #[test]
    fn the_systemd_unit_runs_this_binary_on_this_state_and_restarts_on_failure() {
        let unit = render_systemd(&spec(None));
        let lines: Vec<&str> = unit.lines().collect();
        assert!(lines.contains(&r#"ExecStart="/opt/pincer dir/bin/pincer" gateway run"#), "{unit}");
        assert!(lines.contains(&r#"Environment="PINCER_STATE_DIR=/home/ada/.pincer""#), "{unit}");
        assert!(!unit.contains("PINCER_CONFIG_PATH"), "{unit}");
        for line in ["Restart=on-failure", "KillSignal=SIGTERM", "WantedBy=default.target", "Type=simple"] {
            assert!(lines.contains(&line), "{line} missing:\n{unit}");
        }
        let unit = render_systemd(&spec(Some("/etc/pincer/pincer.json")));
        assert!(unit.lines().any(|l| l == r#"Environment="PINCER_CONFIG_PATH=/etc/pincer/pincer.json""#), "{unit}");
    }

    #[test]
    fn the_launchd_agent_has_the_same_program_and_environment() {
        let plist = render_launchd(&spec(Some("/a&b/pincer.json")));
        assert!(plist.contains("<key>Label</key><string>dev.pincer.pincer</string>"), "{plist}");
        assert!(
            plist.contains(
                "<string>/opt/pincer dir/bin/pincer</string>\n    <string>gateway</string>\n    <string>run</string>"
            ),
            "{plist}"
        );
        assert!(plist.contains("<key>PINCER_STATE_DIR</key><string>/home/ada/.pincer</string>"), "{plist}");
        assert!(plist.contains("<key>PINCER_CONFIG_PATH</key><string>/a&amp;b/pincer.json</string>"), "{plist}");
        assert!(plist.contains("<key>SuccessfulExit</key><false/>"), "{plist}");
    }

    #[test]
    fn names_that_would_escape_the_unit_folder_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("pincer-work_2.test").unwrap();
    }
}
