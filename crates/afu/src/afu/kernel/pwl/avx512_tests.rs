//! The AVX-512 piecewise-linear kernels (`avx512`) against the portable ones ([`portable`],
//! bisection and the standard sort) and against a plain unit-by-unit evaluation, through this
//! folder's dispatch ([`Tables`], [`forward`], [`backward`]) with the paths chosen explicitly,
//! so both run in one test process.
//!
//! Where the design says they match bit for bit, they are compared bit for bit: the tables
//! (thresholds, slopes, intercepts), the forward's `y` and the backward's `gx`. The parameter
//! gradients only agree to rounding (the vector kernels sum `gy·x` formed in `f32`, in another
//! order), so they are compared to a tolerance, as is everything against the unit-by-unit
//! evaluation in `f64`. On a CPU without AVX-512 the tests print a message and return.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::afu::base::BaseActivation;
use crate::afu::kernel::testutil::scaled_error;
use crate::afu::kernel::work::items;

/// True when this CPU runs the AVX-512 code; else prints that `test` is skipped.
fn avx512_here(test: &str) -> bool {
    let here = avx512_serves::<f32>(Isa::Native);
    if !here {
        println!("{test}: skipped, no AVX-512 (F, VL, BW, DQ) on this CPU");
    }
    here
}

/// One problem: `C` AFUs of `N` units applied to a tensor of shape `dims`.
struct Problem {
    base: BaseActivation,
    hidden: usize,
    layout: Layout,
    w0: Vec<f32>,
    b0: Vec<f32>,
    w1: Vec<f32>,
    b1: Vec<f32>,
    x: Vec<f32>,
    gy: Vec<f32>,
}

impl Problem {
    /// Random parameters with awkward units mixed in: every 5th unit has `w0 = 0` (`b0` of
    /// either sign), every 7th repeats its predecessor's `(w0, b0)` (coinciding thresholds),
    /// every 11th its predecessor's mirror `(−w0, −b0)` (the same kink, the other orientation).
    /// Inputs random in `[−4, 4]`, with a third of them exactly on a threshold of their
    /// channel (every threshold in turn, those within `[−8, 8]`) or one float either side of
    /// it, and a few signed zeros.
    fn new(
        seed: u64,
        base: BaseActivation,
        channels: usize,
        hidden: usize,
        dims: &[usize],
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let cn = channels * hidden;
        let mut w0: Vec<f32> = (0..cn).map(|_| rng.random_range(-1.5..1.5)).collect();
        let mut b0: Vec<f32> = (0..cn).map(|_| rng.random_range(-1.5..1.5)).collect();
        for i in 0..cn {
            let unit = i % hidden;
            if unit % 5 == 4 {
                w0[i] = 0.0;
            } else if unit % 7 == 6 {
                (w0[i], b0[i]) = (w0[i - 1], b0[i - 1]);
            } else if unit % 11 == 10 {
                (w0[i], b0[i]) = (-w0[i - 1], -b0[i - 1]);
            }
        }
        let w1: Vec<f32> = (0..cn).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b1: Vec<f32> = (0..channels).map(|_| rng.random_range(-1.0..1.0)).collect();
        let layout = Layout::of(dims, channels);
        let m = layout.len();
        let mut x: Vec<f32> = (0..m).map(|_| rng.random_range(-4.0..4.0)).collect();
        let gy: Vec<f32> = (0..m).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut problem = Problem {
            base,
            hidden,
            layout,
            w0,
            b0,
            w1,
            b1,
            x: Vec::new(),
            gy,
        };
        // Kinks on inputs: the portable tables' thresholds of each channel.
        let alpha = base.negative_slope().expect("a relu-family base");
        let params = problem.params();
        let kinks: Vec<Vec<f32>> = (0..channels)
            .map(|c| {
                let (w0, b0, _, _) = params.channel(c);
                sorted_thresholds(w0, b0, alpha, Isa::Portable)
                    .expect("finite parameters")
                    .1
                    .into_iter()
                    .filter(|t| t.abs() <= 8.0)
                    .collect()
            })
            .collect();
        let mut next = vec![0usize; channels];
        for (e, xe) in x.iter_mut().enumerate() {
            let c = (e / layout.inner) % layout.channels;
            let kinks = &kinks[c];
            match e % 9 {
                0 | 3 | 6 if !kinks.is_empty() => {
                    let t = kinks[next[c] % kinks.len()];
                    next[c] += 1;
                    let step = [0i64, 1, -1][(e / 9) % 3];
                    *xe = f32::from_ordered(t.to_ordered() + step);
                }
                1 if e % 4 == 1 => *xe = if e % 8 == 1 { 0.0 } else { -0.0 },
                _ => {}
            }
        }
        problem.x = x;
        problem
    }

