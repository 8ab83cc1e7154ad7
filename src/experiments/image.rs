//! What every image-classification experiment shares: variants × seeds trained by the one loop
//! ([`crate::train::fit`]), and the run folder written from their records — `metrics.csv`,
//! `afu.json`, `histograms.json`, figures, and a `summary.json` / `summary.md` with each
//! variant's mean ± std and 95 % interval over seeds and paired tests between variants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::ActivationSpec;
use crate::afu::analysis::InputDistribution;
use crate::afu::file::{AfuFile, NamedAfu};
use crate::afu::{AfuParams, KernelChoice};
use crate::experiments::common::{self, AfuStart, ExperimentError};
use crate::experiments::family_inspect;
use crate::models::ImageClassifier;
use crate::report::plot::{self, LinePanel, Series};
use crate::stats::{self, Comparison, SeedValue};
use crate::train::batches::ImageBatches;
use crate::train::curriculum::Curriculum;
use crate::train::fit::{self, ActivationInputs, EpochRecord, FitSettings, METRICS_HEADER};

/// The seeds `first .. first + count`.
pub fn seed_list(first: u64, count: usize) -> Vec<u64> {
    (0..count as u64).map(|k| first.wrapping_add(k)).collect()
}

/// The checkpoint folder of one variant and seed: `checkpoints/<variant>` in a one-seed run (the
/// layout of runs made before seeds were an axis), `checkpoints/<variant>/seed<S>` otherwise.
pub fn checkpoint_dir(out: &Path, variant: &str, seed: u64, seeds: usize) -> PathBuf {
    let dir = out.join("checkpoints").join(variant);
    if seeds > 1 {
        dir.join(format!("seed{seed}"))
    } else {
        dir
    }
}

/// Checks that neither split of `data` is empty: a run on zero images would train nothing and
/// report a NaN loss or an accuracy of 0 as a result.
pub fn check_not_empty(data: &Path, train: usize, test: usize) -> Result<(), ExperimentError> {
    for (split, n) in [("training", train), ("test", test)] {
        if n == 0 {
            return Err(ExperimentError::Config {
                field: "data",
                message: format!(
                    "{}: the {split} set has no images; at least one is needed",
                    data.display()
                ),
            });
        }
    }
    Ok(())
}

/// The training settings an image experiment hands to the loop.
pub struct ImageTraining<'a> {
    /// Variant names, their parsed activations and curricula.
    pub variants: &'a [(String, ActivationSpec, Curriculum)],
    /// Seeds (each variant is trained once per seed).
    pub seeds: &'a [u64],
    /// Epochs.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Test batch size.
    pub test_batch_size: usize,
    /// Learning rate of each epoch (0-based).
    pub lr: &'a dyn Fn(usize) -> f64,
    /// A fresh optimiser.
    pub optimizer: &'a dyn Fn() -> ModuleOptimizer,
    /// How learned AFUs start.
    pub afu_start: &'a AfuStart,
    /// AFU implementation.
    pub kernel: KernelChoice,
    /// The device (plain, not autodiff).
    pub device: &'a Device,
    /// Data-parallel autodiff devices (fewer than two: none).
    pub parallel: &'a [Device],
    /// Record what each activation slot sees in the last epoch (models that support taps).
    pub record_inputs: bool,
}

