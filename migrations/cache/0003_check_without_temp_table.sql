-- The capture triggers insert into sync_tracking on every write the app makes, and every insert
-- checks the table's CHECK constraints. `op IN ('I', 'U', 'D', 'X')` is evaluated by building a
-- temporary B-tree of the four values for each inserted entry (EXPLAIN shows an OpenEphemeral in
-- every trigger program): ~2 µs of the ~7 µs a tracked insert cost inside a transaction
-- (BENCHMARKS.md, Capture). The same constraint written as comparisons costs nothing measurable.
-- A CHECK cannot be altered in place, so the table is rebuilt; it holds only pending entries.
-- The capture triggers on the app's tables name sync_tracking and stay installed: with
-- legacy_alter_table the rename neither rewrites nor re-checks them (they would fail the check
-- for the moment the table is gone); they work on the rebuilt table, which has the same columns.
PRAGMA legacy_alter_table = ON;
CREATE TABLE sync_tracking_rebuilt (
    tbl      TEXT    NOT NULL,
    pk       TEXT    NOT NULL,   -- JSON array of the key's values (see sql.rs)
    op       TEXT    NOT NULL CHECK (op = 'I' OR op = 'U' OR op = 'D' OR op = 'X'),
    stamp    TEXT    NOT NULL,   -- HLC stamp of the latest local change of the row
    seq      INTEGER NOT NULL DEFAULT 1, -- bumped on every change: a push marks only what it sent
    seen_rev INTEGER NOT NULL,   -- pull cursor when the row was first changed: later remote changes conflict
    ord      NOT NULL DEFAULT '', -- the row's first key value: the outbox's order (migration 2)
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
INSERT INTO sync_tracking_rebuilt (tbl, pk, op, stamp, seq, seen_rev, ord)
    SELECT tbl, pk, op, stamp, seq, seen_rev, ord FROM sync_tracking;
DROP TABLE sync_tracking;
ALTER TABLE sync_tracking_rebuilt RENAME TO sync_tracking;
CREATE INDEX sync_tracking_order ON sync_tracking (tbl, ord);
PRAGMA legacy_alter_table = OFF;
