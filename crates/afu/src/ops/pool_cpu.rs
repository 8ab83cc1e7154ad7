//! 2-D max pooling (no padding, floor mode) on NCHW slices, remembering the winner of each
//! window as a byte so the backward pass is a scatter.

use rayon::prelude::*;

use super::conv_cpu::ConvFloat;

/// Shapes of one max pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// `batch · channels` planes.
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window (rows, columns); at most 256 positions.
    pub kernel: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
}

impl PoolGeometry {
    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        let f = |n: usize, k: usize, s: usize| if n < k { 0 } else { (n - k) / s + 1 };
        [
            f(self.h, self.kernel[0], self.stride[0]),
            f(self.w, self.kernel[1], self.stride[1]),
        ]
    }

    /// True when the window index fits a byte and sizes are positive.
    pub fn supported(&self) -> bool {
        let k = self.kernel[0] * self.kernel[1];
        (1..=256).contains(&k) && self.stride[0] > 0 && self.stride[1] > 0
    }
}

/// Forward pass: `y` (`[planes, ho, wo]`) and, if given, the winning position in each window
/// (row-major within the window; the first maximum wins, NaN beats everything as in PyTorch).
pub fn forward<T: ConvFloat>(geo: &PoolGeometry, x: &[T], y: &mut [T], argmax: Option<&mut [u8]>) {
    let [ho, wo] = geo.out_hw();
    let (inp, outp) = (geo.h * geo.w, ho * wo);
    assert_eq!(x.len(), geo.planes * inp);
    assert_eq!(y.len(), geo.planes * outp);
    if outp == 0 {
        return;
    }
    let run = |xp: &[T], yp: &mut [T], mut ap: Option<&mut [u8]>| {
        if geo.kernel == [2, 2] && geo.stride == [2, 2] {
            return forward_2x2(geo, xp, yp, ap);
        }
        let [kh, kw] = geo.kernel;
        let [sh, sw] = geo.stride;
        for oy in 0..ho {
            for ox in 0..wo {
                let mut best = xp[oy * sh * geo.w + ox * sw];
                let mut at = 0usize;
                for i in 0..kh {
                    let row = &xp[(oy * sh + i) * geo.w + ox * sw..][..kw];
                    for (j, &v) in row.iter().enumerate() {
                        // `!(v <= best)`: greater, or NaN; once best is NaN it stays.
                        #[allow(clippy::eq_op)]
                        let best_is_number = best == best;
                        #[allow(clippy::neg_cmp_op_on_partial_ord)]
                        if best_is_number && !(v <= best) {
                            best = v;
                            at = i * kw + j;
                        }
                    }
                }
                yp[oy * wo + ox] = best;
                if let Some(a) = ap.as_deref_mut() {
                    a[oy * wo + ox] = at as u8;
                }
            }
        }
    };
    match argmax {
        Some(a) => {
            assert_eq!(a.len(), y.len());
            y.par_chunks_mut(outp)
                .zip(a.par_chunks_mut(outp))
                .zip(x.par_chunks(inp))
                .for_each(|((yp, ap), xp)| run(xp, yp, Some(ap)))
        }
        None => y
            .par_chunks_mut(outp)
            .zip(x.par_chunks(inp))
            .for_each(|(yp, xp)| run(xp, yp, None)),
    }
}

/// `a` beats `best` when greater, or NaN while `best` is a number (first maximum wins).
#[inline(always)]
fn beats<T: ConvFloat>(a: T, best: T) -> bool {
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let r = !(a <= best) && !best.is_nan_k();
    r
}

