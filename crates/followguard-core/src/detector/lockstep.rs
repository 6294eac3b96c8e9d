//! Lockstep cohorts: flagged followers shared between alerts on different followees link
//! the alerts into one campaign (a union-find over alerts; the campaign id comes from its
//! earliest alert). The one cross-followee step: it only enriches alerts (campaign id,
//! severity), never opens or closes one.

use super::triggers;
use super::{Detector, Emitted};
use crate::alert::{self, AlertStatus, Severity};
use crate::expiry::ExpiryIndex;
use crate::keys::key_of;
use std::collections::HashMap;

/// Node of the campaign union-find, one per alert that flagged at least one follower.
#[derive(Debug, Clone)]
struct LinkNode {
    parent: u64,
    alert_id: String,
    burst_start_ms: i64,
    /// The followee's slot (to find its open alert; checked against `link_key`, as the
    /// slot may since have been reused) and its id (which followees a campaign spans).
    followee_key: u64,
    followee_id: Box<str>,
    last_ms: i64,
    open: bool,
    /// Members of the set (valid at the root only).
    members: Vec<u64>,
}

/// Flagged followers two alerts share, and when the last one was seen.
#[derive(Debug, Clone, Copy)]
struct Overlap {
    shared: u32,
    last_ms: i64,
}

/// Cross-followee lockstep state: which alerts each flagged follower appeared in, how
/// many flagged followers each pair of alerts shares, and the campaign sets.
#[derive(Debug)]
pub(super) struct Lockstep {
    follower_alerts: HashMap<u64, Vec<(u64, i64)>>,
    overlaps: HashMap<(u64, u64), Overlap>,
    links: HashMap<u64, LinkNode>,
    /// Expiry indexes of the two maps above (by their oldest time), so pruning visits
    /// only what may have expired.
    follower_due: ExpiryIndex<u64>,
    overlap_due: ExpiryIndex<(u64, u64)>,
    /// Issue 21: keys changed since the last `take_dirty` (with the partition of the
    /// change, `part`), when tracked (the changelog logs them per key).
    dirty: Option<HashMap<LockstepKey, i32>>,
    /// The partition the current change belongs to (set by the detector before it
    /// notes, resolves or prunes).
    pub(super) part: i32,
}

impl Lockstep {
    /// Empty; the expiry indexes' buckets are `width_ms` wide (the sweep period).
    pub fn new(width_ms: i64) -> Self {
        Lockstep {
            follower_alerts: HashMap::new(),
            overlaps: HashMap::new(),
            links: HashMap::new(),
            follower_due: ExpiryIndex::new(width_ms),
            overlap_due: ExpiryIndex::new(width_ms),
            dirty: None,
            part: 0,
        }
    }

    /// Issue 21: starts (or stops) recording which keys change.
    pub fn track_dirty(&mut self, on: bool) {
        self.dirty = on.then(HashMap::new);
    }

    fn mark(&mut self, k: LockstepKey) {
        if let Some(d) = self.dirty.as_mut() {
            d.insert(k, self.part);
        }
    }

    /// Flagged followers remembered.
    pub fn followers(&self) -> usize {
        self.follower_alerts.len()
    }

    /// Bytes of the expiry indexes.
    pub fn index_bytes(&self) -> usize {
        self.follower_due.heap_bytes() + self.overlap_due.heap_bytes()
    }

    /// Bytes of the maps (entries, their vectors and strings; not the expiry indexes),
    /// and of those the id bytes (alert and followee ids of the campaign nodes).
    pub fn bytes(&self) -> (usize, usize) {
        use std::mem::size_of;
        let ids: usize = self
            .links
            .values()
            .map(|n| n.alert_id.capacity() + n.followee_id.len())
            .sum();
        let links: usize = self
            .links
            .values()
            .map(|n| size_of::<(u64, LinkNode)>() + n.members.capacity() * size_of::<u64>())
            .sum();
        let followers: usize = self
            .follower_alerts
            .values()
            .map(|l| size_of::<(u64, Vec<(u64, i64)>)>() + l.capacity() * size_of::<(u64, i64)>())
            .sum();
        let overlaps = self.overlaps.len() * size_of::<((u64, u64), Overlap)>();
        (ids + links + followers + overlaps, ids)
    }

    /// The alert of link `link` resolved at `t`: its campaign may be forgotten once every
    /// member is resolved and quiet.
    pub fn resolved(&mut self, link: u64, t: i64) {
        if let Some(n) = self.links.get_mut(&link) {
            n.open = false;
            n.last_ms = n.last_ms.max(t);
            self.mark(LockstepKey::Link(link));
        }
    }

