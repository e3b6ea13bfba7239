//! `dedup`: resolves the output folder, runs `crate::dedup` on the manifest and prints what it
//! found. It reads the manifest only and writes only under `<output>/dedup/`.

use anyhow::anyhow;

use super::invocation::Invocation;
use super::Failure;
use crate::cli::DedupArgs;
use crate::dedup::run::{run, DedupOptions, DedupReport};

pub(super) fn dedup(inv: &Invocation, args: DedupArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    if !output.is_dir() {
        return Err(Failure::Usage(anyhow!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    let opts = DedupOptions {
        out: output.clone(),
        threshold: args.threshold,
        against: args.against,
        partition_bytes: args.partition_bytes,
    };
    let report = run(&opts).map_err(|e| Failure::Run(e.context(format!("dedup of {} failed", output.display()))))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        print!("{}", screen(&report, args.threshold));
    }
    Ok(())
}

fn screen(r: &DedupReport, threshold: u32) -> String {
    let mut s = format!(
        "dedup: {} image(s): {} in {} group(s) are duplicates of their group's keeper ({} the same bytes, {} within {threshold} PDQ bits)\n",
        r.images, r.duplicates, r.groups, r.same_bytes, r.near
    );
    if r.low_quality > 0 {
        s +=
            &format!("  {} image(s) too flat for their PDQ hash to be trusted: matched by bytes only\n", r.low_quality);
    }
    if r.skipped_buckets > 0 {
        s += &format!(
            "  {} candidate bucket(s) of {} image(s) were too large to compare pair by pair (see docs/dedup.md)\n",
            r.skipped_buckets, r.skipped_images
        );
    }
    s += &format!("  duplicates: {}\n", r.duplicates_file);
    if let (Some(n), Some(file)) = (r.leaks, &r.leaks_file) {
        s += &format!("  {n} image(s) within {threshold} PDQ bits of the test set: {file}\n");
    }
    s
}
