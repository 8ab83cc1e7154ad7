//! Pieces every experiment uses: run folders, progress bars, grids over the plane, AFU curves.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::afu::AfuParams;
use crate::report::plot::Grid;

/// Any error, kept as the source of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Error of an experiment run.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A bad setting.
    #[error("config field '{field}': {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A dataset could not be read (the message names the file, the field and what was expected).
    #[error(transparent)]
    Data(#[from] crate::data::error::DataError),
    /// Writing an output failed.
    #[error("cannot write {}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A checkpoint could not be read back (`--resume`, `afu eval`).
    #[error("cannot read the checkpoint {}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A figure failed.
    #[error(transparent)]
    Plot(#[from] crate::report::plot::PlotError),
    /// Loading learned AFUs failed.
    #[error(transparent)]
    AfuFile(#[from] crate::afu::file::AfuFileError),
    /// A model could not be built.
    #[error(transparent)]
    Afu(#[from] crate::afu::AfuError),
    /// A step of a toy experiment (no checkpoints: its runs take seconds) had a non-finite loss.
    #[error(
        "{what}: the training loss is {loss}; stopped there, nothing was written for the unfinished runs; a lower learning rate may help"
    )]
    NonFiniteStep {
        /// Variant, seed and step.
        what: String,
        /// The loss (NaN or ±infinity).
        loss: f64,
    },
    /// Stopped by Ctrl-C in an experiment without checkpoints (its runs take seconds).
    #[error("stopped by Ctrl-C ({what}); nothing was written for the unfinished runs")]
    Stopped {
        /// Where training stopped.
        what: String,
    },
    /// Training stopped because the loss was not finite; what was measured until then is
    /// written.
    #[error(
        "{stop}; stopped there, before that step. The checkpoint holds the last complete epoch (if any), and {} what was measured until then; a lower learning rate may help",
        out.join("summary.json").display()
    )]
    NonFiniteLoss {
        /// Where it happened.
        stop: crate::train::fit::NonFiniteStop,
        /// The run folder.
        out: PathBuf,
    },
    /// A device failed during a data-parallel step (`--devices`); the run stops there, and the
    /// checkpoints of the epochs before are kept.
    #[error(
        "{error} ({what}); training stopped, the checkpoint of the last finished epoch is kept"
    )]
    Device {
        /// The failure, naming the device.
        error: crate::train::parallel::ParallelError,
        /// Where training stopped.
        what: String,
    },
    /// Stopped by Ctrl-C after writing a checkpoint.
    #[error(
        "interrupted: checkpoint written in {checkpoint} ({what}); continue with --resume --out {out}"
    )]
    Interrupted {
        /// The checkpoint folder.
        checkpoint: PathBuf,
        /// Where training stopped.
        what: String,
        /// The run folder.
        out: PathBuf,
    },
}

/// Default output folder: `runs/<experiment>/<YYYYmmdd-HHMMSS>`.
pub fn default_out_dir(experiment: &str) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    PathBuf::from("runs")
        .join(experiment)
        .join(stamp.to_string())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ExperimentError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExperimentError::Output {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    write_text(path, &text)
}

