//! Profiling aid: repeated training steps of one model with afu's ops (`STOCK=1`: Burn's),
//! for `perf record`. `cargo run --release --example cnn_step -- [mnist|mobilenet] [spec]`
use afu_cli::activation::ActivationSpec;
use afu_cli::models::mnist_cnn::{CnnReading, MnistCnn};
use afu_cli::models::mobilenet::MobileNet;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use rand::SeedableRng;
use std::time::Instant;

fn main() {
    afu_cli::tune_allocator();
    afu_cli::ops::set_enabled(std::env::var("STOCK").is_err());
    let model = std::env::args().nth(1).unwrap_or("mnist".into());
    let spec: ActivationSpec = std::env::args()
        .nth(2)
        .unwrap_or("relu".into())
        .parse()
        .expect("activation spec");
    let dev = Device::flex().autodiff();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (batch, shape) = if model == "mobilenet" {
        (32, [32, 3, 32, 32])
    } else {
        (64, [64, 1, 28, 28])
    };
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let y = Tensor::<1, Int>::from_data(vec![3i64; batch].as_slice(), &dev);
    let mut optim = afu_cli::train::adam_torch_defaults().init();
    let mut mnist = MnistCnn::new(&spec, CnnReading::Reference, &mut rng, &dev).unwrap();
    let mut mobile = MobileNet::new(&spec, 10, &mut rng, &dev).unwrap();
    let t = Instant::now();
    let steps = 20;
    for _ in 0..steps {
        let out = if model == "mobilenet" {
            burn::tensor::activation::log_softmax(mobile.forward(x.clone()), 1)
        } else {
            mnist.forward(x.clone())
        };
        let loss = out.gather(1, y.clone().reshape([batch, 1])).mean().neg();
        let grads = loss.backward();
        if model == "mobilenet" {
            let g = GradientsParams::from_grads(grads, &mobile);
            mobile = optim.step(1e-3, mobile, g);
        } else {
            let g = GradientsParams::from_grads(grads, &mnist);
            mnist = optim.step(1e-3, mnist, g);
        }
    }
    println!(
        "{:.1} ms/step",
        t.elapsed().as_secs_f64() * 1e3 / steps as f64
    );
}
