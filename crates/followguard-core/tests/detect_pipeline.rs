//! Pipeline contract tests with the shipped model: event-time resolution, typed
//! rejections, the score cache, unfollows, partition drops, and alert keys.

mod support;

use followguard_core::alert::AlertStatus;
use followguard_core::event::EventError;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use std::sync::Arc;

fn pipeline() -> Pipeline {
    Pipeline::new(
        Arc::new(support::shipped_model()),
        PipelineConfig::default(),
    )
}

/// A bought-looking follower (young, no tweets, many friends) or a human-looking one.
fn event(kind: &str, followee: &str, follower: &str, ts: Option<&str>, bot: bool) -> Vec<u8> {
    let ts = ts.map(|t| format!(r#""ts": "{t}","#)).unwrap_or_default();
    let profile = support::profile_fields(bot);
    format!(
        r#"{{"event_id": "e-{follower}", "type": "{kind}", {ts} "followee_id": "{followee}", "follower": {{"id": "{follower}", {profile}}}}}"#
    )
    .into_bytes()
}

#[test]
fn event_time_comes_from_payload_else_fallback() {
    let mut p = pipeline();
    let o = p
        .process(
            &event("follow", "f", "1", Some("2026-11-28T10:00:00Z"), false),
            Some(5),
            0,
        )
        .unwrap()
        .into_owned();
    assert_eq!(o.event_time_ms, 1_795_860_000_000);
    let o = p
        .process(
            &event("follow", "f", "2", None, false),
            Some(1_795_860_001_000),
            0,
        )
        .unwrap()
        .into_owned();
    assert_eq!(o.event_time_ms, 1_795_860_001_000);
    assert_eq!(
        p.process(&event("follow", "f", "3", None, false), None, 0),
        Err(EventError::MissingField("ts"))
    );
    assert_eq!(
        p.process(b"{not json", None, 0).unwrap_err().kind(),
        "invalid_json"
    );
}

#[test]
fn scores_flags_and_cache() {
    let mut p = pipeline();
    let human = p
        .process(
            &event("follow", "f", "h1", Some("2026-11-28T10:00:00Z"), false),
            None,
            0,
        )
        .unwrap()
        .into_owned();
    let bot = p
        .process(
            &event("follow", "f", "b1", Some("2026-11-28T10:00:01Z"), true),
            None,
            0,
        )
        .unwrap()
        .into_owned();
    assert!(!human.suspicious, "{:?}", human.score);
    assert!(bot.suspicious, "{:?}", bot.score);
    // Issue 22: the detector counts at its own, lower operating point (the flag implies
    // the count); both verdicts follow the model's two thresholds.
    let m = p.model();
    assert!(m.detection_threshold() <= m.threshold());
    for o in [&human, &bot] {
        assert_eq!(o.suspicious, o.score.prob >= m.threshold());
        assert_eq!(o.counted, o.score.prob >= m.detection_threshold());
    }
    assert!(bot.counted_follow() && !human.counted_follow());
    assert!(!bot.cache_hit);
    // the same bot following someone else is a cache hit with the same score
    let again = p
        .process(
            &event("follow", "g", "b1", Some("2026-11-28T10:00:02Z"), true),
            None,
            0,
        )
        .unwrap()
        .into_owned();
    assert!(again.cache_hit);
    assert_eq!(again.score, bot.score);
}

#[test]
fn bought_burst_alerts_with_moderation_and_unfollows_do_not() {
    let mut p = pipeline();
    let mut opens = Vec::new();
    let mut moderation = 0;
    for i in 0..60 {
        let ts = format!("2026-11-28T10:00:{:02}Z", i % 60);
        let o = p
            .process(
                &event("unfollow", "quiet", &format!("u{i}"), Some(&ts), true),
                None,
                0,
            )
            .unwrap()
            .into_owned();
        assert!(
            o.alerts.is_empty() && o.moderation.is_empty(),
            "unfollows are not follows"
        );
    }
    for i in 0..60 {
        let ts = format!("2026-11-28T11:00:{:02}Z", i % 60);
        let o = p
            .process(
                &event("follow", "buyer", &format!("b{i}"), Some(&ts), true),
                None,
                3,
            )
            .unwrap()
            .into_owned();
        moderation += o.moderation.len();
        opens.extend(
            o.alerts
                .into_iter()
                .filter(|a| a.status == AlertStatus::Open),
        );
    }
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].key(), "buyer");
    assert!(moderation >= 15, "{moderation}");
    assert_eq!(p.tracked_followees(), 2);
    p.drop_partition(3);
    assert_eq!(
        p.tracked_followees(),
        1,
        "partition 3's followee is forgotten"
    );
    assert_eq!(p.open_alerts(), 0);
}

/// Regression: extreme event times (epoch millis at the i64 limits, pre-1970) overflowed
/// the watermark arithmetic; now they are rejected as `bad_timestamp`, never a panic.
#[test]
fn extreme_timestamps_never_panic() {
    let mut p = pipeline();
    for (i, ts) in [
        i64::MAX,
        i64::MIN,
        -1,
        0,
        i64::MAX - 1,
        1_795_860_000_000,
        i64::MIN + 1,
    ]
    .iter()
    .enumerate()
    {
        for bot in [true, false] {
            let mut e = event("follow", "f", &format!("x{i}{bot}"), None, bot);
            let s = String::from_utf8(e.clone()).unwrap().replacen(
                "{",
                &format!("{{\"ts\": {ts}, "),
                1,
            );
            e = s.into_bytes();
            let in_range = (0..=followguard_core::time::MAX_EVENT_TIME_MS).contains(ts);
            match p.process(&e, None, 0) {
                Ok(o) => assert!(in_range && o.event_time_ms == *ts),
                Err(err) => assert!(!in_range && err.kind() == "bad_timestamp", "{err}"),
            }
            let ok = p
                .process(&event("unfollow", "f", "y", None, bot), Some(*ts), 1)
                .is_ok();
            assert_eq!(ok, in_range);
        }
    }
}
