//! Out-of-core grouping: how prep handles inputs far larger than memory.
//!
//! Pass 1 appends kept rows to spill files bucketed by a stable hash of the URL, so identical URLs
//! always meet in one bucket. Pass 2 merges identical URLs (keeping every source id that referenced
//! them) and writes the unique URLs per server, one bucket per worker thread at a time. Memory is
//! bounded by the buckets in flight, whose size is chosen from the input's size and the number of
//! workers, not by the input itself.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use polars::prelude::*;
use uuid::Uuid;

use super::carried::{self, CARRIED};
use super::filter::KeptRow;
use super::server_key::fnv1a;
use super::PrepError;

/// Kept rows buffered in pass 1 before they are flushed to the bucket files. Bounds pass-1 memory
/// at a few hundred MB for long GBIF rows, while keeping the number of spill files small.
const FLUSH_ROWS: usize = 500_000;

/// Default target rows per bucket in pass 2: one bucket is held in memory with its hash map, about 1 KB
/// per row all told, so 1M rows keeps pass 2 near 1 GB at most.
pub const ROWS_PER_BUCKET: u64 = 1_000_000;

/// Most buckets used; past this the spill files get too many for a scratch file system.
const MAX_BUCKETS: u64 = 4096;

/// Most buckets merged at once. Buckets shrink as workers are added (see `merge_workers`), so
/// memory stays put; past 4 the merge is no longer the slow part of prep (reading is, on one
/// thread), and more workers only mean more, smaller spill files.
const MAX_MERGE_WORKERS: usize = 4;

/// The namespace of every UUID prep makes. Fixed forever: changing it would orphan every
/// downloaded image of every existing dataset.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x8f1c_4a52_3d6e_5b07_9a41_c2e0_7d13_b6f5);

/// The UUID of the image at `url`: the same URL always gets the same UUID, whatever the run.
pub fn image_uuid(url: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, url.as_bytes())
}

/// The UUID of one input row, over its source id and URL.
pub fn row_uuid(source_id: &str, url: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, format!("{source_id}\t{url}").as_bytes())
}

/// How many buckets pass 2 merges at once: the cores this process may use, or POLARS_MAX_THREADS
/// when set (the thread budget polars is given too), at most `MAX_MERGE_WORKERS`. Callers divide
/// the rows per bucket by it, so pass 2 holds about as many rows in memory as with one worker.
pub fn merge_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = std::env::var("POLARS_MAX_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(cores);
    budget.clamp(1, MAX_MERGE_WORKERS)
}

/// Chooses the bucket count for an input of about `estimated_rows` rows.
pub fn bucket_count(estimated_rows: u64, rows_per_bucket: u64) -> usize {
    estimated_rows.div_ceil(rows_per_bucket.max(1)).clamp(1, MAX_BUCKETS) as usize
}

/// Pass 1: buffers kept rows and flushes them to `dir/b<k>/f<n>.arrow` (see `write_scratch`).
pub struct SpillWriter {
    dir: PathBuf,
    buckets: Vec<BucketColumns>,
    buffered: usize,
    flushes: usize,
}

/// One bucket's rows since the last flush, appended straight to the columns of its next spill
/// file: a row's strings are copied once into the columns' large buffers and freed at once, so
/// no row outlives its `push` as millions of small allocations waiting for the flush.
struct BucketColumns {
    rows: usize,
    /// `source_id`, `url`, `server`, then the carried columns (`carried::CARRIED`).
    columns: Vec<StringChunkedBuilder>,
}

/// The spill files' first columns; the carried ones follow.
const SPILL_COLUMNS: [&str; 3] = ["source_id", "url", "server"];

impl BucketColumns {
    fn new() -> BucketColumns {
        let names = SPILL_COLUMNS.into_iter().chain(CARRIED.iter().map(|c| c.name));
        BucketColumns { rows: 0, columns: names.map(|name| StringChunkedBuilder::new(name.into(), 0)).collect() }
    }

    fn push(&mut self, row: &KeptRow) {
        self.columns[0].append_value(&row.source_id);
        self.columns[1].append_value(&row.url);
        self.columns[2].append_value(&row.server);
        for (column, value) in self.columns[SPILL_COLUMNS.len()..].iter_mut().zip(&row.carried) {
            column.append_option(value.as_deref());
        }
        self.rows += 1;
    }

    /// The rows so far as a frame; the bucket starts empty again, its buffers released.
    fn take_frame(&mut self) -> PolarsResult<DataFrame> {
        let BucketColumns { rows, columns } = std::mem::replace(self, BucketColumns::new());
        DataFrame::new(rows, columns.into_iter().map(|c| c.finish().into_column()).collect())
    }
}

