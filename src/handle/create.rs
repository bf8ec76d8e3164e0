//! A cache's first open: made from the remote (the snapshot copied and the client registered
//! under one lease), and the checks an existing cache passes before it is used.

use std::path::Path;

use rusqlite::Connection;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::Result;
use crate::store::{CachePaths, LocalError};
use crate::sync::Progress;
use crate::sync::snapshot;

/// Creates the cache from the remote (called under the cache lock).
pub(super) fn create(
    config: &Config,
    paths: &CachePaths,
    clock: Clock,
    progress: &dyn Progress,
) -> Result<()> {
    let origin = crate::clock::new_origin();
    let mut remote = crate::remote::open(config, &origin)?;
    remote.enroll(&clock.now_stamp())?;
    // Before copying anything: a table the cache cannot hold beside its own makes the copy
    // useless (the same check runs on the copy, which is what the cache is made from).
    let clash = remote
        .table_names()?
        .into_iter()
        .find(|n| crate::schema::LOCAL_INTERNAL.contains(&n.as_str()));
    if let Some(table) = clash {
        return Err(LocalError::NameClash { table }.into());
    }
    snapshot::build(
        remote.as_mut(),
        paths,
        &origin,
        &clock,
        &mut |done, total| progress.step("snapshot", done, total),
    )
}

/// Checks an existing cache: sharecache's tables current (migrating an older cache), and made
/// for this remote path.
pub(super) fn check_cache(c: &Connection, path: &Path, config: &Config) -> Result<()> {
    let sql = |e| LocalError::from_sqlite(path, e);
    match crate::migrate::CACHE.current(c).map_err(sql)? {
        v if v > crate::migrate::CACHE.latest() => {
            return Err(LocalError::TooNew {
                path: path.into(),
                found: v,
                supported: crate::migrate::CACHE.latest(),
            }
            .into());
        }
        0 => {
            return Err(LocalError::Corrupt {
                path: path.into(),
                detail: "sharecache's tables are missing".into(),
            }
            .into());
        }
        v if v < crate::migrate::CACHE.latest() => {
            // The triggers are reinstalled in the same transaction: a migration may change what
            // they must write (migration 3: the clock in milliseconds), and the app's writes
            // must never meet the old triggers on the new tables.
            crate::sync::write_tx(c, |c| {
                crate::migrate::CACHE.apply(c, &crate::clock::format_stamp(chrono::Utc::now()))?;
                snapshot::reinstall_capture(c)
            })
            .map_err(sql)?;
        }
        _ => {}
    }
    let recorded: String = c
        .query_row("SELECT remote_path FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    if Path::new(&recorded) != config.remote_path {
        tracing::warn!(recorded, configured = %config.remote_path.display(), "the cache was made for another path of the remote; its identity is checked at sync");
    }
    Ok(())
}
