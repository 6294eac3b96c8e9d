//! The follower classifier: the model envelope (parse from bytes, validate, serialise),
//! flattened-forest inference with calibration and reason codes, and the bounded
//! follower-score cache.
//!
//! Reading and writing model files, and finding the shipped default, is the edge's job
//! (`followguard_train::model_file`); training and evaluation live in
//! `followguard-train`. Inference does no I/O, reads no clock and does not allocate: the
//! forest is flattened into one node array when the model is built.

mod cache;

pub use cache::{score_time, ScoreCache};

use crate::event::Profile;
use crate::features::{self, NameModel, FEATURE_NAMES, N_FEATURES, REASON_CODES};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tag and version of the envelope layout; bumped on incompatible changes.
pub const FORMAT: &str = "followguard-model";
/// The newest layout this build reads and writes: version 2, an ensemble of specialists
/// (issue 22: one forest + linear part + calibration map per kind of bot, combined by
/// the maximum of their calibrated probabilities). Training writes it only for a
/// specialist ensemble (`train --specialist-max`).
pub const FORMAT_VERSION: u32 = 2;
/// Version 1: one forest and one linear part (every model made before version 2, and
/// every model trained without specialists). Still read, and still written for such
/// models, byte for byte as before; this build reads both, and refuses every other
/// version with a message saying to retrain.
pub const FORMAT_VERSION_SINGLE: u32 = 1;

/// Largest `combine_power` a format-2 file may hold (beyond it the power mean is the max
/// to within float rounding).
pub const MAX_COMBINE_POWER: f32 = 64.0;

/// Combines specialists' calibrated probabilities: their maximum (`power` None), or
/// their power mean `(Σ p^power / K)^(1/power)`. Empty input gives 0.
pub fn combine(power: Option<f32>, probs: &[f32]) -> f32 {
    if probs.is_empty() {
        return 0.0;
    }
    match power {
        None => probs.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        // The mean (what training has chosen on every fold measured) without `powf`.
        Some(1.0) => probs.iter().map(|&q| q.max(0.0)).sum::<f32>() / probs.len() as f32,
        Some(p) => {
            let sum: f32 = probs.iter().map(|&q| q.max(0.0).powf(p)).sum();
            (sum / probs.len() as f32).powf(1.0 / p)
        }
    }
}

/// Most specialists a format-2 file may hold (each is one forest walk per score).
pub const MAX_SPECIALISTS: usize = 16;

/// Deepest tree accepted at load (the walk takes this many steps at most per tree).
pub const MAX_TREE_DEPTH: usize = 32;

/// A leaf in the flattened array: `x[0] > +inf` never holds, so the walk stays on it
/// (its `left` is set to its own index) and adds a zero delta to feature 0.
const ABSORBING: Node = Node {
    feature: 0,
    threshold: f32::INFINITY,
    left: 0,
    value: 0.0,
    delta: [0.0; 2],
};

/// Why a model file could not be loaded or saved. Every message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source} (check the path, or train one with `followguard train`)")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("model file {path} is not valid JSON for this format: {msg}")]
    Json { path: String, msg: String },
    #[error("model file {path} has format {found:?} version {version}; this build reads {FORMAT:?} versions {FORMAT_VERSION_SINGLE} and {FORMAT_VERSION} (retrain with this build's `followguard train`)")]
    Format {
        path: String,
        found: String,
        version: u32,
    },
    #[error("model file {path} was trained with features {found:?} but this build computes {expected:?}: retrain it with this build's `followguard train`")]
    FeatureMismatch {
        path: String,
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("model file {path} is corrupt: {msg} (retrain it or restore the shipped file)")]
    Invalid { path: String, msg: String },
}

impl ModelError {
    /// Short bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::Io { .. } => "model_io",
            ModelError::Json { .. } => "model_json",
            ModelError::Format { .. } => "model_format",
            ModelError::FeatureMismatch { .. } => "model_feature_mismatch",
            ModelError::Invalid { .. } => "model_invalid",
        }
    }
}

// ---------------------------------------------------------------------------------------
// The file format.

