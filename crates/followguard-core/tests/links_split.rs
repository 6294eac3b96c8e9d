//! Issue 21, cross-instance campaigns: the link stage's campaign ids do not depend on how
//! follows are spread over link partitions, on the order links and pair counts arrive,
//! or on re-delivery; and detectors that split the followees between them feed it the
//! same campaigns as one detector.

use followguard_core::detector::{Detector, DetectorConfig, Observation};
use followguard_core::links::{
    link_partition, CampaignGraph, CampaignRecord, CampaignTable, FlaggedLink, FollowerStage,
    InProcessLinks, LinkConfig, PairCount, LINKS_VERSION,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const T0: i64 = 1_795_000_000_000;

fn cfg() -> LinkConfig {
    LinkConfig {
        min_shared: 3,
        window_ms: 6 * 3_600_000,
        ..LinkConfig::default()
    }
}

/// Alert id → campaign id (alerts in no campaign left out), from the graph.
fn campaigns(g: &mut CampaignGraph, alerts: &BTreeSet<String>) -> BTreeMap<String, String> {
    alerts
        .iter()
        .filter_map(|a| g.campaign_of(a).map(|c| (a.clone(), c)))
        .collect()
}

/// Alert id → campaign id of the last record naming it (what a reader of the campaigns
/// topic ends up believing).
fn from_records<'a>(
    recs: impl IntoIterator<Item = &'a followguard_core::links::CampaignRecord>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in recs {
        for a in &r.alerts {
            m.insert(a.alert_id.clone(), r.campaign_id.clone());
        }
    }
    m
}

