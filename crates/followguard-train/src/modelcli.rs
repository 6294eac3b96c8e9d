//! The model commands: `train`, `eval`, `lovo` (leave-one-vendor-out protocol) and
//! `score` (JSONL events on stdin → one JSON line per event). The I/O edge around the
//! pure `features` / `model` core: progress goes to stderr, results to stdout.

use crate::dataset::{self, Columns, DataSpec, Row};
use crate::eval::{self, Report};
use crate::model_file::{self, DEFAULT_MODEL_PATH};
use crate::train::{self, CalibrationSource, SpecialistCalibration, TrainParams};
use anyhow::Context;
use clap::Args;
use followguard_core::event;
use followguard_core::model::{Model, Score};
use followguard_core::profiles::Decoded;
use followguard_core::ConfigError;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub mod lodo;

/// Column-name options for the data files.
#[derive(Args, Debug, Clone)]
pub struct ColumnArgs {
    /// Label column(s) tried in order (1 = bot). Files without one are given as GROUP:LABEL:PATH.
    #[arg(
        long,
        env = "FOLLOWGUARD_LABEL_COLUMN",
        value_delimiter = ',',
        default_value = "label_fake,label"
    )]
    pub label_column: Vec<String>,
    /// Group column(s) tried in order, for per-group reports and splits.
    #[arg(
        long,
        env = "FOLLOWGUARD_GROUP_COLUMN",
        value_delimiter = ',',
        default_value = "dataset,group"
    )]
    pub group_column: Vec<String>,
    /// Crawl-time column(s) tried in order: account age is measured against these, never today.
    #[arg(
        long,
        env = "FOLLOWGUARD_CRAWL_TIME_COLUMN",
        value_delimiter = ',',
        default_value = "crawled_at,updated,probe_timestamp"
    )]
    pub crawl_time_column: Vec<String>,
    /// When the profiles were captured, for rows with no crawl-time value (RFC 3339 or
    /// Twitter's format). Never defaults to today: ages measured years after the crawl
    /// make every account look inactive.
    #[arg(long, env = "FOLLOWGUARD_AS_OF", value_parser = parse_as_of)]
    pub as_of: Option<i64>,
}

fn parse_as_of(s: &str) -> Result<i64, String> {
    dataset::table_time_ms(s).ok_or_else(|| {
        format!("not a time: {s:?} (use RFC 3339, e.g. 2019-06-01T00:00:00Z, or Twitter's format)")
    })
}

impl ColumnArgs {
    fn columns(&self) -> Columns {
        Columns {
            label: self.label_column.clone(),
            group: self.group_column.clone(),
            crawl_time: self.crawl_time_column.clone(),
            as_of_ms: self.as_of,
        }
    }
}

