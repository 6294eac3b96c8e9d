//! End to end on a real broker: a generated stream with bought-follower campaigns goes in,
//! alerts and moderation records come out for the campaign targets only, malformed input
//! is dead-lettered with its reason while the service keeps going, metrics move, /readyz
//! turns ready after assignment, and shutdown drains, commits and ends cleanly within the
//! grace. The campaign test runs the service in this process (`serve::run` with a shutdown
//! future); the organic one runs the `followguard serve` binary and sends it SIGTERM.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

const MALFORMED: [&[u8]; 3] = [
    b"{not json",
    br#"{"type":"follow","ts":"2026-11-01T00:00:00Z","followee_id":"1"}"#,
    br#"{"type":"poke","ts":"2026-11-01T00:00:00Z","followee_id":"1","follower":{"id":"2"}}"#,
];

fn campaign_stream(env: &Env, name: &str, campaigns: u32) -> (Vec<Vec<u8>>, serde_json::Value) {
    let (events, truth) = env.generate(
        name,
        &Stream {
            seed: 7,
            followees: 150,
            days: 2,
            humans: 5000,
            viral: 2,
            campaigns,
            min_campaign: 200,
            max_campaign: 400,
            camouflage: false,
            resell: None,
        },
    );
    let text = std::fs::read(&events).expect("events");
    let lines = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    (lines, truth)
}

