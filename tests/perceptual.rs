//! Perceptual hashes recorded at download time: the same photo published at two sizes, in three
//! formats and by two hosts gets nearby PDQ and pHash values, whichever way the pipeline stored
//! it (resized from planes, or kept as it came and decoded small for the hash); other photos get
//! far ones.

use distributed_downloader::imaging::{hamming256, hamming64, parse_pdq_hex};
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, records, FAST};

/// PDQ's authors call two hashes a match at 31 differing bits of 256 or fewer.
const PDQ_MATCH: u32 = 31;

#[test]
fn copies_of_one_photo_get_near_hashes_and_other_photos_far_ones() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    // One photo-like picture (seed 7; the `cam` images have texture and edges, as photos do: the
    // origin's plain images are smooth enough that PDQ rates them under 15, unreliable): a large
    // JPEG the pipeline shrinks to MAX_SIDE from its planes, and copies within MAX_SIDE it keeps as
    // they came (JPEG, PNG, lossy WebP), on the other host too.
    let copies = vec![
        origin.url(0, "/img/cam-w2048-h1536-s7.jpg"),
        origin.url(1, "/img/cam-w800-h600-s7.jpg"),
        origin.url(1, "/img/cam-w640-h480-s7.png"),
        origin.url(0, "/img/cam-w512-h384-s7.webp"),
    ];
    let others: Vec<String> = (8..12).map(|s| origin.url(1, &format!("/img/cam-w800-h600-s{s}.jpg"))).collect();
    let urls: Vec<String> = copies.iter().chain(&others).cloned().collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert!(failed.is_empty() && ok.len() == urls.len(), "{failed:?}");
    let hash = |url: &str| {
        let r = ok.iter().find(|r| r.url == url).unwrap();
        let pdq = parse_pdq_hex(&r.pdq).unwrap_or_else(|| panic!("{url}: no PDQ hash ({:?})", r.pdq));
        (pdq, r.pdq_quality, r.phash, r.stored_width)
    };
    let (mut report, mut wrong) = (Vec::new(), Vec::new());
    for a in &copies {
        let (pa, qa, ha, _) = hash(a);
        for (b, copy) in copies.iter().filter(|b| *b > a).map(|b| (b, true)).chain(others.iter().map(|o| (o, false))) {
            let (pb, qb, hb, _) = hash(b);
            let (d, e) = (hamming256(&pa, &pb), hamming64(ha, hb));
            let line = format!("{a} ~ {b}: pdq {d} (quality {qa}, {qb}), phash {e}");
            // Copies within PDQ's match distance and a few pHash bits; other photos far past both.
            let right = if copy { d <= PDQ_MATCH && e <= 8 } else { d > 2 * PDQ_MATCH && e > 12 };
            if !right {
                wrong.push(line.clone());
            }
            report.push(format!("{} {line}", if copy { "copy " } else { "other" }));
        }
    }
    println!("{}", report.join("\n"));
    assert!(wrong.is_empty(), "wrong distances:\n{}\nall:\n{}", wrong.join("\n"), report.join("\n"));
    assert!(hash(&copies[0]).3 < 2048, "the large copy was shrunk before it was hashed");
    for c in &copies {
        assert!(hash(c).1 >= 50, "{c}: PDQ quality {} on a photo-like image: its hash would not be trusted", hash(c).1);
    }
}
