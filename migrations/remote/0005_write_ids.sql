-- Every entry a sharecache write logs carries the random id that write drew (src/remote/types.rs,
-- EntryId, says why: after a second restore of one backup, a reconcile may log a version again at
-- the very revision, stamp and origin it had in the history a first reconcile wrote, and a
-- cache's trail mark must tell the two entries apart). NULL for entries the change-log triggers
-- write (direct writes) and for entries logged before this migration. A plain column: old SQLite
-- builds writing the remote (the 3.7.17 floor) never name it.
ALTER TABLE sharecache_log ADD COLUMN write_id INTEGER;

-- Where the database moved (`sharecache migrate-remote`: a server URL, without its password), or
-- NULL. A moved share refuses sharecache clients still pointed at it, naming the new place, and
-- its synced tables refuse other programs' writes (src/remote/share/moved.rs): writes made there
-- would reach no cache and no server.
ALTER TABLE sharecache_meta ADD COLUMN moved_to TEXT;
