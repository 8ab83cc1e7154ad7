//! The fused AFU as CubeCL kernels, for every CubeCL backend (wgpu / Vulkan / Metal, CUDA):
//! built with the `wgpu` or `cuda` feature.
//!
//! - forward: one thread per element, `y = b1 + Σₙ w1ₙ·ψ(w0ₙ·x + b0ₙ)`;
//! - input gradient: one thread per element, `gx = gy · Σₙ w1ₙ·w0ₙ·ψ'(w0ₙ·x + b0ₙ)`;
//! - parameter gradients without float atomics: one cube per (channel, chunk of that channel's
//!   elements) sums its elements unit by unit and reduces across its threads in shared memory
//!   (a fixed tree), writing one partial per cube; a last kernel adds the chunks' partials in
//!   chunk order. The launch shape depends only on the tensor's shape, so results are the same
//!   run after run.
//!
//! No tensor of size elements × N is ever allocated. ψ is chosen at compile time (one kernel per
//! base).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;

use crate::afu::base::BaseActivation;

/// Threads per cube in every kernel.
const CUBE_THREADS: u32 = 256;
/// Elements each thread of the parameter-gradient kernel handles (about), before a channel is
/// split into more chunks.
const ELEMENTS_PER_THREAD: usize = 16;
/// Most chunks per channel.
const MAX_CHUNKS: usize = 1024;

/// The base's number inside the kernels (a compile-time constant there).
fn base_code(base: BaseActivation) -> u32 {
    match base {
        BaseActivation::Linear => 0,
        BaseActivation::Relu => 1,
        BaseActivation::LeakyRelu => 2,
        BaseActivation::Sigmoid => 3,
        BaseActivation::Tanh => 4,
        BaseActivation::Swish => 5,
        BaseActivation::Mish => 6,
    }
}

#[cube]
fn sigmoid_k<F: Float>(z: F) -> F {
    // Clamped so exp never overflows; σ is 0 or 1 to f32 precision out there anyway.
    let zc = F::min(F::max(z, F::new(-80.0)), F::new(80.0));
    F::new(1.0) / (F::new(1.0) + F::exp(F::new(0.0) - zc))
}

#[cube]
fn tanh_k<F: Float>(z: F) -> F {
    // Some shader compilers evaluate tanh as a ratio of exponentials (NaN for large |z|).
    F::tanh(F::min(F::max(z, F::new(-15.0)), F::new(15.0)))
}

#[cube]
fn softplus_k<F: Float>(z: F) -> F {
    F::max(z, F::new(0.0)) + F::ln(F::new(1.0) + F::exp(F::new(0.0) - F::abs(z)))
}

/// ψ(z) for the base with code `base`.
#[cube]
fn psi<F: Float>(z: F, #[comptime] base: u32) -> F {
    let zero = F::new(0.0);
    if comptime!(base == 0) {
        z
    } else if comptime!(base == 1) {
        if z > zero { z } else { zero }
    } else if comptime!(base == 2) {
        if z > zero { z } else { F::new(0.01) * z }
    } else if comptime!(base == 3) {
        sigmoid_k::<F>(z)
    } else if comptime!(base == 4) {
        tanh_k::<F>(z)
    } else if comptime!(base == 5) {
        z * sigmoid_k::<F>(z)
    } else {
        z * tanh_k::<F>(softplus_k::<F>(z))
    }
}

/// ψ'(z) (left derivative at the relu family's kink, as the reference).
#[cube]
fn dpsi<F: Float>(z: F, #[comptime] base: u32) -> F {
    let zero = F::new(0.0);
    let one = F::new(1.0);
    if comptime!(base == 0) {
        one
    } else if comptime!(base == 1) {
        if z > zero { one } else { zero }
    } else if comptime!(base == 2) {
        if z > zero { one } else { F::new(0.01) }
    } else if comptime!(base == 3) {
        let s = sigmoid_k::<F>(z);
        s * (one - s)
    } else if comptime!(base == 4) {
        let t = tanh_k::<F>(z);
        one - t * t
    } else if comptime!(base == 5) {
        let s = sigmoid_k::<F>(z);
        s + z * s * (one - s)
    } else {
        let t = tanh_k::<F>(softplus_k::<F>(z));
        t + z * (one - t * t) * sigmoid_k::<F>(z)
    }
}

