//! `origin::respond`: from a host's `Behaviour` and one request to the reply it gets.
//!
//! Owns the per-host state a script needs (request count for `Flaky503`, recent serves for
//! `RateLimited`, the random stream of `Random503`) and the bodies that are not images (garbage,
//! HTML, filler, the bomb PNG). It decides; `server` writes the bytes and keeps time.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::behaviour::{Behaviour, RobotsFile, BOMB_SIDE};
use super::http::RequestHead;
use super::images;
use crate::rng::SplitMix64;

/// Prefix of the redirect chain's intermediate paths: `/hop/<k>/<original path>`.
pub const REDIRECT_PREFIX: &str = "/hop/";
/// Length of a `Corrupt` body: the size of a small thumbnail, enough to get past sniffing.
const CORRUPT_BYTES: usize = 4096;
/// Mixed into the path seed so a `Corrupt` body never repeats the image's own noise stream.
const CORRUPT_SALT: u64 = 0x0C02_2097;
/// Size of the repeating filler block a `Huge` body is streamed from.
pub const FILLER_BLOCK: usize = 64 * 1024;
/// Seed of the `Random503` streams, with the host's position added: fixed, so the n-th request a
/// host receives gets the same answer in every run and a benchmark or test that relies on it is
/// reproducible, while two such hosts of one origin still fail independently.
const RANDOM_503_SEED: u64 = 0x0503_5EED;

/// The bytes of a reply's body.
pub enum Body {
    /// The first `len` bytes of `data` (`Truncated` sends a prefix of the cached image).
    Shared { data: Arc<Vec<u8>>, len: usize },
    /// `len` bytes generated while sending: a JPEG start marker, then [`filler`].
    Generated { len: u64 },
    /// A `side` × `side` 24-bit BMP (side a multiple of 4): its header, then [`filler`] bytes as
    /// pixels (any bytes are valid pixels).
    Bmp { side: u32 },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Shared { len, .. } => *len as u64,
            Body::Generated { len } => *len,
            Body::Bmp { side } => BMP_HEADER + 3 * u64::from(*side) * u64::from(*side),
        }
    }

    /// Up to `n` bytes from `offset` (fewer where a filler block ends).
    pub fn slice(&self, offset: u64, n: usize) -> &[u8] {
        match self {
            Body::Shared { data, .. } => &data[offset as usize..offset as usize + n],
            Body::Generated { .. } => {
                let block = filler();
                let start = (offset % block.len() as u64) as usize;
                &block[start..(start + n).min(block.len())]
            }
            Body::Bmp { side } if offset < BMP_HEADER => {
                let header = bmp_header(*side);
                &header[offset as usize..(offset as usize + n).min(header.len())]
            }
            Body::Bmp { .. } => {
                let block = filler();
                let start = ((offset - BMP_HEADER) % block.len() as u64) as usize;
                &block[start..(start + n).min(block.len())]
            }
        }
    }
}

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the socket takes it.
    Full,
    /// About this many bytes per second.
    Trickle { bytes_per_sec: u64 },
    /// This many bytes, then silence until the origin stops.
    StallAfter { bytes: u64 },
}

