//! RFC 4180 records read from a buffer held whole, with their physical line numbers.
//!
//! Fields are separated by commas and records by LF or CRLF. A field that starts with a
//! double quote is quoted: it ends at the next lone quote, `""` inside it is one quote, and
//! it may hold commas, CR and LF (each LF counts as a line). A UTF-8 byte order mark before
//! the first record is skipped. A quote inside an unquoted field is kept as text; text
//! after a closing quote (`"a"b`) and a quoted field left open at the end of the buffer
//! make the record [`Malformed`]. An empty line is a [`Record::blank`] record.
//!
//! A line without a quote (nearly every line of an export) is split in one pass, eight
//! bytes at a time, and its fields are slices of the buffer; only a quoted field holding
//! `""` is copied.
//!
//! The buffer may be one block of a longer file: a record that reaches the end of the
//! buffer without a line break is not [`Record::terminated`], and the reader of blocks
//! reads it again from its start once the next block is there ([`Scanner::resume`]).

use memchr::{memchr, memchr_iter, memchr2};
use std::borrow::Cow;

/// A field's value: a slice of the buffer, or a copy when it held a doubled quote.
pub type Field<'a> = Cow<'a, [u8]>;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The most commas a line read in one pass may have; a line with more is read by the
/// reader of quoted records, which reads any record.
const FAST_COMMAS: usize = 63;

/// Why a record is not well-formed RFC 4180.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A quoted field is still open at the end of the buffer; the record takes the rest.
    UnterminatedQuote,
    /// Text follows the closing quote of this field (0-based) before the next separator.
    TextAfterQuote { field: usize },
}

/// Where a record is and what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The offset of its first byte in the buffer.
    pub start: usize,
    /// The physical line it starts on, 1-based (a BOM does not count).
    pub line: u64,
    /// How many fields it has (0 for a blank line).
    pub fields: usize,
    /// An empty line: no fields at all.
    pub blank: bool,
    /// It ended with a line break (not at the end of the buffer).
    pub terminated: bool,
    pub malformed: Option<Malformed>,
}

