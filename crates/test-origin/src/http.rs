//! `origin::http`: the smallest HTTP/1.1 the test origin needs, written by hand.
//!
//! Owns reading one request head (up to CRLFCRLF, with a size cap), parsing method, target,
//! version and headers, writing a response head with `Content-Length`, and HTTP-dates. It does
//! not own what to answer (`respond`) nor connections (`server`). Not supported, on purpose:
//! chunked request bodies (answered 400) and `Expect: 100-continue`; the downloader only sends
//! bodiless `GET`s and `HEAD`s.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head accepted. Browsers send under 2 KiB and servers commonly cap at 8–16 KiB;
/// beyond this the origin answers 431 and closes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body the origin reads and discards; larger ones get 413 and a close.
pub const MAX_DISCARDED_BODY: u64 = 1 << 20;
/// Read size while looking for the end of a head.
const READ_CHUNK: usize = 4096;

/// One parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// Origin-form target: path and query, e.g. `/img/a.jpg?x=1`.
    pub target: String,
    /// `true` for HTTP/1.0, whose connections close unless asked to keep alive.
    pub http10: bool,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this response.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.http10 {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection cleanly between requests.
    Closed,
    /// The head exceeded [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The bytes were not an HTTP/1.x request head.
    Malformed(&'static str),
    Io(std::io::Error),
}

/// Reads one request head from `reader`. `buf` carries bytes read past the previous head
/// (pipelined requests) and keeps any read past this one.
pub async fn read_head<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> Result<RequestHead, ReadError> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_head(&buf[..end]);
            buf.drain(..end + 4);
            return head;
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(ReadError::TooLarge);
        }
        let mut chunk = [0u8; READ_CHUNK];
        let n = reader.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Malformed("connection closed mid-head")
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(raw: &[u8]) -> Result<RequestHead, ReadError> {
    let text = std::str::from_utf8(raw).map_err(|_| ReadError::Malformed("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed("request line is not `METHOD target HTTP/1.x`"));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ReadError::Malformed("only HTTP/1.0 and HTTP/1.1 are spoken here")),
    };
    if method.is_empty() || (!target.starts_with('/') && !target.starts_with("http://")) {
        return Err(ReadError::Malformed("bad method or target"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed("header line without `:`"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(RequestHead { method: method.to_owned(), target: origin_form(target).to_owned(), http10, headers })
}

/// `http://host:port/p?q` (absolute form, sent to proxies) becomes `/p?q`.
fn origin_form(target: &str) -> &str {
    match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    }
}

/// Reads and drops a request body, or returns the status to refuse it with.
pub async fn discard_body<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut Vec<u8>, head: &RequestHead) -> Option<u16> {
    if head.header("transfer-encoding").is_some() {
        return Some(400);
    }
    let len: u64 = match head.header("content-length").map(|v| v.parse()) {
        None => return None,
        Some(Ok(len)) => len,
        Some(Err(_)) => return Some(400),
    };
    if len > MAX_DISCARDED_BODY {
        return Some(413);
    }
    let mut left = len as usize;
    let from_buf = left.min(buf.len());
    buf.drain(..from_buf);
    left -= from_buf;
    let mut sink = vec![0u8; left];
    match stream.read_exact(&mut sink).await {
        Ok(_) => None,
        Err(_) => Some(400),
    }
}

/// The response head bytes: status line, `headers`, `Content-Length` and `Connection`.
pub fn response_head(status: u16, headers: &[(&str, String)], content_length: u64, keep_alive: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    head.push_str(&format!("Content-Length: {content_length}\r\nConnection: {connection}\r\n\r\n"));
    head.into_bytes()
}

/// The reason phrase for the statuses the origin sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `t` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_date_matches_the_rfc_example() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn parses_head_and_absolute_targets() {
        let head =
            parse_head(b"GET http://127.0.0.2:80/img/a.jpg?x=1 HTTP/1.1\r\nUser-Agent: dd/1\r\nConnection: close")
                .unwrap();
        assert_eq!(head.target, "/img/a.jpg?x=1");
        assert_eq!(head.header("user-agent"), Some("dd/1"));
        assert!(!head.keep_alive());
        assert!(matches!(parse_head(b"GET /\r\n"), Err(ReadError::Malformed(_))));
    }
}
