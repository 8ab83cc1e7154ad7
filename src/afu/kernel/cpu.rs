//! Fused AFU kernels on plain slices (CPU, multi-threaded, deterministic).
//!
//! Forward computes `y = G(x)` in one pass; backward computes `gx = gy·G'(x)` and the
//! gradients of all `3N+1` parameters per AFU, without ever materialising the `M × N` hidden
//! tensor of the reference implementation.
//!
//! Paths:
//! - **Direct** (the smooth bases; the relu family only on CPUs without AVX-512 up to 16 hidden
//!   units, or with non-finite parameters): `O(N)` per element, vectorised across blocks of
//!   elements — a branch-free `exp` for the smooth bases, a select for the relu family, whose
//!   `w0·x + b0` is rounded exactly as the reference rounds it.
//! - **Interval lookup** (linear, relu, leaky-relu; module `pwl`): `G` is exactly
//!   `A_j·x + B_j` on the interval `j` between the units' exact float thresholds, so one lookup
//!   per element gives `y` and `G'`, and the parameter gradients come from per-interval sums of
//!   `gy` and `gy·x`: cost nearly independent of `N`. Every element, also one on a kink, gets
//!   the reference's side for every unit (`ψ'(0)` is the left derivative). AVX-512 kernels for
//!   `f32` in module `pwl_avx512`.
//!
//! Work is split into items that depend only on the tensor's shape (never on the number of
//! threads); each item's parameter-gradient partial sums are kept in `f64` and reduced in item
//! order, so the same inputs give bit-identical results on every run and every machine size.

use super::pwl;
use crate::afu::base::BaseActivation;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    /// polynomial (relative error ~2 ulp). Rounding and the `2^n` scale use bit tricks, so the
    /// function has no branch and no libm call (hand-written: std's `exp` does not vectorise).
    #[inline(always)]
    fn exp_k(self) -> Self {
        const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
        let x = self.clamp(Self::EXP_MIN, Self::EXP_MAX);
        let t = x * std::f32::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let mut p = 1.987_569_1e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let e = p * r * r + r + 1.0;
        // The low mantissa bits of `t` hold n (two's complement around MAGIC's pattern).
        let bits = t.to_bits().wrapping_sub(0x4B40_0000_u32.wrapping_sub(127)) << 23;
        e * f32::from_bits(bits)
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

/// How the input is laid out: `[outer, channels, inner]` (row-major). Element `(o, c, i)` uses
/// AFU number `c`. A shared AFU is `channels = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Product of the axes before the channel axis.
    pub outer: usize,
    /// Number of AFUs.
    pub channels: usize,
    /// Product of the axes after the channel axis.
    pub inner: usize,
}

impl Layout {
    /// Layout of a tensor of shape `dims` under `channels` AFUs (axis 1 when `channels > 1`).
    pub fn of(dims: &[usize], channels: usize) -> Layout {
        let m: usize = dims.iter().product();
        if channels == 1 {
            Layout {
                outer: 1,
                channels: 1,
                inner: m,
            }
        } else {
            Layout {
                outer: dims.first().copied().unwrap_or(1),
                channels,
                inner: dims.iter().skip(2).product(),
            }
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parameters of `C` AFUs, each row-major `[C, N]` (`b1`: `[C]`).
#[derive(Debug, Clone, Copy)]
pub struct ParamSlices<'a, T> {
    /// Base activation.
    pub base: BaseActivation,
    /// Hidden units `N`.
    pub hidden: usize,
    /// `[C, N]`
    pub w0: &'a [T],
    /// `[C, N]`
    pub b0: &'a [T],
    /// `[C, N]`
    pub w1: &'a [T],
    /// `[C]`
    pub b1: &'a [T],
}

impl<T> ParamSlices<'_, T> {
    pub(super) fn channel(&self, c: usize) -> (&[T], &[T], &[T], &T) {
        let r = c * self.hidden..(c + 1) * self.hidden;
        (
            &self.w0[r.clone()],
            &self.b0[r.clone()],
            &self.w1[r],
            &self.b1[c],
        )
    }
}

/// Gradients of the parameters, same shapes as [`ParamSlices`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrads<T> {
    /// `[C, N]`
    pub w0: Vec<T>,
    /// `[C, N]`
    pub b0: Vec<T>,
    /// `[C, N]`
    pub w1: Vec<T>,
    /// `[C]`
    pub b1: Vec<T>,
}

/// Target number of elements per work item (a function of the shape only).
pub(super) const ITEM_ELEMENTS: usize = 1 << 15;
/// Up to this many hidden units, a relu-family AFU is evaluated directly, unit by unit,
/// vectorised like the smooth bases (a few flops per unit, and exactly the reference's rounding
/// of `w0·x + b0`); above it the interval lookup, whose cost hardly depends on N, is cheaper.
const DIRECT_MAX_HIDDEN: usize = 16;
/// Elements per block in the smooth path (a multiple of [`LANES`]).
const BLOCK: usize = 256;
/// Independent accumulator lanes (lets the compiler vectorise the reductions).
const LANES: usize = 16;

