//! Input readers: a URL list on disk, read in bounded chunks of [`RawRow`]s.
//!
//! Text files are read as bytes, a line at a time (`csv_line`), so stray quotes and odd bytes
//! never stop the read: a line with the wrong number of fields becomes a [`RawRow`] marked
//! malformed, with its line number. TSV (GBIF `multimedia.txt`) has no quoting; in CSV an
//! unclosed quote costs its own line and never the lines after it. Every line of a text file is
//! the header, a blank line or a row, so the lines read ([`Input::lines_read`]) are the lines
//! `wc -l` counts. Parquet files are read with polars, a slice of rows at a time. This module
//! only finds and reads columns; which rows to keep is decided in `filter.rs`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::carried;
use super::csv_line::{Dialect, TextLines};
use super::PrepError;

/// Rows per chunk handed to the filters. Small enough that a chunk of long GBIF rows stays in the
/// tens of MB, large enough that per-chunk overhead (a parquet slice, a spill flush) is noise.
pub const CHUNK_ROWS: usize = 100_000;

/// The container format of the input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide from the file name: `.parquet` is parquet, `.csv` is CSV, anything else is
    /// tab-separated (GBIF's `multimedia.txt`).
    Auto,
    /// Comma-separated, with `"` quoting.
    Csv,
    /// Tab-separated with no quoting at all, as GBIF writes `multimedia.txt`.
    Tsv,
    Parquet,
}

impl Format {
    /// Resolves `Auto` from the file name.
    pub fn resolve(self, path: &Path) -> Format {
        if self != Format::Auto {
            return self;
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("parquet") | Some("pq") => Format::Parquet,
            Some("csv") => Format::Csv,
            _ => Format::Tsv,
        }
    }
}

/// Which input column feeds which field. `None` means the input has no such column.
#[derive(Debug, Clone, Default)]
pub struct ColumnMap {
    pub id: Option<String>,
    pub url: String,
    pub kind: Option<String>,
    pub format: Option<String>,
    pub basis_of_record: Option<String>,
    /// The input columns of `carried::CARRIED`, in its order.
    pub carried: [Option<String>; carried::N],
}

impl ColumnMap {
    fn wanted(&self) -> Vec<&str> {
        let mut v = vec![self.url.as_str()];
        for c in [&self.id, &self.kind, &self.format, &self.basis_of_record].into_iter().chain(&self.carried).flatten()
        {
            v.push(c.as_str());
        }
        v
    }
}

/// One input row, reduced to the fields prep uses. Empty fields are `None`.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    /// 1-based line number in a text file (header and blank lines counted), or 1-based row number
    /// in parquet.
    pub line: u64,
    /// Set when the line could not be split into the header's fields; the other fields are empty.
    pub malformed: Option<String>,
    pub id: Option<String>,
    /// The URL field as bytes decoded strictly: `Err(())` when it is not valid UTF-8.
    pub url: Option<Result<String, ()>>,
    pub kind: Option<String>,
    pub format: Option<String>,
    pub basis_of_record: Option<String>,
    /// The values of `carried::CARRIED`, in its order.
    pub carried: carried::Values,
}

/// An open input: its column names, and a way to pull chunks.
pub struct Input {
    path: PathBuf,
    columns: Vec<String>,
    size_bytes: u64,
    /// Rows in the file when cheaply known (parquet metadata), for progress and spill sizing.
    pub total_rows: Option<u64>,
    source: Source,
}

enum Source {
    Text { lines: TextLines<BufReader<File>>, record: csv::ByteRecord },
    Parquet { offset: usize, total: usize },
}

