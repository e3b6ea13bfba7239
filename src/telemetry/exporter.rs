//! The Prometheus exporter of one rank: the `metrics` recorder, its HTTP listener, the labels
//! every series carries (`rank`, `job`), and the snapshot written into the output folder for
//! clusters where no Prometheus reaches the compute nodes.
//!
//! The listener serves on its own thread with its own small runtime, so a scrape never waits
//! for the engine, and the engine never waits for a scrape.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::names;

/// The folder of the output that holds the targets files and the snapshots.
pub use crate::store::paths::METRICS_DIR;

/// Where and whether a rank serves its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSettings {
    pub addr: IpAddr,
    /// Base port; a rank serves on `port + local rank`. 0 turns the exporter off.
    pub port: u16,
    /// Hosts that get their own `host` label value; the rest are `other`.
    pub host_labels: usize,
}

/// Who this process is, for the labels every series carries.
#[derive(Debug, Clone)]
pub struct Identity {
    pub rank: usize,
    /// The rank's index among the ranks of its node: its port offset.
    pub local_rank: usize,
    /// The Slurm job id, or `local`.
    pub job: String,
    /// The subcommand (`prep`, `download`): names the snapshot file.
    pub command: &'static str,
}

/// An installed exporter: the handle renders what a scrape would see.
pub struct Exporter {
    handle: PrometheusHandle,
    /// Where it serves, when it could listen.
    pub endpoint: Option<SocketAddr>,
    identity: Identity,
}

/// Installs the recorder for this process (once; a second call is an error) and, unless the port
/// is 0, its HTTP listener on `port + local rank`, or on any free port when that one is taken
/// (another job on the node): the targets file names the port actually used.
pub fn install(settings: &ExporterSettings, identity: Identity) -> anyhow::Result<&'static Exporter> {
    if INSTALLED.get().is_some() {
        return Err(anyhow!("the metrics exporter is already installed in this process"));
    }
    let builder = || {
        PrometheusBuilder::new()
            .add_global_label("rank", identity.rank.to_string())
            .add_global_label("job", identity.job.clone())
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                names::SECONDS_BUCKETS,
            )
            .expect("the buckets are not empty")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(names::SHARD_COMMIT_ROWS.into()),
                names::ROWS_BUCKETS,
            )
            .expect("the buckets are not empty")
    };
    let mut endpoint = None;
    let handle = if settings.port == 0 {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| anyhow!("cannot install the metrics recorder: {e}"))?;
        handle
    } else {
        let wanted = settings.port as usize + identity.local_rank;
        let wanted = u16::try_from(wanted).map_err(|_| anyhow!("METRICS_PORT + local rank {wanted} is not a port"))?;
        let addr = free_port(settings.addr, wanted)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let b = builder().with_http_listener(addr);
        std::thread::Builder::new()
            .name("metrics-exporter".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => return drop(tx.send(Err(anyhow!("cannot start the exporter's runtime: {e}")))),
                };
                let built = {
                    let _guard = runtime.enter();
                    b.build()
                };
                match built {
                    Ok((recorder, exporter)) => {
                        let handle = recorder.handle();
                        if tx.send(Ok((recorder, handle))).is_ok() {
                            // Serves until the process ends; a listener that fails later only
                            // costs the scrapes, never the download.
                            if let Err(e) = runtime.block_on(exporter) {
                                super::events::log("WARN", &format!("metrics: the listener on {addr} stopped: {e:?}"));
                            }
                        }
                    }
                    Err(e) => drop(tx.send(Err(anyhow!("cannot listen on {addr}: {e}")))),
                }
            })
            .context("cannot start the exporter's thread")?;
        let (recorder, handle) = rx.recv().context("the exporter's thread ended before it started")??;
        metrics::set_global_recorder(recorder).map_err(|e| anyhow!("cannot install the metrics recorder: {e}"))?;
        endpoint = Some(addr);
        handle
    };
    names::describe_all();
    super::events::set_host_label_cap(settings.host_labels);
    // Series that exist from the start, so a scrape before the first event already shows the
    // rank (and a dashboard sees 0, not "no data").
    metrics::counter!(names::SHARDS_COMMITTED_TOTAL).increment(0);
    for phase in crate::host::state::HostPhase::ALL {
        metrics::gauge!(names::HOSTS, "state" => phase.as_str()).set(0.0);
    }
    // Every class of a per-class counter reads 0 until it happens (an empty `host` label:
    // panels sum by class), so a failure panel shows 0, not "no data".
    for class in crate::host::outcome::ErrorClass::ALL {
        metrics::counter!(names::ROWS_FAILED_TOTAL, "host" => "", "class" => class.as_str()).increment(0);
        metrics::counter!(names::RETRIES_TOTAL, "host" => "", "class" => class.as_str()).increment(0);
    }
    for class in super::events::AnswerClass::ALL_STATUS {
        metrics::counter!(names::REQUESTS_TOTAL, "host" => "", "class" => class.as_str()).increment(0);
    }
    metrics::counter!(names::REFUSALS_TOTAL, "host" => "").increment(0);
    Ok(INSTALLED.get_or_init(|| Exporter { handle, endpoint, identity }))
}

