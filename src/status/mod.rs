//! `status`: how far a download is, read from the files (the ledger beside the shards, the
//! servers table, `runs.jsonl`, the job record and the plans), never by opening every shard, so
//! it answers in seconds on a GBIF-sized output while a job writes to it.

mod gather;
pub mod runs;
mod screen;

pub use gather::{
    remaining, report, totals, ChainStatus, Eta, JobStatus, PlanBrief, ServerStatus, StatusReport, Totals,
};
pub use screen::duration;
