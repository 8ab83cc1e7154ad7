//! One neuron solves XOR (SPEC §2.2): a single linear neuron 2→1 followed by an activation, on
//! the four XOR points. A learned, non-monotone AFU separates them; a monotone fixed one cannot.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::ActivationSpec;
use crate::afu::KernelChoice;
use crate::afu::file::{AfuFile, NamedAfu};
use crate::data::xor::xor_corners;
use crate::experiments::common::{self, ExperimentError};
use crate::models::mlp::Mlp;
use crate::report::plot::{self, LinePanel, ScatterClass, Series};
use crate::train::metrics::{accuracy_pm1, roc_auc};
use crate::train::{adam_torch_defaults, hinge_loss};

/// Settings of `afu xor-neuron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XorNeuronConfig {
    /// Activations after the neuron (the reference: `afu-sigmoid-128`).
    pub variants: Vec<String>,
    /// Seeds per variant.
    pub seeds: usize,
    /// First seed.
    pub first_seed: u64,
    /// Adam steps.
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// AFU implementation.
    pub kernel: KernelChoice,
}

impl Default for XorNeuronConfig {
    fn default() -> Self {
        XorNeuronConfig {
            variants: ["afu-sigmoid-128", "afu-relu-8", "relu", "tanh"]
                .map(String::from)
                .to_vec(),
            seeds: 5,
            first_seed: 0,
            steps: 1000,
            lr: 1e-3,
            kernel: KernelChoice::Auto,
        }
    }
}

impl XorNeuronConfig {
    /// Small settings for tests (still the full 1000 steps: four points are cheap).
    pub fn quick() -> Self {
        XorNeuronConfig {
            variants: ["afu-sigmoid-128", "relu"].map(String::from).to_vec(),
            seeds: 2,
            ..Self::default()
        }
    }

    /// Parses and checks every field.
    pub fn validate(&self) -> Result<Vec<ActivationSpec>, ExperimentError> {
        common::between_one_and("seeds", self.seeds, common::MAX_SEEDS)?;
        common::between_one_and("steps", self.steps, common::MAX_STEPS)?;
        common::positive("lr", self.lr)?;
        common::parse_variants(&self.variants)
    }
}

/// One run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct XorNeuronRun {
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// AUC on the four points.
    pub auc: f64,
    /// Accuracy on the four points.
    pub accuracy: f64,
    /// Final hinge loss.
    pub final_loss: f64,
    /// Scores of the four points `(1,1), (−1,−1), (1,−1), (−1,1)`.
    pub scores: Vec<f32>,
}

/// Per-variant summary.
#[derive(Debug, Clone, Serialize)]
pub struct XorNeuronVariant {
    /// Variant.
    pub name: String,
    /// Seeds run.
    pub runs: usize,
    /// Seeds that reached AUC 1.0.
    pub solved: usize,
    /// Mean AUC.
    pub auc_mean: f64,
    /// Mean accuracy.
    pub accuracy_mean: f64,
}

/// `summary.json` of `afu xor-neuron`.
#[derive(Debug, Clone, Serialize)]
pub struct XorNeuronSummary {
    /// `"xor-neuron"`.
    pub experiment: String,
    /// Per variant.
    pub variants: Vec<XorNeuronVariant>,
    /// Every run.
    pub runs: Vec<XorNeuronRun>,
    /// Seconds.
    pub total_seconds: f64,
}

