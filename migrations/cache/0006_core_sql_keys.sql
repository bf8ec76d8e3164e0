-- Keys in core SQL (README, Known limits: the floor). Apps open the cache with their own SQLite,
-- which may be as old as 3.7.17 or built without JSON functions; every object sharecache keeps in
-- the cache must be one such a SQLite can read, and the capture triggers may call only functions
-- it has:
--
-- 1. Key text is no longer the JSON array `json_array()` built, but the key's values as
--    `quote()` writes them, joined by `,` (src/sql/mod.rs says why REALs are written
--    otherwise). Pending entries and the local conflict log are converted by
--    sharecache_rekey(), the Rust conversion, registered by the migration runner.
-- 2. sync_tracking was a WITHOUT ROWID table (SQLite 3.8.2): a SQLite older than that cannot
--    open a database that has one ("malformed database schema"). Rebuilt as a rowid table whose
--    one index, unique on (tbl, ord, pk), is both the outbox's order and the entry's key (`ord`
--    is a function of `pk`, so it is as unique as (tbl, pk)); a second unique index on (tbl, pk)
--    would add a third B-tree to every captured write (BENCHMARKS.md, Capture). Entries are
--    looked up by (tbl, ord, pk); the triggers update-or-insert without UPSERT (3.24).
--
-- As in migration 3, the renames neither rewrite nor re-check the capture triggers
-- (legacy_alter_table); the cache reinstalls them in the same transaction.
PRAGMA legacy_alter_table = ON;

CREATE TABLE sync_tracking_rebuilt (
    tbl      TEXT    NOT NULL,
    pk       TEXT    NOT NULL,   -- key text: the key's values as quote() writes them (see src/sql/mod.rs)
    op       TEXT    NOT NULL CHECK (op = 'I' OR op = 'U' OR op = 'D' OR op = 'X'),
    stamp    INTEGER NOT NULL,   -- clock (ms since the Unix epoch) at the latest local change of the row
    seq      INTEGER NOT NULL DEFAULT 1, -- bumped on every change: a push marks only what it sent
    seen_rev INTEGER NOT NULL,   -- pull cursor when the row was first changed: later remote changes conflict
    ord      NOT NULL DEFAULT ''  -- the row's first key value: the outbox's order (migration 2)
);
INSERT INTO sync_tracking_rebuilt (tbl, pk, op, stamp, seq, seen_rev, ord)
    SELECT tbl, sharecache_rekey(pk), op, stamp, seq, seen_rev, ord FROM sync_tracking;
DROP TABLE sync_tracking;
ALTER TABLE sync_tracking_rebuilt RENAME TO sync_tracking;
CREATE UNIQUE INDEX sync_tracking_order ON sync_tracking (tbl, ord, pk);

UPDATE sync_conflicts SET pk = sharecache_rekey(pk);

PRAGMA legacy_alter_table = OFF;
