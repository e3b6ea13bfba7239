//! One `verify` over a world of ranks: the batches are dealt round robin by batch, each rank
//! checks its share, and rank 0 gathers every rank's report and merges it.
//!
//! No rank waits forever on another: a rank that cannot check (no servers table, a check that
//! panicked) still sends a report, carrying the error, so the gather always completes.

use std::path::Path;

use super::pool::Pool;
use super::report::Report;
use super::scan::{self, Options};
use crate::mpi_glue::world::World;
use crate::progress::{human_count, Progress};
use crate::store::tables::{read_servers_table, ServerInfo};

/// Checks this rank's share of the batches of `out`; on rank 0, returns the merged report of
/// every rank (`None` on the others). Every rank of `world` must call it.
pub fn run(world: &World, out: &Path, opts: &Options) -> Option<Report> {
    let mine = check_share(world, out, opts);
    let all = world.gather(serde_json::to_vec(&mine).expect("a report serialises"))?;
    let mut report =
        Report { output: out.to_path_buf(), ranks: world.size(), sample_per_batch: opts.sample, ..Report::default() };
    for (rank, bytes) in all.into_iter().enumerate() {
        match serde_json::from_slice::<Report>(&bytes) {
            Ok(r) => report.merge(r),
            Err(e) => report.rank_errors.push(format!("rank {rank} sent an unreadable report ({e})")),
        }
    }
    report.finish();
    Some(report)
}

/// The batches rank `rank` of `size` checks: every `size`-th, in the servers table's order.
pub fn share(servers: &[ServerInfo], rank: usize, size: usize) -> Vec<(&ServerInfo, u64)> {
    let all = servers.iter().flat_map(|s| (0..s.batch_count).map(move |p| (s, p)));
    all.enumerate().filter(|(i, _)| i % size == rank).map(|(_, b)| b).collect()
}

fn check_share(world: &World, out: &Path, opts: &Options) -> Report {
    let mut report = Report::default();
    let who = if world.size() > 1 { format!("rank {}: ", world.rank()) } else { String::new() };
    let servers = match read_servers_table(out) {
        Ok(s) => s,
        Err(e) => {
            report.rank_errors.push(format!("{who}{e}"));
            return report;
        }
    };
    let mine = share(&servers, world.rank(), world.size());
    let label = if world.size() > 1 { format!("verify rank {}", world.rank()) } else { "verify".to_string() };
    let mut progress = Progress::new(&label);
    let mut unfinished = Vec::new();
    let found = std::thread::scope(|scope| {
        let pool = Pool::start(scope, opts.threads);
        for (i, (server, partition)) in mine.iter().enumerate() {
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scan::check_batch(out, server, *partition, opts, &mut report, &mut |job| pool.submit(job))
            }));
            if checked.is_err() {
                unfinished.push((server.server_name.clone(), *partition));
                report.rank_errors.push(format!(
                    "{who}checking server_name={}/partition_id={partition} panicked; please report it",
                    server.server_name
                ));
            }
            report.problems.extend(pool.drain());
            let message = format!(
                "{} of {} batches, {} images checked, {} problems",
                i + 1,
                mine.len(),
                human_count(report.images_checked),
                report.problems.len()
            );
            progress.update((i + 1) as f64 / mine.len() as f64, &message);
        }
        pool.finish()
    });
    report.problems.extend(found);
    report.count_clean(unfinished);
    progress.finish();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, batches: u64) -> ServerInfo {
        ServerInfo {
            server_name: name.into(),
            url_count: 0,
            batch_count: batches,
            initial_rate_limit: 1.0,
            ..ServerInfo::default()
        }
    }

    #[test]
    fn ranks_share_the_batches_round_robin_and_together_check_each_once() {
        let servers = [server("a", 3), server("b", 2)];
        let names = |rank| -> Vec<String> {
            share(&servers, rank, 2).iter().map(|(s, p)| format!("{}{p}", s.server_name)).collect()
        };
        assert_eq!(names(0), ["a0", "a2", "b1"]);
        assert_eq!(names(1), ["a1", "b0"]);
        assert_eq!(share(&servers, 0, 1).len(), 5, "one rank checks every batch");
    }
}
