//! Synchronous data parallelism over several devices (`--devices cuda:0,cuda:1`), one worker
//! thread per device.
//!
//! Every step, the batch is cut into one contiguous slice per device (sizes differ by at most
//! one). Device 0's worker is the calling thread and trains the model itself; every other
//! device gets a fresh replica of the model (same parameters, same ids, its own batch-norm
//! buffers) and a scoped thread of its own. Each worker runs the forward and backward pass of
//! its slice, its loss weighted by the slice's share of the batch, so the sum of the workers'
//! gradients is exactly the whole batch's gradient (up to rounding).
//!
//! The reduction is ours, not Burn's collectives: Burn 0.22.1's `all_reduce` is implemented for
//! CUDA devices only (`DistributedOps::all_reduce` and `sync_collective` are left at their
//! `unimplemented!()` defaults by the Flex backend, Burn's dispatch lists Flex as not
//! collective-capable, and cubecl's wgpu runtime panics there). So the gradients are moved to
//! device 0 and added there in device order, whatever order the workers finish in: a fixed
//! order, hence the same result bit for bit from run to run. The optimizer then steps once, on
//! device 0, and the next step's replicas are taken from the updated model (the broadcast);
//! every replica therefore starts each step with identical parameters.
//!
//! Batch-norm running statistics come from device 0's slice alone, as with PyTorch's
//! DistributedDataParallel without SyncBatchNorm: the replicas' buffers are their own
//! (`valid().train()` gives fresh `RunningState`s; a plain clone would share them, and Burn
//! would then average the threads' updates) and are dropped after the step.
//!
//! Each worker thread takes the calling thread's layer settings (afu's kernels or Burn's ops)
//! and a dropout stream of its own drawn from the calling thread's, in device order: masks
//! differ between devices and steps and are reproducible from the seed.
//!
//! A worker that fails (Burn reports device errors by panicking) does not hang the others: no
//! worker waits for another, every worker is joined, and the step returns
//! [`ParallelError::Worker`] naming the device.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use crate::device::DeviceChoice;

