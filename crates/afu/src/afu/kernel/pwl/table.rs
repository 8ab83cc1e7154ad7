//! One channel's relu-family AFU as an exact piecewise-linear function: its sorted
//! thresholds and the slope and intercept on each interval between them ([`PwlTable`]), the
//! per-interval statistics of a backward pass ([`IntervalSums`]) and how they become the
//! parameter gradients ([`PwlTable::finish`]).
//!
//! **Exact thresholds.** The reference decides a unit's side from the rounded
//! `u = fl(fl(w0·x) + b0) > 0`. Rounding is monotone, so for `w0 > 0` the set of floats `x`
//! with `u > 0` is exactly `{x > θ}` for one float `θ`, and for `w0 < 0` it is `{x ≤ θ}`;
//! [`threshold`] finds that `θ` by bisection over the ordered floats. The interval of an
//! element is the number of thresholds strictly below it, so every element — also one exactly
//! on a kink, or within rounding distance of it — gets the reference's side for every unit
//! (and its subgradient convention, `ψ'(0) = α`) without any per-element special case.
//!
//! Portable code only: the AVX-512 kernels that find and sort thresholds faster are chosen by
//! the caller ([`super`]), which hands their results in (`direct`, `sort_keys`).

use crate::afu::kernel::layout::ParamSlices;
use crate::ops::float::KernelFloat;

/// `G` of one AFU as `A_j·x + B_j` on each interval between its sorted thresholds.
pub(super) struct PwlTable<T> {
    /// Sorted thresholds (`K` of them): interval `j` holds the `x` with exactly `j` thresholds
    /// strictly below.
    pub(super) thresholds: Vec<T>,
    /// Slope on each of the `K + 1` intervals.
    pub(super) a: Vec<T>,
    /// Intercept on each interval.
    pub(super) b: Vec<T>,
    /// The units with a threshold, in the order of their thresholds (the others: `w0 = 0`, or
    /// a linear base).
    units: Vec<usize>,
}

