//! Issue #20 end to end: `generate` a small stream with organic newcomers (30 % of the
//! popular accounts' new followers), two suggested-list surges, viral spikes, today's
//! campaigns and fresh-batch campaigns (slow and fast: bots under an hour old at every
//! follow), then `bench-detect` with default settings and the shipped model. Surges and
//! viral spikes never alert, every alert matches a campaign, fresh batches are caught
//! (the fast ones by the newcomer channel), and organic humans are at most 2 % of the
//! moderation records.
//!
//! `generate` runs in process (followguard-train, with the `followguard generate` flags);
//! `bench-detect` runs as the followguard-bench binary, as `followguard bench-detect`
//! forwards to it.

use clap::Parser;
use std::path::Path;
use std::process::Command;

/// The `generate` command's flags, as `followguard generate` takes them.
#[derive(Parser)]
struct Generate {
    #[command(flatten)]
    args: followguard_train::generate::GenerateArgs,
}

fn generate(args: &[&str]) {
    let a = Generate::try_parse_from(std::iter::once("generate").chain(args.iter().copied()))
        .expect("generate flags parse");
    followguard_train::generate::run(a.args).expect("generate runs");
}

fn bench(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_followguard-bench"))
        .args(args)
        .output()
        .expect("followguard-bench runs");
    assert!(
        out.status.success(),
        "followguard-bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn newcomers_surges_and_fresh_batches_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let (events, truth, report) = (p("events.jsonl"), p("truth.json"), p("report.json"));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
    generate(&[
        "--out",
        &events,
        "--truth",
        &truth,
        "--seed",
        "7",
        "--followees",
        "400",
        "--days",
        "5",
        "--humans",
        "20000",
        "--campaigns",
        "6",
        "--max-campaign",
        "2000",
        "--viral",
        "3",
        "--newcomer-share",
        "0.3",
        "--surges",
        "2",
        "--fresh-campaigns",
        "2",
        "--fast-fresh-campaigns",
        "3",
    ]);
    bench(&[
        "bench-detect",
        "--events",
        &events,
        "--truth",
        &truth,
        "--model",
        model.to_str().unwrap(),
        "--json",
        &report,
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert_eq!(t["surges"].as_array().unwrap().len(), 2);
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(n("false_alerts_on_surge"), 0.0, "{r}");
    assert_eq!(n("false_alerts_on_viral"), 0.0, "{r}");
    assert_eq!(n("false_alerts"), 0.0, "{r}");
    assert_eq!(n("alert_precision"), 1.0, "{r}");
    assert!(n("moderation_records") > 0.0);
    assert!(n("moderation_organic_share") <= 0.02, "{r}");
    assert!(n("judgment_withheld") > 1000.0, "{r}");
    let group = |name: &str| {
        r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("group {name} in {r}"))
            .clone()
    };
    let fresh = group("fresh-batch");
    assert_eq!(fresh["campaigns"], 5);
    assert!(fresh["recall"].as_f64().unwrap() >= 0.9, "{fresh}");
    let fast = group("fresh-batch fast (<1h old)");
    assert_eq!(fast["campaigns"], 3);
    assert_eq!(fast["recall"], 1.0, "{fast}");
}