/// The versioned model envelope, as stored in `models/*.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelFile {
    pub format: String,
    pub format_version: u32,
    pub model_version: String,
    pub feature_names: Vec<String>,
    /// The per-follower flag threshold on the calibrated probability: prob ≥ threshold ⇒
    /// suspicious (`score`, the moderation queue, the flagged-follower metrics). Chosen
    /// for a stated false-positive rate on human populations the model never saw.
    pub threshold: f32,
    /// The burst detector's operating point (issue 22): a follow counts as suspicious in
    /// its followee's windows at prob ≥ this. The detector tests an excess of suspicious
    /// follows over the followee's expected share, so it tolerates a higher per-follower
    /// false-positive rate than a moderation flag does; must not exceed `threshold`.
    /// Absent in files made before it existed: the detector then uses `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_threshold: Option<f32>,
    /// Format 1: raw blended score → probability. Format 2: maximum of the specialists'
    /// calibrated probabilities → probability (fitted out-of-dataset like format 1's).
    pub calibration: Calibration,
    pub name_model: NameModel,
    /// Format 1: the forest. Format 2: empty (the forests are the specialists').
    #[serde(default)]
    pub forest: Forest,
    /// Weight of the forest vote in the raw score; the linear part gets `1 - blend`
    /// (each specialist's too).
    pub blend: f32,
    /// Format 1: the linear part. Format 2: empty.
    #[serde(default)]
    pub linear: Linear,
    /// Format 2 only (absent from format-1 files): the specialists, each trained on the
    /// humans against one kind of bot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specialists: Vec<Specialist>,
    /// Format 2 only: how the specialists' calibrated probabilities are combined into
    /// the score `calibration` maps. Absent: their maximum (the paper's rule). `p`: their
    /// power mean `(Σ_k prob_k^p / K)^(1/p)` (1 = the mean, larger = nearer the max),
    /// with `p` chosen at training on the nested out-of-dataset scores (issue 22
    /// experiment). See [`combine`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine_power: Option<f32>,
    pub training: TrainingSummary,
    /// Metrics measured when the model was made (out-of-bag, held-out, LOVO…).
    pub evaluation: serde_json::Value,
}

/// One specialist of a format-2 model (Sayyadiharikandeh et al., CIKM 2020): a forest and
/// linear part trained on the humans against one kind of bot (`group`), with its own map
/// from its raw blended score to a probability. The model's score is the maximum of the
/// specialists' probabilities, through the file's `calibration`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Specialist {
    /// The bot group (vendor) it was trained against.
    pub group: String,
    pub calibration: Calibration,
    pub forest: Forest,
    pub linear: Linear,
}

/// Piecewise-linear monotone map from the raw blended score to a probability, fitted on
/// data the scoring trees did not see (`method` says which: out-of-vendor predictions or
/// out-of-bag votes).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    pub method: String,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

impl Calibration {
    pub fn identity() -> Calibration {
        Calibration {
            method: "identity".into(),
            x: vec![0.0, 1.0],
            y: vec![0.0, 1.0],
        }
    }

    /// Interpolates; clamps outside the knots.
    pub fn apply(&self, raw: f32) -> f32 {
        let (x, y) = (&self.x, &self.y);
        let n = x.len().min(y.len());
        if n == 0 {
            return raw;
        }
        if raw <= x[0] {
            return y[0];
        }
        if raw >= x[n - 1] {
            return y[n - 1];
        }
        // First knot strictly greater than raw; 1 ≤ hi ≤ n-1 here.
        let hi = x[..n].partition_point(|&k| k <= raw);
        let lo = hi - 1;
        let span = x[hi] - x[lo];
        if span <= 0.0 {
            return y[hi];
        }
        y[lo] + (y[hi] - y[lo]) * (raw - x[lo]) / span
    }
}

/// Trees as parallel arrays (indices local to the tree; node 0 is the root).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Forest {
    pub trees: Vec<Tree>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Tree {
    /// Split feature, or -1 for a leaf.
    pub feature: Vec<i32>,
    /// Go left when `x[feature] <= threshold`.
    pub threshold: Vec<f32>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    /// Fraction of bot rows among the in-bag training rows reaching the node.
    pub value: Vec<f32>,
    /// Issue 24: share of the in-bag training weight reaching each node (root = 1), so a
    /// split on a missing feature descends both sides in the proportions training saw.
    /// Optional (empty in files written before it: both sides then weigh the same), and
    /// left out of the file when empty so older models serialise byte for byte as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<f32>,
}

/// Logistic regression on the first `weight.len()` features (raw feature units):
/// p = σ(intercept + Σ weight_i · x_i). `mean` is the training mean of each feature, the
/// reference point for reason contributions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Linear {
    pub intercept: f32,
    pub weight: Vec<f32>,
    pub mean: Vec<f32>,
}