#[cube(launch)]
fn afu_forward_kernel<F: Float>(
    x: &Tensor<F>,
    w0: &Tensor<F>,
    b0: &Tensor<F>,
    w1: &Tensor<F>,
    b1: &Tensor<F>,
    y: &mut Tensor<F>,
    len: u32,
    channels: u32,
    inner: u32,
    hidden: u32,
    #[comptime] base: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= len as usize {
        terminate!();
    }
    let n_hidden = hidden as usize;
    let c = (i / inner as usize) % channels as usize;
    let v = x[i];
    let mut acc = b1[c];
    for n in 0..n_hidden {
        let k = c * n_hidden + n;
        acc += w1[k] * psi::<F>(w0[k] * v + b0[k], base);
    }
    y[i] = acc;
}

#[cube(launch)]
fn afu_grad_input_kernel<F: Float>(
    x: &Tensor<F>,
    gy: &Tensor<F>,
    w0: &Tensor<F>,
    b0: &Tensor<F>,
    w1: &Tensor<F>,
    gx: &mut Tensor<F>,
    len: u32,
    channels: u32,
    inner: u32,
    hidden: u32,
    #[comptime] base: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= len as usize {
        terminate!();
    }
    let n_hidden = hidden as usize;
    let c = (i / inner as usize) % channels as usize;
    let v = x[i];
    let mut slope = F::new(0.0);
    for n in 0..n_hidden {
        let k = c * n_hidden + n;
        slope += w1[k] * w0[k] * dpsi::<F>(w0[k] * v + b0[k], base);
    }
    gx[i] = gy[i] * slope;
}

/// Partial parameter gradients of chunk `CUBE_POS_X` of channel `CUBE_POS_Y`:
/// `partials[((c·chunks + j)·hidden + n)·3 + {0,1,2}]` = Σ gy·w1·ψ'·x, Σ gy·w1·ψ', Σ gy·ψ over
/// the chunk's elements, and `partials_b1[c·chunks + j]` = Σ gy.
#[cube(launch)]
fn afu_grad_params_kernel<F: Float>(
    x: &Tensor<F>,
    gy: &Tensor<F>,
    w0: &Tensor<F>,
    b0: &Tensor<F>,
    w1: &Tensor<F>,
    partials: &mut Tensor<F>,
    partials_b1: &mut Tensor<F>,
    channels: u32,
    inner: u32,
    hidden: u32,
    per_channel: u32,
    chunk_len: u32,
    chunks: u32,
    #[comptime] base: u32,
    #[comptime] threads: u32,
    #[define(F)] _dtype: ElemType,
) {
    let j = CUBE_POS_X as usize;
    let c = CUBE_POS_Y as usize;
    let t = UNIT_POS as usize;
    // Runtime copy of the cube size (mutable index arithmetic below must not be comptime).
    let n_threads = CUBE_DIM as usize;
    let n_hidden = hidden as usize;
    let n_channels = channels as usize;
    let inner_u = inner as usize;
    let start = j * chunk_len as usize;
    let end = start + chunk_len as usize;
    let limit = per_channel as usize;
    let mut shared = Shared::new_slice(comptime!(3 * threads as usize));
    let slot = (c * chunks as usize + j) * n_hidden;

    // Σ gy (for b1).
    let mut s_gy = F::new(0.0);
    let mut m = start + t;
    while m < end && m < limit {
        let i = ((m / inner_u) * n_channels + c) * inner_u + m % inner_u;
        s_gy += gy[i];
        m += n_threads;
    }
    shared[t] = s_gy;
    sync_cube();
    // Fixed-tree sum of shared[0..threads] into shared[0].
    let mut stride = n_threads / 2;
    while stride > 0 {
        if t < stride {
            let sum = shared[t] + shared[t + stride];
            shared[t] = sum;
        }
        sync_cube();
        stride /= 2;
    }
    if t == 0 {
        let total = shared[0];
        partials_b1[c * chunks as usize + j] = total;
    }
    sync_cube();

    for n in 0..n_hidden {
        let k = c * n_hidden + n;
        let a = w0[k];
        let b = b0[k];
        let wout = w1[k];
        let mut s_w0 = F::new(0.0);
        let mut s_b0 = F::new(0.0);
        let mut s_w1 = F::new(0.0);
        let mut m = start + t;
        while m < end && m < limit {
            let i = ((m / inner_u) * n_channels + c) * inner_u + m % inner_u;
            let v = x[i];
            let g = gy[i];
            let z = a * v + b;
            let gd = g * wout * dpsi::<F>(z, base);
            s_w0 += gd * v;
            s_b0 += gd;
            s_w1 += g * psi::<F>(z, base);
            m += n_threads;
        }
        shared[t] = s_w0;
        shared[n_threads + t] = s_b0;
        shared[2 * n_threads + t] = s_w1;
        sync_cube();
        // The same fixed tree for the three sums at once.
        let mut stride = n_threads / 2;
        while stride > 0 {
            if t < stride {
                let s0 = shared[t] + shared[t + stride];
                shared[t] = s0;
                let s1 = shared[n_threads + t] + shared[n_threads + t + stride];
                shared[n_threads + t] = s1;
                let s2 = shared[2 * n_threads + t] + shared[2 * n_threads + t + stride];
                shared[2 * n_threads + t] = s2;
            }
            sync_cube();
            stride /= 2;
        }
        if t == 0 {
            let o = (slot + n) * 3;
            let r0 = shared[0];
            let r1 = shared[n_threads];
            let r2 = shared[2 * n_threads];
            partials[o] = r0;
            partials[o + 1] = r1;
            partials[o + 2] = r2;
        }
        sync_cube();
    }
}

