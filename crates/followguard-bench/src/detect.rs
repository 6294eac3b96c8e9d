//! `followguard bench-detect`: replays a generated stream through the pipeline and
//! scores the detector against the generator's ground truth — campaign precision and
//! recall by size and speed bucket, time to detect from the 100th bought follow, false
//! alerts per 100k followee-days, and per-follow ROC-AUC / PR-AUC of the model.

use anyhow::Context;
use followguard::config::DetectorArgs;
use followguard::replay::{load_model, run_lines, ReplaySummary};
use followguard_core::alert::AlertStatus;
use followguard_core::event::EventType;
use followguard_core::pipeline::Pipeline;
use followguard_train::generate::{Truth, TruthCampaign};
use followguard_train::model_file::DEFAULT_MODEL_PATH;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// An alert counts for a campaign if it opens on the campaign's followee between the
/// first bought follow and this long after the last one.
pub const MATCH_SLACK_MS: i64 = 24 * 3_600_000;

/// `bench-detect` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchDetectArgs {
    /// Events written by `generate`.
    #[arg(long, env = "FOLLOWGUARD_BENCH_EVENTS")]
    pub events: PathBuf,
    /// Ground truth written by `generate`.
    #[arg(long, env = "FOLLOWGUARD_BENCH_TRUTH")]
    pub truth: PathBuf,
    /// Model file (use a leave-one-vendor-out model for "unseen vendor" figures).
    #[arg(long, env = "FOLLOWGUARD_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Also write the full report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write open alerts that matched no campaign here (JSONL) for inspection.
    #[arg(long)]
    pub false_alerts: Option<PathBuf>,
    #[command(flatten)]
    pub detector: DetectorArgs,
}

/// Recall (and detection delay) of one group of campaigns.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub campaigns: usize,
    pub detected: usize,
    pub recall: f64,
    /// Open alerts matched to campaigns of this group.
    pub true_alerts: usize,
    /// true / (true + all false alerts): conservative, every false alert counts against
    /// every group.
    pub precision: f64,
    /// Delay from the 100th bought follow to the alert (0 when the alert came first).
    pub ttd_median_s: Option<f64>,
    pub ttd_p95_s: Option<f64>,
    /// Share of detected campaigns (with ≥ 100 follows) alerted before their 100th follow.
    pub before_100th: Option<f64>,
    /// Delay from the first bought follow to the alert.
    pub from_start_median_s: Option<f64>,
}

/// The benchmark report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub replay: ReplaySummary,
    pub followees: usize,
    pub days: u32,
    pub followee_days: f64,
    pub open_alerts: usize,
    pub true_alerts: usize,
    pub false_alerts: usize,
    pub false_alerts_on_viral: usize,
    pub false_alerts_on_camouflaged: usize,
    /// Issue #20: false alerts by kind of the followee's hard negative: suggested-list
    /// surge, or neither viral nor surge ("other").
    pub false_alerts_on_surge: usize,
    pub false_alerts_other: usize,
    /// Issue #20: moderation records, those about organic humans (follower ids below the
    /// truth's `bot_id_min`: established humans and newcomers), and their share; follows
    /// whose verdict was withheld (follower too new to judge).
    pub moderation_records: usize,
    pub moderation_organic: usize,
    pub moderation_organic_share: f64,
    pub judgment_withheld: usize,
    pub false_alerts_per_100k_followee_days: f64,
    pub alert_precision: f64,
    pub campaigns_linked: usize,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub follow_suspicious_rate_humans: f64,
    pub follow_recall_bots: f64,
    /// Issue 22: the model's detection threshold and the shares of human and bought
    /// follows the detector counts at it (the flag threshold's are the two above).
    pub detection_threshold: f32,
    pub follow_counted_rate_humans: f64,
    pub follow_counted_bots: f64,
    pub groups: Vec<Bucket>,
    pub by_size: Vec<Bucket>,
    pub by_speed: Vec<Bucket>,
    /// Per campaign: when it was first alerted (None = missed).
    pub campaigns: Vec<CampaignResult>,
}

/// One campaign's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignResult {
    pub campaign: String,
    pub followee_id: String,
    pub size: u32,
    pub speed: String,
    pub resold: bool,
    pub premium: bool,
    pub start_ms: i64,
    pub t100_ms: Option<i64>,
    pub detected_ms: Option<i64>,
}

