-- The capture appends, sharecache folds (BENCHMARKS.md, Capture: issue 18's last item).
--
-- Until now each capture trigger updated-or-inserted the row's one entry in sync_tracking: without
-- UPSERT (SQLite 3.24; the floor is 3.7.17) that is two statements and two B-trees per captured
-- write, ~6,100 instructions a row more than the one UPSERT it replaced. Now a trigger only
-- appends one event (table, key, I/U/D/X, stamp, pull cursor) to sync_journal: a rowid table with
-- no index and no unique constraint, so the insert cannot conflict (an app's outer
-- `INSERT OR REPLACE` overrides a trigger statement's conflict clause, which rules out
-- `INSERT OR IGNORE`) and writes one B-tree, at its end. sharecache folds the journal into
-- sync_tracking, oldest event first, with the rules the triggers applied (src/store/journal.rs),
-- at the start of every sync, when it opens the cache, and inside each of its own write
-- transactions before it reads or changes sync_tracking. sync_tracking keeps its meaning and its
-- entries: a cache upgraded with pending entries keeps them, and events fold on top of them.
--
-- No CHECK on op: only the triggers write here, and the fold refuses an event it does not know.
CREATE TABLE sync_journal (
    tbl      TEXT    NOT NULL,
    pk       TEXT    NOT NULL,   -- key text, as in sync_tracking
    op       TEXT    NOT NULL,   -- I insert, U update, D delete, X INSERT over an existing row
    stamp    INTEGER NOT NULL,   -- the clock the write ticked (ms since the Unix epoch)
    seen_rev INTEGER NOT NULL    -- pull cursor when written
);
