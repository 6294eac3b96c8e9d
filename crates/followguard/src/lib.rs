//! followguard: streaming detection of accounts buying followers.
//!
//! The pure core (`event`, `features`, `model`, `window`, `detector`, `alert`) does no
//! I/O and reads no clock; the edges (`serve` and `kafka`, `replay`, `admin` and `web`,
//! `webhook`, `metrics`, `config`) wrap it. ARCHITECTURE.md has the code map.

pub mod admin;
pub mod config;
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
