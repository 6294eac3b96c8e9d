//! `followguard score` line handling: every input line gets exactly one JSON line, and
//! malformed input becomes an error line with a kind instead of stopping the run.

use followguard::modelcli::score_line;
use followguard_core::model::Model;
use std::path::Path;

/// The checkout (this crate sits at crates/<name>).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
}

fn shipped() -> Model {
    let path = repo_root().join(followguard::model_file::DEFAULT_MODEL_PATH);
    followguard::model_file::load(&path).expect("the shipped default model loads")
}

/// `followguard score ARGS` in `dir`, with no input and the default model.
fn followguard_score(args: &[&std::ffi::OsStr], dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_followguard"))
        .arg("score")
        .args(args)
        .env_remove("FOLLOWGUARD_MODEL")
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("followguard runs")
}

const EVENT: &str = r#"{"event_id": "f-1", "type": "follow", "ts": "2026-11-28T10:15:00.123Z", "followee_id": "783214",
 "follower": {"id": "1502026416", "screen_name": "0918Bask", "name": "TASUKU HAYAKAWA", "description": "", "url": null,
 "location": "Tokyo", "created_at": "Tue Jun 11 11:20:35 +0000 2013", "followers_count": 208, "friends_count": 332,
 "statuses_count": 2177, "favourites_count": 265, "listed_count": 1, "default_profile": false,
 "default_profile_image": false, "profile_use_background_image": true, "verified": false, "protected": false}}"#;

#[test]
fn valid_event_gets_score_and_three_reasons() {
    let m = shipped();
    let line = EVENT.replace('\n', "");
    let v = score_line(&m, line.as_bytes());
    assert_eq!(v["event_id"], "f-1");
    assert_eq!(v["follower_id"], "1502026416");
    let p = v["prob"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(
        v["suspicious"].as_bool().unwrap(),
        p >= f64::from(m.threshold())
    );
    assert!(
        !v["suspicious"].as_bool().unwrap(),
        "an active human-looking account: p = {p}"
    );
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 3);
    for r in reasons {
        assert!(r["code"].as_str().is_some_and(|c| !c.is_empty()));
    }
}

