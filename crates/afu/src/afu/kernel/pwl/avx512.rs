//! AVX-512 kernels of the piecewise-linear AFU (`f32`), 16 elements per instruction.
//!
//! **Lookup.** The `K` sorted thresholds, padded with `+∞`, are cut into 32 groups of `g`
//! (the two-register layout), or, up to [`NARROW_MAX`] thresholds, into 16 groups of one (the
//! one-register layout). A branch-free binary search over the groups' last entries (a
//! broadcast compare, then three or four register permutes and compares) gives each element's
//! group `c`; a scan over the `g − 1` other entries of that group (one permute and compare
//! each) gives the position `r` in the group, so the interval `j = c·g + r`: the sorted
//! thresholds' masks are nested, so the last one set names `r`, and the interval's slope and
//! intercept come along in the same steps (permutes of tables laid out group-major, moved
//! under the compare masks). With `g = 1` the search alone decides the interval, and with
//! `K ≤ 8` the forward counts the thresholds below `x` with independent compares instead (no
//! search chain). The search is a chain of dependent steps, so the lookups of several vectors
//! ([`U_FORWARD`] or [`U_FORWARD_WIDE`] in the forward, [`U`] in the backward) are interleaved
//! step by step: their independent work fills each other's latency. The two-register layout
//! is the default from 16 thresholds on because a two-register permute costs what a
//! one-register one does (on the AVX-512 cores this was tuned on), so fewer, wider search
//! steps win; its picks are held after their compares by [`after`]. Each element also
//! prefetches its counterpart in the work item's next run (per-channel
//! runs are short and far apart), or, in the item's last run, the element 4 KB on
//! ([`prefetch_distance`]); the output's lines (the forward's `y`, the backward's `gx` in
//! place of `gy`) are prefetched for writing ([`prefetch_w`]). Runs that do not fill whole
//! chunks leave their last vectors for chunks of such tails ([`Part`]).
//!
//! **Parameter statistics.** Backward needs `Σ gy` and `Σ gy·x` per interval:
//! - `K ≤ 8`: per threshold, masked sums over the elements above it (compare + two masked
//!   adds, in 4 or 8 slots whose accumulators are named variables held in registers), in `f32`
//!   per lane over a block of [`BLOCK_VECTORS`] vectors, then added into `f64`;
//! - more thresholds: a histogram over intervals in `f64`, with [`COPIES`] interleaved copies
//!   so that runs of equal intervals do not form one long dependency chain. Its update is
//!   scalar, one read-modify-write of a bin per element, while the lookups are vector work: each chunk of [`U`] vectors buffers its
//!   elements' bin offsets and `(gy, gy·x)` pairs, and the previous chunk's update runs in
//!   slices between the steps of the next chunk's lookups, so that the core overlaps the two
//!   (see [`backward_histogram`]).
//!
//! **Exactness.** The tables come from [`PwlTable`] (built by the portable code, or with this
//! module's [`thresholds`], [`threshold_keys`] and [`sort_keys`], which give the same bits),
//! and every element takes the interval a binary search of the sorted thresholds gives, so `y`
//! and `gx` are the portable kernels' bit for bit; no fused multiply-add is formed. The
//! statistics are summed in another order, and `gy·x` is formed in `f32`: they agree with the
//! portable sums to rounding. Tested in `pwl/avx512_tests.rs`.
//!
//! Everything here is reached only through [`FastTable`]s, which exist only when the CPU has
//! AVX-512 (F, VL, BW, DQ) and the kernel's float type is `f32`, and through the threshold and
//! sort functions, whose callers check the same. This module imports only [`super::table`]
//! and the float trait; the choice between it and the portable code is made in [`super`].
//! The measurements behind the constants and layouts: `docs/kernels.md`.

use std::arch::x86_64::*;

use super::table::{IntervalSums, PwlTable};
use crate::ops::float::KernelFloat;

/// Elements per vector.
const LANES: usize = 16;
/// Vectors whose lookups are interleaved in the backward pass.
const U: usize = 6;
/// Vectors whose lookups are interleaved in the forward pass with the one-register layout: its
/// lookups keep no interval, so one more than [`U`] fits in the registers.
const U_FORWARD: usize = 7;
/// As [`U_FORWARD`] with the two-register layout, whose tables take two registers each (the
/// fastest of 5, 6 and 7).
const U_FORWARD_WIDE: usize = 6;
/// Entries of a lookup table (two registers).
const WIDTH: usize = 32;
/// Most thresholds the vectorised lookup handles (32 groups of at most 16, one `+∞` pad);
/// more take the portable path.
pub(super) const MAX_THRESHOLDS: usize = WIDTH * 16 - 1;
/// Most thresholds handled by per-threshold sums.
const SUFFIX_MAX: usize = 8;
/// Most thresholds of the one-register layout: 16 groups of one, so that its four-step search
/// (one-register permutes) alone decides the interval. From 16 thresholds on, the two-register
/// layout (32 groups) serves a forward and a backward pass better: its histogram backward
/// overlaps the scalar update with the lookups step by step (see [`backward_histogram`]), and
/// a step costs about the same in either layout, so fewer, wider steps win.
const NARROW_MAX: usize = 15;
/// Vectors per block of the per-threshold sums: their `f32` lane sums cover at most this many
/// vectors before they are added into `f64`.
const BLOCK_VECTORS: usize = 48;
/// Interleaved histogram copies.
const COPIES: usize = 8;
const _: () = assert!(LANES.is_multiple_of(COPIES));

/// One channel's piecewise-linear table in the group-major layout of the vector lookup.
pub(super) struct FastTable {
    /// Thresholds per group, `g`.
    group: usize,
    /// The one-register layout (16 groups of one, four search steps, one-register permutes)
    /// for `K ≤` [`NARROW_MAX`]; else 32 groups and five steps.
    narrow: bool,
    /// Number of thresholds, `K`.
    k: usize,
    /// The sorted thresholds when `K ≤` [`SUFFIX_MAX`] (the kernels for so few read them
    /// directly), padded with `+∞`.
    few: [f32; SUFFIX_MAX],
    /// The coarse search's tables over the splitters `S[m] = θ[m·g + g − 1]` (the last entry
    /// of each group): `probes[t][m] = S[m + 2^(steps−1−t) − 1]` is what step `t` compares
    /// with for a lane whose index so far is `m` (no add before each permute; step 0's probe
    /// is the same for every lane).
    probes: [[f32; WIDTH]; 5],
    /// The group-major rows, in one allocation: `V_k[m] = θ[m·g + k]` for `k < g − 1`, then
    /// `A_k[m] = A[m·g + k]` for `k < g`, then `B_k[m] = B[m·g + k]` for `k < g` (see
    /// [`FastTable::inner`], [`FastTable::slopes`], [`FastTable::intercepts`]).
    rows: Vec<[f32; WIDTH]>,
}

impl FastTable {
    /// True when the vector kernels serve `T` on this CPU: `T` is `f32` and the CPU has
    /// AVX-512 F, VL, BW and DQ.
    pub(super) fn available<T: KernelFloat>() -> bool {
        // VL too: without it the compiler cannot zero (or move) registers 16–31 with the short
        // encodings and spills accumulators. Every AVX-512 CPU but the Xeon Phi has F+VL+BW+DQ.
        T::IS_F32
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }

    /// The vector table of one channel's table, or `None` when it has more than
    /// [`MAX_THRESHOLDS`] thresholds: in the one-register layout up to [`NARROW_MAX`]
    /// thresholds, else in the two-register one. Only for a `T` that [`FastTable::available`]
    /// accepts.
    pub(super) fn new<T: KernelFloat>(t: &PwlTable<T>) -> Option<FastTable> {
        Self::with_layout(t, t.thresholds.len() <= NARROW_MAX)
    }

