//! Where the time of one fused AFU call goes: raw kernel vs the Burn op (forward only and
//! forward+backward). `cargo run --release --example op_overhead`
use afu::afu::{AfuConfig, BaseActivation, KernelChoice};
use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;
use std::time::Instant;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64 * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--tune") {
        afu::tune_allocator();
    }
    let shape = [64, 32, 26, 26];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let plain = Device::flex();
    let ad = Device::flex().autodiff();
    let afu = AfuConfig::new(8)
        .with_base(BaseActivation::Relu)
        .init(&mut rng, &ad)
        .unwrap()
        .with_kernel(KernelChoice::Fused);
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &plain);
    let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &plain);
    let afu_plain = afu.clone().valid_for_bench();
    {
        use afu::afu::kernel::cpu;
        let p = afu_plain.params();
        let f = |v: &Vec<f64>| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (w0, b0, w1, b1) = (f(&p.w0), f(&p.b0), f(&p.w1), f(&p.b1));
        let ps = cpu::ParamSlices {
            base: p.base,
            hidden: p.hidden,
            w0: &w0,
            b0: &b0,
            w1: &w1,
            b1: &b1,
        };
        let xv = x.to_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let layout = cpu::Layout::of(&shape, 1);
        let mut y = vec![0.0f32; xv.len()];
        let raw = time(10, || cpu::forward(&xv, layout, &ps, &mut y));
        let raw_alloc = time(10, || {
            let mut y = vec![0.0f32; xv.len()];
            cpu::forward(&xv, layout, &ps, &mut y);
            std::hint::black_box(&y);
        });
        println!(
            "raw kernel forward on the same data: {raw:.2} ms (with a fresh output buffer: {raw_alloc:.2} ms)"
        );
    }
    let fwd = time(10, || {
        let y = afu_plain.forward(x.clone());
        let _ = y.device().sync();
    });
    let relu_fwd = time(10, || {
        let y = burn::tensor::activation::relu(x.clone());
        let _ = y.device().sync();
    });
    let xa = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
    let ga = g.clone();
    let fb = time(10, || {
        let xr = xa.clone().detach().require_grad();
        let y = afu.forward(xr.clone());
        let grads = y.mul(Tensor::from_inner(ga.clone())).sum().backward();
        let _ = xr.grad(&grads);
        let _ = xr.device().sync();
    });
    let rb = time(10, || {
        let xr = xa.clone().detach().require_grad();
        let y = burn::tensor::activation::relu(xr.clone());
        let grads = y.mul(Tensor::from_inner(ga.clone())).sum().backward();
        let _ = xr.grad(&grads);
        let _ = xr.device().sync();
    });
    let mulsum = time(10, || {
        let xr = xa.clone().detach().require_grad();
        let grads = xr
            .clone()
            .mul(Tensor::from_inner(ga.clone()))
            .sum()
            .backward();
        let _ = xr.grad(&grads);
        let _ = xr.device().sync();
    });
    println!(
        "fused afu relu N=8 forward (no autodiff): {fwd:.2} ms; burn relu forward: {relu_fwd:.2} ms"
    );
    println!("fwd+bwd: fused afu {fb:.2} ms, burn relu {rb:.2} ms, mul+sum alone {mulsum:.2} ms");
}

trait ValidForBench {
    fn valid_for_bench(self) -> Self;
}
impl ValidForBench for afu::afu::Afu {
    fn valid_for_bench(self) -> Self {
        use burn::module::Module;
        self.valid()
    }
}
