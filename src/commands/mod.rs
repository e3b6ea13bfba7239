//! Each subcommand's `run()`: merges flags over the config file, calls the library, prints.
//!
//! This is the edge where `anyhow` is used; errors are split into usage errors (exit 2), run
//! failures (exit 1) and a download that changed nothing (exit 3) for `main.rs`. The Slurm
//! subcommands are in `slurm.rs`.

mod plan;
mod profile;
mod slurm;
mod verify;

use anyhow::{anyhow, Context};

use crate::cli::{Cli, Command, DownloadArgs, PrepArgs};
use crate::config::{RawConfig, Settings};
use crate::download::ranks::run_ranks;
use crate::download::run::{self as download_run, DownloadOptions};
use crate::environment::{parse_deadline, Launch};
use crate::mpi_glue::world::World;
use crate::prep::run::{self as prep_run, PrepOptions};
use crate::prep::space;
use crate::status::runs::{self, RunEvent, RunLine};
use crate::store::lock::OutputLock;
use crate::store::shards::ledger::RetryFailed;

/// Why a subcommand stopped.
#[derive(Debug)]
pub enum Failure {
    /// The command line or the config file is wrong: nothing was done.
    Usage(anyhow::Error),
    /// The run itself failed.
    Run(anyhow::Error),
    /// The download stopped with rows remaining and committed not one new record: running it
    /// again as it is would do the same (a Slurm chain stops on this).
    NoProgress(anyhow::Error),
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let settings = load_settings(&cli).map_err(Failure::Usage)?;
    match cli.command {
        Command::Prep(args) => prep(&settings, args),
        Command::Profile(args) => profile::profile(&settings, args),
        Command::Download(args) => download(&settings, args),
        Command::Plan(args) => plan::plan(&settings, args),
        Command::Submit(args) => slurm::submit(cli.config.as_deref(), &settings, args),
        Command::Status(args) => slurm::status(&settings, args),
        Command::Cancel(args) => slurm::cancel(&settings, args),
        Command::Verify(args) => verify::verify(&settings, args),
        Command::JobEnd(args) => slurm::job_end(&settings, args),
    }
}

/// The output folder a subcommand works on: its `--output` flag, else `OUTPUT_DIR` from the
/// config file; a usage error naming both when neither is given.
fn output_dir(given: &Option<std::path::PathBuf>, settings: &Settings) -> Result<std::path::PathBuf, Failure> {
    given.clone().or_else(|| settings.output_dir.clone()).ok_or_else(|| {
        Failure::Usage(anyhow!("no output folder: pass --output DIR or set OUTPUT_DIR in the config file"))
    })
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let raw = match &cli.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig { origin: "defaults".into(), ..Default::default() },
    };
    Ok(raw.validate()?)
}

fn prep(settings: &Settings, args: PrepArgs) -> Result<(), Failure> {
    let output = output_dir(&args.output, settings)?;
    let batch_size = args.batch_size.unwrap_or(settings.batch_size);
    if batch_size == 0 {
        return Err(Failure::Usage(anyhow!("--batch-size must be greater than zero")));
    }
    let opts = PrepOptions {
        input: args.input,
        output,
        format: args.format,
        schema: args.schema,
        url_col: args.url_col,
        id_col: args.id_col,
        license_col: args.license_col,
        source_col: args.source_col,
        title_col: args.title_col,
        batch_size,
        initial_rate_limit: settings.initial_rate_limit,
        ignored_servers: args.ignored_servers.or_else(|| settings.ignored_servers_file.clone()),
        force: args.force,
        rows_per_bucket: args.rows_per_bucket,
    };
    // Before anything is written: an input that cannot be opened leaves no output folder behind.
    if let Err(e) = std::fs::metadata(&opts.input) {
        return Err(Failure::Run(anyhow!(
            "prep of {} failed: cannot read the input: {e}; check --input",
            opts.input.display()
        )));
    }
    // Before anything is written, and before the exporter starts: a full disk an hour in costs
    // the hour.
    if let Some(needed) = space::needed_bytes(&opts.input, opts.format).filter(|_| !args.skip_space_check) {
        space::check(&opts.output, needed, opts.force)
            .with_context(|| format!("prep of {} failed", opts.input.display()))
            .map_err(Failure::Run)?;
    }
    // One writer per folder, `--force` included: the lock lives in the folder, so it is made first.
    std::fs::create_dir_all(&opts.output)
        .with_context(|| format!("cannot create {}", opts.output.display()))
        .map_err(Failure::Run)?;
    let _lock = OutputLock::acquire(&opts.output, "prep")
        .with_context(|| format!("prep of {} failed", opts.input.display()))
        .map_err(Failure::Run)?;
    // Prep of a GBIF snapshot runs for an hour: it exports its progress like a download rank.
    let world = World::single();
    let exporter = start_exporter(&world, &Launch::from_env(), settings, &opts.output, "prep");
    let report = prep_run::run(&opts);
    stop_exporter(exporter, &world, &opts.output);
    let report = report.with_context(|| format!("prep of {} failed", opts.input.display())).map_err(Failure::Run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
    } else {
        println!("{report}");
        println!("  report: {}", crate::store::paths::prep_report(&opts.output).display());
    }
    if report.unique_urls == 0 {
        eprintln!("warning: no row passed the filters; see the dropped counts above");
    }
    Ok(())
}

