//! Secrets out of log lines, as OpenClaw's `logs.tail` does (`src/logging/redact.ts`): the
//! configured secrets themselves (every token, key, password, header and env value of the loaded
//! config), then OpenClaw's common token patterns (env assignments, JSON fields, CLI flags, Bearer
//! headers, PEM keys, vendor prefixes such as `sk-`, `ghp_`, `xoxb-`, Telegram bot tokens). A
//! match is masked OpenClaw's way: 18 characters or more keep the first 6 and last 4, shorter ones
//! become `***`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use crate::config::Config;

/// Configured values shorter than this are not treated as secrets (too many false hits).
const MIN_SECRET_CHARS: usize = 8;

/// OpenClaw's default patterns (`DEFAULT_REDACT_PATTERNS`), without its backreferences, which
/// Rust's `regex` does not have. The last capture group, when there is one, is what is masked.
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----",
        r"Authorization\s*[:=]\s*Bearer\s+([A-Za-z0-9._\-+=]+)",
        r"\bBearer\s+([A-Za-z0-9._\-+=]{18,})\b",
        r"\b(sk-[A-Za-z0-9_-]{8,})\b",
        r"\b(ghp_[A-Za-z0-9]{20,})\b",
        r"\b(github_pat_[A-Za-z0-9_]{20,})\b",
        r"\b(xox[baprs]-[A-Za-z0-9-]{10,})\b",
        r"\b(xapp-[A-Za-z0-9-]{10,})\b",
        r"\b(gsk_[A-Za-z0-9_-]{10,})\b",
        r"\b(AIza[0-9A-Za-z\-_]{20,})\b",
        r"\b(pplx-[A-Za-z0-9_-]{10,})\b",
        r"\b(npm_[A-Za-z0-9]{10,})\b",
        r"\b(\d{6,}:[A-Za-z0-9_-]{20,})\b",
        r"\bbot(\d{6,}:[A-Za-z0-9_-]{20,})\b",
        r#"\b[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)\b\s*[=:]\s*["']?([^\s"'\\]+)"#,
        r#"[?&](?:access[-_]?token|auth[-_]?token|hook[-_]?token|api[-_]?key|client[-_]?secret|token|key|secret|password|passwd)=([^&\s"'<>]+)"#,
        r#""(?:apiKey|token|secret|password|passwd|accessToken|refreshToken|botToken)"\s*:\s*"([^"]+)""#,
        r#"--(?:api[-_]?key|hook[-_]?token|token|secret|password|passwd)\s+["']?([^\s"']+)"#,
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("redaction pattern {p}: {e}")))
    .collect()
});

/// Masks a secret: the first 6 and last 4 characters of a long one, `***` for a short one.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if secret.starts_with("-----BEGIN") {
        let first = secret.lines().next().unwrap_or_default();
        let last = secret.lines().last().unwrap_or_default();
        return format!("{first}…redacted…{last}");
    }
    if chars.len() < 18 {
        return "***".into();
    }
    let start: String = chars[..6].iter().collect();
    let end: String = chars[chars.len() - 4..].iter().collect();
    format!("{start}…{end}")
}

/// Redacts log lines: built once per read from the config in force.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// The secrets `config` holds (as loaded, `${VAR}` expanded).
    pub fn from_config(config: &Config) -> Redactor {
        let mut secrets = Vec::new();
        if let Ok(value) = serde_json::to_value(config) {
            collect(&value, false, &mut secrets);
        }
        Redactor::new(secrets)
    }

    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.chars().count() >= MIN_SECRET_CHARS).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `line` with every configured secret and every token pattern masked.
    pub fn line<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(line);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), &mask(secret)));
            }
        }
        for re in PATTERNS.iter() {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = re
                .replace_all(&out, |c: &Captures| {
                    let whole = c.get(0).map_or("", |m| m.as_str());
                    match (1..c.len()).rev().find_map(|i| c.get(i)) {
                        Some(token) if already_masked(token.as_str()) => whole.to_string(),
                        Some(token) => {
                            let at = token.start() - c.get(0).map_or(0, |m| m.start());
                            format!("{}{}{}", &whole[..at], mask(token.as_str()), &whole[at + token.len()..])
                        }
                        None => mask(whole),
                    }
                })
                .into_owned();
            out = Cow::Owned(replaced);
        }
        out
    }
}

/// A value this module already masked: masking it again would lose the hint it leaves.
fn already_masked(token: &str) -> bool {
    token == "***" || token.contains('…')
}

/// Secret-looking values of the config: strings under a key that names a credential, and every
/// value of an `env` or `headers` map.
fn collect(value: &Value, secret: bool, out: &mut Vec<String>) {
    match value {
        Value::String(s) if secret => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect(v, secret, out)),
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.to_ascii_lowercase();
                let named = ["token", "key", "secret", "password", "authorization"].iter().any(|w| key.contains(w));
                collect(v, secret || named || key == "env" || key == "headers", out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_secrets_and_token_patterns_never_come_out() {
        let config = Config::parse(
            r#"{ gateway: { auth: { token: "gw-token-0123456789abcdef" } },
                 channels: { discord: { token: "short-dc-token" } },
                 models: { providers: { p: { api: "openai-completions", baseUrl: "http://x", apiKey: "plainkey-not-prefixed-42",
                     headers: { "X-Org": "org-header-secret" }, models: [] } } } }"#,
            &|_| None,
        )
        .unwrap();
        let r = Redactor::from_config(&config);
        let cases = [
            ("auth with gw-token-0123456789abcdef failed", "auth with gw-tok…cdef failed"),
            ("discord said short-dc-token", "discord said ***"),
            ("calling with plainkey-not-prefixed-42", "calling with plaink…d-42"),
            ("header org-header-secret sent", "header *** sent"),
            ("OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz", "OPENAI_API_KEY=sk-abc…wxyz"),
            ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012", "Authorization: Bearer abcdef…z012"),
            (r#"{"botToken":"123456789:AAbbCCddEEffGGhhIIjjKKllMMnn"}"#, r#"{"botToken":"123456…MMnn"}"#),
            (
                "https://api.telegram.org/bot123456789:AAbbCCddEEffGGhhIIjjKKllMMnn/getMe",
                "https://api.telegram.org/bot123456…MMnn/getMe",
            ),
            ("token xoxb-1234567890-abcdefghij in use", "token xoxb-1…ghij in use"),
            ("nothing secret here: job 4f30db01 ran", "nothing secret here: job 4f30db01 ran"),
        ];
        for (line, want) in cases {
            assert_eq!(r.line(line), want, "{line}");
        }
    }

    #[test]
    fn short_config_values_are_left_alone() {
        let r = Redactor::new(["abc".to_string(), "12345678".to_string()]);
        assert_eq!(r.line("abc 12345678"), "abc ***");
    }
}
