//! The I/O of `profile`: which servers this rank profiles, asking each for robots.txt and a few
//! sample images, writing each server's result, and, on rank 0, merging every rank's results
//! into `servers.parquet`.
//!
//! Politeness is the same as a download's first seconds: one request at a time per server,
//! starts at least [`MIN_SPACING`](super::samples::MIN_SPACING) (or the Crawl-delay) apart,
//! robots.txt included, with the download's User-Agent, client and limits. Servers run
//! concurrently, at most `MAX_REQUESTS_IN_FLIGHT` of them at once, so that is also the most
//! requests in flight on a rank. What the samples mean is decided in `samples.rs` and
//! `rule.rs`; this file only sends, times and writes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::result::{self, Counts, ProfileResult};
use super::rule::{self, Limits};
use super::samples::{self, Answer, Sample, MIN_SPACING};
use crate::config::Settings;
use crate::fetch::budget::BodyBudget;
use crate::fetch::client::{build_client, fetch, FetchFailure, HttpSettings};
use crate::host::outcome::{ErrorClass, Outcome, TransportKind};
use crate::mpi_glue::world::World;
use crate::overrides::Overrides;
use crate::robots::cache::{self, Cached, CachedRobots};
use crate::robots::gate::{verdict, Verdict};
use crate::robots::{robots_url, url_path, Robots, RobotsPolicy};
use crate::store::batches::read_batch_window;
use crate::store::tables::ServerInfo;

/// Rows of a server's first batch read to find its samples, per sample wanted: enough to find
/// allowed URLs when robots.txt disallows some of them, little enough to read at once.
const ROWS_PER_SAMPLE: usize = 4;

/// Resolved options of one `profile` run.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub out: PathBuf,
    pub settings: Settings,
    pub contact: String,
    /// Profile servers again even when they have a profile.
    pub force: bool,
    /// When the command started: a robots.txt answer cached since is this run's own.
    pub run_started: SystemTime,
}

/// What rank 0 reports once every rank is done.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub counts: Counts,
    /// Every profile of a server in the table, this run's and kept ones, as merged.
    pub results: Vec<ProfileResult>,
    /// Profile files that could not be read back.
    pub warnings: Vec<String>,
    /// Ranks whose run failed as a whole, with why.
    pub rank_errors: Vec<String>,
}

/// What each rank sends rank 0.
#[derive(Debug, Serialize, Deserialize)]
enum RankOutcome {
    Done(Counts),
    Failed(String),
}

/// Profiles this rank's share of `servers` (every rank calls it). Rank 0 then merges every
/// profile into `servers.parquet` and returns the report; other ranks return `None`, or the
/// error that stopped them (which rank 0 reports too).
pub fn run(
    world: &World,
    opts: &ProfileOptions,
    servers: &[ServerInfo],
    overrides: &Overrides,
) -> anyhow::Result<Option<Report>> {
    let mine = run_rank(opts, servers, overrides, world.rank(), world.size());
    let message = match &mine {
        Ok(counts) => RankOutcome::Done(counts.clone()),
        Err(e) => RankOutcome::Failed(format!("rank {}: {e:#}", world.rank())),
    };
    // Rank 0 receives from every rank, so once it has them all, every rank's files are
    // written: the gather is the barrier before the merge. A rank that failed still sends.
    let gathered = world.gather(serde_json::to_vec(&message).expect("a rank outcome serialises"));
    let Some(all) = gathered else {
        return mine.map(|_| None);
    };
    let mut report = Report::default();
    for bytes in all {
        match serde_json::from_slice::<RankOutcome>(&bytes) {
            Ok(RankOutcome::Done(c)) => report.counts.add(c),
            Ok(RankOutcome::Failed(why)) => report.rank_errors.push(why),
            Err(e) => report.rank_errors.push(format!("a rank sent an unreadable report: {e}")),
        }
    }
    let names = servers.iter().map(|s| s.server_name.as_str()).collect();
    let (results, warnings) = result::read_all(&opts.out, &names)?;
    result::merge(&opts.out, &results)?;
    report.results = results;
    report.warnings = warnings;
    Ok(Some(report))
}

