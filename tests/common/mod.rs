//! Helpers shared by the CLI test files (each test file includes this module).

use std::path::Path;

use afu_cli::data::cifar::write_cifar_batch;
use afu_cli::data::dataset::ImageDataset;
use afu_cli::data::idx::{write_idx_images, write_idx_labels};

/// Writes a tiny MNIST-format data set whose class is drawn as a bright horizontal bar at row
/// `3 + 2·label`, so that it is learnable.
// Not every test file that includes this module writes MNIST files.
#[allow(dead_code)]
pub fn write_fixture(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    let make = |n: usize, offset: usize| {
        let mut images = vec![0u8; n * 784];
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = ((i + offset) * 7 % 10) as u8;
            let row = 3 + 2 * label as usize;
            for c in 4..24 {
                images[i * 784 + row * 28 + c] = 200 + ((i + c) % 50) as u8;
            }
            labels.push(label);
        }
        (images, labels)
    };
    let (ti, tl) = make(n_train, 0);
    let (si, sl) = make(n_test, 3);
    let gz = if gzip { ".gz" } else { "" };
    write_idx_images(
        &dir.join(format!("train-images-idx3-ubyte{gz}")),
        28,
        28,
        &ti,
        gzip,
    )
    .unwrap();
    write_idx_labels(&dir.join(format!("train-labels-idx1-ubyte{gz}")), &tl, gzip).unwrap();
    write_idx_images(
        &dir.join(format!("t10k-images-idx3-ubyte{gz}")),
        28,
        28,
        &si,
        gzip,
    )
    .unwrap();
    write_idx_labels(&dir.join(format!("t10k-labels-idx1-ubyte{gz}")), &sl, gzip).unwrap();
}

/// Writes a tiny CIFAR-10 binary data set (`data_batch_1..5.bin`, `test_batch.bin`, `per_batch`
/// images each) whose class is the bright channel plus a bar at a class-dependent row.
// Not every test file that includes this module writes CIFAR files.
#[allow(dead_code)]
pub fn write_cifar_fixture(dir: &Path, per_batch: usize) {
    let make = |n: usize, offset: usize| {
        let mut images = vec![0u8; n * 3072];
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = ((i + offset) % 10) as u8;
            // Class = which channel is bright, plus a bar at a class-dependent row.
            for p in 0..1024 {
                images[i * 3072 + (label as usize % 3) * 1024 + p] = 120 + ((p + i) % 100) as u8;
            }
            for x in 0..32 {
                images[i * 3072 + (3 * label as usize) * 32 + x] = 255;
            }
            labels.push(label);
        }
        ImageDataset {
            images,
            labels,
            len: n,
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        }
    };
    std::fs::create_dir_all(dir).unwrap();
    for b in 1..=5 {
        write_cifar_batch(
            &dir.join(format!("data_batch_{b}.bin")),
            &make(per_batch, b * 3),
        )
        .unwrap();
    }
    write_cifar_batch(&dir.join("test_batch.bin"), &make(per_batch, 1)).unwrap();
}
