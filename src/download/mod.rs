//! `download`: runs the ServerActors of the hosts this rank owns over a prep output folder.
//!
//! `run` is the coordinator: it builds the rank's engine (`actors::engine`), starts the actors,
//! drives progress, the deadline and the final drain, and `ending` holds the rules that end a run
//! by itself (the deadline's margin, parked hosts); `summary` reads the committed shards back and
//! reports what is done and what remains; `learned` writes what hosts learned back into
//! `servers.parquet`; `unchanged` refuses shards written for other batch content; `interrupted`
//! finishes what an interrupted run left first; `ranks` runs rounds over many ranks, and `rounds`
//! is the rule for ending one early; `revalidate` reads `--older-than` and sets which stored
//! images a `--revalidate` run asks about again.

pub mod ending;
pub mod interrupted;
pub mod learned;
pub mod ranks;
pub mod revalidate;
pub mod rounds;
pub mod run;
pub mod summary;
pub mod unchanged;
