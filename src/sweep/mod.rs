//! Sweeps: many experiment runs (experiments × variants × seeds × settings) as independent jobs.
//!
//! A *sweep file* (TOML) names experiments, and for each the variants, the seeds and the
//! settings to try. [`load`] expands it into [`Job`]s, one per (experiment, variant, seed, grid
//! point); each job is a normal run folder `<out>/jobs/<job-id>/` holding the job's complete
//! `config.toml` (a [`RunConfig`](crate::experiments::RunConfig), the same file an experiment
//! writes), which `afu run <job>/config.toml --out <job> --resume` runs. A job is *finished* when
//! its folder holds `summary.json`; running the sweep again skips finished jobs and resumes
//! half-done ones from their checkpoints. Jobs run on this machine ([`run_local`], a few at a
//! time) or as a Slurm job array ([`emit_slurm`]).
//!
//! # The sweep file
//!
//! ```toml
//! out = "runs/sweeps/mnist-seeds"      # optional; default runs/sweeps/<file stem>; --out overrides
//!
//! [[experiment]]                       # one block per experiment; several blocks are allowed
//! name = "mnist"                       # xor | xor-neuron | mnist | cifar10 | meta
//! variants = ["relu", "afu-relu-8-layer"]
//! seeds = [1, 2, 3]                    # a list, or an integer K: first_seed .. first_seed+K-1
//! first_seed = 1                       # optional, only with an integer `seeds`
//! quick = false                        # optional: start from the experiment's quick settings
//!
//! [experiment.settings]                # any field of the experiment's config.toml, for every job
//! data = "/usr/share/datasets/fashion-mnist"
//! epochs = 1
//! afu_start.afu_init = "relu"          # nested fields: dotted keys or tables
//!
//! [experiment.grid]                    # fields with a list of values: every combination is a job
//! limit_train = [1000, 5000]
//! ```
//!
//! * `name` (required): the experiment, as its subcommand is spelled.
//! * `variants` (required, non-empty; not allowed for `meta`): activation names (`relu`,
//!   `afu-relu-8`, `afu-sigmoid-128-layer`, …); each job trains one.
//! * `seeds` (optional, default 1): a non-empty list of distinct seeds, or a count `K ≥ 1` meaning
//!   `first_seed, …, first_seed + K − 1`. `first_seed` defaults to the experiment's own default
//!   (1 for mnist and cifar10, 0 for xor, xor-neuron and meta, as `afu meta --seed`). Each job
//!   trains one seed: mnist, cifar10 and meta jobs get `seed = S` (and `seeds = 1` where the
//!   config has that field), xor and xor-neuron jobs `first_seed = S`, `seeds = 1`.
//! * `quick` (optional, default false): start from the experiment's `--quick` configuration
//!   instead of its full (paper) one.
//! * `settings` (optional): fields of the experiment's `config.toml` fixed for every job; any field
//!   the experiment's config has, with the same type. Unknown fields are errors. `variants` and
//!   the seed fields belong to the sweep and cannot be set here.
//! * `grid` (optional): fields with a non-empty list of values; every combination of them is a job
//!   (a list-valued field takes a list of lists).
//!
//! A job's configuration is built in this order: the experiment's base config (full or quick;
//! mnist's `data` defaults to `data/mnist`, cifar10's to `data/cifar10`), then `settings` merged
//! in (tables field by field), then the job's grid point, then its variant and seed. Relative
//! `data` and `afu_start.afu_from` paths are made absolute against the current directory when the
//! sweep is loaded, so jobs run from anywhere (a Slurm node, say); nothing checks at that point
//! that they exist. TOML has no null: a field that the quick config sets (`limit_train`, say)
//! can be changed but not unset.
//!
//! Job ids are `<experiment>-<variant>-s<seed>`, then `-<key>-<value>` for each grid key in
//! sorted order, with every character outside `[A-Za-z0-9._-]` replaced by `_`; e.g.
//! `mnist-afu-relu-8-layer-s2-limit_train-5000`. They must be unique.
//!
//! # Meta-learning (`name = "meta"`)
//!
//! A `meta` block runs `afu meta` once per seed and grid point: the fields of `settings` and
//! `grid` are those of a meta `config.toml` (`generations`, `population`, `tasks`,
//! `inner_steps`, `held_out`, `full_factor`, `hidden`, `base`, `start`, `meta_loss`, `sigma0`,
//! `lr`, `width`, `points`, `target_loss`, `data`), `quick = true` starts from `afu meta
//! --quick`'s settings, and seeds default to 0, 1, …. There are no variants (each job learns one
//! AFU and compares it with relu and trained AFUs itself), so `variants` is an error; jobs are
//! recorded with the variant `meta` and their ids leave it out: `meta-s0-meta_loss-final`. As
//! with `afu meta --hidden`, a full (not quick) block that sets `hidden` but not `population`
//! gets λ = 4 + ⌊3 ln(3N+1)⌋. `afu report` merges a meta sweep's jobs per grid point over seeds
//! ([`meta::seeds`](crate::meta::seeds)).
//!
//! # The sweep folder
//!
//! ```text
//! <out>/sweep.json              name, source file, times, and every job (id, experiment, variant, seed, grid, dir)
//! <out>/jobs/<id>/config.toml   the job's complete configuration
//! <out>/jobs/<id>/log.txt       the output of every local attempt at the job
//! <out>/jobs/<id>/…             the job's run folder: summary.json, checkpoints/, figures/, …
//! <out>/jobs.txt, sweep.slurm   with `--emit slurm`: the array's job list and the batch script
//! ```

