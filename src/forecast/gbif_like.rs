//! A deterministic GBIF-shaped job for the forecast's tests and `plan --gbif-like`: 545 servers,
//! 200M URLs with Zipf-distributed counts, allowed rates of 1–20 requests/s. Owns the shape
//! only; it reads no file and has no randomness of its own beyond a fixed-seed SplitMix64.
//!
//! The shape follows GBIF's multimedia table: a handful of servers hold most of the images
//! (Zipf with exponent 1: the largest holds about 15%), and big servers are, on the whole,
//! institutional ones that allow more (the rate falls with the square root of the rank, ±30%,
//! clamped to 1–20 requests/s).

use super::sim::HostWork;
use crate::config::DEFAULT_BATCH_SIZE;

/// Servers in the GBIF multimedia table of 2024 after prep's filters.
pub const SERVERS: usize = 545;
/// URLs in all.
pub const URLS: u64 = 200_000_000;
/// The Zipf exponent of the counts.
pub const ZIPF_EXPONENT: f64 = 1.0;
/// Slowest and fastest allowed rates, requests/s.
pub const RATE_RANGE: (f64, f64) = (1.0, 20.0);
/// The fixed seed: the same list on every machine and every run.
pub const SEED: u64 = 0x6b1f_2024;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator, enough for jitter.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The hosts, largest first, cut into batches of `DEFAULT_BATCH_SIZE`, each allowing
/// `in_flight` requests in flight.
pub fn hosts(in_flight: u32) -> Vec<HostWork> {
    let weights: Vec<f64> = (1..=SERVERS).map(|i| 1.0 / (i as f64).powf(ZIPF_EXPONENT)).collect();
    let sum: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights.iter().map(|w| ((URLS as f64 * w / sum).round() as u64).max(1)).collect();
    // Rounding leaves the total a few rows off: the largest host takes the difference.
    let rest: u64 = counts[1..].iter().sum();
    counts[0] = URLS - rest;
    let mut rng = SplitMix64(SEED);
    let batch = DEFAULT_BATCH_SIZE as u64;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let rate = (RATE_RANGE.1 / ((i + 1) as f64).sqrt() * rng.range(0.7, 1.3)).clamp(RATE_RANGE.0, RATE_RANGE.1);
            let batches = (0..n.div_ceil(batch)).map(|p| (p, batch.min(n - p * batch))).collect();
            HostWork { host: format!("server{i:03}.example.org"), batches, rate, in_flight }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_the_advertised_shape_and_is_the_same_every_time() {
        let h = hosts(2);
        assert_eq!(h.len(), SERVERS);
        assert_eq!(h.iter().map(HostWork::remaining).sum::<u64>(), URLS);
        assert!(h.iter().all(|x| x.rate >= RATE_RANGE.0 && x.rate <= RATE_RANGE.1));
        let top = h[0].remaining() as f64 / URLS as f64;
        assert!((0.10..0.20).contains(&top), "the largest server holds {top:.3} of the URLs");
        assert!(h.windows(2).all(|w| w[0].remaining() >= w[1].remaining()), "largest first");
        assert_eq!(h, hosts(2), "fixed seed");
    }
}
