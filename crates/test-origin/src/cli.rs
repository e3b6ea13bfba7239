//! The `test-origin` binary's command line: runs the test origin as a process, for the demo.
//!
//! `test-origin 127.0.0.2:8701=ok 127.0.0.3:8701=ratelimit:2` serves until
//! SIGTERM, SIGINT or `--max-seconds`, then prints (and optionally writes) what each host saw.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde::Serialize;
use std::str::FromStr;

use super::{Behaviour, HostSpec, Origin};

/// `test-origin ADDR=BEHAVIOUR...`: what the demo and the benchmarks start.
#[derive(Debug, Parser)]
#[command(
    name = "test-origin",
    version,
    about = "Serve generated images on loopback hosts with scripted behaviour (the demo's and tests' origin)"
)]
pub struct OriginArgs {
    /// Hosts to serve, as ADDR=BEHAVIOUR (e.g. 127.0.0.2:8701=ok, 127.0.0.3:8701=ratelimit:2).
    #[arg(required = true, value_name = "ADDR=BEHAVIOUR")]
    pub hosts: Vec<String>,
    /// Stop by itself after this many seconds (every request loop here is bounded).
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
    /// Write what each host saw, as `origin_report.json`, into this folder when stopping.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// What one host saw, as printed at the end.
#[derive(Debug, Serialize)]
pub struct HostReport {
    pub addr: String,
    pub behaviour: String,
    pub requests: usize,
    pub statuses: std::collections::BTreeMap<u16, usize>,
    pub max_in_flight: usize,
    pub max_requests_in_1s: usize,
    /// Requests per second between the first and the last arrival.
    pub mean_rate: f64,
    pub user_agents: Vec<String>,
}

pub fn run(args: &OriginArgs) -> anyhow::Result<()> {
    let mut specs = Vec::new();
    for h in &args.hosts {
        let (addr, behaviour) = h.split_once('=').ok_or_else(|| anyhow!("`{h}`: expected ADDR=BEHAVIOUR"))?;
        let addr: SocketAddr = addr.parse().with_context(|| format!("`{addr}` is not an IP:port"))?;
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address; the test origin only serves on 127.x.y.z");
        }
        specs.push(HostSpec::new(addr, Behaviour::from_str(behaviour)?));
    }
    let texts: Vec<String> =
        args.hosts.iter().map(|h| h.split_once('=').map(|x| x.1).unwrap_or("").to_string()).collect();
    let mut origin = Origin::start(specs).context("cannot start the origin")?;
    for (i, text) in texts.iter().enumerate() {
        eprintln!("origin: {} serving `{text}`", origin.base_url(i));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
            _ = tokio::time::sleep(Duration::from_secs(args.max_seconds)) => eprintln!("origin: --max-seconds reached"),
        }
        Ok::<(), std::io::Error>(())
    })?;
    let reports: Vec<HostReport> = (0..origin.len())
        .map(|i| {
            let log = origin.log(i);
            let mut statuses = std::collections::BTreeMap::new();
            for s in log.statuses() {
                *statuses.entry(s).or_default() += 1;
            }
            let arrivals: Vec<f64> = log.iter().map(|r| r.arrived.as_secs_f64()).collect();
            let span = match (arrivals.first(), arrivals.last()) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => 0.0,
            };
            let mut agents: Vec<String> = log.iter().filter_map(|r| r.user_agent.clone()).collect();
            agents.sort();
            agents.dedup();
            HostReport {
                addr: origin.base_url(i).to_string(),
                behaviour: texts[i].clone(),
                requests: log.len(),
                statuses,
                max_in_flight: log.max_in_flight(),
                max_requests_in_1s: log.max_requests_in_window(Duration::from_secs(1)),
                mean_rate: if span > 0.0 { (log.len() - 1) as f64 / span } else { 0.0 },
                user_agents: agents,
            }
        })
        .collect();
    origin.stop();
    println!("what the servers saw:");
    for r in &reports {
        let statuses: Vec<String> = r.statuses.iter().map(|(s, n)| format!("{s}x{n}")).collect();
        println!(
            "  {:<26} {:<14} {:>5} requests [{}], max {} in flight, max {} in 1 s, {:.2} req/s",
            r.addr,
            r.behaviour,
            r.requests,
            statuses.join(" "),
            r.max_in_flight,
            r.max_requests_in_1s,
            r.mean_rate
        );
    }
    if let Some(agent) = reports.iter().flat_map(|r| r.user_agents.iter()).next() {
        println!("  user agent: {agent}");
    }
    if let Some(dir) = &args.log_dir {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("origin_report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&reports)? + "\n")?;
    }
    Ok(())
}
