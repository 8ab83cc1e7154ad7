//! The `afu meta` run: CMA-ES generations with a checkpoint after each, then the evaluation of
//! the learned AFU on held-out tasks, and the run folder.
//!
//! Every random draw comes from a seed derived from `(seed, purpose, generation, index)`, so a
//! generation depends only on the CMA-ES state before it: the checkpoint (that state and the
//! history, written atomically after every generation) is all `--resume` needs to continue
//! bit-identically. Candidates × tasks are evaluated in parallel (rayon), each evaluation
//! single-threaded, and collected in order: results do not depend on the thread count.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::afu::analysis::fit_afu_to;
use crate::afu::file::{AfuFile, NamedAfu};
use crate::afu::{AfuConfig, AfuParams, BaseActivation};
use crate::data::dataset::{ImageDataset, Split};
use crate::experiments::common::{self, ExperimentError};
use crate::meta::cmaes::CmaEs;
use crate::meta::inner::{self, InnerActivation};
use crate::meta::tasks::{self, Task, mix};
use crate::meta::{MetaConfig, MetaStart, report};
use crate::report::plot::{self, Series};
use crate::stats::{PairedTest, Spread, paired_t, spread};

/// The checkpoint file in the run folder.
pub const CHECKPOINT: &str = "checkpoint.json";
const CHECKPOINT_FORMAT: &str = "afu-meta-checkpoint-v1";

/// What a run writes into its folder (what `--force` removes).
const RUN_ENTRIES: [&str; 7] = [
    "config.toml",
    CHECKPOINT,
    "meta.csv",
    "afu.json",
    "summary.json",
    "summary.md",
    "figures",
];

/// One generation of the search (`meta.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaRow {
    /// Generation (1-based).
    pub generation: usize,
    /// Best candidate's meta-loss.
    pub best: f64,
    /// Mean meta-loss of the population.
    pub mean: f64,
    /// Step size σ after the update.
    pub sigma: f64,
    /// Meta-loss of the distribution mean (before this generation's update) on the same tasks.
    pub centre: f64,
    /// Meta-loss of the start AFU on the same tasks.
    pub start: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    start: AfuParams,
    es: CmaEs,
    history: Vec<MetaRow>,
    seconds: f64,
}

/// One variant's results on the held-out tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantEval {
    /// `meta-learned`, `meta-start`, `relu`, `afu-random`, `afu-relu-init`.
    pub name: String,
    /// How it was trained.
    pub description: String,
    /// Training loss after K steps.
    pub loss_at_k: Spread,
    /// Training loss after the full horizon.
    pub loss_full: Spread,
    /// Steps to reach the target loss (censored at full + 1).
    pub steps_to_target: Spread,
    /// Tasks where the target was not reached within the full horizon.
    pub not_reached: usize,
    /// Test accuracy after the full horizon.
    pub test_accuracy: Spread,
    /// The meta-loss at horizon K.
    pub meta_loss_k: Spread,
    /// Training loss before the first step (what the `decrease` meta-loss divides by).
    pub initial_loss: Spread,
    /// Per-task values, in held-out task order, as named in [`METRICS`].
    pub per_task: Vec<[f64; 6]>,
}

/// A paired comparison `meta-learned − other` on one metric over the held-out tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaComparison {
    /// The other variant.
    pub other: String,
    /// The metric.
    pub metric: String,
    /// The paired t-test.
    pub test: PairedTest,
}

/// `summary.json` of `afu meta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaSummary {
    /// `"meta"`.
    pub experiment: String,
    /// The settings.
    pub config: MetaConfig,
    /// Generations done.
    pub generations_done: usize,
    /// Meta-loss of the distribution mean in the first generation (= the start when the search
    /// starts there) and in the last.
    pub centre_first: f64,
    /// Meta-loss of the distribution mean in the last generation.
    pub centre_last: f64,
    /// Final step size.
    pub sigma_last: f64,
    /// The learned AFU (the final CMA-ES mean).
    pub learned: AfuParams,
    /// The start AFU.
    pub start: AfuParams,
    /// Held-out task kinds.
    pub held_out_tasks: Vec<String>,
    /// K.
    pub horizon_k: usize,
    /// The long horizon.
    pub horizon_full: usize,
    /// Per variant.
    pub variants: Vec<VariantEval>,
    /// `meta-learned − other` paired tests.
    pub comparisons: Vec<MetaComparison>,
    /// Verdict on "faster convergence".
    pub verdict: String,
    /// Why.
    pub verdict_reason: String,
    /// Seconds of the search (all sessions together).
    pub search_seconds: f64,
    /// Seconds of the evaluation.
    pub eval_seconds: f64,
    /// Threads used by this session.
    pub threads: usize,
}

