//! Figures and tables written by the experiments.

pub mod plot;
