//! What an export says about itself, written by rank 0 once every shard is there:
//! `attribution.csv` (a row per image: its licence and whom to credit), the dataset card
//! `README.md` (YAML front matter with the licences, size category and, for `hf`, the configs
//! and features `datasets.load_dataset` reads; a body with counts per licence and source and how
//! the export was made) and `croissant.json` (Croissant 1.0 JSON-LD: the files with their SHA-256
//! and the record set's fields).

use std::collections::BTreeMap;

use polars::prelude::*;
use serde_json::{json, Value};

use super::formats::{Format, ShardMade};
use super::rows::{extension, text};

/// The columns of `attribution.csv`, each a manifest field.
pub const ATTRIBUTION_FIELDS: [&str; 10] = [
    "uuid",
    "url",
    "license_id",
    "license",
    "rights_holder",
    "creator",
    "publisher",
    "references",
    "source",
    "dataset_key",
];

/// The rows of `attribution.csv` for a shard's manifest rows, without the header.
pub fn attribution_rows(rows: &DataFrame) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for i in 0..rows.height() {
        w.write_record(ATTRIBUTION_FIELDS.iter().map(|f| text(rows, f, i)))?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("cannot write attribution rows: {e}"))
}

/// The header line of `attribution.csv`.
pub fn attribution_header() -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(ATTRIBUTION_FIELDS).expect("writes to memory");
    w.into_inner().expect("writes to memory")
}

/// What the card and the Croissant file describe.
pub struct Described<'a> {
    pub name: String,
    pub format: Format,
    pub shards: &'a [ShardMade],
    /// The manifest's fields and their types, in order, and the columns an export adds before
    /// them (`image`, `caption`).
    pub fields: Vec<(String, DataType)>,
    pub caption: bool,
    pub selection: String,
    pub order: String,
    pub command: String,
    pub date: String,
}

impl Described<'_> {
    fn images(&self) -> u64 {
        self.shards.iter().map(|s| s.images).sum()
    }

    fn totals(&self, pick: impl Fn(&ShardMade) -> &BTreeMap<String, u64>) -> Vec<(String, u64)> {
        let mut sum: BTreeMap<String, u64> = BTreeMap::new();
        for s in self.shards {
            for (k, v) in pick(s) {
                *sum.entry(k.clone()).or_insert(0) += v;
            }
        }
        let mut v: Vec<(String, u64)> = sum.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Hugging Face's size category of `n` items.
fn size_category(n: u64) -> &'static str {
    match n {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        10_000_000..100_000_000 => "10M<n<100M",
        100_000_000..1_000_000_000 => "100M<n<1B",
        _ => "n>1B",
    }
}

