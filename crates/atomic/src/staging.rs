//! Staging a file or directory beside its target and renaming it into place.
//!
//! A staging path is a hidden sibling of the target, `.STEM.tmp-PID-N.EXT`: the same directory,
//! so the rename never crosses file systems; the process id and a per-process counter, so two
//! writers never share one; the target's extension, so a writer that picks the format from the
//! name (plotters' PNGs) still does. What was not committed is removed when the [`Staging`] is dropped.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks a staging path; see [`is_stale`].
const TAG: &str = ".tmp-";

/// Distinguishes the staging paths of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A temporary sibling of `target` that becomes `target` on [`commit`](Staging::commit).
///
/// Write a file, or create a directory and fill it, at [`path`](Staging::path), by any means
/// (`fs::write`, a `File`, a library that takes a path). Dropping it uncommitted — after an
/// error, say — removes whatever was written there and leaves `target` as it was.
#[derive(Debug)]
pub struct Staging {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    /// Reserves a staging path beside `target`; nothing is created yet.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] when `target` has no file name (`/`, `..`).
    pub fn new(target: impl AsRef<Path>) -> io::Result<Self> {
        let target = target.as_ref();
        let Some(stem) = target.file_stem() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", target.display()),
            ));
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let extension = target
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let tmp = target.with_file_name(format!(
            ".{}{TAG}{}-{n}{extension}",
            stem.to_string_lossy(),
            std::process::id()
        ));
        // A crashed process with our id may have left this very name behind.
        remove(&tmp);
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write: a file, or a directory to fill.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The path this staging replaces on commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Makes what was written durable and puts it in place of the target.
    ///
    /// Every file staged is fsynced, then renamed over the target; the parent directory is
    /// fsynced after the rename where the platform allows. A staged directory replaces an
    /// existing target directory (moved aside and removed first, [`remove_dir`]: a crash between
    /// the two steps loses the old one but never leaves a mix or a partial directory).
    ///
    /// # Errors
    /// The I/O error of the step that failed, [`io::ErrorKind::NotFound`] if nothing was
    /// written; the target is then untouched and the staging path removed.
    pub fn commit(mut self) -> io::Result<()> {
        let staged = fs::symlink_metadata(&self.tmp).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("nothing was staged at {}: {e}", self.tmp.display()),
            )
        })?;
        if staged.is_dir() {
            sync_tree(&self.tmp)?;
            if fs::symlink_metadata(&self.target).is_ok_and(|m| m.is_dir()) {
                remove_dir(&self.target)?;
            }
        } else {
            sync_file(&self.tmp)?;
        }
        fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        let parent = self
            .target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            remove(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically: the old contents or the new, never a mix.
///
/// # Errors
/// The I/O error of the step that failed; `path` is then untouched.
pub fn write(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let staging = Staging::new(path)?;
    fs::write(staging.path(), bytes)?;
    staging.commit()
}

/// Removes the directory `path` so that no partial copy of it is ever seen under its name: it
/// is first renamed to a staging path (which [`is_stale`] recognizes if a crash interrupts the
/// removal), then deleted.
///
/// # Errors
/// The I/O error of the rename; `path` is then untouched. Failing to delete the renamed copy
/// is not an error (a later [`is_stale`] sweep removes it).
pub fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let aside = Staging::new(path.as_ref())?;
    fs::rename(path.as_ref(), aside.path())?;
    // Dropped uncommitted: removes the renamed directory.
    drop(aside);
    Ok(())
}

/// Whether `file_name` is a staging path left by another process (one that crashed, as only
/// one process writes a run directory or cache at a time), so it may be deleted.
pub fn is_stale(file_name: &str) -> bool {
    let Some((_, tag)) = file_name
        .strip_prefix('.')
        .and_then(|rest| rest.rsplit_once(TAG))
    else {
        return false;
    };
    let Some((pid, rest)) = tag.split_once('-') else {
        return false;
    };
    let n = rest.split('.').next().unwrap_or_default();
    match (pid.parse::<u32>(), n.parse::<u64>()) {
        (Ok(pid), Ok(_)) => pid != std::process::id(),
        _ => false,
    }
}

fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

fn sync_file(path: &Path) -> io::Result<()> {
    // Windows flushes only handles opened for writing; Unix fsyncs any descriptor.
    OpenOptions::new()
        .read(true)
        .write(cfg!(windows))
        .open(path)?
        .sync_all()
}

/// Fsyncs every file under `dir`, then `dir` itself.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            sync_file(&entry.path())?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// Makes a directory's entries (a rename into it) durable. Best effort: not every platform
/// can open a directory as a file.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_directories_leave_nothing_under_their_name() {
        let dir = std::env::temp_dir().join(format!("rnn-atomic-rm-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let target = dir.join("epoch-000001");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("a.bin"), b"a").unwrap();
        fs::write(target.join("b.json"), b"b").unwrap();
        remove_dir(&target).unwrap();
        assert!(!target.exists());
        // Nothing else is left beside it either.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        // A missing directory is an error, and nothing is created.
        assert!(remove_dir(&target).is_err());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rnn-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_replaces_the_file_and_leaves_no_staging_file() {
        let dir = scratch("write");
        let path = dir.join("a.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(&dir), ["a.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_intact() {
        let dir = scratch("failed");
        let path = dir.join("model.safetensors");
        write(&path, b"old weights").unwrap();
        let fail_halfway = || -> io::Result<()> {
            let staging = Staging::new(&path)?;
            fs::write(staging.path(), b"new wei")?;
            Err(io::Error::other("disk full"))?;
            staging.commit()
        };
        assert_eq!(fail_halfway().unwrap_err().to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"old weights");
        assert_eq!(names(&dir), ["model.safetensors"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn committing_nothing_is_an_error_and_keeps_the_target() {
        let dir = scratch("nothing");
        let path = dir.join("plot.png");
        write(&path, b"old").unwrap();
        let err = Staging::new(&path).unwrap().commit().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("nothing was staged"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_staged_directory_replaces_the_old_one_whole() {
        let dir = scratch("dir");
        let target = dir.join("epoch-000001");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("stale.bin"), b"old").unwrap();
        let staging = Staging::new(&target).unwrap();
        fs::create_dir(staging.path()).unwrap();
        fs::write(staging.path().join("model.bpk"), b"new").unwrap();
        staging.commit().unwrap();
        assert_eq!(names(&target), ["model.bpk"]);
        assert_eq!(names(&dir), ["epoch-000001"]);
        // An uncommitted directory disappears with its staging.
        let staging = Staging::new(&target).unwrap();
        fs::create_dir(staging.path()).unwrap();
        fs::write(staging.path().join("half.bin"), b"x").unwrap();
        drop(staging);
        assert_eq!(names(&dir), ["epoch-000001"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_other_processes_staging_paths_are_stale() {
        let ours = Staging::new(Path::new("/run/epoch-000003")).unwrap();
        let ours = ours
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!is_stale(&ours));
        let theirs = format!(".epoch-000003.tmp-{}-0", std::process::id().wrapping_add(1));
        assert!(is_stale(&theirs));
        assert!(!is_stale("epoch-000003"));
        assert!(!is_stale(".metrics.jsonl"));
        assert!(!is_stale(".a.tmp-x-1"));
        let png = format!(".plot.tmp-{}-7.png", std::process::id().wrapping_add(1));
        assert!(is_stale(&png));
    }

    #[test]
    fn the_staging_path_keeps_the_extension_beside_the_target() {
        let staging = Staging::new(Path::new("/run/learning_curve.png")).unwrap();
        let tmp = staging.path();
        assert_eq!(tmp.parent(), Some(Path::new("/run")));
        assert_eq!(tmp.extension().unwrap(), "png");
        let name = tmp.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(".learning_curve.tmp-"), "{name}");
    }

    #[test]
    fn a_target_without_a_file_name_is_refused() {
        let err = Staging::new(Path::new("/")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
