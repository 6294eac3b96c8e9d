//! The one pipeline function shared by `serve` (Kafka) and `replay` (files): raw bytes
//! in, [`Outcome`] out (score, flags, alert and moderation records).
//!
//! Pure: no I/O, no clock, no tokio, no prometheus. Drivers supply the event bytes, a
//! fallback event time (the Kafka record timestamp) and the source partition; they route
//! the outcome to sinks and metrics. Idle-state eviction runs inside [`Pipeline::process`]
//! by event-time watermark, so drivers need no timers.

use crate::detector::{Detector, DetectorConfig, Emitted, MemoryReport, Observation};
use crate::event::{self, EventError, EventType};
use crate::model::{Model, Score, ScoreCache};
use crate::time::MAX_EVENT_TIME_MS;
use crate::timeguard::{ClockConfig, PartitionClock, Placement};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::alert::{Alert, ModerationRecord};

/// Pipeline settings (the detector's thresholds and the score cache size).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub detector: DetectorConfig,
    /// Follower scores kept in the cache: bought followers follow many accounts, so a
    /// cohort is scored once. Memory is fixed at construction (24 bytes per slot).
    pub cache_capacity: usize,
    /// Partition clocks (issue #19, `timeguard`): how far ahead an event may move its
    /// partition's clock, and how many events confirm a jump.
    pub clock: ClockConfig,
    /// Longest accepted id in bytes (issue #19, `bounds`): longer is `bad_id`.
    pub max_id_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            detector: DetectorConfig::default(),
            cache_capacity: 1 << 18,
            clock: ClockConfig::default(),
            max_id_bytes: crate::bounds::DEFAULT_MAX_ID_BYTES,
        }
    }
}

/// What one input produced. Its strings borrow from the input bytes (most events cause
/// no record, so copying them per event would be wasted work); sinks that keep them
/// copy what they keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    /// Resolved event time (payload `ts`, else the fallback).
    pub event_time_ms: i64,
    /// How the partition clock placed it (issue #19): a far-future event is counted at
    /// the clock (`Clamped`), not at `event_time_ms`.
    pub placement: Placement,
    pub event_id: Cow<'a, str>,
    pub kind: EventType,
    pub followee_id: Cow<'a, str>,
    pub follower_id: Cow<'a, str>,
    /// Follower account creation time (epoch seconds), screen name and description, for
    /// the alert evidence pages (`evidence`); account-controlled text, escape on output.
    pub follower_created_at_s: i64,
    pub follower_screen_name: Cow<'a, str>,
    pub follower_description: Cow<'a, str>,
    pub score: Score,
    /// `score.prob >= model.threshold()`.
    pub suspicious: bool,
    pub cache_hit: bool,
    /// Alert records (open / update / resolved) caused by this input, possibly about
    /// other followees (resolutions found by the watermark sweep).
    pub alerts: Vec<Alert>,
    /// Moderation records for flagged followers of alerted followees.
    pub moderation: Vec<ModerationRecord>,
    /// Issue #20: the follower scored suspicious but was too new to judge (minutes old
    /// at the follow); the detector did not count it as suspicious.
    pub judgment_withheld: bool,
}

impl Outcome<'_> {
    /// A follow whose follower scored at or above the threshold: what the detector counts
    /// (a suspicious account's unfollow is not a bought follow).
    pub fn suspicious_follow(&self) -> bool {
        self.suspicious && self.kind == EventType::Follow
    }

    /// Copies the borrowed strings, for an outcome that must outlive its input bytes.
    pub fn into_owned(self) -> Outcome<'static> {
        Outcome {
            event_id: Cow::Owned(self.event_id.into_owned()),
            followee_id: Cow::Owned(self.followee_id.into_owned()),
            follower_id: Cow::Owned(self.follower_id.into_owned()),
            follower_screen_name: Cow::Owned(self.follower_screen_name.into_owned()),
            follower_description: Cow::Owned(self.follower_description.into_owned()),
            ..self
        }
    }
}

/// Scoring plus detection state for the followees of the partitions this instance owns.
pub struct Pipeline {
    model: Arc<Model>,
    cache: ScoreCache,
    detector: Detector,
    threshold: f32,
    /// Issue #19 hook: per-partition event-time clocks (see `timeguard`).
    clocks: HashMap<i32, PartitionClock>,
    clock_cfg: ClockConfig,
    max_id_bytes: usize,
}

