//! Issue 22: model format 2, an ensemble of specialists combined by the maximum of their
//! calibrated probabilities (Sayyadiharikandeh et al., CIKM 2020), and the explicit rules
//! between format 1 (one forest) and format 2.

use followguard_core::features::{NameModel, FEATURE_NAMES, N_FEATURES};
use followguard_core::model::{
    combine, Calibration, Forest, Linear, Model, ModelFile, Specialist, TrainingSummary, Tree,
    FORMAT, FORMAT_VERSION, FORMAT_VERSION_SINGLE, MAX_COMBINE_POWER,
};

/// One tree splitting feature `f` at 0.5: leaf `lo` below, `hi` above.
fn stump(f: i32, lo: f32, hi: f32) -> Forest {
    Forest {
        trees: vec![Tree {
            feature: vec![f, -1, -1],
            threshold: vec![0.5, 0.0, 0.0],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            value: vec![(lo + hi) / 2.0, lo, hi],
            coverage: vec![],
        }],
    }
}

/// A map that halves: raw r → r / 2.
fn halving() -> Calibration {
    Calibration {
        method: "test".into(),
        x: vec![0.0, 1.0],
        y: vec![0.0, 0.5],
    }
}

/// Format 2, forest only (blend 1): specialist "A" splits feature 0 (identity map),
/// specialist "B" splits feature 5 (its map halves); the final map is the identity.
fn two_specialists() -> ModelFile {
    ModelFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        model_version: "spec".into(),
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        threshold: 0.3,
        detection_threshold: None,
        calibration: Calibration::identity(),
        name_model: NameModel::fit([]),
        forest: Forest::default(),
        blend: 1.0,
        linear: Linear::default(),
        specialists: vec![
            Specialist {
                group: "A".into(),
                calibration: Calibration::identity(),
                forest: stump(0, 0.1, 0.9),
                linear: Linear::default(),
            },
            Specialist {
                group: "B".into(),
                calibration: halving(),
                forest: stump(5, 0.2, 0.8),
                linear: Linear::default(),
            },
        ],
        combine_power: None,
        training: TrainingSummary::default(),
        evaluation: serde_json::json!({}),
    }
}

fn x(f0: f32, f5: f32) -> [f32; N_FEATURES] {
    let mut x = [0.0f32; N_FEATURES];
    x[0] = f0;
    x[5] = f5;
    x
}

fn load(file: ModelFile) -> Result<Model, followguard_core::model::ModelError> {
    let bytes = serde_json::to_vec(&file).unwrap();
    Model::from_bytes(&bytes, "test.json")
}

#[test]
fn score_is_the_final_map_of_the_max_of_calibrated_specialists() {
    let m = load(two_specialists()).unwrap();
    assert_eq!((m.n_parts(), m.n_trees()), (2, 2));
    // A says 0.9, B says 0.2 → 0.1 after its map: max 0.9, with A's reason (feature 0).
    let s = m.score_features(&x(1.0, 0.0));
    assert!((s.prob - 0.9).abs() < 1e-6, "{s:?}");
    assert_eq!(s.reasons[0].feature, 0, "{s:?}");
    // A says 0.1, B says 0.8 → 0.4: B wins on its calibrated value, with its reason.
    let s = m.score_features(&x(0.0, 1.0));
    assert!((s.prob - 0.4).abs() < 1e-6, "{s:?}");
    assert_eq!(s.reasons[0].feature, 5, "{s:?}");
    // B's raw 0.8 beats A's raw 0.1, but it is the calibrated values that are compared:
    // A 0.9 > B 0.4.
    let s = m.score_features(&x(1.0, 1.0));
    assert!((s.prob - 0.9).abs() < 1e-6, "{s:?}");
    // Each specialist's reasons add up to its own raw score.
    for k in 0..2 {
        let (raw, contrib) = m.raw_part(k, &x(1.0, 1.0));
        let total: f32 = contrib.iter().sum();
        assert!(
            (m.base_value_part(k) + total - raw).abs() < 1e-6,
            "part {k}"
        );
    }
    // A missing feature descends both sides (½-½ without coverage): A votes 0.5.
    let s = m.score_features(&x(f32::NAN, 0.0));
    assert!((s.prob - 0.5).abs() < 1e-6, "{s:?}");
    // The file round-trips byte for byte and scores the same.
    let again = Model::from_bytes(&m.to_json(), "again.json").unwrap();
    assert_eq!(again.to_json(), m.to_json());
    assert_eq!(
        again.score_features(&x(0.0, 1.0)),
        m.score_features(&x(0.0, 1.0))
    );
}

#[test]
fn format_one_files_keep_their_layout() {
    // A format-1 file: one forest, no `specialists` key written, one part.
    let mut f = two_specialists();
    f.format_version = FORMAT_VERSION_SINGLE;
    f.forest = stump(0, 0.1, 0.9);
    f.specialists.clear();
    let m = load(f).unwrap();
    assert_eq!((m.n_parts(), m.n_trees()), (1, 1));
    let text = String::from_utf8(m.to_json()).unwrap();
    assert!(!text.contains("specialists"), "{text}");
    assert!(text.contains("\"format_version\":1"), "{text}");
    assert!((m.score_features(&x(1.0, 0.0)).prob - 0.9).abs() < 1e-6);
}

