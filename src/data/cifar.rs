//! Loader and writer for the binary version of CIFAR-10.
//!
//! The training split is `data_batch_1.bin` … `data_batch_5.bin`, the test split
//! `test_batch.bin`. Each file is a sequence of 3073-byte records: one label byte in
//! `0..=9`, then 3072 pixel bytes — the 1024 red values, then the 1024 green, then the
//! 1024 blue, each plane row-major 32×32. The files may sit directly in the directory or
//! in its `cifar-10-batches-bin/` subfolder (the layout of the official tarball).

use std::path::{Path, PathBuf};

use super::dataset::ImageDataset;
pub use super::dataset::Split;
use super::error::DataError;

/// Number of CIFAR-10 classes.
pub const CIFAR10_CLASSES: usize = 10;
/// Side of a CIFAR-10 image in pixels.
pub const CIFAR_SIDE: usize = 32;
/// Pixel bytes per CIFAR-10 image (3 × 32 × 32).
pub const CIFAR_PIXELS: usize = 3 * CIFAR_SIDE * CIFAR_SIDE;
/// Bytes per record of a CIFAR-10 binary batch (1 label byte + 3072 pixel bytes).
pub const CIFAR_RECORD: usize = 1 + CIFAR_PIXELS;
/// The subfolder of the official `cifar-10-binary.tar.gz` tarball.
pub const CIFAR_SUBDIR: &str = "cifar-10-batches-bin";

/// The batch file names of a split, in load order.
pub fn cifar10_batch_names(split: Split) -> Vec<String> {
    match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    }
}

fn candidates(name: &str) -> [String; 2] {
    [name.to_string(), format!("{CIFAR_SUBDIR}/{name}")]
}

fn hint(dir: &Path) -> String {
    let mut h = String::new();
    if !dir.is_dir() {
        h.push_str("the directory does not exist; ");
    }
    h.push_str(&format!(
        "get the data with `afu data fetch cifar10 --dir {}`",
        dir.display()
    ));
    h
}

/// Loads one split of CIFAR-10 (binary version) from `dir` or `dir/cifar-10-batches-bin/`.
///
/// The result has 3 channels of 32×32 and 10 classes, images channel-major as in the
/// files. Every batch of the split must be present: a missing one is
/// [`DataError::NotFound`] naming it; a file whose size is not a multiple of 3073 bytes
/// is [`DataError::BadRecordSize`]; a label above 9 is [`DataError::LabelOutOfRange`].
pub fn load_cifar10_dir(dir: &Path, split: Split) -> Result<ImageDataset, DataError> {
    let names = cifar10_batch_names(split);
    let found: Vec<Option<PathBuf>> = names
        .iter()
        .map(|n| {
            candidates(n)
                .into_iter()
                .map(|c| dir.join(c))
                .find(|p| p.is_file())
        })
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .zip(&found)
        .filter_map(|(n, f)| f.is_none().then_some(n))
        .collect();
    if !missing.is_empty() {
        let tried = missing.iter().flat_map(|n| candidates(n)).collect();
        let hint = if missing.len() == names.len() {
            hint(dir)
        } else {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            format!(
                "CIFAR-10 {split} batch {} missing while the others are present; {}",
                list.join(", "),
                hint(dir)
            )
        };
        return Err(DataError::NotFound {
            dir: dir.to_path_buf(),
            tried,
            hint,
        });
    }

    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in found.into_iter().flatten() {
        read_cifar_batch_into(&path, &mut images, &mut labels)?;
    }
    Ok(ImageDataset {
        len: labels.len(),
        images,
        labels,
        channels: 3,
        height: CIFAR_SIDE,
        width: CIFAR_SIDE,
        classes: CIFAR10_CLASSES,
    })
}

/// Reads one CIFAR-10 binary batch file as a dataset.
pub fn read_cifar_batch(path: &Path) -> Result<ImageDataset, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    read_cifar_batch_into(path, &mut images, &mut labels)?;
    Ok(ImageDataset {
        len: labels.len(),
        images,
        labels,
        channels: 3,
        height: CIFAR_SIDE,
        width: CIFAR_SIDE,
        classes: CIFAR10_CLASSES,
    })
}

/// The largest batch file afu reads (a CIFAR-10 batch holds 30,730,000 bytes).
pub const MAX_BATCH_BYTES: u64 = 1 << 32;

fn read_cifar_batch_into(
    path: &Path,
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<(), DataError> {
    let size = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if size > MAX_BATCH_BYTES {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            field: "size",
            message: format!(
                "{size} bytes, above the limit of {MAX_BATCH_BYTES} bytes for one batch file"
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(DataError::BadRecordSize {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            record: CIFAR_RECORD,
        });
    }
    let n = bytes.len() / CIFAR_RECORD;
    images.reserve(n * CIFAR_PIXELS);
    labels.reserve(n);
    for (index, record) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        let (label, pixels) = record.split_at(1);
        let label = label.first().copied().unwrap_or_default();
        if usize::from(label) >= CIFAR10_CLASSES {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label,
                classes: CIFAR10_CLASSES,
            });
        }
        labels.push(label);
        images.extend_from_slice(pixels);
    }
    Ok(())
}

