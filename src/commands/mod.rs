//! One module per subcommand, and what several of them share: argument groups, usage errors,
//! device choices and the printing of image-experiment summaries.

pub mod bake;
pub mod bench;
pub mod cifar;
pub mod data;
pub mod eval;
pub mod inspect;
pub mod meta;
pub mod mnist;
pub mod report;
pub mod run;
pub mod smoothness;
pub mod sweep;
pub mod xor;
pub mod xor_neuron;

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use afu_cli::afu::{BaseActivation, KernelChoice};

/// Options shared by every experiment.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Output folder (default: runs/<experiment>/<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tiny settings (a few steps, small data): a smoke test that finishes in seconds.
    #[arg(long)]
    pub quick: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Replace the run already in --out (without it, afu refuses to overwrite a run).
    #[arg(long)]
    pub force: bool,
    /// AFU implementation: auto (fused where available), reference (plain tensor ops), fused.
    #[arg(long, value_enum)]
    pub kernel: Option<KernelArg>,
}

/// `--kernel`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KernelArg {
    /// Fused kernels where available, plain tensor ops elsewhere.
    Auto,
    /// Plain tensor ops (the paper's formulation; the test oracle).
    Reference,
    /// Fused kernels.
    Fused,
}

impl From<KernelArg> for KernelChoice {
    fn from(k: KernelArg) -> Self {
        match k {
            KernelArg::Auto => KernelChoice::Auto,
            KernelArg::Reference => KernelChoice::Reference,
            KernelArg::Fused => KernelChoice::Fused,
        }
    }
}

/// `--reading` of `afu mnist`: where the CNN's activations go.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReadingArg {
    /// After conv1, fc1 and fc2 (the reference code).
    Reference,
    /// After conv1, conv2 and fc1 (the paper's text).
    Paper,
}

impl From<ReadingArg> for afu_cli::models::mnist_cnn::CnnReading {
    fn from(r: ReadingArg) -> Self {
        match r {
            ReadingArg::Reference => Self::Reference,
            ReadingArg::Paper => Self::Paper,
        }
    }
}

/// `--model` of `afu cifar10`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// The reference code's MobileNet-v1-style stack.
    #[value(alias = "v1")]
    MobilenetV1,
    /// MobileNetV2, which the paper's text names.
    #[value(alias = "v2")]
    MobilenetV2,
}

impl From<ModelArg> for afu_cli::experiments::cifar::CifarModel {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::MobilenetV1 => Self::MobilenetV1,
            ModelArg::MobilenetV2 => Self::MobilenetV2,
        }
    }
}

/// What every image-classification command takes.
#[derive(Args, Debug)]
pub struct TrainingArgs {
    /// Comma-separated variants: a fixed activation (relu, tanh, sigmoid, swish, mish, leaky-relu,
    /// linear), an AFU afu-<base>-<N>[-layer|-channel] (e.g. afu-relu-8-layer), or a learnable
    /// family <family>[-layer|-channel] (prelu, swish-beta, pmish, pau[-M-N], pwlu-<N>, apl-<S>,
    /// kaf[-D]; e.g. pau-channel, pwlu-16-layer). Default: the paper's.
    #[arg(long, value_delimiter = ',')]
    pub variants: Option<Vec<String>>,
    /// Epochs (default: the paper's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Seed of initialisation, shuffling, augmentation and dropout (the first seed with --seeds).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Runs per variant, with seeds S..S+K-1 from --seed S: summaries give mean ± std, 95 %
    /// intervals and paired tests between variants.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Continue from the checkpoints in --out (after an interruption).
    #[arg(long)]
    pub resume: bool,
    /// Where to train: cpu (default), cuda[:N] or wgpu[:N] (builds with --features cuda / wgpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Data parallelism over several devices, e.g. `cuda:0,cuda:1`: each batch is split over
    /// them, one worker thread per device, and the gradients added on the first (replaces
    /// --device).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,
    /// Linear-to-nonlinear curriculum: every activation slot applies (1 − α)·z + α·g(z), α rising
    /// from 0 to 1: `linear-2` (over 2 epochs; the last layers released last), `cosine-0.5`,
    /// `linear-300steps-uniform`, `none`. A variant can carry its own: `afu-relu-8@linear-1`.
    #[arg(long)]
    pub curriculum: Option<afu_cli::train::curriculum::Curriculum>,
}

