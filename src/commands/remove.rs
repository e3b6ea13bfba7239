//! `remove`: reads the lists, takes the writer lock (no download may write the batches meanwhile),
//! runs `crate::remove` and prints what it removed.

use anyhow::anyhow;

use super::edges::lock_for_job;
use super::invocation::Invocation;
use super::Failure;
use crate::cli::RemoveArgs;
use crate::mpi_glue::world::World;
use crate::remove::run::{read_list, run, RemoveOptions};

pub(super) fn remove(inv: &Invocation, args: RemoveArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    if !output.is_dir() {
        return Err(Failure::Usage(anyhow!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    let list = |path: &Option<std::path::PathBuf>| path.as_deref().map(read_list).transpose().map_err(Failure::Usage);
    let opts = RemoveOptions {
        out: output.clone(),
        uuids: list(&args.uuids)?.unwrap_or_default(),
        urls: list(&args.urls)?.unwrap_or_default(),
        reason: args.reason.clone(),
        purge: args.purge,
    };
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("remove in {} failed", output.display())));
    let world = World::single();
    let _lock = lock_for_job(&world, &output, "remove").map_err(failed)?;
    let report = run(&opts).map_err(failed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        println!(
            "remove: {} listed, {} row(s) found: {} removed now, {} removed before; {} batch(es) given tombstones{}",
            report.asked,
            report.found,
            report.removed,
            report.already_removed,
            report.batches,
            if args.purge {
                let carried = match report.purged_carried {
                    0 => String::new(),
                    n => format!(
                        "; {n} image(s) carried over by `refresh` emptied under carried/ (the older snapshot keeps its copy: purge it there too)"
                    ),
                };
                format!(", {} rewritten without their bytes{carried}", report.purged_batches)
            } else {
                String::new()
            }
        );
        if !report.not_in_dataset.is_empty() {
            println!("  not in the dataset: {}", report.not_in_dataset.join(", "));
        }
        println!("  run `index` to see them as `removed` in the manifest");
    }
    Ok(())
}
