//! Loader for MNIST-style datasets (MNIST, Fashion-MNIST) from a directory.
//!
//! Two layouts are recognised, tried in this order:
//!
//! 1. the IDX files, raw or gzip-compressed, spelt with `-` or `.` before `idx`:
//!    `train-images-idx3-ubyte`, `train-images.idx3-ubyte`, `train-labels-idx1-ubyte`,
//!    `t10k-images-idx3-ubyte`, … each optionally with `.gz`;
//! 2. the CSV form `mnist_train.csv` / `mnist_test.csv`: one row per image, the label then
//!    784 pixel values in `0..=255`, with an optional header row.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::ImageDataset;
pub use super::dataset::Split;
use super::error::DataError;
use super::idx::{read_idx_images, read_idx_labels};

/// Number of classes of MNIST and Fashion-MNIST.
pub const MNIST_CLASSES: usize = 10;
/// Side of an MNIST image in pixels.
pub const MNIST_SIDE: usize = 28;

/// The IDX file names tried for a split's images and labels, in order of preference.
fn idx_candidates(split: Split) -> (Vec<String>, Vec<String>) {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let names = |what: &str, dims: u8| {
        let mut v = Vec::with_capacity(4);
        for sep in ['-', '.'] {
            v.push(format!("{prefix}-{what}{sep}idx{dims}-ubyte"));
        }
        for sep in ['-', '.'] {
            v.push(format!("{prefix}-{what}{sep}idx{dims}-ubyte.gz"));
        }
        v
    };
    (names("images", 3), names("labels", 1))
}

fn csv_name(split: Split) -> String {
    format!("mnist_{}.csv", split.as_str())
}

fn first_existing(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn hint(dir: &Path) -> String {
    let d = dir.display();
    let mut h = String::new();
    if !dir.is_dir() {
        h.push_str("the directory does not exist; ");
    }
    h.push_str(&format!(
        "get the data with `afu data fetch mnist --dir {d}` \
         (or `afu data fetch fashion-mnist --dir {d}`), \
         or on Debian `apt-get install dataset-fashion-mnist` \
         then pass `--data /usr/share/datasets/fashion-mnist`"
    ));
    h
}

/// Loads one split of MNIST or Fashion-MNIST from `dir`.
///
/// Looks for the IDX files first (see the [module docs](self) for the accepted names),
/// then for `mnist_train.csv` / `mnist_test.csv`. The result has 1 channel, the image size
/// given by the files (28×28 for the real data) and 10 classes; every label is checked to
/// be below 10 and the image and label counts to match.
///
/// When no file is found the error is [`DataError::NotFound`], listing every name tried
/// and how to obtain the data.
pub fn load_mnist_dir(dir: &Path, split: Split) -> Result<ImageDataset, DataError> {
    let (image_names, label_names) = idx_candidates(split);
    let images = first_existing(dir, &image_names);
    let labels = first_existing(dir, &label_names);
    match (images, labels) {
        (Some(ip), Some(lp)) => load_idx_pair(&ip, &lp),
        (Some(_), None) => Err(DataError::NotFound {
            dir: dir.to_path_buf(),
            tried: label_names,
            hint: format!(
                "the {split} images are there but not the labels; {}",
                hint(dir)
            ),
        }),
        (None, Some(_)) => Err(DataError::NotFound {
            dir: dir.to_path_buf(),
            tried: image_names,
            hint: format!(
                "the {split} labels are there but not the images; {}",
                hint(dir)
            ),
        }),
        (None, None) => {
            let csv = csv_name(split);
            let path = dir.join(&csv);
            if path.is_file() {
                return load_mnist_csv(&path);
            }
            let mut tried = image_names;
            tried.extend(label_names);
            tried.push(csv);
            Err(DataError::NotFound {
                dir: dir.to_path_buf(),
                tried,
                hint: hint(dir),
            })
        }
    }
}

/// Loads an IDX images file and its labels file as a 10-class dataset.
fn load_idx_pair(images_path: &Path, labels_path: &Path) -> Result<ImageDataset, DataError> {
    let (n, rows, cols, images) = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: n,
            labels: labels.len(),
        });
    }
    check_labels(labels_path, &labels)?;
    Ok(ImageDataset {
        images,
        labels,
        len: n,
        channels: 1,
        height: rows,
        width: cols,
        classes: MNIST_CLASSES,
    })
}