impl Linear {
    /// The linear part's logit of `x`.
    pub fn logit(&self, x: &[f32; N_FEATURES]) -> f32 {
        self.intercept + self.weight.iter().zip(x).map(|(w, v)| w * v).sum::<f32>()
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// What the model was trained on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainingSummary {
    /// Data files / descriptions.
    pub data: Vec<String>,
    /// Group → (label, rows).
    pub groups: std::collections::BTreeMap<String, GroupCount>,
    pub rows: usize,
    pub params: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct GroupCount {
    pub bot: usize,
    pub human: usize,
}

// ---------------------------------------------------------------------------------------
// Scores and reasons.

/// One feature's contribution to a score (Saabas-style: change of the node value along
/// the decision paths, averaged over trees; positive pushes towards "bot").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reason {
    pub feature: u8,
    pub contribution: f32,
}

impl Reason {
    /// Readable reason code, e.g. `friends_followers_ratio_high`.
    pub fn code(&self) -> &'static str {
        match REASON_CODES.get(usize::from(self.feature)) {
            Some([bot, human]) => {
                if self.contribution > 0.0 {
                    bot
                } else {
                    human
                }
            }
            None => "unknown",
        }
    }

    /// Name of the feature.
    pub fn feature_name(&self) -> &'static str {
        FEATURE_NAMES
            .get(usize::from(self.feature))
            .copied()
            .unwrap_or("unknown")
    }
}

/// A calibrated bot probability with its top-3 reasons, strongest first. For a
/// suspicious score the reasons are the features pushing hardest towards "bot"; for a
/// normal one, those pushing hardest towards "human".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub prob: f32,
    pub reasons: [Reason; 3],
}

// ---------------------------------------------------------------------------------------
// The runtime model.

#[derive(Clone, Copy, Debug)]
struct Node {
    feature: u32,
    threshold: f32,
    /// Index of the left child; the right child is always `left + 1`, so the walk picks
    /// a child without a branch (`left + (x > threshold)`).
    left: u32,
    value: f32,
    /// Child value minus this node's value, for the left and right child: the reason
    /// contribution of taking that branch, precomputed so the walk does not wait on the
    /// child's load to credit it.
    delta: [f32; 2],
}

/// One scoring part: a forest (its roots in the shared node array) blended with a linear
/// part. A format-1 model has one; a format-2 model has one per specialist.
#[derive(Debug, Clone)]
struct Part {
    roots: Vec<u32>,
    /// Deepest leaf over the part's trees: the fixed number of walk steps.
    depth: usize,
    /// Linear part's logit and probability at the training means (reason reference).
    z0: f32,
    p0: f32,
    inv_trees: f32,
}

/// A loaded, validated model. `Send + Sync`; share it through an `Arc`.
#[derive(Debug, Clone)]
pub struct Model {
    file: ModelFile,
    sha256: String,
    nodes: Vec<Node>,
    /// Per flattened node: the weights of its left and right child when its feature is
    /// missing (issue 24; from `Tree::coverage`, else ½ each). Read only off the fast path.
    missing_split: Vec<[f32; 2]>,
    /// Format 1: the one forest + linear part. Format 2: one per specialist, in the
    /// file's order.
    parts: Vec<Part>,
}

