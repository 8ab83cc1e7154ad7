//! CIFAR-10 with the paper code's MobileNet (paper §2.2.4, SPEC §2.5): relu, mish, swish, one AFU
//! for the whole network (the paper's text) and one AFU per block (the reference code); Adam,
//! augmentation (flip p = 0.4, rotation ±30°), top-1 and top-3 accuracy per epoch, checkpoints
//! and `--resume`. A GPU job at full size (100 epochs); `--limit-train/--epochs` for the CPU.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::activation::ActivationSpec;
use crate::afu::KernelChoice;
use crate::data::augment::AugmentConfig;
use crate::data::cifar::load_cifar10_dir;
use crate::data::dataset::Split;
use crate::experiments::common::{self, ExperimentError};
use crate::experiments::image::Presentation;
use crate::experiments::image::{self, ImageSummary, ImageTraining};
use crate::models::mobilenet::MobileNet;
use crate::models::mobilenet_v2::MobileNetV2;
use crate::train::adam_torch_defaults;
use crate::train::batches::ImageBatches;

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
    /// Seed of initialisation, shuffling, augmentation and dropout (the first when `seeds` > 1).
    pub seed: u64,
    /// Runs per variant, with seeds `seed .. seed + seeds`.
    #[serde(default = "common::one")]
    pub seeds: usize,
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
    /// Linear-to-nonlinear curriculum of every variant without its own (`variant@schedule`).
    #[serde(default)]
    pub curriculum: crate::train::curriculum::Curriculum,
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
            seeds: 1,
            limit_train: None,
            limit_test: None,
            augment: AugmentConfig::default(),
            kernel: KernelChoice::Auto,
            afu_start: common::AfuStart::default(),
            curriculum: Default::default(),
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
        common::between_one_and("epochs", self.epochs, common::MAX_STEPS)?;
        common::between_one_and("seeds", self.seeds, common::MAX_SEEDS)?;
        common::between_one_and("batch_size", self.batch_size, common::MAX_WIDTH)?;
        common::between_one_and("test_batch_size", self.test_batch_size, common::MAX_WIDTH)?;
        common::positive("lr", self.lr)?;
        common::limits(self.limit_train, self.limit_test)?;
        Ok(
            common::parse_image_variants(&self.variants, self.curriculum)?
                .into_iter()
                .map(|(_, spec, _)| spec)
                .collect(),
        )
    }
}

/// `summary.json` of `afu cifar10` (the image experiments' common summary).
pub type CifarSummary = ImageSummary;

/// Runs every variant for every seed and writes the run folder.
pub fn run(
    config: &CifarConfig,
    out: &Path,
    progress: bool,
    resume: bool,
) -> Result<CifarSummary, ExperimentError> {
    config.validate()?;
    let mut train = load_cifar10_dir(&config.data, Split::Train)?;
    let mut test = load_cifar10_dir(&config.data, Split::Test)?;
    if let Some(n) = config.limit_train {
        train = train.take(n);
    }
    if let Some(n) = config.limit_test {
        test = test.take(n);
    }
    image::check_not_empty(&config.data, train.len, test.len)?;
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
    let variants = common::parse_image_variants(&config.variants, config.curriculum)?;
    let seeds = image::seed_list(config.seed, config.seeds);
    let lr = |_epoch: usize| config.lr;
    let optimizer = || adam_torch_defaults().init();
    let training = ImageTraining {
        variants: &variants,
        seeds: &seeds,
        epochs: config.epochs,
        batch_size: config.batch_size,
        test_batch_size: config.test_batch_size,
        lr: &lr,
        optimizer: &optimizer,
        afu_start: &config.afu_start,
        kernel: config.kernel,
        device: &base_device,
        parallel: &parallel,
        record_inputs: false,
    };
    let train = ImageBatches::new(&train, norm, Some(config.augment), 10);
    let test = ImageBatches::new(&test, norm, None, 10);
    let presentation = Presentation {
        experiment: "cifar10",
        heading: format!(
            "# afu cifar10 — MobileNet with learned activations (paper §2.2.4)\n\nData: `{}` ({} train / {} test images); network {}; Adam lr {}, batch {}, {} epoch(s); augmentation: flip p={}, rotation ±{}°.\n\nPaper (100 epochs): Mish 86.3 % top-1, AFU 85.1 %.\n",
            config.data.display(),
            train.len(),
            test.len(),
            match config.model {
                CifarModel::MobilenetV1 => "MobileNet-v1 (reference code)",
                CifarModel::MobilenetV2 => "MobileNetV2 (paper text)",
            },
            config.lr,
            config.batch_size,
            config.epochs,
            config.augment.flip_probability,
            config.augment.max_rotation_degrees
        ),
        network: "CIFAR-10 MobileNet",
        reference: ("mish", |z| crate::afu::BaseActivation::Mish.value(z)),
        afu_figure_title: "learned AFUs vs mish (paper Fig. 7)",
        max_afu_curves: 6,
    };
    match config.model {
        CifarModel::MobilenetV1 => image::run(
            &training,
            &|spec, rng, device| Ok(MobileNet::new(spec, 10, rng, device)?),
            &train,
            &test,
            &presentation,
            out,
            progress,
            resume,
        ),
        CifarModel::MobilenetV2 => image::run(
            &training,
            &|spec, rng, device| Ok(MobileNetV2::new(spec, 10, rng, device)?),
            &train,
            &test,
            &presentation,
            out,
            progress,
            resume,
        ),
    }
}

/// Default output folder.
pub fn default_out() -> PathBuf {
    common::default_out_dir("cifar10")
}
