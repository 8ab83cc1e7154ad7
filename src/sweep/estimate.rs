//! How long a sweep will take: seconds per job from the finished jobs of the same experiment and
//! variant, scaled by a cost measure; built-in timings of a 2-core CPU host otherwise.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::files::{JobState, job_dir, job_state};
use super::{Job, Sweep};
use crate::experiments::RunConfig;

/// Built-in timings of this kind of host (2-core x86-64 VM, Intel Xeon with AVX-512), measured
/// with release builds running one job at a time on both cores (`afu sweep` over a grid of
/// sizes; see "Time estimates" in [`crate::sweep`]): seconds =
/// `overhead + afu_factor × per_unit × cost + epochs × test images × per_test_image`
/// (cost: [`job_cost`]; `afu_factor` only for learned variants).
struct Builtin {
    overhead: f64,
    per_unit: f64,
    per_test_image: f64,
    afu_factor: f64,
}

fn builtin(config: &RunConfig) -> Builtin {
    match config {
        // cost = steps × points: 1000 steps on 2000 points ≈ 0.3 s (relu), 0.45 s (AFU).
        RunConfig::Xor(_) => Builtin {
            overhead: 0.1,
            per_unit: 1.1e-7,
            per_test_image: 0.0,
            afu_factor: 1.7,
        },
        // cost = steps: 1000 steps ≈ 0.1 s (relu), 0.2 s (afu-sigmoid-128).
        RunConfig::XorNeuron(_) => Builtin {
            overhead: 0.05,
            per_unit: 7.7e-5,
            per_test_image: 0.0,
            afu_factor: 2.4,
        },
        // cost = epochs × training images: ≈ 1.0 ms per training image, 0.25 ms per test
        // image (an epoch of full MNIST ≈ 65 s).
        RunConfig::Mnist(_) => Builtin {
            overhead: 0.5,
            per_unit: 1.0e-3,
            per_test_image: 2.5e-4,
            afu_factor: 1.1,
        },
        // cost = epochs × training images: ≈ 14 ms per training image, 5 ms per test image
        // (MobileNet-v1; an epoch of full CIFAR-10 ≈ 12.5 min).
        RunConfig::Cifar10(_) | RunConfig::Smoothness(_) => Builtin {
            overhead: 0.7,
            per_unit: 1.4e-2,
            per_test_image: 5.0e-3,
            afu_factor: 1.15,
        },
        // cost = inner steps × points × width × (width + N), see [`job_cost`]: the README's
        // `afu meta --generations 30 --population 12 --tasks 8 --inner-steps 50` run (1.8e10
        // units) took 67 s alone.
        RunConfig::Meta(_) => Builtin {
            overhead: 1.0,
            per_unit: 3.8e-9,
            per_test_image: 0.0,
            afu_factor: 1.0,
        },
    }
}

/// Inner training steps of an `afu meta` run: the search (λ candidates, the distribution mean
/// and the start AFU on every generation's tasks), the learning-rate tuning of the control
/// and the held-out evaluation (six variants at the long horizon).
fn meta_steps(c: &crate::meta::MetaConfig) -> f64 {
    let f = |n: usize| n as f64;
    let search = f(c.generations) * f(c.population + 2) * f(c.tasks) * f(c.inner_steps);
    let tuning = f(crate::meta::run::LR_FACTORS.len()) * f(c.tasks) * f(c.inner_steps);
    let evaluation = 6.0 * f(c.held_out) * f(c.full_steps());
    search + tuning + evaluation
}

/// The cost measure of a job, which its time is taken proportional to: mnist and cifar10:
/// epochs × training images (`limit_train`, or the full 60 000 / 50 000); xor: steps × points;
/// xor-neuron: steps. Multiplied by the number of seeds and variants the config runs (1 for a
/// sweep's jobs). meta: inner training steps (search, tuning and evaluation together) × points
/// per task × width × (width + N), the work of a step of a `d → width → width → 1` MLP with
/// N-unit AFUs.
pub fn job_cost(config: &RunConfig) -> f64 {
    let f = |n: usize| n as f64;
    match config {
        RunConfig::Xor(c) => {
            f(c.steps) * 4.0 * f(c.points_per_blob) * f(c.seeds) * f(c.variants.len().max(1))
        }
        RunConfig::XorNeuron(c) => f(c.steps) * f(c.seeds) * f(c.variants.len().max(1)),
        RunConfig::Mnist(c) => {
            f(c.epochs)
                * f(c.limit_train.unwrap_or(60_000).min(60_000))
                * f(c.seeds)
                * f(c.variants.len().max(1))
        }
        RunConfig::Cifar10(c) => {
            f(c.epochs)
                * f(c.limit_train.unwrap_or(50_000).min(50_000))
                * f(c.seeds)
                * f(c.variants.len().max(1))
        }
        RunConfig::Smoothness(_) => 1.0,
        RunConfig::Meta(c) => meta_steps(c) * f(c.points) * f(c.width) * f(c.width + c.hidden),
    }
}

