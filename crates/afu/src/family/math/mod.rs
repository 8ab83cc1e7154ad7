//! Each learnable family as a scalar function `g(z; p)` of one input `z` and the parameters
//! `p` of one channel, with its derivatives: what the fused kernels evaluate per element and
//! what the oracle tests evaluate in `f64`.
//!
//! Each family has two forms of the same formulas: per element (`value`, `backward`: the
//! statement of the function and the `f64` oracle of the tests) and per block of [`LANES`]
//! elements of one channel (`value_lanes`, `backward_lanes`: what the fused kernel runs). The
//! block forms loop over the parameters outside and over the lanes inside, without branches or
//! calls in the lane loops, so that the compiler vectorises them across the lanes; their
//! parameter gradients go to one accumulator per lane.
//!
//! One file per family; [`tests`](mod@tests) checks every family against central finite
//! differences in `f64`, its start against the stated function, and its block form against
//! its element form.

// The formulas keep the form `a = a + b` (as the maths reads, and with the evaluation order
// spelled out); the float types implement `AddAssign`, which clippy would otherwise ask for.
#![allow(clippy::assign_op_pattern)]

pub mod apl;
pub mod kaf;
pub mod pau;
pub mod pmish;
pub mod prelu;
pub mod pwlu;
#[cfg(target_arch = "x86_64")]
pub mod pwlu_avx512;
pub mod swish_beta;

use num_traits::Float;

use crate::ops::float::KernelFloat;

pub use apl::Apl;
pub use kaf::Kaf;
pub use pau::Pau;
pub use pmish::Pmish;
pub use prelu::Prelu;
pub use pwlu::Pwlu;
pub use swish_beta::SwishBeta;

/// Elements of one block of the block forms: one accumulator lane each (16 `f32` fill one
/// AVX-512 register).
pub const LANES: usize = 16;

/// The values of one block, one per lane.
pub type Lanes<T> = [T; LANES];

/// The float types of the families (`f32`, `f64`): `num_traits`' [`Float`] with the kernels'
/// branch-free `exp` ([`KernelFloat::exp_k`]) and index conversions that vectorise.
pub trait FamilyFloat: Float + KernelFloat {
    /// `self` truncated toward zero, as an index clamped to `[0, max]` (NaN and negative
    /// values give 0); `max` must fit an `i32`.
    fn index_clamped(self, max: usize) -> usize;
    /// `i` as a float (exact for the indices used here).
    fn from_index(i: usize) -> Self;
}

impl FamilyFloat for f32 {
    #[inline(always)]
    fn index_clamped(self, max: usize) -> usize {
        // Clamped as a float first (`max` with NaN gives 0), so that the conversion needs no
        // saturation and vectorises.
        let v = self.max(0.0).min(max as f32);
        // SAFETY: `v` is finite and within [0, max], and `max` (an interval count, at most
        // `MAX_PIECES`) fits an i32.
        let i: i32 = unsafe { v.to_int_unchecked() };
        (i as usize).min(max)
    }
    #[inline(always)]
    fn from_index(i: usize) -> Self {
        i as f32
    }
}

impl FamilyFloat for f64 {
    #[inline(always)]
    fn index_clamped(self, max: usize) -> usize {
        let v = self.max(0.0).min(max as f64);
        // SAFETY: as for `f32`.
        let i: i32 = unsafe { v.to_int_unchecked() };
        (i as usize).min(max)
    }
    #[inline(always)]
    fn from_index(i: usize) -> Self {
        i as f64
    }
}

