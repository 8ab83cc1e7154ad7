//! The element type of afu's CPU kernels (the AFU kernels in `crate::afu::kernel` and the
//! layer kernels of this folder): `f32` for training, `f64` for gradient checks.
//!
//! A leaf module: it depends on nothing in the crate, so that both kernel folders can use it
//! without depending on each other.

/// Element type of the kernels: `f32` (training) or `f64` (gradient checks).
pub trait KernelFloat:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    /// 0
    const ZERO: Self;
    /// 1
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Largest argument for which `exp` stays finite (with margin).
    const EXP_MAX: Self;
    /// Smallest argument for which `exp` stays a normal number.
    const EXP_MIN: Self;
    /// `+∞`
    const INFINITY: Self;
    /// `−∞`
    const NEG_INFINITY: Self;
    /// True for `f32` (the type of the vectorised piecewise-linear kernels).
    const IS_F32: bool;
    /// Conversion from `f64` (rounding).
    fn from_f64(v: f64) -> Self;
    /// Conversion to `f64` (exact).
    fn to_f64(self) -> f64;
    /// `e^x` for `x` in `[EXP_MIN, EXP_MAX]`; branch-free so loops over it vectorise.
    fn exp_k(self) -> Self;
    /// `2^x` for `x` in `[EXP_MIN, EXP_MAX]·log₂e`; branch-free so loops over it vectorise.
    fn exp2_k(self) -> Self;
    /// `self·b + c` with one rounding (a fused multiply-add: `vfmadd` on the vector paths,
    /// libm's `fma` on the baseline, the same bits on each).
    fn fma_k(self, b: Self, c: Self) -> Self;
    /// Absolute value.
    fn abs_k(self) -> Self;
    /// True for NaN.
    fn is_nan_k(self) -> bool;
    /// `min(self, other)`
    fn min_k(self, other: Self) -> Self;
    /// `max(self, other)`
    fn max_k(self, other: Self) -> Self;
    /// True unless infinite or NaN.
    fn is_finite_k(self) -> bool;
    /// An integer that orders non-NaN floats as they compare, one step per float (`−0` just
    /// below `+0`).
    fn to_ordered(self) -> i64;
    /// Inverse of [`KernelFloat::to_ordered`].
    fn from_ordered(o: i64) -> Self;
}

impl KernelFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const EPSILON: Self = f32::EPSILON;
    const EXP_MAX: Self = 88.3;
    const EXP_MIN: Self = -87.3;
    const INFINITY: Self = f32::INFINITY;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const IS_F32: bool = true;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    /// Cephes-style `expf`: `2^n · p(r)` with `n = round(x·log2 e)`, `|r| ≤ ln2/2`, a degree-6
    /// polynomial (relative error ~2 ulp) evaluated with fused multiply-adds. Rounding and the
    /// `2^n` scale use bit tricks, so the function has no branch and, on the vector paths, no
    /// libm call (hand-written: std's `exp` does not vectorise).
    #[inline(always)]
    fn exp_k(self) -> Self {
        const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
        let x = self.clamp(Self::EXP_MIN, Self::EXP_MAX);
        let t = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
        let n = t - MAGIC;
        // ln 2 in two parts: n·0.693359375 is exact for the n that occur.
        let r = n.mul_add(-0.693_359_4, x);
        let r = n.mul_add(2.121_944_4e-4, r);
        let mut p = 1.987_569_1e-4_f32;
        p = p.mul_add(r, 1.398_199_9e-3);
        p = p.mul_add(r, 8.333_452e-3);
        p = p.mul_add(r, 4.166_579_6e-2);
        p = p.mul_add(r, 1.666_666_5e-1);
        p = p.mul_add(r, 0.5);
        let e = p.mul_add(r * r, r) + 1.0;
        // The low mantissa bits of `t` hold n (two's complement around MAGIC's pattern).
        let bits = t.to_bits().wrapping_sub(0x4B40_0000_u32.wrapping_sub(127)) << 23;
        e * f32::from_bits(bits)
    }
    /// Cephes-style `exp2f`: `2^n · p(f)` with `n = round(x)`, `|f| ≤ 1/2`, a degree-6
    /// polynomial in fused multiply-adds (relative error ~2 ulp); the same bit tricks as
    /// [`KernelFloat::exp_k`], three operations fewer (no `ln 2` reduction).
    #[inline(always)]
    fn exp2_k(self) -> Self {
        const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
        let x = self.clamp(
            Self::EXP_MIN * std::f32::consts::LOG2_E,
            Self::EXP_MAX * std::f32::consts::LOG2_E,
        );
        let t = x + MAGIC;
        let n = t - MAGIC;
        let f = x - n;
        let mut p = 1.535_336_2e-4_f32;
        p = p.mul_add(f, 1.339_887_4e-3);
        p = p.mul_add(f, 9.618_437e-3);
        p = p.mul_add(f, 5.550_332_5e-2);
        p = p.mul_add(f, 2.402_264_8e-1);
        p = p.mul_add(f, 6.931_472e-1);
        let e = p.mul_add(f, 1.0);
        let bits = t.to_bits().wrapping_sub(0x4B40_0000_u32.wrapping_sub(127)) << 23;
        e * f32::from_bits(bits)
    }
    #[inline(always)]
    fn fma_k(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
    #[inline(always)]
    fn abs_k(self) -> Self {
        self.abs()
    }
    #[inline(always)]
    fn is_nan_k(self) -> bool {
        self.is_nan()
    }
    #[inline(always)]
    fn min_k(self, other: Self) -> Self {
        self.min(other)
    }
    #[inline(always)]
    fn max_k(self, other: Self) -> Self {
        self.max(other)
    }
    #[inline(always)]
    fn is_finite_k(self) -> bool {
        self.is_finite()
    }
    // Negative floats' magnitude bits flipped (an involution), without a branch on the sign:
    // the table build orders thresholds of random signs.
    #[inline(always)]
    fn to_ordered(self) -> i64 {
        let b = self.to_bits() as i32;
        (b ^ ((b >> 31) & i32::MAX)) as i64
    }
    #[inline(always)]
    fn from_ordered(o: i64) -> Self {
        let o = o as i32;
        f32::from_bits((o ^ ((o >> 31) & i32::MAX)) as u32)
    }
}

