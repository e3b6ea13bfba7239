//! Tests of `hdf5_io`: round trips, no replacing, damaged datasets and checksums.

use super::*;
use crate::store::shards::image_data::{is_concatenated, to_concatenated, DATA_OFFSET};

pub fn sample() -> ShardContents {
    let ok = |i: u32| SuccessRecord {
        uuid: format!("uuid-{i}"),
        url: format!("http://a.org/{i}.jpg"),
        server: "a.org".into(),
        source_ids: vec![format!("{i}"), "x\"y".into()],
        original_width: 4000 + i,
        original_height: 3000,
        stored_width: 1024,
        stored_height: 768,
        format: "jpeg".into(),
        data: vec![i as u8; 10 + i as usize],
        sha256: "ab".repeat(32),
        md5: "cd".repeat(16),
        fetched_at: 1.7e9,
        // The second image came through two redirects.
        final_url: if i == 1 { "https://cdn.a.org/1.jpg".into() } else { String::new() },
        etag: if i == 0 { "\"abc\"".into() } else { String::new() },
        last_modified: if i == 0 { "Tue, 01 Dec 2026 00:00:00 GMT".into() } else { String::new() },
        redirects: if i == 1 { 2 } else { 0 },
        // The third was kept as it came and did not decode: no perceptual hash.
        pdq: if i == 2 { String::new() } else { format!("{i:x}").repeat(64) },
        pdq_quality: if i == 2 { 0 } else { 90 + i as u8 },
        phash: if i == 2 { 0 } else { u64::MAX - u64::from(i) },
        version: 1,
        checked_at: 1.7e9,
        check_error: String::new(),
    };
    ShardContents {
        successes: (0..3).map(ok).collect(),
        failures: vec![FailureRecord {
            uuid: "uuid-9".into(),
            url: "http://a.org/9.jpg".into(),
            server: "a.org".into(),
            source_ids: vec!["9".into()],
            error_class: "http_4xx".into(),
            detail: "404 Not Found\0with a NUL".into(),
            attempts: 1,
            http_status: 404,
            retriable: false,
            failed_at: 1.7e9,
        }],
    }
}

#[test]
fn a_shard_reads_back_exactly_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let contents = sample();
    let path = write_shard(dir.path(), 7, &contents, "batch-a").unwrap();
    assert_eq!(path.file_name().unwrap(), "shard-000007.h5");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "only the committed shard: {names:?}");
    let back = read_shard(&path).unwrap();
    assert_eq!(back.successes, contents.successes);
    assert_eq!(back.failures[0].detail, "404 Not Found\u{FFFD}with a NUL");
    let index = read_index(&path).unwrap();
    assert_eq!(index.succeeded, vec!["uuid-0", "uuid-1", "uuid-2"]);
    let row = FailedRow { uuid: "uuid-9".into(), class: "http_4xx".into(), retriable: false, failed_at: 1.7e9 };
    assert_eq!(index.failed, vec![row]);
    assert_eq!(index.data_bytes, 10 + 11 + 12);
    assert_eq!(index.batch_id.as_deref(), Some("batch-a"), "the batch content id is kept");
}

#[test]
fn a_committed_shard_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    let before = fs::read(&first).unwrap();
    let empty = ShardContents { successes: vec![], failures: vec![] };
    let err = write_shard(dir.path(), 0, &empty, "batch-a").unwrap_err();
    assert!(matches!(err, ShardError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("another download"), "{err}");
    assert_eq!(fs::read(&first).unwrap(), before, "the committed shard is unchanged");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
}

#[test]
fn an_empty_shard_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_shard(dir.path(), 0, &ShardContents::default(), "batch-a").unwrap();
    let index = read_index(&path).unwrap();
    assert_eq!(index, ShardIndex { batch_id: Some("batch-a".into()), ..ShardIndex::default() });
}

#[test]
fn crash_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("shard-000001.h5.tmp"), b"half").unwrap();
    write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    assert_eq!(remove_leftovers(dir.path()).unwrap(), 1);
    assert!(shard_path(dir.path(), 0).exists());
}

#[test]
fn each_image_carries_a_checksum_of_its_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    let records = read_records(&path, false).unwrap();
    let want: Vec<u32> = sample().successes.iter().map(|s| crc32fast::hash(&s.data)).collect();
    assert_eq!(records.stored_crc32, Some(want));
    assert_eq!(records.lengths, [10, 11, 12]);
    let images = ImageData::open(&path).unwrap();
    assert_eq!(images.read(2).unwrap(), sample().successes[2].data);
    assert!(matches!(images.read(3), Err(ShardError::Damaged { .. })), "a row past the end");
}