/// ROC-AUC with ties counted as half (Mann-Whitney U). `None` without both classes.
pub fn roc_auc(scored: &mut [(f32, bool)]) -> Option<f64> {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    // Sum of positive ranks with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let p = scored[i..j].iter().filter(|s| s.1).count() as f64;
        rank_sum += p * avg_rank;
        i = j;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision (area under the precision-recall curve, step-wise, ties grouped).
pub fn pr_auc(scored: &mut [(f32, bool)]) -> Option<f64> {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        let mut new_tp = 0.0;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            if scored[j].1 {
                new_tp += 1.0;
            }
            j += 1;
        }
        tp += new_tp;
        seen += (j - i) as f64;
        ap += (new_tp / pos) * (tp / seen);
        i = j;
    }
    Some(ap)
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

/// Size bucket label.
pub fn size_bucket(size: u32) -> &'static str {
    match size {
        0..=199 => "100-199",
        200..=999 => "200-999",
        1000..=9999 => "1k-10k",
        _ => "10k+",
    }
}

fn duration_days(c: &TruthCampaign) -> f64 {
    ((c.end_ms - c.start_ms) as f64 / 86_400_000.0).max(1.0)
}

/// The "Must show" groups.
pub fn in_fast_1k(c: &TruthCampaign) -> bool {
    c.size >= 1000 && c.end_ms - c.start_ms <= 86_400_000
}

pub fn in_200_or_drip(c: &TruthCampaign) -> bool {
    c.size >= 200 && f64::from(c.size) / duration_days(c) >= 100.0
}

#[derive(Debug, Clone)]
struct OpenRec {
    followee_id: String,
    t_ms: i64,
    json: String,
}

/// Scores alerts against truth.
fn evaluate(truth: &Truth, opens: &[OpenRec]) -> (Vec<Option<i64>>, Vec<bool>) {
    let mut by_followee: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in truth.campaigns.iter().enumerate() {
        by_followee
            .entry(c.followee_id.as_str())
            .or_default()
            .push(i);
    }
    let mut detected_at: Vec<Option<i64>> = vec![None; truth.campaigns.len()];
    let mut alert_true = vec![false; opens.len()];
    for (ai, a) in opens.iter().enumerate() {
        let Some(cs) = by_followee.get(a.followee_id.as_str()) else {
            continue;
        };
        for &ci in cs {
            let c = &truth.campaigns[ci];
            if a.t_ms >= c.start_ms && a.t_ms <= c.end_ms + MATCH_SLACK_MS {
                alert_true[ai] = true;
                let d = &mut detected_at[ci];
                *d = Some(d.map_or(a.t_ms, |x| x.min(a.t_ms)));
            }
        }
    }
    (detected_at, alert_true)
}

fn bucket(
    name: &str,
    truth: &Truth,
    detected_at: &[Option<i64>],
    true_per_campaign: &[usize],
    false_alerts: usize,
    pick: impl Fn(&TruthCampaign) -> bool,
) -> Bucket {
    let mut b = Bucket {
        name: name.to_string(),
        ..Bucket::default()
    };
    let mut ttd = Vec::new();
    let mut from_start = Vec::new();
    let mut before = 0usize;
    let mut with100 = 0usize;
    for (i, c) in truth.campaigns.iter().enumerate() {
        if !pick(c) {
            continue;
        }
        b.campaigns += 1;
        b.true_alerts += true_per_campaign[i];
        if let Some(t) = detected_at[i] {
            b.detected += 1;
            from_start.push((t - c.start_ms) as f64 / 1000.0);
            if let Some(t100) = c.t100_ms {
                with100 += 1;
                if t <= t100 {
                    before += 1;
                }
                ttd.push(((t - t100).max(0)) as f64 / 1000.0);
            }
        }
    }
    ttd.sort_by(f64::total_cmp);
    from_start.sort_by(f64::total_cmp);
    b.recall = if b.campaigns == 0 {
        0.0
    } else {
        b.detected as f64 / b.campaigns as f64
    };
    b.precision = if b.true_alerts + false_alerts == 0 {
        0.0
    } else {
        b.true_alerts as f64 / (b.true_alerts + false_alerts) as f64
    };
    b.ttd_median_s = quantile(&ttd, 0.5);
    b.ttd_p95_s = quantile(&ttd, 0.95);
    b.before_100th = (with100 > 0).then(|| before as f64 / with100 as f64);
    b.from_start_median_s = quantile(&from_start, 0.5);
    b
}

