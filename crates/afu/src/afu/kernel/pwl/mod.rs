//! Relu-family AFUs (linear, relu, leaky-relu) as exact piecewise-linear functions, and the
//! choice between their portable and AVX-512 kernels.
//!
//! With `ψ(u) = u` for `u > 0` and `α·u` otherwise, `G(x) = Σ w1ᵢ·ψ(w0ᵢ·x + b0ᵢ) + b1` is
//! `A_j·x + B_j` on each interval `j` between the units' exact thresholds ([`table`]). One
//! interval lookup per element gives `y` and `G'`; the parameter gradients come from
//! per-interval sums of `gy` and `gy·x`: the cost hardly depends on `N`.
//!
//! Modules below this one, none of which imports this one or each other's callers:
//! - [`table`]: the table of one channel, its thresholds and gradients (portable);
//! - [`portable`]: the lookup kernels for any float type on any CPU;
//! - `avx512`: the lookup kernels, threshold finding and key sort for `f32` on AVX-512.
//!
//! This module dispatches between them: the AVX-512 code runs where [`Isa::Native`] is asked
//! for, `T` is `f32`, the CPU has AVX-512 F, VL, BW and DQ, and the channel has at most
//! `avx512::MAX_THRESHOLDS` units; the portable code everywhere else. Both give the same
//! tables and the same `y` and `gx` bit for bit; the parameter gradients agree to rounding
//! (the vector kernels sum `gy·x` in `f32` per element and in another order).

pub(super) mod portable;
pub(super) mod table;

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(all(test, target_arch = "x86_64"))]
mod avx512_tests;

use std::sync::OnceLock;

use self::portable::{backward_run, forward_run};
use self::table::{ChannelGrads, IntervalSums, PwlTable};
use super::isa::Isa;
use super::layout::{Layout, ParamGrads, ParamSlices};
use super::pool::par_map;
use super::shared::SharedMut;
use super::work::{Item, for_each_run, with_item_runs};
use crate::ops::float::KernelFloat;

/// True when the AVX-512 code serves `T` under `isa` on this CPU: [`Isa::Native`], `T` is
/// `f32`, and the CPU has AVX-512 F, VL, BW and DQ.
fn avx512_serves<T: KernelFloat>(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa == Isa::Native && avx512::FastTable::available::<T>()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        false
    }
}

/// The tables of every channel, with their AVX-512 forms where [`avx512_serves`]. With
/// several channels, each one's is built on first use, by the work item that needs it: the
/// building is then spread over the threads with the kernels' own work (a parallel loop of its
/// own mostly ran on the calling thread while the others woke up).
pub(super) struct Tables<T> {
    alpha: f64,
    /// The paths that build the tables (and, through `vectorised`, run the lookups).
    isa: Isa,
    /// Whether the vector kernels serve these tables (decided before any is built).
    vectorised: bool,
    built: Vec<OnceLock<Built<T>>>,
}

/// Fewest channels whose tables are built on first use rather than by [`Tables::new`].
const LAZY_TABLES_MIN: usize = 4;

/// One channel's table, and its vector forms when [`Tables`] is vectorised.
struct Built<T> {
    table: PwlTable<T>,
    #[cfg(target_arch = "x86_64")]
    fast: Option<avx512::FastTable>,
}