/// One unit of parallel work: elements `[start, end)` of channel `channel`, counted along that
/// channel's own sequence (`outer × inner` elements).
#[derive(Debug, Clone, Copy)]
pub(super) struct Item {
    pub(super) channel: usize,
    start: usize,
    end: usize,
}

/// Most elements per work item of a tensor with several channels (see [`items`]).
const CHANNEL_ITEM_ELEMENTS: usize = 1 << 16;
/// Fewest work items of a tensor with several channels, where it has the elements (a few
/// channels are then cut into several pieces each, to keep every thread busy).
const MIN_CHANNEL_ITEMS: usize = 16;
/// Fewest channels whose items are ordered by halves (see [`items`]): with halves of at least
/// three channels, consecutive items are never neighbouring channels (with four, channel 2
/// would be followed by channel 1).
const HALVES_MIN_CHANNELS: usize = 5;

/// The work items of `layout` (a function of the shape only, so that the per-item partial sums
/// are added up the same way run after run).
///
/// One channel: pieces of about [`ITEM_ELEMENTS`], in order.
///
/// Several channels: each channel's elements cut into `P` pieces (at most
/// [`CHANNEL_ITEM_ELEMENTS`] each, and at least [`MIN_CHANNEL_ITEMS`] items in all); piece by
/// piece, channel `k` of the first half is followed by channel `k + ⌈C/2⌉` of the second.
/// Threads take consecutive items, so they work at the same time on the same piece of channels
/// half the tensor's channels apart: never on neighbouring channels' planes, which share a cache
/// line at each end (the same piece of neighbouring channels at once measured 1.5× slower), and
/// both go through the same stretch of the tensor. On the 64×32×26×26 benchmark tensor (one
/// piece per channel), with N = 128, 2 threads, in a spell where other tenants loaded the
/// VM's memory, the backward pass took 0.51–0.63 ms against 0.81–0.84 with the earlier order
/// (two pieces per channel, neighbouring channels on different pieces). With fewer than
/// [`HALVES_MIN_CHANNELS`] channels, `P` rounds of one item per channel, channel `c` taking
/// piece `(c + round) mod P`, keep neighbours apart instead.
pub(super) fn items(layout: Layout) -> Vec<Item> {
    let per_channel = layout.outer * layout.inner;
    let channels = layout.channels;
    let pieces = if channels == 1 {
        per_channel.div_ceil(ITEM_ELEMENTS)
    } else {
        per_channel
            .div_ceil(CHANNEL_ITEM_ELEMENTS)
            .max(MIN_CHANNEL_ITEMS.div_ceil(channels))
            .min(per_channel)
    }
    .max(1);
    let step = per_channel.div_ceil(pieces).max(1);
    let item = |channel: usize, piece: usize| {
        let start = piece * step;
        (start < per_channel).then(|| Item {
            channel,
            start,
            end: (start + step).min(per_channel),
        })
    };
    let mut out = Vec::with_capacity(channels * pieces);
    if channels >= HALVES_MIN_CHANNELS {
        let half = channels.div_ceil(2);
        for piece in 0..pieces {
            for k in 0..half {
                out.extend(item(k, piece));
                if k + half < channels {
                    out.extend(item(k + half, piece));
                }
            }
        }
    } else {
        for round in 0..pieces {
            for channel in 0..channels {
                out.extend(item(channel, (channel + round) % pieces));
            }
        }
    }
    out
}

