//! How the kernels see their data: the tensor's [`Layout`] around the channel axis, the
//! parameters of its AFUs as slices ([`ParamSlices`]) and their gradients ([`ParamGrads`]).

use crate::afu::base::BaseActivation;
use crate::ops::float::KernelFloat;

/// How the input is laid out: `[outer, channels, inner]` (row-major). Element `(o, c, i)` uses
/// AFU number `c`. A shared AFU is `channels = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Product of the axes before the channel axis.
    pub outer: usize,
    /// Number of AFUs.
    pub channels: usize,
    /// Product of the axes after the channel axis.
    pub inner: usize,
}

impl Layout {
    /// Layout of a tensor of shape `dims` under `channels` AFUs (axis 1 when `channels > 1`).
    pub fn of(dims: &[usize], channels: usize) -> Layout {
        let m: usize = dims.iter().product();
        if channels == 1 {
            Layout {
                outer: 1,
                channels: 1,
                inner: m,
            }
        } else {
            Layout {
                outer: dims.first().copied().unwrap_or(1),
                channels,
                inner: dims.iter().skip(2).product(),
            }
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parameters of `C` AFUs, each row-major `[C, N]` (`b1`: `[C]`).
#[derive(Debug, Clone, Copy)]
pub struct ParamSlices<'a, T> {
    /// Base activation.
    pub base: BaseActivation,
    /// Hidden units `N`.
    pub hidden: usize,
    /// `[C, N]`
    pub w0: &'a [T],
    /// `[C, N]`
    pub b0: &'a [T],
    /// `[C, N]`
    pub w1: &'a [T],
    /// `[C]`
    pub b1: &'a [T],
}

impl<T> ParamSlices<'_, T> {
    /// Channel `c`'s `(w0, b0, w1, b1)`.
    pub(super) fn channel(&self, c: usize) -> (&[T], &[T], &[T], &T) {
        let r = c * self.hidden..(c + 1) * self.hidden;
        (
            &self.w0[r.clone()],
            &self.b0[r.clone()],
            &self.w1[r],
            &self.b1[c],
        )
    }
}

/// Gradients of the parameters, same shapes as [`ParamSlices`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrads<T> {
    /// `[C, N]`
    pub w0: Vec<T>,
    /// `[C, N]`
    pub b0: Vec<T>,
    /// `[C, N]`
    pub w1: Vec<T>,
    /// `[C]`
    pub b1: Vec<T>,
}

impl<T: KernelFloat> ParamGrads<T> {
    /// Zero gradients for `channels` AFUs of `hidden` units.
    pub(super) fn zeros(channels: usize, hidden: usize) -> Self {
        ParamGrads {
            w0: vec![T::ZERO; channels * hidden],
            b0: vec![T::ZERO; channels * hidden],
            w1: vec![T::ZERO; channels * hidden],
            b1: vec![T::ZERO; channels],
        }
    }
}
