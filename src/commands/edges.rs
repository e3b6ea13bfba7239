//! What several subcommands do before and after their work: the output folder's lock, the
//! overrides check, and the metrics exporter of a rank. (The output folder and the contact are
//! the job's, `job.rs`.)

use anyhow::anyhow;

use super::invocation::Invocation;
use super::Failure;
use crate::config::Settings;
use crate::mpi_glue::world::World;
use crate::store::lock::OutputLock;

/// Warns (rank 0), or with `strict` refuses on every rank, when the overrides file names servers
/// that are not in the dataset. Every rank reads the same files, so all decide alike and none
/// waits on another. A folder or file that cannot be read is left for the run to report.
pub(super) fn check_overrides(
    world: &World,
    output: &std::path::Path,
    settings: &Settings,
    strict: bool,
) -> Result<(), Failure> {
    let (Ok(servers), Ok(overrides)) =
        (crate::store::tables::read_servers_table(output), crate::overrides::Overrides::load(output, settings))
    else {
        return Ok(());
    };
    let known: Vec<&str> = servers.iter().map(|s| s.server_name.as_str()).collect();
    let Some(report) = overrides.unknown_report(&known) else { return Ok(()) };
    if strict {
        return Err(Failure::Usage(anyhow!("{report} (--strict-overrides)")));
    }
    if world.is_root() {
        eprintln!("warning: {report}");
    }
    Ok(())
}

/// Rank 0 takes the output folder's lock for the whole job, before anything is written there;
/// every rank learns whether it did, so none waits on a rank 0 that was refused.
pub(super) fn lock_for_job(world: &World, out: &std::path::Path, command: &str) -> anyhow::Result<Option<OutputLock>> {
    Ok(crate::store::lock::acquire_on_root(world.is_root(), out, command, |b| world.broadcast(b))?)
}

/// Runs `job` on every rank of a command that reads folder `from` and writes folder `to`
/// (`resize`, `export`): rank 0 takes the writer lock of both (`to` created first, so it can hold
/// one), and releases them once every rank is done.
pub(super) fn with_read_and_write_locks<T>(
    world: &World,
    (from, to): (&std::path::Path, &std::path::Path),
    command: &str,
    job: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let read_lock = lock_for_job(world, from, command)?;
    let created = if world.is_root() { std::fs::create_dir_all(to).map_err(|e| e.to_string()) } else { Ok(()) };
    let created: Result<(), String> =
        serde_json::from_slice(&world.broadcast(serde_json::to_vec(&created).expect("serialises"))).expect("parses");
    created.map_err(|e| anyhow::anyhow!("cannot create {}: {e}", to.display()))?;
    let write_lock = lock_for_job(world, to, command)?;
    let result = job();
    world.barrier(); // rank 0 releases the locks once every rank is done
    drop((write_lock, read_lock));
    result
}

/// Installs this rank's exporter and, on rank 0, writes the job's `file_sd` targets file from
/// every rank's endpoint. A rank that cannot export still downloads (with a warning).
pub(super) fn start_exporter(
    world: &World,
    inv: &Invocation,
    output: &std::path::Path,
    command: &'static str,
) -> Option<&'static crate::telemetry::exporter::Exporter> {
    use crate::telemetry::exporter;
    let identity = exporter::Identity {
        rank: world.rank(),
        local_rank: inv.launch.local_rank,
        job: inv.launch.slurm_job_id.clone().unwrap_or_else(|| "local".into()),
        command,
    };
    let installed = match exporter::install(&inv.settings.metrics, identity) {
        Ok(e) => Some(e),
        Err(e) => {
            crate::telemetry::events::log("WARN", &format!("metrics: {e:#}; this rank exports none"));
            None
        }
    };
    let mine = installed.and_then(|e| e.endpoint).map(exporter::scrape_address).unwrap_or_default();
    if let Some(all) = world.gather(mine.into_bytes()) {
        let endpoints: Vec<String> =
            all.into_iter().filter_map(|b| String::from_utf8(b).ok()).filter(|s| !s.is_empty()).collect();
        if let Some(e) = installed.filter(|_| !endpoints.is_empty()) {
            match exporter::write_targets(output, &e.job(), &endpoints) {
                Ok(path) => eprintln!(
                    "metrics: {} rank(s) serve Prometheus metrics ({}); file_sd targets: {}",
                    endpoints.len(),
                    endpoints.join(", "),
                    path.display()
                ),
                Err(err) => crate::telemetry::events::log("WARN", &format!("metrics: {err:#}")),
            }
        }
    }
    installed
}

/// Every rank leaves its figures in the output folder (for clusters no Prometheus reaches), and
/// rank 0 removes the job's targets file: its ranks stop serving, Prometheus stops looking.
pub(super) fn stop_exporter(
    exporter: Option<&crate::telemetry::exporter::Exporter>,
    world: &World,
    output: &std::path::Path,
) {
    if let Some(e) = exporter {
        if let Err(err) = e.write_snapshot(output) {
            crate::telemetry::events::log("WARN", &format!("metrics: {err:#}"));
        }
        if world.is_root() {
            let path = crate::telemetry::exporter::targets_path(output, &e.job());
            match std::fs::remove_file(&path) {
                // No targets file: no rank could listen, so none was written.
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => crate::telemetry::events::log(
                    "WARN",
                    &format!(
                        "metrics: cannot remove {} ({err}); Prometheus will report its ranks down",
                        path.display()
                    ),
                ),
                _ => {}
            }
        }
    }
}
