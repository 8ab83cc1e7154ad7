//! The `afu` command line: parse, build a config, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use afu::afu::{BaseActivation, KernelChoice};
use afu::bench::{self, CountingAlloc, KernelBenchConfig};
use afu::data::fetch::{self, DatasetName};
use afu::experiments::mnist::{self, MnistConfig};
use afu::experiments::smoothness::{self, SmoothnessConfig};
use afu::experiments::xor::{self, XorConfig};
use afu::experiments::xor_neuron::{self, XorNeuronConfig};
use afu::models::mnist_cnn::CnnReading;

/// Counts allocations so `afu bench` can report peak memory (two atomic adds per allocation).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Learned activation functions (AFUs): the paper's experiments and tools.
#[derive(Parser, Debug)]
#[command(name = "afu", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Toy XOR problem (paper §2.2.1): 2→4→1 net with a shared AFU vs fixed activations.
    Xor(XorArgs),
    /// One linear neuron + an AFU solves XOR on the four points (±1, ±1).
    XorNeuron(XorNeuronArgs),
    /// Smoothness of random-net landscapes under a learned AFU vs fixed activations (paper §2.2.2).
    Smoothness(SmoothnessArgs),
    /// MNIST-format data (MNIST, Fashion-MNIST, ...) with the PyTorch-example CNN (paper §2.2.3).
    Mnist(MnistArgs),
    /// CIFAR-10 (binary version) with the paper code's MobileNet (paper §2.2.4); a GPU job at full size.
    Cifar10(CifarArgs),
    /// Run (or continue, with --resume) the experiment a config.toml describes: a run folder's,
    /// or a sweep job's.
    Run(RunArgs),
    /// What each learned AFU of a run resembles: nearest known function, V shape, saturation, ...
    Inspect(InspectArgs),
    /// Evaluate the checkpoints of an `afu mnist` run, as trained and with baked (piecewise-linear) AFUs.
    Eval(EvalArgs),
    /// Bake learned AFUs into equivalent piecewise-linear relu AFUs (fast inference, stated error).
    Bake(BakeArgs),
    /// One Markdown report over run folders: our numbers beside the paper's, its conclusions measured.
    Report(ReportArgs),
    /// Benchmarks (timings and memory printed side by side from one run).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Datasets.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Args, Debug)]
struct MnistArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    afu_start: AfuStartArgs,
    /// Folder with the IDX files (raw or .gz) or mnist_train.csv / mnist_test.csv.
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    /// Comma-separated variants (default: relu, tanh, afu-relu-8, afu-relu-8-layer).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Epochs (default 10).
    #[arg(long)]
    epochs: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Activation placement: reference (after conv1, fc1, fc2) or paper (after conv1, conv2, fc1).
    #[arg(long, value_parser = parse_reading)]
    reading: Option<CnnReading>,
    /// Seed of initialisation, shuffling and dropout (the first seed with --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Runs per variant, with seeds S..S+K-1 from --seed S: summaries give mean ± std, 95 %
    /// intervals and paired tests between variants.
    #[arg(long)]
    seeds: Option<usize>,
    /// Continue from the checkpoints in --out (after an interruption).
    #[arg(long)]
    resume: bool,
    /// Where to train: cpu (default), cuda[:N] or wgpu[:N] (builds with --features cuda / wgpu).
    #[arg(long)]
    device: Option<String>,
    /// Data parallelism over several devices, e.g. `cuda:0,cuda:1`: each batch is split over
    /// them and the gradients added on the first (replaces --device).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    devices: Vec<String>,
}

