//! Splitting one message into parts that each fit a single platform message.
//!
//! [`chunk_text`] cuts, in order of preference: at a paragraph boundary (a blank line, or the edge of
//! a code fence), at a line break, at whitespace, and finally between two characters. A code fence
//! that has to be cut is closed at the end of one part and reopened, with its info string, at the
//! start of the next. Whitespace at a cut is dropped and everything else is kept verbatim, so the
//! parts joined back (minus the inserted fence lines) give the original text. Lengths count Unicode
//! scalar values (`char`s); lines count `\n` separators plus one.

use std::ops::Range;

/// Splits `text` into non-empty parts of at most `max_chars` characters and `max_lines` lines each.
///
/// Text that is empty or only whitespace gives no parts. Pass `usize::MAX` for a limit a platform
/// does not have.
///
/// # Panics
///
/// If `max_chars` or `max_lines` is zero.
pub fn chunk_text(text: &str, max_chars: usize, max_lines: usize) -> Vec<String> {
    pieces(text, max_chars, max_lines).iter().map(|piece| piece.render(text)).collect()
}

/// One part: a verbatim range of the source, plus the fence lines inserted around it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    /// A fence opener (e.g. "```rust") put on its own line before the range.
    reopen: Option<String>,
    range: Range<usize>,
    /// A fence closer (e.g. "```") put on its own line after the range.
    close: Option<String>,
}

impl Piece {
    fn render(&self, text: &str) -> String {
        let mut out = String::new();
        if let Some(open) = &self.reopen {
            out.push_str(open);
            out.push('\n');
        }
        out.push_str(&text[self.range.clone()]);
        if let Some(close) = &self.close {
            out.push('\n');
            out.push_str(close);
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Outside a fence, with content.
    Text,
    /// Outside a fence, whitespace only.
    Blank,
    /// A fence's opening line.
    Open,
    /// A line inside a fence (possibly blank).
    Code,
    /// A fence's closing line.
    Close,
}

#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    /// End of the line's content without trailing whitespace; `start` for a blank line.
    end: usize,
    kind: Kind,
    /// For `Open`/`Code`/`Close` lines: the fence they belong to.
    fence: usize,
}

impl Line {
    fn is_blank(&self) -> bool {
        self.start == self.end
    }
}

#[derive(Debug, Clone)]
struct Fence {
    /// The opener written again at the start of a continuation part.
    reopen: String,
    /// The closer inserted at the end of a part that stops inside the fence.
    close: String,
}

/// Where one part ends and the next begins.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// Where the part starts (after indentation that could not fit).
    start: usize,
    end: usize,
    /// The fence the part has to close, if it stops inside one.
    close: Option<usize>,
    /// The next part's first line, start offset and fence to reopen; `None` when the text is done.
    next: Option<(usize, usize, Option<usize>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Paragraph = 0,
    Line = 1,
    Space = 2,
    Hard = 3,
}

struct Doc<'a> {
    text: &'a str,
    lines: Vec<Line>,
    fences: Vec<Fence>,
    /// Characters before each byte offset (valid at char boundaries).
    char_at: Vec<usize>,
    max_chars: usize,
    max_lines: usize,
}

fn count(s: &str) -> usize {
    s.chars().count()
}

/// Recognises a fence opener: up to three spaces, then at least three backticks or tildes.
fn parse_opener(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let mark = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let run = rest.len() - rest.trim_start_matches(mark).len();
    if run < 3 || (mark == '`' && rest[run..].contains('`')) {
        return None;
    }
    Some((mark, run))
}

fn is_closer(line: &str, mark: char, run: usize) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let len = rest.len() - rest.trim_start_matches(mark).len();
    indent <= 3 && len >= run && rest[len..].trim().is_empty()
}

