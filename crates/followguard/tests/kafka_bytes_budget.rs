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