/// Forest hyper-parameters.
#[derive(Args, Debug, Clone)]
pub struct ForestArgs {
    /// Number of trees: more is smoother but slower to score (each tree is one walk).
    #[arg(long, env = "FOLLOWGUARD_TREES", default_value_t = 40)]
    pub trees: usize,
    /// Maximum tree depth: lower generalises better to new populations.
    #[arg(long, env = "FOLLOWGUARD_MAX_DEPTH", default_value_t = 6)]
    pub max_depth: usize,
    /// Minimum bootstrap weight per leaf: the main regulariser.
    #[arg(long, env = "FOLLOWGUARD_MIN_LEAF", default_value_t = 5.0)]
    pub min_leaf: f32,
    /// Fraction of features each tree may use.
    #[arg(long, env = "FOLLOWGUARD_FEATURE_FRAC", default_value_t = 0.6)]
    pub feature_frac: f32,
    /// False-positive rate the operating threshold allows on every human population of
    /// the training data, each scored by a model that never saw it (with the default
    /// out-of-dataset calibration).
    #[arg(long, env = "FOLLOWGUARD_TARGET_FPR", default_value_t = 0.01)]
    pub target_fpr: f32,
    /// False-positive rate the burst detector's operating point (`detection_threshold`)
    /// allows on every human population, measured like --target-fpr's; the detector
    /// tests an excess over the followee's expected suspicious share, so it affords
    /// more per-follower false positives than a moderation flag. 0 = none (the detector
    /// uses the threshold).
    #[arg(long, env = "FOLLOWGUARD_DETECTION_FPR", default_value_t = 0.05)]
    pub detection_fpr: f32,
    /// Lowest allowed operating threshold.
    #[arg(long, env = "FOLLOWGUARD_MIN_THRESHOLD", default_value_t = 0.1)]
    pub min_threshold: f32,
    /// Weight of the forest in the blended score (rest: the linear part). 1 = forest only.
    #[arg(long, env = "FOLLOWGUARD_BLEND", default_value_t = 0.5)]
    pub blend: f32,
    /// L2 penalty of the linear part (on standardised features).
    #[arg(long, env = "FOLLOWGUARD_LINEAR_ALPHA", default_value_t = 10.0)]
    pub linear_alpha: f64,
    /// Random seed (bootstrap, feature subsets): same seed and data ⇒ same model.
    #[arg(long, env = "FOLLOWGUARD_SEED", default_value_t = 42)]
    pub seed: u64,
    /// What the calibration map and threshold are fitted on: out-of-dataset (nested
    /// leave-one-dataset-out inside the training data: each vendor and each human
    /// population scored by a model that never saw it), out-of-vendor (vendors left out,
    /// humans by share) or oob (out-of-bag).
    #[arg(
        long,
        env = "FOLLOWGUARD_CALIBRATION",
        value_enum,
        default_value = "out-of-dataset"
    )]
    pub calibration: CalibrationSource,
    /// Calibrate the probabilities to this share of bots (the calibration rows are
    /// re-weighted; rankings and flagged rows do not change); 0 = the training mix.
    #[arg(long, env = "FOLLOWGUARD_CALIBRATION_BOT_SHARE", default_value_t = 0.2)]
    pub calibration_bot_share: f32,
    /// Experiment (issue 22): each tree is a specialist fitted on the humans and one
    /// bot group in turn; the forest averages the specialists (not shipped; MODEL_CARD).
    #[arg(long, env = "FOLLOWGUARD_SPECIALISTS")]
    pub specialists: bool,
    /// Experiment (issue 22): bootstrap so every group of a class carries equal weight
    /// (no vendor or human population dominates the trees; not shipped; MODEL_CARD).
    #[arg(long, env = "FOLLOWGUARD_BALANCE_GROUPS")]
    pub balance_groups: bool,
    /// Experiment (issue 22, Sayyadiharikandeh et al. CIKM 2020): one specialist per bot
    /// group (humans against that group; --trees split over them), each calibrated,
    /// combined by the maximum of their calibrated probabilities; writes model format 2
    /// (not shipped; MODEL_CARD).
    #[arg(
        long,
        env = "FOLLOWGUARD_SPECIALIST_MAX",
        conflicts_with = "specialists"
    )]
    pub specialist_max: bool,
    /// With --specialist-max: what each specialist's map is fitted on (its out-of-bag
    /// scores, or humans scored by refits without their population); ignored without it.
    #[arg(
        long,
        env = "FOLLOWGUARD_SPECIALIST_CALIBRATION",
        value_enum,
        default_value = "oob"
    )]
    pub specialist_calibration: SpecialistCalibration,
    /// With --specialist-max: one more specialist, fitted on every bot group against the
    /// humans (the pooled forest as a member of the max; --trees split over all
    /// members; not shipped; MODEL_CARD).
    #[arg(
        long,
        env = "FOLLOWGUARD_SPECIALIST_POOLED",
        requires = "specialist_max"
    )]
    pub specialist_pooled: bool,
    /// With --specialist-max: combine the specialists by a power mean, its exponent
    /// (1–16, or the max) chosen on the nested out-of-dataset scores only (not shipped;
    /// MODEL_CARD).
    #[arg(
        long,
        env = "FOLLOWGUARD_SPECIALIST_POWER_MEAN",
        requires = "specialist_max"
    )]
    pub specialist_power_mean: bool,
}

