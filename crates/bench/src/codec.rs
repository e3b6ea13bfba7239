//! The codec limit: how many images per second `process` turns into stored bytes on N threads,
//! with no network at all, and the CPU time each image costs, overall and per source format. The
//! engine benchmark compares its own rate against this figure.
//!
//! Owns: `bench_codec`, `CodecBench` and `SourceFormat`. Does not own: the corpus (see `corpus`
//! and `download`) nor the engine's CPU pool; plain `std::thread` workers share one atomic work
//! index here.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;

use distributed_downloader::imaging::{process, ImageError, ImageSettings, Processed, StageSeconds};

use crate::cli::CodecArgs;

/// The format of a corpus image, from its magic bytes, so CPU time can be told apart per format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Webp,
    /// Anything else (GIF, TIFF, BMP, junk).
    Other,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 4] = [SourceFormat::Jpeg, SourceFormat::Png, SourceFormat::Webp, SourceFormat::Other];

    pub fn of(bytes: &[u8]) -> SourceFormat {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            SourceFormat::Jpeg
        } else if bytes.starts_with(b"\x89PNG") {
            SourceFormat::Png
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            SourceFormat::Webp
        } else {
            SourceFormat::Other
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Webp => "webp",
            SourceFormat::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Images of one source format and the worker CPU time they took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FormatCpu {
    pub images: usize,
    pub cpu_seconds: f64,
}

impl FormatCpu {
    pub fn ms_per_image(&self) -> f64 {
        if self.images > 0 {
            self.cpu_seconds * 1000.0 / self.images as f64
        } else {
            0.0
        }
    }
}

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
    /// CPU time of the worker thread inside `process`, per image, from the thread CPU clock
    /// (`CLOCK_THREAD_CPUTIME_ID`, nanoseconds); where that is unavailable, wall time inside it.
    pub cpu_ms_per_image: f64,
    /// The same split by source format, indexed as `SourceFormat::ALL`.
    pub per_format: [FormatCpu; 4],
    /// Wall time inside each stage of `process`, summed over the images that succeeded.
    pub stages: StageSeconds,
    /// A fingerprint of every result (stored bytes, sizes, format, SHA-256, error class),
    /// independent of thread scheduling: equal before and after a change means the change left
    /// every stored byte as it was. Computed outside the CPU time measured.
    pub output_fingerprint: u64,
}

impl CodecBench {
    /// `fmt=ms/img(count)` for each format present, e.g. `jpeg=55.1(120) png=40.2(12)`.
    pub fn per_format_summary(&self) -> String {
        SourceFormat::ALL
            .iter()
            .zip(self.per_format.iter())
            .filter(|(_, f)| f.images > 0)
            .map(|(fmt, f)| format!("{}={:.1}({})", fmt.name(), f.ms_per_image(), f.images))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The figures as `key=value` pairs on one line, the form every `dd-bench` figure takes.
    pub fn line(&self) -> String {
        format!(
            "codec_limit_img_s={:.1} codec_cpu_ms_per_img={:.1} codec_cpu_ms_per_img_by_format=[{}] codec_ms_per_img_by_stage=[{}] output_fingerprint={:016x}",
            self.images_per_sec,
            self.cpu_ms_per_image,
            self.per_format_summary(),
            self.stage_summary(),
            self.output_fingerprint,
        )
    }

    /// `stage=ms/img` for decode, hash, resize, fingerprint and encode, averaged over all images,
    /// and the fingerprint's (the perceptual hashes') share of the image's time.
    pub fn stage_summary(&self) -> String {
        let per_image = |seconds: f64| if self.images > 0 { seconds * 1000.0 / self.images as f64 } else { 0.0 };
        let s = &self.stages;
        let total = s.decode + s.hash + s.resize + s.fingerprint + s.encode;
        let share = if total > 0.0 { 100.0 * s.fingerprint / total } else { 0.0 };
        format!(
            "decode={:.1} hash={:.1} resize={:.1} fingerprint={:.1} encode={:.1} fingerprint_share={share:.1}%",
            per_image(s.decode),
            per_image(s.hash),
            per_image(s.resize),
            per_image(s.fingerprint),
            per_image(s.encode)
        )
    }
}

/// `bench_codec` run `runs` times (at least once); the run with the median CPU per image.
pub fn median_codec(corpus: &[Vec<u8>], s: &ImageSettings, threads: usize, runs: usize) -> CodecBench {
    let all: Vec<CodecBench> = (0..runs.max(1)).map(|_| bench_codec(corpus, s, threads)).collect();
    median_by(all, |b| b.cpu_ms_per_image)
}

/// The run whose `key` is the median (the upper one of an even count).
///
/// # Panics
/// If `runs` is empty.
pub fn median_by<T>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs.swap_remove(runs.len() / 2)
}