/// `f(i)` for every `i` in `0..n`, in parallel, results in index order. The calling thread
/// takes part: it claims indices from a shared counter alongside `current_num_threads() − 1`
/// pool tasks, so work starts at once instead of after a sleeping worker wakes up (tens of µs on
/// a VM, against kernels of 0.1–1 ms). Which thread runs an index changes nothing in its
/// result, so results are the same run after run.
///
/// The calling thread then waits only for the indices other threads have claimed and not yet
/// finished, spinning (each takes a few to a few tens of µs): it does not wait for the pool
/// tasks themselves, which may not even have started, and does not block. Waiting for them in
/// a `rayon` scope, the calling thread (not a pool thread) went to sleep whenever it finished
/// first, and took 10–50 µs to wake up again: measured over the forward and backward passes
/// of the fused AFU on a 64×32×26×26 tensor, 5–19 µs per call on average, over 5 µs in half
/// of them. A pool task that starts after every index is claimed finds nothing to do and
/// touches nothing of the caller's.
pub(super) fn par_map<R: Send + 'static>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let helpers = rayon::current_num_threads()
        .saturating_sub(1)
        .min(n.saturating_sub(1));
    if helpers == 0 {
        return (0..n).map(f).collect();
    }
    let f: &(dyn Fn(usize) -> R + Sync) = &f;
    // SAFETY: only the lifetime is changed. `f` is called only for a claimed index, and this
    // function returns (or unwinds) only once every claimed index is finished, so no call of
    // `f` outlives it; a pool task that claims nothing never dereferences `f`.
    let f: *const (dyn Fn(usize) -> R + Sync + 'static) = unsafe { std::mem::transmute(f) };
    let shared = Arc::new(ParMap {
        n,
        f,
        next: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        results: Mutex::new(Vec::with_capacity(n)),
        panic: Mutex::new(None),
    });
    linger::starting();
    for _ in 0..helpers {
        let shared = Arc::clone(&shared);
        rayon::spawn(move || shared.participate());
    }
    shared.participate();
    let mut spins = 0u32;
    while shared.finished.load(Ordering::Acquire) < n {
        // Spin while the other threads finish their last index; yield the CPU if that takes
        // long (the other thread may have been descheduled).
        if spins < 1 << 14 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    linger::after();
    if let Some(payload) = lock(&shared.panic).take() {
        std::panic::resume_unwind(payload);
    }
    let mut done = std::mem::take(&mut *lock(&shared.results));
    done.sort_unstable_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The state of one [`par_map`], shared with its pool tasks (which may outlive the call).
struct ParMap<R> {
    n: usize,
    /// The caller's function: called only for a claimed index (see [`par_map`]).
    f: *const (dyn Fn(usize) -> R + Sync + 'static),
    /// The next index to claim.
    next: AtomicUsize,
    /// Indices finished (their results stored, or their panic recorded).
    finished: AtomicUsize,
    results: Mutex<Vec<(usize, R)>>,
    /// The first panic of `f`, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

// SAFETY: `f` is `Sync` and only called while the caller of `par_map` waits (see there); the
// rest is atomics and mutexes over `Send` data.
unsafe impl<R: Send> Send for ParMap<R> {}
unsafe impl<R: Send> Sync for ParMap<R> {}

impl<R: Send> ParMap<R> {
    /// Claims and runs indices until none is left.
    fn participate(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: index `i` is claimed and not yet finished, so the caller of `par_map` is
            // still waiting and `f` (with what it borrows) is alive.
            let f = unsafe { &*self.f };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))) {
                Ok(r) => lock(&self.results).push((i, r)),
                Err(payload) => {
                    lock(&self.panic).get_or_insert(payload);
                }
            }
            self.finished.fetch_add(1, Ordering::Release);
        }
    }
}

/// Locks `m`, ignoring poisoning (the data is only pushed to and taken).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a pool thread awake for a while after each [`par_map`], so that the next one (the
/// backward pass after the forward, the next layer's kernel) finds its helper running: a pool
/// thread that has gone to sleep took 17–32 µs to start on a 2-vCPU VM (median over 50 calls
/// after a pause of 50 µs or more), against ~1 µs when awake, and the kernels run for 0.1–0.5
/// ms. OpenMP runtimes do the same (they spin for a while before they block). The lingering
/// job runs any other pending pool work meanwhile (`rayon::yield_now`), so it never holds up
/// another parallel operation, and it ends as soon as the next `par_map` starts, or after
/// `AFU_LINGER_US` microseconds (environment; default [`DEFAULT_US`](linger::DEFAULT_US), 0
/// turns it off).
mod linger {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// How long a pool thread stays awake after a `par_map` unless `AFU_LINGER_US` says. Long
    /// enough to span the single-threaded tensor operations between an AFU's forward and
    /// backward kernels: on a 1.38 M-element tensor (`L = Σ g·AFU(x)`: the product, the sum
    /// and their backward) that gap measured 420–460 µs in quiet spells and 570–600 µs in busy
    /// ones, where with 500 µs the backward's helper started 30–47 µs late (median over 300
    /// passes; 0.8 µs with 2 ms).
    pub(super) const DEFAULT_US: u64 = 1000;
    /// Bumped by every `par_map` at its start: the lingering job then stops.
    static EPOCH: AtomicU64 = AtomicU64::new(0);
    /// Whether a lingering job is running (at most one at a time).
    static LINGERING: AtomicBool = AtomicBool::new(false);

    /// The lingering time: `AFU_LINGER_US` when set to a number, else [`DEFAULT_US`].
    fn duration() -> Duration {
        static US: OnceLock<u64> = OnceLock::new();
        Duration::from_micros(*US.get_or_init(|| {
            std::env::var("AFU_LINGER_US")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_US)
        }))
    }

    /// Called by `par_map` before it spawns its helpers: a lingering job gives its thread up.
    pub(super) fn starting() {
        EPOCH.fetch_add(1, Ordering::Relaxed);
    }

    /// Called by `par_map` when it is done: keeps one pool thread awake.
    pub(super) fn after() {
        let linger = duration();
        if linger.is_zero() || LINGERING.swap(true, Ordering::AcqRel) {
            return;
        }
        let epoch = EPOCH.load(Ordering::Relaxed);
        rayon::spawn(move || {
            let start = Instant::now();
            while EPOCH.load(Ordering::Relaxed) == epoch && start.elapsed() < linger {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
            LINGERING.store(false, Ordering::Release);
        });
    }
}

/// Visits the contiguous runs of an item: `(flat offset, length)`.
#[inline(always)]
pub(super) fn for_each_run(layout: Layout, item: Item, mut f: impl FnMut(usize, usize)) {
    if item.start >= item.end {
        return;
    }
    let inner = layout.inner;
    // One division for the first run; the others start their planes (no division per run:
    // an item of 26×26 planes has 64 runs).
    let (mut o, mut i) = (item.start / inner, item.start % inner);
    let mut k = item.start;
    while k < item.end {
        let len = (inner - i).min(item.end - k);
        f((o * layout.channels + item.channel) * inner + i, len);
        k += len;
        o += 1;
        i = 0;
    }
}