/// Everything `server` needs to answer one request.
pub struct Reply {
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`, which `server` adds.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Wait before sending the head (`Slow`).
    pub head_delay: Duration,
    pub pacing: Pacing,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Body) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body,
            head_delay: Duration::ZERO,
            pacing: Pacing::Full,
        }
    }

    fn text(status: u16, text: &str) -> Reply {
        let data = Arc::new(text.as_bytes().to_vec());
        Reply::new(status, "text/plain; charset=utf-8", Body::Shared { len: data.len(), data })
    }
}

/// One host's behaviour plus the state it needs across requests.
pub struct Script {
    behaviour: Behaviour,
    /// What `/robots.txt` answers, and how many times it was asked.
    robots: Option<RobotsFile>,
    robots_asked: AtomicU64,
    /// Requests received so far, all paths and statuses.
    received: AtomicU64,
    /// Arrival times of requests served (not refused) by `RateLimited`, oldest first.
    served: Mutex<VecDeque<Instant>>,
    /// The draws of `Random503`, one per request. A std mutex: held for one draw, never across
    /// an await.
    rng: Mutex<SplitMix64>,
    /// Paths (without query) a test changed with `Origin::change_image`: they serve
    /// `images::changed_bytes`, another `ETag` and [`IMAGE_CHANGED_LAST_MODIFIED`].
    changed: Mutex<HashSet<String>>,
}

impl Script {
    /// The script of the host at position `host` in `Origin::start`'s list.
    pub fn new(behaviour: Behaviour, host: usize) -> Script {
        Script {
            behaviour,
            robots: None,
            robots_asked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            served: Mutex::new(VecDeque::new()),
            rng: Mutex::new(SplitMix64(RANDOM_503_SEED.wrapping_add(host as u64))),
            changed: Mutex::new(HashSet::new()),
        }
    }

    pub fn with_robots(self, robots: Option<RobotsFile>) -> Script {
        Script { robots, ..self }
    }

    /// From now on `path` (its query ignored) serves another image of the same format and
    /// size, with another `ETag` and a later `Last-Modified` (see `Origin::change_image`).
    pub fn change_image(&self, path: &str) {
        self.changed.lock().expect("changed paths lock").insert(images::strip_query(path).to_owned());
    }

    /// The reply to `head`, arriving at `now`, on the host reachable at `base_url`. May encode an
    /// image, so `server` calls it off the event loop.
    pub fn reply(&self, head: &RequestHead, now: Instant, base_url: &str) -> Reply {
        // robots.txt is answered apart from the host's behaviour (which does not count it): 404
        // unless the host was given one.
        if head.target == "/robots.txt" {
            let asked = self.robots_asked.fetch_add(1, Ordering::SeqCst) + 1;
            let Some(robots) = &self.robots else { return Reply::text(404, "no robots.txt here\n") };
            return match robots {
                RobotsFile::Text(text) => Reply::text(200, text),
                RobotsFile::Status(status) => Reply::text(*status, "robots.txt unavailable\n"),
                RobotsFile::FailThenText { failures, status, .. } if asked <= u64::from(*failures) => {
                    Reply::text(*status, "robots.txt unavailable\n")
                }
                RobotsFile::FailThenText { text, .. } => Reply::text(200, text),
            };
        }
        let n = self.received.fetch_add(1, Ordering::SeqCst) + 1;
        if head.method != "GET" && head.method != "HEAD" {
            let mut reply = Reply::text(405, "only GET and HEAD are served\n");
            reply.headers.push(("Allow", "GET, HEAD".to_owned()));
            return reply;
        }
        let path = head.target.as_str();
        match &self.behaviour {
            Behaviour::Ok => self.image(path, head),
            Behaviour::RateLimited { per_second, retry_after } => {
                if self.admit(*per_second, now) {
                    return self.image(path, head);
                }
                let mut reply = Reply::text(429, "too many requests\n");
                if let Some(form) = retry_after {
                    reply.headers.push(("Retry-After", form.header_value(SystemTime::now())));
                }
                reply
            }
            Behaviour::Flaky503 { every } if *every > 0 && n % u64::from(*every) == 0 => {
                Reply::text(503, "temporarily unavailable\n")
            }
            Behaviour::Flaky503 { .. } => self.image(path, head),
            Behaviour::Random503 { percent } => {
                let draw = self.rng.lock().expect("random 503 lock").next_u64() % 100;
                if draw < u64::from(*percent) {
                    Reply::text(503, "temporarily unavailable\n")
                } else {
                    self.image(path, head)
                }
            }
            Behaviour::Slow { delay } => Reply { head_delay: *delay, ..self.image(path, head) },
            Behaviour::StallMidBody { after_bytes } => {
                let reply = self.image(path, head);
                let bytes = (*after_bytes as u64).min(reply.body.len().saturating_sub(1));
                Reply { pacing: Pacing::StallAfter { bytes }, ..reply }
            }
            Behaviour::Trickle { bytes_per_sec } => {
                Reply { pacing: Pacing::Trickle { bytes_per_sec: (*bytes_per_sec).max(1) }, ..self.image(path, head) }
            }
            Behaviour::Redirect { hops } => self.redirect(path, *hops, base_url, head),
            Behaviour::RedirectTo { to } => {
                let mut reply = Reply::text(302, "moved\n");
                reply.headers.push(("Location", format!("{to}{path}")));
                reply
            }
            Behaviour::NotFound => Reply::text(404, "not found\n"),
            Behaviour::Forbidden => Reply::text(403, "forbidden\n"),
            Behaviour::Corrupt => {
                let data = Arc::new(corrupt_jpeg(path));
                Reply::new(200, "image/jpeg", Body::Shared { len: data.len(), data })
            }
            Behaviour::Truncated => match images::served_bytes(path) {
                Some(data) => {
                    let ct = images::spec_for_path(path).expect("served implies spec").content_type();
                    Reply::new(200, ct, Body::Shared { len: data.len() / 2, data })
                }
                None => not_an_image(path),
            },
            Behaviour::Html => {
                let page = format!("<!DOCTYPE html>\n<html><head><title>Specimen viewer</title></head><body><h1>Specimen</h1><p>Requested {}</p><img src=\"viewer.js\"></body></html>\n", escape(path));
                let data = Arc::new(page.into_bytes());
                Reply::new(200, "text/html; charset=utf-8", Body::Shared { len: data.len(), data })
            }
            Behaviour::Huge { bytes } => Reply::new(200, "image/jpeg", Body::Generated { len: *bytes }),
            Behaviour::Tagged { tag } => {
                let mut reply = self.image(path, head);
                reply.headers.push(("X-Robots-Tag", tag.clone()));
                reply
            }
            Behaviour::LargeBmp { side, bytes_per_sec } => {
                let reply = Reply::new(200, "image/bmp", Body::Bmp { side: (*side / 4 * 4).max(4) });
                match *bytes_per_sec {
                    0 => reply,
                    rate => Reply { pacing: Pacing::Trickle { bytes_per_sec: rate }, ..reply },
                }
            }
            Behaviour::Bomb => {
                let data = Arc::new(bomb_png());
                Reply::new(200, "image/png", Body::Shared { len: data.len(), data })
            }
            Behaviour::Dead => Reply::text(500, "a dead host is never bound\n"),
        }
    }

    /// Sliding-window limiter: serve if fewer than `cap` requests were served in the window.
    fn admit(&self, per_second: f64, now: Instant) -> bool {
        let (window, cap) = if per_second >= 1.0 {
            (Duration::from_secs(1), per_second.floor() as usize)
        } else {
            (Duration::from_secs_f64(1.0 / per_second.max(1e-6)), 1)
        };
        let mut served = self.served.lock().expect("rate window lock");
        while served.front().is_some_and(|t| now.duration_since(*t) >= window) {
            served.pop_front();
        }
        let admitted = served.len() < cap;
        if admitted {
            served.push_back(now);
        }
        admitted
    }
}

/// The `Last-Modified` of every image: they are generated, so one fixed date.
pub const IMAGE_LAST_MODIFIED: &str = "Tue, 01 Dec 2026 00:00:00 GMT";

/// The `Last-Modified` of an image a test changed (`Origin::change_image`): later than
/// [`IMAGE_LAST_MODIFIED`].
pub const IMAGE_CHANGED_LAST_MODIFIED: &str = "Fri, 01 Jan 2027 00:00:00 GMT";

impl Script {
    /// The image at `path` as it is now (changed or not), or `304 Not Modified` when `head`'s
    /// conditions say the client holds it already (see [`not_modified`]).
    fn image(&self, path: &str, head: &RequestHead) -> Reply {
        let changed = self.changed.lock().expect("changed paths lock").contains(images::strip_query(path));
        let (bytes, last_modified) = if changed {
            (images::changed_bytes(path), IMAGE_CHANGED_LAST_MODIFIED)
        } else {
            (images::served_bytes(path), IMAGE_LAST_MODIFIED)
        };
        match (images::spec_for_path(path), bytes) {
            (Some(spec), Some(data)) => {
                let etag = image_etag(&data);
                let validators = vec![("ETag", etag.clone()), ("Last-Modified", last_modified.to_owned())];
                if not_modified(head, &etag, last_modified) {
                    let empty = Arc::new(Vec::new());
                    let mut reply = Reply::new(304, spec.content_type(), Body::Shared { len: 0, data: empty });
                    reply.headers = validators;
                    return reply;
                }
                let mut reply = Reply::new(200, spec.content_type(), Body::Shared { len: data.len(), data });
                reply.headers.extend(validators);
                reply
            }
            _ => not_an_image(path),
        }
    }

    /// `/p` → 302 to `/hop/1/p`; `/hop/k/p` → 302 to `/hop/k+1/p` while k < hops; then the image.
    fn redirect(&self, path: &str, hops: u32, base_url: &str, head: &RequestHead) -> Reply {
        let (hop, original) = match path.strip_prefix(REDIRECT_PREFIX).and_then(|rest| rest.split_once('/')) {
            Some((k, rest)) if k.parse::<u32>().is_ok() => (k.parse::<u32>().unwrap_or(0), format!("/{rest}")),
            _ => (0, path.to_owned()),
        };
        if hop >= hops {
            return self.image(&original, head);
        }
        let mut reply = Reply::text(302, "found elsewhere\n");
        reply.headers.push(("Location", format!("{base_url}{REDIRECT_PREFIX}{}{original}", hop + 1)));
        reply
    }
}

/// Whether a GET with `head`'s conditions gets `304 Not Modified` for a resource with `etag`
/// and `last_modified`, as RFC 9110 §13.1.2 and §13.1.3 say: `If-None-Match` (a list of entity
/// tags, or `*`) matches by weak comparison (a `W/` prefix ignored); only without it is
/// `If-Modified-Since` looked at, and it matches when the date is not earlier than
/// `last_modified` (a date that cannot be read is ignored).
pub fn not_modified(head: &RequestHead, etag: &str, last_modified: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if let Some(list) = head.header("if-none-match") {
        let ours = opaque(etag);
        return list.split(',').map(str::trim).any(|tag| tag == "*" || opaque(tag) == ours);
    }
    match (head.header("if-modified-since").and_then(http_date), http_date(last_modified)) {
        (Some(since), Some(modified)) => since >= modified,
        _ => false,
    }
}

/// An IMF-fixdate (`Tue, 01 Dec 2026 00:00:00 GMT`) as (year, month, day, h, m, s), which
/// orders as the dates do; `None` for anything else.
fn http_date(text: &str) -> Option<(u32, u32, u32, u32, u32, u32)> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = text.trim().split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = time.split(':').map(|n| n.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    Some((year.parse().ok()?, month, day.parse().ok()?, h, m, s))
}

/// The `ETag` of an image: a strong validator of its bytes (FNV-1a, quoted as HTTP wants).
pub fn image_etag(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}\"")
}

fn not_an_image(path: &str) -> Reply {
    Reply::text(404, &format!("no image at {path}: see origin::images for the path rule\n"))
}

/// `FF D8 FF E0`, then bytes with no `FF` (so no marker a decoder could resync on).
fn corrupt_jpeg(path: &str) -> Vec<u8> {
    let mut rng = SplitMix64(images::seed_for(path) ^ CORRUPT_SALT);
    let mut body = vec![0xFF, 0xD8, 0xFF, 0xE0];
    body.extend((4..CORRUPT_BYTES).map(|_| (rng.next_u64() % 255) as u8));
    body
}

/// The block a `Huge` body repeats: deterministic and not all zeros, so compression on the way
/// (there is none, but a proxy might) cannot shrink it.
pub fn filler() -> &'static [u8] {
    static FILLER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILLER.get_or_init(|| {
        let mut rng = SplitMix64(0x00DD_F111);
        let mut block: Vec<u8> = (0..FILLER_BLOCK).map(|_| rng.next_u64() as u8).collect();
        block[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        block
    })
}

/// Bytes of a BMP file header and BITMAPINFOHEADER.
const BMP_HEADER: u64 = 54;

/// The header of a `side` × `side` 24-bit bottom-up BMP with no row padding.
fn bmp_header(side: u32) -> &'static [u8] {
    static HEADERS: std::sync::Mutex<Vec<(u32, &'static [u8])>> = std::sync::Mutex::new(Vec::new());
    let mut known = HEADERS.lock().expect("header cache lock");
    if let Some((_, h)) = known.iter().find(|(s, _)| *s == side) {
        return h;
    }
    let pixels = 3 * side * side;
    let mut h = Vec::with_capacity(BMP_HEADER as usize);
    h.extend_from_slice(b"BM");
    h.extend_from_slice(&(BMP_HEADER as u32 + pixels).to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&(BMP_HEADER as u32).to_le_bytes());
    h.extend_from_slice(&40u32.to_le_bytes());
    h.extend_from_slice(&(side as i32).to_le_bytes());
    h.extend_from_slice(&(side as i32).to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&24u16.to_le_bytes());
    h.extend_from_slice(&[0; 4]); // no compression
    h.extend_from_slice(&pixels.to_le_bytes());
    h.extend_from_slice(&[0; 16]); // resolution and palette: unused
    let h: &'static [u8] = Box::leak(h.into_boxed_slice());
    known.push((side, h));
    h
}

/// PNG signature, an IHDR claiming `BOMB_SIDE`² RGB pixels, a cut-short IDAT, and IEND.
fn bomb_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&BOMB_SIDE.to_be_bytes());
    ihdr.extend_from_slice(&BOMB_SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, adaptive, no interlace
    push_chunk(&mut png, b"IHDR", &ihdr);
    push_chunk(&mut png, b"IDAT", &[0x78, 0x9C, 0x62, 0x60, 0x18]); // zlib head + a cut deflate block
    push_chunk(&mut png, b"IEND", &[]);
    png
}

fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(kind.iter().chain(data));
    png.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (IEEE, as PNG uses), bit by bit: it runs on a few dozen bytes.
fn crc32<'a>(bytes: impl Iterator<Item = &'a u8>) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: "/img/a.jpg".into(),
            http10: false,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn conditions_are_read_as_rfc_9110_says() {
        let (etag, lm) = ("\"abc\"", IMAGE_LAST_MODIFIED);
        assert!(!not_modified(&head(&[]), etag, lm), "no condition: the image");
        assert!(not_modified(&head(&[("If-None-Match", "\"abc\"")]), etag, lm));
        assert!(not_modified(&head(&[("If-None-Match", "\"x\", W/\"abc\"")]), etag, lm), "a list, weak");
        assert!(not_modified(&head(&[("If-None-Match", "*")]), etag, lm));
        assert!(!not_modified(&head(&[("If-None-Match", "\"x\"")]), etag, lm));
        // If-None-Match wins over If-Modified-Since.
        let both = [("If-None-Match", "\"x\""), ("If-Modified-Since", IMAGE_CHANGED_LAST_MODIFIED)];
        assert!(!not_modified(&head(&both), etag, lm));
        assert!(not_modified(&head(&[("If-Modified-Since", lm)]), etag, lm), "the same date");
        assert!(not_modified(&head(&[("If-Modified-Since", IMAGE_CHANGED_LAST_MODIFIED)]), etag, lm));
        assert!(!not_modified(&head(&[("If-Modified-Since", "Mon, 30 Nov 2026 23:59:59 GMT")]), etag, lm));
        assert!(!not_modified(&head(&[("If-Modified-Since", "yesterday")]), etag, lm), "unreadable: ignored");
        assert!(!not_modified(&head(&[("If-Modified-Since", lm)]), etag, IMAGE_CHANGED_LAST_MODIFIED));
    }

    #[test]
    fn crc_matches_the_png_iend_constant() {
        assert_eq!(crc32(b"IEND".iter()), 0xAE42_6082);
    }
}
