//! `afu bench cnn-step`: one training step (forward, backward, Adam) of the MNIST-example CNN
//! and of MobileNet-v1, with Burn's stock Flex ops and with afu's own kernels
//! ([`crate::ops`]), plus the ops one by one — all measured in one run, so the ratios hold
//! even on a noisy machine. Optionally runs the same CNN step in PyTorch
//! (`scripts/torch_cnn_step.py`, when `python3` has `torch`) for a side-by-side number: the
//! relu network and the paper's AFU formulation per layer, on the same kind of batches (the
//! MNIST-format training set given with `data`, else random ones), with the same thread count,
//! warm-up and timed step counts as afu's headline cases.
//!
//! The first case runs before the binary's allocator settings ([`crate::tune_allocator`]) are
//! applied, so "stock" is what a Burn user gets out of the box.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{DropoutConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::host::{self, LoadMeter};
use super::median;
use crate::activation::ActivationSpec;
use crate::data::{Split, load_mnist_dir};
use crate::models::init::conv2d_from;
use crate::models::mnist_cnn::{CnnReading, MnistCnn};
use crate::models::mobilenet::MobileNet;

/// The PyTorch script, embedded so the benchmark works from any directory.
pub const TORCH_SCRIPT: &str = include_str!("../../scripts/torch_cnn_step.py");

/// Settings of the step benchmark.
#[derive(Debug, Clone)]
pub struct CnnStepBenchConfig {
    /// Timed steps of afu's-ops CNN cases and of PyTorch's (median, p10, p90 reported); the
    /// stock-ops cases (2–3× slower, context only) run at most 30.
    pub steps: usize,
    /// Untimed steps first (the stock-ops cases: at most 10).
    pub warmup: usize,
    /// Timed repetitions of each single op.
    pub op_reps: usize,
    /// MobileNet-v1 batch (32×32 RGB images); 0 skips MobileNet.
    pub mobilenet_batch: usize,
    /// Timed MobileNet steps.
    pub mobilenet_steps: usize,
    /// Python interpreter for the PyTorch side (`None`: skip it).
    pub python: Option<String>,
    /// MNIST-format data folder for the MNIST-CNN batches (`None`: random batches).
    pub data: Option<PathBuf>,
}

impl Default for CnnStepBenchConfig {
    fn default() -> Self {
        CnnStepBenchConfig {
            steps: 100,
            warmup: 30,
            op_reps: 9,
            mobilenet_batch: 32,
            mobilenet_steps: 3,
            python: None,
            data: None,
        }
    }
}

/// Median times of one training-step case.
#[derive(Debug, Clone, Serialize)]
pub struct StepCase {
    /// Model, activation and ops.
    pub name: String,
    /// Median whole step (ms).
    pub step_ms: f64,
    /// 10th percentile of the whole step (ms).
    pub p10_ms: f64,
    /// 90th percentile of the whole step (ms).
    pub p90_ms: f64,
    /// Timed steps.
    pub steps: usize,
    /// Median forward incl. loss (ms).
    pub forward_ms: f64,
    /// Median backward (ms).
    pub backward_ms: f64,
    /// Median optimizer update (ms).
    pub optimizer_ms: f64,
}

/// One op, forward+backward, stock vs afu.
#[derive(Debug, Clone, Serialize)]
pub struct OpCase {
    /// The op and its input shape.
    pub name: String,
    /// Burn's op (ms, median).
    pub stock_ms: f64,
    /// afu's kernel (ms, median).
    pub afu_ms: f64,
    /// `afu_ms / stock_ms`.
    pub ratio: f64,
}

/// One PyTorch step variant as the script reported it.
#[derive(Debug, Clone, Serialize)]
pub struct TorchStep {
    /// `relu` or `afu-relu-8-layer` (the paper's formulation).
    pub variant: String,
    /// Median step (ms).
    pub step_ms: f64,
    /// 10th percentile (ms).
    pub p10_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
}