fn parse_reading(s: &str) -> Result<CnnReading, String> {
    match s {
        "reference" => Ok(CnnReading::Reference),
        "paper" => Ok(CnnReading::Paper),
        _ => Err(format!(
            "unknown reading '{s}': expected reference or paper"
        )),
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A config.toml written by any experiment (its `experiment` field says which).
    config: PathBuf,
    /// Output folder (default: runs/<experiment>/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the checkpoints in --out (mnist, cifar10; the others run again).
    #[arg(long)]
    resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// A run folder (with afu.json, and histograms.json when recorded) or an AFU file.
    source: PathBuf,
    /// Only AFUs whose name starts with this (e.g. afu-relu-128/seed0).
    #[arg(long)]
    afu_name: Option<String>,
    /// Input range used when the run recorded no input histogram.
    #[arg(long, default_value_t = 5.0)]
    range: f64,
    /// Where to write inspect.json and figures/inspect/ (default: the run folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CifarArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    afu_start: AfuStartArgs,
    /// Folder with data_batch_1..5.bin and test_batch.bin (or cifar-10-batches-bin/ inside it).
    #[arg(long, default_value = "data/cifar10")]
    data: PathBuf,
    /// Comma-separated variants (default: relu, mish, swish, afu-relu-8, afu-relu-8-layer).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Epochs (default 100).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (default 100, as in the paper; the reference code used 128).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Seed (the first seed with --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Runs per variant, with seeds S..S+K-1 from --seed S: summaries give mean ± std, 95 %
    /// intervals and paired tests between variants.
    #[arg(long)]
    seeds: Option<usize>,
    /// Continue from the checkpoints in --out.
    #[arg(long)]
    resume: bool,
    /// Where to train: cpu (default), cuda[:N] or wgpu[:N].
    #[arg(long)]
    device: Option<String>,
    /// Data parallelism over several devices, e.g. `cuda:0,cuda:1`: each batch is split over
    /// them and the gradients added on the first (replaces --device).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    devices: Vec<String>,
    /// Network: mobilenet-v1 (the reference code's, default) or mobilenet-v2 (the paper's text).
    #[arg(long, value_parser = parse_cifar_model)]
    model: Option<afu::experiments::cifar::CifarModel>,
}

fn parse_cifar_model(s: &str) -> Result<afu::experiments::cifar::CifarModel, String> {
    use afu::experiments::cifar::CifarModel;
    match s {
        "mobilenet-v1" | "v1" => Ok(CifarModel::MobilenetV1),
        "mobilenet-v2" | "v2" => Ok(CifarModel::MobilenetV2),
        _ => Err(format!(
            "unknown model '{s}': expected mobilenet-v1 or mobilenet-v2"
        )),
    }
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// The `afu mnist` run folder.
    run: PathBuf,
    /// Test data folder (default: the one in the run's config.toml).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Bake over [-range, range]; linear extension outside.
    #[arg(long, default_value_t = 8.0)]
    range: f64,
    /// Target bake error, relative to the AFU's output range.
    #[arg(long, default_value_t = 1e-3)]
    max_error: f64,
}

#[derive(Args, Debug)]
struct BakeArgs {
    /// A run folder or afu.json.
    source: PathBuf,
    /// Only AFUs whose name starts with this.
    #[arg(long)]
    afu_name: Option<String>,
    /// Bake over [-range, range]; linear extension outside.
    #[arg(long, default_value_t = 8.0)]
    range: f64,
    /// Target error, relative to the AFU's output range.
    #[arg(long, default_value_t = 1e-3)]
    max_error: f64,
    /// Output AFU file.
    #[arg(long, default_value = "baked-afu.json")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Run folders (of xor, xor-neuron, smoothness, mnist).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The report file.
    #[arg(long, default_value = "runs/report.md")]
    out: PathBuf,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Forward+backward of Burn's relu vs the plain-ops AFU vs the fused AFU on one tensor.
    Kernels(BenchKernelArgs),
    /// A training step of the MNIST CNN and of MobileNet-v1 with Burn's stock ops vs afu's
    /// kernels (and the ops one by one); `--pytorch` adds PyTorch's step for comparison.
    CnnStep(BenchCnnStepArgs),
}

#[derive(Args, Debug)]
struct BenchCnnStepArgs {
    /// Timed training steps per CNN case (median reported).
    #[arg(long, default_value_t = 15)]
    steps: usize,
    /// Timed repetitions of each single op.
    #[arg(long, default_value_t = 9)]
    op_reps: usize,
    /// MobileNet-v1 batch (0 skips MobileNet).
    #[arg(long, default_value_t = 32)]
    mobilenet_batch: usize,
    /// Also run the same CNN step in PyTorch with this Python (needs `torch` installed), e.g.
    /// `--pytorch python3`.
    #[arg(long, value_name = "PYTHON")]
    pytorch: Option<String>,
    /// A smoke test: 2 steps per case, MobileNet batch 2.
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchKernelArgs {
    /// Timed repetitions per case (median reported); the plain-ops AFU runs at most 7 (N ≤ 32)
    /// or 3 (N > 32, seconds per pass).
    #[arg(long, default_value_t = 21)]
    reps: usize,
    /// Hidden-unit counts N to run.
    #[arg(long, value_delimiter = ',', default_values_t = [8, 128])]
    hidden: Vec<usize>,
    /// Base activations to run.
    #[arg(long, value_delimiter = ',', default_values_t = [BaseActivation::Relu, BaseActivation::Sigmoid, BaseActivation::Mish])]
    bases: Vec<BaseActivation>,
    /// Skip the plain-ops AFU (the slow cases: seconds each at N=128).
    #[arg(long)]
    fused_only: bool,
    /// Small tensor (8×32×26×26) and N=8 only: a smoke test.
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Download a dataset (mnist, fashion-mnist, cifar10), verify checksums, write atomically.
    Fetch(FetchArgs),
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// mnist, fashion-mnist or cifar10.
    dataset: String,
    /// Target folder (default: data/<dataset>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Base URL to download from instead of the default mirrors (repeatable).
    #[arg(long)]
    mirror: Vec<String>,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct XorNeuronArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Comma-separated variants (default: afu-sigmoid-128, afu-relu-8, relu, tanh).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Seeds per variant.
    #[arg(long)]
    seeds: Option<usize>,
    /// Training steps.
    #[arg(long)]
    steps: Option<usize>,
}

#[derive(Args, Debug)]
struct SmoothnessArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// AFU file (afu.json) or run folder holding one; without it an AFU is trained on XOR first.
    #[arg(long)]
    afu_from: Option<PathBuf>,
    /// Which AFU of that file: a name or prefix such as afu-relu-128/seed0 (default: the first).
    #[arg(long)]
    afu_name: Option<String>,
    /// Number of random nets.
    #[arg(long)]
    nets: Option<usize>,
    /// Grid points per side.
    #[arg(long)]
    grid: Option<usize>,
}

/// Options shared by every experiment.
#[derive(Args, Debug)]
struct CommonArgs {
    /// Output folder (default: runs/<experiment>/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tiny settings (a few steps, small data): a smoke test that finishes in seconds.
    #[arg(long)]
    quick: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// AFU implementation: auto (fused where available), reference (plain tensor ops), fused.
    #[arg(long, value_parser = parse_kernel)]
    kernel: Option<KernelChoice>,
}

/// How learned AFUs start: transfer, known-function init, freezing.
#[derive(Args, Debug)]
struct AfuStartArgs {
    /// Start the AFUs from those of another run (its folder or afu.json): transfer.
    #[arg(long)]
    afu_from: Option<PathBuf>,
    /// Which AFUs of that file (name or prefix, e.g. afu-relu-8/seed0); one AFU is used for all.
    #[arg(long)]
    afu_name: Option<String>,
    /// Initialise the AFUs to approximate a known function (relu, leaky-relu, tanh, mish, ...).
    #[arg(long)]
    afu_init: Option<String>,
    /// Keep the AFUs fixed during training.
    #[arg(long)]
    freeze_afu: bool,
}

impl AfuStartArgs {
    fn into_start(self) -> Result<afu::experiments::common::AfuStart, UsageError> {
        if let Some(p) = &self.afu_from
            && !p.exists()
        {
            return Err(UsageError(format!(
                "--afu-from {}: no such file or folder",
                p.display()
            )));
        }
        let afu_init = match self.afu_init {
            Some(name) => Some(
                name.parse::<afu::afu::BaseActivation>()
                    .map_err(|e| UsageError(format!("--afu-init: {e}")))?,
            ),
            None => None,
        };
        Ok(afu::experiments::common::AfuStart {
            afu_from: self.afu_from,
            afu_name: self.afu_name,
            afu_init,
            freeze_afu: self.freeze_afu,
        })
    }
}

#[derive(Args, Debug)]
struct XorArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    afu_start: AfuStartArgs,
    /// Comma-separated variants: afu-<base>-<N> or a fixed activation (relu, tanh, ...).
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Seeds per variant.
    #[arg(long)]
    seeds: Option<usize>,
    /// First seed.
    #[arg(long)]
    first_seed: Option<u64>,
    /// Training steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Points per Gaussian blob.
    #[arg(long)]
    points_per_blob: Option<usize>,
    /// Blob centres at (±c, ±c): 1.5 in the reference code, 1 in the paper's text.
    #[arg(long)]
    centre: Option<f32>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f64>,
}

