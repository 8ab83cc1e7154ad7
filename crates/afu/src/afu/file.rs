//! `afu.json`: learned AFU parameters written by one run and loadable by another (transfer).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::afu::{AfuError, AfuParams};

/// The format tag written in every file.
pub const FORMAT: &str = "afu-params-v1";

/// One learned AFU with a name such as `afu-relu-8/seed0/shared`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedAfu {
    /// Where it comes from: `<variant>/seed<k>/<slot>`.
    pub name: String,
    /// Its parameters.
    #[serde(flatten)]
    pub params: AfuParams,
}

/// A set of learned AFUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AfuFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The experiment that learned them.
    pub source: String,
    /// The AFUs.
    pub afus: Vec<NamedAfu>,
}

/// Error reading, validating or writing an AFU file.
#[derive(Debug, thiserror::Error)]
pub enum AfuFileError {
    /// Could not read or write.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid JSON of the expected shape.
    #[error("{path}: not an AFU parameter file ({message})")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The `format` field is not [`FORMAT`].
    #[error("{path}: field 'format' is '{found}', expected '{FORMAT}'")]
    Format {
        /// The file.
        path: PathBuf,
        /// The value found.
        found: String,
    },
    /// An AFU's parameters are inconsistent.
    #[error("{path}: AFU '{name}': {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The AFU's name.
        name: String,
        /// What is wrong.
        #[source]
        source: AfuError,
    },
    /// No AFU matches the requested name.
    #[error("{path}: no AFU named '{wanted}' (available: {available})")]
    NoSuchAfu {
        /// The file.
        path: PathBuf,
        /// The name or prefix asked for.
        wanted: String,
        /// The names in the file.
        available: String,
    },
}

impl AfuFile {
    /// A new file from `source` with the given AFUs.
    pub fn new(source: impl Into<String>, afus: Vec<NamedAfu>) -> Self {
        AfuFile {
            format: FORMAT.to_string(),
            source: source.into(),
            afus,
        }
    }

    /// Reads and validates `path`; a directory means `path/afu.json`.
    pub fn load(path: &Path) -> Result<AfuFile, AfuFileError> {
        let path = if path.is_dir() {
            path.join("afu.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|source| AfuFileError::Io {
            path: path.clone(),
            source,
        })?;
        let file: AfuFile = serde_json::from_str(&text).map_err(|e| AfuFileError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if file.format != FORMAT {
            return Err(AfuFileError::Format {
                path,
                found: file.format,
            });
        }
        for a in &file.afus {
            a.params
                .validate()
                .map_err(|source| AfuFileError::Invalid {
                    path: path.clone(),
                    name: a.name.clone(),
                    source,
                })?;
        }
        Ok(file)
    }

    /// Writes the file atomically, after checking every AFU: a file that [`load`](Self::load)
    /// would refuse (a non-finite parameter, which JSON would hold as `null`) is never written.
    pub fn save(&self, path: &Path) -> Result<(), AfuFileError> {
        for a in &self.afus {
            a.params
                .validate()
                .map_err(|source| AfuFileError::Invalid {
                    path: path.to_path_buf(),
                    name: a.name.clone(),
                    source,
                })?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| AfuFileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| AfuFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The AFUs whose name starts with `prefix` (all of them for `None`), in file order; an
    /// error naming the available ones when none matches.
    pub fn select(
        &self,
        prefix: Option<&str>,
        path: &Path,
    ) -> Result<Vec<&NamedAfu>, AfuFileError> {
        let found: Vec<&NamedAfu> = self
            .afus
            .iter()
            .filter(|a| prefix.is_none_or(|p| a.name == p || a.name.starts_with(&format!("{p}/"))))
            .collect();
        if found.is_empty() {
            return Err(AfuFileError::NoSuchAfu {
                path: path.to_path_buf(),
                wanted: prefix.unwrap_or("").to_string(),
                available: self
                    .afus
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afu::BaseActivation;

    fn sample() -> AfuFile {
        AfuFile::new(
            "test",
            vec![NamedAfu {
                name: "afu-relu-2/seed0/shared".into(),
                params: AfuParams {
                    base: BaseActivation::Relu,
                    channels: 1,
                    hidden: 2,
                    w0: vec![1.0, -1.0],
                    b0: vec![0.5, 0.25],
                    w1: vec![0.3, 0.7],
                    b1: vec![0.1],
                },
            }],
        )
    }

    #[test]
    fn non_finite_parameters_are_never_written_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("afu.json");
        let mut f = sample();
        f.afus[0].params.w1[1] = f64::NAN;
        let e = f.save(&p).unwrap_err().to_string();
        assert!(
            e.contains("afu-relu-2/seed0/shared") && e.contains("w1"),
            "{e}"
        );
        assert!(!p.exists());
        // A value that overflows the f32 a model holds is refused on reading.
        let text = serde_json::to_string(&sample())
            .unwrap()
            .replace("0.3", "1e300");
        std::fs::write(&p, text).unwrap();
        let e = AfuFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("w1") && e.contains("non-finite"), "{e}");
        // So is an N beyond the limit, before anything of that size is built.
        let mut big = sample();
        big.afus[0].params.hidden = crate::afu::MAX_HIDDEN + 1;
        let e = big.save(&p).unwrap_err().to_string();
        assert!(e.contains("4096"), "{e}");
    }

    #[test]
    fn round_trip_and_select() {
        let dir = tempfile::tempdir().unwrap();
        let f = sample();
        f.save(&dir.path().join("afu.json")).unwrap();
        let back = AfuFile::load(dir.path()).unwrap();
        assert_eq!(back, f);
        assert_eq!(
            back.select(Some("afu-relu-2"), dir.path()).unwrap().len(),
            1
        );
        let err = back.select(Some("afu-relu-8"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("afu-relu-2/seed0/shared"), "{err}");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("afu.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = AfuFile::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("afu.json") && e.contains("not an AFU parameter file"),
            "{e}"
        );
        let mut f = sample();
        f.afus[0].params.w1.pop();
        // `save` refuses such a file; written by hand, `load` names the problem.
        assert!(f.save(&p).is_err());
        std::fs::write(&p, serde_json::to_string(&f).unwrap()).unwrap();
        let e = AfuFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("w1") && e.contains("expected 2"), "{e}");
        let e = AfuFile::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
