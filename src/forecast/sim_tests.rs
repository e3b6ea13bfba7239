//! Tests of the simulated run: small jobs whose answer is known by hand, and the GBIF-shaped job
//! against its floors.

use std::time::{Duration, Instant};

use super::*;
use crate::forecast::gbif_like;
use crate::forecast::params::{resolve, Flags};
use crate::forecast::scale::{forecast, knee};

fn host(name: &str, batches: &[u64], rate: f64) -> HostWork {
    HostWork {
        host: name.into(),
        batches: batches.iter().enumerate().map(|(p, n)| (p as u64, *n)).collect(),
        rate,
        in_flight: 2,
    }
}

fn cfg(ranks: usize, rank_images_per_sec: f64) -> SimConfig {
    SimConfig {
        ranks,
        rank_images_per_sec,
        max_shares: 2,
        rule: RoundRule::new(Duration::from_secs(300), Duration::from_secs(1800)),
        request_timeout: 600.0,
    }
}

/// 30 images/s per core × 4 cores: `IMAGES_PER_SEC_PER_CORE` on a default Slurm rank.
const RANK: f64 = 120.0;

#[test]
fn a_host_drains_at_its_rate_and_a_busy_rank_at_its_cpus() {
    // One host, 1000 rows at 2 req/s on a roomy rank: 500 s, one round, no drain.
    let run = simulate(&[host("a", &[1000], 2.0)], &cfg(1, RANK), Mode::Rounds).unwrap();
    assert!((run.wall_secs - 500.0).abs() < 1e-6, "{run:?}");
    assert_eq!((run.rounds, run.drain_secs), (1, 0.0));
    // Three hosts at 10 req/s on one rank of 12 images/s: the CPUs bind, 3000 rows take 250 s.
    let hosts = [host("a", &[1000], 10.0), host("b", &[1000], 10.0), host("c", &[1000], 10.0)];
    let run = simulate(&hosts, &cfg(1, 12.0), Mode::Rounds).unwrap();
    assert!((run.wall_secs - 250.0).abs() < 1e-6, "{run:?}");
    // A slow host keeps its rate; the CPUs it leaves go to the fast one: b (10 req/s, 1000
    // rows) gets 10 of 11 images/s, a gets 1; b ends at 100 s, a at 1000 s.
    let hosts = [host("a", &[1000], 1.0), host("b", &[1000], 10.0)];
    let run = simulate(&hosts, &cfg(1, 11.0), Mode::Rounds).unwrap();
    assert!((run.wall_secs - 1000.0).abs() < 1e-6, "{run:?}");
}

#[test]
fn rounds_move_work_to_idle_ranks_and_pay_a_drain_for_it() {
    // The planner splits `a` (10 req/s over ranks of 5 images/s) in two shares of alternate
    // batches and takes them for equal; they are not: one holds 3000 rows, the other 3. The
    // rank of the short share idles at once; the other holds `b` too, so work can move, and
    // after MIN_ROUND_SECS the round ends and `a`'s batches left are split again.
    let hosts = [host("a", &[1000, 1, 1000, 1, 1000, 1], 10.0), host("b", &[10], 1.0)];
    let c = SimConfig { rule: RoundRule::new(Duration::from_secs(60), Duration::from_secs(600)), ..cfg(2, 5.0) };
    let fixed = simulate(&hosts, &c, Mode::Static).unwrap();
    let rounds = simulate(&hosts, &c, Mode::Rounds).unwrap();
    assert_eq!(fixed.rounds, 1);
    assert!(rounds.rounds >= 2, "an idle rank and a rank with two shares end the round: {rounds:?}");
    // By hand: static, the long share runs at 4 images/s while b takes 1, then at 5: 602 s.
    assert!((fixed.wall_secs - 602.0).abs() < 1e-6, "{fixed:?}");
    assert!(rounds.drain_secs >= RESTART_SECS, "{rounds:?}");
    assert!(rounds.wall_secs < fixed.wall_secs, "rounds {rounds:?}, static {fixed:?}");
    let f = floors(&hosts, &c);
    assert!(rounds.wall_secs >= f.max() - 1e-6, "never below the floors: {rounds:?} {f:?}");
}