/// The process's exporter, once installed: rounds write snapshots through it.
static INSTALLED: std::sync::OnceLock<Exporter> = std::sync::OnceLock::new();

/// Writes this rank's snapshot if an exporter is installed (the end of each round calls it).
pub fn snapshot(out: &Path) {
    if let Some(e) = INSTALLED.get() {
        if let Err(err) = e.write_snapshot(out) {
            super::events::log("WARN", &format!("metrics: {err:#}"));
        }
    }
}

/// `wanted` if it is free on `addr`, else a port the system picks.
fn free_port(addr: IpAddr, wanted: u16) -> anyhow::Result<SocketAddr> {
    if TcpListener::bind((addr, wanted)).is_ok() {
        return Ok(SocketAddr::new(addr, wanted));
    }
    let any = TcpListener::bind((addr, 0)).with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let port = any.local_addr()?.port();
    super::events::log(
        "WARN",
        &format!("metrics: port {wanted} on {addr} is taken (another job on this node?); serving on {port} instead"),
    );
    Ok(SocketAddr::new(addr, port))
}

impl Exporter {
    /// The job label of every series.
    pub fn job(&self) -> String {
        self.identity.job.clone()
    }

    /// What a scrape returns now.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Writes the exposition into `<out>/metrics/<job>-rank-<n>.prom` (a download rank) or
    /// `<out>/metrics/<job>-<command>.prom` (atomically): the figures of the job so far, for
    /// clusters where no Prometheus can scrape compute nodes.
    pub fn write_snapshot(&self, out: &Path) -> anyhow::Result<PathBuf> {
        let id = &self.identity;
        let name = match id.command {
            "download" => format!("{}-rank-{}.prom", id.job, id.rank),
            other => format!("{}-{other}.prom", id.job),
        };
        let path = out.join(METRICS_DIR).join(name);
        crate::store::atomic::replace(&path, self.render().as_bytes())?;
        Ok(path)
    }
}

/// The `file_sd` targets file of one job: `<out>/metrics/targets-<job>.json`, one target per
/// rank (`host:port`), labelled with the job. A Prometheus whose `file_sd_configs` names
/// `<out>/metrics/targets-*.json` finds every rank of every job.
pub fn targets_path(out: &Path, job: &str) -> PathBuf {
    out.join(METRICS_DIR).join(format!("targets-{job}.json"))
}

pub fn write_targets(out: &Path, job: &str, endpoints: &[String]) -> anyhow::Result<PathBuf> {
    let path = targets_path(out, job);
    let body = serde_json::json!([{ "targets": endpoints, "labels": { "dd_output": out.display().to_string() } }]);
    crate::store::atomic::replace(&path, (serde_json::to_string_pretty(&body)? + "\n").as_bytes())?;
    Ok(path)
}

/// The address a scraper on another node uses for this rank: the node's host name when the
/// listener is on every interface, else the address it listens on.
pub fn scrape_address(endpoint: SocketAddr) -> String {
    if endpoint.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string());
        if let Some(h) = host.filter(|h| !h.is_empty()) {
            return format!("{h}:{}", endpoint.port());
        }
    }
    endpoint.to_string()
}
