//! Times the fused CPU kernels on plain slices (no Burn), to separate kernel time from framework
//! overhead: `cargo run --release --example kernel_timing`.
use afu::afu::BaseActivation;
use afu::afu::kernel::cpu::{self, Layout, ParamSlices};
use std::time::Instant;

fn main() {
    let m = 64 * 32 * 26 * 26;
    let x: Vec<f32> = (0..m)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let gy = vec![1.0f32; m];
    for (base, n) in [
        (BaseActivation::Relu, 8),
        (BaseActivation::Relu, 128),
        (BaseActivation::Sigmoid, 8),
        (BaseActivation::Sigmoid, 128),
    ] {
        let w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.71).cos()).collect();
        let p = ParamSlices {
            base,
            hidden: n,
            w0: &w,
            b0: &b,
            w1: &w,
            b1: &[0.1],
        };
        let layout = Layout::of(&[m], 1);
        let mut y = vec![0.0f32; m];
        let mut gx = vec![0.0f32; m];
        for _ in 0..2 {
            cpu::forward(&x, layout, &p, &mut y);
        }
        let t = Instant::now();
        for _ in 0..5 {
            cpu::forward(&x, layout, &p, &mut y);
        }
        let f = t.elapsed().as_secs_f64() / 5.0 * 1e3;
        let t = Instant::now();
        for _ in 0..5 {
            let _ = cpu::backward(&x, &gy, layout, &p, &mut gx);
        }
        let bw = t.elapsed().as_secs_f64() / 5.0 * 1e3;
        let t = Instant::now();
        for _ in 0..5 {
            let v = vec![0.0f32; m];
            std::hint::black_box(&v);
        }
        let alloc = t.elapsed().as_secs_f64() / 5.0 * 1e3;
        println!(
            "{base} N={n}: forward {f:.2} ms, backward {bw:.2} ms (alloc+zero 5.5 MB: {alloc:.2} ms)"
        );
    }
}
