//! The PostgreSQL server as a [`RemoteStore`] (issue 16): the same contract as the share
//! (`remote/store.rs`), kept by the server's own means — `sharecache.finish` numbers a write's
//! entries under the meta row's lock at its end and refuses a write that a concurrent one
//! overtook, row locks serialise writers per row, REPEATABLE READ gives the snapshot one
//! consistent view.

use std::collections::HashMap;
use std::path::Path;

use postgres::IsolationLevel;
use postgres::types::Type;
use rusqlite::types::Value;

use super::reads;
use super::schema as pg_schema;
use super::server::Postgres;
use super::types::describe;
use super::writer::Writer;
use super::{PgError, migrate};
use crate::error_kind::ErrorKind;
use crate::remote::store::{Additions, BatchWriter, Carry, Keys, NewClient, RemoteSchema};
use crate::remote::{
    ClientEntry, CopyError, CopyInfo, EntryId, Fetched, Fingerprint, Found, Head, LoggedConflict,
    Mark, RemoteError, RemoteStore, Trail,
};
use crate::schema::Column;
use crate::sql::rows::Shape;
use crate::store::mirror::{ColumnFacts, NewTable, Plan};

/// Times a write is run again after a deadlock or serialisation failure.
const WRITE_TRIES: usize = 5;

impl Postgres {
    pub(super) fn has_schema(c: &mut postgres::Client) -> Result<bool, PgError> {
        Ok(
            c.query_one("SELECT to_regclass('sharecache.meta') IS NOT NULL", &[])?
                .get(0),
        )
    }

    /// The synced tables' names.
    fn synced(&self, c: &mut postgres::Client) -> Result<Vec<String>, PgError> {
        Ok(pg_schema::entries(c, &self.schema)?
            .into_iter()
            .filter(|e| e.sync == crate::schema::Sync::Yes)
            .map(|e| e.table.name)
            .collect())
    }

    fn wrong(&self, expected: &str, found: &str) -> RemoteError {
        RemoteError::WrongDatabase {
            path: self.location().into(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        }
    }

    /// Server columns and key columns of `shape`.
    fn shape_columns(
        &self,
        c: &mut postgres::Client,
        shape: &Shape,
    ) -> Result<(Vec<super::types::Column>, Vec<super::types::Column>), PgError> {
        let all = describe(c, &self.schema, &shape.table)?;
        reads::shape_columns(&shape.table, &all, shape)
    }
}

impl RemoteStore for Postgres {
    fn location(&self) -> String {
        Postgres::location(self)
    }

