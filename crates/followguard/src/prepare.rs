//! Parse and score on helper threads, overlapped with detection: the per-event, stateless
//! half of the pipeline ([`pipeline::prepare`]) runs on `threads` helpers (each with its
//! own score cache) and on the calling thread, in blocks claimed from a shared counter,
//! while the calling thread feeds the prepared inputs, in input order, to its observer
//! ([`Pipeline::observe`] and whatever the caller does with the outcome). The detector
//! stays on one thread (lockstep cohorts span partitions). Scores do not depend on which
//! cache held what (`model::score_time`), so outcomes are exactly those of
//! [`Pipeline::process`] (tests below and `tests/detect_golden.rs`). Used by `serve`
//! (`--prepare-threads`) and by `bench-pipeline --prepare-threads`.
//!
//! Why claim blocks rather than split each chunk between the threads or hand the helpers
//! whole steps: with a fixed split the calling thread waits for the helpers' share before
//! it can observe anything, and with steps it waits at every step for a helper that has to
//! be woken and find a CPU. Claimed blocks keep both sides busy while there is work: a
//! helper that gets no CPU only means the calling thread prepares more (measured in
//! BENCHMARKS.md, "Parsing and scoring on a helper thread").

use anyhow::Context as _;
use followguard_core::event::EventError;
use followguard_core::model::{Model, ScoreCache};
use followguard_core::pipeline::{self, Pipeline, Prepared};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Inputs taken together at most with helpers (serve takes only records already
/// fetched, so a chunk is this long only while it works off a backlog): long enough that
/// waking the helpers once per chunk costs nothing.
pub const CHUNK: usize = 4096;
/// The same without helpers: nothing to amortise, so the outputs of a chunk's first
/// records are not held back behind many others.
pub const CHUNK_ALONE: usize = 256;
/// Inputs claimed at a time by a helper or the calling thread (a claim costs an atomic
/// add and a lock, a block of events ~20 µs).
pub const BLOCK: usize = 16;
/// Smallest chunk worth handing to the helpers; shorter ones are prepared in place.
pub const PARALLEL_MIN: usize = 16;

/// An input parsed and scored (or rejected), with the seconds that took (the mean over
/// the block it was prepared in).
pub type Ready<'a> = (Result<Prepared<'a>, EventError>, f64);

/// The helper threads and their score caches; none when `threads` is 0.
#[derive(Default)]
pub struct Preparer {
    pool: Option<rayon::ThreadPool>,
    caches: Vec<ScoreCache>,
}

impl Preparer {
    pub fn new(threads: usize, cache_capacity: usize) -> anyhow::Result<Preparer> {
        if threads == 0 {
            return Ok(Preparer::default());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fg-prepare-{i}"))
            .build()
            .context("starting the prepare threads")?;
        Ok(Preparer {
            pool: Some(pool),
            caches: (0..threads)
                .map(|_| ScoreCache::new(cache_capacity))
                .collect(),
        })
    }

    /// The helper threads' score caches' (hits, misses) so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.caches
            .iter()
            .fold((0, 0), |(h, m), c| (h + c.hits(), m + c.misses()))
    }

    /// Bytes held by the helpers' score caches (fixed at construction).
    pub fn cache_bytes(&self) -> usize {
        self.caches.iter().map(ScoreCache::memory_bytes).sum()
    }

    /// Empties the helpers' score caches: after a live model reload (issue 24) their
    /// scores are the old model's (the key is the profile and the day, not the model).
    pub fn clear_caches(&mut self) {
        for c in &mut self.caches {
            *c = ScoreCache::new(c.capacity());
        }
    }

    /// Longest chunk worth passing to [`run`](Self::run).
    pub fn max_chunk(&self) -> usize {
        if self.pool.is_some() {
            CHUNK
        } else {
            CHUNK_ALONE
        }
    }

