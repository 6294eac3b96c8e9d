//! Model file round trip, validation of bad files, reasons and the score cache, on a
//! small model trained from synthetic rows (no data files needed).

use followguard_core::event::Profile;
use followguard_core::features::{FEATURE_NAMES, N_FEATURES};
use followguard_core::model::{combine, score_time, Model, ScoreCache};
use followguard_train::dataset::Row;
use followguard_train::model_file;
use followguard_train::train::{train, SpecialistCalibration, TrainParams, POOLED_GROUP};
use std::borrow::Cow;

const NOW_MS: i64 = 1_420_070_400_000; // 2015-01-01

/// Deterministic pseudo-random numbers (xorshift) so the data is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn profile(i: usize, bot: bool, rng: &mut Rng) -> Profile<'static> {
    let (st, fo, fr) = if bot {
        (rng.next(40), rng.next(25), 200 + rng.next(1500))
    } else {
        (
            200 + rng.next(20_000),
            50 + rng.next(2000),
            50 + rng.next(800),
        )
    };
    Profile {
        id: Cow::Owned(format!("{}{i}", if bot { "b" } else { "h" })),
        screen_name: Cow::Owned(if bot {
            format!("user{}", rng.next(100_000))
        } else {
            format!("anna_{i}")
        }),
        name: Cow::Owned(if bot { "x".into() } else { "Anna Rossi".into() }),
        description: Cow::Owned(if bot && rng.next(2) == 0 {
            String::new()
        } else {
            "hello world".into()
        }),
        url: (!bot && rng.next(2) == 0).then(|| Cow::Owned("http://example.org".into())),
        location: Cow::Owned(if rng.next(3) == 0 {
            String::new()
        } else {
            "Roma".into()
        }),
        created_at_s: NOW_MS / 1000 - 86_400 * (30 + rng.next(2000) as i64),
        followers_count: Some(fo),
        friends_count: Some(fr),
        statuses_count: Some(st),
        favourites_count: Some(if bot { rng.next(3) } else { rng.next(3000) }),
        listed_count: Some(if bot { 0 } else { rng.next(20) }),
        default_profile: bot || rng.next(4) == 0,
        ..Profile::default()
    }
}

fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let bot = i % 2 == 0;
            Row {
                profile: profile(i, bot, &mut rng),
                now_ms: NOW_MS,
                label: bot,
                group: if bot { "BOT".into() } else { "HUM".into() },
            }
        })
        .collect()
}

fn small_model() -> Model {
    let params = TrainParams {
        n_trees: 12,
        max_depth: 6,
        ..TrainParams::default()
    };
    train(&rows(300, 7), vec!["synthetic".into()], &params, |_, _| {})
        .expect("training on synthetic rows")
        .model
}

#[test]
fn save_load_round_trip_gives_identical_scores() {
    let m = small_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    let sha = model_file::save(&m, &path).unwrap();
    let loaded = model_file::load(&path).unwrap();
    assert_eq!(loaded.sha256(), sha, "sha256 is of the file bytes");
    assert_eq!(
        m.sha256(),
        sha,
        "in-memory model reports the sha its file will have"
    );
    assert_eq!(loaded.version(), m.version());
    assert_eq!(loaded.threshold(), m.threshold());
    // Everything scoring reads survives JSON exactly (f32 is written shortest-round-trip).
    let (a, b) = (loaded.file(), m.file());
    assert_eq!(a.forest, b.forest);
    assert_eq!(a.linear, b.linear);
    assert_eq!(a.calibration, b.calibration);
    assert_eq!(a.name_model, b.name_model);
    assert_eq!((a.blend, &a.feature_names), (b.blend, &b.feature_names));
    for r in rows(200, 99) {
        assert_eq!(
            m.score(&r.profile, r.now_ms),
            loaded.score(&r.profile, r.now_ms)
        );
    }
}

