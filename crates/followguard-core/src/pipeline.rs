//! The one pipeline function shared by `serve` (Kafka) and `replay` (files): raw bytes
//! in, [`Outcome`] out (score, flags, alert and moderation records).
//!
//! Pure: no I/O, no clock, no tokio, no prometheus. Drivers supply the event bytes, a
//! fallback event time (the Kafka record timestamp) and the source partition; they route
//! the outcome to sinks and metrics. Idle-state eviction runs inside [`Pipeline::process`]
//! by event-time watermark, so drivers need no timers.

use crate::alert::AlertStatus;
use crate::decisions::{Decision, DecisionBook, DecisionConfig};
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
    /// Issue 24: how long moderators' verdicts hold and how many are kept.
    pub decisions: DecisionConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            detector: DetectorConfig::default(),
            cache_capacity: 1 << 18,
            clock: ClockConfig::default(),
            max_id_bytes: crate::bounds::DEFAULT_MAX_ID_BYTES,
            decisions: DecisionConfig::default(),
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
    /// `score.prob >= model.threshold()`: the per-follower flag (moderation queue,
    /// flagged-follower metrics, evidence pages).
    pub suspicious: bool,
    /// `score.prob >= model.detection_threshold()` (issue 22): what the burst detector
    /// counts in the followee's windows (a lower operating point than the flag).
    pub counted: bool,
    pub cache_hit: bool,
    /// Alert records (open / update / resolved) caused by this input, possibly about
    /// other followees (resolutions found by the watermark sweep).
    pub alerts: Vec<Alert>,
    /// Moderation records for flagged followers of alerted followees.
    pub moderation: Vec<ModerationRecord>,
    /// Issue #20: the follower scored suspicious but was too new to judge (minutes old
    /// at the follow); the detector did not count it as suspicious.
    pub judgment_withheld: bool,
    /// Issue 21: flagged follows of open alerts for the follower-keyed link stage
    /// (collected only after `Detector::emit_links(true)`).
    pub links: Vec<crate::links::FlaggedLink>,
    /// Issue 24: what a moderator's verdict changed about this event.
    pub decision: DecisionEffect,
    /// Issue 24: alert and moderation records not emitted because a `false_alert`
    /// verdict suppressed their burst.
    pub suppressed_records: u32,
    /// Issue 24: the shadow model's probability for this follower (`--shadow-model`):
    /// reported, never acted on.
    pub shadow_prob: Option<f32>,
}

/// Issue 24: a moderator's verdict applied to one event (`decisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecisionEffect {
    #[default]
    None,
    /// The follower scored suspicious but a moderator cleared it: not flagged.
    Cleared,
    /// The follower scored below the threshold but a moderator confirmed it as bought:
    /// counted as suspicious (its campaign keeps its links).
    Confirmed,
}

impl DecisionEffect {
    pub fn name(self) -> &'static str {
        match self {
            DecisionEffect::None => "none",
            DecisionEffect::Cleared => "cleared_follower",
            DecisionEffect::Confirmed => "confirmed_follower",
        }
    }
}

impl Outcome<'_> {
    /// A follow whose follower scored at or above the flag threshold (a suspicious
    /// account's unfollow is not a bought follow).
    pub fn suspicious_follow(&self) -> bool {
        self.suspicious && self.kind == EventType::Follow
    }

    /// A follow the burst detector counts as suspicious (at the detection threshold).
    pub fn counted_follow(&self) -> bool {
        self.counted && self.kind == EventType::Follow
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
    /// The model's per-follower flag threshold and the detector's operating point.
    threshold: f32,
    detection_threshold: f32,
    /// Issue #19 hook: per-partition event-time clocks (see `timeguard`).
    clocks: HashMap<i32, PartitionClock>,
    clock_cfg: ClockConfig,
    max_id_bytes: usize,
    /// Issue 24: moderators' verdicts in force.
    decisions: DecisionBook,
    /// Issue 24: a model scored beside the live one, for comparison only.
    shadow: Option<Arc<Model>>,
}

impl Pipeline {
    pub fn new(model: Arc<Model>, cfg: PipelineConfig) -> Self {
        let mut dcfg = cfg.detector;
        dcfg.model_version = model.version().to_string();
        dcfg.flag_threshold = model.threshold();
        Pipeline {
            threshold: model.threshold(),
            detection_threshold: model.detection_threshold(),
            cache: ScoreCache::new(cfg.cache_capacity),
            detector: Detector::new(dcfg),
            clocks: HashMap::new(),
            clock_cfg: cfg.clock,
            max_id_bytes: cfg.max_id_bytes,
            decisions: DecisionBook::new(cfg.decisions),
            shadow: None,
            model,
        }
    }

    /// Issue 24: scores every follower with `shadow` too (its probability in each
    /// outcome and on moderation records); it never flags, alerts or moderates.
    pub fn with_shadow(mut self, shadow: Arc<Model>) -> Self {
        self.shadow = Some(shadow);
        self
    }

