//! Batch files under `urls/`: what a download reads of them (windows of rows, row counts,
//! content ids), and how prep writes one.
//!
//! Layout: `urls/server_name=<key>/partition_id=<n>/part-0.parquet` (hive style: the partition
//! columns are in the path, not in the file), columns `uuid`, `url`, `source_ids`, `row_uuids`,
//! `license`, `source`, `title`.

use std::fs;
use std::path::Path;

use polars::prelude::*;

use super::error::StoreError;
use super::parquet::{parquet_files, write_parquet};
use super::paths;

/// The file name of a batch written by prep (a batch folder may hold more files, read in name
/// order, in outputs of other tools).
pub const BATCH_FILE: &str = "part-0.parquet";

/// Writes one batch of `df` as batch `partition` of `server` under `urls_dir` (an output's
/// `urls/`, or prep's staged copy of it); returns its content id ([`content_id`]).
pub fn write_batch(urls_dir: &Path, server: &str, partition: u64, df: &mut DataFrame) -> Result<String, StoreError> {
    let dir = urls_dir.join(paths::batch_subdir(server, partition));
    fs::create_dir_all(&dir).map_err(|e| StoreError::Io { path: dir.clone(), source: e })?;
    let path = dir.join(BATCH_FILE);
    let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
    let id = content_id(df.column("uuid").map_err(pe)?.str().map_err(pe)?.iter());
    write_parquet(&path, df)?;
    Ok(id)
}

/// One URL of a batch, as the download engine reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub uuid: String,
    pub url: String,
    pub source_ids: Vec<String>,
}

/// Reads rows `offset..offset + len` of one batch written by prep (fewer at its end), in the
/// order prep wrote them. Only the files and row groups holding that window are read, so a
/// host's queue can be fed in windows instead of whole batches.
pub fn read_batch_window(
    out: &Path,
    server: &str,
    partition: u64,
    offset: u64,
    len: usize,
) -> Result<Vec<BatchRow>, StoreError> {
    let dir = paths::batch_urls(out, server, partition);
    let mut rows = Vec::new();
    let mut file_start = 0u64;
    for path in parquet_files(&dir)? {
        if rows.len() >= len {
            break;
        }
        let open = || std::fs::File::open(&path).map_err(|e| StoreError::Io { path: path.clone(), source: e });
        let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
        let in_file = ParquetReader::new(open()?).num_rows().map_err(pe)? as u64;
        let want_from = offset + rows.len() as u64;
        if want_from >= file_start + in_file {
            file_start += in_file;
            continue;
        }
        let skip = want_from - file_start;
        let take = (len - rows.len()).min((in_file - skip) as usize);
        let df = ParquetReader::new(open()?).with_slice(Some((skip as usize, take))).finish().map_err(pe)?;
        push_rows(&df, &path, skip as usize, &mut rows)?;
        file_start += in_file;
    }
    Ok(rows)
}

/// Appends the rows of `df`, read from `path` starting at its row `first_row`.
fn push_rows(df: &DataFrame, path: &Path, first_row: usize, rows: &mut Vec<BatchRow>) -> Result<(), StoreError> {
    let pe = |e: PolarsError| StoreError::Parquet { path: path.to_path_buf(), source: e };
    let uuids = df.column("uuid").map_err(pe)?.str().map_err(pe)?.clone();
    let urls = df.column("url").map_err(pe)?.str().map_err(pe)?.clone();
    let ids = df.column("source_ids").map_err(pe)?.list().map_err(pe)?.clone();
    for i in 0..df.height() {
        let source_ids = match ids.get_as_series(i) {
            Some(s) => s.str().map_err(pe)?.iter().flatten().map(str::to_string).collect(),
            None => Vec::new(),
        };
        let null = |column| StoreError::NullInBatch { path: path.to_path_buf(), column, row: first_row + i };
        rows.push(BatchRow {
            uuid: uuids.get(i).ok_or_else(|| null("uuid"))?.to_string(),
            url: urls.get(i).ok_or_else(|| null("url"))?.to_string(),
            source_ids,
        });
    }
    Ok(())
}

