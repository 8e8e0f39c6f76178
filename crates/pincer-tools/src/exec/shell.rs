//! The exec allowlist check, after OpenClaw's `src/infra/exec-approvals-analysis.ts` and
//! `exec-approvals-allowlist.ts`: a command is split into pipeline segments; every segment's
//! executable must match an allowlist pattern (a path glob on the resolved executable) or be a
//! safe bin used on stdin only. Anything a plain pipeline does not need — chaining (`;`, `&&`, `||`,
//! `&`), subshells, command substitution, redirections, heredocs, newlines — is refused outright.
//!
//! An allowed command is run as the argv that was checked (each word single-quoted, executables by
//! their resolved path), so the shell cannot expand `$VAR`, globs or `~` into something the check
//! did not see.

use std::path::{Path, PathBuf};

/// One pipeline segment, as the shell would split it into words.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub argv: Vec<String>,
}

/// Splits a command into pipeline segments, refusing every shell construct beyond `|`.
pub fn split_pipeline(command: &str) -> Result<Vec<Segment>, String> {
    let chars: Vec<char> = command.chars().collect();
    let mut segments = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let refuse = |what: &str| Err(format!("unsupported shell syntax: {what}"));
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' => {
                in_word = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return refuse("unterminated quote"),
                        Some('\'') => break,
                        Some(ch) => word.push(*ch),
                    }
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return refuse("unterminated quote"),
                        Some('"') => break,
                        Some('\\') => match chars.get(i + 1) {
                            Some(e @ ('\\' | '"' | '$' | '`')) => {
                                word.push(*e);
                                i += 1;
                            }
                            Some('\n') => return refuse("newline"),
                            _ => word.push('\\'),
                        },
                        Some('`') => return refuse("` (command substitution)"),
                        Some('$') if chars.get(i + 1) == Some(&'(') => return refuse("$() (command substitution)"),
                        Some('\n' | '\r') => return refuse("newline"),
                        Some(ch) => word.push(*ch),
                    }
                    i += 1;
                }
            }
            '\\' => match next {
                None => return refuse("trailing backslash"),
                Some('\n' | '\r') => return refuse("newline"),
                Some(e) => {
                    in_word = true;
                    word.push(e);
                    i += 1;
                }
            },
            '#' if !in_word => break,
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '|' => {
                if next == Some('|') {
                    return refuse("|| (chaining)");
                }
                if next == Some('&') {
                    return refuse("|&");
                }
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if words.is_empty() {
                    return refuse("empty pipeline segment");
                }
                segments.push(Segment { argv: std::mem::take(&mut words) });
            }
            '&' if next == Some('&') => return refuse("&& (chaining)"),
            '&' => return refuse("& (background)"),
            ';' => return refuse("; (chaining)"),
            '\n' | '\r' => return refuse("newline (chaining)"),
            '>' | '<' => {
                if next == Some('(') {
                    return refuse("process substitution");
                }
                return refuse(if c == '>' { "> (redirection)" } else { "< (redirection)" });
            }
            '`' => return refuse("` (command substitution)"),
            '$' if next == Some('(') => return refuse("$() (command substitution)"),
            '(' | ')' => return refuse("( ) (subshell)"),
            '{' | '}' if !in_word && matches!(next, None | Some(' ' | '\t')) => return refuse("{ } (group)"),
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return refuse(if segments.is_empty() { "empty command" } else { "empty pipeline segment" });
    }
    segments.push(Segment { argv: words });
    Ok(segments)
}

/// Where to look for executables and how to match them.
pub struct Resolution<'a> {
    /// The `PATH` the command will run with.
    pub path_var: &'a str,
    pub cwd: &'a Path,
    pub home: Option<&'a Path>,
}

/// Resolves an executable name the way the shell will: a name with `/` relative to `cwd`,
/// otherwise the first executable file on `PATH`.
pub fn resolve_executable(name: &str, res: &Resolution<'_>) -> Option<PathBuf> {
    let candidate = |p: PathBuf| -> Option<PathBuf> {
        let meta = std::fs::metadata(&p).ok()?;
        use std::os::unix::fs::PermissionsExt;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| std::fs::canonicalize(&p).unwrap_or(p))
    };
    if name.contains('/') {
        let p = Path::new(name);
        return candidate(if p.is_absolute() { p.to_path_buf() } else { res.cwd.join(p) });
    }
    res.path_var.split(':').filter(|d| !d.is_empty()).find_map(|dir| candidate(Path::new(dir).join(name)))
}