/// How an experiment presents its results.
pub struct Presentation {
    /// `summary.json`'s `experiment` (`mnist`, `cifar10`).
    pub experiment: &'static str,
    /// Heading and the paragraph under it in `summary.md` (data, settings, the paper's numbers).
    pub heading: String,
    /// Short name of the network for figure titles.
    pub network: &'static str,
    /// The fixed activation drawn beside the learned AFUs, and its values.
    pub reference: (&'static str, fn(f64) -> f64),
    /// Title of the AFU figure.
    pub afu_figure_title: &'static str,
    /// At most this many AFU curves per panel.
    pub max_afu_curves: usize,
}

/// Final numbers of one variant and seed (`summary.json`'s `runs[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRun {
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Top-1 test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// Top-3 test accuracy after the last epoch.
    pub top3_accuracy: f64,
    /// Best top-1 test accuracy over the epochs.
    pub best_test_accuracy: f64,
    /// Test loss after the last epoch.
    pub test_loss: f64,
    /// Training loss of the last epoch.
    pub train_loss: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Training seconds (all epochs, without evaluation).
    pub seconds: f64,
    /// Loss of the final model on the training images (the first
    /// [`TRAIN_EVAL_IMAGES`] of them, without augmentation or dropout); absent in summaries of
    /// earlier versions.
    #[serde(default)]
    pub train_eval_loss: Option<f64>,
    /// Top-1 accuracy of the final model on the same training images.
    #[serde(default)]
    pub train_eval_accuracy: Option<f64>,
}

/// At most this many training images are evaluated after training (for the generalisation
/// gap: accuracy on training images minus accuracy on test images).
pub const TRAIN_EVAL_IMAGES: usize = 10_000;

/// One variant over its seeds (`summary.json`'s `variants[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageVariantSummary {
    /// Variant.
    pub name: String,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Mean final top-1 test accuracy over the seeds (= `test_accuracy_mean`).
    pub test_accuracy: f64,
    /// Mean final top-1 test accuracy.
    pub test_accuracy_mean: f64,
    /// Its sample standard deviation over seeds (`null` with one seed).
    pub test_accuracy_std: Option<f64>,
    /// 95 % confidence interval of the mean (Student t; `null` with one seed).
    pub test_accuracy_ci95: Option<[f64; 2]>,
    /// Mean final top-3 accuracy.
    pub top3_accuracy: f64,
    /// Mean best top-1 accuracy over epochs.
    pub best_test_accuracy: f64,
    /// Mean final test loss.
    pub test_loss_mean: f64,
    /// Mean training seconds per epoch.
    pub epoch_seconds_mean: f64,
    /// Mean training seconds per seed (one run of this variant).
    pub seconds_mean: f64,
    /// Epochs per run.
    pub epochs: usize,
    /// Learned activation parameters of the network (AFUs and families; 0 for fixed
    /// activations); absent in summaries of earlier versions and in sweep summaries.
    #[serde(default)]
    pub activation_parameters: Option<usize>,
}

/// `summary.json` of an image experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSummary {
    /// `mnist` or `cifar10`.
    pub experiment: String,
    /// Training images used.
    pub train_images: usize,
    /// Test images used.
    pub test_images: usize,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Per variant, over seeds.
    pub variants: Vec<ImageVariantSummary>,
    /// Paired tests of final test accuracy between every two variants over the same seeds.
    pub comparisons: Vec<Comparison>,
    /// Every variant and seed.
    pub runs: Vec<ImageRun>,
    /// Every epoch of every run.
    pub epochs: Vec<EpochRecord>,
    /// Wall-clock seconds of the command (training, evaluation and outputs; a resumed run
    /// counts this invocation only).
    pub total_seconds: f64,
    /// Where training stopped because the loss was not finite; the numbers above are those
    /// measured until then (absent when the run finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_on_non_finite_loss: Option<fit::NonFiniteStop>,
}

/// What training every variant and seed produced.
struct Trained {
    history: Vec<EpochRecord>,
    afus: Vec<NamedAfu>,
    /// Learned parameters of the learnable-family slots (`families.json`).
    families: Vec<NamedFamily>,
    /// Curves of the first seed's AFUs, one panel per variant.
    panels: Vec<LinePanel>,
    histograms: BTreeMap<String, InputDistribution>,
    /// The final model on the training images, per (variant, seed).
    train_evals: Vec<((String, u64), fit::Evaluation)>,
    /// Set when a run stopped on a non-finite loss (no later run was started).
    stopped: Option<fit::NonFiniteStop>,
    /// Learned activation parameters of each variant's network.
    activation_parameters: BTreeMap<String, usize>,
}

