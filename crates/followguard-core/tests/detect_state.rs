//! Issue 21: detector state exported mid-stream and imported into a fresh detector gives
//! exactly the records of an uninterrupted run — whole-detector snapshots, and the
//! changelog the service will write (dirty followees per batch, tombstones, clocks and
//! the shared maps), both through their JSON bytes. Corrupt records are errors, never
//! panics; serialization is deterministic.

// The golden-stream test reads its fixture file; the library may not.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use followguard_core::detector::state::{
    DetectorState, FolloweeState, LockstepChange, LockstepKey, ModerationEntry, PartitionState,
    SharedState, StateError, STATE_VERSION,
};
use followguard_core::detector::{Detector, DetectorConfig, Emitted, Observation};
use followguard_core::features::REASON_CODES;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use followguard_core::window::FolloweeId;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const T0: i64 = 1_795_000_000_000;
const FOLLOWEES: [&str; 5] = ["alice", "bob", "carol", "1234", "dave"];

#[derive(Debug, Clone)]
struct Ev {
    followee: usize,
    follower: usize,
    gap_ms: i64,
    jitter_ms: i64,
    prob: f32,
    follow: bool,
    /// The follower registered minutes before the follow (issue #20's newcomer channel).
    fresh: bool,
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    (
        0usize..FOLLOWEES.len(),
        0usize..200,
        prop_oneof![8 => 0i64..20_000, 1 => 0i64..7_200_000, 1 => 0i64..(2 * 86_400_000)],
        0i64..120_000,
        prop_oneof![3 => 0.0f32..0.3, 2 => 0.7f32..1.0],
        prop_oneof![9 => Just(true), 1 => Just(false)],
        prop_oneof![9 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(followee, follower, gap_ms, jitter_ms, prob, follow, fresh)| Ev {
                followee,
                follower,
                gap_ms,
                jitter_ms,
                prob,
                follow,
                fresh,
            },
        )
}

fn cfg() -> DetectorConfig {
    DetectorConfig {
        // small thresholds and short periods so random streams exercise the lifecycle,
        // pending follows, lockstep and the dedup
        short_min_excess: 5.0,
        long_min_excess: 8.0,
        z: 2.0,
        idle_ttl_ms: 6 * 3_600_000,
        resolve_after_ms: 600_000,
        lockstep_min_shared: 3,
        moderation_dedup_ms: 3_600_000,
        newcomer_batch_min: 4,
        model_version: "state".into(),
        ..DetectorConfig::default()
    }
}

fn reasons() -> [(&'static str, f32); 3] {
    [
        (REASON_CODES[0][0], 0.2),
        (REASON_CODES[1][1], -0.1),
        ("", 0.0),
    ]
}

/// Feeds events `evs` (times continuing from `t`) into `d`; returns the new time.
fn feed(
    d: &mut Detector,
    evs: &[Ev],
    mut t: i64,
    followers: &[String],
    out: &mut Vec<Emitted>,
) -> i64 {
    for e in evs {
        t += e.gap_ms;
        let ts = t - e.jitter_ms;
        // independent of where a run is cut
        let event_id = format!("e{ts}-{}", e.follower);
        let o = Observation {
            event_id: &event_id,
            followee_id: FOLLOWEES[e.followee],
            follower_id: &followers[e.follower],
            follow: e.follow,
            ts_ms: ts,
            partition: (e.followee % 2) as i32,
            prob: e.prob,
            suspicious: e.prob >= 0.5,
            follower_created_s: if e.fresh {
                ts / 1000 - 600 - (e.follower as i64 % 7) * 60
            } else {
                T0 / 1000 - 100 * 86_400
            },
            reasons: reasons(),
        };
        out.push(d.observe(&o));
    }
    t
}

/// The first event whose records differ: (index, got, wanted).
fn first_diff(
    got: &[Emitted],
    want: &[Emitted],
) -> Option<(usize, Option<String>, Option<String>)> {
    (0..got.len().max(want.len()))
        .find(|&i| got.get(i) != want.get(i))
        .map(|i| (i, got.get(i).cloned(), want.get(i).cloned()))
        .map(|(i, g, w)| {
            let brief = |e: Option<Emitted>| {
                e.map(|e| {
                    let a: Vec<_> = e
                        .alerts
                        .iter()
                        .map(|a| {
                            format!(
                                "{}:{:?}:{}:{:?}",
                                a.alert_id, a.status, a.followee_id, a.campaign_id
                            )
                        })
                        .collect();
                    let m: Vec<_> = e
                        .moderation
                        .iter()
                        .map(|m| format!("{}>{}", m.follower_id, m.followee_id))
                        .collect();
                    format!("{a:?} {m:?} w{}", e.withheld)
                })
            };
            (i, brief(g), brief(w))
        })
}

fn followers() -> Vec<String> {
    (0..200).map(|i| format!("u{i}")).collect()
}

fn uninterrupted(evs: &[Ev]) -> Vec<Emitted> {
    let mut d = Detector::new(cfg());
    let mut out = Vec::new();
    feed(&mut d, evs, T0, &followers(), &mut out);
    out
}

/// The changelog as a compacted topic would hold it: last value per key.
#[derive(Default)]
struct Changelog {
    followees: BTreeMap<String, Vec<u8>>,
    clocks: BTreeMap<i32, Vec<u8>>,
    moderation: BTreeMap<u64, Vec<u8>>,
    /// The lockstep maps, whole, as a snapshot writes them, with the writer's order.
    shared: (u64, Vec<u8>),
    /// The lockstep keys changed since (campaign links), per key, with their order.
    lockstep: BTreeMap<LockstepKey, (u64, Vec<u8>)>,
}

impl Changelog {
    /// What the service writes after a batch (its `n`th): with a snapshot, the lockstep
    /// maps whole; then the dirty followees (a tombstone for those with no state left),
    /// the partitions' clocks, the changed moderation entries and lockstep keys.
    fn write_batch(&mut self, d: &mut Detector, n: u64, snapshot: bool) {
        if snapshot {
            let mut shared = d.export_shared();
            shared.moderation.clear();
            self.shared = (n, shared.to_bytes());
        }
        for (mut c, _) in d.take_dirty_lockstep() {
            c.n = n;
            self.lockstep.insert(c.key, (n, c.to_bytes()));
        }
        for (id, _) in d.take_dirty() {
            match d.export_followee(&id) {
                Some(s) => self.followees.insert(id.to_string(), s.to_bytes()),
                None => self.followees.remove(&id.to_string()),
            };
        }
        for p in [0, 1] {
            if let Some(c) = d.export_clock(p) {
                self.clocks.insert(p, c.to_bytes());
            }
        }
        for (m, _) in d.take_dirty_moderation() {
            match m.last_ms {
                Some(_) => self.moderation.insert(m.follower_key, m.to_bytes()),
                None => self.moderation.remove(&m.follower_key),
            };
        }
    }

    fn restore(&self) -> Detector {
        let mut d = Detector::new(cfg());
        for b in self.clocks.values() {
            d.import_clock(&PartitionState::from_bytes(b).unwrap())
                .unwrap();
        }
        let (copy_n, shared) = &self.shared;
        if !shared.is_empty() {
            d.import_shared(&SharedState::from_bytes(shared).unwrap())
                .unwrap();
        }
        // Changes not older than the whole copy (those of its own batch are in it).
        for (n, b) in self.lockstep.values() {
            if n >= copy_n {
                d.import_lockstep_change(&LockstepChange::from_bytes(b).unwrap())
                    .unwrap();
            }
        }
        for b in self.moderation.values() {
            d.import_moderation(&ModerationEntry::from_bytes(b).unwrap())
                .unwrap();
        }
        for b in self.followees.values() {
            d.import_followee(&FolloweeState::from_bytes(b).unwrap())
                .unwrap();
        }
        d
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Export everything mid-stream, through JSON, into a fresh detector: the rest of the
    /// stream gives exactly the records of an uninterrupted run, and the state exported
    /// again right after the import is byte-identical.
    #[test]
    fn snapshot_roundtrip_continues_identically(
        evs in prop::collection::vec(ev_strategy(), 1..700),
        cut in 0.0f64..1.0,
    ) {
        let want = uninterrupted(&evs);
        let k = ((evs.len() as f64) * cut) as usize;
        let fl = followers();
        let mut d = Detector::new(cfg());
        let mut got = Vec::new();
        let t = feed(&mut d, &evs[..k], T0, &fl, &mut got);
        let bytes = d.export().to_bytes();
        prop_assert_eq!(&bytes, &d.export().to_bytes(), "export is deterministic");
        let state = DetectorState::from_bytes(&bytes).unwrap();
        let mut fresh = Detector::new(cfg());
        let refused = fresh.import(&state).unwrap();
        prop_assert!(refused.is_empty(), "refused {:?}", refused);
        prop_assert_eq!(&fresh.export().to_bytes(), &bytes, "export ∘ import is the identity");
        prop_assert_eq!(fresh.open_alerts(), d.open_alerts());
        prop_assert_eq!(fresh.tracked_followees(), d.tracked_followees());
        drop(d);
        feed(&mut fresh, &evs[k..], t, &fl, &mut got);
        prop_assert_eq!(first_diff(&got, &want), None);
    }

    /// The changelog path: dirty followees, moderation entries and lockstep keys written
    /// per batch (tombstones for evicted / pruned ones), the lockstep maps whole only
    /// every `snapshot_every` batches, restored into a fresh detector at a random batch
    /// boundary, gives exactly the records of an uninterrupted run (campaign updates
    /// included: links made after the last whole copy are in the per-key changes).
    #[test]
    fn changelog_restore_continues_identically(
        evs in prop::collection::vec(ev_strategy(), 1..700),
        batch in 1usize..64,
        cut in 0.0f64..1.0,
        snapshot_every in 1usize..12,
    ) {
        let want = uninterrupted(&evs);
        let fl = followers();
        let batches: Vec<&[Ev]> = evs.chunks(batch).collect();
        let k = ((batches.len() as f64) * cut) as usize;
        let mut d = Detector::new(cfg());
        d.track_dirty(true);
        let mut log = Changelog::default();
        let mut got = Vec::new();
        let mut t = T0;
        for (i, b) in batches[..k].iter().enumerate() {
            t = feed(&mut d, b, t, &fl, &mut got);
            log.write_batch(&mut d, i as u64 + 1, i % snapshot_every == 0);
        }
        let mut restored = log.restore();
        drop(d);
        for b in &batches[k..] {
            t = feed(&mut restored, b, t, &fl, &mut got);
        }
        prop_assert_eq!(first_diff(&got, &want), None);
    }

    /// Arbitrary bytes never panic the decoder or the import.
    #[test]
    fn arbitrary_bytes_are_errors_not_panics(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut d = Detector::new(cfg());
        if let Ok(s) = FolloweeState::from_bytes(&b) {
            let _ = d.import_followee(&s);
        }
        let _ = DetectorState::from_bytes(&b);
    }
}

/// A followee state with an open alert, from a real burst.
fn burst_state() -> (Detector, FolloweeState) {
    let mut d = Detector::new(cfg());
    d.track_dirty(true);
    let mut out = Vec::new();
    feed(&mut d, &burst(0), T0, &followers(), &mut out);
    assert_eq!(d.open_alerts(), 1, "the burst opened an alert");
    assert_eq!(d.take_dirty(), vec![(FolloweeId::new("alice"), 0)]);
    assert!(d.take_dirty().is_empty(), "take_dirty drains");
    let s = d.export_followee(&FolloweeId::new("alice")).unwrap();
    (d, s)
}

#[test]
fn a_restored_open_alert_keeps_its_id_and_resolves_later() {
    let (mut d, s) = burst_state();
    let id = s.open.as_ref().unwrap().alert_id.clone();
    let mut fresh = Detector::new(cfg());
    fresh.import_clock(&d.export_clock(0).unwrap()).unwrap();
    fresh.import_followee(&s).unwrap();
    assert_eq!(fresh.open_alerts(), 1);
    // What a restored instance hands its webhook: the open alert, as an update.
    let adopted = fresh.open_alert_records(0);
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].alert_id, id);
    assert_eq!(adopted[0].status.as_str(), "update");
    assert_eq!(
        adopted,
        d.open_alert_records(0),
        "as the writer would describe it"
    );
    assert!(fresh.open_alert_records(1).is_empty());
    // Two days of quiet organic traffic on another followee of partition 0 move the
    // watermark past the long window.
    let evs: Vec<Ev> = (0..48)
        .map(|i| Ev {
            followee: 2,
            follower: i,
            gap_ms: 3_600_000,
            jitter_ms: 0,
            prob: 0.05,
            follow: true,
            fresh: false,
        })
        .collect();
    let (mut out, mut want) = (Vec::new(), Vec::new());
    feed(&mut fresh, &evs, T0 + 240_000, &followers(), &mut out);
    feed(&mut d, &evs, T0 + 240_000, &followers(), &mut want);
    assert_eq!(first_diff(&out, &want), None, "as if never restarted");
    let alerts: Vec<_> = out.iter().flat_map(|e| e.alerts.iter()).collect();
    assert!(
        alerts.iter().all(|a| a.alert_id == id),
        "no other alert: {alerts:?}"
    );
    assert_eq!(
        alerts.last().map(|a| a.status.as_str()),
        Some("resolved"),
        "the restored alert resolves under its id"
    );
    assert_eq!(fresh.open_alerts(), 0);
}

#[test]
fn corrupt_records_are_refused_not_imported() {
    let (_, s) = burst_state();
    let mut d = Detector::new(cfg());
    let mut wrong_version = s.clone();
    wrong_version.v = STATE_VERSION + 1;
    assert_eq!(
        d.import_followee(&wrong_version),
        Err(StateError::Version(STATE_VERSION + 1))
    );
    let mut short_ring = s.clone();
    short_ring.window.as_mut().unwrap().short_follows.pop();
    assert!(matches!(
        d.import_followee(&short_ring),
        Err(StateError::Malformed(_))
    ));
    let mut bad_kind = s.clone();
    bad_kind.open.as_mut().unwrap().kind = "surge".into();
    assert!(matches!(
        d.import_followee(&bad_kind),
        Err(StateError::Malformed(_))
    ));
    let mut orphan_alert = s.clone();
    orphan_alert.window = None;
    assert!(d.import_followee(&orphan_alert).is_err());
    assert_eq!(d.tracked_followees(), 0, "nothing was imported");
    assert!(matches!(
        FolloweeState::from_bytes(b"{\"v\":1,"),
        Err(StateError::Decode(_))
    ));
    // A valid record of the same followee still imports.
    d.import_followee(&s).unwrap();
    assert_eq!((d.tracked_followees(), d.open_alerts()), (1, 1));
}

#[test]
fn eviction_is_a_tombstone_and_revoke_is_not() {
    let mut d = Detector::new(cfg());
    d.track_dirty(true);
    let one = |followee, gap_ms| Ev {
        followee,
        follower: 1,
        gap_ms,
        jitter_ms: 0,
        prob: 0.05,
        follow: true,
        fresh: false,
    };
    let mut out = Vec::new();
    let t = feed(&mut d, &[one(0, 0), one(1, 0)], T0, &followers(), &mut out);
    assert_eq!(d.take_dirty().len(), 2);
    // Partition 1 revoked: its followee is not dirty (the new owner holds its state).
    feed(&mut d, &[one(3, 0)], t, &followers(), &mut out);
    d.drop_partition(1);
    assert!(d.take_dirty().is_empty());
    // "alice" idle past the TTL on partition 0: evicted by the sweep → dirty, no state.
    feed(&mut d, &[one(2, 7 * 3_600_000)], t, &followers(), &mut out);
    let dirty = d.take_dirty();
    assert!(dirty.contains(&(FolloweeId::new("alice"), 0)), "{dirty:?}");
    assert_eq!(d.export_followee(&FolloweeId::new("alice")), None);
}

/// The golden stream (real model, real reason codes, a campaign) through `Pipeline`: the
/// state exported at several points, through JSON, into a fresh pipeline, gives exactly
/// the alert and moderation records of an uninterrupted run.
#[test]
fn golden_stream_pipeline_roundtrip_at_several_cuts() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small.jsonl");
    let bytes = std::fs::read(path).expect("golden input");
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let model = Arc::new(support::shipped_model());
    let new = || Pipeline::new(model.clone(), PipelineConfig::default());
    let run = |p: &mut Pipeline, lines: &[&[u8]], out: &mut Vec<String>| {
        for l in lines {
            if let Ok(o) = p.process(l, None, 0) {
                for a in &o.alerts {
                    out.push(serde_json::to_string(a).unwrap());
                }
                for m in &o.moderation {
                    out.push(serde_json::to_string(m).unwrap());
                }
            }
        }
    };
    let mut want = Vec::new();
    run(&mut new(), &lines, &mut want);
    assert!(
        want.iter().any(|r| r.contains("\"status\":\"open\"")),
        "the golden stream opens alerts"
    );
    for cut in [
        lines.len() / 5,
        lines.len() / 3,
        lines.len() / 2,
        lines.len() * 4 / 5,
    ] {
        let mut first = new();
        let mut got = Vec::new();
        run(&mut first, &lines[..cut], &mut got);
        let bytes = first.export_state().to_bytes();
        let mut second = new();
        let refused = second
            .import_state(&DetectorState::from_bytes(&bytes).unwrap())
            .unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(second.export_state().to_bytes(), bytes);
        run(&mut second, &lines[cut..], &mut got);
        assert_eq!(got, want, "cut at line {cut}");
    }
}

