//! Models that take their activations as an [`ActivationSpec`](crate::activation::ActivationSpec).

#[cfg(test)]
mod curriculum_tests;
pub mod init;
pub mod mlp;
pub mod mnist_cnn;
pub mod mobilenet;
pub mod mobilenet_v2;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;

use crate::activation::Activations;

/// An image classifier whose activations can be read and replaced: what the training loop
/// (`afu_cli::train::fit`) needs of a model.
pub trait ImageClassifier: Module + Sized {
    /// Class logits (or log-probabilities) `[batch, classes]` of images `[batch, C, H, W]`.
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
    /// Log-probabilities `[batch, classes]` (the loss is their negative log-likelihood).
    fn log_probs(&self, x: Tensor<4>) -> Tensor<2> {
        log_softmax(self.logits(x), 1)
    }
    /// As [`log_probs`](Self::log_probs), calling `tap(slot, input)` with the input of each
    /// activation slot where the model supports it (others call nothing).
    fn log_probs_with_taps(
        &self,
        x: Tensor<4>,
        _tap: &mut dyn FnMut(usize, &Tensor<1>),
    ) -> Tensor<2> {
        self.log_probs(x)
    }
    /// The model's activations.
    fn activations(&self) -> &Activations;
    /// The model's activations, to change what is not a parameter (the curriculum mix).
    fn activations_mut(&mut self) -> &mut Activations;
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
    fn activations_mut(&mut self) -> &mut Activations {
        &mut self.activations
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
    fn activations_mut(&mut self) -> &mut Activations {
        &mut self.activations
    }
    fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }
}

impl ImageClassifier for mnist_cnn::MnistCnn {
    /// The network ends in log-softmax: its log-probabilities serve as logits.
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn log_probs(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn log_probs_with_taps(
        &self,
        x: Tensor<4>,
        tap: &mut dyn FnMut(usize, &Tensor<1>),
    ) -> Tensor<2> {
        self.forward_with_taps(x, tap)
    }
    fn activations(&self) -> &Activations {
        &self.activations
    }
    fn activations_mut(&mut self) -> &mut Activations {
        &mut self.activations
    }
    fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }
}