#[test]
fn each_layout_is_refused_in_the_other_version_with_a_message() {
    // Specialists in a format-1 file.
    let mut f = two_specialists();
    f.format_version = FORMAT_VERSION_SINGLE;
    f.forest = stump(0, 0.1, 0.9);
    let err = load(f).unwrap_err();
    assert_eq!(err.kind(), "model_invalid");
    assert!(
        err.to_string().contains("cannot carry specialists"),
        "{err}"
    );
    assert!(err.to_string().contains("retrain"), "{err}");
    // Format 2 without specialists.
    let mut f = two_specialists();
    f.specialists.clear();
    f.forest = stump(0, 0.1, 0.9);
    let err = load(f).unwrap_err();
    assert_eq!(err.kind(), "model_invalid");
    assert!(err.to_string().contains("at least one specialist"), "{err}");
    // Format 2 with a top-level forest as well.
    let mut f = two_specialists();
    f.forest = stump(0, 0.1, 0.9);
    let err = load(f).unwrap_err();
    assert!(err.to_string().contains("must be empty"), "{err}");
    // A broken specialist is named.
    let mut f = two_specialists();
    f.specialists[1].forest.trees[0].left[0] = 0;
    let err = load(f).unwrap_err();
    assert_eq!(err.kind(), "model_invalid");
    assert!(err.to_string().contains("specialist 1 (B)"), "{err}");
    let mut f = two_specialists();
    f.specialists[0].calibration.x = vec![0.9, 0.1];
    let err = load(f).unwrap_err();
    assert!(err.to_string().contains("specialist 0 (A)"), "{err}");
    let mut f = two_specialists();
    f.specialists[0].linear.weight = vec![f32::NAN];
    f.specialists[0].linear.mean = vec![0.0];
    let err = Model::from_file(f, String::new(), "t.json").unwrap_err();
    assert!(err.to_string().contains("linear part"), "{err}");
    // A newer (or unknown) version: the format error names the versions this build reads.
    let mut f = two_specialists();
    f.format_version = FORMAT_VERSION + 1;
    let err = load(f).unwrap_err();
    assert_eq!(err.kind(), "model_format");
    assert!(err.to_string().contains("versions 1 and 2"), "{err}");
    // Not JSON for this format: a specialist without a forest.
    let mut v = serde_json::to_value(two_specialists()).unwrap();
    v["specialists"][0]
        .as_object_mut()
        .unwrap()
        .remove("forest");
    let err = Model::from_bytes(&serde_json::to_vec(&v).unwrap(), "t.json").unwrap_err();
    assert_eq!(err.kind(), "model_json");
}

#[test]
fn a_power_mean_combines_the_specialists_and_is_validated() {
    let mut f = two_specialists();
    f.combine_power = Some(2.0);
    let m = load(f).unwrap();
    // A 0.9, B 0.1 (0.2 halved): sqrt((0.81 + 0.01) / 2), with the reasons of A, the
    // larger; p = 1 is their mean.
    let s = m.score_features(&x(1.0, 0.0));
    assert!((s.prob - (0.41f32).sqrt()).abs() < 1e-6, "{s:?}");
    assert_eq!(s.reasons[0].feature, 0, "{s:?}");
    assert!((combine(Some(1.0), &[0.9, 0.1]) - 0.5).abs() < 1e-6);
    assert!((combine(None, &[0.9, 0.1]) - 0.9).abs() < 1e-6);
    assert_eq!(combine(Some(4.0), &[]), 0.0);
    // Between the mean and the max, nearer the max as p grows.
    let (p4, p16) = (
        combine(Some(4.0), &[0.9, 0.1]),
        combine(Some(16.0), &[0.9, 0.1]),
    );
    assert!(0.5 < p4 && p4 < p16 && p16 < 0.9, "{p4} {p16}");
    // Written only when set, and round-trips.
    let text = String::from_utf8(m.to_json()).unwrap();
    assert!(text.contains("\"combine_power\":2.0"), "{text}");
    let again = Model::from_bytes(&m.to_json(), "again.json").unwrap();
    assert_eq!(again.to_json(), m.to_json());
    let plain = String::from_utf8(load(two_specialists()).unwrap().to_json()).unwrap();
    assert!(!plain.contains("combine_power"), "{plain}");
    // Refused: out of range, not finite, or in a format-1 file.
    for bad in [0.5, f32::NAN, MAX_COMBINE_POWER * 2.0] {
        let mut f = two_specialists();
        f.combine_power = Some(bad);
        let err = Model::from_file(f, String::new(), "t.json").unwrap_err();
        assert_eq!(err.kind(), "model_invalid");
        assert!(err.to_string().contains("combine_power"), "{err}");
    }
    let mut f = two_specialists();
    f.format_version = FORMAT_VERSION_SINGLE;
    f.forest = stump(0, 0.1, 0.9);
    f.specialists.clear();
    f.combine_power = Some(2.0);
    let err = load(f).unwrap_err();
    assert!(
        err.to_string().contains("cannot carry combine_power"),
        "{err}"
    );
}
