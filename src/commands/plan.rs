//! `plan`: reads what remains of a job (or generates the GBIF-shaped one), forecasts it over the
//! requested nodes and prints the forecast. The forecast itself is `crate::forecast`; this file
//! only merges the flags over the config and maps errors to exit codes.

use anyhow::anyhow;

use super::invocation::Invocation;
use super::Failure;
use crate::cli::PlanArgs;
use crate::download::revalidate::{cutoff, parse_age, Pass};
use crate::forecast::error::ForecastError;
use crate::forecast::params::{resolve, Flags};
use crate::forecast::{gbif_like, load, scale};
use crate::store::shards::ledger::{Again, RetryFailed};

/// What `download --revalidate [--older-than AGE]`, started now on `out`, would ask about again
/// (from the start of the unfinished pass with the same age, if there is one).
fn revalidation(args: &PlanArgs, out: &std::path::Path) -> Result<Again, Failure> {
    if !args.revalidate {
        return Ok(Again::default());
    }
    let age = match &args.older_than {
        Some(age) => Some(parse_age(age).map_err(|e| Failure::Usage(anyhow!("--older-than {e}")))?),
        None => None,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let started = Pass::unfinished(out, age).map_or(now, |pass| pass.started);
    Ok(Again { failed: RetryFailed::No, stored_before: Some(cutoff(started, age)) })
}

/// A usage error (exit 2) for bad flags or config, a run failure (exit 1) for the folder.
fn failure(e: ForecastError, context: impl FnOnce() -> String) -> Failure {
    if e.is_usage() {
        Failure::Usage(anyhow!(e))
    } else {
        Failure::Run(anyhow!(e).context(context()))
    }
}

pub fn plan(inv: &Invocation, args: PlanArgs) -> Result<(), Failure> {
    let settings = &inv.settings;
    let flags = Flags {
        nodes: args.nodes,
        ranks_per_node: args.ranks_per_node,
        round_secs: args.round_secs,
        rank_images_per_sec: args.rank_images_per_sec,
    };
    let params = resolve(settings, flags).map_err(|e| failure(e, String::new))?;
    let (source, loaded) = if args.gbif_like {
        let hosts = gbif_like::hosts(settings.max_in_flight_per_host);
        let source = format!("GBIF-like list ({} servers, {} URLs)", gbif_like::SERVERS, gbif_like::URLS);
        (source, load::Loaded { hosts, excluded: Vec::new(), done: 0 })
    } else {
        let out = inv.output(&args.output)?;
        let again = revalidation(&args, &out)?;
        let loaded =
            load::load(&out, settings, again).map_err(|e| failure(e, || format!("cannot plan {}", out.display())))?;
        (out.display().to_string(), loaded)
    };
    let fc = scale::forecast(&source, &loaded.hosts, loaded.excluded, loaded.done, &params)
        .map_err(|e| failure(e, || format!("cannot plan {source}")))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&fc).expect("a forecast serialises"));
    } else {
        print!("{fc}");
    }
    Ok(())
}