/// Runs `bench-detect`.
pub fn run(a: BenchDetectArgs) -> anyhow::Result<()> {
    let truth: Truth = serde_json::from_reader(std::io::BufReader::new(
        std::fs::File::open(&a.truth).with_context(|| format!("opening {}", a.truth.display()))?,
    ))
    .with_context(|| format!("reading truth {}", a.truth.display()))?;
    let model = load_model(&a.model)?;
    let model_version = model.version().to_string();
    let mut pipeline = Pipeline::new(model, a.detector.pipeline_config()?);
    let input = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(&a.events)
            .with_context(|| format!("opening {}", a.events.display()))?,
    );
    let mut scored: Vec<(f32, bool)> = Vec::new();
    let mut opens: Vec<OpenRec> = Vec::new();
    let mut linked = std::collections::HashSet::new();
    // Issue #20: moderation records about organic humans, withheld verdicts.
    let (mut mod_total, mut mod_organic, mut withheld) = (0usize, 0usize, 0usize);
    let summary = run_lines(
        &mut pipeline,
        input,
        |o| {
            if o.kind == EventType::Follow {
                let bot = o
                    .follower_id
                    .parse::<u64>()
                    .is_ok_and(|id| id >= truth.bot_id_min);
                scored.push((o.score.prob, bot));
            }
            withheld += usize::from(o.judgment_withheld);
            for m in &o.moderation {
                mod_total += 1;
                let organic = m
                    .follower_id
                    .parse::<u64>()
                    .is_ok_and(|id| id < truth.bot_id_min);
                mod_organic += usize::from(organic);
            }
            for al in &o.alerts {
                if let Some(c) = &al.campaign_id {
                    linked.insert(c.clone());
                }
                if al.status == AlertStatus::Open {
                    opens.push(OpenRec {
                        followee_id: al.followee_id.clone(),
                        t_ms: al.event_time_ms,
                        json: serde_json::to_string(al)?,
                    });
                }
            }
            Ok(())
        },
        |s| {
            eprint!(
                "\rbench-detect: {} lines, {} alerts opened",
                s.lines, s.alerts_open
            )
        },
    )?;
    eprintln!();
    let threshold = pipeline.model().threshold();
    let detection_threshold = pipeline.model().detection_threshold();
    let (detected_at, alert_true) = evaluate(&truth, &opens);
    let mut true_per_campaign = vec![0usize; truth.campaigns.len()];
    {
        let mut by_followee: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, c) in truth.campaigns.iter().enumerate() {
            by_followee
                .entry(c.followee_id.as_str())
                .or_default()
                .push(i);
        }
        for (ai, o) in opens.iter().enumerate() {
            if !alert_true[ai] {
                continue;
            }
            if let Some(ci) = by_followee.get(o.followee_id.as_str()).and_then(|cs| {
                cs.iter().copied().find(|&ci| {
                    let c = &truth.campaigns[ci];
                    o.t_ms >= c.start_ms && o.t_ms <= c.end_ms + MATCH_SLACK_MS
                })
            }) {
                true_per_campaign[ci] += 1;
            }
        }
    }
    let false_idx: Vec<usize> = (0..opens.len()).filter(|&i| !alert_true[i]).collect();
    let false_alerts = false_idx.len();
    let viral_followees: std::collections::HashSet<&str> =
        truth.viral.iter().map(|v| v.followee_id.as_str()).collect();
    let false_on_viral = false_idx
        .iter()
        .filter(|&&i| viral_followees.contains(opens[i].followee_id.as_str()))
        .count();
    if let Some(p) = &a.false_alerts {
        let mut s = String::new();
        for &i in &false_idx {
            s.push_str(&opens[i].json);
            s.push('\n');
        }
        std::fs::write(p, s).with_context(|| format!("writing {}", p.display()))?;
    }
    let humans: Vec<&(f32, bool)> = scored.iter().filter(|s| !s.1).collect();
    let bots: Vec<&(f32, bool)> = scored.iter().filter(|s| s.1).collect();
    let share_at = |of: &[&(f32, bool)], t: f32| {
        of.iter().filter(|s| s.0 >= t).count() as f64 / of.len().max(1) as f64
    };
    let (human_flag, bot_flag) = (share_at(&humans, threshold), share_at(&bots, threshold));
    let (human_counted, bot_counted) = (
        share_at(&humans, detection_threshold),
        share_at(&bots, detection_threshold),
    );
    let roc = roc_auc(&mut scored).unwrap_or(f64::NAN);
    let pr = pr_auc(&mut scored).unwrap_or(f64::NAN);
    let followee_days = truth.followees as f64 * f64::from(truth.days);
    let surge_followees: std::collections::HashSet<&str> = truth
        .surges
        .iter()
        .map(|v| v.followee_id.as_str())
        .collect();
    let false_on_surge = false_idx
        .iter()
        .filter(|&&i| surge_followees.contains(opens[i].followee_id.as_str()))
        .count();
    let false_other = false_idx
        .iter()
        .filter(|&&i| {
            let f = opens[i].followee_id.as_str();
            !viral_followees.contains(f) && !surge_followees.contains(f)
        })
        .count();
    let camo_false = false_idx
        .iter()
        .filter(|&&i| !viral_followees.contains(opens[i].followee_id.as_str()))
        .count();
    let mk = |name: &str, pick: &dyn Fn(&TruthCampaign) -> bool| {
        bucket(
            name,
            &truth,
            &detected_at,
            &true_per_campaign,
            false_alerts,
            pick,
        )
    };
    let groups = vec![
        mk("all campaigns", &|_| true),
        mk(">=1000 within 24h", &in_fast_1k),
        mk(">=200 at >=100/day", &in_200_or_drip),
    ];
    // Issue #20: fresh-batch campaigns (only in streams that have them).
    let mut groups = groups;
    if truth.campaigns.iter().any(|c| c.fresh_batch) {
        groups.push(mk("fresh-batch", &|c| c.fresh_batch));
    }
    if truth.campaigns.iter().any(|c| c.fresh_fast) {
        groups.push(mk("fresh-batch fast (<1h old)", &|c| c.fresh_fast));
    }
    let by_size = ["100-199", "200-999", "1k-10k", "10k+"]
        .iter()
        .map(|s| mk(&format!("size {s}"), &|c| size_bucket(c.size) == *s))
        .collect();
    let by_speed = ["minutes", "hours", "days", "drip"]
        .iter()
        .map(|s| mk(&format!("speed {s}"), &|c| c.speed == *s))
        .collect();
    let true_alerts = opens.len() - false_alerts;
    let report = Report {
        model: model_version,
        replay: summary,
        followees: truth.followees,
        days: truth.days,
        followee_days,
        open_alerts: opens.len(),
        true_alerts,
        false_alerts,
        false_alerts_on_viral: false_on_viral,
        false_alerts_on_camouflaged: camo_false,
        false_alerts_on_surge: false_on_surge,
        false_alerts_other: false_other,
        moderation_records: mod_total,
        moderation_organic: mod_organic,
        moderation_organic_share: if mod_total == 0 {
            0.0
        } else {
            mod_organic as f64 / mod_total as f64
        },
        judgment_withheld: withheld,
        false_alerts_per_100k_followee_days: false_alerts as f64 / followee_days * 1e5,
        alert_precision: if opens.is_empty() {
            0.0
        } else {
            true_alerts as f64 / opens.len() as f64
        },
        campaigns_linked: linked.len(),
        roc_auc: roc,
        pr_auc: pr,
        follow_suspicious_rate_humans: human_flag,
        follow_recall_bots: bot_flag,
        detection_threshold,
        follow_counted_rate_humans: human_counted,
        follow_counted_bots: bot_counted,
        groups,
        by_size,
        by_speed,
        campaigns: truth
            .campaigns
            .iter()
            .zip(&detected_at)
            .map(|(c, d)| CampaignResult {
                campaign: c.campaign.clone(),
                followee_id: c.followee_id.clone(),
                size: c.size,
                speed: c.speed.clone(),
                resold: c.resold,
                premium: c.premium,
                start_ms: c.start_ms,
                t100_ms: c.t100_ms,
                detected_ms: *d,
            })
            .collect(),
    };
    println!("{}", report_text(&report));
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.0}"))
}

