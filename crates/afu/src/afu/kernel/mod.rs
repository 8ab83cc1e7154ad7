//! Implementations of the AFU forward/backward pass, side by side.
//!
//! - [`reference`](mod@reference): plain tensor ops (the oracle, and the fallback on any backend).
//! - [`cpu`]: fused kernels on slices, the CPU entry points (piecewise-linear and direct paths).
//! - [`fused`]: the Burn custom op around [`cpu`] (and around `cube`, the CubeCL kernels, in
//!   builds with the `wgpu` or `cuda` feature), with its own backward pass.
//! - [`isa`]: `AFU_KERNEL_ISA`, which makes the CPU kernels take their portable paths.
//!
//! The design of the CPU kernels, and the measurements behind its decisions:
//! `docs/kernels.md`.
//!
//! # Module graph
//!
//! Who imports whom (`a → b`: `a` uses `b`); every arrow points down the list, so no module
//! imports one that imports it back. `ops::float` (the element type `KernelFloat`) and
//! `ops::flex_tensor` (Flex tensors to and from slices) live in `crate::ops`, which imports
//! nothing of this folder.
//!
//! - `mod` (this file: `afu_forward`) → `fused`, `reference`
//! - `fused` (Burn custom op) → `cpu`, `aligned`, `layout`, `cube`, `ops::float`,
//!   `ops::flex_tensor`
//! - `cube` (CubeCL kernels), `reference` (plain ops), `aligned` (output buffers) → nothing here
//! - `cpu` (entry points: `forward`, `backward`, `Prepared`) → `pwl`, `smooth`, `isa`,
//!   `layout`, `work`, `shared`, `ops::float`
//! - `pwl` (piecewise-linear dispatch, `pwl/mod.rs`) → `pwl::table`, `pwl::portable`,
//!   `pwl::avx512`, `isa`, `layout`, `work`, `pool`, `shared`, `ops::float`
//!   - `pwl::portable` (lookup on any CPU) → `pwl::table`, `ops::float`
//!   - `pwl::avx512` (lookup, thresholds and key sort on AVX-512) → `pwl::table`, `ops::float`
//!   - `pwl::table` (one channel's thresholds, slopes, gradients) → `layout`, `ops::float`
//! - `smooth` (direct kernels) → `isa`, `layout`, `work`, `pool`, `shared`, `ops::float`
//! - `work` (work items and their runs) → `layout`
//! - `layout` (`Layout`, `ParamSlices`, `ParamGrads`) → `ops::float`
//! - `pool` (`par_map`, linger), `shared` (`SharedMut`), `isa` → nothing here

pub(crate) mod aligned;
pub mod cpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod cube;
pub mod fused;
pub mod isa;
pub(crate) mod layout;
pub(crate) mod pool;
mod pwl;
pub mod reference;
pub(crate) mod shared;
mod smooth;
mod work;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::afu::base::BaseActivation;

/// Which implementation an [`Afu`](crate::afu::Afu) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelChoice {
    /// The fused kernel where the backend has one, else the reference.
    #[default]
    Auto,
    /// Always the plain-tensor-ops reference.
    Reference,
    /// Always the fused kernel (panics on a backend without one).
    Fused,
}

