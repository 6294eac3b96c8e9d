//! Cross-instance campaigns (issue 21, part two): the follower-keyed link stage. Pure:
//! event time only, no I/O, no clock.
//!
//! The detector's own lockstep (`detector/lockstep.rs`) links alerts that share flagged
//! followers only among the followees one instance owns. Here every flagged follow of an
//! open alert becomes a [`FlaggedLink`], re-keyed by **follower** id, and two stages find
//! alerts sharing enough followers whichever instance owns their followees:
//!
//! 1. [`FollowerStage`] (one per link partition; a follower's links all land on one
//!    partition): remembers, per follower, the alerts it was flagged in, and counts per
//!    alert pair how many followers *of this partition* both alerts share. It emits a
//!    [`PairCount`] (pair, link partition, count so far) while the count is at most
//!    `min_shared` — beyond that the total is decided, so output per pair and partition
//!    is bounded.
//! 2. [`CampaignGraph`] (single partition: the graph holds alerts, not follows): keeps
//!    per pair the **largest** count seen from each link partition (so a re-delivered or
//!    re-sent count never double-counts: at-least-once is enough), sums them, links the
//!    pair once the sum reaches `min_shared` and keeps connected components
//!    (union-find). Each merge emits a [`CampaignRecord`] naming every member alert and
//!    followee.
//!
//! Campaign id: `campaign_id` of the component's smallest alert by `(burst start, alert
//! id)`. A component is a function of the set of pairs whose total reaches `min_shared`,
//! and that set does not depend on how follows are spread over partitions or in which
//! order links arrive (a pair's total is the number of followers flagged in both alerts,
//! for alerts whose bursts started within `window_ms` of each other), so the id is the same for one instance or many.
//! When two campaigns merge, the merged one takes the smaller root's id and the record
//! lists the retired id in `merged`. Limits of that guarantee (documented in
//! docs/state.md): a follower remembers at most `max_alerts_per_follower` alerts (the
//! first ones to arrive), and links arriving more than `window_ms` behind the stage's
//! watermark may find their partners expired.

use crate::alert::campaign_id;
use crate::expiry::ExpiryIndex;
use crate::keys::key_of;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Version stamped in every link-stage record.
pub const LINKS_VERSION: u32 = 1;

/// Thresholds and bounds of the link stages.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Alerts sharing this many flagged followers are linked (the detector's
    /// `lockstep_min_shared`).
    pub min_shared: u32,
    /// A follower counts for a pair of alerts only if their bursts started within this
    /// much event time of each other (the detector's `lockstep_window_ms`). Burst starts,
    /// not flag times: they are the same in every link of an alert, so the count does
    /// not depend on which of a follower's repeated flags arrives first. State is kept
    /// for twice this behind the stage's watermark (by flag time).
    pub window_ms: i64,
    /// Alerts per follower that pair with later ones (the first to arrive; later ones
    /// still pair with them). Up to 16 times as many more are remembered only to ignore
    /// their re-delivery.
    pub max_alerts_per_follower: usize,
    /// Members named in one campaign record (the count is always exact).
    pub max_members_per_record: usize,
    /// Byte budget of each stage's state; a link or pair that would exceed it is dropped
    /// and counted.
    pub max_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            min_shared: 10,
            window_ms: 2 * 86_400_000,
            max_alerts_per_follower: 16,
            max_members_per_record: 512,
            max_bytes: 64 << 20,
        }
    }
}

/// One flagged follow of an open alert: the links topic's value, keyed by follower id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlaggedLink {
    pub v: u32,
    pub follower_id: String,
    pub followee_id: String,
    pub alert_id: String,
    pub burst_start_ms: i64,
    /// Event time of the flag.
    pub ts_ms: i64,
}

impl FlaggedLink {
    pub fn alert(&self) -> AlertRef {
        AlertRef {
            alert_id: self.alert_id.clone(),
            followee_id: self.followee_id.clone(),
            burst_start_ms: self.burst_start_ms,
        }
    }
}

/// An alert as the campaign graph knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRef {
    pub alert_id: String,
    pub followee_id: String,
    pub burst_start_ms: i64,
}

impl AlertRef {
    /// The order that picks a campaign's root: earliest burst, then smallest id.
    fn order(&self) -> (i64, &str) {
        (self.burst_start_ms, &self.alert_id)
    }
    fn bytes(&self) -> usize {
        self.alert_id.len() + self.followee_id.len() + 64
    }
}

/// Stage one's output: alerts `a` < `b` share `shared` flagged followers among those of
/// link partition `link_partition` (so far). The pairs topic's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCount {
    pub v: u32,
    pub a: AlertRef,
    pub b: AlertRef,
    pub link_partition: i32,
    pub shared: u32,
    pub ts_ms: i64,
}

impl PairCount {
    /// Record key: the pair's alert ids.
    pub fn key(&self) -> String {
        format!("{}|{}", self.a.alert_id, self.b.alert_id)
    }
}

/// A campaign formed or grew: the campaigns topic's value, keyed by `campaign_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub v: u32,
    pub campaign_id: String,
    pub root_alert_id: String,
    /// Member alerts by `(burst start, alert id)`, at most `max_members_per_record`.
    pub alerts: Vec<AlertRef>,
    pub alert_count: u32,
    /// Distinct followees of the members named in `alerts`.
    pub followees: Vec<String>,
    /// Campaign ids retired by this merge: their alerts now belong to `campaign_id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// The alerts this record puts in a campaign for the first time (at most two: a merge
    /// joins two components, and only a lone alert is new). With `merged`, a reader that
    /// folds every record knows the campaign of every member, however many
    /// ([`CampaignTable`]); `alerts` is capped at `max_members_per_record`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<AlertRef>,
    /// Event time of the pair count that caused it.
    pub ts_ms: i64,
}

/// What a stage dropped or held, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounts {
    /// Records ignored as already seen (re-delivery).
    pub duplicates: u64,
    /// Records dropped because the byte budget was full.
    pub over_budget: u64,
}

