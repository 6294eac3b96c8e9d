//! Issue #19, lockstep fan-out: 300 followees each followed by the same 40 bots gave 300
//! opens and 44,850 updates (one per member per link). Now: alert records ≤ 3 × opens,
//! and every linked record carries the one campaign id.

use followguard_core::alert::AlertStatus;
use followguard_core::detector::{Detector, DetectorConfig, Observation};
use std::collections::BTreeSet;

const T0: i64 = 1_795_000_000_000;

#[test]
fn a_resold_cohort_costs_records_linear_in_its_followees() {
    let mut d = Detector::new(DetectorConfig {
        model_version: "test".into(),
        ..DetectorConfig::default()
    });
    let bots: Vec<String> = (0..40).map(|i| format!("bot{i}")).collect();
    let mut alerts = Vec::new();
    for f in 0..300i64 {
        let followee = format!("customer{f}");
        let t = T0 + f * 120_000;
        for (i, bot) in bots.iter().enumerate() {
            let o = Observation {
                event_id: "e",
                followee_id: &followee,
                follower_id: bot,
                follow: true,
                ts_ms: t + i as i64 * 1000,
                partition: 0,
                prob: 0.95,
                suspicious: true,
                follower_created_s: T0 / 1000 - 30 * 86_400,
                reasons: [("friends_followers_ratio_high", 0.3), ("", 0.0), ("", 0.0)],
            };
            alerts.extend(d.observe(&o).alerts);
        }
    }
    let opens = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Open)
        .count();
    assert_eq!(opens, 300, "every customer alerts once");
    eprintln!(
        "lockstep fan-out: {} alert records for {opens} opens",
        alerts.len()
    );
    assert!(
        alerts.len() <= 3 * opens,
        "{} alert records for {opens} opens",
        alerts.len()
    );
    let cids: BTreeSet<_> = alerts
        .iter()
        .filter_map(|a| a.campaign_id.clone())
        .collect();
    assert_eq!(cids.len(), 1, "one campaign: {cids:?}");
    // The last followee's records know the whole campaign.
    let last = alerts
        .iter()
        .rev()
        .find(|a| a.followee_id == "customer299")
        .unwrap();
    assert_eq!(last.campaign_followees, 300);
}
