//! The one training loop of every image-classification experiment: epochs of shuffled
//! batches, a learning-rate schedule, optional data parallelism, a checkpoint after every epoch
//! (and on Ctrl-C, mid-epoch), `--resume`, a progress bar, evaluation and per-epoch records.
//!
//! An experiment is a configuration of this loop (data, model, optimiser, schedule,
//! augmentation) plus hooks ([`FitHook`]); the loop itself is never copied.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::InputStats;
use crate::experiments::common::{self, ExperimentError};
use crate::models::ImageClassifier;
use crate::train::batches::ImageBatches;
use crate::train::checkpoint::{self, Progress};
use crate::train::curriculum::Curriculum;

/// One epoch of one variant and seed (a `metrics.csv` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Variant.
    pub variant: String,
    /// Seed of the run.
    #[serde(default)]
    pub seed: u64,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Learning rate used.
    #[serde(default)]
    pub lr: f64,
    /// Mean training loss (negative log-likelihood).
    pub train_loss: f64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Top-1 test accuracy.
    #[serde(alias = "top1")]
    pub test_accuracy: f64,
    /// Top-3 test accuracy.
    #[serde(default, alias = "top3")]
    pub test_top3: f64,
    /// Seconds of training (without evaluation).
    pub epoch_seconds: f64,
}

/// The header of `metrics.csv` (one [`EpochRecord`] per row).
pub const METRICS_HEADER: &str =
    "variant,seed,epoch,lr,train_loss,test_loss,test_accuracy,test_top3,epoch_seconds";

impl EpochRecord {
    /// The record as a `metrics.csv` row (without the newline).
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{}",
            self.variant,
            self.seed,
            self.epoch,
            self.lr,
            self.train_loss,
            self.test_loss,
            self.test_accuracy,
            self.test_top3,
            self.epoch_seconds
        )
    }
}

/// Settings of one training run (one variant, one seed).
pub struct FitSettings<'a> {
    /// Variant name (records, progress bar, messages).
    pub variant: &'a str,
    /// Seed of the shuffling and of the augmentation draws.
    pub seed: u64,
    /// Epochs.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Test batch size.
    pub test_batch_size: usize,
    /// Learning rate of each epoch (0-based).
    pub lr: &'a dyn Fn(usize) -> f64,
    /// Where the checkpoint goes.
    pub checkpoint: PathBuf,
    /// The run folder (named in the message of an interruption).
    pub run_dir: &'a Path,
    /// Continue from the checkpoint when it exists.
    pub resume: bool,
    /// Draw a progress bar and print a line per epoch.
    pub progress: bool,
    /// Data-parallel autodiff devices (fewer than two: the model's device alone).
    pub parallel: &'a [Device],
    /// Linear-to-nonlinear schedule of the activation slots (must end within the run).
    pub curriculum: Curriculum,
}

/// Callbacks into the loop (the experiment's additions to a plain training run).
pub trait FitHook {
    /// Whether the training batch `batch` of epoch `epoch` (0-based, of `epochs`) should report
    /// the inputs of the model's activation slots to [`tap`](Self::tap).
    fn wants_taps(&self, _epoch: usize, _epochs: usize, _batch: usize) -> bool {
        false
    }

    /// The input of activation slot `slot` in a tapped batch.
    fn tap(&mut self, _slot: usize, _input: &Tensor<1>) {}
}

/// A hook that does nothing.
pub struct NoHook;

impl FitHook for NoHook {}

/// Samples of what each activation slot sees in the last epoch (every 8th batch, every 7th
/// value): the input histograms that `afu inspect` draws.
pub struct ActivationInputs {
    /// Values per slot.
    pub values: Vec<Vec<f32>>,
    enabled: bool,
}

impl ActivationInputs {
    /// Collects for `slots` activation slots; records nothing when `enabled` is false (a model
    /// without learned activations has nothing to inspect).
    pub fn new(slots: usize, enabled: bool) -> Self {
        ActivationInputs {
            values: vec![Vec::new(); slots],
            enabled,
        }
    }
}

impl FitHook for ActivationInputs {
    fn wants_taps(&self, epoch: usize, epochs: usize, batch: usize) -> bool {
        self.enabled && epoch + 1 == epochs && batch.is_multiple_of(8)
    }

    fn tap(&mut self, slot: usize, input: &Tensor<1>) {
        if let Some(v) = self.values.get_mut(slot) {
            v.extend(common::to_vec(input.clone().detach()).iter().step_by(7));
        }
    }
}