/// Calls `f` with the contiguous runs of an item, `(flat offset, length)`, collected (for
/// kernels that set up per item rather than per run) into a buffer this thread reuses from
/// one item to the next.
pub(super) fn with_item_runs<R>(
    layout: Layout,
    item: Item,
    f: impl FnOnce(&[(usize, usize)]) -> R,
) -> R {
    thread_local! {
        static RUNS: std::cell::Cell<Vec<(usize, usize)>> =
            const { std::cell::Cell::new(Vec::new()) };
    }
    let mut runs = RUNS.take();
    runs.clear();
    for_each_run(layout, item, |off, len| runs.push((off, len)));
    let r = f(&runs);
    RUNS.set(runs);
    r
}

/// The contiguous runs of an item, `(flat offset, length)`, in a vector of their own.
fn item_runs(layout: Layout, item: Item) -> Vec<(usize, usize)> {
    // At most one partial run at each end, whole planes between.
    let mut runs = Vec::with_capacity((item.end - item.start) / layout.inner.max(1) + 2);
    for_each_run(layout, item, |off, len| runs.push((off, len)));
    runs
}

/// A raw pointer that may be shared between threads; each work item writes a disjoint set of
/// elements through it.
pub(super) struct SharedMut<T>(pub(super) *mut T);

impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedMut<T> {}
// SAFETY: items cover disjoint element sets (see `items`/`for_each_run`), so no two threads
// ever write the same element, and the buffer outlives the parallel loop that uses it.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// # Safety
    /// `offset + len` must be within the buffer and no other thread may access that range.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, offset: usize, len: usize) -> &mut [T] {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(offset), len) }
    }
}

fn check_sizes<T>(x: &[T], layout: Layout, p: &ParamSlices<T>) {
    assert_eq!(x.len(), layout.len(), "AFU kernel: input size vs layout");
    let cn = layout.channels * p.hidden;
    assert!(
        p.hidden > 0 && p.w0.len() == cn && p.b0.len() == cn && p.w1.len() == cn,
        "AFU kernel: parameter sizes"
    );
    assert_eq!(p.b1.len(), layout.channels, "AFU kernel: b1 size");
}

/// The tables of the interval-lookup path, when it serves `p`: a relu-family base with finite
/// parameters, and either more than [`DIRECT_MAX_HIDDEN`] units or a vectorised (AVX-512)
/// lookup. Otherwise the per-unit path runs.
fn table_path<T: KernelFloat>(p: &ParamSlices<T>, layout: Layout) -> Option<pwl::Tables<T>> {
    let alpha = p.base.negative_slope()?;
    let tables = pwl::Tables::new(p, layout.channels, alpha)?;
    (p.hidden > DIRECT_MAX_HIDDEN || tables.vectorised()).then_some(tables)
}

/// What the kernels derive from the parameters alone (the interval-lookup tables of a
/// relu-family base): built once by the forward pass and handed to the backward pass of the same
/// parameters, which then does not rebuild it.
pub(crate) struct Prepared<T: KernelFloat> {
    tables: Option<pwl::Tables<T>>,
    channels: usize,
}

impl<T: KernelFloat> Prepared<T> {
    /// For parameters `p` applied with `layout`'s channel count.
    pub(crate) fn new(p: &ParamSlices<T>, layout: Layout) -> Self {
        Prepared {
            tables: table_path(p, layout),
            channels: layout.channels,
        }
    }

    /// The channel count it was built for.
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }
}

/// `y = G(x)` element-wise.
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters.
pub fn forward<T: KernelFloat>(x: &[T], layout: Layout, p: &ParamSlices<T>, y: &mut [T]) {
    check_sizes(x, layout, p);
    assert_eq!(y.len(), x.len(), "AFU kernel: output size");
    forward_into(
        x,
        layout,
        p,
        table_path(p, layout).as_ref(),
        SharedMut(y.as_mut_ptr()),
    );
}

/// `G(x)` element-wise into a new vector. On the vectorised interval-lookup path the output is
/// written without being zeroed first (one pass over the memory instead of two).
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters.
pub fn forward_to_vec<T: KernelFloat>(x: &[T], layout: Layout, p: &ParamSlices<T>) -> Vec<T> {
    check_sizes(x, layout, p);
    forward_prepared(x, layout, p, &Prepared::new(p, layout))
}

/// As [`forward_to_vec`], with what [`Prepared::new`] built from `p` and `layout`.
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters, or `prepared` was built for
/// another channel count.
pub(crate) fn forward_prepared<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    prepared: &Prepared<T>,
) -> Vec<T> {
    let mut y: Vec<T> = Vec::with_capacity(x.len());
    forward_prepared_into(
        x,
        layout,
        p,
        prepared,
        &mut y.spare_capacity_mut()[..x.len()],
    );
    // SAFETY: `forward_prepared_into` initialised the first x.len() elements.
    unsafe { y.set_len(x.len()) };
    y
}

