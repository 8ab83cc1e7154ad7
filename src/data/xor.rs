//! The paper's toy XOR problem: four Gaussian blobs, two per class (SPEC §2.1), and the four
//! XOR corner points (§2.2).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Points in the plane with labels ±1.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneData {
    /// `(x, y)` coordinates.
    pub points: Vec<[f32; 2]>,
    /// `+1` or `-1` per point.
    pub labels: Vec<f32>,
}

impl PlaneData {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when there is no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Row-major `[n, 2]` coordinates.
    pub fn flat_points(&self) -> Vec<f32> {
        self.points.iter().flat_map(|p| [p[0], p[1]]).collect()
    }
}

/// Four Gaussian blobs of `per_blob` points each with standard deviation `std`, centred at
/// `(±centre, ±centre)`. Class `+1` at `(+,+)` and `(−,−)`; class `−1` at `(+,−)` and `(−,+)`.
/// The same seed always gives the same points.
pub fn xor_blobs(per_blob: usize, centre: f32, std: f32, seed: u64) -> PlaneData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut points = Vec::with_capacity(4 * per_blob);
    let mut labels = Vec::with_capacity(4 * per_blob);
    for (sx, sy, label) in [
        (1.0, 1.0, 1.0),
        (-1.0, -1.0, 1.0),
        (1.0, -1.0, -1.0),
        (-1.0, 1.0, -1.0),
    ] {
        for _ in 0..per_blob {
            points.push([
                sx * centre
                    + std
                        * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng),
                sy * centre
                    + std
                        * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng),
            ]);
            labels.push(label);
        }
    }
    PlaneData { points, labels }
}

/// The four XOR points `(±1, ±1)`; label `+1` for `(1, 1)` and `(−1, −1)`.
pub fn xor_corners() -> PlaneData {
    PlaneData {
        points: vec![[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]],
        labels: vec![1.0, 1.0, -1.0, -1.0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_balanced_and_reproducible() {
        let a = xor_blobs(500, 1.5, 1.0, 3);
        assert_eq!(a.len(), 2000);
        assert_eq!(a.labels.iter().filter(|&&l| l > 0.0).count(), 1000);
        assert_eq!(a, xor_blobs(500, 1.5, 1.0, 3));
        assert_ne!(a, xor_blobs(500, 1.5, 1.0, 4));
        // Blob means near their centres.
        let mean_x: f32 = a.points[..500].iter().map(|p| p[0]).sum::<f32>() / 500.0;
        assert!((mean_x - 1.5).abs() < 0.2, "{mean_x}");
    }

    #[test]
    fn corners_are_xor() {
        let c = xor_corners();
        for (p, l) in c.points.iter().zip(&c.labels) {
            assert_eq!(p[0] * p[1], *l);
        }
    }
}