    /// The vector table in the one-register layout (`narrow`, for at most [`NARROW_MAX`]
    /// thresholds: groups of one) or the two-register one.
    fn with_layout<T: KernelFloat>(t: &PwlTable<T>, narrow: bool) -> Option<FastTable> {
        debug_assert!(Self::available::<T>());
        let k = t.thresholds.len();
        if k > MAX_THRESHOLDS || !T::IS_F32 {
            return None;
        }
        debug_assert!(!narrow || k <= NARROW_MAX);
        // SAFETY: T is f32 (checked above).
        let (thresholds, a, b) = unsafe { (as_f32(&t.thresholds), as_f32(&t.a), as_f32(&t.b)) };
        let groups = if narrow { 16 } else { WIDTH };
        let group = (k + 1).div_ceil(groups).max(1);
        // Entry `kk` of every group, padded past the end with `pad`.
        // SAFETY: the CPU has AVX-512 (`available`).
        let table = |src: &[f32], pad: f32, kk: usize| unsafe { gather_row(src, pad, group, kk) };
        // Past the last interval: its slope and intercept (never reached, as the padded
        // thresholds are +∞).
        let (a_pad, b_pad) = (a[k], b[k]);
        let splitters = table(thresholds, f32::INFINITY, group - 1);
        let steps = if narrow { 4 } else { 5 };
        // Tables of steps past the layout's last are never read. Step t's table is the
        // splitters from 2^(steps−1−t) − 1 on, padded with +∞.
        let mut padded = [f32::INFINITY; 2 * WIDTH];
        padded[..WIDTH].copy_from_slice(&splitters);
        let probes =
            std::array::from_fn(|t| match (t < steps).then(|| 1usize << (steps - 1 - t)) {
                Some(o) => padded[o - 1..][..WIDTH].try_into().expect("WIDTH entries"),
                None => [f32::INFINITY; WIDTH],
            });
        let mut rows = Vec::with_capacity(3 * group - 1);
        rows.extend((0..group - 1).map(|kk| table(thresholds, f32::INFINITY, kk)));
        rows.extend((0..group).map(|kk| table(a, a_pad, kk)));
        rows.extend((0..group).map(|kk| table(b, b_pad, kk)));
        let mut few = [f32::INFINITY; SUFFIX_MAX];
        if k <= SUFFIX_MAX {
            few[..k].copy_from_slice(thresholds);
        }
        Some(FastTable {
            group,
            narrow,
            k,
            few,
            probes,
            rows,
        })
    }

    /// Row `V_kk` (`kk < g − 1`): entry `kk` of every group's thresholds.
    ///
    /// # Safety
    /// `kk < g − 1`.
    #[inline(always)]
    unsafe fn inner(&self, kk: usize) -> &[f32; WIDTH] {
        debug_assert!(kk + 1 < self.group);
        // SAFETY: the caller's contract; the first g − 1 rows are the V rows.
        unsafe { self.rows.get_unchecked(kk) }
    }

    /// Row `A_kk` (`kk < g`): the slope of entry `kk` of every group's intervals.
    ///
    /// # Safety
    /// `kk < g`.
    #[inline(always)]
    unsafe fn slopes(&self, kk: usize) -> &[f32; WIDTH] {
        debug_assert!(kk < self.group);
        // SAFETY: the caller's contract; rows g − 1 .. 2g − 1 are the A rows.
        unsafe { self.rows.get_unchecked(self.group - 1 + kk) }
    }

    /// Row `B_kk` (`kk < g`): the intercept of entry `kk` of every group's intervals.
    ///
    /// # Safety
    /// `kk < g`.
    #[inline(always)]
    unsafe fn intercepts(&self, kk: usize) -> &[f32; WIDTH] {
        debug_assert!(kk < self.group);
        // SAFETY: the caller's contract; rows 2g − 1 .. 3g − 1 are the B rows.
        unsafe { self.rows.get_unchecked(2 * self.group - 1 + kk) }
    }
}

/// `[src[kk], src[group + kk], src[2·group + kk], …]` (32 entries; `pad` past the end of
/// `src`): one row of a group-major table, by two gathers.
///
/// # Safety
/// The CPU must have AVX-512 F, VL, BW and DQ.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
unsafe fn gather_row(src: &[f32], pad: f32, group: usize, kk: usize) -> [f32; WIDTH] {
    let mut row = [pad; WIDTH];
    let step = _mm512_set1_epi32(group as i32);
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let len = _mm512_set1_epi32(src.len() as i32);
    for half in 0..2 {
        let m = _mm512_add_epi32(lanes, _mm512_set1_epi32((half * LANES) as i32));
        let at = _mm512_add_epi32(_mm512_mullo_epi32(m, step), _mm512_set1_epi32(kk as i32));
        let inside = _mm512_cmplt_epi32_mask(at, len);
        // SAFETY: only lanes with an index inside `src` are read; 32·16 + 16 fits an i32.
        unsafe {
            let v =
                _mm512_mask_i32gather_ps::<4>(_mm512_set1_ps(pad), inside, at, src.as_ptr().cast());
            _mm512_storeu_ps(row.as_mut_ptr().add(half * LANES), v);
        }
    }
    row
}

/// The exact thresholds (see [`super::table::threshold`]) of 16 units at a time, where one of
/// the two floats at or just below the real-number root `−b0/w0` (rounded to `f32`) is the
/// threshold: `θ` is the one at which the rounded `w0·θ + b0 > 0` decides the unit's side
/// one way and the next float up the other way, and since that decision is monotone in `x`,
/// any such pair is the one the bisection finds. Lanes where neither candidate shows the
/// change (far roots, overflows, `w0 = 0`, non-finite parameters) are left `None` for the
/// caller's bisection. Each lane computes `fl(fl(w0·x) + b0)` (no fused multiply-add), as the
/// reference and the bisection do.
///
/// # Safety
/// The CPU must have AVX-512 F, VL, BW and DQ; `w0`, `b0` and `out` have the same length.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
pub(super) unsafe fn thresholds(w0: &[f32], b0: &[f32], out: &mut [Option<f32>]) {
    debug_assert!(w0.len() == b0.len() && w0.len() == out.len());
    // SAFETY: lanes past the end are masked off in every load; the CPU's features are the
    // caller's contract.
    unsafe {
        let mut i = 0;
        while i < w0.len() {
            let m = first_lanes((w0.len() - i).min(LANES));
            let d = direct_block(w0.as_ptr().add(i), b0.as_ptr().add(i), m);
            let theta: [f32; LANES] = std::mem::transmute(flip_ordered(d.theta));
            for (l, o) in out[i..].iter_mut().take(LANES).enumerate() {
                *o = (d.found >> l & 1 == 1).then_some(theta[l]);
            }
            i += LANES;
        }
    }
}

/// The sort keys of the units' thresholds (see `table::sort_by_threshold_then_unit`: the
/// threshold's order-preserving 32 bits above the unit's index) for every unit with a direct
/// threshold (see [`thresholds`]), appended to `keys`; the other units with `w0 ≠ 0` (which
/// need the bisection) appended to `rest`. `false` when some `w0` or `b0` is not finite.
///
/// # Safety
/// The CPU must have AVX-512 F, VL, BW and DQ; `w0` and `b0` have the same length, below
/// 2³².
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
pub(super) unsafe fn threshold_keys(
    w0: &[f32],
    b0: &[f32],
    keys: &mut Vec<u64>,
    rest: &mut Vec<usize>,
) -> bool {
    debug_assert!(w0.len() == b0.len());
    // Room for every unit, and for the whole last vector stored past the keys.
    keys.reserve(w0.len() + 8);
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // SAFETY: lanes past the end are masked off in every load; `keys` has room for every
    // unit and eight more (reserved above: each store writes eight lanes at its end), and its
    // length is set to the keys written.
    unsafe {
        let mut i = 0;
        while i < w0.len() {
            let m = first_lanes((w0.len() - i).min(LANES));
            let d = direct_block(w0.as_ptr().add(i), b0.as_ptr().add(i), m);
            if d.finite != m {
                return false;
            }
            let high = _mm512_xor_si512(d.theta, _mm512_set1_epi32(i32::MIN));
            let unit = _mm512_add_epi32(lanes, _mm512_set1_epi32(i as i32));
            for half in 0..2 {
                let pick = |v: __m512i| {
                    let v = _mm512_castsi512_si256(if half == 0 {
                        v
                    } else {
                        _mm512_shuffle_i64x2::<0b11_10_11_10>(v, v)
                    });
                    _mm512_cvtepu32_epi64(v)
                };
                let key = _mm512_or_si512(_mm512_slli_epi64::<32>(pick(high)), pick(unit));
                let found = (d.found >> (8 * half)) as __mmask8;
                // Compressed in a register and stored whole (the lanes past the found ones
                // land in the reserved spare capacity): a compressing store to memory is
                // microcoded on AMD cores.
                let end = keys.as_mut_ptr().add(keys.len());
                _mm512_storeu_si512(end.cast(), _mm512_maskz_compress_epi64(found, key));
                keys.set_len(keys.len() + found.count_ones() as usize);
            }
            let mut missing = d.kinked & !d.found;
            while missing != 0 {
                rest.push(i + missing.trailing_zeros() as usize);
                missing &= missing - 1;
            }
            i += LANES;
        }
    }
    true
}

