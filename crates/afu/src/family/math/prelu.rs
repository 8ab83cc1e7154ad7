//! PReLU (He et al., 2015, "Delving Deep into Rectifiers"): `g(z) = max(0, z) + a·min(0, z)`,
//! parameters `[a]`, `a = 0.25` at start.

use num_traits::Float;

use super::ScalarFamily;

/// PReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prelu;

impl ScalarFamily for Prelu {
    fn n_params(&self) -> usize {
        1
    }

    fn init(&self) -> Vec<f64> {
        vec![0.25]
    }

    #[inline(always)]
    fn value<T: Float>(&self, z: T, p: &[T]) -> T {
        if z > T::zero() { z } else { p[0] * z }
    }

    #[inline(always)]
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        if z > T::zero() {
            T::one()
        } else {
            dp[0] = dp[0] + upstream * z;
            p[0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_derivatives() {
        assert_eq!(Prelu.value(-2.0, &Prelu.init()), -0.5);
        assert_eq!(Prelu.value(3.0, &Prelu.init()), 3.0);
        super::super::tests::check_family(Prelu, "prelu");
    }
}
