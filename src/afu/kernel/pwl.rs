//! Relu-family AFUs (linear, relu, leaky-relu) as exact piecewise-linear functions.
//!
//! With `ψ(u) = u` for `u > 0` and `α·u` otherwise, `G(x) = Σ w1ᵢ·ψ(w0ᵢ·x + b0ᵢ) + b1` is
//! `A_j·x + B_j` on each interval `j` between the units' thresholds. One interval lookup per
//! element gives `y` and `G'`; the parameter gradients come from per-interval sums of `gy` and
//! `gy·x`: the cost hardly depends on `N`.
//!
//! **Exact thresholds.** The reference decides a unit's side from the rounded
//! `u = fl(fl(w0·x) + b0) > 0`. Rounding is monotone, so for `w0 > 0` the set of floats `x`
//! with `u > 0` is exactly `{x > θ}` for one float `θ`, and for `w0 < 0` it is `{x ≤ θ}`;
//! [`threshold`] finds that `θ` by bisection over the ordered floats. The interval of an
//! element is the number of thresholds strictly below it, so every element — also one exactly
//! on a kink, or within rounding distance of it — gets the reference's side for every unit
//! (and its subgradient convention, `ψ'(0) = α`) without any per-element special case.
//!
//! Kernels per run of contiguous elements: a portable one (any float type, any CPU) here, and
//! AVX-512 ones for `f32` in [`super::pwl_avx512`].

use std::sync::OnceLock;

use super::cpu::{
    Item, KernelFloat, Layout, ParamGrads, ParamSlices, SharedMut, for_each_run, par_map,
    with_item_runs,
};

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
    /// The table of channel `c`; `None` when some parameter is not finite (the caller then uses
    /// the per-unit path).
    pub(super) fn new(p: &ParamSlices<T>, c: usize, alpha: f64) -> Option<Self> {
        let (w0, b0, w1, b1) = p.channel(c);
        if !(w1.iter().all(|v| v.is_finite_k()) && b1.is_finite_k()) {
            return None;
        }
        let (units, thresholds) = sorted_thresholds(w0, b0, alpha)?;
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
    fn interval(&self, x: T) -> usize {
        self.thresholds.partition_point(|&t| t < x)
    }

    /// Turns the summed per-interval statistics into the parameter gradients of channel `c`,
    /// written to `out` (one channel's).
    fn finish(
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
struct ChannelGrads<'a, T> {
    w0: &'a mut [T],
    b0: &'a mut [T],
    w1: &'a mut [T],
    b1: &'a mut T,
}

/// `G`'s slope and intercept below every threshold (`b1` included): the units' terms added in
/// unit order. The two sums here and in [`crossing_sums`] are chains of dependent additions; in
/// functions of their own they stay in registers (inside the loops that find and sort the
/// thresholds, around their calls, every step went through the stack).
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
/// then by unit, and their thresholds; `None` when some `w0` or `b0` is not finite or some
/// threshold cannot be found.
fn sorted_thresholds<T: KernelFloat>(
    w0: &[T],
    b0: &[T],
    alpha: f64,
) -> Option<(Vec<usize>, Vec<T>)> {
    #[cfg(target_arch = "x86_64")]
    if w0.len() <= super::pwl_avx512::SORT_MAX && super::pwl_avx512::FastTable::available::<T>() {
        thread_local! {
            /// This thread's buffer for the sort keys, reused from one table to the next.
            static KEYS: std::cell::Cell<Vec<u64>> = const { std::cell::Cell::new(Vec::new()) };
        }
        // The keys of `sort_by_threshold_then_unit` built 16 units at a time, and sorted by
        // the vector network.
        let mut keys = KEYS.take();
        keys.clear();
        let mut rest = Vec::new();
        // SAFETY: T is f32 (`available`), so the slices are f32 slices, and the CPU has the
        // features the kernel needs; fewer than 2³² units.
        let finite = unsafe {
            let f32s = |v: &[T]| std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len());
            super::pwl_avx512::threshold_keys(f32s(w0), f32s(b0), &mut keys, &mut rest)
        };
        let sorted = (|| {
            if !finite {
                return None;
            }
            if alpha == 1.0 {
                return Some((Vec::new(), Vec::new()));
            }
            for i in rest {
                keys.push(threshold_key(threshold(w0[i], b0[i])?.to_ordered(), i));
            }
            sort_keys::<T>(&mut keys);
            let units = keys.iter().map(|&key| key as u32 as usize).collect();
            let thresholds = keys
                .iter()
                .map(|&key| T::from_ordered(key_threshold(key)))
                .collect();
            Some((units, thresholds))
        })();
        KEYS.set(keys);
        return sorted;
    }
    sorted_thresholds_portable(w0, b0, alpha)
}

