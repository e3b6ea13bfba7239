//! Whether the output folder's filesystem has room for prep, checked before the first row is
//! read, so that a GBIF-sized prep does not stop on a full disk after an hour.
//!
//! Owns: the estimate of the free space prep needs and the check against it. Does not own: the
//! flag that skips the check (`commands`), nor the intermediate files (`spill`, `batches`).

use std::fs;
use std::path::Path;

use super::input::Format;
use super::run::OUTPUTS;
use super::PrepError;

/// Free space prep needs in the output folder while it runs, per byte of a CSV/TSV input: its
/// intermediate files (uncompressed Arrow IPC, each deleted as soon as it has been read) and the
/// output peaked at 3.0 GB for the 2.7 GB input of `make bench-prep`.
pub const NEEDED_PER_INPUT_BYTE: f64 = 1.1;

/// The free space prep needs for `input`; `None` when that cannot be told from its size (a
/// parquet input is compressed by an unknown factor) or the input cannot be read (prep itself
/// then reports why).
pub fn needed_bytes(input: &Path, format: Format) -> Option<u64> {
    if format.resolve(input) == Format::Parquet {
        return None;
    }
    let size = fs::metadata(input).ok()?.len();
    Some((size as f64 * NEEDED_PER_INPUT_BYTE).ceil() as u64)
}

/// Refuses when the filesystem holding `output` (or, before it exists, its nearest existing
/// parent) has less than `needed` bytes free for this user. With `force`, what prep will remove
/// of its own earlier outputs there counts as free. A filesystem that cannot say how much is
/// free is not refused.
pub fn check(output: &Path, needed: u64, force: bool) -> Result<(), PrepError> {
    let existing = output.ancestors().find(|p| p.is_dir()).unwrap_or(Path::new("."));
    let Ok(free) = fs4::available_space(existing) else {
        return Ok(());
    };
    let reclaimed = if force { OUTPUTS.iter().map(|name| size_of(&output.join(name))).sum() } else { 0 };
    let available = free.saturating_add(reclaimed);
    if available >= needed {
        return Ok(());
    }
    Err(PrepError::NoSpace { path: output.to_path_buf(), needed: bytes(needed), available: bytes(available) })
}

/// The bytes of the files under `path` (itself, if a file); 0 for what cannot be read.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries.flatten().map(|e| size_of(&e.path())).sum()
}

/// A size for a person: GB with one decimal, or whole MB below a GB.
fn bytes(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1} GB", n as f64 / 1e9)
    } else {
        format!("{} MB", n.div_ceil(1_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_input_needs_a_bit_more_than_its_size_and_parquet_is_not_judged() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("multimedia.txt");
        fs::write(&tsv, vec![b'x'; 1000]).unwrap();
        assert_eq!(needed_bytes(&tsv, Format::Auto), Some(1100));
        let parquet = dir.path().join("multimedia.parquet");
        fs::write(&parquet, vec![b'x'; 1000]).unwrap();
        assert_eq!(needed_bytes(&parquet, Format::Auto), None);
        assert_eq!(needed_bytes(&dir.path().join("missing.txt"), Format::Auto), None);
    }

    #[test]
    fn too_little_space_is_refused_with_the_figures_and_the_ways_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("not-yet/made");
        check(&out, 1, false).unwrap();
        let err = check(&out, u64::MAX / 2, false).unwrap_err().to_string();
        for part in ["not-yet/made", " needed", " free", "--output", "--skip-space-check"] {
            assert!(err.contains(part), "`{part}` missing from: {err}");
        }
    }

    #[test]
    fn with_force_prep_s_earlier_outputs_count_as_free() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(out.join("urls/server=a.org")).unwrap();
        let old = 64_000_000u64;
        fs::write(out.join("urls/server=a.org/batch_0.parquet"), vec![0u8; old as usize]).unwrap();
        // Downloaded shards are kept by --force, so they free nothing.
        fs::write(out.join("shard.h5"), vec![0u8; 1000]).unwrap();
        let free = fs4::available_space(&out).unwrap();
        // Half of the old outputs more than is free now: only a forced run fits.
        let needed = free + old / 2;
        assert!(matches!(check(&out, needed, false), Err(PrepError::NoSpace { .. })));
        check(&out, needed, true).unwrap();
    }

    #[test]
    fn sizes_read_as_a_person_writes_them() {
        assert_eq!(bytes(2_700_000_000), "2.7 GB");
        assert_eq!(bytes(1_500_001), "2 MB");
    }
}
