//! Cron expressions in plain language (`every day at 07:00`), and the warning for a six-field
//! expression that was most likely meant as a five-field one: `0 7 * * * *` is read seconds-first,
//! as OpenClaw (croner) reads it, so it runs every hour at :07, not every day at 07:00.
//!
//! Only the common shapes are described; anything else returns `None` and is shown as written.

const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn number(field: &str, max: u32) -> Option<u32> {
    field.parse::<u32>().ok().filter(|n| *n <= max)
}

/// `*/N` (or `0/N`) → N.
fn step(field: &str) -> Option<u32> {
    let (base, n) = field.split_once('/')?;
    if base != "*" && base != "0" {
        return None;
    }
    n.parse().ok().filter(|n| *n > 0)
}

fn day(field: &str) -> Option<usize> {
    if let Some(n) = number(field, 7) {
        return Some(n as usize % 7);
    }
    let lower = field.to_ascii_lowercase();
    DAYS.iter().position(|d| d[..3].eq_ignore_ascii_case(&lower))
}

/// The day-of-week field as words: `every day`, `every weekday (Monday to Friday)`,
/// `every Monday`, `every Monday and Thursday`.
fn days(field: &str) -> Option<String> {
    match field {
        "*" | "?" => return Some("every day".into()),
        "1-5" | "mon-fri" | "MON-FRI" => return Some("every weekday (Monday to Friday)".into()),
        "0,6" | "6,0" | "6,7" | "sat,sun" | "SAT,SUN" => return Some("every Saturday and Sunday".into()),
        _ => {}
    }
    let names: Vec<&str> = field.split(',').map(|d| day(d).map(|i| DAYS[i])).collect::<Option<_>>()?;
    Some(match names.as_slice() {
        [one] => format!("every {one}"),
        [rest @ .., last] => format!("every {} and {last}", rest.join(", ")),
        [] => return None,
    })
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 { format!("every {unit}") } else { format!("every {n} {unit}s") }
}

/// `expr` in plain language, with `tz` after a time of day; `None` for shapes not described.
pub fn describe(expr: &str, tz: Option<&str>) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (sec, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        _ => return None,
    };
    let [min, hour, dom, mon, dow] = rest else { return None };
    let zone = tz.map(|z| format!(" {z}")).unwrap_or_default();
    let sec_n = number(sec, 59);
    let seconds = |s: u32| if s == 0 { String::new() } else { format!(":{s:02}") };
    // Intervals that need no zone.
    if (*dom, *mon, *dow) == ("*", "*", "*") {
        match (sec, *min, *hour) {
            ("*", "*", "*") => return Some("every second".into()),
            (s, "*", "*") if step(s).is_some() => return Some(plural(step(s)?, "second")),
            (_, "*", "*") if sec_n == Some(0) => return Some("every minute".into()),
            (_, m, "*") if sec_n == Some(0) && step(m).is_some() => return Some(plural(step(m)?, "minute")),
            _ => {}
        }
    }
    if *mon != "*" {
        return None;
    }
    let sec_n = sec_n?;
    let min_n = number(min, 59)?;
    if *hour == "*" && *dom == "*" {
        let on = if *dow == "*" { String::new() } else { format!(" on {}", days(dow)?.trim_start_matches("every ")) };
        return Some(format!("every hour at :{min_n:02}{}{on}", seconds(sec_n)));
    }
    if let Some(n) = step(hour).filter(|_| *dom == "*" && *dow == "*") {
        return Some(format!("{} at :{min_n:02}{}", plural(n, "hour"), seconds(sec_n)));
    }
    let hours: Vec<u32> = hour.split(',').map(|h| number(h, 23)).collect::<Option<_>>()?;
    let times: Vec<String> = hours.iter().map(|h| format!("{h:02}:{min_n:02}{}", seconds(sec_n))).collect();
    let at = match times.as_slice() {
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        [] => return None,
    };
    if *dom == "*" {
        return Some(format!("{} at {at}{zone}", days(dow)?));
    }
    let dom_n = number(dom, 31).filter(|d| *d > 0 && *dow == "*")?;
    Some(format!("on day {dom_n} of every month at {at}{zone}"))
}

/// A warning for a six-field expression whose fields look shifted by one: the seconds field holds
/// what reads as a minute, the minutes field what reads as an hour, and the hour is `*` — so it runs
/// every hour where a five-field reading would run once a day.
pub fn six_field_warning(expr: &str, tz: Option<&str>) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [sec, min, hour, dom, mon, dow] = fields.as_slice() else { return None };
    number(sec, 59)?;
    number(min, 23)?;
    if *hour != "*" || *dow != "*" {
        return None;
    }
    let five = format!("{sec} {min} {dom} {mon} *");
    let as_read = describe(expr, tz).unwrap_or_else(|| format!("`{expr}`"));
    let meant = describe(&five, tz).map(|d| format!(" For {d}, write `{five}` (five fields).")).unwrap_or_default();
    Some(format!("`{expr}` has six fields, so its first field is seconds: it runs {as_read}, not once a day.{meant}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_shapes_read_as_plain_language() {
        let berlin = Some("Europe/Berlin");
        for (expr, tz, said) in [
            ("0 7 * * *", berlin, Some("every day at 07:00 Europe/Berlin")),
            ("30 7 * * 1-5", berlin, Some("every weekday (Monday to Friday) at 07:30 Europe/Berlin")),
            ("0 9 * * 1", None, Some("every Monday at 09:00")),
            ("0 9 * * mon,thu", None, Some("every Monday and Thursday at 09:00")),
            ("0 9,17 * * *", None, Some("every day at 09:00 and 17:00")),
            ("0 8 1 * *", berlin, Some("on day 1 of every month at 08:00 Europe/Berlin")),
            ("7 * * * *", berlin, Some("every hour at :07")),
            ("0 7 * * * *", None, Some("every hour at :07")),
            ("30 7 * * * *", None, Some("every hour at :07:30")),
            ("0 0 7 * * *", berlin, Some("every day at 07:00 Europe/Berlin")),
            ("*/15 * * * *", berlin, Some("every 15 minutes")),
            ("*/10 * * * * *", None, Some("every 10 seconds")),
            ("* * * * *", None, Some("every minute")),
            ("0 */2 * * *", None, Some("every 2 hours at :00")),
            ("0 7 * 1 *", None, None),
            ("0 7 L * *", None, None),
            ("nonsense", None, None),
        ] {
            assert_eq!(describe(expr, tz).as_deref(), said, "{expr}");
        }
    }

    #[test]
    fn a_six_field_expression_that_reads_minutes_first_is_warned_about() {
        let warning = six_field_warning("0 7 * * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            warning,
            "`0 7 * * * *` has six fields, so its first field is seconds: it runs every hour at :07, not once a day. \
             For every day at 07:00 Europe/Berlin, write `0 7 * * *` (five fields)."
        );
        // Seconds-first on purpose: no warning.
        for expr in ["0 0 7 * * *", "*/10 * * * * *", "0 */5 * * * *", "15 30 * * * *", "0 7 * * *", "0 7 * * * 1"] {
            assert_eq!(six_field_warning(expr, None), None, "{expr}");
        }
    }
}
