//! Training: the one loop of the image experiments ([`fit`]), its batches and checkpoints,
//! losses, metrics and small optimiser helpers.

pub mod adadelta;
pub mod batches;
pub mod checkpoint;
pub mod curriculum;
pub mod fit;
pub mod metrics;
pub mod parallel;

use ::afu::optim::FusedAdamConfig;
use burn::tensor::Tensor;

/// Mean hinge loss `mean(max(0, 1 − y·f))`.
///
/// # Shapes
/// - `scores`, `labels`: `[batch, 1]` (labels ±1); output: `[1]`
pub fn hinge_loss(scores: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
    scores
        .mul(labels)
        .neg()
        .add_scalar(1.0)
        .clamp_min(0.0)
        .mean()
}

/// Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8), as the paper's code uses: afu's
/// fused Adam (one multi-threaded pass per parameter on Flex, Burn's Adam elsewhere, the same
/// state and records as Burn's; see [`::afu::optim`]).
pub fn adam_torch_defaults() -> FusedAdamConfig {
    FusedAdamConfig::torch_defaults()
}
