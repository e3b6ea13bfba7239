//! The writer lock: one process at a time writes an output folder (`download`, `profile`,
//! `prep`, `verify --repair`), and a second one is refused at once, by name.
//!
//! The lock is the file `writer.lock` (see `paths::lock_file`), made by an exclusive create
//! (`O_CREAT|O_EXCL`), which is atomic on local disks, NFSv3+, Lustre and GPFS, unlike `flock` or
//! `fcntl` locks, which some cluster file systems ignore or emulate per node. It holds its holder
//! as JSON: host, pid, the pid's start time, when, the command line and the Slurm job. The guard
//! removes it on drop, if it still holds its own content.
//!
//! A process killed without unwinding (SIGKILL, a node crash) leaves the file behind:
//! - on the same host, a newcomer sees the pid is gone (or reused: another start time) and takes
//!   the lock over, saying so. Newcomers racing for one stale lock first create a marker named
//!   after the stale content (another exclusive create): only its creator may remove the stale
//!   file, after checking that it still holds what was judged. A lock's content is unique (it
//!   carries a random token), so a late newcomer never removes a fresh lock.
//! - from another host, nothing can be checked: the error says how to clear it by hand, and
//!   `job-end` releases a lock whose Slurm job has ended ([`release_for_job`]).
//!
//! Does not own: when a command takes the lock (the commands), MPI (rank 0 locks for the job;
//! [`acquire_on_root`] takes the broadcast as a function so that `mpi::` stays in `mpi_glue`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::atomic::{host_name, sync_dir};
use super::paths::lock_file;

/// Rounds of create / read / judge before giving up: each round either gets the lock, refuses,
/// or follows a change made by another newcomer, so a handful is plenty.
const ATTEMPTS: usize = 20;
/// Pause when another newcomer is taking over the same stale lock: its take-over is a few file
/// operations, so 20 rounds of this (2 s) outlast it even on a slow shared file system.
const BUSY_WAIT: Duration = Duration::from_millis(100);
/// A lock just created may be empty until its creator has written it; an unreadable lock is read
/// again this often, for [`SETTLE_TRIES`] times (2 s), before it is reported.
const SETTLE_WAIT: Duration = Duration::from_millis(50);
const SETTLE_TRIES: usize = 40;

/// Who holds a lock: what `writer.lock` contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The host name, as `atomic::host_name` spells it.
    pub host: String,
    pub pid: u32,
    /// The pid's start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`): tells the
    /// holder apart from a later process that got the same pid. `None` where it cannot be read.
    pub pid_start: Option<u64>,
    /// When the lock was taken, Unix seconds and RFC 3339.
    pub started_unix: u64,
    pub started: String,
    /// The subcommand (`download`, `prep`, ...).
    pub command: String,
    /// The whole command line, for the person reading a refusal.
    pub command_line: String,
    /// `SLURM_JOB_ID` of the holder's job, if it runs under Slurm.
    pub slurm_job: Option<String>,
    /// Random: makes each lock's content unique, so a stale lock is never confused with a later
    /// lock of the same process.
    pub token: String,
}

