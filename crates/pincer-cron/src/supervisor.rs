//! The command supervisor: `pincer __supervise`, a small process between the gateway and a
//! `command` payload, so that the command's whole process group dies with the gateway.
//!
//! The gateway starts the supervisor as the leader of a new process group and keeps one end of a
//! socket pair, the *lifeline*; only the supervisor holds the other end (close-on-exec everywhere
//! else). The supervisor starts the command in its group with the gateway's pipes as stdio,
//! reports over the lifeline how the command exited, and waits for the lifeline to close. It
//! closes when the gateway is done with the run — or when the gateway dies in any way, `kill -9`
//! included, because the kernel closes a dead process's descriptors. Either way the supervisor
//! then `SIGKILL`s its process group: the command, its children and grandchildren, and itself.
//!
//! `PR_SET_PDEATHSIG` alone would not do: it reaches only the direct child, and it fires when the
//! *thread* that forked exits, not the process (tokio's blocking threads come and go). The
//! supervisor still sets it on the command, for the case where the supervisor itself is killed.
//! A command that leaves its process group (`setsid`, a daemon that double-forks) escapes both.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ExitCode, Stdio};

use tokio::io::AsyncReadExt;

/// The hidden first argument of the `pincer` binary that runs [`supervise`].
pub const SUPERVISE_ARG: &str = "__supervise";

/// How the supervised command ended, as the supervisor reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// It could not be started (the program is missing, not executable, a bad `cwd`, …).
    SpawnFailed(String),
    /// Waiting for it failed.
    WaitFailed(String),
    /// The supervisor went away without a report (killed from outside).
    Lost,
}

impl Exit {
    fn line(&self) -> String {
        match self {
            Exit::Code(c) => format!("exit {c}\n"),
            Exit::Signal(s) => format!("signal {s}\n"),
            Exit::SpawnFailed(e) => format!("spawn-error {}\n", one_line(e)),
            Exit::WaitFailed(e) => format!("wait-error {}\n", one_line(e)),
            Exit::Lost => "lost\n".into(),
        }
    }

    fn parse(line: &str) -> Exit {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "exit" => rest.parse().map(Exit::Code).unwrap_or(Exit::Lost),
            "signal" => rest.parse().map(Exit::Signal).unwrap_or(Exit::Lost),
            "spawn-error" => Exit::SpawnFailed(rest.to_string()),
            "wait-error" => Exit::WaitFailed(rest.to_string()),
            _ => Exit::Lost,
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// What the gateway starts a command with.
pub struct Launch<'a> {
    /// The `pincer` binary (the gateway's own executable in production).
    pub exe: &'a Path,
    pub argv: &'a [String],
    pub cwd: Option<&'a str>,
    pub env: &'a [(String, String)],
}

/// A running supervisor, seen from the gateway.
pub struct Supervised {
    pub child: tokio::process::Child,
    /// The process group of the supervisor and the command (the supervisor's pid).
    pub pgid: i32,
    lifeline: tokio::net::UnixStream,
    report: Vec<u8>,
}

/// Starts `pincer __supervise` as the leader of a new process group, with piped stdio that the
/// command inherits.
pub fn spawn(launch: &Launch<'_>) -> io::Result<Supervised> {
    let (ours, theirs) = UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    let mut cmd = tokio::process::Command::new(launch.exe);
    cmd.arg0("pincer").arg(SUPERVISE_ARG).arg("--lifeline-fd").arg(fd.to_string());
    if let Some(cwd) = launch.cwd {
        cmd.arg("--cwd").arg(cwd);
    }
    cmd.arg("--").args(launch.argv);
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).process_group(0);
    // SAFETY: between fork and exec only `fcntl` runs (async-signal-safe); it lets the
    // supervisor, and no other child, inherit its end of the lifeline.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    let pgid = child.id().map(|p| p as i32).ok_or_else(|| io::Error::other("the supervisor exited at once"))?;
    ours.set_nonblocking(true)?;
    let lifeline = tokio::net::UnixStream::from_std(ours)?;
    Ok(Supervised { child, pgid, lifeline, report: Vec::new() })
}

