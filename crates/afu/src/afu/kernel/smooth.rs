//! The direct kernels: `O(N)` per element, unit by unit, vectorised across the elements of a
//! block. They serve the smooth bases (sigmoid, tanh, swish, mish), and the relu family where
//! the interval lookup of [`super::pwl`] does not (see `cpu::table_path`): there `ψ` is a
//! select, and `w0·x + b0` is rounded exactly as the reference rounds it.
//!
//! Each base is a type ([`Psi`]), so that it gets its own monomorphised loop; the loops are
//! compiled for AVX-512, for AVX2+FMA and for the baseline, chosen at run time
//! ([`Isa::Native`]) or the baseline only ([`Isa::Portable`]). The compiler forms no fused
//! multiply-add; the smooth bases ask for them explicitly ([`KernelFloat::fma_k`]), exactly
//! rounded on every path (libm's `fma` on the baseline), and the reductions keep a fixed
//! order, so every build gives the same bits.

use super::isa::Isa;
use super::layout::{Layout, ParamGrads, ParamSlices};
use super::pool::par_map;
use super::shared::SharedMut;
use super::work::{Item, item_runs, items};
use crate::afu::base::BaseActivation;
use crate::ops::float::KernelFloat;

/// Elements per block (a multiple of [`LANES`]).
const BLOCK: usize = 256;
/// Independent accumulator lanes (lets the compiler vectorise the reductions).
const LANES: usize = 16;

/// `y = G(x)` over all work items of `layout`, into `out`.
///
/// # Panics
/// If `x` or `out` does not have `layout`'s size.
pub(super) fn forward<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    isa: Isa,
    out: SharedMut<'_, T>,
) {
    assert!(x.len() == layout.len() && out.len() == layout.len());
    let work = items(layout);
    par_map(work.len(), |i| {
        let args = SmoothItem::new(x, layout, work[i], p);
        // SAFETY: each item writes only its own elements of `out`, which are within it (its
        // size was checked) and initialised (see `SharedMut`).
        unsafe { dispatch_smooth!(isa, p.base, forward_item, args, out) };
    });
}

