//! Helpers shared by the CLI test files (each test file includes this module).

use std::path::Path;

use afu_cli::data::idx::{write_idx_images, write_idx_labels};

/// Writes a tiny MNIST-format data set whose class is drawn as a bright horizontal bar at row
/// `3 + 2·label`, so that it is learnable.
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
