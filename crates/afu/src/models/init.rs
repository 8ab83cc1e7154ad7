//! Deterministic layer initialisation from our own seeded generator (PyTorch's defaults), so a
//! run is reproducible from its seed alone, whatever the backend.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

/// `nn.Linear(d_in, d_out)` as PyTorch initialises it: weights and bias ~ U(-1/√d_in, 1/√d_in).
/// The weight is stored `[d_in, d_out]` (Burn's row layout).
pub fn linear(d_in: usize, d_out: usize, rng: &mut impl Rng, device: &Device) -> Linear {
    let k = 1.0 / (d_in as f32).sqrt();
    let w: Vec<f32> = (0..d_in * d_out).map(|_| rng.random_range(-k..k)).collect();
    let b: Vec<f32> = (0..d_out).map(|_| rng.random_range(-k..k)).collect();
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [d_out]),
            device,
        ))),
    }
}

/// `nn.Conv2d(c_in, c_out, k)` (stride 1, no padding) as PyTorch initialises it: weights and bias
/// ~ U(-1/√fan_in, 1/√fan_in), fan_in = c_in·k·k.
pub fn conv2d(
    c_in: usize,
    c_out: usize,
    k: usize,
    rng: &mut impl Rng,
    device: &Device,
) -> burn::nn::conv::Conv2d {
    let mut conv = burn::nn::conv::Conv2dConfig::new([c_in, c_out], [k, k]).init(device);
    let bound = 1.0 / ((c_in * k * k) as f32).sqrt();
    let w: Vec<f32> = (0..c_out * c_in * k * k)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    let b: Vec<f32> = (0..c_out)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(w, [c_out, c_in, k, k]),
        device,
    ));
    conv.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(b, [c_out]),
        device,
    )));
    conv
}

/// A convolution from Burn's config with PyTorch's default initialisation drawn from `rng`
/// (weights and bias ~ U(-1/√fan_in, 1/√fan_in), fan_in = c_in/groups·k·k).
pub fn conv2d_from<R: Rng + ?Sized>(
    config: &burn::nn::conv::Conv2dConfig,
    rng: &mut R,
    device: &Device,
) -> burn::nn::conv::Conv2d {
    let mut conv = config.init(device);
    let [c_in, c_out] = config.channels;
    let [kh, kw] = config.kernel_size;
    let per_group = c_in / config.groups.max(1);
    let bound = 1.0 / ((per_group * kh * kw) as f32).sqrt();
    let w: Vec<f32> = (0..c_out * per_group * kh * kw)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(w, [c_out, per_group, kh, kw]),
        device,
    ));
    if conv.bias.is_some() {
        let b: Vec<f32> = (0..c_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [c_out]),
            device,
        )));
    }
    conv
}
