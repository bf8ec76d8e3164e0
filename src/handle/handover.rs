//! No cache is left behind holding writes: before direct mode or a new cache takes over a remote
//! database, the pending writes of the caches made for it (under this path or another one) are
//! pushed, or the open refuses and says why.
//!
//! A new path to a database that already has a cache here is a *move* when the old path no
//! longer leads to that database (the file is gone from a reachable folder, the server answers
//! that it has no such database, or another database is there now): the old cache's pending
//! writes are pushed through the new path, then the new path gets its own cache. Another spelling
//! of the same file, or of the same server (the same database of the same cluster), hands over
//! the same way. It may be a *copy* when the old path still holds the same database (an
//! admin's test copy of production has the same identity): pushing production's writes into it,
//! or anything back, must never happen silently, so the open refuses until the admin says which
//! it is (`sharecache adopt`, [`adopt`]). When the old path cannot be reached, nobody can tell:
//! the open refuses the same way. Caches without pending writes need none of this.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{SYNC_LOCK_WAIT, create};
use crate::clock::Clock;
use crate::config::{Config, Live};
use crate::error::{Error, ErrorKind, Result};
use crate::remote::{self, RemoteError};
use crate::store::others::{self, OtherCache};
use crate::store::{CachePaths, lock, open_local};
use crate::sync::{Engine, metadata};

/// Pending writes of another cache of this database, pushed before it was left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handover {
    /// The cache they were pending in.
    pub cache_path: PathBuf,
    /// The remote path that cache was made for.
    pub made_for: PathBuf,
    /// Rows pushed (conflicts decided at the remote, the losers kept in its conflict log).
    pub pushed: usize,
    /// Why it was left behind.
    pub why: String,
}

impl Handover {
    /// One line for logs, status and history.
    pub fn summary(&self) -> String {
        format!(
            "{} pending writes of the cache {} (made for {}) pushed first: {}",
            self.pushed,
            self.cache_path.display(),
            self.made_for.display(),
            self.why
        )
    }
}

/// The identity of the remote database at the configured path (`None`: not set up yet, so no
/// cache can have been made from it).
fn remote_id(config: &Config) -> Result<Option<String>> {
    let remote = remote::open(config, "handover")?;
    Ok(remote.identity()?)
}

