//! `cite`: what a dataset built from GBIF must cite. GBIF asks users of bulk media to register a
//! *derived dataset*: the GBIF datasets it draws on, with how many of their records it uses.
//! `count` makes that table from the manifest (the images stored and kept), `render` the CSV,
//! BibTeX and CITATION.cff files beside it.

pub mod count;
pub mod render;
