//! `cargo xtask console`: the console's browser tests (the e2e suite's ignored `console::` tests)
//! in headless Chromium. Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them)
//! and installs axe-core from the npm registry into `.cache/axe-core` for the accessibility check.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const AXE_PACKAGE: &str = "axe-core@4.14.1";

/// `axe.min.js`, installed on first use.
pub fn ensure_axe(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("PINCER_AXE_DIR").map(PathBuf::from).unwrap_or_else(|| root.join(".cache/axe-core"));
    let js = dir.join("node_modules/axe-core/axe.min.js");
    if js.exists() {
        return Ok(js);
    }
    std::fs::create_dir_all(&dir)?;
    if !dir.join("package.json").exists() {
        std::fs::write(dir.join("package.json"), "{\"name\":\"pincer-axe\",\"private\":true}\n")?;
    }
    eprintln!("xtask: npm install {AXE_PACKAGE} (in {})", dir.display());
    let status = Command::new("npm")
        .args(["install", AXE_PACKAGE, "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run npm ({e}); install Node.js and npm first"))?;
    anyhow::ensure!(status.success() && js.exists(), "npm install {AXE_PACKAGE} failed");
    Ok(js)
}

pub fn run(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    let (driver, chromium) = pincer_testkit::browser::programs()?;
    let axe = ensure_axe(root)?;
    let mut cmd = Command::new("cargo");
    if crate::has_nextest() {
        cmd.args(["nextest", "run", "-p", "pincer-cli", "--test", "e2e", "--run-ignored", "only"]);
        // A filter of the caller's narrows the run (nextest ORs several `-E`).
        if !extra.iter().any(|a| a == "-E" || a.starts_with("--filterset")) {
            cmd.args(["-E", "test(/^console::/)"]);
        }
    } else {
        cmd.args(["test", "-p", "pincer-cli", "--test", "e2e", "--", "--ignored", "console::"]);
    }
    cmd.args(extra)
        .current_dir(root)
        .env("PINCER_AXE_JS", &axe)
        .env("PINCER_CHROMEDRIVER", &driver)
        .env("PINCER_CHROMIUM", &chromium);
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "console browser tests failed (screenshots in target/console-shots/)");
    Ok(())
}
