//! Issue 21, cross-instance campaigns on a real broker: flagged follows re-keyed by
//! follower through `--links-topic`, the link stage run by the same consumer group, and
//! campaign records on `--campaigns-topic`. Two instances splitting the input partitions
//! give a cohort re-sold to followees owned by different instances one campaign id — the
//! same as one instance on the same input.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The input partitions `svc`'s main consumer owns, from its assignment log lines.
fn owned(svc: &Svc) -> BTreeSet<i32> {
    owned_partitions(&svc.log_text())
}

/// Alert id → campaign id as `replay --campaigns` (the link stage in-process) gives them.
fn replay_campaigns(env: &Env, events: &std::path::Path) -> BTreeMap<String, String> {
    let out = env.tmp.path().join("replay-campaigns.jsonl");
    let status = std::process::Command::new(&env.bin)
        .arg("replay")
        .arg("--input")
        .arg(events)
        .arg("--model")
        .arg(&env.model)
        .arg("--alerts")
        .arg(env.tmp.path().join("replay-alerts.jsonl"))
        .arg("--campaigns")
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("replay");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("replay campaigns");
    campaign_of_json(
        text.lines()
            .map(|l| serde_json::from_str(l).expect("campaign record")),
    )
}

/// Bytes (followers, graph) held by link stages fed every record of `t`'s links topic
/// (per partition, in order) and pairs topic in-process: what stages that never stopped
/// hold. Redelivered records are in the topics and are ignored by both alike.
fn uninterrupted_state_bytes(env: &Env, t: &Topics) -> (f64, f64) {
    use followguard_core::detector::DetectorConfig;
    use followguard_core::links::{
        CampaignGraph, FlaggedLink, FollowerStage, LinkConfig, PairCount,
    };
    let d = DetectorConfig::default();
    let cfg = LinkConfig {
        min_shared: d.lockstep_min_shared,
        window_ms: d.lockstep_window_ms,
        ..LinkConfig::default()
    };
    let read = |topic: &str| {
        let mut r = read_topic(
            &env.brokers,
            topic,
            1,
            Duration::from_millis(500),
            Duration::from_secs(30),
        );
        r.sort_by_key(|r| (r.partition, r.offset));
        r
    };
    let links_topic = format!("{}.links", t.alerts);
    let mut stages: BTreeMap<i32, FollowerStage> = BTreeMap::new();
    for r in read(&links_topic) {
        let l: FlaggedLink = serde_json::from_slice(&r.payload).expect("link record");
        stages
            .entry(r.partition)
            .or_insert_with(|| FollowerStage::new(cfg.clone(), r.partition))
            .observe(&l);
    }
    let mut graph = CampaignGraph::new(cfg.clone());
    for r in read(&format!("{links_topic}-pairs")) {
        let c: PairCount = serde_json::from_slice(&r.payload).expect("pair record");
        graph.apply(&c);
    }
    let followers: usize = stages.values().map(FollowerStage::bytes).sum();
    (followers as f64, graph.bytes() as f64)
}

