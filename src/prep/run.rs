//! Drives the three passes of `prep` and assembles the report.
//!
//! Outputs are built under `<out>/.prep-tmp/` and moved into place only when complete, so an
//! interrupted prep never leaves a half `urls/` folder that a download could mistake for the truth.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::batches::write_server_batches;
use super::carried::{self, CARRIED};
use super::filter::{self, DropReason, Rules};
use super::input::{ColumnMap, Format, Input};
use super::occurrence::{self, OCCURRENCE_DIR};
use super::report::{peak_rss_mib, MalformedSample, PrepReport, MAX_SAMPLES, TOP_SERVERS};
use super::server_key::{check_url, sanitize_key};
use super::spill::{bucket_count, merge_buckets, merge_workers, SpillWriter};
use super::PrepError;
use crate::progress::{human_count, Progress};
use crate::store::tables::{write_servers_table, ServerRow};
use crate::store::{atomic, paths};
use crate::telemetry::events::PrepProgress;

/// Rough bytes per row of a text input, used only to size the spill buckets before the rows are
/// counted. GBIF multimedia rows run 200–600 bytes; guessing low errs towards more, smaller buckets.
const GUESS_BYTES_PER_ROW: u64 = 150;

/// Prep's own outputs in the output folder; `--force` replaces only these.
pub const OUTPUTS: [&str; 5] = [paths::URLS_DIR, OCCURRENCE_DIR, paths::SERVERS_TABLE, paths::PREP_REPORT, TMP_DIR];
use crate::store::paths::PREP_TMP_DIR as TMP_DIR;

/// What the input rows mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schema {
    /// GBIF when the input has `gbifID` and `identifier` columns and no `--url-col` is given.
    Auto,
    /// A GBIF multimedia table: the GBIF filters apply.
    Gbif,
    /// Any URL list: `--url-col` (default `url`) and optional id, license, source, title columns.
    Generic,
}

/// Resolved options of one prep run.
#[derive(Debug, Clone)]
pub struct PrepOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: Format,
    pub schema: Schema,
    pub url_col: Option<String>,
    pub id_col: Option<String>,
    /// The input columns named by the flags of `carried::CARRIED` (`--license-col`, ...), in its
    /// order.
    pub carried_cols: [Option<String>; carried::N],
    /// GBIF's occurrence.txt of the same download, joined on the source id (`occurrence`).
    pub occurrence: Option<PathBuf>,
    pub batch_size: usize,
    pub initial_rate_limit: f64,
    pub ignored_servers: Option<PathBuf>,
    pub force: bool,
    /// Rows per spill bucket (memory of pass 2); `spill::ROWS_PER_BUCKET` unless testing.
    pub rows_per_bucket: u64,
}

impl PrepOptions {
    /// Options for a plain list of URLs (a `url` column, any format prep reads), written into
    /// `output` over whatever is there: what the benchmarks prepare.
    pub fn url_list(input: PathBuf, output: PathBuf, batch_size: usize, initial_rate_limit: f64) -> PrepOptions {
        PrepOptions {
            input,
            output,
            format: Format::Auto,
            schema: Schema::Generic,
            url_col: None,
            id_col: None,
            carried_cols: Default::default(),
            occurrence: None,
            batch_size,
            initial_rate_limit,
            ignored_servers: None,
            force: true,
            rows_per_bucket: super::spill::ROWS_PER_BUCKET,
        }
    }
}

