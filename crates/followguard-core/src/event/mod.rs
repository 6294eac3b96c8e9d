//! Follow-event schema: parsing raw bytes into typed, borrowed structs and validating them.
//!
//! Owns the canonical input format (see README "Event schema"). Parsing never panics:
//! every failure is an [`EventError`] whose [`EventError::kind`] is a short, bounded label
//! used for metrics and dead-letter headers.
//!
//! Here: the schema types, the raw (unvalidated) shape and its validation. `scan` is the
//! fast path (a scanner for this one schema), `de` the custom deserializers of the serde
//! path; timestamps are parsed by [`crate::time`].

use crate::time::{epoch_number_ms, parse_time_ms};
use serde::Deserialize;
use std::borrow::Cow;

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
    /// The counts. `None` is a missing value (absent or `null` on the wire, or a field the
    /// platform does not have: Mastodon has no `listed_count`, Bluesky no favourites):
    /// features and model treat it as unknown, never as zero (issue 24).
    pub followers_count: Option<u64>,
    pub friends_count: Option<u64>,
    pub statuses_count: Option<u64>,
    pub favourites_count: Option<u64>,
    pub listed_count: Option<u64>,
    pub default_profile: bool,
    pub default_profile_image: bool,
    pub profile_use_background_image: bool,
    pub protected: bool,
    /// Issue 24: fields the follower's platform does not have (bits
    /// [`Profile::UNKNOWN_LOCATION`], [`Profile::UNKNOWN_URL`],
    /// [`Profile::UNKNOWN_DEFAULT_PROFILE`]; on the wire the follower's `"missing"` list).
    /// Their features are missing values, not "empty" or "false". 0 for v1.1 profiles.
    pub unknown: u8,
}

impl Profile<'_> {
    /// The platform has no location field (Mastodon, Bluesky).
    pub const UNKNOWN_LOCATION: u8 = 1;
    /// The platform has no website field (Bluesky).
    pub const UNKNOWN_URL: u8 = 2;
    /// The platform has no notion of an un-customised profile.
    pub const UNKNOWN_DEFAULT_PROFILE: u8 = 4;
    /// The names used in the follower's `"missing"` list, with their bits.
    pub const UNKNOWN_FIELDS: [(&'static str, u8); 3] = [
        ("location", Profile::UNKNOWN_LOCATION),
        ("url", Profile::UNKNOWN_URL),
        ("default_profile", Profile::UNKNOWN_DEFAULT_PROFILE),
    ];

    /// Whether the platform lacks the field(s) of `bit`.
    pub fn lacks(&self, bit: u8) -> bool {
        self.unknown & bit != 0
    }

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
    /// Issue #19 (`bounds`): an id longer than `--max-id-bytes`; kind `bad_id`.
    #[error("field `{field}` is {len} bytes, longer than the {max}-byte id limit")]
    IdTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("field `{0}` must be a non-negative integer")]
    BadCount(&'static str),
    #[error("field `{0}` must be a boolean (true/false; 1/0 and \"1\"/\"0\"/\"\"/\"true\"/\"false\" are also accepted)")]
    BadFlag(&'static str),
    /// Issue 24: a follow of a format without an embedded profile (ActivityPub, Bluesky)
    /// whose follower has no entry in the profile table (after the bounded wait).
    #[error("no profile for follower {0:?} in the profile table")]
    UnknownProfile(String),
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
            EventError::BadId(_) | EventError::IdTooLong { .. } => "bad_id",
            EventError::BadCount(_) => "bad_count",
            EventError::BadFlag(_) => "bad_flag",
            EventError::UnknownProfile(_) => "unknown_profile",
        }
    }

    /// Every kind, for pre-binding metric label values.
    pub const KINDS: [&'static str; 9] = [
        "invalid_json",
        "too_large",
        "missing_field",
        "bad_timestamp",
        "bad_type",
        "bad_id",
        "bad_count",
        "bad_flag",
        "unknown_profile",
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
    let raw = match scan::raw_event(bytes) {
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

/// The general path: serde_json with the derived raw shape.
fn serde_raw(bytes: &[u8]) -> Result<RawEvent<'_>, EventError> {
    serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))
}