/// Issue 24: `train` records each node's training coverage, the file keeps it, and a
/// missing count is scored by descending both sides in those proportions: the model
/// still separates the synthetic task with favourites and listed counts unknown, and
/// coverage changes the scores (it is used), unlike the ½-½ split of older files.
#[test]
fn trained_coverage_is_saved_and_scores_missing_counts() {
    let m = small_model();
    for t in &m.file().forest.trees {
        assert_eq!(t.coverage.len(), t.feature.len());
        assert_eq!(t.coverage[0], 1.0);
        for i in 0..t.feature.len() {
            if t.feature[i] >= 0 {
                let (l, r) = (t.left[i] as usize, t.right[i] as usize);
                assert!((t.coverage[l] + t.coverage[r] - t.coverage[i]).abs() < 1e-4);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    model_file::save(&m, &path).unwrap();
    let loaded = model_file::load(&path).unwrap();
    assert_eq!(loaded.file().forest, m.file().forest);
    let mut without = m.file().clone();
    for t in &mut without.forest.trees {
        t.coverage.clear();
    }
    let without = Model::from_file(without, String::new(), "no coverage").unwrap();
    let test = rows(400, 4321);
    let labels: Vec<bool> = test.iter().map(|r| r.label).collect();
    let mut differ = 0;
    let probs: Vec<f32> = test
        .iter()
        .map(|r| {
            let mut p = r.profile.clone();
            p.favourites_count = None;
            p.listed_count = None;
            let s = loaded.score(&p, r.now_ms);
            differ += usize::from(s.prob != without.score(&p, r.now_ms).prob);
            assert!(s.prob.is_finite());
            s.prob
        })
        .collect();
    let auc = followguard_train::eval::roc_auc(&probs, &labels).unwrap();
    assert!(auc > 0.95, "missing favourites and listed: auc {auc}");
    assert!(differ > 0, "coverage is what weighs a missing split");
}

#[test]
fn model_separates_and_is_calibrated_on_its_synthetic_task() {
    let m = small_model();
    let test = rows(400, 1234);
    let probs: Vec<f32> = test
        .iter()
        .map(|r| m.score(&r.profile, r.now_ms).prob)
        .collect();
    let labels: Vec<bool> = test.iter().map(|r| r.label).collect();
    let auc = followguard_train::eval::roc_auc(&probs, &labels).unwrap();
    assert!(auc > 0.99, "synthetic bots are easy: auc {auc}");
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn reasons_add_up_and_point_the_right_way() {
    let m = small_model();
    let mut rng = Rng(5);
    for (i, bot) in [(0, true), (1, false), (2, true), (3, false)] {
        let p = profile(i, bot, &mut rng);
        let x = m.features(&p, NOW_MS);
        let (raw, contrib) = m.raw(&x);
        let total: f32 = contrib.iter().sum();
        assert!(
            (m.base_value() + total - raw).abs() < 1e-4,
            "Saabas decomposition is exact"
        );
        let s = m.score(&p, NOW_MS);
        let suspicious = s.prob >= m.threshold();
        assert_eq!(
            suspicious, bot,
            "synthetic profile {i} misclassified: {s:?}"
        );
        // Strongest first, all in the direction of the decision.
        let k: Vec<f32> = s
            .reasons
            .iter()
            .map(|r| if bot { r.contribution } else { -r.contribution })
            .collect();
        assert!(k[0] >= k[1] && k[1] >= k[2], "{k:?}");
        assert!(k[0] > 0.0);
        for r in &s.reasons {
            assert!(usize::from(r.feature) < N_FEATURES);
            assert!(!r.code().is_empty() && r.code() != "unknown");
        }
    }
}

fn corrupt(
    m: &Model,
    f: impl FnOnce(&mut serde_json::Value),
) -> followguard_core::model::ModelError {
    let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    f(&mut v);
    Model::from_bytes(&serde_json::to_vec(&v).unwrap(), "test.json").unwrap_err()
}

#[test]
fn detection_threshold_is_trained_below_the_flag_and_optional_in_old_files() {
    // Issue 22: two operating points. Training sets the detector's below the flag's.
    let m = small_model();
    let det = m
        .file()
        .detection_threshold
        .expect("trained with a detection budget");
    assert!(det <= m.threshold(), "{det} > {}", m.threshold());
    assert_eq!(m.detection_threshold(), det);
    // A file made before the field existed loads; its detector uses the threshold.
    let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    v.as_object_mut().unwrap().remove("detection_threshold");
    let old = Model::from_bytes(&serde_json::to_vec(&v).unwrap(), "old.json").unwrap();
    assert_eq!(old.detection_threshold(), old.threshold());
    assert_eq!(old.file().detection_threshold, None);
    assert!(
        !String::from_utf8(old.to_json())
            .unwrap()
            .contains("detection_threshold"),
        "an old file re-serialises without the field (same content)"
    );
    // A detection point above the flag (it would moderate follows it does not count) or
    // outside [0, 1] is refused, naming the field.
    for bad in [m.threshold() + 0.01, -0.1] {
        let err = corrupt(&m, |v| v["detection_threshold"] = bad.into());
        assert_eq!(err.kind(), "model_invalid");
        assert!(err.to_string().contains("detection_threshold"), "{err}");
    }
}

#[test]
fn mismatched_feature_list_is_rejected_with_a_clear_error() {
    let m = small_model();
    let err = corrupt(&m, |v| {
        v["feature_names"][0] = serde_json::json!("lang");
    });
    assert_eq!(err.kind(), "model_feature_mismatch");
    let msg = err.to_string();
    assert!(
        msg.contains("lang") && msg.contains(FEATURE_NAMES[0]),
        "{msg}"
    );
    assert!(msg.contains("retrain"), "says what to do: {msg}");
    let err = corrupt(&m, |v| {
        v["feature_names"].as_array_mut().unwrap().pop();
    });
    assert_eq!(err.kind(), "model_feature_mismatch");
}

#[test]
fn corrupt_or_foreign_files_are_rejected() {
    let m = small_model();
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "model_format",
            Box::new(|v| v["format_version"] = 99.into()),
        ),
        ("model_format", Box::new(|v| v["format"] = "sklearn".into())),
        (
            "model_invalid",
            Box::new(|v| v["forest"]["trees"][0]["left"][0] = 0.into()),
        ),
        (
            "model_invalid",
            Box::new(|v| v["forest"]["trees"][0]["feature"][0] = 500.into()),
        ),
        (
            "model_invalid",
            Box::new(|v| {
                v["forest"]["trees"][0]["value"]
                    .as_array_mut()
                    .unwrap()
                    .pop()
                    .map(drop)
                    .unwrap_or(())
            }),
        ),
        ("model_invalid", Box::new(|v| v["threshold"] = 1.5.into())),
        (
            "model_invalid",
            Box::new(|v| v["calibration"]["x"] = serde_json::json!([0.9, 0.1])),
        ),
        (
            "model_invalid",
            Box::new(|v| v["forest"]["trees"] = serde_json::json!([])),
        ),
        (
            "model_invalid",
            Box::new(|v| v["name_model"]["log_prob"] = serde_json::json!([[0.0]])),
        ),
        ("model_json", Box::new(|v| v["blend"] = "half".into())),
    ];
    for (kind, f) in cases {
        let err = corrupt(&m, f);
        assert_eq!(err.kind(), kind, "{err}");
    }
    let err = Model::from_bytes(b"{not json", "x.json").unwrap_err();
    assert_eq!(err.kind(), "model_json");
    let err = model_file::load(std::path::Path::new("/nonexistent/model.json")).unwrap_err();
    assert_eq!(err.kind(), "model_io");
    assert!(err.to_string().contains("followguard train"), "{err}");
}

#[test]
fn score_cache_hits_misses_and_stays_bounded() {
    let m = small_model();
    let mut cache = ScoreCache::new(64);
    let bytes = cache.memory_bytes();
    let rs = rows(500, 3);
    for r in &rs {
        // The cache returns the quantised score at the day's midpoint, miss or hit
        // (reason contributions at 16 significant bits; prob exact).
        let direct = ScoreCache::quantise(&m.score(&r.profile, score_time(r.now_ms)));
        assert_eq!(cache.get_or_score(&m, &r.profile, r.now_ms), direct);
        assert!(cache.len() <= cache.capacity());
    }
    assert_eq!((cache.hits(), cache.misses()), (0, 500));
    assert_eq!(cache.memory_bytes(), bytes, "memory fixed at construction");
    // The most recent follower is cached (LRU never evicts the newest): a repeat is a
    // hit with the same score.
    let last = &rs[499];
    let before = cache.hits();
    let s = cache.get_or_score(&m, &last.profile, last.now_ms);
    assert_eq!(cache.hits(), before + 1);
    assert_eq!(
        s,
        ScoreCache::quantise(&m.score(&last.profile, score_time(last.now_ms)))
    );
    // Later the same day: still a hit, and exactly what an empty cache computes then, so
    // outputs never depend on what was cached.
    let day = 86_400_000;
    let end_of_day = last.now_ms.div_euclid(day) * day + day - 1;
    let hit = cache.get_or_score(&m, &last.profile, end_of_day);
    assert_eq!(cache.hits(), before + 2);
    assert_eq!(
        hit,
        ScoreCache::new(8).get_or_score(&m, &last.profile, end_of_day)
    );
    // Changed counts or a later day: a fresh score, not a stale one.
    let mut changed = last.profile.clone();
    changed.followers_count = changed.followers_count.map(|c| c + 1000);
    assert_eq!(
        cache.get_or_score(&m, &changed, last.now_ms),
        ScoreCache::quantise(&m.score(&changed, score_time(last.now_ms)))
    );
    let next_day = last.now_ms + 86_400_000;
    assert_eq!(
        cache.get_or_score(&m, &last.profile, next_day),
        ScoreCache::quantise(&m.score(&last.profile, score_time(next_day)))
    );
    assert_eq!(cache.hits(), before + 2);
    // A small working set fits entirely and is served from the cache.
    let mut small = ScoreCache::new(1024);
    for _ in 0..3 {
        for r in &rs[..100] {
            small.get_or_score(&m, &r.profile, r.now_ms);
        }
    }
    // 8-way sets: a set would need nine of the 100 ids to evict one.
    assert_eq!(small.len(), 100);
    assert_eq!(small.hits(), 200);
    assert_eq!(small.hits() + small.misses(), 300);
}

#[test]
fn training_rejects_one_class_data() {
    let only_bots: Vec<Row> = rows(50, 1).into_iter().filter(|r| r.label).collect();
    let err = train(&only_bots, vec![], &TrainParams::default(), |_, _| {})
        .err()
        .unwrap();
    assert!(err.to_string().contains("both bots and humans"), "{err}");
}

#[test]
fn training_is_reproducible() {
    // Same data and seed ⇒ byte-identical model file (the model card's commands
    // reproduce the shipped files exactly).
    let a = small_model();
    let b = small_model();
    assert_eq!(a.sha256(), b.sha256());
    assert_eq!(a.to_json(), b.to_json());
}

#[test]
fn score_cache_evicts_least_recently_used_within_capacity() {
    let m = small_model();
    let rs = rows(4096, 11);
    // A working set of 1/16 of the capacity stays resident across passes. (Keys are
    // randomly seeded; a set overflows only if 9 of the 256 ids land in one of 512 sets,
    // odds about 1e-6.)
    let mut cache = ScoreCache::new(4096);
    for _ in 0..3 {
        for r in &rs[..256] {
            cache.get_or_score(&m, &r.profile, r.now_ms);
        }
    }
    assert_eq!(cache.misses(), 256, "only the first pass misses");
    assert_eq!(cache.len(), 256);
    // One set's worth (capacity 8 = a single 8-way set): the 9th id evicts the LRU one.
    let mut one = ScoreCache::new(8);
    for r in &rs[..9] {
        one.get_or_score(&m, &r.profile, r.now_ms);
    }
    assert_eq!(one.len(), 8);
    one.get_or_score(&m, &rs[8].profile, rs[8].now_ms);
    assert_eq!(one.hits(), 1, "newest stays");
    one.get_or_score(&m, &rs[0].profile, rs[0].now_ms);
    assert_eq!(one.misses(), 10, "oldest was evicted");
}

/// Issue 22: `--specialist-max` trains one calibrated specialist per bot group (format
/// 2), the trees split over them; the file round-trips; the score is the final map of the
/// maximum of the specialists' calibrated probabilities; every specialist's reasons add
/// up to its raw score; the same parameters without it still write format 1.
#[test]
fn specialist_max_trains_a_format_two_ensemble_that_round_trips() {
    use followguard_core::model::{FORMAT_VERSION, FORMAT_VERSION_SINGLE};
    let mut data = rows(300, 7);
    for (i, r) in data.iter_mut().enumerate() {
        if r.label && i % 4 == 0 {
            r.group = "BOT2".into();
        }
        if !r.label && i % 3 == 0 {
            r.group = "HUM2".into();
        }
    }
    let params = TrainParams {
        n_trees: 12,
        specialist_max: true,
        ..TrainParams::default()
    };
    let m = train(&data, vec!["synthetic".into()], &params, |_, _| {})
        .expect("training specialists")
        .model;
    let f = m.file();
    assert_eq!(f.format_version, FORMAT_VERSION);
    assert_eq!(m.n_parts(), 2);
    assert_eq!(m.n_trees(), 12, "12 trees split over two specialists");
    let groups: Vec<&str> = f.specialists.iter().map(|s| s.group.as_str()).collect();
    assert_eq!(groups, ["BOT", "BOT2"]);
    assert!(f.forest.trees.is_empty() && f.linear.weight.is_empty());
    assert_eq!(f.training.params["specialist_max"], true);
    assert_eq!(f.calibration.method, "isotonic_out_of_dataset");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    let sha = model_file::save(&m, &path).unwrap();
    let loaded = model_file::load(&path).unwrap();
    assert_eq!(loaded.sha256(), sha);
    assert_eq!(loaded.file().specialists, f.specialists);
    assert_eq!(loaded.file().calibration, f.calibration);
    let mut flagged = [0usize; 2];
    for r in rows(200, 99) {
        let s = loaded.score(&r.profile, r.now_ms);
        assert_eq!(s, m.score(&r.profile, r.now_ms));
        let x = m.features(&r.profile, r.now_ms);
        let best = f
            .specialists
            .iter()
            .enumerate()
            .map(|(k, sp)| sp.calibration.apply(m.raw_part(k, &x).0))
            .fold(f32::NEG_INFINITY, f32::max);
        assert!((f.calibration.apply(best) - s.prob).abs() < 1e-6);
        for k in 0..2 {
            let (raw, contrib) = m.raw_part(k, &x);
            let total: f32 = contrib.iter().sum();
            assert!((m.base_value_part(k) + total - raw).abs() < 1e-4);
        }
        flagged[usize::from(r.label)] += usize::from(s.prob >= m.threshold());
    }
    // It still separates the synthetic task.
    assert!(flagged[1] > 80 && flagged[0] < 10, "{flagged:?}");
    let single = train(
        &data,
        vec![],
        &TrainParams {
            specialist_max: false,
            ..params.clone()
        },
        |_, _| {},
    )
    .unwrap()
    .model;
    assert_eq!(single.file().format_version, FORMAT_VERSION_SINGLE);
    assert!(single.file().specialists.is_empty());
    // Specialists' maps fitted on humans of populations they never saw: recorded per
    // specialist and in the parameters; the trees are the same fits.
    let oop = TrainParams {
        specialist_calibration: Some(SpecialistCalibration::OutOfPopulation),
        ..params.clone()
    };
    let o = train(&data, vec![], &oop, |_, _| {}).unwrap().model;
    for (a, b) in o.file().specialists.iter().zip(&f.specialists) {
        assert_eq!(a.calibration.method, "isotonic_out_of_population");
        assert_eq!(b.calibration.method, "isotonic_oob");
        assert_eq!(a.forest, b.forest);
    }
    assert_eq!(
        o.file().training.params["specialist_calibration"],
        "out_of_population"
    );
    // The mean-of-trees experiment and the max ensemble exclude each other.
    let both = TrainParams {
        specialists: true,
        ..params.clone()
    };
    assert!(train(&data, vec![], &both, |_, _| {}).is_err());
    // A pooled member (every bot group against the humans) joins the max: trees split
    // over three members, named, recorded, and the file round trips.
    let pooled = TrainParams {
        specialist_pooled: true,
        ..params.clone()
    };
    let p = train(&data, vec![], &pooled, |_, _| {}).unwrap().model;
    let groups: Vec<&str> = p
        .file()
        .specialists
        .iter()
        .map(|s| s.group.as_str())
        .collect();
    assert_eq!(groups, ["BOT", "BOT2", POOLED_GROUP]);
    assert_eq!(p.n_parts(), 3);
    assert_eq!(p.n_trees(), 12, "12 trees split over three members");
    assert_eq!(p.file().training.params["specialist_pooled"], true);
    let path = dir.path().join("pooled.json");
    model_file::save(&p, &path).unwrap();
    let loaded = model_file::load(&path).unwrap();
    for r in rows(50, 5) {
        assert_eq!(
            loaded.score(&r.profile, r.now_ms),
            p.score(&r.profile, r.now_ms)
        );
    }
    // It needs the max ensemble.
    let alone = TrainParams {
        specialist_max: false,
        ..pooled
    };
    assert!(train(&data, vec![], &alone, |_, _| {}).is_err());
    // A power-mean combiner chosen on the nested scores: every candidate's figures are
    // recorded, the file holds the winner (none = the max) and scores with it.
    let power = TrainParams {
        specialist_power_mean: true,
        ..params.clone()
    };
    let w = train(&data, vec![], &power, |_, _| {}).unwrap().model;
    let choice = w.file().evaluation["combine_power_choice"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(choice.len(), 6, "{choice:?}");
    let best = choice
        .iter()
        .map(|c| c["mean_recall"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    let chosen = choice
        .iter()
        .find(|c| c["mean_recall"].as_f64() == Some(best))
        .unwrap();
    assert_eq!(
        chosen["power"].as_f64().map(|p| p as f32),
        w.file().combine_power,
        "{choice:?}"
    );
    assert_eq!(w.file().training.params["specialist_power_mean"], true);
    let path = dir.path().join("power.json");
    model_file::save(&w, &path).unwrap();
    let loaded = model_file::load(&path).unwrap();
    assert_eq!(loaded.file().combine_power, w.file().combine_power);
    for r in rows(50, 6) {
        let x = w.features(&r.profile, r.now_ms);
        let probs: Vec<f32> = w
            .file()
            .specialists
            .iter()
            .enumerate()
            .map(|(k, sp)| sp.calibration.apply(w.raw_part(k, &x).0))
            .collect();
        let expect = w
            .file()
            .calibration
            .apply(combine(w.file().combine_power, &probs));
        let s = loaded.score(&r.profile, r.now_ms);
        assert!((s.prob - expect).abs() < 1e-6);
    }
    let alone = TrainParams {
        specialist_max: false,
        ..power
    };
    assert!(train(&data, vec![], &alone, |_, _| {}).is_err());
}
