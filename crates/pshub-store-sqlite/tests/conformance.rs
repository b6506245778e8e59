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
