//! What `verify` found: problems (something is wrong), warnings (leftovers, nothing lost), the
//! counts, and what `--repair` did; as text for a person and as JSON.
//!
//! Owns the report's shape and its printing. Does not own the checks (`scan`) or the repair.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Problem lines printed per batch; the rest are counted (`--json` lists every one).
const LINES_PER_BATCH: usize = 20;

/// What kind of thing is wrong. Bounded, with [`Kind::as_str`], like the error classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A shard (or a batch folder) that cannot be read whole.
    Unreadable,
    /// A row with records in two shards that `--retry-failed` does not explain.
    Duplicate,
    /// More rows recorded than the batch holds.
    TooManyRows,
    /// `ledger.json` covers the shards present but disagrees with them.
    Summary,
    /// An image's stored bytes do not match their CRC-32.
    Checksum,
    /// An image's stored bytes do not decode, or not to the recorded size or format.
    Decode,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unreadable => "unreadable",
            Kind::Duplicate => "duplicate",
            Kind::TooManyRows => "too_many_rows",
            Kind::Summary => "summary",
            Kind::Checksum => "checksum",
            Kind::Decode => "decode",
        }
    }
}

/// One thing wrong, named down to the shard and, for an image or a row, its uuid and url.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: Kind,
    pub server: String,
    pub partition: u64,
    /// The shard at fault, when one is.
    pub shard: Option<PathBuf>,
    pub uuid: Option<String>,
    pub url: Option<String>,
    pub detail: String,
}

/// Something to know that loses nothing: crash leftovers, a stale summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub server: String,
    pub partition: u64,
    pub path: Option<PathBuf>,
    pub detail: String,
}

/// What `--repair` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// Shards moved to the quarantine folder: (from, to).
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// New shards holding the good rows of a moved shard: (new shard, rows kept).
    pub rewritten: Vec<(PathBuf, usize)>,
    /// `ledger.json` files removed, so that nothing trusts counts from before the repair.
    pub summaries_removed: usize,
    /// Rows of the repaired batches without a final record now: the next `download` fetches them.
    pub pending_rows: u64,
    /// Bad rows whose earlier record is a retriable failure: done for a plain `download`,
    /// fetched again by `download --retry-failed`.
    pub retry_failed_rows: u64,
    /// Problems left as they are, and why.
    pub not_repaired: Vec<String>,
}

/// The whole verdict; one per rank, merged on rank 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub output: PathBuf,
    pub ranks: usize,
    pub batches: u64,
    pub batches_clean: u64,
    pub shards: u64,
    /// Shards without `stored_crc32` (older versions): their images get the decode check only.
    pub shards_without_checksum: u64,
    /// Rows the batches hold (from prep).
    pub rows: u64,
    /// Rows with a final record in the shards.
    pub rows_recorded: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub images_checked: u64,
    /// `None` with `--full` (every image), else images checked per batch at most.
    pub sample_per_batch: Option<usize>,
    pub problems_by_kind: BTreeMap<String, u64>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Warning>,
    /// A rank that could not check its share, and why.
    pub rank_errors: Vec<String>,
    pub repair: Option<Repair>,
}

impl Report {
    /// Adds another rank's report, then restores the order every rank count gives.
    pub fn merge(&mut self, other: Report) {
        self.batches += other.batches;
        self.batches_clean += other.batches_clean;
        self.shards += other.shards;
        self.shards_without_checksum += other.shards_without_checksum;
        self.rows += other.rows;
        self.rows_recorded += other.rows_recorded;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.images_checked += other.images_checked;
        self.problems.extend(other.problems);
        self.warnings.extend(other.warnings);
        self.rank_errors.extend(other.rank_errors);
        self.finish();
    }

    /// Sorts problems and warnings by batch, shard and row, and counts problems by kind.
    pub fn finish(&mut self) {
        let key = |p: &Problem| (p.server.clone(), p.partition, p.shard.clone(), p.kind, p.uuid.clone());
        self.problems.sort_by_key(key);
        self.warnings.sort_by(|a, b| (&a.server, a.partition, &a.path).cmp(&(&b.server, b.partition, &b.path)));
        self.problems_by_kind.clear();
        for p in &self.problems {
            *self.problems_by_kind.entry(p.kind.as_str().to_string()).or_default() += 1;
        }
    }

