//! Times the fused CPU kernels on plain slices (no Burn), to separate kernel time from framework
//! overhead: `cargo run --release --example kernel_timing [reps] [base-N …]` (medians of `reps`
//! calls; e.g. `sigmoid-128 mish-128` picks those cases).
use afu::afu::BaseActivation;
use afu::afu::kernel::cpu::{self, Layout, ParamSlices};
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

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(21);
    // Further arguments pick cases by base and size, e.g. `sigmoid-128 mish-128`.
    let wanted: Vec<String> = std::env::args().skip(2).collect();
    let m = 64 * 32 * 26 * 26;
    // A normal-ish input (sum of uniforms) and upstream gradient.
    let mut s = 1u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut normal = || (0..4).map(|_| next()).sum::<f32>() * 1.7 - 3.4;
    let x: Vec<f32> = (0..m).map(|_| normal()).collect();
    let gy: Vec<f32> = (0..m).map(|_| normal()).collect();
    for (base, n, channels) in [
        (BaseActivation::Relu, 8, 1),
        (BaseActivation::Relu, 8, 32),
        (BaseActivation::Relu, 128, 1),
        (BaseActivation::Relu, 128, 32),
        (BaseActivation::Sigmoid, 8, 1),
        (BaseActivation::Sigmoid, 128, 1),
        (BaseActivation::Mish, 128, 1),
    ] {
        if !wanted.is_empty() && !wanted.iter().any(|w| *w == format!("{base}-{n}")) {
            continue;
        }
        let w: Vec<f32> = (0..n * channels)
            .map(|i| (i as f32 * 0.37 + 0.1).sin())
            .collect();
        let b: Vec<f32> = (0..n * channels).map(|i| (i as f32 * 0.71).cos()).collect();
        let b1 = vec![0.1f32; channels];
        let p = ParamSlices {
            base,
            hidden: n,
            w0: &w,
            b0: &b,
            w1: &w,
            b1: &b1,
        };
        let layout = Layout::of(&[64, 32, 26, 26], channels);
        let mut y = vec![0.0f32; m];
        let mut g = gy.clone();
        let f = median_ms(reps, || cpu::forward(&x, layout, &p, &mut y));
        // Backward in place on a fresh copy of gy each time (the copy is timed separately).
        let bw = median_ms(reps, || {
            g.copy_from_slice(&gy);
            let _ = cpu::backward_in_place(&x, layout, &p, &mut g);
        });
        let copy = median_ms(reps, || g.copy_from_slice(&gy));
        // The memory floor of a backward pass: read x and gy, write gx (one multiply).
        use rayon::prelude::*;
        let stream = median_ms(reps, || {
            g.copy_from_slice(&gy);
            g.par_chunks_mut(1 << 15)
                .zip(x.par_chunks(1 << 15))
                .for_each(|(g, x)| g.iter_mut().zip(x).for_each(|(g, x)| *g *= x));
        }) - copy;
        println!(
            "{base} N={n} C={channels}: forward {f:.3} ms, backward {:.3} ms (copy of gy {copy:.3} ms excluded; gx = gy·x alone {stream:.3} ms)",
            bw - copy
        );
    }
}
