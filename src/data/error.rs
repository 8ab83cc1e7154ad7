//! The error type shared by every dataset reader and writer in [`crate::data`].
//!
//! Every message names the file (or directory) involved, the field that was wrong and what
//! was expected, so that a user can fix the problem from the message alone.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing image-classification data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The first bytes of an IDX file are not an IDX magic number at all.
    #[error("{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({kind})", .path.display())]
    BadMagic {
        /// The file that was read.
        path: PathBuf,
        /// The big-endian magic number found in the file.
        found: u32,
        /// The magic number that was expected.
        expected: u32,
        /// What kind of file was expected, e.g. `"IDX images"`.
        kind: &'static str,
    },

    /// The data-type byte of an IDX header is not `0x08` (unsigned byte).
    #[error(
        "{}: IDX data type byte is 0x{found:02x}, expected 0x08 (unsigned byte) for {kind}",
        .path.display()
    )]
    BadDataType {
        /// The file that was read.
        path: PathBuf,
        /// The data-type byte found (third byte of the magic number).
        found: u8,
        /// What kind of file was expected, e.g. `"IDX images"`.
        kind: &'static str,
    },

    /// The IDX header declares the wrong number of dimensions.
    #[error(
        "{}: IDX header declares {found} dimension(s), expected {expected} ({kind})",
        .path.display()
    )]
    BadDims {
        /// The file that was read.
        path: PathBuf,
        /// The number of dimensions declared (fourth byte of the magic number).
        found: u8,
        /// The number of dimensions expected.
        expected: u8,
        /// What kind of file was expected, e.g. `"IDX images"`.
        kind: &'static str,
    },

    /// An IDX header field holds an impossible value (a zero image size, sizes that overflow).
    #[error("{}: bad IDX header field `{field}`: {message}", .path.display())]
    BadHeader {
        /// The file that was read.
        path: PathBuf,
        /// The header field at fault, e.g. `"rows"`.
        field: &'static str,
        /// What is wrong with it and what was expected.
        message: String,
    },

    /// The file is shorter than its header says.
    #[error(
        "{}: truncated: header says {what} = {expected} bytes, file has {found}",
        .path.display()
    )]
    Truncated {
        /// The file that was read.
        path: PathBuf,
        /// What the header promised, e.g. `"5 images of 28×28"`.
        what: String,
        /// The number of bytes (header included) the file should have.
        expected: usize,
        /// The number of bytes the file has (after decompression).
        found: usize,
    },

    /// The file is longer than its header says.
    #[error(
        "{}: {} trailing bytes: header says {what} = {expected} bytes, file has {found}",
        .path.display(),
        .found.saturating_sub(*.expected)
    )]
    TrailingBytes {
        /// The file that was read.
        path: PathBuf,
        /// What the header promised, e.g. `"5 images of 28×28"`.
        what: String,
        /// The number of bytes (header included) the file should have.
        expected: usize,
        /// The number of bytes the file has (after decompression).
        found: usize,
    },

    /// The file starts with the gzip magic bytes but its stream cannot be decompressed.
    #[error("{}: corrupt gzip stream: {source}", .path.display())]
    Gzip {
        /// The file that was read.
        path: PathBuf,
        /// The decompression error.
        source: std::io::Error,
    },

    /// A label is not in `0..classes`.
    #[error(
        "{}: label {label} at index {index} is out of range, expected 0..={} ({classes} classes)",
        .path.display(),
        .classes.saturating_sub(1)
    )]
    LabelOutOfRange {
        /// The file the label came from.
        path: PathBuf,
        /// The index of the image (record) within that file.
        index: usize,
        /// The label found.
        label: u8,
        /// The number of classes of the dataset.
        classes: usize,
    },

    /// The images file and the labels file disagree on the number of items.
    #[error(
        "{} has {images} images but {} has {labels} labels; they must match",
        .images_path.display(),
        .labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images in the images file.
        images: usize,
        /// Number of labels in the labels file.
        labels: usize,
    },

    /// An operating-system error while reading or writing a file.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A malformed row in a CSV file.
    #[error("{}:{line}: {message}", .path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The 1-based line of the offending row (0 when unknown).
        line: u64,
        /// What is wrong and what was expected.
        message: String,
    },

    /// None of the expected dataset files exist.
    #[error(
        "{}: no dataset files found (tried: {}); {hint}",
        .dir.display(),
        .tried.join(", ")
    )]
    NotFound {
        /// The directory that was searched.
        dir: PathBuf,
        /// The file names (relative to `dir`) that were tried.
        tried: Vec<String>,
        /// How to obtain the data.
        hint: String,
    },

    /// A CIFAR binary batch whose size is not a whole number of records.
    #[error(
        "{}: size {size} bytes is not a multiple of the {record}-byte CIFAR-10 record \
         (1 label byte + 3072 pixel bytes)",
        .path.display()
    )]
    BadRecordSize {
        /// The batch file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The record size in bytes.
        record: usize,
    },

    /// A writer was given data that cannot be stored in the requested format.
    #[error("{}: cannot write: {message}", .path.display())]
    InvalidArgument {
        /// The file that was to be written.
        path: PathBuf,
        /// What is wrong with the data and what was expected.
        message: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
