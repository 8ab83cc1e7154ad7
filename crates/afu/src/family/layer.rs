//! [`Learnable`]: the module of one activation slot of a learnable family, `C` channels of
//! `P` parameters stored as one `[C, P]` tensor (`C = 1`: shared by every element), and
//! [`FamilyParams`], its plain values.

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{Family, fused, reference};
use crate::afu::KernelChoice;

/// Error in the parameters of a learnable family.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FamilyError {
    /// No channel.
    #[error("{family}: channels must be at least 1")]
    NoChannel {
        /// The family.
        family: Family,
    },
    /// A parameter vector of the wrong length.
    #[error(
        "{family}: {found} parameter values, expected {expected} ({channels} channels × {per_channel})"
    )]
    BadLength {
        /// The family.
        family: Family,
        /// Values found.
        found: usize,
        /// Values expected.
        expected: usize,
        /// Channels.
        channels: usize,
        /// Parameters per channel.
        per_channel: usize,
    },
    /// A NaN or infinite parameter.
    #[error("{family}: parameter {index} is not finite")]
    NonFinite {
        /// The family.
        family: Family,
        /// Index of the first bad value.
        index: usize,
    },
}

/// Plain values of one slot's parameters: what `families.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyParams {
    /// The family (its canonical name, e.g. `pwlu-16`).
    pub family: String,
    /// Number of channels `C`.
    pub channels: usize,
    /// Names of one channel's parameters.
    pub param_names: Vec<String>,
    /// One row of parameters per channel.
    pub values: Vec<Vec<f64>>,
}

/// `C` learnable activations of one family.
#[derive(Module, Debug)]
pub struct Learnable {
    /// `[C, P]` parameters.
    pub params: Param<Tensor<2>>,
    /// The family.
    #[module(skip)]
    pub family: Family,
    /// Fused kernel or reference.
    #[module(skip)]
    pub kernel: KernelChoice,
}

impl Learnable {
    /// `channels` activations at the family's start, stored as `F32`.
    pub fn new(family: Family, channels: usize, device: &Device) -> Result<Self, FamilyError> {
        let row = family.init();
        let values: Vec<f64> = (0..channels).flat_map(|_| row.iter().copied()).collect();
        Self::from_values(family, channels, &values, device, DType::F32)
    }

    /// From row-major `[C, P]` values, stored with `dtype`.
    pub fn from_values(
        family: Family,
        channels: usize,
        values: &[f64],
        device: &Device,
        dtype: DType,
    ) -> Result<Self, FamilyError> {
        let np = family.n_params();
        if channels == 0 {
            return Err(FamilyError::NoChannel { family });
        }
        if values.len() != channels * np {
            return Err(FamilyError::BadLength {
                family,
                found: values.len(),
                expected: channels * np,
                channels,
                per_channel: np,
            });
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(FamilyError::NonFinite { family, index });
        }
        let t = Tensor::<2>::from_data(
            TensorData::new(values.to_vec(), [channels, np]),
            (device, dtype),
        );
        Ok(Learnable {
            params: Param::from_tensor(t),
            family,
            kernel: KernelChoice::Auto,
        })
    }

    /// Number of channels `C`.
    pub fn channels(&self) -> usize {
        self.params.val().dims()[0]
    }

    /// Number of learnable values (`C × P`).
    pub fn num_values(&self) -> usize {
        let [c, p] = self.params.val().dims();
        c * p
    }

    /// The current values, row-major `[C, P]`.
    pub fn values(&self) -> Vec<f64> {
        self.params
            .val()
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap_or_default()
    }

    /// The current parameters as plain values.
    pub fn params(&self) -> FamilyParams {
        let np = self.family.n_params();
        let v = self.values();
        FamilyParams {
            family: self.family.to_string(),
            channels: self.channels(),
            param_names: self.family.param_names(),
            values: v.chunks(np.max(1)).map(|r| r.to_vec()).collect(),
        }
    }

    /// Returns the module with another kernel choice.
    pub fn with_kernel(mut self, kernel: KernelChoice) -> Self {
        self.kernel = kernel;
        self
    }

    /// Applies the activations element-wise.
    ///
    /// # Shapes
    /// - input: any shape; with `C > 1`, axis 1 must have size `C`
    /// - output: same shape
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        family_forward(x, self.params.val(), self.family, self.kernel)
    }
}

/// Dispatches one family application: the fused kernel on the Flex backend and, in builds
/// with the `wgpu` or `cuda` feature, on the CubeCL backends (`Auto`); the reference elsewhere
/// or when asked.
pub fn family_forward<const D: usize>(
    x: Tensor<D>,
    p: Tensor<2>,
    family: Family,
    choice: KernelChoice,
) -> Tensor<D> {
    let fused = match choice {
        KernelChoice::Auto => crate::afu::kernel::fused::has_fused_kernel(&x.device()),
        KernelChoice::Reference => false,
        KernelChoice::Fused => true,
    };
    if fused {
        fused::family_fused(x, p, family)
    } else {
        reference::family_reference(x, p, family)
    }
}
