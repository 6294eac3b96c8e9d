//! Bounded per-alert evidence for the moderator web view (`web`): which followers an
//! alerted account gained, in follow order, with their account-creation dates, scores and
//! reasons, plus the alert's latest record. Fed from pipeline [`Outcome`]s; pure (no I/O,
//! no clock, no locking — the driver wraps it in a mutex).
//!
//! Memory is bounded by three numbers ([`EvidenceConfig`]):
//! - two global rings of recent follows (any followee), from which an alert's pre-open
//!   history is gathered when it opens — so organic followers before the burst appear on
//!   its chart without keeping history per followee: the last `ring_capacity` flagged
//!   follows with names, and the last `organic_capacity` organic follows as anonymous
//!   32-byte points (creation date, time, score), so the organic ring reaches far back;
//! - at most `max_points` followers per alert: when full, every second point is dropped
//!   and later follows are sampled at the doubled stride (an even sample of the whole
//!   alert; each point carries the weight it stands for, so rates stay right);
//! - at most `max_alerts` alerts: the oldest resolved alert is evicted first, then the
//!   oldest open one; its followers go with it.
//!
//! Organic followers are kept anonymous everywhere (no id, name or description): the
//! pages never need their identity, and keeping less about innocent accounts is better.
//! Account-controlled strings are truncated on entry ([`MAX_ID_BYTES`],
//! [`MAX_SCREEN_NAME_BYTES`], [`MAX_DESCRIPTION_BYTES`]; descriptions are kept only for
//! flagged followers), so one point costs at most ~[`POINT_MAX_BYTES`].

use crate::alert::{Alert, AlertStatus};
use crate::event::EventType;
use crate::keys::key_of;
use crate::pipeline::Outcome;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Follower ids longer than this are cut (ids are short numeric strings in practice).
pub const MAX_ID_BYTES: usize = 40;
/// Twitter screen names are at most 15 characters; leave room for odd input.
pub const MAX_SCREEN_NAME_BYTES: usize = 64;
/// Descriptions are cut to this many bytes (at a character boundary).
pub const MAX_DESCRIPTION_BYTES: usize = 200;
/// Upper bound of one point's memory: the struct plus its text at the caps (one shared
/// allocation: two reference counts and the bytes).
pub const POINT_MAX_BYTES: usize = std::mem::size_of::<FollowerPoint>()
    + 16
    + MAX_ID_BYTES
    + MAX_SCREEN_NAME_BYTES
    + MAX_DESCRIPTION_BYTES;
/// Alert records kept per alert (open, updates, resolved) for the rate-vs-baseline chart.
pub const MAX_RECORDS: usize = 64;

/// Bounds of the store (see the module docs for what each one limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceConfig {
    pub ring_capacity: usize,
    pub organic_capacity: usize,
    pub max_points: usize,
    pub max_alerts: usize,
}

impl Default for EvidenceConfig {
    /// Worst case (16 384 + 200 × 800) × `POINT_MAX_BYTES` (448 B) + 262 144 × 32 B ≈
    /// 87 MB; with real profile text (short names) well under half of that.
    fn default() -> Self {
        EvidenceConfig {
            ring_capacity: 16_384,
            organic_capacity: 262_144,
            max_points: 800,
            max_alerts: 200,
        }
    }
}

