//! The sync's part in following schema changes the app made in the cache: refuse what cannot be
//! carried, carry what can ([`super::propagate`]), and recover writes capture missed
//! ([`super::repair`]). What changed is found by `crate::store::watch`, locally.

use std::collections::HashMap;

use super::{Engine, Shape, SyncReport, propagate, repair};
use crate::error::Error;
use crate::schema;
use crate::store::LocalError;
use crate::store::watch::{self, Findings};

impl Engine {
    /// Checks the cache's schema (one local read when unchanged). A refused change fails the
    /// sync with [`LocalError::SchemaRefused`] — unless the remote already made the same change
    /// (the user followed the error's advice): then the sync goes on and follows the remote,
    /// which rebuilds the cache after pushing what it can.
    pub(super) fn watch_local_schema(&mut self) -> Result<Findings, Error> {
        let schema = watch::check(&self.local, &self.clock.now_stamp()).map_err(self.lerr())?;
        if schema.refused.is_empty() {
            return Ok(schema);
        }
        let remote = self.connect()?.schema()?.entries;
        let local = schema::read(&self.local).map_err(self.lerr())?;
        let shape = |entries: &[schema::Entry], name: &str| {
            entries
                .iter()
                .find(|e| e.table.name == name)
                .map(|e| (e.table.column_names(), e.table.pk.clone()))
        };
        let open = schema
            .refused
            .iter()
            .find(|r| shape(&local, &r.table) != shape(&remote, &r.table));
        if let Some(r) = open {
            return Err(Error::Local(LocalError::SchemaRefused {
                table: r.table.clone(),
                change: r.change.clone(),
                remote: self.config.remote_path.display().to_string(),
            }));
        }
        tracing::info!(refused = ?schema.refused, "the remote made the same changes; following it");
        Ok(schema)
    }

    /// Carries the additions `schema` found to the remote, then records the schema as seen.
    pub(super) fn carry_local_schema(
        &mut self,
        schema: &Findings,
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        let remote_name = self.config.remote_path.display().to_string();
        let c = propagate::carry(
            &self.local,
            &self.paths.db,
            self.remote.as_deref_mut().expect("connected"),
            &remote_name,
            schema,
            &self.clock.now_stamp(),
        )?;
        report
            .carried
            .extend(c.tables.into_iter().chain(c.columns).chain(c.indexes));
        watch::record(&self.local, schema.cookie).map_err(self.lerr())?;
        Ok(())
    }

    /// Compares every table queued in `sync_repairs` with the remote and queues what differs.
    pub(super) fn recover_outstanding(
        &mut self,
        shapes: &HashMap<String, Shape>,
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        for table in &watch::outstanding(&self.local).map_err(self.lerr())? {
            let adopt = watch::adopting(&self.local, table).map_err(self.lerr())?;
            let n = match shapes.get(table) {
                Some(shape) => repair::recover(
                    &self.local,
                    &self.paths.db,
                    self.remote.as_deref().expect("connected"),
                    shape,
                    self.config.batch_size.max(500),
                    adopt,
                )?,
                None => {
                    tracing::warn!(table = %table, "capture was repaired but the table is not synced now; nothing to recover against");
                    0
                }
            };
            watch::recovered(&self.local, table, n, &self.clock.now_stamp())
                .map_err(self.lerr())?;
            tracing::warn!(table = %table, rows = n, "writes made while capture was off recovered as pending changes");
            report.repaired.push(table.clone());
            report.recovered += n;
        }
        Ok(())
    }
}