/// Metric names, in [`VariantEval::per_task`] order.
pub const METRICS: [&str; 6] = [
    "loss_at_k",
    "loss_full",
    "steps_to_target",
    "test_accuracy",
    "meta_loss_k",
    "initial_loss",
];

/// AFU parameters → the search vector `[w0, b0, w1, b1]`.
pub fn to_vector(p: &AfuParams) -> Vec<f64> {
    p.w0.iter()
        .chain(&p.b0)
        .chain(&p.w1)
        .chain(&p.b1)
        .copied()
        .collect()
}

/// The search vector → AFU parameters (one channel).
pub fn from_vector(v: &[f64], hidden: usize, base: BaseActivation) -> AfuParams {
    AfuParams {
        base,
        channels: 1,
        hidden,
        w0: v[..hidden].to_vec(),
        b0: v[hidden..2 * hidden].to_vec(),
        w1: v[2 * hidden..3 * hidden].to_vec(),
        b1: vec![v[3 * hidden]],
    }
}

/// The AFU fitted to relu over [−5, 5] (seeded by the run's seed).
pub fn relu_fit(config: &MetaConfig) -> AfuParams {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, 3));
    fit_afu_to(
        BaseActivation::Relu,
        config.hidden,
        config.base,
        -5.0,
        5.0,
        &mut rng,
    )
}

fn start_afu(config: &MetaConfig) -> Result<AfuParams, ExperimentError> {
    Ok(match config.start {
        MetaStart::ReluFit => relu_fit(config),
        MetaStart::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, 5));
            AfuParams::random(
                &AfuConfig::new(config.hidden).with_base(config.base),
                &mut rng,
            )?
        }
    })
}

/// Meta-losses of each candidate (rows) on each task (columns), evaluated in parallel.
fn meta_losses(
    config: &MetaConfig,
    candidates: &[AfuParams],
    tasks: &[(Task, u64)],
) -> Result<Vec<Vec<f64>>, ExperimentError> {
    let jobs: Vec<(usize, usize)> = (0..candidates.len())
        .flat_map(|c| (0..tasks.len()).map(move |t| (c, t)))
        .collect();
    let values: Vec<f64> = jobs
        .par_iter()
        .map(|&(c, t)| {
            let (task, seed) = &tasks[t];
            let trace = inner::train(
                task,
                &InnerActivation::Frozen(candidates[c].clone()),
                config.width,
                config.inner_steps,
                config.lr,
                *seed,
            )?;
            Ok(config
                .meta_loss
                .of(trace.losses[0], trace.losses[config.inner_steps]))
        })
        .collect::<Result<_, ExperimentError>>()?;
    Ok(values.chunks(tasks.len()).map(|c| c.to_vec()).collect())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn load_images(config: &MetaConfig) -> Result<Option<ImageDataset>, ExperimentError> {
    config
        .data
        .as_ref()
        .map(|dir| crate::data::mnist::load_mnist_dir(dir, Split::Train).map_err(Into::into))
        .transpose()
}

/// Writes `config.toml` (the settings with `experiment = "meta"`).
fn write_config(out: &Path, config: &MetaConfig) -> Result<(), ExperimentError> {
    let path = out.join("config.toml");
    let mut value = toml::Value::try_from(config).map_err(|e| ExperimentError::Output {
        path: path.clone(),
        source: e.into(),
    })?;
    if let toml::Value::Table(t) = &mut value {
        t.insert("experiment".into(), toml::Value::String("meta".into()));
    }
    common::write_toml(&path, &value)
}

/// Reads the settings of the run in `out`.
pub fn read_config(out: &Path) -> Result<MetaConfig, ExperimentError> {
    let path = out.join("config.toml");
    let bad = |message: String| ExperimentError::Config {
        field: "out",
        message: format!("{}: {message}", path.display()),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    config_from_toml(&text, &path)
}

/// Whether the `config.toml` text `text` describes an `afu meta` run (`experiment = "meta"`).
pub fn is_meta_config(text: &str) -> bool {
    toml::from_str::<toml::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("experiment")
                .and_then(|e| e.as_str().map(|e| e == "meta"))
        })
        .unwrap_or(false)
}

