//! followguard-core: the detection core of followguard. Raw event bytes in, scores,
//! alerts and moderation records out, as plain values: [`pipeline::Pipeline::process`] is
//! the one function both drivers (`serve` on Kafka, `replay` on files) call.
//!
//! It does no I/O, reads no clock and no environment, and knows nothing of Kafka, HTTP,
//! metrics or the command line: event time comes in with the events, model files come in
//! as bytes ([`model::Model::from_bytes`]). The crate's dependencies keep it so, and its
//! `clippy.toml` bans clocks, files and the environment. ARCHITECTURE.md has the map.
//!
//! Modules in dependency order (each uses only those above it): [`time`], [`age`],
//! [`keys`], [`error`], [`expiry`], [`timeguard`]; [`event`], [`bounds`]; [`adapt`],
//! [`profiles`] (issue 24 input formats and the profile table); [`decisions`] (moderators' verdicts); [`features`]; [`model`]; [`alert`];
//! [`window`]; [`newcomer`]; [`detector`]; [`pipeline`]; [`evidence`].

pub mod adapt;
pub mod age;
pub mod alert;
pub mod bounds;
pub mod decisions;
pub mod detector;
pub mod error;
pub mod event;
pub mod evidence;
pub mod expiry;
pub mod features;
#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;
pub mod keys;
/// Issue 21: cross-instance campaigns, the follower-keyed link stage (docs/state.md).
pub mod links;
pub mod model;
pub mod newcomer;
pub mod pipeline;
pub mod profiles;
pub mod time;
pub mod timeguard;
pub mod window;

pub use error::ConfigError;