// ---------------------------------------------------------------------------------------
// Raw (unvalidated) shape. Every field optional so a missing one becomes a typed
// `MissingField` error naming it, instead of serde's free-text message.

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(default, borrow, deserialize_with = "de::opt_id")]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ts: Option<RawTime<'a>>,
    #[serde(default, borrow, deserialize_with = "de::opt_id")]
    followee_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    follower: Option<RawProfile<'a>>,
}

#[derive(Deserialize)]
struct RawProfile<'a> {
    #[serde(default, borrow, deserialize_with = "de::opt_id")]
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
    /// Issue 24: names of fields the platform does not have (see `Profile::unknown`).
    #[serde(default, borrow)]
    missing: Option<Vec<Cow<'a, str>>>,
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
            // Names this build does not know are ignored (a newer producer's list).
            unknown: self.missing.iter().flatten().fold(0, |bits, name| {
                Profile::UNKNOWN_FIELDS
                    .iter()
                    .find(|(n, _)| *n == name.as_ref())
                    .map_or(bits, |(_, b)| bits | b)
            }),
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

/// An absent or `null` count is a missing value (`None`), never zero.
fn count(v: Option<RawCount>, field: &'static str) -> Result<Option<u64>, EventError> {
    match v {
        None => Ok(None),
        Some(RawCount::Ok(n)) => Ok(Some(n)),
        Some(RawCount::Invalid) => Err(EventError::BadCount(field)),
    }
}

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

mod de;
mod scan;

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
        assert_eq!(e.follower.statuses_count, Some(2177));
        assert_eq!(e.follower.url, None);
        assert!(
            matches!(e.followee_id, Cow::Borrowed(_)),
            "ids borrow from the input"
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
    fn absent_or_null_counts_are_missing_values_not_zero() {
        let absent = SAMPLE.replace(r#""statuses_count": 2177,"#, "");
        let null = SAMPLE.replace(r#""listed_count": 1,"#, r#""listed_count": null,"#);
        let a = parse(absent.as_bytes()).unwrap().follower;
        assert_eq!((a.statuses_count, a.listed_count), (None, Some(1)));
        let n = parse(null.as_bytes()).unwrap().follower;
        assert_eq!((n.statuses_count, n.listed_count), (Some(2177), None));
        assert_same(absent.as_bytes());
        assert_same(null.as_bytes());
    }

    #[test]
    fn fields_a_platform_lacks_are_named_and_left_to_serde() {
        let compact: String = SAMPLE.split('\n').collect::<Vec<_>>().join("");
        let s = compact.replace(
            r#""protected": false}"#,
            r#""protected": false, "missing": ["location", "url", "newer_field"]}"#,
        );
        assert!(
            scan::raw_event(s.as_bytes()).is_none(),
            "the scanner declines"
        );
        let p = parse(s.as_bytes()).unwrap().follower;
        assert!(p.lacks(Profile::UNKNOWN_LOCATION) && p.lacks(Profile::UNKNOWN_URL));
        assert!(
            !p.lacks(Profile::UNKNOWN_DEFAULT_PROFILE),
            "unknown names are ignored"
        );
        assert_same(s.as_bytes());
        assert_eq!(parse(compact.as_bytes()).unwrap().follower.unknown, 0);
        let bad = compact.replace(
            r#""protected": false}"#,
            r#""protected": false, "missing": "url"}"#,
        );
        assert_eq!(parse(bad.as_bytes()).unwrap_err().kind(), "invalid_json");
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
        let fast = scan::raw_event(bytes).map(RawEvent::validate);
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
            assert!(scan::raw_event(s.as_bytes()).is_some(), "{s}");
            assert_same(s.as_bytes());
        }
        let extras = compact.replace(
            r#""protected": false}"#,
            r#""protected": false, "entities": {"url": {"urls": [{"url": "https:\/\/t.co\/x", "indices": [0, 23]}]}}, "utc_offset": -18000, "ratio": 1.5e-3, "lang": null, "x": [true, false, [], {}]}"#,
        );
        assert!(scan::raw_event(extras.as_bytes()).is_some());
        assert_same(extras.as_bytes());
        let numeric = compact
            .replace(r#""id": "1502026416""#, r#""id": 1502026416"#)
            .replace(r#""2026-11-28T10:15:00.123Z""#, "1795860900123");
        assert!(scan::raw_event(numeric.as_bytes()).is_some());
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
            assert!(scan::raw_event(c.as_bytes()).is_none(), "{c}");
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