/// Writes `data` as one CIFAR-10 binary batch file (for fixtures and subsets).
///
/// `data` must be 3 × 32 × 32 with `images.len() == len * 3072` and `labels.len() == len`.
/// Parent directories are created when missing.
pub fn write_cifar_batch(path: &Path, data: &ImageDataset) -> Result<(), DataError> {
    let invalid = |message: String| DataError::InvalidArgument {
        path: path.to_path_buf(),
        message,
    };
    if (data.channels, data.height, data.width) != (3, CIFAR_SIDE, CIFAR_SIDE) {
        return Err(invalid(format!(
            "images are {}×{}×{}, expected 3×32×32",
            data.channels, data.height, data.width
        )));
    }
    if data.labels.len() != data.len || data.images.len() != data.len * CIFAR_PIXELS {
        return Err(invalid(format!(
            "dataset says {} images but holds {} labels and {} pixel bytes (expected {})",
            data.len,
            data.labels.len(),
            data.images.len(),
            data.len * CIFAR_PIXELS
        )));
    }
    let mut bytes = Vec::with_capacity(data.len * CIFAR_RECORD);
    for (label, pixels) in data
        .labels
        .iter()
        .zip(data.images.chunks_exact(CIFAR_PIXELS))
    {
        bytes.push(*label);
        bytes.extend_from_slice(pixels);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, seed: usize) -> ImageDataset {
        ImageDataset {
            images: (0..n * CIFAR_PIXELS)
                .map(|i| ((i + seed) * 31 % 256) as u8)
                .collect(),
            labels: (0..n).map(|i| ((i + seed) % 10) as u8).collect(),
            len: n,
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        }
    }

    fn assert_names(err: &DataError, name: &str) {
        let msg = err.to_string();
        assert!(msg.contains(name), "message {msg:?} does not name {name}");
    }

    fn write_split(dir: &Path, split: Split) -> Vec<ImageDataset> {
        cifar10_batch_names(split)
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let b = batch(2, k);
                write_cifar_batch(&dir.join(name), &b).unwrap();
                b
            })
            .collect()
    }

    #[test]
    fn round_trip_train_and_test() {
        let dir = tempfile::tempdir().unwrap();
        let train = write_split(dir.path(), Split::Train);
        let test = write_split(dir.path(), Split::Test);
        let d = load_cifar10_dir(dir.path(), Split::Train).unwrap();
        assert_eq!(
            (d.len, d.channels, d.height, d.width, d.classes),
            (10, 3, 32, 32, 10)
        );
        let expect_images: Vec<u8> = train.iter().flat_map(|b| b.images.clone()).collect();
        let expect_labels: Vec<u8> = train.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(d.images, expect_images);
        assert_eq!(d.labels, expect_labels);
        assert_eq!(d.image(2), train[1].image(0));
        assert_eq!(load_cifar10_dir(dir.path(), Split::Test).unwrap(), test[0]);
    }

    #[test]
    fn finds_batches_in_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        let test = write_split(&dir.path().join(CIFAR_SUBDIR), Split::Test);
        assert_eq!(load_cifar10_dir(dir.path(), Split::Test).unwrap(), test[0]);
    }

    #[test]
    fn channel_layout_is_rgb_planes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("test_batch.bin");
        let mut rec = vec![6u8];
        rec.extend(std::iter::repeat_n(10, 1024));
        rec.extend(std::iter::repeat_n(20, 1024));
        rec.extend(std::iter::repeat_n(30, 1024));
        std::fs::write(&p, &rec).unwrap();
        let d = read_cifar_batch(&p).unwrap();
        assert_eq!(d.label(0), 6);
        let img = d.image(0);
        assert_eq!((img[0], img[1024], img[2048], img[3071]), (10, 20, 30, 30));
    }

    #[test]
    fn bad_record_size() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Test);
        let p = dir.path().join("test_batch.bin");
        let mut b = std::fs::read(&p).unwrap();
        b.pop();
        std::fs::write(&p, &b).unwrap();
        let e = load_cifar10_dir(dir.path(), Split::Test).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadRecordSize {
                    size: 6145,
                    record: 3073,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "test_batch.bin");
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Train);
        let p = dir.path().join("data_batch_4.bin");
        let mut b = std::fs::read(&p).unwrap();
        b[CIFAR_RECORD] = 10;
        std::fs::write(&p, &b).unwrap();
        let e = load_cifar10_dir(dir.path(), Split::Train).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "data_batch_4.bin");
    }

    #[test]
    fn missing_batch() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Train);
        std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
        let e = load_cifar10_dir(dir.path(), Split::Train).unwrap_err();
        let DataError::NotFound { tried, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            tried,
            &["data_batch_3.bin", "cifar-10-batches-bin/data_batch_3.bin"]
        );
        assert_names(&e, "data_batch_3.bin missing");
        assert_names(&e, "afu data fetch cifar10 --dir");

        let empty = tempfile::tempdir().unwrap();
        let e = load_cifar10_dir(empty.path(), Split::Test).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
        assert_names(&e, "test_batch.bin");
        assert_names(&e, "cifar-10-batches-bin/test_batch.bin");
    }

    #[test]
    fn writer_rejects_wrong_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gray.bin");
        let mut d = batch(1, 0);
        d.channels = 1;
        let e = write_cifar_batch(&p, &d).unwrap_err();
        assert!(matches!(e, DataError::InvalidArgument { .. }), "{e:?}");
        assert_names(&e, "gray.bin");
    }
}
