//! Writing and reading one shard file, atomically, in a layout plain h5py reads with no plugins.
//!
//! ```text
//! /images/uuid, url, server, source_ids (JSON list), format, sha256, md5   variable-length UTF-8 strings [n]
//! /images/original_width, original_height, stored_width, stored_height     uint32 [n]
//! /images/data_offset, data_length                                         uint64 [n]
//! /images/data                                                             uint8 [total]: the stored bytes, concatenated
//! /images/fetched_at                                                       float64 [n], Unix seconds
//! /errors/uuid, url, server, source_ids, error_class, detail              strings [m]
//! /errors/attempts uint32, http_status uint16, retriable uint8, failed_at float64   [m]
//! ```
//! Image i is `images/data[data_offset[i] : data_offset[i] + data_length[i]]`. Concatenating the
//! bytes in one dataset (rather than a variable-length array per image) keeps writes to one call
//! and lets a reader slice one image without loading the others.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use hdf5::H5Type;

use super::record::{FailureRecord, ShardContents, SuccessRecord};

/// Extension of committed shards; anything else in a batch folder is ignored (and `.tmp` files
/// are leftovers of a crash, removed on resume).
pub const SHARD_EXT: &str = "h5";
const TMP_SUFFIX: &str = ".tmp";

/// Root attribute naming the content of the batch a shard belongs to (see
/// `prep::batches::batch_id`), so a batch re-cut by a later prep is never credited with rows it
/// no longer holds.
pub const BATCH_ID_ATTR: &str = "batch_id";

/// Root attribute of a compacted shard (see `compact`): it holds the final record of every row
/// of the shards numbered below this value in its folder, which it replaces.
pub const COMPACTS_BELOW_ATTR: &str = "compacts_below";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write shard {path}: {source}; check free space and permissions on the output folder")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "shard {path} already exists, and a committed shard is never replaced: is another download \
         running on this output folder? Stop it, then re-run (every committed shard is kept)"
    )]
    Exists { path: PathBuf },
    #[error("HDF5 error on shard {path}: {source}")]
    Hdf5 {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },
}

/// The committed name of shard `seq` in `dir`.
pub fn shard_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("shard-{seq:06}.{SHARD_EXT}"))
}

/// Writes `contents` as shard `seq` in `dir`: temporary file, fsync, a rename that never
/// replaces, fsync of `dir`. When this returns Ok the shard survives a crash or power loss; when
/// `seq` is already committed it returns [`WriteError::Exists`] and changes nothing.
pub fn write_shard(dir: &Path, seq: u64, contents: &ShardContents, batch_id: &str) -> Result<PathBuf, WriteError> {
    fs::create_dir_all(dir).map_err(|e| WriteError::Io { path: dir.to_path_buf(), source: e })?;
    let final_path = shard_path(dir, seq);
    // The process id keeps two writers of one name (two downloads started on one folder by
    // mistake) off each other's temporary file, so the second one meets `Exists`, not a lock.
    let tmp_path = tmp_path(dir, seq);
    let h5err = |e| WriteError::Hdf5 { path: tmp_path.clone(), source: e };
    {
        let file = hdf5::File::create(&tmp_path).map_err(h5err)?;
        write_batch_id(&file, batch_id).map_err(h5err)?;
        write_images(&file, &contents.successes).map_err(h5err)?;
        write_errors(&file, &contents.failures).map_err(h5err)?;
        file.flush().map_err(h5err)?;
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| WriteError::Io { path, source: e }
    };
    File::open(&tmp_path).and_then(|f| f.sync_all()).map_err(io(&tmp_path))?;
    commit_no_replace(&tmp_path, &final_path)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(final_path)
}

/// The temporary name shard `seq` is written under by this process.
pub(super) fn tmp_path(dir: &Path, seq: u64) -> PathBuf {
    PathBuf::from(format!("{}.{}{TMP_SUFFIX}", shard_path(dir, seq).display(), std::process::id()))
}