pub fn run(opts: &PrepOptions) -> Result<PrepReport, PrepError> {
    let started = Instant::now();
    prepare_output(&opts.output, opts.force)?;
    let tmp = opts.output.join(TMP_DIR);
    let (spill_dir, by_server_dir, staged) = (tmp.join("spill"), tmp.join("by_server"), tmp.join("out"));
    for d in [&spill_dir, &by_server_dir, &staged] {
        fs::create_dir_all(d).map_err(|e| PrepError::Io { path: d.clone(), source: e })?;
    }

    let ignored = match &opts.ignored_servers {
        Some(p) => read_ignored(p)?,
        None => HashSet::new(),
    };
    let mut input = Input::open(&opts.input, opts.format)?;
    let (map, gbif) = resolve_columns(&input, opts)?;
    let rules = Rules { gbif, require_id: gbif || opts.id_col.is_some(), ignored };
    if opts.occurrence.is_some() && !rules.require_id {
        return Err(PrepError::MissingColumn {
            column: "source id".into(),
            path: opts.input.clone(),
            found: input.columns().join(", "),
            hint: " (--occurrence joins on it: name the column holding GBIF's gbifID with --id-col)".into(),
        });
    }

    let mut report = PrepReport::new();
    report.input = opts.input.display().to_string();
    report.output = opts.output.display().to_string();
    report.schema = if gbif { "gbif" } else { "generic" }.to_string();
    report.batch_size = opts.batch_size;
    report.ignored_servers_listed = rules.ignored.len() as u64;

    // Pass 1: read, filter, spill by URL hash.
    let estimated_rows = input.total_rows.unwrap_or(input.size_bytes() / GUESS_BYTES_PER_ROW);
    let workers = merge_workers();
    let rows_per_bucket = (opts.rows_per_bucket / workers as u64).max(1);
    let mut spill = SpillWriter::new(&spill_dir, bucket_count(estimated_rows, rows_per_bucket));
    let mut progress = Progress::new("prep");
    progress.phase(&format!("reading {} ({} columns)", opts.input.display(), input.columns().len()));
    loop {
        let chunk = input.next_chunk(&map)?;
        // Lines, not rows: the header and blank lines count too, so the total matches `wc -l`.
        report.rows_read = input.lines_read();
        report.lines_not_rows = input.lines_not_rows();
        if chunk.is_empty() {
            break;
        }
        for row in chunk {
            let line = row.line;
            let malformed = row.malformed.clone();
            match filter::apply(&rules, row) {
                Ok(kept) => {
                    report.rows_kept += 1;
                    spill.push(kept)?;
                }
                Err(reason) => {
                    report.count_drop(reason);
                    if reason == DropReason::MalformedLine && report.malformed_samples.len() < MAX_SAMPLES {
                        let problem = malformed.unwrap_or_default();
                        report.malformed_samples.push(MalformedSample { line, problem });
                    }
                }
            }
        }
        let msg = format!("{} rows read, {} kept", human_count(report.rows_read), human_count(report.rows_kept));
        progress.update(input.fraction_done(), &msg);
        let (rows_read, rows_kept) = (report.rows_read, report.rows_kept);
        PrepProgress { rows_read, rows_kept, phase: "read", fraction: input.fraction_done() }.emit();
    }
    // Blank lines after the last row are read only by the last, empty chunk: the metric ends
    // equal to the report.
    let (rows_read, rows_kept) = (report.rows_read, report.rows_kept);
    PrepProgress { rows_read, rows_kept, phase: "read", fraction: 1.0 }.emit();
    spill.flush()?;
    if report.rows_kept + report.dropped_total() == 0 {
        let _ = fs::remove_dir_all(&tmp);
        return Err(PrepError::EmptyInput { path: opts.input.clone() });
    }

    // Pass 2: merge identical URLs, `workers` buckets at a time.
    let buckets = spill.bucket_count();
    progress.phase(&format!("merging identical URLs in {buckets} buckets on {workers} threads"));
    let mut urls_per_server: BTreeMap<String, u64> = BTreeMap::new();
    merge_buckets(&spill_dir, buckets, &by_server_dir, workers, |finished, stats| {
        report.duplicate_url_rows += stats.duplicate_rows;
        for (server, n) in stats.urls_per_server {
            *urls_per_server.entry(server).or_default() += n;
        }
        let fraction = finished as f64 / buckets as f64;
        progress.update(fraction, &format!("{finished} of {buckets} buckets"));
        let (rows_read, rows_kept) = (report.rows_read, report.rows_kept);
        PrepProgress { rows_read, rows_kept, phase: "merge", fraction }.emit();
    })?;
    let _ = fs::remove_dir_all(&spill_dir);

    // Pass 3: cut batches per server.
    progress.phase(&format!("writing batches for {} servers", urls_per_server.len()));
    let urls_dir = staged.join(paths::URLS_DIR);
    fs::create_dir_all(&urls_dir).map_err(|e| PrepError::Io { path: urls_dir.clone(), source: e })?;
    let mut servers: Vec<ServerRow> = Vec::with_capacity(urls_per_server.len());
    for (i, server) in urls_per_server.keys().enumerate() {
        servers.push(write_server_batches(&by_server_dir, server, &urls_dir, opts.batch_size)?);
        // Its batches are written: its unique URLs are not read again, so they go now to free
        // scratch space. A failure to remove is ignored on purpose: the scratch folder is
        // removed when prep ends, and a leftover costs disk space, never a row.
        let _ = fs::remove_dir_all(by_server_dir.join(server));
        let fraction = (i + 1) as f64 / urls_per_server.len() as f64;
        progress.update(fraction, server);
        let (rows_read, rows_kept) = (report.rows_read, report.rows_kept);
        PrepProgress { rows_read, rows_kept, phase: "write", fraction }.emit();
    }
    write_servers_table(&paths::servers_table(&staged), &servers, opts.initial_rate_limit)?;
    if let Some(file) = &opts.occurrence {
        progress.phase(&format!("joining {} on the source id", file.display()));
        report.occurrence = Some(occurrence::join(&staged, &servers, file, &tmp.join("join"))?);
    }
    progress.finish();

    // Publish: durably, so a crash after prep never leaves a batch file empty.
    for name in [paths::URLS_DIR, OCCURRENCE_DIR, paths::SERVERS_TABLE] {
        if staged.join(name).exists() {
            atomic::publish(&staged.join(name), &opts.output.join(name))?;
        }
    }
    let _ = fs::remove_dir_all(&tmp);

    report.unique_urls = servers.iter().map(|s| s.url_count).sum();
    report.servers = servers.len() as u64;
    report.batches = servers.iter().map(|s| s.batch_count).sum();
    servers.sort_by(|a, b| b.url_count.cmp(&a.url_count).then(a.server_name.cmp(&b.server_name)));
    servers.truncate(TOP_SERVERS);
    report.largest_servers = servers;
    report.wall_seconds = started.elapsed().as_secs_f64();
    report.peak_rss_mib = peak_rss_mib();
    let json_path = crate::store::paths::prep_report(&opts.output);
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    atomic::replace(&json_path, (json + "\n").as_bytes())?;
    Ok(report)
}

