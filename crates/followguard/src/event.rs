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
    #[error("field `{0}` must be a boolean (true/false; 1/0 and \"1\"/\"0\"/\"\"/\"true\"/\"false\" are also accepted)")]
    BadFlag(&'static str),
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
            EventError::BadFlag(_) => "bad_flag",
        }
    }

    /// Every kind, for pre-binding metric label values.
    pub const KINDS: [&'static str; 8] = [
        "invalid_json",
        "too_large",
        "missing_field",
        "bad_timestamp",
        "bad_type",
        "bad_id",
        "bad_count",
        "bad_flag",
    ];
}

/// Parses and validates one event.
pub fn parse(bytes: &[u8]) -> Result<FollowEvent<'_>, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    // Fast path: a scanner for this one schema that accepts a strict subset of what
    // serde_json accepts and builds the same raw value; anything it is unsure of
    // (escapes in kept strings, floats, negative numbers, duplicate fields, invalid
    // JSON) goes to serde_json, which decides. Same results, ~4× less work per event.
    let raw = match fast::raw_event(bytes) {
        Some(raw) => raw,
        None => serde_raw(bytes)?,
    };
    raw.validate()
}

/// An already-parsed JSON value as a follow event (same field rules and errors as
/// [`parse`], less the size limit). For account dumps read by `train` / `eval`, which
/// parse each record once to also read their own fields; not the hot path.
pub fn parse_value(v: &serde_json::Value) -> Result<FollowEvent<'_>, EventError> {
    RawEvent::deserialize(v)
        .map_err(|e| EventError::InvalidJson(e.to_string()))?
        .validate()
}

/// An already-parsed JSON value as one account: the platform's v1.1 user object (the
/// `follower` part of an event on its own), with the same field rules and errors.
pub fn parse_profile(v: &serde_json::Value) -> Result<Profile<'_>, EventError> {
    RawProfile::deserialize(v)
        .map_err(|e| EventError::InvalidJson(e.to_string()))?
        .validate()
}

/// Epoch milliseconds of an epoch number: below 10^11 it is seconds (as milliseconds it
/// would be before March 1973, older than the platform), from there milliseconds.
pub fn epoch_number_ms(v: i64) -> i64 {
    if (0..EPOCH_SECONDS_BELOW).contains(&v) {
        v * 1000
    } else {
        v
    }
}

/// The general path: serde_json with the derived raw shape.
fn serde_raw(bytes: &[u8]) -> Result<RawEvent<'_>, EventError> {
    serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))
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
    default_profile: Option<RawFlag>,
    #[serde(default)]
    default_profile_image: Option<RawFlag>,
    #[serde(default)]
    profile_use_background_image: Option<RawFlag>,
    #[serde(default)]
    protected: Option<RawFlag>,
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

