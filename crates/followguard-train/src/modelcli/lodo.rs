//! `followguard lodo`: the leave-one-dataset-out protocol, beside leave-one-vendor-out.
//!
//! Every labelled population under the data directory is one *set* (a human population or
//! a bot set; a hand-labelled file holding both gives one of each). A training *recipe*
//! names the sets a model is trained on. Then:
//!
//! - **Human folds**: each human population H is held out in turn. A model trained on the
//!   recipe without H scores H: false-positive rate at that model's own threshold, ECE and
//!   mean probability of H. For each bought-follower vendor V of the recipe, a model trained
//!   without H *and* without V ranks V against H (ROC-AUC, recall at 1 % FPR on H): an unseen
//!   vendor against unseen humans.
//! - **Bot folds**: each bot set B is scored by a model trained on the recipe without B and
//!   without a 20 % holdout (by hashed id) of every human population; B is ranked against
//!   those holdout humans (ROC-AUC, recall at 1 % FPR), flagged at the fold's threshold, and
//!   the ECE of B plus the holdout humans is reported. For FSF / INT / TWT this is
//!   leave-one-vendor-out with every human population in the reference.
//!
//! A set outside the recipe is never trained on, so its fold model is the recipe's own
//! (minus the holdout humans for bot folds); models are shared between folds that leave out
//! the same rows.

use super::{progress_bar, score_rows};
use crate::dataset::{self, Columns, DataSpec, Row};
use crate::eval;
use crate::train::{self, TrainParams};
use followguard_core::model::Model;
use std::collections::BTreeMap;
use std::path::Path;

/// One labelled population.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// Short key used on the command line and in the tables (`E13`, `gilani-h`, …).
    pub key: String,
    /// true = bot set.
    pub label: bool,
    /// A weak label (cresci-stock-2018 "humans" only means *not flagged* by that study):
    /// reported, never counted against the bars.
    pub weak: bool,
    /// Where it comes from (file, group), for the table's notes.
    pub source: String,
    pub rows: Vec<Row>,
}

/// The human populations with a trustworthy label, in table order.
pub const CLEAN_HUMANS: [&str; 5] = ["E13", "TFP", "g17", "gilani-h", "feedback-h"];
/// Every set, in table order: humans, then bots.
pub const ALL_HUMANS: [&str; 6] = ["E13", "TFP", "g17", "gilani-h", "feedback-h", "stock-h"];
pub const ALL_BOTS: [&str; 12] = [
    "FSF",
    "INT",
    "TWT",
    "sb1",
    "sb2",
    "sb3",
    "gilani-b",
    "feedback-b",
    "pronbots",
    "botwiki",
    "political",
    "stock-b",
];
/// The bought-follower vendors (the product's positive class).
pub const VENDORS: [&str; 3] = ["FSF", "INT", "TWT"];
/// The shipped default's training recipe (unchanged by issue 22: every added set was
/// measured and none improved both the unseen-vendor and the unseen-human tables; the
/// gilani-2017 and botometer-feedback humans stay fully unseen, as evaluation populations).
pub const SHIPPED_RECIPE: [&str; 6] = ["E13", "TFP", "g17", "FSF", "INT", "TWT"];

/// The data-set file and the `GROUP:…:PATH` spec that reproduces a set in `train --data`.
pub fn train_spec(key: &str, dir: &Path) -> Option<String> {
    let d = dir.display();
    let c15 = format!("{d}/cresci-2015/all_users_labeled.csv");
    let br = |f: &str| format!("{d}/bot-repository/{f}.csv");
    Some(match key {
        // One file holds all five groups (its `dataset` column names them).
        "E13" | "TFP" | "FSF" | "INT" | "TWT" => c15,
        "g17" => format!("genuine_2017:0:{d}/cresci-2017/genuine_accounts.csv"),
        "sb1" | "sb2" | "sb3" => {
            let n = &key[2..];
            format!("social_spambots_{n}:1:{d}/cresci-2017/social_spambots_{n}.csv")
        }
        "gilani-h" => format!("gilani-2017:human:{}", br("gilani-2017")),
        "gilani-b" => format!("gilani-2017:bot:{}", br("gilani-2017")),
        "feedback-h" => format!(
            "botometer-feedback-2019:human:{}",
            br("botometer-feedback-2019")
        ),
        "feedback-b" => format!(
            "botometer-feedback-2019:bot:{}",
            br("botometer-feedback-2019")
        ),
        "stock-h" => format!("cresci-stock-2018:human:{}", br("cresci-stock-2018")),
        "stock-b" => format!("cresci-stock-2018:bot:{}", br("cresci-stock-2018")),
        "pronbots" => format!("pronbots-2019:1:{}", br("pronbots-2019")),
        "botwiki" => format!("botwiki-2019:1:{}", br("botwiki-2019")),
        "political" => format!("political-bots-2019:1:{}", br("political-bots-2019")),
        _ => return None,
    })
}

