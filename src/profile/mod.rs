//! `profile`: between `prep` and `download`, ask each server for robots.txt and a few spaced
//! sample images, and set the rate its download starts at.
//!
//! - `rule`: the start-rate rule, as plain arithmetic (refusal, nothing learned, latency,
//!   Crawl-delay).
//! - `samples`: one server's samples as data: labels, median response time, notes, the rule's
//!   evidence, the spacing of requests.
//! - `result`: the per-server result file `<output>/profile/<server>.json`, the merge into
//!   `servers.parquet`, and how results are shown.
//! - `run`: the I/O: which servers a rank profiles, robots.txt (cached as a download caches it,
//!   so the download does not ask again), the samples, and rank 0's merge.
//!
//! Not here: the download's own adaptive rate (`host::rate`) takes over from the
//! start rate, and per-server overrides (`overrides`) win over it.

pub mod result;
pub mod rule;
pub mod run;
pub mod samples;