/// [`sorted_thresholds`] unit by unit, with the standard sort.
fn sorted_thresholds_portable<T: KernelFloat>(
    w0: &[T],
    b0: &[T],
    alpha: f64,
) -> Option<(Vec<usize>, Vec<T>)> {
    // Most thresholds 16 at a time where the CPU can (the rest by bisection).
    let fast = fast_thresholds(w0, b0);
    // (threshold as an ordered integer, unit).
    let mut order: Vec<(i64, usize)> = Vec::with_capacity(w0.len());
    for i in 0..w0.len() {
        if !(w0[i].is_finite_k() && b0[i].is_finite_k()) {
            return None;
        }
        if alpha != 1.0 && w0[i] != T::ZERO {
            let t = match fast.get(i).copied().flatten() {
                Some(t) => t,
                None => threshold(w0[i], b0[i])?,
            };
            order.push((t.to_ordered(), i));
        }
    }
    sort_by_threshold_then_unit::<T>(&mut order);
    Some((
        order.iter().map(|&(_, i)| i).collect(),
        order.iter().map(|&(t, _)| T::from_ordered(t)).collect(),
    ))
}

/// The sort key of an `f32` threshold (as an ordered integer) and its unit: the threshold's
/// order-preserving 32 bits (sign bit flipped) above the unit's.
fn threshold_key(t: i64, unit: usize) -> u64 {
    (u64::from((t as i32 as u32) ^ 0x8000_0000) << 32) | unit as u64
}

/// The threshold (as an ordered integer) of a [`threshold_key`].
fn key_threshold(key: u64) -> i64 {
    i64::from(((key >> 32) as u32 ^ 0x8000_0000) as i32)
}

/// The thresholds the vector kernels find directly (see `pwl_avx512::thresholds`), one per
/// unit (`None`: bisect), or nothing where they do not serve `T` on this CPU.
fn fast_thresholds<T: KernelFloat>(w0: &[T], b0: &[T]) -> Vec<Option<T>> {
    #[cfg(target_arch = "x86_64")]
    if super::pwl_avx512::FastTable::available::<T>() {
        let mut out = vec![None; w0.len()];
        // SAFETY: T is f32 (`available`), so the slices are f32 slices, and the CPU has the
        // features the kernel needs.
        unsafe {
            let f32s = |v: &[T]| std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len());
            let out32 =
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<Option<f32>>(), out.len());
            super::pwl_avx512::thresholds(f32s(w0), f32s(b0), out32);
        }
        return out;
    }
    Vec::new()
}

/// Sorts `(ordered threshold, unit)` pairs by threshold, then by unit (a deterministic order
/// for coinciding thresholds). For `f32` each pair is packed into one `u64` key, the
/// threshold's 32 bits above the unit's: it sorts about twice as fast as the pairs.
fn sort_by_threshold_then_unit<T: KernelFloat>(order: &mut [(i64, usize)]) {
    // Units are pushed in increasing order, so the last one is the largest.
    let units_fit = order.last().is_none_or(|&(_, i)| u32::try_from(i).is_ok());
    if !(T::IS_F32 && units_fit) {
        order.sort_unstable();
        return;
    }
    // f32 ordered values lie within the i32 range; flipping the sign bit orders them unsigned.
    let mut keys: Vec<u64> = order.iter().map(|&(t, i)| threshold_key(t, i)).collect();
    sort_keys::<T>(&mut keys);
    for (pair, key) in order.iter_mut().zip(keys) {
        *pair = (key_threshold(key), key as u32 as usize);
    }
}

