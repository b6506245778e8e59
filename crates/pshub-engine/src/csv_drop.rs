//! The engine's half of the CSV drop connector (the folder watcher is
//! `pshub_connectors::csv_drop`): a source's settings, and one file's rows turned into
//! events through the source's mappings, each kept with its file and line.
//!
//! A file is checked before any row is taken: it must be UTF-8 and its header must name
//! every column the source declares. Each data row becomes a JSON object of the header's
//! columns (every value a text, as written) and goes through the mappings as a webhook's
//! payload does; a row that fails is quarantined as `mapped_record` with its file and line.

use crate::config::Config;
use crate::hooks::{Received, Via, map_payload, refused_record};
use crate::hub::Incoming;
use pshub_model::fields::FieldError;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// When a file in the folder is whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// `<file>.ready` beside it: the sender writes it after the file.
    Marker,
    /// Its size and modification time held still this long.
    SizeStable(Duration),
}

/// A source whose records arrive as CSV files in a folder (`[sources.<name>]` with
/// `connector = "csv_drop"`).
#[derive(Debug, Clone)]
pub struct CsvDrop {
    /// The folder watched; processed files go to its `done/` and `failed/`.
    pub dir: PathBuf,
    /// Columns every file's header must name.
    pub columns: Vec<String>,
    /// The mappings that make a row canonical, tried in order.
    pub mappings: Vec<String>,
    pub ready: Ready,
    /// How often the folder is looked at.
    pub poll: Duration,
    pub delimiter: u8,
}

/// What one file gave.
#[derive(Debug)]
pub struct FileRead {
    /// One per data row, by its line: an event, or the row quarantined.
    pub incoming: Vec<(u64, Incoming)>,
    /// Data rows, and the lines of those no mapping takes (with why).
    pub rows: u64,
    pub not_taken: Vec<(u64, String)>,
}

/// Reads one file of `source`; an error (with the file's name and line) when the file as
/// a whole cannot be read: nothing of it is taken then.
pub fn read_file(
    source: &str,
    file: &str,
    bytes: &[u8],
    drop: &CsvDrop,
    config: &Config,
) -> Result<FileRead, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("{file}: the file is not UTF-8: {e}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(drop.delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{file}:1: the header does not read: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(format!(
            "{file}: the file is empty; a header row with {} is required",
            drop.columns.join(",")
        ));
    }
    let missing: Vec<&str> = drop
        .columns
        .iter()
        .filter(|c| !header.contains(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{file}:1: the header has no column {} (it needs {})",
            missing
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", "),
            drop.columns.join(",")
        ));
    }
    if let Some(twice) = header
        .iter()
        .enumerate()
        .find(|(i, h)| header[..*i].contains(h))
    {
        return Err(format!(
            "{file}:1: the header names column '{}' twice",
            twice.1
        ));
    }
    let via = Via::connector("csv_drop").with("file", Value::from(file));
    let mut read = FileRead {
        incoming: Vec::new(),
        rows: 0,
        not_taken: Vec::new(),
    };
    let mapping = drop.mappings.first().map_or("", String::as_str);
    let mut lines = PhysicalLines::new(text);
    for record in reader.records() {
        let (line, row) = match record {
            Ok(record) => {
                let line = lines.at(record.position().map_or(0, |p| p.byte()));
                if record.iter().all(str::is_empty) {
                    continue;
                }
                if record.len() != header.len() {
                    let problem = format!(
                        "the row has {} fields; the header has {}",
                        record.len(),
                        header.len()
                    );
                    (
                        line,
                        Err((problem, record.iter().collect::<Vec<_>>().join(","))),
                    )
                } else {
                    let object: Map<String, Value> = header
                        .iter()
                        .zip(record.iter())
                        .map(|(h, v)| (h.clone(), Value::from(v)))
                        .collect();
                    (line, Ok(Value::Object(object).to_string()))
                }
            }
            Err(error) => {
                let line = lines.at(error.position().map_or(0, |p| p.byte()));
                let problem = format!("the row does not read: {error}");
                (line, Err((problem, String::new())))
            }
        };
        read.rows += 1;
        let via = via.clone().with("line", Value::from(line));
        let body = match row {
            Ok(body) => body,
            Err((problem, fields)) => {
                let error = FieldError {
                    field: "row".into(),
                    problem: format!("{file}:{line}: {problem}"),
                };
                let refused = refused_record(
                    (source, mapping),
                    &via,
                    &fields,
                    Some((file, line)),
                    error,
                    None,
                );
                read.incoming.push((line, refused));
                continue;
            }
        };
        match map_payload(
            source,
            &drop.mappings,
            &via,
            &body,
            Some((file, line)),
            config,
        ) {
            Received::Event(incoming) => read.incoming.push((line, incoming)),
            Received::NotTaken(why) => read.not_taken.push((line, why)),
        }
    }
    Ok(read)
}

/// Physical line numbers of byte offsets met in order: a blank line counts, and a quoted
/// field may span lines (the reader numbers records, not lines).
struct PhysicalLines<'a> {
    text: &'a [u8],
    counted: usize,
    line: u64,
}

impl<'a> PhysicalLines<'a> {
    fn new(text: &'a str) -> Self {
        PhysicalLines {
            text: text.as_bytes(),
            counted: 0,
            line: 1,
        }
    }

    /// The line a record starting at `byte` begins on.
    fn at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        // The reader may place a record's start at the line end of the line before.
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.counted {
            let ends = self.text[self.counted..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line += ends as u64;
            self.counted = start;
        }
        self.line
    }
}