impl ForestArgs {
    fn params(&self, model_version: String) -> TrainParams {
        TrainParams {
            n_trees: self.trees,
            max_depth: self.max_depth,
            min_leaf: self.min_leaf,
            feature_frac: self.feature_frac,
            target_fpr: self.target_fpr,
            detection_fpr: (self.detection_fpr > 0.0).then_some(self.detection_fpr),
            min_threshold: self.min_threshold,
            blend: self.blend,
            linear_alpha: self.linear_alpha,
            seed: self.seed,
            calibration: self.calibration,
            calibration_bot_share: (self.calibration_bot_share > 0.0)
                .then_some(self.calibration_bot_share),
            specialists: self.specialists,
            balance_groups: self.balance_groups,
            specialist_max: self.specialist_max,
            specialist_calibration: (self.specialist_max
                && self.specialist_calibration != SpecialistCalibration::Oob)
                .then_some(self.specialist_calibration),
            specialist_pooled: self.specialist_max && self.specialist_pooled,
            specialist_power_mean: self.specialist_max && self.specialist_power_mean,
            model_version,
        }
    }
}

/// `followguard train`: fit a model on labelled account tables and write its envelope.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Account tables (CSV, or JSON: .jsonl / .ndjson / .json): PATH (label and group from
    /// columns or fields) or GROUP:LABEL:PATH.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<DataSpec>,
    /// Where to write the model file.
    #[arg(long)]
    pub out: PathBuf,
    /// Model version recorded in the file (default: fg-rf-<UTC date>-1).
    #[arg(long)]
    pub model_version: Option<String>,
    #[command(flatten)]
    pub forest: ForestArgs,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `followguard eval`: metrics of a model on labelled account tables.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model file.
    #[arg(long, env = "FOLLOWGUARD_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Account tables (CSV, or JSON: .jsonl / .ndjson / .json): PATH or GROUP:LABEL:PATH.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<DataSpec>,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Evaluate on a platform's field set (issue 24): the fields that platform's
    /// profiles lack become missing values in every row.
    #[arg(long, value_enum, default_value = "x")]
    pub mask_platform: crate::input::PlatformMask,
}

/// `followguard lovo`: the leave-one-vendor-out protocol on cresci-2015.
#[derive(Args, Debug)]
pub struct LovoArgs {
    /// The labelled cresci-2015 file (default: <data dir>/cresci-2015/all_users_labeled.csv).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Humans never seen in training (default: <data dir>/cresci-2017/genuine_accounts.csv).
    #[arg(long)]
    pub genuine: Option<PathBuf>,
    /// Other bot populations for robustness rows (default: cresci-2017 social spambots 1–3).
    #[arg(long, num_args = 0..)]
    pub spambots: Option<Vec<PathBuf>>,
    /// Extra training rows added to every fold (e.g. another human population, to
    /// measure whether it helps); PATH or GROUP:LABEL:PATH. Keep them disjoint from
    /// `--genuine`.
    #[arg(long, num_args = 1..)]
    pub extra_train: Vec<DataSpec>,
    /// Vendor groups to leave out in turn.
    #[arg(long, value_delimiter = ',', default_value = "FSF,INT,TWT")]
    pub vendors: Vec<String>,
    /// Fraction of the humans held out of training and added to each test set.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// If set, write each fold's model as <dir>/lovo-<VENDOR>.json.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    pub forest: ForestArgs,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `followguard lodo`: leave-one-dataset-out — every human population and every bot set
/// of the data directory held out in turn (see `modelcli::lodo`).
#[derive(Args, Debug)]
pub struct LodoArgs {
    /// Data sets the model is trained on (keys: E13, TFP, g17, gilani-h, feedback-h,
    /// stock-h, FSF, INT, TWT, sb1, sb2, sb3, gilani-b, feedback-b, pronbots, botwiki,
    /// political, stock-b). Default: the shipped default's recipe.
    #[arg(long, value_delimiter = ',', default_value = "E13,TFP,g17,FSF,INT,TWT")]
    pub train_sets: Vec<String>,
    /// Human populations held out in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "E13,TFP,g17,gilani-h,feedback-h,stock-h"
    )]
    pub human_sets: Vec<String>,
    /// Bot sets held out in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "FSF,INT,TWT,sb1,sb2,sb3,gilani-b,feedback-b,pronbots,botwiki,political,stock-b"
    )]
    pub bot_sets: Vec<String>,
    /// Fraction of every human population held out of the bot folds' training (their
    /// reference humans).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    #[command(flatten)]
    pub forest: ForestArgs,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Print the tables as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_lodo(a: LodoArgs) -> anyhow::Result<()> {
    let sets = lodo::load_sets(&dataset::data_dir(), &a.columns.columns())?;
    let r = lodo::lodo(
        &sets,
        &a.train_sets,
        &a.human_sets,
        &a.bot_sets,
        a.holdout,
        &a.forest.params(String::new()),
    )?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", lodo::render(&r));
    }
    Ok(())
}

