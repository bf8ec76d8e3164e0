//! Starting over from the remote: `clear`, the in-place rebuild after a destructive schema
//! change, and the export of pending writes that cannot be pushed first (nothing is dropped
//! without being written to a file the user is told about).

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::{Connection, params};

use super::snapshot;
use super::{ClearReport, Engine, Progress, Shape, outbox, write_tx};
use crate::clock::{Clock, stamp_of_ms_sql};
use crate::error::Error;
use crate::schema;
use crate::store::{CachePaths, LocalError};

impl Engine {
    /// Pushes pending writes, then replaces the cache's content with a fresh copy of the remote.
    /// With pending writes that cannot be pushed, refuses — unless `discard_pending`, and then
    /// they are exported to a file first.
    pub fn clear(
        &mut self,
        discard_pending: bool,
        progress: &dyn Progress,
    ) -> Result<ClearReport, Error> {
        self.config = self.live.get();
        // One connection for the whole clear, even when syncs release theirs.
        let release = std::mem::replace(&mut self.release_between, false);
        let result = self.clear_held(discard_pending, progress);
        self.release_between_syncs(release);
        result
    }

    fn clear_held(
        &mut self,
        discard_pending: bool,
        progress: &dyn Progress,
    ) -> Result<ClearReport, Error> {
        let mut report = ClearReport::default();
        let synced = self.sync(progress);
        if let Ok(r) = &synced {
            report.pushed = r.pushed;
        }
        let pending = outbox::pending(&self.local).map_err(self.lerr())?;
        if pending > 0 && !discard_pending {
            let reason = match &synced {
                Err(e) => e.to_string(),
                Ok(_) => "they were written during the clear".to_string(),
            };
            let kind = synced.as_ref().err().map(Error::kind);
            return Err(Error::PendingWrites {
                pending,
                reason,
                kind,
                source: synced.err().map(Box::new),
            });
        }
        // Nothing is discarded unless the remote is there to rebuild from.
        self.connect()?;
        for _ in 0..3 {
            let pending = outbox::pending(&self.local).map_err(self.lerr())?;
            if pending > 0 && discard_pending {
                let (path, n) = self.export_all_pending()?;
                report.discarded += n;
                report.exported = Some(path);
            }
            self.connect()?;
            let remote = self.remote.as_deref_mut().expect("connected");
            let mut p = |done, total| progress.step("snapshot", done, total);
            let rebuilt = snapshot::rebuild_in_place(
                &self.local,
                &self.paths.db,
                remote,
                &self.paths,
                &self.clock,
                &mut p,
            )?;
            match rebuilt {
                Ok(info) => {
                    self.followed_schema = None;
                    report.bytes = info.bytes;
                    return Ok(report);
                }
                Err(snapshot::RebuildBlocked::Pending(_)) => {
                    // The app wrote meanwhile: push that too, then try again.
                    report.pushed += self.sync(progress)?.pushed;
                }
            }
        }
        Err(Error::SyncRunning {
            holder: "the app kept writing during the clear; try again".into(),
        })
    }

    /// Exports every pending write to a file and removes it from the outbox.
    fn export_all_pending(&self) -> Result<(PathBuf, i64), Error> {
        let all = pending_entries(&self.local).map_err(self.lerr())?;
        let path = export_pending(&self.local, &self.paths, &all, &self.clock)
            .map_err(|e| Error::Local(LocalError::from_io(&self.paths.dir, e)))?;
        write_tx(&self.local, |c| {
            c.execute("DELETE FROM sync_tracking", []).map(|_| ())
        })
        .map_err(self.lerr())?;
        tracing::warn!(file = %path.display(), rows = all.len(), "pending writes discarded by clear; exported first");
        Ok((path, all.len() as i64))
    }

    /// Rebuilds the cache in place from the remote. Pending changes that could not be pushed are
    /// exported to a file first (returned), so nothing is lost.
    pub(super) fn rebuild(
        &mut self,
        shapes: &HashMap<String, Shape>,
        reason: &str,
        progress: &dyn Progress,
    ) -> Result<Option<PathBuf>, Error> {
        tracing::warn!(reason, "rebuilding the cache from the remote");
        let exported = self.export_unpushable(shapes)?;
        let remote = self.remote.as_deref_mut().expect("connected");
        let mut p = |done, total| progress.step("snapshot", done, total);
        match snapshot::rebuild_in_place(
            &self.local,
            &self.paths.db,
            remote,
            &self.paths,
            &self.clock,
            &mut p,
        )? {
            Ok(_) => {
                self.followed_schema = None;
                Ok(exported)
            }
            Err(snapshot::RebuildBlocked::Pending(n)) => Err(Error::Local(LocalError::Schema {
                table: "(rebuild)".into(),
                message: format!(
                    "{n} local writes arrived during the rebuild; they will be pushed by the next sync, which retries the rebuild"
                ),
            })),
        }
    }

