-- sharecache's own tables inside the local cache file (the app's tables sit beside them).
-- Versioned in sync_migrations, not PRAGMA user_version: that belongs to the app's schema.

-- One row: this cache's identity, its hybrid logical clock and its pull cursor.
-- The capture triggers read and write it, so keep it one small row.
CREATE TABLE sync_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    origin          TEXT    NOT NULL,           -- random per-install id, the tie-breaker
    hlc             TEXT    NOT NULL,           -- newest stamp issued or seen (ISO-8601 UTC, ms)
    applying        INTEGER NOT NULL DEFAULT 0, -- 1 while sharecache itself writes: triggers stay quiet
    pull_rev        INTEGER NOT NULL DEFAULT 0, -- last remote change-log rev applied here
    conflict_cursor INTEGER NOT NULL DEFAULT 0, -- last remote conflict-log id copied here
    remote_id       TEXT    NOT NULL,           -- identity of the remote this cache was made from
    remote_path     TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    snapshot_at     TEXT    NOT NULL
);

-- Pending local changes: at most one entry per row (coalesced by the triggers).
-- op: I insert, U update/upsert, D delete, X "row existed before an INSERT" marker (never pushed).
CREATE TABLE sync_tracking (
    tbl      TEXT    NOT NULL,
    pk       TEXT    NOT NULL,   -- JSON array of the key's values (see sql.rs)
    op       TEXT    NOT NULL CHECK (op IN ('I', 'U', 'D', 'X')),
    stamp    TEXT    NOT NULL,   -- HLC stamp of the latest local change of the row
    seq      INTEGER NOT NULL DEFAULT 1, -- bumped on every change: a push marks only what it sent
    seen_rev INTEGER NOT NULL,   -- pull cursor when the row was first changed: later remote changes conflict
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;

-- One row per sync run.
CREATE TABLE sync_metadata (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL DEFAULT 'sync', -- sync, snapshot, rebuild
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    status      TEXT    NOT NULL,                -- running, success, failed, offline
    pushed      INTEGER NOT NULL DEFAULT 0,
    pulled      INTEGER NOT NULL DEFAULT 0,
    conflicts   INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER,
    error       TEXT
);

-- Local copy of the remote conflict log (readable offline).
CREATE TABLE sync_conflicts (
    id            INTEGER PRIMARY KEY,  -- same id as on the remote
    tbl           TEXT NOT NULL,
    pk            TEXT NOT NULL,
    winner_stamp  TEXT NOT NULL,
    winner_origin TEXT NOT NULL,
    loser_stamp   TEXT NOT NULL,
    loser_origin  TEXT NOT NULL,
    loser_op      TEXT NOT NULL,        -- upsert or delete
    loser_row     TEXT,                 -- the losing row as JSON (NULL for a delete)
    decided_at    TEXT NOT NULL,
    decided_by    TEXT NOT NULL,        -- origin of the client whose sync decided it
    reason        TEXT NOT NULL         -- 'newer' (stamp order) or why the remote rejected the write
);

-- Which tables are synced, and why not.
CREATE TABLE sync_tables (
    name       TEXT PRIMARY KEY,
    synced     INTEGER NOT NULL,
    reason     TEXT,
    signature  TEXT NOT NULL            -- columns and key, to notice schema changes
);