/// One learnable activation family, evaluated on scalars.
///
/// Invariants every implementation keeps (checked by the tests of this folder):
/// - `init().len() == n_params()`, and `value` with `init()` is the family's stated start
///   (e.g. PReLU with `a = 0.25`);
/// - `backward` returns `∂g/∂z` and adds `upstream · ∂g/∂pₖ` to `dp[k]` for every `k`,
///   agreeing with central finite differences of `value` in `f64` away from kinks;
/// - in the block forms, a condition selects values, never whether memory is written (a
///   conditional store compiles to a branch per lane, which blocks vectorisation);
/// - `value_lanes`, `value_run` and `backward_lanes` compute the same as `value` and `backward` on each
///   lane, to rounding (the block forms may evaluate in another order, e.g. KAF's Gaussians by
///   a recurrence);
/// - no allocation in any of them (they run once per element or block).
pub trait ScalarFamily: Copy + Send + Sync + 'static {
    /// Number of learnable parameters of one channel.
    fn n_params(&self) -> usize;
    /// The parameters of one channel at the start of training.
    fn init(&self) -> Vec<f64>;
    /// `g(z; p)`.
    fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T;
    /// `∂g/∂z` at `(z, p)`; adds `upstream · ∂g/∂pₖ` to `dp[k]`.
    fn backward<T: FamilyFloat>(&self, z: T, p: &[T], upstream: T, dp: &mut [T]) -> T;
    /// `y[l] = g(x[l]; p)` for the [`LANES`] elements of one block.
    fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>);
    /// `y[i] = g(x[i]; p)` for a run of elements of one channel, of any length: by blocks
    /// through [`ScalarFamily::value_lanes`] (the last one padded). A family whose element
    /// form is a few operations overrides it with a plain loop over the run: the compiler
    /// vectorises that directly, where it would vectorise the loop over blocks of so small a
    /// body across blocks, with gathers and scatters.
    #[inline(always)]
    fn value_run<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        assert_eq!(x.len(), y.len(), "value_run lengths");
        let whole = x.len() / LANES * LANES;
        for (xb, yb) in x[..whole]
            .chunks_exact(LANES)
            .zip(y[..whole].chunks_exact_mut(LANES))
        {
            let xb: &Lanes<T> = xb.try_into().expect("a whole block");
            let yb: &mut Lanes<T> = yb.try_into().expect("a whole block");
            self.value_lanes(xb, p, yb);
        }
        let rest = x.len() - whole;
        if rest > 0 {
            let mut xp = [T::zero(); LANES];
            let mut yp = [T::zero(); LANES];
            xp[..rest].copy_from_slice(&x[whole..]);
            self.value_lanes(&xp, p, &mut yp);
            y[whole..].copy_from_slice(&yp[..rest]);
        }
    }
    /// The backward pass of one block: `g` holds the upstream gradients on entry and
    /// `g[l]·∂g/∂z(x[l])` on return; `acc[k][l] += upstream[l]·∂g/∂pₖ(x[l])` (`acc` has one
    /// row of lanes per parameter).
    fn backward_lanes<T: FamilyFloat>(
        &self,
        x: &Lanes<T>,
        p: &[T],
        g: &mut Lanes<T>,
        acc: &mut [Lanes<T>],
    );
    /// [`ScalarFamily::value_run`] in the kernels' AVX-512 code: a family with hand-written
    /// AVX-512 block code overrides it, giving the same bits as `value_run`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline(always)]
    unsafe fn value_run_avx512<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
        self.value_run(x, p, y)
    }
    /// [`ScalarFamily::backward_blocks`] in the kernels' AVX-512 code: a family with
    /// hand-written AVX-512 block code overrides it, giving the same bits as
    /// `backward_blocks`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline(always)]
    unsafe fn backward_blocks_avx512<T: FamilyFloat>(
        &self,
        x: &[T],
        p: &[T],
        g: &mut [T],
        acc: &mut [Lanes<T>],
    ) {
        self.backward_blocks(x, p, g, acc)
    }
    /// [`ScalarFamily::backward_lanes`] over whole blocks of one channel (`x.len()` a multiple
    /// of [`LANES`]), in block order. A family whose block form needs values derived from the
    /// parameters overrides it to derive them once per call.
    #[inline(always)]
    fn backward_blocks<T: FamilyFloat>(&self, x: &[T], p: &[T], g: &mut [T], acc: &mut [Lanes<T>]) {
        assert_eq!(x.len(), g.len(), "backward_blocks lengths");
        assert_eq!(x.len() % LANES, 0, "backward_blocks takes whole blocks");
        for (xb, gb) in x.chunks_exact(LANES).zip(g.chunks_exact_mut(LANES)) {
            // Local copies: the compiler then knows that the lane accumulators' stores cannot
            // change them (with the slices it reloaded x lane by lane after every accumulator
            // store, and left PAU's row loops scalar).
            let xl: Lanes<T> = xb.try_into().expect("a whole block");
            let mut gl: Lanes<T> = (&*gb).try_into().expect("a whole block");
            self.backward_lanes(&xl, p, &mut gl, acc);
            gb.copy_from_slice(&gl);
        }
    }
}

