//! KAF, the kernel activation function (Scardapane et al., Neural Networks 2019, "Kafnets:
//! Kernel-based non-parametric activation functions for neural networks"):
//! `g(z) = Σᵢ αᵢ·exp(−γ·(z − dᵢ)²)` over a fixed dictionary of `D` points `dᵢ` evenly spaced on
//! [−3, 3], `γ = 1/(6·Δ²)` with `Δ` their spacing (the paper's rule of thumb). Parameters
//! `[α₁ … α_D]`; at start the ridge fit of ELU (α = 1) at the dictionary points,
//! `α = (K + λ·I)⁻¹·elu(d)` with `Kᵢⱼ = exp(−γ·(dᵢ − dⱼ)²)` and `λ = 1e-4`, as the paper
//! initialises its KAFs.
//!
//! The block forms evaluate the Gaussians by products rather than one `exp` each. With `Δ` the
//! spacing and `γΔ² = 1/6`, the Gaussian of the point `j` places from a centre point `c`, at
//! `u = z − d_c`, factors as
//! `exp(−γ(u − jΔ)²) = exp(−γu²) · Rʲ · w_j`, `R = exp(u/(3Δ))`, `w_j = exp(−j²/6)`:
//! one `exp` for the centre, one for `R` and one for `1/R`, then one product per point on
//! each side. The points are cut into groups of at most [`REACH`] points on either side of a
//! centre, so that no product leaves the float range and a group far from `z` never hides a
//! near one: when the centre's Gaussian underflows (exponent below `EXP_MIN`, `u` beyond
//! `√(6·87.3)·Δ ≈ 22.9Δ` in `f32`) the group contributes 0, and its points are then at least
//! `(22.9 − REACH)·Δ` from `z`, where the Gaussian is below `exp(−12.9²/6) ≈ 1e-12` in `f32`
//! (far smaller in `f64`); otherwise `Rʲ ≤ exp(22.9·REACH/3) ≈ 1e33` and every product
//! `exp(−γu²)·Rʲ` is at most `exp(j²/6)`. The weights `w_j`, and `α·w_j` and `α·w_j·j`, are
//! per-point constants, so each point costs one product and one fused multiply-add in the
//! forward, one product and three in the backward. Each product adds a rounding, so the block
//! forms' Gaussians are within about `REACH` ulps of the element form's.

use num_traits::Float;

use super::{FamilyFloat, LANES, Lanes, ScalarFamily, c, linspace};

/// Half-width of the dictionary's range.
const RANGE: f64 = 3.0;
/// Ridge regularisation of the initial fit.
const RIDGE: f64 = 1e-4;
/// Points on either side of a group's centre in the block forms (see the module docs).
pub const REACH: usize = 10;
/// Points of a whole group: a centre and [`REACH`] on either side.
const GROUP: usize = 2 * REACH + 1;
/// `w_j = exp(−j²/6)`, the Gaussian `j` spacings from its point, for `j = 0 … REACH`.
const WEIGHTS: [f64; REACH + 1] = [
    1.0,
    0.846_481_724_890_614_1,
    0.513_417_119_032_592,
    0.223_130_160_148_429_82,
    0.069_483_451_222_801_54,
    0.015_503_853_599_009_314,
    0.002_478_752_176_666_358_5,
    0.000_283_962_983_903_256_63,
    2.330_910_114_293_701_6e-5,
    1.370_959_086_384_084_5e-6,
    5.777_748_519_419_133e-8,
];
/// Largest dictionary the block forms take (the family's size limit).
const MAX_POINTS: usize = crate::family::MAX_PIECES;

/// KAF with `d` dictionary points (≥ 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kaf {
    /// Dictionary size `D`.
    pub d: usize,
}

impl Kaf {
    /// Dictionary spacing `Δ`.
    fn spacing(&self) -> f64 {
        2.0 * RANGE / (self.d - 1) as f64
    }

    /// Kernel width `γ`.
    pub fn gamma(&self) -> f64 {
        1.0 / (6.0 * self.spacing() * self.spacing())
    }

    /// Dictionary point `dᵢ`.
    #[inline(always)]
    fn point<T: Float>(&self, i: usize) -> T {
        T::from(-RANGE + self.spacing() * i as f64).unwrap_or_else(T::zero)
    }

    /// The groups of the block forms: `(first, centre, end)` point indices, `end` exclusive,
    /// at most [`REACH`] points on either side of the centre.
    #[inline(always)]
    fn groups(&self) -> impl Iterator<Item = (usize, usize, usize)> {
        let d = self.d;
        (0..d.div_ceil(GROUP)).map(move |k| {
            let first = k * GROUP;
            let end = (first + GROUP).min(d);
            (first, first + (end - first) / 2, end)
        })
    }