    fn find(&mut self, mut x: u64) -> u64 {
        let mut path = Vec::new();
        while let Some(n) = self.links.get(&x) {
            if n.parent == x {
                break;
            }
            path.push(x);
            x = n.parent;
        }
        for p in path {
            if let Some(n) = self.links.get_mut(&p) {
                if n.parent != x {
                    n.parent = x;
                    self.mark(LockstepKey::Link(p));
                }
            }
        }
        x
    }

    /// Merges the sets of `a` and `b`; the root is the alert with the earliest burst
    /// (ties: smallest id), so the campaign id is stable whichever link is found first.
    /// Returns all members of the merged set.
    fn union(&mut self, a: u64, b: u64) -> Vec<u64> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return Vec::new();
        }
        let order = |n: &LinkNode| (n.burst_start_ms, n.alert_id.clone());
        let (Some(na), Some(nb)) = (self.links.get(&ra), self.links.get(&rb)) else {
            return Vec::new();
        };
        let (root, child) = if order(na) <= order(nb) {
            (ra, rb)
        } else {
            (rb, ra)
        };
        let moved = self.links.get_mut(&child).map(|n| {
            n.parent = root;
            std::mem::take(&mut n.members)
        });
        let last = self.links.get(&child).map_or(0, |n| n.last_ms);
        self.mark(LockstepKey::Link(child));
        self.mark(LockstepKey::Link(root));
        if let Some(r) = self.links.get_mut(&root) {
            r.members.extend(moved.unwrap_or_default());
            r.last_ms = r.last_ms.max(last);
            r.members.clone()
        } else {
            Vec::new()
        }
    }

    /// Forgets followers and overlaps older than `cutoff`, and whole campaigns whose
    /// alerts are all resolved and inactive since before it.
    pub fn prune(&mut self, cutoff: i64) {
        for k in self.follower_due.due(cutoff) {
            let Some(l) = self.follower_alerts.get_mut(&k) else {
                continue;
            };
            let before = l.len();
            l.retain(|&(_, ts)| ts >= cutoff);
            let changed = l.len() != before;
            match l.iter().map(|&(_, ts)| ts).min() {
                Some(oldest) => self.follower_due.file(k, oldest),
                None => {
                    self.follower_alerts.remove(&k);
                }
            }
            if changed {
                self.mark(LockstepKey::Follower(k));
            }
        }
        for pair in self.overlap_due.due(cutoff) {
            match self.overlaps.get(&pair) {
                Some(o) if o.last_ms < cutoff => {
                    self.overlaps.remove(&pair);
                    self.mark(LockstepKey::Pair(pair.0, pair.1));
                }
                Some(o) => self.overlap_due.file(pair, o.last_ms),
                None => {}
            }
        }
        let roots: Vec<u64> = self
            .links
            .iter()
            .filter(|(k, n)| n.parent == **k)
            .map(|(k, _)| *k)
            .collect();
        for r in roots {
            let members = self
                .links
                .get(&r)
                .map(|n| n.members.clone())
                .unwrap_or_default();
            let dead = members.iter().all(|m| {
                self.links
                    .get(m)
                    .is_none_or(|n| !n.open && n.last_ms < cutoff)
            });
            if dead {
                for m in members {
                    if self.links.remove(&m).is_some() {
                        self.mark(LockstepKey::Link(m));
                    }
                }
                if self.links.remove(&r).is_some() {
                    self.mark(LockstepKey::Link(r));
                }
            }
        }
    }
}

