//! `read`, `write`, `edit` (OpenClaw's parameters: `path`, `offset`, `limit`; `path`, `content`;
//! `path`, `oldText`, `newText`), confined to the workspace.
//!
//! A path is refused when it is empty, starts with `~`, is absolute outside the workspace, or
//! climbs above it with `..`. What remains is opened with Linux's `openat2(RESOLVE_BENEATH)`
//! relative to a descriptor of the workspace, so the kernel refuses any symlink (or `..`) that
//! would leave it — at the moment of the open, with no window for a symlink swapped in between a
//! check and the open. Directories for `write` are created one component at a time the same way.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use crate::tool::{BoxFuture, Tool, ToolContext, ToolError, ToolOutput, ToolSpec, opt_u64_arg};

/// Lines and bytes `read` returns at most per call (pi-coding-agent's defaults).
const READ_MAX_LINES: usize = 2_000;
const READ_MAX_BYTES: usize = 50 * 1024;
/// Files larger than this are not read or edited.
const FILE_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// The workspace-relative form of a path the model gave, or a refusal.
pub fn relative_path(workspace: &Path, raw: &str, tool: &str) -> Result<PathBuf, ToolError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ToolError::InvalidArguments(format!("{tool}: `path` must not be empty")));
    }
    if raw.contains('\0') {
        return Err(ToolError::InvalidArguments(format!("{tool}: `path` contains a NUL byte")));
    }
    if raw.starts_with('~') {
        return Err(outside(tool, raw));
    }
    let path = Path::new(raw);
    let rel = if path.is_absolute() {
        let root = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        match path.strip_prefix(&root).or_else(|_| path.strip_prefix(workspace)) {
            Ok(rest) => rest.to_path_buf(),
            Err(_) => return Err(outside(tool, raw)),
        }
    } else {
        path.to_path_buf()
    };
    let mut clean = PathBuf::new();
    for part in rel.components() {
        match part {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !clean.pop() {
                    return Err(outside(tool, raw));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside(tool, raw)),
        }
    }
    Ok(clean)
}

fn outside(tool: &str, raw: &str) -> ToolError {
    ToolError::Refused(format!(
        "{tool}: `{raw}` is outside the workspace; use a path relative to the workspace (no `..`, `~` or absolute paths elsewhere)"
    ))
}

