//! The learnable families as CubeCL kernels, for every CubeCL backend (wgpu / Vulkan / Metal,
//! CUDA): built with the `wgpu` or `cuda` feature.
//!
//! - forward: one thread per element, `y = g(x; p_c)`;
//! - backward: one cube per (channel, chunk of that channel's elements). Each thread walks its
//!   elements of the chunk, writes `gx = gy·∂g/∂x` and adds `gy·∂g/∂pₖ` into its own local
//!   array of the channel's `P` parameters; the cube then reduces those arrays across its
//!   threads in shared memory with a fixed tree (eight parameters per pass) and writes one
//!   partial row per cube. A last kernel adds the chunks' partial rows in chunk order.
//!   No float atomics, and the launch shape depends only on the tensor's shape, so a rerun
//!   gives the same bits. No `elements × P` tensor is ever allocated.
//!
//! The formulas are those of [`super::math`], written again in CubeCL's dialect, branch for
//! branch and in the same order of operations (read the two side by side). The family and its
//! sizes are compile-time constants of the kernels: one kernel per family and size, compiled
//! on first use.

use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;

use super::Family;
use super::fused::{FamilyBackend, FamilyInputs, FamilyKernels};
use super::math::Kaf;

/// Threads per cube in every kernel (a power of two: the reduction tree halves it).
const CUBE_THREADS: u32 = 256;
/// Elements each thread of the backward kernel handles (about), before a channel is split
/// into more chunks.
const ELEMENTS_PER_THREAD: usize = 16;
/// Most chunks per channel.
const MAX_CHUNKS: usize = 1024;
/// Parameters reduced together by one pass of the shared-memory tree.
const GROUP: usize = 8;

/// The kernels' family numbers (compile-time constants there).
const PRELU: u32 = 0;
const SWISH_BETA: u32 = 1;
const PMISH: u32 = 2;
const PAU: u32 = 3;
const PWLU: u32 = 4;
const APL: u32 = 5;
const KAF: u32 = 6;

/// A family as the kernels see it: its number, its sizes (`(m, n)` for PAU, `(N, 0)` for
/// PWLU, `(S, 0)` for APL, `(D, 0)` for KAF, else `(0, 0)`) and KAF's kernel width `γ`.
#[derive(Debug, Clone, Copy)]
struct Code {
    kind: u32,
    a: usize,
    b: usize,
    gamma: f64,
}

impl Code {
    fn of(family: Family) -> Code {
        let (kind, a, b, gamma) = match family {
            Family::Prelu => (PRELU, 0, 0, 0.0),
            Family::SwishBeta => (SWISH_BETA, 0, 0, 0.0),
            Family::Pmish => (PMISH, 0, 0, 0.0),
            Family::Pau { m, n } => (PAU, m, n, 0.0),
            Family::Pwlu { intervals } => (PWLU, intervals, 0, 0.0),
            Family::Apl { hinges } => (APL, hinges, 0, 0.0),
            Family::Kaf { points } => (KAF, points, 0, Kaf { d: points }.gamma()),
        };
        let code = Code { kind, a, b, gamma };
        debug_assert_eq!(n_params(kind, a, b), family.n_params(), "{family}");
        code
    }
}

/// Parameters per channel of family `kind` with sizes `(a, b)` (as [`Family::n_params`]).
fn n_params(kind: u32, a: usize, b: usize) -> usize {
    match kind {
        PAU => a + 1 + b,
        PWLU => a + 5,
        APL => 2 * a,
        KAF => a,
        _ => 1,
    }
}

/// Logistic sigmoid, stable for large `|z|` (`math::sigmoid`).
#[cube]
fn sigmoid_k<F: Float>(z: F) -> F {
    let one = F::new(1.0);
    if z >= F::new(0.0) {
        one / (one + F::exp(F::new(0.0) - z))
    } else {
        let e = F::exp(z);
        e / (one + e)
    }
}

/// Mish (`math::mish_and_derivative`, first value).
#[cube]
fn mish_k<F: Float>(z: F) -> F {
    if z > F::new(20.0) {
        z
    } else {
        let two = F::new(2.0);
        let e = F::exp(z);
        let n = e * (e + two);
        z * (n / (n + two))
    }
}

