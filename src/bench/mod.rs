//! Benchmarks printed side by side from one run: `afu bench kernels` (the AFU kernel against
//! Burn's relu and the plain-ops AFU, with peak memory) and `afu bench cnn-step` (training steps
//! with Burn's ops against afu's, see [`cnn_step`]).

pub mod cnn_step;
pub mod families;
pub mod host;
pub mod torch_kernels;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::afu::{AfuConfig, BaseActivation, KernelChoice};

// Signed: counting starts after the process has allocated, so frees of earlier blocks may take
// the count below zero; only differences from a starting point are ever read.
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Turns allocation counting on (the benchmarks call it; other commands never pay for it beyond
/// one relaxed load per allocation).
pub fn count_allocations() {
    COUNTING.store(true, Ordering::Relaxed);
}

fn add(bytes: usize) {
    let now = CURRENT.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn sub(bytes: usize) {
    CURRENT.fetch_sub(bytes as isize, Ordering::Relaxed);
}

/// A global allocator that counts live bytes and their peak once [`count_allocations`] is called
/// (install it in a binary with `#[global_allocator]`); counting costs two atomic operations per
/// allocation, not counting one relaxed load.
pub struct CountingAlloc;

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            add(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            sub(layout.size());
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            sub(layout.size());
            add(new_size);
        }
        p
    }
}

/// Starts a peak measurement; returns the bytes live now.
fn reset_peak() -> isize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Settings of the kernel benchmark.
#[derive(Debug, Clone)]
pub struct KernelBenchConfig {
    /// Input shape `[batch, channels, h, w]` (default: conv1 output of the MNIST CNN, 64×32×26×26).
    pub shape: [usize; 4],
    /// Timed repetitions per case (the median is reported); the slow plain-ops cases use at
    /// most 7 (N ≤ 32) or 3 (N > 32).
    pub reps: usize,
    /// Hidden-unit counts.
    pub hidden: Vec<usize>,
    /// Base activations.
    pub bases: Vec<BaseActivation>,
    /// Also time the plain-ops AFU (slow: seconds per pass at N=128).
    pub plain_ops: bool,
}

impl Default for KernelBenchConfig {
    fn default() -> Self {
        KernelBenchConfig {
            shape: [64, 32, 26, 26],
            reps: 21,
            hidden: vec![8, 128],
            bases: vec![
                BaseActivation::Relu,
                BaseActivation::Sigmoid,
                BaseActivation::Mish,
            ],
            plain_ops: true,
        }
    }
}

/// One measured case.
#[derive(Debug, Clone, Serialize)]
pub struct BenchCase {
    /// `burn relu`, or `afu <impl> <base> N=<n> <sharing>`.
    pub name: String,
    /// Median forward+backward milliseconds.
    pub median_ms: f64,
    /// Timed passes the median is of.
    pub reps: usize,
    /// `median_ms` / Burn relu's.
    pub ratio_to_relu: f64,
    /// Peak bytes allocated above the live bytes at the start of the pass.
    pub peak_extra_bytes: usize,
    /// `peak_extra_bytes` / Burn relu's.
    pub memory_ratio_to_relu: f64,
}

/// All cases of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Input shape.
    pub shape: [usize; 4],
    /// Elements.
    pub elements: usize,
    /// Threads in the rayon pool.
    pub threads: usize,
    /// The cases.
    pub cases: Vec<BenchCase>,
}

/// One forward+backward pass of `L = Σ g·f(x)` (a dense upstream gradient `g`, as in training);
/// returns (seconds, peak extra bytes).
fn measure(x: &Tensor<4>, g: &Tensor<4>, f: &dyn Fn(Tensor<4>) -> Tensor<4>) -> (f64, usize) {
    let x = x.clone().detach().require_grad();
    let _ = x.device().sync();
    let base = reset_peak();
    let t = Instant::now();
    let y = f(x.clone());
    let grads = y.mul(g.clone()).sum().backward();
    let gx = x.grad(&grads);
    // Wait for every queued operation, so the time is the work, not its submission.
    let _ = x.device().sync();
    let secs = t.elapsed().as_secs_f64();
    let peak = (PEAK.load(Ordering::Relaxed) - base).max(0) as usize;
    drop((gx, grads));
    (secs, peak)
}

