//! One part of the refresh plan, `refresh/plan/part-<k>.parquet`: a row per image whose uuid
//! hashes to part k, sorted by uuid, written a row group at a time.
//!
//! Columns: `uuid`, `url`, `server` and `batch` (the new snapshot's, the old one's for `gone`),
//! `class` (`new`, `unchanged`, `metadata_changed`, `gone`, `removed`), `reason`
//! (`not_in_old`, `failed_in_old`, `not_in_snapshot`, `removed_in_old`, else null), `changed`
//! (the compared fields that differ, comma-joined, for `metadata_changed`), and where the old
//! snapshot has a record of the image: `old_status` (`stored`, `failed`, `removed`), `shard` (its
//! path relative to the old output folder) and `row` (its row there, in `images/` when stored,
//! in `errors/` otherwise); null when it has none.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use super::classify::Verdict;
use super::error::RefreshError;
use super::fields::names;
use super::record::Status;

/// Rows per row group: a group's frame is a few MB, small beside a part.
const ROWS_PER_GROUP: usize = 65_536;

/// One row of the plan, borrowing its strings from the part's records.
#[derive(Debug, Clone)]
pub struct PlanRow<'a> {
    pub uuid: u128,
    pub url: &'a str,
    pub server: &'a str,
    pub batch: u64,
    pub verdict: Verdict,
    /// The old snapshot's final record: its status, shard and row.
    pub old: Option<(Status, &'a str, u32)>,
}

/// The plan's columns.
fn schema() -> Schema {
    let (s, u64_, u32_) = (DataType::String, DataType::UInt64, DataType::UInt32);
    let columns = [
        ("uuid", &s),
        ("url", &s),
        ("server", &s),
        ("batch", &u64_),
        ("class", &s),
        ("reason", &s),
        ("changed", &s),
        ("old_status", &s),
        ("shard", &s),
        ("row", &u32_),
    ];
    Schema::from_iter(columns.into_iter().map(|(name, t)| Field::new(name.into(), t.clone())))
}

/// Writes `rows` (sorted by uuid) to `path`, a fresh file in the plan's staging folder.
pub fn write_part(path: &Path, rows: &[PlanRow]) -> Result<(), RefreshError> {
    let werr = |source| RefreshError::Write { path: path.to_path_buf(), source };
    let file =
        File::create(path).map_err(|e| crate::store::error::StoreError::Io { path: path.to_path_buf(), source: e })?;
    let mut writer = ParquetWriter::new(file).batched(&schema()).map_err(werr)?;
    for chunk in rows.chunks(ROWS_PER_GROUP) {
        writer.write_batch(&frame(chunk).map_err(werr)?).map_err(werr)?;
    }
    writer.finish().map_err(werr)?;
    Ok(())
}

fn frame(rows: &[PlanRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let builder = |name: &str| StringChunkedBuilder::new(name.into(), n);
    let (mut uuid, mut url, mut server, mut class) =
        (builder("uuid"), builder("url"), builder("server"), builder("class"));
    let (mut reason, mut changed, mut status, mut shard) =
        (builder("reason"), builder("changed"), builder("old_status"), builder("shard"));
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for r in rows {
        uuid.append_value(uuid::Uuid::from_u128(r.uuid).hyphenated().encode_lower(&mut text));
        url.append_value(r.url);
        server.append_value(r.server);
        class.append_value(r.verdict.class.as_str());
        reason.append_option(r.verdict.reason.map(|r| r.as_str()));
        changed.append_option((r.verdict.changed != 0).then(|| names(r.verdict.changed)));
        status.append_option(r.old.map(|o| o.0.as_str()));
        shard.append_option(r.old.map(|o| o.1));
    }
    let columns = vec![
        uuid.finish().into_column(),
        url.finish().into_column(),
        server.finish().into_column(),
        Column::new("batch".into(), rows.iter().map(|r| r.batch).collect::<Vec<_>>()),
        class.finish().into_column(),
        reason.finish().into_column(),
        changed.finish().into_column(),
        status.finish().into_column(),
        shard.finish().into_column(),
        Column::new("row".into(), rows.iter().map(|r| r.old.map(|o| o.2)).collect::<Vec<_>>()),
    ];
    DataFrame::new(n, columns)
}
