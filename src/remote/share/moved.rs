//! A share whose database moved to a server (`sharecache migrate-remote`).
//!
//! Why: after the move the caches and the server go on without the share, but the file is still
//! there and still writable. A desk whose `database.path` still names the share would sync with
//! it for good, and an old app or report tool writing it directly would write where nobody reads
//! any more: acknowledged writes, silently orphaned. So the move leaves a mark in the share
//! (`sharecache_meta.moved_to`, the server's URL without its password): sharecache clients
//! refuse to sync with a moved share, naming where the database went (their pending writes stay
//! in the cache and go to the server once `database.path` names it), and `BEFORE` triggers on the
//! synced tables make other programs' writes fail with the same sentence. Reads keep working.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::Share;
use crate::remote::RemoteError;
use crate::schema;
use crate::sql::{literal, quote};

/// The kinds of write refused, as trigger name parts.
const REFUSED: [(&str, &str); 3] = [("bi", "INSERT"), ("bu", "UPDATE"), ("bd", "DELETE")];

/// Where the database at `c` moved, if it did (remote format 5 on; `None` before it).
pub(super) fn moved_to(c: &Connection) -> rusqlite::Result<Option<String>> {
    let has: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('sharecache_meta') WHERE name = 'moved_to'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(None);
    }
    Ok(c.query_row(
        "SELECT moved_to FROM sharecache_meta WHERE id = 1",
        [],
        |r| r.get(0),
    )
    .optional()?
    .flatten())
}

/// The error a client meets at a moved share.
pub(super) fn refused(path: &Path, to: String) -> RemoteError {
    RemoteError::Moved {
        path: path.to_path_buf(),
        to,
    }
}

impl Share {
    /// Marks the share as moved to `to` (a location without a password): sharecache clients
    /// refuse it from now on, and other programs' writes to its synced tables fail, naming `to`.
    /// One write transaction.
    pub fn mark_moved(&mut self, to: &str) -> Result<(), RemoteError> {
        self.write_raw(|c, path| {
            (|| {
                c.execute(
                    "UPDATE sharecache_meta SET moved_to = ?1 WHERE id = 1",
                    [to],
                )?;
                let message = format!(
                    "sharecache: this database moved to {to}; write there (its tables are kept \
                     here read-only)"
                );
                for e in schema::read(c)? {
                    if e.sync != schema::Sync::Yes {
                        continue;
                    }
                    for (kind, op) in REFUSED {
                        let name = format!("sharecache_moved_{kind}_{}", e.table.name);
                        c.execute_batch(&format!(
                            "DROP TRIGGER IF EXISTS {name}; CREATE TRIGGER {name} BEFORE {op} ON \
                             {table} BEGIN SELECT RAISE(ABORT, {message}); END;",
                            name = quote(&name),
                            table = quote(&e.table.name),
                            message = literal(&message),
                        ))?;
                    }
                }
                Ok(())
            })()
            .map_err(|e| RemoteError::from_sqlite(path, e))
        })
    }
}
