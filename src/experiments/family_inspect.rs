//! The learned functions of a run's learnable-family slots (`families.json`): evaluated from
//! their parameters with the families' own math, inspected like AFUs (`afu inspect`: nearest
//! known function, shape, a figure), and baked exactly into relu AFUs where the family is
//! piecewise linear (`afu bake`: PReLU, PWLU, APL).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::afu::analysis::{self, InputDistribution};
use crate::afu::{AfuParams, BaseActivation};
use crate::experiments::common::ExperimentError;
use crate::experiments::inspect::{self, InspectRow};
use crate::family::{Family, FamilyParams, ScalarFamily};
use crate::report::plot::{self, Series};

/// One slot of `families.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct FamilyEntry {
    /// `<variant>/seed<S>/<slot>`.
    pub name: String,
    /// Family, channels, parameter names and one row of values per channel.
    #[serde(flatten)]
    pub params: FamilyParams,
}

/// At most this many channels of one slot get a figure.
const MAX_FIGURES_PER_SLOT: usize = 8;

fn bad(path: &Path, message: String) -> ExperimentError {
    ExperimentError::Config {
        field: "families.json",
        message: format!("{}: {message}", path.display()),
    }
}

/// The family a `families.json` entry names, checked against its parameter rows.
fn family_of(path: &Path, e: &FamilyEntry) -> Result<Family, ExperimentError> {
    let family: Family = match e.params.family.parse::<afu::activation::ActivationSpec>() {
        Ok(afu::activation::ActivationSpec::Family { family, .. }) => family,
        _ => {
            return Err(bad(
                path,
                format!(
                    "slot '{}': family '{}' is not a learnable family (expected e.g. prelu, pau, pwlu-16)",
                    e.name, e.params.family
                ),
            ));
        }
    };
    let np = afu::with_family!(family, f => f.n_params());
    if e.params.values.len() != e.params.channels
        || e.params.values.iter().any(|row| row.len() != np)
    {
        return Err(bad(
            path,
            format!(
                "slot '{}': expected {} rows of {np} values for {family}",
                e.name, e.params.channels
            ),
        ));
    }
    if let Some(v) = e.params.values.iter().flatten().find(|v| !v.is_finite()) {
        return Err(bad(
            path,
            format!("slot '{}': non-finite parameter {v}", e.name),
        ));
    }
    Ok(family)
}

/// `g(z)` of one channel's parameters.
pub fn value(family: Family, row: &[f64], z: f64) -> f64 {
    afu::with_family!(family, f => f.value(z, row))
}

/// `g'(z)` of one channel's parameters.
pub fn derivative(family: Family, row: &[f64], z: f64) -> f64 {
    let mut dp = vec![0.0; row.len()];
    afu::with_family!(family, f => f.backward(z, row, 1.0, &mut dp))
}

/// The entries of `families.json` in `source` (a run folder or the file itself) whose names
/// start with `prefix`; an empty list when the run has no such file.
pub fn load(source: &Path, prefix: Option<&str>) -> Result<Vec<FamilyEntry>, ExperimentError> {
    let path = families_path(source);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let entries: Vec<FamilyEntry> = serde_json::from_str(&text)
        .map_err(|e| bad(&path, format!("not a families.json ({e})")))?;
    for e in &entries {
        family_of(&path, e)?;
    }
    Ok(entries
        .into_iter()
        .filter(|e| prefix.is_none_or(|p| e.name == p || e.name.starts_with(&format!("{p}/"))))
        .collect())
}

fn families_path(source: &Path) -> PathBuf {
    if source.is_dir() {
        source.join("families.json")
    } else {
        source
            .parent()
            .map(|d| d.join("families.json"))
            .unwrap_or_else(|| PathBuf::from("families.json"))
    }
}

