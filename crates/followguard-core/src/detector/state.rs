//! Issue 21: detector state as versioned, serializable values, for a changelog topic
//! (docs/state.md). Export and import of one followee's state (window, open alert, last
//! burst, pending flagged follows, newcomer channel), of a partition's clock, of the
//! instance-scoped maps (moderation dedup, lockstep) and of a whole detector; and the
//! dirty-followee set the service logs after each batch.
//!
//! Deterministic: lists are sorted by key, floats are stored as their bit patterns (a JSON
//! round trip is exact), nothing depends on hash-map order or slot numbers (import
//! re-derives slots). Import validates and never panics: a record of another version or
//! with a malformed field is a [`StateError`].

use super::clock::PartClock;
use super::lifecycle::OpenAlert;
pub use super::lockstep::{LinkState, LockstepKey, LockstepState, LockstepValue};
use super::Detector;
use crate::age::AGE_BINS;
use crate::alert::{AlertKind, ReasonCount};
use crate::expiry::ExpiryIndex;
use crate::features::REASON_CODES;
use crate::newcomer::{NewcomerChannel, NewcomerState};
use crate::window::{FolloweeId, FolloweeWindow, Ring};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Version of the serialized state; a record of another version is refused.
pub const STATE_VERSION: u32 = 1;

/// Why a state record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state version {0} (this build reads {STATE_VERSION})")]
    Version(u32),
    #[error("malformed state: {0}")]
    Malformed(&'static str),
    #[error("undecodable state: {0}")]
    Decode(String),
    #[error("the followee table is full")]
    Full,
}

/// A followee's sliding window (see `window::FolloweeWindow`), floats as bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    pub short_follows: Vec<u16>,
    pub short_suspicious: Vec<u16>,
    pub long_follows: Vec<u32>,
    pub long_suspicious: Vec<u16>,
    pub hist: Vec<u8>,
    pub base_follows_bits: u32,
    pub base_suspicious_bits: u32,
    pub history: u16,
    pub last_seen_s: u32,
    pub frozen: bool,
}

/// An open alert (see `lifecycle::OpenAlert`), floats as bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlertState {
    pub alert_id: String,
    pub link_key: u64,
    pub kind: String,
    pub burst_start_ms: i64,
    pub last_hot_ms: i64,
    pub last_update_ms: i64,
    pub last_reported_suspicious: u32,
    pub peak_excess_bits: u32,
    pub flagged: u32,
    pub score_sum_bits: u64,
    pub reasons: Vec<(String, u32)>,
    pub sample: Vec<String>,
    pub campaign_id: Option<String>,
    pub campaign_followees: u32,
    pub campaign_reported: u32,
    pub withheld_too_new: u32,
    pub newcomer_batch: u32,
    /// Issue #19: bytes of the sample so far and the ids left out of it.
    #[serde(default)]
    pub sample_bytes: usize,
    #[serde(default)]
    pub samples_truncated: u32,
    /// The followee's id as the alert names it (issue #19: a long id is keyed by its
    /// digest in the table, never in the records); absent = the state's own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followee_id: Option<String>,
}

/// A flagged follow remembered before an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingState {
    pub follower_id: String,
    pub event_id: String,
    pub prob_bits: u32,
    pub ts_ms: i64,
    /// (reason code, contribution bits).
    pub reasons: Vec<(String, u32)>,
}

/// Everything the detector keeps about one followee: the changelog value of key
/// `f/<followee id>`. `window` is `None` for a followee no longer tracked whose pending
/// follows or last burst are still remembered (they outlive an idle eviction); such a
/// state has no `partition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolloweeState {
    pub v: u32,
    pub followee_id: String,
    pub partition: Option<i32>,
    pub window: Option<WindowState>,
    pub open: Option<OpenAlertState>,
    /// Burst start and resolve time of the last resolved alert.
    pub last_burst: Option<(i64, i64)>,
    pub pending: Vec<PendingState>,
    pub newcomer: Option<NewcomerState>,
}

