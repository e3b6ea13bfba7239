//! `<output>/runs.jsonl`: one line when a download starts and one when it ends, written by rank
//! 0 with the committed counts at that moment. `status` reads recent throughput from it (the
//! ledger says where the job is, this file says where it was).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use crate::store::paths::RUNS_FILE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEvent {
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLine {
    pub event: RunEvent,
    /// Unix seconds.
    pub at: f64,
    /// The Slurm job id, when the run is a Slurm job.
    pub job: Option<String>,
    pub ranks: usize,
    /// Rows with a committed record, of which stored, and rows without one.
    pub done: u64,
    pub succeeded: u64,
    pub remaining: u64,
}

pub fn path(out: &Path) -> PathBuf {
    out.join(RUNS_FILE)
}

/// Appends one line (one `write` of a whole line, so concurrent readers never see half of one).
pub fn append(out: &Path, line: &RunLine) -> anyhow::Result<()> {
    let path = path(out);
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Every readable line, oldest first; a line cut by a crash is skipped (it is the last one, and
/// only throughput estimates read this file).
pub fn read(out: &Path) -> anyhow::Result<Vec<RunLine>> {
    let path = path(out);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Rows recorded per second recently: over the run in progress (its start line to `done_now`
/// at `now`) when the last line is a start, else over the last finished run. `None` when no run
/// lasted long enough to tell (10 s).
pub fn recent_rate(lines: &[RunLine], done_now: u64, now: f64) -> Option<(f64, f64)> {
    let last = lines.last()?;
    let (from, to_done, to_at) = match last.event {
        RunEvent::Start => (last, done_now, now),
        RunEvent::End => {
            let start = lines.iter().rev().skip(1).find(|l| l.event == RunEvent::Start)?;
            (start, last.done, last.at)
        }
    };
    let secs = to_at - from.at;
    (secs >= 10.0).then(|| (to_done.saturating_sub(from.done) as f64 / secs, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: RunEvent, at: f64, done: u64) -> RunLine {
        RunLine { event, at, job: None, ranks: 1, done, succeeded: done, remaining: 1000 - done }
    }

    #[test]
    fn recent_rate_reads_the_run_in_progress_or_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        append(dir.path(), &line(RunEvent::Start, 100.0, 0)).unwrap();
        append(dir.path(), &line(RunEvent::End, 200.0, 300)).unwrap();
        let lines = read(dir.path()).unwrap();
        assert_eq!(lines.len(), 2);
        // Finished: 300 rows in 100 s, whatever the time now.
        assert_eq!(recent_rate(&lines, 300, 5000.0), Some((3.0, 100.0)));
        // A run in progress: from its start line to what the ledger says now.
        append(dir.path(), &line(RunEvent::Start, 1000.0, 300)).unwrap();
        let lines = read(dir.path()).unwrap();
        assert_eq!(recent_rate(&lines, 500, 1050.0), Some((4.0, 50.0)));
        assert_eq!(recent_rate(&lines, 500, 1005.0), None, "5 s tells nothing");
        // A line cut by a crash is skipped.
        std::fs::OpenOptions::new().append(true).open(path(dir.path())).unwrap().write_all(b"{\"event\":").unwrap();
        assert_eq!(read(dir.path()).unwrap().len(), 3);
    }
}
