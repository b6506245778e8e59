//! Lines by project and by worker, for the API's filters, kept as posting lists.
//!
//! An index of lines by project (or worker) takes its inserts all over its pages: one
//! insert per line there dirtied about one 16 KiB page per invoice line, the largest share
//! of the WAL the hot path wrote. So a line's id goes to `lines_unindexed` as it is written
//! (an append), and once there are [`BATCH`] of them the store turns them into posting lists
//! in one go: per project and per worker, one row holding the ids of the batch's lines,
//! ascending. Readers take the ids from both places.

use crate::{Stop, db, q};
use pshub_engine::error::Result;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;

/// Unindexed lines turned into posting lists at once: many lines per row written, and few
/// enough that a reader's pass over the unindexed ones stays short.
const BATCH: i64 = 32_768;

/// What lines are listed by.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Project,
    Worker,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Project => "project",
            Field::Worker => "worker",
        }
    }
}

fn encode(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Turns the unindexed lines into posting lists when there are enough of them, counted by
/// the span of their ids (two B-tree seeks, where a count would read every row); the one
/// writer allocates ids densely, so the span is the count or a little more.
pub fn index_if_due(tx: &Connection) -> std::result::Result<(), Stop> {
    let unindexed: i64 = tx.query_row(q("unindexed_lines")?, [], |r| r.get(0))?;
    if unindexed < BATCH {
        return Ok(());
    }
    let mut lists: BTreeMap<(&'static str, String), Vec<i64>> = BTreeMap::new();
    {
        let mut stmt = tx.prepare_cached(q("unindexed_line_keys")?)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (id, project, worker): (i64, String, String) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            lists
                .entry((Field::Project.name(), project))
                .or_default()
                .push(id);
            lists
                .entry((Field::Worker.name(), worker))
                .or_default()
                .push(id);
        }
    }
    let mut insert = tx.prepare_cached(q("insert_posting")?)?;
    for ((field, value), ids) in &lists {
        insert.execute(params![field, value, ids[0], encode(ids)])?;
    }
    tx.execute(q("clear_unindexed_lines")?, [])?;
    Ok(())
}

/// The ids of the lines with this project or worker, above `after`, ascending.
pub fn ids(conn: &Connection, field: Field, value: &str, after: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut stmt = conn.prepare_cached(q("postings")?).map_err(db)?;
    let mut rows = stmt.query(params![field.name(), value]).map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        let bytes: Vec<u8> = row.get(0).map_err(db)?;
        ids.extend(decode(&bytes).filter(|id| *id > after));
    }
    let tail = match field {
        Field::Project => "unindexed_lines_of_project",
        Field::Worker => "unindexed_lines_of_worker",
    };
    let mut stmt = conn.prepare_cached(q(tail)?).map_err(db)?;
    let rows = stmt
        .query_map(params![value, after], |r| r.get::<_, i64>(0))
        .map_err(db)?;
    for id in rows {
        ids.push(id.map_err(db)?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The ids in both ascending lists.
pub fn intersect(a: &[i64], b: &[i64]) -> Vec<i64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_lists_intersect() {
        let ids = [1, 7, 1 << 40, i64::MAX];
        assert_eq!(decode(&encode(&ids)).collect::<Vec<_>>(), ids);
        assert_eq!(intersect(&[1, 3, 5, 9], &[2, 3, 9, 10]), [3, 9]);
    }
}