/// Writes the batch id attribute; an empty id (a shard written without a batch, in tests) is
/// left out, as in shards of older versions.
pub(super) fn write_batch_id(file: &hdf5::File, batch_id: &str) -> hdf5::Result<()> {
    if batch_id.is_empty() {
        return Ok(());
    }
    // Batch ids are hex digits: no NUL to refuse.
    let id: VarLenUnicode = batch_id.replace('\0', "").parse().expect("no NUL");
    file.new_attr::<VarLenUnicode>().create(BATCH_ID_ATTR)?.write_scalar(&id)
}

/// Moves `tmp` to `target` unless `target` exists. A hard link is the atomic "create if absent"
/// every POSIX file system (Lustre, GPFS, NFS included) offers; where links are not supported,
/// an existence check before a plain rename narrows the race to two writers on one batch,
/// which the one-owner-per-host rule already excludes. On `Exists`, `tmp` is removed.
pub(super) fn commit_no_replace(tmp: &Path, target: &Path) -> Result<(), WriteError> {
    let io = |path: &Path, e| WriteError::Io { path: path.to_path_buf(), source: e };
    let exists = || {
        let _ = fs::remove_file(tmp);
        WriteError::Exists { path: target.to_path_buf() }
    };
    match fs::hard_link(tmp, target) {
        Ok(()) => fs::remove_file(tmp).map_err(|e| io(tmp, e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied) => {
            if target.try_exists().map_err(|e| io(target, e))? {
                return Err(exists());
            }
            fs::rename(tmp, target).map_err(|e| io(target, e))
        }
        Err(e) => Err(io(target, e)),
    }
}

/// Removes `.tmp` leftovers of a crash in `dir`; returns how many were removed.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            fs::remove_file(&path)?;
            n += 1;
        }
    }
    Ok(n)
}

pub(super) fn strings(items: impl Iterator<Item = String>) -> Vec<VarLenUnicode> {
    // HDF5 strings end at NUL: replace any so a hostile detail string cannot truncate or fail.
    items.map(|s| s.replace('\0', "\u{FFFD}").parse().expect("NUL removed")).collect()
}

pub(super) fn put<T: H5Type>(group: &hdf5::Group, name: &str, data: &[T]) -> hdf5::Result<()> {
    group.new_dataset_builder().with_data(data).create(name)?;
    Ok(())
}

fn write_images(file: &hdf5::File, recs: &[SuccessRecord]) -> hdf5::Result<()> {
    let g = file.create_group("images")?;
    let mut offsets = Vec::with_capacity(recs.len());
    let mut lengths = Vec::with_capacity(recs.len());
    let total: usize = recs.iter().map(|r| r.data.len()).sum();
    let mut data = Vec::with_capacity(total);
    for r in recs {
        offsets.push(data.len() as u64);
        lengths.push(r.data.len() as u64);
        data.extend_from_slice(&r.data);
    }
    write_image_fields(&g, recs, &offsets, &lengths)?;
    put(&g, "data", &data)
}

/// Every dataset of `images/` but `data`, with the given offsets and lengths into it.
pub(super) fn write_image_fields(
    g: &hdf5::Group,
    recs: &[SuccessRecord],
    offsets: &[u64],
    lengths: &[u64],
) -> hdf5::Result<()> {
    let s = |f: &dyn Fn(&SuccessRecord) -> String| strings(recs.iter().map(f));
    put(g, "uuid", &s(&|r| r.uuid.clone()))?;
    put(g, "url", &s(&|r| r.url.clone()))?;
    put(g, "server", &s(&|r| r.server.clone()))?;
    put(g, "source_ids", &s(&|r| serde_json::to_string(&r.source_ids).expect("strings serialise")))?;
    put(g, "format", &s(&|r| r.format.clone()))?;
    put(g, "sha256", &s(&|r| r.sha256.clone()))?;
    put(g, "md5", &s(&|r| r.md5.clone()))?;
    let u = |f: &dyn Fn(&SuccessRecord) -> u32| recs.iter().map(f).collect::<Vec<u32>>();
    put(g, "original_width", &u(&|r| r.original_width))?;
    put(g, "original_height", &u(&|r| r.original_height))?;
    put(g, "stored_width", &u(&|r| r.stored_width))?;
    put(g, "stored_height", &u(&|r| r.stored_height))?;
    put(g, "data_offset", offsets)?;
    put(g, "data_length", lengths)?;
    put(g, "fetched_at", &recs.iter().map(|r| r.fetched_at).collect::<Vec<f64>>())?;
    Ok(())
}

