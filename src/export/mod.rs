//! `export`: the stored images of a dataset (the manifest's `stored` rows, only the keep-list's
//! when `filter` wrote one) as a dataset others read without this tool: WebDataset tar shards,
//! parquet files with the image bytes, or a Hugging Face `datasets` folder.
//!
//! `size` reads `--shard-size`; `plan` turns the manifest into the export's shards (which image
//! goes where, in which order: the manifest's, or a shuffle by `--seed`), the same on every rank;
//! `rows` reads a shard's manifest rows and the stored bytes of its images; `tar` writes a tar
//! archive; `formats` writes one shard of each format; `card` writes the dataset card,
//! `attribution.csv` and the Croissant metadata; `run` shares the shards among the ranks, resumes
//! a killed export and sums up. Images are streamed from the HDF5 shards one output shard at a
//! time; the plan keeps a few dozen bytes per image.

pub mod card;
pub mod formats;
pub mod plan;
pub mod rows;
pub mod run;
pub mod size;
pub mod tar;