impl Model {
    /// Parses and validates model bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Model, ModelError> {
        // Check the format tag first so an old or foreign file gets the format message,
        // not a confusing "missing field" one.
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let head: Header = serde_json::from_slice(bytes).map_err(|e| ModelError::Json {
            path: origin.into(),
            msg: e.to_string(),
        })?;
        let (found, version) = (
            head.format.unwrap_or_default(),
            head.format_version.unwrap_or(0),
        );
        if found != FORMAT || !(FORMAT_VERSION_SINGLE..=FORMAT_VERSION).contains(&version) {
            return Err(ModelError::Format {
                path: origin.into(),
                found,
                version,
            });
        }
        let file: ModelFile = serde_json::from_slice(bytes).map_err(|e| ModelError::Json {
            path: origin.into(),
            msg: e.to_string(),
        })?;
        let sha256 = sha256_hex(bytes);
        Model::from_file(file, sha256, origin)
    }

    /// Builds a model from an in-memory envelope (used by training before saving).
    pub fn from_file(file: ModelFile, sha256: String, origin: &str) -> Result<Model, ModelError> {
        let expected: Vec<String> = FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
        if file.feature_names != expected {
            return Err(ModelError::FeatureMismatch {
                path: origin.into(),
                found: file.feature_names,
                expected,
            });
        }
        let invalid = |msg: String| ModelError::Invalid {
            path: origin.into(),
            msg,
        };
        if !(file.threshold.is_finite() && (0.0..=1.0).contains(&file.threshold)) {
            return Err(invalid(format!(
                "threshold {} is not in [0, 1]",
                file.threshold
            )));
        }
        if let Some(d) = file.detection_threshold {
            if !(d.is_finite() && (0.0..=file.threshold).contains(&d)) {
                return Err(invalid(format!(
                    "detection_threshold {d} is not in [0, threshold = {}]",
                    file.threshold
                )));
            }
        }
        check_calibration(&file.calibration, "calibration").map_err(invalid)?;
        if !file.name_model.is_valid() {
            return Err(invalid(
                "screen-name model table has the wrong shape".into(),
            ));
        }
        if !(file.blend.is_finite() && (0.0..=1.0).contains(&file.blend)) {
            return Err(invalid(format!("blend {} is not in [0, 1]", file.blend)));
        }
        // The two layouts, each explicit: format 1 holds one forest and linear part and
        // no specialists; format 2 holds the specialists and leaves the top-level forest
        // and linear part empty.
        match file.format_version {
            FORMAT_VERSION_SINGLE if !file.specialists.is_empty() => {
                return Err(invalid(format!(
                    "format_version {FORMAT_VERSION_SINGLE} cannot carry specialists (a specialist ensemble is format_version {FORMAT_VERSION}): retrain it with this build's `followguard train`"
                )));
            }
            FORMAT_VERSION_SINGLE if file.combine_power.is_some() => {
                return Err(invalid(format!(
                    "format_version {FORMAT_VERSION_SINGLE} cannot carry combine_power (it combines the specialists of format_version {FORMAT_VERSION})"
                )));
            }
            FORMAT_VERSION_SINGLE => {}
            FORMAT_VERSION => {
                if let Some(p) = file.combine_power {
                    if !(p.is_finite() && (1.0..=MAX_COMBINE_POWER).contains(&p)) {
                        return Err(invalid(format!(
                            "combine_power {p} is not in [1, {MAX_COMBINE_POWER}]"
                        )));
                    }
                }
                if file.specialists.is_empty() {
                    return Err(invalid(format!(
                        "format_version {FORMAT_VERSION} needs at least one specialist (retrain it, or restore the shipped file)"
                    )));
                }
                if !file.forest.trees.is_empty() || !file.linear.weight.is_empty() {
                    return Err(invalid(format!(
                        "format_version {FORMAT_VERSION} keeps its trees and linear parts in `specialists`; the top-level forest and linear part must be empty"
                    )));
                }
                if file.specialists.len() > MAX_SPECIALISTS {
                    return Err(invalid(format!(
                        "{} specialists, more than {MAX_SPECIALISTS}",
                        file.specialists.len()
                    )));
                }
            }
            v => {
                return Err(ModelError::Format {
                    path: origin.into(),
                    found: file.format,
                    version: v,
                })
            }
        }
        let mut nodes = Vec::new();
        let mut missing_split = Vec::new();
        let mut parts = Vec::new();
        if file.specialists.is_empty() {
            parts.push(
                build_part(
                    &file.forest,
                    &file.linear,
                    "",
                    &mut nodes,
                    &mut missing_split,
                )
                .map_err(invalid)?,
            );
        } else {
            for (k, s) in file.specialists.iter().enumerate() {
                let at = format!("specialist {k} ({}): ", s.group);
                check_calibration(&s.calibration, "calibration")
                    .map_err(|m| invalid(format!("{at}{m}")))?;
                parts.push(
                    build_part(&s.forest, &s.linear, &at, &mut nodes, &mut missing_split)
                        .map_err(invalid)?,
                );
            }
        }
        Ok(Model {
            sha256,
            nodes,
            missing_split,
            parts,
            file,
        })
    }

    /// Serialises the envelope (pretty enough to diff, compact enough to stay small).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_vec(&self.file).unwrap_or_default()
    }

    /// Returns the model with `evaluation[key] = value` (e.g. held-out results measured
    /// after training), its sha256 updated to the new serialisation.
    pub fn with_evaluation(
        mut self,
        key: &str,
        value: serde_json::Value,
    ) -> Result<Model, ModelError> {
        if !self.file.evaluation.is_object() {
            self.file.evaluation = serde_json::json!({});
        }
        if let Some(obj) = self.file.evaluation.as_object_mut() {
            obj.insert(key.to_string(), value);
        }
        self.sha256 = sha256_hex(&self.to_json());
        Ok(self)
    }

    pub fn version(&self) -> &str {
        &self.file.model_version
    }

    /// SHA-256 of the model file bytes (of the serialised envelope for in-memory models).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The per-follower flag threshold (`score`, moderation records).
    pub fn threshold(&self) -> f32 {
        self.file.threshold
    }

    /// The burst detector's operating point: `detection_threshold`, or `threshold` for a
    /// file made before the field existed.
    pub fn detection_threshold(&self) -> f32 {
        self.file.detection_threshold.unwrap_or(self.file.threshold)
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// Trees over all parts (specialists).
    pub fn n_trees(&self) -> usize {
        self.parts.iter().map(|p| p.roots.len()).sum()
    }

    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Scoring parts: 1 for a format-1 model, the number of specialists for format 2.
    pub fn n_parts(&self) -> usize {
        self.parts.len()
    }

    /// The linear part of part `k`.
    fn linear(&self, k: usize) -> &Linear {
        match self.file.specialists.get(k) {
            Some(s) => &s.linear,
            None => &self.file.linear,
        }
    }

    /// Feature vector of a profile under this model's screen-name table.
    pub fn features(&self, p: &Profile<'_>, now_ms: i64) -> [f32; N_FEATURES] {
        features::extract(p, now_ms, &self.file.name_model)
    }

    /// Scores a profile at event time `now_ms`: extract + forest + calibration + reasons.
    pub fn score(&self, p: &Profile<'_>, now_ms: i64) -> Score {
        self.score_features(&self.features(p, now_ms))
    }

    /// The score the final calibration map is applied to, with per-feature contributions.
    ///
    /// Format 1: the raw blended score of the one forest and linear part
    /// ([`raw_part`](Self::raw_part) of part 0; `base_value() + Σ contributions == raw`).
    /// Format 2 (specialists, Sayyadiharikandeh et al., CIKM 2020): the **maximum of the
    /// specialists' calibrated probabilities**, with the contributions of the specialist
    /// that gave it (on that specialist's raw scale: `base_value_part(k) + Σ
    /// contributions` is its raw score) — the reasons of the kind of bot the account
    /// looks most like.
    pub fn raw(&self, x: &[f32; N_FEATURES]) -> (f32, [f32; N_FEATURES]) {
        if self.file.specialists.is_empty() {
            return self.raw_part(0, x);
        }
        let mut best = (f32::NEG_INFINITY, [0.0f32; N_FEATURES]);
        let mut probs = [0.0f32; MAX_SPECIALISTS];
        for (k, s) in self.file.specialists.iter().enumerate() {
            let (raw, contrib) = self.raw_part(k, x);
            let p = s.calibration.apply(raw);
            if let Some(slot) = probs.get_mut(k) {
                *slot = p;
            }
            if p > best.0 {
                best = (p, contrib);
            }
        }
        if self.file.combine_power.is_some() {
            let n = self.file.specialists.len().min(MAX_SPECIALISTS);
            best.0 = combine(self.file.combine_power, &probs[..n]);
        }
        best
    }

    /// Raw (uncalibrated) score of part `k` and its per-feature contributions: the blend
    /// of the forest vote (Saabas contributions along each decision path) and the linear
    /// part's probability (its change from the training-mean profile split over features
    /// in proportion to their logit terms, so contributions add up exactly). A `k` out of
    /// range scores 0 with no contributions.
    ///
    /// A `NaN` feature is a missing value (issue 24): at a split on it both sides are
    /// descended, weighted by the training coverage, so the forest votes the expected leaf
    /// value over what the feature could be; the linear part takes the feature's training
    /// mean. A missing feature's reason contribution is then about zero: it neither
    /// accuses nor clears. Complete vectors never leave the fast walk below.
    pub fn raw_part(&self, k: usize, x: &[f32; N_FEATURES]) -> (f32, [f32; N_FEATURES]) {
        let Some(part) = self.parts.get(k) else {
            return (0.0, [0.0; N_FEATURES]);
        };
        if x.iter().any(|v| v.is_nan()) {
            return self.raw_missing(k, part, x);
        }
        let mut sum = 0.0f32;
        // Eight trees in lockstep: their walks are independent chains of loads, so the
        // CPU overlaps them instead of waiting on one node at a time. Each lane credits
        // its own row of contributions: with one shared row, trees splitting on the same
        // feature (most share the top few) made every `+=` wait for the previous store.
        const LANES: usize = 8;
        let mut rows = [[0.0f32; N_FEATURES]; LANES];
        for chunk in part.roots.chunks(LANES) {
            let mut cur = [0usize; LANES];
            for (c, &r) in cur.iter_mut().zip(chunk) {
                *c = r as usize;
            }
            let lanes = chunk.len();
            for _ in 0..part.depth {
                for (c, row) in cur.iter_mut().zip(rows.iter_mut()).take(lanes) {
                    let node = &self.nodes[*c];
                    let f = node.feature as usize;
                    let side = usize::from(x[f] > node.threshold);
                    row[f] += node.delta[side];
                    *c = node.left as usize + side;
                }
            }
            for &c in cur.iter().take(lanes) {
                sum += self.nodes[c].value;
            }
        }
        let mut contrib = rows[0];
        for row in &rows[1..] {
            for (c, r) in contrib.iter_mut().zip(row) {
                *c += r;
            }
        }
        self.finish(k, part, sum, contrib, x)
    }

    /// [`raw_part`](Self::raw_part) for a vector with missing (`NaN`) features: every
    /// tree walked recursively, both children of a split on a missing feature taken with
    /// the node's coverage weights (each node is visited at most once, so the work is
    /// bounded by the tree's size); the linear part sees the training mean in place of a
    /// missing value.
    fn raw_missing(
        &self,
        k: usize,
        part: &Part,
        x: &[f32; N_FEATURES],
    ) -> (f32, [f32; N_FEATURES]) {
        let mut contrib = [0.0f32; N_FEATURES];
        let sum: f32 = part
            .roots
            .iter()
            .map(|&r| self.walk_missing(r as usize, 1.0, x, &mut contrib))
            .sum();
        let mut filled = *x;
        for (v, m) in filled.iter_mut().zip(&self.linear(k).mean) {
            if v.is_nan() {
                *v = *m;
            }
        }
        self.finish(k, part, sum, contrib, &filled)
    }

    /// Weighted leaf value below node `i` reached with weight `w`, crediting each split's
    /// value change to its feature (Saabas, weighted, so contributions still add up).
    fn walk_missing(
        &self,
        i: usize,
        w: f32,
        x: &[f32; N_FEATURES],
        c: &mut [f32; N_FEATURES],
    ) -> f32 {
        let Some(node) = self.nodes.get(i) else {
            return 0.0;
        };
        if node.left as usize == i {
            return w * node.value;
        }
        let f = node.feature as usize;
        let v = x.get(f).copied().unwrap_or(f32::NAN);
        if v.is_nan() {
            let [wl, wr] = self.missing_split.get(i).copied().unwrap_or([0.5; 2]);
            c[f] += w * (wl * node.delta[0] + wr * node.delta[1]);
            let left = node.left as usize;
            self.walk_missing(left, w * wl, x, c) + self.walk_missing(left + 1, w * wr, x, c)
        } else {
            let side = usize::from(v > node.threshold);
            c[f] += w * node.delta[side];
            self.walk_missing(node.left as usize + side, w, x, c)
        }
    }

    /// The blend of a part's summed leaf values and its linear part (shared by the fast
    /// walk and the missing-value walk).
    fn finish(
        &self,
        k: usize,
        part: &Part,
        sum: f32,
        mut contrib: [f32; N_FEATURES],
        x: &[f32; N_FEATURES],
    ) -> (f32, [f32; N_FEATURES]) {
        let wf = self.file.blend * part.inv_trees;
        for c in &mut contrib {
            *c *= wf;
        }
        let lin = self.linear(k);
        let wl = 1.0 - self.file.blend;
        let z = lin.logit(x);
        let p = sigmoid(z);
        if wl > 0.0 {
            let dz = z - part.z0;
            // Probability change per unit of logit: exact secant, or the slope when flat.
            let per = if dz.abs() > 1e-6 {
                (p - part.p0) / dz
            } else {
                p * (1.0 - p)
            };
            for ((c, (w, m)), v) in contrib
                .iter_mut()
                .zip(lin.weight.iter().zip(&lin.mean))
                .zip(x)
            {
                *c += wl * per * w * (v - m);
            }
        }
        (sum * wf + wl * p, contrib)
    }

    /// The raw score of the reference profile that reasons are measured from: the
    /// forest's mean root value and the linear part at the training means, blended. For
    /// any input of a format-1 model, `base_value() + Σ contributions == raw score` (up
    /// to rounding); for a specialist, see [`base_value_part`](Self::base_value_part).
    pub fn base_value(&self) -> f32 {
        self.base_value_part(0)
    }

    /// [`base_value`](Self::base_value) of part `k` (specialist `k` of a format-2
    /// model): `base_value_part(k) + Σ raw_part(k, x).1 == raw_part(k, x).0`.
    pub fn base_value_part(&self, k: usize) -> f32 {
        let Some(part) = self.parts.get(k) else {
            return 0.0;
        };
        let roots: f32 = part
            .roots
            .iter()
            .map(|&r| self.nodes[r as usize].value)
            .sum();
        self.file.blend * roots * part.inv_trees + (1.0 - self.file.blend) * part.p0
    }

    /// Scores a precomputed feature vector.
    pub fn score_features(&self, x: &[f32; N_FEATURES]) -> Score {
        let (raw, contrib) = self.raw(x);
        let prob = self.file.calibration.apply(raw).clamp(0.0, 1.0);
        // Towards the decision: bot-ward reasons for a suspicious score, human-ward ones
        // otherwise (a moderator asks "why flagged?" or "why not?").
        let sign = if prob >= self.file.threshold {
            1.0
        } else {
            -1.0
        };
        Score {
            prob,
            reasons: top3(&contrib, sign),
        }
    }
}

