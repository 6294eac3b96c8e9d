//! Metric contract between the code and deploy/: every `followguard_*` series the Grafana
//! dashboard or the Prometheus rules read is one `metrics::Metrics` exports, so renaming or
//! removing a metric breaks this test instead of a dashboard panel or an alert. (The live
//! version of this check, against a real Prometheus scraping `serve`, is
//! scripts/ops-check.sh.)

use followguard::metrics::{
    EventOutcome, GroupConsumer, Metrics, RebalanceKind, StateBytes, WebhookDrop, WebhookResult,
};
use followguard::sink::Sink;
use prometheus::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Byte ranges of the `followguard_*` series names in a text (PromQL in JSON or YAML).
fn series_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("followguard_") {
        let start = i + pos;
        // Not part of a longer identifier (`xfollowguard_`), and not the middle of a
        // recording rule's name (`job:followguard_events:rate5m`, a rule output).
        let prev_ok = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if prev_ok && bytes.get(end) != Some(&b':') {
            out.push((start, end));
        }
        i = end;
    }
    out
}

/// `followguard_*` series names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    series_spans(text)
        .into_iter()
        .map(|(a, b)| text[a..b].to_string())
        .collect()
}

/// Labels every scrape adds to a target's series; deploy/ may use them on any series.
const SCRAPE_LABELS: [&str; 2] = ["job", "instance"];

/// Label keys of every series a scrape exports after [`exercise`], by series name
/// (histograms expand to `_bucket`, `_sum`, `_count`).
fn exercised_labels() -> BTreeMap<String, BTreeSet<String>> {
    let m = Metrics::new(Registry::new(), "test-model", "0123abcd");
    exercise(&m);
    exported_labels(&m)
}

/// One observation through every public recording method, so labelled families have a
/// child to export (an unlabelled vector exports nothing until a label set is used).
fn exercise(m: &Metrics) {
    m.event(EventOutcome::Clean);
    m.event(EventOutcome::Suspicious);
    m.event_rejected("invalid_json");
    m.follower_scored(0.9, true, true);
    m.alert_emitted("burst", "high", "open");
    m.moderation_emitted();
    m.judgment_withheld();
    m.dead_lettered("invalid_json");
    m.processing_seconds(2e-5);
    m.event_age_seconds(1.5);
    m.set_tracked_followees(3);
    m.set_consumer_lag(0, 7);
    m.set_assigned_partitions(4);
    m.rebalance(RebalanceKind::Assign);
    // Issue 21.
    m.rebalance_partitions(RebalanceKind::Revoke, 2);
    m.revoke_flushed(0.02, false);
    m.replayed(10);
    m.delivery_failed(Sink::Alerts);
    m.delivered(Sink::Moderation);
    m.webhook_dropped(WebhookDrop::QueueFull);
    m.webhook_sent();
    m.progress(1_700_000_000.0);
    m.poll_gap_histogram(GroupConsumer::Input).observe(0.2);
    m.poll_gap_histogram(GroupConsumer::Links).observe(1.5);
    // Issue #23.
    m.webhook_request(WebhookResult::Redirect, 0.02);
    m.set_webhook_tracked(2);
    m.set_open_alerts(3);
    m.set_score_cache_totals(5, 2);
    m.consumer_error();
    m.commit_error();
    // Issue #19.
    m.set_state_bytes(StateBytes {
        detector: 1000,
        evidence: 200,
        score_cache: 30,
        profiles: 4,
    });
    m.set_pending_refused_total(6);
    // Issue 21: the link stage.
    m.links.consumed("links");
    m.links.campaign();
    m.links.dropped("duplicate", 2);
    m.links.rebuilt(7);
    m.links.snapshot("written", 3);
    m.links.snapshot("read", 2);
    m.links.set_bytes("graph", 512);
}

