//! Property tests of the detection core (no model: scores are explicit inputs).
//! Window arithmetic against brute force, eviction invariance, one `open` per burst,
//! deterministic alert ids, and partition splits giving the same alerts.

use followguard_core::alert::{Alert, AlertStatus};
use followguard_core::detector::{Detector, DetectorConfig, Emitted, Observation};
use followguard_core::window::{Counts, Ring};
use proptest::prelude::*;
use std::collections::HashMap;

const T0: i64 = 1_795_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Ring sums equal a brute-force count of the events whose bucket lies in the
    /// window ending at the newest bucket, for in-order and late events alike.
    #[test]
    fn ring_counts_equal_brute_force(steps in prop::collection::vec((-12i64..6, any::<bool>()), 1..300)) {
        const N: usize = 6;
        let mut ring: Ring<u16, u16, N> = Ring::default();
        let mut seen: Vec<(u32, bool)> = Vec::new();
        let mut cursor: i64 = 100;
        let mut head: u32 = 0;
        for (delta, susp) in steps {
            // mostly forward, sometimes late (negative delta relative to the head)
            let idx = if delta >= 0 { cursor += delta; cursor } else { (cursor + delta).max(0) };
            let idx = idx as u32;
            if idx > head {
                ring.advance(head, idx);
                head = idx;
            }
            ring.add(head, idx, susp);
            seen.push((idx, susp));
            let brute = seen.iter().filter(|(i, _)| *i <= head && head - *i < N as u32).fold(
                Counts::default(),
                |mut c, (_, s)| { c.follows += 1; c.suspicious += u32::from(*s); c },
            );
            prop_assert_eq!(ring.sum(head, head), brute);
            // a reader further in the future sees only what is still inside its window
            let later = head + 3;
            let brute_later = seen.iter().filter(|(i, _)| *i <= later && later - *i < N as u32).count() as u32;
            prop_assert_eq!(ring.sum(head, later).follows, brute_later);
        }
    }
}

