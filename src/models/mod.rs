//! Models that take their activations as an [`ActivationSpec`](crate::activation::ActivationSpec).

pub mod init;
pub mod mlp;
pub mod mnist_cnn;
pub mod mobilenet;
pub mod mobilenet_v2;

use burn::module::Module;
use burn::tensor::Tensor;

use crate::activation::Activations;

/// An image classifier whose activations can be read and replaced (for the shared training
/// loops).
pub trait ImageClassifier: Module + Sized {
    /// Class logits (or log-probabilities) `[batch, classes]` of images `[batch, C, H, W]`.
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
    /// The model's activations.
    fn activations(&self) -> &Activations;
    /// The model with other activations.
    fn with_activations(self, activations: Activations) -> Self;
}

impl ImageClassifier for mobilenet::MobileNet {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn activations(&self) -> &Activations {
        &self.activations
    }
    fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }
}

impl ImageClassifier for mobilenet_v2::MobileNetV2 {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn activations(&self) -> &Activations {
        &self.activations
    }
    fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }
}
