//! Image-classification data in its real file formats: MNIST / Fashion-MNIST (IDX, raw or
//! gzip, and CSV) and CIFAR-10 (binary batches), loaded into an [`ImageDataset`].
//!
//! Every reader validates the file completely and reports problems as a [`DataError`]
//! naming the file, the field and what was expected; none of them panics on bad input.

pub mod cifar;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod idx;
pub mod mnist;

pub use cifar::{load_cifar10_dir, read_cifar_batch, write_cifar_batch};
pub use dataset::{ImageDataset, Split};
pub use error::DataError;
pub use idx::{read_idx_images, read_idx_labels, write_idx_images, write_idx_labels};
pub use mnist::{load_mnist_csv, load_mnist_dir};
pub mod augment;
pub mod xor;
