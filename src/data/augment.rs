//! Image augmentation as in the paper's CIFAR-10 code: random horizontal flip (p = 0.4), random
//! rotation within ±30° (bilinear, zero fill), then normalisation. Each image's random draw is
//! seeded from (run seed, epoch, image index), so batches are identical whatever the number of
//! threads; images of a batch are processed in parallel.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::dataset::ImageDataset;

/// Augmentation settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub flip_probability: f64,
    /// Largest rotation, degrees (uniform in ±this).
    pub max_rotation_degrees: f64,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: f32,
    /// Per-channel standard deviation divided by.
    pub std: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            flip_probability: 0.4,
            max_rotation_degrees: 30.0,
            mean: 0.5,
            std: 0.5,
        }
    }
}

/// Images `idx` of `data` as a normalised `[len, C, H, W]` buffer; augmented when `augment` is
/// given (with `(seed, epoch)` fixing the random draws).
pub fn batch(
    data: &ImageDataset,
    idx: &[usize],
    augment: Option<(&AugmentConfig, u64, u64)>,
    norm: (f32, f32),
) -> Vec<f32> {
    let (c, h, w) = (data.channels, data.height, data.width);
    let per = c * h * w;
    let mut out = vec![0.0f32; idx.len() * per];
    out.par_chunks_mut(per)
        .zip(idx.par_iter())
        .for_each(|(dst, &i)| {
            let src = data.image(i);
            match augment {
                None => {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = (s as f32 / 255.0 - norm.0) / norm.1;
                    }
                }
                Some((cfg, seed, epoch)) => {
                    let mut rng = ChaCha8Rng::seed_from_u64(
                        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                            ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9),
                    );
                    let flip = rng.random_bool(cfg.flip_probability.clamp(0.0, 1.0));
                    let deg = if cfg.max_rotation_degrees > 0.0 {
                        rng.random_range(-cfg.max_rotation_degrees..=cfg.max_rotation_degrees)
                    } else {
                        0.0
                    };
                    transform(src, dst, c, h, w, flip, deg.to_radians(), norm);
                }
            }
        });
    out
}

/// Flips (optionally) then rotates one `C×H×W` image by `angle` radians about its centre with
/// bilinear sampling and zero fill, and normalises.
#[allow(clippy::too_many_arguments)]
pub fn transform(
    src: &[u8],
    dst: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    flip: bool,
    angle: f64,
    norm: (f32, f32),
) {
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let px = |ch: usize, y: isize, x: isize| -> f64 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            return 0.0;
        }
        let x = if flip { w as isize - 1 - x } else { x };
        src[ch * h * w + y as usize * w + x as usize] as f64
    };
    for y in 0..h {
        for x in 0..w {
            // Inverse map: the source point that lands on (x, y); a positive angle turns the
            // image counter-clockwise as seen on screen (y down), as torchvision does.
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let sx = cos * dx - sin * dy + cx;
            let sy = sin * dx + cos * dy + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            for ch in 0..c {
                let v = px(ch, y0, x0) * (1.0 - fx) * (1.0 - fy)
                    + px(ch, y0, x0 + 1) * fx * (1.0 - fy)
                    + px(ch, y0 + 1, x0) * (1.0 - fx) * fy
                    + px(ch, y0 + 1, x0 + 1) * fx * fy;
                dst[ch * h * w + y * w + x] = (v as f32 / 255.0 - norm.0) / norm.1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        (0..3 * 5 * 7).map(|i| (i * 37 % 251) as u8).collect()
    }

    #[test]
    fn identity_flip_and_quarter_turn() {
        let src = image();
        let (c, h, w) = (3, 5, 7);
        let mut out = vec![0.0f32; src.len()];
        transform(&src, &mut out, c, h, w, false, 0.0, (0.0, 1.0));
        for (o, s) in out.iter().zip(&src) {
            assert!((o * 255.0 - *s as f32).abs() < 1e-3);
        }
        transform(&src, &mut out, c, h, w, true, 0.0, (0.0, 1.0));
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let want = src[ch * h * w + y * w + (w - 1 - x)] as f32;
                    assert!((out[ch * h * w + y * w + x] * 255.0 - want).abs() < 1e-3);
                }
            }
        }
        // A square image turned by 90° (counter-clockwise on screen) maps pixels exactly.
        let sq: Vec<u8> = (0..9).map(|i| i as u8 * 10).collect();
        let mut o = vec![0.0f32; 9];
        transform(
            &sq,
            &mut o,
            1,
            3,
            3,
            false,
            std::f64::consts::FRAC_PI_2,
            (0.0, 1.0),
        );
        let got: Vec<u8> = o.iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(got, vec![20, 50, 80, 10, 40, 70, 0, 30, 60]);
    }

    #[test]
    fn batches_are_deterministic_and_normalised() {
        let data = ImageDataset {
            images: image().repeat(4),
            labels: vec![0, 1, 2, 3],
            len: 4,
            channels: 3,
            height: 5,
            width: 7,
            classes: 10,
        };
        let cfg = AugmentConfig::default();
        let a = batch(&data, &[0, 1, 2, 3], Some((&cfg, 7, 2)), (0.5, 0.5));
        let b = batch(&data, &[0, 1, 2, 3], Some((&cfg, 7, 2)), (0.5, 0.5));
        assert_eq!(a, b);
        let c = batch(&data, &[0, 1, 2, 3], Some((&cfg, 7, 3)), (0.5, 0.5));
        assert_ne!(a, c);
        let plain = batch(&data, &[0], None, (0.5, 0.5));
        assert!(plain.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
