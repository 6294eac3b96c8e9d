//! Input adapters (issue 24): platforms' own follow payloads into canonical events.
//!
//! `--input-format` picks one: `canonical` (README "Event schema", parsed by [`event`]
//! directly, zero-copy), X Account Activity `follow_events`, ActivityPub `Follow` /
//! `Undo{Follow}`, Bluesky Jetstream `app.bsky.graph.follow` commits, and Mastodon
//! `Account` entities as the follower inside the canonical envelope. Every adapter writes
//! canonical event bytes, so the pipeline, its fast path and the replay golden outputs
//! are those of canonical input, and an account scores the same whichever format carried
//! it. Formats that carry only the follower's id (ActivityPub, Bluesky) produce a
//! [`BareFollow`], joined with the profile table ([`crate::profiles`]) by the driver.
//!
//! Platform fields the v1.1 profile does not have are missing values, never zeros:
//! counts are left out (`None` in [`Profile`](crate::event::Profile)), fields without a
//! counterpart are named in the follower's `"missing"` list. Pure: no I/O, no clock.

use crate::event::{EventError, EventType};
use serde_json::{json, Map, Value};

/// Which payload shape the input topic (or file) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// followguard's own event (README), profile embedded.
    #[default]
    Canonical,
    /// X Account Activity API webhook payload with `follow_events` (several per payload).
    XActivity,
    /// ActivityPub `Follow` activity (or `Undo` of one); profile from the profile table.
    ActivityPub,
    /// Bluesky Jetstream commit of an `app.bsky.graph.follow` record; profile from the table.
    Jetstream,
    /// The canonical envelope with a Mastodon `Account` entity as `follower`.
    Mastodon,
}

impl InputFormat {
    /// Every format with its command-line name.
    pub const ALL: [(InputFormat, &'static str); 5] = [
        (InputFormat::Canonical, "canonical"),
        (InputFormat::XActivity, "x-activity"),
        (InputFormat::ActivityPub, "activitypub"),
        (InputFormat::Jetstream, "jetstream"),
        (InputFormat::Mastodon, "mastodon"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("canonical", |(_, n)| n)
    }

    /// Whether follows of this format need the profile table.
    pub fn needs_profiles(self) -> bool {
        matches!(self, InputFormat::ActivityPub | InputFormat::Jetstream)
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown input format {s:?} (one of {})", names.join(", "))
            })
    }
}

/// Why a well-formed payload holds no follow: counted by the driver
/// (`followguard_input_ignored_total{reason}`), not dead-lettered.
pub const IGNORED_REASONS: [&str; 4] = [
    "not_a_follow",
    "other_collection",
    "bluesky_delete",
    "no_follow_events",
];

/// A follow that names its follower but carries no profile: joined with the profile
/// table by the driver ([`BareFollow::with_profile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareFollow {
    pub event_id: String,
    pub kind: EventType,
    pub ts_ms: Option<i64>,
    pub followee_id: String,
    pub follower_id: String,
}

impl BareFollow {
    /// The canonical event of this follow with `profile` (a canonical user object, as the
    /// profile table holds it) as the follower; the follower id is the follow's own.
    pub fn with_profile(&self, profile: &Value) -> Vec<u8> {
        let mut follower = profile.clone();
        if let Value::Object(o) = &mut follower {
            o.insert("id".into(), Value::String(self.follower_id.clone()));
        }
        event_bytes(
            &self.event_id,
            self.kind,
            self.ts_ms,
            &self.followee_id,
            follower,
        )
    }
}

/// One follow out of a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Canonical event bytes, ready for [`crate::event::parse`].
    Event(Vec<u8>),
    /// A follow waiting for its follower's profile.
    Bare(BareFollow),
}

