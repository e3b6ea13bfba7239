//! The second section of `dd-bench politeness`: the same download, at default settings, against
//! real nginx `limit_req` limiters (issue 29), the limiter most small institutional servers run,
//! so the rate controller is judged against more than our own model of one.
//!
//! Owns the shapes, their run on 1 and 4 ranks, and the table and goals printed after each.
//! nginx comes from `scripts/nginx.sh install` and runs through `test_origin::nginx`, one
//! `server` per shape on its own loopback address; everything measured is what nginx logged.
//!
//! # Shapes
//! A leaky bucket of `rate` with `burst`; `nodelay` serves a burst at once, delay mode holds the
//! requests beyond the rate at the server and releases them at the rate, and refuses only what
//! exceeds the burst. Some add `Retry-After` to the 429. Each shape gets `rate` × [`FLOOR_SECS`]
//! URLs (× `--scale`, at least 1), so every floor is the same and the whole run's floor is it.
//!
//! # Measures, per shape (times from the host's first request)
//! - wall: first arrival to last completion; ratio = wall / floor (URLs / rate).
//! - 429 and their share of the host's requests (robots.txt included: nginx limits it too); the
//!   time of the first 429.
//! - peak/s: the most arrivals (any status) in a 1-s window.
//! - held: the 200s completed in the last [`HELD_WINDOW`] s of the host's run (its whole run if
//!   shorter) per second, as a share of the rate: where the controller settled.
//! - in-flight: the most requests nginx held at once (arrival to completion); in delay mode
//!   that is the server-side queue. lat: the median time nginx took over a 200.
//! - learned: `learned_rate_limit` in `servers.parquet` after the run.
//!
//! # Goals (issue 29), PASS or MISS per run
//! - (f) ≤ [`MAX_REFUSALS_PER_HOST`] refusals on each host and ≤ 1% of all requests refused.
//!   Its line also names the refusals that came right after a late arrival: the request before
//!   the refused one came [`LATE`] or more after the gap before it, and the refused one as much
//!   early, the two gaps together within [`LATE`] of twice that gap. That is one request held
//!   up on its way (a pause of the machine, on either side) and the next one sent on time.
//!   They are named, not taken out: the goal counts every 429.
//! - (g) whole run (first arrival anywhere to last completion anywhere) ≤ 1.1 × the slowest
//!   host's floor; a run stopped at its timeout misses it.
//! - (h) held ≥ 90% of the rate on every shape.
//! - (i) in delay mode, nginx never held more than the client's in-flight cap per host
//!   (`MAX_IN_FLIGHT_PER_HOST`, default 2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use distributed_downloader::host::rate::DEFAULT_MAX_IN_FLIGHT;
use distributed_downloader::store::shards::ledger;
use distributed_downloader::store::tables::read_servers_table;
use test_origin::{Nginx, NginxHost, RequestLog};

use super::{download, prepare, server_key, Rows, FLOOR_SECS, MAX_RATE_LIMIT, RANKS};

/// The shapes: (rate req/s, burst, nodelay, Retry-After s). Not the cross product: each rate at
/// the bursts and modes small servers are configured with, and `Retry-After` on a few.
const SHAPES: [(f64, u32, bool, Option<u32>); 12] = [
    (0.5, 1, true, None),
    (2.0, 0, true, None),
    (2.0, 4, true, None),
    (2.0, 10, true, None),
    (2.0, 4, true, Some(2)),
    (2.0, 1, false, None),
    (2.0, 4, false, Some(2)),
    (8.0, 0, true, Some(1)),
    (8.0, 4, true, None),
    (8.0, 10, false, None),
    (20.0, 10, true, None),
    (20.0, 4, false, None),
];
/// The shapes listen on 127.0.2.1, .2, …: apart from the scripted section's 127.0.0.x.
const ADDR_PREFIX: [u8; 3] = [127, 0, 2];
/// The end of a host's run whose served rate is "held".
const HELD_WINDOW: f64 = 20.0;
/// How far a gap must stray from the host's usual one to call the request before a refusal
/// late (goal (f)'s line): the hold keeps spacing limits two arrival jitters (6 ms) clear.
const LATE: f64 = 0.003;
/// Goal (f): refusals allowed per host, and as a share of all requests.
const MAX_REFUSALS_PER_HOST: usize = 2;
const MAX_REFUSED_SHARE: f64 = 0.01;
/// Goal (g): the whole run may take this multiple of the slowest host's floor.
const FLOOR_SLACK: f64 = 1.1;
/// Goal (h): the held rate as a share of the limit.
const HELD_SHARE: f64 = 0.9;

