//! `verify`: are the committed shards whole and do they agree with each other, with the batches
//! and with their summaries; and `verify --repair`, which moves bad shards aside so that exactly
//! their bad rows are fetched again.
//!
//! - `scan`: the checks of one batch (shards readable, one final record per row, row counts,
//!   `ledger.json`, a sample or all of its images).
//! - `image`: one stored image against its record: CRC-32 of the stored bytes, full decode.
//! - `pool`: worker threads that check the images the scan reads.
//! - `run`: the batches dealt round robin over the ranks, rank 0 gathering the reports.
//! - `repair`: quarantine, keeping the good rows, removing stale summaries.
//! - `report`: problems, warnings and counts, as text and JSON.

pub mod image;
pub mod pool;
pub mod repair;
pub mod report;
pub mod run;
pub mod scan;
