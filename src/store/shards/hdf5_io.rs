//! Writing and reading one shard file, atomically, in a layout plain h5py reads with no plugins.
//!
//! ```text
//! /images/uuid, url, server, source_ids (JSON list), format, sha256, md5   variable-length UTF-8 strings [n]
//! /images/original_width, original_height, stored_width, stored_height     uint32 [n]
//! /images/data                                          variable-length uint8 [n]: image i's stored bytes
//! /images/data_length                                                      uint64 [n]: their sizes
//! /images/stored_crc32                                                     uint32 [n]: CRC-32 of each image's stored bytes
//! /images/fetched_at                                                       float64 [n], Unix seconds
//! /images/final_url                                                        string [n]: where redirects led, "" if none
//! /images/redirects                                                        uint8 [n]: redirects followed
//! /images/pdq, pdq_quality, phash        string [n] (64 hex, "" if none), uint8 [n], uint64 [n]
//! /images/etag, last_modified                                             string [n]: the answer's headers, "" if none
//! /images/version                                 uint32 [n]: the image's version (1, then + 1 per change found)
//! /images/checked_at, check_error           float64 [n], string [n]: the last revalidation, its error class or ""
//! /errors/uuid, url, server, source_ids, error_class, detail              strings [m]
//! /errors/attempts uint32, http_status uint16, retriable uint8, failed_at float64   [m]
//! ```
//! Image i is the element `images/data[i]` (h5py: `bytes(f["images/data"][i])`): one element per
//! image, so that a virtual dataset can span the images of many shards (`index::h5`). Shards
//! written before concatenated the bytes in one `uint8` dataset, image i at
//! `images/data_offset[i]`; `image_data` reads both layouts.
//!
//! `sha256` and `md5` are of the original bytes as served, so they cannot check a resized or
//! re-encoded image; `stored_crc32` is of the bytes stored here, and `verify` and `compact`
//! check them against it. Shards of older versions lack it (read as `None`), and lack
//! `final_url`, `redirects`, the perceptual hashes and the validators (read as "" and 0), and
//! `version`, `checked_at` and `check_error` (read as 1, `fetched_at` and "").
//!
//! Reading never trusts the file: datasets of unequal length, images that are not where or as
//! long as recorded, and unparsable `source_ids` are [`ShardError::Damaged`], naming the file.

use std::fs;
use std::path::{Path, PathBuf};

use std::borrow::Cow;

use hdf5::types::VarLenUnicode;

use super::carried::{write_data, CarriedFrom, CARRIED_FROM, CARRIED_OWN, CARRIED_ROW};
pub use super::error::ShardError;
pub(super) use super::h5_put::{put, strings};
use super::image_data::{ImageData, DATA_LENGTH};
use super::record::{FailureRecord, ShardContents, SuccessRecord};
use crate::store::atomic;
use columns::Columns;

/// Extension of committed shards; anything else in a batch folder is ignored (and temporary
/// files, `store::atomic::is_temp`, are leftovers of a crash, removed on resume).
pub const SHARD_EXT: &str = "h5";

/// Root attribute naming the content of the batch a shard belongs to (see
/// `store::batches::batch_id`), so a batch re-cut by a later prep is never credited with rows it
/// no longer holds.
pub const BATCH_ID_ATTR: &str = "batch_id";

/// Dataset of `images/`: CRC-32 of each image's stored bytes (see the module doc).
pub const STORED_CRC32: &str = "stored_crc32";

/// Datasets of `images/` added after the first format: where redirects led, and how many.
pub const FINAL_URL: &str = "final_url";
pub const REDIRECTS: &str = "redirects";
/// Datasets of `images/` added after the first format: the stored image's perceptual hashes.
pub const PDQ: &str = "pdq";
pub const PDQ_QUALITY: &str = "pdq_quality";
pub const PHASH: &str = "phash";
/// Datasets of `images/` added after the first format: the answer's validators.
pub const ETAG: &str = "etag";
pub const LAST_MODIFIED: &str = "last_modified";
/// Datasets of `images/` added after the first format: revalidation (`download --revalidate`).
pub const VERSION: &str = "version";
pub const CHECKED_AT: &str = "checked_at";
pub const CHECK_ERROR: &str = "check_error";

/// Root attribute of a compacted shard (see `compact`): it holds the final record of every row
/// of the shards numbered below this value in its folder, which it replaces.
pub const COMPACTS_BELOW_ATTR: &str = "compacts_below";

/// The committed name of shard `seq` in `dir`.
pub fn shard_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("shard-{seq:06}.{SHARD_EXT}"))
}