fn parse_kernel(s: &str) -> Result<KernelChoice, String> {
    match s {
        "auto" => Ok(KernelChoice::Auto),
        "reference" => Ok(KernelChoice::Reference),
        "fused" => Ok(KernelChoice::Fused),
        _ => Err(format!(
            "unknown kernel '{s}': expected auto, reference or fused"
        )),
    }
}

/// An error in what the user asked for (exit code 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// `--device` / `--devices` as (main device, data-parallel devices); `None` when neither is given.
#[allow(clippy::type_complexity)]
fn device_choices(
    device: Option<String>,
    devices: &[String],
) -> Result<Option<(afu::device::DeviceChoice, Vec<afu::device::DeviceChoice>)>, UsageError> {
    if !devices.is_empty() {
        let all: Vec<_> = devices
            .iter()
            .map(|d| device_choice(d))
            .collect::<Result<_, _>>()?;
        return Ok(Some((all[0], all)));
    }
    match device {
        Some(d) => Ok(Some((device_choice(&d)?, Vec::new()))),
        None => Ok(None),
    }
}

/// A `--device` value that this build can use.
fn device_choice(name: &str) -> Result<afu::device::DeviceChoice, UsageError> {
    let choice: afu::device::DeviceChoice = name
        .parse()
        .map_err(|e: afu::device::DeviceError| UsageError(e.to_string()))?;
    choice.device().map_err(|e| UsageError(e.to_string()))?;
    Ok(choice)
}

