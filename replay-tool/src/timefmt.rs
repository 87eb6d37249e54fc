//! Times on the command line: milliseconds since the Unix epoch, or RFC 3339
//! (`2025-01-01T12:00:00Z`, `2025-01-01T12:00:00.250+02:00`, or a date `2025-01-01`
//! meaning its midnight UTC). Output is RFC 3339 in UTC with milliseconds.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn number(s: &str, what: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {s:?}"));
    }
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}

/// Parses a time argument into milliseconds since the Unix epoch.
pub fn parse_time_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("time {s:?} is out of range"));
    }
    let why = |e: String| {
        format!(
            "cannot read {s:?} as a time ({e}); use milliseconds since the epoch or RFC 3339 such as 2025-01-01T12:00:00Z"
        )
    };
    parse_rfc3339(s).map_err(why)
}

fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected YYYY-MM-DD".into());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err("expected YYYY-MM-DD".into());
    }
    let (year, month, day) =
        (i64::from(number(y, "year")?), number(m, "month")?, number(d, "day")?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("no such date".into());
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if let Some(rest) = rest {
        let (clock, offset_ms) = split_offset(rest)?;
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let fields: Vec<&str> = hms.split(':').collect();
        let [h, mi, sec] = fields[..] else { return Err("expected HH:MM:SS".into()) };
        let (h, mi, sec) = (number(h, "hour")?, number(mi, "minute")?, number(sec, "second")?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err("no such time of day".into());
        }
        let frac_ms = if frac.is_empty() {
            0
        } else {
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            number(&frac[..frac.len().min(9)], "fraction")?;
            i64::from(number(&digits, "fraction")?)
        };
        ms += (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1000 + frac_ms;
        ms -= offset_ms;
    }
    u64::try_from(ms).map_err(|_| "before 1970".to_string())
}

/// Splits `HH:MM:SS[.f](Z|±HH:MM)` into the clock and the offset in milliseconds.
fn split_offset(rest: &str) -> Result<(&str, i64), String> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Ok((clock, 0));
    }
    let Some(i) = rest.rfind(['+', '-']) else {
        return Err("missing time zone (Z or ±HH:MM)".into());
    };
    let (clock, zone) = (&rest[..i], &rest[i + 1..]);
    let Some((h, m)) = zone.split_once(':') else { return Err("bad time zone".into()) };
    let minutes = i64::from(number(h, "zone hour")?) * 60 + i64::from(number(m, "zone minute")?);
    let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
    Ok((clock, sign * minutes * 60_000))
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (mi, rest) = (rest / 60_000, rest % 60_000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{:02}.{:03}Z", rest / 1000, rest % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_time_ms("1735689600000"), Ok(1_735_689_600_000));
        assert_eq!(parse_time_ms("2025-01-01T00:00:00Z"), Ok(1_735_689_600_000));
        assert_eq!(parse_time_ms("2025-01-01"), Ok(1_735_689_600_000));
        assert_eq!(parse_time_ms("2025-01-01T02:00:00.250+02:00"), Ok(1_735_689_600_250));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00.5Z"), Ok(500));
        assert_eq!(parse_time_ms("2024-02-29T23:59:59.999Z"), Ok(1_709_251_199_999));
    }

    #[test]
    fn rejects_nonsense_without_panicking() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-02-30",
            "2025-01-01T25:00:00Z",
            "2025-01-01T00:00Z",
            "2025-01-01T00:00:00",
            "1969-12-31T23:59:59Z",
            "2025-1-1",
            "99999999999999999999999",
            "2025-01-01T00:00:00.xZ",
            "2025-01-01T00:00:00+0x:00",
            "é",
            "2025-01-01Tä",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 500, 1_709_251_199_999, 1_735_689_600_250, 4_102_444_800_000] {
            assert_eq!(parse_time_ms(&format_ms(ms)), Ok(ms), "{}", format_ms(ms));
        }
        assert_eq!(format_ms(1_735_689_600_250), "2025-01-01T00:00:00.250Z");
    }
}