/// Loads every set under `dir`. The cresci-2015 file is split by its group column; the
/// E13 / TFP rows of the file spec are filtered by group after loading.
pub fn load_sets(dir: &Path, cols: &Columns) -> anyhow::Result<Vec<LabelledSet>> {
    let mut out = Vec::new();
    let c15 = dataset::load_all(
        &[DataSpec {
            path: dir.join("cresci-2015/all_users_labeled.csv"),
            ..DataSpec::default()
        }],
        cols,
    )?;
    for key in ["E13", "TFP", "FSF", "INT", "TWT"] {
        let rows: Vec<Row> = c15.iter().filter(|r| r.group == key).cloned().collect();
        out.push(LabelledSet {
            key: key.into(),
            label: VENDORS.contains(&key),
            weak: false,
            source: format!("cresci-2015 {key}"),
            rows,
        });
    }
    for key in ALL_HUMANS.iter().chain(&ALL_BOTS) {
        if out.iter().any(|s| s.key == *key) {
            continue;
        }
        let Some(spec) = train_spec(key, dir) else {
            continue;
        };
        let spec: DataSpec = spec.parse().map_err(anyhow::Error::msg)?;
        let rows = dataset::load_all(std::slice::from_ref(&spec), cols)?;
        let label = ALL_BOTS.contains(key);
        out.push(LabelledSet {
            key: key.to_string(),
            label,
            weak: *key == "stock-h",
            source: format!(
                "{} {}",
                spec.path
                    .file_stem()
                    .map_or(String::new(), |s| s.to_string_lossy().into_owned()),
                if label { "bots" } else { "humans" }
            ),
            rows,
        });
    }
    Ok(out)
}

/// One human fold's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HumanFold {
    pub set: String,
    pub weak: bool,
    pub n: usize,
    /// Threshold of the model trained without this population.
    pub threshold: f32,
    /// Share flagged at that threshold.
    pub fpr: f64,
    /// Issue 22: that model's detection threshold (the burst detector's operating point)
    /// and the share of the population it counts as suspicious.
    pub detection_threshold: f32,
    pub detection_fpr: f64,
    pub ece: f64,
    pub mean_prob: f64,
    /// Vendor → ROC-AUC of the vendor against this population, both unseen.
    pub vendor_roc_auc: BTreeMap<String, Option<f64>>,
    /// Vendor → recall at the cut that flags 1 % of this population, both unseen.
    pub vendor_recall_at_fpr_1pct: BTreeMap<String, Option<f64>>,
}

/// One bot fold's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BotFold {
    pub set: String,
    pub in_recipe: bool,
    pub n: usize,
    pub reference_humans: usize,
    pub threshold: f32,
    pub roc_auc: Option<f64>,
    pub recall_at_fpr_1pct: Option<f64>,
    /// Share of the set flagged at the fold's threshold.
    pub recall: f64,
    /// Share of the holdout humans flagged at the fold's threshold.
    pub holdout_fpr: f64,
    /// ECE over the set plus the holdout humans.
    pub ece: f64,
    /// Holdout humans per population: share flagged at the fold's threshold.
    pub holdout_fpr_by_population: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LodoResult {
    pub recipe: Vec<String>,
    pub humans: Vec<HumanFold>,
    pub bots: Vec<BotFold>,
}

