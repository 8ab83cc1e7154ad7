//! The base activations of the paper's Table 1.
//!
//! Each one serves twice: as the `ψ` inside an AFU, and as a fixed activation for baselines.
//! Scalar forms (`value`, `derivative`) are written for `f64` and are the ground truth used by
//! the fused kernels' tests; [`BaseActivation::apply`] is the plain-tensor-ops form used by the
//! reference AFU and by fixed activations in models.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Tensor;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

/// Negative slope of the leaky relu (Table 1: `0.01 z` for `z < 0`).
pub const LEAKY_SLOPE: f64 = 0.01;

/// One of the paper's Table 1 activation functions.
///
/// Subgradient convention at the kink of the relu family: the derivative at exactly `z = 0` is
/// the left one (`0` for relu, `0.01` for leaky-relu), as in Burn's and PyTorch's relu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseActivation {
    /// `z`
    Linear,
    /// `max(0, z)`
    Relu,
    /// `z` for `z > 0`, `0.01 z` otherwise
    LeakyRelu,
    /// `1 / (1 + e^-z)`
    Sigmoid,
    /// `tanh(z)`
    Tanh,
    /// `z · sigmoid(z)`
    Swish,
    /// `z · tanh(ln(1 + e^z))`
    Mish,
}

impl BaseActivation {
    /// Every base activation, in the order of the paper's Table 1.
    pub const ALL: [BaseActivation; 7] = [
        BaseActivation::Linear,
        BaseActivation::Relu,
        BaseActivation::LeakyRelu,
        BaseActivation::Sigmoid,
        BaseActivation::Tanh,
        BaseActivation::Swish,
        BaseActivation::Mish,
    ];

    /// The name used on the command line and in files (`leaky-relu`, `mish`, …).
    pub fn name(self) -> &'static str {
        match self {
            BaseActivation::Linear => "linear",
            BaseActivation::Relu => "relu",
            BaseActivation::LeakyRelu => "leaky-relu",
            BaseActivation::Sigmoid => "sigmoid",
            BaseActivation::Tanh => "tanh",
            BaseActivation::Swish => "swish",
            BaseActivation::Mish => "mish",
        }
    }

    /// For the piecewise-linear family (linear, relu, leaky-relu): the slope for `z ≤ 0`
    /// (the slope for `z > 0` is 1). `None` for the smooth bases.
    pub fn negative_slope(self) -> Option<f64> {
        match self {
            BaseActivation::Linear => Some(1.0),
            BaseActivation::Relu => Some(0.0),
            BaseActivation::LeakyRelu => Some(LEAKY_SLOPE),
            _ => None,
        }
    }

    /// True for linear, relu and leaky-relu, whose AFUs are exactly piecewise linear.
    pub fn is_piecewise_linear(self) -> bool {
        self.negative_slope().is_some()
    }

    /// `ψ(z)` in `f64`, numerically safe for any finite `z` (no overflow to inf or NaN).
    pub fn value(self, z: f64) -> f64 {
        match self {
            BaseActivation::Linear => z,
            BaseActivation::Relu => {
                if z > 0.0 {
                    z
                } else {
                    0.0
                }
            }
            BaseActivation::LeakyRelu => {
                if z > 0.0 {
                    z
                } else {
                    LEAKY_SLOPE * z
                }
            }
            BaseActivation::Sigmoid => sigmoid(z),
            BaseActivation::Tanh => z.tanh(),
            BaseActivation::Swish => z * sigmoid(z),
            BaseActivation::Mish => z * softplus(z).tanh(),
        }
    }

    /// `ψ'(z)` in `f64` (left derivative at the relu family's kink).
    pub fn derivative(self, z: f64) -> f64 {
        match self {
            BaseActivation::Linear => 1.0,
            BaseActivation::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            BaseActivation::LeakyRelu => {
                if z > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
            BaseActivation::Sigmoid => {
                let s = sigmoid(z);
                s * (1.0 - s)
            }
            BaseActivation::Tanh => {
                let t = z.tanh();
                1.0 - t * t
            }
            BaseActivation::Swish => {
                let s = sigmoid(z);
                s + z * s * (1.0 - s)
            }
            BaseActivation::Mish => {
                let t = softplus(z).tanh();
                t + z * (1.0 - t * t) * sigmoid(z)
            }
        }
    }

    /// Applies the activation element-wise with plain tensor ops (differentiable through
    /// Burn's autodiff). Works for any dtype and backend.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            BaseActivation::Linear => x,
            BaseActivation::Relu => activation::relu(x),
            BaseActivation::LeakyRelu => {
                let positive = x.clone().greater_elem(0.0);
                x.clone().mul_scalar(LEAKY_SLOPE).mask_where(positive, x)
            }
            BaseActivation::Sigmoid => activation::sigmoid(x),
            BaseActivation::Tanh => activation::tanh(x),
            BaseActivation::Swish => activation::silu(x),
            BaseActivation::Mish => activation::mish(x),
        }
    }
}

