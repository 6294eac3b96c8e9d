//! A broker that stops answering mid-stream (SIGSTOP of the local test broker, longer than
//! --delivery-timeout): produced records are not timed out — librdkafka's idempotent
//! producer retries them itself, in order (issue #19: no re-sends by hand that could put
//! an `update` before its `open`) — their offsets are not stored meanwhile, and once the
//! broker answers again every event is processed and committed, every campaign alerts,
//! and each alert's records reach the topic in order. Meanwhile the input is paused (not
//! the poll loop blocked): /healthz keeps answering 200.
//! Runs only against the broker scripts/test.sh starts (it needs the broker's pid).

mod kafka_support;

use kafka_support::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Both tests stop the shared broker; they must not overlap.
static BROKER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The pid of the local broker scripts/test.sh started (it sets FOLLOWGUARD_BROKER_DIR),
/// None when the tests run against a broker of the user's (FOLLOWGUARD_TEST_BROKERS set
/// by hand), which these tests must not pause. A broker dir without a readable pid is a
/// broken set-up, not a reason to skip.
fn broker_pid() -> Option<String> {
    let dir = std::env::var("FOLLOWGUARD_BROKER_DIR").ok()?;
    let path = format!("{dir}/tansu.pid");
    let pid = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("FOLLOWGUARD_BROKER_DIR is set but {path} is unreadable: {e}"));
    let pid = pid.trim().to_string();
    assert!(
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
        "{path} holds no pid: {pid:?}"
    );
    Some(pid)
}