/// One thread per parameter: adds the chunks' partials in chunk order.
#[cube(launch)]
fn afu_reduce_kernel<F: Float>(
    partials: &Tensor<F>,
    partials_b1: &Tensor<F>,
    gw0: &mut Tensor<F>,
    gb0: &mut Tensor<F>,
    gw1: &mut Tensor<F>,
    gb1: &mut Tensor<F>,
    channels: u32,
    hidden: u32,
    chunks: u32,
    #[define(F)] _dtype: ElemType,
) {
    let p = ABSOLUTE_POS;
    let n_hidden = hidden as usize;
    let n_chunks = chunks as usize;
    let total = channels as usize * n_hidden;
    if p < total {
        let c = p / n_hidden;
        let n = p % n_hidden;
        let mut a = F::new(0.0);
        let mut b = F::new(0.0);
        let mut w = F::new(0.0);
        for j in 0..n_chunks {
            let o = ((c * n_chunks + j) * n_hidden + n) * 3;
            a += partials[o];
            b += partials[o + 1];
            w += partials[o + 2];
        }
        gw0[p] = a;
        gb0[p] = b;
        gw1[p] = w;
    } else if p < total + channels as usize {
        let c = p - total;
        let mut s = F::new(0.0);
        for j in 0..n_chunks {
            s += partials_b1[c * n_chunks + j];
        }
        gb1[c] = s;
    }
}

