//! A message's parts, within `delivery.maxPartsPerMessage`: what [`fit`] returns is what the
//! outbox stores and sends.
//!
//! A message that would take more parts is refused (an explicit `send`: the caller can shorten
//! or split it) or cut (a scheduled result or an alert: nobody is there to ask) — the kept text
//! ends with a visible marker saying how many characters were not sent, so a cut is never silent.
//! The work is bounded whatever the input: text beyond twice what the parts could hold is never
//! chunked, so a 10 MB message costs a character count, not 300,000 parts.

use crate::channel::Channel;

/// What to do with a message longer than the part limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLong {
    /// Refuse it with an error that says by how much and what to do.
    Refuse,
    /// Keep what fits and end it with a marker saying how much was cut.
    Truncate,
}

/// A message rendered for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The parts to store, at most the limit.
    pub parts: Vec<String>,
    /// The text the parts carry (the source, or the kept prefix and the marker).
    pub body: String,
    /// Characters of the source that were cut (0 when it fit).
    pub cut_chars: usize,
}

/// Renders `text` into at most `max_parts` parts of `channel`, or refuses or cuts it.
pub fn fit(channel: &dyn Channel, text: &str, max_parts: usize, policy: TooLong) -> Result<Fitted, String> {
    let max_parts = max_parts.max(1);
    // Chunking never makes a part longer than `max_part_chars`, but drops whitespace at cuts; a
    // text twice as long as the parts could hold cannot fit unless it is mostly whitespace, and is
    // judged by its length rather than chunked.
    let window = max_parts.saturating_mul(channel.max_part_chars()).saturating_mul(2);
    let total = text.chars().count();
    let chunked = (total <= window).then(|| channel.chunk(text));
    if let Some(parts) = &chunked
        && parts.len() <= max_parts
    {
        return Ok(Fitted { parts: parts.clone(), body: text.to_string(), cut_chars: 0 });
    }
    let name = channel.name();
    match policy {
        TooLong::Refuse => Err(match chunked {
            Some(parts) => format!(
                "the message is too long for {name}: it needs {} parts and a delivery takes at most {max_parts} (delivery.maxPartsPerMessage); shorten it, send it in pieces, or raise the limit",
                parts.len()
            ),
            None => format!(
                "the message is too long for {name}: {} characters, and a delivery takes at most {max_parts} parts of up to {} characters (delivery.maxPartsPerMessage); shorten it, send it in pieces, or raise the limit",
                group(total),
                group(channel.max_part_chars())
            ),
        }),
        TooLong::Truncate => Ok(truncate(channel, text, total, window, max_parts)),
    }
}

/// The longest prefix (plus marker) that fits, found by bisection over at most `window` chars.
fn truncate(channel: &dyn Channel, text: &str, total: usize, window: usize, max_parts: usize) -> Fitted {
    let offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).take(window.min(total) + 1).collect();
    let byte_at = |chars: usize| offsets.get(chars).copied().unwrap_or(text.len());
    let candidate = |keep: usize| {
        let kept = text[..byte_at(keep)].trim_end();
        let cut = total - kept.chars().count();
        let body = format!(
            "{kept}\n\n… [{} more characters not sent: the message was longer than {max_parts} parts (delivery.maxPartsPerMessage)]",
            group(cut)
        );
        (body, cut)
    };
    let fits = |keep: usize| {
        let (body, cut) = candidate(keep);
        let parts = channel.chunk(&body);
        (parts.len() <= max_parts).then_some(Fitted { parts, body, cut_chars: cut })
    };
    // `lo` always fits (the marker alone is one part); `hi` never does.
    let (mut lo, mut hi) = (0, window.min(total));
    let mut best = fits(0).expect("the marker alone fits in one part");
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        match fits(mid) {
            Some(f) => {
                lo = mid;
                best = f;
            }
            None => hi = mid,
        }
    }
    // Prefer ending at a line break (or a space) near the cut to ending mid-word.
    let kept = &text[..byte_at(lo)];
    let tail = kept.char_indices().rev().take(1000).map(|(i, _)| i).last().unwrap_or(0);
    let nicer = kept[tail..].rfind('\n').or_else(|| kept[tail..].rfind(' ')).map(|i| tail + i);
    if let Some(at) = nicer.filter(|at| *at > 0)
        && let Some(f) = fits(kept[..at].chars().count())
    {
        return f;
    }
    best
}

