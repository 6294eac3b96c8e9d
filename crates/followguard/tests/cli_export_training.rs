//! Issue 24: the feedback loop, through the binary. A generated stream is replayed
//! (moderation records out), moderators confirm the alerts, clear the false positives
//! and vouch for some people; `export-training` joins those decisions with the profile
//! snapshots they judged; `train` fits a model on that table and `eval` measures it.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Follower ids at or above this are the generator's bought accounts.
const BOT_ID_MIN: u64 = 9_000_000_000;

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_followguard"))
        .args(args)
        .env_remove("FOLLOWGUARD_MODEL")
        .current_dir(dir)
        .output()
        .expect("followguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn export_training_then_train_then_eval_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    run(
        dir,
        &[
            "generate",
            "--out",
            &p("ev.jsonl"),
            "--truth",
            &p("truth.json"),
            "--seed",
            "5",
            "--followees",
            "60",
            "--days",
            "1",
            "--humans",
            "3000",
            "--viral",
            "0",
            "--campaigns",
            "4",
            "--min-campaign",
            "150",
            "--max-campaign",
            "200",
            "--camouflage",
            "0",
        ],
    );
    run(
        dir,
        &[
            "replay",
            "--input",
            &p("ev.jsonl"),
            "--alerts",
            &p("alerts.jsonl"),
            "--moderation",
            &p("mod.jsonl"),
        ],
    );
    let alerts = lines(&dir.join("alerts.jsonl"));
    let moderation = lines(&dir.join("mod.jsonl"));
    assert!(!moderation.is_empty());
    let id = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // The moderators: every opened alert confirmed; flagged people among them cleared
    // afterwards (a later verdict wins); 300 people who were never flagged vouched for.
    let mut decisions: Vec<String> = alerts
        .iter()
        .filter(|a| a["status"] == "open")
        .map(|a| {
            format!(
                r#"{{"alert_id": {}, "verdict": "confirmed", "who": "ana", "at": "2030-01-01T00:00:00Z"}}"#,
                a["alert_id"]
            )
        })
        .collect();
    let flagged_people: BTreeSet<u64> = moderation
        .iter()
        .map(|m| id(&m["follower_id"]))
        .filter(|f| *f < BOT_ID_MIN)
        .collect();
    for f in &flagged_people {
        decisions.push(format!(
            r#"{{"follower_id": "{f}", "verdict": "human", "who": "bo", "at": "2030-01-02T00:00:00Z"}}"#
        ));
    }
    let events = lines(&dir.join("ev.jsonl"));
    let people: BTreeSet<u64> = events
        .iter()
        .map(|e| id(&e["follower"]["id"]))
        .filter(|f| *f < BOT_ID_MIN && !flagged_people.contains(f))
        .take(300)
        .collect();
    for f in &people {
        decisions.push(format!(
            r#"{{"follower_id": "{f}", "verdict": "human", "who": "bo", "at": "2030-01-02T00:00:00Z"}}"#
        ));
    }
    decisions.push("not a decision".into());
    std::fs::write(dir.join("decisions.jsonl"), decisions.join("\n") + "\n").unwrap();

    let report = run(
        dir,
        &[
            "export-training",
            "--decisions",
            &p("decisions.jsonl"),
            "--moderation",
            &p("mod.jsonl"),
            "--events",
            &p("ev.jsonl"),
            "--out",
            &p("table.jsonl"),
        ],
    );
    assert!(report.contains("1 unreadable"), "{report}");
    let table = lines(&dir.join("table.jsonl"));
    let bots: Vec<&Value> = table.iter().filter(|r| r["label"] == 1).collect();
    let humans: Vec<&Value> = table.iter().filter(|r| r["label"] == 0).collect();
    assert!(bots.len() > 100, "{}", bots.len());
    assert_eq!(humans.len(), people.len() + flagged_people.len());
    // Labels are the moderators', and they agree with the generator's truth here.
    assert!(bots.iter().all(|r| id(&r["id"]) >= BOT_ID_MIN));
    assert!(humans.iter().all(|r| id(&r["id"]) < BOT_ID_MIN));
    // The snapshot is the judged follow's profile, with its time and provenance.
    let flagged = bots[0];
    let record = moderation
        .iter()
        .find(|m| m["follower_id"] == flagged["id"] && m["alert_id"] == flagged["alert_id"])
        .expect("the judged moderation record");
    let event = events
        .iter()
        .find(|e| e["event_id"] == record["event_id"])
        .expect("the judged event");
    assert_eq!(
        event["follower"]["statuses_count"],
        flagged["statuses_count"]
    );
    assert_eq!(flagged["group"], "decisions-confirmed");
    assert_eq!(flagged["decided_by"], "ana");
    assert!(flagged["crawled_at"].as_str().is_some());

    run(
        dir,
        &[
            "train",
            "--data",
            &p("table.jsonl"),
            "--out",
            &p("m.json"),
            "--trees",
            "20",
            "--calibration",
            "oob",
        ],
    );
    let eval = run(
        dir,
        &[
            "eval",
            "--model",
            &p("m.json"),
            "--data",
            &p("table.jsonl"),
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(eval.lines().next().unwrap()).unwrap();
    assert_eq!(v["overall"]["n"], table.len());
    let auc = v["overall"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.95, "{auc}");
    // The trained model records coverage, so it can score platforms' missing counts.
    let model: Value = serde_json::from_slice(&std::fs::read(dir.join("m.json")).unwrap()).unwrap();
    assert!(model["forest"]["trees"][0]["coverage"].is_array());
}
