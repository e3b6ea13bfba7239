//! `verify --repair`: moves bad shards to the quarantine folder, keeps their good rows in a new
//! shard of the batch, and removes the batch's `ledger.json`, so that exactly the bad rows are
//! pending and the next `download` fetches them again (the ledger derives "done" from the
//! shards present).
//!
//! Runs on one process holding the output folder's writer lock (rank 0, after the gather), so no
//! writer changes a batch while it is repaired. The order is crash-safe: the summary goes
//! first (nothing trusts old counts), then the bad shard moves out (its rows become pending),
//! then its good rows come back as a new shard read from the quarantined file. A crash between
//! two steps costs at most fetching the good rows again, and never counts a row twice.
//!
//! Does not repair duplicates or batches with more rows than prep cut (a person decides), nor a
//! batch folder that cannot be listed: those are reported as not repaired.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::report::{Kind, Problem, Repair, Report};
use super::scan::{check_images, read_batch, BatchScan};
use crate::store::atomic;
use crate::store::paths::batch_quarantine;
use crate::store::shards::compact::rewrite_shard;
use crate::store::shards::summary::SUMMARY_FILE;
use crate::store::tables::read_servers_table;

/// Repairs what `report` found in `out` (see the module doc).
pub fn repair(out: &Path, report: &Report) -> Repair {
    let mut repair = Repair::default();
    let mut batches: BTreeMap<(&str, u64), Vec<&Problem>> = BTreeMap::new();
    for p in &report.problems {
        batches.entry((&p.server, p.partition)).or_default().push(p);
    }
    let servers = match read_servers_table(out) {
        Ok(s) => s,
        Err(e) => {
            repair.not_repaired.push(format!("nothing: {e}"));
            return repair;
        }
    };
    for ((server, partition), problems) in batches {
        let rows = servers.iter().find(|s| s.server_name == server).map(|s| s.rows_in(out, partition));
        match repair_batch(out, server, partition, &problems, &mut repair) {
            Ok(None) => {}
            Ok(Some(recorded)) => match rows {
                Some(Ok(n)) => repair.pending_rows += n.saturating_sub(recorded),
                _ => repair
                    .not_repaired
                    .push(format!("server_name={server}/partition_id={partition}: cannot count its rows")),
            },
            Err(e) => repair.not_repaired.push(format!("server_name={server}/partition_id={partition}: {e}")),
        }
    }
    repair
}

