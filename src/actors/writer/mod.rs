//! WriterActor: collects finished rows per batch and commits them as shard files.
//!
//! It runs on its own thread (a `SyncArbiter`), since HDF5 writes and fsyncs block. The shard
//! policy (when to commit) is the plain [`policy::ShardPolicy`]; the file format is
//! `crate::shards`.

pub mod actor;
pub mod policy;
