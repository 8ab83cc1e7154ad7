//! Synchronous data parallelism over several devices (`--devices cuda:0,cuda:1`).
//!
//! Every step, the batch is cut into one contiguous slice per device (sizes differ by at most
//! one). The first device trains the model itself; every other device gets a replica forked
//! from it. Each slice's loss is weighted by the slice's share of the batch, so the gradients,
//! moved to the first device and added in device order, are exactly those of the whole batch
//! (up to rounding); the optimizer then steps once, on the first device. Batch-norm running
//! statistics come from the first device's slice, as with PyTorch's DistributedDataParallel.
//!
//! Devices are driven one after another from one thread: GPU work is queued asynchronously, so
//! the devices overlap as far as the backends allow.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

/// Slices `[start, end)` of a batch of `n` over `parts` devices (never empty unless `n` is
/// smaller than `parts`; those are skipped).
pub fn shards(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.max(1);
    let (base, extra) = (n / parts, n % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = base + usize::from(i < extra);
        if len > 0 {
            out.push((start, start + len));
        }
        start += len;
    }
    out
}

/// Gradients of `loss` over the whole batch, computed on `devices` (autodiff devices; the
/// model lives on the first). `loss(slot, model, x, y)` returns the mean loss of a slice; `slot`
/// is the device's index (0 = the model itself). Returns the gradients on the first device and
/// the batch's mean loss.
pub fn data_parallel_grads<M, const D: usize, const DY: usize>(
    model: &M,
    devices: &[Device],
    x: Tensor<D>,
    y: Tensor<DY>,
    loss: &dyn Fn(usize, &M, Tensor<D>, Tensor<DY>) -> Tensor<1>,
) -> (GradientsParams, f64)
where
    M: Module + Clone,
{
    let n = x.dims()[0];
    let main = &devices[0];
    let mut acc = GradientsAccumulator::<M>::new();
    // Slice losses are read after every device's work is queued, so reading one does not
    // hold the next device back.
    let mut losses = Vec::with_capacity(devices.len());
    for (slot, (start, end)) in shards(n, devices.len()).into_iter().enumerate() {
        let device = &devices[slot];
        let share = (end - start) as f64 / n as f64;
        let xs = x.clone().narrow(0, start, end - start).to_device(device);
        let ys = y.clone().narrow(0, start, end - start).to_device(device);
        let replica;
        let m = if slot == 0 {
            model
        } else {
            replica = model.clone().fork(device);
            &replica
        };
        let l = loss(slot, m, xs, ys).mul_scalar(share);
        losses.push(l.clone().detach());
        let grads = GradientsParams::from_grads(l.backward(), m);
        let grads = if slot == 0 {
            grads
        } else {
            grads.to_device(main, m)
        };
        acc.accumulate(model, grads);
    }
    let total_loss = losses
        .into_iter()
        .map(|l| l.into_scalar::<f32>() as f64)
        .sum();
    (acc.grads(), total_loss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::ActivationSpec;
    use crate::models::mlp::Mlp;
    use burn::tensor::Distribution;
    use rand::SeedableRng;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(shards(10, 3), vec![(0, 4), (4, 7), (7, 10)]);
        assert_eq!(shards(2, 3), vec![(0, 1), (1, 2)]);
        assert_eq!(shards(5, 1), vec![(0, 5)]);
    }

    /// Two (CPU) devices give the gradients of the whole batch on one.
    #[test]
    fn gradients_equal_single_device_gradients() {
        let device = Device::flex().autodiff();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let spec: ActivationSpec = "afu-relu-4-layer".parse().unwrap();
        let model = Mlp::new(&[2, 6, 5, 3], &spec, false, &mut rng, &device).unwrap();
        let x = Tensor::<2>::random([7, 2], Distribution::Normal(0.0, 1.0), &device);
        // One-hot targets.
        let classes = [0usize, 1, 2, 0, 1, 2, 1];
        let onehot: Vec<f32> = classes
            .iter()
            .flat_map(|&c| (0..3).map(move |k| if k == c { 1.0 } else { 0.0 }))
            .collect();
        let y = Tensor::<2>::from_data(burn::tensor::TensorData::new(onehot, [7, 3]), &device);
        let loss = |_: usize, m: &Mlp, x: Tensor<2>, y: Tensor<2>| {
            let logp = burn::tensor::activation::log_softmax(m.forward(x), 1);
            logp.mul(y).sum_dim(1).mean().neg()
        };
        let (single, l1) = data_parallel_grads(
            &model,
            std::slice::from_ref(&device),
            x.clone(),
            y.clone(),
            &loss,
        );
        let two = [device.clone(), Device::flex().autodiff()];
        let (split, l2) = data_parallel_grads(&model, &two, x, y, &loss);
        assert!((l1 - l2).abs() < 1e-6, "{l1} vs {l2}");
        let mut ids = Vec::new();
        model.visit(&mut CollectIds(&mut ids));
        assert!(!ids.is_empty());
        for (id, dims) in ids {
            let read = |g: &GradientsParams| -> Vec<f32> {
                match dims {
                    1 => crate::experiments::common::to_vec(g.get::<1>(id).unwrap()),
                    _ => crate::experiments::common::to_vec(g.get::<2>(id).unwrap()),
                }
            };
            let (a, b) = (read(&single), read(&split));
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }

    struct CollectIds<'a>(&'a mut Vec<(burn::module::ParamId, usize)>);
    impl burn::module::ModuleVisitor for CollectIds<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.push((param.id, D));
        }
    }
}
