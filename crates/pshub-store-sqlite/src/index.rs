//! In-memory accelerators of the two lookups on the hot path: events by `(source, id)` and
//! entries by `(kind, id)`. Each maps a 64-bit hash of the key to the row's id, and every hit
//! is verified against the stored row. A miss is only a hint: the UNIQUE constraints of the
//! schema refuse a second row whatever the index says, and a store that learns another
//! process writes the same file stops trusting misses (see `SqliteStore::distrust_misses`).

use pshub_engine::index::HashedIndex;
use rusqlite::Connection;

/// Source names and entry kinds hold no control characters, so the separator is unambiguous.
pub fn event_key(source: &str, event_id: &str) -> String {
    format!("{source}\u{1f}{event_id}")
}

pub fn entry_key(kind: &str, entry_id: &str) -> String {
    format!("{kind}\u{1f}{entry_id}")
}

/// Hash of a key to a row id; `holds(id)` says whether the row with that id has the key.
#[derive(Default)]
pub struct KeyIndex {
    ids: HashedIndex<i64>,
}

impl KeyIndex {
    /// Reads every `(id, part, part)` of `query` once, at start.
    pub fn build(
        conn: &Connection,
        query: &str,
        key: fn(&str, &str) -> String,
        mut holds: impl FnMut(i64, &str) -> rusqlite::Result<bool>,
    ) -> rusqlite::Result<Self> {
        let mut index = KeyIndex::default();
        let mut deferred = Vec::new();
        {
            let mut stmt = conn.prepare(query)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let (id, a, b): (i64, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
                let key = key(&a, &b);
                // A hash already taken is checked against the stored rows once the scan is done.
                if index.ids.insert(&key, id, |_| Err(())).is_err() {
                    deferred.push((key, id));
                }
            }
        }
        for (key, id) in deferred {
            index.insert(&key, id, |other| holds(other, &key))?;
        }
        Ok(index)
    }

    pub fn insert(
        &mut self,
        key: &str,
        id: i64,
        mut holds: impl FnMut(i64) -> rusqlite::Result<bool>,
    ) -> rusqlite::Result<()> {
        self.ids.insert(key, id, |other| holds(*other))
    }

    /// The id of the row with this key, if the index has it.
    pub fn get(
        &self,
        key: &str,
        mut holds: impl FnMut(i64) -> rusqlite::Result<bool>,
    ) -> rusqlite::Result<Option<i64>> {
        self.ids.get(key, |id| holds(*id))
    }
}