/// Issue 21: the link stage's series move when their recording methods run.
#[test]
fn issue_21_link_metrics_move() {
    let m = Metrics::new(Registry::new(), "test-model", "0123abcd");
    let before = m.render();
    exercise(&m);
    m.delivered(Sink::Links);
    let after = m.render();
    for (name, want) in [
        ("followguard_link_records_total", 1.0),
        ("followguard_campaign_records_total", 1.0),
        ("followguard_link_dropped_total", 2.0),
        ("followguard_link_rebuilt_records_total", 7.0),
        ("followguard_link_snapshot_records_total", 5.0),
        ("followguard_link_state_bytes", 512.0),
    ] {
        assert_eq!(value(&before, name), 0.0, "{name} before");
        assert_eq!(value(&after, name), want, "{name} after");
    }
    assert!(after.contains("followguard_records_produced_total{sink=\"links\"} 1"));
}

/// The value of an unlabelled series (or the sum of a family's children) in a scrape.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Issue #23: every series added for operations moves when its recording method runs,
/// and the standard process collector's series are exported unprefixed.
#[test]
fn issue_23_metrics_move() {
    let m = Metrics::new(Registry::new(), "test-model", "0123abcd");
    let before = m.render();
    exercise(&m);
    let after = m.render();
    for (name, want) in [
        ("followguard_webhook_requests_total", 1.0),
        ("followguard_webhook_request_duration_seconds_count", 1.0),
        ("followguard_webhook_tracked_alerts", 2.0),
        ("followguard_open_alerts", 3.0),
        ("followguard_score_cache_hits_total", 5.0),
        ("followguard_score_cache_misses_total", 2.0),
        ("followguard_consumer_errors_total", 1.0),
        ("followguard_commit_errors_total", 1.0),
        ("followguard_follows_total", 1.0),
        ("followguard_follower_score_ratio_count", 1.0),
        // Issue 21: rebalances.
        ("followguard_rebalance_partitions_total", 2.0),
        ("followguard_revoke_flush_seconds_count", 1.0),
        ("followguard_revoke_flush_incomplete_total", 1.0),
    ] {
        assert_eq!(value(&before, name), 0.0, "{name} before");
        assert_eq!(value(&after, name), want, "{name} after");
    }
    // Totals only move forward: a lower total (a cache replaced) does not count back.
    m.set_score_cache_totals(1, 9);
    let again = m.render();
    assert_eq!(value(&again, "followguard_score_cache_hits_total"), 5.0);
    assert_eq!(value(&again, "followguard_score_cache_misses_total"), 9.0);
    if cfg!(target_os = "linux") {
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_threads",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
        ] {
            assert!(value(&after, name) > 0.0, "{name} exported");
        }
        assert!(!after.contains("followguard_process_"));
    }
}

/// Issue 21: the poll gaps of each group consumer (the input's and the link stage's
/// member) go into their own `consumer` series, both exported from the start.
#[test]
fn issue_21_poll_gaps_are_labelled_by_consumer() {
    let m = Metrics::new(Registry::new(), "test-model", "0123abcd");
    let series =
        |c: &str, s: &str| format!("followguard_consumer_poll_gap_seconds_{s}{{consumer=\"{c}\"}}");
    let before = m.render();
    for c in ["input", "links"] {
        assert!(
            before.contains(&format!("{} 0\n", series(c, "count"))),
            "{c} exported:\n{before}"
        );
    }
    exercise(&m);
    let after = m.render();
    for (c, sum) in [("input", "0.2"), ("links", "1.5")] {
        assert!(
            after.contains(&format!("{} 1\n", series(c, "count"))),
            "{c} moved:\n{after}"
        );
        assert!(
            after.contains(&format!("{} {sum}\n", series(c, "sum"))),
            "{c} sum:\n{after}"
        );
    }
    assert!(after
        .contains("followguard_consumer_poll_gap_seconds_bucket{consumer=\"links\",le=\"1\"} 0\n"));
    assert_eq!(
        exercised_labels()["followguard_consumer_poll_gap_seconds_bucket"],
        ["consumer", "le"].map(String::from).into_iter().collect()
    );
}