/// `gx = gy·G'(x)` in place in `out` (which holds `gy`) over all work items of `layout`, and
/// the parameter gradients: per-item `f64` partial sums, added per channel in item order.
///
/// # Panics
/// If `x` or `out` does not have `layout`'s size.
pub(super) fn backward<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    p: &ParamSlices<T>,
    isa: Isa,
    out: SharedMut<'_, T>,
) -> ParamGrads<T> {
    assert!(x.len() == layout.len() && out.len() == layout.len());
    let n = p.hidden;
    let work = items(layout);
    let mut grads = ParamGrads::zeros(layout.channels, n);
    let partials: Vec<SmoothPartial> = par_map(work.len(), |i| {
        let args = SmoothItem::new(x, layout, work[i], p);
        // SAFETY: each item reads and writes only its own elements of `out`, which are within
        // it (its size was checked) and initialised (see `SharedMut`).
        unsafe { dispatch_smooth!(isa, p.base, backward_item, args, out) }
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

/// Copies the runs `offs` of `src` one after the other into `dst`.
#[inline(always)]
fn gather<T: Copy>(src: &[T], offs: &[(usize, usize)], dst: &mut [T]) {
    let mut k = 0;
    for &(off, len) in offs {
        dst[k..k + len].copy_from_slice(&src[off..off + len]);
        k += len;
    }
}

/// As [`gather`], from the shared buffer `src`.
///
/// # Safety
/// The runs must be within the buffer behind `src`, initialised, and owned by the calling work
/// item.
#[inline(always)]
unsafe fn gather_shared<T: Copy>(src: &SharedMut<'_, T>, offs: &[(usize, usize)], dst: &mut [T]) {
    let mut k = 0;
    for &(off, len) in offs {
        // SAFETY: guaranteed by the caller.
        dst[k..k + len].copy_from_slice(unsafe { src.slice(off, len) });
        k += len;
    }
}

/// Copies `src` into the runs `offs` of the shared buffer `dst`, one after the other.
///
/// # Safety
/// The runs must be within the buffer behind `dst`, initialised, and owned by the calling work
/// item.
#[inline(always)]
unsafe fn scatter<T: Copy>(dst: &SharedMut<'_, T>, offs: &[(usize, usize)], src: &[T]) {
    let mut k = 0;
    for &(off, len) in offs {
        // SAFETY: guaranteed by the caller.
        unsafe { dst.slice(off, len) }.copy_from_slice(&src[k..k + len]);
        k += len;
    }
}

/// A smooth base activation as a type, so that each base gets its own monomorphised, vectorised
/// loop (a `match` inside the hot loop would block vectorisation).
trait Psi {
    /// Whether the loops fuse their multiply-adds (`KernelFloat::fma_k`): the smooth bases.
    /// The relu family keeps `w0·x + b0` rounded as the reference rounds it (its kinks sit
    /// where the reference puts them) and its sums unfused.
    const FUSED: bool = false;
    /// The factor the loops fold into copies of `w0` and `b0` (once per unit) to hand
    /// [`Psi::eval_uv`] `v = SCALE·u` beside `u`, for one `2^v` (sigmoid: `−log₂e`); 1 for
    /// the bases without an `exp`.
    const SCALE: f64 = 1.0;
    /// `ψ(u)` and `ψ'(u)`, branch-free.
    fn eval<T: KernelFloat>(u: T) -> (T, T);
    /// `ψ(u)` and `ψ'(u)` from `u` and `v = SCALE·u` (each from its own fused `w·x + b`; a base
    /// that uses only one lets the compiler drop the other).
    #[inline(always)]
    fn eval_uv<T: KernelFloat>(u: T, _v: T) -> (T, T) {
        Self::eval(u)
    }
}

/// `w0` and `b0` of one unit with `P::SCALE` folded in.
#[inline(always)]
fn scaled<T: KernelFloat, P: Psi>(w0: T, b0: T) -> (T, T) {
    if P::SCALE == 1.0 {
        (w0, b0)
    } else {
        let k = T::from_f64(P::SCALE);
        (w0 * k, b0 * k)
    }
}

/// `a·b + c`, fused for the smooth bases ([`Psi::FUSED`]).
#[inline(always)]
fn mul_add<T: KernelFloat, P: Psi>(a: T, b: T, c: T) -> T {
    if P::FUSED { a.fma_k(b, c) } else { a * b + c }
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
    const FUSED: bool = true;
    const SCALE: f64 = -std::f64::consts::LOG2_E;
    /// `σ(u) = 1/(1 + e^(−u))`, `σ' = σ − σ²`.
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        Self::eval_uv(u, u * T::from_f64(Self::SCALE))
    }
    /// From `v = −u·log₂e`: `e^(−u) = 2^v`.
    #[inline(always)]
    fn eval_uv<T: KernelFloat>(_u: T, v: T) -> (T, T) {
        let one = T::ONE;
        let s = one / (one + v.exp2_k());
        (s, (T::ZERO - s).fma_k(s, s))
    }
}

impl Psi for TanhPsi {
    const FUSED: bool = true;
    const SCALE: f64 = -2.0 * std::f64::consts::LOG2_E;
    /// `tanh(u) = 2σ(2u) − 1`, `tanh' = 1 − tanh²`.
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        Self::eval_uv(u, u * T::from_f64(Self::SCALE))
    }
    /// From `v = −2u·log₂e`: `e^(−2u) = 2^v`.
    #[inline(always)]
    fn eval_uv<T: KernelFloat>(_u: T, v: T) -> (T, T) {
        let one = T::ONE;
        let s = one / (one + v.exp2_k());
        let t = s + s - one;
        (t, (T::ZERO - t).fma_k(t, one))
    }
}

impl Psi for SwishPsi {
    const FUSED: bool = true;
    const SCALE: f64 = -std::f64::consts::LOG2_E;
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        Self::eval_uv(u, u * T::from_f64(Self::SCALE))
    }
    /// `u·σ(u)`, derivative `σ + u·σ·(1 − σ)`, with `e^(−u) = 2^v`.
    #[inline(always)]
    fn eval_uv<T: KernelFloat>(u: T, v: T) -> (T, T) {
        let one = T::ONE;
        let s = one / (one + v.exp2_k());
        let us = u * s;
        (us, us.fma_k(one - s, s))
    }
}

