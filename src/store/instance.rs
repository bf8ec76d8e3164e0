//! One origin per client instance: a copied cache notices it is a copy and becomes a new client.
//!
//! The origin id names a client's versions (tie-breaker, conflict log, remote registry). A cache
//! copied with its VM, desktop image or profile, or restored from a backup, carries the origin
//! along; two live clients sharing one would each take the other's versions for its own, and an
//! older edit would overwrite a newer one with no conflict-log entry. So the origin is bound to
//! what a copy does not carry: the host (hostname and machine id) and the cache file itself (its
//! path, inode and creation time; not the device number, which some filesystems renumber at every
//! mount). When
//! either differs from what `sync_state` recorded, the cache takes a new origin, keeps the old
//! one in `sync_origins` with the clock at that moment (the pending changes made before are that
//! origin's versions, see `crate::sync::Lineage`), and the next sync registers the new origin.
//!
//! The reads that depend on the OS are `crate::platform`'s (machine id: `/etc/machine-id`,
//! Windows' `MachineGuid`; file index: inode, Windows' file index); where one cannot be done the
//! binding says so in the log and uses what is left.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// Where and what this cache file is: what a copy of it does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Hostname and machine id (`host_identity`).
    pub host: String,
    /// Path and file id of the cache file (`file_identity`).
    pub file: String,
}

/// The cache found it is not the instance its origin belonged to, and took a new origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebound {
    /// The origin the cache had.
    pub former: String,
    /// The origin it has now.
    pub origin: String,
    /// What differed.
    pub reason: String,
    /// The instance the cache was copied from cannot be live any more (same host, and its file is
    /// gone or was replaced by this one): its registry entry can go.
    pub original_gone: bool,
}

/// This machine: `hostname/machine-id`. The machine id tells two machines with one hostname
/// apart (a cloned VM keeps the hostname until someone renames it); where it cannot be read,
/// the error says why and the caller binds to the hostname alone.
pub fn host_identity() -> Result<String, String> {
    let host = crate::platform::host_name();
    crate::platform::host_identity()
        .map(|id| format!("{host}/{id}"))
        .map_err(|e| format!("the machine id cannot be read ({e})"))
}

/// The cache file: its canonical path, its file index (inode) and, where the filesystem records
/// it, its creation time: a file restored after the original was deleted often gets the freed
/// inode back, never its creation time. Not the device or volume number, which some filesystems
/// renumber at every mount.
pub fn file_identity(path: &Path) -> Result<String, String> {
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let shown = canonical.display().to_string();
    let id = crate::platform::file_identity(&canonical)
        .map_err(|e| format!("{shown}: {e}; bound to the path alone"))?;
    let born = std::fs::metadata(&canonical)
        .and_then(|m| m.created())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    Ok(match born {
        Some(d) => format!("{shown}#{}.{}", id.index, d.as_nanos()),
        None => format!("{shown}#{}", id.index),
    })
}

/// The binding of the cache at `path` on this machine, or on the host named by `host` (tests
/// fake a second machine with it).
pub fn current(path: &Path, host: Option<&str>) -> Binding {
    let host = match host {
        Some(h) => h.to_string(),
        None => host_identity().unwrap_or_else(|why| {
            tracing::warn!(%why, "binding the cache's origin to the hostname alone");
            crate::platform::host_name()
        }),
    };
    let file = file_identity(path).unwrap_or_else(|why| {
        tracing::warn!(%why, "binding the cache's origin without the file id");
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    });
    Binding { host, file }
}

/// The path part of a recorded file identity.
fn path_of(file: &str) -> &str {
    file.rsplit_once('#').map_or(file, |(p, _)| p)
}

