//! The fused CPU kernels of every learnable family: one pass over the tensor for the forward,
//! one for the backward (input gradient and every parameter gradient together), generic over
//! the family's [`ScalarFamily`] math and the float type.
//!
//! # Vectorisation
//! The forward hands each run of one channel to the family's `value_run` in pieces of
//! `BLOCK` elements; the backward hands it to the family's `backward_blocks` in spans of
//! [`FLUSH`] elements (blocks of [`LANES`] through `backward_lanes`, unless the family
//! overrides it). The compiler vectorises both across the elements. A run's last, partial
//! block is padded with `x = 0` and upstream gradient 0, which add nothing to the parameter
//! gradients. The chunk loops are compiled for AVX-512,
//! for AVX2+FMA and for the baseline, chosen at run time ([`Isa::Native`]) or the baseline only
//! ([`Isa::Portable`], `AFU_KERNEL_ISA=portable`); the AVX-512 copy calls the families'
//! `*_avx512` forms (PWLU's register tables). The compiler forms no fused multiply-add; KAF
//! asks for them explicitly (`mul_add`), which every path computes exactly rounded (the
//! baseline through libm's `fma`). Every sum has a fixed order, so every path gives the same
//! bits.
//!
//! # Determinism
//! The elements are cut into chunks of [`CHUNK`] elements, fixed by the tensor's size alone
//! (never by the number of threads). Within a chunk, each parameter's gradient builds up in
//! one accumulator per lane, in `T`, over at most [`FLUSH`] elements of a run; the lanes are
//! then added in lane order into the chunk's `f64` partial sums (per channel it touches). The
//! partial sums are added chunk by chunk in chunk order. The result is the same bits on every
//! run and for any number of threads, without atomics. No `elements × parameters` tensor is
//! ever built: the extra memory of the backward is one partial row per channel a chunk
//! touches, and one row of lanes per parameter.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use super::math::{FamilyFloat, LANES, Lanes, ScalarFamily};
pub use crate::afu::kernel::isa::Isa;
pub use crate::afu::kernel::layout::Layout;
use crate::afu::kernel::pool::par_map;
use crate::ops::float::KernelFloat;

/// Elements per chunk (work item). Large enough that a chunk's scheduling and its partial
/// sums cost little next to its elements, small enough that a layer of a small batch still
/// splits over the threads.
pub const CHUNK: usize = 8192;

/// Elements of one run whose parameter gradients a lane accumulator sums in `T` before they
/// go to the `f64` partial sums (`FLUSH / LANES` values per lane: bounds the rounding error
/// of `f32` accumulation). A multiple of [`LANES`].
pub const FLUSH: usize = 1024;

/// Elements the forward pass evaluates into its buffer at a time (a multiple of [`LANES`]).
const BLOCK: usize = 256;

/// Where a kernel writes its output: initialised values, or a fresh buffer.
pub trait OutSlot<T>: Send {
    /// Stores `v`.
    fn put(&mut self, v: T);
}

impl<T: Send> OutSlot<T> for T {
    #[inline(always)]
    fn put(&mut self, v: T) {
        *self = v;
    }
}

impl<T: Send> OutSlot<T> for MaybeUninit<T> {
    #[inline(always)]
    fn put(&mut self, v: T) {
        self.write(v);
    }
}

/// The runs of consecutive elements of one channel within `[start, end)`, in order, as
/// `(channel, run start, run end)`.
struct Runs {
    inner: usize,
    channels: usize,
    e: usize,
    end: usize,
}

impl Runs {
    fn new(layout: Layout, start: usize, end: usize) -> Self {
        Runs {
            inner: layout.inner.max(1),
            channels: layout.channels.max(1),
            e: start,
            end,
        }
    }
}

impl Iterator for Runs {
    type Item = (usize, usize, usize);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.e >= self.end {
            return None;
        }
        let row = self.e / self.inner;
        let stop = ((row + 1) * self.inner).min(self.end);
        let run = (row % self.channels, self.e, stop);
        self.e = stop;
        Some(run)
    }
}

