//! Smoothness analysis (paper §2.2.2, SPEC §2.3): random nets 2→10→10→10→10→1 with identical
//! weights under a learned AFU (frozen) and under fixed activations; the landscape of each over
//! the plane, and — beyond the paper's pictures — numbers for how smooth each landscape is.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::{ActivationSpec, Activations, Slot};
use crate::afu::file::AfuFile;
use crate::afu::{Afu, AfuParams, BaseActivation, KernelChoice};
use crate::experiments::common::{self, ExperimentError};
use crate::experiments::xor::{self, XorConfig};
use crate::models::mlp::Mlp;
use crate::report::plot::{self, Grid, HeatPanel, Series};
use crate::train::metrics::mean_std;

/// Settings of `afu smoothness`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmoothnessConfig {
    /// An `afu.json` (or a run folder holding one) with the AFU to analyse; when absent, one is
    /// learned by a one-seed `afu xor` run of `train_variant` inside this run's folder.
    pub afu_from: Option<PathBuf>,
    /// Which AFU of that file (a name or prefix such as `afu-relu-128/seed0`); the first if absent.
    pub afu_name: Option<String>,
    /// Variant trained when `afu_from` is absent.
    pub train_variant: String,
    /// Steps of that training.
    pub train_steps: usize,
    /// Fixed activations compared with the AFU (same weights).
    pub compare: Vec<String>,
    /// Number of random nets.
    pub nets: usize,
    /// Seed of the first net.
    pub first_seed: u64,
    /// Hidden layer widths.
    pub widths: Vec<usize>,
    /// The plane `[-extent, extent]²`.
    pub extent: f64,
    /// Grid points per side.
    pub grid: usize,
}

impl Default for SmoothnessConfig {
    fn default() -> Self {
        SmoothnessConfig {
            afu_from: None,
            afu_name: None,
            train_variant: "afu-relu-128".into(),
            train_steps: 1000,
            compare: ["relu", "leaky-relu", "tanh", "sigmoid", "swish", "mish"]
                .map(String::from)
                .to_vec(),
            nets: 5,
            first_seed: 0,
            widths: vec![10, 10, 10, 10],
            extent: 4.0,
            grid: 101,
        }
    }
}

