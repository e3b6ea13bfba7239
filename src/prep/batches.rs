//! Pass 3: cuts each server's unique URLs into batches and writes the final layout.
//!
//! A server with n URLs gets exactly ceil(n / B) batches: every batch but the last holds B URLs.
//! The server's per-bucket files are read in bucket order and cut as they stream past, so memory
//! holds at most one bucket file plus one batch, however large the server is.
//!
//! Layout written under the output folder:
//! `urls/server_name=<key>/partition_id=<n>/part-0.parquet` (hive style: the partition columns
//! are in the path, not in the file) and `servers.parquet`.

use std::fs;
use std::path::Path;

use polars::prelude::*;

use super::spill::{read_parquet, read_scratch, sorted_files, sorted_scratch_files, write_parquet};
use super::PrepError;

/// One server's line in the servers table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServerRow {
    pub server_name: String,
    pub url_count: u64,
    pub batch_count: u64,
    /// Each batch's content id (see [`content_id`]), by partition.
    #[serde(skip)]
    pub batch_ids: Vec<String>,
    /// Each batch's row count, by partition.
    #[serde(skip)]
    pub batch_rows: Vec<u64>,
}

/// Writes the batches of `server` from `by_server_dir/<server>/` into `urls_dir`. Returns the
/// number of URLs and batches written.
pub fn write_server_batches(
    by_server_dir: &Path,
    server: &str,
    urls_dir: &Path,
    batch_size: usize,
) -> Result<ServerRow, PrepError> {
    let server_dir = urls_dir.join(format!("server_name={server}"));
    let mut buffer: Option<DataFrame> = None;
    let mut batches = 0u64;
    let mut urls = 0u64;
    let mut batch_ids = Vec::new();
    let mut batch_rows = Vec::new();
    let mut emit = |df: DataFrame, batches: &mut u64| -> Result<(), PrepError> {
        let dir = server_dir.join(format!("partition_id={batches}"));
        fs::create_dir_all(&dir).map_err(|e| PrepError::Io { path: dir.clone(), source: e })?;
        let mut df = df;
        let path = dir.join("part-0.parquet");
        let pe = |e: PolarsError| PrepError::Parquet { path: path.clone(), source: e };
        batch_ids.push(content_id(df.column("uuid").map_err(pe)?.str().map_err(pe)?.iter()));
        batch_rows.push(df.height() as u64);
        write_parquet(&path, &mut df)?;
        *batches += 1;
        Ok(())
    };
    for path in sorted_scratch_files(&by_server_dir.join(server))? {
        let df = read_scratch(&path)?;
        urls += df.height() as u64;
        let mut joined = match buffer.take() {
            None => df,
            Some(mut b) => {
                b.vstack_mut_owned(df).map_err(|e| PrepError::Parquet { path: path.clone(), source: e })?;
                b
            }
        };
        while joined.height() >= batch_size {
            let head = joined.slice(0, batch_size);
            joined = joined.slice(batch_size as i64, joined.height() - batch_size);
            let mut head = head;
            head.rechunk_mut();
            emit(head, &mut batches)?;
        }
        buffer = Some(joined);
    }
    if let Some(rest) = buffer.filter(|b| b.height() > 0) {
        let mut rest = rest;
        rest.rechunk_mut();
        emit(rest, &mut batches)?;
    }
    Ok(ServerRow { server_name: server.to_string(), url_count: urls, batch_count: batches, batch_ids, batch_rows })
}

/// Writes `servers.parquet`: one row per server, with the columns later runs fill in.
pub fn write_servers_table(path: &Path, servers: &[ServerRow], initial_rate: f64) -> Result<(), PrepError> {
    let n = servers.len();
    let pe = |e: PolarsError| PrepError::Parquet { path: path.to_path_buf(), source: e };
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("server_name".into(), servers.iter().map(|s| s.server_name.as_str()).collect::<Vec<_>>()),
            Column::new("url_count".into(), servers.iter().map(|s| s.url_count).collect::<Vec<_>>()),
            Column::new("batch_count".into(), servers.iter().map(|s| s.batch_count).collect::<Vec<_>>()),
            Column::new("initial_rate_limit".into(), vec![initial_rate; n]),
            // Filled in by downloads: the rate the server was last served at without refusals,
            // the in-flight cap that held, and when that was learned (RFC 3339).
            Column::full_null("learned_rate_limit".into(), n, &DataType::Float64),
            Column::full_null("learned_max_in_flight".into(), n, &DataType::UInt32),
            Column::full_null("learned_at".into(), n, &DataType::String),
            // The host's whole learned state (rate, known limit, in-flight cap) as JSON, so the
            // next run restores it rather than probing for the limit again.
            Column::full_null("learned_state".into(), n, &DataType::String),
            // Each batch's content id, comma-separated by partition: a download refuses shards
            // written for other content under the same partition id.
            Column::new("batch_ids".into(), servers.iter().map(|s| s.batch_ids.join(",")).collect::<Vec<_>>()),
            // Each batch's row count, comma-separated by partition, so planning reads no batch file.
            Column::new("batch_rows".into(), servers.iter().map(|s| join_numbers(&s.batch_rows)).collect::<Vec<_>>()),
        ],
    )
    .map_err(pe)?;
    write_parquet(path, &mut df)
}

