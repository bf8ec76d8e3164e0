//! The share as a [`RemoteStore`]: each operation one short transaction of the SQLite file on
//! the share, through the methods of [`Share`].

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;

use super::Share;
use super::batch::{self, Writer};
use crate::remote::store::{Additions, BatchWriter, Carry, Keys, NewClient, RemoteSchema};
use crate::remote::{
    ClientEntry, CopyError, CopyInfo, Fetched, Fingerprint, Found, Head, LoggedConflict, Mark,
    RemoteError, RemoteStore,
};
use crate::schema::Column;
use crate::sql::rows::Shape;
use crate::store::mirror::{self, ColumnFacts, NewTable, Plan};

impl RemoteStore for Share {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn identity(&self) -> Result<Option<String>, RemoteError> {
        Share::identity(self)
    }

    fn check_identity(&mut self, expected: &str) -> Result<(), RemoteError> {
        Share::check_identity(self, expected)
    }

    fn enroll(&mut self, now: &str) -> Result<String, RemoteError> {
        Share::enroll(self, now)
    }

    fn declare_authoritative(&mut self, now: &str) -> Result<String, RemoteError> {
        Share::declare_authoritative(self, now)
    }

    fn install_capture(&mut self) -> Result<bool, RemoteError> {
        self.reconcile_triggers()
    }

    fn fingerprint(&self, before_write: bool, mark: &Mark) -> Result<Fingerprint, RemoteError> {
        Share::fingerprint(self, before_write, mark)
    }

    fn forget_fingerprint(&self) {
        Share::forget_fingerprint(self)
    }

    fn head(&self) -> Result<Head, RemoteError> {
        self.read_head()
    }

    fn schema(&self) -> Result<RemoteSchema, RemoteError> {
        self.read_schema()
    }

    fn table_names(&self) -> Result<Vec<String>, RemoteError> {
        self.read(|c| {
            c.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect()
        })
    }

    fn table_definitions(
        &self,
        plan: &Plan,
    ) -> Result<(Vec<NewTable>, Vec<(String, Vec<Column>, Vec<ColumnFacts>)>), RemoteError> {
        self.read(|c| {
            let tables = plan
                .new_tables
                .iter()
                .map(|t| mirror::read_new_table(c, t))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let columns = plan
                .new_columns
                .iter()
                .map(|(t, cols)| Ok((t.clone(), cols.clone(), mirror::column_facts(c, t)?)))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((tables, columns))
        })
    }

    fn carry_schema(&mut self, additions: &Additions) -> Result<Carry, RemoteError> {
        self.carry(additions)
    }

    fn changes_since(
        &self,
        cursor: i64,
        limit: usize,
        shapes: &HashMap<String, Shape>,
    ) -> Result<Fetched, RemoteError> {
        self.fetch(cursor, limit, shapes)
    }

    fn newest_versions(
        &self,
        after: i64,
        keys: &Keys,
    ) -> Result<HashMap<(String, String), Found>, RemoteError> {
        self.versions_after(after, keys)
    }

    fn rows_after(
        &self,
        shape: &Shape,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, RemoteError> {
        self.page(shape, after, limit)
    }

    fn first_changes_since(
        &self,
        table: &str,
        after: i64,
    ) -> Result<HashMap<String, String>, RemoteError> {
        self.first_changes(table, after)
    }

    fn conflicts_after(&self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError> {
        self.conflicts(after)
    }

    fn write(
        &mut self,
        f: &mut dyn FnMut(&mut dyn BatchWriter) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        self.write_with(|c, path| {
            let mut w = Writer::new(c, path);
            f(&mut w)
        })
    }

    fn register_and_prune(
        &mut self,
        client: &ClientEntry,
        retire: Option<&str>,
        prune: Option<(&str, i64)>,
    ) -> Result<bool, RemoteError> {
        self.write(|c| {
            batch::register(c, client)?;
            if let Some(former) = retire {
                c.execute("DELETE FROM sharecache_clients WHERE origin = ?1", [former])?;
            }
            let Some((cutoff, max)) = prune else {
                return Ok(false);
            };
            let floor: Option<i64> = c.query_row(
                "SELECT min(pulled_rev) FROM sharecache_clients WHERE last_seen > ?1",
                [cutoff],
                |r| r.get(0),
            )?;
            match floor {
                Some(floor) => super::changelog::prune(c, floor, max),
                None => Ok(false),
            }
        })
    }

    fn snapshot_into(
        &mut self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
        register: Option<&NewClient>,
    ) -> Result<CopyInfo, CopyError> {
        self.copy_to(dest, progress, register)
    }

    fn release_memory(&self) {
        // Only memory: a failure changes nothing else, and the next release tries again.
        if let Err(e) = self.conn.release_memory() {
            tracing::debug!(error = %e, "could not release the remote's page cache");
        }
    }
}
