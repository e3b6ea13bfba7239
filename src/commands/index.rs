//! `index`: resolves the output folder, joins the world of ranks, takes the writer lock (no
//! download may merge shards while they are read), runs `crate::index` on every rank, and prints
//! rank 0's report. Exit 1 when a batch could not be indexed.

use anyhow::anyhow;

use super::edges::lock_for_job;
use super::invocation::Invocation;
use super::Failure;
use crate::cli::IndexArgs;
use crate::index::run::{run, IndexOptions, IndexReport};
use crate::mpi_glue::world::World;

pub(super) fn index(inv: &Invocation, args: IndexArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("index of {} failed", output.display())));
    if !output.is_dir() {
        return Err(failed(anyhow!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    let lock = lock_for_job(&world, &output, "index").map_err(failed)?;
    let result = run(&world, &IndexOptions { out: output.clone(), force: args.force });
    world.barrier(); // rank 0 releases the lock once every rank is done reading
    drop(lock);
    let Some(report) = result.map_err(failed)? else { return Ok(()) };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        print!("{}", screen(&report));
    }
    match report.errors.len() {
        0 => Ok(()),
        n => Err(failed(anyhow!(
            "{n} batch(es) could not be indexed: {}; their earlier manifest, if any, is left; run `verify` on the folder",
            report.errors.join("; ")
        ))),
    }
}

/// The report for a person: what was read, what the manifest holds, and how to open it.
fn screen(r: &IndexReport) -> String {
    let mut s = format!(
        "index: {} batch(es): {} indexed, {} unchanged since the last index\n  \
         manifest: {} image(s) stored, {} row(s) failed\n  \
         {}  (one table: pyarrow.dataset.dataset(path, partitioning=\"hive\"), or polars.read_parquet(path + \"/**/*.parquet\"))\n",
        r.batches, r.indexed, r.unchanged, r.stored, r.failed, r.manifest
    );
    if r.upgraded > 0 {
        s += &format!(
            "  {} batch(es) written by an older version rewritten with one HDF5 element per image (every image checked)\n",
            r.upgraded
        );
    }
    if let Some(h5) = &r.h5 {
        let kept = match &h5.keep_list {
            Some(k) => format!(", {} left out by the keep-list {k}", h5.left_out),
            None => String::new(),
        };
        s += &format!(
            "  {}  ({} image(s) over {} shard(s){kept}: h5py.File(path)[\"images\"][i])\n",
            h5.path, h5.images, h5.shards
        );
    }
    s
}
