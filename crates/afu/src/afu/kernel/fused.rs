//! The fused AFU as a Burn custom operation (backend extension) with its own backward pass.
//!
//! Implemented for the Flex CPU backend (calling [`super::cpu`]), for the CubeCL backends
//! (calling `super::cube`, with the `wgpu` or `cuda` feature) and for `Autodiff` over either,
//! whose hand-written backward computes the input gradient and all parameter gradients in one
//! pass. Other backends use the reference implementation (see [`super::afu_forward`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, ExtensionType, Flex, backend_extension};
use std::any::Any;
use std::sync::Arc;

use burn::tensor::{DType, Tensor, TensorData};

use super::aligned::AlignedBuffer;
use super::cpu;
use super::layout::{Layout, ParamSlices};
use crate::afu::base::BaseActivation;
use crate::ops::flex_tensor::{FlexTensor, dims_of, values, with_owned_values};
use crate::ops::float::KernelFloat;

/// True when `device` (with or without autodiff) is the Flex CPU backend (defined with the
/// Flex plumbing the layer kernels share, re-exported here where the AFU's users find it).
pub use crate::ops::flex_tensor::on_flex;

/// The tensors of one AFU application.
#[derive(ExtensionType)]
pub struct AfuInputs<B: Backend> {
    /// Input, any shape (axis 1 = channels when there are several AFUs).
    pub x: FloatTensor<B>,
    /// `[C, N]`
    pub w0: FloatTensor<B>,
    /// `[C, N]`
    pub b0: FloatTensor<B>,
    /// `[C, N]`
    pub w1: FloatTensor<B>,
    /// `[C]`
    pub b1: FloatTensor<B>,
}

/// Backends with a fused AFU kernel.
#[backend_extension(Autodiff, Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")))]
pub trait AfuBackend: Backend {
    /// `y = G(x)` with the fused kernel.
    fn afu_fused(
        #[extension_type] inputs: AfuInputs<Self>,
        base: BaseActivation,
    ) -> FloatTensor<Self>;
}

impl AfuBackend for Flex {
    fn afu_fused(inputs: AfuInputs<Self>, base: BaseActivation) -> FloatTensor<Self> {
        flex_forward(
            &inputs.x, &inputs.w0, &inputs.b0, &inputs.w1, &inputs.b1, base,
        )
        .0
    }
}

/// The forward and backward kernels of one backend, used by the shared autodiff wrapper.
pub trait AfuKernels: Backend {
    /// What the forward pass hands to the backward pass besides its inputs (on the CPU: the
    /// interval tables built from the parameters).
    type Saved: Clone + Send + std::fmt::Debug + 'static;

    /// `y = G(x)`, and what the backward pass of the same inputs may reuse.
    fn kernel_forward(
        x: &FloatTensor<Self>,
        w0: &FloatTensor<Self>,
        b0: &FloatTensor<Self>,
        w1: &FloatTensor<Self>,
        b1: &FloatTensor<Self>,
        base: BaseActivation,
    ) -> (FloatTensor<Self>, Self::Saved);

    /// `[gx, gw0, gb0, gw1, gb1]` from the forward's inputs, what it saved, and the upstream
    /// gradient.
    #[allow(clippy::too_many_arguments)]
    fn kernel_backward(
        x: &FloatTensor<Self>,
        gy: FloatTensor<Self>,
        w0: &FloatTensor<Self>,
        b0: &FloatTensor<Self>,
        w1: &FloatTensor<Self>,
        b1: &FloatTensor<Self>,
        base: BaseActivation,
        saved: Self::Saved,
    ) -> [FloatTensor<Self>; 5];
}

/// The CPU forward pass's interval tables (built from the parameters), for its float type
/// (`f32` or `f64`), kept for the backward pass.
#[derive(Clone, Default)]
pub struct SavedTables(Option<Arc<dyn Any + Send + Sync>>);

impl std::fmt::Debug for SavedTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SavedTables(..)"
        } else {
            "SavedTables(none)"
        })
    }
}

impl AfuKernels for Flex {
    type Saved = SavedTables;

    fn kernel_forward(
        x: &FlexTensor,
        w0: &FlexTensor,
        b0: &FlexTensor,
        w1: &FlexTensor,
        b1: &FlexTensor,
        base: BaseActivation,
    ) -> (FlexTensor, SavedTables) {
        flex_forward(x, w0, b0, w1, b1, base)
    }

