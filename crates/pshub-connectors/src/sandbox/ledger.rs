//! An append-only list of records (one JSON text each) that a sandbox system keeps across
//! restarts, as a real system keeps its database: a file of lines in the data folder, with
//! only each record's offset in memory, or the texts themselves for a sandbox that forgets.
//! Each record carries the idempotency key it was created under; an index from the key's
//! hash to the record's position answers a repeated key with the first answer.

use pshub_engine::index::HashedIndex;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

enum Texts {
    Memory(Vec<String>),
    File {
        append: File,
        read: File,
        /// Start and length of each record in the file.
        spans: Vec<(u64, u32)>,
        end: u64,
    },
}

pub struct Ledger {
    texts: Texts,
    keys: HashedIndex<u64>,
}

/// The key a record was created under (its `key` field).
fn key_of(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("key")?
        .as_str()
        .map(str::to_string)
}

fn read_text(texts: &Texts, seq: u64) -> std::io::Result<Option<String>> {
    match texts {
        Texts::Memory(all) => Ok(all.get(seq as usize).cloned()),
        Texts::File { read, spans, .. } => {
            let Some(&(start, len)) = spans.get(seq as usize) else {
                return Ok(None);
            };
            let mut bytes = vec![0u8; len as usize];
            read.read_exact_at(&mut bytes, start)?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
    }
}

impl Ledger {
    pub fn in_memory() -> Self {
        Ledger {
            texts: Texts::Memory(Vec::new()),
            keys: HashedIndex::default(),
        }
    }

    /// Opens the ledger's file, reading the records it already holds. A torn last line
    /// (the process died while writing it) was never answered and is dropped.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut ledger = Ledger {
            texts: Texts::Memory(Vec::new()),
            keys: HashedIndex::default(),
        };
        let mut spans = Vec::new();
        let mut end = 0u64;
        let mut keys = Vec::new();
        if let Ok(file) = File::open(path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                let read = reader.read_line(&mut line)?;
                if read == 0 || !line.ends_with('\n') {
                    break;
                }
                let text = line.trim_end();
                if let Some(key) = key_of(text) {
                    keys.push((key, spans.len() as u64));
                }
                spans.push((end, text.len() as u32));
                end += read as u64;
            }
        }
        let append = OpenOptions::new().create(true).append(true).open(path)?;
        // Whatever followed the last whole record is cut off, so that appends start clean.
        append.set_len(end)?;
        let read = File::open(path)?;
        ledger.texts = Texts::File {
            append,
            read,
            spans,
            end,
        };
        for (key, seq) in keys {
            ledger.remember(&key, seq)?;
        }
        Ok(ledger)
    }

    pub fn len(&self) -> usize {
        match &self.texts {
            Texts::Memory(texts) => texts.len(),
            Texts::File { spans, .. } => spans.len(),
        }
    }

    /// The record at `seq` (0-based).
    pub fn get(&self, seq: u64) -> std::io::Result<Option<String>> {
        read_text(&self.texts, seq)
    }

    /// The position of the record created under `key`, if any.
    pub fn find(&self, key: &str) -> std::io::Result<Option<u64>> {
        self.keys.get(key, |seq| {
            Ok(self.get(*seq)?.and_then(|t| key_of(&t)).as_deref() == Some(key))
        })
    }

    fn remember(&mut self, key: &str, seq: u64) -> std::io::Result<()> {
        let texts = &self.texts;
        self.keys.insert(key, seq, |other| {
            Ok(read_text(texts, *other)?
                .and_then(|t| key_of(&t))
                .as_deref()
                == Some(key))
        })
    }

    /// Appends records (each with its `key`), in one write; answers the first's position.
    pub fn append(&mut self, records: &[(String, String)]) -> std::io::Result<u64> {
        let first = self.len() as u64;
        match &mut self.texts {
            Texts::Memory(texts) => texts.extend(records.iter().map(|(_, text)| text.clone())),
            Texts::File {
                append, spans, end, ..
            } => {
                let mut bytes = Vec::new();
                for (_, text) in records {
                    spans.push((*end + bytes.len() as u64, text.len() as u32));
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.push(b'\n');
                }
                append.write_all(&bytes)?;
                *end += bytes.len() as u64;
            }
        }
        for (i, (key, _)) in records.iter().enumerate() {
            self.remember(key, first + i as u64)?;
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, n: u32) -> (String, String) {
        (key.into(), format!("{{\"key\":\"{key}\",\"n\":{n}}}"))
    }

    #[test]
    fn keeps_records_and_keys_across_reopening() {
        let dir = std::env::temp_dir().join(format!("pshub-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.jsonl");
        {
            let mut ledger = Ledger::open(&path).unwrap();
            assert_eq!(ledger.append(&[record("a", 1), record("b", 2)]).unwrap(), 0);
            assert_eq!(ledger.find("b").unwrap(), Some(1));
        }
        // A torn write after the last whole record is dropped on reopening.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"key\":\"c\"")
            .unwrap();
        let mut ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.find("a").unwrap(), Some(0));
        assert_eq!(ledger.find("c").unwrap(), None);
        assert_eq!(ledger.append(&[record("c", 3)]).unwrap(), 2);
        assert!(ledger.get(2).unwrap().unwrap().contains("\"n\":3"));
        drop(ledger);
        assert_eq!(Ledger::open(&path).unwrap().find("c").unwrap(), Some(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