pub(super) fn write_errors(file: &hdf5::File, recs: &[FailureRecord]) -> hdf5::Result<()> {
    let g = file.create_group("errors")?;
    let s = |f: &dyn Fn(&FailureRecord) -> String| strings(recs.iter().map(f));
    put(&g, "uuid", &s(&|r| r.uuid.clone()))?;
    put(&g, "url", &s(&|r| r.url.clone()))?;
    put(&g, "server", &s(&|r| r.server.clone()))?;
    put(&g, "source_ids", &s(&|r| serde_json::to_string(&r.source_ids).expect("strings serialise")))?;
    put(&g, "error_class", &s(&|r| r.error_class.clone()))?;
    put(&g, "detail", &s(&|r| r.detail.clone()))?;
    put(&g, "attempts", &recs.iter().map(|r| r.attempts).collect::<Vec<u32>>())?;
    put(&g, "http_status", &recs.iter().map(|r| r.http_status).collect::<Vec<u16>>())?;
    put(&g, "retriable", &recs.iter().map(|r| u8::from(r.retriable)).collect::<Vec<u8>>())?;
    put(&g, "failed_at", &recs.iter().map(|r| r.failed_at).collect::<Vec<f64>>())?;
    Ok(())
}

/// The row ids a committed shard accounts for, without its image bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardIndex {
    pub succeeded: Vec<String>,
    pub failed: Vec<FailedRow>,
    pub data_bytes: u64,
    /// The batch content the shard was written for; `None` in shards of older versions.
    pub batch_id: Option<String>,
    /// Set on a compacted shard: it replaces every shard numbered below this.
    pub compacts_below: Option<u64>,
}

/// What the ledger needs of one failure record.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRow {
    pub uuid: String,
    pub class: String,
    pub retriable: bool,
    /// Unix seconds.
    pub failed_at: f64,
}

fn read_strings(g: &hdf5::Group, name: &str) -> hdf5::Result<Vec<String>> {
    Ok(g.dataset(name)?.read_raw::<VarLenUnicode>()?.into_iter().map(|s| s.as_str().to_string()).collect())
}

/// Reads which rows shard `path` holds. Used by resume, `status` and `verify`.
pub fn read_index(path: &Path) -> Result<ShardIndex, WriteError> {
    let h5err = |e| WriteError::Hdf5 { path: path.to_path_buf(), source: e };
    let file = hdf5::File::open(path).map_err(h5err)?;
    let images = file.group("images").map_err(h5err)?;
    let errors = file.group("errors").map_err(h5err)?;
    let succeeded = read_strings(&images, "uuid").map_err(h5err)?;
    let data_bytes = images.dataset("data").map_err(h5err)?.size() as u64;
    let uuids = read_strings(&errors, "uuid").map_err(h5err)?;
    let classes = read_strings(&errors, "error_class").map_err(h5err)?;
    let retriable = errors.dataset("retriable").and_then(|d| d.read_raw::<u8>()).map_err(h5err)?;
    let failed_at = errors.dataset("failed_at").and_then(|d| d.read_raw::<f64>()).map_err(h5err)?;
    let failed = uuids
        .into_iter()
        .zip(classes)
        .zip(retriable.into_iter().zip(failed_at))
        .map(|((uuid, class), (r, failed_at))| FailedRow { uuid, class, retriable: r != 0, failed_at })
        .collect();
    let batch_id = file.attr(BATCH_ID_ATTR).and_then(|a| a.read_scalar::<VarLenUnicode>()).ok();
    let compacts_below = file.attr(COMPACTS_BELOW_ATTR).and_then(|a| a.read_scalar::<u64>()).ok();
    Ok(ShardIndex { succeeded, failed, data_bytes, batch_id: batch_id.map(|s| s.as_str().to_string()), compacts_below })
}

