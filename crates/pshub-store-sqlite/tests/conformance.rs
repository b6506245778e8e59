//! The store conformance suite of `pshub-engine`, against the embedded SQLite store.

use pshub_store_sqlite::SqliteStore;

fn with_store(name: &str, check: fn(&dyn pshub_engine::Store)) {
    let dir = std::env::temp_dir().join(format!("pshub-conformance-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    check(&SqliteStore::open(&dir).expect("a fresh store opens"));
    let _ = std::fs::remove_dir_all(&dir);
}

pshub_engine::store_conformance_tests!(with_store);

#[test]
fn the_indexes_are_rebuilt_when_the_store_reopens() {
    use pshub_engine::Store;
    use pshub_engine::store::{Commit, EntryKind, Rows};
    let dir = std::env::temp_dir().join(format!("pshub-conformance-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = SqliteStore::open(&dir).unwrap();
        let inbox = (1..=500)
            .map(|seq| pshub_engine::conformance::inbox(seq, "psa", &format!("e{seq}"), None))
            .collect();
        let mut entries = Rows::default();
        for id in 1..=500 {
            entries.put(pshub_engine::conformance::entry(id, &format!("T-{id}")));
        }
        store
            .commit(&std::sync::Arc::new(Commit {
                inbox,
                entries,
                ..Commit::default()
            }))
            .unwrap();
    }
    let store = SqliteStore::open(&dir).unwrap();
    for seq in [1, 250, 500] {
        let found = store.find_events(&[("psa", &format!("e{seq}"))]).unwrap();
        assert_eq!(found[0].as_ref().map(|r| r.seq), Some(seq));
        let entry = store
            .find_entries(&[(EntryKind::Time, &format!("T-{seq}"))])
            .unwrap();
        assert_eq!(entry[0].as_ref().map(|e| e.row_id), Some(seq));
    }
    assert_eq!(store.find_events(&[("psa", "e501")]).unwrap(), vec![None]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_process_on_the_file_is_found_through_the_database() {
    use pshub_engine::Store;
    use pshub_engine::store::{Commit, CommitError};
    let dir = std::env::temp_dir().join(format!("pshub-conformance-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = SqliteStore::open(&dir).unwrap();
    let second = SqliteStore::open(&dir).unwrap();
    let event = |seq| {
        std::sync::Arc::new(Commit {
            inbox: vec![pshub_engine::conformance::inbox(seq, "psa", "e1", None)],
            ..Commit::default()
        })
    };
    first.commit(&event(1)).unwrap();
    // The second store's index has never seen psa/e1; the database refuses it all the same.
    assert_eq!(second.find_events(&[("psa", "e1")]).unwrap(), vec![None]);
    assert!(matches!(
        second.commit(&event(2)),
        Err(CommitError::Conflict(_))
    ));
    assert_eq!(
        second.find_events(&[("psa", "e1")]).unwrap()[0]
            .as_ref()
            .map(|r| r.seq),
        Some(1),
        "after the conflict it reads through"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lines_are_found_by_project_and_worker_before_and_after_their_batch_is_indexed() {
    use pshub_engine::Store;
    use pshub_engine::store::{LineFilter, Page};
    let dir = std::env::temp_dir().join(format!(
        "pshub-conformance-line-keys-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir).unwrap();
    let project = |id: i64| format!("P-{}", id % 7);
    let worker = |id: i64| format!("W-{}", id % 11);
    // 45,000 lines in commits of 5,000: the first 35,000 or so are moved to the tables in
    // one batch, the rest are still unindexed.
    for first in (1..=45_000).step_by(5_000) {
        write_lines(&store, first..first + 5_000, project, worker);
    }
    let mut reader = store.reader().unwrap();
    let all = |reader: &mut Box<dyn pshub_engine::store::StoreReader>, filter: &LineFilter| {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = reader
                .lines(
                    filter,
                    Page {
                        after,
                        limit: 1_000,
                    },
                )
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.line.id;
            ids.extend(page.iter().map(|l| l.line.id));
        }
        ids
    };
    let by_project = all(
        &mut reader,
        &LineFilter {
            project_code: Some("P-3".into()),
            ..LineFilter::default()
        },
    );
    let expected: Vec<i64> = (1..=45_000).filter(|id| project(*id) == "P-3").collect();
    assert_eq!(
        by_project, expected,
        "every line of P-3, in order, indexed or not"
    );
    let by_worker = all(
        &mut reader,
        &LineFilter {
            worker_id: Some("W-4".into()),
            project_code: Some("P-2".into()),
            ..LineFilter::default()
        },
    );
    let expected: Vec<i64> = (1..=45_000)
        .filter(|id| worker(*id) == "W-4" && project(*id) == "P-2")
        .collect();
    assert_eq!(by_worker, expected);
    drop(reader);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_from_before_the_posting_lists_keeps_finding_its_lines_by_project() {
    use pshub_engine::Store;
    use pshub_engine::store::{LineFilter, Page};
    let dir = std::env::temp_dir().join(format!(
        "pshub-conformance-migration-2-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    write_lines(
        &SqliteStore::open(&dir).unwrap(),
        1..=300,
        |id| format!("P-{}", id % 3),
        |id| format!("W-{id}"),
    );
    // Put the file back in the layout of migration 1: line indexes, no posting lists.
    let conn = rusqlite::Connection::open(dir.join(pshub_store_sqlite::DB_FILE)).unwrap();
    conn.execute_batch(
        "DROP TABLE line_postings; DROP TABLE lines_unindexed;
         CREATE INDEX lines_project ON lines (project_code, id);
         CREATE INDEX lines_worker ON lines (worker_id, id);
         DROP INDEX entries_work_date; DROP TABLE payroll_actuals; DROP TABLE payroll_loads;
         ALTER TABLE entries DROP COLUMN worker_id; ALTER TABLE entries DROP COLUMN project_code;
         ALTER TABLE entries DROP COLUMN work_date; ALTER TABLE entries DROP COLUMN hours;
         ALTER TABLE entries DROP COLUMN overtime_hours; ALTER TABLE quarantine DROP COLUMN kind;
         ALTER TABLE quarantine DROP COLUMN file; ALTER TABLE quarantine DROP COLUMN line;
         ALTER TABLE lines DROP COLUMN overtime_hours; ALTER TABLE lines DROP COLUMN role;
         DROP TABLE connector_cursors; DROP TABLE xrefs; DROP INDEX outbound_published;
         DELETE FROM schema_migrations WHERE version > 1;",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&dir).unwrap();
    let mut reader = store.reader().unwrap();
    let found: Vec<i64> = reader
        .lines(
            &LineFilter {
                project_code: Some("P-1".into()),
                ..LineFilter::default()
            },
            Page {
                after: 0,
                limit: 1_000,
            },
        )
        .unwrap()
        .iter()
        .map(|l| l.line.id)
        .collect();
    let expected: Vec<i64> = (1..=300).filter(|id| id % 3 == 1).collect();
    assert_eq!(
        found, expected,
        "the migrated store finds every line of P-1"
    );
    drop(reader);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Commits one invoice line (and its step) per id, with the project and worker given.
fn write_lines(
    store: &SqliteStore,
    ids: impl Iterator<Item = i64>,
    project: impl Fn(i64) -> String,
    worker: impl Fn(i64) -> String,
) {
    use pshub_engine::Store;
    use pshub_engine::conformance::{line, step};
    use pshub_engine::store::{Commit, Rows};
    let mut lines = Vec::new();
    let mut steps = Rows::default();
    for id in ids {
        let mut row = line(id, id as u32, id, None);
        row.entry_row = id;
        row.project_code = project(id);
        row.worker_id = worker(id);
        lines.push(row);
        let mut s = step(id, "erp", id, 0, None);
        s.business_key = format!("time:T-{id}:1");
        steps.put(s);
    }
    store
        .commit(&std::sync::Arc::new(Commit {
            lines,
            steps,
            ..Commit::default()
        }))
        .unwrap();
}
