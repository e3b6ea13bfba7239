//! `dd-bench scale` (`make bench-scale`): rank 0's planning at GBIF's shape.
//!
//! A GBIF snapshot is about 20,000 batches over 545+ servers. This builds a prep output of that
//! shape with small batches (the rows' count does not matter to planning, the batches' does):
//! 545 servers of Zipf-like sizes, about 20,000 batches of 5 rows. It then commits shards for
//! every batch (shard n holds row n, so work remains everywhere), the way the writer does, with
//! the batch's `ledger.json`, and measures one plan over 256 ranks in a fresh process, which prints
//! its wall time and peak RSS: with 1 shard per batch, with 3, and with 3 and no `ledger.json`
//! (what every plan cost before counts were kept beside the shards).
//!
//! Then the memory of one rank running all 545 hosts at once, each with a batch of GBIF's
//! default 10,000 rows (5.45M URLs on loopback hosts of the test origin): the download runs for
//! about a minute (`--deadline`) and its peak RSS is printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use distributed_downloader::config::{RawConfig, DEFAULT_INITIAL_RATE_LIMIT};
use distributed_downloader::download::ranks::make_plan;
use distributed_downloader::download::run::DownloadOptions;
use distributed_downloader::prep::report::peak_rss_mib;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions};
use distributed_downloader::store::batches::read_batch_window;
use distributed_downloader::store::shards::hdf5_io::write_shard;
use distributed_downloader::store::shards::ledger::{batch_dir, scan_batch, RetryFailed};
use distributed_downloader::store::shards::record::{FailureRecord, ShardContents};
use distributed_downloader::store::shards::summary::{write_summary, SUMMARY_FILE};
use distributed_downloader::store::tables::{read_servers_table, ServerInfo};

use test_origin::{Behaviour, HostSpec, Origin};

use crate::cli::{ScaleArgs, ScalePlanArgs};

/// Servers in GBIF's monthly snapshot.
const SERVERS: usize = 545;
/// Batches in it, about.
const BATCHES: usize = 20_000;
/// Rows per generated batch; small, since planning cost grows with batches, not rows.
const ROWS_PER_BATCH: usize = 5;
/// Ranks the plan is made for.
const RANKS: usize = 256;

/// Batches of server `i` (0-based): Zipf-like, the largest first, at least one each.
fn batches_of(i: usize) -> usize {
    let total: f64 = (0..SERVERS).map(|k| 1.0 / (k as f64 + 1.0)).sum();
    ((BATCHES as f64 / total / (i as f64 + 1.0)).round() as usize).max(1)
}

/// Preps, in `dir/dataset`, a URL list of GBIF's shape: [`SERVERS`] servers of Zipf-like sizes
/// in about [`BATCHES`] batches of `rows_per_batch` rows. Returns the output folder and its
/// servers.
pub(crate) fn gbif_shaped(dir: &Path, rows_per_batch: usize) -> anyhow::Result<(PathBuf, Vec<ServerInfo>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = dir.join("dataset");
    let t = Instant::now();
    let input = dir.join("urls.csv");
    let mut lines = vec!["url".to_string()];
    for s in 0..SERVERS {
        lines.extend((0..batches_of(s) * rows_per_batch).map(|j| format!("http://s{s}.example.org/img/{j}.jpg")));
    }
    std::fs::write(&input, lines.join("\n") + "\n")?;
    crate::remove_scratch(&out);
    prep_run::run(&PrepOptions::url_list(input, out.clone(), rows_per_batch, DEFAULT_INITIAL_RATE_LIMIT))?;
    let servers = read_servers_table(&out)?;
    let batches: u64 = servers.iter().map(|s| s.batch_count).sum();
    eprintln!(
        "bench: prepped {} servers, {batches} batches, {} rows in {:.1} s",
        servers.len(),
        lines.len() - 1,
        t.elapsed().as_secs_f64()
    );
    Ok((out, servers))
}