/// Applies [`TrainingArgs`], [`CommonArgs`] and [`AfuStartArgs`] to an image experiment's
/// config (the fields have the same names in every such config), validates it, and returns the
/// output folder.
macro_rules! apply_training_args {
    ($config:ident, $t:expr, $common:expr, $afu_start:expr, $default_out:expr) => {{
        let t = $t;
        if let Some(v) = t.variants {
            $config.variants = v;
        }
        if let Some(v) = t.epochs {
            $config.epochs = v;
        }
        if t.limit_train.is_some() {
            $config.limit_train = t.limit_train;
        }
        if t.limit_test.is_some() {
            $config.limit_test = t.limit_test;
        }
        if let Some(v) = t.seed {
            $config.seed = v;
        }
        if let Some(v) = t.seeds {
            $config.seeds = v;
        }
        if let Some(c) = t.curriculum {
            $config.curriculum = c;
        }
        if let Some(k) = $common.kernel {
            $config.kernel = k.into();
        }
        $config.afu_start = $afu_start.into_start()?;
        if let Some((device, devices)) = $crate::commands::device_choices(t.device, &t.devices)? {
            ($config.device, $config.devices) = (device, devices);
        }
        $config
            .validate()
            .map_err(|e| $crate::commands::UsageError::of(e))?;
        if t.resume && $common.out.is_none() {
            return Err($crate::commands::UsageError::msg(
                "--resume needs --out DIR (the folder of the run to continue)",
            )
            .into());
        }
        ($common.out.unwrap_or_else($default_out), t.resume)
    }};
}
pub(crate) use apply_training_args;

/// How learned AFUs start: transfer, known-function init, freezing.
#[derive(Args, Debug)]
pub struct AfuStartArgs {
    /// Start the AFUs from those of another run (its folder or afu.json): transfer.
    #[arg(long)]
    afu_from: Option<PathBuf>,
    /// Which AFUs of that file (name or prefix, e.g. afu-relu-8/seed0); one AFU is used for all.
    #[arg(long)]
    afu_name: Option<String>,
    /// Initialise the AFUs to approximate a known function (relu, leaky-relu, tanh, mish, ...).
    #[arg(long)]
    afu_init: Option<BaseActivation>,
    /// Keep the AFUs fixed during training.
    #[arg(long)]
    freeze_afu: bool,
}

impl AfuStartArgs {
    /// The settings, with `--afu-from` checked to exist.
    pub fn into_start(self) -> Result<afu_cli::experiments::common::AfuStart, UsageError> {
        if let Some(p) = &self.afu_from
            && !p.exists()
        {
            return Err(UsageError::msg(format!(
                "--afu-from {}: no such file or folder",
                p.display()
            )));
        }
        Ok(afu_cli::experiments::common::AfuStart {
            afu_from: self.afu_from,
            afu_name: self.afu_name,
            afu_init: self.afu_init,
            freeze_afu: self.freeze_afu,
        })
    }
}

/// A sweep stopped by Ctrl-C (exit code 130, like an interrupted run).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SweepInterrupted(pub String);

/// An error in what the user asked for (exit code 2), as opposed to a failure while running. It
/// stands for the error it wraps: same message, same sources.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UsageError(Box<dyn std::error::Error + Send + Sync>);

impl UsageError {
    /// A usage error with this message.
    pub fn msg(text: impl Into<String>) -> Self {
        UsageError(text.into().into())
    }

    /// The error `e`, marked as a usage error.
    pub fn of(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        UsageError(Box::new(e))
    }
}

/// `--device` / `--devices` as (main device, data-parallel devices); `None` when neither is given.
#[allow(clippy::type_complexity)]
pub fn device_choices(
    device: Option<String>,
    devices: &[String],
) -> Result<
    Option<(
        afu_cli::device::DeviceChoice,
        Vec<afu_cli::device::DeviceChoice>,
    )>,
    UsageError,
