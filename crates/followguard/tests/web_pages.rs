//! The alert evidence web view over a generated stream with resold campaigns, whose bought
//! followers carry hostile screen names and descriptions (`<script>`, quote breaks, RTL
//! overrides) and one campaign target a hostile id: pages and JSON through the real
//! router, the filters, the campaign links, and `replay --report` writing the same pages.
//! Every hostile string must come out inert (escaped, bidi controls made visible).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use followguard::replay::load_model;
use followguard::web;
use followguard_core::evidence::EvidenceStore;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use followguard_train::generate::{self, GenConfig, Profiles, BOT_ID_MIN};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const HOSTILE_NAMES: [&str; 4] = [
    "<script>document.title='pwned'</script>",
    "\"><img src=x onerror=alert(1)>",
    "evil\u{202E}gpj.exe",
    "a'b\"c&d\u{2066}",
];
const HOSTILE_DESCRIPTION: &str = "</td></tr></table><script>alert(2)</script>";
const HOSTILE_FOLLOWEE: &str = "t<script>alert(3)</script>";

/// Raw substrings that must never reach a page.
const RAW_FORBIDDEN: [&str; 6] = [
    "<script",
    "<img",
    "onerror=alert(1)>",
    "\u{202E}",
    "\u{2066}",
    "</table><script>",
];

/// Seed 5 of this config yields four alerts, three linked into one resold campaign.
fn stream() -> (Vec<u8>, generate::Truth) {
    let cfg = GenConfig {
        followees: 150,
        days: 2,
        // A seed whose four campaigns all alert with the shipped model: this test is about
        // escaping and page structure, not recall (DETECTION.md measures recall). Re-pick
        // the seed if a retrained model changes that.
        seed: 1,
        humans: 5000,
        viral_spikes: 2,
        campaigns: 4,
        resell_prob: 1.0,
        min_campaign: 200,
        max_campaign: 400,
        camouflage: 0.0,
        ..GenConfig::default()
    };
    let mut out = Vec::new();
    let truth =
        generate::generate(&cfg, &Profiles::Builtin, &mut out, |_, _| {}).expect("generate");
    (out, truth)
}

/// Rewrites bought followers' names and descriptions, and one target's id, to hostile text.
fn make_hostile(events: &[u8], target: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 2);
    for (i, line) in events
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let mut v: serde_json::Value = serde_json::from_slice(line).expect("generated JSON");
        let id: u64 = v["follower"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v["follower"]["id"].as_u64())
            .expect("follower id");
        if id >= BOT_ID_MIN {
            v["follower"]["screen_name"] = HOSTILE_NAMES[i % HOSTILE_NAMES.len()].into();
            v["follower"]["description"] = HOSTILE_DESCRIPTION.into();
        }
        if v["followee_id"].as_str() == Some(target) {
            v["followee_id"] = HOSTILE_FOLLOWEE.into();
        }
        out.extend(serde_json::to_vec(&v).expect("json"));
        out.push(b'\n');
    }
    out
}

fn model_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json")
}