impl Detector {
    /// Records that `follower` was flagged in followee `key`'s open alert; returns the
    /// followee keys whose campaign membership changed.
    pub(super) fn lockstep_note(&mut self, key: u64, follower_id: &str, t: i64) -> Vec<u64> {
        let min_shared = self.cfg.lockstep_min_shared;
        let window = self.cfg.lockstep_window_ms;
        let Some(a) = self.open.get(&key) else {
            return Vec::new();
        };
        let (link, burst_start) = (a.link_key, a.burst_start_ms);
        let part = self.slot_partition(key);
        let ls = &mut self.lockstep;
        ls.part = part;
        ls.mark(LockstepKey::Link(link));
        ls.links.entry(link).or_insert_with(|| LinkNode {
            parent: link,
            alert_id: a.alert_id.clone(),
            burst_start_ms: burst_start,
            followee_key: key,
            followee_id: a.followee_id.as_str().into(),
            last_ms: t,
            open: true,
            members: vec![link],
        });
        if let Some(n) = ls.links.get_mut(&link) {
            n.last_ms = n.last_ms.max(t);
        }
        if min_shared == 0 {
            return Vec::new();
        }
        let fk = key_of(follower_id);
        ls.mark(LockstepKey::Follower(fk));
        let list = ls.follower_alerts.entry(fk).or_default();
        list.retain(|&(_, ts)| ts >= t.saturating_sub(window));
        if list.iter().any(|&(l, _)| l == link) {
            return Vec::new();
        }
        let others: Vec<u64> = list.iter().map(|&(l, _)| l).collect();
        if list.len() < 16 {
            let oldest = list.iter().map(|&(_, ts)| ts).min();
            list.push((link, t));
            if oldest.is_none_or(|o| ls.follower_due.needs_refile(o, t)) {
                ls.follower_due.file(fk, t);
            }
        }
        let mut changed = Vec::new();
        for other in others {
            let pair = (link.min(other), link.max(other));
            ls.mark(LockstepKey::Pair(pair.0, pair.1));
            let shared = match ls.overlaps.get_mut(&pair) {
                Some(o) => {
                    if ls.overlap_due.needs_refile(o.last_ms, t) {
                        ls.overlap_due.file(pair, t);
                    }
                    o.shared += 1;
                    o.last_ms = t;
                    o.shared
                }
                None => {
                    ls.overlap_due.file(pair, t);
                    ls.overlaps.insert(
                        pair,
                        Overlap {
                            shared: 1,
                            last_ms: t,
                        },
                    );
                    1
                }
            };
            if shared == min_shared {
                changed.extend(ls.union(link, other));
            }
        }
        changed
    }

    /// Applies campaign changes to the affected open alerts and emits an update for each;
    /// `opened_now`: the followee whose alert this call opened, whose `open` record (and
    /// moderation records) in `out` are refreshed in place instead.
    pub(super) fn emit_relinked(
        &mut self,
        changed_links: Vec<u64>,
        opened_now: Option<u64>,
        t: i64,
        out: &mut Emitted,
    ) {
        if changed_links.is_empty() {
            return;
        }
        let mut done = Vec::new();
        for link in changed_links {
            let Some(node) = self.lockstep.links.get(&link) else {
                continue;
            };
            let fk = node.followee_key;
            if done.contains(&node.followee_id) {
                continue;
            }
            done.push(node.followee_id.clone());
            // Issue 21: this member's open alert may take a new campaign (state.rs). Its
            // followee is found by id, not by the node's slot: slots are reused (after an
            // eviction, a revoke, a restore), and a stale one named another followee's
            // partition, so this followee's record went to that partition's changelog
            // and its own partition kept an older one (restored later as its state).
            let part = self
                .followees
                .find(&node.followee_id)
                .and_then(|s| self.followees.get(s))
                .map(|w| w.partition);
            if let (Some(d), Some(part)) = (self.dirty.as_mut(), part) {
                d.insert(crate::window::FolloweeId::new(&node.followee_id), part);
            }
            let root = self.lockstep.find(link);
            let Some(r) = self.lockstep.links.get(&root) else {
                continue;
            };
            let cid = alert::campaign_id(&r.alert_id);
            let mut followees: Vec<&str> = r
                .members
                .iter()
                .filter_map(|m| self.lockstep.links.get(m).map(|n| &*n.followee_id))
                .collect();
            followees.sort_unstable();
            followees.dedup();
            let n = u32::try_from(followees.len()).unwrap_or(u32::MAX);
            let Some(a) = self.open.get_mut(&fk) else {
                continue;
            };
            if a.link_key != link
                || (a.campaign_id.as_deref() == Some(cid.as_str()) && a.campaign_followees == n)
            {
                continue;
            }
            // Issue #19 hook: an update only for a new campaign id or a doubled campaign,
            // never one per member per link (output linear in the input).
            let due = super::campaign_rate::relink_update_due(
                a.campaign_id.as_deref(),
                &cid,
                a.campaign_reported,
                n,
            );
            a.campaign_id = Some(cid);
            a.campaign_followees = n;
            if opened_now == Some(fk) {
                // The open record being emitted right now already carries it.
                a.campaign_reported = n;
                continue;
            }
            if !due {
                continue;
            }
            a.campaign_reported = n;
            let eval = triggers::evaluate(&self.cfg, self.win(fk), t);
            if let Some(rec) = self.build_alert(fk, AlertStatus::Update, t, &eval) {
                out.alerts.push(rec);
            }
        }
        // An alert opened in this call: refresh its open record in place.
        if let Some(a) = opened_now.and_then(|k| self.open.get(&k)) {
            let (cid, n) = (a.campaign_id.clone(), a.campaign_followees);
            for rec in out.alerts.iter_mut().rev() {
                if rec.alert_id == a.alert_id {
                    rec.campaign_id = cid.clone();
                    rec.campaign_followees = n;
                    rec.severity = Severity::from_excess(a.peak_excess, n > 1);
                    break;
                }
            }
            for m in out.moderation.iter_mut() {
                if m.alert_id == a.alert_id {
                    m.campaign_id = cid.clone();
                }
            }
        }
    }
}

