//! Printing results: JSON for scripts (`--json`), short aligned text for people.

use serde::Serialize;

pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON serialises"));
}

/// Writes `{"<key>": [items…], "total": n}` as [`print_json`] would print it, one item at a time,
/// so a long listing is never held whole.
pub struct JsonListWriter<W: std::io::Write> {
    out: W,
    count: u64,
}

impl<W: std::io::Write> JsonListWriter<W> {
    pub fn start(mut out: W, key: &str) -> std::io::Result<Self> {
        write!(out, "{{\n  {}: [", serde_json::to_string(key).unwrap_or_default())?;
        Ok(JsonListWriter { out, count: 0 })
    }

    pub fn item<T: Serialize>(&mut self, item: &T) -> std::io::Result<()> {
        let sep = if self.count == 0 { "" } else { "," };
        write!(self.out, "{sep}\n    ")?;
        // Written straight out, indented as it goes: pretty JSON holds no raw newline inside
        // strings, so each newline starts a line to indent.
        let mut ser = serde_json::Serializer::with_formatter(
            Indented { out: &mut self.out },
            serde_json::ser::PrettyFormatter::with_indent(b"  "),
        );
        item.serialize(&mut ser).map_err(std::io::Error::other)?;
        self.count += 1;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        let close = if self.count == 0 { "]" } else { "\n  ]" };
        writeln!(self.out, "{close},\n  \"total\": {}\n}}", self.count)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A writer that indents every line after the first by four spaces (an item inside
/// [`JsonListWriter`]'s list).
struct Indented<'a, W: std::io::Write> {
    out: &'a mut W,
}

impl<W: std::io::Write> std::io::Write for Indented<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.out.write_all(&rest[..=i])?;
            self.out.write_all(b"    ")?;
            rest = &rest[i + 1..];
        }
        self.out.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Prints `key: value` rows with the keys aligned.
pub fn print_rows(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:>width$}  {v}");
    }
}

pub fn ms(value: u64) -> String {
    pincer_core::duration::format_duration_ms(value)
}

/// An optional value for people: `-` when absent.
pub fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// An instant shown in an IANA zone, e.g. `2026-03-02 07:00:00 CET`.
pub fn time_in(ms: i64, tz: &str) -> String {
    let Some(utc) = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) else { return ms.to_string() };
    match tz.parse::<chrono_tz::Tz>() {
        Ok(zone) => utc.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => utc.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed listing is byte for byte what printing the whole value gives.
    #[test]
    fn a_streamed_list_prints_as_the_whole_value() {
        let items = [
            serde_json::json!({"id": "a", "nested": {"list": [1, 2], "empty": {}}, "text": "line\nbreak"}),
            serde_json::json!({"id": "b"}),
        ];
        for n in 0..=items.len() {
            let mut w = JsonListWriter::start(Vec::new(), "jobs").unwrap();
            for item in &items[..n] {
                w.item(item).unwrap();
            }
            let streamed = String::from_utf8(w.finish().unwrap()).unwrap();
            let whole = serde_json::json!({"jobs": &items[..n], "total": n});
            assert_eq!(streamed, format!("{}\n", serde_json::to_string_pretty(&whole).unwrap()));
        }
    }
}
