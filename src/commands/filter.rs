//! `filter`: reads its rules from the flags (and the keep- and drop-lists from their files),
//! runs `crate::filter` on the manifest and prints what was kept and why the rest was not.

use anyhow::{anyhow, Context};

use super::invocation::Invocation;
use super::Failure;
use crate::cli::FilterArgs;
use crate::filter::rules::{read_list, Rules};
use crate::filter::run::run;

pub(super) fn filter(inv: &Invocation, args: FilterArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    let usage = |m: String| Failure::Usage(anyhow!(m));
    if !output.is_dir() {
        return Err(usage(format!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    if args.max_aspect.is_some_and(|r| !(r.is_finite() && r >= 1.0)) {
        return Err(usage("--max-aspect must be a ratio of 1 or more (longer side over shorter side)".into()));
    }
    for id in args.license.iter().flatten().map(|i| i.trim()) {
        let read = crate::licenses::spdx::normalise(id).id;
        if read != id {
            return Err(usage(format!(
                "--license {id} is not a licence id as the manifest writes them; did you mean {read}? (`licenses` lists the ids)"
            )));
        }
    }
    let list = |path: &Option<std::path::PathBuf>, flag: &str| -> Result<_, Failure> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {flag} {}", path.display()))
            .map_err(Failure::Usage)?;
        Ok(Some(read_list(&text)))
    };
    let rules = Rules {
        status: args.status.clone(),
        min_side: args.min_side,
        min_area: args.min_area,
        max_aspect: args.max_aspect,
        keep: list(&args.keep, "--keep")?,
        drop: list(&args.drop, "--drop")?,
        licenses: args.license.clone().map(|ids| ids.into_iter().map(|i| i.trim().to_string()).collect()),
        attribution_complete: args.attribution_complete,
    };
    let report =
        run(&output, &rules).map_err(|e| Failure::Run(e.context(format!("filter of {} failed", output.display()))))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        let why: Vec<String> = report.dropped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "filter: {} of {} row(s) kept; dropped: {}",
            report.kept,
            report.rows,
            if why.is_empty() { "none".into() } else { why.join(", ") }
        );
        println!("  keep-list: {}\n  dropped, with reasons: {}", report.keep_file, report.dropped_file);
    }
    Ok(())
}