/// What [`direct_block`] finds for 16 units.
struct DirectBlock {
    /// Lanes with a direct threshold.
    found: __mmask16,
    /// The thresholds as ordered integers (`KernelFloat::to_ordered`), in the `found` lanes.
    theta: __m512i,
    /// Lanes (of the mask) with finite `w0` and `b0`.
    finite: __mmask16,
    /// Lanes (of the mask) with finite parameters and `w0 ≠ 0`: those that have a threshold.
    kinked: __mmask16,
}

/// Ordered integers (as in `KernelFloat::to_ordered`) to float bits and back: the same map,
/// an involution (negative floats' magnitude bits flipped).
///
/// # Safety
/// The CPU must have AVX-512 F, VL, BW and DQ.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
#[inline]
unsafe fn flip_ordered(v: __m512i) -> __m512i {
    let neg = _mm512_cmplt_epi32_mask(v, _mm512_setzero_si512());
    _mm512_mask_xor_epi32(v, neg, v, _mm512_set1_epi32(i32::MAX))
}

/// The direct thresholds of the (up to) 16 units at `w0`, `b0` in the lanes of `m`.
///
/// # Safety
/// The CPU must have AVX-512 F, VL, BW and DQ; the lanes of `m` readable at both pointers.
// With the target features (not only inlined into functions that have them): its closures
// then have them too, and their intrinsics are inlined rather than called.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
#[inline]
unsafe fn direct_block(w0: *const f32, b0: *const f32, m: __mmask16) -> DirectBlock {
    let flip = |v: __m512i| unsafe { flip_ordered(v) };
    // SAFETY: caller's contract.
    unsafe {
        let w = _mm512_maskz_loadu_ps(m, w0);
        let b = _mm512_maskz_loadu_ps(m, b0);
        // −b0/w0 in f64, rounded to f32 (as the bisection's first guess).
        let half = |v: __m512, hi: bool| {
            let v = _mm512_castps_pd(v);
            let q = if hi {
                _mm512_extractf64x4_pd::<1>(v)
            } else {
                _mm512_castpd512_pd256(v)
            };
            _mm512_cvtps_pd(_mm256_castpd_ps(q))
        };
        let root = |hi: bool| {
            _mm512_cvtpd_ps(_mm512_div_pd(
                _mm512_sub_pd(_mm512_setzero_pd(), half(b, hi)),
                half(w, hi),
            ))
        };
        let guess = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(root(false)), root(true));
        let g = flip(_mm512_castps_si512(guess));
        let rising = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(w, _mm512_setzero_ps());
        // The floats up to two below and two above the guess (ordered neighbours).
        let [x_below2, x_below, x_at, x_above, x_above2] = [-2, -1, 0, 1, 2]
            .map(|d| _mm512_castsi512_ps(flip(_mm512_add_epi32(g, _mm512_set1_epi32(d)))));
        // The unit's side at `x` as the bisection decides it: (fl(fl(w0·x) + b0) > 0) ==
        // rising.
        let upper = |x: __m512| {
            let u = _mm512_add_ps(_mm512_mul_ps(w, x), b);
            !(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(u, _mm512_setzero_ps()) ^ rising)
        };
        let [below2, below, at, above, above2] =
            [x_below2, x_below, x_at, x_above, x_above2].map(upper);
        let finite = |v: __m512| {
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), _mm512_set1_ps(f32::INFINITY))
        };
        // Finite parameters, w0 ≠ 0, and finite candidates (the guess and its neighbours:
        // one each side, and the second one for a change that far).
        let usable = m
            & finite(w)
            & finite(b)
            & _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(w, _mm512_setzero_ps())
            & finite(x_below)
            & finite(x_above);
        // θ is the lower float of the pair where the side changes, from two floats below
        // the guess to one above it (the rounding of w0·x + b0 can move the change a float or
        // two off the rounded root); a change outside that window is left to the bisection.
        let lower2 = usable & finite(x_below2) & !below2 & below;
        let lower = usable & !below & at;
        let here = usable & !at & above;
        let upper2 = usable & finite(x_above2) & !above & above2;
        let delta = |mask, d: i32, v| _mm512_mask_mov_epi32(v, mask, _mm512_set1_epi32(d));
        let shift = delta(
            lower2,
            -2,
            delta(lower, -1, delta(upper2, 1, _mm512_setzero_si512())),
        );
        let finite_params = m & finite(w) & finite(b);
        DirectBlock {
            found: lower2 | lower | here | upper2,
            theta: _mm512_add_epi32(g, shift),
            finite: finite_params,
            kinked: finite_params & _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(w, _mm512_setzero_ps()),
        }
    }
}

/// Most keys [`sort_keys`] sorts (more: the caller sorts them another way).
pub(super) const SORT_MAX: usize = MAX_THRESHOLDS + 1;

/// Sorts up to [`SORT_MAX`] keys in increasing order by a bitonic network over 8-lane
/// vectors (padded with `u64::MAX` to a power of two): no branch on the keys, where a
/// comparison sort mispredicts on the random orders of thresholds.
///
/// # Safety
/// The CPU must have AVX-512 F, VL, BW and DQ.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
pub(super) unsafe fn sort_keys(keys: &mut [u64]) {
    let n = keys.len();
    assert!(n <= SORT_MAX, "sort_keys: {n} keys");
    if n < 2 {
        return;
    }
    let padded = n.next_power_of_two().max(KEY_LANES);
    // SAFETY: the caller's contract.
    unsafe {
        match padded / KEY_LANES {
            1 => sort_network::<1>(keys),
            2 => sort_network::<2>(keys),
            4 => sort_network::<4>(keys),
            8 => sort_network::<8>(keys),
            16 => sort_network::<16>(keys),
            32 => sort_network::<32>(keys),
            _ => sort_network::<64>(keys),
        }
    }
}

/// Keys per vector of [`sort_keys`].
const KEY_LANES: usize = 8;

/// [`sort_keys`] on `REGS` vectors (`keys.len() ≤ 8·REGS`, a power of two), as loops over the
/// network's stages: shorter code than the stages written out (which keep the vectors in
/// registers but are fetched cold between forward passes, and measured slower).
///
/// # Safety
/// As [`sort_keys`].
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
unsafe fn sort_network<const REGS: usize>(keys: &mut [u64]) {
    let n = keys.len();
    debug_assert!(n <= REGS * KEY_LANES);
    let padded = REGS * KEY_LANES;
    let pad = _mm512_set1_epi64(u64::MAX as i64);
    let here =
        |r: usize| ((1u32 << n.saturating_sub(r * KEY_LANES).min(KEY_LANES)) - 1) as __mmask8;
    // SAFETY: every load and store is masked to the keys' lanes.
    unsafe {
        let mut v: [__m512i; REGS] = std::array::from_fn(|r| {
            _mm512_mask_loadu_epi64(pad, here(r), keys.as_ptr().add(r * KEY_LANES).cast())
        });
        let lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
        // Stage (k, j): element i and its partner i ^ j, the smaller first where the block of
        // k that holds i is ascending ((i & k) == 0).
        let mut k = 2;
        while k <= padded {
            let mut j = k / 2;
            while j > 0 {
                if j >= KEY_LANES {
                    let jr = j / KEY_LANES;
                    for r in 0..REGS {
                        let p = r ^ jr;
                        if p > r {
                            let (lo, hi) =
                                (_mm512_min_epu64(v[r], v[p]), _mm512_max_epu64(v[r], v[p]));
                            (v[r], v[p]) = if (r * KEY_LANES) & k == 0 {
                                (lo, hi)
                            } else {
                                (hi, lo)
                            };
                        }
                    }
                } else {
                    let partner = _mm512_xor_si512(lane, _mm512_set1_epi64(j as i64));
                    // Lanes that take the larger of the pair in an ascending register (for
                    // k < 8 the direction changes within the register).
                    let mut takes_max: __mmask8 = 0;
                    for l in 0..KEY_LANES {
                        let ascending = k >= KEY_LANES || l & k == 0;
                        if (l & j != 0) == ascending {
                            takes_max |= 1 << l;
                        }
                    }
                    for (r, reg) in v.iter_mut().enumerate() {
                        let other = _mm512_permutexvar_epi64(partner, *reg);
                        let (lo, hi) =
                            (_mm512_min_epu64(*reg, other), _mm512_max_epu64(*reg, other));
                        let m = if k >= KEY_LANES && (r * KEY_LANES) & k != 0 {
                            !takes_max
                        } else {
                            takes_max
                        };
                        *reg = _mm512_mask_blend_epi64(m, lo, hi);
                    }
                }
                j /= 2;
            }
            k *= 2;
        }
        for (r, reg) in v.iter().enumerate() {
            _mm512_mask_storeu_epi64(keys.as_mut_ptr().add(r * KEY_LANES).cast(), here(r), *reg);
        }
    }
}