/// Reads a whole shard back (for tests and `verify`).
pub fn read_shard(path: &Path) -> Result<ShardContents, WriteError> {
    read_records(path, true).map(|(contents, _)| contents)
}

/// Reads a shard's records; without `with_data`, the successes' `data` stay empty and their
/// (offset, length) in `images/data` are returned instead, so images can be copied one by one.
pub(super) fn read_records(path: &Path, with_data: bool) -> Result<(ShardContents, Vec<(u64, u64)>), WriteError> {
    let h5err = |e| WriteError::Hdf5 { path: path.to_path_buf(), source: e };
    let read = || -> hdf5::Result<(ShardContents, Vec<(u64, u64)>)> {
        let file = hdf5::File::open(path)?;
        let g = file.group("images")?;
        let (uuid, url, server, ids, format, sha, md5) = (
            read_strings(&g, "uuid")?,
            read_strings(&g, "url")?,
            read_strings(&g, "server")?,
            read_strings(&g, "source_ids")?,
            read_strings(&g, "format")?,
            read_strings(&g, "sha256")?,
            read_strings(&g, "md5")?,
        );
        let u32s = |n: &str| g.dataset(n).and_then(|d| d.read_raw::<u32>());
        let (ow, oh, sw, sh) =
            (u32s("original_width")?, u32s("original_height")?, u32s("stored_width")?, u32s("stored_height")?);
        let offsets = g.dataset("data_offset")?.read_raw::<u64>()?;
        let lengths = g.dataset("data_length")?.read_raw::<u64>()?;
        let data = if with_data { g.dataset("data")?.read_raw::<u8>()? } else { Vec::new() };
        let fetched = g.dataset("fetched_at")?.read_raw::<f64>()?;
        let mut contents = ShardContents::default();
        for i in 0..uuid.len() {
            let (o, l) = (offsets[i] as usize, lengths[i] as usize);
            contents.successes.push(SuccessRecord {
                uuid: uuid[i].clone(),
                url: url[i].clone(),
                server: server[i].clone(),
                source_ids: serde_json::from_str(&ids[i]).unwrap_or_default(),
                original_width: ow[i],
                original_height: oh[i],
                stored_width: sw[i],
                stored_height: sh[i],
                format: format[i].clone(),
                data: if with_data { data[o..o + l].to_vec() } else { Vec::new() },
                sha256: sha[i].clone(),
                md5: md5[i].clone(),
                fetched_at: fetched[i],
            });
        }
        let e = file.group("errors")?;
        let (uuid, url, server, ids, class, detail) = (
            read_strings(&e, "uuid")?,
            read_strings(&e, "url")?,
            read_strings(&e, "server")?,
            read_strings(&e, "source_ids")?,
            read_strings(&e, "error_class")?,
            read_strings(&e, "detail")?,
        );
        let attempts = e.dataset("attempts")?.read_raw::<u32>()?;
        let status = e.dataset("http_status")?.read_raw::<u16>()?;
        let retriable = e.dataset("retriable")?.read_raw::<u8>()?;
        let failed_at = e.dataset("failed_at")?.read_raw::<f64>()?;
        for i in 0..uuid.len() {
            contents.failures.push(FailureRecord {
                uuid: uuid[i].clone(),
                url: url[i].clone(),
                server: server[i].clone(),
                source_ids: serde_json::from_str(&ids[i]).unwrap_or_default(),
                error_class: class[i].clone(),
                detail: detail[i].clone(),
                attempts: attempts[i],
                http_status: status[i],
                retriable: retriable[i] != 0,
                failed_at: failed_at[i],
            });
        }
        let spans = offsets.into_iter().zip(lengths).collect();
        Ok((contents, spans))
    };
    read().map_err(h5err)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(err, WriteError::Exists { .. }), "{err}");
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
}
