//! `followguard export-training` (issue 24): moderators' decisions joined with the
//! profile snapshots they judged, written as an account table `train` and `eval` read
//! (JSON lines: the canonical user object, `crawled_at` = the judged event's time,
//! `label`, `group`, and the decision's provenance).
//!
//! Which snapshot a verdict judged: a verdict naming an alert judged the follower as its
//! moderation record of that alert showed it (the record's `event_id` → that follow
//! event's profile); a verdict on a follower alone judged its latest moderation record
//! before the verdict, else its latest follow before the verdict (the profile the
//! moderator looked up). Alert-level verdicts label every flagged follower of the alert:
//! `confirmed` as bought, `false_alert` as people. A later verdict on the same follower
//! replaces an earlier one. A snapshot with missing counts is written as it is (`train`
//! skips it and counts it: an unknown count is never read as zero).

use crate::input::{Decoder, FormatArgs, ProfileFileArgs};
use anyhow::Context;
use followguard_core::decisions::{self, Decision, Verdict};
use followguard_core::event;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// `followguard export-training` flags.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Decisions (JSON lines, as on `serve --decisions-topic`).
    #[arg(long)]
    pub decisions: PathBuf,
    /// Moderation records (JSON lines, as `replay --moderation` writes them or a dump of
    /// the moderation topic).
    #[arg(long)]
    pub moderation: Vec<PathBuf>,
    /// The follow events the moderation records came from (any `--input-format`).
    #[arg(long, required = true, num_args = 1..)]
    pub events: Vec<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub profiles: ProfileFileArgs,
    /// Where the account table goes (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
}

/// One labelled account to export: which follow event's snapshot, and why.
#[derive(Debug, Clone)]
struct Wanted {
    label: bool,
    verdict: Verdict,
    who: String,
    alert_id: Option<String>,
    /// The judged follow (from a moderation record), if known.
    event_id: Option<String>,
    /// Else: the follower's latest follow at or before this time.
    before_ms: i64,
}

/// What an export produced.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct ExportReport {
    pub decisions: u64,
    pub unreadable_decisions: u64,
    pub rows: u64,
    pub bots: u64,
    pub humans: u64,
    /// Labelled followers whose judged snapshot was not in the events.
    pub no_snapshot: u64,
}

fn read_lines(path: &PathBuf) -> anyhow::Result<Vec<Vec<u8>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::BufReader::new(f)
        .split(b'\n')
        .map(|l| l.with_context(|| format!("reading {}", path.display())))
        .filter(|l| !matches!(l, Ok(l) if l.iter().all(u8::is_ascii_whitespace)))
        .collect()
}

