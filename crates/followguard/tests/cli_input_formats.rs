//! Issue 24, end to end through the binary: `replay --input-format jetstream --profiles`
//! (a Bluesky burst joined with its profile table) writes exactly the alert and
//! moderation records of the same follows in canonical form; deletes, other collections
//! and unknown followers are counted, not scored; `score --input-format x-activity`
//! scores each follow event of a payload.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const T0_MS: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z

fn followguard(args: &[&str], dir: &Path, stdin: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_followguard"));
    c.args(args)
        .env_remove("FOLLOWGUARD_MODEL")
        .env_remove("FOLLOWGUARD_INPUT_FORMAT")
        .current_dir(dir);
    c.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    c.output().expect("followguard runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bought-looking Bluesky account (profile view, as `app.bsky.actor.getProfile`).
fn bsky_profile(i: usize) -> String {
    format!(
        r#"{{"did": "did:plc:bot{i:04}", "handle": "kdjw8392{i:04}.bsky.social", "displayName": "",
 "description": "", "followersCount": 2, "followsCount": 1450, "postsCount": 0,
 "createdAt": "2026-09-01T00:00:00.000Z", "indexedAt": "2026-09-01T00:00:00.000Z", "labels": []}}"#
    )
    .replace('\n', "")
}

fn jetstream_follow(i: usize, ts_ms: i64) -> String {
    format!(
        r#"{{"did": "did:plc:bot{i:04}", "time_us": {}, "kind": "commit", "commit": {{"rev": "3l3qo2vutsw2b", "operation": "create", "collection": "app.bsky.graph.follow", "rkey": "3l3q{i:04}", "record": {{"$type": "app.bsky.graph.follow", "createdAt": "2026-11-28T10:00:00.000Z", "subject": "did:plc:buyer"}}, "cid": "bafyrei{i:04}"}}}}"#,
        ts_ms * 1000
    )
}

/// The same follow, written by hand in the canonical format (README), with the fields
/// Bluesky lacks left missing.
fn canonical_follow(i: usize, ts_ms: i64) -> String {
    format!(
        r#"{{"event_id": "at://did:plc:bot{i:04}/app.bsky.graph.follow/3l3q{i:04}", "type": "follow", "ts": {ts_ms}, "followee_id": "did:plc:buyer", "follower": {{"id": "did:plc:bot{i:04}", "screen_name": "kdjw8392{i:04}", "name": "", "description": "", "created_at": "2026-09-01T00:00:00Z", "followers_count": 2, "friends_count": 1450, "statuses_count": 0, "default_profile": true, "default_profile_image": true, "missing": ["location", "url"]}}}}"#
    )
}