/// The common 2×2 window with stride 2, one plane: two input rows per output row.
fn forward_2x2<T: ConvFloat>(geo: &PoolGeometry, xp: &[T], yp: &mut [T], ap: Option<&mut [u8]>) {
    let [ho, wo] = geo.out_hw();
    let mut ap = ap;
    for oy in 0..ho {
        let r0 = &xp[2 * oy * geo.w..][..2 * wo];
        let r1 = &xp[(2 * oy + 1) * geo.w..][..2 * wo];
        let yr = &mut yp[oy * wo..][..wo];
        let mut ar = ap.as_deref_mut().map(|a| &mut a[oy * wo..][..wo]);
        for ox in 0..wo {
            let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
            let (mut best, mut at) = (a, 0u8);
            if beats(b, best) {
                (best, at) = (b, 1);
            }
            if beats(c, best) {
                (best, at) = (c, 2);
            }
            if beats(d, best) {
                (best, at) = (d, 3);
            }
            yr[ox] = best;
            if let Some(ar) = ar.as_deref_mut() {
                ar[ox] = at;
            }
        }
    }
}

/// Backward pass: the input gradient, `gy` routed to each window's winner (added where windows
/// overlap).
pub fn backward<T: ConvFloat>(geo: &PoolGeometry, gy: &[T], argmax: &[u8]) -> Vec<T> {
    let [ho, wo] = geo.out_hw();
    let (inp, outp) = (geo.h * geo.w, ho * wo);
    assert_eq!(gy.len(), geo.planes * outp);
    assert_eq!(argmax.len(), gy.len());
    let mut gx = vec![T::ZERO; geo.planes * inp];
    if outp == 0 {
        return gx;
    }
    let [_, kw] = geo.kernel;
    let [sh, sw] = geo.stride;
    gx.par_chunks_mut(inp)
        .zip(gy.par_chunks(outp).zip(argmax.par_chunks(outp)))
        .for_each(|(gxp, (gyp, ap))| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let a = ap[oy * wo + ox] as usize;
                    gxp[(oy * sh + a / kw) * geo.w + ox * sw + a % kw] += gyp[oy * wo + ox];
                }
            }
        });
    gx
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn forward_and_backward_match_the_definition_on_odd_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (h, w, kernel, stride) in [
            (7, 9, [2, 2], [2, 2]),
            (5, 5, [3, 3], [2, 2]),
            (6, 4, [2, 3], [1, 1]),
            (1, 1, [2, 2], [2, 2]),
        ] {
            let geo = PoolGeometry {
                planes: 3,
                h,
                w,
                kernel,
                stride,
            };
            let [ho, wo] = geo.out_hw();
            // Distinct values, so the maximum is unique and the gradient well defined.
            let x: Vec<f64> = (0..3 * h * w)
                .map(|i| {
                    let v = i as f64 + rng.random_range(0.0..0.5);
                    if rng.random_bool(0.5) { -v } else { v }
                })
                .collect();
            let gy: Vec<f64> = (0..3 * ho * wo)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut y = vec![0.0; gy.len()];
            let mut a = vec![0u8; gy.len()];
            forward(&geo, &x, &mut y, Some(&mut a));
            let mut want_gx = vec![0.0; x.len()];
            for p in 0..3 {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut best = (f64::NEG_INFINITY, 0);
                        for i in 0..kernel[0] {
                            for j in 0..kernel[1] {
                                let idx = p * h * w + (oy * stride[0] + i) * w + ox * stride[1] + j;
                                if x[idx] > best.0 {
                                    best = (x[idx], idx);
                                }
                            }
                        }
                        assert_eq!(y[p * ho * wo + oy * wo + ox], best.0);
                        want_gx[best.1] += gy[p * ho * wo + oy * wo + ox];
                    }
                }
            }
            assert_eq!(backward(&geo, &gy, &a), want_gx);
        }
    }

    #[test]
    fn ties_pick_the_first_and_nan_wins() {
        let geo = PoolGeometry {
            planes: 2,
            h: 2,
            w: 2,
            kernel: [2, 2],
            stride: [2, 2],
        };
        let x = [1.0f32, 3.0, 3.0, 0.0, 1.0, f32::NAN, 5.0, 2.0];
        let (mut y, mut a) = ([0f32; 2], [0u8; 2]);
        forward(&geo, &x, &mut y, Some(&mut a));
        assert_eq!((y[0], a[0]), (3.0, 1));
        assert!(y[1].is_nan());
        assert_eq!(a[1], 1);
    }
}
