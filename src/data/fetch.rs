//! Downloads the public image-classification datasets (`afu data fetch`).
//!
//! [`fetch`] brings MNIST, Fashion-MNIST or CIFAR-10 into a directory in the layout that
//! [`crate::data`]'s loaders read: the four IDX `*.gz` files for the MNIST family, and for
//! CIFAR-10 the `cifar-10-binary.tar.gz` tarball plus its `cifar-10-batches-bin/*.bin` batches.
//!
//! For every file it:
//!
//! 1. skips it when it is already in the directory with the right checksum;
//! 2. otherwise tries each mirror in order, downloading to `DIR/.NAME.part` (with a progress
//!    bar on a terminal), resuming a `.part` left by an earlier attempt with an HTTP `Range`
//!    request when the server supports it and retrying a failing mirror a few times with a
//!    growing pause;
//! 3. verifies the published checksum (MD5 or SHA-256) and only then renames the `.part` to
//!    its final name, so a file under its final name is always complete and verified.
//!
//! The core, [`fetch_files`], takes the file list, the mirrors and the [`FetchOptions`] as
//! arguments, so it works for any list of files (and is tested against a local server).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

/// The datasets that `afu data fetch` knows how to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// MNIST handwritten digits (IDX files, gzip-compressed).
    Mnist,
    /// Zalando's Fashion-MNIST (IDX files, gzip-compressed).
    FashionMnist,
    /// CIFAR-10, binary version (`cifar-10-binary.tar.gz`).
    Cifar10,
}

impl DatasetName {
    /// Every dataset, in the order they are listed to users.
    pub const ALL: [DatasetName; 3] = [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Cifar10,
    ];

    /// The name used on the command line: `mnist`, `fashion-mnist` or `cifar10`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar10",
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = FetchError;

    /// Parses `mnist`, `fashion-mnist` or `cifar10` (case-insensitive; `fashion_mnist`,
    /// `fashionmnist` and `cifar-10` are accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetName::FashionMnist),
            "cifar10" | "cifar-10" | "cifar_10" => Ok(DatasetName::Cifar10),
            _ => Err(FetchError::UnknownDataset {
                name: s.to_string(),
            }),
        }
    }
}

/// A hash algorithm used to verify a downloaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// MD5 (the digests published for MNIST, Fashion-MNIST and CIFAR-10).
    Md5,
    /// SHA-256.
    Sha256,
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Sha256 => "SHA-256",
        })
    }
}

impl HashAlgorithm {
    /// Length of a digest of this algorithm in hex characters.
    pub fn hex_len(self) -> usize {
        match self {
            HashAlgorithm::Md5 => 32,
            HashAlgorithm::Sha256 => 64,
        }
    }
}

/// The published checksum of a file, as lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Checksum {
    /// An MD5 digest.
    Md5(&'static str),
    /// A SHA-256 digest.
    Sha256(&'static str),
}

impl Checksum {
    /// The algorithm of this checksum.
    pub fn algorithm(self) -> HashAlgorithm {
        match self {
            Checksum::Md5(_) => HashAlgorithm::Md5,
            Checksum::Sha256(_) => HashAlgorithm::Sha256,
        }
    }

    /// The digest in hex.
    pub fn hex(self) -> &'static str {
        match self {
            Checksum::Md5(h) | Checksum::Sha256(h) => h,
        }
    }
}

/// One file of a built-in dataset: its name (relative to a mirror's base URL and to the
/// target directory) and its published checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// Published checksum of the file.
    pub checksum: Checksum,
}

/// An owned [`RemoteFile`], for file lists built at run time (see [`fetch_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFileOwned {
    /// File name; the file's URL is a mirror's base URL followed by this name.
    pub name: String,
    /// Algorithm of `digest`.
    pub algorithm: HashAlgorithm,
    /// Expected digest in hex (compared case-insensitively).
    pub digest: String,
}

impl RemoteFileOwned {
    /// A file verified with MD5.
    pub fn md5(name: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            algorithm: HashAlgorithm::Md5,
            digest: digest.into(),
        }
    }

    /// A file verified with SHA-256.
    pub fn sha256(name: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            algorithm: HashAlgorithm::Sha256,
            digest: digest.into(),
        }
    }
}

impl From<&RemoteFile> for RemoteFileOwned {
    fn from(f: &RemoteFile) -> Self {
        Self {
            name: f.name.to_string(),
            algorithm: f.checksum.algorithm(),
            digest: f.checksum.hex().to_string(),
        }
    }
}

const MNIST_FILES: &[RemoteFile] = &[
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        checksum: Checksum::Md5("f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        checksum: Checksum::Md5("d53e105ee54ea40749a09fcbcd1e9432"),
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        checksum: Checksum::Md5("9fb629c4189551a2d022fa330f9573f3"),
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::Md5("ec29112dd5afa0611ce80d1b7f02629c"),
    },
];

const FASHION_MNIST_FILES: &[RemoteFile] = &[
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        checksum: Checksum::Md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        checksum: Checksum::Md5("25c81989df183df01b3e8a0aad5dffbe"),
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        checksum: Checksum::Md5("bef4ecab320f06d8554ea6380940ec79"),
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::Md5("bb300cfdad3c16e7a12a480ee83cd310"),
    },
];

/// Name of the CIFAR-10 tarball.
pub const CIFAR10_TARBALL: &str = "cifar-10-binary.tar.gz";
/// Folder of the CIFAR-10 tarball holding the binary batches.
pub const CIFAR10_BATCH_DIR: &str = "cifar-10-batches-bin";
/// The batch files every CIFAR-10 binary tarball holds.
pub const CIFAR10_BATCHES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];
/// Size in bytes of each CIFAR-10 batch: 10 000 records of 1 + 3072 bytes.
const CIFAR10_BATCH_BYTES: u64 = 10_000 * 3073;

