//! KAF, the kernel activation function (Scardapane et al., Neural Networks 2019, "Kafnets:
//! Kernel-based non-parametric activation functions for neural networks"):
//! `g(z) = Σᵢ αᵢ·exp(−γ·(z − dᵢ)²)` over a fixed dictionary of `D` points `dᵢ` evenly spaced on
//! [−3, 3], `γ = 1/(6·Δ²)` with `Δ` their spacing (the paper's rule of thumb). Parameters
//! `[α₁ … α_D]`; at start the ridge fit of ELU (α = 1) at the dictionary points,
//! `α = (K + λ·I)⁻¹·elu(d)` with `Kᵢⱼ = exp(−γ·(dᵢ − dⱼ)²)` and `λ = 1e-4`, as the paper
//! initialises its KAFs.
//!
//! The block form evaluates the Gaussians by a recurrence rather than one `exp` each: over
//! consecutive points, `eᵢ = exp(−γ·uᵢ²)` with `uᵢ = z − dᵢ` satisfies `eᵢ₊₁ = eᵢ·qᵢ` with
//! `qᵢ = exp(2γΔ·uᵢ − γΔ²)` and `qᵢ₊₁ = qᵢ·exp(−2γΔ²)`. Each [`GROUP`] of points starts the
//! recurrence afresh with two `exp`s at its first point, so that a point far from `z` (whose
//! Gaussian underflows) never multiplies into a near one. A group whose first Gaussian
//! underflows (exponent below `EXP_MIN`) contributes 0: its other points are at least
//! `EXP_MIN`'s distance less `GROUP − 1` spacings from `z`, so their Gaussians are below
//! `exp(−(√(6·87) − 9)²/6) ≈ 1e-14` in `f32` (γΔ² = 1/6) and far smaller in `f64`. Each step
//! of the recurrence adds a rounding, so the block form's Gaussians are within about
//! `GROUP²/2` ulps of the element form's.

use num_traits::Float;

use super::{FamilyFloat, LANES, Lanes, ScalarFamily, linspace};

/// Half-width of the dictionary's range.
const RANGE: f64 = 3.0;
/// Ridge regularisation of the initial fit.
const RIDGE: f64 = 1e-4;
/// `exp(−1/3) = exp(−2γΔ²)`, the ratio of consecutive factors of the recurrence.
const EXP_MINUS_THIRD: f64 = 0.716_531_310_573_789_3;
/// Dictionary points per recurrence of the block form (see the module docs).
pub const GROUP: usize = 10;

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

    /// The constants of the recurrence: `(γ, 2γΔ, γΔ², exp(−2γΔ²))`, where `γΔ² = 1/6` by
    /// the choice of `γ`.
    #[inline(always)]
    fn recurrence<T: FamilyFloat>(&self) -> (T, T, T, T) {
        let c = |v: f64| T::from(v).unwrap_or_else(T::nan);
        (
            c(self.gamma()),
            c(1.0 / (3.0 * self.spacing())),
            c(1.0 / 6.0),
            c(EXP_MINUS_THIRD),
        )
    }

    /// Starts the recurrence at dictionary point `first` for every lane: `e = exp(−γ·u²)`
    /// (0 where the exponent is below `EXP_MIN`) and `q = exp(2γΔ·u − γΔ²)`.
    #[inline(always)]
    fn start<T: FamilyFloat>(
        &self,
        x: &Lanes<T>,
        first: usize,
        e: &mut Lanes<T>,
        q: &mut Lanes<T>,
    ) {
        let (g, step, half, _) = self.recurrence::<T>();
        let d0 = self.point::<T>(first);
        for l in 0..LANES {
            let u = x[l] - d0;
            let arg = -g * u * u;
            e[l] = if arg < T::EXP_MIN {
                T::zero()
            } else {
                arg.exp_k()
            };
            q[l] = (step * u - half).exp_k();
        }
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
        let (_, _, _, c) = self.recurrence::<T>();
        let (mut e, mut q) = ([T::zero(); LANES], [T::zero(); LANES]);
        *y = [T::zero(); LANES];
        for (k, group) in p.chunks(GROUP).enumerate() {
            self.start(x, k * GROUP, &mut e, &mut q);
            for &a in group {
                for l in 0..LANES {
                    y[l] = y[l] + a * e[l];
                    e[l] = e[l] * q[l];
                    q[l] = q[l] * c;
                }
            }
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
        let (gamma, _, _, c) = self.recurrence::<T>();
        let g2 = gamma + gamma;
        let (mut e, mut q) = ([T::zero(); LANES], [T::zero(); LANES]);
        let mut dz = [T::zero(); LANES];
        for (k, (group, dgroup)) in p.chunks(GROUP).zip(acc.chunks_mut(GROUP)).enumerate() {
            self.start(x, k * GROUP, &mut e, &mut q);
            for (i, (&a, d)) in group.iter().zip(dgroup.iter_mut()).enumerate() {
                let di = self.point::<T>(k * GROUP + i);
                for l in 0..LANES {
                    let u = x[l] - di;
                    d[l] = d[l] + g[l] * e[l];
                    dz[l] = dz[l] - g2 * u * a * e[l];
                    e[l] = e[l] * q[l];
                    q[l] = q[l] * c;
                }
            }
        }
        for (gl, d) in g.iter_mut().zip(dz) {
            *gl = *gl * d;
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
    fn recurrence_constants() {
        assert_eq!(EXP_MINUS_THIRD, (-1.0f64 / 3.0).exp());
        for d in [2, 20, 256] {
            let k = Kaf { d };
            assert!((k.gamma() * k.spacing() * k.spacing() - 1.0 / 6.0).abs() < 1e-15);
        }
    }
}
