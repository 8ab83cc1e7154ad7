//! One module per experiment of the paper; each writes a run folder and returns a typed report.

pub mod common;
pub mod xor;

use serde::{Deserialize, Serialize};

/// The complete configuration of a run, as written to `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "experiment", rename_all = "kebab-case")]
pub enum RunConfig {
    /// `afu xor`
    Xor(xor::XorConfig),
}