/// A family type whose sizes are compile-time constants, delegating to the family with those
/// sizes: the same math, with loop bounds the compiler knows, which vectorises the block forms
/// of PAU and PWLU better (the fused op uses these for the default sizes).
macro_rules! fixed_family {
    ($(#[$doc:meta])* $name:ident <$(const $c:ident),*> => $inner:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<$(const $c: usize),*>;

        impl<$(const $c: usize),*> ScalarFamily for $name<$($c),*> {
            fn n_params(&self) -> usize {
                $inner.n_params()
            }
            fn init(&self) -> Vec<f64> {
                $inner.init()
            }
            #[inline(always)]
            fn value<T: FamilyFloat>(&self, z: T, p: &[T]) -> T {
                $inner.value(z, p)
            }
            #[inline(always)]
            fn backward<T: FamilyFloat>(&self, z: T, p: &[T], up: T, dp: &mut [T]) -> T {
                $inner.backward(z, p, up, dp)
            }
            #[inline(always)]
            fn value_lanes<T: FamilyFloat>(&self, x: &Lanes<T>, p: &[T], y: &mut Lanes<T>) {
                $inner.value_lanes(x, p, y)
            }
            #[inline(always)]
            fn value_run<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
                $inner.value_run(x, p, y)
            }
            #[inline(always)]
            fn backward_lanes<T: FamilyFloat>(
                &self,
                x: &Lanes<T>,
                p: &[T],
                g: &mut Lanes<T>,
                acc: &mut [Lanes<T>],
            ) {
                $inner.backward_lanes(x, p, g, acc)
            }
            #[inline(always)]
            fn backward_blocks<T: FamilyFloat>(
                &self,
                x: &[T],
                p: &[T],
                g: &mut [T],
                acc: &mut [Lanes<T>],
            ) {
                $inner.backward_blocks(x, p, g, acc)
            }
            #[inline(always)]
            unsafe fn value_run_avx512<T: FamilyFloat>(&self, x: &[T], p: &[T], y: &mut [T]) {
                // SAFETY: as the caller's.
                unsafe { $inner.value_run_avx512(x, p, y) }
            }
            #[inline(always)]
            unsafe fn backward_blocks_avx512<T: FamilyFloat>(
                &self,
                x: &[T],
                p: &[T],
                g: &mut [T],
                acc: &mut [Lanes<T>],
            ) {
                // SAFETY: as the caller's.
                unsafe { $inner.backward_blocks_avx512(x, p, g, acc) }
            }
        }
    };
}

fixed_family!(
    /// [`Pau`] of degrees `(M, N)` fixed at compile time.
    PauFixed<const M, const N> => Pau { m: M, n: N }
);
fixed_family!(
    /// [`Pwlu`] of `N` intervals fixed at compile time.
    PwluFixed<const N> => Pwlu { n: N }
);
fixed_family!(
    /// [`Apl`] of `S` hinges fixed at compile time.
    AplFixed<const S> => Apl { s: S }
);
fixed_family!(
    /// [`Kaf`] of `D` points fixed at compile time.
    KafFixed<const D> => Kaf { d: D }
);