/// A boolean as it appears on the wire. The v1.1 API writes JSON booleans; producers
/// that re-serialise account tables write `1`/`0`, `"1"`/`""` (the cresci CSV
/// convention) or `"True"`. Those are read as what they mean rather than dead-lettering
/// an otherwise valid follow over a profile flag.
enum RawFlag {
    Ok(bool),
    Null,
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
            // Account tables often store creation times as epoch seconds: read an
            // integer by its magnitude instead of aging the account by half a century.
            Some(RawTime::Millis(v)) => epoch_number_ms(v).div_euclid(1000),
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
            default_profile: flag(self.default_profile, "follower.default_profile", false)?,
            default_profile_image: flag(
                self.default_profile_image,
                "follower.default_profile_image",
                false,
            )?,
            profile_use_background_image: flag(
                self.profile_use_background_image,
                "follower.profile_use_background_image",
                true,
            )?,
            protected: flag(self.protected, "follower.protected", false)?,
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

/// Integer `created_at` values below this are epoch seconds, above it milliseconds.
const EPOCH_SECONDS_BELOW: i64 = 100_000_000_000;

/// An absent or `null` flag takes the platform's default; a present one must be readable.
fn flag(v: Option<RawFlag>, field: &'static str, default: bool) -> Result<bool, EventError> {
    match v {
        None | Some(RawFlag::Null) => Ok(default),
        Some(RawFlag::Ok(b)) => Ok(b),
        Some(RawFlag::Invalid) => Err(EventError::BadFlag(field)),
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

// ---------------------------------------------------------------------------------------
// Fast path. Profiles showed serde_json's generic machinery (field matching through
// visitors, per-string UTF-8 validation and escape scanning, skipping the unknown fields
// producers forward) at ~55% of a cold event's instructions. This scanner knows the
// schema and works on the bytes directly. Contract: when it returns `Some`, serde_json
// would have produced an equal `RawEvent` from the same bytes; when in doubt it returns
// `None` and serde_json decides (including every error).

mod fast {
    use super::{RawCount, RawEvent, RawFlag, RawProfile, RawTime};
    use std::borrow::Cow;

    /// Nesting allowed inside skipped values before handing over to serde_json (whose
    /// own limit is 128).
    const MAX_DEPTH: u32 = 64;

    /// Field names of the follower object, in the order producers write them.
    const PROFILE_FIELDS: [&[u8]; 16] = [
        b"id",
        b"screen_name",
        b"name",
        b"description",
        b"url",
        b"location",
        b"created_at",
        b"followers_count",
        b"friends_count",
        b"statuses_count",
        b"favourites_count",
        b"listed_count",
        b"default_profile",
        b"default_profile_image",
        b"profile_use_background_image",
        b"protected",
    ];
    /// Field names of the event object, in the order producers write them.
    const EVENT_FIELDS: [&[u8]; 5] = [b"event_id", b"type", b"ts", b"followee_id", b"follower"];

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// Offset of the first `"`, `\` or control character in `s` (8 bytes at a time),
    /// and whether every byte before it is ASCII (then it is valid UTF-8 as it stands).
    #[inline(always)]
    fn find_special(s: &[u8]) -> Option<(usize, bool)> {
        let mut i = 0;
        let mut seen = 0u64;
        while let Some(chunk) = s.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            let q = w ^ (ONES * u64::from(b'"'));
            let bs = w ^ (ONES * u64::from(b'\\'));
            // The lowest flagged byte of each "has zero byte" mask is exact.
            let m = (q.wrapping_sub(ONES) & !q)
                | (bs.wrapping_sub(ONES) & !bs)
                | (w.wrapping_sub(ONES * 0x20) & !w);
            let m = m & HIGHS;
            if m != 0 {
                let at = m.trailing_zeros() / 8;
                // Bytes of this chunk before the special one.
                let before = if at == 0 {
                    0
                } else {
                    w & (u64::MAX >> (64 - 8 * at))
                };
                return Some((i + at as usize, (seen | before) & HIGHS == 0));
            }
            seen |= w;
            i += 8;
        }
        let p = s[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let ascii = seen & HIGHS == 0 && s[i..i + p].is_ascii();
        Some((i + p, ascii))
    }

    /// Byte equality for keys (≤ 28 bytes), 8 at a time and inlined: a call to the
    /// C library's `memcmp` per key was 13% of parsing.
    #[inline(always)]
    fn same(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_ne_bytes(w)
        };
        let mut ca = a.chunks_exact(8);
        let mut cb = b.chunks_exact(8);
        for (x, y) in (&mut ca).zip(&mut cb) {
            if word(x) != word(y) {
                return false;
            }
        }
        ca.remainder()
            .iter()
            .zip(cb.remainder())
            .all(|(x, y)| x == y)
    }

    struct Scan<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Scan<'a> {
        #[inline(always)]
        fn peek(&mut self) -> Option<u8> {
            while let Some(&c) = self.b.get(self.i) {
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                    self.i += 1;
                } else {
                    return Some(c);
                }
            }
            None
        }

        #[inline(always)]
        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        #[inline(always)]
        fn literal(&mut self, lit: &[u8]) -> Option<()> {
            let end = self.i + lit.len();
            (self.b.get(self.i..end)? == lit).then(|| self.i = end)
        }

        /// The raw bytes of a string with no escape (not yet UTF-8 checked) and whether
        /// they are all ASCII. `None` for anything else.
        #[inline(always)]
        fn plain_bytes(&mut self) -> Option<(&'a [u8], bool)> {
            if self.peek()? != b'"' {
                return None;
            }
            let start = self.i + 1;
            let rest = self.b.get(start..)?;
            let (len, ascii) = find_special(rest)?;
            if rest[len] != b'"' {
                return None;
            }
            self.i = start + len + 1;
            Some((&rest[..len], ascii))
        }

        /// A string with no escape: borrowed, UTF-8 checked. `None` for anything else.
        #[inline]
        fn plain_str(&mut self) -> Option<&'a str> {
            let (b, _) = self.plain_bytes()?;
            std::str::from_utf8(b).ok()
        }

