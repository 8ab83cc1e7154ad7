//! Baking a learned AFU for inference: an equivalent piecewise-linear AFU with a relu base,
//! so that the exact piecewise-linear kernel evaluates it (cost nearly independent of the
//! original N, no `exp`), with a stated maximum error.
//!
//! A piecewise-linear function with knots `x_0 < … < x_{K−1}` and slopes `s_0 … s_K` is
//! `G(z) = y_0 + s_0·z' + Σ_k (s_{k+1} − s_k)·relu(z − x_k)` (with `z' = z − x_0`, written as
//! `relu(z − x_0) − relu(x_0 − z)`): a relu AFU with `K + 1` units. A relu-family AFU is already
//! piecewise linear and bakes exactly; a smooth one is sampled on a uniform grid over
//! `[−range, range]`, refined until the error is below the target, and extended linearly
//! outside the range with its end slopes.

use serde::{Deserialize, Serialize};

use crate::afu::{AfuParams, BaseActivation};

/// A baked AFU and how close it is to the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baked {
    /// The equivalent relu AFU (one channel per original channel).
    pub params: AfuParams,
    /// Knots per channel.
    pub knots: usize,
    /// Largest |baked − original| over `[−range, range]` (measured on a 16× finer grid).
    pub max_error: f64,
    /// Largest |baked − original| over `[−2·range, 2·range]` (the linear extension).
    pub max_error_2x: f64,
    /// The range the error bound refers to.
    pub range: f64,
}

/// The widest bake range: beyond it knot positions lose their precision in `f32`.
pub const MAX_BAKE_RANGE: f64 = 1e6;

/// Checks a bake's `range` and `max_error`: finite, positive, `range` at most
/// [`MAX_BAKE_RANGE`]. The message names the bad value and the limit.
pub fn check_bake_settings(range: f64, max_error: f64) -> Result<(), String> {
    if !(range.is_finite() && range > 0.0 && range <= MAX_BAKE_RANGE) {
        return Err(format!(
            "--range is {range}, expected a number in (0, {MAX_BAKE_RANGE}]"
        ));
    }
    if !(max_error.is_finite() && max_error > 0.0) {
        return Err(format!(
            "--max-error is {max_error}, expected a finite positive number"
        ));
    }
    Ok(())
}

/// Bakes every channel of `p` to a relu AFU whose error over `[−range, range]` is at most
/// `max_error` (relative to the AFU's output range there), using at most `max_knots` knots.
pub fn bake(p: &AfuParams, range: f64, max_error: f64, max_knots: usize) -> Baked {
    let mut knots_per_channel: Vec<Vec<f64>> = Vec::new();
    for c in 0..p.channels {
        let knots = if p.base.is_piecewise_linear() {
            // The exact kinks inside the range (outside they only change the extension slope,
            // which the end slopes carry exactly).
            let mut k: Vec<f64> = (0..p.hidden)
                .filter_map(|i| {
                    let (w, b) = (p.w0[c * p.hidden + i], p.b0[c * p.hidden + i]);
                    (w != 0.0 && p.base != BaseActivation::Linear).then(|| -b / w)
                })
                .filter(|t| t.is_finite())
                .collect();
            k.sort_by(f64::total_cmp);
            k.dedup();
            if k.is_empty() { vec![0.0] } else { k }
        } else {
            let scale = {
                let vals: Vec<f64> = (0..=200)
                    .map(|i| p.eval(c, -range + 2.0 * range * i as f64 / 200.0))
                    .collect();
                let (lo, hi) = vals
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                        (a.min(v), b.max(v))
                    });
                (hi - lo).max(1e-12)
            };
            let mut n = 16;
            loop {
                let k: Vec<f64> = (0..=n)
                    .map(|i| -range + 2.0 * range * i as f64 / n as f64)
                    .collect();
                let err = max_err(p, c, &k, range);
                if err <= max_error * scale || n >= max_knots {
                    break k;
                }
                n *= 2;
            }
        };
        knots_per_channel.push(knots);
    }
    let units = knots_per_channel
        .iter()
        .map(|k| k.len() + 2)
        .max()
        .unwrap_or(3);
    let mut out = AfuParams {
        base: BaseActivation::Relu,
        channels: p.channels,
        hidden: units,
        w0: Vec::new(),
        b0: Vec::new(),
        w1: Vec::new(),
        b1: Vec::new(),
    };
    for (c, knots) in knots_per_channel.iter().enumerate() {
        let (w0, b0, w1, b1) = pwl_units(p, c, knots, units);
        out.w0.extend(w0);
        out.b0.extend(b0);
        out.w1.extend(w1);
        out.b1.push(b1);
    }
    let (mut e1, mut e2) = (0.0f64, 0.0f64);
    for c in 0..p.channels {
        for i in 0..=4000 {
            let z = -2.0 * range + 4.0 * range * i as f64 / 4000.0;
            let e = (out.eval(c, z) - p.eval(c, z)).abs();
            e2 = e2.max(e);
            if z.abs() <= range {
                e1 = e1.max(e);
            }
        }
    }
    Baked {
        knots: knots_per_channel.iter().map(Vec::len).max().unwrap_or(0),
        params: out,
        max_error: e1,
        max_error_2x: e2,
        range,
    }
}