/// Where a run stopped because its training loss was not finite (`summary.json`'s
/// `stopped_on_non_finite_loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonFiniteStop {
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Epoch (1-based) of the step.
    pub epoch: usize,
    /// Step (1-based batch) in that epoch.
    pub step: usize,
    /// The loss of that step (NaN or ±infinity; JSON holds it as text).
    pub loss: String,
}

impl std::fmt::Display for NonFiniteStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} seed {}: the training loss is {} at epoch {}, step {}",
            self.variant, self.seed, self.loss, self.epoch, self.step
        )
    }
}

/// What a finished run returns.
pub struct Fitted<M> {
    /// The trained model (with a [`stopped`](Self::stopped) run, the one before the step whose
    /// loss was not finite).
    pub model: M,
    /// Every epoch, those before a resume included.
    pub history: Vec<EpochRecord>,
    /// Set when training stopped on a non-finite loss: that step was not applied, the
    /// checkpoint is the last one written before it, and `history` ends with the last complete
    /// epoch.
    pub stopped: Option<NonFiniteStop>,
}

/// The seed of the random draws (dropout masks) of batch `batch` of `epoch`: a function of the
/// run's seed and the position alone, so that a run resumed in the middle of an epoch draws
/// what the uninterrupted run drew.
pub fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for v in [epoch as u64, batch as u64] {
        h = (h ^ v).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    h
}

/// The shuffled order of the training images in `epoch` for `seed` (the same rule for every
/// experiment).
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(1000).wrapping_add(epoch as u64),
    ));
    order
}

/// The environment variable with which tests interrupt a run at an exact point:
/// `AFU_TEST_INTERRUPT_AFTER_STEP=K` acts as a Ctrl-C right after the run's `K`-th training step
/// (counted from the start of training, 1-based), so that resuming mid-epoch is tested without
/// depending on timing. Never set in normal use.
pub const INTERRUPT_AFTER_STEP_ENV: &str = "AFU_TEST_INTERRUPT_AFTER_STEP";

