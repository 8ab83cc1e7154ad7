//! The task distribution of `afu meta`: small binary classification problems drawn from a seed.
//!
//! 2-D problems (a few hundred points, labels ±1): XOR-like Gaussian blobs (random centre
//! distance, rotation, noise), two moons and two circles (random noise, rotation, scale); and,
//! with `--data DIR`, a random pair of classes of MNIST-format images (flattened, normalised
//! pixels). The same seed always gives the same task.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::data::dataset::ImageDataset;

/// One classification task: train and test points with labels ±1.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// What kind of problem, with its drawn settings (for logs).
    pub kind: String,
    /// Input dimension.
    pub dim: usize,
    /// Row-major `[n_train, dim]` inputs.
    pub train_x: Vec<f32>,
    /// `±1` per training point.
    pub train_y: Vec<f32>,
    /// Row-major `[n_test, dim]` inputs.
    pub test_x: Vec<f32>,
    /// `±1` per test point.
    pub test_y: Vec<f32>,
}

/// splitmix64 of `a` combined with `b`: the seeds of tasks and generations.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of training task `index` of generation `generation`.
pub fn train_task_seed(seed: u64, generation: usize, index: usize) -> u64 {
    mix(mix(mix(seed, 1), generation as u64), index as u64)
}

/// Seed of held-out task `index`: a separate stream (tag 2) from every training task's (tag 1).
pub fn held_out_seed(seed: u64, index: usize) -> u64 {
    mix(mix(seed, 2), index as u64)
}

fn normal(rng: &mut impl Rng) -> f32 {
    <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng)
}

/// Draws the task of `seed`: `points` training and `points` test points. With `images`, one
/// task in four is an image task.
pub fn sample_task(seed: u64, points: usize, images: Option<&ImageDataset>) -> Task {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kinds = if images.is_some() { 4 } else { 3 };
    match (rng.random_range(0..kinds), images) {
        (3, Some(data)) => image_task(data, points, &mut rng),
        (k, _) => plane_task(k, points, &mut rng),
    }
}

/// Draws one point of the positive (`true`) or negative class.
type PointDraw = dyn FnMut(&mut ChaCha8Rng, bool) -> [f32; 2];

fn plane_task(kind: u32, points: usize, rng: &mut ChaCha8Rng) -> Task {
    let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let (sin, cos) = angle.sin_cos();
    let (name, noise, mut draw): (&str, f32, Box<PointDraw>) = match kind {
        0 => {
            let centre: f32 = rng.random_range(0.8..2.0);
            let noise: f32 = rng.random_range(0.3..0.8);
            (
                "xor-blobs",
                noise,
                Box::new(move |r: &mut ChaCha8Rng, positive: bool| {
                    let s: f32 = if r.random_bool(0.5) { 1.0 } else { -1.0 };
                    let t = if positive { s } else { -s };
                    [
                        s * centre + noise * normal(r),
                        t * centre + noise * normal(r),
                    ]
                }),
            )
        }
        1 => {
            let noise: f32 = rng.random_range(0.05..0.25);
            (
                "moons",
                noise,
                Box::new(move |r: &mut ChaCha8Rng, positive: bool| {
                    let a: f32 = r.random_range(0.0..std::f32::consts::PI);
                    let p = if positive {
                        [a.cos() - 0.5, a.sin() - 0.25]
                    } else {
                        [0.5 - a.cos(), 0.25 - a.sin()]
                    };
                    [
                        1.5 * p[0] + noise * normal(r),
                        1.5 * p[1] + noise * normal(r),
                    ]
                }),
            )
        }
        _ => {
            let inner: f32 = rng.random_range(0.3..0.6);
            let noise: f32 = rng.random_range(0.05..0.15);
            (
                "circles",
                noise,
                Box::new(move |r: &mut ChaCha8Rng, positive: bool| {
                    let a: f32 = r.random_range(0.0..std::f32::consts::TAU);
                    let radius = 1.5 * if positive { inner } else { 1.0 };
                    [
                        radius * a.cos() + noise * normal(r),
                        radius * a.sin() + noise * normal(r),
                    ]
                }),
            )
        }
    };
    let mut make = |n: usize, r: &mut ChaCha8Rng| {
        let mut x = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let positive = i % 2 == 0;
            let p = draw(r, positive);
            x.push(cos * p[0] - sin * p[1]);
            x.push(sin * p[0] + cos * p[1]);
            y.push(if positive { 1.0 } else { -1.0 });
        }
        (x, y)
    };
    let (train_x, train_y) = make(points, rng);
    let (test_x, test_y) = make(points, rng);
    Task {
        kind: format!("{name} (noise {noise:.2}, rotation {angle:.2})"),
        dim: 2,
        train_x,
        train_y,
        test_x,
        test_y,
    }
}

fn image_task(data: &ImageDataset, points: usize, rng: &mut ChaCha8Rng) -> Task {
    let pair = sample(rng, data.classes, 2);
    let (a, b) = (pair.index(0) as u8, pair.index(1) as u8);
    let mut of_class = |c: u8| -> Vec<usize> {
        let mut idx: Vec<usize> = (0..data.len).filter(|&i| data.label(i) == c).collect();
        // A fixed-size random subset, in a seed-determined order.
        let take = idx.len().min(points);
        let chosen = sample(rng, idx.len(), take);
        idx = chosen.iter().map(|k| idx[k]).collect();
        idx
    };
    let (ia, ib) = (of_class(a), of_class(b));
    let dim = data.pixels_per_image();
    let pixel = |v: u8| (v as f32 / 255.0 - 0.1307) / 0.3081;
    let split = |range: std::ops::Range<usize>| {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for k in range {
            for (idx, label) in [(&ia, 1.0f32), (&ib, -1.0f32)] {
                if let Some(&i) = idx.get(k) {
                    x.extend(data.image(i).iter().map(|&v| pixel(v)));
                    y.push(label);
                }
            }
        }
        (x, y)
    };
    let half = points / 2;
    let (train_x, train_y) = split(0..half);
    let (test_x, test_y) = split(half..points);
    Task {
        kind: format!("images {a} vs {b}"),
        dim,
        train_x,
        train_y,
        test_x,
        test_y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_deterministic_balanced_and_seeds_disjoint() {
        for s in 0..12 {
            let t = sample_task(s, 40, None);
            assert_eq!(t, sample_task(s, 40, None));
            assert_eq!(t.train_x.len(), 80);
            assert_eq!(t.test_y.len(), 40);
            assert_eq!(t.train_y.iter().filter(|&&y| y > 0.0).count(), 20);
            assert!(t.train_x.iter().all(|v| v.is_finite()));
        }
        let kinds: std::collections::BTreeSet<String> = (0..30)
            .map(|s| {
                sample_task(s, 10, None)
                    .kind
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        let train: std::collections::HashSet<u64> = (0..50)
            .flat_map(|g| (0..20).map(move |i| train_task_seed(7, g, i)))
            .collect();
        assert!((0..1000).all(|i| !train.contains(&held_out_seed(7, i))));
    }
}
