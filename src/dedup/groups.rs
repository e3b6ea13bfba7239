//! Duplicate groups from hashes, as plain logic: candidates, matches, groups, keepers.
//!
//! Exact duplicates share a SHA-256 (the same bytes). Near duplicates are within `threshold` bits
//! of PDQ (of 256). Comparing all pairs is quadratic, so only candidate pairs are compared: those
//! that share one of the eight 32-bit segments of their PDQ hash, or one of the two 32-bit halves
//! of their pHash. By the pigeonhole rule this finds every pair within 7 PDQ bits or 1 pHash bit
//! for sure; copies of one photo (resized, re-encoded, another format) measured 0-2 pHash bits and
//! 4-20 PDQ bits apart, so in practice it finds them, at the cost of missing a pair whose hashes
//! differ in every segment. Images whose PDQ quality is under [`MIN_QUALITY`] (flat, nearly blank)
//! are left out of near matching: their hashes collide with each other's.

use std::collections::HashMap;

use crate::imaging::{hamming256, hamming64};

/// PDQ's authors call a match at 31 differing bits of 256 or fewer.
pub const DEFAULT_THRESHOLD: u32 = 31;

/// Below this PDQ quality its authors call a hash unreliable for matching.
pub const MIN_QUALITY: u8 = 50;

/// A bucket of more candidates than this (a segment that thousands of images share) is not
/// compared pair by pair: it would cost its square. Counted in the report instead.
pub const MAX_BUCKET: usize = 2_000;

/// pHash bits two images may differ in and still be confirmed as near duplicates when their PDQ
/// agrees: pHash of copies measured 0-2 bits apart, of different photos 22-40.
const PHASH_CONFIRM: u32 = 8;

/// What `dedup` needs of one stored image.
#[derive(Debug, Clone, Default)]
pub struct Item {
    pub uuid: String,
    pub sha256: String,
    pub pdq: Option<[u8; 32]>,
    pub pdq_quality: u8,
    pub phash: u64,
    /// Original width × height: the keeper is the largest.
    pub area: u64,
    /// The smallest source id: the keeper among equal sizes.
    pub first_source: String,
}

/// One member of a group that is not its keeper.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub group: u64,
    pub keeper: usize,
    pub member: usize,
    /// PDQ bits between member and keeper (0 for the same bytes).
    pub distance: u32,
    /// `sha256` (the same bytes) or `pdq` (a near duplicate).
    pub why: &'static str,
}

/// Candidate pairs in a bucket too large to compare, left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Skipped {
    pub buckets: u64,
    pub items: u64,
}

/// The eight 32-bit PDQ segments and two pHash halves of an item, each tagged with its place.
pub(super) fn segments(pdq: &[u8; 32], phash: u64) -> impl Iterator<Item = (u8, u32)> + '_ {
    let pdq = (0..8u8).map(move |s| {
        let b = &pdq[usize::from(s) * 4..usize::from(s) * 4 + 4];
        (s, u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    });
    pdq.chain([(8, (phash >> 32) as u32), (9, phash as u32)])
}

/// Disjoint sets over item indices.
struct Union(Vec<usize>);

impl Union {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }
}

/// Whether `a` is a better keeper than `b`: the larger original, then the smaller source id,
/// then the smaller uuid (so the choice never depends on the order rows were read in).
pub(super) fn better(a: &Item, b: &Item) -> bool {
    (std::cmp::Reverse(a.area), &a.first_source, &a.uuid) < (std::cmp::Reverse(b.area), &b.first_source, &b.uuid)
}

/// The duplicates among `items`: every member of a group but its keeper, groups numbered from 0
/// in the order of their keepers' uuids. Holds every item and bucket in memory: the reference
/// that `bounded::find` (what `dedup` runs) is tested against.
pub fn find(items: &[Item], threshold: u32) -> (Vec<Duplicate>, Skipped) {
    let mut union = Union((0..items.len()).collect());
    let mut by_sha: HashMap<&str, usize> = HashMap::new();
    for (i, it) in items.iter().enumerate().filter(|(_, it)| !it.sha256.is_empty()) {
        match by_sha.get(it.sha256.as_str()) {
            Some(&first) => union.join(first, i),
            None => {
                by_sha.insert(&it.sha256, i);
            }
        }
    }
    let mut buckets: HashMap<(u8, u32), Vec<usize>> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(pdq) = it.pdq.as_ref().filter(|_| it.pdq_quality >= MIN_QUALITY) {
            for key in segments(pdq, it.phash) {
                buckets.entry(key).or_default().push(i);
            }
        }
    }
    let mut skipped = Skipped::default();
    for members in buckets.values().filter(|m| m.len() > 1) {
        if members.len() > MAX_BUCKET {
            skipped.buckets += 1;
            skipped.items += members.len() as u64;
            continue;
        }
        for (k, &a) in members.iter().enumerate() {
            for &b in &members[k + 1..] {
                if near(&items[a], &items[b], threshold) {
                    union.join(a, b);
                }
            }
        }
    }
    (duplicates(items, &mut union), skipped)
}

/// Two images within `threshold` PDQ bits, their pHash agreeing too.
pub(super) fn near(a: &Item, b: &Item, threshold: u32) -> bool {
    match (&a.pdq, &b.pdq) {
        (Some(x), Some(y)) => hamming256(x, y) <= threshold && hamming64(a.phash, b.phash) <= PHASH_CONFIRM,
        _ => false,
    }
}