/// Runs the export; returns its report (also printed by the command).
pub fn export(a: &ExportArgs) -> anyhow::Result<ExportReport> {
    let mut report = ExportReport::default();
    let mut ds: Vec<Decision> = Vec::new();
    for line in read_lines(&a.decisions)? {
        match decisions::parse(&line) {
            Ok(d) => ds.push(d),
            Err(_) => report.unreadable_decisions += 1,
        }
    }
    report.decisions = ds.len() as u64;
    ds.sort_by_key(|d| d.at_ms);
    // Moderation records: (alert, follower) → event id; per follower, its records.
    let mut by_alert: HashMap<String, Vec<(String, String, i64)>> = HashMap::new();
    let mut by_follower: HashMap<String, Vec<(String, String, i64)>> = HashMap::new();
    let mut alerts_of: HashMap<String, Vec<String>> = HashMap::new();
    for path in &a.moderation {
        for line in read_lines(path)? {
            let Ok(m) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            let (alert, follower, ev) = (s("alert_id"), s("follower_id"), s("event_id"));
            let t = m["event_time_ms"].as_i64().unwrap_or(0);
            alerts_of
                .entry(s("followee_id"))
                .or_default()
                .push(alert.clone());
            by_alert
                .entry(alert.clone())
                .or_default()
                .push((follower.clone(), ev.clone(), t));
            by_follower
                .entry(follower)
                .or_default()
                .push((alert, ev, t));
        }
    }
    // Decisions → the followers they label (a later verdict replaces an earlier one).
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    for d in &ds {
        let base = |label: bool, alert: Option<String>, ev: Option<String>| Wanted {
            label,
            verdict: d.verdict,
            who: d.who.clone(),
            alert_id: alert,
            event_id: ev,
            before_ms: d.at_ms,
        };
        match (d.verdict, &d.follower_id) {
            (Verdict::Human | Verdict::Bot | Verdict::Confirmed, Some(f)) => {
                let label = d.verdict != Verdict::Human;
                // The record the verdict judged: of its alert, else the latest before it.
                let rec = by_follower.get(f).and_then(|recs| {
                    recs.iter()
                        .filter(|(alert, _, t)| {
                            d.alert_id.as_ref().map_or(*t <= d.at_ms, |a| a == alert)
                        })
                        .max_by_key(|(_, _, t)| *t)
                });
                let w = base(
                    label,
                    rec.map(|r| r.0.clone()).or(d.alert_id.clone()),
                    rec.map(|r| r.1.clone()),
                );
                wanted.insert(f.clone(), w);
            }
            (Verdict::Confirmed | Verdict::FalseAlert, None) => {
                let label = d.verdict == Verdict::Confirmed;
                let alerts: Vec<String> = match (&d.alert_id, &d.followee_id) {
                    (Some(a), _) if by_alert.contains_key(a) => vec![a.clone()],
                    (_, Some(f)) => alerts_of.get(f).cloned().unwrap_or_default(),
                    _ => Vec::new(),
                };
                let alerts: HashSet<String> = alerts.into_iter().collect();
                for alert in alerts {
                    for (follower, ev, t) in by_alert.get(&alert).into_iter().flatten() {
                        if *t <= d.at_ms {
                            wanted.insert(
                                follower.clone(),
                                base(label, Some(alert.clone()), Some(ev.clone())),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // The snapshots: one pass over the events.
    let decoder = Decoder::open(a.format.input_format, &a.profiles)?;
    let by_event: HashSet<&str> = wanted
        .values()
        .filter_map(|w| w.event_id.as_deref())
        .collect();
    let mut found: HashMap<String, (Value, i64)> = HashMap::new();
    for path in &a.events {
        for line in read_lines(path)? {
            let Ok(decoded) = decoder.decode(&line) else {
                continue;
            };
            for bytes in decoded.events() {
                let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
                    continue;
                };
                let Ok(e) = event::parse_value(&v) else {
                    continue;
                };
                let Some(ts) = e.ts_ms else { continue };
                let follower = e.follower.id.to_string();
                let Some(w) = wanted.get(&follower) else {
                    continue;
                };
                let judged = match &w.event_id {
                    Some(id) if by_event.contains(id.as_str()) => e.event_id == id.as_str(),
                    _ => ts <= w.before_ms && found.get(&follower).is_none_or(|(_, t)| ts >= *t),
                };
                if judged {
                    found.insert(follower, (v["follower"].clone(), ts));
                }
            }
        }
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?,
    );
    for (follower, w) in &wanted {
        let Some((profile, ts)) = found.get(follower) else {
            report.no_snapshot += 1;
            continue;
        };
        let mut row = profile.clone();
        if let Value::Object(o) = &mut row {
            o.insert(
                "crawled_at".into(),
                json!(followguard_core::time::format_rfc3339_ms(*ts)),
            );
            o.insert("label".into(), json!(u8::from(w.label)));
            o.insert(
                "group".into(),
                json!(format!("decisions-{}", w.verdict.name())),
            );
            o.insert("decided_by".into(), json!(w.who));
            o.insert("alert_id".into(), json!(w.alert_id));
        }
        serde_json::to_writer(&mut out, &row)?;
        out.write_all(b"\n")?;
        report.rows += 1;
        if w.label {
            report.bots += 1;
        } else {
            report.humans += 1;
        }
    }
    out.flush()?;
    Ok(report)
}

/// `followguard export-training`.
pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let r = export(&a)?;
    eprintln!(
        "export-training: {} decisions ({} unreadable) → {} rows ({} bought, {} people) in {}; {} without a snapshot",
        r.decisions,
        r.unreadable_decisions,
        r.rows,
        r.bots,
        r.humans,
        a.out.display(),
        r.no_snapshot
    );
    Ok(())
}
