//! APL, the adaptive piecewise linear unit (Agostinelli et al., ICLR 2015 workshop, "Learning
//! Activation Functions to Improve Deep Neural Networks"):
//! `g(z) = max(0, z) + Σₛ aₛ·max(0, −z + bₛ)`, `S` hinges, parameters `[a₁ … a_S, b₁ … b_S]`;
//! at start `a = 0` (relu) and the hinges `b` evenly spread on [−2, 2].

use super::{FamilyFloat, LANES, Lanes, ScalarFamily, linspace};

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
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        let (a, b) = p.split_at(self.s);
        let mut y = z.max(T::zero());
        for (ak, bk) in a.iter().zip(b) {
            y = y + *ak * (*bk - z).max(T::zero());
        }
        y
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
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

    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        let (a, b) = p.split_at(self.s);
        for (yl, &z) in y.iter_mut().zip(x) {
            *yl = z.max(T::zero());
        }
        for (&ak, &bk) in a.iter().zip(b) {
            for (yl, &z) in y.iter_mut().zip(x) {
                *yl = *yl + ak * (bk - z).max(T::zero());
            }
        }
    }

    #[inline(always)]
    fn value_run<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        let (a, b) = p.split_at(self.s);
        for (yl, &z) in y.iter_mut().zip(x) {
            *yl = z.max(T::zero());
        }
        for (&ak, &bk) in a.iter().zip(b) {
            for (yl, &z) in y.iter_mut().zip(x) {
                *yl = *yl + ak * (bk - z).max(T::zero());
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
        let (a, b) = p.split_at(self.s);
        let (da, db) = acc.split_at_mut(self.s);
        let mut dz = [T::zero(); LANES];
        for (d, &z) in dz.iter_mut().zip(x) {
            *d = if z > T::zero() { T::one() } else { T::zero() };
        }
        // Each hinge's contributions go to local lanes first and then to one accumulator row
        // per loop: loops that write two rows of `acc` need run-time alias checks.
        for (((&ak, &bk), dak), dbk) in a.iter().zip(b).zip(da.iter_mut()).zip(db.iter_mut()) {
            let mut va = [T::zero(); LANES];
            let mut vb = [T::zero(); LANES];
            for l in 0..LANES {
                let (z, up) = (x[l], g[l]);
                let h = bk - z;
                let step = if h > T::zero() { T::one() } else { T::zero() };
                va[l] = up * h.max(T::zero());
                vb[l] = up * ak * step;
                dz[l] = dz[l] - ak * step;
            }
            for l in 0..LANES {
                dak[l] = dak[l] + va[l];
            }
            for l in 0..LANES {
                dbk[l] = dbk[l] + vb[l];
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
    fn start_is_relu_and_derivatives_match() {
        let f = Apl { s: 5 };
        for z in super::super::tests::ZS {
            assert_eq!(f.value(z, &f.init()), z.max(0.0));
        }
        super::super::tests::check_family(f, "apl-5");
        super::super::tests::check_family(Apl { s: 1 }, "apl-1");
    }
}