//!
//! # Time estimates
//!
//! Before running, `afu sweep` prints the counts and an estimate of the time left: per job,
//! seconds per unit of cost (mnist and cifar10: epochs × training images; xor: steps × points;
//! xor-neuron: steps; meta: inner training steps × points × width × (width + N)) of the finished jobs of the same experiment and variant, times the job's
//! cost; where none has finished, built-in timings of a 2-core x86-64 CPU host (the estimate
//! then says "rough"); the sum divided by the jobs run at once. The built-in timings were
//! measured with a sweep over a grid of sizes, one job at a time (xor: steps 250/1000 ×
//! points_per_blob 125/500; xor-neuron: steps 1000/4000; mnist: limit_train 1000/4000 ×
//! limit_test 500/2000, one epoch; cifar10: limit_train 300/1200 × limit_test 100/400, one epoch;
//! relu and AFU variants each), fitting overhead, seconds per training image (or step × point)
//! and per test image.

mod estimate;
mod files;
mod local;
mod slurm;
mod spec;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use estimate::{Estimate, estimate};
pub use files::{JobInfo, JobState, job_dir, job_state, prepare, read_manifest};
pub use local::{LocalOptions, LocalOutcome, run_local};
pub use slurm::{SlurmOptions, emit_slurm};
pub use spec::{EXPERIMENTS, META_VARIANT, load, load_str};

/// A sweep file expanded into jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The file's stem (`mnist-seeds` for `mnist-seeds.toml`).
    pub name: String,
    /// The sweep file, absolute.
    pub source: PathBuf,
    /// The output folder: the file's `out`, else `runs/sweeps/<name>` (as written: relative
    /// paths are relative to the current directory).
    pub out: PathBuf,
    /// Every job, in the order they are run.
    pub jobs: Vec<Job>,
}

/// One run of the sweep: an experiment's config with one variant and one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's id, also its folder name under `<out>/jobs/`.
    pub id: String,
    /// `xor`, `xor-neuron`, `mnist`, `cifar10` or `meta`.
    pub experiment: String,
    /// The activation variant (`meta` for a meta job, which has none).
    pub variant: String,
    /// The seed.
    pub seed: u64,
    /// The job's grid point: grid key (dotted for nested fields) → value as text.
    pub grid: BTreeMap<String, String>,
    /// The job's complete configuration.
    pub config: crate::experiments::RunConfig,
}

/// What can go wrong with a sweep. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file cannot be read.
    #[error("{file}: cannot read: {message}")]
    Read {
        /// The sweep file.
        file: PathBuf,
        /// Why.
        message: String,
    },
    /// The sweep file is not TOML.
    #[error("{file}: not valid TOML: {message}")]
    Toml {
        /// The sweep file.
        file: PathBuf,
        /// The parser's message (one line, with the position).
        message: String,
    },
    /// A field of the sweep file is wrong.
    #[error("{file}: {field}: {message}")]
    Field {
        /// The sweep file.
        file: PathBuf,
        /// The field, e.g. `experiment[0].grid.limit_train`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A job folder holds a different configuration than the sweep file gives now.
    #[error(
        "{dir}: job {job}: its config.toml differs from what the sweep file gives now (the file changed since this sweep folder was made, or relative paths resolve differently from this directory); use another --out, or delete that job folder to redo the job"
    )]
    Changed {
        /// The job id.
        job: String,
        /// The job folder.
        dir: PathBuf,
    },
    /// A folder that is not a sweep folder, or a damaged `sweep.json`.
    #[error("{path}: {message}")]
    Manifest {
        /// The `sweep.json` read.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A path or option that cannot be used (e.g. whitespace in a path of a Slurm script).
    #[error("{path}: {message}")]
    Unusable {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Reading or writing a file, or starting a job, failed.
    #[error("{path}: {message}")]
    Io {
        /// The file, folder or program.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl SweepError {
    /// True for errors in what the user gave (the sweep file and its content, a changed sweep,
    /// a folder that is not a sweep, unusable paths): the binary exits with code 2. False for
    /// I/O failures.
    pub fn is_usage(&self) -> bool {
        !matches!(self, SweepError::Io { .. })
    }

    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        SweepError::Io {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        }
    }
}

/// Joins the lines of a message into one.
pub(crate) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