    /// Replaces the shadow model (a live reload, issue 24).
    pub fn set_shadow(&mut self, shadow: Arc<Model>) {
        self.shadow = Some(shadow);
    }

    /// The shadow model, if one runs.
    pub fn shadow(&self) -> Option<&Model> {
        self.shadow.as_deref()
    }

    /// Issue 24: swaps the model (and its operating threshold, or `threshold` when
    /// given) without touching detector state: windows, open alerts, verdicts and
    /// partition clocks carry on. The score cache is emptied (its scores are the old
    /// model's). Records from here on name the new model's version.
    pub fn replace_model(&mut self, model: Arc<Model>, threshold: Option<f32>) {
        self.threshold = threshold.unwrap_or(model.threshold());
        // Issue 22: the detector's operating point never sits above the flag.
        self.detection_threshold = model.detection_threshold().min(self.threshold);
        self.detector.set_flag_threshold(self.threshold);
        self.cache = ScoreCache::new(self.cache.capacity());
        self.detector.set_model_version(model.version());
        self.model = model;
    }

    /// Issue 24: changes a detector trigger threshold live (see `Detector::retune`);
    /// windows and open alerts are kept. False for an unknown name or a bad value.
    pub fn retune(&mut self, name: &str, value: f32) -> bool {
        self.detector.retune(name, value)
    }

    /// The operating threshold in force (the model's, or a live override).
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Issue 24: applies a moderator's verdict to what is flagged from now on.
    pub fn apply_decision(&mut self, d: &Decision) {
        self.decisions.apply(d);
    }

    /// Issue 24: verdicts held (cleared followers, confirmed followers, suppressed
    /// followees).
    pub fn decision_sizes(&self) -> (usize, usize, usize) {
        self.decisions.sizes()
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
        let mut suspicious = score.prob >= self.threshold;
        let mut counted = score.prob >= self.detection_threshold;
        // Issue 24: a moderator's verdict on this follower overrides its score: a cleared
        // follower is neither flagged nor counted, a confirmed one is counted as bought.
        let decision = if counted && self.decisions.cleared(&ev.follower.id, ts) {
            suspicious = false;
            counted = false;
            DecisionEffect::Cleared
        } else if !suspicious && self.decisions.confirmed(&ev.follower.id, ts) {
            suspicious = true;
            counted = true;
            DecisionEffect::Confirmed
        } else {
            DecisionEffect::None
        };
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
            mut alerts,
            mut moderation,
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
            suspicious: counted && follow,
            follower_created_s: ev.follower.created_at_s,
            reasons,
        });
        let mut links = self.detector.take_links();
        let suppressed_records = if alerts.is_empty() && moderation.is_empty() {
            0
        } else {
            self.apply_verdicts(&mut alerts, &mut moderation, placed_ts)
        };
        if !links.is_empty() {
            // Issue 21: a suppressed burst links no campaign either.
            links.retain(|l| !self.decisions.muted(&l.alert_id, placed_ts, false));
        }
        // Issue 24: the shadow model's view of the same snapshot, at the same instant
        // as the live score (the event day's midpoint), uncached.
        let shadow_prob = self
            .shadow
            .as_ref()
            .map(|m| m.score(&ev.follower, crate::model::score_time(ts)).prob);
        if let Some(p) = shadow_prob {
            for m in moderation
                .iter_mut()
                .filter(|m| m.follower_id == *ev.follower.id)
            {
                m.shadow_score = Some(p);
            }
        }
        Ok(Outcome {
            shadow_prob,
            decision,
            suppressed_records,
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
            counted,
            cache_hit,
            alerts,
            moderation,
            links,
            judgment_withheld: withheld > 0,
        })
    }

    /// Issue 24: drops the records of a burst a `false_alert` verdict suppressed (its
    /// open, updates, resolution and moderation records) and remembers the flagged
    /// followers of the others (for a `confirmed` verdict on the alert). Returns how many
    /// records were dropped.
    fn apply_verdicts(
        &mut self,
        alerts: &mut Vec<Alert>,
        moderation: &mut Vec<ModerationRecord>,
        ts: i64,
    ) -> u32 {
        let before = alerts.len() + moderation.len();
        let book = &mut self.decisions;
        for a in alerts.iter() {
            if a.status == AlertStatus::Open {
                book.suppress_open(&a.alert_id, &a.followee_id, ts);
            }
        }
        alerts.retain(|a| !book.muted(&a.alert_id, ts, a.status == AlertStatus::Resolved));
        moderation.retain(|m| !book.muted(&m.alert_id, ts, false));
        for m in moderation.iter() {
            book.note_flagged(&m.alert_id, &m.followee_id, &m.follower_id);
        }
        u32::try_from(before - alerts.len() - moderation.len()).unwrap_or(u32::MAX)
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