    fn kernel_backward(
        x: &FlexTensor,
        gy: FlexTensor,
        w0: &FlexTensor,
        b0: &FlexTensor,
        w1: &FlexTensor,
        b1: &FlexTensor,
        base: BaseActivation,
        saved: SavedTables,
    ) -> [FlexTensor; 5] {
        flex_backward(x, gy, w0, b0, w1, b1, base, &saved)
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube_impl {
    use burn::backend::Cube;
    use burn::backend::tensor::FloatTensor;

    use super::{AfuBackend, AfuInputs, AfuKernels};
    use crate::afu::base::BaseActivation;
    use crate::afu::kernel::cube;

    impl AfuBackend for Cube {
        fn afu_fused(inputs: AfuInputs<Self>, base: BaseActivation) -> FloatTensor<Self> {
            cube::forward(inputs.x, inputs.w0, inputs.b0, inputs.w1, inputs.b1, base)
        }
    }

    impl AfuKernels for Cube {
        type Saved = ();

        fn kernel_forward(
            x: &FloatTensor<Self>,
            w0: &FloatTensor<Self>,
            b0: &FloatTensor<Self>,
            w1: &FloatTensor<Self>,
            b1: &FloatTensor<Self>,
            base: BaseActivation,
        ) -> (FloatTensor<Self>, ()) {
            let y = cube::forward(
                x.clone(),
                w0.clone(),
                b0.clone(),
                w1.clone(),
                b1.clone(),
                base,
            );
            (y, ())
        }

        fn kernel_backward(
            x: &FloatTensor<Self>,
            gy: FloatTensor<Self>,
            w0: &FloatTensor<Self>,
            b0: &FloatTensor<Self>,
            w1: &FloatTensor<Self>,
            b1: &FloatTensor<Self>,
            base: BaseActivation,
            _saved: (),
        ) -> [FloatTensor<Self>; 5] {
            cube::backward(
                x.clone(),
                gy,
                w0.clone(),
                b0.clone(),
                w1.clone(),
                b1.clone(),
                base,
            )
        }
    }
}

fn typed_forward<T>(
    x: &FlexTensor,
    w0: &FlexTensor,
    b0: &FlexTensor,
    w1: &FlexTensor,
    b1: &FlexTensor,
    base: BaseActivation,
) -> (FlexTensor, SavedTables)
where
    T: KernelFloat + burn::tensor::Element + bytemuck::Pod,
{
    let dims = dims_of(x);
    let [channels, hidden] = [dims_of(w0)[0], dims_of(w0)[1]];
    let layout = Layout::of(&dims, channels);
    let (xv, w0v, b0v, w1v, b1v) = (
        values::<T>(x),
        values::<T>(w0),
        values::<T>(b0),
        values::<T>(w1),
        values::<T>(b1),
    );
    let p = ParamSlices {
        base,
        hidden,
        w0: &w0v,
        b0: &b0v,
        w1: &w1v,
        b1: &b1v,
    };
    let prepared = cpu::Prepared::new(&p, layout);
    let n = xv.len();
    let mut y = AlignedBuffer::new::<T>(n);
    cpu::forward_prepared_into(&xv, layout, &p, &prepared, y.values_mut::<T>(n));
    // SAFETY: `forward_prepared_into` initialised all n values.
    let bytes = unsafe { y.into_bytes(n * size_of::<T>()) };
    let saved = SavedTables(Some(Arc::new(prepared)));
    (
        FlexTensor::from_data(TensorData::from_bytes(bytes, dims, T::dtype())),
        saved,
    )
}

fn flex_forward(
    x: &FlexTensor,
    w0: &FlexTensor,
    b0: &FlexTensor,
    w1: &FlexTensor,
    b1: &FlexTensor,
    base: BaseActivation,
) -> (FlexTensor, SavedTables) {
    match x.dtype() {
        DType::F64 => typed_forward::<f64>(x, w0, b0, w1, b1, base),
        DType::F32 => typed_forward::<f32>(x, w0, b0, w1, b1, base),
        other => {
            // Other float types: compute in f32 and convert back.
            let to32 =
                |t: &FlexTensor| FlexTensor::from_data(t.clone().into_data().convert::<f32>());
            let (y, saved) =
                typed_forward::<f32>(&to32(x), &to32(w0), &to32(b0), &to32(w1), &to32(b1), base);
            (
                FlexTensor::from_data(y.into_data().convert_dtype(other)),
                saved,
            )
        }
    }
}

/// Gradients of one fused AFU application: (gx, gw0, gb0, gw1, gb1). `gy` is consumed: when
/// nothing else holds it, its buffer becomes `gx` (no new allocation).
#[allow(clippy::too_many_arguments)]
fn typed_backward<T>(
    x: &FlexTensor,
    gy: FlexTensor,
    w0: &FlexTensor,
    b0: &FlexTensor,
    w1: &FlexTensor,
    b1: &FlexTensor,
    base: BaseActivation,
    saved: &SavedTables,
) -> [FlexTensor; 5]
where
    T: KernelFloat + burn::tensor::Element + bytemuck::Pod,
{
    let dims = dims_of(x);
    let [channels, hidden] = [dims_of(w0)[0], dims_of(w0)[1]];
    let layout = Layout::of(&dims, channels);
    let (xv, w0v, b0v, w1v, b1v) = (
        values::<T>(x),
        values::<T>(w0),
        values::<T>(b0),
        values::<T>(w1),
        values::<T>(b1),
    );
    let p = ParamSlices {
        base,
        hidden,
        w0: &w0v,
        b0: &b0v,
        w1: &w1v,
        b1: &b1v,
    };
    // The forward pass's tables when it saved them for this float type and channel count
    // (it always does through the autodiff wrapper), else built here.
    let rebuilt;
    let prepared = match saved
        .0
        .as_ref()
        .and_then(|a| a.downcast_ref::<cpu::Prepared<T>>())
    {
        Some(prepared) if prepared.channels() == channels => prepared,
        _ => {
            rebuilt = cpu::Prepared::new(&p, layout);
            &rebuilt
        }
    };
    let (grad, g) = with_owned_values::<T, _>(gy, |buf| {
        cpu::backward_prepared(&xv, layout, &p, prepared, buf)
    });
    [
        grad,
        FlexTensor::from_data(TensorData::new(g.w0, [channels, hidden])),
        FlexTensor::from_data(TensorData::new(g.b0, [channels, hidden])),
        FlexTensor::from_data(TensorData::new(g.w1, [channels, hidden])),
        FlexTensor::from_data(TensorData::new(g.b1, [channels])),
    ]
}

#[allow(clippy::too_many_arguments)]
fn flex_backward(
    x: &FlexTensor,
    gy: FlexTensor,
    w0: &FlexTensor,
    b0: &FlexTensor,
    w1: &FlexTensor,
    b1: &FlexTensor,
    base: BaseActivation,
    saved: &SavedTables,
) -> [FlexTensor; 5] {
    match x.dtype() {
        DType::F64 => typed_backward::<f64>(x, gy, w0, b0, w1, b1, base, saved),
        DType::F32 => typed_backward::<f32>(x, gy, w0, b0, w1, b1, base, saved),
        other => {
            let to32 =
                |t: &FlexTensor| FlexTensor::from_data(t.clone().into_data().convert::<f32>());
            typed_backward::<f32>(
                &to32(x),
                to32(&gy),
                &to32(w0),
                &to32(b0),
                &to32(w1),
                &to32(b1),
                base,
                saved,
            )
            .map(|t| FlexTensor::from_data(t.into_data().convert_dtype(other)))
        }
    }
}

#[derive(Debug)]
struct AfuBackward;

/// What the backward pass keeps: the forward inputs (shared, not copied), the base, and what
/// the forward kernel saved.
type AfuState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    BaseActivation,
    <B as AfuKernels>::Saved,
);

impl<B: AfuKernels> Backward<B, 5> for AfuBackward {
    type State = AfuState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 5>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let parents = ops.parents;
        let gy = grads.consume::<B>(&ops.node);
        let (x, w0, b0, w1, b1, base, saved) = ops.state;
        let out = B::kernel_backward(&x, gy, &w0, &b0, &w1, &b1, base, saved);
        for (parent, grad) in parents.into_iter().zip(out) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: AfuKernels, C: CheckpointStrategy> AfuBackend for Autodiff<B, C> {
    fn afu_fused(inputs: AfuInputs<Self>, base: BaseActivation) -> FloatTensor<Self> {
        let AfuInputs { x, w0, b0, w1, b1 } = inputs;
        match AfuBackward
            .prepare::<C>([x.node(), w0.node(), b0.node(), w1.node(), b1.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w0, b0, w1, b1) = (
                    x.primitive().clone(),
                    w0.primitive().clone(),
                    b0.primitive().clone(),
                    w1.primitive().clone(),
                    b1.primitive().clone(),
                );
                let (y, saved) = B::kernel_forward(&x, &w0, &b0, &w1, &b1, base);
                prep.finish((x, w0, b0, w1, b1, base, saved), y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, _) = B::kernel_forward(
                    x.primitive(),
                    w0.primitive(),
                    b0.primitive(),
                    w1.primitive(),
                    b1.primitive(),
                    base,
                );
                prep.finish(y)
            }
        }
    }
}

/// True when `device` (with or without autodiff) runs on the Flex backend or, in builds with
/// the `wgpu` or `cuda` feature, on a CubeCL backend.
pub fn has_fused_kernel(device: &burn::tensor::Device) -> bool {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Cube(_)
    ) {
        return true;
    }
    on_flex(device)
}

