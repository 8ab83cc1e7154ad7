//! 2-D convolution on NCHW slices: forward, and a backward that gives the input, weight and
//! bias gradients in one pass over the batch.
//!
//! - General case: per image and group, an im2col patch matrix (kept in a per-thread scratch
//!   buffer, so it stays in cache) multiplied by the weights with the `gemm` crate, writing the
//!   output in NCHW directly (no layout copies) with the bias as the initial value.
//! - 1×1, stride 1, no padding (pointwise): the image itself is the patch matrix.
//! - One input channel per group (depthwise): a direct loop, vectorisable along rows.
//!
//! The weight and bias gradients are summed per *work item* (a fixed slice of the batch that
//! depends only on the shapes) and the items' partial sums are added in a fixed order, so the
//! same inputs give bit-identical results whatever the number of threads.

use gemm::Parallelism;
use rayon::prelude::*;

use super::float::KernelFloat;

/// Element types the convolution runs on (`f32`, `f64`).
pub trait ConvFloat: KernelFloat + Default + std::fmt::Debug {}
impl ConvFloat for f32 {}
impl ConvFloat for f64 {}

/// Shapes and options of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub padding: [usize; 4],
    /// Channel groups (`cin` and `cout` are multiples of it).
    pub groups: usize,
}

impl ConvGeometry {
    /// Output height and width (0 when the kernel does not fit).
    pub fn out_hw(&self) -> [usize; 2] {
        let [pt, pl, pb, pr] = self.padding;
        let ph = self.h + pt + pb;
        let pw = self.w + pl + pr;
        if ph < self.kernel[0] || pw < self.kernel[1] {
            return [0, 0];
        }
        [
            (ph - self.kernel[0]) / self.stride[0] + 1,
            (pw - self.kernel[1]) / self.stride[1] + 1,
        ]
    }

    /// Checks that the shapes are consistent (used before any kernel runs).
    pub fn validate(&self) -> Result<(), String> {
        if self.groups == 0
            || !self.cin.is_multiple_of(self.groups)
            || !self.cout.is_multiple_of(self.groups)
        {
            return Err(format!(
                "groups {} must divide input channels {} and output channels {}",
                self.groups, self.cin, self.cout
            ));
        }
        if self.stride[0] == 0 || self.stride[1] == 0 || self.kernel[0] == 0 || self.kernel[1] == 0
        {
            return Err("stride and kernel size must be positive".into());
        }
        Ok(())
    }

    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of one group's patch matrix: `cin/groups · kh · kw`.
    fn k(&self) -> usize {
        self.cin_g() * self.kernel[0] * self.kernel[1]
    }
    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn out_plane(&self) -> usize {
        let [ho, wo] = self.out_hw();
        ho * wo
    }
    fn out_len(&self) -> usize {
        self.cout * self.out_plane()
    }
    /// Number of weight values.
    pub fn weight_len(&self) -> usize {
        self.cout * self.k()
    }
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0; 4]
    }
    /// Pointwise with small images: per-image products would be too thin for the matrix
    /// kernels, so the whole batch is packed into one `[channels, batch·plane]` matrix.
    fn batched_pointwise(&self) -> bool {
        self.pointwise() && self.h * self.w < BATCHED_POINTWISE_MAX_PLANE && self.batch > 1
    }
    fn depthwise(&self) -> bool {
        self.cin_g() == 1 && self.groups > 1
    }
    /// Range of output columns `ox` whose input column `ox·stride + j − left` lies in the image.
    fn valid_cols(&self, j: usize) -> (usize, usize) {
        let [_, wo] = self.out_hw();
        valid_range(wo, self.stride[1], j, self.padding[1], self.w)
    }
}

/// Pointwise convolutions on images with fewer pixels than this run as one batched product.
const BATCHED_POINTWISE_MAX_PLANE: usize = 256;

