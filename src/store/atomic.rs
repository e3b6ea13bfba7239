//! The one way a file in the output folder is written: a temporary name beside it, the bytes,
//! fsync of the file, then a rename (replacing) or a link (never replacing), then fsync of the
//! folder. When a call here returns Ok, the file survives a crash or a power loss whole; before
//! that, a reader sees the old file (or none), never half of the new one.
//!
//! Temporary names carry the host name and the process id (and a counter), so two processes,
//! on one node or on two nodes of a shared file system, never write the same temporary file.
//! They end in [`TMP_SUFFIX`]: what a crash leaves behind is recognisable and removed by the
//! folder's owner.
//!
//! Does not own: what is written (shards, tables, summaries are their modules' business).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// How every temporary name ends.
pub const TMP_SUFFIX: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("cannot write {path}: {source}; check free space and permissions on the output folder")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} already exists, and a committed file of this kind is never replaced: is another \
         process writing this output folder? Stop it, then re-run (every committed file is kept)"
    )]
    Exists { path: PathBuf },
}

/// Whether a commit may replace a file already at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A derived file (a table, a summary, a plan): the new version replaces the old at once.
    Replace,
    /// A committed record file (a shard): if the name is taken, nothing changes and the commit
    /// fails with [`CommitError::Exists`].
    New,
}

/// This machine's name as temporary names and locks spell it: the kernel's host name, with
/// anything but `[A-Za-z0-9.-]` replaced by `_`; `unknown-host` when none can be read.
pub fn host_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let raw = fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let clean: String = raw
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        if clean.is_empty() {
            "unknown-host".to_string()
        } else {
            clean
        }
    })
}

/// A temporary name beside `target` that no other writer uses: `<name>.<host>-<pid>-<n>.tmp`.
pub fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!("{name}.{}-{}-{n}{TMP_SUFFIX}", host_name(), std::process::id()))
}

/// Whether `path` is a temporary file of this module (a crash leftover when no writer runs).
pub fn is_temp(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(TMP_SUFFIX))
}

/// Writes `bytes` to `path`, replacing any earlier version, durably (see the module doc).
/// Creates the folder when needed.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), CommitError> {
    write_with(path, Mode::Replace, |tmp| {
        File::create(tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| CommitError::Io { path: tmp.to_path_buf(), source: e })
    })
}

/// Runs `write` on a fresh temporary path beside `path`, then commits it there by `mode`. For
/// writers that open the file themselves (HDF5, parquet). On any error the temporary file is
/// removed.
pub fn write_with<E>(path: &Path, mode: Mode, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<CommitError>,
{
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| CommitError::Io { path: dir.to_path_buf(), source: e })?;
    let tmp = temp_path(path);
    if let Err(e) = write(&tmp) {
        let _ = fs::remove_file(&tmp); // a leftover would only cost space; the error is what matters
        return Err(e);
    }
    commit(&tmp, path, mode).map_err(E::from)
}

/// Commits the written file `tmp` as `target`: fsync of `tmp`, the rename or link, fsync of the
/// folder. On [`CommitError::Exists`] (mode [`Mode::New`]) `tmp` is removed and `target` is
/// unchanged.
pub fn commit(tmp: &Path, target: &Path, mode: Mode) -> Result<(), CommitError> {
    let io = |path: &Path, e| CommitError::Io { path: path.to_path_buf(), source: e };
    File::open(tmp).and_then(|f| f.sync_all()).map_err(|e| io(tmp, e))?;
    match mode {
        Mode::Replace => fs::rename(tmp, target).map_err(|e| io(target, e))?,
        Mode::New => {
            if let Err(e) = place_new(tmp, target) {
                let _ = fs::remove_file(tmp); // see write_with
                return Err(e);
            }
        }
    }
    sync_dir(parent(target)).map_err(|e| io(parent(target), e))
}