/// Repairs one batch; returns how many rows have a final record afterwards (`None` when no
/// shard was touched).
fn repair_batch(
    out: &Path,
    server: &str,
    partition: u64,
    problems: &[&Problem],
    repair: &mut Repair,
) -> Result<Option<u64>, String> {
    for p in problems {
        let why = match p.kind {
            Kind::Duplicate => "a row recorded twice needs a person to decide which record is right",
            Kind::TooManyRows => {
                "the batch was cut differently by a later prep; re-run prep with the input it was cut from"
            }
            Kind::Unreadable if p.shard.is_none() => "fix the file system or permissions, then run verify again",
            _ => continue,
        };
        repair.not_repaired.push(format!("{p} ({why})"));
    }
    let in_shard = |p: &&&Problem| matches!(p.kind, Kind::Unreadable | Kind::Checksum | Kind::Decode);
    let bad_shards: BTreeSet<PathBuf> = problems.iter().filter(in_shard).filter_map(|p| p.shard.clone()).collect();
    if bad_shards.is_empty() && !problems.iter().any(|p| p.kind == Kind::Summary) {
        return Ok(None);
    }
    let scan = read_batch(out, server, partition)?.ok_or("its shard folder is gone")?;
    // 1. No reader may trust counts from before the repair.
    match fs::remove_file(scan.dir.join(SUMMARY_FILE)) {
        Ok(()) => repair.summaries_removed += 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", scan.dir.join(SUMMARY_FILE).display())),
    }
    if bad_shards.is_empty() {
        return Ok(Some(scan.finals.len() as u64));
    }
    // 2. What each bad shard keeps: the rows whose final record it holds, but its bad images
    // (every image is checked here: a sample found the shard, not all its bad rows).
    let mut plans: Vec<(usize, HashSet<String>)> = Vec::new();
    let mut bad_rows: HashSet<String> = HashSet::new();
    for (i, shard) in scan.shards.iter().enumerate().filter(|(_, s)| bad_shards.contains(&s.path)) {
        let keep = match &shard.records {
            Err(_) => HashSet::new(),
            Ok(r) => {
                // An image that cannot be read is a bad row like one that does not decode.
                let all: Vec<usize> = (0..r.contents.successes.len()).collect();
                let bad = check_images(shard, &all);
                let bad: HashSet<&str> = bad.iter().map(|(j, _, _)| r.contents.successes[*j].uuid.as_str()).collect();
                bad_rows.extend(bad.iter().map(|u| u.to_string()));
                let ids =
                    r.contents.successes.iter().map(|s| &s.uuid).chain(r.contents.failures.iter().map(|f| &f.uuid));
                ids.filter(|u| scan.finals.get(*u).is_some_and(|f| f.shard == i) && !bad.contains(u.as_str()))
                    .cloned()
                    .collect()
            }
        };
        plans.push((i, keep));
    }
    // 3. Move them out, with the merge leftovers their `compacts_below` hid (they would count again).
    let moving: HashSet<usize> = plans.iter().map(|(i, _)| *i).collect();
    let new_cutoff = (0..scan.shards.len())
        .filter(|i| !moving.contains(i))
        .filter_map(|i| scan.shards[i].records.as_ref().ok()?.compacts_below)
        .max()
        .unwrap_or(0);
    let hidden = (0..scan.shards.len()).filter(|i| (new_cutoff..scan.cutoff).contains(&scan.shards[*i].seq));
    let mut moved: BTreeMap<usize, PathBuf> = BTreeMap::new();
    for i in moving.iter().copied().chain(hidden) {
        if let Entry::Vacant(slot) = moved.entry(i) {
            let to = quarantine(out, server, partition, &scan.shards[i].path)?;
            repair.moved.push((scan.shards[i].path.clone(), to.clone()));
            slot.insert(to);
        }
    }
    // 4. The good rows come back as new shards, numbered after every shard listed, read from
    // the quarantined files.
    let keeping = plans.iter().filter(|(_, keep)| !keep.is_empty());
    for (seq, (i, keep)) in (scan.next_seq..).zip(keeping) {
        let batch_id = scan.shards[*i].records.as_ref().ok().and_then(|r| r.batch_id.clone()).unwrap_or_default();
        let (path, rows) = rewrite_shard(&scan.dir, &moved[i], seq, &batch_id, &|u| keep.contains(u)).map_err(|e| {
            format!("cannot keep the good rows of {}: {e}; they will be fetched again", moved[i].display())
        })?;
        repair.rewritten.push((path, rows));
    }
    let after: BatchScan = read_batch(out, server, partition)?.ok_or("its shard folder is gone")?;
    repair.retry_failed_rows +=
        bad_rows.iter().filter(|u| after.finals.get(*u).is_some_and(|f| f.failure == Some(true))).count() as u64;
    Ok(Some(after.finals.len() as u64))
}

