//! `resize`: resolves both folders, joins the world of ranks, takes the writer lock of each (no
//! download may merge the old shards while they are read, nor write the new folder), runs
//! `crate::resize` on every rank and prints rank 0's report. Exit 1 when a batch could not be
//! resized.

use anyhow::anyhow;

use super::edges::with_read_and_write_locks;
use super::invocation::Invocation;
use super::Failure;
use crate::cli::ResizeArgs;
use crate::imaging::ImageSettings;
use crate::mpi_glue::world::World;
use crate::resize::run::{run, ResizeOptions, ResizeReport};

pub(super) fn resize(inv: &Invocation, args: ResizeArgs) -> Result<(), Failure> {
    let from = inv.output(&args.output)?;
    if !from.is_dir() {
        return Err(Failure::Usage(anyhow!("{} does not exist: check --output or OUTPUT_DIR", from.display())));
    }
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("resize of {} failed", from.display())));
    let image = ImageSettings { max_side: args.max_side, ..inv.settings.image() };
    let opts = ResizeOptions { from: from.clone(), to: args.to.clone(), image, piece_rows: inv.settings.commit_rows };
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    let result = with_read_and_write_locks(&world, (&from, &args.to), "resize", || run(&world, &opts));
    let Some(report) = result.map_err(failed)? else { return Ok(()) };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        print!("{}", screen(&report));
    }
    match report.errors.len() {
        0 => Ok(()),
        n => Err(failed(anyhow!(
            "{n} batch(es) could not be resized: {}; run `resize` again to retry them",
            report.errors.join("; ")
        ))),
    }
}

/// The report for a person: what was written and how much smaller it is.
fn screen(r: &ResizeReport) -> String {
    let c = &r.counts;
    let mb = |b: u64| b as f64 / 1e6;
    format!(
        "resize: {} batch(es) written to {}, {} already complete\n  \
         {} image(s) shrunk to at most {} px, {} already that small and kept as they were; \
         {} failure record(s) carried over{}\n  \
         image bytes: {:.1} MB -> {:.1} MB{}\n  \
         run `index -o {}` to make its manifest\n",
        r.batches,
        r.to,
        r.unchanged,
        c.shrunk,
        r.max_side,
        c.kept,
        c.failures,
        if c.undecodable > 0 {
            format!(", {} stored image(s) did not decode (recorded as failures)", c.undecodable)
        } else {
            String::new()
        },
        mb(c.bytes_before),
        mb(c.bytes_after),
        if c.resumed > 0 {
            format!(" ({} row(s) were already there from an earlier run)", c.resumed)
        } else {
            String::new()
        },
        r.to
    )
}
