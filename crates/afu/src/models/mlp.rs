//! Fully connected networks: the XOR net (2→4→1), the one-neuron XOR model (2→1 then an
//! activation) and the random nets of the smoothness analysis (2→10→10→10→10→1).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use rand::Rng;

use crate::activation::{ActivationSpec, Activations};
use crate::afu::AfuError;
use crate::models::init;

/// A multi-layer perceptron with an activation after every hidden layer and, optionally, after
/// the output layer.
#[derive(Module, Debug)]
pub struct Mlp {
    /// The linear layers.
    pub layers: Vec<Linear>,
    /// The activations (one slot per activated layer).
    pub activations: Activations,
    /// Whether the output layer is followed by an activation (the one-neuron XOR model).
    #[module(skip)]
    pub activate_output: bool,
}

impl Mlp {
    /// Builds an MLP with layer sizes `sizes` (`[2, 4, 1]`: 2 inputs, 4 hidden, 1 output).
    /// Linear layers are drawn first, then the AFUs, from `rng`.
    pub fn new(
        sizes: &[usize],
        activation: &ActivationSpec,
        activate_output: bool,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        let layers: Vec<Linear> = sizes
            .windows(2)
            .map(|w| init::linear(w[0], w[1], rng, device))
            .collect();
        let mut widths: Vec<usize> = sizes[1..sizes.len() - 1].to_vec();
        if activate_output {
            widths.push(sizes[sizes.len() - 1]);
        }
        let activations = Activations::new(activation, &widths, rng, device)?;
        Ok(Mlp {
            layers,
            activations,
            activate_output,
        })
    }

    /// The network's output.
    ///
    /// # Shapes
    /// - input: `[batch, sizes[0]]`; output: `[batch, sizes[last]]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_with_hidden(x, false).0
    }

    /// The output and, when `keep` is true, the activated output of every hidden layer.
    pub fn forward_with_hidden(&self, mut x: Tensor<2>, keep: bool) -> (Tensor<2>, Vec<Tensor<2>>) {
        let last = self.layers.len() - 1;
        let mut hidden = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last || self.activate_output {
                x = self.activations.apply(i, x);
                if keep && i < last {
                    hidden.push(x.clone());
                }
            }
        }
        (x, hidden)
    }
}
