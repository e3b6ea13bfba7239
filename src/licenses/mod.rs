//! Licences: each image's licence string read as an SPDX id (`spdx`, with the table in
//! `config/licenses.csv`), and the `licenses` report over a dataset's manifest (`report`).

pub mod report;
pub mod spdx;