/// One follow of an alerted account. Serialised with `follower_id`, `screen_name` and
/// `description` fields (empty for organic followers).
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerPoint {
    /// Id, screen name and description of a flagged follower; none for organic
    /// (unflagged) followers.
    text: Option<FollowerText>,
    /// Account creation, epoch seconds.
    pub created_at_s: i64,
    pub event_time_ms: i64,
    pub score: f32,
    pub flagged: bool,
    /// Top reasons of the score (codes with contributions), strongest first.
    pub reasons: [(&'static str, f32); 3],
    /// How many follows this point stands for (grows when the alert's sample is thinned).
    pub weight: u32,
}

/// A flagged follower's id, screen name and description (each truncated on entry) in one
/// allocation, shared by the ring and every alert that shows the follow: a point costs one
/// allocation, and copying it none.
#[derive(Debug, Clone, PartialEq)]
struct FollowerText {
    buf: Arc<str>,
    id_end: u16,
    name_end: u16,
}

impl FollowerText {
    fn new(scratch: &mut String, id: &str, screen_name: &str, description: &str) -> Self {
        scratch.clear();
        push_truncated(scratch, id, MAX_ID_BYTES);
        let id_end = scratch.len();
        push_truncated(scratch, screen_name, MAX_SCREEN_NAME_BYTES);
        let name_end = scratch.len();
        push_truncated(scratch, description, MAX_DESCRIPTION_BYTES);
        FollowerText {
            buf: Arc::from(scratch.as_str()),
            // ≤ MAX_ID_BYTES + MAX_SCREEN_NAME_BYTES, far below u16::MAX.
            id_end: u16::try_from(id_end).unwrap_or(u16::MAX),
            name_end: u16::try_from(name_end).unwrap_or(u16::MAX),
        }
    }

    fn parts(&self) -> (&str, &str, &str) {
        let (id_end, name_end) = (usize::from(self.id_end), usize::from(self.name_end));
        (
            self.buf.get(..id_end).unwrap_or_default(),
            self.buf.get(id_end..name_end).unwrap_or_default(),
            self.buf.get(name_end..).unwrap_or_default(),
        )
    }
}

impl FollowerPoint {
    /// Id, screen name and description (all empty for organic followers).
    fn parts(&self) -> (&str, &str, &str) {
        self.text.as_ref().map_or(("", "", ""), FollowerText::parts)
    }

    /// The follower's id (empty for organic followers).
    pub fn follower_id(&self) -> &str {
        self.parts().0
    }

    /// The follower's screen name (empty for organic followers).
    pub fn screen_name(&self) -> &str {
        self.parts().1
    }

    /// The follower's description (empty for organic followers).
    pub fn description(&self) -> &str {
        self.parts().2
    }
}

impl Serialize for FollowerPoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (id, name, description) = self.parts();
        let mut st = s.serialize_struct("FollowerPoint", 9)?;
        st.serialize_field("follower_id", id)?;
        st.serialize_field("screen_name", name)?;
        st.serialize_field("description", description)?;
        st.serialize_field("created_at_s", &self.created_at_s)?;
        st.serialize_field("event_time_ms", &self.event_time_ms)?;
        st.serialize_field("score", &self.score)?;
        st.serialize_field("flagged", &self.flagged)?;
        st.serialize_field("reasons", &self.reasons)?;
        st.serialize_field("weight", &self.weight)?;
        st.end()
    }
}

/// One alert record's figures over time (for the rate chart's baseline and the log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPoint {
    pub status: AlertStatus,
    pub event_time_ms: i64,
    pub new_followers: u32,
    pub suspicious_count: u32,
    pub baseline_rate_per_hour: f32,
    pub rate_z: f32,
}

/// Everything the evidence page shows about one alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvidence {
    /// The latest record (open, update or resolved) of the alert: status and campaign.
    pub alert: Alert,
    /// The record with the most suspicious followers: the figures worth showing (a
    /// `resolved` record describes the quiet window after the burst).
    pub peak: Alert,
    /// Event time of the first record seen (the open, unless the store started later).
    pub opened_at_ms: i64,
    /// Source partition of the followee (its state moves with the partition).
    pub partition: i32,
    pub records: Vec<RecordPoint>,
    /// Followers in follow order: pre-open history from the ring, then follows since.
    pub followers: Vec<FollowerPoint>,
    /// Current sampling stride (1 = every follow kept).
    pub stride: u32,
    /// Follows seen for this alert (pre-open history included), kept or not.
    pub follows_seen: u64,
    #[serde(skip)]
    seq: u64,
    #[serde(skip)]
    skip: u32,
}

impl AlertEvidence {
    /// Index of the first follower at or after the alert opened (the chart's marker).
    pub fn open_index(&self) -> usize {
        self.followers
            .iter()
            .position(|p| p.event_time_ms >= self.opened_at_ms)
            .unwrap_or(self.followers.len())
    }

    fn push(&mut self, p: FollowerPoint, max_points: usize) {
        self.follows_seen += 1;
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        self.skip = self.stride - 1;
        self.followers.push(FollowerPoint {
            weight: self.stride,
            ..p
        });
        if self.followers.len() > max_points.max(2) {
            self.thin();
        }
    }

    /// Halves the sample: keeps every second point (each now standing for its dropped
    /// neighbour too) and doubles the stride for what follows.
    fn thin(&mut self) {
        let old = std::mem::take(&mut self.followers);
        let mut it = old.into_iter();
        while let Some(mut keep) = it.next() {
            if let Some(drop) = it.next() {
                keep.weight = keep.weight.saturating_add(drop.weight);
            }
            self.followers.push(keep);
        }
        self.stride = self.stride.saturating_mul(2);
        self.skip = self.stride - 1;
    }

