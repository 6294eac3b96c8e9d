//! Parse and score on helper threads: the per-event, stateless half of the pipeline
//! ([`pipeline::prepare`]) for a chunk of inputs, split between the calling thread and
//! `threads` helpers, each with its own score cache. The caller then feeds the results,
//! in input order, to [`Pipeline::observe`] on one thread (the detector is sequential:
//! lockstep cohorts span partitions). Scores do not depend on which cache held what
//! (`model::score_time`), so outcomes are exactly those of [`Pipeline::process`]
//! (`tests/detect_golden.rs`). Used by `serve` (`--prepare-threads`) and by
//! `bench-pipeline --prepare-threads`.

use crate::event::EventError;
use crate::model::{Model, ScoreCache};
use crate::pipeline::{self, Pipeline, Prepared};
use anyhow::Context as _;

/// Inputs prepared together at most (serve takes only records already fetched).
pub const CHUNK: usize = 256;
/// Smallest chunk worth splitting (handing work to a helper costs a few µs).
pub const PARALLEL_MIN: usize = 16;

/// An input parsed and scored (or rejected), with the seconds that took (the mean over
/// the share of the chunk it was prepared in).
pub type Ready<'a> = (Result<Prepared<'a>, EventError>, f64);

/// The helper threads and their score caches; none when `threads` is 0.
pub struct Preparer {
    pool: Option<rayon::ThreadPool>,
    caches: Vec<ScoreCache>,
}

impl Preparer {
    pub fn new(threads: usize, cache_capacity: usize) -> anyhow::Result<Preparer> {
        if threads == 0 {
            return Ok(Preparer {
                pool: None,
                caches: Vec::new(),
            });
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

    /// Parses and scores `inputs` (bytes, fallback event time): on the calling thread
    /// with the pipeline's cache, or split with the helpers when there are at least
    /// [`PARALLEL_MIN`]. Results come back in input order.
    pub fn prepare<'a>(
        &mut self,
        pipeline: &mut Pipeline,
        inputs: &[(&'a [u8], Option<i64>)],
    ) -> Vec<Ready<'a>> {
        let n = inputs.len();
        let mut mine = Vec::with_capacity(n);
        let (model, cache) = pipeline.scorer();
        match &self.pool {
            Some(pool) if n >= PARALLEL_MIN => {
                let per = n.div_ceil(self.caches.len() + 1);
                let mut parts = inputs.chunks(per);
                let own = parts.next().unwrap_or_default();
                let mut outs: Vec<Vec<Ready<'a>>> = Vec::new();
                outs.resize_with(self.caches.len(), || Vec::with_capacity(per));
                pool.in_place_scope(|s| {
                    for ((part, c), out) in parts.zip(self.caches.iter_mut()).zip(outs.iter_mut()) {
                        s.spawn(move |_| prepare_all(model, c, part, out));
                    }
                    prepare_all(model, cache, own, &mut mine);
                });
                for o in outs {
                    mine.extend(o);
                }
            }
            _ => prepare_all(model, cache, inputs, &mut mine),
        }
        mine
    }
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
