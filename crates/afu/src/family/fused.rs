//! The fused family kernel as a Burn custom operation (backend extension) with its own
//! backward pass, on the Flex CPU backend, the CubeCL backends (`super::cube`, with the `wgpu`
//! or `cuda` feature) and `Autodiff` over either. Other backends use [`super::reference`] (see
//! [`super::layer::family_forward`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, ExtensionType, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};

use super::Family;
use super::kernel::{self, Isa};
use super::math::FamilyFloat;
use crate::afu::kernel::aligned::AlignedBuffer;
use crate::afu::kernel::layout::Layout;
use crate::ops::flex_tensor::{FlexTensor, dims_of, values, with_owned_values};

/// The tensors of one family application.
#[derive(ExtensionType)]
pub struct FamilyInputs<B: Backend> {
    /// Input, any shape (axis 1 = channels when there are several).
    pub x: FloatTensor<B>,
    /// `[C, P]` parameters.
    pub p: FloatTensor<B>,
}

/// Backends with the fused family kernel.
#[backend_extension(Autodiff, Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")))]
pub trait FamilyBackend: Backend {
    /// `y = g(x)` with the fused kernel.
    fn family_fused(
        #[extension_type] inputs: FamilyInputs<Self>,
        family: Family,
    ) -> FloatTensor<Self>;
}

/// Runs `$body` with `$f` bound to the family's math, as [`crate::with_family!`] does, but
/// with compile-time sizes for the default PAU, PWLU, APL and KAF ([`super::math::PauFixed`]
/// …): the same results, with the block forms' loop bounds known to the compiler.
macro_rules! with_kernel_family {
    ($family:expr, $f:ident => $body:expr) => {{
        use $crate::family::math as m;
        match $family {
            Family::Pau { m: 5, n: 4 } => {
                let $f = m::PauFixed::<5, 4>;
                $body
            }
            Family::Pwlu { intervals: 16 } => {
                let $f = m::PwluFixed::<16>;
                $body
            }
            Family::Apl { hinges: 5 } => {
                let $f = m::AplFixed::<5>;
                $body
            }
            Family::Kaf { points: 20 } => {
                let $f = m::KafFixed::<20>;
                $body
            }
            other => $crate::with_family!(other, $f => $body),
        }
    }};
}

impl FamilyBackend for Flex {
    fn family_fused(inputs: FamilyInputs<Self>, family: Family) -> FloatTensor<Self> {
        flex_forward(&inputs.x, &inputs.p, family)
    }
}

fn typed_forward<T>(x: &FlexTensor, p: &FlexTensor, family: Family) -> FlexTensor
where
    T: FamilyFloat + burn::tensor::Element + bytemuck::Pod,
{
    let dims = dims_of(x);
    let channels = dims_of(p)[0];
    let layout = Layout::of(&dims, channels);
    let (xv, pv) = (values::<T>(x), values::<T>(p));
    // A fresh, cache-line aligned buffer, written once by the kernel (no zeroing pass, no
    // pages faulted in by a zeroed allocation).
    let n = xv.len();
    let mut y = AlignedBuffer::new::<T>(n);
    let out = y.values_mut::<T>(n);
    with_kernel_family!(family, f => kernel::forward_into(f, &xv, layout, &pv, out, Isa::from_env()));
    // SAFETY: `forward_into` wrote all n values.
    let bytes = unsafe { y.into_bytes(n * size_of::<T>()) };
    FlexTensor::from_data(TensorData::from_bytes(bytes, dims, T::dtype()))
}

/// Converts other float types to `f32` and back around `run`.
fn flex_forward(x: &FlexTensor, p: &FlexTensor, family: Family) -> FlexTensor {
    match x.dtype() {
        DType::F64 => typed_forward::<f64>(x, p, family),
        DType::F32 => typed_forward::<f32>(x, p, family),
        other => {
            let to32 =
                |t: &FlexTensor| FlexTensor::from_data(t.clone().into_data().convert::<f32>());
            let y = typed_forward::<f32>(&to32(x), &to32(p), family);
            FlexTensor::from_data(y.into_data().convert_dtype(other))
        }
    }
}