/// As [`forward_prepared`], into `out` (`x.len()` elements, initialised on return). On the
/// vectorised interval-lookup path the output is written without being zeroed first (one pass
/// over the memory instead of two).
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters, or `prepared` was built for
/// another channel count.
pub(crate) fn forward_prepared_into<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    prepared: &Prepared<T>,
    out: &mut [std::mem::MaybeUninit<T>],
) {
    check_sizes(x, layout, p);
    assert_eq!(
        prepared.channels, layout.channels,
        "AFU kernel: prepared channels"
    );
    assert_eq!(out.len(), x.len(), "AFU kernel: output size");
    let tables = prepared.tables.as_ref();
    if !tables.is_some_and(|t| t.vectorised()) {
        // The other kernels write through `&mut [T]`: initialised memory.
        out.fill(std::mem::MaybeUninit::new(T::ZERO));
    }
    // The vectorised kernels only write through this pointer, every element at least once
    // (the work items' runs cover every element; a run's partial last vector rewrites a few
    // elements before it with the values they already hold).
    forward_into(x, layout, p, tables, SharedMut(out.as_mut_ptr().cast()));
}

/// The forward pass into `out` (`x.len()` elements), by the interval lookup when `tables` is
/// given (see [`table_path`]), else unit by unit.
fn forward_into<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    tables: Option<&pwl::Tables<T>>,
    out: SharedMut<T>,
) {
    if let Some(tables) = tables {
        pwl::forward(x, layout, &items(layout), p, tables, out);
        return;
    }
    let work = items(layout);
    par_map(work.len(), |i| {
        let args = SmoothItem::new(x, layout, work[i], p);
        // SAFETY: each item writes only its own elements of `out`.
        unsafe { dispatch_smooth!(p.base, forward_item, args, out) };
    });
}

/// `gx = gy·G'(x)` and the parameter gradients of `L` where `gy = ∂L/∂y`.
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters.
pub fn backward<T: KernelFloat>(
    x: &[T],
    gy: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    gx: &mut [T],
) -> ParamGrads<T> {
    assert_eq!(gy.len(), gx.len(), "AFU kernel: gradient size");
    gx.copy_from_slice(gy);
    backward_in_place(x, layout, p, gx)
}

/// As [`backward`], with one buffer that holds `gy` on entry and `gx` on return (saves the
/// allocation of `gx` when the caller owns `gy`).
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters.
pub fn backward_in_place<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    grad: &mut [T],
) -> ParamGrads<T> {
    check_sizes(x, layout, p);
    backward_prepared(x, layout, p, &Prepared::new(p, layout), grad)
}

/// As [`backward_in_place`], with what [`Prepared::new`] built from `p` and `layout` (for
/// instance by the forward pass).
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters, or `prepared` was built for
/// another channel count.
pub(crate) fn backward_prepared<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    prepared: &Prepared<T>,
    grad: &mut [T],
) -> ParamGrads<T> {
    check_sizes(x, layout, p);
    assert_eq!(
        prepared.channels, layout.channels,
        "AFU kernel: prepared channels"
    );
    assert_eq!(grad.len(), x.len(), "AFU kernel: gradient size");
    let n = p.hidden;
    // Each element's gy is read before its gx is written, by the same work item.
    let out = SharedMut(grad.as_mut_ptr());
    let work = items(layout);
    let mut grads = ParamGrads {
        w0: vec![T::ZERO; layout.channels * n],
        b0: vec![T::ZERO; layout.channels * n],
        w1: vec![T::ZERO; layout.channels * n],
        b1: vec![T::ZERO; layout.channels],
    };
    if let Some(tables) = &prepared.tables {
        return pwl::backward(x, layout, &work, p, tables, out);
    }
    let partials: Vec<SmoothPartial> = par_map(work.len(), |i| {
        let args = SmoothItem::new(x, layout, work[i], p);
        // SAFETY: each item reads and writes only its own elements of `grad`.
        unsafe { dispatch_smooth!(p.base, backward_item, args, out) }
    });
    for c in 0..layout.channels {
        let mut total = SmoothPartial::new(n);
        for (item, part) in work.iter().zip(&partials) {
            if item.channel == c {
                total.add(part);
            }
        }
        for i in 0..n {
            grads.w0[c * n + i] = T::from_f64(total.w0[i]);
            grads.b0[c * n + i] = T::from_f64(total.b0[i]);
            grads.w1[c * n + i] = T::from_f64(total.w1[i]);
        }
        grads.b1[c] = T::from_f64(total.b1);
    }
    grads
}

/// Walks an item's elements block by block (at most [`BLOCK`] elements each), as runs
/// `(flat offset, length)`. A plain method rather than a closure-taking helper, so that the
/// caller's loop body is compiled inside the caller (and with its target features).
struct BlockCursor {
    runs: Vec<(usize, usize)>,
    run: usize,
    pos: usize,
}

impl BlockCursor {
    fn new(layout: Layout, item: Item) -> Self {
        BlockCursor {
            runs: item_runs(layout, item),
            run: 0,
            pos: 0,
        }
    }