// ---- issue 21: state export / import (state.rs) ---------------------------------------

/// Lockstep state as plain, serializable values, every list sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockstepState {
    /// Follower key → (alert link key, time) in the order they were noted.
    pub follower_alerts: Vec<(u64, Vec<(u64, i64)>)>,
    /// Alert pair → (shared followers, last time).
    pub overlaps: Vec<((u64, u64), u32, i64)>,
    pub links: Vec<LinkState>,
}

/// Issue 21: one key of the lockstep maps (a changelog record each).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum LockstepKey {
    /// A flagged follower (its key): the alerts it appeared in.
    Follower(u64),
    /// An alert pair (link keys, smaller first): the followers they share.
    Pair(u64, u64),
    /// A campaign union-find node (an alert's link key).
    Link(u64),
}

/// Issue 21: the value of one lockstep key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockstepValue {
    Follower(Vec<(u64, i64)>),
    /// (shared followers, last time)
    Pair(u32, i64),
    Link(LinkState),
}

/// One campaign union-find node. The followee's slot is not exported: import finds it
/// again from `followee_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkState {
    pub link: u64,
    pub parent: u64,
    pub alert_id: String,
    pub burst_start_ms: i64,
    pub followee_id: String,
    pub last_ms: i64,
    pub open: bool,
    pub members: Vec<u64>,
}

impl LinkNode {
    /// This node (of link key `link`) as its serializable state.
    fn state(&self, link: u64) -> LinkState {
        LinkState {
            link,
            parent: self.parent,
            alert_id: self.alert_id.clone(),
            burst_start_ms: self.burst_start_ms,
            followee_id: self.followee_id.to_string(),
            last_ms: self.last_ms,
            open: self.open,
            members: self.members.clone(),
        }
    }
}

/// Slot that no followee has: a node whose followee is no longer tracked finds no open
/// alert, exactly as when its slot was reused.
pub(super) const NO_SLOT: u64 = u64::MAX;

impl Lockstep {
    pub fn export(&self) -> LockstepState {
        let mut follower_alerts: Vec<(u64, Vec<(u64, i64)>)> = self
            .follower_alerts
            .iter()
            .map(|(&k, v)| (k, v.clone()))
            .collect();
        follower_alerts.sort_unstable();
        let mut overlaps: Vec<((u64, u64), u32, i64)> = self
            .overlaps
            .iter()
            .map(|(&k, o)| (k, o.shared, o.last_ms))
            .collect();
        overlaps.sort_unstable();
        let mut links: Vec<LinkState> = self.links.iter().map(|(&k, n)| n.state(k)).collect();
        links.sort_unstable_by_key(|l| l.link);
        LockstepState {
            follower_alerts,
            overlaps,
            links,
        }
    }

    /// Adds `s` (replacing entries with the same keys); `slot_of` finds a followee's
    /// current slot.
    pub fn import(&mut self, s: &LockstepState, slot_of: impl Fn(&str) -> Option<u32>) {
        for (k, v) in &s.follower_alerts {
            if let Some(oldest) = v.iter().map(|&(_, t)| t).min() {
                self.follower_due.file(*k, oldest);
                self.follower_alerts.insert(*k, v.clone());
            }
        }
        for &(pair, shared, last_ms) in &s.overlaps {
            self.overlap_due.file(pair, last_ms);
            self.overlaps.insert(pair, Overlap { shared, last_ms });
        }
        for l in &s.links {
            let followee_key = slot_of(&l.followee_id).map_or(NO_SLOT, u64::from);
            self.links.insert(
                l.link,
                LinkNode {
                    parent: l.parent,
                    alert_id: l.alert_id.clone(),
                    burst_start_ms: l.burst_start_ms,
                    followee_key,
                    followee_id: l.followee_id.as_str().into(),
                    last_ms: l.last_ms,
                    open: l.open,
                    members: l.members.clone(),
                },
            );
        }
    }

