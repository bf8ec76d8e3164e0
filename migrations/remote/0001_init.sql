-- sharecache's own tables inside the remote database on the share.
-- Versioned in sharecache_migrations, never PRAGMA user_version (the app's).

-- One row: the remote's identity and its change-log revision counter.
CREATE TABLE sharecache_meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    remote_id  TEXT    NOT NULL,           -- caches record it and refuse any other file
    rev        INTEGER NOT NULL DEFAULT 0, -- last rev handed out; only ever grows
    writer     TEXT,                       -- set only inside a sharecache push transaction
    pruned_rev INTEGER NOT NULL DEFAULT 0, -- tombstones at or below this rev were pruned
    created_at TEXT    NOT NULL
);

-- The change log: one row per changed row (and tombstone), holding its current version.
-- Every change moves the row to a new, higher rev, so "changes since rev N" is a range scan
-- whose cost grows with the number of changed rows, not with the table size.
CREATE TABLE sharecache_log (
    tbl     TEXT    NOT NULL,
    pk      TEXT    NOT NULL,
    rev     INTEGER NOT NULL,
    stamp   TEXT    NOT NULL,
    origin  TEXT    NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sharecache_log_rev ON sharecache_log (rev);

-- Known clients and how far each has pulled (for pruning tombstones).
CREATE TABLE sharecache_clients (
    origin     TEXT PRIMARY KEY,
    pulled_rev INTEGER NOT NULL,
    last_seen  TEXT    NOT NULL,
    host       TEXT
);

-- Every losing version of a conflict, kept.
CREATE TABLE sharecache_conflicts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl           TEXT NOT NULL,
    pk            TEXT NOT NULL,
    winner_stamp  TEXT NOT NULL,
    winner_origin TEXT NOT NULL,
    loser_stamp   TEXT NOT NULL,
    loser_origin  TEXT NOT NULL,
    loser_op      TEXT NOT NULL,
    loser_row     TEXT,
    decided_at    TEXT NOT NULL,
    decided_by    TEXT NOT NULL,
    reason        TEXT NOT NULL
);

-- Tombstones, for pruning the ones every client has pulled.
CREATE INDEX sharecache_log_tombstones ON sharecache_log (rev) WHERE deleted = 1;