    /// Parses and scores `inputs` (bytes, fallback event time) and calls `observe(state,
    /// index, ready)` for each, in input order, on the calling thread. `pipeline` finds the
    /// pipeline in `state`: its model and cache prepare everything when there are no
    /// helpers or fewer than [`PARALLEL_MIN`] inputs. Otherwise the inputs are cut into
    /// blocks of [`BLOCK`] that the helpers and the calling thread claim in order from a
    /// shared counter: the calling thread observes the next block in order as soon as it
    /// is ready and, while it is not, prepares the next unclaimed block itself. So the
    /// helpers are woken once per call, neither side waits while there is work, and a
    /// helper that gets no CPU only means the calling thread prepares more.
    pub fn run<'a, S>(
        &mut self,
        state: &mut S,
        pipeline: fn(&mut S) -> &mut Pipeline,
        inputs: &[(&'a [u8], Option<i64>)],
        mut observe: impl FnMut(&mut S, usize, Ready<'a>),
    ) {
        let n = inputs.len();
        let pool = match &self.pool {
            Some(pool) if n >= PARALLEL_MIN => pool,
            _ => {
                let mut ready = Vec::with_capacity(n);
                let (model, cache) = pipeline(state).scorer();
                prepare_all(model, cache, inputs, &mut ready);
                for (i, r) in ready.into_iter().enumerate() {
                    observe(state, i, r);
                }
                return;
            }
        };
        let model = pipeline(state).shared_model();
        let model: &Model = &model;
        let blocks = n.div_ceil(BLOCK);
        let slots: Vec<Mutex<Slot<'a>>> = (0..blocks).map(|_| Mutex::new(Slot::Pending)).collect();
        let slots = &slots[..];
        let claim = AtomicUsize::new(0);
        let claim = &claim;
        let caches = &mut self.caches;
        pool.in_place_scope(|s| {
            for cache in caches.iter_mut() {
                s.spawn(move |_| {
                    while let Some(b) = next_claim(claim, blocks) {
                        let abandon = AbandonOnUnwind(&slots[b]);
                        *lock(&slots[b]) = Slot::Ready(prepare_block(model, cache, inputs, b));
                        std::mem::forget(abandon);
                    }
                });
            }
            let mut next = 0;
            let mut idle_rounds = 0u32;
            while next < blocks {
                // A slot is written once (by whoever claimed it) and read once, here.
                let taken = std::mem::replace(&mut *lock(&slots[next]), Slot::Pending);
                let ready = match taken {
                    Slot::Ready(ready) => ready,
                    Slot::Abandoned => {
                        let (model, cache) = pipeline(state).scorer();
                        prepare_block(model, cache, inputs, next)
                    }
                    Slot::Pending => {
                        if let Some(b) = next_claim(claim, blocks) {
                            let (model, cache) = pipeline(state).scorer();
                            let ready = prepare_block(model, cache, inputs, b);
                            *lock(&slots[b]) = Slot::Ready(ready);
                        } else {
                            // Everything is claimed and a helper is finishing this block.
                            idle_rounds += 1;
                            if idle_rounds % 64 == 0 {
                                std::thread::yield_now();
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                        continue;
                    }
                };
                for (k, r) in ready.into_iter().enumerate() {
                    observe(state, next * BLOCK + k, r);
                }
                next += 1;
            }
        });
    }
}

/// One block's preparation, as seen by the thread that observes.
enum Slot<'a> {
    /// Not claimed yet, being prepared, or already observed.
    Pending,
    Ready(Vec<Ready<'a>>),
    /// The helper preparing it panicked: the calling thread prepares it again.
    Abandoned,
}

/// Marks a claimed block abandoned if its helper unwinds before storing it, so the
/// calling thread never waits for a block nobody will deliver.
struct AbandonOnUnwind<'s, 'a>(&'s Mutex<Slot<'a>>);

impl Drop for AbandonOnUnwind<'_, '_> {
    fn drop(&mut self) {
        *lock(self.0) = Slot::Abandoned;
    }
}

fn lock<'s, 'a>(m: &'s Mutex<Slot<'a>>) -> std::sync::MutexGuard<'s, Slot<'a>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn next_claim(claim: &AtomicUsize, blocks: usize) -> Option<usize> {
    let b = claim.fetch_add(1, Ordering::Relaxed);
    (b < blocks).then_some(b)
}

fn block_of<'i, 'a>(
    inputs: &'i [(&'a [u8], Option<i64>)],
    b: usize,
) -> &'i [(&'a [u8], Option<i64>)] {
    &inputs[b * BLOCK..((b + 1) * BLOCK).min(inputs.len())]
}

/// Prepares block `b` of `inputs` with `cache`.
fn prepare_block<'a>(
    model: &Model,
    cache: &mut ScoreCache,
    inputs: &[(&'a [u8], Option<i64>)],
    b: usize,
) -> Vec<Ready<'a>> {
    let mut out = Vec::with_capacity(BLOCK);
    prepare_all(model, cache, block_of(inputs, b), &mut out);
    out
}

