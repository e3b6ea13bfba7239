//! `dd-bench dedup` (`make bench-dedup`): `dedup` on a generated manifest of 10M rows (times
//! `--scale`), as `index` writes it (its own frame function, one file per batch of 10,000 rows
//! over [`SERVERS`] servers), with duplicates planted where the bench knows them:
//! - pairs of the same bytes, [`EXACT_EVERY`]: the same SHA-256, the first of a pair larger;
//! - near copies in threes, [`NEAR_EVERY`]: a photo's PDQ hash with 4-14 bits flipped and its
//!   pHash with at most one, a third of the manifest apart, the first copy the largest;
//! - one placeholder picture stored [`PLACEHOLDER_EVERY`] (the same bytes and hashes: each of its
//!   ten segments a bucket too large to compare, so it is found by its bytes).
//!
//! Every other row is a different photo (random hashes); 1% are too flat to near-match and 5%
//! are failures. It runs the release product's `dedup --json` in a child process and prints its
//! wall time, rows per second and peak RSS, and whether it found exactly the planted groups.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use distributed_downloader::index::batch::{frame, Row};
use distributed_downloader::index::run::manifest_file;
use distributed_downloader::prep::spill::image_uuid;
use distributed_downloader::store::parquet::{read_parquet, write_parquet};

use crate::cli::DedupBenchArgs;

/// Rows at `--scale 1`: what the issue asks to measure.
const ROWS: u64 = 10_000_000;
/// Rows per manifest file: GBIF's default batch size.
const BATCH_ROWS: u64 = 10_000;
const SERVERS: u64 = 50;
/// Of each 100 rows: which one is a slot of a same-bytes pair, of a near copy, of the placeholder
/// (one in ten such slots), too flat to near-match, and failed (from `FAILED_FROM` up).
const EXACT_EVERY: u64 = 1;
const NEAR_EVERY: u64 = 2;
const PLACEHOLDER_EVERY: u64 = 3;
const FLAT_EVERY: u64 = 50;
const FAILED_FROM: u64 = 95;

/// What a row of the generated manifest is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Photo,
    Flat,
    Failed,
    /// Copy `copy` of planted group `group` (copy 0 the keeper).
    Exact {
        group: u64,
        copy: u64,
    },
    Near {
        group: u64,
        copy: u64,
    },
    Placeholder,
}

/// The plan of a manifest of `rows` rows: which slots hold which planted copy.
struct Plan {
    rows: u64,
    exact_groups: u64,
    near_groups: u64,
}

impl Plan {
    fn new(rows: u64) -> Self {
        let slots = |k: u64| rows / 100 + u64::from(rows % 100 > k);
        Plan { rows, exact_groups: slots(EXACT_EVERY) / 2, near_groups: slots(NEAR_EVERY) / 3 }
    }

    fn role(&self, g: u64) -> Role {
        let (slot, k) = (g / 100, g % 100);
        match k {
            EXACT_EVERY if slot < 2 * self.exact_groups => {
                Role::Exact { group: slot % self.exact_groups, copy: slot / self.exact_groups }
            }
            NEAR_EVERY if slot < 3 * self.near_groups => {
                Role::Near { group: slot % self.near_groups, copy: slot / self.near_groups }
            }
            PLACEHOLDER_EVERY if slot % 10 == 0 => Role::Placeholder,
            FLAT_EVERY => Role::Flat,
            k if k >= FAILED_FROM => Role::Failed,
            _ => Role::Photo,
        }
    }

    fn url(&self, g: u64) -> String {
        format!("http://s{}.example.org/img/{g}.jpg", g / BATCH_ROWS % SERVERS)
    }
}

/// splitmix64: a random stream from a seed, so every hash can be made again from its row.
pub(crate) fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn hash256(seed: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, chunk) in h.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(seed ^ (i as u64) << 56).to_le_bytes());
    }
    h
}