fn build_store(events: &[u8]) -> EvidenceStore {
    let model = load_model(&model_path()).expect("shipped model");
    let mut p = Pipeline::new(model, PipelineConfig::default());
    let mut store = EvidenceStore::default();
    for line in events.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let o = p.process(line, None, 0).expect("valid event");
        store.observe(&o);
    }
    store
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Option<String>, String) {
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .uri(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible router");
    let status = resp.status();
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    (
        status,
        csp,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

fn assert_inert(what: &str, html: &str) {
    for bad in RAW_FORBIDDEN {
        assert!(!html.contains(bad), "{what}: raw {bad:?} reached the page");
    }
}

#[tokio::test]
async fn hostile_account_strings_are_inert_and_pages_link_the_campaign() {
    let (events, truth) = stream();
    // The hostile id goes on a campaign target, so its alert's pages carry it.
    let target = truth.campaigns[0].followee_id.clone();
    let events = make_hostile(&events, &target);
    let store = build_store(&events);
    assert_eq!(store.len(), 4, "the seed's four campaigns each alert");
    let shared = Arc::new(Mutex::new(store));
    // No link stage: no campaigns table, and no cross-instance campaign in the JSON.
    let app = web::router(shared.clone(), Arc::default());

    // The list: every alert, escaped, with the no-script CSP.
    let (code, csp, list) = get(&app, "/alerts").await;
    assert_eq!(code, StatusCode::OK);
    assert!(csp.is_some_and(|c| c.contains("default-src 'none'")));
    assert_inert("/alerts", &list);
    assert!(list.contains("t&lt;script&gt;alert(3)&lt;/script&gt;"));
    assert_eq!(list.matches(r#"<tr class="alert""#).count(), 4);

    let (code, _, api) = get(&app, "/api/alerts").await;
    assert_eq!(code, StatusCode::OK);
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    let alerts = api["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 4);
    let opened: Vec<i64> = alerts
        .iter()
        .map(|a| a["opened_at_ms"].as_i64().expect("opened_at_ms"))
        .collect();
    assert!(opened.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let mut hostile_seen = 0;
    let mut linked = 0;
    for a in alerts {
        let id = a["alert"]["alert_id"].as_str().expect("id");
        let (code, csp, page) = get(&app, &format!("/alerts/{id}")).await;
        assert_eq!(code, StatusCode::OK);
        assert!(csp.is_some());
        assert_inert(id, &page);
        for svg in [
            "id=\"factory\"",
            "id=\"rate\"",
            "id=\"histogram\"",
            "class=\"baseline\"",
        ] {
            assert!(page.contains(svg), "{id}: missing {svg}");
        }
        assert!(page.contains(r#"<circle class="flagged""#));
        if page.contains("[U+202E]") {
            hostile_seen += 1;
            assert!(page.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
            assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
            assert!(page.contains("a&#39;b&quot;c&amp;d[U+2066]"));
            assert!(page.contains(
                "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;alert(2)&lt;/script&gt;"
            ));
        }

        // JSON equivalent: the same alert, its followers, the campaign's other alerts.
        let (code, _, j) = get(&app, &format!("/api/alerts/{id}")).await;
        assert_eq!(code, StatusCode::OK);
        let j: serde_json::Value = serde_json::from_str(&j).expect("json");
        assert_eq!(j["evidence"]["alert"]["alert_id"], *id);
        assert!(j.get("cross_instance_campaign_id").is_none());
        let followers = j["evidence"]["followers"].as_array().expect("followers");
        assert!(followers.iter().any(|f| f["flagged"] == true));
        let sibs = j["campaign_alerts"].as_array().expect("siblings");
        if let Some(cid) = a["alert"]["campaign_id"].as_str() {
            linked += 1;
            assert!(!sibs.is_empty(), "{id} is in campaign {cid}");
            for s in sibs {
                let s = s.as_str().expect("sibling id");
                assert!(
                    page.contains(&format!(r#"href="/alerts/{s}""#)),
                    "link to {s}"
                );
            }
            // The campaign filter lists exactly that campaign.
            let (code, _, f) = get(&app, &format!("/api/alerts?campaign={cid}")).await;
            assert_eq!(code, StatusCode::OK);
            let f: serde_json::Value = serde_json::from_str(&f).expect("json");
            let got = f["alerts"].as_array().expect("alerts");
            assert_eq!(got.len(), sibs.len() + 1);
            assert!(got.iter().all(|x| x["alert"]["campaign_id"] == cid));
            let (_, _, fl) = get(&app, &format!("/alerts?campaign={cid}")).await;
            assert_eq!(fl.matches(r#"<tr class="alert""#).count(), sibs.len() + 1);
        } else {
            assert!(sibs.is_empty());
        }
    }
    assert!(
        hostile_seen >= 3,
        "hostile names shown on {hostile_seen} pages"
    );
    assert!(linked >= 2, "the resold cohort links alerts ({linked})");

    // Severity filter: each severity lists exactly its alerts; an unknown one is a 400.
    let mut total = 0;
    for s in ["low", "medium", "high", "critical"] {
        let (_, _, f) = get(&app, &format!("/api/alerts?severity={s}")).await;
        let f: serde_json::Value = serde_json::from_str(&f).expect("json");
        let got = f["alerts"].as_array().expect("alerts");
        assert!(got.iter().all(|x| x["alert"]["severity"] == s));
        total += got.len();
    }
    assert_eq!(total, 4);
    let (code, _, body) = get(&app, "/alerts?severity=%3Cscript%3E").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_inert("bad filter", &body);
    let (code, _, _) = get(&app, "/api/alerts?severity=bogus").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // Unknown alerts: 404, and the echoed id is escaped too.
    let (code, _, body) = get(&app, "/alerts/%3Cscript%3Ex").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_inert("404", &body);
    let (code, _, _) = get(&app, "/api/alerts/fga-0000").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[test]
fn replay_report_writes_the_same_pages_offline() {
    let (events, truth) = stream();
    let events = make_hostile(&events, &truth.campaigns[0].followee_id);
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, &events).expect("write");
    let report = dir.path().join("report");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_followguard"))
        .arg("replay")
        .arg("--input")
        .arg(&input)
        .arg("--alerts")
        .arg(dir.path().join("alerts.jsonl"))
        .arg("--model")
        .arg(model_path())
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("report: 4 alerts"));

    let index = std::fs::read_to_string(report.join("index.html")).expect("index.html");
    assert_inert("index.html", &index);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("alerts.json")).expect("alerts.json"))
            .expect("json");
    let alerts = summary["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 4);
    // The pages match what the live router renders for the same input.
    let store = build_store(&events);
    for a in alerts {
        let id = a["alert"]["alert_id"].as_str().expect("id");
        assert!(index.contains(&format!(r#"href="{id}.html""#)));
        let page = std::fs::read_to_string(report.join(format!("{id}.html"))).expect("page");
        assert_inert(id, &page);
        let e = store.get(id).expect("same alerts as the library replay");
        let live = web::render_alert(e, &web::siblings(&store, id), web::Links::Report);
        assert_eq!(page, live);
        assert!(report.join(format!("{id}.json")).exists());
        if let Some(cid) = a["alert"]["campaign_id"].as_str() {
            let c = std::fs::read_to_string(report.join(format!("campaign-{cid}.html")))
                .expect("campaign page");
            assert!(c.contains(&format!(r#"href="{id}.html""#)));
        }
    }
    for s in ["low", "medium", "high", "critical"] {
        assert!(report.join(format!("severity-{s}.html")).exists());
    }
}