/// Sorts `f32` keys (see [`sort_by_threshold_then_unit`]): by the vector network where the CPU
/// has one and they are few enough, else by the standard sort (the same order: keys are
/// distinct).
fn sort_keys<T: KernelFloat>(keys: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if keys.len() <= super::pwl_avx512::SORT_MAX && super::pwl_avx512::FastTable::available::<T>() {
        // SAFETY: `available` checked the CPU's features.
        unsafe { super::pwl_avx512::sort_keys(keys) };
        return;
    }
    keys.sort_unstable();
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
    pub(super) s0: Vec<f64>,
    pub(super) s1: Vec<f64>,
}

impl IntervalSums {
    pub(super) fn new(intervals: usize) -> Self {
        IntervalSums {
            s0: vec![0.0; intervals],
            s1: vec![0.0; intervals],
        }
    }

    fn add(&mut self, o: &IntervalSums) {
        for j in 0..self.s0.len() {
            self.s0[j] += o.s0[j];
            self.s1[j] += o.s1[j];
        }
    }
}

/// The tables of every channel, with their AVX-512 forms where the CPU and `T` allow. With
/// several channels, each one's is built on first use, by the work item that needs it: the
/// building (~2 µs per channel of 128 units) is then spread over the threads with the
/// kernels' own work, where a parallel loop of its own mostly ran on the calling thread while
/// the others woke up.
pub(super) struct Tables<T> {
    alpha: f64,
    /// Whether the vector kernels serve these tables (decided before any is built).
    vectorised: bool,
    built: Vec<OnceLock<Built<T>>>,
}

/// Fewest channels whose tables are built on first use rather than by [`Tables::new`].
const LAZY_TABLES_MIN: usize = 4;

/// One channel's table, and its vector forms when [`Tables`] is vectorised.
struct Built<T> {
    table: PwlTable<T>,
    #[cfg(target_arch = "x86_64")]
    fast: Option<super::pwl_avx512::FastTable>,
}

impl<T: KernelFloat> Tables<T> {
    /// Tables for the `channels` channels of `p` (built later, on first use); `None` when some
    /// parameter is not finite.
    pub(super) fn new(p: &ParamSlices<T>, channels: usize, alpha: f64) -> Option<Self> {
        let finite = |v: &[T]| v.iter().all(|x| x.is_finite_k());
        if !(finite(p.w0) && finite(p.b0) && finite(p.w1) && finite(p.b1)) {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let vectorised = super::pwl_avx512::FastTable::available::<T>()
            && p.hidden <= super::pwl_avx512::MAX_THRESHOLDS;
        #[cfg(not(target_arch = "x86_64"))]
        let vectorised = false;
        let tables = Tables {
            alpha,
            vectorised,
            built: (0..channels).map(|_| OnceLock::new()).collect(),
        };
        // A few channels are built here, at once: built by the work items, they would keep the
        // other threads waiting (all the items of one channel start together).
        if channels < LAZY_TABLES_MIN {
            for c in 0..channels {
                tables.channel(p, c);
            }
        }
        Some(tables)
    }

    /// True when the vectorised (AVX-512) kernels serve these tables.
    pub(super) fn vectorised(&self) -> bool {
        self.vectorised
    }

    /// Channel `c`'s table (built from `p`, the parameters [`Tables::new`] was given, on first
    /// use).
    fn channel(&self, p: &ParamSlices<T>, c: usize) -> &Built<T> {
        self.built[c].get_or_init(|| {
            // Finite parameters (checked by `new`) always have a table: every unit with
            // w0 ≠ 0 has a threshold.
            let table = PwlTable::new(p, c, self.alpha)
                .expect("finite parameters always have a piecewise-linear table");
            Built {
                #[cfg(target_arch = "x86_64")]
                fast: self
                    .vectorised
                    .then(|| super::pwl_avx512::FastTable::new(&table))
                    .flatten(),
                table,
            }
        })
    }
}

/// `y = G(x)` over all work items.
pub(super) fn forward<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    items: &[Item],
    p: &ParamSlices<T>,
    tables: &Tables<T>,
    out: SharedMut<T>,
) {
    par_map(items.len(), |i| {
        let item = items[i];
        let built = tables.channel(p, item.channel);
        // SAFETY: runs of different items are disjoint and within `x` and `out`.
        with_item_runs(layout, item, |runs| unsafe {
            forward_built(built, x, runs, out)
        });
    });
}