/// `(len, channels, inner)`: elements, AFU channels, and elements per (outer index, channel).
fn layout(x: &CubeTensor, channels: usize) -> (usize, usize, usize) {
    let dims = x.shape().to_vec();
    let len: usize = dims.iter().product();
    if channels <= 1 {
        return (len, 1, len.max(1));
    }
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

fn check_len(len: usize) {
    assert!(
        len < u32::MAX as usize,
        "the CubeCL AFU kernel indexes with 32 bits: {len} elements is too many"
    );
}

/// `y = G(x)` on the tensor's CubeCL device.
pub fn forward(
    x: CubeTensor,
    w0: CubeTensor,
    b0: CubeTensor,
    w1: CubeTensor,
    b1: CubeTensor,
    base: BaseActivation,
) -> CubeTensor {
    let (x, w0, b0, w1, b1) = (
        into_contiguous(x),
        into_contiguous(w0),
        into_contiguous(b0),
        into_contiguous(w1),
        into_contiguous(b1),
    );
    let [channels, hidden] = [w0.shape()[0], w0.shape()[1]];
    let (len, channels, inner) = layout(&x, channels);
    check_len(len);
    let y = empty_device_dtype(x.client.clone(), x.device.clone(), x.shape(), x.dtype);
    if len == 0 {
        return y;
    }
    let (count, dim) = launch_dims(&x.client, len);
    let client = x.client.clone();
    let dtype = dtype_to_storage_type(x.dtype);
    afu_forward_kernel::launch(
        &client,
        count,
        dim,
        x.into_tensor_arg(),
        w0.into_tensor_arg(),
        b0.into_tensor_arg(),
        w1.into_tensor_arg(),
        b1.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        len as u32,
        channels as u32,
        inner as u32,
        hidden as u32,
        base_code(base),
        dtype,
    );
    y
}

/// Gradients `[gx, gw0, gb0, gw1, gb1]` of one AFU application on a CubeCL device.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: CubeTensor,
    gy: CubeTensor,
    w0: CubeTensor,
    b0: CubeTensor,
    w1: CubeTensor,
    b1: CubeTensor,
    base: BaseActivation,
) -> [CubeTensor; 5] {
    let (x, gy, w0, b0, w1) = (
        into_contiguous(x),
        into_contiguous(gy),
        into_contiguous(w0),
        into_contiguous(b0),
        into_contiguous(w1),
    );
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let [c_param, hidden] = [w0.shape()[0], w0.shape()[1]];
    let (len, channels, inner) = layout(&x, c_param);
    check_len(len);
    let empty =
        |shape: Vec<usize>| empty_device_dtype(client.clone(), device.clone(), shape.into(), dtype);
    let gx = empty(x.shape().to_vec());
    let gw0 = empty(vec![c_param, hidden]);
    let gb0 = empty(vec![c_param, hidden]);
    let gw1 = empty(vec![c_param, hidden]);
    let gb1 = empty(vec![c_param]);
    let _ = b1;
    let storage = dtype_to_storage_type(dtype);
    let code = base_code(base);
    if len > 0 {
        let (count, dim) = launch_dims(&client, len);
        afu_grad_input_kernel::launch(
            &client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            gy.clone().into_tensor_arg(),
            w0.clone().into_tensor_arg(),
            b0.clone().into_tensor_arg(),
            w1.clone().into_tensor_arg(),
            gx.clone().into_tensor_arg(),
            len as u32,
            channels as u32,
            inner as u32,
            hidden as u32,
            code,
            storage,
        );
    }
    // Chunks per channel: a function of the shape only.
    let per_channel = len / channels.max(1);
    let want = per_channel.div_ceil(CUBE_THREADS as usize * ELEMENTS_PER_THREAD);
    let chunks_wanted = want.clamp(1, MAX_CHUNKS);
    let chunk_len = per_channel.div_ceil(chunks_wanted).max(1);
    let chunks = per_channel.div_ceil(chunk_len).max(1);
    let partials = empty(vec![channels * chunks * hidden * 3]);
    let partials_b1 = empty(vec![channels * chunks]);
    afu_grad_params_kernel::launch(
        &client,
        CubeCount::Static(chunks as u32, channels as u32, 1),
        CubeDim::new_1d(CUBE_THREADS),
        x.into_tensor_arg(),
        gy.into_tensor_arg(),
        w0.into_tensor_arg(),
        b0.into_tensor_arg(),
        w1.into_tensor_arg(),
        partials.clone().into_tensor_arg(),
        partials_b1.clone().into_tensor_arg(),
        channels as u32,
        inner as u32,
        hidden as u32,
        per_channel as u32,
        chunk_len as u32,
        chunks as u32,
        code,
        CUBE_THREADS,
        storage,
    );
    let params = c_param * hidden + c_param;
    let (count, dim) = launch_dims(&client, params);
    afu_reduce_kernel::launch(
        &client,
        count,
        dim,
        partials.into_tensor_arg(),
        partials_b1.into_tensor_arg(),
        gw0.clone().into_tensor_arg(),
        gb0.clone().into_tensor_arg(),
        gw1.clone().into_tensor_arg(),
        gb1.clone().into_tensor_arg(),
        c_param as u32,
        hidden as u32,
        chunks as u32,
        storage,
    );
    [gx, gw0, gb0, gw1, gb1]
}
