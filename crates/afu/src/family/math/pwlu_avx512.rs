//! PWLU's block forms written for AVX-512F in `f32`, for up to [`MAX_INTERVALS`] intervals:
//! the heights and slopes of the inner pieces sit in one register each and every lane looks
//! its interval up with a permute (`vpermps`) instead of a gather; the backward keeps the
//! height gradients' lane accumulators in registers over a whole span and adds each lane's two
//! height gradients with masked additions (one compare per height) instead of a scalar
//! scatter. The arithmetic is [`Pwlu`](super::Pwlu)'s block form operation for operation, in
//! the same order, so the results are the same bits (tested against the portable path).

use std::arch::x86_64::*;

use super::{LANES, Lanes};

/// Most intervals the register tables hold (one 16-lane register per table).
pub const MAX_INTERVALS: usize = 16;

/// The inner pieces' heights `h₀ … h_{N−1}` and slopes `h_{m+1} − h_m` as two registers
/// (lanes beyond `N − 1` hold 0 and are never looked up).
#[inline]
#[target_feature(enable = "avx512f")]
fn tables(n: usize, h: &[f32]) -> (__m512, __m512) {
    let (mut heights, mut slopes) = ([0.0f32; LANES], [0.0f32; LANES]);
    for m in 0..n {
        heights[m] = h[m];
        slopes[m] = h[m + 1] - h[m];
    }
    // SAFETY: both arrays hold 16 floats.
    unsafe {
        (
            _mm512_loadu_ps(heights.as_ptr()),
            _mm512_loadu_ps(slopes.as_ptr()),
        )
    }
}

/// `FamilyFloat::index_clamped` on every lane: `t` clamped to `[0, last]` (NaN gives 0), then
/// truncated.
#[inline]
#[target_feature(enable = "avx512f")]
fn index(t: __m512, last: __m512) -> __m512i {
    // `max` returns its second operand when the first is NaN, as `f32::max` returns the other.
    _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), last))
}

/// `−v` (the sign bit flipped, as Rust's negation).
#[inline]
#[target_feature(enable = "avx512f")]
fn neg(v: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(v),
        _mm512_set1_epi32(i32::MIN),
    ))
}

/// `y = g(x)` of one block (`Pwlu::value_lanes`).
#[inline]
#[target_feature(enable = "avx512f")]
fn value_block(z: __m512, k: &Forward) -> __m512 {
    let t = _mm512_mul_ps(_mm512_sub_ps(z, k.l), k.scale);
    let i = index(t, k.last);
    let f = _mm512_sub_ps(t, _mm512_cvtepi32_ps(i));
    let inner = _mm512_add_ps(
        _mm512_permutexvar_ps(i, k.heights),
        _mm512_mul_ps(f, _mm512_permutexvar_ps(i, k.slopes)),
    );
    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, k.l);
    let left = _mm512_add_ps(k.h0, _mm512_mul_ps(k.kl, _mm512_sub_ps(z, k.l)));
    let right = _mm512_add_ps(k.hn, _mm512_mul_ps(k.kr, _mm512_sub_ps(z, k.r)));
    let outer = _mm512_mask_blend_ps(below, right, left);
    let above = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(z, k.r);
    _mm512_mask_blend_ps(below | above, inner, outer)
}

/// The forward's per-channel registers.
struct Forward {
    l: __m512,
    r: __m512,
    kl: __m512,
    kr: __m512,
    h0: __m512,
    hn: __m512,
    scale: __m512,
    last: __m512,
    heights: __m512,
    slopes: __m512,
}

