//! Parametric Mish (issue 22 §3, after the Mish paper's remark that a parameter controlling
//! the slope for `z < 0` might improve it): `g(z) = mish(z) + a·min(0, z)`, parameters `[a]`,
//! `a = 0` at start, where `g` is Mish exactly.
//!
//! Mish's own slope tends to 0 as `z → −∞`, so `a` is the asymptotic slope of the negative
//! side (`g'(z) → a`), while the positive side is unchanged: the parameter does only what the
//! paper's sentence asks, and the start is the fixed function it is compared with.

use num_traits::Float;

use super::{ScalarFamily, mish_and_derivative};

/// Mish with a learned negative-side slope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pmish;

impl ScalarFamily for Pmish {
    fn n_params(&self) -> usize {
        1
    }

    fn init(&self) -> Vec<f64> {
        vec![0.0]
    }

    #[inline(always)]
    fn value<T: Float>(&self, z: T, p: &[T]) -> T {
        let m = mish_and_derivative(z).0;
        if z < T::zero() { m + p[0] * z } else { m }
    }

    #[inline(always)]
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let d = mish_and_derivative(z).1;
        if z < T::zero() {
            dp[0] = dp[0] + upstream * z;
            d + p[0]
        } else {
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afu::BaseActivation;

    #[test]
    fn start_is_mish_and_derivatives_match() {
        for z in super::super::tests::ZS {
            let a = Pmish.value(z, &Pmish.init());
            assert!((a - BaseActivation::Mish.value(z)).abs() < 1e-12, "{z}");
        }
        // The slope far left is `a`.
        let p = [0.3];
        let mut dp = [0.0];
        assert!((Pmish.backward(-40.0, &p, 1.0, &mut dp) - 0.3).abs() < 1e-12);
        super::super::tests::check_family(Pmish, "pmish");
    }
}
