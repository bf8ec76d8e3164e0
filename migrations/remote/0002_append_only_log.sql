-- The change log becomes append-only: one entry per change, keyed by its rev (the rowid), so a
-- change writes only the log's last page instead of moving an entry inside two B-trees. A row's
-- current version is its newest entry; entries below every client's horizon are pruned.
-- Pushed entries carry the row's values (`image`), so a pull reads the log's tail and nothing
-- else; entries written by the triggers (direct writers) leave it NULL and the pull reads the row.

-- The newest stamp ever logged: a direct write is stamped after it (the remote's own HLC).
ALTER TABLE sharecache_meta ADD COLUMN hlc TEXT NOT NULL DEFAULT '';
-- The newest stamp among the pruned entries: a change made before the pruned range (by a client
-- away longer than the registry remembers) is decided against it (src/sync/push.rs).
ALTER TABLE sharecache_meta ADD COLUMN pruned_hlc TEXT NOT NULL DEFAULT '';
UPDATE sharecache_meta SET hlc = coalesce((SELECT max(stamp) FROM sharecache_log), '');

-- Renamed first, so that the old triggers follow it and no schema entry ever names a missing
-- table while the new log is built; the triggers are reinstalled in the same transaction.
ALTER TABLE sharecache_log RENAME TO sharecache_log_v1;
CREATE TABLE sharecache_log (
    rev     INTEGER PRIMARY KEY,           -- order of the changes; only ever grows
    tbl     TEXT    NOT NULL,
    pk      TEXT    NOT NULL,
    stamp   TEXT    NOT NULL,
    origin  TEXT    NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    image   BLOB                           -- the row as pushed (see src/remote/image.rs), or NULL
);
INSERT INTO sharecache_log (rev, tbl, pk, stamp, origin, deleted)
    SELECT rev, tbl, pk, stamp, origin, deleted FROM sharecache_log_v1 ORDER BY rev;
DROP TABLE sharecache_log_v1;