/// Trains every variant for every seed (seed by seed, so an interrupted run has whole seeds of
/// every variant first) and writes the run folder.
#[allow(clippy::too_many_arguments)]
pub fn run<M: ImageClassifier>(
    t: &ImageTraining<'_>,
    build: &dyn Fn(&ActivationSpec, &mut ChaCha8Rng, &Device) -> Result<M, ExperimentError>,
    train: &ImageBatches<'_>,
    test: &ImageBatches<'_>,
    p: &Presentation,
    out: &Path,
    progress: bool,
    resume: bool,
) -> Result<ImageSummary, ExperimentError> {
    let start = Instant::now();
    let mut trained = Trained {
        history: Vec::new(),
        afus: Vec::new(),
        families: Vec::new(),
        panels: Vec::new(),
        histograms: BTreeMap::new(),
        train_evals: Vec::new(),
        stopped: None,
        activation_parameters: BTreeMap::new(),
    };
    'runs: for (k, &seed) in t.seeds.iter().enumerate() {
        for (name, spec, curriculum) in t.variants {
            let device = t.device.clone().autodiff();
            device.seed(seed);
            crate::ops::seed_dropout(seed);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let model = build(spec, &mut rng, &device)?;
            let acts = t
                .afu_start
                .apply(model.activations().clone(), &mut rng, &device)?
                .with_kernel(t.kernel);
            let model = model.with_activations(acts);
            trained
                .activation_parameters
                .insert(name.clone(), model.activations().num_learned_values());
            let slots = model.activations().slots.len();
            let mut inputs = ActivationInputs::new(
                slots,
                t.record_inputs
                    && !(model.activations().afus.is_empty()
                        && model.activations().families.is_empty()),
            );
            let settings = FitSettings {
                variant: name,
                seed,
                epochs: t.epochs,
                batch_size: t.batch_size,
                test_batch_size: t.test_batch_size,
                lr: t.lr,
                checkpoint: checkpoint_dir(out, name, seed, t.seeds.len()),
                run_dir: out,
                resume,
                progress,
                parallel: t.parallel,
                curriculum: *curriculum,
            };
            let fitted = fit::fit(
                model,
                (t.optimizer)(),
                train,
                test,
                &settings,
                &mut inputs,
                &device,
            )?;
            if let Some(stop) = fitted.stopped {
                // Keep everything measured so far; the model of this run is mid-epoch and
                // matches no record, so its AFUs are not reported.
                trained.history.extend(fitted.history);
                trained.stopped = Some(stop);
                break 'runs;
            }
            let on_train = fit::evaluate_first(
                &fitted.model.valid(),
                train,
                train.len().min(TRAIN_EVAL_IMAGES),
                t.test_batch_size,
                &device.clone().inner(),
            );
            trained.train_evals.push(((name.clone(), seed), on_train));
            let acts = fitted.model.activations();
            let learned = acts.named();
            // Inputs seen by each AFU (slots sharing one AFU are pooled).
            for (a, (slot_name, _)) in learned.iter().enumerate() {
                let mut values = Vec::new();
                for (slot, kind) in acts.slots.iter().enumerate() {
                    if *kind == crate::activation::Slot::Learned(a) {
                        values.extend(inputs.values.get(slot).map_or(&[][..], |v| &v[..]));
                    }
                }
                if let Some(d) = InputDistribution::from_values(&values, 60) {
                    trained
                        .histograms
                        .insert(format!("{name}/seed{seed}/{slot_name}"), d);
                }
            }
            // The same for the family modules (keys as in families.json).
            for (f, family_name) in acts.family_names.iter().enumerate() {
                let mut values = Vec::new();
                for (slot, kind) in acts.slots.iter().enumerate() {
                    if *kind == crate::activation::Slot::Family(f) {
                        values.extend(inputs.values.get(slot).map_or(&[][..], |v| &v[..]));
                    }
                }
                if let Some(d) = InputDistribution::from_values(&values, 60) {
                    trained
                        .histograms
                        .insert(format!("{name}/seed{seed}/{family_name}"), d);
                }
            }
            for (slot, params) in &learned {
                trained.afus.push(NamedAfu {
                    name: format!("{name}/seed{seed}/{slot}"),
                    params: params.clone(),
                });
            }
            for (slot, params) in acts.named_families() {
                trained.families.push(NamedFamily {
                    name: format!("{name}/seed{seed}/{slot}"),
                    params,
                });
            }
            if k == 0 && !learned.is_empty() {
                trained.panels.push(afu_panel(name, &learned, p));
            }
            trained.history.extend(fitted.history);
        }
    }
    if t.record_inputs {
        common::write_json(&out.join("histograms.json"), &trained.histograms)?;
    }
    let names: Vec<String> = t.variants.iter().map(|(n, _, _)| n.clone()).collect();
    let summary = write_outputs(
        &names,
        t.seeds,
        &trained,
        train.len(),
        test.len(),
        p,
        out,
        start,
    )?;
    match trained.stopped {
        Some(stop) => Err(ExperimentError::NonFiniteLoss {
            stop,
            out: out.to_path_buf(),
        }),
        None => Ok(summary),
    }
}

