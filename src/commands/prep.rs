//! `prep`: flags over the config file, the free-space check, the run and its report.

use anyhow::{anyhow, Context};

use super::edges::{start_exporter, stop_exporter};
use super::invocation::Invocation;
use super::Failure;
use crate::cli::PrepArgs;
use crate::mpi_glue::world::World;
use crate::prep::run::{self as prep_run, PrepOptions};
use crate::prep::space;
use crate::store::lock::OutputLock;

pub(super) fn prep(inv: &Invocation, args: PrepArgs) -> Result<(), Failure> {
    let opts = checked_options(inv, &args)?;
    // One writer per folder, `--force` included: the lock lives in the folder, so it is made first.
    std::fs::create_dir_all(&opts.output)
        .with_context(|| format!("cannot create {}", opts.output.display()))
        .map_err(Failure::Run)?;
    let _lock = OutputLock::acquire(&opts.output, "prep")
        .with_context(|| format!("prep of {} failed", opts.input.display()))
        .map_err(Failure::Run)?;
    // Prep of a GBIF snapshot runs for an hour: it exports its progress like a download rank.
    let world = World::single();
    let exporter = start_exporter(&world, inv, &opts.output, "prep");
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

/// Prep's options from the flags over the config file, once the input is readable and the output
/// folder's filesystem has room for it (before anything is written). Also `refresh`'s prep.
pub(super) fn checked_options(inv: &Invocation, args: &PrepArgs) -> Result<PrepOptions, Failure> {
    let settings = &inv.settings;
    let output = inv.output(&args.output)?;
    let batch_size = args.batch_size.unwrap_or(settings.batch_size);
    if batch_size == 0 {
        return Err(Failure::Usage(anyhow!("--batch-size must be greater than zero")));
    }
    let opts = PrepOptions {
        input: args.input.clone(),
        output,
        format: args.format,
        schema: args.schema,
        url_col: args.url_col.clone(),
        id_col: args.id_col.clone(),
        // In the order of prep::carried::CARRIED.
        carried_cols: [
            args.license_col.clone(),
            args.source_col.clone(),
            args.title_col.clone(),
            args.rights_holder_col.clone(),
            args.creator_col.clone(),
            args.publisher_col.clone(),
            args.references_col.clone(),
        ],
        occurrence: args.occurrence.clone(),
        batch_size,
        initial_rate_limit: settings.initial_rate_limit,
        ignored_servers: args.ignored_servers.clone().or_else(|| settings.ignored_servers_file.clone()),
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
    Ok(opts)
}