/// The settings in the `config.toml` text `text` (read from `path`, named in errors), checked.
pub fn config_from_toml(text: &str, path: &Path) -> Result<MetaConfig, ExperimentError> {
    let bad = |message: String| ExperimentError::Config {
        field: "config",
        message: format!("{}: {message}", path.display()),
    };
    let mut value: toml::Value = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let experiment = value
        .as_table_mut()
        .and_then(|t| t.remove("experiment"))
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if experiment != "meta" {
        return Err(bad(format!(
            "holds an '{experiment}' run, not an afu meta run"
        )));
    }
    let config: MetaConfig = value
        .try_into()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

/// Checks `out` before a run, as the other commands do: a folder holding a run is never
/// overwritten by a new one; `--resume` needs a run with the same settings (more generations
/// allowed); `--force` removes the old run's files first.
pub fn claim_folder(
    out: &Path,
    config: &MetaConfig,
    resume: bool,
    force: bool,
) -> Result<(), ExperimentError> {
    let bad = |message: String| ExperimentError::Config {
        field: "out",
        message,
    };
    let held = out.join("config.toml").is_file();
    match (held, resume, force) {
        (_, true, true) => Err(bad("--resume and --force exclude each other".into())),
        (false, true, _) => Err(bad(format!(
            "--resume: {} holds no afu meta run",
            out.display()
        ))),
        (false, false, _) => Ok(()),
        (true, false, false) => Err(bad(format!(
            "{} already holds a run; continue it with --resume, replace it with --force, or choose another --out",
            out.display()
        ))),
        (true, false, true) => {
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
            Ok(())
        }
        (true, true, false) => {
            let old = read_config(out)?;
            let same = MetaConfig {
                generations: config.generations,
                ..old.clone()
            };
            if &same != config {
                let a = toml::to_string(&old).unwrap_or_default();
                let b = toml::to_string(config).unwrap_or_default();
                let diffs: Vec<String> = a
                    .lines()
                    .zip(b.lines())
                    .filter(|(x, y)| x != y && !x.starts_with("generations"))
                    .map(|(x, y)| format!("{x} there, {y} now"))
                    .collect();
                return Err(bad(format!(
                    "--resume: the run in {} was made with other settings: {}; resume with its settings, or start a new run",
                    out.display(),
                    diffs.join("; ")
                )));
            }
            Ok(())
        }
    }
}

fn write_history(out: &Path, history: &[MetaRow]) -> Result<(), ExperimentError> {
    let mut csv = String::from("generation,best,mean,sigma,centre,start\n");
    for r in history {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.generation, r.best, r.mean, r.sigma, r.centre, r.start
        ));
    }
    common::write_text(&out.join("meta.csv"), &csv)
}

/// The search history of the run in `out`, from its `meta.csv` (`None` when the file is
/// missing or not a `meta.csv`).
pub fn read_history(out: &Path) -> Option<Vec<MetaRow>> {
    let text = std::fs::read_to_string(out.join("meta.csv")).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "generation,best,mean,sigma,centre,start" {
        return None;
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let x = |i: usize| f.get(i)?.parse::<f64>().ok();
            Some(MetaRow {
                generation: f.first()?.parse().ok()?,
                best: x(1)?,
                mean: x(2)?,
                sigma: x(3)?,
                centre: x(4)?,
                start: x(5)?,
            })
        })
        .collect()
}

