//! Batch normalisation with the batch's own statistics (training mode) on NCHW slices: one
//! pass for the statistics, one for the output; the backward pass needs two per-channel sums
//! and one elementwise pass. Channels run in parallel; sums are accumulated in `f64` in a fixed
//! order, so results do not depend on the thread count.

use rayon::prelude::*;

use super::conv_cpu::ConvFloat;

/// Shapes of one batch norm: `[batch, channels, plane]` (plane = product of the spatial dims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnGeometry {
    /// Batch size.
    pub batch: usize,
    /// Channels (axis 1).
    pub channels: usize,
    /// Elements per channel per image.
    pub plane: usize,
}

impl BnGeometry {
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

/// Sums `f(i, value)` over every element of channel `c`, in a fixed order.
fn channel_sum<T: ConvFloat>(
    geo: &BnGeometry,
    x: &[T],
    c: usize,
    mut f: impl FnMut(usize, T) -> f64,
) -> f64 {
    let mut total = 0.0;
    for b in 0..geo.batch {
        let start = (b * geo.channels + c) * geo.plane;
        let mut s = 0.0;
        for (i, &v) in x[start..start + geo.plane].iter().enumerate() {
            s += f(start + i, v);
        }
        total += s;
    }
    total
}

/// Forward pass: writes `y` and returns the per-channel mean and biased variance.
pub fn forward<T: ConvFloat>(
    geo: &BnGeometry,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    epsilon: f64,
    y: &mut [T],
) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(x.len(), geo.batch * geo.channels * geo.plane);
    assert_eq!(y.len(), x.len());
    let n = geo.count().max(1.0);
    let stats: Vec<(f64, f64)> = (0..geo.channels)
        .into_par_iter()
        .map(|c| {
            let mean = channel_sum(geo, x, c, |_, v| v.to_f64()) / n;
            let var = channel_sum(geo, x, c, |_, v| {
                let d = v.to_f64() - mean;
                d * d
            }) / n;
            (mean, var)
        })
        .collect();
    // y = x·scale + shift per channel.
    let coef: Vec<(T, T)> = stats
        .iter()
        .enumerate()
        .map(|(c, &(mean, var))| {
            let scale = gamma[c].to_f64() / (var + epsilon).sqrt();
            (
                T::from_f64(scale),
                T::from_f64(beta[c].to_f64() - mean * scale),
            )
        })
        .collect();
    let plane = geo.plane.max(1);
    y.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each(|(row, (yr, xr))| {
            let (scale, shift) = coef[row % geo.channels];
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = v * scale + shift;
            }
        });
    stats.into_iter().unzip()
}

/// Gradients of one batch norm.
#[derive(Debug, Clone)]
pub struct BnGrads<T> {
    /// Input gradient (`None` when not asked for).
    pub x: Option<Vec<T>>,
    /// `gamma` gradient.
    pub gamma: Vec<T>,
    /// `beta` gradient.
    pub beta: Vec<T>,
}

