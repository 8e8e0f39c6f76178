//! Hands back the pages a gateway touched only to start.
//!
//! Start-up runs code that an idle gateway never runs again: clap's command tree, config parsing
//! and validation, migrations, TLS set-up, the catch-up of missed slots. The kernel maps the
//! binary's code in 64 KB fault-around windows, so that one pass leaves ~19 MB of the 36 MB binary
//! resident in this process, four times what the gateway allocates. Those pages are clean copies
//! of the file: once the gateway has settled, [`release`] unmaps them (`MADV_DONTNEED` on the
//! binary's read-only mappings that hold no private copy) and returns the heap's free pages to the
//! kernel (`malloc_trim`). Nothing is lost: code that runs again is faulted back in from the page
//! cache, where the pages stay. `cargo xtask bench --only startup` shows the effect in its
//! `RssFile` row.

/// How often [`keep_idle_pages_released`] looks at the process.
pub const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The process is idle when it used at most this much CPU time over one [`IDLE_CHECK`]
/// (in clock ticks, 10 ms each on Linux): an idle gateway's timers cost well under one.
const IDLE_CPU_TICKS: u64 = 2;

/// Code faulted back in since the last release that is worth handing back again.
const REFAULTED_KB: u64 = 2048;

/// Whether to release again: the gateway sat idle for the last check and has faulted at least
/// [`REFAULTED_KB`] of code back in since the last release (work it did earlier — a burst of
/// requests, a run — leaves its code mapped after it ended).
pub fn should_release_again(cpu_ticks_in_check: u64, rss_file_kb: u64, rss_file_kb_after_last: u64) -> bool {
    cpu_ticks_in_check <= IDLE_CPU_TICKS && rss_file_kb >= rss_file_kb_after_last + REFAULTED_KB
}

/// This process's CPU time (user + system, in clock ticks) and its file-backed resident size in
/// kB, from `/proc/self/stat` and `/proc/self/status`.
pub fn sample() -> std::io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 14th and 15th fields of the line, the 12th and 13th after `) `.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu = ticks(11) + ticks(12);
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((cpu, kb("RssFile:")))
}

/// What [`release`] gave back, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Resident pages of the binary's clean read-only mappings that were unmapped.
    pub code: u64,
    /// How many mappings were released.
    pub mappings: usize,
}

/// One mapping of `/proc/self/smaps`: its range, permissions, path, and the two sizes that decide
/// whether dropping it is safe and worth it.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    path: String,
    rss_kb: u64,
    anonymous_kb: u64,
}

/// Parses `/proc/<pid>/smaps` text into mappings.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = fields.next().unwrap_or_default().to_string();
            // offset, device, inode, then the path (which may hold spaces).
            let path = line.splitn(6, char::is_whitespace).nth(5).unwrap_or_default().trim().to_string();
            out.push(Mapping { start, end, perms, path, rss_kb: 0, anonymous_kb: 0 });
            continue;
        }
        let value = || fields.clone().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if let Some(m) = out.last_mut() {
            match first {
                "Rss:" => m.rss_kb = value(),
                "Anonymous:" => m.anonymous_kb = value(),
                _ => {}
            }
        }
    }
    out
}

/// The mappings that can be dropped: the executable's own, not writable (code, read-only data,
/// and RELRO only when none of its pages was ever written — a relocated page is a private copy,
/// counted in `Anonymous`, and would be lost), and resident at all.
fn droppable<'a>(maps: &'a [Mapping], exe: &str) -> impl Iterator<Item = &'a Mapping> {
    maps.iter().filter(move |m| m.path == exe && !m.perms.contains('w') && m.anonymous_kb == 0 && m.rss_kb > 0)
}