/// What the path a cache was made for leads to now.
enum OldPath {
    /// Not to that database any more: the database moved.
    Moved(String),
    /// Still to the same database: the configured path may be a copy of it.
    Same,
    /// To the very file (or server database) the configured path leads to, spelled another way:
    /// which of the two it is.
    Spelled(&'static str),
    /// Cannot be told (unreachable).
    Unknown(String),
}

fn probe_old(config: &Config, old: &Path, id: &str) -> OldPath {
    if let Some(url) = old.to_str().filter(|p| crate::config::is_postgres_url(p)) {
        return probe_old_server(config, url, id);
    }
    // The same file spelled another way (`//server/share` and `\\server\share`, a symlink):
    // no copy there.
    if let (Ok(a), Ok(b)) = (
        std::fs::canonicalize(old),
        std::fs::canonicalize(&config.remote_path),
    ) {
        if a == b {
            return OldPath::Spelled("file");
        }
    }
    match remote::share::check_exists(old) {
        Err(RemoteError::Missing { .. }) if old.parent().is_some_and(Path::is_dir) => {
            return OldPath::Moved(format!("{} no longer exists", old.display()));
        }
        Err(e) => return OldPath::Unknown(e.to_string()),
        Ok(_) => {}
    }
    let found = remote::Share::open(old, remote::RemoteOptions::from_config(config, "handover"))
        .and_then(|r| r.identity());
    match found {
        Ok(Some(found)) if found == id => OldPath::Same,
        Ok(found) => OldPath::Moved(another_database(old, found)),
        Err(e) => OldPath::Unknown(e.to_string()),
    }
}

fn another_database(old: &Path, found: Option<String>) -> String {
    format!(
        "{} now holds another database ({})",
        old.display(),
        found.unwrap_or_else(|| "not a sharecache database".into())
    )
}

/// [`probe_old`] for a cache made for a PostgreSQL server's database (`url`, as the cache
/// recorded it): the server says the database is gone, or which it is. The same identity in
/// the very database the configured path leads to (the same cluster, the same database) is
/// another spelling of the server; in another database, the configured one may be a copy.
#[cfg(feature = "postgres")]
fn probe_old_server(config: &Config, url: &str, id: &str) -> OldPath {
    use crate::remote::postgres::{AtUrl, Postgres};
    let old = Path::new(url);
    let at = |config: &Config| {
        let target = config.postgres.as_ref().expect("a server's config");
        Postgres::open(target, &config.schema, "handover").probe()
    };
    let Some(old_config) = config.at_server_url(url) else {
        return OldPath::Unknown(format!("{url} is not a PostgreSQL URL sharecache reads"));
    };
    match at(&old_config) {
        Err(e) => OldPath::Unknown(e.to_string()),
        Ok(AtUrl::Missing) => OldPath::Moved(format!(
            "{url} no longer exists (the server has no such database)"
        )),
        Ok(AtUrl::Database { identity, .. }) if identity.as_deref() != Some(id) => {
            OldPath::Moved(another_database(old, identity))
        }
        Ok(AtUrl::Database { instance, .. }) => {
            match config.postgres.as_ref().map(|_| at(config)) {
                Some(Ok(AtUrl::Database { instance: new, .. })) if new == instance => {
                    OldPath::Spelled("database")
                }
                Some(Err(e)) => OldPath::Unknown(e.to_string()),
                _ => OldPath::Same,
            }
        }
    }
}

/// Without PostgreSQL support, a server's database cannot be asked.
#[cfg(not(feature = "postgres"))]
fn probe_old_server(_: &Config, url: &str, _: &str) -> OldPath {
    OldPath::Unknown(format!(
        "{url} is a PostgreSQL server, and this build of sharecache has no PostgreSQL support"
    ))
}

/// Pushes the pending writes of `other` to the remote at `config.remote_path` (the same
/// database: the sync checks its identity), under `other`'s sync lock, and records the
/// hand-over in `other`'s history.
fn push_other(config: &Config, clock: Clock, other: &OtherCache, why: &str) -> Result<Handover> {
    let refuse = |what: String, kind: ErrorKind| Error::OtherCache {
        cache: other.cache_path.clone(),
        made_for: other.made_for.clone(),
        pending: other.pending_writes,
        what,
        kind,
    };
    let paths = CachePaths {
        dir: config.cache_directory.clone(),
        db: other.cache_path.clone(),
        lock: other.cache_path.with_extension("sync-lock"),
    };
    let Some(_guard) = lock::acquire(&paths.lock, SYNC_LOCK_WAIT)
        .map_err(|e| refuse(format!("its sync lock: {e}"), ErrorKind::Local))?
    else {
        return Err(Error::SyncRunning {
            holder: lock::holder(&paths.lock),
        });
    };
    // An older sharecache's cache is brought up to date first, as any open does.
    let conn = open_local(&paths.db, &clock, config.busy_timeout)?;
    create::check_cache(&conn, &paths.db, config)?;
    drop(conn);
    let mut engine = Engine::open(paths.clone(), Live::new(config.clone()), clock)?;
    let report = engine.sync(&()).map_err(|e| {
        let kind = e.kind();
        refuse(
            format!("they could not be pushed to {} ({e}); nothing was changed, retry when the share is reachable", config.remote_path.display()),
            kind,
        )
    })?;
    let sql = |e| crate::store::LocalError::from_sqlite(&paths.db, e);
    // This engine never releases its connection (only `sharecache daemon`'s does).
    let local = engine.local().expect("the engine holds its connection");
    let left = crate::sync::pending(local).map_err(sql)?;
    if left > 0 {
        return Err(refuse(
            format!(
                "{left} of them cannot be pushed (their tables are not synced on the remote now); they stay in that cache"
            ),
            ErrorKind::Other,
        ));
    }
    let handed = Handover {
        cache_path: other.cache_path.clone(),
        made_for: other.made_for.clone(),
        pushed: report.pushed,
        why: why.to_string(),
    };
    metadata::record_event(
        local,
        "handover",
        &clock.now_stamp(),
        report.pushed as i64,
        &format!(
            "pending writes pushed to {} before this cache was left behind: {why}",
            config.remote_path.display()
        ),
    )
    .map_err(sql)?;
    tracing::warn!(summary = %handed.summary(), "pending writes of a cache left behind were pushed");
    Ok(handed)
}

/// Records in the new cache's history what it took over (see [`before_new_cache`]).
pub(super) fn record_taken_over(
    c: &rusqlite::Connection,
    db: &Path,
    clock: &Clock,
    handed: &[Handover],
) -> Result<()> {
    for h in handed {
        let note = format!(
            "took over this database from another cache: {}",
            h.summary()
        );
        metadata::record_event(c, "handover", &clock.now_stamp(), 0, &note)
            .map_err(|e| crate::store::LocalError::from_sqlite(db, e))?;
    }
    Ok(())
}

/// Before serving the remote directly: pushes every cache's pending writes for this database,
/// or refuses while they cannot be pushed.
pub(super) fn before_direct(config: &Config, clock: Clock) -> Result<Vec<Handover>> {
    let dir = &config.cache_directory;
    let own = CachePaths::new(dir, &config.remote_path).db;
    let pending: Vec<OtherCache> = others::scan(dir, Path::new(""))
        .into_iter()
        .filter(|o| o.pending_writes > 0)
        .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let id = match remote_id(config) {
        Ok(id) => id,
        Err(e) => {
            // The cache made for this very path is this database's: it must not be left behind.
            if let Some(o) = pending.iter().find(|o| o.cache_path == own) {
                return Err(Error::OtherCache {
                    cache: o.cache_path.clone(),
                    made_for: o.made_for.clone(),
                    pending: o.pending_writes,
                    what: format!(
                        "enable_cache is off, and they are pushed before direct mode starts, but the remote cannot be reached ({e}); retry when it is, or set enable_cache back on"
                    ),
                    kind: e.kind(),
                });
            }
            return Err(e);
        }
    };
    let Some(id) = id else {
        return Ok(Vec::new());
    };
    let why = "enable_cache is off for this path: reads and writes go directly to the remote";
    pending
        .iter()
        .filter(|o| o.remote_id == id)
        .map(|o| push_other(config, clock, o, why))
        .collect()
}

/// Before creating the cache of `paths` (none exists for this path): hands over the pending
/// writes of the caches made for this database under another path, when it moved; refuses when
/// it may be a copy or nobody can tell.
pub(super) fn before_new_cache(
    config: &Config,
    clock: Clock,
    paths: &CachePaths,
) -> Result<Vec<Handover>> {
    let candidates: Vec<OtherCache> = others::scan(&paths.dir, &paths.db)
        .into_iter()
        .filter(|o| o.pending_writes > 0)
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let Some(id) = remote_id(config)? else {
        return Ok(Vec::new());
    };
    let new = config.remote_path.display();
    let mut handed = Vec::new();
    for o in candidates.iter().filter(|o| o.remote_id == id) {
        let old = o.made_for.display();
        let refuse = |what: String, kind| Error::OtherCache {
            cache: o.cache_path.clone(),
            made_for: o.made_for.clone(),
            pending: o.pending_writes,
            what,
            kind,
        };
        match probe_old(config, &o.made_for, &id) {
            OldPath::Moved(why) => {
                let why = format!("the database moved to {new} ({why})");
                handed.push(push_other(config, clock, o, &why)?);
            }
            OldPath::Spelled(what) => {
                let why = format!("{old} and {new} are the same {what}");
                handed.push(push_other(config, clock, o, &why)?);
            }
            OldPath::Same => {
                return Err(refuse(
                    format!(
                        "{old} still holds that database, so {new} may be a copy of it. If the database \
                         moved and {old} is a stale copy, run `sharecache adopt` to push these writes to \
                         {new}; if {new} is a copy (a test environment), sync them to {old} first \
                         (`sharecache sync` with database.path: {old}), then {new} gets a cache of its own"
                    ),
                    ErrorKind::Config,
                ));
            }
            OldPath::Unknown(e) => {
                return Err(refuse(
                    format!(
                        "{old} cannot be checked ({e}), so nobody can tell whether {new} is the same \
                         database moved or a copy. If it moved, run `sharecache adopt` to push these \
                         writes to {new}; otherwise sync them to {old} when it is reachable"
                    ),
                    ErrorKind::Config,
                ));
            }
        }
    }
    Ok(handed)
}

/// `sharecache adopt`: the admin says the database at `config.remote_path` is the one the other
/// caches of the same identity were made for (moved, whatever its old path still holds): their
/// pending writes are pushed to it, then this path's cache is opened (made if needed) and its
/// history records what it took over. Returns what was pushed (empty: nothing was pending).
pub fn adopt(config: &Config, clock: Clock) -> Result<Vec<Handover>> {
    let own = CachePaths::new(&config.cache_directory, &config.remote_path);
    let Some(id) = remote_id(config)? else {
        return Ok(Vec::new());
    };
    let why = format!(
        "adopted by `sharecache adopt` for {}",
        config.remote_path.display()
    );
    let handed = others::pending_for(&own.dir, &own.db, &id)
        .iter()
        .map(|o| push_other(config, clock, o, &why))
        .collect::<Result<Vec<_>>>()?;
    if !handed.is_empty()
        && crate::store::detect::decide(config.enable_cache, &config.remote_path).cached
    {
        let live = Live::new(config.clone());
        let (paths, app, _engine) = super::Cache::open_cached(&live, clock, None, &())?;
        record_taken_over(&app, &paths.db, &clock, &handed)?;
    }
    Ok(handed)
}
