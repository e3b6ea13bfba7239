//! Pass 3: cuts each server's unique URLs into batches and writes the final layout.
//!
//! A server with n URLs gets exactly ceil(n / B) batches: every batch but the last holds B URLs.
//! The server's per-bucket files are read in bucket order and cut as they stream past, so memory
//! holds at most one bucket file plus one batch, however large the server is.
//!
//! The files are written through the store (`store::batches`, `store::tables`), which owns the
//! layout.

use std::path::Path;

use polars::prelude::*;

use super::spill::{read_scratch, sorted_scratch_files};
use super::PrepError;
use crate::store::batches::write_batch;
use crate::store::tables::ServerRow;

/// Writes the batches of `server` from `by_server_dir/<server>/` into `urls_dir`. Returns the
/// number of URLs and batches written.
pub fn write_server_batches(
    by_server_dir: &Path,
    server: &str,
    urls_dir: &Path,
    batch_size: usize,
) -> Result<ServerRow, PrepError> {
    let mut buffer: Option<DataFrame> = None;
    let mut batches = 0u64;
    let mut urls = 0u64;
    let mut batch_ids = Vec::new();
    let mut batch_rows = Vec::new();
    let mut emit = |df: DataFrame, batches: &mut u64| -> Result<(), PrepError> {
        let mut df = df;
        batch_ids.push(write_batch(urls_dir, server, *batches, &mut df)?);
        batch_rows.push(df.height() as u64);
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
