//! Building the cache from the remote: the first snapshot, and in-place rebuilds (after a
//! destructive remote schema change, a pruned change log, or `clear`).
//!
//! Both start with a snapshot of the remote ([`RemoteStore::snapshot_into`]: for the share, a
//! page-exact copy of its file) into a temporary file beside the cache. A first snapshot turns that copy into the cache (WAL, sharecache's
//! tables, capture triggers) and renames it into place. A rebuild instead replaces the app's
//! tables *inside* the existing cache file in one local transaction — other programs may have
//! the cache open, and a renamed-over file would silently orphan their writes — and only when no
//! local write is pending, so none can be lost.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::clock::Clock;
use crate::error::Error;
use crate::remote::store::NewClient;
use crate::remote::{CopyError, CopyInfo, RemoteStore};
use crate::schema::{self, LOCAL_INTERNAL, REMOTE_INTERNAL, Sync};
use crate::sql::quote;
use crate::store::{CachePaths, LocalError, capture, make_private};

fn copy(
    remote: &mut dyn RemoteStore,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
    register: Option<&NewClient>,
) -> Result<CopyInfo, Error> {
    remote
        .snapshot_into(dest, progress, register)
        .map_err(|e| match e {
            CopyError::Remote(r) => Error::Remote(r),
            CopyError::Local(io) => Error::Local(LocalError::from_io(dest, io)),
        })
}

/// `Err(Ok(table))` when the copy has an app table named like one of sharecache's own tables in
/// the cache.
fn check_names(conn: &Connection) -> Result<(), Result<String, rusqlite::Error>> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(Err)?;
    match names
        .into_iter()
        .find(|n| LOCAL_INTERNAL.contains(&n.as_str()))
    {
        Some(table) => Err(Ok(table)),
        None => Ok(()),
    }
}

fn check_copy(conn: &Connection, path: &Path) -> Result<(), LocalError> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| LocalError::from_sqlite(path, e))?;
    if verdict != "ok" {
        return Err(LocalError::Corrupt {
            path: path.into(),
            detail: format!("snapshot copy failed its check: {verdict}"),
        });
    }
    Ok(())
}

/// Creates the cache at `paths.db` from the (enrolled) remote.
pub(crate) fn build(
    remote: &mut dyn RemoteStore,
    paths: &CachePaths,
    origin: &str,
    clock: &Clock,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), Error> {
    let tmp = paths.temp("snapshot");
    // The new client enters the remote's registry with the copy's revision, under the copy's
    // lease: tombstones after it are kept until it has pulled them, so its first edits are
    // decided against deletes it has not seen yet.
    let register = NewClient {
        origin: origin.to_string(),
        now: clock.now_stamp(),
        host: crate::platform::host_name(),
    };
    let result = (|| {
        let info = copy(remote, &tmp, progress, Some(&register))?;
        let verdicts = remote.schema()?.entries;
        let remote_id = info.remote_id.clone().ok_or_else(|| LocalError::Corrupt {
            path: tmp.clone(),
            detail: "the snapshot has no sharecache identity (remote not set up)".into(),
        })?;
        let sql = |e| LocalError::from_sqlite(&tmp, e);
        let mut conn = Connection::open(&tmp).map_err(sql)?;
        check_copy(&conn, &tmp)?;
        check_names(&conn).map_err(|e| match e {
            Ok(table) => LocalError::NameClash { table },
            Err(e) => sql(e),
        })?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(sql)?;
        let tx = conn.transaction().map_err(sql)?;
        // The hybrid clock starts above every stamp copied: an edit made here after the copy
        // must carry a later stamp than the version it edits, whatever this machine's clock says.
        let now = info
            .newest_stamp
            .clone()
            .map_or_else(|| clock.now_stamp(), |s| s.max(clock.now_stamp()));
        crate::migrate::CACHE.apply(&tx, &now).map_err(sql)?;
        tx.execute(
            &format!(
            "INSERT INTO sync_state (id, origin, hlc, pull_rev, remote_id, remote_path, created_at, snapshot_at) \
             VALUES (1, ?1, {}, ?3, ?4, ?5, ?2, ?2)",
                crate::clock::ms_of_stamp_sql("?2")
            ),
            params![origin, now, info.rev, remote_id, remote.location()],
        )
        .map_err(sql)?;
        set_trail(&tx, &info).map_err(sql)?;
        register_copied_tables(&tx, &verdicts).map_err(sql)?;
        tx.commit().map_err(sql)?;
        drop(conn);
        make_private(&tmp)?;
        std::fs::rename(&tmp, &paths.db).map_err(|e| LocalError::from_io(&paths.db, e))?;
        tracing::info!(cache = %paths.db.display(), bytes = info.bytes, rev = info.rev, "cache created from the remote");
        Ok(())
    })();
    if result.is_err() {
        remove_with_sidecars(&tmp);
    }
    result
}

