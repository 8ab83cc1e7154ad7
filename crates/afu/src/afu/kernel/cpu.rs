//! Fused AFU kernels on plain slices (CPU, multi-threaded, deterministic): the entry points.
//!
//! Forward computes `y = G(x)` in one pass; backward computes `gx = gy·G'(x)` and the
//! gradients of all `3N+1` parameters per AFU, without ever materialising the `M × N` hidden
//! tensor of the reference implementation.
//!
//! Paths, chosen here once per call from the parameters (see `Prepared`):
//! - **Interval lookup** (linear, relu, leaky-relu; module `pwl`): `G` is exactly
//!   `A_j·x + B_j` on the interval `j` between the units' exact float thresholds, so one lookup
//!   per element gives `y` and `G'`, and the parameter gradients come from per-interval sums of
//!   `gy` and `gy·x`: cost nearly independent of `N`. Every element, also one on a kink, gets
//!   the reference's side for every unit (`ψ'(0)` is the left derivative).
//! - **Direct** (module `smooth`: the smooth bases; the relu family where the lookup
//!   does not serve: non-finite parameters, or at most `DIRECT_MAX_HIDDEN` units without the
//!   AVX-512 lookup): `O(N)` per element, vectorised across blocks of elements.
//!
//! Which instruction sets the paths use is an [`Isa`] fixed when `Prepared` is built:
//! `AFU_KERNEL_ISA` by default (see [`super::isa`]).
//!
//! Work is split into items that depend only on the tensor's shape (never on the number of
//! threads); each item's parameter-gradient partial sums are kept in `f64` and reduced in item
//! order, so the same inputs give bit-identical results on every run and every machine size.

use std::mem::MaybeUninit;

use super::isa::Isa;
use super::pwl;
use super::shared::SharedMut;
use super::smooth;
use super::work::items;

pub use super::layout::{Layout, ParamGrads, ParamSlices};
pub use crate::ops::float::KernelFloat;

/// Up to this many hidden units, a relu-family AFU is evaluated directly, unit by unit,
/// vectorised like the smooth bases (a few flops per unit, and exactly the reference's rounding
/// of `w0·x + b0`), unless the AVX-512 lookup serves it; above it the interval lookup, whose
/// cost hardly depends on N, is cheaper.
const DIRECT_MAX_HIDDEN: usize = 16;

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
/// lookup. Otherwise the direct path runs.
fn table_path<T: KernelFloat>(
    p: &ParamSlices<T>,
    layout: Layout,
    isa: Isa,
) -> Option<pwl::Tables<T>> {
    let alpha = p.base.negative_slope()?;
    let tables = pwl::Tables::new(p, layout.channels, alpha, isa)?;
    (p.hidden > DIRECT_MAX_HIDDEN || tables.vectorised()).then_some(tables)
}

/// What the kernels derive from the parameters alone (the interval-lookup tables of a
/// relu-family base) and the instruction sets they use: built once by the forward pass and
/// handed to the backward pass of the same parameters, which then does not rebuild it and
/// takes the same paths.
pub(crate) struct Prepared<T: KernelFloat> {
    tables: Option<pwl::Tables<T>>,
    channels: usize,
    isa: Isa,
}

impl<T: KernelFloat> Prepared<T> {
    /// For parameters `p` applied with `layout`'s channel count, on the paths
    /// `AFU_KERNEL_ISA` selects ([`Isa::from_env`]).
    pub(crate) fn new(p: &ParamSlices<T>, layout: Layout) -> Self {
        Self::with_isa(p, layout, Isa::from_env())
    }