/// A partition's event-time clock: the changelog value of key `p/<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub v: u32,
    pub partition: i32,
    pub max_ts: i64,
    pub next_sweep_ms: i64,
    /// The pipeline's event-time guard of the partition (issue #19), when a `Pipeline`
    /// exported it.
    #[serde(default)]
    pub timeguard: Option<crate::timeguard::TimeguardState>,
}

/// The instance-scoped maps: moderation de-duplication and lockstep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedState {
    pub v: u32,
    /// (follower key, last moderation record time), sorted.
    pub moderation: Vec<(u64, i64)>,
    pub lockstep: LockstepState,
}

/// One lockstep key's change (the changelog value of key `k/...`): its value now, or
/// `None` once it is no longer held (a tombstone, e.g. pruned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockstepChange {
    pub v: u32,
    /// The writer's order of the change, set by the changelog writer: a restore keeps,
    /// per key, the change of the highest order, and applies it only when it is not
    /// older than the whole lockstep copy it imported (0 here).
    #[serde(default)]
    pub n: u64,
    pub key: LockstepKey,
    pub value: Option<LockstepValue>,
}

/// One moderation dedup entry: the changelog value of key `m/<follower key, hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationEntry {
    pub v: u32,
    pub follower_key: u64,
    /// `None`: no longer held.
    pub last_ms: Option<i64>,
}

/// A whole detector's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorState {
    pub v: u32,
    pub partitions: Vec<PartitionState>,
    /// Sorted by followee id.
    pub followees: Vec<FolloweeState>,
    pub shared: SharedState,
}

/// One partition's followees and clock (a partition snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionExport {
    pub clock: Option<PartitionState>,
    /// Sorted by followee id.
    pub followees: Vec<FolloweeState>,
}

macro_rules! codec {
    ($t:ty) => {
        impl $t {
            /// The JSON bytes of this value (deterministic).
            pub fn to_bytes(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap_or_default()
            }

            /// Decodes and checks the version; never panics.
            pub fn from_bytes(b: &[u8]) -> Result<Self, StateError> {
                let s: Self =
                    serde_json::from_slice(b).map_err(|e| StateError::Decode(e.to_string()))?;
                if s.v != STATE_VERSION {
                    return Err(StateError::Version(s.v));
                }
                Ok(s)
            }
        }
    };
}
codec!(FolloweeState);
codec!(PartitionState);
codec!(SharedState);
codec!(ModerationEntry);
codec!(LockstepChange);
codec!(DetectorState);

/// `code` as the model's own `&'static str` (the codes in `features::REASON_CODES`, or
/// the empty filler); any other code becomes `unknown`, as `Reason::code` names one.
pub fn static_reason_code(code: &str) -> &'static str {
    if code.is_empty() {
        return "";
    }
    REASON_CODES
        .iter()
        .flatten()
        .copied()
        .find(|&c| c == code)
        .unwrap_or("unknown")
}

fn window_state(w: &FolloweeWindow) -> WindowState {
    let (sf, ss) = w.short.parts();
    let (lf, ls) = w.long.parts();
    WindowState {
        short_follows: sf.to_vec(),
        short_suspicious: ss.to_vec(),
        long_follows: lf.to_vec(),
        long_suspicious: ls.to_vec(),
        hist: w.hist.to_vec(),
        base_follows_bits: w.base_follows.to_bits(),
        base_suspicious_bits: w.base_suspicious.to_bits(),
        history: w.history,
        last_seen_s: w.last_seen_s,
        frozen: w.frozen,
    }
}

