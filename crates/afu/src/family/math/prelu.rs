//! PReLU (He et al., 2015, "Delving Deep into Rectifiers"): `g(z) = max(0, z) + a·min(0, z)`,
//! parameters `[a]`, `a = 0.25` at start.

use super::{FamilyFloat, LANES, Lanes, ScalarFamily};

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
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        if z > T::zero() { z } else { p[0] * z }
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        if z > T::zero() {
            T::one()
        } else {
            dp[0] = dp[0] + upstream * z;
            p[0]
        }
    }

    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        let a = p[0];
        for (yl, &z) in y.iter_mut().zip(x) {
            *yl = if z > T::zero() { z } else { a * z };
        }
    }

    #[inline(always)]
    fn value_run<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        let a = p[0];
        for (yl, &z) in y.iter_mut().zip(x) {
            *yl = if z > T::zero() { z } else { a * z };
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
            let pos = z > T::zero();
            da[l] = da[l] + if pos { T::zero() } else { up * z };
            g[l] = up * if pos { T::one() } else { a };
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
