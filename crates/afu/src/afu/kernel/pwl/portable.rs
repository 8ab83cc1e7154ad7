//! The portable piecewise-linear kernels (any float type, any CPU): one binary search of the
//! sorted thresholds per element, over one run of contiguous elements.

use super::table::{IntervalSums, PwlTable};
use crate::ops::float::KernelFloat;

/// Portable forward over one run.
pub(super) fn forward_run<T: KernelFloat>(table: &PwlTable<T>, xs: &[T], ys: &mut [T]) {
    for (y, &x) in ys.iter_mut().zip(xs) {
        let j = table.interval(x);
        *y = table.a[j] * x + table.b[j];
    }
}

/// Portable backward over one run: `g` holds `gy` on entry and `gx` on return.
pub(super) fn backward_run<T: KernelFloat>(
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
