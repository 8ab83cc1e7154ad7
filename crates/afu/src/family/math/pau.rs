//! PAU, the Padé activation unit (Molina, Schramowski and Kersting, ICLR 2020, "Padé
//! Activation Units: End-to-end Learning of Flexible Activation Functions in Deep Networks"),
//! in its "safe" form: `g(z) = P(z) / Q(z)` with `P(z) = Σⱼ₌₀..M aⱼ·zʲ` and
//! `Q(z) = 1 + Σₖ₌₁..N |bₖ·zᵏ|`, which has no pole. Parameters `[a₀ … a_M, b₁ … b_N]`.
//!
//! Start (degrees (5, 4)): the authors' least-squares fit of leaky relu (slope 0.01) on
//! [−3, 3], `pade_optimized_leakyrelu` in their repository (ml-research/pau,
//! `pau/cuda/python_imp/Pade.py`). Other degrees take those coefficients where the degree
//! has them and 0 for the rest.

use super::{FamilyFloat, LANES, Lanes, ScalarFamily};

/// Numerator coefficients `a₀ … a₅` of the published leaky-relu fit.
pub const LEAKY_RELU_NUMERATOR: [f64; 6] = [
    3.35583603e-02,
    5.05000375e-01,
    1.65343934e+00,
    2.01001052e+00,
    9.31901999e-01,
    1.52424124e-01,
];

/// Denominator coefficients `b₁ … b₄` of the published leaky-relu fit.
pub const LEAKY_RELU_DENOMINATOR: [f64; 4] = [
    3.30847488e-06,
    3.98021568e+00,
    5.12471206e-07,
    3.01830109e-01,
];

/// Safe PAU of numerator degree `m` and denominator degree `n` (both ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pau {
    /// Numerator degree `M`.
    pub m: usize,
    /// Denominator degree `N`.
    pub n: usize,
}

/// `+1`, `−1` or 0 (the sign the published backward pass uses, 0 at 0); two selects, no
/// branch.
#[inline(always)]
fn sign<T: FamilyFloat>(v: T) -> T {
    let pos = if v > T::zero() { T::one() } else { T::zero() };
    let neg = if v < T::zero() { T::one() } else { T::zero() };
    pos - neg
}

impl Pau {
    /// `(P, P', Q, Q')` at `z`.
    #[inline(always)]
    fn parts<T: FamilyFloat>(&self, z: T, p: &[T]) -> (T, T, T, T) {
        let (a, b) = p.split_at(self.m + 1);
        // Horner for P and P'.
        let mut pv = a[self.m];
        let mut dpv = T::zero();
        for j in (0..self.m).rev() {
            dpv = dpv * z + pv;
            pv = pv * z + a[j];
        }
        // Q = 1 + Σ |b_k|·|z|^k, Q' = sign(z)·Σ k·|b_k|·|z|^(k−1).
        let az = z.abs();
        let mut q = T::one();
        let mut dq = T::zero();
        let mut pow = T::one(); // |z|^(k−1)
        for (k, bk) in b.iter().enumerate() {
            let kk = T::from_index(k + 1);
            let ab = bk.abs();
            dq = dq + kk * ab * pow;
            pow = pow * az;
            q = q + ab * pow;
        }
        (pv, dpv, q, dq * sign(z))
    }

    /// [`Pau::parts`] on `W` lanes (one block, or two side by side): `(P, P', Q, Q')` per
    /// lane (`P'` and `Q'` only when `DERIV`).
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn parts_block<T: FamilyFloat, const W: usize, const DERIV: bool>(
        &self,
        x: &[T; W],
        p: &[T],
    ) -> ([T; W], [T; W], [T; W], [T; W]) {
        let (a, b) = p.split_at(self.m + 1);
        let mut pv = [a[self.m]; W];
        let mut dpv = [T::zero(); W];
        for &aj in a[..self.m].iter().rev() {
            for l in 0..W {
                if DERIV {
                    dpv[l] = dpv[l] * x[l] + pv[l];
                }
                pv[l] = pv[l] * x[l] + aj;
            }
        }
        let mut q = [T::one(); W];
        let mut dq = [T::zero(); W];
        let mut pow = [T::one(); W];
        for (k, bk) in b.iter().enumerate() {
            let kk = T::from_index(k + 1);
            let ab = bk.abs();
            let kab = kk * ab;
            for l in 0..W {
                if DERIV {
                    dq[l] = dq[l] + kab * pow[l];
                }
                pow[l] = pow[l] * x[l].abs();
                q[l] = q[l] + ab * pow[l];
            }
        }
        if DERIV {
            for (d, &z) in dq.iter_mut().zip(x) {
                *d = *d * sign(z);
            }
        }
        (pv, dpv, q, dq)
    }

    /// `y = g(x)` on `W` lanes.
    #[inline(always)]
    fn value_block<T: FamilyFloat, const W: usize>(&self, x: &[T; W], p: &[T], y: &mut [T; W]) {
        let (pv, _, q, _) = self.parts_block::<T, W, false>(x, p);
        for l in 0..W {
            y[l] = pv[l] / q[l];
        }
    }

