//! `submit`, `status`, `cancel` and the job scripts' `job-end`: the Slurm side of the product.
//! Decisions live in `crate::slurm` and `crate::status`; this file reads, prints and calls.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::Failure;
use crate::cli::{CancelArgs, JobEndArgs, StatusArgs, SubmitArgs};
use crate::config::Settings;
use crate::slurm::chain::{after_job, AfterJob};
use crate::slurm::queue;
use crate::slurm::record::{now_unix, Chain, Job, JobEnd, JobKind, JobRecord, Stopped};
use crate::slurm::render::{self, Paths};
use crate::slurm::{LOGS_DIR, SLURM_DIR};
use crate::status;

use super::invocation::Invocation;
use crate::exit::Exit;

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// The download jobs `plan` forecasts for what remains of `out` on the configured allocation.
fn jobs_from_plan(out: &Path, settings: &Settings) -> Result<u32, Failure> {
    use crate::forecast::{load, params, scale};
    if !crate::store::paths::servers_table(out).exists() {
        return Err(Failure::Usage(anyhow!(
            "--jobs-from-plan needs prep's output in {} (servers.parquet): run prep first, or pass --jobs K",
            out.display()
        )));
    }
    let params = params::resolve(settings, params::Flags::default()).map_err(|e| Failure::Usage(anyhow!(e)))?;
    let loaded = load::load(out, settings, Default::default()).map_err(|e| Failure::Run(anyhow!(e)))?;
    let source = out.display().to_string();
    let fc = scale::forecast(&source, &loaded.hosts, loaded.excluded, loaded.done, &params)
        .map_err(|e| Failure::Run(anyhow!(e).context(format!("cannot plan {source}"))))?;
    let jobs = fc.slurm_jobs.ok_or_else(|| {
        Failure::Usage(anyhow!(
            "SLURM_TIME {} leaves no time to download after the margins: raise it, or pass --jobs K",
            fc.slurm_time
        ))
    })?;
    eprintln!(
        "submit: plan forecasts {} on {} ranks: {jobs} download job(s) of SLURM_TIME {} (failures and queue waits not counted)",
        crate::forecast::report::human(fc.estimated_secs),
        fc.ranks,
        fc.slurm_time
    );
    Ok(u32::try_from(jobs.max(1)).unwrap_or(u32::MAX))
}

pub fn submit(inv: &Invocation, args: SubmitArgs) -> Result<(), Failure> {
    let (config, settings) = (inv.config.as_deref(), &inv.settings);
    let usage = |m: String| Failure::Usage(anyhow!(m));
    let run = |e: anyhow::Error| Failure::Run(e);
    let config = config.ok_or_else(|| {
        usage("submit needs --config FILE: the jobs read the same file, so every value is set once".into())
    })?;
    let config = absolute(config).map_err(run)?;
    let out = absolute(&inv.output(&args.output)?).map_err(run)?;
    let bin = std::env::current_exe().context("cannot tell where this binary is").map_err(run)?;
    let s = &settings.slurm;
    let jobs = if args.jobs_from_plan { jobs_from_plan(&out, settings)? } else { args.jobs.unwrap_or(s.chain_jobs) };
    if jobs == 0 {
        return Err(usage("--jobs must be at least 1".into()));
    }
    if !args.dry_run {
        refuse_a_second_chain(&out, &config).map_err(run)?;
    }
    let prepped = crate::store::paths::servers_table(&out).exists();
    let input = match (&args.input, prepped) {
        (None, false) => {
            return Err(usage(format!(
                "{} has no batches yet (no servers.parquet): pass --input FILE so that submit runs prep first",
                out.display()
            )))
        }
        (Some(i), false) => {
            let i = absolute(i).map_err(run)?;
            if !i.exists() {
                return Err(usage(format!("--input {}: no such file", i.display())));
            }
            Some(i)
        }
        (Some(_), true) => {
            eprintln!(
                "submit: {} already has batches, so prep is not queued again (run `prep --force` first to redo it)",
                out.display()
            );
            None
        }
        (None, true) => None,
    };
    let paths = Paths { bin: &bin, config: &config, out: &out };
    let slurm_dir = out.join(SLURM_DIR);
    let log = out.join(LOGS_DIR).join("job-%j.log");
    let mut scripts: Vec<(JobKind, PathBuf, String)> = Vec::new();
    if let Some(input) = &input {
        scripts.push((JobKind::Prep, slurm_dir.join("prep.sbatch"), render::prep_script(s, &paths, input)));
    }
    let download = render::download_script(s, &paths);
    for _ in 0..jobs {
        scripts.push((JobKind::Download, slurm_dir.join("download.sbatch"), download.clone()));
    }

    if args.dry_run {
        let mut shown = std::collections::BTreeSet::new();
        for (i, (_, path, text)) in scripts.iter().enumerate() {
            let after = (i > 0).then(|| format!("<job {i}>"));
            let cmd = queue::sbatch_args(path, &log, after.as_deref());
            println!("# job {}: sbatch {}", i + 1, cmd.join(" "));
            if shown.insert(path.clone()) {
                println!("# ---- {} ----\n{text}", path.display());
            }
        }
        println!("# dry run: nothing was queued or written");
        return Ok(());
    }

    for dir in [&slurm_dir, &out.join(LOGS_DIR)] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display())).map_err(run)?;
    }
    for (_, path, text) in &scripts {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())).map_err(run)?;
    }
    let mut record = JobRecord::load(&out).map_err(run)?;
    let number = record.chains.last().map(|c| c.number + 1).unwrap_or(1);
    record.chains.push(Chain {
        number,
        submitted_at: now_unix(),
        config: config.clone(),
        jobs: Vec::new(),
        stopped: None,
    });
    let mut previous: Option<String> = None;
    for (kind, path, _) in &scripts {
        let id = match queue::sbatch(&queue::sbatch_args(path, &log, previous.as_deref())) {
            Ok(id) => id,
            Err(e) => {
                // What was queued stays recorded, so `status` and `cancel` know it.
                record.save(&out).map_err(run)?;
                return Err(run(e.context(format!(
                    "queued {} of {} jobs; the rest of the chain was not queued",
                    record.chains.last().map(|c| c.jobs.len()).unwrap_or(0),
                    scripts.len()
                ))));
            }
        };
        record.chains.last_mut().expect("pushed").jobs.push(Job { id: id.clone(), kind: *kind, ended: None });
        previous = Some(id);
    }
    record.save(&out).map_err(run)?;
    let chain = record.chains.last().expect("pushed");
    let ids: Vec<&str> = chain.jobs.iter().map(|j| j.id.as_str()).collect();
    println!("submit: chain {number} queued: {} job(s): {}", ids.len(), describe(chain));
    println!("  scripts:  {}/", slurm_dir.display());
    println!("  logs:     {}/job-<id>.log and job-<id>-rank-<n>.log", out.join(LOGS_DIR).display());
    println!("  watch:    {} --config {} status", bin.display(), config.display());
    println!("  cancel:   {} --config {} cancel", bin.display(), config.display());
    Ok(())
}