/// `y = G(x)` over `runs` with one channel's tables: the vector kernel where it has one, else
/// the portable loop.
///
/// # Safety
/// The runs must lie within `x` and the buffer behind `out`, and no other thread may access
/// those elements of it; without a vector table that buffer must be initialised (see
/// `cpu::forward_to_vec`: it is whenever the tables are not vectorised).
unsafe fn forward_built<T: KernelFloat>(
    built: &Built<T>,
    x: &[T],
    runs: &[(usize, usize)],
    out: SharedMut<T>,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(fast) = &built.fast {
        // SAFETY: `fast` exists only when T is f32 and the CPU has AVX-512; the rest is the
        // caller's contract.
        unsafe { super::pwl_avx512::forward_runs(fast, x, out.0, runs) };
        return;
    }
    for &(off, len) in runs {
        // SAFETY: caller's contract.
        let ys = unsafe { out.slice(off, len) };
        forward_run(&built.table, &x[off..off + len], ys);
    }
}

/// Portable forward over one run.
fn forward_run<T: KernelFloat>(table: &PwlTable<T>, xs: &[T], ys: &mut [T]) {
    for (y, &x) in ys.iter_mut().zip(xs) {
        let j = table.interval(x);
        *y = table.a[j] * x + table.b[j];
    }
}

/// Portable backward over one run: `g` holds `gy` on entry and `gx` on return.
fn backward_run<T: KernelFloat>(
    table: &PwlTable<T>,
    xs: &[T],
    gs: &mut [T],
    sums: &mut IntervalSums,
) {
    for (g, &x) in gs.iter_mut().zip(xs) {
        let j = table.interval(x);
        let gy = *g;
        sums.s0[j] += gy.to_f64();
        sums.s1[j] += gy.to_f64() * x.to_f64();
        *g = gy * table.a[j];
    }
}

