//! The profile table (issue 24): the latest profile of each account, for the formats whose
//! follows carry only the follower's id (ActivityPub, Bluesky). A stream–table join the
//! Kafka way: `serve` fills it from a compacted topic keyed by account id that every
//! instance reads in full (like a Kafka Streams GlobalKTable: profiles are keyed by
//! follower and follows by followee, so they are not co-partitioned), `replay` and
//! `score` from `--profiles FILE`. Bounded in bytes: past the budget the entry updated
//! longest ago goes first (counted). Pure: no I/O, no clock.

use crate::adapt::{self, Adapted, BareFollow, InputFormat, Item};
use crate::event::EventError;
use std::collections::{HashMap, VecDeque};

/// Bytes charged per entry on top of its id and profile (map slot, queue slot, headers).
const ENTRY_OVERHEAD: usize = 96;

/// Default byte budget of the table (`--profile-table-bytes`).
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

struct Entry {
    /// Compact canonical user object (checked when inserted).
    profile: Box<[u8]>,
    /// Update sequence number: the queue entry with the same number is the live one.
    seq: u64,
}

/// Account id → latest canonical profile, at most `max_bytes`.
pub struct ProfileTable {
    map: HashMap<Box<str>, Entry>,
    /// Updates in order (sequence number, id); entries superseded by a later update of
    /// the same id are skipped when they reach the front.
    order: VecDeque<(u64, Box<str>)>,
    seq: u64,
    bytes: usize,
    max_bytes: usize,
    evicted: u64,
}

impl ProfileTable {
    pub fn new(max_bytes: usize) -> ProfileTable {
        ProfileTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            bytes: 0,
            max_bytes,
            evicted: 0,
        }
    }

    fn cost(id: &str, profile: &[u8]) -> usize {
        id.len() * 2 + profile.len() + ENTRY_OVERHEAD
    }

    /// Applies one record of the profile topic: `Some(bytes)` an update (a v1.1 user
    /// object, a Mastodon `Account` or a Bluesky profile view, see
    /// [`adapt::profile_record`]), `None` a tombstone (the account was deleted). A bad
    /// record changes nothing and says why.
    pub fn apply(&mut self, key: Option<&str>, value: Option<&[u8]>) -> Result<(), EventError> {
        match value {
            None => {
                if let Some(k) = key {
                    self.remove(k);
                }
                Ok(())
            }
            Some(bytes) => {
                let (id, profile) = adapt::profile_record(key, bytes)?;
                let compact = serde_json::to_vec(&profile).unwrap_or_default();
                self.insert(&id, compact.into_boxed_slice());
                Ok(())
            }
        }
    }

    fn insert(&mut self, id: &str, profile: Box<[u8]>) {
        self.remove(id);
        let cost = Self::cost(id, &profile);
        self.seq += 1;
        self.bytes += cost;
        self.order.push_back((self.seq, id.into()));
        self.map.insert(
            id.into(),
            Entry {
                profile,
                seq: self.seq,
            },
        );
        while self.bytes > self.max_bytes {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.remove(&old);
                self.evicted += 1;
            }
        }
        // Superseded queue entries are dropped once they outnumber the live ones, so
        // the queue stays within twice the table.
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(seq, id)| map.get(id).is_some_and(|e| e.seq == *seq));
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(e) = self.map.remove(id) {
            self.bytes -= Self::cost(id, &e.profile);
        }
    }

    /// The canonical event of `follow` joined with its follower's profile, or `None`
    /// when the table has no profile for the follower.
    pub fn join(&self, follow: &BareFollow) -> Option<Vec<u8>> {
        let e = self.map.get(follow.follower_id.as_str())?;
        let profile: serde_json::Value = serde_json::from_slice(&e.profile).ok()?;
        Some(follow.with_profile(&profile))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes held (ids, profiles and a fixed per-entry overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries dropped to stay within the byte budget, so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// What one input record became once adapted and joined.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Canonical event bytes for the pipeline, one per follow of the payload.
    Events(Vec<Vec<u8>>),
    /// No follow in a well-formed payload: counted by reason, not dead-lettered.
    Ignored(&'static str),
}

/// Adapts a non-canonical payload and joins its bare follows with `table`. A follow whose
/// follower has no profile is an [`EventError::UnknownProfile`] (the whole record is
/// dead-lettered, so it can be re-driven once the profile has arrived).
pub fn resolve(
    format: InputFormat,
    bytes: &[u8],
    table: &ProfileTable,
) -> Result<Resolved, EventError> {
    let items = match adapt::adapt(format, bytes)? {
        Adapted::Ignored(why) => return Ok(Resolved::Ignored(why)),
        Adapted::Items(items) => items,
    };
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Event(b) => events.push(b),
            Item::Bare(f) => match table.join(&f) {
                Some(b) => events.push(b),
                None => return Err(EventError::UnknownProfile(truncate(&f.follower_id))),
            },
        }
    }
    if events.is_empty() {
        return Ok(Resolved::Ignored("no_follow_events"));
    }
    Ok(Resolved::Events(events))
}

/// One input record of any format, ready for the pipeline: canonical input as it is
/// (zero-copy: the fast path and its speed are untouched), other formats adapted and
/// joined ([`resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<'a> {
    Canonical(&'a [u8]),
    Events(Vec<Vec<u8>>),
    Ignored(&'static str),
}

impl<'a> Decoded<'a> {
    /// The canonical event bytes this record holds (none when ignored).
    pub fn events(&self) -> Vec<&[u8]> {
        match self {
            Decoded::Canonical(b) => vec![b],
            Decoded::Events(v) => v.iter().map(Vec::as_slice).collect(),
            Decoded::Ignored(_) => Vec::new(),
        }
    }
}

/// [`resolve`] for any format, canonical included.
pub fn decode<'a>(
    format: InputFormat,
    bytes: &'a [u8],
    table: &ProfileTable,
) -> Result<Decoded<'a>, EventError> {
    if format == InputFormat::Canonical {
        return Ok(Decoded::Canonical(bytes));
    }
    Ok(match resolve(format, bytes, table)? {
        Resolved::Events(v) => Decoded::Events(v),
        Resolved::Ignored(why) => Decoded::Ignored(why),
    })
}

/// Whether every bare follow of a payload has its profile in `table` (serve waits, for
/// a bounded time, until it does).
pub fn profiles_ready(format: InputFormat, bytes: &[u8], table: &ProfileTable) -> bool {
    match adapt::adapt(format, bytes) {
        Ok(Adapted::Items(items)) => items.iter().all(|i| match i {
            Item::Bare(f) => table.map.contains_key(f.follower_id.as_str()),
            Item::Event(_) => true,
        }),
        _ => true,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