/// One flag of a follower: its alert's key (`key_of(alert_id)`), burst start and time.
#[derive(Debug, Clone, Copy)]
struct Seen {
    alert: u64,
    burst_start_ms: i64,
    ts_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct PairSeen {
    shared: u32,
    last_ms: i64,
}

/// Ordered pair key of the graph: `a` precedes `b` by [`AlertRef::order`].
type PairKey = (String, String);

fn ordered<'x>(x: &'x AlertRef, y: &'x AlertRef) -> (&'x AlertRef, &'x AlertRef) {
    if x.order() <= y.order() {
        (x, y)
    } else {
        (y, x)
    }
}

/// Bytes of one follower entry (map slot and its vector's header) and of one flag.
const FOLLOWER_BYTES: usize = 64;
const SEEN_BYTES: usize = std::mem::size_of::<Seen>();
/// Bytes of one pair entry.
const PAIR_BYTES: usize = 48;

/// Stage one for one link partition: follower → alerts, per-pair counts. Followers,
/// alerts and pairs are keyed by 64-bit hashes of their ids (`keys::key_of`, as the
/// detector's lockstep); each alert's ids are kept once.
#[derive(Debug)]
pub struct FollowerStage {
    cfg: LinkConfig,
    partition: i32,
    followers: HashMap<u64, Vec<Seen>>,
    alerts: HashMap<u64, (AlertRef, i64)>,
    pairs: HashMap<(u64, u64), PairSeen>,
    follower_due: ExpiryIndex<u64>,
    alert_due: ExpiryIndex<u64>,
    pair_due: ExpiryIndex<(u64, u64)>,
    watermark: i64,
    bytes: usize,
    counts: StageCounts,
}

impl FollowerStage {
    pub fn new(cfg: LinkConfig, partition: i32) -> Self {
        let width = (cfg.window_ms / 48).max(60_000);
        FollowerStage {
            cfg,
            partition,
            followers: HashMap::new(),
            alerts: HashMap::new(),
            pairs: HashMap::new(),
            follower_due: ExpiryIndex::new(width),
            alert_due: ExpiryIndex::new(width),
            pair_due: ExpiryIndex::new(width),
            watermark: i64::MIN,
            bytes: 0,
            counts: StageCounts::default(),
        }
    }

    /// Takes one flagged link; returns the pair counts it changed (at most
    /// `min_shared` per pair over the stage's life).
    pub fn observe(&mut self, l: &FlaggedLink) -> Vec<PairCount> {
        let t = l.ts_ms;
        if t > self.watermark {
            self.watermark = t;
            self.prune();
        }
        let retain = self.cfg.window_ms.saturating_mul(2);
        if t < self.watermark.saturating_sub(retain) {
            return Vec::new();
        }
        let (fk, ak) = (key_of(&l.follower_id), key_of(&l.alert_id));
        let list = self.followers.get(&fk);
        if list.is_some_and(|v| v.iter().any(|s| s.alert == ak)) {
            self.counts.duplicates += 1;
            return Vec::new();
        }
        let new_alert = !self.alerts.contains_key(&ak);
        let need = SEEN_BYTES
            + if list.is_none() { FOLLOWER_BYTES } else { 0 }
            + if new_alert { l.alert().bytes() } else { 0 };
        if self.bytes + need > self.cfg.max_bytes {
            self.counts.over_budget += 1;
            return Vec::new();
        }
        let window = self.cfg.window_ms.unsigned_abs();
        let others: Vec<Seen> = list
            .into_iter()
            .flatten()
            .take(self.cfg.max_alerts_per_follower)
            .filter(|s| s.burst_start_ms.abs_diff(l.burst_start_ms) <= window)
            .copied()
            .collect();
        // The alert's ids, once per stage (they expire with their last flag). Expiry
        // indexes are filed on insertion only: a key that falls due while still live is
        // re-filed at its newest time then (`prune`).
        match self.alerts.get_mut(&ak) {
            Some(a) => a.1 = a.1.max(t),
            None => {
                self.alerts.insert(ak, (l.alert(), t));
                self.alert_due.file(ak, t);
            }
        }
        let list = self.followers.entry(fk).or_default();
        // Beyond the first `max_alerts_per_follower` (which pair), flags are kept only to
        // recognise their re-delivery, up to 16 times as many.
        if list.len() < self.cfg.max_alerts_per_follower.saturating_mul(16) {
            if list.is_empty() {
                self.follower_due.file(fk, t);
            }
            list.push(Seen {
                alert: ak,
                burst_start_ms: l.burst_start_ms,
                ts_ms: t,
            });
            self.bytes += need;
        } else if new_alert {
            self.bytes += l.alert().bytes();
        }
        let mut out = Vec::new();
        for other in others {
            let key = (ak.min(other.alert), ak.max(other.alert));
            let p = match self.pairs.get_mut(&key) {
                Some(p) => p,
                None if self.bytes + PAIR_BYTES > self.cfg.max_bytes => {
                    self.counts.over_budget += 1;
                    continue;
                }
                None => {
                    self.bytes += PAIR_BYTES;
                    self.pair_due.file(key, t);
                    self.pairs.entry(key).or_insert(PairSeen {
                        shared: 0,
                        last_ms: t,
                    })
                }
            };
            p.shared = p.shared.saturating_add(1);
            p.last_ms = p.last_ms.max(t);
            if p.shared > self.cfg.min_shared {
                continue;
            }
            let shared = p.shared;
            let (Some((me, _)), Some((them, _))) =
                (self.alerts.get(&ak), self.alerts.get(&other.alert))
            else {
                continue;
            };
            let (a, b) = ordered(me, them);
            out.push(PairCount {
                v: LINKS_VERSION,
                a: a.clone(),
                b: b.clone(),
                link_partition: self.partition,
                shared,
                ts_ms: t.max(other.ts_ms),
            });
        }
        out
    }

