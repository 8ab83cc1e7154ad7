//! Small filesystem helpers shared by every writer in the crate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable of the write-fault injection: `SUFFIX:K` makes the `K`-th write
/// (1-based, counted in this process) of a file whose name ends with `SUFFIX` fail as a full
/// disk would. Tests use it to check that a run ends with an error naming the file and that the
/// last complete checkpoint stays usable; it is never set in normal use.
pub const FAIL_WRITE_ENV: &str = "AFU_TEST_FAIL_WRITE";

static MATCHING_WRITES: AtomicUsize = AtomicUsize::new(0);

/// Called before every write of a result or checkpoint file: fails when [`FAIL_WRITE_ENV`]
/// asks for a failure of this write (see there); otherwise does nothing.
pub fn check_injected_write_fault(path: &Path) -> std::io::Result<()> {
    let Ok(spec) = std::env::var(FAIL_WRITE_ENV) else {
        return Ok(());
    };
    let Some((suffix, k)) = spec.rsplit_once(':') else {
        return Ok(());
    };
    let Ok(k) = k.trim().parse::<usize>() else {
        return Ok(());
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.ends_with(suffix) {
        return Ok(());
    }
    let nth = MATCHING_WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if nth == k {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("no space left on device (injected by {FAIL_WRITE_ENV}={spec})"),
        ));
    }
    Ok(())
}

/// True for the name of a temporary file that [`write_atomic`] writes (`.<name>.tmp-<pid>`).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the temporary files that a killed [`write_atomic`] of another process left in `dir`
/// and its sub-folders (a run folder is used by one process at a time). Returns how many were
/// removed. A missing `dir` has none.
pub fn remove_stale_temps(dir: &Path) -> std::io::Result<usize> {
    let own = format!(".tmp-{}", std::process::id());
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() {
            removed += remove_stale_temps(&entry.path())?;
        } else if is_temp_name(&name) && !name.ends_with(&own) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes `bytes` to `path` atomically: the data goes to a temporary file in the same
/// directory, is flushed to disk, then renamed over `path`. A crash or a Ctrl-C never leaves
/// a half-written file behind; readers see either the old content or the new.
///
/// Parent directories are created when missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    check_injected_write_fault(path)?;
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    // A failed write (a full disk) leaves no temporary file behind either.
    written.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "temporary files left behind: {leftovers:?}"
        );
    }

    #[test]
    fn stale_temporaries_of_other_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("checkpoints");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.path().join(".summary.json.tmp-999999999"), b"x").unwrap();
        std::fs::write(sub.join(".progress.json.tmp-12"), b"x").unwrap();
        std::fs::write(dir.path().join("keep.tmp-12"), b"x").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        assert!(dir.path().join("keep.tmp-12").exists());
        assert!(dir.path().join(".hidden").exists());
        assert!(!sub.join(".progress.json.tmp-12").exists());
        assert_eq!(remove_stale_temps(&dir.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn is_temp_name_matches_only_our_temporaries() {
        assert!(is_temp_name(".a.json.tmp-42"));
        assert!(!is_temp_name("a.json.tmp-42"));
        assert!(!is_temp_name(".a.json.tmp-"));
        assert!(!is_temp_name(".a.json.tmp-4x"));
    }
}