    /// Approximate heap and inline bytes held.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.records.capacity() * std::mem::size_of::<RecordPoint>()
            + self.followers.capacity() * std::mem::size_of::<FollowerPoint>()
            + self.followers.iter().map(point_heap).sum::<usize>()
            + alert_heap(&self.alert)
            + alert_heap(&self.peak)
    }
}

/// Bounded store of recent follows and of the alerts' evidence.
#[derive(Debug)]
pub struct EvidenceStore {
    cfg: EvidenceConfig,
    /// Recent flagged follows of any followee, by followee key.
    ring: KeyedRing<FollowerPoint>,
    /// Recent organic follows, anonymous: (created_at_s, event ms, score) by followee key.
    organic: KeyedRing<(i64, i64, f32)>,
    alerts: HashMap<String, AlertEvidence>,
    /// Followee key → id of its alert still collecting followers (not resolved).
    collecting: HashMap<u64, String>,
    seq: u64,
    evicted: u64,
    /// Reused buffer for building a flagged point's text.
    scratch: String,
}

impl Default for EvidenceStore {
    fn default() -> Self {
        EvidenceStore::new(EvidenceConfig::default())
    }
}

impl EvidenceStore {
    pub fn new(cfg: EvidenceConfig) -> Self {
        EvidenceStore {
            cfg,
            ring: KeyedRing::new(cfg.ring_capacity, 1 << 14),
            organic: KeyedRing::new(cfg.organic_capacity, 1 << 16),
            alerts: HashMap::new(),
            collecting: HashMap::new(),
            seq: 0,
            evicted: 0,
            scratch: String::new(),
        }
    }

    pub fn config(&self) -> EvidenceConfig {
        self.cfg
    }

    /// Takes one outcome: its alert records first (an opening alert gathers the
    /// followee's history from the ring, which does not yet hold this event), then the
    /// follow itself (into the ring and into its followee's collecting alert).
    pub fn observe(&mut self, o: &Outcome) {
        self.observe_partition(o, 0);
    }

    /// [`observe`](Self::observe) for an outcome read from source partition `partition`.
    pub fn observe_partition(&mut self, o: &Outcome, partition: i32) {
        for a in &o.alerts {
            self.record_in(a, partition);
        }
        if o.kind != EventType::Follow {
            return;
        }
        let key = key_of(&o.followee_id);
        let point = if o.suspicious {
            FollowerPoint {
                text: Some(FollowerText::new(
                    &mut self.scratch,
                    &o.follower_id,
                    &o.follower_screen_name,
                    &o.follower_description,
                )),
                created_at_s: o.follower_created_at_s,
                event_time_ms: o.event_time_ms,
                score: o.score.prob,
                flagged: true,
                reasons: o.score.reasons.map(|r| (r.code(), r.contribution)),
                weight: 1,
            }
        } else {
            organic_point(o.follower_created_at_s, o.event_time_ms, o.score.prob)
        };
        if let Some(id) = self.collecting.get(&key) {
            if let Some(ev) = self.alerts.get_mut(id) {
                ev.push(point.clone(), self.cfg.max_points);
            }
        }
        if point.flagged {
            self.ring.push(key, point);
        } else {
            self.organic
                .push(key, (point.created_at_s, point.event_time_ms, point.score));
        }
    }

    /// Applies one alert record: creates the alert's evidence on first sight, replaces
    /// its latest record, and stops collecting once it resolves.
    pub fn record(&mut self, a: &Alert) {
        self.record_in(a, 0);
    }

    /// [`record`](Self::record) for an alert of source partition `partition` (issue 21:
    /// an open alert restored from the changelog, shown again with the follows seen from
    /// then on).
    pub fn record_partition(&mut self, a: &Alert, partition: i32) {
        self.record_in(a, partition);
    }

