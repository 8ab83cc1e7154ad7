//! Plumbing between Flex tensors and the CPU kernels' slices, shared by the AFU's custom
//! operation (`crate::afu::kernel::fused`) and the layer operations of this folder
//! ([`super::flex`]).
//!
//! Depends only on Burn and [`super::float`], so that both kernel folders can use it without
//! depending on each other.

use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;
use burn::tensor::TensorData;

use super::float::KernelFloat;

/// A float tensor of the Flex CPU backend.
pub(crate) type FlexTensor = FloatTensor<Flex>;

/// The shape of `t`.
pub(crate) fn dims_of(t: &FlexTensor) -> Vec<usize> {
    use burn::backend::TensorMetadata;
    t.shape().to_vec()
}

/// Contiguous values of a Flex tensor as `Vec<T>` (copies only if not contiguous).
pub(crate) fn values<T: KernelFloat + burn::tensor::Element + bytemuck::Pod>(
    t: &FlexTensor,
) -> std::borrow::Cow<'_, [T]> {
    match t.as_slice::<T>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<T>()
                .map(|s| s.to_vec())
                .unwrap_or_default(),
        ),
    }
}

/// Runs `f` on the contiguous values of `t` in place — in `t`'s own buffer when nothing else
/// holds it, else in a copy — and returns the tensor holding the result with `f`'s value.
pub(crate) fn with_owned_values<T, R>(
    t: FlexTensor,
    f: impl FnOnce(&mut [T]) -> R,
) -> (FlexTensor, R)
where
    T: KernelFloat + burn::tensor::Element + bytemuck::Pod,
{
    let dims = dims_of(&t);
    let n: usize = dims.iter().product();
    let mut t = if t.is_contiguous() && t.layout().start_offset() == 0 && t.is_unique() {
        t
    } else {
        FlexTensor::from_data(TensorData::new(values::<T>(&t).into_owned(), dims.clone()))
    };
    match t.try_storage_mut::<T>() {
        Some(buf) => {
            let r = f(&mut buf[..n]);
            (t, r)
        }
        None => {
            let mut owned = values::<T>(&t).into_owned();
            let r = f(&mut owned);
            (FlexTensor::from_data(TensorData::new(owned, dims)), r)
        }
    }
}

/// True when `device` (with or without autodiff) is the Flex CPU backend.
pub fn on_flex(device: &burn::tensor::Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}
