//! KAF, the kernel activation function (Scardapane et al., Neural Networks 2019, "Kafnets:
//! Kernel-based non-parametric activation functions for neural networks"):
//! `g(z) = Σᵢ αᵢ·exp(−γ·(z − dᵢ)²)` over a fixed dictionary of `D` points `dᵢ` evenly spaced on
//! [−3, 3], `γ = 1/(6·Δ²)` with `Δ` their spacing (the paper's rule of thumb). Parameters
//! `[α₁ … α_D]`; at start the ridge fit of ELU (α = 1) at the dictionary points,
//! `α = (K + λ·I)⁻¹·elu(d)` with `Kᵢⱼ = exp(−γ·(dᵢ − dⱼ)²)` and `λ = 1e-4`, as the paper
//! initialises its KAFs.

use num_traits::Float;

use super::{ScalarFamily, linspace};

/// Half-width of the dictionary's range.
const RANGE: f64 = 3.0;
/// Ridge regularisation of the initial fit.
const RIDGE: f64 = 1e-4;

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
    fn value<T: Float>(&self, z: T, p: &[T]) -> T {
        let g = T::from(self.gamma()).unwrap_or_else(T::one);
        let mut y = T::zero();
        for (i, a) in p.iter().enumerate() {
            let u = z - self.point::<T>(i);
            y = y + *a * (-g * u * u).exp();
        }
        y
    }

    #[inline(always)]
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
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
    }
}