impl<'a> Doc<'a> {
    fn parse(text: &'a str, max_chars: usize, max_lines: usize) -> Self {
        let mut lines = Vec::new();
        let mut fences = Vec::new();
        // (fence index, marker, run length, opener chars)
        let mut open: Option<(usize, char, usize)> = None;
        let mut opener_chars = Vec::new();
        let mut pos = 0;
        for raw in text.split('\n') {
            let start = pos;
            pos += raw.len() + 1;
            let end = start + raw.trim_end().len();
            let mut line = Line { start, end, kind: Kind::Text, fence: 0 };
            match open {
                Some((fence, mark, run)) => {
                    line.fence = fence;
                    line.kind = if is_closer(raw, mark, run) {
                        open = None;
                        Kind::Close
                    } else {
                        Kind::Code
                    };
                }
                None => {
                    if let Some((mark, run)) = parse_opener(raw) {
                        line.kind = Kind::Open;
                        line.fence = fences.len();
                        open = Some((fences.len(), mark, run));
                        fences.push(Fence { reopen: raw.trim().to_string(), close: mark.to_string().repeat(run) });
                        opener_chars.push(count(&text[start..end]));
                    } else if line.is_blank() {
                        line.kind = Kind::Blank;
                    }
                }
            }
            lines.push(line);
        }
        // A fence is repaired across parts only if its opener and closer leave room for content;
        // otherwise its lines are treated as ordinary text.
        let mut enabled = vec![true; fences.len()];
        for (i, fence) in fences.iter_mut().enumerate() {
            let close = count(&fence.close) + 1;
            if max_lines < 3 || opener_chars[i] + close + 3 > max_chars {
                enabled[i] = false;
            } else if count(&fence.reopen) + 1 + close + 1 > max_chars / 2 {
                fence.reopen = fence.close.clone();
                enabled[i] = 2 * close < max_chars / 2;
            }
        }
        for line in &mut lines {
            if line.kind != Kind::Text && line.kind != Kind::Blank && !enabled[line.fence] {
                line.kind = if line.is_blank() { Kind::Blank } else { Kind::Text };
            }
        }
        let mut char_at = vec![0; text.len() + 1];
        let mut n = 0;
        for (i, _) in text.char_indices() {
            char_at[i] = n;
            n += 1;
        }
        char_at[text.len()] = n;
        Doc { text, lines, fences, char_at, max_chars, max_lines }
    }

    fn chars(&self, from: usize, to: usize) -> usize {
        self.char_at[to] - self.char_at[from]
    }

    /// The line holding byte `at`, searching forward from line `from`.
    fn line_of(&self, from: usize, at: usize) -> usize {
        (from..self.lines.len()).take_while(|&i| self.lines[i].start <= at).last().unwrap_or(from)
    }

    fn next_nonblank(&self, from: usize) -> Option<usize> {
        (from..self.lines.len()).find(|&i| !self.lines[i].is_blank())
    }

    /// The fence a cut right after `line` would stop inside of.
    fn fence_after(&self, line: &Line) -> Option<usize> {
        matches!(line.kind, Kind::Open | Kind::Code).then_some(line.fence)
    }

    fn close_cost(&self, fence: Option<usize>) -> (usize, usize) {
        fence.map_or((0, 0), |f| (count(&self.fences[f].close) + 1, 1))
    }

