//! Issue 24: moderators' verdicts change what the pipeline flags: a cleared follower gets
//! no moderation record and does not count towards a burst, a false alert suppresses the
//! followee's next burst (all its records) and only that one, a confirmed bot counts as
//! bought even when its profile scores clean.

mod support;

use followguard_core::alert::AlertStatus;
use followguard_core::decisions;
use followguard_core::pipeline::{DecisionEffect, Outcome, Pipeline, PipelineConfig};
use std::sync::Arc;

fn pipeline() -> Pipeline {
    Pipeline::new(
        Arc::new(support::shipped_model()),
        PipelineConfig::default(),
    )
}

fn event(followee: &str, follower: &str, ts_s: i64, bot: bool) -> Vec<u8> {
    let profile = support::profile_fields(bot);
    format!(
        r#"{{"event_id": "e-{followee}-{follower}", "type": "follow", "ts": {}, "followee_id": "{followee}", "follower": {{"id": "{follower}", {profile}}}}}"#,
        1_795_860_000_000 + ts_s * 1000
    )
    .into_bytes()
}

fn decision(json: &str) -> decisions::Decision {
    decisions::parse(json.as_bytes()).unwrap()
}

/// 60 bought follows of `followee` from `{who}0..{who}59`, one a second from `t0`.
fn burst_by(p: &mut Pipeline, who: &str, followee: &str, t0: i64) -> Vec<Outcome<'static>> {
    (0..60)
        .map(|i| {
            p.process(
                &event(followee, &format!("{who}{i}"), t0 + i, true),
                None,
                0,
            )
            .unwrap()
            .into_owned()
        })
        .collect()
}

fn burst(p: &mut Pipeline, followee: &str, t0: i64) -> Vec<Outcome<'static>> {
    burst_by(p, "b", followee, t0)
}

fn opens(o: &[Outcome]) -> usize {
    o.iter()
        .flat_map(|o| &o.alerts)
        .filter(|a| a.status == AlertStatus::Open)
        .count()
}

#[test]
fn a_cleared_follower_gets_no_moderation_record() {
    let mut p = pipeline();
    p.apply_decision(&decision(
        r#"{"follower_id": "b7", "verdict": "human", "who": "ana", "at": 1795850000000}"#,
    ));
    let out = burst(&mut p, "buyer", 0);
    assert_eq!(opens(&out), 1, "the burst is still alerted");
    let flagged: Vec<&str> = out
        .iter()
        .flat_map(|o| &o.moderation)
        .map(|m| m.follower_id.as_str())
        .collect();
    assert!(
        flagged.len() > 10 && !flagged.contains(&"b7"),
        "{flagged:?}"
    );
    assert_eq!(out[7].decision, DecisionEffect::Cleared);
    assert!(!out[7].suspicious);
    // The verdict expires (30 days by default): then b7 is flagged again.
    let mut p = pipeline();
    p.apply_decision(&decision(
        r#"{"follower_id": "b7", "verdict": "human", "at": "2026-09-01T00:00:00Z"}"#,
    ));
    let out = burst(&mut p, "buyer", 0);
    assert_eq!(out[7].decision, DecisionEffect::None);
}

#[test]
fn a_false_alert_suppresses_the_next_burst_of_that_followee_only() {
    let run = |verdict: bool| {
        let mut p = pipeline();
        if verdict {
            p.apply_decision(&decision(
                r#"{"followee_id": "buyer", "alert_id": "x", "verdict": "false_alert", "at": 1795850000000}"#,
            ));
        }
        let mut out = burst(&mut p, "buyer", 0);
        out.extend(burst_by(&mut p, "c", "other", 0));
        out.extend(burst_by(&mut p, "d", "buyer", 2 * 86_400));
        (out, p.decision_sizes())
    };
    let (plain, _) = run(false);
    let (judged, held) = run(true);
    let first = plain
        .iter()
        .flat_map(|o| &o.alerts)
        .find(|a| a.followee_id == "buyer" && a.status == AlertStatus::Open)
        .expect("the buyer's burst is alerted without a verdict")
        .alert_id
        .clone();
    // With the verdict: exactly the records of that burst are gone (its open, updates,
    // resolution and moderation records); the other followee's are untouched.
    let records = |out: &[Outcome], skip: bool| -> Vec<String> {
        out.iter()
            .flat_map(|o| {
                o.alerts
                    .iter()
                    .map(|a| (a.alert_id.clone(), format!("{a:?}")))
                    .chain(
                        o.moderation
                            .iter()
                            .map(|m| (m.alert_id.clone(), format!("{m:?}"))),
                    )
                    .collect::<Vec<_>>()
            })
            .filter(|(id, _)| !(skip && *id == first))
            .map(|(_, r)| r)
            .collect()
    };
    assert_eq!(records(&judged, false), records(&plain, true));
    let dropped: u32 = judged.iter().map(|o| o.suppressed_records).sum();
    assert_eq!(
        dropped as usize,
        records(&plain, false).len() - records(&plain, true).len()
    );
    assert!(dropped > 10, "{dropped}");
    assert!(records(&judged, false)
        .iter()
        .any(|r| r.contains("\"other\"")));
    assert_eq!(held.2, 0, "the verdict covered one burst and is used up");
}

