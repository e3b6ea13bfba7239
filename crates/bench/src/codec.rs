//! The codec limit: how many images per second `process` turns into stored bytes on N threads,
//! with no network at all. The engine benchmark compares its own rate against this figure.
//!
//! Owns: `bench_codec` and `CodecBench`. Does not own: the corpus (see `corpus`) nor the engine's
//! CPU pool; plain `std::thread` workers share one atomic work index here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use distributed_downloader::imaging::{process, ImageSettings};

/// Clock ticks per second in `/proc/*/stat` (Linux's USER_HZ). It is 100 on every Linux ABI we
/// run on; the kernel keeps it fixed for user space whatever its internal HZ.
const USER_HZ: f64 = 100.0;

/// What one run of `bench_codec` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecBench {
    /// Images processed (including any that failed, which the corpus should not contain).
    pub images: usize,
    /// Images for which `process` returned an error.
    pub failed: usize,
    /// Wall-clock time for the whole corpus.
    pub seconds: f64,
    pub images_per_sec: f64,
    /// CPU time of the worker threads per image, from `/proc/thread-self/stat` (10 ms ticks, so
    /// use a corpus of a few seconds); where that is unreadable, the time spent inside `process`.
    pub cpu_ms_per_image: f64,
}

/// Processes every image of `corpus` once with `threads` workers (at least 1) and reports the rate.
pub fn bench_codec(corpus: &[Vec<u8>], s: &ImageSettings, threads: usize) -> CodecBench {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_thread: Vec<(usize, Duration, Option<f64>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let cpu_before = thread_cpu_seconds();
                    let (mut failed, mut busy) = (0usize, Duration::ZERO);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(bytes) = corpus.get(i) else { break };
                        let t = Instant::now();
                        failed += usize::from(process(bytes, s).is_err());
                        busy += t.elapsed();
                    }
                    let cpu = cpu_before.zip(thread_cpu_seconds()).map(|(before, after)| after - before);
                    (failed, busy, cpu)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a codec bench worker panicked")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let images = corpus.len();
    let failed = per_thread.iter().map(|(f, _, _)| f).sum();
    let cpu_seconds = match per_thread.iter().map(|(_, _, cpu)| *cpu).collect::<Option<Vec<f64>>>() {
        Some(cpu) => cpu.iter().sum::<f64>(),
        None => per_thread.iter().map(|(_, busy, _)| busy.as_secs_f64()).sum(),
    };
    CodecBench {
        images,
        failed,
        seconds,
        images_per_sec: if seconds > 0.0 { images as f64 / seconds } else { 0.0 },
        cpu_ms_per_image: if images > 0 { cpu_seconds * 1000.0 / images as f64 } else { 0.0 },
    }
}

/// User plus system CPU time of the calling thread, or None off Linux.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::realistic_corpus;
    use test_origin::photo::synthetic_photo_jpeg;

    #[test]
    fn counts_every_image_once_across_threads() {
        let corpus: Vec<Vec<u8>> = (0..6).map(|seed| synthetic_photo_jpeg(320, 240, seed, 85)).collect();
        let mut with_junk = corpus.clone();
        with_junk.push(b"<html>not an image</html>".to_vec());
        let bench = bench_codec(&with_junk, &ImageSettings::default(), 3);
        assert_eq!((bench.images, bench.failed), (7, 1));
        assert!(bench.images_per_sec > 0.0 && bench.cpu_ms_per_image >= 0.0);
    }

    /// Run in release: `cargo test --release -p dd-bench codec_throughput_report -- --ignored --nocapture`.
    #[test]
    #[ignore = "a throughput figure for release builds, not a check"]
    fn codec_throughput_report() {
        let t = Instant::now();
        let corpus = realistic_corpus(40);
        let megabytes = corpus.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
        println!("corpus: 40 images, {megabytes:.1} MB, generated in {:.1} s", t.elapsed().as_secs_f64());
        let settings = ImageSettings::default();
        bench_codec(&corpus, &settings, 1); // warm up caches and the page allocator
        for threads in [1, 2] {
            let b = bench_codec(&corpus, &settings, threads);
            println!(
                "codec limit, {threads} thread(s): {:.1} images/s, {:.1} ms CPU per image, {} failed",
                b.images_per_sec, b.cpu_ms_per_image, b.failed
            );
            assert_eq!(b.failed, 0, "the generated corpus must process cleanly");
        }
    }
}