/// A data-parallel step that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    /// A worker's forward or backward pass failed.
    #[error("device {device} (number {} of --devices) failed: {message}", slot + 1)]
    Worker {
        /// The device's position in the device list (0-based).
        slot: usize,
        /// The device.
        device: String,
        /// What went wrong (the panic message of the backend).
        message: String,
    },
    /// The operating system refused a worker thread.
    #[error("cannot start the worker thread of device {device}: {source}")]
    Spawn {
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// When one worker ran its step (forward, backward and the move of its gradients to device 0).
#[derive(Debug, Clone, Copy)]
pub struct WorkerSpan {
    /// The device's position in the device list.
    pub slot: usize,
    /// Start of the forward pass.
    pub start: Instant,
    /// End of the backward pass.
    pub end: Instant,
}

impl WorkerSpan {
    /// Whether the two spans share an instant.
    pub fn overlaps(&self, other: &WorkerSpan) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The outcome of one data-parallel step.
pub struct ParallelStep {
    /// The whole batch's gradients, on device 0.
    pub grads: GradientsParams,
    /// The batch's mean loss.
    pub loss: f64,
    /// One span per worker that had a slice, in device order.
    pub spans: Vec<WorkerSpan>,
}

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

/// A device as the messages name it: its `--devices` name (`cpu`, `cuda:1`, ...) when it is
/// one of those, else Burn's description of it.
pub fn device_name(device: &Device) -> String {
    let plain = device.clone().inner();
    std::iter::once(DeviceChoice::Cpu)
        .chain((0..16).map(DeviceChoice::Cuda))
        .chain((0..16).map(DeviceChoice::Wgpu))
        .find(|choice| choice.device().is_ok_and(|d| d == plain))
        .map_or_else(|| format!("{device:?}"), |choice| choice.to_string())
}

/// What one worker hands back: its weighted gradients (on device 0), its weighted loss and when
/// it ran.
type WorkerResult = (GradientsParams, f64, WorkerSpan);

/// Forward and backward of one slice on `model`; the gradients end on `main`.
fn worker_step<M: Module, const D: usize, const DY: usize>(
    slot: usize,
    model: &M,
    main: &Device,
    (x, y, share): (Tensor<D>, Tensor<DY>, f64),
    loss: &dyn Fn(usize, &M, Tensor<D>, Tensor<DY>) -> Tensor<1>,
) -> WorkerResult {
    let start = Instant::now();
    let l = loss(slot, model, x, y).mul_scalar(share);
    let value = l.clone().detach();
    let grads = GradientsParams::from_grads(l.backward(), model);
    let grads = if slot == 0 {
        grads
    } else {
        grads.to_device(main, model)
    };
    let value = value.into_scalar::<f32>() as f64;
    let end = Instant::now();
    (grads, value, WorkerSpan { slot, start, end })
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the worker panicked".to_string()
    }
}

/// Gradients of the mean loss over the whole batch `x`, `y`, computed by one worker per device
/// of `devices` (autodiff devices; `model` lives on the first).
///
/// `first_loss(0, model, x, y)` gives the mean loss of device 0's slice and runs on the calling
/// thread (so it may borrow non-thread-safe state, such as the hook that records activation
/// inputs); `loss(slot, replica, x, y)` gives that of every other device's slice, on that
/// device's worker thread. Both must compute the same function of the parameters.
pub fn data_parallel_grads<M, const D: usize, const DY: usize>(
    model: &M,
    devices: &[Device],
    x: Tensor<D>,
    y: Tensor<DY>,
    first_loss: &dyn Fn(usize, &M, Tensor<D>, Tensor<DY>) -> Tensor<1>,
    loss: &(dyn Fn(usize, &M, Tensor<D>, Tensor<DY>) -> Tensor<1> + Sync),
) -> Result<ParallelStep, ParallelError>
where
    M: Module,
{
    let n = x.dims()[0];
    let main = &devices[0];
    let parts = shards(n, devices.len());
    // Inputs and replicas are prepared here, before any worker starts, so that the workers
    // share nothing but the read-only `loss`.
    let mut inputs = Vec::with_capacity(parts.len());
    for (slot, &(start, end)) in parts.iter().enumerate() {
        let device = &devices[slot];
        let share = (end - start) as f64 / n as f64;
        let xs = x.clone().narrow(0, start, end - start).to_device(device);
        let ys = y.clone().narrow(0, start, end - start).to_device(device);
        inputs.push((xs, ys, share));
    }
    let mut inputs = inputs.into_iter();
    let Some(first_input) = inputs.next() else {
        // An empty batch: nothing to differentiate.
        return Ok(ParallelStep {
            grads: GradientsParams::new(),
            loss: 0.0,
            spans: Vec::new(),
        });
    };
    let results: Vec<Result<WorkerResult, ParallelError>> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(parts.len() - 1);
        for (k, input) in inputs.enumerate() {
            let slot = k + 1;
            let device = &devices[slot];
            let replica = model.valid().train().fork(device);
            // The kernel choice and a dropout stream of its own, drawn in device order.
            let settings = crate::ops::worker_settings();
            let handle = std::thread::Builder::new()
                .name(format!("afu-device-{slot}"))
                .spawn_scoped(scope, move || {
                    settings.apply();
                    worker_step(slot, &replica, main, input, loss)
                })
                .map_err(|source| ParallelError::Spawn {
                    device: device_name(device),
                    source,
                });
            handles.push((slot, handle));
        }
        let mut results = Vec::with_capacity(parts.len());
        results.push(
            catch_unwind(AssertUnwindSafe(|| {
                worker_step(0, model, main, first_input, first_loss)
            }))
            .map_err(|p| ParallelError::Worker {
                slot: 0,
                device: device_name(main),
                message: panic_message(p.as_ref()),
            }),
        );
        // Every worker is joined, failed or not, before anything is returned.
        for (slot, handle) in handles {
            results.push(handle.and_then(|h| {
                h.join().map_err(|p| ParallelError::Worker {
                    slot,
                    device: device_name(&devices[slot]),
                    message: panic_message(p.as_ref()),
                })
            }));
        }
        results
    });
    // The reduction, in device order.
    let mut acc = GradientsAccumulator::<M>::new();
    let mut total = 0.0;
    let mut spans = Vec::with_capacity(results.len());
    for r in results {
        let (grads, l, span) = r?;
        acc.accumulate(model, grads);
        total += l;
        spans.push(span);
    }
    Ok(ParallelStep {
        grads: acc.grads(),
        loss: total,
        spans,
    })
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

    /// Mean negative log-likelihood of an MLP's outputs (the loss of every test here).
    fn mlp_loss(_: usize, m: &Mlp, x: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        let logp = burn::tensor::activation::log_softmax(m.forward(x), 1);
        logp.mul(y).sum_dim(1).mean().neg()
    }

    /// A small MLP and a batch of `n` inputs with one-hot targets of 3 classes.
    fn mlp_and_batch(widths: &[usize], n: usize, device: &Device) -> (Mlp, Tensor<2>, Tensor<2>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let spec: ActivationSpec = "afu-relu-4-layer".parse().unwrap();
        let model = Mlp::new(widths, &spec, false, &mut rng, device).unwrap();
        let x = Tensor::<2>::random([n, widths[0]], Distribution::Normal(0.0, 1.0), device);
        let onehot: Vec<f32> = (0..n)
            .flat_map(|i| (0..3).map(move |k| if k == i % 3 { 1.0 } else { 0.0 }))
            .collect();
        let y = Tensor::<2>::from_data(burn::tensor::TensorData::new(onehot, [n, 3]), device);
        (model, x, y)
    }

    /// Every gradient of `model`'s parameters in `g`, in visiting order.
    fn all_grads(model: &Mlp, g: &GradientsParams) -> Vec<Vec<f32>> {
        let mut ids = Vec::new();
        model.visit(&mut CollectIds(&mut ids));
        assert!(!ids.is_empty());
        ids.into_iter()
            .map(|(id, dims)| match dims {
                1 => crate::experiments::common::to_vec(g.get::<1>(id).unwrap()),
                _ => crate::experiments::common::to_vec(g.get::<2>(id).unwrap()),
            })
            .collect()
    }

    /// Two (CPU) devices, one worker thread each, give the gradients of the whole batch on one;
    /// the fixed reduction order makes a repeated step identical bit for bit.
    #[test]
    fn gradients_equal_single_device_gradients() {
        let device = Device::flex().autodiff();
        let (model, x, y) = mlp_and_batch(&[2, 6, 5, 3], 7, &device);
        let single = data_parallel_grads(
            &model,
            std::slice::from_ref(&device),
            x.clone(),
            y.clone(),
            &mlp_loss,
            &mlp_loss,
        )
        .unwrap();
        assert_eq!(single.spans.len(), 1);
        let two = [device.clone(), Device::flex().autodiff()];
        let split =
            data_parallel_grads(&model, &two, x.clone(), y.clone(), &mlp_loss, &mlp_loss).unwrap();
        assert_eq!(split.spans.len(), 2);
        assert!(
            (single.loss - split.loss).abs() < 1e-6,
            "{} vs {}",
            single.loss,
            split.loss
        );
        let (a, b) = (
            all_grads(&model, &single.grads),
            all_grads(&model, &split.grads),
        );
        for (ga, gb) in a.iter().zip(&b) {
            assert_eq!(ga.len(), gb.len());
            for (p, q) in ga.iter().zip(gb) {
                assert!((p - q).abs() < 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
        let again = data_parallel_grads(&model, &two, x, y, &mlp_loss, &mlp_loss).unwrap();
        assert_eq!(all_grads(&model, &again.grads), b);
        assert_eq!(again.loss, split.loss);
    }

    /// The two workers run at once: on some step, their forward/backward intervals overlap.
    /// (Several steps, so that one unlucky schedule on a loaded machine cannot fail the test.)
    #[test]
    fn workers_run_at_the_same_time() {
        let device = Device::flex().autodiff();
        let (model, x, y) = mlp_and_batch(&[64, 256, 256, 3], 256, &device);
        let two = [device.clone(), Device::flex().autodiff()];
        let mut overlapping = 0;
        for _ in 0..6 {
            let step =
                data_parallel_grads(&model, &two, x.clone(), y.clone(), &mlp_loss, &mlp_loss)
                    .unwrap();
            assert_eq!(step.spans.len(), 2);
            assert_eq!((step.spans[0].slot, step.spans[1].slot), (0, 1));
            for s in &step.spans {
                assert!(s.start <= s.end);
            }
            overlapping += usize::from(step.spans[0].overlaps(&step.spans[1]));
        }
        assert!(
            overlapping > 0,
            "no step had its two workers running at once"
        );
    }

    /// A failing worker ends the step with an error naming its device; the other worker is
    /// joined, nothing hangs. The same for device 0, on the calling thread.
    #[test]
    fn a_failing_worker_is_reported_with_its_device() {
        let device = Device::flex().autodiff();
        let (model, x, y) = mlp_and_batch(&[2, 6, 5, 3], 8, &device);
        let two = [device.clone(), Device::flex().autodiff()];
        let failing = |slot: usize, m: &Mlp, x: Tensor<2>, y: Tensor<2>| {
            if slot == 1 {
                panic!("injected failure");
            }
            mlp_loss(slot, m, x, y)
        };
        let err = data_parallel_grads(&model, &two, x.clone(), y.clone(), &mlp_loss, &failing)
            .err()
            .expect("the failure must be reported");
        let text = err.to_string();
        assert!(
            matches!(err, ParallelError::Worker { slot: 1, .. }),
            "{text}"
        );
        assert!(text.contains("number 2 of --devices"), "{text}");
        assert_eq!(device_name(&two[1]), "cpu");
        assert!(
            text.contains("device cpu (number 2 of --devices)"),
            "{text}"
        );
        assert!(text.contains("injected failure"), "{text}");
        let err = data_parallel_grads(
            &model,
            &two,
            x.clone(),
            y.clone(),
            &failing_first,
            &mlp_loss,
        )
        .err()
        .expect("the failure must be reported");
        assert!(
            matches!(err, ParallelError::Worker { slot: 0, .. }),
            "{err}"
        );
        // The model is still usable: a normal step afterwards succeeds.
        assert!(data_parallel_grads(&model, &two, x, y, &mlp_loss, &mlp_loss).is_ok());
    }

    fn failing_first(_: usize, _: &Mlp, _: Tensor<2>, _: Tensor<2>) -> Tensor<1> {
        panic!("injected failure on device 0")
    }

    /// A linear layer followed by dropout (afu's kernel).
    #[derive(burn::module::Module, Debug)]
    struct Dropped {
        lin: burn::nn::Linear,
        drop: burn::nn::Dropout,
    }

    /// Worker threads use the caller's kernel choice and a dropout stream of their own: device
    /// 1's masks change from step to step, and the same seed gives the same steps again.
    #[test]
    fn workers_take_the_kernel_choice_and_fresh_dropout_masks() {
        let device = Device::flex().autodiff();
        let model = Dropped {
            lin: burn::nn::LinearConfig::new(4, 32).init(&device),
            drop: burn::nn::DropoutConfig::new(0.5).init(),
        };
        let x = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<2>::ones([6, 32], &device);
        let two = [device.clone(), Device::flex().autodiff()];
        let seen = std::sync::Mutex::new(Vec::new());
        let loss = |_: usize, m: &Dropped, x: Tensor<2>, y: Tensor<2>| {
            let out = crate::ops::dropout(&m.drop, m.lin.forward(x));
            let kept: Vec<bool> = crate::experiments::common::to_vec(out.clone())
                .iter()
                .map(|v| *v != 0.0)
                .collect();
            seen.lock().unwrap().push((crate::ops::enabled(), kept));
            out.mul(y).sum().reshape([1])
        };
        let run = |steps: usize| {
            crate::ops::seed_dropout(11);
            for _ in 0..steps {
                data_parallel_grads(&model, &two, x.clone(), y.clone(), &loss, &loss).unwrap();
            }
            std::mem::take(&mut *seen.lock().unwrap())
        };
        let first = run(2);
        assert_eq!(first.len(), 4);
        // Device 1's records (the worker's) are the ones whose thread is not this one; both
        // steps record device 0 then device 1 or the other way round, so compare as sets.
        let masks: Vec<&Vec<bool>> = first.iter().map(|(_, m)| m).collect();
        for (i, a) in masks.iter().enumerate() {
            assert!(a.contains(&false) && a.contains(&true));
            for b in &masks[i + 1..] {
                assert_ne!(a, b, "two slices or steps drew the same dropout mask");
            }
        }
        assert!(first.iter().all(|(enabled, _)| *enabled));
        let mut again = run(2);
        let mut first = first;
        first.sort();
        again.sort();
        assert_eq!(again, first);
        // Burn's ops chosen on the caller: the worker uses them too.
        crate::ops::set_enabled(false);
        let off = run(1);
        crate::ops::set_enabled(true);
        assert_eq!(off.len(), 2);
        assert!(off.iter().all(|(enabled, _)| !*enabled));
    }

    /// A module with batch norm only (its running statistics are what is tested).
    #[derive(burn::module::Module, Debug)]
    struct Normed {
        bn: burn::nn::BatchNorm,
    }

    fn normed_loss(_: usize, m: &Normed, x: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        m.bn.forward(x).mul(y).sum().reshape([1])
    }

    /// Batch-norm running statistics come from device 0's slice alone: after a step over two
    /// devices they equal those of a step on the first half of the batch, not an average.
    #[test]
    fn batch_norm_statistics_come_from_the_first_slice() {
        let device = Device::flex().autodiff();
        let make = || Normed {
            bn: burn::nn::BatchNormConfig::new(3).init(&device),
        };
        let x = Tensor::<2>::random([8, 3], Distribution::Normal(2.0, 3.0), &device);
        let y = Tensor::<2>::random([8, 3], Distribution::Normal(0.0, 1.0), &device);
        let two = [device.clone(), Device::flex().autodiff()];
        let split = make();
        data_parallel_grads(
            &split,
            &two,
            x.clone(),
            y.clone(),
            &normed_loss,
            &normed_loss,
        )
        .unwrap();
        let first = make();
        data_parallel_grads(
            &first,
            std::slice::from_ref(&device),
            x.clone().narrow(0, 0, 4),
            y.clone().narrow(0, 0, 4),
            &normed_loss,
            &normed_loss,
        )
        .unwrap();
        let read = |m: &Normed| {
            crate::experiments::common::to_vec(m.bn.running_mean.value_sync())
                .into_iter()
                .chain(crate::experiments::common::to_vec(
                    m.bn.running_var.value_sync(),
                ))
                .collect::<Vec<f32>>()
        };
        let (a, b) = (read(&split), read(&first));
        assert!(a.iter().any(|v| *v != 0.0 && *v != 1.0), "{a:?}");
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// An MNIST network whose forward pass fails on the second device's worker thread once
    /// `FAIL_AFTER` worker steps have run (the injected device failure of the fit test).
    #[derive(burn::module::Module, Debug)]
    struct FailingCnn {
        inner: crate::models::mnist_cnn::MnistCnn,
    }

    static WORKER_STEPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    const FAIL_AFTER: usize = 2;

    impl crate::models::ImageClassifier for FailingCnn {
        fn logits(&self, x: Tensor<4>) -> Tensor<2> {
            if std::thread::current().name() == Some("afu-device-1")
                && WORKER_STEPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= FAIL_AFTER
            {
                panic!("injected device failure");
            }
            self.inner.forward(x)
        }
        fn activations(&self) -> &crate::activation::Activations {
            self.inner.activations()
        }
        fn activations_mut(&mut self) -> &mut crate::activation::Activations {
            self.inner.activations_mut()
        }
        fn with_activations(self, activations: crate::activation::Activations) -> Self {
            FailingCnn {
                inner: self.inner.with_activations(activations),
            }
        }
    }

    /// A device failing in epoch 2 stops `fit` with an error naming the device and the batch;
    /// the checkpoint of epoch 1 is intact and resumable.
    #[test]
    fn a_device_failing_mid_run_stops_fit_after_the_last_checkpoint() {
        use crate::train::fit::{FitSettings, NoHook, fit};
        let device = Device::flex().autodiff();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let spec: ActivationSpec = "relu".parse().unwrap();
        let inner = crate::models::mnist_cnn::MnistCnn::new(
            &spec,
            crate::models::mnist_cnn::CnnReading::Reference,
            &mut rng,
            &device,
        )
        .unwrap();
        let n = 8;
        let data = crate::data::dataset::ImageDataset {
            images: (0..n * 784).map(|i| (i * 37 % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            len: n,
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        };
        let batches = crate::train::batches::ImageBatches::new(&data, (0.1, 0.3), None, 10);
        let tmp = tempfile::tempdir().unwrap();
        let two = [device.clone(), Device::flex().autodiff()];
        // Batches of 4: two steps an epoch, so the worker fails in the first step of epoch 2.
        let settings = FitSettings {
            variant: "relu",
            seed: 1,
            epochs: 3,
            batch_size: 4,
            test_batch_size: 8,
            lr: &|_| 0.01,
            checkpoint: tmp.path().join("checkpoint"),
            run_dir: tmp.path(),
            resume: false,
            progress: false,
            parallel: &two,
            curriculum: crate::train::curriculum::Curriculum::None,
        };
        let model = FailingCnn { inner };
        let optim = crate::train::adam_torch_defaults().init();
        let err = fit(
            model.clone(),
            optim,
            &batches,
            &batches,
            &settings,
            &mut NoHook,
            &device,
        )
        .err()
        .expect("the failing device must stop the run");
        let text = err.to_string();
        assert!(
            matches!(
                err,
                crate::experiments::common::ExperimentError::Device { .. }
            ),
            "{text}"
        );
        assert!(
            text.contains("device cpu (number 2 of --devices)"),
            "{text}"
        );
        assert!(text.contains("injected device failure"), "{text}");
        assert!(text.contains("epoch 2, batch 1"), "{text}");
        let mut reloaded = model;
        let (_, progress) = crate::train::checkpoint::load::<_, crate::train::fit::EpochRecord>(
            &settings.checkpoint,
            &mut reloaded,
            crate::train::adam_torch_defaults().init(),
        )
        .unwrap();
        assert_eq!(progress.epochs_done, 1);
        assert_eq!(progress.history.len(), 1);
    }

    struct CollectIds<'a>(&'a mut Vec<(burn::module::ParamId, usize)>);
    impl burn::module::ModuleVisitor for CollectIds<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.push((param.id, D));
        }
    }
}
