//! `refresh`'s plan: the diff of a new GBIF snapshot against an older dataset, so that a monthly
//! refresh fetches only what is new. Image uuids are the URL's (`prep::spill::image_uuid`), so an
//! image has the same uuid in both snapshots.
//!
//! Each image of either snapshot falls in exactly one class (`classify`): `new` (not stored in
//! the old dataset: not in it, or its final record a failure), `unchanged` (stored, same
//! metadata), `metadata_changed` (stored, but a compared field differs: `fields`), `gone` (in
//! the old dataset only) or `removed` (taken down in the old dataset: never fetched again).
//!
//! - `diff`: the bounded two-pass join and its memory formula; writes the plan and the report.
//! - `read`: the inputs (the old manifest, the new batch and occurrence files) into scratch parts.
//! - `record`: the scratch records; `fields`: the compared fields and their fingerprints.
//! - `classify`: the rule, as plain logic; `plan`: the plan's parquet parts; `report`: report.json.
//! - `carry`: the plan's stored images into the new folder, by reference, batch by batch.
//! - `state`: `refresh/state.json`, how far a refresh went.
//! - `error`: `RefreshError`.
//!
//! Does not own: the `refresh` command, or fetching new images (that is `download`).

pub mod carry;
pub mod classify;
pub mod diff;
pub mod error;
pub mod fields;
pub mod plan;
pub mod read;
pub mod record;
pub mod report;
pub mod state;

pub use diff::{diff, DiffOptions};
pub use error::RefreshError;
pub use read::{inputs, Inputs};
pub use report::DiffReport;
