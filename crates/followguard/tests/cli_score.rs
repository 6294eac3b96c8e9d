//! `followguard score` run as users run it: started outside the checkout it still finds
//! the shipped model, and `--accounts` scores unlabelled CSV and JSON-lines dumps at their
//! capture time exactly as the library scores the same profile.

use std::path::Path;

/// The checkout (this crate sits at crates/<name>).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
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

#[test]
fn score_started_elsewhere_loads_the_shipped_model() {
    let elsewhere = std::env::temp_dir();
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
    // A human-looking account and two bought-follower-looking ones, no label column, no
    // crawl time: --as-of supplies it. The same three as JSON lines must score identically.
    let csv = dir.join("suspects.csv");
    std::fs::write(
        &csv,
        "id,screen_name,name,created_at,followers_count,friends_count,statuses_count,favourites_count,listed_count,description,location,default_profile\n\
         11,tom_h,Tom H,2013-06-11T11:20:35Z,250,400,3000,5000,3,coffee and cats,Leeds,\n\
         12,jenny38471920,Jenny,2019-05-12T08:00:00Z,2,400,0,0,0,,,1\n\
         13,mark20391847,Mark,2018-11-02T08:00:00Z,3,1200,1,0,0,,,1\n",
    )
    .unwrap();
    let jsonl = dir.join("suspects.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"id": 11, "screen_name": "tom_h", "name": "Tom H", "created_at": "2013-06-11T11:20:35Z", "followers_count": 250, "friends_count": 400, "statuses_count": 3000, "favourites_count": 5000, "listed_count": 3, "description": "coffee and cats", "location": "Leeds", "default_profile": false}
{"id": "12", "screen_name": "jenny38471920", "name": "Jenny", "created_at": "2019-05-12T08:00:00Z", "followers_count": 2, "friends_count": 400, "statuses_count": 0, "favourites_count": 0, "listed_count": 0, "default_profile": "1"}
{"id": 13, "screen_name": "mark20391847", "name": "Mark", "created_at": "2018-11-02T08:00:00Z", "followers_count": 3, "friends_count": 1200, "statuses_count": 1, "favourites_count": 0, "listed_count": 0, "default_profile": true}
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
    assert_eq!(from_csv.len(), 3);
    assert_eq!(from_csv[0]["account_id"], "11");
    assert_eq!(from_csv[0]["as_of"], 1_559_347_200_000i64);
    assert_eq!(from_csv[0]["suspicious"], false, "{}", from_csv[0]);
    assert_eq!(from_csv[1]["account_id"], "12");
    assert_eq!(from_csv[2]["account_id"], "13");
    assert_eq!(from_csv[2]["suspicious"], true, "{}", from_csv[2]);
    assert_eq!(from_csv[2]["reasons"].as_array().unwrap().len(), 3);
    let m = followguard_train::model_file::load(&repo_root().join("models/default.json"))
        .expect("the shipped default model loads");
    // `suspicious` is the per-follower flag (threshold set for ≤ 1 % false positives on
    // unseen humans, issue 22): the 20-day-old empty account 12 scores far above the
    // human and above the burst detector's operating point, and is flagged exactly when
    // it reaches the threshold (model version 4: 0.93 < 0.95, not flagged by `score`).
    let prob = |r: &serde_json::Value| r["prob"].as_f64().unwrap() as f32;
    assert!(
        prob(&from_csv[1]) > prob(&from_csv[0]) + 0.5,
        "{from_csv:?}"
    );
    assert!(
        prob(&from_csv[1]) >= m.detection_threshold(),
        "{}",
        from_csv[1]
    );
    assert_eq!(
        from_csv[1]["suspicious"],
        prob(&from_csv[1]) >= m.threshold(),
        "{}",
        from_csv[1]
    );
    assert_eq!(from_csv[1]["reasons"].as_array().unwrap().len(), 3);
    // The library's score of the same profile at the same time.
    let p = followguard_core::event::parse(
        br#"{"type":"follow","ts":0,"followee_id":"x","follower":{"id":"12","screen_name":"jenny38471920","name":"Jenny","created_at":"2019-05-12T08:00:00Z","followers_count":2,"friends_count":400,"statuses_count":0,"favourites_count":0,"listed_count":0,"default_profile":true}}"#,
    )
    .unwrap()
    .follower;
    let want = m.score(&p, 1_559_347_200_000).prob;
    assert_eq!(from_csv[1]["prob"].as_f64().unwrap() as f32, want);
    let from_jsonl = run(&jsonl);
    assert_eq!(from_jsonl.len(), 3);
    for (a, b) in from_csv.iter().zip(&from_jsonl) {
        assert_eq!(a["account_id"], b["account_id"]);
        assert_eq!(a["prob"], b["prob"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