/// Errors in what the user supplied (settings, AFU files) are usage errors (exit code 2); the
/// rest get `context` and exit code 1.
fn classify(e: afu::experiments::common::ExperimentError, context: String) -> anyhow::Error {
    use afu::experiments::common::ExperimentError as E;
    match e {
        E::Config { .. } | E::AfuFile(_) => anyhow::Error::new(UsageError(e.to_string())),
        E::Interrupted { .. } => anyhow::Error::new(e),
        other => anyhow::Error::new(other).context(context),
    }
}

fn run_xor(args: XorArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        XorConfig::quick()
    } else {
        XorConfig::default()
    };
    if let Some(v) = args.variants {
        config.variants = v;
    }
    macro_rules! set {
        ($($f:ident),*) => {$(if let Some(v) = args.$f { config.$f = v; })*};
    }
    set!(seeds, first_seed, steps, points_per_blob, centre, lr);
    config.afu_start = args.afu_start.into_start()?;
    if let Some(k) = args.common.kernel {
        config.kernel = k;
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    let out = args.common.out.unwrap_or_else(xor::default_out);
    let summary = xor::run(&config, &out, !args.common.no_progress)
        .map_err(|e| classify(e, format!("afu xor (output folder {})", out.display())))?;
    print_xor(&summary, &out);
    Ok(())
}

fn print_xor(summary: &xor::XorSummary, out: &std::path::Path) {
    println!(
        "{:<18} {:>22} {:>22} {:>10}",
        "variant", "test accuracy", "test AUC", "s/run"
    );
    for v in &summary.variants {
        println!(
            "{:<18} {:>13.4} ± {:<6.4} {:>13.4} ± {:<6.4} {:>10.2}",
            v.name,
            v.test_accuracy_mean,
            v.test_accuracy_std,
            v.test_auc_mean,
            v.test_auc_std,
            v.seconds_mean
        );
    }
    println!(
        "Bayes accuracy {:.4}; {:.1} s in all; results in {}",
        summary.bayes_accuracy,
        summary.total_seconds,
        out.display()
    );
}

fn run_xor_neuron(args: XorNeuronArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        XorNeuronConfig::quick()
    } else {
        XorNeuronConfig::default()
    };
    if let Some(v) = args.variants {
        config.variants = v;
    }
    if let Some(v) = args.seeds {
        config.seeds = v;
    }
    if let Some(v) = args.steps {
        config.steps = v;
    }
    if let Some(k) = args.common.kernel {
        config.kernel = k;
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    let out = args.common.out.unwrap_or_else(xor_neuron::default_out);
    let s = xor_neuron::run(&config, &out, !args.common.no_progress)
        .with_context(|| format!("afu xor-neuron (output folder {})", out.display()))?;
    print_xor_neuron(&s, &out);
    Ok(())
}

fn print_xor_neuron(s: &xor_neuron::XorNeuronSummary, out: &std::path::Path) {
    println!(
        "{:<18} {:>8} {:>9} {:>9}",
        "variant", "solved", "mean AUC", "accuracy"
    );
    for v in &s.variants {
        println!(
            "{:<18} {:>5}/{:<2} {:>9.3} {:>9.3}",
            v.name, v.solved, v.runs, v.auc_mean, v.accuracy_mean
        );
    }
    println!("{:.1} s; results in {}", s.total_seconds, out.display());
}

