//! Each learnable family as a scalar function `g(z; p)` of one input `z` and the parameters
//! `p` of one channel, with its derivatives: what the fused kernels evaluate per element and
//! what the oracle tests evaluate in `f64`.

use num_traits::Float;

/// One learnable activation family, evaluated on scalars.
///
/// Invariants every implementation keeps (checked by the tests of this folder):
/// - `init().len() == n_params()`, and `value` with `init()` is the family's stated start
///   (e.g. PReLU with `a = 0.25`);
/// - `backward` returns `∂g/∂z` and adds `upstream · ∂g/∂pₖ` to `dp[k]` for every `k`,
///   agreeing with central finite differences of `value` in `f64` away from kinks;
/// - no allocation in `value` or `backward` (they run once per element).
pub trait ScalarFamily: Copy + Send + Sync + 'static {
    /// Number of learnable parameters of one channel.
    fn n_params(&self) -> usize;
    /// The parameters of one channel at the start of training.
    fn init(&self) -> Vec<f64>;
    /// `g(z; p)`.
    fn value<T: Float>(&self, z: T, p: &[T]) -> T;
    /// `∂g/∂z` at `(z, p)`; adds `upstream · ∂g/∂pₖ` to `dp[k]`.
    fn backward<T: Float>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T;
}
