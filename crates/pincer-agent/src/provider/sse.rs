//! An incremental server-sent-events parser: feed it bytes as they arrive from the socket, get
//! complete events back. Follows the WHATWG event-stream rules that matter for model APIs: LF,
//! CRLF and CR line ends (also split across reads), `:` comment lines, multi-line `data`, one
//! optional space after the colon, and `event` names.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none (the spec's "message").
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Events larger than this are refused, so a server that never ends a line cannot exhaust memory.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was a CR, so an LF right after it ends nothing new.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    pending_bytes: usize,
}

/// A stream that broke the event-stream framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream: {0}")]
pub struct SseError(pub String);

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Parses `bytes` and returns the events they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, &mut out)?;
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                    self.pending_bytes += 1;
                    if self.pending_bytes > MAX_EVENT_BYTES {
                        return Err(SseError(format!("an event exceeded {MAX_EVENT_BYTES} bytes")));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Ends the stream: an event the server did not terminate with a blank line is still
    /// dispatched (lenient; some OpenAI-compatible servers close right after `data: [DONE]`).
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out)?;
        }
        self.line_done(&[], &mut out)?;
        Ok(out.pop())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            self.pending_bytes = 0;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError("a line is not UTF-8".into()))?;
        let (field, value) = match line.find(':') {
            Some(at) => (&line[..at], line[at + 1..].strip_prefix(' ').unwrap_or(&line[at + 1..])),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            // `id` and `retry` only matter to browsers that reconnect; model APIs never resume.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            out.extend(parser.push(chunk).unwrap());
        }
        out.extend(parser.finish().unwrap());
        out
    }

    #[test]
    fn events_split_across_reads_at_every_byte() {
        let input = "event: message_start\ndata: {\"a\":1}\n\ndata: {\"b\":\"é✓\"}\n\ndata: [DONE]\n\n".as_bytes();
        let want = vec![ev("message_start", "{\"a\":1}"), ev("", "{\"b\":\"é✓\"}"), ev("", "[DONE]")];
        for piece in 1..input.len() {
            assert_eq!(parse_in_pieces(input, piece), want, "piece size {piece}");
        }
    }

    #[test]
    fn crlf_and_bare_cr_line_ends() {
        let input = b"data: one\r\n\r\ndata: two\r\rdata: three\n\n";
        let want = vec![ev("", "one"), ev("", "two"), ev("", "three")];
        for piece in 1..input.len() {
            assert_eq!(parse_in_pieces(input, piece), want, "piece size {piece}");
        }
    }

    #[test]
    fn comments_keepalives_and_unknown_fields_are_skipped() {
        let input = b": OPENROUTER PROCESSING\n\n:keepalive\nid: 7\nretry: 1000\ndata: x\n\n\n\n";
        assert_eq!(parse_in_pieces(input, 3), vec![ev("", "x")]);
    }

    #[test]
    fn multi_line_data_and_space_rules() {
        let input = b"data: line one\ndata:line two\ndata:  indented\ndata\nevent:ping\n\n";
        assert_eq!(parse_in_pieces(input, 5), vec![ev("ping", "line one\nline two\n indented\n")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_event_name_resets() {
        let input = b"event: ping\n\ndata: after\n\n";
        assert_eq!(parse_in_pieces(input, 4), vec![ev("", "after")]);
    }

    #[test]
    fn unterminated_last_event_is_flushed_at_finish() {
        assert_eq!(parse_in_pieces(b"data: [DONE]", 4), vec![ev("", "[DONE]")]);
        assert_eq!(parse_in_pieces(b"data: [DONE]\n", 4), vec![ev("", "[DONE]")]);
        assert_eq!(parse_in_pieces(b"", 1), vec![]);
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut parser = SseParser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(parser.push(&big).is_err());
    }
}