/// The non-empty lines of a generated stream.
fn lines_of(events: &std::path::Path) -> Vec<Vec<u8>> {
    std::fs::read(events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Waits until `group` has committed every record of `input` (`n` records).
fn wait_committed(env: &Env, group: &str, input: &str, n: usize, svcs: &[&Svc]) -> Vec<Rec> {
    let records = env.read_all(input, n);
    let ends = end_offsets(&records);
    let start = Instant::now();
    while committed(&env.brokers, group, input) != ends {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "input not committed\n{}",
            svcs.iter()
                .map(|s| s.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    records
}

/// A link-stage run: the input (two days of 150 followees, six campaigns, 90 % of cohorts
/// re-sold), its topics and group, and `serve`'s link-stage flags with
/// `--links-snapshot-records every`.
struct LinkRun {
    events: std::path::PathBuf,
    lines: Vec<Vec<u8>>,
    topics: Topics,
    group: String,
    args: Vec<String>,
}

fn link_run(env: &Env, name: &str, seed: u64, every: &str) -> LinkRun {
    let stream = Stream {
        campaigns: 6,
        resell: Some(0.9),
        ..Stream::small_campaigns(seed)
    };
    let (events, _) = env.generate(&format!("campaigns-{name}"), &stream);
    let lines = lines_of(&events);
    let topics = Topics::new(&format!("camp-{name}"));
    env.create_topics(&topics);
    let mut args = links_args(&topics);
    args.extend(["--links-snapshot-records".to_string(), every.to_string()]);
    LinkRun {
        events,
        lines,
        topics,
        group: unique(&format!("gcamp{name}")),
        args,
    }
}

/// Records of the links and of the pairs topic of `topics`: the link stage's history.
fn link_history(env: &Env, topics: &Topics) -> (f64, f64) {
    let links_topic = format!("{}.links", topics.alerts);
    let history = |topic: &str| {
        read_topic(
            &env.brokers,
            topic,
            1,
            Duration::from_millis(500),
            Duration::from_secs(30),
        )
        .len() as f64
    };
    (
        history(&links_topic),
        history(&format!("{links_topic}-pairs")),
    )
}

/// Issue 21, the link stage's bounded restore: the only member (it owns every link-stage
/// partition) is killed (-9) half-way and restarted in its group. Each link-stage
/// partition is restored from its latest snapshot plus the records after it — far fewer
/// records than the partitions' history — and the campaigns come out as in-process.
#[test]
fn the_link_stage_killed_and_restarted_restores_from_its_snapshots_not_its_history() {
    let Some(env) = env() else { return };
    // A snapshot every 25 records of a partition (a few per partition before the kill).
    const EVERY: f64 = 25.0;
    let LinkRun {
        events,
        lines,
        topics,
        group,
        args,
    } = link_run(&env, "kill", 37, &EVERY.to_string());
    let n = lines.len();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut svc = env.serve(&topics, &group, &args);
    svc.wait_ready(Duration::from_secs(60));
    // The first half in two parts, so the last records before the kill come in a round
    // of their own, likely too few for a snapshot: the restore re-reads them.
    let cut = n * 2 / 5;
    for (name, part, upto) in [
        ("first.jsonl", &lines[..cut], cut),
        ("tail.jsonl", &lines[cut..n / 2], n / 2),
    ] {
        let file = env.write_lines(name, part);
        env.produce(&file, &topics.input);
        wait_committed(&env, &group, &topics.input, upto, &[&svc]);
        settle_links(&env, &topics, &group, &[&svc]);
    }
    let second = env.write_lines("second.jsonl", &lines[n / 2..]);
    let before = settle_links(&env, &topics, &group, &[&svc]);
    let (links_before, pairs_before) = link_history(&env, &topics);
    let m = svc.metrics();
    let written = metric(
        &m,
        "followguard_link_snapshot_records_total{op=\"written\"}",
    )
    .unwrap_or(0.0);
    assert!(written > 0.0, "no snapshot written before the kill\n{m}");
    svc.kill9();

    let mut again = env.serve(&topics, &group, &args);
    again.wait_ready(Duration::from_secs(60));
    env.produce(&second, &topics.input);
    wait_committed(&env, &group, &topics.input, n, &[&again]);
    let recs = settle_links(&env, &topics, &group, &[&again]);
    let got = campaign_of(&recs);
    assert!(
        !campaign_of(&before).is_empty(),
        "campaigns before the kill"
    );
    assert_eq!(
        got,
        replay_campaigns(&env, &events),
        "the restored link stage gives the in-process campaign ids"
    );

    let m = again.metrics();
    let read = metric(&m, "followguard_link_snapshot_records_total{op=\"read\"}").unwrap_or(0.0);
    let replayed = metric_sum(&m, "followguard_link_rebuilt_records_total");
    let logs = again.log_text();
    let restored = logs.matches("link stage: partition state rebuilt").count();
    eprintln!(
        "link stage restore after kill -9: {restored} partitions restored, {read} snapshot \
         records and {replayed} records after them read; history at the kill: \
         {links_before} links + {pairs_before} pair records"
    );
    assert!(read > 0.0, "no snapshot read\n{logs}");
    // The restored stages hold exactly what stages that never stopped hold: the same
    // bytes as stages fed every record of the links and pairs topics in order.
    let want = uninterrupted_state_bytes(&env, &topics);
    let start = Instant::now();
    loop {
        let m = again.metrics();
        let got = (
            metric(&m, "followguard_link_state_bytes{store=\"followers\"}").unwrap_or(0.0),
            metric(&m, "followguard_link_state_bytes{store=\"graph\"}").unwrap_or(0.0),
        );
        if got == want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "restored link-stage state {got:?} bytes, uninterrupted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Bounded by the snapshot cadence and the state, not by the history: fewer than
    // EVERY records after each partition's snapshot, and the snapshots (a few records
    // each here, found from the partition's end) less than the history.
    assert!(restored > 0, "no link-stage partition restored\n{logs}");
    assert!(
        replayed < restored as f64 * EVERY,
        "{replayed} records re-read after the snapshots of {restored} partitions"
    );
    assert!(
        read + replayed < links_before + pairs_before,
        "the restore read {read} + {replayed} records of a history of {}",
        links_before + pairs_before
    );
    again.sigterm();
    assert!(again
        .wait_exit(Duration::from_secs(20))
        .expect("exits")
        .success());
}

/// Issue 21, the link stage's snapshot on revoke: A alone owns every link-stage
/// partition, its periodic snapshots out of reach (`--links-snapshot-records 1000000`),
/// so none is written while it processes the first half. B joins: the rebalance revokes
/// A's link-stage partitions and A snapshots each one before it releases it. Every
/// partition's next owner (B, or A again) restores from that snapshot and re-reads no
/// record after it — without the snapshot on revoke it would re-read the partition's
/// whole history — and the campaigns come out as in-process.
#[test]
fn a_revoked_link_stage_partition_is_snapshotted_so_its_next_owner_rereads_nothing() {
    let Some(env) = env() else { return };
    let LinkRun {
        events,
        lines,
        topics,
        group,
        args,
    } = link_run(&env, "revoke", 41, "1000000");
    let n = lines.len();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = env.serve(&topics, &group, &args);
    a.wait_ready(Duration::from_secs(60));
    let first = env.write_lines("first.jsonl", &lines[..n / 2]);
    env.produce(&first, &topics.input);
    wait_committed(&env, &group, &topics.input, n / 2, &[&a]);
    let before = settle_links(&env, &topics, &group, &[&a]);
    assert!(!campaign_of(&before).is_empty(), "campaigns before B joins");
    let (links_before, pairs_before) = link_history(&env, &topics);
    let written = |s: &Svc| {
        metric(
            &s.metrics(),
            "followguard_link_snapshot_records_total{op=\"written\"}",
        )
        .unwrap_or(0.0)
    };
    assert_eq!(written(&a), 0.0, "no periodic snapshot before B joins");

    let mut b = env.serve(&topics, &group, &args);
    b.wait_ready(Duration::from_secs(60));
    let start = Instant::now();
    while written(&a) == 0.0 || owned(&b).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no snapshot on revoke, or B owns nothing\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let on_revoke = written(&a);
    let second = env.write_lines("second.jsonl", &lines[n / 2..]);
    env.produce(&second, &topics.input);
    wait_committed(&env, &group, &topics.input, n, &[&a, &b]);
    let recs = settle_links(&env, &topics, &group, &[&a, &b]);
    assert_eq!(
        campaign_of(&recs),
        replay_campaigns(&env, &events),
        "the link stages restored from the revoke's snapshots give the in-process campaign ids"
    );
    let sum = |name: &str| metric_sum(&a.metrics(), name) + metric_sum(&b.metrics(), name);
    let read = metric(
        &a.metrics(),
        "followguard_link_snapshot_records_total{op=\"read\"}",
    )
    .unwrap_or(0.0)
        + metric(
            &b.metrics(),
            "followguard_link_snapshot_records_total{op=\"read\"}",
        )
        .unwrap_or(0.0);
    let replayed = sum("followguard_link_rebuilt_records_total");
    let logs = format!("{}\n----\n{}", a.log_text(), b.log_text());
    let restored = logs.matches("link stage: partition state rebuilt").count();
    let revoked_snapshots = logs
        .matches("link stage: snapshot written on revoke")
        .count();
    eprintln!(
        "link stage snapshot on revoke: {revoked_snapshots} partitions snapshotted on revoke \
         ({on_revoke} records), {restored} restores read {read} snapshot records and {replayed} \
         records after them; history at the revoke: {links_before} links + {pairs_before} pair \
         records"
    );
    assert!(
        revoked_snapshots > 0 && restored > 0 && read > 0.0,
        "{logs}"
    );
    assert_eq!(
        replayed, 0.0,
        "records re-read after the revoke's snapshots (history {links_before} + {pairs_before})"
    );
    for s in [&mut a, &mut b] {
        s.sigterm();
        assert!(s
            .wait_exit(Duration::from_secs(20))
            .expect("exits")
            .success());
    }
}

#[test]
fn a_cohort_resold_across_instances_gets_one_campaign_id_as_with_one_instance() {
    let Some(env) = env() else { return };
    // Six campaigns, most of them cohorts re-sold to another followee.
    let stream = Stream {
        campaigns: 6,
        resell: Some(0.9),
        ..Stream::small_campaigns(31)
    };
    let (events, _) = env.generate("campaigns", &stream);
    let lines = lines_of(&events);
    let n = lines.len();
    let single_topics = Topics::new("camp-single");
    env.create_topics(&single_topics);
    let pair_topics = single_topics.with_new_outputs("camp-pair");
    env.create_topics(&pair_topics);

    let (g1, g2) = (unique("gcamp1"), unique("gcamp2"));
    let a1 = links_args(&single_topics);
    let a2 = links_args(&pair_topics);
    let args1: Vec<&str> = a1.iter().map(String::as_str).collect();
    let args2: Vec<&str> = a2.iter().map(String::as_str).collect();
    let mut single = env.serve(&single_topics, &g1, &args1);
    let mut a = env.serve(&pair_topics, &g2, &args2);
    let mut b = env.serve(&pair_topics, &g2, &args2);
    for s in [&mut single, &mut a, &mut b] {
        s.wait_ready(Duration::from_secs(60));
    }
    // The pair splits the input partitions (each owns some, together all).
    let start = Instant::now();
    loop {
        let (oa, ob) = (owned(&a), owned(&b));
        if !oa.is_empty() && !ob.is_empty() && oa.len() + ob.len() == PARTITIONS as usize {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "partitions not split: {oa:?} {ob:?}\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The single instance reads the whole input; the pair its first half, then one
    // member is killed (-9) and the survivor takes over its link-stage partitions
    // (rebuilt by re-reading them) before the second half arrives.
    let first = env.write_lines("first.jsonl", &lines[..n / 2]);
    let second = env.write_lines("second.jsonl", &lines[n / 2..]);
    env.produce(&first, &single_topics.input);
    single.wait_events((n / 2) as f64, Duration::from_secs(120));
    let start = Instant::now();
    while metric_sum(&a.metrics(), "followguard_events_total")
        + metric_sum(&b.metrics(), "followguard_events_total")
        < (n / 2) as f64
    {
        assert!(start.elapsed() < Duration::from_secs(120), "pair too slow");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before_recs = settle_links(&env, &pair_topics, &g2, &[&a, &b]);
    let before = campaign_of(&before_recs);
    let (oa, ob) = (owned(&a), owned(&b));
    // Where a trust team looks: each instance's `/api/alerts/{id}` shows, for the alerts it
    // owns, the cross-instance campaign id of the campaigns topic — the same id for a
    // cohort's alerts on either instance.
    let start = Instant::now();
    let served = loop {
        let mut served: BTreeMap<&String, BTreeSet<&str>> = BTreeMap::new();
        let mut wrong = Vec::new();
        for (alert, cid) in &before {
            for (name, svc) in [("a", &a), ("b", &b)] {
                let Some((200, body)) = svc.get(&format!("/api/alerts/{alert}")) else {
                    continue;
                };
                let j: serde_json::Value = serde_json::from_str(&body).expect("alert json");
                // The page shows it too.
                let page = svc.get(&format!("/alerts/{alert}")).map(|(_, b)| b);
                let on_page = format!(r#"id="cross-campaign">{cid}</bdi>"#);
                if j["cross_instance_campaign_id"].as_str() == Some(cid.as_str())
                    && page.is_some_and(|p| p.contains(&on_page))
                {
                    served.entry(cid).or_default().insert(name);
                } else {
                    wrong.push((name, alert, j["cross_instance_campaign_id"].clone()));
                }
            }
        }
        if wrong.is_empty() && served.values().any(|s| s.len() == 2) {
            break served;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "web view campaigns: {wrong:?} wrong, served {served:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    eprintln!("cross-instance campaign ids in the web view: {served:?}");
    b.kill9();
    // The survivor owns every input partition again (its link stage rejoins too).
    let start = Instant::now();
    while owned(&a).len() < PARTITIONS as usize {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no takeover\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    env.produce(&second, &single_topics.input);
    single.wait_events(n as f64, Duration::from_secs(120));
    let input = wait_committed(&env, &g2, &single_topics.input, n, &[&a]);

    let one = campaign_of(&settle_links(&env, &single_topics, &g1, &[&single]));
    let two_recs = settle_links(&env, &pair_topics, &g2, &[&a]);
    let two = campaign_of(&two_recs);
    let ids: BTreeSet<&String> = one.values().collect();
    assert!(!one.is_empty(), "re-sold cohorts should form campaigns");
    eprintln!(
        "campaigns: {} alerts in {} campaigns (one instance); {} records (pair)",
        one.len(),
        ids.len(),
        two_recs.len()
    );
    assert_eq!(
        one, two,
        "the pair must give every alert the single instance's campaign id"
    );

    // `replay --campaigns` runs the same link stage in-process: the same ids.
    assert_eq!(
        replay_campaigns(&env, &events),
        one,
        "replay and serve give the same campaign ids"
    );

    assert!(!before.is_empty(), "campaigns formed before the kill");
    // The survivor continued the link state it took over, not a fresh one: no record
    // it wrote after the kill announces a campaign smaller than one its alerts were
    // already in (a lost graph starts again from pairs, under other roots).
    let size_before: BTreeMap<String, i64> = {
        let mut m = BTreeMap::new();
        for j in before_recs.iter().map(Rec::json) {
            let k = j["alert_count"].as_i64().unwrap_or(0);
            for a in j["alerts"].as_array().into_iter().flatten() {
                let e = m
                    .entry(a["alert_id"].as_str().unwrap_or_default().to_string())
                    .or_insert(0);
                *e = k.max(*e);
            }
        }
        m
    };
    let seen: BTreeSet<(i32, i64)> = before_recs
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    for j in two_recs
        .iter()
        .filter(|r| !seen.contains(&(r.partition, r.offset)))
        .map(Rec::json)
    {
        let k = j["alert_count"].as_i64().unwrap_or(0);
        for a in j["alerts"].as_array().into_iter().flatten() {
            let known = size_before.get(a["alert_id"].as_str().unwrap_or_default());
            assert!(
                known.is_none_or(|&b| k >= b),
                "after the kill {j} announces fewer alerts than the {known:?} before"
            );
        }
    }
    // Some campaign spans followees whose input partitions different instances owned.
    let mut part_of: BTreeMap<String, i32> = BTreeMap::new();
    for r in &input {
        if let Some(f) = r.json()["followee_id"].as_str() {
            part_of.insert(f.to_string(), r.partition);
        }
    }
    let alerts = read_topic(
        &env.brokers,
        &pair_topics.alerts,
        1,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let followee_of: BTreeMap<String, String> = alerts
        .iter()
        .map(Rec::json)
        .filter_map(|j| {
            Some((
                j["alert_id"].as_str()?.to_string(),
                j["followee_id"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut by_campaign: BTreeMap<&String, BTreeSet<i32>> = BTreeMap::new();
    for (alert, cid) in &two {
        if let Some(p) = followee_of.get(alert).and_then(|f| part_of.get(f)) {
            by_campaign.entry(cid).or_default().insert(*p);
        }
    }
    let across = by_campaign
        .values()
        .filter(|ps| ps.iter().any(|p| oa.contains(p)) && ps.iter().any(|p| ob.contains(p)))
        .count();
    assert!(
        across > 0,
        "no campaign spans both instances: {by_campaign:?} (a owns {oa:?}, b {ob:?})"
    );

    // The link-stage metrics moved on the survivor, which rebuilt what it took over.
    let ma = a.metrics();
    let both = |series: &str| metric(&ma, series).unwrap_or(0.0);
    let sum = |name: &str| metric_sum(&ma, name);
    assert!(sum("followguard_link_rebuilt_records_total") > 0.0);
    assert!(both("followguard_link_records_total{topic=\"links\"}") > 0.0);
    assert!(both("followguard_link_records_total{topic=\"pairs\"}") > 0.0);
    assert!(sum("followguard_campaign_records_total") > 0.0);
    assert!(both("followguard_link_state_bytes{store=\"followers\"}") > 0.0);
    assert!(both("followguard_link_state_bytes{store=\"graph\"}") > 0.0);
    assert!(both("followguard_records_produced_total{sink=\"links\"}") > 0.0);
    assert!(both("followguard_records_produced_total{sink=\"campaigns\"}") > 0.0);
    for svc in [&mut single, &mut a] {
        svc.sigterm();
        assert!(svc
            .wait_exit(Duration::from_secs(20))
            .expect("exits")
            .success());
    }
}