/// A work item's backward statistics, kept across its runs.
pub(super) enum Accumulator {
    /// `K ≤ 8`: `[Σ gy·[x>θ_p], Σ gy·x·[x>θ_p]]` for each threshold `p`, then the totals
    /// `[Σ gy, Σ gy·x]`, each as 16 `f64` lanes.
    Suffix { k: usize, lanes: Vec<[f64; LANES]> },
    /// `[Σ gy, Σ gy·x]` per interval, [`COPIES`] copies of the `K + 1` intervals (`stride`).
    Histogram { stride: usize, bins: Vec<[f64; 2]> },
}

impl Accumulator {
    /// Zeroed statistics for `t`; a histogram's bins go into `spare` (a buffer that
    /// [`Accumulator::into_sums`] handed back: the previous work item's, still in this core's
    /// caches, where a new allocation's zeroing missed them when other tenants loaded the
    /// memory system).
    pub(super) fn new(t: &FastTable, mut spare: Vec<[f64; 2]>) -> Self {
        let k = t.k;
        if k <= SUFFIX_MAX {
            Accumulator::Suffix {
                k,
                lanes: vec![[0.0; LANES]; 2 * k + 2],
            }
        } else {
            // Room for every interval: an element's is the number of thresholds below it, at
            // most K (the padding entries are +∞, never below).
            let stride = k + 1;
            spare.clear();
            spare.resize(COPIES * stride, [0.0; 2]);
            Accumulator::Histogram {
                stride,
                bins: spare,
            }
        }
    }

    /// The per-interval sums (`intervals = K + 1`), added in a fixed order, and the histogram's
    /// buffer for the next [`Accumulator::new`] (empty for per-threshold sums).
    pub(super) fn into_sums(self, intervals: usize) -> (IntervalSums, Vec<[f64; 2]>) {
        let mut sums = IntervalSums::new(intervals);
        let mut spare = Vec::new();
        match self {
            Accumulator::Suffix { k, lanes } => {
                let total = |v: &[f64; LANES]| v.iter().sum::<f64>();
                let above: Vec<(f64, f64)> = (0..=k)
                    .map(|p| (total(&lanes[2 * p]), total(&lanes[2 * p + 1])))
                    .collect();
                // above[k] holds the totals; interval j lies between thresholds j−1 and j.
                let (all0, all1) = above[k];
                for j in 0..=k {
                    let (lo0, lo1) = if j == 0 { (all0, all1) } else { above[j - 1] };
                    let (hi0, hi1) = if j == k { (0.0, 0.0) } else { above[j] };
                    sums.s0[j] = lo0 - hi0;
                    sums.s1[j] = lo1 - hi1;
                }
            }
            Accumulator::Histogram { stride, bins } => {
                // Four intervals' sums at a time, held in registers while the copies are added
                // (copy 0 + copy 1 + … in that order), then stored once: interval by interval
                // into `sums`, each copy's addition was a load, add and store waiting for the
                // previous one's.
                let flat = bins.as_flattened();
                let bin = |copy: usize, j: usize| 2 * (copy * stride + j);
                let four = intervals / 4 * 4;
                for j in (0..four).step_by(4) {
                    let mut acc = [0.0f64; 8];
                    for copy in 0..COPIES {
                        let src: &[f64; 8] =
                            flat[bin(copy, j)..][..8].try_into().expect("eight entries");
                        for (a, &b) in acc.iter_mut().zip(src) {
                            *a += b;
                        }
                    }
                    for k in 0..4 {
                        (sums.s0[j + k], sums.s1[j + k]) = (acc[2 * k], acc[2 * k + 1]);
                    }
                }
                for j in four..intervals {
                    let (mut s0, mut s1) = (0.0, 0.0);
                    for copy in 0..COPIES {
                        s0 += flat[bin(copy, j)];
                        s1 += flat[bin(copy, j) + 1];
                    }
                    (sums.s0[j], sums.s1[j]) = (s0, s1);
                }
                spare = bins;
            }
        }
        (sums, spare)
    }
}

/// Reinterprets a slice of `T` as `f32`.
///
/// # Safety
/// `T` must be `f32`.
unsafe fn as_f32<T>(s: &[T]) -> &[f32] {
    // SAFETY: T is f32 (caller's contract).
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}

/// A work item's contiguous runs, `(offset, length)` into the whole tensor.
pub(super) type Runs = [(usize, usize)];

/// `y = G(x)` over a work item's runs (one table setup for all of them), written through `yp`
/// (which may point to uninitialised memory: it is only written).
///
/// # Safety
/// `table` must come from [`FastTable::new`] with this `T` (so `T` is `f32` and the CPU
/// has AVX-512F); every run must lie within `x` and within the buffer behind `yp`, and no
/// other thread may access those elements of it.
pub(super) unsafe fn forward_runs<T>(table: &FastTable, x: &[T], yp: *mut T, runs: &Runs) {
    debug_assert!(runs.iter().all(|&(off, len)| off + len <= x.len()));
    // SAFETY: caller's contract.
    unsafe {
        let (xp, yp) = (as_f32(x).as_ptr(), yp.cast::<f32>());
        match table.k {
            0..=4 => forward_small4(table, xp, yp, runs),
            5..=8 => forward_small8(table, xp, yp, runs),
            _ => by_group!(table, forward_f32, (table, xp, yp, runs)),
        }
    }
}

/// `gx = gy·G'(x)` in place over a work item's runs (`gp` holds `gy` on entry), adding their
/// statistics into `acc`.
///
/// # Safety
/// As [`forward_runs`], for `gp` (read and written); `acc` must come from
/// [`Accumulator::new`] with this `table`.
pub(super) unsafe fn backward_runs<T>(
    table: &FastTable,
    x: &[T],
    gp: *mut T,
    runs: &Runs,
    acc: &mut Accumulator,
) {
    debug_assert!(runs.iter().all(|&(off, len)| off + len <= x.len()));
    // SAFETY: caller's contract.
    unsafe {
        let (xp, gp) = (as_f32(x).as_ptr(), gp.cast::<f32>());
        match acc {
            Accumulator::Suffix { k, lanes } => {
                if *k <= 4 {
                    backward_suffix4(table, xp, gp, runs, lanes)
                } else {
                    backward_suffix8(table, xp, gp, runs, lanes)
                }
            }
            Accumulator::Histogram { stride, bins } => {
                by_group!(
                    table,
                    backward_histogram,
                    (table, *stride, xp, gp, runs, bins)
                )
            }
        }
    }
}

