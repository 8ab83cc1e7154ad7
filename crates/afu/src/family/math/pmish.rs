//! Parametric Mish (issue 22 §3, after the Mish paper's remark that a parameter controlling
//! the slope for `z < 0` might improve it): `g(z) = mish(z) + a·min(0, z)`, parameters `[a]`,
//! `a = 0` at start, where `g` is Mish exactly.
//!
//! Mish's own slope tends to 0 as `z → −∞`, so `a` is the asymptotic slope of the negative
//! side (`g'(z) → a`), while the positive side is unchanged: the parameter does only what the
//! paper's sentence asks, and the start is the fixed function it is compared with.

use super::{FamilyFloat, LANES, Lanes, ScalarFamily, mish_and_derivative};

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
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        let m = mish_and_derivative(z).0;
        if z < T::zero() { m + p[0] * z } else { m }
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let d = mish_and_derivative(z).1;
        if z < T::zero() {
            dp[0] = dp[0] + upstream * z;
            d + p[0]
        } else {
            d
        }
    }

    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        let a = p[0];
        for (yl, &z) in y.iter_mut().zip(x) {
            let m = mish_and_derivative(z).0;
            *yl = if z < T::zero() { m + a * z } else { m };
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
        let a = p[0];
        let da = &mut acc[0];
        for l in 0..LANES {
            let (z, up) = (x[l], g[l]);
            let d = mish_and_derivative(z).1;
            let neg = z < T::zero();
            da[l] = da[l] + if neg { up * z } else { T::zero() };
            g[l] = up * if neg { d + a } else { d };
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
        let p = [0.3f64];
        let mut dp = [0.0];
        assert!((Pmish.backward(-40.0, &p, 1.0, &mut dp) - 0.3).abs() < 1e-12);
        super::super::tests::check_family(Pmish, "pmish");
    }
}
