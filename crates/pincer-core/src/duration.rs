//! Durations written the way OpenClaw users write them: `500ms`, `30s`, `5m`, `24h`, `7d`, `1h30m`.

/// Parses a duration into milliseconds. A bare number uses `bare_unit_ms` (OpenClaw reads a bare
/// `sessionRetention` as hours); `None` rejects bare numbers.
pub fn parse_duration_ms(text: &str, bare_unit_ms: Option<u64>) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return match bare_unit_ms {
            Some(unit) => {
                n.checked_mul(unit).filter(|ms| *ms <= MAX_MS).ok_or_else(|| format!("duration `{text}` is too large"))
            }
            None => Err(format!("duration `{text}` needs a unit (ms, s, m, h, d), e.g. `{n}m`")),
        };
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`: expected a number before `{rest}`"));
        }
        let number: f64 = rest[..digits].parse().map_err(|_| format!("invalid duration `{text}`"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match rest[..unit_len].trim() {
            "ms" => 1.0,
            "s" | "sec" | "secs" => 1_000.0,
            "m" | "min" | "mins" => 60_000.0,
            "h" | "hr" | "hrs" => 3_600_000.0,
            "d" | "day" | "days" => 86_400_000.0,
            "w" => 604_800_000.0,
            other => return Err(format!("invalid duration `{text}`: unknown unit `{other}` (use ms, s, m, h, d)")),
        };
        rest = &rest[unit_len..];
        let ms = (number * unit).round();
        total = match total.checked_add(ms as u64) {
            Some(t) if ms < MAX_MS as f64 && t <= MAX_MS => t,
            _ => return Err(format!("duration `{text}` is too large")),
        };
    }
    Ok(total)
}

/// The longest duration accepted, so that every duration fits an `i64` of epoch milliseconds.
const MAX_MS: u64 = i64::MAX as u64;

/// Formats milliseconds compactly (`90000` → `1m30s`).
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let mut out = String::new();
    let mut left = ms / 1_000;
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= secs {
            out.push_str(&format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration_ms("500ms", None), Ok(500));
        assert_eq!(parse_duration_ms("30s", None), Ok(30_000));
        assert_eq!(parse_duration_ms("5m", None), Ok(300_000));
        assert_eq!(parse_duration_ms("1h30m", None), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1.5h", None), Ok(5_400_000));
        assert_eq!(parse_duration_ms("24", Some(3_600_000)), Ok(86_400_000));
        assert!(parse_duration_ms("24", None).unwrap_err().contains("needs a unit"));
        assert!(parse_duration_ms("5 parsecs", None).unwrap_err().contains("unknown unit"));
        assert!(parse_duration_ms("h", None).is_err());
        // Found by the bad-input suite: huge durations saturated to u64::MAX instead of failing.
        assert_eq!(
            parse_duration_ms("99999999999999999999d", None),
            Err("duration `99999999999999999999d` is too large".into())
        );
        assert!(parse_duration_ms("106751991167d", None).is_ok());
        assert!(parse_duration_ms("106751991168d", None).is_err());
        assert!(parse_duration_ms("9000000000000000000ms", None).is_ok());
        assert!(parse_duration_ms("9000000000000000000ms300000000000000000ms", None).is_err());
        assert!(parse_duration_ms("9223372036854775808", Some(1)).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration_ms(90_000), "1m30s");
        assert_eq!(format_duration_ms(250), "250ms");
        assert_eq!(format_duration_ms(86_400_000 + 1_000), "1d1s");
    }
}
