//! Checkpoints after every epoch (and on Ctrl-C): model (safetensors), optimizer state and
//! progress, written as one unit. The three files go into a staging folder beside the
//! checkpoint (`<dir>.next`), which then replaces the checkpoint by two renames (`<dir>` →
//! `<dir>.old`, `<dir>.next` → `<dir>`). A kill at any moment leaves either the previous complete
//! checkpoint or the new one, never a model of one epoch with the progress of another: reading
//! a checkpoint first finishes or undoes an interrupted replacement ([`recover`]) and removes
//! what a killed save left behind. `--resume` continues from it.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Bool, Int, Tensor};
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

/// The stages of [`save`], in order (a test can stop after any of them, as a kill would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The staging folder holds the complete new checkpoint.
    Staged,
    /// The previous checkpoint has been moved aside to `<dir>.old`.
    OldMoved,
    /// The new checkpoint is in place.
    Replaced,
}

/// `<dir>` with `suffix` appended to its last component.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Writes `model.safetensors`, `optimizer.bpk` and `progress.json` into `dir` as one unit.
pub fn save<M: Module, R: Serialize>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    progress: &Progress<R>,
) -> Result<(), ExperimentError> {
    save_until(dir, model, optim, progress, Stage::Replaced, false)
}

/// [`save`], stopping after stage `last` as a kill would, or (`fail`) with an error there as a
/// failed write would.
fn save_until<M: Module, R: Serialize>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    progress: &Progress<R>,
    last: Stage,
    fail: bool,
) -> Result<(), ExperimentError> {
    let stop = |stage: Stage| -> Option<Result<(), ExperimentError>> {
        (stage == last).then(|| {
            if fail {
                Err(ExperimentError::Output {
                    path: dir.to_path_buf(),
                    source: format!("injected failure after {stage:?}").into(),
                })
            } else {
                Ok(())
            }
        })
    };
    let out = |path: &Path, e: BoxError| ExperimentError::Output {
        path: path.to_path_buf(),
        source: e,
    };
    recover(dir).map_err(|e| out(dir, e.into()))?;
    let next = sibling(dir, ".next");
    let old = sibling(dir, ".old");
    std::fs::create_dir_all(&next).map_err(|e| out(&next, e.into()))?;
    let model_path = next.join("model.safetensors");
    // Burn writes these two itself; the fault injection of the tests counts them all the same.
    crate::fsutil::check_injected_write_fault(&model_path)
        .map_err(|e| out(&model_path, e.into()))?;
    let mut store = SafetensorsStore::from_file(&model_path);
    model
        .save_into(&mut store)
        .map_err(|e| out(&model_path, e.to_string().into()))?;
    let optim_path = next.join("optimizer.bpk");
    crate::fsutil::check_injected_write_fault(&optim_path)
        .map_err(|e| out(&optim_path, e.into()))?;
    optim
        .save(&optim_path)
        .map_err(|e| out(&optim_path, format!("{e:?}").into()))?;
    for p in [&model_path, &optim_path] {
        sync(p).map_err(|e| out(p, e.into()))?;
    }
    common::write_json(&next.join(PARAM_IDS), &param_ids(model))?;
    // Progress last: a staging folder with progress.json is complete.
    common::write_json(&next.join("progress.json"), progress)?;
    if let Some(r) = stop(Stage::Staged) {
        return r;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| out(dir, e.into()))?;
    }
    if let Some(r) = stop(Stage::OldMoved) {
        return r;
    }
    std::fs::rename(&next, dir).map_err(|e| out(dir, e.into()))?;
    // The new checkpoint is complete; what is left of the old one is garbage.
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The file of a checkpoint with the model's parameter ids, in visiting order. The optimizer
/// state is keyed by these ids, and `model.safetensors` carries none: a model rebuilt on
/// `--resume` has fresh random ids, which without this file would silently leave the optimizer
/// state unused (a resumed run would then differ from the uninterrupted one).
const PARAM_IDS: &str = "param_ids.json";