/// Lowercase hex, as the manifest spells hashes (`format!` per byte would dominate the bench).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Row `g` of the manifest as `index` would write it.
fn row(plan: &Plan, g: u64) -> Row {
    let url = plan.url(g);
    let role = plan.role(g);
    let mut r = Row {
        uuid: image_uuid(&url).to_string(),
        source_ids: vec![format!("occ-{g}")],
        shard: format!(
            "downloads/server_name=s{}/partition_id={}/shard-000000.h5",
            g / BATCH_ROWS % SERVERS,
            g / BATCH_ROWS
        ),
        row: (g % BATCH_ROWS) as u32,
        at: 1.8e9,
        url: url.clone(),
        ..Row::default()
    };
    if role == Role::Failed {
        r.status = "failed";
        r.error_class = "http_4xx".into();
        return r;
    }
    let (mut pdq, mut phash, mut sha, mut side) = (hash256(g), mix(!g), hash256(g ^ 1 << 63), 1024);
    match role {
        Role::Exact { group, copy } => {
            sha = hash256(u64::MAX - group);
            side = 2048 - copy as u32;
        }
        Role::Near { group, copy } => {
            pdq = hash256(1 << 62 | group);
            phash = mix(1 << 61 | group);
            if copy > 0 {
                for k in 0..4 + mix(g) % 11 {
                    let bit = (mix(g + k) % 256) as usize;
                    pdq[bit / 8] ^= 1 << (bit % 8);
                }
                phash ^= (mix(g) >> 8 & 1) << (mix(g) % 64);
            }
            side = 2048 - copy as u32 * 100;
        }
        Role::Placeholder => (pdq, phash, sha) = (hash256(1 << 60), mix(1 << 60), hash256(1 << 60 | 1)),
        _ => {}
    }
    r.status = "stored";
    r.final_url = url;
    (r.original_width, r.original_height) = (side, side * 3 / 4);
    (r.stored_width, r.stored_height, r.stored_bytes) = (side.min(720), side.min(720) * 3 / 4, 80_000);
    r.format = "jpeg".into();
    r.sha256 = hex(&sha);
    r.pdq = hex(&pdq);
    r.pdq_quality = if role == Role::Flat { 20 } else { 90 };
    r.phash = phash;
    r
}

/// Writes the manifest of `plan` under `out`; returns the stored rows.
fn write_manifest(out: &Path, plan: &Plan) -> anyhow::Result<u64> {
    let mut stored = 0;
    for batch in 0..plan.rows.div_ceil(BATCH_ROWS) {
        let rows: Vec<Row> =
            (batch * BATCH_ROWS..((batch + 1) * BATCH_ROWS).min(plan.rows)).map(|g| row(plan, g)).collect();
        stored += rows.iter().filter(|r| r.status == "stored").count() as u64;
        let server = format!("s{}", batch % SERVERS);
        let mut df = frame(rows, &server, batch)?;
        let path = manifest_file(out, &server, batch);
        std::fs::create_dir_all(path.parent().expect("a batch folder"))?;
        write_parquet(&path, &mut df)?;
    }
    Ok(stored)
}