#[test]
fn jetstream_replay_with_a_profile_table_equals_the_canonical_replay() {
    let dir = scratch("jetstream");
    let n = 60;
    let profiles: Vec<String> = (0..n).map(bsky_profile).collect();
    let mut jet: Vec<String> = Vec::new();
    let mut canon: Vec<String> = Vec::new();
    for i in 0..n {
        let ts = T0_MS + 1000 * i as i64;
        jet.push(jetstream_follow(i, ts));
        canon.push(canonical_follow(i, ts));
    }
    // Not follows: a delete (no subject: ignored), a like, an identity event; a follow
    // from an account the table does not know; a malformed commit.
    jet.push(r#"{"did": "did:plc:bot0001", "time_us": 1795860100000000, "kind": "commit", "commit": {"rev": "x", "operation": "delete", "collection": "app.bsky.graph.follow", "rkey": "3l3q0001"}}"#.into());
    jet.push(r#"{"did": "did:plc:bot0002", "time_us": 1795860100000000, "kind": "commit", "commit": {"rev": "x", "operation": "create", "collection": "app.bsky.feed.like", "rkey": "k", "record": {"subject": {"uri": "at://x", "cid": "y"}}}}"#.into());
    jet.push(r#"{"did": "did:plc:bot0003", "time_us": 1795860100000000, "kind": "identity", "identity": {"did": "did:plc:bot0003", "handle": "a.bsky.social", "seq": 1, "time": "2026-11-28T10:01:40.000Z"}}"#.into());
    jet.push(jetstream_follow(9999, T0_MS + 100_000).replace("bot9999", "stranger"));
    jet.push(r#"{"did": "did:plc:bot0004", "kind": "commit", "commit": {"operation": "create", "collection": "app.bsky.graph.follow"}}"#.into());
    let write = |name: &str, lines: &[String]| {
        let p = dir.join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    let (pp, jp, cp) = (
        write("profiles.jsonl", &profiles),
        write("jetstream.jsonl", &jet),
        write("canonical.jsonl", &canon),
    );
    let run = |input: &Path, extra: &[&str], tag: &str| {
        let (alerts, moderation) = (
            dir.join(format!("{tag}.alerts")),
            dir.join(format!("{tag}.mod")),
        );
        let mut args = vec![
            "replay",
            "--input",
            input.to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
            "--moderation",
            moderation.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = followguard(&args, &dir, None);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let summary: serde_json::Value =
            serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
        (
            std::fs::read_to_string(alerts).unwrap(),
            std::fs::read_to_string(moderation).unwrap(),
            summary,
        )
    };
    let (ja, jm, js) = run(
        &jp,
        &[
            "--input-format",
            "jetstream",
            "--profiles",
            pp.to_str().unwrap(),
        ],
        "jet",
    );
    let (ca, cm, cs) = run(&cp, &[], "canon");
    assert!(
        ja.contains(r#""status":"open""#),
        "the burst is alerted: {ja}"
    );
    assert_eq!(ja, ca, "the same alert records as the canonical replay");
    assert_eq!(jm, cm, "the same moderation records");
    assert!(!jm.is_empty());
    assert_eq!(js["events"], cs["events"]);
    assert_eq!(js["suspicious_follows"], cs["suspicious_follows"]);
    assert_eq!(
        js["ignored"],
        serde_json::json!({"bluesky_delete": 1, "other_collection": 1, "not_a_follow": 1})
    );
    assert_eq!(
        js["rejected"],
        serde_json::json!({"unknown_profile": 1, "missing_field": 1})
    );
    // Without a profile table the format is refused as a configuration error.
    let out = followguard(
        &[
            "replay",
            "--input",
            jp.to_str().unwrap(),
            "--input-format",
            "jetstream",
        ],
        &dir,
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn score_reads_x_account_activity_payloads() {
    let dir = scratch("x-activity");
    let user = |id: u64, sn: &str, fo: u64, st: u64| {
        format!(
            r#"{{"id": {id}, "id_str": "{id}", "screen_name": "{sn}", "name": "N", "description": "", "url": null, "location": "", "created_at": "Mon Sep 01 00:00:00 +0000 2026", "followers_count": {fo}, "friends_count": 1450, "statuses_count": {st}, "favourites_count": 0, "listed_count": 0, "default_profile": true, "default_profile_image": true, "protected": false, "verified": false}}"#
        )
    };
    let target = user(783214, "brand", 10, 10);
    let payload = format!(
        r#"{{"for_user_id": "783214", "follow_events": [{{"type": "follow", "created_timestamp": "{T0_MS}", "target": {target}, "source": {}}}, {{"type": "follow", "created_timestamp": "{T0_MS}", "target": {target}, "source": {}}}]}}"#,
        user(11, "kdjw83920183", 2, 0),
        user(12, "tom_h", 900, 12000),
    );
    let input = dir.join("x.jsonl");
    std::fs::write(
        &input,
        format!("{payload}\n{{\"for_user_id\": \"1\", \"tweet_create_events\": []}}\n"),
    )
    .unwrap();
    let out = followguard(
        &["score", "--input-format", "x-activity"],
        &dir,
        Some(&input),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["follower_id"], "11");
    assert_eq!(lines[1]["follower_id"], "12");
    assert_eq!(lines[0]["followee_id"], "783214");
    assert_eq!(lines[0]["suspicious"], true);
    assert_eq!(lines[2]["ignored"], "no_follow_events");
    // The first follower, as a canonical event, scores the same.
    let canonical = dir.join("c.jsonl");
    std::fs::write(
        &canonical,
        format!(
            r#"{{"event_id": "x", "type": "follow", "ts": {T0_MS}, "followee_id": "783214", "follower": {}}}"#,
            user(11, "kdjw83920183", 2, 0)
        ) + "\n",
    )
    .unwrap();
    let out = followguard(&["score"], &dir, Some(&canonical));
    let c: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(c["prob"], lines[0]["prob"]);
    assert_eq!(c["reasons"], lines[0]["reasons"]);
}
