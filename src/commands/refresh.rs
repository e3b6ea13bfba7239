//! `refresh`: the next snapshot of a dataset in a new output folder, fetching only what changed:
//! prep of the new list, the plan against the old folder, the old images carried over by
//! reference, then (unless `--no-download`) the download of what is new. Each step is recorded
//! in `refresh/state.json` once done, so a refresh run again resumes.

use std::path::Path;

use anyhow::{anyhow, Context};

use super::download::download_on;
use super::edges::with_read_and_write_locks;
use super::invocation::Invocation;
use super::prep::checked_options;
use super::Failure;
use crate::cli::{DownloadArgs, RefreshArgs};
use crate::mpi_glue::world::World;
use crate::prep::run::{self as prep_run, PrepOptions};
use crate::refresh::carry::{carry, CarryReport};
use crate::refresh::state::RefreshState;
use crate::refresh::{self, DiffOptions, DiffReport};
use crate::store::paths;

pub(super) fn refresh(inv: &Invocation, args: RefreshArgs) -> Result<(), Failure> {
    let new = inv.output(&args.prep.output)?;
    let usage = |m: String| Failure::Usage(anyhow!(m));
    let old = std::fs::canonicalize(&args.from).map_err(|e| {
        usage(format!("--from {}: {e}; give the output folder of the earlier snapshot", args.from.display()))
    })?;
    if std::fs::canonicalize(&new).is_ok_and(|n| n == old) {
        return Err(usage(format!(
            "--from and --output are both {}: the new snapshot needs its own folder",
            old.display()
        )));
    }
    let input = std::path::absolute(&args.prep.input).unwrap_or_else(|_| args.prep.input.clone());
    let mut prep_opts = checked_options(inv, &args.prep)?;
    prep_opts.force = true; // a refresh killed in its prep left part of one
    let contact = if args.no_download { None } else { Some(inv.contact(&args.contact)?) };
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("refresh of {} failed", new.display())));
    let world = World::init(inv.launch.mpi_launched).map_err(failed)?;
    let work = || -> anyhow::Result<Option<(DiffReport, CarryReport)>> {
        let done = if world.is_root() {
            prepare(&prep_opts, args.prep.json, &old, &new, &input).map_err(|e| format!("{e:#}"))
        } else {
            Ok(None)
        };
        let done: Result<Option<(DiffReport, CarryReport)>, String> =
            serde_json::from_slice(&world.broadcast(serde_json::to_vec(&done).expect("serialises"))).expect("parses");
        done.map_err(|e| anyhow!(e))
    };
    let reports = with_read_and_write_locks(&world, (&old, &new), "refresh", work).map_err(failed)?;
    if let Some((diff, carried)) = &reports {
        if args.prep.json {
            let json = serde_json::json!({"plan": diff, "carried": carried});
            println!("{}", serde_json::to_string_pretty(&json).expect("serialises"));
        } else {
            print!("{}", screen(&old, &new, diff, carried, args.no_download));
        }
    }
    let Some(contact) = contact else { return Ok(()) };
    let download = DownloadArgs {
        output: Some(new),
        contact: Some(contact),
        deadline: None,
        json: args.prep.json,
        verbose: false,
        retry_failed: false,
        revalidate: args.revalidate,
        older_than: args.older_than.clone(),
        static_plan: false,
        strict_overrides: false,
    };
    download_on(&world, inv, download)
}

