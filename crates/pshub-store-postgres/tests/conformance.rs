//! The store conformance suite of `pshub-engine`, against PostgreSQL: each check on a fresh
//! database of its own, dropped afterwards.

use pshub_store_postgres::PostgresStore;
use pshub_store_postgres::testing::TestDatabase;

fn with_store(name: &str, check: fn(&dyn pshub_engine::Store)) {
    let database = TestDatabase::create(name);
    {
        let store = PostgresStore::open(&database.url).expect("a fresh store opens");
        check(&store);
    }
    drop(database);
}

pshub_engine::store_conformance_tests!(with_store);