/// Runs the experiment and writes its folder.
pub fn run(
    config: &XorNeuronConfig,
    out: &Path,
    progress: bool,
) -> Result<XorNeuronSummary, ExperimentError> {
    let specs = config.validate()?;
    let start = Instant::now();
    common::write_toml(
        &out.join("config.toml"),
        &crate::experiments::RunConfig::XorNeuron(config.clone()),
    )?;
    let device = Device::flex().autodiff();
    let data = xor_corners();
    let x = Tensor::<2>::from_data(TensorData::new(data.flat_points(), [4, 2]), &device);
    let y = Tensor::<2>::from_data(TensorData::new(data.labels.clone(), [4, 1]), &device);
    let bar = common::progress_bar(
        (specs.len() * config.seeds * config.steps) as u64,
        "xor-neuron",
        progress,
    );
    let mut runs = Vec::new();
    let mut afus = Vec::new();
    let mut panels = Vec::new();
    let mut csv = String::from("variant,seed,step,loss\n");
    let fig = out.join("figures");
    for (name, spec) in config.variants.iter().zip(&specs) {
        for s in 0..config.seeds as u64 {
            let seed = config.first_seed + s;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut model = Mlp::new(&[2, 1], spec, true, &mut rng, &device)?;
            model.activations = model.activations.with_kernel(config.kernel);
            let before = model.activations.named();
            let mut optim = adam_torch_defaults().init();
            for step in 0..config.steps {
                if crate::interrupt::requested() {
                    return Err(ExperimentError::Stopped {
                        what: format!("{name}, seed {seed}, step {step} of {}", config.steps),
                    });
                }
                let loss = hinge_loss(model.forward(x.clone()), y.clone());
                let l = loss.clone().into_scalar::<f32>();
                if !l.is_finite() {
                    return Err(ExperimentError::NonFiniteStep {
                        what: format!(
                            "xor-neuron: {name}, seed {seed}, step {} of {}",
                            step + 1,
                            config.steps
                        ),
                        loss: l as f64,
                    });
                }
                csv.push_str(&format!("{name},{seed},{},{l}\n", step + 1));
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(config.lr, model, grads);
                bar.inc(1);
            }
            let model = model.valid();
            let scores = common::to_vec(model.forward(x.clone().inner()));
            let final_loss = hinge_loss(model.forward(x.clone().inner()), y.clone().inner())
                .into_scalar::<f32>() as f64;
            let after = model.activations.named();
            for (slot, p) in &after {
                afus.push(NamedAfu {
                    name: format!("{name}/seed{seed}/{slot}"),
                    params: p.clone(),
                });
            }
            if s == 0 {
                let (xs, pts) = common::plane_grid(-2.0, 2.0, 61, &device.clone().inner());
                let grid = common::grid_of(&xs, &model.forward(pts), 0);
                let class = |l: f32, label: &str| ScatterClass {
                    label: label.into(),
                    points: data
                        .points
                        .iter()
                        .zip(&data.labels)
                        .filter(|(_, y)| **y == l)
                        .map(|(p, _)| (p[0] as f64, p[1] as f64))
                        .collect(),
                };
                plot::heatmap(
                    &fig.join(format!("{name}-boundary.svg")),
                    &format!("one neuron + {name}: score (contours -1, 0, +1)"),
                    &grid,
                    &[-1.0, 0.0, 1.0],
                    &[class(1.0, "class +1"), class(-1.0, "class -1")],
                )?;
                if let (Some((_, b)), Some((_, a))) = (before.first(), after.first()) {
                    panels.push(LinePanel {
                        title: name.clone(),
                        series: vec![
                            Series {
                                label: "before".into(),
                                points: common::afu_curve(b, 0, -5.0, 5.0, 201),
                                dashed: true,
                            },
                            Series {
                                label: "after".into(),
                                points: common::afu_curve(a, 0, -5.0, 5.0, 201),
                                dashed: false,
                            },
                        ],
                    });
                }
            }
            runs.push(XorNeuronRun {
                variant: name.clone(),
                seed,
                auc: roc_auc(&scores, &data.labels),
                accuracy: accuracy_pm1(&scores, &data.labels),
                final_loss,
                scores,
            });
        }
    }
    bar.finish_and_clear();
    if !panels.is_empty() {
        let cols = panels.len().min(3);
        plot::line_panels(
            &fig.join("afus.svg"),
            "one-neuron XOR: the AFU before and after training",
            "z",
            "G(z)",
            &panels,
            cols,
        )?;
    }
    AfuFile::new("xor-neuron", afus).save(&out.join("afu.json"))?;
    common::write_text(&out.join("metrics.csv"), &csv)?;
    let variants: Vec<XorNeuronVariant> = config
        .variants
        .iter()
        .map(|name| {
            let rs: Vec<&XorNeuronRun> = runs.iter().filter(|r| &r.variant == name).collect();
            let n = rs.len().max(1) as f64;
            XorNeuronVariant {
                name: name.clone(),
                runs: rs.len(),
                solved: rs.iter().filter(|r| r.auc >= 1.0).count(),
                auc_mean: rs.iter().map(|r| r.auc).sum::<f64>() / n,
                accuracy_mean: rs.iter().map(|r| r.accuracy).sum::<f64>() / n,
            }
        })
        .collect();
    let mut md = String::from(
        "# afu xor-neuron — one neuron solves XOR\n\nA single linear neuron 2→1 followed by the activation, on the four points (±1, ±1); hinge loss, Adam.\nThe reference notebook reaches AUC 1.0 with an AFU (sigmoid, N=128).\n\n| variant | seeds solved (AUC = 1) | mean AUC | mean accuracy |\n|---|---:|---:|---:|\n",
    );
    for v in &variants {
        md.push_str(&format!(
            "| {} | {}/{} | {:.3} | {:.3} |\n",
            v.name, v.solved, v.runs, v.auc_mean, v.accuracy_mean
        ));
    }
    md.push_str("\nFigures: `figures/<variant>-boundary.svg`, `figures/afus.svg`.\n");
    common::write_text(&out.join("summary.md"), &md)?;
    let summary = XorNeuronSummary {
        experiment: "xor-neuron".into(),
        variants,
        runs,
        total_seconds: start.elapsed().as_secs_f64(),
    };
    common::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Default output folder.
pub fn default_out() -> PathBuf {
    common::default_out_dir("xor-neuron")
}