/// Mish's derivative (`math::mish_and_derivative`, second value).
#[cube]
fn dmish_k<F: Float>(z: F) -> F {
    if z > F::new(20.0) {
        F::new(1.0)
    } else {
        let one = F::new(1.0);
        let two = F::new(2.0);
        let e = F::exp(z);
        let n = e * (e + two);
        let t = n / (n + two);
        let s = e / (one + e);
        t + z * (one - t * t) * s
    }
}

/// `+1`, `−1` or 0 (`math::pau::sign`).
#[cube]
fn sign_k<F: Float>(v: F) -> F {
    let zero = F::new(0.0);
    if v > zero {
        F::new(1.0)
    } else if v < zero {
        F::new(-1.0)
    } else {
        zero
    }
}

/// KAF's dictionary point `dᵢ = −3 + 6·i/(D − 1)`, as `(6·i − 3·(D − 1)) / (D − 1)`: the
/// numerator and denominator are exact integers in `F`, so the one rounding is the division's
/// (the CPU rounds the same value once from `f64`).
#[cube]
fn kaf_point<F: Float>(i: usize, #[comptime] d: usize) -> F {
    let offset = F::new(comptime!((3 * (d - 1)) as f32));
    let den = F::new(comptime!((d - 1) as f32));
    (F::cast_from(6 * i) - offset) / den
}

/// `g(z; p)` of the family `kind` with sizes `(sa, sb)`, `p` the channel's parameters
/// `p[o..o + P]`; `gamma` is KAF's `γ`.
#[cube]
fn family_value<F: Float>(
    z: F,
    p: &Tensor<F>,
    o: usize,
    gamma: F,
    #[comptime] kind: u32,
    #[comptime] sa: usize,
    #[comptime] sb: usize,
) -> F {
    let zero = F::new(0.0);
    let one = F::new(1.0);
    if comptime!(kind == PRELU) {
        if z > zero { z } else { p[o] * z }
    } else if comptime!(kind == SWISH_BETA) {
        z * sigmoid_k::<F>(p[o] * z)
    } else if comptime!(kind == PMISH) {
        let m = mish_k::<F>(z);
        if z < zero { m + p[o] * z } else { m }
    } else if comptime!(kind == PAU) {
        // P by Horner; Q = 1 + Σ |b_k|·|z|^k.
        let mut pv = p[o + sa];
        for jj in 0..sa {
            pv = pv * z + p[o + sa - 1 - jj];
        }
        let az = F::abs(z);
        let mut q = one;
        let mut pow = one;
        for k in 0..sb {
            pow *= az;
            q += F::abs(p[o + sa + 1 + k]) * pow;
        }
        pv / q
    } else if comptime!(kind == PWLU) {
        let l = p[o];
        let r = p[o + 1];
        if z < l {
            p[o + 4] + p[o + 2] * (z - l)
        } else if z >= r {
            p[o + 4 + sa] + p[o + 3] * (z - r)
        } else {
            let t = (z - l) * F::new(comptime!(sa as f32)) / (r - l);
            // ⌊t⌋, at most N − 1 (t ≥ 0 here).
            let i = usize::cast_from(F::min(t, F::new(comptime!((sa - 1) as f32))));
            let f = t - F::cast_from(i);
            p[o + 4 + i] + f * (p[o + 5 + i] - p[o + 4 + i])
        }
    } else if comptime!(kind == APL) {
        let mut y = F::max(z, zero);
        for k in 0..sa {
            y += p[o + k] * F::max(p[o + sa + k] - z, zero);
        }
        y
    } else {
        let ng = zero - gamma;
        let mut y = zero;
        for i in 0..sa {
            let u = z - kaf_point::<F>(i, sa);
            y += p[o + i] * F::exp(ng * u * u);
        }
        y
    }
}

