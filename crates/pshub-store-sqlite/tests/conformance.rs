//! The store conformance suite of `pshub-engine`, against the embedded SQLite store.

use pshub_store_sqlite::SqliteStore;

fn open(name: &str) -> SqliteStore {
    let dir = std::env::temp_dir().join(format!("pshub-conformance-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    SqliteStore::open(&dir).expect("a fresh store opens")
}

pshub_engine::store_conformance_tests!(open);

#[test]
fn the_event_index_is_rebuilt_when_the_store_reopens() {
    use pshub_engine::Store;
    use pshub_engine::store::Commit;
    let dir = std::env::temp_dir().join(format!("pshub-conformance-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut store = SqliteStore::open(&dir).unwrap();
        let inbox = (1..=500)
            .map(|seq| pshub_engine::conformance::inbox(seq, "psa", &format!("e{seq}"), false))
            .collect();
        store
            .commit(&Commit {
                inbox,
                ..Commit::default()
            })
            .unwrap();
    }
    let mut store = SqliteStore::open(&dir).unwrap();
    for seq in [1, 250, 500] {
        assert_eq!(
            store
                .find_event("psa", &format!("e{seq}"))
                .unwrap()
                .map(|r| r.seq),
            Some(seq)
        );
    }
    assert_eq!(store.find_event("psa", "e501").unwrap(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}
