//! Crash safety on a real broker: SIGKILL the service mid-stream, restart it in the same
//! group, and check that every event was processed at least once (offsets end fully
//! committed; every dead-letter input is present; the restarted instance processed at
//! least everything after the committed point), that no alert id is opened twice, and that
//! the restart alerts the same accounts as an uninterrupted run.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_stream_then_restart_processes_every_event_at_least_once() {
    let Some(env) = env() else { return };
    let (events, _truth) = env.generate(
        "restart",
        &Stream {
            seed: 11,
            followees: 300,
            days: 3,
            humans: 20000,
            viral: 3,
            campaigns: 4,
            min_campaign: 300,
            max_campaign: 800,
            camouflage: false,
            resell: None,
        },
    );
    // Malformed records spread through the stream: each must reach the dead-letter topic.
    let lines = with_malformed(&events, 1000);
    let n = lines.len();
    let malformed = lines
        .iter()
        .filter(|l| l.starts_with(b"{\"broken\""))
        .count();
    let input = env.write_lines("restart.jsonl", &lines);

    let t = Topics::new("restart");
    env.create_topics(&t);
    let reference_topics = t.with_new_outputs("restart-ref");
    env.create_topics(&reference_topics);
    let group = unique("g");

    let mut first = env.serve(&t, &group, &[]);
    first.wait_ready(Duration::from_secs(60));
    // Produce at a bounded rate so the kill lands mid-stream.
    let mut producer = Command::new(&env.bin)
        .arg("produce")
        .args([
            "--brokers",
            &env.brokers,
            "--topic",
            &t.input,
            "--rate",
            "4000",
        ])
        .arg("--input")
        .arg(&input)
        .stdout(Stdio::null())
        .spawn()
        .expect("produce");
    let start = Instant::now();
    loop {
        let done = metric_sum(&first.metrics(), "followguard_events_total");
        if done >= n as f64 * 0.3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "first instance too slow: {done}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill9();
    let before = committed(&env.brokers, &group, &t.input);
    let committed_before: i64 = before.values().sum();
    assert!(
        (committed_before as usize) < n,
        "kill should land before everything is committed"
    );

    let mut second = env.serve(&t, &group, &[]);
    second.wait_ready(Duration::from_secs(60));
    // An uninterrupted reference run on the same input, its own group and outputs.
    let mut reference = env.serve(&reference_topics, &unique("gref"), &[]);
    reference.wait_ready(Duration::from_secs(60));
    assert!(producer.wait().expect("produce").success());

    let input_recs = env.read_all(&t.input, n);
    let ends = end_offsets(&input_recs);
    let start = Instant::now();
    loop {
        if committed(&env.brokers, &group, &t.input) == ends {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "restarted instance did not commit the whole input:\n{}",
            second.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let m2 = second.metrics();
    let processed_after = metric_sum(&m2, "followguard_events_total");
    assert!(
        processed_after >= (n as i64 - committed_before) as f64,
        "restart processed {processed_after}, but {} events were not committed",
        n as i64 - committed_before
    );
    reference.wait_events(n as f64, Duration::from_secs(120));

    // Every malformed input was dead-lettered at least once.
    let dlq = read_topic(
        &env.brokers,
        &t.dlq,
        malformed,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let mut sources: HashMap<(i32, i64), usize> = HashMap::new();
    for r in &dlq {
        let p: i32 = r.headers["source_partition"].parse().expect("partition");
        let o: i64 = r.headers["source_offset"].parse().expect("offset");
        *sources.entry((p, o)).or_default() += 1;
    }
    for r in input_recs
        .iter()
        .filter(|r| r.payload.starts_with(b"{\"broken\""))
    {
        assert!(
            sources.contains_key(&(r.partition, r.offset)),
            "malformed record at {}:{} never reached the dead-letter topic",
            r.partition,
            r.offset
        );
    }

    // Alert ids: the crash and restart open exactly the bursts an uninterrupted run opens.
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    let ref_alerts = read_topic(
        &env.brokers,
        &reference_topics.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    let (ids, dup) = opened(&alerts);
    let (ref_ids, ref_dup) = opened(&ref_alerts);
    assert_eq!(ref_dup, 0, "an uninterrupted run opens each alert once");
    assert!(!ref_ids.is_empty());
    assert_eq!(dup, 0, "an alert id was opened twice across the crash");
    let followees = |m: &BTreeMap<String, String>| m.values().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        followees(&ids),
        followees(&ref_ids),
        "crash + restart alerted different accounts than an uninterrupted run"
    );
    let same_ids = ids.keys().eq(ref_ids.keys());
    eprintln!(
        "restart: {n} events, {committed_before} committed before the kill, {processed_after} \
         processed after restart, {} open alerts, {} re-opens suppressed, ids identical to the \
         uninterrupted run: {same_ids}",
        ids.len(),
        metric(&m2, "followguard_duplicate_alert_opens_suppressed_total").unwrap_or(0.0)
    );

    for svc in [&mut second, &mut reference] {
        svc.sigterm();
        assert!(svc
            .wait_exit(Duration::from_secs(15))
            .expect("exits")
            .success());
    }
}