> {
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
pub fn device_choice(name: &str) -> Result<afu_cli::device::DeviceChoice, UsageError> {
    let choice: afu_cli::device::DeviceChoice = name
        .parse()
        .map_err(|e: afu_cli::device::DeviceError| UsageError::of(e))?;
    choice.device().map_err(UsageError::of)?;
    Ok(choice)
}

/// Checks the output folder before a run: an existing run there is refused unless `resume`
/// (same settings) or `force` (replaced, said on stderr).
pub fn claim_folder(
    out: &std::path::Path,
    config: afu_cli::experiments::RunConfig,
    resume: bool,
    force: bool,
) -> anyhow::Result<()> {
    use afu_cli::experiments::common::{FolderUse, claim_run_folder};
    let mode = match (resume, force) {
        (true, true) => {
            return Err(UsageError::msg("--resume and --force exclude each other").into());
        }
        (true, false) => FolderUse::Resume,
        (false, true) => FolderUse::Force,
        (false, false) => FolderUse::New,
    };
    if force && out.join("config.toml").is_file() {
        afu_cli::note!("--force: replacing the run in {}", out.display());
    }
    claim_run_folder(out, &config, mode)
        .map_err(|e| classify(e, format!("output folder {}", out.display())))
}

/// An error and its causes on one line, `a: b: c`. Many of our errors name their cause in their
/// own message too; a cause whose message the line already ends with is not repeated.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Errors in what the user supplied (settings, AFU files) are usage errors (exit code 2); the
/// rest get `context` and exit code 1.
pub fn classify(
    e: afu_cli::experiments::common::ExperimentError,
    context: String,
) -> anyhow::Error {
    use afu_cli::experiments::common::ExperimentError as E;
    match e {
        E::Config { .. } | E::AfuFile(_) | E::Data(_) | E::Checkpoint { .. } => {
            anyhow::Error::new(UsageError::of(e))
        }
        E::Interrupted { .. } | E::Stopped { .. } => anyhow::Error::new(e),
        other => anyhow::Error::new(other).context(context),
    }
}

/// The results of `afu mnist` / `afu cifar10`: per variant over seeds, then the paired tests.
pub fn print_image_summary(
    s: &afu_cli::experiments::image::ImageSummary,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    afu_cli::outln!(
        "{:<20} {:>5} {:>18} {:>19} {:>8} {:>8} {:>9}",
        "variant",
        "seeds",
        "test acc (mean±std)",
        "95 % interval",
        "top-3",
        "best",
        "s/epoch"
    )?;
    for v in &s.variants {
        let std = v
            .test_accuracy_std
            .map(|d| format!("± {d:.4}"))
            .unwrap_or_default();
        let ci = v
            .test_accuracy_ci95
            .map(|[lo, hi]| format!("[{lo:.4}, {hi:.4}]"))
            .unwrap_or_else(|| "–".into());
        afu_cli::outln!(
            "{:<20} {:>5} {:>9.4} {:<8} {:>19} {:>8.4} {:>8.4} {:>9.1}",
            v.name,
            v.seeds.len(),
            v.test_accuracy_mean,
            std,
            ci,
            v.top3_accuracy,
            v.best_test_accuracy,
            v.epoch_seconds_mean
        )?;
    }
    if !s.comparisons.is_empty() {
        afu_cli::outln!(
            "\n{:<42} {:>5} {:>10} {:>21} {:>8}",
            "paired: a − b (test accuracy)",
            "seeds",
            "mean diff",
            "95 % interval",
            "p"
        )?;
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
            afu_cli::outln!(
                "{:<42} {:>5} {:>+10.4} {:>21} {:>8}",
                format!("{} − {}", c.a, c.b),
                c.result.n,
                c.result.mean_difference,
                ci,
                p
            )?;
        }
    }
    afu_cli::outln!(
        "{} train / {} test images; {:.1} s; results in {}",
        s.train_images,
        s.test_images,
        s.total_seconds,
        out.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_error_keeps_every_cause_once() {
        let io = std::io::Error::other("No space left on device");
        let inner = afu_cli::experiments::common::ExperimentError::Output {
            path: "run/summary.json".into(),
            source: io.into(),
        };
        let e = anyhow::Error::new(inner).context("afu mnist (output folder run)");
        assert_eq!(
            render_error(&e),
            "afu mnist (output folder run): cannot write run/summary.json: No space left on device"
        );
        // A message that already ends with its cause's text does not repeat it.
        let data = afu_cli::data::error::DataError::Csv {
            path: "x.csv".into(),
            line: 3,
            message: "bad label".into(),
        };
        let e = anyhow::Error::new(UsageError::of(
            afu_cli::experiments::common::ExperimentError::from(data),
        ));
        assert_eq!(render_error(&e), "x.csv:3: bad label");
    }
}