impl<T: KernelFloat> Tables<T> {
    /// Tables for the `channels` channels of `p` (built later, on first use) on the paths of
    /// `isa`; `None` when some parameter is not finite.
    pub(super) fn new(p: &ParamSlices<T>, channels: usize, alpha: f64, isa: Isa) -> Option<Self> {
        let finite = |v: &[T]| v.iter().all(|x| x.is_finite_k());
        if !(finite(p.w0) && finite(p.b0) && finite(p.w1) && finite(p.b1)) {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let vectorised = avx512_serves::<T>(isa) && p.hidden <= avx512::MAX_THRESHOLDS;
        #[cfg(not(target_arch = "x86_64"))]
        let vectorised = false;
        let tables = Tables {
            alpha,
            isa,
            vectorised,
            built: (0..channels).map(|_| OnceLock::new()).collect(),
        };
        // A few channels are built here, at once: built by the work items, they would keep the
        // other threads waiting (all the items of one channel start together).
        if channels < LAZY_TABLES_MIN {
            for c in 0..channels {
                tables.channel(p, c);
            }
        }
        Some(tables)
    }

    /// True when the vectorised (AVX-512) kernels serve these tables.
    pub(super) fn vectorised(&self) -> bool {
        self.vectorised
    }

    /// Channel `c`'s table (built from `p`, the parameters [`Tables::new`] was given, on first
    /// use).
    fn channel(&self, p: &ParamSlices<T>, c: usize) -> &Built<T> {
        self.built[c].get_or_init(|| {
            // Finite parameters (checked by `new`) always have a table: every unit with
            // w0 ≠ 0 has a threshold.
            let table = PwlTable::new(p, c, self.alpha, |w0, b0, alpha| {
                sorted_thresholds(w0, b0, alpha, self.isa)
            })
            .expect("finite parameters always have a piecewise-linear table");
            Built {
                #[cfg(target_arch = "x86_64")]
                fast: self
                    .vectorised
                    .then(|| avx512::FastTable::new(&table))
                    .flatten(),
                table,
            }
        })
    }
}

/// The units that have a threshold (`w0 ≠ 0`, a base with a kink), sorted by threshold and
/// then by unit, and their thresholds; `None` when some `w0` or `b0` is not finite or some
/// threshold cannot be found. Where [`avx512_serves`], the sort keys are built 16 units at a
/// time and sorted by the vector network (up to `avx512::SORT_MAX` units), or the direct
/// thresholds come 16 at a time (more units); else unit by unit, by bisection and the
/// standard sort. Every way gives the same result.
fn sorted_thresholds<T: KernelFloat>(
    w0: &[T],
    b0: &[T],
    alpha: f64,
    isa: Isa,
) -> Option<(Vec<usize>, Vec<T>)> {
    #[cfg(target_arch = "x86_64")]
    if w0.len() <= avx512::SORT_MAX && avx512_serves::<T>(isa) {
        thread_local! {
            /// This thread's buffer for the sort keys, reused from one table to the next.
            static KEYS: std::cell::Cell<Vec<u64>> = const { std::cell::Cell::new(Vec::new()) };
        }
        // The keys of `table::sort_by_threshold_then_unit` built 16 units at a time, and
        // sorted by the vector network.
        let mut keys = KEYS.take();
        keys.clear();
        let mut rest = Vec::new();
        // SAFETY: T is f32 (`avx512_serves`), so the slices are f32 slices, and the CPU has the
        // features the kernel needs; fewer than 2³² units.
        let finite = unsafe {
            let f32s = |v: &[T]| std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len());
            avx512::threshold_keys(f32s(w0), f32s(b0), &mut keys, &mut rest)
        };
        let sorted = (|| {
            if !finite {
                return None;
            }
            if alpha == 1.0 {
                return Some((Vec::new(), Vec::new()));
            }
            for i in rest {
                keys.push(table::threshold_key(
                    table::threshold(w0[i], b0[i])?.to_ordered(),
                    i,
                ));
            }
            sort_keys::<T>(&mut keys, isa);
            let units = keys.iter().map(|&key| key as u32 as usize).collect();
            let thresholds = keys
                .iter()
                .map(|&key| T::from_ordered(table::key_threshold(key)))
                .collect();
            Some((units, thresholds))
        })();
        KEYS.set(keys);
        return sorted;
    }
    table::sorted_thresholds_by_unit(w0, b0, alpha, &direct_thresholds(w0, b0, isa), |keys| {
        sort_keys::<T>(keys, isa)
    })
}

/// The thresholds the vector kernels find directly (see `avx512::thresholds`), one per unit
/// (`None`: bisect), or nothing where they do not serve `T` (see [`avx512_serves`]).
fn direct_thresholds<T: KernelFloat>(w0: &[T], b0: &[T], isa: Isa) -> Vec<Option<T>> {
    #[cfg(target_arch = "x86_64")]
    if avx512_serves::<T>(isa) {
        let mut out = vec![None; w0.len()];
        // SAFETY: T is f32 (`avx512_serves`), so the slices are f32 slices, and the CPU has the
        // features the kernel needs.
        unsafe {
            let f32s = |v: &[T]| std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len());
            let out32 =
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<Option<f32>>(), out.len());
            avx512::thresholds(f32s(w0), f32s(b0), out32);
        }
        return out;
    }
    let _ = (w0, b0, isa);
    Vec::new()
}

