//! The rules of `groups`, applied in memory that does not grow with the rows: what `dedup` runs.
//!
//! Five passes, each holding at most one partition (about `partition_bytes` of records) besides
//! a manifest file's rows and fixed buffers; the rest waits in scratch files (`spill`):
//! 1. read the rows once: each row's PDQ and pHash to `rows.bin` (41 bytes, by row id), each
//!    SHA-256 with its row to partitions by the hash (leaks are found here, row by row);
//! 2. join rows of equal SHA-256, one partition at a time; then for each of the ten segments in
//!    turn, spill (segment value, row) from `rows.bin` to partitions by value, sort each, and
//!    compare the rows of each bucket (their hashes read back from `rows.bin`): matches are joined
//!    in a union-find kept on disk (`union`);
//! 3. read the rows again: each row in a group goes, with what its output row needs, to a
//!    partition by its group's root, so that a group lies in one partition;
//! 4. per partition: pick each group's keeper (`groups::better`), make its output rows, sort them
//!    by keeper uuid, and write them as one sorted run;
//! 5. merge the runs into the output, numbering groups in the order of their keepers' uuids.
//!
//! The output is row for row what `groups::find` gives in memory (a test checks). Memory grows
//! only with the largest group (pass 4 holds a group whole) and the leaks' test set.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::bail;
use sha2::{Digest, Sha256};

use super::groups::{better, near, segments, Item, LeakIndex, Skipped, MAX_BUCKET, MIN_QUALITY};
use super::spill::{at, partition_count, partition_of, put_bytes, take_bytes, Reader, Spill};
use super::union::{DiskUnion, MAX_ROWS};
use crate::imaging::hamming256;

/// One row's hashes in `rows.bin`: flags, PDQ, pHash.
const ROW_BYTES: usize = 1 + 32 + 8;
/// Flags of a row in `rows.bin`: it has a PDQ hash; and it is sharp enough to be near-matched.
const HAS_PDQ: u8 = 1;
const MATCHABLE: u8 = 2;
/// A SHA-256 spill record: the digest of the manifest's `sha256` text, and the row.
const SHA_BYTES: usize = 32 + 4;
/// A segment spill record: the segment's value and the row.
const SEGMENT_BYTES: usize = 4 + 4;
/// Segments per row: eight of the PDQ hash, two of the pHash.
const SEGMENTS: usize = 10;
/// Bytes a grouped row costs in pass 4, about: its record read back (five strings, its hashes)
/// and the output row made of it (four strings), with the allocator's share; it sizes those
/// partitions. Measured at 10M rows: 320 (the record on disk alone) let pass 4 peak at 77 MB.
const GROUPED_ROW_GUESS: u64 = 1024;

/// One stored image of the manifest.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub item: Item,
    pub url: String,
}

/// Where the rows come from (the manifest, in `run`).
pub trait Source {
    /// About how many rows [`Source::each`] gives: it sizes the partitions, need not be exact.
    fn rows_hint(&self) -> u64;
    /// Gives every row to `f`, in the same order each time it is called.
    fn each(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()>;
}

/// How to run.
pub struct Settings<'a> {
    /// An empty folder for the scratch files.
    pub scratch: &'a Path,
    /// PDQ bits within which two images are near duplicates.
    pub threshold: u32,
    /// Bytes of records per partition (see `spill::DEFAULT_PARTITION_BYTES`).
    pub partition_bytes: u64,
    /// A test set to find leaks of.
    pub leaks: Option<&'a LeakIndex<'a>>,
}

/// One row of `duplicates.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateRow {
    pub group: u64,
    pub keeper: String,
    pub member: String,
    pub distance: u32,
    pub why: &'static str,
    pub keeper_url: String,
    pub member_url: String,
}

/// One row of `leaks.parquet`: a stored image and the test-set entry it is near.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakRow {
    pub uuid: String,
    pub url: String,
    pub test: usize,
    pub distance: u32,
}

/// What the passes counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub images: u64,
    pub low_quality: u64,
    pub skipped: Skipped,
    pub groups: u64,
    pub duplicates: u64,
    pub same_bytes: u64,
}