/// Sets the cache's trail mark (see [`crate::remote::Mark`]) to what the snapshot tells of the
/// remote's history: its newest change-log entry at or below the copy's revision and its
/// generation. Nothing when the copy has no entry (all pruned): the next pull sets the mark.
fn set_trail(c: &Connection, info: &CopyInfo) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE main.sync_state SET generation = ?1",
        params![info.generation],
    )?;
    super::trail::set_mark(c, info.newest.as_ref())
}

/// Removes a database file and its `-wal`/`-shm`/`-journal` companions, ignoring errors.
pub(crate) fn remove_with_sidecars(path: &Path) {
    let _ = std::fs::remove_file(path);
    for ext in ["-wal", "-shm", "-journal"] {
        let mut s = path.as_os_str().to_owned();
        s.push(ext);
        let _ = std::fs::remove_file(s);
    }
}

/// Reinstalls the capture triggers of the tables recorded as synced, as this build writes them.
/// Call inside the transaction that migrated the cache.
pub(crate) fn reinstall_capture(c: &Connection) -> rusqlite::Result<()> {
    let synced: Vec<String> = c
        .prepare("SELECT name FROM sync_tables WHERE synced = 1")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for e in schema::read(c)? {
        if synced.contains(&e.table.name) {
            capture::install(c, &e.table)?;
        }
    }
    Ok(())
}

/// Installs capture triggers on every synced table (removing them from tables no longer synced)
/// and records in `sync_tables` what is synced, why not, and the remote schema the cache now
/// follows (`remote`: the remote's tables; `None` when the cache was just copied from it). Tables
/// that exist only in the cache (created by the app) are not recorded. Call inside a transaction.
pub(crate) fn register_tables(
    c: &Connection,
    remote: Option<&[schema::Entry]>,
) -> rusqlite::Result<Vec<schema::Entry>> {
    let local = schema::read(c)?;
    let entries: Vec<schema::Entry> = match remote {
        None => local,
        Some(remote) => local
            .into_iter()
            .filter_map(|l| {
                remote
                    .iter()
                    .find(|r| r.table.name == l.table.name)
                    .map(|r| (l, r))
            })
            .map(|(l, r)| schema::Entry {
                table: schema::Table {
                    columns: r.table.columns.clone(),
                    ..l.table
                },
                sync: r.sync.clone(),
            })
            .collect(),
    };
    record_tables(c, &entries)?;
    Ok(entries)
}

/// [`register_tables`] for a fresh copy of the remote: the copy's tables, with the remote's word
/// on which of them it cannot sync (a server's table with a column of a type sharecache does not
/// map looks syncable in the copy).
fn register_copied_tables(c: &Connection, remote: &[schema::Entry]) -> rusqlite::Result<()> {
    let entries: Vec<schema::Entry> = schema::read(c)?
        .into_iter()
        .map(|mut l| {
            if let Some(Sync::No(why)) = remote
                .iter()
                .find(|r| r.table.name == l.table.name)
                .map(|r| &r.sync)
            {
                l.sync = Sync::No(why.clone());
            }
            l
        })
        .collect();
    record_tables(c, &entries)
}

/// Records `entries` in `sync_tables`, with capture installed on the synced ones only.
fn record_tables(c: &Connection, entries: &[schema::Entry]) -> rusqlite::Result<()> {
    c.execute("DELETE FROM sync_tables", [])?;
    for e in entries {
        let (synced, reason) = match &e.sync {
            Sync::Yes => {
                capture::install(c, &e.table)?;
                (true, None)
            }
            Sync::No(r) => {
                capture::remove(c, &e.table.name)?;
                (false, Some(r.clone()))
            }
        };
        c.execute(
            "INSERT INTO sync_tables (name, synced, reason, signature) VALUES (?1, ?2, ?3, ?4)",
            params![e.table.name, synced, reason, e.table.signature()],
        )?;
    }
    Ok(())
}

/// Why a rebuild could not run now.
#[derive(Debug)]
pub(crate) enum RebuildBlocked {
    /// Local writes are pending: push them first.
    Pending(i64),
}