/// Rank 0's part, under both folders' locks: each step not done yet, recorded as it is done.
fn prepare(
    prep_opts: &PrepOptions,
    json: bool,
    old: &Path,
    new: &Path,
    input: &Path,
) -> anyhow::Result<Option<(DiffReport, CarryReport)>> {
    let mut state = match RefreshState::read(new).map_err(|e| anyhow!(e))? {
        Some(s) if s.from == old && s.input == input => s,
        Some(s) => {
            return Err(anyhow!(
                "{} holds the refresh of {} from {}; give this one another --output folder",
                new.display(),
                s.input.display(),
                s.from.display()
            ))
        }
        None if paths::servers_table(new).exists() => {
            return Err(anyhow!(
            "{} already holds a prepped dataset that refresh did not make; give the refresh an empty --output folder",
            new.display()
        ))
        }
        None => RefreshState::start(old, input),
    };
    state.write(new)?;
    if !state.prepped {
        let report = prep_run::run(prep_opts).with_context(|| format!("prep of {} failed", input.display()))?;
        if !json {
            println!("{report}");
        }
        // Test-only: a test killing the process here proves a refresh killed before the step is
        // recorded does it again, whole.
        crate::store::pause::point("refresh-prepped");
        state.prepped = true;
        state.write(new)?;
    }
    if !state.planned {
        let inputs = refresh::inputs(old, new)?;
        let (scratch, opts) = (paths::refresh_scratch(new), DiffOptions::default());
        refresh::diff(&inputs.old_manifest, &inputs.new_urls, &inputs.new_occurrence, &scratch, new, &opts)?;
        crate::store::pause::point("refresh-planned");
        state.planned = true;
        state.write(new)?;
    }
    if state.carried.is_none() {
        state.carried = Some(carry(old, new, &state.id)?);
        state.write(new)?;
    }
    let report = std::fs::read(paths::refresh_report(new)).context("cannot read the refresh report")?;
    let diff: DiffReport =
        serde_json::from_slice(&report).context("the refresh report is damaged; run refresh again")?;
    Ok(Some((diff, state.carried.unwrap_or_default())))
}

/// The report for a person.
fn screen(old: &Path, new: &Path, d: &DiffReport, c: &CarryReport, no_download: bool) -> String {
    let k = &d.classes;
    let reason = |r: &str| d.reasons.get(r).copied().unwrap_or(0);
    let changed: Vec<String> = d.changed_fields.iter().map(|(f, n)| format!("{f} {n}")).collect();
    let mut s = format!("refresh: {} from {}\n", new.display(), old.display());
    s += &format!(
        "  new:              {:>10}  to fetch ({} not in the old snapshot, {} failed there)\n",
        k.new,
        reason("not_in_old"),
        reason("failed_in_old")
    );
    s += &format!("  unchanged:        {:>10}  carried over, no request\n", k.unchanged);
    s += &format!(
        "  metadata changed: {:>10}  carried over with the new licence and credits{}\n",
        k.metadata_changed,
        if changed.is_empty() { String::new() } else { format!(" ({})", changed.join(", ")) }
    );
    s += &format!("  gone:             {:>10}  not in the new snapshot: left out of it\n", k.gone);
    s += &format!("  removed:          {:>10}  taken down before: kept as takedowns, never fetched\n", k.removed);
    s += &format!(
        "  carried: {} image(s), {} MB, by reference to {} old shard(s) under {}{}\n",
        c.images,
        c.bytes_referenced / 1_000_000,
        c.shards_linked,
        new.join(paths::CARRIED_DIR).display(),
        if c.shards_copied > 0 { format!(" ({} copied: another filesystem)", c.shards_copied) } else { String::new() }
    );
    let mut servers: Vec<(&String, u64)> =
        d.per_server.iter().map(|(s, c)| (s, c.new + c.gone + c.metadata_changed)).collect();
    servers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (server, _) in servers.iter().take(5).filter(|(_, n)| *n > 0) {
        let c = &d.per_server[*server];
        s += &format!("    {server}: {} new, {} changed, {} gone\n", c.new, c.metadata_changed, c.gone);
    }
    s += &format!("  per server and dataset: {}\n", paths::refresh_report(new).display());
    if no_download {
        s += &format!(
            "  next: `distributed-downloader download -o {}` fetches the {} new image(s)\n",
            new.display(),
            k.new
        );
    }
    s
}
