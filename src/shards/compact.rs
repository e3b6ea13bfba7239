//! When a batch is complete, its shards become one file.
//!
//! Commits are frequent so that a crash costs minutes of work; that leaves a slow host's batch
//! in hundreds of small shards, and a multi-week run in millions of files. Once every row of a
//! batch has its record, the writer merges the batch's shards into the next shard number, with
//! each row's final record only (a row retried by `--retry-failed` keeps its last), and removes
//! the parts.
//!
//! Crash safety: the merged shard is committed like any other (temporary file, fsync, a rename
//! that never replaces) and carries `compacts_below = N`: it replaces every shard numbered below
//! N in its folder. A crash after the commit and before the parts are gone leaves both; the
//! ledger counts only the merged shard, and the batch's owner removes the parts when it next
//! opens the batch. A crash before the commit leaves only a temporary file, removed as usual.
//! Memory: the records' metadata and one image at a time.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::hdf5_io::{
    commit_no_replace, put, read_records, shard_path, tmp_path, write_batch_id, write_errors, write_image_fields,
    WriteError, COMPACTS_BELOW_ATTR,
};
use super::record::{FailureRecord, SuccessRecord};

/// What a compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    /// The merged shard.
    pub path: PathBuf,
    /// Shards merged into it and removed.
    pub parts: usize,
    pub rows: usize,
}

/// Merges `parts` (the committed shards of batch folder `dir`, with their sequence numbers, in
/// order) into shard `seq`, then removes them. `None` when there is nothing to merge.
pub fn compact(
    dir: &Path,
    parts: &[(u64, PathBuf)],
    seq: u64,
    batch_id: &str,
) -> Result<Option<Compacted>, WriteError> {
    if parts.len() < 2 {
        return Ok(None);
    }
    let (path, rows) = write_merged(dir, parts, seq, batch_id)?;
    remove_parts(dir, parts)?;
    Ok(Some(Compacted { path, parts: parts.len(), rows }))
}

/// Removes merged parts, then syncs the folder.
pub(crate) fn remove_parts(dir: &Path, parts: &[(u64, PathBuf)]) -> Result<(), WriteError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    for (_, path) in parts {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path)(e)),
            _ => {}
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Where a row's final record is: (part, success index) or (part, failure index).
#[derive(Debug, Clone, Copy)]
enum Final {
    Success(usize, usize),
    Failure(usize, usize),
}

