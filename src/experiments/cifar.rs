//! CIFAR-10 with the paper code's MobileNet (paper §2.2.4, SPEC §2.5): relu, mish, swish, one AFU
//! for the whole network (the paper's text) and one AFU per block (the reference code); Adam,
//! augmentation (flip p = 0.4, rotation ±30°), top-1 and top-3 accuracy per epoch, checkpoints
//! and `--resume`. A GPU job at full size (100 epochs); `--limit-train/--epochs` for the CPU.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::ActivationSpec;
use crate::afu::KernelChoice;
use crate::afu::file::{AfuFile, NamedAfu};
use crate::data::augment::{self, AugmentConfig};
use crate::data::cifar::load_cifar10_dir;
use crate::data::dataset::{ImageDataset, Split};
use crate::experiments::common::{self, ExperimentError};
use crate::models::ImageClassifier;
use crate::models::mobilenet::MobileNet;
use crate::models::mobilenet_v2::MobileNetV2;
use crate::report::plot::{self, LinePanel, Series};
use crate::train::adam_torch_defaults;
use crate::train::checkpoint;

/// Settings of `afu cifar10`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CifarConfig {
    /// Folder with `data_batch_1..5.bin` and `test_batch.bin` (or their `cifar-10-batches-bin/`).
    pub data: PathBuf,
    /// Activations to compare.
    pub variants: Vec<String>,
    /// Epochs.
    pub epochs: usize,
    /// Batch size (paper 100; reference code 128).
    pub batch_size: usize,
    /// Test batch size.
    pub test_batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    pub limit_test: Option<usize>,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// AFU implementation.
    pub kernel: KernelChoice,
    /// How the AFUs start.
    #[serde(default)]
    pub afu_start: common::AfuStart,
    /// Where to train.
    pub device: crate::device::DeviceChoice,
    /// Data parallelism: every step is split over these devices (the first is where the model
    /// and optimizer live; empty = `device` alone). See [`crate::train::parallel`].
    #[serde(default)]
    pub devices: Vec<crate::device::DeviceChoice>,
    /// Which network.
    #[serde(default)]
    pub model: CifarModel,
}

/// The CIFAR-10 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CifarModel {
    /// The paper code's MobileNet-v1-style stack (one AFU per block).
    #[default]
    MobilenetV1,
    /// MobileNetV2 (inverted residuals), which the paper's text names.
    MobilenetV2,
}

impl CifarConfig {
    /// The paper's settings.
    pub fn paper(data: PathBuf) -> Self {
        CifarConfig {
            data,
            variants: ["relu", "mish", "swish", "afu-relu-8", "afu-relu-8-layer"]
                .map(String::from)
                .to_vec(),
            epochs: 100,
            batch_size: 100,
            test_batch_size: 500,
            lr: 1e-3,
            seed: 1,
            limit_train: None,
            limit_test: None,
            augment: AugmentConfig::default(),
            kernel: KernelChoice::Auto,
            afu_start: common::AfuStart::default(),
            device: crate::device::DeviceChoice::Cpu,
            devices: Vec::new(),
            model: CifarModel::MobilenetV1,
        }
    }

    /// A smoke test: two variants, one epoch on 200 training and 100 test images.
    pub fn quick(data: PathBuf) -> Self {
        CifarConfig {
            variants: ["relu", "afu-relu-8-layer"].map(String::from).to_vec(),
            epochs: 1,
            batch_size: 50,
            limit_train: Some(200),
            limit_test: Some(100),
            ..Self::paper(data)
        }
    }

    /// Parses and checks every field (not the data).
    pub fn validate(&self) -> Result<Vec<ActivationSpec>, ExperimentError> {
        common::at_least_one("epochs", self.epochs)?;
        common::at_least_one("batch_size", self.batch_size)?;
        common::at_least_one("test_batch_size", self.test_batch_size)?;
        common::positive("lr", self.lr)?;
        common::limits(self.limit_train, self.limit_test)?;
        common::parse_variants(&self.variants)
    }
}

/// One epoch of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CifarEpoch {
    /// Variant.
    pub variant: String,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training cross-entropy.
    pub train_loss: f64,
    /// Mean test cross-entropy.
    pub test_loss: f64,
    /// Top-1 test accuracy.
    pub top1: f64,
    /// Top-3 test accuracy.
    pub top3: f64,
    /// Training seconds.
    pub epoch_seconds: f64,
}

