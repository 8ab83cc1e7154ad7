//! Reader and writer for the IDX format used by MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header followed by raw data:
//!
//! | bytes        | meaning                                                         |
//! |--------------|-----------------------------------------------------------------|
//! | 0–1          | always zero                                                     |
//! | 2            | data type; only `0x08` (unsigned byte) is supported here         |
//! | 3            | number of dimensions: 3 for images (`n × rows × cols`), 1 for labels |
//! | 4 + 4·k      | size of dimension `k`, big-endian `u32`                         |
//! | rest         | the data, exactly the product of the sizes                      |
//!
//! so images start with the magic number `0x00000803` and labels with `0x00000801`.
//! Files may be gzip-compressed; compression is detected from the gzip magic bytes
//! `1f 8b`, not from the file name.

use std::io::{Read, Write};
use std::path::Path;

use super::error::DataError;

/// Magic number of an IDX file of unsigned-byte images (`n × rows × cols`).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (`n`).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const IMAGES_KIND: &str = "IDX images";
const LABELS_KIND: &str = "IDX labels";

/// The largest IDX data section afu reads (4 GiB: five times ImageNet-scale MNIST-format
/// sets); a header that claims more is refused before anything is allocated.
pub const MAX_IDX_BYTES: usize = 1 << 32;

/// How far past the end the header gives a file is read to report its trailing bytes; a
/// decompressed stream longer than that is not expanded further.
const TRAILING_READ_LIMIT: u64 = 1 << 20;

/// Opens `path` as a byte stream, decompressing it on the fly when it starts with the gzip
/// magic. Nothing is read beyond what the caller takes: a small gzip file that expands to
/// gigabytes costs only what the caller asks for.
pub(crate) fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let mut file =
        std::io::BufReader::new(std::fs::File::open(path).map_err(|e| DataError::io(path, e))?);
    let head = std::io::BufRead::fill_buf(&mut file).map_err(|e| DataError::io(path, e))?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}

/// Reads up to `limit` bytes of `reader` (errors of a gzip stream reported as such).
fn read_up_to(
    path: &Path,
    reader: &mut dyn Read,
    limit: u64,
    capacity: usize,
) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(capacity);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|source| read_error(path, source))?;
    Ok(out)
}

/// A read error: a corrupt gzip stream shows up as `InvalidData`/`InvalidInput` or an early end.
fn read_error(path: &Path, source: std::io::Error) -> DataError {
    match source.kind() {
        std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::UnexpectedEof => DataError::Gzip {
            path: path.to_path_buf(),
            source,
        },
        _ => DataError::io(path, source),
    }
}

/// Reads an IDX file with `dims` dimensions: the header, then exactly the data section whose
/// length `data_len` computes from the sizes (checked against [`MAX_IDX_BYTES`] before it is
/// read). Returns the sizes and the data.
fn read_idx(
    path: &Path,
    dims: u8,
    kind: &'static str,
    data_len: impl FnOnce(&[usize]) -> Result<(usize, String), DataError>,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut reader = open_maybe_gzip(path)?;
    let header_len = 4 + 4 * usize::from(dims);
    let header = read_up_to(path, &mut reader, header_len as u64, header_len)?;
    let (sizes, _) = parse_header(path, &header, dims, kind)?;
    let (len, what) = data_len(&sizes)?;
    if len > MAX_IDX_BYTES {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            field: "count",
            message: format!(
                "{what} = {len} bytes, above the limit of {MAX_IDX_BYTES} bytes afu reads"
            ),
        });
    }
    let expected = header_len + len;
    // Grows with what is actually there: a header claiming more than the file holds costs
    // no more than the file.
    let data = read_up_to(path, &mut reader, len as u64, len.min(1 << 26))?;
    if data.len() < len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what,
            expected,
            found: header_len + data.len(),
        });
    }
    let extra = std::io::copy(
        &mut (&mut reader).take(TRAILING_READ_LIMIT),
        &mut std::io::sink(),
    )
    .map_err(|source| read_error(path, source))?;
    if extra > 0 {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            what,
            expected,
            found: expected + extra as usize,
        });
    }
    Ok((sizes, data))
}

fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Validates the header of an unsigned-byte IDX file with `dims` dimensions and returns the
/// dimension sizes and the header length in bytes.
fn parse_header(
    path: &Path,
    bytes: &[u8],
    dims: u8,
    kind: &'static str,
) -> Result<(Vec<usize>, usize), DataError> {
    let expected_magic = 0x0800 | u32::from(dims);
    let Some(magic) = be_u32(bytes, 0) else {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "a 4-byte IDX magic number".into(),
            expected: 4,
            found: bytes.len(),
        });
    };
    if magic >> 16 != 0 {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: expected_magic,
            kind,
        });
    }
    let dtype = (magic >> 8) as u8;
    if dtype != 0x08 {
        return Err(DataError::BadDataType {
            path: path.to_path_buf(),
            found: dtype,
            kind,
        });
    }
    let found_dims = magic as u8;
    if found_dims != dims {
        return Err(DataError::BadDims {
            path: path.to_path_buf(),
            found: found_dims,
            expected: dims,
            kind,
        });
    }
    let header_len = 4 + 4 * usize::from(dims);
    let sizes = (0..usize::from(dims))
        .map(|k| be_u32(bytes, 4 + 4 * k).map(|v| v as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("an IDX header with {dims} dimension(s)"),
            expected: header_len,
            found: bytes.len(),
        })?;
    Ok((sizes, header_len))
}

/// Reads an IDX images file (magic `0x00000803`, raw or gzip-compressed).
///
/// Returns `(n, rows, cols, pixels)` with `pixels.len() == n * rows * cols`, images stored
/// back to back, each row-major.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (sizes, pixels) = read_idx(path, 3, IMAGES_KIND, |sizes| {
        let (n, rows, cols) = (sizes[0], sizes[1], sizes[2]);
        for (field, v) in [("rows", rows), ("cols", cols)] {
            if v == 0 {
                return Err(DataError::BadHeader {
                    path: path.to_path_buf(),
                    field,
                    message: "is 0, expected at least 1 pixel".into(),
                });
            }
        }
        let len = n
            .checked_mul(rows)
            .and_then(|v| v.checked_mul(cols))
            .ok_or_else(|| DataError::BadHeader {
                path: path.to_path_buf(),
                field: "count",
                message: format!("{n} images of {rows}×{cols} overflow the address space"),
            })?;
        Ok((len, format!("{n} images of {rows}×{cols}")))
    })?;
    Ok((sizes[0], sizes[1], sizes[2], pixels))
}

/// Reads an IDX labels file (magic `0x00000801`, raw or gzip-compressed).
///
/// Label values are not range-checked here: the caller knows the number of classes.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let (_, labels) = read_idx(path, 1, LABELS_KIND, |sizes| {
        Ok((sizes[0], format!("{} labels", sizes[0])))
    })?;
    Ok(labels)
}

