//! The rank-0 planner: which rank owns which host, as a pure function of the remaining work.
//!
//! A rank downloads all its hosts at once, so its time is the longest of its hosts' times
//! (remaining / rate) unless its CPUs bind first (total remaining / images-per-second a rank can
//! process). Hosts are placed longest-first on the rank whose estimate grows least (LPT). A host
//! whose allowed rate is more than one rank can process is split into k shares on k distinct
//! ranks, each with rate/k and a disjoint part of the host's batches, so the host's total rate is
//! never exceeded whatever the number of ranks.

use serde::{Deserialize, Serialize};

/// One host's remaining work, as reported to rank 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLoad {
    pub host: String,
    /// Batches with rows not yet committed.
    pub partitions: Vec<u64>,
    /// Rows not yet committed.
    pub remaining: u64,
    /// Requests per second the host allows (learned, or the configured ceiling).
    pub rate: f64,
}

/// One share of a host on one rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub host: String,
    pub rank: usize,
    /// Into how many shares the host is split (1 = not split).
    pub shares: u32,
    /// The batches this share downloads.
    pub partitions: Vec<u64>,
    /// The share's rate: the host's rate divided by `shares`.
    pub rate: f64,
    /// Estimated seconds for this share.
    pub estimated_seconds: f64,
}

/// The plan of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub round: u32,
    pub ranks: usize,
    pub assignments: Vec<Share>,
    /// Estimated seconds of work per rank.
    pub estimated_seconds: Vec<f64>,
}

impl Plan {
    /// The shares rank `rank` owns.
    pub fn for_rank(&self, rank: usize) -> impl Iterator<Item = &Share> {
        self.assignments.iter().filter(move |s| s.rank == rank)
    }
}

/// What bounds a rank and a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Images per second one rank's CPUs can process.
    pub rank_images_per_sec: f64,
    /// Most shares a host is split into; the per-host in-flight cap bounds it, since each share
    /// sends at least one request at a time.
    pub max_shares: u32,
}

fn rank_estimate(shares: &[&Share], capacity: f64) -> f64 {
    let longest = shares.iter().map(|s| s.estimated_seconds).fold(0.0, f64::max);
    let total: f64 = shares.iter().map(|s| s.estimated_seconds * s.rate).sum();
    longest.max(total / capacity.max(1e-9))
}