/// `y = g(x)` over a run of one channel of PWLU with `n ≤ MAX_INTERVALS` intervals and
/// parameters `p` (`Pwlu::value_run`, the same bits).
///
/// # Safety
/// The CPU must support AVX-512F (callers outside AVX-512 code need `unsafe`).
///
/// # Panics
/// If `n` is 0 or above [`MAX_INTERVALS`], or the lengths disagree.
#[target_feature(enable = "avx512f")]
pub fn value_run(n: usize, x: &[f32], p: &[f32], y: &mut [f32]) {
    assert!(
        (1..=MAX_INTERVALS).contains(&n),
        "PWLU register tables: 1 to 16 intervals"
    );
    assert_eq!(x.len(), y.len(), "value_run lengths");
    let (l, r) = (p[0], p[1]);
    let h = &p[4..5 + n];
    let (heights, slopes) = tables(n, h);
    let k = Forward {
        l: _mm512_set1_ps(l),
        r: _mm512_set1_ps(r),
        kl: _mm512_set1_ps(p[2]),
        kr: _mm512_set1_ps(p[3]),
        h0: _mm512_set1_ps(h[0]),
        hn: _mm512_set1_ps(h[n]),
        scale: _mm512_set1_ps(n as f32 / (r - l)),
        last: _mm512_set1_ps((n - 1) as f32),
        heights,
        slopes,
    };
    let whole = x.len() / LANES * LANES;
    for (xb, yb) in x[..whole]
        .chunks_exact(LANES)
        .zip(y[..whole].chunks_exact_mut(LANES))
    {
        // SAFETY: both blocks hold 16 floats.
        unsafe {
            _mm512_storeu_ps(
                yb.as_mut_ptr(),
                value_block(_mm512_loadu_ps(xb.as_ptr()), &k),
            )
        };
    }
    let rest = x.len() - whole;
    if rest > 0 {
        let mut xp = [0.0f32; LANES];
        let mut yp = [0.0f32; LANES];
        xp[..rest].copy_from_slice(&x[whole..]);
        // SAFETY: both arrays hold 16 floats.
        unsafe {
            _mm512_storeu_ps(
                yp.as_mut_ptr(),
                value_block(_mm512_loadu_ps(xp.as_ptr()), &k),
            )
        };
        y[whole..].copy_from_slice(&yp[..rest]);
    }
}