/// The same 120 flagged followers following `followee` every 2 s: a cohort's burst.
fn burst(followee: usize) -> Vec<Ev> {
    (0..120)
        .map(|i| Ev {
            followee,
            follower: i,
            gap_ms: 2_000,
            jitter_ms: 0,
            prob: 0.95,
            follow: true,
            fresh: false,
        })
        .collect()
}

/// A detector tracking its changes after a cohort's burst on alice, the changelog holding
/// it (a snapshot batch), the records, and the time reached.
fn alice_burst_logged(fl: &[String]) -> (Detector, Changelog, Vec<Emitted>, i64) {
    let mut d = Detector::new(cfg());
    d.track_dirty(true);
    let mut log = Changelog::default();
    let mut before = Vec::new();
    let t = feed(&mut d, &burst(0), T0, fl, &mut before);
    log.write_batch(&mut d, 1, true);
    (d, log, before, t)
}

/// A follower moderated before the restart is not moderated again after it (within the
/// dedup period), when another followee's alert flags it.
#[test]
fn moderation_dedup_survives_a_changelog_restore() {
    let fl = followers();
    let (mut d, log, before, t) = alice_burst_logged(&fl);
    let moderated: usize = before.iter().map(|e| e.moderation.len()).sum();
    assert!(
        moderated > 50,
        "alice's alert moderated its followers ({moderated})"
    );
    let mut restored = log.restore();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    feed(&mut restored, &burst(1), t, &fl, &mut got);
    feed(&mut d, &burst(1), t, &fl, &mut want);
    assert!(
        want.iter().any(|e| !e.alerts.is_empty()),
        "bob's alert opens"
    );
    assert_eq!(first_diff(&got, &want), None);
    let again: usize = got.iter().map(|e| e.moderation.len()).sum();
    assert_eq!(again, 0, "no follower moderated twice");
}