/// `followguard score`: JSONL follow events on stdin → one JSON line per event on stdout;
/// or, with `--accounts`, every account of account tables → one JSON line per account.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model file.
    #[arg(long, env = "FOLLOWGUARD_MODEL", default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Score the accounts of these tables (CSV, or JSON: .jsonl / .ndjson / .json, as for
    /// `eval`; labels not needed) instead of events on stdin, each at its own crawl time
    /// (or `--as-of`): a suspect follower list exported from the platform, for example.
    #[arg(long, num_args = 1..)]
    pub accounts: Vec<DataSpec>,
    #[command(flatten)]
    pub columns: ColumnArgs,
    #[command(flatten)]
    pub format: crate::input::FormatArgs,
    #[command(flatten)]
    pub profiles: crate::input::ProfileFileArgs,
}

/// The reasons of a score as the `score` command prints them.
fn reasons_json(s: &Score) -> Vec<serde_json::Value> {
    s.reasons
        .iter()
        .map(|r| json!({"code": r.code(), "feature": r.feature_name(), "contribution": r.contribution}))
        .collect()
}

/// Loads a model, turning a failure into a configuration error (exit 64).
pub fn load_model(path: &Path) -> anyhow::Result<Model> {
    model_file::load(path).map_err(|e| anyhow::Error::new(ConfigError(e.to_string())))
}

fn today_version() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 / 86_400)
        .unwrap_or(0);
    let (y, m, d) = followguard_core::time::civil_from_days(days);
    format!("fg-rf-{y:04}.{m:02}.{d:02}-1")
}

fn progress_bar(label: &str) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        if done == total || done % 10 == 0 {
            eprint!("\r{label}: tree {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
}

pub fn run_train(a: TrainArgs) -> anyhow::Result<()> {
    let rows = dataset::load_all(&a.data, &a.columns.columns())?;
    let version = a.model_version.clone().unwrap_or_else(today_version);
    let data = a
        .data
        .iter()
        .map(|d| d.path.display().to_string())
        .collect();
    let params = a.forest.params(version);
    let trained = train::train(&rows, data, &params, progress_bar("training"))?;
    let sha = model_file::save(&trained.model, &a.out).context("writing the model")?;
    let oob = &trained.model.file().evaluation["out_of_bag"];
    if a.json {
        println!(
            "{}",
            json!({"model": a.out, "version": trained.model.version(), "sha256": sha,
                   "threshold": trained.model.threshold(), "nodes": trained.model.n_nodes(),
                   "out_of_bag": oob})
        );
    } else {
        println!(
            "wrote {} (version {}, sha256 {sha}, {} trees, {} nodes, threshold {:.4})",
            a.out.display(),
            trained.model.version(),
            trained.model.n_trees(),
            trained.model.n_nodes(),
            trained.model.threshold()
        );
        println!("out-of-bag: {oob}");
    }
    Ok(())
}

/// Scores rows with a model.
pub fn score_rows(m: &Model, rows: &[Row]) -> Vec<f32> {
    rows.iter()
        .map(|r| m.score(&r.profile, r.now_ms).prob)
        .collect()
}

/// Full report plus per-group breakdown, as JSON.
pub fn evaluate(m: &Model, rows: &[Row]) -> serde_json::Value {
    let probs = score_rows(m, rows);
    let labels: Vec<bool> = rows.iter().map(|r| r.label).collect();
    let groups: Vec<String> = rows.iter().map(|r| r.group.clone()).collect();
    let groups = eval::split_mixed_groups(&labels, &groups);
    let report = Report::compute(&probs, &labels, m.threshold());
    let per_group = eval::by_group(&probs, &labels, &groups, m.threshold());
    json!({"model": m.version(), "sha256": m.sha256(), "overall": report, "groups": per_group})
}

pub fn run_eval(a: EvalArgs) -> anyhow::Result<()> {
    let m = load_model(&a.model)?;
    let mut rows = dataset::load_all(&a.data, &a.columns.columns())?;
    for r in &mut rows {
        a.mask_platform.apply(&mut r.profile);
    }
    let v = evaluate(&m, &rows);
    if a.json {
        println!("{v}");
        return Ok(());
    }
    let r: Report = serde_json::from_value(v["overall"].clone())?;
    println!(
        "model {} ({} rows: {} bots, {} humans)",
        m.version(),
        r.n,
        r.bots,
        r.humans
    );
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "ROC-AUC {}  PR-AUC {}  precision@recall0.90 {}  recall@FPR1% {}  ECE {:.4}",
        f(r.roc_auc),
        f(r.pr_auc),
        f(r.precision_at_recall_90),
        f(r.recall_at_fpr_1pct),
        r.ece
    );
    println!(
        "at threshold {:.4}: precision {:.4} recall {:.4} F1 {:.4} FPR {:.4}  (tp {} fp {} tn {} fn {})",
        r.threshold, r.precision, r.recall, r.f1, r.false_positive_rate, r.confusion.tp, r.confusion.fp, r.confusion.tn, r.confusion.fn_
    );
    if let Some(groups) = v["groups"].as_object() {
        println!(
            "{:<24} {:>6} {:>6} {:>9} {:>9} {:>7} {:>10} {:>10}",
            "group", "n", "bots", "flagged", "mean_p", "ECE", "auc_vs_h", "R@1%FPR_h"
        );
        let opt = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |v| format!("{v:.4}"));
        for (g, gr) in groups {
            println!(
                "{:<24} {:>6} {:>6} {:>9.4} {:>9.4} {:>7.4} {:>10} {:>10}",
                g,
                gr["n"].as_u64().unwrap_or(0),
                gr["bots"].as_u64().unwrap_or(0),
                gr["flagged_rate"].as_f64().unwrap_or(0.0),
                gr["mean_prob"].as_f64().unwrap_or(0.0),
                gr["ece"].as_f64().unwrap_or(0.0),
                opt(&gr["roc_auc_vs_humans"]),
                opt(&gr["recall_at_fpr_1pct"])
            );
        }
    }
    Ok(())
}