/// What one payload holds: follows, or the reason it holds none.
#[derive(Debug, Clone, PartialEq)]
pub enum Adapted {
    Items(Vec<Item>),
    Ignored(&'static str),
}

/// Reads one payload of a non-canonical format. Canonical input never comes here (the
/// drivers hand it to the pipeline as it is). Never panics; a payload that is not the
/// format's shape is an [`EventError`] (dead-lettered with its kind).
pub fn adapt(format: InputFormat, bytes: &[u8]) -> Result<Adapted, EventError> {
    if bytes.len() > crate::event::MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    let Value::Object(o) = v else {
        return Err(EventError::InvalidJson("expected a JSON object".into()));
    };
    match format {
        InputFormat::Canonical => Ok(Adapted::Items(vec![Item::Event(bytes.to_vec())])),
        InputFormat::XActivity => x_activity(&o),
        InputFormat::ActivityPub => activitypub(&o),
        InputFormat::Jetstream => jetstream(&o),
        InputFormat::Mastodon => mastodon_envelope(o),
    }
}

/// Kafka key (the followee id: follows are partitioned by followee) and record time of
/// one payload of `format`, for `produce`; `(None, None)` when it holds no follow or is
/// malformed (produced unkeyed, for the service to count or dead-letter). A payload with
/// several follows is keyed by its first.
pub fn key_and_time(format: InputFormat, bytes: &[u8]) -> (Option<String>, Option<i64>) {
    let canonical = |b: &[u8]| match crate::event::parse(b) {
        Ok(ev) => (Some(ev.followee_id.into_owned()), ev.ts_ms),
        Err(_) => (None, None),
    };
    if format == InputFormat::Canonical {
        return canonical(bytes);
    }
    match adapt(format, bytes) {
        Ok(Adapted::Items(items)) => match items.first() {
            Some(Item::Event(b)) => canonical(b),
            Some(Item::Bare(f)) => (Some(f.followee_id.clone()), f.ts_ms),
            None => (None, None),
        },
        _ => (None, None),
    }
}

/// A canonical event's bytes.
fn event_bytes(
    event_id: &str,
    kind: EventType,
    ts_ms: Option<i64>,
    followee_id: &str,
    follower: Value,
) -> Vec<u8> {
    let mut e = Map::new();
    if !event_id.is_empty() {
        e.insert("event_id".into(), json!(event_id));
    }
    e.insert("type".into(), json!(kind));
    if let Some(ts) = ts_ms {
        e.insert("ts".into(), json!(ts));
    }
    e.insert("followee_id".into(), json!(followee_id));
    e.insert("follower".into(), follower);
    serde_json::to_vec(&Value::Object(e)).unwrap_or_default()
}

/// An id as a string: JSON strings as they are, integers exactly.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn str_of<'v>(o: &'v Map<String, Value>, k: &str) -> Option<&'v str> {
    o.get(k).and_then(Value::as_str)
}

fn bad_time(field: &'static str, v: &Value) -> EventError {
    let mut s = v.to_string();
    s.truncate(64);
    EventError::BadTimestamp { field, value: s }
}

// ---------------------------------------------------------------------------------------
// X Account Activity API.

/// `{"for_user_id": …, "follow_events": [{"type": "follow", "created_timestamp":
/// "1517588749178", "target": {user}, "source": {user}}, …]}`: the follower is the v1.1
/// user object under `source`, the followee `target`. Each event becomes one canonical
/// event; its id is derived from source, target and time (the API gives none).
fn x_activity(o: &Map<String, Value>) -> Result<Adapted, EventError> {
    let Some(events) = o.get("follow_events") else {
        return Ok(Adapted::Ignored("no_follow_events"));
    };
    let events = events
        .as_array()
        .ok_or_else(|| EventError::InvalidJson("`follow_events` must be an array".into()))?;
    let mut items = Vec::with_capacity(events.len());
    for ev in events {
        let ev = ev
            .as_object()
            .ok_or_else(|| EventError::InvalidJson("a follow event must be an object".into()))?;
        let kind = match str_of(ev, "type") {
            Some("follow") => EventType::Follow,
            Some("unfollow") => EventType::Unfollow,
            Some(t) => return Err(EventError::BadType(t.chars().take(64).collect())),
            None => return Err(EventError::MissingField("type")),
        };
        let ts = ev
            .get("created_timestamp")
            .ok_or(EventError::MissingField("created_timestamp"))?;
        let ts_ms = match ts {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| bad_time("created_timestamp", ts))?;
        let source = ev
            .get("source")
            .filter(|s| s.is_object())
            .ok_or(EventError::MissingField("source"))?;
        let target = ev
            .get("target")
            .and_then(Value::as_object)
            .ok_or(EventError::MissingField("target"))?;
        let followee = id_of(target.get("id_str"))
            .or_else(|| id_of(target.get("id")))
            .ok_or(EventError::BadId("target.id"))?;
        let mut follower = source.clone();
        // Prefer `id_str`: the API's own advice, since `id` overflows a double.
        if let (Some(id), Value::Object(f)) = (id_of(source.get("id_str")), &mut follower) {
            f.insert("id".into(), Value::String(id));
        }
        let follower_id = id_of(follower.get("id")).unwrap_or_default();
        let event_id = format!("x:{follower_id}:{followee}:{ts_ms}");
        items.push(Item::Event(event_bytes(
            &event_id,
            kind,
            Some(ts_ms),
            &followee,
            follower,
        )));
    }
    Ok(Adapted::Items(items))
}

