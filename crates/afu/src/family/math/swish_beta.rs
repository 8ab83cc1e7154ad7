//! Swish-β (Ramachandran et al., 2017, "Searching for Activation Functions"):
//! `g(z) = z·σ(β·z)`, parameters `[β]`, `β = 1` at start (Swish/SiLU).

use super::{FamilyFloat, LANES, Lanes, ScalarFamily, sigmoid};

/// Swish with a learned `β`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwishBeta;

impl ScalarFamily for SwishBeta {
    fn n_params(&self) -> usize {
        1
    }

    fn init(&self) -> Vec<f64> {
        vec![1.0]
    }

    #[inline(always)]
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        z * sigmoid(p[0] * z)
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let s = sigmoid(p[0] * z);
        let ds = s * (T::one() - s);
        dp[0] = dp[0] + upstream * z * z * ds;
        s + p[0] * z * ds
    }

    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        let beta = p[0];
        for (yl, &z) in y.iter_mut().zip(x) {
            *yl = z * sigmoid(beta * z);
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
        let beta = p[0];
        let db = &mut acc[0];
        for l in 0..LANES {
            let (z, up) = (x[l], g[l]);
            let s = sigmoid(beta * z);
            let ds = s * (T::one() - s);
            db[l] = db[l] + up * z * z * ds;
            g[l] = up * (s + beta * z * ds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afu::BaseActivation;

    #[test]
    fn start_is_swish_and_derivatives_match() {
        for z in super::super::tests::ZS {
            let a = SwishBeta.value(z, &SwishBeta.init());
            assert!((a - BaseActivation::Swish.value(z)).abs() < 1e-12);
        }
        super::super::tests::check_family(SwishBeta, "swish-beta");
    }
}