impl SpillWriter {
    pub fn new(dir: &Path, buckets: usize) -> SpillWriter {
        SpillWriter {
            dir: dir.to_path_buf(),
            buckets: (0..buckets).map(|_| BucketColumns::new()).collect(),
            buffered: 0,
            flushes: 0,
        }
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn push(&mut self, row: KeptRow) -> Result<(), PrepError> {
        let b = (fnv1a(row.url.as_bytes()) % self.buckets.len() as u64) as usize;
        self.buckets[b].push(&row);
        self.buffered += 1;
        if self.buffered >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), PrepError> {
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            if bucket.rows == 0 {
                continue;
            }
            let dir = self.dir.join(format!("b{b:05}"));
            fs::create_dir_all(&dir).map_err(|e| PrepError::Io { path: dir.clone(), source: e })?;
            let mut df = bucket.take_frame().map_err(|e| PrepError::Parquet { path: dir.clone(), source: e })?;
            write_scratch(&dir.join(format!("f{:06}.{SCRATCH_EXT}", self.flushes)), &mut df)?;
        }
        self.flushes += 1;
        self.buffered = 0;
        Ok(())
    }
}

/// What pass 2 learned from one bucket.
#[derive(Debug, Default)]
pub struct BucketStats {
    /// Kept rows that repeated a URL already seen.
    pub duplicate_rows: u64,
    /// Unique URLs per server in this bucket.
    pub urls_per_server: HashMap<String, u64>,
}

/// (source id, carried values) of one row that referenced a URL, borrowed from the bucket's
/// columns.
type Reference<'a> = (&'a str, [Option<&'a str>; carried::N]);

struct UrlGroup<'a> {
    server: &'a str,
    /// Every row that referenced the URL.
    refs: Vec<Reference<'a>>,
}

/// The columns of one spill file that the merge reads.
struct SpillColumns {
    ids: StringChunked,
    urls: StringChunked,
    servers: StringChunked,
    /// In `carried::CARRIED` order.
    carried: Vec<StringChunked>,
}

impl SpillColumns {
    fn read(path: &Path) -> Result<SpillColumns, PrepError> {
        let df = read_scratch(path)?;
        let pe = |e: PolarsError| PrepError::Parquet { path: path.to_path_buf(), source: e };
        let get = |name: &str| -> Result<StringChunked, PrepError> {
            Ok(df.column(name).map_err(pe)?.str().map_err(pe)?.clone())
        };
        Ok(SpillColumns {
            ids: get("source_id")?,
            urls: get("url")?,
            servers: get("server")?,
            carried: CARRIED.iter().map(|c| get(c.name)).collect::<Result<_, _>>()?,
        })
    }
}

/// Pass 2 for bucket `b`: merges identical URLs of `spill_dir/b<b>` and writes the unique URLs to
/// `by_server_dir/<server>/b<b>.arrow`, sorted by URL so that the batch layout is deterministic.
///
/// The bucket's files stay loaded while it is merged and the merge map borrows its strings from
/// them: no string is copied per row (copying them made allocation a quarter of prep's CPU).
/// Once merged, the bucket's spill files are removed.
pub fn dedup_bucket(spill_dir: &Path, b: usize, by_server_dir: &Path) -> Result<BucketStats, PrepError> {
    let dir = spill_dir.join(format!("b{b:05}"));
    let mut stats = BucketStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    let files =
        sorted_scratch_files(&dir)?.iter().map(|path| SpillColumns::read(path)).collect::<Result<Vec<_>, _>>()?;
    // foldhash, not SipHash: the keys are our own input's URLs, read once, in a short-lived map.
    let mut groups: HashMap<&str, UrlGroup<'_>, foldhash::fast::RandomState> = HashMap::default();
    for f in &files {
        let rows = f.urls.iter().zip(f.servers.iter()).zip(f.ids.iter());
        for (i, ((url, server), id)) in rows.enumerate() {
            let reference = (id.unwrap_or_default(), std::array::from_fn(|c| f.carried[c].get(i)));
            match groups.get_mut(url.unwrap_or_default()) {
                Some(g) => {
                    stats.duplicate_rows += 1;
                    g.refs.push(reference);
                }
                None => {
                    let group = UrlGroup { server: server.unwrap_or_default(), refs: vec![reference] };
                    groups.insert(url.unwrap_or_default(), group);
                }
            }
        }
    }
    let mut per_server: HashMap<&str, Vec<(&str, UrlGroup)>, foldhash::fast::RandomState> = HashMap::default();
    for (url, g) in groups {
        per_server.entry(g.server).or_default().push((url, g));
    }
    for (server, mut entries) in per_server {
        entries.sort_by(|a, b| a.0.cmp(b.0));
        stats.urls_per_server.insert(server.to_string(), entries.len() as u64);
        let out_dir = by_server_dir.join(server);
        fs::create_dir_all(&out_dir).map_err(|e| PrepError::Io { path: out_dir.clone(), source: e })?;
        let mut df = url_frame(&mut entries).map_err(|e| PrepError::Parquet { path: out_dir.clone(), source: e })?;
        write_scratch(&out_dir.join(format!("b{b:05}.{SCRATCH_EXT}")), &mut df)?;
    }
    drop(files);
    // Merged: the bucket's spill files are not read again. Removing them now, not after the last
    // bucket, keeps prep's scratch space near the size of its spill instead of twice that. A
    // failure to remove is ignored on purpose: nothing reads them again, and the whole scratch
    // folder is removed when prep ends, so it costs disk space for a while and no data.
    let _ = fs::remove_dir_all(&dir);
    Ok(stats)
}

