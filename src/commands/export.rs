//! `export`: resolves the dataset and the export folder, joins the world of ranks, takes the
//! writer lock of each (no download may merge shards while they are read; one export writes a
//! folder at a time), runs `crate::export` on every rank and prints rank 0's report. Exit 1 when
//! a shard could not be written.

use anyhow::anyhow;

use super::edges::with_read_and_write_locks;
use super::invocation::Invocation;
use super::Failure;
use crate::cli::ExportArgs;
use crate::export::run::{run, ExportOptions, ExportReport, REPORT_FILE};
use crate::mpi_glue::world::World;

pub(super) fn export(inv: &Invocation, args: ExportArgs) -> Result<(), Failure> {
    let out = inv.output(&args.output)?;
    if !out.is_dir() {
        return Err(Failure::Usage(anyhow!("{} does not exist: check --output or OUTPUT_DIR", out.display())));
    }
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("export of {} failed", out.display())));
    let mut command = vec!["distributed-downloader".to_string()];
    command.extend(std::env::args().skip(1));
    let opts = ExportOptions {
        out: out.clone(),
        to: args.to.clone(),
        format: args.format,
        size: args.shard_size,
        seed: args.seed,
        caption: args.caption.is_some(),
        command: command.join(" "),
    };
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    let result = with_read_and_write_locks(&world, (&out, &args.to), "export", || run(&world, &opts));
    let Some(report) = result.map_err(failed)? else { return Ok(()) };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        print!("{}", screen(&report));
    }
    match report.errors.len() {
        0 => Ok(()),
        n => Err(failed(anyhow!(
            "{n} shard(s) could not be written: {}; run the same `export` again to write them",
            report.errors.join("; ")
        ))),
    }
}

/// The report for a person: what was written where, under which licences, and how to read it.
fn screen(r: &ExportReport) -> String {
    let mut licences: Vec<(&String, &u64)> = r.by_license.iter().collect();
    licences.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let licences: Vec<String> = licences.iter().map(|(l, n)| format!("{l} {n}")).collect();
    let mut s = format!(
        "export: {} image(s) ({:.1} MB) as {} in {} shard(s) under {}\n  \
         {} shard(s) written now, {} already there from an earlier run{}\n  \
         licences: {}\n  \
         {}/attribution.csv, README.md (the card), croissant.json, {REPORT_FILE}\n",
        r.images,
        r.image_bytes as f64 / 1e6,
        r.format,
        r.shards,
        r.to,
        r.written,
        r.resumed,
        if r.keep_list { "; only the images filter's keep-list keeps" } else { "" },
        licences.join(", "),
        r.to
    );
    if r.empty_captions > 0 {
        s += &format!(
            "  {} caption(s) empty: their rows have no taxonomy (prep --occurrence adds it)\n",
            r.empty_captions
        );
    }
    s
}
