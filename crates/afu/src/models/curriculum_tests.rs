//! The curriculum mix of [`Activations`](crate::activation::Activations) in a whole model: at
//! α = 1 the network computes exactly what it computes without a curriculum, at α = 0 it is the
//! linear network (every activation replaced by the identity).

use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;

use crate::activation::{ActivationSpec, Slot};
use crate::afu::BaseActivation;
use crate::models::mnist_cnn::{CnnReading, MnistCnn};

fn model(spec: &str) -> (MnistCnn, Tensor<4>) {
    let device = Device::flex();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let spec: ActivationSpec = spec.parse().unwrap();
    let m = MnistCnn::new(&spec, CnnReading::Paper, &mut rng, &device).unwrap();
    device.seed(5);
    let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    (m, x)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn alpha_one_is_the_network_without_curriculum() {
    for spec in ["relu", "afu-relu-8-layer", "afu-sigmoid-4-channel"] {
        let (m, x) = model(spec);
        let plain = values(m.forward(x.clone()));
        let mut mixed = m.clone();
        mixed.activations.mix = vec![1.0; mixed.activations.slots.len()];
        assert_eq!(values(mixed.forward(x)), plain, "{spec}");
    }
}

#[test]
fn alpha_zero_is_the_linear_network() {
    for spec in ["tanh", "afu-relu-8", "afu-mish-3-layer"] {
        let (m, x) = model(spec);
        let n = m.activations.slots.len();
        let mut zero = m.clone();
        zero.activations.mix = vec![0.0; n];
        let mut linear = m;
        linear.activations.slots = vec![Slot::Fixed(BaseActivation::Linear); n];
        assert_eq!(
            values(zero.forward(x.clone())),
            values(linear.forward(x)),
            "{spec}"
        );
    }
}

#[test]
fn alpha_between_mixes_identity_and_activation() {
    let (m, _) = model("afu-relu-8-layer");
    let device = Device::flex();
    let z = Tensor::<2>::random([4, 32], Distribution::Normal(0.0, 2.0), &device);
    let mut acts = m.activations.clone();
    let g = values(acts.apply(0, z.clone()));
    acts.mix = vec![0.3, 1.0, 1.0];
    let mixed = values(acts.apply(0, z.clone()));
    for ((&y, &gz), &zz) in mixed.iter().zip(&g).zip(&values(z)) {
        let want = 0.7 * zz + 0.3 * gz;
        assert!(
            (y - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "{y} vs {want}"
        );
    }
}
