//! Tensor storage aligned to a cache line, for the fused kernels' outputs.
//!
//! A `Vec<f32>` from the system allocator starts 16 bytes into a cache line as often as not.
//! Every 64-byte vector load and store of the operations that then read or write that tensor in
//! place (Burn's element-wise kernels: `y·g` right after the AFU) straddles two cache lines,
//! which measurably slows them (`docs/kernels.md`). The buffers here start on a cache line.

use std::mem::MaybeUninit;

use burn_std::{AccessError, AccessPolicy, AllocationController, AllocationProperty, Bytes};

/// Alignment of the buffers: one cache line.
pub(crate) const ALIGN: usize = 64;

/// A heap buffer of `size` bytes that starts on a cache line, served to Burn as [`Bytes`].
///
/// It is an ordinary `Vec<u8>` allocation, `ALIGN − 1` bytes longer, whose first cache line
/// boundary starts the buffer: the allocator sees the same kind of request as for any tensor
/// (an allocation with a 64-byte alignment of its own went to `mmap` and took fresh pages,
/// faulted in, every time, which made the pass slower, not faster).
pub(crate) struct AlignedBuffer {
    storage: Vec<MaybeUninit<u8>>,
    offset: usize,
    size: usize,
}

impl AlignedBuffer {
    /// An uninitialised buffer for `count` values of `T` (whose alignment divides `ALIGN`).
    pub(crate) fn new<T: bytemuck::Pod>(count: usize) -> Self {
        const { assert!(ALIGN.is_multiple_of(align_of::<T>())) };
        let size = count
            .checked_mul(size_of::<T>())
            .expect("AFU output size overflows usize");
        let mut storage: Vec<MaybeUninit<u8>> = Vec::with_capacity(size + ALIGN - 1);
        // SAFETY: MaybeUninit values need no initialisation; within the capacity.
        unsafe { storage.set_len(size + ALIGN - 1) };
        let offset = storage.as_ptr().align_offset(ALIGN);
        debug_assert!(offset < ALIGN);
        AlignedBuffer {
            storage,
            offset,
            size,
        }
    }

    /// The buffer as `count` possibly uninitialised values of `T`.
    pub(crate) fn values_mut<T: bytemuck::Pod>(&mut self, count: usize) -> &mut [MaybeUninit<T>] {
        assert!(
            count * size_of::<T>() <= self.size,
            "AFU output buffer size"
        );
        let start = self.storage[self.offset..].as_mut_ptr();
        // SAFETY: within the buffer, which starts on a cache line (aligned for T);
        // MaybeUninit values need no initialisation.
        unsafe { std::slice::from_raw_parts_mut(start.cast(), count) }
    }

    /// The first `len` bytes as [`Bytes`].
    ///
    /// # Safety
    /// The first `len` bytes must be initialised.
    pub(crate) unsafe fn into_bytes(self, len: usize) -> Bytes {
        assert!(len <= self.size, "AFU output buffer size");
        // SAFETY: the caller's contract.
        unsafe { Bytes::from_controller(Box::new(self), len) }
    }
}

impl AllocationController for AlignedBuffer {
    /// The alignment Burn may rely on: its largest (16 bytes), which the buffer's 64 include.
    /// (Copies of the bytes are allocated with this alignment, which may not exceed 16; and a
    /// value other than the element's makes `Bytes::try_into_vec` copy rather than take the
    /// buffer over, which a `Vec` of the elements could not free.)
    fn alloc_align(&self) -> usize {
        16
    }

    fn property(&self) -> AllocationProperty {
        AllocationProperty::Native
    }

    unsafe fn memory_mut(
        &mut self,
        _policy: AccessPolicy,
    ) -> Result<&mut [MaybeUninit<u8>], AccessError> {
        Ok(&mut self.storage[self.offset..self.offset + self.size])
    }

    fn memory(&self, _policy: AccessPolicy) -> Result<&[MaybeUninit<u8>], AccessError> {
        Ok(&self.storage[self.offset..self.offset + self.size])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::flex_tensor::FlexTensor;
    use burn::tensor::{DType, TensorData};

    fn filled(values: &[f32]) -> Bytes {
        let mut buf = AlignedBuffer::new::<f32>(values.len());
        for (slot, &v) in buf.values_mut::<f32>(values.len()).iter_mut().zip(values) {
            slot.write(v);
        }
        // SAFETY: every value was written just above.
        unsafe { buf.into_bytes(std::mem::size_of_val(values)) }
    }

    /// The buffer starts on a cache line and serves Burn's paths: reading, converting back
    /// to a `Vec` (a copy), copy-on-write of a shared tensor, in-place writes of a unique one.
    #[test]
    fn aligned_bytes_start_on_a_cache_line_and_round_trip_through_burn() {
        for n in [0usize, 1, 15, 17, 1000] {
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let bytes = filled(&values);
            assert_eq!(bytes.len(), 4 * n);
            if n > 0 {
                assert_eq!(bytes.as_ptr() as usize % ALIGN, 0, "n = {n}");
            }
            let data = TensorData::from_bytes(bytes, [n], DType::F32);
            assert_eq!(data.try_to_vec::<f32>().unwrap(), values);
            let tensor = FlexTensor::from_data(data.clone());
            // Copy-on-write: the shared original keeps its values.
            let mut copy = tensor.clone();
            for v in copy.storage_mut::<f32>() {
                *v += 1.0;
            }
            let shifted: Vec<f32> = values.iter().map(|v| v + 1.0).collect();
            assert_eq!(copy.into_data().try_to_vec::<f32>().unwrap(), shifted);
            let mut unique = tensor;
            for v in unique.try_storage_mut::<f32>().expect("unique") {
                *v *= 2.0;
            }
            let doubled: Vec<f32> = values.iter().map(|v| v * 2.0).collect();
            assert_eq!(unique.into_data().try_into_vec::<f32>().unwrap(), doubled);
            assert_eq!(data.try_into_vec::<f32>().unwrap(), values);
        }
    }
}
