//! followguard: streaming detection of accounts buying followers — the service and the
//! `followguard` command around the pure core (`followguard-core`: events, features,
//! model inference, windows, detector, alerts, pipeline; no I/O, no clock).
//!
//! The edges: `serve` and `kafka` (the Kafka driver), `replay` (the file driver), `admin`
//! and `web` (HTTP), `webhook`, `metrics` (the only place that registers metrics),
//! `config` (flags → validated settings), `prepare` (parse and score on helper threads).
//! Training, datasets and the generator are in `followguard-train`, the benchmarks in
//! `followguard-bench`. ARCHITECTURE.md has the crate graph and the code map.

pub mod admin;
/// Issue 21 (partial): the detector-state changelog (docs/state.md).
pub mod changelog;
pub mod config;
pub mod healthcheck;
pub mod inflight;
pub mod kafka;
pub mod metrics;
pub mod prepare;
pub mod replay;
pub mod serve;
pub mod sink;
pub mod web;
pub mod webhook;

pub use followguard_core::ConfigError;

/// Exit code for an error returned by a command: 64 for configuration errors anywhere
/// in the chain, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<ConfigError>()) {
        64
    } else {
        1
    }
}
