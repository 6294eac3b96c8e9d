//! Issue #23: zstd-compressed input on a real broker. The stream is produced with
//! `compression.type=zstd` taken from a `--kafka-config` client.properties file (a build
//! without rdkafka's `zstd` feature refuses that setting when the producer is created),
//! the development broker stores the compressed batches as they are, and `serve` (its own
//! settings from another `--kafka-config` file) consumes, scores and alerts on every
//! record, none rejected.

mod kafka_support;

use kafka_support::*;
use std::time::Duration;

#[test]
fn zstd_compressed_input_is_consumed_and_scored() {
    let Some(env) = env() else { return };
    let (events, truth) = env.generate("zstd", &Stream::small_campaigns(23));
    let n = std::fs::read(&events)
        .expect("events")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let campaigns = truth["campaigns"].as_array().map_or(0, Vec::len);
    assert!(campaigns > 0, "the stream has campaigns");

    let producer_props = env.tmp.path().join("producer.properties");
    std::fs::write(
        &producer_props,
        "# what a user's client.properties holds\ncompression.type=zstd\nlinger.ms=20\n",
    )
    .expect("write producer.properties");
    let serve_props = env.tmp.path().join("serve.properties");
    std::fs::write(
        &serve_props,
        "client.id=followguard-zstd-test\nfetch.wait.max.ms=100\n",
    )
    .expect("write serve.properties");

    let t = Topics::new("zstd");
    env.create_topics(&t);
    let group = unique("g");
    let serve_config = serve_props.to_str().expect("utf-8 path");
    let mut svc = env.serve(&t, &group, &["--kafka-config", serve_config]);
    svc.wait_ready(Duration::from_secs(60));
    env.produce_with(
        &events,
        &t.input,
        &[
            "--kafka-config",
            producer_props.to_str().expect("utf-8 path"),
        ],
    );
    let m = svc.wait_events(n as f64, Duration::from_secs(120));

    assert_eq!(metric_sum(&m, "followguard_events_total"), n as f64);
    assert_eq!(
        metric(&m, "followguard_events_total{outcome=\"rejected\"}"),
        Some(0.0),
        "every zstd-compressed record parsed"
    );
    assert!(metric(&m, "followguard_follower_score_ratio_count").unwrap_or(0.0) >= n as f64);
    assert!(metric(&m, "followguard_suspicious_follows_total").unwrap_or(0.0) > 0.0);
    assert!(
        metric_sum(&m, "followguard_alerts_total") > 0.0,
        "campaigns in zstd-compressed input are alerted"
    );
    assert_eq!(metric_sum(&m, "followguard_consumer_errors_total"), 0.0);
    svc.sigterm();
    let exit = svc.wait_exit(Duration::from_secs(20)).expect("serve exits");
    assert!(exit.success(), "clean exit:\n{}", svc.log_text());
}
