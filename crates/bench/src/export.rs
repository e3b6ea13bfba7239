//! `dd-bench export` (`make bench-export`): `export --format webdataset` of 100k stored images
//! (times `--scale`), against `tar` of the same bytes as the physical bound.
//!
//! The dataset is made as `bench-index` makes its own (prep of a URL list, one shard per batch
//! written with the product's shard writer), but every stored image is one of four 512 × 384
//! JPEGs (about 30 KB: export copies bytes, so their content does not matter, their size does);
//! then `index` (not timed). The release product's `export` runs in a child process (wall time,
//! images/s, MB/s, peak RSS), then the same image bytes, written out as one file each beforehand
//! (not timed), are archived by `tar cf` into one file on the same disk: images/s and MB/s, and
//! export's share of tar's rate. Both read from the page cache (the shards and the files are
//! freshly written) and write one archive stream.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::cli::ExportBenchArgs;
use crate::index::write_dataset_of;

/// Stored images at `--scale 1`, as the issue asks (the dataset has 1 failure in 20 rows more).
const IMAGES: u64 = 100_000;

pub fn run(args: &ExportBenchArgs) -> anyhow::Result<()> {
    crate::remove_scratch(&args.dir);
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let images = ((IMAGES as f64 * args.scale).round() as u64).max(1_000);
    // One row in 20 is a failure: enough rows for `images` stored ones.
    let rows = images * 20 / 19 + 1;
    let jpegs: Vec<Vec<u8>> = (0..4).map(|seed| test_origin::photo::synthetic_photo_jpeg(512, 384, seed, 85)).collect();
    let t = Instant::now();
    let out = write_dataset_of(&args.dir, rows, &jpegs, (512, 384))?;
    let product = std::env::current_exe()?.with_file_name("distributed-downloader");
    let index = Command::new(&product).args(["index", "--json", "-o"]).arg(&out).output()?;
    if !index.status.success() {
        bail!("index of the generated dataset failed; run `{} index -o {}`", product.display(), out.display());
    }
    let indexed: serde_json::Value =
        serde_json::from_slice(&index.stdout).context("index --json printed its report")?;
    let stored = indexed["stored"].as_u64().unwrap_or(0);
    eprintln!(
        "bench-export: wrote and indexed {rows} rows in {:.0} s; export in a fresh process",
        t.elapsed().as_secs_f64()
    );

    let wds = args.dir.join("wds");
    let mut cmd = Command::new(&product);
    cmd.args(["export", "--format", "webdataset", "--shard-size", "1GB", "--json", "-o"])
        .arg(&out)
        .arg("--to")
        .arg(&wds);
    let run = crate::child::measure(&mut cmd, &args.dir.join("export.json"))?;
    if !run.status.success() {
        bail!("export failed ({}); run it by hand on {} to see why", run.status, out.display());
    }
    let report: serde_json::Value = serde_json::from_str(&run.stdout).context("export --json printed its report")?;
    let exported = report["images"].as_u64().unwrap_or(0);
    let archive_bytes: u64 = tars(&wds)?.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();

    // The bound: the same image bytes, one file each, into one tar.
    let files = args.dir.join("files");
    std::fs::create_dir_all(&files)?;
    let mut image_bytes = 0u64;
    for i in 0..exported {
        let jpeg = &jpegs[i as usize % jpegs.len()];
        image_bytes += jpeg.len() as u64;
        std::fs::write(files.join(format!("{i:08}.jpg")), jpeg)?;
    }
    let t = Instant::now();
    let status =
        Command::new("tar").arg("cf").arg(args.dir.join("bound.tar")).arg("-C").arg(&args.dir).arg("files").status()?;
    let tar_s = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("tar failed ({status})");
    }
    let mb = image_bytes as f64 / 1e6;
    println!(
        "bench-export: images={exported} image_mb={mb:.0} export_s={:.1} export_images_per_s={:.0} export_mb_per_s={:.0} \
         export_peak_rss_mib={:.0} archive_mb={:.0} tar_s={tar_s:.1} tar_images_per_s={:.0} tar_mb_per_s={:.0} \
         export_share_of_tar={:.2}",
        run.seconds,
        exported as f64 / run.seconds,
        mb / run.seconds,
        run.peak_mib,
        archive_bytes as f64 / 1e6,
        exported as f64 / tar_s,
        mb / tar_s,
        tar_s / run.seconds,
    );
    if exported != stored || stored == 0 {
        bail!("export wrote {exported} images of the {stored} stored");
    }
    if !args.keep {
        crate::remove_scratch(&args.dir);
    }
    Ok(())
}

/// The tar shards of an export folder.
fn tars(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "tar") {
            v.push(p);
        }
    }
    Ok(v)
}