/// Runs the five passes over `source`; leaks and duplicate rows are handed over in output order.
pub fn find(
    source: &dyn Source,
    s: &Settings,
    on_leak: &mut dyn FnMut(LeakRow) -> anyhow::Result<()>,
    on_duplicate: &mut dyn FnMut(DuplicateRow) -> anyhow::Result<()>,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let rows_path = s.scratch.join("rows.bin");
    let sha_parts = partition_count(source.rows_hint() * SHA_BYTES as u64, s.partition_bytes);
    let mut sha = Spill::create(s.scratch, "sha", sha_parts)?;
    {
        let mut rows = BufWriter::new(File::create(&rows_path).map_err(at(&rows_path))?);
        source.each(&mut |row| {
            if counts.images >= MAX_ROWS {
                bail!("the manifest holds more than {MAX_ROWS} stored images, more than dedup can number: run it on a part of the dataset");
            }
            let (id, it) = (counts.images as u32, &row.item);
            let mut rec = [0u8; ROW_BYTES];
            if let Some(pdq) = &it.pdq {
                rec[0] = HAS_PDQ | if it.pdq_quality >= MIN_QUALITY { MATCHABLE } else { 0 };
                rec[1..33].copy_from_slice(pdq);
            }
            rec[33..].copy_from_slice(&it.phash.to_le_bytes());
            rows.write_all(&rec).map_err(at(&rows_path))?;
            if !it.sha256.is_empty() {
                let mut rec = [0u8; SHA_BYTES];
                rec[..32].copy_from_slice(&Sha256::digest(it.sha256.as_bytes()));
                rec[32..].copy_from_slice(&id.to_le_bytes());
                let key = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
                sha.push(partition_of(key, sha.partitions()), &rec)?;
            }
            if let Some(index) = s.leaks {
                for (test, distance) in index.matches(it, s.threshold) {
                    on_leak(LeakRow { uuid: it.uuid.clone(), url: row.url.clone(), test, distance })?;
                }
            }
            counts.low_quality += u64::from(it.pdq_quality < MIN_QUALITY);
            counts.images += 1;
            Ok(())
        })?;
        rows.flush().map_err(at(&rows_path))?;
    }
    let rows = counts.images as u32;
    let mut union = DiskUnion::create(&s.scratch.join("parents.bin"), rows)?;
    join_same_bytes(sha.finish()?, &mut union)?;
    for pos in 0..SEGMENTS {
        counts.skipped = join_near(s, &rows_path, rows, pos, &mut union, counts.skipped)?;
    }
    if union.joined() == 0 {
        return Ok(counts);
    }
    let runs = group_runs(source, s, &union, rows)?;
    merge_runs(runs, &mut counts, on_duplicate)?;
    Ok(counts)
}

/// Pass 2, the bytes: rows of one SHA-256 joined, one partition at a time.
fn join_same_bytes(parts: Vec<std::path::PathBuf>, union: &mut DiskUnion) -> anyhow::Result<()> {
    for path in parts {
        let mut reader = Reader::open(&path)?;
        let mut records = Vec::with_capacity(reader.records(SHA_BYTES));
        let mut rec = [0u8; SHA_BYTES];
        while reader.next_into(&mut rec)? {
            records.push(rec);
        }
        records.sort_unstable();
        for run in records.chunk_by(|a, b| a[..32] == b[..32]) {
            let first = u32::from_le_bytes(run[0][32..].try_into().expect("4 bytes"));
            for r in &run[1..] {
                union.join(first, u32::from_le_bytes(r[32..].try_into().expect("4 bytes")))?;
            }
        }
    }
    Ok(())
}

/// Pass 2, segment `pos`: rows sharing its value compared pair by pair, matches joined. Returns
/// `skipped` plus the buckets too large to compare.
fn join_near(
    s: &Settings,
    rows_path: &Path,
    rows: u32,
    pos: usize,
    union: &mut DiskUnion,
    mut skipped: Skipped,
) -> anyhow::Result<Skipped> {
    let parts = partition_count(u64::from(rows) * SEGMENT_BYTES as u64, s.partition_bytes);
    let mut spill = Spill::create(s.scratch, &format!("segment{pos}"), parts)?;
    let file = File::open(rows_path).map_err(at(rows_path))?;
    let mut reader = BufReader::with_capacity(1 << 18, &file);
    let mut rec = [0u8; ROW_BYTES];
    for id in 0..rows {
        reader.read_exact(&mut rec).map_err(at(rows_path))?;
        let item = item_of(&rec);
        let Some(pdq) = item.pdq.filter(|_| rec[0] & MATCHABLE != 0) else { continue };
        let (_, value) = segments(&pdq, item.phash).nth(pos).expect("ten segments");
        let mut out = [0u8; SEGMENT_BYTES];
        out[..4].copy_from_slice(&value.to_le_bytes());
        out[4..].copy_from_slice(&id.to_le_bytes());
        spill.push(partition_of(u64::from(value), parts), &out)?;
    }
    for path in spill.finish()? {
        let mut reader = Reader::open(&path)?;
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(reader.records(SEGMENT_BYTES));
        let mut pair = [0u8; SEGMENT_BYTES];
        while reader.next_into(&mut pair)? {
            let word = |r: &[u8]| u32::from_le_bytes(r.try_into().expect("4 bytes"));
            pairs.push((word(&pair[..4]), word(&pair[4..])));
        }
        pairs.sort_unstable();
        for bucket in pairs.chunk_by(|a, b| a.0 == b.0).filter(|b| b.len() > 1) {
            if bucket.len() > MAX_BUCKET {
                skipped.buckets += 1;
                skipped.items += bucket.len() as u64;
                continue;
            }
            let mut items = Vec::with_capacity(bucket.len());
            for &(_, id) in bucket {
                file.read_exact_at(&mut rec, u64::from(id) * ROW_BYTES as u64).map_err(at(rows_path))?;
                items.push((id, item_of(&rec)));
            }
            // Joined first in memory, among the bucket's own rows (at most MAX_BUCKET), then at
            // most one join on disk per row: a bucket of one picture stored a thousand times
            // would otherwise cost half a million joins on disk, each a few system calls.
            let mut local: Vec<usize> = (0..items.len()).collect();
            let root = |local: &mut Vec<usize>, mut i: usize| {
                while local[i] != i {
                    local[i] = local[local[i]];
                    i = local[i];
                }
                i
            };
            for (k, (_, x)) in items.iter().enumerate() {
                for (j, (_, y)) in items.iter().enumerate().skip(k + 1) {
                    let (rk, rj) = (root(&mut local, k), root(&mut local, j));
                    if rk != rj && near(x, y, s.threshold) {
                        local[rk.max(rj)] = rk.min(rj);
                    }
                }
            }
            for k in 0..items.len() {
                let r = root(&mut local, k);
                if r != k {
                    union.join(items[r].0, items[k].0)?;
                }
            }
        }
    }
    Ok(skipped)
}

