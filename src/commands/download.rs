//! `download`: flags and environment (deadline, Slurm's CPUs) over the config file, the lock,
//! the exporter, and one run over this rank's world; `runs.jsonl`'s start and end lines.

use anyhow::{anyhow, Context};

use super::edges::{check_overrides, lock_for_job, start_exporter, stop_exporter};
use super::invocation::Invocation;
use super::Failure;
use crate::cli::DownloadArgs;
use crate::config::Settings;
use crate::download::ranks::run_ranks;
use crate::download::revalidate::{cutoff, parse_age, Pass};
use crate::download::run::{self as download_run, DownloadOptions};
use crate::environment::{parse_deadline, Launch};
use crate::mpi_glue::world::World;
use crate::status::runs::{self, RunEvent, RunLine};
use crate::store::shards::ledger::RetryFailed;

pub(super) fn download(inv: &Invocation, args: DownloadArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("download into {} failed", output.display())));
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    download_on(&world, inv, args)
}

/// `download` on this rank of `world` (`refresh` runs one after its own work).
pub(super) fn download_on(world: &World, inv: &Invocation, args: DownloadArgs) -> Result<(), Failure> {
    let usage = |m: String| Failure::Usage(anyhow!(m));
    let output = inv.output(&args.output)?;
    let contact = inv.contact(&args.contact)?;
    let launch = &inv.launch;
    let deadline = match (&args.deadline, launch.slurm_job_end_time) {
        (Some(d), _) => {
            Some(parse_deadline(d, std::time::SystemTime::now()).map_err(|e| usage(format!("--deadline {e}")))?)
        }
        (None, Some(end)) => Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(end)),
        (None, None) => None,
    };
    let older_than = match &args.older_than {
        Some(age) => Some(parse_age(age).map_err(|e| usage(format!("--older-than {e}")))?),
        None => None,
    };
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("download into {} failed", output.display())));
    let _lock = lock_for_job(world, &output, "download").map_err(failed)?;
    check_overrides(world, &output, &inv.settings, args.strict_overrides)?;
    let exporter = start_exporter(world, inv, &output, "download");
    let when = When { deadline, older_than };
    let result = run_download(world, launch, &output, inv.settings.clone(), contact, when, &args);
    stop_exporter(exporter, world, &output);
    world.barrier(); // rank 0 releases the lock once every rank is done writing
    result
}

/// The times a download was given: its deadline, and with `--revalidate` the age of stored
/// images to ask about again (`--older-than`).
struct When {
    deadline: Option<std::time::SystemTime>,
    older_than: Option<std::time::Duration>,
}