/// One synthetic event: followee index, follower index, time step, suspicious.
#[derive(Debug, Clone)]
struct Ev {
    followee: usize,
    follower: usize,
    gap_ms: i64,
    jitter_ms: i64,
    prob: f32,
    follow: bool,
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    (
        0usize..4,
        0usize..300,
        prop_oneof![8 => 0i64..20_000, 1 => 0i64..7_200_000, 1 => 0i64..(2 * 86_400_000)],
        0i64..120_000,
        prop_oneof![3 => 0.0f32..0.3, 2 => 0.7f32..1.0],
        prop_oneof![9 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(followee, follower, gap_ms, jitter_ms, prob, follow)| Ev {
            followee,
            follower,
            gap_ms,
            jitter_ms,
            prob,
            follow,
        })
}

fn cfg() -> DetectorConfig {
    DetectorConfig {
        // small thresholds and short periods so random streams exercise the lifecycle
        short_min_excess: 5.0,
        long_min_excess: 8.0,
        z: 2.0,
        idle_ttl_ms: 6 * 3_600_000,
        resolve_after_ms: 600_000,
        lockstep_min_shared: 3,
        model_version: "prop".into(),
        ..DetectorConfig::default()
    }
}

const FOLLOWEES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const REASONS: [(&str, f32); 3] = [
    ("statuses_low", 0.2),
    ("friends_followers_ratio_high", 0.1),
    ("", 0.0),
];

fn partition_of(followee: usize) -> i32 {
    (followee % 2) as i32
}

/// Drives a detector; `extra_evict` adds eviction calls after every event.
fn drive(evs: &[Ev], keep: impl Fn(usize) -> bool, extra_evict: bool) -> Vec<Emitted> {
    let mut d = Detector::new(cfg());
    let followers: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    let mut t = T0;
    let mut out = Vec::new();
    for e in evs {
        t += e.gap_ms;
        if !keep(e.followee) {
            continue;
        }
        let p = partition_of(e.followee);
        let o = Observation {
            event_id: "ev",
            followee_id: FOLLOWEES[e.followee],
            follower_id: &followers[e.follower],
            follow: e.follow,
            // up to 2 minutes of disorder (within the allowed lateness)
            ts_ms: t - e.jitter_ms,
            partition: p,
            prob: e.prob,
            suspicious: e.prob >= 0.5,
            follower_created_s: T0 / 1000 - 100 * 86_400,
            reasons: REASONS,
        };
        out.push(d.observe(&o));
        if extra_evict {
            for part in [0, 1] {
                if let Some(w) = d.watermark(part) {
                    d.evict_idle(part, w);
                    d.evict_idle(part, w - 3_600_000);
                }
            }
        }
    }
    out
}

fn alerts(out: &[Emitted]) -> Vec<Alert> {
    out.iter().flat_map(|e| e.alerts.iter().cloned()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn extra_eviction_never_changes_outcomes(evs in prop::collection::vec(ev_strategy(), 1..600)) {
        let plain = drive(&evs, |_| true, false);
        let evicting = drive(&evs, |_| true, true);
        prop_assert_eq!(plain, evicting);
    }

    #[test]
    fn never_two_opens_for_one_burst(evs in prop::collection::vec(ev_strategy(), 1..600)) {
        let all = alerts(&drive(&evs, |_| true, false));
        let mut state: HashMap<String, AlertStatus> = HashMap::new();
        let mut open_by_followee: HashMap<String, String> = HashMap::new();
        for a in &all {
            match a.status {
                AlertStatus::Open => {
                    prop_assert!(!state.contains_key(&a.alert_id), "alert id {} opened twice", a.alert_id);
                    prop_assert!(!open_by_followee.contains_key(&a.followee_id), "second open while {} has one", a.followee_id);
                    open_by_followee.insert(a.followee_id.clone(), a.alert_id.clone());
                }
                AlertStatus::Update => {
                    prop_assert_eq!(state.get(&a.alert_id), Some(&AlertStatus::Open), "update of a non-open alert");
                    continue;
                }
                AlertStatus::Resolved => {
                    prop_assert_eq!(state.get(&a.alert_id), Some(&AlertStatus::Open), "resolve of a non-open alert");
                    open_by_followee.remove(&a.followee_id);
                }
            }
            state.insert(a.alert_id.clone(), a.status);
        }
    }

    /// Same input → same records; and two instances splitting the partitions emit the
    /// same alerts (ids, statuses, times) as one instance. Campaign links may differ
    /// (they are the one cross-followee enrichment), so they are left out of the compare.
    #[test]
    fn alert_ids_are_deterministic_and_split_invariant(evs in prop::collection::vec(ev_strategy(), 1..600)) {
        let one = alerts(&drive(&evs, |_| true, false));
        prop_assert_eq!(&one, &alerts(&drive(&evs, |_| true, false)));
        let key = |a: &Alert| (a.alert_id.clone(), a.status, a.event_time_ms, a.followee_id.clone(), a.suspicious_count);
        let mut single: Vec<_> = one.iter().map(key).collect();
        let mut split: Vec<_> = alerts(&drive(&evs, |f| partition_of(f) == 0, false))
            .iter()
            .chain(alerts(&drive(&evs, |f| partition_of(f) == 1, false)).iter())
            .map(key)
            .collect();
        single.sort();
        split.sort();
        prop_assert_eq!(single, split);
    }
}

/// Regression: a burst that pauses for less than the resolve period stays one alert.
#[test]
fn pause_inside_a_burst_does_not_reopen() {
    let mut d = Detector::new(DetectorConfig::default());
    let mut recs = Vec::new();
    let ids: Vec<String> = (0..400).map(|i| format!("b{i}")).collect();
    for (k, id) in ids.iter().enumerate() {
        // 200 bots, a 30-minute pause, 200 more
        let t = T0 + k as i64 * 1000 + if k >= 200 { 1_800_000 } else { 0 };
        let o = Observation {
            event_id: "e",
            followee_id: "buyer",
            follower_id: id,
            follow: true,
            ts_ms: t,
            partition: 0,
            prob: 0.95,
            suspicious: true,
            follower_created_s: T0 / 1000 - 90 * 86_400,
            reasons: REASONS,
        };
        recs.extend(d.observe(&o).alerts);
    }
    let opens = recs
        .iter()
        .filter(|a| a.status == AlertStatus::Open)
        .count();
    assert_eq!(opens, 1, "{recs:#?}");
}

/// The random streams above do exercise the lifecycle and eviction: a long stream from
/// the same distribution opens, updates and resolves alerts, evicts idle followees, and
/// still gives identical outcomes with extra eviction calls.
#[test]
fn property_streams_exercise_alerts_and_eviction() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(Config::default().rng_algorithm),
    );
    let evs = prop::collection::vec(ev_strategy(), 3000)
        .new_tree(&mut runner)
        .expect("strategy")
        .current();
    let plain = drive(&evs, |_| true, false);
    let all = alerts(&plain);
    let count = |s: AlertStatus| all.iter().filter(|a| a.status == s).count();
    assert!(
        count(AlertStatus::Open) >= 2,
        "{} opens",
        count(AlertStatus::Open)
    );
    assert!(count(AlertStatus::Resolved) >= 1);
    assert!(plain.iter().any(|e| !e.moderation.is_empty()));
    // eviction really removes state in this stream
    let mut d = Detector::new(cfg());
    let mut t = T0;
    let mut evicted = 0;
    let mut seen = std::collections::HashSet::new();
    for e in &evs {
        t += e.gap_ms;
        let o = Observation {
            event_id: "ev",
            followee_id: FOLLOWEES[e.followee],
            follower_id: "x",
            follow: e.follow,
            ts_ms: t,
            partition: partition_of(e.followee),
            prob: 0.1,
            suspicious: false,
            follower_created_s: 0,
            reasons: REASONS,
        };
        d.observe(&o);
        seen.insert(e.followee);
        evicted += d.evict_idle(o.partition, d.watermark(o.partition).unwrap_or(t));
        if d.tracked_followees() < seen.len() {
            evicted += 1;
        }
    }
    assert!(evicted > 0, "no followee was ever evicted");
    assert_eq!(plain, drive(&evs, |_| true, true));
}

proptest! {
    /// No input makes the detector panic: arbitrary times (any i64), partitions, ids,
    /// probabilities and creation dates.
    #[test]
    fn arbitrary_observations_never_panic(
        obs in prop::collection::vec((any::<i64>(), any::<i32>(), 0usize..4, any::<f32>(), any::<i64>(), any::<bool>()), 1..200)
    ) {
        let mut d = Detector::new(cfg());
        for (ts, partition, f, prob, created, follow) in obs {
            let o = Observation {
                event_id: "e",
                followee_id: FOLLOWEES[f],
                follower_id: "u",
                follow,
                ts_ms: ts,
                partition,
                prob,
                suspicious: prob >= 0.5,
                follower_created_s: created,
                reasons: REASONS,
            };
            d.observe(&o);
            d.evict_idle(partition, ts);
        }
    }
}