/// A licence as the Hub spells it: the SPDX id in lower case; `other` for a licence it cannot
/// name (all rights reserved).
fn hub_license(id: &str) -> String {
    match id {
        "all-rights-reserved" => "other".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

/// A value as YAML reads it: a JSON string is a YAML double-quoted scalar.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A column's type as a `datasets` feature, in the card's YAML.
fn hf_feature(name: &str, dtype: &DataType) -> String {
    let scalar = |t: &DataType| match t {
        DataType::Boolean => "bool",
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        DataType::Binary => "binary",
        _ => "string",
    };
    match dtype {
        DataType::List(inner) => format!("  - name: {}\n    sequence: {}\n", q(name), scalar(inner)),
        DataType::Null => format!("  - name: {}\n    dtype: string\n", q(name)),
        t => format!("  - name: {}\n    dtype: {}\n", q(name), scalar(t)),
    }
}

/// The dataset card, `README.md`.
pub fn readme(d: &Described) -> String {
    let images = d.images();
    let licenses = d.totals(|s| &s.by_license);
    let mut yaml = String::from("---\nlicense:\n");
    let mut hub: Vec<String> = licenses.iter().map(|(l, _)| hub_license(l)).collect();
    hub.sort();
    hub.dedup();
    for l in &hub {
        yaml += &format!("- {}\n", q(l));
    }
    yaml += &format!("size_categories:\n- {}\ntask_categories:\n- image-classification\n", q(size_category(images)));
    yaml += &format!("pretty_name: {}\ntags:\n- images\n- biodiversity\n- {}\n", q(&d.name), q(d.format.name()));
    if d.format == Format::Hf {
        yaml += "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: \"data/*.parquet\"\n";
        yaml += "dataset_info:\n  features:\n  - name: image\n    dtype: image\n";
        if d.caption {
            yaml += "  - name: caption\n    dtype: string\n";
        }
        for (name, dtype) in &d.fields {
            yaml += &hf_feature(name, dtype);
        }
        yaml += &format!("  splits:\n  - name: train\n    num_examples: {images}\n");
    }
    yaml += "---\n\n";
    let mut body = format!("# {}\n\n", d.name);
    let bytes: u64 = d.shards.iter().map(|s| s.image_bytes).sum();
    body += &format!(
        "{images} images ({:.1} MB of image bytes) in {} {} shard(s). {}. {}.\n\n",
        bytes as f64 / 1e6,
        d.shards.len(),
        d.format.name(),
        d.selection,
        d.order
    );
    body += &layout(d);
    body += "## Licences\n\nEvery image keeps the licence its source published; `attribution.csv` gives each image's \
             licence and whom to credit (rights holder, creator, publisher, references, source).\n\n\
             | licence (SPDX id) | images |\n|---|---:|\n";
    for (l, n) in &licenses {
        body += &format!("| {l} | {n} |\n");
    }
    for (title, pick) in [("Servers", 0), ("Publishers", 1)] {
        body += &format!("\n## {title}\n\n| {} | images |\n|---|---:|\n", title.to_lowercase().trim_end_matches('s'));
        let totals = if pick == 0 { d.totals(|s| &s.by_server) } else { d.totals(|s| &s.by_publisher) };
        for (k, n) in totals {
            body += &format!("| {} | {n} |\n", k.replace('|', "\\|"));
        }
    }
    if d.caption {
        let empty: u64 = d.shards.iter().map(|s| s.empty_captions).sum();
        body += &format!(
            "\n## Captions\n\nEach image's caption is its scientific name, then its family, order, class and kingdom \
             where the manifest has them. {empty} of {images} captions are empty: their rows carry no taxonomy.\n"
        );
    }
    body += &format!(
        "\n## How it was built\n\n- Tool: distributed-downloader {}\n- Command: `{}`\n- Date: {}\n- Metadata: \
         `croissant.json` (Croissant 1.0), `export.json` (the export's report)\n",
        env!("CARGO_PKG_VERSION"),
        d.command,
        d.date
    );
    yaml + &body
}

fn layout(d: &Described) -> String {
    match d.format {
        Format::Webdataset => "## Layout\n\nTar shards `shard-NNNNNN.tar` for the `webdataset` package: per image \
             `<uuid>.<ext>` (the stored bytes), `<uuid>.json` (its manifest row, licence and attribution included)\
             , and `<uuid>.txt` (its caption) when captions were asked for.\n\n"
            .to_string(),
        Format::Parquet => "## Layout\n\nParquet files `shard-NNNNNN.parquet`, a row per image: `image` (the stored \
             bytes), then every field of its manifest row.\n\n"
            .to_string(),
        Format::Hf => "## Layout\n\nParquet files under `data/`, read by `datasets.load_dataset(\"<this folder>\")`; \
             `image` decodes to a PIL image, the other columns are the manifest's fields.\n\n"
            .to_string(),
    }
}

/// A column's type as Croissant names it.
fn croissant_type(name: &str, dtype: &DataType) -> &'static str {
    match (name, dtype) {
        ("image", _) => "sc:ImageObject",
        (_, DataType::Boolean) => "sc:Boolean",
        (_, DataType::Float32 | DataType::Float64) => "sc:Float",
        (_, t) if t.is_integer() => "sc:Integer",
        _ => "sc:Text",
    }
}

/// The Croissant 1.0 metadata, `croissant.json`: each shard a `FileObject` with its SHA-256, a
/// `FileSet` over them, and a record set whose fields say where each value is: a parquet column,
/// or in a tar shard the image file, the caption file or a key of the JSON file.
pub fn croissant(d: &Described) -> Value {
    let tar = d.format == Format::Webdataset;
    let encoding = if tar { "application/x-tar" } else { "application/x-parquet" };
    let mut distribution: Vec<Value> = d
        .shards
        .iter()
        .map(|s| {
            json!({"@type": "cr:FileObject", "@id": s.file, "name": s.file, "contentUrl": s.file,
                   "contentSize": format!("{} B", s.file_bytes), "encodingFormat": encoding, "sha256": s.sha256})
        })
        .collect();
    let shards: Vec<Value> = d.shards.iter().map(|s| json!({"@id": s.file})).collect();
    if tar {
        let formats = d.totals(|s| &s.by_format);
        let images: Vec<String> = formats.iter().map(|(f, _)| format!("*.{}", extension(f))).collect();
        let mimes: Vec<String> = formats.iter().map(|(f, _)| mime(f)).collect();
        let mut sets = vec![
            ("image-files", json!(images), json!(mimes)),
            ("json-files", json!("*.json"), json!("application/json")),
        ];
        if d.caption {
            sets.push(("caption-files", json!("*.txt"), json!("text/plain")));
        }
        for (id, includes, format) in sets {
            distribution.push(json!({"@type": "cr:FileSet", "@id": id, "name": id, "containedIn": shards,
                                     "encodingFormat": format, "includes": includes}));
        }
    } else {
        let includes = if d.format == Format::Hf { "data/*.parquet" } else { "shard-*.parquet" };
        distribution.push(json!({"@type": "cr:FileSet", "@id": "parquet-files", "name": "parquet-files",
                                 "encodingFormat": encoding, "includes": includes}));
    }
    let mut columns: Vec<(String, DataType)> = vec![("image".into(), DataType::Binary)];
    if d.caption {
        columns.push(("caption".into(), DataType::String));
    }
    columns.extend(d.fields.iter().cloned());
    let field = |set: &str, name: &str, dtype: &DataType, source: Value| {
        let mut f = json!({"@type": "cr:Field", "@id": format!("{set}/{name}"), "name": name,
                           "dataType": croissant_type(name, dtype), "source": source});
        if matches!(dtype, DataType::List(_)) {
            f["repeated"] = Value::Bool(true);
        }
        f
    };
    let record_sets: Vec<Value> = if tar {
        // One record set per kind of tar member (a record set reads one source), each keyed by
        // the member's name without its extension: the sample's uuid.
        let key = |set: &str, files: &str, ext: &str| {
            field(
                set,
                "key",
                &DataType::String,
                json!({"fileSet": {"@id": files}, "extract": {"fileProperty": "filename"},
                                                      "transform": {"regex": format!("^(.*)\\.{ext}$")}}),
            )
        };
        let json_fields = columns.iter().filter(|(n, _)| n != "image" && n != "caption").map(|(name, dtype)| {
            field(
                "images",
                name,
                dtype,
                json!({"fileSet": {"@id": "json-files"}, "extract": {"jsonPath": format!("$.{name}")}}),
            )
        });
        let mut sets = vec![
            json!({"@type": "cr:RecordSet", "@id": "images", "name": "images", "key": {"@id": "images/key"},
                   "description": "One record per exported image: its <uuid>.json.",
                   "field": std::iter::once(key("images", "json-files", "json")).chain(json_fields).collect::<Vec<_>>()}),
            json!({"@type": "cr:RecordSet", "@id": "image-bytes", "name": "image-bytes", "key": {"@id": "image-bytes/key"},
                   "description": "Each image's bytes (<uuid>.<ext>), keyed like `images`.",
                   "field": [key("image-bytes", "image-files", "[a-z]+"),
                             field("image-bytes", "image", &DataType::Binary,
                                   json!({"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "content"}}))]}),
        ];
        if d.caption {
            sets.push(json!({"@type": "cr:RecordSet", "@id": "captions", "name": "captions", "key": {"@id": "captions/key"},
                             "description": "Each image's caption (<uuid>.txt), keyed like `images`.",
                             "field": [key("captions", "caption-files", "txt"),
                                       field("captions", "caption", &DataType::String,
                                             json!({"fileSet": {"@id": "caption-files"}, "extract": {"fileProperty": "content"}}))]}));
        }
        sets
    } else {
        let fields: Vec<Value> = columns
            .iter()
            .map(|(name, dtype)| {
                field("images", name, dtype, json!({"fileSet": {"@id": "parquet-files"}, "extract": {"column": name}}))
            })
            .collect();
        vec![json!({"@type": "cr:RecordSet", "@id": "images", "name": "images",
                    "description": "One record per exported image.", "field": fields})]
    };
    let licenses: Vec<Value> = d
        .totals(|s| &s.by_license)
        .into_iter()
        .map(|(l, _)| {
            if l.starts_with("CC") {
                Value::String(format!("https://spdx.org/licenses/{l}.html"))
            } else {
                Value::String(l)
            }
        })
        .collect();
    json!({
        "@context": context(),
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": d.name,
        "description": format!("{} images exported by distributed-downloader as {}. {}. {}. Each image's licence and \
                                attribution are in attribution.csv and its record.", d.images(), d.format.name(), d.selection, d.order),
        "license": licenses,
        "datePublished": d.date,
        "version": "1.0.0",
        "distribution": distribution,
        "citeAs": format!("@misc{{{}, title = {{{}}}, note = {{{} images exported by distributed-downloader; cite the GBIF \
                           derived dataset of its source (distributed-downloader cite)}}, year = {{{}}}}}",
                          d.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), d.name, d.images(), d.date.get(..4).unwrap_or("")),
        "recordSet": record_sets,
    })
}

/// The MIME type of a stored format.
fn mime(format: &str) -> String {
    match format {
        "rgb" | "" => "application/octet-stream".to_string(),
        f => format!("image/{f}"),
    }
}

/// The JSON-LD context Croissant 1.0 documents use.
fn context() -> Value {
    json!({
        "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
        "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
        "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
        "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
        "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples", "@type": "@json"},
        "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
        "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
        "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
        "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
        "replace": "cr:replace", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
        "transform": "cr:transform", "equivalentProperty": "cr:equivalentProperty", "samplingRate": "cr:samplingRate"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_category_is_the_hubs_and_licences_are_named_as_the_hub_names_them() {
        assert_eq!(size_category(36), "n<1K");
        assert_eq!(size_category(1_000), "1K<n<10K");
        assert_eq!(size_category(250_000_000), "100M<n<1B");
        assert_eq!(hub_license("CC-BY-4.0"), "cc-by-4.0");
        assert_eq!(hub_license("all-rights-reserved"), "other");
    }
}
