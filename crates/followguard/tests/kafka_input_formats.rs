//! Issue 24 on a real broker: `serve --input-format jetstream --profile-topic` joins
//! Bluesky follow commits with a compacted profile topic read in full before the first
//! follow (a GlobalKTable); a follow whose profile arrives a moment later waits for it
//! (bounded, processing time), one whose profile never arrives is dead-lettered as
//! `unknown_profile`; deletes and other collections are counted, not dead-lettered; the
//! burst is alerted and its followers reach the moderation topic.

mod kafka_support;

use kafka_support::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const T0_MS: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z

fn profile(did: &str) -> Vec<u8> {
    format!(
        r#"{{"did": "{did}", "handle": "kdjw83920183.bsky.social", "displayName": "", "description": "", "followersCount": 2, "followsCount": 1450, "postsCount": 0, "createdAt": "2026-09-01T00:00:00.000Z"}}"#
    )
    .into_bytes()
}

fn follow(did: &str, subject: &str, ts_ms: i64, rkey: &str) -> Vec<u8> {
    format!(
        r#"{{"did": "{did}", "time_us": {}, "kind": "commit", "commit": {{"rev": "r", "operation": "create", "collection": "app.bsky.graph.follow", "rkey": "{rkey}", "record": {{"$type": "app.bsky.graph.follow", "createdAt": "2026-11-28T10:00:00.000Z", "subject": "{subject}"}}, "cid": "c"}}}}"#,
        ts_ms * 1000
    )
    .into_bytes()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn jetstream_follows_joined_with_the_profile_topic() {
    let Some(env) = env() else { return };
    let t = Topics::new("jet");
    env.create_topics(&t);
    let profiles_topic = unique("profiles");
    env.create_table_topic(&t, "--profile-topic", &profiles_topic);

    let n = 60;
    let bots: Vec<String> = (0..n).map(|i| format!("did:plc:bot{i:04}")).collect();
    let profiles: Vec<Vec<u8>> = bots.iter().map(|d| profile(d)).collect();
    env.produce_with(
        &env.write_lines("profiles.jsonl", &profiles),
        &profiles_topic,
        &["--profile-records"],
    );

    let group = unique("g");
    let mut svc = env.serve_in_process(
        &t,
        &group,
        &[
            "--input-format",
            "jetstream",
            "--profile-topic",
            &profiles_topic,
            "--profile-wait",
            "8s",
        ],
    );
    svc.wait_ready(Duration::from_secs(60));
    let m = svc.metrics();
    assert_eq!(
        metric(&m, "followguard_profile_records_total{result=\"applied\"}"),
        Some(n as f64),
        "the table is read in full before the first follow"
    );
    assert!(metric(&m, "followguard_profile_table_bytes").unwrap_or(0.0) > 0.0);

    let mut lines: Vec<Vec<u8>> = bots
        .iter()
        .enumerate()
        .map(|(i, d)| {
            follow(
                d,
                "did:plc:buyer",
                T0_MS + 1000 * i as i64,
                &format!("k{i}"),
            )
        })
        .collect();
    lines.push(br#"{"did": "did:plc:bot0001", "time_us": 1795860100000000, "kind": "commit", "commit": {"rev": "x", "operation": "delete", "collection": "app.bsky.graph.follow", "rkey": "k1"}}"#.to_vec());
    lines.push(br#"{"did": "did:plc:bot0002", "time_us": 1795860100000000, "kind": "commit", "commit": {"rev": "x", "operation": "create", "collection": "app.bsky.feed.like", "rkey": "k", "record": {}}}"#.to_vec());
    lines.push(br#"{"did": "did:plc:bot0003", "kind": "commit", "commit": {"operation": "create", "collection": "app.bsky.graph.follow", "rkey": "x"}}"#.to_vec());
    // Live follows (record time = now): one whose profile comes a second later, one
    // whose profile never comes.
    let now = now_ms();
    lines.push(follow("did:plc:late", "did:plc:other", now, "late"));
    lines.push(follow("did:plc:stranger", "did:plc:other", now, "stranger"));
    env.produce_with(
        &env.write_lines("follows.jsonl", &lines),
        &t.input,
        &["--input-format", "jetstream"],
    );
    std::thread::sleep(Duration::from_secs(1));
    env.produce_with(
        &env.write_lines("late.jsonl", &[profile("did:plc:late")]),
        &profiles_topic,
        &["--profile-records"],
    );

    // 60 + late scored; stranger and the malformed commit rejected; 2 ignored.
    let m = svc.wait_events((n + 3) as f64, Duration::from_secs(60));
    assert_eq!(metric_sum(&m, "followguard_events_total"), (n + 3) as f64);
    assert_eq!(
        metric(
            &m,
            "followguard_events_rejected_total{kind=\"unknown_profile\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "followguard_events_rejected_total{kind=\"missing_field\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "followguard_input_ignored_total{reason=\"bluesky_delete\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "followguard_input_ignored_total{reason=\"other_collection\"}"
        ),
        Some(1.0)
    );
    assert!(metric(&m, "followguard_profile_waits_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        metric(&m, "followguard_profile_records_total{result=\"applied\"}"),
        Some((n + 1) as f64)
    );

    let dlq = env.read_all(&t.dlq, 2);
    let kinds: std::collections::BTreeSet<_> = dlq
        .iter()
        .map(|r| r.headers.get("error_kind").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["missing_field".to_string(), "unknown_profile".to_string()].into()
    );
    let stranger = dlq
        .iter()
        .find(|r| r.headers.get("error_kind").map(String::as_str) == Some("unknown_profile"))
        .expect("the stranger's follow");
    assert!(
        String::from_utf8_lossy(&stranger.payload).contains("did:plc:stranger"),
        "the original commit is kept for a re-drive"
    );
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    let (opened, _) = opened(&alerts);
    assert!(opened.values().any(|f| f == "did:plc:buyer"), "{opened:?}");
    let moderation = read_topic(
        &env.brokers,
        &t.moderation,
        1,
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    assert!(moderation.iter().any(|r| r.json()["follower_id"]
        .as_str()
        .is_some_and(|f| f.starts_with("did:plc:bot"))));
    svc.sigterm();
    assert!(svc.wait_exit(Duration::from_secs(20)).is_some());
}
