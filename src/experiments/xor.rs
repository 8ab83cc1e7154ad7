//! The toy XOR experiment (paper §2.2.1, SPEC §2.1): a 2→4→1 net whose four hidden neurons
//! share one AFU, against fixed activations, over several seeds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::activation::ActivationSpec;
use crate::afu::analysis::InputDistribution;
use crate::afu::file::{AfuFile, NamedAfu};
use crate::afu::{AfuParams, KernelChoice};
use crate::data::xor::{PlaneData, xor_blobs};
use crate::experiments::common::{self, ExperimentError};
use crate::models::mlp::Mlp;
use crate::report::plot::{self, HeatPanel, LinePanel, ScatterClass, Series};
use crate::train::metrics::{accuracy_pm1, mean_std, roc_auc};
use crate::train::{adam_torch_defaults, hinge_loss};

/// Settings of `afu xor`. Written to `config.toml` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XorConfig {
    /// Activations to compare (`afu-relu-8`, `relu`, …).
    pub variants: Vec<String>,
    /// Repeats of each variant (seeds `first_seed .. first_seed + seeds`).
    pub seeds: usize,
    /// First seed.
    pub first_seed: u64,
    /// Points per Gaussian blob (4 blobs).
    pub points_per_blob: usize,
    /// Blob centres at `(±centre, ±centre)` (reference code 1.5; paper text 1).
    pub centre: f32,
    /// Standard deviation of each blob.
    pub std: f32,
    /// Hidden neurons of the 2→H→1 net.
    pub hidden_neurons: usize,
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Which AFU implementation to use.
    pub kernel: KernelChoice,
    /// How the AFUs start (transfer, known-function init, freezing).
    #[serde(default)]
    pub afu_start: common::AfuStart,
    /// Resolution (per side) of the plane figures.
    pub grid: usize,
}

impl Default for XorConfig {
    fn default() -> Self {
        XorConfig {
            variants: [
                "afu-relu-8",
                "afu-relu-128",
                "afu-sigmoid-8",
                "afu-sigmoid-128",
                "relu",
                "tanh",
                "sigmoid",
            ]
            .map(String::from)
            .to_vec(),
            seeds: 5,
            first_seed: 0,
            points_per_blob: 500,
            centre: 1.5,
            std: 1.0,
            hidden_neurons: 4,
            steps: 1000,
            lr: 1e-3,
            kernel: KernelChoice::Auto,
            afu_start: common::AfuStart::default(),
            grid: 81,
        }
    }
}

impl XorConfig {
    /// Tiny settings for tests and smoke runs.
    pub fn quick() -> Self {
        XorConfig {
            variants: ["afu-relu-8", "afu-sigmoid-8", "relu"]
                .map(String::from)
                .to_vec(),
            seeds: 2,
            points_per_blob: 100,
            steps: 200,
            grid: 21,
            ..XorConfig::default()
        }
    }

    /// Parses and checks every field.
    pub fn validate(&self) -> Result<Vec<ActivationSpec>, ExperimentError> {
        common::between_one_and("seeds", self.seeds, common::MAX_SEEDS)?;
        common::between_one_and("steps", self.steps, common::MAX_STEPS)?;
        common::at_least_one("grid", self.grid.saturating_sub(1))?;
        common::between_one_and("grid", self.grid, common::MAX_GRID)?;
        common::between_one_and("points_per_blob", self.points_per_blob, common::MAX_WIDTH)?;
        common::between_one_and("hidden_neurons", self.hidden_neurons, common::MAX_WIDTH)?;
        common::positive("std", self.std as f64)?;
        common::positive("lr", self.lr)?;
        if !self.centre.is_finite() {
            return Err(ExperimentError::Config {
                field: "centre",
                message: "must be finite".into(),
            });
        }
        common::parse_variants(&self.variants)
    }
}

