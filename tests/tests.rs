//! Integration tests: one binary, one module per area (see STYLE.md §7).

mod util;

mod cli;
mod dead_hosts;
mod deadlines;
mod dedup;
mod docs_links;
mod download;
mod export;
mod files;
mod filter;
mod import_loops;
mod index;
mod licenses;
mod lock;
mod memory;
mod metrics;
mod nginx;
mod overrides;
mod perceptual;
mod plan;
mod politeness;
mod prep;
mod profile;
mod ranks;
mod redirects;
mod refresh;
mod refresh_run;
mod remove;
mod resize;
mod revalidate;
mod robots;
mod safety;
mod slurm;
mod store;
mod verify;
