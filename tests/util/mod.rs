//! Shared helpers: a temp folder per test, running the binary, reading prep's outputs back, and
//! a Python with h5py (`python`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

mod python;
pub use python::python_with;

/// The built binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_distributed-downloader"))
}

/// The binary under `mpirun -n ranks --oversubscribe` with `args`, not started yet; as root,
/// with OpenMPI's consent.
pub fn mpirun_cmd(ranks: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &ranks.to_string(), "--oversubscribe", env!("CARGO_BIN_EXE_distributed-downloader")]).args(args);
    if std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false) {
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    cmd
}

/// Runs the binary under `mpirun -n ranks` and returns its output.
pub fn mpirun(ranks: usize, args: &[&str]) -> Output {
    mpirun_cmd(ranks, args).output().expect("mpirun runs (scripts/setup.sh installs openmpi-bin)")
}

/// Runs the binary with `args`, returning its output (never panics on failure).
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

/// Runs and asserts success, returning stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "command {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the binary with `args` until it stops at the test-only pause point `point` (see
/// `store::pause`), then kills it there with SIGKILL. Panics if it does not get there within
/// `limit`. `marker` is the file the pause point creates.
pub fn kill_at_pause(args: &[&str], point: &str, marker: &Path, limit: std::time::Duration) {
    let mut child = bin()
        .args(args)
        .env("DD_TEST_PAUSE_AT", point)
        .env("DD_TEST_PAUSE_MARKER", marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !marker.exists() && t.elapsed() < limit {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(marker.exists(), "{args:?} reached its pause point `{point}` within {limit:?}");
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh temp folder, removed when the value drops.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The 15 columns of GBIF's multimedia.txt.
pub const GBIF_HEADER: &str = "gbifID\ttype\tformat\tidentifier\treferences\ttitle\tdescription\tsource\taudience\tcreated\tcreator\tcontributor\tpublisher\tlicense\trightsHolder";

/// One multimedia.txt line with the given id, type, format and identifier, other fields filled.
pub fn gbif_line(id: &str, kind: &str, format: &str, url: &str) -> String {
    format!("{id}\t{kind}\t{format}\t{url}\thttp://portal/{id}\tTitle \"{id}\t\t\t\t2020\tA. Person\t\tMuseum\tCC-BY\tMuseum")
}

/// One row of the urls table, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlRow {
    pub server: String,
    pub partition: u64,
    pub uuid: String,
    pub url: String,
    pub source_ids: Vec<String>,
    pub row_uuids: Vec<String>,
    pub license: Option<String>,
}

/// Reads every `urls/server_name=*/partition_id=*/*.parquet` under `out`.
pub fn read_urls(out: &Path) -> Vec<UrlRow> {
    let mut rows = Vec::new();
    for server_dir in sorted_dirs(&out.join("urls")) {
        let server = dir_value(&server_dir, "server_name=");
        for part_dir in sorted_dirs(&server_dir) {
            let partition: u64 = dir_value(&part_dir, "partition_id=").parse().unwrap();
            for file in std::fs::read_dir(&part_dir).unwrap() {
                let df = ParquetReader::new(File::open(file.unwrap().path()).unwrap()).finish().unwrap();
                let s = |n: &str| df.column(n).unwrap().str().unwrap().clone();
                let l = |n: &str| df.column(n).unwrap().list().unwrap().clone();
                let (uuid, url, lic, ids, ruu) = (s("uuid"), s("url"), s("license"), l("source_ids"), l("row_uuids"));
                let as_vec = |v: Option<Series>| -> Vec<String> {
                    v.unwrap().str().unwrap().iter().map(|x| x.unwrap().to_string()).collect()
                };
                for i in 0..df.height() {
                    rows.push(UrlRow {
                        server: server.clone(),
                        partition,
                        uuid: uuid.get(i).unwrap().to_string(),
                        url: url.get(i).unwrap().to_string(),
                        source_ids: as_vec(ids.get_as_series(i)),
                        row_uuids: as_vec(ruu.get_as_series(i)),
                        license: lic.get(i).map(str::to_string),
                    });
                }
            }
        }
    }
    rows
}

/// servers.parquet as server -> (url_count, batch_count).
pub fn read_servers(out: &Path) -> BTreeMap<String, (u64, u64)> {
    let df = ParquetReader::new(File::open(out.join("servers.parquet")).unwrap()).finish().unwrap();
    let names = df.column("server_name").unwrap().str().unwrap().clone();
    let urls = df.column("url_count").unwrap().u64().unwrap().clone();
    let batches = df.column("batch_count").unwrap().u64().unwrap().clone();
    (0..df.height())
        .map(|i| (names.get(i).unwrap().to_string(), (urls.get(i).unwrap(), batches.get(i).unwrap())))
        .collect()
}

/// prep_report.json as JSON.
pub fn read_report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("prep_report.json")).unwrap()).unwrap()
}

pub fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

fn dir_value(dir: &Path, prefix: &str) -> String {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    name.strip_prefix(prefix).unwrap_or_else(|| panic!("{name} lacks {prefix}")).to_string()
}
