//! Moderation records: one per flagged follower of an alerted followee, at most one per
//! follower per `moderation_dedup_ms` (the same bots follow many accounts).

use super::{Detector, FlaggedFollow};
use crate::alert::{ModerationRecord, ReasonOut, SCHEMA_VERSION};
use crate::expiry::ExpiryIndex;
use crate::keys::key_of;
use crate::time::format_rfc3339_ms;
use std::collections::HashMap;

/// When each recently moderated follower (by id hash) last got a record, with an expiry
/// index so the sweep visits only entries that may have expired.
#[derive(Debug)]
pub(super) struct ModerationDedup {
    last: HashMap<u64, i64>,
    due: ExpiryIndex<u64>,
}

impl ModerationDedup {
    /// Empty; the expiry index's buckets are `width_ms` wide (the sweep period).
    pub fn new(width_ms: i64) -> Self {
        ModerationDedup {
            last: HashMap::new(),
            due: ExpiryIndex::new(width_ms),
        }
    }

    /// Whether follower `fk` may get a record at `t` (it got none in the `period`
    /// before); if so, `t` is remembered as its latest.
    fn admit(&mut self, fk: u64, t: i64, period: i64) -> bool {
        if let Some(&last) = self.last.get(&fk) {
            if t >= last && t - last < period {
                return false;
            }
        }
        match self.last.insert(fk, t) {
            None => self.due.file(fk, t),
            Some(old) if self.due.needs_refile(old, t) => self.due.file(fk, t),
            Some(_) => {}
        }
        true
    }

    /// Forgets followers whose latest record is older than `cutoff`.
    pub fn expire(&mut self, cutoff: i64) {
        for k in self.due.due(cutoff) {
            match self.last.get(&k) {
                Some(&last) if last < cutoff => {
                    self.last.remove(&k);
                }
                Some(&last) => self.due.file(k, last),
                None => {}
            }
        }
    }

    /// Followers remembered.
    pub fn entries(&self) -> usize {
        self.last.len()
    }

    /// Bytes of the expiry index.
    pub fn index_bytes(&self) -> usize {
        self.due.heap_bytes()
    }
}

impl Detector {
    /// A moderation record for flagged follow `f` in followee `key`'s open alert, unless
    /// the follower already got one within the period.
    pub(super) fn moderation_for(
        &mut self,
        key: u64,
        f: &FlaggedFollow<'_>,
    ) -> Option<ModerationRecord> {
        let period = self.cfg.moderation_dedup_ms;
        let fk = key_of(f.follower_id);
        if !self.moderated.admit(fk, f.ts_ms, period) {
            return None;
        }
        // Issue 21 hook (state.rs): a changed dedup entry.
        let partition = self.win(key).map_or(0, |w| w.partition);
        if let Some(d) = self.dirty_moderation.as_mut() {
            d.insert(fk, partition);
        }
        let a = self.open.get(&key)?;
        Some(ModerationRecord {
            schema_version: SCHEMA_VERSION,
            follower_id: f.follower_id.to_string(),
            score: f.prob,
            reasons: f
                .reasons
                .iter()
                .filter(|(c, _)| !c.is_empty())
                .map(|&(code, contribution)| ReasonOut { code, contribution })
                .collect(),
            followee_id: a.followee_id.clone(),
            alert_id: a.alert_id.clone(),
            campaign_id: a.campaign_id.clone(),
            model_version: self.cfg.model_version.clone(),
            event_id: f.event_id.to_string(),
            event_time: format_rfc3339_ms(f.ts_ms),
            event_time_ms: f.ts_ms,
            shadow_score: None,
        })
    }
}

// ---- issue 21: state export / import (state.rs) ---------------------------------------

impl ModerationDedup {
    /// `(follower key, last record time)`, sorted by key.
    pub fn export(&self) -> Vec<(u64, i64)> {
        let mut v: Vec<(u64, i64)> = self.last.iter().map(|(&k, &t)| (k, t)).collect();
        v.sort_unstable();
        v
    }

    /// Follower `fk`'s last record time, if remembered.
    pub fn get(&self, fk: u64) -> Option<i64> {
        self.last.get(&fk).copied()
    }

    /// Remembers follower `fk`'s last record time (the later one if it is known).
    pub fn import(&mut self, fk: u64, last_ms: i64) {
        let t = self.last.get(&fk).map_or(last_ms, |&o| o.max(last_ms));
        self.last.insert(fk, t);
        self.due.file(fk, t);
    }
}