impl KernelFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const EPSILON: Self = f64::EPSILON;
    const EXP_MAX: Self = 709.0;
    const EXP_MIN: Self = -708.0;
    const INFINITY: Self = f64::INFINITY;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const IS_F32: bool = false;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_k(self) -> Self {
        self.clamp(Self::EXP_MIN, Self::EXP_MAX).exp()
    }
    #[inline(always)]
    fn exp2_k(self) -> Self {
        self.clamp(
            Self::EXP_MIN * std::f64::consts::LOG2_E,
            Self::EXP_MAX * std::f64::consts::LOG2_E,
        )
        .exp2()
    }
    #[inline(always)]
    fn fma_k(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
    #[inline(always)]
    fn abs_k(self) -> Self {
        self.abs()
    }
    #[inline(always)]
    fn is_nan_k(self) -> bool {
        self.is_nan()
    }
    #[inline(always)]
    fn min_k(self, other: Self) -> Self {
        self.min(other)
    }
    #[inline(always)]
    fn max_k(self, other: Self) -> Self {
        self.max(other)
    }
    #[inline(always)]
    fn is_finite_k(self) -> bool {
        self.is_finite()
    }
    #[inline(always)]
    fn to_ordered(self) -> i64 {
        let b = self.to_bits() as i64;
        b ^ ((b >> 63) & i64::MAX)
    }
    #[inline(always)]
    fn from_ordered(o: i64) -> Self {
        f64::from_bits((o ^ ((o >> 63) & i64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::KernelFloat;

    #[test]
    fn ordered_floats_round_trip_and_keep_order() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -1.0,
            -1e-40,
            -0.0,
            0.0,
            1e-40,
            1.0,
            1e30,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(w[0].to_ordered() < w[1].to_ordered(), "{w:?}");
        }
        for &x in &xs {
            assert_eq!(f32::from_ordered(x.to_ordered()).to_bits(), x.to_bits());
            let d = x as f64;
            assert_eq!(f64::from_ordered(d.to_ordered()).to_bits(), d.to_bits());
        }
    }

    /// `exp_k` and `exp2_k` in `f32` against `f64`'s `exp`/`exp2`: within 4 ulp over the
    /// whole clamped range, finite and positive beyond it, and the same bits through the
    /// scalar and the vectorised code (one loop over many values).
    #[test]
    fn exp_kernels_match_f64_to_a_few_ulp() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.0437 + 0.001).collect();
        let e: Vec<f32> = xs.iter().map(|x| x.exp_k()).collect();
        let e2: Vec<f32> = xs.iter().map(|x| x.exp2_k()).collect();
        for ((&x, &a), &b) in xs.iter().zip(&e).zip(&e2) {
            let ex = f64::from(x.clamp(f32::EXP_MIN, f32::EXP_MAX)).exp();
            assert!(
                (f64::from(a) - ex).abs() <= 4.0 * f64::from(f32::EPSILON) * ex,
                "exp_k({x}) = {a}, exact {ex}"
            );
            let lo = f32::EXP_MIN * std::f32::consts::LOG2_E;
            let hi = f32::EXP_MAX * std::f32::consts::LOG2_E;
            let ex2 = f64::from(x.clamp(lo, hi)).exp2();
            assert!(
                (f64::from(b) - ex2).abs() <= 4.0 * f64::from(f32::EPSILON) * ex2,
                "exp2_k({x}) = {b}, exact {ex2}"
            );
        }
        for x in [f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 200.0, -200.0] {
            for v in [x.exp_k(), x.exp2_k()] {
                assert!(v.is_finite() && v > 0.0, "{x}: {v}");
            }
        }
    }
}
