//! Status: what a user or an admin wants to know at a glance, read from the local files only
//! (it never waits on the share).

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::handle::{Cache, Mode};
use crate::store::others::{self, OtherCache};
use crate::store::{CachePaths, LocalError};
use crate::sync::metadata::{self, Run};

/// The overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The last sync succeeded and nothing is pending.
    Success,
    /// Local writes wait for the next sync (or a sync is running).
    Pending,
    /// The last sync failed for a reason other than the share being unreachable.
    Failed,
    /// The share was unreachable at the last sync.
    Offline,
    /// Another program holds the cache (e.g. an app in `locking_mode=EXCLUSIVE`): syncs wait
    /// until it lets go.
    Locked,
}

impl State {
    /// The indicator shown by `sharecache status`.
    pub fn indicator(self) -> &'static str {
        match self {
            State::Success => "🟢",
            State::Pending => "🟡",
            State::Failed => "🔴",
            State::Offline => "⚫",
            State::Locked => "🔒",
        }
    }
}

/// A table that is not synced, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsyncedTable {
    /// Table name.
    pub name: String,
    /// Why it is not synced.
    pub reason: String,
}

/// A synced table whose capture was found off (an app's migration dropped its triggers) and
/// repaired; the writes made meanwhile are recovered against the remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureRepair {
    /// Table name.
    pub table: String,
    /// What was wrong.
    pub reason: String,
    /// When the repair was found necessary.
    pub found_at: String,
    /// When the missed writes were recovered (`None`: at the next sync that reaches the share).
    pub recovered_at: Option<String>,
    /// Rows recovered as pending changes.
    pub recovered_rows: i64,
}

/// This cache found it was a copy and took a new origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginChange {
    /// The origin it had (its changes made before keep it).
    pub former: String,
    /// What differed.
    pub reason: String,
    /// When (stamp).
    pub at: String,
}

/// A snapshot of a cache's status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `cached` or `direct`.
    pub mode: String,
    /// Why this mode (the `enable_cache` rule, or why the cache cannot work).
    pub mode_reason: String,
    /// Overall state.
    pub state: State,
    /// Local writes not yet pushed.
    pub pending_writes: i64,
    /// Conflicts recorded in the conflict log (as far as this cache has pulled it).
    pub conflicts: i64,
    /// The cache file, if any.
    pub cache_path: Option<PathBuf>,
    /// The remote database.
    pub remote_path: PathBuf,
    /// When the last successful sync finished (RFC 3339), if ever.
    pub last_sync: Option<String>,
    /// The last finished sync run.
    pub last_run: Option<Run>,
    /// Since when the share has been unreachable, if it is.
    pub offline_since: Option<String>,
    /// The configured sync interval.
    pub sync_interval_secs: u64,
    /// Tables that are not synced, with reasons.
    pub unsynced_tables: Vec<UnsyncedTable>,
    /// Tables whose capture had to be repaired, newest first.
    pub capture_repairs: Vec<CaptureRepair>,
    /// Size of the cache file in bytes.
    pub cache_bytes: Option<u64>,
    /// The sync thread or daemon running for this cache, if any (in any process).
    pub worker: Option<String>,
    /// This cache's origin id: the tie-breaker between equal stamps, and the name this client
    /// has in the conflict log (`winner_origin`, `loser_origin`) and the remote's registry.
    pub origin: Option<String>,
    /// The last time this cache found it was a copy (another machine, path or file) and became a
    /// new client, if it ever did.
    pub origin_change: Option<OriginChange>,
    /// Other caches in the cache directory still holding pending writes for this database,
    /// whatever path they were made for. Without this path's cache (none yet, or direct mode)
    /// the database cannot be told from local files: every other cache with pending writes.
    pub other_caches: Vec<OtherCache>,
    /// The last time pending writes of a cache left behind were pushed before this cache or
    /// direct mode took over (or this cache's own, before it was left behind), in words.
    pub handover: Option<String>,
    /// The cache's journal mode (`wal` unless an app that opens the cache chose another).
    pub journal_mode: Option<String>,
    /// Anything else worth saying.
    pub note: Option<String>,
    /// The last time the cache was reconciled with the remote by key (the remote's history broke:
    /// restored from a backup, or declared authoritative), with why and what it moved.
    pub last_reconcile: Option<Run>,
}

