//! Scale-out on a real broker: two instances in one consumer group split the input
//! partitions between them and together open exactly the alert ids a single instance
//! opens on the same input (per-followee state lives with the followee's partition).

mod kafka_support;

use kafka_support::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Pair members prepare chunks on a helper thread (`serve --prepare-threads`).
const HELPERS: [&str; 2] = ["--prepare-threads", "1"];

fn open_ids(records: &[Rec]) -> BTreeSet<String> {
    records
        .iter()
        .map(Rec::json)
        .filter(|a| a["status"] == "open")
        .filter_map(|a| a["alert_id"].as_str().map(str::to_string))
        .collect()
}

fn assigned(svc: &Svc) -> f64 {
    metric(&svc.metrics(), "followguard_assigned_partitions").unwrap_or(0.0)
}

#[test]
fn two_instances_split_partitions_and_open_the_same_alerts_as_one() {
    let Some(env) = env() else { return };
    let (events, _truth) = env.generate(
        "group",
        &Stream {
            seed: 5,
            followees: 200,
            days: 2,
            humans: 8000,
            viral: 2,
            campaigns: 5,
            min_campaign: 200,
            max_campaign: 500,
            camouflage: true,
            resell: None,
        },
    );
    let n = std::fs::read(&events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();

    let single_topics = Topics::new("single");
    env.create_topics(&single_topics);
    let pair_topics = single_topics.with_new_outputs("pair");
    env.create_topics(&pair_topics);

    let mut single = env.serve(&single_topics, &unique("gsingle"), &[]);
    let pair_group = unique("gpair");
    // The pair parses and scores on helper threads too (the single instance does not):
    // outputs must not depend on it.
    let mut a = env.serve(&pair_topics, &pair_group, &HELPERS);
    let mut b = env.serve(&pair_topics, &pair_group, &HELPERS);
    single.wait_ready(Duration::from_secs(60));
    a.wait_ready(Duration::from_secs(60));
    b.wait_ready(Duration::from_secs(60));
    // Wait for the group to settle: the two members own all partitions between them.
    let start = Instant::now();
    loop {
        let (pa, pb) = (assigned(&a), assigned(&b));
        if pa >= 1.0 && pb >= 1.0 && pa + pb == f64::from(PARTITIONS) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "partitions not split: {pa} + {pb}\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    env.produce(&events, &single_topics.input);
    single.wait_events(n as f64, Duration::from_secs(120));
    let start = Instant::now();
    loop {
        let done = metric_sum(&a.metrics(), "followguard_events_total")
            + metric_sum(&b.metrics(), "followguard_events_total");
        if done >= n as f64 {
            assert_eq!(done, n as f64, "no event processed twice without a failure");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "pair processed {done} of {n}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for svc in [&a, &b] {
        assert!(
            metric_sum(&svc.metrics(), "followguard_events_total") > 0.0,
            "each member processes its share"
        );
    }

    let one = open_ids(&read_topic(
        &env.brokers,
        &single_topics.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    ));
    let two = open_ids(&read_topic(
        &env.brokers,
        &pair_topics.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    ));
    assert!(!one.is_empty(), "the stream should open alerts");
    assert_eq!(
        one, two,
        "two instances must open the same alert ids as one"
    );

    for svc in [&mut single, &mut a, &mut b] {
        svc.sigterm();
        assert!(svc
            .wait_exit(Duration::from_secs(15))
            .expect("exits")
            .success());
    }
}

/// A second member joining while the stream flows: partitions move (revoke on the first,
/// assign + state rebuild on the second), every event is still processed at least once,
/// no alert id is opened for two different bursts, and the same accounts are alerted as
/// by a single undisturbed instance.
#[test]
fn member_joining_mid_stream_takes_over_partitions_without_losing_events() {
    let Some(env) = env() else { return };
    let (events, _truth) = env.generate(
        "join",
        &Stream {
            seed: 9,
            followees: 300,
            days: 3,
            humans: 20000,
            viral: 3,
            campaigns: 5,
            min_campaign: 300,
            max_campaign: 800,
            camouflage: false,
            resell: None,
        },
    );
    let single_topics = Topics::new("join-single");
    env.create_topics(&single_topics);
    let pair_topics = single_topics.with_new_outputs("join-pair");
    env.create_topics(&pair_topics);
    let pair_group = unique("gjoin");

    let mut single = env.serve(&single_topics, &unique("gsingle"), &[]);
    let mut a = env.serve(&pair_topics, &pair_group, &HELPERS);
    single.wait_ready(Duration::from_secs(60));
    a.wait_ready(Duration::from_secs(60));
    let mut producer = std::process::Command::new(&env.bin)
        .arg("produce")
        .args([
            "--brokers",
            &env.brokers,
            "--topic",
            &single_topics.input,
            "--rate",
            "3000",
        ])
        .arg("--input")
        .arg(&events)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("produce");
    let n = std::fs::read(&events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let start = Instant::now();
    while metric_sum(&a.metrics(), "followguard_events_total") < n as f64 * 0.25 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "first member too slow"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b = env.serve(&pair_topics, &pair_group, &HELPERS);
    b.wait_ready(Duration::from_secs(60));
    assert!(producer.wait().expect("produce").success());

    let input = env.read_all(&single_topics.input, n);
    let ends = end_offsets(&input);
    let start = Instant::now();
    while committed(&env.brokers, &pair_group, &single_topics.input) != ends {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the group did not commit the whole input:\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    single.wait_events(n as f64, Duration::from_secs(120));
    let (ma, mb) = (a.metrics(), b.metrics());
    let processed =
        metric_sum(&ma, "followguard_events_total") + metric_sum(&mb, "followguard_events_total");
    assert!(processed >= n as f64, "processed {processed} of {n}");
    assert!(metric(&ma, "followguard_rebalances_total{kind=\"revoke\"}").unwrap_or(0.0) >= 1.0);
    assert!(metric(&mb, "followguard_assigned_partitions").unwrap_or(0.0) >= 1.0);
    assert!(
        metric(&mb, "followguard_replayed_events_total").unwrap_or(0.0) > 0.0,
        "the joining member rebuilds state for the partitions it takes over"
    );

    let one = read_topic(
        &env.brokers,
        &single_topics.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    let two = read_topic(
        &env.brokers,
        &pair_topics.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    let (one, _) = opened(&one);
    let (two, dup) = opened(&two);
    assert!(!one.is_empty());
    let followees = |m: &std::collections::BTreeMap<String, String>| {
        m.values().cloned().collect::<BTreeSet<_>>()
    };
    assert_eq!(
        followees(&one),
        followees(&two),
        "a rebalance changed which accounts alert"
    );
    eprintln!(
        "join: {n} events, {processed} processed by the pair, {} opens, {dup} repeated, ids \
         identical to one instance: {}",
        two.len(),
        one.keys().eq(two.keys())
    );
    for svc in [&mut single, &mut a, &mut b] {
        svc.sigterm();
        assert!(svc
            .wait_exit(Duration::from_secs(15))
            .expect("exits")
            .success());
    }
}
