-- One origin per client instance. The origin id is the name a client's versions carry (the
-- tie-breaker, the conflict log's winner/loser origin, the remote registry's key). A copy of the
-- cache file (a cloned VM or desktop image, a copied profile, a cache restored from a backup)
-- carries it along: two live clients would then share one name, and the "a client never conflicts
-- with itself" rule would let one overwrite the other's edits with no trace. So the origin is
-- bound to what a copy does not carry: the host (hostname + machine id) and the cache file's own
-- identity (its path and inode). A cache that finds itself elsewhere takes a new origin
-- (src/cache/instance.rs).
ALTER TABLE sync_state ADD COLUMN bound_host TEXT NOT NULL DEFAULT ''; -- '' until first bound
ALTER TABLE sync_state ADD COLUMN bound_file TEXT NOT NULL DEFAULT '';

-- The origins this cache's history was written under before it took its current one. A pending
-- change stamped at or before `upto` was made under that origin (by the instance this cache was
-- copied from): it is pushed as that version, so the original and the copy pushing the same
-- change never make two versions of it; a remote version of that origin stamped after `upto` was
-- written by the original after the copy was made, a different client's edit.
CREATE TABLE sync_origins (
    origin      TEXT    PRIMARY KEY,
    upto        INTEGER NOT NULL,   -- the clock (ms since the Unix epoch) when the copy was noticed
    replaced_at TEXT    NOT NULL,   -- when (stamp)
    reason      TEXT    NOT NULL    -- what differed: host, path, file
);

