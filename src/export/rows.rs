//! What an output shard holds of each image: its manifest row (every field, as JSON too), its
//! stored bytes read from its HDF5 shard, its file extension and, when asked, its caption.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use polars::prelude::*;

use super::plan::Entry;
use crate::store::parquet::read_parquet;
use crate::store::shards::image_data::ImageData;

/// HDF5 shards kept open while a shard is written: a shuffled export reads from many.
const OPEN_SHARDS: usize = 64;

/// Reads manifest rows and stored images for the shards one rank writes.
pub struct Reader {
    out: PathBuf,
    files: Vec<PathBuf>,
    shards: HashMap<String, ImageData>,
}

impl Reader {
    pub fn new(out: &Path, files: &[PathBuf]) -> Reader {
        Reader { out: out.to_path_buf(), files: files.to_vec(), shards: HashMap::new() }
    }

    /// The manifest rows of each of `shards` (each a list of images), in their order, reading
    /// each manifest file they draw from once: a shuffled shard draws from nearly every file,
    /// so shards are read together, not one by one.
    pub fn rows(&mut self, shards: &[&[Entry]]) -> anyhow::Result<Vec<DataFrame>> {
        let mut by_file: BTreeMap<u32, Vec<(u32, u32, u32)>> = BTreeMap::new();
        for (k, entries) in shards.iter().enumerate() {
            for (pos, e) in entries.iter().enumerate() {
                by_file.entry(e.file).or_default().push((e.row, k as u32, pos as u32));
            }
        }
        let mut all: Option<DataFrame> = None;
        for (file, rows) in by_file {
            let df = read_parquet(&self.files[file as usize])?;
            let idx = IdxCa::from_vec("row".into(), rows.iter().map(|r| r.0 as IdxSize).collect());
            let mut part = df.take(&idx)?;
            part.with_column(Column::new("__shard".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()))?;
            part.with_column(Column::new("__pos".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()))?;
            match &mut all {
                None => all = Some(part),
                Some(all) => {
                    all.vstack_mut(&part).map_err(|e| {
                        let file = self.files[file as usize].display();
                        anyhow!("{file} has other columns than the other manifest files ({e}): run `index --force`")
                    })?;
                }
            }
        }
        let Some(all) = all else { return Ok(shards.iter().map(|_| DataFrame::default()).collect()) };
        let mut sorted = all.sort(["__shard", "__pos"], SortMultipleOptions::default())?;
        let _ = sorted.drop_in_place("__pos")?;
        let _ = sorted.drop_in_place("__shard")?;
        let mut out = Vec::with_capacity(shards.len());
        let mut at = 0i64;
        for entries in shards {
            let mut one = sorted.slice(at, entries.len());
            one.rechunk_mut();
            at += entries.len() as i64;
            out.push(one);
        }
        Ok(out)
    }

    /// The stored bytes of row `i` of `rows` (from [`Reader::rows`]).
    pub fn image(&mut self, rows: &DataFrame, i: usize) -> anyhow::Result<Vec<u8>> {
        let shard = text(rows, "shard", i);
        let row = rows.column("row")?.u32()?.get(i).unwrap_or(0) as usize;
        if !self.shards.contains_key(&shard) {
            if self.shards.len() >= OPEN_SHARDS {
                self.shards.clear();
            }
            let data = ImageData::open(&self.out.join(&shard))
                .map_err(|e| anyhow!("{e}; run `index` again if the dataset changed since, or `verify --repair`"))?;
            self.shards.insert(shard.clone(), data);
        }
        Ok(self.shards[&shard].read(row)?)
    }
}

/// Text field `name` of row `i`, empty when null or absent.
pub fn text(rows: &DataFrame, name: &str, i: usize) -> String {
    rows.column(name).ok().and_then(|c| c.str().ok().and_then(|s| s.get(i).map(String::from))).unwrap_or_default()
}

/// The file extension of a stored `format` (`jpeg` is `jpg`); raw RGB pixels are `rgb`.
pub fn extension(format: &str) -> &str {
    match format {
        "jpeg" => "jpg",
        "" => "bin",
        other => other,
    }
}

/// Every field of row `i`, as JSON values of their types (lists as arrays, nulls as null).
pub fn row_json(rows: &DataFrame, i: usize) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    for c in rows.columns() {
        let value = c.get(i).map(|v| json_value(&v)).unwrap_or(serde_json::Value::Null);
        map.insert(c.name().to_string(), value);
    }
    map
}

fn json_value(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::UInt8(n) => Value::from(*n),
        AnyValue::UInt16(n) => Value::from(*n),
        AnyValue::UInt32(n) => Value::from(*n),
        AnyValue::UInt64(n) => Value::from(*n),
        AnyValue::Int8(n) => Value::from(*n),
        AnyValue::Int16(n) => Value::from(*n),
        AnyValue::Int32(n) => Value::from(*n),
        AnyValue::Int64(n) => Value::from(*n),
        AnyValue::Float32(n) => Value::from(*n),
        AnyValue::Float64(n) => Value::from(*n),
        AnyValue::List(s) => Value::Array(s.iter().map(|x| json_value(&x)).collect()),
        other => Value::String(other.to_string()),
    }
}

/// The taxonomic caption of row `i`: the scientific name (else the species, else the genus),
/// then the family, order, class and kingdom that are there, e.g. `Quercus robur, family
/// Fagaceae, order Fagales, kingdom Plantae`. Empty when the manifest has no taxonomy (prep
/// without `--occurrence`).
pub fn taxonomic_caption(rows: &DataFrame, i: usize) -> String {
    let get = |n: &str| text(rows, n, i).trim().to_string();
    let mut parts = Vec::new();
    if let Some(name) = ["scientific_name", "species", "genus"].into_iter().map(get).find(|s| !s.is_empty()) {
        parts.push(name);
    }
    for rank in ["family", "order", "class", "kingdom"] {
        let value = get(rank);
        if !value.is_empty() {
            parts.push(format!("{rank} {value}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caption_names_the_taxon_then_the_ranks_present_and_is_empty_without_taxonomy() {
        let rows = df!(
            "scientific_name" => [Some("Quercus robur L."), None, None],
            "genus" => [Some("Quercus"), Some("Puma"), None],
            "family" => [Some("Fagaceae"), Some("Felidae"), None],
            "order" => [None::<&str>, None, None],
            "kingdom" => [Some("Plantae"), Some("Animalia"), None],
        )
        .unwrap();
        assert_eq!(taxonomic_caption(&rows, 0), "Quercus robur L., family Fagaceae, kingdom Plantae");
        assert_eq!(taxonomic_caption(&rows, 1), "Puma, family Felidae, kingdom Animalia");
        assert_eq!(taxonomic_caption(&rows, 2), "");
    }
}
