//! Flagged follows of followees without an open alert, remembered (compactly, for at most
//! the long window) until an alert needs them: they become its first moderation records.

use super::triggers::LONG_SPAN_MS;
use super::Observation;
use crate::expiry::ExpiryIndex;
use crate::window::FolloweeId;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

/// A flagged follow remembered until an alert needs it. Compact (48 B + one allocation;
/// it was 120 B + two): every followee with a recent suspicious follow holds some.
#[derive(Debug, Clone)]
pub(super) struct Flagged {
    /// The follower id followed by the event id, in one allocation.
    ids: Box<str>,
    follower_len: u32,
    pub prob: f32,
    pub ts_ms: i64,
    /// Reason codes as indexes into [`PendingFollows::reason_codes`], and their
    /// contributions.
    codes: [u16; 3],
    contributions: [f32; 3],
}

impl Flagged {
    pub fn follower_id(&self) -> &str {
        self.ids.get(..self.follower_len as usize).unwrap_or("")
    }

    pub fn event_id(&self) -> &str {
        self.ids.get(self.follower_len as usize..).unwrap_or("")
    }

    /// What it costs against the byte budget: the entry and its ids.
    fn cost(&self) -> usize {
        std::mem::size_of::<Flagged>() + self.ids.len()
    }
}

/// Bytes of the flagged follows in `q` (entries and ids).
fn queue_cost<'q>(q: impl IntoIterator<Item = &'q Flagged>) -> usize {
    q.into_iter().map(Flagged::cost).sum()
}

/// The pending flagged follows, per followee, with an expiry index by their oldest time.
#[derive(Debug)]
pub(super) struct PendingFollows {
    /// Keyed by followee id: flagged follows outlive an eviction, exactly as they
    /// outlive the lazy reset of an idle followee.
    /// (`FolloweeId`: numeric ids without a heap allocation.)
    queues: HashMap<FolloweeId, VecDeque<Flagged>>,
    due: ExpiryIndex<FolloweeId>,
    /// Reason codes seen, so a pending flagged follow stores 2-byte indexes instead of
    /// 16-byte string references (the model has a few dozen codes).
    reason_codes: Vec<&'static str>,
    /// Issue #19: bytes of the entries and their ids held, at most `max_bytes`; flagged
    /// follows that would exceed it are not remembered (`refused`): their alert, should
    /// one open, lacks their moderation records, nothing else changes.
    held_bytes: usize,
    max_bytes: usize,
    refused: u64,
}

/// Index of reason code `c` in `codes`, adding it if new. The codes come from the
/// model's fixed table (a few dozen); should 65 535 ever be exceeded, further new codes
/// share the last index rather than grow the table without bound.
fn intern(codes: &mut Vec<&'static str>, c: &'static str) -> u16 {
    if let Some(i) = codes.iter().position(|&x| x == c) {
        return u16::try_from(i).unwrap_or(u16::MAX);
    }
    if codes.len() < usize::from(u16::MAX) {
        codes.push(c);
    }
    u16::try_from(codes.len() - 1).unwrap_or(u16::MAX)
}

impl PendingFollows {
    /// Empty; the expiry index's buckets are `width_ms` wide (the sweep period); at most
    /// `max_bytes` of entries and ids held.
    pub fn new(width_ms: i64, max_bytes: usize) -> Self {
        PendingFollows {
            queues: HashMap::new(),
            due: ExpiryIndex::new(width_ms),
            reason_codes: vec![""],
            held_bytes: 0,
            max_bytes,
            refused: 0,
        }
    }