const CIFAR10_FILES: &[RemoteFile] = &[RemoteFile {
    name: CIFAR10_TARBALL,
    checksum: Checksum::Md5("c32a1d4ab5d03f1284b67883e8d87530"),
}];

/// The files of a dataset with their published checksums.
pub fn files(ds: DatasetName) -> &'static [RemoteFile] {
    match ds {
        DatasetName::Mnist => MNIST_FILES,
        DatasetName::FashionMnist => FASHION_MNIST_FILES,
        DatasetName::Cifar10 => CIFAR10_FILES,
    }
}

/// The public mirrors of a dataset, tried in this order. Each is a base URL ending in `/`;
/// a file's URL is the base followed by the file's name.
pub fn default_mirrors(ds: DatasetName) -> &'static [&'static str] {
    match ds {
        DatasetName::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        DatasetName::FashionMnist => &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        DatasetName::Cifar10 => &["https://www.cs.toronto.edu/~kriz/"],
    }
}

/// The URL of file `name` on the mirror with base URL `base` (a `/` is inserted if `base`
/// does not end with one).
pub fn file_url(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// How downloads are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// How many times a failing mirror is retried before the next one is tried (so a mirror
    /// gets `1 + retries` attempts). Errors that a retry cannot fix (HTTP 404, an unknown
    /// host, a file whose checksum does not match) move to the next mirror at once.
    pub retries: u32,
    /// Pause before the first retry; it grows linearly (`backoff`, `2·backoff`, …).
    pub backoff: Duration,
    /// Limit for connecting, for the server to answer, and for each read of the body
    /// (not for the whole download, which may take long on a slow link).
    pub timeout: Duration,
    /// Show a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Honour the `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` environment
    /// variables.
    pub use_env_proxy: bool,
}

impl Default for FetchOptions {
    /// 3 retries with a 1 s backoff, a 30 s timeout, a progress bar and the proxy from the
    /// environment.
    fn default() -> Self {
        Self {
            retries: 3,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            progress: true,
            use_env_proxy: true,
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// The file was already in the directory with the right checksum; nothing was downloaded.
    AlreadyPresent,
    /// The file was downloaded and verified.
    Downloaded {
        /// The URL it came from.
        url: String,
        /// Size of the file in bytes.
        bytes: u64,
        /// Bytes taken from a `.part` left by an earlier attempt (0 for a fresh download).
        resumed_from: u64,
    },
}

/// The outcome of one file of a [`FetchReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// File name.
    pub name: String,
    /// Where the file is.
    pub path: PathBuf,
    /// Whether it was downloaded or already there.
    pub status: FileStatus,
}

/// What [`fetch`] or [`fetch_files`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The target directory.
    pub dir: PathBuf,
    /// One entry per file, in list order.
    pub files: Vec<FileReport>,
    /// Files extracted from an archive (the CIFAR-10 batches); empty when nothing needed
    /// extracting.
    pub extracted: Vec<PathBuf>,
}

impl FetchReport {
    /// Number of files that were downloaded (not already present).
    pub fn downloaded(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Downloaded { .. }))
            .count()
    }
}

impl fmt::Display for FetchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:", self.dir.display())?;
        for file in &self.files {
            match &file.status {
                FileStatus::AlreadyPresent => {
                    writeln!(f, "  {}: already present (checksum ok)", file.name)?
                }
                FileStatus::Downloaded {
                    url,
                    bytes,
                    resumed_from,
                } => {
                    write!(f, "  {}: downloaded {bytes} bytes from {url}", file.name)?;
                    if *resumed_from > 0 {
                        write!(f, " (resumed at byte {resumed_from})")?;
                    }
                    writeln!(f, ", checksum ok")?;
                }
            }
        }
        for p in &self.extracted {
            writeln!(f, "  extracted {}", p.display())?;
        }
        Ok(())
    }
}

/// One mirror's failure, listed by [`FetchError::AllMirrorsFailed`].
#[derive(Debug)]
pub struct MirrorFailure {
    /// The URL that was tried.
    pub url: String,
    /// How many attempts were made on it.
    pub attempts: u32,
    /// The last error.
    pub error: FetchError,
}

fn list_failures(failures: &[MirrorFailure]) -> String {
    let mut s = String::new();
    for m in failures {
        let plural = if m.attempts == 1 { "" } else { "s" };
        s.push_str(&format!(
            "\n  - {} ({} attempt{plural}): {}",
            m.url, m.attempts, m.error
        ));
    }
    s
}