impl Input {
    /// Opens `path` and reads its header (text) or schema (parquet).
    pub fn open(path: &Path, format: Format) -> Result<Input, PrepError> {
        let io_err = |e: std::io::Error| PrepError::Io { path: path.to_path_buf(), source: e };
        let size_bytes = std::fs::metadata(path).map_err(io_err)?.len();
        if size_bytes == 0 {
            return Err(PrepError::EmptyInput { path: path.to_path_buf() });
        }
        match format.resolve(path) {
            Format::Parquet => {
                let file = File::open(path).map_err(io_err)?;
                let mut reader = ParquetReader::new(file);
                let pe = |e: PolarsError| PrepError::Parquet { path: path.to_path_buf(), source: e };
                let schema = reader.schema().map_err(pe)?;
                let columns = schema.iter_names().map(|n| n.to_string()).collect();
                let total = reader.num_rows().map_err(pe)?;
                Ok(Input {
                    path: path.to_path_buf(),
                    columns,
                    size_bytes,
                    total_rows: Some(total as u64),
                    source: Source::Parquet { offset: 0, total },
                })
            }
            text => {
                // CSV with quoting within a line; anything else tab-separated with no quoting at
                // all: a line is a record, whatever quotes it holds.
                let dialect = if text == Format::Csv { Dialect::Csv } else { Dialect::Tsv };
                let file = File::open(path).map_err(io_err)?;
                let mut lines = TextLines::new(BufReader::with_capacity(1 << 20, file), dialect);
                let mut record = csv::ByteRecord::new();
                match lines.next(&mut record).map_err(io_err)? {
                    None => return Err(PrepError::EmptyInput { path: path.to_path_buf() }),
                    Some(Err(why)) => return Err(PrepError::BadHeader { path: path.to_path_buf(), why }),
                    Some(Ok(())) => {}
                }
                let columns = header_names(&record);
                if columns.iter().all(|c| c.is_empty()) {
                    return Err(PrepError::EmptyInput { path: path.to_path_buf() });
                }
                Ok(Input {
                    path: path.to_path_buf(),
                    columns,
                    size_bytes,
                    total_rows: None,
                    source: Source::Text { lines, record },
                })
            }
        }
    }

    /// The column names found in the file, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// File size in bytes, for progress and spill sizing.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// How far the read has got, as a fraction of the file.
    pub fn fraction_done(&self) -> f64 {
        match &self.source {
            Source::Text { lines, .. } => lines.bytes as f64 / self.size_bytes.max(1) as f64,
            Source::Parquet { offset, total } => *offset as f64 / (*total).max(1) as f64,
        }
    }

    /// Lines read so far from a text input, as `wc -l` counts them (a last line without a newline
    /// counts too): the header, blank lines and rows. For parquet, the rows read so far.
    pub fn lines_read(&self) -> u64 {
        match &self.source {
            Source::Text { lines, .. } => lines.line_no,
            Source::Parquet { offset, .. } => *offset as u64,
        }
    }

    /// Of [`Input::lines_read`], those that are not rows: the header and blank lines (0 for
    /// parquet). Blank lines before the header count here too.
    pub fn lines_not_rows(&self) -> u64 {
        match &self.source {
            Source::Text { lines, .. } => 1 + lines.blank_lines,
            Source::Parquet { .. } => 0,
        }
    }

    /// Finds the real name of column `want`, exactly or, when `loose`, ignoring case.
    pub fn find_column(&self, want: &str, loose: bool) -> Option<String> {
        self.columns
            .iter()
            .find(|c| c.as_str() == want)
            .or_else(|| if loose { self.columns.iter().find(|c| c.eq_ignore_ascii_case(want)) } else { None })
            .cloned()
    }

