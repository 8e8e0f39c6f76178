//! `read`, `write`, `edit` confined to the workspace, with real symlinks and a swapping race.

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use expect_test::expect;
use pincer_tools::{EditTool, ReadTool, Tool, ToolContext, WriteTool};
use serde_json::{Value, json};

use crate::support::*;

async fn call(tool: &dyn Tool, ctx: &ToolContext, args: Value) -> String {
    match tool.call(args, ctx).await {
        Ok(out) => format!("ok: {}", out.text),
        Err(e) => format!("{}: {e}", e.class()),
    }
}

#[tokio::test]
async fn write_read_edit_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let ctx = ctx(dir.path(), &clock);
    let (read, write, edit) = (ReadTool::default(), WriteTool::default(), EditTool::default());
    let text: String = (1..=5).map(|i| format!("line {i}\n")).collect();
    let mut log = String::new();
    log += &call(&write, &ctx, json!({"path": "notes/today.md", "content": text})).await;
    log += "\n";
    log += &call(&read, &ctx, json!({"path": "notes/today.md", "offset": 2, "limit": 2})).await;
    log += "\n";
    log += &call(&edit, &ctx, json!({"path": "notes/today.md", "oldText": "line 3", "newText": "LINE THREE"})).await;
    log += "\n";
    log += &call(&edit, &ctx, json!({"file_path": "notes/today.md", "old_string": "line", "new_string": "x"})).await;
    log += "\n";
    log += &call(&edit, &ctx, json!({"path": "notes/today.md", "oldText": "absent", "newText": "x"})).await;
    log += "\n";
    log += &call(&read, &ctx, json!({"path": format!("{}/notes/today.md", dir.path().display())})).await;
    log += "\n";
    log += &call(&read, &ctx, json!({"path": "missing.md"})).await;
    expect![[r#"
        ok: Successfully wrote 35 bytes to notes/today.md
        ok: line 2
        line 3

        [2 more lines in file. Use offset=4 to continue.]
        ok: Successfully replaced text in notes/today.md.
        failed: edit: found 4 occurrences of the text in notes/today.md. The text must be unique; include more context to make it unique.
        failed: edit: could not find the exact text in notes/today.md. The old text must match exactly including all whitespace and newlines.
        ok: line 1
        line 2
        LINE THREE
        line 4
        line 5
        failed: read: `missing.md` does not exist"#]]
    .assert_eq(&log);
}

#[tokio::test]
async fn paths_that_leave_the_workspace_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(ws.join("inner")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::fs::write(ws.join("inner/ok.txt"), "fine").unwrap();
    symlink(outside.join("secret.txt"), ws.join("link-to-secret")).unwrap();
    symlink(&outside, ws.join("link-dir")).unwrap();
    symlink("../outside", ws.join("rel-link-dir")).unwrap();
    symlink("inner/ok.txt", ws.join("inside-link")).unwrap();
    symlink("/proc/self/root/etc/passwd", ws.join("magic-link")).unwrap();
    let clock = clock();
    let ctx = ctx(&ws, &clock);
    let (read, write) = (ReadTool::default(), WriteTool::default());
    let mut table = String::new();
    for path in [
        "../outside/secret.txt",
        "inner/../../outside/secret.txt",
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "link-to-secret",
        "link-dir/secret.txt",
        "rel-link-dir/secret.txt",
        "magic-link",
        "inside-link",
        "inner/../inner/ok.txt",
        "",
    ] {
        table += &format!("read  {path:32} {}\n", call(&read, &ctx, json!({"path": path})).await);
    }
    for path in ["link-dir/new.txt", "rel-link-dir/sub/new.txt", "link-to-secret", "../escape.txt", "/tmp/escape.txt"] {
        table += &format!("write {path:32} {}\n", call(&write, &ctx, json!({"path": path, "content": "pwned"})).await);
    }
    let table = table.replace(&ws.display().to_string(), "<ws>");
    expect![[r#"
        read  ../outside/secret.txt            refused: read: `../outside/secret.txt` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)
        read  inner/../../outside/secret.txt   refused: read: `inner/../../outside/secret.txt` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)
        read  /etc/passwd                      refused: read: `/etc/passwd` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)
        read  ~/.ssh/id_rsa                    refused: read: `~/.ssh/id_rsa` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)
        read  link-to-secret                   refused: read: `link-to-secret` leads outside the workspace (through a symlink); only files inside the workspace can be used
        read  link-dir/secret.txt              refused: read: `link-dir/secret.txt` leads outside the workspace (through a symlink); only files inside the workspace can be used
        read  rel-link-dir/secret.txt          refused: read: `rel-link-dir/secret.txt` leads outside the workspace (through a symlink); only files inside the workspace can be used
        read  magic-link                       refused: read: `magic-link` leads outside the workspace (through a symlink); only files inside the workspace can be used
        read  inside-link                      ok: fine
        read  inner/../inner/ok.txt            ok: fine
        read                                   invalid_arguments: read: `path` must not be empty
        write link-dir/new.txt                 refused: write: `link-dir/new.txt` leads outside the workspace (through a symlink); only files inside the workspace can be used
        write rel-link-dir/sub/new.txt         refused: write: `rel-link-dir/sub/new.txt` leads outside the workspace (through a symlink); only files inside the workspace can be used
        write link-to-secret                   refused: write: `link-to-secret` leads outside the workspace (through a symlink); only files inside the workspace can be used
        write ../escape.txt                    refused: write: `../escape.txt` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)
        write /tmp/escape.txt                  refused: write: `/tmp/escape.txt` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)
    "#]]
    .assert_eq(&table);
    assert_eq!(std::fs::read_to_string(outside.join("secret.txt")).unwrap(), "secret");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "nothing was written outside");
}

/// A directory swapped for a symlink to the outside while writes go on: the open is confined at
/// the moment it happens, so no write ever lands outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_symlink_mid_write_never_leaks() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(ws.join("dir")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (ws, outside, stop) = (ws.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let (real, link, tmp) = (ws.join("dir"), ws.join("dir-link"), ws.join("dir-real"));
            let _ = symlink(&outside, &link);
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // dir ↔ symlink, by rename (atomic), as an attacker with a shell would.
                let _ = std::fs::rename(&real, &tmp);
                let _ = std::fs::rename(&link, &real);
                std::thread::yield_now();
                let _ = std::fs::rename(&real, &link);
                let _ = std::fs::rename(&tmp, &real);
                swaps += 1;
            }
            swaps
        })
    };
    let clock = clock();
    let ctx = ctx(&ws, &clock);
    let write = WriteTool::default();
    let (mut ok, mut refused) = (0, 0);
    // Until both outcomes were seen often enough: on a loaded machine the swapper can hold the
    // symlink in place for a long stretch, so a fixed count could see only refusals.
    let mut i = 0;
    while (ok < 20 || refused < 20) && i < 20_000 {
        i += 1;
        match write.call(json!({"path": format!("dir/f{i}.txt"), "content": "x"}), &ctx).await {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 10, "the swapper ran ({swaps} swaps)");
    assert!(ok > 0, "some writes landed inside ({ok} ok, {refused} refused)");
    let leaked: Vec<_> = std::fs::read_dir(&outside).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(leaked.is_empty(), "files written outside the workspace: {leaked:?}");
}
