//! The remote-store interface: what the sync needs from wherever the shared data lives, said in
//! rows, versions and revisions — never in a backend's connection or SQL dialect. `sync/` sees a
//! remote only through [`RemoteStore`] and, inside one atomic write, [`BatchWriter`].
//!
//! # The contract every backend gives
//!
//! - **A change log with revisions.** Every change to a synced table — written through
//!   [`BatchWriter::append`] or by anyone writing the backend directly (captured by the
//!   backend's own means, stamped no earlier than the newest stamp the log has seen, origin
//!   [`DIRECT_ORIGIN`](super::DIRECT_ORIGIN)) — gets a revision. Revisions are positive,
//!   increase, and **become visible in order**: once a reader has seen revision `n`, no entry
//!   `≤ n` appears later. ([`RemoteStore::changes_since`] after a cursor never misses one.)
//! - **Atomic writes.** Everything done inside one [`RemoteStore::write`] — row writes, log
//!   entries, conflict records, the revision counter, the client registry — becomes visible
//!   together or not at all. The closure may be run again when the backend retries (it must not
//!   keep state that a retry would double); an error it returns rolls everything back.
//! - **Concurrent-version detection.** Inside a write, [`BatchWriter::newest_versions`] sees every
//!   entry committed before the write began, so a push decides each row against the newest
//!   version that could be concurrent with it. Two writes of the same rows never both decide
//!   against the same old version (writes are serialised per row, at least).
//! - **Pruning horizons.** Each client's horizon is recorded with [`BatchWriter::register`];
//!   [`RemoteStore::register_and_prune`] removes entries at or below the lowest horizon of the
//!   clients seen since a cutoff, and records how far it pruned ([`Pruned`]), so a client whose
//!   cursor is below it is told to rebuild ([`Fetched::behind_pruned`]).
//! - **Idle means idle.** [`RemoteStore::fingerprint`] changes whenever anything a client would
//!   pull changed: a new log entry, a schema change, a new conflict record. Two equal
//!   fingerprints mean nothing to pull; it should cost at most one round trip when nothing
//!   changed. It also checks the cache's [`Mark`]: a remote whose history went back in time
//!   (restored from a backup) or was declared authoritative says so in [`Fingerprint::trail`].
//! - **Identity.** A remote has a stable identity ([`RemoteStore::identity`]); a different
//!   database reached at the same location is never taken for it.
//! - **Errors** are [`RemoteError`]s whose [`kind`](RemoteError::kind) tells the sync whether to
//!   retry (offline, locked) or to stop (corrupt, wrong database, too new).
//!
//! The conformance suite (`tests/conformance/`) checks these on a backend; a new backend
//! passes it before anything else runs on it.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;

use super::RemoteError;
use super::types::{
    ClientEntry, CopyError, CopyInfo, Fetched, Fingerprint, Found, Head, LoggedConflict, Mark,
    Pruned, Version,
};
use crate::schema::{Column, Entry, Table};
use crate::sql::rows::Shape;
use crate::store::mirror::{ColumnFacts, NewTable, Plan};
use crate::store::watch::Refusal;

/// For each `(table, key text)` of a batch, the `(stamp, origin)` of the change about to be
/// pushed ([`BatchWriter::newest_versions`] tells whether that very version is logged already).
pub type Keys = HashMap<(String, String), (String, String)>;

/// The remote's schema as the sync follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSchema {
    /// The app's tables, with whether each is synced.
    pub entries: Vec<Entry>,
    /// The app's schema version and application id (`PRAGMA user_version`, `application_id`).
    pub versions: (i64, i64),
}

/// Schema additions an app made in its cache, to carry to the remote.
#[derive(Debug, Clone)]
pub struct Additions {
    /// New tables (with a key), created as they are.
    pub tables: Vec<Table>,
    /// New columns of existing tables, with how the cache declares them.
    pub columns: Vec<(Table, Vec<Column>, Vec<ColumnFacts>)>,
    /// `(name, table, sql)` of indexes on synced or new tables.
    pub indexes: Vec<(String, String, String)>,
    /// The cache's `user_version`.
    pub user_version: i64,
    /// The cache's `application_id`.
    pub application_id: i64,
}

/// What [`RemoteStore::carry_schema`] did.
#[derive(Debug, Clone)]
pub enum Carry {
    /// The remote refuses a change (a table of the same name with another key); nothing applied.
    Refused(Refusal),
    /// Applied (or found already there). `after`: the remote's tables afterwards.
    Done {
        /// The remote's tables after the change.
        after: Vec<Entry>,
        /// Tables created (or found there and now synced).
        tables: Vec<String>,
        /// Columns added (or found there): `table.column`.
        columns: Vec<String>,
        /// Indexes created.
        indexes: Vec<String>,
    },
}

