//! The only place `mpi::` is called, and the rank-0 planner.
//!
//! `world` wraps MPI behind a small interface (rank, size, broadcast, gather, barrier) with a
//! single-rank stand-in used when no launcher started the process, so every other module and
//! most tests run without MPI. `planner` is plain code: which rank owns which host (and which
//! hosts are split into shares), computed by rank 0 and broadcast.

pub mod planner;
pub mod world;
