//! `dd-bench prep`: a generated GBIF-like multimedia table of any size, and prep's wall time and
//! peak memory on it.
//!
//! The generator is deterministic (a fixed-seed xorshift), streams to disk, and mimics what makes
//! GBIF hard: a few huge servers and a long tail of small ones, repeated URLs, non-image rows,
//! rows without identifiers, and the odd malformed line.
//!
//! Beside ours it runs DuckDB's version of the same job (`crates/bench/duckdb/prep.py`, whose
//! header lists what it leaves out) on the same input with the same thread count, when a Python
//! with DuckDB is found (`scripts/duckdb.sh install` makes one), and prints both times, both peak
//! memories, their ratio, and whether the two kept the same URLs and servers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use distributed_downloader::config::{DEFAULT_BATCH_SIZE, DEFAULT_INITIAL_RATE_LIMIT};
use distributed_downloader::prep::input::Format;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions, Schema};
use distributed_downloader::prep::server_key::fnv1a;
use distributed_downloader::prep::spill::ROWS_PER_BUCKET;

use crate::cli::{BenchPrepArgs, DuckDbMode};

/// The 15 columns of GBIF's multimedia extension, in order.
pub const GBIF_COLUMNS: [&str; 15] = [
    "gbifID",
    "type",
    "format",
    "identifier",
    "references",
    "title",
    "description",
    "source",
    "audience",
    "created",
    "creator",
    "contributor",
    "publisher",
    "license",
    "rightsHolder",
];

/// Servers in a generated table. GBIF's monthly snapshot spans 545+ image servers.
const SERVERS: u64 = 600;

/// DuckDB's version of prep, run from the clone the benchmark was built in.
const DUCKDB_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/duckdb/prep.py");
/// The same job in polars' streaming engine, run by the same Python when it has polars.
const POLARS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/duckdb/polars_prep.py");

/// Where `scripts/duckdb.sh` puts its venv, under `$HOME`.
const DUCKDB_VENV_PYTHON: &str = ".cache/distributed-downloader/duckdb-venv/bin/python";

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes `rows` GBIF-like data rows (plus a header) to `path`.
pub fn write_gbif_like(path: &Path, rows: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(out, "{}", GBIF_COLUMNS.join("\t"))?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..rows {
        let r = rng.next();
        let id = 1_000_000_000 + i;
        // 3% of rows point at an image another row already referenced.
        let img = if r % 100 < 3 { id.saturating_sub(r % 1000 + 1) } else { id };
        // Zipf-like: server s gets weight 1/(s+1), by inverting a uniform draw on a log scale.
        // Drawn from the image id, so a repeated image repeats its whole URL.
        let u = (fnv1a(&img.to_le_bytes()) % 1_000_000) as f64 / 1_000_000.0;
        let server = ((SERVERS as f64 + 1.0).powf(u) - 1.0) as u64;
        let (kind, format) = match (r >> 20) % 100 {
            0..=3 => ("Sound", "audio/mpeg"),
            4..=6 => ("", "image/jpeg"),
            _ => ("StillImage", "image/jpeg"),
        };
        let url = if (r >> 30) % 500 == 0 {
            String::new()
        } else {
            format!("https://images{server}.museum{}.example.org/media/{img}.jpg", server % 97)
        };
        if (r >> 40) % 100_000 == 0 {
            // A truncated line, as seen in real exports.
            writeln!(out, "{id}\tStillImage\timage/jpeg\t{url}")?;
            continue;
        }
        writeln!(
            out,
            "{id}\t{kind}\t{format}\t{url}\thttps://portal.example.org/occurrence/{id}\tSpecimen \"{id}\"\tHerbarium sheet\t\t\t2019-05-0{}\tA. Collector\t\tMuseum {server}\thttp://creativecommons.org/licenses/by/4.0/\tMuseum {server}",
            1 + r % 9
        )?;
    }
    out.flush()
}

