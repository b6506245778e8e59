//! The in-memory index of inbox events by `(source, id)`: the engine's [`HashedIndex`] of
//! key hashes to inbox seqs, verified against the inbox row on every hit.

use crate::rows::{INBOX_SELECT, inbox_row};
use pshub_engine::index::HashedIndex;
use pshub_engine::store::InboxRow;
use rusqlite::{Connection, OptionalExtension};

#[derive(Default)]
pub struct EventIndex {
    seqs: HashedIndex<i64>,
}

fn key(source: &str, event_id: &str) -> String {
    // Sources are configured names without control characters, so the separator is unambiguous.
    format!("{source}\u{1f}{event_id}")
}

fn read(conn: &Connection, seq: i64) -> rusqlite::Result<Option<InboxRow>> {
    conn.prepare_cached(&format!("{INBOX_SELECT} WHERE seq = ?"))?
        .query_row([seq], inbox_row)
        .optional()
}

impl EventIndex {
    /// Reads every inbox key once, at start.
    pub fn build(conn: &Connection) -> rusqlite::Result<Self> {
        let mut index = EventIndex::default();
        let mut deferred = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT seq, source, event_id FROM inbox ORDER BY seq")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let (seq, source, event_id): (i64, String, String) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                let key = key(&source, &event_id);
                // A taken hash is checked against the stored row once the scan is done.
                if index.seqs.insert(&key, seq, |_| Err(())).is_err() {
                    deferred.push((key, source, event_id, seq));
                }
            }
        }
        for (key, source, event_id, seq) in deferred {
            index.insert_checked(conn, &key, &source, &event_id, seq)?;
        }
        Ok(index)
    }

    fn insert_checked(
        &mut self,
        conn: &Connection,
        key: &str,
        source: &str,
        event_id: &str,
        seq: i64,
    ) -> rusqlite::Result<()> {
        self.seqs.insert(key, seq, |other| {
            Ok(read(conn, *other)?.is_some_and(|r| r.source == source && r.event_id == event_id))
        })
    }

    pub fn insert(
        &mut self,
        conn: &Connection,
        source: &str,
        event_id: &str,
        seq: i64,
    ) -> rusqlite::Result<()> {
        self.insert_checked(conn, &key(source, event_id), source, event_id, seq)
    }

    /// The stored event with this key, if any.
    pub fn find(
        &self,
        conn: &Connection,
        source: &str,
        event_id: &str,
    ) -> rusqlite::Result<Option<InboxRow>> {
        let mut verified = None;
        let seq = self.seqs.get(&key(source, event_id), |seq| {
            verified = read(conn, *seq)?.filter(|r| r.source == source && r.event_id == event_id);
            Ok::<_, rusqlite::Error>(verified.is_some())
        })?;
        match (verified, seq) {
            (Some(row), _) => Ok(Some(row)),
            // Not the key under its hash: the side table of colliding keys had it.
            (None, Some(seq)) => read(conn, seq),
            (None, None) => Ok(None),
        }
    }
}
