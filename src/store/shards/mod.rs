//! Shard files: the committed output of downloads, and the only truth about what is done.
//!
//! A shard is one HDF5 file holding the success records (with the stored image bytes) and the
//! failure records of some rows of one batch. It is written under a temporary name, fsynced,
//! renamed, and its folder fsynced (`hdf5_io`), so a reader never sees half a shard. What is done
//! is derived by reading the committed shards back (`ledger`), helped by a per-batch `summary`
//! of counts that is trusted only while it covers exactly the shards present; there is no other
//! state to disagree with them. `record` holds the plain record types the engine fills in;
//! `revalidation` the record a revalidation (`download --revalidate`) commits for a stored image.
//!
//! When a batch is complete, `compact` merges its shards into one; `finish` merges the complete
//! batches an interrupted run left in many shards, and removes leftovers, before planning.
//!
//! Layout: `<output>/downloads/server_name=<key>/partition_id=<n>/shard-<seq>.h5`.

pub mod again;
pub mod carried;
pub mod compact;
pub mod error;
pub mod finish;
mod h5_put;
pub mod hdf5_io;
pub mod image_data;
pub mod ledger;
pub mod record;
pub mod revalidation;
pub mod summary;