fn run_smoothness(args: SmoothnessArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        SmoothnessConfig::quick()
    } else {
        SmoothnessConfig::default()
    };
    if let Some(p) = args.afu_from {
        if !p.exists() {
            return Err(UsageError(format!(
                "--afu-from {}: no such file or folder",
                p.display()
            ))
            .into());
        }
        config.afu_from = Some(p);
    }
    config.afu_name = args.afu_name.or(config.afu_name);
    if let Some(v) = args.nets {
        config.nets = v;
    }
    if let Some(v) = args.grid {
        config.grid = v;
    }
    let out = args.common.out.unwrap_or_else(smoothness::default_out);
    let s = smoothness::run(&config, &out, !args.common.no_progress).map_err(|e| match e {
        afu::experiments::common::ExperimentError::Config { .. }
        | afu::experiments::common::ExperimentError::AfuFile(_) => {
            anyhow::Error::new(UsageError(e.to_string()))
        }
        other => anyhow::Error::new(other)
            .context(format!("afu smoothness (output folder {})", out.display())),
    })?;
    print_smoothness(&s, &out);
    Ok(())
}

fn print_smoothness(s: &smoothness::SmoothnessSummary, out: &std::path::Path) {
    println!("AFU: {}", s.afu_source);
    println!(
        "{:<12} {:>16} {:>16} {:>16}",
        "activation", "mean gradient", "total variation", "curvature"
    );
    for a in &s.activations {
        println!(
            "{:<12} {:>9.3} ± {:<5.3} {:>9.3} ± {:<5.3} {:>9.2} ± {:<5.2}",
            a.name,
            a.mean_gradient_mean,
            a.mean_gradient_std,
            a.total_variation_mean,
            a.total_variation_std,
            a.curvature_mean,
            a.curvature_std
        );
    }
    println!("{:.1} s; results in {}", s.total_seconds, out.display());
}

fn run_mnist(args: MnistArgs) -> anyhow::Result<()> {
    let mut config = if args.common.quick {
        MnistConfig::quick(args.data.clone())
    } else {
        MnistConfig::paper(args.data.clone())
    };
    if let Some(v) = args.variants {
        config.variants = v;
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if args.limit_train.is_some() {
        config.limit_train = args.limit_train;
    }
    if args.limit_test.is_some() {
        config.limit_test = args.limit_test;
    }
    if let Some(r) = args.reading {
        config.reading = r;
    }
    if let Some(s) = args.seed {
        config.seed = s;
    }
    if let Some(k) = args.seeds {
        config.seeds = k;
    }
    config.afu_start = args.afu_start.into_start()?;
    if let Some(k) = args.common.kernel {
        config.kernel = k;
    }
    if let Some((device, devices)) = device_choices(args.device, &args.devices)? {
        (config.device, config.devices) = (device, devices);
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    if args.resume && args.common.out.is_none() {
        return Err(UsageError(
            "--resume needs --out DIR (the folder of the run to continue)".into(),
        )
        .into());
    }
    let out = args.common.out.unwrap_or_else(mnist::default_out);
    let s = mnist::run(&config, &out, !args.common.no_progress, args.resume)
        .map_err(|e| classify(e, format!("afu mnist (output folder {})", out.display())))?;
    print_image_summary(&s, &out);
    Ok(())
}

/// The results of `afu mnist` / `afu cifar10`: per variant over seeds, then the paired tests.
fn print_image_summary(s: &afu::experiments::image::ImageSummary, out: &std::path::Path) {
    println!(
        "{:<20} {:>5} {:>18} {:>19} {:>8} {:>8} {:>9}",
        "variant", "seeds", "test acc (mean±std)", "95 % interval", "top-3", "best", "s/epoch"
    );
    for v in &s.variants {
        let std = v
            .test_accuracy_std
            .map(|d| format!("± {d:.4}"))
            .unwrap_or_default();
        let ci = v
            .test_accuracy_ci95
            .map(|[lo, hi]| format!("[{lo:.4}, {hi:.4}]"))
            .unwrap_or_else(|| "–".into());
        println!(
            "{:<20} {:>5} {:>9.4} {:<8} {:>19} {:>8.4} {:>8.4} {:>9.1}",
            v.name,
            v.seeds.len(),
            v.test_accuracy_mean,
            std,
            ci,
            v.top3_accuracy,
            v.best_test_accuracy,
            v.epoch_seconds_mean
        );
    }
    if !s.comparisons.is_empty() {
        println!(
            "\n{:<42} {:>5} {:>10} {:>21} {:>8}",
            "paired: a − b (test accuracy)", "seeds", "mean diff", "95 % interval", "p"
        );
        for c in &s.comparisons {
            let ci = c
                .result
                .ci95
                .map(|[lo, hi]| format!("[{lo:+.4}, {hi:+.4}]"))
                .unwrap_or_else(|| "–".into());
            let p = c
                .result
                .p_value
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "–".into());
            println!(
                "{:<42} {:>5} {:>+10.4} {:>21} {:>8}",
                format!("{} − {}", c.a, c.b),
                c.result.n,
                c.result.mean_difference,
                ci,
                p
            );
        }
    }
    println!(
        "{} train / {} test images; {:.1} s; results in {}",
        s.train_images,
        s.test_images,
        s.total_seconds,
        out.display()
    );
}

/// `afu run CONFIG`: the experiment a config.toml describes.
fn run_config(a: RunArgs) -> anyhow::Result<()> {
    use afu::experiments::{RunConfig, cifar};
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| UsageError(format!("{}: {e}", a.config.display())))?;
    let config: RunConfig = toml::from_str(&text).map_err(|e| {
        UsageError(format!(
            "{}: not an afu run config: {}",
            a.config.display(),
            e.to_string().lines().next().unwrap_or("")
        ))
    })?;
    let in_file = |e: afu::experiments::common::ExperimentError| {
        UsageError(format!("{}: {e}", a.config.display()))
    };
    let progress = !a.no_progress;
    if a.resume && a.out.is_none() {
        return Err(UsageError(
            "--resume needs --out DIR (the folder of the run to continue)".into(),
        )
        .into());
    }
    let context = |what: &str, out: &std::path::Path| {
        format!(
            "afu run {} ({what}, output folder {})",
            a.config.display(),
            out.display()
        )
    };
    match config {
        RunConfig::Xor(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(xor::default_out);
            let s = xor::run(&c, &out, progress).map_err(|e| classify(e, context("xor", &out)))?;
            print_xor(&s, &out);
        }
        RunConfig::XorNeuron(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(xor_neuron::default_out);
            let s = xor_neuron::run(&c, &out, progress)
                .map_err(|e| classify(e, context("xor-neuron", &out)))?;
            print_xor_neuron(&s, &out);
        }
        RunConfig::Smoothness(c) => {
            let out = a.out.clone().unwrap_or_else(smoothness::default_out);
            let s = smoothness::run(&c, &out, progress)
                .map_err(|e| classify(e, context("smoothness", &out)))?;
            print_smoothness(&s, &out);
        }
        RunConfig::Mnist(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(mnist::default_out);
            let s = mnist::run(&c, &out, progress, a.resume)
                .map_err(|e| classify(e, context("mnist", &out)))?;
            print_image_summary(&s, &out);
        }
        RunConfig::Cifar10(c) => {
            c.validate().map_err(in_file)?;
            let out = a.out.clone().unwrap_or_else(cifar::default_out);
            let s = cifar::run(&c, &out, progress, a.resume)
                .map_err(|e| classify(e, context("cifar10", &out)))?;
            print_image_summary(&s, &out);
        }
    }
    Ok(())
}