/// One shape after a run.
struct ShapeResult {
    host: NginxHost,
    urls: usize,
    measures: Option<Measures>,
    learned: Option<f64>,
    rows: Rows,
}

impl ShapeResult {
    fn floor(&self) -> f64 {
        self.urls as f64 / self.host.rate
    }
}

/// What one host's nginx log says. Times are seconds from the harness's start.
#[derive(Debug, Clone, PartialEq)]
struct Measures {
    requests: usize,
    first: f64,
    last_done: f64,
    refusals: usize,
    /// The first 429, from the host's first request.
    first_refusal: Option<f64>,
    peak_1s: usize,
    /// Served per second at the end of the run, as a share of the rate.
    held: f64,
    in_flight: usize,
    /// Median seconds nginx took over a 200.
    latency: f64,
    /// Refusals right after a late arrival (see the module docs, goal (f)).
    after_late: usize,
}

impl Measures {
    /// Measures `log` of a host limited to `rate`; `None` if it saw no request.
    fn of(log: &RequestLog, rate: f64) -> Option<Measures> {
        let secs = |d: Duration| d.as_secs_f64();
        let first = log.iter().map(|r| secs(r.arrived)).min_by(f64::total_cmp)?;
        let done = |r: &test_origin::RequestRecord| secs(r.completed.unwrap_or(r.arrived));
        let last_done = log.iter().map(done).fold(first, f64::max);
        let window = HELD_WINDOW.min(last_done - first).max(1e-3);
        let held_served = log.iter().filter(|r| r.status == 200 && done(r) > last_done - window).count();
        let mut latencies: Vec<f64> =
            log.iter().filter(|r| r.status == 200).filter_map(|r| r.duration()).map(secs).collect();
        latencies.sort_by(f64::total_cmp);
        Some(Measures {
            requests: log.len(),
            first,
            last_done,
            refusals: log.count_status(429),
            first_refusal: log.iter().find(|r| r.status == 429).map(|r| secs(r.arrived) - first),
            peak_1s: log.max_requests_in_window(Duration::from_secs(1)),
            held: held_served as f64 / window / rate,
            in_flight: log.max_in_flight(),
            latency: latencies.get(latencies.len() / 2).copied().unwrap_or(0.0),
            after_late: refusals_after_late(log),
        })
    }

    fn wall(&self) -> f64 {
        self.last_done - self.first
    }
}

/// The refusals of `log` that came right after a late arrival: of the three gaps before the
/// refused request (the usual one, then the late one's, then the refused one's), the late one's
/// is `LATE` or more longer than the usual one, the refused one's as much shorter, and the two
/// together within `LATE` of twice the usual one. nginx logs in milliseconds, hence the 1 µs.
fn refusals_after_late(log: &RequestLog) -> usize {
    let mut arrivals: Vec<(f64, u16)> = log.iter().map(|r| (r.arrived.as_secs_f64(), r.status)).collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let gaps: Vec<f64> = arrivals.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let near = LATE - 1e-6;
    (3..arrivals.len())
        .filter(|&i| arrivals[i].1 == 429)
        .filter(|&i| {
            let (usual, late, refused) = (gaps[i - 3], gaps[i - 2], gaps[i - 1]);
            late - usual >= near && usual - refused >= near && (late + refused - 2.0 * usual).abs() <= LATE + 1e-6
        })
        .count()
}

/// The nginx section: one run per rank count, each followed by its table and goals. Returns
/// the rank counts whose run did not complete.
pub(super) fn run(scale: f64, exe: &Path, root: &Path, timeout: Duration) -> anyhow::Result<Vec<usize>> {
    let nginx = install_nginx()?;
    let shapes: Vec<(NginxHost, usize)> = SHAPES
        .iter()
        .zip(1..)
        .map(|(&(rate, burst, nodelay, retry_after), octet)| {
            let [a, b, c] = ADDR_PREFIX;
            let host = NginxHost {
                addr: [a, b, c, octet].into(),
                rate,
                burst,
                nodelay,
                retry_after,
                tls: None,
                redirect_to: None,
            };
            (host, ((rate * FLOOR_SECS * scale).round() as usize).max(1))
        })
        .collect();
    eprintln!(
        "bench-politeness: nginx section, {} limit_req hosts, {} URLs, floor {:.1} s per run ({})",
        shapes.len(),
        shapes.iter().map(|s| s.1).sum::<usize>(),
        shapes.iter().map(|(h, n)| *n as f64 / h.rate).fold(0.0, f64::max),
        nginx.display()
    );
    let mut failed = Vec::new();
    for ranks in RANKS {
        let dir = root.join(format!("nginx-ranks-{ranks}"));
        match run_once(ranks, &shapes, exe, &nginx, &dir, timeout) {
            Ok((results, completed)) => {
                print(ranks, &results, completed, timeout);
                if !completed {
                    failed.push(ranks);
                }
            }
            Err(e) => {
                eprintln!("bench-politeness: the {ranks}-rank nginx run did not complete: {e:#}");
                failed.push(ranks);
            }
        }
    }
    Ok(failed)
}

