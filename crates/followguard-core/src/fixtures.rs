//! Plain values for tests: an alert record and a pipeline outcome with simple figures.

use crate::age::AGE_BINS;
use crate::alert::{Alert, AlertKind, AlertStatus, Severity};
use crate::event::EventType;
use crate::model::{Reason, Score};
use crate::pipeline::Outcome;

/// An alert record with plain figures.
pub fn alert(followee: &str, id: &str, status: AlertStatus, t: i64) -> Alert {
    Alert {
        schema_version: 1,
        alert_id: id.to_string(),
        status,
        kind: AlertKind::Burst,
        severity: Severity::Low,
        followee_id: followee.to_string(),
        event_time: String::new(),
        event_time_ms: t,
        burst_start: String::new(),
        window_start: String::new(),
        window_end: String::new(),
        new_followers: 10,
        baseline_rate_per_hour: 6.0,
        rate_z: 3.0,
        suspicious_count: 8,
        expected_suspicious: 0.3,
        suspicious_share: 0.8,
        mean_score: 0.9,
        creation_histogram: [0; AGE_BINS],
        creation_concentration: 0.0,
        samples_truncated: 0,
        sample_follower_ids: Vec::new(),
        top_reasons: Vec::new(),
        campaign_id: None,
        campaign_followees: 1,
        withheld_too_new: 0,
        newcomer_batch: 0,
        model_version: "m".into(),
        detector_version: "d",
    }
}

/// A follow of `follower` (its id also gives its creation time) by `followee` at `t`,
/// flagged or not, with nothing else happening.
pub fn outcome(followee: &str, follower: u64, t: i64, flagged: bool) -> Outcome<'static> {
    Outcome {
        event_time_ms: t,
        placement: Default::default(),
        event_id: format!("e{follower}").into(),
        kind: EventType::Follow,
        followee_id: followee.to_string().into(),
        follower_id: follower.to_string().into(),
        follower_created_at_s: 1_600_000_000 + follower as i64,
        follower_screen_name: format!("user{follower}").into(),
        follower_description: "bio".into(),
        score: Score {
            prob: if flagged { 0.9 } else { 0.1 },
            reasons: [Reason {
                feature: 0,
                contribution: 0.2,
            }; 3],
        },
        suspicious: flagged,
        counted: flagged,
        cache_hit: false,
        alerts: Vec::new(),
        moderation: Vec::new(),
        links: Vec::new(),
        judgment_withheld: false,
        decision: Default::default(),
        suppressed_records: 0,
        shadow_prob: None,
    }
}