/// Campaign links made after the last whole lockstep copy survive a restore: a cohort
/// hits alice (whole copy written), then bob (linked into one campaign; only per-key
/// lockstep changes written), the detector is restored from the changelog, and the
/// cohort's next target, carol, joins the same campaign exactly as without the restore.
#[test]
fn campaign_links_after_the_last_snapshot_survive_a_restore() {
    let fl = followers();
    let (mut d, mut log, mut before, t) = alice_burst_logged(&fl);
    let t = feed(&mut d, &burst(1), t, &fl, &mut before);
    log.write_batch(&mut d, 2, false);
    let campaigns = |out: &[Emitted]| -> std::collections::BTreeSet<String> {
        out.iter()
            .flat_map(|e| &e.alerts)
            .filter_map(|a| a.campaign_id.clone())
            .collect()
    };
    assert_eq!(campaigns(&before).len(), 1, "alice and bob linked");
    assert!(!log.lockstep.is_empty(), "links logged per key");
    let mut restored = log.restore();
    assert_eq!(
        restored.export_shared(),
        d.export_shared(),
        "the lockstep maps restored"
    );
    let (mut got, mut want) = (Vec::new(), Vec::new());
    feed(&mut restored, &burst(2), t, &fl, &mut got);
    feed(&mut d, &burst(2), t, &fl, &mut want);
    assert_eq!(
        campaigns(&want),
        campaigns(&before),
        "carol joins the campaign"
    );
    assert_eq!(first_diff(&got, &want), None);
}