// ---------------------------------------------------------------------------------------
// ActivityPub.

/// An actor or object: a URI string, or an embedded object with an `id`.
fn ap_id(v: Option<&Value>, field: &'static str) -> Result<String, EventError> {
    match v {
        None => Err(EventError::MissingField(field)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Object(o)) => id_of(o.get("id")).ok_or(EventError::BadId(field)),
        Some(_) => Err(EventError::BadId(field)),
    }
}

/// `Follow` (actor follows object) or `Undo` whose object is a `Follow` (an unfollow).
/// Time: `published`, else none (the Kafka record timestamp then, as for a canonical
/// event without `ts`). Other activity types are ignored and counted.
fn activitypub(o: &Map<String, Value>) -> Result<Adapted, EventError> {
    let (kind, follow) = match str_of(o, "type") {
        Some("Follow") => (EventType::Follow, o),
        Some("Undo") => match o.get("object") {
            Some(Value::Object(inner)) if str_of(inner, "type") == Some("Follow") => {
                (EventType::Unfollow, inner)
            }
            _ => return Ok(Adapted::Ignored("not_a_follow")),
        },
        Some(_) => return Ok(Adapted::Ignored("not_a_follow")),
        None => return Err(EventError::MissingField("type")),
    };
    let follower_id = ap_id(follow.get("actor"), "actor")?;
    let followee_id = ap_id(follow.get("object"), "object")?;
    let ts_ms = match o.get("published").or_else(|| follow.get("published")) {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            p.as_str()
                .and_then(crate::time::parse_time_ms)
                .ok_or_else(|| bad_time("published", p))?,
        ),
    };
    let event_id = id_of(o.get("id")).unwrap_or_default();
    Ok(Adapted::Items(vec![Item::Bare(BareFollow {
        event_id,
        kind,
        ts_ms,
        followee_id,
        follower_id,
    })]))
}

// ---------------------------------------------------------------------------------------
// Bluesky Jetstream.

const BSKY_FOLLOW: &str = "app.bsky.graph.follow";

