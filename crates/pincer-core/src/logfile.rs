//! The gateway's log file: an appender that rotates by size (`logging.maxFileBytes`, keeping
//! `logging.maxFiles` numbered archives, OpenClaw's `<name>.1<ext>` … scheme), and the bounded
//! tail read behind `logs.tail` and `pincer logs` (OpenClaw's cursor semantics: a byte offset,
//! `reset` when the file shrank under it, `truncated` when more was there than was read).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An append-only log file that rotates before a write would take it past `max_bytes`. Each
/// [`LogFile::append`] is one `write` of whole lines, so a reader never sees half a record and a
/// `kill -9` loses at most the record being written. Cloning shares the file.
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<Mutex<Active>>,
}

struct Active {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    bytes: u64,
    /// The last write failed; warned once on stderr until a write succeeds again.
    failing: bool,
}

impl LogFile {
    /// Opens (creating it and its directory) `path` for appending. The error names the path.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
        }
        let file = open_append(path).map_err(|e| with_path(e, path))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let active = Active { path: path.to_path_buf(), max_bytes, keep, file: Some(file), bytes, failing: false };
        Ok(LogFile { inner: Arc::new(Mutex::new(active)) })
    }

    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Appends `record` (whole lines), rotating first when it would not fit. A failure is reported
    /// once on stderr, never to the caller: logging must not stop the gateway.
    pub fn append(&self, record: &[u8]) {
        let mut a = self.lock();
        if a.bytes > 0 && a.bytes + record.len() as u64 > a.max_bytes {
            a.file = None;
            if let Err(e) = rotate(&a.path, a.keep) {
                eprintln!("pincer: cannot rotate the log file {}: {e}; writing on", a.path.display());
            }
            a.bytes = 0;
        }
        if a.file.is_none() {
            a.file = open_append(&a.path).ok();
            a.bytes = a.file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        }
        let written = match a.file.as_mut() {
            Some(f) => f.write_all(record),
            None => Err(io::Error::other("the file could not be opened")),
        };
        match written {
            Ok(()) => {
                a.bytes += record.len() as u64;
                a.failing = false;
            }
            Err(e) => {
                if !a.failing {
                    eprintln!("pincer: cannot write the log file {}: {e}; records are dropped", a.path.display());
                }
                a.failing = true;
                a.file = None;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Active> {
        // A panic while holding the lock left at worst a half-updated byte count.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl io::Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `pincer.log` → `pincer.<n>.log` (OpenClaw's naming), `pincer` → `pincer.<n>`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    path.with_file_name(name)
}

/// Drops the oldest archive, shifts `.i` to `.i+1`, and moves the active file to `.1` (or removes
/// it when no archive is kept).
fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    if keep == 0 {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let _ = std::fs::remove_file(rotated_path(path, keep));
    for n in (1..keep).rev() {
        let from = rotated_path(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated_path(path, n + 1))?;
        }
    }
    if path.exists() {
        std::fs::rename(path, rotated_path(path, 1))?;
    }
    Ok(())
}

/// OpenClaw's `logs.tail` bounds: lines and bytes per read.
pub const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 5000;
pub const DEFAULT_MAX_BYTES: u64 = 250_000;
pub const MAX_BYTES: u64 = 1_000_000;

/// One bounded read of the end of the log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Where the next read starts: just after the last whole line returned.
    pub cursor: u64,
    pub size: u64,
    /// Whole lines, oldest first, without their newline.
    pub lines: Vec<String>,
    /// More was there than `limit` lines or `max_bytes` bytes; the oldest were left out.
    pub truncated: bool,
    /// The cursor did not fit the file (it was rotated, or too far behind): read anew.
    pub reset: bool,
    /// Bytes between the old cursor and the new start, when the cursor was too far behind.
    pub skipped_bytes: Option<u64>,
}

/// One `logs.tail` answer over the log file at `path`, every line through `redactor`: the one
/// place the gateway's `logs.tail` and `pincer logs --local` read the file.
pub fn tail_result(
    path: &Path,
    cursor: Option<u64>,
    limit: usize,
    max_bytes: u64,
    redactor: &crate::redact::Redactor,
) -> io::Result<pincer_protocol::schema::system::LogsTailResult> {
    let read = tail(path, cursor, limit, max_bytes)?;
    Ok(pincer_protocol::schema::system::LogsTailResult {
        file: path.display().to_string(),
        cursor: read.cursor,
        size: read.size,
        lines: read.lines.iter().map(|l| redactor.line(l).into_owned()).collect(),
        truncated: read.truncated,
        reset: read.reset,
        skipped_bytes: read.skipped_bytes,
        extra: Default::default(),
    })
}

/// Reads the whole lines after `cursor` (or the last `max_bytes` without one), at most `limit` of
/// them, as OpenClaw's `readLogSlice` does. A missing file reads as empty.
pub fn tail(path: &Path, cursor: Option<u64>, limit: usize, max_bytes: u64) -> io::Result<Tail> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let max_bytes = max_bytes.clamp(1, MAX_BYTES);
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let reset = cursor.is_some_and(|c| c > 0);
            return Ok(Tail { cursor: 0, size: 0, lines: vec![], truncated: false, reset, skipped_bytes: None });
        }
        Err(e) => return Err(with_path(e, path)),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!("{} is not a regular file", path.display())));
    }
    let size = meta.len();
    let (mut reset, mut truncated, mut skipped_bytes) = (false, false, None);
    let start = match cursor {
        Some(c) if c > size => {
            reset = true;
            let s = size.saturating_sub(max_bytes);
            truncated = s > 0;
            s
        }
        Some(c) if size - c > max_bytes => {
            reset = true;
            truncated = true;
            let s = size - max_bytes;
            skipped_bytes = Some(s - c);
            s
        }
        Some(c) => c,
        None => {
            let s = size.saturating_sub(max_bytes);
            truncated = s > 0;
            s
        }
    };
    if size <= start {
        return Ok(Tail { cursor: size, size, lines: vec![], truncated, reset, skipped_bytes });
    }
    // Whether `start` is a line start: the byte before it is a newline.
    let at_line_start = start == 0 || {
        let mut b = [0u8; 1];
        file.seek(SeekFrom::Start(start - 1))?;
        file.read_exact(&mut b)?;
        b[0] == b'\n'
    };
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    Read::by_ref(&mut file).take(size - start).read_to_end(&mut buf)?;
    let Some(last_newline) = buf.iter().rposition(|&b| b == b'\n') else {
        return Ok(Tail { cursor: start, size, lines: vec![], truncated, reset, skipped_bytes });
    };
    let mut lines: Vec<String> =
        buf[..last_newline].split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    if !at_line_start {
        lines.remove(0);
    }
    if lines.len() > limit {
        truncated = true;
        lines.drain(..lines.len() - limit);
    }
    Ok(Tail { cursor: start + last_newline as u64 + 1, size, lines, truncated, reset, skipped_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_before_a_record_would_pass_the_limit_and_keeps_n_archives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/pincer.log");
        let log = LogFile::open(&path, 100, 2).unwrap();
        let line = |i: usize| format!("{i:039}\n"); // 40 bytes
        for i in 0..2 {
            log.append(line(i).as_bytes());
        }
        assert_eq!(names(&dir.path().join("logs")), ["pincer.log"]);
        log.append(line(2).as_bytes()); // 120 > 100: rotate first
        assert_eq!(names(&dir.path().join("logs")), ["pincer.1.log", "pincer.log"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line(2));
        for i in 3..9 {
            log.append(line(i).as_bytes());
        }
        // Two records a file; the oldest beyond two archives are gone.
        assert_eq!(names(&dir.path().join("logs")), ["pincer.1.log", "pincer.2.log", "pincer.log"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line(8));
        assert_eq!(std::fs::read_to_string(rotated_path(&path, 1)).unwrap(), line(6) + &line(7));
        assert_eq!(std::fs::read_to_string(rotated_path(&path, 2)).unwrap(), line(4) + &line(5));
        // A record larger than the limit is written whole, alone in its file.
        log.append(&[b'x'; 300]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 300);
    }

    #[test]
    fn reopening_counts_the_bytes_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        std::fs::write(&path, "a".repeat(90) + "\n").unwrap();
        LogFile::open(&path, 100, 1).unwrap().append(b"0123456789\n");
        assert_eq!(names(dir.path()), ["p.1.log", "p.log"]);
    }

    #[test]
    fn keeping_no_archive_starts_the_file_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let log = LogFile::open(&path, 10, 0).unwrap();
        log.append(b"12345678\n");
        log.append(b"abc\n");
        assert_eq!(names(dir.path()), ["p"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc\n");
    }

    #[test]
    fn tail_follows_a_cursor_and_resets_when_the_file_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let t = tail(&path, None, 10, 1000).unwrap();
        assert_eq!((t.cursor, t.size, t.lines.len(), t.reset), (0, 0, 0, false));
        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        let t = tail(&path, None, 10, 1000).unwrap();
        assert_eq!(t.lines, ["one", "two"]);
        assert_eq!((t.cursor, t.size, t.truncated), (8, 11, false));
        std::fs::write(&path, "one\ntwo\nthree\nfour\n").unwrap();
        let t = tail(&path, Some(8), 10, 1000).unwrap();
        assert_eq!(t.lines, ["three", "four"]);
        assert_eq!((t.cursor, t.reset), (19, false));
        // Rotated: the new file is shorter than the cursor.
        std::fs::write(&path, "new\n").unwrap();
        let t = tail(&path, Some(19), 10, 1000).unwrap();
        assert_eq!(t.lines, ["new"]);
        assert!(t.reset);
    }

    #[test]
    fn tail_bounds_lines_and_bytes_dropping_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        std::fs::write(&path, "aaaa\nbbbb\ncccc\ndddd\n").unwrap();
        let t = tail(&path, None, 2, 1000).unwrap();
        assert_eq!(t.lines, ["cccc", "dddd"]);
        assert!(t.truncated);
        // 7 bytes from the end starts inside `cccc`: that partial line is dropped.
        let t = tail(&path, None, 10, 7).unwrap();
        assert_eq!(t.lines, ["dddd"]);
        assert!(t.truncated);
        let t = tail(&path, Some(0), 10, 10).unwrap();
        assert_eq!(t.lines, ["cccc", "dddd"]);
        assert_eq!((t.reset, t.truncated, t.skipped_bytes), (true, true, Some(10)));
    }
}
