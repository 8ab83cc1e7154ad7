//! Each learnable family as a scalar function `g(z; p)` of one input `z` and the parameters
//! `p` of one channel, with its derivatives: what the fused kernels evaluate per element and
//! what the oracle tests evaluate in `f64`.
//!
//! One file per family; [`tests`](mod@tests) checks every family against central finite
//! differences in `f64` and its start against the stated function.

pub mod apl;
pub mod kaf;
pub mod pau;
pub mod pmish;
pub mod prelu;
pub mod pwlu;
pub mod swish_beta;

use num_traits::Float;

pub use apl::Apl;
pub use kaf::Kaf;
pub use pau::Pau;
pub use pmish::Pmish;
pub use prelu::Prelu;
pub use pwlu::Pwlu;
pub use swish_beta::SwishBeta;

/// One learnable activation family, evaluated on scalars.
///
/// Invariants every implementation keeps (checked by the tests of this folder):
/// - `init().len() == n_params()`, and `value` with `init()` is the family's stated start
///   (e.g. PReLU with `a = 0.25`);
/// - `backward` returns `∂g/∂z` and adds `upstream · ∂g/∂pₖ` to `dp[k]` for every `k`,
///   agreeing with central finite differences of `value` in `f64` away from kinks;
/// - no allocation in `value` or `backward` (they run once per element).
pub trait ScalarFamily: Copy + Send + Sync + 'static {
    /// Number of learnable parameters of one channel.
    fn n_params(&self) -> usize;
    /// The parameters of one channel at the start of training.
    fn init(&self) -> Vec<f64>;
    /// `g(z; p)`.
    fn value<T: Float>(&self, z: T, p: &[T]) -> T;
    /// `∂g/∂z` at `(z, p)`; adds `upstream · ∂g/∂pₖ` to `dp[k]`.
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T;
}

/// `v` as `T` (every constant of the families is representable in `f32`).
#[inline(always)]
pub(crate) fn c<T: Float>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// Logistic sigmoid, stable for large `|z|`.
#[inline(always)]
pub(crate) fn sigmoid<T: Float>(z: T) -> T {
    if z >= T::zero() {
        T::one() / (T::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::one() + e)
    }
}

/// Mish `z·tanh(softplus(z))` and its derivative `t + z·(1 − t²)·σ(z)`, from one `exp`:
/// with `e = exp(z)`, `tanh(ln(1 + e)) = n/(n + 2)` where `n = e·(e + 2)`, and
/// `σ(z) = e/(1 + e)`. Above `z = 20`, `t` and `σ` are 1 to within `f64` rounding.
#[inline(always)]
pub(crate) fn mish_and_derivative<T: Float>(z: T) -> (T, T) {
    if z > c(20.0) {
        return (z, T::one());
    }
    let one = T::one();
    let two = one + one;
    let e = z.exp();
    let n = e * (e + two);
    let t = n / (n + two);
    let s = e / (one + e);
    (z * t, t + z * (one - t * t) * s)
}

/// `n` points evenly spaced on `[lo, hi]` (`n ≥ 2`), or `[(lo + hi) / 2]` for `n = 1`.
pub(crate) fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![0.5 * (lo + hi)];
    }
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks `backward` of `f` at `z` against central finite differences of `value` in `f64`
    /// (input and every parameter), with upstream gradient 0.7.
    pub(crate) fn check_fd<F: ScalarFamily>(f: F, p: &[f64], z: f64, what: &str) {
        let h = 1e-6;
        let up = 0.7;
        let mut dp = vec![0.0; p.len()];
        let dz = f.backward(z, p, up, &mut dp);
        let fd_z = (f.value(z + h, p) - f.value(z - h, p)) / (2.0 * h);
        assert!(
            (dz - fd_z).abs() <= 1e-5 * (1.0 + fd_z.abs()),
            "{what}: ∂g/∂z at z={z}: analytic {dz}, numeric {fd_z}"
        );
        for k in 0..p.len() {
            let (mut pp, mut pm) = (p.to_vec(), p.to_vec());
            pp[k] += h;
            pm[k] -= h;
            let fd = up * (f.value(z, &pp) - f.value(z, &pm)) / (2.0 * h);
            assert!(
                (dp[k] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{what}: ∂g/∂p[{k}] at z={z}: analytic {}, numeric {fd}",
                dp[k]
            );
        }
    }

    /// Inputs for finite-difference checks: spread over [-5, 5] and beyond, none on the
    /// families' kinks at 0, at the APL hinges (multiples of 0.5 on [-2, 2]) or at the PWLU
    /// grid points (integers on [-3, 3]).
    pub(crate) const ZS: [f64; 12] = [
        -7.3, -4.1, -2.93, -1.77, -0.61, -0.13, 0.07, 0.38, 1.21, 2.29, 3.6, 8.2,
    ];

    /// Perturbs `p` deterministically so that checks also run away from the start.
    pub(crate) fn perturbed(p: &[f64]) -> Vec<f64> {
        p.iter()
            .enumerate()
            .map(|(i, v)| v + 0.05 * ((i as f64) * 1.7 + 0.3).sin())
            .collect()
    }

    /// Runs the finite-difference check at every `ZS` input, at the start and perturbed.
    pub(crate) fn check_family<F: ScalarFamily>(f: F, name: &str) {
        check_family_from(f, name, true)
    }

    /// As [`check_family`]; `at_start: false` skips the start itself (for a start with
    /// parameters within the finite-difference step of a kink, such as PAU's published
    /// denominator coefficients of order 1e-6 inside `|bₖ|`).
    pub(crate) fn check_family_from<F: ScalarFamily>(f: F, name: &str, at_start: bool) {
        let p0 = f.init();
        assert_eq!(p0.len(), f.n_params(), "{name}: init length");
        let sets = if at_start {
            vec![p0.clone(), perturbed(&p0)]
        } else {
            vec![perturbed(&p0)]
        };
        for p in sets {
            for z in ZS {
                check_fd(f, &p, z, name);
            }
        }
        // f32 agrees with f64.
        let p32: Vec<f32> = p0.iter().map(|&v| v as f32).collect();
        for z in ZS {
            let a = f64::from(f.value(z as f32, &p32));
            let b = f.value(z, &p0);
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{name} f32 at {z}");
        }
    }

    #[test]
    fn mish_derivative_matches_fd() {
        for z in ZS {
            let h = 1e-6;
            let fd = (mish_and_derivative(z + h).0 - mish_and_derivative(z - h).0) / (2.0 * h);
            assert!((mish_and_derivative(z).1 - fd).abs() < 1e-6);
        }
    }

    #[test]
    fn helpers_are_finite_far_out() {
        for z in [-1e4f64, -100.0, 100.0, 1e4] {
            assert!(sigmoid(z).is_finite());
            let (m, d) = mish_and_derivative(z);
            assert!(m.is_finite() && d.is_finite(), "{z}");
        }
    }
}