    /// The backward pass of `W` lanes (as [`ScalarFamily::backward_lanes`] on each of their
    /// blocks in turn): every lane accumulator gets the blocks' contributions in block order,
    /// so two blocks side by side give the bits of two blocks one after the other.
    #[inline(always)]
    fn backward_block<T: FamilyFloat, const W: usize>(
        &self,
        x: &[T; W],
        p: &[T],
        g: &mut [T; W],
        acc: &mut [Lanes<T>],
    ) {
        let (pv, dpv, q, dq) = self.parts_block::<T, W, true>(x, p);
        let mut inv_q = [T::zero(); W];
        let mut y = [T::zero(); W];
        let mut zj = [T::zero(); W];
        for l in 0..W {
            inv_q[l] = T::one() / q[l];
            y[l] = pv[l] * inv_q[l];
            zj[l] = g[l] * inv_q[l];
        }
        let (da, db) = acc.split_at_mut(self.m + 1);
        // ∂g/∂aⱼ = zʲ/Q.
        for d in da.iter_mut() {
            for block in zj.chunks_exact(LANES) {
                for l in 0..LANES {
                    d[l] = d[l] + block[l];
                }
            }
            for l in 0..W {
                zj[l] = zj[l] * x[l];
            }
        }
        // ∂g/∂bₖ = −(P/Q²)·sign(bₖ)·|z|ᵏ.
        let mut zk = [T::zero(); W];
        for l in 0..W {
            zk[l] = -g[l] * y[l] * inv_q[l] * x[l].abs();
        }
        for (d, &bk) in db.iter_mut().zip(&p[self.m + 1..]) {
            let sb = sign(bk);
            for block in zk.chunks_exact(LANES) {
                for l in 0..LANES {
                    d[l] = d[l] + block[l] * sb;
                }
            }
            for l in 0..W {
                zk[l] = zk[l] * x[l].abs();
            }
        }
        for l in 0..W {
            g[l] = g[l] * ((dpv[l] - y[l] * dq[l]) * inv_q[l]);
        }
    }
}

impl ScalarFamily for Pau {
    fn n_params(&self) -> usize {
        self.m + 1 + self.n
    }

    fn init(&self) -> Vec<f64> {
        let a = (0..=self.m).map(|j| LEAKY_RELU_NUMERATOR.get(j).copied().unwrap_or(0.0));
        let b = (0..self.n).map(|k| LEAKY_RELU_DENOMINATOR.get(k).copied().unwrap_or(0.0));
        a.chain(b).collect()
    }

    #[inline(always)]
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        let (pv, _, q, _) = self.parts(z, p);
        pv / q
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let (pv, dpv, q, dq) = self.parts(z, p);
        let inv_q = T::one() / q;
        let y = pv * inv_q;
        // ∂g/∂aⱼ = zʲ/Q.
        let mut zj = upstream * inv_q;
        for d in dp.iter_mut().take(self.m + 1) {
            *d = *d + zj;
            zj = zj * z;
        }
        // ∂g/∂bₖ = −(P/Q²)·sign(bₖ)·|z|ᵏ.
        let az = z.abs();
        let mut zk = -upstream * y * inv_q * az;
        for (d, bk) in dp[self.m + 1..].iter_mut().zip(&p[self.m + 1..]) {
            *d = *d + zk * sign(*bk);
            zk = zk * az;
        }
        (dpv - y * dq) * inv_q
    }

    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        self.value_block(x, p, y);
    }

    /// Two blocks at a time (the same bits as one at a time, more independent work). Written
    /// out in each family rather than shared through a helper taking closures: the closures
    /// were not compiled with the kernels' target features (KAF's forward went from 1 to 60 ms).
    #[inline(always)]
    fn value_run<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        assert_eq!(x.len(), y.len(), "value_run lengths");
        let pairs = x.len() / (2 * LANES) * (2 * LANES);
        for (xb, yb) in x[..pairs]
            .chunks_exact(2 * LANES)
            .zip(y[..pairs].chunks_exact_mut(2 * LANES))
        {
            let xl: [T; 2 * LANES] = xb.try_into().expect("two whole blocks");
            let mut yl = [T::zero(); 2 * LANES];
            self.value_block(&xl, p, &mut yl);
            yb.copy_from_slice(&yl);
        }
        for (xb, yb) in x[pairs..].chunks(LANES).zip(y[pairs..].chunks_mut(LANES)) {
            let mut xl = [T::zero(); LANES];
            let mut yl = [T::zero(); LANES];
            xl[..xb.len()].copy_from_slice(xb);
            self.value_block(&xl, p, &mut yl);
            yb.copy_from_slice(&yl[..yb.len()]);
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
        self.backward_block(x, p, g, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_fits_leaky_relu_and_derivatives_match() {
        let f = Pau { m: 5, n: 4 };
        let p = f.init();
        let mut worst = 0.0f64;
        for i in 0..=600 {
            let z = -3.0 + 6.0 * i as f64 / 600.0;
            let target = if z > 0.0 { z } else { 0.01 * z };
            worst = worst.max((f.value(z, &p) - target).abs());
        }
        assert!(
            worst < 0.05,
            "max error of the published fit on [-3, 3]: {worst}"
        );
        super::super::tests::check_family_from(f, "pau", false);
        super::super::tests::check_family_from(Pau { m: 3, n: 2 }, "pau-3-2", false);
        super::super::tests::check_family_from(Pau { m: 7, n: 6 }, "pau-7-6", false);
    }
}
