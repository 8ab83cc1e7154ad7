//! The Activation Function Unit: a learned activation `G(z) = Σᵢ w1ᵢ·ψ(w0ᵢ·z + b0ᵢ) + b1`.
//!
//! An [`Afu`] holds `C` independent AFUs of `N` hidden units each (`C = 1`: one AFU shared by
//! every element it is applied to; `C > 1`: one AFU per channel, i.e. per index of axis 1),
//! with parameters stored as `[C, N]` tensors so that the per-channel form is one vectorised op,
//! never a loop over modules.

pub mod analysis;
pub mod bake;
pub mod base;
pub mod file;
pub mod kernel;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use base::BaseActivation;
pub use kernel::KernelChoice;

/// How the parameters of a new AFU are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AfuInit {
    /// PyTorch's default `nn.Linear` initialisation, as in the paper's code: first layer
    /// (fan-in 1) weights and biases ~ U(-1, 1); second layer (fan-in N) ~ U(-1/√N, 1/√N).
    TorchDefault,
}

/// Configuration of an [`Afu`] layer.
#[derive(Config, Debug)]
pub struct AfuConfig {
    /// Hidden units `N` of each AFU (≥ 1). The paper uses 8 and 128.
    pub hidden: usize,
    /// The base activation `ψ`.
    #[config(default = "BaseActivation::Relu")]
    pub base: BaseActivation,
    /// Number of independent AFUs: 1 = shared by every element; `C` = one per channel (axis 1).
    #[config(default = 1)]
    pub channels: usize,
    /// Initialisation of the parameters.
    #[config(default = "AfuInit::TorchDefault")]
    pub init: AfuInit,
}

/// Error in an AFU configuration or parameter set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AfuError {
    /// `N = 0` or `C = 0`.
    #[error("AFU {field} must be at least 1, got {value}")]
    ZeroSize {
        /// `hidden` or `channels`.
        field: &'static str,
        /// The value given.
        value: usize,
    },
    /// A parameter vector whose length does not match `C × N` (or `C` for `b1`).
    #[error("AFU parameter {field} has {found} values, expected {expected}")]
    BadLength {
        /// Which parameter.
        field: &'static str,
        /// Values found.
        found: usize,
        /// Values expected.
        expected: usize,
    },
    /// A parameter that is NaN or infinite, or too large for the `f32` tensors a model uses.
    #[error(
        "AFU parameter {field} contains a non-finite value at index {index} (NaN, infinite, or beyond the f32 range)"
    )]
    NonFinite {
        /// Which parameter.
        field: &'static str,
        /// Index of the first bad value.
        index: usize,
    },
    /// `N` or `C` beyond what afu allocates ([`MAX_HIDDEN`], [`MAX_CHANNELS`]).
    #[error("AFU {field} is {value}, above the limit of {limit}")]
    TooLarge {
        /// `hidden` or `channels`.
        field: &'static str,
        /// The value given.
        value: usize,
        /// The limit.
        limit: usize,
    },
}

/// The largest number of hidden units `N` of one AFU. The paper uses N ≤ 128; the bound keeps a
/// mistyped N from allocating gigabytes before anything is checked.
pub const MAX_HIDDEN: usize = 4096;

/// The largest number of AFUs `C` in one AFU tensor (per-channel AFUs of the widest layer).
pub const MAX_CHANNELS: usize = 65_536;

/// True for values that are finite as the `f32` a model holds them in.
fn finite_f32(x: f64) -> bool {
    x.is_finite() && x.abs() <= f64::from(f32::MAX)
}

/// Plain values of an AFU's parameters (row-major `[C, N]`; `b1` has `C` values): what is saved
/// to and loaded from `afu.json`, and what analysis tools read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AfuParams {
    /// Base activation.
    pub base: BaseActivation,
    /// Number of AFUs `C`.
    pub channels: usize,
    /// Hidden units `N`.
    pub hidden: usize,
    /// First-layer weights, `C × N`.
    pub w0: Vec<f64>,
    /// First-layer biases, `C × N`.
    pub b0: Vec<f64>,
    /// Second-layer weights, `C × N`.
    pub w1: Vec<f64>,
    /// Output biases, `C`.
    pub b1: Vec<f64>,
}

impl AfuParams {
    /// Checks sizes and finiteness.
    pub fn validate(&self) -> Result<(), AfuError> {
        if self.hidden == 0 {
            return Err(AfuError::ZeroSize {
                field: "hidden",
                value: 0,
            });
        }
        if self.channels == 0 {
            return Err(AfuError::ZeroSize {
                field: "channels",
                value: 0,
            });
        }
        for (field, value, limit) in [
            ("hidden", self.hidden, MAX_HIDDEN),
            ("channels", self.channels, MAX_CHANNELS),
        ] {
            if value > limit {
                return Err(AfuError::TooLarge {
                    field,
                    value,
                    limit,
                });
            }
        }
        let cn = self.channels * self.hidden;
        for (field, v, expected) in [
            ("w0", &self.w0, cn),
            ("b0", &self.b0, cn),
            ("w1", &self.w1, cn),
            ("b1", &self.b1, self.channels),
        ] {
            if v.len() != expected {
                return Err(AfuError::BadLength {
                    field,
                    found: v.len(),
                    expected,
                });
            }
            if let Some(index) = v.iter().position(|&x| !finite_f32(x)) {
                return Err(AfuError::NonFinite { field, index });
            }
        }
        Ok(())
    }