/// `s` as `f32` values when `T` is `f32`.
// Used by the x86-64 code only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn as_f32<T: FamilyFloat>(s: &[T]) -> Option<&[f32]> {
    (T::IS_F32 && size_of::<T>() == size_of::<f32>())
        // SAFETY: `T` is `f32` (the two float types are `f32` and `f64`; checked by size too).
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// `s` as `f32` values when `T` is `f32`.
// Used by the x86-64 code only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn as_f32_mut<T: FamilyFloat>(s: &mut [T]) -> Option<&mut [f32]> {
    (T::IS_F32 && size_of::<T>() == size_of::<f32>())
        // SAFETY: as for `as_f32`.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
}

/// Lane rows as `f32` lane rows when `T` is `f32`.
// Used by the x86-64 code only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn lanes_as_f32_mut<T: FamilyFloat>(s: &mut [Lanes<T>]) -> Option<&mut [Lanes<f32>]> {
    (T::IS_F32 && size_of::<T>() == size_of::<f32>()).then(|| {
        // SAFETY: as for `as_f32`; `[T; LANES]` is then `[f32; LANES]`.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<Lanes<f32>>(), s.len()) }
    })
}

/// `v` as `T` (every constant of the families is representable in `f32`).
#[inline(always)]
pub(crate) fn c<T: Float>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// Logistic sigmoid `1/(1 + e^(−z))`, branch-free: `exp_k` clamps its argument, so very
/// negative `z` give a tiny positive value (not a NaN) and very positive `z` give 1.
#[inline(always)]
pub(crate) fn sigmoid<T: FamilyFloat>(z: T) -> T {
    T::one() / (T::one() + (-z).exp_k())
}

/// Mish `z·tanh(softplus(z))` and its derivative `t + z·(1 − t²)·σ(z)`, from one `exp`:
/// with `e = exp(z)`, `tanh(ln(1 + e)) = n/(n + 2)` where `n = e·(e + 2)`, and
/// `σ(z) = e/(1 + e)`. Above `z = 20`, `t` and `σ` are 1 to within `f64` rounding, and the
/// result is `(z, 1)`. Branch-free (selects), so loops over it vectorise.
#[inline(always)]
pub(crate) fn mish_and_derivative<T: FamilyFloat>(z: T) -> (T, T) {
    let one = T::one();
    let two = one + one;
    let cap = c::<T>(20.0);
    let e = z.min(cap).exp_k();
    let n = e * (e + two);
    let t = n / (n + two);
    let s = e / (one + e);
    let big = z > cap;
    (
        if big { z } else { z * t },
        if big { one } else { t + z * (one - t * t) * s },
    )
}