/// OpenClaw's allowlist glob on paths: `*` within one component, `**` across components, `?` one
/// character; `~` at the start is the home directory. Patterns without a path (`git`) never match
/// — entries name executables by path. A bare `*` matches everything.
pub fn allowlist_match(pattern: &str, resolved: &Path, home: Option<&Path>) -> bool {
    let pattern = pattern.trim();
    if pattern == "*" {
        return true;
    }
    if !pattern.contains('/') && !pattern.contains('~') {
        return false;
    }
    let expanded = match (pattern.strip_prefix('~'), home) {
        (Some(rest), Some(home)) => format!("{}{rest}", home.display()),
        (Some(_), None) => return false,
        (None, _) => pattern.to_string(),
    };
    glob_path(expanded.as_bytes(), resolved.to_string_lossy().as_bytes())
}

fn glob_path(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => (0..=s.len()).any(|k| glob_path(&p[2..], &s[k..])),
        Some(b'*') => {
            let limit = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=limit).any(|k| glob_path(&p[1..], &s[k..]))
        }
        Some(b'?') => s.first().is_some_and(|&c| c != b'/') && glob_path(&p[1..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob_path(&p[1..], &s[1..]),
    }
}

/// Directories a safe bin must live in (OpenClaw's trusted safe-bin dirs).
const TRUSTED_SAFE_BIN_DIRS: &[&str] = &["/bin", "/usr/bin"];

/// How a safe bin may be used on stdin only (after OpenClaw's safe-bin profiles): how many
/// positional operands it takes as data (a pattern, a filter, character sets — never a file), which
/// flags take a value (the value is data too, but must not look like a path), and which flags make
/// it read or write a file and are refused.
struct SafeBinProfile {
    names: &'static [&'static str],
    data_operands: usize,
    value_flags: &'static [&'static str],
    file_flags: &'static [&'static str],
}

const PROFILES: &[SafeBinProfile] = &[
    SafeBinProfile {
        names: &["grep", "egrep", "fgrep"],
        data_operands: 1,
        value_flags: &["-e", "--regexp", "-m", "--max-count", "-A", "-B", "-C", "--label"],
        file_flags: &[
            "-f",
            "--file",
            "-r",
            "-R",
            "--recursive",
            "--dereference-recursive",
            "-d",
            "--directories",
            "--exclude-from",
            "--include",
            "--exclude",
            "--exclude-dir",
        ],
    },
    SafeBinProfile {
        names: &["jq"],
        data_operands: 1,
        value_flags: &["--arg", "--argjson", "--indent", "--tab"],
        file_flags: &["-f", "--from-file", "--rawfile", "--slurpfile", "-L", "--library-path", "--args", "--jsonargs"],
    },
    SafeBinProfile { names: &["tr"], data_operands: 2, value_flags: &[], file_flags: &[] },
    SafeBinProfile {
        names: &["head", "tail"],
        data_operands: 0,
        value_flags: &["-n", "--lines", "-c", "--bytes"],
        file_flags: &["-F", "--follow"],
    },
    SafeBinProfile { names: &["wc"], data_operands: 0, value_flags: &[], file_flags: &["--files0-from"] },
    SafeBinProfile {
        names: &["cut"],
        data_operands: 0,
        value_flags: &[
            "-f",
            "--fields",
            "-d",
            "--delimiter",
            "-c",
            "--characters",
            "-b",
            "--bytes",
            "--output-delimiter",
        ],
        file_flags: &[],
    },
    SafeBinProfile {
        names: &["uniq"],
        data_operands: 0,
        value_flags: &["-f", "--skip-fields", "-s", "--skip-chars", "-w", "--check-chars"],
        file_flags: &[],
    },
    SafeBinProfile {
        names: &["sort"],
        data_operands: 0,
        value_flags: &["-k", "--key", "-t", "--field-separator", "-S", "--buffer-size", "--parallel"],
        file_flags: &[
            "-o",
            "--output",
            "-T",
            "--temporary-directory",
            "--compress-program",
            "--files0-from",
            "--random-source",
        ],
    },
];

/// The rule for a bin without a profile: no operands, and no flag that names a file.
const GENERIC: SafeBinProfile = SafeBinProfile {
    names: &[],
    data_operands: 0,
    value_flags: &[],
    file_flags: &["-o", "--output", "-i", "--in-place", "-f", "--file", "--files0-from", "-r", "-R", "--recursive"],
};