/// One family slot's learned parameters in `families.json`.
#[derive(Debug, Clone, Serialize)]
struct NamedFamily {
    /// `<variant>/seed<S>/<slot>`.
    name: String,
    /// Family, channels, parameter names and one row of values per channel.
    #[serde(flatten)]
    params: crate::family::FamilyParams,
}

/// The summary's table of learned single-parameter families (PReLU's and pmish's `a`,
/// Swish-β's `β`) per slot: mean over channels, with the range when there are several.
fn families_markdown(families: &[NamedFamily]) -> String {
    let single: Vec<&NamedFamily> = families
        .iter()
        .filter(|f| f.params.param_names.len() == 1)
        .collect();
    let mut md = String::from(
        "\n## Learned family parameters\n\nAll values per slot and channel: `families.json`.\n",
    );
    if single.is_empty() {
        return md;
    }
    md.push_str("\n| variant/seed/slot | family | parameter | mean over channels | min | max |\n|---|---|---|---|---|---|\n");
    for f in single {
        let v: Vec<f64> = f.params.values.iter().map(|r| r[0]).collect();
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        md.push_str(&format!(
            "| {} | {} | {} | {mean:.4} | {lo:.4} | {hi:.4} |\n",
            f.name, f.params.family, f.params.param_names[0]
        ));
    }
    md
}

fn afu_panel(name: &str, learned: &[(String, AfuParams)], p: &Presentation) -> LinePanel {
    let mut series: Vec<Series> = learned
        .iter()
        .take(p.max_afu_curves)
        .map(|(slot, params)| Series {
            label: slot.clone(),
            points: common::afu_curve(params, 0, -5.0, 5.0, 201),
            dashed: false,
        })
        .collect();
    let (label, f) = p.reference;
    series.push(Series {
        label: label.into(),
        points: (0..=200)
            .map(|i| {
                let z = -5.0 + i as f64 * 0.05;
                (z, f(z))
            })
            .collect(),
        dashed: true,
    });
    LinePanel {
        title: name.to_string(),
        series,
    }
}

/// The final numbers of each run, in the order of `history`'s first appearance.
fn runs_of(history: &[EpochRecord]) -> Vec<ImageRun> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for r in history {
        let key = (r.variant.clone(), r.seed);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .filter_map(|(variant, seed)| {
            let rows: Vec<&EpochRecord> = history
                .iter()
                .filter(|r| r.variant == variant && r.seed == seed)
                .collect();
            let last = rows.last()?;
            Some(ImageRun {
                variant,
                seed,
                test_accuracy: last.test_accuracy,
                top3_accuracy: last.test_top3,
                best_test_accuracy: rows.iter().map(|r| r.test_accuracy).fold(0.0, f64::max),
                test_loss: last.test_loss,
                train_loss: last.train_loss,
                epochs: rows.len(),
                seconds: rows.iter().map(|r| r.epoch_seconds).sum(),
                train_eval_loss: None,
                train_eval_accuracy: None,
            })
        })
        .collect()
}

