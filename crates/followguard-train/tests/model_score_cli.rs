//! `followguard score` line handling: every input line gets exactly one JSON line, and
//! malformed input becomes an error line with a kind instead of stopping the run; and
//! where the default model is found. (The command run end to end: the `followguard`
//! crate's `tests/cli_score.rs`.)

use followguard_core::model::Model;
use followguard_train::modelcli::score_line;
use std::path::Path;

/// The checkout (this crate sits at crates/<name>).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
}

fn shipped() -> Model {
    let path = repo_root().join(followguard_train::model_file::DEFAULT_MODEL_PATH);
    followguard_train::model_file::load(&path).expect("the shipped default model loads")
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
fn default_model_path_resolves_through_the_executable_then_the_checkout() {
    use followguard_train::model_file::{resolve_model_path, DEFAULT_MODEL_PATH};
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
}
