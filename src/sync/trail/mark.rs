//! The cache's trail mark ([`Mark`]): the newest change-log entry it has seen or written, and the
//! remote's generation it follows. Moved in the transactions that record a pull or acknowledge a
//! push, so it never claims more than the cache holds.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::error::Error;
use crate::remote::{Mark, RemoteStore};
use crate::store::LocalError;

/// The cache's [`Mark`].
pub(crate) fn read_mark(c: &Connection) -> rusqlite::Result<Mark> {
    c.query_row(
        "SELECT anchor_rev, anchor_stamp, anchor_origin, generation FROM sync_state WHERE id = 1",
        [],
        |r| {
            Ok(Mark {
                rev: r.get(0)?,
                stamp: r.get(1)?,
                origin: r.get(2)?,
                generation: r.get(3)?,
            })
        },
    )
}

/// Moves the mark to a change-log entry the cache has seen, if newer. Call in the transaction
/// that records what was pulled.
pub(crate) fn mark_seen(
    c: &Connection,
    rev: i64,
    stamp: &str,
    origin: &str,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE sync_state SET anchor_rev = ?1, anchor_stamp = ?2, anchor_origin = ?3 \
         WHERE id = 1 AND anchor_rev < ?1",
    )?
    .execute(params![rev, stamp, origin])?;
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
