//! Evaluation metrics for binary scores: ROC-AUC, PR-AUC (average precision), precision /
//! recall / F1 at a threshold, precision at recall 0.90, expected calibration error and
//! the confusion matrix, plus per-group breakdowns. Pure functions over slices.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything `followguard eval` reports for one set of scores.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub n: usize,
    pub bots: usize,
    pub humans: usize,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub false_positive_rate: f64,
    pub precision_at_recall_90: Option<f64>,
    /// Issue 24: the best recall at a cut flagging at most 1 % of the humans.
    #[serde(default)]
    pub recall_at_fpr_1pct: Option<f64>,
    /// Expected calibration error, 10 equal-width bins.
    pub ece: f64,
    pub confusion: Confusion,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Report {
    pub fn compute(probs: &[f32], labels: &[bool], threshold: f32) -> Report {
        let c = confusion(probs, labels, threshold);
        let precision = ratio(c.tp, c.tp + c.fp);
        let recall = ratio(c.tp, c.tp + c.fn_);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        let bots = labels.iter().filter(|&&l| l).count();
        Report {
            n: labels.len(),
            bots,
            humans: labels.len() - bots,
            roc_auc: roc_auc(probs, labels),
            pr_auc: pr_auc(probs, labels),
            threshold,
            precision,
            recall,
            f1,
            false_positive_rate: ratio(c.fp, c.fp + c.tn),
            precision_at_recall_90: precision_at_recall(probs, labels, 0.90),
            recall_at_fpr_1pct: recall_at_fpr(probs, labels, 0.01),
            ece: ece(probs, labels, 10),
            confusion: c,
        }
    }
}

/// Per-group view: share flagged at the threshold (recall for a bot group, FPR for a
/// human group), mean probability, and the group's ROC-AUC against all humans given.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupReport {
    pub n: usize,
    pub bots: usize,
    pub flagged_rate: f64,
    pub mean_prob: f64,
    /// For a bot group: ROC-AUC of this group against all humans in the evaluation.
    pub roc_auc_vs_humans: Option<f64>,
}

pub fn by_group(
    probs: &[f32],
    labels: &[bool],
    groups: &[String],
    threshold: f32,
) -> BTreeMap<String, GroupReport> {
    let mut out = BTreeMap::new();
    let mut names: Vec<&String> = groups.iter().collect();
    names.sort();
    names.dedup();
    for g in names {
        let idx: Vec<usize> = (0..probs.len()).filter(|&i| &groups[i] == g).collect();
        let n = idx.len();
        let bots = idx.iter().filter(|&&i| labels[i]).count();
        let flagged = idx.iter().filter(|&&i| probs[i] >= threshold).count();
        let mean = idx.iter().map(|&i| f64::from(probs[i])).sum::<f64>() / n.max(1) as f64;
        let auc = (bots > 0).then(|| {
            let sel: Vec<usize> = (0..probs.len())
                .filter(|&i| !labels[i] || &groups[i] == g)
                .collect();
            let p: Vec<f32> = sel.iter().map(|&i| probs[i]).collect();
            let l: Vec<bool> = sel.iter().map(|&i| labels[i]).collect();
            roc_auc(&p, &l)
        });
        out.insert(
            g.clone(),
            GroupReport {
                n,
                bots,
                flagged_rate: ratio(flagged, n),
                mean_prob: mean,
                roc_auc_vs_humans: auc.flatten(),
            },
        );
    }
    out
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

pub fn confusion(probs: &[f32], labels: &[bool], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for (&p, &l) in probs.iter().zip(labels) {
        match (p >= threshold, l) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// ROC-AUC by the rank-sum (Mann–Whitney) formula with average ranks for ties.
/// None when one class is absent.
pub fn roc_auc(probs: &[f32], labels: &[bool]) -> Option<f64> {
    let n = probs.len().min(labels.len());
    let pos = labels[..n].iter().filter(|&&l| l).count();
    let neg = n - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && probs[idx[j + 1]] == probs[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg;
            }
        }
        i = j + 1;
    }
    let (p, q) = (pos as f64, neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * q))
}

/// Operating points from the highest score down, one per distinct score:
/// (true positives, false positives) flagged at that score.
fn operating_points(probs: &[f32], labels: &[bool]) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..probs.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut pts = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    let mut i = 0;
    while i < idx.len() {
        let s = probs[idx[i]];
        while i < idx.len() && probs[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        pts.push((tp, fp));
    }
    pts
}

/// Average precision: Σ (recall step) × precision at each distinct score (the
/// step-wise PR-AUC scikit-learn reports). None without positives.
pub fn pr_auc(probs: &[f32], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_tp = 0;
    for (tp, fp) in operating_points(probs, labels) {
        if tp > prev_tp {
            ap += (tp - prev_tp) as f64 / pos as f64 * (tp as f64 / (tp + fp) as f64);
        }
        prev_tp = tp;
    }
    Some(ap)
}