/// Backward pass from the forward's input, `gamma`, the batch statistics and `gy`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: ConvFloat>(
    geo: &BnGeometry,
    x: &[T],
    gamma: &[T],
    mean: &[f64],
    var: &[f64],
    epsilon: f64,
    gy: &[T],
    need_x: bool,
) -> BnGrads<T> {
    assert_eq!(x.len(), geo.batch * geo.channels * geo.plane);
    assert_eq!(gy.len(), x.len());
    let n = geo.count().max(1.0);
    // Per channel: Σgy and Σgy·x̂.
    let sums: Vec<(f64, f64)> = (0..geo.channels)
        .into_par_iter()
        .map(|c| {
            let inv_std = 1.0 / (var[c] + epsilon).sqrt();
            let sum_gy = channel_sum(geo, gy, c, |_, g| g.to_f64());
            let sum_gy_xhat = channel_sum(geo, gy, c, |i, g| {
                g.to_f64() * (x[i].to_f64() - mean[c]) * inv_std
            });
            (sum_gy, sum_gy_xhat)
        })
        .collect();
    let gx = need_x.then(|| {
        // gx = γ/σ · (gy − Σgy/n − x̂·Σgy·x̂/n) = a·gy + b·x + d per channel.
        let coef: Vec<(T, T, T)> = (0..geo.channels)
            .map(|c| {
                let inv_std = 1.0 / (var[c] + epsilon).sqrt();
                let k = gamma[c].to_f64() * inv_std;
                let (sg, sgx) = sums[c];
                let bx = -k * sgx / n * inv_std;
                let d = -k * sg / n - bx * mean[c];
                (T::from_f64(k), T::from_f64(bx), T::from_f64(d))
            })
            .collect();
        let mut gx = vec![T::ZERO; x.len()];
        let plane = geo.plane.max(1);
        gx.par_chunks_mut(plane)
            .zip(gy.par_chunks(plane).zip(x.par_chunks(plane)))
            .enumerate()
            .for_each(|(row, (o, (g, xr)))| {
                let (a, b, d) = coef[row % geo.channels];
                for ((o, &g), &v) in o.iter_mut().zip(g).zip(xr) {
                    *o = a * g + b * v + d;
                }
            });
        gx
    });
    BnGrads {
        x: gx,
        gamma: sums.iter().map(|s| T::from_f64(s.1)).collect(),
        beta: sums.iter().map(|s| T::from_f64(s.0)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn loss(geo: &BnGeometry, x: &[f64], gamma: &[f64], beta: &[f64], w: &[f64]) -> f64 {
        let mut y = vec![0.0; x.len()];
        forward(geo, x, gamma, beta, 1e-5, &mut y);
        y.iter().zip(w).map(|(a, b)| a * b.sin() * a).sum()
    }

    #[test]
    fn statistics_and_gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for geo in [
            BnGeometry {
                batch: 3,
                channels: 4,
                plane: 5,
            },
            BnGeometry {
                batch: 1,
                channels: 2,
                plane: 7,
            },
            BnGeometry {
                batch: 5,
                channels: 3,
                plane: 1,
            },
        ] {
            let len = geo.batch * geo.channels * geo.plane;
            let mut r =
                |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-2.0..2.0)).collect() };
            let (x, gamma, beta, w) = (r(len), r(geo.channels), r(geo.channels), r(len));
            let mut y = vec![0.0; len];
            let (mean, var) = forward(&geo, &x, &gamma, &beta, 1e-5, &mut y);
            // Normalised output per channel has mean beta and variance gamma²·var/(var+ε).
            for c in 0..geo.channels {
                let vals: Vec<f64> = (0..geo.batch)
                    .flat_map(|b| {
                        let s = (b * geo.channels + c) * geo.plane;
                        y[s..s + geo.plane].to_vec()
                    })
                    .collect();
                let m = vals.iter().sum::<f64>() / vals.len() as f64;
                assert!((m - beta[c]).abs() < 1e-9);
                let xs: Vec<f64> = (0..geo.batch)
                    .flat_map(|b| {
                        let s = (b * geo.channels + c) * geo.plane;
                        x[s..s + geo.plane].to_vec()
                    })
                    .collect();
                let xm = xs.iter().sum::<f64>() / xs.len() as f64;
                let xv = xs.iter().map(|v| (v - xm).powi(2)).sum::<f64>() / xs.len() as f64;
                assert!((mean[c] - xm).abs() < 1e-12 && (var[c] - xv).abs() < 1e-12);
            }
            // Upstream gradient of L = Σ y²·sin(w) is 2·y·sin(w).
            let gy: Vec<f64> = y.iter().zip(&w).map(|(a, b)| 2.0 * a * b.sin()).collect();
            let g = backward(&geo, &x, &gamma, &mean, &var, 1e-5, &gy, true);
            let h = 1e-5;
            let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
            for i in 0..len {
                let d = fd(&|e| {
                    let mut xx = x.clone();
                    xx[i] += e;
                    loss(&geo, &xx, &gamma, &beta, &w)
                });
                let got = g.x.as_ref().unwrap()[i];
                assert!(
                    (got - d).abs() < 1e-5 * (1.0 + d.abs()),
                    "x[{i}] {got} vs {d}"
                );
            }
            for c in 0..geo.channels {
                let d = fd(&|e| {
                    let mut gg = gamma.clone();
                    gg[c] += e;
                    loss(&geo, &x, &gg, &beta, &w)
                });
                assert!(
                    (g.gamma[c] - d).abs() < 1e-5 * (1.0 + d.abs()),
                    "gamma[{c}]"
                );
                let d = fd(&|e| {
                    let mut bb = beta.clone();
                    bb[c] += e;
                    loss(&geo, &x, &gamma, &bb, &w)
                });
                assert!((g.beta[c] - d).abs() < 1e-5 * (1.0 + d.abs()), "beta[{c}]");
            }
        }
    }
}