impl Pipeline {
    pub fn new(model: Arc<Model>, cfg: PipelineConfig) -> Self {
        let mut dcfg = cfg.detector;
        dcfg.model_version = model.version().to_string();
        Pipeline {
            threshold: model.threshold(),
            cache: ScoreCache::new(cfg.cache_capacity),
            detector: Detector::new(dcfg),
            clocks: HashMap::new(),
            clock_cfg: cfg.clock,
            max_id_bytes: cfg.max_id_bytes,
            model,
        }
    }

    /// One raw input. `fallback_ts_ms`: Kafka record timestamp, used when the payload has
    /// no `ts` (a missing `ts` with no fallback is `EventError::MissingField("ts")`).
    /// `partition`: source partition (0 for files), remembered per followee so its state
    /// can be dropped when the partition is revoked.
    pub fn process<'a>(
        &mut self,
        bytes: &'a [u8],
        fallback_ts_ms: Option<i64>,
        partition: i32,
    ) -> Result<Outcome<'a>, EventError> {
        let p = prepare(&self.model, &mut self.cache, bytes, fallback_ts_ms)?;
        self.observe(p, partition)
    }

    /// The model and this pipeline's score cache, for preparing events on two threads at
    /// once (the other thread brings its own [`ScoreCache`]). A score depends only on the
    /// profile and the event day, never on which cache held what, so outcomes are the
    /// same whichever thread prepared an event.
    pub fn scorer(&mut self) -> (&Model, &mut ScoreCache) {
        (&self.model, &mut self.cache)
    }

    /// The detection half of [`process`](Self::process): windows, triggers, alert and
    /// moderation records. Must see prepared events in input order. Fails (`bad_id`)
    /// for an id longer than `max_id_bytes` (issue #19), before any state changes.
    pub fn observe<'a>(
        &mut self,
        p: Prepared<'a>,
        partition: i32,
    ) -> Result<Outcome<'a>, EventError> {
        let Prepared {
            ev,
            ts,
            score,
            cache_hit,
        } = p;
        // Issue #19 hook: bounded ids (every stored id and output record has a known size).
        crate::bounds::check_ids(
            &ev.event_id,
            &ev.followee_id,
            &ev.follower.id,
            self.max_id_bytes,
        )?;
        let suspicious = score.prob >= self.threshold;
        let follow = ev.kind == EventType::Follow;
        let reasons = score.reasons.map(|r| (r.code(), r.contribution));
        // Issue #19 hook: the partition clock decides the time the detector counts the
        // event at (far-future times are clamped to the clock; an absurd anchor is
        // replaced, dropping the few events' state it polluted).
        let (placed_ts, placement) = self
            .clocks
            .entry(partition)
            .or_default()
            .admit(ts, &self.clock_cfg);
        if let Placement::Reanchored { .. } = placement {
            self.detector.drop_partition(partition);
        }
        let Emitted {
            alerts,
            moderation,
            withheld,
        } = self.detector.observe(&Observation {
            event_id: &ev.event_id,
            followee_id: &ev.followee_id,
            follower_id: &ev.follower.id,
            follow,
            ts_ms: placed_ts,
            partition,
            prob: score.prob,
            // An unfollow never counts as a flagged follow.
            suspicious: suspicious && follow,
            follower_created_s: ev.follower.created_at_s,
            reasons,
        });
        Ok(Outcome {
            event_time_ms: ts,
            placement,
            event_id: ev.event_id,
            kind: ev.kind,
            followee_id: ev.followee_id,
            follower_id: ev.follower.id,
            follower_created_at_s: ev.follower.created_at_s,
            follower_screen_name: ev.follower.screen_name,
            follower_description: ev.follower.description,
            score,
            suspicious,
            cache_hit,
            alerts,
            moderation,
            judgment_withheld: withheld > 0,
        })
    }

    /// Scores one input's follower into the cache without detection (no window moves, no
    /// record is produced): `bench-pipeline` uses it to measure the warm-cache path.
    /// Fails exactly as [`process`](Self::process) would on the same input.
    pub fn warm_cache(
        &mut self,
        bytes: &[u8],
        fallback_ts_ms: Option<i64>,
    ) -> Result<(), EventError> {
        prepare(&self.model, &mut self.cache, bytes, fallback_ts_ms).map(|_| ())
    }

    /// Forgets the followees of a revoked partition (the new owner rebuilds them).
    pub fn drop_partition(&mut self, partition: i32) {
        self.detector.drop_partition(partition);
        self.clocks.remove(&partition);
    }

    /// Frees idle state of `partition` up to `watermark` (already done automatically
    /// inside `process`; exposed for drivers and tests). Never changes outcomes.
    pub fn evict_idle(&mut self, partition: i32, watermark: i64) -> usize {
        self.detector.evict_idle(partition, watermark)
    }

    pub fn tracked_followees(&self) -> usize {
        self.detector.tracked_followees()
    }

    pub fn open_alerts(&self) -> usize {
        self.detector.open_alerts()
    }

    /// The model, shared (for helper threads preparing events while this pipeline
    /// observes others).
    pub fn shared_model(&self) -> Arc<Model> {
        self.model.clone()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn detector_config(&self) -> &DetectorConfig {
        self.detector.config()
    }

    /// Cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.cache.hits(), self.cache.misses())
    }

    /// Memory held by the detector state, plus the score cache's fixed bytes.
    pub fn memory_report(&self) -> (MemoryReport, usize) {
        (self.detector.memory_report(), self.cache.memory_bytes())
    }
}

