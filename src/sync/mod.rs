//! One sync: follow the remote schema, push pending local changes, pull remote changes.
//!
//! The engine owns the sync's own connection on the cache and a connection on the remote (kept
//! open between syncs, dropped when the share fails). A sync that finds nothing pending locally
//! and the remote unchanged since the last pull (change-log rev and schema version, one read)
//! stops there. Each run is recorded in `sync_metadata`.

pub mod conflict;
mod conflict_log;
// The crash points' names, for the crash tests (feature `failpoints`): not an app's API.
#[doc(hidden)]
pub mod failpoint;
mod follow;
mod hold;
mod lineage;
mod local_schema;
mod memory;
pub mod metadata;
mod outbox;
mod propagate;
mod pull;
mod push;
mod rebuild;
pub(crate) mod reconcile;
mod registry;
mod repair;
pub(crate) mod snapshot;
mod trail;
mod versions;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::Serialize;

use crate::clock::Clock;
use std::sync::Arc;

use crate::config::{Config, Live};
use crate::error::{Error, ErrorKind};
use crate::remote::{RemoteError, RemoteStore, Trail};
use crate::store::{CachePaths, LocalError, watch};

pub(crate) use crate::sql::rows::Shape;
/// Local write transactions (the store's helper, used throughout the sync as `super::write_tx`).
pub(crate) use crate::store::write_tx;
pub(crate) use lineage::Lineage;
pub(crate) use outbox::{pending, read_salvageable};
pub(crate) use push::{PushCtx, push_unacknowledged};
use registry::REGISTER_EVERY;
pub use trail::Reconciled;

/// Receives progress of long phases (push, pull, snapshot), e.g. to draw a progress bar.
pub trait Progress {
    /// `done` of `total` units of `phase` are finished (`total` 0: unknown).
    fn step(&self, phase: &str, done: u64, total: u64);
}

impl Progress for () {
    fn step(&self, _: &str, _: u64, _: u64) {}
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Rows written to the remote.
    pub pushed: usize,
    /// Rows written to the cache from the remote.
    pub pulled: usize,
    /// Conflicts resolved by this sync (the losing versions are in the conflict log).
    pub conflicts: usize,
    /// Wall time.
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// Nothing to do: nothing pending, remote unchanged.
    pub idle: bool,
    /// Remote changes left for the next sync (their rows changed locally during this one).
    pub deferred: usize,
    /// Pending changes that could not be pushed (their table is not synced right now).
    pub unpushable: usize,
    /// Tables or columns added to the cache from the remote schema.
    pub schema_changes: usize,
    /// Why the cache was rebuilt from the remote, if it was.
    pub rebuilt: Option<String>,
    /// Pending changes that could not be pushed before a rebuild were exported to this file.
    pub exported: Option<PathBuf>,
    /// The cache was compared with the remote by key, and why (the remote's history broke).
    pub reconciled: Option<Reconciled>,
    /// Tables whose capture had been off (an app's migration dropped the triggers) and whose
    /// missed writes this sync recovered by comparing them with the remote.
    pub repaired: Vec<String>,
    /// Rows those recoveries queued as pending changes.
    pub recovered: u64,
    /// Schema changes the app made in the cache that this sync carried to the remote (tables,
    /// `table.column`s, indexes).
    pub carried: Vec<String>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The sync side of a cache.
pub(crate) struct Engine {
    /// The sync's connection on the cache; an empty in-memory one while released.
    local: Connection,
    /// Whether `local` is released: the cache file is reopened at the next sync.
    released: bool,
    /// Whether to release the cache between syncs ([`Engine::release_between_syncs`]).
    release_between: bool,
    paths: CachePaths,
    remote: Option<Box<dyn RemoteStore>>,
    /// The configuration this sync runs with: the version in force when it started.
    config: Arc<Config>,
    /// The handle's configuration, read again at the start of every sync (hot reload).
    live: Live,
    clock: Clock,
    origin: String,
    /// The origins this cache had before it found it was a copy.
    lineage: Lineage,
    /// This cache just took a new origin: register it at the next sync (and retire the former
    /// one when the instance it was copied from cannot be live any more).
    new_origin: Option<NewOrigin>,
    remote_id: String,
    /// Remote schema version the cache last followed (in memory: re-checked after a restart).
    followed_schema: Option<i64>,
    /// Which file the cache path led to when opened (device and inode; volume and file index on
    /// Windows): a file deleted or replaced under a running cache is noticed at the next sync.
    file_id: Option<crate::platform::FileIdentity>,
    /// Syncs in a row that failed on damaged reads (see [`Engine::confirm_damage`]).
    damaged_reads: u32,
    /// When this client last recorded its horizon in the remote registry.
    registered: Option<Instant>,
    /// When this engine last pruned the remote change log (or was opened).
    pruned: Instant,
    /// When this engine last pruned old tombstones from `sync_row_versions` (never: at the next
    /// registration).
    tombstones_pruned: Option<Instant>,
}

/// A new origin to register at the next sync.
#[derive(Debug)]
struct NewOrigin {
    /// The former origin, when the instance that had it is gone (its registry entry goes).
    retire: Option<String>,
}

/// Syncs in a row failing on damaged reads after which the remote is reported corrupt.
const DAMAGED_READS_CORRUPT: u32 = 3;

/// What `clear` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClearReport {
    /// Pending writes pushed before clearing.
    pub pushed: usize,
    /// Pending writes discarded (only with `discard_pending`), exported to `exported`.
    pub discarded: i64,
    /// The file holding the discarded writes.
    pub exported: Option<PathBuf>,
    /// Bytes copied from the remote.
    pub bytes: u64,
}