/// What the PyTorch script reported.
#[derive(Debug, Clone, Serialize)]
pub struct TorchResult {
    /// PyTorch version, threads and data, or why it did not run.
    pub note: String,
    /// The variants timed (empty when it did not run).
    pub steps: Vec<TorchStep>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CnnStepReport {
    /// CPU model.
    pub cpu: String,
    /// Threads in the rayon pool (and given to PyTorch).
    pub threads: usize,
    /// Where the MNIST-CNN batches came from.
    pub data: String,
    /// CPU time used by other processes during the run, in cores (0 = the machine was ours).
    pub foreign_load_cores: Option<f64>,
    /// MNIST-CNN steps (batch 64).
    pub mnist_cnn: Vec<StepCase>,
    /// Single ops with the MNIST-CNN shapes.
    pub ops: Vec<OpCase>,
    /// MobileNet-v1 steps.
    pub mobilenet: Vec<StepCase>,
    /// PyTorch's MNIST-CNN step (relu), when asked for.
    pub torch: Option<TorchResult>,
    /// Headline ratios (step time of afu's ops over the other).
    pub ratios: Vec<(String, f64)>,
}

/// The `q`-quantile (0..=1) of `v`, nearest rank (NaN for none).
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// One training batch: images and labels.
type Batch = (Tensor<4>, Tensor<1, Int>);

/// Training batches, used in turn.
type Batches = [Batch];

/// Times `steps` training steps of `model` (after `warmup` untimed ones), step `i` on batch
/// `i mod batches.len()`.
fn time_steps<M: Module + Sized>(
    name: String,
    mut model: M,
    forward: &dyn Fn(&M, Tensor<4>) -> Tensor<2>,
    batches: &Batches,
    warmup: usize,
    steps: usize,
) -> StepCase {
    let mut optim = crate::train::adam_torch_defaults().init();
    let mut rows = Vec::new();
    for i in 0..warmup + steps {
        let (x, y) = &batches[i % batches.len()];
        let batch = x.dims()[0];
        let t = Instant::now();
        let logp = burn::tensor::activation::log_softmax(forward(&model, x.clone()), 1);
        let loss = logp.gather(1, y.clone().reshape([batch, 1])).mean().neg();
        let _ = loss.clone().into_scalar::<f32>();
        let t1 = t.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = t.elapsed().as_secs_f64();
        model = optim.step(1e-3, model, grads);
        let _ = x.device().sync();
        let t3 = t.elapsed().as_secs_f64();
        if i >= warmup {
            rows.push([t3, t1, t2 - t1, t3 - t2]);
        }
    }
    let col = |k: usize| rows.iter().map(|r| r[k] * 1e3).collect::<Vec<f64>>();
    let m = |k: usize| median(col(k));
    StepCase {
        name,
        step_ms: m(0),
        p10_ms: quantile(col(0), 0.1),
        p90_ms: quantile(col(0), 0.9),
        steps: rows.len(),
        forward_ms: m(1),
        backward_ms: m(2),
        optimizer_ms: m(3),
    }
}

/// Forward+backward of one op on `x` (median ms): `L = Σ g·f(x)`.
fn time_op(
    x: &Tensor<4>,
    input_grad: bool,
    reps: usize,
    f: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> f64 {
    let device = x.device();
    let one = || {
        let x = if input_grad {
            x.clone().detach().require_grad()
        } else {
            x.clone().detach()
        };
        let t = Instant::now();
        let y = f(x);
        let g = y.clone().detach().ones_like();
        let grads = y.mul(g).sum().backward();
        drop(grads);
        let _ = device.sync();
        t.elapsed().as_secs_f64() * 1e3
    };
    one();
    median((0..reps.max(1)).map(|_| one()).collect())
}

fn op_case(
    name: &str,
    x: &Tensor<4>,
    input_grad: bool,
    reps: usize,
    f: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> OpCase {
    crate::ops::set_enabled(false);
    let stock_ms = time_op(x, input_grad, reps, f);
    crate::ops::set_enabled(true);
    let afu_ms = time_op(x, input_grad, reps, f);
    OpCase {
        name: format!("{name} {:?}", x.dims()),
        stock_ms,
        afu_ms,
        ratio: afu_ms / stock_ms,
    }
}

/// Runs the PyTorch script with `python` for `variants` and reads its JSON line.
fn run_torch(python: &str, config: &CnnStepBenchConfig, variants: &[&str]) -> TorchResult {
    let mut args: Vec<String> = vec![
        "--json".into(),
        "--steps".into(),
        config.steps.max(2).to_string(),
        "--warmup".into(),
        config.warmup.to_string(),
        "--threads".into(),
        rayon::current_num_threads().to_string(),
        "--variants".into(),
        variants.join(","),
    ];
    if let Some(d) = &config.data {
        args.push("--data".into());
        args.push(d.display().to_string());
    }
    match host::run_python_json(python, "torch-cnn-step", TORCH_SCRIPT, &args) {
        Err(note) => TorchResult {
            note,
            steps: Vec::new(),
        },
        Ok(v) => {
            let results = v["results"].as_array().cloned().unwrap_or_default();
            let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            TorchResult {
                note: format!(
                    "PyTorch {}, {} threads, denormals flushed, {} warm-up + {} timed steps; {}",
                    v["torch"].as_str().unwrap_or("?"),
                    v["threads"],
                    config.warmup,
                    config.steps.max(2),
                    results
                        .first()
                        .and_then(|r| r["data"].as_str())
                        .unwrap_or("?")
                ),
                steps: results
                    .iter()
                    .map(|r| TorchStep {
                        variant: r["variant"].as_str().unwrap_or("?").to_string(),
                        step_ms: f(r, "median_step_ms"),
                        p10_ms: f(r, "p10_ms"),
                        p90_ms: f(r, "p90_ms"),
                    })
                    .collect(),
            }
        }
    }
}

/// The MNIST-CNN batches: `n` shuffled batches of 64 from the training split in `dir`
/// (normalised to mean 0 and std 1 over the set, as the PyTorch script does), else `n` random
/// N(0,1) batches with uniform random labels; and a description.
fn mnist_batches(
    dir: Option<&std::path::Path>,
    n: usize,
    device: &Device,
) -> anyhow::Result<(Vec<Batch>, String)> {
    use rand::Rng;
    use rand::seq::SliceRandom;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let Some(dir) = dir else {
        let batches = (0..n)
            .map(|_| {
                let x =
                    Tensor::<4>::random([64, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
                let labels: Vec<i64> = (0..64).map(|_| rng.random_range(0..10)).collect();
                (x, Tensor::<1, Int>::from_data(labels.as_slice(), device))
            })
            .collect();
        return Ok((
            batches,
            "random N(0,1) images, uniform random labels (no --data)".to_string(),
        ));
    };
    let set = load_mnist_dir(dir, Split::Train)
        .map_err(|e| anyhow::anyhow!("--data {}: {e}", dir.display()))?;
    let [h, w] = [set.height, set.width];
    if set.channels != 1 || [h, w] != [28, 28] || set.len < 64 {
        anyhow::bail!(
            "--data {}: expected at least 64 training images of 1x28x28, found {} of {}x{}x{}",
            dir.display(),
            set.len,
            set.channels,
            h,
            w
        );
    }
    let count = set.images.len() as f64;
    let mean = set.images.iter().map(|&p| p as f64).sum::<f64>() / count;
    let var = set
        .images
        .iter()
        .map(|&p| (p as f64 - mean).powi(2))
        .sum::<f64>()
        / count;
    let (mean, std) = ((mean / 255.0) as f32, (var.sqrt() / 255.0) as f32);
    let mut order: Vec<usize> = (0..set.len).collect();
    order.shuffle(&mut rng);
    let batches = order
        .chunks_exact(64)
        .take(n)
        .map(|idx| {
            let mut xs = Vec::with_capacity(64 * 784);
            for &i in idx {
                xs.extend(
                    set.image(i)
                        .iter()
                        .map(|&p| (p as f32 / 255.0 - mean) / std),
                );
            }
            let labels: Vec<i64> = idx.iter().map(|&i| set.label(i) as i64).collect();
            (
                Tensor::<1>::from_data(xs.as_slice(), device).reshape([64, 1, 28, 28]),
                Tensor::<1, Int>::from_data(labels.as_slice(), device),
            )
        })
        .collect();
    Ok((
        batches,
        format!(
            "{} training images from {}, shuffled",
            set.len,
            dir.display()
        ),
    ))
}

/// Runs every case; `report` is called with a line of text after each one (live output).
/// Fails only when `config.data` cannot be read.
pub fn run(
    config: &CnnStepBenchConfig,
    mut report: impl FnMut(&str),
) -> anyhow::Result<CnnStepReport> {
    let load = LoadMeter::start();
    let device = Device::flex().autodiff();
    device.seed(0);
    crate::ops::seed_dropout(0);
    let (batches, data) = mnist_batches(config.data.as_deref(), 64, &device)?;
    let x = batches[0].0.clone();
    let cnn = |spec: &str| {
        let spec: ActivationSpec = spec.parse().expect("built-in variant");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        MnistCnn::new(&spec, CnnReading::Reference, &mut rng, &device).expect("valid CNN")
    };
    let fwd = |m: &MnistCnn, x: Tensor<4>| m.forward(x);
    report(&format!(
        "MNIST-example CNN, batch 64, Adam, {data}; median step of {} timed after {} warm-up \
         (stock ops: {} after {}), ms\n{:<44} {:>8} {:>13} {:>8} {:>8} {:>8}",
        config.steps,
        config.warmup,
        config.steps.min(30),
        config.warmup.min(10),
        "case",
        "step",
        "p10–p90",
        "forward",
        "backward",
        "adam"
    ));
    let mut mnist_cnn = Vec::new();
    let mut step = |name: &str, spec: &str, fast: bool, out: &mut Vec<StepCase>| {
        crate::ops::set_enabled(fast);
        let (warmup, steps) = if fast {
            (config.warmup, config.steps)
        } else {
            (config.warmup.min(10), config.steps.min(30))
        };
        let c = time_steps(name.to_string(), cnn(spec), &fwd, &batches, warmup, steps);
        report(&format!(
            "{:<44} {:>8.1} {:>13} {:>8.1} {:>8.1} {:>8.1}",
            c.name,
            c.step_ms,
            format!("{:.1}–{:.1}", c.p10_ms, c.p90_ms),
            c.forward_ms,
            c.backward_ms,
            c.optimizer_ms
        ));
        out.push(c);
    };
    // Out of the box: Burn's ops and glibc's default allocator settings.
    step(
        "relu, stock flex ops, default allocator",
        "relu",
        false,
        &mut mnist_cnn,
    );
    crate::tune_allocator();
    step("relu, stock flex ops", "relu", false, &mut mnist_cnn);
    step("relu, afu ops", "relu", true, &mut mnist_cnn);
    // The same with IEEE gradual underflow in every thread (afu flushes denormals by default:
    // `afu::fpenv`), to show what flushing is worth here.
    let flushed = crate::fpenv::flushes_denormals();
    crate::fpenv::set_flush_denormals_everywhere(false);
    step(
        "relu, afu ops, denormals not flushed",
        "relu",
        true,
        &mut mnist_cnn,
    );
    crate::fpenv::set_flush_denormals_everywhere(flushed);
    step(
        "afu-relu-8-layer, stock flex ops",
        "afu-relu-8-layer",
        false,
        &mut mnist_cnn,
    );
    step(
        "afu-relu-8-layer, afu ops",
        "afu-relu-8-layer",
        true,
        &mut mnist_cnn,
    );

    // The ops one by one.
    report(&format!(
        "\nops, forward+backward, median of {} (ms)\n{:<44} {:>8} {:>8} {:>8}",
        config.op_reps, "op", "stock", "afu", "ratio"
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let conv1 = conv2d_from(&Conv2dConfig::new([1, 32], [3, 3]), &mut rng, &device);
    let conv2 = conv2d_from(&Conv2dConfig::new([32, 64], [3, 3]), &mut rng, &device);
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let drop = DropoutConfig::new(0.25).init();
    let normal =
        |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let mut ops = Vec::new();
    let reps = config.op_reps;
    let mut op = |c: OpCase| {
        report(&format!(
            "{:<44} {:>8.2} {:>8.2} {:>8.2}",
            c.name, c.stock_ms, c.afu_ms, c.ratio
        ));
        ops.push(c);
    };
    op(op_case("conv1 3x3", &x, false, reps, &|t| {
        crate::ops::conv2d(&conv1, t)
    }));
    op(op_case(
        "conv2 3x3",
        &normal([64, 32, 26, 26]),
        true,
        reps,
        &|t| crate::ops::conv2d(&conv2, t),
    ));
    op(op_case(
        "relu",
        &normal([64, 32, 26, 26]),
        true,
        reps,
        &|t| crate::ops::relu(t),
    ));
    op(op_case(
        "max-pool 2x2",
        &normal([64, 64, 24, 24]),
        true,
        reps,
        &|t| crate::ops::max_pool2d(&pool, t),
    ));
    op(op_case(
        "dropout 0.25",
        &normal([64, 64, 12, 12]),
        true,
        reps,
        &|t| crate::ops::dropout(&drop, t),
    ));
    // MobileNet's block convolutions at CIFAR scale.
    let dw = conv2d_from(
        &Conv2dConfig::new([128, 128], [3, 3])
            .with_groups(128)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false),
        &mut rng,
        &device,
    );
    let pw = conv2d_from(
        &Conv2dConfig::new([128, 256], [1, 1]).with_bias(false),
        &mut rng,
        &device,
    );
    let b = config.mobilenet_batch.max(1);
    op(op_case(
        "depthwise 3x3",
        &normal([b, 128, 16, 16]),
        true,
        reps,
        &|t| crate::ops::conv2d(&dw, t),
    ));
    op(op_case(
        "pointwise 1x1",
        &normal([b, 128, 16, 16]),
        true,
        reps,
        &|t| crate::ops::conv2d(&pw, t),
    ));

    let mut mobilenet = Vec::new();
    if config.mobilenet_batch > 0 {
        report(&format!(
            "\nMobileNet-v1 (reference code), batch {b} of 3x32x32, Adam; median of {} steps (ms)",
            config.mobilenet_steps
        ));
        let xm = Tensor::<4>::random([b, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let labels: Vec<i64> = (0..b as i64).map(|i| i % 10).collect();
        let ym = Tensor::<1, Int>::from_data(labels.as_slice(), &device);
        for (name, fast) in [("stock flex ops", false), ("afu ops", true)] {
            crate::ops::set_enabled(fast);
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let spec: ActivationSpec = "relu".parse().expect("relu");
            let model = MobileNet::new(&spec, 10, &mut rng, &device).expect("valid MobileNet");
            let c = time_steps(
                format!("mobilenet-v1 relu, {name}"),
                model,
                &|m: &MobileNet, x| m.forward(x),
                &[(xm.clone(), ym.clone())],
                1,
                config.mobilenet_steps.max(1),
            );
            report(&format!(
                "{:<44} {:>8.1} {:>13} {:>8.1} {:>8.1} {:>8.1}",
                c.name,
                c.step_ms,
                format!("{:.1}–{:.1}", c.p10_ms, c.p90_ms),
                c.forward_ms,
                c.backward_ms,
                c.optimizer_ms
            ));
            mobilenet.push(c);
        }
        crate::ops::set_enabled(true);
    }

    let torch = config.python.as_deref().map(|py| {
        let t = run_torch(py, config, &["relu", "afu-relu-8-layer"]);
        if t.steps.is_empty() {
            report(&format!("\nPyTorch: not measured ({})", t.note));
        } else {
            report(&format!("\nPyTorch MNIST-CNN step ({}), ms", t.note));
            for s in &t.steps {
                report(&format!(
                    "{:<44} {:>8.1} {:>13}",
                    format!("pytorch {}", s.variant),
                    s.step_ms,
                    format!("{:.1}–{:.1}", s.p10_ms, s.p90_ms)
                ));
            }
        }
        t
    });

    let find = |v: &[StepCase], name: &str| v.iter().find(|c| c.name == name).map(|c| c.step_ms);
    let torch_step = |variant: &str| {
        torch
            .as_ref()
            .and_then(|t| t.steps.iter().find(|s| s.variant == variant))
            .map(|s| s.step_ms)
    };
    let mut ratios = Vec::new();
    let ours = find(&mnist_cnn, "relu, afu ops");
    if let Some(ours) = ours {
        for (label, other) in [
            (
                "cnn step: afu ops / stock flex (default allocator)",
                "relu, stock flex ops, default allocator",
            ),
            (
                "cnn step: afu ops / stock flex (tuned allocator)",
                "relu, stock flex ops",
            ),
            (
                "cnn step: denormals flushed / not flushed",
                "relu, afu ops, denormals not flushed",
            ),
        ] {
            if let Some(o) = find(&mnist_cnn, other) {
                ratios.push((label.to_string(), ours / o));
            }
        }
        if let Some(t) = torch_step("relu") {
            ratios.push(("cnn step, relu: afu ops / PyTorch".to_string(), ours / t));
        }
    }
    let afu_layer = find(&mnist_cnn, "afu-relu-8-layer, afu ops");
    if let (Some(a), Some(s)) = (
        afu_layer,
        find(&mnist_cnn, "afu-relu-8-layer, stock flex ops"),
    ) {
        ratios.push((
            "cnn step, per-layer AFU: afu ops / stock flex".to_string(),
            a / s,
        ));
    }
    if let (Some(a), Some(t)) = (afu_layer, torch_step("afu-relu-8-layer")) {
        ratios.push((
            "cnn step, per-layer AFU: PyTorch (paper's AFU) / afu, speed-up".to_string(),
            t / a,
        ));
    }
    if let [stock, ours] = &mobilenet[..] {
        ratios.push((
            "mobilenet-v1 step: afu ops / stock flex".to_string(),
            ours.step_ms / stock.step_ms,
        ));
    }
    Ok(CnnStepReport {
        cpu: host::cpu_model(),
        threads: rayon::current_num_threads(),
        data,
        foreign_load_cores: load.foreign_cores(),
        mnist_cnn,
        ops,
        mobilenet,
        torch,
        ratios,
    })
}
