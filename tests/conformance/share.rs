//! The conformance suite against the share backend: a SQLite file in a temporary directory
//! (the behaviours are the backend's, not the network's; the share's faults are tested in
//! `share_safety` and `reliability`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Harness;
use sharecache::remote::{RemoteOptions, RemoteStore, Share};

pub struct ShareHarness {
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl ShareHarness {
    pub fn new() -> ShareHarness {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("remote.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);")
            .unwrap();
        let h = ShareHarness { dir, db };
        h.client("setup")
            .enroll("2026-12-04T09:00:00.000Z")
            .unwrap();
        h
    }
}

impl Harness for ShareHarness {
    fn client(&self, origin: &str) -> Box<dyn RemoteStore> {
        let opts = RemoteOptions {
            origin: origin.into(),
            busy_timeout: Duration::from_secs(5),
            lock_retries: 3,
            lease_ttl: Duration::from_secs(30),
        };
        Box::new(Share::open(&self.db, opts).unwrap())
    }

    fn direct_write(&self, id: i64, v: Option<&str>) {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        match v {
            Some(v) => c
                .execute(
                    "INSERT INTO items (id, v) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
                    rusqlite::params![id, v],
                )
                .unwrap(),
            None => c.execute("DELETE FROM items WHERE id = ?1", [id]).unwrap(),
        };
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

crate::conformance_tests!(ShareHarness::new());