/// Writes and commits the merged shard `seq`; returns its path and row count.
pub(crate) fn write_merged(
    dir: &Path,
    parts: &[(u64, PathBuf)],
    seq: u64,
    batch_id: &str,
) -> Result<(PathBuf, usize), WriteError> {
    let mut records = Vec::with_capacity(parts.len());
    let mut finals: HashMap<String, Final> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (p, (_, path)) in parts.iter().enumerate() {
        let (contents, spans) = read_records(path, false)?;
        for (i, s) in contents.successes.iter().enumerate() {
            if finals.insert(s.uuid.clone(), Final::Success(p, i)).is_none() {
                order.push(s.uuid.clone());
            }
        }
        for (i, f) in contents.failures.iter().enumerate() {
            if finals.insert(f.uuid.clone(), Final::Failure(p, i)).is_none() {
                order.push(f.uuid.clone());
            }
        }
        records.push((contents, spans));
    }
    // Final records in first-seen order; each success remembers where its bytes are.
    let mut successes: Vec<SuccessRecord> = Vec::new();
    let mut sources: Vec<(usize, u64, u64)> = Vec::new();
    let mut failures: Vec<FailureRecord> = Vec::new();
    for uuid in &order {
        match finals[uuid] {
            Final::Success(p, i) => {
                successes.push(records[p].0.successes[i].clone());
                let (offset, length) = records[p].1[i];
                sources.push((p, offset, length));
            }
            Final::Failure(p, i) => failures.push(records[p].0.failures[i].clone()),
        }
    }
    let tmp = tmp_path(dir, seq);
    let h5err = |e| WriteError::Hdf5 { path: tmp.clone(), source: e };
    {
        let file = hdf5::File::create(&tmp).map_err(h5err)?;
        write_batch_id(&file, batch_id).map_err(h5err)?;
        file.new_attr::<u64>().create(COMPACTS_BELOW_ATTR).and_then(|a| a.write_scalar(&seq)).map_err(h5err)?;
        let g = file.create_group("images").map_err(h5err)?;
        let lengths: Vec<u64> = sources.iter().map(|s| s.2).collect();
        let offsets: Vec<u64> = lengths.iter().scan(0u64, |at, n| Some(std::mem::replace(at, *at + n))).collect();
        write_image_fields(&g, &successes, &offsets, &lengths).map_err(h5err)?;
        let total: u64 = lengths.iter().sum();
        if total == 0 {
            put::<u8>(&g, "data", &[]).map_err(h5err)?;
        } else {
            let data = g.new_dataset::<u8>().shape(total as usize).create("data").map_err(h5err)?;
            let mut open: Option<(usize, hdf5::Dataset)> = None;
            for ((p, from, n), to) in sources.iter().zip(&offsets) {
                if open.as_ref().is_none_or(|(q, _)| q != p) {
                    let part = &parts[*p].1;
                    let ds = hdf5::File::open(part)
                        .and_then(|f| f.dataset("images/data"))
                        .map_err(|e| WriteError::Hdf5 { path: part.clone(), source: e })?;
                    open = Some((*p, ds));
                }
                let (_, ds) = open.as_ref().expect("opened above");
                let (from, n, to) = (*from as usize, *n as usize, *to as usize);
                let bytes = ds
                    .read_slice_1d::<u8, _>(from..from + n)
                    .map_err(|e| WriteError::Hdf5 { path: parts[*p].1.clone(), source: e })?;
                let bytes = bytes.as_slice().expect("a 1-d read is contiguous");
                data.write_slice(bytes, to..to + n).map_err(h5err)?;
            }
        }
        write_errors(&file, &failures).map_err(h5err)?;
        file.flush().map_err(h5err)?;
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path, source }
    };
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
    let path = shard_path(dir, seq);
    commit_no_replace(&tmp, &path)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok((path, order.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::hdf5_io::{read_index, read_shard, write_shard};
    use crate::shards::ledger::{batch_dir, scan, scan_batch, RetryFailed};
    use crate::shards::record::ShardContents;

    fn image(uuid: &str, byte: u8, len: usize) -> SuccessRecord {
        SuccessRecord {
            uuid: uuid.into(),
            url: format!("http://a.org/{uuid}"),
            server: "a.org".into(),
            source_ids: vec![uuid.to_uppercase()],
            original_width: 10,
            original_height: 20,
            stored_width: 10,
            stored_height: 20,
            format: "jpeg".into(),
            data: vec![byte; len],
            sha256: format!("sha-{uuid}"),
            md5: format!("md5-{uuid}"),
            fetched_at: 1.0,
        }
    }

    fn failure(uuid: &str, class: &str, retriable: bool) -> FailureRecord {
        FailureRecord {
            uuid: uuid.into(),
            url: format!("http://a.org/{uuid}"),
            server: "a.org".into(),
            source_ids: vec![],
            error_class: class.into(),
            detail: "d".into(),
            attempts: 1,
            http_status: 503,
            retriable,
            failed_at: 1.0,
        }
    }

    /// Three parts: two images, a failure later retried with success, and a plain failure.
    fn three_parts(dir: &Path) -> Vec<(u64, PathBuf)> {
        let parts = [
            ShardContents { successes: vec![image("a", 1, 3)], failures: vec![failure("r", "timeout", true)] },
            ShardContents { successes: vec![image("b", 2, 5)], failures: vec![failure("x", "http_4xx", false)] },
            ShardContents { successes: vec![image("r", 3, 4)], failures: vec![] },
        ];
        parts.iter().enumerate().map(|(i, c)| (i as u64, write_shard(dir, i as u64, c, "batch-a").unwrap())).collect()
    }

    #[test]
    fn a_batch_becomes_one_shard_of_final_records_with_every_image_byte_for_byte() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts = three_parts(&dir);
        let before = scan(out.path(), RetryFailed::No).unwrap();
        let done = compact(&dir, &parts, 3, "batch-a").unwrap().unwrap();
        assert_eq!((done.parts, done.rows), (3, 4));
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["shard-000003.h5"], "one file is left");
        let merged = read_shard(&done.path).unwrap();
        let images: Vec<(&str, &[u8])> =
            merged.successes.iter().map(|s| (s.uuid.as_str(), s.data.as_slice())).collect();
        assert_eq!(images, [("a", &[1u8; 3][..]), ("r", &[3u8; 4][..]), ("b", &[2u8; 5][..])]);
        assert_eq!(merged.successes[0].source_ids, ["A"]);
        assert_eq!(
            merged.failures.iter().map(|f| f.uuid.as_str()).collect::<Vec<_>>(),
            ["x"],
            "the retried failure is gone"
        );
        let index = read_index(&done.path).unwrap();
        assert_eq!((index.compacts_below, index.batch_id.as_deref()), (Some(3), Some("batch-a")));
        let after = scan(out.path(), RetryFailed::No).unwrap();
        assert_eq!(
            (after.succeeded(), after.failed(), after.done()),
            (before.succeeded(), before.failed(), before.done())
        );
        assert_eq!(scan_batch(out.path(), "a.org", 0, RetryFailed::No).unwrap().next_seq, 4);
    }

    #[test]
    fn a_crash_between_the_merged_commit_and_removing_the_parts_counts_no_row_twice() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts = three_parts(&dir);
        write_merged(&dir, &parts, 3, "batch-a").unwrap(); // and then the process died
        let ledger = scan(out.path(), RetryFailed::No).unwrap();
        let b = ledger.batch("a.org", 0).unwrap();
        assert_eq!((b.succeeded, b.failed, b.duplicates, b.done_count), (3, 1, 0, 4));
        // The owner opening the batch removes the replaced parts.
        let opened = scan_batch(out.path(), "a.org", 0, RetryFailed::No).unwrap();
        assert_eq!((opened.done.len(), opened.next_seq), (4, 4));
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["shard-000003.h5"]);
    }
}