/// `[lo, hi)` of `o` in `0..n_out` with `0 ≤ o·s + k − pad < n_in`.
fn valid_range(n_out: usize, s: usize, k: usize, pad: usize, n_in: usize) -> (usize, usize) {
    // o·s + k ≥ pad  ⇔  o ≥ ceil((pad − k)/s)
    let lo = if pad > k { (pad - k).div_ceil(s) } else { 0 };
    // o·s + k − pad ≤ n_in − 1  ⇔  o ≤ (n_in − 1 + pad − k)/s
    let hi = if n_in + pad > k {
        ((n_in - 1 + pad - k) / s + 1).min(n_out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Fills `col` (`[k, ho·wo]`) with the patches of group `g` of one image `x` (`[cin, h, w]`).
fn im2col<T: ConvFloat>(geo: &ConvGeometry, x: &[T], g: usize, col: &mut [T]) {
    let [ho, wo] = geo.out_hw();
    let [kh, kw] = geo.kernel;
    let [sh, sw] = geo.stride;
    let (pt, pl) = (geo.padding[0], geo.padding[1]);
    let plane = ho * wo;
    for ci in 0..geo.cin_g() {
        let xc = &x[(g * geo.cin_g() + ci) * geo.h * geo.w..][..geo.h * geo.w];
        for i in 0..kh {
            let (oy0, oy1) = valid_range(ho, sh, i, pt, geo.h);
            for j in 0..kw {
                let row = &mut col[((ci * kh + i) * kw + j) * plane..][..plane];
                let (ox0, ox1) = geo.valid_cols(j);
                for oy in 0..ho {
                    let r = &mut row[oy * wo..][..wo];
                    if oy < oy0 || oy >= oy1 || ox0 >= ox1 {
                        r.fill(T::ZERO);
                        continue;
                    }
                    let xr = &xc[(oy * sh + i - pt) * geo.w..][..geo.w];
                    r[..ox0].fill(T::ZERO);
                    r[ox1..].fill(T::ZERO);
                    let start = ox0 * sw + j - pl;
                    if sw == 1 {
                        r[ox0..ox1].copy_from_slice(&xr[start..start + (ox1 - ox0)]);
                    } else {
                        for (o, v) in r[ox0..ox1].iter_mut().enumerate() {
                            *v = xr[start + o * sw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the patch-matrix gradient `col` back into group `g` of one image's gradient `gx`.
fn col2im<T: ConvFloat>(geo: &ConvGeometry, col: &[T], g: usize, gx: &mut [T]) {
    let [ho, wo] = geo.out_hw();
    let [kh, kw] = geo.kernel;
    let [sh, sw] = geo.stride;
    let (pt, pl) = (geo.padding[0], geo.padding[1]);
    let plane = ho * wo;
    for ci in 0..geo.cin_g() {
        let gc = &mut gx[(g * geo.cin_g() + ci) * geo.h * geo.w..][..geo.h * geo.w];
        for i in 0..kh {
            let (oy0, oy1) = valid_range(ho, sh, i, pt, geo.h);
            for j in 0..kw {
                let row = &col[((ci * kh + i) * kw + j) * plane..][..plane];
                let (ox0, ox1) = geo.valid_cols(j);
                if ox0 >= ox1 {
                    continue;
                }
                for oy in oy0..oy1 {
                    let r = &row[oy * wo..][..wo];
                    let gr = &mut gc[(oy * sh + i - pt) * geo.w..][..geo.w];
                    let start = ox0 * sw + j - pl;
                    if sw == 1 {
                        for (d, &v) in gr[start..start + (ox1 - ox0)].iter_mut().zip(&r[ox0..ox1]) {
                            *d += v;
                        }
                    } else {
                        for (o, &v) in r[ox0..ox1].iter().enumerate() {
                            gr[start + o * sw] += v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, all given by (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn matmul<T: ConvFloat>(
    [m, n, k]: [usize; 3],
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[T],
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: &[T],
    [rhs_rs, rhs_cs]: [usize; 2],
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::ZERO);
            }
        }
        return;
    }
    // Bounds: the last element each operand touches must be inside its slice.
    assert!((m - 1) * dst_rs + n <= dst.len());
    assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
    assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    let par = if parallel {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every access of the m×n×k product inside the slices; dst
    // does not alias lhs or rhs (a &mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// Forward pass: `y` (`[batch, cout, ho, wo]`) from `x` (`[batch, cin, h, w]`), `weight`
/// (`[cout, cin/groups, kh, kw]`) and an optional `bias` (`[cout]`).
pub fn forward<T: ConvFloat>(
    geo: &ConvGeometry,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    let (in_len, out_len) = (geo.in_len(), geo.out_len());
    assert_eq!(x.len(), geo.batch * in_len);
    assert_eq!(y.len(), geo.batch * out_len);
    assert_eq!(weight.len(), geo.weight_len());
    if out_len == 0 {
        return;
    }
    let plane = geo.out_plane();
    if geo.batched_pointwise() {
        pointwise_batched_forward(geo, x, weight, bias, y);
        return;
    }
    let parallel_gemm = geo.batch == 1;
    let scratch_len = if geo.pointwise() || geo.depthwise() {
        0
    } else {
        geo.k() * plane
    };
    y.par_chunks_mut(out_len)
        .zip(x.par_chunks(in_len))
        .for_each_init(
            || vec![T::ZERO; scratch_len],
            |col, (yb, xb)| {
                for (c, yc) in yb.chunks_mut(plane).enumerate() {
                    yc.fill(bias.map_or(T::ZERO, |b| b[c]));
                }
                if geo.depthwise() {
                    depthwise_forward(geo, xb, weight, yb);
                    return;
                }
                let (k, cog) = (geo.k(), geo.cout_g());
                for g in 0..geo.groups {
                    let patches: &[T] = if geo.pointwise() {
                        &xb[g * k * plane..][..k * plane]
                    } else {
                        im2col(geo, xb, g, col);
                        col
                    };
                    matmul(
                        [cog, plane, k],
                        &mut yb[g * cog * plane..][..cog * plane],
                        plane,
                        true,
                        &weight[g * cog * k..][..cog * k],
                        [k, 1],
                        patches,
                        [plane, 1],
                        parallel_gemm,
                    );
                }
            },
        );
}

/// Copies `[batch, channels, plane]` into `[channels, batch·plane]`.
fn pack<T: ConvFloat>(src: &[T], batch: usize, channels: usize, plane: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; src.len()];
    out.par_chunks_mut(batch * plane)
        .enumerate()
        .for_each(|(c, row)| {
            for b in 0..batch {
                row[b * plane..(b + 1) * plane]
                    .copy_from_slice(&src[(b * channels + c) * plane..][..plane]);
            }
        });
    out
}

/// The inverse of [`pack`], writing into `dst`.
fn unpack<T: ConvFloat>(src: &[T], batch: usize, channels: usize, plane: usize, dst: &mut [T]) {
    dst.par_chunks_mut(channels * plane)
        .enumerate()
        .for_each(|(b, img)| {
            for c in 0..channels {
                img[c * plane..(c + 1) * plane]
                    .copy_from_slice(&src[c * batch * plane + b * plane..][..plane]);
            }
        });
}

fn pointwise_batched_forward<T: ConvFloat>(
    geo: &ConvGeometry,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    let (plane, cols) = (geo.h * geo.w, geo.batch * geo.h * geo.w);
    let (k, cog) = (geo.k(), geo.cout_g());
    let xp = pack(x, geo.batch, geo.cin, plane);
    let mut yp = vec![T::ZERO; geo.cout * cols];
    if let Some(b) = bias {
        for (c, row) in yp.chunks_mut(cols).enumerate() {
            row.fill(b[c]);
        }
    }
    for g in 0..geo.groups {
        matmul(
            [cog, cols, k],
            &mut yp[g * cog * cols..][..cog * cols],
            cols,
            true,
            &weight[g * cog * k..][..cog * k],
            [k, 1],
            &xp[g * k * cols..][..k * cols],
            [cols, 1],
            true,
        );
    }
    unpack(&yp, geo.batch, geo.cout, plane, y);
}

fn pointwise_batched_backward<T: ConvFloat>(
    geo: &ConvGeometry,
    x: &[T],
    weight: &[T],
    gy: &[T],
    need_x: bool,
) -> ConvGrads<T> {
    let (plane, cols) = (geo.h * geo.w, geo.batch * geo.h * geo.w);
    let (k, cog) = (geo.k(), geo.cout_g());
    let xp = pack(x, geo.batch, geo.cin, plane);
    let gyp = pack(gy, geo.batch, geo.cout, plane);
    let mut gw = vec![T::ZERO; geo.weight_len()];
    let mut gxp = if need_x {
        vec![T::ZERO; geo.cin * cols]
    } else {
        Vec::new()
    };
    for g in 0..geo.groups {
        let gyg = &gyp[g * cog * cols..][..cog * cols];
        matmul(
            [cog, k, cols],
            &mut gw[g * cog * k..][..cog * k],
            k,
            false,
            gyg,
            [cols, 1],
            &xp[g * k * cols..][..k * cols],
            [1, cols],
            true,
        );
        if need_x {
            matmul(
                [k, cols, cog],
                &mut gxp[g * k * cols..][..k * cols],
                cols,
                false,
                &weight[g * cog * k..][..cog * k],
                [1, k],
                gyg,
                [cols, 1],
                true,
            );
        }
    }
    let bias = gyp
        .par_chunks(cols)
        .map(|row| {
            let mut s = T::ZERO;
            for &v in row {
                s += v;
            }
            s
        })
        .collect();
    let gx = need_x.then(|| {
        let mut gx = vec![T::ZERO; x.len()];
        unpack(&gxp, geo.batch, geo.cin, plane, &mut gx);
        gx
    });
    ConvGrads {
        x: gx,
        weight: gw,
        bias,
    }
}

/// Direct depthwise forward for one image (one input channel per group), adding into `y`.
fn depthwise_forward<T: ConvFloat>(geo: &ConvGeometry, x: &[T], weight: &[T], y: &mut [T]) {
    let [ho, wo] = geo.out_hw();
    let [kh, kw] = geo.kernel;
    let [sh, sw] = geo.stride;
    let (pt, pl) = (geo.padding[0], geo.padding[1]);
    let mult = geo.cout_g();
    for co in 0..geo.cout {
        let xc = &x[(co / mult) * geo.h * geo.w..][..geo.h * geo.w];
        let yc = &mut y[co * ho * wo..][..ho * wo];
        let wc = &weight[co * kh * kw..][..kh * kw];
        for i in 0..kh {
            let (oy0, oy1) = valid_range(ho, sh, i, pt, geo.h);
            for j in 0..kw {
                let wv = wc[i * kw + j];
                let (ox0, ox1) = geo.valid_cols(j);
                if ox0 >= ox1 {
                    continue;
                }
                let start = ox0 * sw + j - pl;
                for oy in oy0..oy1 {
                    let xr = &xc[(oy * sh + i - pt) * geo.w..][..geo.w];
                    let yr = &mut yc[oy * wo + ox0..oy * wo + ox1];
                    if sw == 1 {
                        for (d, &v) in yr.iter_mut().zip(&xr[start..]) {
                            *d += wv * v;
                        }
                    } else {
                        for (o, d) in yr.iter_mut().enumerate() {
                            *d += wv * xr[start + o * sw];
                        }
                    }
                }
            }
        }
    }
}

/// Direct depthwise backward for one image: adds into `gx` (if any) and `gw`.
fn depthwise_backward<T: ConvFloat>(
    geo: &ConvGeometry,
    x: &[T],
    weight: &[T],
    gy: &[T],
    gx: Option<&mut [T]>,
    gw: &mut [T],
) {
    let [ho, wo] = geo.out_hw();
    let [kh, kw] = geo.kernel;
    let [sh, sw] = geo.stride;
    let (pt, pl) = (geo.padding[0], geo.padding[1]);
    let mult = geo.cout_g();
    let mut gx = gx;
    for co in 0..geo.cout {
        let ci = co / mult;
        let xc = &x[ci * geo.h * geo.w..][..geo.h * geo.w];
        let gyc = &gy[co * ho * wo..][..ho * wo];
        for i in 0..kh {
            let (oy0, oy1) = valid_range(ho, sh, i, pt, geo.h);
            for j in 0..kw {
                let wv = weight[co * kh * kw + i * kw + j];
                let (ox0, ox1) = geo.valid_cols(j);
                if ox0 >= ox1 {
                    continue;
                }
                let start = ox0 * sw + j - pl;
                let mut acc = T::ZERO;
                for oy in oy0..oy1 {
                    let row = (oy * sh + i - pt) * geo.w;
                    let gr = &gyc[oy * wo + ox0..oy * wo + ox1];
                    let xr = &xc[row..row + geo.w];
                    if sw == 1 {
                        let mut s = T::ZERO;
                        for (&g, &v) in gr.iter().zip(&xr[start..]) {
                            s += g * v;
                        }
                        acc += s;
                        if let Some(gx) = gx.as_deref_mut() {
                            let gxr = &mut gx[ci * geo.h * geo.w + row..][start..];
                            for (d, &g) in gxr.iter_mut().zip(gr) {
                                *d += wv * g;
                            }
                        }
                    } else {
                        for (o, &g) in gr.iter().enumerate() {
                            acc += g * xr[start + o * sw];
                        }
                        if let Some(gx) = gx.as_deref_mut() {
                            let gxr = &mut gx[ci * geo.h * geo.w + row..];
                            for (o, &g) in gr.iter().enumerate() {
                                gxr[start + o * sw] += wv * g;
                            }
                        }
                    }
                }
                gw[co * kh * kw + i * kw + j] += acc;
            }
        }
    }
}

/// Gradients of one convolution.
#[derive(Debug, Clone)]
pub struct ConvGrads<T> {
    /// Input gradient (`None` when not asked for).
    pub x: Option<Vec<T>>,
    /// Weight gradient.
    pub weight: Vec<T>,
    /// Bias gradient (summed over the batch and positions).
    pub bias: Vec<T>,
}

/// Work items for the weight-gradient partial sums: depends only on the shapes (not on the
/// thread count), at most 16, and small enough that the partial sums stay under ~32 MB.
fn work_items(geo: &ConvGeometry) -> usize {
    let budget = (8usize << 20) / geo.weight_len().max(1);
    geo.batch.clamp(1, 16).min(budget.max(1))
}

/// Backward pass: the gradients with respect to the input (when `need_x`), weight and bias,
/// given the upstream gradient `gy` (`[batch, cout, ho, wo]`).
pub fn backward<T: ConvFloat>(
    geo: &ConvGeometry,
    x: &[T],
    weight: &[T],
    gy: &[T],
    need_x: bool,
) -> ConvGrads<T> {
    let (in_len, out_len) = (geo.in_len(), geo.out_len());
    assert_eq!(x.len(), geo.batch * in_len);
    assert_eq!(gy.len(), geo.batch * out_len);
    assert_eq!(weight.len(), geo.weight_len());
    let plane = geo.out_plane();
    if out_len == 0 {
        return ConvGrads {
            x: need_x.then(|| vec![T::ZERO; x.len()]),
            weight: vec![T::ZERO; geo.weight_len()],
            bias: vec![T::ZERO; geo.cout],
        };
    }
    if geo.batched_pointwise() {
        return pointwise_batched_backward(geo, x, weight, gy, need_x);
    }
    let mut gx = if need_x {
        Some(vec![T::ZERO; x.len()])
    } else {
        None
    };
    let items = work_items(geo);
    let per_item = geo.batch.div_ceil(items).max(1);
    let (k, cog) = (geo.k(), geo.cout_g());
    let scratch_len = if geo.pointwise() || geo.depthwise() {
        0
    } else {
        k * plane
    };
    let parallel_gemm = items == 1;
    // One partial (weight, bias) gradient per item; gx images are disjoint per item.
    let mut gx_chunks: Vec<Option<&mut [T]>> = match gx.as_mut() {
        Some(v) => v.chunks_mut(per_item * in_len).map(Some).collect(),
        None => (0..geo.batch.div_ceil(per_item)).map(|_| None).collect(),
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = gx_chunks
        .par_iter_mut()
        .enumerate()
        .map(|(item, gx_item)| {
            let mut gw = vec![T::ZERO; geo.weight_len()];
            let mut gb = vec![T::ZERO; geo.cout];
            let mut col = vec![T::ZERO; scratch_len];
            let first = item * per_item;
            let last = (first + per_item).min(geo.batch);
            for b in first..last {
                let xb = &x[b * in_len..][..in_len];
                let gyb = &gy[b * out_len..][..out_len];
                for (c, gc) in gyb.chunks(plane).enumerate() {
                    let mut s = T::ZERO;
                    for &v in gc {
                        s += v;
                    }
                    gb[c] += s;
                }
                let gxb = gx_item
                    .as_deref_mut()
                    .map(|v| &mut v[(b - first) * in_len..][..in_len]);
                if geo.depthwise() {
                    depthwise_backward(geo, xb, weight, gyb, gxb, &mut gw);
                    continue;
                }
                let mut gxb = gxb;
                for g in 0..geo.groups {
                    let gyg = &gyb[g * cog * plane..][..cog * plane];
                    // gW[g] += gy[g] · patchesᵀ
                    {
                        let patches: &[T] = if geo.pointwise() {
                            &xb[g * k * plane..][..k * plane]
                        } else {
                            im2col(geo, xb, g, &mut col);
                            &col
                        };
                        matmul(
                            [cog, k, plane],
                            &mut gw[g * cog * k..][..cog * k],
                            k,
                            true,
                            gyg,
                            [plane, 1],
                            patches,
                            [1, plane],
                            parallel_gemm,
                        );
                    }
                    // d patches = W[g]ᵀ · gy[g], then back onto the image.
                    if let Some(gxb) = gxb.as_deref_mut() {
                        let wg = &weight[g * cog * k..][..cog * k];
                        if geo.pointwise() {
                            matmul(
                                [k, plane, cog],
                                &mut gxb[g * k * plane..][..k * plane],
                                plane,
                                false,
                                wg,
                                [1, k],
                                gyg,
                                [plane, 1],
                                parallel_gemm,
                            );
                        } else {
                            matmul(
                                [k, plane, cog],
                                &mut col,
                                plane,
                                false,
                                wg,
                                [1, k],
                                gyg,
                                [plane, 1],
                                parallel_gemm,
                            );
                            col2im(geo, &col, g, gxb);
                        }
                    }
                }
            }
            (gw, gb)
        })
        .collect();
    // Fixed-order reduction of the items' partial sums.
    let mut parts = partials.into_iter();
    let (mut gw, mut gb) = parts
        .next()
        .unwrap_or_else(|| (vec![T::ZERO; geo.weight_len()], vec![T::ZERO; geo.cout]));
    for (pw, pb) in parts {
        for (a, b) in gw.iter_mut().zip(pw) {
            *a += b;
        }
        for (a, b) in gb.iter_mut().zip(pb) {
            *a += b;
        }
    }
    drop(gx_chunks);
    ConvGrads {
        x: gx,
        weight: gw,
        bias: gb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Plain f64 convolution by definition (the oracle).
    fn reference_forward(geo: &ConvGeometry, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let [ho, wo] = geo.out_hw();
        let [kh, kw] = geo.kernel;
        let (cig, cog) = (geo.cin_g(), geo.cout_g());
        let mut y = vec![0.0; geo.batch * geo.cout * ho * wo];
        for n in 0..geo.batch {
            for co in 0..geo.cout {
                let g = co / cog;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = b[co];
                        for ci in 0..cig {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy =
                                        (oy * geo.stride[0] + i) as isize - geo.padding[0] as isize;
                                    let ix =
                                        (ox * geo.stride[1] + j) as isize - geo.padding[1] as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= geo.h as isize
                                        || ix >= geo.w as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * geo.cin + g * cig + ci) * geo.h + iy as usize)
                                        * geo.w
                                        + ix as usize;
                                    s += x[xi] * w[((co * cig + ci) * kh + i) * kw + j];
                                }
                            }
                        }
                        y[((n * geo.cout + co) * ho + oy) * wo + ox] = s;
                    }
                }
            }
        }
        y
    }

    fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, cin, h, w, cout, kernel, stride, padding, groups| ConvGeometry {
            batch,
            cin,
            h,
            w,
            cout,
            kernel,
            stride,
            padding,
            groups,
        };
        vec![
            g(3, 1, 9, 7, 5, [3, 3], [1, 1], [0; 4], 1),
            g(2, 3, 11, 10, 4, [3, 3], [2, 2], [1, 1, 1, 1], 1),
            g(2, 4, 7, 9, 6, [3, 2], [2, 1], [1, 0, 2, 1], 2),
            g(3, 5, 8, 7, 5, [3, 3], [1, 1], [1, 1, 1, 1], 5),
            g(2, 4, 9, 9, 8, [3, 3], [2, 2], [1, 1, 1, 1], 4),
            g(3, 6, 5, 7, 7, [1, 1], [1, 1], [0; 4], 1),
            g(5, 6, 2, 3, 8, [1, 1], [1, 1], [0; 4], 2),
            g(4, 3, 17, 16, 5, [1, 1], [1, 1], [0; 4], 1),
            g(1, 6, 5, 7, 4, [1, 1], [2, 2], [0; 4], 2),
            g(17, 2, 4, 4, 3, [3, 3], [1, 1], [1, 1, 1, 1], 1),
            g(2, 2, 3, 3, 2, [5, 5], [1, 1], [2, 2, 2, 2], 1),
        ]
    }

    #[test]
    fn forward_matches_definition_in_f64_and_f32() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for geo in geometries() {
            geo.validate().unwrap();
            let x = random(&mut rng, geo.batch * geo.in_len());
            let w = random(&mut rng, geo.weight_len());
            let b = random(&mut rng, geo.cout);
            let want = reference_forward(&geo, &x, &w, &b);
            let mut y = vec![0.0; want.len()];
            forward(&geo, &x, &w, Some(&b), &mut y);
            for (a, e) in y.iter().zip(&want) {
                assert!((a - e).abs() < 1e-12, "{geo:?}: {a} vs {e}");
            }
            let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let mut y32 = vec![0f32; want.len()];
            forward(&geo, &f(&x), &f(&w), Some(&f(&b)), &mut y32);
            for (a, e) in y32.iter().zip(&want) {
                assert!((*a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()), "{geo:?}");
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences_in_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for geo in geometries() {
            let x = random(&mut rng, geo.batch * geo.in_len());
            let w = random(&mut rng, geo.weight_len());
            let b = random(&mut rng, geo.cout);
            let gy = random(&mut rng, geo.batch * geo.out_len());
            // L = Σ gy·y is linear in each argument, so central differences are exact up to
            // rounding.
            let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
                reference_forward(&geo, x, w, b)
                    .iter()
                    .zip(&gy)
                    .map(|(a, g)| a * g)
                    .sum()
            };
            let grads = backward(&geo, &x, &w, &gy, true);
            let h = 1e-3;
            let check = |name: &str, got: &[f64], mut eval: Box<dyn FnMut(usize, f64) -> f64>| {
                for (i, &g) in got.iter().enumerate() {
                    let fd = (eval(i, h) - eval(i, -h)) / (2.0 * h);
                    assert!(
                        (g - fd).abs() < 1e-8 * (1.0 + fd.abs()),
                        "{name}[{i}] {geo:?}"
                    );
                }
            };
            check(
                "x",
                grads.x.as_ref().unwrap(),
                Box::new(|i, d| {
                    let mut xx = x.clone();
                    xx[i] += d;
                    loss(&xx, &w, &b)
                }),
            );
            check(
                "w",
                &grads.weight,
                Box::new(|i, d| {
                    let mut ww = w.clone();
                    ww[i] += d;
                    loss(&x, &ww, &b)
                }),
            );
            check(
                "b",
                &grads.bias,
                Box::new(|i, d| {
                    let mut bb = b.clone();
                    bb[i] += d;
                    loss(&x, &w, &bb)
                }),
            );
            let no_x = backward(&geo, &x, &w, &gy, false);
            assert!(no_x.x.is_none());
            assert_eq!(no_x.weight, grads.weight);
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let run = |threads: usize, geo: &ConvGeometry, x: &[f32], w: &[f32], gy: &[f32]| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut y = vec![0f32; gy.len()];
                forward(geo, x, w, None, &mut y);
                (y, backward(geo, x, w, gy, true))
            })
        };
        let mut geos = geometries();
        // Batched pointwise with a product large enough for the matrix kernel to split it.
        geos.push(ConvGeometry {
            batch: 32,
            cin: 96,
            h: 4,
            w: 4,
            cout: 80,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0; 4],
            groups: 1,
        });
        for geo in geos {
            let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
            let x = f(random(&mut rng, geo.batch * geo.in_len()));
            let w = f(random(&mut rng, geo.weight_len()));
            let gy = f(random(&mut rng, geo.batch * geo.out_len()));
            let (y1, g1) = run(1, &geo, &x, &w, &gy);
            let (y3, g3) = run(3, &geo, &x, &w, &gy);
            assert_eq!(y1, y3, "{geo:?}");
            assert_eq!(g1.x, g3.x, "{geo:?}");
            assert_eq!(g1.weight, g3.weight, "{geo:?}");
            assert_eq!(g1.bias, g3.bias, "{geo:?}");
        }
    }

    #[test]
    fn valid_range_is_exact() {
        for n_in in 1..8 {
            for k in 0..4 {
                for pad in 0..3 {
                    for s in 1..4 {
                        let n_out = 10;
                        let (lo, hi) = valid_range(n_out, s, k, pad, n_in);
                        for o in 0..n_out {
                            let p = (o * s + k) as isize - pad as isize;
                            let inside = p >= 0 && p < n_in as isize;
                            assert_eq!(inside, o >= lo && o < hi, "{n_in} {k} {pad} {s} {o}");
                        }
                    }
                }
            }
        }
    }
}