/// Trains (or reuses) the model on `recipe` minus the `excluded` sets, minus the holdout
/// humans when `holdout` is set.
struct Trainer<'a> {
    sets: &'a [LabelledSet],
    recipe: Vec<String>,
    params: TrainParams,
    holdout: Option<f64>,
    cache: BTreeMap<String, Model>,
}

impl Trainer<'_> {
    fn model(&mut self, excluded: &[&str], holdout: bool) -> anyhow::Result<Model> {
        let mut used: Vec<&str> = self
            .recipe
            .iter()
            .map(String::as_str)
            .filter(|k| !excluded.contains(k))
            .collect();
        used.sort_unstable();
        let key = format!("{}|{holdout}", used.join(","));
        if let Some(m) = self.cache.get(&key) {
            return Ok(m.clone());
        }
        let mut rows = Vec::new();
        for s in self.sets.iter().filter(|s| used.contains(&s.key.as_str())) {
            for r in &s.rows {
                let held = holdout
                    && !s.label
                    && self
                        .holdout
                        .is_some_and(|f| dataset::in_holdout(&r.profile.id, self.params.seed, f));
                if !held {
                    rows.push(r.clone());
                }
            }
        }
        let label = format!(
            "lodo [{}]{}",
            used.join(","),
            if holdout { " −holdout" } else { "" }
        );
        let params = TrainParams {
            model_version: "fg-rf-lodo".into(),
            ..self.params.clone()
        };
        let m = train::train(&rows, vec![label.clone()], &params, progress_bar(&label))?.model;
        self.cache.insert(key, m.clone());
        Ok(m)
    }
}

fn set<'a>(sets: &'a [LabelledSet], key: &str) -> anyhow::Result<&'a LabelledSet> {
    sets.iter()
        .find(|s| s.key == key)
        .ok_or_else(|| anyhow::anyhow!("unknown data set {key:?}"))
}

/// Runs the protocol.
pub fn lodo(
    sets: &[LabelledSet],
    recipe: &[String],
    human_sets: &[String],
    bot_sets: &[String],
    holdout: f64,
    params: &TrainParams,
) -> anyhow::Result<LodoResult> {
    for k in recipe.iter().chain(human_sets).chain(bot_sets) {
        set(sets, k)?;
    }
    let mut t = Trainer {
        sets,
        recipe: recipe.to_vec(),
        params: params.clone(),
        holdout: Some(holdout),
        cache: BTreeMap::new(),
    };
    let mut humans = Vec::new();
    for h in human_sets {
        let hs = set(sets, h)?;
        let m = t.model(&[h], false)?;
        let p = score_rows(&m, &hs.rows);
        let neg = vec![false; p.len()];
        let share_at =
            |t: f32| p.iter().filter(|&&x| x >= t).count() as f64 / p.len().max(1) as f64;
        let mut vendor_roc_auc = BTreeMap::new();
        let mut vendor_recall = BTreeMap::new();
        for v in VENDORS.iter().filter(|v| recipe.iter().any(|k| k == *v)) {
            let mv = t.model(&[h, v], false)?;
            let mut probs = score_rows(&mv, &hs.rows);
            let mut labels = neg.clone();
            let vp = score_rows(&mv, &set(sets, v)?.rows);
            labels.extend(std::iter::repeat_n(true, vp.len()));
            probs.extend(vp);
            vendor_roc_auc.insert(v.to_string(), eval::roc_auc(&probs, &labels));
            vendor_recall.insert(v.to_string(), eval::recall_at_fpr(&probs, &labels, 0.01));
        }
        humans.push(HumanFold {
            set: h.clone(),
            weak: hs.weak,
            n: p.len(),
            threshold: m.threshold(),
            fpr: share_at(m.threshold()),
            detection_threshold: m.detection_threshold(),
            detection_fpr: share_at(m.detection_threshold()),
            ece: eval::ece(&p, &neg, 10),
            mean_prob: p.iter().map(|&x| f64::from(x)).sum::<f64>() / p.len().max(1) as f64,
            vendor_roc_auc,
            vendor_recall_at_fpr_1pct: vendor_recall,
        });
    }
    // Reference humans for the bot folds: the holdout share of every clean population.
    let reference: Vec<(&str, &Row)> = CLEAN_HUMANS
        .iter()
        .filter_map(|k| set(sets, k).ok())
        .flat_map(|s| {
            s.rows
                .iter()
                .filter(|r| dataset::in_holdout(&r.profile.id, params.seed, holdout))
                .map(move |r| (s.key.as_str(), r))
        })
        .collect();
    let ref_rows: Vec<Row> = reference.iter().map(|(_, r)| (*r).clone()).collect();
    let mut bots = Vec::new();
    for b in bot_sets {
        let bs = set(sets, b)?;
        let m = t.model(&[b], true)?;
        let hp = score_rows(&m, &ref_rows);
        let bp = score_rows(&m, &bs.rows);
        let mut probs = hp.clone();
        probs.extend(&bp);
        let mut labels = vec![false; hp.len()];
        labels.extend(std::iter::repeat_n(true, bp.len()));
        let th = m.threshold();
        let mut by_pop = BTreeMap::new();
        for k in CLEAN_HUMANS {
            let idx: Vec<usize> = (0..reference.len())
                .filter(|&i| reference[i].0 == k)
                .collect();
            if !idx.is_empty() {
                let f = idx.iter().filter(|&&i| hp[i] >= th).count();
                by_pop.insert(k.to_string(), f as f64 / idx.len() as f64);
            }
        }
        bots.push(BotFold {
            set: b.clone(),
            in_recipe: recipe.contains(b),
            n: bp.len(),
            reference_humans: hp.len(),
            threshold: th,
            roc_auc: eval::roc_auc(&probs, &labels),
            recall_at_fpr_1pct: eval::recall_at_fpr(&probs, &labels, 0.01),
            recall: bp.iter().filter(|&&x| x >= th).count() as f64 / bp.len().max(1) as f64,
            holdout_fpr: hp.iter().filter(|&&x| x >= th).count() as f64 / hp.len().max(1) as f64,
            ece: eval::ece(&probs, &labels, 10),
            holdout_fpr_by_population: by_pop,
        });
    }
    Ok(LodoResult {
        recipe: recipe.to_vec(),
        humans,
        bots,
    })
}