impl Supervised {
    /// Waits for the supervisor's report of how the command ended. Cancel-safe: a partial report
    /// is kept for the next call.
    pub async fn exit(&mut self) -> Exit {
        loop {
            if let Some(end) = self.report.iter().position(|b| *b == b'\n') {
                return Exit::parse(&String::from_utf8_lossy(&self.report[..end]));
            }
            let mut buf = [0u8; 512];
            match self.lifeline.read(&mut buf).await {
                Ok(0) | Err(_) => return Exit::Lost,
                Ok(n) => self.report.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// `pincer __supervise --lifeline-fd <fd> [--cwd <dir>] -- <program> [args…]`: runs the program
/// in this process's group and kills the group when the lifeline closes. Only the gateway
/// starts it.
pub fn supervise(args: Vec<OsString>) -> ExitCode {
    let (fd, cwd, argv) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e} (`pincer {SUPERVISE_ARG}` is started by the gateway for command jobs)");
            return ExitCode::from(2);
        }
    };
    // SAFETY: plain syscalls on our own process and on a descriptor we were handed.
    unsafe {
        if libc::fcntl(fd, libc::F_GETFD) == -1 {
            eprintln!("error: --lifeline-fd {fd} is not an open descriptor");
            return ExitCode::from(2);
        }
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        // Killing "our group" must never reach the group of whoever started us.
        if libc::getpgrp() != libc::getpid() && libc::setpgid(0, 0) != 0 {
            eprintln!("error: cannot start a process group: {}", io::Error::last_os_error());
            return ExitCode::from(2);
        }
    }
    // SAFETY: the gateway handed us this descriptor, and nothing else in this process owns it.
    let mut lifeline = unsafe { UnixStream::from_raw_fd(fd) };
    let mut report = match lifeline.try_clone() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: lifeline: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid is async-signal-safe; it is read before fork.
        let supervisor = unsafe { libc::getpid() };
        // SAFETY: between fork and exec only prctl and getppid run (async-signal-safe). If this
        // supervisor is killed, the command gets SIGKILL too.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != supervisor {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = report.write_all(Exit::SpawnFailed(e.to_string()).line().as_bytes());
            return ExitCode::SUCCESS;
        }
    };
    // The command holds the gateway's pipes now; ours must not keep them open, or the gateway
    // would never see end-of-file.
    detach_stdio();
    std::thread::spawn(move || {
        let exit = match child.wait() {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::WaitFailed(format!("unknown status {s}")),
            },
            Err(e) => Exit::WaitFailed(e.to_string()),
        };
        let _ = report.write_all(exit.line().as_bytes());
    });
    // The gateway never writes; this returns when its end closes (it is done, or it died).
    let mut buf = [0u8; 64];
    loop {
        match lifeline.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // SAFETY: signals our own process group, which `setpgid` above made ours alone.
    unsafe {
        libc::kill(0, libc::SIGKILL);
    }
    ExitCode::from(137)
}

fn parse_args(args: Vec<OsString>) -> Result<(i32, Option<OsString>, Vec<OsString>), String> {
    let mut it = args.into_iter();
    let mut fd = None;
    let mut cwd = None;
    loop {
        match it.next().as_ref().and_then(|a| a.to_str()) {
            Some("--lifeline-fd") => {
                let v = it.next().and_then(|v| v.into_string().ok()).and_then(|v| v.parse::<i32>().ok());
                fd = Some(v.filter(|fd| *fd > 2).ok_or("--lifeline-fd needs a descriptor number above 2")?);
            }
            Some("--cwd") => cwd = Some(it.next().ok_or("--cwd needs a directory")?),
            Some("--") => break,
            Some(other) => return Err(format!("unexpected argument `{other}`")),
            None => return Err("missing `-- <program>`".into()),
        }
    }
    let argv: Vec<OsString> = it.collect();
    if argv.is_empty() {
        return Err("missing the program to run after `--`".into());
    }
    Ok((fd.ok_or("missing --lifeline-fd")?, cwd, argv))
}

/// Points stdin, stdout and stderr at `/dev/null`.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for target in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors of our own process.
            unsafe {
                libc::dup2(null.as_raw_fd(), target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_as_one_line() {
        for exit in [
            Exit::Code(0),
            Exit::Code(-3),
            Exit::Signal(9),
            Exit::SpawnFailed("No such file or directory (os error 2)".into()),
            Exit::WaitFailed("interrupted".into()),
            Exit::Lost,
        ] {
            let line = exit.line();
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert_eq!(Exit::parse(line.trim_end()), exit);
        }
        assert_eq!(Exit::parse("spawn-error two\nlines").line(), "spawn-error two lines\n");
        assert_eq!(Exit::parse("exit x"), Exit::Lost);
        assert_eq!(Exit::parse(""), Exit::Lost);
    }

    #[test]
    fn arguments_are_checked() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args(args(&["--lifeline-fd", "7", "--cwd", "/tmp", "--", "sh", "-c", "--cwd"])),
            Ok((7, Some("/tmp".into()), args(&["sh", "-c", "--cwd"])))
        );
        assert_eq!(
            parse_args(args(&["--lifeline-fd", "1", "--", "true"])).unwrap_err(),
            "--lifeline-fd needs a descriptor number above 2"
        );
        assert_eq!(parse_args(args(&["--", "true"])).unwrap_err(), "missing --lifeline-fd");
        assert_eq!(
            parse_args(args(&["--lifeline-fd", "5", "--"])).unwrap_err(),
            "missing the program to run after `--`"
        );
        assert_eq!(parse_args(args(&["--lifeline-fd", "5", "true"])).unwrap_err(), "unexpected argument `true`");
    }
}