/// Moves a finished file or folder `from` (written under a temporary name or folder) to `to`,
/// replacing it, durably: every file under `from` and every folder is fsynced first, then the
/// rename, then `to`'s folder. For outputs written as a whole tree (prep's batches).
pub fn publish(from: &Path, to: &Path) -> Result<(), CommitError> {
    sync_tree(from).map_err(|e| CommitError::Io { path: from.to_path_buf(), source: e })?;
    commit(from, to, Mode::Replace)
}

/// Fsyncs every file and folder under `path` (a file: itself).
fn sync_tree(path: &Path) -> std::io::Result<()> {
    if fs::metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            sync_tree(&entry?.path())?;
        }
    }
    File::open(path)?.sync_all()
}

/// Moves the committed file `from` to `to` (a name not taken; its folder must exist), durably:
/// never replacing a file at `to` ([`CommitError::Exists`], and `from` stays), then fsync of
/// both folders. For files set aside whole (`verify --repair`'s quarantine).
pub fn move_new(from: &Path, to: &Path) -> Result<(), CommitError> {
    place_new(from, to)?;
    for dir in [parent(to), parent(from)] {
        sync_dir(dir).map_err(|e| CommitError::Io { path: dir.to_path_buf(), source: e })?;
    }
    Ok(())
}

/// Gives the committed file `from` a second name `to` (a name not taken; folders are made), as
/// a hard link: the same bytes, no copy, and `to` keeps them whatever later happens to `from`'s
/// name. Across filesystems, where a link is impossible, `to` is a copy, committed like any
/// file. Returns whether it copied. Then fsync of `to`'s folder.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<bool, CommitError> {
    let dir = parent(to);
    let io = |path: &Path, e| CommitError::Io { path: path.to_path_buf(), source: e };
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let copied = match fs::hard_link(from, to) {
        Ok(()) => false,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CommitError::Exists { path: to.to_path_buf() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            write_with(to, Mode::New, |tmp| fs::copy(from, tmp).map(|_| ()).map_err(|e| io(from, e)))?;
            true
        }
        Err(e) => return Err(io(to, e)),
    };
    sync_dir(dir).map_err(|e| io(dir, e))?;
    Ok(copied)
}