    /// Fills `offs` with the next block's runs and returns its element count (0 at the end).
    #[inline(always)]
    fn next_block(&mut self, offs: &mut Vec<(usize, usize)>) -> usize {
        offs.clear();
        let mut filled = 0;
        while filled < BLOCK && self.run < self.runs.len() {
            let (off, len) = self.runs[self.run];
            let take = (len - self.pos).min(BLOCK - filled);
            offs.push((off + self.pos, take));
            filled += take;
            self.pos += take;
            if self.pos == len {
                self.run += 1;
                self.pos = 0;
            }
        }
        filled
    }
}

#[inline(always)]
fn gather<T: Copy>(src: &[T], offs: &[(usize, usize)], dst: &mut [T]) {
    let mut k = 0;
    for &(off, len) in offs {
        dst[k..k + len].copy_from_slice(&src[off..off + len]);
        k += len;
    }
}

/// # Safety
/// The runs must be within the buffer behind `src` and owned by the calling work item.
#[inline(always)]
unsafe fn gather_shared<T: Copy>(src: &SharedMut<T>, offs: &[(usize, usize)], dst: &mut [T]) {
    let mut k = 0;
    for &(off, len) in offs {
        // SAFETY: guaranteed by the caller.
        dst[k..k + len].copy_from_slice(unsafe { src.slice(off, len) });
        k += len;
    }
}

/// # Safety
/// The runs must be within the buffer behind `dst` and owned by the calling work item.
#[inline(always)]
unsafe fn scatter<T: Copy>(dst: &SharedMut<T>, offs: &[(usize, usize)], src: &[T]) {
    let mut k = 0;
    for &(off, len) in offs {
        // SAFETY: guaranteed by the caller.
        unsafe { dst.slice(off, len) }.copy_from_slice(&src[k..k + len]);
        k += len;
    }
}

// ---------------------------------------------------------------------------------------------
// Smooth bases: O(N) per element, vectorised across the elements of a block.
// ---------------------------------------------------------------------------------------------

/// A smooth base activation as a type, so that each base gets its own monomorphised, vectorised
/// loop (a `match` inside the hot loop would block vectorisation).
trait Psi {
    /// `ψ(u)` and `ψ'(u)`, branch-free.
    fn eval<T: KernelFloat>(u: T) -> (T, T);
}

struct SigmoidPsi;
struct ReluPsi;
struct LeakyReluPsi;
struct LinearPsi;

/// `ψ(u) = u·s`, `ψ'(u) = s` with `s = 1` for `u > 0`, else `alpha` (the reference's left
/// derivative at 0): branch-free.
#[inline(always)]
fn pwl_eval<T: KernelFloat>(u: T, alpha: T) -> (T, T) {
    let s = if u > T::ZERO { T::ONE } else { alpha };
    (u * s, s)
}

impl Psi for ReluPsi {
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        pwl_eval(u, T::ZERO)
    }
}

impl Psi for LeakyReluPsi {
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        pwl_eval(u, T::from_f64(crate::afu::base::LEAKY_SLOPE))
    }
}

impl Psi for LinearPsi {
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        (u, T::ONE)
    }
}
struct TanhPsi;
struct SwishPsi;
struct MishPsi;

impl Psi for SigmoidPsi {
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        let one = T::ONE;
        let s = one / (one + (T::ZERO - u).exp_k());
        (s, s * (one - s))
    }
}

impl Psi for TanhPsi {
    /// `tanh(u) = 2σ(2u) − 1`
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        let one = T::ONE;
        let s = one / (one + (T::ZERO - (u + u)).exp_k());
        let t = s + s - one;
        (t, one - t * t)
    }
}

impl Psi for SwishPsi {
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        let one = T::ONE;
        let s = one / (one + (T::ZERO - u).exp_k());
        (u * s, s + u * s * (one - s))
    }
}

impl Psi for MishPsi {
    /// `tanh(softplus(u)) = q / (q + 2)` with `q = n(n + 2)`, `n = e^u` (capped where the ratio
    /// is 1 to working precision); `σ(u) = n / (1 + n)`.
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        let one = T::ONE;
        let two = one + one;
        let nexp = u.min_k(T::from_f64(20.0)).exp_k();
        let q = nexp * (nexp + two);
        let th = q / (q + two);
        let sig = nexp / (one + nexp);
        (u * th, th + u * (one - th * th) * sig)
    }
}

/// One work item of the smooth path with its AFU's parameters.
#[derive(Clone, Copy)]
struct SmoothItem<'a, T> {
    x: &'a [T],
    layout: Layout,
    item: Item,
    w0: &'a [T],
    b0: &'a [T],
    w1: &'a [T],
    b1: T,
}