/// `buf` cut into its chunks, each to be taken once by the work item of its index.
fn chunk_slots<S>(buf: &mut [S]) -> Vec<Mutex<Option<&mut [S]>>> {
    buf.chunks_mut(CHUNK).map(|c| Mutex::new(Some(c))).collect()
}

/// Takes chunk `k` out of `slots` (each is taken exactly once).
fn take_chunk<'a, S>(slots: &[Mutex<Option<&'a mut [S]>>], k: usize) -> &'a mut [S] {
    slots[k]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("each chunk is taken once")
}

/// Which compiled copy of the chunk loops runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Path {
    /// The widest path the CPU has under [`Isa::Native`], the baseline under
    /// [`Isa::Portable`].
    fn of(isa: Isa) -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if isa == Isa::Native {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return Path::Avx512;
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    return Path::Avx2;
                }
            }
        }
        let _ = isa;
        Path::Generic
    }
}

/// `y = g(x)` element-wise; `p` holds the `[C, P]` parameters (`C = layout.channels`). The
/// paths follow `AFU_KERNEL_ISA` ([`Isa::from_env`]).
pub fn forward<F: ScalarFamily, T: FamilyFloat>(
    f: F,
    x: &[T],
    layout: Layout,
    p: &[T],
    y: &mut [T],
) {
    forward_into(f, x, layout, p, y, Isa::from_env());
}

/// As [`forward`], into `y` of initialised values or of fresh [`MaybeUninit`] ones (all of
/// which it writes), on the paths `isa` selects.
///
/// # Panics
/// If `x` and `y` differ in length or `p` is not `[C, P]`.
pub fn forward_into<F: ScalarFamily, T: FamilyFloat, O: OutSlot<T>>(
    f: F,
    x: &[T],
    layout: Layout,
    p: &[T],
    y: &mut [O],
    isa: Isa,
) {
    let np = f.n_params();
    assert_eq!(x.len(), y.len(), "family forward: input and output lengths");
    assert_eq!(p.len(), layout.channels * np, "family forward: parameters");
    let path = Path::of(isa);
    let slots = chunk_slots(y);
    par_map(slots.len(), |k| {
        let y = take_chunk(&slots, k);
        let args = (f, x, layout, p, k * CHUNK);
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked by `Path::of`).
            Path::Avx512 => unsafe { forward_chunk::avx512(args, y) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (checked by `Path::of`).
            Path::Avx2 => unsafe { forward_chunk::avx2(args, y) },
            Path::Generic => forward_chunk::generic(args, y),
        }
    });
}

/// The partial parameter-gradient sums of one chunk: rows for channels `first ..
/// first + rows.len() / P`.
struct Partial {
    first: usize,
    rows: Vec<f64>,
}

/// Backward pass: `g` holds the upstream gradient on entry and the input gradient on return;
/// returns the `[C, P]` parameter gradients. The paths follow `AFU_KERNEL_ISA`.
pub fn backward<F: ScalarFamily, T: FamilyFloat>(
    f: F,
    x: &[T],
    layout: Layout,
    p: &[T],
    g: &mut [T],
) -> Vec<T> {
    backward_with(f, x, layout, p, g, Isa::from_env())
}