/// Per-variant result.
#[derive(Debug, Clone, Serialize)]
pub struct CifarVariant {
    /// Variant.
    pub name: String,
    /// Final top-1.
    pub test_accuracy: f64,
    /// Final top-3.
    pub top3_accuracy: f64,
    /// Best top-1.
    pub best_test_accuracy: f64,
    /// Mean training seconds per epoch.
    pub epoch_seconds_mean: f64,
    /// Epochs run.
    pub epochs: usize,
}

/// `summary.json` of `afu cifar10`.
#[derive(Debug, Clone, Serialize)]
pub struct CifarSummary {
    /// `"cifar10"`.
    pub experiment: String,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Per variant.
    pub variants: Vec<CifarVariant>,
    /// Every epoch.
    pub epochs: Vec<CifarEpoch>,
}

fn one_hot(labels: &[u8], classes: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; labels.len() * classes];
    for (k, &l) in labels.iter().enumerate() {
        v[k * classes + l as usize] = 1.0;
    }
    v
}

fn batch_tensors(
    data: &ImageDataset,
    idx: &[usize],
    aug: Option<(&AugmentConfig, u64, u64)>,
    norm: (f32, f32),
    device: &Device,
) -> (Tensor<4>, Tensor<2>, Vec<u8>) {
    let x = augment::batch(data, idx, aug, norm);
    let labels: Vec<u8> = idx.iter().map(|&i| data.label(i)).collect();
    (
        Tensor::from_data(
            TensorData::new(x, [idx.len(), data.channels, data.height, data.width]),
            device,
        ),
        Tensor::from_data(
            TensorData::new(one_hot(&labels, 10), [idx.len(), 10]),
            device,
        ),
        labels,
    )
}

fn cross_entropy(logits: Tensor<2>, onehot: Tensor<2>) -> Tensor<1> {
    log_softmax(logits, 1).mul(onehot).sum_dim(1).neg().mean()
}

