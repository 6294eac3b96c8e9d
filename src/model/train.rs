//! Training: bagged linfa-trees decision trees (our own bootstrap and per-tree feature
//! subsampling), flattened, leaf values recomputed through the flattened trees, and an
//! isotonic calibration fitted on out-of-bag votes.
//!
//! Why recompute leaf values: linfa-trees sends `x <= split` left when fitting but
//! `x < split` when predicting, and its leaves hold only a majority class. Passing the
//! in-bag rows through *our* flattened trees gives the exact class frequency of every
//! node under the rule serving uses, which is both the probability estimate and the
//! per-node value that Saabas reason contributions need.

use super::Linear;
use super::{
    eval, Calibration, Forest, GroupCount, Model, ModelFile, TrainingSummary, Tree, FORMAT,
    FORMAT_VERSION,
};
use crate::dataset::Row;
use crate::features::{self, NameModel, FEATURE_NAMES, N_FEATURES, N_LINEAR};
use linfa::prelude::*;
use linfa_trees::{DecisionTree, SplitQuality, TreeNode};
use ndarray::{Array1, Array2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Training hyper-parameters (recorded in the model file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainParams {
    pub n_trees: usize,
    pub max_depth: usize,
    /// Minimum (bootstrap-weighted) rows in a leaf: the main regulariser.
    pub min_leaf: f32,
    /// Fraction of features each tree may split on (decorrelates trees, and stops the
    /// forest leaning on any single feature everywhere).
    pub feature_frac: f32,
    /// Operating threshold is the lowest calibrated probability whose out-of-bag
    /// false-positive rate on humans is at most this.
    pub target_fpr: f32,
    /// The threshold is never set below this floor. The operating point is a policy
    /// choice: out-of-bag, humans sit near 0 and bots near 1, but an unseen vendor's bots
    /// score lower, so a threshold well under 0.5 buys recall on new vendors at a
    /// measured false-positive cost (models/MODEL_CARD.md).
    pub min_threshold: f32,
    /// Weight of the forest vote in the raw score (the rest goes to the linear part).
    /// Trees alone carve vendor-specific regions; the smooth linear part carries the
    /// ratio signals to unseen vendors (see models/MODEL_CARD.md).
    pub blend: f32,
    /// L2 penalty of the logistic regression on standardised features.
    pub linear_alpha: f64,
    pub seed: u64,
    pub model_version: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            n_trees: 100,
            max_depth: 10,
            min_leaf: 3.0,
            feature_frac: 0.6,
            target_fpr: 0.03,
            min_threshold: 0.1,
            blend: 0.5,
            linear_alpha: 10.0,
            seed: 42,
            model_version: "fg-rf-dev".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training data needs both bots and humans (got {bots} bots, {humans} humans)")]
    OneClass { bots: usize, humans: usize },
    #[error("bad training parameter: {0}")]
    Param(String),
    #[error("linfa decision tree fit failed: {0}")]
    Fit(String),
    #[error("{0}")]
    Model(#[from] super::ModelError),
}

/// Result of training: the model and its out-of-bag calibrated probabilities.
pub struct Trained {
    pub model: Model,
    /// Per training row: calibrated out-of-bag probability (None if the row was in every
    /// bootstrap sample).
    pub oob_prob: Vec<Option<f32>>,
}

/// Number of folds for cross-fitting the screen-name model on training rows.
const NAME_FOLDS: usize = 5;

/// Trains a model. `progress(done, total)` is called after each tree.
pub fn train(
    rows: &[Row],
    data: Vec<String>,
    params: &TrainParams,
    mut progress: impl FnMut(usize, usize),
) -> Result<Trained, TrainError> {
    let bots = rows.iter().filter(|r| r.label).count();
    let humans = rows.len() - bots;
    if bots == 0 || humans == 0 {
        return Err(TrainError::OneClass { bots, humans });
    }
    if params.n_trees == 0 || params.max_depth == 0 {
        return Err(TrainError::Param(
            "n_trees and max_depth must be ≥ 1".into(),
        ));
    }
    if !(params.feature_frac > 0.0 && params.feature_frac <= 1.0) {
        return Err(TrainError::Param("feature_frac must be in (0, 1]".into()));
    }
    if !(0.0..=1.0).contains(&params.blend) {
        return Err(TrainError::Param("blend must be in [0, 1]".into()));
    }
    let names = NameModel::fit(
        rows.iter()
            .filter(|r| !r.label)
            .map(|r| &*r.profile.screen_name),
    );
    let x = cross_fitted_features(rows);
    let y: Vec<bool> = rows.iter().map(|r| r.label).collect();
    let n = rows.len();

    let mut trees = Vec::with_capacity(params.n_trees);
    let mut oob_sum = vec![0.0f64; n];
    let mut oob_n = vec![0u32; n];
    let k = ((params.feature_frac * N_FEATURES as f32).round() as usize).clamp(1, N_FEATURES);
    for t in 0..params.n_trees {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed.wrapping_add(t as u64 * 7919));
        let mut mult = vec![0u32; n];
        for _ in 0..n {
            mult[rng.gen_range(0..n)] += 1;
        }
        let mut feats: Vec<usize> = (0..N_FEATURES).collect();
        feats.shuffle(&mut rng);
        feats.truncate(k);
        feats.sort_unstable();
        let tree = fit_tree(&x, &y, &mult, &feats, params)?;
        for i in 0..n {
            if mult[i] == 0 {
                oob_sum[i] += f64::from(leaf_value(&tree, &x[i]));
                oob_n[i] += 1;
            }
        }
        trees.push(tree);
        progress(t + 1, params.n_trees);
    }

    // Linear part: fitted on all rows for serving; for calibration each row gets the
    // prediction of a fit that did not see it (5-fold), matching the forest's out-of-bag
    // vote, so the calibration map is learned on data neither part trained on.
    let linear = fit_linear(&x, &y, |_| true, params.linear_alpha)?;
    let mut lin_oof = vec![0.0f32; n];
    for f in 0..NAME_FOLDS {
        let fold = fit_linear(&x, &y, |i| i % NAME_FOLDS != f, params.linear_alpha)?;
        for i in (f..n).step_by(NAME_FOLDS) {
            lin_oof[i] = sigmoid(fold.logit(&x[i]));
        }
    }
    let wl = 1.0 - params.blend;
    let oob_raw: Vec<Option<f32>> = (0..n)
        .map(|i| {
            (oob_n[i] > 0)
                .then(|| params.blend * (oob_sum[i] / f64::from(oob_n[i])) as f32 + wl * lin_oof[i])
        })
        .collect();
    let (cal_x, cal_y): (Vec<f32>, Vec<bool>) = oob_raw
        .iter()
        .zip(&y)
        .filter_map(|(p, &l)| p.map(|p| (p, l)))
        .unzip();
    let calibration = isotonic(&cal_x, &cal_y);
    let oob_prob: Vec<Option<f32>> = oob_raw
        .iter()
        .map(|p| p.map(|p| calibration.apply(p)))
        .collect();
    let (probs, labels): (Vec<f32>, Vec<bool>) = oob_prob
        .iter()
        .zip(&y)
        .filter_map(|(p, &l)| p.map(|p| (p, l)))
        .unzip();
    let threshold = pick_threshold(&probs, &labels, params.target_fpr, params.min_threshold);
    let oob_report = eval::Report::compute(&probs, &labels, threshold);

    let mut groups = std::collections::BTreeMap::<String, GroupCount>::new();
    for r in rows {
        let g = groups.entry(r.group.clone()).or_default();
        if r.label {
            g.bot += 1;
        } else {
            g.human += 1;
        }
    }
    let file = ModelFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        model_version: params.model_version.clone(),
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        threshold,
        calibration,
        name_model: names,
        forest: Forest { trees },
        blend: params.blend,
        linear,
        training: TrainingSummary {
            data,
            groups,
            rows: n,
            params: serde_json::to_value(params).unwrap_or_default(),
        },
        evaluation: serde_json::json!({ "out_of_bag": oob_report }),
    };
    // Hash of the serialised envelope, so an in-memory model reports the sha256 its
    // saved file will have.
    let bytes = serde_json::to_vec(&file).unwrap_or_default();
    let sha = super::hex(&sha2::Sha256::digest(&bytes));
    let model = Model::from_file(file, sha, "<trained in memory>")?;
    Ok(Trained { model, oob_prob })
}

use sha2::Digest;

/// Features of the training rows, with the screen-name model cross-fitted: each row's
/// bigram score comes from a table fitted on the humans of the *other* folds. Without
/// this, training humans look more typical than unseen humans ever will, and the trees
/// learn a gap that does not exist at serving time.
fn cross_fitted_features(rows: &[Row]) -> Vec<[f32; N_FEATURES]> {
    let fold_models: Vec<NameModel> = (0..NAME_FOLDS)
        .map(|f| {
            NameModel::fit(
                rows.iter()
                    .enumerate()
                    .filter(|(i, r)| !r.label && i % NAME_FOLDS != f)
                    .map(|(_, r)| &*r.profile.screen_name),
            )
        })
        .collect();
    rows.iter()
        .enumerate()
        .map(|(i, r)| features::extract(&r.profile, r.now_ms, &fold_models[i % NAME_FOLDS]))
        .collect()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Fits the logistic regression (linfa-logistic, L2) on the first `N_LINEAR` features of
/// the selected rows, standardised so the penalty treats features alike, and returns
/// it in raw feature units.
fn fit_linear(
    x: &[[f32; N_FEATURES]],
    y: &[bool],
    keep: impl Fn(usize) -> bool,
    alpha: f64,
) -> Result<Linear, TrainError> {
    let rows: Vec<usize> = (0..x.len()).filter(|&i| keep(i)).collect();
    let n = rows.len().max(1) as f64;
    let mut mean = [0.0f64; N_LINEAR];
    let mut scale = [0.0f64; N_LINEAR];
    for &i in &rows {
        for j in 0..N_LINEAR {
            mean[j] += f64::from(x[i][j]) / n;
        }
    }
    for &i in &rows {
        for j in 0..N_LINEAR {
            scale[j] += (f64::from(x[i][j]) - mean[j]).powi(2) / n;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let mut records = Array2::<f64>::zeros((rows.len(), N_LINEAR));
    for (r, &i) in rows.iter().enumerate() {
        for j in 0..N_LINEAR {
            records[(r, j)] = (f64::from(x[i][j]) - mean[j]) / scale[j];
        }
    }
    let targets: Array1<usize> = rows.iter().map(|&i| usize::from(y[i])).collect();
    let fitted = linfa_logistic::LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(500)
        .fit(&Dataset::new(records, targets))
        .map_err(|e| TrainError::Fit(format!("logistic regression: {e}")))?;
    // linfa models P(larger label) = P(bot); flip if it picked the other class.
    let sign = if fitted.labels().pos.class == 1 {
        1.0
    } else {
        -1.0
    };
    let w: Vec<f64> = (0..N_LINEAR)
        .map(|j| sign * fitted.params()[j] / scale[j])
        .collect();
    let intercept = sign * fitted.intercept() - (0..N_LINEAR).map(|j| w[j] * mean[j]).sum::<f64>();
    Ok(Linear {
        intercept: intercept as f32,
        weight: w.iter().map(|&v| v as f32).collect(),
        mean: mean.iter().map(|&v| v as f32).collect(),
    })
}

/// Fits one linfa tree on the bootstrap (as weights) restricted to `feats`, flattens it
/// and recomputes node values from the in-bag rows.
fn fit_tree(
    x: &[[f32; N_FEATURES]],
    y: &[bool],
    mult: &[u32],
    feats: &[usize],
    params: &TrainParams,
) -> Result<Tree, TrainError> {
    let in_bag: Vec<usize> = (0..x.len()).filter(|&i| mult[i] > 0).collect();
    let mut records = Array2::<f64>::zeros((in_bag.len(), feats.len()));
    for (r, &i) in in_bag.iter().enumerate() {
        for (c, &f) in feats.iter().enumerate() {
            records[(r, c)] = f64::from(x[i][f]);
        }
    }
    let targets: Array1<usize> = in_bag.iter().map(|&i| usize::from(y[i])).collect();
    let weights: Array1<f32> = in_bag.iter().map(|&i| mult[i] as f32).collect();
    let dataset = Dataset::new(records, targets).with_weights(weights);
    let fitted: DecisionTree<f64, usize> = DecisionTree::params()
        .split_quality(SplitQuality::Gini)
        .max_depth(Some(params.max_depth))
        .min_weight_leaf(params.min_leaf)
        .min_weight_split(2.0 * params.min_leaf)
        .fit(&dataset)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    let mut tree = Tree::default();
    flatten(fitted.root_node(), feats, &mut tree);

    // Node values: bot fraction among in-bag rows (with bootstrap multiplicity).
    let mut pos = vec![0.0f64; tree.feature.len()];
    let mut cnt = vec![0.0f64; tree.feature.len()];
    for &i in &in_bag {
        let w = f64::from(mult[i]);
        let mut node = 0usize;
        loop {
            cnt[node] += w;
            if y[i] {
                pos[node] += w;
            }
            if tree.feature[node] < 0 {
                break;
            }
            let f = tree.feature[node] as usize;
            node = if x[i][f] <= tree.threshold[node] {
                tree.left[node] as usize
            } else {
                tree.right[node] as usize
            };
        }
    }
    // Preorder: parents come first, so an empty child can inherit its parent's value.
    for node in 0..tree.feature.len() {
        tree.value[node] = if cnt[node] > 0.0 {
            (pos[node] / cnt[node]) as f32
        } else {
            let parent = (0..node).rev().find(|&p| {
                tree.feature[p] >= 0
                    && (tree.left[p] as usize == node || tree.right[p] as usize == node)
            });
            parent.map_or(0.5, |p| tree.value[p])
        };
    }
    Ok(tree)
}

/// Preorder flattening (children after their parent).
fn flatten(node: &TreeNode<f64, usize>, feats: &[usize], tree: &mut Tree) -> u32 {
    let me = tree.feature.len();
    tree.feature.push(-1);
    tree.threshold.push(0.0);
    tree.left.push(0);
    tree.right.push(0);
    tree.value.push(0.0);
    let children = node.children();
    if let (false, Some(Some(l)), Some(Some(r))) =
        (node.is_leaf(), children.first(), children.get(1))
    {
        let (col, split, _) = node.split();
        let li = flatten(l, feats, tree);
        let ri = flatten(r, feats, tree);
        tree.feature[me] = feats.get(col).map_or(0, |&f| f as i32);
        tree.threshold[me] = f32_at_most(split);
        tree.left[me] = li;
        tree.right[me] = ri;
    }
    me as u32
}

/// Largest f32 not above `v`: features are f32, so `x <= f32_at_most(v)` holds exactly
/// when `f64(x) <= v`, and the split sends every training row the way linfa fitted it.
fn f32_at_most(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) > v {
        // Step one ulp towards -inf.
        if f == 0.0 {
            -f32::from_bits(1)
        } else if f > 0.0 {
            f32::from_bits(f.to_bits() - 1)
        } else {
            f32::from_bits(f.to_bits() + 1)
        }
    } else {
        f
    }
}

fn leaf_value(tree: &Tree, x: &[f32; N_FEATURES]) -> f32 {
    let mut node = 0usize;
    while tree.feature[node] >= 0 {
        let f = tree.feature[node] as usize;
        node = if x[f] <= tree.threshold[node] {
            tree.left[node] as usize
        } else {
            tree.right[node] as usize
        };
    }
    tree.value[node]
}

/// Isotonic regression (pool adjacent violators) of labels on raw votes, as a
/// piecewise-linear map through the block centres. Blocks get a light add-half prior so
/// the ends are not exactly 0 or 1 (a leaf that saw 300 humans does not prove the
/// 301st is human).
pub fn isotonic(raw: &[f32], labels: &[bool]) -> Calibration {
    let mut idx: Vec<usize> = (0..raw.len()).collect();
    idx.sort_by(|&a, &b| raw[a].total_cmp(&raw[b]));
    // Blocks: (sum_x, sum_y, n).
    let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
    for &i in &idx {
        let mut b = (f64::from(raw[i]), f64::from(u8::from(labels[i])), 1.0);
        while let Some(&last) = blocks.last() {
            if last.1 / last.2 >= b.1 / b.2 {
                blocks.pop();
                b = (b.0 + last.0, b.1 + last.1, b.2 + last.2);
            } else {
                break;
            }
        }
        blocks.push(b);
    }
    if blocks.is_empty() {
        return Calibration::identity();
    }
    let mut x = Vec::with_capacity(blocks.len() + 2);
    let mut y = Vec::with_capacity(blocks.len() + 2);
    for (sx, sy, n) in &blocks {
        let cx = (sx / n) as f32;
        let cy = ((sy + 0.5) / (n + 1.0)) as f32;
        // Knots strictly increasing in x, non-decreasing in y.
        if let Some(&px) = x.last() {
            if cx <= px {
                continue;
            }
        }
        let cy = y.last().map_or(cy, |&py: &f32| cy.max(py));
        x.push(cx);
        y.push(cy);
    }
    Calibration {
        method: "isotonic_oob".into(),
        x,
        y,
    }
}

/// Lowest threshold (≥ `min_threshold`) whose false-positive rate on the humans is at
/// most `target_fpr`; ties in probability are resolved conservatively.
pub fn pick_threshold(probs: &[f32], labels: &[bool], target_fpr: f32, min_threshold: f32) -> f32 {
    let mut human: Vec<f32> = probs
        .iter()
        .zip(labels)
        .filter(|(_, &l)| !l)
        .map(|(&p, _)| p)
        .collect();
    if human.is_empty() {
        return min_threshold;
    }
    human.sort_by(|a, b| b.total_cmp(a));
    let allowed = (f64::from(target_fpr) * human.len() as f64).floor() as usize;
    // Flag p ≥ t. With `allowed` humans above the threshold permitted, t must exceed the
    // (allowed+1)-th highest human score.
    let bar = human[allowed.min(human.len() - 1)];
    let t = next_up(bar);
    t.max(min_threshold).min(1.0)
}

fn next_up(v: f32) -> f32 {
    if v >= 1.0 {
        1.0
    } else if v <= 0.0 {
        f32::from_bits(1)
    } else {
        f32::from_bits(v.to_bits() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_at_most_never_exceeds() {
        for v in [0.1f64, -0.1, 1.0 / 3.0, 1e-40, -1e-40, 0.0, 2.5, 1e10 + 0.3] {
            let f = f32_at_most(v);
            assert!(f64::from(f) <= v, "{v} → {f}");
            let up = if f >= 0.0 {
                f32::from_bits(f.to_bits() + 1)
            } else {
                f32::from_bits(f.to_bits() - 1)
            };
            assert!(
                f64::from(up) > v || f64::from(f) == v,
                "{v}: {f} is not the largest"
            );
        }
    }

    #[test]
    fn isotonic_is_monotone_and_bounded() {
        let raw = [0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.9, 1.0, 1.0];
        let lab = [
            false, false, true, false, false, true, true, false, true, true,
        ];
        let c = isotonic(&raw, &lab);
        assert!(c.x.windows(2).all(|w| w[0] < w[1]));
        assert!(c.y.windows(2).all(|w| w[0] <= w[1]));
        assert!(c.y.iter().all(|&v| v > 0.0 && v < 1.0));
        // Two lowest votes are humans: pooled block (2 rows, 0 bots) → (0 + .5) / 3.
        assert!((c.y[0] - 0.5 / 3.0).abs() < 1e-6, "{:?}", c);
    }

    #[test]
    fn threshold_respects_fpr() {
        let probs = [0.1, 0.2, 0.3, 0.95, 0.6, 0.7, 0.99];
        let labels = [false, false, false, false, true, true, true];
        // 4 humans, 0 false positives allowed at 0.5% → must be above 0.95.
        let t = pick_threshold(&probs, &labels, 0.005, 0.5);
        assert!(t > 0.95 && t <= 0.99);
        // 25% allowed → one human may be flagged; bar is the 2nd-highest human (0.3) → min 0.5.
        assert_eq!(pick_threshold(&probs, &labels, 0.25, 0.5), 0.5);
    }
}
