//! The PyTorch MNIST-example CNN used by the paper (§2.2.3, SPEC §2.4), with its activations
//! taken from an [`ActivationSpec`].

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::activation::{ActivationSpec, Activations};
use crate::afu::AfuError;
use crate::models::init;

/// Where the activations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CnnReading {
    /// The reference code: after conv1, fc1 and fc2 (the output), none after conv2.
    Reference,
    /// The paper's text: after every hidden layer (conv1, conv2, fc1), none on the output.
    Paper,
}

impl CnnReading {
    /// Width (channels or neurons) at each activation slot.
    pub fn slot_widths(self) -> Vec<usize> {
        match self {
            CnnReading::Reference => vec![32, 128, 10],
            CnnReading::Paper => vec![32, 64, 128],
        }
    }

    /// Names of the activation slots (for figures).
    pub fn slot_names(self) -> Vec<&'static str> {
        match self {
            CnnReading::Reference => vec!["conv1", "fc1", "fc2"],
            CnnReading::Paper => vec!["conv1", "conv2", "fc1"],
        }
    }
}

/// conv 1→32 3×3 → act → conv 32→64 3×3 → (act) → maxpool 2 → dropout 0.25 → fc 9216→128 →
/// act → dropout 0.5 → fc 128→10 → (act) → log_softmax.
#[derive(Module, Debug)]
pub struct MnistCnn {
    /// conv 1→32, 3×3.
    pub conv1: Conv2d,
    /// conv 32→64, 3×3.
    pub conv2: Conv2d,
    /// 2×2 max pooling.
    pub pool: MaxPool2d,
    /// Dropout 0.25.
    pub dropout1: Dropout,
    /// fc 9216→128.
    pub fc1: Linear,
    /// Dropout 0.5.
    pub dropout2: Dropout,
    /// fc 128→10.
    pub fc2: Linear,
    /// The activations.
    pub activations: Activations,
    /// Placement of the activations.
    #[module(skip)]
    pub reading: CnnReading,
}

impl MnistCnn {
    /// Builds the network with PyTorch's default initialisation drawn from `rng`.
    pub fn new(
        spec: &ActivationSpec,
        reading: CnnReading,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        let conv1 = init::conv2d(1, 32, 3, rng, device);
        let conv2 = init::conv2d(32, 64, 3, rng, device);
        let fc1 = init::linear(9216, 128, rng, device);
        let fc2 = init::linear(128, 10, rng, device);
        let activations = Activations::new(spec, &reading.slot_widths(), rng, device)?;
        Ok(MnistCnn {
            conv1,
            conv2,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout1: DropoutConfig::new(0.25).init(),
            fc1,
            dropout2: DropoutConfig::new(0.5).init(),
            fc2,
            activations,
            reading,
        })
    }

    /// Log-probabilities of the 10 classes.
    ///
    /// # Shapes
    /// - input: `[batch, 1, 28, 28]` (normalised); output: `[batch, 10]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with_taps(x, &mut |_, _| {})
    }

    /// As [`forward`](Self::forward), calling `tap(slot, pre_activation)` with the input of each
    /// activation slot (for histograms of what each AFU sees).
    pub fn forward_with_taps(
        &self,
        x: Tensor<4>,
        tap: &mut dyn FnMut(usize, &Tensor<1>),
    ) -> Tensor<2> {
        let paper = self.reading == CnnReading::Paper;
        let mut slot = 0;
        let act4 = |t: Tensor<4>, slot: &mut usize, tap: &mut dyn FnMut(usize, &Tensor<1>)| {
            tap(*slot, &t.clone().reshape([-1]));
            let y = self.activations.apply(*slot, t);
            *slot += 1;
            y
        };
        let x = crate::ops::conv2d(&self.conv1, x);
        let x = act4(x, &mut slot, tap);
        let x = crate::ops::conv2d(&self.conv2, x);
        let x = if paper { act4(x, &mut slot, tap) } else { x };
        let x = crate::ops::max_pool2d(&self.pool, x);
        let x = crate::ops::dropout(&self.dropout1, x);
        let [b, c, h, w] = x.dims();
        let x: Tensor<2> = x.reshape([b, c * h * w]);
        let x = self.fc1.forward(x);
        tap(slot, &x.clone().reshape([-1]));
        let x = self.activations.apply(slot, x);
        slot += 1;
        let x = crate::ops::dropout(&self.dropout2, x);
        let x = self.fc2.forward(x);
        let x = if paper {
            x
        } else {
            tap(slot, &x.clone().reshape([-1]));
            self.activations.apply(slot, x)
        };
        log_softmax(x, 1)
    }
}