pub fn run(args: &ScaleArgs) -> anyhow::Result<()> {
    let (out, servers) = gbif_shaped(&args.dir, ROWS_PER_BATCH)?;
    let batches: u64 = servers.iter().map(|s| s.batch_count).sum();

    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut seq = 0;
    for (shards_per_batch, keep_summaries) in [(1, true), (3, true), (3, false)] {
        let t = Instant::now();
        while seq < shards_per_batch {
            commit_everywhere(&out, &servers, seq)?;
            seq += 1;
        }
        if !keep_summaries {
            remove_summaries(&out, &servers)?;
        }
        let shards = batches * shards_per_batch;
        eprintln!(
            "bench-scale: {shards} shards committed in {:.1} s; planning in a fresh process",
            t.elapsed().as_secs_f64()
        );
        let output = Command::new(&exe).arg("scale-plan").arg("--out").arg(&out).output()?;
        if !output.status.success() {
            bail!("the planning process failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let figures = String::from_utf8_lossy(&output.stdout);
        // What a user waits for: the product's `status --json` on the same folder.
        let product = exe.with_file_name("distributed-downloader");
        let t = Instant::now();
        let status = Command::new(&product).args(["status", "--json", "-o"]).arg(&out).output()?;
        if !status.status.success() {
            bail!("`status` failed: {}", String::from_utf8_lossy(&status.stderr));
        }
        let status_s = t.elapsed().as_secs_f64();
        println!(
            "bench-scale: servers={} batches={batches} shards={shards} ledger_json={keep_summaries} ranks={RANKS} {} status_s={status_s:.2}",
            servers.len(),
            figures.trim()
        );
    }
    rank_memory(&args.dir.join("rank"))?;
    if !args.keep {
        crate::remove_scratch(&args.dir);
    }
    Ok(())
}

/// Rows of each host's one batch in the rank-memory run: GBIF's default `BATCH_SIZE`.
const RANK_ROWS_PER_HOST: usize = 10_000;

/// One rank downloading from [`SERVERS`] loopback hosts at once for about a minute; prints its
/// peak RSS.
fn rank_memory(dir: &Path) -> anyhow::Result<()> {
    crate::remove_scratch(dir);
    std::fs::create_dir_all(dir)?;
    let specs: Vec<HostSpec> = (0..SERVERS)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 2 + (i % 250) as u8);
            HostSpec::new(SocketAddr::new(ip.into(), 0), Behaviour::Ok)
        })
        .collect();
    let origin = Origin::start(specs).context("cannot start the local origin")?;
    let t = Instant::now();
    let mut list = String::from("url\n");
    for h in 0..SERVERS {
        for j in 0..RANK_ROWS_PER_HOST {
            list.push_str(&origin.url(h, &format!("/img/w64-h48-{j}.jpg")));
            list.push('\n');
        }
    }
    let input = dir.join("urls.csv");
    std::fs::write(&input, list)?;
    let out = dir.join("dataset");
    prep_run::run(&PrepOptions::url_list(input, out.clone(), RANK_ROWS_PER_HOST, DEFAULT_INITIAL_RATE_LIMIT))?;
    eprintln!(
        "bench-scale: prepped {} URLs on {SERVERS} loopback hosts in {:.1} s; one rank downloads for about a minute",
        SERVERS * RANK_ROWS_PER_HOST,
        t.elapsed().as_secs_f64()
    );
    let config = dir.join("job.env");
    // A short request ceiling keeps the stop margin small: the rank stops issuing at 25 s.
    std::fs::write(&config, "CONTACT=bench@example.org\nREQUEST_TIMEOUT_SECS=5\n")?;
    let exe = std::env::current_exe()?.with_file_name("distributed-downloader");
    let mut cmd = Command::new(&exe);
    cmd.args(["--config", &config.display().to_string(), "download", "--deadline", "+60s", "-o"]).arg(&out);
    let run = crate::child::measure(&mut cmd, &dir.join("download.out"))?;
    if !run.status.success() {
        bail!("the one-rank download failed ({}); run it by hand on {} to see why", run.status, out.display());
    }
    let requests: usize = (0..SERVERS).map(|h| origin.log(h).len()).sum();
    println!(
        "bench-scale: one rank, hosts={SERVERS} rows_per_host={RANK_ROWS_PER_HOST} run_s={:.0} requests={requests} peak_rss_mib={:.0}",
        run.seconds, run.peak_mib
    );
    Ok(())
}

/// Commits shard `seq` of every batch, holding the batch's row `seq`, as the writer would, and
/// rewrites the batch's `ledger.json` from its shards.
fn commit_everywhere(out: &Path, servers: &[ServerInfo], seq: u64) -> anyhow::Result<()> {
    for s in servers {
        for p in 0..s.batch_count {
            let rows = read_batch_window(out, &s.server_name, p, seq, 1)?;
            let failures = rows
                .into_iter()
                .map(|r| FailureRecord {
                    uuid: r.uuid,
                    url: r.url,
                    server: s.server_name.clone(),
                    source_ids: r.source_ids,
                    error_class: "http_4xx".into(),
                    detail: "generated by dd-bench scale".into(),
                    attempts: 1,
                    http_status: 404,
                    retriable: false,
                    failed_at: 0.0,
                })
                .collect();
            let id = s.batch_ids.as_ref().and_then(|ids| ids.get(p as usize)).cloned().unwrap_or_default();
            let dir = batch_dir(out, &s.server_name, p);
            write_shard(&dir, seq, &ShardContents { successes: vec![], failures }, &id)?;
            write_summary(&dir, &scan_batch(out, &s.server_name, p, RetryFailed::No)?.summary())?;
        }
    }
    Ok(())
}

fn remove_summaries(out: &Path, servers: &[ServerInfo]) -> anyhow::Result<()> {
    for s in servers {
        for p in 0..s.batch_count {
            std::fs::remove_file(batch_dir(out, &s.server_name, p).join(SUMMARY_FILE))?;
        }
    }
    Ok(())
}

/// `dd-bench scale-plan --out DIR`: one plan over [`RANKS`] ranks in this fresh process; prints
/// `plan_s`, `peak_rss_mib` and what the plan holds.
pub fn plan(args: &ScalePlanArgs) -> anyhow::Result<()> {
    let raw = RawConfig { origin: "defaults".into(), ..Default::default() };
    let opts = DownloadOptions::new(args.out.clone(), raw.validate()?, "bench@example.org".into());
    let t = Instant::now();
    let plan = make_plan(&opts, RANKS)?.context("the generated dataset has work left, so a plan")?;
    let seconds = t.elapsed().as_secs_f64();
    let batches: usize = plan.assignments.iter().map(|a| a.partitions.len()).sum();
    println!(
        "plan_s={seconds:.2} peak_rss_mib={:.0} shares={} batches_planned={batches}",
        peak_rss_mib().unwrap_or(f64::NAN),
        plan.assignments.len()
    );
    crate::remove_scratch(&args.out.join("plans"));
    Ok(())
}
