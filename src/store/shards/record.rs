//! The records a shard holds: one per input URL, either a success or a failure.

/// One stored image.
#[derive(Debug, Clone, PartialEq)]
pub struct SuccessRecord {
    /// The image's UUID from prep (UUIDv5 of the URL).
    pub uuid: String,
    pub url: String,
    pub server: String,
    /// Every source id that referenced the URL.
    pub source_ids: Vec<String>,
    pub original_width: u32,
    pub original_height: u32,
    pub stored_width: u32,
    pub stored_height: u32,
    /// `jpeg`, `png`, `webp`, `gif` or `rgb` (raw pixels, stored_height × stored_width × 3).
    pub format: String,
    /// The stored bytes.
    pub data: Vec<u8>,
    /// SHA-256 of the original bytes as served, lowercase hex.
    pub sha256: String,
    /// MD5 of the original bytes, lowercase hex (the old tool's `hashsum_original`).
    pub md5: String,
    /// When the server last confirmed these bytes, seconds since the Unix epoch: when the fetch
    /// that brought them completed, or a later revalidation that the server answered with
    /// `304 Not Modified` (`download --revalidate`).
    pub fetched_at: f64,
    /// The URL the image came from when redirects led there; empty when `url` answered itself.
    pub final_url: String,
    /// Redirects followed from `url` to the image (0 when it answered itself).
    pub redirects: u32,
    /// The answer's `ETag` and `Last-Modified` headers as sent, empty when absent: what a later
    /// run asks "has it changed?" with.
    pub etag: String,
    pub last_modified: String,
    /// PDQ perceptual hash of the stored image, 64 lowercase hex characters; empty when none was
    /// computed (shards of older versions, an original kept as it came that did not decode).
    pub pdq: String,
    /// PDQ's quality of that hash, 0 (flat) to 100; below 50 a match is unreliable.
    pub pdq_quality: u8,
    /// 64-bit DCT pHash of the stored image (0 with `pdq` empty).
    pub phash: u64,
    /// Which version of the URL's image this is: 1 for the first download; a revalidation that
    /// found other bytes (`download --revalidate`) stores version + 1; one that found the same
    /// keeps it. Shards of older versions lack it (read as 1).
    pub version: u32,
    /// When a download last asked the server about these bytes, Unix seconds: `fetched_at`,
    /// or later when a revalidation failed (the stored image is then kept as it was, see
    /// `check_error`). What `download --revalidate --older-than` compares with. Shards of
    /// older versions lack it (read as `fetched_at`).
    pub checked_at: f64,
    /// The error class (`ErrorClass::as_str()`) of the revalidation at `checked_at` when it
    /// failed (the server answered 404, could not be reached, ...); empty when the server served
    /// or confirmed the bytes.
    pub check_error: String,
}

/// One row that ended without an image.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    pub uuid: String,
    pub url: String,
    pub server: String,
    pub source_ids: Vec<String>,
    /// The error class, `ErrorClass::as_str()` (`http_4xx`, `timeout`, `decode`, ...).
    pub error_class: String,
    /// What happened, for a person: the status line, the decoder's message, ...
    pub detail: String,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The last HTTP status seen, 0 when none (transport failures).
    pub http_status: u16,
    /// Whether a later run may try again (`--retry-failed`): the class was retriable and ran
    /// out of attempts, rather than permanent.
    pub retriable: bool,
    pub failed_at: f64,
}

/// The contents of one shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardContents {
    pub successes: Vec<SuccessRecord>,
    pub failures: Vec<FailureRecord>,
}

impl ShardContents {
    pub fn len(&self) -> usize {
        self.successes.len() + self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of image data held, for deciding when to commit.
    pub fn data_bytes(&self) -> usize {
        self.successes.iter().map(|s| s.data.len()).sum()
    }
}

/// Test-only: a stored image of `w`×`h` pixels in `format` with bytes `data`, and no source ids,
/// hashes or times: for tests that look at sizes and bytes only.
#[cfg(test)]
pub(crate) fn test_plain_image(uuid: &str, w: u32, h: u32, format: &str, data: Vec<u8>) -> SuccessRecord {
    SuccessRecord {
        source_ids: vec![],
        original_width: w,
        original_height: h,
        stored_width: w,
        stored_height: h,
        format: format.into(),
        data,
        sha256: String::new(),
        md5: String::new(),
        fetched_at: 0.0,
        checked_at: 0.0,
        ..test_image(uuid, 0, 0)
    }
}

/// Test-only: a stored image of `len` bytes `byte`, its fields named after `uuid`.
#[cfg(test)]
pub(crate) fn test_image(uuid: &str, byte: u8, len: usize) -> SuccessRecord {
    SuccessRecord {
        uuid: uuid.into(),
        url: format!("http://a.org/{uuid}"),
        server: "a.org".into(),
        source_ids: vec![uuid.to_uppercase()],
        original_width: 10,
        original_height: 20,
        stored_width: 10,
        stored_height: 20,
        format: "jpeg".into(),
        data: vec![byte; len],
        sha256: format!("sha-{uuid}"),
        md5: format!("md5-{uuid}"),
        fetched_at: 1.0,
        final_url: String::new(),
        etag: String::new(),
        last_modified: String::new(),
        redirects: 0,
        pdq: String::new(),
        pdq_quality: 0,
        phash: 0,
        version: 1,
        checked_at: 1.0,
        check_error: String::new(),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
