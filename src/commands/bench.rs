//! `afu bench`: timings and memory side by side from one run.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use afu_cli::afu::BaseActivation;
use afu_cli::bench::{self, KernelBenchConfig, host};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Forward+backward of Burn's relu vs the plain-ops AFU vs the fused AFU on one tensor.
    Kernels(BenchKernelArgs),
    /// A training step of the MNIST CNN and of MobileNet-v1 with Burn's stock ops vs afu's
    /// kernels (and the ops one by one); `--pytorch` adds PyTorch's step for comparison.
    CnnStep(BenchCnnStepArgs),
}

#[derive(Args, Debug)]
pub struct BenchCnnStepArgs {
    /// Timed training steps of the afu-ops cases and of PyTorch's (median, p10, p90
    /// reported); the stock-ops cases run at most 30.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Untimed warm-up steps first (the stock-ops cases: at most 10).
    #[arg(long, default_value_t = 30)]
    warmup: usize,
    /// MNIST-format folder whose shuffled training images make the MNIST-CNN batches, on both
    /// sides (e.g. /usr/share/datasets/fashion-mnist); without it, random N(0,1) batches.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Timed repetitions of each single op.
    #[arg(long, default_value_t = 9)]
    op_reps: usize,
    /// MobileNet-v1 batch (0 skips MobileNet).
    #[arg(long, default_value_t = 32)]
    mobilenet_batch: usize,
    /// Also run the same CNN step in PyTorch with this Python (needs `torch` installed), e.g.
    /// `--pytorch python3`: the relu network and the paper's AFU formulation per layer, same
    /// threads, batches, warm-up and step counts.
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
pub struct BenchKernelArgs {
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
    /// Also time PyTorch's relu, the paper's AFU formulation (Linear(1,N) → ψ → Linear(N,1))
    /// and the learnable families in plain PyTorch on the same tensor with this Python (needs
    /// `torch`), e.g. `--pytorch python3`.
    #[arg(long, value_name = "PYTHON")]
    pytorch: Option<String>,
    /// Small tensor (8×32×26×26) and N=8 only: a smoke test.
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
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
            let load = host::LoadMeter::start();
            if !json {
                afu_cli::outln!("{}", host::header(rayon::current_num_threads()))?;
                afu_cli::outln!(
                    "forward+backward on {:?} ({} elements), {} threads; median of {} reps \
                     (plain-ops: at most 7, or 3 at N > 32)",
                    config.shape,
                    config.shape.iter().product::<usize>(),
                    rayon::current_num_threads(),
                    config.reps
                )?;
                afu_cli::outln!(
                    "{:<40} {:>10} {:>9} {:>12} {:>9}",
                    "case",
                    "ms",
                    "× relu",
                    "peak MB",
                    "mem × relu"
                )?;
            }
            // The first failed line (a full stdout) ends the command once the bench returns.
            let mut failed = None;
            let report = bench::run_kernels(&config, |c| {
                if !json && failed.is_none() {
                    failed = afu_cli::outln!(
                        "{:<40} {:>10.2} {:>9.2} {:>12.1} {:>9.2}",
                        c.name,
                        c.median_ms,
                        c.ratio_to_relu,
                        c.peak_extra_bytes as f64 / 1e6,
                        c.memory_ratio_to_relu
                    )
                    .err();
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
            let torch = match a.pytorch.as_deref() {
                Some(py) => {
                    let t = bench::torch_kernels::run(py, &config);
                    if !json {
                        afu_cli::outp!("{}", bench::torch_kernels::table(&t, &report))?;
                    }
                    Some(t)
                }
                None => None,
            };
            let foreign = load.foreign_cores();
            if json {
                let mut v = serde_json::to_value(&report)?;
                v["cpu"] = host::cpu_model().into();
                v["foreign_load_cores"] = foreign.into();
                if let Some(t) = torch {
                    v["pytorch"] = serde_json::to_value(&t)?;
                }
                afu_cli::outln!("{}", serde_json::to_string_pretty(&v)?)?;
            } else if let Some(f) = foreign {
                afu_cli::outln!("CPU used by other processes during the run: {f:.2} cores")?;
            }
            Ok(())
        }
        BenchCommand::CnnStep(a) => {
            if let Some(d) = &a.data
                && !d.is_dir()
            {
                return Err(super::UsageError::msg(format!(
                    "--data {}: no such folder (expected MNIST-format IDX files)",
                    d.display()
                ))
                .into());
            }
            let mut config = bench::cnn_step::CnnStepBenchConfig {
                steps: a.steps.max(1),
                op_reps: a.op_reps.max(1),
                warmup: a.warmup,
                mobilenet_batch: a.mobilenet_batch,
                python: a.pytorch,
                data: a.data,
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
                afu_cli::outln!("{}", host::header(rayon::current_num_threads()))?;
            }
            let mut failed = None;
            let report = bench::cnn_step::run(&config, |line| {
                if !json && failed.is_none() {
                    failed = afu_cli::outln!("{line}").err();
                }
            })
            .context("afu bench cnn-step")?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            if json {
                afu_cli::outln!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                afu_cli::outln!()?;
                for (label, r) in &report.ratios {
                    afu_cli::outln!("{label:<56} {r:>6.2}")?;
                }
                if let Some(f) = report.foreign_load_cores {
                    afu_cli::outln!("CPU used by other processes during the run: {f:.2} cores")?;
                }
            }
            Ok(())
        }
    }
}