/// `scripts/nginx.sh install` (idempotent, quick once installed): the nginx binary's path.
fn install_nginx() -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/nginx.sh");
    let out = Command::new(&script)
        .arg("install")
        .output()
        .with_context(|| format!("cannot run {} (the repository's script, found at build time)", script.display()))?;
    if !out.status.success() {
        bail!("{} install failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find_map(|l| l.strip_prefix("nginx=")) {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => bail!("{} install printed no nginx= line:\n{text}", script.display()),
    }
}

/// A fresh nginx, URL list, config and prep output in `dir`, one download on `ranks` ranks, and
/// what nginx logged; `false` if the download was stopped at `timeout`.
fn run_once(
    ranks: usize,
    shapes: &[(NginxHost, usize)],
    exe: &Path,
    nginx_bin: &Path,
    dir: &Path,
    timeout: Duration,
) -> anyhow::Result<(Vec<ShapeResult>, bool)> {
    crate::remove_scratch(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let hosts = shapes.iter().map(|(h, _)| h.clone()).collect();
    let mut nginx = Nginx::start_with(nginx_bin, hosts).context("cannot start nginx")?;
    let mut urls = Vec::new();
    for (i, (_, n)) in shapes.iter().enumerate() {
        urls.extend((0..*n).map(|k| nginx.url(i, &format!("/img/w64-h48-{k}.jpg"))));
    }
    let (config, out) = prepare(dir, &urls)?;
    let seen = || (0..nginx.len()).map(|i| nginx.log(i).len()).sum();
    let summary = download(exe, ranks, &config, &out, dir, &seen, timeout);
    nginx.stop();
    let logged = write_server_log(&dir.join("server-log.csv"), &nginx);
    let summary = summary?;
    logged?;

    let learned: BTreeMap<String, Option<f64>> =
        read_servers_table(&out)?.into_iter().map(|s| (s.server_name, s.learned_rate_limit)).collect();
    let ledger = ledger::scan(&out, ledger::RetryFailed::No)?;
    let mut results = Vec::new();
    for (i, (host, n)) in shapes.iter().enumerate() {
        let key = server_key(nginx.base_url(i))?;
        let log = nginx.log(i);
        results.push(ShapeResult {
            host: host.clone(),
            urls: *n,
            measures: Measures::of(&log, host.rate),
            learned: learned.get(&key).copied().flatten(),
            rows: Rows::of(&ledger, &key),
        });
    }
    Ok((results, summary.is_some()))
}

/// Writes every request nginx logged to `path` as CSV (seconds from nginx's start), for a closer
/// look than the table: kept with `--keep` or when a run fails.
fn write_server_log(path: &Path, nginx: &Nginx) -> anyhow::Result<()> {
    let mut csv = String::from("host,shape,arrived_s,completed_s,status,path\n");
    for i in 0..nginx.len() {
        for r in nginx.log(i).iter() {
            let completed = r.completed.map(|c| format!("{:.3}", c.as_secs_f64())).unwrap_or_default();
            let (addr, label, arrived) = (nginx.addr(i), nginx.host(i).label(), r.arrived.as_secs_f64());
            csv += &format!("{addr},{label},{arrived:.3},{completed},{},{}\n", r.status, r.path);
        }
    }
    std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))
}

