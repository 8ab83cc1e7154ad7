//! The CubeCL family kernels (on whatever wgpu finds: a GPU, or lavapipe, Mesa's CPU Vulkan
//! driver) against the plain-ops reference in `f64` on the CPU: every family (default sizes,
//! small odd sizes and the largest sizes accepted), shared and per channel, odd shapes and
//! shapes of more than 20 000 elements whose channels split over several cubes; forward,
//! input gradient and parameter gradients; and their determinism (a rerun gives the same
//! bits, through the autodiff wrapper and without it).

use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::layer::Learnable;
use super::{Family, MAX_PIECES};
use crate::afu::KernelChoice;
use crate::afu::kernel::testutil::scaled_error;

/// Every family at its default sizes, at small odd sizes and at the largest sizes accepted.
fn families() -> Vec<Family> {
    let mut v = Family::DEFAULTS.to_vec();
    v.extend([
        Family::Pau { m: 3, n: 2 },
        Family::Pau { m: 1, n: 1 },
        Family::Pwlu { intervals: 1 },
        Family::Pwlu { intervals: 5 },
        Family::Pwlu {
            intervals: MAX_PIECES,
        },
        Family::Apl { hinges: 1 },
        Family::Apl { hinges: 2 },
        Family::Apl { hinges: MAX_PIECES },
        Family::Kaf { points: 2 },
        Family::Kaf { points: 7 },
        Family::Kaf { points: MAX_PIECES },
    ]);
    v
}

/// `(dims, per_channel)`: shared and per channel on odd shapes of rank 1 to 4, a dense
/// `[batch, features]` one, and two of more than 20 000 elements (the per-channel one with
/// 8 200 elements per channel: three chunks each, the last one short).
const SHAPES: [(&[usize], bool); 9] = [
    (&[7], false),
    (&[3, 5, 11], false),
    (&[3, 5, 11], true),
    (&[2, 3, 9, 13], false),
    (&[2, 3, 9, 13], true),
    (&[13, 6], true),
    (&[20011], false),
    (&[4, 3, 50, 41], true),
    (&[4, 3, 50, 41], false),
];

/// `v` rounded to `f32` (what the kernels see), kept as `f64` for the reference.
fn to_f32(v: f64) -> f64 {
    f64::from(v as f32)
}

/// The points where `family` with parameters `p` (one channel) has a kink: its gradients jump
/// there, so an input that rounding in `f32` moves across one has a different gradient.
fn kinks(family: Family, p: &[f64]) -> Vec<f64> {
    match family {
        Family::Prelu | Family::Pmish | Family::Pau { .. } => vec![0.0],
        Family::SwishBeta | Family::Kaf { .. } => vec![],
        Family::Pwlu { intervals } => (0..=intervals)
            .map(|i| p[0] + (p[1] - p[0]) * i as f64 / intervals as f64)
            .collect(),
        Family::Apl { hinges } => std::iter::once(0.0)
            .chain(p[hinges..].iter().copied())
            .collect(),
    }
}

/// A random problem: `[C, P]` parameters near the start (different per channel), an input
/// on [−4, 4] at least 1e-3 away from every kink of its channel, an upstream gradient; all
/// values representable in `f32`.
struct Problem {
    family: Family,
    channels: usize,
    dims: Vec<usize>,
    p: Vec<f64>,
    x: Vec<f64>,
    gy: Vec<f64>,
}

impl Problem {
    fn random(family: Family, dims: &[usize], per_channel: bool, seed: u64) -> Problem {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let channels = if per_channel { dims[1] } else { 1 };
        let row = family.init();
        let p: Vec<f64> = (0..channels)
            .flat_map(|_| row.clone())
            .map(|v| to_f32(v + rng.random_range(-0.1..0.1)))
            .collect();
        let m: usize = dims.iter().product();
        let inner: usize = if per_channel {
            dims[2..].iter().product()
        } else {
            m
        };
        let np = family.n_params();
        let kinks: Vec<Vec<f64>> = (0..channels)
            .map(|c| kinks(family, &p[c * np..(c + 1) * np]))
            .collect();
        let x = (0..m)
            .map(|e| {
                let near = &kinks[(e / inner) % channels];
                let mut v = to_f32(rng.random_range(-4.0..4.0));
                while near.iter().any(|k| (v - k).abs() < 1e-3) {
                    v = to_f32(v + 2e-3);
                }
                v
            })
            .collect();
        let gy = (0..m)
            .map(|_| to_f32(rng.random_range(-1.0..1.0)))
            .collect();
        Problem {
            family,
            channels,
            dims: dims.to_vec(),
            p,
            x,
            gy,
        }
    }

