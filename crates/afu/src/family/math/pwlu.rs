//! PWLU, the piecewise linear unit (Zhu et al., ICCV 2021, "Learning Specialized Activation
//! Functions with the Piecewise Linear Unit"): `N` equal intervals between learned bounds
//! `L < R`, heights `h₀ … h_N` at the `N + 1` grid points, and outer slopes `k_L`, `k_R`:
//!
//! - `z < L`: `h₀ + k_L·(z − L)`;
//! - `z ≥ R`: `h_N + k_R·(z − R)`;
//! - else, with `Δ = (R − L)/N`, `t = (z − L)/Δ`, `i = ⌊t⌋` (at most `N − 1`):
//!   `hᵢ + (t − i)·(hᵢ₊₁ − hᵢ)`.
//!
//! Parameters `[L, R, k_L, k_R, h₀ … h_N]`; at start `L = −3`, `R = 3`, `k_L = 0`, `k_R = 1`,
//! `hᵢ = relu(L + i·Δ)`: relu exactly when `N` is even (0 is then a grid point), relu away from
//! the interval around 0 otherwise. Bounds that cross during training leave no interval
//! (`z < L` or `z ≥ R` always holds), never a division by zero.
//!
//! [`Pwlu::reinit_bounds`] is the paper's statistics-based re-initialisation after its first
//! phase: the bounds move to `mean ± 3·std` of the inputs seen, and the heights resample the
//! current function on the new grid.

use super::{FamilyFloat, LANES, Lanes, ScalarFamily};

/// PWLU with `n` intervals (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pwlu {
    /// Number of intervals `N`.
    pub n: usize,
}

impl Pwlu {
    /// Parameters with bounds `[mean − 3·std, mean + 3·std]` (`std` at least 1e-3) and heights
    /// sampled from the function of parameters `p` on the new grid; outer slopes kept.
    pub fn reinit_bounds(&self, p: &[f64], mean: f64, std: f64) -> Vec<f64> {
        let spread = 3.0 * std.max(1e-3);
        let (l, r) = (mean - spread, mean + spread);
        let mut out = vec![l, r, p[2], p[3]];
        out.extend((0..=self.n).map(|i| self.value(l + (r - l) * i as f64 / self.n as f64, p)));
        out
    }
}

impl ScalarFamily for Pwlu {
    fn n_params(&self) -> usize {
        self.n + 5
    }

    fn init(&self) -> Vec<f64> {
        let (l, r) = (-3.0, 3.0);
        let mut p = vec![l, r, 0.0, 1.0];
        p.extend((0..=self.n).map(|i| (l + (r - l) * i as f64 / self.n as f64).max(0.0)));
        p
    }