/// Writes `value` as TOML, atomically.
pub fn write_toml(path: &Path, value: &impl Serialize) -> Result<(), ExperimentError> {
    let text = toml::to_string_pretty(value).map_err(|e| ExperimentError::Output {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    write_text(path, &text)
}

/// Writes text atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), ExperimentError> {
    crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| ExperimentError::Output {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// A progress bar on stderr (drawn only on a terminal, and never when `enabled` is false).
pub fn progress_bar(total: u64, message: &str, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A regular `side × side` grid over `[lo, hi]²`: the coordinates and the points as a
/// `[side², 2]` tensor (row `j * side + i` is `(xs[i], ys[j])`).
pub fn plane_grid(lo: f64, hi: f64, side: usize, device: &Device) -> (Vec<f64>, Tensor<2>) {
    let side = side.max(2);
    let xs: Vec<f64> = (0..side)
        .map(|i| lo + (hi - lo) * i as f64 / (side - 1) as f64)
        .collect();
    let mut pts = Vec::with_capacity(side * side * 2);
    for &y in &xs {
        for &x in &xs {
            pts.push(x as f32);
            pts.push(y as f32);
        }
    }
    let t = Tensor::from_data(TensorData::new(pts, [side * side, 2]), device);
    (xs, t)
}

/// Turns column `col` of a `[side², k]` tensor evaluated on [`plane_grid`] into a [`Grid`].
pub fn grid_of(xs: &[f64], values: &Tensor<2>, col: usize) -> Grid {
    let [rows, cols] = values.dims();
    let data: Vec<f32> = values
        .to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let vals = (0..rows).map(|r| data[r * cols + col] as f64).collect();
    Grid {
        xs: xs.to_vec(),
        ys: xs.to_vec(),
        values: vals,
    }
}

/// `(z, G(z))` for `z` in `[lo, hi]`, `points` samples, AFU number `channel`.
pub fn afu_curve(
    p: &AfuParams,
    channel: usize,
    lo: f64,
    hi: f64,
    points: usize,
) -> Vec<(f64, f64)> {
    (0..points)
        .map(|i| {
            let z = lo + (hi - lo) * i as f64 / (points.max(2) - 1) as f64;
            (z, p.eval(channel, z))
        })
        .collect()
}

/// Reads a float tensor into `Vec<f32>`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    let erf = if z >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.5) - 0.933_192_8).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
    }
}

/// How the learned AFUs of a model start, in any experiment: transferred from another run,
/// initialised to approximate a known function, and/or frozen.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfuStart {
    /// Load the AFUs from this `afu.json` (or run folder) — transfer between problems.
    pub afu_from: Option<PathBuf>,
    /// Which AFUs of that file (a name or prefix); all of them when absent. One AFU is used for
    /// every AFU of the model; otherwise the counts must match.
    pub afu_name: Option<String>,
    /// Initialise the AFUs to approximate this function over [-5, 5] instead of at random.
    pub afu_init: Option<crate::afu::BaseActivation>,
    /// Keep the AFUs fixed during training.
    pub freeze_afu: bool,
}

impl AfuStart {
    /// Applies the settings to a model's activations.
    pub fn apply(
        &self,
        acts: crate::activation::Activations,
        rng: &mut impl rand::Rng,
        device: &Device,
    ) -> Result<crate::activation::Activations, ExperimentError> {
        if acts.afus.is_empty() {
            return Ok(acts);
        }
        let mut acts = acts;
        if let Some(target) = self.afu_init {
            acts = acts.init_as(target, 5.0, rng, device)?;
        }
        if let Some(path) = &self.afu_from {
            let file = crate::afu::file::AfuFile::load(path)?;
            let chosen = file.select(self.afu_name.as_deref(), path)?;
            let params: Vec<AfuParams> = chosen.iter().map(|a| a.params.clone()).collect();
            // A transferred AFU of another N or base would train under this variant's name and
            // parameter count: refused.
            for (k, afu) in acts.afus.iter().enumerate() {
                let src = if params.len() == acts.afus.len() {
                    (&params[k], &chosen[k].name)
                } else {
                    (&params[0], &chosen[0].name)
                };
                if src.0.hidden != afu.hidden() || src.0.base != afu.base {
                    return Err(ExperimentError::Config {
                        field: "afu_from",
                        message: format!(
                            "{}: AFU '{}' has N = {} with base {}, the model's AFUs have N = {} with base {}; choose a variant afu-{}-{} or another AFU",
                            path.display(),
                            src.1,
                            src.0.hidden,
                            src.0.base,
                            afu.hidden(),
                            afu.base,
                            src.0.base,
                            src.0.hidden
                        ),
                    });
                }
            }
            acts = acts
                .transfer(&params, device)
                .map_err(|e| ExperimentError::Config {
                    field: "afu_from",
                    message: format!("{}: {e}", path.display()),
                })?;
        }
        if self.freeze_afu {
            acts = acts.freeze_afus();
        }
        Ok(acts)
    }
}

/// 1 (serde default of count settings added later, such as `seeds`).
pub fn one() -> usize {
    1
}

/// Checks that a count setting is at least 1.
pub fn at_least_one(field: &'static str, value: usize) -> Result<(), ExperimentError> {
    if value == 0 {
        return Err(ExperimentError::Config {
            field,
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// The most training steps (or epochs) of one run: a step count beyond it is a typo, and the
/// per-step records of a run are allocated from it.
pub const MAX_STEPS: usize = 10_000_000;
/// The most seeds (or random nets) of one command.
pub const MAX_SEEDS: usize = 10_000;
/// The most points per side of a plane grid (its points are allocated at once).
pub const MAX_GRID: usize = 4096;
/// The widest hidden layer, the largest batch and the most points of a generated data set.
pub const MAX_WIDTH: usize = 1 << 20;

/// Checks that a count setting is at least 1 and at most `limit` (named in the message).
pub fn between_one_and(
    field: &'static str,
    value: usize,
    limit: usize,
) -> Result<(), ExperimentError> {
    at_least_one(field, value)?;
    if value > limit {
        return Err(ExperimentError::Config {
            field,
            message: format!("is {value}, above the limit of {limit}"),
        });
    }
    Ok(())
}

/// Checks that a real setting is a finite positive number.
pub fn positive(field: &'static str, value: f64) -> Result<(), ExperimentError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(ExperimentError::Config {
            field,
            message: format!("must be a positive number, got {value}"),
        });
    }
    Ok(())
}

/// Parses the `variants` setting: at least one, each a valid activation name.
pub fn parse_variants(
    variants: &[String],
) -> Result<Vec<crate::activation::ActivationSpec>, ExperimentError> {
    if variants.is_empty() {
        return Err(ExperimentError::Config {
            field: "variants",
            message: "at least one variant is needed".into(),
        });
    }
    variants
        .iter()
        .map(|v| {
            v.parse().map_err(
                |e: crate::activation::BadActivationSpec| ExperimentError::Config {
                    field: "variants",
                    message: e.to_string(),
                },
            )
        })
        .collect()
}

/// Parses the `variants` of an image experiment: each `<activation>[@<curriculum>]`, the
/// curriculum defaulting to the run's `curriculum` setting.
pub fn parse_image_variants(
    variants: &[String],
    curriculum: crate::train::curriculum::Curriculum,
) -> Result<
    Vec<(
        String,
        crate::activation::ActivationSpec,
        crate::train::curriculum::Curriculum,
    )>,
    ExperimentError,
> {
    let bad = |message: String| ExperimentError::Config {
        field: "variants",
        message,
    };
    let mut out = Vec::with_capacity(variants.len());
    for v in variants {
        let (activation, own) =
            crate::train::curriculum::split_variant(v).map_err(|e| bad(e.to_string()))?;
        let spec = parse_variants(&[activation.to_string()])?.remove(0);
        out.push((v.clone(), spec, own.unwrap_or(curriculum)));
    }
    if out.is_empty() {
        return Err(bad("at least one variant is needed".into()));
    }
    Ok(out)
}

/// Checks optional subset limits (`Some(0)` is an error).
pub fn limits(train: Option<usize>, test: Option<usize>) -> Result<(), ExperimentError> {
    if train == Some(0) {
        return Err(ExperimentError::Config {
            field: "limit_train",
            message: "must be at least 1".into(),
        });
    }
    if test == Some(0) {
        return Err(ExperimentError::Config {
            field: "limit_test",
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// The autodiff devices of a `--devices` list (empty when not data-parallel).
pub fn parallel_devices(
    choices: &[crate::device::DeviceChoice],
) -> Result<Vec<burn::tensor::Device>, ExperimentError> {
    choices
        .iter()
        .map(|c| {
            c.device()
                .map(|d| d.autodiff())
                .map_err(|e| ExperimentError::Config {
                    field: "devices",
                    message: e.to_string(),
                })
        })
        .collect()
}

/// What a command may do with an output folder that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderUse {
    /// Start a new run: an existing run there is an error.
    New,
    /// Continue the run there: its settings must be these (more epochs and another device are
    /// allowed).
    Resume,
    /// Replace the run there.
    Force,
}

/// Settings that may differ when a run is continued: more epochs, another device.
const RESUMABLE_CHANGES: [&str; 3] = ["epochs", "device", "devices"];

/// Checks `out` before a run writes into it, and records the run there: a folder holding a run
/// (a `config.toml`) is never overwritten by a new run; `--resume` must name the same command,
/// settings and data (the differences are named in the error); `--force` removes the old run's
/// files first. A folder without a run is used as it is. Afterwards `out/manifest.json`
/// describes the run (kept from the run's creation when it is resumed), and the temporary files
/// of writes that a kill interrupted are gone.
pub fn claim_run_folder(
    out: &Path,
    config: &crate::experiments::RunConfig,
    mode: FolderUse,
) -> Result<(), ExperimentError> {
    use crate::experiments::manifest::Manifest;
    let now = Manifest::of(config)?;
    let path = out.join("config.toml");
    let bad = |message: String| ExperimentError::Config {
        field: "out",
        message,
    };
    let clean = || {
        crate::fsutil::remove_stale_temps(out).map_err(|e| ExperimentError::Output {
            path: out.to_path_buf(),
            source: e.into(),
        })
    };
    if !path.is_file() {
        clean()?;
        return now.write(out);
    }
    match mode {
        FolderUse::New => Err(bad(format!(
            "{} already holds a run; continue it with --resume, replace it with --force, or choose another --out",
            out.display()
        ))),
        FolderUse::Force => {
            remove_run(out)?;
            clean()?;
            now.write(out)
        }
        FolderUse::Resume => {
            let text = std::fs::read_to_string(&path).map_err(|e| ExperimentError::Checkpoint {
                path: path.clone(),
                source: e.into(),
            })?;
            let old: toml::Value = toml::from_str(&text).map_err(|e| {
                bad(format!(
                    "{}: not a run configuration ({})",
                    path.display(),
                    e.to_string().lines().next().unwrap_or("")
                ))
            })?;
            let new = toml::Value::try_from(config).map_err(|e| ExperimentError::Output {
                path: path.clone(),
                source: e.into(),
            })?;
            let mut diffs = Vec::new();
            setting_differences("", &old, &new, &mut diffs);
            diffs.retain(|(key, old, new)| {
                let allowed = RESUMABLE_CHANGES.contains(&key.as_str())
                    && (key != "epochs"
                        || matches!((old, new), (Some(toml::Value::Integer(a)), Some(toml::Value::Integer(b))) if b >= a));
                !allowed
            });
            let show = |v: &Option<toml::Value>| {
                v.as_ref().map_or("(unset)".to_string(), |v| v.to_string())
            };
            let mut named: Vec<String> = diffs
                .iter()
                .map(|(k, o, n)| format!("{k} is {} there, {} now", show(o), show(n)))
                .collect();
            let recorded = Manifest::read(out)?;
            if let Some(m) = &recorded {
                named.extend(m.resume_differences(&now));
            }
            if !named.is_empty() {
                return Err(bad(format!(
                    "--resume: the run in {} was made with other settings: {}; resume with its settings, or start a new run",
                    out.display(),
                    named.join("; ")
                )));
            }
            clean()?;
            match recorded {
                Some(_) => Ok(()),
                None => now.write(out),
            }
        }
    }
}

/// What a run writes into its folder: all that `--force` removes. Anything else there (the
/// folder may be one the user keeps other files in) stays, and so does the folder then.
const RUN_ENTRIES: [&str; 12] = [
    "manifest.json",
    "config.toml",
    "summary.json",
    "summary.md",
    "metrics.csv",
    "afu.json",
    "histograms.json",
    "eval.json",
    "inspect.json",
    "log.txt",
    "figures",
    "checkpoints",
];

/// Removes the run in `out` (its own files only), and `out` itself when nothing else is left.
fn remove_run(out: &Path) -> Result<(), ExperimentError> {
    for name in RUN_ENTRIES {
        let path = out.join(name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if path.exists() {
            std::fs::remove_file(&path)
        } else {
            Ok(())
        };
        removed.map_err(|e| ExperimentError::Output {
            path: path.clone(),
            source: e.into(),
        })?;
    }
    // Fails, harmlessly, when the folder holds files of the user's.
    let _ = std::fs::remove_dir(out);
    Ok(())
}

/// Every setting (dotted key) whose value differs between `old` and `new`.
#[allow(clippy::type_complexity)]
fn setting_differences(
    prefix: &str,
    old: &toml::Value,
    new: &toml::Value,
    out: &mut Vec<(String, Option<toml::Value>, Option<toml::Value>)>,
) {
    match (old, new) {
        (toml::Value::Table(a), toml::Value::Table(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => setting_differences(&key, x, y, out),
                    (x, y) => out.push((key, x.cloned(), y.cloned())),
                }
            }
        }
        (a, b) if a != b => out.push((prefix.to_string(), Some(a.clone()), Some(b.clone()))),
        _ => {}
    }
}

#[cfg(test)]
mod folder_tests {
    use super::*;
    use crate::experiments::RunConfig;
    use crate::experiments::mnist::MnistConfig;

    #[test]
    fn a_run_folder_is_never_overwritten_and_resume_needs_the_same_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let config = MnistConfig::quick("data/mnist".into());
        let run = RunConfig::Mnist(config.clone());
        // An empty or missing folder is free.
        claim_run_folder(&out, &run, FolderUse::New).unwrap();
        write_toml(&out.join("config.toml"), &run).unwrap();
        write_text(&out.join("summary.json"), "{}").unwrap();
        let e = claim_run_folder(&out, &run, FolderUse::New).unwrap_err();
        assert!(e.to_string().contains("--resume"), "{e}");
        // Same settings, more epochs, another device: fine; what a killed write left is removed.
        let stale = out.join("checkpoints/relu/.progress.json.tmp-999999999");
        write_text(&out.join("checkpoints/relu/x"), "").unwrap();
        std::fs::write(&stale, "partial").unwrap();
        claim_run_folder(&out, &run, FolderUse::Resume).unwrap();
        assert!(!stale.exists());
        assert!(out.join("manifest.json").is_file());
        let more = RunConfig::Mnist(MnistConfig {
            epochs: config.epochs + 2,
            ..config.clone()
        });
        claim_run_folder(&out, &more, FolderUse::Resume).unwrap();
        // Other variants, seed or data: refused, naming each difference.
        let other = RunConfig::Mnist(MnistConfig {
            variants: vec!["tanh".into()],
            seed: 9,
            epochs: 0,
            ..config.clone()
        });
        let e = claim_run_folder(&out, &other, FolderUse::Resume)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("variants") && e.contains("seed is 1 there, 9 now"),
            "{e}"
        );
        assert!(
            e.contains("epochs"),
            "fewer epochs than done is a difference: {e}"
        );
        // Another experiment: refused.
        let xor = RunConfig::Xor(crate::experiments::xor::XorConfig::quick());
        let e = claim_run_folder(&out, &xor, FolderUse::Resume).unwrap_err();
        assert!(e.to_string().contains("experiment"), "{e}");
        // --force replaces.
        claim_run_folder(&out, &other, FolderUse::Force).unwrap();
        assert!(!out.join("config.toml").exists() && !out.join("summary.json").exists());
        let m = crate::experiments::manifest::Manifest::read(&out)
            .unwrap()
            .unwrap();
        assert_eq!(m.seed, Some(9), "the manifest is the new run's");
        // ...the run only: files of the user's in the same folder stay.
        write_toml(&out.join("config.toml"), &run).unwrap();
        write_text(&out.join("notes.txt"), "mine").unwrap();
        std::fs::create_dir_all(out.join("checkpoints/relu")).unwrap();
        claim_run_folder(&out, &other, FolderUse::Force).unwrap();
        assert!(out.join("notes.txt").is_file());
        assert!(!out.join("config.toml").exists() && !out.join("checkpoints").exists());
    }
}
