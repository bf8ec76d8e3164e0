-- The cache's schema is watched (src/cache/watch.rs): an app's migration may rebuild a synced
-- table, and the capture triggers go with the old one.
-- `schema_cookie`: the cache's `PRAGMA schema_version` when sharecache last found its schema in
-- order; any other value means someone changed the schema since, and the sync looks closer.
ALTER TABLE sync_state ADD COLUMN schema_cookie INTEGER NOT NULL DEFAULT 0;
-- Tables whose capture was found off, or that the cache started to sync (columns or tables the
-- app added in the cache, carried to the remote): their triggers were reinstalled at once; the writes made
-- meanwhile are recovered by comparing the table with the remote (src/sync/repair.rs) at the
-- next sync that reaches the share (`done_at` NULL until then: it survives a restart).
CREATE TABLE sync_repairs (
    tbl       TEXT    PRIMARY KEY,
    reason    TEXT    NOT NULL,
    found_at  TEXT    NOT NULL,
    done_at   TEXT,
    recovered INTEGER NOT NULL DEFAULT 0,  -- rows queued as pending changes by the repair
    -- 'repair': capture was off (or columns were added); 'adopt': a table created in the cache,
    -- never synced before, so rows only on the remote are pulled, not taken for local deletes.
    mode      TEXT    NOT NULL DEFAULT 'repair'
);
