//! The fused family kernels against the plain-ops reference (`f64`, through Burn's autodiff)
//! and against finite differences, on odd shapes, in every sharing mode; and their
//! determinism (bit-identical reruns, the same bits on 1 and 2 threads).

use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::kernel;
use super::layer::Learnable;
use super::{Family, FamilyParams};
use crate::afu::KernelChoice;
use crate::afu::kernel::layout::Layout;

/// Every family at its default sizes and at a small odd size.
fn families() -> Vec<Family> {
    let mut v = Family::DEFAULTS.to_vec();
    v.extend([
        Family::Pau { m: 3, n: 2 },
        Family::Pwlu { intervals: 5 },
        Family::Apl { hinges: 2 },
        Family::Kaf { points: 7 },
    ]);
    v
}

/// `[C, P]` parameters near the start, different per channel.
fn params(family: Family, channels: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let row = family.init();
    (0..channels)
        .flat_map(|_| row.clone())
        .map(|v| v + rng.random_range(-0.1..0.1))
        .collect()
}

fn random(len: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// `(y, gx, gp)` of `L = Σ gy·g(x)` through the module with `choice`, in `f64`.
fn run(
    family: Family,
    channels: usize,
    p: &[f64],
    dims: &[usize],
    x: &[f64],
    gy: &[f64],
    choice: KernelChoice,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let device = Device::flex().autodiff();
    let layer = Learnable::from_values(family, channels, p, &device, DType::F64)
        .unwrap()
        .with_kernel(choice);
    let read = |t: Tensor<1>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    macro_rules! go {
        ($d:literal) => {{
            let dims: [usize; $d] = dims.to_vec().try_into().unwrap();
            let xt =
                Tensor::<$d>::from_data(TensorData::new(x.to_vec(), dims), (&device, DType::F64))
                    .require_grad();
            let gt =
                Tensor::<$d>::from_data(TensorData::new(gy.to_vec(), dims), (&device, DType::F64));
            let y = layer.forward(xt.clone());
            let grads = y.clone().mul(gt).sum().backward();
            (
                read(y.reshape([-1])),
                read(xt.grad(&grads).unwrap().reshape([-1])),
                read(layer.params.val().grad(&grads).unwrap().reshape([-1])),
            )
        }};
    }
    match dims.len() {
        2 => go!(2),
        4 => go!(4),
        n => panic!("rank {n}"),
    }
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

/// Shapes and channel counts: shared (network or layer: one channel) and per channel, a
/// convolution-like odd shape, a dense `[batch, features]` one, and one spanning several
/// chunks whose boundaries fall inside channels and wrap past the last one.
const CASES: [(&[usize], bool); 5] = [
    (&[3, 5, 7, 9], false),
    (&[3, 5, 7, 9], true),
    (&[13, 6], true),
    (&[13, 6], false),
    (&[3, 7, 31, 29], true),
];

#[test]
fn fused_matches_reference_in_f64() {
    for family in families() {
        for (k, &(dims, per_channel)) in CASES.iter().enumerate() {
            let channels = if per_channel { dims[1] } else { 1 };
            let m: usize = dims.iter().product();
            let p = params(family, channels, k as u64);
            let (x, gy) = (random(m, 4.0, 10 + k as u64), random(m, 1.0, 20 + k as u64));
            let fused = run(family, channels, &p, dims, &x, &gy, KernelChoice::Fused);
            let reference = run(family, channels, &p, dims, &x, &gy, KernelChoice::Reference);
            let what = format!("{family} {dims:?} C={channels}");
            assert_close(&fused.0, &reference.0, 1e-12, &format!("{what} y"));
            assert_close(&fused.1, &reference.1, 1e-10, &format!("{what} gx"));
            // The ramp form of PWLU gets ∂/∂L and ∂/∂R as sums of large terms that cancel
            // (every ramp moves with L and R), so it agrees less closely; the fused kernel's
            // parameter gradients also match finite differences (the test below).
            let tol = if matches!(family, Family::Pwlu { .. }) {
                1e-6
            } else {
                1e-10
            };
            assert_close(&fused.2, &reference.2, tol, &format!("{what} gp"));
        }
    }
}

#[test]
fn fused_parameter_gradients_match_finite_differences() {
    let dims = [3usize, 5, 7, 9];
    let m: usize = dims.iter().product();
    for family in families() {
        for channels in [1, 5] {
            let layout = Layout::of(&dims, channels);
            let p = params(family, channels, 3);
            let (x, gy) = (random(m, 4.0, 4), random(m, 1.0, 5));
            let loss = |p: &[f64], x: &[f64]| -> f64 {
                let mut y = vec![0.0; m];
                crate::with_family!(family, f => kernel::forward(f, x, layout, p, &mut y));
                y.iter().zip(&gy).map(|(a, b)| a * b).sum()
            };
            let mut g = gy.clone();
            let gp = crate::with_family!(family, f => kernel::backward(f, &x, layout, &p, &mut g));
            let h = 1e-6;
            let fd: Vec<f64> = (0..p.len())
                .map(|i| {
                    let (mut pp, mut pm) = (p.clone(), p.clone());
                    pp[i] += h;
                    pm[i] -= h;
                    (loss(&pp, &x) - loss(&pm, &x)) / (2.0 * h)
                })
                .collect();
            assert_close(&gp, &fd, 1e-6, &format!("{family} C={channels} gp vs fd"));
            // Input gradient at a few elements.
            for e in [0, 17, m / 2, m - 1] {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[e] += h;
                xm[e] -= h;
                let fd = (loss(&p, &xp) - loss(&p, &xm)) / (2.0 * h);
                assert!(
                    (g[e] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                    "{family} gx[{e}]: {} vs {fd}",
                    g[e]
                );
            }
        }
    }
}

/// `(y, gx, gp)` of the `f32` kernels on a pool of `threads` threads.
fn f32_on_threads(family: Family, threads: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    f32_run(family, threads, kernel::Isa::from_env())
}

/// `(y, gx, gp)` of the `f32` kernels on a pool of `threads` threads, on the `isa` paths.
fn f32_run(family: Family, threads: usize, isa: kernel::Isa) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dims = [4usize, 6, 61, 67]; // 98 088 elements: 12 chunks, boundaries inside channels
    let m: usize = dims.iter().product();
    let layout = Layout::of(&dims, 6);
    let p: Vec<f32> = params(family, 6, 7).iter().map(|&v| v as f32).collect();
    let x: Vec<f32> = random(m, 4.0, 8).iter().map(|&v| v as f32).collect();
    let gy: Vec<f32> = random(m, 1.0, 9).iter().map(|&v| v as f32).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut y = vec![0.0f32; m];
        let mut g = gy.clone();
        let gp = crate::with_family!(family, f => {
            kernel::forward_into(f, &x, layout, &p, &mut y, isa);
            kernel::backward_with(f, &x, layout, &p, &mut g, isa)
        });
        (y, g, gp)
    })
}