#[test]
fn a_confirmed_bot_counts_as_bought_even_when_it_scores_clean() {
    let mut p = pipeline();
    let human = p
        .process(&event("f", "h1", 0, false), None, 0)
        .unwrap()
        .into_owned();
    assert!(!human.suspicious);
    p.apply_decision(&decision(
        r#"{"follower_id": "h1", "verdict": "bot", "at": 1795850000000}"#,
    ));
    let again = p
        .process(&event("g", "h1", 1, false), None, 0)
        .unwrap()
        .into_owned();
    assert!(again.suspicious && again.decision == DecisionEffect::Confirmed);
    // An alert-level confirmation confirms the alert's flagged followers.
    let out = burst(&mut p, "buyer", 10);
    let alert = out
        .iter()
        .flat_map(|o| &o.alerts)
        .find(|a| a.status == AlertStatus::Open)
        .expect("an alert")
        .alert_id
        .clone();
    p.apply_decision(&decision(&format!(
        r#"{{"alert_id": "{alert}", "verdict": "confirmed", "at": 1795850000000}}"#
    )));
    assert!(p.decision_sizes().1 > 10, "{:?}", p.decision_sizes());
}

/// Issue 24: a shadow model is scored beside the live one and only reported: the same
/// alerts and moderation records as without it, each carrying the shadow's score.
#[test]
fn a_shadow_model_reports_and_never_acts() {
    let shadow = Arc::new(
        followguard_core::model::Model::from_bytes(
            include_bytes!("../../../models/lovo-TWT.json"),
            "lovo-TWT",
        )
        .unwrap(),
    );
    let mut plain = pipeline();
    let mut shadowed = pipeline().with_shadow(shadow.clone());
    let a = burst(&mut plain, "buyer", 0);
    let b = burst(&mut shadowed, "buyer", 0);
    let records = |out: &[Outcome]| -> Vec<String> {
        out.iter()
            .flat_map(|o| {
                o.alerts
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .chain(o.moderation.iter().map(|m| {
                        let mut m = m.clone();
                        m.shadow_score = None;
                        format!("{m:?}")
                    }))
            })
            .collect()
    };
    assert_eq!(records(&a), records(&b));
    assert!(a.iter().all(|o| o.shadow_prob.is_none()));
    for o in &b {
        let p = o.shadow_prob.expect("scored by the shadow");
        assert!((0.0..=1.0).contains(&p));
        for m in o
            .moderation
            .iter()
            .filter(|m| m.follower_id == *o.follower_id)
        {
            assert_eq!(m.shadow_score, Some(p));
        }
    }
    assert!(b
        .iter()
        .any(|o| o.moderation.iter().any(|m| m.shadow_score.is_some())));
}

/// Issue 24: detector thresholds changed live apply to the next evaluation, with the
/// windows kept; unknown names and bad values change nothing.
#[test]
fn retuned_detector_thresholds_apply_live() {
    let mut p = pipeline();
    assert!(!p.retune("no_such_threshold", 1.0));
    assert!(!p.retune("z", -1.0));
    assert!(!p.retune("z", f32::NAN));
    assert!(p.retune("z", 1000.0));
    assert_eq!(p.detector_config().z, 1000.0);
    assert_eq!(
        opens(&burst(&mut p, "buyer", 0)),
        0,
        "nothing reaches z = 1000"
    );
    assert!(p.retune("z", 5.0));
    assert_eq!(opens(&burst_by(&mut p, "c", "buyer2", 100)), 1);
}
