//! Printing results: JSON for scripts (`--json`), short aligned text for people.

use serde_json::Value;

pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON serialises"));
}

/// Prints `key: value` rows with the keys aligned.
pub fn print_rows(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:>width$}  {v}");
    }
}

pub fn ms(value: &Value) -> String {
    pincer_core::duration::format_duration_ms(value.as_u64().unwrap_or(0))
}

pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