/// Prints one run's table, whole-run line, goals and machine-readable line on stdout.
fn print(ranks: usize, results: &[ShapeResult], completed: bool, timeout: Duration) {
    println!();
    println!(
        "bench-politeness nginx: {ranks} rank(s), default settings but MAX_RATE_LIMIT={MAX_RATE_LIMIT}; \
         real nginx limit_req, what nginx logged:"
    );
    if !completed {
        println!("  TIMED OUT: the download was stopped after {} s; below is what nginx logged", timeout.as_secs());
    }
    println!(
        "  {:<22} {:>5} {:>7} {:>7} {:>6} {:>4} {:>6} {:>7} {:>6} {:>5} {:>9} {:>6} {:>7} {:>6}",
        "shape",
        "URLs",
        "floor s",
        "wall s",
        "ratio",
        "429",
        "share",
        "1st 429",
        "peak/s",
        "held",
        "in-flight",
        "lat ms",
        "learned",
        "stored"
    );
    let dash = || "-".to_string();
    for r in results {
        let m = r.measures.as_ref();
        println!(
            "  {:<22} {:>5} {:>7.1} {:>7} {:>6} {:>4} {:>6} {:>7} {:>6} {:>5} {:>9} {:>6} {:>7} {:>6}",
            r.host.label(),
            r.urls,
            r.floor(),
            m.map_or_else(dash, |m| format!("{:.1}", m.wall())),
            m.map_or_else(dash, |m| format!("{:.2}", m.wall() / r.floor())),
            m.map_or(0, |m| m.refusals),
            m.map_or_else(dash, |m| format!("{:.1}%", 100.0 * m.refusals as f64 / m.requests as f64)),
            m.and_then(|m| m.first_refusal).map_or_else(dash, |t| format!("{t:.1}")),
            m.map_or(0, |m| m.peak_1s),
            m.map_or_else(dash, |m| format!("{:.2}", m.held)),
            m.map_or(0, |m| m.in_flight),
            m.map_or_else(dash, |m| format!("{:.0}", 1000.0 * m.latency)),
            r.learned.map_or_else(dash, |v| format!("{v:.2}")),
            r.rows.stored,
        );
    }
    let measured: Vec<&Measures> = results.iter().filter_map(|r| r.measures.as_ref()).collect();
    let start = measured.iter().map(|m| m.first).fold(f64::INFINITY, f64::min);
    let wall = measured.iter().map(|m| m.last_done).fold(start, f64::max) - start;
    let wall = if measured.is_empty() { 0.0 } else { wall };
    let floor = results.iter().map(ShapeResult::floor).fold(0.0, f64::max);
    let requests: usize = measured.iter().map(|m| m.requests).sum();
    let refusals: usize = measured.iter().map(|m| m.refusals).sum();
    let share = refusals as f64 / requests.max(1) as f64;
    let stored: u64 = results.iter().map(|r| r.rows.stored).sum();
    let failed: u64 = results.iter().map(|r| r.rows.failed).sum();
    let rows: u64 = results.iter().map(|r| r.urls as u64).sum();
    println!(
        "  whole run: wall {wall:.1} s, slowest floor {floor:.1} s, ratio {:.2}, {refusals} refusals \
         ({:.2}% of {requests} requests), {stored} rows stored, {failed} failed, {} not done",
        wall / floor,
        100.0 * share,
        rows.saturating_sub(stored + failed)
    );
    let goals = goals(results, completed, wall, floor, share);
    println!("  goals (issue 29):");
    for (id, what, pass, detail) in &goals {
        println!("    {id} {}  {what}: {detail}", if *pass { "PASS" } else { "MISS" });
    }
    println!(
        "bench-politeness nginx: ranks={ranks} wall_s={wall:.1} floor_s={floor:.1} ratio={:.2} refusals={refusals} \
         refused_share={share:.4} stored={stored} failed={failed} completed={completed} goals_passed={}/{}",
        wall / floor,
        goals.iter().filter(|g| g.2).count(),
        goals.len()
    );
}

