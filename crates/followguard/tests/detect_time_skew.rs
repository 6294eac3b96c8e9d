//! Issue #19, event time: a handful of absurd event times must not move a partition's
//! clock or change the detection of the other events; a real jump of the whole stream
//! is still followed. (Replay path: `Pipeline::process` over a generated stream.)

use followguard_core::alert::AlertStatus;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use followguard_core::timeguard::Placement;
use followguard_train::generate::{generate, GenConfig, Profiles};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

fn pipeline() -> Pipeline {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
    let model = followguard_train::model_file::load(&path).expect("shipped model loads");
    Pipeline::new(Arc::new(model), PipelineConfig::default())
}

fn stream() -> Vec<Vec<u8>> {
    let cfg = GenConfig {
        followees: 400,
        days: 3,
        campaigns: 12,
        viral_spikes: 3,
        max_campaign: 400,
        humans: 20_000,
        ..GenConfig::default()
    };
    let mut out = Vec::new();
    generate(&cfg, &Profiles::Builtin, &mut out, |_, _| {}).unwrap();
    out.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// `(opened alert ids, placements seen, rejected kinds)` of one replay.
fn replay(lines: &[Vec<u8>]) -> (BTreeSet<String>, Vec<Placement>, Vec<&'static str>) {
    let mut p = pipeline();
    let (mut opens, mut placements, mut rejected) = (BTreeSet::new(), Vec::new(), Vec::new());
    for l in lines {
        match p.process(l, None, 0) {
            Ok(o) => {
                if o.placement != Placement::OnTime {
                    placements.push(o.placement);
                }
                for a in &o.alerts {
                    if a.status == AlertStatus::Open {
                        opens.insert(a.alert_id.clone());
                    }
                }
            }
            Err(e) => rejected.push(e.kind()),
        }
    }
    (opens, placements, rejected)
}

/// A human-looking follow of an account no campaign targets, at time `ts`.
fn stray(ts: &str, n: u32) -> Vec<u8> {
    format!(
        r#"{{"event_id":"stray-{n}","type":"follow","ts":"{ts}","followee_id":"stray-target-{n}","follower":{{"id":"77{n}","screen_name":"marta","name":"Marta","description":"Teacher","created_at":"Tue Jun 11 11:20:35 +0000 2013","followers_count":420,"friends_count":380,"statuses_count":5120,"favourites_count":2210,"listed_count":7}}}}"#
    )
    .into_bytes()
}

#[test]
fn far_future_follows_do_not_blind_the_partition() {
    let base = stream();
    let (want, placements, _) = replay(&base);
    assert!(want.len() >= 5, "the stream alerts: {}", want.len());
    assert!(placements.is_empty(), "{placements:?}");

    let mut hostile = base.clone();
    hostile.insert(50, stray("9999-12-31T23:59:59Z", 1));
    hostile.insert(120, stray("2100-01-01T00:00:00Z", 2));
    let (got, placements, rejected) = replay(&hostile);
    assert_eq!(
        got, want,
        "same alerts (ids included) as without the absurd times"
    );
    // 9999 is beyond what the time types hold: rejected; 2100 is clamped to the clock.
    assert_eq!(rejected, vec!["bad_timestamp"]);
    assert!(
        matches!(placements[..], [Placement::Clamped { skew_ms }] if skew_ms > 50 * 365 * 86_400_000),
        "{placements:?}"
    );
}

#[test]
fn an_absurd_first_event_does_not_blind_the_partition() {
    let base = stream();
    let (want, _, _) = replay(&base);
    let mut hostile = vec![stray("2100-01-01T00:00:00Z", 3)];
    hostile.extend(base.iter().cloned());
    let (got, placements, _) = replay(&hostile);
    assert!(
        matches!(placements[..], [Placement::Reanchored { .. }]),
        "{placements:?}"
    );
    // The first `confirm` real events were seen under the bad anchor and dropped with it.
    let missed = want.difference(&got).count();
    eprintln!(
        "absurd first event: {missed} of {} opens missed",
        want.len()
    );
    assert!(missed <= 1, "missed {missed} of {}", want.len());
}

#[test]
fn a_whole_stream_jump_is_followed() {
    let base = stream();
    let (first, _, _) = replay(&base);
    // The same stream again, 40 days later (a pause, then the whole stream moves on).
    let shift_ms: i64 = 40 * 86_400_000;
    let mut jumped = base.clone();
    for l in &base {
        let mut v: serde_json::Value = serde_json::from_slice(l).unwrap();
        let t = followguard_core::event::parse(l).unwrap().ts_ms.unwrap() + shift_ms;
        v["ts"] = serde_json::Value::String(followguard_core::time::format_rfc3339_ms(t));
        v["event_id"] =
            serde_json::Value::String(format!("{}-again", v["event_id"].as_str().unwrap()));
        jumped.push(serde_json::to_vec(&v).unwrap());
    }
    let (all, placements, _) = replay(&jumped);
    let jumps = placements
        .iter()
        .filter(|p| matches!(p, Placement::Jumped { .. }))
        .count();
    assert_eq!(jumps, 1, "{placements:?}");
    let second = all.len() - first.len();
    eprintln!(
        "whole-stream jump: {} opens before, {second} after",
        first.len()
    );
    assert!(
        second * 10 >= first.len() * 9,
        "after the jump {second} opens, before {}",
        first.len()
    );
}