impl<'a, T> SmoothItem<'a, T> {
    /// Work item `item` of `x` with its channel's parameters.
    fn new(x: &'a [T], layout: Layout, item: Item, p: &'a ParamSlices<'_, T>) -> Self
    where
        T: Copy,
    {
        let (w0, b0, w1, b1) = p.channel(item.channel);
        SmoothItem {
            x,
            layout,
            item,
            w0,
            b0,
            w1,
            b1: *b1,
        }
    }
}

/// Calls `$f::<T, P>` for the smooth base `$base`, compiled for the widest vector ISA the CPU
/// has (AVX-512, AVX2+FMA, or the baseline). No fused multiply-add is formed, so every path
/// gives bit-identical results.
macro_rules! dispatch_smooth {
    ($base:expr, $f:ident, $($arg:expr),*) => {{
        match $base {
            BaseActivation::Sigmoid => isa_dispatch!($f, SigmoidPsi, $($arg),*),
            BaseActivation::Tanh => isa_dispatch!($f, TanhPsi, $($arg),*),
            BaseActivation::Swish => isa_dispatch!($f, SwishPsi, $($arg),*),
            BaseActivation::Mish => isa_dispatch!($f, MishPsi, $($arg),*),
            BaseActivation::Relu => isa_dispatch!($f, ReluPsi, $($arg),*),
            BaseActivation::LeakyRelu => isa_dispatch!($f, LeakyReluPsi, $($arg),*),
            BaseActivation::Linear => isa_dispatch!($f, LinearPsi, $($arg),*),
        }
    }};
}

#[cfg(target_arch = "x86_64")]
macro_rules! isa_dispatch {
    ($f:ident, $p:ty, $($arg:expr),*) => {{
        if std::arch::is_x86_feature_detected!("avx512f") {
            $f::avx512::<T, $p>($($arg),*)
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            $f::avx2::<T, $p>($($arg),*)
        } else {
            $f::generic::<T, $p>($($arg),*)
        }
    }};
}

#[cfg(not(target_arch = "x86_64"))]
macro_rules! isa_dispatch {
    ($f:ident, $p:ty, $($arg:expr),*) => {{ $f::generic::<T, $p>($($arg),*) }};
}

use dispatch_smooth;
use isa_dispatch;

/// Forward pass of one item, per ISA.
mod forward_item {
    use super::*;

    #[inline(always)]
    unsafe fn body<T: KernelFloat, P: Psi>(a: SmoothItem<'_, T>, out: SharedMut<T>) {
        let mut xb = [T::ZERO; BLOCK];
        let mut yb = [T::ZERO; BLOCK];
        let mut cursor = BlockCursor::new(a.layout, a.item);
        let mut offs = Vec::with_capacity(BLOCK);
        loop {
            let n = cursor.next_block(&mut offs);
            if n == 0 {
                break;
            }
            gather(a.x, &offs, &mut xb[..n]);
            let (xs, ys) = (&xb[..n], &mut yb[..n]);
            ys.fill(a.b1);
            for i in 0..a.w0.len() {
                let (w0, b0, w1) = (a.w0[i], a.b0[i], a.w1[i]);
                for (yv, &xv) in ys.iter_mut().zip(xs) {
                    *yv += w1 * P::eval(w0 * xv + b0).0;
                }
            }
            // SAFETY: the item's runs are its own (caller's contract).
            unsafe { scatter(&out, &offs, &yb[..n]) };
        }
    }

    /// # Safety
    /// The item's elements of `out` are written by this call only.
    pub(super) unsafe fn generic<T: KernelFloat, P: Psi>(a: SmoothItem<'_, T>, out: SharedMut<T>) {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<T: KernelFloat, P: Psi>(a: SmoothItem<'_, T>, out: SharedMut<T>) {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<T: KernelFloat, P: Psi>(a: SmoothItem<'_, T>, out: SharedMut<T>) {
        unsafe { body::<T, P>(a, out) }
    }
}

/// Backward pass of one item, per ISA.
mod backward_item {
    use super::*;

    #[inline(always)]
    unsafe fn body<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<T>,
    ) -> SmoothPartial {
        let mut acc = SmoothPartial::new(a.w0.len());
        let mut xb = [T::ZERO; BLOCK];
        let mut gyb = [T::ZERO; BLOCK];
        let mut gxb = [T::ZERO; BLOCK];
        let mut cursor = BlockCursor::new(a.layout, a.item);
        let mut offs = Vec::with_capacity(BLOCK);
        loop {
            let len = cursor.next_block(&mut offs);
            if len == 0 {
                break;
            }
            // Pad to whole lanes with gy = 0: padded elements add nothing.
            let padded = len.div_ceil(LANES) * LANES;
            gather(a.x, &offs, &mut xb[..len]);
            // SAFETY: the item's runs are its own (caller's contract).
            unsafe { gather_shared(&out, &offs, &mut gyb[..len]) };
            xb[len..padded].fill(T::ZERO);
            gyb[len..padded].fill(T::ZERO);
            backward_block::<T, P>(
                &xb[..padded],
                &gyb[..padded],
                a.w0,
                a.b0,
                a.w1,
                &mut gxb[..padded],
                &mut acc,
            );
            // SAFETY: the item's runs are its own (caller's contract).
            unsafe { scatter(&out, &offs, &gxb[..len]) };
        }
        acc
    }

