//! `servers.parquet`: one row per server, written by prep and read by every later command.
//!
//! Prep writes its first version ([`write_servers_table`]); downloads and `profile` update their
//! own columns (`table_updates`); everything else reads it ([`read_servers_table`]).

use std::path::Path;

use polars::prelude::*;

use super::batches::batch_rows;
use super::error::StoreError;
use super::parquet::{read_parquet, write_parquet};
use super::paths;

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

/// Writes `servers.parquet`: one row per server, with the columns later runs fill in.
pub fn write_servers_table(path: &Path, servers: &[ServerRow], initial_rate: f64) -> Result<(), StoreError> {
    let n = servers.len();
    let pe = |e: PolarsError| StoreError::Parquet { path: path.to_path_buf(), source: e };
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
    pub fn rows_in(&self, out: &Path, partition: u64) -> Result<u64, StoreError> {
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
pub fn read_servers_table(out: &Path) -> Result<Vec<ServerInfo>, StoreError> {
    let path = paths::servers_table(out);
    if !path.exists() {
        return Err(StoreError::NotPrepped { path: out.to_path_buf() });
    }
    let df = read_parquet(&path)?;
    let pe = |e: PolarsError| StoreError::Parquet { path: path.clone(), source: e };
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
    let text = |name: &str| -> Result<Option<StringChunked>, StoreError> {
        df.column(name).ok().map(|c| c.str().cloned()).transpose().map_err(pe)
    };
    let number = |name: &str| -> Result<Option<Float64Chunked>, StoreError> {
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