/// As [`backward`], on the paths `isa` selects.
///
/// # Panics
/// If `x` and `g` differ in length or `p` is not `[C, P]`.
pub fn backward_with<F: ScalarFamily, T: FamilyFloat>(
    f: F,
    x: &[T],
    layout: Layout,
    p: &[T],
    g: &mut [T],
    isa: Isa,
) -> Vec<T> {
    let np = f.n_params();
    let channels = layout.channels;
    assert_eq!(
        x.len(),
        g.len(),
        "family backward: input and gradient lengths"
    );
    assert_eq!(p.len(), channels * np, "family backward: parameters");
    let len = x.len();
    let inner = layout.inner.max(1);
    let path = Path::of(isa);
    let slots = chunk_slots(g);
    let partials = par_map(slots.len(), |k| {
        let gk = take_chunk(&slots, k);
        let (start, end) = (k * CHUNK, ((k + 1) * CHUNK).min(len));
        // The channels this chunk touches: a contiguous range unless it wraps past the last
        // channel into the next outer index (then all of them).
        let (r0, r1) = (start / inner, (end - 1) / inner);
        let (c0, c1) = (r0 % channels, r1 % channels);
        let (first, count) = if r1 - r0 + 1 >= channels || c1 < c0 {
            (0, channels)
        } else {
            (c0, c1 - c0 + 1)
        };
        let mut rows = vec![0.0f64; count * np];
        let mut acc = vec![[T::ZERO; LANES]; np];
        let args = (f, x, layout, p, start);
        let sums = (first, rows.as_mut_slice(), acc.as_mut_slice());
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked by `Path::of`).
            Path::Avx512 => unsafe { backward_chunk::avx512(args, gk, sums) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (checked by `Path::of`).
            Path::Avx2 => unsafe { backward_chunk::avx2(args, gk, sums) },
            Path::Generic => backward_chunk::generic(args, gk, sums),
        }
        Partial { first, rows }
    });
    let mut total = vec![0.0f64; channels * np];
    for part in &partials {
        let o = part.first * np;
        for (t, v) in total[o..o + part.rows.len()].iter_mut().zip(&part.rows) {
            *t += v;
        }
    }
    total.into_iter().map(T::from_f64).collect()
}

/// What a chunk works on: the family, the input, the layout, the parameters and the chunk's
/// first element.
type ChunkArgs<'a, F, T> = (F, &'a [T], Layout, &'a [T], usize);

/// Where a chunk's parameter gradients go: its first channel, its partial rows, and its lane
/// accumulators (one row of lanes per parameter, zero on entry and on return).
type ChunkSums<'a, T> = (usize, &'a mut [f64], &'a mut [Lanes<T>]);

/// The forward pass of one chunk, per ISA.
mod forward_chunk {
    use super::*;

    /// Writes `g(x)` of the chunk's elements into `y` (the chunk's part of the output), run
    /// by run, through a buffer of [`BLOCK`] values (the output may be uninitialised).
    ///
    /// # Safety
    /// With `AVX512`, the CPU must support AVX-512F.
    #[inline(always)]
    unsafe fn body<F: ScalarFamily, T: FamilyFloat, O: OutSlot<T>, const AVX512: bool>(
        (f, x, layout, p, start): ChunkArgs<'_, F, T>,
        y: &mut [O],
    ) {
        let np = f.n_params();
        let mut out = [T::ZERO; BLOCK];
        for (c, a, b) in Runs::new(layout, start, start + y.len()) {
            let pc = &p[c * np..(c + 1) * np];
            for (xs, ys) in x[a..b]
                .chunks(BLOCK)
                .zip(y[a - start..b - start].chunks_mut(BLOCK))
            {
                let out = &mut out[..xs.len()];
                if AVX512 {
                    // SAFETY: as the caller's.
                    unsafe { f.value_run_avx512(xs, pc, out) };
                } else {
                    f.value_run(xs, pc, out);
                }
                for (slot, &v) in ys.iter_mut().zip(out.iter()) {
                    slot.put(v);
                }
            }
        }
    }