/// Logistic sigmoid, stable for large `|z|`.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)`, stable for large `|z|`.
fn softplus(z: f64) -> f64 {
    if z > 30.0 { z } else { z.exp().ln_1p() }
}

impl fmt::Display for BaseActivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown activation name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown activation '{given}': expected one of linear, relu, leaky-relu, sigmoid, tanh, swish, mish"
)]
pub struct UnknownActivation {
    /// The name that was given.
    pub given: String,
}

impl FromStr for BaseActivation {
    type Err = UnknownActivation;

    /// Parses a name, case-insensitively; `_` and `-` are interchangeable and a few common
    /// aliases are accepted (`identity`, `leakyrelu`, `silu`, `logistic`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match norm.as_str() {
            "linear" | "identity" => BaseActivation::Linear,
            "relu" => BaseActivation::Relu,
            "leaky-relu" | "leakyrelu" | "lrelu" => BaseActivation::LeakyRelu,
            "sigmoid" | "logistic" => BaseActivation::Sigmoid,
            "tanh" => BaseActivation::Tanh,
            "swish" | "silu" => BaseActivation::Swish,
            "mish" => BaseActivation::Mish,
            _ => {
                return Err(UnknownActivation {
                    given: s.to_string(),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in BaseActivation::ALL {
            assert_eq!(b.name().parse::<BaseActivation>().unwrap(), b);
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!(
            "SiLU".parse::<BaseActivation>().unwrap(),
            BaseActivation::Swish
        );
        let err = "gelu".parse::<BaseActivation>().unwrap_err();
        assert!(err.to_string().contains("gelu"));
    }

    #[test]
    fn values_are_finite_for_extreme_inputs() {
        for b in BaseActivation::ALL {
            for z in [-1e30, -800.0, -80.0, 0.0, 80.0, 800.0, 1e30] {
                assert!(b.value(z).is_finite(), "{b}({z}) not finite");
                assert!(b.derivative(z).is_finite(), "{b}'({z}) not finite");
            }
        }
    }

    #[test]
    fn derivative_matches_finite_differences() {
        for b in BaseActivation::ALL {
            for &z in &[-3.7, -1.1, -0.3, 0.2, 0.9, 2.5, 6.0] {
                let h = 1e-6;
                let fd = (b.value(z + h) - b.value(z - h)) / (2.0 * h);
                let d = b.derivative(z);
                assert!(
                    (fd - d).abs() < 1e-6,
                    "{b}'({z}): analytic {d}, numeric {fd}"
                );
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(BaseActivation::Relu.value(-2.0), 0.0);
        assert_eq!(BaseActivation::LeakyRelu.value(-2.0), -0.02);
        assert!((BaseActivation::Sigmoid.value(0.0) - 0.5).abs() < 1e-15);
        assert!((BaseActivation::Mish.value(1.0) - 0.865_098_388).abs() < 1e-8);
        assert!((BaseActivation::Swish.value(1.0) - 0.731_058_578_6).abs() < 1e-9);
        assert_eq!(BaseActivation::Relu.derivative(0.0), 0.0);
        assert_eq!(BaseActivation::LeakyRelu.derivative(0.0), LEAKY_SLOPE);
    }
}