/// `{"did": follower, "time_us": …, "kind": "commit", "commit": {"operation": "create",
/// "collection": "app.bsky.graph.follow", "rkey": …, "record": {"subject": followee,
/// "createdAt": …}}}`. Time: `time_us`, the relay's receive time (a client writes
/// `createdAt` and may backdate it; the relay's clock it cannot), else `createdAt`.
/// A delete names only the record key, not the subject: it is ignored and counted
/// (`bluesky_delete`); an unfollow moves no detector count, and remembering every
/// follow's subject to resolve it would cost memory per follow ever seen. Other kinds
/// (identity, account) and collections (posts, likes…) are ignored and counted too.
fn jetstream(o: &Map<String, Value>) -> Result<Adapted, EventError> {
    match str_of(o, "kind") {
        Some("commit") => {}
        Some(_) => return Ok(Adapted::Ignored("not_a_follow")),
        None => return Err(EventError::MissingField("kind")),
    }
    let commit = o
        .get("commit")
        .and_then(Value::as_object)
        .ok_or(EventError::MissingField("commit"))?;
    if str_of(commit, "collection") != Some(BSKY_FOLLOW) {
        return Ok(Adapted::Ignored("other_collection"));
    }
    match str_of(commit, "operation") {
        Some("create") => {}
        Some("delete") => return Ok(Adapted::Ignored("bluesky_delete")),
        // An update of a follow record does not change who follows whom.
        Some(_) => return Ok(Adapted::Ignored("not_a_follow")),
        None => return Err(EventError::MissingField("commit.operation")),
    }
    let follower_id = id_of(o.get("did")).ok_or(EventError::BadId("did"))?;
    let record = commit
        .get("record")
        .and_then(Value::as_object)
        .ok_or(EventError::MissingField("commit.record"))?;
    let followee_id =
        id_of(record.get("subject")).ok_or(EventError::BadId("commit.record.subject"))?;
    let ts_ms = match (o.get("time_us"), record.get("createdAt")) {
        (Some(t), _) => Some(
            t.as_i64()
                .filter(|us| *us >= 0)
                .map(|us| us / 1000)
                .ok_or_else(|| bad_time("time_us", t))?,
        ),
        (None, Some(c)) => Some(
            c.as_str()
                .and_then(crate::time::parse_time_ms)
                .ok_or_else(|| bad_time("commit.record.createdAt", c))?,
        ),
        (None, None) => None,
    };
    let rkey = str_of(commit, "rkey").unwrap_or_default();
    Ok(Adapted::Items(vec![Item::Bare(BareFollow {
        event_id: format!("at://{follower_id}/{BSKY_FOLLOW}/{rkey}"),
        kind: EventType::Follow,
        ts_ms,
        followee_id,
        follower_id,
    })]))
}

// ---------------------------------------------------------------------------------------
// Profiles of other platforms, as canonical user objects.

/// The canonical envelope with a Mastodon `Account` as `follower`.
fn mastodon_envelope(mut o: Map<String, Value>) -> Result<Adapted, EventError> {
    let account = o
        .remove("follower")
        .ok_or(EventError::MissingField("follower"))?;
    let account = account
        .as_object()
        .ok_or(EventError::MissingField("follower"))?;
    o.insert("follower".into(), mastodon_account(account)?);
    let bytes = serde_json::to_vec(&Value::Object(o)).unwrap_or_default();
    Ok(Adapted::Items(vec![Item::Event(bytes)]))
}

/// A Mastodon `Account` entity as a canonical user object: `username` → `screen_name`,
/// `display_name` → `name`, `note` (HTML) as text → `description`, `following_count` →
/// `friends_count`, `locked` → `protected`, the first profile field holding a link →
/// `url`, the default avatar / header (`missing.png`) → `default_profile_image` /
/// `default_profile`. Mastodon has no favourites or listed count and no location: they
/// are missing values.
pub fn mastodon_account(a: &Map<String, Value>) -> Result<Value, EventError> {
    let id = id_of(a.get("id")).ok_or(EventError::MissingField("follower.id"))?;
    let text = |k: &str| str_of(a, k).unwrap_or_default();
    let is_default = |k: &str| str_of(a, k).is_some_and(|u| u.ends_with("/missing.png"));
    let url = a
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("value").and_then(Value::as_str))
        .map(html_text)
        .find(|v| v.starts_with("http://") || v.starts_with("https://"));
    Ok(json!({
        "id": id,
        "screen_name": text("username"),
        "name": text("display_name"),
        "description": html_text(text("note")),
        "url": url,
        "created_at": a.get("created_at").cloned().unwrap_or(Value::Null),
        "followers_count": a.get("followers_count").cloned().unwrap_or(Value::Null),
        "friends_count": a.get("following_count").cloned().unwrap_or(Value::Null),
        "statuses_count": a.get("statuses_count").cloned().unwrap_or(Value::Null),
        "default_profile": is_default("header"),
        "default_profile_image": is_default("avatar"),
        "protected": a.get("locked").cloned().unwrap_or(Value::Null),
        "missing": ["location"],
    }))
}