/// The output folder and the operator's contact of a command that sends requests (`download`,
/// `profile`): the flags, else the config file; both are required.
fn output_and_contact(
    settings: &Settings,
    output: &Option<std::path::PathBuf>,
    contact: &Option<String>,
) -> Result<(std::path::PathBuf, String), Failure> {
    let usage = |m: String| Failure::Usage(anyhow!(m));
    let output = output_dir(output, settings)?;
    let contact = contact.clone().or_else(|| settings.contact.clone()).ok_or_else(|| {
        usage("no contact: server operators must be able to reach you. Pass --contact you@example.org or set CONTACT in the config file".into())
    })?;
    if contact.chars().any(|c| c.is_control()) {
        return Err(usage(format!("--contact {contact:?} contains control characters")));
    }
    Ok((output, contact))
}

fn download(settings: &Settings, args: DownloadArgs) -> Result<(), Failure> {
    let usage = |m: String| Failure::Usage(anyhow!(m));
    let (output, contact) = output_and_contact(settings, &args.output, &args.contact)?;
    let launch = Launch::from_env();
    let deadline = match (&args.deadline, launch.slurm_job_end_time) {
        (Some(d), _) => {
            Some(parse_deadline(d, std::time::SystemTime::now()).map_err(|e| usage(format!("--deadline {e}")))?)
        }
        (None, Some(end)) => Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(end)),
        (None, None) => None,
    };
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("download into {} failed", output.display())));
    let mut settings = settings.clone();
    if settings.cpu_threads == 0 {
        if let Some(n) = launch.slurm_cpus_per_task {
            settings.cpu_threads = n;
        }
    }
    let world = World::init(launch.mpi_launched).map_err(failed)?;
    let _lock = lock_for_job(&world, &output, "download").map_err(failed)?;
    check_overrides(&world, &output, &settings, args.strict_overrides)?;
    let exporter = start_exporter(&world, &launch, &settings, &output, "download");
    let result = run_download(&world, &launch, &output, settings, contact, deadline, &args);
    stop_exporter(exporter, &world, &output);
    world.barrier(); // rank 0 releases the lock once every rank is done writing
    result
}

/// Warns (rank 0), or with `strict` refuses on every rank, when the overrides file names servers
/// that are not in the dataset. Every rank reads the same files, so all decide alike and none
/// waits on another. A folder or file that cannot be read is left for the run to report.
pub(crate) fn check_overrides(
    world: &World,
    output: &std::path::Path,
    settings: &Settings,
    strict: bool,
) -> Result<(), Failure> {
    let (Ok(servers), Ok(overrides)) =
        (crate::store::tables::read_servers_table(output), crate::overrides::Overrides::load(output, settings))
    else {
        return Ok(());
    };
    let known: Vec<&str> = servers.iter().map(|s| s.server_name.as_str()).collect();
    let Some(report) = overrides.unknown_report(&known) else { return Ok(()) };
    if strict {
        return Err(Failure::Usage(anyhow!("{report} (--strict-overrides)")));
    }
    if world.is_root() {
        eprintln!("warning: {report}");
    }
    Ok(())
}

