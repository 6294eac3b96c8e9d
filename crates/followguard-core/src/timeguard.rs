//! Partition event-time clocks that a handful of absurd timestamps cannot move (issue #19).
//!
//! Pure core: no wall clock, no I/O. One [`PartitionClock`] per source partition decides
//! where the detector places each event in time:
//!
//! - an event at most `max_future_skew` ahead of the clock is **on time**: placed at its
//!   own time, and the clock follows it (in-order streams move the clock event by event);
//! - an event further ahead is **clamped**: counted at the clock, and the clock does not
//!   move. Once `confirm` such events arrive in a row (no on-time event between them) the
//!   clock **jumps** to the earliest of them — the whole stream moved forward after a
//!   pause. So one follow stamped 2100 among real traffic is counted at the partition's
//!   real time and changes nothing else (the next on-time event ends its run), while a
//!   real jump is followed after `confirm` events (those are counted, at the old clock,
//!   not lost). A partition quieter than the skew (gaps longer than `max_future_skew`)
//!   still advances, `confirm` events at a time;
//! - an event behind the clock keeps the detector's existing rule (placed at the
//!   watermark if later than `allowed_lateness`): windows never move backwards.
//!
//! The first event anchors the clock. Should the anchor itself be absurd, the clock is
//! *unconfirmed* until `confirm` events were on time with it; while unconfirmed, `confirm`
//! events in a row far **behind** it re-anchor the clock at the earliest of them
//! ([`Placement::Reanchored`]): the pipeline then drops the partition's detector state,
//! which holds only the few events seen since the bad anchor.
//!
//! Times beyond what every time type holds (`last_seen_s` is u32 seconds: 2106-02-07) are
//! rejected earlier, as `bad_timestamp` (`time::MAX_EVENT_TIME_MS`).

/// Settings of the partition clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockConfig {
    /// How far ahead of its partition's clock an event may be and still move it.
    pub max_future_skew_ms: i64,
    /// Events that must agree on a time beyond the skew before the clock jumps there.
    pub confirm: usize,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            max_future_skew_ms: 3_600_000,
            confirm: 8,
        }
    }
}

/// Where an event was placed relative to its partition's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// At its own time (or behind the clock: the detector's lateness rule applies).
    #[default]
    OnTime,
    /// Too far ahead: counted at the clock; `skew_ms` is how far ahead it was.
    Clamped { skew_ms: i64 },
    /// Confirmed forward jump of the clock by `by_ms` (this event is on time).
    Jumped { by_ms: i64 },
    /// The unconfirmed anchor was absurd: the clock moved back by `by_ms` and the
    /// partition's detector state must be dropped before this event is observed.
    Reanchored { by_ms: i64 },
}

/// One partition's clock. Bounded: at most `confirm` remembered times.
#[derive(Debug, Clone, Default)]
pub struct PartitionClock {
    now: Option<i64>,
    /// On-time events since the anchor, saturating at `confirm` (then the anchor stands).
    support: usize,
    /// The current run of consecutive out-of-range events (all ahead, or all behind an
    /// unconfirmed anchor); any on-time event ends it.
    run: Vec<i64>,
    run_ahead: bool,
}

impl PartitionClock {
    /// The clock (newest on-time event time), if any event was seen.
    pub fn now(&self) -> Option<i64> {
        self.now
    }

    /// Places one event at `ts_ms`; returns the time the detector should count it at and
    /// how it was placed.
    pub fn admit(&mut self, ts_ms: i64, cfg: &ClockConfig) -> (i64, Placement) {
        let confirm = cfg.confirm.max(1);
        let skew = cfg.max_future_skew_ms.max(0);
        let Some(now) = self.now else {
            self.now = Some(ts_ms);
            self.support = 1;
            return (ts_ms, Placement::OnTime);
        };
        if ts_ms > now.saturating_add(skew) {
            if let Some(to) = self.extend_run(ts_ms, true, confirm) {
                self.jump_to(to);
                let placed = if ts_ms > to.saturating_add(skew) {
                    to
                } else {
                    ts_ms
                };
                self.now = Some(placed);
                return (placed, Placement::Jumped { by_ms: to - now });
            }
            return (
                now,
                Placement::Clamped {
                    skew_ms: ts_ms - now,
                },
            );
        }
        if self.support < confirm && ts_ms < now.saturating_sub(skew) {
            if let Some(to) = self.extend_run(ts_ms, false, confirm) {
                self.jump_to(to);
                self.now = Some(to.max(ts_ms));
                return (ts_ms, Placement::Reanchored { by_ms: now - to });
            }
            // Unconfirmed anchor: this event is counted at the detector's watermark, as
            // any late event is.
            return (ts_ms, Placement::OnTime);
        }
        self.run.clear();
        if self.support < confirm {
            self.support += 1;
        }
        self.now = Some(now.max(ts_ms));
        (ts_ms, Placement::OnTime)
    }

