//! Putting learned activations into your own Burn model, without the `afu` CLI:
//! a 1→32→1 regression net whose hidden layer has one AFU per neuron (per-channel sharing),
//! fitted to `sin(3x)` for a few hundred Adam steps.
//!
//! `cargo run --release --example custom_model`

use afu::activation::{ActivationSpec, Activations, Sharing};
use afu::afu::BaseActivation;
use afu::models::init;
use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;

#[derive(Module, Debug)]
struct Net {
    hidden: Linear,
    out: Linear,
    activations: Activations,
}

impl Net {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        // Slot 0: the hidden layer's activation ([batch, 32]; one AFU per neuron).
        let h = self.activations.apply(0, self.hidden.forward(x));
        self.out.forward(h)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    afu::tune_allocator();
    let device = Device::flex().autodiff();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let spec = ActivationSpec::Afu {
        hidden: 8,
        base: BaseActivation::Relu,
        sharing: Sharing::Channel,
    };
    let mut net = Net {
        hidden: init::linear(1, 32, &mut rng, &device),
        out: init::linear(32, 1, &mut rng, &device),
        activations: Activations::new(&spec, &[32], &mut rng, &device)?,
    };
    let xs: Vec<f32> = (0..256).map(|i| -1.0 + 2.0 * i as f32 / 255.0).collect();
    let ys: Vec<f32> = xs.iter().map(|x| (3.0 * x).sin()).collect();
    let x = Tensor::<2>::from_data(TensorData::new(xs, [256, 1]), &device);
    let y = Tensor::<2>::from_data(TensorData::new(ys, [256, 1]), &device);
    let mut optim = AdamConfig::new().init();
    for step in 0..=300 {
        let loss = net.forward(x.clone()).sub(y.clone()).square().mean();
        if step % 100 == 0 {
            println!(
                "step {step:3}: mse {:.5}",
                loss.clone().into_scalar::<f32>()
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    let learned = net.activations.named();
    println!(
        "{} learned AFU layer(s); the first has {} channels of {} units",
        learned.len(),
        learned[0].1.channels,
        learned[0].1.hidden
    );
    Ok(())
}
