//! In-memory image-classification dataset and the train/test split selector.

use std::fmt;

/// Which half of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (MNIST: 60 000 images, CIFAR-10: 50 000).
    Train,
    /// The test split (10 000 images for both MNIST and CIFAR-10).
    Test,
}

impl Split {
    /// The lower-case name of the split: `"train"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of `len` labelled images of `channels × height × width` bytes each.
///
/// Images are stored back to back in `images`, each one channel-major (all of channel 0
/// row by row, then channel 1, …), which is the layout of both IDX and CIFAR binary files.
/// The loaders in this module always return a consistent value:
/// `images.len() == len * channels * height * width`, `labels.len() == len` and every
/// label `< classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    /// Pixel bytes of all images, `len × channels × height × width`.
    pub images: Vec<u8>,
    /// One class label per image.
    pub labels: Vec<u8>,
    /// Number of images.
    pub len: usize,
    /// Channels per image (1 for MNIST, 3 for CIFAR-10).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes; every label is below it.
    pub classes: usize,
}

impl ImageDataset {
    /// Bytes per image: `channels × height × width`.
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the dataset holds no images.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `C×H×W` bytes of image `i`, channel-major.
    ///
    /// # Panics
    /// When `i >= self.len`.
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(
            i < self.len,
            "image index {i} out of range (len {})",
            self.len
        );
        let ppi = self.pixels_per_image();
        &self.images[i * ppi..(i + 1) * ppi]
    }

    /// The label of image `i`.
    ///
    /// # Panics
    /// When `i >= self.len`.
    pub fn label(&self, i: usize) -> u8 {
        assert!(
            i < self.len,
            "label index {i} out of range (len {})",
            self.len
        );
        self.labels[i]
    }

    /// The first `n` images (all of them when `n >= len`).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len);
        let ppi = self.pixels_per_image();
        self.with_data(self.images[..n * ppi].to_vec(), self.labels[..n].to_vec())
    }

    /// The images at `indices`, in that order (indices may repeat).
    ///
    /// # Panics
    /// When an index is `>= len`.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let ppi = self.pixels_per_image();
        let mut images = Vec::with_capacity(indices.len() * ppi);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        self.with_data(images, labels)
    }

    /// All images as `f32`, same layout as [`ImageDataset::images`]: each byte is divided
    /// by 255, then `(x - mean[c]) / std[c]` is applied with `c` the pixel's channel.
    ///
    /// `mean` and `std` hold either one value per channel or a single value used for every
    /// channel.
    ///
    /// # Panics
    /// When `mean` or `std` has neither 1 nor `channels` entries.
    pub fn normalized(&self, mean: &[f32], std: &[f32]) -> Vec<f32> {
        let c = self.channels;
        for (name, v) in [("mean", mean), ("std", std)] {
            assert!(
                v.len() == c || v.len() == 1,
                "normalized: {name} has {} values, expected 1 or {c} (one per channel)",
                v.len()
            );
        }
        let pick = |v: &[f32], ch: usize| if v.len() == 1 { v[0] } else { v[ch] };
        // One 256-entry lookup table per channel.
        let tables: Vec<[f32; 256]> = (0..c)
            .map(|ch| {
                let (m, s) = (pick(mean, ch), pick(std, ch));
                let mut t = [0f32; 256];
                for (b, slot) in t.iter_mut().enumerate() {
                    *slot = (b as f32 / 255.0 - m) / s;
                }
                t
            })
            .collect();
        let plane = self.height * self.width;
        let mut out = Vec::with_capacity(self.images.len());
        if plane == 0 || c == 0 {
            return out;
        }
        for (k, chunk) in self.images.chunks(plane).enumerate() {
            let t = &tables[k % c];
            out.extend(chunk.iter().map(|&b| t[b as usize]));
        }
        out
    }

    /// A dataset with this one's shape and the given images and labels.
    fn with_data(&self, images: Vec<u8>, labels: Vec<u8>) -> Self {
        ImageDataset {
            len: labels.len(),
            images,
            labels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ImageDataset {
        // 3 images, 2 channels, 1×2 pixels.
        ImageDataset {
            images: vec![0, 255, 10, 20, 1, 2, 3, 4, 5, 6, 7, 8],
            labels: vec![0, 1, 2],
            len: 3,
            channels: 2,
            height: 1,
            width: 2,
            classes: 3,
        }
    }

    #[test]
    fn accessors() {
        let d = tiny();
        assert_eq!(d.pixels_per_image(), 4);
        assert_eq!(d.image(1), &[1, 2, 3, 4]);
        assert_eq!(d.label(2), 2);
        let t = d.take(2);
        assert_eq!(t.len, 2);
        assert_eq!(t.images, &d.images[..8]);
        assert_eq!(t.labels, vec![0, 1]);
        assert_eq!(d.take(99), d);
        let s = d.subset(&[2, 0, 2]);
        assert_eq!(s.len, 3);
        assert_eq!(s.labels, vec![2, 0, 2]);
        assert_eq!(s.image(0), d.image(2));
        assert_eq!(s.image(1), d.image(0));
        assert_eq!((s.channels, s.height, s.width, s.classes), (2, 1, 2, 3));
        assert_eq!(Split::Train.to_string(), "train");
    }

    #[test]
    fn normalizes_per_channel() {
        let d = tiny().take(1);
        let v = d.normalized(&[0.0, 0.5], &[1.0, 0.5]);
        let expect = [
            0.0,
            1.0,
            (10.0 / 255.0 - 0.5) / 0.5,
            (20.0 / 255.0 - 0.5) / 0.5,
        ];
        assert_eq!(v.len(), 4);
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let w = d.normalized(&[0.0], &[1.0]);
        assert!((w[3] - 20.0 / 255.0).abs() < 1e-6);
    }
}