/// Calls `$f::<STEPS, G>$args` with the table's search steps and group size as compile-time
/// constants (so the lookup's loops unroll).
macro_rules! by_group {
    ($t:expr, $f:ident, $args:tt) => {{
        if $t.narrow {
            // Groups of one (at most NARROW_MAX thresholds).
            by_group!(@g 4, $t, $f, $args, 1)
        } else {
            by_group!(@g 5, $t, $f, $args, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
        }
    }};
    (@g $steps:literal, $t:expr, $f:ident, $args:tt, $($g:literal)*) => {{
        match $t.group {
            $($g => $f::<$steps, $g> $args,)*
            _ => unreachable!("at most 16 thresholds per group, one in the narrow layout"),
        }
    }};
}
use by_group;

/// A 32-entry table in two registers.
#[derive(Clone, Copy)]
struct Table32(__m512, __m512);

impl Table32 {
    /// # Safety
    /// AVX-512F must be enabled in the caller.
    #[inline(always)]
    unsafe fn load(v: &[f32; WIDTH]) -> Self {
        // SAFETY: 32 floats.
        unsafe {
            Table32(
                _mm512_loadu_ps(v.as_ptr()),
                _mm512_loadu_ps(v.as_ptr().add(16)),
            )
        }
    }

    /// Entry `idx` (0..32) of each lane.
    ///
    /// # Safety
    /// AVX-512F must be enabled in the caller.
    #[inline(always)]
    unsafe fn pick(self, idx: __m512i) -> __m512 {
        // SAFETY: caller's contract.
        unsafe { _mm512_permutex2var_ps(self.0, idx, self.1) }
    }

    /// Entry `idx` of each lane for indices known to be below 16 (a one-register permute,
    /// cheaper than the two-register one).
    ///
    /// # Safety
    /// AVX-512F must be enabled in the caller.
    #[inline(always)]
    unsafe fn pick_low(self, idx: __m512i) -> __m512 {
        // SAFETY: caller's contract.
        unsafe { _mm512_permutexvar_ps(idx, self.0) }
    }
}

/// Number of the sorted splitters strictly below each lane of each `x` (0 for NaN): a
/// branch-free binary search of `STEPS` steps (4: the first 16 splitters, 5: all 32), for `U`
/// vectors at once (their steps interleaved, so independent work fills the search's latency).
/// The first step compares with one broadcast splitter; each later one permutes its own table
/// of probes by the index so far.
///
/// # Safety
/// AVX-512F must be enabled in the caller.
#[inline(always)]
unsafe fn coarse<const STEPS: u32, const U: usize>(
    t: &FastTable,
    x: [__m512; U],
    between: &mut impl FnMut(),
) -> [__m512i; U] {
    // SAFETY: caller's contract; `probes` has 5 ≥ STEPS tables.
    unsafe {
        let mut step = 1i32 << (STEPS - 1);
        let first = _mm512_set1_ps(t.probes[0][0]);
        let mut idx: [__m512i; U] = std::array::from_fn(|u| {
            let above = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(first, x[u]);
            _mm512_maskz_mov_epi32(above, _mm512_set1_epi32(step))
        });
        for probes in &t.probes[1..STEPS as usize] {
            step >>= 1;
            let probes = Table32::load(probes);
            for u in 0..U {
                let th = if STEPS <= 4 {
                    probes.pick_low(idx[u])
                } else {
                    probes.pick(idx[u])
                };
                let above = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(th, x[u]);
                idx[u] = _mm512_mask_add_epi32(idx[u], above, idx[u], _mm512_set1_epi32(step));
            }
            between();
        }
        idx
    }
}

/// `v`, unchanged, as a value the compiler can only have after `k`: an empty `asm!` that takes
/// both. Work on the result cannot be moved before `k` is computed.
///
/// The two-register layout's picks need it: a two-register permute overwrites one of its
/// tables, so it cannot merge its result under a mask as the one-register picks do, and
/// nothing then ties a step's slope and intercept picks to that step's compare. Without it
/// LLVM hoists the picks of every step of every interleaved vector to the top of the lookup,
/// which keeps dozens of registers live and spills them.
///
/// # Safety
/// AVX-512F must be enabled in the caller.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn after(mut v: __m512i, k: __mmask16) -> __m512i {
    // Not `pure`: the statements then also keep their program order among themselves (which
    // measured faster than letting the compiler reorder them).
    // SAFETY: the template is empty: no instruction is emitted, nothing is read or written.
    unsafe {
        std::arch::asm!(
            "/* {0} {1} */",
            inout(zmm_reg) v,
            in(kreg) k,
            options(nomem, nostack, preserves_flags)
        );
    }
    v
}

/// `(A_j, B_j)` of each lane's interval, and the interval `j` itself, for `U` vectors at once.
/// With `HOLD`, the two-register layout's picks are held after their compares ([`after`]): the
/// forward needs it; the backward, which picks no intercepts, measured slower with it, so it
/// passes `false`. `between` is called
/// after each step of the search and of the scan (nine times with the two-register layout at
/// N = 128): the backward slips a slice of its scalar histogram update in there.
///
/// # Safety
/// AVX-512F must be enabled in the caller.
#[inline(always)]
unsafe fn lookup<const STEPS: u32, const G: usize, const U: usize, const HOLD: bool>(
    t: &FastTable,
    x: [__m512; U],
    slopes0: Table32,
    intercepts0: Table32,
    between: &mut impl FnMut(),
) -> [(__m512, __m512, __m512i); U] {
    // SAFETY: caller's contract; the tables hold 32 floats each and `k + 1 < group`.
    unsafe {
        let mut c = coarse::<STEPS, U>(t, x, between);
        let pick = |table: Table32, c: __m512i| {
            if STEPS <= 4 {
                table.pick_low(c)
            } else {
                table.pick(c)
            }
        };
        let mut out: [(__m512, __m512, __m512i); U] =
            std::array::from_fn(|u| (pick(slopes0, c[u]), pick(intercepts0, c[u]), c[u]));
        if G == 1 {
            return out;
        }
        // Position within the group: the compares' masks are nested (sorted thresholds), so
        // the last one set names it — one masked move of a constant per step, no count.
        let mut within = [_mm512_setzero_si512(); U];
        let mut previous = [0 as __mmask16; U];
        for k in 0..G - 1 {
            let th = Table32::load(t.inner(k));
            let ak = Table32::load(t.slopes(k + 1));
            let bk = Table32::load(t.intercepts(k + 1));
            if HOLD && STEPS > 4 && k > 0 {
                // This step's permutes after the previous step's compares (see `after`).
                for u in 0..U {
                    c[u] = after(c[u], previous[u]);
                }
            }
            for u in 0..U {
                let above = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(pick(th, c[u]), x[u]);
                previous[u] = above;
                // The slope and intercept picks after the compare that selects them.
                let cu = if HOLD && STEPS > 4 {
                    after(c[u], above)
                } else {
                    c[u]
                };
                out[u].0 = _mm512_mask_mov_ps(out[u].0, above, pick(ak, cu));
                out[u].1 = _mm512_mask_mov_ps(out[u].1, above, pick(bk, cu));
                within[u] =
                    _mm512_mask_mov_epi32(within[u], above, _mm512_set1_epi32(k as i32 + 1));
            }
            between();
        }
        for u in 0..U {
            out[u].2 = _mm512_add_epi32(
                _mm512_mullo_epi32(c[u], _mm512_set1_epi32(G as i32)),
                within[u],
            );
        }
        out
    }
}

/// Mask of the first `n` lanes (`n ≤ 16`).
#[inline(always)]
fn first_lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Calls `f(offset, lanes)` for each vector of each run: full vectors (`lanes = None`), then
/// the run's partial last vector (`Some(mask)`).
/// Ahead of each full vector (see [`prefetch_distance`]), `ahead`'s buffers are prefetched.
///
/// # Safety
/// SSE must be enabled in the caller (every x86-64 CPU).
#[inline(always)]
unsafe fn for_each_vector<const P: usize>(
    runs: &Runs,
    ahead: [*const f32; P],
    mut f: impl FnMut(usize, Option<__mmask16>),
) {
    for (r, &(off, len)) in runs.iter().enumerate() {
        let end = off + len;
        let d = prefetch_distance(runs, r);
        let mut i = off;
        while i + LANES <= end {
            for p in ahead {
                // SAFETY: caller's contract.
                unsafe { prefetch(p.wrapping_add(i + d)) };
            }
            f(i, None);
            i += LANES;
        }
        if i < end {
            f(i, Some(first_lanes(end - i)));
        }
    }
}