/// Every group's members but its keeper.
fn duplicates(items: &[Item], union: &mut Union) -> Vec<Duplicate> {
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..items.len() {
        let root = union.find(i);
        groups.entry(root).or_default().push(i);
    }
    let mut groups: Vec<(usize, Vec<usize>)> = groups
        .into_values()
        .filter(|m| m.len() > 1)
        .map(|m| {
            let keeper = m.iter().copied().reduce(|k, i| if better(&items[i], &items[k]) { i } else { k });
            (keeper.expect("a group has members"), m)
        })
        .collect();
    groups.sort_by(|a, b| items[a.0].uuid.cmp(&items[b.0].uuid));
    let mut out = Vec::new();
    for (g, (keeper, members)) in groups.into_iter().enumerate() {
        for member in members.into_iter().filter(|&m| m != keeper) {
            let (k, m) = (&items[keeper], &items[member]);
            let same = !k.sha256.is_empty() && k.sha256 == m.sha256;
            let distance = match (&k.pdq, &m.pdq) {
                _ if same => 0,
                (Some(x), Some(y)) => hamming256(x, y),
                _ => 0,
            };
            out.push(Duplicate { group: g as u64, keeper, member, distance, why: if same { "sha256" } else { "pdq" } });
        }
    }
    out
}

/// A test set's PDQ hashes, indexed by their eight 32-bit segments.
pub struct LeakIndex<'a> {
    tests: &'a [[u8; 32]],
    index: HashMap<(u8, u32), Vec<usize>>,
}

impl<'a> LeakIndex<'a> {
    pub fn new(tests: &'a [[u8; 32]]) -> Self {
        let mut index: HashMap<(u8, u32), Vec<usize>> = HashMap::new();
        for (t, pdq) in tests.iter().enumerate() {
            for key in segments(pdq, 0).take(8) {
                index.entry(key).or_default().push(t);
            }
        }
        LeakIndex { tests, index }
    }

    /// The test entries within `threshold` PDQ bits of `item`, in test-set order, with their
    /// distance; none for an item too flat to match.
    pub fn matches(&self, item: &Item, threshold: u32) -> Vec<(usize, u32)> {
        let Some(pdq) = item.pdq.as_ref().filter(|_| item.pdq_quality >= MIN_QUALITY) else { return Vec::new() };
        let mut seen: Vec<usize> =
            segments(pdq, 0).take(8).flat_map(|k| self.index.get(&k).into_iter().flatten()).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter().map(|t| (t, hamming256(pdq, &self.tests[t]))).filter(|&(_, d)| d <= threshold).collect()
    }
}

/// The dataset items within `threshold` PDQ bits of a test-set hash: (item, test entry, distance),
/// found through the same segments (the test set has no pHash: PDQ segments only).
pub fn leaks(items: &[Item], tests: &[[u8; 32]], threshold: u32) -> Vec<(usize, usize, u32)> {
    let index = LeakIndex::new(tests);
    let found = items
        .iter()
        .enumerate()
        .flat_map(|(i, it)| index.matches(it, threshold).into_iter().map(move |(t, d)| (i, t, d)));
    found.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(uuid: &str, sha: &str, pdq: [u8; 32], phash: u64, area: u64) -> Item {
        Item {
            uuid: uuid.into(),
            sha256: sha.into(),
            pdq: Some(pdq),
            pdq_quality: 90,
            phash,
            area,
            first_source: uuid.into(),
        }
    }

    /// `base` with `n` of its bits flipped, spread over the hash.
    fn flip(base: [u8; 32], n: usize) -> [u8; 32] {
        let mut out = base;
        for k in 0..n {
            let bit = (k * 37) % 256;
            out[bit / 8] ^= 1 << (bit % 8);
        }
        out
    }

    #[test]
    fn same_bytes_and_near_hashes_group_with_the_largest_image_kept_and_strangers_stay_apart() {
        let a = [0x5a; 32];
        let items = vec![
            item("u0", "s1", a, 7, 100),
            item("u1", "s1", a, 7, 100),                           // the same bytes
            item("u2", "s2", flip(a, 20), 7, 400),                 // a larger copy, 20 bits away: kept
            item("u3", "s3", flip(a, 120), 1 << 40 | 0xffff, 100), // another photo
        ];
        let (dups, skipped) = find(&items, DEFAULT_THRESHOLD);
        assert_eq!(skipped, Skipped::default());
        let pairs: Vec<(usize, usize, &str)> = dups.iter().map(|d| (d.keeper, d.member, d.why)).collect();
        assert_eq!(pairs, vec![(2, 0, "pdq"), (2, 1, "pdq")], "{dups:?}");
        assert!(dups.iter().all(|d| d.distance == 20 && d.group == 0));
    }

    #[test]
    fn flat_images_are_never_near_duplicates_and_a_leak_is_found_by_its_test_hash() {
        let a = [0x33; 32];
        let mut flat = item("u0", "s0", a, 0, 10);
        flat.pdq_quality = 10;
        let items = vec![flat, item("u1", "s1", a, 0, 10), item("u2", "s2", flip(a, 100), 0xabcdef, 10)];
        assert!(find(&items, DEFAULT_THRESHOLD).0.is_empty(), "a hash of quality 10 matches nothing");
        let tests = [flip(a, 5), flip(a, 200)];
        assert_eq!(leaks(&items, &tests, DEFAULT_THRESHOLD), vec![(1, 0, 5)]);
    }
}
