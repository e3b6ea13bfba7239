//! Tests of `ledger`: what is done, retries, duplicates, and when a summary is trusted.

use super::*;
use crate::store::shards::hdf5_io::write_shard;
use crate::store::shards::record::{FailureRecord, ShardContents};

fn failure(uuid: &str, class: &str, retriable: bool) -> FailureRecord {
    failure_at(uuid, class, retriable, 0.0)
}

fn failure_at(uuid: &str, class: &str, retriable: bool, failed_at: f64) -> FailureRecord {
    FailureRecord {
        uuid: uuid.into(),
        url: format!("http://a.org/{uuid}"),
        server: "a.org".into(),
        source_ids: vec![],
        error_class: class.into(),
        detail: String::new(),
        attempts: 3,
        http_status: 503,
        retriable,
        failed_at,
    }
}

#[test]
fn ledger_counts_committed_rows_and_ignores_crash_leftovers() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 2);
    let c1 = ShardContents { successes: vec![], failures: vec![failure("u1", "http_5xx", true)] };
    let c2 = ShardContents { successes: vec![], failures: vec![failure("u2", "http_4xx", false)] };
    write_shard(&dir, 0, &c1, "batch-a").unwrap();
    write_shard(&dir, 1, &c2, "batch-a").unwrap();
    let tmp = dir.join("shard-000002.h5.tmp");
    fs::write(&tmp, b"a crash left this").unwrap();
    let ledger = scan(out.path(), RetryFailed::No).unwrap();
    assert!(tmp.exists(), "a whole-folder scan only reads: another rank may be writing it");
    assert_eq!(ledger.batch("a.org", 2).unwrap().done_count, 2);
    let b = scan_batch(out.path(), "a.org", 2, RetryFailed::No).unwrap();
    assert_eq!(b.leftovers_removed, 1, "the owner removes it");
    assert!(!tmp.exists());
    assert_eq!(b.done.len(), 2);
    assert_eq!(b.next_seq, 2, "the next shard does not overwrite a committed one");
    assert_eq!((b.failed, b.retriable, b.to_retry), (2, 1, 0));
    assert_eq!(b.failed_by_class["http_4xx"], 1);
    assert_eq!(b.duplicates, 0);
}

#[test]
fn an_unreadable_shard_is_named_with_what_to_do() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("shard-000000.h5"), b"not hdf5").unwrap();
    let err = scan(out.path(), RetryFailed::No).unwrap_err().to_string();
    assert!(err.contains("shard-000000.h5") && err.contains("move it out"), "{err}");
}

#[test]
fn retry_reopens_only_retriable_failures_from_before_the_cutoff_and_the_last_record_wins() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    let old = ShardContents {
        successes: vec![],
        failures: vec![
            failure_at("timeout-old", "timeout", true, 100.0),
            failure_at("gone", "http_4xx", false, 100.0),
            failure_at("retried", "http_5xx", true, 100.0),
        ],
    };
    // A --retry-failed run that started at 200 gave "retried" a new final record, itself a
    // retriable failure: it is final for that run's cutoff, and not counted twice.
    let retry_run = ShardContents { successes: vec![], failures: vec![failure_at("retried", "timeout", true, 250.0)] };
    write_shard(&dir, 0, &old, "batch-a").unwrap();
    write_shard(&dir, 1, &retry_run, "batch-a").unwrap();

    let plain = scan_batch(out.path(), "a.org", 0, RetryFailed::No).unwrap();
    assert_eq!((plain.done_count, plain.failed, plain.retriable, plain.to_retry), (3, 3, 2, 0));
    assert_eq!((plain.superseded, plain.duplicates), (1, 0));
    assert_eq!(plain.failed_by_class.get("http_5xx"), None, "the last record's class counts");
    assert_eq!(plain.failed_by_class["timeout"], 2);

    let retry = scan_batch(out.path(), "a.org", 0, RetryFailed::Before(200.0)).unwrap();
    assert_eq!((retry.done_count, retry.to_retry), (2, 1));
    assert!(!retry.done.contains("timeout-old") && retry.done.contains("retried") && retry.done.contains("gone"));
    let whole = scan(out.path(), RetryFailed::Before(300.0)).unwrap();
    assert_eq!(whole.done(), 1, "a later cutoff reopens both retriable rows");
}

#[test]
fn a_row_recorded_twice_without_a_retriable_failure_first_is_a_duplicate() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    let once = ShardContents { successes: vec![], failures: vec![failure("u1", "http_4xx", false)] };
    write_shard(&dir, 0, &once, "batch-a").unwrap();
    write_shard(&dir, 1, &once, "batch-a").unwrap();
    let b = scan_batch(out.path(), "a.org", 0, RetryFailed::No).unwrap();
    assert_eq!((b.duplicates, b.superseded, b.failed, b.done_count), (1, 0, 1, 1));
}