    /// Per lane, for the group centred on point `centre`: `u = z − d_c`, the centre's
    /// Gaussian `exp(−γu²)` (0 where the exponent is below `EXP_MIN`), `R = exp(u/(3Δ))` and
    /// `1/R`.
    #[inline(always)]
    fn factors<T: FamilyFloat, const W: usize>(&self, x: &[T; W], centre: usize) -> [[T; W]; 4] {
        // Both exponentials as powers of 2, log₂e folded into their constants.
        let log2e = std::f64::consts::LOG2_E;
        let gamma = c::<T>(self.gamma() * log2e);
        let rate = c::<T>(log2e / (3.0 * self.spacing()));
        let below = T::EXP_MIN * c::<T>(log2e);
        let dc = self.point::<T>(centre);
        let mut out = [[T::zero(); W]; 4];
        for l in 0..W {
            let u = x[l] - dc;
            let arg = -gamma * u * u;
            let a = u * rate;
            out[0][l] = u;
            out[1][l] = if arg < below { T::zero() } else { arg.exp2_k() };
            out[2][l] = a.exp2_k();
            // A division runs beside the multiply-adds, where another exp would take their
            // ports; exp2_k clamps, so R is finite and positive.
            out[3][l] = T::one() / out[2][l];
        }
        out
    }

    /// `α_i·w_j` for every point `i`, `j` its distance in points from its group's centre.
    #[inline(always)]
    fn weighted<T: FamilyFloat>(&self, p: &[T]) -> [T; MAX_POINTS] {
        let mut aw = [T::zero(); MAX_POINTS];
        for (first, centre, end) in self.groups() {
            for i in first..end {
                aw[i] = p[i] * c::<T>(WEIGHTS[i.abs_diff(centre)]);
            }
        }
        aw
    }

    /// `y = g(x)` of `W` elements (one block, or two side by side: more independent work for
    /// the core) from the weighted parameters `aw` ([`Kaf::weighted`]).
    #[inline(always)]
    fn value_block<T: FamilyFloat, const W: usize>(&self, x: &[T; W], aw: &[T], y: &mut [T; W]) {
        *y = [T::zero(); W];
        for (first, centre, end) in self.groups() {
            let [_, e, r, ri] = self.factors(x, centre);
            // The two sides in one loop with their own sums: two short dependency chains
            // instead of one long one.
            let (mut up, mut down) = (e, e);
            let (mut y_up, mut y_down) = ([T::zero(); W], [T::zero(); W]);
            for j in 1..=REACH {
                if centre + j < end {
                    let a = aw[centre + j];
                    for l in 0..W {
                        up[l] = up[l] * r[l];
                        y_up[l] = a.mul_add(up[l], y_up[l]);
                    }
                }
                if j <= centre - first {
                    let a = aw[centre - j];
                    for l in 0..W {
                        down[l] = down[l] * ri[l];
                        y_down[l] = a.mul_add(down[l], y_down[l]);
                    }
                }
            }
            for l in 0..W {
                y[l] = y[l] + (aw[centre].mul_add(e[l], y_up[l]) + y_down[l]);
            }
        }
    }

