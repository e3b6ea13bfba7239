//! `export`: a downloaded, indexed dataset (GBIF multimedia rows with licences, one row taken
//! down, one page that is not an image) written as WebDataset, parquet and a Hugging Face folder,
//! each read back by its own Python reader (`webdataset`, pyarrow, `datasets`): the stored images
//! once each, decoding to their recorded sizes, with their licences; a licence `filter` before an
//! export keeps exactly the allowed rows; two ranks write the same bytes as one; `--seed` orders
//! the same images differently; a killed export, run again, has each image once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::FAST;
use crate::licenses::read_manifest;
use crate::util::*;

/// Licences of the rows, in turn: (the GBIF string, its SPDX id).
const LICENCES: [(&str, &str); 4] = [
    ("http://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
    ("CC0", "CC0-1.0"),
    ("CC BY-NC 4.0", "CC-BY-NC-4.0"),
    ("", "unknown"),
];

/// A stored image as the manifest says it: (url, width, height, license id, raw licence).
type Stored = BTreeMap<String, (String, u32, u32, String, String)>;

/// Reads every shard of a WebDataset export with the `webdataset` package; prints one JSON line
/// per sample: its key, image size, and fields of its JSON and caption.
const READ_WDS: &str = r#"
import glob, io, json, os, webdataset as wds
from PIL import Image
files = sorted(glob.glob(os.environ["DIR"] + "/shard-*.tar"))
for s in wds.WebDataset(files, shardshuffle=False):
    ext = [k for k in ("jpg", "png", "webp", "gif") if k in s][0]
    im = Image.open(io.BytesIO(s[ext])); im.load()
    meta = json.loads(s["json"])
    print(json.dumps({"key": s["__key__"], "w": im.size[0], "h": im.size[1], "uuid": meta["uuid"],
                      "license_id": meta["license_id"], "license": meta["license"], "url": meta["url"],
                      "caption": s["txt"].decode() if "txt" in s else None}))
"#;

/// Reads a parquet export with pyarrow, the same lines.
const READ_PARQUET: &str = r#"
import glob, io, json, os, pyarrow.parquet as pq
from PIL import Image
for f in sorted(glob.glob(os.environ["DIR"] + "/shard-*.parquet")):
    for r in pq.read_table(f).to_pylist():
        im = Image.open(io.BytesIO(r["image"])); im.load()
        print(json.dumps({"key": r["uuid"], "w": im.size[0], "h": im.size[1], "uuid": r["uuid"],
                          "license_id": r["license_id"], "license": r["license"], "url": r["url"], "caption": None}))
"#;

/// Opens a Hugging Face export with `datasets.load_dataset`, the same lines.
const READ_HF: &str = r#"
import json, os, datasets
d = datasets.load_dataset(os.environ["DIR"], split="train")
assert isinstance(d.features["image"], datasets.Image), d.features
for r in d:
    print(json.dumps({"key": r["uuid"], "w": r["image"].size[0], "h": r["image"].size[1], "uuid": r["uuid"],
                      "license_id": r["license_id"], "license": r["license"], "url": r["url"], "caption": None}))
"#;

#[test]
fn exports_read_back_by_their_own_readers_hold_each_kept_image_once_with_its_licence_on_any_rank_count() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let dir = tempdir();
    let mut lines = vec![GBIF_HEADER.to_string()];
    let mut urls = Vec::new();
    for i in 0..24 {
        let (path, mime) = if i % 3 == 2 {
            (format!("/img/w40-h{}-{i}.png", 30 + i), "image/png")
        } else {
            (format!("/img/w{}-h48-{i}.jpg", 60 + i), "image/jpeg")
        };
        let url = origin.url(i % 2, &path);
        let (licence, _) = LICENCES[i % 4];
        // gbifID type format identifier references title description source audience created
        // creator contributor publisher license rightsHolder
        lines.push(format!("{}\tStillImage\t{mime}\t{url}\thttp://portal/{i}\tPhoto {i}\t\t\t\t2020\tPerson {i}\t\tPublisher {}\t{licence}\tMuseum", i + 1, i % 2));
        urls.push(url);
    }
    let page = origin.url(0, "/about.html");
    lines.push(format!("99\tStillImage\timage/jpeg\t{page}\t\t\t\t\t\t\t\t\t\t\t"));
    let input = dir.path().join("multimedia.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let config = dir.path().join("job.env");
    std::fs::write(&config, format!("CONTACT=tests@example.org\n{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"))
        .unwrap();
    let out = dir.path().join("out");
    let (cfg, o) = (config.to_str().unwrap(), out.to_str().unwrap());
    let to = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    run_ok(&["--config", cfg, "prep", "-i", input.to_str().unwrap(), "-o", o, "--batch-size", "5"]);
    run_ok(&["--config", cfg, "download", "-o", o]);
    let takedown = dir.path().join("takedown.txt");
    std::fs::write(&takedown, format!("{}\n", urls[4])).unwrap();
    run_ok(&["remove", "-o", o, "--urls", takedown.to_str().unwrap()]);
    // Downloaded, not indexed yet.
    let missing = run(&["export", "-o", o, "--format", "parquet", "--to", &to("early")]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("run `index`"), "{}", stderr(&missing));

    run_ok(&["index", "-o", o]);
    let stored = stored_rows(&out);
    assert_eq!(stored.len(), 23, "24 images, one taken down; the page failed");
    assert!(stored.values().all(|s| s.0 != urls[4] && s.0 != page));

    // WebDataset, with captions: every stored image once, at its size, with its licence.
    let wds = to("wds");
    let report =
        export(&["-o", o, "--format", "webdataset", "--to", &wds, "--shard-size", "5", "--caption", "taxonomic"]);
    assert_eq!((report["images"].as_u64(), report["shards"].as_u64()), (Some(23), Some(5)), "{report}");
    if let Some(samples) = read_back(&["webdataset", "PIL"], READ_WDS, &wds) {
        assert_samples(&samples, &stored, "webdataset");
        assert_doc_snippet("import io, json, glob, os, webdataset as wds", &wds, stored.len());
        // No taxonomy without prep --occurrence: every caption is there, and empty.
        assert!(samples.iter().all(|s| s["caption"] == ""), "{samples:?}");
    }
    assert_card(Path::new(&wds), &stored, "shard-000000.tar");

    // A folder holding something else is never written into.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), "mine").unwrap();
    let refused = run(&["export", "-o", o, "--format", "parquet", "--to", junk.to_str().unwrap()]);
    assert!(!refused.status.success() && stderr(&refused).contains("not empty"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_dir(&junk).unwrap().count(), 1, "nothing written into it");

    // Parquet, in shards of bytes: each shard at most the size unless one image alone is larger.
    let pq = to("parquet");
    let report = export(&["-o", o, "--format", "parquet", "--to", &pq, "--shard-size", "4KB"]);
    assert_eq!(report["images"].as_u64(), Some(23), "{report}");
    for f in report["files"].as_array().unwrap() {
        let (n, b) = (f["images"].as_u64().unwrap(), f["image_bytes"].as_u64().unwrap());
        assert!(b <= 4_000 || n == 1, "{f}");
    }
    if let Some(samples) = read_back(&["pyarrow", "PIL"], READ_PARQUET, &pq) {
        assert_samples(&samples, &stored, "parquet");
        assert_doc_snippet("import io, glob, os, pyarrow.dataset as ds", &pq, stored.len());
    }
    assert_card(Path::new(&pq), &stored, "shard-000000.parquet");

    // Two ranks write the same bytes as one; another seed orders the same images otherwise.
    let (one, two, other) = (to("seed7"), to("seed7-mpi"), to("seed8"));
    export(&["-o", o, "--format", "webdataset", "--to", &one, "--shard-size", "6", "--seed", "7"]);
    let mpi = mpirun(
        2,
        &["export", "-o", o, "--format", "webdataset", "--to", &two, "--shard-size", "6", "--seed", "7", "--json"],
    );
    assert!(mpi.status.success(), "{}", stderr(&mpi));
    assert_eq!(shard_bytes(&one), shard_bytes(&two), "1 and 2 ranks: byte-identical shards");
    export(&["-o", o, "--format", "webdataset", "--to", &other, "--shard-size", "6", "--seed", "8"]);
    let (order7, order8, order_plain) = (tar_keys(&one), tar_keys(&other), tar_keys(&wds));
    assert_ne!(order7, order8, "another seed, another order");
    assert_ne!(order7, order_plain, "a seed shuffles the manifest's order");
    let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(sorted(&order7), sorted(&order8));
    assert_eq!(order7.len(), 23);

    // Killed after its first shard: run again, each image once, the same bytes as a whole run.
    let killed = to("killed");
    let args = ["export", "-o", o, "--format", "webdataset", "--to", &killed, "--shard-size", "6", "--seed", "7"];
    let marker = dir.path().join("paused");
    let mut child = bin()
        .args(args)
        .env("DD_TEST_PAUSE_AT", "export-shard")
        .env("DD_TEST_PAUSE_MARKER", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !marker.exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(marker.exists(), "export reached its first shard within 60 s");
    assert_eq!(shard_bytes(&killed).len(), 1, "the killed run committed one shard");
    let again: serde_json::Value = serde_json::from_str(&run_ok(&[&args[..], &["--json"]].concat())).unwrap();
    assert_eq!((again["written"].as_u64(), again["resumed"].as_u64()), (Some(3), Some(1)), "{again}");
    assert_eq!(tar_keys(&killed), order7, "each image once, in the same order");
    assert_eq!(shard_bytes(&killed), shard_bytes(&one));
    let other_size = run(&["export", "-o", o, "--format", "webdataset", "--to", &killed, "--shard-size", "5"]);
    assert!(!other_size.status.success());
    assert!(stderr(&other_size).contains("run the same command to resume"), "{}", stderr(&other_size));

    // A licence filter, then a Hugging Face folder: exactly the allowed rows.
    run_ok(&["filter", "-o", o, "--license", "CC0-1.0,CC-BY-4.0"]);
    let allowed: Stored =
        stored.into_iter().filter(|(_, s)| ["CC0-1.0", "CC-BY-4.0"].contains(&s.3.as_str())).collect();
    let wds_card = std::fs::read_to_string(Path::new(&wds).join("README.md")).unwrap();
    assert!(wds_card.contains("## Citation") && wds_card.contains("distributed-downloader cite -o"), "{wds_card}");
    run_ok(&["cite", "-o", o]);
    let hf = to("hf");
    let report = export(&["-o", o, "--format", "hf", "--to", &hf, "--shard-size", "5"]);
    // cite's files travel with the export, and its card cites the dataset.
    for name in ["CITATION.bib", "CITATION.cff", "derived-dataset.csv"] {
        let (made, copied) = (std::fs::read(out.join("cite").join(name)), std::fs::read(Path::new(&hf).join(name)));
        assert_eq!(copied.unwrap(), made.unwrap(), "{name} beside the export");
    }
    let hf_card = std::fs::read_to_string(Path::new(&hf).join("README.md")).unwrap();
    assert!(hf_card.contains("```bibtex\n@misc{gbif_derived_"), "{hf_card}");
    assert_eq!((report["images"].as_u64(), report["keep_list"].as_bool()), (Some(allowed.len() as u64), Some(true)));
    if let Some(samples) = read_back(&["datasets", "PIL"], READ_HF, &hf) {
        assert_samples(&samples, &allowed, "hf");
        assert_doc_snippet("import os, datasets", &hf, allowed.len());
    }
    assert_readme_snippet(&wds, &hf, allowed.len());
    assert!(Path::new(&hf).join("data/train-00000-of-00003.parquet").is_file());
    assert_card(Path::new(&hf), &allowed, "data/train-00000-of-00003.parquet");
    let card = std::fs::read_to_string(Path::new(&hf).join("README.md")).unwrap();
    assert!(card.contains("dtype: image") && card.contains("keep-list"), "{card}");
    let hf_two = to("hf-mpi");
    let mpi = mpirun(2, &["export", "-o", o, "--format", "hf", "--to", &hf_two, "--shard-size", "5", "--json"]);
    assert!(mpi.status.success(), "{}", stderr(&mpi));
    let data = |d: &str| files_of(&format!("{d}/data"), "parquet");
    assert_eq!(data(&hf).len(), 3);
    assert_eq!(data(&hf), data(&hf_two), "1 and 2 ranks: byte-identical parquet files");
}

/// Runs `export` with `args` and `--json`, returning its report.
fn export(args: &[&str]) -> serde_json::Value {
    let args = [&["export"], args, &["--json"]].concat();
    serde_json::from_str(&run_ok(&args)).unwrap()
}

/// The manifest's stored rows by uuid.
fn stored_rows(out: &Path) -> Stored {
    let m = read_manifest(out);
    let s = |n: &str| m.column(n).unwrap().str().unwrap().clone();
    let (uuid, url, status, id, raw) = (s("uuid"), s("url"), s("status"), s("license_id"), s("license"));
    let (w, h) = (
        m.column("stored_width").unwrap().u32().unwrap().clone(),
        m.column("stored_height").unwrap().u32().unwrap().clone(),
    );
    (0..m.height())
        .filter(|&i| status.get(i) == Some("stored"))
        .map(|i| {
            let row = (
                url.get(i).unwrap().to_string(),
                w.get(i).unwrap(),
                h.get(i).unwrap(),
                id.get(i).unwrap().to_string(),
                raw.get(i).unwrap_or("").to_string(),
            );
            (uuid.get(i).unwrap().to_string(), row)
        })
        .collect()
}

/// Each line `script` prints, as JSON, read from export folder `dir`; `None` when no Python has
/// `modules` (see `python_with`).
fn read_back(modules: &[&str], script: &str, dir: &str) -> Option<Vec<serde_json::Value>> {
    let mut python = python_with(modules, &format!("reading the export {dir} back"))?;
    let hf = Path::new(dir).with_extension("hf-home");
    let out = python
        .arg("-c")
        .arg(script)
        .env("DIR", dir)
        .env("HF_HOME", &hf)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

/// The samples are `want`'s images, once each, at their sizes, with their licences.
fn assert_samples(samples: &[serde_json::Value], want: &Stored, format: &str) {
    let mut seen = BTreeSet::new();
    for s in samples {
        let uuid = s["uuid"].as_str().unwrap();
        assert_eq!(s["key"].as_str(), Some(uuid), "{format}: {s}");
        assert!(seen.insert(uuid.to_string()), "{format}: {uuid} twice");
        let (url, w, h, id, raw) = want.get(uuid).unwrap_or_else(|| panic!("{format}: {uuid} is not to be exported"));
        assert_eq!((s["w"].as_u64(), s["h"].as_u64()), (Some(u64::from(*w)), Some(u64::from(*h))), "{format}: {url}");
        assert_eq!(s["license_id"].as_str(), Some(id.as_str()), "{format}: {url}");
        assert_eq!(s["license"].as_str().unwrap_or(""), raw, "{format}: {url}");
        let (_, want_id) = LICENCES.iter().find(|l| l.0 == raw).unwrap();
        assert_eq!(id, want_id, "the input's licence");
    }
    assert_eq!(seen.len(), want.len(), "{format}: every image");
}

/// `mlcroissant validate` passes `file`, when scripts/croissant-env.sh could install it (it is
/// run by scripts/setup.sh and never fails it); without it, the structure checked above is all.
fn validate_croissant(file: &Path) {
    let venv = std::env::var_os("DD_CROISSANT_ENV").map(std::path::PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/distributed-downloader/croissant-env"))
    });
    let Some(validator) = venv.map(|v| v.join("bin/mlcroissant")).filter(|v| v.is_file()) else {
        eprintln!(
            "mlcroissant is not installed (scripts/croissant-env.sh): croissant.json's structure only is checked"
        );
        return;
    };
    let out = std::process::Command::new(&validator).args(["validate", "--jsonld"]).arg(file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mlcroissant validate {}:\n{said}", file.display());
    assert!(!said.contains("is not standard"), "the JSON-LD context names every key: {said}");
}

/// The Python snippet of README.md's "Publishing a dataset" reads the WebDataset export `wds`
/// and the Hugging Face folder `hf` (of `hf_images` images).
fn assert_readme_snippet(wds: &str, hf: &str, hf_images: usize) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```python\nimport glob, webdataset as wds, datasets").expect("the README snippet") + 10;
    let snippet =
        readme[start..start + readme[start..].find("```").unwrap()].replace("OUT-wds", wds).replace("OUT-hf", hf);
    let Some(mut python) = python_with(&["webdataset", "datasets", "PIL"], "the Python snippet of README.md") else {
        return;
    };
    let hf_home = Path::new(hf).parent().unwrap().join("hf-home-readme");
    let out = python.arg("-c").arg(&snippet).env("HF_HOME", &hf_home).env("HF_DATASETS_OFFLINE", "1").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{snippet}\n{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("and {hf_images} images, the first (")), "{said}");
    let first = said.split_whitespace().next().unwrap_or_default();
    assert!(LICENCES.iter().any(|(_, id)| *id == first), "the first sample's licence id: {said}");
}

/// The Python snippet of docs/export.md starting with `first_line` reads export `dir`: `images`
/// images, the first of them decoded.
fn assert_doc_snippet(first_line: &str, dir: &str, images: usize) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/export.md")).unwrap();
    let start = doc.find(&format!("```python\n{first_line}")).expect("the snippet") + 10;
    let snippet = &doc[start..start + doc[start..].find("```").unwrap()];
    let Some(mut python) = python_with(&["webdataset", "datasets", "PIL"], "the snippets of docs/export.md") else {
        return;
    };
    let hf = Path::new(dir).with_extension("hf-home");
    let out = python
        .arg("-c")
        .arg(snippet)
        .env("DIR", dir)
        .env("HF_HOME", &hf)
        .env("HF_DATASETS_OFFLINE", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{snippet}\n{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with(&format!("{images} images; first: (")), "{first_line}: {said}");
}

/// `attribution.csv`, the card and the Croissant file describe export `dir` of `want`'s images.
fn assert_card(dir: &Path, want: &Stored, first_shard: &str) {
    let mut csv = csv::Reader::from_path(dir.join("attribution.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    assert_eq!(headers.iter().collect::<Vec<_>>()[..3], ["uuid", "url", "license_id"]);
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), want.len(), "one attribution row per image");
    for r in &rows {
        let (url, _, _, id, _) = &want[&r[0]];
        assert_eq!((&r[1], &r[2]), (url.as_str(), id.as_str()));
        assert_eq!(
            (&r[4], &r[6]),
            ("Museum", if url.contains("127.0.0.2") { "Publisher 0" } else { "Publisher 1" }),
            "credits"
        );
    }
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let ids: BTreeSet<&str> = want.values().map(|s| s.3.as_str()).collect();
    for id in &ids {
        assert!(card.contains(&format!("- \"{}\"", id.to_lowercase())), "licence {id} in the front matter:\n{card}");
        let count = want.values().filter(|s| s.3 == *id).count();
        assert!(card.contains(&format!("| {id} | {count} |")), "{id}: {count} images\n{card}");
    }
    assert!(
        card.starts_with("---\n")
            && card.contains("size_categories:\n- \"n<1K\"")
            && card.contains("distributed-downloader export"),
        "{card}"
    );
    let croissant: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("croissant.json")).unwrap()).unwrap();
    let files = croissant["distribution"].as_array().unwrap();
    assert_eq!(files[0]["contentUrl"].as_str(), Some(first_shard));
    for f in files.iter().filter(|f| f["@type"] == "cr:FileObject") {
        let bytes = std::fs::read(dir.join(f["contentUrl"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), format!("{:x}", Sha256::digest(&bytes)), "{f}");
    }
    let sets: Vec<&serde_json::Value> = files.iter().filter(|f| f["@type"] == "cr:FileSet").collect();
    if first_shard.ends_with(".tar") {
        let images = sets.iter().find(|f| f["@id"] == "image-files").expect("a file set of the images");
        assert_eq!(images["includes"], serde_json::json!(["*.jpg", "*.png"]), "{images}");
        assert_eq!(images["containedIn"].as_array().map(Vec::len), Some(files.len() - sets.len()), "in every shard");
    } else {
        assert_eq!(sets.len(), 1, "one file set of the parquet files: {sets:?}");
    }
    let sets = croissant["recordSet"].as_array().unwrap();
    let fields: Vec<&str> =
        sets.iter().flat_map(|r| r["field"].as_array().unwrap()).map(|f| f["name"].as_str().unwrap()).collect();
    assert!(["image", "uuid", "license_id", "rights_holder"].iter().all(|f| fields.contains(f)), "{fields:?}");
    validate_croissant(&dir.join("croissant.json"));
}

/// The bytes of each tar shard of export `dir`, by name.
fn shard_bytes(dir: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    files_of(dir, "tar")
}

/// The bytes of each `.ext` file of folder `dir`, by name.
fn files_of(dir: &str, ext: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == ext) {
            files.insert(PathBuf::from(p.file_name().unwrap()), std::fs::read(&p).unwrap());
        }
    }
    files
}

/// The uuid of each image of export `dir`'s tar shards, in order (read as tar headers: a name,
/// then the size in octal at byte 124).
fn tar_keys(dir: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for bytes in shard_bytes(dir).values() {
        let mut at = 0;
        while at + 512 <= bytes.len() && bytes[at] != 0 {
            let h = &bytes[at..at + 512];
            let name = String::from_utf8_lossy(&h[..100]).trim_end_matches('\0').to_string();
            let size = usize::from_str_radix(String::from_utf8_lossy(&h[124..135]).trim(), 8).unwrap();
            if !name.ends_with(".json") && !name.ends_with(".txt") {
                keys.push(name.split('.').next().unwrap().to_string());
            }
            at += 512 + size.div_ceil(512) * 512;
        }
    }
    keys
}