/// Issue #19: the stored-state byte gauges (one per store, present from the start) and
/// the refused-pending counter move with what serve measures, and the counter never
/// counts back.
#[test]
fn issue_19_state_byte_metrics_move() {
    let m = Metrics::new(Registry::new(), "test-model", "0123abcd");
    let before = m.render();
    for store in StateBytes::STORES {
        let series = format!("followguard_state_bytes{{store=\"{store}\"}}");
        assert!(
            before.contains(&format!("{series} 0")),
            "{series} exported at 0"
        );
    }
    assert_eq!(value(&before, "followguard_pending_refused_total"), 0.0);
    exercise(&m);
    let after = m.render();
    for (store, want) in [
        ("detector", 1000.0),
        ("evidence", 200.0),
        ("score_cache", 30.0),
        ("profiles", 4.0),
    ] {
        let series = format!("followguard_state_bytes{{store=\"{store}\"}}");
        assert!(
            after.contains(&format!("{series} {want}")),
            "{series}: {after}"
        );
    }
    assert_eq!(value(&after, "followguard_state_bytes"), 1234.0);
    assert_eq!(value(&after, "followguard_pending_refused_total"), 6.0);
    // Gauges follow the state down; the counter only moves forward.
    m.set_state_bytes(StateBytes {
        detector: 10,
        ..StateBytes::default()
    });
    m.set_pending_refused_total(2);
    let again = m.render();
    assert_eq!(value(&again, "followguard_state_bytes"), 10.0);
    assert_eq!(value(&again, "followguard_pending_refused_total"), 6.0);
    m.set_pending_refused_total(9);
    assert_eq!(value(&m.render(), "followguard_pending_refused_total"), 9.0);
}

#[test]
fn every_metric_in_deploy_is_exported() {
    let mut wanted = metric_names(&read("deploy/grafana/dashboards/followguard.json"));
    wanted.extend(metric_names(&read("deploy/prometheus/rules.yml")));
    assert!(
        wanted.len() >= 15,
        "expected the dashboard and rules to read many followguard metrics, found {wanted:?}"
    );

    let have: BTreeSet<String> = exercised_labels().into_keys().collect();

    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "deploy/ reads series that src/metrics.rs does not export: {missing:?}\nexported: {have:?}"
    );
}

#[test]
fn metric_names_parser_skips_recording_rule_names() {
    let names = metric_names(
        r#"sum by (job) (rate(followguard_events_total{job=~"$job"}[5m])) / job:followguard_lag:sum + xfollowguard_not_ours + max(followguard_assigned_partitions)"#,
    );
    let want: BTreeSet<String> = [
        "followguard_events_total",
        "followguard_assigned_partitions",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
}

/// Label keys of every series a scrape of `metrics` contains, by series name.
fn exported_labels(metrics: &Metrics) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in metrics.render().lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = l.split_once('{') else {
            if let Some(name) = l.split(' ').next().filter(|n| !n.is_empty()) {
                out.entry(name.to_string()).or_default();
            }
            continue;
        };
        let keys = out.entry(name.to_string()).or_default();
        let body = rest.split('}').next().unwrap_or_default();
        for pair in body.split("\",") {
            if let Some((k, _)) = pair.split_once('=') {
                keys.insert(k.trim().to_string());
            }
        }
    }
    out
}

