//! Issue #19, in-flight work bounded in bytes: with `--max-in-flight-bytes 1` every batch
//! waits for the previous ones' acknowledgements (input paused), yet the whole stream is
//! processed, committed and alerted on; the bytes gauge is exported and drains.

mod kafka_support;

use kafka_support::*;
use std::time::{Duration, Instant};

#[test]
fn a_tiny_byte_budget_pauses_input_but_loses_nothing() {
    let Some(env) = env() else { return };
    let (events, _truth) = env.generate("budget", &Stream::small_campaigns(3));
    let t = Topics::new("budget");
    env.create_topics(&t);
    let group = unique("g");
    let mut svc = env.serve(&t, &group, &["--max-in-flight-bytes", "1"]);
    svc.wait_ready(Duration::from_secs(60));
    env.produce(&events, &t.input);
    let inputs = read_topic(
        &env.brokers,
        &t.input,
        1,
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    let n = inputs.len();
    let m = svc.wait_events(n as f64, Duration::from_secs(120));
    let end = end_offsets(&inputs);
    let started = Instant::now();
    loop {
        let c = committed(&env.brokers, &group, &t.input);
        if end.iter().all(|(p, e)| c.get(p) == Some(e)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{c:?} {end:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        metric(&m, "followguard_input_pauses_total").unwrap_or(0.0) >= 1.0,
        "the byte budget paused the input"
    );
    assert!(metric(&m, "followguard_in_flight_bytes").is_some());
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    assert!(!alerts.is_empty());
    assert_eq!(
        alerts.len() as f64,
        metric_sum(&svc.metrics(), "followguard_alerts_total")
    );
    svc.sigterm();
    svc.wait_exit(Duration::from_secs(20));
}

/// Issue #19, stored state in bytes: serve exports the bytes of each store and, with a
/// pending-follows budget too small for one entry, counts every flagged follow it could
/// not remember, while detection of the bursts themselves carries on.
#[test]
fn stored_state_bytes_and_refused_pending_follows_are_exported() {
    let Some(env) = env() else { return };
    let (events, _truth) = env.generate("state", &Stream::small_campaigns(3));
    let t = Topics::new("state");
    env.create_topics(&t);
    let group = unique("g");
    let mut svc = env.serve(&t, &group, &["--pending-max-bytes", "1"]);
    svc.wait_ready(Duration::from_secs(60));
    let idle = svc.metrics();
    for store in ["detector", "evidence", "score_cache", "profiles"] {
        let series = format!("followguard_state_bytes{{store=\"{store}\"}}");
        assert!(metric(&idle, &series).is_some(), "{series} exported");
    }
    env.produce(&events, &t.input);
    let inputs = read_topic(
        &env.brokers,
        &t.input,
        1,
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    svc.wait_events(inputs.len() as f64, Duration::from_secs(120));
    // The gauges refresh every 5 s (idle polls included): wait for one after the end.
    let started = Instant::now();
    let m = loop {
        let m = svc.metrics();
        let detector = metric(&m, "followguard_state_bytes{store=\"detector\"}").unwrap_or(0.0);
        let evidence = metric(&m, "followguard_state_bytes{store=\"evidence\"}").unwrap_or(0.0);
        let refused = metric(&m, "followguard_pending_refused_total").unwrap_or(0.0);
        let suspicious = metric(&m, "followguard_suspicious_follows_total").unwrap_or(0.0);
        if detector > 0.0 && evidence > 0.0 && refused > 0.0 {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "state bytes or refused follows not exported: detector {detector}, evidence \
             {evidence}, refused {refused} of {suspicious} suspicious\n{m}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        metric(&m, "followguard_state_bytes{store=\"score_cache\"}").unwrap_or(0.0) > 0.0,
        "score cache bytes"
    );
    assert_eq!(
        metric(&m, "followguard_state_bytes{store=\"profiles\"}"),
        Some(0.0),
        "no profile table without --profile-topic"
    );
    svc.sigterm();
    svc.wait_exit(Duration::from_secs(20));
}
