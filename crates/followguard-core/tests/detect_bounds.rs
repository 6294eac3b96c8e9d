//! Issue #19, bounded ids and records: ids longer than the limit are `bad_id`; an alert
//! built from the longest accepted ids stays small. (The bounded dead letter of an
//! oversized input is the service's: crates/followguard/tests/dead_letter_bounds.rs.)

mod support;

use followguard_core::alert::AlertStatus;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use std::sync::Arc;

fn pipeline() -> Pipeline {
    Pipeline::new(
        Arc::new(support::shipped_model()),
        PipelineConfig::default(),
    )
}

/// A pipeline accepting ids of up to `max_id` bytes, records of up to `max_record`.
fn pipeline_with(max_id: usize, max_record: usize) -> Pipeline {
    let mut cfg = PipelineConfig {
        max_id_bytes: max_id,
        ..PipelineConfig::default()
    };
    cfg.detector.max_record_bytes = max_record;
    Pipeline::new(Arc::new(support::shipped_model()), cfg)
}

/// Every record of a burst of `bots` followers with `id_len`-byte ids on one followee:
/// (alert records as JSON, moderation records as JSON).
fn burst_records(p: &mut Pipeline, bots: i64, id_len: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut alerts, mut moderation) = (Vec::new(), Vec::new());
    for i in 0..bots {
        let follower = format!("{i:0>id_len$}");
        let line = bot_follow("783214", &follower, 1_795_860_000_000 + i * 1000);
        let o = p.process(&line, None, 0).unwrap();
        alerts.extend(o.alerts.iter().map(|a| serde_json::to_vec(a).unwrap()));
        moderation.extend(o.moderation.iter().map(|m| serde_json::to_vec(m).unwrap()));
    }
    (alerts, moderation)
}

fn bot_follow(followee: &str, follower: &str, ts_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"event_id":"e","type":"follow","ts":{ts_ms},"followee_id":"{followee}","follower":{{"id":"{follower}","screen_name":"kdjw83920183","name":"kdjw","description":"","created_at":"2026-09-01T00:00:00Z","followers_count":2,"friends_count":1450,"statuses_count":0,"favourites_count":0,"listed_count":0,"default_profile":true,"default_profile_image":true}}}}"#
    )
    .into_bytes()
}

#[test]
fn ids_longer_than_the_limit_are_bad_ids() {
    let mut p = pipeline();
    let long = "9".repeat(257);
    let e = p
        .process(&bot_follow("f", &long, 1_795_860_000_000), None, 0)
        .unwrap_err();
    assert_eq!(e.kind(), "bad_id");
    let e = p
        .process(&bot_follow(&long, "1", 1_795_860_000_000), None, 0)
        .unwrap_err();
    assert_eq!(e.kind(), "bad_id");
    assert_eq!(
        p.tracked_followees(),
        0,
        "rejected before any state changes"
    );
    assert!(p
        .process(
            &bot_follow("f", &"9".repeat(256), 1_795_860_000_000),
            None,
            0
        )
        .is_ok());
}

#[test]
fn an_alert_of_longest_id_bots_stays_small() {
    let mut p = pipeline();
    let mut biggest = 0;
    let mut opens = 0;
    for i in 0..200 {
        let follower = format!("{i:0>256}");
        let line = bot_follow(&"7".repeat(256), &follower, 1_795_860_000_000 + i * 1000);
        let o = p.process(&line, None, 0).unwrap();
        for a in &o.alerts {
            opens += usize::from(a.status == AlertStatus::Open);
            biggest = biggest.max(serde_json::to_vec(a).unwrap().len());
        }
        for m in &o.moderation {
            biggest = biggest.max(serde_json::to_vec(m).unwrap().len());
        }
    }
    assert_eq!(opens, 1);
    assert!(biggest < 16 * 1024, "largest record {biggest} bytes");
}

/// Issue #19: bots with 30 KB ids (allowed by a raised id limit) make alert records that
/// would be ~600 KB with a 20-id sample; the sample is trimmed to the record budget and
/// the record says how many ids it left out. Short ids leave the record as it was (no
/// marker field).
#[test]
fn alert_samples_are_trimmed_to_the_record_budget_with_a_marker() {
    // (record budget, ids that fit: (budget − 4096 fixed − 8 followee) / 30,003 per id)
    for (budget, fit) in [(600_000, 19), (64 * 1024, 2)] {
        let mut p = pipeline_with(30 * 1024, budget);
        let (alerts, moderation) = burst_records(&mut p, 200, 30_000);
        assert!(!alerts.is_empty());
        let mut most = (0, 0);
        for a in &alerts {
            assert!(a.len() <= budget, "alert record of {} bytes", a.len());
            let v: serde_json::Value = serde_json::from_slice(a).unwrap();
            let samples = v["sample_follower_ids"].as_array().unwrap().len();
            let cut = v["samples_truncated"].as_u64().unwrap_or(0);
            assert!(samples <= fit, "{samples} ids in a {budget}-byte record");
            most = most.max((samples, cut));
        }
        assert_eq!(most.0, fit, "budget {budget}");
        assert!(most.1 >= 1, "the trimmed record says so (budget {budget})");
        assert!(moderation.iter().all(|m| m.len() <= budget));
    }

    // Short ids: the full sample, and no marker.
    let mut p = pipeline();
    let (alerts, _) = burst_records(&mut p, 200, 12);
    let last: serde_json::Value = serde_json::from_slice(alerts.last().unwrap()).unwrap();
    assert_eq!(last["sample_follower_ids"].as_array().unwrap().len(), 20);
    assert!(alerts
        .iter()
        .all(|a| !String::from_utf8_lossy(a).contains("samples_truncated")));
}