impl Status {
    /// The status of a handle in direct mode.
    pub fn direct(config: &Config, mode: &Mode, rule: &str) -> Status {
        let reason = match mode {
            Mode::Direct { reason } => reason.clone(),
            Mode::Cached => rule.to_string(),
        };
        let other_caches: Vec<OtherCache> =
            others::scan(&config.cache_directory, std::path::Path::new(""))
                .into_iter()
                .filter(|o| o.pending_writes > 0)
                .collect();
        Status {
            mode: "direct".into(),
            mode_reason: reason,
            // Writes left in a cache are not synced by anyone in direct mode.
            state: if other_caches.is_empty() {
                State::Success
            } else {
                State::Pending
            },
            pending_writes: 0,
            conflicts: 0,
            cache_path: None,
            remote_path: config.remote_path.clone(),
            last_sync: None,
            last_run: None,
            offline_since: None,
            sync_interval_secs: config.sync_interval.as_secs(),
            unsynced_tables: vec![],
            capture_repairs: vec![],
            cache_bytes: None,
            worker: None,
            origin: None,
            origin_change: None,
            other_caches,
            handover: None,
            journal_mode: None,
            note: Some(
                "reads and writes go directly to the remote database; nothing to sync".into(),
            ),
            last_reconcile: None,
        }
    }
}

/// The handle's status: an inherent method of [`Cache`] written here, so that the handle (a floor
/// below) never calls up into `status`.
impl Cache {
    /// The current status (local files only: never waits on the share).
    pub fn status(&self) -> Result<Status> {
        let config = self.config();
        let mut status = match (self.paths(), self.mode()) {
            (Some(paths), Mode::Cached) => read(&config, paths, self.rule())?,
            (_, mode) => Status::direct(&config, &mode, self.rule()),
        };
        if !self.handovers().is_empty() {
            let said: Vec<String> = self.handovers().iter().map(|h| h.summary()).collect();
            status.handover = Some(said.join("; "));
        }
        if let Some(paused) = self.worker_paused() {
            let paused = if paused { ", paused" } else { "" };
            status.worker = Some(format!(
                "sync thread of process {}{paused}",
                std::process::id()
            ));
        }
        Ok(status)
    }
}

/// Reads the status of the cache at `paths` (which may not exist yet).
pub fn read(config: &Config, paths: &CachePaths, rule: &str) -> Result<Status> {
    let mut s = Status {
        mode: "cached".into(),
        mode_reason: rule.to_string(),
        state: State::Pending,
        pending_writes: 0,
        conflicts: 0,
        cache_path: Some(paths.db.clone()),
        remote_path: config.remote_path.clone(),
        last_sync: None,
        last_run: None,
        offline_since: None,
        sync_interval_secs: config.sync_interval.as_secs(),
        unsynced_tables: vec![],
        capture_repairs: vec![],
        cache_bytes: None,
        worker: crate::handle::worker::worker_running(paths),
        origin: None,
        origin_change: None,
        other_caches: vec![],
        handover: None,
        journal_mode: None,
        note: None,
        last_reconcile: None,
    };
    if !paths.db.exists() {
        if let Some(why) = dir_blocked(&paths.dir) {
            if config.postgres.is_some() {
                // No direct mode for a server: the open fails, naming the directory.
                s.cache_path = None;
                s.state = State::Failed;
                s.mode_reason = format!(
                    "the cache directory {} cannot be created ({why}), and a PostgreSQL server \
                     has no direct mode, so the next open fails; set database.cache_directory to \
                     a directory",
                    paths.dir.display()
                );
                return Ok(s);
            }
            let reason = format!(
                "the cache directory {} cannot be created ({why}), so the next open serves the remote directly; \
                 set database.cache_directory to a directory",
                paths.dir.display()
            );
            return Ok(Status::direct(config, &Mode::Direct { reason }, rule));
        }
        s.other_caches = others::scan(&paths.dir, &paths.db)
            .into_iter()
            .filter(|o| o.pending_writes > 0)
            .collect();
        s.note = Some("the cache has not been created yet: it is made from the remote at the first open or sync".into());
        return Ok(s);
    }
    s.cache_bytes = std::fs::metadata(&paths.db).ok().map(|m| m.len());
    match read_cache(&mut s, paths) {
        Err(LocalError::Locked { source: detail, .. }) => {
            s.state = State::Locked;
            s.note = Some(format!(
                "another program holds the cache ({detail}; an app in PRAGMA locking_mode=EXCLUSIVE \
                 does until it closes its connection): syncs wait and resume when it lets go"
            ));
            Ok(s)
        }
        Err(e) => Err(e.into()),
        Ok(()) => {
            if let Some(mode) = s.journal_mode.as_deref().filter(|m| *m != "wal") {
                s.note = Some(format!(
                    "the cache is in journal mode {mode} (an app that opens it chose it), not WAL: \
                     syncs work, but the app's reads and the sync's writes wait for each other"
                ));
            }
            Ok(s)
        }
    }
}

