//! One module per experiment of the paper; each writes a run folder and returns a typed report.

pub mod cifar;
pub mod common;
pub mod curriculum_report;
pub mod family_inspect;
pub mod family_report;
pub mod generalisation;
pub mod image;
pub mod inspect;
pub mod manifest;
pub mod mnist;
pub mod report;
pub mod smoothness;
pub mod sweep_report;
pub mod xor;
pub mod xor_neuron;

use serde::{Deserialize, Serialize};

/// The complete configuration of a run, as written to `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "experiment", rename_all = "kebab-case")]
pub enum RunConfig {
    /// `afu xor`
    Xor(xor::XorConfig),
    /// `afu xor-neuron`
    XorNeuron(xor_neuron::XorNeuronConfig),
    /// `afu smoothness`
    Smoothness(smoothness::SmoothnessConfig),
    /// `afu mnist`
    Mnist(mnist::MnistConfig),
    /// `afu cifar10`
    Cifar10(cifar::CifarConfig),
    /// `afu meta` (its `config.toml` is this one's format: the settings with
    /// `experiment = "meta"`).
    Meta(crate::meta::MetaConfig),
}
