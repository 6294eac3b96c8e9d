//! followguard: streaming detection of accounts buying followers.
//!
//! The pure core (`event`, `features`, `model`, `window`, `detector`, `alert`) does no
//! I/O and reads no clock; the edges (`serve` and `kafka`, `replay`, `admin` and `web`,
//! `webhook`, `metrics`, `config`) wrap it. ARCHITECTURE.md has the code map.

pub mod admin;
pub mod age;
pub mod alert;
pub mod benchdetect;
pub mod benche2e;
pub mod benchmem;
pub mod benchpipe;
pub mod config;
pub mod dataset;
pub mod detector;
pub mod event;
pub mod evidence;
pub mod expiry;
pub mod features;
#[cfg(test)]
mod fixtures;
pub mod generate;
pub mod kafka;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod modelcli;
pub mod pipeline;
pub mod prepare;
pub mod replay;
pub mod serve;
pub mod sink;
pub mod time;
pub mod web;
pub mod webhook;
pub mod window;

/// Errors that mean "the operator must fix the configuration" (bad flag value, missing
/// or mismatched model file). `main` maps them to exit code 64 (EX_USAGE).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Exit code for an error returned by a command: 64 for configuration errors anywhere
/// in the chain, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<ConfigError>()) {
        64
    } else {
        1
    }
}