    /// Counts the clean batches of the batches checked: those without a problem and not among
    /// `unfinished` (batches whose check did not finish), by (server, partition).
    pub fn count_clean(&mut self, unfinished: impl IntoIterator<Item = (String, u64)>) {
        let mut dirty: std::collections::BTreeSet<(String, u64)> =
            self.problems.iter().map(|p| (p.server.clone(), p.partition)).collect();
        dirty.extend(unfinished);
        self.batches_clean = self.batches.saturating_sub(dirty.len() as u64);
    }

    /// Whether anything is wrong (warnings are not).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.rank_errors.is_empty()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.kind.as_str())?;
        if let Some(shard) = &self.shard {
            write!(f, "{}: ", shard.display())?;
        }
        match (&self.uuid, &self.url) {
            (Some(uuid), Some(url)) => write!(f, "row {uuid} ({url}): ")?,
            (Some(uuid), None) => write!(f, "row {uuid}: ")?,
            _ => {}
        }
        f.write_str(&self.detail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "verify {}", self.output.display())?;
        let mut batches: BTreeMap<(&str, u64), Vec<&Problem>> = BTreeMap::new();
        for p in &self.problems {
            batches.entry((&p.server, p.partition)).or_default().push(p);
        }
        for ((server, partition), problems) in &batches {
            writeln!(f, "  server_name={server}/partition_id={partition}: {} problem(s)", problems.len())?;
            for p in problems.iter().take(LINES_PER_BATCH) {
                writeln!(f, "    {p}")?;
            }
            if problems.len() > LINES_PER_BATCH {
                writeln!(f, "    ... and {} more (--json lists every one)", problems.len() - LINES_PER_BATCH)?;
            }
        }
        writeln!(f, "  {} of {} batches clean", self.batches_clean, self.batches)?;
        for w in &self.warnings {
            let path = w.path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default();
            writeln!(f, "  warning: server_name={}/partition_id={}: {path}{}", w.server, w.partition, w.detail)?;
        }
        for e in &self.rank_errors {
            writeln!(f, "  error: {e}")?;
        }
        let checked = match self.sample_per_batch {
            None => "every image".to_string(),
            Some(n) => format!("a sample of up to {n} per batch; --full checks every image"),
        };
        writeln!(
            f,
            "  {} batches, {} shards, {} of {} rows recorded ({} stored, {} failed), {} images checked ({checked})",
            self.batches, self.shards, self.rows_recorded, self.rows, self.succeeded, self.failed, self.images_checked
        )?;
        if self.shards_without_checksum > 0 {
            writeln!(
                f,
                "  {} shard(s) have no stored checksum (older version): decode check only",
                self.shards_without_checksum
            )?;
        }
        if self.problems.is_empty() {
            writeln!(f, "  no problems")?;
        } else {
            let kinds: Vec<String> = self.problems_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(f, "  {} problem(s): {}", self.problems.len(), kinds.join(", "))?;
        }
        if let Some(r) = &self.repair {
            write!(f, "{r}")?;
        } else if !self.problems.is_empty() {
            writeln!(
                f,
                "  run `verify --repair` to move the bad shards aside (keeping their good rows), then `download`"
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "repair:")?;
        for (from, to) in &self.moved {
            writeln!(f, "  moved {} to {}", from.display(), to.display())?;
        }
        for (path, rows) in &self.rewritten {
            writeln!(f, "  kept {rows} good row(s) in {}", path.display())?;
        }
        if self.summaries_removed > 0 {
            writeln!(f, "  removed {} ledger.json (rebuilt from the shards)", self.summaries_removed)?;
        }
        for n in &self.not_repaired {
            writeln!(f, "  not repaired: {n}")?;
        }
        writeln!(f, "  {} row(s) are now pending: run `download` to fetch them again", self.pending_rows)?;
        if self.retry_failed_rows > 0 {
            writeln!(
                f,
                "  {} bad row(s) fall back to an earlier retriable failure: `download --retry-failed` fetches them",
                self.retry_failed_rows
            )?;
        }
        Ok(())
    }
}
