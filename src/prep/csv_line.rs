//! CSV read one line at a time, so one bad line can never swallow the lines after it.
//!
//! A CSV reader that lets a quoted field run across line ends reads every line after an
//! unclosed quote as part of that field: one stray `"` in a title drops the rest of the file
//! without a count. URL lists have one row per line, so here a line is a row: fields are split
//! at `,`, a field that starts with `"` runs to the next `"` that is not doubled (`""` is one
//! quote), and a quoted field still open at the end of its line, or a field over
//! [`FIELD_CAP`] bytes, makes the line malformed (counted, with its line number). Quotes inside
//! an unquoted field are data, as in the `csv` crate.

use std::io::BufRead;

/// Longest field accepted: far above any URL or title, far below what one runaway field of a
/// broken file would hold in memory.
pub const FIELD_CAP: usize = 64 * 1024;

/// Lines of a CSV file, each split into fields.
pub struct CsvLines<R> {
    reader: R,
    line: Vec<u8>,
    /// Number of the line last read (1 is the header).
    pub line_no: u64,
    /// Bytes read so far.
    pub bytes: u64,
}

impl<R: BufRead> CsvLines<R> {
    pub fn new(reader: R) -> CsvLines<R> {
        CsvLines { reader, line: Vec::new(), line_no: 0, bytes: 0 }
    }

    /// Reads the next line into `record`: `Ok(None)` at the end of the file, `Ok(Some(Err(why)))`
    /// for a malformed line (`record` is then empty). Blank lines are skipped (still numbered).
    pub fn next(&mut self, record: &mut csv::ByteRecord) -> std::io::Result<Option<Result<(), String>>> {
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
            self.line_no += 1;
            let text = trim_line_end(&self.line);
            if text.is_empty() {
                continue;
            }
            let split = split(text, record);
            if split.is_err() {
                record.clear();
            }
            return Ok(Some(split));
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits one line (without its line end) into `record`'s fields.
pub fn split(line: &[u8], record: &mut csv::ByteRecord) -> Result<(), String> {
    record.clear();
    let mut field = Vec::new();
    let mut i = 0;
    loop {
        field.clear();
        if line.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let Some(k) = line[i..].iter().position(|b| *b == b'"') else {
                    return Err("a quoted field is still open at the end of the line".into());
                };
                field.extend_from_slice(&line[i..i + k]);
                i += k + 1;
                if line.get(i) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    break;
                }
            }
        }
        // Up to the next comma: an unquoted field, or what follows a closing quote (kept as data).
        let end = line[i..].iter().position(|b| *b == b',').map_or(line.len(), |k| i + k);
        field.extend_from_slice(&line[i..end]);
        if field.len() > FIELD_CAP {
            return Err(format!("a field is longer than {} KiB", FIELD_CAP / 1024));
        }
        record.push_field(&field);
        if end == line.len() {
            return Ok(());
        }
        i = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<String>, String> {
        let mut r = csv::ByteRecord::new();
        split(line.as_bytes(), &mut r)?;
        Ok(r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
    }

    #[test]
    fn quoted_fields_commas_doubled_quotes_and_empty_fields() {
        assert_eq!(fields("a,b").unwrap(), ["a", "b"]);
        assert_eq!(fields(r#""x, y","say ""hi""",z"#).unwrap(), ["x, y", r#"say "hi""#, "z"]);
        assert_eq!(fields("a,,").unwrap(), ["a", "", ""]);
        assert_eq!(fields(r#"a"b,c"#).unwrap(), [r#"a"b"#, "c"], "a quote inside an unquoted field is data");
        assert_eq!(fields(r#""q"tail,c"#).unwrap(), ["qtail", "c"]);
    }

    #[test]
    fn an_unclosed_quote_or_a_runaway_field_is_malformed_and_the_next_lines_are_read() {
        let text =
            "url,title\nhttp://a.org/1.jpg,\"an open quote\nhttp://a.org/2.jpg,two\n\nhttp://a.org/3.jpg,three\r\n";
        let mut lines = CsvLines::new(text.as_bytes());
        let mut r = csv::ByteRecord::new();
        let mut seen = Vec::new();
        while let Some(result) = lines.next(&mut r).unwrap() {
            seen.push((lines.line_no, result.is_ok(), r.get(0).map(|f| String::from_utf8_lossy(f).into_owned())));
        }
        assert_eq!(
            seen,
            [
                (1, true, Some("url".into())),
                (2, false, None),
                (3, true, Some("http://a.org/2.jpg".into())),
                (5, true, Some("http://a.org/3.jpg".into())),
            ]
        );
        assert_eq!(lines.bytes, text.len() as u64);
        let long = format!("a,{}", "x".repeat(FIELD_CAP + 1));
        assert!(fields(&long).unwrap_err().contains("64 KiB"));
    }
}