/// Writes `contents` as shard `seq` in `dir` through `store::atomic` (a temporary name of this
/// host and process, fsync, a link that never replaces, fsync of `dir`). When this returns Ok
/// the shard survives a crash or power loss; when `seq` is already committed it returns
/// [`ShardError::Exists`] and changes nothing.
pub fn write_shard(dir: &Path, seq: u64, contents: &ShardContents, batch_id: &str) -> Result<PathBuf, ShardError> {
    write_shard_carrying(dir, seq, contents, &[], batch_id)
}

/// [`write_shard`], with success `i`'s image carried over from `carried[i]` when it is set (its
/// `data` is then not read; see `carried`). `dir` must be a batch folder of an output folder.
pub fn write_shard_carrying(
    dir: &Path,
    seq: u64,
    contents: &ShardContents,
    carried: &[Option<CarriedFrom>],
    batch_id: &str,
) -> Result<PathBuf, ShardError> {
    let final_path = shard_path(dir, seq);
    atomic::write_with(&final_path, atomic::Mode::New, |tmp| {
        let h5err = |e| ShardError::Hdf5 { path: tmp.to_path_buf(), source: e };
        let file = hdf5::File::create(tmp).map_err(h5err)?;
        write_batch_id(&file, batch_id).map_err(h5err)?;
        write_images(&file, &contents.successes, carried, &h5err)?;
        write_errors(&file, &contents.failures).map_err(h5err)?;
        file.flush().map_err(h5err)
    })?;
    Ok(final_path)
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

/// Removes the temporary files a crash left in `dir`; returns how many were removed. Only the
/// batch's owner calls it, under the folder's lock: no other writer can be mid-commit there.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if atomic::is_temp(&path) {
            fs::remove_file(&path)?;
            n += 1;
        }
    }
    Ok(n)
}

fn write_images(
    file: &hdf5::File,
    recs: &[SuccessRecord],
    carried: &[Option<CarriedFrom>],
    h5err: &dyn Fn(hdf5::Error) -> ShardError,
) -> Result<(), ShardError> {
    let g = file.create_group("images").map_err(h5err)?;
    let (lengths, crcs) = write_data(&g, recs.len(), carried, |i| Ok(Cow::Borrowed(&recs[i].data)), h5err)?;
    write_image_fields(&g, recs, &lengths).map_err(h5err)?;
    put(&g, STORED_CRC32, &crcs).map_err(h5err)
}