    #[inline(always)]
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
        let (l, r) = (p[0], p[1]);
        let h = &p[4..];
        if z < l {
            h[0] + p[2] * (z - l)
        } else if z >= r {
            h[self.n] + p[3] * (z - r)
        } else {
            let t = (z - l) * (T::from_index(self.n) / (r - l));
            let i = t.index_clamped(self.n - 1);
            let f = t - T::from_index(i);
            h[i] + f * (h[i + 1] - h[i])
        }
    }

    #[inline(always)]
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T {
        let (l, r) = (p[0], p[1]);
        let h = &p[4..];
        if z < l {
            dp[0] = dp[0] - upstream * p[2];
            dp[2] = dp[2] + upstream * (z - l);
            dp[4] = dp[4] + upstream;
            p[2]
        } else if z >= r {
            dp[1] = dp[1] - upstream * p[3];
            dp[3] = dp[3] + upstream * (z - r);
            dp[4 + self.n] = dp[4 + self.n] + upstream;
            p[3]
        } else {
            let w = r - l;
            // t = (z − L)·N/(R − L); ∂t/∂L = N·(z − R)/(R − L)², ∂t/∂R = −N·(z − L)/(R − L)².
            let scale = T::from_index(self.n) / w;
            let scale2 = scale / w;
            let t = (z - l) * scale;
            let i = t.index_clamped(self.n - 1);
            let f = t - T::from_index(i);
            let s = h[i + 1] - h[i];
            let us = upstream * s * scale2;
            dp[0] = dp[0] + us * (z - r);
            dp[1] = dp[1] - us * (z - l);
            dp[4 + i] = dp[4 + i] + upstream * (T::one() - f);
            dp[5 + i] = dp[5 + i] + upstream * f;
            s * scale
        }
    }

    /// Every lane is evaluated on all three pieces and the right one selected; the heights of
    /// the inner piece are looked up per lane.
    #[inline(always)]
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
        assert!(self.n >= 1, "PWLU needs an interval");
        let (l, r, kl, kr) = (p[0], p[1], p[2], p[3]);
        let h = &p[4..5 + self.n];
        let (h0, hn) = (h[0], h[self.n]);
        let scale = T::from_index(self.n) / (r - l);
        let last = self.n - 1;
        for (yl, &z) in y.iter_mut().zip(x) {
            let t = (z - l) * scale;
            let i = t.index_clamped(last);
            let f = t - T::from_index(i);
            let inner = h[i] + f * (h[i + 1] - h[i]);
            let below = z < l;
            let outer = if below {
                h0 + kl * (z - l)
            } else {
                hn + kr * (z - r)
            };
            *yl = if below | (z >= r) { outer } else { inner };
        }
    }

    /// With up to 16 intervals in `f32`, the register-table code of [`super::pwlu_avx512`]
    /// (the same bits).
    #[inline(always)]
    unsafe fn value_run_avx512<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if let (Some(x), Some(p), Some(y)) =
            (super::as_f32(x), super::as_f32(p), super::as_f32_mut(y))
            && self.n <= super::pwlu_avx512::MAX_INTERVALS
        {
            // SAFETY: the caller guarantees AVX-512F.
            unsafe { super::pwlu_avx512::value_run(self.n, x, p, y) };
            return;
        }
        self.value_run(x, p, y)
    }

    /// With up to 16 intervals in `f32`, the register-table code of [`super::pwlu_avx512`]
    /// (the same bits).
    #[inline(always)]
    unsafe fn backward_blocks_avx512<T: FamilyFloat>(
        &self,
        x: &[T],
        p: &[T],
        g: &mut [T],
        acc: &mut [Lanes<T>],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let (Some(x), Some(p), Some(g), Some(acc)) = (
            super::as_f32(x),
            super::as_f32(p),
            super::as_f32_mut(g),
            super::lanes_as_f32_mut(acc),
        ) && self.n <= super::pwlu_avx512::MAX_INTERVALS
        {
            // SAFETY: the caller guarantees AVX-512F.
            unsafe { super::pwlu_avx512::backward_blocks(self.n, x, p, g, acc) };
            return;
        }
        self.backward_blocks(x, p, g, acc)
    }

    /// As [`Pwlu::value_lanes`]. The end parameters' gradients are added on every lane,
    /// multiplied by 0/1 piece indicators (a select there compiles to masked stores, slow to
    /// reload); the two heights a lane's gradient goes to are added lane by lane (a scatter,
    /// not vectorised). An infinite input gives NaN, not ±∞, end-parameter gradients.
    #[inline(always)]
    fn backward_lanes<T: FamilyFloat>(
        &self,
        x: &Lanes<T>,
        p: &[T],
        g: &mut Lanes<T>,
        acc: &mut [Lanes<T>],
    ) {
        assert!(self.n >= 1, "PWLU needs an interval");
        let (l, r, kl, kr) = (p[0], p[1], p[2], p[3]);
        let h = &p[4..5 + self.n];
        let (zero, one) = (T::zero(), T::one());
        // With crossed bounds no input is inside; a width of 1 then keeps the (unused) inner
        // values finite, so that the indicators' zeros do not meet infinities.
        let w = if r - l > zero { r - l } else { one };
        let scale = T::from_index(self.n) / w;
        let scale2 = scale / w;
        let last = self.n - 1;
        let (ends, heights) = acc.split_at_mut(4);
        let [dl, dr, dkl, dkr] = ends else {
            unreachable!("four end parameters")
        };
        // The lower height index of each lane and what goes to it and the next one.
        let mut idx = [0usize; LANES];
        let mut lo = [zero; LANES];
        let mut hi = [zero; LANES];
        for j in 0..LANES {
            let (z, up) = (x[j], g[j]);
            let t = (z - l) * scale;
            let i = t.index_clamped(last);
            let f = t - T::from_index(i);
            let s = h[i + 1] - h[i];
            let us = up * s * scale2;
            let below = z < l;
            let above = !below & (z >= r);
            let outside = below | above;
            let (is_below, is_above) = (
                if below { one } else { zero },
                if above { one } else { zero },
            );
            let inside = one - is_below - is_above;
            // Left of L: L, k_L, h₀ and slope k_L; right of R: R, k_R, h_N and slope k_R;
            // between: L, R and the two heights around z.
            dl[j] = dl[j] + (-(up * kl) * is_below + us * (z - r) * inside);
            dr[j] = dr[j] + (-(up * kr) * is_above - us * (z - l) * inside);
            dkl[j] = dkl[j] + up * (z - l) * is_below;
            dkr[j] = dkr[j] + up * (z - r) * is_above;
            let side = if below { 0 } else { last };
            idx[j] = if outside { side } else { i };
            let (end_lo, end_hi) = if below { (up, zero) } else { (zero, up) };
            lo[j] = if outside { end_lo } else { up * (one - f) };
            hi[j] = if outside { end_hi } else { up * f };
            let slope = if below { kl } else { kr };
            g[j] = up * if outside { slope } else { s * scale };
        }
        for j in 0..LANES {
            let i = idx[j];
            heights[i][j] = heights[i][j] + lo[j];
            heights[i + 1][j] = heights[i + 1][j] + hi[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_relu_and_derivatives_match() {
        let f = Pwlu { n: 16 };
        for z in super::super::tests::ZS {
            assert!((f.value(z, &f.init()) - z.max(0.0)).abs() < 1e-12, "{z}");
        }
        super::super::tests::check_family(f, "pwlu-16");
        super::super::tests::check_family(Pwlu { n: 5 }, "pwlu-5");
        super::super::tests::check_family(Pwlu { n: 1 }, "pwlu-1");
    }

    #[test]
    fn reinit_keeps_the_function_on_the_new_grid() {
        let f = Pwlu { n: 8 };
        let p = super::super::tests::perturbed(&f.init());
        let q = f.reinit_bounds(&p, 0.5, 0.4);
        assert_eq!(q.len(), f.n_params());
        assert!((q[0] - (0.5 - 1.2)).abs() < 1e-12 && (q[1] - 1.7).abs() < 1e-12);
        for i in 0..=8 {
            let x = q[0] + (q[1] - q[0]) * i as f64 / 8.0;
            assert!(
                (f.value(x, &q) - f.value(x, &p)).abs() < 1e-9,
                "grid point {i}"
            );
        }
    }
}
