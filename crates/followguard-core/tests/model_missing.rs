//! Issue 24: missing feature values in the forest and the linear part.

mod support;

use followguard_core::features::{NameModel, FEATURE_NAMES, N_FEATURES};
use followguard_core::model::{
    Calibration, Forest, Linear, Model, ModelFile, TrainingSummary, Tree, FORMAT,
    FORMAT_VERSION_SINGLE,
};

/// One tree: `x[3] <= 0.5` → leaf 0.1 (80 % of training), else leaf 0.9 (20 %).
fn stump(coverage: Vec<f32>, blend: f32) -> Model {
    let file = ModelFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION_SINGLE,
        model_version: "stump".into(),
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        threshold: 0.5,
        detection_threshold: None,
        calibration: Calibration::identity(),
        name_model: NameModel::fit([]),
        forest: Forest {
            trees: vec![Tree {
                feature: vec![3, -1, -1],
                threshold: vec![0.5, 0.0, 0.0],
                left: vec![1, 0, 0],
                right: vec![2, 0, 0],
                value: vec![0.26, 0.1, 0.9],
                coverage,
            }],
        },
        blend,
        linear: Linear {
            intercept: 0.0,
            weight: vec![0.0, 0.0, 0.0, 2.0],
            mean: vec![0.0, 0.0, 0.0, 0.25],
        },
        specialists: vec![],
        combine_power: None,
        training: TrainingSummary::default(),
        evaluation: serde_json::json!({}),
    };
    Model::from_file(file, String::new(), "test").unwrap()
}

#[test]
fn a_split_on_a_missing_feature_descends_both_sides_by_training_coverage() {
    let mut x = [0.0f32; N_FEATURES];
    let m = stump(vec![1.0, 0.8, 0.2], 1.0);
    assert_eq!(m.raw(&x).0, 0.1);
    x[3] = 1.0;
    assert_eq!(m.raw(&x).0, 0.9);
    x[3] = f32::NAN;
    let (raw, contrib) = m.raw(&x);
    assert!(
        (raw - 0.26).abs() < 1e-6,
        "0.8 × 0.1 + 0.2 × 0.9, got {raw}"
    );
    assert!(
        contrib[3].abs() < 1e-6,
        "a missing value neither accuses nor clears"
    );
    // A model file without coverage (older files, the shipped ones): both sides alike.
    let old = stump(Vec::new(), 1.0);
    assert!((old.raw(&x).0 - 0.5).abs() < 1e-6);
}

#[test]
fn the_linear_part_reads_a_missing_feature_as_its_training_mean() {
    let m = stump(vec![1.0, 0.8, 0.2], 0.0);
    let mut x = [0.0f32; N_FEATURES];
    x[3] = 0.25;
    let at_mean = m.raw(&x);
    x[3] = f32::NAN;
    let missing = m.raw(&x);
    assert_eq!(at_mean.0, missing.0);
    assert!(missing.1.iter().all(|c| c.abs() < 1e-6));
}

#[test]
fn coverage_of_the_wrong_shape_is_refused() {
    let mut file = stump(Vec::new(), 1.0).file().clone();
    file.forest.trees[0].coverage = vec![1.0, 0.5];
    assert!(Model::from_file(file.clone(), String::new(), "t").is_err());
    file.forest.trees[0].coverage = vec![1.0, -0.5, 1.5];
    assert!(Model::from_file(file, String::new(), "t").is_err());
}

#[test]
fn shipped_model_scores_missing_values_finitely_and_reasons_add_up() {
    let m = support::shipped_model();
    // A coverage-less model serialises as it was read (the field is left out when empty).
    assert!(m.file().forest.trees.iter().all(|t| t.coverage.is_empty()));
    assert!(!String::from_utf8_lossy(&m.to_json()).contains("coverage"));
    let mut x = [0.5f32; N_FEATURES];
    for mask in [
        0u32,
        1 << 3,
        1 << 2 | 1 << 7,
        (1 << 9) | (1 << 10) | (1 << 12),
        0x3ffff,
    ] {
        for (i, v) in x.iter_mut().enumerate() {
            *v = if mask & (1 << i) != 0 {
                f32::NAN
            } else {
                0.5 + i as f32 * 0.1
            };
        }
        let (raw, contrib) = m.raw(&x);
        assert!(
            raw.is_finite() && (0.0..=1.0).contains(&raw),
            "{mask:x}: {raw}"
        );
        let sum: f32 = contrib.iter().sum();
        assert!(
            (m.base_value() + sum - raw).abs() < 1e-4,
            "{mask:x}: base {} + Σ {sum} vs {raw}",
            m.base_value()
        );
        let s = m.score_features(&x);
        assert!(s.prob.is_finite());
    }
}
