//! The version of each synced row the cache holds (`sync_row_versions`, cache migration 9): the
//! stamp and origin of the version it last acknowledged (pushed) or pulled, tombstones included.
//!
//! Why: once a push is acknowledged, `sync_tracking` forgets the change, and a reconcile after a
//! restore would otherwise know neither which version the cache holds nor that it deleted a row.
//! With this, a reconcile pushes what the restore took away under its own stamp and origin (a
//! delete too), and the usual newest-stamp rule decides it against what other clients carry back
//! ([`super::trail`]); a version that loses is logged under its own name.
//!
//! Written only by sharecache, in the transactions that already write the row (acknowledge, pull,
//! reconcile): one indexed upsert per row. The capture triggers never touch it, so the app's
//! writes cost the same. A row with no entry (copied by a snapshot or rebuild, or synced before
//! migration 9) has an unknown version and is decided as before.
//!
//! Tombstones are kept for [`TOMBSTONE_DAYS`] after their stamp: longer than the backups a
//! restore is expected to come from (nightly copies, "Previous Versions" of a few weeks). A
//! restore from an older copy finds an old delete's row again and, as before this table, may
//! bring it back. Entries of rows that exist are kept as long as the row.

use rusqlite::{Connection, OptionalExtension, params};

/// Days a tombstone is kept after its stamp.
pub(crate) const TOMBSTONE_DAYS: i64 = 90;

/// A version the cache holds: stamp, origin, and whether it is a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub stamp: String,
    pub origin: String,
    pub deleted: bool,
}

/// A version as the cache learned it.
pub(crate) struct Learned<'a> {
    pub stamp: &'a str,
    pub origin: &'a str,
    /// The row is gone.
    pub deleted: bool,
    /// The change-log revision the version was written at, or any revision above it that the
    /// remote had reached (see [`revision_known`]).
    pub rev: i64,
}

/// Records that the cache holds version `v` of the row `pk` of `tbl`. An empty stamp (a version
/// not known by name) forgets instead. An UPSERT (sharecache's bundled SQLite; the app's SQLite
/// never runs it): an update in place, measured cheaper than `INSERT OR REPLACE`'s delete and
/// insert.
pub(crate) fn record(c: &Connection, tbl: &str, pk: &str, v: &Learned<'_>) -> rusqlite::Result<()> {
    if v.stamp.is_empty() {
        return forget(c, tbl, pk);
    }
    c.prepare_cached(
        "INSERT INTO sync_row_versions (tbl, pk, stamp, origin, deleted, rev) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tbl, pk) DO UPDATE SET \
         stamp = excluded.stamp, origin = excluded.origin, deleted = excluded.deleted, \
         rev = excluded.rev",
    )?
    .execute(params![tbl, pk, v.stamp, v.origin, v.deleted, v.rev])?;
    Ok(())
}

/// The highest change-log revision this cache knows the remote reached: its pull cursor, its
/// trail mark, and the revisions of the versions it holds. A reconcile that pushes versions again
/// under their own names first moves the remote's revision counter past it, so that no version
/// lands again at the revision it had: another client whose trail mark is that entry would find
/// its mark intact and miss the break (src/sync/trail/carry.rs).
pub(crate) fn revision_known(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT max(pull_rev, anchor_rev, coalesce((SELECT max(rev) FROM sync_row_versions), 0)) \
         FROM sync_state WHERE id = 1",
        [],
        |r| r.get(0),
    )
}

/// Forgets the version of a row: it is unknown from now on.
pub(crate) fn forget(c: &Connection, tbl: &str, pk: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM sync_row_versions WHERE tbl = ?1 AND pk = ?2")?
        .execute(params![tbl, pk])?;
    Ok(())
}

/// The version of a row the cache holds, if known.
pub(crate) fn held(c: &Connection, tbl: &str, pk: &str) -> rusqlite::Result<Option<Held>> {
    c.prepare_cached(
        "SELECT stamp, origin, deleted FROM sync_row_versions WHERE tbl = ?1 AND pk = ?2",
    )?
    .query_row(params![tbl, pk], |r| {
        Ok(Held {
            stamp: r.get(0)?,
            origin: r.get(1)?,
            deleted: r.get(2)?,
        })
    })
    .optional()
}

/// The tombstones of `tbl`: key text and version.
pub(crate) fn tombstones(c: &Connection, tbl: &str) -> rusqlite::Result<Vec<(String, Held)>> {
    c.prepare_cached(
        "SELECT pk, stamp, origin FROM sync_row_versions WHERE tbl = ?1 AND deleted = 1",
    )?
    .query_map([tbl], |r| {
        Ok((
            r.get(0)?,
            Held {
                stamp: r.get(1)?,
                origin: r.get(2)?,
                deleted: true,
            },
        ))
    })?
    .collect()
}

/// Drops the tombstones stamped before `before` (a stamp). A scan of the table: run it now and
/// then (the registry's turn), not per sync.
pub(crate) fn prune_tombstones(c: &Connection, before: &str) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM sync_row_versions WHERE deleted = 1 AND stamp < ?1",
        [before],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::migrate::CACHE.apply(&c, "t").unwrap();
        c
    }

    fn learned<'a>(stamp: &'a str, origin: &'a str, deleted: bool) -> Learned<'a> {
        Learned {
            stamp,
            origin,
            deleted,
            rev: 0,
        }
    }

    #[test]
    fn the_newest_recorded_version_of_a_row_is_the_one_held() {
        let c = cache();
        record(
            &c,
            "t",
            "1",
            &learned("2026-01-01T00:00:00.001Z", "a", false),
        )
        .unwrap();
        record(
            &c,
            "t",
            "1",
            &learned("2026-01-01T00:00:00.002Z", "b", true),
        )
        .unwrap();
        let held = held(&c, "t", "1").unwrap().unwrap();
        assert_eq!(
            held,
            Held {
                stamp: "2026-01-01T00:00:00.002Z".into(),
                origin: "b".into(),
                deleted: true
            }
        );
        assert_eq!(tombstones(&c, "t").unwrap().len(), 1);
        assert_eq!(tombstones(&c, "u").unwrap().len(), 0);
    }

    #[test]
    fn a_version_without_a_stamp_is_forgotten() {
        let c = cache();
        record(
            &c,
            "t",
            "1",
            &learned("2026-01-01T00:00:00.001Z", "a", false),
        )
        .unwrap();
        record(&c, "t", "1", &learned("", "", false)).unwrap();
        assert_eq!(held(&c, "t", "1").unwrap(), None);
    }

    #[test]
    fn pruning_drops_old_tombstones_only() {
        let c = cache();
        record(
            &c,
            "t",
            "1",
            &learned("2026-01-01T00:00:00.000Z", "a", true),
        )
        .unwrap();
        record(
            &c,
            "t",
            "2",
            &learned("2026-01-01T00:00:00.000Z", "a", false),
        )
        .unwrap();
        record(
            &c,
            "t",
            "3",
            &learned("2026-03-01T00:00:00.000Z", "a", true),
        )
        .unwrap();
        assert_eq!(prune_tombstones(&c, "2026-02-01T00:00:00.000Z").unwrap(), 1);
        assert_eq!(held(&c, "t", "1").unwrap(), None);
        assert!(
            held(&c, "t", "2").unwrap().is_some(),
            "a live row's version stays"
        );
        assert!(
            held(&c, "t", "3").unwrap().is_some(),
            "a recent tombstone stays"
        );
    }
}