/// Runs every variant and writes the run folder.
pub fn run(
    config: &CifarConfig,
    out: &Path,
    progress: bool,
    resume: bool,
) -> Result<CifarSummary, ExperimentError> {
    let specs = config.validate()?;
    let data_err = |e: crate::data::error::DataError| ExperimentError::Config {
        field: "data",
        message: e.to_string(),
    };
    let mut train = load_cifar10_dir(&config.data, Split::Train).map_err(data_err)?;
    let mut test = load_cifar10_dir(&config.data, Split::Test).map_err(data_err)?;
    if let Some(n) = config.limit_train {
        train = train.take(n);
    }
    if let Some(n) = config.limit_test {
        test = test.take(n);
    }
    common::write_toml(
        &out.join("config.toml"),
        &crate::experiments::RunConfig::Cifar10(config.clone()),
    )?;
    let norm = (config.augment.mean, config.augment.std);
    let base_device = config
        .device
        .device()
        .map_err(|e| ExperimentError::Config {
            field: "device",
            message: e.to_string(),
        })?;
    let parallel = common::parallel_devices(&config.devices)?;
    let mut history = Vec::new();
    let mut afus = Vec::new();
    let mut panels = Vec::new();
    for (name, spec) in config.variants.iter().zip(&specs) {
        let device = base_device.clone().autodiff();
        device.seed(config.seed);
        crate::ops::seed_dropout(config.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let ctx = VariantContext {
            config,
            name,
            train: &train,
            test: &test,
            norm,
            out,
            progress,
            resume,
            base_device: &base_device,
            parallel: &parallel,
        };
        let (records, learned) = match config.model {
            CifarModel::MobilenetV1 => train_variant(
                MobileNet::new(spec, 10, &mut rng, &device)?,
                &ctx,
                &mut rng,
                &device,
            )?,
            CifarModel::MobilenetV2 => train_variant(
                MobileNetV2::new(spec, 10, &mut rng, &device)?,
                &ctx,
                &mut rng,
                &device,
            )?,
        };
        if !learned.is_empty() {
            let mut series: Vec<Series> = learned
                .iter()
                .take(6)
                .map(|(slot, p)| Series {
                    label: slot.clone(),
                    points: common::afu_curve(p, 0, -5.0, 5.0, 201),
                    dashed: false,
                })
                .collect();
            series.push(Series {
                label: "mish".into(),
                points: (0..=200)
                    .map(|i| {
                        let z = -5.0 + 0.05 * i as f64;
                        (z, crate::afu::BaseActivation::Mish.value(z))
                    })
                    .collect(),
                dashed: true,
            });
            panels.push(LinePanel {
                title: name.clone(),
                series,
            });
            for (slot, p) in &learned {
                afus.push(NamedAfu {
                    name: format!("{name}/seed{}/{slot}", config.seed),
                    params: p.clone(),
                });
            }
        }
        history.extend(records);
    }
    AfuFile::new("cifar10", afus).save(&out.join("afu.json"))?;
    let mut csv = String::from("variant,epoch,train_loss,test_loss,top1,top3,epoch_seconds\n");
    for r in &history {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.variant, r.epoch, r.train_loss, r.test_loss, r.top1, r.top3, r.epoch_seconds
        ));
    }
    common::write_text(&out.join("metrics.csv"), &csv)?;
    let fig = out.join("figures");
    let mut variants = Vec::new();
    let mut acc_series = Vec::new();
    let mut loss_series = Vec::new();
    for name in &config.variants {
        let rows: Vec<&CifarEpoch> = history.iter().filter(|r| &r.variant == name).collect();
        acc_series.push(Series {
            label: name.clone(),
            points: rows.iter().map(|r| (r.epoch as f64, r.top1)).collect(),
            dashed: false,
        });
        loss_series.push(Series {
            label: format!("{name} test"),
            points: rows.iter().map(|r| (r.epoch as f64, r.test_loss)).collect(),
            dashed: false,
        });
        if let Some(last) = rows.last() {
            variants.push(CifarVariant {
                name: name.clone(),
                test_accuracy: last.top1,
                top3_accuracy: last.top3,
                best_test_accuracy: rows.iter().map(|r| r.top1).fold(0.0, f64::max),
                epoch_seconds_mean: rows.iter().map(|r| r.epoch_seconds).sum::<f64>()
                    / rows.len() as f64,
                epochs: rows.len(),
            });
        }
    }
    plot::line_plot(
        &fig.join("accuracy.svg"),
        "CIFAR-10 MobileNet: top-1 test accuracy",
        "epoch",
        "accuracy",
        &acc_series,
        false,
    )?;
    plot::line_plot(
        &fig.join("loss.svg"),
        "CIFAR-10 MobileNet: test loss",
        "epoch",
        "cross-entropy",
        &loss_series,
        false,
    )?;
    if !panels.is_empty() {
        plot::line_panels(
            &fig.join("afus.svg"),
            "learned AFUs vs mish (paper Fig. 7)",
            "z",
            "g(z)",
            &panels,
            panels.len().min(2),
        )?;
    }
    let mut md = format!(
        "# afu cifar10 — MobileNet with learned activations (paper §2.2.4)\n\nData: `{}` ({} train / {} test images); Adam lr {}, batch {}, {} epoch(s); augmentation: flip p={}, rotation ±{}°.\n\nPaper (100 epochs): Mish 86.3 % top-1, AFU 85.1 %.\n\n| variant | top-1 | top-3 | best top-1 | s/epoch |\n|---|---:|---:|---:|---:|\n",
        config.data.display(),
        train.len,
        test.len,
        config.lr,
        config.batch_size,
        config.epochs,
        config.augment.flip_probability,
        config.augment.max_rotation_degrees
    );
    for v in &variants {
        md.push_str(&format!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.1} |\n",
            v.name, v.test_accuracy, v.top3_accuracy, v.best_test_accuracy, v.epoch_seconds_mean
        ));
    }
    md.push_str("\nFigures: `figures/accuracy.svg`, `figures/loss.svg`, `figures/afus.svg`.\n");
    common::write_text(&out.join("summary.md"), &md)?;
    let summary = CifarSummary {
        experiment: "cifar10".into(),
        train_images: train.len,
        test_images: test.len,
        variants,
        epochs: history,
    };
    common::write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// What one variant's training needs besides its model.
struct VariantContext<'a> {
    config: &'a CifarConfig,
    name: &'a str,
    train: &'a ImageDataset,
    test: &'a ImageDataset,
    norm: (f32, f32),
    out: &'a Path,
    progress: bool,
    resume: bool,
    base_device: &'a Device,
    /// Data-parallel devices (autodiff; empty or one = no data parallelism).
    parallel: &'a [Device],
}