        /// Index of the next object key in `names`, `Some(None)` for another key, `None`
        /// to decline. Producers write fields in a fixed order, so the key after the
        /// previous one (`hint`) is tried first with one comparison; otherwise the key
        /// is scanned and looked up.
        #[inline(always)]
        fn key_index(&mut self, names: &[&[u8]], hint: usize) -> Option<Option<usize>> {
            if self.peek()? != b'"' {
                return None;
            }
            if let Some(name) = names.get(hint) {
                let end = self.i + 1 + name.len();
                if let Some(k) = self.b.get(self.i + 1..end) {
                    if same(k, name) && self.b.get(end) == Some(&b'"') {
                        self.i = end + 1;
                        return Some(Some(hint));
                    }
                }
            }
            let key = self.key()?;
            Some(names.iter().position(|n| same(n, key)))
        }

        /// An object key, as bytes: the schema's names are ASCII, and any other key
        /// must still be valid UTF-8 for serde_json to accept it.
        #[inline(always)]
        fn key(&mut self) -> Option<&'a [u8]> {
            let (b, ascii) = self.plain_bytes()?;
            if !ascii {
                std::str::from_utf8(b).ok()?;
            }
            Some(b)
        }

        /// Any valid string (escapes allowed), discarded.
        fn skip_str(&mut self) -> Option<()> {
            if self.peek()? != b'"' {
                return None;
            }
            self.i += 1;
            loop {
                let rest = self.b.get(self.i..)?;
                let (len, ascii) = find_special(rest)?;
                if !ascii {
                    std::str::from_utf8(&rest[..len]).ok()?;
                }
                self.i += len;
                match rest[len] {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => {
                        let esc = *self.b.get(self.i + 1)?;
                        match esc {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                            b'u' => {
                                let hex = self.b.get(self.i + 2..self.i + 6)?;
                                let mut v = 0u32;
                                for &h in hex {
                                    v = v * 16 + char::from(h).to_digit(16)?;
                                }
                                // Surrogates: leave pairing rules to serde_json.
                                if (0xD800..0xE000).contains(&v) {
                                    return None;
                                }
                                self.i += 6;
                            }
                            _ => return None,
                        }
                    }
                    _ => return None, // control character
                }
            }
        }

        /// `0|[1-9][0-9]*` fitting u64, not followed by a fraction or exponent.
        #[inline(always)]
        fn unsigned(&mut self) -> Option<u64> {
            let start = self.i;
            let mut v: u64 = 0;
            while let Some(&c) = self.b.get(self.i) {
                if !c.is_ascii_digit() {
                    break;
                }
                v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                self.i += 1;
            }
            let n = self.i - start;
            if n == 0 || (n > 1 && self.b[start] == b'0') {
                return None;
            }
            if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            Some(v)
        }

        /// Any valid JSON number, discarded.
        fn skip_number(&mut self) -> Option<()> {
            if self.b.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            let digits = |s: &mut Self| {
                let start = s.i;
                while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                    s.i += 1;
                }
                s.i - start
            };
            let first = *self.b.get(self.i)?;
            let n = digits(self);
            if n == 0 || (first == b'0' && n > 1) {
                return None;
            }
            if self.b.get(self.i) == Some(&b'.') {
                self.i += 1;
                if digits(self) == 0 {
                    return None;
                }
            }
            if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                if digits(self) == 0 {
                    return None;
                }
            }
            Some(())
        }

        /// Any valid JSON value, discarded (the fields the schema ignores).
        fn skip(&mut self, depth: u32) -> Option<()> {
            if depth > MAX_DEPTH {
                return None;
            }
            match self.peek()? {
                b'"' => self.skip_str(),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'-' | b'0'..=b'9' => self.skip_number(),
                b'{' => {
                    self.i += 1;
                    if self.peek()? == b'}' {
                        self.i += 1;
                        return Some(());
                    }
                    loop {
                        self.key()?;
                        self.eat(b':')?;
                        self.skip(depth + 1)?;
                        if self.next_member()? {
                            return Some(());
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    if self.peek()? == b']' {
                        self.i += 1;
                        return Some(());
                    }
                    loop {
                        self.skip(depth + 1)?;
                        match self.peek()? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                _ => None,
            }
        }

        /// After an object member: `,` → `Some(false)` (more), `}` → `Some(true)` (end).
        #[inline(always)]
        fn next_member(&mut self) -> Option<bool> {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b',' => Some(false),
                b'}' => Some(true),
                _ => None,
            }
        }

        /// `null` → `Some(true)`.
        #[inline(always)]
        fn null(&mut self) -> Option<bool> {
            if self.peek()? == b'n' {
                self.literal(b"null")?;
                return Some(true);
            }
            Some(false)
        }

        /// An id: a string (borrowed) or an unsigned integer (its digits), as `opt_id`.
        fn id(&mut self) -> Option<Option<Cow<'a, str>>> {
            if self.null()? {
                return Some(None);
            }
            if self.peek()? == b'"' {
                return Some(Some(Cow::Borrowed(self.plain_str()?)));
            }
            Some(Some(Cow::Owned(self.unsigned()?.to_string())))
        }

        fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
            if self.null()? {
                return Some(None);
            }
            Some(Some(Cow::Borrowed(self.plain_str()?)))
        }

        /// `type`: the two valid values as static strings (no UTF-8 check needed).
        fn kind(&mut self) -> Option<Option<Cow<'a, str>>> {
            if self.null()? {
                return Some(None);
            }
            let (b, _) = self.plain_bytes()?;
            Some(Some(match b {
                b"follow" => Cow::Borrowed("follow"),
                b"unfollow" => Cow::Borrowed("unfollow"),
                _ => Cow::Borrowed(std::str::from_utf8(b).ok()?),
            }))
        }

        fn time(&mut self) -> Option<Option<RawTime<'a>>> {
            if self.null()? {
                return Some(None);
            }
            if self.peek()? == b'"' {
                return Some(Some(RawTime::Text(Cow::Borrowed(self.plain_str()?))));
            }
            let v = i64::try_from(self.unsigned()?).ok()?;
            Some(Some(RawTime::Millis(v)))
        }

        fn count(&mut self) -> Option<Option<RawCount>> {
            if self.null()? {
                return Some(None);
            }
            Some(Some(RawCount::Ok(self.unsigned()?)))
        }

        /// JSON literals only; any other encoding of a flag is left to the serde path.
        fn flag(&mut self) -> Option<Option<RawFlag>> {
            match self.peek()? {
                b't' => self.literal(b"true").map(|()| Some(RawFlag::Ok(true))),
                b'f' => self.literal(b"false").map(|()| Some(RawFlag::Ok(false))),
                b'n' => self.literal(b"null").map(|()| None),
                _ => None,
            }
        }

        fn profile(&mut self) -> Option<Option<RawProfile<'a>>> {
            if self.null()? {
                return Some(None);
            }
            self.eat(b'{')?;
            let mut p = RawProfile {
                id: None,
                screen_name: None,
                name: None,
                description: None,
                url: None,
                location: None,
                created_at: None,
                followers_count: None,
                friends_count: None,
                statuses_count: None,
                favourites_count: None,
                listed_count: None,
                default_profile: None,
                default_profile_image: None,
                profile_use_background_image: None,
                protected: None,
            };
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(Some(p));
            }
            let mut seen = 0u32;
            let mut hint = 0;
            loop {
                let idx = self.key_index(&PROFILE_FIELDS, hint)?;
                self.eat(b':')?;
                let bit = match idx {
                    Some(0) => {
                        p.id = self.id()?;
                        0
                    }
                    Some(1) => {
                        p.screen_name = self.opt_str()?;
                        1
                    }
                    Some(2) => {
                        p.name = self.opt_str()?;
                        2
                    }
                    Some(3) => {
                        p.description = self.opt_str()?;
                        3
                    }
                    Some(4) => {
                        p.url = self.opt_str()?;
                        4
                    }
                    Some(5) => {
                        p.location = self.opt_str()?;
                        5
                    }
                    Some(6) => {
                        p.created_at = self.time()?;
                        6
                    }
                    Some(7) => {
                        p.followers_count = self.count()?;
                        7
                    }
                    Some(8) => {
                        p.friends_count = self.count()?;
                        8
                    }
                    Some(9) => {
                        p.statuses_count = self.count()?;
                        9
                    }
                    Some(10) => {
                        p.favourites_count = self.count()?;
                        10
                    }
                    Some(11) => {
                        p.listed_count = self.count()?;
                        11
                    }
                    Some(12) => {
                        p.default_profile = self.flag()?;
                        12
                    }
                    Some(13) => {
                        p.default_profile_image = self.flag()?;
                        13
                    }
                    Some(14) => {
                        p.profile_use_background_image = self.flag()?;
                        14
                    }
                    Some(15) => {
                        p.protected = self.flag()?;
                        15
                    }
                    _ => {
                        self.skip(1)?;
                        if self.next_member()? {
                            return Some(Some(p));
                        }
                        continue;
                    }
                };
                // serde's derive rejects a repeated field; let it.
                if seen & (1 << bit) != 0 {
                    return None;
                }
                seen |= 1 << bit;
                hint = bit + 1;
                if self.next_member()? {
                    return Some(Some(p));
                }
            }
        }
    }

    /// The raw event, or `None` to let serde_json decide.
    pub(super) fn raw_event(b: &[u8]) -> Option<RawEvent<'_>> {
        let mut s = Scan { b, i: 0 };
        s.eat(b'{')?;
        let mut ev = RawEvent {
            event_id: None,
            kind: None,
            ts: None,
            followee_id: None,
            follower: None,
        };
        if s.peek()? == b'}' {
            s.i += 1;
        } else {
            let mut seen = 0u32;
            let mut hint = 0;
            loop {
                let idx = s.key_index(&EVENT_FIELDS, hint)?;
                s.eat(b':')?;
                let bit = match idx {
                    Some(0) => {
                        ev.event_id = s.id()?;
                        0
                    }
                    Some(1) => {
                        ev.kind = s.kind()?;
                        1
                    }
                    Some(2) => {
                        ev.ts = s.time()?;
                        2
                    }
                    Some(3) => {
                        ev.followee_id = s.id()?;
                        3
                    }
                    Some(4) => {
                        ev.follower = s.profile()?;
                        4
                    }
                    _ => {
                        s.skip(1)?;
                        if s.next_member()? {
                            break;
                        }
                        continue;
                    }
                };
                if seen & (1 << bit) != 0 {
                    return None;
                }
                seen |= 1 << bit;
                hint = bit + 1;
                if s.next_member()? {
                    break;
                }
            }
        }
        // Only whitespace may follow the object.
        (s.peek().is_none()).then_some(ev)
    }
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