/// A row write the backend refused for a constraint (UNIQUE, CHECK, NOT NULL, a foreign key):
/// the push retries it after the rest of its batch, then keeps it in the conflict log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A new client to register with a snapshot's revision, in the same critical section as the
/// copy (so nothing it needs can be pruned in between).
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Its origin.
    pub origin: String,
    /// Now (a stamp).
    pub now: String,
    /// Its host name.
    pub host: String,
}

/// Where the shared data lives, as the sync sees it. Object-safe: the engine holds a
/// `Box<dyn RemoteStore>`. See the module docs for the guarantees an implementation gives.
pub trait RemoteStore: Send + std::fmt::Debug {
    /// Where the remote is, for messages and the cache's record of it. Never holds a secret.
    fn location(&self) -> String;

    /// The remote's sharecache identity, `None` when sharecache never set it up.
    fn identity(&self) -> Result<Option<String>, RemoteError>;

    /// Fails with [`RemoteError::WrongDatabase`] unless this is the remote with identity
    /// `expected`; afterwards every full [`fingerprint`](RemoteStore::fingerprint) re-checks it.
    fn check_identity(&mut self, expected: &str) -> Result<(), RemoteError>;

    /// Sets sharecache up on the remote if needed (its tables, identity, capture of direct writes
    /// on every synced table; an older layout brought up to date) and returns the identity.
    fn enroll(&mut self, now: &str) -> Result<String, RemoteError>;

    /// Declares the remote's current content authoritative: a new generation, after which every
    /// client takes the remote's rows and keeps its own newer versions in the conflict log.
    fn declare_authoritative(&mut self, now: &str) -> Result<String, RemoteError>;

    /// Makes the capture of direct writes match the synced tables (after a schema change).
    /// Returns whether anything changed.
    fn install_capture(&mut self) -> Result<bool, RemoteError>;

    /// The cheap "anything to pull?" check, and the check of `mark` (see the module docs).
    /// `before_write`: the caller is about to write, so no shortcut that trusts a cached answer.
    fn fingerprint(&self, before_write: bool, mark: &Mark) -> Result<Fingerprint, RemoteError>;

    /// Forgets a cached fingerprint: the next one is read in full.
    fn forget_fingerprint(&self);

    /// The remote's revision, pruning point, generation and newest entry, read together.
    fn head(&self) -> Result<Head, RemoteError>;

    /// The app's tables and schema versions.
    fn schema(&self) -> Result<RemoteSchema, RemoteError>;

    /// The names of every table and view of the app (the backend's own may be included).
    fn table_names(&self) -> Result<Vec<String>, RemoteError>;

    /// What the cache needs to mirror `plan`'s new tables and columns.
    #[allow(clippy::type_complexity)]
    fn table_definitions(
        &self,
        plan: &Plan,
    ) -> Result<(Vec<NewTable>, Vec<(String, Vec<Column>, Vec<ColumnFacts>)>), RemoteError>;

    /// Carries a cache's schema additions to the remote in one write (idempotent: what the
    /// remote has already is not added again).
    fn carry_schema(&mut self, additions: &Additions) -> Result<Carry, RemoteError>;

    /// Up to `limit` change-log entries after revision `cursor`, with the changed rows' values
    /// for the tables in `shapes` (see [`Fetched`]).
    fn changes_since(
        &self,
        cursor: i64,
        limit: usize,
        shapes: &HashMap<String, Shape>,
    ) -> Result<Fetched, RemoteError>;

    /// Outside a write: what the log's entries with `after < rev` hold for `keys` (see
    /// [`BatchWriter::newest_versions`]).
    fn newest_versions(
        &self,
        after: i64,
        keys: &Keys,
    ) -> Result<HashMap<(String, String), Found>, RemoteError>;

