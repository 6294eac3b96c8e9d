//! Core stages of the pipeline on realistic events (issue #6): parse, features, score
//! (cache cold and warm), window update, the whole detector `observe`, and the whole
//! `Pipeline::process`. Events come from the built-in generator (`followguard generate`:
//! heavy-tailed followees, bought followers re-sold across followees, viral spikes),
//! padded with the v1.1 extras producers forward to ~0.8 KB — built in-process, no files.
//!
//! Small sample sizes and short measurement times keep the whole file to about a minute.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use followguard_bench::pipeline::{generated_stream, make_followers_distinct, Stream};
use followguard_core::detector::{Detector, DetectorConfig, Observation};
use followguard_core::event::{self, EventType, FollowEvent};
use followguard_core::keys::key_of;
use followguard_core::model::ScoreCache;
use followguard_core::pipeline::{Pipeline, PipelineConfig};
use followguard_core::window::FolloweeWindow;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Events per stream: enough distinct followers that the cold cache never hits.
const EVENTS: usize = 200_000;

fn ts(e: &FollowEvent<'_>) -> i64 {
    e.ts_ms.unwrap_or(0)
}

fn stages(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
    let model = Arc::new(followguard_train::model_file::load(&path).expect("models/default.json"));
    let stream: Stream = generated_stream(EVENTS, 1, true).expect("generator");
    let mut distinct: Stream = generated_stream(EVENTS, 1, true).expect("generator");
    make_followers_distinct(&mut distinct);
    eprintln!(
        "stream: {} events, mean {:.0} bytes",
        stream.len(),
        stream.mean_bytes()
    );
    let parsed: Vec<FollowEvent<'_>> = (0..stream.len())
        .map(|i| event::parse(stream.line(i)).expect("generated events are valid"))
        .collect();
    let parsed_distinct: Vec<FollowEvent<'_>> = (0..distinct.len())
        .map(|i| event::parse(distinct.line(i)).expect("generated events are valid"))
        .collect();
    let n = stream.len();

    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));

    let mut i = 0usize;
    g.bench_function("parse", |b| {
        b.iter(|| {
            i += 1;
            black_box(event::parse(black_box(stream.line(i % n))).is_ok())
        })
    });

    let mut i = 0usize;
    g.bench_function("features", |b| {
        b.iter(|| {
            i += 1;
            let e = &parsed[i % n];
            black_box(model.features(black_box(&e.follower), ts(e)))
        })
    });

    let mut i = 0usize;
    g.bench_function("score_uncached", |b| {
        b.iter(|| {
            i += 1;
            let e = &parsed[i % n];
            black_box(model.score(black_box(&e.follower), ts(e)))
        })
    });

    // Cold: every follower distinct, so every lookup misses (and inserts).
    let mut cold = ScoreCache::new(4096);
    let mut i = 0usize;
    g.bench_function("score_cache_cold", |b| {
        b.iter(|| {
            i += 1;
            let e = &parsed_distinct[i % n];
            black_box(cold.get_or_score(&model, black_box(&e.follower), ts(e)))
        })
    });
    eprintln!("cold cache: hits {} misses {}", cold.hits(), cold.misses());

    // Warm: every follower of the stream already cached.
    let mut warm = ScoreCache::new(1 << 20);
    for e in &parsed {
        warm.get_or_score(&model, &e.follower, ts(e));
    }
    let (h0, m0) = (warm.hits(), warm.misses());
    let mut i = 0usize;
    g.bench_function("score_cache_warm", |b| {
        b.iter(|| {
            i += 1;
            let e = &parsed[i % n];
            black_box(warm.get_or_score(&model, black_box(&e.follower), ts(e)))
        })
    });
    eprintln!(
        "warm cache: hits {} misses {}",
        warm.hits() - h0,
        warm.misses() - m0
    );

    // Window update: the per-followee rings and histogram, one window per followee.
    let scores: Vec<f32> = parsed
        .iter()
        .map(|e| model.score(&e.follower, ts(e)).prob)
        .collect();
    let threshold = model.threshold();
    let mut slot_of: HashMap<&str, usize> = HashMap::new();
    let slots: Vec<usize> = parsed
        .iter()
        .map(|e| {
            let next = slot_of.len();
            *slot_of.entry(&e.followee_id).or_insert(next)
        })
        .collect();
    let fresh_windows = || vec![FolloweeWindow::new(0); slot_of.len()];
    let mut windows = fresh_windows();
    let mut i = 0usize;
    g.bench_function("window_update", |b| {
        b.iter(|| {
            let k = i % n;
            if k == 0 {
                // Time restarts with the stream: start from fresh windows.
                windows = fresh_windows();
            }
            i += 1;
            let e = &parsed[k];
            let w = &mut windows[slots[k]];
            w.observe_follow(ts(e), scores[k] >= threshold, e.follower.created_at_s);
            black_box(w.last_seen_s)
        })
    });

    // The whole detector: windows, baselines, triggers, alert lifecycle, moderation.
    let dcfg = DetectorConfig {
        model_version: model.version().to_string(),
        ..DetectorConfig::default()
    };
    let mut det = Detector::new(dcfg.clone());
    let mut i = 0usize;
    let mut alerts = 0usize;
    g.bench_function("detector_observe", |b| {
        b.iter(|| {
            let k = i % n;
            if k == 0 {
                det = Detector::new(dcfg.clone());
            }
            i += 1;
            let e = &parsed[k];
            let follow = e.kind == EventType::Follow;
            let out = det.observe(black_box(&Observation {
                event_id: &e.event_id,
                followee_id: &e.followee_id,
                follower_id: &e.follower.id,
                follow,
                ts_ms: ts(e),
                partition: 0,
                prob: scores[k],
                suspicious: follow && scores[k] >= threshold,
                follower_created_s: e.follower.created_at_s,
                reasons: [("r", 0.1); 3],
            }));
            alerts += out.alerts.len();
            black_box(out)
        })
    });
    eprintln!(
        "detector: {alerts} alert records, key_of sanity {}",
        key_of("1") != 0
    );

    // The whole pipeline on raw bytes. Cold: distinct followers through a cache far
    // smaller than the stream, so even after the stream wraps every lookup misses.
    // Warm: every follower cached before measuring. When the stream wraps, event time
    // jumps back and events arrive "late" (placed at the watermark): same work per event.
    for (name, s, cap, prime) in [
        ("pipeline_process_cold", &distinct, 4096usize, false),
        ("pipeline_process_warm", &stream, 1usize << 20, true),
    ] {
        let cfg = PipelineConfig {
            cache_capacity: cap,
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::new(model.clone(), cfg);
        if prime {
            for i in 0..s.len() {
                let _ = p.warm_cache(s.line(i), None);
            }
        }
        let (h0, m0) = p.cache_stats();
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let o = p.process(black_box(s.line(i % n)), None, 0);
                black_box(o.map(|o| o.alerts.len() + o.moderation.len()).ok())
            })
        });
        let (hits, misses) = p.cache_stats();
        eprintln!("{name}: cache hits {} misses {}", hits - h0, misses - m0);
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