/// The outcome of one (variant, seed) run.
#[derive(Debug, Clone, Serialize)]
pub struct XorRun {
    /// Variant name.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Train accuracy.
    pub train_accuracy: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Train AUC.
    pub train_auc: f64,
    /// Test AUC.
    pub test_auc: f64,
    /// Hinge loss after the last step.
    pub final_loss: f64,
    /// Training time.
    pub seconds: f64,
    /// Loss at every step.
    #[serde(skip)]
    pub losses: Vec<f64>,
    /// Learned AFUs (name, params) after training.
    #[serde(skip)]
    pub afus_after: Vec<(String, AfuParams)>,
    /// AFUs before training.
    #[serde(skip)]
    pub afus_before: Vec<(String, AfuParams)>,
    /// The hidden pre-activations on the training data after training (what the AFU sees).
    #[serde(skip)]
    pub hidden_inputs: Vec<f32>,
    /// Figure data for the first seed: (score grid, hidden-neuron grids).
    #[serde(skip)]
    pub figures: Option<(plot::Grid, Vec<plot::Grid>)>,
}

/// Per-variant aggregate over seeds (the `summary.json` rows).
#[derive(Debug, Clone, Serialize)]
pub struct XorVariantSummary {
    /// Variant name.
    pub name: String,
    /// Number of seeds.
    pub runs: usize,
    /// Learnable parameters of the model.
    pub parameters: usize,
    /// Mean test accuracy.
    pub test_accuracy_mean: f64,
    /// Std of test accuracy.
    pub test_accuracy_std: f64,
    /// Mean test AUC.
    pub test_auc_mean: f64,
    /// Std of test AUC.
    pub test_auc_std: f64,
    /// Mean train accuracy.
    pub train_accuracy_mean: f64,
    /// Mean train AUC.
    pub train_auc_mean: f64,
    /// Mean final hinge loss.
    pub final_loss_mean: f64,
    /// Mean training seconds per run.
    pub seconds_mean: f64,
}

/// `summary.json` of an XOR run.
#[derive(Debug, Clone, Serialize)]
pub struct XorSummary {
    /// `"xor"`.
    pub experiment: String,
    /// Accuracy of the Bayes rule `sign(x·y)` for these blobs.
    pub bayes_accuracy: f64,
    /// Per-variant results.
    pub variants: Vec<XorVariantSummary>,
    /// Every run.
    pub runs: Vec<XorRun>,
    /// Wall-clock seconds of the whole command.
    pub total_seconds: f64,
}

fn tensor_of(data: &PlaneData, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let n = data.len();
    (
        Tensor::from_data(TensorData::new(data.flat_points(), [n, 2]), device),
        Tensor::from_data(TensorData::new(data.labels.clone(), [n, 1]), device),
    )
}