/// (series, label key) of every `followguard_x{key="…", …}` selector in a text (PromQL in
/// JSON, with `\"` escapes, or YAML).
fn selector_labels(text: &str) -> Vec<(String, String)> {
    let text = text.replace("\\\"", "\"");
    let mut out = Vec::new();
    for (start, end) in series_spans(&text) {
        let name = &text[start..end];
        if let Some(body) = text[end..].strip_prefix('{') {
            let body = &body[..body.find('}').unwrap_or(body.len())];
            // Split on commas outside quoted values.
            let (mut in_q, mut from) = (false, 0);
            let mut parts = Vec::new();
            for (i, c) in body.char_indices() {
                match c {
                    '"' => in_q = !in_q,
                    ',' if !in_q => {
                        parts.push(&body[from..i]);
                        from = i + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&body[from..]);
            for p in parts {
                let key = p
                    .split(['=', '!'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_end_matches('~');
                if !key.is_empty() {
                    out.push((name.to_string(), key.to_string()));
                }
            }
        }
    }
    out
}

/// Every label a dashboard query or rule selects on exists on the series it selects
/// (besides the scrape's own `job` and `instance`), so renaming a label breaks this test
/// instead of silently emptying a panel or muting an alert.
#[test]
fn every_selected_label_is_exported() {
    let have = exercised_labels();
    let mut checked = 0;
    for file in [
        "deploy/grafana/dashboards/followguard.json",
        "deploy/prometheus/rules.yml",
    ] {
        for (series, key) in selector_labels(&read(file)) {
            if SCRAPE_LABELS.contains(&key.as_str()) {
                continue;
            }
            let labels = have
                .get(&series)
                .unwrap_or_else(|| panic!("{file}: {series} is not exported"));
            assert!(
                labels.contains(&key),
                "{file}: selects {series}{{{key}=…}} but {series} has labels {labels:?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected label selectors in deploy/, checked {checked}"
    );
}

#[test]
fn selector_labels_parser_reads_keys_not_values() {
    let got = selector_labels(
        r#"rate(followguard_events_total{job=~\"$job\", outcome!=\"a,b=c\"}[5m]) + job:followguard_x{y="1"}"#,
    );
    assert_eq!(
        got,
        vec![
            ("followguard_events_total".to_string(), "job".to_string()),
            (
                "followguard_events_total".to_string(),
                "outcome".to_string()
            ),
        ]
    );
}

/// Label names in every `by (…)` / `without (…)` clause of a PromQL text.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in ["by", "without"] {
        let mut rest = expr;
        while let Some(pos) = rest.find(kw) {
            let before_ok = pos == 0 || {
                let c = rest.as_bytes()[pos - 1];
                !(c.is_ascii_alphanumeric() || c == b'_')
            };
            let after = rest[pos + kw.len()..].trim_start();
            if before_ok && after.starts_with('(') {
                let inner = &after[1..after.find(')').unwrap_or(after.len())];
                out.extend(
                    inner
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
            }
            rest = &rest[pos + kw.len()..];
        }
    }
    out
}

/// Every `expr` string of the dashboard (its JSON tree) and each rule's text (the YAML
/// between one `expr:` and the next).
fn expressions() -> Vec<(&'static str, String)> {
    fn walk(v: &serde_json::Value, out: &mut Vec<(&'static str, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", serde_json::Value::String(s)) => {
                            out.push(("dashboard", s.clone()))
                        }
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/followguard.json"))
            .expect("dashboard JSON");
    walk(&dash, &mut out);
    let rules = read("deploy/prometheus/rules.yml");
    out.extend(
        rules
            .split("expr:")
            .skip(1)
            .map(|s| ("rules.yml", s.to_string())),
    );
    out
}

/// Every label a query groups by exists on at least one series it reads (besides the
/// scrape's `job` / `instance`), so a renamed label cannot silently merge a panel's
/// series or an alert's instances into one.
#[test]
fn every_grouping_label_is_exported() {
    let have = exercised_labels();
    let mut checked = 0;
    for (file, expr) in expressions() {
        let series = metric_names(&expr);
        if series.is_empty() {
            continue; // only recording-rule outputs
        }
        let labels: BTreeSet<&String> = series
            .iter()
            .filter_map(|s| have.get(s))
            .flatten()
            .collect();
        for l in grouping_labels(&expr) {
            if SCRAPE_LABELS.contains(&l.as_str()) {
                continue;
            }
            assert!(
                labels.contains(&l),
                "{file}: groups by `{l}` but {series:?} export only {labels:?}\n{expr}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "expected grouping labels in deploy/, checked {checked}"
    );
}

#[test]
fn grouping_labels_parser() {
    let got = grouping_labels("sum by (job, le) (rate(x[5m])) / max without(kind) (y) + bytes");
    let want: BTreeSet<String> = ["job", "le", "kind"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}