impl Holder {
    /// This process, about to run `command`.
    pub fn me(command: &str) -> Holder {
        let now = SystemTime::now();
        let pid = std::process::id();
        Holder {
            host: host_name().to_string(),
            pid,
            pid_start: match probe(pid) {
                Liveness::Alive { start } => start,
                Liveness::Dead => None,
            },
            started_unix: now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            started: humantime::format_rfc3339_seconds(now).to_string(),
            command: command.to_string(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            slurm_job: crate::environment::Launch::from_env().slurm_job_id,
            token: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Whether `other` is the same lock of the same process (what release compares).
    fn same_lock(&self, other: &Holder) -> bool {
        (&self.host, self.pid, self.pid_start, self.started_unix, &self.token)
            == (&other.host, other.pid, other.pid_start, other.started_unix, &other.token)
    }

    /// How to stop the holder, on its host.
    fn stop_hint(&self) -> String {
        match &self.slurm_job {
            Some(job) => format!("`scancel {job}`, or `kill {}` on {}", self.pid, self.host),
            None => format!("`kill {}` on {}", self.pid, self.host),
        }
    }

    /// How to check from elsewhere that the holder no longer runs.
    fn check_hint(&self) -> String {
        match &self.slurm_job {
            Some(job) => {
                format!("`squeue -j {job}` lists nothing, and `ps -p {}` on {} shows nothing", self.pid, self.host)
            }
            None => format!("`ps -p {}` on {} shows nothing", self.pid, self.host),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on host {}, started {}, running `{}`", self.pid, self.host, self.started, self.command_line)?;
        if let Some(job) = &self.slurm_job {
            write!(f, " (Slurm job {job})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "output folder {path} does not exist: run `distributed-downloader prep --output {path}` first, or check \
         the folder name"
    )]
    NoFolder { path: PathBuf },
    #[error(
        "{path} is held by {holder}: one process at a time writes an output folder. Wait for it to end, or stop \
         it ({}), then re-run", .holder.stop_hint()
    )]
    Held { path: PathBuf, holder: Box<Holder> },
    #[error(
        "{path} is held by {holder}, on another host than this one ({here}), so whether it still runs cannot be \
         checked from here. Make sure no job of it still runs ({}), then remove the file {path} and re-run",
        .holder.check_hint()
    )]
    HeldElsewhere { path: PathBuf, holder: Box<Holder>, here: String },
    #[error(
        "{path} exists but is not a lock this program can read ({reason}); another process may be creating it \
         this instant. Re-run in a moment; if it stays, make sure no download, profile or prep runs on this \
         folder, then remove the file {path} and re-run"
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the stale lock {path} of {holder} is being taken over by another process ({marker} exists), which has \
         not finished. Re-run in a moment; if {marker} stays, make sure no download, profile or prep runs on this \
         folder, then remove {marker} and {path} and re-run"
    )]
    TakeoverStuck { path: PathBuf, marker: PathBuf, holder: Box<Holder> },
    #[error(
        "{path} kept changing while this process tried to take it: several processes are starting on this \
         folder at once. Run one at a time"
    )]
    Contended { path: PathBuf },
    #[error("cannot {action} {path}: {source}; check that the output folder is writable")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rank 0 could not lock the output folder: {message}")]
    OnRank0 { message: String },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LockError + 'a {
    move |source| LockError::Io { action, path: path.to_path_buf(), source }
}

/// The writer lock of one output folder, held until dropped.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    holder: Holder,
}

impl OutputLock {
    /// Takes the lock of output folder `out` for this process, running `command` (`download`,
    /// `prep`, `verify --repair`, ...). Refuses at once when a live process holds it; takes over,
    /// with a message on stderr, a lock whose process on this host is gone.
    pub fn acquire(out: &Path, command: &str) -> Result<OutputLock, LockError> {
        acquire_as(out, Holder::me(command))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let ours = read_holder(&self.path).is_some_and(|(_, h)| h.same_lock(&self.holder));
        if !ours {
            eprintln!(
                "warning: {} no longer holds this process's lock (it was removed or replaced by hand); left as it is",
                self.path.display()
            );
            return;
        }
        // Nothing to do on failure but say so: the next writer reports the lock it finds.
        let removed = fs::remove_file(&self.path).and_then(|()| sync_dir(parent(&self.path)));
        if let Err(e) = removed {
            eprintln!("warning: cannot remove the lock {}: {e}; remove it by hand", self.path.display());
        }
    }
}

