//! Golden replay: a small generated stream (`tests/golden/small.jsonl`, made by
//! `followguard generate --followees 12 --days 1 --campaigns 1 --viral 1
//! --min-campaign 60 --max-campaign 60 --humans 500 --median-daily 5 --seed 14` plus three
//! malformed lines) through the same pipeline function `replay` and `serve` use, compared
//! with the recorded alerts. After an intended change of model or detector, re-record
//! with `FOLLOWGUARD_BLESS=1 cargo test --test detect_golden` and review the diff.

use followguard::alert::AlertStatus;
use followguard::generate::Truth;
use followguard::model::Model;
use followguard::pipeline::{Pipeline, PipelineConfig};
use followguard::replay::run_lines;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn replay(input: &Path) -> (Vec<String>, Vec<String>, followguard::replay::ReplaySummary) {
    let model =
        Model::load(&root().join("models/default.json")).expect("models/default.json loads");
    let mut p = Pipeline::new(Arc::new(model), PipelineConfig::default());
    let (mut alerts, mut moderation) = (Vec::new(), Vec::new());
    let f = std::fs::File::open(input).expect("golden input");
    let s = run_lines(
        &mut p,
        std::io::BufReader::new(f),
        |o| {
            for a in &o.alerts {
                alerts.push(serde_json::to_string(a)?);
            }
            for m in &o.moderation {
                moderation.push(serde_json::to_string(m)?);
            }
            Ok(())
        },
        |_| {},
    )
    .expect("replay runs");
    (alerts, moderation, s)
}

#[test]
fn golden_replay_matches_recorded_alerts() {
    let dir = root().join("tests/golden");
    let (alerts, moderation, s) = replay(&dir.join("small.jsonl"));
    let truth: Truth =
        serde_json::from_str(&std::fs::read_to_string(dir.join("small.truth.json")).unwrap())
            .unwrap();

    // Malformed lines are counted by kind, never fatal.
    assert_eq!(s.rejected.get("invalid_json"), Some(&1));
    assert_eq!(s.rejected.get("missing_field"), Some(&1));
    assert_eq!(s.rejected.get("bad_type"), Some(&1));
    assert_eq!(s.events, truth.events);

    // The injected campaign is alerted (and only its followee).
    let parsed: Vec<serde_json::Value> = alerts
        .iter()
        .map(|a| serde_json::from_str(a).unwrap())
        .collect();
    let opens: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|a| a["status"] == AlertStatus::Open.as_str())
        .collect();
    assert_eq!(opens.len(), 1, "{alerts:#?}");
    assert_eq!(
        opens[0]["followee_id"],
        truth.campaigns[0].followee_id.as_str()
    );
    assert!(!moderation.is_empty());

    let got = format!(
        "{}\n# moderation records: {}\n# summary: events={} follows={} unfollows={} suspicious={} opened={} updates={} resolved={}\n",
        alerts.join("\n"),
        moderation.len(),
        s.events,
        s.follows,
        s.unfollows,
        s.suspicious_follows,
        s.alerts_open,
        s.alerts_update,
        s.alerts_resolved
    );
    let expected_path = dir.join("small.expected.jsonl");
    if std::env::var_os("FOLLOWGUARD_BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .expect("tests/golden/small.expected.jsonl (record it with FOLLOWGUARD_BLESS=1)");
    assert!(
        expected == got,
        "golden replay changed; if intended, re-record with FOLLOWGUARD_BLESS=1 and review the diff.\n--- expected\n{expected}\n--- got\n{got}"
    );
}

#[test]
fn replaying_twice_gives_identical_records() {
    let input = root().join("tests/golden/small.jsonl");
    let (a1, m1, _) = replay(&input);
    let (a2, m2, _) = replay(&input);
    assert_eq!(a1, a2);
    assert_eq!(m1, m2);
}