/// Per-variant statistics and paired comparisons from the runs' final numbers.
pub fn summarise_runs(
    names: &[String],
    runs: &[ImageRun],
) -> (Vec<ImageVariantSummary>, Vec<Comparison>) {
    let values: Vec<SeedValue> = runs
        .iter()
        .map(|r| SeedValue {
            variant: r.variant.clone(),
            seed: r.seed,
            value: r.test_accuracy,
        })
        .collect();
    let acc = stats::variant_stats(names, &values);
    let mean = |v: &[&ImageRun], f: fn(&ImageRun) -> f64| {
        v.iter().map(|r| f(r)).sum::<f64>() / v.len().max(1) as f64
    };
    let variants = names
        .iter()
        .zip(acc)
        .filter_map(|(name, a)| {
            let rs: Vec<&ImageRun> = runs.iter().filter(|r| &r.variant == name).collect();
            if rs.is_empty() {
                return None;
            }
            let epochs = rs.iter().map(|r| r.epochs).max().unwrap_or(0);
            let total_epochs: usize = rs.iter().map(|r| r.epochs).sum();
            Some(ImageVariantSummary {
                name: name.clone(),
                seeds: a.seeds,
                test_accuracy: a.spread.mean,
                test_accuracy_mean: a.spread.mean,
                test_accuracy_std: a.spread.std,
                test_accuracy_ci95: a.spread.ci95,
                top3_accuracy: mean(&rs, |r| r.top3_accuracy),
                best_test_accuracy: mean(&rs, |r| r.best_test_accuracy),
                test_loss_mean: mean(&rs, |r| r.test_loss),
                epoch_seconds_mean: rs.iter().map(|r| r.seconds).sum::<f64>()
                    / total_epochs.max(1) as f64,
                seconds_mean: mean(&rs, |r| r.seconds),
                epochs,
                activation_parameters: None,
            })
        })
        .collect();
    let comparisons = stats::pairwise("test_accuracy", names, &values);
    (variants, comparisons)
}

