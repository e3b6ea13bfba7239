//! The bounded pass must give what the in-memory rules give, row for row: on a manifest of
//! near-duplicate chains, same-bytes groups, flat images, images without hashes, ties for the
//! keeper and a bucket too large to compare, spread over as many partitions as there can be.

use super::bounded::{self, DuplicateRow, LeakRow, Row, Settings, Source};
use super::groups::{self, Item, LeakIndex, DEFAULT_THRESHOLD, MAX_BUCKET};

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        for chunk in h.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        h
    }
}

/// `base` with `n` bits flipped, none in the first segment (so the pair is always a candidate).
fn flip(base: [u8; 32], n: usize, rng: &mut Rng) -> [u8; 32] {
    let mut out = base;
    for _ in 0..n {
        let bit = 32 + (rng.next() % 224) as usize;
        out[bit / 8] ^= 1 << (bit % 8);
    }
    out
}

struct Rows(Vec<Row>);

impl Source for Rows {
    fn rows_hint(&self) -> u64 {
        self.0.len() as u64
    }

    fn each(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.0.iter().cloned().try_for_each(f)
    }
}

/// About 3,300 stored images: 60 photos with copies 4-14 bits apart (some chained), 30 files
/// stored twice under two URLs, a picture stored 300 times, flat and hashless images, and 2,100
/// strangers that share one PDQ segment (a bucket too large to compare).
fn manifest() -> Vec<Row> {
    let mut rng = Rng(0x5eed_d00d);
    let mut items = Vec::new();
    let push = |items: &mut Vec<Item>, pdq: Option<[u8; 32]>, phash: u64, sha: String, area: u64, q: u8| {
        let n = items.len();
        items.push(Item {
            uuid: format!("{:08x}-{n}", (n as u64).wrapping_mul(0x9e37_79b9) as u32),
            sha256: sha,
            pdq,
            pdq_quality: q,
            phash,
            area,
            first_source: format!("src-{}", n % 7),
        });
    };
    for photo in 0..60 {
        let (base, phash) = (rng.hash(), rng.next());
        let copies = 2 + photo % 4;
        let mut last = base;
        for c in 0..copies {
            // Every third photo is a chain: each copy near the one before, not always the first.
            let from = if photo % 3 == 0 { last } else { base };
            last = flip(from, 4 + (rng.next() % 11) as usize, &mut rng);
            let area = [100, 400, 400, 50][c % 4]; // ties on the largest: source id, then uuid
            push(&mut items, Some(last), phash ^ (1 << (c % 2)), format!("sha-{photo}-{c}"), area, 90);
        }
    }
    for file in 0..30 {
        let (pdq, phash) = (rng.hash(), rng.next());
        for _ in 0..2 {
            push(&mut items, Some(pdq), phash, format!("same-{file}"), 300, 90);
        }
        // The same bytes as a flat image, and one with no hashes at all.
        push(&mut items, Some(pdq), phash, format!("same-{file}"), 10, 20);
        if file % 5 == 0 {
            push(&mut items, None, 0, format!("same-{file}"), 10, 0);
        }
    }
    // One picture stored 300 times, re-encoded (other bytes, a few bits apart): one bucket per
    // segment of 300 near rows, every pair a match.
    let (picture, phash) = (rng.hash(), rng.next());
    for copy in 0..300 {
        let pdq = flip(picture, (rng.next() % 4) as usize, &mut rng);
        push(&mut items, Some(pdq), phash, format!("picture-{copy}"), 40, 90);
    }
    let shared = rng.hash();
    for _ in 0..MAX_BUCKET + 100 {
        let mut pdq = rng.hash();
        pdq[..4].copy_from_slice(&shared[..4]);
        let sha = format!("{:x}", rng.next());
        push(&mut items, Some(pdq), rng.next(), sha, 1, 90);
    }
    for _ in 0..40 {
        let (pdq, phash, sha) = (rng.hash(), rng.next(), format!("{:x}", rng.next()));
        push(&mut items, Some(pdq), phash, sha, 5, 10 + (rng.next() % 80) as u8);
        push(&mut items, None, 0, String::new(), 5, 0);
    }
    // Spread each group over the manifest: a row's place says nothing of its group.
    for i in (1..items.len()).rev() {
        items.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| Row { item, url: format!("http://h{}.example/{i}.jpg", i % 9) })
        .collect()
}

#[test]
fn the_bounded_pass_finds_the_same_groups_keepers_and_leaks_as_the_in_memory_rules_over_many_partitions() {
    let rows = manifest();
    let items: Vec<Item> = rows.iter().map(|r| r.item.clone()).collect();
    let (want, want_skipped) = groups::find(&items, DEFAULT_THRESHOLD);
    let want: Vec<DuplicateRow> = want
        .iter()
        .map(|d| DuplicateRow {
            group: d.group,
            keeper: items[d.keeper].uuid.clone(),
            member: items[d.member].uuid.clone(),
            distance: d.distance,
            why: d.why,
            keeper_url: rows[d.keeper].url.clone(),
            member_url: rows[d.member].url.clone(),
        })
        .collect();
    let tests: Vec<[u8; 32]> = [7, 500, 1200].iter().filter_map(|&i| items[i].pdq).collect();
    let want_leaks: Vec<LeakRow> = groups::leaks(&items, &tests, DEFAULT_THRESHOLD)
        .into_iter()
        .map(|(i, test, distance)| LeakRow { uuid: items[i].uuid.clone(), url: rows[i].url.clone(), test, distance })
        .collect();
    assert!(want.iter().any(|d| d.why == "pdq") && want.iter().any(|d| d.why == "sha256"));
    assert!(want.last().unwrap().group > 80, "the manifest has its groups");
    assert_eq!(want_skipped.buckets, 1, "and one bucket too large to compare");

    // 64 bytes a partition: every spill spread over the most partitions there can be.
    for partition_bytes in [64, super::spill::DEFAULT_PARTITION_BYTES] {
        let scratch = tempfile::tempdir().unwrap();
        let index = LeakIndex::new(&tests);
        let settings =
            Settings { scratch: scratch.path(), threshold: DEFAULT_THRESHOLD, partition_bytes, leaks: Some(&index) };
        let (mut got, mut leaks) = (Vec::new(), Vec::new());
        let counts = bounded::find(
            &Rows(rows.clone()),
            &settings,
            &mut |l| {
                leaks.push(l);
                Ok(())
            },
            &mut |d| {
                got.push(d);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got.len(), want.len(), "partition_bytes={partition_bytes}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "partition_bytes={partition_bytes}");
        }
        assert_eq!(counts.skipped, want_skipped);
        assert_eq!((counts.groups, counts.duplicates), (want.last().unwrap().group + 1, want.len() as u64));
        assert_eq!(counts.same_bytes, want.iter().filter(|d| d.why == "sha256").count() as u64);
        assert_eq!(leaks, want_leaks);
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 2, "only rows.bin and parents.bin are left");
    }
}
