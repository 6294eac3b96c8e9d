//! Issue #19 on a real broker: a 1.2 MB alert (a campaign of bots with 60 KB ids, allowed
//! by `--max-id-bytes 65536`, and a record budget `--max-record-bytes 4194304` set above
//! the broker's limit so the detector's own trimming does not prevent the refusal) that
//! librdkafka refuses for good and a 1.1 MB input record
//! do not stall the instance: committed offsets reach the end of the input within 60 s,
//! the dead-letter topic holds what was refused, and the other alerts still arrive.

mod kafka_support;

use kafka_support::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn bot_follow(followee: &str, follower: &str, ts_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"event_id":"long-{ts_ms}","type":"follow","ts":{ts_ms},"followee_id":"{followee}","follower":{{"id":"{follower}","screen_name":"kdjw83920183","name":"kdjw","description":"","created_at":"2026-09-01T00:00:00Z","followers_count":2,"friends_count":1450,"statuses_count":0,"favourites_count":0,"listed_count":0,"default_profile":true,"default_profile_image":true}}}}"#
    )
    .into_bytes()
}

#[test]
fn refused_records_never_stall_offsets_and_go_to_the_dead_letter_topic() {
    let Some(env) = env() else { return };
    let (events, truth) = env.generate("refusal", &Stream::small_campaigns(11));
    let text = std::fs::read(&events).expect("events");
    let mut lines: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mid = lines.len() / 2;
    let t_mid = followguard_core::event::parse(&lines[mid])
        .unwrap()
        .ts_ms
        .unwrap();
    // 120 bots with 63 KB ids burst onto one followee: its alert samples up to 20 (> 1 MB).
    let burst: Vec<Vec<u8>> = (0..120)
        .map(|i| bot_follow("longid-target", &format!("{i:0>63000}"), t_mid + i * 1000))
        .collect();
    lines.splice(mid..mid, burst);
    // A 1.1 MB input record.
    let mut big = b"{\"pad\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1_100_000));
    big.extend(b"\"}");
    lines.insert(mid / 2, big);
    let n = lines.len();
    let input = env.write_lines("refusal.jsonl", &lines);

    let t = Topics::new("refusal");
    env.create_topics(&t);
    let group = unique("g");
    let mut svc = env.serve(
        &t,
        &group,
        &["--max-id-bytes", "65536", "--max-record-bytes", "4194304"],
    );
    svc.wait_ready(Duration::from_secs(60));
    env.produce_with(
        &input,
        &t.input,
        &["--kafka-option", "message.max.bytes=4000000"],
    );
    let started = Instant::now();
    let inputs = read_topic(
        &env.brokers,
        &t.input,
        n,
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    assert_eq!(inputs.len(), n);
    let end = end_offsets(&inputs);
    // Committed offsets reach the end of the input within 60 s.
    loop {
        let c = committed(&env.brokers, &group, &t.input);
        if end.iter().all(|(p, e)| c.get(p) == Some(e)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "committed {c:?}, end {end:?}\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "refusal: offsets at the end {:.1} s after the input was produced",
        started.elapsed().as_secs_f64()
    );
    let m = svc.metrics();
    assert_eq!(metric_sum(&m, "followguard_events_total"), n as f64);
    let refused = metric(
        &m,
        "followguard_produce_refused_total{reason=\"too_large\",sink=\"alerts\"}",
    )
    .unwrap_or(0.0);
    assert!(refused >= 1.0, "{m}");

    // The dead-letter topic holds the refused alert (bounded) and the oversized input.
    let dl = read_topic(
        &env.brokers,
        &t.dlq,
        2,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    let kind = |r: &Rec| r.headers.get("error_kind").cloned().unwrap_or_default();
    let too_large: Vec<&Rec> = dl.iter().filter(|r| kind(r) == "too_large").collect();
    assert_eq!(
        too_large.len(),
        1,
        "{:?}",
        dl.iter().map(kind).collect::<Vec<_>>()
    );
    assert_eq!(
        too_large[0]
            .headers
            .get("original_size")
            .map(String::as_str),
        Some("1100010")
    );
    assert!(too_large[0].payload.len() <= 16 * 1024);
    let stand_ins: Vec<&Rec> = dl.iter().filter(|r| kind(r) == "produce_refused").collect();
    assert_eq!(stand_ins.len() as f64, refused);
    for r in &stand_ins {
        assert_eq!(r.key, b"longid-target");
        assert_eq!(
            r.headers.get("refused_reason").map(String::as_str),
            Some("too_large")
        );
        assert!(r.headers["original_size"].parse::<usize>().unwrap() > 1_000_000);
        assert!(r.payload.len() <= 16 * 1024);
    }

    // No other alert is lost: every alert counted and not refused is on the topic, and
    // the generated campaigns still open alerts.
    let alerts = read_topic(
        &env.brokers,
        &t.alerts,
        1,
        Duration::from_secs(2),
        Duration::from_secs(30),
    );
    assert_eq!(
        alerts.len() as f64,
        metric_sum(&m, "followguard_alerts_total") - refused
    );
    let opened: BTreeSet<String> = alerts
        .iter()
        .map(Rec::json)
        .filter(|a| a["status"] == "open")
        .map(|a| a["followee_id"].as_str().unwrap().to_string())
        .collect();
    let targets: BTreeSet<String> = truth["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["followee_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !opened.is_empty() && opened.is_subset(&targets),
        "opened {opened:?}, targets {targets:?}"
    );
    eprintln!(
        "refusal: {refused} refused alert records dead-lettered, {} alert records delivered, {} opens",
        alerts.len(),
        opened.len()
    );
    svc.sigterm();
    svc.wait_exit(Duration::from_secs(20));
}
