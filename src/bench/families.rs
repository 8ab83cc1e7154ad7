//! The learnable families in `afu bench kernels`: forward+backward of every family's fused
//! kernel on the benchmark tensor with per-channel parameters, and of parametric Mish against
//! Burn's fixed Mish, with their ratios to Burn's relu and peak extra memory.
//!
//! Burn's relu, Burn's Mish and the families are timed interleaved, one timed pass of each per
//! round (after an untimed pass of the same case), as the relu-family AFU cases are in
//! [`super::run_kernels`], so a slow spell of the shared machine falls on all of them alike;
//! the ratios are to the relu of these rounds.

use burn::tensor::{Device, Tensor};

use super::{BenchCase, KernelBenchConfig, measure, median};
use crate::afu::KernelChoice;
use crate::family::{Family, Learnable};

/// Timed rounds at most (the slowest family, KAF, takes tens of ms per pass).
const MAX_ROUNDS: usize = 11;

/// Runs the family cases on `x` (upstream gradient `g`); `report` is called after each.
pub fn run_families(
    config: &KernelBenchConfig,
    x: &Tensor<4>,
    g: &Tensor<4>,
    device: &Device,
    mut report: impl FnMut(&BenchCase),
) -> Vec<BenchCase> {
    type Pass = Box<dyn Fn(Tensor<4>) -> Tensor<4>>;
    let channels = config.shape[1];
    let mut passes: Vec<(String, Pass)> = vec![
        (
            "burn relu (family rounds)".into(),
            Box::new(burn::tensor::activation::relu::<4>),
        ),
        (
            "burn mish (fixed)".into(),
            Box::new(burn::tensor::activation::mish::<4>),
        ),
    ];
    for family in Family::DEFAULTS {
        match Learnable::new(family, channels, device) {
            Ok(layer) => {
                let layer = layer.with_kernel(KernelChoice::Fused);
                passes.push((
                    format!("family {family}-channel"),
                    Box::new(move |t| layer.forward(t)),
                ));
            }
            Err(e) => eprintln!("skipping {family}: {e}"),
        }
    }
    let rounds = config.reps.clamp(1, MAX_ROUNDS);
    let mut times = vec![Vec::new(); passes.len()];
    let mut peaks = vec![0usize; passes.len()];
    for _ in 0..rounds {
        for (k, (_, f)) in passes.iter().enumerate() {
            measure(x, g, f);
            let (t, p) = measure(x, g, f);
            times[k].push(t);
            peaks[k] = peaks[k].max(p);
        }
    }
    let mut cases = Vec::with_capacity(passes.len());
    let mut relu: Option<(f64, usize)> = None;
    for ((name, _), (times, peak)) in passes.into_iter().zip(times.into_iter().zip(peaks)) {
        let reps = times.len();
        let ms = median(times) * 1e3;
        let (relu_ms, relu_peak) = *relu.get_or_insert((ms, peak));
        let c = BenchCase {
            name,
            median_ms: ms,
            reps,
            ratio_to_relu: ms / relu_ms,
            peak_extra_bytes: peak,
            memory_ratio_to_relu: peak as f64 / relu_peak.max(1) as f64,
        };
        report(&c);
        cases.push(c);
    }
    cases
}