/// Every dataset of `images/` but `data` and `stored_crc32`, with the images' stored sizes.
pub(super) fn write_image_fields(g: &hdf5::Group, recs: &[SuccessRecord], lengths: &[u64]) -> hdf5::Result<()> {
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
    put(g, DATA_LENGTH, lengths)?;
    put(g, "fetched_at", &recs.iter().map(|r| r.fetched_at).collect::<Vec<f64>>())?;
    put(g, FINAL_URL, &s(&|r| r.final_url.clone()))?;
    // At most `fetch::redirect::MAX_REDIRECTS` (5): a byte holds it.
    put(g, REDIRECTS, &recs.iter().map(|r| r.redirects.min(255) as u8).collect::<Vec<u8>>())?;
    put(g, PDQ, &s(&|r| r.pdq.clone()))?;
    put(g, PDQ_QUALITY, &recs.iter().map(|r| r.pdq_quality).collect::<Vec<u8>>())?;
    put(g, PHASH, &recs.iter().map(|r| r.phash).collect::<Vec<u64>>())?;
    put(g, ETAG, &s(&|r| r.etag.clone()))?;
    put(g, LAST_MODIFIED, &s(&|r| r.last_modified.clone()))?;
    put(g, VERSION, &recs.iter().map(|r| r.version).collect::<Vec<u32>>())?;
    put(g, CHECKED_AT, &recs.iter().map(|r| r.checked_at).collect::<Vec<f64>>())?;
    put(g, CHECK_ERROR, &s(&|r| r.check_error.clone()))?;
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
    /// Each success's `checked_at` (see `SuccessRecord`), in the order of `succeeded`.
    pub checked_at: Vec<f64>,
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

/// Reads which rows shard `path` holds. Used by resume, `status` and `verify`.
pub fn read_index(path: &Path) -> Result<ShardIndex, ShardError> {
    let h5err = |e| ShardError::Hdf5 { path: path.to_path_buf(), source: e };
    let file = hdf5::File::open(path).map_err(h5err)?;
    let (images, succeeded) = Columns::open(path, &file, "images")?;
    let data_bytes = images.raw::<u64>(DATA_LENGTH)?.iter().sum();
    let checked_at = images.raw::<f64>(if images.g.link_exists(CHECKED_AT) { CHECKED_AT } else { "fetched_at" })?;
    let (errors, uuids) = Columns::open(path, &file, "errors")?;
    let (classes, retriable, failed_at) =
        (errors.strings("error_class")?, errors.raw::<u8>("retriable")?, errors.raw::<f64>("failed_at")?);
    let failed = uuids
        .into_iter()
        .zip(classes)
        .zip(retriable.into_iter().zip(failed_at))
        .map(|((uuid, class), (r, failed_at))| FailedRow { uuid, class, retriable: r != 0, failed_at })
        .collect();
    let (batch_id, compacts_below) = root_attrs(&file);
    Ok(ShardIndex { succeeded, checked_at, failed, data_bytes, batch_id, compacts_below })
}

/// Each success's validators as stored, `[etag, last_modified, sha256]` ("" when absent): what
/// a revalidation asks the server with, and what it compares new bytes with.
pub fn read_validators(path: &Path) -> Result<[Vec<String>; 3], ShardError> {
    let h5err = |e| ShardError::Hdf5 { path: path.to_path_buf(), source: e };
    let file = hdf5::File::open(path).map_err(h5err)?;
    let (images, _) = Columns::open(path, &file, "images")?;
    Ok([images.strings_or_empty(ETAG)?, images.strings_or_empty(LAST_MODIFIED)?, images.strings("sha256")?])
}

/// The batch id and `compacts_below` attributes, each `None` when absent.
fn root_attrs(file: &hdf5::File) -> (Option<String>, Option<u64>) {
    let batch_id = file.attr(BATCH_ID_ATTR).and_then(|a| a.read_scalar::<VarLenUnicode>()).ok();
    let compacts_below = file.attr(COMPACTS_BELOW_ATTR).and_then(|a| a.read_scalar::<u64>()).ok();
    (batch_id.map(|s| s.as_str().to_string()), compacts_below)
}

/// Reads a whole shard back (for tests and `verify`).
pub fn read_shard(path: &Path) -> Result<ShardContents, ShardError> {
    read_records(path, true).map(|r| r.contents)
}

/// A shard's records as stored (see [`read_records`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardRecords {
    pub contents: ShardContents,
    /// Each success's stored size in bytes, in order (read its bytes with [`ImageData`]).
    pub lengths: Vec<u64>,
    /// For each success, where its bytes are when it was carried over from another dataset
    /// (see `carried`); `None` when they are in this shard.
    pub carried: Vec<Option<CarriedFrom>>,
    /// Each success's CRC-32 of its stored bytes; `None` in shards of older versions.
    pub stored_crc32: Option<Vec<u32>>,
    pub batch_id: Option<String>,
    pub compacts_below: Option<u64>,
}

impl ShardRecords {
    /// Where success `row`'s bytes lie, for a record elsewhere to refer to them (`carried`):
    /// where it was carried from, if it was; else row `row` of this shard, named `from`
    /// (relative to the output folder), in `images/own` when the shard carries other rows too.
    /// `crc32` computes the bytes' CRC-32 when the shard recorded none (older versions).
    pub fn bytes_at(
        &self,
        from: String,
        row: usize,
        crc32: impl FnOnce() -> Result<u32, ShardError>,
    ) -> Result<CarriedFrom, ShardError> {
        if let Some(Some(carried)) = self.carried.get(row) {
            return Ok(carried.clone());
        }
        let own = self.carried.iter().any(Option::is_some);
        let own_row = if own { self.carried[..row].iter().filter(|c| c.is_none()).count() } else { row };
        let crc32 = match &self.stored_crc32 {
            Some(crcs) => crcs[row],
            None => crc32()?,
        };
        Ok(CarriedFrom { from, row: own_row as u64, own, length: self.lengths[row], crc32 })
    }
}

/// Reads a shard's records; without `with_data`, the successes' `data` stay empty (read them one
/// by one with [`ImageData`]). A shard whose datasets disagree is [`ShardError::Damaged`].
pub fn read_records(path: &Path, with_data: bool) -> Result<ShardRecords, ShardError> {
    let file = hdf5::File::open(path).map_err(|e| ShardError::Hdf5 { path: path.to_path_buf(), source: e })?;
    records_of(path, &file, with_data).map(|(records, _)| records)
}

/// A shard's records (without image bytes) and a reader of its image bytes, from one open of the
/// file: what `verify` reads of every shard.
pub fn open_records(path: &Path) -> Result<(ShardRecords, ImageData), ShardError> {
    let file = hdf5::File::open(path).map_err(|e| ShardError::Hdf5 { path: path.to_path_buf(), source: e })?;
    records_of(path, &file, false)
}

