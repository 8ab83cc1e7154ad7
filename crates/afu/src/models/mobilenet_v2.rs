//! MobileNetV2 for 32×32 images (the paper's text names it; SPEC §2.5): inverted residual
//! blocks with linear bottlenecks, the CIFAR variant with a stride-1 stem and stride 1 in the
//! second stage. Activations come from an [`ActivationSpec`]; under per-layer sharing each block
//! owns one AFU (after its expansion and its depthwise convolution), as the reference code does
//! for its MobileNet.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use rand::Rng;

use crate::activation::{ActivationSpec, Activations};
use crate::afu::AfuError;
use crate::models::init;

/// (expansion, output channels, repeats, first stride) of the seven stages (CIFAR strides).
pub const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Conv + BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// Convolution (no bias).
    pub conv: Conv2d,
    /// BatchNorm.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Self {
        let cfg = Conv2dConfig::new([c_in, c_out], [k, k])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_bias(false)
            .with_padding(if k == 3 {
                PaddingConfig2d::Explicit(1, 1, 1, 1)
            } else {
                PaddingConfig2d::Valid
            });
        ConvBn {
            conv: init::conv2d_from(&cfg, rng, device),
            bn: BatchNormConfig::new(c_out).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::ops::batch_norm(&self.bn, crate::ops::conv2d(&self.conv, x))
    }
}

/// Inverted residual: expand 1×1 → act → depthwise 3×3 → act → project 1×1 (linear), plus a
/// shortcut when the stride is 1.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// Expansion 1×1.
    pub expand: ConvBn,
    /// Depthwise 3×3.
    pub depthwise: ConvBn,
    /// Linear bottleneck 1×1.
    pub project: ConvBn,
    /// 1×1 projection of the input when channels change at stride 1.
    pub shortcut: Option<ConvBn>,
    /// Stride of the depthwise convolution.
    #[module(skip)]
    pub stride: usize,
}

/// MobileNetV2 (CIFAR): stem 3→32, 17 inverted residual blocks, 1×1 conv to 1280, pool, fc.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// Stem 3×3 conv, stride 1.
    pub stem: ConvBn,
    /// The blocks.
    pub blocks: Vec<InvertedResidual>,
    /// Final 1×1 conv 320→1280.
    pub head: ConvBn,
    /// Global average pooling.
    pub pool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
    /// Activations: slot 0 = stem, two per block, the last = head.
    pub activations: Activations,
}

impl MobileNetV2 {
    /// Builds the network with PyTorch-default initialisation drawn from `rng`.
    pub fn new(
        spec: &ActivationSpec,
        classes: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self, AfuError> {
        let stem = ConvBn::new(3, 32, 3, 1, 1, rng, device);
        let (mut widths, mut groups, mut names) = (vec![32], vec![0], vec!["stem".to_string()]);
        let mut blocks = Vec::new();
        let mut c_in = 32;
        for &(expansion, c_out, repeats, first_stride) in &STAGES {
            for r in 0..repeats {
                let stride = if r == 0 { first_stride } else { 1 };
                let planes = expansion * c_in;
                let g = blocks.len() + 1;
                blocks.push(InvertedResidual {
                    expand: ConvBn::new(c_in, planes, 1, 1, 1, rng, device),
                    depthwise: ConvBn::new(planes, planes, 3, stride, planes, rng, device),
                    project: ConvBn::new(planes, c_out, 1, 1, 1, rng, device),
                    shortcut: (stride == 1 && c_in != c_out)
                        .then(|| ConvBn::new(c_in, c_out, 1, 1, 1, rng, device)),
                    stride,
                });
                widths.extend([planes, planes]);
                groups.extend([g, g]);
                names.push(format!("block{g}"));
                c_in = c_out;
            }
        }
        let head = ConvBn::new(c_in, 1280, 1, 1, 1, rng, device);
        widths.push(1280);
        groups.push(blocks.len() + 1);
        names.push("head".to_string());
        let fc = init::linear(1280, classes, rng, device);
        let activations = Activations::new_grouped(spec, &widths, &groups, &names, rng, device)?;
        Ok(MobileNetV2 {
            stem,
            blocks,
            head,
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
        let mut x = self.activations.apply(0, self.stem.forward(x));
        for (b, block) in self.blocks.iter().enumerate() {
            let h = self
                .activations
                .apply(1 + 2 * b, block.expand.forward(x.clone()));
            let h = self
                .activations
                .apply(2 + 2 * b, block.depthwise.forward(h));
            let h = block.project.forward(h);
            x = if block.stride == 1 {
                let short = match &block.shortcut {
                    Some(s) => s.forward(x),
                    None => x,
                };
                h.add(short)
            } else {
                h
            };
        }
        let last = 1 + 2 * self.blocks.len();
        let x = self.activations.apply(last, self.head.forward(x));
        let x = self.pool.forward(x);
        let [b, c, _, _] = x.dims();
        self.fc.forward(x.reshape([b, c]))
    }
}