/// `gx = gy·G'(x)` in place over all work items, and the parameter gradients.
///
/// Each item leaves its per-interval sums; the last of a channel's items to finish adds that
/// channel's sums up, in item order (the same bits whichever thread does it), and turns them
/// into the channel's gradients. The channels are thus finished inside the parallel loop, as
/// their items complete, rather than one after the other once it is over (per-channel N = 128:
/// 0.036 ms on one thread while the other waited).
pub(super) fn backward<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    items: &[Item],
    p: &ParamSlices<T>,
    tables: &Tables<T>,
    out: SharedMut<T>,
) -> ParamGrads<T> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let partials: Vec<OnceLock<IntervalSums>> = items.iter().map(|_| OnceLock::new()).collect();
    let mut per_channel = vec![0usize; layout.channels];
    for item in items {
        per_channel[item.channel] += 1;
    }
    let unfinished: Vec<AtomicUsize> = per_channel.into_iter().map(AtomicUsize::new).collect();
    let n = p.hidden;
    let mut grads = ParamGrads {
        w0: vec![T::ZERO; layout.channels * n],
        b0: vec![T::ZERO; layout.channels * n],
        w1: vec![T::ZERO; layout.channels * n],
        b1: vec![T::ZERO; layout.channels],
    };
    let outs = [
        SharedMut(grads.w0.as_mut_ptr()),
        SharedMut(grads.b0.as_mut_ptr()),
        SharedMut(grads.w1.as_mut_ptr()),
        SharedMut(grads.b1.as_mut_ptr()),
    ];
    par_map(items.len(), |i| {
        let item = items[i];
        let c = item.channel;
        let built = tables.channel(p, c);
        let table = &built.table;
        let sums = item_sums(x, layout, item, built, out);
        if partials[i].set(sums).is_err() {
            unreachable!("each work item runs once");
        }
        // AcqRel: the last item sees every other item's partial sums of its channel.
        if unfinished[c].fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut parts = items
            .iter()
            .zip(&partials)
            .filter(|(other, _)| other.channel == c)
            .map(|(_, part)| part.get().expect("every item of the channel has finished"));
        let first = parts.next().expect("the channel has this item");
        let mut total = None::<IntervalSums>;
        for part in parts {
            total.get_or_insert_with(|| first.clone()).add(part);
        }
        // SAFETY: channel c's gradients are written by its last item alone, once; the
        // buffers outlive the parallel loop.
        let out = unsafe {
            ChannelGrads {
                w0: outs[0].slice(c * n, n),
                b0: outs[1].slice(c * n, n),
                w1: outs[2].slice(c * n, n),
                b1: &mut outs[3].slice(c, 1)[0],
            }
        };
        table.finish(p, c, tables.alpha, total.as_ref().unwrap_or(first), out);
    });
    grads
}