    /// The backward pass of `W` elements (as [`ScalarFamily::backward_lanes`] on each of their
    /// blocks in turn) from the weighted parameters `aw` and `awj[i] = aw[i]·(i − centre)`.
    /// Every lane accumulator gets the blocks' contributions in block order, so two blocks side
    /// by side give the bits of two blocks one after the other.
    #[inline(always)]
    fn backward_block<T: FamilyFloat, const W: usize>(
        &self,
        x: &[T; W],
        (aw, awj): (&[T], &[T]),
        g: &mut [T; W],
        acc: &mut [Lanes<T>],
    ) {
        let two_gamma = c::<T>(2.0 * self.gamma());
        let spacing = c::<T>(self.spacing());
        // Σ over the points of α_i·e_i·(z − d_i), times the upstream gradient.
        let mut slope = [T::zero(); W];
        for (first, centre, end) in self.groups() {
            let [u, e, r, ri] = self.factors(x, centre);
            // With the upstream gradient folded in: p0 = g·e_c; sg = Σ α_i·g·e_i and
            // sj = Σ α_i·g·e_i·(i − c) over the group (each the sum of its two sides), so
            // that Σ α_i·g·e_i·(z − d_i) is u·sg − Δ·sj.
            let mut p0 = [T::zero(); W];
            for l in 0..W {
                p0[l] = g[l] * e[l];
            }
            for block in p0.chunks_exact(LANES) {
                for l in 0..LANES {
                    acc[centre][l] = acc[centre][l] + block[l];
                }
            }
            // The two sides in one loop with their own sums (short dependency chains).
            let (mut up, mut down) = (p0, p0);
            let mut sums = [[T::zero(); W]; 4];
            for (j, &w) in WEIGHTS.iter().enumerate().skip(1) {
                let w = c::<T>(w);
                if centre + j < end {
                    let i = centre + j;
                    let [sg, sj, _, _] = &mut sums;
                    for l in 0..W {
                        up[l] = up[l] * r[l];
                        sg[l] = aw[i].mul_add(up[l], sg[l]);
                        sj[l] = awj[i].mul_add(up[l], sj[l]);
                    }
                    for block in up.chunks_exact(LANES) {
                        for l in 0..LANES {
                            acc[i][l] = w.mul_add(block[l], acc[i][l]);
                        }
                    }
                }
                if j <= centre - first {
                    let i = centre - j;
                    let [_, _, sg, sj] = &mut sums;
                    for l in 0..W {
                        down[l] = down[l] * ri[l];
                        sg[l] = aw[i].mul_add(down[l], sg[l]);
                        sj[l] = awj[i].mul_add(down[l], sj[l]);
                    }
                    for block in down.chunks_exact(LANES) {
                        for l in 0..LANES {
                            acc[i][l] = w.mul_add(block[l], acc[i][l]);
                        }
                    }
                }
            }
            let [sg_up, sj_up, sg_down, sj_down] = sums;
            for l in 0..W {
                let sg = aw[centre].mul_add(p0[l], sg_up[l]) + sg_down[l];
                let sj = sj_up[l] + sj_down[l];
                slope[l] = slope[l] + (u[l] * sg - spacing * sj);
            }
        }
        for l in 0..W {
            g[l] = -two_gamma * slope[l];
        }
    }

    /// `α_i·w_j·(i − centre)` from the weighted parameters `aw`.
    #[inline(always)]
    fn weighted_offsets<T: FamilyFloat>(&self, aw: &[T; MAX_POINTS]) -> [T; MAX_POINTS] {
        let mut awj = [T::zero(); MAX_POINTS];
        for (first, centre, end) in self.groups() {
            for i in first..end {
                awj[i] = aw[i] * (T::from_index(i) - T::from_index(centre));
            }
        }
        awj
    }
}

/// ELU with α = 1.
fn elu(z: f64) -> f64 {
    if z > 0.0 { z } else { z.exp_m1() }
}

/// Solves `a·x = b` for a symmetric positive definite `a` (row-major `n × n`) by Cholesky.
fn solve_spd(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        let d = d.max(f64::MIN_POSITIVE).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        for k in 0..i {
            b[i] -= a[i * n + k] * b[k];
        }
        b[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            b[i] -= a[k * n + i] * b[k];
        }
        b[i] /= a[i * n + i];
    }
    b
}

impl ScalarFamily for Kaf {
    fn n_params(&self) -> usize {
        self.d
    }

