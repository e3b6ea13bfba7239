//! `profile`: resolves the output folder and the contact like `download`, joins the world of
//! ranks, runs `crate::profile::run` on every rank, and prints rank 0's report. The work and
//! its rules are in `crate::profile`; this file reads flags and prints.

use std::path::Path;

use anyhow::anyhow;
use serde::Serialize;

use super::invocation::Invocation;
use super::Failure;
use crate::cli::ProfileArgs;
use crate::mpi_glue::world::World;
use crate::overrides::Overrides;
use crate::profile::result::{self, Counts, ProfileResult};
use crate::profile::run::{self as profile_run, ProfileOptions, Report};

/// What `--json` prints: the counts, then every server's profile as merged.
#[derive(Serialize)]
struct JsonReport<'a> {
    output: String,
    #[serde(flatten)]
    counts: &'a Counts,
    servers: &'a [ProfileResult],
}

pub(super) fn profile(inv: &Invocation, args: ProfileArgs) -> Result<(), Failure> {
    let started = std::time::SystemTime::now();
    let settings = &inv.settings;
    let output = inv.output(&args.output)?;
    let contact = inv.contact(&args.contact)?;
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("profile of {} failed", output.display())));
    // Read before the world is joined: a folder without prep's output fails the same way on
    // every rank, and before any rank waits for another.
    let servers = crate::store::tables::read_servers_table(&output).map_err(|e| failed(e.into()))?;
    let overrides = Overrides::load(&output, settings).map_err(|e| Failure::Usage(e.into()))?;
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    let _lock = super::edges::lock_for_job(&world, &output, "profile").map_err(failed)?;
    super::edges::check_overrides(&world, &output, settings, args.strict_overrides)?;
    if world.is_root() && settings.robots == crate::robots::RobotsPolicy::Ignore {
        eprintln!(
            "profile: WARNING: ROBOTS=ignore: robots.txt is not asked for and its Crawl-delay is not obeyed. \
             Use this only where the servers' operators agreed"
        );
    }
    let opts = ProfileOptions {
        out: output.clone(),
        settings: settings.clone(),
        contact,
        force: args.force,
        run_started: started,
    };
    let Some(report) = profile_run::run(&world, &opts, &servers, &overrides).map_err(failed)? else {
        return Ok(());
    };
    print_report(&output, &report, args.json);
    let mut problems = report.rank_errors.clone();
    problems.extend(report.counts.failed.iter().cloned());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(failed(anyhow!(
            "{} problem(s): {}; run `profile` again to finish (servers already profiled are kept)",
            problems.len(),
            problems.join("; ")
        )))
    }
}

fn print_report(output: &Path, report: &Report, json: bool) {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        let j = JsonReport { output: output.display().to_string(), counts: &report.counts, servers: &report.results };
        println!("{}", serde_json::to_string_pretty(&j).expect("the report serialises"));
    } else {
        print!("{}", result::summary(output, &report.counts, &report.results));
        println!(
            "  start rates written to {}; `download` starts each server there",
            crate::store::paths::servers_table(output).display()
        );
    }
}
