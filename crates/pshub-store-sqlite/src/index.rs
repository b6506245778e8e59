//! In-memory accelerators of the two lookups on the hot path: events by `(source, id)` and
//! entries by `(kind, id)`. Each is a set of 36-bit fingerprints of the stored keys: a key
//! whose fingerprint is absent is not stored, so a new key (the common case) costs no read;
//! a key whose fingerprint is present is read from the database by its key, which also
//! settles the rare fingerprint shared by two keys. A miss is only a hint: the UNIQUE
//! constraints of the schema refuse a second row whatever the set says, and a store that
//! learns another process writes the same file stops trusting misses (see
//! `SqliteStore::distrust_misses`). About 8 bytes per key.

use pshub_engine::fingerprint::fingerprint;
use pshub_engine::index::PassThrough;
use rusqlite::Connection;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// Source names and entry kinds hold no control characters, so the separator is unambiguous.
pub fn event_key(source: &str, event_id: &str) -> String {
    format!("{source}\u{1f}{event_id}")
}

pub fn entry_key(kind: &str, entry_id: &str) -> String {
    format!("{kind}\u{1f}{entry_id}")
}

/// Sets in shards, so that growing one never doubles the memory of the whole set at once.
const SHARDS: usize = 16;

type Shard = HashSet<u32, BuildHasherDefault<PassThrough>>;

pub struct KeySet {
    shards: Vec<Shard>,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

/// The shard (from the top bits of the key's hash) and the fingerprint within it.
fn place(key: &str) -> (usize, u32) {
    let hash = fingerprint(&[key]);
    ((hash >> 60) as usize % SHARDS, hash as u32)
}

impl KeySet {
    /// Reads every `(part, part)` of `query` once, at start.
    pub fn build(
        conn: &Connection,
        query: &str,
        key: fn(&str, &str) -> String,
    ) -> rusqlite::Result<Self> {
        let mut set = KeySet::default();
        let mut stmt = conn.prepare(query)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (a, b): (String, String) = (row.get(1)?, row.get(2)?);
            set.insert(&key(&a, &b));
        }
        Ok(set)
    }

    pub fn insert(&mut self, key: &str) {
        let (shard, print) = place(key);
        self.shards[shard].insert(print);
    }

    /// Whether a row with this key may be stored: `false` means it is not.
    pub fn may_hold(&self, key: &str) -> bool {
        let (shard, print) = place(key);
        self.shards[shard].contains(&print)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_inserted_and_rarely_what_was_not() {
        let mut set = KeySet::default();
        for n in 0..100_000 {
            set.insert(&event_key("psa", &format!("e{n}")));
        }
        assert!((0..100_000).all(|n| set.may_hold(&event_key("psa", &format!("e{n}")))));
        let false_hits = (0..100_000)
            .filter(|n| set.may_hold(&event_key("crm", &format!("e{n}"))))
            .count();
        assert!(
            false_hits < 10,
            "{false_hits} of 100,000 absent keys looked present"
        );
    }
}