    /// The best cut for a part starting at byte `start` on line `first`, reopening `reopen`.
    fn best_cut(&self, first: usize, start: usize, reopen: Option<usize>) -> Cut {
        let (prefix_chars, prefix_lines) = reopen.map_or((0, 0), |f| (count(&self.fences[f].reopen) + 1, 1));
        let mut best: [Option<Cut>; 4] = [None; 4];
        for j in first..self.lines.len() {
            let line = self.lines[j];
            let used_lines = prefix_lines + j - first + 1;
            let from = if j == first { start } else { line.start };
            if used_lines > self.max_lines || prefix_chars + self.chars(start, from) > self.max_chars {
                break;
            }
            match self.next_nonblank(j + 1) {
                _ if line.is_blank() => {}
                // The rest of the text fits: nothing beats finishing.
                None if prefix_chars + self.chars(start, line.end) <= self.max_chars => {
                    return Cut { start, end: line.end, close: None, next: None };
                }
                None => {}
                Some(next) => {
                    let fence = self.fence_after(&line);
                    let (close_chars, close_lines) = self.close_cost(fence);
                    let fits = prefix_chars + self.chars(start, line.end) + close_chars <= self.max_chars
                        && used_lines + close_lines <= self.max_lines;
                    // Never cut right after an opener, nor where only the closer is left to reopen.
                    let valid = line.kind != Kind::Open && !(fence.is_some() && self.lines[next].kind == Kind::Close);
                    if fits && valid {
                        let paragraph = fence.is_none()
                            && (line.kind == Kind::Close || matches!(self.lines[j + 1].kind, Kind::Blank | Kind::Open));
                        let class = if paragraph { Class::Paragraph } else { Class::Line };
                        best[class as usize] = Some(Cut {
                            start,
                            end: line.end,
                            close: fence,
                            next: Some((next, self.lines[next].start, fence)),
                        });
                    }
                }
            }
            if matches!(line.kind, Kind::Text | Kind::Code) && from < line.end {
                self.cuts_inside_line(j, used_lines, start, from, prefix_chars, &mut best);
            }
        }
        if let Some(cut) = best.into_iter().flatten().next() {
            return cut;
        }
        // Indentation too wide for a part is boundary whitespace too.
        let rest = &self.text[start..];
        let indent = rest.len() - rest.trim_start().len();
        if indent > 0 && indent < rest.len() {
            let start = start + indent;
            let first = self.line_of(first, start);
            return self.best_cut(first, start, reopen);
        }
        self.fallback_cut(first, start, prefix_chars, prefix_lines)
    }

    /// Whitespace and hard cuts inside line `j`, between `from` and the line's end.
    fn cuts_inside_line(
        &self,
        j: usize,
        used_lines: usize,
        start: usize,
        from: usize,
        prefix_chars: usize,
        best: &mut [Option<Cut>; 4],
    ) {
        let line = self.lines[j];
        let fence = (line.kind == Kind::Code).then_some(line.fence);
        let (close_chars, close_lines) = self.close_cost(fence);
        if used_lines + close_lines > self.max_lines {
            return;
        }
        let segment = &self.text[from..line.end];
        let mut prev_space = true;
        let mut iter = segment.char_indices().peekable();
        while let Some((offset, c)) = iter.next() {
            let at = from + offset;
            let space = c.is_whitespace();
            if at > from && !prev_space {
                if prefix_chars + self.chars(start, at) + close_chars > self.max_chars {
                    return;
                }
                if space {
                    // Skip the whole run; it never reaches the line's trimmed end.
                    let mut resume = at + c.len_utf8();
                    while let Some(&(o, c2)) = iter.peek() {
                        if !c2.is_whitespace() {
                            break;
                        }
                        resume = from + o + c2.len_utf8();
                        iter.next();
                    }
                    best[Class::Space as usize] =
                        Some(Cut { start, end: at, close: fence, next: Some((j, resume, fence)) });
                    prev_space = true;
                    continue;
                }
                best[Class::Hard as usize] = Some(Cut { start, end: at, close: fence, next: Some((j, at, fence)) });
            }
            prev_space = space;
        }
    }

    /// Last resort for degenerate input (e.g. a fence of blank lines taller than a part): cut as
    /// much as fits, ignoring fences. `start` is never whitespace.
    fn fallback_cut(&self, first: usize, start: usize, prefix_chars: usize, prefix_lines: usize) -> Cut {
        let mut lines = prefix_lines + 1;
        let mut end = start;
        for (offset, c) in self.text[start..].char_indices() {
            let at = start + offset;
            lines += usize::from(c == '\n');
            if at > start && (prefix_chars + self.chars(start, at) + 1 > self.max_chars || lines > self.max_lines) {
                break;
            }
            end = at + c.len_utf8();
        }
        let end = start + self.text[start..end].trim_end().len();
        let rest = &self.text[end..];
        let skipped = rest.len() - rest.trim_start().len();
        if skipped == rest.len() {
            return Cut { start, end, close: None, next: None };
        }
        let resume = end + skipped;
        let line = self.line_of(first, resume);
        Cut { start, end, close: None, next: Some((line, resume, None)) }
    }
}