fn window_from(s: &WindowState, partition: i32) -> Result<FolloweeWindow, StateError> {
    let bad = |what| StateError::Malformed(what);
    let hist: [u8; AGE_BINS] = s.hist.as_slice().try_into().map_err(|_| bad("hist"))?;
    Ok(FolloweeWindow {
        short: Ring::from_parts(
            s.short_follows
                .as_slice()
                .try_into()
                .map_err(|_| bad("short ring"))?,
            s.short_suspicious
                .as_slice()
                .try_into()
                .map_err(|_| bad("short ring"))?,
        ),
        long: Ring::from_parts(
            s.long_follows
                .as_slice()
                .try_into()
                .map_err(|_| bad("long ring"))?,
            s.long_suspicious
                .as_slice()
                .try_into()
                .map_err(|_| bad("long ring"))?,
        ),
        hist,
        base_follows: f32::from_bits(s.base_follows_bits),
        base_suspicious: f32::from_bits(s.base_suspicious_bits),
        history: s.history,
        partition,
        last_seen_s: s.last_seen_s,
        frozen: s.frozen,
    })
}

fn open_state(a: &OpenAlert) -> OpenAlertState {
    OpenAlertState {
        alert_id: a.alert_id.clone(),
        link_key: a.link_key,
        kind: a.kind.as_str().to_owned(),
        burst_start_ms: a.burst_start_ms,
        last_hot_ms: a.last_hot_ms,
        last_update_ms: a.last_update_ms,
        last_reported_suspicious: a.last_reported_suspicious,
        peak_excess_bits: a.peak_excess.to_bits(),
        flagged: a.flagged,
        score_sum_bits: a.score_sum.to_bits(),
        reasons: a
            .reasons
            .iter()
            .map(|r| (r.code.to_owned(), r.count))
            .collect(),
        sample: a.sample.clone(),
        campaign_id: a.campaign_id.clone(),
        campaign_followees: a.campaign_followees,
        campaign_reported: a.campaign_reported,
        withheld_too_new: a.withheld_too_new,
        newcomer_batch: a.newcomer_batch,
        sample_bytes: a.sample_bytes,
        samples_truncated: a.samples_truncated,
        followee_id: Some(a.followee_id.clone()),
    }
}

fn open_from(s: &OpenAlertState, followee_id: &str) -> Result<OpenAlert, StateError> {
    let kind = AlertKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s.kind)
        .ok_or(StateError::Malformed("alert kind"))?;
    Ok(OpenAlert {
        alert_id: s.alert_id.clone(),
        link_key: s.link_key,
        followee_id: s.followee_id.as_deref().unwrap_or(followee_id).to_owned(),
        kind,
        burst_start_ms: s.burst_start_ms,
        last_hot_ms: s.last_hot_ms,
        last_update_ms: s.last_update_ms,
        last_reported_suspicious: s.last_reported_suspicious,
        peak_excess: f32::from_bits(s.peak_excess_bits),
        flagged: s.flagged,
        score_sum: f64::from_bits(s.score_sum_bits),
        reasons: s
            .reasons
            .iter()
            .map(|(c, n)| ReasonCount {
                code: static_reason_code(c),
                count: *n,
            })
            .collect(),
        sample: s.sample.clone(),
        campaign_id: s.campaign_id.clone(),
        campaign_followees: s.campaign_followees,
        campaign_reported: s.campaign_reported,
        withheld_too_new: s.withheld_too_new,
        newcomer_batch: s.newcomer_batch,
        sample_bytes: s.sample_bytes,
        samples_truncated: s.samples_truncated,
    })
}

impl Detector {
    /// Starts (or stops) recording which followees change (`take_dirty`). Off by default:
    /// drivers without a changelog pay nothing.
    pub fn track_dirty(&mut self, on: bool) {
        self.dirty = on.then(HashMap::new);
        self.dirty_moderation = on.then(HashMap::new);
        self.lockstep.track_dirty(on);
    }

