//! # afu-cli — the `afu` command line and its library
//!
//! The paper's experiments, the training loop that runs them, sweeps, statistics over seeds,
//! reports, figures, data readers and downloads, and benchmarks, on top of the `afu` crate (the
//! layer and its kernels). The core crate's modules are re-exported here under their own names,
//! so `afu_cli::afu::AfuConfig` is `afu::AfuConfig`.
#![warn(missing_docs)]

pub use ::afu::{activation, afu, device, family, fpenv, fsutil, models, ops, tune_allocator};

pub mod bench;
pub mod data;
pub mod experiments;
pub mod interrupt;
pub mod meta;
pub mod output;
pub mod report;
pub mod stats;
pub mod sweep;
pub mod train;
