//! The bounded follower-score cache: bought followers follow many accounts, so a cohort's
//! profiles are scored once and looked up afterwards. Fixed memory (24 bytes per slot),
//! no allocation per lookup, and scores that do not depend on whether they were cached.

use super::{Model, Reason, Score};
use crate::event::Profile;
use std::hash::{BuildHasher, Hasher};

/// Bounded follower-score cache. 8-way set-associative over fixed arrays, so memory is
/// fixed at construction ([`ScoreCache::memory_bytes`], [`ScoreCache::SLOT_BYTES`] per
/// slot) and a lookup never allocates; within a set the least recently used entry is
/// evicted (exact LRU: each tag carries its 3-bit rank in the set).
///
/// A slot is one 64-bit tag plus a 16-byte packed score:
/// - the tag is a hash of the follower id (keyed per cache, so ids cannot be crafted to
///   collide), a fingerprint of everything the features read (counts, creation time,
///   flags, names, bio) and the event day (a profile edit or a new day means a fresh
///   score), keeping 60 bits of it: a false hit needs a 60-bit match among a set's 8 tags,
///   about 7·10⁻¹⁸ per lookup;
/// - the probability is stored exactly (it decides `suspicious`), and each reason's
///   contribution is rounded to 16 significant bits with the feature index packed in the
///   freed low byte (see [`ScoreCache::quantise`]).
///
/// Every score this cache returns, on a miss as on a hit, is computed at the same instant
/// of the event's day ([`score_time`]: its UTC midpoint) and [`ScoreCache::quantise`]d the
/// same way, so a score is a function of the profile snapshot and the event day only, and
/// outputs never depend on the cache's contents, size, hashing or history (a replay
/// reproduces a service's decisions whatever each one had cached).
pub struct ScoreCache {
    /// One tag per slot (0 = empty); a set's 8 tags share one cache line, so a lookup
    /// reads one line and a hit one more.
    tags: Vec<u64>,
    vals: Vec<Packed>,
    sets: u64,
    len: usize,
    hits: u64,
    misses: u64,
    hasher: std::collections::hash_map::RandomState,
}

/// A score in 16 bytes: the exact probability and three packed reasons.
#[derive(Clone, Copy, Default)]
struct Packed {
    prob: f32,
    reasons: [u32; 3],
}

const WAYS: usize = 8;
/// Low tag bits: the entry's LRU rank in its set (0 = most recent) ...
const RANK_MASK: u64 = 0b0111;
/// ... and an "occupied" bit, so an occupied tag is never 0.
const OCCUPIED: u64 = 0b1000;
const META_MASK: u64 = RANK_MASK | OCCUPIED;

impl ScoreCache {
    /// Bytes per slot: 8 (tag) + 16 (packed score).
    pub const SLOT_BYTES: usize = std::mem::size_of::<u64>() + std::mem::size_of::<Packed>();