    /// Remembers the flagged follow `o` (placed at `t`) of its followee: at most `cap`
    /// per followee (the oldest go first), none older than the long window.
    pub fn remember(&mut self, o: &Observation<'_>, t: i64, cap: usize) {
        if cap == 0 {
            return;
        }
        let Ok(follower_len) = u32::try_from(o.follower_id.len()) else {
            return;
        };
        let cost = std::mem::size_of::<Flagged>() + o.follower_id.len() + o.event_id.len();
        let codes = o.reasons.map(|(c, _)| intern(&mut self.reason_codes, c));
        // Most followees hold one or two pending follows: start the queue small.
        let q = match self.queues.entry(FolloweeId::new(o.followee_id)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.due.file(e.key().clone(), t);
                e.insert(VecDeque::with_capacity(1))
            }
        };
        while q.front().is_some_and(|f| f.ts_ms < t - LONG_SPAN_MS) || q.len() >= cap {
            self.held_bytes -= q.pop_front().map_or(0, |f| f.cost());
        }
        if self.held_bytes + cost > self.max_bytes {
            self.refused += 1;
            // No empty queue stays behind for a refused follow (its index entry is
            // skipped by the sweep).
            if q.is_empty() {
                self.queues.remove(&FolloweeId::new(o.followee_id));
            }
            return;
        }
        self.held_bytes += cost;
        let mut ids = String::with_capacity(o.follower_id.len() + o.event_id.len());
        ids.push_str(o.follower_id);
        ids.push_str(o.event_id);
        q.push_back(Flagged {
            ids: ids.into_boxed_str(),
            follower_len,
            prob: o.prob,
            ts_ms: t,
            codes,
            contributions: o.reasons.map(|(_, c)| c),
        });
    }

    /// Forgets the followee's pending follows, handing back those at or after `since`.
    pub fn take(&mut self, followee: &FolloweeId, since: i64) -> Vec<Flagged> {
        let Some(q) = self.queues.remove(followee) else {
            return Vec::new();
        };
        self.held_bytes -= queue_cost(&q);
        q.into_iter().filter(|f| f.ts_ms >= since).collect()
    }

    /// Forgets the followee's pending follows.
    pub fn remove(&mut self, followee: &FolloweeId) {
        if let Some(q) = self.queues.remove(followee) {
            self.held_bytes -= queue_cost(&q);
        }
    }

    /// The reason codes and contributions of `f`.
    pub fn reasons(&self, f: &Flagged) -> [(&'static str, f32); 3] {
        std::array::from_fn(|i| {
            (
                self.reason_codes
                    .get(usize::from(f.codes[i]))
                    .copied()
                    .unwrap_or(""),
                f.contributions[i],
            )
        })
    }

    /// Drops follows older than `horizon` from the queues filed up to it, except the
    /// queues of followees `elsewhere` says another partition owns (that partition's
    /// sweep expires them); empty queues go. Issue 21: the followees whose follows it
    /// dropped are pushed onto `changed`.
    pub fn expire(
        &mut self,
        horizon: i64,
        elsewhere: impl Fn(&FolloweeId) -> bool,
        mut changed: Option<&mut Vec<FolloweeId>>,
    ) {
        for k in self.due.due(horizon) {
            let Some(q) = self.queues.get_mut(&k) else {
                continue;
            };
            if !elsewhere(&k) {
                let before = q.len();
                while q.front().is_some_and(|f| f.ts_ms < horizon) {
                    self.held_bytes -= q.pop_front().map_or(0, |f| f.cost());
                }
                if q.len() != before {
                    if let Some(c) = changed.as_deref_mut() {
                        c.push(k.clone());
                    }
                }
            }
            match q.front() {
                Some(f) => self.due.file(k, f.ts_ms),
                None => {
                    self.queues.remove(&k);
                }
            }
        }
    }

    /// Flagged follows held.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Bytes held by the queues (queues, ids, map entries).
    pub fn bytes(&self) -> usize {
        self.queues
            .iter()
            .map(|(k, q)| {
                std::mem::size_of::<(FolloweeId, VecDeque<Flagged>)>()
                    + k.heap_bytes()
                    + q.capacity() * std::mem::size_of::<Flagged>()
                    + q.iter().map(|f| f.ids.len()).sum::<usize>()
            })
            .sum()
    }

    /// Bytes of the expiry index.
    pub fn index_bytes(&self) -> usize {
        self.due.heap_bytes()
    }

    /// Bytes held against the budget (entries and ids), and flagged follows refused
    /// because the budget was full.
    pub fn budget(&self) -> (usize, u64) {
        (self.held_bytes, self.refused)
    }

    /// Id bytes held (follower and event ids, followee keys).
    pub fn id_bytes(&self) -> usize {
        self.queues
            .iter()
            .map(|(k, q)| k.heap_bytes() + q.iter().map(|f| f.ids.len()).sum::<usize>())
            .sum()
    }
}

// ---- issue 21: state export / import (state.rs) ---------------------------------------

/// One pending flagged follow as plain values: (follower id, event id, probability bits,
/// time, reasons as (code, contribution bits)).
pub(super) type FlaggedParts = (String, String, u32, i64, [(&'static str, u32); 3]);

impl PendingFollows {
    /// Followees with pending follows.
    pub fn followees(&self) -> impl Iterator<Item = &FolloweeId> {
        self.queues.keys()
    }

    /// The pending follows of `followee`, oldest first.
    pub fn export(&self, followee: &FolloweeId) -> Vec<FlaggedParts> {
        let Some(q) = self.queues.get(followee) else {
            return Vec::new();
        };
        q.iter()
            .map(|f| {
                let r = self.reasons(f);
                (
                    f.follower_id().to_owned(),
                    f.event_id().to_owned(),
                    f.prob.to_bits(),
                    f.ts_ms,
                    r.map(|(c, x)| (c, x.to_bits())),
                )
            })
            .collect()
    }

    /// Replaces the pending follows of `followee` (oldest first); an empty list forgets
    /// them. Follows whose ids do not fit, or that would exceed the byte budget (issue
    /// #19), are skipped (the latter counted as refused, as when first seen).
    pub fn import(&mut self, followee: FolloweeId, follows: &[FlaggedParts]) {
        self.remove(&followee);
        let mut q = VecDeque::with_capacity(follows.len());
        for (follower, event, prob, ts_ms, reasons) in follows {
            let Ok(follower_len) = u32::try_from(follower.len()) else {
                continue;
            };
            let cost = std::mem::size_of::<Flagged>() + follower.len() + event.len();
            if self.held_bytes + cost > self.max_bytes {
                self.refused += 1;
                continue;
            }
            self.held_bytes += cost;
            let codes = reasons.map(|(c, _)| intern(&mut self.reason_codes, c));
            q.push_back(Flagged {
                ids: format!("{follower}{event}").into_boxed_str(),
                follower_len,
                prob: f32::from_bits(*prob),
                ts_ms: *ts_ms,
                codes,
                contributions: reasons.map(|(_, x)| f32::from_bits(x)),
            });
        }
        if let Some(first) = q.front() {
            self.due.file(followee.clone(), first.ts_ms);
            self.queues.insert(followee, q);
        }
    }
}
