//! `remove`, the takedown path: removed rows are never asked of the server again, not by a
//! plain download nor by `--retry-failed`; `index` lists them as removed; `--purge` leaves no
//! byte of their images in any shard; and running it again changes nothing.

use test_origin::{images, Behaviour, HostSpec, Origin};

use crate::download::{job, shard_files, FAST};
use crate::util::*;

#[test]
fn removed_rows_are_never_fetched_again_are_listed_as_removed_and_purge_leaves_none_of_their_bytes() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Ok),
        HostSpec::loopback(3, Behaviour::Random503 { percent: 100 }),
    ])
    .unwrap();
    // A small PNG is kept byte for byte, so its bytes can be searched for in the shards.
    let taken_down = origin.url(0, "/img/w40-h30-9.png");
    let failing = origin.url(1, "/img/1.jpg");
    let mut urls: Vec<String> = (0..4).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    urls.extend([taken_down.clone(), failing.clone()]);
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"));
    let out = job.out.to_str().unwrap();
    job.download_ok(&[]);
    let bytes = images::served_bytes("/img/w40-h30-9.png").unwrap();
    let holds = |needle: &[u8]| {
        shard_files(&job.out).iter().any(|s| std::fs::read(s).unwrap().windows(needle.len()).any(|w| w == needle))
    };
    assert!(holds(&bytes), "the image is stored as it came");

    let list = job.out.join("takedown.txt");
    std::fs::write(&list, format!("# a provider's request\n{taken_down}\n{failing}\nhttp://not.in/the/dataset.jpg\n"))
        .unwrap();
    let remove = |extra: &[&str]| -> serde_json::Value {
        let args = [&["remove", "-o", out, "--urls", list.to_str().unwrap(), "--json"][..], extra].concat();
        serde_json::from_str(&run_ok(&args)).unwrap()
    };
    let first = remove(&["--reason", "provider deleted the record"]);
    let counts = |r: &serde_json::Value| ["asked", "found", "removed", "already_removed"].map(|k| r[k].as_u64());
    assert_eq!(counts(&first), [3, 2, 2, 0].map(Some), "{first}");
    assert_eq!(first["not_in_dataset"], serde_json::json!(["http://not.in/the/dataset.jpg"]));

    assert!(holds(&bytes), "without --purge the bytes are still in the older shard");
    let purged = remove(&["--purge"]);
    assert_eq!(counts(&purged), [3, 2, 0, 2].map(Some), "nothing is removed twice: {purged}");
    assert_eq!(purged["purged_batches"].as_u64(), Some(2), "{purged}");
    assert!(!holds(&bytes), "--purge leaves no byte of the removed image in any shard");

    // Neither a download nor --retry-failed asks for them again.
    let asked = |host: usize| origin.log(host).without_robots().into_vec().len();
    let before = (asked(0), asked(1));
    job.download_ok(&[]);
    job.download_ok(&["--retry-failed"]);
    assert_eq!((asked(0), asked(1)), before, "no request for a removed row");

    let index: serde_json::Value = serde_json::from_str(&run_ok(&["index", "-o", out, "--json"])).unwrap();
    assert_eq!(
        (index["stored"].as_u64(), index["failed"].as_u64()),
        (Some(4), Some(2)),
        "the other rows are kept: {index}"
    );
    let again = remove(&[]);
    assert_eq!((again["removed"].as_u64(), again["batches"].as_u64()), (Some(0), Some(0)), "idempotent: {again}");
}