/// The changelog of a group, per partition: the last value of each followee key and
/// each clock, as the writers logged them (the dirty partition decides where a key goes).
#[derive(Default)]
struct PartLog {
    followees: BTreeMap<(i32, String), Option<Vec<u8>>>,
    clocks: BTreeMap<i32, Vec<u8>>,
    /// Every write and hand-over, in order (a failure lists those of its followee).
    writes: Vec<String>,
}

impl PartLog {
    /// A flush of `d`: its dirty followees (tombstones for those with no state left) and
    /// the clocks of the partitions it holds.
    fn flush(&mut self, d: &mut Detector, who: &str) {
        for (id, p) in d.take_dirty() {
            let v = d.export_followee(&id).map(|s| s.to_bytes());
            let what = v.as_ref().map_or("tombstone".into(), |v| {
                String::from_utf8_lossy(v)
                    .chars()
                    .take(160)
                    .collect::<String>()
            });
            self.writes.push(format!("{who}: {p}/{id} = {what}"));
            self.followees.insert((p, id.to_string()), v);
        }
        for p in [0, 1] {
            if let Some(c) = d.export_clock(p) {
                self.clocks.insert(p, c.to_bytes());
            }
        }
        d.take_dirty_moderation();
        d.take_dirty_lockstep();
    }

