//! The command line and the config file: errors a user sees before anything runs.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::util::*;

#[test]
fn unknown_config_key_is_a_usage_error_naming_key_and_file() {
    let dir = tempdir();
    let cfg = dir.path().join("job.env");
    std::fs::write(&cfg, "BATCH_SIZE=100\nBACH_SIZE=5\n").unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "url\nhttp://a.org/1.jpg\n").unwrap();
    let out = run(&["--config", cfg.to_str().unwrap(), "prep", "-i", input.to_str().unwrap(), "-o", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("BACH_SIZE") && err.contains("job.env"), "{err}");
}

#[test]
fn config_file_sets_batch_size_and_flags_override_it() {
    let dir = tempdir();
    let cfg = dir.path().join("job.env");
    let out_dir = dir.path().join("out");
    std::fs::write(&cfg, format!("BATCH_SIZE=2\nOUTPUT_DIR={}\n", out_dir.display())).unwrap();
    let input = dir.path().join("in.csv");
    let body: String = (0..5).map(|i| format!("http://a.org/{i}.jpg\n")).collect();
    std::fs::write(&input, format!("url\n{body}")).unwrap();
    run_ok(&["--config", cfg.to_str().unwrap(), "prep", "-i", input.to_str().unwrap()]);
    assert_eq!(read_servers(&out_dir)["a.org"], (5, 3), "BATCH_SIZE=2 from the file: 5 URLs -> 3 batches");
    run_ok(&["--config", cfg.to_str().unwrap(), "prep", "-i", input.to_str().unwrap(), "--batch-size", "5", "--force"]);
    assert_eq!(read_servers(&out_dir)["a.org"], (5, 1), "--batch-size 5 overrides the file");
}

#[test]
fn missing_output_folder_is_a_usage_error() {
    let dir = tempdir();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "url\nhttp://a.org/1.jpg\n").unwrap();
    let out = run(&["prep", "-i", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
}

/// The test origin and the benchmarks are their own crates (`crates/test-origin`, `crates/bench`):
/// the shipped binary neither offers their subcommands nor contains their code.
#[test]
fn product_binary_holds_no_test_origin_or_benchmarks() {
    let help = run_ok(&["--help"]);
    assert!(help.contains("prep") && help.contains("download"), "{help}");
    for gone in ["origin", "bench"] {
        assert!(!help.contains(gone), "`--help` still mentions `{gone}`:\n{help}");
    }
    for sub in ["origin", "bench-prep", "bench-download", "bench-politeness"] {
        let out = run(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(2), "`{sub}` is still a subcommand: {}", stderr(&out));
    }
    // Every function of a crate carries the crate's name in its symbol (kept in every profile).
    let binary = Path::new(env!("CARGO_BIN_EXE_distributed-downloader"));
    assert!(file_contains(binary, b"distributed_downloader"), "the search finds the product's own crate");
    for crate_name in ["test_origin", "dd_bench"] {
        let found = file_contains(binary, crate_name.as_bytes());
        assert!(!found, "the product binary contains symbols of `{crate_name}`");
    }
}

/// How much of a file [`file_contains`] reads at a time.
const PIECE: usize = 16 << 20;

/// Whether the file at `path` holds `needle` anywhere. The debug binary is over a gigabyte: it is
/// read in pieces, each searched with the C library's `memmem`, as a byte-by-byte scan in this
/// unoptimised test crate took two minutes.
fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut buf = vec![0u8; PIECE + needle.len()];
    // Bytes carried over from the end of the previous piece, so a needle across two is found.
    let mut kept = 0;
    loop {
        let n = file.read(&mut buf[kept..]).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            return false;
        }
        let filled = kept + n;
        let haystack = &buf[..filled];
        // SAFETY: both pointers and lengths come from live slices, which memmem only reads.
        let at = unsafe { libc::memmem(haystack.as_ptr().cast(), filled, needle.as_ptr().cast(), needle.len()) };
        if !at.is_null() {
            return true;
        }
        kept = (needle.len() - 1).min(filled);
        buf.copy_within(filled - kept..filled, 0);
    }
}

#[test]
fn file_contains_finds_a_needle_across_two_pieces_and_no_other() {
    let dir = tempdir();
    let path = dir.path().join("blob");
    // The first read fills PIECE + 11 bytes: the needle starts 3 bytes before its end.
    let needle = b"test_origin";
    let at = PIECE + needle.len() - 3;
    let mut blob = vec![0u8; 2 * PIECE];
    blob[at..at + needle.len()].copy_from_slice(needle);
    std::fs::write(&path, &blob).unwrap();
    assert!(file_contains(&path, needle));
    assert!(!file_contains(&path, b"dd_bench"));
}

/// Each fatal error says its cause once: many messages already end with their cause, and the
/// error chain used to print it a second time.
#[test]
fn each_fatal_error_says_its_cause_once() {
    let dir = tempdir();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cfg = dir.path().join("job.env");
    std::fs::write(&cfg, "CONTACT=tests@example.org\n").unwrap();
    let (cfg, empty) = (cfg.to_str().unwrap(), empty.to_str().unwrap());
    let out_dir = dir.path().join("out");
    let cases: [(&[&str], &str); 4] = [
        (&["prep", "-i", "/nonexistent/list.csv", "-o", out_dir.to_str().unwrap()], "No such file or directory"),
        (&["--config", cfg, "download", "-o", empty], "holds no prep output"),
        (&["--config", cfg, "verify", "-o", empty], "holds no prep output"),
        (&["--config", cfg, "download", "-o", "/nonexistent/out"], "does not exist"),
    ];
    for (args, cause) in cases {
        let out = run(args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert_eq!(err.matches(cause).count(), 1, "{args:?} says {cause:?} once:\n{err}");
    }
    assert!(!out_dir.exists(), "a prep whose input cannot be read leaves no output folder behind");
}