/// The per-variant table and the comparisons, as Markdown.
pub fn results_markdown(variants: &[ImageVariantSummary], comparisons: &[Comparison]) -> String {
    let relu_secs = variants
        .iter()
        .find(|v| v.name == "relu")
        .map(|v| v.epoch_seconds_mean);
    let mut md = String::from(
        "| variant | seeds | final test accuracy (mean ± std [95 % interval]) | top-3 | best | s/epoch | × relu time |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    for v in variants {
        let s = stats::Spread {
            n: v.seeds.len(),
            mean: v.test_accuracy_mean,
            std: v.test_accuracy_std,
            ci95: v.test_accuracy_ci95,
        };
        md.push_str(&format!(
            "| {} | {} | {} | {:.4} | {:.4} | {:.1} | {} |\n",
            v.name,
            v.seeds.len(),
            stats::format_spread(&s, 4),
            v.top3_accuracy,
            v.best_test_accuracy,
            v.epoch_seconds_mean,
            relu_secs
                .map(|r| format!("{:.2}", v.epoch_seconds_mean / r))
                .unwrap_or_else(|| "–".into())
        ));
    }
    if !comparisons.is_empty() {
        md.push_str("\nPaired comparisons of the final test accuracy over the same seeds:\n\n");
        md.push_str(&stats::comparisons_table(comparisons, 4));
    }
    md
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    names: &[String],
    seeds: &[u64],
    trained: &Trained,
    train_images: usize,
    test_images: usize,
    p: &Presentation,
    out: &Path,
    start: Instant,
) -> Result<ImageSummary, ExperimentError> {
    let history = &trained.history;
    let mut csv = format!("{METRICS_HEADER}\n");
    for r in history {
        csv.push_str(&r.csv_row());
        csv.push('\n');
    }
    common::write_text(&out.join("metrics.csv"), &csv)?;
    AfuFile::new(p.experiment, trained.afus.clone()).save(&out.join("afu.json"))?;
    let fig = out.join("figures");
    let many = seeds.len() > 1;
    let suffix = if many {
        format!(" (mean of {} seeds)", seeds.len())
    } else {
        String::new()
    };
    let (mut loss_series, mut acc_series) = (Vec::new(), Vec::new());
    for name in names {
        let rows: Vec<&EpochRecord> = history.iter().filter(|r| &r.variant == name).collect();
        let per_epoch = |f: fn(&EpochRecord) -> f64| {
            let mut by_epoch: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
            for r in &rows {
                let e = by_epoch.entry(r.epoch).or_insert((0.0, 0));
                e.0 += f(r);
                e.1 += 1;
            }
            by_epoch
                .into_iter()
                .map(|(e, (s, n))| (e as f64, s / n as f64))
                .collect::<Vec<_>>()
        };
        loss_series.push(Series {
            label: format!("{name} train{suffix}"),
            points: per_epoch(|r| r.train_loss),
            dashed: true,
        });
        loss_series.push(Series {
            label: format!("{name} test{suffix}"),
            points: per_epoch(|r| r.test_loss),
            dashed: false,
        });
        acc_series.push(Series {
            label: format!("{name}{suffix}"),
            points: per_epoch(|r| r.test_accuracy),
            dashed: false,
        });
    }
    // A run stopped on a non-finite loss may have no complete epoch to draw; its figures are
    // left out rather than failing the summary.
    let draw = trained.stopped.is_none();
    if draw {
        plot::line_plot(
            &fig.join("loss.svg"),
            &format!("{}: loss per epoch", p.network),
            "epoch",
            "NLL",
            &loss_series,
            false,
        )?;
        plot::line_plot(
            &fig.join("accuracy.svg"),
            &format!("{}: test accuracy per epoch", p.network),
            "epoch",
            "accuracy",
            &acc_series,
            false,
        )?;
        if !trained.panels.is_empty() {
            plot::line_panels(
                &fig.join("afus.svg"),
                p.afu_figure_title,
                "z",
                "g(z)",
                &trained.panels,
                trained.panels.len().min(2),
            )?;
        }
    }
    let mut runs = runs_of(history);
    for r in &mut runs {
        let key = (r.variant.clone(), r.seed);
        if let Some((_, e)) = trained.train_evals.iter().find(|(k, _)| *k == key) {
            r.train_eval_loss = Some(e.loss);
            r.train_eval_accuracy = Some(e.top1);
        }
    }
    let (mut variants, comparisons) = summarise_runs(names, &runs);
    for v in &mut variants {
        v.activation_parameters = trained.activation_parameters.get(&v.name).copied();
    }
    let mut md = p.heading.clone();
    md.push_str(&format!(
        "\nSeeds: {}.\n\n",
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md.push_str(&results_markdown(&variants, &comparisons));
    let mut family_figures = Vec::new();
    if !trained.families.is_empty() {
        common::write_json(&out.join("families.json"), &trained.families)?;
        md.push_str(&families_markdown(&trained.families));
        if draw {
            let entries: Vec<family_inspect::FamilyEntry> = trained
                .families
                .iter()
                .map(|f| family_inspect::FamilyEntry {
                    name: f.name.clone(),
                    params: f.params.clone(),
                })
                .collect();
            family_figures = family_inspect::figures(&entries, &fig)?;
        }
    }
    let checkpoints = if many {
        "`checkpoints/<variant>/seed<S>/`"
    } else {
        "`checkpoints/<variant>/`"
    };
    md.push_str(&format!(
        "\nFigures: `figures/loss.svg`, `figures/accuracy.svg`{}{}. Checkpoints: {checkpoints} (rerun with `--resume` to continue).\n",
        if trained.panels.is_empty() {
            ""
        } else {
            ", `figures/afus.svg`"
        },
        family_figures
            .iter()
            .map(|f| format!(", `figures/{f}`"))
            .collect::<String>()
    ));
    let summary = ImageSummary {
        experiment: p.experiment.into(),
        train_images,
        test_images,
        seeds: seeds.to_vec(),
        variants,
        comparisons,
        runs,
        epochs: history.clone(),
        total_seconds: start.elapsed().as_secs_f64(),
        stopped_on_non_finite_loss: trained.stopped.clone(),
    };
    md.push_str(&format!(
        "\nTime: {:.1} s for the whole command.\n",
        summary.total_seconds
    ));
    if let Some(stop) = &trained.stopped {
        md.push_str(&format!(
            "\n**Stopped**: {stop}; the numbers above are the epochs completed before it, and the checkpoints hold the last of them.\n"
        ));
    }
    common::write_text(&out.join("summary.md"), &md)?;
    common::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(variant: &str, seed: u64, epoch: usize, acc: f64) -> EpochRecord {
        EpochRecord {
            variant: variant.into(),
            seed,
            epoch,
            lr: 1.0,
            train_loss: 1.0 / epoch as f64,
            test_loss: 0.5,
            test_accuracy: acc,
            test_top3: 0.99,
            epoch_seconds: 2.0,
        }
    }

    #[test]
    fn runs_and_statistics_come_from_the_last_epoch_of_each_seed() {
        let history = vec![
            record("relu", 1, 1, 0.80),
            record("relu", 1, 2, 0.90),
            record("afu", 1, 1, 0.85),
            record("afu", 1, 2, 0.88),
            record("relu", 2, 1, 0.70),
            record("relu", 2, 2, 0.92),
            record("afu", 2, 1, 0.95),
            record("afu", 2, 2, 0.93),
        ];
        let runs = runs_of(&history);
        assert_eq!(runs.len(), 4);
        assert_eq!((runs[0].variant.as_str(), runs[0].seed), ("relu", 1));
        assert_eq!(runs[0].test_accuracy, 0.90);
        assert_eq!(runs[3].best_test_accuracy, 0.95);
        assert_eq!(runs[3].seconds, 4.0);
        let names = ["relu".to_string(), "afu".to_string()];
        let (v, c) = summarise_runs(&names, &runs);
        assert!((v[0].test_accuracy_mean - 0.91).abs() < 1e-12);
        assert!((v[1].test_accuracy_mean - 0.905).abs() < 1e-12);
        assert_eq!(v[0].seeds, vec![1, 2]);
        assert!(v[0].test_accuracy_std.is_some() && v[0].test_accuracy_ci95.is_some());
        assert_eq!(v[0].epoch_seconds_mean, 2.0);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].a.as_str(), c[0].b.as_str()), ("relu", "afu"));
        assert!((c[0].result.mean_difference - 0.005).abs() < 1e-12);
        assert!(c[0].result.p_value.is_some());
        let md = results_markdown(&v, &c);
        assert!(md.contains("| relu | 2 | 0.9100 ± "), "{md}");
        assert!(md.contains("relu − afu"), "{md}");
    }

    #[test]
    fn one_seed_keeps_the_old_checkpoint_layout() {
        let out = Path::new("run");
        assert_eq!(
            checkpoint_dir(out, "relu", 7, 1),
            Path::new("run/checkpoints/relu")
        );
        assert_eq!(
            checkpoint_dir(out, "relu", 7, 3),
            Path::new("run/checkpoints/relu/seed7")
        );
        assert_eq!(seed_list(5, 3), vec![5, 6, 7]);
    }
}