/// Profiles the servers at positions `rank`, `rank + ranks`, … of the table, skipping excluded
/// servers and (unless `force`) servers already profiled.
pub fn run_rank(
    opts: &ProfileOptions,
    servers: &[ServerInfo],
    overrides: &Overrides,
    rank: usize,
    ranks: usize,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut todo = Vec::new();
    for s in servers.iter().skip(rank).step_by(ranks.max(1)) {
        let name = s.server_name.clone();
        if overrides.excluded(&name) {
            counts.excluded.push(name);
        } else if !opts.force && result::read(&opts.out, &name).is_some() {
            counts.kept.push(name);
        } else {
            todo.push(s.clone());
        }
    }
    if todo.is_empty() {
        return Ok(counts);
    }
    // One thread is plenty: every server waits on the network or its spacing nearly always.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime for the requests")?;
    runtime.block_on(profile_all(opts, todo, &mut counts))?;
    Ok(counts)
}

/// What every server's task shares.
struct Shared {
    opts: ProfileOptions,
    client: reqwest::Client,
    http: HttpSettings,
    budget: BodyBudget,
    limits: Limits,
}

async fn profile_all(opts: &ProfileOptions, todo: Vec<ServerInfo>, counts: &mut Counts) -> anyhow::Result<()> {
    let http = opts.settings.http(&opts.contact);
    let client = build_client(&http).context("cannot build the HTTP client")?;
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        client,
        http,
        // Bodies are dropped as soon as they are read; the budget still bounds how many large
        // ones are held at once, exactly as in a download.
        budget: BodyBudget::new(opts.settings.cpu_queue_bytes),
        limits: Limits::from_settings(&opts.settings),
    });
    let at_once = opts.settings.max_requests_in_flight.max(1);
    let mut waiting = todo.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < at_once {
            let Some(server) = waiting.next() else { break };
            let shared = Arc::clone(&shared);
            running.spawn(async move {
                let name = server.server_name.clone();
                (name, profile_server(&shared, &server).await)
            });
        }
        let Some(joined) = running.join_next().await else { break };
        let (server, outcome) = joined.map_err(|e| anyhow!("a profile task stopped: {e}"))?;
        match outcome {
            Ok(r) => {
                eprintln!("{}", r.line());
                counts.profiled.push(server);
            }
            Err(e) => {
                eprintln!("profile: {server}: {e:#}");
                counts.failed.push(format!("{server}: {e:#}"));
            }
        }
    }
    Ok(())
}

/// Keeps one server's requests `spacing` apart, start to start.
struct Pacer {
    last: Option<Instant>,
    spacing: Duration,
}

impl Pacer {
    /// When the next request may start: at once for the first, else `spacing` after the last
    /// one started.
    fn due(&self) -> Option<Instant> {
        self.last.map(|last| last + self.spacing)
    }

    /// Waits until the next request may start, and notes that it starts now.
    async fn next(&mut self) {
        if let Some(at) = self.due() {
            tokio::time::sleep_until(at.into()).await;
        }
        self.last = Some(Instant::now());
    }
}

/// What robots.txt said for one server.
struct RobotsAnswer {
    /// The rules to obey; `None` when there are none to check (`ROBOTS=ignore`, not asked).
    rules: Option<Robots>,
    status: String,
    /// Whether samples may be sent (robots.txt did not say "not now").
    go: bool,
    notes: Vec<String>,
}