/// Checks the cache's recorded binding against `now` (inside the caller's write transaction).
/// A cache bound for the first time records it; a cache bound elsewhere takes a new origin.
pub(crate) fn check(
    c: &Connection,
    now: &Binding,
    stamp: &str,
) -> rusqlite::Result<Option<Rebound>> {
    let (origin, hlc, host, file): (String, i64, String, String) = c.query_row(
        "SELECT origin, hlc, bound_host, bound_file FROM sync_state WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    if host.is_empty() && file.is_empty() {
        c.execute(
            "UPDATE sync_state SET bound_host = ?1, bound_file = ?2",
            params![now.host, now.file],
        )?;
        return Ok(None);
    }
    if host == now.host && file == now.file {
        return Ok(None);
    }
    let mut why = Vec::new();
    if host != now.host {
        why.push(format!("another machine ({} instead of {host})", now.host));
    }
    let (old_path, new_path) = (path_of(&file), path_of(&now.file));
    if old_path != new_path {
        why.push(format!("another path ({new_path} instead of {old_path})"));
    } else if file != now.file {
        why.push(format!(
            "another file at {new_path} (copied or restored from a backup)"
        ));
    }
    let reason = format!(
        "this cache is a copy: {}; it became a new client",
        why.join(", ")
    );
    let original_gone = host == now.host && (old_path == new_path || !Path::new(old_path).exists());
    let new = crate::clock::new_origin();
    // A second copy of a copy keeps the older names: each one covers the stamps up to its `upto`.
    let known: Option<i64> = c
        .query_row(
            "SELECT 1 FROM sync_origins WHERE origin = ?1",
            [&origin],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        c.execute(
            "INSERT INTO sync_origins (origin, upto, replaced_at, reason) VALUES (?1, ?2, ?3, ?4)",
            params![origin, hlc, stamp, reason],
        )?;
    }
    c.execute(
        "UPDATE sync_state SET origin = ?1, bound_host = ?2, bound_file = ?3",
        params![new, now.host, now.file],
    )?;
    Ok(Some(Rebound {
        former: origin,
        origin: new,
        reason,
        original_gone,
    }))
}

/// The most recent change of origin, if the cache ever had one: `(former, reason, when)`.
pub fn last_rebound(c: &Connection) -> rusqlite::Result<Option<(String, String, String)>> {
    if !crate::schema::has_table(c, "sync_origins")? {
        return Ok(None);
    }
    c.query_row(
        "SELECT origin, reason, replaced_at FROM sync_origins ORDER BY upto DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::migrate::CACHE.apply(&c, "t").unwrap();
        c.execute(
            "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
             VALUES (1, 'o1', 1000, 'r', 'p', 't', 't')",
            [],
        )
        .unwrap();
        c
    }

    fn at(host: &str, file: &str) -> Binding {
        Binding {
            host: host.into(),
            file: file.into(),
        }
    }

    fn origin(c: &Connection) -> String {
        c.query_row("SELECT origin FROM sync_state", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn the_first_binding_is_recorded_and_the_same_place_keeps_the_origin() {
        let c = cache();
        assert_eq!(check(&c, &at("h/1", "/c/a.db#7"), "s").unwrap(), None);
        assert_eq!(check(&c, &at("h/1", "/c/a.db#7"), "s").unwrap(), None);
        assert_eq!(origin(&c), "o1");
    }

    #[test]
    fn a_copy_on_another_machine_path_or_file_takes_a_new_origin_and_keeps_the_old_one() {
        for (other, gone) in [
            (at("h2/2", "/c/a.db#7"), false),
            (at("h/1", "/nowhere-else/a.db#9"), true),
            (at("h/1", "/c/a.db#8"), true),
        ] {
            let c = cache();
            check(&c, &at("h/1", "/c/a.db#7"), "s").unwrap();
            let r = check(&c, &other, "s2").unwrap().expect("rebound");
            assert_eq!(r.former, "o1");
            assert_ne!(r.origin, "o1");
            assert_eq!(origin(&c), r.origin);
            assert_eq!(r.original_gone, gone, "{other:?}");
            let (former, upto): (String, i64) = c
                .query_row("SELECT origin, upto FROM sync_origins", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((former.as_str(), upto), ("o1", 1000));
            assert_eq!(
                check(&c, &other, "s3").unwrap(),
                None,
                "bound to the new place"
            );
        }
    }
}
