//! The CIFAR-10 network of the paper's code (§2.2.4, SPEC §2.5): a MobileNet-v1-style stack of
//! depthwise-separable blocks with BatchNorm, taking its activations from an [`ActivationSpec`].
//! Under per-layer sharing each block owns one AFU, used after both of its convolutions (the
//! reference code); the stem has its own.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use rand::Rng;

use crate::activation::{ActivationSpec, Activations};
use crate::afu::AfuError;
use crate::models::init;

/// (output channels, stride) of the 13 blocks.
pub const BLOCKS: [(usize, usize); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

/// One depthwise-separable block: depthwise 3×3 → BN → act → pointwise 1×1 → BN → act.
#[derive(Module, Debug)]
pub struct Block {
    /// Depthwise 3×3 convolution (groups = channels).
    pub depthwise: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// Pointwise 1×1 convolution.
    pub pointwise: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
}

/// MobileNet-v1 for 32×32 images, width multiplier 1 (stem 3→32, 13 blocks, fc 1024→classes).
#[derive(Module, Debug)]
pub struct MobileNet {
    /// Stem convolution 3→32, 3×3, stride 1.
    pub stem: Conv2d,
    /// Stem BatchNorm.
    pub stem_bn: BatchNorm,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Global average pooling.
    pub pool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
    /// Activations: slot 0 = stem, then two slots per block.
    pub activations: Activations,
}

impl MobileNet {
    /// Builds the network with PyTorch-default initialisation drawn from `rng`.
    pub fn new(
        spec: &ActivationSpec,
        classes: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        let conv = |c_in: usize,
                    c_out: usize,
                    k: usize,
                    stride: usize,
                    groups: usize,
                    rng: &mut dyn rand::RngCore| {
            let cfg = Conv2dConfig::new([c_in, c_out], [k, k])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_bias(false)
                .with_padding(if k == 3 {
                    PaddingConfig2d::Explicit(1, 1, 1, 1)
                } else {
                    PaddingConfig2d::Valid
                });
            init::conv2d_from(&cfg, rng, device)
        };
        let stem = conv(3, 32, 3, 1, 1, rng);
        let mut blocks = Vec::with_capacity(BLOCKS.len());
        let mut widths = vec![32];
        let mut groups = vec![0];
        let mut names = vec!["stem".to_string()];
        let mut c_in = 32;
        for (b, &(c_out, stride)) in BLOCKS.iter().enumerate() {
            blocks.push(Block {
                depthwise: conv(c_in, c_in, 3, stride, c_in, rng),
                bn1: BatchNormConfig::new(c_in).init(device),
                pointwise: conv(c_in, c_out, 1, 1, 1, rng),
                bn2: BatchNormConfig::new(c_out).init(device),
            });
            widths.extend([c_in, c_out]);
            groups.extend([b + 1, b + 1]);
            names.push(format!("block{}", b + 1));
            c_in = c_out;
        }
        let fc = init::linear(c_in, classes, rng, device);
        let activations = Activations::new_grouped(spec, &widths, &groups, &names, rng, device)?;
        Ok(MobileNet {
            stem,
            stem_bn: BatchNormConfig::new(32).init(device),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc,
            activations,
        })
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - input: `[batch, 3, 32, 32]`; output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.activations.apply(
            0,
            crate::ops::batch_norm(&self.stem_bn, crate::ops::conv2d(&self.stem, x)),
        );
        for (b, block) in self.blocks.iter().enumerate() {
            x = self.activations.apply(
                1 + 2 * b,
                crate::ops::batch_norm(&block.bn1, crate::ops::conv2d(&block.depthwise, x)),
            );
            x = self.activations.apply(
                2 + 2 * b,
                crate::ops::batch_norm(&block.bn2, crate::ops::conv2d(&block.pointwise, x)),
            );
        }
        let x = self.pool.forward(x);
        let [b, c, _, _] = x.dims();
        self.fc.forward(x.reshape([b, c]))
    }
}
