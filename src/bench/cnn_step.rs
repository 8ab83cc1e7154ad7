//! `afu bench cnn-step`: one training step (forward, backward, Adam) of the MNIST-example CNN
//! and of MobileNet-v1, with Burn's stock Flex ops and with afu's own kernels
//! ([`crate::ops`]), plus the ops one by one — all measured in one run, so the ratios hold
//! even on a noisy machine. Optionally runs the same CNN step in PyTorch
//! (`scripts/torch_cnn_step.py`, when `python3` has `torch`) for a side-by-side number.
//!
//! The first case runs before the binary's allocator settings ([`crate::tune_allocator`]) are
//! applied, so "stock" is what a Burn user gets out of the box.

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

use super::median;
use crate::activation::ActivationSpec;
use crate::models::init::conv2d_from;
use crate::models::mnist_cnn::{CnnReading, MnistCnn};
use crate::models::mobilenet::MobileNet;

/// The PyTorch script, embedded so the benchmark works from any directory.
pub const TORCH_SCRIPT: &str = include_str!("../../scripts/torch_cnn_step.py");

/// Settings of the step benchmark.
#[derive(Debug, Clone)]
pub struct CnnStepBenchConfig {
    /// Timed steps per CNN case (median reported).
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed repetitions of each single op.
    pub op_reps: usize,
    /// MobileNet-v1 batch (32×32 RGB images); 0 skips MobileNet.
    pub mobilenet_batch: usize,
    /// Timed MobileNet steps.
    pub mobilenet_steps: usize,
    /// Python interpreter for the PyTorch side (`None`: skip it).
    pub python: Option<String>,
}

