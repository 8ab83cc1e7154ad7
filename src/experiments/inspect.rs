//! `afu inspect`: for every learned AFU of a run (or an `afu.json`), the closest known activation
//! with its fit error and the shape measures, over the inputs the AFU actually saw when the run
//! recorded them (`histograms.json`), else over a stated uniform range.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::afu::analysis::{self, FunctionFit, InputDistribution, Shape};
use crate::afu::file::AfuFile;
use crate::experiments::common::{self, ExperimentError};
use crate::report::plot::{self, Series};

/// One inspected AFU (one channel of it).
#[derive(Debug, Clone, Serialize)]
pub struct InspectRow {
    /// AFU name (with `[channel]` for per-channel AFUs).
    pub name: String,
    /// Where the input distribution came from.
    pub inputs: String,
    /// The closest known function.
    pub nearest: String,
    /// Its relative fit error.
    pub nearest_error: f64,
    /// Every function that fits as well (within 1 %): e.g. sigmoid and tanh are the same curve
    /// up to `a·f(b·z + c) + d`, so they always tie.
    pub equally_near: Vec<String>,
    /// All fits, best first.
    pub fits: Vec<FunctionFit>,
    /// Shape measures.
    pub shape: Shape,
}

/// Inspects the AFUs in `source` (a run folder or an AFU file) whose names start with `prefix`.
/// Writes `inspect.json` and `figures/inspect/*.svg` into `out`.
pub fn run(
    source: &Path,
    prefix: Option<&str>,
    range: (f64, f64),
    out: &Path,
) -> Result<Vec<InspectRow>, ExperimentError> {
    let rows = inspect_all(source, prefix, range, Some(out))?;
    common::write_json(&out.join("inspect.json"), &rows)?;
    Ok(rows)
}

/// The inspection rows of every selected AFU; figures go to `figures/inspect/` under `out` when
/// given.
///
/// Learnable-family slots (`families.json`) follow the AFUs; a run with families but no AFUs
/// (or none matching `prefix`) gives their rows alone.
pub fn inspect_all(
    source: &Path,
    prefix: Option<&str>,
    range: (f64, f64),
    out: Option<&Path>,
) -> Result<Vec<InspectRow>, ExperimentError> {
    let families = crate::experiments::family_inspect::inspect_all(source, prefix, range, out)?;
    match inspect_afus(source, prefix, range, out) {
        Ok(mut rows) => {
            rows.extend(families);
            Ok(rows)
        }
        Err(ExperimentError::AfuFile(_)) if !families.is_empty() => Ok(families),
        Err(e) => Err(e),
    }
}

fn inspect_afus(
    source: &Path,
    prefix: Option<&str>,
    range: (f64, f64),
    out: Option<&Path>,
) -> Result<Vec<InspectRow>, ExperimentError> {
    let file = AfuFile::load(source)?;
    let afus = file.select(prefix, source)?;
    let dir = if source.is_dir() {
        source.to_path_buf()
    } else {
        source.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let histograms: BTreeMap<String, InputDistribution> =
        std::fs::read_to_string(dir.join("histograms.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
    let mut rows = Vec::new();
    for a in afus {
        for c in 0..a.params.channels {
            let (dist, inputs) = match histograms.get(&a.name) {
                Some(d) if a.params.channels == 1 => (d.clone(), "recorded inputs".to_string()),
                _ => (
                    InputDistribution::uniform(range.0, range.1, 201),
                    format!("uniform over [{}, {}]", range.0, range.1),
                ),
            };
            let ins = analysis::inspect(&a.params, c, &dist);
            let name = if a.params.channels == 1 {
                a.name.clone()
            } else {
                format!("{}[{c}]", a.name)
            };
            if let (true, Some(out)) = (c < 8, out) {
                let g: Vec<f64> = dist.z.iter().map(|&z| a.params.eval(c, z)).collect();
                write_figure(out, &name, "AFU", "G(z)", &g, &ins, &dist, &inputs)?;
            }
            rows.push(row(name, inputs, ins));
        }
    }
    Ok(rows)
}

/// One row of `inspect.json` from an inspection.
pub(crate) fn row(name: String, inputs: String, ins: analysis::Inspection) -> InspectRow {
    let best = ins.nearest().relative_error;
    let equally_near = ins
        .fits
        .iter()
        .filter(|f| f.relative_error <= best * 1.01 + 1e-9)
        .map(|f| f.function.to_string())
        .collect();
    InspectRow {
        name,
        inputs,
        nearest: ins.nearest().function.to_string(),
        nearest_error: best,
        equally_near,
        fits: ins.fits,
        shape: ins.shape,
    }
}

/// `figures/inspect/<name>.svg` under `out`: the function's values `g` at `dist.z` (labelled
/// `label`), its best fit, and the inputs' distribution scaled to the function's range.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_figure(
    out: &Path,
    name: &str,
    label: &str,
    y_label: &str,
    g: &[f64],
    ins: &analysis::Inspection,
    dist: &InputDistribution,
    inputs: &str,
) -> Result<(), ExperimentError> {
    let best = ins.nearest();
    let (gmin, gmax) = g
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let wmax = dist.weight.iter().fold(0.0f64, |m, &w| m.max(w)).max(1e-12);
    let series = vec![
        Series {
            label: label.to_string(),
            points: dist.z.iter().copied().zip(g.iter().copied()).collect(),
            dashed: false,
        },
        Series {
            label: format!(
                "best fit: {} (error {:.3})",
                best.function, best.relative_error
            ),
            points: dist
                .z
                .iter()
                .map(|&z| {
                    (
                        z,
                        best.a * best.function.value(best.b * z + best.c) + best.d,
                    )
                })
                .collect(),
            dashed: true,
        },
        Series {
            label: format!("inputs ({inputs}, scaled)"),
            points: dist
                .z
                .iter()
                .zip(&dist.weight)
                .map(|(&z, &w)| (z, gmin + (gmax - gmin) * w / wmax))
                .collect(),
            dashed: true,
        },
    ];
    let file_name: String = name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    plot::line_plot(
        &out.join("figures")
            .join("inspect")
            .join(format!("{file_name}.svg")),
        &format!("{name}: {} (nearest {})", ins.shape.kind, best.function),
        "z",
        y_label,
        &series,
        false,
    )?;
    Ok(())
}

/// Where `afu inspect` writes by default: the run folder (or the AFU file's folder).
pub fn default_out(source: &Path) -> PathBuf {
    if source.is_dir() {
        source.to_path_buf()
    } else {
        source.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}