/// The two tables as text (the model card's layout).
pub fn render(r: &LodoResult) -> String {
    use std::fmt::Write;
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let mut s = String::new();
    let _ = writeln!(s, "recipe: {}", r.recipe.join(","));
    let vendors: Vec<String> = r
        .humans
        .first()
        .map(|h| h.vendor_roc_auc.keys().cloned().collect())
        .unwrap_or_default();
    let _ = write!(
        s,
        "{:<12} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "held-out H", "n", "thresh", "FPR", "det-th", "det-FPR", "ECE", "mean_p"
    );
    for v in &vendors {
        let _ = write!(s, " {:>9} {:>9}", format!("AUC {v}"), format!("R@1% {v}"));
    }
    let _ = writeln!(s);
    for h in &r.humans {
        let _ = write!(
            s,
            "{:<12} {:>6} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4}",
            if h.weak {
                format!("{} (weak)", h.set)
            } else {
                h.set.clone()
            },
            h.n,
            h.threshold,
            h.fpr,
            h.detection_threshold,
            h.detection_fpr,
            h.ece,
            h.mean_prob
        );
        for v in &vendors {
            let _ = write!(
                s,
                " {:>9} {:>9}",
                f(h.vendor_roc_auc.get(v).copied().flatten()),
                f(h.vendor_recall_at_fpr_1pct.get(v).copied().flatten())
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "{:<12} {:>6} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7}  holdout FPR by population",
        "held-out B", "n", "train", "thresh", "ROC-AUC", "R@1%FPR", "recall", "hold-FPR", "ECE"
    );
    for b in &r.bots {
        let _ = writeln!(
            s,
            "{:<12} {:>6} {:>6} {:>7.4} {:>8} {:>8} {:>8.4} {:>8.4} {:>7.4}  {}",
            b.set,
            b.n,
            if b.in_recipe { "yes" } else { "no" },
            b.threshold,
            f(b.roc_auc),
            f(b.recall_at_fpr_1pct),
            b.recall,
            b.holdout_fpr,
            b.ece,
            b.holdout_fpr_by_population
                .iter()
                .map(|(k, v)| format!("{k}={v:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    s
}