/// `∂g/∂z` at `(z, p)` of the family `kind`; adds `up · ∂g/∂pₖ` to `dp[k]` (as
/// `ScalarFamily::backward`).
#[cube]
#[allow(clippy::too_many_arguments)]
fn family_backward<F: Float>(
    z: F,
    p: &Tensor<F>,
    o: usize,
    up: F,
    dp: &mut Array<F>,
    gamma: F,
    #[comptime] kind: u32,
    #[comptime] sa: usize,
    #[comptime] sb: usize,
) -> F {
    let zero = F::new(0.0);
    let one = F::new(1.0);
    if comptime!(kind == PRELU) {
        if z > zero {
            one
        } else {
            dp[0] += up * z;
            p[o]
        }
    } else if comptime!(kind == SWISH_BETA) {
        let s = sigmoid_k::<F>(p[o] * z);
        let ds = s * (one - s);
        dp[0] += up * z * z * ds;
        s + p[o] * z * ds
    } else if comptime!(kind == PMISH) {
        let d = dmish_k::<F>(z);
        if z < zero {
            dp[0] += up * z;
            d + p[o]
        } else {
            d
        }
    } else if comptime!(kind == PAU) {
        // P and P' by Horner; Q = 1 + Σ |b_k|·|z|^k, Q' = sign(z)·Σ k·|b_k|·|z|^(k−1).
        let mut pv = p[o + sa];
        let mut dpv = zero;
        for jj in 0..sa {
            dpv = dpv * z + pv;
            pv = pv * z + p[o + sa - 1 - jj];
        }
        let az = F::abs(z);
        let mut q = one;
        let mut dq = zero;
        let mut pow = one;
        for k in 0..sb {
            let ab = F::abs(p[o + sa + 1 + k]);
            dq += F::cast_from(k + 1) * ab * pow;
            pow *= az;
            q += ab * pow;
        }
        let dq = dq * sign_k::<F>(z);
        let inv_q = one / q;
        let y = pv * inv_q;
        // ∂g/∂aⱼ = zʲ/Q.
        let mut zj = up * inv_q;
        for j in 0..comptime!(sa + 1) {
            dp[j] += zj;
            zj *= z;
        }
        // ∂g/∂bₖ = −(P/Q²)·sign(bₖ)·|z|ᵏ.
        let mut zk = (zero - up) * y * inv_q * az;
        for k in 0..sb {
            dp[sa + 1 + k] += zk * sign_k::<F>(p[o + sa + 1 + k]);
            zk *= az;
        }
        (dpv - y * dq) * inv_q
    } else if comptime!(kind == PWLU) {
        let l = p[o];
        let r = p[o + 1];
        if z < l {
            dp[0] -= up * p[o + 2];
            dp[2] += up * (z - l);
            dp[4] += up;
            p[o + 2]
        } else if z >= r {
            dp[1] -= up * p[o + 3];
            dp[3] += up * (z - r);
            dp[4 + sa] += up;
            p[o + 3]
        } else {
            let nf = F::new(comptime!(sa as f32));
            let w = r - l;
            let t = (z - l) * nf / w;
            let i = usize::cast_from(F::min(t, F::new(comptime!((sa - 1) as f32))));
            let f = t - F::cast_from(i);
            let s = p[o + 5 + i] - p[o + 4 + i];
            // ∂t/∂L = N·(z − R)/(R − L)², ∂t/∂R = −N·(z − L)/(R − L)².
            let us = up * s * nf / (w * w);
            dp[0] += us * (z - r);
            dp[1] -= us * (z - l);
            dp[4 + i] += up * (one - f);
            dp[5 + i] += up * f;
            s * nf / w
        }
    } else if comptime!(kind == APL) {
        let mut dz = zero;
        if z > zero {
            dz = one;
        }
        for k in 0..sa {
            let h = p[o + sa + k] - z;
            if h > zero {
                dp[k] += up * h;
                dp[sa + k] += up * p[o + k];
                dz -= p[o + k];
            }
        }
        dz
    } else {
        let ng = zero - gamma;
        let g2 = gamma + gamma;
        let mut dz = zero;
        for i in 0..sa {
            let u = z - kaf_point::<F>(i, sa);
            let e = F::exp(ng * u * u);
            dp[i] += up * e;
            dz -= g2 * u * p[o + i] * e;
        }
        dz
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn family_forward_kernel<F: Float>(
    x: &Tensor<F>,
    p: &Tensor<F>,
    y: &mut Tensor<F>,
    len: u32,
    channels: u32,
    inner: u32,
    gamma: InputScalar,
    #[comptime] kind: u32,
    #[comptime] sa: usize,
    #[comptime] sb: usize,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= len as usize {
        terminate!();
    }
    let np = comptime!(n_params(kind, sa, sb));
    let c = (i / inner as usize) % channels as usize;
    y[i] = family_value::<F>(x[i], p, c * np, gamma.get::<F>(), kind, sa, sb);
}

/// Input gradient of chunk `CUBE_POS_X` of channel `CUBE_POS_Y`, and its partial parameter
/// gradients `partials[(c·chunks + j)·P + k]` = Σ gy·∂g/∂pₖ over the chunk's elements.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn family_backward_kernel<F: Float>(
    x: &Tensor<F>,
    gy: &Tensor<F>,
    p: &Tensor<F>,
    gx: &mut Tensor<F>,
    partials: &mut Tensor<F>,
    channels: u32,
    inner: u32,
    per_channel: u32,
    chunk_len: u32,
    chunks: u32,
    gamma: InputScalar,
    #[comptime] kind: u32,
    #[comptime] sa: usize,
    #[comptime] sb: usize,
    #[comptime] threads: u32,
    #[define(F)] _dtype: ElemType,
) {
    let np = comptime!(n_params(kind, sa, sb));
    let group = comptime!(if np < GROUP { np } else { GROUP });
    let j = CUBE_POS_X as usize;
    let c = CUBE_POS_Y as usize;
    let t = UNIT_POS as usize;
    // Runtime copy of the cube size (mutable index arithmetic below must not be comptime).
    let n_threads = CUBE_DIM as usize;
    let n_channels = channels as usize;
    let inner_u = inner as usize;
    let start = j * chunk_len as usize;
    let end = start + chunk_len as usize;
    let limit = per_channel as usize;
    let o = c * np;
    let g = gamma.get::<F>();

    let mut acc = Array::<F>::new(np);
    for k in 0..np {
        acc[k] = F::new(0.0);
    }
    let mut m = start + t;
    while m < end && m < limit {
        let i = ((m / inner_u) * n_channels + c) * inner_u + m % inner_u;
        let up = gy[i];
        let dz = family_backward::<F>(x[i], p, o, up, &mut acc, g, kind, sa, sb);
        gx[i] = up * dz;
        m += n_threads;
    }

    // Fixed-tree sums of the threads' arrays, `group` parameters per pass.
    let mut shared = Shared::new_slice(comptime!(group * threads as usize));
    let slot = (c * chunks as usize + j) * np;
    for g0 in 0..comptime!(np.div_ceil(group)) {
        let k0 = g0 * group;
        #[unroll]
        for q in 0..group {
            let k = k0 + q;
            let mut v = F::new(0.0);
            if k < np {
                v = acc[k];
            }
            shared[q * n_threads + t] = v;
        }
        sync_cube();
        let mut stride = n_threads / 2;
        while stride > 0 {
            if t < stride {
                #[unroll]
                for q in 0..group {
                    let a = q * n_threads + t;
                    let s = shared[a] + shared[a + stride];
                    shared[a] = s;
                }
            }
            sync_cube();
            stride /= 2;
        }
        if t == 0 {
            #[unroll]
            for q in 0..group {
                let k = k0 + q;
                if k < np {
                    let total = shared[q * n_threads];
                    partials[slot + k] = total;
                }
            }
        }
        sync_cube();
    }
}

