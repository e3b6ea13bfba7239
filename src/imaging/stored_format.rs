//! `StoredFormat`: what the bytes of a stored image are, and the names the shards, file
//! extensions and MIME types give them.
//!
//! Owns: the formats and their names. Does not own: choosing one (`pipeline`, `planar`).

/// What the stored bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    /// Raw RGB pixels, `stored_width * stored_height * 3` bytes, row-major (the old tool's layout).
    RawRgb,
}

impl StoredFormat {
    /// The `format` value of a success record in a shard.
    pub fn name(self) -> &'static str {
        match self {
            StoredFormat::Jpeg => "jpeg",
            StoredFormat::Png => "png",
            StoredFormat::Webp => "webp",
            StoredFormat::Gif => "gif",
            StoredFormat::RawRgb => "rgb",
        }
    }

    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            StoredFormat::Jpeg => "jpg",
            StoredFormat::Png => "png",
            StoredFormat::Webp => "webp",
            StoredFormat::Gif => "gif",
            StoredFormat::RawRgb => "rgb",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            StoredFormat::Jpeg => "image/jpeg",
            StoredFormat::Png => "image/png",
            StoredFormat::Webp => "image/webp",
            StoredFormat::Gif => "image/gif",
            StoredFormat::RawRgb => "application/octet-stream",
        }
    }
}
