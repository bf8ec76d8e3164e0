-- Cheaper capture (BENCHMARKS.md, Capture). The capture triggers run on every write the app
-- makes; two things in them cost more than the rest of the trigger:
--
-- 1. sync_tracking's CHECK `op IN ('I', 'U', 'D', 'X')`: SQLite evaluates an IN-list by building
--    a temporary B-tree of its values, again for each inserted entry (EXPLAIN shows an
--    OpenEphemeral in every trigger program). The same constraint as comparisons costs nothing
--    measurable.
-- 2. The clock as text: every change parsed the last stamp and formatted two new ones. The clock
--    (sync_state.hlc) and the stamps of pending changes (sync_tracking.stamp) now hold the same
--    instants as integer milliseconds since the Unix epoch; sharecache turns them into stamps
--    when it reads them.
--
-- Neither a CHECK nor a column's type can be altered in place, so both tables are rebuilt (one
-- row, and the pending entries). The capture triggers on the app's tables name both tables; with
-- legacy_alter_table the renames neither rewrite nor re-check them (they would fail the check
-- for the moment a table is gone). The cache reinstalls them, for the new clock, in the same
-- transaction as this migration, so no write is captured by the old ones in between.
PRAGMA legacy_alter_table = ON;

CREATE TABLE sync_tracking_rebuilt (
    tbl      TEXT    NOT NULL,
    pk       TEXT    NOT NULL,   -- JSON array of the key's values (see sql.rs)
    op       TEXT    NOT NULL CHECK (op = 'I' OR op = 'U' OR op = 'D' OR op = 'X'),
    stamp    INTEGER NOT NULL,   -- clock (ms since the Unix epoch) at the latest local change of the row
    seq      INTEGER NOT NULL DEFAULT 1, -- bumped on every change: a push marks only what it sent
    seen_rev INTEGER NOT NULL,   -- pull cursor when the row was first changed: later remote changes conflict
    ord      NOT NULL DEFAULT '', -- the row's first key value: the outbox's order (migration 2)
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
INSERT INTO sync_tracking_rebuilt (tbl, pk, op, stamp, seq, seen_rev, ord)
    SELECT tbl, pk, op,
           coalesce(CAST(round((julianday(stamp) - 2440587.5) * 86400000.0) AS INTEGER), 0),
           seq, seen_rev, ord
    FROM sync_tracking;
DROP TABLE sync_tracking;
ALTER TABLE sync_tracking_rebuilt RENAME TO sync_tracking;
CREATE INDEX sync_tracking_order ON sync_tracking (tbl, ord);

CREATE TABLE sync_state_rebuilt (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    origin          TEXT    NOT NULL,           -- random per-install id, the tie-breaker
    hlc             INTEGER NOT NULL,           -- newest instant issued or seen, ms since the Unix epoch
    applying        INTEGER NOT NULL DEFAULT 0, -- 1 while sharecache itself writes: triggers stay quiet
    pull_rev        INTEGER NOT NULL DEFAULT 0, -- last remote change-log rev applied here
    conflict_cursor INTEGER NOT NULL DEFAULT 0, -- last remote conflict-log id copied here
    remote_id       TEXT    NOT NULL,           -- identity of the remote this cache was made from
    remote_path     TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    snapshot_at     TEXT    NOT NULL
);
INSERT INTO sync_state_rebuilt
    SELECT id, origin,
           coalesce(CAST(round((julianday(hlc) - 2440587.5) * 86400000.0) AS INTEGER), 0),
           applying, pull_rev, conflict_cursor, remote_id, remote_path, created_at, snapshot_at
    FROM sync_state;
DROP TABLE sync_state;
ALTER TABLE sync_state_rebuilt RENAME TO sync_state;

PRAGMA legacy_alter_table = OFF;