/// Unmaps the clean pages of this executable's read-only mappings and trims the heap. Linux only;
/// elsewhere it does nothing.
pub fn release() -> std::io::Result<Released> {
    #[cfg(target_os = "linux")]
    {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let exe = exe.to_string_lossy();
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let maps = parse_smaps(&smaps);
        let mut released = Released::default();
        for m in droppable(&maps, &exe) {
            // SAFETY: the range is a whole mapping of this process, read from smaps just now; it
            // maps the executable's file privately, read-only, and holds no private (anonymous)
            // page, so every page is a clean copy of the file that the kernel faults back in on
            // the next access. Dropping it cannot change what any thread reads or runs.
            let rc = unsafe { libc::madvise(m.start as *mut libc::c_void, m.end - m.start, libc::MADV_DONTNEED) };
            if rc == 0 {
                released.code += m.rss_kb * 1024;
                released.mappings += 1;
            }
        }
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap memory to the kernel; safe at any time.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(released)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(Released::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5555aaaa0000-5555aaab0000 r--p 00000000 fd:01 42   /usr/bin/pin cer
Size:                 64 kB
Rss:                  64 kB
Anonymous:             0 kB
5555aaab0000-5555aabb0000 r-xp 00010000 fd:01 42   /usr/bin/pin cer
Size:               1024 kB
Rss:                 900 kB
Anonymous:             0 kB
5555aabb0000-5555aabc0000 r--p 00110000 fd:01 42   /usr/bin/pin cer
Rss:                  64 kB
Anonymous:            12 kB
5555aabc0000-5555aabd0000 rw-p 00120000 fd:01 42   /usr/bin/pin cer
Rss:                  64 kB
Anonymous:            64 kB
7f0000000000-7f0000010000 r-xp 00000000 fd:01 7    /usr/lib/libc.so.6
Rss:                  64 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0    [stack]
Rss:                  16 kB
Anonymous:            16 kB
";

    #[test]
    fn pages_are_released_again_only_when_idle_and_worth_it() {
        // Idle, and 3 MB of code came back after a burst of work: release.
        assert!(should_release_again(0, 8000, 5000));
        assert!(should_release_again(2, 7048, 5000));
        // Busy: the pages are in use.
        assert!(!should_release_again(3, 20_000, 5000));
        // Idle, but little came back: not worth the faults.
        assert!(!should_release_again(0, 7047, 5000));
        assert!(!should_release_again(0, 4000, 5000));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_sample_reads_cpu_time_and_resident_code() {
        let (cpu0, file_kb) = sample().expect("sample");
        assert!(file_kb > 0, "a running test binary has file-backed pages");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let (cpu1, _) = sample().expect("sample");
        assert!(cpu1 > cpu0, "60 ms of spinning shows as CPU ticks: {cpu0} -> {cpu1} ({x})");
    }

    #[test]
    fn only_the_executables_clean_read_only_mappings_are_dropped() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[1].path, "/usr/bin/pin cer");
        assert_eq!((maps[1].start, maps[1].end, maps[1].rss_kb), (0x5555aaab0000, 0x5555aabb0000, 900));
        let dropped: Vec<usize> = droppable(&maps, "/usr/bin/pin cer").map(|m| m.start).collect();
        // Headers/rodata and code go; the written RELRO page, the data segment, libc and the
        // stack stay.
        assert_eq!(dropped, vec![0x5555aaaa0000, 0x5555aaab0000]);
    }

    #[cfg(target_os = "linux")]
    fn rss_file_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status.lines().find(|l| l.starts_with("RssFile:")).expect("RssFile");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn release_shrinks_the_resident_code_and_the_process_runs_on() {
        let before = rss_file_kb();
        let released = release().expect("release");
        let after = rss_file_kb();
        assert!(released.mappings > 0 && released.code > 0, "the test binary's own code is mapped: {released:?}");
        assert!(after < before, "RssFile {before} kB before, {after} kB after releasing {released:?}");
        // The code this test runs next was unmapped too: it faults back in from the file.
        let again = release().expect("release again");
        assert!(again.mappings > 0, "{again:?}");
    }
}
