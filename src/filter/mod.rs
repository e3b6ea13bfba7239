//! `filter`: a keep-list of the dataset's rows by rules on what the manifest says (size, aspect,
//! status) and by lists of uuids or URLs, without fetching or rewriting any image.
//!
//! `rules` decides one row (the first rule it breaks is its reason); `run` reads the manifest
//! (`index`), applies the rules to every row, and writes `<output>/filter/keep.parquet` (the
//! rows kept), `dropped.parquet` (the others, each with its reason) and `rules.json` (what was
//! asked), each replaced atomically.

pub mod rules;
pub mod run;