/// The hashes of a `rows.bin` record, as an [`Item`] with nothing else.
fn item_of(rec: &[u8; ROW_BYTES]) -> Item {
    let pdq = (rec[0] & HAS_PDQ != 0).then(|| rec[1..33].try_into().expect("32 bytes"));
    Item { pdq, phash: u64::from_le_bytes(rec[33..].try_into().expect("8 bytes")), ..Item::default() }
}

/// A grouped row as pass 3 spills it.
struct Member {
    root: u32,
    row: u32,
    item: Item,
    url: String,
}

fn encode_member(m: &Member) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + m.url.len());
    out.extend_from_slice(&m.root.to_le_bytes());
    out.extend_from_slice(&m.row.to_le_bytes());
    out.extend_from_slice(&m.item.area.to_le_bytes());
    out.push(u8::from(m.item.pdq.is_some()));
    out.extend_from_slice(&m.item.pdq.unwrap_or_default());
    for text in [&m.item.sha256, &m.item.uuid, &m.item.first_source, &m.url] {
        put_bytes(&mut out, text.as_bytes());
    }
    out
}

fn decode_member(rec: &[u8]) -> Member {
    let word = |at: usize| u32::from_le_bytes(rec[at..at + 4].try_into().expect("4 bytes"));
    let area = u64::from_le_bytes(rec[8..16].try_into().expect("8 bytes"));
    let pdq = (rec[16] == 1).then(|| rec[17..49].try_into().expect("32 bytes"));
    let mut rest = &rec[49..];
    let mut text = || String::from_utf8_lossy(take_bytes(&mut rest)).into_owned();
    let (sha256, uuid, first_source, url) = (text(), text(), text(), text());
    let item = Item { uuid, sha256, pdq, area, first_source, ..Item::default() };
    Member { root: word(0), row: word(4), item, url }
}

/// One output row before groups are numbered, in a sorted run.
struct Pending {
    keeper: String,
    keeper_row: u32,
    member_row: u32,
    distance: u32,
    same_bytes: bool,
    keeper_url: String,
    member: String,
    member_url: String,
}

impl Pending {
    fn key(&self) -> (&str, u32, u32) {
        (&self.keeper, self.keeper_row, self.member_row)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in [self.keeper_row, self.member_row, self.distance, u32::from(self.same_bytes)] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for text in [&self.keeper, &self.keeper_url, &self.member, &self.member_url] {
            put_bytes(&mut out, text.as_bytes());
        }
        out
    }

    fn decode(rec: &[u8]) -> Pending {
        let word = |at: usize| u32::from_le_bytes(rec[at..at + 4].try_into().expect("4 bytes"));
        let mut rest = &rec[16..];
        let mut text = || String::from_utf8_lossy(take_bytes(&mut rest)).into_owned();
        let (keeper, keeper_url, member, member_url) = (text(), text(), text(), text());
        let (keeper_row, member_row, distance, same_bytes) = (word(0), word(4), word(8), word(12) == 1);
        Pending { keeper, keeper_row, member_row, distance, same_bytes, keeper_url, member, member_url }
    }
}