/// `[gx, gp]`; `gy`'s buffer becomes `gx` when nothing else holds it.
fn typed_backward<T>(
    x: &FlexTensor,
    gy: FlexTensor,
    p: &FlexTensor,
    family: Family,
) -> [FlexTensor; 2]
where
    T: FamilyFloat + burn::tensor::Element + bytemuck::Pod,
{
    let dims = dims_of(x);
    let [channels, np] = [dims_of(p)[0], dims_of(p)[1]];
    let layout = Layout::of(&dims, channels);
    let (xv, pv) = (values::<T>(x), values::<T>(p));
    let (gx, gp) = with_owned_values::<T, _>(
        gy,
        |buf| with_kernel_family!(family, f => kernel::backward(f, &xv, layout, &pv, buf)),
    );
    [
        gx,
        FlexTensor::from_data(TensorData::new(gp, [channels, np])),
    ]
}

fn flex_backward(
    x: &FlexTensor,
    gy: FlexTensor,
    p: &FlexTensor,
    family: Family,
) -> [FlexTensor; 2] {
    match x.dtype() {
        DType::F64 => typed_backward::<f64>(x, gy, p, family),
        DType::F32 => typed_backward::<f32>(x, gy, p, family),
        other => {
            let to32 =
                |t: &FlexTensor| FlexTensor::from_data(t.clone().into_data().convert::<f32>());
            typed_backward::<f32>(&to32(x), to32(&gy), &to32(p), family)
                .map(|t| FlexTensor::from_data(t.into_data().convert_dtype(other)))
        }
    }
}

/// The forward and backward kernels of one backend, used by the autodiff wrapper.
pub trait FamilyKernels: Backend {
    /// `y = g(x)`.
    fn kernel_forward(
        x: &FloatTensor<Self>,
        p: &FloatTensor<Self>,
        family: Family,
    ) -> FloatTensor<Self>;
    /// `[gx, gp]` from the forward's inputs and the upstream gradient.
    fn kernel_backward(
        x: &FloatTensor<Self>,
        gy: FloatTensor<Self>,
        p: &FloatTensor<Self>,
        family: Family,
    ) -> [FloatTensor<Self>; 2];
}

impl FamilyKernels for Flex {
    fn kernel_forward(x: &FlexTensor, p: &FlexTensor, family: Family) -> FlexTensor {
        flex_forward(x, p, family)
    }

    fn kernel_backward(
        x: &FlexTensor,
        gy: FlexTensor,
        p: &FlexTensor,
        family: Family,
    ) -> [FlexTensor; 2] {
        flex_backward(x, gy, p, family)
    }
}

#[derive(Debug)]
struct FamilyBackward;

impl<B: FamilyKernels> Backward<B, 2> for FamilyBackward {
    /// The forward's inputs (shared, not copied) and the family.
    type State = (FloatTensor<B>, FloatTensor<B>, Family);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let parents = ops.parents;
        let gy = grads.consume::<B>(&ops.node);
        let (x, p, family) = ops.state;
        let out = B::kernel_backward(&x, gy, &p, family);
        for (parent, grad) in parents.into_iter().zip(out) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FamilyKernels, C: CheckpointStrategy> FamilyBackend for Autodiff<B, C> {
    fn family_fused(inputs: FamilyInputs<Self>, family: Family) -> FloatTensor<Self> {
        let FamilyInputs { x, p } = inputs;
        match FamilyBackward
            .prepare::<C>([x.node(), p.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, p) = (x.primitive().clone(), p.primitive().clone());
                let y = B::kernel_forward(&x, &p, family);
                prep.finish((x, p, family), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::kernel_forward(x.primitive(), p.primitive(), family))
            }
        }
    }
}

/// Applies the fused family kernel. The caller checks that the device has one
/// ([`crate::afu::kernel::fused::has_fused_kernel`]).
pub fn family_fused<const D: usize>(x: Tensor<D>, p: Tensor<2>, family: Family) -> Tensor<D> {
    let out = <Dispatch as FamilyBackend>::family_fused(
        FamilyInputs {
            x: x.into_dispatch(),
            p: p.into_dispatch(),
        },
        family,
    );
    Tensor::from_dispatch(out)
}