impl SmoothnessConfig {
    /// Tiny settings for tests.
    pub fn quick() -> Self {
        SmoothnessConfig {
            train_variant: "afu-relu-8".into(),
            train_steps: 100,
            compare: vec!["relu".into(), "tanh".into()],
            nets: 2,
            grid: 31,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<Vec<BaseActivation>, ExperimentError> {
        let bad = |field, message: String| ExperimentError::Config { field, message };
        common::between_one_and("nets", self.nets, common::MAX_SEEDS)?;
        common::between_one_and("train_steps", self.train_steps, common::MAX_STEPS)?;
        common::between_one_and("grid", self.grid, common::MAX_GRID)?;
        common::between_one_and("widths", self.widths.len(), 64)?;
        if let Some(&w) = self.widths.iter().find(|&&w| w > common::MAX_WIDTH) {
            return Err(bad(
                "widths",
                format!(
                    "a layer of width {w} is above the limit of {}",
                    common::MAX_WIDTH
                ),
            ));
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(bad(
                "widths",
                "need at least one hidden layer, each of width ≥ 1".into(),
            ));
        }
        if !(self.extent.is_finite() && self.extent > 0.0) {
            return Err(bad("extent", "must be a positive number".into()));
        }
        if self.grid < 3 {
            return Err(bad("grid", "must be at least 3".into()));
        }
        if !matches!(
            self.train_variant.parse::<ActivationSpec>(),
            Ok(ActivationSpec::Afu { .. })
        ) {
            return Err(bad(
                "train_variant",
                format!(
                    "'{}' is not an AFU variant such as afu-relu-128",
                    self.train_variant
                ),
            ));
        }
        self.compare
            .iter()
            .map(|c| {
                c.parse::<BaseActivation>()
                    .map_err(|e| bad("compare", e.to_string()))
            })
            .collect()
    }
}

/// Smoothness numbers of one landscape (dimensionless: normalised by the output range and the
/// extent of the plane, so nets of different output scale compare).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Roughness {
    /// Mean gradient magnitude × extent / range (1 for a plane rising across the square once).
    pub mean_gradient: f64,
    /// Total variation along grid lines / (side × range) (1 for a monotone ramp along one axis).
    pub total_variation: f64,
    /// Mean |second difference| (x and y) × extent² / range: 0 for any plane, large at kinks and
    /// ripples.
    pub curvature: f64,
    /// Output range max − min (not normalised).
    pub range: f64,
}

/// Measures a landscape on a regular grid.
pub fn roughness(g: &Grid) -> Roughness {
    let (nx, ny) = (g.xs.len(), g.ys.len());
    let v = |i: usize, j: usize| g.values[j * nx + i];
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in &g.values {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    let range = hi - lo;
    if range.is_nan() || range <= 1e-12 || nx < 3 || ny < 3 {
        return Roughness {
            range: range.max(0.0),
            ..Roughness::default()
        };
    }
    let h = g.xs[1] - g.xs[0];
    let extent = g.xs[nx - 1] - g.xs[0];
    let (mut grad, mut n_grad, mut tv, mut curv, mut n_curv) = (0.0, 0usize, 0.0, 0.0, 0usize);
    for j in 0..ny {
        for i in 0..nx {
            let dx = if i + 1 < nx {
                v(i + 1, j) - v(i, j)
            } else {
                0.0
            };
            let dy = if j + 1 < ny {
                v(i, j + 1) - v(i, j)
            } else {
                0.0
            };
            tv += dx.abs() + dy.abs();
            if i + 1 < nx && j + 1 < ny {
                grad += (dx * dx + dy * dy).sqrt() / h;
                n_grad += 1;
            }
            if i > 0 && i + 1 < nx && j > 0 && j + 1 < ny {
                let dxx = v(i + 1, j) - 2.0 * v(i, j) + v(i - 1, j);
                let dyy = v(i, j + 1) - 2.0 * v(i, j) + v(i, j - 1);
                curv += (dxx.abs() + dyy.abs()) / (h * h);
                n_curv += 1;
            }
        }
    }
    Roughness {
        mean_gradient: grad / n_grad as f64 * extent / range,
        total_variation: tv / (nx as f64 * range),
        curvature: curv / n_curv as f64 * extent * extent / range,
        range,
    }
}

/// Mean ± std of each measure for one activation over the nets.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationSmoothness {
    /// Activation name (`afu` for the learned one).
    pub name: String,
    /// Mean of `mean_gradient`.
    pub mean_gradient_mean: f64,
    /// Std of `mean_gradient`.
    pub mean_gradient_std: f64,
    /// Mean of `total_variation`.
    pub total_variation_mean: f64,
    /// Std of `total_variation`.
    pub total_variation_std: f64,
    /// Mean of `curvature`.
    pub curvature_mean: f64,
    /// Std of `curvature`.
    pub curvature_std: f64,
    /// Per net.
    pub per_net: Vec<Roughness>,
}

/// `summary.json` of `afu smoothness`.
#[derive(Debug, Clone, Serialize)]
pub struct SmoothnessSummary {
    /// `"smoothness"`.
    pub experiment: String,
    /// Where the AFU came from.
    pub afu_source: String,
    /// The AFU used.
    pub afu: AfuParams,
    /// One row per activation.
    pub activations: Vec<ActivationSmoothness>,
    /// Seconds.
    pub total_seconds: f64,
}

fn load_afu(
    config: &SmoothnessConfig,
    out: &Path,
    progress: bool,
) -> Result<(AfuParams, String), ExperimentError> {
    match &config.afu_from {
        Some(path) => {
            let file = AfuFile::load(path)?;
            let found = file.select(config.afu_name.as_deref(), path)?;
            let chosen = found.iter().find(|a| a.params.channels == 1).ok_or_else(|| ExperimentError::Config {
                field: "afu_name",
                message: format!("{}: the selected AFUs are per-channel; a shared AFU (channels = 1) is needed", path.display()),
            })?;
            Ok((
                chosen.params.clone(),
                format!("{} :: {}", path.display(), chosen.name),
            ))
        }
        None => {
            let xc = XorConfig {
                variants: vec![config.train_variant.clone()],
                seeds: 1,
                first_seed: config.first_seed,
                steps: config.train_steps,
                ..XorConfig::default()
            };
            let dir = out.join("source-xor");
            let s = xor::run(&xc, &dir, progress)?;
            let run = s
                .runs
                .first()
                .and_then(|r| r.afus_after.first().cloned())
                .ok_or_else(|| ExperimentError::Config {
                    field: "train_variant",
                    message: "training produced no AFU".into(),
                })?;
            Ok((
                run.1,
                format!(
                    "trained here: {} ({} steps), see source-xor/",
                    config.train_variant, config.train_steps
                ),
            ))
        }
    }
}

/// Runs the analysis and writes its folder.
pub fn run(
    config: &SmoothnessConfig,
    out: &Path,
    progress: bool,
) -> Result<SmoothnessSummary, ExperimentError> {
    let fixed = config.validate()?;
    let start = Instant::now();
    common::write_toml(
        &out.join("config.toml"),
        &crate::experiments::RunConfig::Smoothness(config.clone()),
    )?;
    let (afu, afu_source) = load_afu(config, out, progress)?;
    let device = Device::flex();
    let mut sizes = vec![2];
    sizes.extend(&config.widths);
    sizes.push(1);
    let slots = config.widths.len();
    let names: Vec<String> = std::iter::once("afu".to_string())
        .chain(fixed.iter().map(|b| b.to_string()))
        .collect();
    let mut per: Vec<Vec<Roughness>> = vec![Vec::new(); names.len()];
    let fig = out.join("figures");
    let bar = common::progress_bar(config.nets as u64, "smoothness", progress);
    for k in 0..config.nets as u64 {
        if crate::interrupt::requested() {
            return Err(ExperimentError::Stopped {
                what: format!("smoothness, net {} of {}", k + 1, config.nets),
            });
        }
        let seed = config.first_seed + k;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let base_net = Mlp::new(
            &sizes,
            &ActivationSpec::Fixed(BaseActivation::Relu),
            false,
            &mut rng,
            &device,
        )?;
        let (xs, pts) = common::plane_grid(-config.extent, config.extent, config.grid, &device);
        let mut panels = Vec::new();
        for (a, name) in names.iter().enumerate() {
            let mut net = base_net.clone();
            net.activations = if a == 0 {
                Activations {
                    afus: vec![
                        Afu::from_params(&afu, &device, burn::tensor::DType::F32)?
                            .with_kernel(KernelChoice::Auto),
                    ],
                    slots: vec![Slot::Learned(0); slots],
                    names: vec!["shared".into()],
                    mix: Vec::new(),
                    families: Vec::new(),
                    family_names: Vec::new(),
                }
            } else {
                Activations::new(
                    &ActivationSpec::Fixed(fixed[a - 1]),
                    &config.widths,
                    &mut rng,
                    &device,
                )?
            };
            let grid = common::grid_of(&xs, &net.forward(pts.clone()), 0);
            let r = roughness(&grid);
            panels.push(HeatPanel {
                title: format!(
                    "{name}: TV {:.2}, curvature {:.1}",
                    r.total_variation, r.curvature
                ),
                grid,
                contours: vec![],
            });
            per[a].push(r);
        }
        plot::heatmap_panels(
            &fig.join(format!("net{seed}.svg")),
            &format!(
                "random net 2→{}→1 (seed {seed}), same weights, different activations",
                config
                    .widths
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join("→")
            ),
            &panels,
            panels.len().min(4),
        )?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    plot::line_plot(
        &fig.join("afu.svg"),
        "the AFU used (frozen) and relu",
        "z",
        "g(z)",
        &[
            Series {
                label: "AFU".into(),
                points: common::afu_curve(&afu, 0, -5.0, 5.0, 201),
                dashed: false,
            },
            Series {
                label: "relu".into(),
                points: (0..=200)
                    .map(|i| {
                        let z = -5.0 + i as f64 * 0.05;
                        (z, z.max(0.0))
                    })
                    .collect(),
                dashed: true,
            },
        ],
        false,
    )?;
    let activations: Vec<ActivationSmoothness> = names
        .iter()
        .zip(per)
        .map(|(name, rs)| {
            let col = |f: fn(&Roughness) -> f64| mean_std(&rs.iter().map(f).collect::<Vec<_>>());
            let (g, gs) = col(|r| r.mean_gradient);
            let (t, ts) = col(|r| r.total_variation);
            let (c, cs) = col(|r| r.curvature);
            ActivationSmoothness {
                name: name.clone(),
                mean_gradient_mean: g,
                mean_gradient_std: gs,
                total_variation_mean: t,
                total_variation_std: ts,
                curvature_mean: c,
                curvature_std: cs,
                per_net: rs,
            }
        })
        .collect();
    let mut md = format!(
        "# afu smoothness — landscapes of random nets (paper §2.2.2, Fig. 5)\n\nAFU: {afu_source} (base {}, N = {}).\n{} random nets 2→{}→1 (PyTorch-default init, seeds {}..), each evaluated with the same weights under every activation on a {}×{} grid over [−{e}, {e}]².\n\nLower is smoother. Measures are normalised by each landscape's output range, so they compare shapes, not scales.\n\n| activation | mean gradient | total variation | curvature |\n|---|---:|---:|---:|\n",
        afu.base,
        afu.hidden,
        config.nets,
        config
            .widths
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("→"),
        config.first_seed,
        config.grid,
        config.grid,
        e = config.extent
    );
    for a in &activations {
        md.push_str(&format!(
            "| {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.2} ± {:.2} |\n",
            a.name,
            a.mean_gradient_mean,
            a.mean_gradient_std,
            a.total_variation_mean,
            a.total_variation_std,
            a.curvature_mean,
            a.curvature_std
        ));
    }
    if let (Some(afu_row), Some(relu_row)) = (
        activations.first(),
        activations.iter().find(|a| a.name == "relu"),
    ) {
        let verdict = |a: f64, b: f64| if a < b { "smoother" } else { "not smoother" };
        md.push_str(&format!(
            "\nThe paper's claim (the AFU landscape is smoother than relu's), measured: by total variation the AFU is **{}** ({:.3} vs {:.3}); by curvature **{}** ({:.2} vs {:.2}).\n",
            verdict(afu_row.total_variation_mean, relu_row.total_variation_mean), afu_row.total_variation_mean, relu_row.total_variation_mean,
            verdict(afu_row.curvature_mean, relu_row.curvature_mean), afu_row.curvature_mean, relu_row.curvature_mean
        ));
    }
    md.push_str(
        "\nFigures: `figures/net<seed>.svg` (landscapes side by side), `figures/afu.svg`.\n",
    );
    common::write_text(&out.join("summary.md"), &md)?;
    let summary = SmoothnessSummary {
        experiment: "smoothness".into(),
        afu_source,
        afu,
        activations,
        total_seconds: start.elapsed().as_secs_f64(),
    };
    common::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Default output folder.
pub fn default_out() -> PathBuf {
    common::default_out_dir("smoothness")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(f: impl Fn(f64, f64) -> f64, side: usize) -> Grid {
        let xs: Vec<f64> = (0..side)
            .map(|i| -1.0 + 2.0 * i as f64 / (side - 1) as f64)
            .collect();
        let mut values = Vec::new();
        for &y in &xs {
            for &x in &xs {
                values.push(f(x, y));
            }
        }
        Grid {
            xs: xs.clone(),
            ys: xs,
            values,
        }
    }

    #[test]
    fn roughness_of_known_surfaces() {
        let plane = roughness(&grid(|x, _| x, 41));
        assert!((plane.mean_gradient - 1.0).abs() < 1e-9, "{plane:?}");
        assert!((plane.total_variation - 1.0).abs() < 1e-9, "{plane:?}");
        assert!(plane.curvature.abs() < 1e-9, "{plane:?}");
        let kink = roughness(&grid(|x, _| x.abs(), 41));
        let wave = roughness(&grid(|x, y| (6.0 * x).sin() * (6.0 * y).cos(), 41));
        assert!(kink.curvature > 1.0 && wave.total_variation > kink.total_variation);
        let flat = roughness(&grid(|_, _| 3.0, 11));
        assert_eq!(flat.total_variation, 0.0);
    }
}