    /// Issue 21: how many keys changed since the last [`Lockstep::take_dirty`].
    pub fn dirty_len(&self) -> usize {
        self.dirty.as_ref().map_or(0, HashMap::len)
    }

    /// Issue 21: the keys changed since the last call, with their partitions, sorted.
    pub fn take_dirty(&mut self) -> Vec<(LockstepKey, i32)> {
        let Some(d) = self.dirty.as_mut() else {
            return Vec::new();
        };
        let mut v: Vec<(LockstepKey, i32)> = d.drain().collect();
        v.sort_unstable();
        v
    }

    /// The value `key` holds now (`None`: not held, a tombstone).
    pub fn export_key(&self, key: LockstepKey) -> Option<LockstepValue> {
        match key {
            LockstepKey::Follower(k) => self
                .follower_alerts
                .get(&k)
                .map(|v| LockstepValue::Follower(v.clone())),
            LockstepKey::Pair(a, b) => self
                .overlaps
                .get(&(a, b))
                .map(|o| LockstepValue::Pair(o.shared, o.last_ms)),
            LockstepKey::Link(l) => self.links.get(&l).map(|n| LockstepValue::Link(n.state(l))),
        }
    }

    /// Sets `key` to `value`, or removes it (`None`); `slot_of` finds a followee's slot.
    pub fn import_key(
        &mut self,
        key: LockstepKey,
        value: Option<&LockstepValue>,
        slot_of: impl Fn(&str) -> Option<u32>,
    ) -> bool {
        match (key, value) {
            (LockstepKey::Follower(k), None) => {
                self.follower_alerts.remove(&k);
            }
            (LockstepKey::Pair(a, b), None) => {
                self.overlaps.remove(&(a, b));
            }
            (LockstepKey::Link(l), None) => {
                self.links.remove(&l);
            }
            (LockstepKey::Follower(k), Some(LockstepValue::Follower(v))) => {
                self.follower_alerts.remove(&k);
                self.import(
                    &LockstepState {
                        follower_alerts: vec![(k, v.clone())],
                        ..LockstepState::default()
                    },
                    slot_of,
                );
            }
            (LockstepKey::Pair(a, b), Some(&LockstepValue::Pair(shared, last_ms))) => {
                self.import(
                    &LockstepState {
                        overlaps: vec![((a, b), shared, last_ms)],
                        ..LockstepState::default()
                    },
                    slot_of,
                );
            }
            (LockstepKey::Link(l), Some(LockstepValue::Link(n))) if n.link == l => {
                self.import(
                    &LockstepState {
                        links: vec![n.clone()],
                        ..LockstepState::default()
                    },
                    slot_of,
                );
            }
            _ => return false,
        }
        true
    }

    /// Points link `link`'s node at followee slot `slot` (a followee imported after the
    /// lockstep state).
    pub fn set_slot(&mut self, link: u64, slot: u32) {
        if let Some(n) = self.links.get_mut(&link) {
            n.followee_key = u64::from(slot);
        }
    }
}

// ---- issue 21: flagged follows for the follower-keyed link stage (links.rs) ----------

impl Detector {
    /// Starts (or stops) collecting the flagged follows of open alerts for
    /// [`take_links`](Self::take_links). Off by default: drivers without a link stage pay
    /// nothing.
    pub fn emit_links(&mut self, on: bool) {
        self.links_out = on.then(Vec::new);
    }

    /// Flagged follows collected since the last call, in the order they were flagged.
    pub fn take_links(&mut self) -> Vec<crate::links::FlaggedLink> {
        self.links_out
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Collects follower `f`'s flag in followee `key`'s open alert.
    pub(super) fn note_link(&mut self, key: u64, f: &super::FlaggedFollow<'_>) {
        let (Some(out), Some(a)) = (self.links_out.as_mut(), self.open.get(&key)) else {
            return;
        };
        out.push(crate::links::FlaggedLink {
            v: crate::links::LINKS_VERSION,
            follower_id: f.follower_id.to_string(),
            followee_id: a.followee_id.clone(),
            alert_id: a.alert_id.clone(),
            burst_start_ms: a.burst_start_ms,
            ts_ms: f.ts_ms,
        });
    }
}
