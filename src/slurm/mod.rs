//! Slurm: the job scripts `submit` renders from the config file, the chain of jobs it queues,
//! and the record of those jobs in the output folder.
//!
//! - `render`: the templates in `slurm/` filled from [`SlurmSettings`](crate::config::SlurmSettings).
//! - `record`: `<output>/slurm/jobs.json`, the chains and how each job ended (the truth `status`
//!   and a later `submit` read).
//! - `chain`: what happens when a job ends (go on, or cancel the rest), as a pure decision.
//! - `queue`: the only caller of `sbatch`, `squeue`, `sacct` and `scancel`.

pub mod chain;
pub mod queue;
pub mod record;
pub mod render;

/// The folder of the output that holds every job's and every rank's log.
pub use crate::store::paths::LOGS_DIR;
/// The folder of the output that holds the rendered scripts and the job record.
pub use crate::store::paths::SLURM_DIR;
