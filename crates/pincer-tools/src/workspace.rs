//! The agent's workspace, compatible with OpenClaw's: the bootstrap files composed into the
//! system prompt's "Project Context" section (OpenClaw's order, `## <file>` headings, a per-file
//! cap keeping 70 % head and 20 % tail, a total cap), and skills in `skills/*/SKILL.md` listed in
//! OpenClaw's `<available_skills>` block for the model to `read` on demand.

use std::path::{Path, PathBuf};

/// OpenClaw's bootstrap files, in prompt order. `BOOTSTRAP.md` and `MEMORY.md` appear only when
/// present; the others are reported as `[MISSING]` so the model knows where they belong.
const BOOTSTRAP_FILES: &[(&str, bool)] = &[
    ("AGENTS.md", true),
    ("SOUL.md", true),
    ("TOOLS.md", true),
    ("IDENTITY.md", true),
    ("USER.md", true),
    ("HEARTBEAT.md", true),
    ("BOOTSTRAP.md", false),
    ("MEMORY.md", false),
];

/// OpenClaw's `agents.defaults.bootstrapMaxChars` and `bootstrapTotalMaxChars` defaults.
pub const DEFAULT_BOOTSTRAP_MAX_CHARS: usize = 20_000;
pub const DEFAULT_BOOTSTRAP_TOTAL_MAX_CHARS: usize = 150_000;
const MIN_FILE_BUDGET_CHARS: usize = 64;
/// A bootstrap file larger than this is not read at all (OpenClaw's 2 MB guard).
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// One file as it goes into the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextFile {
    pub name: String,
    pub content: String,
    pub truncated: bool,
}

/// A skill: `skills/<dir>/SKILL.md` with frontmatter `name` and `description`.
#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    /// Workspace-relative path of the SKILL.md, readable with the `read` tool.
    pub location: String,
}

/// A workspace directory.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    pub fn new(root: impl Into<PathBuf>) -> Workspace {
        Workspace { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory if it does not exist (first start).
    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)
    }

    /// The bootstrap files as they go into the prompt, capped per file and in total.
    pub fn context_files(&self, max_chars: usize, total_max_chars: usize) -> Vec<ContextFile> {
        let mut remaining = total_max_chars;
        let mut out = Vec::new();
        for (name, always) in BOOTSTRAP_FILES {
            let content = match self.read_bootstrap(name) {
                Some(c) => c,
                None if *always => format!("[MISSING] Expected at: {}", self.root.join(name).display()),
                None => continue,
            };
            if content.trim().is_empty() {
                continue;
            }
            if remaining < MIN_FILE_BUDGET_CHARS {
                break;
            }
            let (content, truncated) = trim_bootstrap(&content, name, max_chars.min(remaining));
            remaining = remaining.saturating_sub(content.chars().count());
            out.push(ContextFile { name: name.to_string(), content, truncated });
        }
        out
    }

    fn read_bootstrap(&self, name: &str) -> Option<String> {
        let mut path = self.root.join(name);
        if name == "MEMORY.md" && !path.is_file() {
            path = self.root.join("memory.md");
        }
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
            return None;
        }
        std::fs::read(&path).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The "Project Context" section of the system prompt (empty when there is nothing to add).
    pub fn project_context_section(&self, max_chars: usize, total_max_chars: usize) -> String {
        let files = self.context_files(max_chars, total_max_chars);
        if files.is_empty() {
            return String::new();
        }
        let mut lines = vec![
            "# Project Context".to_string(),
            String::new(),
            "The following project context files have been loaded:".to_string(),
        ];
        if files.iter().any(|f| f.name == "SOUL.md" && !f.content.starts_with("[MISSING]")) {
            lines.push("If SOUL.md is present, embody its persona and tone. Avoid stiff, generic replies; follow its guidance unless higher-priority instructions override it.".into());
        }
        lines.push(String::new());
        for f in &files {
            lines.push(format!("## {}", f.name));
            lines.push(String::new());
            lines.push(f.content.clone());
            lines.push(String::new());
        }
        lines.join("\n")
    }

    /// The skills in `skills/*/SKILL.md`, sorted by directory; files without a `name` or
    /// `description` are skipped.
    pub fn skills(&self) -> Vec<Skill> {
        let Ok(entries) = std::fs::read_dir(self.root.join("skills")) else {
            return Vec::new();
        };
        let mut dirs: Vec<_> =
            entries.filter_map(Result::ok).filter(|e| e.path().is_dir()).map(|e| e.file_name()).collect();
        dirs.sort();
        dirs.into_iter()
            .filter_map(|dir| {
                let rel = format!("skills/{}/SKILL.md", dir.to_string_lossy());
                let text = std::fs::read_to_string(self.root.join(&rel)).ok()?;
                let (name, description) = parse_frontmatter(&text)?;
                Some(Skill { name, description, location: rel })
            })
            .collect()
    }

    /// OpenClaw's skills block for the system prompt (empty without skills).
    pub fn skills_section(&self) -> String {
        let skills = self.skills();
        if skills.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "## Skills (mandatory)\nBefore replying: scan <available_skills> <description> entries.\n- If exactly one skill clearly applies: read its SKILL.md at <location> with `read`, then follow it.\n- If multiple could apply: choose the most specific one, then read/follow it.\n- If none clearly apply: do not read any SKILL.md.\nConstraints: never read more than one skill up front; only read after selecting.\n\n<available_skills>\n",
        );
        for skill in &skills {
            s.push_str(&format!(
                "  <skill>\n    <name>{}</name>\n    <description>{}</description>\n    <location>{}</location>\n  </skill>\n",
                xml_escape(&skill.name),
                xml_escape(&skill.description),
                xml_escape(&skill.location)
            ));
        }
        s.push_str("</available_skills>\n");
        s
    }
}