/// A directory inside the workspace (for `exec`'s `workdir`), canonical.
pub fn resolve_dir(workspace: &Path, raw: &str, tool: &str) -> Result<PathBuf, ToolError> {
    let rel = relative_path(workspace, raw, tool)?;
    let root = std::fs::canonicalize(workspace)
        .map_err(|e| ToolError::Failed(format!("{tool}: the workspace {} is not usable: {e}", workspace.display())))?;
    let dir = std::fs::canonicalize(root.join(&rel))
        .map_err(|e| ToolError::Failed(format!("{tool}: directory `{raw}` is not usable: {e}")))?;
    if !dir.starts_with(&root) {
        return Err(outside(tool, raw));
    }
    if !dir.is_dir() {
        return Err(ToolError::InvalidArguments(format!("{tool}: `{raw}` is not a directory")));
    }
    Ok(dir)
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_root(workspace: &Path) -> io::Result<OwnedFd> {
    let c = cstr(workspace)?;
    // SAFETY: a valid C string; the returned descriptor is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dirfd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn open_beneath(dir: &OwnedFd, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(if rel.as_os_str().is_empty() { Path::new(".") } else { rel })?;
    // SAFETY: `open_how` is plain data; all-zero is its documented empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 { mode as u64 } else { 0 };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid pointers for the duration of the call; the kernel copies `how`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn open_error(tool: &str, raw: &str, e: io::Error) -> ToolError {
    match e.raw_os_error() {
        Some(libc::EXDEV) | Some(libc::ELOOP) => ToolError::Refused(format!(
            "{tool}: `{raw}` leads outside the workspace (through a symlink); only files inside the workspace can be used"
        )),
        Some(libc::ENOENT) => ToolError::Failed(format!("{tool}: `{raw}` does not exist")),
        Some(libc::EISDIR) => ToolError::Failed(format!("{tool}: `{raw}` is a directory")),
        Some(libc::ENOTDIR) => ToolError::Failed(format!("{tool}: a parent of `{raw}` is not a directory")),
        Some(libc::ENOSYS) => ToolError::Failed(format!(
            "{tool}: this kernel lacks openat2 (Linux 5.6+), which confines file tools to the workspace; file tools are unavailable"
        )),
        _ => ToolError::Failed(format!("{tool}: cannot open `{raw}`: {e}")),
    }
}

/// Opens an existing workspace file for reading.
fn open_read(workspace: &Path, rel: &Path, tool: &str, raw: &str) -> Result<File, ToolError> {
    let root = open_root(workspace).map_err(|e| workspace_error(tool, workspace, e))?;
    let fd = open_beneath(&root, rel, libc::O_RDONLY, 0).map_err(|e| open_error(tool, raw, e))?;
    Ok(File::from(fd))
}

fn workspace_error(tool: &str, workspace: &Path, e: io::Error) -> ToolError {
    ToolError::Failed(format!("{tool}: the workspace {} is not usable: {e}", workspace.display()))
}

/// Creates the parent directories of `rel` inside the workspace and opens it for writing.
fn open_write(workspace: &Path, rel: &Path, tool: &str, raw: &str) -> Result<File, ToolError> {
    let root = open_root(workspace).map_err(|e| workspace_error(tool, workspace, e))?;
    if let Some(parent) = rel.parent() {
        let mut prefix = PathBuf::new();
        for part in parent.components() {
            let Component::Normal(name) = part else { continue };
            let parent_fd = open_beneath(&root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(|e| open_error(tool, raw, e))?;
            prefix.push(name);
            let c = cstr(Path::new(name)).map_err(|e| open_error(tool, raw, e))?;
            // SAFETY: valid descriptor and C string. mkdirat never follows a symlink in its last
            // component, and the parent was reached beneath the workspace.
            let rc = unsafe { libc::mkdirat(parent_fd.as_raw_fd(), c.as_ptr(), 0o755) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EEXIST) {
                    return Err(open_error(tool, raw, err));
                }
            }
        }
    }
    let fd = open_beneath(&root, rel, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)
        .map_err(|e| open_error(tool, raw, e))?;
    Ok(File::from(fd))
}

fn read_capped(mut file: File, tool: &str, raw: &str) -> Result<String, ToolError> {
    let meta = file.metadata().map_err(|e| ToolError::Failed(format!("{tool}: cannot stat `{raw}`: {e}")))?;
    if meta.is_dir() {
        return Err(ToolError::Failed(format!("{tool}: `{raw}` is a directory")));
    }
    if meta.len() > FILE_MAX_BYTES {
        return Err(ToolError::Failed(format!(
            "{tool}: `{raw}` is {} bytes, more than the {FILE_MAX_BYTES} this tool reads; use exec with head/tail/grep",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    Read::by_ref(&mut file)
        .take(FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(format!("{tool}: cannot read `{raw}`: {e}")))?;
    if bytes.contains(&0) {
        return Err(ToolError::Failed(format!("{tool}: `{raw}` is a binary file")));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the first present key among OpenClaw's names and the Claude-style aliases it accepts.
fn alias_str<'a>(args: &'a Value, tool: &str, keys: &[&str]) -> Result<&'a str, ToolError> {
    for key in keys {
        match args.get(*key) {
            Some(Value::String(s)) => return Ok(s),
            Some(Value::Null) | None => continue,
            Some(_) => return Err(ToolError::InvalidArguments(format!("{tool}: `{key}` must be a string"))),
        }
    }
    Err(ToolError::InvalidArguments(format!("{tool}: missing required parameter `{}`", keys[0])))
}

/// `read`.
pub struct ReadTool {
    spec: ToolSpec,
}

/// `write`.
pub struct WriteTool {
    spec: ToolSpec,
}

/// `edit`.
pub struct EditTool {
    spec: ToolSpec,
}

impl Default for ReadTool {
    fn default() -> Self {
        ReadTool {
            spec: ToolSpec {
                name: "read".into(),
                description: format!(
                    "Read the contents of a file in the workspace. Output is truncated to {READ_MAX_LINES} lines or {}KB; use offset/limit for large files.",
                    READ_MAX_BYTES / 1024
                ),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "description": "Path to the file to read (relative to the workspace)" },
                        "offset": { "type": "number", "description": "Line number to start reading from (1-indexed)" },
                        "limit": { "type": "number", "description": "Maximum number of lines to read" }
                    },
                    "required": ["path"]
                }),
            },
        }
    }
}

impl Default for WriteTool {
    fn default() -> Self {
        WriteTool {
            spec: ToolSpec {
                name: "write".into(),
                description: "Write content to a file in the workspace. Creates the file if it doesn't exist, overwrites if it does. Automatically creates parent directories.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "description": "Path to the file to write (relative to the workspace)" },
                        "content": { "type": "string", "description": "Content to write to the file" }
                    },
                    "required": ["path", "content"]
                }),
            },
        }
    }
}