/// Rank 0 takes the output folder's lock for the whole job, before anything is written there;
/// every rank learns whether it did, so none waits on a rank 0 that was refused.
fn lock_for_job(world: &World, out: &std::path::Path, command: &str) -> anyhow::Result<Option<OutputLock>> {
    Ok(crate::store::lock::acquire_on_root(world.is_root(), out, command, |b| world.broadcast(b))?)
}

/// Every rank leaves its figures in the output folder (for clusters no Prometheus reaches), and
/// rank 0 removes the job's targets file: its ranks stop serving, Prometheus stops looking.
fn stop_exporter(exporter: Option<&crate::telemetry::exporter::Exporter>, world: &World, output: &std::path::Path) {
    if let Some(e) = exporter {
        if let Err(err) = e.write_snapshot(output) {
            crate::telemetry::events::log("WARN", &format!("metrics: {err:#}"));
        }
        if world.is_root() {
            let path = crate::telemetry::exporter::targets_path(output, &e.job());
            match std::fs::remove_file(&path) {
                // No targets file: no rank could listen, so none was written.
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => crate::telemetry::events::log(
                    "WARN",
                    &format!(
                        "metrics: cannot remove {} ({err}); Prometheus will report its ranks down",
                        path.display()
                    ),
                ),
                _ => {}
            }
        }
    }
}

/// Installs this rank's exporter and, on rank 0, writes the job's `file_sd` targets file from
/// every rank's endpoint. A rank that cannot export still downloads (with a warning).
fn start_exporter(
    world: &World,
    launch: &Launch,
    settings: &Settings,
    output: &std::path::Path,
    command: &'static str,
) -> Option<&'static crate::telemetry::exporter::Exporter> {
    use crate::telemetry::exporter;
    let identity = exporter::Identity {
        rank: world.rank(),
        local_rank: launch.local_rank,
        job: launch.slurm_job_id.clone().unwrap_or_else(|| "local".into()),
        command,
    };
    let installed = match exporter::install(&settings.metrics, identity) {
        Ok(e) => Some(e),
        Err(e) => {
            crate::telemetry::events::log("WARN", &format!("metrics: {e:#}; this rank exports none"));
            None
        }
    };
    let mine = installed.and_then(|e| e.endpoint).map(exporter::scrape_address).unwrap_or_default();
    if let Some(all) = world.gather(mine.into_bytes()) {
        let endpoints: Vec<String> =
            all.into_iter().filter_map(|b| String::from_utf8(b).ok()).filter(|s| !s.is_empty()).collect();
        if let Some(e) = installed.filter(|_| !endpoints.is_empty()) {
            match exporter::write_targets(output, &e.job(), &endpoints) {
                Ok(path) => eprintln!(
                    "metrics: {} rank(s) serve Prometheus metrics ({}); file_sd targets: {}",
                    endpoints.len(),
                    endpoints.join(", "),
                    path.display()
                ),
                Err(err) => crate::telemetry::events::log("WARN", &format!("metrics: {err:#}")),
            }
        }
    }
    installed
}

/// One download on this rank (every rank of the world calls it): the run, and on rank 0 the
/// summary, `runs.jsonl` and the verdict on progress.
fn run_download(
    world: &World,
    launch: &Launch,
    output: &std::path::Path,
    settings: Settings,
    contact: String,
    deadline: Option<std::time::SystemTime>,
    args: &DownloadArgs,
) -> Result<(), Failure> {
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
    let retry_failed = if args.retry_failed {
        // Rank 0's clock for every rank: failures committed by this run, on any rank, are final.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let bytes = world.broadcast(now.as_secs_f64().to_le_bytes().to_vec());
        let cutoff =
            bytes.try_into().map(f64::from_le_bytes).map_err(|_| failed(anyhow!("rank 0 sent no start time")))?;
        RetryFailed::Before(cutoff)
    } else {
        RetryFailed::No
    };
    let opts = DownloadOptions {
        deadline,
        verbose: args.verbose,
        static_plan: args.static_plan,
        retry_failed,
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