fn campaign_targets(truth: &serde_json::Value) -> HashSet<String> {
    truth["campaigns"]
        .as_array()
        .expect("truth.campaigns")
        .iter()
        .filter_map(|c| c["followee_id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn campaign_alerts_moderation_dead_letters_metrics_and_clean_exit() {
    let Some(env) = env() else { return };
    let (mut lines, truth) = campaign_stream(&env, "campaign", 3);
    let mid = lines.len() / 2;
    lines.insert(0, MALFORMED[0].to_vec());
    lines.insert(mid, MALFORMED[1].to_vec());
    lines.push(MALFORMED[2].to_vec());
    let n = lines.len();
    let input = env.write_lines("campaign-with-malformed.jsonl", &lines);

    let t = Topics::new("e2e");
    env.create_topics(&t);
    let group = unique("g");
    let receiver = AlertReceiver::start();
    let mut svc = env.serve_in_process(
        &t,
        &group,
        &["--shutdown-grace", "5s", "--webhook-url", &receiver.url],
    );
    let saw_not_ready = svc.wait_ready(Duration::from_secs(60));
    assert!(
        saw_not_ready,
        "/readyz should answer 503 until partitions are assigned"
    );
    let before = svc.metrics();
    assert_eq!(metric_sum(&before, "followguard_events_total"), 0.0);
    assert_eq!(
        metric(&before, "followguard_assigned_partitions"),
        Some(f64::from(PARTITIONS))
    );

    env.produce(&input, &t.input);
    let m = svc.wait_events(n as f64, Duration::from_secs(120));

    // Metrics moved with the stream.
    assert_eq!(metric_sum(&m, "followguard_events_total"), n as f64);
    assert_eq!(
        metric(&m, "followguard_events_total{outcome=\"rejected\"}"),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &m,
            "followguard_events_rejected_total{kind=\"invalid_json\"}"
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
        metric(&m, "followguard_events_rejected_total{kind=\"bad_type\"}"),
        Some(1.0)
    );
    assert!(metric(&m, "followguard_follower_score_ratio_count").unwrap_or(0.0) >= (n - 3) as f64);
    assert!(metric(&m, "followguard_suspicious_follows_total").unwrap_or(0.0) > 0.0);
    assert!(metric_sum(&m, "followguard_alerts_total") > 0.0);
    assert!(metric(&m, "followguard_tracked_followees").unwrap_or(0.0) > 0.0);
    assert!(metric(&m, "followguard_processing_duration_seconds_count").unwrap_or(0.0) >= n as f64);
    assert!(metric(&m, "followguard_event_age_seconds_count").unwrap_or(0.0) >= (n - 3) as f64);
    assert_eq!(
        metric(&m, "followguard_rebalances_total{kind=\"assign\"}"),
        Some(1.0)
    );
    // Lag needs a committed offset and a statistics tick (every 500 ms here).
    let start = Instant::now();
    while !svc
        .metrics()
        .contains("followguard_consumer_lag_records{partition=")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no consumer lag from librdkafka statistics"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric_sum(&m, "followguard_producer_delivery_failures_total"),
        0.0
    );

    // Alerts: documented fields, keyed by followee, only about campaign targets.
    let targets = campaign_targets(&truth);
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    assert!(
        !alerts.is_empty(),
        "no alert for {} campaigns",
        targets.len()
    );
    let mut opened = BTreeSet::new();
    for r in &alerts {
        let a = r.json();
        for field in [
            "alert_id",
            "status",
            "kind",
            "severity",
            "followee_id",
            "event_time",
            "burst_start",
            "window_start",
            "window_end",
            "new_followers",
            "suspicious_count",
            "sample_follower_ids",
            "top_reasons",
            "model_version",
        ] {
            assert!(a.get(field).is_some(), "alert lacks {field}: {a}");
        }
        let followee = a["followee_id"].as_str().expect("followee_id");
        assert_eq!(
            r.key,
            followee.as_bytes(),
            "alerts are keyed by followee id"
        );
        assert!(
            targets.contains(followee),
            "alert about {followee}, which is not a campaign target {targets:?}: {a}"
        );
        if a["status"] == "open" {
            opened.insert(a["alert_id"].as_str().expect("alert_id").to_string());
        }
    }
    assert!(!opened.is_empty(), "no alert was opened");
    assert_eq!(
        metric_sum(&m, "followguard_alerts_total"),
        alerts.len() as f64
    );

    // Moderation: one record per flagged follower of an alerted followee.
    let moderation = read_topic(
        &env.brokers,
        &t.moderation,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    assert!(!moderation.is_empty(), "no moderation records");
    assert_eq!(
        metric(&m, "followguard_moderation_records_total"),
        Some(moderation.len() as f64)
    );
    let bot_min = truth["bot_id_min"].as_u64().expect("bot_id_min");
    let mut bots = 0;
    for r in &moderation {
        let v = r.json();
        let followee = v["followee_id"].as_str().expect("followee_id");
        assert_eq!(r.key, followee.as_bytes());
        assert!(
            targets.contains(followee),
            "moderation for non-target {followee}"
        );
        assert!(
            v["alert_id"].as_str().is_some_and(|id| opened.contains(id)),
            "moderation record refers to an alert never opened: {v}"
        );
        let follower: u64 = v["follower_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if follower >= bot_min {
            bots += 1;
        }
    }
    assert!(
        bots * 2 > moderation.len(),
        "most flagged followers should be bought accounts: {bots} of {}",
        moderation.len()
    );

    // Dead letters: original bytes plus where they came from and why.
    let dlq = read_topic(
        &env.brokers,
        &t.dlq,
        3,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    let input_recs = env.read_all(&t.input, n);
    let mut kinds = BTreeSet::new();
    for r in &dlq {
        assert!(MALFORMED.contains(&r.payload.as_slice()), "{r:?}");
        assert_eq!(r.headers["source_topic"], t.input);
        let p: i32 = r.headers["source_partition"]
            .parse()
            .expect("partition header");
        let o: i64 = r.headers["source_offset"].parse().expect("offset header");
        let orig = input_recs
            .iter()
            .find(|x| x.partition == p && x.offset == o)
            .expect("headers point at the source record");
        assert_eq!(orig.payload, r.payload);
        assert!(!r.headers["error_message"].is_empty());
        kinds.insert(r.headers["error_kind"].clone());
    }
    assert_eq!(
        kinds,
        ["bad_type", "invalid_json", "missing_field"]
            .map(String::from)
            .into()
    );

    // Webhook: the same alerts, in Alertmanager's format.
    let start = Instant::now();
    while receiver.alerts().len() < alerts.len() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let posted = receiver.alerts();
    assert_eq!(
        posted.len(),
        alerts.len(),
        "one webhook alert per alert record"
    );
    for p in &posted {
        assert_eq!(p["labels"]["alertname"], "FollowerPurchaseSuspected");
        assert!(p["labels"]["alert_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("fga-")));
        assert!(p["startsAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert_eq!(
        metric(&svc.metrics(), "followguard_webhook_sent_total"),
        Some(posted.len() as f64)
    );

    // Shutdown requested: drains, commits every processed offset, returns Ok within the
    // 5 s grace.
    let started = Instant::now();
    svc.sigterm();
    let status = svc
        .wait_exit(Duration::from_secs(7))
        .unwrap_or_else(|| panic!("no exit within the grace period:\n{}", svc.log_text()));
    assert!(status.success(), "exit {status}:\n{}", svc.log_text());
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(
        committed(&env.brokers, &group, &t.input),
        end_offsets(&input_recs),
        "every input offset is committed after a clean shutdown"
    );
}

#[test]
fn organic_traffic_raises_nothing() {
    let Some(env) = env() else { return };
    let (lines, truth) = campaign_stream(&env, "organic", 0);
    assert!(campaign_targets(&truth).is_empty());
    let input = env.write_lines("organic.jsonl", &lines);
    let t = Topics::new("organic");
    env.create_topics(&t);
    let mut svc = env.serve(&t, &unique("g"), &["--log-format", "json"]);
    svc.wait_ready(Duration::from_secs(60));
    env.produce(&input, &t.input);
    let m = svc.wait_events(lines.len() as f64, Duration::from_secs(120));
    assert_eq!(metric_sum(&m, "followguard_alerts_total"), 0.0);
    assert_eq!(
        metric(&m, "followguard_moderation_records_total"),
        Some(0.0)
    );
    assert!(read_topic(
        &env.brokers,
        &t.alerts,
        0,
        Duration::from_secs(2),
        Duration::from_secs(10)
    )
    .is_empty());
    assert!(read_topic(
        &env.brokers,
        &t.moderation,
        0,
        Duration::from_secs(1),
        Duration::from_secs(10)
    )
    .is_empty());
    svc.sigterm();
    let status = svc.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success());
    // JSON logs: one object per line; lifecycle only, nothing per event.
    let log = svc.log_text();
    let log_lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        log_lines.len() < 40,
        "{} log lines for {} events",
        log_lines.len(),
        lines.len()
    );
    for l in &log_lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }
    assert!(log.contains("shutdown complete"));
}

/// The restart path's duplicate-open guard reads exactly the `open` records of the alerts
/// topic (updates, resolutions and foreign records are ignored).
#[test]
fn already_opened_alerts_are_found_on_the_alerts_topic() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::sync::Arc;
    let Some(env) = env() else { return };
    let t = Topics::new("scan");
    env.create_topics(&t);
    let kafka = followguard::config::KafkaConfig {
        brokers: env.brokers.clone(),
        options: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ids = rt.block_on(async {
        let producer: FutureProducer =
            followguard::kafka::producer_config(&kafka, Duration::from_secs(10))
                .create()
                .expect("producer");
        for (key, payload) in [
            (
                "1",
                r#"{"alert_id":"fga-a","status":"open","followee_id":"1"}"#,
            ),
            (
                "1",
                r#"{"alert_id":"fga-a","status":"update","followee_id":"1"}"#,
            ),
            (
                "2",
                r#"{"alert_id":"fga-b","status":"resolved","followee_id":"2"}"#,
            ),
            (
                "3",
                r#"{"alert_id":"fga-c","status":"open","followee_id":"3"}"#,
            ),
            ("4", "not json"),
        ] {
            producer
                .send(
                    FutureRecord::to(&t.alerts).key(key).payload(payload),
                    Duration::from_secs(5),
                )
                .await
                .expect("delivered");
        }
        let reader =
            followguard::kafka::reader(&followguard::kafka::replay_config(&kafka, &unique("scan")))
                .expect("reader");
        followguard::kafka::scan_opened_alerts(
            &Arc::new(reader),
            &t.alerts,
            0,
            Duration::from_secs(2),
        )
        .await
        .expect("scan")
    });
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        ["fga-a", "fga-c"].map(String::from).into()
    );
}