/// Applies the fused AFU. The caller checks [`has_fused_kernel`] first.
pub fn afu_fused<const D: usize>(
    x: Tensor<D>,
    w0: Tensor<2>,
    b0: Tensor<2>,
    w1: Tensor<2>,
    b1: Tensor<1>,
    base: BaseActivation,
) -> Tensor<D> {
    let out = <Dispatch as AfuBackend>::afu_fused(
        AfuInputs {
            x: x.into_dispatch(),
            w0: w0.into_dispatch(),
            b0: b0.into_dispatch(),
            w1: w1.into_dispatch(),
            b1: b1.into_dispatch(),
        },
        base,
    );
    Tensor::from_dispatch(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flex(values: Vec<f32>, dims: &[usize]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, dims.to_vec()))
    }

    fn values_of(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The forward's output starts on a cache line (see `aligned`), for both float types, on
    /// the vectorised lookup path (relu, f32) and on the paths that zero the output first.
    #[test]
    fn forward_output_starts_on_a_cache_line() {
        let dims = [3, 2, 37];
        let m: usize = dims.iter().product();
        let xs: Vec<f32> = (0..m).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let params = |hidden: usize| {
            let v: Vec<f32> = (0..2 * hidden).map(|i| (i as f32 * 0.71).cos()).collect();
            (flex(v.clone(), &[2, hidden]), flex(vec![0.1; 2], &[2]))
        };
        for base in [BaseActivation::Relu, BaseActivation::Sigmoid] {
            for hidden in [3, 40] {
                let (w, b1) = params(hidden);
                let x = flex(xs.clone(), &dims);
                let (y, _) = flex_forward(&x, &w, &w, &w, &b1, base);
                let y32 = y.as_slice::<f32>().expect("contiguous f32");
                assert_eq!(y32.as_ptr() as usize % 64, 0, "{base:?} N={hidden}");
                let to64 =
                    |t: &FlexTensor| FlexTensor::from_data(t.clone().into_data().convert::<f64>());
                let (y64, _) =
                    flex_forward(&to64(&x), &to64(&w), &to64(&w), &to64(&w), &to64(&b1), base);
                let y64 = y64.as_slice::<f64>().expect("contiguous f64");
                assert_eq!(y64.as_ptr() as usize % 64, 0, "{base:?} N={hidden} f64");
                for (a, b) in y32.iter().zip(y64) {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{a} vs {b}"
                    );
                }
            }
        }
    }

    /// The backward pass gives the same bits with the forward's saved tables as with tables it
    /// builds itself (nothing saved), per channel, for N below and above the vector kernels'
    /// small-table limit.
    #[test]
    fn backward_with_saved_tables_matches_backward_without() {
        let wave = |n: usize, a: f32, b: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * a + b).sin()).collect()
        };
        for (channels, hidden) in [(3, 8), (3, 40)] {
            let dims = [4, channels, 37];
            let m = dims.iter().product();
            let x = flex(wave(m, 0.37, 0.1).iter().map(|v| 3.0 * v).collect(), &dims);
            let cn = [channels, hidden];
            let (w0, b0, w1) = (
                flex(wave(channels * hidden, 0.71, 0.3), &cn),
                flex(wave(channels * hidden, 1.13, 0.7), &cn),
                flex(wave(channels * hidden, 0.53, 0.2), &cn),
            );
            let b1 = flex(vec![0.1; channels], &[channels]);
            let gy = flex(wave(m, 0.29, 0.5), &dims);
            let base = BaseActivation::Relu;
            let (_, saved) = <Flex as AfuKernels>::kernel_forward(&x, &w0, &b0, &w1, &b1, base);
            assert!(
                format!("{saved:?}").contains(".."),
                "the forward saved its tables"
            );
            let with = <Flex as AfuKernels>::kernel_backward(
                &x,
                gy.clone(),
                &w0,
                &b0,
                &w1,
                &b1,
                base,
                saved,
            );
            let without = <Flex as AfuKernels>::kernel_backward(
                &x,
                gy,
                &w0,
                &b0,
                &w1,
                &b1,
                base,
                SavedTables::default(),
            );
            for (a, b) in with.into_iter().zip(without) {
                let (a, b) = (values_of(a), values_of(b));
                assert!(a.iter().any(|v| *v != 0.0));
                assert_eq!(a, b, "C={channels} N={hidden}");
            }
        }
    }
}