/// The backward pass over whole blocks of one channel of PWLU with `n ≤ MAX_INTERVALS`
/// intervals (`Pwlu::backward_lanes` block by block, the same bits): `g` holds the upstream
/// gradients on entry and the input gradients on return; `acc` (rows `L, R, k_L, k_R,
/// h₀ … h_N`) gets the parameter gradients added lane by lane.
///
/// # Panics
/// If `n` is 0 or above [`MAX_INTERVALS`], the lengths disagree or are not whole blocks, or
/// `acc` has fewer than `n + 5` rows.
///
/// # Safety
/// The CPU must support AVX-512F (callers outside AVX-512 code need `unsafe`).
#[target_feature(enable = "avx512f")]
pub fn backward_blocks(n: usize, x: &[f32], p: &[f32], g: &mut [f32], acc: &mut [Lanes<f32>]) {
    assert!(
        (1..=MAX_INTERVALS).contains(&n),
        "PWLU register tables: 1 to 16 intervals"
    );
    assert_eq!(x.len(), g.len(), "backward_blocks lengths");
    assert_eq!(x.len() % LANES, 0, "backward_blocks takes whole blocks");
    assert!(acc.len() >= n + 5, "one accumulator row per parameter");
    let (l, r, kl, kr) = (p[0], p[1], p[2], p[3]);
    let h = &p[4..5 + n];
    // As the portable form: crossed bounds leave no input inside; a width of 1 keeps the
    // unused inner values finite.
    let w = if r - l > 0.0 { r - l } else { 1.0 };
    let scale = n as f32 / w;
    let scale2 = scale / w;
    let (_, slopes) = tables(n, h);
    let (lv, rv, klv, krv) = (
        _mm512_set1_ps(l),
        _mm512_set1_ps(r),
        _mm512_set1_ps(kl),
        _mm512_set1_ps(kr),
    );
    let (scale, scale2) = (_mm512_set1_ps(scale), _mm512_set1_ps(scale2));
    let last = _mm512_set1_ps((n - 1) as f32);
    let last_i = _mm512_set1_epi32((n - 1) as i32);
    let one = _mm512_set1_ps(1.0);
    let zero = _mm512_setzero_ps();
    let (ends, rows) = acc.split_at_mut(4);
    let rows = &mut rows[..n + 1];
    // SAFETY (every load and store below): each row and block holds 16 floats.
    let load = |a: &Lanes<f32>| unsafe { _mm512_loadu_ps(a.as_ptr()) };
    let [mut dl, mut dr, mut dkl, mut dkr] = [0, 1, 2, 3].map(|k| load(&ends[k]));
    let mut heights = [zero; MAX_INTERVALS + 1];
    for (v, row) in heights.iter_mut().zip(rows.iter()) {
        *v = load(row);
    }
    for (xb, gb) in x.chunks_exact(LANES).zip(g.chunks_exact_mut(LANES)) {
        let (z, up) = unsafe { (_mm512_loadu_ps(xb.as_ptr()), _mm512_loadu_ps(gb.as_ptr())) };
        let t = _mm512_mul_ps(_mm512_sub_ps(z, lv), scale);
        let i = index(t, last);
        let f = _mm512_sub_ps(t, _mm512_cvtepi32_ps(i));
        let s = _mm512_permutexvar_ps(i, slopes);
        let us = _mm512_mul_ps(_mm512_mul_ps(up, s), scale2);
        let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, lv);
        let above = !below & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(z, rv);
        let outside = below | above;
        let is_below = _mm512_maskz_mov_ps(below, one);
        let is_above = _mm512_maskz_mov_ps(above, one);
        let inside = _mm512_sub_ps(_mm512_sub_ps(one, is_below), is_above);
        let (zl, zr) = (_mm512_sub_ps(z, lv), _mm512_sub_ps(z, rv));
        dl = _mm512_add_ps(
            dl,
            _mm512_add_ps(
                _mm512_mul_ps(neg(_mm512_mul_ps(up, klv)), is_below),
                _mm512_mul_ps(_mm512_mul_ps(us, zr), inside),
            ),
        );
        dr = _mm512_add_ps(
            dr,
            _mm512_sub_ps(
                _mm512_mul_ps(neg(_mm512_mul_ps(up, krv)), is_above),
                _mm512_mul_ps(_mm512_mul_ps(us, zl), inside),
            ),
        );
        dkl = _mm512_add_ps(dkl, _mm512_mul_ps(_mm512_mul_ps(up, zl), is_below));
        dkr = _mm512_add_ps(dkr, _mm512_mul_ps(_mm512_mul_ps(up, zr), is_above));
        // The lower height index of each lane and what goes to it and the next one.
        let side = _mm512_mask_blend_epi32(below, last_i, _mm512_setzero_si512());
        let idx = _mm512_mask_blend_epi32(outside, i, side);
        let end_lo = _mm512_maskz_mov_ps(below, up);
        let end_hi = _mm512_mask_blend_ps(below, up, zero);
        let lo = _mm512_mask_blend_ps(outside, _mm512_mul_ps(up, _mm512_sub_ps(one, f)), end_lo);
        let hi = _mm512_mask_blend_ps(outside, _mm512_mul_ps(up, f), end_hi);
        let slope = _mm512_mask_blend_ps(below, krv, klv);
        let grad = _mm512_mul_ps(
            up,
            _mm512_mask_blend_ps(outside, _mm512_mul_ps(s, scale), slope),
        );
        unsafe { _mm512_storeu_ps(gb.as_mut_ptr(), grad) };
        // Row m gets `lo` from the lanes whose index is m and `hi` from those whose index is
        // m − 1: at most one addition per lane and row, as the portable form's scatter. All
        // rows, a trip count known at compile time: unrolled, the rows stay in registers
        // (rows beyond N get no lane: indices stop at N − 1).
        let mut previous: __mmask16 = 0;
        for (m, v) in heights.iter_mut().enumerate() {
            let here = _mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(m as i32));
            *v = _mm512_mask_add_ps(*v, here, *v, lo);
            *v = _mm512_mask_add_ps(*v, previous, *v, hi);
            previous = here;
        }
    }
    let store = |a: &mut Lanes<f32>, v: __m512| unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) };
    for (k, v) in [dl, dr, dkl, dkr].into_iter().enumerate() {
        store(&mut ends[k], v);
    }
    for (row, v) in rows.iter_mut().zip(heights) {
        store(row, v);
    }
}