fn run_inspect(a: InspectArgs) -> anyhow::Result<()> {
    if !a.source.exists() {
        return Err(UsageError(format!("{}: no such file or folder", a.source.display())).into());
    }
    if !(a.range.is_finite() && a.range > 0.0) {
        return Err(UsageError(format!(
            "--range must be a positive number, got {}",
            a.range
        ))
        .into());
    }
    let out = a
        .out
        .unwrap_or_else(|| afu::experiments::inspect::default_out(&a.source));
    let rows =
        afu::experiments::inspect::run(&a.source, a.afu_name.as_deref(), (-a.range, a.range), &out)
            .map_err(|e| match e {
                afu::experiments::common::ExperimentError::AfuFile(_) => {
                    anyhow::Error::new(UsageError(e.to_string()))
                }
                other => {
                    anyhow::Error::new(other).context(format!("afu inspect {}", a.source.display()))
                }
            })?;
    println!(
        "{:<34} {:<14} {:>6} {:<11} {:>7} {:>8} {:>8} {:>6} {:>7}",
        "AFU", "nearest", "error", "shape", "argmin", "slope-∞", "slope+∞", "dead", "linear"
    );
    for r in &rows {
        println!(
            "{:<34} {:<14} {:>6.3} {:<11} {:>7.2} {:>8.3} {:>8.3} {:>5.1}% {:>7.3}",
            r.name,
            r.equally_near.join("≈"),
            r.nearest_error,
            r.shape.kind,
            r.shape.argmin,
            r.shape.slope_left,
            r.shape.slope_right,
            100.0 * r.shape.dead_fraction,
            r.shape.distance_from_linear
        );
    }
    println!(
        "(error: fit RMS / std of the AFU over its inputs; linear: the same for the best straight line)"
    );
    println!("written: {}", out.join("inspect.json").display());
    Ok(())
}

