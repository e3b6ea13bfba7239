//! `plan`: how long the whole job takes, and on how many nodes, before a cluster allocation is
//! spent. A polite download has a hard floor (a host with n URLs allowed r requests/s needs n/r
//! seconds), and with Zipf-sized servers a handful of big hosts decide the job; past some node
//! count more nodes only add idle ranks. The forecast runs rank 0's own planner and round rule
//! in simulated time, so what it predicts is what the code does.
//!
//! - `load`: what remains of a job, from its output folder (the only I/O here).
//! - `sim`: the simulated run and the floors (pure).
//! - `params`: the flags of `plan` over the config.
//! - `scale`: the whole forecast: requested nodes, static split, node table and knee, Slurm jobs.
//! - `report`: the forecast as a table and as JSON.
//! - `gbif_like`: a deterministic GBIF-shaped job for tests and `plan --gbif-like`.
//! - `error`: what can stop a forecast.

pub mod error;
pub mod gbif_like;
pub mod load;
pub mod params;
pub mod report;
pub mod scale;
pub mod sim;
