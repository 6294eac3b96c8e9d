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
