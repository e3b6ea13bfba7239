//! `dd-bench scale` (`make bench-scale`): rank 0's planning at GBIF's shape.
//!
//! A GBIF snapshot is about 20,000 batches over 545+ servers. This builds a prep output of that
//! shape with small batches (the rows' count does not matter to planning, the batches' does):
//! 545 servers of Zipf-like sizes, about 20,000 batches of 5 rows. It then commits shards for
//! every batch (shard n holds row n, so work remains everywhere), the way the writer does, with
//! the batch's `ledger.json`, and measures one plan over 256 ranks in a fresh process, which prints
//! its wall time and peak RSS: with 1 shard per batch, with 3, and with 3 and no `ledger.json`
//! (what every plan cost before counts were kept beside the shards).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use distributed_downloader::config::{RawConfig, DEFAULT_INITIAL_RATE_LIMIT};
use distributed_downloader::download::ranks::make_plan;
use distributed_downloader::download::run::DownloadOptions;
use distributed_downloader::prep::batches::{read_batch_window, read_servers_table, ServerInfo};
use distributed_downloader::prep::report::peak_rss_mib;
use distributed_downloader::prep::run::{self as prep_run, PrepOptions};
use distributed_downloader::shards::hdf5_io::write_shard;
use distributed_downloader::shards::ledger::{batch_dir, scan_batch, RetryFailed};
use distributed_downloader::shards::record::{FailureRecord, ShardContents};
use distributed_downloader::shards::summary::{write_summary, SUMMARY_FILE};

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

pub fn run(args: &ScaleArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let out = args.dir.join("dataset");
    let t = Instant::now();
    let input = args.dir.join("urls.csv");
    let mut lines = vec!["url".to_string()];
    for s in 0..SERVERS {
        lines.extend((0..batches_of(s) * ROWS_PER_BATCH).map(|j| format!("http://s{s}.example.org/img/{j}.jpg")));
    }
    std::fs::write(&input, lines.join("\n") + "\n")?;
    let _ = std::fs::remove_dir_all(&out);
    prep_run::run(&PrepOptions::url_list(input, out.clone(), ROWS_PER_BATCH, DEFAULT_INITIAL_RATE_LIMIT))?;
    let servers = read_servers_table(&out)?;
    let batches: u64 = servers.iter().map(|s| s.batch_count).sum();
    eprintln!(
        "bench-scale: prepped {} servers, {batches} batches, {} rows in {:.1} s",
        servers.len(),
        lines.len() - 1,
        t.elapsed().as_secs_f64()
    );

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
        let shards = batches * shards_per_batch as u64;
        eprintln!(
            "bench-scale: {shards} shards committed in {:.1} s; planning in a fresh process",
            t.elapsed().as_secs_f64()
        );
        let output = Command::new(&exe).arg("scale-plan").arg("--out").arg(&out).output()?;
        if !output.status.success() {
            bail!("the planning process failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let figures = String::from_utf8_lossy(&output.stdout);
        println!(
            "bench-scale: servers={} batches={batches} shards={shards} ledger_json={keep_summaries} ranks={RANKS} {}",
            servers.len(),
            figures.trim()
        );
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
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
    let opts = DownloadOptions {
        out: args.out.clone(),
        settings: raw.validate()?,
        contact: "bench@example.org".into(),
        deadline: None,
        owned: None,
        verbose: false,
        static_plan: false,
        retry_failed: RetryFailed::No,
    };
    let t = Instant::now();
    let plan = make_plan(&opts, RANKS)?.context("the generated dataset has work left, so a plan")?;
    let seconds = t.elapsed().as_secs_f64();
    let batches: usize = plan.assignments.iter().map(|a| a.partitions.len()).sum();
    println!(
        "plan_s={seconds:.2} peak_rss_mib={:.0} shares={} batches_planned={batches}",
        peak_rss_mib().unwrap_or(f64::NAN),
        plan.assignments.len()
    );
    let _ = std::fs::remove_dir_all(args.out.join("plans"));
    Ok(())
}