    /// Forgets followers, pairs and alerts older than twice the window behind the
    /// watermark.
    fn prune(&mut self) {
        let cutoff = self
            .watermark
            .saturating_sub(self.cfg.window_ms.saturating_mul(2));
        for f in self.follower_due.due(cutoff) {
            let Some(list) = self.followers.get(&f) else {
                continue;
            };
            if list.iter().all(|s| s.ts_ms < cutoff) {
                let freed = FOLLOWER_BYTES + list.len() * SEEN_BYTES;
                self.bytes = self.bytes.saturating_sub(freed);
                self.followers.remove(&f);
            } else if let Some(newest) = list.iter().map(|s| s.ts_ms).max() {
                self.follower_due.file(f, newest);
            }
        }
        for k in self.pair_due.due(cutoff) {
            match self.pairs.get(&k) {
                Some(p) if p.last_ms < cutoff => {
                    self.bytes = self.bytes.saturating_sub(PAIR_BYTES);
                    self.pairs.remove(&k);
                }
                Some(p) => self.pair_due.file(k, p.last_ms),
                None => {}
            }
        }
        // An alert's last flag is older than every follower entry naming it.
        for k in self.alert_due.due(cutoff) {
            match self.alerts.get(&k) {
                Some((a, last)) if *last < cutoff => {
                    self.bytes = self.bytes.saturating_sub(a.bytes());
                    self.alerts.remove(&k);
                }
                Some((_, last)) => self.alert_due.file(k, *last),
                None => {}
            }
        }
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Followers remembered.
    pub fn followers(&self) -> usize {
        self.followers.len()
    }

    /// Duplicates and over-budget drops so far.
    pub fn counts(&self) -> StageCounts {
        self.counts
    }
}

#[derive(Debug, Clone)]
struct Node {
    alert: AlertRef,
    parent: String,
    /// Members of the component (valid at the root only).
    members: Vec<String>,
    last_ms: i64,
}

#[derive(Debug, Clone, Default)]
struct PairTotal {
    by_partition: Vec<(i32, u32)>,
    last_ms: i64,
    linked: bool,
}

impl PairTotal {
    fn sum(&self) -> u32 {
        self.by_partition
            .iter()
            .fold(0u32, |s, &(_, n)| s.saturating_add(n))
    }
}

/// Stage two: the alert graph and its connected components (campaigns).
#[derive(Debug)]
pub struct CampaignGraph {
    cfg: LinkConfig,
    pairs: HashMap<PairKey, PairTotal>,
    nodes: HashMap<String, Node>,
    pair_due: ExpiryIndex<PairKey>,
    node_due: ExpiryIndex<String>,
    watermark: i64,
    bytes: usize,
    counts: StageCounts,
}

impl CampaignGraph {
    pub fn new(cfg: LinkConfig) -> Self {
        let width = (cfg.window_ms / 48).max(60_000);
        CampaignGraph {
            cfg,
            pairs: HashMap::new(),
            nodes: HashMap::new(),
            pair_due: ExpiryIndex::new(width),
            node_due: ExpiryIndex::new(width),
            watermark: i64::MIN,
            bytes: 0,
            counts: StageCounts::default(),
        }
    }

    /// Takes one pair count; returns the campaign record of a merge it caused.
    pub fn apply(&mut self, c: &PairCount) -> Option<CampaignRecord> {
        if c.ts_ms > self.watermark {
            self.watermark = c.ts_ms;
            self.prune();
        }
        let retain = self.cfg.window_ms.saturating_mul(2);
        if c.ts_ms < self.watermark.saturating_sub(retain) {
            return None;
        }
        let (a, b) = ordered(&c.a, &c.b);
        let key = (a.alert_id.clone(), b.alert_id.clone());
        let pair_bytes = key.0.len() + key.1.len() + 96;
        let new = !self.pairs.contains_key(&key);
        if new {
            if self.bytes + pair_bytes > self.cfg.max_bytes {
                self.counts.over_budget += 1;
                return None;
            }
            self.bytes += pair_bytes;
        }
        let p = self.pairs.entry(key.clone()).or_default();
        match p
            .by_partition
            .iter_mut()
            .find(|(q, _)| *q == c.link_partition)
        {
            Some((_, n)) if *n >= c.shared => self.counts.duplicates += 1,
            Some((_, n)) => *n = c.shared,
            None => p.by_partition.push((c.link_partition, c.shared)),
        }
        if new {
            p.last_ms = c.ts_ms;
            self.pair_due.file(key.clone(), c.ts_ms);
        }
        p.last_ms = p.last_ms.max(c.ts_ms);
        if p.linked || p.sum() < self.cfg.min_shared {
            // Keep the members' activity fresh so a live campaign is not forgotten.
            self.touch(a, c.ts_ms);
            self.touch(b, c.ts_ms);
            return None;
        }
        p.linked = true;
        self.touch(a, c.ts_ms);
        self.touch(b, c.ts_ms);
        self.union(&a.alert_id, &b.alert_id, c.ts_ms)
    }

    /// Adds node `a` if new (within the budget) and refreshes its last activity.
    fn touch(&mut self, a: &AlertRef, t: i64) {
        if let Some(n) = self.nodes.get_mut(&a.alert_id) {
            // Filed once, at insertion; `prune` re-files a live one.
            n.last_ms = n.last_ms.max(t);
            return;
        }
        let need = a.bytes() * 2 + 64;
        if self.bytes + need > self.cfg.max_bytes {
            self.counts.over_budget += 1;
            return;
        }
        self.bytes += need;
        self.nodes.insert(
            a.alert_id.clone(),
            Node {
                alert: a.clone(),
                parent: a.alert_id.clone(),
                members: vec![a.alert_id.clone()],
                last_ms: t,
            },
        );
        self.node_due.file(a.alert_id.clone(), t);
    }

    fn find(&mut self, x: &str) -> Option<String> {
        let mut cur = x.to_string();
        let mut path = Vec::new();
        loop {
            let n = self.nodes.get(&cur)?;
            if n.parent == cur {
                break;
            }
            // A parent cycle (only a corrupt snapshot can make one) ends the walk.
            if path.len() > self.nodes.len() {
                return None;
            }
            path.push(cur.clone());
            cur = n.parent.clone();
        }
        for p in path {
            if let Some(n) = self.nodes.get_mut(&p) {
                n.parent = cur.clone();
            }
        }
        Some(cur)
    }