/// How far ahead of an element of run `r` the kernels prefetch, one cache line per vector:
/// to the same position in the next run of the work item (runs are in increasing order), or
/// [`STREAM_AHEAD`] elements on in the item's last run. Per-channel runs are short (one image
/// plane) and far apart, so the hardware prefetcher, which follows a stream, would start each
/// of them cold; and along one long run it does not keep ahead of the kernels when other
/// tenants of the machine load the memory system.
#[inline(always)]
fn prefetch_distance(runs: &Runs, r: usize) -> usize {
    runs.get(r + 1)
        .map_or(STREAM_AHEAD, |next| next.0 - runs[r].0)
}

/// Elements ahead (4 KB) that the kernels prefetch along a work item's last run.
const STREAM_AHEAD: usize = 1024;

/// Prefetches the cache line holding `p` into all cache levels. `p` may be any address: a
/// prefetch never faults.
///
/// # Safety
/// SSE must be enabled in the caller (every x86-64 CPU).
#[inline(always)]
unsafe fn prefetch(p: *const f32) {
    // SAFETY: a prefetch reads nothing architecturally.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

/// Prefetches the cache line holding `p` for writing (`prefetchw`: the line arrives owned,
/// so the store that follows needs no second request). The forward pass's output lines, above
/// all: its stores into a freshly allocated buffer otherwise each waited for their line to be
/// read in. `p` may be any address.
///
/// # Safety
/// SSE must be enabled in the caller (every x86-64 CPU).
#[inline(always)]
unsafe fn prefetch_w(p: *mut f32) {
    // SAFETY: a prefetch reads nothing architecturally.
    unsafe { _mm_prefetch::<_MM_HINT_ET0>(p.cast_const().cast()) }
}

/// Which lanes of a vector a kernel owns, where a run does not fill whole vectors.
#[derive(Clone, Copy)]
enum Part {
    /// All 16.
    Full,
    /// The lanes of the mask, at the start of the vector (a run shorter than a vector).
    Masked(__mmask16),
    /// The lanes of the mask, at the end of the vector: a run's partial last vector loaded
    /// from 16 elements before the run's end, so that its loads and stores are full ones
    /// (measured faster than masked ones); the lanes before the mask belong to the same run
    /// and have been done already.
    Overlap(__mmask16),
}

impl Part {
    /// The vector of the run `off..end` that starts at element `i` (`i < end`): where it
    /// starts, and its lanes.
    #[inline(always)]
    fn at(i: usize, off: usize, end: usize) -> (usize, Part) {
        if end - i >= LANES {
            (i, Part::Full)
        } else if end - off >= LANES {
            (end - LANES, Part::Overlap(!first_lanes(LANES - (end - i))))
        } else {
            (i, Part::Masked(first_lanes(end - i)))
        }
    }

    /// Loads the vector at `p`: every lane, or the masked lanes only (zero elsewhere) for
    /// [`Part::Masked`].
    ///
    /// # Safety
    /// AVX-512F; the lanes read must be readable.
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: caller's contract.
        unsafe {
            match self {
                Part::Masked(m) => _mm512_maskz_loadu_ps(m, p),
                Part::Full | Part::Overlap(_) => _mm512_loadu_ps(p),
            }
        }
    }

    /// Stores a forward pass's `y` at `p`: the lanes before an [`Part::Overlap`] mask are
    /// stored too, with the values they already hold (the same `G(x)`).
    ///
    /// # Safety
    /// AVX-512F; the lanes written must be writable, and no other thread may access them.
    #[inline(always)]
    unsafe fn store_forward(self, p: *mut f32, v: __m512) {
        // SAFETY: caller's contract.
        unsafe {
            match self {
                Part::Masked(m) => _mm512_mask_storeu_ps(p, m, v),
                Part::Full | Part::Overlap(_) => _mm512_storeu_ps(p, v),
            }
        }
    }
}

/// Loads the vector at `p` (the masked lanes only, zero elsewhere, when `mask` is given).
///
/// # Safety
/// AVX-512F; the (masked) lanes must be readable.
#[inline(always)]
unsafe fn load(p: *const f32, mask: Option<__mmask16>) -> __m512 {
    // SAFETY: caller's contract.
    unsafe {
        match mask {
            None => _mm512_loadu_ps(p),
            Some(m) => _mm512_maskz_loadu_ps(m, p),
        }
    }
}

/// Stores `v` at `p` (the masked lanes only, when `mask` is given).
///
/// # Safety
/// AVX-512F; the (masked) lanes must be writable.
#[inline(always)]
unsafe fn store(p: *mut f32, mask: Option<__mmask16>, v: __m512) {
    // SAFETY: caller's contract.
    unsafe {
        match mask {
            None => _mm512_storeu_ps(p, v),
            Some(m) => _mm512_mask_storeu_ps(p, m, v),
        }
    }
}

/// # Safety
/// AVX-512F; the runs within the buffers behind `xp` and `yp`.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
unsafe fn forward_f32<const STEPS: u32, const G: usize>(
    t: &FastTable,
    xp: *const f32,
    yp: *mut f32,
    runs: &Runs,
) {
    // SAFETY: caller's contract.
    unsafe {
        if STEPS > 4 {
            forward_interleaved::<STEPS, G, U_FORWARD_WIDE>(t, xp, yp, runs)
        } else {
            forward_interleaved::<STEPS, G, U_FORWARD>(t, xp, yp, runs)
        }
    }
}

/// [`forward_f32`] with the lookups of `UF` vectors interleaved, in chunks of `UF` vectors:
/// each run's whole chunks, and chunks of the runs' tails (see [`Part`]).
///
/// # Safety
/// As [`forward_f32`].
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
unsafe fn forward_interleaved<const STEPS: u32, const G: usize, const UF: usize>(
    t: &FastTable,
    xp: *const f32,
    yp: *mut f32,
    runs: &Runs,
) {
    // SAFETY: every access is within a run (full vectors, masked partial ones).
    unsafe {
        let a0 = Table32::load(t.slopes(0));
        let b0 = Table32::load(t.intercepts(0));
        // A run's last vectors (fewer than a chunk) wait here for the next runs' last ones,
        // and go with them in a chunk (short runs, one image plane per channel, would
        // otherwise end in vectors looked up one by one, each a chain of dependent steps).
        // Only the tails: when a run's first vectors go with the previous run's tail, the
        // whole run is out of step with the chunks.
        let mut tails = [(0usize, Part::Full); UF];
        let mut filled = 0;
        for (r, &(off, len)) in runs.iter().enumerate() {
            let end = off + len;
            let d = prefetch_distance(runs, r);
            if let Some(&(o, l)) = runs.get(r + 1) {
                // The next run's last line (its partial vector's).
                prefetch(xp.wrapping_add(o + l - 1));
                prefetch_w(yp.wrapping_add(o + l - 1));
            }
            let mut i = off;
            while i < end {
                if i + UF * LANES <= end {
                    for u in 0..UF {
                        prefetch(xp.wrapping_add(i + d + u * LANES));
                        prefetch_w(yp.wrapping_add(i + d + u * LANES));
                    }
                    let x: [__m512; UF] =
                        std::array::from_fn(|u| _mm512_loadu_ps(xp.add(i + u * LANES)));
                    let r = lookup::<STEPS, G, UF, true>(t, x, a0, b0, &mut || {});
                    for u in 0..UF {
                        let y = _mm512_add_ps(_mm512_mul_ps(r[u].0, x[u]), r[u].1);
                        _mm512_storeu_ps(yp.add(i + u * LANES), y);
                    }
                    i += UF * LANES;
                    continue;
                }
                prefetch(xp.wrapping_add(i + d));
                prefetch_w(yp.wrapping_add(i + d));
                tails[filled] = Part::at(i, off, end);
                filled += 1;
                i += LANES;
                if filled == UF {
                    let x: [__m512; UF] =
                        std::array::from_fn(|u| tails[u].1.load(xp.add(tails[u].0)));
                    let r = lookup::<STEPS, G, UF, true>(t, x, a0, b0, &mut || {});
                    for u in 0..UF {
                        let (i, m) = tails[u];
                        m.store_forward(
                            yp.add(i),
                            _mm512_add_ps(_mm512_mul_ps(r[u].0, x[u]), r[u].1),
                        );
                    }
                    filled = 0;
                }
            }
        }
        // The last vectors (fewer than UF) one at a time.
        for &(i, m) in &tails[..filled] {
            let x = m.load(xp.add(i));
            let [(a, b, _)] = lookup::<STEPS, G, 1, true>(t, [x], a0, b0, &mut || {});
            m.store_forward(yp.add(i), _mm512_add_ps(_mm512_mul_ps(a, x), b));
        }
    }
}

