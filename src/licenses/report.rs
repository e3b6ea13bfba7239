//! `licenses`: what the manifest's stored images are licensed under and how many can be credited,
//! per licence, publisher, dataset and server.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use polars::prelude::*;
use serde::Serialize;

use super::spdx::{normalise, UNKNOWN};
use crate::index::run::manifest_files;
use crate::store::parquet::read_parquet;

/// Images, and how many of them have complete attribution.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Count {
    pub images: u64,
    pub complete: u64,
}

impl Count {
    fn add(&mut self, complete: bool) {
        self.images += 1;
        self.complete += u64::from(complete);
    }
}

/// The report, over every stored image of the manifest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LicenseReport {
    pub images: Count,
    /// By SPDX id (or `public-domain`, `all-rights-reserved`, `unknown`, ...).
    pub by_license: BTreeMap<String, Count>,
    pub by_publisher: BTreeMap<String, Count>,
    pub by_dataset: BTreeMap<String, Count>,
    pub by_server: BTreeMap<String, Count>,
    /// Creative Commons licences that named no version, read as 4.0.
    pub assumed_version: u64,
    /// The licence strings read as `unknown`, with how many images carry each (empty strings
    /// and missing licences under "").
    pub unknown_strings: BTreeMap<String, u64>,
}

/// Reads every manifest file of `out` (run `index` first).
pub fn report(out: &Path) -> anyhow::Result<LicenseReport> {
    let mut r = LicenseReport::default();
    for file in manifest_files(out)? {
        let df = read_parquet(&file)?;
        let mut read = || -> PolarsResult<()> {
            let text = |n: &str| -> PolarsResult<StringChunked> { Ok(df.column(n)?.str()?.clone()) };
            let (status, server, license) = (text("status")?, text("server")?, text("license")?);
            let (publisher, dataset) = (text("publisher")?, text("dataset_key")?);
            let complete = df.column("attribution_complete")?.bool()?.clone();
            for i in 0..df.height() {
                if status.get(i) != Some("stored") {
                    continue;
                }
                let raw = license.get(i).unwrap_or_default();
                let read = normalise(raw);
                let done = complete.get(i).unwrap_or(false);
                r.images.add(done);
                r.assumed_version += u64::from(read.assumed_version);
                if read.id == UNKNOWN {
                    *r.unknown_strings.entry(raw.to_string()).or_default() += 1;
                }
                r.by_license.entry(read.id).or_default().add(done);
                let name = |c: &StringChunked| c.get(i).filter(|s| !s.is_empty()).unwrap_or("(none)").to_string();
                r.by_publisher.entry(name(&publisher)).or_default().add(done);
                r.by_dataset.entry(name(&dataset)).or_default().add(done);
                r.by_server.entry(name(&server)).or_default().add(done);
            }
            Ok(())
        };
        read().map_err(|e| anyhow!("cannot read the manifest file {}: {e}; run `index --force`", file.display()))?;
    }
    Ok(r)
}

/// The report for a person: every licence, then the `top` largest publishers, datasets and
/// servers, and the most frequent licence strings read as `unknown`.
pub fn screen(r: &LicenseReport, top: usize) -> String {
    let pct = |part: u64, whole: u64| if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 };
    let mut s = format!(
        "licenses: {} stored image(s), {:.1}% with complete attribution (a licence, a rights holder or creator, a source)\n",
        r.images.images,
        pct(r.images.complete, r.images.images)
    );
    let mut section = |title: &str, map: &BTreeMap<String, Count>, limit: usize| {
        let mut rows: Vec<(&String, &Count)> = map.iter().collect();
        rows.sort_by(|a, b| b.1.images.cmp(&a.1.images).then(a.0.cmp(b.0)));
        s += &format!("  {title} ({} in all):\n", map.len());
        for (name, c) in rows.iter().take(limit) {
            s += &format!(
                "    {:<40} {:>10} {:>6.1}%  complete {:>5.1}%\n",
                name,
                c.images,
                pct(c.images, r.images.images),
                pct(c.complete, c.images)
            );
        }
        if rows.len() > limit {
            s += &format!("    ... {} more (--json lists all)\n", rows.len() - limit);
        }
    };
    section("by licence", &r.by_license, usize::MAX);
    section("by publisher", &r.by_publisher, top);
    section("by dataset", &r.by_dataset, top);
    section("by server", &r.by_server, top);
    if r.assumed_version > 0 {
        s += &format!(
            "  {} image(s) name a Creative Commons licence without a version: read as 4.0 (docs/licenses.md)\n",
            r.assumed_version
        );
    }
    if !r.unknown_strings.is_empty() {
        let mut rows: Vec<(&String, &u64)> = r.unknown_strings.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        s += "  read as unknown (add a line to config/licenses.csv for a string that names a licence):\n";
        for (raw, n) in rows.iter().take(top) {
            let shown = if raw.is_empty() { "(no licence)".to_string() } else { format!("{raw:?}") };
            s += &format!("    {n:>10}  {shown}\n");
        }
    }
    s
}
