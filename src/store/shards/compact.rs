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
//!
//! Never losing data: each image copied is checked against its part's `stored_crc32` (when the
//! part has one) and carried into the merged shard. A mismatch, or any part that cannot be read
//! whole (a truncated file, datasets that disagree, unparsable `source_ids`), stops the merge
//! with an error naming the part: the temporary file is removed and no part is. `verify
//! --repair` deals with the damaged part.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use std::borrow::Cow;

use super::carried::{write_data, CarriedFrom};
use super::hdf5_io::{
    put, read_records, shard_path, write_batch_id, write_errors, write_image_fields, ShardError, COMPACTS_BELOW_ATTR,
    STORED_CRC32,
};
use super::image_data::ImageData;
use super::record::{FailureRecord, SuccessRecord};
use crate::store::atomic;

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
) -> Result<Option<Compacted>, ShardError> {
    if parts.len() < 2 {
        return Ok(None);
    }
    let (path, rows) = write_merged(dir, parts, seq, batch_id)?;
    remove_parts(dir, parts)?;
    Ok(Some(Compacted { path, parts: parts.len(), rows }))
}

/// Removes merged parts, then syncs the folder.
pub(crate) fn remove_parts(dir: &Path, parts: &[(u64, PathBuf)]) -> Result<(), ShardError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ShardError::Io { path, source }
    };
    for (_, path) in parts {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path)(e)),
            _ => {}
        }
    }
    atomic::sync_dir(dir).map_err(io(dir))
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
) -> Result<(PathBuf, usize), ShardError> {
    write_selected(dir, parts, seq, batch_id, Some(seq), &|_| true)
}

