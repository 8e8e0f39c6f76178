//! `pincer backup <file>` and `pincer restore <file>`: whole-database copies, made by this process
//! on the state dir's files (not over the WebSocket), so a backup works while the gateway runs and
//! whatever the gateway's health; see `pincer_store::backup`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use pincer_core::StatePaths;
use pincer_store::StoreError;
use serde_json::json;

use crate::output::print_json;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write (an existing file is never overwritten).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `pincer backup`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

pub fn backup(args: BackupArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let report =
        pincer_store::backup::backup(&paths.db_path, &args.file).map_err(|e| anyhow::anyhow!("backup failed: {e}"))?;
    if args.json {
        print_json(&json!({
            "ok": true,
            "file": report.path,
            "bytes": report.bytes,
            "schemaVersion": report.schema_version,
        }));
    } else {
        println!(
            "Backed up {} to {} ({} bytes, schema v{}). Restore it with `pincer restore {}` while the gateway is stopped.",
            paths.db_path.display(),
            report.path.display(),
            report.bytes,
            report.schema_version,
            report.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restore(args: RestoreArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let report = pincer_store::backup::restore(&paths.db_path, &args.file).map_err(|e| match e {
        StoreError::Locked { holder, .. } => {
            let who = holder.map(|pid| format!("a gateway (pid {pid})")).unwrap_or_else(|| "a gateway".into());
            let stop = holder.map(|pid| format!(" (`kill {pid}`)")).unwrap_or_default();
            anyhow::anyhow!(
                "restore refused: {who} is using {}: stop it first{stop}, then run `pincer restore {}` again",
                paths.state_dir.display(),
                args.file.display()
            )
        }
        other => anyhow::anyhow!("restore failed: {other}"),
    })?;
    if args.json {
        print_json(&json!({
            "ok": true,
            "database": report.path,
            "bytes": report.bytes,
            "schemaVersion": report.schema_version,
            "previous": report.previous,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("Restored {} into {} (schema v{}).", args.file.display(), report.path.display(), report.schema_version);
    if let Some(previous) = &report.previous {
        println!("The database it replaced is kept at {}.", previous.display());
    }
    println!("Start the gateway with `pincer gateway`; it migrates an older schema by itself.");
    Ok(ExitCode::SUCCESS)
}
