//! Issue #20 hooks of the detector: the age-at-follow gate and the newcomer channel
//! (the pure logic is in [`crate::newcomer`]). Withheld followers (too new to judge)
//! feed their followee's channel; a tight registration band opens a `cohort` alert
//! whose in-band followers are judged; the channel keeps that alert hot while its band
//! holds, and is dropped with the followee.

use super::lifecycle::Opening;
use super::triggers::Eval;
use super::{Detector, Emitted, Observation};
use crate::alert::AlertKind;
use crate::newcomer::{band_contains, too_new, Band, BatchRule};

impl Detector {
    /// Whether `o` is a flagged follow by a follower too new to judge (its verdict is
    /// withheld before the channel has its say).
    pub(super) fn too_new(&self, o: &Observation<'_>) -> bool {
        o.follow
            && o.suspicious
            && too_new(o.ts_ms, o.follower_created_s, self.cfg.newcomer_max_age_ms)
    }

    /// Feeds a withheld follow into the followee's newcomer channel (slot `slot`, reset
    /// first when the followee was idle past the TTL). Returns whether the follow stays
    /// withheld (false when it is in the band of an alert the channel opened) and, with
    /// no alert open, the band that fires on it (only when this follower is in it).
    pub(super) fn newcomer_note(
        &mut self,
        slot: u32,
        reset: bool,
        o: &Observation<'_>,
        t: i64,
        withheld: bool,
        has_open: bool,
    ) -> (bool, Option<Band>) {
        if reset {
            self.newcomers.remove(&slot);
        }
        if !withheld || self.cfg.newcomer_batch_min == 0 {
            return (withheld, None);
        }
        let frozen = self.followees.get(slot).is_some_and(|w| w.frozen);
        let rule = self.batch_rule();
        let c = self.newcomers.entry(slot).or_default();
        c.observe(t, o.follower_created_s, frozen);
        if has_open {
            return (!c.in_band(o.follower_created_s), None);
        }
        c.band = None;
        let fire = c
            .fires(t, &rule)
            .filter(|b| band_contains(b.lo, o.follower_created_s));
        (withheld, fire)
    }

    /// Opens the `cohort` alert of a tight registration batch of withheld followers on
    /// followee `key`: `o` is in its band, so it is judged (the model flagged it) and
    /// recorded; the alert reports the band's size.
    pub(super) fn open_newcomer_batch(
        &mut self,
        key: u64,
        o: &Observation<'_>,
        t: i64,
        band: Band,
        eval: Eval,
        out: &mut Emitted,
    ) {
        let judged = Observation {
            suspicious: true,
            ..*o
        };
        if let Some(c) = u32::try_from(key)
            .ok()
            .and_then(|s| self.newcomers.get_mut(&s))
        {
            c.band = Some(band.lo);
        }
        out.withheld = 0;
        let opening = Opening {
            key,
            obs: &judged,
            t,
            kind: AlertKind::Cohort,
            eval,
        };
        self.open_alert(opening, out);
        if let Some(a) = self.open.get_mut(&key) {
            a.newcomer_batch = band.count;
        }
        if let Some(a) = out.alerts.last_mut() {
            a.newcomer_batch = band.count;
        }
    }

    /// Whether followee `key`'s alert is kept hot by the newcomer channel that opened it
    /// (its band still holds half the minimum) at the figures `eval`.
    pub(super) fn newcomer_hot(&self, key: u64, eval: &Eval) -> bool {
        let now = eval.short.end_ms - 1;
        u32::try_from(key).is_ok_and(|s| {
            self.newcomers
                .get(&s)
                .is_some_and(|n| n.hot(now, &self.batch_rule()))
        })
    }

    /// Clears the band of followee `key`'s channel (its alert resolved).
    pub(super) fn newcomer_resolved(&mut self, key: u64) {
        if let Some(n) = u32::try_from(key)
            .ok()
            .and_then(|s| self.newcomers.get_mut(&s))
        {
            n.band = None;
        }
    }

    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            min: self.cfg.newcomer_batch_min,
            share: self.cfg.newcomer_batch_share,
            z: self.cfg.z,
        }
    }
}