/// Trains one variant with one seed.
fn run_one(
    config: &XorConfig,
    name: &str,
    spec: &ActivationSpec,
    seed: u64,
    with_figures: bool,
    bar: &indicatif::ProgressBar,
) -> Result<XorRun, ExperimentError> {
    let device = Device::flex().autodiff();
    let train = xor_blobs(config.points_per_blob, config.centre, config.std, seed);
    let test = xor_blobs(
        config.points_per_blob,
        config.centre,
        config.std,
        seed ^ 0x5EED_7E57,
    );
    let (x, y) = tensor_of(&train, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = Mlp::new(
        &[2, config.hidden_neurons, 1],
        spec,
        false,
        &mut rng,
        &device,
    )?;
    model.activations = config
        .afu_start
        .apply(model.activations, &mut rng, &device)?
        .with_kernel(config.kernel);
    let afus_before = model.activations.named();
    let mut optim = adam_torch_defaults().init();
    let start = Instant::now();
    let mut losses = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        if crate::interrupt::requested() {
            return Err(ExperimentError::Stopped {
                what: format!("{name}, seed {seed}, step {step} of {}", config.steps),
            });
        }
        let loss = hinge_loss(model.forward(x.clone()), y.clone());
        let l = loss.clone().into_scalar::<f32>() as f64;
        if !l.is_finite() {
            return Err(ExperimentError::NonFiniteStep {
                what: format!(
                    "xor: {name}, seed {seed}, step {} of {}",
                    step + 1,
                    config.steps
                ),
                loss: l,
            });
        }
        losses.push(l);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.lr, model, grads);
        bar.inc(1);
    }
    let seconds = start.elapsed().as_secs_f64();
    let model = model.valid();
    let final_loss = {
        let scores = model.forward(x.clone().inner());
        hinge_loss(scores, y.clone().inner()).into_scalar::<f32>() as f64
    };
    let scores_of =
        |d: &PlaneData| common::to_vec(model.forward(tensor_of(d, &device.clone().inner()).0));
    let train_scores = scores_of(&train);
    let hidden_inputs =
        common::to_vec(model.layers[0].forward(tensor_of(&train, &device.clone().inner()).0));
    let test_scores = scores_of(&test);
    let figures = with_figures.then(|| {
        let (xs, pts) = common::plane_grid(-5.0, 5.0, config.grid, &device.clone().inner());
        let (out, hidden) = model.forward_with_hidden(pts, true);
        let score = common::grid_of(&xs, &out, 0);
        let neurons = (0..config.hidden_neurons)
            .map(|k| common::grid_of(&xs, &hidden[0], k))
            .collect();
        (score, neurons)
    });
    Ok(XorRun {
        variant: name.to_string(),
        seed,
        train_accuracy: accuracy_pm1(&train_scores, &train.labels),
        test_accuracy: accuracy_pm1(&test_scores, &test.labels),
        train_auc: roc_auc(&train_scores, &train.labels),
        test_auc: roc_auc(&test_scores, &test.labels),
        final_loss,
        seconds,
        losses,
        afus_after: model.activations.named(),
        hidden_inputs,
        afus_before,
        figures,
    })
}

fn parameter_count(config: &XorConfig, spec: &ActivationSpec) -> usize {
    let h = config.hidden_neurons;
    let linear = 2 * h + h + h + 1;
    linear
        + match spec {
            ActivationSpec::Fixed(_) => 0,
            ActivationSpec::Afu { hidden, .. } => 3 * hidden + 1,
            ActivationSpec::Family { family, sharing } => {
                // One activation slot (the hidden layer): one set of parameters, or one per
                // hidden neuron under per-channel sharing.
                let sets = if *sharing == crate::activation::Sharing::Channel {
                    h
                } else {
                    1
                };
                sets * family.n_params()
            }
        }
}

