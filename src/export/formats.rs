//! One output shard in each format, from its manifest rows and their stored images, streamed:
//! WebDataset writes each image as it is read, parquet a row group at a time.
//!
//! - `webdataset`: `shard-NNNNNN.tar`, per image `<uuid>.<ext>` (the stored bytes), `<uuid>.json`
//!   (every manifest field) and with a caption `<uuid>.txt`.
//! - `parquet`: `shard-NNNNNN.parquet`, a row per image: `image` (the bytes, binary), `caption`
//!   when asked, then every manifest field.
//! - `hf`: `data/train-NNNNN-of-MMMMM.parquet`, the same with `image` as Hugging Face stores an
//!   image (a struct of `bytes` and `path`, the path `<uuid>.<ext>` telling its format).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rows::{extension, row_json, taxonomic_caption, text, Reader};
use super::tar::TarWriter;

/// Image bytes per parquet row group: what a parquet shard holds in memory while it is written.
const ROW_GROUP_BYTES: u64 = 64 << 20;
/// Most rows per parquet row group (small images).
const ROW_GROUP_ROWS: usize = 1024;

/// The formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Tar shards of `<uuid>.<ext>`, `<uuid>.json` (and `<uuid>.txt`), for the `webdataset` package.
    Webdataset,
    /// Parquet files with the image bytes in an `image` column and every manifest field.
    Parquet,
    /// A Hugging Face `datasets` folder: parquet under `data/` and a card declaring the features.
    Hf,
}

impl Format {
    /// Shard `i` of `n`, relative to the export folder.
    pub fn shard_name(self, i: usize, n: usize) -> String {
        match self {
            Format::Webdataset => format!("shard-{i:06}.tar"),
            Format::Parquet => format!("shard-{i:06}.parquet"),
            Format::Hf => format!("data/train-{i:05}-of-{n:05}.parquet"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Webdataset => "webdataset",
            Format::Parquet => "parquet",
            Format::Hf => "hf",
        }
    }
}

/// What one written shard holds, kept beside it so that the card and the report need not read it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardMade {
    /// Relative to the export folder.
    pub file: String,
    pub images: u64,
    /// Bytes of stored images in it, and of the file.
    pub image_bytes: u64,
    pub file_bytes: u64,
    pub sha256: String,
    pub by_license: BTreeMap<String, u64>,
    pub by_server: BTreeMap<String, u64>,
    pub by_publisher: BTreeMap<String, u64>,
    /// Images by stored format (`jpeg`, `png`, ...).
    #[serde(default)]
    pub by_format: BTreeMap<String, u64>,
    /// Images whose caption is empty (no taxonomy in the manifest).
    pub empty_captions: u64,
}

/// Writes every byte to `W` and sums it up.
struct Hashing<W: Write> {
    out: W,
    sum: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sum.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes the shard of `rows` (one output shard's manifest rows, in order) to `path` as `format`,
/// with a taxonomic caption when `caption`; `file` is its name in the export folder.
pub fn write_shard(
    reader: &mut Reader,
    rows: &DataFrame,
    (format, caption): (Format, bool),
    path: &Path,
    file: &str,
) -> anyhow::Result<ShardMade> {
    let io_err = || format!("cannot write {}: check free space and permissions of the export folder", path.display());
    let created = std::fs::File::create(path).with_context(io_err)?;
    let mut out = Hashing { out: io::BufWriter::new(created), sum: Sha256::new(), len: 0 };
    let mut made = ShardMade { file: file.to_string(), ..ShardMade::default() };
    for i in 0..rows.height() {
        made.images += 1;
        made.image_bytes += rows.column("stored_bytes")?.u64()?.get(i).unwrap_or(0);
        for (map, column) in [
            (&mut made.by_license, "license_id"),
            (&mut made.by_server, "server"),
            (&mut made.by_publisher, "publisher"),
            (&mut made.by_format, "format"),
        ] {
            let value = text(rows, column, i);
            *map.entry(if value.is_empty() { "(none)".to_string() } else { value }).or_insert(0) += 1;
        }
        if caption && taxonomic_caption(rows, i).is_empty() {
            made.empty_captions += 1;
        }
    }
    match format {
        Format::Webdataset => write_tar(reader, rows, caption, &mut out)?,
        Format::Parquet | Format::Hf => write_parquet(reader, rows, (format, caption), &mut out)?,
    }
    out.flush().with_context(io_err)?;
    made.file_bytes = out.len;
    made.sha256 = format!("{:x}", out.sum.finalize());
    Ok(made)
}

fn write_tar<W: Write>(reader: &mut Reader, rows: &DataFrame, caption: bool, out: W) -> anyhow::Result<()> {
    let io = |e: io::Error| {
        anyhow::anyhow!("cannot write the tar shard ({e}): check free space and permissions of the export folder")
    };
    let mut tar = TarWriter::new(out);
    for i in 0..rows.height() {
        let uuid = text(rows, "uuid", i);
        let image = reader.image(rows, i)?;
        tar.append(&format!("{uuid}.{}", extension(&text(rows, "format", i))), &image).map_err(io)?;
        let json = serde_json::to_vec(&row_json(rows, i)).expect("a row serialises");
        tar.append(&format!("{uuid}.json"), &json).map_err(io)?;
        if caption {
            tar.append(&format!("{uuid}.txt"), taxonomic_caption(rows, i).as_bytes()).map_err(io)?;
        }
    }
    tar.finish().map_err(io)?;
    Ok(())
}

fn write_parquet<W: Write>(
    reader: &mut Reader,
    rows: &DataFrame,
    (format, caption): (Format, bool),
    out: W,
) -> anyhow::Result<()> {
    let sizes = rows.column("stored_bytes")?.u64()?.clone();
    let mut writer: Option<polars::io::parquet::write::BatchedWriter<W>> = None;
    let mut out = Some(out);
    let mut start = 0;
    while start < rows.height() {
        let (mut end, mut bytes) = (start, 0);
        while end < rows.height() && end - start < ROW_GROUP_ROWS && (end == start || bytes < ROW_GROUP_BYTES) {
            bytes += sizes.get(end).unwrap_or(0);
            end += 1;
        }
        let group = rows.slice(start as i64, end - start);
        let mut images: Vec<Vec<u8>> = Vec::with_capacity(end - start);
        for i in start..end {
            images.push(reader.image(rows, i)?);
        }
        let image = BinaryChunked::from_iter_values("bytes".into(), images.iter().map(Vec::as_slice)).into_series();
        let image = match format {
            Format::Hf => {
                let names: Vec<String> = (0..group.height())
                    .map(|i| format!("{}.{}", text(&group, "uuid", i), extension(&text(&group, "format", i))))
                    .collect();
                let path = Series::new("path".into(), names);
                StructChunked::from_series("image".into(), group.height(), [image, path].iter())?.into_series()
            }
            _ => image.with_name("image".into()),
        };
        let mut columns = vec![image.into_column()];
        if caption {
            let captions: Vec<String> = (0..group.height()).map(|i| taxonomic_caption(&group, i)).collect();
            columns.push(Column::new("caption".into(), captions));
        }
        columns.extend(group.columns().iter().cloned());
        let mut df = DataFrame::new(group.height(), columns)?;
        df.rechunk_mut();
        if writer.is_none() {
            let w = out.take().expect("the writer is made once");
            writer =
                Some(ParquetWriter::new(w).with_compression(ParquetCompression::Snappy).batched(&df.schema().clone())?);
        }
        writer.as_mut().expect("made above").write_batch(&df)?;
        start = end;
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(())
}