/// One download on this rank (every rank of the world calls it): the run, and on rank 0 the
/// summary, `runs.jsonl` and the verdict on progress.
fn run_download(
    world: &World,
    launch: &Launch,
    output: &std::path::Path,
    settings: Settings,
    contact: String,
    when: When,
    args: &DownloadArgs,
) -> Result<(), Failure> {
    let When { deadline, older_than } = when;
    let output = output.to_path_buf();
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("download into {} failed", output.display())));
    if world.is_root() && settings.robots == crate::robots::RobotsPolicy::Ignore {
        eprintln!(
            "download: WARNING: ROBOTS=ignore: robots.txt is not asked for and its rules and Crawl-delay are not \
             obeyed; every URL is fetched. Use this only where the servers' operators agreed; remove the key \
             to obey robots.txt again"
        );
    }
    // Rank 0 notes where the output stands before the run, to say what this run changed.
    let before = if world.is_root() { starting_point(&output, world.size(), launch) } else { None };
    let (started, pass_started) = if args.retry_failed || args.revalidate {
        // Rank 0's clock for every rank: records committed by this run, on any rank, are final.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = now.as_secs_f64();
        let pass = match world.is_root() && args.revalidate {
            true => revalidation_pass(&output, now, older_than).map_err(failed)?,
            false => now,
        };
        let sent = [now.to_le_bytes(), pass.to_le_bytes()].concat();
        let bytes = world.broadcast(sent);
        let read = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(f64::from_le_bytes);
        let no_time = || failed(anyhow!("rank 0 sent no start time"));
        (Some(read(0).ok_or_else(no_time)?), Some(read(8).ok_or_else(no_time)?))
    } else {
        (None, None)
    };
    let retry_failed = match started {
        Some(cutoff) if args.retry_failed => RetryFailed::Before(cutoff),
        _ => RetryFailed::No,
    };
    let revalidate_before = pass_started.filter(|_| args.revalidate).map(|at| cutoff(at, older_than));
    let opts = DownloadOptions {
        deadline,
        verbose: args.verbose,
        static_plan: args.static_plan,
        retry_failed,
        revalidate_before,
        ..DownloadOptions::new(output.clone(), settings, contact)
    };
    let summary = if world.size() == 1 {
        let result = download_run::run(opts).map_err(failed)?;
        crate::download::learned::write_learned(&output, &result.states).map_err(failed)?;
        result.summary
    } else {
        match run_ranks(world, opts).map_err(failed)? {
            Some(summary) => summary,
            None => return Ok(()),
        }
    };
    if args.revalidate && summary.remaining == 0 {
        Pass::finish(&output).map_err(Failure::Run)?;
    }
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    let path = crate::store::paths::download_summary(&output);
    crate::store::atomic::replace(&path, (json.clone() + "\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(Failure::Run)?;
    if args.json {
        println!("{json}");
    } else {
        println!("{summary}");
    }
    let done = summary.rows_total.saturating_sub(summary.remaining);
    let end = RunLine {
        event: RunEvent::End,
        at: crate::slurm::record::now_unix(),
        job: launch.slurm_job_id.clone(),
        ranks: world.size(),
        done,
        succeeded: summary.succeeded,
        remaining: summary.remaining,
    };
    if let Err(e) = runs::append(&output, &end) {
        eprintln!("warning: {e:#} (only `status` reads it)");
    }
    if let Some(b) = before {
        if summary.remaining > 0 && done == b.done && summary.succeeded == b.succeeded {
            return Err(Failure::NoProgress(anyhow!(
                "no progress: this run committed no new record and {} rows remain. Their hosts failed, were \
                 parked or asked us to wait{}; running again now would do the same. See `status` for the \
                 servers, and run `download` again later (or `download --retry-failed`)",
                summary.remaining,
                if summary.stopped_by_deadline { " until the deadline" } else { "" }
            )));
        }
    }
    Ok(())
}

/// Rank 0, before a `--revalidate` run at `now`: the start of the pass it belongs to (see
/// `download::revalidate::Pass`), saying so when it resumes one.
fn revalidation_pass(out: &std::path::Path, now: f64, older_than: Option<std::time::Duration>) -> anyhow::Result<f64> {
    let (pass, resumed) = Pass::begin(out, now, older_than)?;
    if resumed {
        let ago = crate::status::duration(now - pass.started);
        eprintln!(
            "download: resuming the revalidation pass started {ago} ago: images it already checked are not asked \
             again (delete {} to check them again now)",
            crate::store::paths::revalidation_pass(out).display()
        );
    }
    Ok(pass.started)
}

/// Rank 0, before a download: prints what earlier runs committed and appends the start line of
/// `runs.jsonl`. `None` when the output cannot be read yet (the run itself then says why).
fn starting_point(out: &std::path::Path, ranks: usize, launch: &Launch) -> Option<RunLine> {
    let servers = crate::store::tables::read_servers_table(out).ok()?;
    let done = crate::store::shards::ledger::scan(out, RetryFailed::No).ok()?;
    let t = crate::status::totals(&servers, &done);
    let line = RunLine {
        event: RunEvent::Start,
        at: crate::slurm::record::now_unix(),
        job: launch.slurm_job_id.clone(),
        ranks,
        done: t.rows - t.remaining,
        succeeded: t.stored,
        remaining: t.remaining,
    };
    if line.done > 0 {
        eprintln!(
            "download: resuming: {} of {} rows already have a committed record ({} stored, {} failed); {} remain",
            line.done, t.rows, t.stored, t.failed, t.remaining
        );
    }
    if let Err(e) = runs::append(out, &line) {
        eprintln!("warning: {e:#} (only `status` reads it)");
    }
    Some(line)
}