    /// `G(z)` of AFU number `channel`, evaluated in `f64`.
    pub fn eval(&self, channel: usize, z: f64) -> f64 {
        let n = self.hidden;
        let o = channel * n;
        let mut y = self.b1[channel];
        for i in o..o + n {
            y += self.w1[i] * self.base.value(self.w0[i] * z + self.b0[i]);
        }
        y
    }

    /// `G'(z)` of AFU number `channel`, in `f64`.
    pub fn derivative(&self, channel: usize, z: f64) -> f64 {
        let n = self.hidden;
        let o = channel * n;
        (o..o + n)
            .map(|i| self.w1[i] * self.w0[i] * self.base.derivative(self.w0[i] * z + self.b0[i]))
            .sum()
    }

    /// Draws parameters with the given initialisation.
    pub fn random(config: &AfuConfig, rng: &mut impl Rng) -> Result<Self, AfuError> {
        if config.hidden == 0 {
            return Err(AfuError::ZeroSize {
                field: "hidden",
                value: 0,
            });
        }
        if config.channels == 0 {
            return Err(AfuError::ZeroSize {
                field: "channels",
                value: 0,
            });
        }
        let cn = config.channels * config.hidden;
        let AfuInit::TorchDefault = config.init;
        let k1 = 1.0 / (config.hidden as f64).sqrt();
        let mut draw = |len: usize, k: f64| -> Vec<f64> {
            (0..len)
                .map(|_| rng.random_range(-k..k) as f32 as f64)
                .collect()
        };
        // Same order as the reference code's parameters: w0, b0 (Linear(1, N)), w1, b1.
        let w0 = draw(cn, 1.0);
        let b0 = draw(cn, 1.0);
        let w1 = draw(cn, k1);
        let b1 = draw(config.channels, k1);
        Ok(AfuParams {
            base: config.base,
            channels: config.channels,
            hidden: config.hidden,
            w0,
            b0,
            w1,
            b1,
        })
    }
}

/// A layer of `C` learned activation functions with `N` hidden units each.
#[derive(Module, Debug)]
pub struct Afu {
    /// First-layer weights `[C, N]`.
    pub w0: Param<Tensor<2>>,
    /// First-layer biases `[C, N]`.
    pub b0: Param<Tensor<2>>,
    /// Second-layer weights `[C, N]`.
    pub w1: Param<Tensor<2>>,
    /// Output biases `[C]`.
    pub b1: Param<Tensor<1>>,
    /// Base activation `ψ`.
    #[module(skip)]
    pub base: BaseActivation,
    /// Which implementation runs the forward/backward pass.
    #[module(skip)]
    pub kernel: KernelChoice,
}

impl AfuConfig {
    /// Initialises an [`Afu`] on `device`, drawing its parameters from `rng`.
    pub fn init(&self, rng: &mut impl Rng, device: &Device) -> Result<Afu, AfuError> {
        let params = AfuParams::random(self, rng)?;
        Afu::from_params(&params, device, DType::F32)
    }
}

impl Afu {
    /// Builds the layer from plain parameter values, stored with `dtype` (F32 for training,
    /// F64 for gradient checks).
    pub fn from_params(params: &AfuParams, device: &Device, dtype: DType) -> Result<Afu, AfuError> {
        params.validate()?;
        let (c, n) = (params.channels, params.hidden);
        let t2 = |v: &[f64]| {
            Param::from_tensor(Tensor::<2>::from_data(
                TensorData::new(v.to_vec(), [c, n]),
                (device, dtype),
            ))
        };
        Ok(Afu {
            w0: t2(&params.w0),
            b0: t2(&params.b0),
            w1: t2(&params.w1),
            b1: Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(params.b1.clone(), [c]),
                (device, dtype),
            )),
            base: params.base,
            kernel: KernelChoice::Auto,
        })
    }

    /// The current parameter values.
    pub fn params(&self) -> AfuParams {
        let read = |t: Tensor<2>| -> Vec<f64> {
            t.into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .unwrap_or_default()
        };
        let [c, n] = self.w0.val().dims();
        AfuParams {
            base: self.base,
            channels: c,
            hidden: n,
            w0: read(self.w0.val()),
            b0: read(self.b0.val()),
            w1: read(self.w1.val()),
            b1: self
                .b1
                .val()
                .into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .unwrap_or_default(),
        }
    }

    /// Number of AFUs `C` in this layer.
    pub fn channels(&self) -> usize {
        self.w0.val().dims()[0]
    }

    /// Hidden units `N` of each AFU.
    pub fn hidden(&self) -> usize {
        self.w0.val().dims()[1]
    }

    /// Returns the layer with another kernel choice.
    pub fn with_kernel(mut self, kernel: KernelChoice) -> Self {
        self.kernel = kernel;
        self
    }

    /// Applies the learned activation element-wise.
    ///
    /// # Shapes
    /// - input: any shape `[d0, d1, ...]`; with `C > 1` AFUs, `d1` must equal `C`
    ///   (`[batch, channels, ...]` or `[batch, features]`)
    /// - output: same shape as the input
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kernel::afu_forward(
            x,
            self.w0.val(),
            self.b0.val(),
            self.w1.val(),
            self.b1.val(),
            self.base,
            self.kernel,
        )
    }
}
