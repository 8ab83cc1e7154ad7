//! PyTorch's side of `afu bench kernels` (`scripts/torch_kernels.py`): torch's relu and the
//! paper's AFU formulation (Linear(1,N) → ψ → Linear(N,1) on the flattened tensor) and the
//! learnable families written in plain PyTorch the way their libraries compute them, forward
//! and backward on the benchmark's tensor shape, with the same thread count, in the same run;
//! and the ratios of afu's cases to them.

use serde::Serialize;

use super::host;
use super::{BenchReport, KernelBenchConfig};
use crate::afu::BaseActivation;

/// The PyTorch script, embedded so the benchmark works from any directory.
pub const TORCH_SCRIPT: &str = include_str!("../../scripts/torch_kernels.py");

/// One PyTorch case.
#[derive(Debug, Clone, Serialize)]
pub struct TorchKernelCase {
    /// `torch relu` or `torch paper-AFU <base> N=<n>`.
    pub name: String,
    /// Median forward+backward (ms).
    pub median_ms: f64,
    /// 10th percentile (ms).
    pub p10_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// Timed passes.
    pub reps: usize,
}

/// What the script reported.
#[derive(Debug, Clone, Serialize)]
pub struct TorchKernels {
    /// PyTorch version and threads, or why it did not run.
    pub note: String,
    /// The cases (empty when it did not run).
    pub cases: Vec<TorchKernelCase>,
}