/// Runs (or, with `resume`, continues from its checkpoint, if it has one) the search in `out`,
/// then evaluates and writes the run folder. The folder must have been claimed
/// ([`claim_folder`]).
pub fn run(
    config: &MetaConfig,
    out: &Path,
    resume: bool,
    progress: bool,
) -> Result<MetaSummary, ExperimentError> {
    config.validate()?;
    let images = load_images(config)?;
    let images = images.as_ref();
    let ck_path = out.join(CHECKPOINT);
    // A claimed folder without a checkpoint (a sweep job's folder holding only its
    // `config.toml`, or a run stopped before its first generation) starts from the beginning.
    let mut ck = if resume && ck_path.exists() {
        let text = std::fs::read_to_string(&ck_path).map_err(|e| ExperimentError::Checkpoint {
            path: ck_path.clone(),
            source: e.into(),
        })?;
        let ck: Checkpoint =
            serde_json::from_str(&text).map_err(|e| ExperimentError::Checkpoint {
                path: ck_path.clone(),
                source: e.into(),
            })?;
        if ck.format != CHECKPOINT_FORMAT || ck.es.lambda != config.population {
            return Err(ExperimentError::Checkpoint {
                path: ck_path.clone(),
                source: "not a checkpoint of this run".into(),
            });
        }
        if ck.history.len() > config.generations {
            return Err(ExperimentError::Config {
                field: "generations",
                message: format!(
                    "the checkpoint already holds {} generations; ask for at least that many",
                    ck.history.len()
                ),
            });
        }
        ck
    } else {
        let start = start_afu(config)?;
        Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            es: CmaEs::new(to_vector(&start), config.sigma0, config.population),
            start,
            history: Vec::new(),
            seconds: 0.0,
        }
    };
    write_config(out, config)?;
    let (hidden, base) = (config.hidden, config.base);
    let bar = common::progress_bar(config.generations as u64, "meta", progress);
    bar.set_position(ck.history.len().min(config.generations) as u64);
    while ck.history.len() < config.generations {
        let started = Instant::now();
        let g = ck.history.len();
        let tasks: Vec<(Task, u64)> = (0..config.tasks)
            .map(|i| {
                let s = tasks::train_task_seed(config.seed, g, i);
                (tasks::sample_task(s, config.points, images), s)
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(config.seed, 4), g as u64));
        let xs = ck.es.ask(&mut rng);
        let mut candidates: Vec<AfuParams> =
            xs.iter().map(|x| from_vector(x, hidden, base)).collect();
        candidates.push(from_vector(&ck.es.mean, hidden, base));
        candidates.push(ck.start.clone());
        let fitness: Vec<f64> = meta_losses(config, &candidates, &tasks)?
            .iter()
            .map(|row| mean(row))
            .collect();
        let lambda = xs.len();
        ck.es.tell(&xs, &fitness[..lambda]);
        ck.history.push(MetaRow {
            generation: g + 1,
            best: fitness[..lambda]
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min),
            mean: mean(&fitness[..lambda]),
            sigma: ck.es.sigma,
            centre: fitness[lambda],
            start: fitness[lambda + 1],
        });
        ck.seconds += started.elapsed().as_secs_f64();
        common::write_json(&ck_path, &ck)?;
        write_history(out, &ck.history)?;
        bar.inc(1);
        if crate::interrupt::requested() && ck.history.len() < config.generations {
            bar.finish_and_clear();
            return Err(ExperimentError::Interrupted {
                checkpoint: ck_path,
                what: format!("after generation {} of {}", g + 1, config.generations),
                out: out.to_path_buf(),
            });
        }
    }
    bar.finish_and_clear();
    let history = &ck.history[..];
    let learned = from_vector(&ck.es.mean, hidden, base);
    write_history(out, history)?;
    AfuFile::new(
        "meta",
        vec![NamedAfu {
            name: "meta/learned".into(),
            params: learned.clone(),
        }],
    )
    .save(&out.join("afu.json"))?;

    let eval_start = Instant::now();
    let summary = evaluate(config, &learned, &ck, images)?;
    let summary = MetaSummary {
        eval_seconds: eval_start.elapsed().as_secs_f64(),
        ..summary
    };
    write_figures(config, &summary, history, out)?;
    common::write_json(&out.join("summary.json"), &summary)?;
    common::write_text(&out.join("summary.md"), &report::markdown(&summary, None))?;
    Ok(summary)
}

/// Learning-rate multipliers tried for the tuned-lr relu control.
pub const LR_FACTORS: [f64; 6] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0];

/// The multiplier of the inner learning rate that gives relu the lowest mean loss after K
/// steps on `tasks` tasks of the training distribution (a seed stream of their own, tag 6).
fn tune_relu_lr(
    config: &MetaConfig,
    images: Option<&ImageDataset>,
) -> Result<f64, ExperimentError> {
    let tune: Vec<(Task, u64)> = (0..config.tasks)
        .map(|i| {
            let s = mix(mix(config.seed, 6), i as u64);
            (tasks::sample_task(s, config.points, images), s)
        })
        .collect();
    let jobs: Vec<(usize, usize)> = (0..LR_FACTORS.len())
        .flat_map(|f| (0..tune.len()).map(move |t| (f, t)))
        .collect();
    let losses: Vec<f64> = jobs
        .par_iter()
        .map(|&(f, t)| {
            let (task, seed) = &tune[t];
            let trace = inner::train(
                task,
                &InnerActivation::Fixed(BaseActivation::Relu),
                config.width,
                config.inner_steps,
                config.lr * LR_FACTORS[f],
                *seed,
            )?;
            let l = trace.losses[config.inner_steps];
            Ok(if l.is_finite() { l } else { f64::INFINITY })
        })
        .collect::<Result<_, ExperimentError>>()?;
    let means: Vec<f64> = losses.chunks(tune.len()).map(mean).collect();
    let best = (0..means.len())
        .min_by(|&a, &b| means[a].total_cmp(&means[b]))
        .unwrap_or(0);
    Ok(LR_FACTORS[best])
}