/// Writes `bytes` to `path`, gzip-compressed when asked, creating parent directories.
fn write_file(path: &Path, bytes: Vec<u8>, gzip: bool) -> Result<(), DataError> {
    let bytes = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes)
            .and_then(|()| enc.finish())
            .map_err(|e| DataError::io(path, e))?
    } else {
        bytes
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

fn to_u32(path: &Path, what: &str, v: usize) -> Result<u32, DataError> {
    u32::try_from(v).map_err(|_| DataError::InvalidArgument {
        path: path.to_path_buf(),
        message: format!("{what} {v} does not fit the 32-bit IDX header field"),
    })
}

/// Writes an IDX images file (magic `0x00000803`) holding `pixels.len() / (rows * cols)`
/// images of `rows × cols` bytes, gzip-compressed when `gzip` is true.
///
/// Fails when `rows` or `cols` is 0 or `pixels.len()` is not a multiple of `rows * cols`.
pub fn write_idx_images(
    path: &Path,
    rows: usize,
    cols: usize,
    pixels: &[u8],
    gzip: bool,
) -> Result<(), DataError> {
    let per =
        rows.checked_mul(cols)
            .filter(|&p| p > 0)
            .ok_or_else(|| DataError::InvalidArgument {
                path: path.to_path_buf(),
                message: format!("image size {rows}×{cols} must be non-zero"),
            })?;
    if !pixels.len().is_multiple_of(per) {
        return Err(DataError::InvalidArgument {
            path: path.to_path_buf(),
            message: format!(
                "{} pixel bytes is not a multiple of {rows}×{cols} = {per}",
                pixels.len()
            ),
        });
    }
    let n = pixels.len() / per;
    let mut bytes = Vec::with_capacity(16 + pixels.len());
    for v in [
        IDX_IMAGES_MAGIC,
        to_u32(path, "image count", n)?,
        to_u32(path, "rows", rows)?,
        to_u32(path, "cols", cols)?,
    ] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    write_file(path, bytes, gzip)
}

/// Writes an IDX labels file (magic `0x00000801`), gzip-compressed when `gzip` is true.
pub fn write_idx_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<(), DataError> {
    let mut bytes = Vec::with_capacity(8 + labels.len());
    bytes.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    bytes.extend_from_slice(&to_u32(path, "label count", labels.len())?.to_be_bytes());
    bytes.extend_from_slice(labels);
    write_file(path, bytes, gzip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(n: usize) -> Vec<u8> {
        (0..n * 28 * 28).map(|i| (i * 7 % 256) as u8).collect()
    }

    fn header(magic: u32, sizes: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for s in sizes {
            v.extend_from_slice(&s.to_be_bytes());
        }
        v
    }

    fn assert_names(err: &DataError, name: &str) {
        let msg = err.to_string();
        assert!(msg.contains(name), "message {msg:?} does not name {name}");
    }

    #[test]
    fn images_and_labels_round_trip_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let px = pixels(5);
        let labels = vec![3, 1, 4, 1, 5];
        for gzip in [false, true] {
            let ip = dir.path().join(format!("img-{gzip}"));
            let lp = dir.path().join(format!("lbl-{gzip}"));
            write_idx_images(&ip, 28, 28, &px, gzip).unwrap();
            write_idx_labels(&lp, &labels, gzip).unwrap();
            let raw = std::fs::read(&ip).unwrap();
            assert_eq!(raw.starts_with(&GZIP_MAGIC), gzip);
            assert_eq!(read_idx_images(&ip).unwrap(), (5, 28, 28, px.clone()));
            assert_eq!(read_idx_labels(&lp).unwrap(), labels);
        }
    }

    #[test]
    fn non_square_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rect");
        write_idx_images(&p, 2, 3, &[1, 2, 3, 4, 5, 6], false).unwrap();
        assert_eq!(
            read_idx_images(&p).unwrap(),
            (1, 2, 3, vec![1, 2, 3, 4, 5, 6])
        );
        write_idx_labels(&p, &[], false).unwrap();
        assert_eq!(read_idx_labels(&p).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("magic.idx");
        let mut b = header(0x1234_0803, &[1, 1, 1]);
        b.push(0);
        std::fs::write(&p, b).unwrap();
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadMagic {
                    found: 0x1234_0803,
                    expected: 0x803,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "magic.idx");
        assert!(e.to_string().contains("0x00000803"), "{e}");
    }

    #[test]
    fn wrong_data_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("float.idx");
        std::fs::write(&p, header(0x0000_0d01, &[0])).unwrap();
        let e = read_idx_labels(&p).unwrap_err();
        assert!(
            matches!(e, DataError::BadDataType { found: 0x0d, .. }),
            "{e:?}"
        );
        assert_names(&e, "float.idx");
    }

    #[test]
    fn wrong_dims() {
        // A labels file handed to the images reader.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels-as-images");
        write_idx_labels(&p, &[1, 2], false).unwrap();
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadDims {
                    found: 1,
                    expected: 3,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "labels-as-images");
    }

    #[test]
    fn zero_rows_is_bad_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zero-rows");
        std::fs::write(&p, header(IDX_IMAGES_MAGIC, &[0, 0, 28])).unwrap();
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(e, DataError::BadHeader { field: "rows", .. }),
            "{e:?}"
        );
        assert_names(&e, "zero-rows");
    }

    #[test]
    fn truncated_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short-images");
        write_idx_images(&p, 28, 28, &pixels(5), false).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        b.truncate(b.len() - 100);
        std::fs::write(&p, &b).unwrap();
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 3936,
                    found: 3836,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "short-images");
        assert!(e.to_string().contains("5 images of 28×28"), "{e}");
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short-header");
        for len in [0, 3, 6, 15] {
            let b = header(IDX_IMAGES_MAGIC, &[5, 28, 28]);
            std::fs::write(&p, &b[..len]).unwrap();
            let e = read_idx_images(&p).unwrap_err();
            assert!(matches!(e, DataError::Truncated { .. }), "{len}: {e:?}");
            assert_names(&e, "short-header");
        }
    }

    #[test]
    fn trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long-labels.gz");
        write_idx_labels(&p, &[1, 2, 3], false).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        b.extend_from_slice(b"junk");
        std::fs::write(&p, &b).unwrap();
        let e = read_idx_labels(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::TrailingBytes {
                    expected: 11,
                    found: 15,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_names(&e, "long-labels.gz");
        assert!(e.to_string().contains("4 trailing bytes"), "{e}");
    }

    #[test]
    fn corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.gz");
        write_idx_images(&p, 28, 28, &pixels(5), true).unwrap();
        let good = std::fs::read(&p).unwrap();
        // Cut off halfway, and separately garble the deflate stream.
        let mut garbled = good.clone();
        for b in &mut garbled[12..40] {
            *b ^= 0x5a;
        }
        for bytes in [good[..good.len() / 2].to_vec(), garbled, vec![0x1f, 0x8b]] {
            std::fs::write(&p, &bytes).unwrap();
            let e = read_idx_images(&p).unwrap_err();
            assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
            assert_names(&e, "broken.gz");
        }
    }

    /// A small gzip file whose header claims more than the limit is refused before it is
    /// expanded; one that expands far beyond its header is not expanded to the end.
    #[test]
    fn decompressed_size_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bomb.gz");
        let gz = |bytes: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        };
        let mut claim = header(IDX_IMAGES_MAGIC, &[u32::MAX, 28, 28]);
        claim.extend(std::iter::repeat_n(0u8, 1 << 20));
        std::fs::write(&p, gz(&claim)).unwrap();
        let e = read_idx_images(&p).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        // 1 label promised, 64 MiB of zeros follow: an error after reading at most 1 MiB more.
        let mut long = header(IDX_LABELS_MAGIC, &[1]);
        long.extend(std::iter::repeat_n(0u8, 64 << 20));
        std::fs::write(&p, gz(&long)).unwrap();
        let t = std::time::Instant::now();
        let e = read_idx_labels(&p).unwrap_err();
        assert!(matches!(e, DataError::TrailingBytes { .. }), "{e:?}");
        assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
    }

    #[test]
    fn missing_file_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope");
        let e = read_idx_labels(&p).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e:?}");
        assert_names(&e, "nope");
    }

    #[test]
    fn writer_rejects_ragged_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ragged");
        let e = write_idx_images(&p, 28, 28, &[0; 785], false).unwrap_err();
        assert!(matches!(e, DataError::InvalidArgument { .. }), "{e:?}");
        assert_names(&e, "ragged");
        assert!(!p.exists());
    }
}
