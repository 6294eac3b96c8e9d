//! Follow-event schema: parsing raw bytes into typed, borrowed structs and validating them.
//!
//! Owns the canonical input format (see README "Event schema"). Parsing never panics:
//! every failure is an [`EventError`] whose [`EventError::kind`] is a short, bounded label
//! used for metrics and dead-letter headers.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Largest event accepted; anything bigger is rejected before JSON parsing so a
/// hostile producer cannot make us allocate without bound.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Whether the follower started or stopped following the followee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Follow,
    Unfollow,
}

/// A validated follow event. Strings borrow from the input buffer where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowEvent<'a> {
    /// Producer-assigned id; empty when absent (then the Kafka coordinates identify it).
    pub event_id: Cow<'a, str>,
    pub kind: EventType,
    /// Event time, milliseconds since the Unix epoch. `None` when the payload has no
    /// `ts`; the Kafka edge then supplies the record timestamp.
    pub ts_ms: Option<i64>,
    pub followee_id: Cow<'a, str>,
    pub follower: Profile<'a>,
}

/// The follower's profile snapshot, with the v1.1 user-object field names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile<'a> {
    pub id: Cow<'a, str>,
    pub screen_name: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub description: Cow<'a, str>,
    pub url: Option<Cow<'a, str>>,
    pub location: Cow<'a, str>,
    /// Account creation time, seconds since the Unix epoch.
    pub created_at_s: i64,
    pub followers_count: u64,
    pub friends_count: u64,
    pub statuses_count: u64,
    pub favourites_count: u64,
    pub listed_count: u64,
    pub default_profile: bool,
    pub default_profile_image: bool,
    pub profile_use_background_image: bool,
    pub protected: bool,
}

impl Profile<'_> {
    /// Converts borrowed strings into owned ones, for values that outlive the input buffer.
    pub fn into_owned(self) -> Profile<'static> {
        Profile {
            id: Cow::Owned(self.id.into_owned()),
            screen_name: Cow::Owned(self.screen_name.into_owned()),
            name: Cow::Owned(self.name.into_owned()),
            description: Cow::Owned(self.description.into_owned()),
            url: self.url.map(|u| Cow::Owned(u.into_owned())),
            location: Cow::Owned(self.location.into_owned()),
            ..self
        }
    }
}

impl FollowEvent<'_> {
    pub fn into_owned(self) -> FollowEvent<'static> {
        FollowEvent {
            event_id: Cow::Owned(self.event_id.into_owned()),
            kind: self.kind,
            ts_ms: self.ts_ms,
            followee_id: Cow::Owned(self.followee_id.into_owned()),
            follower: self.follower.into_owned(),
        }
    }
}

/// Why an input could not be turned into a [`FollowEvent`]. Deterministic: redelivering
/// the same bytes fails the same way, so these go to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("event is {0} bytes, larger than the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` is not a valid timestamp: {value:?}")]
    BadTimestamp { field: &'static str, value: String },
    #[error("field `type` must be \"follow\" or \"unfollow\", got {0:?}")]
    BadType(String),
    #[error("field `{0}` must be a non-empty string or integer id")]
    BadId(&'static str),
    #[error("field `{0}` must be a non-negative integer")]
    BadCount(&'static str),
}

impl EventError {
    /// Short bounded label: metric label value and dead-letter `error_kind` header.
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::InvalidJson(_) => "invalid_json",
            EventError::TooLarge(_) => "too_large",
            EventError::MissingField(_) => "missing_field",
            EventError::BadTimestamp { .. } => "bad_timestamp",
            EventError::BadType(_) => "bad_type",
            EventError::BadId(_) => "bad_id",
            EventError::BadCount(_) => "bad_count",
        }
    }

    /// Every kind, for pre-binding metric label values.
    pub const KINDS: [&'static str; 7] = [
        "invalid_json",
        "too_large",
        "missing_field",
        "bad_timestamp",
        "bad_type",
        "bad_id",
        "bad_count",
    ];
}

/// Parses and validates one event.
pub fn parse(bytes: &[u8]) -> Result<FollowEvent<'_>, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let raw: RawEvent<'_> =
        serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    raw.validate()
}

// ---------------------------------------------------------------------------------------
// Raw (unvalidated) shape. Every field optional so a missing one becomes a typed
// `MissingField` error naming it, instead of serde's free-text message.

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(default, borrow, deserialize_with = "opt_id")]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ts: Option<RawTime<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_id")]
    followee_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    follower: Option<RawProfile<'a>>,
}

#[derive(Deserialize)]
struct RawProfile<'a> {
    #[serde(default, borrow, deserialize_with = "opt_id")]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    screen_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    location: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    created_at: Option<RawTime<'a>>,
    #[serde(default)]
    followers_count: Option<RawCount>,
    #[serde(default)]
    friends_count: Option<RawCount>,
    #[serde(default)]
    statuses_count: Option<RawCount>,
    #[serde(default)]
    favourites_count: Option<RawCount>,
    #[serde(default)]
    listed_count: Option<RawCount>,
    #[serde(default)]
    default_profile: Option<bool>,
    #[serde(default)]
    default_profile_image: Option<bool>,
    #[serde(default)]
    profile_use_background_image: Option<bool>,
    #[serde(default)]
    protected: Option<bool>,
}