/// Pass 2 for buckets `0..buckets` on `workers` threads, each taking the next bucket when done.
/// `on_done(finished, stats)` runs on the calling thread once per bucket, in completion order. The
/// first error stops the workers from starting more buckets and is returned once the running ones
/// end; the caller discards the half-written output then, as for any prep error.
pub fn merge_buckets(
    spill_dir: &Path,
    buckets: usize,
    by_server_dir: &Path,
    workers: usize,
    mut on_done: impl FnMut(usize, BucketStats),
) -> Result<(), PrepError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut first_error = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..workers.clamp(1, buckets.max(1)) {
            let (tx, next, stop) = (tx.clone(), &next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= buckets {
                        break;
                    }
                    let result = dedup_bucket(spill_dir, b, by_server_dir);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    // The receiver lives until every sender is gone: this send cannot fail.
                    let _ = tx.send(result);
                }
            });
        }
        drop(tx);
        let mut finished = 0;
        for result in rx {
            match result {
                Ok(stats) => {
                    finished += 1;
                    on_done(finished, stats);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    first_error.map_or(Ok(()), Err)
}

/// Builds the output table of unique URLs: one row per URL, with every source id that referenced it.
fn url_frame(entries: &mut [(&str, UrlGroup)]) -> PolarsResult<DataFrame> {
    let n = entries.len();
    let mut uuids = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut carried: Vec<Vec<Option<&str>>> = (0..carried::N).map(|_| Vec::with_capacity(n)).collect();
    let mut ids = ListStringChunkedBuilder::new("source_ids".into(), n, n);
    let mut row_uuids = ListStringChunkedBuilder::new("row_uuids".into(), n, n);
    let mut rows: Vec<String> = Vec::new();
    for (url, g) in entries.iter_mut() {
        // Sorted, de-duplicated source ids: the first one's metadata describes the image, so the
        // choice does not depend on the input's row order.
        g.refs.sort();
        g.refs.dedup_by(|a, b| a.0 == b.0);
        uuids.push(image_uuid(url).to_string());
        urls.push(*url);
        let first = &g.refs[0];
        for (column, value) in carried.iter_mut().zip(first.1) {
            column.push(value);
        }
        ids.append_values_iter(g.refs.iter().map(|r| r.0));
        rows.clear();
        rows.extend(g.refs.iter().map(|r| row_uuid(r.0, url).to_string()));
        row_uuids.append_values_iter(rows.iter().map(String::as_str));
    }
    let mut columns = vec![
        Column::new("uuid".into(), uuids),
        Column::new("url".into(), urls),
        ids.finish().into_column(),
        row_uuids.finish().into_column(),
    ];
    columns.extend(CARRIED.iter().zip(carried).map(|(c, values)| Column::new(c.name.into(), values)));
    DataFrame::new(n, columns)
}

/// Prep's own intermediate files of `dir` (see `write_scratch`), in name order.
pub fn sorted_scratch_files(dir: &Path) -> Result<Vec<PathBuf>, PrepError> {
    files_ending(dir, SCRATCH_EXT)
}

fn files_ending(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, PrepError> {
    let io = |e| PrepError::Io { path: dir.to_path_buf(), source: e };
    // An entry that cannot be read is an error, never skipped: a batch file left out would
    // silently drop its rows.
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|x| x == extension) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The extension of prep's intermediate files: Arrow IPC.
const SCRATCH_EXT: &str = "arrow";

/// Writes prep's own intermediate files (spill buckets, unique URLs per bucket) as uncompressed
/// Arrow IPC: read once by prep itself and deleted, so they are written as the columns lie in
/// memory. Parquet, even uncompressed and without statistics, spent a fifth of prep's CPU on
/// them (encoding, and estimating each string column's cardinality to choose a dictionary).
/// Everything a user reads is parquet, written through the store (`store::parquet`).
fn write_scratch(path: &Path, df: &mut DataFrame) -> Result<(), PrepError> {
    let file = File::create(path).map_err(|e| PrepError::Io { path: path.to_path_buf(), source: e })?;
    IpcWriter::new(std::io::BufWriter::new(file))
        .finish(df)
        .map_err(|e| PrepError::Parquet { path: path.to_path_buf(), source: e })
}

/// Reads a file `write_scratch` wrote.
pub fn read_scratch(path: &Path) -> Result<DataFrame, PrepError> {
    let file = File::open(path).map_err(|e| PrepError::Io { path: path.to_path_buf(), source: e })?;
    IpcReader::new(file).finish().map_err(|e| PrepError::Parquet { path: path.to_path_buf(), source: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_distinct() {
        let u = "http://a.org/1.jpg";
        assert_eq!(image_uuid(u), image_uuid(u));
        assert_ne!(image_uuid(u), image_uuid("http://a.org/2.jpg"));
        assert_ne!(row_uuid("1", u), row_uuid("2", u));
        // Pinned (computed independently with Python's uuid.uuid5): a change here would orphan
        // every image already downloaded under the old UUIDs.
        assert_eq!(image_uuid(u).to_string(), "4497a131-c145-5efc-8f19-c90e369a80c2");
        assert_eq!(row_uuid("1", u).to_string(), "87478b27-715f-52f2-aa8e-1917273196fe");
    }

    #[test]
    fn bucket_count_grows_with_input_and_is_capped() {
        assert_eq!(bucket_count(0, ROWS_PER_BUCKET), 1);
        assert_eq!(bucket_count(999_999, ROWS_PER_BUCKET), 1);
        assert_eq!(bucket_count(10_000_000, ROWS_PER_BUCKET), 10);
        assert_eq!(bucket_count(u64::MAX / 2, ROWS_PER_BUCKET), MAX_BUCKETS as usize);
    }

    fn kept(id: &str, server: &str, url: &str) -> KeptRow {
        let (source_id, server, url) = (id.to_string(), server.to_string(), url.to_string());
        KeptRow { source_id, url, server, carried: Default::default() }
    }

    #[test]
    fn parallel_merge_counts_every_url_once_and_stops_at_a_broken_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let (spill_dir, by_server) = (dir.path().join("spill"), dir.path().join("by_server"));
        let spill_rows = || {
            let mut spill = SpillWriter::new(&spill_dir, 8);
            for i in 0..200 {
                let server = if i % 2 == 0 { "a.org" } else { "b.org" };
                let url = format!("http://{server}/{}.jpg", i % 150);
                spill.push(kept(&i.to_string(), server, &url)).unwrap();
            }
            spill.flush().unwrap();
        };
        spill_rows();
        let (mut urls, mut duplicates, mut calls) = (HashMap::<String, u64>::new(), 0, Vec::new());
        merge_buckets(&spill_dir, 8, &by_server, 3, |finished, stats| {
            calls.push(finished);
            duplicates += stats.duplicate_rows;
            for (server, n) in stats.urls_per_server {
                *urls.entry(server).or_default() += n;
            }
        })
        .unwrap();
        assert_eq!(calls, (1..=8).collect::<Vec<_>>(), "one call per bucket, counting up");
        assert_eq!((urls["a.org"], urls["b.org"], duplicates), (75, 75, 50));
        // Each merged bucket's spill files are gone, freeing scratch space as the merge goes.
        assert_eq!(fs::read_dir(&spill_dir).unwrap().count(), 0, "spill buckets left behind");

        // A bucket that cannot be read is an error naming its file, not a hang or a lost bucket.
        spill_rows();
        let broken = spill_dir.join("b00005").join("zz-broken.arrow");
        fs::write(&broken, b"not arrow").unwrap();
        let err = merge_buckets(&spill_dir, 8, &dir.path().join("again"), 2, |_, _| {}).unwrap_err();
        assert!(
            err.to_string().contains("zz-broken.arrow") || format!("{err:?}").contains("zz-broken.arrow"),
            "{err:?}"
        );
    }
}