fn run_cifar(args: CifarArgs) -> anyhow::Result<()> {
    use afu::experiments::cifar::{self, CifarConfig};
    let mut config = if args.common.quick {
        CifarConfig::quick(args.data.clone())
    } else {
        CifarConfig::paper(args.data.clone())
    };
    if let Some(v) = args.variants {
        config.variants = v;
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if args.limit_train.is_some() {
        config.limit_train = args.limit_train;
    }
    if args.limit_test.is_some() {
        config.limit_test = args.limit_test;
    }
    if let Some(s) = args.seed {
        config.seed = s;
    }
    if let Some(k) = args.seeds {
        config.seeds = k;
    }
    if let Some(m) = args.model {
        config.model = m;
    }
    if let Some(k) = args.common.kernel {
        config.kernel = k;
    }
    config.afu_start = args.afu_start.into_start()?;
    if let Some((device, devices)) = device_choices(args.device, &args.devices)? {
        (config.device, config.devices) = (device, devices);
    }
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    if args.resume && args.common.out.is_none() {
        return Err(UsageError(
            "--resume needs --out DIR (the folder of the run to continue)".into(),
        )
        .into());
    }
    let out = args.common.out.unwrap_or_else(cifar::default_out);
    let s = cifar::run(&config, &out, !args.common.no_progress, args.resume)
        .map_err(|e| classify(e, format!("afu cifar10 (output folder {})", out.display())))?;
    print_image_summary(&s, &out);
    Ok(())
}

fn run_eval(a: EvalArgs) -> anyhow::Result<()> {
    if !a.run.is_dir() {
        return Err(UsageError(format!("{}: not a run folder", a.run.display())).into());
    }
    let rows = mnist::evaluate_run(&a.run, a.data.as_deref(), a.range, a.max_error)
        .map_err(|e| classify(e, format!("afu eval {}", a.run.display())))?;
    println!(
        "{:<20} {:>6} {:>9} {:>8} {:>11} {:>9} {:>10} {:>6}",
        "variant", "seed", "accuracy", "s", "baked acc", "baked s", "bake err", "knots"
    );
    for r in &rows {
        let opt =
            |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "–".into());
        println!(
            "{:<20} {:>6} {:>9.4} {:>8.2} {:>11} {:>9} {:>10} {:>6}",
            r.variant,
            r.seed,
            r.test_accuracy,
            r.seconds,
            opt(r.baked_test_accuracy, 4),
            opt(r.baked_seconds, 2),
            r.bake_max_error
                .map(|e| format!("{e:.1e}"))
                .unwrap_or_else(|| "–".into()),
            r.bake_knots
                .map(|k| k.to_string())
                .unwrap_or_else(|| "–".into())
        );
    }
    println!("written: {}", a.run.join("eval.json").display());
    Ok(())
}

fn run_bake(a: BakeArgs) -> anyhow::Result<()> {
    use afu::afu::file::{AfuFile, NamedAfu};
    if !a.source.exists() {
        return Err(UsageError(format!("{}: no such file or folder", a.source.display())).into());
    }
    if !(a.range > 0.0 && a.max_error > 0.0) {
        return Err(UsageError("--range and --max-error must be positive".into()).into());
    }
    let file = AfuFile::load(&a.source).map_err(|e| UsageError(e.to_string()))?;
    let chosen = file
        .select(a.afu_name.as_deref(), &a.source)
        .map_err(|e| UsageError(e.to_string()))?;
    let mut out = Vec::new();
    println!(
        "{:<40} {:>6} {:>10} {:>12}",
        "AFU", "knots", "max error", "error at 2×"
    );
    for n in chosen {
        let b = afu::afu::bake::bake(&n.params, a.range, a.max_error, 4096);
        println!(
            "{:<40} {:>6} {:>10.2e} {:>12.2e}",
            n.name, b.knots, b.max_error, b.max_error_2x
        );
        out.push(NamedAfu {
            name: format!("{} (baked)", n.name),
            params: b.params,
        });
    }
    AfuFile::new(format!("bake of {}", a.source.display()), out).save(&a.out)?;
    println!(
        "written: {} (relu AFUs; max error over [-{r}, {r}])",
        a.out.display(),
        r = a.range
    );
    Ok(())
}

