//! Checkpoints after every epoch: model (safetensors), optimizer state and progress, each
//! written beside its final name and renamed into place, so an interruption at any moment leaves
//! the previous epoch's checkpoint intact; `--resume` continues from it.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::experiments::common::{self, BoxError, ExperimentError};

/// What is saved after every epoch besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress<R> {
    /// Epochs completed.
    pub epochs_done: usize,
    /// One record per completed epoch.
    pub history: Vec<R>,
    /// Batches of the next epoch already trained (an interrupted epoch), else 0.
    #[serde(default)]
    pub batches_done: usize,
    /// Sum of the training loss over those batches.
    #[serde(default)]
    pub partial_loss_sum: f64,
    /// Training seconds spent on those batches.
    #[serde(default)]
    pub partial_seconds: f64,
}

impl<R> Progress<R> {
    /// Nothing trained yet.
    pub fn new() -> Self {
        Progress {
            epochs_done: 0,
            history: Vec::new(),
            batches_done: 0,
            partial_loss_sum: 0.0,
            partial_seconds: 0.0,
        }
    }
}

impl<R> Default for Progress<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes `model.safetensors`, `optimizer.bpk` and `progress.json` into `dir`.
pub fn save<M: Module, R: Serialize>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    progress: &Progress<R>,
) -> Result<(), ExperimentError> {
    let out = |path: &Path, e: BoxError| ExperimentError::Output {
        path: path.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| out(dir, e.into()))?;
    let model_path = dir.join("model.safetensors");
    let tmp = dir.join(".model.safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp);
    model
        .save_into(&mut store)
        .map_err(|e| out(&tmp, e.to_string().into()))?;
    std::fs::rename(&tmp, &model_path).map_err(|e| out(&model_path, e.into()))?;
    let optim_path = dir.join("optimizer.bpk");
    let tmp = dir.join(".optimizer.bpk.tmp");
    optim
        .save(&tmp)
        .map_err(|e| out(&tmp, format!("{e:?}").into()))?;
    std::fs::rename(&tmp, &optim_path).map_err(|e| out(&optim_path, e.into()))?;
    common::write_json(&dir.join("progress.json"), progress)
}

/// Loads a checkpoint written by [`save`] into `model` and `optim`.
pub fn load<M: Module, R: DeserializeOwned>(
    dir: &Path,
    model: &mut M,
    optim: ModuleOptimizer,
) -> Result<(ModuleOptimizer, Progress<R>), ExperimentError> {
    let bad = |path: &Path, e: BoxError| ExperimentError::Checkpoint {
        path: path.to_path_buf(),
        source: e,
    };
    let p = dir.join("progress.json");
    let text = std::fs::read_to_string(&p).map_err(|e| bad(&p, e.into()))?;
    let progress: Progress<R> = serde_json::from_str(&text).map_err(|e| bad(&p, e.into()))?;
    let mp = dir.join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&mp);
    model
        .load_from(&mut store)
        .map_err(|e| bad(&mp, e.to_string().into()))?;
    let op = dir.join("optimizer.bpk");
    let optim = optim
        .load(&op)
        .map_err(|e| bad(&op, format!("{e:?}").into()))?;
    Ok((optim, progress))
}