/// Issue 29's goals, as the module docs define them: (id, what, pass, detail).
fn goals(
    results: &[ShapeResult],
    completed: bool,
    wall: f64,
    floor: f64,
    share: f64,
) -> Vec<(&'static str, &'static str, bool, String)> {
    let refusals = |r: &ShapeResult| r.measures.as_ref().map_or(0, |m| m.refusals);
    let held = |r: &ShapeResult| r.measures.as_ref().map_or(0.0, |m| m.held);
    let after_late = |r: &ShapeResult| r.measures.as_ref().map_or(0, |m| m.after_late);
    let list = |f: &dyn Fn(&ShapeResult) -> String| results.iter().map(f).collect::<Vec<_>>().join(", ");
    let delay: Vec<&ShapeResult> = results.iter().filter(|r| !r.host.nodelay).collect();
    let in_flight = |r: &ShapeResult| r.measures.as_ref().map_or(0, |m| m.in_flight);
    vec![
        (
            "(f)",
            "<= 2 refusals per host, <= 1% of requests refused",
            results.iter().all(|r| refusals(r) <= MAX_REFUSALS_PER_HOST) && share <= MAX_REFUSED_SHARE,
            format!(
                "429s: {}; {:.2}% of all requests; right after a late arrival: {}",
                list(&|r| refusals(r).to_string()),
                100.0 * share,
                match results
                    .iter()
                    .filter(|r| after_late(r) > 0)
                    .map(|r| format!("{} {}", r.host.label(), after_late(r)))
                    .collect::<Vec<_>>()
                {
                    late if late.is_empty() => "none".to_string(),
                    late => late.join(", "),
                }
            ),
        ),
        (
            "(g)",
            "whole run <= 1.1 x the slowest host's floor",
            completed && wall <= FLOOR_SLACK * floor,
            match completed {
                true => format!("{wall:.1} s against {:.1} s", FLOOR_SLACK * floor),
                false => "unfinished when stopped".to_string(),
            },
        ),
        (
            "(h)",
            "held rate >= 90% of the limit on every shape",
            results.iter().all(|r| held(r) >= HELD_SHARE),
            format!("held: {}", list(&|r| format!("{:.2}", held(r)))),
        ),
        (
            "(i)",
            "delay mode: nginx's queue <= the in-flight cap",
            delay.iter().all(|r| in_flight(r) <= DEFAULT_MAX_IN_FLIGHT as usize),
            format!(
                "most held at once: {} (cap {DEFAULT_MAX_IN_FLIGHT})",
                delay.iter().map(|r| format!("{} {}", r.host.label(), in_flight(r))).collect::<Vec<_>>().join(", ")
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_origin::RequestRecord;

    fn log(requests: &[(f64, f64, u16)]) -> RequestLog {
        RequestLog::new(
            requests
                .iter()
                .map(|&(arrived, took, status)| RequestRecord {
                    method: "GET".into(),
                    path: "/".into(),
                    arrived: Duration::from_secs_f64(arrived),
                    completed: Some(Duration::from_secs_f64(arrived + took)),
                    status,
                    user_agent: None,
                    if_none_match: None,
                    if_modified_since: None,
                    bytes_sent: 0,
                    content_length: 0,
                    connection: 1,
                })
                .collect(),
        )
    }

    #[test]
    fn a_host_served_at_nine_tenths_of_its_limit_holds_0_9_and_its_queue_is_counted() {
        // 2 req/s allowed, served at 1.8/s for 40 s after one refusal at 3 s; each 200 held 0.5 s.
        let mut requests: Vec<(f64, f64, u16)> = (0..72).map(|i| (5.0 + i as f64 / 1.8, 0.5, 200)).collect();
        requests.push((3.0, 0.0, 429));
        let m = Measures::of(&log(&requests), 2.0).unwrap();
        assert_eq!((m.requests, m.refusals, m.first, m.first_refusal), (73, 1, 3.0, Some(0.0)));
        assert!((m.held - 0.9).abs() < 0.03, "{}", m.held);
        assert_eq!(m.in_flight, 1, "0.5 s each at 0.56 s spacing never overlap");
        assert!((m.latency - 0.5).abs() < 1e-6);
        assert!((m.wall() - (5.0 + 71.0 / 1.8 + 0.5 - 3.0)).abs() < 1e-6);
        assert_eq!(Measures::of(&RequestLog::default(), 2.0), None);
    }

    #[test]
    fn a_refusal_right_after_a_late_arrival_is_named_and_a_ramps_or_a_pauses_is_not() {
        // A spacing limit of 125 ms held at 131 ms: the ramp is refused at 0.9 s, a test after a
        // 1.57 s pause is refused 124 ms after its first request, then 50 s of hold in which one
        // request arrives 15 ms late and the next, on time, is refused 116 ms after it.
        let mut requests: Vec<(f64, f64, u16)> = vec![(0.0, 0.0, 200), (0.5, 0.0, 200), (0.75, 0.0, 200)];
        requests.push((0.9, 0.0, 429));
        requests.push((2.47, 0.0, 200));
        requests.push((2.594, 0.0, 429));
        let mut t = 3.594;
        for i in 0..380 {
            let late = if i == 200 { 0.015 } else { 0.0 };
            let refused = i == 201;
            requests.push((t + late, 0.0, if refused { 429 } else { 200 }));
            t += 0.131;
        }
        let m = Measures::of(&log(&requests), 8.0).unwrap();
        assert_eq!((m.refusals, m.after_late), (3, 1));
        // The same log without that refusal: nothing is named.
        requests.retain(|r| r.2 == 200 || r.0 < 10.0);
        let m = Measures::of(&log(&requests), 8.0).unwrap();
        assert_eq!((m.refusals, m.after_late), (2, 0));
    }
}
