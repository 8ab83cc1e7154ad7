//! Image batches for the training loop: normalised (and optionally augmented) pixels with
//! one-hot targets, built per batch from a dataset's bytes.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::augment::{self, AugmentConfig};
use crate::data::dataset::ImageDataset;

/// A dataset as the training loop sees it: normalisation `(x/255 − mean)/std` and, for the
/// training split, an optional augmentation whose draws are fixed by (seed, epoch, image).
pub struct ImageBatches<'a> {
    data: &'a ImageDataset,
    norm: (f32, f32),
    augment: Option<AugmentConfig>,
    classes: usize,
}

/// One batch: images `[b, C, H, W]`, one-hot targets `[b, classes]` and the labels.
pub struct Batch {
    /// Normalised images.
    pub images: Tensor<4>,
    /// One-hot targets.
    pub targets: Tensor<2>,
    /// Class labels.
    pub labels: Vec<u8>,
}

impl<'a> ImageBatches<'a> {
    /// Batches of `data` normalised with `norm = (mean, std)`, augmented when `augment` is given,
    /// with one-hot targets over `classes` classes.
    pub fn new(
        data: &'a ImageDataset,
        norm: (f32, f32),
        augment: Option<AugmentConfig>,
        classes: usize,
    ) -> Self {
        ImageBatches {
            data,
            norm,
            augment,
            classes,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.data.len == 0
    }

    /// Number of classes of the targets.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The images `idx`; augmented with the draws of `(seed, epoch)` when `epoch` is given and
    /// the batches have an augmentation.
    pub fn batch(&self, idx: &[usize], epoch: Option<(u64, usize)>, device: &Device) -> Batch {
        let aug = match (&self.augment, epoch) {
            (Some(cfg), Some((seed, epoch))) => Some((cfg, seed, epoch as u64)),
            _ => None,
        };
        let d = self.data;
        let x = augment::batch(d, idx, aug, self.norm);
        let labels: Vec<u8> = idx.iter().map(|&i| d.label(i)).collect();
        let mut onehot = vec![0.0f32; idx.len() * self.classes];
        // Loaders reject labels outside the classes; a stray one would get an all-zero target.
        for (k, &l) in labels.iter().enumerate() {
            if (l as usize) < self.classes {
                onehot[k * self.classes + l as usize] = 1.0;
            }
        }
        Batch {
            images: Tensor::from_data(
                TensorData::new(x, [idx.len(), d.channels, d.height, d.width]),
                device,
            ),
            targets: Tensor::from_data(TensorData::new(onehot, [idx.len(), self.classes]), device),
            labels,
        }
    }
}