    /// `(y, gx, gp)` of `L = Σ gy·g(x)` through the module with `choice` on `device` in
    /// `dtype`; without autodiff on the device, `gx` and `gp` are empty.
    fn run(&self, device: &Device, dtype: DType, choice: KernelChoice) -> [Vec<f64>; 3] {
        let layer = Learnable::from_values(self.family, self.channels, &self.p, device, dtype)
            .unwrap()
            .with_kernel(choice);
        let read = |t: Tensor<1>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        let tracked = device.is_autodiff();
        macro_rules! go {
            ($d:literal) => {{
                let dims: [usize; $d] = self.dims.clone().try_into().unwrap();
                let mut x =
                    Tensor::<$d>::from_data(TensorData::new(self.x.clone(), dims), (device, dtype));
                if !tracked {
                    let y = layer.forward(x);
                    return [read(y.reshape([-1])), vec![], vec![]];
                }
                x = x.require_grad();
                let gy = Tensor::<$d>::from_data(
                    TensorData::new(self.gy.clone(), dims),
                    (device, dtype),
                );
                let y = layer.forward(x.clone());
                let grads = y.clone().mul(gy).sum().backward();
                [
                    read(y.reshape([-1])),
                    read(x.grad(&grads).unwrap().reshape([-1])),
                    read(layer.params.val().grad(&grads).unwrap().reshape([-1])),
                ]
            }};
        }
        match self.dims.len() {
            1 => go!(1),
            2 => go!(2),
            3 => go!(3),
            4 => go!(4),
            n => panic!("rank {n}"),
        }
    }
}

/// The forward's tolerance (scaled): 1e-5 as the AFU's CubeCL test, except KAF's largest
/// dictionaries. At 256 points `γ ≈ 301`, and the rounding of `z − dᵢ` to `f32` moves
/// `exp(−γ·(z − dᵢ)²)` by `2γ·|z − dᵢ|` times it: the CPU's `f32` kernel is 1.1e-5 off the
/// `f64` reference there too (and within 1.5e-6 of these kernels).
fn forward_tolerance(family: Family) -> f64 {
    match family {
        Family::Kaf { points } if points > 64 => 3e-5,
        _ => 1e-5,
    }
}

/// Every family, every shape: the CubeCL kernels in `f32` against the reference in `f64`:
/// forward ≤ [`forward_tolerance`], gradients ≤ 1e-4 (scaled by the largest value, as the
/// AFU's CubeCL test);
/// a second run through `Auto` (which must pick the kernel) gives the same bits, and so does
/// the forward without autodiff.
#[test]
fn cube_family_matches_reference_f32() {
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    assert!(crate::afu::kernel::fused::has_fused_kernel(&gpu));
    let cpu = Device::flex().autodiff();
    let gpu_ad = gpu.clone().autodiff();
    let mut failures = Vec::new();
    for (f, family) in families().into_iter().enumerate() {
        for (s, &(dims, per_channel)) in SHAPES.iter().enumerate() {
            let problem = Problem::random(family, dims, per_channel, (f * 100 + s) as u64);
            let what = format!("{family} {dims:?} C={}", problem.channels);
            let truth = problem.run(&cpu, DType::F64, KernelChoice::Reference);
            let first = problem.run(&gpu_ad, DType::F32, KernelChoice::Fused);
            for ((name, a), (b, tol)) in ["y", "gx", "gp"]
                .iter()
                .zip(&first)
                .zip(truth.iter().zip([forward_tolerance(family), 1e-4, 1e-4]))
            {
                assert!(a.iter().any(|v| *v != 0.0), "{what}: {name} is all zeros");
                let e = scaled_error(a, b);
                if e > tol {
                    failures.push(format!("{what}: {name} error {e}"));
                }
            }
            let again = problem.run(&gpu_ad, DType::F32, KernelChoice::Auto);
            assert_eq!(
                first, again,
                "{what}: Auto on the GPU is the same kernel, rerun"
            );
            let plain = problem.run(&gpu, DType::F32, KernelChoice::Auto);
            assert_eq!(plain[0], first[0], "{what}: forward without autodiff");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