/// Rank 0 of a job takes the lock of `out`; the other ranks learn through `broadcast` (rank 0's
/// bytes on every rank) whether it did, so that none waits on a rank 0 that gave up. Rank 0 gets
/// the guard, the others `None`; when rank 0 is refused, every rank returns an error.
pub fn acquire_on_root(
    is_root: bool,
    out: &Path,
    command: &str,
    broadcast: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<Option<OutputLock>, LockError> {
    if is_root {
        let result = OutputLock::acquire(out, command);
        let verdict: Result<(), String> = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        broadcast(serde_json::to_vec(&verdict).expect("a verdict serialises"));
        return result.map(Some);
    }
    let bytes = broadcast(Vec::new());
    match serde_json::from_slice::<Result<(), String>>(&bytes) {
        Ok(Ok(())) => Ok(None),
        Ok(Err(message)) => Err(LockError::OnRank0 { message }),
        Err(e) => Err(LockError::OnRank0 { message: format!("rank 0 sent an unreadable answer ({e})") }),
    }
}

/// What [`release_for_job`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum JobRelease {
    /// The lock was the job's, and is removed.
    Released(Box<Holder>),
    /// No lock: the job released it itself.
    NotLocked,
    /// Another holder's lock, kept.
    OtherHolder(Box<Holder>),
}

/// At the end of Slurm job `job`: removes the lock of `out` if that job holds it (a node crash or
/// a kill left it behind). The lock of any other holder is kept.
pub fn release_for_job(out: &Path, job: &str) -> Result<JobRelease, LockError> {
    let path = lock_file(out);
    let Some((content, holder)) = read_settled(&path)? else { return Ok(JobRelease::NotLocked) };
    if holder.slurm_job.as_deref() != Some(job) {
        return Ok(JobRelease::OtherHolder(Box::new(holder)));
    }
    // The job's processes are gone, but a newcomer may be taking the lock over right now: the
    // same protocol as a take-over removes exactly the content judged.
    match take_over(out, &path, &content)? {
        TakeOver::Removed => Ok(JobRelease::Released(Box::new(holder))),
        TakeOver::Changed => Ok(JobRelease::NotLocked),
        TakeOver::Busy(marker) => Err(LockError::TakeoverStuck { path, marker, holder: Box::new(holder) }),
    }
}

fn acquire_as(out: &Path, me: Holder) -> Result<OutputLock, LockError> {
    if !out.is_dir() {
        return Err(LockError::NoFolder { path: out.to_path_buf() });
    }
    let path = lock_file(out);
    let mut bytes = serde_json::to_vec_pretty(&me).expect("a holder serialises");
    bytes.push(b'\n');
    let mut busy = None;
    for _ in 0..ATTEMPTS {
        if create_new(&path, &bytes).map_err(io("create", &path))? {
            sync_dir(out).map_err(io("sync", out))?;
            return Ok(OutputLock { path, holder: me });
        }
        let Some((content, holder)) = read_settled(&path)? else { continue }; // released meanwhile
        let why = match judge(&holder) {
            Verdict::Held => return Err(LockError::Held { path, holder: Box::new(holder) }),
            Verdict::Elsewhere => {
                return Err(LockError::HeldElsewhere { path, holder: Box::new(holder), here: host_name().into() })
            }
            Verdict::Stale(why) => why,
        };
        match take_over(out, &path, &content)? {
            TakeOver::Removed => {
                eprintln!("{}: took over the lock {} of {holder}: {why}", me.command, path.display())
            }
            TakeOver::Changed => {}
            TakeOver::Busy(marker) => {
                busy = Some((marker, holder));
                std::thread::sleep(BUSY_WAIT);
            }
        }
    }
    Err(match busy {
        Some((marker, holder)) => LockError::TakeoverStuck { path, marker, holder: Box::new(holder) },
        None => LockError::Contended { path },
    })
}

/// Creates `path` with `bytes` and fsyncs it, unless it exists (`Ok(false)`).
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = fs::remove_file(path); // ours, half written: a lock nobody could read
        return Err(e);
    }
    Ok(true)
}

