//! The fused CPU kernels of every learnable family: one pass over the tensor for the forward,
//! one for the backward (input gradient and every parameter gradient together), generic over
//! the family's [`ScalarFamily`] math and the float type.
//!
//! # Determinism
//! The elements are cut into chunks of [`CHUNK`] elements, fixed by the tensor's size alone
//! (never by the number of threads). Each chunk sums its parameter gradients in element order
//! into its own `f64` partial sums (per channel it touches); the partial sums are then added
//! chunk by chunk in chunk order. The result is the same bits on every run and for any number
//! of threads, without atomics. No `elements × parameters` tensor is ever built: the extra
//! memory of the backward is one partial row per channel a chunk touches.

use num_traits::Float;

use super::math::ScalarFamily;
pub use crate::afu::kernel::layout::Layout;
use crate::afu::kernel::pool::par_map;
use crate::afu::kernel::shared::SharedMut;

/// Elements per chunk (work item). Large enough that a chunk's scheduling and its partial
/// sums cost little next to its elements, small enough that a layer of a small batch still
/// splits over the threads.
pub const CHUNK: usize = 8192;

/// Elements a chunk accumulates in `T` before adding to its `f64` partial sums (bounds the
/// rounding error of `f32` accumulation).
const FLUSH: usize = 256;

/// The number of chunks of `len` elements.
fn chunks(len: usize) -> usize {
    len.div_ceil(CHUNK)
}

/// Calls `run(channel, start, end)` for every run of consecutive elements of one channel
/// within `[start, end)`, in order.
#[inline(always)]
fn for_each_run(
    layout: Layout,
    start: usize,
    end: usize,
    mut run: impl FnMut(usize, usize, usize),
) {
    let inner = layout.inner.max(1);
    let mut e = start;
    while e < end {
        let row = e / inner;
        let stop = ((row + 1) * inner).min(end);
        run(row % layout.channels, e, stop);
        e = stop;
    }
}

/// `y = g(x)` element-wise; `p` holds the `[C, P]` parameters (`C = layout.channels`).
pub fn forward<F: ScalarFamily, T: Float + Send + Sync>(
    f: F,
    x: &[T],
    layout: Layout,
    p: &[T],
    y: &mut [T],
) {
    let np = f.n_params();
    assert_eq!(x.len(), y.len(), "family forward: input and output lengths");
    assert_eq!(p.len(), layout.channels * np, "family forward: parameters");
    let len = x.len();
    let out = SharedMut::new(y);
    par_map(chunks(len), |k| {
        let (start, end) = (k * CHUNK, ((k + 1) * CHUNK).min(len));
        // SAFETY: chunk k alone touches elements [start, end), which lie within the buffer.
        let y = unsafe { out.slice(start, end - start) };
        for_each_run(layout, start, end, |c, a, b| {
            let pc = &p[c * np..(c + 1) * np];
            for (yi, &xi) in y[a - start..b - start].iter_mut().zip(&x[a..b]) {
                *yi = f.value(xi, pc);
            }
        });
    });
}

/// The partial parameter-gradient sums of one chunk: rows for channels `first ..
/// first + rows.len() / P`.
struct Partial {
    first: usize,
    rows: Vec<f64>,
}

/// Backward pass: `g` holds the upstream gradient on entry and the input gradient on return;
/// returns the `[C, P]` parameter gradients.
pub fn backward<F: ScalarFamily, T: Float + Send + Sync>(
    f: F,
    x: &[T],
    layout: Layout,
    p: &[T],
    g: &mut [T],
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
    let grad = SharedMut::new(g);
    let partials = par_map(chunks(len), |k| {
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
        let mut acc = vec![T::zero(); np];
        // SAFETY: chunk k alone touches elements [start, end), which lie within the buffer.
        let gk = unsafe { grad.slice(start, end - start) };
        for_each_run(layout, start, end, |c, a, b| {
            let pc = &p[c * np..(c + 1) * np];
            let row = &mut rows[(c - first) * np..(c - first + 1) * np];
            let mut s = a;
            while s < b {
                let t = (s + FLUSH).min(b);
                acc.iter_mut().for_each(|v| *v = T::zero());
                for (gi, &xi) in gk[s - start..t - start].iter_mut().zip(&x[s..t]) {
                    let up = *gi;
                    *gi = up * f.backward(xi, pc, up, &mut acc);
                }
                for (r, v) in row.iter_mut().zip(&acc) {
                    *r += v.to_f64().unwrap_or(f64::NAN);
                }
                s = t;
            }
        });
        Partial { first, rows }
    });
    let mut total = vec![0.0f64; channels * np];
    for part in &partials {
        let o = part.first * np;
        for (t, v) in total[o..o + part.rows.len()].iter_mut().zip(&part.rows) {
            *t += v;
        }
    }
    total
        .into_iter()
        .map(|v| T::from(v).unwrap_or_else(T::nan))
        .collect()
}