    /// Partition `p`'s state restored into `d` (clock first, then its followees).
    fn restore(&self, d: &mut Detector, p: i32) {
        if let Some(c) = self.clocks.get(&p) {
            d.import_clock(&PartitionState::from_bytes(c).unwrap())
                .unwrap();
        }
        for ((q, _), v) in &self.followees {
            if let (true, Some(v)) = (*q == p, v) {
                d.import_followee(&FolloweeState::from_bytes(v).unwrap())
                    .unwrap();
            }
        }
        d.take_dirty();
    }
}

/// [`cfg`] with the shipped relation between the idle TTL and the pending follows'
/// 24 h: a followee is evicted only once its pending follows and last burst are gone, so
/// no state without a window is left behind. (With a TTL below 24 h, as [`cfg`]'s 6 h,
/// such states exist and their changelog records go astray: docs/state.md, open
/// findings.)
fn handover_cfg() -> DetectorConfig {
    DetectorConfig {
        idle_ttl_ms: 2 * 86_400_000,
        ..cfg()
    }
}

/// A followee's state as a group must end with it: campaign fields and the last burst
/// aside (campaign links are instance-scoped; a sweep prunes every partition's last
/// bursts by its own partition's watermark, so their pruning depends on which
/// partitions an instance holds).
fn comparable(mut s: FolloweeState) -> FolloweeState {
    if let Some(o) = s.open.as_mut() {
        o.campaign_id = None;
        o.campaign_followees = 0;
        o.campaign_reported = 0;
        o.link_key = 0;
    }
    s.last_burst = None;
    s
}