/// Largest error of linear interpolation through `knots` (with end-slope extension) over the
/// range, on a 16× finer grid.
fn max_err(p: &AfuParams, c: usize, knots: &[f64], range: f64) -> f64 {
    let fine = 16 * knots.len().max(2);
    (0..=fine)
        .map(|i| {
            let z = -range + 2.0 * range * i as f64 / fine as f64;
            (interp(p, c, knots, z) - p.eval(c, z)).abs()
        })
        .fold(0.0, f64::max)
}

/// The piecewise-linear function through `(k, G(k))`, extended with `G'` at the end knots.
fn interp(p: &AfuParams, c: usize, knots: &[f64], z: f64) -> f64 {
    let n = knots.len();
    if z <= knots[0] {
        return p.eval(c, knots[0]) + p.derivative(c, knots[0] - 1e-9) * (z - knots[0]);
    }
    if z >= knots[n - 1] {
        return p.eval(c, knots[n - 1]) + p.derivative(c, knots[n - 1] + 1e-9) * (z - knots[n - 1]);
    }
    let j = knots.partition_point(|&k| k <= z).min(n - 1);
    let (x0, x1) = (knots[j - 1], knots[j]);
    let t = (z - x0) / (x1 - x0);
    p.eval(c, x0) * (1.0 - t) + p.eval(c, x1) * t
}

/// Relu units for one channel (padded with zero units to `units`).
fn pwl_units(
    p: &AfuParams,
    c: usize,
    knots: &[f64],
    units: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, f64) {
    let n = knots.len();
    // Slopes: s_0 left of the first knot, s_k between knots, s_n right of the last.
    let mut slopes = Vec::with_capacity(n + 1);
    slopes.push(p.derivative(c, knots[0] - 1e-9));
    for j in 1..n {
        if p.base.is_piecewise_linear() {
            slopes.push(p.derivative(c, 0.5 * (knots[j - 1] + knots[j])));
        } else {
            slopes
                .push((p.eval(c, knots[j]) - p.eval(c, knots[j - 1])) / (knots[j] - knots[j - 1]));
        }
    }
    slopes.push(p.derivative(c, knots[n - 1] + 1e-9));
    let x0 = knots[0];
    let y0 = p.eval(c, x0);
    // G(z) = y0 + s0·(relu(z − x0) − relu(x0 − z)) + Σ_{k≥1} (s_k − s_{k−1})·relu(z − x_{k−1})
    let mut w0 = vec![1.0, -1.0];
    let mut b0 = vec![-x0, x0];
    let mut w1 = vec![slopes[0], -slopes[0]];
    for k in 1..=n {
        w0.push(1.0);
        b0.push(-knots[k - 1]);
        w1.push(slopes[k] - slopes[k - 1]);
    }
    // Pad with inert units (w0 = 0, b0 < 0: always inactive) to the common unit count.
    while w0.len() < units {
        w0.push(0.0);
        b0.push(-1.0);
        w1.push(0.0);
    }
    (w0, b0, w1, y0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn relu_afu_bakes_exactly_and_smooth_within_target() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for base in BaseActivation::ALL {
            let cfg = crate::afu::AfuConfig::new(8)
                .with_base(base)
                .with_channels(2);
            let p = AfuParams::random(&cfg, &mut rng).unwrap();
            let b = bake(&p, 5.0, 1e-3, 4096);
            b.params.validate().unwrap();
            assert_eq!(b.params.base, BaseActivation::Relu);
            if base.is_piecewise_linear() {
                assert!(b.max_error_2x < 1e-9, "{base}: {}", b.max_error_2x);
            } else {
                let scale = (0..=200)
                    .map(|i| p.eval(0, -5.0 + 0.05 * i as f64))
                    .fold(0.0f64, |m, v| m.max(v.abs()))
                    .max(1e-9);
                assert!(
                    b.max_error <= 2e-3 * scale.max(1.0),
                    "{base}: {} (scale {scale})",
                    b.max_error
                );
            }
        }
    }
}
