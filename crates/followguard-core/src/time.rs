//! Event time and calendar arithmetic: the accepted range of event times, the timestamp
//! formats of the schema (RFC 3339, Twitter's v1.1 format, epoch numbers) and
//! RFC 3339 output. Hand-written parsers: these run on every event, and chrono's
//! generic format parser costs several times more.

/// Latest accepted event time (2106-02-07T06:28:15.999Z, the last second a window's u32
/// `last_seen_s` holds; issue #19: no time type may end before the accepted range);
/// later or earlier than 1970 is rejected as `bad_timestamp`.
pub const MAX_EVENT_TIME_MS: i64 = u32::MAX as i64 * 1000 + 999;

/// Integer `created_at` values below this are epoch seconds, above it milliseconds.
const EPOCH_SECONDS_BELOW: i64 = 100_000_000_000;

/// Epoch milliseconds of an epoch number: below 10^11 it is seconds (as milliseconds it
/// would be before March 1973, older than the platform), from there milliseconds.
pub fn epoch_number_ms(v: i64) -> i64 {
    if (0..EPOCH_SECONDS_BELOW).contains(&v) {
        v * 1000
    } else {
        v
    }
}

/// Parses RFC 3339 (`2026-11-28T10:15:00.123Z`, `…+01:00`) or Twitter's v1.1 format
/// (`Fri Apr 06 10:58:22 +0000 2007`) into epoch milliseconds.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() >= 10 && b[4] == b'-' {
        parse_rfc3339(b)
    } else {
        parse_twitter(b)
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    // YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM); a bare date is midnight UTC.
    let year = digits(b.get(0..4)?)?;
    let month = digits(b.get(5..7)?)?;
    let day = digits(b.get(8..10)?)?;
    if b.get(7) != Some(&b'-') {
        return None;
    }
    if b.len() == 10 {
        return epoch_ms(year, month, day, 0, 0, 0, 0, 0);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = digits(b.get(11..13)?)?;
    let min = digits(b.get(14..16)?)?;
    if b.get(16) != Some(&b':') {
        return None;
    }
    let sec = digits(b.get(17..19)?)?;
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() {
            return None;
        }
        for k in 0..3 {
            millis = millis * 10 + frac.get(k).map_or(0, |c| i64::from(c - b'0'));
        }
    }
    let offset_s = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let off = digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    epoch_ms(year, month, day, hour, min, sec, millis, offset_s)
}

fn parse_twitter(b: &[u8]) -> Option<i64> {
    // "Fri Apr 06 10:58:22 +0000 2007": weekday is ignored (not cross-checked).
    if b.len() != 30 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| &b[4..7] == *m)? as i64 + 1;
    let day = digits(&b[8..10])?;
    if b[13] != b':' || b[16] != b':' || b[25] != b' ' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    let off = digits(&b[21..23])? * 3600 + digits(&b[23..25])? * 60;
    let offset_s = match b[20] {
        b'+' => off,
        b'-' => -off,
        _ => return None,
    };
    let year = digits(&b[26..30])?;
    epoch_ms(year, month, day, hour, min, sec, 0, offset_s)
}

#[allow(clippy::too_many_arguments)]
fn epoch_ms(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    millis: i64,
    offset_s: i64,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + min * 60 + sec - offset_s) * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let fields = [
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    ];
    if !(0..=9999).contains(&y) {
        let [h, mi, sec, milli] = fields;
        return format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{milli:03}Z");
    }
    // Years 0..=9999 (every event time): digits written directly, no formatter (this
    // runs for every output record).
    let mut out = [0u8; 24];
    let mut at = 0;
    let mut put = |v: i64, width: u32, sep: u8| {
        for k in (0..width).rev() {
            out[at] = b'0' + (v / 10i64.pow(k) % 10) as u8;
            at += 1;
        }
        out[at] = sep;
        at += 1;
    };
    put(y, 4, b'-');
    put(m, 2, b'-');
    put(d, 2, b'T');
    put(fields[0], 2, b':');
    put(fields[1], 2, b':');
    put(fields[2], 2, b'.');
    put(fields[3], 3, b'Z');
    out.iter().map(|&b| char::from(b)).collect()
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_date_formats_agree() {
        let a = parse_time_ms("Fri Apr 06 10:58:22 +0000 2007").unwrap();
        let b = parse_time_ms("2007-04-06T10:58:22Z").unwrap();
        let c = parse_time_ms("2007-04-06T12:58:22+02:00").unwrap();
        let d = parse_time_ms("Fri Apr 06 05:58:22 -0500 2007").unwrap();
        assert_eq!(a, 1_175_857_102_000);
        assert_eq!((a, a, a), (b, c, d));
        assert_eq!(parse_time_ms("2007-04-06"), Some(1_175_817_600_000));
        assert_eq!(
            parse_time_ms("2024-02-29T00:00:00.5Z"),
            Some(1_709_164_800_500)
        );
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2007-13-01T00:00:00Z",
            "Fri Foo 06 10:58:22 +0000 2007",
            "yesterday",
            "2007-04-06T10:58:22",
            "2007-04-06T10:58:22.Z",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        for ms in [0, 1_175_857_102_000, 1_795_860_900_123, -86_400_000] {
            assert_eq!(parse_time_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            format_rfc3339_ms(1_795_860_900_123),
            "2026-11-28T10:15:00.123Z"
        );
        assert_eq!(format_rfc3339_ms(-86_400_000), "1969-12-31T00:00:00.000Z");
        // Issue #19: the accepted range ends where u32 seconds do.
        assert_eq!(
            format_rfc3339_ms(MAX_EVENT_TIME_MS),
            "2106-02-07T06:28:15.999Z"
        );
        assert_eq!(
            format_rfc3339_ms(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
        // Outside years 0..=9999 the formatter's output (not RFC 3339, but no panic).
        assert_eq!(
            format_rfc3339_ms(253_402_300_799_999 + 1),
            "10000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339_ms(-62_167_219_200_001),
            "-001-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_rfc3339_ms(-62_167_219_200_000),
            "0000-01-01T00:00:00.000Z"
        );
    }
}