fn run_report(a: ReportArgs) -> anyhow::Result<()> {
    for r in &a.runs {
        if !r.is_dir() {
            return Err(UsageError(format!("{}: not a run folder", r.display())).into());
        }
    }
    afu::experiments::report::run(&a.runs, &a.out)
        .map_err(|e| classify(e, format!("afu report into {}", a.out.display())))?;
    println!("report written: {}", a.out.display());
    Ok(())
}

fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Kernels(a) => {
            let mut config = KernelBenchConfig {
                reps: a.reps.max(1),
                hidden: a.hidden.clone(),
                bases: a.bases.clone(),
                plain_ops: !a.fused_only,
                ..KernelBenchConfig::default()
            };
            if a.quick {
                config.shape = [8, 32, 26, 26];
                config.hidden = vec![8];
            }
            let json = a.json;
            if !json {
                println!(
                    "forward+backward on {:?} ({} elements), {} threads; median of {} reps \
                     (plain-ops: at most 7, or 3 at N > 32)",
                    config.shape,
                    config.shape.iter().product::<usize>(),
                    rayon::current_num_threads(),
                    config.reps
                );
                println!(
                    "{:<40} {:>10} {:>9} {:>12} {:>9}",
                    "case", "ms", "× relu", "peak MB", "mem × relu"
                );
            }
            let report = bench::run_kernels(&config, |c| {
                if !json {
                    println!(
                        "{:<40} {:>10.2} {:>9.2} {:>12.1} {:>9.2}",
                        c.name,
                        c.median_ms,
                        c.ratio_to_relu,
                        c.peak_extra_bytes as f64 / 1e6,
                        c.memory_ratio_to_relu
                    );
                }
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        BenchCommand::CnnStep(a) => {
            let mut config = bench::cnn_step::CnnStepBenchConfig {
                steps: a.steps.max(1),
                op_reps: a.op_reps.max(1),
                mobilenet_batch: a.mobilenet_batch,
                python: a.pytorch,
                ..Default::default()
            };
            if a.quick {
                config.steps = 2;
                config.warmup = 1;
                config.op_reps = 2;
                config.mobilenet_batch = config.mobilenet_batch.min(2);
                config.mobilenet_steps = 1;
            }
            let json = a.json;
            if !json {
                println!("{} threads", rayon::current_num_threads());
            }
            let report = bench::cnn_step::run(&config, |line| {
                if !json {
                    println!("{line}");
                }
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!();
                for (label, r) in &report.ratios {
                    println!("{label:<56} {r:>6.2}");
                }
                if let Some(f) = report.foreign_load_cores {
                    println!("CPU used by other processes during the run: {f:.2} cores");
                }
            }
            Ok(())
        }
    }
}

fn run_data(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Fetch(a) => {
            let ds: DatasetName = a
                .dataset
                .parse()
                .map_err(|e: fetch::FetchError| UsageError(e.to_string()))?;
            let dir = a
                .dir
                .unwrap_or_else(|| PathBuf::from("data").join(ds.as_str()));
            let report = fetch::fetch(ds, &dir, &a.mirror, !a.no_progress)
                .with_context(|| format!("afu data fetch {ds} into {}", dir.display()))?;
            print!("{report}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Output piped into `head` and the like: end quietly when the reader goes away, as other
    // command-line tools do, instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // `afu bench cnn-step` measures Burn's ops with the default allocator settings first and
    // applies ours itself.
    if !matches!(cli.command, Command::Bench(BenchCommand::CnnStep(_))) {
        afu::tune_allocator();
    }
    if let Err(e) = afu::interrupt::install_handler() {
        eprintln!(
            "warning: no Ctrl-C handler ({e}); an interrupted run keeps only its last epoch's checkpoint"
        );
    }
    let result = match cli.command {
        Command::Xor(a) => run_xor(a),
        Command::XorNeuron(a) => run_xor_neuron(a),
        Command::Smoothness(a) => run_smoothness(a),
        Command::Mnist(a) => run_mnist(a),
        Command::Cifar10(a) => run_cifar(a),
        Command::Run(a) => run_config(a),
        Command::Inspect(a) => run_inspect(a),
        Command::Report(a) => run_report(a),
        Command::Eval(a) => run_eval(a),
        Command::Bake(a) => run_bake(a),
        Command::Bench(c) => run_bench(c),
        Command::Data(c) => run_data(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                matches!(
                        c.downcast_ref::<afu::experiments::common::ExperimentError>(),
                        Some(afu::experiments::common::ExperimentError::Interrupted { .. })
                    )
            }) =>
        {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            let usage = e.chain().any(|c| c.is::<UsageError>());
            eprintln!("error: {e:#}");
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