fn test_interrupt_after() -> Option<usize> {
    std::env::var(INTERRUPT_AFTER_STEP_ENV)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Mean negative log-likelihood of log-probabilities `[b, k]` against one-hot targets.
pub fn nll(log_probs: Tensor<2>, onehot: Tensor<2>) -> Tensor<1> {
    log_probs.mul(onehot).sum_dim(1).neg().mean()
}

/// Trains `model` with `optim` on `train`, evaluating on `test` after every epoch.
///
/// Writes the checkpoint after every epoch; on Ctrl-C writes one of exactly where training
/// stopped and returns [`ExperimentError::Interrupted`].
pub fn fit<M: ImageClassifier>(
    mut model: M,
    mut optim: ModuleOptimizer,
    train: &ImageBatches<'_>,
    test: &ImageBatches<'_>,
    s: &FitSettings<'_>,
    hook: &mut dyn FitHook,
    device: &Device,
) -> Result<Fitted<M>, ExperimentError> {
    let name = s.variant;
    let mut state = Progress::<EpochRecord>::new();
    if s.resume && checkpoint::exists(&s.checkpoint)? {
        let (o, p) = checkpoint::load(&s.checkpoint, &mut model, optim)?;
        optim = o;
        state = p;
    }
    let steps_per_epoch = train.len().div_ceil(s.batch_size.max(1));
    let curriculum_steps = s.curriculum.total_steps(steps_per_epoch);
    if curriculum_steps > steps_per_epoch * s.epochs {
        return Err(ExperimentError::Config {
            field: "curriculum",
            message: format!(
                "{name}: curriculum {} lasts {curriculum_steps} steps, longer than the run's {} \
                 ({} epochs of {steps_per_epoch}); shorten it so the network ends with its activations",
                s.curriculum,
                steps_per_epoch * s.epochs,
                s.epochs
            ),
        });
    }
    let slots = model.activations().slots.len();
    let interrupt_after = test_interrupt_after();
    for epoch in state.epochs_done..s.epochs {
        let lr = (s.lr)(epoch);
        let order = epoch_order(train.len(), s.seed, epoch);
        let batches: Vec<&[usize]> = order.chunks(s.batch_size).collect();
        let bar = common::progress_bar(
            batches.len() as u64,
            &format!("{name} seed {} epoch {}/{}", s.seed, epoch + 1, s.epochs),
            s.progress,
        );
        let start = Instant::now();
        // Continue an interrupted epoch where it stopped.
        let first_batch = std::mem::take(&mut state.batches_done);
        let mut loss_sum = std::mem::take(&mut state.partial_loss_sum);
        let earlier_seconds = std::mem::take(&mut state.partial_seconds);
        bar.inc(first_batch as u64);
        for (bi, idx) in batches.iter().enumerate().skip(first_batch) {
            if !s.curriculum.is_none() {
                model.activations_mut().mix =
                    s.curriculum
                        .alphas(slots, epoch * steps_per_epoch + bi, steps_per_epoch);
            }
            let draws = batch_seed(s.seed, epoch, bi);
            device.seed(draws);
            crate::ops::seed_dropout(draws);
            let b = train.batch(idx, Some((s.seed, epoch)), device);
            let tapping = hook.wants_taps(epoch, s.epochs, bi);
            let hook_cell = std::cell::RefCell::new(&mut *hook);
            let step_loss = |slot: usize, m: &M, x: Tensor<4>, y: Tensor<2>| {
                let logp = if tapping && slot == 0 {
                    m.log_probs_with_taps(x, &mut |k, t| hook_cell.borrow_mut().tap(k, t))
                } else {
                    m.log_probs(x)
                };
                nll(logp, y)
            };
            let (grads, l) = if s.parallel.len() > 1 {
                // Only device 0 (this thread) taps; the other workers compute the plain loss.
                let plain = |_: usize, m: &M, x: Tensor<4>, y: Tensor<2>| nll(m.log_probs(x), y);
                let step = crate::train::parallel::data_parallel_grads(
                    &model, s.parallel, b.images, b.targets, &step_loss, &plain,
                )
                .map_err(|error| ExperimentError::Device {
                    error,
                    what: format!(
                        "{name}, seed {}, epoch {}, batch {}",
                        s.seed,
                        epoch + 1,
                        bi + 1
                    ),
                })?;
                (step.grads, step.loss)
            } else {
                let loss = step_loss(0, &model, b.images, b.targets);
                let l = loss.clone().into_scalar::<f32>() as f64;
                if !l.is_finite() {
                    // No gradients of a non-finite loss are worth computing.
                    (GradientsParams::new(), l)
                } else {
                    (GradientsParams::from_grads(loss.backward(), &model), l)
                }
            };
            if !l.is_finite() {
                // Stop before the step: the model stays the last finite one, and the
                // checkpoint on disk the last one written (nothing of this epoch is saved).
                bar.finish_and_clear();
                return Ok(Fitted {
                    model,
                    history: state.history,
                    stopped: Some(NonFiniteStop {
                        variant: name.to_string(),
                        seed: s.seed,
                        epoch: epoch + 1,
                        step: bi + 1,
                        loss: l.to_string(),
                    }),
                });
            }
            loss_sum += l * idx.len() as f64;
            model = optim.step(lr, model, grads);
            bar.inc(1);
            if interrupt_after == Some(epoch * steps_per_epoch + bi + 1) {
                crate::interrupt::request();
            }
            if crate::interrupt::requested() && bi + 1 < batches.len() {
                bar.finish_and_clear();
                state.batches_done = bi + 1;
                state.partial_loss_sum = loss_sum;
                state.partial_seconds = earlier_seconds + start.elapsed().as_secs_f64();
                checkpoint::save(&s.checkpoint, &model, &optim, &state)?;
                return Err(ExperimentError::Interrupted {
                    checkpoint: s.checkpoint.clone(),
                    what: format!(
                        "{name}, seed {}, epoch {}, after batch {} of {}",
                        s.seed,
                        epoch + 1,
                        bi + 1,
                        batches.len()
                    ),
                    out: s.run_dir.to_path_buf(),
                });
            }
        }
        let epoch_seconds = earlier_seconds + start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if epoch == 0 && s.epochs > 1 && model.activations().has_pwlu() {
            // PWLU's second phase: bounds from the statistics of what its slots see now.
            let stats = slot_input_stats(&model.valid(), train, s, &device.clone().inner());
            let acts = model
                .activations()
                .clone()
                .reinit_pwlu(&stats, device)
                .map_err(|e| ExperimentError::Config {
                    field: "pwlu",
                    message: format!("{name}, seed {}: re-initialising PWLU: {e}", s.seed),
                })?;
            model = model.with_activations(acts);
            if s.progress {
                crate::note!(
                    "{name} seed {}: PWLU bounds re-initialised from the inputs of {} training images",
                    s.seed,
                    train.len().min(PWLU_STATS_IMAGES)
                );
            }
        }
        if !s.curriculum.is_none() {
            // Evaluate (and checkpoint) the network the next step would train: after the last
            // step of the curriculum, the activations alone.
            model.activations_mut().mix =
                s.curriculum
                    .alphas(slots, (epoch + 1) * steps_per_epoch, steps_per_epoch);
        }
        let eval = evaluate(
            &model.valid(),
            test,
            s.test_batch_size,
            &device.clone().inner(),
        );
        let rec = EpochRecord {
            variant: name.to_string(),
            seed: s.seed,
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / train.len().max(1) as f64,
            test_loss: eval.loss,
            test_accuracy: eval.top1,
            test_top3: eval.top3,
            epoch_seconds,
        };
        if s.progress {
            crate::note!(
                "{name} seed {} epoch {}: train loss {:.4}, test loss {:.4}, test accuracy {:.4} ({:.1} s)",
                rec.seed,
                rec.epoch,
                rec.train_loss,
                rec.test_loss,
                rec.test_accuracy,
                rec.epoch_seconds
            );
        }
        state.history.push(rec);
        state.epochs_done = epoch + 1;
        checkpoint::save(&s.checkpoint, &model, &optim, &state)?;
    }
    Ok(Fitted {
        model,
        history: state.history,
        stopped: None,
    })
}

/// Training images whose activation inputs set PWLU's bounds after the first epoch.
pub const PWLU_STATS_IMAGES: usize = 2048;

/// The input statistics of every activation slot of `model` over the first
/// [`PWLU_STATS_IMAGES`] images of the run's first-epoch order (no augmentation, no dropout):
/// a function of the model, the data and the seed alone, so a resumed run computes the same.
fn slot_input_stats<M: ImageClassifier>(
    model: &M,
    train: &ImageBatches<'_>,
    s: &FitSettings<'_>,
    device: &Device,
) -> Vec<InputStats> {
    let mut stats = vec![InputStats::default(); model.activations().slots.len()];
    let order = epoch_order(train.len(), s.seed, 0);
    let count = train.len().min(PWLU_STATS_IMAGES);
    for idx in order[..count].chunks(s.test_batch_size.max(1)) {
        let b = train.batch(idx, None, device);
        model.log_probs_with_taps(b.images, &mut |slot, t| {
            if let Some(st) = stats.get_mut(slot) {
                st.add(&common::to_vec(t.clone()));
            }
        });
    }
    stats
}

/// Test loss and accuracies of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean negative log-likelihood.
    pub loss: f64,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-3 accuracy.
    pub top3: f64,
}