    fn record_in(&mut self, a: &Alert, partition: i32) {
        let key = key_of(&a.followee_id);
        let rp = RecordPoint {
            status: a.status,
            event_time_ms: a.event_time_ms,
            new_followers: a.new_followers,
            suspicious_count: a.suspicious_count,
            baseline_rate_per_hour: a.baseline_rate_per_hour,
            rate_z: a.rate_z,
        };
        if let Some(ev) = self.alerts.get_mut(&a.alert_id) {
            ev.alert = a.clone();
            if a.suspicious_count >= ev.peak.suspicious_count {
                ev.peak = a.clone();
            }
            if ev.records.len() >= MAX_RECORDS {
                // Keep the open record; drop the oldest update after it.
                ev.records.remove(1.min(ev.records.len() - 1));
            }
            ev.records.push(rp);
        } else {
            if self.alerts.len() >= self.cfg.max_alerts {
                if self.cfg.max_alerts == 0 {
                    return;
                }
                self.evict_one();
            }
            self.seq += 1;
            let mut ev = AlertEvidence {
                alert: a.clone(),
                peak: a.clone(),
                opened_at_ms: a.event_time_ms,
                partition,
                records: vec![rp],
                followers: Vec::new(),
                stride: 1,
                follows_seen: 0,
                seq: self.seq,
                skip: 0,
            };
            // Both rings are in arrival order; merge them by event time.
            let mut history: Vec<FollowerPoint> = self
                .ring
                .matching(key)
                .cloned()
                .chain(
                    self.organic
                        .matching(key)
                        .map(|&(c, t, sc)| organic_point(c, t, sc)),
                )
                .collect();
            history.sort_by_key(|p| p.event_time_ms);
            for p in history {
                ev.push(p, self.cfg.max_points);
            }
            self.alerts.insert(a.alert_id.clone(), ev);
        }
        if a.status == AlertStatus::Resolved {
            if self.collecting.get(&key) == Some(&a.alert_id) {
                self.collecting.remove(&key);
            }
        } else {
            self.collecting.insert(key, a.alert_id.clone());
        }
    }

    /// Forgets the alerts of a revoked partition: their followees' next owner shows them
    /// (this instance would otherwise show them open forever). Returns how many went.
    pub fn drop_partition(&mut self, partition: i32) -> usize {
        let before = self.alerts.len();
        self.alerts.retain(|_, e| e.partition != partition);
        let alerts = &self.alerts;
        self.collecting.retain(|_, id| alerts.contains_key(id));
        before - self.alerts.len()
    }

    fn evict_one(&mut self) {
        let victim = self
            .alerts
            .iter()
            .min_by_key(|(_, e)| (e.alert.status != AlertStatus::Resolved, e.seq))
            .map(|(id, e)| (id.clone(), key_of(&e.alert.followee_id)));
        if let Some((id, key)) = victim {
            self.alerts.remove(&id);
            if self.collecting.get(&key) == Some(&id) {
                self.collecting.remove(&key);
            }
            self.evicted += 1;
        }
    }

    pub fn get(&self, alert_id: &str) -> Option<&AlertEvidence> {
        self.alerts.get(alert_id)
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Alerts dropped to stay within `max_alerts`.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Latest records of every alert, newest opened first.
    pub fn alerts_newest_first(&self) -> Vec<&AlertEvidence> {
        let mut v: Vec<&AlertEvidence> = self.alerts.values().collect();
        v.sort_by(|a, b| b.opened_at_ms.cmp(&a.opened_at_ms).then(b.seq.cmp(&a.seq)));
        v
    }

    /// Other alerts of the same campaign (newest first), excluding `alert_id` itself.
    pub fn campaign_siblings(&self, alert_id: &str) -> Vec<&AlertEvidence> {
        let Some(cid) = self
            .alerts
            .get(alert_id)
            .and_then(|e| e.alert.campaign_id.as_deref())
        else {
            return Vec::new();
        };
        self.alerts_newest_first()
            .into_iter()
            .filter(|e| e.alert.alert_id != alert_id && e.alert.campaign_id.as_deref() == Some(cid))
            .collect()
    }

    /// Approximate bytes held (ring plus every alert's evidence).
    pub fn memory_bytes(&self) -> usize {
        self.ring.memory_bytes()
            + self.ring.vals.iter().map(point_heap).sum::<usize>()
            + self.organic.memory_bytes()
            + self
                .alerts
                .iter()
                .map(|(id, e)| id.capacity() + e.memory_bytes())
                .sum::<usize>()
            + self.collecting.len() * (8 + 24 + 36)
    }

    /// Follows currently held in the rings (flagged, organic).
    pub fn ring_len(&self) -> (usize, usize) {
        (self.ring.len(), self.organic.len())
    }
}

/// A bounded ring of recent follows by followee key (the oldest goes first when full).
/// Keys sit apart from the values, so finding one followee's follows when its alert opens
/// scans 8 bytes per follow, not the whole entry.
#[derive(Debug)]
struct KeyedRing<T> {
    keys: VecDeque<u64>,
    vals: VecDeque<T>,
    capacity: usize,
}

impl<T> KeyedRing<T> {
    /// A ring of `capacity` entries, allocating at most `prealloc` up front.
    fn new(capacity: usize, prealloc: usize) -> Self {
        KeyedRing {
            keys: VecDeque::with_capacity(capacity.min(prealloc)),
            vals: VecDeque::with_capacity(capacity.min(prealloc)),
            capacity,
        }
    }