/// Cohorts of bots re-sold to followees (one alert per followee), plus noise followers
/// flagged in one random alert each.
fn links_strategy() -> impl Strategy<Value = Vec<FlaggedLink>> {
    let cohort = (1usize..6, 2usize..6, 0i64..4);
    (
        prop::collection::vec(cohort, 1..5),
        prop::collection::vec((0usize..30, 0i64..36_000_000), 0..40),
    )
        .prop_map(|(cohorts, noise)| {
            let mut links = Vec::new();
            let mut followee_no = 0usize;
            let mut all_alerts = Vec::new();
            for (c, (followees, bots, hours)) in cohorts.into_iter().enumerate() {
                for f in 0..followees {
                    followee_no += 1;
                    // Bursts out of followee order, some sharing a start (id breaks ties).
                    let burst = T0 + ((followee_no * 7 % 5) as i64) * 600_000;
                    let fe = format!("fe{followee_no}");
                    let alert = format!("fga-{fe}-{burst}");
                    all_alerts.push((fe.clone(), alert.clone(), burst));
                    for b in 0..bots + 2 {
                        links.push(FlaggedLink {
                            v: LINKS_VERSION,
                            follower_id: format!("c{c}bot{b}"),
                            followee_id: fe.clone(),
                            alert_id: alert.clone(),
                            burst_start_ms: burst,
                            ts_ms: burst + hours * 3_600_000 + (f * 1000 + b) as i64,
                        });
                    }
                }
            }
            for (i, (pick, dt)) in noise.into_iter().enumerate() {
                let (fe, alert, burst) = &all_alerts[pick % all_alerts.len()];
                links.push(FlaggedLink {
                    v: LINKS_VERSION,
                    follower_id: format!("noise{}", i % 7),
                    followee_id: fe.clone(),
                    alert_id: alert.clone(),
                    burst_start_ms: *burst,
                    ts_ms: burst + dt,
                });
            }
            links.sort_by_key(|l| l.ts_ms);
            links
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The reference: one link partition, links in event-time order. The distributed
    /// run: 1–6 link partitions, links in any order (instances interleave arbitrarily),
    /// some links re-delivered, pair counts shuffled and some re-delivered before the
    /// single graph stage. Same campaigns, same ids, in the graph and in the records.
    #[test]
    fn campaign_ids_independent_of_partitioning_and_interleaving(
        links in links_strategy(),
        parts in 1i32..7,
        seed in any::<u64>(),
    ) {
        let alerts: BTreeSet<String> = links.iter().map(|l| l.alert_id.clone()).collect();
        let mut one = InProcessLinks::new(cfg(), 1);
        let mut one_recs = Vec::new();
        for l in &links {
            one_recs.extend(one.observe(l));
        }
        let want = campaigns(one.graph(), &alerts);
        prop_assert_eq!(&from_records(&one_recs), &want);

        // Deterministic shuffle from the seed (xorshift), re-delivering every 5th.
        let mut x = seed | 1;
        let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        let mut shuffled: Vec<FlaggedLink> = links.clone();
        for i in (1..shuffled.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let again: Vec<FlaggedLink> = shuffled.iter().step_by(5).cloned().collect();
        shuffled.extend(again);
        let mut stages: Vec<FollowerStage> =
            (0..parts).map(|p| FollowerStage::new(cfg(), p)).collect();
        let mut counts: Vec<PairCount> = Vec::new();
        for l in &shuffled {
            let p = link_partition(&l.follower_id, parts) as usize;
            counts.extend(stages[p].observe(l));
        }
        for i in (1..counts.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            counts.swap(i, j);
        }
        let again: Vec<PairCount> = counts.iter().step_by(3).cloned().collect();
        counts.extend(again);
        let mut g = CampaignGraph::new(cfg());
        let recs: Vec<_> = counts.iter().filter_map(|c| g.apply(c)).collect();
        prop_assert_eq!(&campaigns(&mut g, &alerts), &want);
        prop_assert_eq!(&from_records(&recs), &want);

        // A reader of the campaigns topic (`CampaignTable`, the stream-table join's
        // table) gets every alert's id from `added` and `merged` alone — each record's
        // `alerts` cut to one — whatever order it reads the records in, each some twice.
        let mut read: Vec<CampaignRecord> = recs
            .iter()
            .map(|r| CampaignRecord { alerts: r.alerts.iter().take(1).cloned().collect(), ..r.clone() })
            .collect();
        for i in (1..read.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            read.swap(i, j);
        }
        let again: Vec<CampaignRecord> = read.iter().step_by(2).cloned().collect();
        read.extend(again);
        let mut table = CampaignTable::new(i64::MAX / 4, usize::MAX / 2);
        for r in &read {
            table.apply(r);
        }
        let got: BTreeMap<String, String> = alerts
            .iter()
            .filter_map(|a| table.campaign_of(a).map(|c| (a.clone(), c)))
            .collect();
        prop_assert_eq!(&got, &want);
    }
}

fn obs<'a>(followee: &'a str, follower: &'a str, ts_ms: i64, partition: i32) -> Observation<'a> {
    Observation {
        event_id: "e",
        followee_id: followee,
        follower_id: follower,
        follow: true,
        ts_ms,
        partition,
        prob: 0.9,
        suspicious: true,
        follower_created_s: T0 / 1000 - 200 * 86_400,
        reasons: [("friends_followers_ratio_high", 0.3), ("", 0.0), ("", 0.0)],
    }
}

/// A cohort of 100 bots re-sold to six followees on three partitions: one detector
/// owning all of them, or three detectors owning one partition each (no detector sees
/// two followees' shared followers except its own), give the same campaign through the
/// link stage — one id, all six followees.
#[test]
fn detectors_split_by_partition_feed_one_campaign() {
    let dcfg = DetectorConfig {
        model_version: "test".into(),
        ..DetectorConfig::default()
    };
    let followees = ["c1", "c2", "c3", "c4", "c5", "c6"];
    let mut events = Vec::new();
    for (j, fe) in followees.iter().enumerate() {
        let t = T0 + j as i64 * 1_800_000;
        for i in 0..100 {
            events.push((
                fe.to_string(),
                format!("b{i}"),
                t + i * 1000,
                (j % 3) as i32,
            ));
        }
    }
    events.sort_by_key(|e| e.2);
    let run = |owners: &mut Vec<Detector>, route: &dyn Fn(i32) -> usize| {
        let mut links = Vec::new();
        for (fe, fo, t, p) in &events {
            let d = &mut owners[route(*p)];
            d.observe(&obs(fe, fo, *t, *p));
            links.extend(d.take_links());
        }
        let mut stage = InProcessLinks::new(cfg(), 4);
        let recs: Vec<_> = links.iter().flat_map(|l| stage.observe(l)).collect();
        recs
    };
    let new = || {
        let mut d = Detector::new(dcfg.clone());
        d.emit_links(true);
        d
    };
    let one = run(&mut vec![new()], &|_| 0);
    let three = run(&mut vec![new(), new(), new()], &|p| p as usize);
    let last = one.last().expect("a campaign");
    assert_eq!(last.followees, followees);
    assert_eq!(from_records(&one), from_records(&three));
    let ids: BTreeSet<String> = from_records(&three).into_values().collect();
    assert_eq!(ids, BTreeSet::from([last.campaign_id.clone()]));
    assert_eq!(
        three.last().map(|r| &r.campaign_id),
        Some(&last.campaign_id)
    );
}
