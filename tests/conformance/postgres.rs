//! The conformance suite against the PostgreSQL backend: a fresh database per test on the
//! cluster `ci/postgres start` runs (tests/support/pg.rs), `items` created by the app, then
//! enrolled. Direct writes come from a plain client, as a web backend's would.

use std::path::Path;

use super::Harness;
use crate::support::pg::{self, PgDb};
use sharecache::remote::RemoteStore;
use sharecache::remote::postgres::Postgres;

pub struct PgHarness {
    db: PgDb,
    dir: tempfile::TempDir,
}

impl PgHarness {
    pub fn new(test: &str) -> Option<PgHarness> {
        let db = pg::database(test)?;
        db.connect()
            .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
            .unwrap();
        let h = PgHarness {
            db,
            dir: tempfile::tempdir().unwrap(),
        };
        h.client("setup")
            .enroll("2026-12-04T09:00:00.000Z")
            .unwrap();
        Some(h)
    }
}

impl Harness for PgHarness {
    fn client(&self, origin: &str) -> Box<dyn RemoteStore> {
        Box::new(Postgres::open(&self.db.target(), "public", origin))
    }

    fn direct_write(&self, id: i64, v: Option<&str>) {
        let mut c = self.db.connect();
        match v {
            Some(v) => c
                .execute(
                    "INSERT INTO items (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
                    &[&id, &v],
                )
                .unwrap(),
            None => c.execute("DELETE FROM items WHERE id = $1", &[&id]).unwrap(),
        };
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

crate::conformance_tests!(optional PgHarness::new("conformance"));
