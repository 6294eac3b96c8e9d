//! Issue #19 through `serve` on a real broker: a stream with one 9999-dated and one
//! 2100-dated follow near its start opens the same alerts (ids included) as without them.

mod kafka_support;

use kafka_support::*;
use std::collections::BTreeSet;
use std::time::Duration;

fn stray(ts: &str, n: u32) -> Vec<u8> {
    format!(
        r#"{{"event_id":"stray-{n}","type":"follow","ts":"{ts}","followee_id":"stray-target-{n}","follower":{{"id":"77{n}","screen_name":"marta","name":"Marta","description":"Teacher","created_at":"Tue Jun 11 11:20:35 +0000 2013","followers_count":420,"friends_count":380,"statuses_count":5120,"favourites_count":2210,"listed_count":7}}}}"#
    )
    .into_bytes()
}

/// Opened alert ids after serving `lines` (and the rejected-kind metric text).
fn serve_opens(env: &Env, name: &str, lines: &[Vec<u8>]) -> (BTreeSet<String>, String) {
    let input = env.write_lines(&format!("{name}.jsonl"), lines);
    let t = Topics::new(name);
    env.create_topics(&t);
    let mut svc = env.serve(&t, &unique("g"), &[]);
    svc.wait_ready(Duration::from_secs(60));
    env.produce(&input, &t.input);
    let m = svc.wait_events(lines.len() as f64, Duration::from_secs(120));
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    svc.sigterm();
    svc.wait_exit(Duration::from_secs(20));
    let opens = alerts
        .iter()
        .map(Rec::json)
        .filter(|a| a["status"] == "open")
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    (opens, m)
}

#[test]
fn far_future_follows_do_not_blind_serve() {
    let Some(env) = env() else { return };
    let (events, _truth) = env.generate("skew", &Stream::small_campaigns(5));
    let text = std::fs::read(&events).expect("events");
    let base: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut hostile = base.clone();
    hostile.insert(40, stray("9999-12-31T23:59:59Z", 1));
    hostile.insert(90, stray("2100-01-01T00:00:00Z", 2));

    let (want, _) = serve_opens(&env, "skew-base", &base);
    assert!(!want.is_empty(), "the campaigns alert");
    let (got, m) = serve_opens(&env, "skew-hostile", &hostile);
    assert_eq!(got, want, "same alert ids with the absurd times");
    assert_eq!(
        metric(
            &m,
            "followguard_events_rejected_total{kind=\"bad_timestamp\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "followguard_event_time_adjustments_total{kind=\"clamped\"}"
        ),
        Some(1.0)
    );
}
