//! The plain-tensor-ops AFU: the oracle every fast path is tested against, and the fallback on
//! backends without a fused kernel.
//!
//! It does what the paper's code does: expand each element into its `N` hidden units (an
//! `M × N` tensor, or `M × C × N` per channel), apply `ψ`, and sum. Differentiable through
//! Burn's autodiff; any dtype.

use burn::tensor::Tensor;

use crate::afu::base::BaseActivation;

/// `G(x)` element-wise with plain tensor ops.
///
/// # Shapes
/// - `x`: any shape; with `C > 1` channels, axis 1 must have size `C`
/// - `w0`, `b0`, `w1`: `[C, N]`; `b1`: `[C]`
/// - output: the shape of `x`
pub fn afu_reference<const D: usize>(
    x: Tensor<D>,
    w0: Tensor<2>,
    b0: Tensor<2>,
    w1: Tensor<2>,
    b1: Tensor<1>,
    base: BaseActivation,
) -> Tensor<D> {
    let dims = x.dims();
    let [channels, hidden] = w0.dims();
    if channels == 1 {
        let m = dims.iter().product::<usize>();
        let x = x.reshape([m, 1]);
        let h = base.apply(x.mul(w0).add(b0)); // [M, N]
        let y = h.matmul(w1.transpose()).add(b1.reshape([1, 1])); // [M, 1]
        y.reshape(dims)
    } else {
        assert!(
            D >= 2 && dims[1] == channels,
            "per-channel AFU with {channels} channels applied to a tensor of shape {dims:?}"
        );
        // Move the channel axis last: [..., C] → [M', C, 1].
        let moved = x.movedim(1, D - 1);
        let moved_dims = moved.dims();
        let rows = moved_dims.iter().product::<usize>() / channels;
        let x = moved.reshape([rows, channels, 1]);
        let h = base.apply(
            x.mul(w0.reshape([1, channels, hidden]))
                .add(b0.reshape([1, channels, hidden])),
        ); // [M', C, N]
        let y = h
            .mul(w1.reshape([1, channels, hidden]))
            .sum_dim(2)
            .add(b1.reshape([1, channels, 1])); // [M', C, 1]
        y.reshape(moved_dims).movedim(D - 1, 1)
    }
}
