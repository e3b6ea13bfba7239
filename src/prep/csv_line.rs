//! Text inputs read one line at a time, so one bad line can never swallow the lines after it,
//! and so the lines read are the lines `wc -l` counts.
//!
//! A CSV reader that lets a quoted field run across line ends reads every line after an
//! unclosed quote as part of that field: one stray `"` in a title drops the rest of the file
//! without a count. URL lists have one row per line, so here a line is a row: fields are split
//! at `,`, a field that starts with `"` runs to the next `"` that is not doubled (`""` is one
//! quote), and a quoted field still open at the end of its line, or a field over
//! [`FIELD_CAP`] bytes, makes the line malformed (counted, with its line number). Quotes inside
//! an unquoted field are data, as in the `csv` crate.
//!
//! GBIF's `multimedia.txt` has no quoting: a line is split at every tab ([`Dialect::Tsv`]). It
//! is not read with the `csv` crate, whose line numbers cannot be matched to the file's lines:
//! a record's `position().line()` is where the reader stood after the previous record, so it
//! names the first of any blank lines before the record, and with CRLF line ends the line
//! before it; blank lines are skipped without a trace; and a bare `\r` inside a field ends a
//! record there. Here a line ends at `\n` only (a `\r` before it is dropped), a last line
//! without a newline is a line too, and a line that is empty once its line end is removed is
//! blank: numbered, counted in [`TextLines::blank_lines`], never a row.

use std::io::BufRead;

/// Longest CSV field accepted: far above any URL or title, far below what one runaway field of a
/// broken file would hold in memory.
pub const FIELD_CAP: usize = 64 * 1024;

/// How a line is split into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Split at `,`, with `"` quoting within the line (see the module docs).
    Csv,
    /// Split at every tab; quotes are data. No field cap: GBIF's TSV never had one here.
    Tsv,
}

/// Lines of a text file, each split into fields.
pub struct TextLines<R> {
    reader: R,
    dialect: Dialect,
    line: Vec<u8>,
    /// Lines read so far, blank ones included: the number of the line last read (1 is the first).
    pub line_no: u64,
    /// Blank lines read so far (skipped, never a row).
    pub blank_lines: u64,
    /// Bytes read so far.
    pub bytes: u64,
}

impl<R: BufRead> TextLines<R> {
    pub fn new(reader: R, dialect: Dialect) -> TextLines<R> {
        TextLines { reader, dialect, line: Vec::new(), line_no: 0, blank_lines: 0, bytes: 0 }
    }

    /// Reads the next line into `record`: `Ok(None)` at the end of the file, `Ok(Some(Err(why)))`
    /// for a malformed line (`record` is then empty). Blank lines are skipped (numbered and counted).
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
                self.blank_lines += 1;
                continue;
            }
            let split = match self.dialect {
                Dialect::Csv => split(text, record),
                Dialect::Tsv => {
                    split_tabs(text, record);
                    Ok(())
                }
            };
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

/// Splits one TSV line (without its line end) into `record`'s fields, at every tab.
fn split_tabs(line: &[u8], record: &mut csv::ByteRecord) {
    record.clear();
    for field in line.split(|b| *b == b'\t') {
        record.push_field(field);
    }
}

/// Splits one CSV line (without its line end) into `record`'s fields.
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
        let mut lines = TextLines::new(text.as_bytes(), Dialect::Csv);
        let mut r = csv::ByteRecord::new();
        let mut seen = Vec::new();
        while let Some(result) = lines.next(&mut r).unwrap() {
            seen.push((lines.line_no, result.is_ok(), r.get(0).map(|f| String::from_utf8_lossy(f).into_owned())));
        }
        assert_eq!(lines.line_no, 5);
        assert_eq!(lines.blank_lines, 1);
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

    /// Each line as (its number, its fields), and the lines and blank lines counted.
    fn read_all(text: &str, dialect: Dialect) -> (Vec<(u64, Vec<String>)>, u64, u64) {
        let mut lines = TextLines::new(text.as_bytes(), dialect);
        let mut r = csv::ByteRecord::new();
        let mut seen = Vec::new();
        while let Some(result) = lines.next(&mut r).unwrap() {
            assert!(result.is_ok(), "{text:?}");
            seen.push((lines.line_no, r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()));
        }
        assert_eq!(lines.bytes, text.len() as u64);
        (seen, lines.line_no, lines.blank_lines)
    }

    /// `wc -l` of `text`, plus one for a last line without a newline.
    fn wc_l(text: &str) -> u64 {
        text.bytes().filter(|b| *b == b'\n').count() as u64 + u64::from(!text.is_empty() && !text.ends_with('\n'))
    }

    #[test]
    fn tsv_lines_are_numbered_and_counted_as_wc_l_counts_them_whatever_the_line_ends() {
        let row = |n: u64, a: &str, b: &str| (n, vec![a.to_string(), b.to_string()]);
        // (input, the rows with their line numbers, blank lines)
        let cases = [
            ("a\tb\n1\t2\n3\t4\n", vec![row(1, "a", "b"), row(2, "1", "2"), row(3, "3", "4")], 0),
            ("a\tb\n1\t2\n3\t4", vec![row(1, "a", "b"), row(2, "1", "2"), row(3, "3", "4")], 0),
            ("a\tb\n1\t2\n\n\n3\t4\n\n", vec![row(1, "a", "b"), row(2, "1", "2"), row(5, "3", "4")], 3),
            ("\na\tb\n1\t2\n", vec![row(2, "a", "b"), row(3, "1", "2")], 1),
            ("a\tb\r\n1\t2\r\n\r\n3\t4\r\n", vec![row(1, "a", "b"), row(2, "1", "2"), row(4, "3", "4")], 1),
            ("a\tb\r\n1\t2\r\n3\t4", vec![row(1, "a", "b"), row(2, "1", "2"), row(3, "3", "4")], 0),
            // A bare CR is data, not a line end (the csv crate splits this line in two).
            ("a\tb\n1\tx\ry\n", vec![row(1, "a", "b"), row(2, "1", "x\ry")], 0),
            // Quotes are data; a line of tabs is a row of empty fields, not a blank line.
            ("a\tb\n\"x\t\"y\n\t\n", vec![row(1, "a", "b"), row(2, "\"x", "\"y"), row(3, "", "")], 0),
        ];
        for (text, rows, blank) in cases {
            let (seen, line_no, blank_lines) = read_all(text, Dialect::Tsv);
            assert_eq!(seen, rows, "{text:?}");
            assert_eq!(blank_lines, blank, "{text:?}");
            assert_eq!(line_no, wc_l(text), "{text:?}");
            assert_eq!(line_no, seen.len() as u64 + blank_lines, "every line is a row or blank: {text:?}");
        }
    }

    #[test]
    fn csv_lines_are_counted_as_wc_l_counts_them_with_or_without_a_last_newline() {
        for text in ["url\nhttp://a.org/1.jpg\n\n", "url\r\n\r\nhttp://a.org/1.jpg", "\n\nurl\nhttp://a.org/1.jpg\n"] {
            let (seen, line_no, blank_lines) = read_all(text, Dialect::Csv);
            assert_eq!(seen.len(), 2, "{text:?}");
            assert_eq!(line_no, wc_l(text), "{text:?}");
            assert_eq!(line_no, seen.len() as u64 + blank_lines, "{text:?}");
        }
    }
}