/// Passes 3 and 4: the grouped rows spilled by group, then each partition's output rows sorted
/// into a run file. Returns the runs.
fn group_runs(source: &dyn Source, s: &Settings, union: &DiskUnion, rows: u32) -> anyhow::Result<Vec<Reader>> {
    let parts = partition_count(union.joined() * GROUPED_ROW_GUESS, s.partition_bytes);
    let mut spill = Spill::create(s.scratch, "grouped", parts)?;
    let mut joined = union.scan()?;
    let mut row = 0u32;
    source.each(&mut |r| {
        if row >= rows {
            bail!("the manifest changed while dedup read it (more rows the second time): run dedup again once `index` is done");
        }
        if joined.next_joined()? {
            let root = union.find(row)?;
            let rec = encode_member(&Member { root, row, item: r.item, url: r.url });
            let mut framed = Vec::with_capacity(rec.len() + 4);
            put_bytes(&mut framed, &rec);
            spill.push(partition_of(u64::from(root), parts), &framed)?;
        }
        row += 1;
        Ok(())
    })?;
    if row != rows {
        bail!(
            "the manifest changed while dedup read it ({rows} rows, then {row}): run dedup again once `index` is done"
        );
    }
    let mut runs = Vec::new();
    for (k, path) in spill.finish()?.into_iter().enumerate() {
        let mut reader = Reader::open(&path)?;
        let mut members = Vec::new();
        while let Some(rec) = reader.next_bytes()? {
            members.push(decode_member(&rec));
        }
        drop(reader);
        members.sort_unstable_by_key(|m| (m.root, m.row));
        let mut pending = Vec::new();
        for group in members.chunk_by(|a, b| a.root == b.root) {
            let keeper = group.iter().reduce(|k, m| if better(&m.item, &k.item) { m } else { k }).expect("a group");
            for m in group.iter().filter(|m| m.row != keeper.row) {
                let (k, i) = (&keeper.item, &m.item);
                let same_bytes = !k.sha256.is_empty() && k.sha256 == i.sha256;
                let distance = match (&k.pdq, &i.pdq) {
                    (Some(x), Some(y)) if !same_bytes => hamming256(x, y),
                    _ => 0,
                };
                pending.push(Pending {
                    keeper: k.uuid.clone(),
                    keeper_row: keeper.row,
                    member_row: m.row,
                    distance,
                    same_bytes,
                    keeper_url: keeper.url.clone(),
                    member: i.uuid.clone(),
                    member_url: m.url.clone(),
                });
            }
        }
        pending.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
        let path = s.scratch.join(format!("run-{k}.bin"));
        let mut out = BufWriter::new(File::create(&path).map_err(at(&path))?);
        for p in &pending {
            let rec = p.encode();
            out.write_all(&(rec.len() as u32).to_le_bytes()).and_then(|()| out.write_all(&rec)).map_err(at(&path))?;
        }
        out.flush().map_err(at(&path))?;
        runs.push(Reader::open(&path)?);
    }
    Ok(runs)
}

/// Pass 5: the runs merged by keeper uuid; groups numbered as their keepers come.
fn merge_runs(
    mut runs: Vec<Reader>,
    counts: &mut Counts,
    on_duplicate: &mut dyn FnMut(DuplicateRow) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut heads: Vec<Option<Pending>> = Vec::with_capacity(runs.len());
    let mut heap = BinaryHeap::new();
    for (k, run) in runs.iter_mut().enumerate() {
        let head = run.next_bytes()?.map(|r| Pending::decode(&r));
        if let Some(p) = &head {
            heap.push(Reverse((p.keeper.clone(), p.keeper_row, p.member_row, k)));
        }
        heads.push(head);
    }
    let mut last: Option<(String, u32)> = None;
    while let Some(Reverse((_, _, _, k))) = heap.pop() {
        let p = heads[k].take().expect("a run in the heap has a head");
        if let Some(next) = runs[k].next_bytes()?.map(|r| Pending::decode(&r)) {
            heap.push(Reverse((next.keeper.clone(), next.keeper_row, next.member_row, k)));
            heads[k] = Some(next);
        }
        if last.as_ref().is_none_or(|(uuid, row)| (uuid.as_str(), *row) != (p.keeper.as_str(), p.keeper_row)) {
            counts.groups += 1;
            last = Some((p.keeper.clone(), p.keeper_row));
        }
        counts.duplicates += 1;
        counts.same_bytes += u64::from(p.same_bytes);
        on_duplicate(DuplicateRow {
            group: counts.groups - 1,
            keeper: p.keeper,
            member: p.member,
            distance: p.distance,
            why: if p.same_bytes { "sha256" } else { "pdq" },
            keeper_url: p.keeper_url,
            member_url: p.member_url,
        })?;
    }
    Ok(())
}