/// Moves `shard` into the batch's quarantine folder under a name not yet taken there; returns
/// where it went.
fn quarantine(out: &Path, server: &str, partition: u64, shard: &Path) -> Result<PathBuf, String> {
    let dir = batch_quarantine(out, server, partition);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = shard.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".h5").unwrap_or(&name).to_string();
    let mut to = dir.join(&name);
    for n in 1.. {
        match atomic::move_new(shard, &to) {
            Ok(()) => break,
            // A shard of the same name was quarantined before: keep both.
            Err(atomic::CommitError::Exists { .. }) => to = dir.join(format!("{stem}-{n}.h5")),
            Err(e) => return Err(format!("cannot move {} to {}: {e}", shard.display(), to.display())),
        }
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::compact::write_merged;
    use crate::store::shards::hdf5_io::{read_shard, write_shard};
    use crate::store::shards::ledger::batch_dir;
    use crate::store::shards::record::test_plain_image;
    use crate::store::shards::record::{FailureRecord, ShardContents, SuccessRecord};

    fn image(uuid: &str) -> SuccessRecord {
        test_plain_image(uuid, 1, 1, "rgb", vec![7; 3])
    }

    fn failure(uuid: &str, retriable: bool) -> FailureRecord {
        FailureRecord {
            uuid: uuid.into(),
            url: format!("http://a.org/{uuid}"),
            server: "a.org".into(),
            source_ids: vec![],
            error_class: if retriable { "timeout" } else { "http_4xx" }.into(),
            detail: String::new(),
            attempts: 1,
            http_status: 0,
            retriable,
            failed_at: 0.0,
        }
    }

    /// Overwrites image `uuid`'s stored bytes in `shard` (its CRC-32 no longer matches).
    fn damage(shard: &Path, uuid: &str) -> Problem {
        let records = crate::store::shards::hdf5_io::read_records(shard, false).unwrap();
        let i = records.contents.successes.iter().position(|s| s.uuid == uuid).unwrap();
        crate::store::shards::image_data::flip_stored_byte(shard, i, 0);
        Problem {
            kind: Kind::Checksum,
            server: "a.org".into(),
            partition: 0,
            shard: Some(shard.to_path_buf()),
            uuid: Some(uuid.into()),
            url: None,
            detail: String::new(),
        }
    }

    fn uuids(c: &ShardContents) -> Vec<&str> {
        c.successes.iter().map(|s| s.uuid.as_str()).chain(c.failures.iter().map(|f| f.uuid.as_str())).collect()
    }

    #[test]
    fn exactly_the_bad_rows_lose_their_record_and_a_retried_row_falls_back_to_its_earlier_failure() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let first = ShardContents { successes: vec![image("u2")], failures: vec![failure("u1", true)] };
        let second = ShardContents { successes: vec![image("u1"), image("u3")], failures: vec![failure("u4", false)] };
        write_shard(&dir, 0, &first, "b").unwrap();
        let bad = write_shard(&dir, 1, &second, "b").unwrap();
        fs::write(dir.join(SUMMARY_FILE), b"{}").unwrap();
        // The report named u3 only (a sample); u1 is damaged too, and found by the full check.
        let problems = [damage(&bad, "u3")];
        damage(&bad, "u1");
        let mut repair = Repair::default();
        let recorded = repair_batch(out.path(), "a.org", 0, &problems.iter().collect::<Vec<_>>(), &mut repair);
        assert_eq!(recorded, Ok(Some(3)), "u1 (its earlier failure), u2 and u4 have a final record; u3 none");
        assert_eq!(repair.retry_failed_rows, 1, "u1 is left to `download --retry-failed`");
        assert!(!dir.join(SUMMARY_FILE).exists(), "the stale summary is gone");
        let quarantined = batch_quarantine(out.path(), "a.org", 0).join("shard-000001.h5");
        assert_eq!(repair.moved, [(bad.clone(), quarantined.clone())]);
        assert_eq!(uuids(&read_shard(&dir.join("shard-000002.h5")).unwrap()), ["u4"], "the good rows are kept");
        assert_eq!(uuids(&read_shard(&quarantined).unwrap()), ["u1", "u3", "u4"], "the bad file is kept whole");
        assert!(repair.not_repaired.is_empty(), "{:?}", repair.not_repaired);
    }

    #[test]
    fn quarantining_a_merged_shard_takes_the_parts_it_hid_along() {
        let out = tempfile::tempdir().unwrap();
        let dir = batch_dir(out.path(), "a.org", 0);
        let parts: Vec<(u64, PathBuf)> = ["p", "q"]
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let c = ShardContents { successes: vec![image(u)], failures: vec![] };
                (i as u64, write_shard(&dir, i as u64, &c, "b").unwrap())
            })
            .collect();
        // A crash after the merged shard was committed and before its parts were removed.
        let (merged, _) = write_merged(&dir, &parts, 2, "b").unwrap();
        let problems = [damage(&merged, "q")];
        let mut repair = Repair::default();
        let recorded = repair_batch(out.path(), "a.org", 0, &problems.iter().collect::<Vec<_>>(), &mut repair);
        assert_eq!(recorded, Ok(Some(1)), "only p is recorded: the parts do not count again");
        assert_eq!(repair.moved.len(), 3, "{:?}", repair.moved);
        let left: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, ["shard-000003.h5"]);
        assert_eq!(uuids(&read_shard(&dir.join("shard-000003.h5")).unwrap()), ["p"]);
    }
}