impl<'de> Deserialize<'de> for RawFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl Visitor<'_> for FlagVisitor {
            type Value = RawFlag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawFlag::Ok(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawFlag::Null)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(match v {
                    0 => RawFlag::Ok(false),
                    1 => RawFlag::Ok(true),
                    _ => RawFlag::Invalid,
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v).map_or(Ok(RawFlag::Invalid), |v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(if v == 0.0 {
                    RawFlag::Ok(false)
                } else if v == 1.0 {
                    RawFlag::Ok(true)
                } else {
                    RawFlag::Invalid
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let t = v.trim();
                Ok(if t == "1" || t.eq_ignore_ascii_case("true") {
                    RawFlag::Ok(true)
                } else if t.is_empty() || t == "0" || t.eq_ignore_ascii_case("false") {
                    RawFlag::Ok(false)
                } else if t == "NULL" {
                    RawFlag::Null
                } else {
                    RawFlag::Invalid
                })
            }
        }
        d.deserialize_any(FlagVisitor)
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
        assert_eq!(
            format_rfc3339_ms(1_795_860_900_123),
            "2026-11-28T10:15:00.123Z"
        );
        assert_eq!(format_rfc3339_ms(-86_400_000), "1969-12-31T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(crate::pipeline::MAX_EVENT_TIME_MS),
            "9999-12-31T23:59:59.999Z"
        );
        // Outside years 0..=9999 the formatter's output (not RFC 3339, but no panic).
        assert_eq!(
            format_rfc3339_ms(crate::pipeline::MAX_EVENT_TIME_MS + 1),
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
    fn integer_created_at_is_seconds_or_millis_by_magnitude() {
        let with = |v: &str| {
            SAMPLE.replace(
                r#""created_at": "Tue Jun 11 11:20:35 +0000 2013""#,
                &format!(r#""created_at": {v}"#),
            )
        };
        for v in ["1370949635", "1370949635000"] {
            let s = with(v);
            assert_eq!(
                parse(s.as_bytes()).unwrap().follower.created_at_s,
                1_370_949_635,
                "{v}"
            );
            assert_same(s.as_bytes());
        }
    }

    #[test]
    fn profile_flags_accept_table_encodings_and_name_a_bad_one() {
        let compact: String = SAMPLE.split('\n').collect::<Vec<_>>().join("");
        let with = |v: &str| {
            compact.replace(
                r#""default_profile": false"#,
                &format!(r#""default_profile": {v}"#),
            )
        };
        for (v, want) in [
            ("true", true),
            ("false", false),
            ("1", true),
            ("0", false),
            ("1.0", true),
            (r#""1""#, true),
            (r#""0""#, false),
            (r#""""#, false),
            (r#""True""#, true),
            (r#"" FALSE ""#, false),
            ("null", false),
            (r#""NULL""#, false),
        ] {
            let s = with(v);
            assert_eq!(
                parse(s.as_bytes()).unwrap().follower.default_profile,
                want,
                "{v}"
            );
            assert_same(s.as_bytes());
        }
        // Absent or null background flag keeps the platform default (true).
        let no_bg = compact.replace(
            r#""profile_use_background_image": true"#,
            r#""profile_use_background_image": null"#,
        );
        assert!(
            parse(no_bg.as_bytes())
                .unwrap()
                .follower
                .profile_use_background_image
        );
        for v in ["2", "-1", "0.5", r#""yes please""#] {
            let e = parse(with(v).as_bytes()).unwrap_err();
            assert_eq!(e.kind(), "bad_flag", "{v}");
            assert!(e.to_string().contains("follower.default_profile"), "{e}");
        }
        // Structures are not flags: serde's own message, as for any wrong type.
        assert_eq!(
            parse(with("[true]").as_bytes()).unwrap_err().kind(),
            "invalid_json"
        );
    }

    /// The serde_json path alone, for comparing the fast path against it.
    fn parse_serde(bytes: &[u8]) -> Result<FollowEvent<'_>, EventError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge(bytes.len()));
        }
        serde_raw(bytes)?.validate()
    }

    /// Inputs the fast path must either decline or parse exactly like serde_json.
    fn assert_same(bytes: &[u8]) {
        let fast = fast::raw_event(bytes).map(RawEvent::validate);
        let slow = parse_serde(bytes);
        if let Some(fast) = fast {
            assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(parse(bytes), slow, "{:?}", String::from_utf8_lossy(bytes));
    }

    #[test]
    fn fast_path_takes_the_common_shapes() {
        let compact: String = SAMPLE.split('\n').collect::<Vec<_>>().join("");
        for s in [SAMPLE.to_string(), compact.clone()] {
            assert!(fast::raw_event(s.as_bytes()).is_some(), "{s}");
            assert_same(s.as_bytes());
        }
        let extras = compact.replace(
            r#""protected": false}"#,
            r#""protected": false, "entities": {"url": {"urls": [{"url": "https:\/\/t.co\/x", "indices": [0, 23]}]}}, "utc_offset": -18000, "ratio": 1.5e-3, "lang": null, "x": [true, false, [], {}]}"#,
        );
        assert!(fast::raw_event(extras.as_bytes()).is_some());
        assert_same(extras.as_bytes());
        let numeric = compact
            .replace(r#""id": "1502026416""#, r#""id": 1502026416"#)
            .replace(r#""2026-11-28T10:15:00.123Z""#, "1795860900123");
        assert!(fast::raw_event(numeric.as_bytes()).is_some());
        assert_same(numeric.as_bytes());
    }

    #[test]
    fn fast_path_declines_what_serde_must_judge() {
        let compact: String = SAMPLE.split('\n').collect::<Vec<_>>().join("");
        let cases = [
            compact.replace("TASUKU", r#"TA\"SUKU"#), // escape in a kept string
            compact.replace(
                r#""type": "follow","#,
                r#""type": "follow", "type": "follow","#,
            ), // duplicate
            compact.replace("208", "208.0"),          // float count
            compact.replace("208", "-208"),           // negative count
            compact.replace("208", "0208"),           // leading zero
            compact.replace("\"Tokyo\"", "\"Tok\u{1}yo\""), // control character
            compact.replace(r#""verified": false"#, r#""verified": fals"#),
            compact.replace(r#""verified": false"#, r#""verified": "\ud800""#),
            format!("{compact} x"),
            format!("[{compact}]"),
            compact.replace("}}", "},}"),
        ];
        for c in &cases {
            assert!(fast::raw_event(c.as_bytes()).is_none(), "{c}");
            assert_same(c.as_bytes());
        }
    }

    #[test]
    fn fast_path_agrees_with_serde_on_mutated_events() {
        // Deterministic mutations (replace / insert / delete a byte, truncate) of the
        // sample with JSON-significant bytes: wherever the fast path answers, it must
        // answer exactly as serde_json does.
        let compact: String = SAMPLE.split('\n').collect::<Vec<_>>().join("");
        let base = compact.replace(
            r#""protected": false}"#,
            r#""protected": false, "entities": {"a": [1, -2.5e3, "x\\y\u00e9"]}}"#,
        );
        let alphabet: &[u8] = b"{}[]:,\"\\ 0123456789-+.eEtrufalsn\x01\xff\xc3xyz";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut profiles_tried, mut profiles_ok) = (0, 0);
        for _ in 0..20_000 {
            let mut b = base.as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(b.len());
                match next(4) {
                    0 => b[at] = alphabet[next(alphabet.len())],
                    1 => b.insert(at, alphabet[next(alphabet.len())]),
                    2 => {
                        b.remove(at);
                    }
                    _ => b.truncate(at),
                }
                if b.is_empty() {
                    break;
                }
            }
            assert_same(&b);
            // The bare user object (from the follower's `{` on) must never panic either.
            let inner = b
                .get(1..)
                .and_then(|r| r.windows(2).position(|w| w == b"{\""));
            if let Some(at) = inner {
                profiles_tried += 1;
                let end = b.len() - usize::from(b.ends_with(b"}}"));
                let object: Option<serde_json::Value> =
                    serde_json::from_slice(&b[(at + 1).min(end)..end]).ok();
                if let Some(p) = object.as_ref().and_then(|v| parse_profile(v).ok()) {
                    assert!(!p.id.is_empty());
                    profiles_ok += 1;
                }
            }
        }
        assert!(profiles_tried > 10_000, "{profiles_tried}");
        assert!(profiles_ok > 1_000, "{profiles_ok}");
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
