//! `manifest.json`: what a run folder holds, written when the run is created — the command,
//! its settings, a fingerprint of its data, the variants, the seed and the afu version. A later
//! `--resume` must name the same run: the settings are compared with `config.toml`
//! ([`claim_run_folder`](super::common::claim_run_folder)), the data with the fingerprint here.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RunConfig;
use super::common::ExperimentError;

/// The format tag of `manifest.json`.
pub const FORMAT: &str = "afu-run-manifest-v1";

/// The file name in a run folder.
pub const FILE: &str = "manifest.json";

/// At most this many bytes of each data file enter the fingerprint (with every file's size):
/// enough to tell data sets apart without reading gigabytes at every start.
const FINGERPRINT_PREFIX: u64 = 1 << 20;

/// The record of a run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The command (`mnist`, `xor`, ...).
    pub command: String,
    /// The afu version that created the run.
    pub afu_version: String,
    /// The variants.
    pub variants: Vec<String>,
    /// The (first) seed.
    pub seed: Option<u64>,
    /// Fingerprint of the data folder (image experiments; `None` for generated data).
    pub data_fingerprint: Option<String>,
    /// Every setting, as in `config.toml`.
    pub settings: serde_json::Value,
}

impl Manifest {
    /// The manifest of a run of `config` (reads the data folder's files for the fingerprint).
    pub fn of(config: &RunConfig) -> Result<Manifest, ExperimentError> {
        let settings = serde_json::to_value(config).map_err(|e| ExperimentError::Config {
            field: "out",
            message: format!("settings cannot be recorded: {e}"),
        })?;
        let command = settings["experiment"].as_str().unwrap_or("").to_string();
        let variants = settings["variants"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let seed = ["seed", "first_seed"]
            .iter()
            .find_map(|k| settings[*k].as_u64());
        let data_fingerprint = match settings["data"].as_str() {
            Some(dir) => Some(fingerprint(Path::new(dir))?),
            None => None,
        };
        Ok(Manifest {
            format: FORMAT.into(),
            command,
            afu_version: env!("CARGO_PKG_VERSION").into(),
            variants,
            seed,
            data_fingerprint,
            settings,
        })
    }

    /// Reads `dir/manifest.json`; `None` when the folder has none (a run made before
    /// manifests, or no run).
    pub fn read(dir: &Path) -> Result<Option<Manifest>, ExperimentError> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ExperimentError::Checkpoint {
                    path,
                    source: e.into(),
                });
            }
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| ExperimentError::Config {
            field: "out",
            message: format!("{}: not a run manifest ({e})", path.display()),
        })?;
        if m.format != FORMAT {
            return Err(ExperimentError::Config {
                field: "out",
                message: format!(
                    "{}: field 'format' is '{}', expected '{FORMAT}'",
                    path.display(),
                    m.format
                ),
            });
        }
        Ok(Some(m))
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), ExperimentError> {
        super::common::write_json(&dir.join(FILE), self)
    }

    /// What differs between the run recorded here and `now` that `--resume` cannot accept
    /// (settings are compared separately, with `config.toml`): the command and the data.
    pub fn resume_differences(&self, now: &Manifest) -> Vec<String> {
        let mut d = Vec::new();
        if self.command != now.command {
            d.push(format!(
                "the command is {} there, {} now",
                self.command, now.command
            ));
        }
        if let (Some(a), Some(b)) = (&self.data_fingerprint, &now.data_fingerprint)
            && a != b
        {
            d.push(format!(
                "the data differ (fingerprint {} there, {} now)",
                short(a),
                short(b)
            ));
        }
        d
    }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// SHA-256 over the names, sizes and first [`FINGERPRINT_PREFIX`] bytes of the files of `dir`
/// and its sub-folders (in name order, one level of folders deep: the CIFAR layout). A missing
/// folder has the fingerprint of an empty one (the run reports the missing data itself).
pub fn fingerprint(dir: &Path) -> Result<String, ExperimentError> {
    let mut h = Sha256::new();
    add_folder(&mut h, dir, "", 1)?;
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

fn add_folder(
    h: &mut Sha256,
    dir: &Path,
    prefix: &str,
    depth: usize,
) -> Result<(), ExperimentError> {
    let io = |e: std::io::Error| ExperimentError::Data(crate::data::error::DataError::io(dir, e));
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<_, _>>().map_err(io)?,
        Err(_) => return Ok(()),
    };
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let kind = e.file_type().map_err(io)?;
        let path = e.path();
        if kind.is_dir() && depth > 0 {
            add_folder(h, &path, &format!("{prefix}{name}/"), depth - 1)?;
        } else if kind.is_file() {
            let len = e.metadata().map_err(io)?.len();
            h.update(format!("{prefix}{name}\0{len}\0").as_bytes());
            let mut f = std::fs::File::open(&path).map_err(io)?;
            let mut head = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut f, FINGERPRINT_PREFIX),
                &mut head,
            )
            .map_err(io)?;
            h.update(&head);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::mnist::MnistConfig;

    #[test]
    fn records_the_run_and_names_what_differs_on_resume() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("a"), b"one").unwrap();
        let config = RunConfig::Mnist(MnistConfig::quick(data.clone()));
        let m = Manifest::of(&config).unwrap();
        assert_eq!(m.command, "mnist");
        assert_eq!(m.seed, Some(1));
        assert!(!m.variants.is_empty());
        let out = tmp.path().join("run");
        m.write(&out).unwrap();
        let back = Manifest::read(&out).unwrap().unwrap();
        assert_eq!(back, m);
        assert!(back.resume_differences(&m).is_empty());
        // Other data under the same path: named.
        std::fs::write(data.join("a"), b"two").unwrap();
        let now = Manifest::of(&config).unwrap();
        let d = back.resume_differences(&now);
        assert!(d.len() == 1 && d[0].contains("data differ"), "{d:?}");
        let xor =
            Manifest::of(&RunConfig::Xor(crate::experiments::xor::XorConfig::quick())).unwrap();
        assert!(xor.data_fingerprint.is_none());
        assert!(back.resume_differences(&xor)[0].contains("command is mnist there, xor now"));
        assert!(Manifest::read(&tmp.path().join("none")).unwrap().is_none());
    }
}