impl Default for EditTool {
    fn default() -> Self {
        EditTool {
            spec: ToolSpec {
                name: "edit".into(),
                description: "Edit a file in the workspace by replacing exact text. The oldText must match exactly once (including whitespace).".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "description": "Path to the file to edit (relative to the workspace)" },
                        "oldText": { "type": "string", "description": "Exact text to find and replace (must match exactly)" },
                        "newText": { "type": "string", "description": "New text to replace the old text with" }
                    },
                    "required": ["path", "oldText", "newText"]
                }),
            },
        }
    }
}

fn read_file(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
    let raw = alias_str(args, "read", &["path", "file_path"])?;
    let rel = relative_path(&ctx.workspace, raw, "read")?;
    let text = read_capped(open_read(&ctx.workspace, &rel, "read", raw)?, "read", raw)?;
    let offset = opt_u64_arg(args, "read", "offset")?.unwrap_or(1).max(1) as usize;
    let limit = opt_u64_arg(args, "read", "limit")?.map(|l| l as usize);
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.len();
    if total == 0 {
        return Ok(ToolOutput::text("(empty file)"));
    }
    if offset > total {
        return Err(ToolError::InvalidArguments(format!(
            "read: offset {offset} is beyond the end of `{raw}` ({total} lines)"
        )));
    }
    let mut out = String::new();
    let mut shown = 0;
    for line in lines.iter().skip(offset - 1).take(limit.unwrap_or(usize::MAX).min(READ_MAX_LINES)) {
        if out.len() + line.len() + 1 > READ_MAX_BYTES && shown > 0 {
            break;
        }
        out.push_str(line);
        out.push('\n');
        shown += 1;
    }
    let last = offset - 1 + shown;
    if last < total && limit.is_none_or(|l| shown < l) {
        out.push_str(&format!("\n[Showing lines {offset}-{last} of {total}. Use offset={} to continue.]", last + 1));
    } else if last < total {
        out.push_str(&format!("\n[{} more lines in file. Use offset={} to continue.]", total - last, last + 1));
    }
    Ok(ToolOutput::text(out.trim_end_matches('\n').to_string()))
}

fn write_file(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
    let raw = alias_str(args, "write", &["path", "file_path"])?;
    let content = alias_str(args, "write", &["content"])?;
    let rel = relative_path(&ctx.workspace, raw, "write")?;
    if rel.as_os_str().is_empty() {
        return Err(ToolError::InvalidArguments("write: `path` names the workspace itself, not a file".into()));
    }
    let mut file = open_write(&ctx.workspace, &rel, "write", raw)?;
    file.write_all(content.as_bytes()).map_err(|e| ToolError::Failed(format!("write: cannot write `{raw}`: {e}")))?;
    Ok(ToolOutput::text(format!("Successfully wrote {} bytes to {raw}", content.len())))
}

fn edit_file(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
    let raw = alias_str(args, "edit", &["path", "file_path"])?;
    let old = alias_str(args, "edit", &["oldText", "old_string"])?;
    let new = alias_str(args, "edit", &["newText", "new_string"])?;
    if old.is_empty() {
        return Err(ToolError::InvalidArguments("edit: `oldText` must not be empty".into()));
    }
    let rel = relative_path(&ctx.workspace, raw, "edit")?;
    let text = read_capped(open_read(&ctx.workspace, &rel, "edit", raw)?, "edit", raw)?;
    match text.matches(old).count() {
        0 => Err(ToolError::Failed(format!(
            "edit: could not find the exact text in {raw}. The old text must match exactly including all whitespace and newlines."
        ))),
        1 => {
            let updated = text.replacen(old, new, 1);
            let mut file = open_write(&ctx.workspace, &rel, "edit", raw)?;
            file.write_all(updated.as_bytes())
                .map_err(|e| ToolError::Failed(format!("edit: cannot write `{raw}`: {e}")))?;
            Ok(ToolOutput::text(format!("Successfully replaced text in {raw}.")))
        }
        n => Err(ToolError::Failed(format!(
            "edit: found {n} occurrences of the text in {raw}. The text must be unique; include more context to make it unique."
        ))),
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<F>(ctx: &ToolContext, f: F) -> Result<ToolOutput, ToolError>
where
    F: FnOnce(&ToolContext) -> Result<ToolOutput, ToolError> + Send + 'static,
{
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .unwrap_or_else(|e| Err(ToolError::Failed(format!("file tool stopped: {e}"))))
}

impl Tool for ReadTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn read_only(&self) -> bool {
        true
    }
    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(blocking(ctx, move |ctx| read_file(&args, ctx)))
    }
}

impl Tool for WriteTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(blocking(ctx, move |ctx| write_file(&args, ctx)))
    }
}

impl Tool for EditTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(blocking(ctx, move |ctx| edit_file(&args, ctx)))
    }
}
