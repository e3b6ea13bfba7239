//! A command run as a child process with its wall time and peak resident memory: the child's
//! VmHWM (its high-water mark), read from /proc while it runs, the last value before it exits.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How often VmHWM is read. The mark only rises, so a slower poll misses only a rise in the last
/// interval before the child exits.
const POLL: Duration = Duration::from_millis(20);

/// What one run of a child showed.
pub struct Measured {
    pub status: ExitStatus,
    pub seconds: f64,
    /// The highest VmHWM read, in MiB.
    pub peak_mib: f64,
    /// What it printed, captured in `stdout_file` (a pipe could fill and stall it).
    pub stdout: String,
}

/// Runs `cmd` to its end, its stdout to `stdout_file` and its stderr discarded.
pub fn measure(cmd: &mut Command, stdout_file: &Path) -> anyhow::Result<Measured> {
    let out = std::fs::File::create(stdout_file).with_context(|| format!("cannot create {}", stdout_file.display()))?;
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text.lines().find_map(|l| l.strip_prefix("VmHWM:"));
            if let Some(kib) = hwm.and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()) {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let seconds = t.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(stdout_file).unwrap_or_default();
    Ok(Measured { status, seconds, peak_mib: peak_kib as f64 / 1024.0, stdout })
}
