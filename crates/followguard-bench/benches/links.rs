//! Issue 21, the link stage's snapshot cost: a follower stage holding what
//! `--links-snapshot-records` links (default 100,000) leave — cohorts of 200 flagged
//! followers, each cohort's followers flagged in alerts of 5 followees (re-sold cohorts,
//! bursts an hour apart, all within the window, so nothing expires) — is exported as
//! `serve` writes a snapshot (periodic or on revoke): `export_chunks` in chunks of
//! 256 KiB, each chunk to JSON. Compared with the work of taking those links in
//! (`observe`), the snapshot's cost per link it covers. The produce to the state topic is
//! not included (its bytes are printed: what the broker receives per snapshot).
//!
//! `scripts/bench.sh links` prints the means (BENCHMARKS.md, "Link-stage snapshots").

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use followguard_core::links::{FlaggedLink, FollowerStage, LinkConfig, LINKS_VERSION};
use std::hint::black_box;
use std::time::Duration;

/// Chunk budget of `serve`'s snapshots (`serve/links.rs` `CHUNK_BYTES`).
const CHUNK_BYTES: usize = 256 << 10;
const COHORT: usize = 200;
const ALERTS_PER_COHORT: usize = 5;

/// The links of `n` flagged follows (rounded down to whole cohorts), in arrival order.
fn links(n: usize) -> Vec<FlaggedLink> {
    let t0 = 1_700_000_000_000i64;
    let mut out = Vec::with_capacity(n);
    for c in 0..n / (COHORT * ALERTS_PER_COHORT) {
        for a in 0..ALERTS_PER_COHORT {
            let start = t0 + c as i64 * 60_000 + a as i64 * 3_600_000;
            let alert_id = format!("alert-{c}-{a}");
            for f in 0..COHORT {
                out.push(FlaggedLink {
                    v: LINKS_VERSION,
                    follower_id: (1_000_000 + c * COHORT + f).to_string(),
                    followee_id: (100 + (c * ALERTS_PER_COHORT + a) % 500).to_string(),
                    alert_id: alert_id.clone(),
                    burst_start_ms: start,
                    ts_ms: start + f as i64 * 1000,
                });
            }
        }
    }
    out
}

fn fed(links: &[FlaggedLink]) -> FollowerStage {
    let mut s = FollowerStage::new(LinkConfig::default(), 0);
    for l in links {
        black_box(s.observe(l));
    }
    s
}

/// A snapshot as `serve` writes it: the chunks' JSON bytes.
fn snapshot(s: &FollowerStage) -> (usize, usize) {
    let chunks = s.export_chunks(CHUNK_BYTES);
    let bytes = chunks
        .iter()
        .map(|c| serde_json::to_vec(c).map_or(0, |v| v.len()))
        .sum();
    (chunks.len(), bytes)
}

fn snapshots(c: &mut Criterion) {
    let mut g = c.benchmark_group("links");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    // (One size: the default `--links-snapshot-records`.)
    {
        let n = 100_000usize;
        let input = links(n);
        let stage = fed(&input);
        let (chunks, bytes) = snapshot(&stage);
        eprintln!(
            "links: {} links, {} followers, stage {} bytes accounted; snapshot {chunks} \
             chunks, {bytes} JSON bytes",
            input.len(),
            stage.followers(),
            stage.bytes()
        );
        g.bench_with_input(BenchmarkId::new("snapshot_followers", n), &stage, |b, s| {
            b.iter(|| black_box(snapshot(s)))
        });
        g.bench_with_input(BenchmarkId::new("observe_followers", n), &input, |b, l| {
            b.iter(|| black_box(fed(l).bytes()))
        });
    }
    g.finish();
}

criterion_group!(benches, snapshots);
criterion_main!(benches);
