//! The words the remote-store interface ([`super::RemoteStore`]) speaks: versions of rows as a
//! change log records them, what a fetch of changes returns, what a cache knows of the remote's
//! history, and what a snapshot produced. Every backend returns these, whatever it stores.

use rusqlite::types::Value;

/// What a sync needs to know about the remote before deciding there is nothing to do.
///
/// Equal fingerprints mean nothing on the remote needs pulling: no new change-log entry (`rev`),
/// no schema change (`schema_version`) and no new conflict-log entry (`conflicts`: a conflict
/// another client lost while pushing changes no row, so it does not move `rev`).
///
/// ```
/// # use sharecache::remote::{Fingerprint, Trail};
/// let a = Fingerprint { rev: 7, schema_version: 3, conflicts: 0, trail: Trail::Intact };
/// let b = Fingerprint { conflicts: 1, ..a };
/// assert_ne!(a, b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// The change log's last revision.
    pub rev: i64,
    /// SQLite's schema cookie.
    pub schema_version: i64,
    /// The conflict log's last id (0 when empty).
    pub conflicts: i64,
    /// Whether the remote still holds what the cache knows of it ([`Mark`]).
    pub trail: Trail,
}

/// What a cache knows of the remote's history, checked by every full fingerprint: the newest
/// change-log entry it has seen or written, and the remote's generation when it last followed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    /// Revision of that entry (0: nothing known yet, nothing to check).
    pub rev: i64,
    /// Its stamp.
    pub stamp: String,
    /// Its origin.
    pub origin: String,
    /// The id the write that logged it drew ([`EntryId::write_id`]).
    pub write_id: Option<i64>,
    /// The remote's generation last followed (`None`: not known yet).
    pub generation: Option<String>,
}

/// One change-log entry, named the way a [`Mark`] names it: its revision, the version it logs
/// (stamp and origin), and the write that logged it.
///
/// Why the write: a reconcile logs a version the restore took away again under its own stamp and
/// origin, and after a second restore of the same backup it may land at the very revision it had
/// in the history the first reconcile wrote. A cache whose mark is that earlier entry would find
/// the same revision, stamp and origin and take its trail for intact, missing everything logged
/// below it since (found by the convergence test: a cache kept an older row for good). Each remote
/// write draws a random id and stamps every entry it logs with it, so an entry logged again is
/// another entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryId {
    /// Its revision.
    pub rev: i64,
    /// The version's stamp.
    pub stamp: String,
    /// The version's origin.
    pub origin: String,
    /// The random id of the sharecache write that logged it; `None` for an entry a capture
    /// trigger logged (a direct write), or one logged by a sharecache from before ids were kept.
    pub write_id: Option<i64>,
}

/// Whether the remote's history still contains what a cache knows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trail {
    /// It does (or the cache knows nothing to check yet).
    Intact,
    /// The change log went back in time: its revision is below the cache's mark, or the entry
    /// at the mark's revision is gone or another one (the file was restored from a backup, or
    /// an older copy was put at its path). Changes the cache saw or wrote may be missing.
    WentBack,
    /// An admin declared the remote's current content authoritative (a new generation).
    Declared,
}

impl Trail {
    /// Whether incremental sync can go on from the cache's cursor.
    pub fn is_intact(self) -> bool {
        self == Trail::Intact
    }
}

/// Origin recorded for changes written directly on the remote, not through a sharecache push.
pub const DIRECT_ORIGIN: &str = "direct";

/// A row's version as recorded in the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Table name.
    pub tbl: String,
    /// Key text.
    pub pk: String,
    /// Revision of the change.
    pub rev: i64,
    /// Stamp of the version.
    pub stamp: String,
    /// Origin of the version.
    pub origin: String,
    /// Whether the row is deleted (a tombstone).
    pub deleted: bool,
    /// The id of the write that logged this entry ([`EntryId::write_id`]); ignored when
    /// appending (the writer sets its own).
    pub write_id: Option<i64>,
}

impl Version {
    /// How a [`Mark`] names this entry.
    pub fn entry_id(&self) -> EntryId {
        EntryId {
            rev: self.rev,
            stamp: self.stamp.clone(),
            origin: self.origin.clone(),
            write_id: self.write_id,
        }
    }
}

/// What the log holds for one row of a batch: its newest entry in the searched range, and
/// whether the batch's own version of it (same origin and stamp) is among the entries — the
/// change was pushed before (its acknowledgement was lost) even if a newer version followed.
#[derive(Debug, Clone)]
pub struct Found {
    /// The newest entry.
    pub newest: Version,
    /// Whether the change being pushed is already logged.
    pub mine_logged: bool,
}