/// Programs that can run commands or write files through their own language; listing them in
/// `safeBins` does not make them safe (they need an allowlist entry).
const NEVER_SAFE: &[&str] = &[
    "sh", "bash", "zsh", "dash", "env", "sed", "awk", "gawk", "mawk", "perl", "python", "python3", "ruby", "node",
    "find", "xargs", "tee", "dd", "cp", "mv", "rm", "ln", "chmod", "chown", "curl", "wget", "git", "ssh", "scp", "tar",
    "vim", "vi",
];

/// Whether a segment is a safe bin used on stdin only: the executable's name is in `safe_bins`
/// (and not a program that can run or write anything by itself), it lives in a trusted system
/// directory, and no argument names a file — no file-taking flag, no operand beyond the data
/// operands its profile allows, nothing path-like or naming an existing file in `cwd`.
pub fn is_safe_bin_usage(argv: &[String], resolved: &Path, safe_bins: &[String], cwd: &Path) -> bool {
    let Some(name) = resolved.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()) else {
        return false;
    };
    let invoked = Path::new(&argv[0]).file_name().map(|n| n.to_string_lossy().to_ascii_lowercase());
    let listed = |n: &str| safe_bins.iter().any(|b| b.trim().eq_ignore_ascii_case(n));
    if !(listed(&name) || invoked.as_deref().is_some_and(listed)) || NEVER_SAFE.contains(&name.as_str()) {
        return false;
    }
    if !resolved.parent().is_some_and(|d| TRUSTED_SAFE_BIN_DIRS.iter().any(|t| Path::new(t) == d)) {
        return false;
    }
    let profile = PROFILES.iter().find(|p| p.names.contains(&name.as_str())).unwrap_or(&GENERIC);
    let is_data = |v: &str| !path_like(v) && !cwd.join(v).exists();
    let mut operands = 0;
    let mut args = argv[1..].iter();
    let mut only_operands = false;
    while let Some(arg) = args.next() {
        if only_operands || arg == "-" || !arg.starts_with('-') || arg.len() == 1 {
            if arg != "-" {
                operands += 1;
                if operands > profile.data_operands || !is_data(arg) {
                    return false;
                }
            }
            continue;
        }
        if arg == "--" {
            only_operands = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (key, value) = match long.split_once('=') {
                Some((k, v)) => (format!("--{k}"), Some(v)),
                None => (arg.clone(), None),
            };
            if profile.file_flags.contains(&key.as_str()) {
                return false;
            }
            if profile.value_flags.contains(&key.as_str()) {
                let value = match value {
                    Some(v) => v.to_string(),
                    None => match args.next() {
                        Some(v) => v.clone(),
                        None => return false,
                    },
                };
                // `--arg name value` takes two.
                if (key == "--arg" || key == "--argjson") && args.next().is_none_or(|v| !is_data(v)) {
                    return false;
                }
                if !is_data(&value) {
                    return false;
                }
            } else if value.is_some_and(|v| !is_data(v)) {
                return false;
            }
            continue;
        }
        // A cluster of short flags (`-rn`), where a value-taking flag ends the cluster (`-n5`).
        let letters: Vec<char> = arg[1..].chars().collect();
        for (i, c) in letters.iter().enumerate() {
            let flag = format!("-{c}");
            if profile.file_flags.contains(&flag.as_str()) {
                return false;
            }
            if profile.value_flags.contains(&flag.as_str()) {
                let attached: String = letters[i + 1..].iter().collect();
                let value = if attached.is_empty() {
                    match args.next() {
                        Some(v) => v.clone(),
                        None => return false,
                    }
                } else {
                    attached
                };
                if !is_data(&value) {
                    return false;
                }
                break;
            }
        }
    }
    true
}

fn path_like(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s.starts_with('~') || s.contains('/')
}

/// Quotes a word for `sh` so it reaches the program exactly as written.
pub fn sh_quote(word: &str) -> String {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// What the allowlist says about a whole command.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every segment is allowed; run this (already quoted) pipeline.
    Allowed { script: String },
    /// Not allowed; the reason says which segment and how to allow it.
    Refused { reason: String },
}