/// The lock's bytes and holder; `None` when there is no lock.
fn read_holder(path: &Path) -> Option<(Vec<u8>, Holder)> {
    let bytes = fs::read(path).ok()?;
    let holder = serde_json::from_slice(&bytes).ok()?;
    Some((bytes, holder))
}

/// Like [`read_holder`], but a lock that does not parse is read again for a while (its creator
/// may not have written it yet) before it is reported.
fn read_settled(path: &Path) -> Result<Option<(Vec<u8>, Holder)>, LockError> {
    let mut reason = String::new();
    for _ in 0..SETTLE_TRIES {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", path)(e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(holder) => return Ok(Some((bytes, holder))),
            Err(e) => reason = if bytes.is_empty() { "it is empty".into() } else { e.to_string() },
        }
        std::thread::sleep(SETTLE_WAIT);
    }
    Err(LockError::Unreadable { path: path.to_path_buf(), reason })
}

enum Verdict {
    Held,
    Elsewhere,
    /// Why the holder is gone.
    Stale(&'static str),
}

fn judge(holder: &Holder) -> Verdict {
    if holder.host != host_name() {
        return Verdict::Elsewhere;
    }
    match probe(holder.pid) {
        Liveness::Dead => Verdict::Stale("that process is gone"),
        Liveness::Alive { start: Some(now) } if holder.pid_start.is_some_and(|then| then != now) => {
            Verdict::Stale("that process is gone (its pid now belongs to a process started later)")
        }
        Liveness::Alive { .. } => Verdict::Held,
    }
}

enum TakeOver {
    /// The stale lock was removed: try to create ours.
    Removed,
    /// The lock is no longer the one judged (released, or taken by someone else): start again.
    Changed,
    /// Another newcomer is taking over the same stale lock (its marker).
    Busy(PathBuf),
}

/// Removes the lock `path` if it still holds `content`, race-free: only the creator of the
/// marker named after `content` may remove it, and `content` never comes back once removed.
fn take_over(out: &Path, path: &Path, content: &[u8]) -> Result<TakeOver, LockError> {
    let marker = path.with_file_name(format!("{}.takeover-{:016x}", super::paths::LOCK_FILE, fnv1a(content)));
    if !create_new(&marker, host_name().as_bytes()).map_err(io("create", &marker))? {
        return Ok(TakeOver::Busy(marker));
    }
    let outcome = match fs::read(path) {
        Ok(now) if now == content => {
            #[cfg(test)]
            tests::before_remove();
            fs::remove_file(path)
                .and_then(|()| sync_dir(out))
                .map(|()| TakeOver::Removed)
                .map_err(io("remove the stale lock", path))
        }
        Ok(_) => Ok(TakeOver::Changed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TakeOver::Changed),
        Err(e) => Err(io("read", path)(e)),
    };
    let _ = fs::remove_file(&marker); // a leftover marker is reported by the next take-over
    outcome
}

/// FNV-1a: a stable name for a lock's content, the same in every build and process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Whether a process of this host lives, and when it started.
#[derive(Debug, PartialEq, Eq)]
enum Liveness {
    Dead,
    Alive { start: Option<u64> },
}

/// `/proc/<pid>/stat` gives state and start time; where it is missing (another OS, or
/// `hidepid` hiding other users' processes) `kill(pid, 0)` tells whether the pid exists.
fn probe(pid: u32) -> Liveness {
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        return match rest.first() {
            Some(&"Z") | Some(&"X") => Liveness::Dead, // a zombie holds nothing
            _ => Liveness::Alive { start: rest.get(19).and_then(|s| s.parse().ok()) }, // field 22
        };
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else { return Liveness::Alive { start: None } };
    if pid <= 0 {
        return Liveness::Alive { start: None }; // not a process: cannot judge, so it holds
    }
    // SAFETY: signal 0 sends nothing; the call only checks that the pid exists.
    let r = unsafe { libc::kill(pid, 0) };
    if r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
        Liveness::Alive { start: None }
    } else {
        Liveness::Dead
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