/// The median (upper one for an even count; NaN for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs every case. `report` is called after each one (for live output).
///
/// Burn's relu and the relu-family fused AFUs (a few times relu's cost) are timed interleaved,
/// one timed pass of each per round, so that a slow spell of this shared machine falls on all
/// of them alike rather than on whichever case ran through it (their ratios to relu are what
/// the targets are about). The smooth bases' fused AFUs (tens of ms per pass; in the rounds,
/// Burn's relu measured 0.73–0.76 ms against 0.58–0.65 without them) and then the plain-ops AFUs
/// follow, each case on its own: a plain-ops pass allocates hundreds of MB to GB, and the
/// allocator state it leaves behind (freed, trimmed, re-faulted pages) would otherwise be timed
/// with the fast cases.
pub fn run_kernels(config: &KernelBenchConfig, mut report: impl FnMut(&BenchCase)) -> BenchReport {
    count_allocations();
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random(config.shape, Distribution::Normal(0.0, 1.0), &device);
    let g = Tensor::<4>::random(
        config.shape,
        Distribution::Normal(0.0, 1.0),
        &device.clone().inner(),
    );
    let channels = config.shape[1];
    let mut afus = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for &n in &config.hidden {
        for &base in &config.bases {
            for (sharing, c) in [("shared", 1), ("per-channel", channels)] {
                if let Ok(afu) = AfuConfig::new(n)
                    .with_base(base)
                    .with_channels(c)
                    .init(&mut rng, &device)
                {
                    afus.push((format!("{base} N={n} {sharing}"), n, afu));
                }
            }
        }
    }
    type Pass<'a> = Box<dyn Fn(Tensor<4>) -> Tensor<4> + 'a>;
    let case = |name: String, times: Vec<f64>, peak: usize, relu: Option<(f64, usize)>| {
        let reps = times.len();
        let ms = median(times) * 1e3;
        let (relu_ms, relu_peak) = relu.unwrap_or((ms, peak));
        BenchCase {
            name,
            median_ms: ms,
            reps,
            ratio_to_relu: ms / relu_ms,
            peak_extra_bytes: peak,
            memory_ratio_to_relu: peak as f64 / relu_peak.max(1) as f64,
        }
    };
    // One case timed alone: a warm-up pass, then `reps` timed ones.
    let alone = |f: &dyn Fn(Tensor<4>) -> Tensor<4>, reps: usize| {
        measure(&x, &g, f);
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..reps.max(1) {
            let (t, p) = measure(&x, &g, f);
            times.push(t);
            peak = peak.max(p);
        }
        (times, peak)
    };
    // Burn's relu and the relu-family fused AFUs, round by round.
    let mut rounds: Vec<(String, Pass)> = vec![(
        "burn relu".into(),
        Box::new(burn::tensor::activation::relu::<4>),
    )];
    let mut smooth: Vec<(String, Pass)> = Vec::new();
    for (name, _, afu) in &afus {
        let base = afu.params().base;
        let afu = afu.clone().with_kernel(KernelChoice::Fused);
        let pass: (String, Pass) = (
            format!("afu fused {name}"),
            Box::new(move |t| afu.forward(t)),
        );
        if base.is_piecewise_linear() {
            rounds.push(pass);
        } else {
            smooth.push(pass);
        }
    }
    let mut times = vec![Vec::new(); rounds.len()];
    let mut peaks = vec![0; rounds.len()];
    for _ in 0..config.reps.max(1) {
        for (k, (_, f)) in rounds.iter().enumerate() {
            // Each timed pass follows an untimed pass of the same case, so that it starts from
            // that case's own steady state (its buffers reused, its data in the caches) as in a
            // loop of it alone: right after another case, Burn's relu measured ~9 % slower
            // (0.62–0.65 against 0.56–0.60 ms) and the AFU cases ~1–3 %.
            measure(&x, &g, f);
            let (t, p) = measure(&x, &g, f);
            times[k].push(t);
            peaks[k] = peaks[k].max(p);
        }
    }
    let mut cases: Vec<BenchCase> = Vec::new();
    let mut relu_ref = None;
    for ((name, _), (times, peak)) in rounds.into_iter().zip(times.into_iter().zip(peaks)) {
        let c = case(name, times, peak, relu_ref);
        relu_ref = relu_ref.or(Some((c.median_ms, c.peak_extra_bytes)));
        report(&c);
        cases.push(c);
    }
    // The smooth bases' fused AFUs (tens of ms per pass), then the plain-ops AFUs, one after
    // the other.
    for (name, f) in &smooth {
        let (times, peak) = alone(f, config.reps);
        let c = case(name.clone(), times, peak, relu_ref);
        report(&c);
        cases.push(c);
    }
    if config.plain_ops {
        for (name, n, afu) in &afus {
            let afu = afu.clone().with_kernel(KernelChoice::Reference);
            let reps = config.reps.min(if *n > 32 { 3 } else { 7 });
            let (times, peak) = alone(&|t| afu.forward(t), reps);
            let c = case(format!("afu plain-ops {name}"), times, peak, relu_ref);
            report(&c);
            cases.push(c);
        }
    }
    cases.extend(families::run_families(config, &x, &g, &device, &mut report));
    BenchReport {
        shape: config.shape,
        elements: config.shape.iter().product(),
        threads: rayon::current_num_threads(),
        cases,
    }
}
