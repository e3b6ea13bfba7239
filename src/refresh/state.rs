//! `refresh/state.json`: which old folder and input a refresh folder is made from, and how far
//! its work went, so that a refresh run again (after a kill, or to continue) takes up where it
//! stopped and never mixes two snapshots in one folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::carry::CarryReport;
use crate::store::atomic::{self, CommitError};
use crate::store::paths;

/// How far a refresh went; each step is marked once it is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshState {
    /// The old output folder and the new input, as given (made absolute).
    pub from: PathBuf,
    pub input: PathBuf,
    /// Names the old folder's shards under `carried/`.
    pub id: String,
    pub prepped: bool,
    pub planned: bool,
    pub carried: Option<CarryReport>,
}

impl RefreshState {
    /// A refresh not started yet.
    pub fn start(from: &Path, input: &Path) -> RefreshState {
        RefreshState {
            from: from.to_path_buf(),
            input: input.to_path_buf(),
            id: snapshot_id(from),
            prepped: false,
            planned: false,
            carried: None,
        }
    }

    /// The state of output folder `new`, `None` when no refresh was started there.
    pub fn read(new: &Path) -> Result<Option<RefreshState>, String> {
        let path = paths::refresh_state(new);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is damaged ({e}); remove the folder and run refresh again", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn write(&self, new: &Path) -> Result<(), CommitError> {
        atomic::replace(&paths::refresh_state(new), &serde_json::to_vec_pretty(self).expect("serialises"))
    }
}

/// A short name for the old folder's shards: its last path component (as letters, digits, `-`
/// and `_`) and a hash of its whole path and of this moment, so two snapshots never share one.
fn snapshot_id(from: &Path) -> String {
    let name: String = from
        .file_name()
        .map(|n| {
            n.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
        })
        .unwrap_or_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("{}\0{now}", from.display());
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{}-{:08x}", &name[..name.len().min(40)], hash as u32)
}