    fn params(&self) -> ParamSlices<'_, f32> {
        ParamSlices {
            base: self.base,
            hidden: self.hidden,
            w0: &self.w0,
            b0: &self.b0,
            w1: &self.w1,
            b1: &self.b1,
        }
    }

    fn alpha(&self) -> f64 {
        self.base.negative_slope().expect("a relu-family base")
    }

    /// `(y, gx, gradients)` through this folder's dispatch, tables built for `isa`.
    fn run(&self, isa: Isa) -> (Vec<f32>, Vec<f32>, ParamGrads<f32>, bool) {
        let p = self.params();
        let layout = self.layout;
        let work = items(layout);
        let tables = Tables::new(&p, layout.channels, self.alpha(), isa).expect("finite");
        let mut y = vec![0.0f32; layout.len()];
        forward(&self.x, layout, &work, &p, &tables, SharedMut::new(&mut y));
        let mut g = self.gy.clone();
        let grads = backward(&self.x, layout, &work, &p, &tables, SharedMut::new(&mut g));
        (y, g, grads, tables.vectorised())
    }

    /// `(y, gx, [gw0, gb0, gw1, gb1])` unit by unit in `f64`, each unit's side decided by the
    /// rounded `f32` `w0·x + b0 > 0`, as the reference decides it.
    #[allow(clippy::type_complexity, clippy::needless_range_loop)]
    fn unit_by_unit(&self) -> (Vec<f64>, Vec<f64>, [Vec<f64>; 4]) {
        let (n, layout, alpha) = (self.hidden, self.layout, self.alpha());
        let mut y = vec![0.0; layout.len()];
        let mut gx = vec![0.0; layout.len()];
        let mut g = [
            vec![0.0; self.w0.len()],
            vec![0.0; self.w0.len()],
            vec![0.0; self.w0.len()],
            vec![0.0; self.b1.len()],
        ];
        for e in 0..layout.len() {
            let c = (e / layout.inner) % layout.channels;
            let (x, gy) = (self.x[e], f64::from(self.gy[e]));
            let (mut ye, mut slope) = (f64::from(self.b1[c]), 0.0);
            for i in c * n..(c + 1) * n {
                let active = self.w0[i] * x + self.b0[i] > 0.0;
                let s = if active { 1.0 } else { alpha };
                let (w0, b0, w1) = (
                    f64::from(self.w0[i]),
                    f64::from(self.b0[i]),
                    f64::from(self.w1[i]),
                );
                let u = w0 * f64::from(x) + b0;
                ye += w1 * s * u;
                slope += w1 * s * w0;
                g[0][i] += gy * w1 * s * f64::from(x);
                g[1][i] += gy * w1 * s;
                g[2][i] += gy * s * u;
            }
            g[3][c] += gy;
            y[e] = ye;
            gx[e] = gy * slope;
        }
        (y, gx, g)
    }
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| f64::from(a)).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|a| a.to_bits()).collect()
}

/// Unit counts at which the vector kernels change shape: `K ≤ 4` and `K ≤ 8` thresholds
/// (independent compares, per-threshold sums), up to 15 (one-register layout), from 16 (the
/// two-register layout, groups of one, then of up to 16), 511 (the most it serves) and 512
/// (portable in both).
const HIDDEN: [usize; 17] = [
    1, 3, 5, 8, 9, 12, 15, 16, 17, 31, 33, 64, 128, 129, 300, 511, 512,
];

/// `(channels, dims)`: odd sizes; a single element; one vector; planes of 37 (partial last
/// vectors loaded overlapping), of 5 (masked vectors), many planes per work item, and five
/// channels (items ordered by halves, tables built on first use).
fn shapes() -> Vec<(usize, Vec<usize>)> {
    vec![
        (1, vec![1013]),
        (1, vec![1]),
        (1, vec![16]),
        (1, vec![97]),
        (3, vec![5, 3, 37]),
        (2, vec![9, 2, 5]),
        (3, vec![40, 3, 37]),
        (5, vec![3, 5, 67]),
    ]
}

