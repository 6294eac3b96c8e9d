//! Alert and moderation record types, their deterministic ids and JSON encoding.
//!
//! These are the per-account facts followguard publishes (alert and moderation topics,
//! files, webhooks). Enumerated fields are bounded enums with `as_str()` so the edges can
//! use them as metric labels; account ids only ever appear in the records themselves.

use crate::age::AGE_BINS;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Version of the alert and moderation JSON layout. Bump on any breaking field change.
pub const SCHEMA_VERSION: u32 = 1;

/// Lifecycle step of an alert. One burst produces exactly one `open`, zero or more
/// rate-limited `update`s and one `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Update,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Open,
        AlertStatus::Update,
        AlertStatus::Resolved,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Update => "update",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// What fired first: `burst` = minutes-scale window, `drip` = day-scale window (slow
/// deliveries that never look like a spike), `cohort` = followers created in the same
/// few weeks arriving far above the usual rate, with model support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Burst,
    Drip,
    Cohort,
}

impl AlertKind {
    pub const ALL: [AlertKind; 3] = [AlertKind::Burst, AlertKind::Drip, AlertKind::Cohort];
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Burst => "burst",
            AlertKind::Drip => "drip",
            AlertKind::Cohort => "cohort",
        }
    }
}

/// How much attention an alert deserves: grows with the excess of suspicious followers
/// and one step when the alert is linked into a multi-account campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Severity from the number of suspicious followers above what organic traffic
    /// explains; `linked` (part of a campaign across accounts) raises it one step.
    pub fn from_excess(excess: f32, linked: bool) -> Severity {
        let base = if excess >= 5000.0 {
            Severity::Critical
        } else if excess >= 1000.0 {
            Severity::High
        } else if excess >= 200.0 {
            Severity::Medium
        } else {
            Severity::Low
        };
        if linked {
            base.bump()
        } else {
            base
        }
    }

    fn bump(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// A reason code and how many flagged followers of the alert carried it in their top 3.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonCount {
    pub code: &'static str,
    pub count: u32,
}

/// A reason code with its contribution to one follower's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonOut {
    pub code: &'static str,
    pub contribution: f32,
}

/// One alert record (open, update or resolved) about one followee.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub schema_version: u32,
    /// Deterministic: a function of the followee id and the burst start only.
    pub alert_id: String,
    pub status: AlertStatus,
    pub kind: AlertKind,
    pub severity: Severity,
    pub followee_id: String,
    /// Event time at which this record was produced (RFC 3339) and in epoch ms.
    pub event_time: String,
    pub event_time_ms: i64,
    /// Start of the window that opened the alert (bucket-aligned; part of the id).
    pub burst_start: String,
    /// The window whose figures this record reports.
    pub window_start: String,
    pub window_end: String,
    pub new_followers: u32,
    /// The followee's own organic follow rate before the burst (floored for new accounts).
    pub baseline_rate_per_hour: f32,
    /// Follows in the last short window against that baseline, as a Poisson z-score.
    pub rate_z: f32,
    pub suspicious_count: u32,
    /// Suspicious followers organic traffic of this size would bring (prior share × follows).
    pub expected_suspicious: f32,
    pub suspicious_share: f32,
    /// Mean bot probability of the flagged followers seen since the alert opened.
    pub mean_score: f32,
    /// Account-age histogram of the followee's recent followers (bins: [`crate::age::AGE_BIN_UPPER_DAYS`]).
    pub creation_histogram: [u16; AGE_BINS],
    /// Share of the histogram in its fullest bin.
    pub creation_concentration: f32,
    /// Up to `sample_size` flagged follower ids, first seen first.
    pub sample_follower_ids: Vec<String>,
    /// Issue #19: flagged follower ids left out of the sample (while it had room for
    /// more) because the record would have exceeded `--max-record-bytes`. Omitted when 0.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub samples_truncated: u32,
    pub top_reasons: Vec<ReasonCount>,
    /// Set when lockstep cohorts link this alert with alerts on other followees.
    pub campaign_id: Option<String>,
    /// Followees in the linked campaign (1 when unlinked).
    pub campaign_followees: u32,
    /// Issue #20: flagged follows of this followee by accounts too new to judge
    /// (minutes old at the follow) while the alert was open: not counted as suspicious,
    /// no moderation record (see `newcomer.rs`). Omitted when 0.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub withheld_too_new: u32,
    /// Issue #20: accounts in the tight registration band (newcomers registered within
    /// minutes of each other) when the newcomer channel opened this `cohort` alert; its
    /// followers in that band are judged. Omitted when 0 (other triggers).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub newcomer_batch: u32,
    pub model_version: String,
    pub detector_version: &'static str,
}

impl Alert {
    /// Kafka key: the followee id, so all records of one account stay ordered.
    pub fn key(&self) -> &str {
        &self.followee_id
    }
}

/// One flagged follower of an alerted followee, for the moderation queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModerationRecord {
    pub schema_version: u32,
    pub follower_id: String,
    pub score: f32,
    pub reasons: Vec<ReasonOut>,
    pub followee_id: String,
    pub alert_id: String,
    pub campaign_id: Option<String>,
    pub model_version: String,
    pub event_id: String,
    pub event_time: String,
    pub event_time_ms: i64,
    /// Issue 24: the shadow model's score of this follower (`--shadow-model`), when one
    /// runs; left out of the record otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_score: Option<f32>,
}