/// Best precision among thresholds reaching at least `min_recall`.
pub fn precision_at_recall(probs: &[f32], labels: &[bool], min_recall: f64) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    operating_points(probs, labels)
        .into_iter()
        .filter(|&(tp, _)| tp as f64 / pos as f64 >= min_recall)
        .map(|(tp, fp)| tp as f64 / (tp + fp) as f64)
        .reduce(f64::max)
}

/// The best recall at a cut whose false-positive rate is at most `max_fpr`.
pub fn recall_at_fpr(probs: &[f32], labels: &[bool], max_fpr: f64) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    operating_points(probs, labels)
        .into_iter()
        .filter(|&(_, fp)| fp as f64 / neg as f64 <= max_fpr)
        .map(|(tp, _)| tp as f64 / pos as f64)
        .reduce(f64::max)
        .or(Some(0.0))
}

/// Expected calibration error with `bins` equal-width probability bins:
/// Σ_b (n_b / n) · |mean prob_b − bot fraction_b|.
pub fn ece(probs: &[f32], labels: &[bool], bins: usize) -> f64 {
    let n = probs.len().min(labels.len());
    if n == 0 || bins == 0 {
        return 0.0;
    }
    let mut sum_p = vec![0.0f64; bins];
    let mut sum_y = vec![0.0f64; bins];
    let mut cnt = vec![0usize; bins];
    for (&p, &l) in probs.iter().zip(labels) {
        let b = ((f64::from(p.clamp(0.0, 1.0)) * bins as f64) as usize).min(bins - 1);
        sum_p[b] += f64::from(p);
        sum_y[b] += f64::from(u8::from(l));
        cnt[b] += 1;
    }
    (0..bins)
        .filter(|&b| cnt[b] > 0)
        .map(|b| (sum_p[b] - sum_y[b]).abs() / n as f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-computed example: scores 0.95(bot) 0.85(human) 0.75(bot) 0.35(human) 0.25(bot)
    // 0.15(human); mid-bin values so f32 rounding cannot move a row across a bin edge.
    const P: [f32; 6] = [0.95, 0.85, 0.75, 0.35, 0.25, 0.15];
    const L: [bool; 6] = [true, false, true, false, true, false];

    #[test]
    fn roc_auc_by_hand() {
        // Pairs (bot, human) with bot ranked higher: 0.95 beats 3, 0.75 beats 2, 0.25 beats 1 → 6/9.
        assert!((roc_auc(&P, &L).unwrap() - 6.0 / 9.0).abs() < 1e-12);
        // A tie counts one half.
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.5], &[true]), None);
    }

    #[test]
    fn pr_auc_by_hand() {
        // Bots found at ranks 1, 3, 5: AP = (1/1 + 2/3 + 3/5) / 3.
        let want = (1.0 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0;
        assert!((pr_auc(&P, &L).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn precision_at_recall_by_hand() {
        // Recall ≥ 0.9 needs all 3 bots: cut at 0.25 flags 5 rows, 3 bots → 0.6.
        assert!((precision_at_recall(&P, &L, 0.9).unwrap() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn recall_at_fpr_by_hand() {
        // No human may be flagged at 1 %: cut above 0.85 flags one bot of three.
        assert!((recall_at_fpr(&P, &L, 0.01).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // One human of three (33 %) allowed: cut at 0.75 flags two bots.
        assert!((recall_at_fpr(&P, &L, 0.34).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn ece_by_hand() {
        // One row per bin: |0.95−1| + |0.85−0| + |0.75−1| + |0.35−0| + |0.25−1| + |0.15−0|
        // = 0.05 + 0.85 + 0.25 + 0.35 + 0.75 + 0.15 = 2.4, over 6 rows → 0.4.
        assert!((ece(&P, &L, 10) - 0.4).abs() < 1e-6);
        // Perfectly calibrated within one bin: two rows at 0.55, one bot → |1.1 − 1| / 2.
        assert!((ece(&[0.55, 0.55], &[true, false], 10) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn report_at_threshold() {
        let r = Report::compute(&P, &L, 0.5);
        assert_eq!(
            r.confusion,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        assert!((r.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.false_positive_rate - 1.0 / 3.0).abs() < 1e-12);
        let groups: Vec<String> = ["a", "h", "a", "h", "b", "h"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let g = by_group(&P, &L, &groups, 0.5);
        assert_eq!(g["a"].flagged_rate, 1.0);
        assert_eq!(g["b"].flagged_rate, 0.0);
        // Group b's only bot (0.25) beats one of three humans.
        assert!((g["b"].roc_auc_vs_humans.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((g["h"].flagged_rate - 1.0 / 3.0).abs() < 1e-12);
    }
}
