//! Memory bounded by design: with slow processing and fast hosts, response bodies wait for the
//! CPU inside `CPU_QUEUE_MB`, not in as many requests as the rank may have in flight.

use std::time::{Duration, Instant};

use test_origin::{images, Behaviour, HostSpec, Origin};

use crate::download::{job, FAST};
use crate::util::*;

/// The child's peak resident memory in MiB (`VmHWM`), read until it exits.
fn run_and_measure_peak_mib(mut cmd: std::process::Command) -> (std::process::ExitStatus, f64) {
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let (mut peak_kib, started) = (0u64, Instant::now());
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak_kib as f64 / 1024.0);
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the download did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bodies_waiting_for_a_slow_cpu_stay_within_the_body_budget() {
    // 64 photos of 12 MP (about 5 MB each) from 8 fast hosts, one CPU thread, and up to 64
    // requests in flight: without a budget taken before the body is read, most of the 320 MB
    // would sit in memory waiting for the one worker.
    let photo = "/img/w4000-h3000-7.jpg";
    let size_mb = images::served_bytes(photo).unwrap().len() as f64 / 1e6;
    let origin = Origin::start((2..10).map(|h| HostSpec::loopback(h, Behaviour::Ok)).collect()).unwrap();
    let urls: Vec<String> = (0..64).map(|i| origin.url(i % 8, &format!("{photo}?copy={i}"))).collect();
    let budget_mb = 16.0;
    let config = format!(
        "{FAST}REQUEST_TIMEOUT_SECS=120\nINITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\nMAX_IN_FLIGHT_PER_HOST=8\n\
         MAX_REQUESTS_IN_FLIGHT=64\nCPU_THREADS=1\nCPU_QUEUE_MB={budget_mb}\nMAX_BODY_MB=16\n"
    );
    let job = job(&urls, 1000, &config);
    let mut cmd = bin();
    cmd.args(["--config", job.config.to_str().unwrap(), "download", "-o", job.out.to_str().unwrap()]);
    let (status, peak_mib) = run_and_measure_peak_mib(cmd);
    assert!(status.success(), "{status:?}");
    let (ok, _) = crate::download::records(&job.out);
    assert_eq!(ok.len(), 64);
    // The formula's terms here: bodies <= 16 MB; one worker decoding a 12 MP JPEG at DCT scale
    // 1/4 (3 MB of pixels) plus its output; the writer holding 64 stored images of about 0.3 MB
    // until the batch commits (20 MB); the process itself (about 60 MB in a debug build).
    let bound = budget_mb + 3.0 + 20.0 + 90.0;
    eprintln!("peak {peak_mib:.0} MiB with {size_mb:.1} MB photos; bound {bound:.0} MiB");
    assert!(peak_mib < bound, "peak RSS {peak_mib:.0} MiB exceeds {bound:.0} MiB");
}

#[test]
fn every_row_of_a_big_dead_host_is_recorded_once_across_batches_and_windows() {
    // 1,500 rows in 3 batches, each read in several windows: the rows of a host given up are
    // recorded as they stream past, a window at a time, not loaded at once.
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Dead)]).unwrap();
    let urls: Vec<String> = (0..1500).map(|i| origin.url(0, &format!("/img/{i}.jpg"))).collect();
    let job = job(&urls, 500, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"));
    let summary = job.download_ok(&[]);
    assert_eq!((summary["failed"].as_u64(), summary["remaining"].as_u64()), (Some(1500), Some(0)), "{summary}");
    assert_eq!(summary["duplicates"], 0);
    let (ok, failed) = crate::download::records(&job.out);
    crate::download::assert_each_url_once(&urls, &ok, &failed);
    let parked = failed.iter().filter(|f| f.error_class == "parked").count();
    assert!(parked > 1400, "all but the first attempts' rows are parked: {parked}");
}