/// Writes shard `seq` of batch folder `dir` holding the final records in shard `from` of the
/// rows `keep` accepts, with their images checked against their stored CRC-32 as they are
/// copied. `verify --repair` uses it to keep a damaged shard's good rows. Nothing is removed;
/// returns the new shard and its row count.
pub fn rewrite_shard(
    dir: &Path,
    from: &Path,
    seq: u64,
    batch_id: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(PathBuf, usize), ShardError> {
    write_selected(dir, &[(0, from.to_path_buf())], seq, batch_id, None, keep)
}

/// The final records of `parts` that `keep` accepts, as one committed shard `seq` (with the
/// `compacts_below` attribute when given). On any error the temporary file is removed and
/// nothing else changes.
fn write_selected(
    dir: &Path,
    parts: &[(u64, PathBuf)],
    seq: u64,
    batch_id: &str,
    compacts_below: Option<u64>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(PathBuf, usize), ShardError> {
    let mut records = Vec::with_capacity(parts.len());
    let mut finals: HashMap<String, Final> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (p, (_, path)) in parts.iter().enumerate() {
        let part = read_records(path, false)?;
        for (i, s) in part.contents.successes.iter().enumerate() {
            if finals.insert(s.uuid.clone(), Final::Success(p, i)).is_none() {
                order.push(s.uuid.clone());
            }
        }
        for (i, f) in part.contents.failures.iter().enumerate() {
            if finals.insert(f.uuid.clone(), Final::Failure(p, i)).is_none() {
                order.push(f.uuid.clone());
            }
        }
        records.push(part);
    }
    order.retain(|uuid| keep(uuid));
    // A row a revalidation confirmed refers to its bytes in an earlier shard of this batch
    // (`download --revalidate`): when that shard is one of the parts, which this merge
    // replaces, the bytes are copied from it instead, so no reference outlives its target.
    let within = batch_relative(dir);
    let part_of = |c: &CarriedFrom| {
        let (folder, name) = c.from.rsplit_once('/')?;
        if within.as_deref() != Some(folder) {
            return None;
        }
        parts.iter().position(|(_, path)| path.file_name().and_then(|n| n.to_str()) == Some(name))
    };
    // Final records in first-seen order; each success remembers where its bytes are.
    let mut merged = Merged::default();
    for uuid in &order {
        match finals[uuid] {
            Final::Success(p, i) => {
                merged.successes.push(records[p].contents.successes[i].clone());
                let crc = records[p].stored_crc32.as_ref().map(|c| c[i]);
                let source = match records[p].carried[i].clone() {
                    Some(c) => match part_of(&c) {
                        Some(q) => {
                            // A row of `images/own` is the n-th row of the part stored there.
                            let own_rows = records[q].carried.iter().enumerate().filter(|(_, x)| x.is_none());
                            let row =
                                if c.own { own_rows.map(|(r, _)| r).nth(c.row as usize) } else { Some(c.row as usize) };
                            let row = row.ok_or_else(|| ShardError::Damaged {
                                path: parts[q].1.clone(),
                                what: format!(
                                    "row {} of its own images, which {} refers to, is not there",
                                    c.row, records[p].contents.successes[i].uuid
                                ),
                            })?;
                            Source { part: q, row, crc: Some(c.crc32), carried: None }
                        }
                        None => Source { part: p, row: i, crc, carried: Some(c) },
                    },
                    None => Source { part: p, row: i, crc, carried: None },
                };
                merged.sources.push(source);
            }
            Final::Failure(p, i) => merged.failures.push(records[p].contents.failures[i].clone()),
        }
    }
    // On any error the temporary file is removed and nothing else changes.
    let path = shard_path(dir, seq);
    atomic::write_with(&path, atomic::Mode::New, |tmp| write_tmp(tmp, parts, &merged, batch_id, compacts_below))?;
    Ok((path, order.len()))
}

/// A batch folder `dir` as a carried reference names it: relative to the output folder, three
/// folders up (`downloads/server_name=K/partition_id=N`); `None` for a folder less deep.
fn batch_relative(dir: &Path) -> Option<String> {
    let names: Vec<&str> = dir.iter().rev().take(3).map(|c| c.to_str()).collect::<Option<_>>()?;
    (names.len() == 3).then(|| format!("{}/{}/{}", names[2], names[1], names[0]))
}

/// Where one success's stored bytes are, and their recorded CRC-32 when its part has one.
struct Source {
    part: usize,
    row: usize,
    crc: Option<u32>,
    /// Set when the row's bytes are carried over from another dataset's shard.
    carried: Option<CarriedFrom>,
}

/// The records of a merged shard, in order, and where each image's bytes come from.
#[derive(Default)]
struct Merged {
    successes: Vec<SuccessRecord>,
    sources: Vec<Source>,
    failures: Vec<FailureRecord>,
}

/// Writes the merged shard into `tmp`, copying the images one at a time and checking each
/// against its part's CRC-32; a mismatch is [`ShardError::Damaged`] naming the part.
fn write_tmp(
    tmp: &Path,
    parts: &[(u64, PathBuf)],
    merged: &Merged,
    batch_id: &str,
    compacts_below: Option<u64>,
) -> Result<(), ShardError> {
    let h5err = |e| ShardError::Hdf5 { path: tmp.to_path_buf(), source: e };
    let file = hdf5::File::create(tmp).map_err(h5err)?;
    write_batch_id(&file, batch_id).map_err(h5err)?;
    if let Some(below) = compacts_below {
        file.new_attr::<u64>().create(COMPACTS_BELOW_ATTR).and_then(|a| a.write_scalar(&below)).map_err(h5err)?;
    }
    let g = file.create_group("images").map_err(h5err)?;
    // A row carried over from another dataset stays a reference; every other image is copied
    // here, checked against its part's CRC-32.
    let carried: Vec<Option<CarriedFrom>> = merged.sources.iter().map(|s| s.carried.clone()).collect();
    let mut open: Option<(usize, ImageData)> = None;
    let own = |i: usize| -> Result<Cow<'static, [u8]>, ShardError> {
        let (source, rec) = (&merged.sources[i], &merged.successes[i]);
        let part = &parts[source.part].1;
        if open.as_ref().is_none_or(|(q, _)| *q != source.part) {
            open = Some((source.part, ImageData::open(part)?));
        }
        let (_, images) = open.as_ref().expect("opened above");
        let bytes = images.read(source.row)?;
        let crc = crc32fast::hash(&bytes);
        if source.crc.is_some_and(|want| want != crc) {
            return Err(ShardError::Damaged {
                path: part.clone(),
                what: format!(
                    "the stored bytes of image {} ({}) have CRC-32 {crc:08x}, not the recorded {:08x}",
                    rec.uuid,
                    rec.url,
                    source.crc.unwrap_or_default()
                ),
            });
        }
        Ok(Cow::Owned(bytes))
    };
    let (lengths, crcs) = write_data(&g, merged.sources.len(), &carried, own, &h5err)?;
    write_image_fields(&g, &merged.successes, &lengths).map_err(h5err)?;
    // Test-only: a test killing the process here proves a crash mid-merge loses nothing.
    crate::store::pause::point("merge");
    put(&g, STORED_CRC32, &crcs).map_err(h5err)?;
    write_errors(&file, &merged.failures).map_err(h5err)?;
    file.flush().map_err(h5err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::hdf5_io::{read_index, read_shard, write_shard};
    use crate::store::shards::ledger::{batch_dir, scan, scan_batch, RetryFailed};
    use crate::store::shards::record::ShardContents;

    fn image(uuid: &str, byte: u8, len: usize) -> SuccessRecord {
        crate::store::shards::record::test_image(uuid, byte, len)
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
    fn a_revalidated_row_referring_to_a_part_keeps_its_bytes_when_the_parts_are_merged_away() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let first = ShardContents { successes: vec![image("a", 1, 300), image("b", 2, 500)], failures: vec![] };
        let part0 = write_shard(&dir, 0, &first, "batch-a").unwrap();
        // Row b confirmed by a 304: its record refers to row 1 of shard 0, by the path relative
        // to the output folder; row a changed and is stored anew.
        let rel = part0.strip_prefix(out.path()).unwrap().display().to_string();
        let confirmed = SuccessRecord { fetched_at: 2.0, data: Vec::new(), ..image("b", 2, 0) };
        let carried = vec![
            None,
            Some(CarriedFrom { from: rel, row: 1, own: false, length: 500, crc32: crc32fast::hash(&[2u8; 500]) }),
        ];
        let second = ShardContents { successes: vec![image("a", 7, 300), confirmed], failures: vec![] };
        let part1 = crate::store::shards::hdf5_io::write_shard_carrying(&dir, 1, &second, &carried, "batch-a").unwrap();
        let before = read_records(&part1, true).unwrap();
        assert_eq!(before.contents.successes[1].data, [2u8; 500], "read through the reference");
        let done = compact(&dir, &[(0, part0.clone()), (1, part1)], 2, "batch-a").unwrap().unwrap();
        assert!(!part0.exists(), "the part the reference pointed into is gone");
        let merged = read_records(&done.path, true).unwrap();
        let rows: Vec<(&str, &[u8], f64)> =
            merged.contents.successes.iter().map(|s| (s.uuid.as_str(), s.data.as_slice(), s.fetched_at)).collect();
        assert_eq!(rows, [("a", &[7u8; 300][..], 1.0), ("b", &[2u8; 500][..], 2.0)]);
        assert_eq!(merged.carried, [None, None], "the bytes are the merged shard's own");
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

    /// Compacting `parts` fails naming `bad`, and leaves every part and no temporary file.
    fn refused_naming(dir: &Path, parts: &[(u64, PathBuf)], bad: &Path) -> String {
        let err = compact(dir, parts, 3, "batch-a").unwrap_err().to_string();
        assert!(err.contains(&bad.display().to_string()), "the error names the part: {err}");
        for (_, p) in parts {
            assert!(p.exists(), "{} is still there", p.display());
        }
        let names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "no temporary file is left: {names:?}");
        assert!(!shard_path(dir, 3).exists(), "no merged shard");
        err
    }

    #[test]
    fn a_part_whose_image_bytes_changed_stops_the_merge_and_nothing_is_removed() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts = three_parts(&dir);
        crate::store::shards::image_data::flip_stored_byte(&parts[1].1, 0, 2);
        let err = refused_naming(&dir, &parts, &parts[1].1);
        assert!(err.contains("CRC-32") && err.contains("verify --full --repair"), "{err}");
    }

    #[test]
    fn a_truncated_part_stops_the_merge_and_nothing_is_removed() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts = three_parts(&dir);
        let len = fs::metadata(&parts[2].1).unwrap().len();
        fs::OpenOptions::new().write(true).open(&parts[2].1).unwrap().set_len(len / 2).unwrap();
        refused_naming(&dir, &parts, &parts[2].1);
    }

    #[test]
    fn unparsable_source_ids_stop_the_merge_instead_of_becoming_an_empty_list() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts = three_parts(&dir);
        {
            let g = hdf5::File::open_rw(&parts[0].1).unwrap().group("images").unwrap();
            g.unlink("source_ids").unwrap();
            put(&g, "source_ids", &crate::store::shards::hdf5_io::strings(["[\"A\", oops".to_string()].into_iter()))
                .unwrap();
        }
        let err = refused_naming(&dir, &parts, &parts[0].1);
        assert!(err.contains("source_ids") && err.contains("damaged"), "{err}");
    }

    #[test]
    fn the_merged_shard_carries_a_checksum_of_every_image_even_from_parts_of_older_versions() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts = three_parts(&dir);
        // Part 1 as an older version wrote it: no stored_crc32, the images concatenated.
        hdf5::File::open_rw(&parts[1].1).unwrap().group("images").unwrap().unlink(STORED_CRC32).unwrap();
        crate::store::shards::image_data::to_concatenated(&parts[1].1);
        assert_eq!(read_records(&parts[1].1, false).unwrap().stored_crc32, None);
        assert!(crate::store::shards::image_data::is_concatenated(&parts[1].1).unwrap());
        let done = compact(&dir, &parts, 3, "batch-a").unwrap().unwrap();
        let merged = read_records(&done.path, true).unwrap();
        let want: Vec<u32> = merged.contents.successes.iter().map(|s| crc32fast::hash(&s.data)).collect();
        assert_eq!(merged.stored_crc32, Some(want));
        let images: Vec<&[u8]> = merged.contents.successes.iter().map(|s| s.data.as_slice()).collect();
        assert_eq!(images, [&[1u8; 3][..], &[3u8; 4][..], &[2u8; 5][..]], "every image, byte for byte");
        assert!(!crate::store::shards::image_data::is_concatenated(&done.path).unwrap(), "merged per image");
    }
}