fn check_labels(path: &Path, labels: &[u8]) -> Result<(), DataError> {
    match labels.iter().position(|&l| usize::from(l) >= MNIST_CLASSES) {
        Some(index) => Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label: labels[index],
            classes: MNIST_CLASSES,
        }),
        None => Ok(()),
    }
}

/// Parses a CSV field as a non-negative integer no larger than `max`, allowing surrounding
/// spaces. Returns `None` when it is not such a number.
fn parse_small_uint(field: &[u8], max: u32) -> Option<u32> {
    let field = field.trim_ascii();
    if field.is_empty() || field.len() > 3 {
        return None;
    }
    let mut v = 0u32;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    (v <= max).then_some(v)
}

/// A header row names its columns: its label field and at least one pixel field are not
/// numbers (`label,pixel0,…` or `label,1x1,…`). A row of numbers whose label alone is malformed
/// is a data row with a bad label, reported as such, not skipped as a header.
fn is_header(record: &csv::ByteRecord) -> bool {
    !record.get(0).is_some_and(looks_numeric)
        && (record.len() == 1 || record.iter().skip(1).any(|f| !looks_numeric(f)))
}

fn looks_numeric(field: &[u8]) -> bool {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .is_some()
}

fn csv_error(path: &Path, err: csv::Error) -> DataError {
    let line = err.position().map_or(0, |p| p.line());
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(e) => DataError::io(path, e),
        _ => DataError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// Loads an MNIST CSV file: one row per image, `label, p0, …, p783`.
///
/// A header row (its label and some pixel fields not numbers) is skipped. At least one data row is
/// required, and every row must have
/// exactly 785 fields, the label in `0..=9` and the pixels in `0..=255`; errors name the
/// file and the line.
pub fn load_mnist_csv(path: &Path) -> Result<ImageDataset, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    read_mnist_csv(path, std::io::BufReader::with_capacity(1 << 16, file))
}