/// `1234567` → `1,234,567`.
pub(crate) fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pincer_core::config::{DiscordConfig, TelegramConfig, WebhookConfig};

    use super::*;
    use crate::channel::{Discord, Telegram, Webhook};

    fn discord() -> Discord {
        Discord::new(
            &DiscordConfig { token: "t".into(), api_base_url: "http://127.0.0.1:9".into(), ..DiscordConfig::default() },
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn a_message_that_fits_is_unchanged() {
        let text = "one\n\ntwo";
        let f = fit(&discord(), text, 3, TooLong::Refuse).unwrap();
        assert_eq!((f.parts, f.body.as_str(), f.cut_chars), (vec![text.to_string()], text, 0));
    }

    #[test]
    fn an_explicit_send_is_refused_with_the_numbers_and_the_way_out() {
        // 60 lines: more than 3 Discord parts of 17 lines, short enough to be chunked.
        let lines: String = (0..60).map(|i| format!("line {i}\n")).collect();
        let err = fit(&discord(), &lines, 3, TooLong::Refuse).unwrap_err();
        assert_eq!(
            err,
            "the message is too long for discord: it needs 4 parts and a delivery takes at most 3 (delivery.maxPartsPerMessage); shorten it, send it in pieces, or raise the limit"
        );
        let huge = "x".repeat(10 * 1024 * 1024);
        let err = fit(&discord(), &huge, 20, TooLong::Refuse).unwrap_err();
        assert!(err.contains("10,485,760 characters") && err.contains("at most 20 parts of up to 2,000"), "{err}");
    }

    #[test]
    fn a_scheduled_result_is_cut_to_the_limit_with_a_marker_saying_how_much() {
        // The case: 10 MB of short lines would have been 294,120 Discord parts.
        let text: String = (0..300_000).map(|i| format!("row {i:06} ok\n")).collect::<String>();
        let total = text.chars().count();
        let started = std::time::Instant::now();
        let f = fit(&discord(), &text, 20, TooLong::Truncate).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "bounded work: {:?}", started.elapsed());
        assert_eq!(f.parts.len(), 20);
        assert!(f.parts.iter().all(|p| p.chars().count() <= 2000 && p.lines().count() <= 17));
        let marker = format!("… [{} more characters not sent", group(f.cut_chars));
        assert!(f.parts.last().unwrap().contains(&marker), "{}", f.parts.last().unwrap());
        assert!(f.body.ends_with("parts (delivery.maxPartsPerMessage)]"));
        // What was kept is the source's beginning, cut at a line end, and the count adds up.
        let kept = f.body.split("\n\n… [").next().unwrap();
        assert!(text.starts_with(kept) && kept.ends_with(" ok"), "{:?}", &kept[kept.len() - 20..]);
        assert_eq!(kept.chars().count() + f.cut_chars, total);
        // Nearly full: one more line would not fit.
        assert!(kept.lines().count() > 19 * 17 - 20, "{} lines kept", kept.lines().count());
    }

    #[test]
    fn cutting_works_for_long_lines_and_multibyte_text() {
        let tg = Telegram::new(
            &TelegramConfig {
                bot_token: "1:x".into(),
                api_root: "http://127.0.0.1:9".into(),
                ..TelegramConfig::default()
            },
            Duration::from_secs(1),
        )
        .unwrap();
        let text = "é🦀 ".repeat(50_000);
        let f = fit(&tg, &text, 2, TooLong::Truncate).unwrap();
        assert_eq!(f.parts.len(), 2);
        assert!(f.body.contains("more characters not sent"));
        let kept = f.body.split("\n\n… [").next().unwrap();
        assert_eq!(kept.chars().count() + f.cut_chars, text.chars().count());
    }

    #[test]
    fn single_part_channels_are_never_cut() {
        let hook = Webhook::new(&WebhookConfig { allow_private_network: true }, None, Duration::from_secs(1)).unwrap();
        let text = "y".repeat(100_000);
        let f = fit(&hook, &text, 1, TooLong::Refuse).unwrap();
        assert_eq!((f.parts.len(), f.cut_chars), (1, 0));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!([group(0), group(999), group(1000), group(1_234_567)], ["0", "999", "1,000", "1,234,567"]);
    }
}
