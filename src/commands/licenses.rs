//! `licenses`: reads the manifest (no lock: it only reads files `index` replaces atomically) and
//! prints the report.

use anyhow::anyhow;

use super::invocation::Invocation;
use super::Failure;
use crate::cli::LicensesArgs;
use crate::licenses::report::{report, screen};

pub(super) fn licenses(inv: &Invocation, args: LicensesArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    if !output.is_dir() {
        return Err(Failure::Usage(anyhow!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    let r = report(&output).map_err(|e| Failure::Run(e.context(format!("licenses of {} failed", output.display()))))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("the report serialises"));
    } else {
        print!("{}", screen(&r, args.top));
    }
    Ok(())
}