/// Trains one variant (continuing from its checkpoint when resuming); returns its epochs and
/// learned AFUs.
#[allow(clippy::type_complexity)]
fn train_variant<M: ImageClassifier>(
    model: M,
    ctx: &VariantContext<'_>,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<(Vec<CifarEpoch>, Vec<(String, crate::afu::AfuParams)>), ExperimentError> {
    let config = ctx.config;
    let name = ctx.name;
    let acts = config
        .afu_start
        .apply(model.activations().clone(), rng, device)?
        .with_kernel(config.kernel);
    let mut model = model.with_activations(acts);
    let mut optim = adam_torch_defaults().init();
    let ckpt = ctx.out.join("checkpoints").join(name);
    let mut state = checkpoint::Progress::<CifarEpoch>::new();
    if ctx.resume && ckpt.join("progress.json").exists() {
        let (o, p) = checkpoint::load(&ckpt, &mut model, optim)?;
        optim = o;
        state = p;
    }
    for epoch in state.epochs_done..config.epochs {
        let mut order: Vec<usize> = (0..ctx.train.len).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            config.seed.wrapping_mul(7919).wrapping_add(epoch as u64),
        ));
        let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
        let bar = common::progress_bar(
            batches.len() as u64,
            &format!("{name} epoch {}/{}", epoch + 1, config.epochs),
            ctx.progress,
        );
        let start = Instant::now();
        // Continue an interrupted epoch where it stopped.
        let first_batch = std::mem::take(&mut state.batches_done);
        let mut loss_sum = std::mem::take(&mut state.partial_loss_sum);
        let earlier_seconds = std::mem::take(&mut state.partial_seconds);
        bar.inc(first_batch as u64);
        for (bi, idx) in batches.iter().enumerate().skip(first_batch) {
            let (x, y, _) = batch_tensors(
                ctx.train,
                idx,
                Some((&config.augment, config.seed, epoch as u64)),
                ctx.norm,
                device,
            );
            let grads = if ctx.parallel.len() > 1 {
                let (grads, l) = crate::train::parallel::data_parallel_grads(
                    &model,
                    ctx.parallel,
                    x,
                    y,
                    &|_, m: &M, x, y| cross_entropy(m.logits(x), y),
                );
                loss_sum += l * idx.len() as f64;
                grads
            } else {
                let loss = cross_entropy(model.logits(x), y);
                loss_sum += loss.clone().into_scalar::<f32>() as f64 * idx.len() as f64;
                GradientsParams::from_grads(loss.backward(), &model)
            };
            model = optim.step(config.lr, model, grads);
            bar.inc(1);
            if crate::interrupt::requested() && bi + 1 < batches.len() {
                bar.finish_and_clear();
                state.batches_done = bi + 1;
                state.partial_loss_sum = loss_sum;
                state.partial_seconds = earlier_seconds + start.elapsed().as_secs_f64();
                checkpoint::save(&ckpt, &model, &optim, &state)?;
                return Err(ExperimentError::Interrupted {
                    checkpoint: ckpt.clone(),
                    what: format!(
                        "{name}, epoch {}, after batch {} of {}",
                        epoch + 1,
                        bi + 1,
                        batches.len()
                    ),
                    out: ctx.out.to_path_buf(),
                });
            }
        }
        let epoch_seconds = earlier_seconds + start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let (test_loss, top1, top3) = evaluate(
            &model.valid(),
            ctx.test,
            config.test_batch_size,
            ctx.norm,
            ctx.base_device,
        );
        let rec = CifarEpoch {
            variant: name.to_string(),
            epoch: epoch + 1,
            train_loss: loss_sum / ctx.train.len.max(1) as f64,
            test_loss,
            top1,
            top3,
            epoch_seconds,
        };
        if ctx.progress {
            eprintln!(
                "{name} epoch {}: train loss {:.4}, test loss {:.4}, top-1 {:.4}, top-3 {:.4} ({:.1} s)",
                rec.epoch, rec.train_loss, rec.test_loss, rec.top1, rec.top3, rec.epoch_seconds
            );
        }
        state.history.push(rec);
        state.epochs_done = epoch + 1;
        checkpoint::save(&ckpt, &model, &optim, &state)?;
    }
    Ok((state.history, model.activations().named()))
}

/// Mean cross-entropy, top-1 and top-3 accuracy.
fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &ImageDataset,
    batch: usize,
    norm: (f32, f32),
    device: &Device,
) -> (f64, f64, f64) {
    let (mut loss, mut top1, mut top3) = (0.0, 0usize, 0usize);
    let order: Vec<usize> = (0..data.len).collect();
    for idx in order.chunks(batch) {
        let (x, y, labels) = batch_tensors(data, idx, None, norm, device);
        let logits = model.logits(x);
        loss += cross_entropy(logits.clone(), y).into_scalar::<f32>() as f64 * idx.len() as f64;
        let v = common::to_vec(logits);
        for (k, &l) in labels.iter().enumerate() {
            let row = &v[k * 10..(k + 1) * 10];
            let better = row.iter().filter(|&&s| s > row[l as usize]).count();
            top1 += usize::from(better == 0);
            top3 += usize::from(better < 3);
        }
    }
    let n = data.len.max(1) as f64;
    (loss / n, top1 as f64 / n, top3 as f64 / n)
}

/// Default output folder.
pub fn default_out() -> PathBuf {
    common::default_out_dir("cifar10")
}
