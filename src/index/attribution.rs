//! What the manifest says of each image's licence and attribution: the columns `prep` kept in
//! the batch's URL file, joined by uuid, with the licence read as an SPDX id.
//!
//! `prep` keeps, of the lowest source id referencing a URL, the licence, rights holder, creator,
//! publisher, references and source link, and (with `--occurrence`) the occurrence's dataset,
//! publisher organisation, basis of record and taxonomy. A batch file from an older prep has
//! only some of them: the others are empty. `attribution_complete` is true when a licence (not
//! `unknown`), a rights holder or creator, and a source (`references` or `source`) are all there.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use crate::licenses::spdx::{normalise, UNKNOWN};
use crate::store::batches::BATCH_FILE;
use crate::store::parquet::read_parquet;
use crate::store::paths;

/// The batch file's columns the manifest carries, in this order.
pub const ATTRIBUTION_COLUMNS: [&str; 18] = [
    "license",
    "rights_holder",
    "creator",
    "publisher",
    "references",
    "source",
    "title",
    "dataset_key",
    "publishing_org_key",
    "basis_of_record",
    "kingdom",
    "phylum",
    "class",
    "order",
    "family",
    "genus",
    "species",
    "scientific_name",
];

/// One image's attribution, in `ATTRIBUTION_COLUMNS` order (`None`: empty or not kept), and
/// `taxon_key`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attribution {
    pub values: Vec<Option<String>>,
    pub taxon_key: Option<String>,
}

impl Attribution {
    fn get(&self, name: &str) -> Option<&str> {
        let at = ATTRIBUTION_COLUMNS.iter().position(|c| *c == name)?;
        self.values.get(at)?.as_deref()
    }

    /// The licence as an SPDX id (`unknown` without one).
    pub fn license_id(&self) -> String {
        self.get("license").map_or_else(|| UNKNOWN.to_string(), |l| normalise(l).id)
    }

    /// A licence, someone to credit and a link to the source are all there.
    pub fn complete(&self) -> bool {
        let credited = self.get("rights_holder").is_some() || self.get("creator").is_some();
        let linked = self.get("references").is_some() || self.get("source").is_some();
        self.license_id() != UNKNOWN && credited && linked
    }
}

/// Each uuid's attribution, from the batch's URL file (`None` if the batch has no file).
pub fn of_batch(out: &Path, server: &str, partition: u64) -> PolarsResult<HashMap<String, Attribution>> {
    let file = paths::batch_urls(out, server, partition).join(BATCH_FILE);
    if !file.is_file() {
        return Ok(HashMap::new());
    }
    let df = read_parquet(&file).map_err(|e| PolarsError::ComputeError(e.to_string().into()))?;
    let text = |name: &str| -> PolarsResult<Option<StringChunked>> {
        match df.column(name) {
            Ok(c) => Ok(Some(c.cast(&DataType::String)?.str()?.clone())),
            Err(_) => Ok(None),
        }
    };
    let uuids = df.column("uuid")?.str()?.clone();
    let columns: Vec<Option<StringChunked>> =
        ATTRIBUTION_COLUMNS.iter().map(|c| text(c)).collect::<PolarsResult<_>>()?;
    let taxon = text("taxon_key")?;
    let value = |c: &Option<StringChunked>, i: usize| {
        c.as_ref().and_then(|c| c.get(i)).map(str::trim).filter(|s| !s.is_empty()).map(String::from)
    };
    let mut by_uuid = HashMap::with_capacity(df.height());
    for i in 0..df.height() {
        let Some(uuid) = uuids.get(i) else { continue };
        let values = columns.iter().map(|c| value(c, i)).collect();
        by_uuid.insert(uuid.to_string(), Attribution { values, taxon_key: value(&taxon, i) });
    }
    join_occurrence(&paths::batch_occurrence(out, server, partition), &mut by_uuid)?;
    Ok(by_uuid)
}

/// Fills each uuid's dataset, publisher and taxonomy from the batch's `occurrence.parquet`, when
/// `prep --occurrence` wrote one.
fn join_occurrence(file: &Path, by_uuid: &mut HashMap<String, Attribution>) -> PolarsResult<()> {
    if !file.is_file() {
        return Ok(());
    }
    let df = read_parquet(file).map_err(|e| PolarsError::ComputeError(e.to_string().into()))?;
    let uuids = df.column("uuid")?.str()?.clone();
    let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).filter(|n| *n != "uuid").collect();
    for name in names {
        let values = df.column(name)?.cast(&DataType::String)?.str()?.clone();
        let at = ATTRIBUTION_COLUMNS.iter().position(|c| *c == name);
        for i in 0..df.height() {
            let (Some(uuid), Some(v)) = (uuids.get(i), values.get(i).filter(|v| !v.is_empty())) else { continue };
            let Some(a) = by_uuid.get_mut(uuid) else { continue };
            match at {
                Some(at) => a.values[at] = Some(v.to_string()),
                None if name == "taxon_key" => a.taxon_key = Some(v.to_string()),
                None => {}
            }
        }
    }
    Ok(())
}