impl ModerationRecord {
    /// Kafka key: the followee id (same partitioning as alerts).
    pub fn key(&self) -> &str {
        &self.followee_id
    }
}

/// Deterministic alert id: SHA-256 of the followee id and the burst start, truncated to
/// 128 bits. Depends on nothing else, so two instances, a replay or a restart that see the
/// same followee's input produce the same id.
pub fn alert_id(followee_id: &str, burst_start_ms: i64) -> String {
    let mut h = Sha256::new();
    h.update(b"followguard-alert-v1\0");
    h.update(followee_id.as_bytes());
    h.update(b"\0");
    h.update(burst_start_ms.to_le_bytes());
    let digest = h.finalize();
    let mut s = String::with_capacity(36);
    s.push_str("fga-");
    for b in &digest[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Campaign id derived from the alert id of the campaign's first (root) alert.
pub fn campaign_id(root_alert_id: &str) -> String {
    format!("fgc-{}", root_alert_id.trim_start_matches("fga-"))
}

/// Serde helper: `withheld_too_new` is omitted when 0.
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_deterministic_and_input_dependent() {
        let a = alert_id("783214", 1_795_860_900_000);
        assert_eq!(a, alert_id("783214", 1_795_860_900_000));
        assert_ne!(a, alert_id("783214", 1_795_860_960_000));
        assert_ne!(a, alert_id("783215", 1_795_860_900_000));
        assert_eq!(a.len(), 36);
        assert!(a.starts_with("fga-"));
        assert!(campaign_id(&a).starts_with("fgc-"));
    }

    /// Issue #19: every field but the ids at its longest stays within
    /// `bounds::RECORD_FIXED_BYTES`, so `min_record_bytes` and the sample budget hold.
    #[test]
    fn fixed_fields_fit_the_record_allowance() {
        use crate::bounds::{json_str_len, RECORD_FIXED_BYTES};
        let longest_code = crate::features::REASON_CODES
            .iter()
            .flatten()
            .copied()
            .max_by_key(|c| c.len())
            .unwrap();
        let long_time = crate::time::format_rfc3339_ms(crate::time::MAX_EVENT_TIME_MS);
        let model_version = "v".repeat(1024 - 2);
        let a = Alert {
            schema_version: u32::MAX,
            alert_id: alert_id("", 0),
            status: AlertStatus::Resolved,
            kind: AlertKind::Cohort,
            severity: Severity::Critical,
            followee_id: String::new(),
            event_time: long_time.clone(),
            event_time_ms: i64::MIN,
            burst_start: long_time.clone(),
            window_start: long_time.clone(),
            window_end: long_time.clone(),
            new_followers: u32::MAX,
            baseline_rate_per_hour: -f32::MAX,
            rate_z: -f32::MIN_POSITIVE,
            suspicious_count: u32::MAX,
            expected_suspicious: -f32::MAX,
            suspicious_share: -f32::MAX,
            mean_score: -f32::MAX,
            creation_histogram: [u16::MAX; AGE_BINS],
            creation_concentration: -f32::MAX,
            sample_follower_ids: Vec::new(),
            samples_truncated: u32::MAX,
            top_reasons: vec![
                ReasonCount {
                    code: longest_code,
                    count: u32::MAX
                };
                5
            ],
            campaign_id: Some(campaign_id(&alert_id("", 0))),
            campaign_followees: u32::MAX,
            withheld_too_new: u32::MAX,
            newcomer_batch: u32::MAX,
            model_version: model_version.clone(),
            detector_version: crate::detector::DETECTOR_VERSION,
        };
        let alert_len = serde_json::to_vec(&a).unwrap().len();
        assert!(alert_len < RECORD_FIXED_BYTES, "{alert_len}");
        let m = ModerationRecord {
            schema_version: u32::MAX,
            follower_id: String::new(),
            score: -f32::MAX,
            reasons: vec![
                ReasonOut {
                    code: longest_code,
                    contribution: -f32::MAX
                };
                3
            ],
            followee_id: String::new(),
            alert_id: alert_id("", 0),
            campaign_id: a.campaign_id.clone(),
            model_version,
            event_id: String::new(),
            event_time: long_time,
            event_time_ms: i64::MIN,
            shadow_score: Some(-f32::MAX),
        };
        let m_len = serde_json::to_vec(&m).unwrap().len();
        assert!(m_len < RECORD_FIXED_BYTES, "{m_len}");
        assert_eq!(json_str_len(""), 2);
    }

    #[test]
    fn severity_grows_with_excess_and_linking() {
        assert_eq!(Severity::from_excess(30.0, false), Severity::Low);
        assert_eq!(Severity::from_excess(30.0, true), Severity::Medium);
        assert_eq!(Severity::from_excess(1500.0, false), Severity::High);
        assert_eq!(Severity::from_excess(9000.0, true), Severity::Critical);
    }

    #[test]
    fn enums_serialise_as_their_labels() {
        for s in AlertStatus::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for k in AlertKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for s in Severity::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