/// `dd-bench prep`: generates the input, runs prep in this process, prints wall time and peak
/// RSS; then the same for DuckDB when it is found, and the comparison.
pub fn prep(args: &BenchPrepArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(n) = args.threads {
        // Read by polars when its pool starts, which is later than this (the generator uses none).
        std::env::set_var("POLARS_MAX_THREADS", n.to_string());
    }
    // Found before the long run, so `--duckdb on` without DuckDB fails at once.
    let duckdb = find_duckdb(args.duckdb.mode, args.duckdb.python.clone(), DUCKDB_SCRIPT, "bench-prep")?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let input = args.dir.join("multimedia.txt");
    let output = args.dir.join("prep-out");
    let t = Instant::now();
    write_gbif_like(&input, args.rows).with_context(|| format!("cannot write {}", input.display()))?;
    let size = std::fs::metadata(&input)?.len();
    eprintln!(
        "bench-prep: generated {} rows ({:.0} MB) in {:.1} s",
        args.rows,
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let opts = PrepOptions {
        input: input.clone(),
        output: output.clone(),
        format: Format::Auto,
        schema: Schema::Auto,
        url_col: None,
        id_col: None,
        carried_cols: Default::default(),
        occurrence: None,
        batch_size: DEFAULT_BATCH_SIZE,
        initial_rate_limit: DEFAULT_INITIAL_RATE_LIMIT,
        ignored_servers: None,
        force: true,
        rows_per_bucket: ROWS_PER_BUCKET,
    };
    let report = prep_run::run(&opts)?;
    println!(
        "bench-prep: rows={} input_mb={:.0} wall_s={:.1} rows_per_s={:.0} peak_rss_mib={:.0} unique_urls={} servers={} batches={}",
        report.rows_read,
        size as f64 / 1e6,
        report.wall_seconds,
        report.rows_read as f64 / report.wall_seconds,
        report.peak_rss_mib.unwrap_or(f64::NAN),
        report.unique_urls,
        report.servers,
        report.batches
    );
    let ours = Figures {
        wall_s: report.wall_seconds,
        peak_rss_mib: report.peak_rss_mib.unwrap_or(f64::NAN),
        unique_urls: report.unique_urls,
        servers: report.servers,
        batches: report.batches,
    };
    let compared = match &duckdb {
        None => Ok(()),
        Some(python) => {
            let duck_out = args.dir.join("duckdb-out");
            let result = run_duckdb(python, &input, &duck_out, threads, args.duckdb.memory_limit.as_deref())
                .map(|duck| compare(&ours, &duck, report.rows_kept, threads));
            if !args.keep {
                crate::remove_scratch(&duck_out);
            }
            result.and_then(|()| {
                run_polars_if_found(python, &input, &args.dir.join("polars-out"), &ours, threads, args.keep)
            })
        }
    };
    if !args.keep {
        // Scratch files: a leftover costs disk only (see `remove_scratch`).
        let _ = std::fs::remove_file(&input);
        crate::remove_scratch(&output);
    }
    compared
}

/// The figures both runs are compared on.
struct Figures {
    wall_s: f64,
    peak_rss_mib: f64,
    unique_urls: u64,
    servers: u64,
    batches: u64,
}

/// The Python to run DuckDB with (`python`, else $DD_DUCKDB_PYTHON, else the venv of
/// `scripts/duckdb.sh`), or `None` when the comparison is off or, under `auto`, when no Python
/// with DuckDB is found (said on stderr, prefixed with `bench`). `script` is the yardstick the
/// bench will run.
pub(crate) fn find_duckdb(
    mode: DuckDbMode,
    python: Option<PathBuf>,
    script: &str,
    bench: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if mode == DuckDbMode::Off {
        return Ok(None);
    }
    let python = python
        .or_else(|| std::env::var_os("DD_DUCKDB_PYTHON").filter(|v| !v.is_empty()).map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(DUCKDB_VENV_PYTHON)));
    let problem = match &python {
        None => "no --duckdb-python given and $HOME is not set".to_string(),
        Some(_) if !Path::new(script).is_file() => {
            format!("{script} is missing (dd-bench runs it from the clone it was built in)")
        }
        Some(py) => {
            let imports = Command::new(py)
                .args(["-c", "import duckdb"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if imports {
                return Ok(python);
            }
            format!("{} cannot import duckdb", py.display())
        }
    };
    let hint = "run scripts/duckdb.sh install, or pass --duckdb-python";
    match mode {
        DuckDbMode::On => anyhow::bail!("--duckdb on: {problem}; {hint}"),
        _ => {
            eprintln!("{bench}: DuckDB comparison skipped: {problem} ({hint})");
            Ok(None)
        }
    }
}

/// Runs `crates/bench/duckdb/prep.py` on `input` into `out` and reads the figures it prints.
fn run_duckdb(
    python: &Path,
    input: &Path,
    out: &Path,
    threads: usize,
    memory_limit: Option<&str>,
) -> anyhow::Result<Figures> {
    let mut cmd = Command::new(python);
    cmd.arg(DUCKDB_SCRIPT).arg(input).arg(out);
    cmd.args(["--threads", &threads.to_string(), "--batch-size", &DEFAULT_BATCH_SIZE.to_string()]);
    if let Some(limit) = memory_limit {
        cmd.args(["--memory-limit", limit]);
    }
    eprintln!("bench-prep: running DuckDB ({} threads) on the same input", threads);
    let started = Instant::now();
    let (v, figures) = run_yardstick(cmd, DUCKDB_SCRIPT)?;
    let process_s = started.elapsed().as_secs_f64();
    println!(
        "bench-prep: duckdb={} wall_s={:.1} process_s={:.1} peak_rss_mib={:.0} memory_limit={} unique_urls={} servers={} batches={}",
        v.get("duckdb_version").and_then(serde_json::Value::as_str).unwrap_or("?"),
        figures.wall_s,
        process_s,
        figures.peak_rss_mib,
        memory_limit.unwrap_or("default"),
        figures.unique_urls,
        figures.servers,
        figures.batches
    );
    Ok(figures)
}

/// Runs `crates/bench/duckdb/polars_prep.py` with `python` when that Python has polars, and
/// prints its figures and ours against them; says so and returns when it has not.
fn run_polars_if_found(
    python: &Path,
    input: &Path,
    out: &Path,
    ours: &Figures,
    threads: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let has_polars = Command::new(python)
        .args(["-c", "import polars"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_polars {
        eprintln!(
            "bench-prep: polars comparison skipped: {} cannot import polars (scripts/duckdb.sh install adds it)",
            python.display()
        );
        return Ok(());
    }
    let mut cmd = Command::new(python);
    cmd.arg(POLARS_SCRIPT).arg(input).arg(out);
    cmd.args(["--threads", &threads.to_string(), "--batch-size", &DEFAULT_BATCH_SIZE.to_string()]);
    eprintln!("bench-prep: running polars' streaming engine ({threads} threads) on the same input");
    let result = run_yardstick(cmd, POLARS_SCRIPT);
    if !keep {
        crate::remove_scratch(out);
    }
    let (v, polars) = result?;
    println!(
        "bench-prep: polars={} wall_s={:.1} peak_rss_mib={:.0} unique_urls={} servers={} batches={}",
        v.get("polars_version").and_then(serde_json::Value::as_str).unwrap_or("?"),
        polars.wall_s,
        polars.peak_rss_mib,
        polars.unique_urls,
        polars.servers,
        polars.batches
    );
    print_ratio("polars", ours, &polars, threads);
    Ok(())
}

/// Runs a yardstick script and reads the JSON line of figures it prints last.
fn run_yardstick(mut cmd: Command, script: &str) -> anyhow::Result<(serde_json::Value, Figures)> {
    let done = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("cannot run {script}"))?;
    if !done.status.success() {
        anyhow::bail!("{script} failed with {}; its errors are above", done.status);
    }
    let stdout = String::from_utf8_lossy(&done.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("{script} printed no figures (expected a JSON line, got {stdout:?})"))?;
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let count = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let figures = Figures {
        wall_s: num("wall_s"),
        peak_rss_mib: num("peak_rss_mib"),
        unique_urls: count("unique_urls"),
        servers: count("servers"),
        batches: count("batches"),
    };
    Ok((v, figures))
}

/// Prints `bench-prep: ours/<name> wall=…x … peak_rss=…x …`.
fn print_ratio(name: &str, ours: &Figures, theirs: &Figures, threads: usize) {
    println!(
        "bench-prep: ours/{name} wall={:.2}x ({:.1} s / {:.1} s) peak_rss={:.2}x ({:.0} MiB / {:.0} MiB) threads={threads}",
        ours.wall_s / theirs.wall_s,
        ours.wall_s,
        theirs.wall_s,
        ours.peak_rss_mib / theirs.peak_rss_mib,
        ours.peak_rss_mib,
        theirs.peak_rss_mib,
    );
}

/// Prints the ratio ours/DuckDB and whether both kept the same URLs, servers and batches. A
/// difference is printed with its likely reason, never hidden: it means the comparison is unfair.
fn compare(ours: &Figures, duck: &Figures, ours_rows_kept: u64, threads: usize) {
    print_ratio("duckdb", ours, duck, threads);
    let mut agree = true;
    for (what, a, b) in [
        ("unique_urls", ours.unique_urls, duck.unique_urls),
        ("servers", ours.servers, duck.servers),
        ("batches", ours.batches, duck.batches),
    ] {
        if a != b {
            agree = false;
            println!("bench-prep: MISMATCH {what}: ours={a} duckdb={b} (ours - duckdb = {})", a as i64 - b as i64);
        }
    }
    if agree {
        println!(
            "bench-prep: outputs agree: unique_urls={} servers={} batches={} (ours kept {} rows before merging identical URLs)",
            ours.unique_urls, ours.servers, ours.batches, ours_rows_kept
        );
    } else {
        println!(
            "bench-prep: likely reasons: URLs that our `url` crate canonicalises and DuckDB's regex does not \
             (percent-encoding, /./ and /../, IDNA hosts) merge or split differently; host keys our \
             sanitiser cuts or rewrites (IPv6, >120 bytes); lines DuckDB's CSV reader rejects or splits \
             differently (invalid UTF-8, stray CR)"
        );
    }
}