    /// # Safety
    /// The item's elements of `out` are written by this call only.
    pub(super) unsafe fn generic<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<T>,
    ) -> SmoothPartial {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<T>,
    ) -> SmoothPartial {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<T>,
    ) -> SmoothPartial {
        unsafe { body::<T, P>(a, out) }
    }
}

/// Per-item `f64` partial sums of the parameter gradients (smooth path).
struct SmoothPartial {
    w0: Vec<f64>,
    b0: Vec<f64>,
    w1: Vec<f64>,
    b1: f64,
}

impl SmoothPartial {
    fn new(n: usize) -> Self {
        SmoothPartial {
            w0: vec![0.0; n],
            b0: vec![0.0; n],
            w1: vec![0.0; n],
            b1: 0.0,
        }
    }

    fn add(&mut self, o: &SmoothPartial) {
        for i in 0..self.w0.len() {
            self.w0[i] += o.w0[i];
            self.b0[i] += o.b0[i];
            self.w1[i] += o.w1[i];
        }
        self.b1 += o.b1;
    }
}

/// Backward over one block whose length is a multiple of [`LANES`].
#[inline(always)]
fn backward_block<T: KernelFloat, P: Psi>(
    x: &[T],
    gy: &[T],
    w0: &[T],
    b0: &[T],
    w1: &[T],
    gx: &mut [T],
    acc: &mut SmoothPartial,
) {
    gx.fill(T::ZERO);
    for i in 0..w0.len() {
        let (a, b, w) = (w0[i], b0[i], w1[i]);
        let aw = a * w;
        let mut s_psi = [T::ZERO; LANES];
        let mut s_d = [T::ZERO; LANES];
        let mut s_dx = [T::ZERO; LANES];
        for ((xc, gc), gxc) in x
            .chunks_exact(LANES)
            .zip(gy.chunks_exact(LANES))
            .zip(gx.chunks_exact_mut(LANES))
        {
            for l in 0..LANES {
                let (psi, d) = P::eval(a * xc[l] + b);
                let g = gc[l];
                let gd = g * d;
                s_psi[l] += g * psi;
                s_d[l] += gd;
                s_dx[l] += gd * xc[l];
                gxc[l] += aw * d;
            }
        }
        let sum = |v: [T; LANES]| v.iter().fold(0.0f64, |s, &t| s + t.to_f64());
        acc.w1[i] += sum(s_psi);
        acc.b0[i] += w.to_f64() * sum(s_d);
        acc.w0[i] += w.to_f64() * sum(s_dx);
    }
    let mut s_b1 = 0.0f64;
    for (gxv, &g) in gx.iter_mut().zip(gy) {
        *gxv = *gxv * g;
        s_b1 += g.to_f64();
    }
    acc.b1 += s_b1;
}

#[cfg(test)]
mod tests {
    use super::{Layout, for_each_run, items, par_map};

    #[test]
    fn items_cover_every_element_once_with_neighbours_on_different_channels() {
        for (dims, channels) in [
            (vec![64, 32, 26, 26], 32),
            (vec![3, 5, 7], 5),
            (vec![200_000], 1),
            (vec![0, 4, 3], 4),
            (vec![100, 7, 2000], 7),
            (vec![200, 3, 1000], 3),
            (vec![9, 2, 5], 2),
            (vec![6, 4, 30], 4),
            (vec![6, 6, 30], 6),
        ] {
            let layout = Layout::of(&dims, channels);
            let work = items(layout);
            let mut seen = vec![0u8; layout.len()];
            for &item in &work {
                for_each_run(layout, item, |off, len| {
                    seen[off..off + len].iter_mut().for_each(|s| *s += 1);
                });
            }
            assert!(seen.iter().all(|&s| s == 1), "{dims:?}");
            if channels > 1 {
                assert!(
                    work.windows(2).all(|w| w[0].channel != w[1].channel),
                    "{dims:?}"
                );
            }
            if channels >= super::HALVES_MIN_CHANNELS {
                // Items taken at the same time: never the same piece of neighbouring channels.
                assert!(
                    work.windows(2)
                        .all(|w| w[0].start != w[1].start
                            || w[0].channel.abs_diff(w[1].channel) >= 2),
                    "{dims:?}"
                );
            }
        }
    }

    #[test]
    fn par_map_runs_every_index_once_and_returns_results_in_order() {
        for n in [0, 1, 2, 3, 17, 1000] {
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let out = par_map(n, |i| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i * i
            });
            assert_eq!(out, (0..n).map(|i| i * i).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), n);
        }
        // From inside a pool worker too (nested parallelism).
        let nested = rayon::join(|| par_map(50, |i| i + 1), || par_map(7, |i| i));
        assert_eq!(nested.0, (1..=50).collect::<Vec<_>>());
        assert_eq!(nested.1, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn par_map_reraises_a_panic_after_every_claimed_index_is_done() {
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            par_map(64, |i| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                assert!(i != 13, "index 13 fails");
                finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        }));
        let payload = result.expect_err("the panic reaches the caller");
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        assert_eq!(message, Some("index 13 fails"));
        // Every other index ran to its end before par_map returned.
        assert_eq!(finished.into_inner(), 63);
    }
}
