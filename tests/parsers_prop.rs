//! Property tests of every parser of user files: IDX images and labels, MNIST CSV, CIFAR-10
//! batches, `afu.json` and the run manifest. Generated inputs — random bytes, and valid files
//! with random corruptions — must give a value or an error, never a panic, and never an
//! allocation beyond what the file itself holds (a header claiming billions of images is
//! refused before anything of that size is allocated).

use std::path::Path;

use afu_cli::afu::file::AfuFile;
use afu_cli::data::cifar::read_cifar_batch;
use afu_cli::data::idx::{read_idx_images, read_idx_labels, write_idx_images, write_idx_labels};
use afu_cli::data::mnist::load_mnist_csv;
use afu_cli::experiments::manifest::Manifest;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `valid` with the byte edits applied (position modulo the length) and cut to `cut` bytes.
fn corrupt(valid: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut b = valid.to_vec();
    if !b.is_empty() {
        for &(at, v) in edits {
            let n = b.len();
            b[at % n] = v;
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn valid_idx(dir: &Path, gzip: bool) -> (Vec<u8>, Vec<u8>) {
    let (ip, lp) = (dir.join("vi"), dir.join("vl"));
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
    write_idx_images(&ip, 4, 5, &pixels, gzip).unwrap();
    write_idx_labels(&lp, &[1, 2, 3], gzip).unwrap();
    (std::fs::read(ip).unwrap(), std::fs::read(lp).unwrap())
}

fn valid_afu_json() -> String {
    r#"{"format":"afu-params-v1","source":"t","afus":[{"name":"a/seed0/shared","base":"relu","channels":1,"hidden":2,"w0":[1.0,-1.0],"b0":[0.5,0.25],"w1":[0.3,0.7],"b1":[0.1]}]}"#.to_string()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn idx_readers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        gzip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "random", &bytes);
        let _ = read_idx_images(&p);
        let _ = read_idx_labels(&p);
        let (images, labels) = valid_idx(dir.path(), gzip);
        let p = write(dir.path(), "images", &corrupt(&images, &edits, cut));
        if let Ok((n, rows, cols, px)) = read_idx_images(&p) {
            prop_assert_eq!(px.len(), n * rows * cols);
        }
        let p = write(dir.path(), "labels", &corrupt(&labels, &edits, cut));
        let _ = read_idx_labels(&p);
    }

    #[test]
    fn csv_reader_never_panics(
        rows in proptest::collection::vec(
            proptest::collection::vec("[0-9a-z ,\".-]{0,4}", 0..8), 0..4),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text: String = rows.iter().map(|r| r.join(",") + "\n").collect();
        let _ = load_mnist_csv(&write(dir.path(), "random.csv", text.as_bytes()));
        let valid: String = (0..2).map(|i| format!("{i}{}\n", ",7".repeat(784))).collect();
        let p = write(dir.path(), "valid.csv", &corrupt(valid.as_bytes(), &edits, cut));
        if let Ok(d) = load_mnist_csv(&p) {
            prop_assert_eq!(d.images.len(), d.len * 784);
        }
    }

    #[test]
    fn cifar_reader_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..7000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "data_batch_1.bin", &bytes);
        if let Ok(d) = read_cifar_batch(&p) {
            prop_assert_eq!(d.len, bytes.len() / 3073);
            prop_assert!(d.labels.iter().all(|&l| l < 10));
        }
    }

    #[test]
    fn afu_json_loader_never_panics_nor_accepts_non_finite(
        edits in proptest::collection::vec((any::<usize>(), "[-0-9.eE,\\[\\]{}\"a-z:]"), 0..5),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = valid_afu_json().into_bytes();
        for (at, s) in &edits {
            let at = at % text.len();
            text.splice(at..at + 1, s.bytes());
        }
        let text = corrupt(&text, &[], cut);
        let p = write(dir.path(), "afu.json", &text);
        if let Ok(f) = AfuFile::load(&p) {
            for a in &f.afus {
                prop_assert!(a.params.validate().is_ok());
                let all = a.params.w0.iter().chain(&a.params.b0).chain(&a.params.w1).chain(&a.params.b1);
                for x in all {
                    prop_assert!(x.is_finite() && x.abs() <= f64::from(f32::MAX));
                }
            }
            // What loads is written back and loads again.
            f.save(&dir.path().join("again.json")).unwrap();
            prop_assert_eq!(AfuFile::load(&dir.path().join("again.json")).unwrap(), f);
        }
    }

    #[test]
    fn manifest_reader_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("manifest.json"), &bytes).unwrap();
        let _ = Manifest::read(&run);
        let config = afu_cli::experiments::RunConfig::Xor(afu_cli::experiments::xor::XorConfig::quick());
        let m = Manifest::of(&config).unwrap();
        m.write(&run).unwrap();
        let valid = std::fs::read(run.join("manifest.json")).unwrap();
        std::fs::write(run.join("manifest.json"), corrupt(&valid, &edits, None)).unwrap();
        if let Ok(Some(back)) = Manifest::read(&run) {
            prop_assert_eq!(back.format, "afu-run-manifest-v1");
        }
    }
}

/// An IDX header that claims 4 billion images of 255×255 in a file of a few bytes is refused
/// naming the limit, without allocating what it claims.
#[test]
fn huge_idx_claims_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = vec![0, 0, 8, 3];
    for v in [u32::MAX, 255, 255] {
        b.extend(v.to_be_bytes());
    }
    let p = write(dir.path(), "claim", &b);
    let e = read_idx_images(&p).unwrap_err().to_string();
    assert!(e.contains("limit"), "{e}");
    // A claim under the limit but beyond the file: truncated, from what the file holds.
    let mut b = vec![0, 0, 8, 3];
    for v in [1_000_000u32, 28, 28] {
        b.extend(v.to_be_bytes());
    }
    let p = write(dir.path(), "short", &b);
    let e = read_idx_images(&p).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}