/// Adds 16 `f32` lanes into 16 `f64` lanes.
///
/// # Safety
/// AVX-512F must be enabled in the caller.
#[inline(always)]
unsafe fn flush(v: __m512, into: &mut [f64; LANES]) {
    // SAFETY: caller's contract; `into` holds 16 f64.
    unsafe {
        let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(v),
        )));
        let p = into.as_mut_ptr();
        _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), lo));
        _mm512_storeu_pd(p.add(8), _mm512_add_pd(_mm512_loadu_pd(p.add(8)), hi));
    }
}

/// Defines a suffix-path backward kernel with a fixed number of threshold slots (unused slots
/// hold `+∞`: never below an element). One pass: per vector, the compare with each threshold
/// feeds that threshold's masked sums and selects the slope (`gx = gy·A_j`; the thresholds are
/// sorted, so the masks are nested and the last one set names the interval: one masked move per
/// threshold, no count and no permute). Each slot's accumulators are named variables, so they
/// stay in registers; the `f32` lane sums are added into `f64` once per block of
/// [`BLOCK_VECTORS`] vectors. Full vectors run without masks; only a run's last partial vector
/// is masked.
macro_rules! suffix_kernel {
    ($name:ident, $slots:literal; $(($s0:ident, $s1:ident, $p:literal)),*) => {
        /// # Safety
        /// AVX-512F; at most
        #[doc = stringify!($slots)]
        /// thresholds; `lanes` has `2K + 2` entries.
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
        unsafe fn $name(
            t: &FastTable,
            xp: *const f32,
            gp: *mut f32,
            runs: &Runs,
            lanes: &mut [[f64; LANES]],
        ) {
            let k = t.k;
            let mut th = [f32::INFINITY; $slots];
            th[..k].copy_from_slice(&t.few[..k]);
            // The slope above threshold p (A_{p+1}); A_0 below every threshold.
            let mut above_slope = [0.0f32; $slots];
            // SAFETY: row 0 exists (g ≥ 1).
            let slopes0 = unsafe { t.slopes(0) };
            above_slope[..k].copy_from_slice(&slopes0[1..=k]);
            let below_slope = slopes0[0];
            // SAFETY: every element access is within a run (full vectors, then a masked
            // tail); threshold and slope reads are within their arrays.
            unsafe {
                let zero = _mm512_setzero_ps();
                $( let mut $s0 = zero; let mut $s1 = zero; )*
                let (mut t0, mut t1) = (zero, zero);
                // Vectors added into the f32 lanes since their last flush.
                let mut added = 0;
                for (r, &(off, len)) in runs.iter().enumerate() {
                    let end = off + len;
                    let d = prefetch_distance(runs, r);
                    let mut i = off;
                    while i < end {
                        // Up to the end of the run or of the block, whichever comes first.
                        let stop = end.min(i + (BLOCK_VECTORS - added) * LANES);
                        added += (stop - i).div_ceil(LANES);
                        let mut step = |i: usize, mask: Option<__mmask16>| {
                            prefetch(xp.wrapping_add(i + d));
                            prefetch_w(gp.wrapping_add(i + d));
                            let x = load(xp.add(i), mask);
                            let gy = load(gp.add(i), mask);
                            let gyx = _mm512_mul_ps(gy, x);
                            let mut slope = _mm512_set1_ps(below_slope);
                            $(
                                let above = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(
                                    _mm512_set1_ps(*th.get_unchecked($p)),
                                    x,
                                );
                                $s0 = _mm512_mask_add_ps($s0, above, $s0, gy);
                                $s1 = _mm512_mask_add_ps($s1, above, $s1, gyx);
                                slope = _mm512_mask_mov_ps(
                                    slope,
                                    above,
                                    _mm512_set1_ps(*above_slope.get_unchecked($p)),
                                );
                            )*
                            t0 = _mm512_add_ps(t0, gy);
                            t1 = _mm512_add_ps(t1, gyx);
                            store(gp.add(i), mask, _mm512_mul_ps(gy, slope));
                        };
                        while i + LANES <= stop {
                            step(i, None);
                            i += LANES;
                        }
                        if i < stop {
                            step(i, Some(first_lanes(stop - i)));
                            i = stop;
                        }
                        if added == BLOCK_VECTORS {
                            $(
                                if $p < k {
                                    flush($s0, &mut lanes[2 * $p]);
                                    flush($s1, &mut lanes[2 * $p + 1]);
                                }
                                $s0 = zero;
                                $s1 = zero;
                            )*
                            flush(t0, &mut lanes[2 * k]);
                            flush(t1, &mut lanes[2 * k + 1]);
                            (t0, t1) = (zero, zero);
                            added = 0;
                        }
                    }
                }
                $(
                    if $p < k {
                        flush($s0, &mut lanes[2 * $p]);
                        flush($s1, &mut lanes[2 * $p + 1]);
                    }
                )*
                flush(t0, &mut lanes[2 * k]);
                flush(t1, &mut lanes[2 * k + 1]);
            }
        }
    };
}

/// Defines a forward kernel for at most `$slots` thresholds (unused slots hold `+∞`): the
/// interval is the count of thresholds below `x`, from independent compares (no search chain).
macro_rules! small_forward {
    ($name:ident, $slots:literal) => {
        /// # Safety
        /// AVX-512; at most
        #[doc = stringify!($slots)]
        /// thresholds; `yp` valid for writing `xs.len()` elements.
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
        unsafe fn $name(t: &FastTable, xp: *const f32, yp: *mut f32, runs: &Runs) {
            let k = t.k;
            let mut th = [f32::INFINITY; $slots];
            th[..k].copy_from_slice(&t.few[..k]);
            // SAFETY: every access is within a run (full vectors, then a masked tail);
            // threshold reads are within `th`.
            unsafe {
                let a0 = Table32::load(t.slopes(0));
                let b0 = Table32::load(t.intercepts(0));
                let thv: [__m512; $slots] = std::array::from_fn(|p| _mm512_set1_ps(th[p]));
                let index: [__m512i; $slots] =
                    std::array::from_fn(|p| _mm512_set1_epi32(p as i32 + 1));
                for_each_vector(runs, [xp], |i, mask| {
                    let x = load(xp.add(i), mask);
                    // The thresholds are sorted, so the masks are nested: the last one set
                    // names the interval (one masked move each, no count).
                    let mut j = _mm512_setzero_si512();
                    for p in 0..$slots {
                        let above = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(thv[p], x);
                        j = _mm512_mask_mov_epi32(j, above, index[p]);
                    }
                    let y = _mm512_add_ps(_mm512_mul_ps(a0.pick_low(j), x), b0.pick_low(j));
                    store(yp.add(i), mask, y);
                });
            }
        }
    };
}

small_forward!(forward_small4, 4);

small_forward!(forward_small8, 8);

suffix_kernel!(backward_suffix4, 4; (a0, b0, 0), (a1, b1, 1), (a2, b2, 2), (a3, b3, 3));
suffix_kernel!(backward_suffix8, 8; (a0, b0, 0), (a1, b1, 1), (a2, b2, 2), (a3, b3, 3),
    (a4, b4, 4), (a5, b5, 5), (a6, b6, 6), (a7, b7, 7));

/// Elements of a chunk: the [`U`] vectors whose lookups are interleaved.
const CHUNK: usize = U * LANES;

/// A value that starts on a cache line.
#[repr(C, align(64))]
struct CacheLines<T>(T);