/// Sorts `f32` keys (see `table::sort_by_threshold_then_unit`): by the vector network where
/// it serves (see [`avx512_serves`]) and they are few enough, else by the standard sort (the
/// same order: keys are distinct).
fn sort_keys<T: KernelFloat>(keys: &mut [u64], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if keys.len() <= avx512::SORT_MAX && avx512_serves::<T>(isa) {
        // SAFETY: `avx512_serves` checked the CPU's features.
        unsafe { avx512::sort_keys(keys) };
        return;
    }
    let _ = isa;
    keys.sort_unstable();
}

/// `y = G(x)` over the work items `items` of `layout`.
///
/// # Panics
/// If `x` or `out` does not have `layout`'s size.
pub(super) fn forward<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    items: &[Item],
    p: &ParamSlices<T>,
    tables: &Tables<T>,
    out: SharedMut<'_, T>,
) {
    assert!(x.len() == layout.len() && out.len() == layout.len());
    par_map(items.len(), |i| {
        let item = items[i];
        let built = tables.channel(p, item.channel);
        // SAFETY: runs of different items are disjoint and within `x` and `out` (their sizes
        // were checked); `out` is initialised unless it was made by `SharedMut::from_uninit`,
        // whose caller lets only the vector kernels write it (see `forward_built`).
        with_item_runs(layout, item, |runs| unsafe {
            forward_built(built, x, runs, out)
        });
    });
}

/// `y = G(x)` over `runs` with one channel's tables: the vector kernel where it has one, else
/// the portable loop.
///
/// # Safety
/// The runs must lie within `x` and the buffer behind `out`, and no other thread may access
/// those elements of it; without a vector table that buffer must be initialised (see
/// `cpu::forward_prepared_into`: it is whenever the tables are not vectorised).
unsafe fn forward_built<T: KernelFloat>(
    built: &Built<T>,
    x: &[T],
    runs: &[(usize, usize)],
    out: SharedMut<'_, T>,
) {
    debug_assert!(runs.iter().all(|&(off, len)| off + len <= out.len()));
    #[cfg(target_arch = "x86_64")]
    if let Some(fast) = &built.fast {
        // SAFETY: `fast` exists only when T is f32 and the CPU has AVX-512; the rest is the
        // caller's contract.
        unsafe { avx512::forward_runs(fast, x, out.as_mut_ptr(), runs) };
        return;
    }
    for &(off, len) in runs {
        // SAFETY: caller's contract.
        let ys = unsafe { out.slice(off, len) };
        forward_run(&built.table, &x[off..off + len], ys);
    }
}

/// `gx = gy·G'(x)` in place over all work items, and the parameter gradients.
///
/// Each item leaves its per-interval sums; the last of a channel's items to finish adds that
/// channel's sums up, in item order (the same bits whichever thread does it), and turns them
/// into the channel's gradients. The channels are thus finished inside the parallel loop, as
/// their items complete, rather than one after the other once it is over (when one thread
/// would do them while the others wait).
///
/// # Panics
/// If `x` or `out` does not have `layout`'s size.
pub(super) fn backward<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    items: &[Item],
    p: &ParamSlices<T>,
    tables: &Tables<T>,
    out: SharedMut<'_, T>,
) -> ParamGrads<T> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    assert!(x.len() == layout.len() && out.len() == layout.len());
    let partials: Vec<OnceLock<IntervalSums>> = items.iter().map(|_| OnceLock::new()).collect();
    let mut per_channel = vec![0usize; layout.channels];
    for item in items {
        per_channel[item.channel] += 1;
    }
    let unfinished: Vec<AtomicUsize> = per_channel.into_iter().map(AtomicUsize::new).collect();
    let n = p.hidden;
    let mut grads = ParamGrads::zeros(layout.channels, n);
    let outs = [
        SharedMut::new(&mut grads.w0),
        SharedMut::new(&mut grads.b0),
        SharedMut::new(&mut grads.w1),
        SharedMut::new(&mut grads.b1),
    ];
    par_map(items.len(), |i| {
        let item = items[i];
        let c = item.channel;
        let built = tables.channel(p, c);
        let table = &built.table;
        let sums = item_sums(x, layout, item, built, out);
        if partials[i].set(sums).is_err() {
            unreachable!("each work item runs once");
        }
        // AcqRel: the last item sees every other item's partial sums of its channel.
        if unfinished[c].fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut parts = items
            .iter()
            .zip(&partials)
            .filter(|(other, _)| other.channel == c)
            .map(|(_, part)| part.get().expect("every item of the channel has finished"));
        let first = parts.next().expect("the channel has this item");
        let mut total = None::<IntervalSums>;
        for part in parts {
            total.get_or_insert_with(|| first.clone()).add(part);
        }
        // SAFETY: channel c's gradients (within the zero-initialised buffers) are written by
        // its last item alone, once.
        let out = unsafe {
            ChannelGrads {
                w0: outs[0].slice(c * n, n),
                b0: outs[1].slice(c * n, n),
                w1: outs[2].slice(c * n, n),
                b1: &mut outs[3].slice(c, 1)[0],
            }
        };
        table.finish(p, c, tables.alpha, total.as_ref().unwrap_or(first), out);
    });
    grads
}