/// One work item's backward pass: `gx` in place of its elements' `gy`, and its per-interval
/// sums.
fn item_sums<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    item: Item,
    built: &Built<T>,
    out: SharedMut<T>,
) -> IntervalSums {
    let table = &built.table;
    #[cfg(target_arch = "x86_64")]
    if let Some(fast) = &built.fast {
        thread_local! {
            /// This thread's histogram buffer, handed from one work item to the next.
            static SPARE: std::cell::Cell<Vec<[f64; 2]>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut acc = super::pwl_avx512::Accumulator::new(fast, SPARE.take());
        // SAFETY: runs of different items are disjoint and within `x` and `out`; `fast`
        // exists only when T is f32 and the CPU has AVX-512.
        with_item_runs(layout, item, |runs| unsafe {
            super::pwl_avx512::backward_runs(fast, x, out.0, runs, &mut acc)
        });
        let (sums, spare) = acc.into_sums(table.a.len());
        SPARE.set(spare);
        return sums;
    }
    let mut sums = IntervalSums::new(table.a.len());
    for_each_run(layout, item, |off, len| {
        // SAFETY: runs of different items are disjoint and within `out`.
        let gs = unsafe { out.slice(off, len) };
        backward_run(table, &x[off..off + len], gs, &mut sums);
    });
    sums
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

    /// The vector sort of threshold keys gives the standard sort's order, at every count up to
    /// its limit (partial vectors, every power of two) and past it (the fallback), on keys with
    /// equal high halves (coinciding thresholds) and extreme values.
    #[test]
    fn key_sort_matches_the_standard_sort() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in (0..=40).chain([63, 64, 65, 127, 128, 129, 255, 256, 300, 511, 512, 513, 700]) {
            let mut keys: Vec<u64> = (0..n)
                .map(|i| match rng.random_range(0..4) {
                    0 => (u64::from(rng.random_range(0..4u32)) << 32) | i as u64,
                    1 => (u64::from(u32::MAX) << 32) | i as u64,
                    _ => (u64::from(rng.random::<u32>()) << 32) | i as u64,
                })
                .collect();
            let mut expected = keys.clone();
            expected.sort_unstable();
            sort_keys::<f32>(&mut keys);
            assert_eq!(keys, expected, "n={n}");
        }
    }

    /// The vector path of the sorted thresholds (keys built 16 units at a time, the sorting
    /// network) gives what the unit-by-unit path does, on random parameters, special values
    /// (zeros, infinities, NaN: no table), coinciding thresholds and odd counts.
    #[test]
    fn sorted_thresholds_match_the_portable_path() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for n in [1usize, 3, 16, 17, 40, 128, 129, 300, 512, 513] {
            for case in 0..6 {
                let mut w0: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
                let mut b0: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
                match case {
                    1 => w0[n / 2] = 0.0,
                    2 => b0[n - 1] = f32::INFINITY,
                    3 => w0[0] = f32::NAN,
                    4 => {
                        // Coinciding thresholds, and huge and tiny slopes.
                        for i in (0..n).step_by(3) {
                            (w0[i], b0[i]) = (2.0, -1.0);
                        }
                        w0[n - 1] = 1e-30;
                        b0[0] = 3e30;
                    }
                    _ => {}
                }
                let bits = |r: Option<(Vec<usize>, Vec<f32>)>| {
                    r.map(|(u, t)| (u, t.iter().map(|t| t.to_bits()).collect::<Vec<_>>()))
                };
                for alpha in [0.0, 0.01, 1.0] {
                    assert_eq!(
                        bits(sorted_thresholds(&w0, &b0, alpha)),
                        bits(sorted_thresholds_portable(&w0, &b0, alpha)),
                        "n={n} case={case} alpha={alpha}"
                    );
                }
            }
        }
    }

    /// The vector kernels' direct thresholds are the bisection's, bit for bit, wherever they
    /// give one (and they give one for ordinary parameters), on parameters of every scale and
    /// the awkward ones (zero, signed zeros, subnormals, infinities, NaN, roots past the
    /// largest float), at odd counts (partial vectors).
    #[test]
    fn direct_thresholds_are_the_bisections() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let special = [
            0.0f32,
            -0.0,
            1e-45,
            -1e-45,
            1e-38,
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0,
            -1.0,
        ];
        for n in [1usize, 15, 16, 17, 200, 1001] {
            let mut draw = |k: usize| -> f32 {
                if k % 7 == 3 {
                    special[rng.random_range(0..special.len())]
                } else {
                    (rng.random_range(-3.0f64..3.0) * 10f64.powi(rng.random_range(-20..20))) as f32
                }
            };
            let w0: Vec<f32> = (0..n).map(&mut draw).collect();
            let b0: Vec<f32> = (0..n).map(|k| draw(k + 1)).collect();
            let fast = fast_thresholds(&w0, &b0);
            if fast.is_empty() {
                return; // no AVX-512 here: nothing to compare
            }
            let mut direct = 0;
            for i in 0..n {
                if let Some(t) = fast[i] {
                    direct += 1;
                    let bisected = threshold(w0[i], b0[i]).map(f32::to_bits);
                    assert_eq!(
                        Some(t.to_bits()),
                        bisected,
                        "w0 = {:e}, b0 = {:e}",
                        w0[i],
                        b0[i]
                    );
                }
            }
            // Most units are ordinary ones (6 in 7 are drawn without specials).
            assert!(direct * 2 >= n, "{direct} of {n} found directly");
        }
        // Ordinary units: all direct.
        let w0: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37 + 0.1).sin()).collect();
        let b0: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.71).cos()).collect();
        let fast = fast_thresholds(&w0, &b0);
        if !fast.is_empty() {
            for i in 0..64 {
                assert_eq!(fast[i], threshold(w0[i], b0[i]), "unit {i}");
            }
            assert!(fast.iter().all(Option::is_some));
        }
    }

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
            sort_by_threshold_then_unit::<f32>(&mut order);
            assert_eq!(order, expected, "n={n}");
        }
    }

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
}
