//! Scratch: time the MNIST CNN training step. `cargo run --release --example cnn_step`
use afu::activation::ActivationSpec;
use afu::models::mnist_cnn::{CnnReading, MnistCnn};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use rand::SeedableRng;
use std::time::Instant;

fn main() {
    if std::env::var("NO_TUNE").is_err() {
        afu::tune_allocator();
    }
    afu::ops::set_enabled(std::env::var("STOCK").is_err());
    let spec: ActivationSpec = std::env::args()
        .nth(1)
        .unwrap_or("relu".into())
        .parse()
        .unwrap();
    let dev = Device::flex().autodiff();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = MnistCnn::new(&spec, CnnReading::Reference, &mut rng, &dev).unwrap();
    let mut optim = afu::train::adam_torch_defaults().init();
    let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Normal(0.0, 1.0), &dev);
    let y = Tensor::<1, Int>::from_data([3i64; 64], &dev);
    let mut times = vec![];
    for i in 0..25 {
        let t = Instant::now();
        let logp = model.forward(x.clone());
        let loss = logp.gather(1, y.clone().reshape([64, 1])).mean().neg();
        let _ = loss.clone().into_scalar::<f32>();
        let t1 = t.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = t.elapsed().as_secs_f64();
        model = optim.step(1e-3, model, grads);
        let t3 = t.elapsed().as_secs_f64();
        if i >= 5 {
            times.push((t1, t2 - t1, t3 - t2, t3));
        }
    }
    let med = |k: usize| {
        let mut v: Vec<f64> = times
            .iter()
            .map(|t| [t.0, t.1, t.2, t.3][k] * 1e3)
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "fwd {:.1} bwd {:.1} optim {:.1} total {:.1} ms",
        med(0),
        med(1),
        med(2),
        med(3)
    );
}