/// One fold's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LovoRow {
    pub vendor: String,
    pub train_rows: usize,
    pub test_bots: usize,
    pub test_humans: usize,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub threshold: f32,
    pub recall: f64,
    /// Recall at the cut that flags 1 % of the fold's holdout humans.
    pub recall_at_fpr_1pct: Option<f64>,
    pub holdout_fpr: f64,
    pub ece: f64,
    pub genuine_2017_fpr: Option<f64>,
    pub genuine_2017_mean_prob: Option<f64>,
    /// Spambot file → share flagged (robustness, not the target class).
    pub spambots_flagged: BTreeMap<String, f64>,
}

/// Splits cresci-2015 rows for one vendor fold: train = other vendors + non-holdout
/// humans; test = the vendor + holdout humans.
pub fn lovo_split(rows: &[Row], vendor: &str, holdout: f64, seed: u64) -> (Vec<Row>, Vec<Row>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    for r in rows {
        if r.label {
            if r.group == vendor {
                test.push(r.clone());
            } else {
                train.push(r.clone());
            }
        } else if dataset::in_holdout(&r.profile.id, seed, holdout) {
            test.push(r.clone());
        } else {
            train.push(r.clone());
        }
    }
    (train, test)
}

/// Runs the protocol; returns the table and the fold models.
pub fn lovo(
    rows: &[Row],
    genuine: Option<&[Row]>,
    spambots: &[(String, Vec<Row>)],
    vendors: &[String],
    holdout: f64,
    extra_train: &[Row],
    template: &TrainParams,
) -> anyhow::Result<Vec<(LovoRow, Model)>> {
    let mut out = Vec::new();
    for v in vendors {
        let (mut train_rows, test_rows) = lovo_split(rows, v, holdout, template.seed);
        train_rows.extend_from_slice(extra_train);
        let test_bots = test_rows.iter().filter(|r| r.label).count();
        if test_bots == 0 {
            return Err(
                ConfigError(format!("vendor group {v:?} has no bot rows in the data")).into(),
            );
        }
        let params = TrainParams {
            model_version: format!("fg-rf-lovo-{v}"),
            ..template.clone()
        };
        let label = format!("lovo {v}");
        let trained = train::train(
            &train_rows,
            vec![format!(
                "cresci-2015 without {v}, without {:.0}% holdout humans",
                holdout * 100.0
            )],
            &params,
            progress_bar(&label),
        )?;
        let m = trained.model;
        let probs = score_rows(&m, &test_rows);
        let labels: Vec<bool> = test_rows.iter().map(|r| r.label).collect();
        let rep = Report::compute(&probs, &labels, m.threshold());
        let (gen_fpr, gen_mean) = match genuine {
            Some(g) if !g.is_empty() => {
                let p = score_rows(&m, g);
                let flagged = p.iter().filter(|&&x| x >= m.threshold()).count();
                let mean = p.iter().map(|&x| f64::from(x)).sum::<f64>() / p.len() as f64;
                (Some(flagged as f64 / p.len() as f64), Some(mean))
            }
            _ => (None, None),
        };
        let spam = spambots
            .iter()
            .map(|(name, rs)| {
                let p = score_rows(&m, rs);
                let flagged = p.iter().filter(|&&x| x >= m.threshold()).count();
                (name.clone(), flagged as f64 / p.len().max(1) as f64)
            })
            .collect();
        let row = LovoRow {
            vendor: v.clone(),
            train_rows: train_rows.len(),
            test_bots,
            test_humans: test_rows.len() - test_bots,
            roc_auc: rep.roc_auc,
            pr_auc: rep.pr_auc,
            threshold: m.threshold(),
            recall: rep.recall,
            recall_at_fpr_1pct: rep.recall_at_fpr_1pct,
            holdout_fpr: rep.false_positive_rate,
            ece: rep.ece,
            genuine_2017_fpr: gen_fpr,
            genuine_2017_mean_prob: gen_mean,
            spambots_flagged: spam,
        };
        let m = m.with_evaluation("lovo_test", serde_json::to_value(&row)?)?;
        out.push((row, m));
    }
    Ok(out)
}