/// Reads records one after the other.
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> Scanner<'a> {
    /// From the start of a file's content, skipping a byte order mark.
    pub fn new(buf: &'a [u8]) -> Self {
        let pos = if buf.starts_with(BOM) { BOM.len() } else { 0 };
        Scanner { buf, pos, line: 1 }
    }

    /// From offset `pos`, which is on line `line`: the start of a record read before, or
    /// after a byte order mark.
    pub fn resume(buf: &'a [u8], pos: usize, line: u64) -> Self {
        Scanner { buf, pos, line }
    }

    /// Where the next record starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The line the next record starts on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next record, handing each field to `sink` with its 0-based column;
    /// `None` at the end of the buffer.
    #[inline]
    pub fn next_with(&mut self, mut sink: impl FnMut(usize, Field<'a>)) -> Option<Record> {
        let buf = self.buf;
        let start = self.pos;
        if start >= buf.len() {
            return None;
        }
        let line = self.line;
        // One pass over the line, eight bytes at a time: where its commas are, up to its line
        // break. A quote, or more commas than are kept here, hands the record to the reader
        // of quoted records (which reads any record).
        let mut commas = [0usize; FAST_COMMAS];
        let mut count = 0;
        let mut at = start;
        let newline = loop {
            if at + 8 > buf.len() {
                let mut found = None;
                for (offset, &byte) in buf[at..].iter().enumerate() {
                    match byte {
                        b'\n' => {
                            found = Some(at + offset);
                            break;
                        }
                        b'"' => return Some(self.quoted(start, line, sink)),
                        b',' if count == FAST_COMMAS => {
                            return Some(self.quoted(start, line, sink));
                        }
                        b',' => {
                            commas[count] = at + offset;
                            count += 1;
                        }
                        _ => {}
                    }
                }
                break found;
            }
            let word = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
            let newlines = bytes_equal(word, b'\n');
            // The bytes before the first line break of the word (all, without one).
            let before = if newlines == 0 {
                u64::MAX
            } else {
                (newlines & newlines.wrapping_neg()) - 1
            };
            if bytes_equal(word, b'"') & before != 0 {
                return Some(self.quoted(start, line, sink));
            }
            let mut found = bytes_equal(word, b',') & before;
            while found != 0 {
                if count == FAST_COMMAS {
                    return Some(self.quoted(start, line, sink));
                }
                commas[count] = at + found.trailing_zeros() as usize / 8;
                count += 1;
                found &= found - 1;
            }
            if newlines != 0 {
                break Some(at + newlines.trailing_zeros() as usize / 8);
            }
            at += 8;
        };
        let mut end = newline.unwrap_or(buf.len());
        if end > start && buf[end - 1] == b'\r' {
            end -= 1;
        }
        self.pos = newline.map_or(buf.len(), |at| at + 1);
        self.line += 1;
        let terminated = newline.is_some();
        if end == start {
            return Some(Record {
                start,
                line,
                fields: 0,
                blank: true,
                terminated,
                malformed: None,
            });
        }
        let mut field_start = start;
        for (column, &comma) in commas[..count].iter().enumerate() {
            sink(column, Cow::Borrowed(&buf[field_start..comma]));
            field_start = comma + 1;
        }
        sink(count, Cow::Borrowed(&buf[field_start..end]));
        Some(Record {
            start,
            line,
            fields: count + 1,
            blank: false,
            terminated,
            malformed: None,
        })
    }

    /// Reads every field of the next record into a vector (for a header, or a test).
    pub fn next_fields(&mut self) -> Option<(Record, Vec<Field<'a>>)> {
        let mut fields = Vec::new();
        let record = self.next_with(|_, field| fields.push(field))?;
        Some((record, fields))
    }

    /// The record at `start` has a quote somewhere on its first line: field by field.
    #[cold]
    fn quoted(
        &mut self,
        start: usize,
        line: u64,
        mut sink: impl FnMut(usize, Field<'a>),
    ) -> Record {
        let buf = self.buf;
        let len = buf.len();
        let mut at = start;
        let mut column = 0;
        let mut malformed = None;
        let mut terminated = false;
        loop {
            if at < len && buf[at] == b'"' {
                let (value, after) = match quoted_field(buf, at + 1) {
                    Some(found) => found,
                    None => {
                        malformed = Some(Malformed::UnterminatedQuote);
                        (Cow::Borrowed(&buf[at + 1..]), len)
                    }
                };
                at = after;
                let separator_follows = at >= len
                    || buf[at] == b','
                    || buf[at] == b'\n'
                    || (buf[at] == b'\r' && (at + 1 == len || buf[at + 1] == b'\n'));
                if !separator_follows {
                    malformed.get_or_insert(Malformed::TextAfterQuote { field: column });
                    at = memchr2(b',', b'\n', &buf[at..]).map_or(len, |found| at + found);
                }
                sink(column, value);
            } else {
                let stop = memchr2(b',', b'\n', &buf[at..]).map_or(len, |found| at + found);
                let mut end = stop;
                if (stop == len || buf[stop] == b'\n') && end > at && buf[end - 1] == b'\r' {
                    end -= 1;
                }
                sink(column, Cow::Borrowed(&buf[at..end]));
                at = stop;
            }
            column += 1;
            if at < len && buf[at] == b',' {
                at += 1;
                continue;
            }
            if at < len && buf[at] == b'\r' {
                at += 1;
            }
            if at < len && buf[at] == b'\n' {
                at += 1;
                terminated = true;
            }
            break;
        }
        self.line = line + memchr_iter(b'\n', &buf[start..at]).count() as u64;
        self.pos = at;
        Record {
            start,
            line,
            fields: column,
            blank: false,
            terminated,
            malformed,
        }
    }
}

/// The high bit of each byte of `word` that equals `byte`, and no other bit. (Exact: the
/// sum of the low seven bits cannot carry into the next byte.)
#[inline]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    !(((x & LOW) + LOW) | x) & !LOW
}

