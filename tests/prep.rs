//! `prep` end to end: inputs on disk, the binary, and the layout read back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::util::*;

/// A GBIF multimedia.txt with one row for every filter reason, plus `n_ok` good rows per server.
fn write_gbif(path: &Path, per_server: &[(&str, usize)]) {
    let mut lines = vec![GBIF_HEADER.to_string()];
    let mut id = 100;
    for (host, n) in per_server {
        for i in 0..*n {
            id += 1;
            lines.push(gbif_line(&id.to_string(), "StillImage", "image/jpeg", &format!("http://{host}/img/{i}.jpg")));
        }
    }
    // One of each reason to drop.
    lines.push(gbif_line("", "StillImage", "image/jpeg", "http://a.org/noid.jpg")); // missing_id
    lines.push(gbif_line("9001", "StillImage", "image/jpeg", "")); // missing_url
    lines.push(gbif_line("9002", "Sound", "audio/mpeg", "http://a.org/s.mp3")); // not_image
    lines.push(gbif_line("9003", "", "text/html", "http://a.org/page")); // not_image
    lines.push(gbif_line("9004", "StillImage", "image/jpeg", "ftp://a.org/x.jpg")); // invalid_url
    lines.push(gbif_line("9005", "StillImage", "image/jpeg", "not a url")); // invalid_url
    lines.push("9006\tStillImage\timage/jpeg".to_string()); // malformed_line
                                                            // Kept: untyped row with an image format, and a duplicate of an existing URL from another id.
    lines.push(gbif_line("9007", "", "image/png", "http://b.org/untyped.png"));
    lines.push(gbif_line("9008", "StillImage", "image/jpeg", "http://A.ORG:80/img/0.jpg"));
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn gbif_multimedia_filters_by_reason_and_cuts_exact_batches() {
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    write_gbif(&input, &[("a.org", 25), ("b.org", 10), ("c.org:8080", 1)]);
    let out = dir.path().join("out");
    let stdout = run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--batch-size", "10"]);
    assert!(stdout.contains("rows read"), "the report is printed: {stdout}");

    let report = read_report(&out);
    assert_eq!(report["schema"], "gbif");
    assert_eq!(report["rows_read"], 1 + 36 + 9, "the lines of the file, as wc -l counts them: the header and 45 rows");
    assert_eq!(report["lines_not_rows"], 1);
    let dropped: BTreeMap<String, u64> = serde_json::from_value(report["dropped"].clone()).unwrap();
    assert_eq!(dropped["missing_id"], 1);
    assert_eq!(dropped["missing_url"], 1);
    assert_eq!(dropped["not_image"], 2);
    assert_eq!(dropped["invalid_url"], 2);
    assert_eq!(dropped["malformed_line"], 1);
    assert_eq!(report["rows_kept"], 38);
    assert_eq!(report["duplicate_url_rows"], 1);
    assert_eq!(report["unique_urls"], 37);
    // The truncated line is the 44th line of the file (header is line 1).
    assert_eq!(report["malformed_samples"][0]["line"], 44);

    // Exact batch counts: ceil(n / 10), every batch but the last full.
    let servers = read_servers(&out);
    assert_eq!(servers["a.org"], (25, 3));
    assert_eq!(servers["b.org"], (11, 2));
    assert_eq!(servers["c.org_8080"], (1, 1));
    let rows = read_urls(&out);
    let mut per_batch: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for r in &rows {
        *per_batch.entry((r.server.clone(), r.partition)).or_default() += 1;
    }
    let a: Vec<usize> = (0..3).map(|p| per_batch[&("a.org".to_string(), p)]).collect();
    assert_eq!(a, vec![10, 10, 5]);
    assert_eq!(rows.len(), 37);
}

#[test]
fn identical_urls_are_fetched_once_and_keep_every_source_id() {
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    write_gbif(&input, &[("a.org", 3)]);
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let rows = read_urls(&out);
    let urls: Vec<&str> = rows.iter().map(|r| r.url.as_str()).collect();
    let unique: BTreeSet<&str> = urls.iter().copied().collect();
    assert_eq!(urls.len(), unique.len(), "no URL appears twice");
    let first = rows.iter().find(|r| r.url == "http://a.org/img/0.jpg").unwrap();
    assert_eq!(first.source_ids, vec!["101".to_string(), "9008".to_string()]);
    assert_eq!(first.row_uuids.len(), 2);
    assert_ne!(first.row_uuids[0], first.row_uuids[1]);
}

#[test]
fn uuids_are_stable_across_runs_and_row_order() {
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    write_gbif(&input, &[("a.org", 30), ("b.org", 7)]);
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--batch-size", "8"]);
    let first: BTreeMap<String, (String, Vec<String>)> =
        read_urls(&out).into_iter().map(|r| (r.url, (r.uuid, r.row_uuids))).collect();

    // Same rows, reversed order, re-run with --force into the same folder.
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1..].reverse();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--batch-size", "8", "--force"]);
    let second: BTreeMap<String, (String, Vec<String>)> =
        read_urls(&out).into_iter().map(|r| (r.url, (r.uuid, r.row_uuids))).collect();
    assert_eq!(first, second);
    let uuids: BTreeSet<&String> = first.values().map(|v| &v.0).collect();
    assert_eq!(uuids.len(), first.len(), "every URL has its own uuid");
}