/// Mean loss, top-1 and top-3 accuracy of `model` on `data`. A class's rank counts the classes
/// scored higher, and those scored equal with a lower index (top-1 is the first arg-max).
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &ImageBatches<'_>,
    batch: usize,
    device: &Device,
) -> Evaluation {
    evaluate_first(model, data, data.len(), batch, device)
}

/// As [`evaluate`], on the first `count` images of `data` only.
pub fn evaluate_first<M: ImageClassifier>(
    model: &M,
    data: &ImageBatches<'_>,
    count: usize,
    batch: usize,
    device: &Device,
) -> Evaluation {
    let (mut loss, mut top1, mut top3) = (0.0, 0usize, 0usize);
    let k = data.classes();
    let order: Vec<usize> = (0..count.min(data.len())).collect();
    for idx in order.chunks(batch.max(1)) {
        let b = data.batch(idx, None, device);
        let logp = model.log_probs(b.images);
        loss += nll(logp.clone(), b.targets).into_scalar::<f32>() as f64 * idx.len() as f64;
        let scores = common::to_vec(logp);
        for (row, &label) in scores.chunks(k).zip(&b.labels) {
            let l = label as usize;
            if l >= k {
                continue;
            }
            let rank = row
                .iter()
                .enumerate()
                .filter(|&(j, &s)| s > row[l] || (s == row[l] && j < l))
                .count();
            top1 += usize::from(rank == 0);
            top3 += usize::from(rank < 3);
        }
    }
    let n = order.len().max(1) as f64;
    Evaluation {
        loss: loss / n,
        top1: top1 as f64 / n,
        top3: top3 as f64 / n,
    }
}