#[test]
fn many_images_are_read_together_and_a_bad_span_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    let (records, images) = open_records(&path).unwrap();
    assert_eq!(records, read_records(&path, false).unwrap(), "one open reads what read_records reads");
    let want: Vec<Vec<u8>> = sample().successes.into_iter().map(|s| s.data).collect();
    let got: Vec<Vec<u8>> = images.read_many(&[0, 1, 2]).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, want, "every image, in order, from one read of neighbouring rows");
    let got = images.read_many(&[0, 7, 2]);
    assert!(matches!(got[1], Err(ShardError::Damaged { .. })), "the row past the end: {:?}", got[1]);
    assert_eq!((got[0].as_ref().unwrap(), got[2].as_ref().unwrap()), (&want[0], &want[2]), "its neighbours are read");
}

#[test]
fn a_damaged_shard_is_an_error_naming_the_file_never_a_panic_or_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let damage = |seq: u64, dataset: &str, change: &dyn Fn(&hdf5::Group)| -> String {
        let path = write_shard(dir.path(), seq, &sample(), "batch-a").unwrap();
        {
            let g = hdf5::File::open_rw(&path).unwrap().group(dataset.split('/').next().unwrap()).unwrap();
            g.unlink(dataset.split('/').nth(1).unwrap()).unwrap();
            change(&g);
        }
        let err = read_records(&path, true).unwrap_err();
        assert!(matches!(err, ShardError::Damaged { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()) && msg.contains("verify --full --repair"), "{msg}");
        msg
    };
    let msg = damage(0, "images/data_length", &|g| put(g, DATA_LENGTH, &[10u64, 11, 1 << 40]).unwrap());
    assert!(msg.contains("image 2 has 12 bytes where images/data_length says"), "{msg}");
    let msg = damage(1, "images/url", &|g| put(g, "url", &strings(["a".to_string()].into_iter())).unwrap());
    assert!(msg.contains("images/url has 1 entries"), "{msg}");
    let msg =
        damage(2, "errors/source_ids", &|g| put(g, "source_ids", &strings(["{".to_string()].into_iter())).unwrap());
    assert!(msg.contains("errors/source_ids of row uuid-9"), "{msg}");
    let msg = damage(3, "errors/retriable", &|g| put::<u8>(g, "retriable", &[]).unwrap());
    assert!(msg.contains("errors/retriable"), "{msg}");
    let index = read_index(&shard_path(dir.path(), 3)).unwrap_err();
    assert!(matches!(index, ShardError::Damaged { .. }), "the index is checked too: {index}");
}

#[test]
fn a_shard_written_before_redirects_were_recorded_reads_as_no_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    {
        let g = hdf5::File::open_rw(&path).unwrap().group("images").unwrap();
        g.unlink(FINAL_URL).unwrap();
        g.unlink(REDIRECTS).unwrap();
    }
    let back = read_shard(&path).unwrap();
    assert!(back.successes.iter().all(|s| s.final_url.is_empty() && s.redirects == 0), "{:?}", back.successes);
    assert_eq!(back.successes.len(), 3);
}

#[test]
fn a_shard_written_before_perceptual_hashes_reads_as_having_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    assert_eq!(read_shard(&path).unwrap().successes, sample().successes, "the hashes are written and read back");
    {
        let g = hdf5::File::open_rw(&path).unwrap().group("images").unwrap();
        for name in [PDQ, PDQ_QUALITY, PHASH] {
            g.unlink(name).unwrap();
        }
    }
    let back = read_shard(&path).unwrap();
    let none = |s: &SuccessRecord| s.pdq.is_empty() && s.pdq_quality == 0 && s.phash == 0;
    assert!(back.successes.iter().all(none), "{:?}", back.successes);
    assert_eq!(back.successes.len(), 3);
}

#[test]
fn a_shard_of_the_older_concatenated_layout_reads_back_exactly_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_shard(dir.path(), 0, &sample(), "batch-a").unwrap();
    assert!(!is_concatenated(&path).unwrap(), "new shards store one element per image");
    to_concatenated(&path);
    assert!(is_concatenated(&path).unwrap());
    assert_eq!(read_shard(&path).unwrap().successes, sample().successes, "every record and byte");
    let want: Vec<Vec<u8>> = sample().successes.into_iter().map(|s| s.data).collect();
    let images = ImageData::open(&path).unwrap();
    let got: Vec<Vec<u8>> = images.read_many(&[2, 0, 1]).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, [want[2].clone(), want[0].clone(), want[1].clone()]);
    drop(images);
    assert_eq!(read_index(&path).unwrap().data_bytes, 10 + 11 + 12);
    {
        let g = hdf5::File::open_rw(&path).unwrap().group("images").unwrap();
        g.unlink(DATA_OFFSET).unwrap();
        put(&g, DATA_OFFSET, &[0u64, 10, 1 << 40]).unwrap();
    }
    let err = read_records(&path, true).unwrap_err();
    assert!(matches!(err, ShardError::Damaged { .. }) && err.to_string().contains("past the end"), "{err}");
}