/// The largest float `θ` such that `x > θ` decides unit `(w0, b0)`'s side exactly as the
/// rounded `fl(fl(w0·x) + b0) > 0` does: for `w0 > 0` the unit is active iff `x > θ`, for
/// `w0 < 0` iff `!(x > θ)`. `None` for `w0 = 0` or non-finite parameters.
pub(super) fn threshold<T: KernelFloat>(w0: T, b0: T) -> Option<T> {
    if !(w0.is_finite_k() && b0.is_finite_k()) || w0 == T::ZERO {
        return None;
    }
    let rising = w0 > T::ZERO;
    // True on the upper side (x above the threshold); monotone in x.
    let upper = |x: T| (w0 * x + b0 > T::ZERO) == rising;
    let (bottom, top) = (T::NEG_INFINITY.to_ordered(), T::INFINITY.to_ordered());
    if upper(T::from_ordered(bottom)) || !upper(T::from_ordered(top)) {
        return None;
    }
    // Bracket [lo, hi] (lo below, hi above) by steps doubling away from the real-number root,
    // which is at most a few floats from the threshold; then bisect.
    let guess = T::from_f64(-b0.to_f64() / w0.to_f64())
        .to_ordered()
        .clamp(bottom, top);
    let (mut lo, mut hi);
    if upper(T::from_ordered(guess)) {
        hi = guess;
        let mut step = 1i64;
        loop {
            lo = hi.saturating_sub(step).max(bottom);
            if lo == bottom || !upper(T::from_ordered(lo)) {
                break;
            }
            hi = lo;
            step = step.saturating_mul(2);
        }
    } else {
        lo = guess;
        let mut step = 1i64;
        loop {
            hi = lo.saturating_add(step).min(top);
            if hi == top || upper(T::from_ordered(hi)) {
                break;
            }
            lo = hi;
            step = step.saturating_mul(2);
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if upper(T::from_ordered(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(T::from_ordered(lo))
}

impl<T: KernelFloat> PwlTable<T> {
    /// The table of channel `c`, its units sorted by `sort` (see [`sorted_thresholds_by_unit`]
    /// for what it returns); `None` when some parameter is not finite (the caller then uses
    /// the direct path).
    pub(super) fn new(
        p: &ParamSlices<T>,
        c: usize,
        alpha: f64,
        sort: impl FnOnce(&[T], &[T], f64) -> Option<(Vec<usize>, Vec<T>)>,
    ) -> Option<Self> {
        let (w0, b0, w1, b1) = p.channel(c);
        if !(w1.iter().all(|v| v.is_finite_k()) && b1.is_finite_k()) {
            return None;
        }
        let (units, thresholds) = sort(w0, b0, alpha)?;
        let k = units.len();
        // G on interval 0 (x below every threshold), then one unit changes slope per threshold.
        let mut a = vec![T::ZERO; k + 1];
        let mut b = vec![T::ZERO; k + 1];
        let below = below_thresholds(w0, b0, w1, *b1, alpha);
        crossing_sums(&units, (w0, b0, w1), alpha, below, &mut a, &mut b);
        Some(PwlTable {
            thresholds,
            a,
            b,
            units,
        })
    }

    /// The interval of `x`: the number of thresholds strictly below it (0 for NaN).
    #[inline(always)]
    pub(super) fn interval(&self, x: T) -> usize {
        self.thresholds.partition_point(|&t| t < x)
    }

    /// Turns the summed per-interval statistics into the parameter gradients of channel `c`,
    /// written to `out` (one channel's).
    pub(super) fn finish(
        &self,
        p: &ParamSlices<T>,
        c: usize,
        alpha: f64,
        sums: &IntervalSums,
        mut out: ChannelGrads<'_, T>,
    ) {
        let (w0, b0, w1, _) = p.channel(c);
        let (mut t0, mut t1) = (0.0f64, 0.0f64);
        for (&s0, &s1) in sums.s0.iter().zip(&sums.s1) {
            t0 += s0;
            t1 += s1;
        }
        // ψ(u) = s·u = s·(w0·x + b0), given Σ gy·s and Σ gy·s·x (s: the unit's slope at each
        // element).
        let put = |out: &mut ChannelGrads<'_, T>, i: usize, sg: f64, sgx: f64| {
            let (a, b, w) = (w0[i].to_f64(), b0[i].to_f64(), w1[i].to_f64());
            out.w1[i] = T::from_f64(a * sgx + b * sg);
            out.w0[i] = T::from_f64(w * sgx);
            out.b0[i] = T::from_f64(w * sg);
        };
        if self.units.len() < w0.len() {
            // Units without a threshold have one slope everywhere (those with one are
            // overwritten below).
            for (i, &b) in b0.iter().enumerate() {
                let s = if alpha == 1.0 || b > T::ZERO {
                    1.0
                } else {
                    alpha
                };
                put(&mut out, i, s * t0, s * t1);
            }
        }
        // The units in threshold order: the sums over the intervals up to each one's threshold
        // (x ≤ θ) are prefix sums, added as they are reached.
        let (mut l0, mut l1) = (0.0f64, 0.0f64);
        for ((&i, &s0), &s1) in self.units.iter().zip(&sums.s0).zip(&sums.s1) {
            l0 += s0;
            l1 += s1;
            // Active above θ for w0 > 0 (a select, not a branch: the signs of w0 are random,
            // a branch on them mispredicted half the time).
            let up = w0[i] > T::ZERO;
            let act0 = if up { t0 - l0 } else { l0 };
            let act1 = if up { t1 - l1 } else { l1 };
            put(
                &mut out,
                i,
                alpha * t0 + (1.0 - alpha) * act0,
                alpha * t1 + (1.0 - alpha) * act1,
            );
        }
        *out.b1 = T::from_f64(t0);
    }
}

/// One channel's parameter gradients, written by [`PwlTable::finish`].
pub(super) struct ChannelGrads<'a, T> {
    /// `[N]`
    pub(super) w0: &'a mut [T],
    /// `[N]`
    pub(super) b0: &'a mut [T],
    /// `[N]`
    pub(super) w1: &'a mut [T],
    /// The channel's `b1`.
    pub(super) b1: &'a mut T,
}

/// `G`'s slope and intercept below every threshold (`b1` included): the units' terms added in
/// unit order. The two sums here and in [`crossing_sums`] are chains of dependent additions,
/// kept in functions of their own so that they stay in registers (inlined into the loops that
/// find and sort the thresholds, every step went through the stack).
#[inline(never)]
fn below_thresholds<T: KernelFloat>(w0: &[T], b0: &[T], w1: &[T], b1: T, alpha: f64) -> (f64, f64) {
    let (mut aj, mut bj) = (0.0f64, b1.to_f64());
    for ((&w0, &b0), &w1) in w0.iter().zip(b0).zip(w1) {
        let kinked = alpha != 1.0 && w0 != T::ZERO;
        let s = slope_below_thresholds(w0, b0, kinked, alpha);
        aj += w1.to_f64() * s * w0.to_f64();
        bj += w1.to_f64() * s * b0.to_f64();
    }
    (aj, bj)
}

/// The slope and intercept on every interval (`a`, `b`: `K + 1` entries): `start` below every
/// threshold, then the change of the unit crossing each threshold, `units` in threshold order.
#[inline(never)]
fn crossing_sums<T: KernelFloat>(
    units: &[usize],
    (w0, b0, w1): (&[T], &[T], &[T]),
    alpha: f64,
    start: (f64, f64),
    a: &mut [T],
    b: &mut [T],
) {
    let (mut aj, mut bj) = start;
    (a[0], b[0]) = (T::from_f64(aj), T::from_f64(bj));
    for ((&i, a), b) in units.iter().zip(&mut a[1..]).zip(&mut b[1..]) {
        // Crossing θ: w0 > 0 turns the unit on (α → 1), w0 < 0 turns it off (1 → α).
        let change = if w0[i] > T::ZERO {
            1.0 - alpha
        } else {
            alpha - 1.0
        };
        aj += w1[i].to_f64() * change * w0[i].to_f64();
        bj += w1[i].to_f64() * change * b0[i].to_f64();
        (*a, *b) = (T::from_f64(aj), T::from_f64(bj));
    }
}

/// The units that have a threshold (`w0 ≠ 0`, a base with a kink), sorted by threshold and
/// then by unit, and their thresholds, found unit by unit: `direct[i]` where it holds unit
/// `i`'s threshold (the vector kernels' direct thresholds, which are the bisection's; empty
/// for none), else by [`threshold`]'s bisection. `sort_keys` sorts packed `f32` keys (see
/// [`sort_by_threshold_then_unit`]). `None` when some `w0` or `b0` is not finite or some
/// threshold cannot be found.
pub(super) fn sorted_thresholds_by_unit<T: KernelFloat>(
    w0: &[T],
    b0: &[T],
    alpha: f64,
    direct: &[Option<T>],
    sort_keys: impl FnOnce(&mut [u64]),
) -> Option<(Vec<usize>, Vec<T>)> {
    // (threshold as an ordered integer, unit).
    let mut order: Vec<(i64, usize)> = Vec::with_capacity(w0.len());
    for i in 0..w0.len() {
        if !(w0[i].is_finite_k() && b0[i].is_finite_k()) {
            return None;
        }
        if alpha != 1.0 && w0[i] != T::ZERO {
            let t = match direct.get(i).copied().flatten() {
                Some(t) => t,
                None => threshold(w0[i], b0[i])?,
            };
            order.push((t.to_ordered(), i));
        }
    }
    sort_by_threshold_then_unit::<T>(&mut order, sort_keys);
    Some((
        order.iter().map(|&(_, i)| i).collect(),
        order.iter().map(|&(t, _)| T::from_ordered(t)).collect(),
    ))
}

/// The sort key of an `f32` threshold (as an ordered integer) and its unit: the threshold's
/// order-preserving 32 bits (sign bit flipped) above the unit's.
pub(super) fn threshold_key(t: i64, unit: usize) -> u64 {
    (u64::from((t as i32 as u32) ^ 0x8000_0000) << 32) | unit as u64
}

/// The threshold (as an ordered integer) of a [`threshold_key`].
pub(super) fn key_threshold(key: u64) -> i64 {
    i64::from(((key >> 32) as u32 ^ 0x8000_0000) as i32)
}

/// Sorts `(ordered threshold, unit)` pairs by threshold, then by unit (a deterministic order
/// for coinciding thresholds). For `f32` each pair is packed into one `u64` key, the
/// threshold's 32 bits above the unit's, and the keys sorted by `sort_keys` (which must sort
/// them in increasing order): one integer per pair sorts faster than the pairs.
pub(super) fn sort_by_threshold_then_unit<T: KernelFloat>(
    order: &mut [(i64, usize)],
    sort_keys: impl FnOnce(&mut [u64]),
) {
    // Units are pushed in increasing order, so the last one is the largest.
    let units_fit = order.last().is_none_or(|&(_, i)| u32::try_from(i).is_ok());
    if !(T::IS_F32 && units_fit) {
        order.sort_unstable();
        return;
    }
    // f32 ordered values lie within the i32 range; flipping the sign bit orders them unsigned.
    let mut keys: Vec<u64> = order.iter().map(|&(t, i)| threshold_key(t, i)).collect();
    sort_keys(&mut keys);
    for (pair, key) in order.iter_mut().zip(keys) {
        *pair = (key_threshold(key), key as u32 as usize);
    }
}

/// Slope (1 or `alpha`) of a unit on interval 0, below every threshold: a unit with a
/// threshold (`kinked`) is active there iff `w0 < 0`; one without (`w0 = 0`, or a linear base)
/// is active everywhere or nowhere.
fn slope_below_thresholds<T: KernelFloat>(w0: T, b0: T, kinked: bool, alpha: f64) -> f64 {
    let active = if kinked {
        w0 < T::ZERO
    } else {
        alpha == 1.0 || b0 > T::ZERO
    };
    if active { 1.0 } else { alpha }
}

/// Per-interval `Σ gy` and `Σ gy·x` (`f64`), one work item's or a channel's.
#[derive(Debug, Clone)]
pub(super) struct IntervalSums {
    /// `Σ gy` per interval.
    pub(super) s0: Vec<f64>,
    /// `Σ gy·x` per interval.
    pub(super) s1: Vec<f64>,
}

impl IntervalSums {
    /// Zero sums over `intervals` intervals.
    pub(super) fn new(intervals: usize) -> Self {
        IntervalSums {
            s0: vec![0.0; intervals],
            s1: vec![0.0; intervals],
        }
    }

    /// Adds `o`'s sums, interval by interval.
    pub(super) fn add(&mut self, o: &IntervalSums) {
        for j in 0..self.s0.len() {
            self.s0[j] += o.s0[j];
            self.s1[j] += o.s1[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The side a unit takes in the reference, `fl(fl(w0·x) + b0) > 0`, against `x > θ`.
    fn check_threshold<T: KernelFloat + std::fmt::Debug>(w0: T, b0: T, xs: &[T]) {
        let theta = threshold(w0, b0).expect("finite, nonzero w0");
        for &x in xs {
            let active = w0 * x + b0 > T::ZERO;
            let above = x > theta;
            assert_eq!(
                active,
                above == (w0 > T::ZERO),
                "w0={w0:?} b0={b0:?} x={x:?} θ={theta:?}"
            );
        }
    }

    /// Floats around the threshold, a few ulps either side, plus far ones and ±0, ±inf.
    fn probes<T: KernelFloat>(w0: T, b0: T) -> Vec<T> {
        let t = T::from_f64(-b0.to_f64() / w0.to_f64());
        let o = t.to_ordered();
        let mut xs: Vec<T> = (-40..=40).map(|d| T::from_ordered(o + d)).collect();
        xs.extend([
            T::ZERO,
            T::ZERO * T::from_f64(-1.0),
            T::INFINITY,
            T::NEG_INFINITY,
            T::from_f64(1e30),
            T::from_f64(-1e30),
        ]);
        xs
    }

    #[test]
    fn thresholds_decide_exactly_like_the_rounded_unit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let w0: f64 = rng.random_range(-3.0..3.0) * 10f64.powi(rng.random_range(-6..6));
            let b0: f64 = rng.random_range(-3.0..3.0) * 10f64.powi(rng.random_range(-6..6));
            if w0 == 0.0 {
                continue;
            }
            let (w32, b32) = (w0 as f32, b0 as f32);
            check_threshold(w32, b32, &probes(w32, b32));
            check_threshold(w0, b0, &probes(w0, b0));
        }
        // Exact kinks, zero bias, and tiny/huge slopes.
        for (w0, b0) in [
            (2.0f32, -1.0f32),
            (-4.0, 2.0),
            (1.0, 0.0),
            (-1.0, 0.0),
            (1e-30, 1.0),
            (3e30, -2.0),
            (0.1, 0.3),
        ] {
            check_threshold(w0, b0, &probes(w0, b0));
        }
        assert!(threshold(0.0f32, 1.0).is_none());
        assert!(threshold(f32::NAN, 1.0).is_none());
        assert!(threshold(1.0f32, f32::INFINITY).is_none());
    }

    /// Pairs packed into keys sort as the pairs do (ties by unit), for `f32`; `f64` sorts the
    /// pairs themselves.
    #[test]
    fn packed_sort_orders_like_the_pairs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [0, 1, 2, 7, 128, 300] {
            // Few distinct values, so that ties (sorted by unit) are common; both signs, ±0.
            let values = [-3.5f32, -0.0, 0.0, 1e-40, 2.25, f32::MAX, -f32::MAX];
            let mut order: Vec<(i64, usize)> = (0..n)
                .map(|i| (values[rng.random_range(0..values.len())].to_ordered(), i))
                .collect();
            let mut expected = order.clone();
            expected.sort_unstable();
            sort_by_threshold_then_unit::<f32>(&mut order, |keys| keys.sort_unstable());
            assert_eq!(order, expected, "n={n}");
        }
    }
}