fn default_path(p: Option<PathBuf>, rel: &str) -> PathBuf {
    p.unwrap_or_else(|| dataset::data_dir().join(rel))
}

pub fn run_lovo(a: LovoArgs) -> anyhow::Result<()> {
    let cols = a.columns.columns();
    let data = default_path(a.data.clone(), "cresci-2015/all_users_labeled.csv");
    let rows = dataset::load_all(
        &[DataSpec {
            path: data,
            group: None,
            label: None,
            keep: None,
        }],
        &cols,
    )?;
    let genuine_path = default_path(a.genuine.clone(), "cresci-2017/genuine_accounts.csv");
    let genuine = dataset::load_all(
        &[DataSpec {
            path: genuine_path,
            group: Some("genuine_2017".into()),
            label: Some(false),
            keep: None,
        }],
        &cols,
    )?;
    let spam_paths = a.spambots.clone().unwrap_or_else(|| {
        (1..=3)
            .map(|i| dataset::data_dir().join(format!("cresci-2017/social_spambots_{i}.csv")))
            .collect()
    });
    let mut spambots = Vec::new();
    for p in spam_paths {
        let name = p
            .file_stem()
            .map_or("spambots".into(), |s| s.to_string_lossy().into_owned());
        let rs = dataset::load_all(
            &[DataSpec {
                path: p,
                group: Some(name.clone()),
                label: Some(true),
                keep: None,
            }],
            &cols,
        )?;
        spambots.push((name, rs));
    }
    let extra = if a.extra_train.is_empty() {
        Vec::new()
    } else {
        dataset::load_all(&a.extra_train, &cols)?
    };
    let results = lovo(
        &rows,
        Some(&genuine),
        &spambots,
        &a.vendors,
        a.holdout,
        &extra,
        &a.forest.params(String::new()),
    )?;
    if let Some(dir) = &a.out_dir {
        for (row, m) in &results {
            let path = dir.join(format!("lovo-{}.json", row.vendor));
            let sha = model_file::save(m, &path)?;
            eprintln!("wrote {} (sha256 {sha})", path.display());
        }
    }
    let table: Vec<&LovoRow> = results.iter().map(|(r, _)| r).collect();
    if a.json {
        println!("{}", serde_json::to_string(&table)?);
        return Ok(());
    }
    println!(
        "{:<6} {:>8} {:>8} {:>7} {:>8} {:>8} {:>9} {:>7} {:>9} {:>9}  spambots flagged",
        "vendor",
        "ROC-AUC",
        "PR-AUC",
        "thresh",
        "recall",
        "R@1%FPR",
        "hold-FPR",
        "ECE",
        "gen17FPR",
        "gen17p"
    );
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    for r in table {
        println!(
            "{:<6} {:>8} {:>8} {:>7.4} {:>8.4} {:>8} {:>9.4} {:>7.4} {:>9} {:>9}  {:?}",
            r.vendor,
            f(r.roc_auc),
            f(r.pr_auc),
            r.threshold,
            r.recall,
            f(r.recall_at_fpr_1pct),
            r.holdout_fpr,
            r.ece,
            f(r.genuine_2017_fpr),
            f(r.genuine_2017_mean_prob),
            r.spambots_flagged
                .iter()
                .map(|(k, v)| format!("{k}={v:.3}"))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// One output line for one input line.
pub fn score_line(m: &Model, line: &[u8]) -> serde_json::Value {
    match event::parse(line) {
        Err(e) => json!({"error": e.kind(), "message": e.to_string()}),
        Ok(ev) => match ev.ts_ms {
            None => json!({"error": "missing_field", "message": "missing required field `ts`",
                           "event_id": ev.event_id}),
            Some(ts) => {
                // The service's score for this event: computed at the event day's
                // midpoint, exactly as its cache does (reasons not quantised here).
                let s: Score = m.score(&ev.follower, followguard_core::model::score_time(ts));
                json!({
                    "event_id": ev.event_id,
                    "followee_id": ev.followee_id,
                    "follower_id": ev.follower.id,
                    "prob": s.prob,
                    "suspicious": s.prob >= m.threshold(),
                    "reasons": reasons_json(&s),
                })
            }
        },
    }
}

/// `score --accounts`: one line per usable account, at its crawl time.
fn score_accounts(m: &Model, a: &ScoreArgs) -> anyhow::Result<()> {
    let cols = a.columns.columns();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0usize;
    for spec in &a.accounts {
        // Labels are not needed to score: a file without any reads as unlabelled.
        let unlabelled = DataSpec {
            label: spec.label.or(Some(false)),
            ..spec.clone()
        };
        let (rows, report) = dataset::load(&unlabelled, &cols)?;
        eprintln!(
            "scoring {} accounts from {} (skipped: {:?})",
            report.rows,
            spec.path.display(),
            report.skipped
        );
        for r in &rows {
            let s = m.score(&r.profile, r.now_ms);
            let v = json!({
                "account_id": r.profile.id,
                "group": r.group,
                "as_of": r.now_ms,
                "prob": s.prob,
                "suspicious": s.prob >= m.threshold(),
                "reasons": reasons_json(&s),
            });
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        }
        n += rows.len();
    }
    out.flush()?;
    eprintln!("scored {n} accounts");
    Ok(())
}

pub fn run_score(a: ScoreArgs) -> anyhow::Result<()> {
    let m = load_model(&a.model)?;
    eprintln!("scoring with model {} (sha256 {})", m.version(), m.sha256());
    if !a.accounts.is_empty() {
        return score_accounts(&m, &a);
    }
    let decoder = crate::input::Decoder::open(a.format.input_format, &a.profiles)?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::new();
    let (mut n, mut errors) = (0u64, 0u64);
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf).context("reading stdin")? == 0 {
            break;
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Issue 24: a payload of another format may hold several follows, or none.
        let lines = match decoder.decode(line) {
            Err(e) => vec![json!({"error": e.kind(), "message": e.to_string()})],
            Ok(Decoded::Ignored(why)) => vec![json!({"ignored": why})],
            Ok(d) => d.events().into_iter().map(|e| score_line(&m, e)).collect(),
        };
        for v in lines {
            n += 1;
            if v.get("error").is_some() {
                errors += 1;
            }
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    eprintln!("scored {} events, {errors} malformed", n - errors);
    Ok(())
}