#[test]
fn a_split_host_still_needs_remaining_over_rate() {
    // 40 req/s over ranks of 10 images/s: split in at most 2 shares (MAX_IN_FLIGHT_PER_HOST),
    // so the host runs at 20/s, and its floor says so.
    let hosts = [host("cdn", &[1000, 1000, 1000, 1000], 40.0)];
    let f = floors(&hosts, &cfg(4, 10.0));
    assert!((f.politeness_secs - 200.0).abs() < 1e-9, "{f:?}");
    let run = simulate(&hosts, &cfg(4, 10.0), Mode::Rounds).unwrap();
    assert!((run.wall_secs - 200.0).abs() < 1e-6, "{run:?}");
    // With CPUs to spare the host is served at 40/s, in however many shares.
    let f = floors(&hosts, &cfg(4, 100.0));
    assert!((f.politeness_secs - 100.0).abs() < 1e-9, "{f:?}");
}

#[test]
fn nonsense_is_refused_with_a_reason_not_a_panic() {
    let ok = [host("a", &[10], 1.0)];
    let msg = |e: ForecastError| e.to_string();
    assert!(msg(simulate(&[], &cfg(1, RANK), Mode::Rounds).unwrap_err()).contains("empty"));
    assert!(msg(simulate(&ok, &cfg(0, RANK), Mode::Rounds).unwrap_err()).contains("no rank"));
    for bad in [0.0, -3.0, f64::NAN] {
        let e = simulate(&ok, &cfg(1, bad), Mode::Rounds).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
        let e = simulate(&[host("slow", &[10], bad)], &cfg(1, RANK), Mode::Rounds).unwrap_err();
        assert!(e.to_string().contains("server slow"), "{e}");
    }
    // A finished job is no error: nothing remains, nothing to wait for.
    let run = simulate(&[host("done", &[0], 0.0)], &cfg(1, RANK), Mode::Rounds).unwrap();
    assert_eq!((run.wall_secs, run.rounds), (0.0, 0));
}

/// The GBIF-shaped job with the default config.
fn gbif_params(nodes: u32) -> crate::forecast::scale::Params {
    let settings = crate::config::RawConfig { origin: "defaults".into(), ..Default::default() }.validate().unwrap();
    resolve(&settings, Flags { nodes: Some(nodes), ..Flags::default() }).unwrap()
}

#[test]
fn on_a_gbif_shaped_job_the_rounds_stay_within_5_percent_of_the_floors() {
    let hosts = gbif_like::hosts(2);
    for ranks in [8usize, 64, 256] {
        let c = SimConfig { ranks, ..cfg(ranks, RANK) };
        let started = Instant::now();
        let run = simulate(&hosts, &c, Mode::Rounds).unwrap();
        let fixed = simulate(&hosts, &c, Mode::Static).unwrap();
        let f = floors(&hosts, &c);
        let ratio = run.wall_secs / f.max();
        println!(
            "{ranks} ranks: {:.0} s in {} rounds ({:.0} s drained), static {:.0} s, floors polite {:.0} s / CPU {:.0} s: \
             ratio {ratio:.4}, static ratio {:.4}; simulated in {:.2?}",
            run.wall_secs,
            run.rounds,
            run.drain_secs,
            fixed.wall_secs,
            f.politeness_secs,
            f.cpu_secs,
            fixed.wall_secs / f.max(),
            started.elapsed()
        );
        assert!(ratio >= 1.0 - 1e-9, "below a floor at {ranks} ranks: {ratio}");
        assert!(ratio <= 1.05, "{ranks} ranks: {ratio:.4} × the floors");
        // Rounds cost their drains: when the first plan is already as good as it gets (the
        // largest host alone on its rank from the start), the static split wins by just that.
        assert!(
            fixed.wall_secs >= run.wall_secs - run.drain_secs - 1e-6,
            "{ranks} ranks: static {fixed:?} beat rounds {run:?} by more than their drains"
        );
    }
}