/// `n` points evenly spaced on `[lo, hi]` (`n ≥ 2`), or `[(lo + hi) / 2]` for `n = 1`.
pub(crate) fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![0.5 * (lo + hi)];
    }
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks `backward` of `f` at `z` against central finite differences of `value` in `f64`
    /// (input and every parameter), with upstream gradient 0.7.
    pub(crate) fn check_fd<F: ScalarFamily>(f: F, p: &[f64], z: f64, what: &str) {
        let h = 1e-6;
        let up = 0.7;
        let mut dp = vec![0.0; p.len()];
        let dz = f.backward(z, p, up, &mut dp);
        let fd_z = (f.value(z + h, p) - f.value(z - h, p)) / (2.0 * h);
        assert!(
            (dz - fd_z).abs() <= 1e-5 * (1.0 + fd_z.abs()),
            "{what}: ∂g/∂z at z={z}: analytic {dz}, numeric {fd_z}"
        );
        for k in 0..p.len() {
            let (mut pp, mut pm) = (p.to_vec(), p.to_vec());
            pp[k] += h;
            pm[k] -= h;
            let fd = up * (f.value(z, &pp) - f.value(z, &pm)) / (2.0 * h);
            assert!(
                (dp[k] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{what}: ∂g/∂p[{k}] at z={z}: analytic {}, numeric {fd}",
                dp[k]
            );
        }
    }

    /// Inputs for finite-difference checks: spread over [-5, 5] and beyond, none on the
    /// families' kinks at 0, at the APL hinges (multiples of 0.5 on [-2, 2]) or at the PWLU
    /// grid points (integers on [-3, 3]).
    pub(crate) const ZS: [f64; 12] = [
        -7.3, -4.1, -2.93, -1.77, -0.61, -0.13, 0.07, 0.38, 1.21, 2.29, 3.6, 8.2,
    ];

    /// Perturbs `p` deterministically so that checks also run away from the start.
    pub(crate) fn perturbed(p: &[f64]) -> Vec<f64> {
        p.iter()
            .enumerate()
            .map(|(i, v)| v + 0.05 * ((i as f64) * 1.7 + 0.3).sin())
            .collect()
    }

    /// Runs the finite-difference check at every `ZS` input, at the start and perturbed.
    pub(crate) fn check_family<F: ScalarFamily>(f: F, name: &str) {
        check_family_from(f, name, true)
    }

    /// As [`check_family`]; `at_start: false` skips the start itself (for a start with
    /// parameters within the finite-difference step of a kink, such as PAU's published
    /// denominator coefficients of order 1e-6 inside `|bₖ|`).
    pub(crate) fn check_family_from<F: ScalarFamily>(f: F, name: &str, at_start: bool) {
        let p0 = f.init();
        assert_eq!(p0.len(), f.n_params(), "{name}: init length");
        let sets = if at_start {
            vec![p0.clone(), perturbed(&p0)]
        } else {
            vec![perturbed(&p0)]
        };
        for p in sets {
            for z in ZS {
                check_fd(f, &p, z, name);
            }
        }
        // f32 agrees with f64.
        let p32: Vec<f32> = p0.iter().map(|&v| v as f32).collect();
        for z in ZS {
            let a = f64::from(f.value(z as f32, &p32));
            let b = f.value(z, &p0);
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{name} f32 at {z}");
        }
        for p in [p0.clone(), perturbed(&p0)] {
            check_lanes::<F, f64>(f, &p, 1e-12, name);
            check_lanes::<F, f32>(f, &p, 2e-5, name);
        }
    }

    /// Inputs of the block-form checks: the `ZS`, a sweep of [−12, 12] and far-out values, in
    /// whole blocks.
    fn lane_inputs() -> Vec<f64> {
        let mut zs: Vec<f64> = ZS.to_vec();
        zs.extend((0..97).map(|i| -12.0 + 24.0 * i as f64 / 96.0));
        zs.extend([-1e4, -300.0, -40.0, 0.0, 40.0, 300.0, 1e4]);
        let whole = zs.len().div_ceil(LANES) * LANES;
        zs.extend((zs.len()..whole).map(|i| 0.37 * i as f64 - 20.0));
        zs
    }

    /// Checks the block forms against the element forms in `T` (values, input gradients and
    /// parameter gradients, to `tol` relative to `1 + |element form|`).
    pub(crate) fn check_lanes<F: ScalarFamily, T: FamilyFloat + std::fmt::Debug>(
        f: F,
        p: &[f64],
        tol: f64,
        name: &str,
    ) {
        let p: Vec<T> = p.iter().map(|&v| c(v)).collect();
        let close = |a: T, b: T, what: &str, z: f64| {
            let (a, b) = (KernelFloat::to_f64(a), KernelFloat::to_f64(b));
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{name} block form, {what} at z={z}: {a} vs element form {b}"
            );
        };
        for block in lane_inputs().chunks(LANES) {
            let x: Lanes<T> = std::array::from_fn(|l| c(block[l]));
            let up: Lanes<T> = std::array::from_fn(|l| c(0.9 - 0.13 * l as f64));
            let mut y = [T::zero(); LANES];
            f.value_lanes(&x, &p, &mut y);
            let mut g = up;
            let mut acc = vec![[T::zero(); LANES]; p.len()];
            f.backward_lanes(&x, &p, &mut g, &mut acc);
            for l in 0..LANES {
                let z = block[l];
                close(y[l], f.value(x[l], &p), "value", z);
                let mut dp = vec![T::zero(); p.len()];
                let dz = f.backward(x[l], &p, up[l], &mut dp);
                close(g[l], up[l] * dz, "input gradient", z);
                for (k, d) in dp.iter().enumerate() {
                    close(acc[k][l], *d, &format!("gradient of parameter {k}"), z);
                }
            }
        }
    }

    /// Checks that the run forms (`value_run`, `backward_blocks`: what the kernel calls, which
    /// may take several blocks side by side) give the bits of the one-block forms applied block
    /// by block, in `f32`: values (with a partial last block), input gradients and parameter
    /// gradients.
    pub(crate) fn check_runs_match_blocks<F: ScalarFamily>(f: F, name: &str) {
        let p: Vec<f32> = perturbed(&f.init()).iter().map(|&v| v as f32).collect();
        let n = 5 * LANES; // two pairs and a single block
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 97) as f32 - 48.0) * 0.09)
            .collect();
        let gy: Vec<f32> = (0..n)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) * 0.02)
            .collect();
        let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
        let mut acc_one = vec![[0.0f32; LANES]; p.len()];
        let mut y_one = vec![0.0f32; n];
        let mut g_one = gy.clone();
        for b in 0..n / LANES {
            let r = b * LANES..(b + 1) * LANES;
            let xb: Lanes<f32> = x[r.clone()].try_into().expect("a block");
            let mut yb = [0.0f32; LANES];
            f.value_lanes(&xb, &p, &mut yb);
            y_one[r.clone()].copy_from_slice(&yb);
            let mut gb: Lanes<f32> = gy[r.clone()].try_into().expect("a block");
            f.backward_lanes(&xb, &p, &mut gb, &mut acc_one);
            g_one[r].copy_from_slice(&gb);
        }
        for len in [n, n - 5] {
            let mut y_run = vec![0.0f32; len];
            f.value_run(&x[..len], &p, &mut y_run);
            assert_eq!(
                bits(&y_run),
                bits(&y_one[..len]),
                "{name} value_run, {len} elements"
            );
        }
        let mut acc_run = vec![[0.0f32; LANES]; p.len()];
        let mut g_run = gy.clone();
        f.backward_blocks(&x, &p, &mut g_run, &mut acc_run);
        assert_eq!(bits(&g_run), bits(&g_one), "{name} input gradients");
        assert_eq!(
            bits(acc_run.as_flattened()),
            bits(acc_one.as_flattened()),
            "{name} parameter gradients"
        );
    }

    #[test]
    fn run_forms_give_the_bits_of_block_forms() {
        check_runs_match_blocks(Prelu, "prelu");
        check_runs_match_blocks(SwishBeta, "swish-beta");
        check_runs_match_blocks(Pmish, "pmish");
        check_runs_match_blocks(Pau { m: 5, n: 4 }, "pau");
        check_runs_match_blocks(Pau { m: 3, n: 2 }, "pau-3-2");
        check_runs_match_blocks(PauFixed::<5, 4>, "pau fixed");
        check_runs_match_blocks(Pwlu { n: 16 }, "pwlu-16");
        check_runs_match_blocks(Apl { s: 5 }, "apl-5");
        for d in [20, 7, 45] {
            check_runs_match_blocks(Kaf { d }, &format!("kaf-{d}"));
        }
        check_runs_match_blocks(KafFixed::<20>, "kaf fixed");
    }

    #[test]
    fn mish_derivative_matches_fd() {
        for z in ZS {
            let h = 1e-6;
            let fd = (mish_and_derivative(z + h).0 - mish_and_derivative(z - h).0) / (2.0 * h);
            assert!((mish_and_derivative(z).1 - fd).abs() < 1e-6);
        }
    }

    #[test]
    fn helpers_are_finite_far_out() {
        for z in [-1e4f64, -100.0, 100.0, 1e4] {
            assert!(sigmoid(z).is_finite());
            let (m, d) = mish_and_derivative(z);
            assert!(m.is_finite() && d.is_finite(), "{z}");
        }
    }
}
