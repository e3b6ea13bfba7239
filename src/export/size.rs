//! `--shard-size`: a count of images (`1000`) or of image bytes (`500MB`, `2GB`, `512MiB`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How big one output shard may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardSize {
    /// At most this many images.
    Images(u64),
    /// At most this many bytes of stored images (a shard holds one image at least, whatever its
    /// size; metadata, tar headers and parquet framing come on top).
    Bytes(u64),
}

/// The default: shards of about half a gigabyte, which WebDataset and Hugging Face both read well.
pub const DEFAULT_SHARD_SIZE: &str = "500MB";

/// Units a size may end with, and their bytes.
const UNITS: [(&str, u64); 9] = [
    ("KIB", 1 << 10),
    ("MIB", 1 << 20),
    ("GIB", 1 << 30),
    ("TIB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard-size {0:?} is neither a count of images (1000) nor a size in bytes (500MB, 2GB, 512MiB): write one of those, above zero")]
pub struct ShardSizeError(pub String);

impl FromStr for ShardSize {
    type Err = ShardSizeError;

    fn from_str(s: &str) -> Result<ShardSize, ShardSizeError> {
        let bad = || ShardSizeError(s.to_string());
        let text = s.trim().to_ascii_uppercase();
        let unit = UNITS.iter().find(|(u, _)| text.ends_with(u));
        let size = match unit {
            None => ShardSize::Images(text.parse().map_err(|_| bad())?),
            Some((u, scale)) => {
                let number: f64 = text[..text.len() - u.len()].trim().parse().map_err(|_| bad())?;
                if !number.is_finite() || number <= 0.0 {
                    return Err(bad());
                }
                ShardSize::Bytes((number * *scale as f64).round() as u64)
            }
        };
        match size {
            ShardSize::Images(0) | ShardSize::Bytes(0) => Err(bad()),
            ok => Ok(ok),
        }
    }
}

impl fmt::Display for ShardSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardSize::Images(n) => write!(f, "{n} images"),
            ShardSize::Bytes(b) => write!(f, "{:.1} MB of images", *b as f64 / 1e6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_number_counts_images_and_a_unit_counts_bytes() {
        assert_eq!("1000".parse(), Ok(ShardSize::Images(1000)));
        assert_eq!("500MB".parse(), Ok(ShardSize::Bytes(500_000_000)));
        assert_eq!("2GB".parse(), Ok(ShardSize::Bytes(2_000_000_000)));
        assert_eq!("1.5gb".parse(), Ok(ShardSize::Bytes(1_500_000_000)));
        assert_eq!("512MiB".parse(), Ok(ShardSize::Bytes(512 << 20)));
        assert_eq!("300B".parse(), Ok(ShardSize::Bytes(300)));
    }

    #[test]
    fn a_size_that_means_nothing_is_refused_with_examples() {
        for bad in ["0", "0MB", "-5", "12XB", "MB", "lots"] {
            let e = bad.parse::<ShardSize>().unwrap_err().to_string();
            assert!(e.contains("500MB") && e.contains(bad), "{bad}: {e}");
        }
    }
}