    /// Lockstep keys (campaign links) changed since the last call, sorted by key, each
    /// with its value now (`None`: a tombstone) and the partition of the change (the
    /// followee whose alert noted, resolved or relinked it, or the partition whose sweep
    /// pruned it). `n` is 0: the writer sets its order.
    pub fn take_dirty_lockstep(&mut self) -> Vec<(LockstepChange, i32)> {
        self.lockstep
            .take_dirty()
            .into_iter()
            .map(|(key, p)| {
                let c = LockstepChange {
                    v: STATE_VERSION,
                    n: 0,
                    key,
                    value: self.lockstep.export_key(key),
                };
                (c, p)
            })
            .collect()
    }

    /// Applies one lockstep change (sets or removes its key). A value of another kind
    /// than its key is an error.
    pub fn import_lockstep_change(&mut self, c: &LockstepChange) -> Result<(), StateError> {
        if c.v != STATE_VERSION {
            return Err(StateError::Version(c.v));
        }
        let followees = &self.followees;
        if self
            .lockstep
            .import_key(c.key, c.value.as_ref(), |id| followees.find(id))
        {
            Ok(())
        } else {
            Err(StateError::Malformed("lockstep value of another kind"))
        }
    }

    /// Moderation dedup entries changed since the last call, sorted by follower key:
    /// `(key, Some(last record time))`, or `None` for one no longer held (a tombstone).
    /// Each with the partition of the alert that last moderated the follower.
    pub fn take_dirty_moderation(&mut self) -> Vec<(ModerationEntry, i32)> {
        let Some(d) = self.dirty_moderation.as_mut() else {
            return Vec::new();
        };
        let mut keys: Vec<(u64, i32)> = d.drain().collect();
        keys.sort_unstable();
        keys.into_iter()
            .map(|(k, p)| (self.moderation_entry(k), p))
            .collect()
    }

    /// The moderation dedup entry of `follower_key` as held now (`last_ms: None`: not
    /// held, a tombstone). Snapshots write the entries a partition logged with it.
    pub fn moderation_entry(&self, follower_key: u64) -> ModerationEntry {
        ModerationEntry {
            v: STATE_VERSION,
            follower_key,
            last_ms: self.moderated.get(follower_key),
        }
    }

    /// Restores one moderation dedup entry (a `None` time is a tombstone: nothing to do,
    /// the entry expires by itself).
    pub fn import_moderation(&mut self, e: &ModerationEntry) -> Result<(), StateError> {
        if e.v != STATE_VERSION {
            return Err(StateError::Version(e.v));
        }
        if let Some(t) = e.last_ms {
            self.moderated.import(e.follower_key, t);
        }
        Ok(())
    }

    /// Keys changed since the last `take_dirty*` calls (followees, moderation entries,
    /// lockstep keys): what the next changelog flush would write, without taking it (the
    /// serve record cache's byte bound).
    pub fn dirty_len(&self) -> usize {
        self.dirty.as_ref().map_or(0, HashMap::len)
            + self.dirty_moderation.as_ref().map_or(0, HashMap::len)
            + self.lockstep.dirty_len()
    }

    /// Followees whose state changed since the last call, with the partition they were
    /// last seen on (where their changelog record goes), sorted: export each with
    /// [`Detector::export_followee`] (`None` → a tombstone).
    pub fn take_dirty(&mut self) -> Vec<(FolloweeId, i32)> {
        let Some(d) = self.dirty.as_mut() else {
            return Vec::new();
        };
        let mut v: Vec<(FolloweeId, i32)> = d.drain().collect();
        v.sort_unstable();
        v
    }

    pub(super) fn note_dirty(&mut self, id: &str, partition: i32) {
        if let Some(d) = self.dirty.as_mut() {
            d.insert(FolloweeId::new(id), partition);
        }
    }

    pub(super) fn note_dirty_slot(&mut self, slot: u32) {
        if let (Some(d), Some(id), Some(w)) = (
            self.dirty.as_mut(),
            self.followees.id_of(slot),
            self.followees.get(slot),
        ) {
            d.insert(id.clone(), w.partition);
        }
    }