    /// The baseline build.
    pub(super) fn generic<F: ScalarFamily, T: FamilyFloat, O: OutSlot<T>>(
        args: ChunkArgs<'_, F, T>,
        y: &mut [O],
    ) {
        // SAFETY: the baseline path never takes the AVX-512 code.
        unsafe { body::<F, T, O, false>(args, y) }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<F: ScalarFamily, T: FamilyFloat, O: OutSlot<T>>(
        args: ChunkArgs<'_, F, T>,
        y: &mut [O],
    ) {
        // SAFETY: the AVX2 path never takes the AVX-512 code.
        unsafe { body::<F, T, O, false>(args, y) }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<F: ScalarFamily, T: FamilyFloat, O: OutSlot<T>>(
        args: ChunkArgs<'_, F, T>,
        y: &mut [O],
    ) {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { body::<F, T, O, true>(args, y) }
    }
}

/// The backward pass of one chunk, per ISA.
mod backward_chunk {
    use super::*;

    /// Adds the lane accumulators, lane by lane, to `row` and clears them.
    #[inline(always)]
    fn flush<T: FamilyFloat>(acc: &mut [Lanes<T>], row: &mut [f64]) {
        for (r, lanes) in row.iter_mut().zip(acc.iter_mut()) {
            let mut s = 0.0f64;
            for v in lanes.iter() {
                s += KernelFloat::to_f64(*v);
            }
            *r += s;
            *lanes = [T::ZERO; LANES];
        }
    }

    /// Replaces the upstream gradients in `g` (the chunk's part) by the input gradients and
    /// adds the chunk's parameter gradients to its partial rows.
    ///
    /// # Safety
    /// With `AVX512`, the CPU must support AVX-512F.
    #[inline(always)]
    unsafe fn body<F: ScalarFamily, T: FamilyFloat, const AVX512: bool>(
        (f, x, layout, p, start): ChunkArgs<'_, F, T>,
        g: &mut [T],
        (first, rows, acc): ChunkSums<'_, T>,
    ) {
        let np = f.n_params();
        for (c, a, b) in Runs::new(layout, start, start + g.len()) {
            let pc = &p[c * np..(c + 1) * np];
            let row = &mut rows[(c - first) * np..(c - first + 1) * np];
            let xs = &x[a..b];
            let gs = &mut g[a - start..b - start];
            let whole = xs.len() / LANES * LANES;
            // Spans of FLUSH elements, the accumulators flushed after each whole one.
            for (xspan, gspan) in xs[..whole].chunks(FLUSH).zip(gs[..whole].chunks_mut(FLUSH)) {
                if AVX512 {
                    // SAFETY: as the caller's.
                    unsafe { f.backward_blocks_avx512(xspan, pc, gspan, acc) };
                } else {
                    f.backward_blocks(xspan, pc, gspan, acc);
                }
                if xspan.len() == FLUSH {
                    flush(acc, row);
                }
            }
            let rest = xs.len() - whole;
            if rest > 0 {
                let mut xp = [T::ZERO; LANES];
                let mut gp = [T::ZERO; LANES];
                xp[..rest].copy_from_slice(&xs[whole..]);
                gp[..rest].copy_from_slice(&gs[whole..]);
                f.backward_lanes(&xp, pc, &mut gp, acc);
                gs[whole..].copy_from_slice(&gp[..rest]);
            }
            flush(acc, row);
        }
    }

    /// The baseline build.
    pub(super) fn generic<F: ScalarFamily, T: FamilyFloat>(
        args: ChunkArgs<'_, F, T>,
        g: &mut [T],
        sums: ChunkSums<'_, T>,
    ) {
        // SAFETY: the baseline path never takes the AVX-512 code.
        unsafe { body::<F, T, false>(args, g, sums) }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<F: ScalarFamily, T: FamilyFloat>(
        args: ChunkArgs<'_, F, T>,
        g: &mut [T],
        sums: ChunkSums<'_, T>,
    ) {
        // SAFETY: the AVX2 path never takes the AVX-512 code.
        unsafe { body::<F, T, false>(args, g, sums) }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<F: ScalarFamily, T: FamilyFloat>(
        args: ChunkArgs<'_, F, T>,
        g: &mut [T],
        sums: ChunkSums<'_, T>,
    ) {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { body::<F, T, true>(args, g, sums) }
    }
}