fn records_of(path: &Path, file: &hdf5::File, with_data: bool) -> Result<(ShardRecords, ImageData), ShardError> {
    let (c, uuid) = Columns::open(path, file, "images")?;
    let images = ImageData::of(path, file, Some(c.n))?;
    let (url, server, ids) = (c.strings("url")?, c.strings("server")?, c.strings("source_ids")?);
    let (format, sha, md5) = (c.strings("format")?, c.strings("sha256")?, c.strings("md5")?);
    let (ow, oh) = (c.raw::<u32>("original_width")?, c.raw::<u32>("original_height")?);
    let (sw, sh) = (c.raw::<u32>("stored_width")?, c.raw::<u32>("stored_height")?);
    let fetched = c.raw::<f64>("fetched_at")?;
    let stored_crc32 = if c.g.link_exists(STORED_CRC32) { Some(c.raw::<u32>(STORED_CRC32)?) } else { None };
    let (final_urls, redirects) = (c.strings_or_empty(FINAL_URL)?, c.raw_or_default::<u8>(REDIRECTS)?);
    let (pdq, pdq_quality) = (c.strings_or_empty(PDQ)?, c.raw_or_default::<u8>(PDQ_QUALITY)?);
    let phash = c.raw_or_default::<u64>(PHASH)?;
    let (etags, last_modified) = (c.strings_or_empty(ETAG)?, c.strings_or_empty(LAST_MODIFIED)?);
    let version = if c.g.link_exists(VERSION) { c.raw::<u32>(VERSION)? } else { vec![1; c.n] };
    let checked_at = if c.g.link_exists(CHECKED_AT) { c.raw::<f64>(CHECKED_AT)? } else { fetched.clone() };
    let check_error = c.strings_or_empty(CHECK_ERROR)?;
    let mut data = if with_data {
        let all: Vec<usize> = (0..c.n).collect();
        images.read_many(&all).into_iter().collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let (from, from_row) = (c.strings_or_empty(CARRIED_FROM)?, c.raw_or_default::<u64>(CARRIED_ROW)?);
    let from_own = c.raw_or_default::<u8>(CARRIED_OWN)?;
    let lengths = images.lengths();
    let carried = (0..c.n)
        .map(|i| {
            let crc32 = stored_crc32.as_ref().map_or(0, |crcs| crcs[i]);
            let (from, row, own, length) = (from[i].clone(), from_row[i], from_own[i] != 0, lengths[i]);
            (!from.is_empty()).then_some(CarriedFrom { from, row, own, length, crc32 })
        })
        .collect();
    let mut records = ShardRecords { stored_crc32, lengths, carried, ..ShardRecords::default() };
    for i in 0..c.n {
        records.contents.successes.push(SuccessRecord {
            uuid: uuid[i].clone(),
            url: url[i].clone(),
            server: server[i].clone(),
            source_ids: c.source_ids(&ids[i], &uuid[i])?,
            original_width: ow[i],
            original_height: oh[i],
            stored_width: sw[i],
            stored_height: sh[i],
            format: format[i].clone(),
            data: data.get_mut(i).map(std::mem::take).unwrap_or_default(),
            sha256: sha[i].clone(),
            md5: md5[i].clone(),
            fetched_at: fetched[i],
            final_url: final_urls[i].clone(),
            redirects: u32::from(redirects[i]),
            etag: etags[i].clone(),
            last_modified: last_modified[i].clone(),
            pdq: pdq[i].clone(),
            pdq_quality: pdq_quality[i],
            phash: phash[i],
            version: version[i],
            checked_at: checked_at[i],
            check_error: check_error[i].clone(),
        });
    }
    let (c, uuid) = Columns::open(path, file, "errors")?;
    let (url, server, ids) = (c.strings("url")?, c.strings("server")?, c.strings("source_ids")?);
    let (class, detail, attempts) = (c.strings("error_class")?, c.strings("detail")?, c.raw::<u32>("attempts")?);
    let (status, retriable, failed_at) =
        (c.raw::<u16>("http_status")?, c.raw::<u8>("retriable")?, c.raw::<f64>("failed_at")?);
    for i in 0..c.n {
        records.contents.failures.push(FailureRecord {
            uuid: uuid[i].clone(),
            url: url[i].clone(),
            server: server[i].clone(),
            source_ids: c.source_ids(&ids[i], &uuid[i])?,
            error_class: class[i].clone(),
            detail: detail[i].clone(),
            attempts: attempts[i],
            http_status: status[i],
            retriable: retriable[i] != 0,
            failed_at: failed_at[i],
        });
    }
    (records.batch_id, records.compacts_below) = root_attrs(file);
    Ok((records, images))
}

#[path = "hdf5_columns.rs"]
mod columns;

#[cfg(test)]
#[path = "hdf5_io_tests.rs"]
mod tests;