    /// Everything kept about followee `id`, or `None` when nothing is (a tombstone).
    pub fn export_followee(&self, id: &FolloweeId) -> Option<FolloweeState> {
        let slot = self.followees.find_id(id);
        let win = slot.and_then(|s| self.followees.get(s));
        let open = slot.and_then(|s| self.open.get(&u64::from(s)));
        let newcomer = slot.and_then(|s| self.newcomers.get(&s));
        let pending: Vec<PendingState> = self
            .pending
            .export(id)
            .into_iter()
            .map(
                |(follower_id, event_id, prob_bits, ts_ms, r)| PendingState {
                    follower_id,
                    event_id,
                    prob_bits,
                    ts_ms,
                    reasons: r.iter().map(|&(c, x)| (c.to_owned(), x)).collect(),
                },
            )
            .collect();
        let last_burst = self.last_burst.get(id).copied();
        if win.is_none() && pending.is_empty() && last_burst.is_none() {
            return None;
        }
        Some(FolloweeState {
            v: STATE_VERSION,
            followee_id: id.to_string(),
            partition: win.map(|w| w.partition),
            window: win.map(window_state),
            open: open.map(open_state),
            last_burst,
            pending,
            newcomer: newcomer.map(NewcomerChannel::to_state),
        })
    }

    /// Restores followee state `s`, replacing whatever this detector held for it.
    /// Validated first: on error nothing has changed.
    pub fn import_followee(&mut self, s: &FolloweeState) -> Result<(), StateError> {
        if s.v != STATE_VERSION {
            return Err(StateError::Version(s.v));
        }
        let window = match (&s.window, s.partition) {
            (Some(w), Some(p)) => Some(window_from(w, p)?),
            (None, _) => None,
            (Some(_), None) => return Err(StateError::Malformed("window without partition")),
        };
        let open = match (&s.open, &window) {
            (Some(a), Some(_)) => Some(open_from(a, &s.followee_id)?),
            (None, _) => None,
            (Some(_), None) => return Err(StateError::Malformed("open alert without window")),
        };
        let newcomer = match &s.newcomer {
            Some(n) => {
                Some(NewcomerChannel::from_state(n).ok_or(StateError::Malformed("newcomer"))?)
            }
            None => None,
        };
        let id = FolloweeId::new(&s.followee_id);
        // Replace: forget the old state first.
        if let Some(slot) = self.followees.find_id(&id) {
            self.open.remove(&u64::from(slot));
            self.newcomers.remove(&slot);
            self.followees.remove(slot);
        }
        if let Some(w) = window {
            let (p, seen_ms) = (w.partition, i64::from(w.last_seen_s) * 1000);
            let slot = self
                .followees
                .put(&s.followee_id, w)
                .ok_or(StateError::Full)?;
            let width = self.cfg.sweep_interval_ms;
            self.idle_due
                .entry(p)
                .or_insert_with(|| ExpiryIndex::new(width))
                .file(slot, seen_ms);
            if let Some(a) = open {
                self.lockstep.set_slot(a.link_key, slot);
                self.open.insert(u64::from(slot), a);
            }
            if let Some(n) = newcomer {
                self.newcomers.insert(slot, n);
            }
        }
        let pending: Vec<_> = s
            .pending
            .iter()
            .map(|f| {
                let r: [(&'static str, u32); 3] = std::array::from_fn(|i| {
                    f.reasons
                        .get(i)
                        .map_or(("", 0), |(c, x)| (static_reason_code(c), *x))
                });
                (
                    f.follower_id.clone(),
                    f.event_id.clone(),
                    f.prob_bits,
                    f.ts_ms,
                    r,
                )
            })
            .collect();
        self.pending.import(id.clone(), &pending);
        match s.last_burst {
            Some(b) => self.last_burst.insert(id, b),
            None => self.last_burst.remove(&id),
        };
        Ok(())
    }