    fn identity(&self) -> Result<Option<String>, RemoteError> {
        self.with(|c| {
            if !Self::has_schema(c)? {
                return Ok(None);
            }
            Ok(
                c.query_opt("SELECT remote_id FROM sharecache.meta WHERE id = 1", &[])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn check_identity(&mut self, expected: &str) -> Result<(), RemoteError> {
        match self.identity()? {
            Some(found) if found == expected => {
                self.expected = Some(expected.to_owned());
                Ok(())
            }
            found => Err(self.wrong(expected, found.as_deref().unwrap_or("none"))),
        }
    }

    fn enroll(&mut self, now: &str) -> Result<String, RemoteError> {
        let id = crate::clock::new_origin();
        self.with(|c| {
            migrate::migrate(c, &id, now)?;
            Ok(())
        })?;
        self.install_capture()?;
        self.identity()?.ok_or_else(|| RemoteError::Server {
            location: self.location(),
            kind: ErrorKind::Remote,
            detail: "sharecache's schema vanished right after it was set up".into(),
        })
    }

    fn declare_authoritative(&mut self, now: &str) -> Result<String, RemoteError> {
        if self.identity()?.is_none() {
            return Err(RemoteError::Server {
                location: self.location(),
                kind: ErrorKind::Remote,
                detail: "sharecache never set this database up, so no client follows it; nothing \
                         to declare"
                    .into(),
            });
        }
        let generation = format!("{now} {}", crate::clock::new_origin());
        self.with(|c| {
            c.execute(
                "UPDATE sharecache.meta SET generation = $1 WHERE id = 1",
                &[&generation],
            )?;
            Ok(())
        })?;
        tracing::warn!(remote = %self.location(), generation, "remote declared authoritative");
        Ok(generation)
    }

    fn install_capture(&mut self) -> Result<bool, RemoteError> {
        let schema = self.schema.clone();
        self.with(|c| {
            let missing: Vec<String> = c
                .query(
                    "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT EXISTS \
                     (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'sharecache_capture')",
                    &[&schema],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let synced = self.synced(c)?;
            let mut changed = false;
            for table in missing.iter().filter(|t| synced.contains(t)) {
                super::log::install_triggers(c, &schema, table)?;
                changed = true;
            }
            Ok(changed)
        })
    }

    fn fingerprint(&self, _before_write: bool, mark: &Mark) -> Result<Fingerprint, RemoteError> {
        let r = self.with_retried(|c| {
            Ok(c.query_typed_one(
                "SELECT rev, schema_hash, conflicts, pruned_rev, generation, remote_id, mark_stamp, \
                 mark_origin, mark_write FROM sharecache.fingerprint($1, $2)",
                &[(&self.schema, Type::TEXT), (&mark.rev, Type::INT8)],
            )?)
        })?;
        let (rev, pruned_rev): (i64, i64) = (r.get(0), r.get(3));
        self.schema_seen(r.get(1));
        let generation: String = r.get(4);
        let remote_id: String = r.get(5);
        if let Some(expected) = &self.expected
            && *expected != remote_id
        {
            return Err(self.wrong(expected, &remote_id));
        }
        let entry: Option<(String, String)> = r
            .get::<_, Option<String>>(6)
            .zip(r.get::<_, Option<String>>(7));
        let entry_write: Option<i64> = r.get(8);
        let trail = if mark.generation.as_deref().is_some_and(|g| g != generation) {
            Trail::Declared
        } else if mark.rev == 0 || (mark.rev <= pruned_rev && rev >= mark.rev) {
            Trail::Intact
        } else if rev < mark.rev {
            Trail::WentBack
        } else {
            match entry {
                Some((s, o))
                    if s == mark.stamp && o == mark.origin && entry_write == mark.write_id =>
                {
                    Trail::Intact
                }
                _ => Trail::WentBack,
            }
        };
        Ok(Fingerprint {
            rev,
            schema_version: r.get(1),
            conflicts: r.get(2),
            trail,
        })
    }

    fn forget_fingerprint(&self) {
        // Nothing cached: every fingerprint asks the server (one round trip).
    }

    fn head(&self) -> Result<Head, RemoteError> {
        self.with(|c| {
            let rev: i64 = c.query_typed_one("SELECT sharecache.head()", &[])?.get(0);
            let m = c.query_typed_one(
                "SELECT pruned_rev, generation, hlc FROM sharecache.meta WHERE id = 1",
                &[],
            )?;
            let newest = c
                .query_typed_opt(
                    "SELECT rev, stamp, origin, write_id FROM sharecache.log WHERE rev <= $1 \
                     ORDER BY rev DESC LIMIT 1",
                    &[(&rev, Type::INT8)],
                )?
                .map(|r| EntryId {
                    rev: r.get(0),
                    stamp: r.get(1),
                    origin: r.get(2),
                    write_id: r.get(3),
                });
            Ok(Head {
                rev,
                pruned_rev: m.get(0),
                generation: m.get(1),
                hlc: m.get(2),
                newest,
            })
        })
    }

    fn schema(&self) -> Result<RemoteSchema, RemoteError> {
        // Kept while the fingerprint's schema hash stays the same (see `Postgres::schema_read`);
        // before any fingerprint (hash 0) always read.
        let hash = self.described.borrow().0;
        if hash != 0
            && let Some(read) = self.schema_read.borrow().as_ref()
        {
            return Ok(read.clone());
        }
        let read = self.with(|c| {
            let entries = pg_schema::entries(c, &self.schema)?;
            let versions = c
                .query_typed_opt(
                    "SELECT user_version, application_id FROM sharecache.meta WHERE id = 1",
                    &[],
                )
                .or_else(|e| match e.code() {
                    // sharecache not set up here yet.
                    Some(c) if *c == postgres::error::SqlState::UNDEFINED_TABLE => Ok(None),
                    _ => Err(e),
                })?
                .map_or((0, 0), |r| (r.get(0), r.get(1)));
            Ok(RemoteSchema { entries, versions })
        })?;
        if hash != 0 {
            *self.schema_read.borrow_mut() = Some(read.clone());
        }
        Ok(read)
    }

    fn table_names(&self) -> Result<Vec<String>, RemoteError> {
        self.with(|c| pg_schema::table_names(c, &self.schema))
    }

    fn table_definitions(
        &self,
        plan: &Plan,
    ) -> Result<(Vec<NewTable>, Vec<(String, Vec<Column>, Vec<ColumnFacts>)>), RemoteError> {
        self.with(|c| {
            let mut tables = Vec::new();
            for t in &plan.new_tables {
                let shape = Shape {
                    table: t.name.clone(),
                    columns: t.column_names(),
                    pk: t.pk.clone(),
                };
                let (cols, keys) = self.shape_columns(c, &shape)?;
                // A table that is not synced is mirrored as the snapshot mirrors it (see
                // super::schema): its rows once when its columns map, else empty.
                let maps = super::types::check(&t.name, &cols).is_ok();
                if !maps || keys.is_empty() {
                    let rows = if maps {
                        reads::all_rows(c, &self.schema, &t.name, &cols)?
                    } else {
                        Vec::new()
                    };
                    tables.push(NewTable {
                        table: t.clone(),
                        indexes: vec![],
                        rows,
                    });
                    continue;
                }
                let mut rows = Vec::new();
                loop {
                    let after = rows.last().map(|r: &Vec<Value>| r[..keys.len()].to_vec());
                    let page = reads::page(
                        c,
                        &self.schema,
                        &t.name,
                        &cols,
                        &keys,
                        after.as_deref(),
                        5000,
                    )?;
                    let done = page.len() < 5000;
                    rows.extend(page);
                    if done {
                        break;
                    }
                }
                tables.push(NewTable {
                    table: t.clone(),
                    indexes: vec![],
                    rows,
                });
            }
            // A constant default is the cache's too: the server filled its existing rows with it.
            let mut columns = Vec::new();
            for (t, cols) in &plan.new_columns {
                let facts = describe(c, &self.schema, t)?
                    .into_iter()
                    .map(|col| {
                        let default = col.default.as_deref().and_then(pg_schema::sqlite_default);
                        (col.name, col.not_null, default)
                    })
                    .collect();
                columns.push((t.clone(), cols.clone(), facts));
            }
            Ok((tables, columns))
        })
    }

    fn carry_schema(&mut self, additions: &Additions) -> Result<Carry, RemoteError> {
        let out = super::carry::carry(self, additions);
        // A push later in this sync writes the carried columns: read the schema anew.
        self.forget_schema();
        let out = out?;
        self.install_capture()?;
        Ok(out)
    }

    fn changes_since(
        &self,
        cursor: i64,
        limit: usize,
        shapes: &HashMap<String, Shape>,
    ) -> Result<Fetched, RemoteError> {
        self.with(|c| reads::fetch(c, &self.schema, cursor, limit, shapes))
    }

    fn newest_versions(
        &self,
        after: i64,
        keys: &Keys,
    ) -> Result<HashMap<(String, String), Found>, RemoteError> {
        self.with(|c| {
            let mut found = HashMap::new();
            reads::newest_in(c, after, None, keys, &mut found)?;
            Ok(found)
        })
    }

    fn rows_after(
        &self,
        shape: &Shape,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, RemoteError> {
        self.with(|c| {
            let (cols, keys) = self.shape_columns(c, shape)?;
            reads::page(c, &self.schema, &shape.table, &cols, &keys, after, limit)
        })
    }

    fn first_changes_since(
        &self,
        table: &str,
        after: i64,
    ) -> Result<HashMap<String, String>, RemoteError> {
        self.with(|c| {
            Ok(c.query_typed(
                "SELECT pk, min(stamp) FROM sharecache.log WHERE (rev > $1 OR rev IS NULL) AND tbl = $2 \
                 GROUP BY pk",
                &[(&after, Type::INT8), (&table, Type::TEXT)],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
    }

    fn conflicts_after(&self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError> {
        self.with(|c| reads::conflicts_after(c, after))
    }

    fn write(
        &mut self,
        f: &mut dyn FnMut(&mut dyn BatchWriter) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        let location = self.location();
        let schema = self.schema.clone();
        let mut careful = false;
        let mut tries = 0;
        loop {
            tries += 1;
            let mut refused = false;
            let described = self.described.borrow().1.clone();
            let mut learned = None;
            let out = self.with(|c| {
                let mut tx = c.transaction()?;
                let result = {
                    let mut w = Writer::new(&mut tx, &schema, location.clone(), careful, described);
                    let r = f(&mut w).and_then(|()| w.end());
                    refused = w.refused_flush;
                    learned = Some(std::mem::take(&mut w.described));
                    r
                };
                match result {
                    Ok(()) => {
                        tx.commit()?;
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(Err(e)),
                }
            });
            match (&out, learned) {
                (Ok(Ok(())), Some(learned)) => self.described.borrow_mut().1 = learned,
                // A failed write may have failed for a stale description: read it again.
                _ => self.described.borrow_mut().1.clear(),
            }
            let err = match out {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) | Err(e) => e,
            };
            if refused && !careful {
                careful = true;
                continue;
            }
            if err.kind() == ErrorKind::Locked && tries < WRITE_TRIES {
                tracing::debug!(error = %err, tries, "PostgreSQL write retried");
                continue;
            }
            return Err(err);
        }
    }

    fn register_and_prune(
        &mut self,
        client: &ClientEntry,
        retire: Option<&str>,
        prune: Option<(&str, i64)>,
    ) -> Result<bool, RemoteError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            reads::register(&mut tx, client)?;
            if let Some(former) = retire {
                tx.execute(
                    "DELETE FROM sharecache.clients WHERE origin = $1",
                    &[&former],
                )?;
            }
            let more = match prune {
                None => false,
                Some((cutoff, max)) => {
                    let floor: Option<i64> = tx
                        .query_one(
                            "SELECT min(pulled_rev) FROM sharecache.clients WHERE last_seen > $1",
                            &[&cutoff],
                        )?
                        .get(0);
                    match floor {
                        None => false,
                        Some(floor) => super::prune::prune(&mut tx, floor, max)?,
                    }
                }
            };
            tx.commit()?;
            Ok(more)
        })
    }

    fn snapshot_into(
        &mut self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
        register: Option<&NewClient>,
    ) -> Result<CopyInfo, CopyError> {
        super::snapshot::copy(self, dest, progress, register)
    }

    fn release_memory(&self) {
        // The server holds the data; the client keeps nothing between calls.
    }

    /// No lock is held across a batch (the meta row's, from `finish` to COMMIT only): at least
    /// 5,000 rows per write, whatever the share-sized setting.
    fn batch_rows(&self, configured: usize) -> usize {
        configured.max(5_000)
    }
}

/// A read transaction of the snapshot.
pub(super) const SNAPSHOT_ISOLATION: IsolationLevel = IsolationLevel::RepeatableRead;