/// Checks a calibration map's knots; the error names `what`.
fn check_calibration(cal: &Calibration, what: &str) -> Result<(), String> {
    if cal.x.len() != cal.y.len() || cal.x.is_empty() {
        return Err(format!(
            "{what} knots x and y differ in length or are empty"
        ));
    }
    if cal.x.windows(2).any(|w| w[0] > w[1]) || cal.y.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("{what} knots are not sorted"));
    }
    if cal
        .x
        .iter()
        .chain(&cal.y)
        .any(|v| !v.is_finite() || !(0.0..=1.0).contains(v))
    {
        return Err(format!("{what} knots must lie in [0, 1]"));
    }
    Ok(())
}

/// Validates one forest and linear part and appends the forest to the flattened node
/// array; errors are prefixed with `at` (which specialist).
fn build_part(
    forest: &Forest,
    lin: &Linear,
    at: &str,
    nodes: &mut Vec<Node>,
    missing_split: &mut Vec<[f32; 2]>,
) -> Result<Part, String> {
    let invalid = |msg: String| format!("{at}{msg}");
    if lin.weight.len() != lin.mean.len()
        || lin.weight.len() > N_FEATURES
        || !lin.intercept.is_finite()
        || lin.weight.iter().chain(&lin.mean).any(|v| !v.is_finite())
    {
        return Err(invalid("linear part: weights and means differ in length, exceed the feature count or are not finite".into()));
    }
    if forest.trees.is_empty() {
        return Err(invalid("forest has no trees".into()));
    }
    let mut roots = Vec::with_capacity(forest.trees.len());
    let mut depth = 0usize;
    for (t, tree) in forest.trees.iter().enumerate() {
        let n = tree.feature.len();
        if n == 0
            || [
                tree.threshold.len(),
                tree.left.len(),
                tree.right.len(),
                tree.value.len(),
            ]
            .iter()
            .any(|&l| l != n)
        {
            return Err(invalid(format!(
                "tree {t}: arrays are empty or differ in length"
            )));
        }
        let base = u32::try_from(nodes.len())
            .ok()
            .filter(|b| b.checked_add(n as u32).is_some())
            .ok_or_else(|| invalid("too many nodes".into()))?;
        // Validate: every node referenced at most once, children after parents (so
        // this is a tree and every walk terminates), features and values in range.
        let mut referenced = vec![false; n];
        for i in 0..n {
            let value = tree.value[i];
            if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                return Err(invalid(format!(
                    "tree {t} node {i}: value {value} not in [0, 1]"
                )));
            }
            let feature = tree.feature[i];
            if feature < 0 {
                continue;
            }
            let (l, r) = (tree.left[i] as usize, tree.right[i] as usize);
            if feature as usize >= N_FEATURES || l <= i || r <= i || l >= n || r >= n || l == r {
                return Err(invalid(format!(
                    "tree {t} node {i}: bad feature or child index"
                )));
            }
            if std::mem::replace(&mut referenced[l], true)
                || std::mem::replace(&mut referenced[r], true)
            {
                return Err(invalid(format!(
                    "tree {t} node {i}: child shared by two parents"
                )));
            }
            if tree.threshold[i].is_nan() {
                return Err(invalid(format!("tree {t} node {i}: threshold is NaN")));
            }
        }
        if !tree.coverage.is_empty()
            && (tree.coverage.len() != n
                || tree.coverage.iter().any(|c| !(c.is_finite() && *c >= 0.0)))
        {
            return Err(invalid(format!(
                "tree {t}: coverage has the wrong length or a negative or non-finite share"
            )));
        }
        // Re-lay out breadth-first with siblings adjacent (nodes unreachable from the
        // root are dropped). Leaves become absorbing (`x[0] > +inf` is never true, so
        // the walk stays put and adds a zero contribution): every tree is then walked
        // a fixed `depth` steps, and several trees can be walked in lockstep.
        roots.push(base);
        let mut order = vec![(0usize, 0usize)];
        let mut head = 0;
        nodes.push(ABSORBING);
        missing_split.push([0.5; 2]);
        while head < order.len() {
            let (i, d) = order[head];
            let at = base as usize + head;
            head += 1;
            let feature = tree.feature[i];
            if feature < 0 {
                nodes[at] = Node {
                    left: at as u32,
                    value: tree.value[i],
                    ..ABSORBING
                };
                continue;
            }
            if d + 1 > MAX_TREE_DEPTH {
                return Err(invalid(format!(
                    "tree {t} is deeper than {MAX_TREE_DEPTH} (retrain with a smaller --max-depth)"
                )));
            }
            depth = depth.max(d + 1);
            let left = base + order.len() as u32;
            order.push((tree.left[i] as usize, d + 1));
            order.push((tree.right[i] as usize, d + 1));
            nodes.push(ABSORBING);
            nodes.push(ABSORBING);
            missing_split.push([0.5; 2]);
            missing_split.push([0.5; 2]);
            missing_split[at] = missing_weights(tree, i);
            let value = tree.value[i];
            nodes[at] = Node {
                feature: feature as u32,
                threshold: tree.threshold[i],
                left,
                value,
                delta: [
                    tree.value[tree.left[i] as usize] - value,
                    tree.value[tree.right[i] as usize] - value,
                ],
            };
        }
    }
    let inv_trees = 1.0 / roots.len() as f32;
    let z0 = lin.intercept
        + lin
            .weight
            .iter()
            .zip(&lin.mean)
            .map(|(w, m)| w * m)
            .sum::<f32>();
    Ok(Part {
        roots,
        depth,
        z0,
        p0: sigmoid(z0),
        inv_trees,
    })
}

