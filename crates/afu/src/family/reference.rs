//! Every family in plain Burn tensor ops: the oracle the fused kernel is tested against, and
//! the path on backends without the fused kernel (the GPU backends), differentiated by Burn's
//! autodiff. Any dtype.
//!
//! The input is viewed as `[outer, C, inner]` and each parameter `k` as a `[1, C, 1]` column,
//! so every family is a few broadcast element-wise ops per parameter (never an
//! `elements × parameters` tensor either). PWLU is written as a sum of ramps,
//! `h₀ + k_L·min(z − L, 0) + k_R·max(z − R, 0) + Σᵢ (sᵢ/Δ)·(relu(z − xᵢ) − relu(z − xᵢ₊₁))`
//! with grid points `xᵢ = L + i·Δ` and steps `sᵢ = hᵢ₊₁ − hᵢ`: the same function as the
//! interval lookup of [`super::math::Pwlu`] for `L < R`, with the same gradients.

use burn::tensor::Tensor;
use burn::tensor::activation;

use super::Family;
use super::math::Kaf;

/// `g(x)` element-wise with plain tensor ops.
///
/// # Shapes
/// - `x`: any shape; with `C > 1` channels, axis 1 must have size `C`
/// - `p`: `[C, P]` (`P` = the family's parameters per channel)
/// - output: the shape of `x`
pub fn family_reference<const D: usize>(x: Tensor<D>, p: Tensor<2>, family: Family) -> Tensor<D> {
    let dims = x.dims();
    let [channels, np] = p.dims();
    assert_eq!(np, family.n_params(), "{family}: parameters per channel");
    let m: usize = dims.iter().product();
    let z: Tensor<3> = if channels == 1 {
        x.reshape([1, 1, m])
    } else {
        assert!(
            D >= 2 && dims[1] == channels,
            "per-channel {family} with {channels} channels applied to a tensor of shape {dims:?}"
        );
        x.reshape([dims[0], channels, m / (dims[0] * channels)])
    };
    let col = |k: usize| -> Tensor<3> {
        p.clone()
            .slice([0..channels, k..k + 1])
            .reshape([1, channels, 1])
    };
    let y = match family {
        Family::Prelu => z.clone().clamp_min(0.0).add(z.clamp_max(0.0).mul(col(0))),
        Family::SwishBeta => z.clone().mul(activation::sigmoid(z.mul(col(0)))),
        Family::Pmish => activation::mish(z.clone()).add(z.clamp_max(0.0).mul(col(0))),
        Family::Pau { m, n } => {
            let mut pv = col(m).add(z.zeros_like());
            for j in (0..m).rev() {
                pv = pv.mul(z.clone()).add(col(j));
            }
            let az = z.abs();
            let mut pow = az.clone();
            let mut q = az.ones_like();
            for k in 0..n {
                q = q.add(pow.clone().mul(col(m + 1 + k).abs()));
                pow = pow.mul(az.clone());
            }
            pv.div(q)
        }
        Family::Pwlu { intervals } => {
            let (l, r) = (col(0), col(1));
            let delta = r.clone().sub(l.clone()).div_scalar(intervals as f64);
            let mut y = col(4)
                .add(z.clone().sub(l.clone()).clamp_max(0.0).mul(col(2)))
                .add(z.clone().sub(r).clamp_min(0.0).mul(col(3)));
            let ramp = |i: usize| {
                z.clone()
                    .sub(l.clone().add(delta.clone().mul_scalar(i as f64)))
                    .clamp_min(0.0)
            };
            for i in 0..intervals {
                let slope = col(5 + i).sub(col(4 + i)).div(delta.clone());
                y = y.add(ramp(i).sub(ramp(i + 1)).mul(slope));
            }
            y
        }
        Family::Apl { hinges } => {
            let mut y = z.clone().clamp_min(0.0);
            for s in 0..hinges {
                let h = col(hinges + s).sub(z.clone()).clamp_min(0.0);
                y = y.add(h.mul(col(s)));
            }
            y
        }
        Family::Kaf { points } => {
            let kaf = Kaf { d: points };
            let gamma = kaf.gamma();
            let d = super::math::linspace(-3.0, 3.0, points);
            let mut y = z.zeros_like();
            for (i, di) in d.iter().enumerate() {
                let u = z.clone().sub_scalar(*di);
                y = y.add(u.clone().mul(u).mul_scalar(-gamma).exp().mul(col(i)));
            }
            y
        }
    };
    y.reshape(dims)
}