/// A timestamp as it appears on the wire: a string (RFC 3339 or Twitter's format) or
/// an integer (epoch milliseconds).
enum RawTime<'a> {
    Text(Cow<'a, str>),
    Millis(i64),
    Invalid(String),
}

/// A count as it appears on the wire; negative or fractional values are kept to be
/// rejected with the field's name.
enum RawCount {
    Ok(u64),
    Invalid,
}

impl<'a> RawEvent<'a> {
    fn validate(self) -> Result<FollowEvent<'a>, EventError> {
        let kind = match self.kind.as_deref() {
            None => return Err(EventError::MissingField("type")),
            Some("follow") => EventType::Follow,
            Some("unfollow") => EventType::Unfollow,
            Some(other) => return Err(EventError::BadType(truncate(other))),
        };
        // A missing `ts` is resolved by the source (Kafka record timestamp) or rejected
        // there as `missing_field`; see `pipeline`.
        let ts_ms = self.ts.map(|t| time_ms(t, "ts")).transpose()?;
        let followee_id = non_empty(self.followee_id, "followee_id")?;
        let follower = self
            .follower
            .ok_or(EventError::MissingField("follower"))?
            .validate()?;
        Ok(FollowEvent {
            event_id: self.event_id.unwrap_or(Cow::Borrowed("")),
            kind,
            ts_ms,
            followee_id,
            follower,
        })
    }
}

impl<'a> RawProfile<'a> {
    fn validate(self) -> Result<Profile<'a>, EventError> {
        let id = non_empty(self.id, "follower.id")?;
        let created_at_s = match self.created_at {
            None => return Err(EventError::MissingField("follower.created_at")),
            Some(t) => time_ms(t, "follower.created_at")?.div_euclid(1000),
        };
        Ok(Profile {
            id,
            screen_name: self.screen_name.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            url: self.url.filter(|u| !u.is_empty()),
            location: self.location.unwrap_or_default(),
            created_at_s,
            followers_count: count(self.followers_count, "follower.followers_count")?,
            friends_count: count(self.friends_count, "follower.friends_count")?,
            statuses_count: count(self.statuses_count, "follower.statuses_count")?,
            favourites_count: count(self.favourites_count, "follower.favourites_count")?,
            listed_count: count(self.listed_count, "follower.listed_count")?,
            default_profile: self.default_profile.unwrap_or(false),
            default_profile_image: self.default_profile_image.unwrap_or(false),
            profile_use_background_image: self.profile_use_background_image.unwrap_or(true),
            protected: self.protected.unwrap_or(false),
        })
    }
}

fn non_empty<'a>(v: Option<Cow<'a, str>>, field: &'static str) -> Result<Cow<'a, str>, EventError> {
    match v {
        None => Err(EventError::MissingField(field)),
        Some(s) if s.is_empty() => Err(EventError::BadId(field)),
        Some(s) => Ok(s),
    }
}

fn count(v: Option<RawCount>, field: &'static str) -> Result<u64, EventError> {
    match v {
        None => Err(EventError::MissingField(field)),
        Some(RawCount::Ok(n)) => Ok(n),
        Some(RawCount::Invalid) => Err(EventError::BadCount(field)),
    }
}

fn time_ms(t: RawTime<'_>, field: &'static str) -> Result<i64, EventError> {
    let bad = |value: &str| EventError::BadTimestamp {
        field,
        value: truncate(value),
    };
    match t {
        RawTime::Millis(ms) => Ok(ms),
        RawTime::Text(s) => parse_time_ms(&s).ok_or_else(|| bad(&s)),
        RawTime::Invalid(s) => Err(bad(&s)),
    }
}

/// Keeps error messages (and dead-letter headers) bounded whatever the input.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps. Hand-written parsers: these run on every event, and chrono's generic
// format parser costs several times more.

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
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
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

// ---------------------------------------------------------------------------------------
// Custom deserializers. Ids: strings or JSON integers, never through f64 (64-bit ids
// exceed a double's 53-bit mantissa).

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct IdVisitor;
    impl<'de> Visitor<'de> for IdVisitor {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or integer id")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            if v < 0 {
                return Err(E::custom("negative id"));
            }
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(IdVisitor)
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTime<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl<'de> Visitor<'de> for TimeVisitor {
            type Value = RawTime<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp string or epoch milliseconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v)
                    .map_or_else(|_| RawTime::Invalid(v.to_string()), RawTime::Millis))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawTime::Invalid(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawTime::Invalid(v.to_string()))
            }
        }
        d.deserialize_any(TimeVisitor)
    }
}