fn signal(pid: &str, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, pid])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn broker_outage_mid_stream_is_retried_and_nothing_is_lost() {
    let Some(env) = env() else { return };
    let Some(pid) = broker_pid() else {
        eprintln!("note: skipping: FOLLOWGUARD_BROKER_DIR does not name a local broker to pause");
        return;
    };
    let _only = BROKER.lock().unwrap_or_else(|p| p.into_inner());
    let (events, truth) = env.generate(
        "blip",
        &Stream {
            seed: 3,
            followees: 200,
            days: 2,
            humans: 10000,
            viral: 2,
            campaigns: 3,
            min_campaign: 300,
            max_campaign: 600,
            camouflage: false,
            resell: None,
        },
    );
    let lines = with_malformed(&events, 500);
    let n = lines.len();
    let input = env.write_lines("blip.jsonl", &lines);
    let t = Topics::new("blip");
    env.create_topics(&t);
    let group = unique("gblip");
    // The whole input is on the broker first: the service then has records fetched ahead,
    // and keeps producing outputs for them while the broker is away.
    env.produce(&input, &t.input);
    let mut svc = env.serve(
        &t,
        &group,
        // A small in-flight bound makes the outage fill it: input pauses, polling goes on.
        &[
            "--delivery-timeout",
            "2s",
            "--max-in-flight",
            "20",
            "--health-stale-after",
            "3s",
        ],
    );
    svc.wait_ready(Duration::from_secs(60));
    let start = Instant::now();
    while metric_sum(&svc.metrics(), "followguard_events_total") < n as f64 * 0.3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "too slow before the outage"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&pid, "-STOP");
    std::thread::sleep(Duration::from_secs(8));
    // The loop keeps making progress while the broker is away.
    let health = svc.get("/healthz");
    signal(&pid, "-CONT");
    assert_eq!(health.map(|h| h.0), Some(200), "/healthz during the outage");

    let input_recs = env.read_all(&t.input, n);
    let ends = end_offsets(&input_recs);
    let start = Instant::now();
    while committed(&env.brokers, &group, &t.input) != ends {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "input not fully committed after the outage:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let m = svc.metrics();
    assert!(metric_sum(&m, "followguard_events_total") >= n as f64);
    let failures = metric_sum(&m, "followguard_producer_delivery_failures_total");
    let dlq = read_topic(
        &env.brokers,
        &t.dlq,
        1,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    for r in input_recs
        .iter()
        .filter(|r| r.payload.starts_with(b"{\"broken\""))
    {
        assert!(
            dlq.iter()
                .any(|d| d.headers["source_partition"] == r.partition.to_string()
                    && d.headers["source_offset"] == r.offset.to_string()),
            "malformed record {}:{} lost in the outage",
            r.partition,
            r.offset
        );
    }
    // Per-key order and nothing lost on the alerts topic (key = alert id's followee;
    // one key, one partition, read in offset order).
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let order = alert_order_violations(&alerts);
    assert!(order.is_empty(), "alert records out of order: {order:#?}");
    let opened: std::collections::BTreeSet<String> = alerts
        .iter()
        .map(Rec::json)
        .filter(|a| a["status"] == "open")
        .map(|a| a["followee_id"].as_str().unwrap().to_string())
        .collect();
    let targets: std::collections::BTreeSet<String> = truth["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["followee_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        targets.is_subset(&opened),
        "every campaign alerts despite the outage: opened {opened:?}, targets {targets:?}"
    );
    eprintln!(
        "blip: {n} events, {} alert records in order, {} opens, {failures} delivery failures \
         reported (librdkafka retried the rest itself), producer renewed {} times",
        alerts.len(),
        opened.len(),
        metric(&m, "followguard_producer_renewals_total").unwrap_or(0.0)
    );
    svc.sigterm();
    let status = svc.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{}", svc.log_text());
}

/// Records of one alert id out of lifecycle order on the alerts topic: the first must be
/// the `open`, and (a re-processed event may repeat a record already there, which is
/// skipped) each new record is no earlier in event time than the one before and never
/// follows the `resolved`.
fn alert_order_violations(alerts: &[Rec]) -> Vec<String> {
    let mut recs: Vec<&Rec> = alerts.iter().collect();
    recs.sort_by_key(|r| (r.partition, r.offset));
    let mut seen: std::collections::HashMap<String, Vec<(String, i64)>> =
        std::collections::HashMap::new();
    let mut bad = Vec::new();
    for r in recs {
        let a = r.json();
        let id = a["alert_id"].as_str().unwrap().to_string();
        let status = a["status"].as_str().unwrap().to_string();
        let t = a["event_time_ms"].as_i64().unwrap();
        let hist = seen.entry(id.clone()).or_default();
        if hist.iter().any(|(s, ht)| *s == status && *ht == t) {
            continue;
        }
        match hist.last() {
            None if status != "open" => bad.push(format!("{id}: {status} before its open")),
            Some((s, _)) if s == "resolved" => bad.push(format!("{id}: {status} after resolved")),
            Some((_, ht)) if *ht > t => bad.push(format!("{id}: {status} at {t} after {ht}")),
            _ => {}
        }
        hist.push((status, t));
    }
    bad
}

/// Shutdown against a broker that does not answer: the drain is bounded by the grace
/// period, and a second signal ends the process at once.
#[test]
fn shutdown_is_bounded_when_the_broker_is_gone() {
    let Some(env) = env() else { return };
    let Some(pid) = broker_pid() else {
        eprintln!("note: skipping: FOLLOWGUARD_BROKER_DIR does not name a local broker to pause");
        return;
    };
    let _only = BROKER.lock().unwrap_or_else(|p| p.into_inner());
    let t = Topics::new("grace");
    env.create_topics(&t);
    let mut bounded = env.serve(&t, &unique("ggrace"), &["--shutdown-grace", "3s"]);
    let mut impatient = env.serve(&t, &unique("gimpatient"), &["--shutdown-grace", "60s"]);
    bounded.wait_ready(Duration::from_secs(60));
    impatient.wait_ready(Duration::from_secs(60));
    // Malformed input: every record owes a dead-letter write. The broker stops while those
    // are in flight, so both instances have acknowledgements to wait for when told to stop.
    let lines: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("{{\"broken\": {i}").into_bytes())
        .collect();
    let input = env.write_lines("grace.jsonl", &lines);
    env.produce(&input, &t.input);
    let start = Instant::now();
    while metric_sum(&bounded.metrics(), "followguard_events_total") < 1.0
        || metric_sum(&impatient.metrics(), "followguard_events_total") < 1.0
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "input not consumed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(&pid, "-STOP");
    let started = Instant::now();
    bounded.sigterm();
    impatient.sigterm();
    std::thread::sleep(Duration::from_secs(1));
    impatient.sigterm();
    let second = impatient.wait_exit(Duration::from_secs(5));
    let first = bounded.wait_exit(Duration::from_secs(10));
    let elapsed = started.elapsed();
    signal(&pid, "-CONT");

    let second =
        second.unwrap_or_else(|| panic!("second signal ignored:\n{}", impatient.log_text()));
    assert_eq!(second.code(), Some(130), "{}", impatient.log_text());
    assert!(impatient.log_text().contains("second signal"));
    assert!(
        first.is_some(),
        "shutdown not bounded by the 3 s grace:\n{}",
        bounded.log_text()
    );
    assert!(elapsed < Duration::from_secs(9), "took {elapsed:?}");
}