    /// Up to `limit` rows of `shape`'s table in key order (SQLite's `BINARY` order, as
    /// [`crate::sql::rows::cmp_key`] compares), after the key `after` (from the start: `None`);
    /// values in `shape.columns` order. One consistent read per call.
    fn rows_after(
        &self,
        shape: &Shape,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, RemoteError>;

    /// For each key of `table` changed after revision `after`, the stamp of its oldest change
    /// there: `key text → stamp`.
    fn first_changes_since(
        &self,
        table: &str,
        after: i64,
    ) -> Result<HashMap<String, String>, RemoteError>;

    /// The conflict log's records with an id above `after`, in id order.
    fn conflicts_after(&self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError>;

    /// Runs `f` as one atomic write (see the module docs). `f` may run more than once.
    fn write(
        &mut self,
        f: &mut dyn FnMut(&mut dyn BatchWriter) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError>;

    /// Records `client`'s horizon, removes `retire`'s entry, and prunes up to `max` log entries
    /// at or below the lowest horizon of the clients seen after `cutoff` (a stamp). Returns
    /// whether entries below that floor are left for a next time. One write.
    fn register_and_prune(
        &mut self,
        client: &ClientEntry,
        retire: Option<&str>,
        prune: Option<(&str, i64)>,
    ) -> Result<bool, RemoteError>;

    /// Copies the remote into a new SQLite database at `dest` (must not exist): the app's
    /// tables, indexes, views and triggers with their rows, as one consistent snapshot, and
    /// nothing of the backend's own. Reports progress as (done, total). With `register`, the new
    /// client is registered with the snapshot's revision before anything can be pruned past it.
    fn snapshot_into(
        &mut self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
        register: Option<&NewClient>,
    ) -> Result<CopyInfo, CopyError>;

    /// Gives back memory the backend caches (a long sync calls it every few thousand rows).
    fn release_memory(&self);

    /// Rows a push writes per atomic write, given `sync.batch_size`. The share holds its write
    /// lock for a whole write, so the setting bounds it; a backend that holds no lock across a
    /// batch (it numbers at the end) may take more, saving round trips.
    fn batch_rows(&self, configured: usize) -> usize {
        configured
    }
}

/// The operations of one atomic remote write ([`RemoteStore::write`]).
///
/// Revisions are the backend's to give: [`append`](BatchWriter::append) queues an entry and
/// [`finish`](BatchWriter::finish) numbers the write's entries, consecutively and above every
/// entry any reader has seen, and says which revisions they took. (A backend whose writers run
/// concurrently numbers them at the end, under a lock held only for that step.)
pub trait BatchWriter {
    /// How far the log was pruned.
    fn pruned(&mut self) -> Result<Pruned, RemoteError>;

    /// For every key of `keys`, merges into `found` what the entries with `after < rev ≤ upto`
    /// (no upper bound: `None`) hold: the newest, and whether the given version is among them.
    fn newest_versions(
        &mut self,
        after: i64,
        upto: Option<i64>,
        keys: &Keys,
        found: &mut HashMap<(String, String), Found>,
    ) -> Result<(), RemoteError>;

    /// The row with this key, in `shape.columns` order.
    fn select(&mut self, shape: &Shape, key: &[Value]) -> Result<Option<Vec<Value>>, RemoteError>;

    /// Writes the row (values in `shape.columns` order), or deletes it (`row`: `None`).
    /// `Ok(Err(Refused))` when a constraint refuses it; nothing of it is written then.
    fn write_row(
        &mut self,
        shape: &Shape,
        key: &[Value],
        row: Option<&[Value]>,
    ) -> Result<Result<(), Refused>, RemoteError>;

    /// The random id this write drew: every entry it appends carries it
    /// ([`EntryId::write_id`](crate::remote::EntryId::write_id)), so an entry logged again, even
    /// at the revision it had before a restore, is another entry to a cache's trail mark.
    fn write_id(&self) -> i64;

    /// Appends `v` to the log (its `rev` and `write_id` are ignored: [`finish`](BatchWriter::finish)
    /// numbers it, and it carries [`write_id`](BatchWriter::write_id)), with the row's values
    /// for a write.
    fn append(
        &mut self,
        v: &Version,
        row: Option<(&[String], &[Value])>,
    ) -> Result<(), RemoteError>;

    /// Makes every revision handed out from now on greater than `rev` (the stretch up to it
    /// stays empty: a pull steps over it). Call it before any append. For a reconcile after a
    /// restore that pushes versions again under their own names (`sync::trail::carry`): they
    /// land above the revisions this cache saw.
    fn skip_to(&mut self, rev: i64) -> Result<(), RemoteError>;

    /// Numbers the entries appended in this write, in append order, and moves the remote's
    /// clock past `newest_stamp`. Returns `(before, last)`: the entries took the revisions
    /// `before + 1 ..= last`, and no other entry has one of them (`before == last`: none
    /// appended; `before` is then the log's last revision as this write sees it). Called once,
    /// after the last append.
    fn finish(&mut self, newest_stamp: &str) -> Result<(i64, i64), RemoteError>;

    /// Appends a losing version to the conflict log (`c.id` is ignored).
    fn log_conflict(&mut self, c: &LoggedConflict) -> Result<(), RemoteError>;

    /// The conflict log's records with an id above `after`, as this write sees them.
    fn conflicts_after(&mut self, after: i64) -> Result<Vec<LoggedConflict>, RemoteError>;

    /// Records a client's horizon in the registry.
    fn register(&mut self, client: &ClientEntry) -> Result<(), RemoteError>;
}