fn read_mnist_csv(path: &Path, reader: impl Read) -> Result<ImageDataset, DataError> {
    const PIXELS: usize = MNIST_SIDE * MNIST_SIDE;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        let more = rdr
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, e))?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        let bad = |message: String| DataError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        };
        if std::mem::take(&mut first) && is_header(&record) {
            continue;
        }
        if record.len() != PIXELS + 1 {
            return Err(bad(format!(
                "row has {} fields, expected {} (label then {PIXELS} pixels)",
                record.len(),
                PIXELS + 1
            )));
        }
        let mut fields = record.iter();
        let label_field = fields.next().unwrap_or_default();
        let label = parse_small_uint(label_field, (MNIST_CLASSES - 1) as u32).ok_or_else(|| {
            bad(format!(
                "label {:?} is not an integer in 0..={}",
                String::from_utf8_lossy(label_field),
                MNIST_CLASSES - 1
            ))
        })?;
        labels.push(label as u8);
        for (k, field) in fields.enumerate() {
            let px = parse_small_uint(field, 255).ok_or_else(|| {
                bad(format!(
                    "pixel {k} (field {}) is {:?}, expected an integer in 0..=255",
                    k + 2,
                    String::from_utf8_lossy(field)
                ))
            })?;
            images.push(px as u8);
        }
    }
    if labels.is_empty() {
        return Err(DataError::Csv {
            path: path.to_path_buf(),
            line: 0,
            message: "no data rows, expected one row per image (label then 784 pixels)".into(),
        });
    }
    Ok(ImageDataset {
        len: labels.len(),
        images,
        labels,
        channels: 1,
        height: MNIST_SIDE,
        width: MNIST_SIDE,
        classes: MNIST_CLASSES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{write_idx_images, write_idx_labels};

    const N: usize = 5;

    fn sample() -> (Vec<u8>, Vec<u8>) {
        let px = (0..N * 784).map(|i| (i * 13 % 256) as u8).collect();
        (px, vec![7, 2, 1, 0, 9])
    }

    fn assert_names(err: &DataError, name: &str) {
        let msg = err.to_string();
        assert!(msg.contains(name), "message {msg:?} does not name {name}");
    }

    fn check(d: &ImageDataset) {
        let (px, lb) = sample();
        assert_eq!(
            (d.len, d.channels, d.height, d.width, d.classes),
            (N, 1, 28, 28, 10)
        );
        assert_eq!(d.images, px);
        assert_eq!(d.labels, lb);
    }

    fn write_csv(path: &Path, header: bool) {
        let (px, lb) = sample();
        let mut s = String::new();
        if header {
            s.push_str("label");
            for i in 0..784 {
                s.push_str(&format!(",{}x{}", i / 28 + 1, i % 28 + 1));
            }
            s.push('\n');
        }
        for (i, l) in lb.iter().enumerate() {
            s.push_str(&l.to_string());
            for p in &px[i * 784..(i + 1) * 784] {
                s.push_str(&format!(",{p}"));
            }
            s.push('\n');
        }
        std::fs::write(path, s).unwrap();
    }

    #[test]
    fn loads_idx_with_every_spelling() {
        let (px, lb) = sample();
        for (split, prefix) in [(Split::Train, "train"), (Split::Test, "t10k")] {
            for (sep, gz) in [("-", ""), (".", ""), ("-", ".gz"), (".", ".gz")] {
                let dir = tempfile::tempdir().unwrap();
                let gzip = !gz.is_empty();
                let ip = dir
                    .path()
                    .join(format!("{prefix}-images{sep}idx3-ubyte{gz}"));
                let lp = dir
                    .path()
                    .join(format!("{prefix}-labels{sep}idx1-ubyte{gz}"));
                write_idx_images(&ip, 28, 28, &px, gzip).unwrap();
                write_idx_labels(&lp, &lb, gzip).unwrap();
                check(&load_mnist_dir(dir.path(), split).unwrap());
                // The other split is not there.
                let other = if split == Split::Train {
                    Split::Test
                } else {
                    Split::Train
                };
                let e = load_mnist_dir(dir.path(), other).unwrap_err();
                assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn gzip_detected_by_content_not_name() {
        let (px, lb) = sample();
        let dir = tempfile::tempdir().unwrap();
        // Compressed data under the uncompressed names.
        write_idx_images(
            &dir.path().join("train-images-idx3-ubyte"),
            28,
            28,
            &px,
            true,
        )
        .unwrap();
        write_idx_labels(&dir.path().join("train-labels-idx1-ubyte"), &lb, false).unwrap();
        check(&load_mnist_dir(dir.path(), Split::Train).unwrap());
    }

    #[test]
    fn loads_csv_with_and_without_header() {
        for header in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_csv(&dir.path().join("mnist_test.csv"), header);
            check(&load_mnist_dir(dir.path(), Split::Test).unwrap());
        }
    }

    #[test]
    fn label_out_of_range() {
        let (px, mut lb) = sample();
        lb[3] = 10;
        let dir = tempfile::tempdir().unwrap();
        write_idx_images(
            &dir.path().join("train-images-idx3-ubyte"),
            28,
            28,
            &px,
            false,
        )
        .unwrap();
        write_idx_labels(&dir.path().join("train-labels-idx1-ubyte"), &lb, false).unwrap();
        let e = load_mnist_dir(dir.path(), Split::Train).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 3,
                    label: 10,
                    classes: 10,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "train-labels-idx1-ubyte");
    }

    #[test]
    fn count_mismatch() {
        let (px, lb) = sample();
        let dir = tempfile::tempdir().unwrap();
        write_idx_images(
            &dir.path().join("t10k-images-idx3-ubyte"),
            28,
            28,
            &px,
            false,
        )
        .unwrap();
        write_idx_labels(&dir.path().join("t10k-labels-idx1-ubyte"), &lb[..4], false).unwrap();
        let e = load_mnist_dir(dir.path(), Split::Test).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CountMismatch {
                    images: 5,
                    labels: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "t10k-images-idx3-ubyte");
        assert_names(&e, "t10k-labels-idx1-ubyte");
    }

    #[test]
    fn missing_files_list_names_tried() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_mnist_dir(dir.path(), Split::Train).unwrap_err();
        let DataError::NotFound { tried, hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(tried.len(), 9);
        assert!(hint.contains("afu data fetch mnist"));
        for name in [
            "train-images-idx3-ubyte",
            "train-images.idx3-ubyte",
            "train-labels-idx1-ubyte.gz",
            "mnist_train.csv",
        ] {
            assert_names(&e, name);
        }
        assert_names(&e, &dir.path().display().to_string());
        assert_names(&e, "apt-get install dataset-fashion-mnist");

        // Images without labels: the labels names are listed.
        let (px, _) = sample();
        write_idx_images(
            &dir.path().join("train-images-idx3-ubyte"),
            28,
            28,
            &px,
            false,
        )
        .unwrap();
        let e = load_mnist_dir(dir.path(), Split::Train).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
        assert_names(&e, "train-labels.idx1-ubyte.gz");

        let e = load_mnist_dir(&dir.path().join("absent"), Split::Test).unwrap_err();
        assert_names(&e, "does not exist");
    }

    #[test]
    fn csv_wrong_field_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist_train.csv");
        write_csv(&p, true);
        let mut s = std::fs::read_to_string(&p).unwrap();
        s.push_str("3,0,0\n");
        std::fs::write(&p, s).unwrap();
        let e = load_mnist_dir(dir.path(), Split::Train).unwrap_err();
        assert!(matches!(e, DataError::Csv { line: 7, .. }), "{e:?}");
        assert_names(&e, "mnist_train.csv:7");
        assert_names(&e, "3 fields, expected 785");
    }

    #[test]
    fn csv_pixel_256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist_test.csv");
        write_csv(&p, false);
        let s = std::fs::read_to_string(&p).unwrap();
        let mut lines: Vec<String> = s.lines().map(String::from).collect();
        lines[1] = format!("4{}", ",256".repeat(784));
        std::fs::write(&p, lines.join("\n")).unwrap();
        let e = load_mnist_dir(dir.path(), Split::Test).unwrap_err();
        assert!(matches!(e, DataError::Csv { line: 2, .. }), "{e:?}");
        assert_names(&e, "mnist_test.csv:2");
        assert_names(&e, "\"256\"");
    }

    #[test]
    fn csv_label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist_test.csv");
        std::fs::write(&p, format!("10{}\n", ",0".repeat(784))).unwrap();
        let e = load_mnist_csv(&p).unwrap_err();
        assert!(matches!(e, DataError::Csv { line: 1, .. }), "{e:?}");
        assert_names(&e, "mnist_test.csv:1");
        assert_names(&e, "label \"10\"");
    }

    #[test]
    fn csv_first_row_with_a_bad_label_is_an_error_not_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist_train.csv");
        let row = |label: &str| format!("{label}{}\n", ",0".repeat(784));
        std::fs::write(&p, format!("{}{}", row("x7"), row("3"))).unwrap();
        let e = load_mnist_csv(&p).unwrap_err();
        assert_names(&e, "mnist_train.csv");
        assert!(
            e.to_string().contains(":1:") && e.to_string().contains("\"x7\""),
            "{e}"
        );
        // A real header is still skipped.
        let header: String = std::iter::once("label".to_string())
            .chain((0..784).map(|k| format!("pixel{k}")))
            .collect::<Vec<_>>()
            .join(",");
        std::fs::write(&p, format!("{header}\n{}", row("3"))).unwrap();
        assert_eq!(load_mnist_csv(&p).unwrap().len, 1);
    }

    #[test]
    fn csv_without_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mnist_train.csv");
        for content in ["", "label,1x1\n"] {
            std::fs::write(&p, content).unwrap();
            let e = load_mnist_csv(&p).unwrap_err();
            assert!(matches!(e, DataError::Csv { .. }), "{e:?}");
            assert_names(&e, "mnist_train.csv");
            assert_names(&e, "no data rows");
        }
    }

    /// Loads Debian's Fashion-MNIST (`apt-get install dataset-fashion-mnist`) when present.
    #[test]
    fn debian_fashion_mnist_if_installed() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.is_dir() {
            crate::note!("skipped: {} not present", dir.display());
            return;
        }
        let d = load_mnist_dir(dir, Split::Test).unwrap();
        assert_eq!((d.len, d.height, d.width, d.channels), (10_000, 28, 28, 1));
        assert!(d.labels.iter().all(|&l| l < 10));
    }
}