/// Fills in what the cache file says (one read transaction).
fn read_cache(s: &mut Status, paths: &CachePaths) -> Result<(), LocalError> {
    let sql = |e| LocalError::from_sqlite(&paths.db, e);
    let c = Connection::open_with_flags(
        &paths.db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    s.journal_mode = Some(crate::store::journal_mode(&c).map_err(sql)?);
    // Every figure below from one state of the cache.
    let snapshot = crate::store::read_snapshot(&c).map_err(sql)?;
    s.pending_writes = crate::sync::pending(&c).map_err(sql)?;
    s.origin = c
        .query_row("SELECT origin FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    let remote_id: String = c
        .query_row("SELECT remote_id FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    s.other_caches = others::pending_for(&paths.dir, &paths.db, &remote_id);
    s.handover = metadata::last_note(&c, "handover").map_err(sql)?;
    s.origin_change = crate::store::instance::last_rebound(&c)
        .map_err(sql)?
        .map(|(former, reason, at)| OriginChange { former, reason, at });
    s.conflicts = c
        .query_row("SELECT count(*) FROM sync_conflicts", [], |r| r.get(0))
        .map_err(sql)?;
    s.last_sync = metadata::last_success(&c)
        .map_err(sql)?
        .and_then(|r| r.finished_at);
    s.last_run = metadata::last_finished(&c).map_err(sql)?;
    s.offline_since = metadata::offline_since(&c).map_err(sql)?;
    s.last_reconcile = metadata::last_of_kind(&c, "reconcile").map_err(sql)?;
    let running: bool = c
        .query_row("SELECT count(*) > 0 FROM sync_metadata WHERE status = 'running' AND id = (SELECT max(id) FROM sync_metadata)", [], |r| r.get(0))
        .map_err(sql)?;
    s.unsynced_tables = unsynced(&c).map_err(sql)?;
    s.capture_repairs = repairs(&c).map_err(sql)?;
    drop(snapshot);
    s.state = match s.last_run.as_ref().map(|r| r.status.as_str()) {
        Some("offline") => State::Offline,
        Some("failed") => State::Failed,
        _ if s.pending_writes > 0 || running || !s.other_caches.is_empty() => State::Pending,
        _ => State::Success,
    };
    Ok(())
}

/// Why `dir` cannot be created, when one of its existing ancestors is not a directory. Looks
/// only: `status` creates nothing.
fn dir_blocked(dir: &std::path::Path) -> Option<String> {
    let existing = dir.ancestors().find(|a| a.exists())?;
    (!existing.is_dir()).then(|| format!("{} is not a directory", existing.display()))
}

fn repairs(c: &Connection) -> rusqlite::Result<Vec<CaptureRepair>> {
    c.prepare(
        "SELECT tbl, reason, found_at, done_at, recovered FROM sync_repairs ORDER BY found_at DESC, tbl",
    )?
    .query_map([], |r| {
        Ok(CaptureRepair {
            table: r.get(0)?,
            reason: r.get(1)?,
            found_at: r.get(2)?,
            recovered_at: r.get(3)?,
            recovered_rows: r.get(4)?,
        })
    })?
    .collect()
}

fn unsynced(c: &Connection) -> rusqlite::Result<Vec<UnsyncedTable>> {
    let mut out: Vec<UnsyncedTable> = c
        .prepare(
            "SELECT name, coalesce(reason, '') FROM sync_tables WHERE synced = 0 ORDER BY name",
        )?
        .query_map([], |r| {
            Ok(UnsyncedTable {
                name: r.get(0)?,
                reason: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let recorded: Vec<(String, bool, String)> = c
        .prepare("SELECT name, synced, signature FROM sync_tables")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for e in crate::schema::read(c)? {
        if let Some((_, true, sig)) = recorded.iter().find(|r| r.0 == e.table.name) {
            let synced = crate::schema::Table::columns_from_signature(sig).unwrap_or_default();
            for col in e
                .table
                .columns
                .iter()
                .filter(|l| !synced.iter().any(|s| s.name == l.name))
            {
                out.push(UnsyncedTable {
                    name: format!("{}.{}", e.table.name, col.name),
                    reason: "column exists only in the cache: its values are not synced (add it on the remote database)".into(),
                });
            }
        }
        if !recorded.iter().any(|r| r.0 == e.table.name) {
            out.push(UnsyncedTable {
                name: e.table.name,
                reason: "exists only in the cache (create it on the remote database to sync it)"
                    .into(),
            });
        }
    }
    Ok(out)
}
