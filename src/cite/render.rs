//! The files `cite` writes under `<output>/cite/`:
//!
//! - `derived-dataset.csv`: `datasetKey,count`, a line per GBIF dataset, the largest first: the
//!   table GBIF's derived-dataset registration (gbif.org/derived-dataset/register) takes;
//! - `CITATION.bib` and `CITATION.cff`: the derived dataset, to cite in a paper or ship with an
//!   export. GBIF gives a registered derived dataset a DOI; with `--doi` it is in both, without
//!   it they say where it goes.

use serde::Serialize;

use super::count::Counts;

/// What the derived dataset is called and where it lives.
#[derive(Debug, Clone, Serialize)]
pub struct About {
    pub title: String,
    /// Where the dataset is deposited (a URL), GBIF's "source URL".
    pub source_url: Option<String>,
    /// The DOI GBIF gave the registered derived dataset.
    pub doi: Option<String>,
    /// `YYYY-MM-DD`.
    pub date: String,
}

/// Appends `text` and a line end to `s`.
fn line(s: &mut String, text: String) {
    s.push_str(&text);
    s.push('\n');
}

/// `datasetKey,count`, the largest first (then by key).
pub fn csv(c: &Counts) -> String {
    let mut rows: Vec<(&String, &u64)> = c.by_dataset.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut s = String::from("datasetKey,count\n");
    for (key, n) in rows {
        // Dataset keys are UUIDs; anything else is quoted so the file stays two columns.
        let safe = key.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
        let key = if safe { key.clone() } else { format!("\"{}\"", key.replace('"', "\"\"")) };
        line(&mut s, format!("{key},{n}"));
    }
    s
}

/// The derived dataset as a BibTeX entry, in the form GBIF cites derived datasets:
/// "GBIF.org (date) Derived dataset <title>. https://doi.org/<doi>".
pub fn bibtex(c: &Counts, a: &About) -> String {
    let year = a.date.get(..4).unwrap_or("");
    let key = format!("gbif_derived_{}", a.date.replace('-', ""));
    let mut s = format!(
        "@misc{{{key},\n  author = {{{{GBIF.org}}}},\n  title = {{Derived dataset {}}},\n  year = {{{year}}},\n",
        a.title
    );
    match &a.doi {
        Some(doi) => {
            line(&mut s, format!("  doi = {{{doi}}},\n  url = {{https://doi.org/{doi}}},"));
        }
        None => s.push_str("  note = {Register it at https://www.gbif.org/derived-dataset/register with derived-dataset.csv, then run cite again with --doi},\n"),
    }
    if let Some(url) = &a.source_url {
        line(&mut s, format!("  howpublished = {{\\url{{{url}}}}},"));
    }
    line(
        &mut s,
        format!(
            "  annote = {{{} images from {} GBIF datasets, accessed {}}}\n}}",
            c.images - c.without_dataset,
            c.by_dataset.len(),
            a.date
        ),
    );
    s
}

/// The derived dataset as a CITATION.cff (Citation File Format 1.2.0).
pub fn cff(c: &Counts, a: &About) -> String {
    let mut s =
        String::from("cff-version: 1.2.0\nmessage: \"If you use this dataset, cite it as below.\"\ntype: dataset\n");
    line(&mut s, format!("title: \"Derived dataset {}\"", a.title.replace('"', "'")));
    s.push_str("authors:\n  - name: \"GBIF.org\"\n");
    line(&mut s, format!("date-released: \"{}\"", a.date));
    if let Some(doi) = &a.doi {
        line(&mut s, format!("doi: \"{doi}\""));
    }
    if let Some(url) = &a.source_url {
        line(&mut s, format!("url: \"{url}\""));
    }
    line(
        &mut s,
        format!(
            "abstract: \"{} images from {} GBIF datasets; per-dataset counts in derived-dataset.csv.\"",
            c.images - c.without_dataset,
            c.by_dataset.len()
        ),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> Counts {
        let by_dataset = [("b-key".to_string(), 2), ("a-key".to_string(), 5), ("c,key".to_string(), 2)];
        Counts { by_dataset: by_dataset.into_iter().collect(), images: 10, without_dataset: 1, ..Default::default() }
    }

    #[test]
    fn the_csv_lists_each_dataset_once_the_largest_first_and_stays_two_columns() {
        assert_eq!(csv(&counts()), "datasetKey,count\na-key,5\nb-key,2\n\"c,key\",2\n");
    }

    #[test]
    fn the_citation_names_the_doi_when_there_is_one_and_says_how_to_get_one_when_not() {
        let about = About { title: "x".into(), source_url: None, doi: None, date: "2026-12-02".into() };
        let bib = bibtex(&counts(), &about);
        assert!(bib.contains("derived-dataset/register") && bib.contains("year = {2026}"), "{bib}");
        assert!(bib.contains("9 images from 3 GBIF datasets"), "{bib}");
        let about = About { doi: Some("10.15468/dd.abc123".into()), ..about };
        let (bib, cff) = (bibtex(&counts(), &about), cff(&counts(), &about));
        assert!(bib.contains("url = {https://doi.org/10.15468/dd.abc123}"), "{bib}");
        assert!(cff.contains("doi: \"10.15468/dd.abc123\"") && cff.starts_with("cff-version: 1.2.0"), "{cff}");
    }
}