    /// The open alerts of `partition` as `update` records at its watermark, sorted by id:
    /// what a restored instance hands to its webhook for resending (never output).
    pub fn open_alert_records(&self, partition: i32) -> Vec<crate::alert::Alert> {
        let mut keys: Vec<u64> = self
            .open
            .keys()
            .copied()
            .filter(|&k| self.win(k).is_some_and(|w| w.partition == partition))
            .collect();
        keys.sort_by(|a, b| self.open[a].alert_id.cmp(&self.open[b].alert_id));
        keys.into_iter()
            .filter_map(|k| {
                let t = self
                    .watermark(partition)
                    .unwrap_or(self.open[&k].last_hot_ms);
                let eval = super::triggers::evaluate(&self.cfg, self.win(k), t);
                self.build_alert(k, crate::alert::AlertStatus::Update, t, &eval)
            })
            .collect()
    }

    /// Partition `p`'s clock.
    pub fn export_clock(&self, partition: i32) -> Option<PartitionState> {
        self.clocks.get(&partition).map(|c| {
            let (max_ts, next_sweep_ms) = c.parts();
            PartitionState {
                v: STATE_VERSION,
                partition,
                max_ts,
                next_sweep_ms,
                timeguard: None,
            }
        })
    }

    pub fn import_clock(&mut self, s: &PartitionState) -> Result<(), StateError> {
        if s.v != STATE_VERSION {
            return Err(StateError::Version(s.v));
        }
        self.clocks.insert(
            s.partition,
            PartClock::from_parts(s.max_ts, s.next_sweep_ms),
        );
        Ok(())
    }

    /// Partition `p`'s clock and tracked followees (a partition snapshot).
    pub fn export_partition(&self, partition: i32) -> PartitionExport {
        PartitionExport {
            clock: self.export_clock(partition),
            followees: self
                .partition_followee_ids(partition)
                .iter()
                .filter_map(|id| self.export_followee(id))
                .collect(),
        }
    }