/// With GBIF's rates of 1–20 requests/s the largest server alone sets the job from 4 ranks on,
/// so the test above barely asks the planner anything. With CDN-like rates (10×: 10–200
/// requests/s) the CPUs bind on few ranks, the largest hosts are split, and rounds must spread
/// the work well for the run to stay near its floors.
///
/// Measured: 1.27× the floors on 8 ranks, 1.0003× on 64 and 256. The 8-rank gap is real, not
/// slack in the test: a rank's CPUs are shared fairly among its hosts (rank-wide slots wake
/// waiting hosts in turn), so the shares of the largest host run below their rate while the
/// small hosts on the same rank are busy, and nothing gives the longest share priority; the
/// planner's estimate (longest share at full rate, or all work over the CPUs) assumes it does.
/// With longest-first CPU priority the same run comes to 1.0006×. The bound on 8 ranks records
/// today's figure so that a change for better or worse is seen.
#[test]
fn with_cdn_rates_the_cpus_bind_and_the_rounds_still_stay_near_the_floors() {
    let hosts: Vec<HostWork> = gbif_like::hosts(2).into_iter().map(|h| HostWork { rate: h.rate * 10.0, ..h }).collect();
    for (ranks, bound) in [(8usize, 1.30), (64, 1.05), (256, 1.05)] {
        let c = SimConfig { ranks, ..cfg(ranks, RANK) };
        let run = simulate(&hosts, &c, Mode::Rounds).unwrap();
        let fixed = simulate(&hosts, &c, Mode::Static).unwrap();
        let f = floors(&hosts, &c);
        let ratio = run.wall_secs / f.max();
        println!(
            "CDN rates, {ranks} ranks: {:.0} s in {} rounds ({:.0} s drained), static {:.0} s, floors polite {:.0} s \
             / CPU {:.0} s: ratio {ratio:.4}, static ratio {:.4}",
            run.wall_secs,
            run.rounds,
            run.drain_secs,
            fixed.wall_secs,
            f.politeness_secs,
            f.cpu_secs,
            fixed.wall_secs / f.max()
        );
        assert!(ratio >= 1.0 - 1e-9, "below a floor at {ranks} ranks: {ratio}");
        assert!(ratio <= bound, "{ranks} ranks: {ratio:.4} × the floors");
        assert!(fixed.wall_secs >= run.wall_secs - run.drain_secs - 1e-6, "{ranks} ranks: {fixed:?} {run:?}");
    }
}

#[test]
fn the_node_table_has_its_knee_where_the_politeness_floor_takes_over() {
    let hosts = gbif_like::hosts(2);
    let started = Instant::now();
    let fc = forecast("GBIF-like", &hosts, Vec::new(), 0, &gbif_params(8)).unwrap();
    println!("forecast of the GBIF-like job over 8 nodes in {:.2?}", started.elapsed());
    let k = fc.knee_nodes.expect("the politeness floor takes over within 32 nodes");
    assert_eq!(knee(&fc.nodes_table), Some(k));
    let floor = fc.politeness_floor_secs;
    for row in fc.nodes_table.iter().filter(|r| r.nodes >= k) {
        assert!(
            row.wall_secs <= floor * 1.05,
            "{} nodes: {:.0} s against the floor {floor:.0} s",
            row.nodes,
            row.wall_secs
        );
    }
    // Before the knee the CPUs bind: the count before it is well above the floor.
    if let Some(before) = fc.nodes_table.iter().rev().find(|r| r.nodes < k) {
        assert!(before.wall_secs > floor * 1.05, "{before:?} is not short of the floor");
    }
    assert_eq!(fc.nodes_table.iter().filter(|r| r.requested).count(), 1);
    assert!(fc.static_secs >= fc.estimated_secs - fc.drain_secs - 1e-6, "{fc:?}");
    assert_eq!(fc.tail[0].host, "server000.example.org", "the largest server sets the tail");
}

/// `cargo test -p distributed-downloader --lib forecast -- --ignored --nocapture` prints what
/// `plan --gbif-like --nodes 8` prints.
#[test]
#[ignore]
fn print_the_gbif_like_forecast() {
    let fc = forecast("GBIF-like list", &gbif_like::hosts(2), Vec::new(), 0, &gbif_params(8)).unwrap();
    println!("{fc}");
}
