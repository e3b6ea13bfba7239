//! `cite`: counts the manifest's images per GBIF dataset and writes the citation files under
//! `<output>/cite/` (each replaced atomically; no lock: it reads files `index` and `filter`
//! replace atomically).

use anyhow::anyhow;

use super::invocation::Invocation;
use super::Failure;
use crate::cite::count::count;
use crate::cite::render::{bibtex, cff, csv, About};
use crate::cli::CiteArgs;
use crate::store::atomic;

pub(super) fn cite(inv: &Invocation, args: CiteArgs) -> Result<(), Failure> {
    let output = inv.output(&args.output)?;
    if !output.is_dir() {
        return Err(Failure::Usage(anyhow!("{} does not exist: check --output or OUTPUT_DIR", output.display())));
    }
    let failed = |e: anyhow::Error| Failure::Run(e.context(format!("cite of {} failed", output.display())));
    let counts = count(&output).map_err(failed)?;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_string();
    let about = About { title: args.title.clone(), source_url: args.source_url.clone(), doi: args.doi.clone(), date };
    let dir = output.join("cite");
    std::fs::create_dir_all(&dir).map_err(|e| failed(anyhow!("cannot create {}: {e}", dir.display())))?;
    let files = [
        ("derived-dataset.csv", csv(&counts)),
        ("CITATION.bib", bibtex(&counts, &about)),
        ("CITATION.cff", cff(&counts, &about)),
    ];
    for (name, text) in &files {
        atomic::replace(&dir.join(name), text.as_bytes()).map_err(|e| failed(e.into()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&counts).expect("the counts serialise"));
        return Ok(());
    }
    println!(
        "cite: {} image(s) stored and kept{}, from {} GBIF dataset(s)",
        counts.images,
        if counts.keep_list { format!(" ({} left out by the keep-list)", counts.left_out) } else { String::new() },
        counts.by_dataset.len()
    );
    if counts.without_dataset > 0 {
        println!(
            "  {} image(s) have no datasetKey and are not in the CSV: run prep with --occurrence (GBIF's occurrence.txt), then index",
            counts.without_dataset
        );
    }
    println!(
        "  {}/derived-dataset.csv: datasetKey,count for https://www.gbif.org/derived-dataset/register",
        dir.display()
    );
    println!(
        "  {}/CITATION.bib, CITATION.cff{}",
        dir.display(),
        if args.doi.is_none() { ": run cite again with --doi once GBIF registered it" } else { "" }
    );
    Ok(())
}