/// `dd-bench codec`: the codec limit on every file of a folder, on all cores, as one line.
pub fn run_on_folder(args: &CodecArgs) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("cannot list {}", args.dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", args.dir.display()))?;
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{} has no files to process", args.dir.display());
    let corpus = files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("cannot read {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let settings = ImageSettings::default();
    let codec = median_codec(&corpus, &settings, threads, args.runs);
    let quality = if args.quality {
        format!(" {}", crate::quality::measure(&corpus, &settings, threads)?.field())
    } else {
        String::new()
    };
    println!("codec: images={} threads={threads} {}{quality}", codec.images, codec.line());
    Ok(())
}

/// Processes every image of `corpus` once with `threads` workers (at least 1) and reports the rate.
pub fn bench_codec(corpus: &[Vec<u8>], s: &ImageSettings, threads: usize) -> CodecBench {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_thread: Vec<(usize, [FormatCpu; 4], u64, StageSeconds)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = 0usize;
                    let mut per_format = [FormatCpu::default(); 4];
                    let mut fingerprint = 0u64;
                    let mut stages = StageSeconds::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(bytes) = corpus.get(i) else { break };
                        let (wall, cpu) = (Instant::now(), thread_cpu_seconds());
                        let result = process(bytes, s);
                        let spent = match (cpu, thread_cpu_seconds()) {
                            (Some(before), Some(after)) => after - before,
                            _ => wall.elapsed().as_secs_f64(),
                        };
                        failed += usize::from(result.is_err());
                        if let Ok(p) = &result {
                            add_stages(&mut stages, &p.timings);
                        }
                        fingerprint ^= fingerprint_of(i, &result);
                        let slot = &mut per_format[SourceFormat::of(bytes).index()];
                        slot.images += 1;
                        slot.cpu_seconds += spent;
                    }
                    (failed, per_format, fingerprint, stages)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a codec bench worker panicked")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let images = corpus.len();
    let failed = per_thread.iter().map(|(f, _, _, _)| f).sum();
    let output_fingerprint = per_thread.iter().fold(0, |acc, (_, _, f, _)| acc ^ f);
    let mut stages = StageSeconds::default();
    let mut per_format = [FormatCpu::default(); 4];
    for (_, thread, _, thread_stages) in &per_thread {
        add_stages(&mut stages, thread_stages);
        for (total, part) in per_format.iter_mut().zip(thread) {
            total.images += part.images;
            total.cpu_seconds += part.cpu_seconds;
        }
    }
    let cpu_seconds: f64 = per_format.iter().map(|f| f.cpu_seconds).sum();
    CodecBench {
        images,
        failed,
        seconds,
        images_per_sec: if seconds > 0.0 { images as f64 / seconds } else { 0.0 },
        cpu_ms_per_image: if images > 0 { cpu_seconds * 1000.0 / images as f64 } else { 0.0 },
        per_format,
        stages,
        output_fingerprint,
    }
}

fn add_stages(total: &mut StageSeconds, part: &StageSeconds) {
    total.decode += part.decode;
    total.hash += part.hash;
    total.resize += part.resize;
    total.encode += part.encode;
    total.fingerprint += part.fingerprint;
}

/// A hash of image `index`'s result, combined by XOR so the order workers finish in is irrelevant.
fn fingerprint_of(index: usize, result: &Result<Processed, ImageError>) -> u64 {
    // SipHash with fixed keys: the same in every process, unlike `RandomState`.
    let mut h = std::hash::DefaultHasher::new();
    index.hash(&mut h);
    match result {
        Ok(p) => {
            (p.original_width, p.original_height, p.stored_width, p.stored_height).hash(&mut h);
            // MD5 is left out: it is optional (MD5=on) and the baseline computed it always.
            (p.format.name(), &p.data, p.sha256, p.resized, p.reencoded).hash(&mut h);
        }
        Err(e) => e.class().as_str().hash(&mut h),
    }
    h.finish()
}

/// `struct timespec` on 64-bit Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// `CLOCK_THREAD_CPUTIME_ID` from `<time.h>` on Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
extern "C" {
    fn clock_gettime(clock: i32, out: *mut Timespec) -> i32;
}

/// User plus system CPU time of the calling thread in nanosecond resolution (per-image figures
/// need better than `/proc`'s 10 ms ticks), or None off 64-bit Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_seconds() -> Option<f64> {
    let mut now = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: libc's clock_gettime only writes one timespec through the pointer, which points to
    // a live, correctly laid out value on this stack frame.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (rc == 0).then_some(now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_seconds() -> Option<f64> {
    None
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
        let jpeg = bench.per_format[SourceFormat::Jpeg.index()];
        let other = bench.per_format[SourceFormat::Other.index()];
        assert_eq!((jpeg.images, other.images), (6, 1));
        assert!(jpeg.cpu_seconds > 0.0, "six decodes and encodes take measurable CPU");
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