fn describe(chain: &Chain) -> String {
    chain
        .jobs
        .iter()
        .map(|j| format!("{} ({})", j.id, if j.kind == JobKind::Prep { "prep" } else { "download" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A chain whose jobs Slurm still has queued or running blocks a new one: two chains on one
/// folder would run two downloads at once.
fn refuse_a_second_chain(out: &Path, config: &Path) -> anyhow::Result<()> {
    let record = JobRecord::load(out)?;
    let Some(chain) = record.latest() else { return Ok(()) };
    let ids: Vec<String> = chain.jobs.iter().map(|j| j.id.clone()).collect();
    let Some(states) = queue::states(&ids) else {
        bail!("cannot ask Slurm (squeue) whether chain {} is still queued; run submit where squeue works", chain.number)
    };
    let active: Vec<String> =
        states.iter().filter(|(_, s)| queue::is_active(s)).map(|(id, s)| format!("{id} ({s})")).collect();
    if !active.is_empty() {
        bail!(
            "chain {} is still queued or running on {}: {}. Watch it with `distributed-downloader --config {} status`, \
             or cancel it with `distributed-downloader --config {} cancel` (or `scancel {}`) before submitting again",
            chain.number,
            out.display(),
            active.join(", "),
            config.display(),
            config.display(),
            states.iter().filter(|(_, s)| queue::is_active(s)).map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}

pub fn cancel(inv: &Invocation, args: CancelArgs) -> Result<(), Failure> {
    let run = |e: anyhow::Error| Failure::Run(e);
    let out = inv.output(&args.output)?;
    let mut record = JobRecord::load(&out).map_err(run)?;
    let Some(chain) = record.chains.last_mut() else {
        println!("cancel: no chain was submitted on {}", out.display());
        return Ok(());
    };
    let ids: Vec<String> = chain.jobs.iter().map(|j| j.id.clone()).collect();
    let states = queue::states(&ids).ok_or_else(|| run(anyhow!("cannot ask Slurm (squeue) which jobs are queued")))?;
    let active: Vec<String> =
        ids.iter().filter(|id| states.get(*id).is_some_and(|s| queue::is_active(s))).cloned().collect();
    if active.is_empty() {
        println!("cancel: no job of chain {} is queued or running", chain.number);
        return Ok(());
    }
    queue::scancel(&active).map_err(run)?;
    chain.stopped = Some(Stopped {
        by_job: None,
        reason: "cancelled by the user".into(),
        at: now_unix(),
        cancelled: active.clone(),
    });
    let number = chain.number;
    record.save(&out).map_err(run)?;
    println!(
        "cancel: cancelled {} of chain {number}; committed shards are kept, `submit` continues from them",
        active.join(" ")
    );
    Ok(())
}

pub fn job_end(inv: &Invocation, args: JobEndArgs) -> Result<(), Failure> {
    let run = |e: anyhow::Error| Failure::Run(e);
    let out = inv.output(&args.output)?;
    // A node crash or a kill leaves the job's writer lock behind: its ranks are gone now.
    match crate::store::lock::release_for_job(&out, &args.job) {
        Ok(crate::store::lock::JobRelease::Released(h)) => {
            println!("job {}: removed the writer lock its download left behind ({h})", args.job)
        }
        Ok(_) => {}
        Err(e) => eprintln!("job-end: {e}"),
    }
    let mut record = JobRecord::load(&out).map_err(run)?;
    let Some((chain, index)) = record.find_mut(&args.job) else {
        println!("job-end: job {} is not in {}: nothing to record", args.job, JobRecord::path(&out).display());
        return Ok(());
    };
    let kind = chain.jobs[index].kind;
    // A step that never launched can leave srun with exit 0: a download job whose rank 0 never
    // wrote its start line in runs.jsonl did not run, whatever the exit code says.
    let ran = kind != JobKind::Download
        || crate::status::runs::read(&out)
            .map(|lines| lines.iter().any(|l| l.job.as_deref() == Some(args.job.as_str())))
            .unwrap_or(true);
    let exit_code = if args.exit_code == 0 && !ran {
        println!(
            "job {}: the download never started (no start in runs.jsonl; see the job's log): counted as a failure",
            args.job
        );
        1
    } else {
        args.exit_code
    };
    let remaining = match status::remaining(&out) {
        Ok(r) => Some(r),
        Err(e) if kind == JobKind::Download => {
            eprintln!("job-end: cannot count the remaining rows: {e:#}");
            None
        }
        Err(_) => None,
    };
    let previous_failed =
        chain.jobs[..index].iter().rev().find_map(|j| j.ended.as_ref()).is_some_and(|e| {
            !matches!(crate::exit::Exit::from_code(e.exit_code), Some(Exit::Success | Exit::NoProgress))
        });
    chain.jobs[index].ended = Some(JobEnd { exit_code, at: now_unix(), remaining });
    let decision = after_job(kind, exit_code, remaining, previous_failed);
    let later: Vec<String> = chain.jobs[index + 1..].iter().map(|j| j.id.clone()).collect();
    if let AfterJob::Stop(reason) = &decision {
        chain.stopped = Some(Stopped {
            by_job: Some(args.job.clone()),
            reason: reason.clone(),
            at: now_unix(),
            cancelled: later.clone(),
        });
    }
    // Saved before the rest is cancelled: once no job of the chain is left, `status` must
    // already say why it stopped.
    record.save(&out).map_err(run)?;
    if let AfterJob::Stop(reason) = &decision {
        if !later.is_empty() {
            if let Err(e) = queue::scancel(&later) {
                eprintln!("job-end: {e:#}; cancel them by hand: scancel {}", later.join(" "));
            }
        }
        println!("job {}: the chain stops: {reason}", args.job);
        if !later.is_empty() {
            println!("job {}: cancelled the rest of the chain: {}", args.job, later.join(" "));
        }
    } else {
        let rows = remaining.map_or_else(|| "?".to_string(), |r| r.to_string());
        match later.first() {
            Some(next) => println!("job {}: ended with exit {exit_code}; {rows} rows remain; job {next} continues", args.job),
            None => println!(
                "job {}: the last job of the chain ended with exit {exit_code}; {rows} rows remain: run `submit` again to go on",
                args.job
            ),
        }
    }
    Ok(())
}

pub fn status(inv: &Invocation, args: StatusArgs) -> Result<(), Failure> {
    let settings = &inv.settings;
    let out = inv.output(&args.output)?;
    if !out.is_dir() {
        return Err(Failure::Run(anyhow!("{} does not exist: run `prep` or `submit` first", out.display())));
    }
    let overrides = crate::overrides::Overrides::load(&out, settings).map_err(|e| Failure::Run(e.into()))?;
    let mut report = status::report(&out, &overrides, settings, true)
        .with_context(|| format!("cannot read the status of {}", out.display()))
        .map_err(Failure::Run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
    } else {
        if args.all {
            report.show_servers = usize::MAX;
        }
        print!("{report}");
    }
    Ok(())
}