    /// Adds `ts` to the run of out-of-range events (starting a new run on a change of
    /// direction); once the run holds `confirm` events, returns its earliest time — the
    /// time they all agree the stream has at least reached (or, behind, gone back to).
    fn extend_run(&mut self, ts: i64, ahead: bool, confirm: usize) -> Option<i64> {
        if self.run_ahead != ahead {
            self.run.clear();
            self.run_ahead = ahead;
        }
        self.run.push(ts);
        if self.run.len() < confirm {
            return None;
        }
        let to = self.run.iter().copied().min();
        self.run = Vec::new();
        to
    }

    fn jump_to(&mut self, ts_ms: i64) {
        self.now = Some(ts_ms);
        self.support = 1;
        self.run = Vec::new();
    }
}

// ---- issue 21: state export / import (detector/state.rs) ------------------------------

/// A [`PartitionClock`] as plain, serializable values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeguardState {
    pub now: Option<i64>,
    pub support: usize,
    pub run: Vec<i64>,
    pub run_ahead: bool,
}

impl PartitionClock {
    pub fn to_state(&self) -> TimeguardState {
        TimeguardState {
            now: self.now,
            support: self.support,
            run: self.run.clone(),
            run_ahead: self.run_ahead,
        }
    }

    /// The clock `s` describes; its run is cut to `confirm` times (the bound `admit`
    /// keeps), so a corrupt record cannot make it unbounded.
    pub fn from_state(s: &TimeguardState, cfg: &ClockConfig) -> Self {
        let confirm = cfg.confirm.max(1);
        PartitionClock {
            now: s.now,
            support: s.support.min(confirm),
            run: s.run.iter().copied().take(confirm).collect(),
            run_ahead: s.run_ahead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000;
    const Y2100: i64 = 4_102_444_800_000;

    fn run(clock: &mut PartitionClock, ts: i64) -> (i64, Placement) {
        clock.admit(ts, &ClockConfig::default())
    }

    #[test]
    fn one_future_event_is_clamped_and_never_moves_the_clock() {
        let mut c = PartitionClock::default();
        for i in 0..100 {
            run(&mut c, T0 + i * 1000);
        }
        let (at, p) = run(&mut c, Y2100);
        assert_eq!(at, T0 + 99_000);
        assert_eq!(
            p,
            Placement::Clamped {
                skew_ms: Y2100 - at
            }
        );
        for i in 100..200 {
            assert_eq!(
                run(&mut c, T0 + i * 1000),
                (T0 + i * 1000, Placement::OnTime)
            );
        }
        assert_eq!(c.now(), Some(T0 + 199_000));
    }

    #[test]
    fn a_whole_stream_jump_is_followed_after_confirm_events() {
        let mut c = PartitionClock::default();
        run(&mut c, T0);
        let later = T0 + 6 * 3_600_000;
        for i in 0..7 {
            assert!(matches!(
                run(&mut c, later + i).1,
                Placement::Clamped { .. }
            ));
        }
        assert_eq!(
            run(&mut c, later + 7),
            (later + 7, Placement::Jumped { by_ms: later - T0 })
        );
        assert_eq!(run(&mut c, later + 8), (later + 8, Placement::OnTime));
    }

    #[test]
    fn an_absurd_anchor_is_replaced_by_the_real_stream() {
        let mut c = PartitionClock::default();
        run(&mut c, Y2100);
        for i in 0..7 {
            assert_eq!(run(&mut c, T0 + i).1, Placement::OnTime);
        }
        assert_eq!(
            run(&mut c, T0 + 7).1,
            Placement::Reanchored { by_ms: Y2100 - T0 }
        );
        assert_eq!(c.now(), Some(T0 + 7));
        // Confirmed now: a far-past event no longer re-anchors.
        for i in 8..20 {
            run(&mut c, T0 + i);
        }
        for _ in 0..20 {
            assert_eq!(run(&mut c, 0).1, Placement::OnTime);
        }
        assert_eq!(c.now(), Some(T0 + 19));
    }

    #[test]
    fn absurd_times_among_real_traffic_never_confirm_each_other() {
        let mut c = PartitionClock::default();
        run(&mut c, T0);
        for i in 0..1000 {
            for k in 0..7 {
                let (at, p) = run(&mut c, Y2100 + k);
                assert_eq!(at, T0 + i);
                assert!(matches!(p, Placement::Clamped { .. }));
            }
            assert_eq!(run(&mut c, T0 + i + 1).1, Placement::OnTime);
        }
        assert_eq!(c.now(), Some(T0 + 1000));
    }

    #[test]
    fn a_partition_quieter_than_the_skew_still_advances() {
        let mut c = PartitionClock::default();
        let gap = 2 * 3_600_000;
        for i in 0..100 {
            run(&mut c, T0 + i * gap);
        }
        let now = c.now().unwrap();
        assert!(now >= T0 + 85 * gap, "{}", (now - T0) / gap);
    }
}