#[test]
fn reruns_and_thread_counts_give_the_same_bits() {
    for family in Family::DEFAULTS {
        let one = f32_on_threads(family, 1);
        let two = f32_on_threads(family, 2);
        let again = f32_on_threads(family, 2);
        assert!(one.2.iter().any(|v| *v != 0.0), "{family}: some gradient");
        assert_eq!(one, two, "{family}: 1 vs 2 threads");
        assert_eq!(two, again, "{family}: rerun");
    }
}

/// The vector paths (AVX-512 or AVX2, whichever this CPU has) and the portable one give
/// the same bits: no fused multiply-add, the same lane sums in the same order.
#[test]
fn vector_and_portable_paths_give_the_same_bits() {
    for family in families() {
        let native = f32_run(family, 2, kernel::Isa::Native);
        let portable = f32_run(family, 2, kernel::Isa::Portable);
        assert_eq!(native, portable, "{family}: native vs portable paths");
    }
}

/// PWLU's AVX-512 register-table code (up to 16 intervals) and its portable form give the same
/// bits (NaNs where the portable form has NaNs) on the inputs where the pieces meet or break
/// down: the bounds and grid points exactly, ±∞, NaN, ±0, and crossed or equal bounds, for 1,
/// 5 and 16 intervals.
#[test]
fn pwlu_register_tables_match_the_portable_form_at_the_edges() {
    use super::ScalarFamily;
    use super::math::Pwlu;
    let mut x: Vec<f32> = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e30,
        -1e30,
    ];
    x.extend((-40..=40).map(|i| i as f32 * 0.125));
    x.extend(random(300, 5.0, 3).iter().map(|&v| v as f32));
    let m = x.len();
    let gy: Vec<f32> = random(m, 1.0, 4).iter().map(|&v| v as f32).collect();
    // Bits, with every NaN as one (a NaN's sign and payload are not specified by Rust and
    // depend on operand order, which the compiler may swap).
    let bits = |v: &[f32]| {
        v.iter()
            .map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() })
            .collect::<Vec<_>>()
    };
    for n in [1usize, 5, 16] {
        let f = Pwlu { n };
        let start: Vec<f32> = f.init().iter().map(|&v| v as f32).collect();
        let mut crossed = start.clone();
        crossed[..2].copy_from_slice(&[1.0, -1.0]);
        let mut equal = start.clone();
        equal[..2].copy_from_slice(&[0.5, 0.5]);
        let mut shifted = start.clone();
        shifted[..4].copy_from_slice(&[-1.25, 2.0, 0.3, 0.7]);
        for (what, p) in [
            ("start", start),
            ("crossed", crossed),
            ("equal", equal),
            ("shifted", shifted),
        ] {
            let layout = Layout::of(&[m], 1);
            let run = |isa| {
                let mut y = vec![0.0f32; m];
                let mut g = gy.clone();
                kernel::forward_into(f, &x, layout, &p, &mut y, isa);
                let gp = kernel::backward_with(f, &x, layout, &p, &mut g, isa);
                (bits(&y), bits(&g), bits(&gp))
            };
            assert_eq!(
                run(kernel::Isa::Native),
                run(kernel::Isa::Portable),
                "pwlu-{n}, {what} parameters: native vs portable"
            );
        }
    }
}