#[test]
fn hostile_host_strings_stay_inside_the_output_folder() {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(
        &input,
        "url\nhttp://../etc/x.jpg\nhttp://..%2f..%2fetc/y.jpg\nhttp://a%2f..%2f..%2fb/z.jpg\nhttp://[::1]:81/q.jpg\nhttp://ok.org/1.jpg\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let entries: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(entries.len(), 2, "nothing written beside the output folder: {entries:?}");
    for server_dir in sorted_dirs(&out.join("urls")) {
        let name = server_dir.file_name().unwrap().to_string_lossy().into_owned();
        let key = name.strip_prefix("server_name=").unwrap();
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{key}");
        assert!(!key.starts_with('.'), "{key}");
        assert_eq!(server_dir.canonicalize().unwrap().parent().unwrap(), out.join("urls").canonicalize().unwrap());
    }
    let report = read_report(&out);
    assert_eq!(report["rows_read"], 6, "the header and 5 rows");
    let accounted = report["rows_kept"].as_u64().unwrap()
        + report["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!(accounted, 5, "every row is kept or dropped for a reason");
}

#[test]
fn generic_csv_with_quotes_and_named_columns() {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(
        &input,
        "id,photo_url,lic,caption\n\
         1,https://x.org/a.jpg,CC0,\"A caption, with a comma\"\n\
         2,https://x.org/b.jpg,CC-BY,\"Says \"\"hi\"\"\"\n\
         ,https://x.org/c.jpg,CC0,no id\n\
         4,https://y.org:8443/d.jpg,CC0,plain\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    run_ok(&[
        "prep",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--url-col",
        "photo_url",
        "--id-col",
        "id",
        "--license-col",
        "lic",
        "--title-col",
        "caption",
    ]);
    let report = read_report(&out);
    assert_eq!(report["schema"], "generic");
    assert_eq!(report["dropped"]["missing_id"], 1);
    let rows = read_urls(&out);
    assert_eq!(rows.len(), 3);
    let a = rows.iter().find(|r| r.url == "https://x.org/a.jpg").unwrap();
    assert_eq!(a.license.as_deref(), Some("CC0"));
    assert_eq!(a.source_ids, vec!["1"]);
    assert_eq!(read_servers(&out).keys().cloned().collect::<Vec<_>>(), vec!["x.org", "y.org_8443"]);
}

#[test]
fn gbif_parquet_with_lowercase_columns_and_material_citations() {
    let dir = tempdir();
    let input = dir.path().join("snapshot.parquet");
    let mut df = df!(
        "gbifid" => [1i64, 2, 3, 4],
        "type" => ["StillImage", "StillImage", "StillImage", "MovingImage"],
        "format" => ["image/jpeg", "image/jpeg", "image/jpeg", "video/mp4"],
        "identifier" => ["http://p.org/1.jpg", "http://p.org/2.jpg", "http://q.org/3.jpg", "http://p.org/4.mp4"],
        "basisofrecord" => ["PRESERVED_SPECIMEN", "MATERIAL_CITATION", "HUMAN_OBSERVATION", "PRESERVED_SPECIMEN"],
        "license" => ["CC0", "CC0", "CC-BY", "CC0"]
    )
    .unwrap();
    ParquetWriter::new(File::create(&input).unwrap()).finish(&mut df).unwrap();
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let report = read_report(&out);
    assert_eq!(report["schema"], "gbif");
    assert_eq!(report["dropped"]["material_citation"], 1);
    assert_eq!(report["dropped"]["not_image"], 1);
    let rows = read_urls(&out);
    let mut ids: Vec<String> = rows.iter().flat_map(|r| r.source_ids.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec!["1", "3"], "numeric gbifid kept as the source id");
}

#[test]
fn ignored_servers_are_left_out_and_counted() {
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    write_gbif(&input, &[("a.org", 4), ("b.org", 2), ("slow.museum.org", 5)]);
    let ignored = dir.path().join("ignored.txt");
    std::fs::write(&ignored, "# too slow for us\nSLOW.museum.org\n").unwrap();
    let out = dir.path().join("out");
    run_ok(&[
        "prep",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--ignored-servers",
        ignored.to_str().unwrap(),
    ]);
    let report = read_report(&out);
    assert_eq!(report["dropped"]["ignored_server"], 5);
    assert!(!read_servers(&out).contains_key("slow.museum.org"));
}

#[test]
fn missing_column_names_column_file_and_columns_found() {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(&input, "id,link\n1,http://a.org/1.jpg\n").unwrap();
    let out = run(&[
        "prep",
        "-i",
        input.to_str().unwrap(),
        "-o",
        dir.path().join("o").to_str().unwrap(),
        "--url-col",
        "image_url",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("image_url") && err.contains("list.csv") && err.contains("id, link"), "{err}");

    let gbif = dir.path().join("multimedia.txt");
    std::fs::write(&gbif, "gbifID\tidentifier\tformat\n1\thttp://a.org/1.jpg\timage/jpeg\n").unwrap();
    let out = run(&["prep", "-i", gbif.to_str().unwrap(), "-o", dir.path().join("o2").to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("`type`") && err.contains("gbifID, identifier, format"), "{err}");
}

#[test]
fn empty_input_is_a_clear_error() {
    let dir = tempdir();
    for (name, body) in [("empty.txt", ""), ("header_only.txt", format!("{GBIF_HEADER}\n").as_str())] {
        let input = dir.path().join(name);
        std::fs::write(&input, body).unwrap();
        let out =
            run(&["prep", "-i", input.to_str().unwrap(), "-o", dir.path().join(format!("o-{name}")).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("is empty"), "{name}: {}", stderr(&out));
    }
}

#[test]
fn non_empty_output_is_refused_without_force_and_other_files_survive_force() {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(&input, "url\nhttp://a.org/1.jpg\nhttp://a.org/2.jpg\n").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("shards")).unwrap();
    std::fs::write(out.join("shards/keep.h5"), b"downloaded").unwrap();
    let refused = run(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert!(!out.join("urls").exists());

    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--force"]);
    assert_eq!(read_urls(&out).len(), 2);
    assert_eq!(std::fs::read(out.join("shards/keep.h5")).unwrap(), b"downloaded");
}

#[test]
fn odd_bytes_and_stray_quotes_do_not_stop_the_read() {
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    let mut bytes = format!("{GBIF_HEADER}\n").into_bytes();
    bytes.extend_from_slice(
        gbif_line("1", "StillImage", "image/jpeg", "http://a.org/1.jpg").replace("Title", "Ti\"tle \"").as_bytes(),
    );
    bytes.push(b'\n');
    let mut bad = gbif_line("2", "StillImage", "image/jpeg", "http://a.org/2.jpg").into_bytes();
    bad.extend_from_slice(&[0xff, 0xfe, b'x']); // invalid UTF-8 in rightsHolder
    bytes.extend_from_slice(&bad);
    bytes.push(b'\n');
    bytes.extend_from_slice(gbif_line("3", "StillImage", "image/jpeg", "http://a.org/\u{1}3.jpg").as_bytes());
    bytes.push(b'\n');
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let report = read_report(&out);
    assert_eq!(report["rows_read"], 4, "the header and 3 rows");
    assert_eq!(report["dropped"]["malformed_line"], 0, "quotes are data in GBIF's TSV");
    let ids: BTreeSet<String> = read_urls(&out).into_iter().flat_map(|r| r.source_ids).collect();
    assert!(ids.contains("1") && ids.contains("2"), "{ids:?}");
}

#[test]
fn out_of_core_path_gives_the_same_layout_as_one_bucket() {
    // Many tiny spill buckets force identical URLs to meet across flushes and servers to be cut
    // across several bucket files: the result must equal the single-bucket run exactly.
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    write_gbif(&input, &[("a.org", 57), ("b.org", 23), ("c.org", 9)]);
    let (one, many) = (dir.path().join("one"), dir.path().join("many"));
    let base = ["prep", "-i", input.to_str().unwrap(), "--batch-size", "10"];
    run_ok(&[&base[..], &["-o", one.to_str().unwrap()]].concat());
    run_ok(&[&base[..], &["-o", many.to_str().unwrap(), "--rows-per-bucket", "3"]].concat());
    assert_eq!(read_servers(&one), read_servers(&many));
    let key = |rows: Vec<UrlRow>| -> BTreeMap<String, (String, Vec<String>)> {
        rows.into_iter().map(|r| (r.url, (r.uuid, r.source_ids))).collect()
    };
    assert_eq!(key(read_urls(&one)), key(read_urls(&many)));
    assert_eq!(read_report(&many)["duplicate_url_rows"], 1);
    assert_eq!(read_servers(&many)["a.org"], (57, 6));
}

/// A CSV/TSV input too large for the free space of the output's filesystem is refused before a
/// row is read, with both sizes and the ways out. The input is sparse: 2 TiB that take no disk.
#[test]
fn an_input_too_large_for_the_output_disk_is_refused_before_prep_starts() {
    let dir = tempdir();
    let input = dir.path().join("multimedia.txt");
    File::create(&input).unwrap().set_len(2 << 40).unwrap();
    let out_dir = dir.path().join("out");
    let mut child = bin()
        .args(["prep", "-i", input.to_str().unwrap(), "-o", out_dir.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: without the check, prep would start reading 2 TiB of zeros.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("prep was not refused: still running after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for part in ["not enough free space", "2418.9 GB needed", "--skip-space-check"] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
    assert!(!out_dir.exists(), "nothing is written when prep is refused");
}

#[test]
fn an_unclosed_quote_in_a_csv_costs_its_own_line_and_the_rows_after_it_are_read() {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(
        &input,
        "url,title\nhttp://a.org/1.jpg,\"a title that opens a quote\nhttp://a.org/2.jpg,two\nhttp://a.org/3.jpg,\"three, quoted\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let report = read_report(&out);
    assert_eq!(report["rows_read"], 4, "the 4 lines of the file, header included: {report}");
    assert_eq!(report["dropped"]["malformed_line"], 1, "{report}");
    assert_eq!(report["rows_kept"], 2, "{report}");
    assert_eq!(report["malformed_samples"][0]["line"], 2, "the line is named: {report}");
    let urls: BTreeSet<String> = read_urls(&out).into_iter().map(|r| r.url).collect();
    assert_eq!(urls, BTreeSet::from(["http://a.org/2.jpg".to_string(), "http://a.org/3.jpg".to_string()]));
}

/// `wc -l` of `bytes`, plus one for a last line without a newline.
fn lines_of(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64 + u64::from(bytes.last().is_some_and(|b| *b != b'\n'))
}

/// `rows_read` is the input's line count, and every line is the header, a blank line, a kept row
/// or a row dropped for a reason: for CSV and GBIF's TSV, with LF and CRLF line ends, with and
/// without a newline after the last line.
#[test]
fn rows_read_counts_the_lines_of_a_text_input_and_every_line_is_accounted_for() {
    let csv = [
        "url,title",
        "http://a.org/1.jpg,one",
        "",
        "http://a.org/2.jpg,\"an open quote",
        "ftp://a.org/3.jpg,three",
        "http://a.org/4.jpg,\"four, quoted\"",
    ];
    let tsv = [
        GBIF_HEADER.to_string(),
        gbif_line("1", "StillImage", "image/jpeg", "http://a.org/1.jpg"),
        String::new(),
        "2\tStillImage\timage/jpeg".to_string(),
        gbif_line("3", "StillImage", "image/jpeg", "ftp://a.org/3.jpg"),
        gbif_line("4", "StillImage", "image/jpeg", "http://a.org/4.jpg"),
    ];
    let dir = tempdir();
    for (name, lines) in [("list.csv", csv.map(String::from)), ("multimedia.txt", tsv)] {
        for (ending, last) in [("\n", "\n"), ("\r\n", "\r\n"), ("\n", ""), ("\r\n", "")] {
            let case = format!("{name} with {ending:?} line ends and {last:?} after the last line");
            let body = lines.join(ending) + last;
            let input = dir.path().join(name);
            std::fs::write(&input, &body).unwrap();
            let out = dir.path().join("out");
            run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--force"]);
            let report = read_report(&out);
            let n = |key: &str| report[key].as_u64().unwrap_or_else(|| panic!("{case}: no {key} in {report}"));
            let dropped: BTreeMap<String, u64> = serde_json::from_value(report["dropped"].clone()).unwrap();
            assert_eq!(n("rows_read"), 6, "{case}: {report}");
            assert_eq!(n("rows_read"), lines_of(body.as_bytes()), "{case}: {report}");
            assert_eq!(n("lines_not_rows"), 2, "{case}: the header and the blank line: {report}");
            assert_eq!(n("rows_kept"), 2, "{case}: {report}");
            assert_eq!(dropped["malformed_line"], 1, "{case}: {report}");
            assert_eq!(dropped["invalid_url"], 1, "{case}: {report}");
            assert_eq!(report["malformed_samples"][0]["line"], 4, "{case}: the line is named: {report}");
            let accounted = n("lines_not_rows") + n("rows_kept") + dropped.values().sum::<u64>();
            assert_eq!(n("rows_read"), accounted, "{case}: every line is accounted for: {report}");
            let urls: BTreeSet<String> = read_urls(&out).into_iter().map(|r| r.url).collect();
            assert_eq!(urls, BTreeSet::from(["http://a.org/1.jpg".into(), "http://a.org/4.jpg".into()]), "{case}");
        }
    }
}

/// Parquet has no header and no blank lines: `rows_read` is its row count.
#[test]
fn rows_read_of_a_parquet_input_is_its_row_count() {
    let dir = tempdir();
    let input = dir.path().join("list.parquet");
    let mut df = df!("url" => ["http://a.org/1.jpg", "not a url", "http://a.org/2.jpg"]).unwrap();
    ParquetWriter::new(File::create(&input).unwrap()).finish(&mut df).unwrap();
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let report = read_report(&out);
    assert_eq!(report["rows_read"], 3, "{report}");
    assert_eq!(report["lines_not_rows"], 0, "{report}");
    assert_eq!(report["rows_kept"], 2, "{report}");
    assert_eq!(report["dropped"]["invalid_url"], 1, "{report}");
}