    /// A cache holding at most `capacity` scores (rounded up to a multiple of 8, ≥ 8).
    pub fn new(capacity: usize) -> Self {
        let sets = capacity.clamp(WAYS, 1 << 32).div_ceil(WAYS);
        let cap = sets * WAYS;
        ScoreCache {
            // Zeroed allocations: pages become resident as sets fill.
            tags: vec![0; cap],
            vals: vec![Packed::default(); cap],
            sets: sets as u64,
            len: 0,
            hits: 0,
            misses: 0,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Cached score if the same profile snapshot was scored the same day, else a fresh
    /// one; either way [`ScoreCache::quantise`]d.
    pub fn get_or_score(&mut self, m: &Model, p: &Profile<'_>, now_ms: i64) -> Score {
        let id_hash = {
            let mut h = self.hasher.build_hasher();
            h.write(p.id.as_bytes());
            h.finish()
        };
        let tag = (fmix64(fingerprint(id_hash, p, now_ms)) & !META_MASK) | OCCUPIED;
        // Set from the low 32 bits (multiply-shift range reduction, any set count); the
        // tag is a separate hash, so it does not repeat what the set index already says.
        let base = (((id_hash & 0xFFFF_FFFF) * self.sets) >> 32) as usize * WAYS;
        let ways = &mut self.tags[base..base + WAYS];
        let mut victim = 0;
        let mut victim_rank = 0;
        let mut occupied = 0u64;
        for (i, &t) in ways.iter().enumerate() {
            if t == 0 {
                // Prefer an empty slot; it takes rank `occupied` (after all others).
                victim_rank = u64::MAX;
                victim = i;
                continue;
            }
            occupied += 1;
            if t & !RANK_MASK == tag {
                promote(ways, i, t & RANK_MASK);
                self.hits += 1;
                return unpack(self.vals[base + i]);
            }
            if victim_rank != u64::MAX && t & RANK_MASK >= victim_rank {
                victim_rank = t & RANK_MASK;
                victim = i;
            }
        }
        self.misses += 1;
        let packed = pack(&m.score(p, score_time(now_ms)));
        let rank = if ways[victim] == 0 {
            self.len += 1;
            occupied
        } else {
            ways[victim] & RANK_MASK
        };
        ways[victim] = tag | rank;
        promote(ways, victim, rank);
        self.vals[base + victim] = packed;
        unpack(packed)
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
        self.tags.len()
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Memory held by the cache (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        self.tags.len() * Self::SLOT_BYTES + std::mem::size_of::<Self>()
    }

    /// The precision every score returned through the cache has: `prob` exact; each
    /// reason's contribution rounded to nearest at 16 significant bits (relative error
    /// ≤ 2⁻¹⁶; sign, and so the reason code, kept). Applied on misses and hits alike.
    pub fn quantise(s: &Score) -> Score {
        unpack(pack(s))
    }
}

/// Makes slot `i` (whose rank was `rank`) the most recent: every occupied entry more
/// recent than it ages by one, so ranks stay a permutation of `0..occupied`.
fn promote(ways: &mut [u64], i: usize, rank: u64) {
    for (j, t) in ways.iter_mut().enumerate() {
        if j != i && *t != 0 && *t & RANK_MASK < rank {
            *t += 1;
        }
    }
    ways[i] &= !RANK_MASK;
}

fn pack(s: &Score) -> Packed {
    Packed {
        prob: s.prob,
        reasons: s.reasons.map(pack_reason),
    }
}

fn unpack(p: Packed) -> Score {
    Score {
        prob: p.prob,
        reasons: p.reasons.map(|v| Reason {
            feature: (v & 0xFF) as u8,
            contribution: f32::from_bits(v & !0xFF),
        }),
    }
}

/// A contribution's top 24 bits (sign, exponent, 15 mantissa bits, rounded to nearest)
/// with the feature index in the low byte.
fn pack_reason(r: Reason) -> u32 {
    let c = r.contribution;
    let bits = if c.is_nan() {
        f32::NAN.to_bits()
    } else {
        let rounded = c.to_bits().wrapping_add(0x80) & !0xFF;
        if f32::from_bits(rounded).is_finite() || c.is_infinite() {
            rounded
        } else {
            // Rounding the largest finite values up would overflow: truncate instead.
            c.to_bits() & !0xFF
        }
    };
    (bits & !0xFF) | u32::from(r.feature)
}

/// Murmur3's 64-bit finaliser: spreads the fingerprint's entropy over the tag bits.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// FxHash-style mix: fast; the chain starts from the keyed id hash.
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

/// The id hash, everything [`features::extract`] reads, and the event day.
fn fingerprint(id_hash: u64, p: &Profile<'_>, now_ms: i64) -> u64 {
    let mut h = id_hash;
    let counts = [
        p.followers_count,
        p.friends_count,
        p.statuses_count,
        p.favourites_count,
        p.listed_count,
    ];
    // Which counts are missing (issue 24): a missing count is not a zero one.
    let missing = counts
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, c)| m | u64::from(c.is_none()) << (3 + i));
    for v in [
        counts[0].unwrap_or(0),
        counts[1].unwrap_or(0),
        counts[2].unwrap_or(0),
        counts[3].unwrap_or(0),
        counts[4].unwrap_or(0),
        p.created_at_s as u64,
        now_ms.div_euclid(86_400_000) as u64,
        u64::from(p.default_profile)
            | u64::from(p.url.is_some()) << 1
            | u64::from(p.location.trim().is_empty()) << 2
            | missing
            | u64::from(p.unknown) << 8,
    ] {
        h = mix(h, v);
    }
    h = mix_bytes(h, p.screen_name.as_bytes());
    h = mix_bytes(h, p.name.as_bytes());
    mix_bytes(h, p.description.trim().as_bytes())
}

/// The instant a score is computed at for an event at `now_ms`: the midpoint of its UTC
/// day. Account age (the features' only use of time) is then off by at most 12 hours,
/// which moves the per-day rates of any account older than a few days by a few percent at
/// most; in exchange, every event of a day sees the same score for the same snapshot,
/// cached or not.
pub fn score_time(now_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    now_ms.div_euclid(DAY_MS) * DAY_MS + DAY_MS / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_24_bytes() {
        assert_eq!(ScoreCache::SLOT_BYTES, 24);
        assert_eq!(std::mem::size_of::<Packed>(), 16);
    }

    #[test]
    fn quantisation_keeps_prob_sign_feature_and_16_bits() {
        for (i, c) in [
            0.0f32,
            -0.0,
            1e-9,
            -0.123_456_79,
            0.5,
            3.3e5,
            -f32::MAX,
            f32::MAX,
        ]
        .into_iter()
        .enumerate()
        {
            let s = Score {
                prob: 0.123_456_79,
                reasons: [Reason {
                    feature: i as u8 + 20,
                    contribution: c,
                }; 3],
            };
            let q = ScoreCache::quantise(&s);
            assert_eq!(q.prob.to_bits(), s.prob.to_bits());
            for r in q.reasons {
                assert_eq!(r.feature, i as u8 + 20);
                assert_eq!(r.contribution.is_sign_negative(), c.is_sign_negative());
                assert!(
                    (r.contribution - c).abs() <= c.abs() * 2f32.powi(-16),
                    "{c}"
                );
            }
            assert_eq!(ScoreCache::quantise(&q), q, "idempotent");
        }
    }

    #[test]
    fn lru_ranks_stay_a_permutation() {
        let mut ways = [0u64; WAYS];
        // Fill in order 0..8: slot i gets rank 8-1-i after all inserts.
        for i in 0..WAYS {
            let occupied = i as u64;
            ways[i] = (0x10 * (i as u64 + 1)) | OCCUPIED | occupied;
            promote(&mut ways, i, occupied);
        }
        let ranks: Vec<u64> = ways.iter().map(|t| t & RANK_MASK).collect();
        assert_eq!(ranks, vec![7, 6, 5, 4, 3, 2, 1, 0]);
        // Touch slot 3 (rank 4): it becomes 0, ranks 0..3 age by one.
        promote(&mut ways, 3, 4);
        let ranks: Vec<u64> = ways.iter().map(|t| t & RANK_MASK).collect();
        assert_eq!(ranks, vec![7, 6, 5, 0, 4, 3, 2, 1]);
    }
}