/// A Bluesky `app.bsky.actor.defs#profileViewDetailed` as a canonical user object:
/// `handle`'s first label → `screen_name` (a domain suffix is not part of the name),
/// `displayName` → `name`, `followsCount` → `friends_count`, `postsCount` →
/// `statuses_count`, no banner → `default_profile`, no avatar → `default_profile_image`,
/// `createdAt` (else `indexedAt`) → `created_at`. Bluesky has no favourites or listed
/// count, no location and no website: missing values.
pub fn bluesky_profile(p: &Map<String, Value>) -> Result<Value, EventError> {
    let did = id_of(p.get("did")).ok_or(EventError::MissingField("did"))?;
    let handle = str_of(p, "handle").unwrap_or_default();
    let created = p
        .get("createdAt")
        .or_else(|| p.get("indexedAt"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json!({
        "id": did,
        "screen_name": handle.split('.').next().unwrap_or_default(),
        "name": str_of(p, "displayName").unwrap_or_default(),
        "description": str_of(p, "description").unwrap_or_default(),
        "created_at": created,
        "followers_count": p.get("followersCount").cloned().unwrap_or(Value::Null),
        "friends_count": p.get("followsCount").cloned().unwrap_or(Value::Null),
        "statuses_count": p.get("postsCount").cloned().unwrap_or(Value::Null),
        "default_profile": p.get("banner").is_none_or(Value::is_null),
        "default_profile_image": p.get("avatar").is_none_or(Value::is_null),
        "missing": ["location", "url"],
    }))
}

/// A profile-table record (a v1.1 user object, a Mastodon `Account` or a Bluesky
/// profile view) as `(account id, canonical user object)`. The id is the one follows
/// name the account by: the record's key when the topic has one (`key`), else the
/// Mastodon account's ActivityPub `uri`, the Bluesky `did` or the v1.1 `id_str` / `id`.
/// The object is checked with [`crate::event::parse_profile`], so a table entry always
/// makes a valid event.
pub fn profile_record(key: Option<&str>, bytes: &[u8]) -> Result<(String, Value), EventError> {
    if bytes.len() > crate::event::MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    let o = v
        .as_object()
        .ok_or_else(|| EventError::InvalidJson("expected a JSON object".into()))?;
    let (own_id, profile) = if o.contains_key("did") && o.contains_key("handle") {
        (id_of(o.get("did")), bluesky_profile(o)?)
    } else if o.contains_key("username") && o.contains_key("acct") {
        (
            id_of(o.get("uri")).or_else(|| id_of(o.get("id"))),
            mastodon_account(o)?,
        )
    } else {
        (
            id_of(o.get("id_str")).or_else(|| id_of(o.get("id"))),
            v.clone(),
        )
    };
    let id = key
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or(own_id)
        .ok_or(EventError::MissingField("id"))?;
    crate::event::parse_profile(&profile)?;
    Ok((id, profile))
}

/// Text of an HTML fragment (Mastodon's `note` and field values): tags dropped, `<br>`
/// and paragraph ends as spaces, the five XML entities and numeric ones decoded, runs of
/// white space collapsed.
pub fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').map_or(rest.len(), |i| i + 1);
                let tag = rest[..end].to_ascii_lowercase();
                if tag.starts_with("<br") || tag.starts_with("</p") {
                    out.push(' ');
                }
                rest = &rest[end..];
            }
            '&' => {
                let end = rest[..rest.len().min(12)].find(';');
                let decoded = end.and_then(|e| entity(&rest[1..e]));
                match (end, decoded) {
                    (Some(e), Some(ch)) => {
                        out.push(ch);
                        rest = &rest[e + 1..];
                    }
                    _ => {
                        out.push('&');
                        rest = &rest[1..];
                    }
                }
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let n = name.strip_prefix('#')?;
            let code = match n.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}