    /// Merges the components of `a` and `b`; the root is the smaller by `(burst start,
    /// alert id)`. Returns the merged campaign's record.
    fn union(&mut self, a: &str, b: &str, t: i64) -> Option<CampaignRecord> {
        let (ra, rb) = (self.find(a)?, self.find(b)?);
        if ra == rb {
            return None;
        }
        let (na, nb) = (self.nodes.get(&ra)?, self.nodes.get(&rb)?);
        let (root, child) = if na.alert.order() <= nb.alert.order() {
            (ra, rb)
        } else {
            (rb, ra)
        };
        // A component of one alert joins a campaign for the first time.
        let mut added: Vec<AlertRef> = [&root, &child]
            .into_iter()
            .filter_map(|id| self.nodes.get(id.as_str()))
            .filter(|n| n.members.len() == 1)
            .map(|n| n.alert.clone())
            .collect();
        added.sort_by(|x, y| x.order().cmp(&y.order()));
        // The child's id is retired if it named a campaign (two or more alerts).
        let merged: Vec<String> = self
            .nodes
            .get(&child)
            .filter(|n| n.members.len() > 1)
            .map(|_| campaign_id(&child))
            .into_iter()
            .collect();
        let moved = self.nodes.get_mut(&child).map(|n| {
            n.parent = root.clone();
            std::mem::take(&mut n.members)
        })?;
        let r = self.nodes.get_mut(&root)?;
        r.members.extend(moved);
        let members = r.members.clone();
        let mut alerts: Vec<AlertRef> = members
            .iter()
            .filter_map(|m| self.nodes.get(m).map(|n| n.alert.clone()))
            .collect();
        alerts.sort_by(|x, y| x.order().cmp(&y.order()));
        let alert_count = u32::try_from(alerts.len()).unwrap_or(u32::MAX);
        alerts.truncate(self.cfg.max_members_per_record);
        let mut followees: Vec<String> = alerts.iter().map(|a| a.followee_id.clone()).collect();
        followees.sort_unstable();
        followees.dedup();
        Some(CampaignRecord {
            v: LINKS_VERSION,
            campaign_id: campaign_id(&root),
            root_alert_id: root,
            alerts,
            alert_count,
            followees,
            merged,
            added,
            ts_ms: t,
        })
    }

    /// Forgets pairs older than twice the window and whole components whose members are
    /// all that old.
    fn prune(&mut self) {
        let cutoff = self
            .watermark
            .saturating_sub(self.cfg.window_ms.saturating_mul(2));
        for k in self.pair_due.due(cutoff) {
            match self.pairs.get(&k) {
                Some(p) if p.last_ms < cutoff => {
                    self.bytes = self.bytes.saturating_sub(k.0.len() + k.1.len() + 96);
                    self.pairs.remove(&k);
                }
                Some(p) => self.pair_due.file(k, p.last_ms),
                None => {}
            }
        }
        for id in self.node_due.due(cutoff) {
            let Some(root) = self.find(&id) else {
                continue;
            };
            let members = self
                .nodes
                .get(&root)
                .map(|n| n.members.clone())
                .unwrap_or_default();
            let newest = members
                .iter()
                .filter_map(|m| self.nodes.get(m).map(|n| n.last_ms))
                .max()
                .unwrap_or(i64::MIN);
            if newest >= cutoff {
                // Kept with its live campaign; looked at again later.
                if self.nodes.contains_key(&id) {
                    self.node_due.file(id, newest);
                }
                continue;
            }
            for m in members {
                if let Some(n) = self.nodes.remove(&m) {
                    self.bytes = self.bytes.saturating_sub(n.alert.bytes() * 2 + 64);
                }
            }
        }
    }

    /// The campaign id of `alert_id`'s component, if it is in one with another alert.
    pub fn campaign_of(&mut self, alert_id: &str) -> Option<String> {
        let root = self.find(alert_id)?;
        let n = self.nodes.get(&root)?;
        (n.members.len() > 1).then(|| campaign_id(&root))
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Alerts in the graph.
    pub fn alerts(&self) -> usize {
        self.nodes.len()
    }

    /// Duplicates and over-budget drops so far.
    pub fn counts(&self) -> StageCounts {
        self.counts
    }
}

/// A follower's flags in a snapshot: `(alert key, burst start, flag time)`, in arrival
/// order.
pub type FlagEntry = (u64, i64, i64);
/// A graph pair in a snapshot: `(a, b, per link partition the largest count, last time,
/// linked)`.
pub type PairEntry = (String, String, Vec<(i32, u32)>, i64, bool);
/// A union-find node in a snapshot: alert, parent id, members (at a root), last time.
pub type NodeEntry = (AlertRef, String, Vec<String>, i64);

/// Stage state as stored in a snapshot (the link stage's changelog, docs/state.md): a
/// [`FollowerStage`] or a [`CampaignGraph`] cut into chunks of at most a given number of
/// entries, each chunk a self-contained value; importing every chunk of a snapshot into a
/// fresh stage gives the exported state (expiry indexes are derived, never stored).
/// Deterministic: entries sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerChunk {
    pub v: u32,
    pub partition: i32,
    pub watermark: i64,
    /// follower key → its flags `(alert key, burst start, flag time)`, in arrival order.
    #[serde(default)]
    pub followers: Vec<(u64, Vec<FlagEntry>)>,
    /// alert key → the alert and its last flag time.
    #[serde(default)]
    pub alerts: Vec<(u64, AlertRef, i64)>,
    /// alert pair keys → `(shared, last time)`.
    #[serde(default)]
    pub pairs: Vec<((u64, u64), u32, i64)>,
}

/// A [`CampaignGraph`] chunk (see [`FollowerChunk`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphChunk {
    pub v: u32,
    pub watermark: i64,
    /// `(a, b)` → per link partition the largest count, last time, linked.
    #[serde(default)]
    pub pairs: Vec<PairEntry>,
    /// Union-find nodes: alert, parent id, members (at a root), last time.
    #[serde(default)]
    pub nodes: Vec<NodeEntry>,
}