/// The ids of every parameter of `model`, in the order [`Module::visit`] and [`Module::map`]
/// traverse them.
fn param_ids<M: Module>(model: &M) -> Vec<u64> {
    struct Collect(Vec<u64>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.id.val());
        }
        fn visit_int<const D: usize>(&mut self, p: &Param<Tensor<D, Int>>) {
            self.0.push(p.id.val());
        }
        fn visit_bool<const D: usize>(&mut self, p: &Param<Tensor<D, Bool>>) {
            self.0.push(p.id.val());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// `model` with the parameter ids `ids` (as [`param_ids`] listed them for the same architecture).
fn with_param_ids<M: Module>(model: M, ids: &[u64]) -> M {
    struct Assign<'a>(std::slice::Iter<'a, u64>);
    impl Assign<'_> {
        fn next<T: burn::module::ParameterValue>(&mut self, mut p: Param<T>) -> Param<T> {
            if let Some(&id) = self.0.next() {
                p.id = ParamId::from(id);
            }
            p
        }
    }
    impl ModuleMapper for Assign<'_> {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.next(p)
        }
        fn map_int<const D: usize>(&mut self, p: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
            self.next(p)
        }
        fn map_bool<const D: usize>(
            &mut self,
            p: Param<Tensor<D, Bool>>,
        ) -> Param<Tensor<D, Bool>> {
            self.next(p)
        }
    }
    model.map(&mut Assign(ids.iter()))
}

fn sync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Finishes or undoes a replacement that a kill interrupted, and removes what a killed save
/// left behind: afterwards `dir` holds the last complete checkpoint (or nothing, if none was
/// ever completed) and no staging folders remain.
pub fn recover(dir: &Path) -> std::io::Result<()> {
    let next = sibling(dir, ".next");
    let old = sibling(dir, ".old");
    if !dir.exists() {
        if next.join("progress.json").is_file() {
            // Killed between the two renames: the staged checkpoint is complete and newer.
            std::fs::rename(&next, dir)?;
        } else if old.exists() {
            std::fs::rename(&old, dir)?;
        }
    }
    for stale in [&next, &old] {
        if stale.is_dir() {
            std::fs::remove_dir_all(stale)?;
        } else if stale.exists() {
            std::fs::remove_file(stale)?;
        }
    }
    Ok(())
}

