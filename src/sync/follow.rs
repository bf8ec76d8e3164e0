//! Following the remote's schema from the sync: the change-log triggers of new remote tables,
//! new tables and columns mirrored into the cache, and the shape each synced table moves in
//! (the columns both sides have). Split out of the engine's module, which runs the sync.

use std::collections::HashMap;

use super::snapshot;
use super::{Engine, propagate, write_tx};
use crate::error::Error;
use crate::remote::store::RemoteSchema;
use crate::schema::{self, Sync};
use crate::sql::rows::Shape;
use crate::store::{LocalError, mirror};

impl Engine {
    /// Follows the remote schema: change-log triggers on new remote tables, new tables and
    /// columns into the cache. Returns the number of changes and why a rebuild is needed, if it is.
    pub(super) fn follow_schema(&mut self) -> Result<(usize, Option<String>), Error> {
        let remote = self.remote.as_deref_mut().expect("connected");
        remote.install_capture()?;
        let RemoteSchema {
            entries: remote_entries,
            versions,
        } = remote.schema()?;
        let recorded = mirror::recorded(&self.local).map_err(self.lerr())?;
        let local_names: Vec<String> = schema::read(&self.local)
            .map_err(self.lerr())?
            .into_iter()
            .map(|e| e.table.name)
            .collect();
        let plan = mirror::plan(&remote_entries, &recorded, &local_names);
        if let Some(reason) = plan.rebuild {
            return Ok((0, Some(reason)));
        }
        if plan.is_empty() {
            // The app's schema version travels with the schema (an index, a trigger, a bump).
            write_tx(&self.local, |c| propagate::follow_app_versions(c, versions))
                .map_err(self.lerr())?;
            return Ok((0, None));
        }
        let remote = self.remote.as_deref().expect("connected");
        let (tables, columns) = remote.table_definitions(&plan)?;
        let n = tables.len() + columns.iter().map(|c| c.1.len()).sum::<usize>();
        write_tx(&self.local, |c| {
            c.execute("UPDATE sync_state SET applying = 1", [])?;
            mirror::apply(c, &tables, &columns)?;
            snapshot::register_tables(c, Some(&remote_entries))?;
            propagate::follow_app_versions(c, versions)?;
            c.execute("UPDATE sync_state SET applying = 0", [])?;
            Ok(())
        })
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Error::Local(LocalError::DiskFull {
                path: self.paths.db.clone(),
                source: Some(Box::new(e)),
            }),
            _ => Error::Local(LocalError::FollowSchema {
                path: self.paths.db.clone(),
                source: e,
            }),
        })?;
        Ok((n, None))
    }

    /// How each synced table moves: the columns both sides have, for tables both sides sync
    /// with the same key.
    pub(super) fn shapes(&self) -> Result<HashMap<String, Shape>, Error> {
        let remote = self.remote.as_deref().expect("connected").schema()?.entries;
        let local = schema::read(&self.local).map_err(self.lerr())?;
        let mut shapes = HashMap::new();
        for l in local.iter().filter(|e| e.sync == Sync::Yes) {
            if let Some(r) = remote
                .iter()
                .find(|r| r.table.name == l.table.name && r.sync == Sync::Yes)
            {
                if r.table.pk == l.table.pk {
                    shapes.insert(l.table.name.clone(), Shape::new(&l.table, &r.table));
                }
            }
        }
        Ok(shapes)
    }
}
