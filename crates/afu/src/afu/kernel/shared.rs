//! [`SharedMut`]: one output buffer written by several work items at once, each through its
//! own disjoint elements.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// A mutable buffer shared between the threads of one parallel loop, each work item reading
/// and writing only its own elements (the work items' runs are disjoint: see
/// [`super::work::items`]).
///
/// It borrows the buffer mutably for `'a` (it is made from a `&'a mut [T]`), so it cannot
/// outlive the buffer, and nothing else can touch the buffer while it exists; its elements are
/// initialised unless it was made by the unsafe [`SharedMut::from_uninit`]. Which elements each
/// thread touches is the callers' contract, stated on [`SharedMut::slice`].
pub(crate) struct SharedMut<'a, T> {
    ptr: *mut T,
    len: usize,
    _buffer: PhantomData<&'a mut [T]>,
}

impl<T> Clone for SharedMut<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedMut<'_, T> {}

// SAFETY: a `SharedMut` is a `&'a mut [T]` handed to several threads, which is sound because
// every user keeps to `slice`'s contract: work items access disjoint element sets (see
// `work::items`/`work::for_each_run`; a channel's parameter gradients are written by that
// channel's last item alone), so no element is accessed by two threads at once. The borrow
// keeps the buffer alive and otherwise untouched for as long as any copy exists.
unsafe impl<T: Send> Send for SharedMut<'_, T> {}
// SAFETY: as for `Send`: shared references only lead to disjoint elements.
unsafe impl<T: Send> Sync for SharedMut<'_, T> {}

impl<'a, T> SharedMut<'a, T> {
    /// Shares `buf` for the duration of the borrow.
    pub(crate) fn new(buf: &'a mut [T]) -> Self {
        SharedMut {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buffer: PhantomData,
        }
    }

    /// Shares a possibly uninitialised `buf`.
    ///
    /// # Safety
    /// Until `buf` is initialised, its elements may only be written through
    /// [`SharedMut::as_mut_ptr`]: the safe kernels that take a `SharedMut` read and write it
    /// through [`SharedMut::slice`], which needs initialised elements.
    pub(super) unsafe fn from_uninit(buf: &'a mut [MaybeUninit<T>]) -> Self {
        SharedMut {
            ptr: buf.as_mut_ptr().cast(),
            len: buf.len(),
            _buffer: PhantomData,
        }
    }

    /// Elements `offset .. offset + len`.
    ///
    /// # Safety
    /// `offset + len` must be within the buffer, those elements must be initialised, and no
    /// other thread may access them while the slice lives.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) unsafe fn slice(&self, offset: usize, len: usize) -> &mut [T] {
        debug_assert!(offset + len <= self.len, "SharedMut::slice out of bounds");
        // SAFETY: within the borrowed buffer, initialised and not accessed by anyone else
        // (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) }
    }

    /// The start of the buffer, for the vector kernels' raw accesses (under the same contract
    /// as [`SharedMut::slice`], except that an element that is only written need not be
    /// initialised).
    #[inline(always)]
    pub(super) fn as_mut_ptr(&self) -> *mut T {
        self.ptr
    }

    /// Number of elements of the buffer.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}
