//! The cache's trail mark ([`Mark`]): the newest change-log entry it has seen or written, and the
//! remote's generation it follows. Moved in the transactions that record a pull or acknowledge a
//! push, so it never claims more than the cache holds.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::error::Error;
use crate::remote::{EntryId, Mark, RemoteStore};
use crate::store::LocalError;

/// The cache's [`Mark`].
pub(crate) fn read_mark(c: &Connection) -> rusqlite::Result<Mark> {
    c.query_row(
        "SELECT anchor_rev, anchor_stamp, anchor_origin, anchor_write, generation FROM sync_state \
         WHERE id = 1",
        [],
        |r| {
            Ok(Mark {
                rev: r.get(0)?,
                stamp: r.get(1)?,
                origin: r.get(2)?,
                write_id: r.get(3)?,
                generation: r.get(4)?,
            })
        },
    )
}

/// Moves the mark to a change-log entry the cache has seen, if newer. Call in the transaction
/// that records what was pulled or acknowledges what was pushed.
pub(crate) fn mark_seen(c: &Connection, entry: &EntryId) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE sync_state SET anchor_rev = ?1, anchor_stamp = ?2, anchor_origin = ?3, \
         anchor_write = ?4 WHERE id = 1 AND anchor_rev < ?1",
    )?
    .execute(params![
        entry.rev,
        entry.stamp,
        entry.origin,
        entry.write_id
    ])?;
    Ok(())
}

/// Sets the mark to `entry` whatever it was (a snapshot or a reconcile starts the cache's
/// knowledge of the remote afresh); `None`: nothing known yet.
pub(crate) fn set_mark(c: &Connection, entry: Option<&EntryId>) -> rusqlite::Result<()> {
    let none = EntryId::default();
    let e = entry.unwrap_or(&none);
    c.prepare_cached(
        "UPDATE sync_state SET anchor_rev = ?1, anchor_stamp = ?2, anchor_origin = ?3, \
         anchor_write = ?4 WHERE id = 1",
    )?
    .execute(params![e.rev, e.stamp, e.origin, e.write_id])?;
    Ok(())
}

/// Records the remote's generation when the cache did not know it yet (caches made before
/// generations existed).
pub(crate) fn learn_generation(
    local: &Connection,
    local_path: &Path,
    remote: &dyn RemoteStore,
) -> Result<(), Error> {
    let generation = remote.head()?.generation;
    local
        .execute(
            "UPDATE sync_state SET generation = ?1 WHERE id = 1 AND generation IS NULL",
            [generation],
        )
        .map_err(|e| Error::Local(LocalError::from_sqlite(local_path, e)))?;
    Ok(())
}