/// Replaces the app's tables in the cache with a fresh copy of the remote, in one local
/// transaction, if no local write is pending. `local` is the sync's own connection.
pub(crate) fn rebuild_in_place(
    local: &Connection,
    local_path: &Path,
    remote: &mut dyn RemoteStore,
    paths: &CachePaths,
    clock: &Clock,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<CopyInfo, RebuildBlocked>, Error> {
    let tmp = paths.temp("rebuild");
    let result = (|| {
        let info = copy(remote, &tmp, progress, None)?;
        let verdicts = remote.schema()?.entries;
        let sql = |e| LocalError::from_sqlite(local_path, e);
        check_copy(
            &Connection::open(&tmp).map_err(|e| LocalError::from_sqlite(&tmp, e))?,
            &tmp,
        )?;
        local
            .execute("ATTACH DATABASE ?1 AS snap", [tmp.to_string_lossy()])
            .map_err(sql)?;
        // One write transaction (it folds the capture journal first): committed when the copy
        // is in place, or when a pending write blocks it (only the fold is written then).
        let swapped = crate::store::write_tx(local, |local| {
            let pending = super::outbox::pending(local)?;
            if pending > 0 {
                return Ok(Err(RebuildBlocked::Pending(pending)));
            }
            local.execute("UPDATE main.sync_state SET applying = 1", [])?;
            replace_app_objects(local)?;
            let remote_id = info.remote_id.clone().unwrap_or_default();
            local.execute(
                &format!(
                    "UPDATE main.sync_state SET applying = 0, pull_rev = ?1, remote_id = ?2, snapshot_at = ?3, \
                     hlc = max(hlc, {})",
                    crate::clock::ms_of_stamp_sql("?4")
                ),
                params![
                    info.rev,
                    remote_id,
                    clock.now_stamp(),
                    info.newest_stamp.clone().unwrap_or_default()
                ],
            )?;
            local.execute("DELETE FROM main.sync_tracking", [])?;
            // The rows are the copy's now: the versions the cache held are unknown
            // (src/sync/versions.rs).
            local.execute("DELETE FROM main.sync_row_versions", [])?;
            set_trail(local, &info)?;
            register_copied_tables(local, &verdicts)?;
            Ok(Ok(()))
        });
        let _ = local.execute_batch("DETACH DATABASE snap");
        match swapped.map_err(sql)? {
            Ok(()) => Ok(Ok(info)),
            Err(b) => Ok(Err(b)),
        }
    })();
    remove_with_sidecars(&tmp);
    result
}

/// Inside the rebuild transaction: drop every app table and view of `main` (their indexes and
/// triggers go with them) and recreate them, with their data, from `snap`.
fn replace_app_objects(c: &Connection) -> rusqlite::Result<()> {
    let old: Vec<(String, String)> = c
        .prepare(
            "SELECT type, name FROM main.sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name) in &old {
        if !LOCAL_INTERNAL.contains(&name.as_str()) {
            c.execute_batch(&format!(
                "DROP {} IF EXISTS main.{};",
                kind.to_uppercase(),
                quote(name)
            ))?;
        }
    }
    let new: Vec<(String, String, String, String)> = c
        .prepare(
            "SELECT type, name, tbl_name, sql FROM snap.sqlite_master WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, table, sql) in &new {
        let internal = |n: &str| REMOTE_INTERNAL.contains(&n) || LOCAL_INTERNAL.contains(&n);
        if internal(name) || internal(table) || is_shadow(c, name)? {
            continue; // sharecache's own, or created by its virtual table
        }
        c.execute_batch(sql)?;
        if kind == "table" && !sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            let cols: Vec<String> = c
                .prepare(
                    "SELECT name FROM pragma_table_xinfo(?1, 'snap') WHERE hidden = 0 ORDER BY cid",
                )?
                .query_map([name], |r| r.get::<_, String>(0))?
                .map(|n| n.map(|n| quote(&n)))
                .collect::<Result<_, _>>()?;
            let cols = cols.join(", ");
            c.execute_batch(&format!(
                "INSERT INTO main.{q} ({cols}) SELECT {cols} FROM snap.{q};",
                q = quote(name)
            ))?;
        }
    }
    // Keep AUTOINCREMENT counters as the remote has them.
    let has_seq = |db: &str| -> rusqlite::Result<bool> {
        c.query_row(
            &format!("SELECT count(*) > 0 FROM {db}.sqlite_master WHERE name = 'sqlite_sequence'"),
            [],
            |r| r.get(0),
        )
    };
    if has_seq("snap")? && has_seq("main")? {
        let internal = serde_json::to_string(REMOTE_INTERNAL).expect("a list of names");
        c.execute_batch(
            "DELETE FROM main.sqlite_sequence WHERE name IN (SELECT name FROM snap.sqlite_sequence);",
        )?;
        c.execute(
            "INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM snap.sqlite_sequence \
             WHERE name NOT IN (SELECT value FROM json_each(?1))",
            [internal],
        )?;
    }
    Ok(())
}

fn is_shadow(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_list WHERE schema = 'snap' AND name = ?1 AND type = 'shadow'",
        [name],
        |r| r.get(0),
    )
}