fn pieces(text: &str, max_chars: usize, max_lines: usize) -> Vec<Piece> {
    assert!(max_chars > 0 && max_lines > 0, "chunk limits must be positive");
    let doc = Doc::parse(text, max_chars, max_lines);
    let mut out = Vec::new();
    let Some(mut first) = doc.next_nonblank(0) else { return out };
    let mut start = doc.lines[first].start;
    let mut reopen = None;
    loop {
        let cut = doc.best_cut(first, start, reopen);
        out.push(Piece {
            reopen: reopen.map(|f| doc.fences[f].reopen.clone()),
            range: cut.start..cut.end,
            close: cut.close.map(|f| doc.fences[f].close.clone()),
        });
        let Some((line, next, fence)) = cut.next else { break };
        (first, start, reopen) = (line, next, fence);
    }
    out
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    /// A small deterministic generator (xorshift64*), so failures reproduce from the seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    fn word(rng: &mut Rng) -> String {
        match rng.below(20) {
            0 => "x".repeat(1 + rng.below(300)),
            1 => "é日😀".repeat(1 + rng.below(40)),
            _ => rng.pick(&["hello", "world", "naïve", "日本語", "😀", "a", "**bold**", "`code`", "-", "1."]).into(),
        }
    }

    fn document(rng: &mut Rng) -> (String, bool) {
        let mut out = String::new();
        let mut fences_closed = true;
        for _ in 0..rng.below(24) {
            match rng.below(10) {
                0 | 1 => {
                    let mark = rng.pick(&["```", "~~~", "````"]);
                    out.push_str(mark);
                    out.push_str(rng.pick(&["", "rust", "python title=x"]));
                    out.push('\n');
                    let mut blanks = 0;
                    for _ in 0..rng.below(30) {
                        if rng.below(6) == 0 && blanks < 2 {
                            blanks += 1;
                            out.push('\n');
                            continue;
                        }
                        blanks = 0;
                        out.push_str(&"  ".repeat(rng.below(3)));
                        for _ in 0..1 + rng.below(12) {
                            out.push_str(&word(rng));
                            out.push(' ');
                        }
                        out.push('\n');
                    }
                    if rng.below(12) == 0 {
                        fences_closed = false;
                        break;
                    }
                    out.push_str(mark);
                    out.push('\n');
                }
                _ => {
                    for _ in 0..rng.below(60) {
                        out.push_str(&word(rng));
                        out.push_str(rng.pick(&[" ", " ", " ", "  ", "\n", "\t", "\r\n"]));
                    }
                }
            }
            out.push_str(rng.pick(&["\n", "\n\n", "\n\n\n", " \n \n"]));
        }
        (out, fences_closed)
    }

    /// Whether a part ends inside a fence when read on its own.
    fn ends_inside_fence(part: &str) -> bool {
        let mut open: Option<(char, usize)> = None;
        for line in part.split('\n') {
            open = match open {
                Some((mark, run)) if is_closer(line, mark, run) => None,
                Some(o) => Some(o),
                None => parse_opener(line),
            };
        }
        open.is_some()
    }

    /// Checks every invariant and returns how many parts reopened a fence.
    fn check(text: &str, max_chars: usize, max_lines: usize, fences_closed: bool) -> usize {
        let pieces = pieces(text, max_chars, max_lines);
        let parts = chunk_text(text, max_chars, max_lines);
        let ctx = || format!("limits ({max_chars}, {max_lines}), text {} bytes", text.len());
        assert_eq!(parts.len(), pieces.len());
        let mut cursor = 0;
        for (piece, part) in pieces.iter().zip(&parts) {
            assert_eq!(&piece.render(text), part);
            assert!(count(part) <= max_chars, "part over {max_chars} chars: {part:?} {piece:?} {}", ctx());
            assert!(part.split('\n').count() <= max_lines, "part over {max_lines} lines: {}", ctx());
            assert!(!text[piece.range.clone()].trim().is_empty(), "empty part: {}", ctx());
            assert!(piece.range.start >= cursor, "parts out of order: {}", ctx());
            let gap = &text[cursor..piece.range.start];
            assert!(gap.trim().is_empty(), "dropped {gap:?}: {}", ctx());
            cursor = piece.range.end;
            if fences_closed {
                assert!(!ends_inside_fence(part), "unbalanced fence: {}", ctx());
            }
        }
        assert!(text[cursor..].trim().is_empty(), "dropped tail {:?}: {}", &text[cursor..], ctx());
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].close.is_some(), pair[1].reopen.is_some(), "{}", ctx());
        }
        pieces.iter().filter(|p| p.reopen.is_some()).count()
    }

    #[test]
    fn invariants_hold_for_generated_documents() {
        let limits = [(2000, 17), (4000, usize::MAX), (300, 6), (80, 4), (40, 3), (25, usize::MAX), (7, 2), (1, 1)];
        let mut reopened = 0;
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let (text, fences_closed) = document(&mut rng);
            for (max_chars, max_lines) in limits {
                // Tiny limits turn fence repair off (and a fence opening with blank lines taller than a part
                // cannot be repaired), so balance is only checked for realistic limits.
                reopened += check(&text, max_chars, max_lines, fences_closed && max_chars >= 40 && max_lines >= 6);
            }
        }
        assert!(reopened > 100, "the generator should exercise fence repair, got {reopened}");
    }

    #[test]
    fn edge_inputs() {
        for text in ["", " ", "\n\n", " \t\r\n", "a", "😀", "```", "```\n```", "```\n\n\n```", "a\n```rust"] {
            for (max_chars, max_lines) in [(1, 1), (3, 3), (2000, 17)] {
                check(text, max_chars, max_lines, false);
            }
        }
        assert!(chunk_text(" \n\t", 10, 10).is_empty());
    }

    #[test]
    fn prefers_paragraphs_then_lines_then_spaces() {
        let text = "one two\nthree\n\nfour five six\nseven";
        expect![[r#"["one two\nthree", "four five six\nseven"]"#]]
            .assert_eq(&format!("{:?}", chunk_text(text, 30, 10)));
        expect![[r#"["one two\nthree", "four five six", "seven"]"#]]
            .assert_eq(&format!("{:?}", chunk_text(text, 14, 10)));
        expect![[r#"["one two", "three", "four five", "six\nseven"]"#]]
            .assert_eq(&format!("{:?}", chunk_text(text, 9, 10)));
        expect![[r#"["abcd", "efgh", "ij"]"#]].assert_eq(&format!("{:?}", chunk_text("abcdefghij", 4, 1)));
        expect![[r#"["a\nb\nc", "d\ne"]"#]].assert_eq(&format!("{:?}", chunk_text("a\nb\nc\nd\ne", 100, 3)));
    }

    #[test]
    fn counts_characters_not_bytes() {
        expect![[r#"["日本語", "😀😀😀", "é"]"#]].assert_eq(&format!("{:?}", chunk_text("日本語😀😀😀é", 3, 1)));
    }

    #[test]
    fn keeps_a_fence_whole_when_a_paragraph_cut_exists() {
        let text = "intro\n\n```rust\nfn a() {}\n\nfn b() {}\n```\nafter";
        expect![[r#"["intro", "```rust\nfn a() {}\n\nfn b() {}\n```", "after"]"#]]
            .assert_eq(&format!("{:?}", chunk_text(text, 35, 10)));
    }

    #[test]
    fn reopens_a_fence_that_does_not_fit() {
        let text = "```rust\nlet a = 1;\nlet b = 2;\n\nlet c = 3;\n```\ndone";
        expect![[r#"["```rust\nlet a = 1;\nlet b = 2;\n```", "```rust\nlet c = 3;\n```\ndone"]"#]]
            .assert_eq(&format!("{:?}", chunk_text(text, 34, 10)));
        // A code line longer than a part is cut at whitespace and the fence repaired around it.
        expect![[r#"["~~~\nalpha beta\n~~~", "~~~\ngamma\n~~~"]"#]]
            .assert_eq(&format!("{:?}", chunk_text("~~~\nalpha beta gamma\n~~~", 18, 3)));
        // Line limits count the inserted fence lines too.
        expect![[r#"["```\n1\n2\n```", "```\n3\n4\n```"]"#]]
            .assert_eq(&format!("{:?}", chunk_text("```\n1\n2\n3\n4\n```", 100, 4)));
    }
}
