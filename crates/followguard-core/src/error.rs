//! The error every crate raises for "the operator must fix the configuration" (bad flag
//! value, missing or mismatched model file), whichever crate finds it: the `followguard`
//! binary maps it to exit code 64 (EX_USAGE) wherever it sits in an error chain.

/// The operator must fix the configuration; the message says what and how.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
