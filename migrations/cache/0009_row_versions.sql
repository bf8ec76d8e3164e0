-- The version of each synced row the cache holds as acknowledged or pulled: its stamp and origin
-- as the remote's change log has them, and whether it is a delete (a tombstone). Written by
-- sharecache alone — a push's acknowledgement, a pull's apply, a reconcile — in the transaction
-- that already writes the row; the capture triggers never touch it, so the app's writes cost the
-- same. A row the app changed since has a pending entry in sync_tracking, which decides instead.
--
-- Why: after the remote is restored from a backup, a reconcile must tell a version the restore
-- took away from one nobody wrote after it. It pushes such a version again under its own stamp
-- and origin, tombstones included, so the newest-stamp rule decides it against what other
-- clients carry back (src/sync/trail/mod.rs). A row with no entry here (copied by a snapshot, or
-- synced before this migration) has an unknown version, decided as before: by the cache's clock.
--
-- Tombstones are pruned once older than a restore is taken to reach back (src/sync/versions.rs).
-- A rowid table with one unique index (core SQL, as migration 6 says why).
CREATE TABLE sync_row_versions (
    tbl     TEXT    NOT NULL,
    pk      TEXT    NOT NULL,             -- key text, as sync_tracking and the change log hold it
    stamp   TEXT    NOT NULL,             -- the version's stamp, exactly as the change log has it
    origin  TEXT    NOT NULL,             -- the origin that wrote it
    deleted INTEGER NOT NULL DEFAULT 0,   -- 1: a delete (tombstone)
    rev     INTEGER NOT NULL DEFAULT 0    -- the change-log revision it was written at, or above
);
CREATE UNIQUE INDEX sync_row_versions_key ON sync_row_versions (tbl, pk);

-- The trail mark names its entry by the write that logged it too (src/remote/types.rs, EntryId):
-- a version a reconcile logs again under its own stamp and origin may land at the very revision
-- it had before a second restore of the same backup. NULL: logged by a capture trigger, or before
-- write ids were kept.
ALTER TABLE sync_state ADD COLUMN anchor_write INTEGER;