/// Fsyncs a folder, so that a rename or a removal in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Moves `tmp` to `target` unless `target` exists. A hard link is the atomic "create if absent"
/// every POSIX file system offers (Lustre, GPFS and NFS included). Where links are refused,
/// Linux's `renameat2(RENAME_NOREPLACE)` is the same promise in one call. Only where both are
/// refused does a check before a plain rename remain; that window is closed by the output
/// folder's lock (one writing process) and one owner per batch.
fn place_new(tmp: &Path, target: &Path) -> Result<(), CommitError> {
    let io = |path: &Path, e| CommitError::Io { path: path.to_path_buf(), source: e };
    let exists = || CommitError::Exists { path: target.to_path_buf() };
    match fs::hard_link(tmp, target) {
        Ok(()) => return fs::remove_file(tmp).map_err(|e| io(tmp, e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
        Err(e) if !matches!(e.kind(), std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied) => {
            return Err(io(target, e))
        }
        Err(_) => {}
    }
    match rename_noreplace(tmp, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(_) => {
            if target.try_exists().map_err(|e| io(target, e))? {
                return Err(exists());
            }
            fs::rename(tmp, target).map_err(|e| io(target, e))
        }
    }
}

#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both arguments are valid NUL-terminated paths that outlive the call; AT_FDCWD
    // makes them relative to the working directory, as `fs::rename` does.
    let r =
        unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_replaced_file_holds_the_new_bytes_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/plan.json");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), ["plan.json"]);
    }

    #[test]
    fn a_new_file_never_replaces_a_committed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard-000000.h5");
        let write = |bytes: &'static [u8]| {
            write_with(&path, Mode::New, |tmp| {
                fs::write(tmp, bytes).map_err(|e| CommitError::Io { path: tmp.to_path_buf(), source: e })
            })
        };
        write(b"first").unwrap();
        let err = write(b"second").unwrap_err();
        assert!(matches!(err, CommitError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("another process"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["shard-000000.h5"], "the temporary file is gone");
    }

    #[test]
    fn without_links_the_no_replace_rename_still_refuses_a_taken_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tmp"), dir.path().join("b"));
        fs::write(&a, b"new").unwrap();
        fs::write(&b, b"committed").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"committed");
    }

    #[test]
    fn temporary_names_carry_host_and_pid_and_never_repeat() {
        let target = Path::new("/out/servers.parquet");
        let (a, b) = (temp_path(target), temp_path(target));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("servers.parquet."), "{name}");
        assert!(name.contains(host_name()) && name.contains(&std::process::id().to_string()), "{name}");
        assert!(is_temp(&a) && !is_temp(target));
    }

    /// The one-helper rule, checked: outside this file, no product code renames a file (a
    /// temporary file renamed elsewhere would skip the fsyncs and the no-replace rule).
    #[test]
    fn no_other_code_renames_a_file() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![src.clone()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                // This file, and test files (`*_tests.rs`), which may move files as users do.
                if !name.ends_with(".rs") || name.ends_with("_tests.rs") || path.ends_with("store/atomic.rs") {
                    continue;
                }
                let text = fs::read_to_string(&path).unwrap();
                // Tests sit at the end of a file, after `#[cfg(test)]`; they may move files.
                let product = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (i, line) in product.lines().enumerate() {
                    if line.contains("rename(") && !line.trim_start().starts_with("//") {
                        found.push(format!(
                            "{}:{}: {}",
                            path.strip_prefix(&src).unwrap().display(),
                            i + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
        assert!(found.is_empty(), "write through store::atomic instead of renaming:\n{}", found.join("\n"));
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let r: Result<(), CommitError> = write_with(&path, Mode::Replace, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(CommitError::Io { path: tmp.to_path_buf(), source: std::io::Error::other("disk full") })
        });
        assert!(r.is_err());
        assert!(names(dir.path()).is_empty());
    }

    /// What `refresh` relies on to carry an old month's shards: on one filesystem the second
    /// name is the same file (no byte copied, and it outlives the first name); across two (here
    /// /dev/shm, a tmpfs, when the temporary folder is elsewhere) it is a committed copy.
    #[test]
    fn a_second_name_is_a_link_on_one_filesystem_and_a_copy_across_two() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("old/downloads/shard-000000.h5");
        replace(&from, b"the old month's bytes").unwrap();
        let to = dir.path().join("new/carried/0/downloads/shard-000000.h5");
        assert!(!link_or_copy(&from, &to).unwrap(), "one filesystem: a link, not a copy");
        let (a, b) = (fs::metadata(&from).unwrap(), fs::metadata(&to).unwrap());
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "the same file under two names");
        let again = link_or_copy(&from, &to).unwrap_err();
        assert!(matches!(again, CommitError::Exists { .. }), "{again}");
        fs::remove_file(&from).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"the old month's bytes", "the second name outlives the first");

        let shm = Path::new("/dev/shm");
        let other = shm.is_dir().then(|| tempfile::tempdir_in(shm).ok()).flatten();
        let Some(other) = other.filter(|o| fs::metadata(o.path()).unwrap().dev() != b.dev()) else {
            eprintln!(
                "no second filesystem (/dev/shm) beside {}: the copy path is not exercised",
                dir.path().display()
            );
            return;
        };
        let copy = other.path().join("carried/shard-000000.h5");
        assert!(link_or_copy(&to, &copy).unwrap(), "across filesystems: a copy");
        assert_eq!(fs::read(&copy).unwrap(), b"the old month's bytes");
        assert_ne!(fs::metadata(&copy).unwrap().dev(), b.dev());
        assert_eq!(names(&other.path().join("carried")), ["shard-000000.h5"], "no temporary file is left");
    }
}