/// Computes the plan for `round` over `ranks` ranks.
pub fn plan(round: u32, loads: &[HostLoad], ranks: usize, limits: Limits) -> Plan {
    let ranks = ranks.max(1);
    let mut shares: Vec<Share> = Vec::new();
    for load in loads.iter().filter(|l| l.remaining > 0 && !l.partitions.is_empty()) {
        let rate = load.rate.max(1e-6);
        let wanted = (rate / limits.rank_images_per_sec.max(1e-9)).ceil() as usize;
        let k = wanted.clamp(1, (limits.max_shares.max(1) as usize).min(ranks).min(load.partitions.len()));
        for i in 0..k {
            let partitions: Vec<u64> = load.partitions.iter().skip(i).step_by(k).copied().collect();
            let part_remaining = load.remaining as f64 * partitions.len() as f64 / load.partitions.len() as f64;
            shares.push(Share {
                host: load.host.clone(),
                rank: 0,
                shares: k as u32,
                partitions,
                rate: rate / k as f64,
                estimated_seconds: part_remaining / (rate / k as f64),
            });
        }
    }
    // Longest first; ties broken by name and first batch so the plan is deterministic.
    shares.sort_by(|a, b| {
        b.estimated_seconds
            .total_cmp(&a.estimated_seconds)
            .then_with(|| a.host.cmp(&b.host))
            .then_with(|| a.partitions.first().cmp(&b.partitions.first()))
    });
    let mut placed: Vec<Vec<Share>> = vec![Vec::new(); ranks];
    for share in shares {
        let best = (0..ranks)
            .filter(|r| !placed[*r].iter().any(|s| s.host == share.host))
            .min_by(|a, b| {
                let with = |r: usize| {
                    let mut v: Vec<&Share> = placed[r].iter().collect();
                    v.push(&share);
                    rank_estimate(&v, limits.rank_images_per_sec)
                };
                // On equal estimates prefer the rank with less work: spreading costs nothing in
                // the model, and in practice it spreads CPU and connections too.
                let work = |r: usize| placed[r].iter().map(|s| s.estimated_seconds * s.rate).sum::<f64>();
                with(*a).total_cmp(&with(*b)).then(work(*a).total_cmp(&work(*b))).then(a.cmp(b))
            })
            .expect("k <= ranks leaves a rank free of this host");
        placed[best].push(Share { rank: best, ..share });
    }
    let estimated_seconds =
        placed.iter().map(|v| rank_estimate(&v.iter().collect::<Vec<_>>(), limits.rank_images_per_sec)).collect();
    let mut assignments: Vec<Share> = placed.into_iter().flatten().collect();
    assignments.sort_by(|a, b| a.host.cmp(&b.host).then(a.rank.cmp(&b.rank)));
    Plan { round, ranks, assignments, estimated_seconds }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(host: &str, batches: u64, remaining: u64, rate: f64) -> HostLoad {
        HostLoad { host: host.into(), partitions: (0..batches).collect(), remaining, rate }
    }

    const ROOMY: Limits = Limits { rank_images_per_sec: 1000.0, max_shares: 4 };

    #[test]
    fn every_batch_is_owned_exactly_once() {
        let loads =
            vec![load("a", 5, 500, 2.0), load("b", 1, 10, 1.0), load("c", 3, 300, 50.0), load("done", 2, 0, 1.0)];
        let p = plan(0, &loads, 3, Limits { rank_images_per_sec: 20.0, max_shares: 4 });
        for l in &loads {
            let mut owned: Vec<u64> =
                p.assignments.iter().filter(|s| s.host == l.host).flat_map(|s| s.partitions.clone()).collect();
            owned.sort();
            let expected: Vec<u64> = if l.remaining == 0 { vec![] } else { l.partitions.clone() };
            assert_eq!(owned, expected, "{}", l.host);
        }
    }

    #[test]
    fn long_hosts_go_to_different_ranks() {
        let loads = vec![load("big1", 4, 4000, 1.0), load("big2", 4, 4000, 1.0), load("small", 1, 10, 1.0)];
        let p = plan(0, &loads, 2, ROOMY);
        let rank_of = |h: &str| p.assignments.iter().find(|s| s.host == h).unwrap().rank;
        assert_ne!(rank_of("big1"), rank_of("big2"));
        assert!(p.estimated_seconds.iter().all(|s| (*s - 4000.0).abs() < 1e-6), "{:?}", p.estimated_seconds);
        let even: Vec<HostLoad> = (0..6).map(|i| load(&format!("h{i}"), 1, 10, 1.0)).collect();
        let p = plan(0, &even, 3, ROOMY);
        let per_rank: Vec<usize> = (0..3).map(|r| p.for_rank(r).count()).collect();
        assert_eq!(per_rank, vec![2, 2, 2], "equal hosts are spread, not piled on rank 0");
    }

    #[test]
    fn a_host_faster_than_one_rank_is_split_without_exceeding_its_rate() {
        let loads = vec![load("cdn", 8, 8000, 30.0)];
        let p = plan(0, &loads, 4, Limits { rank_images_per_sec: 10.0, max_shares: 4 });
        let shares: Vec<&Share> = p.assignments.iter().filter(|s| s.host == "cdn").collect();
        assert_eq!(shares.len(), 3, "30 req/s over ranks of 10 img/s: 3 shares");
        let ranks: std::collections::HashSet<usize> = shares.iter().map(|s| s.rank).collect();
        assert_eq!(ranks.len(), 3, "shares sit on distinct ranks");
        let total: f64 = shares.iter().map(|s| s.rate).sum();
        assert!((total - 30.0).abs() < 1e-9, "shares add up to the host's rate: {total}");
    }

    #[test]
    fn splits_are_bounded_by_ranks_batches_and_the_in_flight_cap() {
        let p = plan(0, &[load("cdn", 2, 100, 1000.0)], 8, Limits { rank_images_per_sec: 1.0, max_shares: 4 });
        assert_eq!(p.assignments.len(), 2, "a host with 2 batches splits at most in 2");
        let p = plan(0, &[load("cdn", 9, 100, 1000.0)], 8, Limits { rank_images_per_sec: 1.0, max_shares: 3 });
        assert_eq!(p.assignments.len(), 3);
        let p = plan(0, &[load("cdn", 9, 100, 1000.0)], 1, Limits { rank_images_per_sec: 1.0, max_shares: 3 });
        assert_eq!(p.assignments.len(), 1, "one rank: no split");
    }

    #[test]
    fn the_plan_is_deterministic() {
        let loads: Vec<HostLoad> =
            (0..50).map(|i| load(&format!("h{i}"), 1 + i % 4, 100 + (i * 37) % 500, 1.0)).collect();
        assert_eq!(plan(3, &loads, 4, ROOMY), plan(3, &loads, 4, ROOMY));
    }
}
