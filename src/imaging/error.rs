//! Why an image could not be turned into something we store, and the error class the engine records.
//!
//! Owns: `ImageError` and `class()`. Does not own: HTTP or transport failures (that is `fetch`),
//! nor whether to retry: none of these get better by downloading the same bytes again.

use thiserror::Error;

use crate::host::outcome::ErrorClass;

/// A failure of `process`. Every variant maps to exactly one error class (see `class`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The body is not an image at all: an HTML error page, JSON, text, an empty body or unknown bytes.
    #[error("the body is not an image ({what}, {len} bytes); the server likely sent an error or login page instead")]
    NotImage {
        /// What the bytes look like: "html", "xml", "json", "pdf", "text", "empty" or "unknown binary".
        what: &'static str,
        len: usize,
    },
    /// A known image format whose data is corrupt or truncated.
    #[error("cannot decode this {format}: {reason}; the file is corrupt or was cut short")]
    Decode { format: &'static str, reason: String },
    /// The header asks for more pixels than `max_pixels`; refused before any pixel was allocated.
    #[error("{width}x{height} image has more than {limit} pixels; refused as a possible decompression bomb (raise MAX_PIXELS to accept it)")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    /// A real image we cannot handle: a format we do not decode (AVIF, HEIC, JPEG 2000, SVG, ...)
    /// or a feature of a known one (say 12-bit JPEG), or a size a JPEG cannot hold.
    #[error("unsupported {format} image: {reason}")]
    Unsupported { format: &'static str, reason: String },
}

impl ImageError {
    /// The error class recorded for this row: `decode`, `not_image` or `too_many_pixels`.
    /// `Unsupported` counts as `decode`: it is an image, and we could not decode it.
    pub fn class(&self) -> ErrorClass {
        match self {
            ImageError::NotImage { .. } => ErrorClass::NotImage,
            ImageError::Decode { .. } | ImageError::Unsupported { .. } => ErrorClass::Decode,
            ImageError::TooManyPixels { .. } => ErrorClass::TooManyPixels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_has_its_class_and_a_useful_message() {
        let not_image = ImageError::NotImage { what: "html", len: 512 };
        assert_eq!(not_image.class(), ErrorClass::NotImage);
        assert!(not_image.to_string().contains("html"));
        let bomb = ImageError::TooManyPixels { width: 100_000, height: 100_000, limit: 200_000_000 };
        assert_eq!(bomb.class(), ErrorClass::TooManyPixels);
        assert!(bomb.to_string().contains("100000x100000"));
        let decode = ImageError::Decode { format: "jpeg", reason: "premature end".into() };
        assert_eq!(decode.class(), ErrorClass::Decode);
        let unsupported = ImageError::Unsupported { format: "avif", reason: "no decoder".into() };
        assert_eq!(unsupported.class(), ErrorClass::Decode);
    }
}