/// Runs the experiment and writes everything into `out`.
pub fn run(config: &XorConfig, out: &Path, progress: bool) -> Result<XorSummary, ExperimentError> {
    let specs = config.validate()?;
    let total_start = Instant::now();
    common::write_toml(
        &out.join("config.toml"),
        &crate::experiments::RunConfig::Xor(config.clone()),
    )?;
    let jobs: Vec<(usize, u64)> = (0..specs.len())
        .flat_map(|v| (0..config.seeds as u64).map(move |s| (v, s)))
        .collect();
    let bar = common::progress_bar((jobs.len() * config.steps) as u64, "xor", progress);
    let runs: Vec<XorRun> = jobs
        .par_iter()
        .map(|&(v, s)| {
            run_one(
                config,
                &config.variants[v],
                &specs[v],
                config.first_seed + s,
                s == 0,
                &bar,
            )
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();

    let variants: Vec<XorVariantSummary> = specs
        .iter()
        .zip(&config.variants)
        .map(|(spec, name)| {
            let rs: Vec<&XorRun> = runs.iter().filter(|r| &r.variant == name).collect();
            let col = |f: fn(&XorRun) -> f64| rs.iter().map(|r| f(r)).collect::<Vec<f64>>();
            let (ta, tas) = mean_std(&col(|r| r.test_accuracy));
            let (tu, tus) = mean_std(&col(|r| r.test_auc));
            XorVariantSummary {
                name: name.clone(),
                runs: rs.len(),
                parameters: parameter_count(config, spec),
                test_accuracy_mean: ta,
                test_accuracy_std: tas,
                test_auc_mean: tu,
                test_auc_std: tus,
                train_accuracy_mean: mean_std(&col(|r| r.train_accuracy)).0,
                train_auc_mean: mean_std(&col(|r| r.train_auc)).0,
                final_loss_mean: mean_std(&col(|r| r.final_loss)).0,
                seconds_mean: mean_std(&col(|r| r.seconds)).0,
            }
        })
        .collect();
    let phi = common::normal_cdf(config.centre as f64 / config.std as f64);
    let summary = XorSummary {
        experiment: "xor".into(),
        bayes_accuracy: phi * phi + (1.0 - phi) * (1.0 - phi),
        variants,
        runs,
        total_seconds: 0.0,
    };
    write_outputs(config, &summary, out)?;
    let summary = XorSummary {
        total_seconds: total_start.elapsed().as_secs_f64(),
        ..summary
    };
    common::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

fn write_outputs(config: &XorConfig, s: &XorSummary, out: &Path) -> Result<(), ExperimentError> {
    let fig = out.join("figures");
    // Learned AFUs of every run: loadable by `afu smoothness --afu-from` and other transfers.
    let afus: Vec<NamedAfu> = s
        .runs
        .iter()
        .flat_map(|r| {
            r.afus_after.iter().map(move |(slot, p)| NamedAfu {
                name: format!("{}/seed{}/{slot}", r.variant, r.seed),
                params: p.clone(),
            })
        })
        .collect();
    AfuFile::new("xor", afus).save(&out.join("afu.json"))?;
    // What each learned AFU saw: its inputs on the training data (for `afu inspect`).
    let histograms: std::collections::BTreeMap<String, InputDistribution> = s
        .runs
        .iter()
        .filter(|r| !r.afus_after.is_empty())
        .filter_map(|r| {
            InputDistribution::from_values(&r.hidden_inputs, 60)
                .map(|d| (format!("{}/seed{}/shared", r.variant, r.seed), d))
        })
        .collect();
    common::write_json(&out.join("histograms.json"), &histograms)?;

    // Per-step losses.
    let mut csv = String::from("variant,seed,step,loss\n");
    for r in &s.runs {
        for (i, l) in r.losses.iter().enumerate() {
            csv.push_str(&format!("{},{},{},{l}\n", r.variant, r.seed, i + 1));
        }
    }
    common::write_text(&out.join("metrics.csv"), &csv)?;

    // Loss curves (first seed of each variant).
    let first: Vec<&XorRun> = config
        .variants
        .iter()
        .filter_map(|v| {
            s.runs
                .iter()
                .find(|r| &r.variant == v && r.seed == config.first_seed)
        })
        .collect();
    let series: Vec<Series> = first
        .iter()
        .map(|r| Series {
            label: r.variant.clone(),
            points: r
                .losses
                .iter()
                .enumerate()
                .map(|(i, &l)| ((i + 1) as f64, l))
                .collect(),
            dashed: !r.variant.starts_with("afu"),
        })
        .collect();
    plot::line_plot(
        &fig.join("loss.svg"),
        "XOR: training hinge loss (first seed)",
        "step",
        "hinge loss",
        &series,
        false,
    )?;

    // Paper Fig. 2 / 3 / 4 per variant (first seed).
    let test = xor_blobs(
        config.points_per_blob,
        config.centre,
        config.std,
        config.first_seed,
    );
    let scatter = |label: f32, name: &str| ScatterClass {
        label: name.into(),
        points: test
            .points
            .iter()
            .zip(&test.labels)
            .filter(|(_, l)| **l == label)
            .map(|(p, _)| (p[0] as f64, p[1] as f64))
            .collect(),
    };
    let classes = [scatter(1.0, "class +1"), scatter(-1.0, "class -1")];
    let mut afu_panels = Vec::new();
    for r in &first {
        if let Some((score, neurons)) = &r.figures {
            plot::heatmap(
                &fig.join(format!("{}-boundary.svg", r.variant)),
                &format!("{}: decision score (contours -1, 0, +1)", r.variant),
                score,
                &[-1.0, 0.0, 1.0],
                &classes,
            )?;
            let panels: Vec<HeatPanel> = neurons
                .iter()
                .enumerate()
                .map(|(k, g)| HeatPanel {
                    title: format!("neuron {}", k + 1),
                    grid: g.clone(),
                    contours: vec![],
                })
                .collect();
            plot::heatmap_panels(
                &fig.join(format!("{}-neurons.svg", r.variant)),
                &format!("{}: hidden-neuron activations", r.variant),
                &panels,
                2.min(panels.len()).max(1),
            )?;
        }
        if let (Some((_, before)), Some((_, after))) = (r.afus_before.first(), r.afus_after.first())
        {
            let series = vec![
                Series {
                    label: "before training".into(),
                    points: common::afu_curve(before, 0, -5.0, 5.0, 201),
                    dashed: true,
                },
                Series {
                    label: "after training".into(),
                    points: common::afu_curve(after, 0, -5.0, 5.0, 201),
                    dashed: false,
                },
            ];
            plot::line_plot(
                &fig.join(format!("{}-afu.svg", r.variant)),
                &format!("{}: the AFU before and after training", r.variant),
                "z",
                "G(z)",
                &series,
                false,
            )?;
            afu_panels.push(LinePanel {
                title: r.variant.clone(),
                series,
            });
        }
    }
    if !afu_panels.is_empty() {
        let cols = afu_panels.len().min(4);
        plot::line_panels(
            &fig.join("afus.svg"),
            "XOR: learned AFUs (first seed)",
            "z",
            "G(z)",
            &afu_panels,
            cols,
        )?;
    }

    // summary.md
    let mut md = String::new();
    md.push_str("# afu xor — toy XOR problem (paper §2.2.1)\n\n");
    md.push_str(&format!(
        "{} points per blob, centres (±{}, ±{}), std {}; net 2→{}→1; hinge loss; Adam lr {}; {} full-batch steps; {} seed(s) from {}.\n\n",
        config.points_per_blob, config.centre, config.centre, config.std, config.hidden_neurons, config.lr, config.steps, config.seeds, config.first_seed
    ));
    md.push_str(&format!(
        "Bayes accuracy of these blobs (rule sign(x·y)): **{:.4}**. Reference notebook (AFU sigmoid N=128): train AUC 0.954; PyTorch reference test accuracy ≈ 0.869.\n\n",
        s.bayes_accuracy
    ));
    md.push_str("| variant | params | test accuracy | test AUC | train accuracy | train AUC | final loss | s/run |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for v in &s.variants {
        md.push_str(&format!(
            "| {} | {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.4} | {:.2} |\n",
            v.name,
            v.parameters,
            v.test_accuracy_mean,
            v.test_accuracy_std,
            v.test_auc_mean,
            v.test_auc_std,
            v.train_accuracy_mean,
            v.train_auc_mean,
            v.final_loss_mean,
            v.seconds_mean
        ));
    }
    md.push_str("\nMean ± std over seeds. Figures: `figures/<variant>-boundary.svg` (Fig. 2a), `figures/<variant>-afu.svg` (Fig. 2b/c, 4), `figures/<variant>-neurons.svg` (Fig. 3), `figures/afus.svg`, `figures/loss.svg`.\n");
    common::write_text(&out.join("summary.md"), &md)?;
    Ok(())
}

/// Path of the default output folder.
pub fn default_out() -> PathBuf {
    common::default_out_dir("xor")
}
