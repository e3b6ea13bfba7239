//! `duplicates.parquet` and `leaks.parquet`, written as their rows come, a row group at a time,
//! so that no output is ever held whole; each is written in the scratch folder and committed in
//! place atomically when complete.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use polars::prelude::*;

use super::bounded::{DuplicateRow, LeakRow};
use crate::store::atomic::{self, Mode};

/// Rows per row group: about 6 MB of buffered rows and their frame (65,536 held about 25 MB).
const ROWS_PER_GROUP: usize = 16_384;

/// One output file being written: its columns' buffered rows and the writer.
pub struct Output<R> {
    tmp: PathBuf,
    target: PathBuf,
    writer: polars::io::parquet::write::BatchedWriter<File>,
    schema: Schema,
    rows: Vec<R>,
    to_frame: fn(&[R], &Schema) -> PolarsResult<DataFrame>,
}

impl<R> Output<R> {
    fn create(
        target: &Path,
        scratch: &Path,
        schema: Schema,
        to_frame: fn(&[R], &Schema) -> PolarsResult<DataFrame>,
    ) -> anyhow::Result<Self> {
        let name = target.file_name().expect("an output file has a name");
        let tmp = scratch.join(name);
        let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let writer = ParquetWriter::new(file).batched(&schema)?;
        Ok(Output { tmp, target: target.to_path_buf(), writer, schema, rows: Vec::new(), to_frame })
    }

    pub fn push(&mut self, row: R) -> anyhow::Result<()> {
        self.rows.push(row);
        if self.rows.len() >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let df = (self.to_frame)(&self.rows, &self.schema)?;
        self.writer.write_batch(&df).map_err(|e| anyhow!("cannot write {}: {e}", self.tmp.display()))?;
        self.rows.clear();
        Ok(())
    }

    /// Writes what is left and the footer, and puts the file in place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.writer.finish().map_err(|e| anyhow!("cannot write {}: {e}", self.tmp.display()))?;
        drop(self.writer);
        atomic::commit(&self.tmp, &self.target, Mode::Replace)?;
        Ok(())
    }
}

/// `duplicates.parquet` (docs/dedup.md lists its columns).
pub fn duplicates(target: &Path, scratch: &Path) -> anyhow::Result<Output<DuplicateRow>> {
    let (u, s) = (DataType::UInt64, DataType::String);
    let columns = [("group", &u), ("keeper", &s), ("member", &s), ("distance", &u), ("why", &s)];
    let columns = columns.into_iter().chain([("keeper_url", &s), ("member_url", &s)]);
    let schema = Schema::from_iter(columns.map(|(name, t)| Field::new(name.into(), t.clone())));
    Output::create(target, scratch, schema, |rows, schema| {
        let s = |f: fn(&DuplicateRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
        let columns = vec![
            Column::new("group".into(), rows.iter().map(|d| d.group).collect::<Vec<_>>()),
            Column::new("keeper".into(), s(|d| &d.keeper)),
            Column::new("member".into(), s(|d| &d.member)),
            Column::new("distance".into(), rows.iter().map(|d| u64::from(d.distance)).collect::<Vec<_>>()),
            Column::new("why".into(), s(|d| d.why)),
            Column::new("keeper_url".into(), s(|d| &d.keeper_url)),
            Column::new("member_url".into(), s(|d| &d.member_url)),
        ];
        frame(rows.len(), columns, schema)
    })
}

/// `leaks.parquet`: each row's `test_line` is the line of the test-set file (`lines[test]`).
pub fn leaks(target: &Path, scratch: &Path) -> anyhow::Result<Output<(LeakRow, u64)>> {
    let schema = Schema::from_iter([
        Field::new("uuid".into(), DataType::String),
        Field::new("url".into(), DataType::String),
        Field::new("test_line".into(), DataType::UInt64),
        Field::new("distance".into(), DataType::UInt64),
    ]);
    Output::create(target, scratch, schema, |rows, schema| {
        let columns = vec![
            Column::new("uuid".into(), rows.iter().map(|(l, _)| l.uuid.as_str()).collect::<Vec<_>>()),
            Column::new("url".into(), rows.iter().map(|(l, _)| l.url.as_str()).collect::<Vec<_>>()),
            Column::new("test_line".into(), rows.iter().map(|(_, line)| *line).collect::<Vec<_>>()),
            Column::new("distance".into(), rows.iter().map(|(l, _)| u64::from(l.distance)).collect::<Vec<_>>()),
        ];
        frame(rows.len(), columns, schema)
    })
}

/// A frame of `columns`, cast to `schema` (an empty column has no type of its own).
fn frame(height: usize, columns: Vec<Column>, schema: &Schema) -> PolarsResult<DataFrame> {
    let columns = columns
        .into_iter()
        .map(|c| {
            let dtype = schema.get(c.name()).expect("a column of the schema");
            c.cast(dtype)
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new(height, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::parquet::read_parquet;

    #[test]
    fn a_dataset_without_duplicates_or_leaks_gets_readable_empty_files_with_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let (dups, leaks_file) = (dir.path().join("duplicates.parquet"), dir.path().join("leaks.parquet"));
        duplicates(&dups, &scratch).unwrap().commit().unwrap();
        leaks(&leaks_file, &scratch).unwrap().commit().unwrap();
        let df = read_parquet(&dups).unwrap();
        let names: Vec<&str> = df.get_column_names().into_iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["group", "keeper", "member", "distance", "why", "keeper_url", "member_url"]);
        assert_eq!(df.height(), 0);
        let df = read_parquet(&leaks_file).unwrap();
        assert_eq!(df.get_column_names().len(), 4);
        assert_eq!(df.height(), 0);
    }
}