/// One URL of a batch, as the download engine reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub uuid: String,
    pub url: String,
    pub source_ids: Vec<String>,
}

/// The folder of one batch's URL file(s) under the output folder.
pub fn batch_path(out: &Path, server: &str, partition: u64) -> std::path::PathBuf {
    crate::store::paths::batch_urls(out, server, partition)
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
) -> Result<Vec<BatchRow>, PrepError> {
    let dir = batch_path(out, server, partition);
    let mut rows = Vec::new();
    let mut file_start = 0u64;
    for path in sorted_files(&dir)? {
        if rows.len() >= len {
            break;
        }
        let open = || std::fs::File::open(&path).map_err(|e| PrepError::Io { path: path.clone(), source: e });
        let pe = |e: PolarsError| PrepError::Parquet { path: path.clone(), source: e };
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
fn push_rows(df: &DataFrame, path: &Path, first_row: usize, rows: &mut Vec<BatchRow>) -> Result<(), PrepError> {
    let pe = |e: PolarsError| PrepError::Parquet { path: path.to_path_buf(), source: e };
    let uuids = df.column("uuid").map_err(pe)?.str().map_err(pe)?.clone();
    let urls = df.column("url").map_err(pe)?.str().map_err(pe)?.clone();
    let ids = df.column("source_ids").map_err(pe)?.list().map_err(pe)?.clone();
    for i in 0..df.height() {
        let source_ids = match ids.get_as_series(i) {
            Some(s) => s.str().map_err(pe)?.iter().flatten().map(str::to_string).collect(),
            None => Vec::new(),
        };
        let null = |column| PrepError::NullInBatch { path: path.to_path_buf(), column, row: first_row + i };
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
pub fn batch_id(out: &Path, server: &str, partition: u64) -> Result<String, PrepError> {
    let mut uuids: Vec<Option<String>> = Vec::new();
    for path in sorted_files(&batch_path(out, server, partition))? {
        let file = fs::File::open(&path).map_err(|e| PrepError::Io { path: path.clone(), source: e })?;
        let pe = |e: PolarsError| PrepError::Parquet { path: path.clone(), source: e };
        let df = ParquetReader::new(file).with_columns(Some(vec!["uuid".into()])).finish().map_err(pe)?;
        uuids.extend(df.column("uuid").map_err(pe)?.str().map_err(pe)?.iter().map(|u| u.map(str::to_string)));
    }
    Ok(content_id(uuids.iter().map(|u| u.as_deref())))
}

/// Rows in one batch, from the parquet metadata (no row is read).
pub fn batch_rows(out: &Path, server: &str, partition: u64) -> Result<u64, PrepError> {
    let mut n = 0;
    for path in sorted_files(&batch_path(out, server, partition))? {
        let file = std::fs::File::open(&path).map_err(|e| PrepError::Io { path: path.clone(), source: e })?;
        n += ParquetReader::new(file).num_rows().map_err(|e| PrepError::Parquet { path: path.clone(), source: e })?
            as u64;
    }
    Ok(n)
}

/// One server as listed in `servers.parquet`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerInfo {
    pub server_name: String,
    pub url_count: u64,
    pub batch_count: u64,
    pub initial_rate_limit: f64,
    /// Set by an earlier download: the rate that held without refusals.
    pub learned_rate_limit: Option<f64>,
    /// Set by an earlier download: the host's learned state as JSON.
    pub learned_state: Option<String>,
    /// Each batch's content id by partition; `None` for outputs of older versions of prep.
    pub batch_ids: Option<Vec<String>>,
    /// Each batch's row count by partition; `None` for outputs of older versions of prep.
    pub batch_rows: Option<Vec<u64>>,
    /// Set by `profile`: what robots.txt answered ("200", "404", "503", "unreachable (...)",
    /// "ignored"). `None` before a profile (and for tables older than `profile`).
    pub robots_status: Option<String>,
    /// Set by `profile`: robots.txt's Crawl-delay, seconds.
    pub crawl_delay: Option<f64>,
    /// Set by `profile`: the median full response time of its answered samples, ms.
    pub profile_latency_ms: Option<f64>,
    /// Set by `profile`: its notes, "; "-joined.
    pub profile_notes: Option<String>,
    /// Set by `profile`: when it profiled the server (RFC 3339 UTC).
    pub profiled_at: Option<String>,
}

impl ServerInfo {
    /// Rows in batch `partition`: from the servers table, else from the batch file's metadata.
    pub fn rows_in(&self, out: &Path, partition: u64) -> Result<u64, PrepError> {
        match self.batch_rows.as_ref().and_then(|r| r.get(partition as usize)) {
            Some(n) => Ok(*n),
            None => batch_rows(out, &self.server_name, partition),
        }
    }
}

fn join_numbers(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Reads `servers.parquet` from a prep output folder.
pub fn read_servers_table(out: &Path) -> Result<Vec<ServerInfo>, PrepError> {
    let path = crate::store::paths::servers_table(out);
    if !path.exists() {
        return Err(PrepError::NotPrepped { path: out.to_path_buf() });
    }
    let df = read_parquet(&path)?;
    let pe = |e: PolarsError| PrepError::Parquet { path: path.clone(), source: e };
    let names = df.column("server_name").map_err(pe)?.str().map_err(pe)?.clone();
    let urls = df.column("url_count").map_err(pe)?.u64().map_err(pe)?.clone();
    let batches = df.column("batch_count").map_err(pe)?.u64().map_err(pe)?.clone();
    let initial = df.column("initial_rate_limit").map_err(pe)?.f64().map_err(pe)?.clone();
    let learned = df.column("learned_rate_limit").map_err(pe)?.f64().map_err(pe)?.clone();
    let states = match df.column("learned_state") {
        Ok(c) => Some(c.str().map_err(pe)?.clone()),
        Err(_) => None,
    };
    let ids = match df.column("batch_ids") {
        Ok(c) => Some(c.str().map_err(pe)?.clone()),
        Err(_) => None,
    };
    let row_counts = match df.column("batch_rows") {
        Ok(c) => Some(c.str().map_err(pe)?.clone()),
        Err(_) => None,
    };
    // `profile`'s columns: absent until a profile was merged.
    let text = |name: &str| -> Result<Option<StringChunked>, PrepError> {
        df.column(name).ok().map(|c| c.str().cloned()).transpose().map_err(pe)
    };
    let number = |name: &str| -> Result<Option<Float64Chunked>, PrepError> {
        df.column(name).ok().map(|c| c.f64().cloned()).transpose().map_err(pe)
    };
    let (robots, delay, latency) = (text("robots_status")?, number("crawl_delay")?, number("profile_latency_ms")?);
    let (notes, profiled_at) = (text("profile_notes")?, text("profiled_at")?);
    let text_at = |c: &Option<StringChunked>, i: usize| c.as_ref().and_then(|c| c.get(i)).map(str::to_string);
    Ok((0..df.height())
        .map(|i| ServerInfo {
            server_name: names.get(i).unwrap_or_default().to_string(),
            url_count: urls.get(i).unwrap_or(0),
            batch_count: batches.get(i).unwrap_or(0),
            initial_rate_limit: initial.get(i).unwrap_or(crate::config::DEFAULT_INITIAL_RATE_LIMIT),
            learned_rate_limit: learned.get(i),
            learned_state: states.as_ref().and_then(|s| s.get(i)).map(str::to_string),
            batch_ids: ids
                .as_ref()
                .and_then(|s| s.get(i))
                .map(|v| v.split(',').filter(|id| !id.is_empty()).map(str::to_string).collect()),
            batch_rows: row_counts
                .as_ref()
                .and_then(|s| s.get(i))
                .and_then(|v| v.split(',').filter(|n| !n.is_empty()).map(|n| n.parse().ok()).collect()),
            robots_status: text_at(&robots, i),
            crawl_delay: delay.as_ref().and_then(|c| c.get(i)),
            profile_latency_ms: latency.as_ref().and_then(|c| c.get(i)),
            profile_notes: text_at(&notes, i),
            profiled_at: text_at(&profiled_at, i),
        })
        .collect())
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
        let dir = batch_path(out.path(), "a.org", 0);
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