    /// Moves pending changes of tables that cannot be pushed into a JSON file beside the cache.
    fn export_unpushable(&self, shapes: &HashMap<String, Shape>) -> Result<Option<PathBuf>, Error> {
        let rows = pending_entries(&self.local).map_err(self.lerr())?;
        let stuck: Vec<_> = rows
            .into_iter()
            .filter(|r| !shapes.contains_key(&r.0))
            .collect();
        if stuck.is_empty() {
            return Ok(None);
        }
        let path = export_pending(&self.local, &self.paths, &stuck, &self.clock)
            .map_err(|e| Error::Local(LocalError::from_io(&self.paths.dir, e)))?;
        write_tx(&self.local, |c| {
            for (tbl, pk, _, _) in &stuck {
                // By its whole key (tbl, ord, pk): the index's order value comes from the key.
                match crate::sql::decode_key(pk) {
                    Ok(key) => c.execute(
                        "DELETE FROM sync_tracking WHERE tbl = ?1 AND ord = ?3 AND pk = ?2",
                        params![tbl, pk, crate::sql::order_value(&key)],
                    )?,
                    Err(_) => c.execute(
                        "DELETE FROM sync_tracking WHERE tbl = ?1 AND pk = ?2",
                        params![tbl, pk],
                    )?,
                };
            }
            Ok(())
        })
        .map_err(self.lerr())?;
        tracing::warn!(file = %path.display(), rows = stuck.len(), "pending writes that cannot be pushed were exported");
        Ok(Some(path))
    }
}

/// Every pending change as (table, key text, op, stamp), for an export (the capture journal
/// folded first).
fn pending_entries(c: &Connection) -> rusqlite::Result<Vec<(String, String, String, String)>> {
    crate::store::journal::fold(c)?;
    c.prepare(&format!(
        "SELECT tbl, pk, op, {} FROM sync_tracking WHERE op != 'X'",
        stamp_of_ms_sql("stamp")
    ))?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
    .collect()
}

/// Writes pending changes (with their current row data) as JSON lines to a new file beside the
/// cache; returns its path.
pub(crate) fn export_pending(
    local: &Connection,
    paths: &CachePaths,
    entries: &[(String, String, String, String)],
    clock: &Clock,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let name = format!(
        "pending-export-{}.jsonl",
        clock.now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = paths.dir.join(name);
    let mut f = crate::platform::create_private_file(&path)?;
    for (tbl, pk, op, stamp) in entries {
        let row = schema::read(local)
            .ok()
            .and_then(|es| es.into_iter().find(|e| e.table.name == *tbl))
            .and_then(|e| {
                let key = crate::sql::decode_key(pk).ok()?;
                let shape = Shape {
                    table: tbl.clone(),
                    columns: e.table.column_names(),
                    pk: e.table.pk.clone(),
                };
                let values = shape.select(local, &key).ok()??;
                serde_json::from_str::<serde_json::Value>(&crate::sql::row_to_json(
                    &shape.columns,
                    &values,
                ))
                .ok()
            });
        let line =
            serde_json::json!({ "table": tbl, "key": pk, "op": op, "stamp": stamp, "row": row });
        writeln!(f, "{line}")?;
    }
    f.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_pending_changes_carry_their_stamp_as_text() {
        let c = Connection::open_in_memory().unwrap();
        crate::migrate::CACHE.apply(&c, "t").unwrap();
        c.execute_batch(
            "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
             VALUES (1, 'o', 0, 'r', 'p', 't', 't'); \
             CREATE TABLE t(id INTEGER PRIMARY KEY, v);",
        )
        .unwrap();
        let t = &schema::read(&c).unwrap()[0].table;
        crate::store::capture::install(&c, t).unwrap();
        c.execute("INSERT INTO t VALUES (1, 'a')", []).unwrap();
        crate::store::journal::fold(&c).unwrap();
        let ms: i64 = c
            .query_row("SELECT stamp FROM sync_tracking", [], |r| r.get(0))
            .unwrap();
        let entries = pending_entries(&c).unwrap();
        assert_eq!(
            entries,
            vec![(
                "t".to_string(),
                "1".to_string(),
                "I".to_string(),
                crate::clock::stamp_of_ms(ms)
            )]
        );
        assert!(crate::clock::parse_stamp(&entries[0].3).is_some());
    }
}