fn prepare_all<'a>(
    model: &Model,
    cache: &mut ScoreCache,
    inputs: &[(&'a [u8], Option<i64>)],
    out: &mut Vec<Ready<'a>>,
) {
    // One clock read pair per share, not per event: each event is charged the share's
    // mean (the processing-time histogram's resolution does not need more).
    let start = out.len();
    let started = std::time::Instant::now();
    for &(bytes, fallback) in inputs {
        out.push((pipeline::prepare(model, cache, bytes, fallback), 0.0));
    }
    let mean = started.elapsed().as_secs_f64() / inputs.len().max(1) as f64;
    for (_, secs) in &mut out[start..] {
        *secs = mean;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use followguard_core::pipeline::PipelineConfig;
    use followguard_train::generate::{generate, GenConfig, Profiles};
    use std::sync::Arc;

    fn model() -> Arc<Model> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
        Arc::new(followguard_train::model_file::load(&path).expect("models/default.json loads"))
    }

    /// Every helper count and chunk length (shorter than `PARALLEL_MIN`, not a multiple of
    /// a block, longer than a chunk) gives exactly `Pipeline::process`'s outcomes, in
    /// order, with malformed inputs rejected in place; the helpers' caches do take part.
    #[test]
    fn overlapped_preparation_matches_process() {
        let model = model();
        let cfg = GenConfig {
            followees: 200,
            days: 3,
            humans: 5_000,
            campaigns: 4,
            min_campaign: 400,
            max_campaign: 700,
            viral_spikes: 1,
            ..GenConfig::default()
        };
        let mut jsonl = Vec::new();
        generate(&cfg, &Profiles::Builtin, &mut jsonl, |_, _| {}).expect("generates");
        let mut lines: Vec<Vec<u8>> = jsonl
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        lines.insert(7, b"{not json".to_vec());
        lines.insert(500, br#"{"type":"follow"}"#.to_vec());
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        assert!(lines.len() > CHUNK + BLOCK, "{}", lines.len());

        // An outcome as compared (whether the score came from a cache does not count).
        let show = |r: Result<followguard_core::pipeline::Outcome, EventError>| match r {
            Ok(o) => format!(
                "{:?}",
                followguard_core::pipeline::Outcome {
                    cache_hit: false,
                    ..o
                }
            ),
            Err(e) => format!("error {}: {e}", e.kind()),
        };
        let mut one = Pipeline::new(model.clone(), PipelineConfig::default());
        let expected: Vec<String> = lines
            .iter()
            .map(|l| show(one.process(l, Some(0), 0)))
            .collect();

        for threads in [0, 1, 2] {
            let mut helper_lookups = 0;
            for chunk in [5, PARALLEL_MIN, 300, CHUNK] {
                let mut preparer = Preparer::new(threads, 1 << 12).unwrap();
                let mut p = Pipeline::new(model.clone(), PipelineConfig::default());
                let mut got: Vec<String> = Vec::new();
                for part in lines.chunks(chunk) {
                    let inputs: Vec<_> = part.iter().map(|l| (*l, Some(0))).collect();
                    let base = got.len();
                    preparer.run(
                        &mut p,
                        |p| p,
                        &inputs,
                        |p, i, (r, secs)| {
                            assert_eq!(base + i, got.len(), "in input order");
                            assert!(secs >= 0.0);
                            got.push(show(r.and_then(|prep| p.observe(prep, 0))));
                        },
                    );
                }
                assert_eq!(got.len(), expected.len());
                let first_diff = got.iter().zip(&expected).position(|(a, b)| a != b);
                assert_eq!(first_diff, None, "threads {threads}, chunk {chunk}");
                helper_lookups += preparer
                    .caches
                    .iter()
                    .map(|c| c.hits() + c.misses())
                    .sum::<u64>();
            }
            // Issue 24: after a live model reload no helper serves the old model's score.
            if threads > 0 {
                let other = Arc::new(
                    followguard_train::model_file::load(
                        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("../../models/lovo-TWT.json"),
                    )
                    .expect("models/lovo-TWT.json loads"),
                );
                let mut preparer = Preparer::new(threads, 1 << 12).unwrap();
                let mut p = Pipeline::new(model.clone(), PipelineConfig::default());
                let part = &lines[..CHUNK];
                let inputs: Vec<_> = part.iter().map(|l| (*l, Some(0))).collect();
                preparer.run(
                    &mut p,
                    |p| p,
                    &inputs,
                    |p, _, (r, _)| {
                        let _ = r.and_then(|prep| p.observe(prep, 0));
                    },
                );
                p.replace_model(other.clone(), None);
                preparer.clear_caches();
                let mut fresh = Pipeline::new(other.clone(), PipelineConfig::default());
                preparer.run(
                    &mut p,
                    |p| p,
                    &inputs,
                    |_, i, (r, _)| {
                        let want = fresh.process(part[i], Some(0), 0).map(|o| o.score.prob);
                        let got = r.map(|prep| {
                            let mut q = Pipeline::new(other.clone(), PipelineConfig::default());
                            q.observe(prep, 0).map(|o| o.score.prob)
                        });
                        assert_eq!(got.ok().and_then(Result::ok), want.ok(), "input {i}");
                    },
                );
            }
            // Which thread claims a block depends on scheduling, but over ~40 calls the
            // helpers always take part (and with none, nothing else scores).
            if threads > 0 {
                assert!(helper_lookups > 0, "threads {threads}");
            } else {
                assert_eq!(helper_lookups, 0);
            }
        }
    }
}
