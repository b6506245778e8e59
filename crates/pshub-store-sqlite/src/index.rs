//! The in-memory index of inbox events by `(source, id)`: a 64-bit hash of the key maps to
//! the event's seq. Callers verify the row, so a hash collision costs one extra read and
//! never merges two events; colliding keys are kept in a side table.

use pshub_engine::fingerprint::fingerprint;
use rusqlite::Connection;
use std::collections::HashMap;

#[derive(Default)]
pub struct EventIndex {
    by_hash: HashMap<u64, i64>,
    collided: HashMap<(String, String), i64>,
}

impl EventIndex {
    /// Reads every inbox key once, at start.
    pub fn build(conn: &Connection) -> rusqlite::Result<Self> {
        let mut index = EventIndex::default();
        let mut stmt = conn.prepare("SELECT seq, source, event_id FROM inbox ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let source: String = row.get(1)?;
            let event_id: String = row.get(2)?;
            index.insert(&source, &event_id, row.get(0)?);
        }
        Ok(index)
    }

    pub fn insert(&mut self, source: &str, event_id: &str, seq: i64) {
        let hash = fingerprint(&[source, event_id]);
        if let Some(existing) = self.by_hash.get(&hash)
            && *existing != seq
        {
            self.collided
                .insert((source.to_string(), event_id.to_string()), seq);
            return;
        }
        self.by_hash.insert(hash, seq);
    }

    /// The seqs that may hold this key; at most two.
    pub fn candidates(&self, source: &str, event_id: &str) -> Vec<i64> {
        let mut found: Vec<i64> = self
            .by_hash
            .get(&fingerprint(&[source, event_id]))
            .copied()
            .into_iter()
            .collect();
        if !self.collided.is_empty()
            && let Some(seq) = self
                .collided
                .get(&(source.to_string(), event_id.to_string()))
        {
            found.push(*seq);
        }
        found
    }
}