/// Why a snapshot chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ChunkError {}

/// `items` cut into runs whose estimated JSON size (`size`) stays within `budget` bytes
/// (an entry larger than that alone in its run). At least one run when `keep_empty`, so
/// an empty state has a snapshot too.
fn split<T>(items: &[T], budget: usize, keep_empty: bool, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0usize);
    for (i, it) in items.iter().enumerate() {
        let n = size(it);
        if i > start && used + n > budget {
            out.push(&items[start..i]);
            (start, used) = (i, 0);
        }
        used += n;
    }
    if start < items.len() || (out.is_empty() && keep_empty) {
        out.push(&items[start..]);
    }
    out
}

impl FollowerStage {
    /// Entries held (followers, alerts and pairs): the snapshot's size, and the record
    /// count after which the link stage writes the next one.
    pub fn entries(&self) -> usize {
        self.followers.len() + self.alerts.len() + self.pairs.len()
    }

    /// The state in chunks of about `budget` bytes of JSON each at most (an entry larger
    /// than that makes a chunk of its own).
    pub fn export_chunks(&self, budget: usize) -> Vec<FollowerChunk> {
        let mut followers: Vec<(u64, Vec<FlagEntry>)> = self
            .followers
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    v.iter()
                        .map(|s| (s.alert, s.burst_start_ms, s.ts_ms))
                        .collect(),
                )
            })
            .collect();
        followers.sort_unstable_by_key(|e| e.0);
        let mut alerts: Vec<(u64, AlertRef, i64)> = self
            .alerts
            .iter()
            .map(|(k, (a, t))| (*k, a.clone(), *t))
            .collect();
        alerts.sort_unstable_by_key(|e| e.0);
        let mut pairs: Vec<((u64, u64), u32, i64)> = self
            .pairs
            .iter()
            .map(|(k, p)| (*k, p.shared, p.last_ms))
            .collect();
        pairs.sort_unstable_by_key(|e| e.0);
        let chunk = |followers: &[_], alerts: &[_], pairs: &[_]| FollowerChunk {
            v: LINKS_VERSION,
            partition: self.partition,
            watermark: self.watermark,
            followers: followers.to_vec(),
            alerts: alerts.to_vec(),
            pairs: pairs.to_vec(),
        };
        let mut out: Vec<FollowerChunk> = split(&followers, budget, true, |f| 24 + 48 * f.1.len())
            .into_iter()
            .map(|f| chunk(f, &[], &[]))
            .collect();
        out.extend(
            split(&alerts, budget, false, |a| 2 * a.1.bytes())
                .into_iter()
                .map(|a| chunk(&[], a, &[]))
                .chain(
                    split(&pairs, budget, false, |_| 64)
                        .into_iter()
                        .map(|p| chunk(&[], &[], p)),
                ),
        );
        out
    }

    /// Adds a chunk of a snapshot of this partition's stage. Entries that would exceed
    /// the byte budget are dropped and counted (`over_budget`).
    pub fn import_chunk(&mut self, c: &FollowerChunk) -> Result<(), ChunkError> {
        if c.v != LINKS_VERSION {
            return Err(ChunkError("unknown link-stage state version"));
        }
        if c.partition != self.partition {
            return Err(ChunkError("snapshot of another link partition"));
        }
        self.watermark = self.watermark.max(c.watermark);
        for (k, flags) in &c.followers {
            let need = FOLLOWER_BYTES + flags.len() * SEEN_BYTES;
            if self.followers.contains_key(k) || self.bytes + need > self.cfg.max_bytes {
                self.counts.over_budget += 1;
                continue;
            }
            let list: Vec<Seen> = flags
                .iter()
                .map(|&(alert, burst_start_ms, ts_ms)| Seen {
                    alert,
                    burst_start_ms,
                    ts_ms,
                })
                .collect();
            if let Some(oldest) = list.iter().map(|s| s.ts_ms).min() {
                self.follower_due.file(*k, oldest);
            }
            self.bytes += need;
            self.followers.insert(*k, list);
        }
        for (k, a, last) in &c.alerts {
            if self.alerts.contains_key(k) || self.bytes + a.bytes() > self.cfg.max_bytes {
                self.counts.over_budget += 1;
                continue;
            }
            self.bytes += a.bytes();
            self.alert_due.file(*k, *last);
            self.alerts.insert(*k, (a.clone(), *last));
        }
        for &(k, shared, last_ms) in &c.pairs {
            if self.pairs.contains_key(&k) || self.bytes + PAIR_BYTES > self.cfg.max_bytes {
                self.counts.over_budget += 1;
                continue;
            }
            self.bytes += PAIR_BYTES;
            self.pair_due.file(k, last_ms);
            self.pairs.insert(k, PairSeen { shared, last_ms });
        }
        Ok(())
    }
}

impl CampaignGraph {
    /// Entries held (pairs and nodes), as [`FollowerStage::entries`].
    pub fn entries(&self) -> usize {
        self.pairs.len() + self.nodes.len()
    }

    /// The graph in chunks of about `budget` bytes of JSON each, as
    /// [`FollowerStage::export_chunks`].
    pub fn export_chunks(&self, budget: usize) -> Vec<GraphChunk> {
        let mut pairs: Vec<PairEntry> = self
            .pairs
            .iter()
            .map(|((a, b), p)| {
                let mut by = p.by_partition.clone();
                by.sort_unstable();
                (a.clone(), b.clone(), by, p.last_ms, p.linked)
            })
            .collect();
        pairs.sort_unstable_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        let mut nodes: Vec<NodeEntry> = self
            .nodes
            .values()
            .map(|n| {
                (
                    n.alert.clone(),
                    n.parent.clone(),
                    n.members.clone(),
                    n.last_ms,
                )
            })
            .collect();
        nodes.sort_unstable_by(|x, y| x.0.alert_id.cmp(&y.0.alert_id));
        let pair_size = |p: &PairEntry| p.0.len() + p.1.len() + 32 + 16 * p.2.len();
        let node_size =
            |n: &NodeEntry| 2 * n.0.bytes() + n.2.iter().map(|m| m.len() + 3).sum::<usize>();
        let mut out: Vec<GraphChunk> = split(&pairs, budget, true, pair_size)
            .into_iter()
            .map(|p| GraphChunk {
                v: LINKS_VERSION,
                watermark: self.watermark,
                pairs: p.to_vec(),
                nodes: Vec::new(),
            })
            .collect();
        out.extend(
            split(&nodes, budget, false, node_size)
                .into_iter()
                .map(|n| GraphChunk {
                    v: LINKS_VERSION,
                    watermark: self.watermark,
                    pairs: Vec::new(),
                    nodes: n.to_vec(),
                }),
        );
        out
    }

