//! Times the fused CPU kernels of the learnable families on plain slices (no Burn), forward and
//! backward apart, per channel on the benchmark tensor [64, 32, 26, 26]:
//! `cargo run --release --example family_timing [reps] [family …]` (medians of `reps` calls;
//! families `prelu swish pmish pau pwlu apl kaf`, all by default).
use afu::family::ScalarFamily;
use afu::family::kernel::{self, Layout};
use afu::family::math::{self as m};
use std::time::Instant;

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn time<F: ScalarFamily>(name: &str, f: F, reps: usize, x: &[f32], gy: &[f32], channels: usize) {
    let layout = Layout::of(&[64, channels, 26, 26], channels);
    let p: Vec<f32> = (0..channels)
        .flat_map(|_| f.init())
        .map(|v| v as f32)
        .collect();
    let mut y = vec![0.0f32; x.len()];
    let fwd = median_ms(reps, || kernel::forward(f, x, layout, &p, &mut y));
    let mut g = gy.to_vec();
    let bwd = median_ms(reps, || {
        g.copy_from_slice(gy);
        std::hint::black_box(kernel::backward(f, x, layout, &p, &mut g));
    });
    let copy = median_ms(reps, || g.copy_from_slice(gy));
    println!(
        "{name:<10} forward {fwd:7.3} ms   backward {:7.3} ms   total {:7.3} ms",
        bwd - copy,
        fwd + bwd - copy
    );
}

fn main() {
    afu::fpenv::set_flush_denormals_everywhere(true);
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(21);
    let wanted: Vec<String> = args.collect();
    let on = |n: &str| wanted.is_empty() || wanted.iter().any(|w| w == n);
    let channels = 32;
    let len = 64 * channels * 26 * 26;
    let mut s = 1u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    // A normal-ish input (sum of uniforms) and upstream gradient.
    let mut normal = || (0..4).map(|_| next()).sum::<f32>() * 1.7 - 3.4;
    let x: Vec<f32> = (0..len).map(|_| normal()).collect();
    let gy: Vec<f32> = (0..len).map(|_| normal()).collect();
    if on("prelu") {
        time("prelu", m::Prelu, reps, &x, &gy, channels);
    }
    if on("swish") {
        time("swish-beta", m::SwishBeta, reps, &x, &gy, channels);
    }
    if on("pmish") {
        time("pmish", m::Pmish, reps, &x, &gy, channels);
    }
    if on("pau") {
        time("pau", m::PauFixed::<5, 4>, reps, &x, &gy, channels);
    }
    if on("pwlu") {
        time("pwlu-16", m::PwluFixed::<16>, reps, &x, &gy, channels);
    }
    if on("apl") {
        time("apl-5", m::AplFixed::<5>, reps, &x, &gy, channels);
    }
    if on("kaf") {
        time("kaf-20", m::KafFixed::<20>, reps, &x, &gy, channels);
    }
}