/// True when `dir` holds a complete checkpoint (after [`recover`]ing an interrupted save).
pub fn exists(dir: &Path) -> Result<bool, ExperimentError> {
    recover(dir).map_err(|e| ExperimentError::Checkpoint {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(dir.join("progress.json").is_file())
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
    recover(dir).map_err(|e| bad(dir, e.into()))?;
    let p = dir.join("progress.json");
    let text = std::fs::read_to_string(&p).map_err(|e| bad(&p, e.into()))?;
    let progress: Progress<R> = serde_json::from_str(&text).map_err(|e| bad(&p, e.into()))?;
    let mp = dir.join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&mp);
    model
        .load_from(&mut store)
        .map_err(|e| bad(&mp, e.to_string().into()))?;
    let ip = dir.join(PARAM_IDS);
    if ip.is_file() {
        let text = std::fs::read_to_string(&ip).map_err(|e| bad(&ip, e.into()))?;
        let ids: Vec<u64> = serde_json::from_str(&text).map_err(|e| bad(&ip, e.into()))?;
        let now = param_ids(model).len();
        if ids.len() != now {
            return Err(bad(
                &ip,
                format!("{} parameters there, the model has {now}", ids.len()).into(),
            ));
        }
        *model = with_param_ids(model.clone(), &ids);
    }
    let op = dir.join("optimizer.bpk");
    let optim = optim
        .load(&op)
        .map_err(|e| bad(&op, format!("{e:?}").into()))?;
    Ok((optim, progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::Linear;
    use burn::tensor::Device;
    use rand::SeedableRng;

    fn model(seed: u64) -> Linear {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        crate::models::init::linear(3, 2, &mut rng, &Device::flex())
    }

    fn weights(m: &Linear) -> Vec<f32> {
        common::to_vec(m.weight.val())
    }

    fn progress(epochs: usize) -> Progress<usize> {
        Progress {
            epochs_done: epochs,
            history: (1..=epochs).collect(),
            ..Progress::new()
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A save killed after any of its stages leaves one complete checkpoint, the previous or the
    /// new one, whose model and progress belong together, and nothing else once it is read.
    #[test]
    fn a_killed_save_leaves_one_complete_checkpoint() {
        for (stage, expect_new) in [(Stage::Staged, false), (Stage::OldMoved, true)] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("checkpoints").join("relu");
            let optim = crate::train::adam_torch_defaults().init();
            let (first, second) = (model(1), model(2));
            save(&dir, &first, &optim, &progress(1)).unwrap();
            save_until(&dir, &second, &optim, &progress(2), stage, false).unwrap();
            assert!(exists(&dir).unwrap(), "{stage:?}");
            let mut loaded = model(3);
            let (_, p): (_, Progress<usize>) = load(
                &dir,
                &mut loaded,
                crate::train::adam_torch_defaults().init(),
            )
            .unwrap();
            let saved = if expect_new { &second } else { &first };
            assert_eq!(
                param_ids(&loaded),
                param_ids(saved),
                "{stage:?}: the optimizer state is keyed by these ids"
            );
            let (want_epochs, want) = if expect_new {
                (2, &second)
            } else {
                (1, &first)
            };
            assert_eq!(p.epochs_done, want_epochs, "{stage:?}");
            assert_eq!(p.history.len(), want_epochs);
            assert_eq!(
                weights(&loaded),
                weights(want),
                "{stage:?}: model and progress disagree"
            );
            assert_eq!(names(dir.parent().unwrap()), ["relu"], "{stage:?}");
            assert_eq!(
                names(&dir),
                [
                    "model.safetensors",
                    "optimizer.bpk",
                    "param_ids.json",
                    "progress.json"
                ]
            );
            // The next save works as usual after the interrupted one.
            save(&dir, &second, &optim, &progress(3)).unwrap();
            let (_, p): (_, Progress<usize>) = load(
                &dir,
                &mut loaded,
                crate::train::adam_torch_defaults().init(),
            )
            .unwrap();
            assert_eq!(p.epochs_done, 3);
        }
    }

    /// A save killed before its staging folder was complete, with no earlier checkpoint: there
    /// is no checkpoint, and the partial files are removed.
    #[test]
    fn a_partial_first_save_is_no_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("relu");
        let next = sibling(&dir, ".next");
        std::fs::create_dir_all(&next).unwrap();
        std::fs::write(next.join("model.safetensors"), b"partial").unwrap();
        assert!(!exists(&dir).unwrap());
        assert!(!next.exists());
    }

    /// A write that fails in the middle of a save (a full disk, say) is an error naming the
    /// checkpoint, and the previous checkpoint stays readable and consistent.
    #[test]
    fn a_failed_save_keeps_the_previous_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("relu");
        let optim = crate::train::adam_torch_defaults().init();
        save(&dir, &model(1), &optim, &progress(1)).unwrap();
        for stage in [Stage::Staged, Stage::OldMoved] {
            let e = save_until(&dir, &model(2), &optim, &progress(2), stage, true)
                .expect_err("the injected failure");
            assert!(e.to_string().contains("relu"), "{e}");
            let mut loaded = model(3);
            let (_, p): (_, Progress<usize>) = load(
                &dir,
                &mut loaded,
                crate::train::adam_torch_defaults().init(),
            )
            .unwrap();
            // Failing after the new checkpoint was complete may keep either one, consistently.
            let want = if p.epochs_done == 1 {
                model(1)
            } else {
                model(2)
            };
            assert!(stage == Stage::OldMoved || p.epochs_done == 1, "{stage:?}");
            assert_eq!(weights(&loaded), weights(&want), "{stage:?}");
            assert_eq!(names(tmp.path()), ["relu"], "{stage:?}");
        }
    }
}