/// The identity of a batch's content: a hash of its uuids in order (32 hex digits). Prep run
/// twice on the same input cuts the same batches, with the same ids; a changed input that puts
/// other rows under a partition id changes it.
pub fn content_id<'a>(uuids: impl IntoIterator<Item = Option<&'a str>>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for uuid in uuids {
        hash.update(uuid.unwrap_or("").as_bytes());
        hash.update(b"\n");
    }
    hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A batch's [`content_id`] from its files (only the uuid column is read): for prep outputs
/// whose servers table predates the `batch_ids` column.
pub fn batch_id(out: &Path, server: &str, partition: u64) -> Result<String, StoreError> {
    let mut uuids: Vec<Option<String>> = Vec::new();
    for path in parquet_files(&paths::batch_urls(out, server, partition))? {
        let file = fs::File::open(&path).map_err(|e| StoreError::Io { path: path.clone(), source: e })?;
        let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
        let df = ParquetReader::new(file).with_columns(Some(vec!["uuid".into()])).finish().map_err(pe)?;
        uuids.extend(df.column("uuid").map_err(pe)?.str().map_err(pe)?.iter().map(|u| u.map(str::to_string)));
    }
    Ok(content_id(uuids.iter().map(|u| u.as_deref())))
}

/// Rows in one batch, from the parquet metadata (no row is read).
pub fn batch_rows(out: &Path, server: &str, partition: u64) -> Result<u64, StoreError> {
    let mut n = 0;
    for path in parquet_files(&paths::batch_urls(out, server, partition))? {
        let file = std::fs::File::open(&path).map_err(|e| StoreError::Io { path: path.clone(), source: e })?;
        n += ParquetReader::new(file).num_rows().map_err(|e| StoreError::Parquet { path: path.clone(), source: e })?
            as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch file holding rows `from..to` (uuid `u<i>`, url `http://a.org/<i>`).
    fn write_part(dir: &Path, name: &str, from: usize, to: usize) {
        let uuids: Vec<String> = (from..to).map(|i| format!("u{i}")).collect();
        let urls: Vec<String> = (from..to).map(|i| format!("http://a.org/{i}")).collect();
        let ids: Vec<Series> = (from..to).map(|i| Series::new("".into(), [format!("{i}")])).collect();
        let mut df = DataFrame::new(
            to - from,
            vec![
                Column::new("uuid".into(), uuids),
                Column::new("url".into(), urls),
                Column::new("source_ids".into(), ids),
            ],
        )
        .unwrap();
        fs::create_dir_all(dir).unwrap();
        write_parquet(&dir.join(name), &mut df).unwrap();
    }

    #[test]
    fn windows_read_the_batch_in_order_across_its_files() {
        let out = tempfile::tempdir().unwrap();
        let dir = paths::batch_urls(out.path(), "a.org", 0);
        write_part(&dir, "part-0.parquet", 0, 5);
        write_part(&dir, "part-1.parquet", 5, 8);
        let ids = |offset, len| -> Vec<String> {
            read_batch_window(out.path(), "a.org", 0, offset, len).unwrap().into_iter().map(|r| r.uuid).collect()
        };
        assert_eq!(ids(0, 3), ["u0", "u1", "u2"]);
        assert_eq!(ids(3, 4), ["u3", "u4", "u5", "u6"], "a window spanning two files");
        assert_eq!(ids(6, 100), ["u6", "u7"], "the last window is short");
        assert!(ids(8, 10).is_empty());
        let row = &read_batch_window(out.path(), "a.org", 0, 7, 1).unwrap()[0];
        assert_eq!((row.url.as_str(), row.source_ids.as_slice()), ("http://a.org/7", ["7".to_string()].as_slice()));
    }
}