/// The tables, `y` and `gx` of the AVX-512 path are the portable path's bit for bit, its
/// parameter gradients agree to rounding, and both agree with the unit-by-unit evaluation, for
/// every relu-family base, unit count and shape (kinks exactly on inputs, `w0 = 0` units,
/// coinciding thresholds).
#[test]
fn avx512_kernels_match_the_portable_path_and_the_plain_evaluation() {
    if !avx512_here("avx512_kernels_match_the_portable_path_and_the_plain_evaluation") {
        return;
    }
    for (k, base) in [
        BaseActivation::Relu,
        BaseActivation::LeakyRelu,
        BaseActivation::Linear,
    ]
    .into_iter()
    .enumerate()
    {
        for &hidden in &HIDDEN {
            for (s, (channels, dims)) in shapes().into_iter().enumerate() {
                let seed = 1000 * k as u64 + 10 * hidden as u64 + s as u64;
                let pr = Problem::new(seed, base, channels, hidden, &dims);
                let what = format!("{base} N={hidden} C={channels} {dims:?}");
                let p = pr.params();

                // The same tables, whichever path builds them.
                let native = Tables::new(&p, channels, pr.alpha(), Isa::Native).unwrap();
                let portable = Tables::new(&p, channels, pr.alpha(), Isa::Portable).unwrap();
                assert_eq!(
                    native.vectorised(),
                    hidden <= avx512::MAX_THRESHOLDS,
                    "{what}"
                );
                assert!(!portable.vectorised(), "{what}");
                for c in 0..channels {
                    let (a, b) = (&native.channel(&p, c).table, &portable.channel(&p, c).table);
                    assert_eq!(
                        bits(&a.thresholds),
                        bits(&b.thresholds),
                        "{what}: thresholds"
                    );
                    assert_eq!(bits(&a.a), bits(&b.a), "{what}: slopes");
                    assert_eq!(bits(&a.b), bits(&b.b), "{what}: intercepts");
                }

                let (yv, gv, grads_v, vectorised) = pr.run(Isa::Native);
                let (yp, gp, grads_p, _) = pr.run(Isa::Portable);
                assert_eq!(vectorised, hidden <= avx512::MAX_THRESHOLDS);
                assert_eq!(bits(&yv), bits(&yp), "{what}: y");
                assert_eq!(bits(&gv), bits(&gp), "{what}: gx");
                for (name, a, b) in [
                    ("w0", &grads_v.w0, &grads_p.w0),
                    ("b0", &grads_v.b0, &grads_p.b0),
                    ("w1", &grads_v.w1, &grads_p.w1),
                    ("b1", &grads_v.b1, &grads_p.b1),
                ] {
                    let e = scaled_error(&to_f64(a), &to_f64(b));
                    assert!(e <= 1e-5, "{what}: grad {name}, vector vs portable: {e}");
                }

                let (y, gx, g) = pr.unit_by_unit();
                let e = scaled_error(&to_f64(&yv), &y);
                assert!(e <= 1e-5, "{what}: y vs unit by unit: {e}");
                let e = scaled_error(&to_f64(&gv), &gx);
                assert!(e <= 1e-5, "{what}: gx vs unit by unit: {e}");
                for (name, a, b) in [
                    ("w0", &grads_v.w0, &g[0]),
                    ("b0", &grads_v.b0, &g[1]),
                    ("w1", &grads_v.w1, &g[2]),
                    ("b1", &grads_v.b1, &g[3]),
                ] {
                    let e = scaled_error(&to_f64(a), b);
                    assert!(e <= 1e-4, "{what}: grad {name} vs unit by unit: {e}");
                }
            }
        }
    }
}

/// The forward pass into an output that starts as garbage (NaN everywhere): the vector
/// kernels write every element, also where runs end inside a vector.
#[test]
fn avx512_forward_writes_every_element() {
    if !avx512_here("avx512_forward_writes_every_element") {
        return;
    }
    for &hidden in &[3usize, 12, 40] {
        for (s, (channels, dims)) in shapes().into_iter().enumerate() {
            let pr = Problem::new(7 + s as u64, BaseActivation::Relu, channels, hidden, &dims);
            let p = pr.params();
            let layout = pr.layout;
            let tables = Tables::new(&p, channels, pr.alpha(), Isa::Native).unwrap();
            assert!(tables.vectorised());
            let mut y = vec![f32::NAN; layout.len()];
            forward(
                &pr.x,
                layout,
                &items(layout),
                &p,
                &tables,
                SharedMut::new(&mut y),
            );
            let (yp, _, _, _) = pr.run(Isa::Portable);
            assert_eq!(bits(&y), bits(&yp), "N={hidden} C={channels} {dims:?}");
        }
    }
}