#[test]
fn whole_folder_counts_come_from_the_summary_only_while_it_covers_the_shards_present() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    let one = |uuid: &str| ShardContents { successes: vec![], failures: vec![failure(uuid, "http_4xx", false)] };
    write_shard(&dir, 0, &one("u1"), "batch-a").unwrap();
    write_shard(&dir, 1, &one("u2"), "batch-a").unwrap();
    // A summary covering shards 0 and 1; its count differs from theirs, to show which is read.
    let covered = scan_batch(out.path(), "a.org", 0, RetryFailed::No).unwrap().shard_sizes;
    let summary = BatchSummary { next_seq: 2, failed: 7, shards: Some(covered), ..Default::default() };
    crate::store::shards::summary::write_summary(&dir, &summary).unwrap();
    let trusted = scan(out.path(), RetryFailed::No).unwrap();
    assert_eq!(trusted.failed(), 7, "read from the summary");
    assert_eq!(trusted.distrust_note(), None);
    assert_eq!(scan(out.path(), RetryFailed::Before(1e12)).unwrap().failed(), 2, "a retry cutoff reads shards");
    // A shard committed after the summary (a crash before its summary was written).
    write_shard(&dir, 2, &one("u3"), "batch-a").unwrap();
    let stale = scan(out.path(), RetryFailed::No).unwrap();
    assert_eq!(stale.failed(), 3, "a stale summary is not trusted");
    let note = stale.distrust_note().unwrap();
    assert!(note.contains("a.org/0") && note.contains("shard-000002 is not counted"), "{note}");
}

#[test]
fn a_middle_shard_moved_out_of_a_batch_its_summary_calls_complete_is_not_trusted() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    let one = |uuid: &str| ShardContents { successes: vec![], failures: vec![failure(uuid, "http_4xx", false)] };
    for (seq, uuid) in ["u0", "u1", "u2"].iter().enumerate() {
        write_shard(&dir, seq as u64, &one(uuid), "batch-a").unwrap();
    }
    let full = scan_batch(out.path(), "a.org", 0, RetryFailed::No).unwrap();
    crate::store::shards::summary::write_summary(&dir, &full.summary()).unwrap();
    assert_eq!(scan(out.path(), RetryFailed::No).unwrap().done(), 3);
    // The last shard is still there, so a check of the last number alone would trust it.
    fs::rename(dir.join("shard-000001.h5"), out.path().join("moved.h5")).unwrap();
    let after = scan(out.path(), RetryFailed::No).unwrap();
    assert_eq!(after.done(), 2, "the moved shard's row is not done");
    assert!(after.distrust_note().unwrap().contains("shard-000001 is counted in ledger.json but missing"));
}

#[test]
fn a_summary_of_an_older_version_is_not_trusted() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    let one = ShardContents { successes: vec![], failures: vec![failure("u1", "http_4xx", false)] };
    write_shard(&dir, 0, &one, "batch-a").unwrap();
    fs::write(
        dir.join("ledger.json"),
        r#"{"next_seq":1,"succeeded":0,"failed":9,"retriable":0,
        "failed_by_class":{},"data_bytes":0,"duplicates":0,"superseded":0,"batch_ids":[]}"#,
    )
    .unwrap();
    let ledger = scan(out.path(), RetryFailed::No).unwrap();
    assert_eq!(ledger.failed(), 1);
    assert!(ledger.distrust_note().unwrap().contains("older version"));
}

#[test]
fn a_batch_merged_while_status_reads_it_is_counted_from_the_merged_shard() {
    let out = tempfile::tempdir().unwrap();
    let dir = batch_dir(out.path(), "a.org", 0);
    let one = |uuid: &str| ShardContents { successes: vec![], failures: vec![failure(uuid, "http_4xx", false)] };
    write_shard(&dir, 0, &one("u0"), "batch-a").unwrap();
    write_shard(&dir, 1, &one("u1"), "batch-a").unwrap();
    // `status` lists the folder; the owner then merges both parts into shard 2 and removes them.
    let listed = list(&dir).unwrap();
    crate::store::shards::compact::compact(&dir, &listed.shards, 2, "batch-a").unwrap().unwrap();
    let b = counts_from(&dir, listed, Again::default()).unwrap();
    assert_eq!((b.done_count, b.failed, b.duplicates), (2, 2, 0));
    assert_eq!(b.shard_sizes.keys().copied().collect::<Vec<_>>(), vec![2]);
    // A shard that is there but unreadable is still an error, named.
    fs::write(dir.join("shard-000003.h5"), b"not hdf5").unwrap();
    let err = counts_from(&dir, list(&dir).unwrap(), Again::default()).unwrap_err().to_string();
    assert!(err.contains("shard-000003.h5") && err.contains("move it out"), "{err}");
}