/// The held-out evaluation: every variant on every held-out task for the full horizon.
fn evaluate(
    config: &MetaConfig,
    learned: &AfuParams,
    ck: &Checkpoint,
    images: Option<&ImageDataset>,
) -> Result<MetaSummary, ExperimentError> {
    let k = config.inner_steps;
    let full = config.full_steps();
    let relu_init = relu_fit(config);
    let variants: Vec<(&str, String, InnerActivation)> = vec![
        (
            "meta-learned",
            "the learned AFU, frozen".into(),
            InnerActivation::Frozen(learned.clone()),
        ),
        (
            "meta-start",
            "the search's start AFU, frozen".into(),
            InnerActivation::Frozen(ck.start.clone()),
        ),
        (
            "relu",
            "fixed relu".into(),
            InnerActivation::Fixed(BaseActivation::Relu),
        ),
        (
            "afu-random",
            "a random-init AFU trained with the net (the paper's method)".into(),
            InnerActivation::Trained {
                start: None,
                hidden: config.hidden,
                base: config.base,
            },
        ),
        (
            "afu-relu-init",
            "an AFU initialised as relu, trained with the net".into(),
            InnerActivation::Trained {
                start: Some(relu_init),
                hidden: config.hidden,
                base: config.base,
            },
        ),
    ];
    // The control for "a steeper AFU is a larger step": relu with the learning rate tuned on
    // training-distribution tasks (their own seed stream) by the loss after K steps.
    let factor = tune_relu_lr(config, images)?;
    let mut lrs = vec![config.lr; variants.len()];
    let mut variants = variants;
    variants.push((
        "relu-tuned-lr",
        format!(
            "fixed relu, Adam lr × {factor} (best of {:?} on training tasks by the loss after K)",
            LR_FACTORS
        ),
        InnerActivation::Fixed(BaseActivation::Relu),
    ));
    lrs.push(config.lr * factor);
    let held: Vec<(Task, u64)> = (0..config.held_out)
        .map(|i| {
            let s = tasks::held_out_seed(config.seed, i);
            (tasks::sample_task(s, config.points, images), s)
        })
        .collect();
    let jobs: Vec<(usize, usize)> = (0..variants.len())
        .flat_map(|v| (0..held.len()).map(move |t| (v, t)))
        .collect();
    let rows: Vec<[f64; 6]> = jobs
        .par_iter()
        .map(|&(v, t)| {
            let (task, seed) = &held[t];
            let trace = inner::train(task, &variants[v].2, config.width, full, lrs[v], *seed)?;
            let l = &trace.losses;
            let steps = l
                .iter()
                .position(|&x| x <= config.target_loss)
                .unwrap_or(full + 1) as f64;
            Ok([
                l[k],
                l[full],
                steps,
                trace.test_accuracy,
                config.meta_loss.of(l[0], l[k]),
                l[0],
            ])
        })
        .collect::<Result<_, ExperimentError>>()?;
    let per_variant: Vec<Vec<[f64; 6]>> = rows.chunks(held.len()).map(|c| c.to_vec()).collect();
    let column = |v: usize, m: usize| per_variant[v].iter().map(|r| r[m]).collect::<Vec<f64>>();
    let evals: Vec<VariantEval> = variants
        .iter()
        .enumerate()
        .map(|(v, (name, description, _))| VariantEval {
            name: name.to_string(),
            description: description.clone(),
            loss_at_k: spread(&column(v, 0)),
            loss_full: spread(&column(v, 1)),
            steps_to_target: spread(&column(v, 2)),
            not_reached: column(v, 2).iter().filter(|&&s| s > full as f64).count(),
            test_accuracy: spread(&column(v, 3)),
            meta_loss_k: spread(&column(v, 4)),
            initial_loss: spread(&column(v, 5)),
            per_task: per_variant[v].clone(),
        })
        .collect();
    let names: Vec<&str> = variants.iter().map(|v| v.0).collect();
    let comparisons: Vec<MetaComparison> = (1..variants.len())
        .flat_map(|o| {
            let (column, names) = (&column, &names);
            METRICS
                .iter()
                .enumerate()
                .map(move |(m, metric)| MetaComparison {
                    other: names[o].to_string(),
                    metric: metric.to_string(),
                    test: paired_t(&column(0, m), &column(o, m)),
                })
        })
        .collect();
    let (verdict, verdict_reason) = report::verdict(&comparisons, config.held_out);
    let history = &ck.history;
    Ok(MetaSummary {
        experiment: "meta".into(),
        config: config.clone(),
        generations_done: history.len(),
        centre_first: history.first().map_or(f64::NAN, |r| r.centre),
        centre_last: history.last().map_or(f64::NAN, |r| r.centre),
        sigma_last: ck.es.sigma,
        learned: learned.clone(),
        start: ck.start.clone(),
        held_out_tasks: held.iter().map(|(t, _)| t.kind.clone()).collect(),
        horizon_k: k,
        horizon_full: full,
        variants: evals,
        comparisons,
        verdict,
        verdict_reason,
        search_seconds: ck.seconds,
        eval_seconds: 0.0,
        threads: rayon::current_num_threads(),
    })
}