pub fn run(args: &DedupBenchArgs) -> anyhow::Result<()> {
    crate::remove_scratch(&args.dir);
    let out = args.dir.join("dataset");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let plan = Plan::new(((ROWS as f64 * args.scale).round() as u64).max(1_000));
    let t = Instant::now();
    let stored = write_manifest(&out, &plan)?;
    eprintln!(
        "bench-dedup: wrote a manifest of {} rows ({stored} stored) in {:.0} s; dedup in a fresh process",
        plan.rows,
        t.elapsed().as_secs_f64()
    );
    let product = std::env::current_exe()?.with_file_name("distributed-downloader");
    let mut cmd = Command::new(&product);
    cmd.args(["dedup", "--json", "-o"]).arg(&out);
    let run = crate::child::measure(&mut cmd, &args.dir.join("dedup.json"))?;
    if !run.status.success() {
        bail!("dedup failed ({}); run `{} dedup -o {}` to see why", run.status, product.display(), out.display());
    }
    let report: serde_json::Value = serde_json::from_str(&run.stdout).context("dedup --json printed its report")?;
    let found = check(&plan, &out, &report)?;
    println!(
        "bench-dedup: rows={} stored={stored} dedup_s={:.1} rows_per_s={:.0} peak_rss_mib={:.0} groups={} \
         duplicates={} same_bytes={} near={} skipped_buckets={} planted_found={found}",
        plan.rows,
        run.seconds,
        plan.rows as f64 / run.seconds,
        run.peak_mib,
        report["groups"],
        report["duplicates"],
        report["same_bytes"],
        report["near"],
        report["skipped_buckets"]
    );
    if !args.keep {
        crate::remove_scratch(&args.dir);
    }
    if found {
        Ok(())
    } else {
        bail!("dedup did not find exactly the planted groups (see the lines above)")
    }
}

/// Whether `duplicates.parquet` holds exactly the planted groups, each keeping its first copy
/// (the placeholder: one group of all its copies). Says what differs on stderr.
fn check(plan: &Plan, out: &Path, report: &serde_json::Value) -> anyhow::Result<bool> {
    let dups = read_parquet(&out.join("dedup/duplicates.parquet"))?;
    let col = |n: &str| -> anyhow::Result<Vec<String>> {
        Ok(dups.column(n)?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let (keepers, members, why) = (col("keeper")?, col("member")?, col("why")?);
    let got: HashMap<&str, (&str, &str)> = members
        .iter()
        .zip(keepers.iter().zip(&why))
        .map(|(m, (k, w))| (m.as_str(), (k.as_str(), w.as_str())))
        .collect();
    let uuid = |g: u64| image_uuid(&plan.url(g)).to_string();
    let (mut want, mut wrong, mut placeholder_keepers) = (0u64, 0u64, Vec::new());
    let mut keeper_of: HashMap<(bool, u64), String> = HashMap::new();
    for g in 0..plan.rows {
        let (key, copy, why_planted) = match plan.role(g) {
            Role::Exact { group, copy } => ((true, group), copy, "sha256"),
            Role::Near { group, copy } => ((false, group), copy, "pdq"),
            Role::Placeholder => {
                placeholder_keepers.push(got.get(uuid(g).as_str()).map(|(k, _)| k.to_string()));
                continue;
            }
            _ => continue,
        };
        if copy == 0 {
            keeper_of.insert(key, uuid(g));
            continue;
        }
        want += 1;
        let keeper = keeper_of.get(&key).cloned().unwrap_or_default();
        if got.get(uuid(g).as_str()) != Some(&(keeper.as_str(), why_planted)) {
            wrong += 1;
        }
    }
    // The placeholder: every copy but one is a member, all of one keeper.
    let mut seen: Vec<&String> = placeholder_keepers.iter().flatten().collect();
    seen.sort();
    seen.dedup();
    let placeholders = placeholder_keepers.len() as u64;
    let placeholder_ok = seen.len() == 1 && placeholder_keepers.iter().filter(|k| k.is_none()).count() == 1;
    let rows_want = want + placeholders.saturating_sub(1);
    let groups_want = plan.exact_groups + plan.near_groups + u64::from(placeholders > 1);
    let ok = wrong == 0
        && placeholder_ok
        && dups.height() as u64 == rows_want
        && report["groups"].as_u64() == Some(groups_want);
    if !ok {
        eprintln!(
            "bench-dedup: planted copies missed or misplaced: {wrong} of {want}; placeholder as one group: \
             {placeholder_ok}; rows {} (planted {rows_want}); groups {} (planted {groups_want})",
            dups.height(),
            report["groups"]
        );
    }
    Ok(ok)
}