    /// Adds a chunk of a snapshot of the graph (over-budget entries dropped and counted).
    pub fn import_chunk(&mut self, c: &GraphChunk) -> Result<(), ChunkError> {
        if c.v != LINKS_VERSION {
            return Err(ChunkError("unknown link-stage state version"));
        }
        self.watermark = self.watermark.max(c.watermark);
        for (a, b, by, last_ms, linked) in &c.pairs {
            let key = (a.clone(), b.clone());
            let need = a.len() + b.len() + 96;
            if self.pairs.contains_key(&key) || self.bytes + need > self.cfg.max_bytes {
                self.counts.over_budget += 1;
                continue;
            }
            self.bytes += need;
            self.pair_due.file(key.clone(), *last_ms);
            self.pairs.insert(
                key,
                PairTotal {
                    by_partition: by.clone(),
                    last_ms: *last_ms,
                    linked: *linked,
                },
            );
        }
        for (alert, parent, members, last_ms) in &c.nodes {
            let need = alert.bytes() * 2 + 64;
            if self.nodes.contains_key(&alert.alert_id) || self.bytes + need > self.cfg.max_bytes {
                self.counts.over_budget += 1;
                continue;
            }
            self.bytes += need;
            self.node_due.file(alert.alert_id.clone(), *last_ms);
            self.nodes.insert(
                alert.alert_id.clone(),
                Node {
                    alert: alert.clone(),
                    parent: parent.clone(),
                    members: members.clone(),
                    last_ms: *last_ms,
                },
            );
        }
        Ok(())
    }
}

/// The campaigns topic read as a table (Kafka Streams' `KTable`): alert id → its current
/// cross-instance campaign id, for a join with the alerts stream or the web view. Folds
/// records in any order and any number of times (at-least-once): an alert is filed under
/// the campaign that first named it (`added`, or `alerts`), and a campaign retired by a
/// merge (`merged`) maps to the one that absorbed it, so a lookup follows retirements to
/// the current id (ids only ever move to an older root). Bounded: at most `max_bytes`
/// (new alerts beyond are not filed, counted in `dropped`), and entries are forgotten
/// `retain_ms` of event time behind the newest record (the link stages forget their
/// state after twice the lockstep window too).
#[derive(Debug)]
pub struct CampaignTable {
    alerts: HashMap<String, (String, i64)>,
    retired: HashMap<String, (String, i64)>,
    due: ExpiryIndex<String>,
    retain_ms: i64,
    max_bytes: usize,
    watermark: i64,
    bytes: usize,
    dropped: u64,
}

impl CampaignTable {
    pub fn new(retain_ms: i64, max_bytes: usize) -> Self {
        CampaignTable {
            alerts: HashMap::new(),
            retired: HashMap::new(),
            due: ExpiryIndex::new((retain_ms / 48).max(60_000)),
            retain_ms,
            max_bytes,
            watermark: i64::MIN,
            bytes: 0,
            dropped: 0,
        }
    }

    /// Folds one campaign record in.
    pub fn apply(&mut self, r: &CampaignRecord) {
        if r.ts_ms > self.watermark {
            self.watermark = r.ts_ms;
            self.prune();
        }
        let t = r.ts_ms;
        let named = r.added.iter().chain(r.alerts.iter()).map(|a| &a.alert_id);
        for id in named {
            self.file(id, &r.campaign_id, t, false);
        }
        for old in &r.merged {
            if *old != r.campaign_id {
                self.file(old, &r.campaign_id, t, true);
            }
        }
    }

    fn file(&mut self, key: &str, campaign: &str, t: i64, retired: bool) {
        let map = if retired {
            &mut self.retired
        } else {
            &mut self.alerts
        };
        match map.get_mut(key) {
            Some(e) => {
                // A later merge only moves an alert to an older root; keep the newest
                // record's naming (the lookup resolves retirements either way).
                if t >= e.1 {
                    *e = (campaign.to_string(), t);
                }
            }
            None => {
                let need = key.len() + campaign.len() + 64;
                if self.bytes + need > self.max_bytes {
                    self.dropped += 1;
                    return;
                }
                self.bytes += need;
                map.insert(key.to_string(), (campaign.to_string(), t));
                self.due
                    .file(format!("{}{key}", if retired { 'r' } else { 'a' }), t);
            }
        }
    }

    fn prune(&mut self) {
        let cutoff = self.watermark.saturating_sub(self.retain_ms);
        for k in self.due.due(cutoff) {
            let (kind, key) = k.split_at(1);
            let map = if kind == "r" {
                &mut self.retired
            } else {
                &mut self.alerts
            };
            match map.get(key) {
                Some((c, t)) if *t < cutoff => {
                    self.bytes = self.bytes.saturating_sub(key.len() + c.len() + 64);
                    map.remove(key);
                }
                Some((_, t)) => {
                    let t = *t;
                    self.due.file(k, t);
                }
                None => {}
            }
        }
    }