/// The compile-time-sized families (what the fused op runs at the default sizes) give the
/// same bits as the run-time-sized ones.
#[test]
fn fixed_sizes_give_the_same_bits() {
    use super::math::{Apl, AplFixed, Kaf, KafFixed, Pau, PauFixed, Pwlu, PwluFixed};
    fn run<F: super::ScalarFamily>(f: F, family: Family) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let dims = [4usize, 6, 61, 67];
        let m: usize = dims.iter().product();
        let layout = Layout::of(&dims, 6);
        let p: Vec<f32> = params(family, 6, 7).iter().map(|&v| v as f32).collect();
        let x: Vec<f32> = random(m, 4.0, 8).iter().map(|&v| v as f32).collect();
        let mut g: Vec<f32> = random(m, 1.0, 9).iter().map(|&v| v as f32).collect();
        let mut y = vec![0.0f32; m];
        kernel::forward(f, &x, layout, &p, &mut y);
        let gp = kernel::backward(f, &x, layout, &p, &mut g);
        (y, g, gp)
    }
    let pau = Family::Pau { m: 5, n: 4 };
    assert_eq!(
        run(PauFixed::<5, 4>, pau),
        run(Pau { m: 5, n: 4 }, pau),
        "pau"
    );
    let pwlu = Family::Pwlu { intervals: 16 };
    assert_eq!(
        run(PwluFixed::<16>, pwlu),
        run(Pwlu { n: 16 }, pwlu),
        "pwlu"
    );
    let apl = Family::Apl { hinges: 5 };
    assert_eq!(run(AplFixed::<5>, apl), run(Apl { s: 5 }, apl), "apl");
    let kaf = Family::Kaf { points: 20 };
    assert_eq!(run(KafFixed::<20>, kaf), run(Kaf { d: 20 }, kaf), "kaf");
}

/// The `f32` kernels against the `f64` ones on the same inputs: within `f32` rounding
/// (the lane sums and KAF's recurrence included).
#[test]
fn f32_kernels_agree_with_f64() {
    let dims = [3usize, 7, 31, 29];
    let m: usize = dims.iter().product();
    for family in families() {
        for channels in [1, 7] {
            let layout = Layout::of(&dims, channels);
            let p = params(family, channels, 11);
            let (x, gy) = (random(m, 4.0, 12), random(m, 1.0, 13));
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (p32, x32) = (to32(&p), to32(&x));
            let (mut y64, mut y32) = (vec![0.0f64; m], vec![0.0f32; m]);
            let (mut g64, mut g32) = (gy.clone(), to32(&gy));
            let (gp64, gp32) = crate::with_family!(family, f => {
                kernel::forward(f, &x, layout, &p, &mut y64);
                kernel::forward(f, &x32, layout, &p32, &mut y32);
                (
                    kernel::backward(f, &x, layout, &p, &mut g64),
                    kernel::backward(f, &x32, layout, &p32, &mut g32),
                )
            });
            let widen = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
            let what = format!("{family} C={channels} f32 vs f64");
            assert_close(&widen(&y32), &y64, 1e-4, &format!("{what} y"));
            assert_close(&widen(&g32), &g64, 1e-4, &format!("{what} gx"));
            assert_close(&widen(&gp32), &gp64, 1e-4, &format!("{what} gp"));
        }
    }
}

#[test]
fn params_report_names_and_rows() {
    let device = Device::flex();
    let l = Learnable::new(Family::Pwlu { intervals: 4 }, 3, &device).unwrap();
    let FamilyParams {
        family,
        channels,
        param_names,
        values,
    } = l.params();
    assert_eq!((family.as_str(), channels), ("pwlu-4", 3));
    assert_eq!(param_names.len(), 9);
    assert_eq!(values.len(), 3);
    assert_eq!(values[0], Family::Pwlu { intervals: 4 }.init());
    assert!(Learnable::from_values(Family::Prelu, 2, &[0.1], &device, DType::F32).is_err());
    assert!(Learnable::new(Family::Prelu, 0, &device).is_err());
}