    /// As [`Prepared::new`], on the paths of `isa`.
    pub(crate) fn with_isa(p: &ParamSlices<T>, layout: Layout, isa: Isa) -> Self {
        Prepared {
            tables: table_path(p, layout, isa),
            channels: layout.channels,
            isa,
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
    forward_into(x, layout, p, &Prepared::new(p, layout), SharedMut::new(y));
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
    out: &mut [MaybeUninit<T>],
) {
    check_sizes(x, layout, p);
    assert_eq!(
        prepared.channels, layout.channels,
        "AFU kernel: prepared channels"
    );
    assert_eq!(out.len(), x.len(), "AFU kernel: output size");
    if !prepared.tables.as_ref().is_some_and(|t| t.vectorised()) {
        // The other kernels write through `&mut [T]`: initialised memory.
        out.fill(MaybeUninit::new(T::ZERO));
    }
    // SAFETY: `out` was just filled unless the tables are vectorised, and then only the
    // vector kernels touch it, and only write through the pointer: every element at least once
    // (the work items' runs cover every element; a run's partial last vector rewrites a few
    // elements before it with the values they already hold).
    let out = unsafe { SharedMut::from_uninit(out) };
    forward_into(x, layout, p, prepared, out);
}

/// The forward pass into `out` (`x.len()` elements; initialised unless the tables are
/// vectorised), by the interval lookup when `prepared` has tables (see [`table_path`]), else
/// unit by unit.
fn forward_into<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    prepared: &Prepared<T>,
    out: SharedMut<'_, T>,
) {
    match &prepared.tables {
        Some(tables) => pwl::forward(x, layout, &items(layout), p, tables, out),
        None => smooth::forward(x, layout, p, prepared.isa, out),
    }
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
    // Each element's gy is read before its gx is written, by the same work item.
    let out = SharedMut::new(grad);
    match &prepared.tables {
        Some(tables) => pwl::backward(x, layout, &items(layout), p, tables, out),
        None => smooth::backward(x, layout, p, prepared.isa, out),
    }
}

/// `(y, gx, parameter gradients)` of `L = Σ gy·G(x)` on the paths of `isa` (whatever
/// `AFU_KERNEL_ISA` says), for tests that run both paths in one process.
///
/// # Panics
/// If the slice sizes do not match `layout` and the parameters.
#[cfg(test)]
pub(crate) fn grads_with_isa<T: KernelFloat>(
    x: &[T],
    gy: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    isa: Isa,
) -> (Vec<T>, Vec<T>, ParamGrads<T>) {
    check_sizes(x, layout, p);
    assert_eq!(gy.len(), x.len(), "AFU kernel: gradient size");
    let prepared = Prepared::with_isa(p, layout, isa);
    let y = forward_prepared(x, layout, p, &prepared);
    let mut g = gy.to_vec();
    let grads = backward_prepared(x, layout, p, &prepared, &mut g);
    (y, g, grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afu::BaseActivation;
    use crate::afu::kernel::testutil::{Problem, scaled_error};

    /// [`grads_with_isa`] on `problem`'s values converted to `T`, and back to `f64`.
    #[allow(clippy::type_complexity)]
    fn run<T: KernelFloat>(problem: &Problem, isa: Isa) -> (Vec<f64>, Vec<f64>, [Vec<f64>; 4]) {
        let to = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        let back = |v: &[T]| v.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
        let pr = &problem.params;
        let (w0, b0, w1, b1) = (to(&pr.w0), to(&pr.b0), to(&pr.w1), to(&pr.b1));
        let p = ParamSlices {
            base: pr.base,
            hidden: pr.hidden,
            w0: &w0,
            b0: &b0,
            w1: &w1,
            b1: &b1,
        };
        let layout = Layout::of(&problem.dims, pr.channels);
        let (y, gx, g) = grads_with_isa(&to(&problem.x), &to(&problem.gy), layout, &p, isa);
        (
            back(&y),
            back(&gx),
            [back(&g.w0), back(&g.b0), back(&g.w1), back(&g.b1)],
        )
    }

    fn shapes() -> Vec<(usize, Vec<usize>)> {
        vec![
            (1, vec![1013]),
            (3, vec![5, 3, 37]),
            (2, vec![9, 2, 5]),
            (5, vec![3, 5, 67]),
        ]
    }

    /// Native and portable paths on the same problems, `f32` and `f64`. Bit for bit where the
    /// design says so: the smooth bases (the same loops in every build, no fused multiply-add),
    /// everything in `f64` (no vector table serves it), and `y` and `gx` of the relu family
    /// where both take the interval lookup (more than 16 units). Elsewhere (the relu family's
    /// direct path against the AVX-512 lookup at up to 16 units; the gradients' sums) within
    /// rounding: forward ≤ 1e-5, gradients ≤ 1e-4 (scaled), as against the reference.
    #[test]
    fn native_and_portable_paths_agree() {
        for (k, base) in BaseActivation::ALL.into_iter().enumerate() {
            for hidden in [1, 3, 8, 16, 17, 40, 128] {
                for (channels, dims) in shapes() {
                    let problem = Problem::random(
                        7000 + 31 * k as u64 + hidden as u64,
                        base,
                        channels,
                        hidden,
                        &dims,
                    );
                    let what = format!("{base} N={hidden} C={channels} {dims:?}");
                    assert_eq!(
                        run::<f64>(&problem, Isa::Native),
                        run::<f64>(&problem, Isa::Portable),
                        "{what} f64"
                    );
                    let native = run::<f32>(&problem, Isa::Native);
                    let portable = run::<f32>(&problem, Isa::Portable);
                    if !base.is_piecewise_linear() {
                        assert_eq!(native, portable, "{what} f32");
                        continue;
                    }
                    if hidden > DIRECT_MAX_HIDDEN {
                        assert_eq!(native.0, portable.0, "{what} f32 y");
                        assert_eq!(native.1, portable.1, "{what} f32 gx");
                    }
                    let e = scaled_error(&native.0, &portable.0);
                    assert!(e <= 1e-5, "{what}: forward {e}");
                    let e = scaled_error(&native.1, &portable.1);
                    assert!(e <= 1e-4, "{what}: gx {e}");
                    for (name, (a, b)) in ["w0", "b0", "w1", "b1"]
                        .iter()
                        .zip(native.2.iter().zip(&portable.2))
                    {
                        let e = scaled_error(a, b);
                        assert!(e <= 1e-4, "{what}: grad {name} {e}");
                    }
                }
            }
        }
    }
}