/// One server's profile: robots.txt, the samples, the start rate; written to its file.
async fn profile_server(shared: &Shared, server: &ServerInfo) -> anyhow::Result<ProfileResult> {
    let opts = &shared.opts;
    let name = server.server_name.clone();
    let wanted = opts.settings.profile_samples as usize;
    let rows = if server.batch_count == 0 {
        Vec::new()
    } else {
        let (out, host) = (opts.out.clone(), name.clone());
        tokio::task::spawn_blocking(move || read_batch_window(&out, &host, 0, 0, wanted * ROWS_PER_SAMPLE))
            .await
            .context("reading the first batch stopped")?
            .with_context(|| format!("cannot read the first batch of {name}"))?
    };
    let mut pacer = Pacer { last: None, spacing: MIN_SPACING };
    let robots = ask_robots(shared, &name, rows.first().map(|r| r.url.as_str()), &mut pacer).await;
    let crawl_delay = robots.rules.as_ref().and_then(Robots::crawl_delay);
    pacer.spacing = samples::spacing(crawl_delay);
    let mut notes = robots.notes;

    let mut sent = Vec::new();
    if robots.go {
        let allowed: Vec<&str> = rows
            .iter()
            .map(|r| r.url.as_str())
            .filter(|u| robots.rules.as_ref().is_none_or(|rules| url_path(u).is_none_or(|p| rules.allows(&p))))
            .take(wanted)
            .collect();
        if allowed.is_empty() && !rows.is_empty() {
            notes.push(format!("robots.txt disallows the first {} URLs: no sample sent", rows.len()));
        }
        for url in allowed {
            pacer.next().await;
            let sample = send_sample(shared, url).await;
            let stop = sample.ends_sampling();
            sent.push(sample);
            if stop {
                break;
            }
        }
    }

    let evidence = samples::evidence(&sent, pacer.spacing, crawl_delay);
    let start = rule::start_rate(&evidence, &shared.limits);
    notes.extend(samples::notes(&sent));
    notes.extend(start.notes);
    let result = ProfileResult {
        server: name.clone(),
        profiled_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        robots_status: robots.status,
        crawl_delay,
        samples_sent: sent.len() as u32,
        statuses: sent.iter().map(Sample::label).collect(),
        latency_ms_median: samples::median_ms(&sent).map(|ms| (ms * 10.0).round() / 10.0),
        start_rate: start.rate,
        notes,
    };
    let (out, kept) = (opts.out.clone(), result.clone());
    tokio::task::spawn_blocking(move || result::write(&out, &kept)).await.context("writing the profile stopped")??;
    Ok(result)
}

/// One sample request, timed from its start to the end of its body (which is dropped).
async fn send_sample(shared: &Shared, url: &str) -> Sample {
    let sent = Instant::now();
    let answer = match fetch(&shared.client, url, &shared.http, &shared.budget).await {
        Ok(f) => Answer::Status { status: f.status, retry_after: f.retry_after.is_some() },
        Err(FetchFailure::Transport { kind, .. }) => {
            Answer::Failed(Outcome::Transport(kind).class().unwrap_or(ErrorClass::Other))
        }
        Err(FetchFailure::TooLarge { .. }) => Answer::Failed(ErrorClass::TooLarge),
    };
    Sample { answer, elapsed: sent.elapsed() }
}