/// OpenClaw's `trimBootstrapContent`: over the cap, keep 70 % from the head and 20 % from the tail
/// around a marker that says where the full file is.
fn trim_bootstrap(content: &str, name: &str, max: usize) -> (String, bool) {
    let trimmed = content.trim_end();
    let len = trimmed.chars().count();
    if len <= max {
        return (trimmed.to_string(), false);
    }
    let head_n = max * 7 / 10;
    let tail_n = max * 2 / 10;
    let head: String = trimmed.chars().take(head_n).collect();
    let tail: String = trimmed.chars().skip(len - tail_n).collect();
    let marker = format!(
        "\n[...truncated, read {name} for full content...]\n…(truncated {name}: kept {head_n}+{tail_n} chars of {len})…\n"
    );
    (format!("{head}\n{marker}\n{tail}"), true)
}

/// `name` and `description` from YAML frontmatter (`---` … `---`), for the simple forms skills
/// use: `key: value`, quoted values, and `>`/`|` block scalars.
fn parse_frontmatter(text: &str) -> Option<(String, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    if lines.next()?.trim() != "---" {
        return None;
    }
    let body: Vec<&str> = lines.take_while(|l| l.trim() != "---").collect();
    let field = |key: &str| -> Option<String> {
        let idx = body.iter().position(|l| l.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':')))?;
        let value = body[idx][key.len()..].trim_start()[1..].trim();
        let value = if matches!(value, ">" | "|" | ">-" | "|-" | ">+" | "|+") {
            let block: Vec<&str> = body[idx + 1..]
                .iter()
                .take_while(|l| l.starts_with(' ') || l.trim().is_empty())
                .map(|l| l.trim())
                .collect();
            block.join(if value.starts_with('>') { " " } else { "\n" }).trim().to_string()
        } else if let Some(q) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            q.replace("\\\"", "\"")
        } else if let Some(q) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            q.replace("''", "'")
        } else {
            value.to_string()
        };
        Some(value).filter(|v| !v.is_empty())
    };
    Some((field("name")?, field("description")?))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn bootstrap_files_compose_in_openclaw_order_with_caps() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w("USER.md", "The user is Ada.\n");
        w("AGENTS.md", "Be useful.\n");
        w("SOUL.md", "Dry humour.");
        w("TOOLS.md", &format!("{}{}", "a".repeat(80), "z".repeat(40)));
        w("memory.md", "Remember the milk.");
        w("HEARTBEAT.md", "   \n");
        let ws = Workspace::new(dir.path());
        let section = ws.project_context_section(100, DEFAULT_BOOTSTRAP_TOTAL_MAX_CHARS);
        let section = section.replace(&dir.path().display().to_string(), "<ws>");
        expect![[r#"
            # Project Context

            The following project context files have been loaded:
            If SOUL.md is present, embody its persona and tone. Avoid stiff, generic replies; follow its guidance unless higher-priority instructions override it.

            ## AGENTS.md

            Be useful.

            ## SOUL.md

            Dry humour.

            ## TOOLS.md

            aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

            [...truncated, read TOOLS.md for full content...]
            …(truncated TOOLS.md: kept 70+20 chars of 120)…

            zzzzzzzzzzzzzzzzzzzz

            ## IDENTITY.md

            [MISSING] Expected at: <ws>/IDENTITY.md

            ## USER.md

            The user is Ada.

            ## MEMORY.md

            Remember the milk.
        "#]]
        .assert_eq(&section);
        // The total cap stops adding files once less than 64 chars are left.
        let capped = ws.context_files(100, 80);
        assert_eq!(capped.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["AGENTS.md", "SOUL.md"]);
        assert!(
            Workspace::new(dir.path().join("nope"))
                .context_files(100, 1000)
                .iter()
                .all(|f| f.content.starts_with("[MISSING]"))
        );
    }

    #[test]
    fn skills_are_listed_from_frontmatter() {
        let dir = tempfile::tempdir().unwrap();
        let skill = |d: &str, text: &str| {
            std::fs::create_dir_all(dir.path().join("skills").join(d)).unwrap();
            std::fs::write(dir.path().join("skills").join(d).join("SKILL.md"), text).unwrap();
        };
        skill(
            "weather",
            "---\nname: weather\ndescription: \"Get the <weather> & forecast\"\n---\n# Weather\nUse curl.",
        );
        skill("notes", "---\nname: notes\ndescription: >\n  Keep notes\n  in notes/.\nmetadata: {}\n---\nbody");
        skill("broken", "no frontmatter here");
        skill("nodesc", "---\nname: nodesc\n---\n");
        let ws = Workspace::new(dir.path());
        expect![[r#"
            ## Skills (mandatory)
            Before replying: scan <available_skills> <description> entries.
            - If exactly one skill clearly applies: read its SKILL.md at <location> with `read`, then follow it.
            - If multiple could apply: choose the most specific one, then read/follow it.
            - If none clearly apply: do not read any SKILL.md.
            Constraints: never read more than one skill up front; only read after selecting.

            <available_skills>
              <skill>
                <name>notes</name>
                <description>Keep notes in notes/.</description>
                <location>skills/notes/SKILL.md</location>
              </skill>
              <skill>
                <name>weather</name>
                <description>Get the &lt;weather&gt; &amp; forecast</description>
                <location>skills/weather/SKILL.md</location>
              </skill>
            </available_skills>
        "#]]
        .assert_eq(&ws.skills_section());
    }
}