    /// Reads the next chunk of at most [`CHUNK_ROWS`] rows; an empty vector means the end.
    pub fn next_chunk(&mut self, map: &ColumnMap) -> Result<Vec<RawRow>, PrepError> {
        let path = self.path.clone();
        let index_of = |name: &Option<String>, cols: &[String]| -> Option<usize> {
            name.as_ref().and_then(|n| cols.iter().position(|c| c == n))
        };
        let n_cols = self.columns.len();
        let text_indexes = |cols: &[String]| Indexes {
            id: index_of(&map.id, cols),
            url: index_of(&Some(map.url.clone()), cols).expect("url column checked at open"),
            kind: index_of(&map.kind, cols),
            format: index_of(&map.format, cols),
            basis: index_of(&map.basis_of_record, cols),
            carried: std::array::from_fn(|i| index_of(&map.carried[i], cols)),
        };
        match &mut self.source {
            Source::Text { lines, record } => {
                let idx = text_indexes(&self.columns);
                let mut rows = Vec::with_capacity(CHUNK_ROWS);
                while rows.len() < CHUNK_ROWS {
                    let Some(split) =
                        lines.next(record).map_err(|e| PrepError::Io { path: path.clone(), source: e })?
                    else {
                        break;
                    };
                    let line = lines.line_no;
                    let malformed = match split {
                        Err(why) => Some(why),
                        Ok(()) if record.len() != n_cols => {
                            Some(format!("expected {n_cols} fields, found {}", record.len()))
                        }
                        Ok(()) => None,
                    };
                    rows.push(match malformed {
                        Some(why) => RawRow { line, malformed: Some(why), ..Default::default() },
                        None => text_row(record, &idx, line),
                    });
                }
                Ok(rows)
            }
            Source::Parquet { offset, total } => {
                if *offset >= *total {
                    return Ok(Vec::new());
                }
                let len = CHUNK_ROWS.min(*total - *offset);
                let pe = |e: PolarsError| PrepError::Parquet { path: path.clone(), source: e };
                let file = File::open(&path).map_err(|e| PrepError::Io { path: path.clone(), source: e })?;
                let df = ParquetReader::new(file)
                    .with_columns(Some(map.wanted().into_iter().map(String::from).collect()))
                    .with_slice(Some((*offset, len)))
                    .finish()
                    .map_err(pe)?;
                let col = |name: &Option<String>| -> Result<Option<Vec<Option<String>>>, PrepError> {
                    match name {
                        None => Ok(None),
                        Some(n) => string_values(&df, n).map(Some).map_err(pe),
                    }
                };
                let ids = col(&map.id)?;
                let urls = string_values(&df, &map.url).map_err(pe)?;
                let kinds = col(&map.kind)?;
                let formats = col(&map.format)?;
                let basis = col(&map.basis_of_record)?;
                let carried = map.carried.iter().map(col).collect::<Result<Vec<_>, _>>()?;
                let pick = |v: &Option<Vec<Option<String>>>, i: usize| v.as_ref().and_then(|v| nonempty(v[i].clone()));
                let rows = (0..df.height())
                    .map(|i| RawRow {
                        line: (*offset + i + 1) as u64,
                        malformed: None,
                        id: pick(&ids, i),
                        url: nonempty(urls[i].clone()).map(Ok),
                        kind: pick(&kinds, i),
                        format: pick(&formats, i),
                        basis_of_record: pick(&basis, i),
                        carried: std::array::from_fn(|c| pick(&carried[c], i)),
                    })
                    .collect();
                *offset += len;
                Ok(rows)
            }
        }
    }
}

/// Column names from a header record: trimmed, without a UTF-8 byte order mark.
fn header_names(header: &csv::ByteRecord) -> Vec<String> {
    header.iter().map(|f| String::from_utf8_lossy(f).trim().trim_start_matches('\u{feff}').to_string()).collect()
}

struct Indexes {
    id: Option<usize>,
    url: usize,
    kind: Option<usize>,
    format: Option<usize>,
    basis: Option<usize>,
    carried: [Option<usize>; carried::N],
}

fn text_row(record: &csv::ByteRecord, idx: &Indexes, line: u64) -> RawRow {
    let lossy = |i: Option<usize>| -> Option<String> {
        i.and_then(|i| record.get(i)).and_then(|b| nonempty(Some(String::from_utf8_lossy(b).into_owned())))
    };
    let url = record.get(idx.url).and_then(|b| {
        let trimmed = b.trim_ascii();
        if trimmed.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(trimmed).map(str::to_string).map_err(|_| ()))
        }
    });
    RawRow {
        line,
        malformed: None,
        id: lossy(idx.id),
        url,
        kind: lossy(idx.kind),
        format: lossy(idx.format),
        basis_of_record: lossy(idx.basis),
        carried: idx.carried.map(lossy),
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Reads column `name` of `df` as optional strings, casting numbers (GBIF's int64 `gbifid`).
fn string_values(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    let col = df.column(name)?.cast(&DataType::String)?;
    Ok(col.str()?.iter().map(|v| v.map(str::to_string)).collect())
}
