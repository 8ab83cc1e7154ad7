//! APL, the adaptive piecewise linear unit (Agostinelli et al., ICLR 2015 workshop, "Learning
//! Activation Functions to Improve Deep Neural Networks"):
//! `g(z) = max(0, z) + Σₛ aₛ·max(0, −z + bₛ)`, `S` hinges, parameters `[a₁ … a_S, b₁ … b_S]`;
//! at start `a = 0` (relu) and the hinges `b` evenly spread on [−2, 2].

use num_traits::Float;

use super::{ScalarFamily, linspace};

/// APL with `s` hinges (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apl {
    /// Number of hinges `S`.
    pub s: usize,
}

impl ScalarFamily for Apl {
    fn n_params(&self) -> usize {
        2 * self.s
    }

    fn init(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.s];
        p.extend(linspace(-2.0, 2.0, self.s));
        p
    }

    #[inline(always)]
    fn value<T: Float>(&self, z: T, p: &[T]) -> T {
        let (a, b) = p.split_at(self.s);
        let mut y = z.max(T::zero());
        for (ak, bk) in a.iter().zip(b) {
            y = y + *ak * (*bk - z).max(T::zero());
        }
        y
    }

    #[inline(always)]
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let (a, b) = p.split_at(self.s);
        let (da, db) = dp.split_at_mut(self.s);
        let mut dz = if z > T::zero() { T::one() } else { T::zero() };
        for (((ak, bk), dak), dbk) in a.iter().zip(b).zip(da.iter_mut()).zip(db.iter_mut()) {
            let h = *bk - z;
            if h > T::zero() {
                *dak = *dak + upstream * h;
                *dbk = *dbk + upstream * *ak;
                dz = dz - *ak;
            }
        }
        dz
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_relu_and_derivatives_match() {
        let f = Apl { s: 5 };
        for z in super::super::tests::ZS {
            assert_eq!(f.value(z, &f.init()), z.max(0.0));
        }
        super::super::tests::check_family(f, "apl-5");
        super::super::tests::check_family(Apl { s: 1 }, "apl-1");
    }
}
