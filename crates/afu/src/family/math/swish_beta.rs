//! Swish-β (Ramachandran et al., 2017, "Searching for Activation Functions"):
//! `g(z) = z·σ(β·z)`, parameters `[β]`, `β = 1` at start (Swish/SiLU).

use num_traits::Float;

use super::{ScalarFamily, sigmoid};

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
    fn value<T: Float>(&self, z: T, p: &[T]) -> T {
        z * sigmoid(p[0] * z)
    }

    #[inline(always)]
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let s = sigmoid(p[0] * z);
        let ds = s * (T::one() - s);
        dp[0] = dp[0] + upstream * z * z * ds;
        s + p[0] * z * ds
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