/// The built-in guess of a job's seconds.
fn builtin_seconds(job: &Job) -> f64 {
    let b = builtin(&job.config);
    let activation = job.variant.split('@').next().unwrap_or_default();
    let learned = activation
        .parse::<crate::activation::ActivationSpec>()
        .map(|s| s.is_learned())
        .unwrap_or(false);
    let factor = if learned { b.afu_factor } else { 1.0 };
    let test_images = match &job.config {
        RunConfig::Mnist(c) => c.epochs as f64 * c.limit_test.unwrap_or(10_000).min(10_000) as f64,
        RunConfig::Cifar10(c) => {
            c.epochs as f64 * c.limit_test.unwrap_or(10_000).min(10_000) as f64
        }
        _ => 0.0,
    };
    // MobileNetV2 takes about 3.4 times as long as the reference MobileNet-v1 (README timings).
    let model_factor = match &job.config {
        RunConfig::Cifar10(c) if c.model == crate::experiments::cifar::CifarModel::MobilenetV2 => {
            3.4
        }
        _ => 1.0,
    };
    model_factor
        * (b.overhead
            + b.per_unit * factor * job_cost(&job.config)
            + b.per_test_image * test_images)
}

/// The seconds a finished run took, from its `summary.json`: `total_seconds`, else the sum of
/// its epochs' or runs' seconds.
pub(crate) fn recorded_seconds(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if let Some(s) = v.get("total_seconds").and_then(|s| s.as_f64()) {
        return Some(s);
    }
    // afu meta: search and evaluation.
    if let (Some(a), Some(b)) = (
        v.get("search_seconds").and_then(|s| s.as_f64()),
        v.get("eval_seconds").and_then(|s| s.as_f64()),
    ) {
        return Some(a + b);
    }
    for (list, field) in [("epochs", "epoch_seconds"), ("runs", "seconds")] {
        if let Some(items) = v.get(list).and_then(|l| l.as_array()) {
            let secs: f64 = items
                .iter()
                .filter_map(|r| r.get(field).and_then(|s| s.as_f64()))
                .sum();
            if secs > 0.0 {
                return Some(secs);
            }
        }
    }
    None
}

/// Seconds per unit of cost, measured per (experiment, variant).
#[derive(Debug, Default)]
pub(crate) struct CostModel {
    rates: HashMap<(String, String), (f64, f64)>,
}

impl CostModel {
    /// Learns from every finished job of the sweep folder.
    pub(crate) fn from_finished(sweep: &Sweep, out: &Path) -> Self {
        let mut m = CostModel::default();
        for job in &sweep.jobs {
            let dir = job_dir(out, &job.id);
            if job_state(&dir) == JobState::Finished
                && let Some(s) = recorded_seconds(&dir)
            {
                m.record(job, s);
            }
        }
        m
    }

    /// Adds a job that took `seconds`.
    pub(crate) fn record(&mut self, job: &Job, seconds: f64) {
        let cost = job_cost(&job.config);
        if seconds.is_finite() && seconds > 0.0 && cost > 0.0 {
            let e = self
                .rates
                .entry((job.experiment.clone(), job.variant.clone()))
                .or_default();
            e.0 += seconds;
            e.1 += cost;
        }
    }

    /// The predicted seconds of a job, and whether it is the built-in guess.
    pub(crate) fn predict(&self, job: &Job) -> (f64, bool) {
        match self
            .rates
            .get(&(job.experiment.clone(), job.variant.clone()))
        {
            Some((secs, cost)) if *cost > 0.0 => (secs / cost * job_cost(&job.config), false),
            _ => (builtin_seconds(job), true),
        }
    }
}

/// What a sweep has left to do and how long it should take.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Jobs in the sweep.
    pub total: usize,
    /// Jobs already finished.
    pub finished: usize,
    /// Jobs to run (not finished; some may resume).
    pub to_run: usize,
    /// Jobs at a time.
    pub parallel: usize,
    /// Sum of the predicted seconds of the jobs to run.
    pub job_seconds: f64,
    /// Predicted wall-clock seconds: `job_seconds` divided by the parallelism.
    pub seconds: f64,
    /// True when some prediction uses the built-in timings instead of finished jobs.
    pub rough: bool,
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} jobs: {} finished, {} to run",
            self.total, self.finished, self.to_run
        )?;
        if self.to_run > 0 {
            write!(
                f,
                "; estimate {} with {} at a time",
                duration(self.seconds),
                self.parallel
            )?;
            if self.rough {
                write!(
                    f,
                    " (rough: built-in timings of a 2-core CPU host where no job of the same experiment and variant has finished)"
                )?;
            } else {
                write!(f, " (from the finished jobs)")?;
            }
        }
        Ok(())
    }
}

/// Estimates the time of the sweep's unfinished jobs, `parallel` at a time.
pub fn estimate(sweep: &Sweep, out: &Path, parallel: usize) -> Estimate {
    let model = CostModel::from_finished(sweep, out);
    let mut e = Estimate {
        total: sweep.jobs.len(),
        finished: 0,
        to_run: 0,
        parallel: parallel.max(1),
        job_seconds: 0.0,
        seconds: 0.0,
        rough: false,
    };
    for job in &sweep.jobs {
        if job_state(&job_dir(out, &job.id)) == JobState::Finished {
            e.finished += 1;
        } else {
            e.to_run += 1;
            let (s, rough) = model.predict(job);
            e.job_seconds += s;
            e.rough |= rough;
        }
    }
    e.seconds = e.job_seconds / e.parallel.min(e.to_run.max(1)) as f64;
    e
}

/// `4.2 s`, `42 s`, `3.5 min`, `2.1 h`.
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}
