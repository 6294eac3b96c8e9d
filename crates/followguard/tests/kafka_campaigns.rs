//! Issue 21, cross-instance campaigns on a real broker: flagged follows re-keyed by
//! follower through `--links-topic`, the link stage run by the same consumer group, and
//! campaign records on `--campaigns-topic`. Two instances splitting the input partitions
//! give a cohort re-sold to followees owned by different instances one campaign id — the
//! same as one instance on the same input.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The input partitions `svc`'s main consumer owns, from its last assignment log line.
fn owned(svc: &Svc) -> BTreeSet<i32> {
    // Without the terminal colour codes.
    let mut log = String::new();
    let mut in_escape = false;
    for c in svc.log_text().chars() {
        match c {
            '\u{1b}' => in_escape = true,
            'm' if in_escape => in_escape = false,
            _ if in_escape => {}
            c => log.push(c),
        }
    }
    let Some(line) = log
        .lines()
        .rfind(|l| l.contains("partitions assigned") && !l.contains("link stage"))
    else {
        return BTreeSet::new();
    };
    let Some(list) = line
        .split("partitions=[")
        .nth(1)
        .and_then(|s| s.split(']').next())
    else {
        return BTreeSet::new();
    };
    list.split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
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
    let n = std::fs::read(&events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
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
    let lines: Vec<Vec<u8>> = std::fs::read(&events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
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
    let input = env.read_all(&single_topics.input, n);
    let ends = end_offsets(&input);
    let start = Instant::now();
    while committed(&env.brokers, &g2, &single_topics.input) != ends {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "survivor too slow"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

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
    let out = env.tmp.path().join("replay-campaigns.jsonl");
    let status = std::process::Command::new(&env.bin)
        .arg("replay")
        .arg("--input")
        .arg(&events)
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
    let replayed = campaign_of_json(
        text.lines()
            .map(|l| serde_json::from_str(l).expect("campaign record")),
    );
    assert_eq!(replayed, one, "replay and serve give the same campaign ids");

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
