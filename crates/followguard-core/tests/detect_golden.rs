//! Golden replay: a small generated stream (`tests/golden/small.jsonl`, made by
//! `followguard generate --followees 12 --days 1 --campaigns 1 --viral 1
//! --min-campaign 60 --max-campaign 60 --humans 500 --median-daily 5 --seed 14` plus three
//! malformed lines) through the same pipeline function `replay` and `serve` use, compared
//! with the recorded alerts. After an intended change of model or detector, re-record
//! with `FOLLOWGUARD_BLESS=1 cargo test --test detect_golden` and review the diff.

// Tests read (and, when re-recording, write) their fixture files; the library may not.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use followguard_core::alert::AlertStatus;
use followguard_core::pipeline::{Outcome, Pipeline, PipelineConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the golden file records besides the records: counts of one pass over the input.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    events: u64,
    follows: u64,
    unfollows: u64,
    suspicious_follows: u64,
    rejected: BTreeMap<&'static str, u64>,
    alerts_open: u64,
    alerts_update: u64,
    alerts_resolved: u64,
}

/// Every non-empty line of `input` through `Pipeline::process` in order, as `replay`
/// and `serve` run it: the alert and moderation records (JSON) and the counts.
fn replay(input: &Path) -> (Vec<String>, Vec<String>, Counts) {
    let mut p = Pipeline::new(
        Arc::new(support::shipped_model()),
        PipelineConfig::default(),
    );
    let (mut alerts, mut moderation, mut s) = (Vec::new(), Vec::new(), Counts::default());
    let bytes = std::fs::read(input).expect("golden input");
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        match p.process(line, None, 0) {
            Ok(o) => {
                s.events += 1;
                match o.kind {
                    followguard_core::event::EventType::Follow => s.follows += 1,
                    followguard_core::event::EventType::Unfollow => s.unfollows += 1,
                }
                s.suspicious_follows += u64::from(o.suspicious_follow());
                for a in &o.alerts {
                    *match a.status {
                        AlertStatus::Open => &mut s.alerts_open,
                        AlertStatus::Update => &mut s.alerts_update,
                        AlertStatus::Resolved => &mut s.alerts_resolved,
                    } += 1;
                    alerts.push(serde_json::to_string(a).expect("alert serialises"));
                }
                for m in &o.moderation {
                    moderation.push(serde_json::to_string(m).expect("record serialises"));
                }
            }
            Err(e) => *s.rejected.entry(e.kind()).or_default() += 1,
        }
    }
    (alerts, moderation, s)
}

#[test]
fn golden_replay_matches_recorded_alerts() {
    let dir = root().join("tests/golden");
    let (alerts, moderation, s) = replay(&dir.join("small.jsonl"));
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("small.truth.json")).unwrap())
            .unwrap();

    // Malformed lines are counted by kind, never fatal.
    assert_eq!(s.rejected.get("invalid_json"), Some(&1));
    assert_eq!(s.rejected.get("missing_field"), Some(&1));
    assert_eq!(s.rejected.get("bad_type"), Some(&1));
    assert_eq!(Some(s.events), truth["events"].as_u64());

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
        truth["campaigns"][0]["followee_id"]
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

/// `serve` parses and scores chunks of records on helper threads, each with its own score
/// cache, then observes them in input order. The golden stream, prepared that way (events
/// dealt to two caches in turns of three, on two threads), gives exactly the outcomes of
/// `Pipeline::process` on one thread.
#[test]
fn prepared_on_two_threads_matches_process() {
    let model = Arc::new(support::shipped_model());
    let input = std::fs::read(root().join("tests/golden/small.jsonl")).expect("golden input");
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();

    let mut one = Pipeline::new(model.clone(), PipelineConfig::default());
    let expected: Vec<String> = lines
        .iter()
        .map(|l| match one.process(l, Some(0), 0) {
            Ok(o) => format!("{o:?}"),
            Err(e) => format!("error {}: {e}", e.kind()),
        })
        .collect();

    let mut two = Pipeline::new(model.clone(), PipelineConfig::default());
    let mut helper_cache = followguard_core::model::ScoreCache::new(1 << 10);
    let mut got = Vec::new();
    let (mut helper_hits, mut own_hits) = (0, 0);
    for chunk in lines.chunks(6) {
        let (own, theirs) = chunk.split_at(chunk.len().min(3));
        let (m, cache) = two.scorer();
        let (mine, helped) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                theirs
                    .iter()
                    .map(|l| followguard_core::pipeline::prepare(m, &mut helper_cache, l, Some(0)))
                    .collect::<Vec<_>>()
            });
            let mine: Vec<_> = own
                .iter()
                .map(|l| followguard_core::pipeline::prepare(m, cache, l, Some(0)))
                .collect();
            (mine, h.join().expect("helper thread"))
        });
        for (i, p) in mine.into_iter().chain(helped).enumerate() {
            got.push(match p {
                Ok(p) => {
                    let o = two.observe(p, 0).expect("golden ids are short");
                    if o.cache_hit {
                        if i < own.len() {
                            own_hits += 1;
                        } else {
                            helper_hits += 1;
                        }
                    }
                    format!(
                        "{:?}",
                        Outcome {
                            cache_hit: false,
                            ..o
                        }
                    )
                }
                Err(e) => format!("error {}: {e}", e.kind()),
            });
        }
    }
    // Which cache hit differs by construction; everything else must be identical.
    let expected: Vec<String> = expected
        .into_iter()
        .map(|s| s.replace("cache_hit: true", "cache_hit: false"))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "event {i} differs");
    }
    assert!(got.iter().filter(|g| g.starts_with("error")).count() >= 3);
    // Both caches were used for real: the stream's repeat followers hit in each.
    assert!(
        own_hits > 0 && helper_hits > 0,
        "hits {own_hits} / {helper_hits}"
    );
}