/// One work item's backward pass: `gx` in place of its elements' `gy`, and its per-interval
/// sums.
fn item_sums<T: KernelFloat>(
    x: &[T],
    layout: Layout,
    item: Item,
    built: &Built<T>,
    out: SharedMut<'_, T>,
) -> IntervalSums {
    let table = &built.table;
    #[cfg(target_arch = "x86_64")]
    if let Some(fast) = &built.fast {
        thread_local! {
            /// This thread's histogram buffer, handed from one work item to the next.
            static SPARE: std::cell::Cell<Vec<[f64; 2]>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut acc = avx512::Accumulator::new(fast, SPARE.take());
        // SAFETY: runs of different items are disjoint and within `x` and `out`; `fast`
        // exists only when T is f32 and the CPU has AVX-512.
        with_item_runs(layout, item, |runs| unsafe {
            avx512::backward_runs(fast, x, out.as_mut_ptr(), runs, &mut acc)
        });
        let (sums, spare) = acc.into_sums(table.a.len());
        SPARE.set(spare);
        return sums;
    }
    let mut sums = IntervalSums::new(table.a.len());
    for_each_run(layout, item, |off, len| {
        // SAFETY: runs of different items are disjoint and within `out`.
        let gs = unsafe { out.slice(off, len) };
        backward_run(table, &x[off..off + len], gs, &mut sums);
    });
    sums
}

#[cfg(test)]
mod tests {
    use super::table::threshold;
    use super::*;
    use rand::{Rng, SeedableRng};

    /// True when this CPU runs the AVX-512 code; else prints why a test compares less.
    fn avx512_here(test: &str) -> bool {
        let here = avx512_serves::<f32>(Isa::Native);
        if !here {
            println!("{test}: no AVX-512 (F, VL, BW, DQ) on this CPU: only the portable path ran");
        }
        here
    }

    /// The vector sort of threshold keys gives the standard sort's order, at every count up to
    /// its limit (partial vectors, every power of two) and past it (the fallback), on keys with
    /// equal high halves (coinciding thresholds) and extreme values.
    #[test]
    fn key_sort_matches_the_standard_sort() {
        avx512_here("key_sort_matches_the_standard_sort");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in (0..=40).chain([63, 64, 65, 127, 128, 129, 255, 256, 300, 511, 512, 513, 700]) {
            let mut keys: Vec<u64> = (0..n)
                .map(|i| match rng.random_range(0..4) {
                    0 => (u64::from(rng.random_range(0..4u32)) << 32) | i as u64,
                    1 => (u64::from(u32::MAX) << 32) | i as u64,
                    _ => (u64::from(rng.random::<u32>()) << 32) | i as u64,
                })
                .collect();
            let mut expected = keys.clone();
            expected.sort_unstable();
            sort_keys::<f32>(&mut keys, Isa::Native);
            assert_eq!(keys, expected, "n={n}");
        }
    }

    /// The vector path of the sorted thresholds (keys built 16 units at a time, the sorting
    /// network) gives what the unit-by-unit path does (with the direct thresholds and the
    /// vector sort, and fully portable: bisection and the standard sort), on random
    /// parameters, special values (zeros, infinities, NaN: no table), coinciding thresholds and
    /// odd counts.
    #[test]
    fn sorted_thresholds_match_the_portable_path() {
        avx512_here("sorted_thresholds_match_the_portable_path");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for n in [1usize, 3, 16, 17, 40, 128, 129, 300, 512, 513] {
            for case in 0..6 {
                let mut w0: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
                let mut b0: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
                match case {
                    1 => w0[n / 2] = 0.0,
                    2 => b0[n - 1] = f32::INFINITY,
                    3 => w0[0] = f32::NAN,
                    4 => {
                        // Coinciding thresholds, and huge and tiny slopes.
                        for i in (0..n).step_by(3) {
                            (w0[i], b0[i]) = (2.0, -1.0);
                        }
                        w0[n - 1] = 1e-30;
                        b0[0] = 3e30;
                    }
                    _ => {}
                }
                let bits = |r: Option<(Vec<usize>, Vec<f32>)>| {
                    r.map(|(u, t)| (u, t.iter().map(|t| t.to_bits()).collect::<Vec<_>>()))
                };
                for alpha in [0.0, 0.01, 1.0] {
                    let native = bits(sorted_thresholds(&w0, &b0, alpha, Isa::Native));
                    let by_unit = bits(table::sorted_thresholds_by_unit(
                        &w0,
                        &b0,
                        alpha,
                        &direct_thresholds(&w0, &b0, Isa::Native),
                        |keys| sort_keys::<f32>(keys, Isa::Native),
                    ));
                    assert_eq!(native, by_unit, "n={n} case={case} alpha={alpha}");
                    let portable = bits(sorted_thresholds(&w0, &b0, alpha, Isa::Portable));
                    assert_eq!(native, portable, "n={n} case={case} alpha={alpha}");
                }
            }
        }
    }

    /// The vector kernels' direct thresholds are the bisection's, bit for bit, wherever they
    /// give one (and they give one for ordinary parameters), on parameters of every scale and
    /// the awkward ones (zero, signed zeros, subnormals, infinities, NaN, roots past the
    /// largest float), at odd counts (partial vectors).
    #[test]
    fn direct_thresholds_are_the_bisections() {
        if !avx512_here("direct_thresholds_are_the_bisections") {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let special = [
            0.0f32,
            -0.0,
            1e-45,
            -1e-45,
            1e-38,
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0,
            -1.0,
        ];
        for n in [1usize, 15, 16, 17, 200, 1001] {
            let mut draw = |k: usize| -> f32 {
                if k % 7 == 3 {
                    special[rng.random_range(0..special.len())]
                } else {
                    (rng.random_range(-3.0f64..3.0) * 10f64.powi(rng.random_range(-20..20))) as f32
                }
            };
            let w0: Vec<f32> = (0..n).map(&mut draw).collect();
            let b0: Vec<f32> = (0..n).map(|k| draw(k + 1)).collect();
            let fast = direct_thresholds(&w0, &b0, Isa::Native);
            assert_eq!(fast.len(), n);
            let mut direct = 0;
            for i in 0..n {
                if let Some(t) = fast[i] {
                    direct += 1;
                    let bisected = threshold(w0[i], b0[i]).map(f32::to_bits);
                    assert_eq!(
                        Some(t.to_bits()),
                        bisected,
                        "w0 = {:e}, b0 = {:e}",
                        w0[i],
                        b0[i]
                    );
                }
            }
            // Most units are ordinary ones (6 in 7 are drawn without specials).
            assert!(direct * 2 >= n, "{direct} of {n} found directly");
        }
        // Ordinary units: all direct.
        let w0: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37 + 0.1).sin()).collect();
        let b0: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.71).cos()).collect();
        let fast = direct_thresholds(&w0, &b0, Isa::Native);
        for i in 0..64 {
            assert_eq!(fast[i], threshold(w0[i], b0[i]), "unit {i}");
        }
        assert!(fast.iter().all(Option::is_some));
        // The portable path has none: every threshold by bisection.
        assert!(direct_thresholds(&w0, &b0, Isa::Portable).is_empty());
    }
}