    /// The current cross-instance campaign id of `alert_id`, if a record named it.
    pub fn campaign_of(&self, alert_id: &str) -> Option<String> {
        let mut c = &self.alerts.get(alert_id)?.0;
        // Retirements form chains towards older roots; bounded by the map's size.
        for _ in 0..=self.retired.len() {
            match self.retired.get(c.as_str()) {
                Some((next, _)) if next != c => c = next,
                _ => break,
            }
        }
        Some(c.clone())
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Alerts not filed because the budget was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Link partition of a follower id (the producer's key hashing is the broker client's;
/// this is for in-process runs and tests, which spread followers the same way).
pub fn link_partition(follower_id: &str, partitions: i32) -> i32 {
    let n = u64::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(crate::keys::key_of(follower_id) % n).unwrap_or(0)
}

/// Both stages in one process, as `replay` runs them (and as the tests compare against
/// the distributed run): links in, campaign records out.
#[derive(Debug)]
pub struct InProcessLinks {
    stages: Vec<FollowerStage>,
    graph: CampaignGraph,
}

impl InProcessLinks {
    /// `partitions` link partitions (followers spread by [`link_partition`]).
    pub fn new(cfg: LinkConfig, partitions: i32) -> Self {
        InProcessLinks {
            stages: (0..partitions.max(1))
                .map(|p| FollowerStage::new(cfg.clone(), p))
                .collect(),
            graph: CampaignGraph::new(cfg),
        }
    }

    /// Takes one flagged link through both stages.
    pub fn observe(&mut self, l: &FlaggedLink) -> Vec<CampaignRecord> {
        let n = i32::try_from(self.stages.len()).unwrap_or(1);
        let p = usize::try_from(link_partition(&l.follower_id, n)).unwrap_or(0);
        let Some(stage) = self.stages.get_mut(p) else {
            return Vec::new();
        };
        stage
            .observe(l)
            .iter()
            .filter_map(|c| self.graph.apply(c))
            .collect()
    }

    pub fn graph(&mut self) -> &mut CampaignGraph {
        &mut self.graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(follower: &str, followee: &str, burst: i64, t: i64) -> FlaggedLink {
        FlaggedLink {
            v: LINKS_VERSION,
            follower_id: follower.into(),
            followee_id: followee.into(),
            alert_id: format!("fga-{followee}-{burst}"),
            burst_start_ms: burst,
            ts_ms: t,
        }
    }

    fn cfg() -> LinkConfig {
        LinkConfig {
            min_shared: 3,
            window_ms: 3_600_000,
            ..LinkConfig::default()
        }
    }

    #[test]
    fn a_cohort_links_its_alerts_under_the_earliest_one() {
        let mut s = InProcessLinks::new(cfg(), 4);
        let mut recs = Vec::new();
        for (i, fe) in ["x", "y", "z"].iter().enumerate() {
            let burst = 1_000 - i64::try_from(i).unwrap_or(0);
            for b in 0..5 {
                recs.extend(s.observe(&link(&format!("bot{b}"), fe, burst, 2_000)));
            }
        }
        let last = recs.last().expect("a campaign record");
        assert_eq!(last.campaign_id, "fgc-z-998");
        assert_eq!(last.followees, vec!["x", "y", "z"]);
        assert_eq!(last.alert_count, 3);
        assert_eq!(
            s.graph().campaign_of("fga-x-1000").as_deref(),
            Some("fgc-z-998")
        );
    }

    #[test]
    fn below_min_shared_or_outside_the_window_nothing_links() {
        let mut s = InProcessLinks::new(cfg(), 2);
        let mut recs = Vec::new();
        for b in 0..2 {
            recs.extend(s.observe(&link(&format!("bot{b}"), "x", 0, 0)));
            recs.extend(s.observe(&link(&format!("bot{b}"), "y", 0, 0)));
        }
        for b in 2..6 {
            recs.extend(s.observe(&link(&format!("bot{b}"), "x", 0, 0)));
            // Bursts more than the window apart: not the same campaign.
            recs.extend(s.observe(&link(&format!("bot{b}"), "z", 3_600_001, 10)));
        }
        assert!(recs.is_empty(), "{recs:?}");
        assert_eq!(s.graph().campaign_of("fga-x-0"), None);
    }

    #[test]
    fn redelivered_links_and_counts_are_not_counted_twice() {
        let mut st = FollowerStage::new(cfg(), 0);
        let mut g = CampaignGraph::new(cfg());
        let mut out = Vec::new();
        for _ in 0..3 {
            for b in 0..2 {
                out.extend(st.observe(&link(&format!("bot{b}"), "x", 0, 0)));
                out.extend(st.observe(&link(&format!("bot{b}"), "y", 0, 0)));
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(st.counts().duplicates, 8);
        for c in out.iter().chain(out.iter()) {
            assert!(g.apply(c).is_none());
        }
        assert!(g.counts().duplicates >= 2);
        assert_eq!(g.campaign_of("fga-x-0"), None);
    }

    #[test]
    fn over_the_pairing_cap_redelivery_is_still_recognised() {
        let mut c = cfg();
        c.max_alerts_per_follower = 2;
        let mut st = FollowerStage::new(c, 0);
        let fes = ["a", "b", "c", "d", "e"];
        let first: usize = fes
            .iter()
            .map(|fe| st.observe(&link("bot", fe, 0, 0)).len())
            .sum();
        // a, b pair with what follows: 0 + 1 + 2 + 2 + 2.
        assert_eq!(first, 7);
        let again: usize = fes
            .iter()
            .map(|fe| st.observe(&link("bot", fe, 0, 0)).len())
            .sum();
        assert_eq!(again, 0);
        assert_eq!(st.counts().duplicates, 5);
    }

    /// Two campaigns, (c, d) and (a, b), then merged by a cohort shared by b and d: the
    /// three campaign records.
    fn merge_scenario(c: LinkConfig) -> Vec<CampaignRecord> {
        let mut s = InProcessLinks::new(c, 1);
        let mut recs = Vec::new();
        for b in 0..3 {
            recs.extend(s.observe(&link(&format!("a{b}"), "c", 50, 100)));
            recs.extend(s.observe(&link(&format!("a{b}"), "d", 60, 100)));
            recs.extend(s.observe(&link(&format!("b{b}"), "a", 10, 100)));
            recs.extend(s.observe(&link(&format!("b{b}"), "b", 20, 100)));
        }
        for b in 0..3 {
            recs.extend(s.observe(&link(&format!("m{b}"), "b", 20, 200)));
            recs.extend(s.observe(&link(&format!("m{b}"), "d", 60, 200)));
        }
        recs
    }

    #[test]
    fn merging_campaigns_names_the_retired_id() {
        let recs = merge_scenario(cfg());
        let last = recs.last().expect("merge record");
        assert_eq!(last.campaign_id, "fgc-a-10");
        assert_eq!(last.merged, vec!["fgc-c-50".to_string()]);
        assert_eq!(last.alert_count, 4);
    }

    /// Chunks through JSON, as the link stage's snapshot carries them.
    fn roundtrip<T: Serialize + serde::de::DeserializeOwned>(chunks: Vec<T>) -> Vec<T> {
        chunks
            .iter()
            .map(|c| serde_json::from_slice(&serde_json::to_vec(c).expect("ser")).expect("de"))
            .collect()
    }

    #[test]
    fn a_stage_restored_from_its_snapshot_continues_as_the_original() {
        let mut c = cfg();
        c.min_shared = 4;
        let mut st = FollowerStage::new(c.clone(), 2);
        let mut g = CampaignGraph::new(c.clone());
        let stream: Vec<FlaggedLink> = (0..8)
            .flat_map(|b| {
                ["p", "q", "r", "s"]
                    .into_iter()
                    .enumerate()
                    .map(move |(i, fe)| link(&format!("bot{b}"), fe, 100 * i as i64, 1_000 + b))
            })
            .collect();
        let (head, tail) = stream.split_at(13);
        for l in head {
            for pc in st.observe(l) {
                g.apply(&pc);
            }
        }
        let mut st2 = FollowerStage::new(c.clone(), 2);
        for ch in roundtrip(st.export_chunks(200)) {
            st2.import_chunk(&ch).expect("follower chunk");
        }
        assert_eq!(st2.entries(), st.entries());
        assert_eq!(st2.bytes(), st.bytes());
        let mut g2 = CampaignGraph::new(c.clone());
        for ch in roundtrip(g.export_chunks(300)) {
            g2.import_chunk(&ch).expect("graph chunk");
        }
        assert_eq!(g2.entries(), g.entries());
        let (mut a, mut b) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for l in tail {
            for pc in st.observe(l) {
                a.1.extend(g.apply(&pc));
                a.0.push(pc);
            }
            for pc in st2.observe(l) {
                b.1.extend(g2.apply(&pc));
                b.0.push(pc);
            }
        }
        assert!(!a.0.is_empty() && !a.1.is_empty());
        assert_eq!(a, b);
        assert_eq!(g2.campaign_of("fga-s-300"), Some("fgc-p-0".to_string()));
        // Snapshots are deterministic, and a foreign or unknown chunk is refused.
        assert_eq!(st.export_chunks(200), st2.export_chunks(200));
        let mut other = FollowerStage::new(c, 1);
        assert!(other.import_chunk(&st.export_chunks(200)[0]).is_err());
    }

    #[test]
    fn a_corrupt_graph_snapshot_neither_hangs_nor_panics() {
        let x = AlertRef {
            alert_id: "fga-x-1".into(),
            followee_id: "x".into(),
            burst_start_ms: 1,
        };
        let y = AlertRef {
            alert_id: "fga-y-2".into(),
            ..x.clone()
        };
        let mut g = CampaignGraph::new(cfg());
        g.import_chunk(&GraphChunk {
            v: LINKS_VERSION,
            watermark: 0,
            pairs: Vec::new(),
            nodes: vec![
                (x.clone(), y.alert_id.clone(), Vec::new(), 0),
                (y.clone(), x.alert_id.clone(), Vec::new(), 0),
            ],
        })
        .expect("well-formed chunk");
        assert_eq!(g.campaign_of("fga-x-1"), None);
        let pc = PairCount {
            v: LINKS_VERSION,
            a: x,
            b: y,
            link_partition: 0,
            shared: 9,
            ts_ms: 5,
        };
        assert_eq!(g.apply(&pc), None);
    }

    #[test]
    fn the_table_of_campaign_records_names_every_alert_in_any_order() {
        let mut c = cfg();
        c.max_members_per_record = 1;
        let recs = merge_scenario(c);
        assert_eq!(recs.len(), 3);
        // At most two alerts are new in a record; `alerts` is capped at one here.
        assert!(recs
            .iter()
            .all(|r| r.added.len() <= 2 && r.alerts.len() == 1));
        assert!(recs[2].added.is_empty());
        let want: Vec<Option<String>> = vec![Some("fgc-a-10".to_string()); 4];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut t = CampaignTable::new(3_600_000, 1 << 20);
            for i in order.into_iter().chain(order) {
                t.apply(&recs[i]);
            }
            let got: Vec<Option<String>> = ["fga-a-10", "fga-b-20", "fga-c-50", "fga-d-60"]
                .iter()
                .map(|a| t.campaign_of(a))
                .collect();
            assert_eq!(got, want, "order {order:?}");
        }
        assert_eq!(CampaignTable::new(1, 1).campaign_of("fga-a-10"), None);
        // Bounded: a full table files nothing new; old entries expire.
        let mut t = CampaignTable::new(3_600_000, 100);
        for r in &recs {
            t.apply(r);
        }
        assert!(t.bytes() <= 100 && t.dropped() > 0);
        let mut t = CampaignTable::new(50, 1 << 20);
        t.apply(&recs[0]);
        let mut late = recs[1].clone();
        late.ts_ms = 1_000_000;
        t.apply(&late);
        assert_eq!(t.campaign_of(&recs[0].added[0].alert_id), None);
    }

    #[test]
    fn state_is_bounded_by_bytes_and_expires() {
        let mut c = cfg();
        c.max_bytes = 4_000;
        let mut st = FollowerStage::new(c, 0);
        for i in 0..1_000 {
            st.observe(&link(&format!("f{i}"), "x", 0, i));
        }
        assert!(st.bytes() <= 4_000);
        assert!(st.counts().over_budget > 0);
        st.observe(&link("late", "y", 0, 100 * 3_600_000));
        assert_eq!(st.followers(), 1);
    }
}