/// Per chunk of [`U`] vectors: the lookups and `gx`, and each element's histogram offset and
/// `(gy, gy·x)` (`f32` pairs) into one half of two buffers, while the chunk before it (in the
/// other half) is added into the histogram in `f64`, 16 elements after each step of the
/// lookups (the rest after them).
///
/// The update is scalar, one read-modify-write of a bin per element, bound by that chain
/// however few other instructions it has, and the lookups are vector work: one after the
/// other, their costs add up. Slipped between the steps of lookups whose results it does not
/// wait for, the update overlaps them (after each chunk's lookups, unsliced, it would not: the
/// out-of-order window then holds only the one or the other). The slice is 16 elements per
/// step: smaller slices, between the single vectors' steps, split the vector code's schedule,
/// and larger ones measured slower too.
///
/// Elements go [`COPIES`] at a time into separate copies, in the order they are processed
/// (each run's whole chunks as they come, the runs' tails when a chunk of them is full: an
/// order fixed by the work item's runs alone, whichever thread runs it); four pairs are
/// widened per load and four 16-bit offsets come per load.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
unsafe fn backward_histogram<const STEPS: u32, const G: usize>(
    t: &FastTable,
    stride: usize,
    xp: *const f32,
    gp: *mut f32,
    runs: &Runs,
    bins: &mut [[f64; 2]],
) {
    debug_assert_eq!(bins.len(), COPIES * stride);
    // Offsets into `bins` (in f64) fit in 16 bits: 2·COPIES·stride ≤ 2·8·512.
    const _: () = assert!(2 * COPIES * (MAX_THRESHOLDS + 1) <= 1 << 16);
    let bp = bins.as_mut_ptr().cast::<f64>();
    // On cache lines: the vector stores into them and the loads from them would otherwise
    // each touch two lines.
    let mut offsets = CacheLines([0u16; 2 * CHUNK]);
    let mut pairs = CacheLines([0.0f32; 4 * CHUNK]);
    let (op, pp) = (offsets.0.as_mut_ptr(), pairs.0.as_mut_ptr());
    // SAFETY: element accesses are within the runs (masked loads and stores for partial
    // vectors); buffer accesses are within the half `h < 2` of 2·CHUNK entries; an interval is
    // the number of thresholds below the element, at most K < K + 1 = stride (the padding is
    // +∞), so bin accesses stay in `bins`.
    unsafe {
        let a0 = Table32::load(t.slopes(0));
        let b0 = Table32::load(t.intercepts(0));
        // The pairs are stored interleaved within 128-bit lanes, `unpacklo(gy, gy·x)` then
        // `unpackhi`: buffer position `p` of a vector holds its element `order[p]`, and the
        // intervals are permuted the same way.
        let order = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
        // Buffer position `e` goes to histogram copy `e mod COPIES` (COPIES divides the 16
        // lanes of a vector): the buffer holds each element's f64 offset `2·(copy·stride + j)`
        // into `bins`, computed 16 at a time here rather than one by one in the scalar loop.
        let copy_offsets: [i32; LANES] =
            std::array::from_fn(|p| (2 * (p % COPIES) * stride) as i32);
        let copy_offsets = _mm512_loadu_si512(copy_offsets.as_ptr().cast());
        // Vector `v` of half `h`, at element `i`, after its lookup: gx, and its offsets and
        // pairs into the buffers.
        let finish = |h: usize, v: usize, i: usize, x: __m512, a: __m512, j: __m512i, m: Part| {
            let gyx;
            let gy = match m {
                Part::Full => {
                    let gy = _mm512_loadu_ps(gp.add(i));
                    _mm512_storeu_ps(gp.add(i), _mm512_mul_ps(gy, a));
                    gyx = _mm512_mul_ps(gy, x);
                    gy
                }
                Part::Masked(m) => {
                    let gy = _mm512_maskz_loadu_ps(m, gp.add(i));
                    _mm512_mask_storeu_ps(gp.add(i), m, _mm512_mul_ps(gy, a));
                    gyx = _mm512_mul_ps(gy, x);
                    gy
                }
                Part::Overlap(m) => {
                    // Lanes outside `m` hold gx already: written back as they are, and
                    // (0, 0) into the histogram.
                    let held = _mm512_loadu_ps(gp.add(i));
                    let gy = _mm512_maskz_mov_ps(m, held);
                    _mm512_storeu_ps(gp.add(i), _mm512_mask_mul_ps(held, m, gy, a));
                    gyx = _mm512_maskz_mul_ps(m, gy, x);
                    gy
                }
            };
            let j = _mm512_permutexvar_epi32(order, j);
            let at = _mm512_add_epi32(_mm512_add_epi32(j, j), copy_offsets);
            let b = h * CHUNK + v * LANES;
            _mm256_storeu_si256(op.add(b).cast(), _mm512_cvtepi32_epi16(at));
            _mm512_storeu_ps(pp.add(2 * b), _mm512_unpacklo_ps(gy, gyx));
            _mm512_storeu_ps(pp.add(2 * b + LANES), _mm512_unpackhi_ps(gy, gyx));
        };
        // The first `len` elements of half `h` into the histogram. Padded lanes carry (0, 0)
        // and a valid offset: adding them changes nothing.
        let update = |start: usize, len: usize| {
            let mut e = start;
            while e < start + len {
                for copy in (0..COPIES).step_by(4) {
                    let four = _mm512_cvtps_pd(_mm256_loadu_ps(pp.add(2 * (e + copy))));
                    let at = op.add(e + copy).cast::<u64>().read_unaligned();
                    let adds = [
                        (at as u16, _mm512_castpd512_pd128(four)),
                        ((at >> 16) as u16, _mm512_extractf64x2_pd::<1>(four)),
                        ((at >> 32) as u16, _mm512_extractf64x2_pd::<2>(four)),
                        ((at >> 48) as u16, _mm512_extractf64x2_pd::<3>(four)),
                    ];
                    for (at, add) in adds {
                        let bin = bp.add(at as usize);
                        _mm_storeu_pd(bin, _mm_add_pd(_mm_loadu_pd(bin), add));
                    }
                }
                e += COPIES;
            }
        };
        // The half the next chunk goes to, and the elements waiting in the other one.
        let (mut half, mut waiting) = (0, 0);
        // One chunk: U vectors' lookups, with the waiting chunk's update 16 elements between
        // their steps, then their gx and buffers; vector `u` starts at element `$at(u).0`,
        // with lane mask `$at(u).1`. (A macro: as a closure, the fast path measured slower.)
        macro_rules! chunk {
            ($at:expr) => {{
                let at = $at;
                let x: [__m512; U] = std::array::from_fn(|u| {
                    let (i, m) = at(u);
                    m.load(xp.add(i))
                });
                let (mut next, stop) = ((1 - half) * CHUNK, (1 - half) * CHUNK + waiting);
                let r = lookup::<STEPS, G, U, false>(t, x, a0, b0, &mut || {
                    if next < stop {
                        update(next, LANES);
                        next += LANES;
                    }
                });
                for u in 0..U {
                    let (i, m) = at(u);
                    finish(half, u, i, x[u], r[u].0, r[u].2, m);
                }
                update(next, stop - next);
                (half, waiting) = (1 - half, CHUNK);
            }};
        }
        // The runs' tails, as in `forward_interleaved`.
        let mut tails = [(0usize, Part::Full); U];
        let mut filled = 0;
        for (r, &(off, run_len)) in runs.iter().enumerate() {
            let end = off + run_len;
            let d = prefetch_distance(runs, r);
            if let Some(&(o, l)) = runs.get(r + 1) {
                // The next run's last line (its partial vector's: the per-vector prefetches
                // below cover the full ones).
                prefetch(xp.wrapping_add(o + l - 1));
                prefetch_w(gp.wrapping_add(o + l - 1));
            }
            let mut i = off;
            while i < end {
                if i + CHUNK <= end {
                    for u in 0..U {
                        prefetch(xp.wrapping_add(i + u * LANES + d));
                        prefetch_w(gp.wrapping_add(i + u * LANES + d));
                    }
                    chunk!(|u: usize| (i + u * LANES, Part::Full));
                    i += CHUNK;
                    continue;
                }
                prefetch(xp.wrapping_add(i + d));
                prefetch_w(gp.wrapping_add(i + d));
                tails[filled] = Part::at(i, off, end);
                filled += 1;
                i += LANES;
                if filled == U {
                    chunk!(|u: usize| tails[u]);
                    filled = 0;
                }
            }
        }
        // The last vectors (fewer than U) one at a time.
        for (v, &(i, m)) in tails[..filled].iter().enumerate() {
            let x = m.load(xp.add(i));
            let [(a, _, j)] = lookup::<STEPS, G, 1, false>(t, [x], a0, b0, &mut || {});
            finish(half, v, i, x, a, j, m);
        }
        update((1 - half) * CHUNK, waiting);
        update(half * CHUNK, filled * LANES);
    }
}