impl Psi for MishPsi {
    const FUSED: bool = true;
    const SCALE: f64 = std::f64::consts::LOG2_E;
    #[inline(always)]
    fn eval<T: KernelFloat>(u: T) -> (T, T) {
        Self::eval_uv(u, u * T::from_f64(Self::SCALE))
    }
    /// `tanh(softplus(u)) = q / (q + 2)` with `q = n(n + 2)`, `n = e^u = 2^v` (capped where
    /// the ratio is 1 to working precision); `σ(u) = n / (1 + n)`; derivative
    /// `th + u·(1 − th²)·σ`.
    #[inline(always)]
    fn eval_uv<T: KernelFloat>(u: T, v: T) -> (T, T) {
        let one = T::ONE;
        let two = one + one;
        let nexp = v.min_k(T::from_f64(20.0 * Self::SCALE)).exp2_k();
        let q = nexp * (nexp + two);
        let th = q / (q + two);
        let sig = nexp / (one + nexp);
        let v = (T::ZERO - th).fma_k(th, one);
        (u * th, (u * v).fma_k(sig, th))
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
/// has (AVX-512, AVX2+FMA, or the baseline) under [`Isa::Native`], for the baseline under
/// [`Isa::Portable`]. Fused multiply-adds are exactly rounded on each, so every path gives
/// bit-identical results.
macro_rules! dispatch_smooth {
    ($isa:expr, $base:expr, $f:ident, $($arg:expr),*) => {{
        let isa: Isa = $isa;
        match $base {
            BaseActivation::Sigmoid => isa_dispatch!(isa, $f, SigmoidPsi, $($arg),*),
            BaseActivation::Tanh => isa_dispatch!(isa, $f, TanhPsi, $($arg),*),
            BaseActivation::Swish => isa_dispatch!(isa, $f, SwishPsi, $($arg),*),
            BaseActivation::Mish => isa_dispatch!(isa, $f, MishPsi, $($arg),*),
            BaseActivation::Relu => isa_dispatch!(isa, $f, ReluPsi, $($arg),*),
            BaseActivation::LeakyRelu => isa_dispatch!(isa, $f, LeakyReluPsi, $($arg),*),
            BaseActivation::Linear => isa_dispatch!(isa, $f, LinearPsi, $($arg),*),
        }
    }};
}

#[cfg(target_arch = "x86_64")]
macro_rules! isa_dispatch {
    ($isa:expr, $f:ident, $p:ty, $($arg:expr),*) => {{
        if $isa == Isa::Portable {
            $f::generic::<T, $p>($($arg),*)
        } else if std::arch::is_x86_feature_detected!("avx512f") {
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
    ($isa:expr, $f:ident, $p:ty, $($arg:expr),*) => {{
        let _: Isa = $isa;
        $f::generic::<T, $p>($($arg),*)
    }};
}

use dispatch_smooth;
use isa_dispatch;

/// Forward pass of one item, per ISA.
mod forward_item {
    use super::*;

    #[inline(always)]
    unsafe fn body<T: KernelFloat, P: Psi>(a: SmoothItem<'_, T>, out: SharedMut<'_, T>) {
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
                let (w0s, b0s) = scaled::<T, P>(w0, b0);
                for (yv, &xv) in ys.iter_mut().zip(xs) {
                    let u = mul_add::<T, P>(w0, xv, b0);
                    let v = mul_add::<T, P>(w0s, xv, b0s);
                    *yv = mul_add::<T, P>(w1, P::eval_uv(u, v).0, *yv);
                }
            }
            // SAFETY: the item's runs are its own (caller's contract).
            unsafe { scatter(&out, &offs, &yb[..n]) };
        }
    }

    /// # Safety
    /// The item's elements of `out` are initialised, and accessed by this call only.
    pub(super) unsafe fn generic<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<'_, T>,
    ) {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<T: KernelFloat, P: Psi>(a: SmoothItem<'_, T>, out: SharedMut<'_, T>) {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<'_, T>,
    ) {
        unsafe { body::<T, P>(a, out) }
    }
}

/// Backward pass of one item, per ISA.
mod backward_item {
    use super::*;

    #[inline(always)]
    unsafe fn body<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<'_, T>,
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
    /// The item's elements of `out` are initialised, and accessed by this call only.
    pub(super) unsafe fn generic<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<'_, T>,
    ) -> SmoothPartial {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<'_, T>,
    ) -> SmoothPartial {
        unsafe { body::<T, P>(a, out) }
    }

    /// # Safety
    /// As [`generic`], and the CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<T: KernelFloat, P: Psi>(
        a: SmoothItem<'_, T>,
        out: SharedMut<'_, T>,
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
        let (a_s, b_s) = scaled::<T, P>(a, b);
        let mut s_psi = [T::ZERO; LANES];
        let mut s_d = [T::ZERO; LANES];
        let mut s_dx = [T::ZERO; LANES];
        for ((xc, gc), gxc) in x
            .chunks_exact(LANES)
            .zip(gy.chunks_exact(LANES))
            .zip(gx.chunks_exact_mut(LANES))
        {
            for l in 0..LANES {
                let u = mul_add::<T, P>(a, xc[l], b);
                let v = mul_add::<T, P>(a_s, xc[l], b_s);
                let (psi, d) = P::eval_uv(u, v);
                let g = gc[l];
                let gd = g * d;
                s_psi[l] = mul_add::<T, P>(g, psi, s_psi[l]);
                s_d[l] += gd;
                s_dx[l] = mul_add::<T, P>(gd, xc[l], s_dx[l]);
                gxc[l] = mul_add::<T, P>(aw, d, gxc[l]);
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