/// Everything that can go wrong while downloading a dataset. Each message names the URL or
/// the file involved and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The dataset name is not one of those known.
    #[error("unknown dataset `{name}`; expected one of: mnist, fashion-mnist, cifar10")]
    UnknownDataset {
        /// The name given.
        name: String,
    },

    /// The server answered with an HTTP error status.
    #[error("{url}: server answered HTTP {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },

    /// No connection could be made, or no answer came (refused, unknown host, timeout, TLS).
    #[error("{url}: {message}")]
    Connection {
        /// The URL requested.
        url: String,
        /// What went wrong, e.g. `connection refused`.
        message: String,
    },

    /// The connection broke while the body was being received.
    #[error("{url}: download interrupted after {received} bytes: {message}")]
    Interrupted {
        /// The URL requested.
        url: String,
        /// Bytes of the body received before the failure (kept in the `.part` file).
        received: u64,
        /// What went wrong.
        message: String,
    },

    /// The URL is https but this build cannot speak TLS.
    #[error(
        "{url}: this build has no TLS support; download over http or fetch the files by hand into {}",
        .dir.display()
    )]
    NoTls {
        /// The https URL.
        url: String,
        /// The target directory.
        dir: PathBuf,
    },

    /// The server answered something a download cannot use (e.g. a wrong `Content-Range`).
    #[error("{url}: unexpected response: {message}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },

    /// The downloaded file does not have the published checksum; it was deleted.
    #[error(
        "{}: {algorithm} checksum mismatch for the download from {url}: expected {expected}, got {actual} (file deleted)",
        .path.display()
    )]
    ChecksumMismatch {
        /// The file that was verified (and deleted).
        path: PathBuf,
        /// Where it was downloaded from.
        url: String,
        /// The hash algorithm.
        algorithm: HashAlgorithm,
        /// The published digest.
        expected: String,
        /// The digest of what was downloaded.
        actual: String,
    },

    /// Every mirror failed for a file; each mirror's last error is listed.
    #[error("{file}: all {} mirror(s) failed:{}", .failures.len(), list_failures(.failures))]
    AllMirrorsFailed {
        /// The file name.
        file: String,
        /// One entry per mirror, in the order tried.
        failures: Vec<MirrorFailure>,
    },

    /// The mirror list was empty.
    #[error("{file}: no mirror to download from")]
    NoMirrors {
        /// The file name.
        file: String,
    },

    /// A file name in the list is not a plain file name.
    #[error("`{name}` is not a plain file name (no `/`, `\\` or `..` allowed)")]
    BadFileName {
        /// The offending name.
        name: String,
    },

    /// A local file operation failed.
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What was being done, e.g. `create`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An archive could not be extracted.
    #[error("{}: cannot extract: {message}", .path.display())]
    Extract {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> FetchError + use<> {
    let path = path.to_path_buf();
    move |source| FetchError::Io {
        path,
        action,
        source,
    }
}

/// Digest of the file at `path` in lowercase hex.
pub fn file_digest(path: &Path, algorithm: HashAlgorithm) -> io::Result<String> {
    let mut file = File::open(path)?;
    match algorithm {
        HashAlgorithm::Md5 => hash_reader::<Md5>(&mut file),
        HashAlgorithm::Sha256 => hash_reader::<Sha256>(&mut file),
    }
}

/// Digest of `bytes` in lowercase hex.
pub fn bytes_digest(bytes: &[u8], algorithm: HashAlgorithm) -> String {
    match algorithm {
        HashAlgorithm::Md5 => to_hex(&Md5::digest(bytes)),
        HashAlgorithm::Sha256 => to_hex(&Sha256::digest(bytes)),
    }
}

fn hash_reader<D: Digest>(r: &mut impl Read) -> io::Result<String> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(to_hex(&hasher.finalize()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads dataset `ds` into `dir` with the default [`FetchOptions`] (progress bar as
/// `progress` says). `mirrors` are base URLs tried in order; when empty, the dataset's
/// [`default_mirrors`] are used. For CIFAR-10 the batches are then extracted into
/// `dir/cifar-10-batches-bin/`.
pub fn fetch(
    ds: DatasetName,
    dir: &Path,
    mirrors: &[String],
    progress: bool,
) -> Result<FetchReport, FetchError> {
    let opts = FetchOptions {
        progress,
        ..FetchOptions::default()
    };
    fetch_with(ds, dir, mirrors, &opts)
}

/// [`fetch`] with explicit options.
pub fn fetch_with(
    ds: DatasetName,
    dir: &Path,
    mirrors: &[String],
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let list: Vec<RemoteFileOwned> = files(ds).iter().map(RemoteFileOwned::from).collect();
    let mirrors: Vec<String> = if mirrors.is_empty() {
        default_mirrors(ds).iter().map(|m| m.to_string()).collect()
    } else {
        mirrors.to_vec()
    };
    let mut report = fetch_files(&list, dir, &mirrors, opts)?;
    if ds == DatasetName::Cifar10 {
        let tarball = dir.join(CIFAR10_TARBALL);
        let downloaded = report.downloaded() > 0;
        if downloaded || !cifar10_batches_present(dir) {
            report.extracted = extract_cifar10(&tarball, dir)?;
        }
    }
    Ok(report)
}

/// Whether all six CIFAR-10 batches are in `dir/cifar-10-batches-bin/` with the right size.
pub fn cifar10_batches_present(dir: &Path) -> bool {
    let sub = dir.join(CIFAR10_BATCH_DIR);
    CIFAR10_BATCHES.iter().all(|b| {
        fs::metadata(sub.join(b))
            .map(|m| m.is_file() && m.len() == CIFAR10_BATCH_BYTES)
            .unwrap_or(false)
    })
}

/// Extracts the `cifar-10-batches-bin/*.bin` entries of the gzip-compressed tarball
/// `tarball` into `dir/cifar-10-batches-bin/` (each written atomically) and returns the
/// paths written. Other entries are ignored; nothing is ever written outside that folder.
pub fn extract_cifar10(tarball: &Path, dir: &Path) -> Result<Vec<PathBuf>, FetchError> {
    let extract_err = |message: String| FetchError::Extract {
        path: tarball.to_path_buf(),
        message,
    };
    let file = File::open(tarball).map_err(io_err(tarball, "open"))?;
    let gz = flate2::read::GzDecoder::new(BufReader::new(file));
    let mut archive = tar::Archive::new(gz);
    let out_dir = dir.join(CIFAR10_BATCH_DIR);
    let mut written = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| extract_err(format!("not a gzip-compressed tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| extract_err(format!("corrupt archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| extract_err(format!("bad entry name: {e}")))?
            .into_owned();
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .map(|c| match c {
                Component::Normal(s) => s,
                // Root, `..` or a prefix: make the entry fail the match below.
                _ => std::ffi::OsStr::new(""),
            })
            .collect();
        let [folder, name] = parts.as_slice() else {
            continue;
        };
        let name_str = name.to_string_lossy();
        if *folder != CIFAR10_BATCH_DIR || !name_str.ends_with(".bin") || name_str.len() <= 4 {
            continue;
        }
        // An entry larger than a batch can be is refused before it is expanded.
        let limit = 2 * CIFAR10_BATCH_BYTES;
        if entry.size() > limit {
            return Err(extract_err(format!(
                "{}: entry of {} bytes, above the limit of {limit} bytes (a CIFAR-10 batch is {CIFAR10_BATCH_BYTES})",
                path.display(),
                entry.size()
            )));
        }
        let mut bytes = Vec::with_capacity(entry.size().min(1 << 26) as usize);
        (&mut entry)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| extract_err(format!("cannot read {}: {e}", path.display())))?;
        let target = out_dir.join(name);
        crate::fsutil::write_atomic(&target, &bytes).map_err(io_err(&target, "write"))?;
        written.push(target);
    }
    if written.is_empty() {
        return Err(extract_err(format!(
            "no {CIFAR10_BATCH_DIR}/*.bin entry in the archive"
        )));
    }
    Ok(written)
}

fn check_file_name(name: &str) -> Result<(), FetchError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0');
    if bad {
        return Err(FetchError::BadFileName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The core of [`fetch`]: brings every file of `files` into `dir` (created if missing),
/// trying the base URLs of `mirrors` in order, as described in the [module docs](self).
///
/// Stops at the first file that cannot be had from any mirror
/// ([`FetchError::AllMirrorsFailed`]) or at a local I/O error; files finished before that
/// stay in place.
pub fn fetch_files(
    files: &[RemoteFileOwned],
    dir: &Path,
    mirrors: &[String],
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    for f in files {
        check_file_name(&f.name)?;
    }
    fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
    let agent = make_agent(opts);
    let show = opts.progress && io::stderr().is_terminal();
    let mut report = FetchReport {
        dir: dir.to_path_buf(),
        files: Vec::with_capacity(files.len()),
        extracted: Vec::new(),
    };
    for f in files {
        let path = dir.join(&f.name);
        let expected = f.digest.trim().to_ascii_lowercase();
        if path.is_file() {
            let actual = file_digest(&path, f.algorithm).map_err(io_err(&path, "read"))?;
            if actual == expected {
                report.files.push(FileReport {
                    name: f.name.clone(),
                    path,
                    status: FileStatus::AlreadyPresent,
                });
                continue;
            }
        }
        if mirrors.is_empty() {
            return Err(FetchError::NoMirrors {
                file: f.name.clone(),
            });
        }
        let status = fetch_one(&agent, f, &expected, dir, mirrors, opts, show)?;
        report.files.push(FileReport {
            name: f.name.clone(),
            path,
            status,
        });
    }
    Ok(report)
}

fn make_agent(opts: &FetchOptions) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(opts.timeout))
        .timeout_recv_response(Some(opts.timeout))
        .timeout_per_read(Some(opts.timeout))
        .user_agent(concat!("afu/", env!("CARGO_PKG_VERSION")));
    if !opts.use_env_proxy {
        cfg = cfg.proxy(None);
    }
    cfg.build().into()
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// Try the same mirror again (after the backoff) if attempts remain.
    Retry,
    /// A retry cannot help: go to the next mirror.
    SkipMirror,
    /// A local problem: stop everything.
    Abort,
}

fn fetch_one(
    agent: &ureq::Agent,
    f: &RemoteFileOwned,
    expected: &str,
    dir: &Path,
    mirrors: &[String],
    opts: &FetchOptions,
    show: bool,
) -> Result<FileStatus, FetchError> {
    let final_path = dir.join(&f.name);
    let part = dir.join(format!(".{}.part", f.name));
    let bar = if show {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_message(f.name.clone());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut failures = Vec::new();
    for base in mirrors {
        let url = file_url(base, &f.name);
        let max_attempts = opts.retries.saturating_add(1);
        let mut attempts = 0;
        let last = loop {
            attempts += 1;
            let result = attempt(agent, &url, f, expected, &part, &final_path, dir, &bar);
            match result {
                Ok(status) => {
                    bar.finish_and_clear();
                    return Ok(status);
                }
                Err((err, OnFailure::Abort)) => {
                    bar.abandon();
                    return Err(err);
                }
                Err((err, OnFailure::SkipMirror)) => break err,
                Err((err, OnFailure::Retry)) => {
                    if attempts >= max_attempts {
                        break err;
                    }
                    let pause = opts.backoff.saturating_mul(attempts);
                    bar.println(format!("{err}; retrying in {pause:?}"));
                    std::thread::sleep(pause);
                }
            }
        };
        bar.println(format!("{last}"));
        failures.push(MirrorFailure {
            url,
            attempts,
            error: last,
        });
    }
    bar.abandon();
    Err(FetchError::AllMirrorsFailed {
        file: f.name.clone(),
        failures,
    })
}

/// One download attempt of `url` into `part`, then verification and the rename to
/// `final_path`.
#[allow(clippy::too_many_arguments)]
fn attempt(
    agent: &ureq::Agent,
    url: &str,
    f: &RemoteFileOwned,
    expected: &str,
    part: &Path,
    final_path: &Path,
    dir: &Path,
    bar: &ProgressBar,
) -> Result<FileStatus, (FetchError, OnFailure)> {
    let (offset, bytes) = download(agent, url, part, dir, bar)?;
    let actual =
        file_digest(part, f.algorithm).map_err(|e| (io_err(part, "read")(e), OnFailure::Abort))?;
    if actual != expected {
        let _ = fs::remove_file(part);
        let err = FetchError::ChecksumMismatch {
            path: final_path.to_path_buf(),
            url: url.to_string(),
            algorithm: f.algorithm,
            expected: expected.to_string(),
            actual,
        };
        // A resumed download may have been spoilt by a stale `.part`: start afresh.
        // A fresh one that does not match means the mirror serves something else.
        let next = if offset > 0 {
            OnFailure::Retry
        } else {
            OnFailure::SkipMirror
        };
        return Err((err, next));
    }
    fs::rename(part, final_path)
        .map_err(|e| (io_err(final_path, "rename into")(e), OnFailure::Abort))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(FileStatus::Downloaded {
        url: url.to_string(),
        bytes,
        resumed_from: offset,
    })
}

/// Classifies an error of ureq before any response came.
fn connect_error(url: &str, dir: &Path, e: ureq::Error) -> (FetchError, OnFailure) {
    let conn = |message: String, next| {
        (
            FetchError::Connection {
                url: url.to_string(),
                message,
            },
            next,
        )
    };
    match e {
        ureq::Error::TlsRequired => (
            FetchError::NoTls {
                url: url.to_string(),
                dir: dir.to_path_buf(),
            },
            OnFailure::SkipMirror,
        ),
        ureq::Error::StatusCode(status) => (
            FetchError::HttpStatus {
                url: url.to_string(),
                status,
            },
            status_next(status),
        ),
        ureq::Error::HostNotFound => conn("host not found".into(), OnFailure::SkipMirror),
        ureq::Error::BadUri(u) => conn(format!("bad URL: {u}"), OnFailure::SkipMirror),
        ureq::Error::RequireHttpsOnly(u) => {
            conn(format!("https required: {u}"), OnFailure::SkipMirror)
        }
        ureq::Error::TooManyRedirects => conn("too many redirects".into(), OnFailure::SkipMirror),
        ureq::Error::Timeout(t) => conn(format!("timed out ({t})"), OnFailure::Retry),
        ureq::Error::Io(io) => {
            let message = match io.kind() {
                io::ErrorKind::ConnectionRefused => format!("connection refused ({io})"),
                io::ErrorKind::ConnectionReset => format!("connection reset ({io})"),
                io::ErrorKind::TimedOut => format!("timed out ({io})"),
                _ => io.to_string(),
            };
            conn(message, OnFailure::Retry)
        }
        other => conn(other.to_string(), OnFailure::Retry),
    }
}

fn status_next(status: u16) -> OnFailure {
    match status {
        408 | 429 | 500..=599 => OnFailure::Retry,
        _ => OnFailure::SkipMirror,
    }
}

fn header<'a>(resp: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Downloads `url` into `part`, resuming from its current length when the server honours a
/// `Range` request. Returns the offset the download started at and the final size.
fn download(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    dir: &Path,
    bar: &ProgressBar,
) -> Result<(u64, u64), (FetchError, OnFailure)> {
    let abort =
        |action: &'static str| move |e: io::Error| (io_err(part, action)(e), OnFailure::Abort);
    let mut offset = match fs::metadata(part) {
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    };
    let mut request = agent.get(url);
    if offset > 0 {
        request = request.header("Range", format!("bytes={offset}-"));
    }
    let response = request.call().map_err(|e| connect_error(url, dir, e))?;
    let status = response.status().as_u16();
    let bad = |message: String| {
        (
            FetchError::BadResponse {
                url: url.to_string(),
                message,
            },
            OnFailure::Retry,
        )
    };
    let append = match status {
        200 => {
            offset = 0;
            false
        }
        206 if offset > 0 => {
            let range = header(&response, "content-range").unwrap_or("");
            let starts = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.trim().parse::<u64>().ok());
            if starts != Some(offset) {
                // Unusable partial answer: forget the `.part` and start afresh next time.
                let _ = fs::remove_file(part);
                return Err(bad(format!(
                    "asked for bytes from {offset} but got Content-Range `{range}`"
                )));
            }
            true
        }
        416 if offset > 0 => {
            // The `.part` is as long as the file (or longer): let the checksum decide.
            return Ok((offset, offset));
        }
        _ => {
            return Err((
                FetchError::HttpStatus {
                    url: url.to_string(),
                    status,
                },
                status_next(status),
            ));
        }
    };
    let length: Option<u64> = header(&response, "content-length").and_then(|v| v.parse().ok());
    bar.reset();
    match length {
        Some(n) => {
            bar.set_length(offset + n);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
        }
        None => {
            bar.unset_length();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
        }
    }
    bar.set_position(offset);

    let file = if append {
        OpenOptions::new().append(true).open(part)
    } else {
        File::create(part)
    }
    .map_err(abort("create"))?;
    let mut out = io::BufWriter::with_capacity(1 << 16, file);
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received: u64 = 0;
    let read_error = loop {
        match body.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                out.write_all(&buf[..n]).map_err(abort("write"))?;
                received += n as u64;
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e),
        }
    };
    // Keep what arrived, so that the next attempt can resume from it.
    let file = out
        .into_inner()
        .map_err(|e| abort("write")(e.into_error()))?;
    file.sync_all().map_err(abort("sync"))?;
    if let Some(e) = read_error {
        let message = ureq::Error::from(e).to_string();
        return Err((
            FetchError::Interrupted {
                url: url.to_string(),
                received,
                message,
            },
            OnFailure::Retry,
        ));
    }
    if let Some(n) = length
        && received != n
    {
        return Err((
            FetchError::Interrupted {
                url: url.to_string(),
                received,
                message: format!("expected {n} bytes"),
            },
            OnFailure::Retry,
        ));
    }
    Ok((offset, offset + received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};
    use std::io::{BufRead, BufReader as StdBufReader};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    /// A failure the test server injects into its next answer for a path.
    #[derive(Debug, Clone)]
    enum Fault {
        /// Answer with this status and an empty body.
        Status(u16),
        /// Announce the full length, send this many bytes, then close the connection.
        DropAfter(usize),
        /// Serve other bytes than the file's.
        WrongContent,
        /// Ignore a `Range` header and answer 200 with the whole file.
        IgnoreRange,
    }

    /// One request the server saw.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        path: String,
        range: Option<u64>,
    }

    #[derive(Default)]
    struct State {
        files: HashMap<String, Vec<u8>>,
        faults: HashMap<String, VecDeque<Fault>>,
        seen: Vec<Seen>,
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1 serving files from a map, one connection at a
    /// time, `Connection: close` on every answer.
    struct TestServer {
        addr: SocketAddr,
        state: Arc<Mutex<State>>,
        stop: Arc<AtomicBool>,
        handle: Option<JoinHandle<()>>,
    }

    impl TestServer {
        fn start(files: &[(&str, &[u8])]) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut state = State::default();
            for (name, bytes) in files {
                state.files.insert(format!("/{name}"), bytes.to_vec());
            }
            let state = Arc::new(Mutex::new(state));
            let stop = Arc::new(AtomicBool::new(false));
            let (st, sp) = (state.clone(), stop.clone());
            let handle = std::thread::spawn(move || {
                // Bounded: a test makes a handful of requests.
                for _ in 0..200 {
                    let Ok((stream, _)) = listener.accept() else {
                        break;
                    };
                    if sp.load(Ordering::SeqCst) {
                        break;
                    }
                    let _ = serve(stream, &st);
                }
            });
            Self {
                addr,
                state,
                stop,
                handle: Some(handle),
            }
        }

        fn base(&self) -> String {
            format!("http://{}/", self.addr)
        }

        fn fault(&self, name: &str, fault: Fault) {
            let mut s = self.state.lock().unwrap();
            s.faults
                .entry(format!("/{name}"))
                .or_default()
                .push_back(fault);
        }

        fn seen(&self) -> Vec<Seen> {
            self.state.lock().unwrap().seen.clone()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the accept() call.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    fn serve(stream: TcpStream, state: &Mutex<State>) -> io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut reader = StdBufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut range = None;
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("range")
            {
                range = v
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<u64>().ok());
            }
        }
        let (file, fault) = {
            let mut s = state.lock().unwrap();
            s.seen.push(Seen {
                path: path.clone(),
                range,
            });
            let fault = s.faults.get_mut(&path).and_then(|q| q.pop_front());
            (s.files.get(&path).cloned(), fault)
        };
        let mut out = stream;
        let respond = |out: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            out.write_all(body)?;
            out.flush()
        };
        let Some(mut body) = file else {
            return respond(&mut out, "404 Not Found", "", b"");
        };
        let mut honour_range = true;
        match fault {
            Some(Fault::Status(code)) => {
                return respond(&mut out, &format!("{code} Injected"), "", b"");
            }
            Some(Fault::DropAfter(n)) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                out.write_all(head.as_bytes())?;
                out.write_all(&body[..n.min(body.len())])?;
                out.flush()?;
                return out.shutdown(Shutdown::Both);
            }
            Some(Fault::WrongContent) => {
                body.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            }
            Some(Fault::IgnoreRange) => honour_range = false,
            None => {}
        }
        match range {
            Some(start) if honour_range => {
                let len = body.len() as u64;
                if start >= len {
                    respond(
                        &mut out,
                        "416 Range Not Satisfiable",
                        &format!("Content-Range: bytes */{len}\r\n"),
                        b"",
                    )
                } else {
                    let extra = format!("Content-Range: bytes {start}-{}/{len}\r\n", len - 1);
                    respond(
                        &mut out,
                        "206 Partial Content",
                        &extra,
                        &body[start as usize..],
                    )
                }
            }
            _ => respond(&mut out, "200 OK", "", &body),
        }
    }

    /// Options for tests: quick retries, short timeouts, no bar, never a proxy.
    fn opts() -> FetchOptions {
        FetchOptions {
            retries: 2,
            backoff: Duration::from_millis(5),
            timeout: Duration::from_secs(3),
            progress: false,
            use_env_proxy: false,
        }
    }

    /// Deterministic content of `n` bytes.
    fn content(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .rotate_left(seed as u32) as u8
            })
            .collect()
    }

    /// A URL on 127.0.0.1 where nothing listens.
    fn dead_mirror() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}/")
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    fn seen(path: &str, range: Option<u64>) -> Seen {
        Seen {
            path: format!("/{path}"),
            range,
        }
    }

    #[test]
    fn downloads_and_verifies_two_files() {
        let a = content(100_000, 1);
        let b = content(5_000, 2);
        let server = TestServer::start(&[("a.gz", &a), ("b.gz", &b)]);
        let list = [
            RemoteFileOwned::md5("a.gz", bytes_digest(&a, HashAlgorithm::Md5)),
            RemoteFileOwned::sha256(
                "b.gz",
                bytes_digest(&b, HashAlgorithm::Sha256).to_uppercase(),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        assert_eq!(fs::read(dir.path().join("b.gz")).unwrap(), b);
        assert_eq!(report.downloaded(), 2);
        assert_eq!(
            report.files[0].status,
            FileStatus::Downloaded {
                url: format!("{}a.gz", server.base()),
                bytes: a.len() as u64,
                resumed_from: 0
            }
        );
        assert_eq!(server.seen(), vec![seen("a.gz", None), seen("b.gz", None)]);
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
        let text = report.to_string();
        assert!(text.contains("a.gz: downloaded 100000 bytes"), "{text}");
    }

    #[test]
    fn skips_files_already_present() {
        let a = content(2_000, 3);
        let server = TestServer::start(&[("a.gz", &a)]);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.gz"), &a).unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(report.files[0].status, FileStatus::AlreadyPresent);
        assert!(report.to_string().contains("already present"));
        assert!(server.seen().is_empty(), "{:?}", server.seen());
    }

    #[test]
    fn replaces_present_file_with_wrong_checksum() {
        let a = content(2_000, 4);
        let server = TestServer::start(&[("a.gz", &a)]);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.gz"), b"stale").unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(report.downloaded(), 1);
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
    }

    #[test]
    fn corrupt_download_is_rejected() {
        let a = content(10_000, 5);
        let server = TestServer::start(&[("a.gz", &a)]);
        server.fault("a.gz", Fault::WrongContent);
        let dir = tempfile::tempdir().unwrap();
        let expected = bytes_digest(&a, HashAlgorithm::Md5);
        let wrong: Vec<u8> = a.iter().map(|b| b.wrapping_add(1)).collect();
        let actual = bytes_digest(&wrong, HashAlgorithm::Md5);
        let list = [RemoteFileOwned::md5("a.gz", expected.clone())];
        let err = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap_err();
        let FetchError::AllMirrorsFailed { file, failures } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(file, "a.gz");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].attempts, 1, "a fresh mismatch is not retried");
        assert!(matches!(
            &failures[0].error,
            FetchError::ChecksumMismatch { expected: e, actual: a, .. } if *e == expected && *a == actual
        ));
        let msg = err.to_string();
        for needle in ["a.gz", "MD5", expected.as_str(), actual.as_str()] {
            assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
        }
        assert!(!dir.path().join("a.gz").exists());
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
        assert_eq!(server.seen().len(), 1);
    }

    #[test]
    fn retries_after_server_error() {
        let a = content(3_000, 6);
        let server = TestServer::start(&[("a.gz", &a)]);
        server.fault("a.gz", Fault::Status(500));
        let dir = tempfile::tempdir().unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(report.downloaded(), 1);
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        assert_eq!(server.seen(), vec![seen("a.gz", None), seen("a.gz", None)]);
    }

    #[test]
    fn persistent_server_error_exhausts_retries() {
        let a = content(300, 7);
        let server = TestServer::start(&[("a.gz", &a)]);
        for _ in 0..3 {
            server.fault("a.gz", Fault::Status(503));
        }
        let dir = tempfile::tempdir().unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let err = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("HTTP 503") && msg.contains("3 attempts"),
            "{msg}"
        );
        assert_eq!(server.seen().len(), 3, "1 attempt + 2 retries");
        assert!(!dir.path().join("a.gz").exists());
    }

    #[test]
    fn not_found_is_not_retried_and_names_url() {
        let server = TestServer::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let list = [RemoteFileOwned::md5("missing.gz", "0".repeat(32))];
        let err = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("HTTP 404"), "{msg}");
        assert!(
            msg.contains(&format!("{}missing.gz", server.base())),
            "{msg}"
        );
        assert_eq!(server.seen().len(), 1);
    }

    #[test]
    fn first_mirror_dead_then_second_works() {
        let a = content(4_000, 8);
        let server = TestServer::start(&[("a.gz", &a)]);
        let dead = dead_mirror();
        let dir = tempfile::tempdir().unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[dead, server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        match &report.files[0].status {
            FileStatus::Downloaded { url, .. } => assert!(url.starts_with(&server.base())),
            s => panic!("unexpected status {s:?}"),
        }
    }

    #[test]
    fn all_mirrors_dead_lists_each() {
        let (d1, d2) = (dead_mirror(), dead_mirror());
        let dir = tempfile::tempdir().unwrap();
        let list = [RemoteFileOwned::md5("a.gz", "0".repeat(32))];
        let err = fetch_files(&list, dir.path(), &[d1.clone(), d2.clone()], &opts()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("all 2 mirror(s) failed"), "{msg}");
        assert!(msg.contains(&format!("{d1}a.gz")), "{msg}");
        assert!(msg.contains(&format!("{d2}a.gz")), "{msg}");
        assert!(msg.contains("connection refused"), "{msg}");
    }

    #[test]
    fn resumes_part_with_range() {
        let a = content(50_000, 9);
        let server = TestServer::start(&[("a.gz", &a)]);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".a.gz.part"), &a[..20_000]).unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        assert_eq!(server.seen(), vec![seen("a.gz", Some(20_000))]);
        assert!(matches!(
            report.files[0].status,
            FileStatus::Downloaded {
                resumed_from: 20_000,
                bytes: 50_000,
                ..
            }
        ));
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn restarts_from_zero_when_range_is_ignored() {
        let a = content(8_000, 10);
        let server = TestServer::start(&[("a.gz", &a)]);
        server.fault("a.gz", Fault::IgnoreRange);
        let dir = tempfile::tempdir().unwrap();
        // A stale .part that does not even match: the 200 answer must replace it.
        fs::write(dir.path().join(".a.gz.part"), b"garbage").unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        assert_eq!(server.seen(), vec![seen("a.gz", Some(7))]);
        assert!(matches!(
            report.files[0].status,
            FileStatus::Downloaded {
                resumed_from: 0,
                ..
            }
        ));
    }

    #[test]
    fn resumes_after_connection_dropped_midway() {
        let a = content(200_000, 11);
        let server = TestServer::start(&[("a.gz", &a)]);
        server.fault("a.gz", Fault::DropAfter(80_000));
        let dir = tempfile::tempdir().unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        let report = fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        let s = server.seen();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].range, None);
        let resumed = s[1].range.expect("second request resumes with Range");
        assert!(resumed > 0 && resumed <= 80_000, "{s:?}");
        assert!(matches!(
            report.files[0].status,
            FileStatus::Downloaded { resumed_from, .. } if resumed_from == resumed
        ));
    }

    #[test]
    fn spoilt_part_is_discarded_and_downloaded_afresh() {
        let a = content(6_000, 12);
        let server = TestServer::start(&[("a.gz", &a)]);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".a.gz.part"), vec![0xAB; 1_000]).unwrap();
        let list = [RemoteFileOwned::md5(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Md5),
        )];
        fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        assert_eq!(
            server.seen(),
            vec![seen("a.gz", Some(1_000)), seen("a.gz", None)]
        );
    }

    #[test]
    fn complete_part_is_verified_after_416() {
        let a = content(1_500, 13);
        let server = TestServer::start(&[("a.gz", &a)]);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".a.gz.part"), &a).unwrap();
        let list = [RemoteFileOwned::sha256(
            "a.gz",
            bytes_digest(&a, HashAlgorithm::Sha256),
        )];
        fetch_files(&list, dir.path(), &[server.base()], &opts()).unwrap();
        assert_eq!(fs::read(dir.path().join("a.gz")).unwrap(), a);
        assert_eq!(server.seen(), vec![seen("a.gz", Some(1_500))]);
    }

    #[test]
    fn rejects_names_with_paths_and_empty_mirror_list() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../x.gz", "a/b.gz", "", ".."] {
            let list = [RemoteFileOwned::md5(name, "0".repeat(32))];
            let err = fetch_files(&list, dir.path(), &["http://127.0.0.1:9/".into()], &opts())
                .unwrap_err();
            assert!(matches!(err, FetchError::BadFileName { .. }), "{err}");
        }
        let list = [RemoteFileOwned::md5("a.gz", "0".repeat(32))];
        let err = fetch_files(&list, dir.path(), &[], &opts()).unwrap_err();
        assert!(matches!(err, FetchError::NoMirrors { .. }), "{err}");
    }

    #[test]
    fn no_tls_error_message() {
        let dir = Path::new("/data/mnist");
        let (err, next) = connect_error("https://example/x.gz", dir, ureq::Error::TlsRequired);
        assert_eq!(next, OnFailure::SkipMirror);
        assert_eq!(
            err.to_string(),
            "https://example/x.gz: this build has no TLS support; download over http or \
             fetch the files by hand into /data/mnist"
        );
    }

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn extracts_cifar_batches_only() {
        let dir = tempfile::tempdir().unwrap();
        let b1 = content(3073 * 2, 14);
        let tb = content(3073, 15);
        let tarball = dir.path().join(CIFAR10_TARBALL);
        fs::write(
            &tarball,
            tar_gz(&[
                ("cifar-10-batches-bin/data_batch_1.bin", &b1),
                ("cifar-10-batches-bin/batches.meta.txt", b"airplane\n"),
                ("cifar-10-batches-bin/test_batch.bin", &tb),
                ("other/x.bin", b"no"),
                ("readme.html", b"no"),
            ]),
        )
        .unwrap();
        let written = extract_cifar10(&tarball, dir.path()).unwrap();
        let sub = dir.path().join(CIFAR10_BATCH_DIR);
        assert_eq!(
            written,
            vec![sub.join("data_batch_1.bin"), sub.join("test_batch.bin")]
        );
        assert_eq!(fs::read(sub.join("data_batch_1.bin")).unwrap(), b1);
        assert_eq!(fs::read(sub.join("test_batch.bin")).unwrap(), tb);
        assert!(!sub.join("batches.meta.txt").exists());
        assert!(!dir.path().join("other").exists());
        assert!(
            !cifar10_batches_present(dir.path()),
            "sizes are not CIFAR's"
        );

        fs::write(&tarball, tar_gz(&[("readme.html", b"no")])).unwrap();
        let err = extract_cifar10(&tarball, dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("no cifar-10-batches-bin/*.bin"),
            "{err}"
        );
        fs::write(&tarball, b"not gzip").unwrap();
        assert!(matches!(
            extract_cifar10(&tarball, dir.path()),
            Err(FetchError::Extract { .. })
        ));
    }

    #[test]
    fn dataset_names_round_trip() {
        for ds in DatasetName::ALL {
            assert_eq!(ds.to_string().parse::<DatasetName>().unwrap(), ds);
        }
        assert_eq!(
            "Fashion_MNIST".parse::<DatasetName>().unwrap(),
            DatasetName::FashionMnist
        );
        let err = "imagenet".parse::<DatasetName>().unwrap_err();
        assert!(err.to_string().contains("`imagenet`"), "{err}");
    }

    #[test]
    fn built_in_lists_are_well_formed() {
        for ds in DatasetName::ALL {
            assert!(!files(ds).is_empty());
            for f in files(ds) {
                let h = f.checksum.hex();
                assert_eq!(h.len(), f.checksum.algorithm().hex_len(), "{}", f.name);
                assert!(
                    h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                );
                check_file_name(f.name).unwrap();
            }
            assert!(!default_mirrors(ds).is_empty());
            for m in default_mirrors(ds) {
                assert!(m.ends_with('/') && m.starts_with("http"), "{m}");
            }
        }
        assert_eq!(files(DatasetName::Mnist).len(), 4);
        assert_eq!(files(DatasetName::Cifar10)[0].name, CIFAR10_TARBALL);
        assert_eq!(file_url("http://h/x", "f"), "http://h/x/f");
        assert_eq!(file_url("http://h/x/", "f"), "http://h/x/f");
    }

    #[test]
    fn digests_match_known_values() {
        assert_eq!(
            bytes_digest(b"abc", HashAlgorithm::Md5),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            bytes_digest(b"abc", HashAlgorithm::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