    /// Partition `p`'s tracked followee ids, sorted (the order of
    /// [`Detector::export_partition`]), for a caller exporting them one at a time with
    /// [`Detector::export_followee`] (a snapshot of millions of followees).
    pub fn partition_followee_ids(&self, partition: i32) -> Vec<FolloweeId> {
        let mut ids: Vec<FolloweeId> = self
            .followees
            .iter()
            .filter(|(_, _, w)| w.partition == partition)
            .map(|(_, id, _)| id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// [`Detector::partition_followee_ids`] (same ids, same order) with `tick` called at
    /// least every few thousand steps of the walk and of the sort: a caller that must
    /// do something regularly meanwhile (keep a consumer polled) at millions of
    /// followees, where one uninterrupted collect-and-sort takes seconds unoptimised.
    /// Sorted as runs of 32,768 ids, then merged pairwise ([`sorted_ticking`]).
    pub fn partition_followee_ids_ticking(
        &self,
        partition: i32,
        tick: &mut dyn FnMut(),
    ) -> Vec<FolloweeId> {
        let mut ids = Vec::new();
        for (i, (_, id, w)) in self.followees.iter().enumerate() {
            if w.partition == partition {
                ids.push(id.clone());
            }
            if i % TICK_STEP == TICK_STEP - 1 {
                tick();
            }
        }
        sorted_ticking(ids, 1 << 15, tick)
    }

    /// The moderation dedup and lockstep maps.
    pub fn export_shared(&self) -> SharedState {
        SharedState {
            v: STATE_VERSION,
            moderation: self.moderated.export(),
            lockstep: self.lockstep.export(),
        }
    }

    /// Adds the moderation dedup and lockstep entries of `s`.
    pub fn import_shared(&mut self, s: &SharedState) -> Result<(), StateError> {
        if s.v != STATE_VERSION {
            return Err(StateError::Version(s.v));
        }
        for &(fk, t) in &s.moderation {
            self.moderated.import(fk, t);
        }
        let followees = &self.followees;
        self.lockstep.import(&s.lockstep, |id| followees.find(id));
        Ok(())
    }

    /// The whole detector's state.
    pub fn export(&self) -> DetectorState {
        let mut ids: Vec<&FolloweeId> = self
            .followees
            .iter()
            .map(|(_, id, _)| id)
            .chain(self.pending.followees())
            .chain(self.last_burst.keys())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut parts: Vec<i32> = self.clocks.keys().copied().collect();
        parts.sort_unstable();
        DetectorState {
            v: STATE_VERSION,
            partitions: parts
                .into_iter()
                .filter_map(|p| self.export_clock(p))
                .collect(),
            followees: ids
                .into_iter()
                .filter_map(|id| self.export_followee(id))
                .collect(),
            shared: self.export_shared(),
        }
    }

    /// Adds state `s` to this detector (normally a fresh one with the configuration the
    /// state was exported under). Records that fail validation are skipped and returned
    /// with their error; the rest is imported.
    pub fn import(&mut self, s: &DetectorState) -> Result<Vec<(String, StateError)>, StateError> {
        if s.v != STATE_VERSION {
            return Err(StateError::Version(s.v));
        }
        let mut refused = Vec::new();
        for p in &s.partitions {
            if let Err(e) = self.import_clock(p) {
                refused.push((format!("p/{}", p.partition), e));
            }
        }
        for f in &s.followees {
            if let Err(e) = self.import_followee(f) {
                refused.push((format!("f/{}", f.followee_id), e));
            }
        }
        self.import_shared(&s.shared)?;
        Ok(refused)
    }
}

/// Steps of a long walk between two calls of the caller's `tick`.
const TICK_STEP: usize = 4096;

/// `v` sorted, `tick` called between steps: runs of `run` items sorted one at a time,
/// then merged pairwise, `tick` every few thousand items merged (no uninterrupted pass
/// over more than `run` items but the merges' item-by-item steps).
pub fn sorted_ticking<T: Ord>(v: Vec<T>, run: usize, tick: &mut dyn FnMut()) -> Vec<T> {
    let run = run.max(1);
    let mut runs: Vec<Vec<T>> = Vec::with_capacity(v.len().div_ceil(run));
    let mut it = v.into_iter().peekable();
    while it.peek().is_some() {
        let mut r: Vec<T> = it.by_ref().take(run).collect();
        r.sort_unstable();
        runs.push(r);
        tick();
    }
    while runs.len() > 1 {
        let mut next = Vec::with_capacity(runs.len().div_ceil(2));
        let mut pairs = runs.into_iter();
        while let Some(a) = pairs.next() {
            let Some(b) = pairs.next() else {
                next.push(a);
                break;
            };
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
            loop {
                let take_a = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) => x <= y,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                out.extend(if take_a { a.next() } else { b.next() });
                if out.len() % TICK_STEP == 0 {
                    tick();
                }
            }
            next.push(out);
        }
        runs = next;
    }
    runs.pop().unwrap_or_default()
}

#[cfg(test)]
mod ticking_tests {
    use super::sorted_ticking;

    #[test]
    fn sorted_ticking_sorts_as_one_sort_does_and_ticks_between_runs_and_merges() {
        // A scrambled sequence with repeats; runs of 7 (some uneven, one left over).
        let v: Vec<u64> = (0..50_000u64).map(|i| (i * 7919) % 10_007).collect();
        let mut want = v.clone();
        want.sort_unstable();
        let mut ticks = 0;
        assert_eq!(sorted_ticking(v.clone(), 7, &mut || ticks += 1), want);
        // One per run (7,143 runs), plus the merges' (several passes of 50,000 items).
        assert!(ticks > 7_143 + 12, "ticks {ticks}");
        for run in [1, 3, 49_999, 50_000, 1 << 20] {
            assert_eq!(
                sorted_ticking(v.clone(), run, &mut || {}),
                want,
                "run {run}"
            );
        }
        assert!(sorted_ticking(Vec::<u64>::new(), 4, &mut || {}).is_empty());
    }
}