fn write_figures(
    config: &MetaConfig,
    s: &MetaSummary,
    history: &[MetaRow],
    out: &Path,
) -> Result<(), ExperimentError> {
    let fig = out.join("figures");
    let series = |label: &str, f: fn(&MetaRow) -> f64, dashed: bool| Series {
        label: label.into(),
        points: history
            .iter()
            .map(|r| (r.generation as f64, f(r)))
            .collect(),
        dashed,
    };
    plot::line_plot(
        &fig.join("meta_loss.svg"),
        &format!(
            "afu meta: meta-loss ({:?}, K = {}) per generation",
            config.meta_loss, config.inner_steps
        ),
        "generation",
        "meta-loss (mean over the generation's tasks)",
        &[
            series("best candidate", |r| r.best, false),
            series("population mean", |r| r.mean, false),
            series("distribution mean", |r| r.centre, false),
            series("start AFU", |r| r.start, true),
        ],
        false,
    )?;
    let relu: Vec<(f64, f64)> = (0..201)
        .map(|i| {
            let z = -5.0 + 10.0 * i as f64 / 200.0;
            (z, z.max(0.0))
        })
        .collect();
    plot::line_plot(
        &fig.join("learned_afu.svg"),
        "afu meta: the learned AFU, its start and relu",
        "z",
        "G(z)",
        &[
            Series {
                label: "learned".into(),
                points: common::afu_curve(&s.learned, 0, -5.0, 5.0, 201),
                dashed: false,
            },
            Series {
                label: "start".into(),
                points: common::afu_curve(&s.start, 0, -5.0, 5.0, 201),
                dashed: true,
            },
            Series {
                label: "relu".into(),
                points: relu,
                dashed: true,
            },
        ],
        false,
    )?;
    Ok(())
}

/// Default output folder: `runs/meta/<timestamp>`.
pub fn default_out() -> PathBuf {
    common::default_out_dir("meta")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_meta_loss_normalises() {
        let p = relu_fit(&MetaConfig {
            hidden: 3,
            ..MetaConfig::quick()
        });
        let v = to_vector(&p);
        assert_eq!(v.len(), 10);
        assert_eq!(from_vector(&v, 3, p.base), p);
        let d = crate::meta::MetaLoss::Decrease;
        assert_eq!(d.of(2.0, 1.0), -0.5);
        assert_eq!(d.of(2.0, f64::NAN), 10.0);
        let f = crate::meta::MetaLoss::Final;
        assert!((f.of(9.0, std::f64::consts::LN_2) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_run_folder_is_claimed_like_the_other_commands() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let config = MetaConfig::quick();
        claim_folder(&out, &config, false, false).unwrap();
        assert!(claim_folder(&out, &config, true, false).is_err());
        std::fs::create_dir_all(&out).unwrap();
        write_config(&out, &config).unwrap();
        assert_eq!(read_config(&out).unwrap(), config);
        let e = claim_folder(&out, &config, false, false).unwrap_err();
        assert!(e.to_string().contains("--resume"), "{e}");
        let more = MetaConfig {
            generations: 50,
            ..config.clone()
        };
        claim_folder(&out, &more, true, false).unwrap();
        let other = MetaConfig {
            seed: 9,
            ..config.clone()
        };
        let e = claim_folder(&out, &other, true, false).unwrap_err();
        assert!(
            e.to_string().contains("seed = 0 there, seed = 9 now"),
            "{e}"
        );
        claim_folder(&out, &other, false, true).unwrap();
        assert!(!out.join("config.toml").exists());
    }
}