/// One thread per parameter of `[C, P]`: adds the chunks' partials in chunk order.
#[cube(launch)]
fn family_reduce_kernel<F: Float>(
    partials: &Tensor<F>,
    gp: &mut Tensor<F>,
    total: u32,
    np: u32,
    chunks: u32,
    #[define(F)] _dtype: ElemType,
) {
    let q = ABSOLUTE_POS;
    if q >= total as usize {
        terminate!();
    }
    let n_params = np as usize;
    let n_chunks = chunks as usize;
    let c = q / n_params;
    let k = q % n_params;
    let mut s = F::new(0.0);
    for j in 0..n_chunks {
        s += partials[(c * n_chunks + j) * n_params + k];
    }
    gp[q] = s;
}

/// `(len, channels, inner)`: elements, channels of the parameters, and elements per (outer
/// index, channel), as [`crate::afu::kernel::layout::Layout::of`].
fn layout(x: &CubeTensor, channels: usize) -> (usize, usize, usize) {
    let dims = x.shape().to_vec();
    let len: usize = dims.iter().product();
    assert!(
        len < u32::MAX as usize,
        "the CubeCL family kernels index with 32 bits: {len} elements is too many"
    );
    if channels <= 1 {
        return (len, 1, len.max(1));
    }
    assert!(
        dims.len() >= 2 && dims[1] == channels,
        "per-channel family with {channels} channels applied to a tensor of shape {dims:?}"
    );
    let inner: usize = dims[2..].iter().product();
    (len, channels, inner.max(1))
}