/// Alert records as (id, status, event time, followee): what the group must write too.
fn lifecycle(out: &[Emitted]) -> std::collections::BTreeSet<(String, String, i64, String)> {
    out.iter()
        .flat_map(|e| &e.alerts)
        .filter(|a| a.status != followguard_core::alert::AlertStatus::Update)
        .map(|a| {
            (
                a.alert_id.clone(),
                format!("{:?}", a.status),
                a.event_time_ms,
                a.followee_id.clone(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Issue 21, a hand-over between two instances: X holds both partitions, logs its
    /// dirty state per batch; at a batch boundary partition 1 moves to Y (X flushes and
    /// drops it, Y restores it from the log), each goes on with its own partition's
    /// events, logging as before, and later partition 1 moves back to X (whose
    /// instance-scoped campaign links still name the slots it had). The opens and
    /// resolves (ids and event times) equal one detector's; every followee's state equals
    /// one detector's, and what the log holds for it in its own partition is what its
    /// holder has (what a restore of that partition would read), in both runs (campaign
    /// fields and last bursts aside: instance-scoped).
    #[test]
    fn a_partition_handed_over_mid_stream_ends_as_one_detector(
        evs in prop::collection::vec(ev_strategy(), 1..700),
        batch in 1usize..64,
        cut in 0.0f64..1.0,
        back in 0.0f64..1.0,
    ) {
        let fl = followers();
        let mut one = Detector::new(handover_cfg());
        one.track_dirty(true);
        let mut one_log = PartLog::default();
        let mut want = Vec::new();
        let batches: Vec<&[Ev]> = evs.chunks(batch).collect();
        let mut t = T0;
        for b in &batches {
            t = feed(&mut one, b, t, &fl, &mut want);
            one_log.flush(&mut one, "one");
        }
        let k = ((batches.len() as f64) * cut) as usize;
        let (mut x, mut y) = (Detector::new(handover_cfg()), Detector::new(handover_cfg()));
        x.track_dirty(true);
        y.track_dirty(true);
        let mut log = PartLog::default();
        let mut got = Vec::new();
        let mut t = T0;
        for b in &batches[..k] {
            t = feed(&mut x, b, t, &fl, &mut got);
            log.flush(&mut x, "x");
        }
        x.drop_partition(1);
        log.writes.push("partition 1 handed over to Y".into());
        log.restore(&mut y, 1);
        // Later, partition 1 comes back to X (Y flushed every batch; X restores it).
        let k2 = k + ((batches.len() - k) as f64 * back) as usize;
        let mut home = false;
        for (j, b) in batches[k..].iter().enumerate() {
            if k + j == k2 {
                y.drop_partition(1);
                log.writes.push("partition 1 handed back to X".into());
                log.restore(&mut x, 1);
                home = true;
            }
            // Each event to the instance holding its partition (followee % 2), at the
            // times `feed` gives it in the whole stream.
            for e in b.iter() {
                let d = if e.followee % 2 == 1 && !home { &mut y } else { &mut x };
                t = feed(d, std::slice::from_ref(e), t, &fl, &mut got);
            }
            log.flush(&mut x, "x");
            log.flush(&mut y, "y");
        }
        prop_assert_eq!(lifecycle(&got), lifecycle(&want));
        for (i, f) in FOLLOWEES.iter().enumerate() {
            let id = FolloweeId::new(f);
            let holder = if i % 2 == 1 && !home { &y } else { &x };
            prop_assert_eq!(
                holder.export_followee(&id).map(comparable),
                one.export_followee(&id).map(comparable),
                "followee {} live", f
            );
            let p = (i % 2) as i32;
            let logged = |l: &PartLog| {
                l.followees
                    .get(&(p, f.to_string()))
                    .cloned()
                    .flatten()
                    .map(|v| comparable(FolloweeState::from_bytes(&v).unwrap()))
            };
            // What a restore of the partition would read is what its holder has.
            prop_assert_eq!(
                logged(&log),
                holder.export_followee(&id).map(comparable),
                "followee {} as the group logged it; its writes {:#?}",
                f,
                log.writes.iter().filter(|w| w.contains(f) || !w.contains('/')).collect::<Vec<_>>()
            );
            prop_assert_eq!(logged(&one_log), one.export_followee(&id).map(comparable), "followee {} as one logged it", f);
        }
    }
}

/// Issue 21, campaign links across a hand-over and back: a cohort's bursts on bob
/// (partition 1) and alice (partition 0) are linked, bob's alert resolves, partition 1 is
/// revoked (its followees' slots freed and taken by partition 0's), restored again, and
/// the cohort's next burst (dave) relinks the campaign. Every followee's record in its own
/// partition of the log is what the detector holds, and no other partition holds one.
#[test]
fn a_campaign_relinked_after_a_partition_came_back_logs_each_followee_in_its_partition() {
    let fl = followers();
    let mut x = Detector::new(handover_cfg());
    x.track_dirty(true);
    let mut log = PartLog::default();
    let mut out = Vec::new();
    let mut t = feed(&mut x, &burst(1), T0, &fl, &mut out);
    t = feed(&mut x, &burst(0), t, &fl, &mut out);
    log.flush(&mut x, "x");
    // Quiet: a benign follow on each partition a day later resolves the alerts.
    let calm = |followee, hours: i64| Ev {
        followee,
        follower: 199,
        gap_ms: hours * 3_600_000,
        jitter_ms: 0,
        prob: 0.05,
        follow: true,
        fresh: false,
    };
    t = feed(&mut x, &[calm(3, 26), calm(0, 0)], t, &fl, &mut out);
    let resolved = out
        .iter()
        .flat_map(|e| &e.alerts)
        .filter(|a| a.status == followguard_core::alert::AlertStatus::Resolved)
        .count();
    assert!(resolved >= 1, "an alert resolved");
    log.flush(&mut x, "x");
    x.drop_partition(1);
    t = feed(&mut x, &[calm(4, 1), calm(2, 0)], t, &fl, &mut out);
    log.flush(&mut x, "x");
    log.restore(&mut x, 1);
    t = feed(&mut x, &burst(4), t, &fl, &mut out);
    log.flush(&mut x, "x");
    feed(&mut x, &burst(1), t, &fl, &mut out);
    log.flush(&mut x, "x");
    let campaigns: std::collections::BTreeSet<String> = out
        .iter()
        .flat_map(|e| &e.alerts)
        .filter_map(|a| a.campaign_id.clone())
        .collect();
    assert!(!campaigns.is_empty(), "the cohort's alerts are linked");
    for (i, f) in FOLLOWEES.iter().enumerate() {
        let own = (i % 2) as i32;
        let id = FolloweeId::new(f);
        let logged = log
            .followees
            .get(&(own, f.to_string()))
            .cloned()
            .flatten()
            .map(|v| FolloweeState::from_bytes(&v).unwrap());
        let writes: Vec<&String> = log.writes.iter().filter(|w| w.contains(f)).collect();
        // (A state left with only a last burst is pruned unlogged: not compared.)
        let held = |s: FolloweeState| {
            Some(comparable(s)).filter(|s| s.window.is_some() || !s.pending.is_empty())
        };
        assert_eq!(
            logged.and_then(held),
            x.export_followee(&id).and_then(held),
            "{f} as logged in its partition {own}; its writes {writes:#?}"
        );
        let elsewhere = log
            .followees
            .get(&(1 - own, f.to_string()))
            .is_some_and(Option::is_some);
        assert!(!elsewhere, "{f} logged in another partition: {writes:#?}");
    }
}