/// Text rendering of the report (a Markdown table, pasteable into DETECTION.md).
pub fn report_text(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "model {} | {} followees x {} days | {} events, {:.0} events/s\n",
        r.model, r.followees, r.days, r.replay.events, r.replay.events_per_s
    ));
    s.push_str(&format!(
        "per-follow ROC-AUC {:.4}, PR-AUC {:.4}; flagged at threshold: bots {:.3}, humans {:.4}; counted at detection threshold {:.4}: bots {:.3}, humans {:.4}\n",
        r.roc_auc,
        r.pr_auc,
        r.follow_recall_bots,
        r.follow_suspicious_rate_humans,
        r.detection_threshold,
        r.follow_counted_bots,
        r.follow_counted_rate_humans
    ));
    s.push_str(&format!(
        "alerts opened {}: true {}, false {} ({} on viral-spike followees, {} elsewhere) = {:.2} per 100k followee-days; alert precision {:.3}; {} campaign ids linked\n\n",
        r.open_alerts,
        r.true_alerts,
        r.false_alerts,
        r.false_alerts_on_viral,
        r.false_alerts_on_camouflaged,
        r.false_alerts_per_100k_followee_days,
        r.alert_precision,
        r.campaigns_linked
    ));
    // Issue #20: false alerts by kind, organic humans among moderation records.
    s.truncate(s.len() - 1);
    s.push_str(&format!(
        "false alerts by kind: viral {}, surge {}, other {}; moderation records {}: organic humans {} ({:.4}); verdicts withheld (too new) {}\n\n",
        r.false_alerts_on_viral,
        r.false_alerts_on_surge,
        r.false_alerts_other,
        r.moderation_records,
        r.moderation_organic,
        r.moderation_organic_share,
        r.judgment_withheld
    ));
    s.push_str("| campaigns | n | detected | recall | precision | TTD from 100th median s | p95 s | alerted before 100th | from start median s |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for b in r.groups.iter().chain(&r.by_size).chain(&r.by_speed) {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |\n",
            b.name,
            b.campaigns,
            b.detected,
            b.recall,
            b.precision,
            fmt_opt(b.ttd_median_s),
            fmt_opt(b.ttd_p95_s),
            b.before_100th.map_or("-".into(), |x| format!("{x:.2}")),
            fmt_opt(b.from_start_median_s)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computed_example() {
        // positives 0.9, 0.6; negatives 0.7, 0.2: pairs (0.9>0.7, 0.9>0.2, 0.6<0.7, 0.6>0.2) = 3/4
        let mut s = vec![(0.9, true), (0.6, true), (0.7, false), (0.2, false)];
        assert_eq!(roc_auc(&mut s), Some(0.75));
        // AP: ranks 0.9(P) 0.7(N) 0.6(P) 0.2(N): 1/2·1 + 1/2·2/3 = 0.8333
        let ap = pr_auc(&mut s).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // ties count half
        let mut t = vec![(0.5, true), (0.5, false)];
        assert_eq!(roc_auc(&mut t), Some(0.5));
        let mut one_class = vec![(0.5, true)];
        assert_eq!(roc_auc(&mut one_class), None);
    }

    #[test]
    fn must_show_groups() {
        let c = |size, start, end| TruthCampaign {
            campaign: "c".into(),
            followee_id: "1".into(),
            cohort: 0,
            resold: false,
            premium: false,
            size,
            speed: "x".into(),
            start_ms: start,
            end_ms: end,
            t100_ms: None,
            fresh_batch: false,
            fresh_fast: false,
        };
        let day = 86_400_000;
        assert!(in_fast_1k(&c(1000, 0, day)));
        assert!(!in_fast_1k(&c(1000, 0, day + 1)));
        assert!(in_200_or_drip(&c(700, 0, 7 * day)));
        assert!(!in_200_or_drip(&c(690, 0, 7 * day)));
        assert!(in_200_or_drip(&c(200, 0, 3_600_000)));
        assert!(!in_200_or_drip(&c(199, 0, 3_600_000)));
    }

    #[test]
    fn alerts_match_campaigns_on_followee_and_time() {
        let truth = Truth {
            generator: "t".into(),
            seed: 0,
            profiles: "builtin".into(),
            start_ms: 0,
            end_ms: 10,
            days: 1,
            followees: 2,
            bot_id_min: 0,
            events: 0,
            organic_follows: 0,
            bought_follows: 0,
            camouflage_follows: 0,
            unfollows: 0,
            campaigns: vec![TruthCampaign {
                campaign: "c".into(),
                followee_id: "a".into(),
                cohort: 0,
                resold: false,
                premium: false,
                size: 100,
                speed: "minutes".into(),
                start_ms: 1000,
                end_ms: 2000,
                t100_ms: Some(2000),
                fresh_batch: false,
                fresh_fast: false,
            }],
            viral: vec![],
            newcomers: 0,
            newcomer_follows: 0,
            surges: vec![],
        };
        let rec = |f: &str, t| OpenRec {
            followee_id: f.into(),
            t_ms: t,
            json: String::new(),
        };
        let opens = vec![
            rec("a", 500),
            rec("a", 1500),
            rec("b", 1500),
            rec("a", 2000 + MATCH_SLACK_MS + 1),
        ];
        let (det, ok) = evaluate(&truth, &opens);
        assert_eq!(det, vec![Some(1500)]);
        assert_eq!(ok, vec![false, true, false, false]);
    }
}
