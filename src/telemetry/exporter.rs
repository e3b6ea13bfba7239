//! The Prometheus exporter of one rank: the `metrics` recorder, its HTTP listener, the labels
//! every series carries (`rank`, `job`), and the snapshot written into the output folder for
//! clusters where no Prometheus reaches the compute nodes.
//!
//! The listener serves on its own thread with its own small runtime, so a scrape never waits
//! for the engine, and the engine never waits for a scrape.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use metrics_exporter_prometheus::{
    BuildError, ExporterFuture, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

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

/// How many ports a rank tries before it exports none. Another process on the node (a job that
/// starts at the same moment) can take a port between the check that it is free and the
/// listener binding it; the next try takes a port the system picks.
const LISTEN_ATTEMPTS: usize = 8;

/// The recorder's settings: the labels every series carries and the histogram buckets.
fn builder(rank: &str, job: &str) -> PrometheusBuilder {
    PrometheusBuilder::new()
        .add_global_label("rank", rank)
        .add_global_label("job", job)
        .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()), names::SECONDS_BUCKETS)
        .expect("the buckets are not empty")
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(names::SHARD_COMMIT_ROWS.into()),
            names::ROWS_BUCKETS,
        )
        .expect("the buckets are not empty")
}

/// Installs the recorder for this process (once; a second call is an error) and, unless the port
/// is 0, its HTTP listener on `port + local rank`, or on any free port when that one is taken
/// (another job on the node): the targets file names the port actually used.
pub fn install(settings: &ExporterSettings, identity: Identity) -> anyhow::Result<&'static Exporter> {
    if INSTALLED.get().is_some() {
        return Err(anyhow!("the metrics exporter is already installed in this process"));
    }
    let rank = identity.rank.to_string();
    let mut endpoint = None;
    let handle = if settings.port == 0 {
        let recorder = builder(&rank, &identity.job).build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| anyhow!("cannot install the metrics recorder: {e}"))?;
        handle
    } else {
        let wanted = settings.port as usize + identity.local_rank;
        let wanted = u16::try_from(wanted).map_err(|_| anyhow!("METRICS_PORT + local rank {wanted} is not a port"))?;
        let (ip, job) = (settings.addr, identity.job.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("metrics-exporter".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => return drop(tx.send(Err(anyhow!("cannot start the exporter's runtime: {e}")))),
                };
                match listen(&runtime, ip, wanted, || builder(&rank, &job)) {
                    Ok((recorder, exporter, addr)) => {
                        let handle = recorder.handle();
                        if tx.send(Ok((recorder, handle, addr))).is_ok() {
                            // Serves until the process ends; a listener that fails later only
                            // costs the scrapes, never the download.
                            if let Err(e) = runtime.block_on(exporter) {
                                super::events::log("WARN", &format!("metrics: the listener on {addr} stopped: {e:?}"));
                            }
                        }
                    }
                    Err(e) => drop(tx.send(Err(e))),
                }
            })
            .context("cannot start the exporter's thread")?;
        let (recorder, handle, addr) = rx.recv().context("the exporter's thread ended before it started")??;
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

/// The recorder and its listener, on `wanted` if it can be had, else on a port the system picks,
/// tried up to [`LISTEN_ATTEMPTS`] times.
fn listen(
    runtime: &tokio::runtime::Runtime,
    ip: IpAddr,
    wanted: u16,
    builder: impl Fn() -> PrometheusBuilder,
) -> anyhow::Result<(PrometheusRecorder, ExporterFuture, SocketAddr)> {
    let _guard = runtime.enter();
    let mut last = None;
    for attempt in 0..LISTEN_ATTEMPTS {
        let addr = match free_port(ip, (attempt == 0).then_some(wanted))? {
            Some(addr) => addr,
            None => continue,
        };
        match builder().with_http_listener(addr).build() {
            Ok((recorder, exporter)) => {
                if addr.port() != wanted {
                    super::events::log(
                        "WARN",
                        &format!(
                            "metrics: port {wanted} on {ip} is taken (another job on this node?); serving on {} instead",
                            addr.port()
                        ),
                    );
                }
                return Ok((recorder, exporter, addr));
            }
            Err(BuildError::FailedToCreateHTTPListener(e)) => last = Some(format!("{addr}: {e}")),
            Err(e) => return Err(anyhow!("cannot listen on {addr}: {e}")),
        }
    }
    let last = last.unwrap_or_else(|| format!("port {wanted} is taken"));
    Err(anyhow!("cannot listen on {ip} after {LISTEN_ATTEMPTS} tries (last: {last}); set METRICS_PORT to a free port"))
}

/// `wanted` if it is free on `ip` now, else (or with no wish) a port the system picks; `None`
/// when `wanted` is taken. The port is released at once: the listener binds it again.
fn free_port(ip: IpAddr, wanted: Option<u16>) -> anyhow::Result<Option<SocketAddr>> {
    let port = wanted.unwrap_or(0);
    match TcpListener::bind((ip, port)) {
        Ok(l) => Ok(Some(l.local_addr()?)),
        Err(_) if wanted.is_some() => Ok(None),
        Err(e) => Err(anyhow!(
            "cannot listen on {ip} for metrics: {e}; set METRICS_ADDR to an address of this node (127.0.0.1 or 0.0.0.0)"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_taken_between_the_check_and_the_bind_is_given_up_for_another_that_serves() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let wanted = TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
        // A neighbour takes the wanted port after the check found it free, as a job started at
        // the same moment does.
        let neighbour = std::cell::RefCell::new(None);
        let builder = || {
            neighbour.borrow_mut().get_or_insert_with(|| TcpListener::bind((ip, wanted)).unwrap());
            PrometheusBuilder::new()
        };
        let (_recorder, exporter, addr) = listen(&runtime, ip, wanted, builder).unwrap();
        assert!(neighbour.borrow().is_some(), "the neighbour took the port");
        assert_ne!(addr.port(), wanted);
        // The port it reports is the one it serves on.
        runtime.spawn(exporter);
        let answer = runtime.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut text = String::new();
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_string(&mut text))
                .await
                .unwrap()
                .unwrap();
            text
        });
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[test]
    fn an_address_that_is_not_this_nodes_is_named_in_the_error() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // TEST-NET-1: never an address of this machine.
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let err = listen(&runtime, ip, 9464, PrometheusBuilder::new).err().unwrap().to_string();
        assert!(err.contains("192.0.2.7") && err.contains("METRICS_ADDR"), "{err}");
    }
}