/// Inspection rows of every selected family slot and channel, over the inputs the slot saw
/// when the run recorded them (`histograms.json`), else over the uniform `range`; figures go to
/// `figures/inspect/` under `out`.
pub fn inspect_all(
    source: &Path,
    prefix: Option<&str>,
    range: (f64, f64),
    out: Option<&Path>,
) -> Result<Vec<InspectRow>, ExperimentError> {
    let path = families_path(source);
    let uniform = InputDistribution::uniform(range.0, range.1, 201);
    let histograms: std::collections::BTreeMap<String, InputDistribution> = path
        .parent()
        .and_then(|dir| std::fs::read_to_string(dir.join("histograms.json")).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for e in load(source, prefix)? {
        let family = family_of(&path, &e)?;
        // What the slot saw in the last epoch, when the run recorded it (pooled over the
        // channels of a per-channel slot), else a uniform range.
        let (dist, inputs) = match histograms.get(&e.name) {
            Some(d) if e.params.channels == 1 => (d, "recorded inputs".to_string()),
            Some(d) => (d, "recorded inputs of all channels".to_string()),
            None => (&uniform, format!("uniform over [{}, {}]", range.0, range.1)),
        };
        for (c, row) in e.params.values.iter().enumerate() {
            let g: Vec<f64> = dist.z.iter().map(|&z| value(family, row, z)).collect();
            let slopes: Vec<f64> = dist.z.iter().map(|&z| derivative(family, row, z)).collect();
            let far = (
                derivative(family, row, -50.0),
                derivative(family, row, 50.0),
            );
            let ins = analysis::inspect_values(&g, &slopes, far, dist);
            let name = if e.params.channels == 1 {
                e.name.clone()
            } else {
                format!("{}[{c}]", e.name)
            };
            if let (true, Some(out)) = (c < MAX_FIGURES_PER_SLOT, out) {
                let label = family.to_string();
                inspect::write_figure(out, &name, &label, "g(z)", &g, &ins, dist, &inputs)?;
            }
            rows.push(inspect::row(name, inputs.clone(), ins));
        }
    }
    Ok(rows)
}

/// `(variant, seed)` and slot of a `<variant>/seed<S>/<slot>` name.
fn split_name(name: &str) -> Option<(&str, &str, &str)> {
    let (run, slot) = name.rsplit_once('/')?;
    let (variant, seed) = run.rsplit_once('/')?;
    Some((variant, seed, slot))
}

/// The figures of a run's family slots, into `fig`:
/// - `families.svg`: each variant's learned functions (first seed; every slot, channel 0 and
///   the mean over channels for per-channel slots) beside relu, one panel per variant;
/// - `family-params.svg`: the learned parameter of each single-parameter family (PReLU's and
///   pmish's `a`, Swish-β's `β`) per layer, mean over channels, one line per variant and seed,
///   when some variant has one per layer.
///
/// Returns the file names written.
pub fn figures(entries: &[FamilyEntry], fig: &Path) -> Result<Vec<String>, ExperimentError> {
    let mut written = Vec::new();
    let zs: Vec<f64> = (0..=200).map(|i| -5.0 + 0.05 * i as f64).collect();
    let mut panels: Vec<plot::LinePanel> = Vec::new();
    for e in entries {
        let Some((variant, seed, slot)) = split_name(&e.name) else {
            continue;
        };
        let Ok(family) = family_of(Path::new("families.json"), e) else {
            continue;
        };
        let first_seed = entries
            .iter()
            .filter_map(|o| split_name(&o.name))
            .find(|(v, _, _)| *v == variant)
            .map(|(_, s, _)| s);
        if first_seed != Some(seed) {
            continue;
        }
        let curve = |g: &dyn Fn(f64) -> f64| zs.iter().map(|&z| (z, g(z))).collect::<Vec<_>>();
        let rows = &e.params.values;
        let mut series = vec![Series {
            label: if rows.len() > 1 {
                format!("{slot} (channel 0)")
            } else {
                slot.to_string()
            },
            points: curve(&|z| value(family, &rows[0], z)),
            dashed: false,
        }];
        if rows.len() > 1 {
            series.push(Series {
                label: format!("{slot} (mean of {} channels)", rows.len()),
                points: curve(&|z| {
                    rows.iter().map(|r| value(family, r, z)).sum::<f64>() / rows.len() as f64
                }),
                dashed: false,
            });
        }
        match panels.iter_mut().find(|p| p.title == variant) {
            Some(p) => p.series.extend(series),
            None => panels.push(plot::LinePanel {
                title: variant.to_string(),
                series,
            }),
        }
    }
    for p in &mut panels {
        p.series.push(Series {
            label: "relu".into(),
            points: zs.iter().map(|&z| (z, z.max(0.0))).collect(),
            dashed: true,
        });
    }
    if !panels.is_empty() {
        plot::line_panels(
            &fig.join("families.svg"),
            "learned family activations (first seed)",
            "z",
            "g(z)",
            &panels,
            panels.len().min(2),
        )?;
        written.push("families.svg".to_string());
    }
    // One line per (variant, seed) through its slots' single parameter.
    let mut lines: Vec<(String, String, Vec<f64>)> = Vec::new();
    for e in entries.iter().filter(|e| e.params.param_names.len() == 1) {
        let Some((variant, seed, _)) = split_name(&e.name) else {
            continue;
        };
        let v = &e.params.values;
        let mean = v.iter().map(|r| r[0]).sum::<f64>() / v.len().max(1) as f64;
        let label = format!("{variant} {seed} ({})", e.params.param_names[0]);
        match lines.iter_mut().find(|(l, _, _)| *l == label) {
            Some((_, _, ys)) => ys.push(mean),
            None => lines.push((label, variant.to_string(), vec![mean])),
        }
    }
    if lines.iter().any(|(_, _, ys)| ys.len() >= 2) {
        let series: Vec<Series> = lines
            .into_iter()
            .filter(|(_, _, ys)| ys.len() >= 2)
            .map(|(label, _, ys)| Series {
                label,
                points: ys
                    .iter()
                    .enumerate()
                    .map(|(i, &y)| ((i + 1) as f64, y))
                    .collect(),
                dashed: false,
            })
            .collect();
        plot::line_plot(
            &fig.join("family-params.svg"),
            "learned parameter per layer (mean over channels)",
            "layer (activation slot, input to output)",
            "parameter",
            &series,
            false,
        )?;
        written.push("family-params.svg".to_string());
    }
    Ok(written)
}

/// One channel of a piecewise-linear function as knots `x₀ < … < x_{K−1}`, the value at `x₀`
/// and the slopes `s₀ … s_K` of its `K + 1` pieces.
struct Pieces {
    knots: Vec<f64>,
    y0: f64,
    slopes: Vec<f64>,
}

impl Pieces {
    /// The function of `family` with `row` as knots and slopes, or `None` when it is not a
    /// continuous piecewise-linear function. Knots where the slope does not change are kept (harmless).
    fn of(family: Family, row: &[f64]) -> Option<Pieces> {
        let mut knots: Vec<f64> = match family {
            Family::Prelu => vec![0.0],
            Family::Apl { hinges } => {
                let mut k = vec![0.0];
                k.extend_from_slice(&row[hinges..2 * hinges]);
                k
            }
            Family::Pwlu { intervals } => {
                let (l, r) = (row[0], row[1]);
                if r.partial_cmp(&l) != Some(std::cmp::Ordering::Greater) {
                    // Crossed bounds leave no interval (`z < L` or `z ≥ R` always holds): the
                    // function jumps at `L`, which no relu AFU can represent.
                    return None;
                }
                (0..=intervals)
                    .map(|i| l + (r - l) * i as f64 / intervals as f64)
                    .collect()
            }
            _ => return None,
        };
        knots.sort_by(f64::total_cmp);
        knots.dedup();
        // Each piece's slope from the function itself, at a point strictly inside it.
        let inside = |k: usize| -> f64 {
            match k {
                0 => knots[0] - 1.0,
                k if k == knots.len() => knots[k - 1] + 1.0,
                k => 0.5 * (knots[k - 1] + knots[k]),
            }
        };
        let slopes = (0..=knots.len())
            .map(|k| derivative(family, row, inside(k)))
            .collect();
        Some(Pieces {
            y0: value(family, row, knots[0]),
            knots,
            slopes,
        })
    }
}

/// The relu AFUs (one per channel, `K + 1` units each) equal to the piecewise-linear family
/// slot `e`: `G(z) = y₀ − s₀·relu(x₀ − z) + s₀·relu(z − x₀) + Σₖ (sₖ₊₁ − sₖ)·relu(z − xₖ)`.
/// `None` when the slot is not a continuous piecewise-linear function (a smooth family, or
/// a PWLU whose bounds crossed). Channels with fewer knots get units that
/// add nothing (`w1 = 0`), so every channel has the same `N`.
pub fn bake_exact(e: &FamilyEntry) -> Result<Option<AfuParams>, ExperimentError> {
    let family = family_of(Path::new("families.json"), e)?;
    let pieces: Option<Vec<Pieces>> = e
        .params
        .values
        .iter()
        .map(|row| Pieces::of(family, row))
        .collect();
    let Some(pieces) = pieces else {
        return Ok(None);
    };
    let hidden = pieces.iter().map(|p| p.knots.len() + 1).max().unwrap_or(1);
    let channels = pieces.len();
    let mut p = AfuParams {
        base: BaseActivation::Relu,
        channels,
        hidden,
        w0: vec![0.0; channels * hidden],
        b0: vec![0.0; channels * hidden],
        w1: vec![0.0; channels * hidden],
        b1: vec![0.0; channels],
    };
    for (c, pc) in pieces.iter().enumerate() {
        let at = |i: usize| c * hidden + i;
        let x0 = pc.knots[0];
        // relu(x₀ − z) carries the leftmost slope below x₀.
        p.w0[at(0)] = -1.0;
        p.b0[at(0)] = x0;
        p.w1[at(0)] = -pc.slopes[0];
        for (k, &xk) in pc.knots.iter().enumerate() {
            p.w0[at(k + 1)] = 1.0;
            p.b0[at(k + 1)] = -xk;
            // At x₀ the slope goes from 0 (relu's left side) to s₁ above the knot.
            let before = if k == 0 { 0.0 } else { pc.slopes[k] };
            p.w1[at(k + 1)] = pc.slopes[k + 1] - before;
        }
        p.b1[c] = pc.y0;
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(family: &str, values: Vec<Vec<f64>>) -> FamilyEntry {
        let f: Family = match family.parse::<afu::activation::ActivationSpec>().unwrap() {
            afu::activation::ActivationSpec::Family { family, .. } => family,
            _ => unreachable!(),
        };
        FamilyEntry {
            name: format!("{family}/seed1/conv1"),
            params: FamilyParams {
                family: f.to_string(),
                channels: values.len(),
                param_names: Vec::new(),
                values,
            },
        }
    }

    /// The baked relu AFU equals the family on a dense grid, beyond its knots too.
    fn assert_bakes_exactly(e: &FamilyEntry) {
        let family = family_of(Path::new("t"), e).unwrap();
        let baked = bake_exact(e).unwrap().expect("piecewise linear");
        for (c, row) in e.params.values.iter().enumerate() {
            for i in 0..=4000 {
                let z = -20.0 + 40.0 * i as f64 / 4000.0;
                let (want, got) = (value(family, row, z), baked.eval(c, z));
                assert!(
                    (want - got).abs() <= 1e-9 * (1.0 + want.abs()),
                    "{} channel {c} at z = {z}: family {want}, baked {got}",
                    e.params.family
                );
            }
        }
    }

    #[test]
    fn piecewise_linear_families_bake_exactly() {
        assert_bakes_exactly(&entry("prelu", vec![vec![0.25], vec![-0.7]]));
        assert_bakes_exactly(&entry(
            "apl-3",
            vec![vec![0.3, -0.5, 1.2, -1.0, 0.4, 0.4], vec![0.0; 6]],
        ));
        let pwlu = |l: f64, r: f64| {
            let mut row = vec![l, r, -0.2, 1.3];
            row.extend([0.0, 0.5, -0.3, 0.9, 2.0]);
            row
        };
        assert_bakes_exactly(&entry("pwlu-4", vec![pwlu(-2.0, 3.0), pwlu(-0.5, 0.5)]));
        // Crossed bounds: a jump at L, not representable.
        assert!(
            bake_exact(&entry("pwlu-4", vec![pwlu(1.0, -1.0)]))
                .unwrap()
                .is_none()
        );
        // The start of every piecewise-linear family (PWLU's is relu) bakes too.
        for (name, family) in [
            ("prelu", Family::Prelu),
            ("apl-5", Family::Apl { hinges: 5 }),
            ("pwlu-16", Family::Pwlu { intervals: 16 }),
            ("pwlu-7", Family::Pwlu { intervals: 7 }),
        ] {
            let init = afu::with_family!(family, f => f.init());
            assert_bakes_exactly(&entry(name, vec![init]));
        }
    }

    #[test]
    fn figures_show_functions_and_per_layer_parameters() {
        let dir = std::env::temp_dir().join(format!("afu-family-figs-{}", std::process::id()));
        let mut entries = Vec::new();
        for seed in [1, 2] {
            for (slot, a) in [("conv1", -0.05), ("fc1", 0.1), ("fc2", 0.15)] {
                let mut e = entry("pmish", vec![vec![a], vec![a + 0.01]]);
                e.name = format!("pmish-layer/seed{seed}/{slot}");
                e.params.param_names = vec!["a".into()];
                entries.push(e);
            }
        }
        let mut pau = entry(
            "pau",
            vec![afu::with_family!(Family::Pau { m: 5, n: 4 }, f => f.init())],
        );
        pau.name = "pau/seed1/shared".into();
        entries.push(pau);
        let written = figures(&entries, &dir).unwrap();
        assert_eq!(written, ["families.svg", "family-params.svg"]);
        let svg = std::fs::read_to_string(dir.join("family-params.svg")).unwrap();
        assert!(
            svg.contains("pmish-layer seed2 (a)"),
            "legend names variant and seed"
        );
        let svg = std::fs::read_to_string(dir.join("families.svg")).unwrap();
        assert!(svg.contains("fc1 (mean of 2 channels)") && svg.contains("pau"));
        // Network-shared single parameters (one slot) draw no per-layer figure.
        let written = figures(&entries[6..], &dir.join("b")).unwrap();
        assert_eq!(written, ["families.svg"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn smooth_families_do_not_bake() {
        for (name, row) in [
            ("swish-beta", vec![1.0]),
            (
                "kaf",
                afu::with_family!(Family::Kaf { points: 20 }, f => f.init()),
            ),
        ] {
            assert!(bake_exact(&entry(name, vec![row])).unwrap().is_none());
        }
    }

    #[test]
    fn inspect_reads_families_json_and_names_the_nearest_function() {
        let dir = std::env::temp_dir().join(format!("afu-family-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!([
            {"name": "prelu/seed1/conv1", "family": "prelu", "channels": 1,
             "param_names": ["a"], "values": [[0.0]]},
            {"name": "swish-beta/seed1/fc1", "family": "swish-beta", "channels": 2,
             "param_names": ["beta"], "values": [[1.0], [1.0]]}
        ]);
        std::fs::write(dir.join("families.json"), json.to_string()).unwrap();
        let rows = inspect_all(&dir, None, (-5.0, 5.0), Some(&dir)).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "prelu/seed1/conv1");
        assert!(
            rows[0].equally_near.iter().any(|n| n == "relu"),
            "{:?}",
            rows[0]
        );
        assert!(rows[0].nearest_error < 1e-3);
        assert_eq!(rows[1].name, "swish-beta/seed1/fc1[0]");
        assert!(
            rows[1].equally_near.iter().any(|n| n == "swish"),
            "{:?}",
            rows[1]
        );
        assert!(dir.join("figures/inspect/prelu_seed1_conv1.svg").exists());
        let only = inspect_all(&dir, Some("swish-beta"), (-5.0, 5.0), None).unwrap();
        assert_eq!(only.len(), 2);
        assert_eq!(rows[0].inputs, "uniform over [-5, 5]");
        // Recorded inputs, when the run has them, replace the uniform range.
        let seen = InputDistribution::from_values(&[0.5, 1.0, 1.5, 2.0, 2.5], 10).unwrap();
        let histograms = std::collections::BTreeMap::from([
            ("prelu/seed1/conv1".to_string(), seen.clone()),
            ("swish-beta/seed1/fc1".to_string(), seen),
        ]);
        std::fs::write(
            dir.join("histograms.json"),
            serde_json::to_string(&histograms).unwrap(),
        )
        .unwrap();
        let rows = inspect_all(&dir, None, (-5.0, 5.0), None).unwrap();
        assert_eq!(rows[0].inputs, "recorded inputs");
        assert_eq!(rows[1].inputs, "recorded inputs of all channels");
        // Only z > 0 seen: PReLU with a = 0 is linear there.
        assert!(
            rows[0].shape.distance_from_linear < 1e-6,
            "{:?}",
            rows[0].shape
        );
        // A malformed row is an error naming the file and the slot.
        std::fs::write(
            dir.join("families.json"),
            r#"[{"name": "x/seed1/a", "family": "pau", "channels": 1, "param_names": [], "values": [[1.0]]}]"#,
        )
        .unwrap();
        let err = inspect_all(&dir, None, (-5.0, 5.0), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("families.json") && err.contains("x/seed1/a"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
