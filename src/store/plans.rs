//! Rank 0's plans: one JSON file per round, `plans/round-<n>.json`, never written over.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;
use super::{atomic, paths};

/// The recorded plans of `out` as (round, file), in round order; none when nothing was planned
/// yet. An entry that cannot be read is an error.
pub fn recorded(out: &Path) -> Result<Vec<(u32, PathBuf)>, StoreError> {
    let dir = out.join(paths::PLANS_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let io = |e| StoreError::Io { path: dir.clone(), source: e };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(round) = name.strip_prefix("round-").and_then(|r| r.strip_suffix(".json")?.parse::<u32>().ok()) {
            found.push((round, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The number of the next plan: one more than the highest recorded (0 when none is), so a plan
/// already recorded is never written over.
pub fn next_round(out: &Path) -> Result<u32, StoreError> {
    Ok(recorded(out)?.last().map_or(0, |(round, _)| round + 1))
}

/// Records `plan` as round `round`, atomically.
pub fn record<T: Serialize>(out: &Path, round: u32, plan: &T) -> Result<(), StoreError> {
    let text = serde_json::to_string_pretty(plan).expect("a plan serialises") + "\n";
    atomic::replace(&paths::plan_file(out, round), text.as_bytes())?;
    Ok(())
}

/// Reads one recorded plan.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Json { path: path.to_path_buf(), what: "a plan", source: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_numbered_after_the_highest_recorded_and_read_back() {
        let out = tempfile::tempdir().unwrap();
        assert_eq!(next_round(out.path()).unwrap(), 0);
        record(out.path(), 0, &vec![1, 2]).unwrap();
        record(out.path(), 7, &vec![3]).unwrap();
        std::fs::write(out.path().join("plans/notes.txt"), b"not a plan").unwrap();
        assert_eq!(next_round(out.path()).unwrap(), 8);
        let found = recorded(out.path()).unwrap();
        assert_eq!(found.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [0, 7]);
        assert_eq!(read::<Vec<u32>>(&found[1].1).unwrap(), [3]);
        std::fs::write(&found[0].1, b"{").unwrap();
        let err = read::<Vec<u32>>(&found[0].1).unwrap_err().to_string();
        assert!(err.contains("round-0000.json") && err.contains("a plan"), "{err}");
    }
}