/// robots.txt for `server`: a usable cached answer, else one request (the first of the
/// server's requests, so `pacer` counts it). A definitive answer is cached exactly as a
/// download caches it, so the download that follows does not ask again.
async fn ask_robots(shared: &Shared, server: &str, first_url: Option<&str>, pacer: &mut Pacer) -> RobotsAnswer {
    let opts = &shared.opts;
    let answer = |rules, status: &str| RobotsAnswer { rules, status: status.to_string(), go: true, notes: Vec::new() };
    if opts.settings.robots == RobotsPolicy::Ignore {
        return answer(None, "ignored");
    }
    if let Some(entry) = cache::read(&opts.out, server) {
        if let Some(Cached::Rules(rules)) =
            entry.usable(opts.run_started, SystemTime::now(), opts.settings.robots_cache)
        {
            let status = entry.status.map(|s| s.to_string()).unwrap_or_else(|| "kept".into());
            return answer(Some(rules), &status);
        }
    }
    let Some(url) = first_url.and_then(robots_url) else {
        // No URL to find the server by (an empty batch): there is nothing to sample either.
        return answer(None, "not asked (no usable URL)");
    };
    pacer.next().await;
    let (outcome, body, detail) = match fetch(&shared.client, &url, &shared.http, &shared.budget).await {
        Ok(f) => (Outcome::Status(f.status), f.body, format!("HTTP {}", f.status)),
        Err(FetchFailure::Transport { kind, detail }) => (Outcome::Transport(kind), Vec::new(), detail),
        // Larger than MAX_BODY_MB: no rules a crawler could read, so none (as the download does).
        Err(FetchFailure::TooLarge { .. }) => (Outcome::Status(200), Vec::new(), "too large to read".into()),
    };
    let status = match outcome {
        Outcome::Status(s) => Some(s),
        Outcome::Transport(_) => None,
    };
    match verdict(&outcome, &body) {
        Verdict::Rules(rules) => {
            let entry = CachedRobots::answered(&url, status, &body, &detail);
            let (out, host) = (opts.out.clone(), server.to_string());
            let written = tokio::task::spawn_blocking(move || cache::write(&out, &host, &entry)).await;
            if let Ok(Err(e)) | Err(e) = written.map_err(anyhow::Error::from) {
                eprintln!("profile: {server}: cannot keep its robots.txt answer: {e:#}; the download asks again");
            }
            let shown = match (status, outcome) {
                (Some(s), _) => s.to_string(),
                (None, Outcome::Transport(TransportKind::TooManyRedirects)) => "redirect loop".into(),
                (None, _) => format!("unavailable ({detail})"),
            };
            answer(Some(rules), &shown)
        }
        Verdict::NotNow => {
            let (shown, said) = match outcome {
                Outcome::Status(s) => (s.to_string(), format!("robots.txt answered {s}")),
                Outcome::Transport(kind) => {
                    let class = Outcome::Transport(kind).class().unwrap_or(ErrorClass::Other);
                    (format!("unreachable ({})", last_cause(&detail)), format!("robots.txt unreachable ({class})"))
                }
            };
            let mut notes = Vec::new();
            match outcome {
                Outcome::Transport(TransportKind::Dns) => notes.push("DNS fails".to_string()),
                Outcome::Transport(TransportKind::NoSuchName) => notes.push("the name does not exist".to_string()),
                _ => {}
            }
            notes.push(format!("{said}: download will wait for it"));
            RobotsAnswer { rules: None, status: shown, go: false, notes }
        }
    }
}

/// The innermost cause of a transport failure's detail (`tcp connect error: connection
/// refused (os error 111)` ends as `connection refused (os error 111)`): short enough for a
/// table cell, still saying what happened.
fn last_cause(detail: &str) -> &str {
    detail.rsplit(": ").map(str::trim).find(|s| !s.is_empty()).unwrap_or(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_failure_is_shown_by_its_innermost_cause() {
        let chain = "error sending request for url (http://a.org/robots.txt): client error (connect): \
                     tcp connect error: connection refused (os error 111)";
        assert_eq!(last_cause(chain), "connection refused (os error 111)");
        assert_eq!(last_cause("no response head within 30 s"), "no response head within 30 s");
        assert_eq!(last_cause(""), "");
    }

    #[test]
    fn requests_of_one_server_start_a_spacing_apart() {
        let mut pacer = Pacer { last: None, spacing: Duration::from_secs(2) };
        assert_eq!(pacer.due(), None, "the first goes at once");
        let t0 = Instant::now();
        pacer.last = Some(t0);
        assert_eq!(pacer.due(), Some(t0 + Duration::from_secs(2)));
        pacer.spacing = samples::spacing(Some(3.0));
        assert_eq!(pacer.due(), Some(t0 + Duration::from_secs(3)), "a Crawl-delay learned later applies at once");
    }
}