/// Creates the output folder, or checks it may be written to.
fn prepare_output(out: &Path, force: bool) -> Result<(), PrepError> {
    let io = |e| PrepError::Io { path: out.to_path_buf(), source: e };
    fs::create_dir_all(out).map_err(io)?;
    let mut entries: Vec<String> = Vec::new();
    for entry in fs::read_dir(out).map_err(io)? {
        let name = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
        // `submit` writes its scripts, job record and logs before the prep job runs, and prep's
        // own exporter lists itself under metrics/; the prep command holds the writer lock.
        let ours = [
            TMP_DIR,
            crate::slurm::SLURM_DIR,
            crate::slurm::LOGS_DIR,
            crate::telemetry::exporter::METRICS_DIR,
            crate::store::paths::LOCK_FILE,
        ];
        if !ours.contains(&name.as_str()) {
            entries.push(name);
        }
    }
    if !entries.is_empty() && !force {
        let mut shown: Vec<String> = entries.iter().take(5).cloned().collect();
        if entries.len() > 5 {
            shown.push(format!("and {} more", entries.len() - 5));
        }
        return Err(PrepError::OutputNotEmpty { path: out.to_path_buf(), entries: shown.join(", ") });
    }
    for name in OUTPUTS {
        let p = out.join(name);
        let removed = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        if let Err(e) = removed {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(PrepError::Io { path: p, source: e });
            }
        }
    }
    Ok(())
}

/// Reads the ignored-servers file: one server key or URL per line, `#` comments, blank lines skipped.
fn read_ignored(path: &Path) -> Result<HashSet<String>, PrepError> {
    let text = fs::read_to_string(path).map_err(|e| PrepError::Io { path: path.to_path_buf(), source: e })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| match check_url(l) {
            Ok(c) => c.server,
            Err(_) => sanitize_key(&l.replace(':', "_")),
        })
        .collect())
}

/// Decides the schema and maps input columns to fields; a missing column is an error naming it.
fn resolve_columns(input: &Input, opts: &PrepOptions) -> Result<(ColumnMap, bool), PrepError> {
    let found = || input.columns().join(", ");
    let missing = |column: &str, hint: &str| PrepError::MissingColumn {
        column: column.to_string(),
        path: opts.input.clone(),
        found: found(),
        hint: hint.to_string(),
    };
    let looks_gbif = input.find_column("gbifID", true).is_some() && input.find_column("identifier", true).is_some();
    let gbif = match opts.schema {
        Schema::Gbif => true,
        Schema::Generic => false,
        Schema::Auto => looks_gbif && opts.url_col.is_none(),
    };
    // Explicit flags name exact columns; GBIF's fixed names are matched ignoring case, since the
    // text export says `gbifID` and the parquet snapshot says `gbifid`.
    let explicit = |flag: &Option<String>, what: &str| -> Result<Option<String>, PrepError> {
        match flag {
            None => Ok(None),
            Some(c) => input.find_column(c, false).map(Some).ok_or_else(|| missing(c, &format!(" (given as {what})"))),
        }
    };
    let mut map = ColumnMap::default();
    if gbif {
        let required = |name: &str| {
            input.find_column(name, true).ok_or_else(|| missing(name, " (required for a GBIF multimedia table)"))
        };
        map.id = Some(match explicit(&opts.id_col, "--id-col")? {
            Some(c) => c,
            None => required("gbifID")?,
        });
        map.url = match explicit(&opts.url_col, "--url-col")? {
            Some(c) => c,
            None => required("identifier")?,
        };
        map.kind = Some(required("type")?);
        map.format = Some(required("format")?);
        map.basis_of_record = input.find_column("basisOfRecord", true);
        for (i, c) in CARRIED.iter().enumerate() {
            map.carried[i] = explicit(&opts.carried_cols[i], c.flag)?.or_else(|| input.find_column(c.gbif, true));
        }
    } else {
        map.url = match explicit(&opts.url_col, "--url-col")? {
            Some(c) => c,
            None => {
                input.find_column("url", true).ok_or_else(|| missing("url", " (name the URL column with --url-col)"))?
            }
        };
        map.id = explicit(&opts.id_col, "--id-col")?;
        for (i, c) in CARRIED.iter().enumerate() {
            map.carried[i] = explicit(&opts.carried_cols[i], c.flag)?;
        }
    }
    Ok((map, gbif))
}