fn launch_dims(client: &cubecl::client::Client, n: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new_1d(CUBE_THREADS);
    (
        cubecl::calculate_cube_count_elemwise(client, n.max(1), cube_dim),
        cube_dim,
    )
}

/// `y = g(x)` on the tensor's CubeCL device; `p` holds the `[C, P]` parameters.
pub fn forward(x: CubeTensor, p: CubeTensor, family: Family) -> CubeTensor {
    let (x, p) = (into_contiguous(x), into_contiguous(p));
    let code = Code::of(family);
    assert_eq!(p.shape()[1], family.n_params(), "{family}: parameters");
    let (len, channels, inner) = layout(&x, p.shape()[0]);
    let y = empty_device_dtype(x.client.clone(), x.device.clone(), x.shape(), x.dtype);
    if len == 0 {
        return y;
    }
    let (count, dim) = launch_dims(&x.client, len);
    let client = x.client.clone();
    let storage = dtype_to_storage_type(x.dtype);
    family_forward_kernel::launch(
        &client,
        count,
        dim,
        x.into_tensor_arg(),
        p.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        len as u32,
        channels as u32,
        inner as u32,
        InputScalar::new(code.gamma, storage),
        code.kind,
        code.a,
        code.b,
        storage,
    );
    y
}

/// `[gx, gp]` of one family application on a CubeCL device, from the forward's inputs and the
/// upstream gradient `gy`.
pub fn backward(x: CubeTensor, gy: CubeTensor, p: CubeTensor, family: Family) -> [CubeTensor; 2] {
    let (x, gy, p) = (into_contiguous(x), into_contiguous(gy), into_contiguous(p));
    let code = Code::of(family);
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let [c_param, np] = [p.shape()[0], p.shape()[1]];
    assert_eq!(np, family.n_params(), "{family}: parameters");
    let (len, channels, inner) = layout(&x, c_param);
    let empty =
        |shape: Vec<usize>| empty_device_dtype(client.clone(), device.clone(), shape.into(), dtype);
    let gx = empty(x.shape().to_vec());
    let gp = empty(vec![c_param, np]);
    let storage = dtype_to_storage_type(dtype);
    // Chunks per channel: a function of the shape only (at least one, so that an empty input
    // still writes zero gradients).
    let per_channel = len / channels;
    let want = per_channel.div_ceil(CUBE_THREADS as usize * ELEMENTS_PER_THREAD);
    let chunk_len = per_channel.div_ceil(want.clamp(1, MAX_CHUNKS)).max(1);
    let chunks = per_channel.div_ceil(chunk_len).max(1);
    let partials = empty(vec![channels * chunks * np]);
    family_backward_kernel::launch(
        &client,
        CubeCount::Static(chunks as u32, channels as u32, 1),
        CubeDim::new_1d(CUBE_THREADS),
        x.into_tensor_arg(),
        gy.into_tensor_arg(),
        p.into_tensor_arg(),
        gx.clone().into_tensor_arg(),
        partials.clone().into_tensor_arg(),
        channels as u32,
        inner as u32,
        per_channel as u32,
        chunk_len as u32,
        chunks as u32,
        InputScalar::new(code.gamma, storage),
        code.kind,
        code.a,
        code.b,
        CUBE_THREADS,
        storage,
    );
    let total = c_param * np;
    let (count, dim) = launch_dims(&client, total);
    family_reduce_kernel::launch(
        &client,
        count,
        dim,
        partials.into_tensor_arg(),
        gp.clone().into_tensor_arg(),
        total as u32,
        np as u32,
        chunks as u32,
        storage,
    );
    [gx, gp]
}

impl FamilyBackend for Cube {
    fn family_fused(inputs: FamilyInputs<Self>, family: Family) -> FloatTensor<Self> {
        forward(inputs.x, inputs.p, family)
    }
}

impl FamilyKernels for Cube {
    fn kernel_forward(
        x: &FloatTensor<Self>,
        p: &FloatTensor<Self>,
        family: Family,
    ) -> FloatTensor<Self> {
        forward(x.clone(), p.clone(), family)
    }

    fn kernel_backward(
        x: &FloatTensor<Self>,
        gy: FloatTensor<Self>,
        p: &FloatTensor<Self>,
        family: Family,
    ) -> [FloatTensor<Self>; 2] {
        backward(x.clone(), gy, p.clone(), family)
    }
}