/// The allowlist check of a whole command.
pub fn evaluate(command: &str, allowlist: &[String], safe_bins: &[String], res: &Resolution<'_>) -> Verdict {
    let segments = match split_pipeline(command) {
        Ok(s) => s,
        Err(e) => {
            return Verdict::Refused {
                reason: format!("{e}; in allowlist mode only simple commands and pipelines (`a | b`) can run"),
            };
        }
    };
    let mut parts = Vec::new();
    for seg in &segments {
        let exe = &seg.argv[0];
        let Some(resolved) = resolve_executable(exe, res) else {
            return Verdict::Refused { reason: format!("`{exe}` was not found on PATH") };
        };
        let allowed = allowlist.iter().any(|p| allowlist_match(p, &resolved, res.home))
            || is_safe_bin_usage(&seg.argv, &resolved, safe_bins, res.cwd);
        if !allowed {
            return Verdict::Refused {
                reason: format!(
                    "`{exe}` ({}) is not in tools.exec.allowlist{}; add \"{}\" to tools.exec.allowlist to allow it",
                    resolved.display(),
                    if safe_bins.is_empty() {
                        String::new()
                    } else {
                        " and is not a stdin-only use of a safe bin".into()
                    },
                    resolved.display()
                ),
            };
        }
        let mut words = vec![sh_quote(&resolved.to_string_lossy())];
        words.extend(seg.argv[1..].iter().map(|w| sh_quote(w)));
        parts.push(words.join(" "));
    }
    Verdict::Allowed { script: parts.join(" | ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn pipeline_splitting_table() {
        let rows = [
            "ls -la",
            "git log --oneline | head -n 5",
            "echo 'a | b' \"c ; d\"",
            "echo a\\ b",
            "grep x # trailing comment ; rm -rf /",
            "ls; rm -rf /",
            "ls && rm x",
            "ls || rm x",
            "sleep 1 &",
            "ls |& cat",
            "(ls)",
            "echo $(whoami)",
            "echo \"$(whoami)\"",
            "echo `whoami`",
            "echo \"`whoami`\"",
            "ls > out.txt",
            "cat < /etc/passwd",
            "cat <<EOF",
            "diff <(ls a) <(ls b)",
            "ls\nrm x",
            "ls |",
            "| ls",
            "ls | | wc",
            "echo 'unterminated",
            "{ ls; }",
            "",
            "echo $HOME",
        ];
        let table: String = rows
            .iter()
            .map(|cmd| {
                let result = match split_pipeline(cmd) {
                    Ok(segs) => segs.iter().map(|s| format!("{:?}", s.argv)).collect::<Vec<_>>().join(" | "),
                    Err(e) => format!("ERR {e}"),
                };
                format!("{:42} {result}\n", format!("{cmd:?}"))
            })
            .collect();
        expect![[r#"
            "ls -la"                                   ["ls", "-la"]
            "git log --oneline | head -n 5"            ["git", "log", "--oneline"] | ["head", "-n", "5"]
            "echo 'a | b' \"c ; d\""                   ["echo", "a | b", "c ; d"]
            "echo a\\ b"                               ["echo", "a b"]
            "grep x # trailing comment ; rm -rf /"     ["grep", "x"]
            "ls; rm -rf /"                             ERR unsupported shell syntax: ; (chaining)
            "ls && rm x"                               ERR unsupported shell syntax: && (chaining)
            "ls || rm x"                               ERR unsupported shell syntax: || (chaining)
            "sleep 1 &"                                ERR unsupported shell syntax: & (background)
            "ls |& cat"                                ERR unsupported shell syntax: |&
            "(ls)"                                     ERR unsupported shell syntax: ( ) (subshell)
            "echo $(whoami)"                           ERR unsupported shell syntax: $() (command substitution)
            "echo \"$(whoami)\""                       ERR unsupported shell syntax: $() (command substitution)
            "echo `whoami`"                            ERR unsupported shell syntax: ` (command substitution)
            "echo \"`whoami`\""                        ERR unsupported shell syntax: ` (command substitution)
            "ls > out.txt"                             ERR unsupported shell syntax: > (redirection)
            "cat < /etc/passwd"                        ERR unsupported shell syntax: < (redirection)
            "cat <<EOF"                                ERR unsupported shell syntax: < (redirection)
            "diff <(ls a) <(ls b)"                     ERR unsupported shell syntax: process substitution
            "ls\nrm x"                                 ERR unsupported shell syntax: newline (chaining)
            "ls |"                                     ERR unsupported shell syntax: empty pipeline segment
            "| ls"                                     ERR unsupported shell syntax: empty pipeline segment
            "ls | | wc"                                ERR unsupported shell syntax: empty pipeline segment
            "echo 'unterminated"                       ERR unsupported shell syntax: unterminated quote
            "{ ls; }"                                  ERR unsupported shell syntax: { } (group)
            ""                                         ERR unsupported shell syntax: empty command
            "echo $HOME"                               ["echo", "$HOME"]
        "#]]
        .assert_eq(&table);
    }

    #[test]
    fn allowlist_and_safe_bins_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        let home = Path::new("/home/owner");
        let res = Resolution { path_var: "/usr/bin:/bin", cwd: dir.path(), home: Some(home) };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // (allowlist, safeBins, command)
        let rows: Vec<(Vec<String>, Vec<String>, &str)> = vec![
            (s(&[]), s(&[]), "echo hi"),
            (s(&["/usr/bin/echo"]), s(&[]), "echo hi"),
            (s(&["/usr/bin/*"]), s(&[]), "echo hi | wc -c"),
            (s(&["/usr/bin/echo"]), s(&[]), "echo hi | wc -c"),
            (s(&["/usr/bin/echo"]), s(&["wc"]), "echo hi | wc -c"),
            (s(&["/usr/bin/echo"]), s(&["wc"]), "echo hi | wc -c secret.txt"),
            (s(&["/usr/bin/echo"]), s(&["wc"]), "echo hi | wc -c /etc/passwd"),
            (s(&["/usr/bin/echo"]), s(&["wc"]), "echo hi | wc --files0-from=list"),
            (s(&["/usr/bin/echo"]), s(&["head"]), "echo hi | head -n 1"),
            (s(&[]), s(&["head"]), "head -n 1 ../x"),
            (s(&["/usr/bin/echo"]), s(&["sort"]), "echo hi | sort -o out"),
            (s(&["/usr/bin/echo"]), s(&["sort"]), "echo hi | sort -no out"),
            (s(&["/usr/bin/echo"]), s(&["sort"]), "echo hi | sort -rn -k 2"),
            (s(&["/usr/bin/echo"]), s(&["uniq"]), "echo hi | uniq - out"),
            (s(&["/usr/bin/echo"]), s(&["grep"]), "echo hi | grep -c -e hi"),
            (s(&["/usr/bin/echo"]), s(&["grep"]), "echo hi | grep hi secret.txt"),
            (s(&["/usr/bin/echo"]), s(&["grep"]), "echo hi | grep -rn hi"),
            (s(&["/usr/bin/echo"]), s(&["cut"]), "echo a,b | cut -d, -f2"),
            (s(&["/usr/bin/echo"]), s(&["tr"]), "echo hi | tr a-z A-Z"),
            (s(&["/usr/bin/echo"]), s(&["sed"]), "echo hi | sed s/h/j/"),
            (s(&["echo"]), s(&[]), "echo hi"),
            (s(&["*"]), s(&[]), "echo hi"),
            (s(&["/usr/**"]), s(&[]), "echo hi"),
            (s(&["/usr/*"]), s(&[]), "echo hi"),
            (s(&["/usr/bin/ech?"]), s(&[]), "echo hi"),
            (s(&["/usr/bin/*"]), s(&[]), "echo hi; rm -rf /"),
            (s(&["/usr/bin/*"]), s(&[]), "echo hi > /tmp/x"),
            (s(&["/usr/bin/*"]), s(&[]), "echo $(id)"),
            (s(&["/usr/bin/*"]), s(&[]), "no-such-binary-xyz"),
            (s(&["/usr/bin/*"]), s(&[]), "echo '$HOME' \"it's\""),
        ];
        let table: String = rows
            .iter()
            .map(|(allow, safe, cmd)| {
                let v = match evaluate(cmd, allow, safe, &res) {
                    Verdict::Allowed { script } => format!("RUN {script}"),
                    Verdict::Refused { reason } => format!("NO  {reason}"),
                };
                format!("{:18} {:10} {:36} {v}\n", allow.join(","), safe.join(","), cmd)
            })
            .collect();
        expect![[r#"
                                          echo hi                              NO  `echo` (/usr/bin/echo) is not in tools.exec.allowlist; add "/usr/bin/echo" to tools.exec.allowlist to allow it
            /usr/bin/echo                 echo hi                              RUN /usr/bin/echo hi
            /usr/bin/*                    echo hi | wc -c                      RUN /usr/bin/echo hi | /usr/bin/wc -c
            /usr/bin/echo                 echo hi | wc -c                      NO  `wc` (/usr/bin/wc) is not in tools.exec.allowlist; add "/usr/bin/wc" to tools.exec.allowlist to allow it
            /usr/bin/echo      wc         echo hi | wc -c                      RUN /usr/bin/echo hi | /usr/bin/wc -c
            /usr/bin/echo      wc         echo hi | wc -c secret.txt           NO  `wc` (/usr/bin/wc) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/wc" to tools.exec.allowlist to allow it
            /usr/bin/echo      wc         echo hi | wc -c /etc/passwd          NO  `wc` (/usr/bin/wc) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/wc" to tools.exec.allowlist to allow it
            /usr/bin/echo      wc         echo hi | wc --files0-from=list      NO  `wc` (/usr/bin/wc) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/wc" to tools.exec.allowlist to allow it
            /usr/bin/echo      head       echo hi | head -n 1                  RUN /usr/bin/echo hi | /usr/bin/head -n 1
                               head       head -n 1 ../x                       NO  `head` (/usr/bin/head) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/head" to tools.exec.allowlist to allow it
            /usr/bin/echo      sort       echo hi | sort -o out                NO  `sort` (/usr/bin/sort) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/sort" to tools.exec.allowlist to allow it
            /usr/bin/echo      sort       echo hi | sort -no out               NO  `sort` (/usr/bin/sort) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/sort" to tools.exec.allowlist to allow it
            /usr/bin/echo      sort       echo hi | sort -rn -k 2              RUN /usr/bin/echo hi | /usr/bin/sort -rn -k 2
            /usr/bin/echo      uniq       echo hi | uniq - out                 NO  `uniq` (/usr/bin/uniq) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/uniq" to tools.exec.allowlist to allow it
            /usr/bin/echo      grep       echo hi | grep -c -e hi              RUN /usr/bin/echo hi | /usr/bin/grep -c -e hi
            /usr/bin/echo      grep       echo hi | grep hi secret.txt         NO  `grep` (/usr/bin/grep) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/grep" to tools.exec.allowlist to allow it
            /usr/bin/echo      grep       echo hi | grep -rn hi                NO  `grep` (/usr/bin/grep) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/grep" to tools.exec.allowlist to allow it
            /usr/bin/echo      cut        echo a,b | cut -d, -f2               RUN /usr/bin/echo a,b | /usr/bin/cut -d, -f2
            /usr/bin/echo      tr         echo hi | tr a-z A-Z                 RUN /usr/bin/echo hi | /usr/bin/tr a-z A-Z
            /usr/bin/echo      sed        echo hi | sed s/h/j/                 NO  `sed` (/usr/bin/sed) is not in tools.exec.allowlist and is not a stdin-only use of a safe bin; add "/usr/bin/sed" to tools.exec.allowlist to allow it
            echo                          echo hi                              NO  `echo` (/usr/bin/echo) is not in tools.exec.allowlist; add "/usr/bin/echo" to tools.exec.allowlist to allow it
            *                             echo hi                              RUN /usr/bin/echo hi
            /usr/**                       echo hi                              RUN /usr/bin/echo hi
            /usr/*                        echo hi                              NO  `echo` (/usr/bin/echo) is not in tools.exec.allowlist; add "/usr/bin/echo" to tools.exec.allowlist to allow it
            /usr/bin/ech?                 echo hi                              RUN /usr/bin/echo hi
            /usr/bin/*                    echo hi; rm -rf /                    NO  unsupported shell syntax: ; (chaining); in allowlist mode only simple commands and pipelines (`a | b`) can run
            /usr/bin/*                    echo hi > /tmp/x                     NO  unsupported shell syntax: > (redirection); in allowlist mode only simple commands and pipelines (`a | b`) can run
            /usr/bin/*                    echo $(id)                           NO  unsupported shell syntax: $() (command substitution); in allowlist mode only simple commands and pipelines (`a | b`) can run
            /usr/bin/*                    no-such-binary-xyz                   NO  `no-such-binary-xyz` was not found on PATH
            /usr/bin/*                    echo '$HOME' "it's"                  RUN /usr/bin/echo '$HOME' 'it'\''s'
        "#]]
        .assert_eq(&table);
    }
}