/// The weights of node `i`'s left and right child when its feature is missing: the
/// children's training coverage, normalised; ½ each without coverage (issue 24).
fn missing_weights(tree: &Tree, i: usize) -> [f32; 2] {
    let cov = |j: u32| tree.coverage.get(j as usize).copied();
    match (cov(tree.left[i]), cov(tree.right[i])) {
        (Some(l), Some(r)) if l + r > 0.0 => [l / (l + r), r / (l + r)],
        _ => [0.5; 2],
    }
}

/// The three features with the largest `sign * contribution`, strongest first.
fn top3(contrib: &[f32; N_FEATURES], sign: f32) -> [Reason; 3] {
    let mut best = [Reason {
        feature: 0,
        contribution: 0.0,
    }; 3];
    let mut key = [f32::NEG_INFINITY; 3];
    for (i, &c) in contrib.iter().enumerate() {
        let k = sign * c;
        if k > key[2] {
            let r = Reason {
                feature: i as u8,
                contribution: c,
            };
            if k > key[0] {
                best = [r, best[0], best[1]];
                key = [k, key[0], key[1]];
            } else if k > key[1] {
                best = [best[0], r, best[1]];
                key = [key[0], k, key[1]];
            } else {
                best[2] = r;
                key[2] = k;
            }
        }
    }
    best
}

/// Lower-case hex of the SHA-256 of `bytes`: a model's identity (`Model::sha256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