fn file_id(path: &std::path::Path) -> Option<crate::platform::FileIdentity> {
    crate::platform::file_identity(path).ok()
}

impl Engine {
    /// Opens the sync side of an existing cache.
    pub fn open(paths: CachePaths, live: Live, clock: Clock) -> Result<Engine, LocalError> {
        let config = live.get();
        let local = Engine::open_cache(&paths, &config, &clock)?;
        let (origin, remote_id): (String, String) = local
            .query_row(
                "SELECT origin, remote_id FROM sync_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        // The writes captured while nothing of sharecache ran, folded in short transactions
        // before anything else writes (which would fold them all in one).
        crate::store::journal::fold(&local).map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        // An app may have migrated the cache while nothing of sharecache ran: put capture back
        // before anything else writes (the missed writes are recovered at the next sync).
        watch::check(&local, &clock.now_stamp())
            .map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        let file_id = file_id(&paths.db);
        let lineage = Lineage::read(&local).map_err(|e| LocalError::from_sqlite(&paths.db, e))?;
        Ok(Engine {
            local,
            released: false,
            release_between: false,
            paths,
            remote: None,
            config,
            live,
            clock,
            origin,
            lineage,
            new_origin: None,
            remote_id,
            followed_schema: None,
            file_id,
            damaged_reads: 0,
            registered: None,
            pruned: Instant::now(),
            tombstones_pruned: None,
        })
    }

    /// The cache took a new origin (it is a copy): the next sync registers it on the remote.
    pub fn took_new_origin(&mut self, retire: Option<String>) {
        self.new_origin = Some(NewOrigin { retire });
    }

    /// The sync's own connection on the cache (salvage reads through it: it still reads a cache
    /// file that was deleted), unless released between syncs.
    pub fn local(&self) -> Option<&Connection> {
        (!self.released).then_some(&self.local)
    }

    /// Fails if the cache file was deleted or replaced since it was opened.
    fn check_file(&self) -> Result<(), Error> {
        if file_id(&self.paths.db) != self.file_id {
            return Err(Error::Local(LocalError::Corrupt {
                path: self.paths.db.clone(),
                detail: "the cache file was deleted or replaced while in use".into(),
            }));
        }
        Ok(())
    }

    fn lerr(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| Error::Local(LocalError::from_sqlite(&self.paths.db, e))
    }

    /// Runs one sync and records it in the history.
    pub fn sync(&mut self, progress: &dyn Progress) -> Result<SyncReport, Error> {
        self.config = self.live.get();
        self.acquire()?;
        let result = self.sync_recorded(progress);
        if self.release_between {
            self.release();
        }
        result
    }

    fn sync_recorded(&mut self, progress: &dyn Progress) -> Result<SyncReport, Error> {
        let t0 = Instant::now();
        let started = self.clock.now_stamp();
        let run = metadata::begin(&self.local, "sync", &started).map_err(self.lerr())?;
        let span = tracing::info_span!("sync", cache = %self.paths.db.display());
        let _enter = span.enter();
        let mut result = self.sync_inner(progress);
        if let Ok(r) = &mut result {
            r.duration = t0.elapsed();
        }
        if let Err(e) = &result {
            if matches!(e.kind(), ErrorKind::Offline | ErrorKind::Remote) {
                self.remote = None; // reconnect (and re-check identity) next time
            }
        }
        result = self.confirm_damage(result);
        self.finish_run(
            run,
            t0,
            result.as_ref().map(|r| metadata::Figures {
                pushed: r.pushed,
                pulled: r.pulled,
                conflicts: r.conflicts,
            }),
        )?;
        match &result {
            Ok(r) if !r.idle => tracing::info!(
                pushed = r.pushed,
                pulled = r.pulled,
                conflicts = r.conflicts,
                ms = r.duration.as_millis() as u64,
                "sync done"
            ),
            Ok(_) => tracing::debug!("sync idle: nothing changed"),
            Err(e) => tracing::warn!(error = %e, "sync failed"),
        }
        result
    }

    /// Records the end of history run `run`, begun at `t0`, with its outcome's figures.
    pub(super) fn finish_run(
        &self,
        run: i64,
        t0: Instant,
        outcome: Result<metadata::Figures, &Error>,
    ) -> Result<(), Error> {
        metadata::finish(
            &self.local,
            run,
            &self.clock.now_stamp(),
            t0.elapsed().as_millis(),
            outcome.as_ref().map_err(|e| *e),
        )
        .map_err(self.lerr())
    }

    /// Counts syncs in a row that read damaged data from the remote although a fresh connection
    /// read it fine ([`RemoteError::ReadFailed`], retried as a share failure); from the
    /// [`DAMAGED_READS_CORRUPT`]-th on, reports the remote corrupt.
    fn confirm_damage(&mut self, result: Result<SyncReport, Error>) -> Result<SyncReport, Error> {
        match result {
            Err(Error::Remote(RemoteError::ReadFailed { path, detail })) => {
                self.damaged_reads += 1;
                if self.damaged_reads >= DAMAGED_READS_CORRUPT {
                    Err(Error::Remote(RemoteError::Corrupt {
                        path,
                        detail: format!(
                            "{detail}; {} syncs in a row read damaged data",
                            self.damaged_reads
                        ),
                    }))
                } else {
                    Err(Error::Remote(RemoteError::ReadFailed { path, detail }))
                }
            }
            other => {
                if other.is_ok() {
                    self.damaged_reads = 0;
                }
                other
            }
        }
    }

    /// The remote connection, opened (and its identity checked) if needed.
    fn connect(&mut self) -> Result<&mut dyn RemoteStore, Error> {
        if self.remote.is_none() {
            let mut remote = crate::remote::open(&self.config, &self.origin)?;
            remote.check_identity(&self.remote_id)?;
            // A remote set up by an older sharecache gets this build's tables (once per
            // connection: a read of the migration version when current).
            remote.enroll(&self.clock.now_stamp())?;
            self.remote = Some(remote);
        }
        Ok(self.remote.as_deref_mut().expect("connected"))
    }

    fn pull_rev(&self) -> Result<i64, Error> {
        self.local
            .query_row("SELECT pull_rev FROM sync_state", [], |r| r.get(0))
            .map_err(self.lerr())
    }

    fn sync_inner(&mut self, progress: &dyn Progress) -> Result<SyncReport, Error> {
        self.check_file()?;
        crate::store::check_space(&self.paths)?;
        let mut report = SyncReport::default();
        // Before anything can fail on the remote: every attempt, offline too, folds the
        // journal, so a row written again and again while away keeps one outbox entry.
        crate::store::journal::fold(&self.local).map_err(self.lerr())?;
        let schema = self.watch_local_schema()?;
        let pending = outbox::pending(&self.local).map_err(self.lerr())?;
        let pull_rev = self.pull_rev()?;
        let before_write = pending > 0;
        let mark = trail::read_mark(&self.local).map_err(self.lerr())?;
        let fp = match self.connect()?.fingerprint(before_write, &mark) {
            Err(RemoteError::Replaced { .. }) => {
                // Another file at the path: connect to it afresh, which checks its identity.
                self.remote = None;
                self.connect()?.fingerprint(before_write, &mark)?
            }
            other => other?,
        };
        let schema_version = fp.schema_version;
        if let Some(new) = self.new_origin.take() {
            // Before anything else: until it is registered, pruning may pass this client by.
            if let Err(e) = self.register_new_origin(new.retire.as_deref()) {
                self.new_origin = Some(new);
                return Err(e);
            }
        }
        let conflicts_copied: i64 = self
            .local
            .query_row("SELECT coalesce(max(id), 0) FROM sync_conflicts", [], |r| {
                r.get(0)
            })
            .map_err(self.lerr())?;
        if pending == 0
            && !schema.changed
            && schema.to_recover.is_empty()
            && fp.rev == pull_rev
            && fp.conflicts == conflicts_copied
            && self.followed_schema == Some(schema_version)
            && fp.trail.is_intact()
        {
            report.idle = true;
            return Ok(report);
        }
        if schema.changed {
            self.carry_local_schema(&schema, &mut report)?;
        }
        let mut rebuild = None;
        if self.followed_schema != Some(schema_version) {
            let (changes, reason) = self.follow_schema()?;
            report.schema_changes = changes;
            rebuild = reason;
        }
        let shapes = self.shapes()?;
        if !fp.trail.is_intact() {
            let policy = match fp.trail {
                Trail::Declared => trail::Policy::RemoteWins,
                _ => trail::Policy::KeepAcknowledged,
            };
            report.reconciled = Some(self.reconcile(&shapes, policy, progress)?);
        } else if mark.generation.is_none() {
            let remote = self.remote.as_deref().expect("connected");
            trail::learn_generation(&self.local, &self.paths.db, remote)?;
        }
        let pull_rev = self.pull_rev()?;
        self.recover_outstanding(&shapes, &mut report)?;
        let ctx = push::PushCtx {
            origin: &self.origin,
            lineage: &self.lineage,
            now: self.clock.now_stamp(),
            pulled_rev: outbox::horizon(&self.local, pull_rev).map_err(self.lerr())?,
            host: crate::platform::host_name(),
            batch_size: self.remote.as_deref().map_or(self.config.batch_size, |r| {
                r.batch_rows(self.config.batch_size)
            }),
        };
        let remote = self.remote.as_deref_mut().expect("connected");
        let pushed = push::push(&self.local, &self.paths.db, remote, &shapes, &ctx, progress)?;
        report.pushed = pushed.rows;
        report.conflicts = pushed.conflicts;
        report.unpushable = pushed.unpushable;
        if rebuild.is_none() {
            let pctx = pull::PullCtx {
                local_path: &self.paths.db,
                shapes: &shapes,
                clock: &self.clock,
                max_drift: self.config.max_clock_drift,
                batch_size: self.config.batch_size.max(500),
                copy_conflicts: fp.conflicts != conflicts_copied
                    || pushed.conflicts > 0
                    || report.reconciled.is_some(),
            };
            let pulled = pull::pull(&self.local, remote, &pctx, progress)?;
            report.pulled = pulled.rows;
            report.deferred = pulled.deferred;
            if pulled.behind_pruned {
                rebuild =
                    Some("this cache fell behind the pruned part of the remote change log".into());
            } else if pushed.batches > 0 {
                // Each push batch registers; the log grows with every change, so a client that
                // keeps pushing also prunes it now and then.
                self.registered = Some(Instant::now());
                if self.pruned.elapsed() >= REGISTER_EVERY {
                    self.register(&ctx.host)?;
                }
            } else if self.pull_rev()? != pull_rev
                && (self
                    .registered
                    .is_none_or(|t| t.elapsed() >= REGISTER_EVERY)
                    || self.pruned.elapsed() >= REGISTER_EVERY)
            {
                self.register(&ctx.host)?;
                self.registered = Some(Instant::now());
            }
        }
        if let Some(reason) = rebuild {
            report.exported = self.rebuild(&shapes, &reason, progress)?;
            report.rebuilt = Some(reason);
        }
        self.followed_schema = Some(schema_version);
        Ok(report)
    }
}