    fn push(&mut self, key: u64, v: T) {
        if self.capacity == 0 {
            return;
        }
        if self.keys.len() >= self.capacity {
            self.keys.pop_front();
            self.vals.pop_front();
        }
        self.keys.push_back(key);
        self.vals.push_back(v);
    }

    /// The values of `key`, oldest first.
    fn matching(&self, key: u64) -> impl Iterator<Item = &T> + '_ {
        self.keys
            .iter()
            .zip(&self.vals)
            .filter(move |(k, _)| **k == key)
            .map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn memory_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<u64>()
            + self.vals.capacity() * std::mem::size_of::<T>()
    }
}

/// An anonymous organic follow.
fn organic_point(created_at_s: i64, event_time_ms: i64, score: f32) -> FollowerPoint {
    FollowerPoint {
        text: None,
        created_at_s,
        event_time_ms,
        score,
        flagged: false,
        reasons: [("", 0.0); 3],
        weight: 1,
    }
}

/// The point's text allocation (counted in full by every holder: an upper bound).
fn point_heap(p: &FollowerPoint) -> usize {
    p.text.as_ref().map_or(0, |t| 16 + t.buf.len())
}

fn alert_heap(a: &Alert) -> usize {
    a.alert_id.len()
        + a.followee_id.len()
        + a.event_time.len()
        + a.burst_start.len()
        + a.window_start.len()
        + a.window_end.len()
        + a.sample_follower_ids
            .iter()
            .map(|s| s.len() + 24)
            .sum::<usize>()
        + a.top_reasons.len() * std::mem::size_of::<crate::alert::ReasonCount>()
        + a.campaign_id.as_ref().map_or(0, String::len)
        + a.model_version.len()
}

/// `s` cut to at most `max` bytes at a character boundary (`…` marks a cut).
pub fn truncate(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    push_truncated(&mut out, s, max);
    out
}