#[test]
fn bought_follower_looking_event_is_suspicious_with_reasons() {
    let m = shipped();
    let line = EVENT
        .replace('\n', "")
        .replace(r#""followers_count": 208"#, r#""followers_count": 3"#)
        .replace(r#""friends_count": 332"#, r#""friends_count": 1400"#)
        .replace(r#""statuses_count": 2177"#, r#""statuses_count": 4"#)
        .replace(r#""favourites_count": 265"#, r#""favourites_count": 0"#)
        .replace(r#""listed_count": 1"#, r#""listed_count": 0"#)
        .replace(r#""default_profile": false"#, r#""default_profile": true"#);
    let v = score_line(&m, line.as_bytes());
    assert!(v["suspicious"].as_bool().unwrap(), "{v}");
    let codes: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert!(
        codes.iter().any(|c| [
            "friends_followers_ratio_high",
            "followers_statuses_ratio_high",
            "statuses_rate_low",
            "followers_rate_low",
            "friends_rate_high",
            "class_a_rules_failed",
            "default_profile"
        ]
        .contains(c)),
        "{codes:?}"
    );
}

#[test]
fn malformed_lines_become_error_lines() {
    let m = shipped();
    let line = EVENT.replace('\n', "");
    let cases = [
        (&line[..line.len() / 2], "invalid_json"),
        ("", "invalid_json"),
        ("\u{1}\u{2}", "invalid_json"),
        (
            r#"{"type":"follow","ts":1,"followee_id":"1","follower":{"id":"2"}}"#,
            "missing_field",
        ),
    ];
    for (input, kind) in cases {
        let v = score_line(&m, input.as_bytes());
        assert_eq!(v["error"], kind, "{input:?} → {v}");
        assert!(v["message"].as_str().is_some());
    }
    let no_ts = line.replace(r#""ts": "2026-11-28T10:15:00.123Z", "#, "");
    assert_eq!(score_line(&m, no_ts.as_bytes())["error"], "missing_field");
}

#[test]
fn default_model_is_found_from_the_executable_when_not_in_the_working_directory() {
    use followguard::model_file::{resolve_model_path, DEFAULT_MODEL_PATH};
    let root = repo_root();
    let shipped = root.join(DEFAULT_MODEL_PATH);
    let default = Path::new(DEFAULT_MODEL_PATH);
    let elsewhere = std::env::temp_dir();
    // In the repository root the relative default is used as is.
    assert_eq!(resolve_model_path(default, root, None), default);
    // Elsewhere: through the executable's ancestors ...
    let exe = root.join("target").join("release").join("followguard");
    assert_eq!(resolve_model_path(default, &elsewhere, Some(&exe)), shipped);
    // ... else the checkout the binary was built from.
    let far = Path::new("/nonexistent/bin/followguard");
    assert_eq!(resolve_model_path(default, &elsewhere, Some(far)), shipped);
    // An explicit path is never redirected, even when it does not exist.
    let explicit = Path::new("/tmp/no-such-model.json");
    assert_eq!(
        resolve_model_path(explicit, &elsewhere, Some(&exe)),
        explicit
    );

    // End to end: `followguard score` started in another directory loads the shipped model.
    let out = followguard_score(&[], &elsewhere);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("scoring with model fg-rf-"), "{stderr}");
}

#[test]
fn score_accounts_scores_an_unlabelled_dump_at_its_capture_time() {
    let dir = std::env::temp_dir().join(format!("fg-score-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A human-looking and a bought-follower-looking account, no label column, no crawl
    // time: --as-of supplies it. The same two as JSON lines must score identically.
    let csv = dir.join("suspects.csv");
    std::fs::write(
        &csv,
        "id,screen_name,name,created_at,followers_count,friends_count,statuses_count,favourites_count,listed_count,description,location,default_profile\n\
         11,tom_h,Tom H,2013-06-11T11:20:35Z,250,400,3000,5000,3,coffee and cats,Leeds,\n\
         12,jenny38471920,Jenny,2019-05-12T08:00:00Z,2,400,0,0,0,,,1\n",
    )
    .unwrap();
    let jsonl = dir.join("suspects.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"id": 11, "screen_name": "tom_h", "name": "Tom H", "created_at": "2013-06-11T11:20:35Z", "followers_count": 250, "friends_count": 400, "statuses_count": 3000, "favourites_count": 5000, "listed_count": 3, "description": "coffee and cats", "location": "Leeds", "default_profile": false}
{"id": "12", "screen_name": "jenny38471920", "name": "Jenny", "created_at": "2019-05-12T08:00:00Z", "followers_count": 2, "friends_count": 400, "statuses_count": 0, "favourites_count": 0, "listed_count": 0, "default_profile": "1"}
"#,
    )
    .unwrap();
    let run = |file: &Path| {
        let args = [
            "--as-of".as_ref(),
            "2019-06-01T00:00:00Z".as_ref(),
            "--accounts".as_ref(),
            file.as_os_str(),
        ];
        let out = followguard_score(&args, repo_root());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let from_csv = run(&csv);
    assert_eq!(from_csv.len(), 2);
    assert_eq!(from_csv[0]["account_id"], "11");
    assert_eq!(from_csv[0]["as_of"], 1_559_347_200_000i64);
    assert_eq!(from_csv[0]["suspicious"], false, "{}", from_csv[0]);
    assert_eq!(from_csv[1]["account_id"], "12");
    assert_eq!(from_csv[1]["suspicious"], true, "{}", from_csv[1]);
    assert_eq!(from_csv[1]["reasons"].as_array().unwrap().len(), 3);
    // The library's score of the same profile at the same time.
    let m = shipped();
    let p = followguard_core::event::parse(
        br#"{"type":"follow","ts":0,"followee_id":"x","follower":{"id":"12","screen_name":"jenny38471920","name":"Jenny","created_at":"2019-05-12T08:00:00Z","followers_count":2,"friends_count":400,"statuses_count":0,"favourites_count":0,"listed_count":0,"default_profile":true}}"#,
    )
    .unwrap()
    .follower;
    let want = m.score(&p, 1_559_347_200_000).prob;
    assert_eq!(from_csv[1]["prob"].as_f64().unwrap() as f32, want);
    let from_jsonl = run(&jsonl);
    for (a, b) in from_csv.iter().zip(&from_jsonl) {
        assert_eq!(a["account_id"], b["account_id"]);
        assert_eq!(a["prob"], b["prob"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