/// Dispatches one AFU application to the chosen implementation.
pub fn afu_forward<const D: usize>(
    x: Tensor<D>,
    w0: Tensor<2>,
    b0: Tensor<2>,
    w1: Tensor<2>,
    b1: Tensor<1>,
    base: BaseActivation,
    choice: KernelChoice,
) -> Tensor<D> {
    let fused = match choice {
        KernelChoice::Auto => fused::has_fused_kernel(&x.device()),
        KernelChoice::Reference => false,
        KernelChoice::Fused => true,
    };
    if fused {
        fused::afu_fused(x, w0, b0, w1, b1, base)
    } else {
        reference::afu_reference(x, w0, b0, w1, b1, base)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared by the kernel tests: random problems and scalar `f64` ground truth.
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use crate::afu::{AfuParams, BaseActivation};

    /// A random AFU problem: parameters, an input of shape `dims` and an upstream gradient.
    pub struct Problem {
        pub params: AfuParams,
        pub dims: Vec<usize>,
        pub x: Vec<f64>,
        pub gy: Vec<f64>,
    }

    impl Problem {
        pub fn random(
            seed: u64,
            base: BaseActivation,
            channels: usize,
            hidden: usize,
            dims: &[usize],
        ) -> Self {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let cn = channels * hidden;
            let mut v = |len: usize, k: f64| -> Vec<f64> {
                (0..len).map(|_| rng.random_range(-k..k)).collect()
            };
            let params = AfuParams {
                base,
                channels,
                hidden,
                w0: v(cn, 1.5),
                b0: v(cn, 1.5),
                w1: v(cn, 1.0),
                b1: v(channels, 1.0),
            };
            let m: usize = dims.iter().product();
            let x = v(m, 3.0);
            let gy = v(m, 1.0);
            Problem {
                params,
                dims: dims.to_vec(),
                x,
                gy,
            }
        }

        /// Channel of flat element `e` (axis 1 when there are several).
        pub fn channel_of(&self, e: usize) -> usize {
            if self.params.channels == 1 {
                0
            } else {
                let inner: usize = self.dims[2..].iter().product();
                (e / inner) % self.params.channels
            }
        }

        /// `L = Σ gy·G(x)` in f64 with the given parameters.
        pub fn loss(&self, params: &AfuParams, x: &[f64]) -> f64 {
            x.iter()
                .enumerate()
                .map(|(e, &xe)| self.gy[e] * params.eval(self.channel_of(e), xe))
                .sum()
        }

        /// Central finite differences of `L` for x and every parameter: (gx, gw0, gb0, gw1, gb1).
        pub fn finite_differences(&self) -> [Vec<f64>; 5] {
            let h = 1e-6;
            let gx: Vec<f64> = (0..self.x.len())
                .map(|e| {
                    let mut xp = self.x.clone();
                    let mut xm = self.x.clone();
                    xp[e] += h;
                    xm[e] -= h;
                    (self.loss(&self.params, &xp) - self.loss(&self.params, &xm)) / (2.0 * h)
                })
                .collect();
            let fd_param = |select: &dyn Fn(&mut AfuParams) -> &mut Vec<f64>| -> Vec<f64> {
                let len = select(&mut self.params.clone()).len();
                (0..len)
                    .map(|i| {
                        let mut pp = self.params.clone();
                        let mut pm = self.params.clone();
                        select(&mut pp)[i] += h;
                        select(&mut pm)[i] -= h;
                        (self.loss(&pp, &self.x) - self.loss(&pm, &self.x)) / (2.0 * h)
                    })
                    .collect()
            };
            [
                gx,
                fd_param(&|p| &mut p.w0),
                fd_param(&|p| &mut p.b0),
                fd_param(&|p| &mut p.w1),
                fd_param(&|p| &mut p.b1),
            ]
        }
    }

    /// `max |a - b| / max(1, max |b|)`.
    pub fn scaled_error(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::afu::{Afu, AfuParams};
    use burn::tensor::{DType, Device, TensorData};

    /// Runs `L = Σ gy·G(x)` through the tensor implementation in f64 and returns
    /// (y, gx, gw0, gb0, gw1, gb1).
    pub(crate) fn tensor_grads(
        p: &Problem,
        choice: KernelChoice,
        dtype: DType,
    ) -> (Vec<f64>, [Vec<f64>; 5]) {
        tensor_grads_on(p, choice, dtype, &Device::flex())
    }

    /// As [`tensor_grads`], on `device` (autodiff is added here).
    pub(crate) fn tensor_grads_on(
        p: &Problem,
        choice: KernelChoice,
        dtype: DType,
        device: &Device,
    ) -> (Vec<f64>, [Vec<f64>; 5]) {
        let device = device.clone().autodiff();
        let afu = Afu::from_params(&p.params, &device, dtype)
            .unwrap()
            .with_kernel(choice);
        let read = |t: Tensor<1>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        macro_rules! run {
            ($d:literal) => {{
                let dims: [usize; $d] = p.dims.clone().try_into().unwrap();
                let x =
                    Tensor::<$d>::from_data(TensorData::new(p.x.clone(), dims), (&device, dtype))
                        .require_grad();
                let gy =
                    Tensor::<$d>::from_data(TensorData::new(p.gy.clone(), dims), (&device, dtype));
                let y = afu.forward(x.clone());
                let loss = y.clone().mul(gy).sum();
                let grads = loss.backward();
                let flat = |t: Tensor<$d>| read(t.reshape([-1]));
                let flat2 = |t: Tensor<2>| read(t.reshape([-1]));
                (
                    flat(y),
                    [
                        flat(x.grad(&grads).unwrap()),
                        flat2(afu.w0.val().grad(&grads).unwrap()),
                        flat2(afu.b0.val().grad(&grads).unwrap()),
                        flat2(afu.w1.val().grad(&grads).unwrap()),
                        read(afu.b1.val().grad(&grads).unwrap()),
                    ],
                )
            }};
        }
        match p.dims.len() {
            1 => run!(1),
            2 => run!(2),
            3 => run!(3),
            4 => run!(4),
            d => panic!("unsupported rank {d}"),
        }
    }

    fn check_against_scalar_truth(p: &Problem, y: &[f64], g: &[Vec<f64>; 5], tol: f64) {
        let truth_y: Vec<f64> = (0..p.x.len())
            .map(|e| p.params.eval(p.channel_of(e), p.x[e]))
            .collect();
        let err = scaled_error(y, &truth_y);
        assert!(err < tol, "forward error {err} ({:?})", p.params.base);
        let fd = p.finite_differences();
        for (k, name) in ["x", "w0", "b0", "w1", "b1"].iter().enumerate() {
            let err = scaled_error(&g[k], &fd[k]);
            assert!(
                err < 1e-5,
                "gradient of {name}: error {err} vs finite differences ({:?}, C={}, N={})",
                p.params.base,
                p.params.channels,
                p.params.hidden
            );
        }
    }

    #[test]
    fn reference_gradients_match_finite_differences_f64_shared() {
        for (k, base) in crate::afu::BaseActivation::ALL.into_iter().enumerate() {
            for hidden in [1, 3, 8] {
                let p = Problem::random(k as u64 * 31 + hidden as u64, base, 1, hidden, &[5, 7]);
                let (y, g) = tensor_grads(&p, KernelChoice::Reference, DType::F64);
                check_against_scalar_truth(&p, &y, &g, 1e-12);
            }
        }
    }

    #[test]
    fn reference_gradients_match_finite_differences_f64_per_channel() {
        for (k, base) in crate::afu::BaseActivation::ALL.into_iter().enumerate() {
            let p = Problem::random(100 + k as u64, base, 3, 5, &[2, 3, 3, 1]);
            let (y, g) = tensor_grads(&p, KernelChoice::Reference, DType::F64);
            check_against_scalar_truth(&p, &y, &g, 1e-12);
            let p = Problem::random(200 + k as u64, base, 4, 3, &[5, 4]);
            let (y, g) = tensor_grads(&p, KernelChoice::Reference, DType::F64);
            check_against_scalar_truth(&p, &y, &g, 1e-12);
        }
    }

    #[test]
    fn params_round_trip_through_module() {
        let p = Problem::random(7, crate::afu::BaseActivation::Mish, 2, 4, &[3, 2]);
        let afu = Afu::from_params(&p.params, &Device::flex(), DType::F64).unwrap();
        let back: AfuParams = afu.params();
        assert_eq!(back, p.params);
    }

    #[test]
    fn fused_gradients_match_finite_differences_f64() {
        for (k, base) in crate::afu::BaseActivation::ALL.into_iter().enumerate() {
            for (channels, hidden, dims) in [
                (1, 1, vec![7]),
                (1, 3, vec![5, 7]),
                (1, 8, vec![3, 5, 3]),
                (1, 20, vec![3, 7]),
                (3, 5, vec![2, 3, 3, 1]),
                (4, 3, vec![5, 4]),
                // Planes of 64 and more than 16 units: the relu family takes the interval
                // lookup, whose chunks span the planes' ends.
                (2, 20, vec![2, 2, 64]),
            ] {
                let p = Problem::random(
                    300 + k as u64 * 7 + hidden as u64,
                    base,
                    channels,
                    hidden,
                    &dims,
                );
                let (y, g) = tensor_grads(&p, KernelChoice::Fused, DType::F64);
                check_against_scalar_truth(&p, &y, &g, 1e-12);
            }
        }
    }

    /// Every base, N ∈ {1, 3, 8, 128}, each `(channels, dims)` of `shapes`: `fused(problem)` vs
    /// the plain-ops reference on the CPU in f32, forward ≤ 1e-5 and gradients ≤ 1e-4 (scaled).
    #[allow(clippy::type_complexity)]
    fn assert_matches_reference(
        shapes: &[(usize, Vec<usize>)],
        seed: u64,
        fused: &dyn Fn(&Problem) -> (Vec<f64>, [Vec<f64>; 5]),
    ) {
        for (k, base) in crate::afu::BaseActivation::ALL.into_iter().enumerate() {
            for hidden in [1, 3, 8, 128] {
                for (channels, dims) in shapes {
                    let p = Problem::random(
                        seed + k as u64 * 101 + hidden as u64 * 7 + *channels as u64,
                        base,
                        *channels,
                        hidden,
                        dims,
                    );
                    let (yr, gr) = tensor_grads(&p, KernelChoice::Reference, DType::F32);
                    let (yf, gf) = fused(&p);
                    let e = scaled_error(&yf, &yr);
                    assert!(
                        e <= 1e-5,
                        "{base} N={hidden} C={channels}: forward error {e}"
                    );
                    for (name, (a, b)) in
                        ["x", "w0", "b0", "w1", "b1"].iter().zip(gf.iter().zip(&gr))
                    {
                        let e = scaled_error(a, b);
                        assert!(
                            e <= 1e-4,
                            "{base} N={hidden} C={channels}: grad {name} error {e}"
                        );
                    }
                }
            }
        }
    }

    /// Odd sizes, shared and per-channel.
    fn odd_shapes() -> Vec<(usize, Vec<usize>)> {
        vec![
            (1, vec![1013]),
            (1, vec![7, 3, 5, 11]),
            (5, vec![3, 5, 7, 9]),
            (6, vec![37, 6]),
            // Per channel, 40 runs of 37 per work item: the vector kernels' blocks of sums
            // end inside runs and carry over between them.
            (3, vec![40, 3, 37]),
        ]
    }

    /// Fused vs reference in f32 on odd sizes: forward ≤ 1e-5, gradients ≤ 1e-4 (scaled).
    #[test]
    fn fused_matches_reference_f32() {
        assert_matches_reference(&odd_shapes(), 1000, &|p| {
            tensor_grads(p, KernelChoice::Fused, DType::F32)
        });
    }

    /// The CPU kernels on each path, chosen explicitly whatever `AFU_KERNEL_ISA` says (so a
    /// machine with AVX-512 tests the portable path too), against the plain-ops reference in
    /// f32 on odd sizes: forward ≤ 1e-5, gradients ≤ 1e-4 (scaled).
    #[test]
    fn cpu_kernels_on_both_isa_paths_match_reference_f32() {
        for isa in [isa::Isa::Portable, isa::Isa::Native] {
            assert_matches_reference(&odd_shapes(), 1000, &|p| cpu_grads_f32(p, isa));
        }
    }

    /// `(y, [gx, gw0, gb0, gw1, gb1])` of `p` by [`cpu::grads_with_isa`] in f32.
    fn cpu_grads_f32(p: &Problem, isa: isa::Isa) -> (Vec<f64>, [Vec<f64>; 5]) {
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let f64s = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
        let pr = &p.params;
        let (w0, b0, w1, b1) = (f32s(&pr.w0), f32s(&pr.b0), f32s(&pr.w1), f32s(&pr.b1));
        let params = cpu::ParamSlices {
            base: pr.base,
            hidden: pr.hidden,
            w0: &w0,
            b0: &b0,
            w1: &w1,
            b1: &b1,
        };
        let layout = cpu::Layout::of(&p.dims, pr.channels);
        let (y, gx, g) = cpu::grads_with_isa(&f32s(&p.x), &f32s(&p.gy), layout, &params, isa);
        (
            f64s(&y),
            [
                f64s(&gx),
                f64s(&g.w0),
                f64s(&g.b0),
                f64s(&g.w1),
                f64s(&g.b1),
            ],
        )
    }

    /// Relu and leaky-relu AFUs, fused against the plain-ops reference in f32, for each unit
    /// count and shape: forward ≤ 1e-5, gradients ≤ 1e-4 (scaled).
    fn assert_relu_family_matches_reference(
        seed: u64,
        hiddens: &[usize],
        shapes: &[(usize, Vec<usize>)],
    ) {
        for base in [
            crate::afu::BaseActivation::Relu,
            crate::afu::BaseActivation::LeakyRelu,
        ] {
            for &hidden in hiddens {
                for (channels, dims) in shapes {
                    let p = Problem::random(seed + hidden as u64, base, *channels, hidden, dims);
                    let (yr, gr) = tensor_grads(&p, KernelChoice::Reference, DType::F32);
                    let (yf, gf) = tensor_grads(&p, KernelChoice::Fused, DType::F32);
                    let e = scaled_error(&yf, &yr);
                    assert!(e <= 1e-5, "{base} N={hidden} {dims:?}: forward {e}");
                    for (name, (a, b)) in
                        ["x", "w0", "b0", "w1", "b1"].iter().zip(gf.iter().zip(&gr))
                    {
                        let e = scaled_error(a, b);
                        assert!(e <= 1e-4, "{base} N={hidden} {dims:?}: grad {name} {e}");
                    }
                }
            }
        }
    }

    /// The relu family at the unit counts where the interval lookup changes shape (one group,
    /// several, the two-register layout from 80 thresholds and always above 255, and beyond
    /// it the portable path), shared and per-channel.
    #[test]
    fn fused_relu_family_lookup_layouts_match_reference() {
        assert_relu_family_matches_reference(
            77,
            &[15, 16, 17, 31, 33, 79, 80, 255, 256, 300, 520],
            &[(1, vec![1013]), (3, vec![5, 3, 67]), (3, vec![40, 3, 37])],
        );
    }

    /// Per-channel AFUs whose work items run over many planes, with vector chunks spanning the
    /// planes' ends (planes of 67, 64, 45 and 100 elements), in both orders of the items (fewer
    /// than five channels: staggered rounds; more: by halves), with one piece per channel and
    /// with several.
    #[test]
    fn fused_per_channel_on_many_planes_matches_reference() {
        assert_relu_family_matches_reference(
            91,
            &[3, 8, 40, 128],
            &[
                (3, vec![5, 3, 67]),
                (2, vec![260, 2, 64]),
                (6, vec![7, 6, 45]),
                (7, vec![3, 7, 100]),
            ],
        );
    }

    /// The CubeCL kernel (here on whatever wgpu finds: a GPU, or lavapipe, Mesa's CPU Vulkan
    /// driver) against the plain-ops reference on the CPU, f32, odd sizes, every base, N ∈ {1,
    /// 3, 8, 128}, shared and per-channel, and channels split over several cubes (the last two
    /// shapes): forward ≤ 1e-5, gradients ≤ 1e-4 (scaled); a repeat run gives the same bits.
    #[cfg(feature = "wgpu")]
    #[test]
    fn cube_kernel_matches_reference_f32() {
        let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        assert!(super::fused::has_fused_kernel(&gpu));
        let mut shapes = odd_shapes();
        shapes.extend([(1, vec![20011]), (3, vec![4, 3, 50, 41])]);
        assert_matches_reference(&shapes, 5000, &|p| {
            let first = tensor_grads_on(p, KernelChoice::Fused, DType::F32, &gpu);
            let again = tensor_grads_on(p, KernelChoice::Fused, DType::F32, &gpu);
            assert_eq!(
                first, again,
                "{} N={}: not repeatable",
                p.params.base, p.params.hidden
            );
            first
        });
    }

    /// Inputs exactly on kinks, coinciding kinks and zeros in w0: the fused piecewise-linear path
    /// uses the reference's subgradient convention.
    #[test]
    fn fused_handles_kinks_exactly_like_reference() {
        for base in [
            crate::afu::BaseActivation::Relu,
            crate::afu::BaseActivation::LeakyRelu,
            crate::afu::BaseActivation::Linear,
        ] {
            // 6 units: the direct path; 6 + 24 extra units: the interval (sorted-kink) path.
            for extra in [0usize, 24] {
                let mut p = Problem::random(5, base, 1, 6 + extra, &[9]);
                // Kinks: unit0 t=0.5, unit1 t=0.5 (coincides, opposite orientation), unit2 t=-1,
                // unit3 w0=0 (no kink, b0>0), unit4 w0=0 (b0<0), unit5 t=2; extra units keep their
                // random kinks.
                p.params.w0[..6].copy_from_slice(&[2.0, -4.0, 1.0, 0.0, 0.0, 0.5]);
                p.params.b0[..6].copy_from_slice(&[-1.0, 2.0, 1.0, 0.7, -0.3, -1.0]);
                p.x = vec![0.5, -1.0, 2.0, 0.0, 0.25, 0.5, 3.0, -2.0, 2.0];
                for dtype in [DType::F32, DType::F64] {
                    let (yr, gr) = tensor_grads(&p, KernelChoice::Reference, dtype);
                    let (yf, gf) = tensor_grads(&p, KernelChoice::Fused, dtype);
                    assert!(scaled_error(&yf, &yr) <= 1e-6, "{base}: forward");
                    for (name, (a, b)) in
                        ["x", "w0", "b0", "w1", "b1"].iter().zip(gf.iter().zip(&gr))
                    {
                        let e = scaled_error(a, b);
                        assert!(
                            e <= 1e-6,
                            "{base} {dtype:?}: grad {name} error {e}: {a:?} vs {b:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fused_is_bit_identical_across_runs() {
        for base in [
            crate::afu::BaseActivation::Relu,
            crate::afu::BaseActivation::Mish,
        ] {
            let p = Problem::random(9, base, 3, 16, &[64, 3, 33, 35]);
            let first = tensor_grads(&p, KernelChoice::Fused, DType::F32);
            for _ in 0..3 {
                let again = tensor_grads(&p, KernelChoice::Fused, DType::F32);
                assert!(again == first, "{base}: results differ between runs");
            }
        }
    }
}