/// Appends [`truncate`]`(s, max)` to `out`.
fn push_truncated(out: &mut String, s: &str, max: usize) {
    if s.len() <= max {
        out.push_str(s);
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&s[..end]);
    out.push('…');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{alert, outcome};

    #[test]
    fn open_gathers_pre_open_history_then_collects_until_resolved() {
        let mut s = EvidenceStore::new(EvidenceConfig {
            ring_capacity: 100,
            organic_capacity: 100,
            max_points: 1000,
            max_alerts: 10,
        });
        for i in 0..5 {
            s.observe(&outcome("A", i, i as i64 * 1000, i == 2));
            s.observe(&outcome("B", 100 + i, i as i64 * 1000, false));
        }
        let mut o = outcome("A", 50, 10_000, true);
        o.alerts
            .push(alert("A", "fga-1", AlertStatus::Open, 10_000));
        s.observe(&o);
        for i in 0..3 {
            s.observe(&outcome("A", 60 + i, 11_000 + i as i64, true));
        }
        let mut r = outcome("B", 200, 20_000, false);
        let mut res = alert("A", "fga-1", AlertStatus::Resolved, 20_000);
        res.suspicious_count = 0;
        r.alerts.push(res);
        s.observe(&r);
        s.observe(&outcome("A", 70, 21_000, true));

        let ev = s.get("fga-1").expect("alert kept");
        let ids: Vec<&str> = ev.followers.iter().map(|p| p.follower_id()).collect();
        // 5 before the open in time order (one flagged, from the other ring; B's follows
        // excluded; organic ones anonymous), the opening follow, 3 after; nothing after
        // the resolution.
        assert_eq!(ids, ["", "", "2", "", "", "50", "60", "61", "62"]);
        let times: Vec<i64> = ev.followers.iter().map(|p| p.event_time_ms).collect();
        assert_eq!(
            times,
            [0, 1000, 2000, 3000, 4000, 10_000, 11_000, 11_001, 11_002]
        );
        assert_eq!(ev.followers[0].created_at_s, 1_600_000_000);
        assert_eq!(ev.open_index(), 5);
        assert_eq!(ev.alert.status, AlertStatus::Resolved);
        assert_eq!(ev.peak.status, AlertStatus::Open, "peak figures kept");
        assert_eq!(ev.records.len(), 2);
        assert_eq!(ev.follows_seen, 9);
        // Names and descriptions only for flagged followers.
        assert!(ev.followers[0].description().is_empty());
        assert!(ev.followers[0].screen_name().is_empty());
        assert_eq!(ev.followers[5].description(), "bio");
        assert_eq!(ev.followers[5].screen_name(), "user50");
    }

    #[test]
    fn per_alert_sample_is_bounded_and_weights_sum_to_follows() {
        let mut s = EvidenceStore::new(EvidenceConfig {
            ring_capacity: 10,
            organic_capacity: 10,
            max_points: 64,
            max_alerts: 4,
        });
        let mut o = outcome("A", 0, 0, true);
        o.alerts.push(alert("A", "fga-1", AlertStatus::Open, 0));
        s.observe(&o);
        for i in 1..10_000u64 {
            s.observe(&outcome("A", i, i as i64, true));
        }
        let ev = s.get("fga-1").expect("alert");
        assert!(ev.followers.len() <= 64, "{}", ev.followers.len());
        assert!(ev.followers.len() >= 32);
        assert_eq!(ev.follows_seen, 10_000);
        let w: u64 = ev.followers.iter().map(|p| u64::from(p.weight)).sum();
        // Follows since the last kept point are not yet represented; at most one stride.
        assert!(w <= 10_000 && w + u64::from(ev.stride) >= 10_000, "{w}");
        // The sample spans the whole alert, start to end.
        assert_eq!(ev.followers[0].event_time_ms, 0);
        assert!(ev.followers.last().map_or(0, |p| p.event_time_ms) > 9_000);
        assert!(s.ring_len().0 <= 10 && s.ring_len().1 <= 10);
    }

    #[test]
    fn alert_count_is_bounded_resolved_evicted_first() {
        let mut s = EvidenceStore::new(EvidenceConfig {
            ring_capacity: 10,
            organic_capacity: 10,
            max_points: 10,
            max_alerts: 3,
        });
        s.record(&alert("A", "a1", AlertStatus::Open, 1));
        s.record(&alert("B", "b1", AlertStatus::Open, 2));
        s.record(&alert("B", "b1", AlertStatus::Resolved, 3));
        s.record(&alert("C", "c1", AlertStatus::Open, 4));
        s.record(&alert("D", "d1", AlertStatus::Open, 5));
        assert_eq!(s.len(), 3);
        assert!(s.get("b1").is_none(), "the resolved alert goes first");
        s.record(&alert("E", "e1", AlertStatus::Open, 6));
        assert!(s.get("a1").is_none(), "then the oldest open one");
        assert_eq!(s.evicted(), 2);
        // An evicted alert's followee no longer collects into anything.
        s.observe(&outcome("A", 1, 7, true));
        let newest: Vec<&str> = s
            .alerts_newest_first()
            .iter()
            .map(|e| e.alert.alert_id.as_str())
            .collect();
        assert_eq!(newest, ["e1", "d1", "c1"]);
    }

    #[test]
    fn revoked_partition_alerts_are_dropped() {
        let mut s = EvidenceStore::default();
        let mut o = outcome("A", 1, 1, true);
        o.alerts.push(alert("A", "a1", AlertStatus::Open, 1));
        s.observe_partition(&o, 3);
        let mut o = outcome("B", 2, 2, true);
        o.alerts.push(alert("B", "b1", AlertStatus::Open, 2));
        s.observe_partition(&o, 1);
        assert_eq!(s.drop_partition(3), 1);
        assert!(s.get("a1").is_none());
        assert_eq!(s.get("b1").map(|e| e.partition), Some(1));
        // A's later follows no longer collect anywhere; B's still do.
        s.observe_partition(&outcome("A", 3, 3, true), 3);
        s.observe_partition(&outcome("B", 4, 4, true), 1);
        assert_eq!(s.get("b1").map(|e| e.followers.len()), Some(2));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn campaign_siblings_link_alerts_of_one_campaign() {
        let mut s = EvidenceStore::default();
        let mut a = alert("A", "a1", AlertStatus::Open, 1);
        a.campaign_id = Some("fgc-x".into());
        let mut b = alert("B", "b1", AlertStatus::Open, 2);
        b.campaign_id = Some("fgc-x".into());
        let c = alert("C", "c1", AlertStatus::Open, 3);
        s.record(&a);
        s.record(&b);
        s.record(&c);
        let sib: Vec<&str> = s
            .campaign_siblings("a1")
            .iter()
            .map(|e| e.alert.alert_id.as_str())
            .collect();
        assert_eq!(sib, ["b1"]);
        assert!(s.campaign_siblings("c1").is_empty());
        assert!(s.campaign_siblings("nope").is_empty());
    }

    /// The worst case the config docs state: (16 384 + 200 × 800) points at the caps plus
    /// 262 144 organic ring entries.
    #[test]
    fn worst_case_memory_is_what_the_docs_say() {
        assert_eq!(std::mem::size_of::<FollowerPoint>(), 128);
        assert_eq!(POINT_MAX_BYTES, 448);
        let c = EvidenceConfig::default();
        let worst = (c.ring_capacity + c.max_alerts * c.max_points) * POINT_MAX_BYTES
            + c.organic_capacity * (8 + std::mem::size_of::<(i64, i64, f32)>());
        assert_eq!(worst / 1_000_000, 87, "{worst}");
    }

    #[test]
    fn hostile_long_strings_are_cut_at_char_boundaries() {
        let long = "é".repeat(500);
        let t = truncate(&long, MAX_DESCRIPTION_BYTES);
        assert!(t.len() <= MAX_DESCRIPTION_BYTES);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abc", 0), "…");
        let mut s = EvidenceStore::default();
        let mut o = outcome("A", 1, 1, true);
        o.follower_id = "9".repeat(100).into();
        o.follower_screen_name = "x".repeat(10_000).into();
        o.follower_description = long.into();
        o.alerts.push(alert("A", "a1", AlertStatus::Open, 1));
        s.observe(&o);
        let p = &s.get("a1").expect("alert").followers[0];
        assert!(p.screen_name().len() <= MAX_SCREEN_NAME_BYTES);
        assert!(p.description().len() <= MAX_DESCRIPTION_BYTES);
        // The three fields share one allocation; each reads back exactly its own cut.
        assert_eq!(p.follower_id(), truncate(&"9".repeat(100), MAX_ID_BYTES));
        assert_eq!(
            p.screen_name(),
            truncate(&"x".repeat(10_000), MAX_SCREEN_NAME_BYTES)
        );
        assert_eq!(
            p.description(),
            truncate(&"é".repeat(500), MAX_DESCRIPTION_BYTES)
        );
        // Serialised with the same field names as before (the JSON API and pages).
        let v = serde_json::to_value(p).expect("serialises");
        assert_eq!(v["follower_id"], p.follower_id());
        assert_eq!(v["screen_name"], p.screen_name());
        assert_eq!(v["description"], p.description());
        assert_eq!(v["flagged"], true);
        assert_eq!(v.as_object().map(|o| o.len()), Some(9));
        let organic = organic_point(1, 2, 0.1);
        let v = serde_json::to_value(&organic).expect("serialises");
        assert_eq!(v["follower_id"], "");
        assert_eq!(v["description"], "");
    }

    #[test]
    fn memory_stays_under_the_documented_bound() {
        let cfg = EvidenceConfig {
            ring_capacity: 500,
            organic_capacity: 500,
            max_points: 50,
            max_alerts: 5,
        };
        let mut s = EvidenceStore::new(cfg);
        for i in 0..20_000u64 {
            let f = format!("F{}", i % 40);
            let mut o = outcome(&f, i, i as i64, i % 3 == 0);
            o.follower_description = "d".repeat(1000).into();
            if i % 97 == 0 {
                o.alerts
                    .push(alert(&f, &format!("a{i}"), AlertStatus::Open, i as i64));
            }
            s.observe(&o);
        }
        assert_eq!(s.len(), 5);
        let bound = (cfg.ring_capacity + cfg.max_alerts * (cfg.max_points + 1)) * POINT_MAX_BYTES
            + cfg.organic_capacity * 32
            + cfg.max_alerts * 4096;
        assert!(s.memory_bytes() <= bound, "{} > {bound}", s.memory_bytes());
    }
}
