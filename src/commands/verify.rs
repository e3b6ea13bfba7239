//! `verify`: resolves the output folder, joins the world of ranks, takes the writer lock for
//! `--repair`, runs `crate::verify` on every rank, and prints rank 0's report. The checks and
//! the repair are in `crate::verify`; this file reads flags, prints, and picks the exit code:
//! 0 when nothing is wrong (or `--repair` repaired everything), 1 otherwise.

use anyhow::anyhow;

use super::invocation::Invocation;
use super::Failure;
use crate::cli::VerifyArgs;
use crate::mpi_glue::world::World;
use crate::verify::report::Report;
use crate::verify::scan::Options;
use crate::verify::{repair, run};

/// Images checked per batch without `--full`: enough to catch a shard damaged throughout, few
/// enough that a GBIF-sized output is checked in minutes (every shard's records are still read).
const DEFAULT_SAMPLE: usize = 8;

pub(super) fn verify(inv: &Invocation, args: VerifyArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    if args.sample == Some(0) {
        return Err(Failure::Usage(anyhow!("--sample must be at least 1 (or use --full)")));
    }
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("verify of {} failed", output.display())));
    if !output.is_dir() {
        return Err(failed(anyhow!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    // Repair moves shards: no download may write meanwhile. Rank 0 takes the lock before any
    // rank reads, and every rank learns whether it did.
    let _lock = match args.repair {
        true => {
            crate::store::lock::acquire_on_root(world.is_root(), &output, "verify --repair", |b| world.broadcast(b))
                .map_err(|e| failed(e.into()))?
        }
        false => None,
    };
    let opts = Options {
        sample: if args.full { None } else { Some(args.sample.unwrap_or(DEFAULT_SAMPLE)) },
        threads: crate::actors::cpu_pool::cpu_threads(inv.settings.cpu_threads),
    };
    let Some(mut report) = run::run(&world, &output, &opts) else {
        return Ok(()); // ranks other than 0: rank 0 reports for all
    };
    if args.repair && !report.problems.is_empty() {
        report.repair = Some(repair::repair(&output, &report));
    }
    // A folder no rank could read (no prep output) has nothing to report but the error.
    let checked_something = report.batches > 0 || report.rank_errors.is_empty();
    if args.json && checked_something {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else if checked_something {
        print!("{report}");
    }
    verdict(&report).map_err(failed)
}

/// Exit 0 when nothing is wrong, or when `--repair` repaired every problem found.
fn verdict(report: &Report) -> anyhow::Result<()> {
    if !report.rank_errors.is_empty() {
        return Err(anyhow!("{}", report.rank_errors.join("; ")));
    }
    match &report.repair {
        Some(r) if r.not_repaired.is_empty() => Ok(()),
        Some(r) => Err(anyhow!(
            "{} problem(s) left as they are (see `not repaired` above); {} row(s) pending for `download`",
            r.not_repaired.len(),
            r.pending_rows
        )),
        None if report.problems.is_empty() => Ok(()),
        None => Err(anyhow!(
            "{} problem(s) found: run `verify --repair`, then `download` to fetch the bad rows again",
            report.problems.len()
        )),
    }
}
