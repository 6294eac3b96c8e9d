//! Event time per partition and the maintenance it drives: each partition's clock (its
//! newest event time, and so its watermark), the periodic watermark sweep (resolve quiet
//! alerts, expire pending follows, moderation de-duplication and lockstep state), idle
//! followee eviction and dropping a revoked partition's state.

use super::triggers::LONG_SPAN_MS;
use super::{Detector, Emitted};
use crate::expiry::ExpiryIndex;

/// One partition's event-time clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct PartClock {
    max_ts: i64,
    next_sweep_ms: i64,
}

impl Detector {
    /// Watermark of a partition: its newest event time minus the allowed lateness.
    pub fn watermark(&self, partition: i32) -> Option<i64> {
        self.clocks
            .get(&partition)
            .map(|c| c.max_ts.saturating_sub(self.cfg.allowed_lateness_ms))
    }

    /// Moves `partition`'s clock to event time `ts_ms` (never back) and runs the sweep
    /// when the watermark crossed the next sweep time. Returns the watermark.
    pub(super) fn advance_clock(&mut self, partition: i32, ts_ms: i64, out: &mut Emitted) -> i64 {
        let sweep_every = self.cfg.sweep_interval_ms.max(1);
        let lateness = self.cfg.allowed_lateness_ms;
        let clock = self.clocks.entry(partition).or_insert(PartClock {
            max_ts: ts_ms,
            next_sweep_ms: (ts_ms.saturating_sub(lateness)).div_euclid(sweep_every) * sweep_every
                + sweep_every,
        });
        clock.max_ts = clock.max_ts.max(ts_ms);
        let watermark = clock.max_ts.saturating_sub(lateness);
        if watermark >= clock.next_sweep_ms {
            clock.next_sweep_ms = watermark.div_euclid(sweep_every) * sweep_every + sweep_every;
            self.sweep(partition, watermark, out);
        }
        watermark
    }

    /// Files a newly tracked followee slot in its partition's idle index (once; the sweep
    /// re-files it by its last-seen time when it falls due).
    pub(super) fn file_idle(&mut self, partition: i32, slot: u32, t: i64) {
        self.idle_due
            .entry(partition)
            .or_insert_with(|| ExpiryIndex::new(self.cfg.sweep_interval_ms))
            .file(slot, t.div_euclid(1000) * 1000);
    }

    /// Drops all state of followees last seen on `partition` (partition revoked: the new
    /// owner rebuilds it). Their open alerts are forgotten without a `resolved` record.
    pub fn drop_partition(&mut self, partition: i32) {
        let gone: Vec<u32> = self
            .followees
            .iter()
            .filter(|(_, _, w)| w.partition == partition)
            .map(|(k, _, _)| k)
            .collect();
        for k in gone {
            self.open.remove(&u64::from(k));
            self.newcomers.remove(&k);
            if let Some(id) = self.followees.remove(k) {
                // Issue 21: the new owner holds this state now; never tombstone it.
                if let Some(d) = self.dirty.as_mut() {
                    d.remove(&id);
                }
                self.pending.remove(&id);
                self.last_burst.remove(&id);
            }
        }
        self.clocks.remove(&partition);
        // Entries of its slots in other partitions' indexes (followees that moved) are
        // found free or re-filed by their new occupant's state when they fall due.
        self.idle_due.remove(&partition);
    }

    /// Frees followees of `partition` idle since before `watermark − idle_ttl` and with no
    /// open alert. Never changes an outcome: such a followee would be reset on its next
    /// event anyway. Returns how many were evicted.
    ///
    /// Visits only the slots filed (by last-seen time) up to the cutoff, not the whole
    /// table: every tracked followee has one entry in its partition's index, in a bucket
    /// no later than its last-seen time's (filed when first tracked; re-filed here).
    pub fn evict_idle(&mut self, partition: i32, watermark: i64) -> usize {
        let cutoff = watermark.saturating_sub(self.cfg.idle_ttl_ms);
        let Some(due) = self.idle_due.get_mut(&partition).map(|ix| ix.due(cutoff)) else {
            return 0;
        };
        let mut evicted = 0;
        for slot in due {
            let Some(w) = self.followees.get(slot) else {
                continue; // freed since it was filed
            };
            let seen_ms = i64::from(w.last_seen_s) * 1000;
            let (owner, open) = (w.partition, self.open.contains_key(&u64::from(slot)));
            if owner == partition && !open && seen_ms < cutoff {
                self.note_dirty_slot(slot);
                self.followees.remove(slot);
                self.newcomers.remove(&slot);
                evicted += 1;
                continue;
            }
            // Still tracked: file it by its last-seen time, in the index of the partition
            // that now owns it (an idle followee held by an open alert comes due again at
            // the next sweep).
            let width = self.cfg.sweep_interval_ms;
            self.idle_due
                .entry(owner)
                .or_insert_with(|| ExpiryIndex::new(width))
                .file(slot, seen_ms.max(cutoff));
        }
        evicted
    }

    /// Periodic, watermark-driven: resolves quiet alerts of the partition and frees
    /// state that can no longer matter.
    fn sweep(&mut self, partition: i32, watermark: i64, out: &mut Emitted) {
        let mut keys: Vec<u64> = self
            .open
            .keys()
            .copied()
            .filter(|&k| self.win(k).is_some_and(|w| w.partition == partition))
            .collect();
        // Deterministic emission order whatever the hash map's iteration order.
        keys.sort_by(|a, b| {
            let (x, y) = (&self.open[a], &self.open[b]);
            x.alert_id.cmp(&y.alert_id)
        });
        for k in keys {
            if let Ok(slot) = u32::try_from(k) {
                self.note_dirty_slot(slot);
            }
            self.check_resolve(k, watermark, out);
        }
        self.evict_idle(partition, watermark);
        let horizon = watermark - LONG_SPAN_MS;
        let followees = &self.followees;
        // Issue 21: followees whose pending follows expire are dirty (state.rs).
        let mut expired = Vec::new();
        let noting = self.dirty.is_some().then_some(&mut expired);
        self.pending.expire(
            horizon,
            |id| {
                followees
                    .find_id(id)
                    .and_then(|s| followees.get(s))
                    .is_some_and(|w| w.partition != partition)
            },
            noting,
        );
        if let Some(d) = self.dirty.as_mut() {
            for id in expired {
                d.insert(id, partition);
            }
        }
        self.moderated
            .expire(watermark.saturating_sub(self.cfg.moderation_dedup_ms));
        self.lockstep.part = partition;
        self.lockstep
            .prune(watermark.saturating_sub(self.cfg.lockstep_window_ms));
        self.last_burst
            .retain(|_, &mut (_, resolved)| resolved >= watermark - LONG_SPAN_MS);
    }
}

// ---- issue 21: state export / import (state.rs) ---------------------------------------

impl PartClock {
    /// `(newest event time, next sweep time)`.
    pub(super) fn parts(&self) -> (i64, i64) {
        (self.max_ts, self.next_sweep_ms)
    }

    pub(super) fn from_parts(max_ts: i64, next_sweep_ms: i64) -> Self {
        PartClock {
            max_ts,
            next_sweep_ms,
        }
    }
}