/// The value of a quoted field whose content starts at `from` (after its opening quote),
/// and the offset after its closing quote; `None` when it is never closed.
fn quoted_field(buf: &[u8], from: usize) -> Option<(Field<'_>, usize)> {
    let mut copy: Option<Vec<u8>> = None;
    let mut segment = from;
    let mut at = from;
    loop {
        let quote = at + memchr(b'"', &buf[at..])?;
        if buf.get(quote + 1) == Some(&b'"') {
            // `""`: one quote of the value; the value is copied from here on.
            copy.get_or_insert_with(Vec::new)
                .extend_from_slice(&buf[segment..=quote]);
            at = quote + 2;
            segment = at;
            continue;
        }
        let value = match copy {
            Some(mut value) => {
                value.extend_from_slice(&buf[segment..quote]);
                Cow::Owned(value)
            }
            None => Cow::Borrowed(&buf[segment..quote]),
        };
        return Some((value, quote + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every record of `text`: its line, its fields as strings, and whether it is malformed.
    fn records(text: &str) -> Vec<(u64, Vec<String>, Option<Malformed>)> {
        let mut scanner = Scanner::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some((record, fields)) = scanner.next_fields() {
            let fields = fields
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            out.push((record.line, fields, record.malformed));
        }
        out
    }

    fn check(text: &str, expected: &[(u64, &[&str])]) {
        let found = records(text);
        let expected: Vec<(u64, Vec<String>, Option<Malformed>)> = expected
            .iter()
            .map(|(line, fields)| (*line, fields.iter().map(|f| f.to_string()).collect(), None))
            .collect();
        assert_eq!(found, expected, "{text:?}");
    }

    #[test]
    fn plain_lines_split_on_commas_with_lf_or_crlf() {
        check(
            "a,b,c\n1,2,3\n",
            &[(1, &["a", "b", "c"]), (2, &["1", "2", "3"])],
        );
        check(
            "a,b,c\r\n1,2,3\r\n",
            &[(1, &["a", "b", "c"]), (2, &["1", "2", "3"])],
        );
        check("a,b\n1,2", &[(1, &["a", "b"]), (2, &["1", "2"])]);
        check("a,b\r\n1,2\r", &[(1, &["a", "b"]), (2, &["1", "2"])]);
        check("a,,\n,,", &[(1, &["a", "", ""]), (2, &["", "", ""])]);
        // A CR inside a line is text.
        check("a\rb,c\n", &[(1, &["a\rb", "c"])]);
    }

    #[test]
    fn bytes_equal_flags_exactly_the_bytes_that_are_equal() {
        for word in [
            0u64,
            u64::MAX,
            0x2c2c_2c2c_2c2c_2c2c,
            0x012c_2d2b_ac2c_00ff,
            0x2c01_0101_2c00_2c2c,
        ] {
            let expected = (0..8).fold(0, |mask, i| {
                if (word >> (i * 8)) as u8 == b',' {
                    mask | 0x80 << (i * 8)
                } else {
                    mask
                }
            });
            assert_eq!(bytes_equal(word, b','), expected, "{word:#x}");
        }
        // Lines of every length split the same way around the eight-byte steps.
        for len in 1..40 {
            let line: String = (0..len)
                .map(|i| if i % 3 == 1 { ',' } else { 'x' })
                .collect();
            let (_, fields) = Scanner::new(line.as_bytes()).next_fields().unwrap();
            let fields: Vec<&[u8]> = fields.iter().map(|f| &f[..]).collect();
            let expected: Vec<&[u8]> = line.as_bytes().split(|&b| b == b',').collect();
            assert_eq!(fields, expected, "{line:?}");
        }
        // More commas than one pass keeps: the general reader reads the line.
        let line = (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
            + "\nx,y\n";
        let mut scanner = Scanner::new(line.as_bytes());
        let (record, fields) = scanner.next_fields().unwrap();
        assert_eq!(
            (record.fields, record.terminated, &fields[199][..]),
            (200, true, &b"199"[..])
        );
        assert_eq!(scanner.next_fields().unwrap().0.line, 2);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_blank_lines_are_marked() {
        check("\u{feff}a,b\n1,2\n", &[(1, &["a", "b"]), (2, &["1", "2"])]);
        let mut scanner = Scanner::new(b"a\n\r\n\nb\n");
        let blanks: Vec<(u64, bool)> = std::iter::from_fn(|| scanner.next_with(|_, _| {}))
            .map(|r| (r.line, r.blank))
            .collect();
        assert_eq!(blanks, [(1, false), (2, true), (3, true), (4, false)]);
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_newlines_and_count_their_lines() {
        check(
            "id,note\n\"E1\",\"a, b\"\n\"E2\",\"say \"\"hi\"\"\"\n\"E3\",\"two\nlines\"\nE4,x\n",
            &[
                (1, &["id", "note"]),
                (2, &["E1", "a, b"]),
                (3, &["E2", "say \"hi\""]),
                (4, &["E3", "two\nlines"]),
                (6, &["E4", "x"]),
            ],
        );
        check(
            "\"a\r\nb\",c\r\n\"\",\"\"\"\"\r\nx,\"y\"",
            &[(1, &["a\r\nb", "c"]), (3, &["", "\""]), (4, &["x", "y"])],
        );
        // A quote inside an unquoted field is text.
        check("ab\"c,d\n", &[(1, &["ab\"c", "d"])]);
    }

    #[test]
    fn broken_quoting_is_reported_with_the_record_it_spoils() {
        let found = records("a,b\n\"x\"y,z\nc,d\n");
        assert_eq!(found[1].0, 2);
        assert_eq!(found[1].2, Some(Malformed::TextAfterQuote { field: 0 }));
        assert_eq!(found[2], (3, vec!["c".into(), "d".into()], None));
        let found = records("a,b\nc,\"open\nd,e\n");
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].0, 2);
        assert_eq!(found[1].2, Some(Malformed::UnterminatedQuote));
    }

    #[test]
    fn a_record_is_read_again_from_its_start() {
        let text = b"h\n\"q,1\",2\nplain,3\n";
        let mut scanner = Scanner::new(text);
        let mut starts = Vec::new();
        while let Some(record) = scanner.next_with(|_, _| {}) {
            starts.push(record.start);
        }
        let (record, fields) = Scanner::resume(text, starts[1], 2).next_fields().unwrap();
        assert_eq!(fields, [&b"q,1"[..], b"2"]);
        assert_eq!((record.line, record.terminated), (2, true));
        let (record, fields) = Scanner::resume(text, starts[2], 3).next_fields().unwrap();
        assert_eq!(fields, [&b"plain"[..], b"3"]);
        assert_eq!((record.line, record.terminated), (3, true));
    }

    #[test]
    fn a_record_cut_by_the_end_of_the_buffer_is_not_terminated() {
        for (text, terminated) in [
            ("a,b\n", true),
            ("a,b", false),
            ("a,b\r", false),
            ("\"a\nb\",c\n", true),
            ("\"a\nb\",c", false),
            ("\"a\nb", false),
            ("\n", true),
        ] {
            let record = Scanner::new(text.as_bytes()).next_with(|_, _| {}).unwrap();
            assert_eq!(record.terminated, terminated, "{text:?}");
        }
    }

    /// A field as a writer of RFC 4180 would write it, and its value.
    fn field() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            "[a-z0-9 .\"-]{0,6}"
                .prop_filter("not quoted", |s| !s.starts_with('"'))
                .prop_map(|s| (s.clone(), s)),
            "[a-z,\"\n\r .-]{0,8}".prop_map(|s| (format!("\"{}\"", s.replace('"', "\"\"")), s)),
        ]
    }

    proptest! {
        /// The scanner reads what the csv crate reads from well-formed documents (the same
        /// fields), and each record's line is one more than the line breaks before it. (The
        /// csv crate's own line numbers lag after a CRLF: it counts the LF with the next record.)
        #[test]
        fn agrees_with_the_csv_crate(
            rows in prop::collection::vec(prop::collection::vec(field(), 1..5), 1..8),
            crlf in any::<bool>(),
            final_newline in any::<bool>(),
            bom in any::<bool>(),
        ) {
            // A record of one empty unquoted field is a blank line, which csv skips.
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|row| !(row.len() == 1 && row[0].0.is_empty()))
                .collect();
            let terminator = if crlf { "\r\n" } else { "\n" };
            let mut text: String = rows
                .iter()
                .map(|row| row.iter().map(|(raw, _)| raw.as_str()).collect::<Vec<_>>().join(","))
                .collect::<Vec<_>>()
                .join(terminator);
            if final_newline && !text.is_empty() {
                text.push_str(terminator);
            }
            if bom {
                text.insert(0, '\u{feff}');
            }
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            let theirs: Vec<Vec<String>> = reader
                .byte_records()
                .map(|r| {
                    let r = r.unwrap();
                    r.iter().map(|f| String::from_utf8(f.to_vec()).unwrap()).collect()
                })
                .collect();
            let mut scanner = Scanner::new(text.as_bytes());
            let mut ours = Vec::new();
            while let Some((record, fields)) = scanner.next_fields() {
                prop_assert_eq!(record.malformed, None);
                let breaks_before = text.as_bytes()[..record.start].iter().filter(|&&b| b == b'\n');
                prop_assert_eq!(record.line, 1 + breaks_before.count() as u64);
                let fields: Vec<String> =
                    fields.iter().map(|f| String::from_utf8(f.to_vec()).unwrap()).collect();
                ours.push(fields);
            }
            prop_assert_eq!(&ours, &theirs, "{:?}", text);
            let values: Vec<Vec<String>> = rows
                .iter()
                .map(|row| row.iter().map(|(_, value)| value.clone()).collect())
                .collect();
            prop_assert_eq!(ours, values);
        }
    }
}