impl Default for CnnStepBenchConfig {
    fn default() -> Self {
        CnnStepBenchConfig {
            steps: 15,
            warmup: 3,
            op_reps: 9,
            mobilenet_batch: 32,
            mobilenet_steps: 3,
            python: None,
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

/// What the PyTorch script reported.
#[derive(Debug, Clone, Serialize)]
pub struct TorchResult {
    /// PyTorch version and threads, or why it did not run.
    pub note: String,
    /// Median step (ms), when it ran.
    pub step_ms: Option<f64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CnnStepReport {
    /// Threads in the rayon pool.
    pub threads: usize,
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

/// Busy CPU ticks of the whole machine and of this process (Linux `/proc`).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = cpu.first()? + cpu.get(1)? + cpu.get(2)? + cpu.get(5)? + cpu.get(6)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &own[own.rfind(')')? + 2..];
    let f: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14–17 of the file (utime, stime, and the same for waited-for children such as the
    // PyTorch script) are 11–14 after the name and state.
    let mut own_ticks = 0;
    for i in 11..=14 {
        own_ticks += f.get(i)?.parse::<u64>().ok()?;
    }
    Some((busy, own_ticks))
}

/// Times `steps` training steps of `model` (after `warmup` untimed ones).
fn time_steps<M: Module + Sized>(
    name: String,
    mut model: M,
    forward: &dyn Fn(&M, Tensor<4>) -> Tensor<2>,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
    warmup: usize,
    steps: usize,
) -> StepCase {
    let mut optim = crate::train::adam_torch_defaults().init();
    let batch = x.dims()[0];
    let mut rows = Vec::new();
    for i in 0..warmup + steps {
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
    let m = |k: usize| median(rows.iter().map(|r| r[k] * 1e3).collect());
    StepCase {
        name,
        step_ms: m(0),
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

/// Runs the PyTorch script with `python` and reads its JSON line.
fn run_torch(python: &str, steps: usize, warmup: usize) -> TorchResult {
    let fail = |note: String| TorchResult {
        note,
        step_ms: None,
    };
    let path = std::env::temp_dir().join(format!("afu-torch-cnn-step-{}.py", std::process::id()));
    if let Err(e) = std::fs::write(&path, TORCH_SCRIPT) {
        return fail(format!("could not write {}: {e}", path.display()));
    }
    let out = std::process::Command::new(python)
        .arg(&path)
        .args([
            "--json",
            "--steps",
            &steps.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(format!("could not run {python}: {e}")),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return fail(format!("{python} failed: {last}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return fail(format!("no JSON in the script's output: {text}"));
    };
    TorchResult {
        note: format!(
            "PyTorch {}, {} threads",
            v["torch"].as_str().unwrap_or("?"),
            v["threads"]
        ),
        step_ms: v["median_step_ms"].as_f64(),
    }
}

/// Runs every case; `report` is called with a line of text after each one (live output).
pub fn run(config: &CnnStepBenchConfig, mut report: impl FnMut(&str)) -> CnnStepReport {
    let start_ticks = cpu_ticks();
    let start = Instant::now();
    let device = Device::flex().autodiff();
    device.seed(0);
    crate::ops::seed_dropout(0);
    let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(labels.as_slice(), &device);
    let cnn = |spec: &str| {
        let spec: ActivationSpec = spec.parse().expect("built-in variant");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        MnistCnn::new(&spec, CnnReading::Reference, &mut rng, &device).expect("valid CNN")
    };
    let fwd = |m: &MnistCnn, x: Tensor<4>| m.forward(x);
    report(&format!(
        "MNIST-example CNN, batch 64, Adam; median of {} steps (ms)\n{:<44} {:>8} {:>8} {:>8} {:>8}",
        config.steps, "case", "step", "forward", "backward", "adam"
    ));
    let mut mnist_cnn = Vec::new();
    let mut step = |name: &str, spec: &str, fast: bool, out: &mut Vec<StepCase>| {
        crate::ops::set_enabled(fast);
        let c = time_steps(
            name.to_string(),
            cnn(spec),
            &fwd,
            &x,
            &y,
            config.warmup,
            config.steps,
        );
        report(&format!(
            "{:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            c.name, c.step_ms, c.forward_ms, c.backward_ms, c.optimizer_ms
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
                &xm,
                &ym,
                1,
                config.mobilenet_steps.max(1),
            );
            report(&format!(
                "{:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                c.name, c.step_ms, c.forward_ms, c.backward_ms, c.optimizer_ms
            ));
            mobilenet.push(c);
        }
        crate::ops::set_enabled(true);
    }

    let torch = config.python.as_deref().map(|py| {
        let t = run_torch(py, config.steps, config.warmup);
        match t.step_ms {
            Some(ms) => report(&format!(
                "\nPyTorch CNN step (relu): {ms:.1} ms ({})",
                t.note
            )),
            None => report(&format!("\nPyTorch: not measured ({})", t.note)),
        }
        t
    });

    let find = |v: &[StepCase], name: &str| v.iter().find(|c| c.name == name).map(|c| c.step_ms);
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
        ] {
            if let Some(o) = find(&mnist_cnn, other) {
                ratios.push((label.to_string(), ours / o));
            }
        }
        if let Some(t) = torch.as_ref().and_then(|t| t.step_ms) {
            ratios.push(("cnn step: afu ops / PyTorch".to_string(), ours / t));
        }
    }
    if let (Some(a), Some(s)) = (
        find(&mnist_cnn, "afu-relu-8-layer, afu ops"),
        find(&mnist_cnn, "afu-relu-8-layer, stock flex ops"),
    ) {
        ratios.push((
            "cnn step, per-layer AFU: afu ops / stock flex".to_string(),
            a / s,
        ));
    }
    if let [stock, ours] = &mobilenet[..] {
        ratios.push((
            "mobilenet-v1 step: afu ops / stock flex".to_string(),
            ours.step_ms / stock.step_ms,
        ));
    }
    let foreign_load_cores = match (start_ticks, cpu_ticks()) {
        (Some((b0, o0)), Some((b1, o1))) => {
            // SAFETY: sysconf only reads a constant.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
            let foreign = (b1 - b0).saturating_sub(o1 - o0) as f64 / hz;
            Some(foreign / start.elapsed().as_secs_f64())
        }
        _ => None,
    };
    CnnStepReport {
        threads: rayon::current_num_threads(),
        foreign_load_cores,
        mnist_cnn,
        ops,
        mobilenet,
        torch,
        ratios,
    }
}
