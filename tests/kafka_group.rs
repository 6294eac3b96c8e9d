//! Scale-out on a real broker: two instances in one consumer group split the input
//! partitions between them and together open exactly the alert ids a single instance
//! opens on the same input (per-followee state lives with the followee's partition).

mod kafka_support;

use kafka_support::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

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
        &[
            "--seed",
            "5",
            "--followees",
            "200",
            "--days",
            "2",
            "--humans",
            "8000",
            "--viral",
            "2",
            "--campaigns",
            "5",
            "--min-campaign",
            "200",
            "--max-campaign",
            "500",
        ],
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
    let mut a = env.serve(&pair_topics, &pair_group, &[]);
    let mut b = env.serve(&pair_topics, &pair_group, &[]);
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