/// An input parsed and scored, not yet observed by the detector: the per-event, stateless
/// half of [`Pipeline::process`] (state: only the score cache, which never changes a
/// score), so it may run on any thread, ahead of detection.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    ev: event::FollowEvent<'a>,
    ts: i64,
    score: Score,
    cache_hit: bool,
}

/// Parses `bytes`, resolves the event time and scores the follower through `cache`.
pub fn prepare<'a>(
    model: &Model,
    cache: &mut ScoreCache,
    bytes: &'a [u8],
    fallback_ts_ms: Option<i64>,
) -> Result<Prepared<'a>, EventError> {
    let ev = event::parse(bytes)?;
    let ts = event_time(ev.ts_ms, fallback_ts_ms)?;
    let hits_before = cache.hits();
    let score = cache.get_or_score(model, &ev.follower, ts);
    let cache_hit = cache.hits() > hits_before;
    Ok(Prepared {
        ev,
        ts,
        score,
        cache_hit,
    })
}

/// The event time: payload `ts`, else the fallback; outside 1970..=2106-02-07 is garbage
/// a window cannot place, so it is dead-lettered.
fn event_time(ts_ms: Option<i64>, fallback_ts_ms: Option<i64>) -> Result<i64, EventError> {
    let ts = ts_ms
        .or(fallback_ts_ms)
        .ok_or(EventError::MissingField("ts"))?;
    if !(0..=MAX_EVENT_TIME_MS).contains(&ts) {
        return Err(EventError::BadTimestamp {
            field: "ts",
            value: ts.to_string(),
        });
    }
    Ok(ts)
}

// ---- issue 21: state export / import (detector/state.rs) ------------------------------

impl Pipeline {
    /// The detector (its state export: `detector::state`).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The detector, to import state or take its dirty followees.
    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }

    /// Partition `p`'s clocks: the detector's and the event-time guard's.
    pub fn export_clock(&self, partition: i32) -> Option<crate::detector::state::PartitionState> {
        let mut s = self.detector.export_clock(partition)?;
        s.timeguard = self.clocks.get(&partition).map(PartitionClock::to_state);
        Some(s)
    }

    /// Restores partition clocks exported by [`Pipeline::export_clock`].
    pub fn import_clock(
        &mut self,
        s: &crate::detector::state::PartitionState,
    ) -> Result<(), crate::detector::state::StateError> {
        self.detector.import_clock(s)?;
        if let Some(g) = &s.timeguard {
            self.clocks
                .insert(s.partition, PartitionClock::from_state(g, &self.clock_cfg));
        }
        Ok(())
    }

    /// The whole state: the detector's, with each partition's event-time guard.
    pub fn export_state(&self) -> crate::detector::state::DetectorState {
        let mut s = self.detector.export();
        for p in &mut s.partitions {
            p.timeguard = self.clocks.get(&p.partition).map(PartitionClock::to_state);
        }
        s
    }

    /// Adds state exported by [`Pipeline::export_state`]; returns the records refused.
    pub fn import_state(
        &mut self,
        s: &crate::detector::state::DetectorState,
    ) -> Result<Vec<(String, crate::detector::state::StateError)>, crate::detector::state::StateError>
    {
        let refused = self.detector.import(s)?;
        for p in &s.partitions {
            if let Some(g) = &p.timeguard {
                self.clocks
                    .insert(p.partition, PartitionClock::from_state(g, &self.clock_cfg));
            }
        }
        Ok(refused)
    }
}
