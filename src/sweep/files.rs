//! The sweep folder: job folders with their configs, `sweep.json`, job states.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Job, Sweep, SweepError, one_line};
use crate::experiments::RunConfig;

/// A job as listed in `sweep.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job id (its folder name under `jobs/`).
    pub id: String,
    /// The experiment.
    pub experiment: String,
    /// The variant.
    pub variant: String,
    /// The seed.
    pub seed: u64,
    /// Grid key → value as text.
    #[serde(default)]
    pub grid: BTreeMap<String, String>,
}

impl From<&Job> for JobInfo {
    fn from(j: &Job) -> Self {
        JobInfo {
            id: j.id.clone(),
            experiment: j.experiment.clone(),
            variant: j.variant.clone(),
            seed: j.seed,
            grid: j.grid.clone(),
        }
    }
}

/// One entry of `sweep.json`'s job list.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestJob {
    #[serde(flatten)]
    info: JobInfo,
    /// The job folder, relative to the sweep folder.
    dir: PathBuf,
}

/// `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    name: String,
    source: PathBuf,
    created: String,
    updated: String,
    jobs: Vec<ManifestJob>,
}

/// Where a job's run folder is: `<out>/jobs/<id>`.
pub fn job_dir(out: &Path, id: &str) -> PathBuf {
    out.join("jobs").join(id)
}

/// How far a job got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Not started.
    New,
    /// Started (checkpoints or a log exist) but not finished: running it again resumes it.
    Started,
    /// Finished: its folder holds `summary.json`.
    Finished,
}

/// The state of the job whose run folder is `dir`.
pub fn job_state(dir: &Path) -> JobState {
    if dir.join("summary.json").is_file() {
        JobState::Finished
    } else if dir.join("checkpoints").is_dir() || dir.join("log.txt").is_file() {
        JobState::Started
    } else {
        JobState::New
    }
}

/// Writes `<out>/jobs/<id>/config.toml` for every job that has none yet and `<out>/sweep.json`.
/// A job folder whose existing config differs from the job's is an error
/// ([`SweepError::Changed`]): the sweep file changed under an existing sweep folder.
pub fn prepare(sweep: &Sweep, out: &Path) -> Result<(), SweepError> {
    for job in &sweep.jobs {
        let dir = job_dir(out, &job.id);
        let path = dir.join("config.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| SweepError::io(&path, e))?;
            let same = toml::from_str::<RunConfig>(&text)
                .map(|c| c == job.config)
                .unwrap_or(false);
            if !same {
                return Err(SweepError::Changed {
                    job: job.id.clone(),
                    dir,
                });
            }
            continue;
        }
        let text = toml::to_string_pretty(&job.config).map_err(|e| SweepError::io(&path, e))?;
        crate::fsutil::write_atomic(&path, text.as_bytes())
            .map_err(|e| SweepError::io(&path, e))?;
    }
    let path = out.join("sweep.json");
    let now = chrono::Local::now()
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let created = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Manifest>(&t).ok())
        .map(|m| m.created)
        .unwrap_or_else(|| now.clone());
    let manifest = Manifest {
        name: sweep.name.clone(),
        source: sweep.source.clone(),
        created,
        updated: now,
        jobs: sweep
            .jobs
            .iter()
            .map(|j| ManifestJob {
                info: j.into(),
                dir: Path::new("jobs").join(&j.id),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| SweepError::io(&path, e))?;
    crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| SweepError::io(&path, e))
}

/// The jobs of the sweep folder `sweep_dir` (from its `sweep.json`), each with its job folder.
pub fn read_manifest(sweep_dir: &Path) -> Result<Vec<(JobInfo, PathBuf)>, SweepError> {
    let path = sweep_dir.join("sweep.json");
    let text = std::fs::read_to_string(&path).map_err(|e| SweepError::Manifest {
        path: path.clone(),
        message: format!(
            "not a sweep folder ({})",
            one_line(&e.to_string()).to_lowercase()
        ),
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| SweepError::Manifest {
        path: path.clone(),
        message: format!("not a sweep.json: {}", one_line(&e.to_string())),
    })?;
    Ok(manifest
        .jobs
        .into_iter()
        .map(|j| (j.info, sweep_dir.join(j.dir)))
        .collect())
}