    fn init(&self) -> Vec<f64> {
        let d = linspace(-RANGE, RANGE, self.d);
        let g = self.gamma();
        let n = self.d;
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                k[i * n + j] =
                    (-g * (d[i] - d[j]).powi(2)).exp() + if i == j { RIDGE } else { 0.0 };
            }
        }
        solve_spd(k, d.iter().map(|&x| elu(x)).collect())
    }

    #[inline(always)]
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        let g = T::from(self.gamma()).unwrap_or_else(T::one);
        let mut y = T::zero();
        for (i, a) in p.iter().enumerate() {
            let u = z - self.point::<T>(i);
            y = y + *a * (-g * u * u).exp();
        }
        y
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let g = T::from(self.gamma()).unwrap_or_else(T::one);
        let mut dz = T::zero();
        for (i, (a, d)) in p.iter().zip(dp.iter_mut()).enumerate() {
            let u = z - self.point::<T>(i);
            let e = (-g * u * u).exp();
            *d = *d + upstream * e;
            dz = dz - (g + g) * u * *a * e;
        }
        dz
    }

    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        self.value_block(x, &self.weighted(p), y);
    }

    /// Two blocks at a time (the same bits as one at a time, more independent work). Written
    /// out in each family rather than shared through a helper taking closures: the closures
    /// were not compiled with the kernels' target features (KAF's forward went from 1 to 60 ms).
    #[inline(always)]
    fn value_run<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        assert_eq!(x.len(), y.len(), "value_run lengths");
        let aw = self.weighted(p);
        let pairs = x.len() / (2 * LANES) * (2 * LANES);
        for (xb, yb) in x[..pairs]
            .chunks_exact(2 * LANES)
            .zip(y[..pairs].chunks_exact_mut(2 * LANES))
        {
            let xl: [T; 2 * LANES] = xb.try_into().expect("two whole blocks");
            let mut yl = [T::zero(); 2 * LANES];
            self.value_block(&xl, &aw, &mut yl);
            yb.copy_from_slice(&yl);
        }
        for (xb, yb) in x[pairs..].chunks(LANES).zip(y[pairs..].chunks_mut(LANES)) {
            let mut xl = [T::zero(); LANES];
            let mut yl = [T::zero(); LANES];
            xl[..xb.len()].copy_from_slice(xb);
            self.value_block(&xl, &aw, &mut yl);
            yb.copy_from_slice(&yl[..yb.len()]);
        }
    }

    #[inline(always)]
    fn backward_lanes<T: FamilyFloat>(
        &self,
        x: &Lanes<T>,
        p: &[T],
        g: &mut Lanes<T>,
        acc: &mut [Lanes<T>],
    ) {
        let aw = self.weighted(p);
        let awj = self.weighted_offsets(&aw);
        self.backward_block(x, (&aw, &awj), g, acc);
    }

    /// Two blocks at a time (the same bits as one at a time, more independent work).
    #[inline(always)]
    fn backward_blocks<T: FamilyFloat>(&self, x: &[T], p: &[T], g: &mut [T], acc: &mut [Lanes<T>]) {
        assert_eq!(x.len(), g.len(), "backward_blocks lengths");
        assert_eq!(x.len() % LANES, 0, "backward_blocks takes whole blocks");
        let aw = self.weighted(p);
        let awj = self.weighted_offsets(&aw);
        let pairs = x.len() / (2 * LANES) * (2 * LANES);
        let (x2, x1) = x.split_at(pairs);
        let (g2, g1) = g.split_at_mut(pairs);
        for (xb, gb) in x2
            .chunks_exact(2 * LANES)
            .zip(g2.chunks_exact_mut(2 * LANES))
        {
            let xl: [T; 2 * LANES] = xb.try_into().expect("two whole blocks");
            let mut gl: [T; 2 * LANES] = (&*gb).try_into().expect("two whole blocks");
            self.backward_block(&xl, (&aw, &awj), &mut gl, acc);
            gb.copy_from_slice(&gl);
        }
        for (xb, gb) in x1.chunks_exact(LANES).zip(g1.chunks_exact_mut(LANES)) {
            let xl: Lanes<T> = xb.try_into().expect("a whole block");
            let mut gl: Lanes<T> = (&*gb).try_into().expect("a whole block");
            self.backward_block(&xl, (&aw, &awj), &mut gl, acc);
            gb.copy_from_slice(&gl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_fits_elu_and_derivatives_match() {
        let f = Kaf { d: 20 };
        let p = f.init();
        let mut worst = 0.0f64;
        for i in 0..=200 {
            let z = -2.5 + 5.0 * i as f64 / 200.0;
            worst = worst.max((f.value(z, &p) - elu(z)).abs());
        }
        assert!(
            worst < 0.05,
            "max error of the ridge fit on [-2.5, 2.5]: {worst}"
        );
        super::super::tests::check_family(f, "kaf-20");
        super::super::tests::check_family(Kaf { d: 7 }, "kaf-7");
        super::super::tests::check_family(Kaf { d: 64 }, "kaf-64");
    }

    #[test]
    fn block_form_constants() {
        for (j, &w) in WEIGHTS.iter().enumerate() {
            let exact = (-((j * j) as f64) / 6.0).exp();
            assert!((w - exact).abs() <= 1e-16 * exact, "w_{j}: {w} vs {exact}");
        }
        for d in [2, 20, 21, 22, 256] {
            let k = Kaf { d };
            let mut seen = vec![0; d];
            for (first, centre, end) in k.groups() {
                assert!(first <= centre && centre < end && end <= d);
                assert!(centre - first <= REACH && end - 1 - centre <= REACH);
                for s in &mut seen[first..end] {
                    *s += 1;
                }
            }
            assert!(
                seen.iter().all(|&s| s == 1),
                "every point in one group, d = {d}"
            );
        }
        for d in [2, 20, 256] {
            let k = Kaf { d };
            assert!((k.gamma() * k.spacing() * k.spacing() - 1.0 / 6.0).abs() < 1e-15);
        }
    }
}
