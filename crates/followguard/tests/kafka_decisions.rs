//! Issue 24 on a real broker: moderators' verdicts on `--decisions-topic` change what
//! `serve` flags. A follower a moderator cleared as "human" gets no more moderation
//! records; a "false_alert" verdict on a followee suppresses its next burst (no alert,
//! no moderation records); both are counted in the metrics.

mod kafka_support;

use kafka_support::*;
use std::time::{Duration, Instant};

const T0_MS: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z

fn bot_follow(followee: &str, follower: &str, ts_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"event_id": "e-{followee}-{follower}", "type": "follow", "ts": {ts_ms}, "followee_id": "{followee}", "follower": {{"id": "{follower}", "screen_name": "kdjw83920183", "name": "kdjw", "description": "", "created_at": "2026-09-01T00:00:00Z", "followers_count": 2, "friends_count": 1450, "statuses_count": 0, "favourites_count": 0, "listed_count": 0, "default_profile": true, "default_profile_image": true}}}}"#
    )
    .into_bytes()
}

fn burst(followee: &str, who: &str, t0: i64) -> Vec<Vec<u8>> {
    (0..60)
        .map(|i| bot_follow(followee, &format!("{who}{i}"), t0 + 1000 * i))
        .collect()
}

#[test]
fn human_verdict_stops_moderation_records_and_false_alert_suppresses_the_next_burst() {
    let Some(env) = env() else { return };
    let t = Topics::new("dec");
    env.create_topics(&t);
    let decisions = unique("decisions");
    env.create_table_topic(&t, "--decisions-topic", &decisions);
    let group = unique("g");
    // A shadow model runs beside the live one (reported only).
    let shadow = model_path().with_file_name("lovo-TWT.json");
    let mut svc = env.serve_in_process(
        &t,
        &group,
        &[
            "--decisions-topic",
            &decisions,
            "--shadow-model",
            shadow.to_str().unwrap(),
        ],
    );
    svc.wait_ready(Duration::from_secs(60));

    // A first burst: b5 is flagged on the moderation topic.
    env.produce(
        &env.write_lines("burst1.jsonl", &burst("buyer", "b", T0_MS)),
        &t.input,
    );
    svc.wait_events(60.0, Duration::from_secs(60));
    let first = read_topic(
        &env.brokers,
        &t.moderation,
        10,
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    assert!(first.iter().any(|r| r.json()["follower_id"] == "b5"));

    // The moderator: b5 is a person; the alert on "target2" (say, from yesterday) was
    // false, so its next burst is not to be alerted.
    let verdicts = [
        br#"{"follower_id": "b5", "followee_id": "buyer", "verdict": "human", "who": "ana", "at": "2026-11-28T11:00:00Z"}"#.to_vec(),
        br#"{"followee_id": "target2", "alert_id": "fga-x", "verdict": "false_alert", "who": "ana", "at": "2026-11-28T11:00:00Z"}"#.to_vec(),
    ];
    env.produce(&env.write_lines("decisions.jsonl", &verdicts), &decisions);
    let start = Instant::now();
    loop {
        let m = svc.metrics();
        if metric(&m, "followguard_decisions_total{verdict=\"human\"}") == Some(1.0)
            && metric(&m, "followguard_decisions_total{verdict=\"false_alert\"}") == Some(1.0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "decisions not read:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A second burst with b5 among fresh bots on "buyer3", and a burst on "target2".
    let t1 = T0_MS + 3_600_000;
    let mut second = burst("buyer3", "c", t1);
    second.insert(30, bot_follow("buyer3", "b5", t1 + 30_500));
    second.extend(burst("target2", "d", t1 + 120_000));
    env.produce(&env.write_lines("burst2.jsonl", &second), &t.input);
    let m = svc.wait_events(60.0 + second.len() as f64, Duration::from_secs(60));
    assert!(
        metric(
            &m,
            "followguard_decision_effects_total{effect=\"cleared_follower\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        metric(
            &m,
            "followguard_decision_effects_total{effect=\"suppressed_record\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        metric(&m, "followguard_decisions_held{kind=\"cleared\"}"),
        Some(1.0)
    );
    // The shadow model scored every follow; it flags and alerts nothing by itself.
    assert_eq!(
        metric_sum(&m, "followguard_shadow_follows_total"),
        60.0 + second.len() as f64
    );
    assert!(m.contains("followguard_shadow_model_info{sha256="));

    let moderation = read_topic(
        &env.brokers,
        &t.moderation,
        first.len() + 10,
        Duration::from_secs(2),
        Duration::from_secs(20),
    );
    let of = |followee: &str| -> Vec<String> {
        moderation
            .iter()
            .map(|r| r.json())
            .filter(|j| j["followee_id"] == followee)
            .map(|j| j["follower_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // Records of follows flagged after the alert opened carry the shadow's score
    // (those flagged before it, emitted when it opens, were scored earlier: none).
    assert!(moderation.iter().any(|r| r.json()["shadow_score"]
        .as_f64()
        .is_some_and(|p| (0.0..=1.0).contains(&p))));
    let buyer3 = of("buyer3");
    assert!(buyer3.len() > 10, "the new burst is moderated: {buyer3:?}");
    assert!(
        !buyer3.contains(&"b5".to_string()),
        "the cleared follower is not: {buyer3:?}"
    );
    assert!(
        of("target2").is_empty(),
        "the suppressed burst has no moderation records"
    );
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        2,
        Duration::from_secs(2),
        Duration::from_secs(20),
    );
    let (opened, _) = opened(&alerts);
    let followees: Vec<&String> = opened.values().collect();
    assert!(followees.iter().any(|f| *f == "buyer3"), "{followees:?}");
    assert!(!followees.iter().any(|f| *f == "target2"), "{followees:?}");
    svc.sigterm();
    assert!(svc.wait_exit(Duration::from_secs(20)).is_some());
}
