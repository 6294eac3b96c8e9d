//! The bounded follower-score cache: bought followers follow many accounts, so a cohort's
//! profiles are scored once and looked up afterwards. Fixed memory, no allocation per lookup.

use super::{Model, Reason, Score};
use crate::event::Profile;
use std::hash::{BuildHasher, Hasher};

/// Bounded follower-score cache: bought followers follow many accounts, so the same
/// profile is scored again and again. 8-way set-associative over fixed arrays, so memory
/// is fixed at construction ([`ScoreCache::memory_bytes`]) and a lookup never allocates;
/// within a set the least recently used entry is evicted.
///
/// Keyed by a keyed hash of the follower id (seeded per cache, so ids cannot be crafted
/// to collide) plus a fingerprint of everything the features read (counts, creation time,
/// flags, names, bio) and the event day: a profile edit or a new day (rates move with
/// account age) means a fresh score.
pub struct ScoreCache {
    /// Id-hash per slot (0 = empty); one set's 8 keys share a cache line.
    keys: Vec<u64>,
    entries: Vec<Entry>,
    set_mask: usize,
    len: usize,
    hits: u64,
    misses: u64,
    clock: u32,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Clone, Copy)]
struct Entry {
    fingerprint: u64,
    last_used: u32,
    score: Score,
}

const WAYS: usize = 8;

const EMPTY_ENTRY: Entry = Entry {
    fingerprint: 0,
    last_used: 0,
    score: Score {
        prob: 0.0,
        reasons: [Reason {
            feature: 0,
            contribution: 0.0,
        }; 3],
    },
};

impl ScoreCache {
    /// A cache holding at most `capacity` scores (rounded up to a power of two, ≥ 8).
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.clamp(WAYS, 1 << 30).next_power_of_two();
        ScoreCache {
            keys: vec![0; cap],
            entries: vec![EMPTY_ENTRY; cap],
            set_mask: cap / WAYS - 1,
            len: 0,
            hits: 0,
            misses: 0,
            clock: 0,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Cached score if the same profile snapshot was scored the same day, else a fresh one.
    pub fn get_or_score(&mut self, m: &Model, p: &Profile<'_>, now_ms: i64) -> Score {
        let key = {
            let mut h = self.hasher.build_hasher();
            h.write(p.id.as_bytes());
            h.finish() | 1 // never 0, which marks an empty slot
        };
        let fp = fingerprint(p, now_ms);
        // Set from the high bits: the low bit is forced to 1 above.
        let set = ((key >> 32) as usize & self.set_mask) * WAYS;
        self.clock = self.clock.wrapping_add(1);
        let mut victim = set;
        let mut best = 0u32;
        for slot in set..set + WAYS {
            let k = self.keys[slot];
            if k == key && self.entries[slot].fingerprint == fp {
                self.hits += 1;
                self.entries[slot].last_used = self.clock;
                return self.entries[slot].score;
            }
            // Eviction preference: an empty slot, then this id's stale entry, then the
            // least recently used (age on the wrapping clock).
            let prio = if k == 0 {
                u32::MAX
            } else if k == key {
                u32::MAX - 1
            } else {
                self.clock
                    .wrapping_sub(self.entries[slot].last_used)
                    .min(u32::MAX - 2)
            };
            if prio > best {
                best = prio;
                victim = slot;
            }
        }
        self.misses += 1;
        let score = m.score(p, now_ms);
        if self.keys[victim] == 0 {
            self.len += 1;
        }
        self.keys[victim] = key;
        self.entries[victim] = Entry {
            fingerprint: fp,
            last_used: self.clock,
            score,
        };
        score
    }

    /// Number of cached scores.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of cached scores.
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Memory held by the cache (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        self.keys.len() * std::mem::size_of::<u64>()
            + self.entries.len() * std::mem::size_of::<Entry>()
            + std::mem::size_of::<Self>()
    }
}

/// FxHash-style mix: fast, and collisions only matter within one id's key.
fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

fn mix_bytes(mut h: u64, b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix(h, u64::from_le_bytes(w));
    }
    let mut w = [0u8; 8];
    let rest = chunks.remainder();
    w[..rest.len()].copy_from_slice(rest);
    mix(mix(h, u64::from_le_bytes(w)), b.len() as u64)
}

/// Everything [`features::extract`] reads, plus the event day.
fn fingerprint(p: &Profile<'_>, now_ms: i64) -> u64 {
    let mut h = 0u64;
    for v in [
        p.followers_count,
        p.friends_count,
        p.statuses_count,
        p.favourites_count,
        p.listed_count,
        p.created_at_s as u64,
        now_ms.div_euclid(86_400_000) as u64,
        u64::from(p.default_profile)
            | u64::from(p.url.is_some()) << 1
            | u64::from(p.location.trim().is_empty()) << 2,
    ] {
        h = mix(h, v);
    }
    h = mix_bytes(h, p.screen_name.as_bytes());
    h = mix_bytes(h, p.name.as_bytes());
    mix_bytes(h, p.description.trim().as_bytes())
}