/// Runs the script with `python` on `config`'s shape, hidden sizes, bases and reps, with
/// rayon's thread count.
pub fn run(python: &str, config: &KernelBenchConfig) -> TorchKernels {
    let join = |v: Vec<String>| v.join(",");
    let args = vec![
        "--json".to_string(),
        "--shape".into(),
        join(config.shape.iter().map(|d| d.to_string()).collect()),
        "--hidden".into(),
        join(config.hidden.iter().map(|d| d.to_string()).collect()),
        "--bases".into(),
        join(config.bases.iter().map(|b| b.to_string()).collect()),
        "--families".into(),
        join(
            crate::family::Family::DEFAULTS
                .iter()
                .map(|f| f.to_string())
                .collect(),
        ),
        "--reps".into(),
        config.reps.max(2).to_string(),
        "--threads".into(),
        rayon::current_num_threads().to_string(),
    ];
    match host::run_python_json(python, "torch-kernels", TORCH_SCRIPT, &args) {
        Err(note) => TorchKernels {
            note,
            cases: Vec::new(),
        },
        Ok(v) => TorchKernels {
            note: format!(
                "PyTorch {}, {} threads, denormals flushed",
                v["torch"].as_str().unwrap_or("?"),
                v["threads"]
            ),
            cases: v["cases"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| TorchKernelCase {
                            name: c["case"].as_str().unwrap_or("?").to_string(),
                            median_ms: c["median_ms"].as_f64().unwrap_or(f64::NAN),
                            p10_ms: c["p10_ms"].as_f64().unwrap_or(f64::NAN),
                            p90_ms: c["p90_ms"].as_f64().unwrap_or(f64::NAN),
                            reps: c["reps"].as_u64().unwrap_or(0) as usize,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
    }
}

/// Ratios of afu's cases to PyTorch's: every relu-family fused AFU (and Burn's relu) over
/// torch's relu, and the paper's PyTorch AFU over afu's fused AFU with the same base and N
/// (shared), and each PyTorch family over afu's fused family kernel, as speed-ups.
pub fn ratios(torch: &TorchKernels, afu: &BenchReport) -> Vec<(String, f64)> {
    let find = |name: &str| torch.cases.iter().find(|c| c.name == name);
    let mut out = Vec::new();
    if let Some(relu) = find("torch relu") {
        for c in &afu.cases {
            let base = c
                .name
                .strip_prefix("afu fused ")
                .and_then(|r| r.split(' ').next())
                .and_then(|b| b.parse::<BaseActivation>().ok());
            let relu_family =
                c.name == "burn relu" || base.is_some_and(|b| b.is_piecewise_linear());
            if relu_family {
                out.push((
                    format!("{} / torch relu", c.name),
                    c.median_ms / relu.median_ms,
                ));
            }
        }
    }
    for t in &torch.cases {
        if let Some(family) = t.name.strip_prefix("torch family ") {
            let ours = format!("family {family}");
            if let Some(c) = afu.cases.iter().find(|c| c.name == ours) {
                out.push((
                    format!("torch family {family} / {ours}, speed-up"),
                    t.median_ms / c.median_ms,
                ));
            }
            continue;
        }
        let Some(rest) = t.name.strip_prefix("torch paper-AFU ") else {
            continue;
        };
        let ours = format!("afu fused {rest} shared");
        if let Some(c) = afu.cases.iter().find(|c| c.name == ours) {
            out.push((
                format!("torch paper-AFU {rest} / {ours}, speed-up"),
                t.median_ms / c.median_ms,
            ));
        }
    }
    out
}

/// The PyTorch cases and the ratios as text (printed after afu's table).
pub fn table(torch: &TorchKernels, afu: &BenchReport) -> String {
    if torch.cases.is_empty() {
        return format!("\nPyTorch: not measured ({})\n", torch.note);
    }
    let mut s = format!(
        "\n{}\n{:<40} {:>10} {:>17}\n",
        torch.note, "case", "ms", "p10–p90"
    );
    for c in &torch.cases {
        s += &format!(
            "{:<40} {:>10.2} {:>17}\n",
            c.name,
            c.median_ms,
            format!("{:.2}–{:.2}", c.p10_ms, c.p90_ms)
        );
    }
    s += "\nratios (same run)\n";
    for (label, r) in ratios(torch, afu) {
        s += &format!("{label:<64} {r:>7.2}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchCase;

    fn case(name: &str, ms: f64) -> BenchCase {
        BenchCase {
            name: name.into(),
            median_ms: ms,
            reps: 3,
            ratio_to_relu: 1.0,
            peak_extra_bytes: 0,
            memory_ratio_to_relu: 1.0,
        }
    }

    #[test]
    fn ratios_pair_the_right_cases() {
        let afu = BenchReport {
            shape: [1, 1, 1, 1],
            elements: 1,
            threads: 1,
            cases: vec![
                case("burn relu", 2.0),
                case("afu fused relu N=8 shared", 3.0),
                case("afu fused sigmoid N=128 shared", 10.0),
                case("afu fused sigmoid N=128 per-channel", 11.0),
                case("family pau-channel", 5.0),
            ],
        };
        let t = |name: &str, ms: f64| TorchKernelCase {
            name: name.into(),
            median_ms: ms,
            p10_ms: ms,
            p90_ms: ms,
            reps: 3,
        };
        let torch = TorchKernels {
            note: String::new(),
            cases: vec![
                t("torch relu", 1.5),
                t("torch paper-AFU sigmoid N=128", 400.0),
                t("torch family pau-channel", 50.0),
            ],
        };
        let r = ratios(&torch, &afu);
        assert_eq!(
            r,
            vec![
                ("burn relu / torch relu".to_string(), 2.0 / 1.5),
                ("afu fused relu N=8 shared / torch relu".to_string(), 2.0),
                (
                    "torch paper-AFU sigmoid N=128 / afu fused sigmoid N=128 shared, speed-up"
                        .to_string(),
                    40.0
                ),
                (
                    "torch family pau-channel / family pau-channel, speed-up".to_string(),
                    10.0
                ),
            ]
        );
        let text = table(&torch, &afu);
        assert!(text.contains("torch paper-AFU sigmoid N=128"), "{text}");
        let none = TorchKernels {
            note: "python3 failed: No module named 'torch'".into(),
            cases: vec![],
        };
        assert!(table(&none, &afu).contains("not measured (python3 failed"));
    }
}