impl Found {
    /// Merges log entry `v` of a key into `found`, read in revision order: it becomes the
    /// newest, and `mine` (it is the version being pushed) sticks once seen. Every backend's
    /// [`super::BatchWriter::newest_versions`] keeps this rule.
    pub fn merge(
        found: &mut std::collections::HashMap<(String, String), Found>,
        key: (String, String),
        v: Version,
        mine: bool,
    ) {
        use std::collections::hash_map::Entry;
        match found.entry(key) {
            Entry::Occupied(mut e) => {
                let f = e.get_mut();
                f.mine_logged |= mine;
                f.newest = v;
            }
            Entry::Vacant(e) => {
                e.insert(Found {
                    newest: v,
                    mine_logged: mine,
                });
            }
        }
    }
}

/// What pruning removed: versions at or below `rev`, none stamped after `stamp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Highest pruned revision.
    pub rev: i64,
    /// Newest stamp of a pruned entry (empty when none).
    pub stamp: String,
}

/// Origin of the stand-in version of a row whose versions were pruned (see [`Pruned`]).
pub const PRUNED_ORIGIN: &str = "pruned";

/// The remote's state as a reconcile starts from it (one consistent read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The change log's last revision.
    pub rev: i64,
    /// How far the log was pruned ([`Pruned::rev`]).
    pub pruned_rev: i64,
    /// The remote's generation (changes when an admin declares it authoritative).
    pub generation: String,
    /// The remote's clock: at or after every stamp its log holds, pruned entries included.
    pub hlc: String,
    /// The newest entry at or below `rev`, `None` when the log is empty.
    pub newest: Option<EntryId>,
}

/// A stretch of the change log, as a pull fetches it ([`super::RemoteStore::changes_since`]).
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The entries, oldest first; a key changed several times in the stretch appears once, at its
    /// newest entry. With the row's values in the shape's column order; `None`: deleted, or of a
    /// table the caller gave no shape for.
    pub entries: Vec<(Version, Option<Vec<Value>>)>,
    /// The revision to set the cursor to when the log is exhausted (the remote's last revision).
    pub tail: Option<i64>,
    /// The cursor is below the pruned part of the log: the cache must be rebuilt.
    pub behind_pruned: bool,
}

/// One losing version, as the remote's conflict log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedConflict {
    /// Its id in the remote's conflict log (ascending; ignored when appending one).
    pub id: i64,
    /// Table.
    pub tbl: String,
    /// Key text.
    pub pk: String,
    /// The winning version's stamp (empty when the winner is unknown).
    pub winner_stamp: String,
    /// The winning version's origin.
    pub winner_origin: String,
    /// The losing version's stamp.
    pub loser_stamp: String,
    /// The losing version's origin.
    pub loser_origin: String,
    /// `upsert` or `delete`.
    pub loser_op: String,
    /// The losing row as JSON ([`crate::sql::row_to_json`]), `None` for a delete.
    pub loser_row: Option<String>,
    /// When it was decided.
    pub decided_at: String,
    /// By which origin.
    pub decided_by: String,
    /// Why.
    pub reason: String,
}

/// A client as the remote's registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    /// Its origin.
    pub origin: String,
    /// Its horizon: the revision below which it needs no change-log entry any more.
    pub pulled_rev: i64,
    /// When it was last seen (a stamp).
    pub last_seen: String,
    /// Its host name.
    pub host: String,
}

/// What a snapshot produced ([`super::RemoteStore::snapshot_into`]).
#[derive(Debug, Clone)]
pub struct CopyInfo {
    /// Bytes copied.
    pub bytes: u64,
    /// The change-log revision the copy is consistent with (0 on a remote never written through
    /// sharecache).
    pub rev: i64,
    /// The remote's identity at the time of the copy.
    pub remote_id: Option<String>,
    /// The newest stamp the remote had ever logged at the time of the copy (its clock).
    pub newest_stamp: Option<String>,
    /// The newest change-log entry at or below `rev`.
    pub newest: Option<EntryId>,
    /// The remote's generation at the time of the copy.
    pub generation: Option<String>,
}

/// A snapshot failed on one side or the other.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the remote failed.
    Remote(super::RemoteError),
    /// Writing the local copy failed.
    Local(std::io::Error),
}