impl<'de> Deserialize<'de> for RawCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = RawCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawCount::Ok(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(v).map_or(RawCount::Invalid, RawCount::Ok))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // Some exporters write counts as 12.0; accept exact integers only.
                if v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 {
                    Ok(RawCount::Ok(v as u64))
                } else {
                    Ok(RawCount::Invalid)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(v.parse().map_or(RawCount::Invalid, RawCount::Ok))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawCount::Invalid)
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"event_id": "f-000123", "type": "follow", "ts": "2026-11-28T10:15:00.123Z",
 "followee_id": "783214",
 "follower": {"id": "1502026416", "screen_name": "0918Bask", "name": "TASUKU HAYAKAWA",
   "description": "", "url": null, "location": "Tokyo",
   "created_at": "Tue Jun 11 11:20:35 +0000 2013",
   "followers_count": 208, "friends_count": 332, "statuses_count": 2177,
   "favourites_count": 265, "listed_count": 1,
   "default_profile": false, "default_profile_image": false,
   "profile_use_background_image": true, "verified": false, "protected": false}}"#;

    #[test]
    fn parses_the_documented_example() {
        let e = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(e.event_id, "f-000123");
        assert_eq!(e.kind, EventType::Follow);
        assert_eq!(e.ts_ms, Some(1_795_860_900_123));
        assert_eq!(e.followee_id, "783214");
        assert_eq!(e.follower.id, "1502026416");
        assert_eq!(e.follower.screen_name, "0918Bask");
        assert_eq!(e.follower.created_at_s, 1_370_949_635);
        assert_eq!(e.follower.statuses_count, 2177);
        assert_eq!(e.follower.url, None);
        assert!(
            matches!(e.followee_id, Cow::Borrowed(_)),
            "ids borrow from the input"
        );
    }

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
    }

    #[test]
    fn ids_as_numbers_keep_all_64_bits() {
        let s = SAMPLE
            .replace(
                r#""followee_id": "783214""#,
                r#""followee_id": 18446744073709551615"#,
            )
            .replace(r#""id": "1502026416""#, r#""id": 9007199254740993"#);
        let e = parse(s.as_bytes()).unwrap();
        assert_eq!(e.followee_id, "18446744073709551615");
        assert_eq!(e.follower.id, "9007199254740993");
    }

    #[test]
    fn epoch_millis_timestamps_and_extra_fields() {
        let s = SAMPLE
            .replace(r#""2026-11-28T10:15:00.123Z""#, "1795860900123")
            .replace(
                r#""type": "follow","#,
                r#""type": "follow", "extra": {"nested": [1,2]},"#,
            );
        let e = parse(s.as_bytes()).unwrap();
        assert_eq!(e.ts_ms, Some(1_795_860_900_123));
    }

    #[test]
    fn unicode_and_escaped_strings() {
        let s = SAMPLE.replace("TASUKU HAYAKAWA", r#"早川 \"タスク\" \u202e🚀"#);
        let e = parse(s.as_bytes()).unwrap();
        assert_eq!(e.follower.name, "早川 \"タスク\" \u{202e}🚀");
    }

    #[test]
    fn missing_fields_are_named() {
        let cases = [
            (r#""type": "follow","#, "type"),
            (r#""followee_id": "783214","#, "followee_id"),
            (
                r#""created_at": "Tue Jun 11 11:20:35 +0000 2013","#,
                "follower.created_at",
            ),
            (r#""statuses_count": 2177,"#, "follower.statuses_count"),
        ];
        for (cut, field) in cases {
            let s = SAMPLE.replace(cut, "");
            assert_eq!(
                parse(s.as_bytes()),
                Err(EventError::MissingField(field)),
                "{field}"
            );
        }
    }

    #[test]
    fn missing_ts_is_left_to_the_source() {
        let s = SAMPLE.replace(r#""ts": "2026-11-28T10:15:00.123Z","#, "");
        assert_eq!(parse(s.as_bytes()).unwrap().ts_ms, None);
    }

    #[test]
    fn typed_errors_have_kinds() {
        let bad_type = SAMPLE.replace(r#""type": "follow""#, r#""type": "like""#);
        assert_eq!(parse(bad_type.as_bytes()).unwrap_err().kind(), "bad_type");
        let bad_ts = SAMPLE.replace("2026-11-28T10:15:00.123Z", "soon");
        assert_eq!(
            parse(bad_ts.as_bytes()).unwrap_err().kind(),
            "bad_timestamp"
        );
        let bad_count = SAMPLE.replace(r#""friends_count": 332"#, r#""friends_count": -3"#);
        assert_eq!(parse(bad_count.as_bytes()).unwrap_err().kind(), "bad_count");
        let empty_id = SAMPLE.replace(r#""followee_id": "783214""#, r#""followee_id": """#);
        assert_eq!(parse(empty_id.as_bytes()).unwrap_err().kind(), "bad_id");
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(parse(&big).unwrap_err().kind(), "too_large");
    }

    #[test]
    fn truncated_json_never_panics() {
        for cut in 0..SAMPLE.len() {
            if let Some(prefix) = SAMPLE.get(..cut) {
                let err = parse(prefix.as_bytes()).unwrap_err();
                assert!(EventError::KINDS.contains(&err.kind()));
            }
        }
        assert_eq!(parse(b"\xff\xfe").unwrap_err().kind(), "invalid_json");
        assert_eq!(parse(b"[1,2]").unwrap_err().kind(), "invalid_json");
        assert_eq!(parse(b"null").unwrap_err().kind(), "invalid_json");
    }
}
